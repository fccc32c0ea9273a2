/*
 * lmm3_view.c - struct and array views: fields and elements that read and
 * write straight through the mapping.
 *
 * One metatable per type, made by core.new_struct / core.new_array from the
 * layout that lua/memmap3/schema.lua computed. __index looks the key up in
 * the type's field table (an upvalue): a plain scalar's descriptor is one
 * integer, so a field read is one table lookup and one load. Child views
 * (nested structs, arrays, atomics) are cached per parent, so repeated access
 * allocates nothing.
 */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "lmm3_internal.h"

__extension__ typedef unsigned __int128 u128;

int lmm3_closed_error(lua_State *L, const lmm3_file *fb) {
  return luaL_error(L, "attempt to use a closed memmap3 file (%s)", fb->path[0] ? fb->path : "?");
}

void lmm3_keep_path(lmm3_file *fb, const mm3_file *f) {
  const char *p = mm3_file_path(f);
  size_t n = p ? strlen(p) : 0;
  if (n >= sizeof fb->path) n = sizeof fb->path - 1;
  if (n) memcpy(fb->path, p, n);
  fb->path[n] = 0;
}

int lmm3_truncated_error(lua_State *L, lmm3_file *fb) {
  return luaL_error(L, "%s: file was truncated by another program (its lost pages read as zeros); close it",
                    mm3_file_path(fb->f));
}

/* While a table is copied into a scratch copy of a struct or array, the
   containers it names are set aside here and assigned after the copy. */
#define PATH_MAX_DEPTH 32

typedef struct fillctx {
  int defer;      /* stack index of the list of {desc, value, offset [, path to it]}; 0: the
                     value's type holds no container, so nothing is set aside */
  uint8_t *sbase; /* the scratch copy: offsets are relative to it */
  int depth;      /* how deep inside the value being stored the fill is */
  int keys[PATH_MAX_DEPTH]; /* stack indexes of the keys that led there */
  int mapkey;     /* keys[0] is the map key whose value this is */
} fillctx;

/* Push the path inside the value being stored that led to where the fill
   is (" element 3 field 'v'"), then prefix (when not NULL) before it. */
static const char *push_path(lua_State *L, const char *prefix, const fillctx *cx) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (prefix) luaL_addstring(&b, prefix);
  for (int i = 0; i < cx->depth && i < PATH_MAX_DEPTH; i++) {
    if (i == 0 && cx->mapkey) {
      if (lua_type(L, cx->keys[0]) == LUA_TNUMBER)
        lua_pushfstring(L, " value of key %I", (lua_Integer)lua_tointeger(L, cx->keys[0]));
      else
        lua_pushfstring(L, " value of key '%s'", lua_tostring(L, cx->keys[0]));
    } else if (lua_type(L, cx->keys[i]) == LUA_TNUMBER)
      lua_pushfstring(L, " element %I", (lua_Integer)lua_tointeger(L, cx->keys[i]));
    else
      lua_pushfstring(L, " field '%s'", lua_tostring(L, cx->keys[i]));
    luaL_addvalue(&b);
  }
  if (cx->depth > PATH_MAX_DEPTH) luaL_addstring(&b, " ...");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* where, and the path to the value an error about to be raised is about
   ("E field 'f' element 3 field 'v'"): built only then. */
static const char *at(lua_State *L, const char *where, const fillctx *cx) {
  return cx && cx->depth ? push_path(L, where, cx) : where;
}

static void set_from(lua_State *L, int vidx, int descidx, uint8_t *base, const char *where, lmm3_file *fb,
                     fillctx *cx);

/* The view at idx; raises for anything else, or a closed file. */
static lmm3_view *toview(lua_State *L, int idx) {
  lmm3_view *v = lmm3_view_or_null(L, idx);
  if (!v) luaL_typeerror(L, idx, "memmap3 view");
  if (LMM3_CLOSED(v->fb)) lmm3_closed_error(L, v->fb);
  if (v->fb->f->truncated) lmm3_truncated_error(L, v->fb);
  return v;
}

lmm3_view *lmm3_check_view(lua_State *L, int idx) { return toview(L, idx); }

/* A write to a read-only file: names the field (struct) or the element
   (array) at stack index 2, and the file. upv: the type name's upvalue. */
static void check_writable(lua_State *L, lmm3_view *v, int upv, const char *what) {
  if (v->fb->readonly) {
    const char *path = lua_pushstring(L, mm3_file_path(v->fb->f)); /* before any __tostring runs */
    luaL_error(L, "%s %s '%s': %s is open read-only", lua_tostring(L, lua_upvalueindex(upv)), what,
               luaL_tolstring(L, 2, NULL), path);
  }
}

void lmm3_push_view(lua_State *L, int fileidx, lmm3_file *fb, uint8_t *p, int meta) {
  fileidx = lua_absindex(L, fileidx);
  meta = lua_absindex(L, meta);
  const lmm3_tinfo *ti = lmm3_tinfo_of(L, meta); /* (the metatable keeps it alive) */
  int nuv = (ti ? ti->nuv : 2) + 1; /* the last: its type's metatable, kept (see lmm3_view_or_null) */
  lmm3_view *v = lua_newuserdatauv(L, sizeof *v, nuv);
  v->magic = LMM3_VIEW_MAGIC;
  v->root = 0;
  v->p = p;
  v->fb = fb;
  v->ti = ti;
  lua_pushvalue(L, meta);
  lua_setiuservalue(L, -2, nuv);
  lua_pushvalue(L, meta);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, fileidx);
  lua_setiuservalue(L, -2, 1);
}

/* ---- scalars ---- */

