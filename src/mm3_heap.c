/*
 * mm3_heap.c - what growable containers stand on: the file's writer lock, the
 * heap allocator inside the file, and the keyed hash.
 *
 * The heap is a segregated free list: blocks of 16 << k bytes (k < 48), each
 * behind a 16-byte tag, taken from the class's free list or from the heap top,
 * which grows the file (blocks first, posix_fallocate) in steps of at least
 * 1 MiB or 1/8 of the file. Freed blocks go back to their class. Allocation
 * and freeing are O(1).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm3_internal.h"

_Static_assert(sizeof(pthread_mutex_t) <= 64, "the lock fits in the header");

#define TAG_USED MM3_TAG_USED /* "mm3Allo" + class */
#define TAG_FREE 0x6d6d334672656500ULL /* "mm3Free" + class */
#define BLOCK_HEAD 16

/* ---- the writer lock ---- */

/* The lock is a recursive mutex, so a second handle of the same file in the
   same thread takes it again at once. What says whether this process already
   holds it (and so whether a logged write is ours, under way, or a dead
   writer's) is a depth per file, shared by all of the process's handles. */
typedef struct held_file {
  uint64_t dev, ino;
  int refs, depth;
  void *txn_owner; /* the handle with a transaction open, if any: the others may not write meanwhile */
  struct held_file *next;
} held_file;

/* One node per file open in this process, in a list: a node never moves, so
   handles keep pointers into it; freed when its last handle detaches. */
static held_file *held_list;
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;

/* After fork() the child holds no lock, whatever its parent held. */
static void held_after_fork(void) {
  for (held_file *h = held_list; h; h = h->next) h->depth = 0, h->txn_owner = NULL;
  mm3__guard_forget_locks();
}

static void mm3__held_register_fork(void) { pthread_atfork(NULL, NULL, held_after_fork); }

/* The low byte of the mutex's kind word (glibc x86-64: the int at 16: its
   type, robust and shared bits) as mm3__lock_init makes it. A lock whose
   bytes another program overwrote (zeroed, say: a plain private mutex,
   which a second lock by the same thread would wait on for ever) is
   refused instead of taken. Read once, as the first file opens (every
   open attaches), not on every lock. */
static uint8_t lock_kind;
static void read_lock_kind(void) {
  uint8_t probe[64];
  if (mm3__lock_init(probe) == 0) lock_kind = probe[16];
}

/* Byte 40 of the lock's 64, past glibc's 40-byte mutex (which never writes
   there), holds a mark. Another program that truncates the file into its
   first page makes the kernel zero the rest of that page: the mark, and
   from a cut under 120 bytes the mutex's robust-list links (its bytes 24
   to 39), which pthread_mutex_unlock follows into the thread's list and
   crashed on when the cut came while this process held the lock. An
   unlock that finds the mark gone leaves the mutex alone: the file is
   flagged truncated (every later access raises), and the thread keeps the
   lock until it ends, when the kernel's robust-list walk marks its holder
   dead for the others. */
#define LOCK_MARK 0xA5
#define LOCK_MARK_AT 40
_Static_assert(sizeof(pthread_mutex_t) <= LOCK_MARK_AT, "the mark lies past the mutex");

void mm3__lock_mark(mm3_file *f) {
  uint8_t *m = mm3__hdr(f)->lock + LOCK_MARK_AT;
  if (*m != LOCK_MARK) *m = LOCK_MARK; /* a lock an older version made */
}

void mm3__held_attach(mm3_file *f, uint64_t dev, uint64_t ino) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, mm3__held_register_fork);
  static pthread_once_t kind_once = PTHREAD_ONCE_INIT;
  pthread_once(&kind_once, read_lock_kind);
  f->held = &f->own_held; /* only if malloc fails below */
  f->txn_owner = &f->own_txn_owner;
  pthread_mutex_lock(&held_mu);
  held_file *h = held_list;
  while (h && !(h->dev == dev && h->ino == ino)) h = h->next;
  if (!h && (h = calloc(1, sizeof *h)) != NULL) {
    h->dev = dev;
    h->ino = ino;
    h->next = held_list;
    held_list = h;
  }
  if (h) {
    h->refs++;
    f->held = &h->depth;
    f->txn_owner = &h->txn_owner;
  }
  pthread_mutex_unlock(&held_mu);
}

void mm3__held_detach(mm3_file *f) {
  if (!f->held || f->held == &f->own_held) return;
  pthread_mutex_lock(&held_mu);
  held_file *h = (held_file *)((char *)f->held - offsetof(held_file, depth));
  if (h->txn_owner == f) h->txn_owner = NULL;
  if (--h->refs == 0) {
    held_file **pp = &held_list;
    while (*pp && *pp != h) pp = &(*pp)->next;
    if (*pp) *pp = h->next;
    free(h);
  }
  pthread_mutex_unlock(&held_mu);
  f->held = NULL;
  f->txn_owner = NULL;
}

