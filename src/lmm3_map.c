/*
 * lmm3_map.c - memmap3.Map: raw mappings from Lua (mm.map, mm.anon).
 *
 * Offsets are 0-based byte offsets, like a file's. Misuse raises; failures of
 * the system return fail, "what: message", code.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lmm3_internal.h"

/* A file map made by mm.map keeps a descriptor of its file (as Python's mmap
   does), so that remap can check the file's size: touching a mapped page past
   the end of a file raises SIGBUS, and no Lua code may crash the process
   (SPEC §5). Maps pushed by a C host have none: their host answers for them.

   Any allocation can run a finalizer, and a finalizer can close, protect or
   remap the map: a method reads its arguments first (luaL_checkstring may
   allocate, an options table may have __index) and takes u->m after them.
   unpack reads the mapping between allocations (one string per result): while
   it runs the map is busy, a close only marks it closing, and remap raises.
   pack encodes everything first, then checks the map again. */
#define MAP_MAGIC 0x6d6d336du /* "mm3m" */

typedef struct lmm3_map {
  uint32_t magic;   /* MAP_MAGIC */
  mm3_map *m;       /* NULL once closed */
  int owned;        /* 0: borrowed from a C host, never unmapped here */
  int fd;           /* file maps made by mm.map: the file, O_CLOEXEC; else -1 */
  uint64_t offset;  /* file offset of byte 0 of the map (when fd >= 0) */
  int busy;         /* unpacks under way on this map */
  int closing;      /* closed while busy: unmapped when the last unpack ends */
} lmm3_map;

/* An open map, truncated or not (for #m, mode). */
static lmm3_map *toopen(lua_State *L, int idx) {
  lmm3_map *u = lmm3_checkudata(L, idx, LMM3_MAP, sizeof(lmm3_map), MAP_MAGIC);
  if (!u->m || u->closing) luaL_error(L, "attempt to use a closed " LMM3_MAP);
  return u;
}

/* Raise once the SIGBUS guard found the map's file cut by another program. */
static void check_truncated(lua_State *L, mm3_map *m) {
  if (mm3_map_truncated(m))
    luaL_error(L, LMM3_MAP ": the mapped file was truncated by another program "
                  "(its lost pages read as zeros); close it");
}

/* An open map whose file was not cut: every use of its bytes. */
static lmm3_map *tomap(lua_State *L, int idx) {
  lmm3_map *u = toopen(L, idx);
  check_truncated(L, u->m);
  return u;
}

static const char *const mode_names[] = {"r", "rw", "copy", "copy_r", "rx", NULL};

static lmm3_map *newmap(lua_State *L) {
  lmm3_map *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->magic = MAP_MAGIC;
  u->m = NULL; /* safe closed state until the mapping exists */
  u->owned = 1;
  u->fd = -1;
  u->offset = 0;
  u->busy = 0;
  u->closing = 0;
  luaL_setmetatable(L, LMM3_MAP);
  return u;
}

void mm3lua_push_map(lua_State *L, mm3_map *m, int owned) {
  lmm3_map *u = newmap(L);
  u->m = m;
  u->owned = owned;
}

/* Raises only for a closed map (memmap3_lua.h): the host checks
   mm3_map_truncated itself. */
mm3_map *mm3lua_check_map(lua_State *L, int idx) { return toopen(L, idx)->m; }

/* Unmap (if owned) and forget the file; idempotent. */
static void release(lmm3_map *u) {
  if (u->m && u->owned) mm3_map_close(u->m);
  u->m = NULL;
  u->closing = 0;
  if (u->fd >= 0) close(u->fd);
  u->fd = -1;
}

/* 0 if the file behind fd covers [0, end) or has no size (a character
   device); FILE_SHORT and its size in *size if it is shorter; an errno if
   its size cannot be read. */
#define FILE_SHORT (-1)
static int file_short(int fd, uint64_t end, uint64_t *size) {
  int sized, rc = mm3__fd_size(fd, size, &sized);
  if (rc || !sized) return rc;
  return *size < end ? FILE_SHORT : 0;
}

