/*
 * test_map.c - the raw mapping layer (mm3_map_*) through its public API.
 *
 * parity_NN tests reproduce behaviour NN of ../shared/memmap2-parity.md (the
 * tests of the Rust crate memmap2); the others feed the API bad input.
 *
 * Every test runs inside mm3_fixture.h's fixture: its maps and descriptors
 * are closed, the pages block_page_at took unmapped and its temporary files
 * removed afterwards, also when a REQUIRE ends it early. Files that need no
 * path are unlinked as soon as they are created (as memmap2's
 * tempfile::tempfile()); the others are also removed on a crash (a fault or
 * an abort; not SIGKILL or a sanitizer exiting without abort).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "memmap3.h"
#include "mm3_test.h"
#include "mm3_fixture.h"

/* ------------------------------------------------------------------------
 * Fixture helpers of this file
 * ------------------------------------------------------------------------ */

/* Create a file of size bytes (zeros, sparse) at a temporary path.
 * Returns an O_RDWR descriptor kept by the fixture, or -1; *path may be NULL:
 * the file is then unlinked at once and lives only through the descriptor. */
static int tmp_file(const char *tag, uint64_t size, const char **path) {
  const char *p = tmp_path(tag);
  int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  keep_fd(fd);
  if (ftruncate(fd, (off_t)size) != 0) return -1;
  if (path) *path = p;
  else unlink(p);
  return fd;
}

/* Map fd with the given mode; has_len = 0 maps to the end of the file. */
static int map_fd(int fd, mm3_mode mode, uint64_t off, uint64_t len, int has_len, mm3_map **out) {
  mm3_map_opts o = {0};
  o.mode = mode;
  o.offset = off;
  o.len = len;
  o.has_len = has_len;
  *out = NULL;
  int rc = mm3_map_fd(fd, &o, out);
  if (rc == 0) keep_map(*out);
  return rc;
}

static int map_anon(uint64_t len, mm3_map **out) {
  *out = NULL;
  int rc = mm3_map_anon(len, NULL, out);
  if (rc == 0) keep_map(*out);
  return rc;
}

/* A private anonymous map of len bytes, each 0xff (kept by the fixture): its
   bytes, or NULL (reported). */
static uint8_t *anon_ff(uint64_t len, mm3_map **out) {
  CHECK_RC(map_anon(len, out));
  if (!*out) return NULL;
  memset(mm3_map_ptr(*out), 0xff, len);
  return mm3_map_ptr(*out);
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static int all_eq(const uint8_t *p, size_t n, uint8_t v) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v) return 0;
  return 1;
}

/* Bytes i -> (uint8_t)(i + seed). */
static void fill_incr(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i + seed);
}

static int is_incr(const uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(i + seed)) return 0;
  return 1;
}

/* Read n bytes of the file at off with pread: 0 or -1. */
static int file_read(int fd, uint64_t off, void *buf, size_t n) {
  return pread(fd, buf, n, (off_t)off) == (ssize_t)n ? 0 : -1;
}

static int file_write(int fd, uint64_t off, const void *buf, size_t n) {
  return pwrite(fd, buf, n, (off_t)off) == (ssize_t)n ? 0 : -1;
}

/* VmLck of this process in kB, or -1. */
static long vmlck_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmLck:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* The sanitizers' runtimes intercept mlock and munlock and make them no-ops
   that succeed: under them VmLck cannot show a lock. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MLOCK_INTERCEPTED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define MLOCK_INTERCEPTED 1
#endif
#endif
#ifndef MLOCK_INTERCEPTED
#define MLOCK_INTERCEPTED 0
#endif

/* 1 if fd's file system is mounted noexec: no file map of it can execute. */
static int noexec_fs(int fd) {
  struct statvfs sv;
  return fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_NOEXEC);
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Occupy the page at addr (the page after a map) so the map cannot grow in
   place. Returns 1 if the page is now taken (by us or already by someone),
   0 if that cannot be arranged (no MAP_FIXED_NOREPLACE). */
static int block_page_at(uint8_t *addr) {
#ifdef MAP_FIXED_NOREPLACE
  size_t page = page_size();
  void *b = mmap(addr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (b == MAP_FAILED) return errno == EEXIST;
  if (b != (void *)addr || !keep_block(b)) { /* a hint to an old kernel, or the fixture full */
    munmap(b, page);
    return 0;
  }
  return 1;
#else
  (void)addr;
  return 0;
#endif
}

static const uint8_t abc123[6] = {'a', 'b', 'c', '1', '2', '3'};

/* ========================================================================
 * memmap2 parity
 * ======================================================================== */

/* 1: a 128-byte file mapped read-write reads zeros; writes read back. */
FTEST(parity_01_file_rw_zero_then_roundtrip) {
  const char *path;
  int fd = tmp_file("p01", 128, &path);
  REQUIRE(fd >= 0);
  mm3_map_opts o = {0};
  o.mode = MM3_MODE_RW;
  mm3_map *m = NULL;
  CHECK_RC(mm3_map_path(path, &o, &m));
  REQUIRE(keep_map(m));
  CHECK_EQ(mm3_map_len(m), 128);
  CHECK_EQ(mm3_map_mode(m), MM3_MODE_RW);
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_RW);
  CHECK_EQ(mm3_map_is_anon(m), 0);
  CHECK(all_eq(mm3_map_ptr(m), 128, 0));
  uint8_t incr[128], back[128];
  fill_incr(incr, 128, 0);
  CHECK_RC(mm3_map_write(m, 0, incr, 128));
  memset(back, 0xEE, sizeof back);
  CHECK_RC(mm3_map_read(m, 0, back, 128));
  CHECK(memcmp(back, incr, 128) == 0);
  CHECK(memcmp(mm3_map_ptr(m), incr, 128) == 0);
}

/* 2: the same through an integer descriptor. */
FTEST(parity_02_fd_rw_zero_then_roundtrip) {
  int fd = tmp_file("p02", 128, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 128);
  CHECK(all_eq(mm3_map_ptr(m), 128, 0));
  uint8_t incr[128], back[128];
  fill_incr(incr, 128, 7);
  CHECK_RC(mm3_map_write(m, 0, incr, 128));
  CHECK_RC(mm3_map_read(m, 0, back, 128));
  CHECK(memcmp(back, incr, 128) == 0);
  /* The descriptor is not kept: a map of a closed descriptor still works. */
  mm3_map *m2 = NULL;
  int fd2 = dup(fd);
  REQUIRE(fd2 >= 0);
  CHECK_RC(mm3_map_fd(fd2, NULL, &m2));
  close(fd2);
  REQUIRE(keep_map(m2));
  CHECK_EQ(mm3_map_mode(m2), MM3_MODE_R);
  CHECK_EQ(mm3_map_len(m2), 128);
  CHECK(is_incr(mm3_map_ptr(m2), 128, 7));
}

/* 3: an empty file maps read-only and read-write with length 0. */
FTEST(parity_03_empty_file) {
  const char *path;
  int fd = tmp_file("p03", 0, &path);
  REQUIRE(fd >= 0);
  static const mm3_mode modes[] = {MM3_MODE_R, MM3_MODE_RW, MM3_MODE_COPY, MM3_MODE_COPY_R};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    mm3_map *m;
    CHECK_RC(map_fd(fd, modes[i], 0, 0, 0, &m));
    if (!m) continue;
    CHECK_EQ(mm3_map_len(m), 0);
    CHECK(mm3_map_ptr(m) != NULL);
    uint8_t b = 0x5A;
    CHECK_RC(mm3_map_read(m, 0, &b, 0));
    CHECK_EQ(mm3_map_read(m, 0, &b, 1), MM3_ERANGE);
    CHECK_EQ(b, 0x5A);
    CHECK_RC(mm3_map_flush(m, 0, 0));
    CHECK_RC(mm3_map_flush_async(m, 0, 0));
    CHECK_RC(mm3_map_advise(m, MM3_ADV_RANDOM, 0, 0));
  }
  /* By path, read-only and read-write. */
  mm3_map_opts o = {0};
  mm3_map *m = NULL;
  CHECK_RC(mm3_map_path(path, &o, &m));
  keep_map(m);
  if (m) CHECK_EQ(mm3_map_len(m), 0);
  o.mode = MM3_MODE_RW;
  m = NULL;
  CHECK_RC(mm3_map_path(path, &o, &m));
  keep_map(m);
  if (m) CHECK_EQ(mm3_map_len(m), 0);
  /* Nothing was written to the file. */
  struct stat st;
  CHECK(fstat(fd, &st) == 0 && st.st_size == 0);
}

/* 4: a 128-byte anonymous map is zeroed, writable and readable. */
FTEST(parity_04_anon_128) {
  mm3_map *m;
  CHECK_RC(map_anon(128, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 128);
  CHECK_EQ(mm3_map_is_anon(m), 1);
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_RW);
  CHECK(all_eq(mm3_map_ptr(m), 128, 0));
  uint8_t incr[128], back[128];
  fill_incr(incr, 128, 3);
  CHECK_RC(mm3_map_write(m, 0, incr, 128));
  CHECK_RC(mm3_map_read(m, 0, back, 128));
  CHECK(memcmp(incr, back, 128) == 0);
}

