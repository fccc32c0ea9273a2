/*
 * test_containers.c - containers inside a file through the public C API:
 * layouts (mm3_ctype_init), vec and ring, fixed and growable hash maps,
 * segmented lists, values, and mm3_container_check.
 *
 * Each container is the root of a file (or a field of a struct root) created
 * with the schema text the Lua layer writes for it. Every test runs inside
 * mm3_fixture.h's fixture: its files are closed and removed afterwards.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "memmap3.h"
#include "mm3_test.h"
#include "mm3_fixture.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static mm3_ctype ctype(mm3_ckind kind, uint32_t elem_size, uint32_t elem_align, uint64_t cap) {
  mm3_ctype t;
  memset(&t, 0, sizeof t);
  t.kind = kind;
  t.elem_size = elem_size;
  t.elem_align = elem_align;
  t.cap = cap;
  return t;
}

static mm3_ctype map_ctype(mm3_ckind kind, uint32_t key_size, uint32_t key_align, int key_is_string,
                           uint32_t val_size, uint32_t val_align, uint64_t cap) {
  mm3_ctype t = ctype(kind, val_size, val_align, cap);
  t.key_size = key_size;
  t.key_align = key_align;
  t.key_is_string = key_is_string;
  return t;
}

/* Lay t out and create a file whose root is that container (*path, may be
   NULL, receives its path); NULL on failure. */
static mm3_file *container_file_at(const char *tag, const char *schema, mm3_ctype *t, const char **path) {
  int rc = mm3_ctype_init(t);
  CHECK_RC(rc);
  if (rc) return NULL;
  return new_file(tag, schema, t->size, path);
}

static mm3_file *container_file(const char *tag, const char *schema, mm3_ctype *t) {
  return container_file_at(tag, schema, t, NULL);
}

/* A file whose root is map<u64,u64,cap> (cap 0: the growable map<u64,u64>),
   its type in *t (and its path in *path, unless NULL); NULL on failure. */
static mm3_file *u64_map_file(const char *tag, uint64_t cap, mm3_ctype *t, const char **path) {
  char schema[64];
  if (cap) snprintf(schema, sizeof schema, "root map<u64,u64,%llu>", (unsigned long long)cap);
  else snprintf(schema, sizeof schema, "root map<u64,u64>");
  *t = map_ctype(cap ? MM3_FMAP : MM3_HMAP, 8, 8, 0, 8, 8, cap);
  return container_file_at(tag, schema, t, path);
}

/* Put k -> k for every k in [from, to) into the u64 map at c: 0, or the
   first error (the puts stop there). */
static int put_keys(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t from, uint64_t to) {
  for (uint64_t k = from; k < to; k++) {
    int rc = mm3_hmap_put(f, c, t, &k, &k, NULL);
    if (rc) return rc;
  }
  return 0;
}

/* A string<16> key: NUL-padded, as the contract asks. */
typedef struct {
  char s[16];
} skey;

static skey key16(const char *s) {
  skey k;
  memset(&k, 0, sizeof k);
  memcpy(k.s, s, strlen(s) < 16 ? strlen(s) : 16);
  return k;
}

static uint32_t rd32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static int file_ok(mm3_file *f) {
  char why[160];
  int rc = mm3_file_check(f, why, sizeof why);
  if (rc) fprintf(stderr, "  %s: mm3_file_check: %s\n", mm3t_current, why);
  return rc == 0;
}

static int container_ok(mm3_file *f, uint8_t *c, const mm3_ctype *t) {
  char why[160];
  int rc = mm3_container_check(f, c, t, why, sizeof why);
  if (rc) fprintf(stderr, "  %s: mm3_container_check: %s\n", mm3t_current, why);
  return rc == 0;
}

/* ========================================================================
 * Layouts
 * ======================================================================== */

FTEST(ctype_vec_ring_layout) {
  mm3_ctype t = ctype(MM3_VEC, 4, 4, 8); /* vec<u32,8> */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 40);
  CHECK_EQ(t.align, 8);
  CHECK_EQ(t.items_off, 8);
  t = ctype(MM3_RING, 4, 4, 4); /* ring<u32,4> */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 24);
  CHECK_EQ(t.align, 8);
  CHECK_EQ(t.items_off, 8);
  t = ctype(MM3_VEC, 1, 1, 3); /* vec<u8,3>: padded to 8 */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 16);
  t = ctype(MM3_VEC, 16, 16, 3); /* 16-aligned items start at 16 */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.align, 16);
  CHECK_EQ(t.items_off, 16);
  CHECK_EQ(t.size, 64);
  t = ctype(MM3_VEC, 12, 4, 5); /* a struct of three u32 */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.items_off, 8);
  CHECK_EQ(t.size, 72);
  t = ctype(MM3_VEC, 8, 8, (uint64_t)1 << 37); /* the largest: 2^40 bytes of items */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 8 + ((uint64_t)1 << 40));
}

FTEST(ctype_map_layout) {
  mm3_ctype t = map_ctype(MM3_FMAP, 8, 8, 0, 8, 8, 64); /* map<u64,u64,64> */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.key_off, 8);
  CHECK_EQ(t.val_off, 16);
  CHECK_EQ(t.node_size, 24);
  CHECK_EQ(t.align, 8);
  CHECK_EQ(t.buckets, 64);
  CHECK_EQ(t.nodes_off, 16 + 4 * 64);
  CHECK_EQ(t.size, 16 + 4 * 64 + 64 * 24);
  t = map_ctype(MM3_FMAP, 8, 8, 0, 8, 8, 5); /* at least 8 buckets */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.buckets, 8);
  CHECK_EQ(t.nodes_off, 48);
  CHECK_EQ(t.size, 48 + 5 * 24);
  t = map_ctype(MM3_FMAP, 8, 8, 0, 8, 8, 9); /* a power of two >= N */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.buckets, 16);
  t = map_ctype(MM3_FMAP, 16, 1, 1, 4, 4, 8); /* map<string<16>,u32,8> */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.key_off, 8);
  CHECK_EQ(t.val_off, 24);
  CHECK_EQ(t.node_size, 32);
  CHECK_EQ(t.nodes_off, 48);
  CHECK_EQ(t.size, 48 + 8 * 32);
  t = map_ctype(MM3_FMAP, 4, 4, 0, 1, 1, 3); /* map<u32,u8,3>: parts naturally aligned */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.key_off, 8);
  CHECK_EQ(t.val_off, 12);
  CHECK_EQ(t.node_size, 16);
  t = map_ctype(MM3_FMAP, 8, 8, 0, 16, 16, 2); /* a 16-aligned value */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.val_off, 16);
  CHECK_EQ(t.node_size, 32);
  CHECK_EQ(t.align, 16);
  CHECK_EQ(t.nodes_off % 16, 0);
  t = map_ctype(MM3_HMAP, 16, 1, 1, 8, 8, 0); /* map<string<16>,u64> */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 48);
  CHECK_EQ(t.align, 8);
  CHECK_EQ(t.key_off, 16);
  CHECK_EQ(t.val_off, 32);
  CHECK_EQ(t.node_size, 40);
  t = map_ctype(MM3_HMAP, 8, 8, 0, 8, 8, 0); /* map<u64,u64> */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 48);
  CHECK_EQ(t.key_off, 16);
  CHECK_EQ(t.val_off, 24);
  CHECK_EQ(t.node_size, 32);
}

FTEST(ctype_segmented_value_layout) {
  mm3_ctype t = ctype(MM3_SEGMENTED, 8, 8, 0); /* segmented<u64> */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 8 + 8 * 56);
  CHECK_EQ(t.align, 8);
  CHECK_EQ(t.seg_first, 512); /* segment 0 is a page */
  t = ctype(MM3_SEGMENTED, 12, 4, 0);
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.seg_first, 256); /* a power of two, at most a page */
  t = ctype(MM3_SEGMENTED, 1, 1, 0);
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.seg_first, 4096);
  t = ctype(MM3_SEGMENTED, 8192, 8, 0); /* bigger than a page: one per segment 0 */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.seg_first, 1);
  t = ctype(MM3_VALUE, 0, 0, 0); /* value */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 16);
  CHECK_EQ(t.align, 8);
  t = ctype(MM3_VALUE, 0, 0, 8); /* value<8> */
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 12);
  CHECK_EQ(t.align, 4);
  t = ctype(MM3_VALUE, 0, 0, 10);
  CHECK_RC(mm3_ctype_init(&t));
  CHECK_EQ(t.size, 16);
  t = ctype(MM3_VALUE, 0, 0, 0xFFFFFFFFu); /* its length is a u32 */
  CHECK_RC(mm3_ctype_init(&t));
  t = ctype(MM3_VALUE, 0, 0, (uint64_t)1 << 32);
  CHECK_EQ(mm3_ctype_init(&t), MM3_ETOOBIG);
}

FTEST(ctype_bad) {
  static const struct {
    uint32_t size, align;
  } bad_elems[] = {{0, 1}, {0, 8}, {4, 0}, {6, 3}, {6, 4}, {12, 8}, {8, 24}};
  static const mm3_ckind kinds[] = {MM3_VEC, MM3_RING, MM3_FMAP, MM3_HMAP, MM3_SEGMENTED};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
    for (size_t i = 0; i < sizeof bad_elems / sizeof bad_elems[0]; i++) {
      mm3_ctype t = map_ctype(kinds[k], 8, 8, 0, bad_elems[i].size, bad_elems[i].align, 4);
      int rc = mm3_ctype_init(&t);
      if (rc != MM3_EINVAL)
        fprintf(stderr, "  kind %d elem %u/%u: %d\n", kinds[k], bad_elems[i].size, bad_elems[i].align, rc);
      CHECK_EQ(rc, MM3_EINVAL);
    }
  /* map keys */
  mm3_ctype t = map_ctype(MM3_FMAP, 0, 1, 0, 8, 8, 4);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
  t = map_ctype(MM3_HMAP, 0, 1, 1, 8, 8, 0);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
  t = map_ctype(MM3_FMAP, 8, 0, 0, 8, 8, 4);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
  t = map_ctype(MM3_HMAP, 8, 3, 0, 8, 8, 0);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
  /* unknown kinds */
  t = ctype((mm3_ckind)0, 8, 8, 4);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
  t = ctype((mm3_ckind)99, 8, 8, 4);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
  /* capacities too large */
  t = ctype(MM3_VEC, 8, 8, ((uint64_t)1 << 37) + 1);
  CHECK_EQ(mm3_ctype_init(&t), MM3_ETOOBIG);
  t = ctype(MM3_RING, 1, 1, UINT64_MAX);
  CHECK_EQ(mm3_ctype_init(&t), MM3_ETOOBIG);
  t = map_ctype(MM3_FMAP, 8, 8, 0, 8, 8, 0xffffffffu);
  CHECK_EQ(mm3_ctype_init(&t), MM3_ETOOBIG);
  t = map_ctype(MM3_FMAP, 8, 8, 0, 8, 8, UINT64_MAX);
  CHECK_EQ(mm3_ctype_init(&t), MM3_ETOOBIG);
  t = ctype(MM3_VALUE, 0, 0, ((uint64_t)1 << 40) + 1);
  CHECK_EQ(mm3_ctype_init(&t), MM3_ETOOBIG);
}

/* A fixed container of capacity 0 is a bad capacity (MM3_EINVAL), not one
   too big (it was MM3_ETOOBIG before 8933866). */
FTEST(ctype_zero_capacity_is_einval) {
  mm3_ctype t = ctype(MM3_VEC, 4, 4, 0);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
  t = ctype(MM3_RING, 4, 4, 0);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
  t = map_ctype(MM3_FMAP, 8, 8, 0, 8, 8, 0);
  CHECK_EQ(mm3_ctype_init(&t), MM3_EINVAL);
}

/* ========================================================================
 * vec and ring
 * ======================================================================== */

