/*
 * mm3_value.c - value<N> (up to N bytes inline) and value (a heap block):
 * opaque byte strings that the Lua binding fills with serialised Lua values.
 * A growable value is replaced by writing a new block and then switching the
 * inline offset to it, so a reader sees the old bytes or the new, never a mix.
 */
#include <string.h>

#include "mm3_internal.h"

typedef struct vhead {
  uint64_t off, len;
} vhead;

static int locate(mm3_file *f, uint8_t *c, const mm3_ctype *t, const uint8_t **data, uint64_t *len) {
  if (t->cap) {
    uint32_t n = *(uint32_t *)c;
    if (n > t->cap) return MM3_ECORRUPT;
    *data = c + 4;
    *len = n;
    return 0;
  }
  vhead *h = (vhead *)c;
  uint64_t off = h->off, n = h->len;
  *data = NULL;
  *len = 0;
  if (!off) return 0;
  int rc = mm3_file_refresh(f);
  if (rc) return rc;
  if (off < 8 || (off - 8) % 16 || n > f->mapped || !mm3__inside(f, off - 8, n + 8)) return MM3_ECORRUPT;
  if (*(uint64_t *)(f->base + off - 8) != n) return MM3_ECORRUPT; /* the block keeps its length */
  *data = f->base + off;
  *len = n;
  return 0;
}

int mm3_value_get(mm3_file *f, uint8_t *c, const mm3_ctype *t, void *buf, uint64_t cap, uint64_t *len) {
  if (t->kind != MM3_VALUE) return MM3_EINVAL;
  int locked = mm3_file_lock(f) == 0;
  /* Read-only files read without it: a copy that a write overlapped (the
     sequence moved, or was odd: the block may have been freed and reused
     as it was read) is made again, letting the writers run, until
     MM3_EWRITERS. */
  mm3__retry retry = {0};
  uint64_t s = 0;
  int again = 0;
  while (locked || (again = mm3__read_begin(f, &retry, &s)) == 0) {
    const uint8_t *data;
    int rc = locate(f, c, t, &data, len);
    if (!rc && *len > cap) rc = MM3_ERANGE;
    if (!rc && *len) memcpy(buf, data, *len);
    if (locked) {
      mm3_file_unlock(f);
      return rc;
    }
    if (mm3__read_ok(f, s)) return rc;
  }
  return again; /* (what was read may be half one write, half another) */
}

static int set(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *data, uint64_t len) {
  int rc;
  if (t->cap) {
    if ((rc = mm3__log(f, c, t->size)) != 0) return rc;
    memcpy(c + 4, data, len);
    memset(c + 4 + len, 0, t->cap - len);
    *(uint32_t *)c = (uint32_t)len;
    return 0;
  }
  vhead *h = (vhead *)c;
  uint64_t off = 0, old = h->off;
  if (old) { /* the block to free is this value's: a damaged offset could name another's (left, a leak) */
    const uint8_t *d;
    uint64_t n;
    if (locate(f, c, t, &d, &n) != 0 || !mm3__block_is(f, old - 8, n + 8)) old = 0;
  }
  if (len && (rc = mm3__alloc(f, len + 8, &off)) != 0) return rc;
  if ((rc = mm3__log(f, h, sizeof *h)) != 0) return rc;
  if (len) {
    *(uint64_t *)(f->base + off) = len;
    memcpy(f->base + off + 8, data, len);
    off += 8;
  }
  h->len = len;
  __atomic_store_n(&h->off, off, __ATOMIC_RELEASE);
  return old ? mm3__free(f, old - 8) : 0;
}

int mm3_value_set(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *data, uint64_t len) {
  if (t->kind != MM3_VALUE) return MM3_EINVAL;
  if (t->cap && len > t->cap) return MM3_EFULL;
  if (len > ((uint64_t)1 << 50)) return MM3_ETOOBIG; /* the heap's largest block; len + 8 must not wrap */
  uint64_t sp;
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  return mm3__op_end(f, sp, set(f, c, t, data, len));
}

#include <stdio.h>

/* A growable value's block (its length, then its bytes). */
int mm3__value_blocks(mm3_file *f, uint8_t *c, const mm3_ctype *t, mm3__block_fn fn, void *ud) {
  (void)f;
  const vhead *h = (const vhead *)c;
  return t->cap || !h->off ? 0 : fn(ud, h->off - 8);
}

int mm3__value_check(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n) {
  const uint8_t *data;
  uint64_t len;
  int rc = locate(f, c, t, &data, &len);
  if (!rc && !t->cap && len && !mm3__block_is(f, (uint64_t)(data - f->base) - 8, len + 8)) rc = MM3_ECORRUPT;
  if (rc) snprintf(why, n, "value: its block is outside the file or damaged");
  return rc;
}