int mm3__lock_init(void *lock) {
  pthread_mutexattr_t a;
  int rc = pthread_mutexattr_init(&a);
  if (!rc) rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (!rc) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (!rc) rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  if (!rc) rc = pthread_mutex_init((pthread_mutex_t *)lock, &a);
  pthread_mutexattr_destroy(&a);
  if (!rc) ((uint8_t *)lock)[LOCK_MARK_AT] = LOCK_MARK;
  return rc;
}

int mm3_file_lock(mm3_file *f) {
  if (f->readonly) return MM3_EREADONLY;
  pthread_mutex_t *m = (pthread_mutex_t *)mm3__hdr(f)->lock;
  if (lock_kind && ((const uint8_t *)m)[16] != lock_kind) return MM3_ELOCKBAD; /* (0: not read) */
  int rc = pthread_mutex_trylock(m);
  /* Taken by another: wait, a while at a time. A robust mutex without
     priority inheritance wakes one waiter at an unlock; if that waiter is
     killed before it takes the lock, no one wakes the others, and an
     untimed wait would sleep for ever with the lock free (seen with
     waiters killed at random). A timed one looks again. */
  while (rc == EBUSY) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 100 * 1000 * 1000;
    if (until.tv_nsec >= 1000 * 1000 * 1000) until.tv_sec++, until.tv_nsec -= 1000 * 1000 * 1000;
    rc = pthread_mutex_timedlock(m, &until);
    if (rc == ETIMEDOUT) rc = EBUSY;
  }
  if (rc == EOWNERDEAD) {
    /* Its holder died, maybe inside a write: make the lock usable again;
       the rollback below undoes whatever it left half done. */
    pthread_mutex_consistent(m);
    rc = 0;
    /* The dead holder may have been a thread of this process (it ended
       with the lock held, maybe in a transaction): its depth and its open
       transaction are not this process's any more. Nobody here holds the
       lock but us, so the count starts again from zero, and the rollback
       below takes its log for the dead writer's that it is. */
    mm3_file *owner = f->txn_owner ? *f->txn_owner : NULL;
    if (owner) mm3__forget_holder(owner);
    mm3__guard_forget_holders(f); /* every handle it held the lock through, in or out of a transaction */
    mm3__forget_holder(f);     /* (f too, if the dead thread used it) */
    if (f->txn_owner) *f->txn_owner = NULL;
    *f->held = 0;
  }
  if (rc) return rc;
  if (f->lock_depth++ == 0) __atomic_store_n(&f->lock_thread, (unsigned long)pthread_self(), __ATOMIC_RELAXED);
  if ((*f->held)++ == 0) {
    /* Nobody else holds the lock: what a writer that died left is settled
       before anything else. */
    if (__atomic_load_n(&mm3__hdr(f)->log_len, __ATOMIC_ACQUIRE) != 0) {
      /* A write logged as under way: roll it back (recovery makes the
         sequence even after its rollback). Through this handle only if it
         can map all the log may reach (the dead writer may have grown the
         file past this open's reserve); else the log stays for one that
         can, and the lock is not taken. */
      int rrc = mm3_file_refresh(f);
      if (rrc) {
        mm3_file_unlock(f);
        return rrc;
      }
      if (mm3__test_hook) mm3__test_hook("lock: recovering");
      mm3__recover(f);
      f->recovered++;
    } else {
      /* Nothing logged: it died making the first log, or settling (its
         sequence left odd for every later writer, their lock-free readers
         waiting on it), maybe as it freed the gaps of its emptied log. */
      mm3__seq_settle(f);
      if (__atomic_load_n(&mm3__hdr(f)->gaps_n, __ATOMIC_ACQUIRE) != 0) {
        mm3__write_begin(f); /* (read-only readers see the frees as a write) */
        mm3__reclaim_gaps(f);
        mm3__write_end(f);
      }
    }
  }
  return 0;
}

int mm3__txn_here(const mm3_file *f) {
  /* (the depth first: a plain store outside any transaction pays one load) */
  return f->txn_depth > 0 && __atomic_load_n(&f->lock_thread, __ATOMIC_RELAXED) == (unsigned long)pthread_self();
}

