/*
 * lmm3_cont.c - sequences from Lua: vec<T,N>, ring<T,N>, segmented<T> and
 * string_array<N,LEN> views, and what every container view shares (its
 * metatable, errors, `<<`, assignment from a table, mm.totable, mm.clear).
 * Maps are in lmm3_hmap.c.
 *
 * Every write converts the Lua value into a buffer first (this may raise),
 * then calls the C core, which takes the file's lock for the operation: no
 * Lua error can leave the lock held.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lmm3_internal.h"

#define SMALL 256

static const char *kind_name(int code) {
  switch (code) {
    case LMM3_VEC: return "vec";
    case LMM3_RING: return "ring";
    case LMM3_SARRAY: return "string_array";
    case LMM3_FMAP: case LMM3_HMAP: return "map";
    case LMM3_SEG: return "segmented";
  }
  return "container";
}

/* v (the userdata at idx, or NULL) if it is a container view of an open file. */
static inline lmm3_view *open_container(lua_State *L, int idx, lmm3_view *v) {
  if (!v || !v->ti || !LMM3_IS_CONTAINER(v->ti->kind)) luaL_typeerror(L, idx, "memmap3 container");
  if (LMM3_CLOSED(v->fb)) lmm3_closed_error(L, v->fb);
  if (v->fb->f->truncated) lmm3_truncated_error(L, v->fb);
  return v;
}

lmm3_view *lmm3_cont_view(lua_State *L, int idx) { return open_container(L, idx, lmm3_view_or_null(L, idx)); }

lmm3_view *lmm3_cont_view_fast(lua_State *L, int idx) {
  return open_container(L, idx, lmm3_view_unchecked(L, idx));
}

lmm3_view *lmm3_cont_desc_view(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  if (!lmm3_up_is(L, 1, v->ti)) luaL_typeerror(L, 1, "memmap3 container of this type");
  return v;
}

static const char *cont_name(lua_State *L, int viewidx) {
  lua_getiuservalue(L, viewidx, 3);
  const char *n = lua_tostring(L, -1);
  lua_pop(L, 1); /* the view keeps the string */
  return n ? n : "root";
}

int lmm3_cont_error(lua_State *L, int viewidx, int rc) {
  lmm3_view *v = lua_touserdata(L, viewidx);
  const char *kind = kind_name(v->ti->kind), *name = cont_name(L, viewidx);
  if (rc == MM3_EFULL)
    return luaL_error(L, "%s '%s' is full (capacity %I)", kind, name, (lua_Integer)v->ti->ct.cap);
  if (rc == MM3_EREADONLY)
    return luaL_error(L, "%s '%s': memmap3 file %s is open read-only", kind, name,
                      v->fb->f ? mm3_file_path(v->fb->f) : "?");
  return luaL_error(L, "%s '%s': %s", kind, name, mm3_strerror(rc));
}

static void check_writable(lua_State *L, lmm3_view *v, int viewidx) {
  if (v->fb->readonly) lmm3_cont_error(L, viewidx, MM3_EREADONLY);
}

/* A buffer for one element: on the C stack when small. */
typedef struct elembuf {
  uint8_t small[SMALL];
  uint8_t *p;
} elembuf;

static uint8_t *buf_for(lua_State *L, elembuf *b, size_t size) {
  b->p = size <= SMALL ? b->small : lua_newuserdatauv(L, size, 0);
  return b->p;
}

/* ---- element access ---- */

static uint8_t *seq_at(lmm3_view *v, uint64_t i) {
  const mm3_ctype *ct = &v->ti->ct;
  switch (v->ti->kind) {
    case LMM3_SEG: return mm3_seg_at(v->fb->f, v->p, ct, i);
    case LMM3_SARRAY: return i < ct->cap ? v->p + i * ct->elem_size : NULL;
    default: return mm3_vec_at(v->fb->f, v->p, ct, i);
  }
}

int lmm3_len_checked(mm3_file *f, uint8_t *p, const mm3_ctype *ct, uint64_t *n) {
  if (mm3__len_ok(f, p, ct, n) == 0) return 0;
  /* a growable map another process grew past this handle's mapping: no
     lock for that (# would wait behind its transaction) */
  if (mm3_file_refresh(f) == 0 && mm3__len_ok(f, p, ct, n) == 0) return 0;
  /* again at one moment: another process may be rolling a write back, or
     (read-only) growing the map on and on meanwhile */
  int locked = mm3_file_lock(f) == 0, rc = 0, again = 0;
  mm3__retry retry = {0};
  uint64_t s = 0;
  while (locked || (again = mm3__read_begin(f, &retry, &s)) == 0) {
    rc = mm3_file_refresh(f);
    if (!rc) rc = mm3__len_ok(f, p, ct, n);
    if (locked || mm3__read_ok(f, s)) break;
  }
  if (locked) mm3_file_unlock(f);
  return again ? again : rc;
}

uint64_t lmm3_cont_len(lua_State *L, int idx, lmm3_view *v) {
  if (v->ti->kind == LMM3_SARRAY) return v->ti->ct.cap;
  uint64_t n;
  int rc = lmm3_len_checked(v->fb->f, v->p, &v->ti->ct, &n);
  if (rc) lmm3_cont_error(L, idx, rc);
  return n;
}

static uint64_t seq_len(lmm3_view *v) {
  if (v->ti->kind == LMM3_SARRAY) return v->ti->ct.cap;
  return mm3_container_len(v->fb->f, v->p, &v->ti->ct);
}

