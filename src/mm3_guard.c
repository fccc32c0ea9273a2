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
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm3_internal.h"

#define SLOTS 1024

/* Registered files; a slot is claimed with a compare-and-swap, so the handler
   (which may interrupt a registration) only ever sees whole entries. */
static void *volatile slots[SLOTS]; /* mm3_file * */
static struct sigaction previous;
static int installed;
/* Registered raw file maps (mm3_map_fd), the same way. */
static void *volatile map_slots[SLOTS]; /* mm3_map * */
/* Handlers running now, in any thread. One may have read an entry just
   before it was taken out, and still use it (map a zero page into its range,
   flag it): an entry taken out goes back to its owner, to unmap and free,
   only once none runs (slot_take). Sequentially consistent on both sides:
   a handler either sees the entry gone, or is seen running. */
static int in_flight;

static void *slot_get(void *volatile *reg, int i) { return __atomic_load_n((void **)&reg[i], __ATOMIC_SEQ_CST); }

/* Map a zero page over the faulting page at a, with protection prot; 1 done. */
static int zero_page(void *a, int prot) {
  size_t page = mm3__page_size();
  void *p = (void *)((uintptr_t)a & ~(uintptr_t)(page - 1));
  return mmap(p, page, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
}

/* Whether the fault at a is on a registered file or map: then a zero page is
   there now, and its owner flagged. */
static int ours(uint8_t *a) {
  for (int i = 0; i < SLOTS; i++) {
    mm3_file *f = (mm3_file *)slot_get(slots, i);
    if (f && mm3__test_hook) mm3__test_hook("guard: entry read");
    if (f && a >= f->base && a < f->base + f->reserve && zero_page(a, PROT_READ | PROT_WRITE)) {
      f->truncated = 1;
      return 1;
    }
  }
  for (int i = 0; i < SLOTS; i++) {
    mm3_map *m = (mm3_map *)slot_get(map_slots, i);
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

/* Claim a free slot of a registry for p (none free: p is not guarded), or
   free p's slot. A slot changes with a compare-and-swap, so the handler
   (which may interrupt either) only ever sees whole entries. */
static void slot_put(void *volatile *reg, void *p) {
  for (int i = 0; i < SLOTS; i++) {
    void *expected = NULL;
    if (__atomic_compare_exchange_n((void **)&reg[i], &expected, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
  }
}

static void slot_take(void *volatile *reg, void *p) {
  for (int i = 0; i < SLOTS; i++) {
    void *expected = p;
    if (__atomic_compare_exchange_n((void **)&reg[i], &expected, NULL, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) break;
  }
  while (__atomic_load_n(&in_flight, __ATOMIC_SEQ_CST) > 0) sched_yield(); /* see in_flight */
}

void mm3__guard_add(mm3_file *f) {
  install();
  slot_put(slots, f);
}

void mm3__guard_remove(mm3_file *f) { slot_take(slots, f); }

void mm3__guard_forget_locks(void) {
  for (int i = 0; i < SLOTS; i++) {
    mm3_file *f = (mm3_file *)slots[i];
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
  for (int i = 0; i < SLOTS; i++) {
    mm3_file *g = (mm3_file *)slot_get(slots, i);
    /* nobody alive holds the lock (its holder died): a depth is the dead one's */
    if (g && g != f && g->held == f->held && g->lock_depth > 0) mm3__forget_holder(g);
  }
  __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
}

int mm3_file_truncated(const mm3_file *f) { return f->truncated; }

/* ---- raw file maps, beside the files ---- */

void mm3__guard_add_map(mm3_map *m) {
  install();
  slot_put(map_slots, m);
}

void mm3__guard_remove_map(mm3_map *m) { slot_take(map_slots, m); }