void mm3__forget_holder(mm3_file *g) {
  /* the frees it made wait for a commit that never comes: the rollback
     makes those blocks live again */
  mm3__txn_forget(g);
  g->npending = 0;
  g->txn_depth = 0, g->lock_depth = 0, g->no_log = 0, g->seq_depth = 0;
  __atomic_store_n(&g->lock_thread, 0UL, __ATOMIC_RELAXED);
}

void mm3_file_unlock(mm3_file *f) {
  if (f->readonly || f->lock_depth == 0) return;
  if (--f->lock_depth == 0) __atomic_store_n(&f->lock_thread, 0UL, __ATOMIC_RELAXED);
  (*f->held)--;
  uint8_t *lock = mm3__hdr(f)->lock;
  if (lock[LOCK_MARK_AT] != LOCK_MARK) { /* cut into the first page: see LOCK_MARK */
    f->truncated = 1;
    return;
  }
  pthread_mutex_unlock((pthread_mutex_t *)lock);
}

/* ---- reads without the lock ---- */

/* Whether nobody holds the lock: 0 when it cannot tell. glibc's robust
   mutex keeps its holder's thread id in its first word (the kernel's robust
   futex protocol: a holder that dies leaves the owner-died bit and no id). */
static int lock_free(const mm3_file *f) {
#ifdef __GLIBC__
  const uint8_t *lock = mm3__hdr(f)->lock;
  if (!lock_kind || lock[16] != lock_kind) return 0;
  return (__atomic_load_n((const uint32_t *)lock, __ATOMIC_ACQUIRE) & 0x3FFFFFFFu) == 0; /* FUTEX_TID_MASK */
#else
  (void)f;
  return 0;
#endif
}

static void pause_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Let the writers run before a read is tried again.
   - The first 1000 tries (or 10 ms: a big copy takes long a try) yield, then
     wait briefly for the sequence to move and the operation under way to
     end, so that the next read starts where a gap between a writer's
     operations starts: a read started at a random moment, longer than the
     gaps of a writer that never pauses, failed all 1000 times. (An idle
     writer costs the wait, 256 pauses, to a read that then cannot fail.)
   - A writer descheduled in the middle of an operation (a busy machine)
     keeps the sequence odd for milliseconds: later tries sleep a
     millisecond each, until two seconds have passed since the first retry
     (MM3_EWRITERS then).
   - A sequence odd while nobody holds the lock, and still the same after
     that was seen, was left so by a writer that died (a live one makes it
     even before it unlocks): once the first tries have given the writers
     still alive the time to lock (the first to lock makes it even), no
     longer wait helps (MM3_EWRITERS). */
int mm3__read_again(const mm3_file *f, mm3__retry *r) {
  uint64_t now = mono_ns();
  if (r->tries++ == 0) r->start = now;
  uint64_t spent = now - r->start;
  if (spent > 2000000000u) return MM3_EWRITERS;
  /* past the first 1000 tries, or 10 ms (a big copy takes long a try) */
  int patient = r->tries > 1000 || spent > 10000000u;
  const uint64_t *seq = &mm3__hdr(f)->seq;
  if (!patient) {
    sched_yield();
    uint64_t s0 = __atomic_load_n(seq, __ATOMIC_RELAXED);
    for (int spin = 0; spin < 256 && !(s0 & 1) && __atomic_load_n(seq, __ATOMIC_RELAXED) == s0; spin++) pause_cpu();
    for (int spin = 0; spin < 256 && (__atomic_load_n(seq, __ATOMIC_RELAXED) & 1); spin++) pause_cpu();
  } else {
    struct timespec ms = {0, 1000 * 1000};
    nanosleep(&ms, NULL);
  }
  uint64_t s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
  if (patient && (s & 1) && lock_free(f) && __atomic_load_n(seq, __ATOMIC_ACQUIRE) == s) return MM3_EWRITERS;
  return 0;
}

/* ---- the heap ---- */

static uint64_t heap_start(const mm3_file *f) { return mm3__heap_start(f); }

uint64_t mm3__heap_top(const mm3_file *f) {
  uint64_t top = mm3__hdr(f)->heap_top;
  return top ? top : heap_start(f);
}

/* The tag of the block whose payload is at off, if it is a block in use. */
static uint64_t *used_tag(mm3_file *f, uint64_t off) {
  if (off < BLOCK_HEAD || off % 16 || !mm3__inside(f, off - BLOCK_HEAD, BLOCK_HEAD)) return NULL;
  return mm3__used_bytes(f, off) ? (uint64_t *)(f->base + off - BLOCK_HEAD) : NULL;
}

/* The bytes of the heap block in use (whole: mapped here) whose payload is at
   off, past the root; 0 if there is none. */
