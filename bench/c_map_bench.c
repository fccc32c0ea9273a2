/*
 * c_map_bench.c - the growable hash map through the C API: 1M string-key puts
 * and gets into a memmap3 file whose root is map<string<16>, u64>, against
 * LMDB (one write transaction for every put, then one read transaction for
 * every get), in the same run, with the same keys ("k" .. i) in the same order.
 *
 * Targets (issue): at least 3x LMDB's puts per second and 1.5x its gets.
 *
 * memmap3 runs twice: one mm3_hmap_put / mm3_hmap_get call per key, and every
 * key through one mm3_hmap_put_many / mm3_hmap_get_many call (which overlap
 * the cache misses of groups of 16 keys). Both are printed, each against the
 * same LMDB run, and the summary gives a verdict for each.
 *
 * A second pass does the same with the keys in a random order, with no
 * target: in order, consecutive keys ("k123456", "k123457") are neighbours in
 * LMDB's sorted B-tree, so its pages stay in the cache, while a hash map
 * touches a random bucket and node for every key whatever the order.
 *
 * Last, what a get costs against this machine's memory: the latency of a
 * random load into the bucket table that waits for the one before (a chain
 * of dependent loads over a buffer of the table's size), what a get costs
 * with everything in the cache (a 1,000-key map read again and again), and
 * one get per key in order, from the pass above. A get in order takes less
 * than their sum only because consecutive calls overlap their misses: the
 * CPU starts the next call's bucket load while this call's is still out, if
 * the instructions between them fit its window (the lookup is kept short
 * for that: get_lean in mm3_hmap.c).
 *
 * Both sides get their fastest durable-less settings: LMDB with MDB_WRITEMAP |
 * MDB_NOSYNC | MDB_NOMETASYNC (nothing is synced; memmap3 syncs only on
 * mm3_file_flush, which is not called). LMDB keys are the bare strings (2-8
 * bytes); memmap3 keys are NUL-padded to 16 as its layout wants. Every side
 * reads the pass's keys and values from arrays laid out in the pass's order
 * before the clock starts (a shuffled pass indexing the key table inside the
 * timed loop would add a cache miss per key to the sides that do it). Each
 * round starts from a new, empty file on both sides. Times are CPU times of the
 * process (clock_gettime CLOCK_PROCESS_CPUTIME_ID), best of ROUNDS rounds run
 * alternately, so load from other processes hurts both sides alike.
 *
 * Build and run (with make bench's libraries built):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/c_map_bench.c build/libmemmap3.a -llmdb -lpthread \
 *      -o build/bench/c_map_bench && build/bench/c_map_bench [n]
 */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memmap3.h"

#define KEY 16
#define ROUNDS 5
/* Must equal mm.canonical(mm.type("map<string<16>, u64>")): the fingerprint
   is the hash of this text, so a Lua script can open the file the bench makes. */
#define SCHEMA "root map<string<16>,u64>"
#define ROOT_SIZE 48

static size_t n_keys = 1000000;
static uint32_t *shuffled; /* a random permutation of 0..n_keys-1 */
static char *keys;      /* n_keys * KEY bytes, NUL-padded */
static uint8_t *klen;   /* string length of each key */
/* A pass's keys, their lengths and values, laid out in the pass's order
   before any clock starts: every side reads them one after the other, so
   none pays a cache miss per key to find its next key (compare). */
static char *pkeys;
static uint8_t *plen;
static uint64_t *pvals;
static char mm_path[64], db_path[64], lock_path[80];

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void cleanup(void) {
  unlink(mm_path);
  unlink(db_path);
  unlink(lock_path);
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "c_map_bench: %s: %s\n", what, msg);
  cleanup();
  exit(1);
}

#define MM3_CHECK(call) do { int rc_ = (call); if (rc_) die(#call, mm3_strerror(rc_)); } while (0)
#define MDB_CHECK(call) do { int rc_ = (call); if (rc_) die(#call, mdb_strerror(rc_)); } while (0)

typedef struct result {
  double put, get;   /* seconds */
  uint64_t sum;      /* sum of the values read back */
} result;

/* A new file at mm_path whose root is an empty map<string<16>, u64>: the
   file, its map's type in *t. */
