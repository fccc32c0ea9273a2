/*
 * test_file.c - memmap3 files through the public C API: version and errors,
 * opening (and every way it fails), the header, growth, refresh, the writer
 * lock, the hashes, and the file check.
 *
 * Every test runs inside mm3_fixture.h's fixture: its files are closed and
 * removed afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "memmap3.h"
#include "mm3_test.h"
#include "mm3_fixture.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static uint64_t page(void) { return (uint64_t)sysconf(_SC_PAGESIZE); }
static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Where the root of a new file with this schema text starts. */
static uint64_t root_off_for(const char *schema) { return round_up(MM3_HEADER_SIZE + strlen(schema) + 1, 64); }

static int64_t file_size_on_disk(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Create a file at a fresh temporary path and close it; the path or NULL. */
static const char *make_file(const char *tag, const char *schema, uint64_t root_size) {
  const char *path;
  mm3_file *f = new_file(tag, schema, root_size, &path);
  if (!f) return NULL;
  close_file(f);
  return path;
}

static int patch(const char *path, uint64_t off, const void *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t w = pwrite(fd, data, n, (off_t)off);
  close(fd);
  return w == (ssize_t)n ? 0 : -1;
}

static int peek(const char *path, uint64_t off, void *data, size_t n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t r = pread(fd, data, n, (off_t)off);
  close(fd);
  return r == (ssize_t)n ? 0 : -1;
}

/* Write a file of n bytes of data at a fresh temporary path. */
static const char *raw_file(const char *tag, const void *data, size_t n) {
  const char *path = tmp_path(tag);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return NULL;
  ssize_t w = n ? write(fd, data, n) : 0;
  close(fd);
  return w == (ssize_t)n ? path : NULL;
}

/* mm3_file_open(path) with schema (NULL: the file's own) and readonly; the
   file is closed again at once. The result code. */
static int try_open(const char *path, const char *schema, int readonly) {
  mm3_file_opts o = {0};
  o.schema = schema;
  o.readonly = readonly;
  mm3_file *f = NULL;
  int rc = mm3_file_open(path, &o, &f);
  if (rc == 0) mm3_file_close(f);
  else if (f != NULL) rc = 999999; /* out-parameters are written only on success */
  return rc;
}

/* mm3_file_read_schema's result code (the buffer is freed). */
static int try_read_schema(const char *path) {
  char *s = NULL;
  size_t n = 12345;
  int rc = mm3_file_read_schema(path, &s, &n);
  if (rc == 0) free(s);
  else if (s != NULL || n != 12345) rc = 999999;
  return rc;
}

/* The number of entries of dir whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
  closedir(d);
  return n;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ========================================================================
 * Version and errors
 * ======================================================================== */

FTEST(version_numbers) {
  int a = -1, b = -1, c = -1;
  const char *v = mm3_version(&a, &b, &c);
  REQUIRE(v != NULL);
  CHECK(strcmp(v, MM3_VERSION_STRING) == 0);
  CHECK(strcmp(v, "0.1.0") == 0);
  CHECK_EQ(a, MM3_VERSION_MAJOR);
  CHECK_EQ(b, MM3_VERSION_MINOR);
  CHECK_EQ(c, MM3_VERSION_PATCH);
  char built[32];
  snprintf(built, sizeof built, "%d.%d.%d", a, b, c);
  CHECK(strcmp(built, v) == 0);
  /* Every out-parameter may be NULL. */
  CHECK(mm3_version(NULL, NULL, NULL) == v);
  int only = -1;
  CHECK(mm3_version(NULL, &only, NULL) == v);
  CHECK_EQ(only, MM3_VERSION_MINOR);
}

FTEST(strerror_every_code) {
  static const struct {
    int code;
    const char *text;
  } names[] = {
    {MM3_ERANGE, "offset or length out of range"},
    {MM3_EREADONLY, "read-only"},
    {MM3_EINVAL, "invalid argument"},
    {MM3_ETOOBIG, "length overflows the address space"},
    {MM3_ENOTSUP, "not supported"},
    {MM3_EBADFILE, "not a memmap3 file"},
    {MM3_EVERSION, "file format is newer than this library"},
    {MM3_ECORRUPT, "file is corrupted"},
    {MM3_ESCHEMA, "file layout differs from the schema"},
    {MM3_EFULL, "container is full"},
    {MM3_ERESERVE, "file outgrew its reserved address range"},
    {MM3_ETRUNCATED, "file is truncated"},
    {MM3_EBYTEORDER, "file was written with another byte order"},
    {MM3_ENOTFOUND, "not found"},
    {MM3_ERECOVER, "an unfinished write of a dead process needs recovery: open the file read-write once"},
    {MM3_EBUSY, "the file has a transaction open through another open of it in this thread: write through that one"},
    {MM3_ELOGFULL, "transaction too large for the undo log (256 MiB of changes to data that existed before it)"},
    {MM3_ELOCKBAD, "the file's lock was overwritten by another program: close every open of the file (the next "
                   "first opener makes the lock anew)"},
    {MM3_EWRITERS, "other processes kept writing while a read-only open read this (or one died writing: any write, "
                   "or a read-write open alone with the file, ends that)"},
  };
  const int n = (int)(sizeof names / sizeof names[0]);
  CHECK_EQ(n, MM3_ERR_LAST - MM3_ERR_BASE + 1); /* the table covers the range */
  for (int i = 0; i < n; i++) {
    const char *s = mm3_strerror(names[i].code);
    REQUIRE(s != NULL);
    if (strcmp(s, names[i].text) != 0)
      fprintf(stderr, "  code %d: \"%s\", expected \"%s\"\n", names[i].code, s, names[i].text);
    CHECK(strcmp(s, names[i].text) == 0);
    for (int j = 0; j < i; j++) CHECK(strcmp(s, mm3_strerror(names[j].code)) != 0); /* all distinct */
  }
  /* Every code of the reserved range, by number. */
  for (int code = MM3_ERR_BASE; code <= MM3_ERR_LAST; code++) {
    const char *s = mm3_strerror(code);
    CHECK(s != NULL && s[0] != 0 && strcmp(s, "unknown error") != 0);
  }
}

FTEST(strerror_errno_success_unknown) {
  CHECK(strcmp(mm3_strerror(0), "success") == 0);
  CHECK(strcmp(mm3_strerror(ENOENT), strerror(ENOENT)) == 0);
  CHECK(strcmp(mm3_strerror(EEXIST), strerror(EEXIST)) == 0);
  CHECK(strcmp(mm3_strerror(ENOSPC), strerror(ENOSPC)) == 0);
  /* Outside the reserved range, and negative errno-like values. */
  CHECK(strcmp(mm3_strerror(MM3_ERR_BASE - 1), "unknown error") == 0);
  CHECK(strcmp(mm3_strerror(MM3_ERR_LAST + 1), "unknown error") == 0);
  CHECK(strcmp(mm3_strerror(-1), "unknown error") == 0);
  CHECK(strcmp(mm3_strerror(INT32_MIN), "unknown error") == 0);
  CHECK(mm3_strerror(INT32_MAX) != NULL);
}

/* ========================================================================
 * Opening
 * ======================================================================== */

/* A new file: header bytes, accessors, a zeroed root, the size on disk. */
FTEST(open_create_new_file) {
  const char *path;
  mm3_file *f = new_file("create", SCHEMA_S, 16, &path);
  REQUIRE(f);
  uint8_t *base = mm3_file_base(f);
  REQUIRE(base != NULL);
  CHECK(memcmp(base, "MEMMAP3\0", 8) == 0);
  uint32_t version, bom;
  memcpy(&version, base + 8, 4);
  memcpy(&bom, base + 12, 4);
  CHECK_EQ(version, MM3_FORMAT_VERSION);
  CHECK_EQ(bom, 0x01020304u);
  uint64_t expect_root = root_off_for(SCHEMA_S);
  uint64_t expect_size = round_up(expect_root + 16, page());
  CHECK_EQ(hdr_u64(f, 16), expect_size); /* published size */
  CHECK_EQ(hdr_u64(f, 24), mm3_fnv1a64(SCHEMA_S, strlen(SCHEMA_S), MM3_FNV_OFFSET));
  CHECK_EQ(hdr_u64(f, 32), MM3_HEADER_SIZE);
  CHECK_EQ(hdr_u64(f, 40), strlen(SCHEMA_S));
  CHECK_EQ(hdr_u64(f, 48), expect_root);
  CHECK_EQ(hdr_u64(f, 56), 16);
  CHECK(memcmp(base + MM3_HEADER_SIZE, SCHEMA_S, strlen(SCHEMA_S)) == 0);
  /* Accessors. */
  CHECK(mm3_file_root(f) == base + expect_root);
  CHECK_EQ((uintptr_t)mm3_file_root(f) % 64, 0);
  CHECK_EQ(mm3_file_root_size(f), 16);
  CHECK_EQ(mm3_file_size(f), expect_size);
  CHECK_EQ(file_size_on_disk(path), (int64_t)expect_size);
  size_t len = 0;
  const char *schema = mm3_file_schema(f, &len);
  REQUIRE(schema != NULL);
  CHECK(strcmp(schema, SCHEMA_S) == 0);
  CHECK_EQ(len, strlen(SCHEMA_S));
  CHECK(mm3_file_schema(f, NULL) == schema);
  CHECK_EQ(mm3_file_fingerprint(f), hdr_u64(f, 24));
  CHECK_EQ(mm3_file_seed(f), hdr_u64(f, 64));
  CHECK_EQ(mm3_file_readonly(f), 0);
  CHECK(strcmp(mm3_file_path(f), path) == 0);
  CHECK(mm3_file_path(f) != path); /* a copy: lives as long as f */
  CHECK(all_zero(mm3_file_root(f), 16));
  CHECK_EQ(mm3_file_recovered(f), 0);
  /* No temporary name is left next to the file. */
  const char *slash = strrchr(path, '/');
  char dir[256], prefix[300];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  snprintf(prefix, sizeof prefix, "%s.tmp", slash + 1);
  CHECK_EQ(count_prefixed(dir, prefix), 0);
}

/* What is written to the root survives closing; reopening with the schema or
   with NULL (the file's own) both work. */
FTEST(open_reopen_keeps_data) {
  const char *path;
  mm3_file *f = new_file("reopen", SCHEMA_S, 16, &path);
  REQUIRE(f);
  uint64_t a = 0x1122334455667788ULL;
  uint32_t b = 0xCAFEBABE;
  memcpy(mm3_file_root(f), &a, 8);
  memcpy(mm3_file_root(f) + 8, &b, 4);
  uint64_t seed = mm3_file_seed(f);
  close_file(f);
  mm3_file_opts o = {0};
  o.schema = SCHEMA_S;
  mm3_file *g;
  CHECK_RC(open_file(path, &o, &g));
  REQUIRE(g);
  uint64_t a2;
  uint32_t b2;
  memcpy(&a2, mm3_file_root(g), 8);
  memcpy(&b2, mm3_file_root(g) + 8, 4);
  CHECK_EQ(a2, a);
  CHECK_EQ(b2, b);
  CHECK_EQ(mm3_file_seed(g), seed);
  close_file(g);
  mm3_file *h = open_existing(path, 0);
  REQUIRE(h);
  CHECK(strcmp(mm3_file_schema(h, NULL), SCHEMA_S) == 0);
  memcpy(&a2, mm3_file_root(h), 8);
  CHECK_EQ(a2, a);
}

/* create without exclusive opens an existing file as it is. */
FTEST(open_create_existing_keeps_data) {
  const char *path;
  mm3_file *f = new_file("existing", SCHEMA_U64, 8, &path);
  REQUIRE(f);
  uint64_t v = 77;
  memcpy(mm3_file_root(f), &v, 8);
  uint64_t seed = mm3_file_seed(f);
  close_file(f);
  mm3_file_opts o = {0};
  o.create = 1;
  o.schema = SCHEMA_U64;
  o.root_size = 8;
  mm3_file *g;
  CHECK_RC(open_file(path, &o, &g));
  REQUIRE(g);
  uint64_t back;
  memcpy(&back, mm3_file_root(g), 8);
  CHECK_EQ(back, 77);
  CHECK_EQ(mm3_file_seed(g), seed);
  /* The same, while the first handle is still open. */
  mm3_file *h;
  CHECK_RC(open_file(path, &o, &h));
  REQUIRE(h);
  CHECK(mm3_file_root(h) != mm3_file_root(g));
  memcpy(&back, mm3_file_root(h), 8);
  CHECK_EQ(back, 77);
  /* create with another schema: MM3_ESCHEMA, nothing replaced */
  o.schema = SCHEMA_S;
  o.root_size = 16;
  mm3_file *x = (mm3_file *)&fx;
  CHECK_EQ(mm3_file_open(path, &o, &x), MM3_ESCHEMA);
  CHECK(x == (mm3_file *)&fx);
}

FTEST(open_exclusive_eexist) {
  const char *path = tmp_path("excl");
  mm3_file_opts o = {0};
  o.create = 1;
  o.exclusive = 1;
  o.schema = SCHEMA_U64;
  o.root_size = 8;
  mm3_file *f;
  CHECK_RC(open_file(path, &o, &f));
  REQUIRE(f);
  uint64_t seed = mm3_file_seed(f);
  mm3_file *g = (mm3_file *)&fx;
  CHECK_EQ(mm3_file_open(path, &o, &g), EEXIST);
  CHECK(g == (mm3_file *)&fx);
  close_file(f);
  CHECK_EQ(mm3_file_open(path, &o, &g), EEXIST); /* also when nobody has it open */
  /* The existing file is untouched. */
  mm3_file *h = open_existing(path, 1);
  REQUIRE(h);
  CHECK_EQ(mm3_file_seed(h), seed);
  /* exclusive over a foreign file: EEXIST as well, the file is kept */
  const char *other = raw_file("exclraw", "data", 4);
  REQUIRE(other);
  CHECK_EQ(mm3_file_open(other, &o, &g), EEXIST);
  CHECK_EQ(file_size_on_disk(other), 4);
}

FTEST(open_missing_enoent) {
  const char *path = tmp_path("missing");
  mm3_file_opts o = {0};
  mm3_file *f = (mm3_file *)&fx;
  CHECK_EQ(mm3_file_open(path, &o, &f), ENOENT);
  o.schema = SCHEMA_U64;
  CHECK_EQ(mm3_file_open(path, &o, &f), ENOENT);
  o.readonly = 1;
  o.create = 1; /* a read-only open never creates */
  o.root_size = 8;
  CHECK_EQ(mm3_file_open(path, &o, &f), ENOENT);
  CHECK(f == (mm3_file *)&fx);
  CHECK_EQ(file_size_on_disk(path), -1);
  CHECK_EQ(mm3_file_open("/nonexistent-dir/x.mm3", &o, &f), ENOENT);
  o.readonly = 0;
  CHECK_EQ(mm3_file_open("/nonexistent-dir/x.mm3", &o, &f), ENOENT);
}

FTEST(open_bad_arguments) {
  const char *path = tmp_path("badargs");
  mm3_file_opts o = {0};
  mm3_file *f = (mm3_file *)&fx;
  CHECK_EQ(mm3_file_open(NULL, &o, &f), MM3_EINVAL);
  CHECK_EQ(mm3_file_open(path, NULL, &f), MM3_EINVAL);
  o.create = 1;
  o.exclusive = 1; /* creating needs a schema (the root size may be computed from it) */
  CHECK_EQ(mm3_file_open(path, &o, &f), MM3_EINVAL);
  o.schema = "root bogus"; /* root_size 0: computed, and this text has no layout */
  CHECK_EQ(mm3_file_open(path, &o, &f), MM3_ESCHEMA);
  o.root_size = 8;
  o.schema = "";
  CHECK_EQ(mm3_file_open(path, &o, &f), MM3_EINVAL);
  o.schema = SCHEMA_U64;
  o.root_size = ((uint64_t)1 << 50) + 1;
  CHECK_EQ(mm3_file_open(path, &o, &f), MM3_ETOOBIG);
  /* A schema text over MM3_MAX_SCHEMA. */
  char *big = malloc(MM3_MAX_SCHEMA + 2);
  REQUIRE(big);
  memset(big, 'x', MM3_MAX_SCHEMA + 1);
  big[MM3_MAX_SCHEMA + 1] = 0;
  o.schema = big;
  o.root_size = 8;
  CHECK_EQ(mm3_file_open(path, &o, &f), MM3_EINVAL);
  free(big);
  CHECK(f == (mm3_file *)&fx);
  CHECK_EQ(file_size_on_disk(path), -1); /* nothing was created */
  const char *slash = strrchr(path, '/');
  char dir[256], prefix[300];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  snprintf(prefix, sizeof prefix, "%s.tmp", slash + 1);
  CHECK_EQ(count_prefixed(dir, prefix), 0);
}

/* The largest schema text that is allowed round-trips. */
FTEST(open_largest_schema) {
  char *big = malloc(MM3_MAX_SCHEMA + 1);
  REQUIRE(big);
  memset(big, 'y', MM3_MAX_SCHEMA);
  big[MM3_MAX_SCHEMA] = 0;
  const char *path;
  mm3_file *f = new_file("bigschema", big, 8, &path);
  if (f) {
    size_t len = 0;
    CHECK(strcmp(mm3_file_schema(f, &len), big) == 0);
    CHECK_EQ(len, MM3_MAX_SCHEMA);
    CHECK_EQ(mm3_file_root(f) - mm3_file_base(f), (long long)root_off_for(big));
    char *s = NULL;
    CHECK_RC(mm3_file_read_schema(path, &s, &len));
    CHECK(s && strcmp(s, big) == 0);
    free(s);
  }
  free(big);
}

FTEST(open_readonly) {
  const char *path;
  mm3_file *w = new_file("ro", SCHEMA_S, 16, &path);
  REQUIRE(w);
  uint64_t a = 99;
  memcpy(mm3_file_root(w), &a, 8);
  close_file(w);
  mm3_file *f = open_existing(path, 1);
  REQUIRE(f);
  CHECK_EQ(mm3_file_readonly(f), 1);
  uint64_t back;
  memcpy(&back, mm3_file_root(f), 8);
  CHECK_EQ(back, 99);
  uint64_t size = mm3_file_size(f);
  CHECK_EQ(mm3_file_grow(f, size * 4), MM3_EREADONLY);
  CHECK_EQ(mm3_file_size(f), size);
  CHECK_EQ(mm3_file_lock(f), MM3_EREADONLY);
  mm3_file_unlock(f); /* harmless */
  uint64_t v = 5;
  CHECK_EQ(mm3_file_write(f, mm3_file_root(f), &v, 8), MM3_EREADONLY);
  CHECK_RC(mm3_file_flush(f));
  CHECK_RC(mm3_file_refresh(f));
  char why[128];
  CHECK_RC(mm3_file_check(f, why, sizeof why));
  memcpy(&back, mm3_file_root(f), 8);
  CHECK_EQ(back, 99);
  /* A read-only handle next to a read-write one sees its writes. */
  mm3_file *rw = open_existing(path, 0);
  REQUIRE(rw);
  a = 1234;
  CHECK_RC(mm3_file_write(rw, mm3_file_root(rw), &a, 8));
  memcpy(&back, mm3_file_root(f), 8);
  CHECK_EQ(back, 1234);
  /* A file without write permission opens read-only (root ignores modes). */
  REQUIRE(chmod(path, 0444) == 0);
  mm3_file *r2 = open_existing(path, 1);
  CHECK(r2 != NULL);
  if (geteuid() != 0) CHECK_EQ(try_open(path, NULL, 0), EACCES);
}

FTEST(open_perm_bits) {
  mode_t old = umask(022);
  static const struct {
    unsigned perm;
    unsigned mode;
  } cases[] = {{0600, 0600}, {0640, 0640}, {0666, 0644}, {0, 0644}, {0400, 0400}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *path = tmp_path("perm");
    mm3_file_opts o = {0};
    o.create = 1;
    o.schema = SCHEMA_U64;
    o.root_size = 8;
    o.perm = cases[i].perm;
    mm3_file *f;
    CHECK_RC(open_file(path, &o, &f));
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_EQ(st.st_mode & 0777, cases[i].mode);
    if (f) close_file(f);
  }
  umask(077);
  const char *path = tmp_path("perm");
  mm3_file_opts o = {0};
  o.create = 1;
  o.schema = SCHEMA_U64;
  o.root_size = 8;
  mm3_file *f;
  CHECK_RC(open_file(path, &o, &f));
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK_EQ(st.st_mode & 0777, 0600);
  umask(old);
}

/* reserve bounds growth; it is rounded up to a page, and never below the
   file's size (then twice the size). */
FTEST(open_reserve) {
  const char *path = tmp_path("reserve");
  mm3_file_opts o = {0};
  o.create = 1;
  o.schema = SCHEMA_U64;
  o.root_size = 8;
  o.reserve = (1 << 20) - 100; /* rounded up to 1 MiB */
  mm3_file *f;
  CHECK_RC(open_file(path, &o, &f));
  REQUIRE(f);
  CHECK_RC(mm3_file_grow(f, 1 << 20));
  CHECK_EQ(mm3_file_size(f), 1 << 20);
  CHECK_EQ(mm3_file_grow(f, (1 << 20) + 1), MM3_ERESERVE);
  CHECK_EQ(mm3_file_size(f), 1 << 20);
  CHECK_EQ(file_size_on_disk(path), 1 << 20);
  close_file(f);
  /* A reserve smaller than the file: reserved twice the file. */
  mm3_file_opts r = {0};
  r.reserve = page();
  CHECK_RC(open_file(path, &r, &f));
  REQUIRE(f);
  CHECK_EQ(mm3_file_size(f), 1 << 20);
  CHECK_RC(mm3_file_grow(f, 2 << 20));
  CHECK_EQ(mm3_file_grow(f, (2 << 20) + page()), MM3_ERESERVE);
  CHECK_EQ(mm3_file_size(f), 2 << 20);
  /* Sizes that wrap when rounded up to a page: refused, nothing grown. */
  CHECK_EQ(mm3_file_grow(f, UINT64_MAX - 100), MM3_ERESERVE);
  CHECK_EQ(mm3_file_grow(f, UINT64_MAX), MM3_ERESERVE);
  CHECK_EQ(mm3_file_size(f), 2 << 20);
  close_file(f);
  /* A reserve no address space holds: the open fails (UINT64_MAX - 10:
     rounding it up wrapped to 0, which was taken as "twice the file"; 2^62,
     the largest asked for, which mmap refuses). */
  for (int i = 0; i < 2; i++) {
    mm3_file_opts h = {0};
    h.reserve = i ? UINT64_MAX - 10 : (uint64_t)1 << 62;
    mm3_file *g = NULL;
    CHECK_EQ(open_file(path, &h, &g), ENOMEM);
    CHECK(g == NULL);
  }
}

/* Where the default 64 GiB cannot be reserved (ulimit -v), it halves until it
   fits; an explicit reserve that does not fit fails with the mmap error. */
FTEST(open_default_reserve_shrinks) {
#if defined(__SANITIZE_ADDRESS__)
  CHECK(1); /* AddressSanitizer's shadow memory does not run under a small RLIMIT_AS */
#else
  const char *path = make_file("asreserve", SCHEMA_U64, 8);
  REQUIRE(path);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    struct rlimit rl = {(rlim_t)2 << 30, (rlim_t)2 << 30};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(10);
    mm3_file_opts o = {0};
    mm3_file *f = NULL;
    if (mm3_file_open(path, &o, &f) != 0) _exit(11); /* 64 GiB does not fit: a smaller reserve does */
    if (mm3_file_grow(f, 32 << 20) != 0) _exit(12);
    if (mm3_file_grow(f, (uint64_t)4 << 30) != MM3_ERESERVE) _exit(13);
    if (mm3_file_size(f) != (32 << 20)) _exit(14);
    mm3_file_close(f);
    o.reserve = (uint64_t)8 << 30; /* asked for: no halving */
    int rc = mm3_file_open(path, &o, &f);
    if (rc == 0) mm3_file_close(f);
    _exit(rc == ENOMEM ? 0 : 15);
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(file_size_on_disk(path), 32 << 20);
#endif
}

FTEST(open_schema_mismatch) {
  const char *path = make_file("schema", SCHEMA_S, 16);
  REQUIRE(path);
  CHECK_EQ(try_open(path, SCHEMA_U64, 0), MM3_ESCHEMA);
  CHECK_EQ(try_open(path, SCHEMA_U64, 1), MM3_ESCHEMA);
  /* Any difference counts: a prefix, an extension, one character. */
  CHECK_EQ(try_open(path, "struct S{a:u64;b:u32}", 0), MM3_ESCHEMA);
  CHECK_EQ(try_open(path, SCHEMA_S "\n", 0), MM3_ESCHEMA);
  CHECK_EQ(try_open(path, "struct S{a:u64;b:u16}\nroot S", 0), MM3_ESCHEMA);
  CHECK_EQ(try_open(path, SCHEMA_S, 0), 0);
  /* mm3_file_read_schema explains the mismatch. */
  char *s = NULL;
  size_t n = 0;
  CHECK_RC(mm3_file_read_schema(path, &s, &n));
  REQUIRE(s);
  CHECK(strcmp(s, SCHEMA_S) == 0);
  CHECK_EQ(n, strlen(SCHEMA_S));
  free(s);
}

FTEST(open_foreign_file) {
  static const char text[] = "hello, this is a plain text file and not a memmap3 file at all\n";
  const char *path = raw_file("foreign", text, sizeof text - 1);
  REQUIRE(path);
  CHECK_EQ(try_open(path, NULL, 0), MM3_EBADFILE);
  CHECK_EQ(try_open(path, NULL, 1), MM3_EBADFILE);
  CHECK_EQ(try_open(path, SCHEMA_U64, 0), MM3_EBADFILE);
  CHECK_EQ(try_read_schema(path), MM3_EBADFILE);
  /* create does not overwrite a non-empty foreign file */
  mm3_file_opts o = {0};
  o.create = 1;
  o.schema = SCHEMA_U64;
  o.root_size = 8;
  mm3_file *f = (mm3_file *)&fx;
  CHECK_EQ(mm3_file_open(path, &o, &f), MM3_EBADFILE);
  CHECK_EQ(file_size_on_disk(path), (int64_t)(sizeof text - 1));
  /* A long file of zeros, and a file shorter than the magic. */
  uint8_t zeros[4096] = {0};
  const char *z = raw_file("zeros", zeros, sizeof zeros);
  REQUIRE(z);
  CHECK_EQ(try_open(z, NULL, 0), MM3_EBADFILE);
  const char *tiny = raw_file("tiny", "MEMM", 4);
  REQUIRE(tiny);
  CHECK_EQ(try_open(tiny, NULL, 0), MM3_EBADFILE);
  CHECK_EQ(try_read_schema(tiny), MM3_EBADFILE);
  /* A directory is not a file, and says so (EISDIR, as a read-write open's
     open(2) does). */
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  CHECK_EQ(try_open(dir, NULL, 1), EISDIR);
  CHECK_EQ(try_read_schema(dir), EISDIR);
}

FTEST(open_empty_file) {
  const char *path = raw_file("empty", "", 0);
  REQUIRE(path);
  CHECK_EQ(try_open(path, NULL, 0), MM3_EBADFILE);
  CHECK_EQ(try_open(path, SCHEMA_U64, 0), MM3_EBADFILE);
  CHECK_EQ(try_open(path, NULL, 1), MM3_EBADFILE);
  CHECK_EQ(try_read_schema(path), MM3_EBADFILE);
  CHECK_EQ(file_size_on_disk(path), 0);
  /* create initialises an empty file in place (os.tmpname, touch). */
  mm3_file_opts o = {0};
  o.create = 1;
  o.schema = SCHEMA_S;
  o.root_size = 16;
  mm3_file *f;
  CHECK_RC(open_file(path, &o, &f));
  REQUIRE(f);
  CHECK(strcmp(mm3_file_schema(f, NULL), SCHEMA_S) == 0);
  CHECK_EQ(mm3_file_root_size(f), 16);
  CHECK_EQ(mm3_file_root(f) - mm3_file_base(f), (long long)root_off_for(SCHEMA_S));
  CHECK(all_zero(mm3_file_root(f), 16));
  CHECK_EQ(file_size_on_disk(path), (int64_t)mm3_file_size(f));
  char why[128];
  CHECK_RC(mm3_file_check(f, why, sizeof why));
  close_file(f);
  CHECK_EQ(try_open(path, SCHEMA_S, 1), 0);
}

FTEST(open_truncated) {
  /* root of 10000 bytes: a file of three pages */
  const char *path = make_file("trunc", "root u8[10000]", 10000);
  REQUIRE(path);
  int64_t full = file_size_on_disk(path);
  CHECK_EQ(full, (int64_t)round_up(root_off_for("root u8[10000]") + 10000, page()));
  REQUIRE(truncate(path, full - (int64_t)page()) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ETRUNCATED);
  CHECK_EQ(try_open(path, NULL, 1), MM3_ETRUNCATED);
  CHECK_EQ(try_read_schema(path), MM3_ETRUNCATED);
  REQUIRE(truncate(path, full - 1) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ETRUNCATED);
  REQUIRE(truncate(path, 1030) == 0); /* the header and part of the schema */
  CHECK_EQ(try_open(path, NULL, 0), MM3_ETRUNCATED);
  REQUIRE(truncate(path, 600) == 0); /* inside the header */
  CHECK_EQ(try_open(path, NULL, 0), MM3_ETRUNCATED);
  CHECK_EQ(try_read_schema(path), MM3_ETRUNCATED);
  REQUIRE(truncate(path, 8) == 0); /* the magic alone */
  CHECK_EQ(try_open(path, NULL, 0), MM3_ETRUNCATED);
  /* Longer than it says is fine (a grower died before publishing). */
  const char *p2 = make_file("long", SCHEMA_U64, 8);
  REQUIRE(p2);
  REQUIRE(truncate(p2, 3 * (off_t)page()) == 0);
  CHECK_EQ(try_open(p2, SCHEMA_U64, 0), 0);
}

FTEST(open_newer_version) {
  const char *path = make_file("version", SCHEMA_U64, 8);
  REQUIRE(path);
  uint32_t v = MM3_FORMAT_VERSION + 1;
  REQUIRE(patch(path, 8, &v, 4) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_EVERSION);
  CHECK_EQ(try_open(path, SCHEMA_U64, 1), MM3_EVERSION);
  CHECK_EQ(try_read_schema(path), MM3_EVERSION);
  v = 0xFFFFFFFFu;
  REQUIRE(patch(path, 8, &v, 4) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_EVERSION);
  v = 0; /* no such version */
  REQUIRE(patch(path, 8, &v, 4) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ECORRUPT);
  v = MM3_FORMAT_VERSION;
  REQUIRE(patch(path, 8, &v, 4) == 0);
  CHECK_EQ(try_open(path, NULL, 0), 0);
}

FTEST(open_other_byte_order) {
  const char *path = make_file("bom", SCHEMA_U64, 8);
  REQUIRE(path);
  uint32_t bom = 0x04030201u;
  REQUIRE(patch(path, 12, &bom, 4) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_EBYTEORDER);
  CHECK_EQ(try_read_schema(path), MM3_EBYTEORDER);
  bom = 0x12345678u;
  REQUIRE(patch(path, 12, &bom, 4) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ECORRUPT);
}

/* Each header field out of range, or a byte the header check covers. */
FTEST(open_corrupt_header) {
  const char *path = make_file("corrupt", SCHEMA_S, 16);
  REQUIRE(path);
  uint8_t orig[MM3_HEADER_SIZE + 64];
  REQUIRE(peek(path, 0, orig, sizeof orig) == 0);
  uint64_t size, root_off;
  memcpy(&size, orig + 16, 8);
  memcpy(&root_off, orig + 48, 8);
  static const struct {
    size_t off;
    uint64_t val;
    int width;
  } u64s[] = {
    {32, MM3_HEADER_SIZE + 8, 8},  /* schema offset */
    {40, 0, 8},                    /* schema length 0 */
    {40, MM3_MAX_SCHEMA + 1, 8},   /* schema length too large */
    {40, 2 * MM3_HEADER_SIZE, 8},  /* schema runs past the root */
    {56, (uint64_t)1 << 51, 8},    /* root size absurd */
  };
  for (size_t i = 0; i < sizeof u64s / sizeof u64s[0]; i++) {
    REQUIRE(patch(path, u64s[i].off, &u64s[i].val, 8) == 0);
    int rc = try_open(path, NULL, 0);
    if (rc != MM3_ECORRUPT) fprintf(stderr, "  field at %zu = %llu: %d\n", u64s[i].off, (unsigned long long)u64s[i].val, rc);
    CHECK_EQ(rc, MM3_ECORRUPT);
    CHECK_EQ(try_read_schema(path), MM3_ECORRUPT);
    REQUIRE(patch(path, u64s[i].off, orig + u64s[i].off, 8) == 0);
  }
  /* size not a multiple of the page; size below the end of the root; root
     offset not 64-aligned */
  uint64_t bad = size + 1;
  REQUIRE(patch(path, 16, &bad, 8) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ECORRUPT);
  bad = 0;
  REQUIRE(patch(path, 16, &bad, 8) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ECORRUPT);
  REQUIRE(patch(path, 16, orig + 16, 8) == 0);
  bad = root_off + 8;
  REQUIRE(patch(path, 48, &bad, 8) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ECORRUPT);
  REQUIRE(patch(path, 48, orig + 48, 8) == 0);
  CHECK_EQ(try_open(path, NULL, 0), 0);
  /* One flipped bit in each byte the header check covers: the version, the
     fingerprint, the root, the seed, the check itself, the schema text. */
  static const size_t flips[] = {24, 31, 52, 60, 64, 71, 72, 79, MM3_HEADER_SIZE, MM3_HEADER_SIZE + 5};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    uint8_t b = orig[flips[i]] ^ 0x01;
    REQUIRE(patch(path, flips[i], &b, 1) == 0);
    int rc = try_open(path, NULL, 0);
    if (rc != MM3_ECORRUPT) fprintf(stderr, "  byte %zu flipped: %d (%s)\n", flips[i], rc, mm3_strerror(rc));
    CHECK_EQ(rc, MM3_ECORRUPT);
    CHECK_EQ(try_read_schema(path), MM3_ECORRUPT);
    REQUIRE(patch(path, flips[i], orig + flips[i], 1) == 0);
  }
  /* A NUL inside the schema text (with a matching check would still differ
     from strlen): corrupt. */
  uint8_t nul = 0;
  REQUIRE(patch(path, MM3_HEADER_SIZE + 3, &nul, 1) == 0);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ECORRUPT);
  REQUIRE(patch(path, MM3_HEADER_SIZE + 3, orig + MM3_HEADER_SIZE + 3, 1) == 0);
  /* The live part of the header is not checked at open: the file opens, and
     mm3_file_check finds a heap top outside the file. */
  uint64_t top = (uint64_t)1 << 40;
  REQUIRE(patch(path, 144, &top, 8) == 0);
  mm3_file *f = open_existing(path, 0);
  REQUIRE(f);
  char why[128];
  CHECK_EQ(mm3_file_check(f, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "heap top") != NULL);
}