static uint64_t used_block(const mm3_file *f, uint64_t off) {
  if (off < heap_start(f) + BLOCK_HEAD || off % 16 || !mm3__inside(f, off - BLOCK_HEAD, BLOCK_HEAD)) return 0;
  uint64_t bsize = mm3__used_bytes(f, off);
  return bsize && mm3__inside(f, off - BLOCK_HEAD, bsize) ? bsize : 0;
}

int mm3__block_is(const mm3_file *f, uint64_t off, uint64_t size) {
  uint64_t bsize = used_block(f, off);
  return bsize && bsize == (uint64_t)16 << mm3__class_of(size);
}

int mm3__log_block_ok(const mm3_file *f) {
  const mm3_header *h = mm3__hdr(f);
  uint64_t bsize = used_block(f, h->log_off);
  return bsize && h->log_cap <= bsize - BLOCK_HEAD;
}

uint64_t mm3__block_end(const mm3_file *f, uint64_t off) {
  uint64_t tag = *(const uint64_t *)(f->base + off - BLOCK_HEAD);
  if ((tag & 0xff) >= MM3_FREE_CLASSES) return off; /* damaged: no block */
  return off - BLOCK_HEAD + ((uint64_t)16 << (tag & 0xff));
}

enum { FROM_TOP = 1, UNZEROED = 2 };

/* Pages of the file past the heap top are fallocated but not in the page
   cache: the first write to each through the mapping faults, and on ext4
   such a fault (a page zeroed, an unwritten extent marked, one page at a
   time) cost 1.4-4.7 us here. Writing zeros over them with pwrite first,
   in bulk, does the same work for less: 0.8-1.0 us a page for the write and
   the fault that follows together. So before a block is cut at the heap top,
   the bytes of it that are written at once (its head, and its payload when
   the allocation zeroes it) are written with zeros, and so is the next
   megabyte past the block, where the next blocks will go; the rest of a big
   block is left alone (a new segment is written an element at a time, and
   an untouched page costs no memory). h->prefilled remembers how far that
   went. Past the top no byte is anybody's (the caller holds the lock), so
   this changes nothing stored; it never writes past the file's end (a file
   another program cut stays cut), and a failed write only leaves the faults
   to happen. */
#define PREFILL ((uint64_t)1 << 20)

/* Write zeros over [from, to), cut to end; returns where it stopped. */
static uint64_t zero_range(mm3_file *f, uint64_t from, uint64_t to, uint64_t end) {
  static const char zeros[1 << 16];
  if (to > end) to = end;
  while (from < to) {
    size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
    ssize_t w = pwrite(f->fd, zeros, n, (off_t)from);
    if (w <= 0) return from;
    from += (uint64_t)w;
  }
  return from;
}

/* A block of the heap top: written at once in [top, touched), ending at next. */
static void prefill(mm3_file *f, uint64_t top, uint64_t touched, uint64_t next) {
  mm3_header *h = mm3__hdr(f);
  uint64_t done = h->prefilled;
  if (done < top || done > f->mapped) done = top; /* no hint (an older file, a rollback) */
  else if (done >= next) return;
  struct stat st;
  if (fstat(f->fd, &st) != 0) return;
  uint64_t end = (uint64_t)st.st_size < f->mapped ? (uint64_t)st.st_size : f->mapped;
  if (next - touched < PREFILL / 16) touched = next; /* one write */
  if (done < touched && zero_range(f, done, touched, end) < touched) return;
  h->prefilled = zero_range(f, done > next ? done : next, next + PREFILL, end);
}

int (*mm3__test_fail)(const char *point);

