/*
 * fuzz_open.c - libFuzzer harness: open a mutated memmap3 file read-only
 * (schema read from the file itself), run mm.check when the module has one,
 * copy it with mm.totable, then walk every field, array element and container
 * entry (pairs, #, lookups by the keys found, ring:latest, string_array:count).
 *
 * Any Lua error is a clean refusal and is ignored. A crash, an ASan/UBSan
 * report, a leak (checked at exit) or a hang (libFuzzer -timeout) is a finding.
 *
 * Every step (check, totable, the walk of each field, element and entry)
 * runs under its own pcall, so a part that is refused does not hide the
 * parts after it; the first error is reported with MM3_FUZZ_VERBOSE=1.
 *
 * Input: the bytes of the file. The header check (FNV-1a of header bytes
 * 0-15, 24-71 and the schema) and the layout fingerprint cover the schema
 * text, so nearly every mutation of the schema or of the fixed header would
 * be refused by the first comparison. Each input therefore runs twice when
 * its check or fingerprint is wrong: once as it is (the refusal path), once
 * with both recomputed (so mutations reach the schema parser, the type
 * compiler and the data behind them).
 *
 * Build (spec/fuzz/run.sh does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -DMM3_REPO='"/path/to/repo"' -Isrc -I/usr/include/lua5.4 \
 *     spec/fuzz/fuzz_open.c src/[ml]*.c -llua5.4 -lpthread -o build/fuzz/fuzz_open
 *
 * Environment: MM3_FUZZ_NOFIX=1 runs inputs only as they are (no second run
 * with a repaired check); MM3_FUZZ_VERBOSE=1 prints each Lua error (useful
 * when replaying one input: ./build/fuzz/fuzz_open crash-file);
 * MM3_FUZZ_MEM_MB=N caps the Lua state's memory at N MiB, so that an input
 * making the reader allocate more fails with Lua's "not enough memory" (a
 * clean error) instead of being reported as an OOM (default: no cap; used to
 * look past a known OOM).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "memmap3_lua.h"

#ifndef MM3_REPO
#error "define MM3_REPO as the repository's absolute path (string literal)"
#endif
#ifndef MM3_LPEG_CPATH
#define MM3_LPEG_CPATH "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"
#endif

/* Largest input run (bigger ones are ignored): run.sh passes -max_len too. */
#define FUZZ_MAX_INPUT (1u << 20)

#ifndef FULL_GC_EVERY
#define FULL_GC_EVERY 16
#endif