/* schema NULL accepts the file's own; it cannot create a file. */
FTEST(open_schema_null) {
  const char *path = make_file("nullschema", SCHEMA_S, 16);
  REQUIRE(path);
  mm3_file_opts o = {0};
  mm3_file *f;
  CHECK_RC(open_file(path, &o, &f));
  REQUIRE(f);
  CHECK(strcmp(mm3_file_schema(f, NULL), SCHEMA_S) == 0);
  CHECK_EQ(mm3_file_root_size(f), 16);
  o.create = 1; /* create without a schema opens what is there */
  mm3_file *g;
  CHECK_RC(open_file(path, &o, &g));
  REQUIRE(g);
  CHECK(strcmp(mm3_file_schema(g, NULL), SCHEMA_S) == 0);
  const char *missing = tmp_path("nullmissing");
  mm3_file *h = (mm3_file *)&fx;
  CHECK_EQ(mm3_file_open(missing, &o, &h), ENOENT);
  o.exclusive = 1;
  o.root_size = 8;
  CHECK_EQ(mm3_file_open(missing, &o, &h), MM3_EINVAL);
  CHECK(h == (mm3_file *)&fx);
  CHECK_EQ(file_size_on_disk(missing), -1);
  /* An empty file cannot be initialised without a schema. */
  const char *empty = raw_file("nullempty", "", 0);
  REQUIRE(empty);
  o.exclusive = 0;
  CHECK_EQ(mm3_file_open(empty, &o, &h), MM3_EBADFILE);
}

