/*
 * mm3_vec.c - fixed-capacity vectors and ring buffers, inline in their parent,
 * and the layout of every container kind (mm3_ctype_init).
 *
 * Writers hold the file's lock. A push writes the element first and publishes
 * the new length last (a release store), so a lock-free reader never sees an
 * element before it is complete, and a crash between the two loses only the
 * push itself. Insert and remove shift elements: O(N) per call.
 */
#include <string.h>

#include "mm3_internal.h"

static uint64_t up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
static int pow2(uint64_t v) { return v && !(v & (v - 1)); }

int mm3_ctype_init(mm3_ctype *t) {
  uint64_t lim = (uint64_t)1 << 40;
  if ((t->kind == MM3_VEC || t->kind == MM3_RING || t->kind == MM3_FMAP) && t->cap == 0) return MM3_EINVAL;
  if (t->kind != MM3_VALUE && (t->elem_size == 0 || !pow2(t->elem_align) || t->elem_size % t->elem_align))
    return MM3_EINVAL;
  switch (t->kind) {
    case MM3_VEC:
    case MM3_RING: {
      if (t->cap == 0 || t->cap > lim / t->elem_size) return MM3_ETOOBIG;
      t->align = t->elem_align > 8 ? t->elem_align : 8;
      t->items_off = t->align; /* 8, or 16 for 16-aligned items */
      t->size = up(t->items_off + t->cap * t->elem_size, t->align);
      return 0;
    }
    case MM3_FMAP:
    case MM3_HMAP: {
      if (t->key_size == 0 || !pow2(t->key_align)) return MM3_EINVAL;
      uint32_t na = 8;
      if (t->key_align > na) na = t->key_align;
      if (t->elem_align > na) na = t->elem_align;
      /* a node must fit 32 bits: key and value together at most 2 GiB */
      if ((uint64_t)t->key_size + t->elem_size > ((uint64_t)1 << 31) || t->key_align > 4096 ||
          t->elem_align > 4096)
        return MM3_ETOOBIG;
      uint32_t base = t->kind == MM3_FMAP ? 8 : 16; /* {u32 next, u32 live} or {u64 next, u64 hash} */
      t->key_off = (uint32_t)up(base, t->key_align);
      t->val_off = (uint32_t)up(t->key_off + t->key_size, t->elem_align);
      t->node_size = (uint32_t)up(t->val_off + t->elem_size, na);
      t->align = na;
      if (t->kind == MM3_HMAP) {
        t->align = 8;
        t->size = 48;
        return 0;
      }
      if (t->cap == 0 || t->cap > 0xfffffffeu || t->cap > lim / t->node_size) return MM3_ETOOBIG;
      t->buckets = 8;
      while (t->buckets < t->cap) t->buckets *= 2;
      t->nodes_off = up(16 + 4 * t->buckets, na);
      t->size = up(t->nodes_off + t->cap * t->node_size, na);
      return 0;
    }
    case MM3_SEGMENTED: {
      uint64_t first = 4096 / t->elem_size, p = 1;
      while (p * 2 <= first) p *= 2;
      t->seg_first = p; /* segment 0 is about a page */
      t->align = 8;
      t->size = 8 + 8 * 56;
      return 0;
    }
    case MM3_VALUE:
      if (t->cap) {
        if (t->cap > 0xFFFFFFFFu) return MM3_ETOOBIG; /* the length is a u32 */
        t->align = 4;
        t->size = up(4 + t->cap, 4);
      } else {
        t->align = 8;
        t->size = 16;
      }
      return 0;
  }
  return MM3_EINVAL;
}

uint64_t mm3_container_len(const mm3_file *f, const uint8_t *c, const mm3_ctype *t) {
  (void)f;
  switch (t->kind) {
    case MM3_RING: {
      uint64_t head = __atomic_load_n((const uint64_t *)c, __ATOMIC_ACQUIRE);
      return head < t->cap ? head : t->cap;
    }
    case MM3_VALUE:
      if (t->cap) return *(const uint32_t *)c;
      return ((const uint64_t *)c)[1];
    default: {
      uint64_t n = __atomic_load_n((const uint64_t *)c, __ATOMIC_ACQUIRE);
      if (t->kind == MM3_VEC && n > t->cap) n = t->cap; /* damaged: never past capacity */
      return n;
    }
  }
}

