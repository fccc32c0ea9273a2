/*
 * lmm3_pack.c - string.pack / string.unpack formats over mapped bytes.
 *
 * Follows Lua 5.4's lstrlib.c option by option, so a format means here what
 * it means to string.pack; the differences are that positions are 0-based
 * mapping offsets, and unpack reads straight from the mapping (no copy of the
 * region into a Lua string first).
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "lmm3_internal.h"

#define MAXINTSIZE 16
#define NB CHAR_BIT
#define MC ((1 << NB) - 1)
#define SZINT ((int)sizeof(lua_Integer))
#define PADBYTE 0x00

struct cD {
  char c;
  union { lua_Number n; double u; void *s; lua_Integer i; long l; } u;
};
#define MAXALIGN (offsetof(struct cD, u))

static const union { int dummy; char little; } nativeendian = {1};

typedef struct Header {
  lua_State *L;
  int islittle;
  int maxalign;
} Header;

typedef enum KOption {
  Kint, Kuint, Kfloat, Knumber, Kdouble, Kchar, Kstring, Kzstr, Kpadding, Kpaddalign, Knop
} KOption;

static int digit(int c) { return '0' <= c && c <= '9'; }

static int getnum(const char **fmt, int df) {
  if (!digit(**fmt)) return df;
  int a = 0;
  do {
    a = a * 10 + (*((*fmt)++) - '0');
  } while (digit(**fmt) && a <= (INT_MAX - 9) / 10);
  return a;
}

static int getnumlimit(Header *h, const char **fmt, int df) {
  int sz = getnum(fmt, df);
  if (sz > MAXINTSIZE || sz <= 0)
    return luaL_error(h->L, "integral size (%d) out of limits [1,%d]", sz, MAXINTSIZE);
  return sz;
}

static KOption getoption(Header *h, const char **fmt, int *size) {
  int opt = *((*fmt)++);
  *size = 0;
  switch (opt) {
    case 'b': *size = sizeof(char); return Kint;
    case 'B': *size = sizeof(char); return Kuint;
    case 'h': *size = sizeof(short); return Kint;
    case 'H': *size = sizeof(short); return Kuint;
    case 'l': *size = sizeof(long); return Kint;
    case 'L': *size = sizeof(long); return Kuint;
    case 'j': *size = sizeof(lua_Integer); return Kint;
    case 'J': *size = sizeof(lua_Integer); return Kuint;
    case 'T': *size = sizeof(size_t); return Kuint;
    case 'f': *size = sizeof(float); return Kfloat;
    case 'n': *size = sizeof(lua_Number); return Knumber;
    case 'd': *size = sizeof(double); return Kdouble;
    case 'i': *size = getnumlimit(h, fmt, sizeof(int)); return Kint;
    case 'I': *size = getnumlimit(h, fmt, sizeof(int)); return Kuint;
    case 's': *size = getnumlimit(h, fmt, sizeof(size_t)); return Kstring;
    case 'c':
      *size = getnum(fmt, -1);
      if (*size == -1) luaL_error(h->L, "missing size for format option 'c'");
      return Kchar;
    case 'z': return Kzstr;
    case 'x': *size = 1; return Kpadding;
    case 'X': return Kpaddalign;
    case ' ': break;
    case '<': h->islittle = 1; break;
    case '>': h->islittle = 0; break;
    case '=': h->islittle = nativeendian.little; break;
    case '!': h->maxalign = getnumlimit(h, fmt, (int)MAXALIGN); break;
    default: luaL_error(h->L, "invalid format option '%c'", opt);
  }
  return Knop;
}

static KOption getdetails(Header *h, size_t totalsize, const char **fmt, int *psize,
                          int *ntoalign) {
  KOption opt = getoption(h, fmt, psize);
  int align = *psize;
  if (opt == Kpaddalign) {
    if (**fmt == '\0' || getoption(h, fmt, &align) == Kchar || align == 0)
      luaL_error(h->L, "invalid next option for option 'X'");
  }
  if (align <= 1 || opt == Kchar) {
    *ntoalign = 0;
  } else {
    if (align > h->maxalign) align = h->maxalign;
    if ((align & (align - 1)) != 0) luaL_error(h->L, "format asks for alignment not power of 2");
    *ntoalign = (align - (int)(totalsize & (size_t)(align - 1))) & (align - 1);
  }
  return opt;
}

static void packint(luaL_Buffer *b, lua_Unsigned n, int islittle, int size, int neg) {
  char *buff = luaL_prepbuffsize(b, (size_t)size);
  buff[islittle ? 0 : size - 1] = (char)(n & MC);
  for (int i = 1; i < size; i++) {
    n >>= NB;
    buff[islittle ? i : size - 1 - i] = (char)(n & MC);
  }
  if (neg && size > SZINT)
    for (int i = SZINT; i < size; i++) buff[islittle ? i : size - 1 - i] = (char)MC;
  luaL_addsize(b, (size_t)size);
}

static void copywithendian(char *dest, const char *src, int size, int islittle) {
  if (islittle == nativeendian.little) {
    memcpy(dest, src, (size_t)size);
  } else {
    dest += size - 1;
    while (size-- != 0) *(dest--) = *(src++);
  }
}

void lmm3_pack(lua_State *L, const char *fmt, int arg, size_t pos) {
  Header h = {L, nativeendian.little, 1};
  luaL_Buffer b;
  size_t totalsize = pos; /* alignment is relative to offset 0 of the map */
  arg--;
  luaL_buffinit(L, &b);
  while (*fmt != '\0') {
    int size, ntoalign;
    KOption opt = getdetails(&h, totalsize, &fmt, &size, &ntoalign);
    totalsize += (size_t)ntoalign + (size_t)size;
    while (ntoalign-- > 0) luaL_addchar(&b, PADBYTE);
    arg++;
    switch (opt) {
      case Kint: {
        lua_Integer n = luaL_checkinteger(L, arg);
        if (size < SZINT) {
          lua_Integer lim = (lua_Integer)1 << ((size * NB) - 1);
          luaL_argcheck(L, -lim <= n && n < lim, arg, "integer overflow");
        }
        packint(&b, (lua_Unsigned)n, h.islittle, size, (n < 0));
        break;
      }
      case Kuint: {
        lua_Integer n = luaL_checkinteger(L, arg);
        if (size < SZINT)
          luaL_argcheck(L, (lua_Unsigned)n < ((lua_Unsigned)1 << (size * NB)), arg,
                        "unsigned overflow");
        packint(&b, (lua_Unsigned)n, h.islittle, size, 0);
        break;
      }
      case Kfloat: {
        float f = (float)luaL_checknumber(L, arg);
        char *buff = luaL_prepbuffsize(&b, sizeof(f));
        copywithendian(buff, (char *)&f, sizeof(f), h.islittle);
        luaL_addsize(&b, (size_t)size);
        break;
      }
      case Knumber: {
        lua_Number f = luaL_checknumber(L, arg);
        char *buff = luaL_prepbuffsize(&b, sizeof(f));
        copywithendian(buff, (char *)&f, sizeof(f), h.islittle);
        luaL_addsize(&b, (size_t)size);
        break;
      }
      case Kdouble: {
        double f = (double)luaL_checknumber(L, arg);
        char *buff = luaL_prepbuffsize(&b, sizeof(f));
        copywithendian(buff, (char *)&f, sizeof(f), h.islittle);
        luaL_addsize(&b, (size_t)size);
        break;
      }
      case Kchar: {
        size_t len;
        const char *s = luaL_checklstring(L, arg, &len);
        luaL_argcheck(L, len <= (size_t)size, arg, "string longer than given size");
        luaL_addlstring(&b, s, len);
        while (len++ < (size_t)size) luaL_addchar(&b, PADBYTE);
        break;
      }
      case Kstring: {
        size_t len;
        const char *s = luaL_checklstring(L, arg, &len);
        luaL_argcheck(L, size >= (int)sizeof(size_t) || len < ((size_t)1 << (size * NB)), arg,
                      "string length does not fit in given size");
        packint(&b, (lua_Unsigned)len, h.islittle, size, 0);
        luaL_addlstring(&b, s, len);
        totalsize += len;
        break;
      }
      case Kzstr: {
        size_t len;
        const char *s = luaL_checklstring(L, arg, &len);
        luaL_argcheck(L, strlen(s) == len, arg, "string contains zeros");
        luaL_addlstring(&b, s, len);
        luaL_addchar(&b, '\0');
        totalsize += len + 1;
        break;
      }
      case Kpadding: luaL_addchar(&b, PADBYTE); /* FALLTHROUGH */
      case Kpaddalign:
      case Knop: arg--; break;
    }
  }
  luaL_pushresult(&b);
}