/* A creator's open of path (schema SCHEMA_S, 16-byte root), in a child: the
   result code. */
static int open_creating(const char *path, mm3_file **f) {
  mm3_file_opts o = {0};
  o.create = 1;
  o.schema = SCHEMA_S;
  o.root_size = 16;
  *f = NULL;
  return mm3_file_open(path, &o, f);
}

/* Creators racing on one path all open the same file (one wins the link). */
FTEST(open_racing_creators) {
  enum { N = 4 };
  const char *path = tmp_path("race");
  volatile uint64_t *seeds = shared_words();
  REQUIRE(seeds);
  pid_t pids[N];
  for (int i = 0; i < N; i++) {
    pids[i] = fork_child();
    REQUIRE(pids[i] >= 0);
    if (pids[i] == 0) {
      mm3_file *f;
      if (open_creating(path, &f)) _exit(10);
      seeds[i] = mm3_file_seed(f);
      uint8_t one = 1;
      int rc = mm3_file_write(f, mm3_file_root(f) + 8 + i, &one, 1); /* byte i of b */
      mm3_file_close(f);
      _exit(rc ? 11 : 0);
    }
  }
  for (int i = 0; i < N; i++) CHECK_EQ(wait_child(pids[i]), 0);
  mm3_file *f = open_existing(path, 1);
  REQUIRE(f);
  for (int i = 0; i < N; i++) CHECK_EQ(seeds[i], mm3_file_seed(f));
  for (int i = 0; i < N; i++) CHECK_EQ(mm3_file_root(f)[8 + i], 1); /* all wrote one file */
  const char *slash = strrchr(path, '/');
  char dir[256], prefix[300];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  snprintf(prefix, sizeof prefix, "%s.tmp", slash + 1);
  CHECK_EQ(count_prefixed(dir, prefix), 0);
}