static void push_u128(lua_State *L, uint64_t lo, uint64_t hi, int is_signed) {
  int neg = is_signed && (int64_t)hi < 0;
  if (!neg && hi == 0 && lo <= (uint64_t)LUA_MAXINTEGER) {
    lua_pushinteger(L, (lua_Integer)lo);
    return;
  }
  if (neg && hi == ~(uint64_t)0 && (int64_t)lo < 0) {
    lua_pushinteger(L, (lua_Integer)lo);
    return;
  }
  /* Too wide for a Lua integer: its exact decimal digits as a string. */
  u128 v = ((u128)hi << 64) | lo;
  if (neg) v = ~v + 1;
  char buf[48], *e = buf + sizeof buf, *s = e;
  do {
    *--s = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  if (neg) *--s = '-';
  lua_pushlstring(L, s, (size_t)(e - s));
}

static int utf8_encode(char *buf, uint32_t cp) {
  if (cp < 0x80) { buf[0] = (char)cp; return 1; }
  if (cp < 0x800) { buf[0] = (char)(0xC0 | (cp >> 6)); buf[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    buf[0] = (char)(0xE0 | (cp >> 12)); buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  buf[0] = (char)(0xF0 | (cp >> 18)); buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); buf[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decode one code point; returns its length, or 0 if s is not valid UTF-8
   (overlong forms, surrogates and values past U+10FFFF are invalid). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned c = s[0];
  size_t len;
  uint32_t v, min;
  if (c < 0x80) { *cp = c; return 1; }
  if (c < 0xC2) return 0;
  if (c < 0xE0) { len = 2; v = c & 0x1F; min = 0x80; }
  else if (c < 0xF0) { len = 3; v = c & 0x0F; min = 0x800; }
  else if (c < 0xF5) { len = 4; v = c & 0x07; min = 0x10000; }
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

static int utf8_valid(const char *s, size_t n) {
  uint32_t cp;
  for (size_t i = 0; i < n;) {
    if ((unsigned char)s[i] < 0x80) { i++; continue; }
    size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (!k) return 0;
    i += k;
  }
  return 1;
}

/* Load n <= 8 bytes as store_small stores them: one load when n is 1, 2,
   4 or 8 and p is aligned to it. */
static void load_small(void *dst, const uint8_t *p, uint32_t n) {
  if (((uintptr_t)p & (n - 1)) == 0) {
    switch (n) {
      case 1: { uint8_t x = __atomic_load_n(p, __ATOMIC_RELAXED); memcpy(dst, &x, 1); return; }
      case 2: { uint16_t x = __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED); memcpy(dst, &x, 2); return; }
      case 4: { uint32_t x = __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_RELAXED); memcpy(dst, &x, 4); return; }
      case 8: { uint64_t x = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_RELAXED); memcpy(dst, &x, 8); return; }
      default: break;
    }
  }
  memcpy(dst, p, n);
}

/* Store n <= 8 bytes: one store when n is 1, 2, 4 or 8 and p is aligned to
   it (numbers always are; a string<N> or bytes<N> when its offset is a
   multiple of N), so that a reader in another process sees the old or the
   new value, never a mix. */
static void store_small(uint8_t *p, const uint8_t *src, uint32_t n) {
  if (((uintptr_t)p & (n - 1)) == 0) {
    switch (n) {
      case 1: __atomic_store_n(p, src[0], __ATOMIC_RELAXED); return;
      case 2: { uint16_t x; memcpy(&x, src, 2); __atomic_store_n((uint16_t *)(void *)p, x, __ATOMIC_RELAXED); return; }
      case 4: { uint32_t x; memcpy(&x, src, 4); __atomic_store_n((uint32_t *)(void *)p, x, __ATOMIC_RELAXED); return; }
      case 8: { uint64_t x; memcpy(&x, src, 8); __atomic_store_n((uint64_t *)(void *)p, x, __ATOMIC_RELAXED); return; }
      default: break;
    }
  }
  memcpy(p, src, n);
}

/* Push n bytes of mapped memory another process may be writing, cut at the
   first NUL if cut: the bytes are copied once, then measured and interned
   from the copy. Lua hashes a short string as it interns it; bytes that
   changed between its hash and its copy would make a string unequal to
   itself. */
static void push_copied(lua_State *L, const void *p, size_t n, int cut) {
  char c[64]; /* more than Lua's longest short string (40 bytes) */
  if (n <= sizeof c) {
    memcpy(c, p, n);
    const char *z = cut ? memchr(c, 0, n) : NULL;
    lua_pushlstring(L, c, z ? (size_t)(z - c) : n);
  } else if (!cut) { /* a long string: Lua copies it first, hashes the copy */
    lua_pushlstring(L, p, n);
  } else { /* measured on a copy too */
    luaL_Buffer b;
    char *d = luaL_buffinitsize(L, &b, n);
    memcpy(d, p, n);
    const char *z = memchr(d, 0, n);
    luaL_pushresultsize(&b, z ? (size_t)(z - d) : n);
  }
}

static inline void push_scalar(lua_State *L, const uint8_t *p, int code, uint32_t size) {
  switch (code) {
    case LMM3_U8: lua_pushinteger(L, *p); break;
    case LMM3_I8: lua_pushinteger(L, (int8_t)*p); break;
    case LMM3_U16: { uint16_t x; memcpy(&x, p, 2); lua_pushinteger(L, x); break; }
    case LMM3_I16: { int16_t x; memcpy(&x, p, 2); lua_pushinteger(L, x); break; }
    case LMM3_U32: { uint32_t x; memcpy(&x, p, 4); lua_pushinteger(L, x); break; }
    case LMM3_I32: { int32_t x; memcpy(&x, p, 4); lua_pushinteger(L, x); break; }
    case LMM3_U64:
    case LMM3_I64: { int64_t x; memcpy(&x, p, 8); lua_pushinteger(L, (lua_Integer)x); break; }
    case LMM3_F32: { float x; memcpy(&x, p, 4); lua_pushnumber(L, (lua_Number)x); break; }
    case LMM3_F64: { double x; memcpy(&x, p, 8); lua_pushnumber(L, (lua_Number)x); break; }
    case LMM3_BOOL: lua_pushboolean(L, *p != 0); break;
    case LMM3_CHAR: {
      uint32_t cp;
      char buf[4];
      memcpy(&cp, p, 4);
      if (cp == 0) { lua_pushliteral(L, ""); break; } /* an unset char reads as "" */
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD; /* damaged: U+FFFD */
      lua_pushlstring(L, buf, (size_t)utf8_encode(buf, cp));
      break;
    }
    case LMM3_U128:
    case LMM3_I128: {
      uint64_t lo, hi;
      memcpy(&lo, p, 8);
      memcpy(&hi, p + 8, 8);
      push_u128(L, lo, hi, code == LMM3_I128);
      break;
    }
    case LMM3_STRING:
    case LMM3_BYTES: {
      /* another process may be writing these bytes (push_copied) */
      if (size <= 8) { /* as store_small wrote it: one load */
        char c[8];
        load_small(c, p, size);
        const char *z = code == LMM3_STRING ? memchr(c, 0, size) : NULL;
        lua_pushlstring(L, c, z ? (size_t)(z - c) : size);
        break;
      }
      push_copied(L, p, size, code == LMM3_STRING);
      break;
    }
    default: luaL_error(L, "memmap3: bad type code %d", code);
  }
}

/* Push the name of enum value x from the names list on the stack top (nil
   when no name stands for x, a stored value other code wrote included). */
static int name_of(lua_State *L, lua_Integer x) {
  if (x < 0 || x >= LUA_MAXINTEGER) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_rawgeti(L, -1, x + 1);
}

void lmm3_push_mapped(lua_State *L, const void *p, size_t n) { push_copied(L, p, n, 0); }

void lmm3_push_scalar(lua_State *L, const uint8_t *p, int code, uint32_t size) {
  push_scalar(L, p, code, size);
}

/* Push the n scalars at p, p + stride, ... (the stack has room): one switch,
   then a plain loop for the common numeric types. */
#define PUSH_EACH(T, push)                          \
  for (lua_Integer i = 0; i < n; i++, p += stride) { \
    T x_;                                           \
    memcpy(&x_, p, sizeof x_);                      \
    push(L, x_);                                    \
  }                                                 \
  return
void lmm3_push_scalars(lua_State *L, const uint8_t *p, lua_Integer n, size_t stride, int code, uint32_t size) {
  switch (code) {
    case LMM3_F64: PUSH_EACH(double, lua_pushnumber);
    case LMM3_F32: PUSH_EACH(float, lua_pushnumber);
    case LMM3_I64: case LMM3_U64: PUSH_EACH(int64_t, lua_pushinteger);
    case LMM3_I32: PUSH_EACH(int32_t, lua_pushinteger);
    case LMM3_U32: PUSH_EACH(uint32_t, lua_pushinteger);
    case LMM3_I16: PUSH_EACH(int16_t, lua_pushinteger);
    case LMM3_U16: PUSH_EACH(uint16_t, lua_pushinteger);
    case LMM3_I8: PUSH_EACH(int8_t, lua_pushinteger);
    case LMM3_U8: PUSH_EACH(uint8_t, lua_pushinteger);
    default:
      for (lua_Integer i = 0; i < n; i++, p += stride) push_scalar(L, p, code, size);
  }
}
#undef PUSH_EACH

/* Parse a decimal or 0x-hex string into a 128-bit value. */
static const char *parse_u128(const char *s, u128 *out, int *neg) {
  u128 v = 0, lim = ~(u128)0;
  int base = 10, any = 0;
  *neg = 0;
  if (*s == '-') *neg = 1, s++;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s += 2;
  for (; *s; s++) {
    int d;
    if (*s >= '0' && *s <= '9') d = *s - '0';
    else if (base == 16 && *s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
    else if (base == 16 && *s >= 'A' && *s <= 'F') d = *s - 'A' + 10;
    else if (*s == '_') continue;
    else return "is not a decimal or 0x-hex integer";
    if (v > (lim - (unsigned)d) / (unsigned)base) return "does not fit in 128 bits";
    v = v * (unsigned)base + (unsigned)d;
    any = 1;
  }
  if (!any) return "is not a decimal or 0x-hex integer";
  *out = v;
  return NULL;
}

/* Store the Lua value at idx as a scalar. Returns NULL, or the reason it was
   refused (nothing is written then). */
const char *lmm3_set_scalar(lua_State *L, uint8_t *p, int code, uint32_t size, int idx) {
  int t = lua_type(L, idx);
  switch (code) {
    case LMM3_U8: case LMM3_I8: case LMM3_U16: case LMM3_I16:
    case LMM3_U32: case LMM3_I32: case LMM3_U64: case LMM3_I64: {
      int isint;
      if (t != LUA_TNUMBER) return lua_pushfstring(L, "expected an integer, got %s", luaL_typename(L, idx));
      lua_Integer v = lua_tointegerx(L, idx, &isint);
      if (!isint) return lua_pushfstring(L, "expected an integer, got %f", lua_tonumber(L, idx));
      /* the type's range (u64 and i64 take any integer: u64 wraps, as "J" does) and width */
      const char *name = NULL;
      lua_Integer lo = 0, hi = 0;
      int width = 8;
      switch (code) {
        case LMM3_U8: name = "u8", lo = 0, hi = 0xFF, width = 1; break;
        case LMM3_I8: name = "i8", lo = -128, hi = 127, width = 1; break;
        case LMM3_U16: name = "u16", lo = 0, hi = 0xFFFF, width = 2; break;
        case LMM3_I16: name = "i16", lo = -32768, hi = 32767, width = 2; break;
        case LMM3_U32: name = "u32", lo = 0, hi = 0xFFFFFFFFLL, width = 4; break;
        case LMM3_I32: name = "i32", lo = INT32_MIN, hi = INT32_MAX, width = 4; break;
        default: break;
      }
      if (name && (v < lo || v > hi)) return lua_pushfstring(L, "%I is out of range for %s (%I..%I)", v, name, lo, hi);
      if (width == 1) {
        *p = (uint8_t)v;
      } else if (width == 2) {
        uint16_t x = (uint16_t)v;
        memcpy(p, &x, 2);
      } else if (width == 4) {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, 4);
      } else {
        int64_t x = (int64_t)v;
        memcpy(p, &x, 8);
      }
      return NULL;
    }
    case LMM3_F32: {
      if (t != LUA_TNUMBER) return lua_pushfstring(L, "expected a number, got %s", luaL_typename(L, idx));
      double d = (double)lua_tonumber(L, idx);
      /* FLT_MAX + half an ulp: from there on a double rounds to inf. Infinities
         and NaN are stored as they are; a finite value that would become one
         is refused. */
      const double f32_inf = (double)FLT_MAX + ldexp(1.0, 103);
      if ((d >= f32_inf || d <= -f32_inf) && !isinf(d)) return lua_pushfstring(L, "%f is out of range for f32", d);
      float x = (float)d;
      memcpy(p, &x, 4);
      return NULL;
    }
    case LMM3_F64: {
      if (t != LUA_TNUMBER) return lua_pushfstring(L, "expected a number, got %s", luaL_typename(L, idx));
      double x = (double)lua_tonumber(L, idx);
      memcpy(p, &x, 8);
      return NULL;
    }
    case LMM3_BOOL:
      if (t != LUA_TBOOLEAN) return lua_pushfstring(L, "expected a boolean, got %s", luaL_typename(L, idx));
      *p = (uint8_t)lua_toboolean(L, idx);
      return NULL;
    case LMM3_CHAR: {
      size_t n;
      uint32_t cp;
      if (t != LUA_TSTRING) return lua_pushfstring(L, "expected a one-character string, got %s", luaL_typename(L, idx));
      const char *s = lua_tolstring(L, idx, &n);
      if (n == 0) { memset(p, 0, 4); return NULL; } /* "" clears it */
      if (utf8_decode((const unsigned char *)s, n, &cp) != n)
        return "expected exactly one UTF-8 character";
      /* (stored, it would read back as the unset char's "", as strings
         refuse NUL for the padding's sake) */
      if (cp == 0) return "a char cannot hold NUL (\"\" clears it)";
      memcpy(p, &cp, 4);
      return NULL;
    }
    case LMM3_U128:
    case LMM3_I128: {
      u128 v;
      int neg;
      if (t == LUA_TNUMBER) {
        int isint;
        lua_Integer i = lua_tointegerx(L, idx, &isint);
        if (!isint) return lua_pushfstring(L, "expected an integer, got %f", lua_tonumber(L, idx));
        neg = i < 0;
        v = neg ? (u128)(-(i + 1)) + 1 : (u128)i;
      } else if (t == LUA_TSTRING) {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        if (strlen(str) != len) return "a 128-bit integer string contains a NUL byte";
        const char *why = parse_u128(str, &v, &neg);
        if (why) return lua_pushfstring(L, "'%s' %s", lua_tostring(L, idx), why);
      } else {
        return lua_pushfstring(L, "expected an integer or a decimal string, got %s", luaL_typename(L, idx));
      }
      if (code == LMM3_U128 && neg && v) return "negative value for an unsigned 128-bit field";
      if (code == LMM3_I128 && v > (neg ? (u128)1 << 127 : ((u128)1 << 127) - 1))
        return "out of range for i128";
      if (neg) v = ~v + 1;
      uint64_t lo = (uint64_t)v, hi = (uint64_t)(v >> 64);
      memcpy(p, &lo, 8);
      memcpy(p + 8, &hi, 8);
      return NULL;
    }
    case LMM3_STRING:
    case LMM3_BYTES: {
      size_t n;
      if (t != LUA_TSTRING) return lua_pushfstring(L, "expected a string, got %s", luaL_typename(L, idx));
      const char *s = lua_tolstring(L, idx, &n);
      if (n > size) return lua_pushfstring(L, "string of %I bytes is longer than its capacity (%d bytes)",
                                           (lua_Integer)n, (int)size);
      if (code == LMM3_STRING) {
        if (memchr(s, 0, n)) return "string contains a NUL byte";
        if (!utf8_valid(s, n)) return "string is not valid UTF-8";
      }
      memcpy(p, s, n);
      memset(p + n, 0, size - n);
      return NULL;
    }
  }
  return "unsupported type";
}

/* ---- descriptors ---- */

static lua_Integer desc_int(lua_State *L, int descidx, int field) {
  lua_rawgeti(L, descidx, field);
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static const char *type_name(lua_State *L, int upv) {
  return lua_tostring(L, lua_upvalueindex(upv));
}

/* The cache of child views of the view at idx (created on first use). */
static void push_cache(lua_State *L, int idx) {
  if (lua_getiuservalue(L, idx, 2) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 2);
}

/* Push the value described by the complex descriptor at descidx, at base.
   key (stack index) identifies the child in the view's cache. */
static void push_complex(lua_State *L, int viewidx, lmm3_view *v, int descidx, uint8_t *base, int key) {
  /* Fast path first: a child view made before (no descriptor decoding). */
  if (lua_getiuservalue(L, viewidx, 2) == LUA_TTABLE) {
    lua_pushvalue(L, key);
    if (lua_rawget(L, -2) != LUA_TNIL) {
      lua_remove(L, -2);
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  int code = (int)desc_int(L, descidx, LMM3_D_CODE);
  uint8_t *p = base + desc_int(L, descidx, LMM3_D_OFFSET);
  switch (code) {
    case LMM3_VALUE: {
      mm3_ctype ct = {0};
      ct.kind = MM3_VALUE;
      ct.cap = (uint64_t)desc_int(L, descidx, LMM3_D_META);
      mm3_ctype_init(&ct);
      lmm3_value_push(L, v->fb->f, p, &ct);
      return;
    }
    case LMM3_STRUCT:
    case LMM3_ARRAY:
    case LMM3_VEC: case LMM3_RING: case LMM3_SARRAY: case LMM3_FMAP: case LMM3_HMAP: case LMM3_SEG:
    case LMM3_ATOMIC: {
      push_cache(L, viewidx);
      lua_getiuservalue(L, viewidx, 1); /* the File */
      if (code == LMM3_ATOMIC) {
        lmm3_push_atomic(L, -1, v->fb, p, (int)desc_int(L, descidx, LMM3_D_BASE), key);
      } else {
        lua_rawgeti(L, descidx, LMM3_D_META);
        lmm3_push_view(L, -2, v->fb, p, -1);
        lua_remove(L, -2);
        if (LMM3_IS_CONTAINER(code) || code == LMM3_ARRAY) {
          /* its name, for error messages: "inv", "grid[2]", "log[]" */
          int top = lua_gettop(L);
          const char *parent = NULL;
          if (v->ti && (LMM3_IS_CONTAINER(v->ti->kind) || v->ti->kind == LMM3_ARRAY)) {
            lua_getiuservalue(L, viewidx, 3);
            parent = lua_tostring(L, -1);
          }
          if (lua_type(L, key) == LUA_TSTRING) lua_pushvalue(L, key);
          else if (lua_isinteger(L, key)) lua_pushfstring(L, "%s[%I]", parent ? parent : "", lua_tointeger(L, key));
          else lua_pushfstring(L, "%s[]", parent ? parent : "");
          lua_setiuservalue(L, top, 3);
          lua_settop(L, top);
        }
      }
      lua_remove(L, -2); /* the File */
      lua_pushvalue(L, key);
      lua_pushvalue(L, -2);
      lua_rawset(L, -4);
      lua_remove(L, -2); /* the cache */
      return;
    }
    case LMM3_ENUM: {
      int size = (int)desc_int(L, descidx, LMM3_D_SIZE);
      lua_Integer x;
      if (size == 1) x = *p;
      else if (size == 2) { uint16_t y; memcpy(&y, p, 2); x = y; }
      else if (size == 4) { uint32_t y; memcpy(&y, p, 4); x = y; }
      else { int64_t y; memcpy(&y, p, 8); x = y; }
      lua_rawgeti(L, descidx, LMM3_D_NAMES);
      if (name_of(L, x) == LUA_TNIL) {
        lua_pop(L, 2);
        lua_pushinteger(L, x); /* a value no name stands for (written by other code) */
      } else {
        lua_remove(L, -2);
      }
      return;
    }
    default:
      lmm3_push_scalar(L, p, code, (uint32_t)desc_int(L, descidx, LMM3_D_SIZE));
  }
}

static void push_deep(lua_State *L, mm3_file *f, uint8_t *p, int meta);
static int copy_view(lua_State *L);
static void push_desc_copy(lua_State *L, mm3_file *f, int descidx, uint8_t *base);

void lmm3_push_copy(lua_State *L, mm3_file *f, int64_t edesc, int descidx, uint8_t *p) {
  if (edesc >= 0) push_scalar(L, p, (int)(edesc & 0xFF), (uint32_t)((edesc >> 8) & 0xFFFFFF));
  else push_desc_copy(L, f, lua_absindex(L, descidx), p);
}

void lmm3_push_elem(lua_State *L, int viewidx, int64_t edesc, int descidx, uint8_t *p) {
  if (edesc >= 0) {
    push_scalar(L, p, (int)(edesc & 0xFF), (uint32_t)((edesc >> 8) & 0xFFFFFF));
    return;
  }
  viewidx = lua_absindex(L, viewidx);
  descidx = lua_absindex(L, descidx);
  lua_pushlightuserdata(L, p); /* the cache key of a child view: its address */
  push_complex(L, viewidx, lua_touserdata(L, viewidx), descidx, p, lua_gettop(L));
  lua_remove(L, -2);
}

int lmm3_encode_defer(lua_State *L, int vidx, int64_t edesc, int descidx, uint8_t *buf, size_t size,
                      const char *where) {
  return lmm3_encode_at(L, vidx, edesc, descidx, buf, size, where, 0, 0);
}

int lmm3_encode_at(lua_State *L, int vidx, int64_t edesc, int descidx, uint8_t *buf, size_t size,
                   const char *where, int posidx, int mapkey) {
  memset(buf, 0, size);
  /* errors name the element's position or key (posidx) after where: the
     path is built only then */
  fillctx path = {.defer = 0, .sbase = buf, .depth = posidx ? 1 : 0, .keys = {posidx}, .mapkey = mapkey};
  if (edesc >= 0) {
    const char *why = lmm3_set_scalar(L, buf, (int)(edesc & 0xFF), (uint32_t)((edesc >> 8) & 0xFFFFFF), vidx);
    if (why) luaL_error(L, "%s: %s", at(L, where, &path), why);
    return 0;
  }
  vidx = lua_absindex(L, vidx);
  descidx = lua_absindex(L, descidx);
  int code = (int)desc_int(L, descidx, LMM3_D_CODE), inside = LMM3_IS_CONTAINER(code);
  if (code == LMM3_STRUCT || code == LMM3_ARRAY) { /* a container anywhere inside (see init.lua) */
    lua_rawgeti(L, descidx, LMM3_D_META);
    inside = lua_getfield(L, -1, "__mm3keep") == LUA_TTABLE;
    lua_pop(L, 2);
  }
  if (!inside) { /* nothing will be set aside: no list */
    set_from(L, vidx, descidx, buf, where, NULL, &path);
    return 0;
  }
  lua_newtable(L);
  fillctx cx = path;
  cx.defer = lua_gettop(L);
  set_from(L, vidx, descidx, buf, where, NULL, &cx);
  if (lua_rawlen(L, cx.defer) > 0) return cx.defer;
  lua_pop(L, 1);
  return 0;
}

/* Plain Lua copy of the value at p described by desc (int or table) at descidx. */
static void push_desc_copy(lua_State *L, mm3_file *f, int descidx, uint8_t *base) {
  if (lua_type(L, descidx) == LUA_TNUMBER) {
    lua_Integer d = lua_tointeger(L, descidx);
    lmm3_push_scalar(L, base + (d >> 32), (int)(d & 0xFF), (uint32_t)((d >> 8) & 0xFFFFFF));
    return;
  }
  int code = (int)desc_int(L, descidx, LMM3_D_CODE);
  uint8_t *p = base + desc_int(L, descidx, LMM3_D_OFFSET);
  if (code == LMM3_STRUCT || code == LMM3_ARRAY) {
    lua_rawgeti(L, descidx, LMM3_D_META);
    push_deep(L, f, p, lua_gettop(L));
    lua_remove(L, -2);
  } else if (LMM3_IS_CONTAINER(code)) {
    lua_rawgeti(L, descidx, LMM3_D_META);
    lmm3_cont_copy(L, f, p, lua_gettop(L));
    lua_remove(L, -2);
  } else if (code == LMM3_VALUE) {
    mm3_ctype ct = {0};
    ct.kind = MM3_VALUE;
    ct.cap = (uint64_t)desc_int(L, descidx, LMM3_D_META);
    mm3_ctype_init(&ct);
    lmm3_value_push(L, f, p, &ct);
  } else if (code == LMM3_ATOMIC) {
    int base_code = (int)desc_int(L, descidx, LMM3_D_BASE);
    int size = (int)desc_int(L, descidx, LMM3_D_SIZE);
    uint64_t x = mm3_atomic_load(p, size);
    uint8_t tmp[8];
    memcpy(tmp, &x, 8);
    lmm3_push_scalar(L, tmp, base_code, (uint32_t)size);
  } else if (code != LMM3_ENUM) {
    /* a number, string or bytes field too big, or too far, for a packed
       descriptor (2^24 bytes, offset 2^31) */
    lmm3_push_scalar(L, p, code, (uint32_t)desc_int(L, descidx, LMM3_D_SIZE));
  } else {
    /* enums: reuse push_complex's decoding without a view */
    int size = (int)desc_int(L, descidx, LMM3_D_SIZE);
    lua_Integer x;
    if (size == 1) x = *p;
    else if (size == 2) { uint16_t y; memcpy(&y, p, 2); x = y; }
    else if (size == 4) { uint32_t y; memcpy(&y, p, 4); x = y; }
    else { int64_t y; memcpy(&y, p, 8); x = y; }
    lua_rawgeti(L, descidx, LMM3_D_NAMES);
    if (name_of(L, x) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushinteger(L, x);
    }
    lua_remove(L, -2);
  }
}

/* Plain Lua table from the struct or array with metatable at meta. */
static void push_deep(lua_State *L, mm3_file *f, uint8_t *p, int meta) {
  luaL_checkstack(L, 8, "memmap3: value nested too deeply");
  lua_getfield(L, meta, "__mm3kind");
  int is_array = lua_tointeger(L, -1) == LMM3_ARRAY;
  lua_pop(L, 1);
  if (is_array) {
    lua_getfield(L, meta, "__mm3n");
    lua_Integer n = lua_tointeger(L, -1);
    lua_getfield(L, meta, "__mm3esize");
    lua_Integer esize = lua_tointeger(L, -1);
    lua_getfield(L, meta, "__mm3elem");
    int d = lua_gettop(L);
    if (lua_type(L, d) == LUA_TNUMBER) {
      lua_Integer dd = lua_tointeger(L, d);
      int code = (int)(dd & 0xFF);
      uint32_t size = (uint32_t)((dd >> 8) & 0xFFFFFF);
      lua_Integer m = lmm3_list_begin(L, n);
      lmm3_push_scalars(L, p, m, (size_t)esize, code, size);
      lmm3_list_end(L, m);
      for (lua_Integer i = m; i < n; i++) {
        lmm3_push_scalar(L, p + i * esize, code, size);
        lua_rawseti(L, -2, i + 1);
      }
    } else {
      lua_createtable(L, (int)(n > 1 << 24 ? 1 << 24 : n), 0);
      for (lua_Integer i = 0; i < n; i++) {
        push_desc_copy(L, f, d, p + i * esize);
        lua_rawseti(L, -2, i + 1);
      }
    }
    lua_replace(L, d - 2);
    lua_settop(L, d - 2);
    return;
  }
  lua_getfield(L, meta, "__mm3order");
  lua_getfield(L, meta, "__mm3fields");
  int order = lua_gettop(L) - 1, fields = order + 1;
  lua_Integer n = (lua_Integer)lua_rawlen(L, order);
  lua_createtable(L, 0, (int)n);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, order, i);   /* name */
    lua_pushvalue(L, -1);
    lua_rawget(L, fields);      /* desc */
    push_desc_copy(L, f, lua_gettop(L), p);
    lua_remove(L, -2);
    lua_rawset(L, -3);
  }
  lua_replace(L, order);
  lua_settop(L, order);
}

/* ---- setting from Lua values ---- */

/* Fill the struct or array (metatable at meta) at p from the table at tidx.
   p points into a scratch copy, so an error leaves the file untouched. */
static void fill_from_table(lua_State *L, int tidx, int meta, uint8_t *p, const char *where, fillctx *cx) {
  luaL_checkstack(L, 8, "memmap3: value nested too deeply");
  lua_getfield(L, meta, "__mm3kind");
  int is_array = lua_tointeger(L, -1) == LMM3_ARRAY;
  lua_pop(L, 1);
  lua_getfield(L, meta, "__name");
  const char *tname = lua_tostring(L, -1);
  int top = lua_gettop(L);
  if (is_array) {
    lua_getfield(L, meta, "__mm3n");
    lua_Integer n = lua_tointeger(L, -1);
    lua_getfield(L, meta, "__mm3esize");
    lua_Integer esize = lua_tointeger(L, -1);
    lua_getfield(L, meta, "__mm3elem");
    int d = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
      int isint;
      lua_Integer i = lua_tointegerx(L, -2, &isint);
      if (lua_type(L, -2) != LUA_TNUMBER || !isint || i < 1 || i > n)
        luaL_error(L, "%s: %s index %s is out of range (1..%I)", at(L, where, cx), tname,
                   luaL_tolstring(L, -2, NULL), n);
      if (cx->depth < PATH_MAX_DEPTH) cx->keys[cx->depth] = lua_gettop(L) - 1;
      cx->depth++;
      set_from(L, lua_gettop(L), d, p + (i - 1) * esize, where, NULL, cx);
      cx->depth--;
      lua_pop(L, 1);
    }
  } else {
    lua_getfield(L, meta, "__mm3fields");
    int fields = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, tidx)) {
      lua_pushvalue(L, -2);
      if (lua_type(L, -1) != LUA_TSTRING || lua_rawget(L, fields) == LUA_TNIL)
        luaL_error(L, "%s: %s has no field '%s'", at(L, where, cx), tname, luaL_tolstring(L, -3, NULL));
      if (cx->depth < PATH_MAX_DEPTH) cx->keys[cx->depth] = lua_gettop(L) - 2;
      cx->depth++;
      set_from(L, lua_gettop(L) - 1, lua_gettop(L), p, where, NULL, cx);
      cx->depth--;
      lua_pop(L, 2);
    }
  }
  lua_settop(L, top - 1);
}

