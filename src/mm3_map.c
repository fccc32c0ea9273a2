/*
 * mm3_map.c - raw memory mappings: memmap2's Mmap/MmapMut/MmapOptions in C.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h> /* BLKGETSIZE64 */
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm3_internal.h"

size_t mm3__page_size(void) {
  /* Threads may fill the cache at once: atomic, so that is no data race. */
  static _Atomic size_t page;
  size_t p = atomic_load_explicit(&page, memory_order_relaxed);
  if (p == 0) {
    p = (size_t)sysconf(_SC_PAGESIZE);
    atomic_store_explicit(&page, p, memory_order_relaxed);
  }
  return p;
}

static int prot_bits(mm3_prot p) {
  switch (p) {
    case MM3_PROT_R: return PROT_READ;
    case MM3_PROT_RW: return PROT_READ | PROT_WRITE;
    case MM3_PROT_RX: return PROT_READ | PROT_EXEC;
  }
  return -1;
}

/* 1 if [offset, offset + len) of a file cannot be mapped: the end must be an
   off_t, and the mapping (offset aligned down to a page) at most PTRDIFF_MAX.
   The kernel also wants the end of the mapping's last page to be an off_t
   (mmap says EOVERFLOW): bad input, so refused here like the rest. */
static int file_range_too_big(uint64_t offset, uint64_t len) {
  uint64_t page = mm3__page_size();
  uint64_t delta = offset & (page - 1);
  if (offset > UINT64_MAX - len || offset + len > (uint64_t)INT64_MAX ||
      len > (uint64_t)PTRDIFF_MAX - delta - page)
    return 1;
  uint64_t span = delta + len ? delta + len : 1; /* an empty map still maps a page */
  span = (span + page - 1) & ~(page - 1);
  return offset - delta > (uint64_t)INT64_MAX - span;
}