/* The walker, compiled once; returns function(path). */
static const char WALKER[] =
    "local mm = require 'memmap3'\n"
    "local pairs, ipairs, pcall, error, tostring = pairs, ipairs, pcall, error, tostring\n"
    "local CONTAINER = {vec = true, ring = true, string_array = true, map = true, segmented = true}\n"
    "local walk\n"
    "-- Each part is walked under its own pcall: a part the reader refuses\n"
    "-- must not hide the parts after it.\n"
    "local function try(f, ...) pcall(f, ...) end\n"
    "local function field(x, f)\n"
    "  local fv = x[f.name]\n"
    "  if f.atomic then fv:load() else walk(fv, f.type) end\n"
    "end\n"
    "local function elem(x, i, t) walk(x[i], t) end\n"
    "-- Elements that are views (structs, arrays, containers) are walked one by\n"
    "-- one; scalars were read by pairs / ipairs already.\n"
    "local function composite(t) return t.kind == 'struct' or t.kind == 'array' or CONTAINER[t.kind] end\n"
    "local function seq(x, t, k)\n"
    "  local n = #x\n"
    "  tostring(x)\n"
    "  local deep = composite(t.elem)\n"
    "  for _, e in pairs(x) do if deep then try(walk, e, t.elem) end end\n"
    "  for _, e in ipairs(x) do local _ = e end\n"
    "  for _, i in ipairs({0, 1, n, n + 1, -1}) do try(elem, x, i, t.elem) end\n"
    "  if k == 'ring' then try(x.latest, x) try(x.latest, x, n) try(x.latest, x, n + 1) end\n"
    "  if k == 'string_array' then x:count() end\n"
    "end\n"
    "local function map(x, t)\n"
    "  local _ = #x\n"
    "  tostring(x)\n"
    "  local keys = {}\n"
    "  local deep = composite(t.elem)\n"
    "  for key, val in pairs(x) do\n"
    "    keys[#keys + 1] = key\n"
    "    if deep then try(walk, val, t.elem) end\n"
    "  end\n"
    "  for _, key in ipairs(keys) do try(elem, x, key, t.elem) end\n"
    "  for _, key in ipairs({0, 1, -1, '', 'k'}) do try(elem, x, key, t.elem) end\n"
    "end\n"
    "-- x: a value read from the file; t: its type (memmap3 type object)\n"
    "function walk(x, t)\n"
    "  local k = t.kind\n"
    "  if k == 'struct' then\n"
    "    for _, f in ipairs(t.fields) do try(field, x, f) end\n"
    "    for _ in pairs(x) do end\n"
    "    tostring(x)\n"
    "  elseif k == 'array' then\n"
    "    local _ = #x\n"
    "    if composite(t.elem) then\n"
    "      for i = 1, t.n do try(elem, x, i, t.elem) end\n"
    "    end\n"
    "    for _, i in ipairs({0, 1, t.n, t.n + 1}) do try(elem, x, i, t.elem) end\n"
    "    for _, e in ipairs(x) do local _ = e end\n"
    "    for _, e in pairs(x) do local _ = e end\n"
    "  elseif k == 'map' then\n"
    "    map(x, t)\n"
    "  elseif CONTAINER[k] then\n"
    "    seq(x, t, k)\n"
    "  end\n"
    "  -- scalars, strings, enums and values were decoded when read\n"
    "end\n"
    "-- Returns closed, err: closed is false when a File may be left to __gc\n"
    "-- (mm.open or mm.close raised); err is the first refusal, if any.\n"
    "return function(path)\n"
    "  -- a small reservation: inputs are at most 1 MiB, and mapping 64 GiB\n"
    "  -- (the default) per input costs ASan's shadow bookkeeping\n"
    "  local okopen, v, msg = pcall(mm.open, path, {readonly = true, reserve = 1 << 21})\n"
    "  if not okopen then return false, v end\n"
    "  if not v then return true, msg end -- refused, and closed by mm.open\n"
    "  local ok, err = true, nil\n"
    "  local function step(f, ...)\n"
    "    local ok2, err2 = pcall(f, ...)\n"
    "    if not ok2 and ok then ok, err = false, err2 end\n"
    "  end\n"
    "  step(mm.check, v) -- as mm.check(path) does after its own open\n"
    "  step(mm.totable, v)\n"
    "  step(mm.info, v)\n"
    "  step(tostring, v)\n"
    "  step(walk, v, mm.schema(v))\n"
    "  local okc, cerr = pcall(mm.close, v)\n"
    "  if not okc then return false, cerr end\n"
    "  return true, err\n"
    "end\n";

static lua_State *L;
static int walker_ref = LUA_NOREF;
static int fd = -1;
static char path[64];
static int nofix, verbose;
static uint8_t *fixbuf;
static size_t mem_used, mem_cap; /* bytes held by the Lua state; cap 0: none */

static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (!ptr) osize = 0;
  if (nsize == 0) {
    free(ptr);
    mem_used -= osize;
    return NULL;
  }
  if (mem_cap && nsize > osize && mem_used + (nsize - osize) > mem_cap) return NULL;
  void *p = realloc(ptr, nsize);
  if (p) mem_used = mem_used - osize + nsize;
  return p;
}

static int panic(lua_State *l) {
  fprintf(stderr, "fuzz_open: Lua panic: %s\n", lua_tostring(l, -1));
  abort();
}