/* Write n bytes of live file data. An aligned write of up to 8 bytes is one
   store, which a crash cannot split; anything larger, and every write inside
   a transaction, goes through the undo log. fb NULL: a scratch copy. */
static void write_bytes(lua_State *L, lmm3_file *fb, uint8_t *dst, const void *src, size_t n, const char *where) {
  int mine = fb && mm3__txn_here(fb->f); /* not another thread's, on a shared handle */
  if (!fb || (!mine && n <= 8 && ((uintptr_t)dst & (n - 1)) == 0)) {
    if (n <= 8) store_small(dst, src, (uint32_t)n);
    else memcpy(dst, src, n);
    return;
  }
  int rc;
  if (mine) { /* this thread holds the lock: log and write */
    rc = mm3__log(fb->f, dst, n);
    if (!rc) memcpy(dst, src, n);
  } else {
    rc = mm3_file_write(fb->f, dst, src, n);
  }
  if (rc) luaL_error(L, "%s: %s", where, mm3_strerror(rc));
}

/* lmm3_set_scalar for live data (see write_bytes): returns why it refused. */
static const char *set_scalar_live(lua_State *L, lmm3_file *fb, uint8_t *p, int code, uint32_t size, int idx) {
  int mine = fb && mm3__txn_here(fb->f);
  if (!fb || (!mine && size <= 8)) {
    if (code == LMM3_I64 || code == LMM3_U64) { /* the common case, inline */
      int isint;
      lua_Integer x = lua_tointegerx(L, idx, &isint);
      if (isint && lua_type(L, idx) == LUA_TNUMBER) {
        memcpy(p, &x, 8);
        return NULL;
      }
    } else if (code == LMM3_F64 && lua_type(L, idx) == LUA_TNUMBER) {
      double x = (double)lua_tonumber(L, idx);
      memcpy(p, &x, 8);
      return NULL;
    }
    if (!fb) return lmm3_set_scalar(L, p, code, size, idx);
    /* Encoded aside, then stored at once: a reader in another process never
       sees half of it (a string<N> is its bytes and the zeros after them). */
    uint8_t tmp[8];
    const char *why = lmm3_set_scalar(L, tmp, code, size, idx);
    if (why) return why;
    store_small(p, tmp, size);
    return NULL;
  }
  if (mine && size <= 8) { /* in a transaction: validate, log, store */
    uint8_t tmp[8];
    const char *why = lmm3_set_scalar(L, tmp, code, size, idx);
    if (why) return why;
    int rc = mm3__log(fb->f, p, size);
    if (rc) return mm3_strerror(rc);
    store_small(p, tmp, size);
    return NULL;
  }
  uint8_t small[64];
  uint8_t *tmp = size <= sizeof small ? small : lua_newuserdatauv(L, size, 0);
  const char *why = lmm3_set_scalar(L, tmp, code, size, idx);
  if (why) return why;
  int rc = mm3_file_write(fb->f, p, tmp, size);
  if (rc) return mm3_strerror(rc);
  if (tmp != small) lua_pop(L, 1);
  return NULL;
}

