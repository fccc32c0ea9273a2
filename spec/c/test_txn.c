/*
 * test_txn.c - transactions, crash recovery and atomics through the public C
 * API: mm3_txn_*, mm3_file_write, mm3_file_set_durable, mm3_file_recovered,
 * and mm3_atomic_* on mapped memory, across real processes (fork, _exit,
 * SIGKILL).
 *
 * Every test runs inside mm3_fixture.h's fixture: its files are closed and
 * removed afterwards. Children open files of their own and leave with
 * _exit(); a child that deadlocks is ended by the alarm fork_child sets.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "memmap3.h"
#include "mm3_test.h"
#include "mm3_fixture.h"

/* The library's hooks for tests (src/mm3_internal.h): named points of a write,
   and allocations made to fail. */
extern void (*mm3__test_hook)(const char *point);
extern int (*mm3__test_fail)(const char *point);
extern uint32_t mm3__create_version;

/* ------------------------------------------------------------------------
 * The file most tests use: plain fields and containers in one struct
 * ------------------------------------------------------------------------ */

#define SCHEMA_T "struct T{a:u64;b:u64;c:u64;n:u64;v:vec<u32,8>;m:map<u64,u64>;x:value}\nroot T"

enum { OFF_A = 0, OFF_B = 8, OFF_C = 16, OFF_N = 24, OFF_V = 32, OFF_M = 72, OFF_X = 120, T_SIZE = 136 };

static mm3_ctype tv, tm, tx; /* vec<u32,8>, map<u64,u64>, value */

static int types_init(void) {
  memset(&tv, 0, sizeof tv);
  tv.kind = MM3_VEC;
  tv.elem_size = tv.elem_align = 4;
  tv.cap = 8;
  memset(&tm, 0, sizeof tm);
  tm.kind = MM3_HMAP;
  tm.elem_size = tm.elem_align = tm.key_size = tm.key_align = 8;
  memset(&tx, 0, sizeof tx);
  tx.kind = MM3_VALUE;
  if (mm3_ctype_init(&tv) || mm3_ctype_init(&tm) || mm3_ctype_init(&tx)) return -1;
  /* the struct's layout as the schema has it */
  return tv.size == OFF_M - OFF_V && tm.size == OFF_X - OFF_M && tx.size == T_SIZE - OFF_X ? 0 : -1;
}

static mm3_file *t_file(const char *tag, const char **path) {
  if (types_init() != 0) {
    CHECK(!"container layouts differ from the struct's");
    return NULL;
  }
  return new_file(tag, SCHEMA_T, T_SIZE, path);
}

/* A T file of format version 1, whose map takes a heap block a node: for
   the tests of the heap's frees and top moves that map nodes make there
   (a version 2 map takes its nodes from arenas of its own). */
static mm3_file *t_file_v1(const char *tag, const char **path) {
  mm3__create_version = 1;
  mm3_file *f = t_file(tag, path);
  mm3__create_version = 0;
  return f;
}

/* Two handles on a new T file (the second opened by path): a, or NULL. */
static mm3_file *t_pair(const char *tag, mm3_file **b, const char **path) {
  const char *p;
  mm3_file *a = t_file(tag, &p);
  *b = a ? open_existing(p, 0) : NULL;
  if (path) *path = p;
  return *b ? a : NULL;
}

static uint64_t get64(mm3_file *f, size_t off) {
  uint64_t v;
  memcpy(&v, mm3_file_root(f) + off, 8);
  return v;
}

static int put64(mm3_file *f, size_t off, uint64_t v) { return mm3_file_write(f, mm3_file_root(f) + off, &v, 8); }

/* A writer thread that dies (pthread_exit) holding the lock: its handle,
   and what its last call returned. */
typedef struct {
  mm3_file *f;
  int rc;
} dying_writer;

/* In a forked child: open path and begin a transaction there (exit 10 if
   either fails). */
static mm3_file *child_in_txn(const char *path) {
  mm3_file_opts o = {0};
  mm3_file *c = NULL;
  uint64_t sp;
  if (mm3_file_open(path, &o, &c) || mm3_txn_begin(c, &sp)) _exit(10);
  return c;
}

static uint8_t *cv(mm3_file *f) { return mm3_file_root(f) + OFF_V; }
static uint8_t *cm(mm3_file *f) { return mm3_file_root(f) + OFF_M; }
static uint8_t *cx(mm3_file *f) { return mm3_file_root(f) + OFF_X; }

/* The value's bytes as a NUL-terminated string in buf (or "<error>"). */
static const char *value_str(mm3_file *f, char *buf, size_t n) {
  uint64_t len = 0;
  if (mm3_value_get(f, cx(f), &tx, buf, n - 1, &len) != 0) return "<error>";
  buf[len] = 0;
  return buf;
}

static int map_get(mm3_file *f, uint64_t k, uint64_t *v) { return mm3_hmap_get(f, cm(f), &tm, &k, v, NULL); }
static int map_put(mm3_file *f, uint64_t k, uint64_t v) { return mm3_hmap_put(f, cm(f), &tm, &k, &v, NULL); }

static uint32_t vec_item(mm3_file *f, uint64_t i) {
  uint8_t *p = mm3_vec_at(f, cv(f), &tv, i);
  uint32_t v = 0xFFFFFFFFu;
  if (p) memcpy(&v, p, 4);
  return v;
}

static int file_ok(mm3_file *f) {
  char why[160];
  int rc = mm3_file_check(f, why, sizeof why);
  if (rc) fprintf(stderr, "  %s: mm3_file_check: %s\n", mm3t_current, why);
  return rc == 0;
}

static int containers_ok(mm3_file *f) {
  char why[160];
  int rc = mm3_container_check(f, cv(f), &tv, why, sizeof why);
  if (!rc) rc = mm3_container_check(f, cm(f), &tm, why, sizeof why);
  if (!rc) rc = mm3_container_check(f, cx(f), &tx, why, sizeof why);
  if (rc) fprintf(stderr, "  %s: mm3_container_check: %s\n", mm3t_current, why);
  return rc == 0;
}

/* Committed state most tests start from: a = 5, v = [1], m = {1: 10}, x = "old". */
static int seed_state(mm3_file *f) {
  uint32_t one = 1;
  return put64(f, OFF_A, 5) || mm3_vec_push(f, cv(f), &tv, &one) || map_put(f, 1, 10) ||
         mm3_value_set(f, cx(f), &tx, "old", 3);
}

/* Check the state seed_state left (after a rollback or a recovery). */
static void check_seed_state(mm3_file *f) {
  char buf[64];
  uint64_t v = 0;
  CHECK_EQ(get64(f, OFF_A), 5);
  CHECK_EQ(get64(f, OFF_B), 0);
  CHECK_EQ(mm3_container_len(f, cv(f), &tv), 1);
  CHECK_EQ(vec_item(f, 0), 1);
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), 1);
  CHECK_RC(map_get(f, 1, &v));
  CHECK_EQ(v, 10);
  CHECK_EQ(map_get(f, 2, &v), MM3_ENOTFOUND);
  CHECK(strcmp(value_str(f, buf, sizeof buf), "old") == 0);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
}

/* Writes of every kind on top of the seed state (inside a transaction). */
static int dirty_state(mm3_file *f) {
  uint32_t two = 2, nine = 9;
  int rc = put64(f, OFF_A, 6);
  if (!rc) rc = put64(f, OFF_B, 6);
  if (!rc) rc = mm3_vec_push(f, cv(f), &tv, &two);
  if (!rc) rc = mm3_vec_set(f, cv(f), &tv, 0, &nine);
  if (!rc) rc = map_put(f, 2, 20);
  if (!rc) rc = map_put(f, 1, 100);
  for (uint64_t k = 100; !rc && k < 140; k++) rc = map_put(f, k, k); /* the table grows */
  if (!rc) rc = mm3_value_set(f, cx(f), &tx, "new and longer", 14);
  return rc;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Wait until *w >= v (written by a child); 0 on success, -1 after 10 s. */
static int wait_for(volatile uint64_t *w, uint64_t v) {
  for (int i = 0; i < 10000; i++) {
    if (__atomic_load_n(w, __ATOMIC_SEQ_CST) >= v) return 0;
    sleep_ms(1);
  }
  return -1;
}

/* A child that opens path, takes the lock, writes c = 77, and exits 0. */
static int locker_child(const char *path) {
  mm3_file_opts o = {0};
  mm3_file *f = NULL;
  if (mm3_file_open(path, &o, &f)) return 10;
  if (mm3_file_lock(f)) return 11;
  uint64_t v = 77;
  int rc = mm3_file_write(f, mm3_file_root(f) + OFF_C, &v, 8);
  mm3_file_unlock(f);
  mm3_file_close(f);
  return rc ? 12 : 0;
}

/* The lock works again for this process and for another one. */
static void check_lock_usable(mm3_file *f, const char *path) {
  CHECK_RC(mm3_file_lock(f));
  mm3_file_unlock(f);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(put64(f, OFF_B, 4));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(get64(f, OFF_B), 4);
  CHECK_RC(put64(f, OFF_C, 0));
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(locker_child(path));
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(get64(f, OFF_C), 77);
  CHECK_EQ(mm3_txn_depth(f), 0);
}

/* ========================================================================
 * Transactions
 * ======================================================================== */

FTEST(txn_commit_keeps_writes) {
  const char *path;
  mm3_file *f = t_file("commit", &path);
  REQUIRE(f);
  CHECK_EQ(mm3_txn_depth(f), 0);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_EQ(mm3_txn_depth(f), 1);
  CHECK_RC(seed_state(f));
  CHECK_RC(dirty_state(f));
  CHECK(hdr_u64(f, 560) > 0); /* the undo log holds the transaction */
  CHECK_EQ(mm3_txn_depth(f), 1);
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(mm3_txn_depth(f), 0);
  CHECK_EQ(hdr_u64(f, 560), 0); /* and is empty after it */
  char buf[64];
  uint64_t v = 0;
  CHECK_EQ(get64(f, OFF_A), 6);
  CHECK_EQ(vec_item(f, 0), 9);
  CHECK_EQ(vec_item(f, 1), 2);
  CHECK_RC(map_get(f, 1, &v));
  CHECK_EQ(v, 100);
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), 42);
  CHECK(strcmp(value_str(f, buf, sizeof buf), "new and longer") == 0);
  CHECK(file_ok(f));
  close_file(f);
  mm3_file *g = open_existing(path, 0);
  REQUIRE(g);
  CHECK_EQ(mm3_file_recovered(g), 0);
  CHECK_EQ(get64(g, OFF_A), 6);
  CHECK_EQ(get64(g, OFF_B), 6);
  CHECK_RC(map_get(g, 2, &v));
  CHECK_EQ(v, 20);
  CHECK(strcmp(value_str(g, buf, sizeof buf), "new and longer") == 0);
  CHECK(containers_ok(g));
}

FTEST(txn_rollback_restores) {
  mm3_file *f = t_file("rollback", NULL);
  REQUIRE(f);
  REQUIRE(seed_state(f) == 0);
  uint64_t used = hdr_u64(f, 544), top = hdr_u64(f, 144);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(dirty_state(f));
  CHECK_EQ(get64(f, OFF_A), 6); /* visible inside the transaction */
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), 42);
  mm3_txn_rollback(f, sp);
  CHECK_EQ(mm3_txn_depth(f), 0);
  CHECK_EQ(hdr_u64(f, 560), 0);
  check_seed_state(f);
  CHECK_EQ(hdr_u64(f, 544), used); /* the heap is as it was */
  CHECK_EQ(hdr_u64(f, 144), top);
  CHECK_EQ(mm3_file_recovered(f), 0);
  /* and the file goes on working */
  CHECK_RC(map_put(f, 3, 30));
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), 2);
  CHECK(file_ok(f));
}

FTEST(txn_nested_savepoints) {
  mm3_file *f = t_file("nested", NULL);
  REQUIRE(f);
  uint64_t sp1, sp2, sp3;
  CHECK_RC(mm3_txn_begin(f, &sp1));
  CHECK_RC(put64(f, OFF_A, 1));
  CHECK_RC(map_put(f, 1, 1));
  CHECK_RC(mm3_txn_begin(f, &sp2));
  CHECK_EQ(mm3_txn_depth(f), 2);
  CHECK(sp2 > sp1); /* past the outer transaction's entries */
  CHECK_RC(put64(f, OFF_A, 2));
  CHECK_RC(put64(f, OFF_B, 2));
  CHECK_RC(map_put(f, 2, 2));
  mm3_txn_rollback(f, sp2); /* only the inner writes go */
  CHECK_EQ(mm3_txn_depth(f), 1);
  CHECK_EQ(get64(f, OFF_A), 1);
  CHECK_EQ(get64(f, OFF_B), 0);
  uint64_t v;
  CHECK_RC(map_get(f, 1, &v));
  CHECK_EQ(map_get(f, 2, &v), MM3_ENOTFOUND);
  CHECK_RC(mm3_txn_begin(f, &sp3));
  CHECK_EQ(mm3_txn_depth(f), 2);
  CHECK_RC(put64(f, OFF_B, 3));
  CHECK_RC(mm3_txn_commit(f)); /* inner commit: still inside the outer one */
  CHECK_EQ(mm3_txn_depth(f), 1);
  CHECK(hdr_u64(f, 560) > 0);
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(mm3_txn_depth(f), 0);
  CHECK_EQ(get64(f, OFF_A), 1);
  CHECK_EQ(get64(f, OFF_B), 3);
  CHECK_RC(map_get(f, 1, &v));
  CHECK_EQ(v, 1);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
}

/* An inner commit is undone by the outer rollback. */
FTEST(txn_inner_commit_outer_rollback) {
  mm3_file *f = t_file("innerouter", NULL);
  REQUIRE(f);
  REQUIRE(seed_state(f) == 0);
  uint64_t sp1, sp2, sp3;
  CHECK_RC(mm3_txn_begin(f, &sp1));
  CHECK_RC(put64(f, OFF_A, 50));
  CHECK_RC(mm3_txn_begin(f, &sp2));
  CHECK_RC(dirty_state(f));
  CHECK_RC(mm3_txn_begin(f, &sp3));
  CHECK_EQ(mm3_txn_depth(f), 3);
  CHECK_RC(put64(f, OFF_B, 51));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(mm3_txn_depth(f), 1);
  CHECK_EQ(get64(f, OFF_B), 51);
  mm3_txn_rollback(f, sp1);
  CHECK_EQ(mm3_txn_depth(f), 0);
  check_seed_state(f);
}

/* commit and rollback outside a transaction do nothing. */
FTEST(txn_end_without_begin) {
  mm3_file *f = t_file("nobegin", NULL);
  REQUIRE(f);
  CHECK_RC(put64(f, OFF_A, 8));
  CHECK_RC(mm3_txn_commit(f));
  mm3_txn_rollback(f, 0);
  CHECK_EQ(mm3_txn_depth(f), 0);
  CHECK_EQ(get64(f, OFF_A), 8);
  /* a commit too many after a real transaction */
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(put64(f, OFF_A, 9));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_RC(mm3_txn_commit(f));
  mm3_txn_rollback(f, sp);
  CHECK_EQ(get64(f, OFF_A), 9);
  CHECK_EQ(mm3_txn_depth(f), 0);
  CHECK(file_ok(f));
}

FTEST(txn_readonly) {
  const char *path;
  mm3_file *w = t_file("txnro", &path);
  REQUIRE(w);
  close_file(w);
  mm3_file *f = open_existing(path, 1);
  REQUIRE(f);
  uint64_t sp = 777;
  CHECK_EQ(mm3_txn_begin(f, &sp), MM3_EREADONLY);
  CHECK_EQ(sp, 777);
  CHECK_EQ(mm3_txn_depth(f), 0);
  CHECK_RC(mm3_txn_commit(f));
  mm3_txn_rollback(f, 0);
}

FTEST(txn_durable_commit) {
  const char *path;
  mm3_file *f = t_file("durable", &path);
  REQUIRE(f);
  mm3_file_set_durable(f, 1);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(put64(f, OFF_A, 0x0D0D0D0DULL));
  CHECK_RC(map_put(f, 5, 55));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(mm3_txn_depth(f), 0);
  /* on disk, read through a descriptor of our own */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  uint64_t back = 0;
  CHECK_EQ(pread(fd, &back, 8, mm3_file_root(f) + OFF_A - mm3_file_base(f)), 8);
  close(fd);
  CHECK_EQ(back, 0x0D0D0D0DULL);
  /* nested: only the outermost commit flushes, every one succeeds */
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(put64(f, OFF_B, 2));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_RC(mm3_txn_commit(f));
  mm3_file_set_durable(f, 0);
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(put64(f, OFF_B, 3));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(get64(f, OFF_B), 3);
  CHECK(file_ok(f));
}

/* A transaction that outgrows the first 64 KiB log: the log doubles, and a
   rollback still restores every byte. */
FTEST(txn_large_log) {
  enum { ROOT = 1 << 20, CHANGED = 512 << 10, PIECE = 4096 };
  mm3_file *f = new_file("largelog", "root u8[1048576]", ROOT, NULL);
  REQUIRE(f);
  uint8_t *root = mm3_file_root(f);
  uint8_t piece[PIECE];
  memset(piece, 0x5C, sizeof piece);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  for (int off = 0; off < CHANGED; off += PIECE) CHECK_RC(mm3_file_write(f, root + off, piece, PIECE));
  CHECK(hdr_u64(f, 568) >= CHANGED); /* log capacity */
  CHECK(hdr_u64(f, 560) >= CHANGED);
  CHECK_EQ(root[CHANGED - 1], 0x5C);
  mm3_txn_rollback(f, sp);
  CHECK(all_zero(root, ROOT));
  CHECK(file_ok(f));
  /* the same, committed */
  CHECK_RC(mm3_txn_begin(f, &sp));
  for (int off = 0; off < CHANGED; off += PIECE) CHECK_RC(mm3_file_write(f, root + off, piece, PIECE));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(root[0], 0x5C);
  CHECK_EQ(root[CHANGED - 1], 0x5C);
  CHECK_EQ(root[CHANGED], 0);
  CHECK(file_ok(f));
}

