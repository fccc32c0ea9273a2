/*
 * host.c - spec/embed_spec.lua's C host: Lua states embedded in a C program
 * that share one mm3_file with it, through memmap3_lua.h and the header
 * `memmap3 cheader` generated from examples/embed_save.lua (embed_save.h).
 *
 *   host two_states PATH   two lua_States (one thread, then two threads)
 *                          see each other's writes and the host's
 *   host borrowed PATH     a borrowed root survives collectgarbage(),
 *                          mm.close, <close> and lua_close: the host's file
 *                          stays open and usable
 *   host txn_close PATH    a script that closes its borrowed root inside
 *                          mm.transaction or mm.lock leaves the host's file
 *                          outside any transaction (closing a borrowed root
 *                          ends the transactions the script left open)
 *
 * Prints "ok: <step>" as each step passes; on a failure prints why to stderr
 * and exits 1. MM3_LUA_DIR: where memmap3/init.lua is (default "lua").
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "memmap3.h"
#include "memmap3_lua.h"
#include "embed_save.h"

#define FAIL(...)                                  \
  do {                                             \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__);                  \
    fprintf(stderr, "\n");                         \
    exit(1);                                       \
  } while (0)
#define EXPECT(cond) \
  do {               \
    if (!(cond)) FAIL("expected %s", #cond); \
  } while (0)

static int push_root(lua_State *L) {
  mm3lua_push_root(L, lua_touserdata(L, 1), 0);
  lua_setglobal(L, lua_tostring(L, 2));
  return 0;
}

/* A state that finds memmap3 (the C module linked in, the Lua modules in
   MM3_LUA_DIR) with the host's file as the borrowed global `name`. */
static lua_State *new_state(mm3_file *f, const char *name) {
  const char *dir = getenv("MM3_LUA_DIR") ? getenv("MM3_LUA_DIR") : "lua";
  lua_State *L = luaL_newstate();
  EXPECT(L != NULL);
  luaL_openlibs(L);
  luaL_requiref(L, "memmap3.core", luaopen_memmap3_core, 0);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
  lua_pushcfunction(L, push_root);
  lua_pushlightuserdata(L, f);
  lua_pushstring(L, name);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) FAIL("mm3lua_push_root: %s", lua_tostring(L, -1));
  return L;
}

/* Run a chunk; it fails the test by raising. */
static void run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) FAIL("script failed: %s\n--- script:\n%s", lua_tostring(L, -1), code);
}

static void ok(const char *step) {
  printf("ok: %s\n", step);
  fflush(stdout);
}

static mm3_file *open_save(const char *path) {
  mm3_file *f;
  int rc = mm3_file_open(path, &(mm3_file_opts){.create = 1, .schema = SAVE_SCHEMA, .root_size = SAVE_ROOT_SIZE}, &f);
  if (rc) FAIL("%s: %s", path, mm3_strerror(rc));
  return f;
}

/* ---- two states ------------------------------------------------------- */

#define ROUNDS 2000
#define STR(x) #x
#define XSTR(x) STR(x)

typedef struct worker {
  mm3_file *f;
  lua_State *L;
  const char *code;
  const char *err;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  if (luaL_dostring(w->L, w->code) != LUA_OK) w->err = lua_tostring(w->L, -1);
  return NULL;
}