/* Creators racing on an empty file (os.tmpname, touch) all open it: one
   initialises it, and the others wait for it, never taking its half-written
   header for a foreign file (MM3_EBADFILE). Before the fix 1-9 rounds in 40
   failed, and 40 rounds missed it 2 runs in 5 on 2 busy cores: 200 rounds. */
FTEST(open_racing_creators_empty_file) {
  enum { N = 4, ROUNDS = 200 };
  volatile uint64_t *w = shared_words(); /* w[0]: the start flag; w[1 + i]: child i's result */
  REQUIRE(w);
  const char *path = tmp_path("emptyrace");
  int bad_rounds = 0;
  for (int r = 0; r < ROUNDS; r++) {
    unlink(path); /* a new empty file each round */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    close(fd);
    w[0] = 0;
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
      w[1 + i] = 99;
      pids[i] = fork_child();
      REQUIRE(pids[i] >= 0);
      if (pids[i] == 0) {
        while (!w[0]) {
        }
        mm3_file *f;
        int rc = open_creating(path, &f);
        w[1 + i] = (uint64_t)rc;
        if (!rc) mm3_file_close(f);
        _exit(0);
      }
    }
    w[0] = 1;
    int bad = 0;
    for (int i = 0; i < N; i++) {
      CHECK_EQ(wait_child(pids[i]), 0);
      if (w[1 + i] != 0) bad = 1, fprintf(stderr, "    round %d: creator %d: %s\n", r, i, mm3_strerror((int)w[1 + i]));
    }
    bad_rounds += bad;
  }
  CHECK_EQ(bad_rounds, 0);
}