int mm3__fd_size(int fd, uint64_t *size, int *sized) {
  struct stat st;
  *size = 0;
  *sized = 0;
  if (fstat(fd, &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR; /* (mmap says ENODEV: "No such device") */
  if (S_ISREG(st.st_mode)) {
    *size = (uint64_t)st.st_size;
    *sized = 1;
  } else if (S_ISBLK(st.st_mode)) {
    if (ioctl(fd, BLKGETSIZE64, size) != 0) return errno;
    *sized = 1;
  }
  return 0;
}

/* The huge page size of a MAP_HUGETLB map: 1 << bits, or the system's
   default (Hugepagesize in /proc/meminfo) for bits == 1; 0 if unknown. */
static uint64_t huge_page_size(int bits) {
  static _Atomic uint64_t dflt; /* read once; threads may race to fill it */
  if (bits > 1) return (uint64_t)1 << bits;
  uint64_t v = atomic_load_explicit(&dflt, memory_order_relaxed);
  if (v) return v;
  FILE *f = fopen("/proc/meminfo", "re");
  char line[128];
  unsigned long long kb = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Hugepagesize: %llu kB", &kb) == 1) break;
  fclose(f);
  v = (uint64_t)kb * 1024;
  atomic_store_explicit(&dflt, v, memory_order_relaxed);
  return v;
}

/* The length the kernel gives a mapping of len bytes (at least one byte):
   huge pages come whole, and munmap and mprotect want the whole of them. */
static size_t kernel_len(size_t len, uint64_t granule) {
  if (len == 0) len = 1; /* as memmap2: a real mapping, so every call works */
  if (granule > 1) len = (size_t)(((uint64_t)len + granule - 1) & ~(granule - 1));
  return len;
}

/* The huge page size of m, or 0 for normal pages. */
static uint64_t granule_of(const mm3_map *m) {
  if (!(m->flags & MAP_HUGETLB)) return 0;
  int bits = (int)(((unsigned)m->flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK);
  return huge_page_size(bits ? bits : 1);
}

/* Create the kernel mapping; fd == -1 for anonymous memory. granule: the
   huge page size of a MAP_HUGETLB map, else 0. */
static int map_common(int fd, uint64_t offset, uint64_t len, mm3_mode mode,
                      int extra_flags, uint64_t granule, mm3_map **out) {
  size_t page = mm3__page_size();
  uint64_t aligned = offset & ~(uint64_t)(page - 1);
  uint64_t delta = offset - aligned;
  /* mmap lengths are size_t, and the kernel refuses anything over PTRDIFF_MAX. */
  if (granule > (uint64_t)PTRDIFF_MAX / 2 || len > (uint64_t)PTRDIFF_MAX - delta - page - granule ||
      offset > (uint64_t)INT64_MAX)
    return MM3_ETOOBIG;
  size_t map_len = kernel_len((size_t)(len + delta), granule);
  int prot, flags;
  mm3_prot p;
  switch (mode) {
    case MM3_MODE_R: p = MM3_PROT_R; flags = MAP_SHARED; break;
    case MM3_MODE_RW: p = MM3_PROT_RW; flags = MAP_SHARED; break;
    case MM3_MODE_COPY: p = MM3_PROT_RW; flags = MAP_PRIVATE; break;
    case MM3_MODE_COPY_R: p = MM3_PROT_R; flags = MAP_PRIVATE; break;
    case MM3_MODE_RX: p = MM3_PROT_RX; flags = MAP_SHARED; break;
    default: return MM3_EINVAL;
  }
  prot = prot_bits(p);
  if (fd < 0) {
    flags = (extra_flags & MAP_SHARED) ? MAP_SHARED : MAP_PRIVATE;
    flags |= MAP_ANONYMOUS;
    extra_flags &= ~MAP_SHARED;
  }
  mm3_map *m = calloc(1, sizeof *m);
  if (!m) return ENOMEM;
  void *base = mmap(NULL, map_len, prot, flags | extra_flags, fd, (off_t)aligned);
  if (base == MAP_FAILED) {
    int e = errno;
    free(m);
    return e;
  }
  m->base = base;
  m->map_len = map_len;
  m->delta = (size_t)delta;
  m->len = (size_t)len;
  m->mode = mode;
  m->prot = p;
  m->flags = flags | extra_flags;
  m->anon = fd < 0;
  m->made_len = (map_len + page - 1) & ~(page - 1);
  m->fd = -1;
  /* a page past the end of the file would raise SIGBUS */
  int rc = m->anon ? 0 : mm3__guard_add_map(m);
  if (rc) {
    munmap(base, map_len);
    free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int mm3_map_fd(int fd, const mm3_map_opts *opts, mm3_map **out) {
  mm3_map_opts def = {0};
  if (!opts) opts = &def;
  if (fd < 0) return EBADF;
  if ((unsigned)opts->mode > MM3_MODE_RX) return MM3_EINVAL;
  uint64_t len = opts->len;
  if (!opts->has_len) {
    uint64_t size;
    int sized, rc = mm3__fd_size(fd, &size, &sized);
    if (rc) return rc;
    if (opts->offset > size) return MM3_ERANGE;
    len = size - opts->offset;
  }
  if (file_range_too_big(opts->offset, len)) return MM3_ETOOBIG;
  int extra = (opts->populate ? MAP_POPULATE : 0) | (opts->no_reserve ? MAP_NORESERVE : 0);
  return map_common(fd, opts->offset, len, opts->mode, extra, 0, out);
}

int mm3_map_path(const char *path, const mm3_map_opts *opts, mm3_map **out) {
  mm3_map_opts def = {0};
  if (!opts) opts = &def;
  if (!path) return MM3_EINVAL;
  if ((unsigned)opts->mode > MM3_MODE_RX) return MM3_EINVAL;
  /* Refuse what cannot map before open: create must not leave a file behind. */
  if (opts->has_len && file_range_too_big(opts->offset, opts->len)) return MM3_ETOOBIG;
  /* O_NONBLOCK: a FIFO at path would block the open until a writer came;
     it opens at once and cannot map (regular files ignore the flag) */
  int oflags = (opts->mode == MM3_MODE_RW ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK;
  if (opts->create) oflags = O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK;
  int fd = open(path, oflags, 0666);
  if (fd < 0) return errno;
  if (opts->create && opts->has_len) {
    struct stat st;
    uint64_t want = opts->offset + opts->len; /* checked above */
    if (fstat(fd, &st) != 0) {
      int e = errno;
      close(fd);
      return e;
    }
    if ((uint64_t)st.st_size < want) {
      int e = posix_fallocate(fd, st.st_size, (off_t)(want - (uint64_t)st.st_size));
      if (e) {
        close(fd);
        return e;
      }
    }
  }
  int rc = mm3_map_fd(fd, opts, out);
  close(fd); /* the mapping keeps its own reference to the file */
  return rc;
}

int mm3_map_anon(uint64_t len, const mm3_anon_opts *opts, mm3_map **out) {
  mm3_anon_opts def = {0};
  if (!opts) opts = &def;
  int extra = 0;
  uint64_t granule = 0;
  if (opts->populate) extra |= MAP_POPULATE;
  if (opts->stack) extra |= MAP_STACK;
  if (opts->no_reserve) extra |= MAP_NORESERVE;
  if (opts->shared) extra |= MAP_SHARED;
  if (opts->huge) {
    if (opts->huge < 0 || opts->huge > 63) return MM3_EINVAL;
    extra |= MAP_HUGETLB;
    /* Unsigned: 32..63 << 26 does not fit an int (as the kernel's MAP_HUGE_1GB). */
    if (opts->huge > 1) extra |= (int)((unsigned)opts->huge << MAP_HUGE_SHIFT);
    granule = huge_page_size(opts->huge);
    if (granule == 0) return MM3_ENOTSUP; /* no default huge page size to round to */
  }
  return map_common(-1, 0, len, MM3_MODE_RW, extra, granule, out);
}

void mm3_map_close(mm3_map *m) {
  if (!m) return;
  if (!m->anon) mm3__guard_remove_map(m);
  if (m->base) munmap(m->base, m->map_len);
  free(m);
}

uint8_t *mm3_map_ptr(const mm3_map *m) { return m->base + m->delta; }
size_t mm3_map_len(const mm3_map *m) { return m->len; }
mm3_mode mm3_map_mode(const mm3_map *m) { return m->mode; }
mm3_prot mm3_map_prot(const mm3_map *m) { return m->prot; }
int mm3_map_is_anon(const mm3_map *m) { return m->anon; }
int mm3_map_truncated(const mm3_map *m) { return m->truncated; }

int mm3_map_check_range(const mm3_map *m, uint64_t off, uint64_t len) {
  return mm3__range_bad(off, len, m->len) ? MM3_ERANGE : 0;
}

int mm3_map_read(const mm3_map *m, uint64_t off, void *dst, size_t n) {
  if (mm3__range_bad(off, n, m->len)) return MM3_ERANGE;
  if (n) memcpy(dst, m->base + m->delta + off, n);
  return 0;
}

int mm3_map_write(mm3_map *m, uint64_t off, const void *src, size_t n) {
  if (mm3__range_bad(off, n, m->len)) return MM3_ERANGE;
  if (m->prot != MM3_PROT_RW) return MM3_EREADONLY;
  if (n) memcpy(m->base + m->delta + off, src, n);
  return 0;
}

/* The page-aligned kernel range behind [off, off + len): (0, 0) is the whole
   map; any other empty range is nothing (*n = 0), wherever it is. */
static int page_range(const mm3_map *m, uint64_t off, uint64_t len, uint8_t **a, size_t *n) {
  if (off == 0 && len == 0) {
    *a = m->base;
    *n = m->map_len;
    return 0;
  }
  if (mm3__range_bad(off, len, m->len)) return MM3_ERANGE;
  if (len == 0) {
    *a = m->base;
    *n = 0;
    return 0;
  }
  uintptr_t start = (uintptr_t)(m->base + m->delta + off);
  uintptr_t pstart = start & ~(uintptr_t)(mm3__page_size() - 1);
  *a = (uint8_t *)pstart;
  *n = (size_t)len + (start - pstart);
  return 0;
}

/* The whole pages inside both the map's bytes and [off, off + len) ((0, 0):
   the whole map), for advice that drops what a page holds: a page shared with
   bytes outside the range (the map's own, or file bytes outside the map)
   must keep them. An anonymous map owns the tail of its last page: a range
   that reaches its end includes that page. *n = 0 when no page is whole. */
static void inner_pages(const mm3_map *m, uint64_t off, uint64_t len, uint8_t **a, size_t *n) {
  uintptr_t page = mm3__page_size();
  if (off == 0 && len == 0) len = m->len;
  uintptr_t start = (uintptr_t)(m->base + m->delta + off);
  uintptr_t end = start + (size_t)len;
  if (m->anon && off + len == m->len) end = (uintptr_t)m->base + m->map_len + page - 1;
  start = (start + page - 1) & ~(page - 1);
  end &= ~(page - 1);
  *a = (uint8_t *)start;
  *n = end > start ? (size_t)(end - start) : 0;
}

static int do_msync(mm3_map *m, uint64_t off, uint64_t len, int how) {
  uint8_t *a;
  size_t n;
  int rc = page_range(m, off, len, &a, &n);
  if (rc) return rc;
  if (n == 0) return 0;
  return msync(a, n, how) == 0 ? 0 : errno;
}

int mm3_map_flush(mm3_map *m, uint64_t off, uint64_t len) {
  return do_msync(m, off, len, MS_SYNC);
}

int mm3_map_flush_async(mm3_map *m, uint64_t off, uint64_t len) {
  return do_msync(m, off, len, MS_ASYNC);
}

/* ---- advice ---- */

static const struct { const char *name; int value; } advices[MM3_ADV_COUNT] = {
  {"normal", MADV_NORMAL},           {"random", MADV_RANDOM},
  {"sequential", MADV_SEQUENTIAL},   {"willneed", MADV_WILLNEED},
  {"dontneed", MADV_DONTNEED},       {"free", MADV_FREE},
  {"remove", MADV_REMOVE},           {"dontfork", MADV_DONTFORK},
  {"dofork", MADV_DOFORK},           {"mergeable", MADV_MERGEABLE},
  {"unmergeable", MADV_UNMERGEABLE}, {"hugepage", MADV_HUGEPAGE},
  {"nohugepage", MADV_NOHUGEPAGE},   {"dontdump", MADV_DONTDUMP},
  {"dodump", MADV_DODUMP},           {"populate_read", 22 /* MADV_POPULATE_READ */},
  {"populate_write", 23 /* MADV_POPULATE_WRITE */},
  {"cold", 20 /* MADV_COLD */},      {"pageout", 21 /* MADV_PAGEOUT */},
  {"wipeonfork", 18 /* MADV_WIPEONFORK */}, {"keeponfork", 19 /* MADV_KEEPONFORK */},
};

int mm3_advice_from_name(const char *name, mm3_advice *out) {
  if (!name) return MM3_EINVAL;
  for (int i = 0; i < MM3_ADV_COUNT; i++)
    if (strcmp(advices[i].name, name) == 0) {
      *out = (mm3_advice)i;
      return 0;
    }
  return MM3_EINVAL;
}

const char *mm3_advice_name(mm3_advice a) {
  return (unsigned)a < MM3_ADV_COUNT ? advices[a].name : NULL;
}

int mm3_advice_supported(mm3_advice a) {
  if ((unsigned)a >= MM3_ADV_COUNT) return 0;
  size_t page = mm3__page_size();
  /* Some advice applies only to private memory (free), some only to shared
     (remove): supported if either kind of scratch page accepts it. */
  static const int kinds[2] = {MAP_PRIVATE, MAP_SHARED};
  for (int k = 0; k < 2; k++) {
    void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, kinds[k] | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 0;
    int rc = madvise(p, page, advices[a].value);
    int e = errno;
    munmap(p, page);
    if (rc == 0 || e != EINVAL) return rc == 0 || e == EPERM || e == EAGAIN;
  }
  return 0;
}

int mm3_map_advise(mm3_map *m, mm3_advice a, uint64_t off, uint64_t len) {
  if ((unsigned)a >= MM3_ADV_COUNT) return MM3_EINVAL;
  uint8_t *p;
  size_t n;
  int rc = page_range(m, off, len, &p, &n);
  if (rc) return rc;
  if (n && (a == MM3_ADV_DONTNEED || a == MM3_ADV_FREE || a == MM3_ADV_REMOVE))
    inner_pages(m, off, len, &p, &n);
  if (n == 0) return 0;
  return madvise(p, n, advices[a].value) == 0 ? 0 : errno;
}

int mm3_map_lock(mm3_map *m) {
  return mlock(m->base, m->map_len) == 0 ? 0 : errno;
}

int mm3_map_unlock(mm3_map *m) {
  return munlock(m->base, m->map_len) == 0 ? 0 : errno;
}

int mm3_map_protect(mm3_map *m, mm3_prot prot) {
  int bits = prot_bits(prot);
  if (bits < 0) return MM3_EINVAL;
  if (mprotect(m->base, m->map_len, bits) != 0) return errno;
  m->prot = prot;
  return 0;
}

int mm3_map_remap(mm3_map *m, uint64_t new_len, int flags) {
  if (flags & ~MM3_REMAP_MAY_MOVE) return MM3_EINVAL;
  uint64_t granule = granule_of(m);
  if (new_len > (uint64_t)PTRDIFF_MAX - m->delta - mm3__page_size() - granule) return MM3_ETOOBIG;
  size_t map_len = kernel_len((size_t)new_len + m->delta, granule);
  /* A shared anonymous map's memory (shared with forked children) has the
     size it was made with, in whole pages: mremap would add pages past its
     end, which raise SIGBUS when touched. Up to it (the rest of its last
     page, or back after a shrink) is that memory. */
  if (m->anon && (m->flags & MAP_SHARED) && map_len > m->made_len) return MM3_ENOTSUP;
  /* Out of the guard while base and map_len change (a fault on the map
     meanwhile is not caught), back in after. */
  void *slot = m->anon ? NULL : mm3__guard_hold_map(m);
  void *p = mremap(m->base, m->map_len, map_len, (flags & MM3_REMAP_MAY_MOVE) ? MREMAP_MAYMOVE : 0);
  int rc = p == MAP_FAILED ? errno : 0;
  if (!rc) {
    m->base = p;
    m->map_len = map_len;
    m->len = (size_t)new_len;
  }
  mm3__guard_release_map(slot, m);
  return rc;
}