/* A transaction that allocates (a value set) and then outgrows the first log
   (a 100 KB write) is rolled back: the file checks clean and the bytes in
   use are as before (until 8933866 the rollback restored them to before the
   new log block was counted: "heap: N bytes in used blocks, header says M"). */
FTEST(txn_rollback_after_log_growth_keeps_heap_consistent) {
  mm3_file *f = new_file("loggrowth", "struct B{x:value;pad:u8[200000]}\nroot B", 16 + 200000, NULL);
  REQUIRE(f);
  REQUIRE(types_init() == 0);
  uint8_t *root = mm3_file_root(f);
  CHECK_RC(mm3_value_set(f, root, &tx, "before", 6));
  uint64_t used = hdr_u64(f, 544);
  CHECK(file_ok(f));
  static uint8_t big[100000];
  memset(big, 7, sizeof big);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(mm3_value_set(f, root, &tx, "hello", 5));
  CHECK_RC(mm3_file_write(f, root + 16, big, sizeof big));
  mm3_txn_rollback(f, sp);
  CHECK(all_zero(root + 16, sizeof big));
  char buf[16];
  uint64_t len = 0;
  CHECK_RC(mm3_value_get(f, root, &tx, buf, sizeof buf, &len));
  CHECK(len == 6 && memcmp(buf, "before", 6) == 0);
  CHECK(file_ok(f));
  /* what is in use: the value's block and the log (now a bigger one) */
  CHECK(hdr_u64(f, 544) >= used);
}

/* The same through crash recovery: a child allocates, outgrows the log, dies. */
FTEST(crash_recovery_after_log_growth_keeps_heap_consistent) {
  const char *path;
  mm3_file *f = new_file("crashgrowth", "struct B{x:value;pad:u8[200000]}\nroot B", 16 + 200000, &path);
  REQUIRE(f);
  REQUIRE(types_init() == 0);
  CHECK_RC(mm3_value_set(f, mm3_file_root(f), &tx, "before", 6));
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    static uint8_t big[100000];
    memset(big, 7, sizeof big);
    mm3_file *c = child_in_txn(path);
    if (mm3_value_set(c, mm3_file_root(c), &tx, "hello", 5)) _exit(11);
    if (mm3_file_write(c, mm3_file_root(c) + 16, big, sizeof big)) _exit(12);
    _exit(0); /* dies inside the transaction */
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK_RC(mm3_file_lock(f));
  mm3_file_unlock(f);
  CHECK_EQ(mm3_file_recovered(f), 1);
  CHECK(all_zero(mm3_file_root(f) + 16, 100000));
  CHECK(file_ok(f));
}

/* ========================================================================
 * What a transaction logs: the first change of each range of data that
 * existed when it began, nothing of the space it allocates
 * ======================================================================== */

/* Every key of the map holds model[key] (present[key] set), no other key is
   there, and the containers and the heap check clean. */
static void check_map_model(mm3_file *f, const uint8_t *present, const uint64_t *model, uint64_t nkeys) {
  uint64_t want = 0, bad = 0;
  for (uint64_t k = 1; k <= nkeys; k++) {
    uint64_t v = 0;
    int rc = map_get(f, k, &v);
    if (present[k]) want++;
    if (present[k] ? rc != 0 || v != model[k] : rc != MM3_ENOTFOUND) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), want);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
}

/* 1.2 million inserts into a map the transaction makes: the log stays in its
   first 64 KiB block (each insert logged about 270 bytes before: such a
   transaction failed after some 950,000 inserts, the log's 256 MiB full). */
FTEST(txn_million_inserts_log_stays_small) {
  enum { N = 1200000 };
  mm3_file *f = t_file("bigtxn", NULL);
  REQUIRE(f);
  uint64_t sp, v = 0;
  CHECK_RC(mm3_txn_begin(f, &sp));
  int rc = 0;
  for (uint64_t i = 1; i <= N && !rc; i++) rc = map_put(f, i, i * 3);
  CHECK_RC(rc);
  CHECK(hdr_u64(f, 568) <= (64 << 10)); /* the log's capacity */
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(hdr_u64(f, 560), 0);
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), N);
  CHECK_RC(map_get(f, 1, &v));
  CHECK_EQ(v, 3);
  CHECK_RC(map_get(f, N, &v));
  CHECK_EQ(v, 3 * (uint64_t)N);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
}

/* A big transaction over old data (changed twice, deleted), new entries (the
   table resized twice, old tables freed) and a field written a thousand
   times, rolled back: all of the old data is back, the bytes in use are as
   before, and the heap goes on working. */
FTEST(txn_big_rollback_restores_old_data) {
  enum { OLD = 2000, NEW = 100000 };
  static uint8_t present[NEW + 1];
  static uint64_t model[NEW + 1];
  mm3_file *f = t_file("bigundo", NULL);
  REQUIRE(f);
  for (uint64_t i = 1; i <= OLD; i++) {
    REQUIRE(map_put(f, i, i) == 0);
    present[i] = 1, model[i] = i;
  }
  REQUIRE(put64(f, OFF_A, 5) == 0);
  uint64_t used = hdr_u64(f, 544), sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  int rc = 0;
  for (uint64_t i = 1; i <= OLD && !rc; i++) rc = map_put(f, i, i + 1000000);
  for (uint64_t i = OLD + 1; i <= NEW && !rc; i++) rc = map_put(f, i, i);
  for (uint64_t i = 1; i <= OLD && !rc; i++) rc = map_put(f, i, 7);
  for (uint64_t i = 1; i <= OLD / 2 && !rc; i++) rc = mm3_hmap_del(f, cm(f), &tm, &i);
  for (uint64_t k = 0; k < 1000 && !rc; k++) rc = put64(f, OFF_A, k);
  CHECK_RC(rc);
  mm3_txn_rollback(f, sp);
  CHECK_EQ(get64(f, OFF_A), 5);
  check_map_model(f, present, model, NEW);
  CHECK_EQ(hdr_u64(f, 544), used); /* bytes in use */
  for (uint64_t i = OLD + 1; i <= 20000; i++) {
    REQUIRE(map_put(f, i, i) == 0);
    present[i] = 1, model[i] = i;
  }
  check_map_model(f, present, model, NEW);
}

/* A savepoint inside a big transaction: its rollback undoes its own writes,
   over entries the transaction made before it (which the transaction's own
   rollback would not need logged) as well. */
FTEST(txn_savepoint_inside_big_txn) {
  enum { N = 45000 };
  static uint8_t present[N + 1];
  static uint64_t model[N + 1];
  mm3_file *f = t_file("bigsave", NULL);
  REQUIRE(f);
  uint64_t sp, sp2;
  CHECK_RC(mm3_txn_begin(f, &sp));
  int rc = 0;
  for (uint64_t i = 1; i <= 20000 && !rc; i++) rc = map_put(f, i, i * 3);
  CHECK_RC(mm3_txn_begin(f, &sp2));
  for (uint64_t i = 20001; i <= 40000 && !rc; i++) rc = map_put(f, i, i);
  for (uint64_t i = 1; i <= 20000 && !rc; i++) rc = map_put(f, i, 0);
  for (uint64_t i = 1; i <= 100 && !rc; i++) rc = mm3_hmap_del(f, cm(f), &tm, &i);
  CHECK_RC(rc);
  mm3_txn_rollback(f, sp2);
  for (uint64_t i = 40001; i <= N && !rc; i++) rc = map_put(f, i, i * 3);
  CHECK_RC(rc);
  CHECK_RC(mm3_txn_commit(f));
  for (uint64_t i = 1; i <= N; i++)
    if (i <= 20000 || i > 40000) present[i] = 1, model[i] = i * 3;
  check_map_model(f, present, model, N);
}

/* Deletes inside a transaction free their nodes at its commit, and a
   savepoint begun and rolled back after them leaves those frees be: the
   bytes in use end as they do without the savepoint. (While it runs, an
   operation's frees carry positions in its own undo entries; a savepoint's
   position in the file's log may lie below them, and a rollback to it that
   took them for its own would drop the frees: the nodes would leak.) */
FTEST(txn_savepoint_rollback_keeps_earlier_frees) {
  uint64_t used[2];
  for (int with_savepoint = 0; with_savepoint < 2; with_savepoint++) {
    mm3_file *f = t_file(with_savepoint ? "freesave" : "freeplain", NULL);
    REQUIRE(f);
    uint64_t sp, sp2;
    CHECK_RC(mm3_txn_begin(f, &sp));
    int rc = 0;
    for (uint64_t i = 1; i <= 2248 && !rc; i++) rc = map_put(f, i, i); /* a resize under way */
    for (uint64_t i = 1; i <= 300 && !rc; i++) rc = mm3_hmap_del(f, cm(f), &tm, &i);
    CHECK_RC(rc);
    if (with_savepoint) {
      CHECK_RC(mm3_txn_begin(f, &sp2));
      CHECK_RC(map_put(f, 5000, 1));
      mm3_txn_rollback(f, sp2);
    }
    CHECK_RC(mm3_txn_commit(f));
    CHECK_EQ(mm3_container_len(f, cm(f), &tm), 1948);
    CHECK(containers_ok(f));
    CHECK(file_ok(f));
    used[with_savepoint] = hdr_u64(f, 544);
  }
  CHECK_EQ(used[1], used[0]);
}

/* Bytes in heap blocks left in use, reachable from nothing (mm3_file_usage),
   the figures checked to add up. */
static uint64_t leaked(mm3_file *f) {
  mm3_heap_usage u;
  CHECK_RC(mm3_file_usage(f, &u));
  CHECK_EQ(u.heap, u.used + u.free + u.log + u.leaked);
  CHECK_EQ(u.used, hdr_u64(f, 544)); /* the header's count of bytes in use */
  return u.leaked;
}

/* After a child died in a write: the next lock rolls its work back (once),
   and the file checks clean with nothing leaked. */
static void check_recovered_clean(mm3_file *f) {
  CHECK_RC(mm3_file_lock(f));
  mm3_file_unlock(f);
  CHECK_EQ(mm3_file_recovered(f), 1);
  CHECK(file_ok(f));
  CHECK(containers_ok(f));
  CHECK_EQ(leaked(f), 0);
}

/* Work for a transaction that outgrows the undo log's first block: new
   entries (allocated from the heap top, unlogged) interleaved with changes
   to OLD entries made before (each logged once), so that the log's bigger
   block lands above some of the new entries and below others. */
enum { GROW_OLD = 3000, GROW_NEW = 20000 };
static int grow_log_work(mm3_file *f, uint64_t from, uint64_t to) {
  int rc = 0;
  for (uint64_t i = from; i <= to && !rc; i++) {
    rc = map_put(f, 100000 + i, i);
    if (!rc) rc = map_put(f, i % GROW_OLD + 1, i);
  }
  return rc;
}

/* The model of the map the tests of a growing log check against. */
static uint8_t grow_present[GROW_NEW + 100001];
static uint64_t grow_model[GROW_NEW + 100001];

static mm3_file *grow_log_file(const char *tag, const char **path) {
  memset(grow_present, 0, sizeof grow_present);
  mm3_file *f = t_file(tag, path);
  for (uint64_t i = 1; f && i <= GROW_OLD; i++) {
    if (map_put(f, i, i)) return NULL;
    grow_present[i] = 1, grow_model[i] = i;
  }
  return f;
}

/* A transaction whose undo log grew, rolled back (whole, or to a savepoint
   inside it before it commits): what it allocated below the log's new block
   goes back to the free lists, as what it allocated above does. Before, the
   heap top stayed past the new block, and every block under it stayed tagged
   in use, reachable from nothing: 1.5 MB here, for good. */
FTEST(txn_rollback_after_log_grew_frees_its_blocks) {
  for (int variant = 0; variant < 2; variant++) {
    mm3_file *f = grow_log_file(variant ? "growsave" : "growroll", NULL);
    REQUIRE(f);
    CHECK_EQ(leaked(f), 0);
    uint64_t log0 = hdr_u64(f, 552), sp, sp2, before = hdr_u64(f, 544);
    CHECK_RC(mm3_txn_begin(f, &sp));
    if (variant) { /* kept: the first new entries */
      CHECK_RC(grow_log_work(f, 1, 100));
      for (uint64_t i = 1; i <= 100; i++) grow_present[100000 + i] = 1, grow_model[100000 + i] = i, grow_model[i % GROW_OLD + 1] = i;
      CHECK_RC(mm3_txn_begin(f, &sp2));
    }
    CHECK_RC(grow_log_work(f, variant ? 101 : 1, GROW_NEW));
    CHECK(hdr_u64(f, 552) != log0); /* the log grew */
    if (variant) {
      mm3_txn_rollback(f, sp2);
      CHECK_RC(mm3_txn_commit(f));
    } else {
      mm3_txn_rollback(f, sp);
      CHECK_EQ(hdr_u64(f, 544), before);
    }
    CHECK_EQ(leaked(f), 0);
    CHECK(containers_ok(f));
    CHECK(file_ok(f));
    check_map_model(f, grow_present, grow_model, GROW_NEW + 100000);
    /* the space is used again: the same work (outside a transaction, whose
       reuse of freed space would log, and grow the log), needs no more file */
    uint64_t size = mm3_file_size(f);
    CHECK_RC(grow_log_work(f, 1, GROW_NEW));
    CHECK_EQ(mm3_file_size(f), size);
    CHECK_EQ(leaked(f), 0);
    CHECK(file_ok(f));
  }
}

/* The same, for a process that dies in such a transaction: whoever takes
   the lock next rolls it back and frees what it took from the heap top,
   the log block the dead one replaced included (it alone knew of it). */
FTEST(txn_death_after_log_grew_leaks_nothing) {
  const char *path;
  mm3_file *f = grow_log_file("growdie", &path);
  REQUIRE(f);
  uint64_t log0 = hdr_u64(f, 552);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *c = child_in_txn(path);
    if (grow_log_work(c, 1, GROW_NEW)) _exit(11);
    _exit(hdr_u64(c, 552) != log0 ? 0 : 12); /* inside the transaction, its log grown */
  }
  CHECK_EQ(wait_child(pid), 0);
  check_recovered_clean(f);
  check_map_model(f, grow_present, grow_model, GROW_NEW + 100000);
}

/* A second handle of the file, in the same thread, holding the lock (as
   mm.lock on one view does) is closed while the first has a transaction
   open, rolled back to a savepoint after its log grew twice: the close must
   leave the log blocks that transaction replaced, and the heap it left
   below them, alone; the transaction then reuses freed space, and commits
   or rolls back. Before, the close freed them, the transaction got one
   back from its free list for a value, and its commit freed the live value
   (or its rollback left a free list through a block in use). */
FTEST(close_of_other_handle_leaves_a_txns_log_blocks) {
  for (int commit = 0; commit < 2; commit++) {
    const char *path;
    mm3_file *g = grow_log_file(commit ? "closecommit" : "closeroll", &path);
    REQUIRE(g);
    mm3_file *f = open_existing(path, 0);
    REQUIRE(f);
    CHECK_RC(mm3_file_lock(f));
    uint64_t sp0, sp1;
    CHECK_RC(mm3_txn_begin(g, &sp0));
    CHECK_RC(mm3_txn_begin(g, &sp1));
    CHECK_RC(grow_log_work(g, 1, GROW_NEW));
    CHECK(hdr_u64(g, 576) >= 2); /* two log blocks replaced */
    mm3_txn_rollback(g, sp1);
    close_file(f);
    static uint8_t big[100000];
    memset(big, 0xAB, sizeof big);
    CHECK_RC(mm3_value_set(g, cx(g), &tx, big, sizeof big)); /* a block of a replaced log's size */
    if (commit) {
      CHECK_RC(mm3_txn_commit(g));
      uint64_t len = 0;
      static uint8_t back[100000];
      CHECK_RC(mm3_value_get(g, cx(g), &tx, back, sizeof back, &len));
      CHECK(len == sizeof big && memcmp(back, big, sizeof big) == 0);
      CHECK_RC(grow_log_work(g, 1, 5000)); /* allocations go on: nothing hands the value's block out */
      CHECK_RC(mm3_value_get(g, cx(g), &tx, back, sizeof back, &len));
      CHECK(len == sizeof big && memcmp(back, big, sizeof big) == 0);
      for (uint64_t i = 1; i <= 5000; i++) grow_present[100000 + i] = 1, grow_model[100000 + i] = i, grow_model[i % GROW_OLD + 1] = i;
    } else {
      mm3_txn_rollback(g, sp0);
    }
    CHECK(file_ok(g));
    CHECK(containers_ok(g));
    CHECK_EQ(leaked(g), 0);
    check_map_model(g, grow_present, grow_model, GROW_NEW + 100000);
  }
}

static int die_in_thread(void *(*fn)(void *), mm3_file *f);

static void *gap_then_die(void *arg) {
  mm3_file *f = ((dying_writer *)arg)->f;
  uint64_t sp0, sp1;
  if (mm3_txn_begin(f, &sp0) || mm3_txn_begin(f, &sp1)) return NULL;
  if (grow_log_work(f, 1, GROW_NEW)) return NULL;
  mm3_txn_rollback(f, sp1); /* to 0: the log empty, the transaction open, a gap below the log */
  ((dying_writer *)arg)->rc = map_put(f, 2, 999); /* allocates nothing: no new entry for the top */
  pthread_exit(NULL);
}

/* A thread dies in a transaction after a rollback to its savepoint left a
   gap below the grown log: the handle that recovers the transaction frees
   that gap too. Before, the rollback cut the log's entry for the heap top,
   so recovery restored no top, found no gap, and the space stayed in use
   for good. */