int mm3__len_ok(const mm3_file *f, const uint8_t *c, const mm3_ctype *t, uint64_t *len) {
  uint64_t n = __atomic_load_n((const uint64_t *)c, __ATOMIC_ACQUIRE);
  switch (t->kind) {
    case MM3_VEC:
    case MM3_FMAP: *len = n; return n > t->cap ? MM3_ECORRUPT : 0;
    case MM3_HMAP: *len = n; return mm3__count_fits(f, t, n) ? 0 : MM3_ECORRUPT;
    case MM3_SEGMENTED: *len = n; return mm3__seg_len_ok(c, t, n) ? 0 : MM3_ECORRUPT;
    default: *len = mm3_container_len(f, c, t); return 0;
  }
}

static uint8_t *item(uint8_t *c, const mm3_ctype *t, uint64_t slot) {
  return c + t->items_off + slot * t->elem_size;
}

uint8_t *mm3_vec_at(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i) {
  (void)f;
  if (!MM3__IS_SEQ(t)) return NULL;
  uint64_t n = __atomic_load_n((const uint64_t *)c, __ATOMIC_ACQUIRE); /* once: a ring's head moves */
  if (t->kind == MM3_RING) {
    uint64_t held = n < t->cap ? n : t->cap;
    return i < held ? item(c, t, (n - held + i) % t->cap) : NULL;
  }
  /* a vec's length past its capacity is damage: no element is trusted (mm3__len_ok says why) */
  return i < n && n <= t->cap ? item(c, t, i) : NULL;
}

/* One crash-atomic operation under the file's lock (see mm3_txn.c). */
#define OP(f, body)                          \
  do {                                       \
    uint64_t sp_;                            \
    int rc_ = mm3__op_begin(f, &sp_);        \
    if (rc_) return rc_;                     \
    rc_ = (body);                            \
    return mm3__op_end(f, sp_, rc_);         \
  } while (0)

#define LOG(f, p, n)                         \
  do {                                       \
    int lrc_ = mm3__log(f, p, n);            \
    if (lrc_) return lrc_;                   \
  } while (0)

static int push(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *src) {
  uint64_t *len = (uint64_t *)c;
  uint64_t n = *len;
  if (t->kind != MM3_RING && n >= t->cap) return n > t->cap ? MM3_ECORRUPT : MM3_EFULL; /* (before the slot's address) */
  uint8_t *slot = item(c, t, t->kind == MM3_RING ? n % t->cap : n);
  LOG(f, slot, t->elem_size);
  LOG(f, len, 8);
  memcpy(slot, src, t->elem_size);
  __atomic_store_n(len, n + 1, __ATOMIC_RELEASE);
  return 0;
}

int mm3_vec_push(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *src) {
  if (!MM3__IS_SEQ(t)) return MM3_EINVAL;
  if (t->kind == MM3_VEC && f->txn_depth == 0) {
    /* Unlogged: the item lands past the end and the length is published
       after it, so a crash leaves the push undone, never half done. */
    uint64_t sp;
    int rc = mm3__op_begin(f, &sp);
    if (rc) return rc;
    f->no_log = 1;
    rc = push(f, c, t, src);
    f->no_log = 0;
    return mm3__op_end(f, sp, rc);
  }
  OP(f, push(f, c, t, src));
}

static int pop(mm3_file *f, uint8_t *c, const mm3_ctype *t, void *out) {
  if (t->kind != MM3_VEC) return MM3_EINVAL; /* a ring only pushes */
  uint64_t n = *(uint64_t *)c;
  if (n > t->cap) return MM3_ECORRUPT;
  if (n == 0) return MM3_ERANGE;
  uint8_t *last = mm3_vec_at(f, c, t, n - 1);
  if (out) memcpy(out, last, t->elem_size);
  LOG(f, c, 8);
  LOG(f, last, t->elem_size);
  __atomic_store_n((uint64_t *)c, n - 1, __ATOMIC_RELEASE);
  memset(last, 0, t->elem_size);
  return 0;
}

int mm3_vec_pop(mm3_file *f, uint8_t *c, const mm3_ctype *t, void *out) {
  if (!MM3__IS_SEQ(t)) return MM3_EINVAL;
  OP(f, pop(f, c, t, out));
}

static int insert(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *src) {
  uint64_t *len = (uint64_t *)c, n = *len;
  if (t->kind != MM3_VEC) return MM3_EINVAL;
  if (n > t->cap) return MM3_ECORRUPT;
  if (i > n) return MM3_ERANGE;
  if (n == t->cap) return MM3_EFULL;
  LOG(f, item(c, t, i), (n - i + 1) * t->elem_size);
  LOG(f, len, 8);
  memmove(item(c, t, i + 1), item(c, t, i), (n - i) * t->elem_size);
  memcpy(item(c, t, i), src, t->elem_size);
  __atomic_store_n(len, n + 1, __ATOMIC_RELEASE);
  return 0;
}