FTEST(read_schema) {
  const char *path = make_file("readschema", SCHEMA_S, 16);
  REQUIRE(path);
  char *s = NULL;
  size_t n = 0;
  CHECK_RC(mm3_file_read_schema(path, &s, &n));
  REQUIRE(s);
  CHECK(strcmp(s, SCHEMA_S) == 0);
  CHECK_EQ(n, strlen(SCHEMA_S));
  CHECK_EQ(s[n], 0);
  free(s);
  s = NULL;
  CHECK_RC(mm3_file_read_schema(path, &s, NULL)); /* len may be NULL */
  CHECK(s && strcmp(s, SCHEMA_S) == 0);
  free(s);
  /* While the file is open and written to. */
  mm3_file *f = open_existing(path, 0);
  REQUIRE(f);
  CHECK_RC(mm3_file_grow(f, 1 << 20));
  s = NULL;
  CHECK_RC(mm3_file_read_schema(path, &s, &n));
  CHECK(s && strcmp(s, SCHEMA_S) == 0);
  free(s);
  CHECK_EQ(try_read_schema(tmp_path("rsmissing")), ENOENT);
}

/* ========================================================================
 * Flush, growth, refresh
 * ======================================================================== */

FTEST(flush_reaches_the_file) {
  const char *path;
  mm3_file *f = new_file("flush", SCHEMA_S, 16, &path);
  REQUIRE(f);
  uint64_t a = 0x0102030405060708ULL;
  memcpy(mm3_file_root(f), &a, 8);
  CHECK_RC(mm3_file_flush(f));
  uint64_t back = 0;
  REQUIRE(peek(path, (uint64_t)(mm3_file_root(f) - mm3_file_base(f)), &back, 8) == 0);
  CHECK_EQ(back, a);
  /* After growing, the new extent is flushed too. */
  CHECK_RC(mm3_file_grow(f, 1 << 20));
  mm3_file_base(f)[(1 << 20) - 1] = 0x77;
  CHECK_RC(mm3_file_flush(f));
  uint8_t last = 0;
  REQUIRE(peek(path, (1 << 20) - 1, &last, 1) == 0);
  CHECK_EQ(last, 0x77);
}

