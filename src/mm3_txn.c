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
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm3_internal.h"

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

#define LOG_FIRST ((uint64_t)64 << 10)

static int log_fixed_at(mm3_file *f, uint64_t off, const void *old, size_t n);

#define GROW_ROOM MM3__LOG_GROW_ROOM

/* Make the log, or a bigger one, outside any logged write. The log starts
   small and doubles as transactions need, up to MM3_LOG_CAPACITY; entries
   move to the new block before it is named in the header, so a rollback
   finds them either way. A writer that dies part way leaks nothing: the old
   log first takes an entry for the heap top (log_entry keeps room for it),
   so recovery takes the top back below a new block the header does not
   name yet; and the old block is named as retired before the new one
   replaces it (release_retired skips the log itself). The first log of a
   file, which no log can record, is noted as a gap to free (see mm3_header)
   until the header names it. */
static int grow_log(mm3_file *f, uint64_t need) {
  mm3_header *h = mm3__hdr(f);
  uint64_t cap = h->log_off ? h->log_cap : 0, want = cap ? cap : LOG_FIRST - 16;
  while (want - (h->log_off ? h->log_len : 0) < need + GROW_ROOM) want = (want + 16) * 2 - 16;
  if (want > MM3_LOG_CAPACITY) return MM3_ELOGFULL;
  /* (without the room, which a gap's entry may have taken, the block leaks
     if the writer dies before the header names it) */
  if (h->log_off) log_fixed_at(f, offsetof(mm3_header, heap_top), &h->heap_top, 8);
  uint64_t off, gaps = h->gaps_n;
  if (!h->log_off && gaps < 8) { /* the block it takes from the top: [top, top + its size) */
    uint64_t top = mm3__heap_top(f);
    h->gaps[gaps][0] = top, h->gaps[gaps][1] = top + ((uint64_t)16 << mm3__class_of(want));
    __atomic_store_n(&h->gaps_n, gaps + 1, __ATOMIC_RELEASE);
  }
  /* From the heap top, unlogged: a rollback of earlier allocations cannot
     hand its space out again, as mm3__rollback keeps the top past it. */
  f->no_log = 1;
  int rc = mm3__alloc_top(f, want, &off);
  f->no_log = 0;
  if (rc) {
    __atomic_store_n(&h->gaps_n, gaps, __ATOMIC_RELEASE);
    return rc;
  }
  if (mm3__test_hook) mm3__test_hook("log: block made");
  if (h->log_off) memcpy(f->base + off, f->base + h->log_off, h->log_len);
  uint64_t old = h->log_off;
  if (old && h->retired_n < 16) { /* freed once no entry refers to it (else it leaks) */
    h->retired[h->retired_n] = old;
    __atomic_store_n(&h->retired_n, h->retired_n + 1, __ATOMIC_RELEASE);
  }
  if (mm3__test_hook) mm3__test_hook("log: old block retired");
  __atomic_store_n(&h->log_off, off, __ATOMIC_RELEASE);
  h->log_cap = want;
  __atomic_store_n(&h->gaps_n, gaps, __ATOMIC_RELEASE); /* (named: the first log's note goes) */
  return 0;
}

static int ensure_log(mm3_file *f) {
  mm3_header *h = mm3__hdr(f);
  if (!h->log_off) return grow_log(f, 0);
  /* (a damaged place would have the log written over other data) */
  return mm3__log_block_ok(f) ? 0 : MM3_ECORRUPT;
}

/* With no entries left, free the log blocks that bigger ones replaced (not
   counted in alloc_bytes). */
static void release_retired(mm3_file *f) {
  mm3_header *h = mm3__hdr(f);
  if (!h->retired_n || h->log_len != 0) return;
  if (h->retired_n > 16) return; /* damaged (mm.check says so): left as it is */
  /* a writer that died growing the log may have named the log itself */
  for (uint64_t i = h->retired_n; i-- > 0;)
    if (h->retired[i] == h->log_off) { /* the last entry moves in first: a death between drops no block */
      uint64_t last = h->retired_n - 1;
      h->retired[i] = h->retired[last];
      __atomic_store_n(&h->retired_n, last, __ATOMIC_RELEASE);
    }
  if (!h->retired_n) return;
  mm3__free_steps(f, h->retired, 1, h->retired_n, 0, &h->retired_n);
}

