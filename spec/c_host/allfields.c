/*
 * allfields.c - spec/cheader_spec.lua's C side: reads and writes a file of
 * the schema "All" (every field type) through the header `memmap3 cheader`
 * generated for it (all_types.h), with no Lua in the process.
 *
 *   allfields write PATH   create PATH from ALL_SCHEMA / ALL_ROOT_SIZE and
 *                          set every field (scalars in place, containers in
 *                          place or through mm3_* calls with the *_CTYPE)
 *   allfields read PATH    open PATH and print every field as name=value
 *
 * Exit status 0 on success; a failed call prints its error and exits 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memmap3.h"
#include "all_types.h"

#define CHECK(call)                                                              \
  do {                                                                           \
    int rc_ = (call);                                                            \
    if (rc_) {                                                                   \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, mm3_strerror(rc_)); \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

#define EXPECT(cond)                                                             \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);        \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

static mm3_ctype ctype(mm3_ctype t) {
  CHECK(mm3_ctype_init(&t));
  return t;
}

static const char *u128_str(mm3_u128 v, char *buf) {
  char tmp[48];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  buf[n] = 0;
  return buf;
}

static const char *i128_str(mm3_i128 v, char *buf) {
  if (v >= 0) return u128_str((mm3_u128)v, buf);
  buf[0] = '-';
  u128_str((mm3_u128)(-(v + 1)) + 1, buf + 1);
  return buf;
}

static void hex(const char *name, const uint8_t *p, size_t n) {
  printf("%s=", name);
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
  printf("\n");
}

static void write_all(const char *path) {
  mm3_file *f;
  CHECK(mm3_file_open(path, &(mm3_file_opts){.create = 1, .schema = ALL_SCHEMA, .root_size = ALL_ROOT_SIZE}, &f));
  EXPECT(mm3_file_fingerprint(f) == ALL_FINGERPRINT);
  All *s = (All *)mm3_file_root(f);

  /* scalars, in place */
  s->u8 = 255;
  s->u16 = 65535;
  s->u32 = 4294967295u;
  s->u64 = UINT64_MAX;
  s->i8 = -128;
  s->i16 = -32768;
  s->i32 = INT32_MIN;
  s->i64 = INT64_MIN;
  s->f32 = 1.5f;
  s->f64 = 0.1;
  s->flag = 1;
  s->ch = 0x20AC; /* the euro sign */
  s->big = ~(mm3_u128)0;
  s->neg = -(mm3_i128)(((mm3_u128)1 << 127) - 1) - 1;
  s->us = 123456789012u;
  s->is = -5;
  memcpy(s->name, "h\xc3\xa9llo w\xc3\xb6rld", 13);
  memcpy(s->raw, "\x00\x01\xfe\xff", 4);
  s->class = CLASS_ROGUE;
  s->pos.x = -7;
  s->pos.y = 300;
  for (int r = 0; r < 2; r++)
    for (int c = 0; c < 3; c++) s->grid[r][c] = (uint8_t)(r * 3 + c + 1);
  s->path[0] = (Pos){1, 2};
  s->path[1] = (Pos){3, 4};
  s->default_ = 9;
  mm3_atomic_store(&s->hits, 4, 40);
  EXPECT(mm3_atomic_fetch(&s->hits, 4, MM3_ATOMIC_ADD, 1, 0) == 40);
  mm3_atomic_store(&s->alive, 1, 1);

  /* fixed containers, in place */
  s->vec.items[0] = (Entry){.id = 7, .score = 2.5};
  s->vec.items[1] = (Entry){.id = 8, .score = -0.25};
  s->vec.len = 2;
  strcpy(s->tags[0], "a");
  strcpy(s->tags[1], "bb");
  strcpy(s->tags[2], "ccc");

  /* containers, through the C API and the header's mm3_ctype initialisers */
  mm3_ctype rt = ctype((mm3_ctype)All_ring_u16_3_CTYPE);
  for (uint16_t v = 10; v <= 50; v += 10) CHECK(mm3_vec_push(f, (uint8_t *)&s->ring, &rt, &v));
  EXPECT(s->ring.len == 5 && s->ring.items[(5 - 3) % 3] == 30);

  mm3_ctype ft = ctype((mm3_ctype)All_map_u32_i32_4_CTYPE);
  for (uint32_t k = 1; k <= 3; k++) {
    int32_t v = -(int32_t)k;
    CHECK(mm3_hmap_put(f, (uint8_t *)&s->fmap, &ft, &k, &v, NULL));
  }
  EXPECT(s->fmap.count == 3);

  mm3_ctype ht = ctype((mm3_ctype)All_map_string_8_f64_CTYPE);
  char key[8] = "alpha";
  double d = 1.25;
  CHECK(mm3_hmap_put(f, (uint8_t *)&s->hmap, &ht, key, &d, NULL));
  memset(key, 0, sizeof key);
  strcpy(key, "beta");
  d = -2;
  CHECK(mm3_hmap_put(f, (uint8_t *)&s->hmap, &ht, key, &d, NULL));
  EXPECT(s->hmap.count == 2);

  mm3_ctype st = ctype((mm3_ctype)All_segmented_u64_CTYPE);
  uint64_t items[] = {1, 2, (uint64_t)1 << 40};
  for (int i = 0; i < 3; i++) CHECK(mm3_seg_push(f, (uint8_t *)&s->seg, &st, &items[i]));
  EXPECT(s->seg.len == 3);

  /* value fields hold serialised Lua values: tag 6 is a string, 4 an integer */
  mm3_ctype vt = ctype((mm3_ctype)All_value_16_CTYPE);
  CHECK(mm3_value_set(f, (uint8_t *)&s->small, &vt, "\x06\x02hi", 4));
  EXPECT(s->small.len == 4 && memcmp(s->small.data, "\x06\x02hi", 4) == 0);
  mm3_ctype at = ctype((mm3_ctype)All_value_CTYPE);
  uint8_t any[9] = {4};
  int64_t n = 1234567890123;
  memcpy(any + 1, &n, 8); /* little-endian, as the file */
  CHECK(mm3_value_set(f, (uint8_t *)&s->any, &at, any, sizeof any));
  EXPECT(s->any.len == 9);

  CHECK(mm3_file_flush(f));
  mm3_file_close(f);
  printf("written\n");
}

