/*
 * lmm3_atomic.c - memmap3.Atomic: views of atomic fields. Lock-free, and
 * correct across processes that map the same file.
 */
#include <string.h>

#include "lmm3_internal.h"

typedef struct lmm3_atomic {
  uint32_t magic;
  int code;      /* the field's scalar type code */
  uint8_t *p;
  lmm3_file *fb;
} lmm3_atomic;

#define ATOMIC_MAGIC 0x6d6d3361u /* "mm3a" */

static int width_of(int code) {
  switch (code) {
    case LMM3_U8: case LMM3_I8: case LMM3_BOOL: return 1;
    case LMM3_U16: case LMM3_I16: return 2;
    case LMM3_U32: case LMM3_I32: return 4;
    default: return 8;
  }
}

static int is_signed(int code) {
  return code == LMM3_I8 || code == LMM3_I16 || code == LMM3_I32 || code == LMM3_I64;
}

/* nameidx: the field's name (for error messages) */
void lmm3_push_atomic(lua_State *L, int fileidx, lmm3_file *fb, uint8_t *p, int code, int nameidx) {
  fileidx = lua_absindex(L, fileidx);
  nameidx = lua_absindex(L, nameidx);
  lmm3_atomic *a = lua_newuserdatauv(L, sizeof *a, 2);
  a->magic = ATOMIC_MAGIC;
  a->code = code;
  a->p = p;
  a->fb = fb;
  luaL_setmetatable(L, LMM3_ATOMIC_MT);
  lua_pushvalue(L, fileidx);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, nameidx);
  lua_setiuservalue(L, -2, 2);
}

/* "atomic field 'kills'" */
static const char *where(lua_State *L) {
  lua_getiuservalue(L, 1, 2);
  const char *w = lua_pushfstring(L, "atomic field '%s'", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  return w;
}

static lmm3_atomic *toatomic(lua_State *L, int write) {
  lmm3_atomic *a = lmm3_checkudata(L, 1, LMM3_ATOMIC_MT, sizeof(lmm3_atomic), ATOMIC_MAGIC);
  if (LMM3_CLOSED(a->fb)) lmm3_closed_error(L, a->fb);
  if (a->fb->f->truncated) lmm3_truncated_error(L, a->fb);
  if (write && a->fb->readonly) luaL_error(L, "%s: %s is open read-only", where(L), mm3_file_path(a->fb->f));
  return a;
}

static void push_bits(lua_State *L, lmm3_atomic *a, uint64_t x) {
  uint8_t tmp[8];
  memcpy(tmp, &x, 8);
  lmm3_push_scalar(L, tmp, a->code, (uint32_t)width_of(a->code));
}

/* The argument at idx as the field's bit pattern, range-checked as an
   assignment to the field would be. */
static uint64_t check_bits(lua_State *L, lmm3_atomic *a, int idx) {
  uint8_t tmp[8] = {0};
  const char *why = lmm3_set_scalar(L, tmp, a->code, (uint32_t)width_of(a->code), idx);
  if (why) luaL_error(L, "%s: %s", where(L), why);
  uint64_t x;
  memcpy(&x, tmp, 8);
  return x;
}

static int at_load(lua_State *L) {
  lmm3_atomic *a = toatomic(L, 0);
  push_bits(L, a, mm3_atomic_load(a->p, width_of(a->code)));
  return 1;
}

static int at_store(lua_State *L) {
  lmm3_atomic *a = toatomic(L, 1);
  mm3_atomic_store(a->p, width_of(a->code), check_bits(L, a, 2));
  return 0;
}

static int fetch(lua_State *L, mm3_atomic_op op) {
  lmm3_atomic *a = toatomic(L, 1);
  uint64_t v;
  if (a->code == LMM3_BOOL) {
    if (op != MM3_ATOMIC_AND && op != MM3_ATOMIC_OR && op != MM3_ATOMIC_XOR && op != MM3_ATOMIC_SWAP)
      return luaL_error(L, "%s: atomic bool supports load, store, swap, compare_exchange and fetch_and/or/xor",
                        where(L));
    v = check_bits(L, a, 2);
  } else if (op == MM3_ATOMIC_ADD || op == MM3_ATOMIC_SUB) {
    int isint;
    lua_Integer x = lua_tointegerx(L, 2, &isint);
    if (!isint || lua_type(L, 2) != LUA_TNUMBER)
      return luaL_error(L, "%s: expected an integer, got %s", where(L), luaL_typename(L, 2));
    v = (uint64_t)x; /* wraps around, as C's atomics do */
  } else {
    v = check_bits(L, a, 2);
  }
  push_bits(L, a, mm3_atomic_fetch(a->p, width_of(a->code), op, v, is_signed(a->code)));
  return 1;
}

static int at_fetch_add(lua_State *L) { return fetch(L, MM3_ATOMIC_ADD); }
static int at_fetch_sub(lua_State *L) { return fetch(L, MM3_ATOMIC_SUB); }
static int at_fetch_and(lua_State *L) { return fetch(L, MM3_ATOMIC_AND); }
static int at_fetch_or(lua_State *L) { return fetch(L, MM3_ATOMIC_OR); }
static int at_fetch_xor(lua_State *L) { return fetch(L, MM3_ATOMIC_XOR); }
static int at_fetch_max(lua_State *L) { return fetch(L, MM3_ATOMIC_MAX); }
static int at_fetch_min(lua_State *L) { return fetch(L, MM3_ATOMIC_MIN); }
static int at_swap(lua_State *L) { return fetch(L, MM3_ATOMIC_SWAP); }

static int at_compare_exchange(lua_State *L) {
  lmm3_atomic *a = toatomic(L, 1);
  uint64_t expected = check_bits(L, a, 2);
  uint64_t desired = check_bits(L, a, 3);
  int ok = mm3_atomic_cas(a->p, width_of(a->code), &expected, desired);
  lua_pushboolean(L, ok);
  push_bits(L, a, expected);
  return 2;
}

static int at_tostring(lua_State *L) {
  lmm3_atomic *a = lmm3_checkudata(L, 1, LMM3_ATOMIC_MT, sizeof(lmm3_atomic), ATOMIC_MAGIC);
  if (LMM3_CLOSED(a->fb)) {
    lua_pushliteral(L, LMM3_ATOMIC_MT " (closed file)");
    return 1;
  }
  push_bits(L, a, mm3_atomic_load(a->p, width_of(a->code)));
  lua_pushfstring(L, LMM3_ATOMIC_MT " (%s)", luaL_tolstring(L, -1, NULL));
  return 1;
}

void lmm3_open_atomic(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"load", at_load},           {"store", at_store},         {"fetch_add", at_fetch_add},
      {"fetch_sub", at_fetch_sub}, {"fetch_and", at_fetch_and}, {"fetch_or", at_fetch_or},
      {"fetch_xor", at_fetch_xor}, {"fetch_max", at_fetch_max}, {"fetch_min", at_fetch_min},
      {"swap", at_swap},           {"compare_exchange", at_compare_exchange}, {NULL, NULL}};
  luaL_newmetatable(L, LMM3_ATOMIC_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, at_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
