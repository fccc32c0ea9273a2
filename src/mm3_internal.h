/*
 * mm3_internal.h - internals shared by the C core's files (not installed).
 */
#ifndef MM3_INTERNAL_H
#define MM3_INTERNAL_H

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
  int fd;            /* only for file maps needing re-mapping; -1 otherwise */
};

#endif
