/*
 * mm3_txn.c - the undo log: crash-atomic operations and transactions.
 *
 * Before a byte of shared data changes, its old value goes into the log (a
 * heap block named in the header), and the log's length is published after
 * the entry is complete. Ending the outermost operation or transaction sets
 * the length back to 0. A process that takes the lock and finds a nonzero
 * length knows the last writer died mid-write, and rolls the entries back,
 * newest first. Logging costs a copy of the old bytes per write; rollback is
 * proportional to what was logged.
 */
#include <string.h>

#include "mm3_internal.h"

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

#define LOG_FIRST ((uint64_t)64 << 10)

/* Make the log, or a bigger one, outside any logged write (a crash here leaks
   a block at worst). The log starts small and doubles as transactions need,
   up to MM3_LOG_CAPACITY; entries move to the new block before it is named
   in the header, so a rollback finds them either way. */
static int grow_log(mm3_file *f, uint64_t need) {
  mm3_header *h = mm3__hdr(f);
  uint64_t cap = h->log_off ? h->log_cap : 0, want = cap ? cap : LOG_FIRST - 16;
  while (want - (h->log_off ? h->log_len : 0) < need) want = (want + 16) * 2 - 16;
  if (want > MM3_LOG_CAPACITY) return MM3_ETOOBIG;
  uint64_t off;
  /* From the heap top, unlogged: a rollback of earlier allocations cannot
     hand its space out again, as mm3__rollback keeps the top past it. */
  f->no_log = 1;
  int rc = mm3__alloc_top(f, want, &off);
  f->no_log = 0;
  if (rc) return rc;
  /* Log blocks are not counted in alloc_bytes (they are allocated outside
     the log, and a rollback restores alloc_bytes from inside it). */
  h->alloc_bytes -= mm3__block_end(f, off) - (off - 16);
  if (h->log_off) memcpy(f->base + off, f->base + h->log_off, h->log_len);
  uint64_t old = h->log_off;
  __atomic_store_n(&h->log_off, off, __ATOMIC_RELEASE);
  h->log_cap = want;
  if (old) f->retired_log = old; /* freed once no entry refers to it */
  return 0;
}

static int ensure_log(mm3_file *f) {
  mm3_header *h = mm3__hdr(f);
  if (!h->log_off) return grow_log(f, 0);
  if (h->log_off % 16 || !mm3__inside(f, h->log_off, h->log_cap)) return MM3_ECORRUPT;
  return 0;
}

/* With no entries left, free a log block that a bigger one replaced. */
static void release_retired(mm3_file *f) {
  if (f->retired_log && mm3__hdr(f)->log_len == 0) {
    mm3__hdr(f)->alloc_bytes += mm3__block_end(f, f->retired_log) - (f->retired_log - 16); /* as counted */
    f->no_log = 1;
    mm3__free(f, f->retired_log);
    f->no_log = 0;
    f->retired_log = 0;
  }
}

int mm3__log(mm3_file *f, const void *p, size_t n) {
  if (f->no_log || n == 0) return 0;
  mm3_header *h = mm3__hdr(f);
  const uint8_t *src = p;
  if (src < f->base + MM3_HEADER_SIZE - 1024 || mm3__range_bad((uint64_t)(src - f->base), n, f->mapped))
    return 0; /* not file memory (a scratch copy): nothing to undo */
  uint64_t need = 16 + pad8(n) + 8;
  if (h->log_len > h->log_cap) return MM3_ECORRUPT;
  if (need > h->log_cap - h->log_len) {
    int rc = grow_log(f, need);
    if (rc) return rc;
  }
  uint8_t *e = f->base + h->log_off + h->log_len;
  uint64_t hd[2] = {(uint64_t)(src - f->base), n};
  memcpy(e, hd, 16);
  if (n == 8) memcpy(e + 16, src, 8); /* most entries (a link, a bucket): inline, not a call */
  else memcpy(e + 16, src, n);
  memcpy(e + 16 + pad8(n), &need, 8);
  __atomic_store_n(&h->log_len, h->log_len + need, __ATOMIC_RELEASE); /* the entry is complete */
  return 0;
}