/* The containers a table assignment keeps (the __mm3keep list at keep:
   offset, length, ...): their bytes from dst into the scratch copy. */
static void copy_kept(lua_State *L, int keep, uint8_t *scratch, const uint8_t *dst, size_t size) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, keep);
  for (lua_Integer i = 1; i + 1 <= n; i += 2) {
    lua_rawgeti(L, keep, i);
    lua_rawgeti(L, keep, i + 1);
    lua_Integer off = lua_tointeger(L, -2), len = lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (off >= 0 && len >= 0 && (uint64_t)off <= size && (uint64_t)len <= size - (uint64_t)off)
      memcpy(scratch + off, dst + off, (size_t)len);
  }
}

void lmm3_apply_deferred(lua_State *L, int list, lmm3_file *fb, uint8_t *dst, const char *where) {
  list = lua_absindex(L, list);
  lua_Integer n = (lua_Integer)lua_rawlen(L, list);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    int e = lua_gettop(L);
    lua_rawgeti(L, e, 1); /* desc */
    lua_rawgeti(L, e, 2); /* value */
    lua_rawgeti(L, e, 3); /* offset */
    /* the desc's own offset is relative to its parent: rebase on dst */
    uint8_t *base = dst + lua_tointeger(L, -1) - desc_int(L, e + 1, LMM3_D_OFFSET);
    const char *w = where;
    if (lua_rawgeti(L, e, 4) == LUA_TSTRING) w = lua_pushfstring(L, "%s%s", where, lua_tostring(L, -1));
    set_from(L, e + 2, e + 1, base, w, fb, NULL);
    lua_settop(L, e - 1);
  }
}

