/*
 * embed.c - a C host that embeds Lua and shares a memmap3 file with its
 * scripts: `make demo-embed`, or build/embed [SAVE [SCRIPT]].
 *
 * The host opens (or creates) a game save with the C API alone, using the
 * schema text and root size of the header `memmap3 cheader` generated from
 * examples/embed_save.lua (build/gen/embed_save.h). It hands the file to a
 * lua_State as the global `save` (borrowed: the script cannot close it),
 * runs examples/embed_script.lua, which plays one level, collects the
 * script's garbage, and then reads what the script changed straight through
 * the generated structs: the same mapped bytes, no copy, no serialisation.
 *
 * Environment: MM3_LUA_DIR, the directory that holds memmap3/init.lua
 * (default "lua": run from the repository's top directory).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "memmap3.h"
#include "memmap3_lua.h"
#include "embed_save.h"

static const char *const CLASS_NAMES[] = {"warrior", "mage", "rogue"};

/* Runs protected: mm3lua_push_root raises if memmap3's Lua code is missing. */
static int push_save(lua_State *L) {
  mm3_file *f = lua_touserdata(L, 1);
  mm3lua_push_root(L, f, 0); /* borrowed: the host closes f */
  lua_setglobal(L, "save");
  return 0;
}

/* A Lua state that finds memmap3: the C module linked into this program,
   the pure-Lua modules in lua_dir. NULL (and a message) on failure. */
static lua_State *new_state(const char *lua_dir) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  luaL_openlibs(L);
  luaL_requiref(L, "memmap3.core", luaopen_memmap3_core, 0);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", lua_dir, lua_dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
  return L;
}

static void show(const char *when, const Save *s) {
  printf("host: %s: level %u, gold %" PRId64 ", hp %" PRId32 ", kills %" PRIu64 ", %" PRIu64 " kinds of item\n",
         when, s->level, s->gold, s->player.hp, mm3_atomic_load(&s->player.kills, 8), s->inventory.len);
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "embed_save.mm3";
  const char *script = argc > 2 ? argv[2] : "examples/embed_script.lua";
  const char *lua_dir = getenv("MM3_LUA_DIR") ? getenv("MM3_LUA_DIR") : "lua";

  /* The file, from C alone: the header carries the schema and root size. */
  mm3_file *f;
  int rc = mm3_file_open(path, &(mm3_file_opts){.create = 1, .schema = SAVE_SCHEMA, .root_size = SAVE_ROOT_SIZE},
                         &f);
  if (rc) {
    fprintf(stderr, "embed: %s: %s\n", path, mm3_strerror(rc));
    return 1;
  }
  Save *s = (Save *)mm3_file_root(f); /* valid until mm3_file_close */

  if (s->version == 0) { /* a new save: the host sets it up in place */
    mm3_file_lock(f);
    s->version = 1;
    s->level = 1;
    strncpy(s->player.name, "Ana", sizeof s->player.name);
    s->player.class = CLASS_MAGE;
    s->player.hp = 100;
    mm3_file_unlock(f);
    printf("host: new save for %s the %s\n", s->player.name, CLASS_NAMES[s->player.class]);
  }
  show("before the script", s);

  lua_State *L = new_state(lua_dir);
  if (!L) {
    fprintf(stderr, "embed: cannot create a Lua state\n");
    mm3_file_close(f);
    return 1;
  }
  lua_pushcfunction(L, push_save);
  lua_pushlightuserdata(L, f);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK || luaL_loadfile(L, script) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
    lua_close(L);
    mm3_file_close(f);
    return 1;
  }
  lua_gc(L, LUA_GCCOLLECT); /* the script's views die; the file stays open */

  /* What the script changed, read through the generated structs. */
  show("after the script", s);
  printf("host: %s stands at (%g, %g, %g)\n", s->player.name, (double)s->player.pos[0], (double)s->player.pos[1],
         (double)s->player.pos[2]);
  for (uint64_t i = 0; i < s->inventory.len; i++)
    printf("host: item %" PRIu64 ": %u x %.16s\n", i + 1, s->inventory.items[i].count, s->inventory.items[i].name);

  /* Maps hash keys with the file's seed: look them up with the C API, given
     the mm3_ctype the header describes. */
  mm3_ctype quests = Save_map_string_16_u16_8_CTYPE;
  mm3_ctype_init(&quests);
  char key[16] = "dragon"; /* string keys are NUL-padded to their size */
  uint16_t progress;
  if (mm3_hmap_get(f, (uint8_t *)&s->quests, &quests, key, &progress, NULL) == 0)
    printf("host: quest 'dragon' at %u%%\n", progress);

  /* A ring's len counts every push; the last min(len, N) entries remain. */
  uint64_t total = s->journal.len, n = total < 4 ? total : 4;
  for (uint64_t i = total - n; i < total; i++) printf("host: journal: %.48s\n", s->journal.items[i % 4]);

  /* The host writes too, and a script would see it at once. */
  mm3_atomic_fetch(&s->player.kills, 8, MM3_ATOMIC_ADD, 1, 0);

  lua_close(L); /* closes the script's handle: borrowed, so f stays open */
  show("after lua_close", s);
  rc = mm3_file_flush(f);
  mm3_file_close(f);
  if (rc) {
    fprintf(stderr, "embed: %s: %s\n", path, mm3_strerror(rc));
    return 1;
  }
  return 0;
}
