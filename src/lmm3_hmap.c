/*
 * lmm3_hmap.c - maps from Lua: map<K, V, N> and map<K, V> used like tables.
 * m[k] (nil when absent), m[k] = v, m[k] = nil deletes, #m, pairs(m),
 * m << {k, v}. A map has no methods, so no key is ever shadowed by one;
 * mm.clear(m) and mm.totable(m) cover the rest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lmm3_internal.h"

#define SMALL 256

typedef struct buf {
  uint8_t small[SMALL];
} buf;

static uint8_t *space(lua_State *L, buf *b, size_t n) {
  return n <= SMALL ? b->small : lua_newuserdatauv(L, n, 0);
}

static const char *map_name(lua_State *L, int viewidx) {
  lua_getiuservalue(L, viewidx, 3);
  const char *n = lua_tostring(L, -1);
  lua_pop(L, 1);
  return n ? n : "root";
}

/* Encode the key at idx; NULL (and a reason pushed) if it cannot be a key. */
static const char *encode_key(lua_State *L, lmm3_view *v, int idx, uint8_t *key) {
  memset(key, 0, v->ti->ct.key_size);
  int64_t kd = v->ti->kdesc;
  return lmm3_set_scalar(L, key, (int)(kd & 0xFF), (uint32_t)((kd >> 8) & 0xFFFFFF), idx);
}

/* upvalues: 1 value desc, 2 key desc */
int lmm3_hmap_index(lua_State *L) {
  /* (checked below before the upvalue's descriptor) */
  lmm3_view *v = lmm3_cont_kind(L, 1, lmm3_cont_view_fast(L, 1), 1);
  const mm3_ctype *ct = &v->ti->ct;
  buf kb, vb;
  uint64_t kw[2] = {0, 0}, vw[2];
  uint8_t *key = ct->key_size <= sizeof kw ? (uint8_t *)kw : space(L, &kb, ct->key_size);
  size_t n;
  const char *s;
  if ((v->ti->kdesc & 0xFF) == LMM3_STRING && lua_type(L, 2) == LUA_TSTRING &&
      (s = lua_tolstring(L, 2, &n), n <= ct->key_size)) {
    /* Lookups skip the UTF-8 check: a string that could not be stored is
       simply not found, nor is one with a NUL inside. */
    if (key == (uint8_t *)kw) {
      memcpy(kw, s, n);
      if (mm3__first_zero(kw[0], kw[1]) < n) return 0;
    } else {
      if (memchr(s, 0, n)) return 0;
      memcpy(key, s, n);
      memset(key + n, 0, ct->key_size - n);
    }
  } else if (encode_key(L, v, 2, key)) {
    return 0; /* no such key can exist: nil, as a table */
  }
  uint64_t h = mm3_hmap_key_hash(v->fb->f, ct, key);
  int64_t d = v->ti->edesc;
  uint8_t *val = d < 0 ? NULL : ct->elem_size <= sizeof vw ? (uint8_t *)vw : space(L, &vb, ct->elem_size), *ptr;
  int rc = mm3__hmap_get(v->fb->f, v->p, ct, key, h, val, &ptr);
  if (rc == MM3_ENOTFOUND) return 0;
  if (rc) return lmm3_cont_error(L, 1, rc);
  if (d >= 0 && ((d & 0xFF) == LMM3_I64 || (d & 0xFF) == LMM3_U64)) { /* the common values, inline */
    lua_pushinteger(L, (lua_Integer)vw[0]);
    return 1;
  }
  if (d < 0) lmm3_cont_desc_view(L); /* the upvalue's descriptor: this view's type's? */
  lmm3_push_elem(L, 1, d, lua_upvalueindex(1), val ? val : ptr);
  return 1;
}

/* A value that names containers inside (see lmm3_encode_defer): put, then
   its containers assigned where it now is. Arguments: the list set aside,
   the view, key, value (lightuserdata), where. */
static int put_deferred_run(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 2);
  const uint8_t *key = lua_touserdata(L, 3), *val = lua_touserdata(L, 4);
  uint8_t *p = NULL;
  int rc = mm3_hmap_put(v->fb->f, v->p, &v->ti->ct, key, val, NULL);
  if (!rc) rc = mm3_hmap_get(v->fb->f, v->p, &v->ti->ct, key, NULL, &p);
  if (rc) return lmm3_cont_error(L, 2, rc);
  lmm3_apply_deferred(L, 1, v->fb, p, lua_tostring(L, 5));
  return 0;
}