/* 5: an anonymous map of length 0 is valid and empty; every call works. */
FTEST(parity_05_anon_zero_len) {
  mm3_map *m;
  CHECK_RC(map_anon(0, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 0);
  CHECK(mm3_map_ptr(m) != NULL);
  uint8_t b = 9;
  CHECK_RC(mm3_map_read(m, 0, &b, 0));
  CHECK_RC(mm3_map_write(m, 0, &b, 0));
  CHECK_EQ(mm3_map_write(m, 0, &b, 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_read(m, 0, &b, 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_check_range(m, 0, 0), 0);
  CHECK_EQ(mm3_map_check_range(m, 0, 1), MM3_ERANGE);
  CHECK_RC(mm3_map_flush(m, 0, 0));
  CHECK_RC(mm3_map_advise(m, MM3_ADV_NORMAL, 0, 0));
  CHECK_RC(mm3_map_protect(m, MM3_PROT_R));
  CHECK_RC(mm3_map_protect(m, MM3_PROT_RW));
  /* An empty map can grow. */
  CHECK_RC(mm3_map_remap(m, 100, MM3_REMAP_MAY_MOVE));
  CHECK_EQ(mm3_map_len(m), 100);
  CHECK(all_eq(mm3_map_ptr(m), 100, 0));
  CHECK_RC(mm3_map_write(m, 99, &b, 1));
  CHECK_EQ(mm3_map_ptr(m)[99], 9);
}

/* 6: a length beyond the address space fails with a clear error. */
FTEST(parity_06_anon_len_overflow) {
  mm3_map *sentinel = (mm3_map *)&fx; /* out-parameters are written only on success */
  mm3_map *m = sentinel;
  CHECK_EQ(mm3_map_anon((uint64_t)PTRDIFF_MAX + 1, NULL, &m), MM3_ETOOBIG);
  CHECK_EQ(mm3_map_anon((uint64_t)PTRDIFF_MAX, NULL, &m), MM3_ETOOBIG);
  CHECK_EQ(mm3_map_anon(UINT64_MAX, NULL, &m), MM3_ETOOBIG);
  CHECK_EQ(mm3_map_anon(UINT64_MAX / 2, NULL, &m), MM3_ETOOBIG);
  CHECK(m == sentinel);
  CHECK(strcmp(mm3_strerror(MM3_ETOOBIG), "length overflows the address space") == 0);
}

/* 7: bytes written through a map and flushed are seen by read(2). */
FTEST(parity_07_write_flush_read_file) {
  const char *path;
  int fd = tmp_file("p07", 128, &path);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &m));
  REQUIRE(m);
  uint8_t incr[128], back[128];
  fill_incr(incr, 128, 1);
  CHECK_RC(mm3_map_write(m, 0, incr, 128));
  CHECK_RC(mm3_map_flush(m, 0, 0));
  /* An ordinary read through a descriptor of its own. */
  int fd2 = keep_fd(open(path, O_RDONLY | O_CLOEXEC));
  REQUIRE(fd2 >= 0);
  memset(back, 0, sizeof back);
  CHECK_EQ(read(fd2, back, sizeof back), 128);
  CHECK(memcmp(incr, back, 128) == 0);
  CHECK_EQ(read(fd2, back, 1), 0); /* and the file did not grow */
}

/* 8: offset 2, length 6: writes land at file offset 2; range flushes work. */
FTEST(parity_08_offset_flush_range) {
  int fd = tmp_file("p08", 128, NULL);
  REQUIRE(fd >= 0);
  uint8_t pre[128];
  fill_incr(pre, 128, 100);
  REQUIRE(file_write(fd, 0, pre, 128) == 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 2, 6, 1, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 6);
  CHECK(memcmp(mm3_map_ptr(m), pre + 2, 6) == 0); /* byte 0 of the map is byte 2 of the file */
  CHECK_RC(mm3_map_write(m, 0, abc123, 6));
  CHECK_EQ(mm3_map_write(m, 1, abc123, 6), MM3_ERANGE); /* the map ends at file offset 8 */
  CHECK_RC(mm3_map_flush_async(m, 0, 6));
  CHECK_RC(mm3_map_flush(m, 0, 6));
  CHECK_RC(mm3_map_flush(m, 3, 3));
  CHECK_RC(mm3_map_flush_async(m, 5, 1));
  uint8_t back[128];
  REQUIRE(file_read(fd, 0, back, 128) == 0);
  CHECK(memcmp(back + 2, abc123, 6) == 0);
  CHECK(memcmp(back, pre, 2) == 0);
  CHECK(memcmp(back + 8, pre + 8, 120) == 0);
}

/* 9: a copy-on-write map sees its own writes; the file and a fresh map never do. */
FTEST(parity_09_copy_on_write) {
  int fd = tmp_file("p09", 128, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_COPY, 0, 0, 0, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_mode(m), MM3_MODE_COPY);
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_RW);
  CHECK_RC(mm3_map_write(m, 0, abc123, 6));
  CHECK_RC(mm3_map_flush(m, 0, 0));
  CHECK_RC(mm3_map_flush(m, 0, 6));
  CHECK(memcmp(mm3_map_ptr(m), abc123, 6) == 0);
  uint8_t back[128];
  REQUIRE(file_read(fd, 0, back, 128) == 0);
  CHECK(all_eq(back, 128, 0));
  mm3_map *fresh;
  CHECK_RC(map_fd(fd, MM3_MODE_R, 0, 0, 0, &fresh));
  REQUIRE(fresh);
  CHECK(all_eq(mm3_map_ptr(fresh), 128, 0));
  /* A read-only descriptor is enough for a copy-on-write map (the file is
     unlinked; /proc/self/fd reopens it). */
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  int ro = keep_fd(open(proc, O_RDONLY | O_CLOEXEC));
  REQUIRE(ro >= 0);
  mm3_map *c;
  CHECK_RC(map_fd(ro, MM3_MODE_COPY, 0, 0, 0, &c));
  REQUIRE(c);
  CHECK_RC(mm3_map_write(c, 0, abc123, 6));
  CHECK(memcmp(mm3_map_ptr(c), abc123, 6) == 0);
  REQUIRE(file_read(fd, 0, back, 128) == 0);
  CHECK(all_eq(back, 128, 0));
  CHECK(all_eq(mm3_map_ptr(fresh), 128, 0));
}

/* 10: a private read-only map reads the same bytes as a shared map. */
FTEST(parity_10_copy_read_only) {
  int fd = tmp_file("p10", 128, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m, *c;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &m));
  REQUIRE(m);
  uint8_t incr[128];
  fill_incr(incr, 128, 0);
  CHECK_RC(mm3_map_write(m, 0, incr, 128));
  CHECK_RC(mm3_map_flush(m, 0, 0));
  CHECK_RC(map_fd(fd, MM3_MODE_COPY_R, 0, 0, 0, &c));
  REQUIRE(c);
  CHECK_EQ(mm3_map_len(c), 128);
  CHECK_EQ(mm3_map_prot(c), MM3_PROT_R);
  CHECK(memcmp(mm3_map_ptr(m), mm3_map_ptr(c), 128) == 0);
  CHECK(is_incr(mm3_map_ptr(c), 128, 0));
  CHECK_EQ(mm3_map_write(c, 0, abc123, 6), MM3_EREADONLY);
  /* Made writable, it stays private. */
  CHECK_RC(mm3_map_protect(c, MM3_PROT_RW));
  CHECK_RC(mm3_map_write(c, 0, abc123, 6));
  CHECK(memcmp(mm3_map_ptr(c), abc123, 6) == 0);
  CHECK(is_incr(mm3_map_ptr(m), 128, 0));
  uint8_t back[128];
  REQUIRE(file_read(fd, 0, back, 128) == 0);
  CHECK(is_incr(back, 128, 0));
}

/* 11: offsets above 4 GiB, with the length inferred and explicit. */
FTEST(parity_11_offset_above_4gib) {
  const uint64_t size = 5ull << 30;              /* a 5 GiB sparse file */
  const uint64_t off = (uint64_t)UINT32_MAX + 2; /* memmap2's offset */
  const size_t len = 5099;
  int fd = tmp_file("p11", size, NULL);
  REQUIRE(fd >= 0);
  uint8_t pat[5099], back[5099];
  fill_incr(pat, len, 11);
  REQUIRE(file_write(fd, off, pat, len) == 0);
  static const uint8_t tail[4] = {0xDE, 0xAD, 0xBE, 0xEF};
  REQUIRE(file_write(fd, size - 4, tail, 4) == 0);

  /* Explicit length. */
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, off, len, 1, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), len);
  CHECK_RC(mm3_map_read(m, 0, back, len));
  CHECK(memcmp(back, pat, len) == 0);
  CHECK_RC(mm3_map_write(m, 10, abc123, 6));
  CHECK_RC(mm3_map_flush(m, 10, 6));
  uint8_t six[6];
  REQUIRE(file_read(fd, off + 10, six, 6) == 0);
  CHECK(memcmp(six, abc123, 6) == 0);

  /* Inferred length: offset to the end of the file. */
  mm3_map *r;
  CHECK_RC(map_fd(fd, MM3_MODE_R, off, 0, 0, &r));
  REQUIRE(r);
  CHECK_EQ(mm3_map_len(r), size - off);
  CHECK(memcmp(mm3_map_ptr(r) + 10, abc123, 6) == 0);
  CHECK(memcmp(mm3_map_ptr(r) + 16, pat + 16, len - 16) == 0);
  CHECK(memcmp(mm3_map_ptr(r) + (size - off) - 4, tail, 4) == 0);
  CHECK_EQ(mm3_map_ptr(r)[len], 0); /* sparse hole */
  /* An offset beyond 4 GiB that is page aligned, and the file's very end. */
  mm3_map *e;
  CHECK_RC(map_fd(fd, MM3_MODE_R, size - 4, 0, 0, &e));
  REQUIRE(e);
  CHECK_EQ(mm3_map_len(e), 4);
  CHECK(memcmp(mm3_map_ptr(e), tail, 4) == 0);
}

/* 12: single bytes written and read by index on an anonymous map. */
FTEST(parity_12_index) {
  mm3_map *m;
  CHECK_RC(map_anon(128, &m));
  REQUIRE(m);
  uint8_t *p = mm3_map_ptr(m);
  for (unsigned i = 0; i < 128; i++) {
    uint8_t b = (uint8_t)(i * 3 + 1);
    if (i % 2) p[i] = b;
    else CHECK_RC(mm3_map_write(m, i, &b, 1));
  }
  for (unsigned i = 0; i < 128; i++) {
    uint8_t b = 0;
    CHECK_RC(mm3_map_read(m, i, &b, 1));
    CHECK_EQ(b, (uint8_t)(i * 3 + 1));
    CHECK_EQ(p[i], (uint8_t)(i * 3 + 1));
  }
  uint8_t b = 0;
  CHECK_EQ(mm3_map_read(m, 128, &b, 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_write(m, 128, &b, 1), MM3_ERANGE);
}

/* 13: a map used from several threads at once. */
#define P13_THREADS 8
#define P13_PART 65536

struct p13_worker {
  mm3_map *file, *anon;
  int id;
  int bad; /* failed calls or wrong read-backs */
};

static void *p13_run(void *arg) {
  struct p13_worker *w = arg;
  size_t base = (size_t)w->id * P13_PART;
  for (size_t i = 0; i < P13_PART; i++) {
    uint8_t b = (uint8_t)(i * 7 + (size_t)w->id);
    /* Alternate the two ways in: mm3_map_write and the raw pointer. */
    if (i % 2) {
      mm3_map_ptr(w->file)[base + i] = b;
      if (mm3_map_write(w->anon, base + i, &b, 1) != 0) w->bad++;
    } else {
      if (mm3_map_write(w->file, base + i, &b, 1) != 0) w->bad++;
      mm3_map_ptr(w->anon)[base + i] = b;
    }
  }
  /* Each thread also maps and unmaps memory of its own meanwhile. */
  for (int k = 0; k < 16; k++) {
    mm3_map *own = NULL;
    if (mm3_map_anon(4096, NULL, &own) != 0) {
      w->bad++;
      continue;
    }
    mm3_map_ptr(own)[k] = 1;
    mm3_map_close(own);
  }
  uint8_t chunk[256];
  for (size_t i = 0; i < P13_PART; i += sizeof chunk) {
    if (mm3_map_read(w->file, base + i, chunk, sizeof chunk) != 0) w->bad++;
    for (size_t j = 0; j < sizeof chunk; j++)
      if (chunk[j] != (uint8_t)((i + j) * 7 + (size_t)w->id)) w->bad++;
  }
  if (mm3_map_flush(w->file, base, P13_PART) != 0) w->bad++;
  return NULL;
}

FTEST(parity_13_threads) {
  const size_t total = (size_t)P13_THREADS * P13_PART;
  int fd = tmp_file("p13", total, NULL);
  REQUIRE(fd >= 0);
  mm3_map *f, *a;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &f));
  CHECK_RC(map_anon(total, &a));
  REQUIRE(f && a);
  struct p13_worker w[P13_THREADS];
  pthread_t th[P13_THREADS];
  int started = 0;
  for (int i = 0; i < P13_THREADS; i++) {
    w[i].file = f;
    w[i].anon = a;
    w[i].id = i;
    w[i].bad = 0;
    if (pthread_create(&th[i], NULL, p13_run, &w[i]) != 0) break;
    started++;
  }
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  REQUIRE(started == P13_THREADS);
  for (int i = 0; i < P13_THREADS; i++) CHECK_EQ(w[i].bad, 0);
  /* Every thread's part is intact in both maps and in the file. */
  uint8_t *buf = malloc(total);
  REQUIRE(buf);
  int wrong_map = 0, wrong_anon = 0, wrong_file = 0;
  int rd = file_read(fd, 0, buf, total);
  for (size_t i = 0; i < total; i++) {
    uint8_t want = (uint8_t)((i % P13_PART) * 7 + i / P13_PART);
    wrong_map += mm3_map_ptr(f)[i] != want;
    wrong_anon += mm3_map_ptr(a)[i] != want;
    wrong_file += buf[i] != want;
  }
  free(buf);
  CHECK_EQ(rd, 0);
  CHECK_EQ(wrong_map, 0);
  CHECK_EQ(wrong_anon, 0);
  CHECK_EQ(wrong_file, 0);
}