FTEST(thread_dies_after_gap_recovery_frees_it) {
  const char *path;
  mm3_file *a = grow_log_file("gapdie", &path);
  REQUIRE(a);
  mm3_file *b = open_existing(path, 0);
  REQUIRE(b);
  CHECK_EQ(die_in_thread(gap_then_die, a), 0);
  CHECK_RC(put64(b, OFF_B, 1));
  CHECK_EQ(mm3_file_recovered(b), 1);
  check_map_model(b, grow_present, grow_model, GROW_NEW + 100000);
  CHECK(file_ok(b));
  CHECK(containers_ok(b));
  CHECK_EQ(leaked(b), 0);
}

static const char *die_point;
static void die_at_point(const char *point) {
  if (strcmp(point, die_point) == 0) _exit(0);
}

/* In a forked child: the file at path, opened to die (exit 0) when a write
   reaches the named test hook point. */
static mm3_file *child_dying_at(const char *path, const char *point) {
  mm3_file *c = open_existing(path, 0);
  if (!c) _exit(10);
  die_point = point;
  mm3__test_hook = die_at_point;
  return c;
}

/* A process dies at two points of its undo log's life that wrote the file
   unlogged: right after a rollback replayed its entries (the heap top
   restored below the grown log's block, not yet moved past it), and right
   after a bigger log block was allocated. The next opener's recovery leaves
   a file that checks clean, with nothing leaked. Before, the first left the
   log's block above the heap top ("undo log ... is not a heap block in
   use", and later allocations over it). (A log block was also counted in
   the bytes in use until just after this second point: a death there, when
   logging that count itself had grown the log, left the count too high. It
   is not counted at all now; this test does not reach that case.) */
FTEST(death_at_unlogged_log_steps_leaves_no_damage) {
  static const char *const points[] = {"log: replayed", "log: block made"};
  for (int i = 0; i < 2; i++) {
    const char *path;
    mm3_file *f = grow_log_file(i ? "deathgrow" : "deathreplay", &path);
    REQUIRE(f);
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file *c = child_in_txn(path);
      die_point = points[i];
      if (i == 1) mm3__test_hook = die_at_point; /* at the log's first growth */
      if (grow_log_work(c, 1, GROW_NEW)) _exit(11);
      mm3__test_hook = die_at_point;
      mm3_txn_rollback(c, 0);
      _exit(12); /* never: it dies inside */
    }
    CHECK_EQ(wait_child(pid), 0);
    check_recovered_clean(f);
    check_map_model(f, grow_present, grow_model, GROW_NEW + 100000);
    CHECK_RC(grow_log_work(f, 1, 3000)); /* and it is usable */
    CHECK(file_ok(f));
  }
}

/* A process dies after a rollback emptied its undo log but before it freed
   the gap the rollback left below the log's grown block: a transaction
   rolled back whole, and the recovery of a writer that died in one (the
   recovering process dies too). The next locker frees the gap from the
   header's note: nothing leaks. Before, the gap was noted in the dying
   process only, and its blocks stayed in use, named by nothing (288 KiB
   here, in both cases). */
FTEST(death_before_a_gap_is_freed_leaks_nothing) {
  for (int i = 0; i < 2; i++) {
    const char *path;
    mm3_file *f = grow_log_file(i ? "gaprecover" : "gaprollback", &path);
    REQUIRE(f);
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file *c = child_in_txn(path);
      if (grow_log_work(c, 1, GROW_NEW)) _exit(11);
      if (i) _exit(0); /* dies in the transaction: the next one recovers it */
      die_point = "gaps: to free";
      mm3__test_hook = die_at_point;
      mm3_txn_rollback(c, 0);
      _exit(12); /* never: it dies inside */
    }
    CHECK_EQ(wait_child(pid), 0);
    if (i) { /* the recovering process dies at the same point */
      pid = fork_child();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        mm3_file *c = child_dying_at(path, "gaps: to free");
        mm3_file_lock(c);
        _exit(12); /* never: it dies inside */
      }
      CHECK_EQ(wait_child(pid), 0);
    }
    CHECK(hdr_u64(f, 720) != 0); /* the note the dead process left */
    CHECK_RC(mm3_file_lock(f));
    mm3_file_unlock(f);
    CHECK_EQ(hdr_u64(f, 720), 0);
    CHECK_EQ(hdr_u64(f, 560), 0); /* (and no log to recover) */
    CHECK(file_ok(f));
    CHECK(containers_ok(f));
    CHECK_EQ(leaked(f), 0);
    check_map_model(f, grow_present, grow_model, GROW_NEW + 100000);
    CHECK_RC(grow_log_work(f, 1, 3000)); /* and it is usable */
    CHECK(file_ok(f));
  }
}

/* A process dies while an operation outside any transaction grows the undo
   log for its first entry (a 200 KiB write, more than the first block
   holds), before any allocation logged the heap top: right after the new
   block is cut from the top, and right after the old one is named as
   retired. Recovery leaves nothing leaked and the root as it was. Before,
   the first point left the new block allocated and named by nothing (a
   leak of 256 KiB), and the retired old block could not be freed while
   the log was still in it. */
FTEST(death_while_the_log_grows_leaks_nothing) {
  static const char *const points[] = {"log: block made", "log: old block retired"};
  enum { ROOT = 256 << 10, BIG = 200 << 10 };
  static uint8_t big[BIG];
  memset(big, 0xAB, sizeof big);
  for (int i = 0; i < 2; i++) {
    const char *path;
    mm3_file *f = new_file(i ? "growretired" : "growmade", "raw", ROOT, &path);
    REQUIRE(f);
    uint64_t one = 7;
    CHECK_RC(mm3_file_write(f, mm3_file_root(f), &one, 8)); /* the first log: 64 KiB */
    uint64_t log_before = hdr_u64(f, 552);
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file *c = child_dying_at(path, points[i]);
      mm3_file_write(c, mm3_file_root(c) + 8, big, sizeof big);
      _exit(12); /* never: it dies inside */
    }
    CHECK_EQ(wait_child(pid), 0);
    CHECK_RC(mm3_file_lock(f));
    mm3_file_unlock(f);
    CHECK_EQ(mm3_file_recovered(f), 1);
    CHECK(file_ok(f));
    CHECK_EQ(leaked(f), 0);
    const uint8_t *r = mm3_file_root(f);
    uint64_t first;
    memcpy(&first, r, 8);
    CHECK_EQ(first, 7);
    size_t changed = 0;
    for (size_t j = 8; j < 8 + BIG; j++) changed += r[j] != 0;
    CHECK_EQ(changed, 0);
    CHECK_EQ(hdr_u64(f, 576), 0); /* no block left retired */
    /* and the same write now succeeds, leaving no leak either */
    CHECK_RC(mm3_file_write(f, mm3_file_root(f) + 8, big, sizeof big));
    CHECK(hdr_u64(f, 552) != log_before);
    CHECK_EQ(leaked(f), 0);
    CHECK(file_ok(f));
  }
}

/* A process dies making a new file's first undo log (which no log can
   record), after cutting its block from the heap top and before the header
   names it. The next locker frees the block from the note of gaps: nothing
   leaks. Before, the block stayed in use, named by nothing (64 KiB). */
FTEST(death_making_the_first_log_leaks_nothing) {
  const char *path;
  mm3_file *f = new_file("firstlog", "raw", 4096, &path);
  REQUIRE(f);
  CHECK_EQ(hdr_u64(f, 552), 0); /* no log yet */
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *c = child_dying_at(path, "log: block made");
    uint64_t one = 7;
    mm3_file_write(c, mm3_file_root(c), &one, 8);
    _exit(12); /* never: it dies inside */
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(hdr_u64(f, 552), 0); /* the block made, not named */
  CHECK(mm3_file_seq(f) & 1);   /* it died writing, nothing logged yet */
  CHECK_RC(mm3_file_lock(f));
  /* the next locker makes the sequence even again (with nothing to roll
     back it stayed odd, and every later writer left it so: lock-free and
     read-only readers waited on it for ever) */
  CHECK_EQ(mm3_file_seq(f) & 1, 0);
  mm3_file_unlock(f);
  CHECK(file_ok(f));
  CHECK_EQ(leaked(f), 0);
  CHECK_EQ(hdr_u64(f, 720), 0);
  uint64_t one = 7, back = 0;
  uint64_t seq = mm3_file_seq(f);
  CHECK_RC(mm3_file_write(f, mm3_file_root(f), &one, 8)); /* and the write now succeeds */
  CHECK_EQ(mm3_file_seq(f), seq + 2); /* (odd while it ran, even after) */
  memcpy(&back, mm3_file_root(f), 8);
  CHECK_EQ(back, 7);
  CHECK(hdr_u64(f, 552) != 0);
  CHECK_EQ(hdr_u64(f, 720), 0);
  CHECK_EQ(leaked(f), 0);
  CHECK(file_ok(f));
}

/* A read-only handle has no lock to wait on: its reads retry while a write
   overlaps them. A writer descheduled in the middle of an operation (a busy
   machine) keeps the write sequence odd for milliseconds: here it sleeps
   300 ms inside its first write, and the read-only reads made meanwhile wait
   for its end and see what it wrote (before, they gave up after 1000 yields,
   a few milliseconds: MM3_EWRITERS). A writer that died there leaves the
   sequence odd with nobody holding the lock: reads fail with MM3_EWRITERS
   within milliseconds instead of waiting (the map lookup read unchecked
   before). */
static int sleep_pipe = -1;
static void sleep_at_point(const char *point) {
  if (strcmp(point, die_point) != 0) return;
  mm3__test_hook = NULL;
  if (write(sleep_pipe, "x", 1) != 1) _exit(13);
  struct timespec ms300 = {0, 300 * 1000 * 1000};
  nanosleep(&ms300, NULL);
}

static double now_s(void);

/* A new T file (open here) whose first write, a map put by a child, died
   making the file's first log: the write sequence left odd, nothing logged.
   NULL on failure (reported). */
static mm3_file *file_of_a_dead_put(const char *tag, const char **path) {
  mm3_file *g = t_file(tag, path);
  if (!g) return NULL;
  pid_t pid = fork_child();
  if (pid == 0) {
    mm3_file *c = child_dying_at(*path, "log: block made");
    map_put(c, 7, 77);
    _exit(12); /* never: it dies inside */
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK(mm3_file_seq(g) & 1);
  return g;
}

/* A child that opens path read-write and takes the lock, pausing 300 ms at
   point on the way: its pid once it is there (-1 on failure). */
static pid_t locker_paused_at(const char *path, const char *point) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork_child();
  if (pid == 0) {
    close(fds[0]);
    mm3_file *c = open_existing(path, 0);
    if (!c) _exit(10);
    sleep_pipe = fds[1];
    die_point = point;
    mm3__test_hook = sleep_at_point;
    if (mm3_file_lock(c)) _exit(11);
    mm3_file_unlock(c);
    _exit(0);
  }
  close(fds[1]);
  char x;
  int at = pid > 0 && read(fds[0], &x, 1) == 1;
  close(fds[0]);
  return at ? pid : -1;
}

FTEST(read_only_reads_wait_for_a_live_writer_not_for_a_dead_one) {
  /* a live writer, paused inside its first write (the file's first log) */
  const char *path;
  mm3_file *f = t_file("rolive", &path);
  REQUIRE(f);
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    mm3_file *c = open_existing(path, 0);
    if (!c) _exit(10);
    sleep_pipe = fds[1];
    die_point = "log: block made";
    mm3__test_hook = sleep_at_point;
    if (map_put(c, 7, 77) || mm3_value_set(c, cx(c), &tx, "hi", 2)) _exit(11);
    _exit(0);
  }
  close(fds[1]);
  char x;
  REQUIRE(read(fds[0], &x, 1) == 1);
  close(fds[0]);
  CHECK(mm3_file_seq(f) & 1); /* it is inside its write */
  mm3_file *r = open_existing(path, 1);
  REQUIRE(r);
  uint64_t v = 0;
  CHECK_RC(map_get(r, 7, &v)); /* waited for the put's end */
  CHECK_EQ(v, 77);
  CHECK_EQ(wait_child(pid), 0);
  char buf[16];
  CHECK(strcmp(value_str(r, buf, sizeof buf), "hi") == 0);

  /* a writer that died there */
  mm3_file *g = file_of_a_dead_put("rodead", &path);
  REQUIRE(g);
  r = open_existing(path, 1);
  REQUIRE(r);
  double t0 = now_s();
  for (int i = 0; i < 10; i++) {
    CHECK_EQ(map_get(r, 7, &v), MM3_EWRITERS);
    uint64_t len;
    CHECK_EQ(mm3_value_get(r, cx(r), &tx, buf, sizeof buf, &len), MM3_EWRITERS);
  }
  /* within milliseconds each, not after the seconds a live writer is waited for (20 reads) */
  CHECK(now_s() - t0 < 2.0); /* (about 11 ms each here) */
  /* and the next writer to lock makes the sequence even: reads work again */
  CHECK_RC(mm3_file_lock(g));
  mm3_file_unlock(g);
  CHECK_EQ(map_get(r, 7, &v), MM3_ENOTFOUND);

  /* so does a read-write open alone with the file, which may never write
     (before, a read-only check after it failed: torture, round 114) */
  g = file_of_a_dead_put("rodead2", &path);
  REQUIRE(g);
  close_file(g);
  /* (a read-only open alone with it cannot read it, nor make it readable) */
  mm3_file_opts ro = {0};
  ro.readonly = 1;
  CHECK_EQ(open_file(path, &ro, &r), MM3_ERECOVER);
  g = open_existing(path, 0);
  REQUIRE(g);
  CHECK_EQ(mm3_file_seq(g) & 1, 0);
  r = open_existing(path, 1);
  REQUIRE(r);
  CHECK_EQ(map_get(r, 7, &v), MM3_ENOTFOUND);
}

/* A writer dies inside a value's replacement ("old" by "UNCOMMITTED"),
   after its log has the old bytes; the next writer to lock rolls it back,
   pausing 300 ms first. A read-only read made meanwhile waits for the
   rollback and gives "old". Before, the next locker made the sequence even
   before its rollback, and the read gave "UNCOMMITTED" (a review's gdb
   session found it). */
FTEST(read_only_reads_wait_for_recovery_of_a_dead_writer) {
  const char *path;
  mm3_file *f = t_file("rorecover", &path);
  REQUIRE(f);
  CHECK_RC(mm3_value_set(f, cx(f), &tx, "old", 3)); /* (f stays open: a read-only open alone would refuse) */
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *c = child_dying_at(path, "op: frees made");
    mm3_value_set(c, cx(c), &tx, "UNCOMMITTED", 11);
    _exit(12); /* never: it dies inside */
  }
  CHECK_EQ(wait_child(pid), 0);
  mm3_file *r = open_existing(path, 1);
  REQUIRE(r);
  char buf[32];
  uint64_t len;
  CHECK_EQ(mm3_value_get(r, cx(r), &tx, buf, sizeof buf, &len), MM3_EWRITERS); /* a dead writer's */
  pid = locker_paused_at(path, "lock: recovering");
  REQUIRE(pid > 0);
  CHECK(strcmp(value_str(r, buf, sizeof buf), "old") == 0); /* waited for the rollback */
  CHECK_EQ(wait_child(pid), 0);
  CHECK(strcmp(value_str(r, buf, sizeof buf), "old") == 0);
}

/* A writer dies as it frees the gaps its emptied log left ("gaps: to
   free"); the next writer to lock frees them, pausing 300 ms inside a free.
   A read-only heap check meanwhile either finds the heap whole or saw the
   sequence odd or moved (mm.check then checks again). Before, the locker
   made the sequence even first and freed after: the check saw a half-made
   free with the sequence even and still ("6 free blocks, 5 on the free
   lists": damage that is not there; a review's test). */
FTEST(read_only_check_during_a_dead_writers_frees) {
  const char *path;
  mm3_file *f = grow_log_file("rogaps", &path);
  REQUIRE(f); /* (f stays open: the openers below are not alone) */
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *c = child_in_txn(path);
    if (grow_log_work(c, 1, GROW_NEW)) _exit(11);
    die_point = "gaps: to free";
    mm3__test_hook = die_at_point;
    mm3_txn_rollback(c, 0);
    _exit(12); /* never: it dies inside */
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK(hdr_u64(f, 720) != 0); /* gaps noted, not freed */
  mm3_file *r = open_existing(path, 1);
  REQUIRE(r);
  pid = locker_paused_at(path, "heap: tag freed");
  REQUIRE(pid > 0);
  uint64_t s1 = mm3_file_seq(r);
  char why[200];
  int rc = mm3_file_check(r, why, sizeof why);
  uint64_t s2 = mm3_file_seq(r);
  if (rc && !(s1 & 1) && s1 == s2) fprintf(stderr, "  %s: read-only check: %s\n", mm3t_current, why);
  CHECK(rc == 0 || (s1 & 1) || s1 != s2);
  CHECK_EQ(wait_child(pid), 0);
  CHECK_RC(mm3_file_check(r, why, sizeof why));
  CHECK_EQ(hdr_u64(f, 720), 0);
}

static int log_entries_left;
static int die_at_log_entry(const char *point) {
  if (strcmp(point, "log: entry") == 0 && --log_entries_left == 0) _exit(0);
  return 0;
}

/* Work on a map whose nodes are in arenas: a put_many (into the free list's
   nodes first, then the newest arena's, then a new arena), single puts,
   deletes (onto the free list), and a transaction that deletes and puts
   into the nodes it freed. Every value is k * 3. */