/* Growing by 100 MiB never moves the data: pointers taken before stay valid
   and equal, the header publishes the size, and the size persists. */
FTEST(grow_keeps_data_in_place) {
  const char *path;
  mm3_file *f = new_file("grow", SCHEMA_S, 16, &path);
  REQUIRE(f);
  uint8_t *root = mm3_file_root(f), *base = mm3_file_base(f);
  uint64_t a = 0xDEADBEEFCAFEF00DULL;
  memcpy(root, &a, 8);
  uint64_t old = mm3_file_size(f);
  uint64_t want = old + ((uint64_t)100 << 20);
  CHECK_RC(mm3_file_grow(f, want));
  CHECK_EQ(mm3_file_size(f), want);
  CHECK_EQ(hdr_u64(f, 16), want);
  CHECK_EQ(file_size_on_disk(path), (int64_t)want);
  CHECK(mm3_file_root(f) == root);
  CHECK(mm3_file_base(f) == base);
  uint64_t back;
  memcpy(&back, root, 8);
  CHECK_EQ(back, a);
  /* The new extent is zeroed and writable right after the old end. */
  CHECK(all_zero(base + old, 4096));
  base[old] = 0x11;
  base[want - 1] = 0x22;
  /* Shrinking and not growing are no-ops; odd sizes round up to a page. */
  CHECK_RC(mm3_file_grow(f, 4096));
  CHECK_RC(mm3_file_grow(f, want));
  CHECK_EQ(mm3_file_size(f), want);
  CHECK_RC(mm3_file_grow(f, want + 1));
  CHECK_EQ(mm3_file_size(f), want + page());
  CHECK_EQ(file_size_on_disk(path), (int64_t)(want + page()));
  close_file(f);
  mm3_file *g = open_existing(path, 1);
  REQUIRE(g);
  CHECK_EQ(mm3_file_size(g), want + page());
  CHECK_EQ(mm3_file_base(g)[old], 0x11);
  CHECK_EQ(mm3_file_base(g)[want - 1], 0x22);
  memcpy(&back, mm3_file_root(g), 8);
  CHECK_EQ(back, a);
}

FTEST(grow_past_reserve) {
  const char *path = tmp_path("growres");
  mm3_file_opts o = {0};
  o.create = 1;
  o.schema = SCHEMA_U64;
  o.root_size = 8;
  o.reserve = 4 << 20;
  mm3_file *f;
  CHECK_RC(open_file(path, &o, &f));
  REQUIRE(f);
  uint64_t old = mm3_file_size(f);
  CHECK_EQ(mm3_file_grow(f, (4 << 20) + 1), MM3_ERESERVE);
  CHECK_EQ(mm3_file_grow(f, UINT64_MAX / 2), MM3_ERESERVE);
  CHECK_EQ(mm3_file_size(f), old);
  CHECK_EQ(hdr_u64(f, 16), old);
  CHECK_EQ(file_size_on_disk(path), (int64_t)old);
  CHECK_RC(mm3_file_grow(f, 4 << 20)); /* exactly the reserve fits */
  CHECK_EQ(mm3_file_size(f), 4 << 20);
}

FTEST(grow_readonly) {
  const char *path = make_file("growro", SCHEMA_U64, 8);
  REQUIRE(path);
  mm3_file *f = open_existing(path, 1);
  REQUIRE(f);
  uint64_t old = mm3_file_size(f);
  CHECK_EQ(mm3_file_grow(f, old + (1 << 20)), MM3_EREADONLY);
  CHECK_EQ(mm3_file_grow(f, 1), MM3_EREADONLY);
  CHECK_EQ(mm3_file_size(f), old);
  CHECK_EQ(file_size_on_disk(path), (int64_t)old);
}

/* A second handle sees the first one's growth after mm3_file_refresh. */
FTEST(refresh_sees_other_handle_growth) {
  const char *path;
  mm3_file *f = new_file("refresh", SCHEMA_U64, 8, &path);
  REQUIRE(f);
  mm3_file *g = open_existing(path, 0);
  mm3_file *r = open_existing(path, 1);
  REQUIRE(g && r);
  uint64_t old = mm3_file_size(f);
  CHECK_RC(mm3_file_refresh(g)); /* nothing changed */
  CHECK_EQ(mm3_file_size(g), old);
  CHECK_RC(mm3_file_grow(f, 8 << 20));
  mm3_file_base(f)[(8 << 20) - 1] = 0x5A;
  CHECK_EQ(mm3_file_size(g), old); /* not until refresh */
  CHECK_EQ(hdr_u64(g, 16), 8 << 20); /* but the published size is shared */
  CHECK_RC(mm3_file_refresh(g));
  CHECK_RC(mm3_file_refresh(r));
  CHECK_EQ(mm3_file_size(g), 8 << 20);
  CHECK_EQ(mm3_file_size(r), 8 << 20);
  CHECK_EQ(mm3_file_base(g)[(8 << 20) - 1], 0x5A);
  CHECK_EQ(mm3_file_base(r)[(8 << 20) - 1], 0x5A);
  CHECK_RC(mm3_file_refresh(g));
  CHECK_EQ(mm3_file_size(g), 8 << 20);
  /* Growing g refreshes first: it never shrinks what f grew. */
  CHECK_RC(mm3_file_grow(g, 4 << 20));
  CHECK_EQ(mm3_file_size(g), 8 << 20);
  /* Another process grows it. */
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file_opts o = {0};
    mm3_file *c = NULL;
    if (mm3_file_open(path, &o, &c)) _exit(10);
    if (mm3_file_grow(c, 16 << 20)) _exit(11);
    mm3_file_base(c)[(16 << 20) - 2] = 0x6B;
    mm3_file_close(c);
    _exit(0);
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(mm3_file_size(f), 8 << 20);
  CHECK_RC(mm3_file_refresh(f));
  CHECK_EQ(mm3_file_size(f), 16 << 20);
  CHECK_EQ(mm3_file_base(f)[(16 << 20) - 2], 0x6B);
}

/* A handle with a small reserve cannot follow growth past it. The header
   documents only "0 or an errno from mmap"; MM3_ERESERVE is what it says. */
FTEST(refresh_past_reserve) {
  const char *path;
  mm3_file *f = new_file("refreshres", SCHEMA_U64, 8, &path);
  REQUIRE(f);
  mm3_file_opts o = {0};
  o.reserve = 2 * page();
  mm3_file *g;
  CHECK_RC(open_file(path, &o, &g));
  REQUIRE(g);
  uint64_t old = mm3_file_size(g);
  CHECK_RC(mm3_file_grow(f, 1 << 20));
  CHECK_EQ(mm3_file_refresh(g), MM3_ERESERVE);
  CHECK_EQ(mm3_file_size(g), old);
  uint64_t v = 3;
  memcpy(mm3_file_root(f), &v, 8);
  uint64_t back;
  memcpy(&back, mm3_file_root(g), 8); /* what it has mapped still works */
  CHECK_EQ(back, 3);
}

/* ========================================================================
 * Truncation by another program (the SIGBUS guard)
 * ======================================================================== */