static void put(lua_State *L, int viewidx, int kidx, int vidx, int descidx) {
  lmm3_view *v = lua_touserdata(L, viewidx);
  const mm3_ctype *ct = &v->ti->ct;
  if (v->fb->readonly) lmm3_cont_error(L, viewidx, MM3_EREADONLY);
  buf kb, vb;
  uint8_t *key = space(L, &kb, ct->key_size);
  const char *why = encode_key(L, v, kidx, key);
  if (why) luaL_error(L, "map '%s': bad key: %s", map_name(L, viewidx), why);
  if (lua_isnil(L, vidx)) {
    int rc = mm3_hmap_del(v->fb->f, v->p, ct, key);
    if (rc && rc != MM3_ENOTFOUND) lmm3_cont_error(L, viewidx, rc);
    return;
  }
  uint8_t *val = space(L, &vb, ct->elem_size);
  if (v->ti->edesc >= 0) { /* a scalar: no message is built unless it is refused */
    int64_t d = v->ti->edesc;
    memset(val, 0, ct->elem_size);
    why = lmm3_set_scalar(L, val, (int)(d & 0xFF), (uint32_t)((d >> 8) & 0xFFFFFF), vidx);
    if (why) luaL_error(L, "map '%s' value: %s", map_name(L, viewidx), why);
  } else {
    const char *where = lua_pushfstring(L, "map '%s' value", map_name(L, viewidx));
    int list = lmm3_encode_defer(L, vidx, v->ti->edesc, descidx, val, ct->elem_size, where);
    if (list) { /* one transaction: the put and what goes inside the value */
      lua_pushcfunction(L, put_deferred_run);
      lua_pushvalue(L, list);
      lua_pushvalue(L, viewidx);
      lua_pushlightuserdata(L, key);
      lua_pushlightuserdata(L, val);
      lua_pushstring(L, where);
      lmm3_in_txn(L, v->fb, 5, where);
      return;
    }
  }
  int rc = mm3_hmap_put(v->fb->f, v->p, ct, key, val, NULL);
  if (rc) lmm3_cont_error(L, viewidx, rc);
}

int lmm3_hmap_newindex(lua_State *L) {
  lmm3_view *v = lmm3_cont_kind(L, 1, lmm3_cont_view_fast(L, 1), 1);
  if (v->ti->edesc < 0) lmm3_cont_desc_view(L); /* put reads the upvalue's descriptor */
  put(L, 1, 2, 3, lua_upvalueindex(1));
  return 0;
}

int lmm3_hmap_len(lua_State *L) {
  lmm3_view *v = lmm3_cont_kind(L, 1, lmm3_cont_view(L, 1), 1);
  lua_pushinteger(L, (lua_Integer)lmm3_cont_len(L, 1, v));
  return 1;
}

/* m << {k, v} */
int lmm3_hmap_shl(lua_State *L) {
  lmm3_cont_view(L, 1);
  if (lua_type(L, 2) != LUA_TTABLE || lua_rawlen(L, 2) < 1)
    return luaL_error(L, "map '%s' << expects {key, value}", map_name(L, 1));
  lua_rawgeti(L, 2, 1);
  if (lua_rawgeti(L, 2, 2) == LUA_TNIL) /* not a delete: that is m[k] = nil */
    return luaL_error(L, "map '%s' << expects {key, value}: the value is missing (m[k] = nil deletes)",
                      map_name(L, 1));
  /* nothing else in it ({k, v, k2, v2} is not two entries: refused, not half taken) */
  int entries = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    if (++entries > 2) {
      lua_pop(L, 1);
      break;
    }
  }
  if (entries != 2)
    return luaL_error(L, "map '%s' << expects {key, value} and nothing else",
                      map_name(L, 1));
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__mm3elem");
  put(L, 1, 3, 4, lua_gettop(L));
  lua_settop(L, 1);
  return 1;
}

/* An iterator keeps its map's metatable (upvalue upv), not the address of
   its type: a reference keeps the type alive, where a type collected since
   could leave its address to another, with keys of another size. */
static void check_same_type(lua_State *L, int upv) {
  int same = lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(upv));
  if (!same) luaL_error(L, "map iterator called on another container");
  lua_pop(L, 1);
}

/* pairs: upvalue 1 is the position (two u64 in a userdata), 2 the map's
   metatable. */
