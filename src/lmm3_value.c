/*
 * lmm3_value.c - value<N> and value fields: any Lua value without functions,
 * userdata, threads or cycles, stored in a compact binary form. Reading gives
 * a fresh, equal copy.
 *
 * Format: a tag byte, then
 *   0 nil, 1 false, 2 true, 3 integer in one signed byte, 4 integer in 8
 *   bytes, 5 float (8 bytes), 6 string (LEB128 length, bytes), 7 table
 *   (LEB128 array length n, LEB128 count of other pairs, n values, then
 *   key, value pairs). Numbers are little-endian. Decoding checks every
 *   length against the bytes that remain, so damaged data gives an error.
 */
#include <string.h>

#include "lmm3_internal.h"

#define MAX_DEPTH 100

enum { T_NIL, T_FALSE, T_TRUE, T_INT8, T_INT, T_FLOAT, T_STRING, T_TABLE };

/* A growable byte buffer kept in a userdata at a fixed stack slot. */
typedef struct wbuf {
  lua_State *L;
  int slot;
  uint8_t *data;
  size_t len, cap;
} wbuf;

static void reserve(wbuf *b, size_t n) {
  if (b->len + n <= b->cap) return;
  size_t cap = b->cap * 2;
  while (cap < b->len + n) cap *= 2;
  uint8_t *d = lua_newuserdatauv(b->L, cap, 0);
  memcpy(d, b->data, b->len);
  lua_replace(b->L, b->slot);
  b->data = d;
  b->cap = cap;
}

static void put(wbuf *b, const void *p, size_t n) {
  reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void put_byte(wbuf *b, uint8_t c) { put(b, &c, 1); }

static void put_varint(wbuf *b, uint64_t v) {
  uint8_t tmp[10];
  int n = 0;
  do {
    tmp[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) tmp[n] |= 0x80;
    n++;
  } while (v);
  put(b, tmp, (size_t)n);
}

/* seen: stack index of a table of tables being encoded (cycle check). */
static void encode(wbuf *b, int idx, int seen, int depth, const char *where) {
  lua_State *L = b->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put_byte(b, T_NIL); return;
    case LUA_TBOOLEAN: put_byte(b, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i >= -128 && i <= 127) {
          put_byte(b, T_INT8);
          put_byte(b, (uint8_t)(int8_t)i);
        } else {
          int64_t x = i;
          put_byte(b, T_INT);
          put(b, &x, 8);
        }
      } else {
        double d = (double)lua_tonumber(L, idx);
        put_byte(b, T_FLOAT);
        put(b, &d, 8);
      }
      return;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      put_byte(b, T_STRING);
      put_varint(b, n);
      put(b, s, n);
      return;
    }
    case LUA_TTABLE: break;
    default:
      luaL_error(L, "%s: cannot store a %s in a value", where, luaL_typename(L, idx));
  }
  /* (depth 0: the outermost table, one level) */
  if (depth >= MAX_DEPTH) luaL_error(L, "%s: tables nested more than %d deep", where, MAX_DEPTH);
  luaL_checkstack(L, 6, "memmap3: value nested too deeply");
  idx = lua_absindex(L, idx);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, seen) != LUA_TNIL) luaL_error(L, "%s: cannot store a table that contains itself", where);
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  lua_Integer narr = 0, nhash = 0;
  while (lua_rawgeti(L, idx, narr + 1) != LUA_TNIL) {
    lua_pop(L, 1);
    narr++;
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= narr)) nhash++;
  }
  put_byte(b, T_TABLE);
  put_varint(b, (uint64_t)narr);
  put_varint(b, (uint64_t)nhash);
  /* The counts are written first: a table that changes meanwhile (a
     finalizer run by the buffer's allocations) would make them lie. */
  static const char changed[] = "%s: a table changed while it was being stored (by a finalizer?)";
  for (lua_Integer i = 1; i <= narr; i++) {
    if (lua_rawgeti(L, idx, i) == LUA_TNIL) luaL_error(L, changed, where);
    encode(b, -1, seen, depth + 1, where);
    lua_pop(L, 1);
  }
  lua_Integer pairs = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (!(lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1 && lua_tointeger(L, -2) <= narr)) {
      encode(b, -2, seen, depth + 1, where);
      encode(b, -1, seen, depth + 1, where);
      pairs++;
    }
    lua_pop(L, 1);
  }
  if (pairs != nhash) luaL_error(L, changed, where);
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, seen);
}

/* ---- decoding ---- */

typedef struct rbuf {
  lua_State *L;
  const uint8_t *p, *end;
  /* Entries the tables made so far may still announce (size hints): each
     entry takes a byte at least, so all the tables of a sound value announce
     no more than it has bytes. A damaged one (nested tables each announcing
     most of the bytes) would have them allocated over and over. */
  uint64_t entries;
} rbuf;

static void damaged(rbuf *r) { luaL_error(r->L, "memmap3: stored value is damaged"); }