static mm3_file *new_map_file(mm3_ctype *t) {
  unlink(mm_path);
  mm3_file_opts o = {0};
  o.create = 1;
  o.exclusive = 1;
  o.schema = SCHEMA;
  o.root_size = ROOT_SIZE;
  mm3_file *f;
  MM3_CHECK(mm3_file_open(mm_path, &o, &f));
  memset(t, 0, sizeof *t);
  t->kind = MM3_HMAP;
  t->elem_size = 8;
  t->elem_align = 8;
  t->key_size = KEY;
  t->key_align = 1;
  t->key_is_string = 1;
  MM3_CHECK(mm3_ctype_init(t));
  if (t->size != ROOT_SIZE) die("mm3_ctype_init", "map<K,V> head is not 48 bytes");
  return f;
}

/* batch: 0, one mm3_hmap_put / mm3_hmap_get per key; 1, every key in one
   mm3_hmap_put_many / mm3_hmap_get_many call. */
static result run_memmap3(int batch) {
  result r;
  mm3_ctype t;
  mm3_file *f = new_map_file(&t);
  uint8_t *root = mm3_file_root(f);
  uint64_t *got = malloc(n_keys * sizeof *got);
  uint8_t *found = malloc(n_keys);
  if (!got || !found) die("malloc", "out of memory");

  double t0 = cpu_now();
  if (batch) {
    MM3_CHECK(mm3_hmap_put_many(f, root, &t, n_keys, pkeys, pvals, NULL));
  } else {
    for (size_t i = 0; i < n_keys; i++) MM3_CHECK(mm3_hmap_put(f, root, &t, pkeys + i * KEY, &pvals[i], NULL));
  }
  double t1 = cpu_now();
  uint64_t sum = 0;
  if (batch) {
    MM3_CHECK(mm3_hmap_get_many(f, root, &t, n_keys, pkeys, got, found));
    for (size_t i = 0; i < n_keys; i++) sum += found[i] ? got[i] : 0;
  } else {
    for (size_t i = 0; i < n_keys; i++) {
      uint64_t v;
      MM3_CHECK(mm3_hmap_get(f, root, &t, pkeys + i * KEY, &v, NULL));
      sum += v;
    }
  }
  double t2 = cpu_now();
  if (mm3_container_len(f, root, &t) != n_keys) die("memmap3", "the map lost entries");
  mm3_file_close(f);
  unlink(mm_path);
  free(got);
  free(found);
  r.put = t1 - t0;
  r.get = t2 - t1;
  r.sum = sum;
  return r;
}

static result run_lmdb(void) {
  result r;
  unlink(db_path);
  unlink(lock_path);
  MDB_env *env;
  MDB_CHECK(mdb_env_create(&env));
  MDB_CHECK(mdb_env_set_mapsize(env, (size_t)4 << 30));
  MDB_CHECK(mdb_env_open(env, db_path, MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOSUBDIR, 0644));
  MDB_txn *txn;
  MDB_dbi dbi;

  double t0 = cpu_now();
  MDB_CHECK(mdb_txn_begin(env, NULL, 0, &txn));
  MDB_CHECK(mdb_dbi_open(txn, NULL, 0, &dbi));
  for (size_t i = 0; i < n_keys; i++) {
    MDB_val k = {plen[i], pkeys + i * KEY}, d = {sizeof pvals[i], &pvals[i]};
    MDB_CHECK(mdb_put(txn, dbi, &k, &d, 0));
  }
  MDB_CHECK(mdb_txn_commit(txn));
  double t1 = cpu_now();
  uint64_t sum = 0;
  MDB_CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
  for (size_t i = 0; i < n_keys; i++) {
    MDB_val k = {plen[i], pkeys + i * KEY}, d;
    MDB_CHECK(mdb_get(txn, dbi, &k, &d));
    uint64_t v;
    memcpy(&v, d.mv_data, sizeof v);
    sum += v;
  }
  mdb_txn_abort(txn);
  double t2 = cpu_now();
  MDB_stat st;
  MDB_CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
  MDB_CHECK(mdb_stat(txn, dbi, &st));
  mdb_txn_abort(txn);
  if (st.ms_entries != n_keys) die("lmdb", "the database lost entries");
  mdb_env_close(env);
  unlink(db_path);
  unlink(lock_path);
  r.put = t1 - t0;
  r.get = t2 - t1;
  r.sum = sum;
  return r;
}

static void keep_best(result *best, result r, int first) {
  if (first || r.put < best->put) best->put = r.put;
  if (first || r.get < best->get) best->get = r.get;
  best->sum = r.sum;
}