/* Raise for a range outside the map. */
static void check_range(lua_State *L, mm3_map *m, uint64_t off, uint64_t len) {
  if (mm3_map_check_range(m, off, len))
    luaL_error(L, LMM3_MAP ": range [%I, %I + %I) is outside the map (%I bytes)",
               (lua_Integer)off, (lua_Integer)off, (lua_Integer)len,
               (lua_Integer)mm3_map_len(m));
}

static const char *const prot_names[] = {"", "r", "", "rw", "", "rx"};

static void check_writable(lua_State *L, mm3_map *m) {
  if (mm3_map_prot(m) != MM3_PROT_RW)
    luaL_error(L, LMM3_MAP " is read-only (mode %s, protection %s)", mode_names[mm3_map_mode(m)],
               prot_names[mm3_map_prot(m)]);
}

/* ---- constructors ---- */

static const char *const map_opts[] = {"mode", "offset", "len", "populate", "no_reserve",
                                       "create", NULL};

static int l_map(lua_State *L) {
  mm3_map_opts o = {0};
  char what[64];
  const char *path = NULL;
  int fd = -1, rc, has_len;
  lmm3_check_opts(L, 2, "mm.map", map_opts);
  lua_settop(L, 2);
  const char *mode = lmm3_opt_string(L, 2, "mode", "r");
  int i;
  for (i = 0; mode_names[i]; i++)
    if (strcmp(mode, mode_names[i]) == 0) break;
  if (!mode_names[i]) { /* an __index may have made the string: nothing keeps it */
    char bad[32];
    snprintf(bad, sizeof bad, "%s", mode);
    return luaL_error(L, "mm.map: bad mode '%s' (expected r, rw, copy, copy_r or rx)", bad);
  }
  o.mode = (mm3_mode)i;
  lua_Integer off = lmm3_opt_int(L, 2, "offset", 0, NULL);
  lua_Integer len = lmm3_opt_int(L, 2, "len", 0, &has_len);
  if (off < 0) return luaL_error(L, "mm.map: offset must not be negative (got %I)", off);
  if (len < 0) return luaL_error(L, "mm.map: len must not be negative (got %I)", len);
  o.offset = (uint64_t)off;
  o.len = (uint64_t)len;
  o.has_len = has_len;
  o.populate = lmm3_opt_bool(L, 2, "populate", 0);
  o.no_reserve = lmm3_opt_bool(L, 2, "no_reserve", 0);
  o.create = lmm3_opt_bool(L, 2, "create", 0);
  lmm3_map *u = newmap(L);
  if (lua_type(L, 1) == LUA_TSTRING) {
    path = lmm3_checkpath(L, 1, "mm.map");
    rc = mm3_map_path(path, &o, &u->m);
  } else {
    if (o.create) return luaL_error(L, "mm.map: option 'create' needs a path");
    luaL_Stream *s = luaL_testudata(L, 1, LUA_FILEHANDLE);
    if (s) {
      if (!s->closef) return luaL_error(L, "mm.map: attempt to use a closed file");
      fd = fileno(s->f);
      fflush(s->f); /* buffered writes must reach the file before it is mapped */
      snprintf(what, sizeof what, "file (fd %d)", fd);
    } else if (lua_isinteger(L, 1)) {
      lua_Integer v = lua_tointeger(L, 1);
      if (v < 0 || v > 0x7fffffff) return luaL_error(L, "mm.map: bad file descriptor %I", v);
      fd = (int)v;
      snprintf(what, sizeof what, "fd %d", fd);
    } else {
      return luaL_typeerror(L, 1, "path, file handle or descriptor");
    }
    rc = mm3_map_fd(fd, &o, &u->m);
  }
  /* Bad input raises (an offset past the end, offset + len beyond what can be
     mapped); only failures of the system return fail. */
  if (rc == MM3_EINVAL || rc == MM3_ERANGE)
    return luaL_error(L, "mm.map: %s: %s (offset %I)", path ? path : what, mm3_strerror(rc), off);
  if (rc == MM3_ETOOBIG)
    return luaL_error(L, "mm.map: %s: %s (offset %I, len %I)", path ? path : what,
                      mm3_strerror(rc), off, len);
  if (rc) return lmm3_fail(L, path ? path : what, rc);
  /* Keep the file, and refuse a length past its end (create has extended it
     already): such pages would raise SIGBUS when touched. */
  u->offset = o.offset;
  u->fd = path ? open(path, O_RDONLY | O_CLOEXEC) : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (u->fd < 0) {
    int e = errno;
    release(u);
    return lmm3_fail(L, path ? path : what, e);
  }
  uint64_t size = 0, end = o.offset + mm3_map_len(u->m);
  rc = file_short(u->fd, end, &size);
  if (rc) {
    release(u);
    if (rc != FILE_SHORT) return lmm3_fail(L, path ? path : what, rc);
    return luaL_error(L,
                      "mm.map: %s: offset + len (%I) is past the end of the file (%I bytes); "
                      "create = true extends it",
                      path ? path : what, (lua_Integer)end, (lua_Integer)size);
  }
  return 1;
}