/* upvalues: 1 element desc, 2 methods */
static int q_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) { /* a method (v:push(x)): it checks the view itself */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
  }
  lmm3_view *v = lmm3_cont_kind(L, 1, lmm3_cont_view_fast(L, 1), 0);
  int isint = lua_isinteger(L, 2);
  if (!isint && lua_type(L, 2) == LUA_TNUMBER) lua_tointegerx(L, 2, &isint); /* 1.0 is index 1, as in a table */
  if (isint) {
    lua_Integer i = lua_tointeger(L, 2);
    uint8_t *p = i >= 1 ? seq_at(v, (uint64_t)i - 1) : NULL;
    if (!p) {
      if (i < 1 || (uint64_t)i > lmm3_cont_len(L, 1, v)) return 0; /* nil past the end, as a table (and ipairs) */
      /* inside the length, yet not there: another process may be between
         emptying the list and filling it again (its segments freed, the
         length grown back). Look again under the lock, where nobody is. */
      mm3_file *f = v->fb->f;
      int locked = mm3_file_lock(f) == 0;
      p = seq_at(v, (uint64_t)i - 1);
      uint64_t n = seq_len(v);
      if (locked) mm3_file_unlock(f);
      if (!p) {
        if ((uint64_t)i > n) return 0;
        /* still: the file grew past this open's reserve (or its segment
           table is damaged) */
        int rc = mm3_file_refresh(f);
        return lmm3_cont_error(L, 1, rc ? rc : MM3_ECORRUPT);
      }
    }
    if (v->ti->edesc < 0) lmm3_cont_desc_view(L); /* the upvalue's descriptor: this view's type's? */
    lmm3_push_elem(L, 1, v->ti->edesc, lua_upvalueindex(1), p);
    return 1;
  }
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1;
  if (lua_type(L, 2) == LUA_TSTRING)
    return luaL_error(L, "%s '%s' has no method '%s'", kind_name(v->ti->kind), cont_name(L, 1),
                      lua_tostring(L, 2));
  return 0;
}

static const char *where(lua_State *L, int viewidx, const char *what) {
  lmm3_view *v = lua_touserdata(L, viewidx);
  return lua_pushfstring(L, "%s '%s' %s", kind_name(v->ti->kind), cont_name(L, viewidx), what);
}

/* How an element is stored: pushed, set at index i or inserted before it
   (0-based); buf holds it, encoded. where names it in errors once an
   aggregate was encoded. */
enum { ST_PUSH, ST_SET, ST_INSERT };
typedef struct seqstore {
  int op;
  uint64_t i;
  uint8_t *buf;
  const char *where;
} seqstore;

/* "vec 'v' element 3" (set or inserted at 3), "vec 'v' element" (pushed). */
static const char *element_where(lua_State *L, int viewidx, const seqstore *s) {
  if (s->op == ST_PUSH) return where(L, viewidx, "element");
  lmm3_view *v = lua_touserdata(L, viewidx);
  return lua_pushfstring(L, "%s '%s' element %I", kind_name(v->ti->kind), cont_name(L, viewidx),
                         (lua_Integer)s->i + 1);
}

/* Convert the value at idx into s->buf, one element of the container at
   viewidx. A scalar builds no message unless it is refused; an aggregate
   pushes it into s->where, and the list of the containers it names, set
   aside, is pushed and its index returned (0: none). */
static int encode(lua_State *L, int viewidx, int idx, int descidx, seqstore *s) {
  lmm3_view *v = lua_touserdata(L, viewidx);
  const mm3_ctype *ct = &v->ti->ct;
  int64_t d = v->ti->edesc;
  if (d >= 0) {
    memset(s->buf, 0, ct->elem_size);
    const char *why = lmm3_set_scalar(L, s->buf, (int)(d & 0xFF), (uint32_t)((d >> 8) & 0xFFFFFF), idx);
    if (why) luaL_error(L, "%s: %s", element_where(L, viewidx, s), why);
    return 0;
  }
  s->where = element_where(L, viewidx, s);
  return lmm3_encode_defer(L, idx, d, descidx, s->buf, ct->elem_size, s->where);
}

/* Store s->buf into v as s says: 0 or an error code; *at (unless NULL) is
   then the element's index. */
static int seq_store(lmm3_view *v, const seqstore *s, uint64_t *at) {
  mm3_file *f = v->fb->f;
  const mm3_ctype *ct = &v->ti->ct;
  int rc, seg = v->ti->kind == LMM3_SEG;
  if (at) *at = s->i;
  switch (s->op) {
    case ST_SET:
      if (v->ti->kind == LMM3_SARRAY) /* a string of up to LEN bytes: through the undo log */
        return mm3_file_write(f, v->p + s->i * ct->elem_size, s->buf, ct->elem_size);
      return seg ? mm3_seg_set(f, v->p, ct, s->i, s->buf) : mm3_vec_set(f, v->p, ct, s->i, s->buf);
    case ST_INSERT: return mm3_vec_insert(f, v->p, ct, s->i, s->buf);
    default:
      rc = seg ? mm3_seg_push(f, v->p, ct, s->buf) : mm3_vec_push(f, v->p, ct, s->buf);
      if (!rc && at) *at = seq_len(v) - 1; /* a ring's newest too */
      return rc;
  }
}