static const char *rate(double ops, char *buf, size_t n) {
  if (ops >= 1e6) snprintf(buf, n, "%.2f M/s", ops / 1e6);
  else snprintf(buf, n, "%.1f k/s", ops / 1e3);
  return buf;
}

static double last_mm_get; /* memmap3's best time for every get, one call each, keys in order */

typedef struct ratios {
  double put, get;           /* one call per key */
  double put_many, get_many; /* mm3_hmap_put_many / mm3_hmap_get_many */
} ratios;

/* Best of ROUNDS alternating rounds of the three, with keys in order
   ("k1", "k2"...) or shuffled; prints them, returns the ratios. */
static ratios compare(const char *title, const uint32_t *order) {
  for (size_t i = 0; i < n_keys; i++) {
    size_t j = order ? order[i] : i;
    memcpy(pkeys + i * KEY, keys + j * KEY, KEY);
    plen[i] = klen[j];
    pvals[i] = j + 1;
  }
  result one = {0}, many = {0}, db = {0};
  for (int round = 0; round < ROUNDS; round++) {
    keep_best(&one, run_memmap3(0), round == 0);
    keep_best(&many, run_memmap3(1), round == 0);
    keep_best(&db, run_lmdb(), round == 0);
  }
  uint64_t want = (uint64_t)n_keys * (n_keys + 1) / 2;
  if (one.sum != want || many.sum != want || db.sum != want)
    die("checksum", "the sides read back different values");
  double n = (double)n_keys;
  char a[32], b[32];
  ratios r = {db.put / one.put, db.get / one.get, db.put / many.put, db.get / many.get};
  if (!order) last_mm_get = one.get;
  printf("\n%s\n", title);
  printf("puts, one call each:  memmap3 %11s (%.3f s), LMDB %11s (%.3f s), ratio %5.2fx\n",
         rate(n / one.put, a, sizeof a), one.put, rate(n / db.put, b, sizeof b), db.put, r.put);
  printf("puts, put_many:       memmap3 %11s (%.3f s), LMDB %11s (%.3f s), ratio %5.2fx\n",
         rate(n / many.put, a, sizeof a), many.put, rate(n / db.put, b, sizeof b), db.put, r.put_many);
  printf("gets, one call each:  memmap3 %11s (%.3f s), LMDB %11s (%.3f s), ratio %5.2fx\n",
         rate(n / one.get, a, sizeof a), one.get, rate(n / db.get, b, sizeof b), db.get, r.get);
  printf("gets, get_many:       memmap3 %11s (%.3f s), LMDB %11s (%.3f s), ratio %5.2fx\n",
         rate(n / many.get, a, sizeof a), many.get, rate(n / db.get, b, sizeof b), db.get, r.get_many);
  return r;
}

/* Nanoseconds of one load that must wait for the one before (a chain
   through a random cyclic order of the 64-byte lines of `bytes` bytes): what
   a lookup pays for its random bucket when nothing can overlap it. */
static double miss_ns(size_t bytes) {
  size_t n = bytes / 64;
  uint64_t *a = malloc(n * 64);
  if (!a) die("malloc", "out of memory");
  for (size_t i = 0; i < n; i++) a[i * 8] = i;
  uint64_t x = 0x2545f4914f6cdd1du;
  for (size_t i = n - 1; i > 0; i--) { /* Sattolo: one cycle through every line */
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t j = (size_t)(x % i);
    uint64_t t = a[i * 8];
    a[i * 8] = a[j * 8];
    a[j * 8] = t;
  }
  size_t m = 4000000, p = 0;
  double best = 0;
  for (int round = 0; round < ROUNDS; round++) {
    double t0 = cpu_now();
    for (size_t i = 0; i < m; i++) p = a[p * 8];
    double t = cpu_now() - t0;
    if (round == 0 || t < best) best = t;
  }
  free(a);
  if (p == n) die("miss_ns", "impossible"); /* (keeps the chain) */
  return best * 1e9 / (double)m;
}

/* Nanoseconds of one mm3_hmap_get with everything in the cache: the
   1,000 keys of a map read again and again. */