/* 14: machine code written into a map, made executable, runs. */
#if defined(__x86_64__)
static const uint8_t p14_code[6] = {0xB8, 0xAB, 0x00, 0x00, 0x00, 0xC3}; /* mov eax, 0xAB; ret */

/* Call the code at p; memcpy avoids ISO C's object-to-function pointer cast. */
static int p14_call(const uint8_t *p) {
  int (*fn)(void);
  memcpy(&fn, &p, sizeof fn);
  return fn();
}
#endif

FTEST(parity_14_jit) {
#if defined(__x86_64__)
  /* Anonymous. */
  mm3_map *m;
  CHECK_RC(map_anon(4096, &m));
  REQUIRE(m);
  uint8_t *before = mm3_map_ptr(m);
  CHECK_RC(mm3_map_write(m, 0, p14_code, sizeof p14_code));
  CHECK_RC(mm3_map_protect(m, MM3_PROT_RX));
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_RX);
  REQUIRE(mm3_map_ptr(m) == before);
  CHECK_EQ(p14_call(mm3_map_ptr(m)), 0xAB);
  CHECK_EQ(mm3_map_write(m, 0, p14_code, 1), MM3_EREADONLY);

  /* A file mapped read-write, written, then made executable. */
  const char *path;
  int fd = tmp_file("p14", 4096, &path);
  REQUIRE(fd >= 0);
  if (noexec_fs(fd)) {
    printf("  note: %s is on a noexec file system; file maps not made executable\n", path);
    return;
  }
  mm3_map *f;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &f));
  REQUIRE(f);
  CHECK_RC(mm3_map_write(f, 100, p14_code, sizeof p14_code));
  CHECK_RC(mm3_map_protect(f, MM3_PROT_RX));
  REQUIRE(mm3_map_prot(f) == MM3_PROT_RX);
  CHECK_EQ(p14_call(mm3_map_ptr(f) + 100), 0xAB);

  /* The same file mapped MM3_MODE_RX from the start, at an unaligned offset. */
  mm3_map_opts o = {0};
  o.mode = MM3_MODE_RX;
  o.offset = 100;
  o.len = sizeof p14_code;
  o.has_len = 1;
  mm3_map *x = NULL;
  CHECK_RC(mm3_map_path(path, &o, &x));
  REQUIRE(keep_map(x));
  CHECK_EQ(mm3_map_prot(x), MM3_PROT_RX);
  CHECK_EQ(mm3_map_len(x), sizeof p14_code);
  CHECK_EQ(p14_call(mm3_map_ptr(x)), 0xAB);
  CHECK_EQ(mm3_map_write(x, 0, p14_code, 1), MM3_EREADONLY);
#else
  SKIP("needs x86-64");
#endif
}

/* 15: a file map goes rw -> r -> rw; writes reach the file and other maps;
 *     it can be made executable. */
FTEST(parity_15_protect_file) {
  int fd = tmp_file("p15", 256, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &m));
  REQUIRE(m);
  CHECK_RC(mm3_map_protect(m, MM3_PROT_R));
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_R);
  CHECK_EQ(mm3_map_write(m, 0, abc123, 6), MM3_EREADONLY);
  CHECK_RC(mm3_map_protect(m, MM3_PROT_RW));
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_RW);
  CHECK_EQ(mm3_map_mode(m), MM3_MODE_RW); /* the mode never changes */
  CHECK_RC(mm3_map_write(m, 0, abc123, 6));
  CHECK_RC(mm3_map_flush(m, 0, 0));
  uint8_t back[6];
  CHECK_RC(mm3_map_read(m, 0, back, 6));
  CHECK(memcmp(back, abc123, 6) == 0);
  REQUIRE(file_read(fd, 0, back, 6) == 0);
  CHECK(memcmp(back, abc123, 6) == 0);
  mm3_map *other;
  CHECK_RC(map_fd(fd, MM3_MODE_R, 0, 0, 0, &other));
  REQUIRE(other);
  CHECK(memcmp(mm3_map_ptr(other), abc123, 6) == 0);
  if (noexec_fs(fd)) {
    printf("  note: noexec file system; the map is not made executable\n");
    return;
  }
  CHECK_RC(mm3_map_protect(m, MM3_PROT_RX));
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_RX);
  CHECK(memcmp(mm3_map_ptr(m), abc123, 6) == 0); /* still readable */
}

/* 16: the same chain on a copy-on-write map never reaches the file. */
FTEST(parity_16_protect_copy) {
  int fd = tmp_file("p16", 256, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_COPY, 0, 0, 0, &m));
  REQUIRE(m);
  CHECK_RC(mm3_map_protect(m, MM3_PROT_R));
  CHECK_EQ(mm3_map_write(m, 0, abc123, 6), MM3_EREADONLY);
  CHECK_RC(mm3_map_protect(m, MM3_PROT_RW));
  CHECK_RC(mm3_map_write(m, 0, abc123, 6));
  CHECK_RC(mm3_map_flush(m, 0, 0));
  CHECK(memcmp(mm3_map_ptr(m), abc123, 6) == 0);
  uint8_t back[256];
  REQUIRE(file_read(fd, 0, back, 256) == 0);
  CHECK(all_eq(back, 256, 0));
  mm3_map *other;
  CHECK_RC(map_fd(fd, MM3_MODE_R, 0, 0, 0, &other));
  REQUIRE(other);
  CHECK(all_eq(mm3_map_ptr(other), 256, 0));
  if (noexec_fs(fd)) {
    printf("  note: noexec file system; the map is not made executable\n");
    return;
  }
  CHECK_RC(mm3_map_protect(m, MM3_PROT_RX));
  CHECK(memcmp(mm3_map_ptr(m), abc123, 6) == 0); /* the private copy survives */
  REQUIRE(file_read(fd, 0, back, 256) == 0);
  CHECK(all_eq(back, 256, 0));
}

/* 17: the same chain on an anonymous map. */
FTEST(parity_17_protect_anon) {
  mm3_map *m;
  CHECK_RC(map_anon(256, &m));
  REQUIRE(m);
  CHECK_RC(mm3_map_protect(m, MM3_PROT_R));
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_R);
  CHECK_EQ(mm3_map_write(m, 0, abc123, 6), MM3_EREADONLY);
  CHECK(all_eq(mm3_map_ptr(m), 256, 0));
  CHECK_RC(mm3_map_protect(m, MM3_PROT_RW));
  CHECK_RC(mm3_map_write(m, 0, abc123, 6));
  uint8_t back[6];
  CHECK_RC(mm3_map_read(m, 0, back, 6));
  CHECK(memcmp(back, abc123, 6) == 0);
  CHECK_RC(mm3_map_protect(m, MM3_PROT_RX));
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_RX);
  CHECK(memcmp(mm3_map_ptr(m), abc123, 6) == 0);
}

/* 18: a 6-byte file maps with length 6; its first byte reads back. */
FTEST(parity_18_six_byte_file) {
  const char *path;
  int fd = tmp_file("p18", 0, &path);
  REQUIRE(fd >= 0);
  REQUIRE(file_write(fd, 0, abc123, 6) == 0);
  mm3_map *m = NULL;
  CHECK_RC(mm3_map_path(path, NULL, &m));
  REQUIRE(keep_map(m));
  CHECK_EQ(mm3_map_len(m), 6);
  CHECK_EQ(mm3_map_mode(m), MM3_MODE_R);
  CHECK_EQ(mm3_map_ptr(m)[0], 'a');
  uint8_t b = 0;
  CHECK_RC(mm3_map_read(m, 0, &b, 1));
  CHECK_EQ(b, 'a');
  CHECK_RC(mm3_map_read(m, 5, &b, 1));
  CHECK_EQ(b, '3');
  CHECK_EQ(mm3_map_read(m, 6, &b, 1), MM3_ERANGE);
}

/* 19: a file opened read-only maps read-only. */
FTEST(parity_19_read_only_fd) {
  const char *path;
  int fd = tmp_file("p19", 0, &path);
  REQUIRE(fd >= 0);
  REQUIRE(file_write(fd, 0, abc123, 6) == 0);
  int ro = keep_fd(open(path, O_RDONLY | O_CLOEXEC));
  REQUIRE(ro >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(ro, MM3_MODE_R, 0, 0, 0, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 6);
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_R);
  CHECK(memcmp(mm3_map_ptr(m), abc123, 6) == 0);
  CHECK_EQ(mm3_map_write(m, 0, "x", 1), MM3_EREADONLY);
  /* It cannot be made writable: the descriptor does not allow it. */
  CHECK_EQ(mm3_map_protect(m, MM3_PROT_RW), EACCES);
  CHECK_EQ(mm3_map_prot(m), MM3_PROT_R);
  CHECK_EQ(mm3_map_write(m, 0, "x", 1), MM3_EREADONLY);
  /* Nor mapped shared read-write... */
  mm3_map *w = (mm3_map *)&fx;
  CHECK_EQ(map_fd(ro, MM3_MODE_RW, 0, 0, 0, &w), EACCES);
  CHECK(w == NULL);
  /* ...but a private copy may be written. */
  mm3_map *c;
  CHECK_RC(map_fd(ro, MM3_MODE_COPY, 0, 0, 0, &c));
  REQUIRE(c);
  CHECK_RC(mm3_map_write(c, 0, "x", 1));
  CHECK_EQ(mm3_map_ptr(m)[0], 'a');
}