int mm3_file_blocks(mm3_file *f, int (*fn)(void *ud, uint64_t off), void *ud) {
  int locked = !f->readonly && mm3_file_lock(f) == 0;
  mm3_header *h = mm3__hdr(f);
  int rc = h->log_off ? fn(ud, h->log_off) : 0;
  for (uint64_t i = 0; i < h->retired_n && i < 16 && !rc; i++)
    if (h->retired[i] && h->retired[i] != h->log_off) rc = fn(ud, h->retired[i]);
  if (locked) mm3_file_unlock(f);
  return rc;
}

/* Write the entry saying the n bytes at file offset off held old, at e
   (need bytes: head, old bytes, size), in the format rollback replays. */
static void put_entry_at(uint8_t *e, uint64_t off, const void *old, size_t n, uint64_t need) {
  uint64_t hd[2] = {off, n};
  memcpy(e, hd, 16);
  if (n == 8) memcpy(e + 16, old, 8); /* most entries (a link, a bucket): inline, not a call */
  else memcpy(e + 16, old, n);
  memcpy(e + 16 + pad8(n), &need, 8);
}

/* The entry for [src, src + n) as it is now. */
static void put_entry(uint8_t *e, const mm3_file *f, const uint8_t *src, size_t n, uint64_t need) {
  put_entry_at(e, (uint64_t)(src - f->base), src, n, need);
}

/* Append to the file's log as it is (never growing it) the entry saying the
   n bytes at off held old. */
static int log_fixed_at(mm3_file *f, uint64_t off, const void *old, size_t n) {
  mm3_header *h = mm3__hdr(f);
  uint64_t need = 16 + pad8(n) + 8;
  if (!h->log_off || h->log_off % 16 || !mm3__inside(f, h->log_off, h->log_cap) || h->log_len > h->log_cap ||
      need > h->log_cap - h->log_len)
    return MM3_ELOGFULL;
  put_entry_at(f->base + h->log_off + h->log_len, off, old, n, need);
  __atomic_store_n(&h->log_len, h->log_len + need, __ATOMIC_RELEASE);
  return 0;
}

int mm3__log_fixed(mm3_file *f, const void *p, size_t n) {
  return log_fixed_at(f, (uint64_t)((const uint8_t *)p - f->base), p, n);
}

/* Append an entry for [src, src + n) to the file's log. */
static int log_entry(mm3_file *f, const uint8_t *src, size_t n) {
  mm3_header *h = mm3__hdr(f);
  uint64_t need = 16 + pad8(n) + 8;
  if (h->log_len > h->log_cap) return MM3_ECORRUPT;
  if (need + GROW_ROOM > h->log_cap - h->log_len) {
    int rc = grow_log(f, need + GROW_ROOM);
    if (rc) return rc;
  }
  put_entry(f->base + h->log_off + h->log_len, f, src, n, need);
  __atomic_store_n(&h->log_len, h->log_len + need, __ATOMIC_RELEASE); /* the entry is complete */
  return 0;
}

/* ---- what a transaction logs ----
   A crash, or an error that escapes it, takes a transaction back to where it
   began (its savepoint): that rollback needs, for each range of data that
   existed then, the oldest entry since, and nothing for space allocated since
   (the heap top goes back below it, and nothing older points into it). So
   the file's log takes a range once, by (offset, length), and never a range
   above the heap top at the newest savepoint handed out (every
   mm3_txn_begin starts both afresh: a rollback to any savepoint, or to 0 by
   recovery, then finds all it needs). A million inserts into a map made in
   the transaction then log a few entries, not a million.

   An operation directly inside a transaction may still fail alone (a full
   container, a bad key, one entry of a put_many), and must then undo its own
   writes, every one of them: those are kept in process memory (f->own), in
   the log's entry format, for as long as the operation runs. Its savepoints
   (mm3__savepoint) are positions in that buffer. */

static uint64_t seen_slot(uint64_t off, uint64_t len, size_t cap) {
  return ((off * 0x9E3779B97F4A7C15ULL) ^ (len * 0xC2B2AE3D27D4EB4FULL)) >> 20 & (cap - 1);
}

