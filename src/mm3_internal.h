/*
 * mm3_internal.h - internals shared by the C core's files (not installed).
 */
#ifndef MM3_INTERNAL_H
#define MM3_INTERNAL_H

#include <sched.h>
#include <string.h>

#include "memmap3.h"

#if defined(__GNUC__)
#define MM3_INTERNAL __attribute__((visibility("hidden")))
#else
#define MM3_INTERNAL
#endif

/* The page size, read once. */
MM3_INTERNAL size_t mm3__page_size(void);

/* 1 if off + len overflows or passes limit. */
static inline int mm3__range_bad(uint64_t off, uint64_t len, uint64_t limit) {
  return off > limit || len > limit - off;
}

struct mm3_map {
  uint8_t *base;     /* page-aligned start of the kernel mapping (NULL when empty) */
  size_t map_len;    /* bytes mapped from base */
  size_t delta;      /* user offset - aligned offset */
  size_t len;        /* user-visible length */
  mm3_mode mode;
  mm3_prot prot;
  int flags;         /* mmap flags used */
  int anon;
  size_t made_len;   /* anonymous maps: the memory's size, whole pages, as made (a shared one's is fixed) */
  int fd;            /* only for file maps needing re-mapping; -1 otherwise */
  volatile int truncated; /* file maps: set by the SIGBUS guard (the file was cut) */
};

/* ---- files (mm3_file.c) ---- */

#define MM3_FREE_CLASSES 48

/* The file header (formats 1 to 3). Bytes 0-79 are fixed at creation and covered by
   the header check; the rest is live state shared by every process. */
typedef struct mm3_header {
  char magic[8];
  uint32_t version;
  uint32_t byte_order;
  uint64_t size;          /* published file size; grows */
  uint64_t fingerprint;
  uint64_t schema_off;
  uint64_t schema_len;
  uint64_t root_off;
  uint64_t root_size;
  uint64_t seed;
  uint64_t check;
  /* 80: the file's writer lock: a robust, process-shared, recursive
     pthread mutex (glibc x86-64 layout; re-made if found damaged). */
  uint8_t lock[64];
  uint64_t heap_top;      /* 144: next unallocated byte of the heap (0: after the root) */
  uint64_t seq;           /* 152: bumped by every container write (odd while writing) */
  uint64_t free_list[MM3_FREE_CLASSES]; /* 160: free blocks of 16 << k bytes */
  uint64_t alloc_bytes;   /* 544: bytes in allocated blocks (for info) */
  /* 552: the undo log of the write in progress (a heap block): entries
     {u64 offset, u64 length, old bytes padded to 8, u64 entry size}. A
     nonzero length means a write is under way, or its writer died: the next
     locker rolls it back. */
  uint64_t log_off, log_len, log_cap;
  /* 576: log blocks bigger ones replaced, freed once the log is empty (by
     whoever empties it: a writer that dies leaves them to the next) */
  uint64_t retired_n, retired[16]; /* (the log grows at most 12 times) */
  /* 712: a hint, never logged: the bytes from the heap top up to here were
     written with zeros (so their pages are in the page cache); 0 or a stale
     value only costs page faults (see prefill in mm3_heap.c) */
  uint64_t prefilled;
  /* 720: heap that a rollback left between the heap top it restored and an
     undo log block above it (blocks the rolled-back work took, reachable
     from nothing): gaps_n [from, to) pairs, freed once the log is empty by
     whoever empties it (mm3__reclaim_gaps), or by the next locker if that
     one died first. Zero in files made before (a death there leaked). */
  uint64_t gaps_n, gaps[8][2];
  uint8_t reserved[MM3_HEADER_SIZE - 856];
} mm3_header;

/* The first zero byte of the 16 bytes w[0], w[1] (16: none): a string key's
   length, its bytes read as two words (zero past the key). The lowest flag
   of the mask is the first zero byte's: a borrow only runs upwards. */