static const char *const anon_opts[] = {"populate", "stack", "huge", "no_reserve", "shared", NULL};

static int l_anon(lua_State *L) {
  mm3_anon_opts o = {0};
  uint64_t len = lmm3_check_size(L, 1, "mm.anon: length");
  lmm3_check_opts(L, 2, "mm.anon", anon_opts);
  lua_settop(L, 2);
  o.populate = lmm3_opt_bool(L, 2, "populate", 0);
  o.stack = lmm3_opt_bool(L, 2, "stack", 0);
  o.no_reserve = lmm3_opt_bool(L, 2, "no_reserve", 0);
  o.shared = lmm3_opt_bool(L, 2, "shared", 0);
  if (!lua_isnil(L, 2)) {
    lua_getfield(L, 2, "huge");
    if (lua_isboolean(L, -1)) {
      o.huge = lua_toboolean(L, -1);
    } else if (!lua_isnil(L, -1)) {
      int isint;
      lua_Integer bits = lua_tointegerx(L, -1, &isint);
      if (!isint || bits < 1 || bits > 63)
        return luaL_error(L, "mm.anon: option 'huge' must be true or page-size bits (21 = 2 MiB)");
      o.huge = (int)bits;
    }
    lua_pop(L, 1);
  }
  lmm3_map *u = newmap(L);
  int rc = mm3_map_anon(len, &o, &u->m);
  if (rc == MM3_ETOOBIG)
    return luaL_error(L, "mm.anon: %s (length %I)", mm3_strerror(rc), (lua_Integer)len);
  if (rc) return lmm3_fail(L, "anonymous map", rc);
  return 1;
}

static int l_advice_supported(lua_State *L) {
  mm3_advice a;
  const char *name = luaL_checkstring(L, 1);
  if (mm3_advice_from_name(name, &a)) return luaL_error(L, "unknown advice '%s'", name);
  lua_pushboolean(L, mm3_advice_supported(a));
  return 1;
}

/* ---- methods ---- */

static int m_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mm3_map_len(toopen(L, 1)->m));
  return 1;
}

static int m_read(lua_State *L) {
  uint64_t off = lua_isnoneornil(L, 2) ? 0 : lmm3_check_size(L, 2, "offset");
  int to_end = lua_isnoneornil(L, 3);
  uint64_t n = to_end ? 0 : lmm3_check_size(L, 3, "length");
  mm3_map *m = tomap(L, 1)->m;
  if (to_end) {
    check_range(L, m, off, 0);
    n = mm3_map_len(m) - off;
  }
  check_range(L, m, off, n);
  lmm3_push_mapped(L, (const char *)mm3_map_ptr(m) + off, (size_t)n); /* copies, then may collect */
  check_truncated(L, m); /* this very read faulted: zeros, not data */
  return 1;
}