/* The set of ranges logged is open addressing over (offset, length,
   generation) triples; a slot of an older generation is empty, so forgetting
   all is one increment. */

/* 1 if (off, len) has an entry in the log since the newest savepoint. A
   rollback that cuts the log below one of them forgets the set (seen_max);
   an operation that fails undoes itself from its own entries, not the
   log's. */
static int seen(const mm3_file *f, uint64_t off, uint64_t len) {
  if (!f->cseen) return 0;
  for (size_t i = seen_slot(off, len, f->cseen);; i = (i + 1) & (f->cseen - 1)) {
    const uint64_t *e = &f->seen[3 * i];
    if (e[2] != f->seen_gen) return 0;
    if (e[0] == off && e[1] == len) return 1;
  }
}

static void seen_put(uint64_t *t, size_t cap, uint64_t gen, uint64_t off, uint64_t len) {
  size_t i = seen_slot(off, len, cap);
  while (t[3 * i + 2] == gen) i = (i + 1) & (cap - 1);
  t[3 * i] = off, t[3 * i + 1] = len, t[3 * i + 2] = gen;
}

/* Record (off, len) as logged; without the memory to, it is logged again
   next time, no more. */
static void seen_add(mm3_file *f, uint64_t off, uint64_t len) {
  if (2 * (f->nseen + 1) > f->cseen) {
    size_t cap = f->cseen ? f->cseen * 2 : 256;
    uint64_t *t = calloc(cap, 3 * sizeof *t); /* generation 0: empty */
    if (!t) return;
    for (size_t j = 0; j < f->cseen; j++)
      if (f->seen[3 * j + 2] == f->seen_gen) seen_put(t, cap, f->seen_gen, f->seen[3 * j], f->seen[3 * j + 1]);
    free(f->seen);
    f->seen = t;
    f->cseen = cap;
  }
  seen_put(f->seen, f->cseen, f->seen_gen, off, len);
  f->nseen++;
}

static void seen_forget(mm3_file *f) {
  if (f->cseen > 65536) { /* a big transaction's: give the memory back */
    free(f->seen);
    f->seen = NULL;
    f->cseen = 0;
  }
  f->seen_gen++; /* from 1: never the 0 of a new table */
  f->nseen = 0;
  f->seen_max = 0;
}

/* An entry a rollback to the newest savepoint needs, and only that. */
static int log_for_txn(mm3_file *f, const uint8_t *src, size_t n) {
  uint64_t off = (uint64_t)(src - f->base);
  if (off >= f->txn_floor || seen(f, off, n)) return 0; /* allocated inside it, or logged */
  uint64_t pos = mm3__hdr(f)->log_len;
  int rc = log_entry(f, src, n);
  if (!rc) {
    seen_add(f, off, n);
    f->seen_max = pos;
  }
  return rc;
}

/* The current operation's own undo entry for [src, src + n). */
static int log_own(mm3_file *f, const uint8_t *src, size_t n) {
  uint64_t need = 16 + pad8(n) + 8;
  if (need > f->cown - f->nown) {
    size_t cap = f->cown ? f->cown : 4096;
    while (need > cap - f->nown) cap *= 2;
    uint8_t *b = realloc(f->own, cap);
    if (!b) return ENOMEM;
    f->own = b;
    f->cown = cap;
  }
  put_entry(f->own + f->nown, f, src, n, need);
  f->nown += need;
  return 0;
}

int mm3__log_any(mm3_file *f, const void *p, size_t n) {
  if (f->no_log || n == 0) return 0;
  const uint8_t *src = p;
  if (src < f->base + MM3_HEADER_SIZE - 1024 || mm3__range_bad((uint64_t)(src - f->base), n, f->mapped))
    return 0; /* not file memory (a scratch copy): nothing to undo */
  if (mm3__test_fail && mm3__test_fail("log: entry")) return ENOMEM;
  if (f->txn_depth == 0) return log_entry(f, src, n);
  if (f->op_own) { /* the file's log first: growing it moves the heap top, which may be src */
    int rc = log_for_txn(f, src, n);
    return rc ? rc : log_own(f, src, n);
  }
  if (f->lock_depth == f->txn_lock) return log_for_txn(f, src, n); /* a write of the transaction itself */
  return log_entry(f, src, n); /* an operation that may roll back to a position in the log */
}

