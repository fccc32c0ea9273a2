/*
 * lmm3_file.c - memmap3.File: an open memmap3 file, from Lua. Scripts see
 * its root view; lua/memmap3/init.lua turns these primitives into mm.create,
 * mm.open, mm.flush, mm.close and friends.
 */
#include <stdlib.h>
#include <string.h>

#include "lmm3_internal.h"

static lmm3_file *tofile(lua_State *L, int idx) {
  lmm3_file *fb = lmm3_checkudata(L, idx, LMM3_FILE_MT, sizeof(lmm3_file), LMM3_FILE_MAGIC);
  if (LMM3_CLOSED(fb)) lmm3_closed_error(L, fb);
  return fb;
}

void mm3lua_push_root(lua_State *L, mm3_file *f, int owned) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "memmap3");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "_root");
  lua_remove(L, -2);
  lmm3_file *fb = lua_newuserdatauv(L, sizeof *fb, 0);
  fb->magic = LMM3_FILE_MAGIC;
  fb->f = f;
  lmm3_keep_path(fb, f);
  fb->owned = owned;
  fb->readonly = mm3_file_readonly(f);
  fb->txn_open = 0;
  fb->closing = 0;
  fb->busy = 0;
  luaL_setmetatable(L, LMM3_FILE_MT);
  lua_call(L, 1, 1);
}

void *mm3lua_check_view(lua_State *L, int idx, size_t *len) {
  lmm3_view *v = lmm3_check_view(L, idx);
  if (len) {
    lua_getmetatable(L, idx);
    lua_getfield(L, -1, "__mm3size");
    *len = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 2);
  }
  return v->p;
}

mm3_file *mm3lua_check_file(lua_State *L, int idx) { return lmm3_check_view(L, idx)->fb->f; }

void lmm3_file_close(lua_State *L, int idx) {
  lmm3_file *fb = lmm3_checkudata(L, idx, LMM3_FILE_MT, sizeof(lmm3_file), LMM3_FILE_MAGIC);
  if (fb->f && fb->txn_open > 0)
    luaL_error(L, "%s: cannot close a memmap3 file inside mm.transaction or mm.lock", mm3_file_path(fb->f));
  if (fb->f && (fb->busy > 0 || lua_gc(L, LUA_GCCOUNT) == -1)) {
    /* In a finalizer (Lua 5.4.4+ refuses lua_gc there), which ran inside
       some allocation, or while a copy of this file is under way (a debug
       hook): an operation on this very file may hold pointers into it.
       Close it for every later use now; unmap it when the File is collected
       (f_gc). */
    fb->closing = 1;
    return;
  }
  if (fb->f && fb->owned) mm3_file_close(fb->f);
  fb->f = NULL;
  fb->closing = 0;
}

static int f_gc(lua_State *L) {
  lmm3_file *fb = lmm3_checkudata(L, 1, LMM3_FILE_MT, sizeof(lmm3_file), LMM3_FILE_MAGIC);
  if (fb->f && !fb->owned) /* a borrowed file outlives scripts: end what they left open */
    for (; fb->txn_open > 0; fb->txn_open--) mm3_txn_rollback(fb->f, 0);
  if (fb->f && fb->owned) mm3_file_close(fb->f); /* rolls back an open transaction */
  fb->f = NULL;
  return 0;
}

/* core.file_open(path, schema|nil, root_size, create, exclusive, readonly,
                  perm, reserve) -> File | fail, msg, code */
static int l_file_open(lua_State *L) {
  mm3_file_opts o = {0};
  const char *path = lmm3_checkpath(L, 1, "memmap3");
  o.schema = luaL_optstring(L, 2, NULL);
  o.root_size = (uint64_t)luaL_optinteger(L, 3, 0);
  o.create = lua_toboolean(L, 4);
  o.exclusive = lua_toboolean(L, 5);
  o.readonly = lua_toboolean(L, 6);
  o.perm = (unsigned)luaL_optinteger(L, 7, 0);
  o.reserve = (uint64_t)luaL_optinteger(L, 8, 0);
  lmm3_file *fb = lua_newuserdatauv(L, sizeof *fb, 0);
  fb->magic = LMM3_FILE_MAGIC;
  fb->f = NULL; /* closed until open succeeds */
  fb->path[0] = 0;
  fb->closing = 0;
  fb->busy = 0;
  fb->owned = 1;
  fb->txn_open = 0;
  fb->readonly = o.readonly;
  luaL_setmetatable(L, LMM3_FILE_MT);
  int rc = mm3_file_open(path, &o, &fb->f);
  if (rc) return lmm3_fail(L, path, rc);
  lmm3_keep_path(fb, fb->f);
  return 1;
}

/* core.file_read_schema(path) -> text | fail, msg, code */
static int l_file_read_schema(lua_State *L) {
  const char *path = lmm3_checkpath(L, 1, "memmap3");
  char *buf;
  size_t len;
  int rc = mm3_file_read_schema(path, &buf, &len);
  if (rc) return lmm3_fail(L, path, rc);
  lua_pushlstring(L, buf, len);
  free(buf);
  return 1;
}