/* 20: the address does not change across protection changes. */
FTEST(parity_20_stable_address) {
  int fd = tmp_file("p20", 8192, NULL);
  REQUIRE(fd >= 0);
  mm3_map *f, *a;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 3, 5000, 1, &f));
  CHECK_RC(map_anon(8192, &a));
  REQUIRE(f && a);
  mm3_map *maps[2] = {f, a};
  static const mm3_prot chain[] = {MM3_PROT_R, MM3_PROT_RW, MM3_PROT_RX, MM3_PROT_R, MM3_PROT_RW};
  for (int k = 0; k < 2; k++) {
    uint8_t *p = mm3_map_ptr(maps[k]);
    CHECK_RC(mm3_map_write(maps[k], 0, abc123, 6));
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
      if (k == 0 && chain[i] == MM3_PROT_RX && noexec_fs(fd)) continue;
      CHECK_RC(mm3_map_protect(maps[k], chain[i]));
      CHECK(mm3_map_ptr(maps[k]) == p);
    }
    CHECK_EQ(mm3_map_protect(maps[k], (mm3_prot)2), MM3_EINVAL);
    CHECK(mm3_map_ptr(maps[k]) == p);
    CHECK(memcmp(p, abc123, 6) == 0);
  }
}

/* 21: random on the whole map and sequential on a range, rw and r maps. */
FTEST(parity_21_advise) {
  int fd = tmp_file("p21", 128, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &m));
  REQUIRE(m);
  CHECK_RC(mm3_map_advise(m, MM3_ADV_RANDOM, 0, 0));
  CHECK_EQ(mm3_map_len(m), 128);
  CHECK(all_eq(mm3_map_ptr(m), 128, 0));
  CHECK_RC(mm3_map_advise(m, MM3_ADV_SEQUENTIAL, 0, mm3_map_len(m)));
  CHECK_RC(mm3_map_advise(m, MM3_ADV_SEQUENTIAL, 10, 50));
  uint8_t incr[128];
  fill_incr(incr, 128, 0);
  CHECK_RC(mm3_map_write(m, 0, incr, 128));
  CHECK(is_incr(mm3_map_ptr(m), 128, 0));
  mm3_map *r;
  CHECK_RC(map_fd(fd, MM3_MODE_R, 0, 0, 0, &r));
  REQUIRE(r);
  CHECK_RC(mm3_map_advise(r, MM3_ADV_RANDOM, 0, 0));
  CHECK_RC(mm3_map_advise(r, MM3_ADV_SEQUENTIAL, 0, 128));
  CHECK_RC(mm3_map_advise(r, MM3_ADV_SEQUENTIAL, 127, 1));
  CHECK(is_incr(mm3_map_ptr(r), 128, 0));
}

/* 22: dontneed on a private anonymous map filled with 0xff makes it read 0. */
FTEST(parity_22_dontneed_zeroes) {
  size_t page = page_size();
  mm3_map *m;
  REQUIRE(anon_ff(page, &m));
  CHECK(all_eq(mm3_map_ptr(m), page, 0xff));
  CHECK_RC(mm3_map_advise(m, MM3_ADV_DONTNEED, 0, 0));
  CHECK(all_eq(mm3_map_ptr(m), page, 0));
}

/* 23: dontneed on the second page only zeroes that page. */
FTEST(parity_23_dontneed_one_page) {
  size_t page = page_size();
  mm3_map *m;
  uint8_t *p = anon_ff(3 * page, &m);
  REQUIRE(p);
  CHECK_RC(mm3_map_advise(m, MM3_ADV_DONTNEED, page, page));
  CHECK(all_eq(p, page, 0xff));
  CHECK(all_eq(p + page, page, 0));
  CHECK(all_eq(p + 2 * page, page, 0xff));
}

/* 24: lock twice, unlock twice; VmLck shows the locked size. */
FTEST(parity_24_lock) {
  size_t page = page_size();
  const size_t len = 16 * page;
  mm3_map *m;
  CHECK_RC(map_anon(len, &m));
  REQUIRE(m);
  memset(mm3_map_ptr(m), 1, len);
  long base = vmlck_kb();
  int rc = mm3_map_lock(m);
  if (rc == ENOMEM || rc == EPERM) {
    printf("  note: mm3_map_lock: %s (RLIMIT_MEMLOCK?); VmLck check skipped\n", mm3_strerror(rc));
    CHECK_RC(mm3_map_unlock(m));
    return;
  }
  CHECK_RC(rc);
  long locked = vmlck_kb();
  CHECK_RC(mm3_map_lock(m));
  long locked2 = vmlck_kb();
  CHECK_RC(mm3_map_unlock(m));
  long unlocked = vmlck_kb();
  CHECK_RC(mm3_map_unlock(m));
  long unlocked2 = vmlck_kb();
  if (base < 0 || MLOCK_INTERCEPTED) {
    printf("  note: %s; VmLck check skipped\n",
           base < 0 ? "no VmLck in /proc/self/status" : "a sanitizer makes mlock a no-op");
    return;
  }
  CHECK_EQ(locked - base, (long)(len / 1024));
  CHECK_EQ(locked2 - base, (long)(len / 1024)); /* locking twice counts once */
  CHECK_EQ(unlocked, base);
  CHECK_EQ(unlocked2, base);
  CHECK(all_eq(mm3_map_ptr(m), len, 1));

  /* A file map locks too. */
  int fd = tmp_file("p24", len, NULL);
  REQUIRE(fd >= 0);
  mm3_map *f;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &f));
  REQUIRE(f);
  CHECK_RC(mm3_map_lock(f));
  CHECK_EQ(vmlck_kb() - base, (long)(len / 1024));
  CHECK_RC(mm3_map_unlock(f));
  CHECK_EQ(vmlck_kb(), base);
}

/* 25: remap 128 -> 2000 (may move): contents kept, new range zero and writable. */
FTEST(parity_25_remap_grow) {
  int fd = tmp_file("p25", 2000, NULL); /* the file is extended first */
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 128, 1, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 128);
  CHECK(all_eq(mm3_map_ptr(m), 128, 0));
  uint8_t incr[2000];
  fill_incr(incr, 2000, 5);
  CHECK_RC(mm3_map_write(m, 0, incr, 128));
  CHECK_RC(mm3_map_remap(m, 2000, MM3_REMAP_MAY_MOVE));
  CHECK_EQ(mm3_map_len(m), 2000);
  CHECK(is_incr(mm3_map_ptr(m), 128, 5));
  CHECK(all_eq(mm3_map_ptr(m) + 128, 2000 - 128, 0));
  CHECK_RC(mm3_map_write(m, 0, incr, 2000));
  CHECK(is_incr(mm3_map_ptr(m), 2000, 5));
  CHECK_EQ(mm3_map_write(m, 1999, incr, 2), MM3_ERANGE);
  CHECK_RC(mm3_map_flush(m, 0, 0));
  uint8_t back[2000];
  REQUIRE(file_read(fd, 0, back, 2000) == 0);
  CHECK(is_incr(back, 2000, 5));

  /* 128 and 2000 bytes share one page. Grow over pages, with the next page
     taken, so that the map must move. */
  size_t page = page_size();
  const size_t big = 3 * page + 100;
  int fd2 = tmp_file("p25b", big, NULL);
  REQUIRE(fd2 >= 0);
  mm3_map *g;
  CHECK_RC(map_fd(fd2, MM3_MODE_RW, 0, 128, 1, &g));
  REQUIRE(g);
  uint8_t *old = mm3_map_ptr(g);
  CHECK_RC(mm3_map_write(g, 0, incr, 128));
  if (!block_page_at(old + page)) {
    printf("  note: cannot occupy the next page; forced move not tested\n");
    return;
  }
  CHECK_RC(mm3_map_remap(g, big, MM3_REMAP_MAY_MOVE));
  CHECK_EQ(mm3_map_len(g), big);
  CHECK(mm3_map_ptr(g) != old); /* it moved */
  CHECK(is_incr(mm3_map_ptr(g), 128, 5));
  CHECK(all_eq(mm3_map_ptr(g) + 128, big - 128, 0));
  uint8_t *bigbuf = malloc(big);
  REQUIRE(bigbuf);
  fill_incr(bigbuf, big, 25);
  CHECK_RC(mm3_map_write(g, 0, bigbuf, big));
  CHECK_RC(mm3_map_flush(g, 0, 0));
  int rd = file_read(fd2, 0, bigbuf, big);
  CHECK_EQ(rd, 0);
  CHECK(is_incr(bigbuf, big, 25));
  free(bigbuf);
}

/* 26: remap 20000 -> 400 in place: still writable. */
FTEST(parity_26_remap_shrink) {
  int fd = tmp_file("p26", 20000, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 20000);
  uint8_t *p = mm3_map_ptr(m);
  CHECK_RC(mm3_map_remap(m, 400, 0));
  CHECK_EQ(mm3_map_len(m), 400);
  CHECK(mm3_map_ptr(m) == p);
  uint8_t incr[400];
  fill_incr(incr, 400, 9);
  CHECK_RC(mm3_map_write(m, 0, incr, 400));
  CHECK(is_incr(mm3_map_ptr(m), 400, 9));
  uint8_t b = 0;
  CHECK_EQ(mm3_map_read(m, 400, &b, 1), MM3_ERANGE);
  CHECK_RC(mm3_map_flush(m, 0, 0));
  uint8_t back[400];
  REQUIRE(file_read(fd, 0, back, 400) == 0);
  CHECK(is_incr(back, 400, 9));
  struct stat st;
  CHECK(fstat(fd, &st) == 0 && st.st_size == 20000); /* the file is not shrunk */
}

/* 27: a failing remap leaves the old mapping and its length untouched. */
FTEST(parity_27_remap_failure) {
  int fd = tmp_file("p27", 1024, NULL);
  REQUIRE(fd >= 0);
  uint8_t incr[1024];
  fill_incr(incr, 1024, 27);
  REQUIRE(file_write(fd, 0, incr, 1024) == 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_R, 0, 1024, 1, &m));
  REQUIRE(m);
  uint8_t *p = mm3_map_ptr(m);
  CHECK_EQ(mm3_map_remap(m, UINT64_MAX, MM3_REMAP_MAY_MOVE), MM3_ETOOBIG);
  CHECK_EQ(mm3_map_remap(m, (uint64_t)PTRDIFF_MAX, MM3_REMAP_MAY_MOVE), MM3_ETOOBIG);
  CHECK_EQ(mm3_map_remap(m, 2048, 0x10), MM3_EINVAL);
  CHECK_EQ(mm3_map_len(m), 1024);
  CHECK(mm3_map_ptr(m) == p);
  CHECK(is_incr(mm3_map_ptr(m), 1024, 27));

  /* A real mremap failure: growing in place into an occupied page. */
  size_t page = page_size();
  mm3_map *a;
  CHECK_RC(map_anon(page, &a));
  REQUIRE(a);
  uint8_t *ap = mm3_map_ptr(a);
  memset(ap, 0x42, page);
  if (!block_page_at(ap + page)) {
    printf("  note: cannot occupy the next page; in-place remap failure not tested\n");
    return;
  }
  int rc = mm3_map_remap(a, 2 * page, 0);
  CHECK(rc != 0);
  CHECK(rc > 0); /* an errno from mremap, ENOMEM */
  CHECK_EQ(mm3_map_len(a), page);
  CHECK(mm3_map_ptr(a) == ap);
  CHECK(all_eq(mm3_map_ptr(a), page, 0x42));
  CHECK_RC(mm3_map_write(a, page - 1, "z", 1)); /* still mapped and writable */
  CHECK_EQ(ap[page - 1], 'z');
}