static int alloc(mm3_file *f, uint64_t size, uint64_t *off, int how) {
  int top_only = how & FROM_TOP;
  mm3_header *h = mm3__hdr(f);
  if (size > ((uint64_t)1 << 50)) return MM3_ETOOBIG;
  if (mm3__test_fail && mm3__test_fail("heap: alloc")) return ENOMEM;
  int k = (int)mm3__class_of(size);
  uint64_t bsize = (uint64_t)16 << k;
  int rc = mm3_file_refresh(f);
  if (rc) return rc;
  uint64_t b = top_only ? 0 : h->free_list[k];
  if (b) {
    if (b % 16 || !mm3__inside(f, b, bsize) || b < heap_start(f)) return MM3_ECORRUPT;
    uint64_t *tag = (uint64_t *)(f->base + b);
    if (tag[0] != (TAG_FREE | (uint64_t)k)) return MM3_ECORRUPT;
    if ((rc = mm3__log(f, &h->free_list[k], 8)) != 0 || (rc = mm3__log(f, tag, 16)) != 0) return rc;
    h->free_list[k] = tag[1];
  } else {
    /* Log the top before reading it: logging may grow the undo log, which
       takes its block from this same top. */
    if ((rc = mm3__log(f, &h->heap_top, 8)) != 0) return rc;
    uint64_t top = h->heap_top ? h->heap_top : heap_start(f);
    /* the top lies in the file (a damaged one could make top + bsize wrap,
       or point the tag below outside the mapping) */
    if (top < heap_start(f) || top % 16 || top > f->mapped) return MM3_ECORRUPT;
    if (top + bsize > f->mapped) {
      uint64_t want = top + bsize, step = f->mapped / 8;
      if (step < ((uint64_t)1 << 20)) step = (uint64_t)1 << 20;
      if (want < f->mapped + step) want = f->mapped + step;
      rc = mm3_file_grow(f, want);
      if (rc == MM3_ERESERVE || rc == ENOSPC) rc = mm3_file_grow(f, top + bsize); /* no slack */
      if (rc) return rc;
    }
    b = top;
    prefill(f, top, top + BLOCK_HEAD + (how & UNZEROED ? 0 : size), top + bsize);
    /* the tag first, then the top: the heap below the top is always tagged */
    ((uint64_t *)(f->base + b))[1] = 0;
    ((uint64_t *)(f->base + b))[0] = TAG_USED | (uint64_t)k;
    __atomic_store_n(&h->heap_top, top + bsize, __ATOMIC_RELEASE);
    if (mm3__test_hook) mm3__test_hook("heap: top moved");
  }
  /* (blocks from the top only are the undo log's, counted nowhere: never
     counted, they need no undoing of the count if a death follows) */
  if (!top_only && (rc = mm3__log(f, &h->alloc_bytes, 8)) != 0) return rc;
  uint64_t *tag = (uint64_t *)(f->base + b);
  tag[1] = 0;
  tag[0] = TAG_USED | (uint64_t)k;
  /* Only the bytes asked for: the rest of the block is never read, and
     left untouched it costs no page (a power-of-two payload, a segment or a
     map's table, takes a block twice its size for the 16-byte head). */
  if (!(how & UNZEROED)) memset(f->base + b + BLOCK_HEAD, 0, size);
  if (!top_only) h->alloc_bytes += bsize;
  *off = b + BLOCK_HEAD;
  return 0;
}

int mm3__alloc(mm3_file *f, uint64_t size, uint64_t *off) { return alloc(f, size, off, 0); }

int mm3__alloc_raw(mm3_file *f, uint64_t size, uint64_t *off) { return alloc(f, size, off, UNZEROED); }

/* Always from the heap top (the undo log's blocks: see mm3_txn.c). */
int mm3__alloc_top(mm3_file *f, uint64_t size, uint64_t *off) { return alloc(f, size, off, FROM_TOP); }

/* Put a block on its free list now (its tag checked); counted: its bytes
   leave alloc_bytes (the undo log's blocks were never in it). */
static int free_now(mm3_file *f, uint64_t off, int counted) {
  mm3_header *h = mm3__hdr(f);
  uint64_t *tag = used_tag(f, off);
  if (!tag) return MM3_ECORRUPT;
  uint64_t k = tag[0] & 0xff;
  tag[0] = TAG_FREE | k;
  if (mm3__test_hook) mm3__test_hook("heap: tag freed");
  tag[1] = h->free_list[k];
  h->free_list[k] = off - BLOCK_HEAD;
  if (counted) h->alloc_bytes -= (uint64_t)16 << k;
  return 0;
}

/* A block freed inside a logged operation or transaction is only put on its
   free list when that commits: until then a rollback may make it live again,
   and its bytes must still be there (a reuse would overwrite them unlogged). */
int mm3__free(mm3_file *f, uint64_t off) {
  if (f->no_log || f->lock_depth == 0) return free_now(f, off, 1);
  if (off < BLOCK_HEAD || off % 16 || !mm3__inside(f, off - BLOCK_HEAD, BLOCK_HEAD)) return MM3_ECORRUPT;
  if (f->npending == f->cpending) {
    size_t n = f->cpending ? f->cpending * 2 : 16;
    uint64_t *p = realloc(f->pending, n * 2 * sizeof *p);
    if (!p) return ENOMEM;
    f->pending = p;
    f->cpending = n;
  }
  f->pending[2 * f->npending] = off;
  /* dropped by a rollback to here or below (a savepoint taken after this
     lies past here: see mm3__savepoint) */
  f->pending[2 * f->npending + 1] = mm3__position(f);
  f->npending++;
  return 0;
}