/* core.file_root(file, meta) -> root view. A type of another size than the
   file's root is refused: its view would reach past the root (a C host's
   file handed to scripts, mm3lua_push_root, gets no other check). */
static int l_file_root(lua_State *L) {
  lmm3_file *fb = tofile(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "__mm3size");
  int isint;
  lua_Integer size = lua_tointegerx(L, -1, &isint);
  lua_pop(L, 1);
  uint64_t root = mm3_file_root_size(fb->f);
  if (!lmm3_tinfo_of(L, 2)) return luaL_argerror(L, 2, "not a memmap3 type's metatable");
  if (!isint || size < 0 || (uint64_t)size != root)
    return luaL_error(L, "%s: root is %I bytes in the file, %I in the schema", mm3_file_path(fb->f),
                      (lua_Integer)root, size);
  lmm3_push_view(L, 1, fb, mm3_file_root(fb->f), 2);
  ((lmm3_view *)lua_touserdata(L, -1))->root = 1;
  return 1;
}

static int l_file_schema(lua_State *L) {
  size_t len;
  const char *s = mm3_file_schema(tofile(L, 1)->f, &len);
  lua_pushlstring(L, s, len);
  return 1;
}

static int l_file_path(lua_State *L) {
  lua_pushstring(L, mm3_file_path(tofile(L, 1)->f));
  return 1;
}

static int l_file_flush(lua_State *L) {
  lmm3_file *fb = tofile(L, 1);
  int rc = mm3_file_flush(fb->f);
  if (rc) return lmm3_fail(L, mm3_file_path(fb->f), rc);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_file_close(lua_State *L) {
  lmm3_file_close(L, 1);
  return 0;
}

static int l_file_isopen(lua_State *L) {
  lmm3_file *fb = lmm3_checkudata(L, 1, LMM3_FILE_MT, sizeof(lmm3_file), LMM3_FILE_MAGIC);
  lua_pushboolean(L, !LMM3_CLOSED(fb));
  return 1;
}

static int l_file_info(lua_State *L) {
  lmm3_file *fb = tofile(L, 1);
  if (LMM3_CLOSED(fb)) return lmm3_closed_error(L, fb);
  mm3_file_refresh(fb->f); /* the size as it is now: other processes may have grown it (an error: as mapped) */
  lua_createtable(L, 0, 11); /* (room for file_usage's) */
  lua_pushinteger(L, (lua_Integer)mm3_file_size(fb->f));
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)mm3_file_root_size(fb->f));
  lua_setfield(L, -2, "root_size");
  lua_pushinteger(L, (lua_Integer)(mm3_file_root(fb->f) - mm3_file_base(fb->f)));
  lua_setfield(L, -2, "root_offset");
  char hex[17];
  static const char digits[] = "0123456789abcdef";
  uint64_t fp = mm3_file_fingerprint(fb->f);
  for (int i = 15; i >= 0; i--, fp >>= 4) hex[i] = digits[fp & 15];
  lua_pushlstring(L, hex, 16);
  lua_setfield(L, -2, "fingerprint");
  lua_pushinteger(L, mm3__hdr(fb->f)->version); /* the file's (this library opens 1 to 3) */
  lua_setfield(L, -2, "format_version");
  lua_pushboolean(L, fb->readonly);
  lua_setfield(L, -2, "readonly");
  return 1;
}

/* core.file_usage(file, t): the heap's figures into table t (mm.info's; a
   walk over every block, so not in file_info, which every open calls).
   Nothing on a damaged heap: mm.check says how. */
static int l_file_usage(lua_State *L) {
  lmm3_file *fb = tofile(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  mm3_heap_usage u;
  if (mm3_file_usage(fb->f, &u) == 0) {
    static const char *const names[] = {"heap", "heap_used", "heap_free", "log", "heap_leaked"};
    const uint64_t vals[] = {u.heap, u.used, u.free, u.log, u.leaked};
    for (int i = 0; i < 5; i++) {
      lua_pushinteger(L, (lua_Integer)vals[i]);
      lua_setfield(L, 2, names[i]);
    }
  }
  return 0;
}

/* core.transaction(v, fn) -> what fn(v) returns: mm.transaction in one C
   call (begin, protected call, commit; or rollback and raise again). */
/* For mm.transaction and mm.lock (what): check (v, fn), begin a transaction
   on v's file and leave fn, v on the stack, ready for lua_pcall. */
static lmm3_file *begin_scoped(lua_State *L, const char *what, const char *begin_what, uint64_t *sp) {
  const lmm3_view *v = lmm3_view_or_null(L, 1);
  if (!v) luaL_error(L, "%s: expected a memmap3 view, got %s", what, luaL_typename(L, 1));
  if (lua_type(L, 2) != LUA_TFUNCTION) luaL_error(L, "%s: expected a function", what);
  lmm3_check_view(L, 1); /* a closed or truncated file raises here */
  lmm3_file *fb = v->fb;
  int rc = mm3_txn_begin(fb->f, sp);
  if (rc) luaL_error(L, "%s: cannot %s: %s", mm3_file_path(fb->f), begin_what, mm3_strerror(rc));
  fb->txn_open++;
  lua_settop(L, 2);
  lua_pushvalue(L, 1);
  return fb;
}

static int l_transaction(lua_State *L) {
  uint64_t sp;
  lmm3_file *fb = begin_scoped(L, "mm.transaction", "begin a transaction", &sp);
  int rc;
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    if (fb->f) { /* fn may have closed the file (closing rolled it back) */
      if (fb->txn_open > 0) fb->txn_open--;
      mm3_txn_rollback(fb->f, sp);
    }
    return lua_error(L);
  }
  if (!fb->f) return lmm3_closed_error(L, fb);
  if (fb->txn_open > 0) fb->txn_open--;
  rc = mm3_txn_commit(fb->f);
  if (fb->closing) return lmm3_closed_error(L, fb); /* closed by a finalizer */
  if (rc) return luaL_error(L, "%s: commit failed, the data may not be on disk: %s", mm3_file_path(fb->f),
                            mm3_strerror(rc));
  return lua_gettop(L) - 1;
}