static lua_Integer unpackint(lua_State *L, const uint8_t *str, int islittle, int size,
                             int issigned) {
  lua_Unsigned res = 0;
  int limit = (size <= SZINT) ? size : SZINT;
  for (int i = limit - 1; i >= 0; i--) {
    res <<= NB;
    res |= (lua_Unsigned)str[islittle ? i : size - 1 - i];
  }
  if (size < SZINT) {
    if (issigned) {
      lua_Unsigned mask = (lua_Unsigned)1 << (size * NB - 1);
      res = ((res ^ mask) - mask);
    }
  } else if (size > SZINT) {
    int mask = (!issigned || (lua_Integer)res >= 0) ? 0 : MC;
    for (int i = limit; i < size; i++)
      if (str[islittle ? i : size - 1 - i] != mask)
        luaL_error(L, "%d-byte integer does not fit into Lua Integer", size);
  }
  return (lua_Integer)res;
}

int lmm3_unpack(lua_State *L, const char *fmt, const uint8_t *data, size_t ld, size_t pos) {
  Header h = {L, nativeendian.little, 1};
  int n = 0;
  if (pos > ld) luaL_error(L, "offset %I out of range (map has %I bytes)", (lua_Integer)pos,
                           (lua_Integer)ld);
  while (*fmt != '\0') {
    int size, ntoalign;
    KOption opt = getdetails(&h, pos, &fmt, &size, &ntoalign);
    if ((size_t)ntoalign + (size_t)size > ld - pos)
      luaL_error(L, "unpack past the end of the map at offset %I (map has %I bytes)",
                 (lua_Integer)pos, (lua_Integer)ld);
    pos += (size_t)ntoalign;
    luaL_checkstack(L, 2, "too many results");
    n++;
    switch (opt) {
      case Kint:
      case Kuint:
        lua_pushinteger(L, unpackint(L, data + pos, h.islittle, size, (opt == Kint)));
        break;
      case Kfloat: {
        float f;
        copywithendian((char *)&f, (const char *)data + pos, sizeof(f), h.islittle);
        lua_pushnumber(L, (lua_Number)f);
        break;
      }
      case Knumber: {
        lua_Number f;
        copywithendian((char *)&f, (const char *)data + pos, sizeof(f), h.islittle);
        lua_pushnumber(L, f);
        break;
      }
      case Kdouble: {
        double f;
        copywithendian((char *)&f, (const char *)data + pos, sizeof(f), h.islittle);
        lua_pushnumber(L, (lua_Number)f);
        break;
      }
      case Kchar: lmm3_push_mapped(L, data + pos, (size_t)size); break;
      case Kstring: {
        size_t len = (size_t)unpackint(L, data + pos, h.islittle, size, 0);
        if (len > ld - pos - (size_t)size)
          luaL_error(L, "string at offset %I runs past the end of the map", (lua_Integer)pos);
        lmm3_push_mapped(L, data + pos + size, len);
        pos += len;
        break;
      }
      case Kzstr: {
        const uint8_t *z = memchr(data + pos, 0, ld - pos);
        if (!z) luaL_error(L, "unfinished string for format 'z' at offset %I", (lua_Integer)pos);
        size_t len = (size_t)(z - (data + pos));
        lmm3_push_mapped(L, data + pos, len);
        pos += len + 1;
        break;
      }
      case Kpaddalign:
      case Kpadding:
      case Knop: n--; break;
    }
    pos += (size_t)size;
  }
  lua_pushinteger(L, (lua_Integer)pos);
  return n + 1;
}
