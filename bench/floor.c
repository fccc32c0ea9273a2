/*
 * floor.c - the cheapest possible C __index/__newindex for a userdata, the
 * floor that bench/struct_bench.lua measures memmap3's field access against,
 * and the cheapest C `<<` append (floor.list()) for bench/append_bench.lua,
 * alone and under the lock every memmap3 container operation takes
 * (floor.locked_list(): a process-shared robust recursive pthread mutex in
 * shared memory, taken and released per append, as memmap3's in-file lock).
 * Built only for the benchmark (make bench).
 */
#define _XOPEN_SOURCE 700 /* pthread_mutexattr_settype, MAP_ANONYMOUS under -std=c11 */
#define _DEFAULT_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* A growable array of integers in C memory, appended to with `<<`: no lock,
   no file, no crash safety; the cost of the Lua metamethod call itself. */
typedef struct list { long long *v; size_t n, cap; pthread_mutex_t *m; } list;

static int grow(list *l) {
  if (l->n < l->cap) return 1;
  size_t cap = l->cap ? 2 * l->cap : 64;
  long long *v = realloc(l->v, cap * sizeof *v);
  if (!v) return 0;
  l->v = v, l->cap = cap;
  return 1;
}

static int l_shl(lua_State *L) {
  list *l = lua_touserdata(L, 1);
  if (!grow(l)) return luaL_error(L, "out of memory");
  l->v[l->n++] = lua_tointeger(L, 2);
  lua_settop(L, 1);
  return 1;
}

static int l_shl_locked(lua_State *L) {
  list *l = lua_touserdata(L, 1);
  long long x = lua_tointeger(L, 2);
  if (pthread_mutex_lock(l->m) != 0) return luaL_error(L, "lock failed");
  int ok = grow(l);
  if (ok) l->v[l->n++] = x;
  pthread_mutex_unlock(l->m);
  if (!ok) return luaL_error(L, "out of memory");
  lua_settop(L, 1);
  return 1;
}

static int l_len(lua_State *L) {
  list *l = lua_touserdata(L, 1);
  lua_pushinteger(L, (lua_Integer)l->n);
  return 1;
}

static int l_gc(lua_State *L) {
  list *l = lua_touserdata(L, 1);
  free(l->v);
  l->v = NULL;
  if (l->m) munmap(l->m, sizeof *l->m);
  l->m = NULL;
  return 0;
}

static int l_new(lua_State *L) {
  list *l = lua_newuserdatauv(L, sizeof *l, 0);
  memset(l, 0, sizeof *l);
  luaL_setmetatable(L, "bench.floor.list");
  return 1;
}

static int l_new_locked(lua_State *L) {
  list *l = lua_newuserdatauv(L, sizeof *l, 0);
  memset(l, 0, sizeof *l);
  luaL_setmetatable(L, "bench.floor.locked_list");
  void *m = mmap(NULL, sizeof *l->m, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return luaL_error(L, "mmap failed");
  l->m = m;
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  int rc = pthread_mutex_init(l->m, &a);
  pthread_mutexattr_destroy(&a);
  if (rc) return luaL_error(L, "pthread_mutex_init failed");
  return 1;
}

/* A metatable name with its methods. */
static void meta(lua_State *L, const char *name, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, methods, 0);
  lua_pop(L, 1);
}

int luaopen_floor(lua_State *L);
int luaopen_floor(lua_State *L) {
  static const luaL_Reg rec_meta[] = {{"__index", f_index}, {"__newindex", f_newindex}, {NULL, NULL}};
  static const luaL_Reg list_meta[] = {{"__shl", l_shl}, {"__len", l_len}, {"__gc", l_gc}, {NULL, NULL}};
  static const luaL_Reg locked_meta[] = {{"__shl", l_shl_locked}, {"__len", l_len}, {"__gc", l_gc}, {NULL, NULL}};
  static const luaL_Reg module[] = {{"new", f_new}, {"list", l_new}, {"locked_list", l_new_locked}, {NULL, NULL}};
  meta(L, "bench.floor", rec_meta);
  meta(L, "bench.floor.list", list_meta);
  meta(L, "bench.floor.locked_list", locked_meta);
  luaL_newlib(L, module);
  return 1;
}