uint64_t mm3__position(const mm3_file *f) { return f->op_own ? f->nown : mm3__hdr(f)->log_len; }

/* An entry that changes nothing when replayed: the old bytes of a reserved
   header word, which nothing writes. */
#define MARKER_OFF 1016

int mm3__savepoint(mm3_file *f, uint64_t *sp) {
  uint64_t pos = mm3__position(f);
  size_t low = f->op_own ? f->own_pending : 0;
  if (f->npending > low && f->pending[2 * (f->npending - 1) + 1] == pos) {
    /* A free was made here: a rollback to a savepoint here would take it
       back although it came before. Move the log past it first. */
    int rc = f->op_own ? log_own(f, f->base + MARKER_OFF, 8) : log_entry(f, f->base + MARKER_OFF, 8);
    if (rc) return rc;
    pos = mm3__position(f);
  }
  *sp = pos;
  return 0;
}

void mm3__txn_forget(mm3_file *f) {
  f->op_own = 0;
  f->nown = 0;
  seen_forget(f);
}

/* Whether a log entry may write [off, off + n): the file past the header, or
   the header words that writes log (the heap's: top, sequence, free lists, byte
   count; the retired log blocks; the marker). Never the log's own place and
   size, nor the notes of gaps, which recovery reads after the replay: a
   damaged entry could point them anywhere. Nor the log's block itself. */
static int replayable(const mm3_file *f, uint64_t off, uint64_t n) {
  if (mm3__range_bad(off, n, f->mapped)) return 0;
  if (off < MM3_HEADER_SIZE) {
    int heap = off >= 144 && off + n <= offsetof(mm3_header, log_off);
    int retired = off >= offsetof(mm3_header, retired_n) && off + n <= offsetof(mm3_header, prefilled);
    if (!heap && !retired && !(off == MARKER_OFF && n == 8)) return 0;
  }
  const mm3_header *h = mm3__hdr(f);
  uint64_t lo = h->log_off - 16, hi = h->log_off + h->log_cap; /* (its tag included) */
  return off >= hi || off + n <= lo;
}

/* Replay entries of log (newest first) from p down to sp; returns where it
   stopped. pub, if not NULL, follows it, but never to the end: the caller
   publishes that once the heap top is past the log again (a death before
   finds the oldest entry still there, and replays it again). */
static uint64_t replay(mm3_file *f, const uint8_t *log, uint64_t p, uint64_t sp, uint64_t *pub) {
  while (p > sp && p >= 24) {
    uint64_t size, hd[2];
    memcpy(&size, log + p - 8, 8);
    if (size < 24 || size > p) break;
    memcpy(hd, log + p - size, 16);
    if (hd[1] <= size - 24 && replayable(f, hd[0], hd[1])) memcpy(f->base + hd[0], log + p - size + 16, hd[1]);
    p -= size;
    if (pub && p > sp) __atomic_store_n(pub, p, __ATOMIC_RELEASE);
  }
  return p;
}

/* The log itself was allocated unlogged: never let the heap top fall back
   below it (or below a retired one still to be freed). What the rolled-back
   work took from the top below it is reachable from nothing now: a gap,
   freed once nothing is under way (mm3__reclaim_gaps). Returns where the
   gap begins (0: none). */
static uint64_t keep_top_past_log(mm3_file *f) {
  mm3_header *h = mm3__hdr(f);
  if (!mm3__log_block_ok(f)) return 0; /* a damaged log: no block to keep the top past */
  uint64_t end = mm3__block_end(f, h->log_off);
  for (uint64_t i = 0; i < h->retired_n && i < 16; i++)
    if (h->retired[i] % 16 == 0 && mm3__inside(f, h->retired[i] - 16, 16) && mm3__block_end(f, h->retired[i]) > end)
      end = mm3__block_end(f, h->retired[i]);
  uint64_t top = mm3__heap_top(f);
  if (top >= end) return 0;
  /* A gap noted before that begins at or above this one lies inside it
     (every later allocation came from above its end). The note is in the
     file, written before the top moves: whoever dies from here on, the
     next locker frees the gap (the log's rollback finds it again, or,
     with the log empty, the note alone). */
  uint64_t n = h->gaps_n < 8 ? h->gaps_n : 8, j = 0;
  for (uint64_t i = 0; i < n; i++)
    if (h->gaps[i][0] < top) {
      h->gaps[j][0] = h->gaps[i][0], h->gaps[j][1] = h->gaps[i][1];
      j++;
    }
  if (j < 8) { /* else it stays a leak */
    h->gaps[j][0] = top, h->gaps[j][1] = end;
    j++;
  }
  __atomic_store_n(&h->gaps_n, j, __ATOMIC_RELEASE);
  h->heap_top = end;
  return top;
}