FTEST(truncated_by_another_program) {
  const char *path;
  mm3_file *f = new_file("cut", SCHEMA_U64, 8, &path);
  mm3_file *other = new_file("notcut", SCHEMA_U64, 8, NULL);
  REQUIRE(f && other);
  CHECK_RC(mm3_file_grow(f, 1 << 20));
  uint8_t *base = mm3_file_base(f);
  base[512 << 10] = 0x42;
  base[8191] = 0x43;
  CHECK_EQ(mm3_file_truncated(f), 0);
  REQUIRE(truncate(path, 8192) == 0); /* behind the mapping's back */
  CHECK_EQ(base[8191], 0x43);          /* what is still in the file reads as before */
  CHECK_EQ(mm3_file_truncated(f), 0);
  volatile uint8_t *lost = base + (512 << 10);
  CHECK_EQ(*lost, 0); /* a lost page reads zeros instead of raising SIGBUS */
  CHECK(mm3_file_truncated(f) != 0);
  lost[1] = 7; /* and a write there is dropped, not fatal */
  base[(1 << 20) - 1] = 9;
  CHECK_EQ(mm3_file_truncated(other), 0);
  close_file(f);
  CHECK_EQ(try_open(path, NULL, 0), MM3_ETRUNCATED);
}

/* Another program cuts the file into its first page while this process
   holds the lock (so the kernel zeroes the rest of that page, the lock's
   robust-list links with it): the unlock does not crash, and the file is
   flagged truncated. In a child, so that a crash fails the test. */
FTEST(truncated_into_first_page_while_locked) {
  static const off_t cuts[] = {50, 96, 97, 100, 104, 110, 112, 115, 119, 120};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    const char *path;
    mm3_file *f = new_file("cutlocked", SCHEMA_U64, 8, &path);
    REQUIRE(f);
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file *c = open_existing(path, 0);
      if (!c || mm3_file_lock(c) != 0) _exit(10);
      if (truncate(path, cuts[i]) != 0) _exit(11);
      mm3_file_unlock(c);
      if (!mm3_file_truncated(c)) _exit(12);
      int rc = mm3_file_lock(c); /* (the kind check refuses a cut under 97) */
      if (rc == 0) mm3_file_unlock(c);
      mm3_file_close(c);
      _exit(0);
    }
    int status = wait_child(pid);
    if (status != 0) fprintf(stderr, "    cut at %lld: child status %d\n", (long long)cuts[i], status);
    CHECK_EQ(status, 0);
    close_file(f);
  }
}

/* A SIGBUS that is not on a memmap3 file still reaches the handler that was
   there before (here the fixture's, then the default: the process dies of it). */
FTEST(truncated_guard_chains_other_faults) {
  mm3_file *f = new_file("guard", SCHEMA_U64, 8, NULL); /* the guard is installed */
  REQUIRE(f);
  const char *path = raw_file("plainmap", "0123456789", 10);
  REQUIRE(path);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = open(path, O_RDWR);
    if (fd < 0 || ftruncate(fd, 2 * (off_t)page()) != 0) _exit(10);
    volatile uint8_t *m = mmap(NULL, 2 * page(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED || ftruncate(fd, 0) != 0) _exit(11);
    (void)m[page()]; /* SIGBUS outside any memmap3 file */
    _exit(12);
  }
  int st = wait_child(pid);
#if defined(__SANITIZE_ADDRESS__)
  /* AddressSanitizer's handler reports it, then exits 1 or aborts */
  if (st == 1 || st == 128 + SIGABRT) st = 128 + SIGBUS;
#endif
  CHECK_EQ(st, 128 + SIGBUS);
  CHECK_EQ(mm3_file_truncated(f), 0);
}

/* ========================================================================
 * The writer lock
 * ======================================================================== */

/* Child: open path, announce, lock, record, unlock. */
static int lock_child(const char *path, volatile uint64_t *flags) {
  mm3_file_opts o = {0};
  mm3_file *c = NULL;
  if (mm3_file_open(path, &o, &c)) return 10;
  __atomic_store_n(&flags[0], 1, __ATOMIC_SEQ_CST);
  if (mm3_file_lock(c)) return 11;
  __atomic_store_n(&flags[1], 1, __ATOMIC_SEQ_CST);
  mm3_file_unlock(c);
  mm3_file_close(c);
  return 0;
}

FTEST(lock_recursive_and_exclusive) {
  const char *path;
  mm3_file *f = new_file("lock", SCHEMA_U64, 8, &path);
  REQUIRE(f);
  volatile uint64_t *flags = shared_words();
  REQUIRE(flags);
  CHECK_RC(mm3_file_lock(f));
  CHECK_RC(mm3_file_lock(f)); /* recursive */
  CHECK_RC(mm3_file_lock(f));
  mm3_file_unlock(f);
  mm3_file_unlock(f); /* held once still */
  /* Writes through the same handle go on while it is held. */
  uint64_t v = 41;
  CHECK_RC(mm3_file_write(f, mm3_file_root(f), &v, 8));
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(lock_child(path, flags));
  for (int i = 0; i < 5000 && !__atomic_load_n(&flags[0], __ATOMIC_SEQ_CST); i++) sleep_ms(1);
  CHECK_EQ(flags[0], 1);
  sleep_ms(200);
  CHECK_EQ(flags[1], 0); /* the child waits for the lock */
  mm3_file_unlock(f);
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(flags[1], 1);
  /* Unlocking a lock not held is harmless, and the lock still works. */
  mm3_file_unlock(f);
  mm3_file_unlock(f);
  flags[0] = flags[1] = 0;
  pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(lock_child(path, flags));
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(flags[1], 1);
  CHECK_RC(mm3_file_lock(f));
  mm3_file_unlock(f);
  uint64_t back;
  memcpy(&back, mm3_file_root(f), 8);
  CHECK_EQ(back, 41);
}

/* ========================================================================
 * Hashes
 * ======================================================================== */

FTEST(hash_keyed_by_seed) {
  static const char msg[] = "hello";
  uint64_t h1 = mm3_hash(1, msg, 5), h2 = mm3_hash(2, msg, 5);
  CHECK(h1 != h2);
  CHECK_EQ(mm3_hash(1, msg, 5), h1); /* deterministic */
  CHECK(mm3_hash(1, msg, 4) != h1);   /* the length counts */
  CHECK(mm3_hash(1, "", 0) != mm3_hash(1, "\0", 1));
  CHECK(mm3_hash(1, "hellO", 5) != h1);
  /* Prefixes of every length 0..24 (all tail cases, several blocks) hash
     differently from one another, and differently under another seed. */
  uint8_t buf[24];
  for (int i = 0; i < 24; i++) buf[i] = (uint8_t)(i * 37 + 1);
  uint64_t hs[25];
  for (int n = 0; n <= 24; n++) {
    hs[n] = mm3_hash(0x9e3779b97f4a7c15ULL, buf, (size_t)n);
    CHECK(hs[n] != mm3_hash(0x9e3779b97f4a7c16ULL, buf, (size_t)n));
    for (int m = 0; m < n; m++) CHECK(hs[n] != hs[m]);
  }
  /* Two files get different random seeds, read from their headers. */
  mm3_file *f = new_file("seed1", SCHEMA_U64, 8, NULL);
  mm3_file *g = new_file("seed2", SCHEMA_U64, 8, NULL);
  REQUIRE(f && g);
  CHECK(mm3_file_seed(f) != mm3_file_seed(g));
  CHECK_EQ(mm3_file_seed(f), hdr_u64(f, 64));
  CHECK_EQ(mm3_file_seed(g), hdr_u64(g, 64));
  CHECK(mm3_hash(mm3_file_seed(f), msg, 5) != mm3_hash(mm3_file_seed(g), msg, 5));
}

/* Stored map nodes keep their hashes: the function must never change. These
   values were checked against an independent SipHash-1-3 (CPython's, whose
   siphash13 matches a reference written from the paper) with the key
   k0 = seed, k1 = seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019. */
FTEST(hash_known_values) {
  CHECK(mm3_hash(0, "", 0) == 0xf819a905903b7e04ULL);
  CHECK(mm3_hash(0, "a", 1) == 0x0024849e2d5a4910ULL);
  CHECK(mm3_hash(0x0123456789abcdefULL, "hello", 5) == 0x45c259da925f5f84ULL);
  uint8_t seq[15];
  for (int i = 0; i < 15; i++) seq[i] = (uint8_t)i;
  CHECK(mm3_hash(42, seq, 15) == 0x87b0018f2ac3bbd9ULL);
  CHECK(mm3_hash(UINT64_MAX, "memmap3 keyed hash, 32 bytes lon", 32) == 0xece9a2c85ca53ac8ULL);
}

