/*
 * mm3_atomic.c - lock-free atomics on mapped memory, any width up to 8 bytes.
 *
 * gcc's __atomic builtins on 1-8 byte aligned objects compile to lock-prefixed
 * instructions on x86-64, which work across processes sharing the mapping.
 */
#include "mm3_internal.h"

#define SEQ __ATOMIC_SEQ_CST

uint64_t mm3_atomic_load(const void *p, int width) {
  switch (width) {
    case 1: return __atomic_load_n((const uint8_t *)p, SEQ);
    case 2: return __atomic_load_n((const uint16_t *)p, SEQ);
    case 4: return __atomic_load_n((const uint32_t *)p, SEQ);
    default: return __atomic_load_n((const uint64_t *)p, SEQ);
  }
}

void mm3_atomic_store(void *p, int width, uint64_t v) {
  switch (width) {
    case 1: __atomic_store_n((uint8_t *)p, (uint8_t)v, SEQ); break;
    case 2: __atomic_store_n((uint16_t *)p, (uint16_t)v, SEQ); break;
    case 4: __atomic_store_n((uint32_t *)p, (uint32_t)v, SEQ); break;
    default: __atomic_store_n((uint64_t *)p, v, SEQ); break;
  }
}

int mm3_atomic_cas(void *p, int width, uint64_t *expected, uint64_t desired) {
  int ok;
  switch (width) {
    case 1: {
      uint8_t e = (uint8_t)*expected;
      ok = __atomic_compare_exchange_n((uint8_t *)p, &e, (uint8_t)desired, 0, SEQ, SEQ);
      *expected = e;
      break;
    }
    case 2: {
      uint16_t e = (uint16_t)*expected;
      ok = __atomic_compare_exchange_n((uint16_t *)p, &e, (uint16_t)desired, 0, SEQ, SEQ);
      *expected = e;
      break;
    }
    case 4: {
      uint32_t e = (uint32_t)*expected;
      ok = __atomic_compare_exchange_n((uint32_t *)p, &e, (uint32_t)desired, 0, SEQ, SEQ);
      *expected = e;
      break;
    }
    default: ok = __atomic_compare_exchange_n((uint64_t *)p, expected, desired, 0, SEQ, SEQ); break;
  }
  return ok;
}

/* Sign-extend the low width bytes. */
static int64_t sext(uint64_t v, int width) {
  int sh = 64 - 8 * width;
  return sh ? (int64_t)(v << sh) >> sh : (int64_t)v;
}

static uint64_t mask(int width) { return width == 8 ? ~(uint64_t)0 : (((uint64_t)1 << (8 * width)) - 1); }

#define FETCH(T)                                                        \
  switch (op) {                                                         \
    case MM3_ATOMIC_ADD: return __atomic_fetch_add((T *)p, (T)v, SEQ);  \
    case MM3_ATOMIC_SUB: return __atomic_fetch_sub((T *)p, (T)v, SEQ);  \
    case MM3_ATOMIC_AND: return __atomic_fetch_and((T *)p, (T)v, SEQ);  \
    case MM3_ATOMIC_OR: return __atomic_fetch_or((T *)p, (T)v, SEQ);    \
    case MM3_ATOMIC_XOR: return __atomic_fetch_xor((T *)p, (T)v, SEQ);  \
    case MM3_ATOMIC_SWAP: return __atomic_exchange_n((T *)p, (T)v, SEQ); \
    default: break;                                                     \
  }

uint64_t mm3_atomic_fetch(void *p, int width, mm3_atomic_op op, uint64_t v, int is_signed) {
  switch (width) {
    case 1: FETCH(uint8_t) break;
    case 2: FETCH(uint16_t) break;
    case 4: FETCH(uint32_t) break;
    default: FETCH(uint64_t) break;
  }
  /* MAX and MIN: a compare-and-swap loop (bounded by contention only). */
  uint64_t cur = mm3_atomic_load(p, width);
  v &= mask(width);
  for (;;) {
    int take;
    if (is_signed)
      take = op == MM3_ATOMIC_MAX ? sext(v, width) > sext(cur, width) : sext(v, width) < sext(cur, width);
    else
      take = op == MM3_ATOMIC_MAX ? v > cur : v < cur;
    if (!take || mm3_atomic_cas(p, width, &cur, v)) return cur;
  }
}