/* Arguments: the seqstore, the containers set aside, the view. */
static int seq_store_run(lua_State *L) {
  const seqstore *s = lua_touserdata(L, 1);
  lmm3_view *v = lmm3_cont_view(L, 3);
  uint64_t at;
  int rc = seq_store(v, s, &at);
  uint8_t *p = rc ? NULL : seq_at(v, at);
  if (!p) return lmm3_cont_error(L, 3, rc ? rc : MM3_ECORRUPT);
  lmm3_apply_deferred(L, 2, v->fb, p, s->where);
  return 0;
}

/* Convert the value at idx and store it into the container at viewidx as op
   says; the containers it names inside are assigned where it then is, in
   the same transaction, so a failure leaves the container as it was. */
static void store_elem(lua_State *L, lmm3_view *v, int viewidx, int idx, int descidx, int op, uint64_t i) {
  elembuf b;
  seqstore s = {op, i, buf_for(L, &b, v->ti->ct.elem_size), NULL};
  int list = encode(L, viewidx, idx, descidx, &s);
  if (list) {
    lua_pushcfunction(L, seq_store_run);
    lua_pushlightuserdata(L, &s);
    lua_pushvalue(L, list);
    lua_pushvalue(L, viewidx);
    lmm3_in_txn(L, v->fb, 3, s.where);
    return;
  }
  int rc = seq_store(v, &s, NULL);
  if (rc) lmm3_cont_error(L, viewidx, rc);
}

static int q_newindex(lua_State *L) {
  lmm3_view *v = lmm3_cont_kind(L, 1, lmm3_cont_view(L, 1), 0);
  check_writable(L, v, 1);
  int isint;
  lua_Integer i = lua_tointegerx(L, 2, &isint);
  uint64_t n = lmm3_cont_len(L, 1, v);
  if (lua_type(L, 2) != LUA_TNUMBER || !isint || i < 1 || (uint64_t)i > n)
    return luaL_error(L, "%s '%s': index %s is out of range (1..%I)", kind_name(v->ti->kind), cont_name(L, 1),
                      luaL_tolstring(L, 2, NULL), (lua_Integer)n);
  if (v->ti->edesc < 0) lmm3_cont_desc_view(L); /* store_elem reads the upvalue's descriptor */
  store_elem(L, v, 1, 3, lua_upvalueindex(1), ST_SET, (uint64_t)i - 1);
  return 0;
}

static int q_len(lua_State *L) {
  lmm3_view *v = lmm3_cont_kind(L, 1, lmm3_cont_view(L, 1), 0);
  lua_pushinteger(L, (lua_Integer)lmm3_cont_len(L, 1, v));
  return 1;
}

/* Append the value at idx (vec, ring, segmented). */
static void push_value(lua_State *L, lmm3_view *v, int viewidx, int idx, int descidx) {
  check_writable(L, v, viewidx);
  const mm3_ctype *ct = &v->ti->ct;
  int code = v->ti->edesc >= 0 ? (int)(v->ti->edesc & 0xFF) : 0;
  if ((code == LMM3_I64 || code == LMM3_U64) && lua_isinteger(L, idx)) {
    int64_t x = (int64_t)lua_tointegerx(L, idx, NULL); /* the common case: no encoding step */
    int rc = v->ti->kind == LMM3_SEG ? mm3_seg_push(v->fb->f, v->p, ct, &x) : mm3_vec_push(v->fb->f, v->p, ct, &x);
    if (rc) lmm3_cont_error(L, viewidx, rc);
    return;
  }
  store_elem(L, v, viewidx, idx, descidx, ST_PUSH, 0);
}

/* A method taken from one kind of container may be called on another
   (s.v.insert(s.r, ...)): each checks that it is one of its kinds. */
#define K(kind) (1u << ((kind) - LMM3_VEC)) /* container kinds are LMM3_VEC..LMM3_SEG */
static void only_kinds(lua_State *L, lmm3_view *v, unsigned kinds, const char *method) {
  if (!(kinds & K(v->ti->kind)))
    luaL_error(L, "%s '%s' has no method '%s'", kind_name(v->ti->kind), cont_name(L, 1), method);
}
#define only_vec(L, v, method) only_kinds(L, v, K(LMM3_VEC), method)

static int m_push(lua_State *L) {
  lmm3_view *v = lmm3_cont_view_fast(L, 1);
  if (v->ti->kind == LMM3_SARRAY) return luaL_error(L, "string_array has a fixed length: assign sa[i] = s");
  only_kinds(L, v, K(LMM3_VEC) | K(LMM3_RING) | K(LMM3_SEG), "push");
  luaL_checkany(L, 2);
  if (v->ti->edesc >= 0) { /* a scalar element: no descriptor table needed */
    push_value(L, v, 1, 2, 0);
    return 0;
  }
  lmm3_cont_view(L, 1); /* the metatable's descriptor next: this view's type's? */
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__mm3elem");
  push_value(L, v, 1, 2, lua_gettop(L));
  return 0;
}

/* The copy of a removed element (view, its bytes): run protected. */
static int copy_removed(lua_State *L) {
  /* (checked again: a debug hook at this call may have swapped its metatable) */
  lmm3_view *v = lmm3_view_or_null(L, 1);
  if (!v || LMM3_CLOSED(v->fb)) return luaL_typeerror(L, 1, "memmap3 view");
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__mm3elem");
  lmm3_push_copy(L, v->fb->f, v->ti->edesc, lua_gettop(L), lua_touserdata(L, 2));
  return 1;
}

/* Pop/remove: copy out under the core's lock, then convert. A copy of
   containers (an element's map) calls Lua (the list builder), where a debug
   hook may close the file: while it runs the file is busy, and a close only
   marks it closing (as mm.totable). */