/* Whether an error message's first line holds a "chunk:line: " position
   (":12: "; a chunk name may hold colons itself: C:\x.lua, [string "o:f()"]). */
static int has_position(const char *msg) {
  for (const char *c = msg; *c && *c != '\n'; c++) {
    if (c[0] != ':' || !isdigit((unsigned char)c[1])) continue;
    const char *d = c + 1;
    while (isdigit((unsigned char)*d)) d++;
    if (d[0] == ':' && d[1] == ' ') return 1;
  }
  return 0;
}

void lmm3_in_txn(lua_State *L, lmm3_file *fb, int nargs, const char *where) {
  /* the call is made ready first (by the caller): nothing may raise between
     the begin and the protected call, or the lock would stay taken */
  if (LMM3_CLOSED(fb)) lmm3_closed_error(L, fb); /* by a hook or finalizer meanwhile */
  uint64_t sp;
  int rc = mm3_txn_begin(fb->f, &sp);
  if (rc) luaL_error(L, "%s: %s", where, mm3_strerror(rc));
  fb->txn_open++; /* a close from a hook or finalizer meanwhile is refused */
  int st = lua_pcall(L, nargs, 0, 0);
  if (fb->txn_open > 0) fb->txn_open--;
  if (st != LUA_OK) {
    if (fb->f) mm3_txn_rollback(fb->f, sp);
    /* raised in C under lua_pcall, where no line is known: the caller's
       (not on a memory error, nor on an error value that is not a string) */
    if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING && !has_position(lua_tostring(L, -1))) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    lua_error(L);
  }
  rc = mm3_txn_commit(fb->f);
  if (rc) luaL_error(L, "%s: %s", where, mm3_strerror(rc));
}

/* Copy-in through a scratch buffer: all or nothing. */
/* Run after the scratch copy is in place (inside a transaction): write it,
   then assign the containers set aside. Arguments: defer list, dst, fb,
   where, scratch, size. */
static int apply_deferred(lua_State *L) {
  uint8_t *dst = lua_touserdata(L, 2);
  lmm3_file *fb = lua_touserdata(L, 3);
  const char *where = lua_tostring(L, 4);
  uint8_t *scratch = lua_touserdata(L, 5);
  size_t size = (size_t)lua_tointeger(L, 6);
  if (lua_istable(L, 7)) copy_kept(L, 7, scratch, dst, size); /* as they are now, under the lock */
  write_bytes(L, fb, dst, scratch, size, where);
  lmm3_apply_deferred(L, 1, fb, dst, where);
  return 0;
}

static void set_aggregate(lua_State *L, int vidx, int meta, uint8_t *dst, const char *where, lmm3_file *fb,
                          fillctx *cx) {
  int entry = lua_gettop(L); /* restored on every return: the copy of a view below is left above it */
  lua_getfield(L, meta, "__mm3size");
  size_t size = (size_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  int has_containers = lua_getfield(L, meta, "__mm3keep") == LUA_TTABLE;
  lua_pop(L, 1);
  if (lua_type(L, vidx) == LUA_TUSERDATA) {
    /* another view of the same type */
    lmm3_view *src = lmm3_view_or_null(L, vidx);
    if (src && lua_getmetatable(L, vidx)) {
      int same = lua_rawequal(L, -1, meta);
      lua_pop(L, 1);
      if (same) {
        if (LMM3_CLOSED(src->fb)) lmm3_closed_error(L, src->fb);
        if (has_containers) {
          /* containers are copied by value, never by sharing their heap; the
             copy runs Lua (the list builder), where a hook may close the
             file: busy, as in mm.totable */
          lua_pushcfunction(L, copy_view);
          lua_pushvalue(L, vidx);
          src->fb->busy++;
          int st = lua_pcall(L, 1, 1, 0);
          src->fb->busy--;
          if (st != LUA_OK) lua_error(L);
          vidx = lua_gettop(L);
        } else if (fb) {
          uint8_t *copy = lua_newuserdatauv(L, size ? size : 1, 0);
          memcpy(copy, src->p, size);
          write_bytes(L, fb, dst, copy, size, where);
          lua_pop(L, 1);
          return;
        } else {
          memmove(dst, src->p, size);
          return;
        }
      }
    }
  }
  if (lua_type(L, vidx) != LUA_TTABLE) {
    lua_getfield(L, meta, "__name");
    luaL_error(L, "%s: expected a table for %s, got %s", at(L, where, cx), lua_tostring(L, -1),
               luaL_typename(L, vidx));
  }
  if (!fb) { /* inside a scratch copy already (what it sets aside holds its own values) */
    fill_from_table(L, vidx, meta, dst, where, cx);
    lua_settop(L, entry);
    return;
  }
  uint8_t *scratch = lua_newuserdatauv(L, size ? size : 1, 0);
  int sidx = lua_gettop(L);
  memset(scratch, 0, size);
  lua_newtable(L);
  fillctx mine = {.defer = lua_gettop(L), .sbase = scratch};
  fill_from_table(L, vidx, meta, scratch, where, &mine);
  /* Containers inside keep their contents unless the table names them:
     their bytes are taken from dst when it is written, not before the
     table was read (an append made meanwhile, by another process or by a
     finalizer, would be undone). */
  int keep = has_containers && lua_getfield(L, meta, "__mm3keep") == LUA_TTABLE ? lua_gettop(L) : 0;
  if (!keep && lua_rawlen(L, mine.defer) == 0) {
    if (LMM3_CLOSED(fb)) lmm3_closed_error(L, fb); /* by a hook while the table was read */
    write_bytes(L, fb, dst, scratch, size, where);
  } else {
    /* the kept bytes, the copy and the containers as one transaction */
    lua_pushcfunction(L, apply_deferred);
    lua_pushvalue(L, mine.defer);
    lua_pushlightuserdata(L, dst);
    lua_pushlightuserdata(L, fb);
    lua_pushstring(L, where);
    lua_pushvalue(L, sidx);
    lua_pushinteger(L, (lua_Integer)size);
    if (keep) lua_pushvalue(L, keep);
    else lua_pushnil(L);
    lmm3_in_txn(L, fb, 7, where);
  }
  lua_settop(L, entry);
}

static void set_enum(lua_State *L, int vidx, int descidx, uint8_t *p, const char *where, lmm3_file *fb,
                     const fillctx *cx) {
  int size = (int)desc_int(L, descidx, LMM3_D_SIZE);
  lua_Integer x = 0;
  if (lua_type(L, vidx) == LUA_TSTRING) {
    lua_rawgeti(L, descidx, LMM3_D_VALUES);
    lua_pushvalue(L, vidx);
    if (lua_rawget(L, -2) == LUA_TNIL)
      luaL_error(L, "%s: '%s' is not a name of this enum", at(L, where, cx), lua_tostring(L, vidx));
    x = lua_tointeger(L, -1);
    lua_pop(L, 2);
  } else {
    int isint = 0;
    if (lua_type(L, vidx) == LUA_TNUMBER) x = lua_tointegerx(L, vidx, &isint);
    if (!isint) luaL_error(L, "%s: expected an enum name, got %s", at(L, where, cx), luaL_typename(L, vidx));
    lua_rawgeti(L, descidx, LMM3_D_NAMES);
    if (name_of(L, x) == LUA_TNIL) luaL_error(L, "%s: %I is not a value of this enum", at(L, where, cx), x);
    lua_pop(L, 2);
  }
  uint8_t b[8];
  if (size == 1) b[0] = (uint8_t)x;
  else if (size == 2) { uint16_t y = (uint16_t)x; memcpy(b, &y, 2); }
  else if (size == 4) { uint32_t y = (uint32_t)x; memcpy(b, &y, 4); }
  else { int64_t y = x; memcpy(b, &y, 8); }
  write_bytes(L, fb, p, b, (size_t)size, where);
}

static void set_atomic(lua_State *L, int vidx, int descidx, uint8_t *p, const char *where, const fillctx *cx) {
  int base_code = (int)desc_int(L, descidx, LMM3_D_BASE);
  int size = (int)desc_int(L, descidx, LMM3_D_SIZE);
  uint8_t tmp[8] = {0};
  const char *why = lmm3_set_scalar(L, tmp, base_code, (uint32_t)size, vidx);
  if (why) luaL_error(L, "%s: %s", at(L, where, cx), why);
  uint64_t x;
  memcpy(&x, tmp, 8);
  mm3_atomic_store(p, size, x);
}

/* Set a container aside (see fillctx): p is its place in the scratch copy. */
static void defer(lua_State *L, fillctx *cx, int vidx, int descidx, uint8_t *p) {
  if (!cx->defer) luaL_error(L, "memmap3: a container inside a type that was said to hold none");
  lua_createtable(L, 3, 0);
  lua_pushvalue(L, descidx);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, vidx);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, (lua_Integer)(p - cx->sbase));
  lua_rawseti(L, -2, 3);
  if (cx->depth) { /* its errors name the path to it */
    push_path(L, NULL, cx);
    lua_rawseti(L, -2, 4);
  }
  lua_rawseti(L, cx->defer, (lua_Integer)lua_rawlen(L, cx->defer) + 1);
}