/* core.lock(v, fn) -> what fn(v) returns: mm.lock. Like core.transaction,
   but an error inside fn keeps what fn wrote (the work is committed, then
   the error raised again). A C call: fn cannot yield out of it (a coroutine
   abandoned there would keep the lock and the log open). */
static int l_lock(lua_State *L) {
  uint64_t sp;
  lmm3_file *fb = begin_scoped(L, "mm.lock", "take the lock", &sp);
  int rc = 0;
  int st = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (fb->f) { /* fn may have closed the file (closing ended the lock) */
    if (fb->txn_open > 0) fb->txn_open--;
    rc = mm3_txn_commit(fb->f);
  }
  if (st != LUA_OK) return lua_error(L);
  if (!fb->f || fb->closing) return lmm3_closed_error(L, fb);
  if (rc) return luaL_error(L, "%s: commit failed, the data may not be on disk: %s", mm3_file_path(fb->f),
                            mm3_strerror(rc));
  return lua_gettop(L) - 1;
}

/* core.file_seq(file) -> the write sequence (mm3_file_seq) */
static int l_file_seq(lua_State *L) {
  lmm3_file *fb = tofile(L, 1);
  if (LMM3_CLOSED(fb)) return lmm3_closed_error(L, fb);
  lua_pushinteger(L, (lua_Integer)mm3_file_seq(fb->f));
  return 1;
}

static int l_set_durable(lua_State *L) {
  mm3_file_set_durable(tofile(L, 1)->f, lua_toboolean(L, 2));
  return 0;
}

static int l_recovered(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mm3_file_recovered(tofile(L, 1)->f));
  return 1;
}

/* core.schema_layout(text) -> size, align | fail, msg, code (the C layout) */
static int l_schema_layout(lua_State *L) {
  uint64_t size;
  uint32_t align;
  int rc = mm3_schema_layout(luaL_checkstring(L, 1), &size, &align);
  if (rc) return lmm3_fail(L, "schema", rc);
  lua_pushinteger(L, (lua_Integer)size);
  lua_pushinteger(L, (lua_Integer)align);
  return 2;
}

/* core.file_check(file) -> true | nil, why, outgrown (true: the file is
   bigger than this open's reserve, so nothing past it can be checked) */
static int l_file_check(lua_State *L) {
  lmm3_file *fb = tofile(L, 1);
  char why[256];
  int rc = mm3_file_check(fb->f, why, sizeof why);
  if (rc) {
    luaL_pushfail(L);
    lua_pushstring(L, why);
    lua_pushboolean(L, rc == MM3_ERESERVE);
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int f_tostring(lua_State *L) {
  lmm3_file *fb = lmm3_checkudata(L, 1, LMM3_FILE_MT, sizeof(lmm3_file), LMM3_FILE_MAGIC);
  if (LMM3_CLOSED(fb)) lua_pushliteral(L, LMM3_FILE_MT " (closed)");
  else lua_pushfstring(L, LMM3_FILE_MT " (%s)", mm3_file_path(fb->f));
  return 1;
}

void lmm3_open_file(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"file_open", l_file_open},   {"file_read_schema", l_file_read_schema},
      {"file_root", l_file_root},   {"file_schema", l_file_schema},
      {"file_path", l_file_path},   {"file_flush", l_file_flush},
      {"file_close", l_file_close}, {"file_isopen", l_file_isopen},
      {"file_info", l_file_info},   {"file_usage", l_file_usage},
      {"transaction", l_transaction}, {"lock", l_lock},
      {"file_set_durable", l_set_durable}, {"file_recovered", l_recovered},
      {"file_check", l_file_check}, {"schema_layout", l_schema_layout},
      {"file_seq", l_file_seq},
      {NULL, NULL}};
  luaL_newmetatable(L, LMM3_FILE_MT);
  lua_pushcfunction(L, f_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, f_gc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, f_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
