/*
 * lmm3.c - the memmap3.core module: opening, and helpers shared by every
 * binding file (results, options, sizes).
 */
#include <string.h>

#include "lmm3_internal.h"

int lmm3_fail(lua_State *L, const char *what, int code) {
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", what, mm3_strerror(code));
  lua_pushinteger(L, code);
  return 3;
}

void lmm3_check_opts(lua_State *L, int idx, const char *what, const char *const allowed[]) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (int i = 0; allowed[i]; i++)
        if (strcmp(k, allowed[i]) == 0) ok = 1;
    }
    if (!ok) {
      luaL_error(L, "%s: unknown option '%s'", what, luaL_tolstring(L, -1, NULL));
    }
  }
}

int lmm3_opt_bool(lua_State *L, int idx, const char *key, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  int t = lua_getfield(L, idx, key);
  int v = def;
  if (t != LUA_TNIL) {
    if (t != LUA_TBOOLEAN) luaL_error(L, "option '%s' must be a boolean, got %s", key, lua_typename(L, t));
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

lua_Integer lmm3_opt_int(lua_State *L, int idx, const char *key, lua_Integer def, int *present) {
  if (present) *present = 0;
  if (lua_isnoneornil(L, idx)) return def;
  int t = lua_getfield(L, idx, key);
  lua_Integer v = def;
  if (t != LUA_TNIL) {
    int isint;
    v = lua_tointegerx(L, -1, &isint);
    if (!isint) luaL_error(L, "option '%s' must be an integer, got %s", key, luaL_typename(L, -1));
    if (present) *present = 1;
  }
  lua_pop(L, 1);
  return v;
}

const char *lmm3_opt_string(lua_State *L, int idx, const char *key, const char *def) {
  if (lua_isnoneornil(L, idx)) return def;
  int t = lua_getfield(L, idx, key);
  const char *v = def;
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING) luaL_error(L, "option '%s' must be a string, got %s", key, lua_typename(L, t));
    v = lua_tostring(L, -1); /* the options table keeps the string alive */
  }
  lua_pop(L, 1);
  return v;
}

uint64_t lmm3_check_size(lua_State *L, int arg, const char *what) {
  lua_Integer v = luaL_checkinteger(L, arg);
  if (v < 0) luaL_error(L, "%s must not be negative (got %I)", what, v);
  return (uint64_t)v;
}

static int l_strerror(lua_State *L) {
  lua_pushstring(L, mm3_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

const char *lmm3_checkpath(lua_State *L, int idx, const char *what) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (strlen(s) != n) luaL_error(L, "%s: the path contains a NUL byte", what);
  return s;
}

int luaopen_memmap3_core(lua_State *L) {
  static const luaL_Reg funcs[] = {{"strerror", l_strerror}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  lua_pushstring(L, mm3_version(NULL, NULL, NULL));
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, (lua_Integer)mm3__page_size());
  lua_setfield(L, -2, "page_size");
  lmm3_open_map(L);
  lmm3_open_file(L);
  lmm3_open_view(L);
  lmm3_open_atomic(L);
  lmm3_open_cont(L);
  return 1;
}