enum { ARENA_OLD = 1000, ARENA_NEW = 700 };
static int arena_work(mm3_file *c) {
  static uint64_t keys[ARENA_NEW], vals[ARENA_NEW];
  for (uint64_t i = 0; i < ARENA_NEW; i++) keys[i] = 5001 + i, vals[i] = (5001 + i) * 3;
  int rc = mm3_hmap_put_many(c, cm(c), &tm, ARENA_NEW, keys, vals, NULL);
  for (uint64_t k = 7001; k <= 7100 && !rc; k++) rc = map_put(c, k, k * 3);
  for (uint64_t k = 5001; k <= 5100 && !rc; k++) rc = mm3_hmap_del(c, cm(c), &tm, &k);
  uint64_t sp;
  if (!rc) rc = mm3_txn_begin(c, &sp);
  for (uint64_t k = 5101; k <= 5150 && !rc; k++) rc = mm3_hmap_del(c, cm(c), &tm, &k);
  for (uint64_t k = 8001; k <= 8100 && !rc; k++) rc = map_put(c, k, k * 3);
  if (!rc) rc = mm3_txn_commit(c);
  return rc;
}

/* A process dies at one undo entry after another of arena_work (each
   death a fresh file: 1000 keys in arenas, every third one deleted). The
   next to take the lock finds a map that checks clean (its arenas handed
   out exactly the nodes linked or free), nothing leaked, every key present
   holding k * 3, and the map usable. */
FTEST(death_in_arena_work_leaves_a_whole_map) {
  int done = 0, deaths = 0;
  for (int d = 1; !done && d < 40000; d += d < 40 ? 1 : d / 8) {
    const char *path;
    mm3_file *f = t_file("arenadie", &path);
    REQUIRE(f);
    for (uint64_t k = 1; k <= ARENA_OLD; k++) REQUIRE(map_put(f, k, k * 3) == 0);
    for (uint64_t k = 1; k <= ARENA_OLD; k += 3) REQUIRE(mm3_hmap_del(f, cm(f), &tm, &k) == 0);
    REQUIRE(((const uint64_t *)cm(f))[5] != 0); /* in arenas */
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file *c = open_existing(path, 0);
      if (!c) _exit(10);
      log_entries_left = d;
      mm3__test_fail = die_at_log_entry;
      int rc = arena_work(c);
      mm3__test_fail = NULL;
      _exit(rc ? 11 : 12); /* 12: it did all without dying */
    }
    int st = wait_child(pid);
    CHECK(st == 0 || st == 12);
    done = st == 12;
    deaths += st == 0;
    CHECK_RC(mm3_file_lock(f));
    mm3_file_unlock(f);
    CHECK(file_ok(f));
    CHECK(containers_ok(f));
    CHECK_EQ(leaked(f), 0);
    uint64_t present = 0, bad = 0, v;
    for (uint64_t k = 1; k <= 8100; k++) {
      int rc = map_get(f, k, &v);
      if (rc == 0) present++, bad += v != k * 3;
      else bad += rc != MM3_ENOTFOUND;
    }
    for (uint64_t k = 2; k <= ARENA_OLD; k++) bad += k % 3 != 1 && map_get(f, k, &v) != 0; /* the old keys stay */
    CHECK_EQ(bad, 0);
    CHECK_EQ(mm3_container_len(f, cm(f), &tm), present);
    for (uint64_t k = 9001; k <= 9300; k++) CHECK_RC(map_put(f, k, k)); /* and it goes on */
    CHECK(containers_ok(f));
    CHECK_EQ(leaked(f), 0);
    close_file(f);
  }
  CHECK(done);
  CHECK(deaths > 50);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A writer process begins a transaction, deletes some of its own keys,
   puts new ones (the table resizes, freed nodes are reused) and puts the
   deleted back, then rolls back, again and again; meanwhile this process
   looks up, without the lock, keys the writer never touches. Each must be
   found with its value: the rollback's replay passes through states that
   never were committed, and lookups wait for its end (the sequence is odd
   while it replays). Probabilistic: the lookups must come during a
   replay; without the odd sequence this failed in 1 run of 4 here (24711
   of 3M lookups found nothing), and a helper's longer runs saw 1 lookup in
   40 fail. A version 1 file (a heap block a node) showed it most. */
FTEST(lock_free_gets_never_see_a_rollback_half_done) {
  enum { STABLE = 2000 };
  const char *path;
  mm3_file *f = t_file_v1("rbread", &path);
  REQUIRE(f);
  volatile uint64_t *sh = shared_words();
  REQUIRE(sh);
  for (uint64_t k = 0; k < STABLE; k++) REQUIRE(map_put(f, k, k * 7 + 1) == 0);
  for (uint64_t k = 100000; k < 101000; k++) REQUIRE(map_put(f, k, k) == 0);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *c = open_existing(path, 0);
    if (!c) _exit(10);
    while (!sh[0]) {
      uint64_t sp;
      if (mm3_txn_begin(c, &sp)) _exit(11);
      for (uint64_t k = 100000; k < 101000; k += 2) mm3_hmap_del(c, cm(c), &tm, &k);
      for (uint64_t k = 200000; k < 203000; k++) map_put(c, k, k);
      for (uint64_t k = 100000; k < 101000; k += 2) map_put(c, k, k);
      mm3_txn_rollback(c, sp);
      sh[1]++;
      usleep(200); /* (a reader waiting for the lock gets it) */
    }
    _exit(0);
  }
  uint64_t x = 88172645463325252ull, gets = 0, wrong = 0;
  double t0 = now_s();
  while (now_s() - t0 < 3.0 || sh[1] < 3) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t k = x % STABLE, v = 0;
    wrong += map_get(f, k, &v) != 0 || v != k * 7 + 1;
    gets++;
    if (now_s() - t0 > 30) break;
  }
  sh[0] = 1;
  CHECK_EQ(wait_child(pid), 0);
  CHECK(sh[1] >= 3); /* rollbacks happened meanwhile */
  CHECK(gets > 10000);
  CHECK_EQ(wrong, 0);
  CHECK(containers_ok(f));
}

static int frees_left;
static void die_freeing(const char *point) {
  if (strcmp(point, "heap: freeing") == 0 && --frees_left == 0) _exit(0);
}

/* A T file with map keys 1..1000, and a transaction deleting 1..600 in it
   begun: 600 node blocks to free at its commit. */
static mm3_file *freeing_file(const char *tag, const char **path) {
  mm3_file *f = t_file_v1(tag, path);
  for (uint64_t i = 1; f && i <= 1000; i++)
    if (map_put(f, i, i)) return NULL;
  return f;
}
static int delete_600_in_txn(mm3_file *c) {
  uint64_t sp;
  int rc = mm3_txn_begin(c, &sp);
  for (uint64_t k = 1; k <= 600 && !rc; k++) rc = mm3_hmap_del(c, cm(c), &tm, &k);
  return rc;
}

/* A process dies while a commit puts the blocks it freed on the free lists
   (after the first block of a step of them, at several steps): the file
   checks clean after recovery, the deletes stay, and the blocks of the step
   it died in, and of those it did not reach, stay in use (counted,
   reachable from nothing: a leak), no more. Before,
   a death between a block's free tag and its list's head left a block on no
   list, which mm3_file_check reports as damage. */
FTEST(death_while_freeing_leaves_no_damage) {
  mm3_file *ctl = freeing_file("freectl", NULL);
  REQUIRE(ctl);
  CHECK_RC(delete_600_in_txn(ctl));
  CHECK_RC(mm3_txn_commit(ctl));
  uint64_t all_freed = hdr_u64(ctl, 544);
  static const int deaths[] = {1, 2, 5};
  for (size_t r = 0; r < sizeof deaths / sizeof *deaths; r++) {
    const char *path;
    mm3_file *f = freeing_file("freedie", &path);
    REQUIRE(f);
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file_opts o = {0};
      mm3_file *c = NULL;
      if (mm3_file_open(path, &o, &c) || delete_600_in_txn(c)) _exit(10);
      frees_left = deaths[r];
      mm3__test_hook = die_freeing;
      mm3_txn_commit(c);
      _exit(12); /* never: it dies inside */
    }
    CHECK_EQ(wait_child(pid), 0);
    check_recovered_clean(f);
    CHECK_EQ(mm3_container_len(f, cm(f), &tm), 400);
    /* the steps before the death freed 64 node blocks of 64 bytes each */
    CHECK_EQ(hdr_u64(f, 544) - all_freed, (uint64_t)(600 - 64 * (deaths[r] - 1)) * 64);
  }
}

/* A process dies at the end of a delete, its node block back on its free
   list but the operation's log not emptied yet: the next one to take the
   lock undoes the whole delete, the free with it (the key is there again,
   its block in use, the free list as it was). */
FTEST(death_after_an_ops_frees_undoes_the_op) {
  const char *path;
  mm3_file *f = freeing_file("opfree", &path);
  REQUIRE(f);
  uint64_t used = hdr_u64(f, 544);
  die_point = "op: frees made";
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *c = open_existing(path, 0);
    uint64_t k = 7;
    if (!c) _exit(10);
    mm3__test_hook = die_at_point;
    mm3_hmap_del(c, cm(c), &tm, &k);
    _exit(12); /* never: it dies inside */
  }
  CHECK_EQ(wait_child(pid), 0);
  check_recovered_clean(f);
  uint64_t v = 0;
  CHECK_RC(map_get(f, 7, &v));
  CHECK_EQ(v, 7);
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), 1000);
  CHECK_EQ(hdr_u64(f, 544), used);
}

static int top_moves_left;
static void die_at_top_move(const char *point) {
  if (strcmp(point, "heap: top moved") == 0 && --top_moves_left == 0) _exit(0);
}

/* In a forked child: open path (exit 10 if it cannot), set to die at the
   n-th heap top move. */
static mm3_file *child_dying_at_top_move(const char *path, int n) {
  mm3_file *c = open_existing(path, 0);
  if (!c) _exit(10);
  top_moves_left = n;
  mm3__test_hook = die_at_top_move;
  return c;
}

/* A writer dies in a transaction while this process has the file open (so
   no open rolls it back): mm3_file_check through a writable handle takes
   the lock first, which rolls the dead writer's work back, and checks the
   file as it was; mm3_container_check does the same. */
FTEST(check_rolls_back_a_dead_writer_first) {
  for (int container = 0; container < 2; container++) {
    const char *path;
    mm3_file *f = freeing_file("checkdead", &path);
    REQUIRE(f);
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file *c = child_in_txn(path);
      if (mm3_hmap_clear(c, cm(c), &tm) != 0) _exit(11);
      for (uint64_t k = 1; k <= 10; k++)
        if (map_put(c, k, 7) != 0) _exit(12);
      _exit(0); /* dies holding the lock, the transaction open */
    }
    CHECK_EQ(wait_child(pid), 0);
    char why[256];
    CHECK_EQ(mm3_file_recovered(f), 0);
    if (container) CHECK_RC(mm3_container_check(f, cm(f), &tm, why, sizeof why));
    else CHECK_RC(mm3_file_check(f, why, sizeof why));
    CHECK_EQ(mm3_file_recovered(f), 1);
    CHECK_EQ(mm3_container_len(f, cm(f), &tm), 1000);
    uint64_t v = 0;
    CHECK_RC(map_get(f, 5, &v));
    CHECK_EQ(v, 5);
    close_file(f);
  }
}

/* A writer dies just after cutting a block from the heap top (tagged in use,
   not counted yet) while this process has the file open: mm3_file_usage
   takes the lock first, which rolls that back, and counts no leak. */
FTEST(usage_rolls_back_a_dead_writer_first) {
  const char *path;
  mm3_file *f = freeing_file("usagedead", &path);
  REQUIRE(f);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    static char big[100000];
    memset(big, 'u', sizeof big);
    mm3_file *c = child_dying_at_top_move(path, 1);
    mm3_value_set(c, cx(c), &tx, big, sizeof big);
    _exit(12); /* never: it dies inside */
  }
  CHECK_EQ(wait_child(pid), 0);
  mm3_heap_usage u;
  CHECK_RC(mm3_file_usage(f, &u));
  CHECK_EQ(mm3_file_recovered(f), 1);
  CHECK_EQ(u.leaked, 0);
  CHECK(file_ok(f));
}

/* A writer grows the file past another open's reserve inside a transaction
   and dies. That open cannot map all the log may reach, so its lock fails
   (MM3_ERESERVE) and leaves the log alone; before, it dropped the log as
   damaged, and the dead transaction's writes stayed, half of them. An open
   that maps the whole file then rolls it all back. */
FTEST(dead_writer_past_reserve_left_for_a_bigger_open) {
  const char *path;
  mm3_file *f = freeing_file("deadpast", &path);
  REQUIRE(f);
  REQUIRE(put64(f, OFF_A, 5) == 0);
  mm3_file_opts so = {0};
  so.reserve = 4 << 20;
  mm3_file *small;
  REQUIRE(open_file(path, &so, &small) == 0);
  REQUIRE(mm3_file_size(f) < (4 << 20));
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *c = child_in_txn(path);
    static char big[8 << 20];
    memset(big, 'b', sizeof big);
    if (put64(c, OFF_A, 6) != 0 || mm3_hmap_clear(c, cm(c), &tm) != 0) _exit(11);
    if (mm3_value_set(c, cx(c), &tx, big, sizeof big) != 0) _exit(12); /* past 4 MiB */
    _exit(0); /* dies holding the lock, the transaction open */
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(mm3_file_lock(small), MM3_ERESERVE);
  CHECK(hdr_u64(f, 560) != 0); /* the log is still there */
  CHECK_EQ(mm3_file_recovered(small), 0);
  CHECK_RC(mm3_file_lock(f));
  mm3_file_unlock(f);
  CHECK_EQ(mm3_file_recovered(f), 1);
  CHECK_EQ(get64(f, OFF_A), 5);
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), 1000);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
  CHECK_EQ(leaked(f), 0);
  close_file(small);
}

/* A process dies part way through a put_many (a group of 16 puts logs the
   map's head once for all of them, and takes no savepoint per put): the next one to take
   the lock finds every group before the death whole and the dying group
   absent, the old entries as they were, and no space leaked. */
FTEST(death_in_a_put_many_group_undoes_the_group) {
  enum { N = 64 };
  static const int deaths[] = {1, 9, 16, 17, 30, 50};
  for (size_t r = 0; r < sizeof deaths / sizeof *deaths; r++) {
    const char *path;
    mm3_file *f = freeing_file("groupdie", &path);
    REQUIRE(f);
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      uint64_t keys[N], vals[N];
      for (uint64_t i = 0; i < N; i++) keys[i] = 2001 + i, vals[i] = (2001 + i) * 3;
      mm3_file *c = child_dying_at_top_move(path, deaths[r]);
      mm3_hmap_put_many(c, cm(c), &tm, N, keys, vals, NULL);
      _exit(12); /* never: it dies inside */
    }
    CHECK_EQ(wait_child(pid), 0);
    check_recovered_clean(f);
    int present = 0, bad = 0;
    for (uint64_t k = 1; k <= 1000; k++) {
      uint64_t v = 0;
      bad += map_get(f, k, &v) != 0 || v != k;
    }
    for (uint64_t k = 2001; k < 2001 + N; k++) {
      uint64_t v = 0;
      int rc = map_get(f, k, &v);
      if (rc == 0) present++, bad += v != k * 3 || k - 2001 >= (uint64_t)present; /* a prefix of the keys */
      else bad += rc != MM3_ENOTFOUND;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(present % 16, 0);
    CHECK(present < N);
    CHECK_EQ(mm3_container_len(f, cm(f), &tm), 1000 + (uint64_t)present);
    close_file(f);
  }
}

/* A process dies at many points of a big transaction (changes to old
   entries, new ones, deletes, a field, a savepoint), or at its end without a
   commit: the next one to take the lock finds the data as it was before. */
FTEST(txn_crash_in_big_txn_recovers_old_data) {
  enum { OLD = 500, NEW = 60000 };
  static uint8_t present[NEW + 1];
  static uint64_t model[NEW + 1];
  const char *path;
  mm3_file *f = t_file("bigcrash", &path);
  REQUIRE(f);
  for (uint64_t i = 1; i <= OLD; i++) {
    REQUIRE(map_put(f, i, i) == 0);
    present[i] = 1, model[i] = i;
  }
  REQUIRE(put64(f, OFF_A, 5) == 0);
  static const int deaths[] = {1, 2, 3, 5, 9, 17, 40, 120, 700, 5000, 30000, 0}; /* 0: at the end */
  for (uint64_t r = 0; r < sizeof deaths / sizeof *deaths; r++) {
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file *c = child_in_txn(path);
      uint64_t sp2;
      top_moves_left = deaths[r];
      mm3__test_hook = die_at_top_move;
      for (uint64_t i = 1; i <= NEW; i++) {
        uint64_t k = i, v = i * 5;
        if (i == NEW / 2 && mm3_txn_begin(c, &sp2)) _exit(11);
        if (mm3_hmap_put(c, cm(c), &tm, &k, &v, NULL)) _exit(12);
        if (i % 100 == 0 && mm3_file_write(c, mm3_file_root(c) + OFF_A, &v, 8)) _exit(13);
        k = i / 3;
        if (i % 3 == 0 && mm3_hmap_del(c, cm(c), &tm, &k)) _exit(14);
      }
      _exit(0); /* inside both transactions */
    }
    CHECK_EQ(wait_child(pid), 0);
    CHECK_RC(mm3_file_lock(f));
    mm3_file_unlock(f);
    CHECK_EQ(mm3_file_recovered(f), r + 1);
    CHECK_EQ(get64(f, OFF_A), 5);
    check_map_model(f, present, model, NEW);
  }
}

static long events_left;
static int fail_kth_event(const char *point) {
  (void)point;
  return --events_left == 0;
}

/* One script of map puts, put_many groups, deletes and value sets, inside a
   transaction or not, whose k-th allocation or undo log entry fails (for
   many k: an operation fails part way, after writes of its own): the
   operation that failed changes nothing (an entry of a put_many: that entry
   and the ones after it), the others all stay, and the transaction commits
   them. Inside a transaction, such an operation undoes writes the file's log
   does not hold (into tables and nodes the transaction made, and old data
   logged once already). */
