/*
 * oom.c - memory running out in the middle of writes: a Lua state whose
 * allocator fails from its k-th allocation on (as a host capping a script's
 * memory does), for k = 1, 2, ... while a script assigns a table to a struct
 * that holds a container (that assignment runs as a transaction). Each
 * failure must be a clean "not enough memory" error that leaves no
 * transaction open and the lock free: the file closes, and a second process
 * takes the lock at once. Prints "ok N" (N failures seen), exits 1 otherwise.
 *
 * Usage: oom PATH BUILD   (PATH: a file to make; BUILD: the build directory,
 *                          whose memmap3/core.so it loads; run from the repository)
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

static long fail_at = -1, count;

static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud, (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (fail_at >= 0 && ++count >= fail_at) return NULL;
  return realloc(ptr, nsize);
}

/* failat(k): the k-th allocation from now on fails, and every one after it;
   failat(-1): none. */
static int failat(lua_State *L) {
  fail_at = (long)luaL_checkinteger(L, 1);
  count = 0;
  return 0;
}

static const char SCRIPT[] =
    "local path, build = ...\n"
    "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n"
    "package.cpath = build .. '/?.so;' .. package.cpath\n"
    "local mm = require 'memmap3'\n"
    "local T = mm.struct('AStructWhoseNameMakesTheErrorContextLong', {{'x', 'u64'}, {'v', 'vec<u32, 8>'}})\n"
    "local R = mm.struct('OomRoot', {{'a_field_with_a_rather_long_name_too', T}})\n"
    "os.remove(path)\n"
    "local f = assert(mm.create(path, R))\n"
    "f.a_field_with_a_rather_long_name_too.v:push(7)\n"
    "local tbl, failures = {x = 5}, 0\n"
    "for k = 1, 1000 do\n"
    "  local ok, err = pcall(function() failat(k); f.a_field_with_a_rather_long_name_too = tbl end)\n"
    "  failat(-1)\n"
    "  if ok then\n"
    "    assert(f.a_field_with_a_rather_long_name_too.x == 5 and #f.a_field_with_a_rather_long_name_too.v == 1)\n"
    "    print('ok ' .. failures)\n"
    "    return\n"
    "  end\n"
    "  failures = failures + 1\n"
    "  assert(tostring(err):find('not enough memory', 1, true), 'k=' .. k .. ': ' .. tostring(err))\n"
    "  assert(#f.a_field_with_a_rather_long_name_too.v == 1, 'k=' .. k .. ': the list changed')\n"
    "  local okc, cerr = pcall(mm.close, f)\n"
    "  assert(okc, 'k=' .. k .. ': close after the failure: ' .. tostring(cerr))\n"
    "  local code = ('local mm = require \"memmap3\"; mm.lock(assert(mm.open(%q)), function() end)'):format(path)\n"
    "  local other = os.execute(('timeout 10 env LUA_INIT= LUA_PATH=%q LUA_CPATH=%q lua5.4 -e %q'):format(\n"
    "    'lua/?.lua;lua/?/init.lua;;', build .. '/?.so;;', code))\n"
    "  assert(other, 'k=' .. k .. ': another process could not take the lock')\n"
    "  f = assert(mm.open(path, R))\n"
    "end\n"
    "error('the assignment never succeeded')\n";

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: oom PATH BUILD\n");
    return 2;
  }
  lua_State *L = lua_newstate(lalloc, NULL);
  if (!L) return 2;
  luaL_openlibs(L);
  lua_register(L, "failat", failat);
  int rc = luaL_loadstring(L, SCRIPT);
  if (rc == LUA_OK) {
    lua_pushstring(L, argv[1]);
    lua_pushstring(L, argv[2]);
    rc = lua_pcall(L, 2, 0, 0);
  }
  if (rc != LUA_OK) {
    fprintf(stderr, "oom: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