static void read_all(const char *path) {
  mm3_file *f;
  char buf[64];
  CHECK(mm3_file_open(path, &(mm3_file_opts){.schema = ALL_SCHEMA}, &f));
  EXPECT(mm3_file_root_size(f) == ALL_ROOT_SIZE);
  const All *s = (const All *)mm3_file_root(f);

  printf("u8=%u\nu16=%u\nu32=%" PRIu32 "\nu64=%" PRIu64 "\n", s->u8, s->u16, s->u32, s->u64);
  printf("i8=%d\ni16=%d\ni32=%" PRId32 "\ni64=%" PRId64 "\n", s->i8, s->i16, s->i32, s->i64);
  printf("f32=%.9g\nf64=%.17g\nflag=%u\nch=U+%04" PRIX32 "\n", (double)s->f32, s->f64, s->flag, s->ch);
  printf("big=%s\n", u128_str(s->big, buf));
  printf("neg=%s\n", i128_str(s->neg, buf));
  printf("us=%" PRIu64 "\nis=%" PRId64 "\n", s->us, s->is);
  printf("name=%.*s\n", (int)strnlen(s->name, sizeof s->name), s->name);
  hex("raw", s->raw, sizeof s->raw);
  printf("class=%u\nrogue=%d\n", s->class, s->class == CLASS_ROGUE);
  printf("pos=%d,%d\n", s->pos.x, s->pos.y);
  printf("grid=%u,%u,%u,%u,%u,%u\n", s->grid[0][0], s->grid[0][1], s->grid[0][2], s->grid[1][0], s->grid[1][1],
         s->grid[1][2]);
  printf("path=%d,%d,%d,%d\n", s->path[0].x, s->path[0].y, s->path[1].x, s->path[1].y);
  printf("hits=%" PRIu64 "\n", mm3_atomic_load(&s->hits, 4));
  printf("alive=%" PRIu64 "\n", mm3_atomic_load(&s->alive, 1));
  printf("default=%u\n", s->default_);

  /* vec: the struct and mm3_vec_at agree */
  mm3_ctype vt = ctype((mm3_ctype)All_vec_Entry_4_CTYPE);
  printf("vec.len=%" PRIu64 "\n", s->vec.len);
  for (uint64_t i = 0; i < s->vec.len; i++) {
    EXPECT(mm3_vec_at(f, (uint8_t *)&s->vec, &vt, i) == (const uint8_t *)&s->vec.items[i]);
    printf("vec[%" PRIu64 "]=%" PRIu32 ":%.17g\n", i + 1, s->vec.items[i].id, s->vec.items[i].score);
  }

  /* ring: len counts every push; the oldest of the last N is at (len - n) % N */
  mm3_ctype rt = ctype((mm3_ctype)All_ring_u16_3_CTYPE);
  uint64_t n = s->ring.len < 3 ? s->ring.len : 3;
  printf("ring.len=%" PRIu64 "\n", s->ring.len);
  for (uint64_t i = 0; i < n; i++) {
    const uint16_t *it = &s->ring.items[(s->ring.len - n + i) % 3];
    EXPECT(mm3_vec_at(f, (uint8_t *)&s->ring, &rt, i) == (const uint8_t *)it);
    printf("ring[%" PRIu64 "]=%u\n", i + 1, *it);
  }

  for (int i = 0; i < 3; i++) printf("tags[%d]=%.*s\n", i + 1, (int)strnlen(s->tags[i], 8), s->tags[i]);

  /* fixed map: walk the nodes of the struct; mm3_hmap_get finds the same */
  mm3_ctype ft = ctype((mm3_ctype)All_map_u32_i32_4_CTYPE);
  printf("fmap.count=%" PRIu64 "\n", s->fmap.count);
  for (int i = 0; i < 4; i++) {
    const All_map_u32_i32_4_node *nd = &s->fmap.nodes[i];
    if (!nd->live) continue;
    uint8_t *vp;
    CHECK(mm3_hmap_get(f, (uint8_t *)&s->fmap, &ft, &nd->key, NULL, &vp));
    EXPECT(vp == (const uint8_t *)&nd->val);
    printf("fmap[%" PRIu32 "]=%" PRId32 "\n", nd->key, nd->val);
  }

  /* growable map: its entries are heap nodes of the header's node type */
  mm3_ctype ht = ctype((mm3_ctype)All_map_string_8_f64_CTYPE);
  printf("hmap.count=%" PRIu64 "\n", s->hmap.count);
  uint64_t pos[3] = {0, 0, 0};
  uint8_t *k, *v;
  while (mm3_hmap_next(f, (uint8_t *)&s->hmap, &ht, pos, &k, &v) == 0) {
    const All_map_string_8_f64_node *nd =
        (const All_map_string_8_f64_node *)(k - offsetof(All_map_string_8_f64_node, key));
    EXPECT(v == (const uint8_t *)&nd->val);
    EXPECT(nd->hash == mm3_hmap_key_hash(f, &ht, nd->key));
    printf("hmap[%.*s]=%.17g\n", (int)strnlen(nd->key, 8), nd->key, nd->val);
  }

  mm3_ctype st = ctype((mm3_ctype)All_segmented_u64_CTYPE);
  printf("seg.len=%" PRIu64 "\n", s->seg.len);
  for (uint64_t i = 0; i < s->seg.len; i++)
    printf("seg[%" PRIu64 "]=%" PRIu64 "\n", i + 1, *(const uint64_t *)mm3_seg_at(f, (uint8_t *)&s->seg, &st, i));

  /* value<N>: in place; value: through mm3_value_get */
  hex("small", s->small.data, s->small.len);
  mm3_ctype at = ctype((mm3_ctype)All_value_CTYPE);
  uint8_t any[256];
  uint64_t len;
  CHECK(mm3_value_get(f, (uint8_t *)&s->any, &at, any, sizeof any, &len));
  EXPECT(len == s->any.len);
  hex("any", any, (size_t)len);

  mm3_file_close(f);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s write|read PATH\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[1], "write") == 0)
    write_all(argv[2]);
  else
    read_all(argv[2]);
  return 0;
}