static int m_write(lua_State *L) {
  uint64_t off = lmm3_check_size(L, 2, "offset");
  size_t n;
  const char *s = luaL_checklstring(L, 3, &n); /* a number becomes a string: allocates */
  mm3_map *m = tomap(L, 1)->m;
  check_writable(L, m);
  check_range(L, m, off, n);
  memcpy(mm3_map_ptr(m) + off, s, n);
  check_truncated(L, m); /* this very write faulted: it is lost */
  lua_pushinteger(L, (lua_Integer)(off + n));
  return 1;
}

/* unpack proper, run by m_unpack in a protected call: map, fmt, offset. */
static int unpack_busy(lua_State *L) {
  mm3_map *m = ((lmm3_map *)lua_touserdata(L, 1))->m;
  return lmm3_unpack(L, lua_tostring(L, 2), mm3_map_ptr(m), mm3_map_len(m),
                     (size_t)lua_tointeger(L, 3));
}

static int m_unpack(lua_State *L) {
  const char *fmt = luaL_checkstring(L, 2);
  uint64_t off = lua_isnoneornil(L, 3) ? 0 : lmm3_check_size(L, 3, "offset");
  lmm3_map *u = tomap(L, 1);
  check_range(L, u->m, off, 0);
  /* Numbers are pushed without allocating: only strings (c, s, z) can run a
     finalizer in the middle, and make the map busy. */
  if (!strpbrk(fmt, "csz")) {
    int n = lmm3_unpack(L, fmt, mm3_map_ptr(u->m), mm3_map_len(u->m), (size_t)off);
    check_truncated(L, u->m); /* a faulting read gave zeros */
    return n;
  }
  lua_settop(L, 2);
  int base = lua_gettop(L);
  lua_pushcfunction(L, unpack_busy);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushinteger(L, (lua_Integer)off);
  u->busy++;
  int st = lua_pcall(L, 3, LUA_MULTRET, 0);
  if (--u->busy == 0 && u->closing) release(u); /* closed meanwhile */
  if (st != LUA_OK) return lua_error(L);
  if (u->m) check_truncated(L, u->m);
  return lua_gettop(L) - base;
}

static int m_pack(lua_State *L) {
  uint64_t off = lmm3_check_size(L, 2, "offset");
  const char *fmt = luaL_checkstring(L, 3);
  size_t n;
  mm3_map *m = tomap(L, 1)->m;
  check_writable(L, m); /* before encoding: a bad map raises first */
  check_range(L, m, off, 0);
  lmm3_pack(L, fmt, 4, (size_t)off);
  const char *s = lua_tolstring(L, -1, &n);
  m = tomap(L, 1)->m; /* encoding allocates: a finalizer may have closed, protected or remapped it */
  check_writable(L, m);
  check_range(L, m, off, n);
  memcpy(mm3_map_ptr(m) + off, s, n);
  check_truncated(L, m);
  lua_pushinteger(L, (lua_Integer)(off + n));
  return 1;
}

/* Optional (off, len) at args 2, 3 (or 3, 4): both absent means the whole map. */
static void opt_range(lua_State *L, int arg, mm3_map *m, uint64_t *off, uint64_t *len) {
  *off = 0;
  *len = 0;
  if (lua_isnoneornil(L, arg) && lua_isnoneornil(L, arg + 1)) return;
  *off = lmm3_check_size(L, arg, "offset");
  *len = lua_isnoneornil(L, arg + 1) ? 0 : lmm3_check_size(L, arg + 1, "length");
  if (lua_isnoneornil(L, arg + 1)) {
    check_range(L, m, *off, 0);
    *len = mm3_map_len(m) - *off;
  }
  check_range(L, m, *off, *len);
  if (*len == 0) *off = 0, *len = 0; /* nothing to do: an empty range is the whole of nothing */
}