int mm3_vec_insert(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *src) {
  if (!MM3__IS_SEQ(t)) return MM3_EINVAL;
  OP(f, insert(f, c, t, i, src));
}

static int removeat(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, void *out) {
  uint64_t *len = (uint64_t *)c, n = *len;
  if (t->kind != MM3_VEC) return MM3_EINVAL;
  if (n > t->cap) return MM3_ECORRUPT;
  if (i >= n) return MM3_ERANGE;
  LOG(f, item(c, t, i), (n - i) * t->elem_size);
  LOG(f, len, 8);
  if (out) memcpy(out, item(c, t, i), t->elem_size);
  memmove(item(c, t, i), item(c, t, i + 1), (n - i - 1) * t->elem_size);
  memset(item(c, t, n - 1), 0, t->elem_size);
  __atomic_store_n(len, n - 1, __ATOMIC_RELEASE);
  return 0;
}

int mm3_vec_remove(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, void *out) {
  if (!MM3__IS_SEQ(t)) return MM3_EINVAL;
  OP(f, removeat(f, c, t, i, out));
}

static int clear(mm3_file *f, uint8_t *c, const mm3_ctype *t) {
  uint64_t n = *(uint64_t *)c;
  LOG(f, c, 8);
  LOG(f, item(c, t, 0), (n < t->cap ? n : t->cap) * t->elem_size);
  __atomic_store_n((uint64_t *)c, 0, __ATOMIC_RELEASE);
  memset(item(c, t, 0), 0, t->cap * t->elem_size);
  return 0;
}

int mm3_vec_clear(mm3_file *f, uint8_t *c, const mm3_ctype *t) {
  if (!MM3__IS_SEQ(t)) return MM3_EINVAL;
  OP(f, clear(f, c, t));
}

static int set(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *src) {
  if (t->kind == MM3_VEC && *(uint64_t *)c > t->cap) return MM3_ECORRUPT;
  uint8_t *p = mm3_vec_at(f, c, t, i);
  if (!p) return MM3_ERANGE;
  LOG(f, p, t->elem_size);
  memcpy(p, src, t->elem_size);
  return 0;
}

int mm3_vec_set(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *src) {
  if (!MM3__IS_SEQ(t)) return MM3_EINVAL;
  OP(f, set(f, c, t, i, src));
}

#include <stdio.h>

static int check_container(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n);

/* Under the lock for a writable handle, as mm3_file_check. */
int mm3_container_check(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n) {
  if (n) why[0] = 0;
  int locked = !mm3_file_readonly(f) && mm3_file_lock(f) == 0;
  int rc = t->kind == MM3_VEC || t->kind == MM3_RING ? 0 : mm3__check_refresh(f, why, n);
  if (!rc) rc = check_container(f, c, t, why, n);
  if (locked) mm3_file_unlock(f);
  return rc;
}

int mm3_container_blocks(mm3_file *f, uint8_t *c, const mm3_ctype *t, int (*fn)(void *ud, uint64_t off), void *ud) {
  int locked = !mm3_file_readonly(f) && mm3_file_lock(f) == 0;
  int rc = 0;
  if (t->kind == MM3_HMAP) rc = mm3__hmap_blocks(f, c, t, fn, ud);
  else if (t->kind == MM3_SEGMENTED) rc = mm3__seg_blocks(f, c, t, fn, ud);
  else if (t->kind == MM3_VALUE) rc = mm3__value_blocks(f, c, t, fn, ud);
  if (locked) mm3_file_unlock(f);
  return rc;
}

static int check_container(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n) {
  switch (t->kind) {
    case MM3_VEC:
      if (*(uint64_t *)c > t->cap) {
        snprintf(why, n, "vec: length %llu over capacity %llu", (unsigned long long)*(uint64_t *)c,
                 (unsigned long long)t->cap);
        return MM3_ECORRUPT;
      }
      return 0;
    case MM3_RING: return 0; /* any push count is valid */
    case MM3_FMAP:
    case MM3_HMAP: return mm3__hmap_check(f, c, t, why, n);
    case MM3_SEGMENTED: return mm3__seg_check(f, c, t, why, n);
    case MM3_VALUE: return mm3__value_check(f, c, t, why, n);
  }
  return MM3_EINVAL;
}