/* Freeing a block writes its tag and its list's head: a death between the
   two would leave a block tagged free on no list, which mm3_file_check takes
   for damage. So blocks are freed, once nothing else is under way (the log
   empty), in steps of FREE_STEP, each logged (the free lists' heads, the
   count, the tags) and ended on its own: a death inside one rolls it back,
   and its blocks stay in use, reachable from nothing (a leak, no more). */
#define FREE_STEP 64

/* Log what freeing m blocks (offs[0], offs[stride], ...) changes, after
   what the log holds: 1, or 0 with the log as it was (no room). */
static int log_frees(mm3_file *f, const uint64_t *offs, size_t stride, size_t m, int counted, uint64_t *count) {
  mm3_header *h = mm3__hdr(f);
  uint64_t start = h->log_len, heads = 0; /* the classes whose list head is logged */
  int logged = (!counted || mm3__log_fixed(f, &h->alloc_bytes, 8) == 0) && (!count || mm3__log_fixed(f, count, 8) == 0);
  for (size_t j = 0; j < m && logged; j++) {
    uint64_t *tag = used_tag(f, offs[j * stride]);
    if (!tag) continue;
    uint64_t k = tag[0] & 0xff;
    logged = mm3__log_fixed(f, tag, 16) == 0;
    if (logged && !(heads >> k & 1)) logged = mm3__log_fixed(f, &h->free_list[k], 8) == 0;
    heads |= (uint64_t)1 << k;
  }
  if (!logged) __atomic_store_n(&h->log_len, start, __ATOMIC_RELEASE);
  return logged;
}

void mm3__free_steps(mm3_file *f, const uint64_t *offs, size_t stride, size_t n, int counted, uint64_t *count) {
  mm3_header *h = mm3__hdr(f);
  for (size_t i = 0; i < n; i += FREE_STEP) {
    size_t m = n - i < FREE_STEP ? n - i : FREE_STEP;
    /* (with work under way, or no room in a damaged log: unlogged, as it
       once was) */
    int logged = __atomic_load_n(&h->log_len, __ATOMIC_ACQUIRE) == 0 &&
                 log_frees(f, offs + i * stride, stride, m, counted, count);
    for (size_t j = 0; j < m; j++) {
      free_now(f, offs[(i + j) * stride], counted);
      if (j == 0 && mm3__test_hook) mm3__test_hook("heap: freeing");
    }
    if (count) *count = 0;
    if (logged) __atomic_store_n(&h->log_len, 0, __ATOMIC_RELEASE);
  }
}

void mm3__free_commit(mm3_file *f) {
  mm3__free_steps(f, f->pending, 2, f->npending, 1, NULL);
  f->npending = 0;
}

int mm3__free_in_op(mm3_file *f) {
  if (!f->npending || f->npending > FREE_STEP || !log_frees(f, f->pending, 2, f->npending, 1, NULL)) return 0;
  for (size_t i = 0; i < f->npending; i++) free_now(f, f->pending[2 * i], 1);
  f->npending = 0;
  return 1;
}

/* The size of the heap block at b (below end), or 0 if its tag is damaged;
   *used says whether it is in use. The heap below its top is such blocks,
   one after the other. */
static uint64_t block_at(const mm3_file *f, uint64_t b, uint64_t end, int *used) {
  uint64_t tag = *(const uint64_t *)(f->base + b), k = tag & 0xff, kind = tag & ~(uint64_t)0xff;
  if ((kind != TAG_USED && kind != TAG_FREE) || k >= MM3_FREE_CLASSES || ((uint64_t)16 << k) > end - b) return 0;
  *used = kind == TAG_USED;
  return (uint64_t)16 << k;
}

/* The block at b is one of the undo log's (the log, or one it replaced). */
static int log_block(const mm3_file *f, uint64_t b) {
  if (mm3__hdr(f)->log_off == b + BLOCK_HEAD) return 1;
  const mm3_header *h = mm3__hdr(f);
  for (uint64_t i = 0; i < h->retired_n && i < 16; i++)
    if (h->retired[i] == b + BLOCK_HEAD) return 1;
  return 0;
}

/* Whether the note of gaps is one a writer made: each range in the heap,
   below its top. (The top itself is checked by the caller.) */
static int gaps_ok(const mm3_file *f, uint64_t top) {
  const mm3_header *h = mm3__hdr(f);
  if (h->gaps_n > 8) return 0;
  for (uint64_t i = 0; i < h->gaps_n; i++)
    if (h->gaps[i][0] < heap_start(f) || h->gaps[i][0] % 16 || h->gaps[i][0] > h->gaps[i][1] || h->gaps[i][0] > top)
      return 0;
  return 1;
}