static int result(lua_State *L, int rc, const char *what) {
  if (rc) return lmm3_fail(L, what, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int m_flush(lua_State *L) {
  mm3_map *m = tomap(L, 1)->m;
  uint64_t off, len;
  opt_range(L, 2, m, &off, &len);
  if (!lua_isnoneornil(L, 2) && len == 0) return result(L, 0, NULL);
  return result(L, mm3_map_flush(m, off, len), "flush");
}

static int m_flush_async(lua_State *L) {
  mm3_map *m = tomap(L, 1)->m;
  uint64_t off, len;
  opt_range(L, 2, m, &off, &len);
  if (!lua_isnoneornil(L, 2) && len == 0) return result(L, 0, NULL);
  return result(L, mm3_map_flush_async(m, off, len), "flush_async");
}

static int m_advise(lua_State *L) {
  const char *name = luaL_checkstring(L, 2);
  mm3_advice a;
  uint64_t off, len;
  if (mm3_advice_from_name(name, &a)) return luaL_error(L, "unknown advice '%s'", name);
  mm3_map *m = tomap(L, 1)->m;
  opt_range(L, 3, m, &off, &len);
  if (!lua_isnoneornil(L, 3) && len == 0) return result(L, 0, NULL);
  return result(L, mm3_map_advise(m, a, off, len), name);
}

static int m_lock(lua_State *L) { return result(L, mm3_map_lock(tomap(L, 1)->m), "lock"); }
static int m_unlock(lua_State *L) { return result(L, mm3_map_unlock(tomap(L, 1)->m), "unlock"); }

static int m_protect(lua_State *L) {
  static const char *const names[] = {"r", "rw", "rx", NULL};
  static const mm3_prot prots[] = {MM3_PROT_R, MM3_PROT_RW, MM3_PROT_RX};
  int i = luaL_checkoption(L, 2, NULL, names);
  return result(L, mm3_map_protect(tomap(L, 1)->m, prots[i]), "protect");
}

static const char *const remap_opts[] = {"may_move", NULL};

static int m_remap(lua_State *L) {
  uint64_t len = lmm3_check_size(L, 2, "remap: length");
  lmm3_check_opts(L, 3, "remap", remap_opts);
  int flags = lmm3_opt_bool(L, 3, "may_move", 0) ? MM3_REMAP_MAY_MOVE : 0; /* may run __index */
  lmm3_map *u = tomap(L, 1);
  mm3_map *m = u->m;
  if (u->busy > 0)
    return luaL_error(L, "remap: " LMM3_MAP " is in use by unpack (from a finalizer or hook)");
  if (u->fd >= 0 && len > mm3_map_len(m)) { /* growing a file map: the file must cover it */
    uint64_t size = 0;
    int short_rc =
        u->offset > UINT64_MAX - len ? FILE_SHORT : file_short(u->fd, u->offset + len, &size);
    if (short_rc == FILE_SHORT)
      return luaL_error(L, "remap: length %I runs past the end of the file (offset %I, file %I bytes)",
                        (lua_Integer)len, (lua_Integer)u->offset, (lua_Integer)size);
    if (short_rc) return lmm3_fail(L, "remap", short_rc);
  }
  int rc = mm3_map_remap(m, len, flags);
  if (rc == MM3_ENOTSUP) {
    luaL_pushfail(L);
    lua_pushfstring(L, "remap: a shared anonymous map cannot grow past the pages it was made with (its memory, "
                       "shared with forked children, keeps that size): length %I asked, %I mapped",
                    (lua_Integer)len, (lua_Integer)mm3_map_len(m));
    lua_pushinteger(L, rc);
    return 3;
  }
  if (rc == MM3_ETOOBIG)
    return luaL_error(L, "remap: %s (length %I)", mm3_strerror(rc), (lua_Integer)len);
  return result(L, rc, "remap");
}

static int m_mode(lua_State *L) {
  lua_pushstring(L, mode_names[mm3_map_mode(toopen(L, 1)->m)]);
  return 1;
}

static int m_ptr(lua_State *L) {
  lua_pushlightuserdata(L, mm3_map_ptr(tomap(L, 1)->m));
  return 1;
}

/* close and __close: while an unpack reads the map, it is closed for every
   later use and unmapped when the unpack ends. */
static int m_close(lua_State *L) {
  lmm3_map *u = lmm3_checkudata(L, 1, LMM3_MAP, sizeof(lmm3_map), MAP_MAGIC);
  if (u->busy > 0) u->closing = 1;
  else release(u);
  return 0;
}

/* A collected map is on no stack, so no unpack can be reading it. */
static int m_gc(lua_State *L) {
  release(lmm3_checkudata(L, 1, LMM3_MAP, sizeof(lmm3_map), MAP_MAGIC));
  return 0;
}

static int m_tostring(lua_State *L) {
  lmm3_map *u = lmm3_checkudata(L, 1, LMM3_MAP, sizeof(lmm3_map), MAP_MAGIC);
  if (!u->m || u->closing) {
    lua_pushliteral(L, LMM3_MAP " (closed)");
  } else {
    mm3_map *m = u->m;
    lua_pushfstring(L, LMM3_MAP " (%s, protection %s, %I bytes): %p",
                    mm3_map_is_anon(m) ? "anon" : mode_names[mm3_map_mode(m)],
                    prot_names[mm3_map_prot(m)], (lua_Integer)mm3_map_len(m),
                    (void *)mm3_map_ptr(m));
  }
  return 1;
}

/* m[i]: the byte at 0-based offset i; string keys are methods. */
static int m_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER) {
    mm3_map *m = tomap(L, 1)->m;
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    lua_Integer len = (lua_Integer)mm3_map_len(m); /* luaL_tolstring allocates */
    if (!isint || i < 0 || i >= len)
      return luaL_error(L, LMM3_MAP ": byte index %s is outside the map (%I bytes, 0-based)",
                        luaL_tolstring(L, 2, NULL), len);
    lua_pushinteger(L, mm3_map_ptr(m)[i]);
    check_truncated(L, m);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int m_newindex(lua_State *L) {
  int isint;
  lua_Integer i = lua_tointegerx(L, 2, &isint);
  if (lua_type(L, 2) != LUA_TNUMBER || !isint)
    return luaL_error(L, LMM3_MAP ": only bytes can be assigned (m[offset] = 0..255)");
  lua_Integer v = luaL_checkinteger(L, 3);
  if (v < 0 || v > 255) return luaL_error(L, LMM3_MAP ": byte value %I out of range 0..255", v);
  mm3_map *m = tomap(L, 1)->m;
  check_writable(L, m);
  if (i < 0 || (uint64_t)i >= mm3_map_len(m))
    return luaL_error(L, LMM3_MAP ": byte index %I is outside the map (%I bytes, 0-based)", i,
                      (lua_Integer)mm3_map_len(m));
  mm3_map_ptr(m)[i] = (uint8_t)v;
  check_truncated(L, m);
  return 0;
}

void lmm3_open_map(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"read", m_read},       {"write", m_write},     {"unpack", m_unpack},
      {"pack", m_pack},       {"flush", m_flush},     {"flush_async", m_flush_async},
      {"advise", m_advise},   {"lock", m_lock},       {"unlock", m_unlock},
      {"protect", m_protect}, {"remap", m_remap},     {"close", m_close},
      {"mode", m_mode},       {"ptr", m_ptr},         {"len", m_len},
      {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__len", m_len},         {"__gc", m_gc},
                                  {"__close", m_close},     {"__tostring", m_tostring},
                                  {"__newindex", m_newindex}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"map", l_map},
                                   {"anon", l_anon},
                                   {"advice_supported", l_advice_supported},
                                   {NULL, NULL}};
  luaL_newmetatable(L, LMM3_MAP);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_pushcclosure(L, m_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