static void failing_write_script(int in_txn) {
  enum { N = 3000, GROUP = 16 };
  static uint8_t present[N + GROUP + 1];
  static uint64_t model[N + GROUP + 1];
  mm3_file *f = t_file(in_txn ? "failtxn" : "failop", NULL);
  REQUIRE(f);
  int runs = 0;
  for (long k = 1; k <= 40000; k += k < 150 ? 1 : 97, runs++) {
    int checks_before = mm3t_failed_checks;
    REQUIRE(mm3_hmap_clear(f, cm(f), &tm) == 0);
    memset(present, 0, sizeof present);
    for (uint64_t i = 1; i <= 50; i++) {
      REQUIRE(map_put(f, i, i) == 0);
      present[i] = 1, model[i] = i;
    }
    REQUIRE(mm3_value_set(f, cx(f), &tx, "old", 3) == 0);
    char value[64] = "old", buf[64];
    uint64_t sp;
    if (in_txn) REQUIRE(mm3_txn_begin(f, &sp) == 0);
    events_left = k;
    mm3__test_fail = fail_kth_event;
    int failures = 0;
    for (uint64_t i = 1; i <= N; i++) {
      uint64_t key = i, v = i * 11;
      int rc;
      if (i % 200 == 0) { /* a group, which may fail part way */
        uint64_t keys[GROUP], vals[GROUP];
        size_t done = 0;
        for (int j = 0; j < GROUP; j++) keys[j] = i + (uint64_t)j, vals[j] = (i + (uint64_t)j) * 7;
        rc = mm3_hmap_put_many(f, cm(f), &tm, GROUP, keys, vals, &done);
        for (size_t j = 0; j < done; j++) present[keys[j]] = 1, model[keys[j]] = vals[j];
        CHECK(rc ? done < GROUP : done == GROUP);
      } else {
        rc = mm3_hmap_put(f, cm(f), &tm, &key, &v, NULL);
        if (!rc) present[i] = 1, model[i] = v;
      }
      if (rc == ENOMEM) failures++;
      else CHECK_RC(rc);
      if (i % 9 == 0) {
        key = i / 2;
        rc = mm3_hmap_del(f, cm(f), &tm, &key);
        if (!rc) present[key] = 0;
        else if (rc == ENOMEM) failures++;
        else CHECK_EQ(rc, present[key] ? 0 : MM3_ENOTFOUND);
      }
      if (i % 150 == 0) {
        char next[64];
        int len = snprintf(next, sizeof next, "value %llu %.*s", (unsigned long long)i, (int)(i % 40), "........................................");
        rc = mm3_value_set(f, cx(f), &tx, next, (uint64_t)len);
        if (!rc) memcpy(value, next, (size_t)len + 1);
        else if (rc == ENOMEM) failures++;
        else CHECK_RC(rc);
      }
    }
    mm3__test_fail = NULL;
    if (in_txn) CHECK_RC(mm3_txn_commit(f));
    if (events_left > 0) break; /* k is past the script's events */
    CHECK_EQ(failures, 1);
    check_map_model(f, present, model, N + GROUP);
    CHECK(strcmp(value_str(f, buf, sizeof buf), value) == 0);
    if (mm3t_failed_checks != checks_before) {
      fprintf(stderr, "  (event %ld failed)\n", k);
      break;
    }
  }
  CHECK(runs > 300); /* the script made that many events */
}

FTEST(failed_write_undoes_its_operation_only) { failing_write_script(0); }
FTEST(failed_write_in_txn_undoes_its_operation_only) { failing_write_script(1); }

/* ------------------------------------------------------------------------
 * Found by review of the transaction log economy (each failed before its fix)
 * ------------------------------------------------------------------------ */

/* Rolling a nested transaction back to an outer savepoint empties the log
   below the ranges the outer one had logged: a later change of one of them
   is logged again, and the outer rollback restores it. */
FTEST(txn_rollback_to_outer_savepoint_then_more_writes) {
  mm3_file *f = t_file("outersp", NULL);
  REQUIRE(f);
  REQUIRE(put64(f, OFF_A, 1) == 0);
  uint64_t a, b;
  CHECK_RC(mm3_txn_begin(f, &a));
  CHECK_RC(put64(f, OFF_A, 2));
  CHECK_RC(mm3_txn_begin(f, &b));
  CHECK_RC(put64(f, OFF_B, 5));
  mm3_txn_rollback(f, a); /* everything since a; depth 1 again */
  CHECK_EQ(get64(f, OFF_A), 1);
  CHECK_EQ(mm3_txn_depth(f), 1);
  CHECK_RC(put64(f, OFF_A, 3));
  mm3_txn_rollback(f, a);
  CHECK_EQ(get64(f, OFF_A), 1);
  CHECK_EQ(get64(f, OFF_B), 0);
  /* the outermost transaction rolled back to a savepoint inside it */
  CHECK_RC(mm3_txn_begin(f, &a));
  CHECK_RC(put64(f, OFF_A, 2));
  CHECK_RC(mm3_txn_begin(f, &b));
  CHECK_RC(mm3_txn_commit(f));
  CHECK_RC(put64(f, OFF_A, 3));
  mm3_txn_rollback(f, b); /* every write since b */
  CHECK_EQ(get64(f, OFF_A), 2);
  CHECK_EQ(mm3_txn_depth(f), 0);
  CHECK(file_ok(f));
}

/* fn(a) runs in a thread that ends inside it; then b takes the lock and
   recovers its work, and a is written through again. */
static void thread_dies_then_b_recovers(void *(*fn)(void *), mm3_file *a, mm3_file *b) {
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, fn, a) == 0);
  pthread_join(t, NULL);
  mm3__test_hook = NULL;
  CHECK_RC(put64(b, OFF_B, 1));
  CHECK_EQ(mm3_file_recovered(b), 1);
  CHECK_RC(put64(a, OFF_A, 2));
}

static void exit_thread_at_top_move(const char *point) {
  if (strcmp(point, "heap: top moved") == 0) pthread_exit(NULL);
}
static void *free_then_die_in_op(void *arg) {
  mm3_file *f = arg;
  uint64_t sp, k = 1000, v = 1;
  char big[200];
  memset(big, 'b', sizeof big);
  if (mm3_txn_begin(f, &sp) || mm3_value_set(f, cx(f), &tx, big, sizeof big)) return NULL; /* frees the old value */
  mm3__test_hook = exit_thread_at_top_move;
  mm3_hmap_put(f, cm(f), &tm, &k, &v, NULL); /* the thread ends inside this operation */
  return NULL;
}

/* A thread ends inside an operation of its transaction, after a free made
   earlier in it: once another handle recovers, the dead handle's next write
   does not free that block (which is live again), and the value stays whole
   while the heap is used on. */
FTEST(thread_dies_in_op_of_txn_its_frees_are_undone) {
  mm3_file *b;
  mm3_file *a = t_pair("threadop", &b, NULL);
  REQUIRE(a);
  static const char old[] = "the value before the dead transaction";
  REQUIRE(mm3_value_set(a, cx(a), &tx, old, sizeof old - 1) == 0);
  thread_dies_then_b_recovers(free_then_die_in_op, a, b);
  for (uint64_t k = 0; k < 64; k++) CHECK_RC(map_put(b, k, 0x4242424242424242ULL));
  char buf[64];
  CHECK(strcmp(value_str(b, buf, sizeof buf), old) == 0);
  CHECK(containers_ok(b));
  CHECK(file_ok(b));
}

/* The heap's bytes in use (header offset 544) after fn ran in a new T file
   made as setup says, and the file checked. */
static uint64_t bytes_in_use_after(void (*fn)(mm3_file *, int), int variant) {
  mm3_file *f = t_file_v1("inuse", NULL);
  if (!f) return 0;
  fn(f, variant);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
  return hdr_u64(f, 544);
}

/* Until the map is resizing. */
static void start_resize(mm3_file *f) {
  const uint64_t *g = (const uint64_t *)cm(f); /* count, tab[2], lg[2], rehash */
  uint64_t k = 0;
  do {
    REQUIRE(map_put(f, k, k) == 0);
    k++;
  } while (!g[4] || k < 100);
}

/* A traversal begun with MM3_HMAP_AS_IS under the lock, inside a
   transaction, walks a map in mid-resize as it is: every entry once, the
   resize still under way, nothing logged; a plain one finishes the resize
   first, logging the chains it moves. */
FTEST(hmap_next_as_is_walks_a_resize_unlogged) {
  mm3_file *f = t_file("asis", NULL);
  REQUIRE(f);
  start_resize(f);
  const uint64_t *g = (const uint64_t *)cm(f);
  uint64_t count = g[0], sp;
  static uint8_t seen[1 << 16];
  REQUIRE(count < sizeof seen);
  REQUIRE(mm3_txn_begin(f, &sp) == 0);
  REQUIRE(mm3_file_lock(f) == 0);
  uint64_t log0 = hdr_u64(f, 560), pos[3] = {MM3_HMAP_AS_IS, 0, 0}, n = 0;
  uint8_t *k, *v;
  int rc, bad = 0;
  while ((rc = mm3_hmap_next(f, cm(f), &tm, pos, &k, &v)) == 0) {
    uint64_t key, val;
    memcpy(&key, k, 8);
    memcpy(&val, v, 8);
    bad += key >= count || seen[key]++ || val != key;
    n++;
  }
  mm3_file_unlock(f);
  CHECK_EQ(rc, MM3_ENOTFOUND);
  CHECK_EQ(bad, 0);
  CHECK_EQ(n, count);
  CHECK(g[4] != 0); /* still resizing */
  CHECK_EQ(hdr_u64(f, 560), log0);
  uint64_t plain[3] = {0, 0, 0};
  CHECK_RC(mm3_hmap_next(f, cm(f), &tm, plain, &k, &v));
  CHECK_EQ(g[4], 0); /* finished */
  CHECK(hdr_u64(f, 560) > log0);
  CHECK_RC(mm3_txn_commit(f));
  CHECK(containers_ok(f));
}

/* A traversal finishes the resize (freeing the old table), a write logged
   already, an empty savepoint: with or without the savepoint, the same
   bytes end in use (a free's position in the log equalled the savepoint's,
   and the savepoint's rollback dropped it). */
static void free_then_empty_savepoint(mm3_file *f, int with_savepoint) {
  start_resize(f);
  uint64_t sp, sp2, pos[3] = {0, 0, 0};
  uint8_t *k, *v;
  REQUIRE(mm3_txn_begin(f, &sp) == 0);
  CHECK_RC(put64(f, OFF_A, 1));
  CHECK_RC(mm3_hmap_next(f, cm(f), &tm, pos, &k, &v));
  CHECK_EQ(((const uint64_t *)cm(f))[4], 0); /* the resize is done */
  CHECK_RC(put64(f, OFF_A, 2));
  if (with_savepoint) {
    CHECK_RC(mm3_txn_begin(f, &sp2));
    mm3_txn_rollback(f, sp2);
  }
  CHECK_RC(mm3_txn_commit(f));
}

/* In a nested transaction, a value set (freeing the old block), then an
   operation that fails (a delete of a missing key). */
static void free_then_failed_op(mm3_file *f, int fail) {
  char s[100];
  memset(s, 'x', sizeof s);
  REQUIRE(mm3_value_set(f, cx(f), &tx, s, 100) == 0);
  uint64_t sp0, sp1, key = 12345;
  REQUIRE(mm3_txn_begin(f, &sp0) == 0 && mm3_txn_begin(f, &sp1) == 0);
  CHECK_RC(mm3_value_set(f, cx(f), &tx, s, 50));
  if (fail) CHECK_EQ(mm3_hmap_del(f, cm(f), &tm, &key), MM3_ENOTFOUND);
  CHECK_RC(mm3_txn_commit(f));
  CHECK_RC(mm3_txn_commit(f));
}

static int fail_allocations;
static int fail_alloc_now(const char *point) { return fail_allocations && strcmp(point, "heap: alloc") == 0; }

/* A put_many of two keys whose group's share of a resize finishes it
   (freeing the old table), its entries' allocations failing (variant & 2)
   or not, in a transaction (variant & 1) or not: the finished resize stays,
   and so does the free. */
static void resize_done_then_put(mm3_file *f, int variant) {
  const uint64_t *g = (const uint64_t *)cm(f); /* count, tab[2], lg[2], rehash */
  uint64_t k = 0;
  for (;;) { /* until at most 8 buckets of a resize are left */
    REQUIRE(map_put(f, k++, 1) == 0);
    uint64_t lg0 = g[3] & 0xFFFFFFFFu;
    if (g[4] && ((uint64_t)1 << lg0) - (g[4] - 1) <= 8 && lg0 >= 6) break;
  }
  uint64_t sp, keys[2] = {1u << 30, (1u << 30) + 1}, vals[2] = {7, 8};
  size_t done = 9;
  if (variant & 1) REQUIRE(mm3_txn_begin(f, &sp) == 0);
  fail_allocations = variant & 2;
  mm3__test_fail = fail_alloc_now;
  int rc = mm3_hmap_put_many(f, cm(f), &tm, 2, keys, vals, &done);
  mm3__test_fail = NULL;
  fail_allocations = 0;
  CHECK_EQ(rc, variant & 2 ? ENOMEM : 0);
  CHECK_EQ(done, variant & 2 ? 0 : 2);
  CHECK_EQ(g[4], 0); /* the resize finished */
  if (variant & 1) CHECK_RC(mm3_txn_commit(f));
}

FTEST(frees_survive_savepoints_at_their_log_position) {
  CHECK_EQ(bytes_in_use_after(free_then_empty_savepoint, 1), bytes_in_use_after(free_then_empty_savepoint, 0));
  CHECK_EQ(bytes_in_use_after(free_then_failed_op, 1), bytes_in_use_after(free_then_failed_op, 0));
  uint64_t node = 16;
  while (node < tm.node_size + 16) node *= 2; /* a node's block */
  for (int in_txn = 0; in_txn < 2; in_txn++)
    CHECK_EQ(bytes_in_use_after(resize_done_then_put, in_txn | 2) + 2 * node,
             bytes_in_use_after(resize_done_then_put, in_txn));
}

/* A single put that fails changes nothing at all, not even its share of a
   resize under way (which a put_many's failed entry keeps: what was put
   before it stays). */
FTEST(failed_single_put_changes_nothing) {
  mm3_file *f = t_file_v1("putnothing", NULL);
  REQUIRE(f);
  start_resize(f);
  uint8_t head[48];
  memcpy(head, cm(f), sizeof head);
  uint64_t used = hdr_u64(f, 544), key = 1u << 30, v = 1;
  fail_allocations = 1;
  mm3__test_fail = fail_alloc_now;
  CHECK_EQ(mm3_hmap_put(f, cm(f), &tm, &key, &v, NULL), ENOMEM);
  mm3__test_fail = NULL;
  fail_allocations = 0;
  CHECK(memcmp(head, cm(f), sizeof head) == 0);
  CHECK_EQ(hdr_u64(f, 544), used);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
}

static int allocs_to_fail;
static int fail_first_allocs(const char *point) {
  return strcmp(point, "heap: alloc") == 0 && allocs_to_fail > 0 && allocs_to_fail--;
}

/* A put_many that cannot have its table sized for all its keys at once (the
   allocation fails) is no error: its puts grow the table as single puts do,
   and every key is put. */
FTEST(put_many_without_its_table_still_puts) {
  enum { N = 20000 };
  static uint64_t keys[N];
  for (int variant = 0; variant < 2; variant++) { /* the sizing fails (1) or not */
    mm3_file *f = t_file(variant ? "presizefail" : "presize", NULL);
    REQUIRE(f);
    for (uint64_t i = 0; i < N; i++) keys[i] = i * 7;
    REQUIRE(map_put(f, 1, 1) == 0); /* the map has its first, small table */
    allocs_to_fail = variant;
    mm3__test_fail = fail_first_allocs;
    size_t done = 0;
    int rc = mm3_hmap_put_many(f, cm(f), &tm, N, keys, keys, &done);
    mm3__test_fail = NULL;
    CHECK_RC(rc);
    CHECK_EQ(done, N);
    CHECK_EQ(allocs_to_fail, 0);
    CHECK_EQ(mm3_container_len(f, cm(f), &tm), N + 1);
    int bad = 0;
    for (uint64_t i = 0; i < N; i++) {
      uint64_t v = 0;
      bad += map_get(f, i * 7, &v) != 0 || v != i * 7;
    }
    CHECK_EQ(bad, 0);
    mm3_heap_usage u;
    CHECK_RC(mm3_file_usage(f, &u));
    /* the first group's puts grew the table one doubling at a time, and
       left the tables they outgrew free; the next group's sizing worked */
    if (variant) CHECK(u.free > 1024);
    else CHECK_EQ(u.free, 128); /* the first table (8 buckets) only */
    CHECK(containers_ok(f));
    CHECK(file_ok(f));
    close_file(f);
  }
}

/* A child forked inside a transaction holds none of its frees: after the
   parent rolls back, the child's writes free nothing that is live. */
FTEST(fork_in_txn_child_frees_nothing_of_parent) {
  const char *path;
  mm3_file *f = t_file("forkfree", &path);
  REQUIRE(f);
  (void)path;
  static const char old[] = "the value before the transaction";
  REQUIRE(mm3_value_set(f, cx(f), &tx, old, sizeof old - 1) == 0);
  uint64_t sp;
  char big[200];
  memset(big, 'b', sizeof big);
  REQUIRE(mm3_txn_begin(f, &sp) == 0);
  CHECK_RC(mm3_value_set(f, cx(f), &tx, big, sizeof big)); /* the old block: freed at commit */
  volatile uint64_t *go = shared_words();
  REQUIRE(go);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    while (!*go) sleep_ms(1);
    int bad = put64(f, OFF_A, 7) != 0; /* takes the lock once the parent let it go */
    for (uint64_t k = 0; k < 64; k++) bad |= map_put(f, k, 0x4242424242424242ULL) != 0;
    _exit(bad ? 10 : 0);
  }
  mm3_txn_rollback(f, sp);
  *go = 1;
  CHECK_EQ(wait_child(pid), 0);
  char buf[64];
  CHECK(strcmp(value_str(f, buf, sizeof buf), old) == 0);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
}