static int finish_removed(lua_State *L, lmm3_view *v, uint8_t *buf, int rc) {
  if (rc == MM3_ERANGE) return 0; /* nothing to pop: nil, as table.remove */
  if (rc) return lmm3_cont_error(L, 1, rc);
  lua_pushcfunction(L, copy_removed);
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, buf);
  v->fb->busy++;
  int st = lua_pcall(L, 2, 1, 0);
  v->fb->busy--;
  if (st != LUA_OK) return lua_error(L);
  return 1;
}

static int m_pop(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  check_writable(L, v, 1);
  if (v->ti->kind != LMM3_VEC && v->ti->kind != LMM3_SEG)
    return luaL_error(L, "%s '%s' has no method 'pop'", kind_name(v->ti->kind), cont_name(L, 1));
  elembuf b;
  uint8_t *buf = buf_for(L, &b, v->ti->ct.elem_size);
  int rc = v->ti->kind == LMM3_SEG ? mm3_seg_pop(v->fb->f, v->p, &v->ti->ct, buf)
                                   : mm3_vec_pop(v->fb->f, v->p, &v->ti->ct, buf);
  return finish_removed(L, v, buf, rc);
}


static int m_insert(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  only_vec(L, v, "insert");
  check_writable(L, v, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  luaL_checkany(L, 3);
  uint64_t n = lmm3_cont_len(L, 1, v);
  if (i < 1 || (uint64_t)i > n + 1)
    return luaL_error(L, "vec '%s': insert position %I is out of range (1..%I)", cont_name(L, 1), i,
                      (lua_Integer)n + 1);
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__mm3elem");
  store_elem(L, v, 1, 3, lua_gettop(L), ST_INSERT, (uint64_t)i - 1);
  return 0;
}

static int m_remove(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  only_vec(L, v, "remove");
  check_writable(L, v, 1);
  const mm3_ctype *ct = &v->ti->ct;
  uint64_t n = lmm3_cont_len(L, 1, v);
  lua_Integer i = luaL_optinteger(L, 2, (lua_Integer)n);
  if (n == 0 && lua_isnoneornil(L, 2)) return 0;
  if (i < 1 || (uint64_t)i > n)
    return luaL_error(L, "vec '%s': remove position %I is out of range (1..%I)", cont_name(L, 1), i,
                      (lua_Integer)n);
  elembuf b;
  uint8_t *buf = buf_for(L, &b, ct->elem_size);
  return finish_removed(L, v, buf, mm3_vec_remove(v->fb->f, v->p, ct, (uint64_t)i - 1, buf));
}

/* Zero n bytes of a string_array as one crash-atomic, logged operation. */
static int zero_logged(mm3_file *f, uint8_t *p, size_t n) {
  uint64_t sp;
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  rc = mm3__log(f, p, n);
  if (!rc) memset(p, 0, n);
  return mm3__op_end(f, sp, rc);
}

static int clear_any(lua_State *L, int idx) {
  lmm3_view *v = lua_touserdata(L, idx);
  const mm3_ctype *ct = &v->ti->ct;
  int rc;
  switch (v->ti->kind) {
    case LMM3_SEG: rc = mm3_seg_truncate(v->fb->f, v->p, ct, 0); break;
    case LMM3_FMAP: case LMM3_HMAP: rc = mm3_hmap_clear(v->fb->f, v->p, ct); break;
    case LMM3_SARRAY: rc = zero_logged(v->fb->f, v->p, ct->cap * ct->elem_size); break;
    default: rc = mm3_vec_clear(v->fb->f, v->p, ct);
  }
  if (rc) return lmm3_cont_error(L, idx, rc);
  return 0;
}

static int m_clear(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  check_writable(L, v, 1);
  return clear_any(L, 1);
}

static int m_truncate(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  only_kinds(L, v, K(LMM3_SEG), "truncate");
  check_writable(L, v, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  uint64_t len = lmm3_cont_len(L, 1, v);
  if (n < 0 || (uint64_t)n > len)
    return luaL_error(L, "segmented '%s': truncate to %I is out of range (0..%I)", cont_name(L, 1), n,
                      (lua_Integer)len);
  int rc = mm3_seg_truncate(v->fb->f, v->p, &v->ti->ct, (uint64_t)n);
  if (rc) return lmm3_cont_error(L, 1, rc);
  return 0;
}

/* ring:latest([k]): the k-th newest element (1 = the newest); nil past what
   the ring holds, and for k < 1 (as r[0]). */
static int m_latest(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  only_kinds(L, v, K(LMM3_RING), "latest");
  lua_Integer k = luaL_optinteger(L, 2, 1);
  uint64_t n = mm3_container_len(v->fb->f, v->p, &v->ti->ct);
  if (k < 1 || (uint64_t)k > n) {
    lua_pushnil(L);
    return 1;
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__mm3elem");
  lmm3_push_elem(L, 1, v->ti->edesc, lua_gettop(L), mm3_vec_at(v->fb->f, v->p, &v->ti->ct, n - (uint64_t)k));
  return 1;
}

/* string_array:count(): how many strings are not empty. */
static int m_count(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  only_kinds(L, v, K(LMM3_SARRAY), "count");
  lua_Integer c = 0;
  for (uint64_t i = 0; i < v->ti->ct.cap; i++) c += v->p[i * v->ti->ct.elem_size] != 0;
  lua_pushinteger(L, c);
  return 1;
}

/* v << x: push (maps: x = {key, value}); returns v so that `<<` chains. */
static int c_shl(lua_State *L) {
  lmm3_view *v = lmm3_cont_view_fast(L, 1); /* (the scalar path reads this view's type only) */
  if (v->ti->kind == LMM3_FMAP || v->ti->kind == LMM3_HMAP) return lmm3_hmap_shl(L);
  if (v->ti->kind == LMM3_SARRAY) return luaL_error(L, "string_array has a fixed length: assign sa[i] = s");
  if (v->ti->edesc >= 0) {
    push_value(L, v, 1, 2, 0);
  } else {
    lmm3_cont_view(L, 1);
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__mm3elem");
    push_value(L, v, 1, 2, lua_gettop(L));
  }
  lua_pushvalue(L, 1);
  return 1;
}

static int c_tostring(lua_State *L) {
  lmm3_view *v = lmm3_view_or_null(L, 1);
  if (!v || !v->ti || !LMM3_IS_CONTAINER(v->ti->kind) || !lua_getmetatable(L, 1))
    return luaL_typeerror(L, 1, "memmap3 container");
  lua_getfield(L, -1, "__name");
  if (LMM3_CLOSED(v->fb)) lua_pushfstring(L, "%s (closed file)", lua_tostring(L, -1));
  else lua_pushfstring(L, "%s '%s' (%I): %p", lua_tostring(L, -1), cont_name(L, 1),
                       (lua_Integer)(v->ti->kind == LMM3_SARRAY ? v->ti->ct.cap
                                                                : mm3_container_len(v->fb->f, v->p, &v->ti->ct)),
                       (void *)v->p);
  return 1;
}

static int c_close(lua_State *L) {
  lmm3_view *v = lmm3_view_or_null(L, 1);
  if (v && v->root) {
    lua_getiuservalue(L, 1, 1);
    lmm3_file_close(L, -1);
  }
  return 0;
}

static int c_eq(lua_State *L) {
  lmm3_view *a = lmm3_view_or_null(L, 1), *b = lmm3_view_or_null(L, 2);
  lua_pushboolean(L, a && b && a->p == b->p && a->ti == b->ti);
  return 1;
}

/* ---- assignment from a table, plain copies ---- */


/* What lmm3_container_assign stores: n elements converted into all. */
typedef struct seqassign {
  lmm3_file *fb;
  uint8_t *p;
  const lmm3_tinfo *ti;
  const uint8_t *all;
  lua_Integer n;
  const char *where;
} seqassign;

/* Arguments: the seqassign, the containers set aside by element. */
static int assign_run(lua_State *L) {
  const seqassign *a = lua_touserdata(L, 1);
  mm3_file *f = a->fb->f;
  const mm3_ctype *ct = &a->ti->ct;
  uint8_t *p = a->p;
  int rc, seg = a->ti->kind == LMM3_SEG;
  if (a->ti->kind == LMM3_SARRAY) { /* strings: nothing inside */
    rc = zero_logged(f, p, ct->cap * ct->elem_size);
    if (!rc) rc = mm3_file_write(f, p, a->all, (size_t)a->n * ct->elem_size);
    if (rc) return luaL_error(L, "%s: %s", a->where, mm3_strerror(rc));
    return 0;
  }
  rc = seg ? mm3_seg_truncate(f, p, ct, 0) : mm3_vec_clear(f, p, ct);
  /* each element's containers are assigned right after it is pushed, where
     it then is (the newest): those of a ring's elements that later ones push
     out are checked all the same */
  for (lua_Integer i = 0; !rc && i < a->n; i++) {
    const uint8_t *x = a->all + i * ct->elem_size;
    rc = seg ? mm3_seg_push(f, p, ct, x) : mm3_vec_push(f, p, ct, x);
    if (!rc && lua_rawgeti(L, 2, i + 1) == LUA_TTABLE) {
      uint64_t at = mm3_container_len(f, p, ct) - 1;
      uint8_t *e = seg ? mm3_seg_at(f, p, ct, at) : mm3_vec_at(f, p, ct, at);
      if (!e) rc = MM3_ECORRUPT;
      else lmm3_apply_deferred(L, 3, a->fb, e, a->where); /* (each set-aside names its element) */
    }
    lua_settop(L, 2);
  }
  if (rc) return luaL_error(L, "%s: %s", a->where, mm3_strerror(rc));
  return 0;
}

void lmm3_container_assign(lua_State *L, int vidx, int descidx, uint8_t *p, lmm3_file *fb, const char *where) {
  lua_rawgeti(L, descidx, LMM3_D_META);
  int meta = lua_gettop(L);
  const lmm3_tinfo *ti = lmm3_tinfo_of(L, meta);
  if (!ti) luaL_error(L, "%s: not a container type", where);
  lua_pushnil(L); /* (where __mm3ti was) */
  lua_getfield(L, meta, "__mm3elem");
  int edesc_idx = lua_gettop(L);
  if (fb->readonly) luaL_error(L, "%s: memmap3 file is open read-only", where);
  if (ti->kind == LMM3_FMAP || ti->kind == LMM3_HMAP) {
    lmm3_hmap_assign(L, vidx, meta, p, fb, where);
    lua_settop(L, meta - 1);
    return;
  }
  if (lua_type(L, vidx) != LUA_TTABLE)
    luaL_error(L, "%s: expected a table, got %s", where, luaL_typename(L, vidx));
  const mm3_ctype *ct = &ti->ct;
  lua_Integer n = (lua_Integer)lua_rawlen(L, vidx);
  /* a sequence only: any other key (a name, 0, a hole's far side) would be
     dropped silently, so it is refused */
  lua_pushnil(L);
  while (lua_next(L, vidx)) {
    lua_pop(L, 1);
    int isint;
    lua_Integer k = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) != LUA_TNUMBER || !isint || k < 1 || k > n)
      luaL_error(L, "%s: key %s is not a position 1..%I (%s takes a sequence)", where, luaL_tolstring(L, -1, NULL),
                 n, kind_name(ti->kind));
  }
  if ((ti->kind == LMM3_VEC || ti->kind == LMM3_SARRAY) && (uint64_t)n > ct->cap)
    luaL_error(L, "%s: %I elements do not fit (capacity %I)", where, n, (lua_Integer)ct->cap);
  /* every element converted before anything changes; the containers they
     name inside are set aside by element (lists[i]) */
  uint8_t *all = lua_newuserdatauv(L, (size_t)(n ? n : 1) * ct->elem_size, 0);
  lua_newtable(L);
  int lists = lua_gettop(L);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, vidx, i);
    lua_pushinteger(L, i); /* (errors name "element i") */
    if (lmm3_encode_at(L, -2, ti->edesc, edesc_idx, all + (i - 1) * ct->elem_size, ct->elem_size, where,
                       lua_gettop(L), 0))
      lua_rawseti(L, lists, i);
    lua_pop(L, 2);
  }
  /* One transaction: a push that fails part way (a full disk) puts the old
     contents back instead of leaving the container half replaced. */
  seqassign a = {fb, p, ti, all, n, where};
  lua_pushcfunction(L, assign_run);
  lua_pushlightuserdata(L, &a);
  lua_pushvalue(L, lists);
  lmm3_in_txn(L, fb, 2, where);
  lua_settop(L, meta - 1);
}