/* 28: remap with offset 77, 128 -> 2000: contents and writability kept. */
FTEST(parity_28_remap_offset) {
  const uint64_t off = 77;
  int fd = tmp_file("p28", 2000 + off, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, off, 128, 1, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 128);
  CHECK(all_eq(mm3_map_ptr(m), 128, 0));
  uint8_t incr[2000];
  fill_incr(incr, 2000, 28);
  CHECK_RC(mm3_map_write(m, 0, incr, 128));
  CHECK_RC(mm3_map_remap(m, 2000, MM3_REMAP_MAY_MOVE));
  CHECK_EQ(mm3_map_len(m), 2000);
  CHECK(is_incr(mm3_map_ptr(m), 128, 28));
  CHECK(all_eq(mm3_map_ptr(m) + 128, 2000 - 128, 0));
  CHECK_RC(mm3_map_write(m, 0, incr, 2000));
  CHECK_RC(mm3_map_flush(m, 0, 0));
  uint8_t back[2000 + 77];
  REQUIRE(file_read(fd, 0, back, sizeof back) == 0);
  CHECK(all_eq(back, off, 0));            /* nothing before the offset */
  CHECK(is_incr(back + off, 2000, 28));   /* map byte 0 is file byte 77 */
}

/* 29: advice support is probed at run time. */
FTEST(parity_29_advice_supported) {
  CHECK_EQ(mm3_advice_supported(MM3_ADV_NORMAL), 1);
  CHECK_EQ(mm3_advice_supported(MM3_ADV_RANDOM), 1);
  CHECK_EQ(mm3_advice_supported(MM3_ADV_SEQUENTIAL), 1);
  CHECK_EQ(mm3_advice_supported(MM3_ADV_WILLNEED), 1);
  CHECK_EQ(mm3_advice_supported(MM3_ADV_DONTNEED), 1);
  /* Since Linux 4.5 / 2.6.16: one needs private memory, the other shared. */
  CHECK_EQ(mm3_advice_supported(MM3_ADV_FREE), 1);
  CHECK_EQ(mm3_advice_supported(MM3_ADV_REMOVE), 1);
  for (int a = 0; a < MM3_ADV_COUNT; a++) {
    int s = mm3_advice_supported((mm3_advice)a);
    CHECK(s == 0 || s == 1);
  }
  /* The probe agrees with advising real maps: accepted on a private or a
     shared anonymous page means supported; EINVAL on both means not. */
  mm3_anon_opts shared = {0};
  shared.shared = 1;
  for (int a = 0; a < MM3_ADV_COUNT; a++) {
    mm3_map *pm = NULL, *sm = NULL;
    CHECK_RC(mm3_map_anon(page_size(), NULL, &pm));
    CHECK_RC(mm3_map_anon(page_size(), &shared, &sm));
    if (!pm || !sm) {
      mm3_map_close(pm);
      mm3_map_close(sm);
      continue;
    }
    int rp = mm3_map_advise(pm, (mm3_advice)a, 0, 0);
    int rs = mm3_map_advise(sm, (mm3_advice)a, 0, 0);
    int s = mm3_advice_supported((mm3_advice)a);
    if (rp == 0 || rs == 0) {
      if (s != 1) printf("  %s: accepted by madvise but reported unsupported\n", mm3_advice_name((mm3_advice)a));
      CHECK_EQ(s, 1);
    } else if (rp == EINVAL && rs == EINVAL) {
      if (s != 0) printf("  %s: EINVAL from madvise but reported supported\n", mm3_advice_name((mm3_advice)a));
      CHECK_EQ(s, 0);
    }
    mm3_map_close(pm);
    mm3_map_close(sm);
  }
  CHECK_EQ(mm3_advice_supported(MM3_ADV_COUNT), 0);
  CHECK_EQ(mm3_advice_supported((mm3_advice)-1), 0);
  CHECK_EQ(mm3_advice_supported((mm3_advice)1000), 0);
}

/* ========================================================================
 * Bad input
 * ======================================================================== */

FTEST(bad_read_range) {
  mm3_map *m;
  CHECK_RC(map_anon(100, &m));
  REQUIRE(m);
  uint8_t buf[200];
  memset(buf, 0x77, sizeof buf);
  CHECK_RC(mm3_map_read(m, 100, buf, 0)); /* empty range at the end */
  CHECK_RC(mm3_map_read(m, 0, buf, 100));
  CHECK(all_eq(buf, 100, 0));
  memset(buf, 0x77, sizeof buf);
  CHECK_EQ(mm3_map_read(m, 101, buf, 0), MM3_ERANGE);
  CHECK_EQ(mm3_map_read(m, 0, buf, 101), MM3_ERANGE);
  CHECK_EQ(mm3_map_read(m, 99, buf, 2), MM3_ERANGE);
  CHECK_EQ(mm3_map_read(m, 100, buf, 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_read(m, UINT64_MAX, buf, 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_read(m, UINT64_MAX - 5, buf, 10), MM3_ERANGE); /* wraps to 4 */
  CHECK_EQ(mm3_map_read(m, 10, buf, SIZE_MAX), MM3_ERANGE);
  CHECK_EQ(mm3_map_read(m, 1, buf, SIZE_MAX), MM3_ERANGE);         /* wraps to 0 */
  CHECK(all_eq(buf, sizeof buf, 0x77));                            /* nothing copied */
  CHECK_EQ(mm3_map_check_range(m, 0, 100), 0);
  CHECK_EQ(mm3_map_check_range(m, 50, 50), 0);
  CHECK_EQ(mm3_map_check_range(m, 50, 51), MM3_ERANGE);
  CHECK_EQ(mm3_map_check_range(m, UINT64_MAX, 2), MM3_ERANGE);
  CHECK_EQ(mm3_map_check_range(m, 2, UINT64_MAX), MM3_ERANGE);
  CHECK_EQ(mm3_map_check_range(m, UINT64_MAX, UINT64_MAX), MM3_ERANGE);
}

FTEST(bad_write_range) {
  mm3_map *m;
  CHECK_RC(map_anon(100, &m));
  REQUIRE(m);
  uint8_t src[200];
  memset(src, 0x55, sizeof src);
  CHECK_RC(mm3_map_write(m, 100, src, 0));
  CHECK_EQ(mm3_map_write(m, 101, src, 0), MM3_ERANGE);
  CHECK_EQ(mm3_map_write(m, 0, src, 101), MM3_ERANGE);
  CHECK_EQ(mm3_map_write(m, 95, src, 6), MM3_ERANGE);
  CHECK_EQ(mm3_map_write(m, UINT64_MAX, src, 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_write(m, UINT64_MAX - 5, src, 10), MM3_ERANGE);
  CHECK_EQ(mm3_map_write(m, 1, src, SIZE_MAX), MM3_ERANGE);
  CHECK(all_eq(mm3_map_ptr(m), 100, 0)); /* nothing written */
  CHECK_RC(mm3_map_write(m, 94, src, 6));
  CHECK(all_eq(mm3_map_ptr(m) + 94, 6, 0x55));
}

FTEST(bad_flush_range) {
  int fd = tmp_file("flush", 100, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 0, 0, &m));
  REQUIRE(m);
  int (*const fns[2])(mm3_map *, uint64_t, uint64_t) = {mm3_map_flush, mm3_map_flush_async};
  for (int i = 0; i < 2; i++) {
    CHECK_RC(fns[i](m, 0, 0));
    CHECK_RC(fns[i](m, 0, 100));
    CHECK_RC(fns[i](m, 100, 0));
    CHECK_RC(fns[i](m, 99, 1));
    CHECK_EQ(fns[i](m, 0, 101), MM3_ERANGE);
    CHECK_EQ(fns[i](m, 100, 1), MM3_ERANGE);
    CHECK_EQ(fns[i](m, 101, 0), MM3_ERANGE);
    CHECK_EQ(fns[i](m, UINT64_MAX, 2), MM3_ERANGE);
    CHECK_EQ(fns[i](m, 2, UINT64_MAX), MM3_ERANGE);
    CHECK_EQ(fns[i](m, UINT64_MAX - 10, 20), MM3_ERANGE);
  }
}

FTEST(bad_advise_range) {
  size_t page = page_size();
  mm3_map *m;
  CHECK_RC(map_anon(2 * page, &m));
  REQUIRE(m);
  uint8_t *p = mm3_map_ptr(m);
  memset(p, 0xCC, 2 * page);
  const uint64_t len = 2 * page;
  CHECK_RC(mm3_map_advise(m, MM3_ADV_NORMAL, 0, len));
  CHECK_RC(mm3_map_advise(m, MM3_ADV_NORMAL, len, 0));
  CHECK_EQ(mm3_map_advise(m, MM3_ADV_NORMAL, 0, len + 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_advise(m, MM3_ADV_NORMAL, len + 1, 0), MM3_ERANGE);
  CHECK_EQ(mm3_map_advise(m, MM3_ADV_NORMAL, UINT64_MAX, 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_advise(m, MM3_ADV_NORMAL, page, UINT64_MAX - page + 1), MM3_ERANGE);
  /* A destructive advice that is out of range destroys nothing. */
  CHECK_EQ(mm3_map_advise(m, MM3_ADV_DONTNEED, page, page + 1), MM3_ERANGE);
  CHECK_EQ(mm3_map_advise(m, MM3_ADV_DONTNEED, UINT64_MAX - 1, 2 * page), MM3_ERANGE);
  CHECK(all_eq(p, 2 * page, 0xCC));
  /* Bad advice values. */
  CHECK_EQ(mm3_map_advise(m, MM3_ADV_COUNT, 0, 0), MM3_EINVAL);
  CHECK_EQ(mm3_map_advise(m, (mm3_advice)-1, 0, 0), MM3_EINVAL);
  CHECK_EQ(mm3_map_advise(m, (mm3_advice)999, 0, page), MM3_EINVAL);
  CHECK(all_eq(p, 2 * page, 0xCC));
}

FTEST(bad_write_read_only) {
  int fd = tmp_file("ro", 64, NULL);
  REQUIRE(fd >= 0);
  static const mm3_mode modes[] = {MM3_MODE_R, MM3_MODE_COPY_R, MM3_MODE_RX};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    if (modes[i] == MM3_MODE_RX && noexec_fs(fd)) continue;
    mm3_map *m;
    CHECK_RC(map_fd(fd, modes[i], 0, 0, 0, &m));
    if (!m) continue;
    CHECK(mm3_map_prot(m) != MM3_PROT_RW);
    CHECK_EQ(mm3_map_write(m, 0, abc123, 6), MM3_EREADONLY);
    CHECK_EQ(mm3_map_write(m, 63, abc123, 1), MM3_EREADONLY);
    CHECK_EQ(mm3_map_write(m, 0, abc123, 0), MM3_EREADONLY);
    CHECK_EQ(mm3_map_write(m, 64, abc123, 1), MM3_ERANGE); /* range is checked first */
    CHECK(all_eq(mm3_map_ptr(m), 64, 0));
  }
  uint8_t back[64];
  REQUIRE(file_read(fd, 0, back, 64) == 0);
  CHECK(all_eq(back, 64, 0));
  /* An anonymous map made read-only. */
  mm3_map *a;
  CHECK_RC(map_anon(64, &a));
  REQUIRE(a);
  CHECK_RC(mm3_map_protect(a, MM3_PROT_R));
  CHECK_EQ(mm3_map_write(a, 0, abc123, 6), MM3_EREADONLY);
  CHECK(all_eq(mm3_map_ptr(a), 64, 0));
}

FTEST(bad_mode) {
  int fd = tmp_file("mode", 64, NULL);
  REQUIRE(fd >= 0);
  static const int bad[] = {MM3_MODE_RX + 1, 99, -1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mm3_map_opts o = {0};
    o.mode = (mm3_mode)bad[i];
    mm3_map *m = (mm3_map *)&fx;
    CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_EINVAL);
    CHECK(m == (mm3_map *)&fx);
    const char *path = tmp_path("mode-create");
    o.create = 1;
    o.has_len = 1;
    o.len = 10;
    CHECK_EQ(mm3_map_path(path, &o, &m), MM3_EINVAL);
    CHECK(m == (mm3_map *)&fx);
    CHECK(access(path, F_OK) != 0); /* nothing created */
  }
}

FTEST(bad_protection) {
  mm3_map *m;
  CHECK_RC(map_anon(64, &m));
  REQUIRE(m);
  static const int bad[] = {0, 2, 4, 6, 7, 8, -1, 1000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ(mm3_map_protect(m, (mm3_prot)bad[i]), MM3_EINVAL);
    CHECK_EQ(mm3_map_prot(m), MM3_PROT_RW);
  }
  CHECK_RC(mm3_map_write(m, 0, abc123, 6)); /* still writable */
  CHECK(memcmp(mm3_map_ptr(m), abc123, 6) == 0);
}

FTEST(bad_fd_and_path) {
  mm3_map *sentinel = (mm3_map *)&fx, *m = sentinel;
  CHECK_EQ(mm3_map_fd(-1, NULL, &m), EBADF);
  int fd = tmp_file("badfd", 16, NULL);
  REQUIRE(fd >= 0);
  int fd2 = dup(fd);
  REQUIRE(fd2 >= 0);
  close(fd2);
  CHECK_EQ(mm3_map_fd(fd2, NULL, &m), EBADF); /* a closed descriptor */
  CHECK_EQ(mm3_map_path(NULL, NULL, &m), MM3_EINVAL);
  const char *missing = tmp_path("missing");
  CHECK_EQ(mm3_map_path(missing, NULL, &m), ENOENT);
  mm3_map_opts o = {0};
  o.mode = MM3_MODE_RW;
  CHECK_EQ(mm3_map_path(missing, &o, &m), ENOENT);
  CHECK_EQ(mm3_map_path("/nonexistent-mm3-dir/x", NULL, &m), ENOENT);
  CHECK(access(missing, F_OK) != 0);
  CHECK(m == sentinel);
  CHECK(strcmp(mm3_strerror(ENOENT), strerror(ENOENT)) == 0);
}

/* Lengths and offsets beyond what can be mapped. */
FTEST(bad_too_big) {
  int fd = tmp_file("big", 4096, NULL);
  REQUIRE(fd >= 0);
  mm3_map *sentinel = (mm3_map *)&fx, *m = sentinel;
  CHECK_EQ(mm3_map_anon(UINT64_MAX / 2, NULL, &m), MM3_ETOOBIG);
  mm3_map_opts o = {0};
  o.has_len = 1;
  o.len = UINT64_MAX / 2;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ETOOBIG);
  o.len = UINT64_MAX;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ETOOBIG);
  o.offset = UINT64_MAX - 10; /* offset + len overflows */
  o.len = 100;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ETOOBIG);
  o.offset = (uint64_t)INT64_MAX - 10; /* the end is not an off_t */
  o.len = 100;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ETOOBIG);
  o.offset = (uint64_t)INT64_MAX + 1; /* not an off_t */
  o.len = 1;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ETOOBIG);
  o.offset = 1;
  o.len = UINT64_MAX;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ETOOBIG);
  CHECK(m == sentinel);
  /* With create, nothing may be created or grown for a request that cannot map. */
  const char *path = tmp_path("big-create");
  o.create = 1;
  o.mode = MM3_MODE_RW;
  o.offset = 0;
  o.len = UINT64_MAX / 2;
  int rc = mm3_map_path(path, &o, &m);
  CHECK(rc == MM3_ETOOBIG || rc == EFBIG || rc == ENOSPC);
  CHECK(m == sentinel);
  o.offset = UINT64_MAX - 10;
  o.len = 100;
  CHECK_EQ(mm3_map_path(path, &o, &m), MM3_ETOOBIG);
  CHECK(m == sentinel);
  CHECK(access(path, F_OK) != 0);
  /* Bad huge-page sizes. */
  mm3_anon_opts ao = {0};
  ao.huge = -1;
  CHECK_EQ(mm3_map_anon(4096, &ao, &m), MM3_EINVAL);
  ao.huge = 64;
  CHECK_EQ(mm3_map_anon(4096, &ao, &m), MM3_EINVAL);
  ao.huge = 63; /* a size no machine has: the kernel refuses it */
  CHECK(mm3_map_anon(4096, &ao, &m) != 0);
  CHECK(m == sentinel);
}