/* A map operation that fails (a delete of a missing key) leaves the write
   sequence even: lookups without the lock go on working. */
FTEST(failed_map_op_leaves_sequence_even) {
  mm3_file *f = t_file("seqeven", NULL);
  REQUIRE(f);
  REQUIRE(map_put(f, 1, 1) == 0);
  uint64_t key = 99;
  CHECK_EQ(mm3_hmap_del(f, cm(f), &tm, &key), MM3_ENOTFOUND);
  CHECK_EQ(hdr_u64(f, 152) % 2, 0);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_EQ(mm3_hmap_del(f, cm(f), &tm, &key), MM3_ENOTFOUND);
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(hdr_u64(f, 152) % 2, 0);
}

/* The log replaced three times in one transaction: once it commits, every
   replaced block is free again (only the last one was). */
FTEST(txn_log_replaced_many_times_frees_every_old_block) {
  enum { ROOT = 1 << 20 };
  mm3_file *f = new_file("relog", "root u8[1048576]", ROOT, NULL);
  REQUIRE(f);
  uint8_t *root = mm3_file_root(f);
  static uint8_t piece[4096];
  memset(piece, 0x5C, sizeof piece);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  for (int off = 0; off < 400 << 10; off += 4096) CHECK_RC(mm3_file_write(f, root + off, piece, sizeof piece));
  CHECK(hdr_u64(f, 568) >= (400 << 10)); /* 64 KiB, then 128, 256, 512 */
  CHECK_RC(mm3_txn_commit(f));
  for (int k = 12; k <= 14; k++) CHECK(hdr_u64(f, 160 + 8 * (size_t)k) != 0); /* free lists of 64, 128, 256 KiB */
  CHECK(file_ok(f));
}

/* Until at most 8 buckets of a resize are left: the next put's share of it
   finishes it, freeing the old table. */
static void resize_nearly_done(mm3_file *f) {
  const uint64_t *g = (const uint64_t *)cm(f); /* count, tab[2], lg[2], rehash */
  uint64_t k = 0;
  for (;;) {
    REQUIRE(map_put(f, k++, 1) == 0);
    uint64_t lg0 = g[3] & 0xFFFFFFFFu;
    if (g[4] && ((uint64_t)1 << lg0) - (g[4] - 1) <= 8 && lg0 >= 6) break;
  }
}

static void *put_then_die(void *arg) {
  uint64_t k = 1u << 30, v = 7;
  mm3__test_hook = exit_thread_at_top_move;
  mm3_hmap_put((mm3_file *)arg, cm((mm3_file *)arg), &tm, &k, &v, NULL); /* frees the old table, then ends */
  return NULL;
}

/* A thread ends inside a put, outside any transaction, after the put's
   share of a resize freed the old table: once another handle recovers (the
   old table is the map's again), a write through the dead thread's handle
   frees nothing, and the map keeps every entry while the heap is used on. */
FTEST(thread_dies_in_plain_op_its_frees_are_undone) {
  mm3_file *b;
  mm3__create_version = 1; /* (the put must move the heap top: a node block of its own) */
  mm3_file *a = t_pair("plainop", &b, NULL);
  mm3__create_version = 0;
  REQUIRE(a);
  resize_nearly_done(a);
  uint64_t n = mm3_container_len(a, cm(a), &tm), old = ((const uint64_t *)cm(a))[1];
  uint64_t block = (uint64_t)16 << (hdr_u64(a, old - 16) & 0xFF); /* the old table's block */
  thread_dies_then_b_recovers(put_then_die, a, b);
  char *junk = malloc(block);
  REQUIRE(junk);
  memset(junk, 0x5A, block);
  CHECK_RC(mm3_value_set(b, cx(b), &tx, junk, block - 24)); /* would take the old table, freed wrongly */
  free(junk);
  for (uint64_t k = 0; k < 200; k++) CHECK_RC(map_put(b, 100000 + k, 2));
  uint64_t bad = 0, v;
  for (uint64_t k = 0; k < n; k++) bad += map_get(b, k, &v) != 0 || v != 1;
  CHECK_EQ(bad, 0);
  CHECK(containers_ok(b));
  CHECK(file_ok(b));
}

/* The outermost transaction rolled back to a savepoint inside it (one of
   a nested transaction that committed): the frees made before that
   savepoint take effect, the ones after it do not. */
FTEST(txn_ended_at_inner_savepoint_keeps_earlier_frees) {
  uint64_t used[2];
  for (int misuse = 0; misuse < 2; misuse++) {
    mm3_file *f = t_file(misuse ? "innerend" : "innerplain", NULL);
    REQUIRE(f);
    char s[100];
    memset(s, 'x', sizeof s);
    REQUIRE(mm3_value_set(f, cx(f), &tx, s, 100) == 0);
    uint64_t a, b;
    CHECK_RC(mm3_txn_begin(f, &a));
    CHECK_RC(mm3_value_set(f, cx(f), &tx, s, 20)); /* frees the 100-byte block */
    CHECK_RC(mm3_txn_begin(f, &b));
    CHECK_RC(mm3_txn_commit(f));
    if (misuse) {
      CHECK_RC(mm3_value_set(f, cx(f), &tx, s, 60)); /* frees the 20-byte one: undone */
      mm3_txn_rollback(f, b);
    } else {
      CHECK_RC(mm3_txn_commit(f));
    }
    CHECK_EQ(mm3_txn_depth(f), 0);
    uint64_t len = 0;
    char buf[100];
    CHECK_RC(mm3_value_get(f, cx(f), &tx, buf, sizeof buf, &len));
    CHECK_EQ(len, 20);
    CHECK(file_ok(f));
    used[misuse] = hdr_u64(f, 544);
  }
  CHECK_EQ(used[1], used[0]);
}

/* Clearing a map of 100,000 entries that existed before, in a transaction:
   its frees add nothing to the log (40 bytes each did). */
FTEST(txn_clear_of_old_map_logs_little) {
  mm3_file *f = t_file("bigclear", NULL);
  REQUIRE(f);
  for (uint64_t k = 0; k < 100000; k++) REQUIRE(map_put(f, k, k) == 0);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(mm3_hmap_clear(f, cm(f), &tm));
  CHECK(hdr_u64(f, 560) < 4096); /* the log's length */
  CHECK_RC(mm3_txn_commit(f));
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), 0);
  CHECK(file_ok(f));
}

/* Inside a nested transaction too, inserts into a map made in it log
   almost nothing (every write was logged in full there). */
FTEST(txn_nested_inserts_log_stays_small) {
  mm3_file *f = t_file("nestedbig", NULL);
  REQUIRE(f);
  uint64_t a, b;
  CHECK_RC(mm3_txn_begin(f, &a));
  CHECK_RC(put64(f, OFF_A, 1));
  CHECK_RC(mm3_txn_begin(f, &b));
  int rc = 0;
  for (uint64_t k = 1; k <= 200000 && !rc; k++) rc = map_put(f, k, k);
  CHECK_RC(rc);
  CHECK(hdr_u64(f, 568) <= (64 << 10)); /* the log's capacity */
  mm3_txn_rollback(f, b);
  CHECK_EQ(mm3_container_len(f, cm(f), &tm), 0);
  CHECK_EQ(get64(f, OFF_A), 1);
  CHECK_RC(mm3_txn_commit(f));
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
}

/* A handle closed inside a transaction whose log was replaced by bigger
   ones: the replaced blocks are free again (they stayed in use). */
FTEST(close_in_txn_frees_replaced_logs) {
  const char *path;
  mm3_file *f = new_file("closelog", "root u8[1048576]", 1 << 20, &path);
  REQUIRE(f);
  static uint8_t piece[4096];
  memset(piece, 0x5C, sizeof piece);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  for (int off = 0; off < 200 << 10; off += 4096) CHECK_RC(mm3_file_write(f, mm3_file_root(f) + off, piece, 4096));
  CHECK(hdr_u64(f, 568) >= (200 << 10));
  close_file(f);
  mm3_file *g = open_existing(path, 0);
  REQUIRE(g);
  for (int k = 12; k <= 13; k++) CHECK(hdr_u64(g, 160 + 8 * (size_t)k) != 0); /* 64 and 128 KiB free */
  CHECK(all_zero(mm3_file_root(g), 200 << 10));
  CHECK(file_ok(g));
}

static mm3_file *shared_handle;
static void *txns_on_shared_handle(void *arg) {
  uint64_t base = (uint64_t)(uintptr_t)arg, bad = 0;
  for (uint64_t i = 0; i < 20000; i++) {
    uint64_t sp;
    if (mm3_txn_begin(shared_handle, &sp)) {
      bad++;
      continue;
    }
    bad += map_put(shared_handle, base + i, i) != 0;
    bad += mm3_txn_commit(shared_handle) != 0;
  }
  return (void *)(uintptr_t)bad;
}

/* Two threads share one handle, each running transactions of a map put
   (the lock takes turns): none is refused or fails (a transaction's end set
   the handle's transaction lock depth after letting the lock go, racing the
   other thread's operation, which then kept its own-undo mode and refused
   the next begin as busy). */
FTEST(threads_sharing_a_handle_run_transactions) {
  shared_handle = t_file("sharedtxn", NULL);
  REQUIRE(shared_handle);
  pthread_t t[2];
  for (uintptr_t i = 0; i < 2; i++)
    REQUIRE(pthread_create(&t[i], NULL, txns_on_shared_handle, (void *)(i << 32)) == 0);
  for (int i = 0; i < 2; i++) {
    void *bad;
    pthread_join(t[i], &bad);
    CHECK_EQ((uintptr_t)bad, 0);
  }
  CHECK_EQ(mm3_container_len(shared_handle, cm(shared_handle), &tm), 40000);
  CHECK(containers_ok(shared_handle));
  CHECK(file_ok(shared_handle));
}

/* ========================================================================
 * mm3_file_write
 * ======================================================================== */

FTEST(file_write_range) {
  const char *path;
  mm3_file *f = t_file("write", &path);
  REQUIRE(f);
  uint8_t *base = mm3_file_base(f);
  uint64_t size = mm3_file_size(f);
  uint64_t v = 0xABABABABABABABABULL;
  uint8_t hdr[MM3_HEADER_SIZE];
  memcpy(hdr, base, sizeof hdr);
  CHECK_EQ(mm3_file_write(f, base, &v, 8), MM3_ERANGE); /* the header */
  CHECK_EQ(mm3_file_write(f, base + 144, &v, 8), MM3_ERANGE);
  CHECK_EQ(mm3_file_write(f, base + MM3_HEADER_SIZE - 1, &v, 8), MM3_ERANGE);
  CHECK(memcmp(hdr, base, sizeof hdr) == 0);
  CHECK_EQ(mm3_file_write(f, base + size - 4, &v, 8), MM3_ERANGE); /* straddles the end */
  CHECK_EQ(mm3_file_write(f, base + size, &v, 1), MM3_ERANGE);
  CHECK_EQ(mm3_file_write(f, base + size + 4096, &v, 8), MM3_ERANGE);
  CHECK_EQ(mm3_file_write(f, base + 2048, &v, SIZE_MAX), MM3_ERANGE); /* overflow */
  uint64_t local = 0;
  CHECK_EQ(mm3_file_write(f, &local, &v, 8), MM3_ERANGE); /* not file memory */
  CHECK_EQ(local, 0);
  CHECK(all_zero(base + size - 4, 4));
  /* inside: the last bytes, an empty write at the very end, the root */
  CHECK_RC(mm3_file_write(f, base + size - 8, &v, 8));
  CHECK(memcmp(base + size - 8, &v, 8) == 0);
  CHECK_RC(mm3_file_write(f, base + size, &v, 0));
  CHECK_RC(mm3_file_write(f, mm3_file_root(f) + OFF_C, &v, 8));
  CHECK(get64(f, OFF_C) == v);
  /* a grown file accepts writes in the new extent */
  CHECK_RC(mm3_file_grow(f, size * 2));
  CHECK_RC(mm3_file_write(f, base + size, &v, 8));
  CHECK_EQ(hdr_u64(f, 560), 0);
  close_file(f);
  mm3_file *r = open_existing(path, 1);
  REQUIRE(r);
  CHECK_EQ(mm3_file_write(r, mm3_file_root(r) + OFF_C, &v, 8), MM3_EREADONLY);
  CHECK_EQ(mm3_file_write(r, mm3_file_base(r), &v, 8), MM3_ERANGE);
}

/* Closing inside a transaction undoes it and frees the lock. */
FTEST(close_inside_txn_rolls_back) {
  const char *path;
  mm3_file *f = t_file("closetxn", &path);
  REQUIRE(f);
  REQUIRE(seed_state(f) == 0);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(mm3_txn_begin(f, &sp));
  CHECK_RC(dirty_state(f));
  close_file(f);
  mm3_file *g = open_existing(path, 0);
  REQUIRE(g);
  check_seed_state(g);
  CHECK_EQ(mm3_file_recovered(g), 0); /* nothing left for the opener */
  check_lock_usable(g, path);
}

/* ========================================================================
 * Crash recovery with real processes
 * ======================================================================== */

/* Child: open path, begin a transaction, make every kind of write, then
   leave without committing (flag[0] says it got there). */
static void die_in_txn(const char *path, volatile uint64_t *flag, int spin) {
  mm3_file *c = child_in_txn(path);
  if (dirty_state(c)) _exit(11);
  __atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
  while (spin) sleep_ms(1); /* holding the lock until killed */
  _exit(0);
}

/* The parent keeps the file open: the next lock rolls the dead child's
   transaction back. */
FTEST(crash_exit_in_txn_file_open) {
  const char *path;
  mm3_file *f = t_file("crashexit", &path);
  REQUIRE(f);
  REQUIRE(seed_state(f) == 0);
  volatile uint64_t *flag = shared_words();
  REQUIRE(flag);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) die_in_txn(path, flag, 0);
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(*flag, 1);
  CHECK(hdr_u64(f, 560) > 0); /* its log is left */
  CHECK_EQ(mm3_file_recovered(f), 0);
  CHECK_RC(mm3_file_lock(f));
  CHECK_EQ(mm3_file_recovered(f), 1);
  CHECK_EQ(hdr_u64(f, 560), 0);
  mm3_file_unlock(f);
  check_seed_state(f);
  check_lock_usable(f, path);
  CHECK_EQ(mm3_file_recovered(f), 1);
  /* a container operation recovers as well (it takes the lock itself) */
  *flag = 0;
  pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) die_in_txn(path, flag, 0);
  CHECK_EQ(wait_child(pid), 0);
  CHECK_RC(map_put(f, 3, 33));
  CHECK_EQ(mm3_file_recovered(f), 2);
  uint64_t v;
  CHECK_EQ(map_get(f, 2, &v), MM3_ENOTFOUND);
  CHECK_RC(map_get(f, 3, &v));
  CHECK_EQ(v, 33);
  CHECK_EQ(get64(f, OFF_A), 5);
  CHECK(containers_ok(f));
  CHECK(file_ok(f));
}

/* Nobody has the file open when the child dies: the next read-write opener
   recovers; a read-only opener is told to let one do it first. */
FTEST(crash_exit_in_txn_reopen) {
  const char *path;
  mm3_file *f = t_file("crashreopen", &path);
  REQUIRE(f);
  REQUIRE(seed_state(f) == 0);
  close_file(f);
  volatile uint64_t *flag = shared_words();
  REQUIRE(flag);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) die_in_txn(path, flag, 0);
  CHECK_EQ(wait_child(pid), 0);
  mm3_file_opts ro = {0};
  ro.readonly = 1;
  mm3_file *r = (mm3_file *)&fx;
  CHECK_EQ(mm3_file_open(path, &ro, &r), MM3_ERECOVER);
  CHECK(r == (mm3_file *)&fx);
  mm3_file *g = open_existing(path, 0);
  REQUIRE(g);
  CHECK_EQ(mm3_file_recovered(g), 1);
  check_seed_state(g);
  mm3_file *r2 = open_existing(path, 1); /* now fine */
  REQUIRE(r2);
  CHECK_EQ(get64(r2, OFF_A), 5);
  check_lock_usable(g, path);
  /* the parent had it open while the child died, then reopened */
  *flag = 0;
  pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) die_in_txn(path, flag, 0);
  CHECK_EQ(wait_child(pid), 0);
  close_file(r2);
  close_file(g);
  mm3_file *h = open_existing(path, 0);
  REQUIRE(h);
  CHECK_EQ(mm3_file_recovered(h), 1);
  CHECK_EQ(get64(h, OFF_B), 4); /* check_lock_usable's committed write stays */
  CHECK_EQ(get64(h, OFF_A), 5);
  CHECK_EQ(mm3_container_len(h, cm(h), &tm), 1);
  CHECK(containers_ok(h));
  CHECK(file_ok(h));
}

/* SIGKILL while the child holds the lock inside a transaction. */
FTEST(crash_kill_holding_lock) {
  const char *path;
  mm3_file *f = t_file("crashkill", &path);
  REQUIRE(f);
  REQUIRE(seed_state(f) == 0);
  volatile uint64_t *flag = shared_words();
  REQUIRE(flag);
  alarm(120); /* a lock that never comes back fails the run instead of hanging it */
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) die_in_txn(path, flag, 1);
  CHECK_EQ(wait_for(flag, 1), 0);
  CHECK_EQ(get64(f, OFF_A), 6); /* its writes are in place while it lives */
  kill(pid, SIGKILL);
  CHECK_EQ(wait_child(pid), 128 + SIGKILL);
  CHECK_RC(mm3_file_lock(f));
  CHECK_EQ(mm3_file_recovered(f), 1);
  mm3_file_unlock(f);
  check_seed_state(f);
  check_lock_usable(f, path);
  alarm(0);
}