static uint64_t get_varint(rbuf *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) damaged(r);
    uint8_t c = *r->p++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) return v;
  }
  damaged(r);
  return 0;
}

static void need(rbuf *r, uint64_t n) {
  if ((uint64_t)(r->end - r->p) < n) damaged(r);
}

static void decode(rbuf *r, int depth) {
  lua_State *L = r->L;
  need(r, 1);
  uint8_t tag = *r->p++;
  switch (tag) {
    case T_NIL: lua_pushnil(L); return;
    case T_FALSE: lua_pushboolean(L, 0); return;
    case T_TRUE: lua_pushboolean(L, 1); return;
    case T_INT8: need(r, 1); lua_pushinteger(L, (int8_t)*r->p++); return;
    case T_INT: {
      int64_t x;
      need(r, 8);
      memcpy(&x, r->p, 8);
      r->p += 8;
      lua_pushinteger(L, (lua_Integer)x);
      return;
    }
    case T_FLOAT: {
      double d;
      need(r, 8);
      memcpy(&d, r->p, 8);
      r->p += 8;
      lua_pushnumber(L, (lua_Number)d);
      return;
    }
    case T_STRING: {
      uint64_t n = get_varint(r);
      need(r, n);
      lua_pushlstring(L, (const char *)r->p, (size_t)n);
      r->p += n;
      return;
    }
    case T_TABLE: {
      if (depth > MAX_DEPTH) damaged(r); /* (one more: older versions stored 101 levels) */
      uint64_t narr = get_varint(r), nhash = get_varint(r);
      /* every entry takes at least one byte: bounds the table sizes */
      need(r, narr);
      if (nhash > (uint64_t)(r->end - r->p) / 2) damaged(r);
      if (narr + nhash > r->entries) damaged(r);
      r->entries -= narr + nhash;
      luaL_checkstack(L, 4, "memmap3: value nested too deeply");
      lua_createtable(L, (int)(narr > (1 << 24) ? 1 << 24 : narr), (int)(nhash > (1 << 24) ? 1 << 24 : nhash));
      for (uint64_t i = 1; i <= narr; i++) {
        decode(r, depth + 1);
        lua_rawseti(L, -2, (lua_Integer)i);
      }
      for (uint64_t i = 0; i < nhash; i++) {
        decode(r, depth + 1);
        decode(r, depth + 1);
        if (lua_isnil(L, -2) || (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
          damaged(r); /* nil or NaN key */
        lua_rawset(L, -3);
      }
      return;
    }
  }
  damaged(r);
}

void lmm3_value_push(lua_State *L, mm3_file *f, uint8_t *p, const mm3_ctype *ct) {
  uint8_t small[256];
  uint8_t *data = small;
  uint64_t len = 0;
  int rc = mm3_value_get(f, p, ct, small, sizeof small, &len);
  for (int tries = 0; rc == MM3_ERANGE && tries < 16; tries++) {
    /* bigger than the buffer (and maybe growing under another writer) */
    if (data != small) lua_pop(L, 1);
    uint64_t want = len + len / 2 + 64;
    data = lua_newuserdatauv(L, (size_t)want, 0);
    rc = mm3_value_get(f, p, ct, data, want, &len);
  }
  if (rc) luaL_error(L, "memmap3: value: %s", mm3_strerror(rc));
  if (len == 0) { /* never set, or set to nil since the first read (by another writer, or a finalizer) */
    if (data != small) lua_pop(L, 1); /* the buffer: exactly one value is left */
    lua_pushnil(L);
    return;
  }
  int top = lua_gettop(L);
  rbuf r = {L, data, data + len, len};
  decode(&r, 0);
  if (r.p != r.end) damaged(&r);
  if (data != small) {
    lua_replace(L, top); /* drop the copy */
  }
}

void lmm3_value_store(lua_State *L, int vidx, mm3_file *f, uint8_t *p, const mm3_ctype *ct, const char *where) {
  vidx = lua_absindex(L, vidx);
  lua_newtable(L); /* seen */
  int seen = lua_gettop(L);
  wbuf b = {L, 0, NULL, 0, 64};
  b.data = lua_newuserdatauv(L, b.cap, 0);
  b.slot = lua_gettop(L);
  if (!lua_isnil(L, vidx)) encode(&b, vidx, seen, 0, where);
  if (ct->cap && b.len > ct->cap)
    luaL_error(L, "%s: value of %I bytes is larger than its capacity (%I bytes)", where, (lua_Integer)b.len,
               (lua_Integer)ct->cap);
  if (!f) { /* a scratch copy of a struct: value<N> only */
    memcpy(p + 4, b.data, b.len);
    memset(p + 4 + b.len, 0, ct->cap - b.len);
    uint32_t len = (uint32_t)b.len; /* (p may be unaligned: keys packed before it) */
    memcpy(p, &len, 4);
  } else {
    int rc = mm3_value_set(f, p, ct, b.data, b.len);
    if (rc) luaL_error(L, "%s: %s", where, mm3_strerror(rc));
  }
  lua_settop(L, seen - 1);
}