void mm3__reclaim_gaps(mm3_file *f) {
  mm3_header *h = mm3__hdr(f);
  if (!h->gaps_n || __atomic_load_n(&h->log_len, __ATOMIC_ACQUIRE) != 0) return;
  if (mm3__test_hook) mm3__test_hook("gaps: to free");
  /* A handle that cannot map all the file leaves them in use (a leak): a
     note kept for later could name a replaced log block that is freed and
     handed out meanwhile. */
  if (mm3_file_refresh(f)) {
    __atomic_store_n(&h->gaps_n, 0, __ATOMIC_RELEASE);
    return;
  }
  /* A damaged note (or top) frees nothing: what it names stays in use (a
     leak), where trusting it could free live blocks. */
  uint64_t batch[FREE_STEP], top = mm3__heap_top(f), n = h->gaps_n;
  if (top > f->mapped || !gaps_ok(f, top)) n = 0;
  size_t m = 0;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t b = h->gaps[i][0], end = h->gaps[i][1] < top ? h->gaps[i][1] : top;
    for (uint64_t size; b < end; b += size) {
      int used;
      if (!(size = block_at(f, b, end, &used))) break; /* damaged: the rest stays as it is */
      if (used && !log_block(f, b)) batch[m++] = b + BLOCK_HEAD;
      if (m == FREE_STEP) {
        mm3__free_steps(f, batch, 1, m, 0, NULL); /* not counted: the rollback took them out of alloc_bytes */
        m = 0;
      }
    }
  }
  if (m) mm3__free_steps(f, batch, 1, m, 0, NULL);
  __atomic_store_n(&h->gaps_n, 0, __ATOMIC_RELEASE);
}

void mm3__free_rollback(mm3_file *f, uint64_t sp) {
  size_t low = f->op_own ? f->own_pending : 0; /* an operation's savepoints are its own */
  while (f->npending > low && f->pending[2 * (f->npending - 1) + 1] >= sp) f->npending--;
}

/* ---- SipHash-1-3, keyed by the file's random seed (mm3_internal.h) ---- */

uint64_t mm3_hash(uint64_t seed, const void *data, size_t len) {
  mm3__sip s = mm3__sip_init(seed);
  const uint8_t *p = data, *end = p + (len & ~(size_t)7);
  uint64_t b = (uint64_t)len << 56, m;
  for (; p != end; p += 8) {
    memcpy(&m, p, 8);
    mm3__sip_word(&s, m);
  }
  switch (len & 7) {
    case 7: b |= (uint64_t)p[6] << 48; /* FALLTHROUGH */
    case 6: b |= (uint64_t)p[5] << 40; /* FALLTHROUGH */
    case 5: b |= (uint64_t)p[4] << 32; /* FALLTHROUGH */
    case 4: b |= (uint64_t)p[3] << 24; /* FALLTHROUGH */
    case 3: b |= (uint64_t)p[2] << 16; /* FALLTHROUGH */
    case 2: b |= (uint64_t)p[1] << 8;  /* FALLTHROUGH */
    case 1: b |= (uint64_t)p[0]; break;
    case 0: break;
  }
  return mm3__sip_end(&s, b);
}

uint64_t mm3_file_seed(const mm3_file *f) { return f->seed; }

/* ---- checking (memmap3 check) ---- */

#include <stdio.h>

int mm3_file_usage(mm3_file *f, mm3_heap_usage *u) {
  mm3_header *h = mm3__hdr(f);
  memset(u, 0, sizeof *u);
  /* the lock, taken and given back: what a dead writer left half done is
     rolled back first, not counted (as leaked, say) */
  if (!f->readonly && mm3_file_lock(f) == 0) mm3_file_unlock(f);
  int rc = mm3_file_refresh(f);
  if (rc) return rc;
  uint64_t start = heap_start(f), top = __atomic_load_n(&h->heap_top, __ATOMIC_ACQUIRE);
  if (!top) top = start;
  if (top < start || top > f->mapped || top % 16) return MM3_ECORRUPT;
  uint64_t tagged = 0;
  for (uint64_t b = start, size; b < top; b += size) {
    int used;
    if (!(size = block_at(f, b, top, &used))) return MM3_ECORRUPT;
    if (!used) u->free += size;
    else if (log_block(f, b)) u->log += size;
    else tagged += size;
  }
  u->heap = top - start;
  u->used = tagged < h->alloc_bytes ? tagged : h->alloc_bytes;
  u->leaked = tagged - u->used;
  return 0;
}

/* Map what the file has grown to before a check reads it: a file bigger
   than this handle's reserved range cannot be checked through it (what lies
   past the range is not damage), and why says so. */
