/*
 * mm3_seg.c - segmented lists: unlimited growth without ever moving an
 * element. Segment k holds first << k elements and is allocated from the heap
 * when the list first reaches it, so a push is O(1) and a pointer to any
 * element stays valid until the file is closed.
 */
#include <string.h>

#include "mm3_internal.h"

#define NSEG 56

void (*mm3__test_hook)(const char *point);

#define LOG(f, p, n)                         \
  do {                                       \
    int lrc_ = mm3__log(f, p, n);            \
    if (lrc_) return lrc_;                   \
  } while (0)

typedef struct seghead {
  uint64_t len;
  uint64_t seg[NSEG];
} seghead;

/* Segment and slot of element i. seg_first is a power of two (mm3_ctype_init),
   so this takes shifts, never a division. */
static int locate(const mm3_ctype *t, uint64_t i, int *k, uint64_t *slot) {
  int sh = __builtin_ctzll(t->seg_first | ((uint64_t)1 << 63));
  uint64_t q = (i >> sh) + 1; /* segments before are 2^k - 1 firsts */
  int s = 63 - __builtin_clzll(q);
  if (s >= NSEG) return MM3_ETOOBIG;
  *k = s;
  *slot = i - ((((uint64_t)1 << s) - 1) << sh);
  return 0;
}

static uint8_t *seg_ptr(mm3_file *f, seghead *h, const mm3_ctype *t, int k, uint64_t slot) {
  int sh = __builtin_ctzll(t->seg_first | ((uint64_t)1 << 63)) + k;
  uint64_t bytes; /* of segment k: at most 2^50, and no wrap */
  if (k >= NSEG || sh > 50 || __builtin_mul_overflow((uint64_t)1 << sh, (uint64_t)t->elem_size, &bytes) ||
      bytes > ((uint64_t)1 << 50))
    return NULL;
  uint64_t off = h->seg[k];
  if (!off || off % 16 || !mm3__inside(f, off, bytes)) return NULL; /* heap blocks are 16-aligned */
  /* its own heap block (a damaged offset could name other data) */
  if (!mm3__tagged_for(f, off, bytes)) return NULL;
  return f->base + off + slot * t->elem_size;
}

uint8_t *mm3_seg_at(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i) {
  if (!MM3__IS_SEG(t)) return NULL;
  seghead *h = (seghead *)c;
  if (i >= __atomic_load_n(&h->len, __ATOMIC_ACQUIRE)) return NULL;
  int k;
  uint64_t slot;
  if (locate(t, i, &k, &slot)) return NULL;
  uint8_t *p = seg_ptr(f, h, t, k, slot);
  if (!p && mm3_file_refresh(f) == 0) p = seg_ptr(f, h, t, k, slot); /* grown by another process */
  return p;
}

int mm3__seg_len_ok(const uint8_t *c, const mm3_ctype *t, uint64_t len) {
  const seghead *h = (const seghead *)c;
  int k;
  uint64_t slot;
  if (len == 0) return 1;
  if (locate(t, len - 1, &k, &slot)) return 0;
  /* the last one's (a push fills them in order; one before missing is met
     by whatever reaches an element there) */
  return __atomic_load_n(&h->seg[k], __ATOMIC_RELAXED) != 0;
}

/* push returns this, without grow, where the push needs an operation: a
   new segment, or one this process has not mapped yet. */
#define NEEDS_OP 1

static inline __attribute__((always_inline)) int push(mm3_file *f, seghead *h, const mm3_ctype *t, const void *src,
                                                     int grow) {
  int k;
  uint64_t slot, n = h->len;
  int rc = locate(t, n, &k, &slot);
  if (rc) return rc;
  if (!h->seg[k]) {
    /* a new segment only where the list reaches it: a damaged length could
       have gigabytes allocated for nothing */
    if (slot != 0 || (k > 0 && !h->seg[k - 1])) return MM3_ECORRUPT;
    if (!grow) return NEEDS_OP;
    /* a new segment is logged even in an unlogged push: a crash then rolls
       the allocation back instead of leaking it, and the length with it
       (kept, it would count an element in a segment that is gone) */
    int saved = f->no_log;
    f->no_log = 0;
    uint64_t off;
    rc = mm3__alloc_raw(f, (t->seg_first << k) * t->elem_size, &off);
    if (!rc) rc = mm3__log(f, &h->seg[k], 8);
    if (!rc) rc = mm3__log(f, &h->len, 8);
    f->no_log = saved;
    if (rc) return rc;
    h->seg[k] = off;
  }
  uint8_t *p = seg_ptr(f, h, t, k, slot);
  if (!p) return grow ? MM3_ECORRUPT : NEEDS_OP;
  if (!f->no_log) { /* in a transaction */
    LOG(f, p, t->elem_size);
    LOG(f, &h->len, 8);
  }
  if (t->elem_size == 8) memcpy(p, src, 8); /* the common case, inline */
  else memcpy(p, src, t->elem_size);
  __atomic_store_n(&h->len, n + 1, __ATOMIC_RELEASE); /* published after the element */
  if (mm3__test_hook) mm3__test_hook("seg push: length published");
  return 0;
}