static int map_next(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  check_same_type(L, 2); /* an iterator taken from another map */
  uint64_t *pos = lua_touserdata(L, lua_upvalueindex(1));
  const mm3_ctype *ct = &v->ti->ct;
  buf kb, vb;
  /* the key and a scalar value copied while the entry is that entry (read
     through its node afterwards, they could be another's, or a freed
     node's zeros); a struct value is a view of the node the key has now */
  uint8_t *k = space(L, &kb, ct->key_size), *val = v->ti->edesc >= 0 ? space(L, &vb, ct->elem_size) : NULL;
  int rc;
  for (;;) {
    rc = mm3_hmap_next_copy(v->fb->f, v->p, ct, pos, k, val);
    if (rc || val) break;
    rc = mm3_hmap_get(v->fb->f, v->p, ct, k, NULL, &val);
    if (rc != MM3_ENOTFOUND) break; /* (deleted since: the next one) */
  }
  if (rc == MM3_ENOTFOUND) return 0;
  if (rc) return lmm3_cont_error(L, 1, rc);
  int64_t kd = v->ti->kdesc;
  lmm3_push_scalar(L, k, (int)(kd & 0xFF), (uint32_t)((kd >> 8) & 0xFFFFFF));
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__mm3elem");
  lmm3_push_elem(L, 1, v->ti->edesc, lua_gettop(L), val);
  lua_replace(L, -3);
  lua_pop(L, 1);
  return 2;
}

/* Growable maps: pairs walks a snapshot of the keys taken under the lock,
   looking each up as it goes, so a resize by any process during the
   traversal cannot make it skip or repeat an entry; entries deleted since
   are skipped, entries inserted since are not seen. upvalues: 1 the keys
   (a userdata), 2 their count, 3 the next index, 4 the map's metatable. */
static int snap_next(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  check_same_type(L, 4); /* the keys are that map type's size */
  const mm3_ctype *ct = &v->ti->ct;
  const uint8_t *keys = lua_touserdata(L, lua_upvalueindex(1));
  lua_Integer n = lua_tointeger(L, lua_upvalueindex(2)), i = lua_tointeger(L, lua_upvalueindex(3));
  int64_t kd = v->ti->kdesc;
  buf vb;
  /* a scalar value is copied as the lookup checks it (as m[k] does): read
     through the node afterwards, it could be another key's by then (the
     entry deleted, its node reused) */
  uint8_t *copy = v->ti->edesc >= 0 ? space(L, &vb, ct->elem_size) : NULL;
  for (; i < n; i++) {
    const uint8_t *k = keys + (size_t)i * ct->key_size;
    uint8_t *val;
    int rc = mm3_hmap_get(v->fb->f, v->p, ct, k, copy, &val);
    if (rc == MM3_ENOTFOUND) continue; /* deleted since */
    if (rc) return lmm3_cont_error(L, 1, rc);
    if (copy) val = copy;
    lua_pushinteger(L, i + 1);
    lua_replace(L, lua_upvalueindex(3));
    lmm3_push_scalar(L, k, (int)(kd & 0xFF), (uint32_t)((kd >> 8) & 0xFFFFFF));
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__mm3elem");
    lmm3_push_elem(L, 1, v->ti->edesc, lua_gettop(L), val);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return 2;
  }
  lua_pushinteger(L, n);
  lua_replace(L, lua_upvalueindex(3));
  return 0;
}

static int snapshot_pairs(lua_State *L, lmm3_view *v) {
  const mm3_ctype *ct = &v->ti->ct;
  size_t cap = 0, n = 0;
  uint8_t *keybuf = NULL;
  int locked = mm3_file_lock(v->fb->f) == 0; /* no Lua call until unlocked */
  /* under the lock, with no change until the keys are all taken: a resize
     under way need not be finished first (in a transaction, that would log
     every chain it moves) */
  uint64_t pos[3] = {locked ? MM3_HMAP_AS_IS : 0, 0, 0};
  int rc;
  uint64_t count = __atomic_load_n((uint64_t *)v->p, __ATOMIC_ACQUIRE);
  /* (a damaged count: at most the nodes the file has room for; the file as
     it is now, which other processes may have grown) */
  mm3_file_refresh(v->fb->f);
  uint64_t room = ct->node_size ? v->fb->f->mapped / ct->node_size : count;
  if (count > room) count = room;
  /* (a read-only handle takes no lock: each step is checked against the
     writers instead, mm3_hmap_next_copy) */
  for (;;) {
    /* more entries than the map holds: its links loop (a read-only walk,
       which the writers do not wait for, may see entries they add meanwhile:
       only a walk past twice the nodes the file has room for loops) */
    if (locked ? n > count : n > 2 * room + 64) {
      rc = MM3_ECORRUPT;
      break;
    }
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      uint8_t *nb = realloc(keybuf, ncap * ct->key_size);
      if (!nb) {
        rc = ENOMEM;
        break;
      }
      keybuf = nb;
      cap = ncap;
    }
    if ((rc = mm3_hmap_next_copy(v->fb->f, v->p, ct, pos, keybuf + n * ct->key_size, NULL)) != 0) break;
    n++;
  }
  if (locked) mm3_file_unlock(v->fb->f);
  if (rc != MM3_ENOTFOUND) {
    free(keybuf);
    return lmm3_cont_error(L, 1, rc);
  }
  uint8_t *keys = lua_newuserdatauv(L, n ? n * ct->key_size : 1, 0);
  if (n) memcpy(keys, keybuf, n * ct->key_size);
  free(keybuf);
  lua_pushinteger(L, (lua_Integer)n);
  lua_pushinteger(L, 0);
  lua_getmetatable(L, 1);
  lua_pushcclosure(L, snap_next, 4);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  lua_pushnil(L);
  return 4;
}