/* fb is the file when writing live data; NULL when filling a scratch copy,
   and then cx is where its containers are set aside. */
static void set_from(lua_State *L, int vidx, int descidx, uint8_t *base, const char *where, lmm3_file *fb,
                     fillctx *cx) {
  if (lua_type(L, descidx) == LUA_TNUMBER) {
    lua_Integer d = lua_tointeger(L, descidx);
    const char *why = set_scalar_live(L, fb, base + (d >> 32), (int)(d & 0xFF), (uint32_t)((d >> 8) & 0xFFFFFF), vidx);
    if (why) luaL_error(L, "%s: %s", at(L, where, cx), why);
    return;
  }
  int code = (int)desc_int(L, descidx, LMM3_D_CODE);
  uint8_t *p = base + desc_int(L, descidx, LMM3_D_OFFSET);
  switch (code) {
    case LMM3_STRUCT:
    case LMM3_ARRAY:
      lua_rawgeti(L, descidx, LMM3_D_META);
      set_aggregate(L, vidx, lua_gettop(L), p, where, fb, cx);
      lua_pop(L, 1);
      break;
    case LMM3_ENUM: set_enum(L, vidx, descidx, p, where, fb, cx); break;
    case LMM3_ATOMIC: set_atomic(L, vidx, descidx, p, where, cx); break;
    case LMM3_VEC: case LMM3_RING: case LMM3_SARRAY: case LMM3_FMAP: case LMM3_HMAP: case LMM3_SEG:
      if (!fb) { /* in a scratch copy: assigned once it is stored */
        defer(L, cx, vidx, descidx, p);
        break;
      }
      lmm3_container_assign(L, vidx, descidx, p, fb, where);
      break;
    case LMM3_VALUE: {
      mm3_ctype ct = {0};
      ct.kind = MM3_VALUE;
      ct.cap = (uint64_t)desc_int(L, descidx, LMM3_D_META);
      mm3_ctype_init(&ct);
      if (!fb && !ct.cap) {
        defer(L, cx, vidx, descidx, p);
        break;
      }
      int top = lua_gettop(L); /* (a path named is pushed) */
      lmm3_value_store(L, vidx, fb ? fb->f : NULL, p, &ct, cx && cx->depth ? at(L, where, cx) : where);
      lua_settop(L, top);
      break;
    }
    default: {
      const char *why = set_scalar_live(L, fb, p, code, (uint32_t)desc_int(L, descidx, LMM3_D_SIZE), vidx);
      if (why) luaL_error(L, "%s: %s", at(L, where, cx), why);
    }
  }
}

/* ---- struct views ---- */

static const lmm3_slot *probe(const lmm3_tinfo *ti, const char *k) {
  uint32_t h = (uint32_t)(((uintptr_t)k >> 3) * 0x9E3779B1u) & ti->mask;
  for (;; h = (h + 1) & ti->mask) {
    const lmm3_slot *s = &ti->slots[h];
    if (s->key == k) return s;
    if (!s->key) return NULL;
  }
}

/* The view at 1 for a metamethod of a struct or array (kind). Only its own
   metatable calls these metamethods (__metatable hides it from
   getmetatable), but the debug library can hand one any value, so the kind
   is checked too. */
/* The view at 1 for field and element reads and writes, whose common cases use
   the view's own type only (v->ti, kept alive by the view): its metatable
   is not compared with it, a cost on every access, until the metamethod
   turns to its upvalues (same_type). */
static inline lmm3_view *selfview_fast(lua_State *L, int kind) {
  lmm3_view *v = lmm3_view_unchecked(L, 1);
  if (!v || !v->ti || v->ti->kind != kind)
    luaL_typeerror(L, 1, kind == LMM3_STRUCT ? "memmap3 struct view" : "memmap3 array view");
  if (LMM3_CLOSED(v->fb)) lmm3_closed_error(L, v->fb);
  if (v->fb->f->truncated) lmm3_truncated_error(L, v->fb);
  return v;
}

/* Before a metamethod of view 1 uses its upvalues (its metatable's type):
   that type must be the view's own. */
static inline void same_type(lua_State *L, const lmm3_view *v) {
  const lmm3_tinfo *ti = v->ti;
  int ok = lmm3_view_or_null(L, 1) != NULL;
  if (ok && ti->kind == LMM3_STRUCT) { /* upvalue 1: the fields */
    ok = lmm3_up_is(L, 1, ti);
  } else if (ok) { /* arrays: 1 length, 2 element size, 3 element descriptor */
    ok = lua_tointeger(L, lua_upvalueindex(1)) == ti->n && lua_tointeger(L, lua_upvalueindex(2)) == ti->esize &&
         (ti->edesc >= 0 ? lua_type(L, lua_upvalueindex(3)) == LUA_TNUMBER &&
                               lua_tointeger(L, lua_upvalueindex(3)) == ti->edesc
                         : lmm3_up_is(L, 3, ti));
  }
  if (!ok) luaL_typeerror(L, 1, "memmap3 view of this type");
}

/* upvalues: 1 fields (name -> desc), 2 type name */
static int s_index(lua_State *L) {
  lmm3_view *v = selfview_fast(L, LMM3_STRUCT);
  if (lua_type(L, 2) == LUA_TSTRING) {
    /* Short strings are interned: the name's address identifies the field. */
    const lmm3_slot *s = probe(v->ti, lua_tostring(L, 2));
    if (s) {
      if (s->desc >= 0) {
        const uint8_t *q = v->p + (s->desc >> 32);
        int code = (int)(s->desc & 0xFF);
        if (code == LMM3_I64 || code == LMM3_U64) { /* the common cases, inline */
          int64_t x;
          memcpy(&x, q, 8);
          lua_pushinteger(L, (lua_Integer)x);
        } else if (code == LMM3_F64) {
          double x;
          memcpy(&x, q, 8);
          lua_pushnumber(L, (lua_Number)x);
        } else {
          push_scalar(L, q, code, (uint32_t)((s->desc >> 8) & 0xFFFFFF));
        }
        if (v->fb->f->truncated) lmm3_truncated_error(L, v->fb); /* this very read faulted */
        return 1;
      }
      if (lua_getiuservalue(L, 1, s->uv) != LUA_TNIL) return 1;
      lua_pop(L, 1);
      same_type(L, v);
      lua_pushvalue(L, 2);
      lua_rawget(L, lua_upvalueindex(1));
      push_complex(L, 1, v, lua_gettop(L), v->p, 2);
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, 1, s->uv);
      return 1;
    }
  }
  same_type(L, v);
  lua_pushvalue(L, 2);
  switch (lua_rawget(L, lua_upvalueindex(1))) {
    case LUA_TNUMBER: {
      lua_Integer d = lua_tointeger(L, -1);
      lmm3_push_scalar(L, v->p + (d >> 32), (int)(d & 0xFF), (uint32_t)((d >> 8) & 0xFFFFFF));
      return 1;
    }
    case LUA_TTABLE:
      push_complex(L, 1, v, lua_gettop(L), v->p, 2);
      return 1;
    default:
      if (lua_type(L, 2) != LUA_TSTRING) return 0 * (lua_pushnil(L), 0) + 1;
      return luaL_error(L, "%s has no field '%s'", type_name(L, 2), lua_tostring(L, 2));
  }
}