void mm3__rollback(mm3_file *f, uint64_t sp) {
  mm3_header *h = mm3__hdr(f);
  mm3__free_rollback(f, sp); /* those blocks are live again */
  uint64_t pos = h->log_len;
  if (!pos) return;
  if (mm3_file_refresh(f) || !h->log_off || h->log_off % 16 || !mm3__inside(f, h->log_off, h->log_cap) ||
      pos > h->log_cap || pos % 8) {
    h->log_len = 0; /* a damaged log cannot be replayed */
    return;
  }
  uint8_t *log = f->base + h->log_off;
  while (pos > sp && pos >= 24) {
    uint64_t size, hd[2];
    memcpy(&size, log + pos - 8, 8);
    if (size < 24 || size > pos) break;
    memcpy(hd, log + pos - size, 16);
    if (hd[1] <= size - 24 && !mm3__range_bad(hd[0], hd[1], f->mapped) && hd[0] >= 144)
      memcpy(f->base + hd[0], log + pos - size + 16, hd[1]);
    pos -= size;
    __atomic_store_n(&h->log_len, pos, __ATOMIC_RELEASE);
  }
  /* The log itself was allocated unlogged: never let the heap top fall
     back below it (or below a retired one still to be freed). */
  uint64_t end = mm3__block_end(f, h->log_off);
  if (f->retired_log && mm3__block_end(f, f->retired_log) > end) end = mm3__block_end(f, f->retired_log);
  if (h->heap_top < end) h->heap_top = end;
  if (sp == 0) {
    __atomic_store_n(&h->log_len, 0, __ATOMIC_RELEASE);
    /* a writer that died between seq_begin and seq_end left it odd */
    uint64_t seq = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
    if (seq & 1) __atomic_store_n(&h->seq, seq + 1, __ATOMIC_RELEASE);
  }
}

int mm3__op_begin(mm3_file *f, uint64_t *sp) {
  int rc = mm3_file_lock(f);
  return rc ? rc : mm3__op_enter(f, sp);
}

int mm3__op_enter(mm3_file *f, uint64_t *sp) {
  int rc;
  if (mm3__other_txn(f)) {
    mm3_file_unlock(f);
    return MM3_EBUSY;
  }
  rc = mm3_file_refresh(f);
  if (!rc) rc = ensure_log(f); /* made before any logged write, never inside one */
  if (rc) {
    mm3_file_unlock(f);
    return rc;
  }
  *sp = mm3__hdr(f)->log_len;
  return 0;
}

int mm3__op_end(mm3_file *f, uint64_t sp, int rc) {
  if (rc) mm3__rollback(f, sp); /* a failed operation changes nothing */
  if (f->txn_depth == 0) {
    __atomic_store_n(&mm3__hdr(f)->log_len, 0, __ATOMIC_RELEASE);
    mm3__free_commit(f);
    release_retired(f);
  }
  mm3_file_unlock(f);
  return rc;
}

int mm3_txn_begin(mm3_file *f, uint64_t *savepoint) {
  int rc = mm3_file_lock(f);
  if (rc) return rc;
  rc = mm3__other_txn(f) ? MM3_EBUSY : mm3_file_refresh(f);
  if (!rc) rc = ensure_log(f);
  if (rc) {
    mm3_file_unlock(f);
    return rc;
  }
  if (f->txn_depth++ == 0 && f->txn_owner) *f->txn_owner = f;
  *savepoint = mm3__hdr(f)->log_len;
  return 0;
}

int mm3_txn_commit(mm3_file *f) {
  int rc = 0;
  if (f->txn_depth == 0) return 0;
  if (--f->txn_depth == 0) {
    if (f->durable) rc = mm3_file_flush(f); /* the data before the log is dropped */
    __atomic_store_n(&mm3__hdr(f)->log_len, 0, __ATOMIC_RELEASE);
    mm3__free_commit(f);
    release_retired(f);
    if (f->txn_owner && *f->txn_owner == f) *f->txn_owner = NULL;
  }
  mm3_file_unlock(f);
  return rc;
}

void mm3_txn_rollback(mm3_file *f, uint64_t savepoint) {
  if (f->txn_depth == 0) return;
  mm3__rollback(f, savepoint);
  if (--f->txn_depth == 0) {
    __atomic_store_n(&mm3__hdr(f)->log_len, 0, __ATOMIC_RELEASE);
    f->npending = 0;
    release_retired(f);
    if (f->txn_owner && *f->txn_owner == f) *f->txn_owner = NULL;
  }
  mm3_file_unlock(f);
}

int mm3_txn_depth(const mm3_file *f) { return f->txn_depth; }
void mm3_file_set_durable(mm3_file *f, int durable) { f->durable = durable; }
uint64_t mm3_file_recovered(const mm3_file *f) { return f->recovered; }

int mm3_file_write(mm3_file *f, void *dst, const void *src, size_t n) {
  uint8_t *d = dst;
  if (d < f->base + MM3_HEADER_SIZE || mm3__range_bad((uint64_t)(d - f->base), n, f->mapped)) return MM3_ERANGE;
  uint64_t sp;
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  rc = mm3__log(f, d, n);
  if (!rc) memcpy(d, src, n);
  return mm3__op_end(f, sp, rc);
}
