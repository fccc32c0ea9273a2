/*
 * mm3_guard.c - the SIGBUS guard. Touching a mapped page past the end of a
 * file raises SIGBUS; that happens when another program truncates a file we
 * have mapped. While any memmap3 file is open, a SIGBUS handler checks whether
 * the faulting address lies in one of our files: if so it maps a zero page
 * over it (as systemd-journald does), flags the file, and lets the access
 * finish; the next memmap3 call on that file reports the truncation. Faults
 * anywhere else go to the handler that was there before. The cost on the
 * normal path is one flag test per access; the handler only runs on a fault.
 * Raw file maps (mm3_map_fd, shared or copy-on-write: both fault past the end
 * of the file) are guarded the same way in a second registry beside the
 * files', and flag themselves (mm3_map_truncated).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm3_internal.h"

/* A registry: blocks of SLOTS entries, the first static, more mapped as
   needed (never unmapped, so the handler can always walk them) and chained.
   An entry is claimed with a compare-and-swap, so the handler (which may
   interrupt a registration) only ever sees whole entries. */
#define SLOTS 1024
typedef struct registry {
  void *volatile slot[SLOTS];
  struct registry *volatile next;
} registry;

static registry files; /* mm3_file * */
static registry maps;  /* mm3_map *, raw file maps (mm3_map_fd) */
static struct sigaction previous;
static int installed;
/* Handlers running now, in any thread. One may have read an entry just
   before it was taken out, and still use it (map a zero page into its range,
   flag it): an entry taken out goes back to its owner, to unmap and free,
   only once none runs (slot_take). Sequentially consistent on both sides:
   a handler either sees the entry gone, or is seen running. */
static int in_flight;

/* An entry held out while its owner changes (a map's remap): no one else
   claims the slot, and the handler skips it. */
static char held_mark;
#define HELD ((void *)&held_mark)

static registry *next_block(const registry *r) { return __atomic_load_n((registry **)&r->next, __ATOMIC_ACQUIRE); }

/* Entry i of block r: NULL if free or held. */
static void *slot_get(const registry *r, int i) {
  void *p = __atomic_load_n((void **)&r->slot[i], __ATOMIC_SEQ_CST);
  return p == HELD ? NULL : p;
}

/* Map a zero page over the faulting page at a, with protection prot; 1 done. */
static int zero_page(void *a, int prot) {
  size_t page = mm3__page_size();
  void *p = (void *)((uintptr_t)a & ~(uintptr_t)(page - 1));
  return mmap(p, page, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
}

/* Whether the fault at a is on a registered file or map: then a zero page is
   there now, and its owner flagged. */
static int ours(uint8_t *a) {
  for (const registry *r = &files; r; r = next_block(r))
    for (int i = 0; i < SLOTS; i++) {
      mm3_file *f = (mm3_file *)slot_get(r, i);
      if (f && mm3__test_hook) mm3__test_hook("guard: entry read");
      if (f && a >= f->base && a < f->base + f->reserve && zero_page(a, PROT_READ | PROT_WRITE)) {
        f->truncated = 1;
        return 1;
      }
    }
  for (const registry *r = &maps; r; r = next_block(r))
    for (int i = 0; i < SLOTS; i++) {
      mm3_map *m = (mm3_map *)slot_get(r, i);
      if (m && mm3__test_hook) mm3__test_hook("guard: entry read");
      /* the zero page keeps the map's protection: a read-only map stays so */
      int prot = m && m->prot == MM3_PROT_RW ? PROT_READ | PROT_WRITE
                 : m && m->prot == MM3_PROT_RX ? PROT_READ | PROT_EXEC : PROT_READ;
      if (m && a >= m->base && a < m->base + m->map_len && zero_page(a, prot)) {
        m->truncated = 1;
        return 1;
      }
    }
  return 0;
}

static void handler(int sig, siginfo_t *si, void *ctx) {
  __atomic_add_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
  int mine = ours(si->si_addr);
  __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
  if (mine) return;
  /* not ours: what would have happened without us */
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) {
      previous.sa_sigaction(sig, si, ctx);
      return;
    }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

/* The handler, installed by the first file or map registered. */
static void install(void) {
  if (!__atomic_exchange_n(&installed, 1, __ATOMIC_ACQ_REL)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &previous);
  }
}