FTEST(bad_offset_past_eof) {
  int fd = tmp_file("eof", 100, NULL);
  REQUIRE(fd >= 0);
  mm3_map *sentinel = (mm3_map *)&fx, *m = sentinel;
  mm3_map_opts o = {0};
  o.offset = 101;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ERANGE);
  o.offset = 1u << 20;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ERANGE);
  o.offset = UINT64_MAX;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ERANGE);
  CHECK(m == sentinel);
  /* At the end exactly: an empty map. */
  o.offset = 100;
  CHECK_RC(map_fd(fd, MM3_MODE_R, 100, 0, 0, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 0);
  /* One byte before the end. */
  uint8_t z = 'Z';
  REQUIRE(file_write(fd, 99, &z, 1) == 0);
  CHECK_RC(map_fd(fd, MM3_MODE_R, 99, 0, 0, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), 1);
  CHECK_EQ(mm3_map_ptr(m)[0], 'Z');
}

FTEST(create_option) {
  const char *path = tmp_path("create");
  mm3_map_opts o = {0};
  o.mode = MM3_MODE_RW;
  o.create = 1;
  o.has_len = 1;
  o.offset = 10;
  o.len = 5000;
  mm3_map *m = NULL;
  CHECK_RC(mm3_map_path(path, &o, &m));
  REQUIRE(keep_map(m));
  CHECK_EQ(mm3_map_len(m), 5000);
  CHECK(all_eq(mm3_map_ptr(m), 5000, 0));
  struct stat st;
  REQUIRE(stat(path, &st) == 0);
  CHECK_EQ(st.st_size, 5010);
  CHECK(st.st_blocks > 0); /* posix_fallocate: the blocks exist */
  CHECK_RC(mm3_map_write(m, 4994, abc123, 6));
  CHECK_RC(mm3_map_flush(m, 0, 0));
  int fd = keep_fd(open(path, O_RDONLY | O_CLOEXEC));
  REQUIRE(fd >= 0);
  uint8_t back[6];
  REQUIRE(file_read(fd, 5004, back, 6) == 0);
  CHECK(memcmp(back, abc123, 6) == 0);

  /* Extending an existing file keeps its contents; a larger file is not cut. */
  o.offset = 0;
  o.len = 8000;
  mm3_map *g = NULL;
  CHECK_RC(mm3_map_path(path, &o, &g));
  REQUIRE(keep_map(g));
  REQUIRE(stat(path, &st) == 0);
  CHECK_EQ(st.st_size, 8000);
  CHECK(memcmp(mm3_map_ptr(g) + 5004, abc123, 6) == 0);
  o.len = 100;
  mm3_map *s = NULL;
  CHECK_RC(mm3_map_path(path, &o, &s));
  keep_map(s);
  REQUIRE(stat(path, &st) == 0);
  CHECK_EQ(st.st_size, 8000);

  /* Without a length: the file is created empty and maps empty. */
  const char *p2 = tmp_path("create-empty");
  mm3_map_opts e = {0};
  e.create = 1;
  mm3_map *em = NULL;
  CHECK_RC(mm3_map_path(p2, &e, &em));
  keep_map(em);
  REQUIRE(stat(p2, &st) == 0);
  CHECK_EQ(st.st_size, 0);
  if (em) CHECK_EQ(mm3_map_len(em), 0);

  /* A read-only mode may still create: the map stays read-only. */
  const char *p3 = tmp_path("create-r");
  mm3_map_opts r = {0};
  r.mode = MM3_MODE_R;
  r.create = 1;
  r.has_len = 1;
  r.len = 300;
  mm3_map *rm = NULL;
  CHECK_RC(mm3_map_path(p3, &r, &rm));
  REQUIRE(keep_map(rm));
  CHECK_EQ(mm3_map_len(rm), 300);
  CHECK_EQ(mm3_map_prot(rm), MM3_PROT_R);
  CHECK_EQ(mm3_map_write(rm, 0, abc123, 6), MM3_EREADONLY);
  REQUIRE(stat(p3, &st) == 0);
  CHECK_EQ(st.st_size, 300);
}