static int s_newindex(lua_State *L) {
  lmm3_view *v = selfview_fast(L, LMM3_STRUCT);
  check_writable(L, v, 2, "field");
  /* No type test: a number key converted to a string in place is refused
     below all the same. */
  const char *key = lua_tolstring(L, 2, NULL);
  if (key) {
    const lmm3_slot *s = probe(v->ti, key);
    if (s && s->desc >= 0) {
      int code = (int)(s->desc & 0xFF);
      if ((code == LMM3_I64 || code == LMM3_U64) && lua_isinteger(L, 3)) {
        lua_Integer x = lua_tointegerx(L, 3, NULL); /* the common case: one aligned store */
        uint8_t *p = v->p + (s->desc >> 32);
        if (mm3__txn_here(v->fb->f)) { /* this thread holds the lock: log, then store */
          int rc = mm3__log(v->fb->f, p, 8);
          if (rc)
            return luaL_error(L, "%s field '%s': %s", type_name(L, 2), lua_tostring(L, 2),
                              mm3_strerror(rc));
        }
        memcpy(p, &x, 8);
        return 0;
      }
      const char *why = set_scalar_live(L, v->fb, v->p + (s->desc >> 32), code,
                                        (uint32_t)((s->desc >> 8) & 0xFFFFFF), 3);
      if (why) return luaL_error(L, "%s field '%s': %s", type_name(L, 2), lua_tostring(L, 2), why);
      return 0;
    }
  }
  same_type(L, v);
  lua_pushvalue(L, 2);
  int t = lua_rawget(L, lua_upvalueindex(1));
  if (t == LUA_TNUMBER) {
    lua_Integer d = lua_tointeger(L, -1);
    const char *why = set_scalar_live(L, v->fb, v->p + (d >> 32), (int)(d & 0xFF), (uint32_t)((d >> 8) & 0xFFFFFF), 3);
    if (why) return luaL_error(L, "%s field '%s': %s", type_name(L, 2), lua_tostring(L, 2), why);
    return 0;
  }
  if (t != LUA_TTABLE)
    return luaL_error(L, "%s has no field '%s'", type_name(L, 2), luaL_tolstring(L, 2, NULL));
  const char *where = lua_pushfstring(L, "%s field '%s'", type_name(L, 2), lua_tostring(L, 2));
  set_from(L, 3, lua_gettop(L) - 1, v->p, where, v->fb, NULL);
  return 0;
}

/* __pairs iterator: fields in declaration order. upvalue 1: order list,
   upvalue 2: position of each name. */
static int s_next(lua_State *L) {
  lua_Integer pos = 0;
  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(2));
    pos = lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  if (lua_rawgeti(L, lua_upvalueindex(1), pos + 1) == LUA_TNIL) return 1;
  lua_pushvalue(L, -1);
  lua_gettable(L, 1); /* through __index */
  return 2;
}

static int s_pairs(lua_State *L) {
  toview(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushcclosure(L, s_next, 2);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  lua_pushnil(L);
  return 4;
}

static int s_len(lua_State *L) {
  toview(L, 1);
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
  return 1;
}

static int v_tostring(lua_State *L) {
  lmm3_view *v = lmm3_view_or_null(L, 1);
  if (!v || !lua_getmetatable(L, 1)) return luaL_typeerror(L, 1, "memmap3 view");
  lua_getfield(L, -1, "__name");
  if (LMM3_CLOSED(v->fb)) lua_pushfstring(L, "%s (closed file)", lua_tostring(L, -1));
  else lua_pushfstring(L, "%s: %p", lua_tostring(L, -1), (void *)v->p);
  return 1;
}

/* __close: closing a file's root view closes the file; other views keep
   nothing open of their own. */
static int v_close(lua_State *L) {
  lmm3_view *v = lmm3_view_or_null(L, 1);
  if (v && v->root) {
    lua_getiuservalue(L, 1, 1);
    lmm3_file_close(L, -1);
  }
  return 0;
}

/* Two views are equal when they show the same bytes as the same type. */
static int v_eq(lua_State *L) {
  lmm3_view *a = lmm3_view_or_null(L, 1), *b = lmm3_view_or_null(L, 2);
  int eq = 0;
  if (a && b && a->p == b->p && lua_getmetatable(L, 1) && lua_getmetatable(L, 2)) eq = lua_rawequal(L, -1, -2);
  lua_pushboolean(L, eq);
  return 1;
}

/* core.new_struct(name, fields, order, size) -> metatable */
static int l_new_struct(lua_State *L) {
  luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer size = luaL_checkinteger(L, 4);
  lua_createtable(L, 0, 16);
  int mt = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_setfield(L, mt, "__name");
  lua_pushinteger(L, LMM3_STRUCT);
  lua_setfield(L, mt, "__mm3kind");
  lua_pushvalue(L, 2);
  lua_setfield(L, mt, "__mm3fields");
  lua_pushvalue(L, 3);
  lua_setfield(L, mt, "__mm3order");
  lua_pushinteger(L, size);
  lua_setfield(L, mt, "__mm3size");
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, s_index, 2);
  lua_setfield(L, mt, "__index");
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, s_newindex, 2);
  lua_setfield(L, mt, "__newindex");
  /* positions of the names, for pairs */
  lua_pushvalue(L, 3);
  lua_createtable(L, 0, (int)lua_rawlen(L, 3));
  for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, 3); i++) {
    lua_rawgeti(L, 3, i);
    lua_pushinteger(L, i);
    lua_rawset(L, -3);
  }
  lua_pushcclosure(L, s_pairs, 2);
  lua_setfield(L, mt, "__pairs");
  lua_pushvalue(L, 3);
  lua_pushcclosure(L, s_len, 1);
  lua_setfield(L, mt, "__len");
  lua_pushcfunction(L, v_tostring);
  lua_setfield(L, mt, "__tostring");
  lua_pushcfunction(L, v_eq);
  lua_setfield(L, mt, "__eq");
  lua_pushcfunction(L, v_close);
  lua_setfield(L, mt, "__close");
  lua_pushliteral(L, "memmap3.Struct");
  lua_setfield(L, mt, "__metatable");
  /* the C lookup table: every field, by the address of its interned name */
  lua_Integer nf = (lua_Integer)lua_rawlen(L, 3);
  uint32_t cap = 4;
  while (cap < 2 * (uint32_t)nf) cap *= 2;
  lmm3_tinfo *ti = lua_newuserdatauv(L, sizeof *ti + cap * sizeof(lmm3_slot), 0);
  memset(ti, 0, sizeof *ti + cap * sizeof(lmm3_slot));
  ti->kind = LMM3_STRUCT;
  ti->up = lua_topointer(L, 2);
  ti->mask = cap - 1;
  ti->nuv = 2;
  for (lua_Integer i = 1; i <= nf; i++) {
    lua_rawgeti(L, 3, i);
    const char *k = lua_tostring(L, -1); /* interned; the fields table keeps it */
    lua_rawget(L, 2);
    uint32_t h = (uint32_t)(((uintptr_t)k >> 3) * 0x9E3779B1u) & ti->mask;
    while (ti->slots[h].key) h = (h + 1) & ti->mask;
    ti->slots[h].key = k;
    if (lua_type(L, -1) == LUA_TNUMBER) {
      ti->slots[h].desc = lua_tointeger(L, -1);
    } else {
      ti->slots[h].desc = -1;
      lua_Integer code = desc_int(L, lua_gettop(L), LMM3_D_CODE);
      if (code == LMM3_STRUCT || code == LMM3_ARRAY || code == LMM3_ATOMIC) ti->slots[h].uv = ++ti->nuv;
      else ti->slots[h].key = NULL; /* enums and wide scalars take the table path */
    }
    lua_pop(L, 1);
  }
  ti->meta = lua_topointer(L, mt);
  lua_setfield(L, mt, "__mm3ti");
  return 1;
}

/* ---- array views ---- */

/* The array view 1 for the errors of its metamethods: its type and, below a
   struct, its name ("u8[3] 'arr'", "Player[4] 'players'"); the type alone
   for a root. */
static const char *array_what(lua_State *L) {
  const char *tn = type_name(L, 4);
  lua_getiuservalue(L, 1, 3);
  const char *name = lua_tostring(L, -1); /* (the view keeps it) */
  lua_pop(L, 1);
  return name ? lua_pushfstring(L, "%s '%s'", tn, name) : tn;
}