/* A child loops on transactions holding the lock throughout; it is killed at
   arbitrary points. Each transaction sets a and b together: they are always
   equal afterwards, and no committed one is lost. */
FTEST(crash_kill_in_loop) {
  const char *path;
  mm3_file *f = t_file("crashloop", &path);
  REQUIRE(f);
  volatile uint64_t *w = shared_words(); /* w[0]: committed count, w[1]: started */
  REQUIRE(w);
  alarm(120);
  static const long delays_ms[] = {0, 1, 3, 7, 20};
  uint64_t recovered_before = 0;
  for (int round = 0; round < 5; round++) {
    w[0] = w[1] = 0;
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file_opts o = {0};
      mm3_file *c = NULL;
      if (mm3_file_open(path, &o, &c) || mm3_file_lock(c)) _exit(10);
      uint64_t i = get64(c, OFF_A);
      __atomic_store_n(&w[1], 1, __ATOMIC_SEQ_CST);
      for (;;) {
        uint64_t sp;
        i++;
        if (mm3_txn_begin(c, &sp) || put64(c, OFF_A, i) || map_put(c, i % 64, i) || put64(c, OFF_B, i) ||
            mm3_txn_commit(c))
          _exit(11);
        __atomic_store_n(&w[0], i, __ATOMIC_SEQ_CST);
      }
    }
    CHECK_EQ(wait_for(&w[1], 1), 0);
    uint64_t start = get64(f, OFF_A);
    CHECK_EQ(wait_for(&w[0], start + 100), 0); /* at least 100 commits */
    sleep_ms(delays_ms[round]);
    kill(pid, SIGKILL);
    CHECK_EQ(wait_child(pid), 128 + SIGKILL);
    uint64_t done = w[0];
    CHECK_RC(mm3_file_lock(f));
    uint64_t a = get64(f, OFF_A), b = get64(f, OFF_B);
    mm3_file_unlock(f);
    CHECK_EQ(a, b);
    CHECK(a >= done && a <= done + 1); /* committed, or committed just before the count */
    uint64_t v = 0;
    CHECK_RC(map_get(f, a % 64, &v));
    CHECK_EQ(v, a);
    CHECK(mm3_file_recovered(f) - recovered_before <= 1);
    recovered_before = mm3_file_recovered(f);
    CHECK(containers_ok(f));
    CHECK(file_ok(f));
  }
  check_lock_usable(f, path);
  alarm(0);
}

/* Segmented pushes inside a transaction (allocating new segments) roll back
   with it; pointers to the surviving elements stay valid. */
FTEST(txn_rollback_seg_push) {
  mm3_ctype ts;
  memset(&ts, 0, sizeof ts);
  ts.kind = MM3_SEGMENTED;
  ts.elem_size = ts.elem_align = 8;
  REQUIRE(mm3_ctype_init(&ts) == 0);
  mm3_file *f = new_file("txnseg", "root segmented<u64>", ts.size, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  for (uint64_t i = 0; i < 10; i++) CHECK_RC(mm3_seg_push(f, c, &ts, &i));
  uint8_t *p3 = mm3_seg_at(f, c, &ts, 3);
  REQUIRE(p3);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  for (uint64_t i = 10; i < 5000; i++) CHECK_RC(mm3_seg_push(f, c, &ts, &i)); /* segments 1..3 */
  uint64_t v = 999;
  CHECK_RC(mm3_seg_set(f, c, &ts, 3, &v));
  CHECK_RC(mm3_seg_truncate(f, c, &ts, 2));
  mm3_txn_rollback(f, sp);
  CHECK_EQ(mm3_container_len(f, c, &ts), 10);
  CHECK(mm3_seg_at(f, c, &ts, 3) == p3);
  int bad = 0;
  for (uint64_t i = 0; i < 10; i++) {
    uint8_t *p = mm3_seg_at(f, c, &ts, i);
    uint64_t got;
    if (!p) bad++;
    else if (memcpy(&got, p, 8), got != i) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK(mm3_seg_at(f, c, &ts, 10) == NULL);
  char why[160];
  CHECK_RC(mm3_container_check(f, c, &ts, why, sizeof why));
  CHECK(file_ok(f));
  for (uint64_t i = 10; i < 5000; i++) CHECK_RC(mm3_seg_push(f, c, &ts, &i)); /* and again, committed */
  CHECK_EQ(mm3_container_len(f, c, &ts), 5000);
  CHECK(file_ok(f));
}

static void die_after_seg_length(const char *point) {
  if (strcmp(point, "seg push: length published") == 0) _exit(0);
}
static void die_in_allocation(const char *point) {
  if (strcmp(point, "heap: top moved") == 0) _exit(0);
}

/* A push that makes a new segment, outside a transaction, dies after
   publishing the new length but before its operation ends: the next opener
   rolls the segment back, and the length with it (it kept the length, which
   then counted an element in a segment that was gone: l[n] read nil and the
   check reported the segment missing). */
FTEST(death_after_new_segment_length_rolls_both_back) {
  mm3_ctype ts;
  memset(&ts, 0, sizeof ts);
  ts.kind = MM3_SEGMENTED;
  ts.elem_size = 8;
  ts.elem_align = 8;
  REQUIRE(mm3_ctype_init(&ts) == 0);
  const char *path;
  mm3_file *f = new_file("seglen", "root segmented<u64>", ts.size, &path);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  uint64_t n = ts.seg_first; /* fills segment 0: the next push makes segment 1 */
  for (uint64_t i = 0; i < n; i++) CHECK_RC(mm3_seg_push(f, c, &ts, &i));
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *g = open_existing(path, 0);
    if (!g) _exit(10);
    mm3__test_hook = die_after_seg_length;
    uint64_t x = 777;
    mm3_seg_push(g, mm3_file_root(g), &ts, &x);
    _exit(11); /* the hook did not run */
  }
  CHECK_EQ(wait_child(pid), 0);
  close_file(f); /* the next opener is alone, and recovers */
  f = open_existing(path, 0);
  REQUIRE(f);
  c = mm3_file_root(f);
  CHECK_EQ(mm3_file_recovered(f), 1);
  CHECK_EQ(mm3_container_len(f, c, &ts), n);
  char why[256] = "";
  CHECK_RC(mm3_container_check(f, c, &ts, why, sizeof why));
  if (why[0]) fprintf(stderr, "    %s\n", why);
  uint64_t y = 888;
  CHECK_RC(mm3_seg_push(f, c, &ts, &y));
  uint8_t *p = mm3_seg_at(f, c, &ts, n);
  REQUIRE(p);
  uint64_t got;
  memcpy(&got, p, 8);
  CHECK_EQ(got, 888);
  CHECK(file_ok(f));
}

/* Outside a transaction a segmented push skips the undo log (commit 3149342).
   A push that starts a new segment bumps the heap top, zeroes the block, and
   only then writes the block's tag; killed in between (SIGKILL, power loss),
   it leaves a block without a tag below the heap top, which mm3_file_check
   reports for good ("heap block at N has a damaged tag"), and whose space is
   never reused: every killed attempt leaks another segment.
     child:  mm3_seg_push(...) in a loop on segmented<bytes<4096>>, killed
             while it allocates segment 11 (2048 x 4 KiB: a 16 MiB block)
     parent: mm3_file_lock(f); mm3_file_unlock(f);
             mm3_file_check(f, ...) -> MM3_ECORRUPT
   Heap blocks are no longer zeroed, so the window is microseconds wide: the
   first round dies inside it through the test hook (right after the heap
   top moved); the others kill at varied delays, the last once the push
   returned, and the test fails on the first damage. */
FTEST(kill_in_seg_push_keeps_heap_consistent) {
  enum { ITEM = 4096, BOUNDARY = 2047 }; /* segment 11 starts at element 2^11 - 1 */
  mm3_ctype ts;
  memset(&ts, 0, sizeof ts);
  ts.kind = MM3_SEGMENTED;
  ts.elem_size = ITEM;
  ts.elem_align = 8;
  REQUIRE(mm3_ctype_init(&ts) == 0);
  REQUIRE(ts.seg_first == 1);
  const char *path;
  mm3_file *f = new_file("segkill", "root segmented<bytes<4096>>", ts.size, &path);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  static uint8_t item[ITEM];
  for (uint64_t i = 0; i < BOUNDARY; i++) {
    memcpy(item, &i, 8);
    CHECK_RC(mm3_seg_push(f, c, &ts, item));
  }
  volatile uint64_t *w = shared_words();
  REQUIRE(w);
  alarm(120);
  /* -2: dies inside the allocation of the segment (the test hook); -1:
     killed once the push returned */
  static const long delay_us[] = {-2, 0, 200, 500, 1000, 2000, 5000, -1};
  enum { ROUNDS = sizeof delay_us / sizeof delay_us[0] };
  int damaged = 0, acked = 0;
  for (int round = 0; round < ROUNDS && !damaged; round++) {
    w[0] = 0;
    pid_t pid = fork_child();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      mm3_file_opts o = {0};
      mm3_file *g = NULL;
      if (mm3_file_open(path, &o, &g)) _exit(10);
      uint8_t *cc = mm3_file_root(g);
      uint64_t n = mm3_container_len(g, cc, &ts);
      memcpy(item, &n, 8);
      if (delay_us[round] == -2) mm3__test_hook = die_in_allocation;
      __atomic_store_n(&w[0], 1, __ATOMIC_SEQ_CST);
      int rc = mm3_seg_push(g, cc, &ts, item); /* allocates the 16 MiB segment */
      __atomic_store_n(&w[0], 2, __ATOMIC_SEQ_CST);
      for (;;) sleep_ms(1); /* wait to be killed */
      _exit(rc);
    }
    CHECK_EQ(wait_for(&w[0], 1), 0);
    if (delay_us[round] == -2) {
      CHECK_EQ(wait_child(pid), 0); /* died at the hook */
    } else {
      if (delay_us[round] == -1) {
        CHECK_EQ(wait_for(&w[0], 2), 0);
      } else {
        struct timespec ts_delay = {0, delay_us[round] * 1000L};
        nanosleep(&ts_delay, NULL);
      }
      kill(pid, SIGKILL);
      CHECK_EQ(wait_child(pid), 128 + SIGKILL);
    }
    int acknowledged = w[0] == 2; /* the push returned before the kill */
    acked += acknowledged;
    CHECK_RC(mm3_file_lock(f));
    mm3_file_unlock(f);
    uint64_t n = mm3_container_len(f, c, &ts);
    CHECK(n == BOUNDARY || n == BOUNDARY + 1); /* the push happened or did not */
    if (acknowledged) CHECK_EQ(n, BOUNDARY + 1); /* and a push that returned is kept */
    char why[160];
    int rc = mm3_file_check(f, why, sizeof why);
    if (rc) {
      fprintf(stderr, "  %s: kill %d (%ld us): %s\n", mm3t_current, round, delay_us[round], why);
      damaged = 1;
    }
    CHECK_RC(rc);
    CHECK_RC(mm3_container_check(f, c, &ts, why, sizeof why));
    if (n == BOUNDARY + 1) CHECK_RC(mm3_seg_truncate(f, c, &ts, BOUNDARY)); /* aim at the same segment */
  }
  alarm(0);
  if (!damaged) CHECK(acked > 0); /* the kept-push check above ran (the last round's) */
  /* A later push still works and lands where the list says. */
  uint64_t n = mm3_container_len(f, c, &ts);
  memcpy(item, &n, 8);
  CHECK_RC(mm3_seg_push(f, c, &ts, item));
  uint8_t *p = mm3_seg_at(f, c, &ts, n);
  CHECK(p && memcmp(p, &n, 8) == 0);
}

/* A process that forks while it holds the lock (inside a transaction), then
   dies: the child, waiting on the lock, must roll the dead transaction back
   when it gets the lock. Since 8933866 a process keeps one lock depth per
   file for all its handles (held_tab in src/mm3_heap.c); a forked child
   inherits its parent's depth of 1 for the file, so its first lock does not
   look for a dead writer's log, and its own write then ends the log: the
   dead transaction's writes become permanent (it worked before 8933866).
     P: mm3_txn_begin(p, &sp); write a = 2; fork() -> G
     G: mm3_file_open(path); mm3_file_write(g, &b, 7)   // waits for the lock
     P: _exit(0)                                        // dies in the transaction
     G: gets the lock (EOWNERDEAD), writes b = 7: a stays 2, recovered(G) == 0 */
FTEST(fork_in_txn_child_recovers_dead_parent) {
  const char *path;
  mm3_file *f = t_file("forkheld", &path);
  REQUIRE(f);
  REQUIRE(seed_state(f) == 0);
  volatile uint64_t *w = shared_words(); /* w[0]: G opened, w[1]: G done, w[2]: G's recovered, w[3]: G's rc */
  REQUIRE(w);
  alarm(120);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *pf = child_in_txn(path);
    if (put64(pf, OFF_A, 2)) _exit(10);
    pid_t g = fork_child();
    if (g < 0) _exit(11);
    if (g == 0) {
      mm3_file_opts o = {0};
      mm3_file *gf = NULL;
      if (mm3_file_open(path, &o, &gf)) _exit(12);
      __atomic_store_n(&w[0], 1, __ATOMIC_SEQ_CST);
      int rc = put64(gf, OFF_B, 7); /* waits for P's lock */
      w[2] = mm3_file_recovered(gf);
      w[3] = (uint64_t)rc;
      __atomic_store_n(&w[1], 1, __ATOMIC_SEQ_CST);
      mm3_file_close(gf);
      _exit(0);
    }
    if (wait_for(&w[0], 1)) _exit(13);
    sleep_ms(50);
    _exit(0); /* dies holding the lock, inside the transaction */
  }
  CHECK_EQ(wait_child(pid), 0);
  CHECK_EQ(wait_for(&w[1], 1), 0);
  CHECK_EQ(w[3], 0);
  CHECK_EQ(w[2], 1); /* G rolled P's transaction back */
  CHECK_RC(mm3_file_lock(f));
  mm3_file_unlock(f);
  CHECK_EQ(get64(f, OFF_A), 5);
  CHECK_EQ(get64(f, OFF_B), 7);
  alarm(0);
}

/* Two handles on one file in one thread share the (recursive) lock: the
   second one's first lock must not take the first one's open transaction for
   a dead writer's (before 8933866 it rolled it back, recovered(b) == 1, and
   the commit that followed returned 0 with its writes lost). */
FTEST(two_handles_one_thread_keep_txn) {
  mm3_file *b, *a = t_pair("twohandles", &b, NULL);
  REQUIRE(a);
  CHECK_RC(put64(a, OFF_A, 1));
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(a, &sp));
  CHECK_RC(put64(a, OFF_A, 2));
  CHECK_EQ(get64(b, OFF_A), 2);
  CHECK_RC(mm3_file_lock(b));
  CHECK_EQ(mm3_file_recovered(b), 0); /* nobody died */
  mm3_file_unlock(b);
  CHECK_RC(mm3_txn_commit(a));
  CHECK_EQ(get64(a, OFF_A), 2);
}

/* While a has a transaction open, b (the same file, the same thread) may not
   write through the log or begin its own: its commit would drop a's log. */
FTEST(second_handle_refused_during_txn) {
  mm3_file *b, *a = t_pair("busyhandles", &b, NULL);
  REQUIRE(a);
  CHECK_RC(put64(a, OFF_A, 1));
  uint64_t sp, sp2;
  CHECK_RC(mm3_txn_begin(a, &sp));
  CHECK_RC(put64(a, OFF_A, 2));
  CHECK_EQ(put64(b, OFF_A, 3), MM3_EBUSY);
  CHECK_EQ(mm3_txn_begin(b, &sp2), MM3_EBUSY);
  mm3_txn_rollback(a, sp);
  CHECK_EQ(get64(b, OFF_A), 1); /* a's rollback is whole */
  CHECK_RC(mm3_txn_begin(b, &sp2)); /* free again */
  CHECK_EQ(put64(a, OFF_A, 4), MM3_EBUSY);
  CHECK_RC(put64(b, OFF_A, 5));
  CHECK_RC(mm3_txn_commit(b));
  CHECK_RC(put64(a, OFF_A, 6));
  CHECK_EQ(get64(b, OFF_A), 6); /* the fixture closes both */
}

/* A thread that ends with a transaction open (pthread_exit, or a return
   past the commit) dies holding the robust lock. Another thread of the same
   process then gets it with EOWNERDEAD and must treat it as any dead
   writer's: roll its work back, and not count the dead thread's lock depth
   and open transaction as still its process's (which skipped the rollback
   and refused every other handle with MM3_EBUSY). */
static void *write_then_die(void *arg) {
  dying_writer *d = arg;
  uint64_t sp;
  d->rc = mm3_txn_begin(d->f, &sp);
  if (!d->rc) d->rc = put64(d->f, OFF_A, 99);
  if (!d->rc) d->rc = put64(d->f, OFF_B, 98);
  return NULL; /* the transaction is never committed */
}

/* Run fn(&{f}) in a thread that ends without committing: its rc, or -1. */
static int die_in_thread(void *(*fn)(void *), mm3_file *f) {
  dying_writer d = {f, -1};
  pthread_t t;
  if (pthread_create(&t, NULL, fn, &d) != 0 || pthread_join(t, NULL) != 0) return -1;
  return d.rc;
}