FTEST(vec_push_at_pop) {
  mm3_ctype t = ctype(MM3_VEC, 4, 4, 8);
  mm3_file *f = container_file("vec", "root vec<u32,8>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK(mm3_vec_at(f, c, &t, 0) == NULL);
  for (uint32_t i = 0; i < 8; i++) {
    uint32_t v = 100 + i;
    CHECK_RC(mm3_vec_push(f, c, &t, &v));
    CHECK_EQ(mm3_container_len(f, c, &t), i + 1);
  }
  for (uint32_t i = 0; i < 8; i++) {
    uint8_t *p = mm3_vec_at(f, c, &t, i);
    REQUIRE(p);
    CHECK(p == c + 8 + 4 * i); /* documented layout: len, then items */
    CHECK_EQ(rd32(p), 100 + i);
  }
  CHECK(mm3_vec_at(f, c, &t, 8) == NULL);
  CHECK(mm3_vec_at(f, c, &t, UINT64_MAX) == NULL);
  CHECK_EQ(rd64(c), 8);
  /* full */
  uint32_t extra = 999;
  CHECK_EQ(mm3_vec_push(f, c, &t, &extra), MM3_EFULL);
  CHECK_EQ(mm3_container_len(f, c, &t), 8);
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 7)), 107);
  /* pop */
  uint32_t out = 0;
  CHECK_RC(mm3_vec_pop(f, c, &t, &out));
  CHECK_EQ(out, 107);
  CHECK_EQ(mm3_container_len(f, c, &t), 7);
  CHECK(mm3_vec_at(f, c, &t, 7) == NULL);
  CHECK_EQ(rd32(c + 8 + 4 * 7), 0); /* the slot is cleared */
  CHECK_RC(mm3_vec_pop(f, c, &t, NULL));
  CHECK_EQ(mm3_container_len(f, c, &t), 6);
  for (int i = 0; i < 6; i++) CHECK_RC(mm3_vec_pop(f, c, &t, &out));
  CHECK_EQ(out, 100);
  out = 4242;
  CHECK_EQ(mm3_vec_pop(f, c, &t, &out), MM3_ERANGE);
  CHECK_EQ(out, 4242);
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* A type of another kind (or one mm3_ctype_init never laid out) given to a
   container call: MM3_EINVAL, nothing touched (a vec's type given to a map
   call divided by its node size, 0). The container is a map<u64,u64>. */
FTEST(calls_refuse_another_kinds_type) {
  mm3_ctype m, vec = ctype(MM3_VEC, 8, 8, 8), seg = ctype(MM3_SEGMENTED, 8, 8, 0), raw = {0};
  mm3_file *f = u64_map_file("kinds", 0, &m, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_RC(put_keys(f, c, &m, 1, 4));
  CHECK_RC(mm3_ctype_init(&vec));
  CHECK_RC(mm3_ctype_init(&seg));
  raw.kind = MM3_HMAP; /* never laid out: node size 0 */
  uint64_t x = 7, out = 0;
  size_t done = 99;
  uint64_t pos[3] = {0, 0, 0};
  uint8_t *k, *v;
  const mm3_ctype *wrong[] = {&vec, &seg, &raw};
  for (int i = 0; i < 3; i++) {
    const mm3_ctype *t = wrong[i];
    CHECK_EQ(mm3_hmap_put(f, c, t, &x, &x, NULL), MM3_EINVAL);
    CHECK_EQ(mm3_hmap_get(f, c, t, &x, &out, NULL), MM3_EINVAL);
    CHECK_EQ(mm3_hmap_del(f, c, t, &x), MM3_EINVAL);
    CHECK_EQ(mm3_hmap_clear(f, c, t), MM3_EINVAL);
    CHECK_EQ(mm3_hmap_put_many(f, c, t, 1, &x, &x, &done), MM3_EINVAL);
    CHECK_EQ(done, 0);
    CHECK_EQ(mm3_hmap_get_many(f, c, t, 1, &x, &out, NULL), MM3_EINVAL);
    CHECK_EQ(mm3_hmap_next(f, c, t, pos, &k, &v), MM3_EINVAL);
    CHECK_EQ(mm3_hmap_next_copy(f, c, t, pos, &out, &out), MM3_EINVAL);
    CHECK_EQ(mm3_value_set(f, c, t, &x, 8), MM3_EINVAL);
    CHECK_EQ(mm3_value_get(f, c, t, &out, 8, NULL), MM3_EINVAL);
  }
  const mm3_ctype *not_seq[] = {&m, &seg}, *not_seg[] = {&m, &vec};
  for (int i = 0; i < 2; i++) {
    const mm3_ctype *t = not_seq[i], *u = not_seg[i];
    CHECK_EQ(mm3_vec_push(f, c, t, &x), MM3_EINVAL);
    CHECK_EQ(mm3_vec_pop(f, c, t, &out), MM3_EINVAL);
    CHECK_EQ(mm3_vec_insert(f, c, t, 0, &x), MM3_EINVAL);
    CHECK_EQ(mm3_vec_remove(f, c, t, 0, &out), MM3_EINVAL);
    CHECK_EQ(mm3_vec_set(f, c, t, 0, &x), MM3_EINVAL);
    CHECK_EQ(mm3_vec_clear(f, c, t), MM3_EINVAL);
    CHECK(mm3_vec_at(f, c, t, 0) == NULL);
    CHECK_EQ(mm3_seg_push(f, c, u, &x), MM3_EINVAL);
    CHECK_EQ(mm3_seg_pop(f, c, u, &out), MM3_EINVAL);
    CHECK_EQ(mm3_seg_set(f, c, u, 0, &x), MM3_EINVAL);
    CHECK_EQ(mm3_seg_truncate(f, c, u, 0), MM3_EINVAL);
    CHECK(mm3_seg_at(f, c, u, 0) == NULL);
  }
  /* the map as it was */
  CHECK_EQ(mm3_container_len(f, c, &m), 3);
  for (uint64_t key = 1; key < 4; key++) {
    CHECK_RC(mm3_hmap_get(f, c, &m, &key, &out, NULL));
    CHECK_EQ(out, key);
  }
  CHECK(container_ok(f, c, &m));
  CHECK(file_ok(f));
}

FTEST(vec_insert_remove) {
  mm3_ctype t = ctype(MM3_VEC, 4, 4, 8);
  mm3_file *f = container_file("vecins", "root vec<u32,8>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  uint32_t v;
  v = 20;
  CHECK_RC(mm3_vec_insert(f, c, &t, 0, &v)); /* into an empty vec */
  v = 40;
  CHECK_RC(mm3_vec_insert(f, c, &t, 1, &v)); /* at len: append */
  v = 10;
  CHECK_RC(mm3_vec_insert(f, c, &t, 0, &v)); /* at the front */
  v = 30;
  CHECK_RC(mm3_vec_insert(f, c, &t, 2, &v)); /* in the middle */
  static const uint32_t want[] = {10, 20, 30, 40};
  CHECK_EQ(mm3_container_len(f, c, &t), 4);
  for (int i = 0; i < 4; i++) CHECK_EQ(rd32(mm3_vec_at(f, c, &t, (uint64_t)i)), want[i]);
  v = 77;
  CHECK_EQ(mm3_vec_insert(f, c, &t, 5, &v), MM3_ERANGE); /* past len */
  CHECK_EQ(mm3_container_len(f, c, &t), 4);
  /* remove from the middle, the front, the end */
  uint32_t out = 0;
  CHECK_RC(mm3_vec_remove(f, c, &t, 1, &out));
  CHECK_EQ(out, 20);
  CHECK_EQ(mm3_container_len(f, c, &t), 3);
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 1)), 30);
  CHECK_EQ(rd32(c + 8 + 4 * 3), 0); /* the vacated last slot is cleared */
  CHECK_RC(mm3_vec_remove(f, c, &t, 0, NULL));
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 0)), 30);
  CHECK_RC(mm3_vec_remove(f, c, &t, 1, &out));
  CHECK_EQ(out, 40);
  CHECK_EQ(mm3_container_len(f, c, &t), 1);
  out = 5;
  CHECK_EQ(mm3_vec_remove(f, c, &t, 1, &out), MM3_ERANGE);
  CHECK_EQ(out, 5);
  /* insert into a full vec */
  for (uint32_t i = 0; i < 7; i++) CHECK_RC(mm3_vec_push(f, c, &t, &i));
  v = 1;
  CHECK_EQ(mm3_vec_insert(f, c, &t, 0, &v), MM3_EFULL);
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 0)), 30);
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 7)), 6);
  CHECK(container_ok(f, c, &t));
}

FTEST(vec_set_clear) {
  mm3_ctype t = ctype(MM3_VEC, 8, 8, 4);
  mm3_file *f = container_file("vecset", "root vec<u64,4>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  uint64_t v = 1;
  CHECK_EQ(mm3_vec_set(f, c, &t, 0, &v), MM3_ERANGE); /* empty */
  for (uint64_t i = 0; i < 3; i++) CHECK_RC(mm3_vec_push(f, c, &t, &i));
  v = 0xABCDEF0123456789ULL;
  CHECK_RC(mm3_vec_set(f, c, &t, 2, &v));
  CHECK(rd64(mm3_vec_at(f, c, &t, 2)) == v);
  CHECK_EQ(mm3_vec_set(f, c, &t, 3, &v), MM3_ERANGE); /* len, not capacity */
  CHECK_EQ(rd64(mm3_vec_at(f, c, &t, 1)), 1);
  CHECK_RC(mm3_vec_clear(f, c, &t));
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK(mm3_vec_at(f, c, &t, 0) == NULL);
  CHECK(all_zero(c, t.size)); /* the elements are zeroed */
  CHECK_RC(mm3_vec_clear(f, c, &t)); /* clearing an empty vec */
  v = 9;
  CHECK_RC(mm3_vec_push(f, c, &t, &v));
  CHECK_EQ(rd64(mm3_vec_at(f, c, &t, 0)), 9);
  CHECK(container_ok(f, c, &t));
}

/* 16-aligned items start at 16; what is pushed is in the file after reopening. */
FTEST(vec_persists) {
  const char *path;
  mm3_ctype t = ctype(MM3_VEC, 16, 16, 3);
  REQUIRE(mm3_ctype_init(&t) == 0);
  mm3_file *f = new_file("vecpersist", "root vec<u128,3>", t.size, &path);
  REQUIRE(f);
  uint8_t item[16];
  for (int i = 0; i < 16; i++) item[i] = (uint8_t)(0xA0 + i);
  CHECK_RC(mm3_vec_push(f, mm3_file_root(f), &t, item));
  CHECK(mm3_vec_at(f, mm3_file_root(f), &t, 0) == mm3_file_root(f) + 16);
  close_file(f);
  mm3_file *g = open_existing(path, 1);
  REQUIRE(g);
  CHECK_EQ(mm3_container_len(g, mm3_file_root(g), &t), 1);
  uint8_t *p = mm3_vec_at(g, mm3_file_root(g), &t, 0);
  CHECK(p && memcmp(p, item, 16) == 0);
}

FTEST(ring_overwrites_oldest) {
  mm3_ctype t = ctype(MM3_RING, 4, 4, 4);
  mm3_file *f = container_file("ring", "root ring<u32,4>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  for (uint32_t i = 1; i <= 3; i++) CHECK_RC(mm3_vec_push(f, c, &t, &i));
  CHECK_EQ(mm3_container_len(f, c, &t), 3);
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 0)), 1);
  for (uint32_t i = 4; i <= 10; i++) CHECK_RC(mm3_vec_push(f, c, &t, &i)); /* never full */
  CHECK_EQ(mm3_container_len(f, c, &t), 4);
  CHECK_EQ(rd64(c), 10); /* the head counts every push */
  for (uint32_t i = 0; i < 4; i++) CHECK_EQ(rd32(mm3_vec_at(f, c, &t, i)), 7 + i); /* oldest first */
  CHECK(mm3_vec_at(f, c, &t, 4) == NULL);
  /* set addresses elements from the oldest too */
  uint32_t v = 70;
  CHECK_RC(mm3_vec_set(f, c, &t, 0, &v));
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 0)), 70);
  CHECK_EQ(mm3_vec_set(f, c, &t, 4, &v), MM3_ERANGE);
  /* one more push overwrites exactly that oldest element */
  v = 11;
  CHECK_RC(mm3_vec_push(f, c, &t, &v));
  for (uint32_t i = 0; i < 4; i++) CHECK_EQ(rd32(mm3_vec_at(f, c, &t, i)), 8 + i);
  CHECK(container_ok(f, c, &t));
  CHECK_RC(mm3_vec_clear(f, c, &t));
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  v = 12;
  CHECK_RC(mm3_vec_push(f, c, &t, &v));
  CHECK_EQ(mm3_container_len(f, c, &t), 1);
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 0)), 12);
}