/* upvalues: 1 n, 2 element size, 3 element desc, 4 type name */
static int a_index(lua_State *L) {
  lmm3_view *v = selfview_fast(L, LMM3_ARRAY);
  if (lua_isinteger(L, 2)) {
    const lmm3_tinfo *ti = v->ti;
    lua_Integer i = lua_tointeger(L, 2);
    if (i < 1 || i > ti->n) return 0; /* nil past the end, as a table (and ipairs) */
    if (ti->edesc >= 0) {
      push_scalar(L, v->p + (i - 1) * ti->esize, (int)(ti->edesc & 0xFF),
                       (uint32_t)((ti->edesc >> 8) & 0xFFFFFF));
      if (v->fb->f->truncated) lmm3_truncated_error(L, v->fb);
      return 1;
    }
    if (ti->nuv > 3) { /* small arrays keep each element's view in a user value */
      if (lua_getiuservalue(L, 1, 3 + (int)i) != LUA_TNIL) return 1;
      lua_pop(L, 1);
      same_type(L, v);
      push_complex(L, 1, v, lua_upvalueindex(3), v->p + (i - 1) * ti->esize, 2);
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, 1, 3 + (int)i);
      return 1;
    }
  }
  same_type(L, v);
  int isint;
  lua_Integer i = lua_tointegerx(L, 2, &isint);
  if (lua_type(L, 2) != LUA_TNUMBER || !isint) {
    if (lua_type(L, 2) == LUA_TSTRING)
      return luaL_error(L, "%s has no field '%s' (arrays are indexed by integers)", array_what(L),
                        lua_tostring(L, 2));
    return 0;
  }
  lua_Integer n = lua_tointeger(L, lua_upvalueindex(1));
  if (i < 1 || i > n) return 0; /* nil past the end, as a table (and ipairs) */
  uint8_t *p = v->p + (i - 1) * lua_tointeger(L, lua_upvalueindex(2));
  if (lua_type(L, lua_upvalueindex(3)) == LUA_TNUMBER) {
    lua_Integer d = lua_tointeger(L, lua_upvalueindex(3));
    lmm3_push_scalar(L, p, (int)(d & 0xFF), (uint32_t)((d >> 8) & 0xFFFFFF));
    return 1;
  }
  push_complex(L, 1, v, lua_upvalueindex(3), p, 2);
  return 1;
}

static int a_newindex(lua_State *L) {
  lmm3_view *v = selfview_fast(L, LMM3_ARRAY);
  check_writable(L, v, 4, "element");
  if (lua_isinteger(L, 2) && v->ti->edesc >= 0) {
    const lmm3_tinfo *ti = v->ti;
    lua_Integer i = lua_tointeger(L, 2);
    if (i >= 1 && i <= ti->n) {
      const char *why = set_scalar_live(L, v->fb, v->p + (i - 1) * ti->esize, (int)(ti->edesc & 0xFF),
                                        (uint32_t)((ti->edesc >> 8) & 0xFFFFFF), 3);
      if (why) return luaL_error(L, "%s element %I: %s", array_what(L), i, why);
      return 0;
    }
  }
  same_type(L, v);
  int isint;
  lua_Integer i = lua_tointegerx(L, 2, &isint);
  lua_Integer n = lua_tointeger(L, lua_upvalueindex(1));
  if (lua_type(L, 2) != LUA_TNUMBER || !isint || i < 1 || i > n)
    return luaL_error(L, "%s: index %s is out of range (1..%I)", array_what(L),
                      luaL_tolstring(L, 2, NULL), n);
  uint8_t *p = v->p + (i - 1) * lua_tointeger(L, lua_upvalueindex(2));
  if (lua_type(L, lua_upvalueindex(3)) == LUA_TNUMBER) {
    lua_Integer d = lua_tointeger(L, lua_upvalueindex(3));
    const char *why = set_scalar_live(L, v->fb, p, (int)(d & 0xFF), (uint32_t)((d >> 8) & 0xFFFFFF), 3);
    if (why) return luaL_error(L, "%s element %I: %s", array_what(L), i, why);
    return 0;
  }
  const char *where = lua_pushfstring(L, "%s element %I", array_what(L), i);
  set_from(L, 3, lua_upvalueindex(3), p, where, v->fb, NULL);
  return 0;
}

static int a_len(lua_State *L) {
  toview(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  return 1;
}

static int a_next(lua_State *L) {
  lua_Integer i = lua_isnil(L, 2) ? 1 : lua_tointeger(L, 2) + 1;
  lua_pushinteger(L, i);
  if (lua_geti(L, 1, i) == LUA_TNIL) return 1;
  return 2;
}

int lmm3_seq_pairs(lua_State *L) {
  toview(L, 1);
  lua_pushcfunction(L, a_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  lua_pushnil(L);
  return 4;
}

/* core.new_array(name, n, elem_size, elem_desc) -> metatable */
static int l_new_array(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  lua_Integer esize = luaL_checkinteger(L, 3);
  luaL_checkany(L, 4);
  lua_createtable(L, 0, 16);
  int mt = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_setfield(L, mt, "__name");
  lua_pushinteger(L, LMM3_ARRAY);
  lua_setfield(L, mt, "__mm3kind");
  lua_pushinteger(L, n);
  lua_setfield(L, mt, "__mm3n");
  lua_pushinteger(L, esize);
  lua_setfield(L, mt, "__mm3esize");
  lua_pushvalue(L, 4);
  lua_setfield(L, mt, "__mm3elem");
  lua_pushinteger(L, n * esize);
  lua_setfield(L, mt, "__mm3size");
  for (int k = 0; k < 2; k++) {
    lua_pushinteger(L, n);
    lua_pushinteger(L, esize);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, k ? a_newindex : a_index, 4);
    lua_setfield(L, mt, k ? "__newindex" : "__index");
  }
  lua_pushinteger(L, n);
  lua_pushcclosure(L, a_len, 1);
  lua_setfield(L, mt, "__len");
  lua_pushcfunction(L, lmm3_seq_pairs);
  lua_setfield(L, mt, "__pairs");
  lua_pushcfunction(L, v_tostring);
  lua_setfield(L, mt, "__tostring");
  lua_pushcfunction(L, v_eq);
  lua_setfield(L, mt, "__eq");
  lua_pushcfunction(L, v_close);
  lua_setfield(L, mt, "__close");
  lua_pushliteral(L, "memmap3.Array");
  lua_setfield(L, mt, "__metatable");
  lmm3_tinfo *ti = lua_newuserdatauv(L, sizeof *ti, 0);
  memset(ti, 0, sizeof *ti);
  ti->kind = LMM3_ARRAY;
  ti->nuv = 3; /* file, child cache, name */
  if (lua_type(L, 4) != LUA_TNUMBER && n <= 256) ti->nuv = 3 + (int)n; /* + one per element view */
  ti->n = n;
  ti->esize = esize;
  ti->edesc = lua_type(L, 4) == LUA_TNUMBER ? lua_tointeger(L, 4) : -1;
  ti->up = lua_type(L, 4) == LUA_TTABLE ? lua_topointer(L, 4) : NULL;
  ti->meta = lua_topointer(L, mt);
  lua_setfield(L, mt, "__mm3ti");
  return 1;
}

/* ---- lists built in one step ----
   A table of n values is built fastest by Lua's own `{...}`: the values are
   pushed on the stack and copied into the table's array part at once (one
   SETLIST), where lua_rawseti looks each index up. lmm3_list_begin(L, n)
   pushes the builder and returns how many values (at most LMM3_LIST_BATCH)
   to push next; lmm3_list_end(L, m) replaces them with the table, and the
   caller adds any further values with lua_rawseti. */
#define LMM3_LIST_BATCH 65536
static const char list_builder_key = 'l';

lua_Integer lmm3_list_begin(lua_State *L, lua_Integer n) {
  lua_Integer m = n < 0 ? 0 : n > LMM3_LIST_BATCH ? LMM3_LIST_BATCH : n;
  while (m > 1 && !lua_checkstack(L, (int)m + 4)) m /= 2; /* (short of memory: smaller batches) */
  luaL_checkstack(L, (int)m + 4, "memmap3: no stack space for a list (out of memory?)");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &list_builder_key);
  return m;
}

void lmm3_list_end(lua_State *L, lua_Integer m) { lua_call(L, (int)m, 1); }

/* ---- module functions ---- */

/* core.totable(view) -> plain table */
static int copy_view(lua_State *L) {
  /* (checked again: a debug hook at this call may have swapped its metatable) */
  lmm3_view *v = lmm3_view_or_null(L, 1);
  if (!v || LMM3_CLOSED(v->fb)) return luaL_typeerror(L, 1, "memmap3 view");
  lua_getmetatable(L, 1);
  if (v->ti && LMM3_IS_CONTAINER(v->ti->kind)) lmm3_cont_copy(L, v->fb->f, v->p, lua_gettop(L));
  else push_deep(L, v->fb->f, v->p, lua_gettop(L));
  return 1;
}

/* The copy calls Lua (the list builder), where a debug hook may close the
   file: while it runs the file is busy, and a close only marks it closing. */
static int l_totable(lua_State *L) {
  lmm3_view *v = toview(L, 1);
  lmm3_file *fb = v->fb;
  lua_settop(L, 1);
  lua_pushcfunction(L, copy_view);
  lua_insert(L, 1);
  fb->busy++;
  int st = lua_pcall(L, 1, 1, 0);
  fb->busy--;
  if (st != LUA_OK) return lua_error(L);
  return 1;
}

/* core.view_info(v) -> metatable, File userdata (nil, nil if not a view) */
static int l_view_info(lua_State *L) {
  if (!lmm3_view_or_null(L, 1)) return 0;
  lua_getmetatable(L, 1);
  lua_getiuservalue(L, 1, 1);
  return 2;
}

/* core.set_keep(meta, {off, size, ...}): container regions of a struct or
   array type, kept when a table is assigned to it */
static int l_set_keep(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushvalue(L, 2);
  lua_setfield(L, 1, "__mm3keep");
  return 0;
}

/* core.view_ptr(v) -> light userdata of the view's first byte */
static int l_view_ptr(lua_State *L) {
  lmm3_view *v = toview(L, 1);
  lua_pushlightuserdata(L, v->p);
  return 1;
}

void lmm3_open_view(lua_State *L) {
  static const luaL_Reg funcs[] = {{"new_struct", l_new_struct}, {"new_array", l_new_array},
                                   {"totable", l_totable},       {"view_info", l_view_info},
                                   {"view_ptr", l_view_ptr},     {"set_keep", l_set_keep},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  if (luaL_loadstring(L, "return {...}") != LUA_OK) lua_error(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &list_builder_key);
}