static void die(const char *what) {
  fprintf(stderr, "fuzz_open: setup failed: %s\n", what);
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  nofix = getenv("MM3_FUZZ_NOFIX") && *getenv("MM3_FUZZ_NOFIX") == '1';
  verbose = getenv("MM3_FUZZ_VERBOSE") && *getenv("MM3_FUZZ_VERBOSE") == '1';
  fixbuf = malloc(FUZZ_MAX_INPUT);
  if (!fixbuf) die("malloc");

  /* One in-memory file, rewritten for every input, opened by its /proc path. */
  fd = memfd_create("mm3fuzz", MFD_CLOEXEC);
  if (fd < 0) die(strerror(errno));
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

  const char *mb = getenv("MM3_FUZZ_MEM_MB");
  mem_cap = mb ? (size_t)strtoul(mb, NULL, 10) << 20 : 0;
  L = lua_newstate(lalloc, NULL);
  if (!L) die("lua_newstate");
  lua_atpanic(L, panic);
  luaL_openlibs(L);
  luaL_requiref(L, "memmap3.core", luaopen_memmap3_core, 0);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushstring(L, MM3_REPO "/lua/?.lua;" MM3_REPO "/lua/?/init.lua;");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, MM3_LPEG_CPATH ";");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, WALKER, sizeof WALKER - 1, "=walker") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    die(lua_tostring(L, -1));
  walker_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static void run_file(const uint8_t *data, size_t size) {
  /* to the new size, then overwritten: the pages both inputs cover are reused */
  if (ftruncate(fd, (off_t)size) != 0) die("ftruncate");
  size_t done = 0;
  while (done < size) {
    ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
    if (w <= 0) die("pwrite");
    done += (size_t)w;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, walker_ref);
  lua_pushstring(L, path);
  int closed = 0;
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    if (verbose) fprintf(stderr, "walker failed: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
  } else {
    closed = lua_toboolean(L, -2);
    if (verbose && !lua_isnil(L, -1)) {
      const char *msg = lua_tostring(L, -1);
      fprintf(stderr, "refused: %s\n", msg ? msg : "(error object is not a string)");
    }
  }
  lua_settop(L, 0);
  /* A File whose open or close raised is closed by __gc: collect now, so no
     mapping or lock outlives its input (runs must not depend on history).
     Otherwise every File was closed explicitly, and the incremental
     collector is left to its pace: a full collection per input walked the
     whole heap (the module, LPeg's grammar, the cached types) and took half
     of the time. One full collection every FULL_GC_EVERY inputs keeps the
     heap small (run.sh turns off libFuzzer's per-input leak check, which
     this would trip; LeakSanitizer still runs at exit). */
  static unsigned runs;
  if (!closed || ++runs % FULL_GC_EVERY == 0) lua_gc(L, LUA_GCCOLLECT);
}

/* FNV-1a 64, as src/mm3_file.c computes the fingerprint and header check. */
static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Recompute fingerprint (24) and check (72) when the input has a header and a
   schema inside it; returns 1 if that changed anything (fixbuf holds it). */
static int repair(const uint8_t *data, size_t size) {
  if (size < MM3_HEADER_SIZE || memcmp(data, "MEMMAP3\0", 8) != 0) return 0;
  uint64_t soff = rd64(data + 32), slen = rd64(data + 40);
  if (soff != MM3_HEADER_SIZE || slen == 0 || slen > MM3_MAX_SCHEMA || slen > size - soff) return 0;
  uint64_t fp = fnv(data + soff, (size_t)slen, MM3_FNV_OFFSET);
  memcpy(fixbuf, data, size);
  memcpy(fixbuf + 24, &fp, 8);
  uint64_t c = fnv(fixbuf, 16, MM3_FNV_OFFSET);
  c = fnv(fixbuf + 24, 48, c);
  c = fnv(fixbuf + soff, (size_t)slen, c);
  memcpy(fixbuf + 72, &c, 8);
  return memcmp(fixbuf + 24, data + 24, 8) != 0 || memcmp(fixbuf + 72, data + 72, 8) != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT) return -1; /* not added to the corpus */
  run_file(data, size);
  if (!nofix && repair(data, size)) run_file(fixbuf, size);
  return 0;
}