static double hot_get_ns(void) {
  enum { HOT = 1000, READS = 3000 };
  mm3_ctype t;
  mm3_file *f = new_map_file(&t);
  uint8_t *root = mm3_file_root(f);
  for (size_t i = 0; i < HOT && i < n_keys; i++) MM3_CHECK(mm3_hmap_put(f, root, &t, keys + i * KEY, &i, NULL));
  size_t hot = HOT < n_keys ? HOT : n_keys;
  uint64_t sum = 0, v;
  double best = 0;
  for (int round = 0; round < ROUNDS; round++) {
    double t0 = cpu_now();
    for (int r = 0; r < READS; r++)
      for (size_t i = 0; i < hot; i++) sum += mm3_hmap_get(f, root, &t, keys + i * KEY, &v, NULL) == 0 ? v : 0;
    double dt = cpu_now() - t0;
    if (round == 0 || dt < best) best = dt;
  }
  mm3_file_close(f);
  unlink(mm_path);
  if (sum == 1) die("hot_get_ns", "impossible");
  return best * 1e9 / ((double)READS * (double)hot);
}

static void verdict(const char *what, double ratio, double target) {
  printf("  %-44s %6.2fx  target >= %.1fx  %s\n", what, ratio, target, ratio >= target ? "met" : "MISSED");
}

int main(int argc, char **argv) {
  if (argc > 1) n_keys = strtoull(argv[1], NULL, 10);
  if (n_keys == 0 || n_keys > 99999999) die("usage", "c_map_bench [number of keys, 1..99999999]");
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  snprintf(mm_path, sizeof mm_path, "%.30s/c_map_bench.%ld.mm3", dir, (long)getpid());
  snprintf(db_path, sizeof db_path, "%.30s/c_map_bench.%ld.mdb", dir, (long)getpid());
  snprintf(lock_path, sizeof lock_path, "%s-lock", db_path);

  keys = calloc(n_keys, KEY);
  klen = malloc(n_keys);
  shuffled = malloc(n_keys * sizeof *shuffled);
  pkeys = malloc(n_keys * KEY);
  plen = malloc(n_keys);
  pvals = malloc(n_keys * sizeof *pvals);
  if (!keys || !klen || !shuffled || !pkeys || !plen || !pvals) die("malloc", "out of memory");
  for (size_t i = 0; i < n_keys; i++) {
    klen[i] = (uint8_t)snprintf(keys + i * KEY, KEY, "k%zu", i + 1);
    shuffled[i] = (uint32_t)i;
  }
  uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64: the same permutation every run */
  for (size_t i = n_keys - 1; i > 0; i--) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t j = (size_t)(x % (i + 1));
    uint32_t tmp = shuffled[i];
    shuffled[i] = shuffled[j];
    shuffled[j] = tmp;
  }

  printf("\nC API: map<string<16>, u64> vs LMDB, %zu keys (best of %d, CPU time; ratio = memmap3 / LMDB ops)\n",
         n_keys, ROUNDS);
  printf("---------------------------------------------------------------------------------------------\n");
  ratios in = compare("keys in order, \"k1\", \"k2\"... (the target workload)", NULL);
  ratios rnd = compare("keys in a random order (for comparison: no locality for either side)", shuffled);

  printf("\nsummary (keys in order; LMDB puts all in one write transaction)\n");
  verdict("puts, one mm3_hmap_put each / LMDB", in.put, 3);
  verdict("puts, mm3_hmap_put_many / LMDB", in.put_many, 3);
  verdict("gets, one mm3_hmap_get each / LMDB", in.get, 1.5);
  verdict("gets, mm3_hmap_get_many / LMDB", in.get_many, 1.5);
  printf("  %-44s %6.2fx / %.2fx  (no target)\n", "random order puts, one each / put_many", rnd.put, rnd.put_many);
  printf("  %-44s %6.2fx / %.2fx  (no target)\n", "random order gets, one each / get_many", rnd.get, rnd.get_many);

  /* What a get costs against the machine's memory (see the top). */
  size_t table = 64; /* the map's bucket table at n_keys: 8 bytes a bucket, at most half full */
  while (table / 8 / 2 < n_keys) table *= 2;
  double miss = miss_ns(table), hot = hot_get_ns();
  printf("\none mm3_hmap_get per key against this machine's memory (keys in order):\n");
  printf("  a load that waits for the one before, into %zu KiB (the table's size): %.0f ns\n", table >> 10, miss);
  printf("  a get with everything in the cache (1,000 keys):                     %.0f ns\n", hot);
  double got = last_mm_get * 1e9 / (double)n_keys;
  printf("  a get of the pass above:                                             %.0f ns (%s)\n", got,
         got < miss + hot ? "less than the two: consecutive calls overlap their misses" : "no overlap this run");
  free(keys);
  free(klen);
  free(shuffled);
  free(pkeys);
  free(plen);
  free(pvals);
  cleanup();
  return 0;
}