void mm3__rollback(mm3_file *f, uint64_t sp) {
  mm3_header *h = mm3__hdr(f);
  mm3__free_rollback(f, sp); /* those blocks are live again */
  if (f->op_own) { /* an operation inside a transaction: its own entries */
    /* (the file's log keeps the top at the savepoint, whose rollback, or
       recovery's, finds this gap again) */
    uint64_t s = mm3__seq_begin(f); /* (lock-free lookups wait for the end) */
    f->nown = replay(f, f->own, f->nown, sp, NULL);
    mm3__seq_end(f, s);
    if (h->log_off) keep_top_past_log(f);
    return;
  }
  uint64_t pos = h->log_len;
  if (!pos) return;
  if (mm3_file_refresh(f)) return; /* what it cannot map, it cannot replay: the log stays */
  if (!mm3__log_block_ok(f) || pos > h->log_cap || pos % 8) {
    h->log_len = 0; /* a damaged log cannot be replayed */
    return;
  }
  if (sp <= f->seen_max) seen_forget(f); /* entries of ranges it holds go */
  uint64_t s = mm3__seq_begin(f); /* (lock-free lookups wait for the end) */
  uint64_t p = replay(f, f->base + h->log_off, pos, sp, &h->log_len);
  mm3__seq_end(f, s);
  if (mm3__test_hook) mm3__test_hook("log: replayed");
  uint64_t gap = keep_top_past_log(f);
  __atomic_store_n(&h->log_len, sp == 0 ? 0 : p, __ATOMIC_RELEASE);
  /* Work goes on in this log (a transaction, or an operation past a failed
     step), and the entry that restored the top went with the rest: an entry
     saying the top was the gap's start lets a later rollback below here, or
     recovery after a death, find the gap again (without room, the gap leaks
     if the writer dies). The callers that end the work empty the log. */
  if (gap && (sp > 0 || f->txn_depth > 0)) log_fixed_at(f, offsetof(mm3_header, heap_top), &gap, 8);
}

void mm3__recover(mm3_file *f) {
  mm3__rollback(f, 0);
  mm3_header *h = mm3__hdr(f);
  /* A rollback that could not replay (this handle cannot map all the log
     may reach) leaves the log, and the dead writer's half-done state: the
     sequence stays as it is (made even, read-only readers took that state
     for a finished one). */
  if (__atomic_load_n(&h->log_len, __ATOMIC_ACQUIRE) != 0) return;
  /* what the dead writer took from the top, and the log blocks it
     replaced: freed with the sequence odd (a read-only check meanwhile saw
     half-made frees) */
  mm3__write_begin(f);
  release_retired(f);
  mm3__reclaim_gaps(f);
  mm3__write_end(f);
  /* the dead writer's odd sequence (a live operation rolled back to 0 makes
     it even at its own end: mm3__rollback leaves it) */
  mm3__seq_settle(f);
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
  mm3__write_begin(f);
  rc = mm3_file_refresh(f);
  if (!rc) rc = ensure_log(f); /* made before any logged write, never inside one */
  if (rc) {
    mm3__write_end(f);
    mm3_file_unlock(f);
    return rc;
  }
  int own = f->txn_depth > 0 && !f->op_own && f->lock_depth == f->txn_lock + 1;
  if (own) {
    f->op_own = 1; /* directly inside a transaction: keeps its own undo entries */
    f->nown = 0;
    f->own_pending = f->npending;
  }
  rc = mm3__savepoint(f, sp);
  if (rc) {
    if (own) f->op_own = 0;
    mm3__write_end(f);
    mm3_file_unlock(f);
  }
  return rc;
}