FTEST(advice_names_round_trip) {
  static const char *const spec_names[] = {
    "normal", "random", "sequential", "willneed", "dontneed", "free", "remove", "dontfork",
    "dofork", "mergeable", "unmergeable", "hugepage", "nohugepage", "dontdump", "dodump",
    "populate_read", "populate_write", "cold", "pageout", "wipeonfork", "keeponfork"};
  CHECK_EQ(sizeof spec_names / sizeof spec_names[0], MM3_ADV_COUNT);
  for (int i = 0; i < MM3_ADV_COUNT; i++) {
    const char *name = mm3_advice_name((mm3_advice)i);
    REQUIRE(name != NULL);
    CHECK(strcmp(name, spec_names[i]) == 0);
    mm3_advice a = MM3_ADV_COUNT;
    CHECK_RC(mm3_advice_from_name(name, &a));
    CHECK_EQ(a, i);
    for (int j = 0; j < i; j++) CHECK(strcmp(name, mm3_advice_name((mm3_advice)j)) != 0);
  }
  CHECK_EQ(MM3_ADV_NORMAL, 0);
  CHECK_EQ(MM3_ADV_DONTNEED, 4);
  CHECK(mm3_advice_name(MM3_ADV_COUNT) == NULL);
  CHECK(mm3_advice_name((mm3_advice)-1) == NULL);
  mm3_advice a = MM3_ADV_RANDOM;
  CHECK_EQ(mm3_advice_from_name("bogus", &a), MM3_EINVAL);
  CHECK_EQ(mm3_advice_from_name("", &a), MM3_EINVAL);
  CHECK_EQ(mm3_advice_from_name("Normal", &a), MM3_EINVAL);
  CHECK_EQ(mm3_advice_from_name("normal ", &a), MM3_EINVAL);
  CHECK_EQ(mm3_advice_from_name(NULL, &a), MM3_EINVAL);
  CHECK_EQ(a, MM3_ADV_RANDOM); /* untouched on failure */
}

TEST(close_null) {
  mm3_map_close(NULL);
  mm3_map_close(NULL);
  CHECK(1);
}

/* Options that only add mmap flags: populate, no_reserve, stack. */
FTEST(map_flag_options) {
  int fd = tmp_file("flags", 8192, NULL);
  REQUIRE(fd >= 0);
  mm3_map_opts o = {0};
  o.mode = MM3_MODE_RW;
  o.populate = 1;
  o.no_reserve = 1;
  mm3_map *m = NULL;
  CHECK_RC(mm3_map_fd(fd, &o, &m));
  REQUIRE(keep_map(m));
  CHECK_EQ(mm3_map_len(m), 8192);
  CHECK_RC(mm3_map_write(m, 8000, abc123, 6));
  mm3_anon_opts ao = {0};
  ao.populate = 1;
  ao.no_reserve = 1;
  ao.stack = 1;
  mm3_map *a = NULL;
  CHECK_RC(mm3_map_anon(8192, &ao, &a));
  REQUIRE(keep_map(a));
  CHECK(all_eq(mm3_map_ptr(a), 8192, 0));
  CHECK_RC(mm3_map_write(a, 8186, abc123, 6));
}

/* shared = 1: a forked child's writes reach the parent (memmap2 lacks it);
 * without it the child writes a private copy. */
FTEST(anon_shared_with_fork) {
  mm3_anon_opts so = {0};
  so.shared = 1;
  mm3_map *s = NULL, *p;
  CHECK_RC(mm3_map_anon(4096, &so, &s));
  REQUIRE(keep_map(s));
  CHECK_RC(map_anon(4096, &p));
  REQUIRE(p);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int ok = mm3_map_write(s, 10, abc123, 6) == 0 && mm3_map_write(p, 10, abc123, 6) == 0;
    _exit(ok ? 0 : 1);
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK(memcmp(mm3_map_ptr(s) + 10, abc123, 6) == 0);
  CHECK(all_eq(mm3_map_ptr(p), 4096, 0));
}

/* ------------------------------------------------------------------------
 * Ranges, advice, huge pages and devices (review fixes)
 * ------------------------------------------------------------------------ */

/* len == 0 away from offset 0 is an empty range: it touches nothing (it used
   to advise, or flush, the bytes before off). */
FTEST(empty_range_is_nothing) {
  size_t page = page_size();
  mm3_map *m;
  uint8_t *p = anon_ff(3 * page, &m);
  REQUIRE(p);
  CHECK_RC(mm3_map_advise(m, MM3_ADV_DONTNEED, page + 100, 0));
  CHECK_RC(mm3_map_advise(m, MM3_ADV_DONTNEED, 2 * page, 0));
  CHECK_RC(mm3_map_advise(m, MM3_ADV_DONTNEED, 3 * page, 0)); /* at the end: still inside */
  CHECK(all_eq(p, 3 * page, 0xff));
  CHECK_EQ(mm3_map_advise(m, MM3_ADV_DONTNEED, 3 * page + 1, 0), MM3_ERANGE);
  CHECK_RC(mm3_map_flush(m, page + 100, 0));
  CHECK_RC(mm3_map_flush_async(m, 3 * page, 0));
  CHECK_EQ(mm3_map_flush(m, 3 * page + 1, 0), MM3_ERANGE);
  CHECK(all_eq(p, 3 * page, 0xff));
  /* advice a child can see: an empty range marks no page "do not fork" (it
     used to mark the page before off, and the child faulted reading it) */
  CHECK_RC(mm3_map_advise(m, MM3_ADV_DONTFORK, page + 100, 0));
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(p[page] == 0xff ? 0 : 1);
  CHECK_EQ(wait_child(pid), 0);
}

/* dontneed, free and remove act only on whole pages inside both the map and
   the range: bytes of the map outside the range, and file bytes outside the
   map, are never dropped. */
FTEST(destructive_advice_stays_inside) {
  size_t page = page_size();
  mm3_map *a;
  uint8_t *p = anon_ff(3 * page, &a);
  REQUIRE(p);
  CHECK_RC(mm3_map_advise(a, MM3_ADV_DONTNEED, 100, 10)); /* inside one page: nothing */
  CHECK(all_eq(p, 3 * page, 0xff));
  CHECK_RC(mm3_map_advise(a, MM3_ADV_DONTNEED, 100, 2 * page)); /* covers page 1 only */
  CHECK(all_eq(p, page, 0xff));
  CHECK(all_eq(p + page, page, 0));
  CHECK(all_eq(p + 2 * page, page, 0xff));
  if (mm3_advice_supported(MM3_ADV_FREE)) {
    memset(p, 0xff, 3 * page);
    CHECK_RC(mm3_map_advise(a, MM3_ADV_FREE, 1, 3 * page - 2)); /* only page 1 is whole */
    CHECK(all_eq(p, page, 0xff));
    CHECK(all_eq(p + 2 * page, page, 0xff));
  }
  /* An anonymous map owns its last page: a range to its end reaches it. */
  mm3_map *small;
  CHECK_RC(map_anon(100, &small));
  REQUIRE(small);
  memset(mm3_map_ptr(small), 0xff, 100);
  CHECK_RC(mm3_map_advise(small, MM3_ADV_DONTNEED, 0, 100));
  CHECK(all_eq(mm3_map_ptr(small), 100, 0));
  memset(mm3_map_ptr(small), 0xff, 100);
  CHECK_RC(mm3_map_advise(small, MM3_ADV_DONTNEED, 0, 0));
  CHECK(all_eq(mm3_map_ptr(small), 100, 0));

  /* File bytes [page + 4, page + 14) mapped: the page around them is the file's. */
  int fd = tmp_file("advin", 3 * page, NULL);
  REQUIRE(fd >= 0);
  static uint8_t pat[3 * 65536], back[3 * 65536]; /* static: a REQUIRE may end the test */
  REQUIRE(page <= 65536);
  memset(pat, 'a', 3 * page);
  REQUIRE(file_write(fd, 0, pat, 3 * page) == 0);
  mm3_map *m, *c;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, page + 4, 10, 1, &m));
  CHECK_RC(map_fd(fd, MM3_MODE_COPY, page + 4, 10, 1, &c));
  if (m && c) {
    if (mm3_advice_supported(MM3_ADV_REMOVE)) {
      CHECK_RC(mm3_map_advise(m, MM3_ADV_REMOVE, 0, 1));
      CHECK_RC(mm3_map_advise(m, MM3_ADV_REMOVE, 0, 0));
    }
    CHECK_RC(mm3_map_advise(m, MM3_ADV_DONTNEED, 0, 10));
    REQUIRE(file_read(fd, 0, back, 3 * page) == 0);
    CHECK(all_eq(back, 3 * page, 'a')); /* no hole punched in the file */
    memset(mm3_map_ptr(c), 'b', 10);     /* private copies of the map's bytes */
    CHECK_RC(mm3_map_advise(c, MM3_ADV_DONTNEED, 0, 0));
    CHECK(all_eq(mm3_map_ptr(c), 10, 'b')); /* not dropped: the page is not all the map's */
  }
}

/* An offset so close to the end of off_t that its last page is not an off_t:
   refused as too big, like the other impossible ranges (mmap said EOVERFLOW). */
FTEST(offset_near_off_t_max) {
  int fd = tmp_file("offmax", 4096, NULL);
  REQUIRE(fd >= 0);
  mm3_map *sentinel = (mm3_map *)&fx, *m = sentinel;
  mm3_map_opts o = {0};
  o.has_len = 1;
  o.offset = (uint64_t)INT64_MAX - 10;
  o.len = 5;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ETOOBIG);
  o.len = 4096;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ETOOBIG);
  CHECK(m == sentinel);
  /* Its last page still an off_t: it maps (the file need not be that long). */
  CHECK_RC(map_fd(fd, MM3_MODE_R, (uint64_t)INT64_MAX - 10000, 1, 1, &m));
}