FTEST(ring_only_pushes) {
  mm3_ctype t = ctype(MM3_RING, 4, 4, 4);
  mm3_file *f = container_file("ringpop", "root ring<u32,4>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  uint32_t v = 5, out = 77;
  CHECK_RC(mm3_vec_push(f, c, &t, &v));
  CHECK_EQ(mm3_vec_pop(f, c, &t, &out), MM3_EINVAL);
  CHECK_EQ(out, 77);
  CHECK_EQ(mm3_vec_insert(f, c, &t, 0, &v), MM3_EINVAL);
  CHECK_EQ(mm3_vec_remove(f, c, &t, 0, &out), MM3_EINVAL);
  CHECK_EQ(out, 77);
  CHECK_EQ(mm3_container_len(f, c, &t), 1);
  CHECK_EQ(rd32(mm3_vec_at(f, c, &t, 0)), 5);
  /* The failed calls left no work behind: the lock is free, the log empty. */
  CHECK_EQ(hdr_u64(f, 560), 0);
  CHECK(file_ok(f));
}

/* ========================================================================
 * Fixed maps: map<K,V,N>
 * ======================================================================== */

FTEST(fmap_integer_keys) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("fmap", 64, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  for (uint64_t i = 0; i < 64; i++) {
    uint64_t k = i * 1000 + 1, v = i * 3;
    int created = -1;
    CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, &created));
    CHECK_EQ(created, 1);
  }
  CHECK_EQ(mm3_container_len(f, c, &t), 64);
  CHECK_EQ(rd64(c), 64);
  /* full */
  uint64_t k = 999999, v = 1;
  int created = -1;
  CHECK_EQ(mm3_hmap_put(f, c, &t, &k, &v, &created), MM3_EFULL);
  CHECK_EQ(created, -1);
  CHECK_EQ(mm3_container_len(f, c, &t), 64);
  uint64_t out = 555;
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, &out, NULL), MM3_ENOTFOUND);
  CHECK_EQ(out, 555);
  /* replacing an existing key works when full */
  k = 5 * 1000 + 1;
  v = 12345;
  CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, &created));
  CHECK_EQ(created, 0);
  CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, NULL)); /* created may be NULL */
  /* every key reads back, by copy and by pointer into the node */
  uint8_t *ptr5 = NULL;
  for (uint64_t i = 0; i < 64; i++) {
    k = i * 1000 + 1;
    out = 0;
    uint8_t *vp = NULL;
    CHECK_RC(mm3_hmap_get(f, c, &t, &k, &out, &vp));
    CHECK_EQ(out, i == 5 ? 12345 : i * 3);
    REQUIRE(vp);
    CHECK(vp >= c + t.nodes_off && vp < c + t.size);
    CHECK_EQ((uintptr_t)(vp - c - t.nodes_off - t.val_off) % t.node_size, 0);
    CHECK_EQ(rd64(vp), out);
    CHECK_EQ(rd64(vp - t.val_off + t.key_off), k);
    if (i == 5) ptr5 = vp;
  }
  CHECK_RC(mm3_hmap_get(f, c, &t, &k, NULL, NULL)); /* both outputs optional */
  /* delete, then the freed node is reused */
  k = 1 * 1000 + 1;
  CHECK_RC(mm3_hmap_del(f, c, &t, &k));
  CHECK_EQ(mm3_hmap_del(f, c, &t, &k), MM3_ENOTFOUND);
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, &out, NULL), MM3_ENOTFOUND);
  CHECK_EQ(mm3_container_len(f, c, &t), 63);
  k = 777777;
  v = 7;
  CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, &created));
  CHECK_EQ(created, 1);
  CHECK_EQ(mm3_container_len(f, c, &t), 64);
  CHECK_RC(mm3_hmap_get(f, c, &t, &k, &out, NULL));
  CHECK_EQ(out, 7);
  k = 888888;
  CHECK_EQ(mm3_hmap_put(f, c, &t, &k, &v, &created), MM3_EFULL);
  /* the pointer taken earlier still names key 5001's value */
  CHECK_EQ(rd64(ptr5), 12345);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

FTEST(fmap_string_keys) {
  mm3_ctype t = map_ctype(MM3_FMAP, 16, 1, 1, 4, 4, 8);
  mm3_file *f = container_file("fmapstr", "root map<string<16>,u32,8>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  static const char *const names[] = {"apple", "banana", "cherry", "", "a", "0123456789abcdef", "date", "elder"};
  for (uint32_t i = 0; i < 8; i++) {
    skey k = key16(names[i]);
    uint32_t v = i + 1;
    CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, NULL));
  }
  skey fig = key16("fig");
  uint32_t v = 9;
  CHECK_EQ(mm3_hmap_put(f, c, &t, &fig, &v, NULL), MM3_EFULL);
  for (uint32_t i = 0; i < 8; i++) {
    skey k = key16(names[i]);
    uint32_t out = 0;
    CHECK_RC(mm3_hmap_get(f, c, &t, &k, &out, NULL));
    CHECK_EQ(out, i + 1);
  }
  skey appl = key16("appl"), apples = key16("apples");
  CHECK_EQ(mm3_hmap_get(f, c, &t, &appl, NULL, NULL), MM3_ENOTFOUND);
  CHECK_EQ(mm3_hmap_get(f, c, &t, &apples, NULL, NULL), MM3_ENOTFOUND);
  skey empty = key16("");
  CHECK_RC(mm3_hmap_del(f, c, &t, &empty));
  CHECK_EQ(mm3_hmap_get(f, c, &t, &empty, NULL, NULL), MM3_ENOTFOUND);
  CHECK_RC(mm3_hmap_put(f, c, &t, &fig, &v, NULL));
  uint32_t out = 0;
  CHECK_RC(mm3_hmap_get(f, c, &t, &fig, &out, NULL));
  CHECK_EQ(out, 9);
  CHECK(container_ok(f, c, &t));
}

FTEST(fmap_next_and_clear) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("fmapnext", 64, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  uint64_t pos[3] = {0, 0, 0};
  uint8_t *kp = NULL, *vp = NULL;
  CHECK_EQ(mm3_hmap_next(f, c, &t, pos, &kp, &vp), MM3_ENOTFOUND); /* empty */
  for (uint64_t k = 0; k < 50; k++) {
    uint64_t v = k * k;
    CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, NULL));
  }
  for (uint64_t k = 0; k < 50; k += 5) CHECK_RC(mm3_hmap_del(f, c, &t, &k));
  int seen[50] = {0}, n = 0;
  memset(pos, 0, sizeof pos);
  while (mm3_hmap_next(f, c, &t, pos, &kp, &vp) == 0) {
    uint64_t k = rd64(kp);
    REQUIRE(k < 50);
    CHECK_EQ(rd64(vp), k * k);
    seen[k]++;
    n++;
  }
  CHECK_EQ(n, 40);
  for (int k = 0; k < 50; k++) CHECK_EQ(seen[k], k % 5 ? 1 : 0);
  CHECK_EQ(mm3_hmap_next(f, c, &t, pos, &kp, &vp), MM3_ENOTFOUND); /* stays at the end */
  CHECK_RC(mm3_hmap_clear(f, c, &t));
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK(all_zero(c, t.size));
  memset(pos, 0, sizeof pos);
  CHECK_EQ(mm3_hmap_next(f, c, &t, pos, &kp, &vp), MM3_ENOTFOUND);
  uint64_t k = 3;
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ENOTFOUND);
  for (k = 0; k < 64; k++) CHECK_RC(mm3_hmap_put(f, c, &t, &k, &k, NULL)); /* all capacity back */
  CHECK_EQ(mm3_container_len(f, c, &t), 64);
  CHECK(container_ok(f, c, &t));
}

/* ========================================================================
 * Growable maps: map<K,V>
 * ======================================================================== */

FTEST(hmap_key_hash) {
  mm3_ctype ts = map_ctype(MM3_HMAP, 16, 1, 1, 8, 8, 0);
  mm3_file *f = container_file("keyhash", "root map<string<16>,u64>", &ts);
  mm3_file *g = new_file("keyhash2", "root map<string<16>,u64>", ts.size, NULL);
  REQUIRE(f && g);
  uint64_t seed = mm3_file_seed(f);
  skey k = key16("alpha");
  CHECK(mm3_hmap_key_hash(f, &ts, &k) == mm3_hash(seed, "alpha", 5)); /* up to the first NUL */
  skey full = key16("0123456789abcdef");
  CHECK(mm3_hmap_key_hash(f, &ts, &full) == mm3_hash(seed, "0123456789abcdef", 16));
  skey e = key16("");
  CHECK(mm3_hmap_key_hash(f, &ts, &e) == mm3_hash(seed, "", 0));
  CHECK(mm3_hmap_key_hash(f, &ts, &k) != mm3_hmap_key_hash(g, &ts, &k)); /* keyed per file */
  mm3_ctype ti = map_ctype(MM3_HMAP, 8, 8, 0, 8, 8, 0);
  REQUIRE(mm3_ctype_init(&ti) == 0);
  uint64_t ik = 42;
  CHECK(mm3_hmap_key_hash(f, &ti, &ik) == mm3_hash(seed, &ik, 8));
  uint64_t zero = 0;
  CHECK(mm3_hmap_key_hash(f, &ti, &zero) == mm3_hash(seed, &zero, 8)); /* integers: all bytes */
  mm3_ctype t4 = map_ctype(MM3_FMAP, 4, 4, 0, 4, 4, 8);
  REQUIRE(mm3_ctype_init(&t4) == 0);
  uint32_t k4 = 7;
  CHECK(mm3_hmap_key_hash(f, &t4, &k4) == mm3_hash(seed, &k4, 4));
  /* Keys of up to 16 bytes hash from two words, the length found in them:
     the same hash as mm3_hash's for every size and length, whatever the
     bytes (0x01, 0x80 and 0xff next to the NUL, bytes left after it). */
  const size_t sizes[] = {1, 2, 3, 4, 8, 12, 16, 24};
  uint32_t r = 12345;
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
    for (int str = 0; str < 2; str++) {
      mm3_ctype tk = map_ctype(MM3_HMAP, (uint32_t)sizes[si], 1, str, 8, 8, 0);
      REQUIRE(mm3_ctype_init(&tk) == 0);
      for (size_t len = 0; len <= sizes[si]; len++)
        for (int trial = 0; trial < 20; trial++) {
          uint8_t key[24];
          for (size_t i = 0; i < sizeof key; i++) {
            r = r * 1103515245u + 12345u;
            uint8_t b = (uint8_t)(r >> 16);
            key[i] = trial % 4 == 0 ? 0x01 : trial % 4 == 1 ? (uint8_t)(0x80 | b) : trial % 4 == 2 ? 0xff : b;
            if (str && i < len && key[i] == 0) key[i] = 1;
          }
          if (str && len < sizes[si]) key[len] = 0;
          size_t hashed = str ? len : sizes[si];
          CHECK(mm3_hmap_key_hash(f, &tk, key) == mm3_hash(seed, key, hashed));
        }
    }
}