static inline uint64_t mm3__first_zero(uint64_t w0, uint64_t w1) {
  uint64_t z = (w0 - 0x0101010101010101ULL) & ~w0 & 0x8080808080808080ULL;
  if (z) return (uint64_t)__builtin_ctzll(z) / 8;
  z = (w1 - 0x0101010101010101ULL) & ~w1 & 0x8080808080808080ULL;
  return z ? 8 + (uint64_t)__builtin_ctzll(z) / 8 : 16;
}

/* SipHash-1-3 keyed by a file's 64-bit seed, in pieces (mm3_hash puts them
   together): the state after the key, one round per 8-byte word of the
   message, then the last word (the length << 56 | the bytes after the last
   whole word) and the finish. Inline, for the map's short keys. */
typedef struct mm3__sip {
  uint64_t v0, v1, v2, v3;
} mm3__sip;

#define MM3__ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void mm3__sip_round(mm3__sip *s) {
  s->v0 += s->v1; s->v1 = MM3__ROTL(s->v1, 13); s->v1 ^= s->v0; s->v0 = MM3__ROTL(s->v0, 32);
  s->v2 += s->v3; s->v3 = MM3__ROTL(s->v3, 16); s->v3 ^= s->v2;
  s->v0 += s->v3; s->v3 = MM3__ROTL(s->v3, 21); s->v3 ^= s->v0;
  s->v2 += s->v1; s->v1 = MM3__ROTL(s->v1, 17); s->v1 ^= s->v2; s->v2 = MM3__ROTL(s->v2, 32);
}

static inline mm3__sip mm3__sip_init(uint64_t seed) {
  uint64_t k0 = seed, k1 = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
  mm3__sip s = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
                k1 ^ 0x7465646279746573ULL};
  return s;
}

static inline void mm3__sip_word(mm3__sip *s, uint64_t m) {
  s->v3 ^= m;
  mm3__sip_round(s);
  s->v0 ^= m;
}