static void thread_dies_in_txn(int same_handle) {
  const char *path;
  mm3_file *a = t_file(same_handle ? "threaddies1" : "threaddies2", &path);
  REQUIRE(a);
  mm3_file *b = same_handle ? a : open_existing(path, 0);
  REQUIRE(b);
  CHECK_RC(put64(a, OFF_A, 1));
  CHECK_RC(put64(a, OFF_B, 2));
  CHECK_RC(die_in_thread(write_then_die, a));
  CHECK_EQ(get64(b, OFF_A), 99); /* the dead thread's writes are in place ... */
  CHECK_RC(put64(b, OFF_C, 3));  /* ... until the lock is taken again */
  CHECK_EQ(mm3_file_recovered(b), 1);
  CHECK_EQ(get64(b, OFF_A), 1);
  CHECK_EQ(get64(b, OFF_B), 2);
  CHECK_EQ(get64(b, OFF_C), 3);
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(b, &sp)); /* no transaction is left open */
  CHECK_RC(put64(b, OFF_A, 4));
  CHECK_RC(mm3_txn_commit(b));
  if (!same_handle) CHECK_RC(put64(a, OFF_B, 5)); /* a is usable again too */
  close_file(b);
  if (!same_handle) close_file(a);
  mm3_file *c = open_existing(path, 0); /* and the file holds the committed state */
  REQUIRE(c);
  CHECK_EQ(get64(c, OFF_A), 4);
  CHECK_EQ(get64(c, OFF_B), same_handle ? 2 : 5);
  CHECK_EQ(get64(c, OFF_C), 3);
  CHECK_EQ(mm3_file_recovered(c), 0);
}

/* The dead thread's transaction freed a block (replacing a value): the
   rollback makes that block live again, so the dead handle's list of frees
   waiting for the commit must go too; its next operation freed the live
   block, and the next allocation reused it under the value. */
static void *replace_value_then_die(void *arg) {
  dying_writer *d = arg;
  uint64_t sp;
  char big[200];
  memset(big, 'b', sizeof big);
  d->rc = mm3_txn_begin(d->f, &sp);
  if (!d->rc) d->rc = mm3_value_set(d->f, mm3_file_root(d->f) + OFF_X, &tx, big, sizeof big);
  return NULL;
}

FTEST(thread_dies_in_txn_its_frees_are_undone) {
  mm3_file *b, *a = t_pair("threadfrees", &b, NULL);
  REQUIRE(a);
  static const char old[] = "the value before the dead transaction";
  CHECK_RC(mm3_value_set(a, mm3_file_root(a) + OFF_X, &tx, old, sizeof old));
  CHECK_RC(die_in_thread(replace_value_then_die, a));
  CHECK_RC(put64(b, OFF_B, 1)); /* takes the dead thread's lock: rolls back */
  CHECK_RC(put64(a, OFF_A, 2)); /* the dead thread's handle, used again */
  for (uint64_t k = 0; k < 64; k++) { /* allocations that would reuse a wrongly freed block */
    uint64_t v = 0x4242424242424242ULL;
    CHECK_RC(mm3_hmap_put(b, mm3_file_root(b) + OFF_M, &tm, &k, &v, NULL));
  }
  char buf[64] = {0};
  uint64_t len = 0;
  CHECK_RC(mm3_value_get(b, mm3_file_root(b) + OFF_X, &tx, buf, sizeof buf, &len));
  CHECK_EQ(len, sizeof old);
  CHECK(memcmp(buf, old, sizeof old) == 0);
  char why[160];
  int rc = mm3_file_check(b, why, sizeof why);
  if (rc) fprintf(stderr, "  %s: %s\n", mm3t_current, why);
  CHECK_RC(rc);
}

FTEST(thread_dies_in_txn_other_handle_recovers) { thread_dies_in_txn(0); }
FTEST(thread_dies_in_txn_same_handle_recovers) { thread_dies_in_txn(1); }

/* ========================================================================
 * Atomics
 * ======================================================================== */

static const int widths[] = {1, 2, 4, 8};

static uint64_t mask_of(int w) { return w == 8 ? UINT64_MAX : (((uint64_t)1 << (8 * w)) - 1); }

/* A file whose root is 64 bytes of atomics. */
static mm3_file *atomic_file(const char *tag, const char **path) {
  return new_file(tag, "struct A{w:u64[8]}\nroot A", 64, path);
}

FTEST(atomic_load_store_widths) {
  mm3_file *f = atomic_file("atomls", NULL);
  REQUIRE(f);
  uint8_t *r = mm3_file_root(f);
  for (size_t i = 0; i < 4; i++) {
    int w = widths[i];
    memset(r, 0xEE, 64);
    uint8_t *p = r + 16;
    mm3_atomic_store(p, w, 0x1122334455667788ULL);
    CHECK(mm3_atomic_load(p, w) == (0x1122334455667788ULL & mask_of(w)));
    CHECK_EQ(p[0], 0x88); /* little-endian, the low bytes */
    CHECK_EQ(p[w - 1], (0x1122334455667788ULL >> (8 * (w - 1))) & 0xff);
    for (int j = w; j < 16; j++) CHECK_EQ(p[j], 0xEE); /* nothing past the width */
    for (int j = 0; j < 16; j++) CHECK_EQ(r[j], 0xEE); /* or before */
    mm3_atomic_store(p, w, 0);
    CHECK_EQ(mm3_atomic_load(p, w), 0);
    mm3_atomic_store(p, w, UINT64_MAX);
    CHECK(mm3_atomic_load(p, w) == mask_of(w)); /* zero-extended */
  }
}

FTEST(atomic_fetch_every_op) {
  mm3_file *f = atomic_file("atomops", NULL);
  REQUIRE(f);
  uint8_t *r = mm3_file_root(f);
  for (size_t i = 0; i < 4; i++) {
    int w = widths[i];
    uint64_t m = mask_of(w);
    uint8_t *p = r + 8;
    memset(r, 0xEE, 64);
    mm3_atomic_store(p, w, 5);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_ADD, 3, 0), 5);
    CHECK_EQ(mm3_atomic_load(p, w), 8);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_SUB, 10, 0), 8);
    CHECK(mm3_atomic_load(p, w) == ((uint64_t)-2 & m)); /* wraps */
    mm3_atomic_store(p, w, m);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_ADD, 1, 0) == m);
    CHECK_EQ(mm3_atomic_load(p, w), 0); /* wraps */
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_SUB, 1, 1), 0);
    CHECK(mm3_atomic_load(p, w) == m);
    mm3_atomic_store(p, w, 0xC);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_AND, 0xA, 0), 0xC);
    CHECK_EQ(mm3_atomic_load(p, w), 0x8);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_OR, 0x3, 0), 0x8);
    CHECK_EQ(mm3_atomic_load(p, w), 0xB);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_XOR, 0xF, 0), 0xB);
    CHECK_EQ(mm3_atomic_load(p, w), 0x4);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_SWAP, m, 0), 0x4);
    CHECK(mm3_atomic_load(p, w) == m);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_SWAP, 1, 0) == m); /* previous, zero-extended */
    /* operands wider than the field count by their low bytes only */
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_ADD, (uint64_t)-1, 0), 1);
    CHECK_EQ(mm3_atomic_load(p, w), 0);
    mm3_atomic_fetch(p, w, MM3_ATOMIC_OR, UINT64_MAX, 0);
    CHECK(mm3_atomic_load(p, w) == m);
    for (int j = w; j < 24; j++) CHECK_EQ(p[j], 0xEE);
    CHECK_EQ(r[7], 0xEE);
  }
}

FTEST(atomic_max_min_signed_unsigned) {
  mm3_file *f = atomic_file("atommax", NULL);
  REQUIRE(f);
  uint8_t *p = mm3_file_root(f) + 32;
  for (size_t i = 0; i < 4; i++) {
    int w = widths[i];
    uint64_t m = mask_of(w), smax = m >> 1, smin = smax + 1, neg1 = m;
    uint64_t neg5 = (uint64_t)-5 & m;
    /* unsigned */
    mm3_atomic_store(p, w, 0);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, m, 0), 0);
    CHECK(mm3_atomic_load(p, w) == m);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, 5, 0) == m); /* no change */
    CHECK(mm3_atomic_load(p, w) == m);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MIN, 5, 0) == m);
    CHECK_EQ(mm3_atomic_load(p, w), 5);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_MIN, m, 0), 5);
    CHECK_EQ(mm3_atomic_load(p, w), 5);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_MIN, 0, 0), 5);
    CHECK_EQ(mm3_atomic_load(p, w), 0);
    mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, smin, 0); /* unsigned: smin is large */
    CHECK(mm3_atomic_load(p, w) == smin);
    mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, smax, 0);
    CHECK(mm3_atomic_load(p, w) == smin);
    /* signed */
    mm3_atomic_store(p, w, 0);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, neg1, 1), 0); /* -1 < 0 */
    CHECK_EQ(mm3_atomic_load(p, w), 0);
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, smax, 1), 0);
    CHECK(mm3_atomic_load(p, w) == smax);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, smin, 1) == smax); /* the most negative */
    CHECK(mm3_atomic_load(p, w) == smax);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MIN, smin, 1) == smax);
    CHECK(mm3_atomic_load(p, w) == smin);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MIN, neg1, 1) == smin);
    CHECK(mm3_atomic_load(p, w) == smin);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, neg1, 1) == smin);
    CHECK(mm3_atomic_load(p, w) == neg1);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MIN, smax, 1) == neg1);
    CHECK(mm3_atomic_load(p, w) == neg1);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, 0, 1) == neg1);
    CHECK_EQ(mm3_atomic_load(p, w), 0);
    /* a negative operand as a sign-extended 64-bit value */
    CHECK_EQ(mm3_atomic_fetch(p, w, MM3_ATOMIC_MIN, (uint64_t)(int64_t)-5, 1), 0);
    CHECK(mm3_atomic_load(p, w) == neg5);
    CHECK(mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, (uint64_t)(int64_t)-7, 1) == neg5);
    CHECK(mm3_atomic_load(p, w) == neg5);
    mm3_atomic_store(p, w, 0);
    mm3_atomic_fetch(p, w, MM3_ATOMIC_MAX, (uint64_t)(int64_t)-5, 0); /* unsigned: huge */
    CHECK(mm3_atomic_load(p, w) == neg5);
  }
}

FTEST(atomic_cas) {
  mm3_file *f = atomic_file("atomcas", NULL);
  REQUIRE(f);
  uint8_t *r = mm3_file_root(f);
  for (size_t i = 0; i < 4; i++) {
    int w = widths[i];
    uint64_t m = mask_of(w);
    uint8_t *p = r + 24;
    memset(r, 0xEE, 64);
    mm3_atomic_store(p, w, 7);
    uint64_t e = 7;
    CHECK_EQ(mm3_atomic_cas(p, w, &e, 9), 1);
    CHECK_EQ(e, 7); /* written only on failure */
    CHECK_EQ(mm3_atomic_load(p, w), 9);
    e = 7;
    CHECK_EQ(mm3_atomic_cas(p, w, &e, 11), 0);
    CHECK_EQ(e, 9); /* the current value */
    CHECK_EQ(mm3_atomic_load(p, w), 9);
    CHECK_EQ(mm3_atomic_cas(p, w, &e, m), 1); /* retry with it */
    CHECK(mm3_atomic_load(p, w) == m);
    e = 0;
    CHECK_EQ(mm3_atomic_cas(p, w, &e, 1), 0);
    CHECK(e == m); /* zero-extended */
    CHECK_EQ(mm3_atomic_cas(p, w, &e, 0), 1);
    CHECK_EQ(mm3_atomic_load(p, w), 0);
    for (int j = w; j < 16; j++) CHECK_EQ(p[j], 0xEE);
    CHECK_EQ(r[23], 0xEE);
  }
}

/* 4 processes x 100000 atomic updates of every width end exact. */
FTEST(atomic_across_processes) {
  enum { P = 4, N = 100000 };
  const char *path;
  mm3_file *f = atomic_file("atomproc", &path);
  REQUIRE(f);
  uint8_t *r = mm3_file_root(f);
  /* r+0 u64 add, r+8 u32 add, r+12 u16 add, r+14 u8 add, r+16 u64 max,
     r+24 i64 min, r+32 u32 cas counter, r+40 i16 signed max */
  mm3_atomic_store(r + 24, 8, 0);
  pid_t pids[P];
  for (int c = 0; c < P; c++) {
    pids[c] = fork_child();
    REQUIRE(pids[c] >= 0);
    if (pids[c] == 0) {
      mm3_file_opts o = {0};
      mm3_file *g = NULL;
      if (mm3_file_open(path, &o, &g)) _exit(10);
      uint8_t *q = mm3_file_root(g);
      uint64_t last = 0;
      int bad = 0;
      for (uint64_t i = 0; i < N; i++) {
        uint64_t prev = mm3_atomic_fetch(q, 8, MM3_ATOMIC_ADD, 1, 0);
        if (i && prev <= last) bad = 1; /* this process's view only moves forward */
        last = prev;
        mm3_atomic_fetch(q + 8, 4, MM3_ATOMIC_ADD, 1, 0);
        mm3_atomic_fetch(q + 12, 2, MM3_ATOMIC_ADD, 1, 0);
        mm3_atomic_fetch(q + 14, 1, MM3_ATOMIC_ADD, 1, 0);
        uint64_t mine = (uint64_t)c * N + i;
        mm3_atomic_fetch(q + 16, 8, MM3_ATOMIC_MAX, mine, 0);
        mm3_atomic_fetch(q + 24, 8, MM3_ATOMIC_MIN, (uint64_t)-(int64_t)mine, 1);
        mm3_atomic_fetch(q + 40, 2, MM3_ATOMIC_MAX, (uint64_t)(int64_t)(i % 30000) - 15000, 1);
        if (i % 10 == 0) {
          uint64_t e = mm3_atomic_load(q + 32, 4);
          while (!mm3_atomic_cas(q + 32, 4, &e, e + 1)) {
          }
        }
      }
      mm3_file_close(g);
      _exit(bad ? 12 : 0);
    }
  }
  for (int c = 0; c < P; c++) CHECK_EQ(wait_child(pids[c]), 0);
  CHECK_EQ(mm3_atomic_load(r, 8), P * N);
  CHECK_EQ(mm3_atomic_load(r + 8, 4), P * N);
  CHECK_EQ(mm3_atomic_load(r + 12, 2), (P * N) & 0xFFFF);
  CHECK_EQ(mm3_atomic_load(r + 14, 1), (P * N) & 0xFF);
  CHECK_EQ(mm3_atomic_load(r + 16, 8), P * N - 1);
  CHECK(mm3_atomic_load(r + 24, 8) == (uint64_t)-(int64_t)(P * N - 1));
  CHECK_EQ(mm3_atomic_load(r + 32, 4), P * (N / 10));
  CHECK_EQ(mm3_atomic_load(r + 40, 2), 29999 - 15000);
  /* atomics are shared live, never logged: the file's log stayed empty */
  CHECK_EQ(hdr_u64(f, 560), 0);
}

RUN_TESTS(txn_commit_keeps_writes, txn_rollback_restores, txn_nested_savepoints, txn_inner_commit_outer_rollback,
          txn_end_without_begin, txn_readonly, txn_durable_commit, txn_large_log,
          txn_rollback_after_log_growth_keeps_heap_consistent,
          crash_recovery_after_log_growth_keeps_heap_consistent, txn_million_inserts_log_stays_small,
          txn_big_rollback_restores_old_data, txn_savepoint_inside_big_txn, txn_savepoint_rollback_keeps_earlier_frees,
          txn_rollback_after_log_grew_frees_its_blocks, txn_death_after_log_grew_leaks_nothing,
          close_of_other_handle_leaves_a_txns_log_blocks, thread_dies_after_gap_recovery_frees_it,
          death_before_a_gap_is_freed_leaks_nothing, death_making_the_first_log_leaks_nothing,
          death_at_unlogged_log_steps_leaves_no_damage, death_while_the_log_grows_leaks_nothing,
          death_in_arena_work_leaves_a_whole_map, lock_free_gets_never_see_a_rollback_half_done,
          death_while_freeing_leaves_no_damage, death_after_an_ops_frees_undoes_the_op,
          txn_crash_in_big_txn_recovers_old_data,
          failed_write_undoes_its_operation_only, failed_write_in_txn_undoes_its_operation_only,
          txn_rollback_to_outer_savepoint_then_more_writes, thread_dies_in_op_of_txn_its_frees_are_undone,
          frees_survive_savepoints_at_their_log_position, failed_single_put_changes_nothing, put_many_without_its_table_still_puts, hmap_next_as_is_walks_a_resize_unlogged, death_in_a_put_many_group_undoes_the_group, check_rolls_back_a_dead_writer_first, usage_rolls_back_a_dead_writer_first, dead_writer_past_reserve_left_for_a_bigger_open,
          fork_in_txn_child_frees_nothing_of_parent,
          failed_map_op_leaves_sequence_even, read_only_reads_wait_for_a_live_writer_not_for_a_dead_one,
          read_only_reads_wait_for_recovery_of_a_dead_writer, read_only_check_during_a_dead_writers_frees, txn_log_replaced_many_times_frees_every_old_block,
          thread_dies_in_plain_op_its_frees_are_undone, txn_ended_at_inner_savepoint_keeps_earlier_frees,
          txn_clear_of_old_map_logs_little, txn_nested_inserts_log_stays_small, close_in_txn_frees_replaced_logs,
          threads_sharing_a_handle_run_transactions,
          file_write_range, close_inside_txn_rolls_back,
          crash_exit_in_txn_file_open, crash_exit_in_txn_reopen, crash_kill_holding_lock, crash_kill_in_loop,
          txn_rollback_seg_push, death_after_new_segment_length_rolls_both_back, kill_in_seg_push_keeps_heap_consistent, fork_in_txn_child_recovers_dead_parent,
          two_handles_one_thread_keep_txn, second_handle_refused_during_txn, thread_dies_in_txn_other_handle_recovers,
          thread_dies_in_txn_same_handle_recovers, thread_dies_in_txn_its_frees_are_undone,
          atomic_load_store_widths, atomic_fetch_every_op,
          atomic_max_min_signed_unsigned, atomic_cas, atomic_across_processes)