/* A number from /proc/meminfo ("HugePages_Free:"), or -1. */
static long meminfo(const char *key) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[256];
  long v = -1;
  size_t k = strlen(key);
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, k) == 0) {
      v = strtol(line + k, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* Huge-page maps are whole huge pages to the kernel: protect and close must
   use the rounded length (close gave the huge page back only then). Needs a
   free huge page (/proc/sys/vm/nr_hugepages > 0): skipped without. */
FTEST(huge_pages_whole) {
  long before = meminfo("HugePages_Free:");
  if (before <= 0) {
    SKIP("no free huge pages (/proc/sys/vm/nr_hugepages)");
  }
  static const int sizes[2] = {1, 21};
  for (int i = 0; i < 2; i++) {
    mm3_anon_opts ao = {0};
    ao.huge = sizes[i];
    mm3_map *m = NULL;
    int rc = mm3_map_anon(100, &ao, &m);
    if (rc != 0 && sizes[i] == 21 && meminfo("Hugepagesize:") != 2048) continue;
    CHECK_RC(rc);
    REQUIRE(m);
    memset(mm3_map_ptr(m), 7, 100); /* takes the huge page */
    CHECK_EQ(meminfo("HugePages_Free:"), before - 1);
    CHECK_RC(mm3_map_protect(m, MM3_PROT_R));
    CHECK_EQ(mm3_map_ptr(m)[99], 7);
    CHECK_RC(mm3_map_protect(m, MM3_PROT_RW));
    CHECK_RC(mm3_map_advise(m, MM3_ADV_NORMAL, 0, 0));
    mm3_map_close(m);
    CHECK_EQ(meminfo("HugePages_Free:"), before); /* given back */
  }
}

/* A block device this process can open read-only (preferring one with a
   size; an unattached loop device has none), its size from lseek; -1 if
   there is none. Opening one read-only changes nothing. */
static int open_block_device(uint64_t *size) {
  FILE *ls = popen("ls /sys/class/block 2>/dev/null", "r");
  char dev[128];
  int best = -1;
  if (!ls) return -1;
  while (fscanf(ls, "%127s", dev) == 1) {
    char path[160];
    struct stat st;
    snprintf(path, sizeof path, "/dev/%s", dev);
    if (stat(path, &st) != 0 || !S_ISBLK(st.st_mode)) continue;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0 || lseek(fd, 0, SEEK_SET) != 0 || (best >= 0 && end == 0)) {
      close(fd);
      continue;
    }
    if (best >= 0) close(best);
    best = fd;
    *size = (uint64_t)end;
    if (end > 0) break;
  }
  pclose(ls);
  return keep_fd(best);
}

/* A block device has no st_size: its size comes from the device, so the
   default length covers it and an offset past its end is refused. Only maps
   (read-only, nothing touched): no side effect on the device. */
FTEST(block_device_size) {
  uint64_t size = 0;
  int fd = open_block_device(&size);
  if (fd < 0) {
    SKIP("no readable block device");
  }
  if (size == 0) { /* an empty device (an unused loop device) tells the sizes apart from nothing */
    SKIP("the readable block devices are empty");
  }
  mm3_map *m;
  CHECK_RC(map_fd(fd, MM3_MODE_R, 0, 0, 0, &m));
  REQUIRE(m);
  CHECK_EQ(mm3_map_len(m), size);
  if (size >= 100) {
    CHECK_RC(map_fd(fd, MM3_MODE_R, size - 100, 0, 0, &m));
    REQUIRE(m);
    CHECK_EQ(mm3_map_len(m), 100);
  }
  mm3_map *sentinel = (mm3_map *)&fx;
  m = sentinel;
  mm3_map_opts o = {0};
  o.offset = size + 1;
  CHECK_EQ(mm3_map_fd(fd, &o, &m), MM3_ERANGE);
  CHECK(m == sentinel);
  CHECK_EQ(lseek(fd, 0, SEEK_CUR), 0); /* the descriptor's position is left alone */
}

/* ------------------------------------------------------------------------
 * A file truncated under its map (the SIGBUS guard)
 * ------------------------------------------------------------------------ */

/* Another program cuts the file: a lost page reads zeros instead of raising
   SIGBUS, and mm3_map_truncated says so; shared and copy-on-write maps alike.
   A map of pages still in the file and anonymous maps are never flagged. */
FTEST(truncated_file_map) {
  size_t page = page_size();
  int fd = tmp_file("cut", 4 * page, NULL);
  REQUIRE(fd >= 0);
  uint8_t *pat = malloc(4 * page);
  REQUIRE(pat);
  memset(pat, 'a', 4 * page);
  int wrote = file_write(fd, 0, pat, 4 * page);
  free(pat);
  REQUIRE(wrote == 0);
  mm3_map *m, *c, *r, *head, *a;
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, 4 * page, 1, &m));
  CHECK_RC(map_fd(fd, MM3_MODE_COPY, 0, 4 * page, 1, &c));
  CHECK_RC(map_fd(fd, MM3_MODE_R, 0, 4 * page, 1, &r));
  CHECK_RC(map_fd(fd, MM3_MODE_R, 0, page, 1, &head));
  CHECK_RC(map_anon(page, &a));
  REQUIRE(m && c && r && head && a);
  CHECK_EQ(mm3_map_truncated(m), 0);
  REQUIRE(ftruncate(fd, (off_t)page) == 0); /* behind the maps' backs */
  volatile uint8_t *pm = mm3_map_ptr(m), *pc = mm3_map_ptr(c), *pr = mm3_map_ptr(r);
  CHECK_EQ(pm[10], 'a'); /* what is still in the file reads as before */
  CHECK_EQ(mm3_map_truncated(m), 0);
  CHECK_EQ(pm[2 * page], 0); /* a lost page reads zeros */
  CHECK(mm3_map_truncated(m) != 0);
  pm[3 * page] = 7; /* and a write there is dropped, not fatal */
  CHECK_EQ(mm3_map_truncated(c), 0);
  CHECK_EQ(pc[2 * page + 5], 0); /* copy-on-write pages not yet copied fault too */
  CHECK(mm3_map_truncated(c) != 0);
  CHECK_EQ(pr[3 * page + 1], 0);
  CHECK(mm3_map_truncated(r) != 0);
  CHECK_EQ(mm3_map_ptr(head)[0], 'a');
  CHECK_EQ(mm3_map_truncated(head), 0);
  CHECK_EQ(mm3_map_truncated(a), 0);
}

/* A remap moves the guard with the map; a closed map leaves it (more maps
   are made and closed first than the guard has room for: had they stayed,
   m would be unguarded, and the fault below would kill the test). */
FTEST(truncated_file_map_after_remap) {
  size_t page = page_size();
  int fd = tmp_file("cutremap", 8 * page, NULL);
  REQUIRE(fd >= 0);
  mm3_map *m, *gone;
  mm3_map_opts o = {0};
  o.has_len = 1;
  o.len = 8 * page;
  for (int i = 0; i < 1100; i++) {
    REQUIRE(mm3_map_fd(fd, &o, &gone) == 0);
    mm3_map_close(gone); /* registered, then not */
  }
  CHECK_RC(map_fd(fd, MM3_MODE_RW, 0, page, 1, &m));
  REQUIRE(m);
  mm3_map_ptr(m)[0] = 'x';
  CHECK_RC(mm3_map_remap(m, 8 * page, MM3_REMAP_MAY_MOVE));
  volatile uint8_t *p = mm3_map_ptr(m);
  CHECK_EQ(p[0], 'x');
  REQUIRE(ftruncate(fd, (off_t)page) == 0);
  CHECK_EQ(p[7 * page], 0);
  CHECK(mm3_map_truncated(m) != 0);
}

/* The library's hook for tests (src/mm3_internal.h): named points. */
extern void (*mm3__test_hook)(const char *point);
static volatile int guard_state; /* 0: no handler yet; 1: one is paused in the hook; 2: it went on */
static void slow_guard_entry(const char *point) {
  if (strcmp(point, "guard: entry read") == 0 && guard_state == 0) {
    guard_state = 1;
    struct timespec d = {0, 200 * 1000000L};
    nanosleep(&d, NULL);
    guard_state = 2;
  }
}

typedef struct closer {
  mm3_map *m;
  int state_at_return; /* guard_state when mm3_map_close returned */
} closer;

static void *close_in_handler(void *arg) {
  closer *c = arg;
  for (int spins = 0; guard_state == 0; spins++) {
    if (spins > 2000) return NULL; /* no handler reached the hook (state_at_return stays -1) */
    struct timespec d = {0, 1000000L};
    nanosleep(&d, NULL);
  }
  mm3_map_close(c->m);
  c->state_at_return = guard_state;
  return NULL;
}

/* A map closed while a SIGBUS handler (of another thread) runs is given back
   (unmapped, freed) only once the handler is done with the registry: the
   handler may have read its entry just before. The test's hook pauses the
   handler right after it reads an entry; before, close returned during the
   pause (state 1), and the handler went on with a freed map. */
FTEST(guard_close_waits_for_a_running_handler) {
  size_t page = page_size();
  int fd2 = tmp_file("guardwait2", 2 * page, NULL), fd1 = tmp_file("guardwait1", 2 * page, NULL);
  REQUIRE(fd1 >= 0 && fd2 >= 0);
  mm3_map_opts o = {0};
  o.has_len = 1;
  o.len = 2 * page;
  closer c = {NULL, -1};
  REQUIRE(mm3_map_fd(fd2, &o, &c.m) == 0); /* closed by the thread */
  mm3_map *m1;
  CHECK_RC(map_fd(fd1, MM3_MODE_RW, 0, 2 * page, 1, &m1));
  REQUIRE(m1);
  REQUIRE(ftruncate(fd1, (off_t)page) == 0);
  guard_state = 0;
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, close_in_handler, &c) == 0);
  mm3__test_hook = slow_guard_entry;
  volatile uint8_t *p = mm3_map_ptr(m1);
  CHECK_EQ(p[page], 0); /* past the end: the handler runs */
  mm3__test_hook = NULL;
  pthread_join(th, NULL);
  CHECK(guard_state != 0); /* the handler ran, and reached the hook */
  CHECK_EQ(c.state_at_return, 2);
  if (c.state_at_return == -1) mm3_map_close(c.m);
  CHECK(mm3_map_truncated(m1) != 0);
}

/* mm3_test.h's RUN_TESTS expands at most 40 names; this file has more, so
   main() lists them with an X-macro and calls the harness's runner itself. */
#define ALL_TESTS(X) \
  X(parity_01_file_rw_zero_then_roundtrip) \
  X(parity_02_fd_rw_zero_then_roundtrip) \
  X(parity_03_empty_file) \
  X(parity_04_anon_128) \
  X(parity_05_anon_zero_len) \
  X(parity_06_anon_len_overflow) \
  X(parity_07_write_flush_read_file) \
  X(parity_08_offset_flush_range) \
  X(parity_09_copy_on_write) \
  X(parity_10_copy_read_only) \
  X(parity_11_offset_above_4gib) \
  X(parity_12_index) \
  X(parity_13_threads) \
  X(parity_14_jit) \
  X(parity_15_protect_file) \
  X(parity_16_protect_copy) \
  X(parity_17_protect_anon) \
  X(parity_18_six_byte_file) \
  X(parity_19_read_only_fd) \
  X(parity_20_stable_address) \
  X(parity_21_advise) \
  X(parity_22_dontneed_zeroes) \
  X(parity_23_dontneed_one_page) \
  X(parity_24_lock) \
  X(parity_25_remap_grow) \
  X(parity_26_remap_shrink) \
  X(parity_27_remap_failure) \
  X(parity_28_remap_offset) \
  X(parity_29_advice_supported) \
  X(bad_read_range) \
  X(bad_write_range) \
  X(bad_flush_range) \
  X(bad_advise_range) \
  X(bad_write_read_only) \
  X(bad_mode) \
  X(bad_protection) \
  X(bad_fd_and_path) \
  X(bad_too_big) \
  X(bad_offset_past_eof) \
  X(create_option) \
  X(advice_names_round_trip) \
  X(close_null) \
  X(map_flag_options) \
  X(anon_shared_with_fork) \
  X(empty_range_is_nothing) \
  X(destructive_advice_stays_inside) \
  X(offset_near_off_t_max) \
  X(huge_pages_whole) \
  X(block_device_size) \
  X(truncated_file_map) \
  X(truncated_file_map_after_remap) \
  X(guard_close_waits_for_a_running_handler)

int main(void) {
  static const mm3t_fn fns[] = {ALL_TESTS(MM3T_FN)};
  static const char *const names[] = {ALL_TESTS(MM3T_NAME)};
  return mm3t_run(__FILE__, fns, names, (int)(sizeof fns / sizeof fns[0]));
}