/* Claim a free slot of a registry for p, adding a block when all are taken:
   0, or ENOMEM (p is not guarded). */
static int slot_put(registry *r, void *p) {
  for (;;) {
    for (int i = 0; i < SLOTS; i++) {
      void *expected = NULL;
      if (__atomic_compare_exchange_n((void **)&r->slot[i], &expected, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 0;
    }
    registry *n = next_block(r);
    if (!n) {
      registry *fresh = mmap(NULL, sizeof *fresh, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (fresh == MAP_FAILED) return ENOMEM;
      registry *none = NULL; /* (another thread may have added one meanwhile: then that one) */
      if (__atomic_compare_exchange_n((registry **)&r->next, &none, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        n = fresh;
      else {
        munmap(fresh, sizeof *fresh);
        n = none;
      }
    }
    r = n;
  }
}

/* Replace p's entry with `to` (NULL: free it; HELD: hold it); the slot, or
   NULL if p is not there. */
static void *volatile *slot_swap(registry *r, void *p, void *to) {
  for (; r; r = next_block(r))
    for (int i = 0; i < SLOTS; i++) {
      void *expected = p;
      if (__atomic_compare_exchange_n((void **)&r->slot[i], &expected, to, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return &r->slot[i];
    }
  return NULL;
}

/* Take p out: once no handler runs, none can be using it (see in_flight). */
static void *volatile *slot_take(registry *r, void *p, void *to) {
  void *volatile *slot = slot_swap(r, p, to);
  while (__atomic_load_n(&in_flight, __ATOMIC_SEQ_CST) > 0) sched_yield();
  return slot;
}

int mm3__guard_add(mm3_file *f) {
  install();
  return slot_put(&files, f);
}

void mm3__guard_remove(mm3_file *f) { slot_take(&files, f, NULL); }

void mm3__guard_forget_locks(void) {
  for (const registry *r = &files; r; r = next_block(r))
    for (int i = 0; i < SLOTS; i++) {
      mm3_file *f = (mm3_file *)slot_get(r, i);
      if (f) {
        f->lock_depth = 0;
        f->lock_thread = 0;
        f->txn_depth = 0;
        f->op_own = 0;
        f->npending = 0; /* the parent's, which it frees or drops itself */
      }
    }
}

void mm3__guard_forget_holders(mm3_file *f) {
  __atomic_add_fetch(&in_flight, 1, __ATOMIC_SEQ_CST); /* a handle closed meanwhile waits (slot_take) */
  for (const registry *r = &files; r; r = next_block(r))
    for (int i = 0; i < SLOTS; i++) {
      mm3_file *g = (mm3_file *)slot_get(r, i);
      /* nobody alive holds the lock (its holder died): a depth is the dead one's */
      if (g && g != f && g->held == f->held && g->lock_depth > 0) mm3__forget_holder(g);
    }
  __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
}

int mm3_file_truncated(const mm3_file *f) { return f->truncated; }

/* ---- raw file maps, beside the files ---- */

int mm3__guard_add_map(mm3_map *m) {
  install();
  return slot_put(&maps, m);
}

void mm3__guard_remove_map(mm3_map *m) { slot_take(&maps, m, NULL); }

void *mm3__guard_hold_map(mm3_map *m) { return (void *)slot_take(&maps, m, HELD); }

void mm3__guard_release_map(void *slot, mm3_map *m) {
  if (slot) __atomic_store_n((void **)slot, (void *)m, __ATOMIC_SEQ_CST);
}