FTEST(hmap_string_keys) {
  mm3_ctype t = map_ctype(MM3_HMAP, 16, 1, 1, 8, 8, 0);
  mm3_file *f = container_file("hmapstr", "root map<string<16>,u64>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  skey k = key16("none");
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ENOTFOUND); /* no table yet */
  CHECK_EQ(mm3_hmap_del(f, c, &t, &k), MM3_ENOTFOUND);
  char name[32];
  for (uint64_t i = 0; i < 200; i++) {
    snprintf(name, sizeof name, "key-%llu", (unsigned long long)i);
    k = key16(name);
    uint64_t v = i * 11;
    int created = -1;
    CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, &created));
    CHECK_EQ(created, 1);
  }
  CHECK_EQ(mm3_container_len(f, c, &t), 200);
  k = key16("key-17");
  uint64_t v = 1717;
  int created = -1;
  CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, &created));
  CHECK_EQ(created, 0);
  CHECK_EQ(mm3_container_len(f, c, &t), 200);
  for (uint64_t i = 0; i < 200; i++) {
    snprintf(name, sizeof name, "key-%llu", (unsigned long long)i);
    k = key16(name);
    uint64_t out = 0;
    uint8_t *vp = NULL;
    CHECK_RC(mm3_hmap_get(f, c, &t, &k, &out, &vp));
    CHECK_EQ(out, i == 17 ? 1717 : i * 11);
    CHECK(vp != NULL && rd64(vp) == out);
    CHECK(vp && memcmp(vp - t.val_off + t.key_off, &k, 16) == 0);
  }
  k = key16("key-200");
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ENOTFOUND);
  k = key16("key-3");
  CHECK_RC(mm3_hmap_del(f, c, &t, &k));
  CHECK_EQ(mm3_hmap_del(f, c, &t, &k), MM3_ENOTFOUND);
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ENOTFOUND);
  CHECK_EQ(mm3_container_len(f, c, &t), 199);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
  CHECK_RC(mm3_hmap_clear(f, c, &t));
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  k = key16("key-4");
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ENOTFOUND);
  uint64_t pos[3] = {0, 0, 0};
  uint8_t *kp, *vp;
  CHECK_EQ(mm3_hmap_next(f, c, &t, pos, &kp, &vp), MM3_ENOTFOUND);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
  CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, &created));
  CHECK_EQ(created, 1);
  CHECK_EQ(mm3_container_len(f, c, &t), 1);
}

/* 100000 entries: the table grows many times, values never move, and a
   traversal visits each entry once. */