int lmm3_hmap_pairs(lua_State *L) {
  lmm3_view *v = lmm3_cont_kind(L, 1, lmm3_cont_view(L, 1), 1);
  lmm3_cont_len(L, 1, v); /* (raises for a count the map cannot have) */
  if (v->ti->kind == LMM3_HMAP) return snapshot_pairs(L, v);
  uint64_t *pos = lua_newuserdatauv(L, 3 * sizeof(uint64_t), 0);
  pos[0] = pos[1] = pos[2] = 0;
  lua_getmetatable(L, 1);
  lua_pushcclosure(L, map_next, 2);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  lua_pushnil(L);
  return 4;
}

void lmm3_hmap_copy(lua_State *L, mm3_file *f, uint8_t *p, int meta) {
  meta = lua_absindex(L, meta);
  luaL_checkstack(L, 8, "memmap3: value nested too deeply");
  const lmm3_tinfo *ti = lmm3_tinfo_of(L, meta);
  if (!ti) luaL_error(L, "memmap3: not a map type");
  lua_pushnil(L); /* (where __mm3ti was) */
  lua_getfield(L, meta, "__mm3elem");
  int d = lua_gettop(L);
  /* the lock first, once: a dead writer's unfinished work is rolled back
     before the count is read (the traversal takes it again at each step) */
  if (mm3_file_lock(f) == 0) mm3_file_unlock(f);
  uint64_t n, seen = 0;
  int rc = lmm3_len_checked(f, p, &ti->ct, &n);
  if (rc) {
    lua_getfield(L, meta, "__name"); /* "file.mm3: a map<u32, u32, 4>: file is corrupted" */
    luaL_error(L, "memmap3: %s: a %s: %s", mm3_file_path(f), lua_tostring(L, -1), mm3_strerror(rc));
  }
  /* the count is only a size hint: it comes from the file */
  lua_createtable(L, 0, n > (1 << 16) ? 1 << 16 : (int)n);
  /* In a transaction this thread holds the lock throughout, so nobody else
     changes the map meanwhile: a resize under way is walked as it is, not
     finished first (which would log every chain it moved). */
  uint64_t pos[3] = {mm3_txn_depth(f) > 0 ? MM3_HMAP_AS_IS : 0, 0, 0};
  buf kb, vb;
  /* each entry copied as it is read (read through its node afterwards, it
     could be another's by then) */
  uint8_t *k = space(L, &kb, ti->ct.key_size), *val = space(L, &vb, ti->ct.elem_size);
  int64_t kd = ti->kdesc;
  lua_pushvalue(L, d + 1); /* the table on top again (the buffers below it) */
  while ((rc = mm3_hmap_next_copy(f, p, &ti->ct, pos, k, val)) == 0) {
    /* more entries than the count: links that loop, or other processes
       at work meanwhile (their commits can grow and shrink the count, and
       a resize can show an entry twice). Only a loop passes twice as many
       nodes as the file can hold. */
    if (seen++ > n && ti->ct.kind == MM3_HMAP && seen > 2 * (mm3_file_size(f) / ti->ct.node_size) + 64)
      luaL_error(L, "memmap3: map is damaged (its links loop)");
    lmm3_push_scalar(L, k, (int)(kd & 0xFF), (uint32_t)((kd >> 8) & 0xFFFFFF));
    lmm3_push_copy(L, f, ti->edesc, d, val);
    lua_rawset(L, -3);
  }
  if (rc != MM3_ENOTFOUND) luaL_error(L, "memmap3: map: %s", mm3_strerror(rc));
  lua_replace(L, d - 1);
  lua_settop(L, d - 1);
}