static uint8_t *copy_at(mm3_file *f, uint8_t *p, const lmm3_tinfo *ti, uint64_t i) {
  switch (ti->kind) {
    case LMM3_SEG: return mm3_seg_at(f, p, &ti->ct, i);
    case LMM3_SARRAY: return p + i * ti->ct.elem_size;
    default: return mm3_vec_at(f, p, &ti->ct, i);
  }
}

/* The elements' bytes, copied at one moment into buf (room for cap
   elements): their count. Under the lock, or through a read-only handle
   (which cannot take it) made again while a write overlapped the copy (a
   ring push or a vec insert moves elements under a reader: elements of two
   pushes, once); raises when mm3__read_begin gives up, and for a damaged
   container (a length it cannot have, an element it cannot reach). */
static uint64_t snapshot(lua_State *L, mm3_file *f, uint8_t *p, int meta, uint8_t *buf, uint64_t cap) {
  const lmm3_tinfo *ti = lmm3_tinfo_of(L, meta);
  size_t es = ti->ct.elem_size;
  int locked = mm3_file_lock(f) == 0;
  mm3__retry retry = {0};
  uint64_t s = 0;
  int again = 0;
  while (locked || (again = mm3__read_begin(f, &retry, &s)) == 0) {
    uint64_t n = ti->ct.cap, i = 0;
    int rc = ti->kind == LMM3_SARRAY ? 0 : mm3__len_ok(f, p, &ti->ct, &n);
    if (rc == MM3_ECORRUPT && mm3_file_refresh(f) == 0) rc = mm3__len_ok(f, p, &ti->ct, &n); /* (grown) */
    if (n > cap) n = cap;
    for (; !rc && i < n; i++) {
      const uint8_t *e = copy_at(f, p, ti, i);
      if (!e) rc = MM3_ECORRUPT;
      else memcpy(buf + i * es, e, es);
    }
    if (locked || mm3__read_ok(f, s)) {
      if (locked) mm3_file_unlock(f);
      if (!rc) return i;
      lua_getfield(L, meta, "__name"); /* "file.mm3: a vec<u32, 4>: file is corrupted" */
      return (uint64_t)luaL_error(L, "memmap3: %s: a %s: %s", mm3_file_path(f), lua_tostring(L, -1),
                                  mm3_strerror(rc));
    }
  }
  return (uint64_t)luaL_error(L, "memmap3: %s", mm3_strerror(again)); /* (no lock is held) */
}

