/*
 * floor.c - the cheapest possible C __index/__newindex for a userdata, the
 * floor that bench/struct_bench.lua measures memmap3's field access against.
 * Built only for the benchmark (make bench).
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

typedef struct rec { long long level; } rec;

static int f_index(lua_State *L) {
  rec *r = lua_touserdata(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "level") == 0) lua_pushinteger(L, r->level);
  else lua_pushnil(L);
  return 1;
}

static int f_newindex(lua_State *L) {
  rec *r = lua_touserdata(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "level") == 0) r->level = lua_tointeger(L, 3);
  return 0;
}

static int f_new(lua_State *L) {
  rec *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->level = 0;
  luaL_setmetatable(L, "bench.floor");
  return 1;
}

int luaopen_floor(lua_State *L);
int luaopen_floor(lua_State *L) {
  luaL_newmetatable(L, "bench.floor");
  lua_pushcfunction(L, f_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, f_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, f_new);
  lua_setfield(L, -2, "new");
  return 1;
}