FTEST(fnv1a64_known_values) {
  CHECK(mm3_fnv1a64("", 0, MM3_FNV_OFFSET) == 0xcbf29ce484222325ULL);
  CHECK(mm3_fnv1a64("a", 1, MM3_FNV_OFFSET) == 0xaf63dc4c8601ec8cULL);
  CHECK(mm3_fnv1a64("foobar", 6, MM3_FNV_OFFSET) == 0x85944171f73967e8ULL);
  CHECK(mm3_fnv1a64("root u64", 8, MM3_FNV_OFFSET) == 0xc5e19ba17c0835a4ULL);
  /* Chaining: the hash of a concatenation continues from the first part. */
  CHECK(mm3_fnv1a64("bar", 3, mm3_fnv1a64("foo", 3, MM3_FNV_OFFSET)) == 0x85944171f73967e8ULL);
  /* The file's fingerprint is the schema text's. */
  mm3_file *f = new_file("fnv", SCHEMA_U64, 8, NULL);
  REQUIRE(f);
  CHECK(mm3_file_fingerprint(f) == 0xc5e19ba17c0835a4ULL);
}

/* ========================================================================
 * The file check
 * ======================================================================== */

/* A heap in use: a root "value" set a few times (blocks allocated and freed). */
static mm3_file *file_with_heap(const char *tag, mm3_ctype *t) {
  memset(t, 0, sizeof *t);
  t->kind = MM3_VALUE;
  if (mm3_ctype_init(t) != 0) return NULL;
  mm3_file *f = new_file(tag, "root value", t->size, NULL);
  if (!f) return NULL;
  char data[300];
  memset(data, 'v', sizeof data);
  for (size_t n = 10; n <= 300; n += 70)
    if (mm3_value_set(f, mm3_file_root(f), t, data, n) != 0) return NULL;
  return f;
}

FTEST(check_healthy) {
  char why[128] = "x";
  mm3_file *f = new_file("checkok", SCHEMA_S, 16, NULL);
  REQUIRE(f);
  CHECK_RC(mm3_file_check(f, why, sizeof why));
  CHECK_EQ(why[0], 0);
  CHECK_RC(mm3_file_check(f, NULL, 0));
  mm3_ctype t;
  mm3_file *g = file_with_heap("checkheap", &t);
  REQUIRE(g);
  CHECK_RC(mm3_file_check(g, why, sizeof why));
  CHECK_EQ(why[0], 0);
  CHECK(hdr_u64(g, 144) > (uint64_t)(mm3_file_root(g) - mm3_file_base(g))); /* the heap is in use */
  CHECK(hdr_u64(g, 544) > 0);
}

FTEST(check_damaged_heap_tag) {
  mm3_ctype t;
  mm3_file *f = file_with_heap("checktag", &t);
  REQUIRE(f);
  uint64_t off;
  memcpy(&off, mm3_file_root(f), 8); /* the value's block: tag, length, bytes */
  REQUIRE(off > 24);
  uint8_t *tag = mm3_file_base(f) + off - 8 - 16;
  uint64_t saved;
  memcpy(&saved, tag, 8);
  uint64_t junk = 0x4141414141414141ULL;
  memcpy(tag, &junk, 8);
  char why[128];
  CHECK_EQ(mm3_file_check(f, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "damaged tag") != NULL);
  CHECK_EQ(mm3_file_check(f, NULL, 0), MM3_ECORRUPT);
  char tiny[8];
  CHECK_EQ(mm3_file_check(f, tiny, sizeof tiny), MM3_ECORRUPT); /* truncated, terminated */
  CHECK_EQ(strlen(tiny), sizeof tiny - 1);
  /* A valid tag with a class too large for the heap. */
  uint64_t huge = (saved & ~(uint64_t)0xff) | 40;
  memcpy(tag, &huge, 8);
  CHECK_EQ(mm3_file_check(f, why, sizeof why), MM3_ECORRUPT);
  memcpy(tag, &saved, 8);
  CHECK_RC(mm3_file_check(f, why, sizeof why));
}

/* heap_top is not covered by the header check: a damaged one past the file
   (one whose top + block size wraps, one near 2^64) made the next allocation
   write its block tag outside the mapping. */
FTEST(damaged_heap_top_refused_at_alloc) {
  static const uint64_t tops[] = {0xFFFFFFFFFFFFF000ULL, 0xFFFFFFFFFFFFFFF0ULL, (uint64_t)1 << 40};
  for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
    mm3_ctype t;
    mm3_file *f = file_with_heap("heaptop", &t);
    REQUIRE(f);
    uint64_t saved = hdr_u64(f, 144);
    memcpy(mm3_file_base(f) + 144, &tops[i], 8);
    char big[4000];
    memset(big, 'w', sizeof big);
    CHECK_EQ(mm3_value_set(f, mm3_file_root(f), &t, big, sizeof big), MM3_ECORRUPT);
    CHECK_EQ(hdr_u64(f, 144), tops[i]); /* the failed operation changed nothing */
    memcpy(mm3_file_base(f) + 144, &saved, 8);
    CHECK_RC(mm3_value_set(f, mm3_file_root(f), &t, big, sizeof big));
    CHECK_RC(mm3_file_check(f, NULL, 0));
    close_file(f);
  }
}

FTEST(check_damaged_accounting) {
  mm3_ctype t;
  mm3_file *f = file_with_heap("checkacct", &t);
  REQUIRE(f);
  char why[128];
  uint8_t *base = mm3_file_base(f);
  uint64_t bytes = hdr_u64(f, 544);
  uint64_t wrong = bytes + 16;
  memcpy(base + 544, &wrong, 8);
  CHECK_EQ(mm3_file_check(f, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "header says") != NULL);
  memcpy(base + 544, &bytes, 8);
  /* A free list that points outside the heap. */
  uint64_t saved;
  memcpy(&saved, base + 160 + 8 * 3, 8);
  uint64_t bogus = mm3_file_size(f) - 16;
  memcpy(base + 160 + 8 * 3, &bogus, 8);
  CHECK_EQ(mm3_file_check(f, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "free list") != NULL);
  memcpy(base + 160 + 8 * 3, &saved, 8);
  /* An undo log longer than its capacity: a read-only open reports it; a
     writable one takes the lock first, whose recovery drops a log it cannot
     replay, and finds the rest whole. */
  uint64_t cap = hdr_u64(f, 568), len = cap + 8;
  memcpy(base + 560, &len, 8);
  mm3_file *ro = open_existing(mm3_file_path(f), 1);
  REQUIRE(ro);
  CHECK_EQ(mm3_file_check(ro, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "undo log") != NULL);
  CHECK_RC(mm3_file_check(f, why, sizeof why));
  CHECK_EQ(hdr_u64(f, 560), 0);
  CHECK_RC(mm3_file_check(ro, why, sizeof why));
}

FTEST(close_null) {
  mm3_file_close(NULL);
  mm3_file_close(NULL);
  CHECK(1); /* reaching here is the test: no crash */
}

RUN_TESTS(version_numbers, strerror_every_code, strerror_errno_success_unknown, open_create_new_file,
          open_reopen_keeps_data, open_create_existing_keeps_data, open_exclusive_eexist, open_missing_enoent,
          open_bad_arguments, open_largest_schema, open_readonly, open_perm_bits, open_reserve, open_default_reserve_shrinks,
          open_schema_mismatch, open_foreign_file, open_empty_file, open_truncated, open_newer_version,
          open_other_byte_order, open_corrupt_header, open_schema_null, open_racing_creators, open_racing_creators_empty_file, read_schema,
          flush_reaches_the_file, grow_keeps_data_in_place, grow_past_reserve, grow_readonly,
          refresh_sees_other_handle_growth, refresh_past_reserve, truncated_by_another_program, truncated_into_first_page_while_locked,
          truncated_guard_chains_other_faults, lock_recursive_and_exclusive,
          hash_keyed_by_seed, hash_known_values, fnv1a64_known_values, check_healthy, check_damaged_heap_tag,
          damaged_heap_top_refused_at_alloc,
          check_damaged_accounting, close_null)