void lmm3_cont_copy(lua_State *L, mm3_file *f, uint8_t *p, int meta) {
  meta = lua_absindex(L, meta);
  const lmm3_tinfo *ti = lmm3_tinfo_of(L, meta);
  if (!ti) luaL_error(L, "memmap3: not a container type");
  if (ti->kind == LMM3_FMAP || ti->kind == LMM3_HMAP) {
    lmm3_hmap_copy(L, f, p, meta);
    return;
  }
  luaL_checkstack(L, 8, "memmap3: value nested too deeply");
  lua_getfield(L, meta, "__mm3elem");
  int d = lua_gettop(L);
  const mm3_ctype *ct = &ti->ct;
  /* the bytes first, at one moment; then the Lua values (which may run Lua
     code: no lock meanwhile). Room for the count now and a little more
     (others may push meanwhile: what does not fit waits for the next copy) */
  uint64_t n = ti->kind == LMM3_SARRAY ? ct->cap : mm3_container_len(f, p, ct);
  uint64_t room = n + 64, most = mm3_file_size(f) / (ct->elem_size ? ct->elem_size : 1) + 64;
  if (ti->kind == LMM3_RING || ti->kind == LMM3_VEC || ti->kind == LMM3_SARRAY) most = ct->cap;
  if (room > most) room = most; /* (a damaged length: no more than can be there) */
  uint8_t *all = lua_newuserdatauv(L, (size_t)(room ? room : 1) * ct->elem_size, 0);
  n = snapshot(L, f, p, meta, all, room);
  if (ti->edesc >= 0 && n > 0) {
    /* scalars: built at once (lmm3_list_begin), a batch at a time */
    int code = (int)(ti->edesc & 0xFF);
    uint32_t size = (uint32_t)((ti->edesc >> 8) & 0xFFFFFF);
    lua_Integer m = lmm3_list_begin(L, (lua_Integer)n);
    lmm3_push_scalars(L, all, m, ct->elem_size, code, size);
    lmm3_list_end(L, m);
    for (uint64_t i = (uint64_t)m; i < n; i++) {
      lmm3_push_scalar(L, all + i * ct->elem_size, code, size);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  } else {
    lua_createtable(L, n > (1 << 16) ? 1 << 16 : (int)n, 0);
    for (uint64_t i = 0; i < n; i++) {
      lmm3_push_copy(L, f, ti->edesc, d, all + i * ct->elem_size);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
  lua_replace(L, d); /* the table where the element desc was; the copy goes */
  lua_settop(L, d);
}

/* ---- metatables ---- */


/* core.new_container(code, name, params, elem_desc [, key_desc]) -> metatable.
   params: elem_size, elem_align, key_size, key_align, key_is_string, cap, size */
static int l_new_container(lua_State *L) {
  int code = (int)luaL_checkinteger(L, 1);
  luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checkany(L, 4);
  static const int kinds[] = {MM3_VEC, MM3_RING, MM3_VEC, MM3_FMAP, MM3_HMAP, MM3_SEGMENTED};
  if (!LMM3_IS_CONTAINER(code)) return luaL_error(L, "new_container: bad code %d", code);
  lmm3_tinfo *ti = lua_newuserdatauv(L, sizeof *ti, 0);
  memset(ti, 0, sizeof *ti);
  ti->kind = code;
  ti->nuv = 3;
  ti->ct.kind = (mm3_ckind)kinds[code - LMM3_VEC];
  lua_getfield(L, 3, "elem_size");
  ti->ct.elem_size = (uint32_t)lua_tointeger(L, -1);
  lua_getfield(L, 3, "elem_align");
  ti->ct.elem_align = (uint32_t)lua_tointeger(L, -1);
  lua_getfield(L, 3, "key_size");
  ti->ct.key_size = (uint32_t)lua_tointeger(L, -1);
  lua_getfield(L, 3, "key_align");
  ti->ct.key_align = (uint32_t)lua_tointeger(L, -1);
  lua_getfield(L, 3, "key_is_string");
  ti->ct.key_is_string = lua_toboolean(L, -1);
  lua_getfield(L, 3, "cap");
  ti->ct.cap = (uint64_t)lua_tointeger(L, -1);
  lua_getfield(L, 3, "size");
  lua_Integer want = lua_tointeger(L, -1);
  lua_pop(L, 7);
  if (code == LMM3_SARRAY) {
    ti->ct.size = ti->ct.cap * ti->ct.elem_size;
  } else if (mm3_ctype_init(&ti->ct) != 0) {
    return luaL_error(L, "new_container: bad container type %s", lua_tostring(L, 2));
  }
  if ((lua_Integer)ti->ct.size != want)
    return luaL_error(L, "memmap3: layout of %s disagrees between Lua (%I) and C (%I)", lua_tostring(L, 2),
                      want, (lua_Integer)ti->ct.size);
  ti->edesc = lua_type(L, 4) == LUA_TNUMBER ? lua_tointeger(L, 4) : -1;
  ti->kdesc = lua_type(L, 5) == LUA_TNUMBER ? lua_tointeger(L, 5) : -1;
  ti->up = lua_type(L, 4) == LUA_TTABLE ? lua_topointer(L, 4) : NULL;
  int tii = lua_gettop(L);

  lua_createtable(L, 0, 20);
  int mt = lua_gettop(L);
  ti->meta = lua_topointer(L, mt);
  lua_pushvalue(L, tii);
  lua_setfield(L, mt, "__mm3ti");
  lua_pushvalue(L, 2);
  lua_setfield(L, mt, "__name");
  lua_pushinteger(L, code);
  lua_setfield(L, mt, "__mm3kind");
  lua_pushinteger(L, (lua_Integer)ti->ct.size);
  lua_setfield(L, mt, "__mm3size");
  lua_pushvalue(L, 4);
  lua_setfield(L, mt, "__mm3elem");
  lua_pushvalue(L, 5);
  lua_setfield(L, mt, "__mm3key");
  if (code == LMM3_FMAP || code == LMM3_HMAP) {
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 5);
    lua_pushcclosure(L, lmm3_hmap_index, 2);
    lua_setfield(L, mt, "__index");
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 5);
    lua_pushcclosure(L, lmm3_hmap_newindex, 2);
    lua_setfield(L, mt, "__newindex");
    lua_pushcfunction(L, lmm3_hmap_len);
    lua_setfield(L, mt, "__len");
    lua_pushcfunction(L, lmm3_hmap_pairs);
    lua_setfield(L, mt, "__pairs");
  } else {
    luaL_Reg all[] = {{"push", m_push}, {"pop", m_pop},       {"insert", m_insert}, {"remove", m_remove},
                      {"clear", m_clear}, {"truncate", m_truncate}, {"latest", m_latest}, {"count", m_count},
                      {NULL, NULL}};
    static const char *const have[][6] = {
        {"push", "pop", "insert", "remove", "clear", NULL}, /* vec */
        {"push", "latest", "clear", NULL},                  /* ring */
        {"count", "clear", NULL},                           /* string_array */
        {NULL}, {NULL},
        {"push", "pop", "truncate", "clear", NULL},         /* segmented */
    };
    lua_newtable(L);
    for (int k = 0; have[code - LMM3_VEC][k]; k++)
      for (int j = 0; all[j].name; j++)
        if (strcmp(all[j].name, have[code - LMM3_VEC][k]) == 0) {
          lua_pushcfunction(L, all[j].func);
          lua_setfield(L, -2, all[j].name);
        }
    int methods = lua_gettop(L);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, methods);
    lua_pushcclosure(L, q_index, 2);
    lua_setfield(L, mt, "__index");
    lua_pushvalue(L, 4);
    lua_pushcclosure(L, q_newindex, 1);
    lua_setfield(L, mt, "__newindex");
    lua_pop(L, 1);
    lua_pushcfunction(L, q_len);
    lua_setfield(L, mt, "__len");
    lua_pushcfunction(L, lmm3_seq_pairs);
    lua_setfield(L, mt, "__pairs");
  }
  lua_pushcfunction(L, c_shl);
  lua_setfield(L, mt, "__shl");
  lua_pushcfunction(L, c_tostring);
  lua_setfield(L, mt, "__tostring");
  lua_pushcfunction(L, c_close);
  lua_setfield(L, mt, "__close");
  lua_pushcfunction(L, c_eq);
  lua_setfield(L, mt, "__eq");
  lua_pushliteral(L, "memmap3.Container");
  lua_setfield(L, mt, "__metatable");
  return 1;
}