static int two_states(const char *path) {
  mm3_file *f = open_save(path);
  Save *s = (Save *)mm3_file_root(f);
  lua_State *A = new_state(f, "save");
  lua_State *B = new_state(f, "save");
  run(A, "mm = require 'memmap3'");
  run(B, "mm = require 'memmap3'");

  run(A, "save.level = 7\n"
         "save.player.name = 'Ana'\n"
         "save.inventory:push({name = 'sword', count = 1})\n"
         "save.quests.dragon = 10\n"
         "save.player.kills:fetch_add(5)");
  run(B, "assert(save.level == 7 and save.player.name == 'Ana')\n"
         "assert(#save.inventory == 1 and save.inventory[1].name == 'sword')\n"
         "assert(save.quests.dragon == 10 and save.player.kills:load() == 5)\n"
         "save.gold = 12345\n"
         "save.inventory[1].count = 9\n"
         "save.journal:push('from B')\n"
         "save.player.kills:fetch_add(1)");
  run(A, "assert(save.gold == 12345 and save.inventory[1].count == 9)\n"
         "assert(save.journal[1] == 'from B' and save.player.kills:load() == 6)");
  ok("A's writes are B's reads and back");

  EXPECT(s->level == 7 && s->gold == 12345 && s->inventory.len == 1 && s->inventory.items[0].count == 9);
  EXPECT(strcmp(s->player.name, "Ana") == 0 && mm3_atomic_load(&s->player.kills, 8) == 6);
  EXPECT(s->journal.len == 1 && strcmp(s->journal.items[0], "from B") == 0);
  s->level = 8;
  s->player.hp = -3;
  run(A, "assert(save.level == 8 and save.player.hp == -3)");
  run(B, "assert(save.level == 8 and save.player.hp == -3)");
  ok("the host sees both, both see the host");

  /* A transaction in A that fails leaves nothing for B to see. */
  run(A, "local okk = pcall(mm.transaction, save, function(v)\n"
         "  v.level = 99; v.inventory:push({name = 'ghost', count = 1}); error('no')\n"
         "end)\n"
         "assert(not okk and save.level == 8)");
  run(B, "assert(save.level == 8 and #save.inventory == 1)");
  EXPECT(s->level == 8 && s->inventory.len == 1);
  ok("a rolled-back transaction in A is invisible to B and the host");

  /* The host holds a transaction through f while B, in another thread on
     the same handle, sets a field: that write is B's own, outside the
     transaction (it went into the host's undo log, and the rollback undid
     it, when the handle's depth was taken to mean this thread's). */
  uint64_t sp;
  EXPECT(mm3_txn_begin(f, &sp) == 0);
  worker wg = {f, B, "save.gold = 777", NULL};
  pthread_t tg;
  EXPECT(pthread_create(&tg, NULL, work, &wg) == 0);
  pthread_join(tg, NULL); /* an 8-byte store: no lock to wait for */
  mm3_txn_rollback(f, sp);
  if (wg.err) FAIL("thread B: %s", wg.err);
  EXPECT(s->gold == 777);
  s->gold = 12345;
  ok("a write beside another thread's transaction on the shared handle stays");

  /* Each state in its own thread: the file's lock and the atomics hold. */
  const char *code = "for i = 1, " XSTR(ROUNDS) " do\n"
                     "  save.player.kills:fetch_add(1)\n"
                     "  mm.transaction(save, function(v)\n"
                     "    v.gold = v.gold + 1\n"
                     "    v.quests.count = (v.quests.count or 0) + 1\n"
                     "  end)\n"
                     "end";
  int64_t gold0 = s->gold;
  uint64_t kills0 = mm3_atomic_load(&s->player.kills, 8);
  worker wa = {f, A, code, NULL}, wb = {f, B, code, NULL};
  pthread_t ta, tb;
  EXPECT(pthread_create(&ta, NULL, work, &wa) == 0);
  EXPECT(pthread_create(&tb, NULL, work, &wb) == 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  if (wa.err) FAIL("thread A: %s", wa.err);
  if (wb.err) FAIL("thread B: %s", wb.err);
  EXPECT(mm3_atomic_load(&s->player.kills, 8) == kills0 + 2 * ROUNDS);
  EXPECT(s->gold == gold0 + 2 * ROUNDS);
  mm3_ctype qt = Save_map_string_16_u16_8_CTYPE;
  EXPECT(mm3_ctype_init(&qt) == 0);
  char key[16] = "count";
  uint16_t count = 0;
  EXPECT(mm3_hmap_get(f, (uint8_t *)&s->quests, &qt, key, &count, NULL) == 0);
  EXPECT(count == 2 * ROUNDS);
  ok("two states in two threads: no lost update");

  lua_close(A);
  run(B, "assert(save.gold == 12345 + 2 * " XSTR(ROUNDS) ")");
  lua_close(B);
  EXPECT(s->level == 8);
  mm3_file_close(f);
  ok("closing the states leaves the file to the host");
  return 0;
}

/* ---- borrowed handles --------------------------------------------------- */

static int check_view(lua_State *L) {
  size_t len;
  void *p = mm3lua_check_view(L, 1, &len);
  mm3_file *f = mm3lua_check_file(L, 1);
  lua_pushlightuserdata(L, p);
  lua_pushinteger(L, (lua_Integer)len);
  lua_pushlightuserdata(L, f);
  return 3;
}

static int borrowed(const char *path) {
  mm3_file *f = open_save(path);
  Save *s = (Save *)mm3_file_root(f);
  lua_State *L = new_state(f, "save");
  run(L, "mm = require 'memmap3'");

  /* mm3lua_check_view / mm3lua_check_file give the host's bytes and file. */
  lua_pushcfunction(L, check_view);
  lua_getglobal(L, "save");
  EXPECT(lua_pcall(L, 1, 3, 0) == LUA_OK);
  EXPECT(lua_touserdata(L, -3) == (void *)s && lua_tointeger(L, -2) == SAVE_ROOT_SIZE && lua_touserdata(L, -1) == f);
  lua_pop(L, 3);
  lua_pushcfunction(L, check_view);
  run(L, "player = save.player");
  lua_getglobal(L, "player");
  EXPECT(lua_pcall(L, 1, 3, 0) == LUA_OK);
  EXPECT(lua_touserdata(L, -3) == (void *)&s->player && lua_tointeger(L, -2) == (lua_Integer)sizeof(Player));
  lua_pop(L, 3);
  run(L, "player = nil");
  ok("mm3lua_check_view and mm3lua_check_file");

  /* The script drops every view and collects: the file stays open. */
  run(L, "save.level = 3\n"
         "local p, inv = save.player, save.inventory\n"
         "inv:push({name = 'rope', count = 2})\n"
         "p, inv, save = nil, nil, nil\n"
         "collectgarbage(); collectgarbage()");
  lua_gc(L, LUA_GCCOLLECT);
  EXPECT(s->level == 3 && s->inventory.len == 1 && strcmp(s->inventory.items[0].name, "rope") == 0);
  s->level = 4;
  EXPECT(mm3_file_flush(f) == 0);
  EXPECT(mm3_file_lock(f) == 0);
  mm3_file_unlock(f);
  mm3_ctype vt = Save_vec_Item_8_CTYPE;
  EXPECT(mm3_ctype_init(&vt) == 0);
  Item torch = {.name = "torch", .count = 1};
  EXPECT(mm3_vec_push(f, (uint8_t *)&s->inventory, &vt, &torch) == 0);
  ok("after the script's collectgarbage() the host still reads and writes");

  /* A new borrowed root sees the host's writes. */
  lua_pushcfunction(L, push_root);
  lua_pushlightuserdata(L, f);
  lua_pushstring(L, "save");
  EXPECT(lua_pcall(L, 2, 0, 0) == LUA_OK);
  run(L, "assert(save.level == 4 and #save.inventory == 2 and save.inventory[2].name == 'torch')");
  ok("a root pushed again sees the host's writes");

  /* mm.close on a borrowed root detaches the script's views only. */
  run(L, "local p = save.player\n"
         "mm.close(save)\n"
         "local okk, err = pcall(function() return save.level end)\n"
         "assert(not okk and err:find('closed'), tostring(err))\n"
         "okk, err = pcall(function() return p.hp end)\n"
         "assert(not okk and err:find('closed'), tostring(err))\n"
         "mm.close(save) -- idempotent");
  s->level = 5;
  EXPECT(s->level == 5 && mm3_file_flush(f) == 0);
  EXPECT(mm3_vec_push(f, (uint8_t *)&s->inventory, &vt, &torch) == 0 && s->inventory.len == 3);
  ok("mm.close on a borrowed root leaves the host's file open");

  /* <close> on a borrowed root, and views held past it. */
  lua_pushcfunction(L, push_root);
  lua_pushlightuserdata(L, f);
  lua_pushstring(L, "save2");
  EXPECT(lua_pcall(L, 2, 0, 0) == LUA_OK);
  run(L, "do local r <close> = save2; assert(r.level == 5) end\n"
         "assert(not pcall(function() return save2.level end))\n"
         "save2 = nil; collectgarbage()");
  s->gold = 77;
  EXPECT(mm3_file_flush(f) == 0);
  ok("<close> on a borrowed root leaves the host's file open");

  /* The whole state goes; the host goes on, and a new state sees it all. */
  lua_close(L);
  EXPECT(s->level == 5 && s->gold == 77 && s->inventory.len == 3);
  s->level = 6;
  L = new_state(f, "save");
  run(L, "assert(save.level == 6 and save.gold == 77 and #save.inventory == 3)\n"
         "save.player.kills:fetch_add(2)");
  EXPECT(mm3_atomic_load(&s->player.kills, 8) == 2);
  lua_close(L);
  ok("lua_close leaves the host's file open; a new state sees it");

  mm3_file_close(f);
  return 0;
}

/* ---- a borrowed root closed inside mm.transaction / mm.lock -------------- */

/* The script's transaction (or lock) must end with the script: the host's
   file must not stay locked inside it, nor roll the host's later writes back
   when it closes. */
static int txn_close(const char *path) {
  static const char *const scripts[] = {
      "mm.transaction(save, function(s) s.level = 9; mm.close(s) end)",
      "mm.transaction(save, function(s) s.level = 9; mm.close(s); error('x') end)",
      "mm.lock(save, function(s) s.level = 9; mm.close(s) end)",
  };
  for (int i = 0; i < 3; i++) {
    remove(path);
    mm3_file *f = open_save(path);
    lua_State *L = new_state(f, "save");
    run(L, "mm = require 'memmap3'");
    (void)luaL_dostring(L, scripts[i]); /* raises or not: either is fine */
    lua_close(L);
    Save *s = (Save *)mm3_file_root(f);
    mm3_ctype vt = Save_vec_Item_8_CTYPE;
    EXPECT(mm3_ctype_init(&vt) == 0);
    Item it = {.name = "host item", .count = 1};
    EXPECT(mm3_vec_push(f, (uint8_t *)&s->inventory, &vt, &it) == 0);
    int depth = mm3_txn_depth(f);
    mm3_file_close(f);
    f = open_save(path);
    s = (Save *)mm3_file_root(f);
    uint64_t items = s->inventory.len;
    mm3_file_close(f);
    if (depth != 0 || items != 1)
      FAIL("after `%s` the host's file is still in a transaction (depth %d), and the host's own push, which "
           "returned 0, is %s after mm3_file_close",
           scripts[i], depth, items == 1 ? "kept" : "rolled back");
    ok(scripts[i]);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s two_states|borrowed|txn_close PATH\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[1], "two_states") == 0) return two_states(argv[2]);
  if (strcmp(argv[1], "borrowed") == 0) return borrowed(argv[2]);
  if (strcmp(argv[1], "txn_close") == 0) return txn_close(argv[2]);
  fprintf(stderr, "unknown test %s\n", argv[1]);
  return 2;
}