int mm3__op_end(mm3_file *f, uint64_t sp, int rc) {
  if (rc) mm3__rollback(f, sp); /* a failed operation changes nothing */
  if (f->op_own && f->lock_depth == f->txn_lock + 1) {
    /* Done: its frees now count at the log's position (savepoints taken
       from now on lie past it: mm3__savepoint). */
    for (size_t i = f->own_pending; i < f->npending; i++) f->pending[2 * i + 1] = mm3__hdr(f)->log_len;
    f->op_own = 0;
    f->nown = 0;
    if (f->cown > ((size_t)1 << 20)) { /* a big operation's: give the memory back */
      free(f->own);
      f->own = NULL;
      f->cown = 0;
    }
  }
  if (f->txn_depth == 0) {
    if (mm3__free_in_op(f) && mm3__test_hook) mm3__test_hook("op: frees made");
    __atomic_store_n(&mm3__hdr(f)->log_len, 0, __ATOMIC_RELEASE);
    mm3__settle(f);
  }
  mm3__write_end(f);
  mm3_file_unlock(f);
  return rc;
}

int mm3_txn_begin(mm3_file *f, uint64_t *savepoint) {
  int rc = mm3_file_lock(f);
  if (rc) return rc;
  /* (not inside an operation of its own transaction: that one's rollback
     could not undo what this one logs) */
  rc = mm3__other_txn(f) || f->op_own ? MM3_EBUSY : mm3_file_refresh(f);
  mm3__write_begin(f); /* (the log may be made or grown) */
  if (!rc) rc = ensure_log(f);
  mm3__write_end(f);
  if (rc) {
    mm3_file_unlock(f);
    return rc;
  }
  rc = mm3__savepoint(f, savepoint);
  if (rc) {
    mm3_file_unlock(f);
    return rc;
  }
  if (f->txn_depth++ == 0 && f->txn_owner) *f->txn_owner = f;
  f->txn_lock = f->lock_depth;
  /* What the log leaves out is relative to the newest savepoint handed
     out: a rollback to it (even one of the outermost transaction to an
     inner savepoint) finds every range changed since logged, and all that
     was allocated since above the floor. */
  f->txn_floor = mm3__heap_top(f);
  seen_forget(f);
  return 0;
}

int mm3_txn_commit(mm3_file *f) {
  int rc = 0;
  if (f->txn_depth == 0) return 0;
  if (--f->txn_depth == 0) {
    if (f->durable) rc = mm3_file_flush(f); /* the data before the log is dropped */
    __atomic_store_n(&mm3__hdr(f)->log_len, 0, __ATOMIC_RELEASE);
    seen_forget(f);
    mm3__write_begin(f); /* (its frees are made) */
    mm3__settle(f);
    mm3__write_end(f);
    if (f->txn_owner && *f->txn_owner == f) *f->txn_owner = NULL;
  }
  f->txn_lock = f->lock_depth - 1; /* the enclosing transaction's, if any (set under the lock:
                                       threads may share a handle) */
  mm3_file_unlock(f);
  return rc;
}

void mm3_txn_rollback(mm3_file *f, uint64_t savepoint) {
  if (f->txn_depth == 0) return;
  mm3__rollback(f, savepoint);
  if (--f->txn_depth == 0) {
    __atomic_store_n(&mm3__hdr(f)->log_len, 0, __ATOMIC_RELEASE);
    seen_forget(f);
    mm3__write_begin(f);
    mm3__settle(f); /* frees made before the savepoint (normally none) commit */
    mm3__write_end(f);
    if (f->txn_owner && *f->txn_owner == f) *f->txn_owner = NULL;
  }
  f->txn_lock = f->lock_depth - 1; /* the enclosing transaction's, if any */
  mm3_file_unlock(f);
}

void mm3__settle(mm3_file *f) {
  mm3__free_commit(f);
  release_retired(f);
  mm3__reclaim_gaps(f);
}

int mm3_txn_depth(const mm3_file *f) { return f->txn_depth; }
uint64_t mm3_file_seq(const mm3_file *f) { return __atomic_load_n(&mm3__hdr(f)->seq, __ATOMIC_ACQUIRE); }
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