static inline uint64_t mm3__sip_end(mm3__sip *s, uint64_t last) {
  mm3__sip_word(s, last);
  s->v2 ^= 0xff;
  mm3__sip_round(s);
  mm3__sip_round(s);
  mm3__sip_round(s);
  return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

struct mm3_file {
  int fd;
  int readonly;
  uint8_t *base;       /* start of the reservation; the header */
  uint64_t reserve;    /* bytes reserved */
  uint64_t mapped;     /* bytes of the file mapped from base */
  char *schema;        /* NUL-terminated copy of the schema text */
  size_t schema_len;
  uint64_t root_off, root_size, fingerprint;
  char *path;
  int lock_depth;      /* this process's nesting of mm3_file_lock */
  unsigned long lock_thread; /* the thread holding the lock through this handle (0: none); atomic */
  volatile int truncated; /* set by the SIGBUS guard: another program cut the file */
  int *held;           /* this process's lock depth on the file, shared by all its handles */
  int own_held;        /* used when no shared node could be allocated */
  void **txn_owner;    /* the handle with a transaction open on the file in this process, shared */
  void *own_txn_owner; /* used when the table of files is full */
  int txn_depth;       /* nesting of mm3_txn_begin */
  int no_log;          /* set while the log itself is being made */
  int durable;         /* flush at every commit */
  uint64_t recovered;  /* writes of dead processes rolled back by this one */
  uint64_t *pending;   /* blocks freed by what is not committed yet: offset, log position */
  size_t npending, cpending;
  /* A transaction keeps in the file's log only what its rollback needs (see
     mm3_txn.c): the first change of each range, nothing of space it made. */
  int txn_lock;        /* lock_depth of the innermost transaction */
  uint64_t txn_floor;  /* the heap top at the newest savepoint: every byte above was allocated since */
  uint64_t *seen;      /* ranges (offset, length) in the log since it began: see mm3_txn.c */
  size_t nseen, cseen;
  uint64_t seen_gen;
  uint64_t seen_max;   /* log position of the newest entry the set holds */
  /* An operation directly inside a transaction undoes itself from its own
     entries, kept here, in the process: the file's log may lack them. */
  int op_own;          /* such an operation is under way */
  int seq_depth;       /* nesting of this thread's writes that keep the sequence odd (mm3__write_begin) */
  uint64_t seq_saved;  /* what the outermost one's mm3__seq_begin found */
  uint8_t *own;
  size_t nown, cown;
  size_t own_pending;  /* npending when it began */
  uint64_t heap_start; /* where the heap begins (mm3__heap_start) */
  uint64_t seed;       /* the file's hash seed, as read at open (one seed for every key hash) */
  mm3__sip sip;        /* the key hash's state after it (mm3__sip_init) */
};

/* Bind f->held to the process-wide lock depth of the file (dev, ino), so
   that two handles of one file in one thread agree on who holds the lock. */
MM3_INTERNAL void mm3__held_attach(mm3_file *f, uint64_t dev, uint64_t ino);
MM3_INTERNAL void mm3__held_detach(mm3_file *f);

/* The SIGBUS guard (mm3_guard.c): while a file is open, a fault on one of
   its pages (the file was truncated underneath) maps a zero page there and
   flags the file instead of killing the process. */
MM3_INTERNAL int mm3__guard_add(mm3_file *f); /* 0 or ENOMEM */
MM3_INTERNAL void mm3__guard_remove(mm3_file *f);
/* In a child after fork(): no handle holds the lock or a transaction. */
MM3_INTERNAL void mm3__guard_forget_locks(void);
/* The size of the file behind fd in *size, and 1 in *sized; *sized = 0 for
   what has no size (a character device, /dev/zero). A block device has no
   st_size: its size comes from the device (BLKGETSIZE64 rather than lseek,
   which would move the file position the caller shares). 0 or an errno. */
MM3_INTERNAL int mm3__fd_size(int fd, uint64_t *size, int *sized);
/* File maps (mm3_map) are guarded beside the files: a fault on one of their
   pages maps a zero page there and sets m->truncated. Registered while
   mapped (0 or ENOMEM); a remap holds the map's entry out (the handler
   skips it, no one else takes its slot) and puts it back. */
MM3_INTERNAL int mm3__guard_add_map(mm3_map *m);
MM3_INTERNAL void mm3__guard_remove_map(mm3_map *m);
MM3_INTERNAL void *mm3__guard_hold_map(mm3_map *m); /* its slot (NULL: not registered) */
MM3_INTERNAL void mm3__guard_release_map(void *slot, mm3_map *m);

/* Record the old bytes of [p, p + n) in the undo log before changing them
   (the caller holds the lock, through mm3__op_begin or a transaction).
   MM3_ELOGFULL when the transaction outgrows the log. mm3__log (below)
   takes the common case inline, this one every case. */
MM3_INTERNAL int mm3__log_any(mm3_file *f, const void *p, size_t n);
/* Room a log keeps for the entry its growth makes in it (an 8-byte one). */
#define MM3__LOG_GROW_ROOM 32
/* Bracket one container operation: takes the lock, and makes the operation
   all-or-nothing (outside a transaction its log is dropped at the end; a
   failed operation is rolled back). op_begin returns the log position in *sp. */
MM3_INTERNAL int mm3__op_begin(mm3_file *f, uint64_t *sp);
/* mm3__op_begin for a caller that took the lock already (released on error). */
MM3_INTERNAL int mm3__op_enter(mm3_file *f, uint64_t *sp);
MM3_INTERNAL int mm3__op_end(mm3_file *f, uint64_t sp, int rc);
/* Undo the log back to position sp (0: everything). Caller holds the lock.
   Inside an operation a savepoint must come from mm3__savepoint. */
MM3_INTERNAL void mm3__rollback(mm3_file *f, uint64_t sp);
/* Roll a dead writer's unfinished work back (the lock taken, or alone). */
MM3_INTERNAL void mm3__recover(mm3_file *f);
/* Where mm3__rollback can later take the current operation back to, in
   *sp: 0, or an error from the log. */
MM3_INTERNAL int mm3__savepoint(mm3_file *f, uint64_t *sp);
/* Where the log that savepoints count in is now (no entry added). */
MM3_INTERNAL uint64_t mm3__position(const mm3_file *f);
/* g's thread died holding the lock (EOWNERDEAD, seen by f): g holds it no
   more, its frees are dropped. */
MM3_INTERNAL void mm3__forget_holder(mm3_file *g);
/* mm3__forget_holder(g) for every open g of f's file in this process
   whose lock depth says it holds the lock. */
MM3_INTERNAL void mm3__guard_forget_holders(mm3_file *f);
/* Nothing is under way any more (the log is empty): commit the frees, free
   the log blocks bigger ones replaced and the heap rollbacks left behind. */
MM3_INTERNAL void mm3__settle(mm3_file *f);
/* An entry in the file's log as it is, never growing it (MM3_ELOGFULL when
   it has no room): for steps taken with nothing else under way. */
MM3_INTERNAL int mm3__log_fixed(mm3_file *f, const void *p, size_t n);
/* Forget the transaction-wide bookkeeping (a dead holder's, a closed handle's). */
MM3_INTERNAL void mm3__txn_forget(mm3_file *f);
/* The heap's top: where the next block from the top begins. */
MM3_INTERNAL uint64_t mm3__heap_top(const mm3_file *f);

static inline mm3_header *mm3__hdr(const mm3_file *f) { return (mm3_header *)f->base; }

/* The file's map sequence, a seqlock: a writer (holding the lock) makes it
   odd while it changes a map, or rolls changes back (states that were never
   committed), and even again after; a lock-free lookup retries when it was
   odd or moved. begin returns what it found: found odd (a map operation
   rolling itself back), it is left to that operation's end. */
static inline uint64_t mm3__seq_begin(mm3_file *f) {
  uint64_t *seq = &mm3__hdr(f)->seq, s = __atomic_load_n(seq, __ATOMIC_RELAXED);
  /* (release: a reader that sees it odd sees the lock taken too, see
     mm3__read_again; free on x86) */
  if (!(s & 1)) __atomic_store_n(seq, s + 1, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST); /* odd before any change is seen */
  return s;
}
static inline void mm3__seq_end(mm3_file *f, uint64_t s) {
  if (!(s & 1)) __atomic_store_n(&mm3__hdr(f)->seq, s + 2, __ATOMIC_RELEASE);
}
/* Around every operation (and the heap work of a transaction's begin and
   commit), outermost only: the sequence odd while the heap or a container
   may be half changed, so that a reader without the lock (a read-only
   handle's mm.check, value and map reads) can tell that a write overlapped
   what it read, and read again. */
static inline void mm3__write_begin(mm3_file *f) {
  if (f->seq_depth++ == 0) f->seq_saved = mm3__seq_begin(f);
}
static inline void mm3__write_end(mm3_file *f) {
  if (f->seq_depth > 0 && --f->seq_depth == 0) mm3__seq_end(f, f->seq_saved);
}
/* A write sequence that a writer which died left odd, made even: by the
   lock's first holder once the dead writer's work is rolled back (before,
   readers would take its half-done state for a finished one), or with
   nothing logged; by an opener alone with the file. */
static inline void mm3__seq_settle(mm3_file *f) {
  uint64_t *seq = &mm3__hdr(f)->seq, s = __atomic_load_n(seq, __ATOMIC_RELAXED);
  if (s & 1) __atomic_store_n(seq, s + 1, __ATOMIC_RELEASE);
}
/* A read without the lock (a read-only handle has none):

     mm3__retry retry = {0};
     uint64_t s;
     while ((rc = mm3__read_begin(f, &retry, &s)) == 0) {
       read, copying what it gives out;
       if (mm3__read_ok(f, s)) return what was read;
     }
     return rc;

   read_begin waits while a write is under way (the sequence odd) and, from
   the second call on, first lets the writers run (mm3__read_again); it
   says MM3_EWRITERS once reads were overlapped for about two seconds, or
   within milliseconds when the sequence was left odd by a writer that died.
   read_ok says whether no write overlapped the read. */
typedef struct mm3__retry {
  int tries;      /* calls of mm3__read_again */
  int begun;      /* calls of mm3__read_begin */
  uint64_t start; /* CLOCK_MONOTONIC ns of the first retry */
} mm3__retry;
MM3_INTERNAL int mm3__read_again(const mm3_file *f, mm3__retry *r);
static inline int mm3__read_begin(const mm3_file *f, mm3__retry *r, uint64_t *s) {
  int rc = r->begun++ ? mm3__read_again(f, r) : 0;
  while (!rc && ((*s = __atomic_load_n(&mm3__hdr(f)->seq, __ATOMIC_ACQUIRE)) & 1)) rc = mm3__read_again(f, r);
  return rc;
}
static inline int mm3__read_ok(const mm3_file *f, uint64_t s) {
  __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the reads before the second look */
  return __atomic_load_n(&mm3__hdr(f)->seq, __ATOMIC_RELAXED) == s;
}

/* For the C tests (which link the static library): called, when set, at a
   few named points of a write, so that a test can die exactly there. NULL
   otherwise (a test of it costs a load and a branch). */
MM3_INTERNAL extern void (*mm3__test_hook)(const char *point);
/* Likewise: when set and it returns nonzero, the allocation or the log entry
   about to be made ("heap: alloc", "log: entry") fails with ENOMEM, so that
   a test can make any one of them fail. */
MM3_INTERNAL extern int (*mm3__test_fail)(const char *point);

/* mm3__log_any, with its most common case inline: 8 bytes of the file (a
   link, a bucket, a count) outside a transaction, the log with room for the
   entry. A put logs several, a resize step a few more: a call and the
   general checks each cost more than the entry. The entry is the one
   mm3__log_any writes: {offset, length, old bytes, entry size}, complete
   before the log's length counts it. */
static inline int mm3__log(mm3_file *f, const void *p, size_t n) {
  mm3_header *h = mm3__hdr(f);
  uint64_t off = (uint64_t)((const uint8_t *)p - f->base), len = h->log_len, cap = h->log_cap;
  /* (off past the mapping, or wrapped from below its start: not the file's) */
  if (n != 8 || f->txn_depth || f->no_log || mm3__test_fail || off > f->mapped - 8 || len > cap ||
      cap - len < 32 + MM3__LOG_GROW_ROOM || !h->log_off)
    return mm3__log_any(f, p, n);
  uint64_t e[4] = {off, 8, 0, 32};
  memcpy(&e[2], p, 8);
  memcpy(f->base + h->log_off + len, e, sizeof e);
  __atomic_store_n(&h->log_len, len + 32, __ATOMIC_RELEASE); /* the entry is complete */
  return 0;
}
/* Tests: the format version files are created with (0: MM3_FORMAT_VERSION;
   1 makes a file whose growable maps take a heap block a node). */
MM3_INTERNAL extern uint32_t mm3__create_version;

/* This thread has a transaction open through f (threads may share a handle:
   its depth alone says nothing about who holds the lock). */
MM3_INTERNAL int mm3__txn_here(const mm3_file *f);

/* Another handle of this file in this thread holds a transaction open (the
   lock is recursive, so f got it too): f's writes would commit its log. */
static inline int mm3__other_txn(const mm3_file *f) { return f->txn_owner && *f->txn_owner && *f->txn_owner != f; }

/* Allocate size bytes of zeroed heap in the file (caller holds the lock);
   returns the payload's file offset. May grow the file. */
MM3_INTERNAL int mm3__alloc(mm3_file *f, uint64_t size, uint64_t *off);
/* Give the header's lock the mark that tells a truncated first page (see
   mm3_heap.c), if an older version made it without. Writable opens only. */
MM3_INTERNAL void mm3__lock_mark(mm3_file *f);
/* mm3_file_refresh for a check: on an error, why (n bytes) says it. */
MM3_INTERNAL int mm3__check_refresh(mm3_file *f, char *why, size_t n);
/* mm3__alloc without the zeroing, for a caller that writes every byte before
   it reads it (a segment: nothing past a list's length is read). A new
   segment then costs no page until an element lands on it. */
MM3_INTERNAL int mm3__alloc_raw(mm3_file *f, uint64_t size, uint64_t *off);
/* mm3__alloc from the heap top only, never a free list. */
MM3_INTERNAL int mm3__alloc_top(mm3_file *f, uint64_t size, uint64_t *off);
/* File offset just past the block whose payload starts at off. */
MM3_INTERNAL uint64_t mm3__block_end(const mm3_file *f, uint64_t off);
/* 1 if the header's log_off and log_cap name a heap block in use that holds
   the log (mapped here), as the header of an undamaged file does. */
MM3_INTERNAL int mm3__log_block_ok(const mm3_file *f);
/* 1 if the payload at off is a heap block in use that mm3__alloc would have
   made for size bytes (its size class the smallest that holds them). */
MM3_INTERNAL int mm3__block_is(const mm3_file *f, uint64_t off, uint64_t size);
/* 1 if the payload at off (16 bytes or more into the mapped file) carries
   the tag mm3__alloc gives a block made for size bytes: in use, of the
   smallest class that holds them. One load: for the hot paths (a map's
   table, a list's segment), where a damaged offset could name other data. */
#define MM3_TAG_USED 0x6d6d33416c6c6f00ULL /* "mm3Allo" + class (mm3_heap.c) */
/* The size class of a block for size bytes: the smallest k with 16 << k >=
   size + 16 (its 16-byte head). */
static inline uint64_t mm3__class_of(uint64_t size) {
  uint64_t m = (size + 31) >> 4;
  return m <= 1 ? 0 : 64 - (uint64_t)__builtin_clzll(m - 1);
}
static inline int mm3__tagged_for(const mm3_file *f, uint64_t off, uint64_t size) {
  return *(const uint64_t *)(f->base + off - 16) == (MM3_TAG_USED | mm3__class_of(size));
}
/* The bytes of the heap block in use whose payload is at off (16 bytes or
   more into the mapped file), its head included; 0 if none is in use there. */
static inline uint64_t mm3__used_bytes(const mm3_file *f, uint64_t off) {
  uint64_t tag = *(const uint64_t *)(f->base + off - 16), k = tag & 0xff;
  return (tag & ~(uint64_t)0xff) == MM3_TAG_USED && k < MM3_FREE_CLASSES ? (uint64_t)16 << k : 0;
}
/* Where the heap begins: past the header, the schema text and the root (the
   first 64-byte boundary past the root, computed at open). */
static inline uint64_t mm3__heap_start(const mm3_file *f) { return f->heap_start; }
/* Return a block from mm3__alloc (caller holds the lock). */
MM3_INTERNAL int mm3__free(mm3_file *f, uint64_t off);
/* Frees made inside an operation or transaction take effect when it
   commits (mm3__free_commit) and are forgotten when it rolls back below the
   log position they were made at (mm3__free_rollback). */
MM3_INTERNAL void mm3__free_commit(mm3_file *f);
/* At the end of an operation outside a transaction, its log still whole: a
   few frees (up to one step) join its log and are made, so that a death
   before the log empties undoes them with the rest. 1 if done. */
MM3_INTERNAL int mm3__free_in_op(mm3_file *f);
MM3_INTERNAL void mm3__free_rollback(mm3_file *f, uint64_t sp);
/* Free n blocks that nothing refers to any more (payload offsets offs[0],
   offs[stride], ...; counted: their bytes leave alloc_bytes), in logged
   steps: see mm3_heap.c. count, if not NULL, is a header word set to 0 in
   the same step (n <= 64 then: one step). */
MM3_INTERNAL void mm3__free_steps(mm3_file *f, const uint64_t *offs, size_t stride, size_t n, int counted,
                                  uint64_t *count);
/* Free the blocks of the header's gaps (see mm3_header) and forget them,
   once the log is empty. */
MM3_INTERNAL void mm3__reclaim_gaps(mm3_file *f);
/* Initialise the lock bytes of a new header. */
MM3_INTERNAL int mm3__lock_init(void *lock);
/* 1 if [off, off + len) lies inside the mapped file after the header. */
static inline int mm3__inside(const mm3_file *f, uint64_t off, uint64_t len) {
  return off >= MM3_HEADER_SIZE && !mm3__range_bad(off, len, f->mapped);
}

/* Per-kind checks behind mm3_container_check. */
MM3_INTERNAL int mm3__hmap_check(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n);
MM3_INTERNAL int mm3__seg_check(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n);
/* What the public container calls check first: a type of their kind, filled
   in by mm3_ctype_init (another kind's, or zeros, would have them divide by
   zero or walk the container as something else): MM3_EINVAL otherwise. */
#define MM3__IS_MAP(t) (((t)->kind == MM3_FMAP || (t)->kind == MM3_HMAP) && (t)->node_size && (t)->key_size)
#define MM3__IS_SEQ(t) (((t)->kind == MM3_VEC || (t)->kind == MM3_RING) && (t)->elem_size && (t)->cap)
#define MM3__IS_SEG(t) ((t)->kind == MM3_SEGMENTED && (t)->seg_first && (t)->elem_size)
/* The length of container c as stored (*len), and 0, or MM3_ECORRUPT when
   it cannot be: a vec's or a fixed map's over its capacity, a list's past
   its segments, a growable map's past the nodes the mapping has room for
   (a lagging mapping too: see again after mm3_file_refresh). Lock-free: a
   write under way in another process (a rollback) can make it fail for a
   moment; look again under the lock before calling the file corrupted. */
MM3_INTERNAL int mm3__len_ok(const mm3_file *f, const uint8_t *c, const mm3_ctype *t, uint64_t *len);
/* Whether n nodes of growable map type t fit the mapping (each takes
   node_size bytes at least). */
static inline int mm3__count_fits(const mm3_file *f, const mm3_ctype *t, uint64_t n) {
  uint64_t bytes;
  return !__builtin_mul_overflow(n, (uint64_t)t->node_size, &bytes) && bytes <= f->mapped;
}
MM3_INTERNAL int mm3__seg_len_ok(const uint8_t *c, const mm3_ctype *t, uint64_t len);
MM3_INTERNAL int mm3__value_check(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n);
/* Each heap block a container owns (mm3_container_blocks), by kind. */
typedef int (*mm3__block_fn)(void *ud, uint64_t off);
MM3_INTERNAL int mm3__hmap_blocks(mm3_file *f, uint8_t *c, const mm3_ctype *t, mm3__block_fn fn, void *ud);
MM3_INTERNAL int mm3__seg_blocks(mm3_file *f, uint8_t *c, const mm3_ctype *t, mm3__block_fn fn, void *ud);
MM3_INTERNAL int mm3__value_blocks(mm3_file *f, uint8_t *c, const mm3_ctype *t, mm3__block_fn fn, void *ud);

/* Ask for key hash h's bucket (both tables', a resize under way) ahead of
   its lookup, so that the miss overlaps the work before it. */
MM3_INTERNAL void mm3__hmap_prefetch(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t h);

/* mm3_hmap_get with the key's hash already computed. */
MM3_INTERNAL int mm3__hmap_get(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h,
                              void *val_out, uint8_t **val_ptr);

#endif