int mm3__check_refresh(mm3_file *f, char *why, size_t n) {
  int rc = mm3_file_refresh(f);
  if (rc == MM3_ERESERVE)
    snprintf(why, n, "the file (%llu bytes) is bigger than this open's reserved address range (%llu bytes): "
             "open it with a bigger reserve to check it",
             (unsigned long long)__atomic_load_n(&mm3__hdr(f)->size, __ATOMIC_ACQUIRE),
             (unsigned long long)f->reserve);
  else if (rc) snprintf(why, n, "%s", mm3_strerror(rc));
  return rc;
}

static int check_heap(mm3_file *f, char *why, size_t n);

/* A writable handle checks under the lock: taking it first rolls back a
   dead writer's unfinished work (which is not damage), and writers of other
   processes cannot change what is being read. A read-only handle reads as
   it is (a dead writer's unfinished work shows). */
int mm3_file_check(mm3_file *f, char *why, size_t n) {
  if (n) why[0] = 0;
  int locked = !f->readonly && mm3_file_lock(f) == 0;
  int rc = check_heap(f, why, n);
  if (locked) mm3_file_unlock(f);
  return rc;
}

static int check_heap(mm3_file *f, char *why, size_t n) {
  mm3_header *h = mm3__hdr(f);
  int rc = mm3__check_refresh(f, why, n);
  if (rc) return rc;
  uint64_t start = heap_start(f), top = h->heap_top ? h->heap_top : start;
  if (top < start || top > f->mapped || top % 16) {
    snprintf(why, n, "heap top %llu is outside the file (%llu bytes)", (unsigned long long)top,
             (unsigned long long)f->mapped);
    return MM3_ECORRUPT;
  }
  uint64_t used = 0, nfree = 0;
  for (uint64_t b = start, size; b < top; b += size) {
    int in_use;
    if (!(size = block_at(f, b, top, &in_use))) {
      snprintf(why, n, "heap block at %llu has a damaged tag", (unsigned long long)b);
      return MM3_ECORRUPT;
    }
    if (in_use) used += size;
    else nfree++;
  }
  /* The undo log's blocks are not counted in alloc_bytes; a log block a dead
     process was about to free is a leak, not damage: used may exceed it. */
  if (h->log_off) {
    uint64_t lb = h->log_off - BLOCK_HEAD;
    uint64_t tag = h->log_off % 16 == 0 && mm3__inside(f, lb, BLOCK_HEAD) ? *(uint64_t *)(f->base + lb) : 0;
    if ((tag & ~(uint64_t)0xff) != TAG_USED || (tag & 0xff) >= MM3_FREE_CLASSES || ((uint64_t)16 << (tag & 0xff)) > used) {
      snprintf(why, n, "undo log at %llu is not a heap block in use", (unsigned long long)h->log_off);
      return MM3_ECORRUPT;
    }
    used -= (uint64_t)16 << (tag & 0xff);
  }
  if (used < h->alloc_bytes) {
    snprintf(why, n, "heap: %llu bytes in used blocks, header says %llu", (unsigned long long)used,
             (unsigned long long)h->alloc_bytes);
    return MM3_ECORRUPT;
  }
  uint64_t listed = 0;
  for (int k = 0; k < MM3_FREE_CLASSES; k++)
    for (uint64_t b = h->free_list[k]; b; b = ((uint64_t *)(f->base + b))[1]) {
      if (b < start || b > top || ((uint64_t)16 << k) > top - b || b % 16 ||
          *(uint64_t *)(f->base + b) != (TAG_FREE | (uint64_t)k) || ++listed > nfree) {
        snprintf(why, n, "heap: free list %d is damaged at %llu", k, (unsigned long long)b);
        return MM3_ECORRUPT;
      }
    }
  if (listed != nfree) {
    snprintf(why, n, "heap: %llu free blocks, %llu on the free lists", (unsigned long long)nfree,
             (unsigned long long)listed);
    return MM3_ECORRUPT;
  }
  if (h->log_len && h->log_len > h->log_cap) {
    snprintf(why, n, "undo log length %llu over its capacity", (unsigned long long)h->log_len);
    return MM3_ECORRUPT;
  }
  if (h->retired_n > 16) {
    snprintf(why, n, "heap: %llu replaced log blocks listed, at most 16", (unsigned long long)h->retired_n);
    return MM3_ECORRUPT;
  }
  /* (a note a dead writer left: the next writable locker frees its blocks) */
  if (!gaps_ok(f, top)) {
    snprintf(why, n, "heap: the note of gaps to free is damaged (%llu gaps)", (unsigned long long)h->gaps_n);
    return MM3_ECORRUPT;
  }
  return 0;
}
