/*
 * mm3_seg.c - segmented lists: unlimited growth without ever moving an
 * element. Segment k holds first << k elements and is allocated from the heap
 * when the list first reaches it, so a push is O(1) and a pointer to any
 * element stays valid until the file is closed.
 */
#include <string.h>

#include "mm3_internal.h"

#define NSEG 56

typedef struct seghead {
  uint64_t len;
  uint64_t seg[NSEG];
} seghead;

/* Segment and slot of element i. */
static int locate(const mm3_ctype *t, uint64_t i, int *k, uint64_t *slot) {
  uint64_t q = i / t->seg_first + 1; /* segments before are 2^k - 1 firsts */
  int s = 63 - __builtin_clzll(q);
  if (s >= NSEG) return MM3_ETOOBIG;
  *k = s;
  *slot = i - t->seg_first * (((uint64_t)1 << s) - 1);
  return 0;
}

static uint8_t *seg_ptr(mm3_file *f, seghead *h, const mm3_ctype *t, int k, uint64_t slot) {
  uint64_t cap = t->seg_first << k, off = h->seg[k];
  if (!off || !mm3__inside(f, off, cap * t->elem_size)) return NULL;
  return f->base + off + slot * t->elem_size;
}

uint8_t *mm3_seg_at(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i) {
  seghead *h = (seghead *)c;
  if (i >= __atomic_load_n(&h->len, __ATOMIC_ACQUIRE)) return NULL;
  int k;
  uint64_t slot;
  if (locate(t, i, &k, &slot)) return NULL;
  uint8_t *p = seg_ptr(f, h, t, k, slot);
  if (!p && mm3_file_refresh(f) == 0) p = seg_ptr(f, h, t, k, slot); /* grown by another process */
  return p;
}

static int push(mm3_file *f, seghead *h, const mm3_ctype *t, const void *src) {
  int k;
  uint64_t slot, n = h->len;
  int rc = locate(t, n, &k, &slot);
  if (rc) return rc;
  if (!h->seg[k]) {
    uint64_t off;
    rc = mm3__alloc(f, (t->seg_first << k) * t->elem_size, &off);
    if (rc) return rc;
    h->seg[k] = off;
  }
  uint8_t *p = seg_ptr(f, h, t, k, slot);
  if (!p) return MM3_ECORRUPT;
  memcpy(p, src, t->elem_size);
  __atomic_store_n(&h->len, n + 1, __ATOMIC_RELEASE); /* published after the element */
  return 0;
}

int mm3_seg_push(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *src) {
  int rc = mm3_file_lock(f);
  if (rc) return rc;
  rc = mm3_file_refresh(f);
  if (!rc) rc = push(f, (seghead *)c, t, src);
  mm3_file_unlock(f);
  return rc;
}

static int truncate_to(mm3_file *f, seghead *h, const mm3_ctype *t, uint64_t n, void *out) {
  uint64_t len = h->len;
  if (n > len) return MM3_ERANGE;
  /* shrink first, then zero what was cut, so readers never see zeroed live data */
  __atomic_store_n(&h->len, n, __ATOMIC_RELEASE);
  for (uint64_t i = n; i < len; i++) {
    int k;
    uint64_t slot;
    if (locate(t, i, &k, &slot)) return MM3_ECORRUPT;
    uint8_t *p = seg_ptr(f, h, t, k, slot);
    if (!p) return MM3_ECORRUPT;
    if (out && i == len - 1) memcpy(out, p, t->elem_size);
    memset(p, 0, t->elem_size);
  }
  return 0;
}

int mm3_seg_pop(mm3_file *f, uint8_t *c, const mm3_ctype *t, void *out) {
  int rc = mm3_file_lock(f);
  if (rc) return rc;
  seghead *h = (seghead *)c;
  rc = mm3_file_refresh(f);
  if (!rc) rc = h->len ? truncate_to(f, h, t, h->len - 1, out) : MM3_ERANGE;
  mm3_file_unlock(f);
  return rc;
}

int mm3_seg_truncate(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t n) {
  int rc = mm3_file_lock(f);
  if (rc) return rc;
  rc = mm3_file_refresh(f);
  if (!rc) rc = truncate_to(f, (seghead *)c, t, n, NULL);
  mm3_file_unlock(f);
  return rc;
}

int mm3_seg_set(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *src) {
  int rc = mm3_file_lock(f);
  if (rc) return rc;
  uint8_t *p = mm3_seg_at(f, c, t, i);
  if (p) memcpy(p, src, t->elem_size);
  else rc = MM3_ERANGE;
  mm3_file_unlock(f);
  return rc;
}