FTEST(hmap_100000_entries) {
  enum { N = 100000, PINNED = 100 };
  mm3_ctype t;
  mm3_file *f = u64_map_file("hmapbig", 0, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  uint64_t size0 = mm3_file_size(f);
  uint8_t *pinned[PINNED];
  for (uint64_t k = 0; k < PINNED; k++) {
    uint64_t v = k * 7 + 1;
    CHECK_RC(mm3_hmap_put(f, c, &t, &k, &v, NULL));
    pinned[k] = NULL;
    CHECK_RC(mm3_hmap_get(f, c, &t, &k, NULL, &pinned[k]));
  }
  int bad = 0;
  for (uint64_t k = PINNED; k < N; k++) {
    uint64_t v = k * 7 + 1;
    if (mm3_hmap_put(f, c, &t, &k, &v, NULL) != 0) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(mm3_container_len(f, c, &t), N);
  CHECK(rd32(c + 24) >= 16);            /* the table doubled from 8 to 2^16 buckets or more */
  CHECK(mm3_file_size(f) > size0);      /* and the file grew */
  for (uint64_t k = 0; k < PINNED; k++) { /* values did not move */
    uint8_t *vp = NULL;
    CHECK_RC(mm3_hmap_get(f, c, &t, &k, NULL, &vp));
    CHECK(vp == pinned[k]);
    CHECK_EQ(rd64(pinned[k]), k * 7 + 1);
  }
  bad = 0;
  for (uint64_t k = 0; k < N; k++) {
    uint64_t out = 0;
    if (mm3_hmap_get(f, c, &t, &k, &out, NULL) != 0 || out != k * 7 + 1) bad++;
  }
  CHECK_EQ(bad, 0);
  uint64_t k = N;
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ENOTFOUND);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
  /* a traversal visits each entry exactly once */
  uint8_t *seen = calloc(N, 1);
  REQUIRE(seen);
  uint64_t pos[3] = {0, 0, 0}, visits = 0;
  uint8_t *kp, *vp;
  int rc;
  bad = 0;
  while ((rc = mm3_hmap_next(f, c, &t, pos, &kp, &vp)) == 0) {
    uint64_t key = rd64(kp);
    if (key >= N || seen[key]++ || rd64(vp) != key * 7 + 1) bad++;
    visits++;
  }
  CHECK_EQ(rc, MM3_ENOTFOUND);
  CHECK_EQ(bad, 0);
  CHECK_EQ(visits, N);
  free(seen);
  /* delete the odd keys */
  bad = 0;
  for (k = 1; k < N; k += 2)
    if (mm3_hmap_del(f, c, &t, &k) != 0) bad++;
  CHECK_EQ(bad, 0);
  CHECK_EQ(mm3_container_len(f, c, &t), N / 2);
  bad = 0;
  for (k = 0; k < N; k++) {
    rc = mm3_hmap_get(f, c, &t, &k, NULL, NULL);
    if (rc != (k % 2 ? MM3_ENOTFOUND : 0)) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
  /* clear frees the nodes and tables: refilling reuses them */
  CHECK_RC(mm3_hmap_clear(f, c, &t));
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK(file_ok(f));
  CHECK(hdr_u64(f, 544) < ((uint64_t)1 << 20)); /* bytes in use: little more than the undo log */
  uint64_t size1 = mm3_file_size(f);
  for (k = 0; k < N / 2; k++) CHECK_RC(mm3_hmap_put(f, c, &t, &k, &k, NULL));
  CHECK_EQ(mm3_file_size(f), size1);
  CHECK(container_ok(f, c, &t));
}

/* A traversal that starts during a resize finishes it first, then sees each
   entry once. */
FTEST(hmap_next_during_resize) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("hmapresize", 0, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  enum { N = 260 }; /* the 257th entry starts doubling 512 buckets (load 1/2); 8 move per put */
  CHECK_RC(put_keys(f, c, &t, 0, N));
  REQUIRE(rd64(c + 32) != 0); /* rehash position + 1: a resize is under way */
  CHECK(container_ok(f, c, &t));
  int seen[N] = {0};
  uint64_t pos[3] = {0, 0, 0}, visits = 0;
  uint8_t *kp, *vp;
  while (mm3_hmap_next(f, c, &t, pos, &kp, &vp) == 0) {
    uint64_t k = rd64(kp);
    REQUIRE(k < N);
    CHECK_EQ(rd64(vp), k);
    seen[k]++;
    visits++;
  }
  CHECK_EQ(visits, N);
  for (int k = 0; k < N; k++) CHECK_EQ(seen[k], 1);
  CHECK_EQ(rd64(c + 32), 0); /* finished */
  CHECK_EQ(rd32(c + 24), 10);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* Deleting the entry just visited, during a traversal, skips nothing. */
FTEST(hmap_delete_during_next) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("hmapdel", 0, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  enum { N = 3000 };
  CHECK_RC(put_keys(f, c, &t, 0, N));
  int seen[N] = {0};
  uint64_t pos[3] = {0, 0, 0}, visits = 0;
  uint8_t *kp, *vp;
  while (mm3_hmap_next(f, c, &t, pos, &kp, &vp) == 0) {
    uint64_t k = rd64(kp);
    REQUIRE(k < N);
    seen[k]++;
    visits++;
    CHECK_RC(mm3_hmap_del(f, c, &t, &k));
  }
  CHECK_EQ(visits, N);
  int bad = 0;
  for (int k = 0; k < N; k++) bad += seen[k] != 1;
  CHECK_EQ(bad, 0);
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* A key another process keeps deleting and putting back: a lookup that
   reports it not found leaves the caller's value as it was (a try that found
   it, then lost it to the writer, wrote its value there before: 1 lookup in
   about 2700). */
FTEST(hmap_get_many_not_found_leaves_value) {
  mm3_ctype t;
  const char *path;
  mm3_file *f = u64_map_file("hmapflap", 0, &t, &path);
  REQUIRE(f);
  volatile uint64_t *stop = shared_words();
  REQUIRE(stop);
  pid_t pid = fork_child();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    mm3_file *g = open_existing(path, 0);
    if (!g) _exit(10);
    uint64_t k = 1, v = 42;
    while (!stop[0]) {
      if (mm3_hmap_put(g, mm3_file_root(g), &t, &k, &v, NULL) || mm3_hmap_del(g, mm3_file_root(g), &t, &k)) _exit(11);
      stop[1] = 1; /* racing */
    }
    _exit(0);
  }
  for (int w = 0; !stop[1] && w < 30000; w++) usleep(1000);
  CHECK(stop[1]); /* the writer started (else its status says why) */
  uint8_t *c = mm3_file_root(f);
  uint64_t k = 1, found_n = 0, missing = 0, dirty = 0;
  /* at least 400000 lookups, and on until both outcomes were seen (a loaded
     machine may not run the writer for a while) */
  for (long i = 0; i < 400000 || ((!found_n || !missing) && i < 100000000); i++) {
    uint64_t v = 7;
    uint8_t found;
    CHECK_RC(mm3_hmap_get_many(f, c, &t, 1, &k, &v, &found));
    if (found) found_n++, dirty += v != 42;
    else missing++, dirty += v != 7;
  }
  stop[0] = 1;
  CHECK_EQ(wait_child(pid), 0);
  CHECK(found_n > 0 && missing > 0); /* the writer really raced the lookups */
  CHECK_EQ(dirty, 0);
}

/* put_many and get_many give what one call per key gives: the last value of
   a key given twice, found flags, untouched values for missing keys. */
FTEST(hmap_put_many_get_many) {
  enum { N = 50000, KEYS = 40000 };
  static uint64_t keys[N], vals[N], out[N]; /* static: a REQUIRE may end the test */
  static uint8_t found[N];
  mm3_ctype t;
  mm3_file *f = u64_map_file("hmapmany", 0, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  for (uint64_t i = 0; i < N; i++) keys[i] = i % KEYS, vals[i] = i * 3 + 1; /* the last 10000 come twice */
  size_t done = 0;
  CHECK_RC(mm3_hmap_put_many(f, c, &t, 0, keys, vals, &done));
  CHECK_EQ(done, 0);
  CHECK_RC(mm3_hmap_put_many(f, c, &t, N, keys, vals, &done));
  CHECK_EQ(done, N);
  CHECK_EQ(mm3_container_len(f, c, &t), KEYS);
  for (uint64_t i = 0; i < N; i++) keys[i] = i, out[i] = 777, found[i] = 9;
  CHECK_RC(mm3_hmap_get_many(f, c, &t, N, keys, out, found));
  int bad = 0;
  for (uint64_t i = 0; i < N; i++) {
    uint64_t want = i < N - KEYS ? (i + KEYS) * 3 + 1 : i * 3 + 1; /* the second put of key i */
    if (i >= KEYS) bad += found[i] != 0 || out[i] != 777;
    else bad += found[i] != 1 || out[i] != want;
    uint64_t one = 0;
    int rc = mm3_hmap_get(f, c, &t, &keys[i], &one, NULL);
    if (i < KEYS) bad += rc != 0 || one != out[i];
    else bad += rc != MM3_ENOTFOUND;
  }
  CHECK_EQ(bad, 0);
  CHECK_RC(mm3_hmap_get_many(f, c, &t, N, keys, NULL, NULL)); /* both outputs optional */
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* A put_many sizes a growable map's table for its keys at once. Into an
   empty map: no table is outgrown, so none is left freed behind (one put at
   a time doubles the table again and again, freeing each old one: the
   baseline here). Into a map holding entries: they move to the new table as
   the puts go, and every entry, old and new, is found after. */
FTEST(hmap_put_many_sizes_table_once) {
  enum { N = 100000, OLD = 3000 };
  static uint64_t keys[N], vals[N];
  mm3_ctype t;
  mm3_heap_usage u;
  mm3_file *one = u64_map_file("hmapsize1", 0, &t, NULL);
  REQUIRE(one);
  CHECK_RC(put_keys(one, mm3_file_root(one), &t, 0, N));
  CHECK_RC(mm3_file_usage(one, &u));
  CHECK(u.free > 0); /* the tables outgrown */
  close_file(one);

  mm3_file *f = u64_map_file("hmapsize", 0, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  for (uint64_t i = 0; i < N; i++) keys[i] = i, vals[i] = i + 1;
  size_t done = 0;
  CHECK_RC(mm3_hmap_put_many(f, c, &t, N, keys, vals, &done));
  CHECK_EQ(done, N);
  CHECK_RC(mm3_file_usage(f, &u));
  CHECK_EQ(u.free, 0);
  CHECK_EQ(mm3_container_len(f, c, &t), N);

  mm3_file *g = u64_map_file("hmapsize2", 0, &t, NULL);
  REQUIRE(g);
  uint8_t *cg = mm3_file_root(g);
  CHECK_RC(put_keys(g, cg, &t, N, N + OLD));
  CHECK_RC(mm3_hmap_put_many(g, cg, &t, N, keys, vals, &done));
  CHECK_EQ(done, N);
  CHECK_EQ(mm3_container_len(g, cg, &t), N + OLD);
  int bad = 0;
  for (uint64_t k = 0; k < N + OLD + 10; k++) {
    uint64_t v = 0, want = k < N ? k + 1 : k;
    int rc = mm3_hmap_get(g, cg, &t, &k, &v, NULL);
    bad += k < N + OLD ? rc != 0 || v != want : rc != MM3_ENOTFOUND;
  }
  CHECK_EQ(bad, 0);
  CHECK(container_ok(g, cg, &t));
  CHECK(file_ok(g));
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* A fixed map that fills mid-batch keeps the entries before the failing one,
   has none from it on, and its old entries are as they were. */
FTEST(fmap_put_many_full) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("fmapmany", 64, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_RC(put_keys(f, c, &t, 0, 60));
  uint64_t keys[10], vals[10];
  for (int i = 0; i < 10; i++) keys[i] = 1000 + (uint64_t)i, vals[i] = 5000 + (uint64_t)i;
  keys[1] = 7; /* an existing key: replaced, takes no room */
  size_t done = 99;
  CHECK_EQ(mm3_hmap_put_many(f, c, &t, 10, keys, vals, &done), MM3_EFULL);
  CHECK_EQ(done, 5); /* 1000, 7, 1002, 1003, 1004 fit; 1005 does not */
  CHECK_EQ(mm3_container_len(f, c, &t), 64);
  uint64_t v = 0;
  for (int i = 0; i < 10; i++) {
    int rc = mm3_hmap_get(f, c, &t, &keys[i], &v, NULL);
    if (i < 5) {
      CHECK_RC(rc);
      CHECK_EQ(v, vals[i]);
    } else {
      CHECK_EQ(rc, MM3_ENOTFOUND);
    }
  }
  for (uint64_t k = 0; k < 60; k++) {
    CHECK_RC(mm3_hmap_get(f, c, &t, &k, &v, NULL));
    CHECK_EQ(v, k == 7 ? 5001 : k);
  }
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* Inside a transaction a rollback undoes every entry of a put_many; a
   read-only file refuses it and nothing is put. */
FTEST(hmap_put_many_rollback_readonly) {
  enum { N = 5000 };
  mm3_ctype t;
  const char *path;
  mm3_file *f = u64_map_file("hmapmanytx", 0, &t, &path);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_RC(put_keys(f, c, &t, 0, 100));
  static uint64_t keys[N];
  for (uint64_t i = 0; i < N; i++) keys[i] = i * 2; /* half of the first 100 exist */
  uint64_t sp;
  CHECK_RC(mm3_txn_begin(f, &sp));
  size_t done = 0;
  CHECK_RC(mm3_hmap_put_many(f, c, &t, N, keys, keys, &done));
  CHECK_EQ(done, N);
  mm3_txn_rollback(f, sp);
  CHECK_EQ(mm3_container_len(f, c, &t), 100);
  int bad = 0;
  for (uint64_t k = 0; k < 200; k++) {
    uint64_t v = 0;
    int rc = mm3_hmap_get(f, c, &t, &k, &v, NULL);
    bad += k < 100 ? rc != 0 || v != k : rc != MM3_ENOTFOUND;
  }
  CHECK_EQ(bad, 0);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
  close_file(f);
  mm3_file *ro = open_existing(path, 1);
  REQUIRE(ro);
  c = mm3_file_root(ro);
  done = 99;
  CHECK_EQ(mm3_hmap_put_many(ro, c, &t, N, keys, keys, &done), MM3_EREADONLY);
  CHECK_EQ(done, 0);
  CHECK_EQ(mm3_container_len(ro, c, &t), 100);
}

/* ========================================================================
 * segmented<T>
 * ======================================================================== */

FTEST(seg_push_million) {
  enum { N = 1000000 };
  mm3_ctype t = ctype(MM3_SEGMENTED, 8, 8, 0);
  mm3_file *f = container_file("seg", "root segmented<u64>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK(mm3_seg_at(f, c, &t, 0) == NULL);
  uint64_t v = 0;
  CHECK_RC(mm3_seg_push(f, c, &t, &v));
  uint8_t *p0 = mm3_seg_at(f, c, &t, 0);
  REQUIRE(p0);
  uint64_t size0 = mm3_file_size(f);
  int bad = 0;
  for (uint64_t i = 1; i < N; i++) {
    v = i * 3;
    if (mm3_seg_push(f, c, &t, &v) != 0) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(mm3_container_len(f, c, &t), N);
  CHECK(mm3_file_size(f) > size0); /* the file grew under the list */
  CHECK(mm3_seg_at(f, c, &t, 0) == p0);
  CHECK_EQ(rd64(p0), 0);
  bad = 0;
  for (uint64_t i = 0; i < N; i++) {
    uint8_t *p = mm3_seg_at(f, c, &t, i);
    if (!p || rd64(p) != i * 3) bad++;
  }
  CHECK_EQ(bad, 0);
  /* elements of one segment are contiguous; segment k holds 512 << k */
  CHECK(mm3_seg_at(f, c, &t, 511) == p0 + 511 * 8);
  CHECK(mm3_seg_at(f, c, &t, 512 + 1023) == mm3_seg_at(f, c, &t, 512) + 1023 * 8);
  CHECK(mm3_seg_at(f, c, &t, N) == NULL);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* How many of the pages of [p, p + n) this process has touched: mapped in
   its page table (/proc/self/pagemap's present bit). Not mincore: the page
   cache also holds the kernel's readahead, megabytes around a fault here. */
static size_t touched_pages(const uint8_t *p, size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE), r = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return (size_t)-1;
  for (uintptr_t a = (uintptr_t)p / pg * pg; a < (uintptr_t)p + n; a += pg) {
    uint64_t e;
    if (pread(fd, &e, 8, (off_t)(a / pg * 8)) != 8) {
      close(fd);
      return (size_t)-1;
    }
    r += (size_t)(e >> 63);
  }
  close(fd);
  return r;
}

/* Whether the mapping holding p has huge pages in it (a tmpfs mounted
   huge=always, large folios of a file): then one touch brings in 2 MiB, and
   pages touched say nothing of what was written. */
static int huge_mapped(const void *p) {
  FILE *sm = fopen("/proc/self/smaps", "r");
  if (!sm) return 0;
  char line[256];
  int in = 0, huge = 0;
  while (fgets(line, sizeof line, sm)) {
    unsigned long lo, hi, kb;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    else if (in && (sscanf(line, "FilePmdMapped: %lu", &kb) == 1 || sscanf(line, "ShmemPmdMapped: %lu", &kb) == 1))
      huge |= kb > 0;
  }
  fclose(sm);
  return huge;
}

/* A list's new segment takes no memory until its elements land there: its
   block is not zeroed (nothing past the length is read). Zeroing it, as the
   heap did, put every page of the segment (and of the rest of its block,
   twice its size) in memory at the first push. */
FTEST(seg_new_segment_takes_no_memory) {
  mm3_ctype t = ctype(MM3_SEGMENTED, 8, 8, 0);
  mm3_file *f = container_file("segmem", "root segmented<u64>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  const uint64_t before = 512 * ((1u << 10) - 1); /* segments 0..9; segment 10 holds 512 << 10 */
  int bad = 0;
  for (uint64_t i = 0; i <= before; i++) bad += mm3_seg_push(f, c, &t, &i) != 0;
  CHECK_EQ(bad, 0);
  uint8_t *p = mm3_seg_at(f, c, &t, before);
  REQUIRE(p);
  CHECK(p != mm3_seg_at(f, c, &t, before - 1) + 8); /* the first element of a new segment */
  CHECK_EQ(rd64(p), before);
  size_t seg_bytes = (size_t)(512u << 10) * 8, pages = seg_bytes / (size_t)sysconf(_SC_PAGESIZE);
  if (huge_mapped(p)) {
    SKIP("the file is mapped with huge pages");
  }
  size_t r = touched_pages(p, seg_bytes);
  REQUIRE(r != (size_t)-1);
  if (r > 1) fprintf(stderr, "    %zu of the new segment's %zu pages touched\n", r, pages);
  CHECK(r <= 1); /* the page of its first element */
}

/* A file another program cut below its end stays cut: memmap3 writes zeros
   ahead of its heap top (to take the pages' faults in bulk), but never past
   the file's end, so the puts that land past the cut are lost (the SIGBUS
   guard drops them, and says so), and the file does not grow back. */
FTEST(cut_file_stays_cut) {
  mm3_ctype t;
  const char *path;
  mm3_file *f = u64_map_file("hmapcut", 0, &t, &path);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_RC(mm3_file_grow(f, 8 << 20)); /* room: the puts below need no growth (which would extend it) */
  CHECK_RC(put_keys(f, c, &t, 0, 1000));
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  uint64_t top = rd64(mm3_file_base(f) + 144); /* the heap top (header) */
  off_t cut = (off_t)((top / pg + 2) * pg);
  REQUIRE((uint64_t)cut < mm3_file_size(f));
  REQUIRE(truncate(path, cut) == 0); /* behind the mapping's back */
  for (uint64_t k = 1000; k < 40000; k++) (void)mm3_hmap_put(f, c, &t, &k, &k, NULL); /* 2.5 MB of nodes */
  REQUIRE(rd64(mm3_file_base(f) + 144) <= mm3_file_size(f)); /* none grew the file */
  CHECK(mm3_file_truncated(f) != 0);
  struct stat st;
  REQUIRE(stat(path, &st) == 0);
  CHECK_EQ((uint64_t)st.st_size, (uint64_t)cut);
}

/* A map's bucket table (2^lg words) takes a block twice its size (for the
   block's 16-byte head): only the table is zeroed, the rest of the block
   never touched. */
FTEST(hmap_table_block_rest_untouched) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("hmapmem", 0, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_RC(put_keys(f, c, &t, 1, 100001));
  /* map<K,V> head: u64 count, u64 table[2], u32 lg[2], u64 rehash + 1 */
  uint64_t tab = rd64(c + 8), rehash = rd64(c + 32);
  uint32_t lg;
  memcpy(&lg, c + 24, 4);
  CHECK_EQ(rehash, 0);
  CHECK_EQ(lg, 18); /* 100000 keys: 2^18 buckets, no resize under way */
  size_t table = (size_t)8 << lg, pages = table / (size_t)sysconf(_SC_PAGESIZE);
  /* the block's second half, less its first and last pages (they share the
     table's last bytes and the next block's first ones) */
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  if (huge_mapped(mm3_file_base(f) + tab)) {
    SKIP("the file is mapped with huge pages");
  }
  size_t r = touched_pages(mm3_file_base(f) + tab + table + pg, table - 16 - 2 * pg);
  REQUIRE(r != (size_t)-1);
  if (r > 0) fprintf(stderr, "    %zu of the %zu pages past the table touched\n", r, pages);
  CHECK_EQ(r, 0);
  uint64_t k = 77777, v = 0;
  CHECK_RC(mm3_hmap_get(f, c, &t, &k, &v, NULL));
  CHECK_EQ(v, 77777);
}

FTEST(seg_set_pop_truncate) {
  mm3_ctype t = ctype(MM3_SEGMENTED, 4, 4, 0);
  mm3_file *f = container_file("segops", "root segmented<u32>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  uint32_t v, out;
  CHECK_EQ(mm3_seg_pop(f, c, &t, &out), MM3_ERANGE); /* empty */
  CHECK_EQ(mm3_seg_set(f, c, &t, 0, &v), MM3_ERANGE);
  for (uint32_t i = 0; i < 5000; i++) CHECK_RC(mm3_seg_push(f, c, &t, &i));
  uint8_t *p2000 = mm3_seg_at(f, c, &t, 2000);
  REQUIRE(p2000);
  v = 0xFEEDu;
  CHECK_RC(mm3_seg_set(f, c, &t, 4999, &v));
  CHECK_EQ(rd32(mm3_seg_at(f, c, &t, 4999)), 0xFEED);
  CHECK_EQ(mm3_seg_set(f, c, &t, 5000, &v), MM3_ERANGE);
  out = 0;
  CHECK_RC(mm3_seg_pop(f, c, &t, &out));
  CHECK_EQ(out, 0xFEED);
  CHECK_EQ(mm3_container_len(f, c, &t), 4999);
  CHECK(mm3_seg_at(f, c, &t, 4999) == NULL);
  CHECK_RC(mm3_seg_pop(f, c, &t, NULL));
  CHECK_EQ(mm3_container_len(f, c, &t), 4998);
  CHECK_RC(mm3_seg_truncate(f, c, &t, 1000));
  CHECK_EQ(mm3_container_len(f, c, &t), 1000);
  CHECK(mm3_seg_at(f, c, &t, 1000) == NULL);
  CHECK_EQ(rd32(mm3_seg_at(f, c, &t, 999)), 999);
  CHECK_EQ(mm3_seg_truncate(f, c, &t, 1001), MM3_ERANGE);
  CHECK_EQ(mm3_container_len(f, c, &t), 1000);
  CHECK_RC(mm3_seg_truncate(f, c, &t, 1000)); /* to its own length */
  v = 424242;
  CHECK_RC(mm3_seg_push(f, c, &t, &v));
  CHECK_EQ(rd32(mm3_seg_at(f, c, &t, 1000)), 424242);
  CHECK_RC(mm3_seg_truncate(f, c, &t, 0));
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK_EQ(mm3_seg_pop(f, c, &t, &out), MM3_ERANGE);
  /* pushed again, element 2000 lives where it did */
  for (uint32_t i = 0; i < 3000; i++) {
    v = i + 7;
    CHECK_RC(mm3_seg_push(f, c, &t, &v));
  }
  CHECK(mm3_seg_at(f, c, &t, 2000) == p2000);
  CHECK_EQ(rd32(p2000), 2007);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* A new file whose root is segmented<u64> (its type in *t, its path in
   *path), opened with the given reserve (0: the default); NULL on failure. */
static mm3_file *seg_u64_file(const char *tag, uint64_t reserve, mm3_ctype *t, const char **path) {
  *t = ctype(MM3_SEGMENTED, 8, 8, 0);
  if (mm3_ctype_init(t) != 0) return NULL;
  *path = tmp_path(tag);
  mm3_file_opts o = {0};
  o.create = 1;
  o.schema = "root segmented<u64>";
  o.root_size = t->size;
  o.reserve = reserve;
  mm3_file *f;
  CHECK_RC(open_file(*path, &o, &f));
  return f;
}

/* A handle whose reserved range the file outgrew (another handle grew it)
   cannot check what lies past its range: the checks say so (MM3_ERESERVE),
   and call nothing damaged; the handle that grew it checks clean. */
FTEST(check_past_reserve_is_not_damage) {
  mm3_ctype t;
  const char *path;
  mm3_file *big = seg_u64_file("segcheck", 0, &t, &path), *small;
  REQUIRE(big);
  mm3_file_opts so = {0};
  so.reserve = 1 << 20;
  CHECK_RC(open_file(path, &so, &small));
  REQUIRE(small);
  int bad = 0;
  for (uint64_t i = 0; i < 300000; i++) bad += mm3_seg_push(big, mm3_file_root(big), &t, &i) != 0;
  CHECK_EQ(bad, 0);
  char why[256];
  CHECK_EQ(mm3_container_check(small, mm3_file_root(small), &t, why, sizeof why), MM3_ERESERVE);
  CHECK(strstr(why, "bigger than this open's reserved address range (1048576 bytes)") != NULL);
  CHECK_EQ(mm3_file_check(small, why, sizeof why), MM3_ERESERVE);
  CHECK(strstr(why, "open it with a bigger reserve to check it") != NULL);
  CHECK_RC(mm3_container_check(big, mm3_file_root(big), &t, why, sizeof why));
  CHECK_RC(mm3_file_check(big, why, sizeof why));
}

/* A list that outgrows the file's reserve fails cleanly and keeps working. */
FTEST(seg_push_past_reserve) {
  mm3_ctype t;
  const char *path;
  mm3_file *f = seg_u64_file("segres", 4 << 20, &t, &path);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  int rc = 0;
  uint64_t n = 0;
  while (n < 10000000 && (rc = mm3_seg_push(f, c, &t, &n)) == 0) n++;
  CHECK_EQ(rc, MM3_ERESERVE);
  CHECK(n > 100000); /* most of the 4 MiB was used */
  CHECK_EQ(mm3_container_len(f, c, &t), n);
  CHECK(mm3_file_size(f) <= (4 << 20));
  int bad = 0;
  for (uint64_t i = 0; i < n; i++) {
    uint8_t *p = mm3_seg_at(f, c, &t, i);
    if (!p || rd64(p) != i) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(mm3_seg_push(f, c, &t, &n), MM3_ERESERVE);
  CHECK_EQ(hdr_u64(f, 560), 0); /* the failed push left nothing logged */
  uint64_t out = 0;
  CHECK_RC(mm3_seg_pop(f, c, &t, &out));
  CHECK_EQ(out, n - 1);
  CHECK_RC(mm3_seg_push(f, c, &t, &out)); /* room in the last segment again */
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

/* ========================================================================
 * value and value<N>
 * ======================================================================== */

FTEST(value_get_set_retry) {
  mm3_ctype t = ctype(MM3_VALUE, 0, 0, 0);
  mm3_file *f = container_file("value", "root value", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  uint8_t buf[16];
  uint64_t len = 99;
  CHECK_RC(mm3_value_get(f, c, &t, buf, sizeof buf, &len)); /* never set: empty */
  CHECK_EQ(len, 0);
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK_RC(mm3_value_set(f, c, &t, "hello world", 11));
  CHECK_EQ(mm3_container_len(f, c, &t), 11);
  memset(buf, '#', sizeof buf);
  len = 0;
  CHECK_EQ(mm3_value_get(f, c, &t, buf, 4, &len), MM3_ERANGE);
  CHECK_EQ(len, 11); /* how much is needed */
  CHECK_EQ(buf[0], '#');
  CHECK_RC(mm3_value_get(f, c, &t, buf, len, &len)); /* retry with that */
  CHECK_EQ(len, 11);
  CHECK(memcmp(buf, "hello world", 11) == 0);
  CHECK_EQ(buf[11], '#');
  /* a larger value replaces it */
  enum { BIG = 10000 };
  uint8_t *big = malloc(BIG), *back = malloc(BIG);
  REQUIRE(big && back);
  for (int i = 0; i < BIG; i++) big[i] = (uint8_t)(i * 13);
  CHECK_RC(mm3_value_set(f, c, &t, big, BIG));
  CHECK_EQ(mm3_container_len(f, c, &t), BIG);
  CHECK_EQ(mm3_value_get(f, c, &t, back, BIG - 1, &len), MM3_ERANGE);
  CHECK_EQ(len, BIG);
  CHECK_RC(mm3_value_get(f, c, &t, back, BIG, &len));
  CHECK(memcmp(back, big, BIG) == 0);
  /* replacing frees the old block: many sets do not grow the heap */
  uint64_t used = hdr_u64(f, 544);
  for (int i = 0; i < 100; i++) CHECK_RC(mm3_value_set(f, c, &t, big, BIG));
  CHECK_EQ(hdr_u64(f, 544), used);
  /* a length past the heap's largest block is refused before anything is
     read from data (UINT64_MAX - 3: len + 8 wrapped to a 16-byte block, then
     len bytes were copied into it; 2^50 + 1, just past the largest block) */
  CHECK_EQ(mm3_value_set(f, c, &t, big, UINT64_MAX - 3), MM3_ETOOBIG);
  CHECK_EQ(mm3_value_set(f, c, &t, big, ((uint64_t)1 << 50) + 1), MM3_ETOOBIG);
  CHECK_EQ(mm3_container_len(f, c, &t), BIG);
  free(big);
  free(back);
  /* an empty value */
  CHECK_RC(mm3_value_set(f, c, &t, "", 0));
  CHECK_EQ(mm3_container_len(f, c, &t), 0);
  CHECK_RC(mm3_value_get(f, c, &t, buf, 0, &len));
  CHECK_EQ(len, 0);
  CHECK(container_ok(f, c, &t));
  CHECK(file_ok(f));
}

FTEST(value_fixed_capacity) {
  mm3_ctype t = ctype(MM3_VALUE, 0, 0, 8);
  mm3_file *f = container_file("value8", "root value<8>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_RC(mm3_value_set(f, c, &t, "12345678", 8));
  CHECK_EQ(mm3_container_len(f, c, &t), 8);
  CHECK_EQ(rd32(c), 8); /* u32 length, then the bytes inline */
  CHECK(memcmp(c + 4, "12345678", 8) == 0);
  CHECK_EQ(mm3_value_set(f, c, &t, "123456789", 9), MM3_EFULL);
  CHECK_EQ(mm3_container_len(f, c, &t), 8);
  char buf[16];
  uint64_t len = 0;
  CHECK_EQ(mm3_value_get(f, c, &t, buf, 4, &len), MM3_ERANGE);
  CHECK_EQ(len, 8);
  CHECK_RC(mm3_value_get(f, c, &t, buf, sizeof buf, &len));
  CHECK_EQ(len, 8);
  CHECK(memcmp(buf, "12345678", 8) == 0);
  CHECK_RC(mm3_value_set(f, c, &t, "abc", 3));
  CHECK_EQ(mm3_container_len(f, c, &t), 3);
  CHECK(memcmp(c + 4, "abc\0\0\0\0\0", 8) == 0); /* the rest is cleared */
  CHECK_RC(mm3_value_get(f, c, &t, buf, 3, &len));
  CHECK(memcmp(buf, "abc", 3) == 0);
  CHECK(container_ok(f, c, &t));
  /* inline: sets never allocate */
  uint64_t used = hdr_u64(f, 544), top = hdr_u64(f, 144);
  for (int i = 0; i < 100; i++) CHECK_RC(mm3_value_set(f, c, &t, "12345678", (uint64_t)(i % 9)));
  CHECK_EQ(hdr_u64(f, 544), used);
  CHECK_EQ(hdr_u64(f, 144), top);
}

/* ========================================================================
 * Containers in a struct, read-only handles, and persistence
 * ======================================================================== */

#define SCHEMA_R "struct R{v:vec<u32,8>;m:map<u64,u64>;s:segmented<u64>;x:value}\nroot R"

struct r_layout {
  mm3_ctype v, m, s, x;
  uint64_t ov, om, os, ox, size;
};

static int r_init(struct r_layout *r) {
  r->v = ctype(MM3_VEC, 4, 4, 8);
  r->m = map_ctype(MM3_HMAP, 8, 8, 0, 8, 8, 0);
  r->s = ctype(MM3_SEGMENTED, 8, 8, 0);
  r->x = ctype(MM3_VALUE, 0, 0, 0);
  if (mm3_ctype_init(&r->v) || mm3_ctype_init(&r->m) || mm3_ctype_init(&r->s) || mm3_ctype_init(&r->x)) return -1;
  r->ov = 0;
  r->om = r->ov + r->v.size; /* every part is 8-aligned */
  r->os = r->om + r->m.size;
  r->ox = r->os + r->s.size;
  r->size = r->ox + r->x.size;
  return 0;
}

FTEST(containers_in_struct_readonly) {
  struct r_layout r;
  REQUIRE(r_init(&r) == 0);
  CHECK_EQ(r.size, 40 + 48 + 456 + 16);
  const char *path;
  mm3_file *f = new_file("struct", SCHEMA_R, r.size, &path);
  REQUIRE(f);
  uint8_t *root = mm3_file_root(f);
  for (uint32_t i = 0; i < 5; i++) CHECK_RC(mm3_vec_push(f, root + r.ov, &r.v, &i));
  for (uint64_t k = 0; k < 1000; k++) {
    uint64_t v = k + 1;
    CHECK_RC(mm3_hmap_put(f, root + r.om, &r.m, &k, &v, NULL));
    CHECK_RC(mm3_seg_push(f, root + r.os, &r.s, &v));
  }
  CHECK_RC(mm3_value_set(f, root + r.ox, &r.x, "persisted", 9));
  close_file(f);
  /* read-only: everything reads, nothing writes */
  mm3_file *g = open_existing(path, 1);
  REQUIRE(g);
  root = mm3_file_root(g);
  CHECK_EQ(mm3_container_len(g, root + r.ov, &r.v), 5);
  CHECK_EQ(rd32(mm3_vec_at(g, root + r.ov, &r.v, 4)), 4);
  CHECK_EQ(mm3_container_len(g, root + r.om, &r.m), 1000);
  CHECK_EQ(mm3_container_len(g, root + r.os, &r.s), 1000);
  int bad = 0;
  for (uint64_t k = 0; k < 1000; k++) {
    uint64_t out = 0;
    if (mm3_hmap_get(g, root + r.om, &r.m, &k, &out, NULL) != 0 || out != k + 1) bad++;
    uint8_t *p = mm3_seg_at(g, root + r.os, &r.s, k);
    if (!p || rd64(p) != k + 1) bad++;
  }
  CHECK_EQ(bad, 0);
  uint64_t pos[3] = {0, 0, 0}, n = 0;
  uint8_t *kp, *vp;
  while (mm3_hmap_next(g, root + r.om, &r.m, pos, &kp, &vp) == 0) n++;
  CHECK_EQ(n, 1000);
  char buf[16];
  uint64_t len = 0;
  CHECK_RC(mm3_value_get(g, root + r.ox, &r.x, buf, sizeof buf, &len));
  CHECK_EQ(len, 9);
  CHECK(memcmp(buf, "persisted", 9) == 0);
  uint64_t k = 5, v = 5;
  uint32_t u = 1;
  CHECK_EQ(mm3_vec_push(g, root + r.ov, &r.v, &u), MM3_EREADONLY);
  CHECK_EQ(mm3_vec_set(g, root + r.ov, &r.v, 0, &u), MM3_EREADONLY);
  CHECK_EQ(mm3_vec_pop(g, root + r.ov, &r.v, NULL), MM3_EREADONLY);
  CHECK_EQ(mm3_vec_clear(g, root + r.ov, &r.v), MM3_EREADONLY);
  CHECK_EQ(mm3_hmap_put(g, root + r.om, &r.m, &k, &v, NULL), MM3_EREADONLY);
  CHECK_EQ(mm3_hmap_del(g, root + r.om, &r.m, &k), MM3_EREADONLY);
  CHECK_EQ(mm3_hmap_clear(g, root + r.om, &r.m), MM3_EREADONLY);
  CHECK_EQ(mm3_seg_push(g, root + r.os, &r.s, &v), MM3_EREADONLY);
  CHECK_EQ(mm3_seg_truncate(g, root + r.os, &r.s, 0), MM3_EREADONLY);
  CHECK_EQ(mm3_value_set(g, root + r.ox, &r.x, "x", 1), MM3_EREADONLY);
  CHECK_EQ(mm3_container_len(g, root + r.om, &r.m), 1000);
  CHECK_EQ(mm3_container_len(g, root + r.os, &r.s), 1000);
  CHECK(container_ok(g, root + r.ov, &r.v));
  CHECK(container_ok(g, root + r.om, &r.m));
  CHECK(container_ok(g, root + r.os, &r.s));
  CHECK(container_ok(g, root + r.ox, &r.x));
  CHECK(file_ok(g));
}

/* ========================================================================
 * mm3_container_check
 * ======================================================================== */

FTEST(check_healthy_containers) {
  struct r_layout r;
  REQUIRE(r_init(&r) == 0);
  mm3_file *f = new_file("checkok", SCHEMA_R, r.size, NULL);
  REQUIRE(f);
  uint8_t *root = mm3_file_root(f);
  char why[128] = "x";
  /* empty */
  CHECK_RC(mm3_container_check(f, root + r.ov, &r.v, why, sizeof why));
  CHECK_EQ(why[0], 0);
  CHECK_RC(mm3_container_check(f, root + r.om, &r.m, why, sizeof why));
  CHECK_RC(mm3_container_check(f, root + r.os, &r.s, why, sizeof why));
  CHECK_RC(mm3_container_check(f, root + r.ox, &r.x, NULL, 0));
  /* in use */
  for (uint64_t k = 0; k < 300; k++) {
    CHECK_RC(mm3_hmap_put(f, root + r.om, &r.m, &k, &k, NULL));
    CHECK_RC(mm3_seg_push(f, root + r.os, &r.s, &k));
  }
  uint32_t u = 3;
  CHECK_RC(mm3_vec_push(f, root + r.ov, &r.v, &u));
  CHECK_RC(mm3_value_set(f, root + r.ox, &r.x, "v", 1));
  CHECK(container_ok(f, root + r.ov, &r.v));
  CHECK(container_ok(f, root + r.om, &r.m));
  CHECK(container_ok(f, root + r.os, &r.s));
  CHECK(container_ok(f, root + r.ox, &r.x));
  mm3_ctype ring = ctype(MM3_RING, 4, 4, 4); /* any push count is valid */
  REQUIRE(mm3_ctype_init(&ring) == 0);
  mm3_file *g = new_file("checkring", "root ring<u32,4>", ring.size, NULL);
  REQUIRE(g);
  wr64(mm3_file_root(g), UINT64_MAX);
  CHECK(container_ok(g, mm3_file_root(g), &ring));
  CHECK_EQ(mm3_container_len(g, mm3_file_root(g), &ring), 4);
  /* an unknown kind */
  mm3_ctype bad = r.v;
  bad.kind = (mm3_ckind)42;
  CHECK_EQ(mm3_container_check(f, root, &bad, why, sizeof why), MM3_EINVAL);
}

/* What mm3_container_blocks and mm3_file_blocks name, for the test below. */
typedef struct owned {
  uint64_t off[4096];
  size_t n;
} owned;

static int own_block(void *ud, uint64_t off) {
  owned *o = ud;
  if (o->n == sizeof o->off / sizeof o->off[0]) return MM3_EFULL;
  o->off[o->n++] = off;
  return 0;
}

/* The bytes of the heap blocks at o->off[from..], each once: 0 if one is
   named twice (by then, all of them have been added). */
static uint64_t owned_bytes(mm3_file *f, const owned *o, size_t from) {
  uint64_t bytes = 0;
  for (size_t i = from; i < o->n; i++) {
    for (size_t j = 0; j < i; j++)
      if (o->off[j] == o->off[i]) return 0;
    bytes += (uint64_t)16 << (rd64(mm3_file_base(f) + o->off[i] - 16) & 0xff); /* (its tag: the size class) */
  }
  return bytes;
}

/* Every heap block in use is some container's or the log's, and no block
   is two's: mm.check's comparison relies on both. */
FTEST(container_blocks_name_every_block_once) {
  static owned o;
  struct r_layout r;
  REQUIRE(r_init(&r) == 0);
  mm3_file *f = new_file("blocks", SCHEMA_R, r.size, NULL);
  REQUIRE(f);
  uint8_t *root = mm3_file_root(f);
  o.n = 0;
  CHECK_RC(mm3_container_blocks(f, root + r.om, &r.m, own_block, &o));
  CHECK_RC(mm3_container_blocks(f, root + r.os, &r.s, own_block, &o));
  CHECK_RC(mm3_container_blocks(f, root + r.ox, &r.x, own_block, &o));
  CHECK_EQ(o.n, 0); /* empty: nothing yet */
  for (uint64_t k = 0; k < 5000; k++) {
    CHECK_RC(mm3_hmap_put(f, root + r.om, &r.m, &k, &k, NULL));
    CHECK_RC(mm3_seg_push(f, root + r.os, &r.s, &k));
    if (k % 3 == 0) CHECK_RC(mm3_hmap_del(f, root + r.om, &r.m, &k)); /* free nodes stay in their arenas */
  }
  CHECK_RC(mm3_seg_truncate(f, root + r.os, &r.s, 100)); /* segments past the end stay the list's */
  CHECK_RC(mm3_value_set(f, root + r.ox, &r.x, "first", 5));
  CHECK_RC(mm3_value_set(f, root + r.ox, &r.x, "second value", 12)); /* the first block freed */
  uint32_t u = 1;
  CHECK_RC(mm3_vec_push(f, root + r.ov, &r.v, &u));
  CHECK_RC(mm3_container_blocks(f, root + r.ov, &r.v, own_block, &o));
  CHECK_EQ(o.n, 0); /* a vec lives in its parent */
  CHECK_RC(mm3_container_blocks(f, root + r.om, &r.m, own_block, &o));
  size_t map_blocks = o.n;
  CHECK(map_blocks >= 2); /* a table and an arena at least */
  CHECK_RC(mm3_container_blocks(f, root + r.os, &r.s, own_block, &o));
  CHECK_RC(mm3_container_blocks(f, root + r.ox, &r.x, own_block, &o));
  CHECK_EQ(o.n - map_blocks, 4 + 1); /* 5000 u64 in segments of 512, 1024, 2048 and 4096; the value */
  size_t containers = o.n;
  CHECK_RC(mm3_file_blocks(f, own_block, &o));
  CHECK_EQ(o.n - containers, 1); /* the undo log */
  mm3_heap_usage use;
  CHECK_RC(mm3_file_usage(f, &use));
  CHECK_EQ(use.leaked, 0);
  CHECK_EQ(owned_bytes(f, &o, 0), use.used + use.log); /* each once, and all of them */
  o.n = containers;
  CHECK_EQ(owned_bytes(f, &o, 0), use.used);
  /* the walk stops at the callback's error */
  o.n = sizeof o.off / sizeof o.off[0];
  CHECK_EQ(mm3_container_blocks(f, root + r.os, &r.s, own_block, &o), MM3_EFULL);
  /* an arena whose link leaves the file: damage, and the link is not
     followed (it was read through once found bad) */
  uint8_t *arena = mm3_file_base(f) + rd64(root + r.om + 40); /* the map head's newest arena */
  wr64(arena, mm3_file_size(f) + ((uint64_t)1 << 40));
  o.n = 0;
  CHECK_EQ(mm3_container_blocks(f, root + r.om, &r.m, own_block, &o), MM3_ECORRUPT);
}

FTEST(check_damaged_vec_and_value) {
  mm3_ctype t = ctype(MM3_VEC, 4, 4, 8);
  mm3_file *f = container_file("dmgvec", "root vec<u32,8>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  char why[128];
  wr64(c, 9);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "over capacity") != NULL);
  CHECK_EQ(mm3_container_len(f, c, &t), 8); /* never past capacity */
  CHECK(mm3_vec_at(f, c, &t, 8) == NULL);
  wr64(c, 8);
  CHECK(container_ok(f, c, &t));

  mm3_ctype tv = ctype(MM3_VALUE, 0, 0, 0);
  mm3_file *g = container_file("dmgval", "root value", &tv);
  REQUIRE(g);
  uint8_t *cv = mm3_file_root(g);
  CHECK_RC(mm3_value_set(g, cv, &tv, "some bytes", 10));
  uint64_t off = rd64(cv);
  wr64(cv, mm3_file_size(g) + 4096); /* the block's offset outside the file */
  uint8_t buf[32];
  uint64_t len;
  CHECK_EQ(mm3_container_check(g, cv, &tv, why, sizeof why), MM3_ECORRUPT);
  CHECK(why[0] != 0);
  CHECK_EQ(mm3_value_get(g, cv, &tv, buf, sizeof buf, &len), MM3_ECORRUPT);
  wr64(cv, off);
  wr64(mm3_file_base(g) + off - 8, 11); /* the block's own length disagrees */
  CHECK_EQ(mm3_container_check(g, cv, &tv, why, sizeof why), MM3_ECORRUPT);
  CHECK_EQ(mm3_value_get(g, cv, &tv, buf, sizeof buf, &len), MM3_ECORRUPT);
  wr64(mm3_file_base(g) + off - 8, 10);
  CHECK(container_ok(g, cv, &tv));
  CHECK_RC(mm3_value_get(g, cv, &tv, buf, sizeof buf, &len));
  CHECK(memcmp(buf, "some bytes", 10) == 0);

  mm3_ctype t8 = ctype(MM3_VALUE, 0, 0, 8);
  mm3_file *h = container_file("dmgval8", "root value<8>", &t8);
  REQUIRE(h);
  uint8_t *c8 = mm3_file_root(h);
  uint32_t nine = 9;
  memcpy(c8, &nine, 4);
  CHECK_EQ(mm3_container_check(h, c8, &t8, why, sizeof why), MM3_ECORRUPT);
  CHECK_EQ(mm3_value_get(h, c8, &t8, buf, sizeof buf, &len), MM3_ECORRUPT);
}

FTEST(check_damaged_fmap) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("dmgfmap", 16, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_RC(put_keys(f, c, &t, 0, 10));
  CHECK(container_ok(f, c, &t));
  char why[128];
  /* a bucket links past the capacity */
  uint64_t k = 4;
  uint32_t *bucket = (uint32_t *)(c + 16) + (mm3_hmap_key_hash(f, &t, &k) & (t.buckets - 1));
  uint32_t saved = *bucket;
  REQUIRE(saved != 0);
  *bucket = (uint32_t)t.cap + 5;
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "bucket") != NULL);
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ECORRUPT);
  *bucket = saved;
  CHECK(container_ok(f, c, &t));
  /* a chain that loops */
  uint8_t *vp;
  CHECK_RC(mm3_hmap_get(f, c, &t, &k, NULL, &vp));
  uint8_t *node = vp - t.val_off;
  uint32_t next = rd32(node);
  memcpy(node, &saved, 4); /* the node links back to the bucket's first node */
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  uint64_t b = (uint64_t)(bucket - (uint32_t *)(c + 16)), missing = 1000;
  while ((mm3_hmap_key_hash(f, &t, &missing) & (t.buckets - 1)) != b) missing++;
  CHECK_EQ(mm3_hmap_get(f, c, &t, &missing, NULL, NULL), MM3_ECORRUPT); /* the walk is bounded */
  memcpy(node, &next, 4);
  /* the count disagrees with the chains */
  wr64(c, 11);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  wr64(c, 10);
  CHECK(container_ok(f, c, &t));
}

FTEST(check_damaged_hmap) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("dmghmap", 0, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  CHECK_RC(put_keys(f, c, &t, 0, 100));
  CHECK(container_ok(f, c, &t));
  char why[160];
  uint64_t k = 42;
  uint8_t *vp;
  CHECK_RC(mm3_hmap_get(f, c, &t, &k, NULL, &vp));
  uint8_t *node = vp - t.val_off;
  /* a link out of the file */
  uint64_t next = rd64(node);
  wr64(node, (mm3_file_size(f) + 4096) & ~(uint64_t)7);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "outside the file") != NULL);
  wr64(node, next);
  CHECK(container_ok(f, c, &t));
  /* a node whose stored hash is wrong */
  uint64_t h = rd64(node + 8);
  wr64(node + 8, h ^ 1);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "hash") != NULL);
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ENOTFOUND); /* no longer matches */
  wr64(node + 8, h);
  /* the table itself outside the file */
  uint64_t tab = rd64(c + 8);
  wr64(c + 8, mm3_file_size(f) + 4096);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK_EQ(mm3_hmap_get(f, c, &t, &k, NULL, NULL), MM3_ECORRUPT);
  uint64_t v = 1;
  CHECK_EQ(mm3_hmap_put(f, c, &t, &k, &v, NULL), MM3_ECORRUPT);
  wr64(c + 8, tab);
  /* the count disagrees */
  wr64(c, 99);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "count") != NULL);
  /* a count too small for the chains: a lookup that walks past it says the
     map is damaged (as a loop would make it), whichever way it looks */
  uint64_t deep = 0;
  for (uint64_t q = 0; q < 100 && !deep; q++) {
    CHECK_RC(mm3_hmap_get(f, c, &t, &q, NULL, &vp));
    uint64_t first = rd64((const uint8_t *)mm3_file_base(f) + tab +
                          8 * (mm3_hmap_key_hash(f, &t, &q) & ((1u << rd32(c + 24)) - 1)));
    if (first != (uint64_t)(vp - t.val_off - (uint8_t *)mm3_file_base(f))) deep = q; /* not first in its chain */
  }
  REQUIRE(deep != 0);
  wr64(c, 0);
  CHECK_EQ(mm3_hmap_get(f, c, &t, &deep, &v, NULL), MM3_ECORRUPT);
  wr64(c, 100);
  CHECK(container_ok(f, c, &t));
  CHECK_RC(mm3_hmap_get(f, c, &t, &k, &v, NULL));
  CHECK_EQ(v, 42);
  CHECK(file_ok(f)); /* the failed put changed nothing */
}

/* Damage to a map's node arenas, as another program could make it: links
   between arenas that loop (the check says so at once, never walks on), a
   free node list that names a linked node (the check says so before a put
   could reuse it and lose that entry), a head whose next node is past its
   end. */
FTEST(check_damaged_arenas) {
  mm3_ctype t;
  mm3_file *f = u64_map_file("dmgarena", 0, &t, NULL);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f), *base = mm3_file_base(f);
  CHECK_RC(put_keys(f, c, &t, 0, 40)); /* arenas of 4 nodes, then more */
  uint64_t newest = rd64(c + 40), oldest = newest;
  REQUIRE(newest != 0);
  while (rd64(base + oldest)) oldest = rd64(base + oldest);
  CHECK(oldest != newest);
  char why[160];
  /* the oldest arena's link names the newest: a loop */
  wr64(base + oldest, newest);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "loop") != NULL);
  wr64(base + oldest, 0);
  CHECK(container_ok(f, c, &t));
  /* a free list whose head is a linked node (the last of its chain) */
  uint64_t k = 3, victim = 0;
  CHECK_RC(mm3_hmap_del(f, c, &t, &k));
  CHECK(container_ok(f, c, &t));
  for (k = 10; k < 40 && !victim; k++) {
    uint8_t *vp;
    CHECK_RC(mm3_hmap_get(f, c, &t, &k, NULL, &vp));
    uint64_t node = (uint64_t)(vp - base) - t.val_off;
    if (rd64(base + node) == 0) victim = node;
  }
  REQUIRE(victim != 0);
  uint64_t freed = rd64(base + newest + 24);
  wr64(base + newest + 24, victim);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "both linked and on the free node list") != NULL);
  wr64(base + newest + 24, freed);
  CHECK(container_ok(f, c, &t));
  /* the newest arena's next node past its end: the map is damaged, a put
     says so and writes nothing */
  uint64_t bump = rd64(base + newest + 8), end = rd64(base + newest + 16);
  wr64(base + newest + 8, end + t.node_size);
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  uint64_t v = 1, nk = 1000, len = mm3_container_len(f, c, &t);
  CHECK_EQ(mm3_hmap_put(f, c, &t, &nk, &v, NULL), MM3_ECORRUPT);
  CHECK_EQ(mm3_container_len(f, c, &t), len);
  wr64(base + newest + 8, bump);
  CHECK(container_ok(f, c, &t));
  CHECK_EQ(mm3_hmap_get(f, c, &t, &nk, NULL, NULL), MM3_ENOTFOUND);
  CHECK(file_ok(f));
}

FTEST(check_damaged_segmented) {
  mm3_ctype t = ctype(MM3_SEGMENTED, 8, 8, 0);
  mm3_file *f = container_file("dmgseg", "root segmented<u64>", &t);
  REQUIRE(f);
  uint8_t *c = mm3_file_root(f);
  for (uint64_t i = 0; i < 2000; i++) CHECK_RC(mm3_seg_push(f, c, &t, &i)); /* segments 0 and 1 */
  CHECK(container_ok(f, c, &t));
  char why[160];
  uint64_t seg1 = rd64(c + 16);
  wr64(c + 16, mm3_file_size(f) - 8); /* segment 1 runs out of the file */
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  CHECK(strstr(why, "segment 1") != NULL);
  CHECK(mm3_seg_at(f, c, &t, 1000) == NULL); /* never a pointer outside the file */
  CHECK(mm3_seg_at(f, c, &t, 10) != NULL);
  wr64(c + 16, 0); /* missing */
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  wr64(c + 16, seg1);
  wr64(c, (uint64_t)1 << 62); /* an impossible length */
  CHECK_EQ(mm3_container_check(f, c, &t, why, sizeof why), MM3_ECORRUPT);
  wr64(c, 2000);
  CHECK(container_ok(f, c, &t));
}

RUN_TESTS(ctype_vec_ring_layout, ctype_map_layout, ctype_segmented_value_layout, ctype_bad,
          ctype_zero_capacity_is_einval, vec_push_at_pop, calls_refuse_another_kinds_type,
          vec_insert_remove, vec_set_clear, vec_persists,
          ring_overwrites_oldest, ring_only_pushes, fmap_integer_keys, fmap_string_keys, fmap_next_and_clear,
          hmap_key_hash, hmap_string_keys, hmap_100000_entries, hmap_next_during_resize, hmap_delete_during_next,
          hmap_get_many_not_found_leaves_value, hmap_put_many_get_many, hmap_put_many_sizes_table_once, fmap_put_many_full, hmap_put_many_rollback_readonly,
          seg_push_million, seg_new_segment_takes_no_memory, hmap_table_block_rest_untouched, cut_file_stays_cut, seg_set_pop_truncate, check_past_reserve_is_not_damage, seg_push_past_reserve, value_get_set_retry,
          value_fixed_capacity, containers_in_struct_readonly, check_healthy_containers,
          check_damaged_vec_and_value, check_damaged_fmap, check_damaged_hmap, check_damaged_arenas,
          check_damaged_segmented, container_blocks_name_every_block_once)