int mm3_seg_push(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *src) {
  if (!MM3__IS_SEG(t)) return MM3_EINVAL;
  int rc = mm3_file_lock(f);
  if (rc) return rc;
  /* Outside a transaction a push needs no undo log: the element is written
     past the end and the length published after it; a crash before that
     leaves the push undone. So into a segment that is there and mapped it
     needs no operation either (the common case): the lock, the push, the
     unlock. */
  if (f->txn_depth == 0 && !mm3__other_txn(f)) {
    f->no_log = 1;
    rc = push(f, (seghead *)c, t, src, 0);
    f->no_log = 0;
    if (rc != NEEDS_OP) {
      mm3_file_unlock(f);
      return rc;
    }
  }
  uint64_t sp;
  rc = mm3__op_enter(f, &sp);
  if (rc) return rc;
  if (f->txn_depth == 0) f->no_log = 1;
  rc = push(f, (seghead *)c, t, src, 1);
  f->no_log = 0;
  return mm3__op_end(f, sp, rc);
}

/* Cut the list to n elements. The bytes past the new end are left as they
   are (later pushes overwrite them), so a truncate logs 8 bytes only. */
static int truncate_to(mm3_file *f, seghead *h, const mm3_ctype *t, uint64_t n, void *out) {
  uint64_t len = h->len;
  if (n > len) return MM3_ERANGE;
  if (n && !mm3__seg_len_ok((const uint8_t *)h, t, len)) return MM3_ECORRUPT; /* (to 0: a clear mends it) */
  if (out && n < len) {
    int k;
    uint64_t slot;
    if (locate(t, len - 1, &k, &slot)) return MM3_ECORRUPT;
    uint8_t *p = seg_ptr(f, h, t, k, slot);
    if (!p) return MM3_ECORRUPT;
    memcpy(out, p, t->elem_size);
  }
  LOG(f, &h->len, 8);
  __atomic_store_n(&h->len, n, __ATOMIC_RELEASE);
  return 0;
}

int mm3_seg_pop(mm3_file *f, uint8_t *c, const mm3_ctype *t, void *out) {
  if (!MM3__IS_SEG(t)) return MM3_EINVAL;
  uint64_t sp;
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  seghead *h = (seghead *)c;
  return mm3__op_end(f, sp, h->len ? truncate_to(f, h, t, h->len - 1, out) : MM3_ERANGE);
}

int mm3_seg_truncate(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t n) {
  if (!MM3__IS_SEG(t)) return MM3_EINVAL;
  uint64_t sp;
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  return mm3__op_end(f, sp, truncate_to(f, (seghead *)c, t, n, NULL));
}

static int set(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *src) {
  uint8_t *p = mm3_seg_at(f, c, t, i);
  if (!p) return MM3_ERANGE;
  LOG(f, p, t->elem_size);
  memcpy(p, src, t->elem_size);
  return 0;
}

int mm3_seg_set(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *src) {
  if (!MM3__IS_SEG(t)) return MM3_EINVAL;
  uint64_t sp;
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  return mm3__op_end(f, sp, set(f, c, t, i, src));
}

#include <stdio.h>

/* A segmented list's blocks: its segments, those past its length too (a
   truncate keeps them for the pushes to come). */
int mm3__seg_blocks(mm3_file *f, uint8_t *c, const mm3_ctype *t, mm3__block_fn fn, void *ud) {
  (void)f, (void)t;
  const seghead *h = (const seghead *)c;
  int rc = 0;
  for (int k = 0; k < NSEG && !rc; k++)
    if (h->seg[k]) rc = fn(ud, h->seg[k]);
  return rc;
}

int mm3__seg_check(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n) {
  seghead *h = (seghead *)c;
  if (h->len == 0) return 0;
  int k;
  uint64_t slot;
  if (locate(t, h->len - 1, &k, &slot)) {
    snprintf(why, n, "segmented: length %llu is impossible", (unsigned long long)h->len);
    return MM3_ECORRUPT;
  }
  for (int s = 0; s <= k; s++)
    if (!seg_ptr(f, h, t, s, 0)) {
      snprintf(why, n, "segmented: segment %d (offset %llu) is missing or outside the file", s,
               (unsigned long long)h->seg[s]);
      return MM3_ECORRUPT;
    }
  return 0;
}