/* core.clear(view) */
static int l_clear(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  check_writable(L, v, 1);
  return clear_any(L, 1);
}

/* core.check_container(view) -> true | nil, why */
static int l_check_container(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  char why[256];
  mm3_ctype ct = v->ti->ct;
  if (v->ti->kind == LMM3_SARRAY) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (mm3_container_check(v->fb->f, v->p, &ct, why, sizeof why)) {
    luaL_pushfail(L);
    lua_pushstring(L, why);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* The offsets a blocks walk found, kept in C while the walk holds the lock
   (a Lua allocation failing there would leave it held). */
typedef struct block_list {
  uint64_t *off;
  size_t n, cap;
} block_list;

static int add_block(void *ud, uint64_t off) {
  block_list *b = ud;
  if (b->n == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 64;
    uint64_t *more = realloc(b->off, cap * sizeof *more);
    if (!more) return ENOMEM;
    b->off = more, b->cap = cap;
  }
  b->off[b->n++] = off;
  return 0;
}

/* Push the offsets (a sequence) or fail, why; frees the list. */
static int push_blocks(lua_State *L, block_list *b, int rc) {
  if (rc) {
    free(b->off);
    luaL_pushfail(L);
    lua_pushstring(L, mm3_strerror(rc));
    return 2;
  }
  lua_createtable(L, b->n > INT_MAX ? INT_MAX : (int)b->n, 0); /* (may raise: nothing is held now) */
  for (size_t i = 0; i < b->n; i++) {
    lua_pushinteger(L, (lua_Integer)b->off[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(b->off);
  return 1;
}

/* core.container_blocks(view) -> {offset...} | nil, why: the heap blocks
   the container owns (mm.check compares them across containers). */
static int l_container_blocks(lua_State *L) {
  lmm3_view *v = lmm3_cont_view(L, 1);
  if (v->ti->kind == LMM3_SARRAY) {
    lua_newtable(L);
    return 1;
  }
  mm3_ctype ct = v->ti->ct;
  block_list b = {NULL, 0, 0};
  return push_blocks(L, &b, mm3_container_blocks(v->fb->f, v->p, &ct, add_block, &b));
}

/* core.value_blocks(view, offset) -> {offset...} | nil, why: the block of
   the growable value at offset in view (a struct or array view: values
   live in the root, never in a container's elements). */
static int l_value_blocks(lua_State *L) {
  lmm3_view *v = lmm3_check_view(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  mm3_file *f = v->fb->f;
  const uint8_t *root = mm3_file_root(f);
  uint64_t size = mm3_file_root_size(f), at = (uint64_t)(v->p - root); /* (views of the root: at <= size) */
  if (v->p < root || at > size || off < 0 || (uint64_t)off > size - at || size - at - (uint64_t)off < 16)
    return luaL_argerror(L, 2, "not a value's place in the file's root");
  mm3_ctype ct = {0};
  ct.kind = MM3_VALUE;
  mm3_ctype_init(&ct);
  block_list b = {NULL, 0, 0};
  return push_blocks(L, &b, mm3_container_blocks(f, v->p + off, &ct, add_block, &b));
}

/* core.file_blocks(view) -> {offset...} | nil, why: the undo log's blocks. */
static int l_file_blocks(lua_State *L) {
  lmm3_view *v = lmm3_check_view(L, 1);
  block_list b = {NULL, 0, 0};
  return push_blocks(L, &b, mm3_file_blocks(v->fb->f, add_block, &b));
}

void lmm3_open_cont(lua_State *L) {
  static const luaL_Reg funcs[] = {{"new_container", l_new_container},
                                   {"clear", l_clear},
                                   {"check_container", l_check_container},
                                   {"container_blocks", l_container_blocks},
                                   {"file_blocks", l_file_blocks},
                                   {"value_blocks", l_value_blocks},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