/* What lmm3_hmap_assign stores: n keys and values, packed. */
typedef struct mapassign {
  lmm3_file *fb;
  uint8_t *p;
  const mm3_ctype *ct;
  const uint8_t *keys, *vals;
  size_t n, nlists; /* entries, and how many of them set containers aside */
  const char *where;
} mapassign;

/* Arguments: the mapassign, the containers set aside by entry. */
static int assign_run(lua_State *L) {
  const mapassign *a = lua_touserdata(L, 1);
  mm3_file *f = a->fb->f;
  int rc = mm3_hmap_clear(f, a->p, a->ct);
  if (!rc) rc = mm3_hmap_put_many(f, a->p, a->ct, a->n, a->keys, a->vals, NULL);
  if (rc) return luaL_error(L, "%s: %s", a->where, mm3_strerror(rc));
  if (a->nlists == 0) return 0;
  /* Two Lua keys may be one map key (bytes<4>: "ab" and "ab\0"): the last
     put wins, so its entry alone names what goes inside, going backwards. */
  lua_newtable(L); /* value pointers seen */
  for (size_t i = a->n; i-- > 0;) {
    uint8_t *v = NULL;
    rc = mm3_hmap_get(f, a->p, a->ct, a->keys + i * a->ct->key_size, NULL, &v);
    if (rc) return luaL_error(L, "%s: %s", a->where, mm3_strerror(rc));
    lua_pushlightuserdata(L, v);
    if (lua_rawget(L, 3) == LUA_TNIL) {
      lua_pushlightuserdata(L, v);
      lua_pushboolean(L, 1);
      lua_rawset(L, 3);
      if (lua_rawgeti(L, 2, (lua_Integer)i + 1) == LUA_TTABLE) /* (each set-aside names its key) */
        lmm3_apply_deferred(L, lua_gettop(L), a->fb, v, a->where);
    }
    lua_settop(L, 3);
  }
  return 0;
}

void lmm3_hmap_assign(lua_State *L, int vidx, int meta, uint8_t *p, lmm3_file *fb, const char *where) {
  if (lua_type(L, vidx) != LUA_TTABLE) luaL_error(L, "%s: expected a table, got %s", where, luaL_typename(L, vidx));
  const lmm3_tinfo *ti = lmm3_tinfo_of(L, meta);
  if (!ti) luaL_error(L, "%s: not a map type", where);
  lua_pushnil(L); /* (where __mm3ti was) */
  lua_getfield(L, meta, "__mm3elem");
  int d = lua_gettop(L);
  const mm3_ctype *ct = &ti->ct;
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, vidx)) {
    lua_pop(L, 1);
    n++;
  }
  if (ct->kind == MM3_FMAP && (uint64_t)n > ct->cap)
    luaL_error(L, "%s: %I entries do not fit (capacity %I)", where, n, (lua_Integer)ct->cap);
  /* keys, then values, each packed: what mm3_hmap_put_many takes */
  size_t nk = (size_t)(n ? n : 1);
  uint8_t *all = lua_newuserdatauv(L, nk * ((size_t)ct->key_size + ct->elem_size), 0);
  uint8_t *vals = all + nk * ct->key_size;
  lua_newtable(L); /* the containers each value names inside, set aside by entry */
  int lists = lua_gettop(L);
  size_t nlists = 0;
  lua_Integer i = 0;
  lua_pushnil(L);
  while (lua_next(L, vidx)) {
    if (i >= n) /* a finalizer run by an allocation above added keys to it */
      luaL_error(L, "%s: the table changed while it was being read", where);
    uint8_t *k = all + i * ct->key_size;
    memset(k, 0, ct->key_size);
    int64_t kd = ti->kdesc;
    const char *why = lmm3_set_scalar(L, k, (int)(kd & 0xFF), (uint32_t)((kd >> 8) & 0xFFFFFF), -2);
    if (why) luaL_error(L, "%s: bad key: %s", where, why);
    if (lmm3_encode_at(L, -1, ti->edesc, d, vals + i * ct->elem_size, ct->elem_size, where, lua_gettop(L) - 1, 1)) {
      lua_rawseti(L, lists, i + 1);
      nlists++;
    }
    lua_pop(L, 1);
    i++;
  }
  n = i; /* keys removed meanwhile: what was read */
  /* one transaction: a failed put restores the old entries */
  mapassign a = {fb, p, ct, all, vals, (size_t)n, nlists, where};
  lua_pushcfunction(L, assign_run);
  lua_pushlightuserdata(L, &a);
  lua_pushvalue(L, lists);
  lmm3_in_txn(L, fb, 2, where);
  lua_settop(L, d - 2);
}
