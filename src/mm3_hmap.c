/*
 * mm3_hmap.c - hash maps inside a file: map<K, V, N> (fixed capacity, all
 * inline) and map<K, V> (growable, nodes in the heap).
 *
 * Both chain entries in buckets and never move a node once made, so a pointer
 * to a value stays valid until its key is deleted. Keys hash with SipHash-1-3
 * keyed by the file's random seed. The growable map doubles its bucket table
 * when it holds half as many entries as buckets (chains stay short: a lookup
 * visits 1.25 nodes on average, as a hash map's cost is its cache misses) and
 * moves the old table's chains
 * over a few buckets per operation (as Redis's dict does): no call does more
 * than REHASH_STEP buckets of rehashing, so there is no pause at a resize.
 * Every offset read from the file is checked before use.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "mm3_internal.h"

#define REHASH_STEP 8
#define MAX_LG 40
#define BATCH 256 /* buckets or frees per logged step of a long job: keeps the log small */

#define LOG(f, p, n)                         \
  do {                                       \
    int lrc_ = mm3__log(f, p, n);            \
    if (lrc_) return lrc_;                   \
  } while (0)

/* ---- keys ---- */

static size_t key_len(const mm3_ctype *t, const uint8_t *key) {
  if (!t->key_is_string) return t->key_size;
  const uint8_t *z = memchr(key, 0, t->key_size);
  return z ? (size_t)(z - key) : t->key_size;
}

/* A value of n bytes: an 8-byte one (the common case) inline, not a call. */
static inline void copy_value(void *dst, const void *src, size_t n) {
  if (n == 8) memcpy(dst, src, 8);
  else memcpy(dst, src, n);
}

/* Whether two keys of n bytes are equal: the common sizes inline. */
static inline int key_eq(const uint8_t *a, const uint8_t *b, size_t n) {
  uint64_t x[2], y[2];
  if (n == 16) {
    memcpy(x, a, 16);
    memcpy(y, b, 16);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
  }
  if (n == 8) {
    memcpy(x, a, 8);
    memcpy(y, b, 8);
    return x[0] == y[0];
  }
  return memcmp(a, b, n) == 0;
}

/* mm3_hash of a key of up to 16 bytes, read as two words (zero past the
   key): the length found in the words, no call, no byte loop, the seed's
   state made at open. A lookup is short so that the next call's miss starts
   while this one's is out (get_lean): the hash is most of its instructions. */
static inline __attribute__((always_inline)) uint64_t short_key_hash(const mm3_file *f, const mm3_ctype *t,
                                                                     uint64_t w0, uint64_t w1) {
  uint64_t len = t->key_is_string ? mm3__first_zero(w0, w1) : t->key_size;
  mm3__sip s = f->sip;
  uint64_t tail = w0;
  if (len >= 8) {
    mm3__sip_word(&s, w0);
    tail = w1;
    if (len == 16) {
      mm3__sip_word(&s, w1);
      tail = 0;
    }
  }
  uint64_t bits = 8 * (len & 7); /* the tail's bytes: the low ones */
  tail = bits ? tail & (~(uint64_t)0 >> (64 - bits)) : 0;
  return mm3__sip_end(&s, len << 56 | tail);
}

static inline __attribute__((always_inline)) uint64_t key_hash(const mm3_file *f, const mm3_ctype *t,
                                                               const void *key) {
  uint64_t w[2] = {0, 0};
  switch (t->key_size) { /* (constant sizes: plain loads) */
    case 16: memcpy(w, key, 16); break;
    case 8: memcpy(w, key, 8); break;
    case 4: memcpy(w, key, 4); break;
    case 2: memcpy(w, key, 2); break;
    case 1: memcpy(w, key, 1); break;
    default: return mm3_hash(f->seed, key, key_len(t, key));
  }
  return short_key_hash(f, t, w[0], w[1]);
}

uint64_t mm3_hmap_key_hash(const mm3_file *f, const mm3_ctype *t, const void *key) { return key_hash(f, t, key); }

/* ---- fixed maps: u64 count, u32 free, u32 used, u32 buckets[B], nodes ---- */

typedef struct fhead {
  uint64_t count;
  uint32_t free_head, used;
} fhead;

static uint32_t *fbuckets(uint8_t *c) { return (uint32_t *)(c + 16); }
static uint8_t *fnode(uint8_t *c, const mm3_ctype *t, uint32_t idx) { /* idx is 1-based */
  return c + t->nodes_off + (uint64_t)(idx - 1) * t->node_size;
}

/* Find key: *link receives the u32 that points to the node (for unlinking). */
static int ffind(uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h, uint32_t **link, uint8_t **node) {
  uint32_t *l = &fbuckets(c)[h & (t->buckets - 1)];
  for (uint64_t steps = 0; *l; steps++) {
    if (*l > t->cap || steps > t->cap) return MM3_ECORRUPT;
    uint8_t *n = fnode(c, t, *l);
    if (key_eq(n + t->key_off, key, t->key_size)) {
      *link = l;
      *node = n;
      return 0;
    }
    l = (uint32_t *)n;
  }
  *link = l;
  return MM3_ENOTFOUND;
}

static int fput(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h, const void *val,
                int *created) {
  fhead *hd = (fhead *)c;
  uint32_t *link;
  uint8_t *n;
  int rc = ffind(c, t, key, h, &link, &n);
  if (rc == 0) {
    LOG(f, n + t->val_off, t->elem_size);
    memcpy(n + t->val_off, val, t->elem_size);
    if (created) *created = 0;
    return 0;
  }
  if (rc != MM3_ENOTFOUND) return rc;
  if (hd->count > hd->used || hd->used > t->cap) return MM3_ECORRUPT;
  uint32_t idx;
  LOG(f, hd, sizeof *hd);
  LOG(f, link, 4);
  if (hd->free_head) {
    idx = hd->free_head;
    if (idx > t->cap) return MM3_ECORRUPT;
    hd->free_head = *(uint32_t *)fnode(c, t, idx);
  } else if (hd->used < t->cap) {
    idx = ++hd->used;
  } else {
    return MM3_EFULL;
  }
  n = fnode(c, t, idx);
  LOG(f, n, t->node_size);
  memset(n, 0, t->node_size);
  memcpy(n + t->key_off, key, t->key_size);
  memcpy(n + t->val_off, val, t->elem_size);
  ((uint32_t *)n)[1] = 1; /* live */
  *link = idx;            /* linked last: a complete node appears at once */
  hd->count++;
  if (created) *created = 1;
  return 0;
}

static int fdel(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h) {
  fhead *hd = (fhead *)c;
  uint32_t *link;
  uint8_t *n;
  int rc = ffind(c, t, key, h, &link, &n);
  if (rc) return rc;
  if (hd->count == 0 || hd->count > hd->used || hd->used > t->cap) return MM3_ECORRUPT;
  LOG(f, hd, sizeof *hd);
  LOG(f, link, 4);
  LOG(f, n, t->node_size);
  uint32_t idx = *link;
  *link = *(uint32_t *)n;
  memset(n, 0, t->node_size);
  *(uint32_t *)n = hd->free_head;
  hd->free_head = idx;
  hd->count--;
  return 0;
}

/* ---- growable maps ---- */

typedef struct ghead {
  uint64_t count;
  uint64_t tab[2];
  uint32_t lg[2];
  uint64_t rehash; /* next bucket of tab[0] to move, + 1; 0: not rehashing */
  uint64_t arena;  /* the newest node arena (0: none; see below) */
} ghead;

_Static_assert(sizeof(ghead) == 48, "map<K,V> head is 48 bytes");

/* ---- node arenas ----
   A growable map that has no node (new, emptied, or every entry deleted)
   when it gets one takes its nodes from arenas of its own from then on: heap
   blocks of many nodes, cut one after the other, so that a node costs its
   own size (a 40-byte node took a 64-byte block of its own before: 16
   bytes of head, rounded to a power of two) and an insert takes no heap
   allocation. A deleted node goes on the map's list of free nodes (in the
   newest arena's head), which the next inserts take first; clearing the
   map frees its arenas whole. Each new arena holds a quarter of the entries
   so far, or the rest of a put_many, at least ARENA_MIN_NODES, in a block
   rounded up to a power of two (as every heap block is) of at most 1 GiB
   (a node that needs more gets a block of its size): a small map, or a map
   of big values, takes no room for nodes it may never have. A map with nodes
   made before arenas (g->arena 0, count > 0) keeps taking a heap block a
   node, until it has no node again; so does every map of a file of format
   version 1 (made before arenas: a library of that time could open it, and
   would free an arena's node as a heap block). Nodes never move either way. */

typedef struct arena {
  uint64_t prev; /* the arena made before this one (0: none) */
  uint64_t bump; /* file offset of the next node never handed out */
  uint64_t end;  /* file offset past the room for the last node */
  uint64_t free; /* newest arena only: deleted nodes, each linked by its first word */
} arena;

#define ARENA_MIN_NODES 4 /* (a map of one entry pays 4 nodes: 176 bytes in a 256-byte block) */
#define ARENA_MIN_LG 4    /* blocks of at least 16 << 4 bytes */
#define ARENA_MAX_LG 26   /* and at most 16 << 26 (1 GiB), unless a node needs more */

/* More arenas than the file can hold: their links loop. */
static uint64_t arena_bound(const mm3_file *f) { return f->mapped / ((uint64_t)16 << ARENA_MIN_LG) + 1; }

/* Arena at off, checked (NULL: damaged). */
static arena *arena_at(mm3_file *f, const mm3_ctype *t, uint64_t off) {
  if (!off || off % 16 || !mm3__inside(f, off, sizeof(arena))) return NULL;
  arena *a = (arena *)(f->base + off);
  uint64_t first = off + sizeof(arena);
  if (a->bump < first || a->bump > a->end || (a->bump - first) % t->node_size || a->end - first < t->node_size ||
      !mm3__inside(f, off, a->end - off))
    return NULL;
  /* its end inside its own heap block (a damaged one could hand out other data) */
  uint64_t bytes = mm3__used_bytes(f, off);
  if (!bytes || a->end - off > bytes - 16) return NULL;
  return a;
}

/* A node for map g: from its free list, its newest arena, a new arena, or
   (a map with nodes from before arenas) a heap block of its own. more: the
   entries a put_many has still to put, this one included. group: NULL for
   a put with a savepoint of its own; for a group of puts under one savepoint,
   where *group is the arena the group took a node from already (0: none):
   that arena was checked, its bump logged and only moved on since, so the
   next node is cut from it with neither again. */
static int node_alloc(mm3_file *f, const mm3_ctype *t, ghead *g, uint64_t more, uint64_t *off, uint64_t *group) {
  if (group && *group && *group == g->arena) {
    arena *ga = (arena *)(f->base + *group);
    if (!ga->free && ga->end - ga->bump >= t->node_size) {
      *off = ga->bump;
      ga->bump += t->node_size;
      return 0;
    }
  }
  if (!g->arena && (g->count > 0 || mm3__hdr(f)->version < 2)) return mm3__alloc(f, t->node_size, off);
  arena *a = NULL;
  if (g->arena && !(a = arena_at(f, t, g->arena))) return MM3_ECORRUPT;
  if (a && a->free) {
    uint64_t n = a->free;
    if (n % 8 || n < mm3__heap_start(f) || !mm3__inside(f, n, t->node_size)) return MM3_ECORRUPT;
    LOG(f, &a->free, 8);
    /* The whole node: a rollback to before its delete links it again, and
       must find its old entry in it, not the one about to be written. (The
       heap keeps a freed block from reuse until the free commits.) */
    LOG(f, f->base + n, t->node_size);
    a->free = *(uint64_t *)(f->base + n);
    *off = n;
    return 0;
  }
  if (a && a->end - a->bump >= t->node_size) {
    LOG(f, &a->bump, 8);
    *off = a->bump;
    a->bump += t->node_size;
    if (group) *group = g->arena;
    return 0;
  }
  uint64_t nodes = g->count / 4;
  if (nodes < more) nodes = more;
  if (nodes < ARENA_MIN_NODES) nodes = ARENA_MIN_NODES;
  int k = ARENA_MIN_LG;
  for (;; k++) { /* the smallest block for them all, or the biggest arena's (a node at least) */
    uint64_t room = (((uint64_t)16 << k) - 16 - sizeof(arena)) / t->node_size;
    if (room >= nodes && room >= 1) break;
    if (k >= ARENA_MAX_LG && room >= 1) break;
    if (k == 46) return MM3_ETOOBIG; /* (a heap block is at most 2^50 bytes) */
  }
  uint64_t bytes = ((uint64_t)16 << k) - 16, b;
  int rc = mm3__alloc_raw(f, bytes, &b);
  if (rc) return rc;
  a = (arena *)(f->base + b); /* new: its head needs no undo entry */
  a->prev = g->arena;
  a->bump = b + sizeof(arena) + t->node_size;
  a->end = b + sizeof(arena) + (bytes - sizeof(arena)) / t->node_size * t->node_size;
  a->free = 0;
  g->arena = b; /* (the caller logged the map's head) */
  *off = b + sizeof(arena);
  if (group) *group = b; /* (new: nothing of it to log) */
  return 0;
}

/* Give node off of map g back (unlinked already). */
static int node_free(mm3_file *f, const mm3_ctype *t, ghead *g, uint64_t off) {
  if (!g->arena) return mm3__free(f, off);
  arena *a = arena_at(f, t, g->arena);
  if (!a) return MM3_ECORRUPT;
  LOG(f, f->base + off, 8);
  LOG(f, &a->free, 8);
  *(uint64_t *)(f->base + off) = a->free;
  a->free = off;
  return 0;
}

/* Whether a walk along map g's chains that took n steps loops: more than
   its count, or (the count damaged) than the file has room for. */
static inline int past_nodes(const mm3_file *f, const mm3_ctype *t, const ghead *g, uint64_t n) {
  return n > g->count || n * t->node_size > f->mapped;
}

/* Table i inside the file (NULL: none, or damaged); checked, also a heap
   block of its size (a damaged offset or size could name other data, which
   puts would write); unchecked, for reading hints only (prefetches). Its
   offset and size are read once: a lock-free lookup reads them while a
   writer may change them (one read to check, another to use, found a
   cleared map's 0 and read below the mapping). */
/* *mask: its buckets' mask, of the size read with the offset. */
static inline uint64_t *table_at(mm3_file *f, const ghead *g, int i, int checked, uint64_t *mask) {
  uint64_t off = __atomic_load_n(&g->tab[i], __ATOMIC_RELAXED);
  uint32_t lg = __atomic_load_n(&g->lg[i], __ATOMIC_RELAXED);
  if (!off || off % 8 || lg > MAX_LG || !mm3__inside(f, off, (uint64_t)8 << lg)) return NULL;
  if (checked && !mm3__tagged_for(f, off, (uint64_t)8 << lg)) return NULL;
  *mask = ((uint64_t)1 << lg) - 1;
  return (uint64_t *)(f->base + off);
}

static uint64_t *gtable(mm3_file *f, const ghead *g, int i) {
  uint64_t mask;
  return table_at(f, g, i, 1, &mask);
}

static uint8_t *gnode(mm3_file *f, const mm3_ctype *t, uint64_t off) {
  /* (past the root: a damaged link would have puts and deletes write there) */
  if (off % 8 || off < mm3__heap_start(f) || !mm3__inside(f, off, t->node_size)) return NULL;
  return f->base + off;
}

/* Find key in table i: *link receives the u64 pointing to it. */
static int gfind_in(mm3_file *f, const mm3_ctype *t, ghead *g, int i, const void *key, uint64_t h,
                    uint64_t **link, uint8_t **node) {
  uint64_t mask, *tab = table_at(f, g, i, 1, &mask); /* (lock-free lookups too: read once) */
  if (!tab) return g->tab[i] ? MM3_ECORRUPT : MM3_ENOTFOUND;
  uint64_t *l = &tab[h & mask];
  for (uint64_t steps = 0; *l; steps++) {
    uint8_t *n = gnode(f, t, *l);
    if (!n || past_nodes(f, t, g, steps)) return MM3_ECORRUPT;
    if (((uint64_t *)n)[1] == h && key_eq(n + t->key_off, key, t->key_size)) {
      *link = l;
      *node = n;
      return 0;
    }
    l = (uint64_t *)n;
  }
  *link = l;
  return MM3_ENOTFOUND;
}

static int gfind(mm3_file *f, const mm3_ctype *t, ghead *g, const void *key, uint64_t h, uint64_t **link,
                 uint8_t **node, int *which) {
  int rc = gfind_in(f, t, g, 0, key, h, link, node);
  *which = 0;
  if (rc == MM3_ENOTFOUND && g->rehash) {
    rc = gfind_in(f, t, g, 1, key, h, link, node);
    *which = 1;
  }
  return rc;
}

/* Prefetch p unless NULL. (A function that only prefetched would count as
   having no effect: GCC drops calls to it.) */
#define PREFETCH(p)                      \
  do {                                   \
    const void *p_ = (p);                \
    if (p_) __builtin_prefetch(p_);      \
  } while (0)

/* The first node of old bucket b (< e) of a resize, or NULL. */
static const uint64_t *moved_node(mm3_file *f, const uint64_t *from, uint64_t b, uint64_t e) {
  return b < e && from[b] && from[b] % 8 == 0 && mm3__inside(f, from[b], 16) ? (const uint64_t *)(f->base + from[b])
                                                                            : NULL;
}

/* Move up to steps buckets of tab[0] into tab[1]; finish when all moved. */
static int rehash_step(mm3_file *f, const mm3_ctype *t, ghead *g, uint64_t steps) {
  if (!g->rehash) return 0;
  uint64_t *from = gtable(f, g, 0), *to = gtable(f, g, 1);
  if (!from || !to || g->tab[0] == g->tab[1]) return MM3_ECORRUPT; /* (distinct blocks: they cannot overlap) */
  uint64_t nb = (uint64_t)1 << g->lg[0], mask1 = ((uint64_t)1 << g->lg[1]) - 1;
  /* The nodes and the buckets they go to are in random places: each is
     asked for a few buckets ahead (the node AHEAD buckets on, then its
     destination when it has had time to arrive), so the misses overlap
     instead of coming one after the other. */
  uint64_t b0 = g->rehash - 1, e = b0 + steps < nb ? b0 + steps : nb;
  if (b0 < e) LOG(f, &from[b0], (e - b0) * 8); /* the step's old buckets, in one entry */
  enum { AHEAD = 32 };
  /* A put's step is too short for its own misses to overlap much: it asks
     for the next step's nodes, which the next put's step finds arrived, and
     asks for their destinations first of all. */
  for (uint64_t b = e; b < e + REHASH_STEP; b++) PREFETCH(moved_node(f, from, b, nb));
  for (uint64_t b = b0; b < e && b < b0 + AHEAD; b++) PREFETCH(moved_node(f, from, b, e));
  for (uint64_t b = b0; b < e && b < b0 + AHEAD / 2; b++) {
    const uint64_t *n = moved_node(f, from, b, e);
    if (n) PREFETCH(&to[n[1] & mask1]);
  }
  for (uint64_t b = b0; b < e; b++) {
    uint64_t guard = 0;
    PREFETCH(moved_node(f, from, b + AHEAD, e));
    const uint64_t *soon = moved_node(f, from, b + AHEAD / 2, e);
    if (soon) PREFETCH(&to[soon[1] & mask1]);
    while (from[b]) {
      uint8_t *n = gnode(f, t, from[b]);
      if (!n || past_nodes(f, t, g, guard++)) return MM3_ECORRUPT;
      uint64_t off = from[b];
      uint64_t *dst = &to[((uint64_t *)n)[1] & mask1];
      LOG(f, n, 8);
      LOG(f, dst, 8);
      from[b] = *(uint64_t *)n;
      *(uint64_t *)n = *dst;
      *dst = off;
    }
    g->rehash = b + 2;
  }
  if (g->rehash > nb) {
    int rc = mm3__free(f, g->tab[0]);
    g->tab[0] = g->tab[1];
    g->lg[0] = g->lg[1];
    g->tab[1] = 0;
    g->lg[1] = 0;
    g->rehash = 0;
    return rc;
  }
  return 0;
}

/* Whether map g's count can be (under the lock): its nodes fit the file,
   once mapped as far as another process may have grown it. */
static int count_ok(mm3_file *f, const mm3_ctype *t, const ghead *g) {
  return mm3__count_fits(f, t, g->count) || (mm3_file_refresh(f) == 0 && mm3__count_fits(f, t, g->count));
}

/* The caller (put_group) has moved this put's share of a resize under way,
   and logged the map's head since its newest savepoint. */
/* group: see node_alloc. */
static int gput(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h, const void *val,
                int *created, uint64_t more, uint64_t *group) {
  ghead *g = (ghead *)c;
  int rc;
  if (!g->tab[0]) { /* first entry: 8 buckets */
    uint64_t off;
    rc = mm3__alloc(f, 8 << 3, &off);
    if (rc) return rc;
    g->lg[0] = 3;
    g->tab[0] = off;
  }
  uint64_t *link;
  uint8_t *n;
  int which;
  rc = gfind(f, t, g, key, h, &link, &n, &which);
  if (rc == 0) {
    LOG(f, n + t->val_off, t->elem_size);
    memcpy(n + t->val_off, val, t->elem_size);
    if (created) *created = 0;
    return 0;
  }
  if (rc != MM3_ENOTFOUND) return rc;
  if (!count_ok(f, t, g)) return MM3_ECORRUPT;
  if (!g->rehash && g->count >= ((uint64_t)1 << g->lg[0]) / 2 && g->lg[0] < MAX_LG) {
    uint64_t off; /* start doubling: later calls move the chains over */
    rc = mm3__alloc(f, (uint64_t)8 << (g->lg[0] + 1), &off);
    if (rc) return rc;
    g->tab[1] = off;
    g->lg[1] = g->lg[0] + 1;
    g->rehash = 1;
    rc = rehash_step(f, t, g, REHASH_STEP);
    if (rc) return rc;
  }
  uint64_t off;
  rc = node_alloc(f, t, g, more, &off, group);
  if (rc) return rc;
  n = f->base + off;
  ((uint64_t *)n)[1] = h;
  if (t->key_size == 16) memcpy(n + t->key_off, key, 16); /* (the common sizes: not a call) */
  else memcpy(n + t->key_off, key, t->key_size);
  copy_value(n + t->val_off, val, t->elem_size);
  int into = g->rehash ? 1 : 0;
  uint64_t *tab = gtable(f, g, into);
  if (!tab) return MM3_ECORRUPT;
  uint64_t *head = &tab[h & (((uint64_t)1 << g->lg[into]) - 1)];
  LOG(f, head, 8);
  *(uint64_t *)n = *head;
  *head = off; /* linked last: a complete node appears at once */
  g->count++;
  if (created) *created = 1;
  return 0;
}

static int gdel(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h) {
  ghead *g = (ghead *)c;
  LOG(f, g, sizeof *g);
  int rc = rehash_step(f, t, g, REHASH_STEP);
  if (rc) return rc;
  uint64_t *link;
  uint8_t *n;
  int which;
  rc = gfind(f, t, g, key, h, &link, &n, &which);
  if (rc) return rc;
  if (g->count == 0 || !count_ok(f, t, g)) return MM3_ECORRUPT;
  uint64_t off = *link;
  LOG(f, link, 8);
  *link = *(uint64_t *)n;
  g->count--;
  return node_free(f, t, g, off);
}

/* Free the nodes and tables of a detached map head (a copy): in batches,
   each its own logged step, so the log stays small; a crash part way leaks
   what was not freed yet, never corrupts. */
static int free_detached(mm3_file *f, const mm3_ctype *t, ghead *g) {
  /* nodes in arenas go with their arenas, newest first (a batch a step) */
  for (uint64_t off = g->arena, n = 0; off;) {
    uint64_t sp;
    int rc = mm3__op_begin(f, &sp);
    if (rc) return rc;
    for (int done = 0; off && !rc && done < BATCH; done++) {
      const arena *a = arena_at(f, t, off);
      if (!a || ++n > arena_bound(f)) { /* damaged: leave the rest */
        off = 0;
        break;
      }
      uint64_t prev = a->prev;
      rc = mm3__free(f, off);
      off = prev;
    }
    rc = mm3__op_end(f, sp, rc);
    if (rc) return rc;
  }
  for (int i = 0; i < 2; i++) {
    uint64_t *tab = gtable(f, g, i);
    if (!tab) continue;
    uint64_t nb = g->arena ? 0 : (uint64_t)1 << g->lg[i]; /* (arena nodes went with their arenas) */
    for (uint64_t b = 0; b < nb;) {
      uint64_t sp;
      int rc = mm3__op_begin(f, &sp);
      if (rc) return rc;
      tab = gtable(f, g, i);
      for (int done = 0; tab && b < nb && done < BATCH; b++) {
        uint64_t off = tab[b], guard = 0;
        while (off && !rc) {
          uint8_t *n = gnode(f, t, off);
          if (!n || past_nodes(f, t, g, guard++)) break; /* damaged: leave the rest */
          uint64_t next = *(uint64_t *)n;
          rc = mm3__free(f, off);
          off = next;
          done++;
        }
      }
      rc = mm3__op_end(f, sp, rc);
      if (rc) return rc;
    }
    uint64_t sp;
    int rc = mm3__op_begin(f, &sp);
    if (rc) return rc;
    rc = mm3__op_end(f, sp, mm3__free(f, g->tab[i]));
    if (rc) return rc;
  }
  return 0;
}

/* ---- public ---- */

static int find_any(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h, uint8_t **n) {
  if (t->kind == MM3_FMAP) {
    uint32_t *link;
    return ffind(c, t, key, h, &link, n);
  }
  uint64_t *link;
  int which;
  return gfind(f, t, (ghead *)c, key, h, &link, n, &which);
}

/* Every operation keeps the file's sequence odd while it runs
   (mm3__write_begin, in mm3__op_enter), so a lookup can run without the
   lock and retry if a write overlapped it. Every offset is checked, so an overlapped lookup
   reads garbage at worst, never outside the file, and its result is dropped. */


/* Up to tries lookups without the lock: 1 and *rc if one ran while no writer
   came in. Without the lock the value is copied aside first and given out
   only once no writer came in meanwhile: a try that found the key, then lost
   it to a writer, must not leave a value behind for a key not found. A value
   bigger than 256 bytes is copied aside into memory of its own (a read-only
   handle has no lock to read it under instead). */
static inline int get_unlocked(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h,
                               void *val_out, uint8_t **val_ptr, int tries, int *rc) {
  uint64_t *seq = &mm3__hdr(f)->seq;
  uint8_t small[256], *aside = small;
  if (val_out && t->elem_size > sizeof small && (aside = malloc(t->elem_size)) == NULL) return 0;
  int done = 0;
  for (; tries > 0 && !done; tries--) {
    uint64_t s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
    if (s1 & 1) continue;
    uint8_t *n = NULL;
    *rc = mm3_file_refresh(f);
    if (!*rc) *rc = find_any(f, c, t, key, h, &n);
    if (!*rc && val_out) copy_value(aside, n + t->val_off, t->elem_size);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(seq, __ATOMIC_RELAXED) == s1) {
      if (!*rc && val_out) copy_value(val_out, aside, t->elem_size);
      if (!*rc && val_ptr) *val_ptr = n + t->val_off;
      done = 1;
    }
  }
  if (aside != small) free(aside);
  return done;
}


/* The common lookup, kept short: a growable map with no resize under way,
   no writer in, a value of up to 16 bytes (or none asked for). Short is the
   point: the CPU then starts the next call's bucket miss while this call's
   is still out. (The general way, ~500 instructions a lookup with the hash,
   waited for one miss after the other: 235 ns a lookup of 1M keys in order
   here; this way ~150.) It makes the general way's checks; whatever is not
   its case, or looks wrong, it leaves to that (0), to retry or report. */
static inline __attribute__((always_inline)) int get_lean(mm3_file *f, uint8_t *c, const mm3_ctype *t,
                                                          const void *key, uint64_t h, void *val_out,
                                                          uint8_t **val_ptr, int *rc) {
  const mm3_header *hd = mm3__hdr(f);
  const ghead *g = (const ghead *)c;
  uint64_t s1 = __atomic_load_n(&hd->seq, __ATOMIC_ACQUIRE), mapped = f->mapped;
  uint64_t off = __atomic_load_n(&g->tab[0], __ATOMIC_RELAXED);
  uint32_t lg = __atomic_load_n(&g->lg[0], __ATOMIC_RELAXED);
  uint64_t mask = ((uint64_t)1 << (lg & 63)) - 1;
  /* the bucket asked for first, before the checks: its miss is the lookup's
     cost, and nothing below may delay it (a prefetch of a wrong address is
     harmless: it is checked before it is read) */
  __builtin_prefetch((const void *)((uintptr_t)f->base + off + 8 * (h & mask))); /* (integers: may be anywhere) */
  if ((s1 & 1) || __atomic_load_n(&hd->size, __ATOMIC_ACQUIRE) > mapped || g->rehash || off % 8 || lg > MAX_LG ||
      !mm3__inside(f, off, (uint64_t)8 << lg) || !mm3__tagged_for(f, off, (uint64_t)8 << lg) ||
      (val_out && t->elem_size > 16))
    return 0;
  uint64_t l = ((const uint64_t *)(f->base + off))[h & mask], v[2], count = g->count;
  const uint8_t *n = NULL;
  for (uint64_t steps = 0; l; steps++) {
    /* a node: 8-aligned, in the heap, inside the mapping; a chain longer
       than the map's count (a loop, or a damaged count), or than a sound
       map's chains are, is left to the general path, which says which */
    if (l % 8 || l < mm3__heap_start(f) || mm3__range_bad(l, t->node_size, mapped) || steps > count || steps > 32)
      return 0;
    const uint8_t *p = f->base + l;
    if (((const uint64_t *)p)[1] == h && key_eq(p + t->key_off, key, t->key_size)) {
      n = p;
      if (val_out) copy_value(v, n + t->val_off, t->elem_size);
      break;
    }
    l = ((const uint64_t *)p)[0];
  }
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  if (__atomic_load_n(&hd->seq, __ATOMIC_RELAXED) != s1) return 0;
  *rc = n ? 0 : MM3_ENOTFOUND;
  if (n && val_out) copy_value(val_out, v, t->elem_size);
  if (n && val_ptr) *val_ptr = (uint8_t *)n + t->val_off;
  return 1;
}

/* A lookup that get_lean left: retried without the lock, then under it. */
__attribute__((noinline)) static int get_general(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key,
                                                 uint64_t h, void *val_out, uint8_t **val_ptr) {
  int rc;
  mm3__hmap_prefetch(f, c, t, h);
  if (get_unlocked(f, c, t, key, h, val_out, val_ptr, 8, &rc)) return rc;
  if (mm3_file_lock(f) != 0) {
    /* A read-only handle has no lock to wait for the writers with: it goes
       on trying, letting them run, and gives up as every read-only read does
       (a writer that died half way leaves the sequence odd until the next
       writer locks). */
    mm3__retry retry = {0};
    for (;;) {
      if ((rc = mm3__read_again(f, &retry)) != 0) return rc;
      if (get_unlocked(f, c, t, key, h, val_out, val_ptr, 1, &rc)) return rc;
    }
  }
  rc = mm3_file_refresh(f);
  uint8_t *n = NULL;
  if (!rc) rc = find_any(f, c, t, key, h, &n);
  if (!rc) {
    if (val_out) memcpy(val_out, n + t->val_off, t->elem_size);
    if (val_ptr) *val_ptr = n + t->val_off;
  }
  mm3_file_unlock(f);
  return rc;
}

/* ---- many keys at once ----
   A lookup's cost is its cache misses (the bucket, then the node), and one
   call cannot start the next key's before its own end. Given a group of
   keys, the hashes come first, then every bucket is asked for, then every
   first node: the misses of a group overlap. Nothing here is needed for
   correctness: a prefetch of an address that changed meanwhile is wasted. */

#define GROUP 16

/* Where key hash h's bucket is in table i (NULL: none), and its first node
   (NULL: none), for PREFETCH. */
static const void *bucket_at(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t h, int i) {
  if (t->kind == MM3_FMAP) return i ? NULL : &fbuckets(c)[h & (t->buckets - 1)];
  ghead *g = (ghead *)c;
  uint64_t mask, *tab = table_at(f, g, i, 0, &mask);
  return tab ? &tab[h & mask] : NULL;
}

static const void *first_at(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t h) {
  if (t->kind == MM3_FMAP) {
    uint32_t idx = fbuckets(c)[h & (t->buckets - 1)];
    return idx && idx <= t->cap ? fnode(c, t, idx) : NULL;
  }
  const uint64_t *b = bucket_at(f, c, t, h, 0);
  uint64_t off = b ? *b : 0;
  return off && mm3__inside(f, off, t->node_size) ? f->base + off : NULL;
}

void mm3__hmap_prefetch(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t h) {
  PREFETCH(bucket_at(f, c, t, h, 0));
  PREFETCH(bucket_at(f, c, t, h, 1));
}

/* The hashes of m keys, their buckets prefetched. */
static void hash_group(mm3_file *f, uint8_t *c, const mm3_ctype *t, size_t m, const uint8_t *keys, uint64_t *h) {
  for (size_t j = 0; j < m; j++) {
    h[j] = mm3_hmap_key_hash(f, t, keys + j * t->key_size);
    mm3__hmap_prefetch(f, c, t, h[j]);
  }
}

/* A lookup: the lean way where it can, else the general one. Inline in
   both callers (a call between the hash and the lean way cost mm3_hmap_get
   time). */
static inline __attribute__((always_inline)) int lookup(mm3_file *f, uint8_t *c, const mm3_ctype *t,
                                                        const void *key, uint64_t h, void *val_out,
                                                        uint8_t **val_ptr) {
  int rc;
  if (t->kind == MM3_HMAP && get_lean(f, c, t, key, h, val_out, val_ptr, &rc)) return rc;
  return get_general(f, c, t, key, h, val_out, val_ptr);
}

int mm3__hmap_get(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, uint64_t h, void *val_out,
                 uint8_t **val_ptr) {
  return lookup(f, c, t, key, h, val_out, val_ptr);
}

int mm3_hmap_get(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, void *val_out, uint8_t **val_ptr) {
  if (!MM3__IS_MAP(t)) return MM3_EINVAL;
  return lookup(f, c, t, key, key_hash(f, t, key), val_out, val_ptr);
}

int mm3_hmap_get_many(mm3_file *f, uint8_t *c, const mm3_ctype *t, size_t n, const void *keys, void *vals,
                      uint8_t *found) {
  if (!MM3__IS_MAP(t)) return MM3_EINVAL;
  const uint8_t *k = keys;
  uint8_t *v = vals;
  uint64_t h[GROUP];
  for (size_t i = 0; i < n; i += GROUP) {
    size_t m = n - i < GROUP ? n - i : GROUP;
    hash_group(f, c, t, m, k + i * t->key_size, h);
    for (size_t j = 0; j < m; j++) PREFETCH(first_at(f, c, t, h[j]));
    for (size_t j = 0; j < m; j++) {
      int rc = mm3__hmap_get(f, c, t, k + (i + j) * t->key_size, h[j], v ? v + (i + j) * t->elem_size : NULL, NULL);
      if (rc && rc != MM3_ENOTFOUND) return rc;
      if (found) found[i + j] = rc == 0;
    }
  }
  return 0;
}

/* Size a growable map's table for `more` entries to come (mm3_hmap_put_many
   knows how many): one resize straight to the size that holds them all,
   where one put at a time would double the table again and again, moving
   every entry at each doubling. An empty map just gets its table at that
   size. A table that already fits, or a resize under way, is left as it is;
   the table's bytes (16 to 32 per entry to come, in a heap block twice
   that) are the caller's to afford, and a table that cannot be had is no
   error: the puts then grow it as single puts do. Runs inside the group's
   op: a death part way undoes it. */
static void presize(mm3_file *f, ghead *g, uint64_t more) {
  if (g->rehash || more > ((uint64_t)1 << (MAX_LG - 2))) return;
  uint64_t want = g->count + more;
  if (g->tab[0] && want < ((uint64_t)1 << g->lg[0]) / 2) return;
  uint32_t lg = 3;
  while (((uint64_t)1 << lg) / 2 <= want && lg < MAX_LG) lg++;
  if (g->tab[0] && lg <= g->lg[0] + 1) return; /* no more than the next put's doubling */
  uint64_t sp, off;
  if (mm3__savepoint(f, &sp)) return;
  int rc = mm3__log(f, g, sizeof *g);
  if (!rc) rc = mm3__alloc(f, (uint64_t)8 << lg, &off);
  if (rc) {
    mm3__rollback(f, sp);
    return;
  }
  if (!g->tab[0]) {
    g->tab[0] = off;
    g->lg[0] = lg;
    return;
  }
  g->tab[1] = off; /* the chains move over in the puts' steps, as at a doubling */
  g->lg[1] = lg;
  g->rehash = 1;
}

/* Put m <= GROUP entries (key j at keys + j * key_size, its hash h[j]) as
   one logged step under one lock: a resize under way moves the group's share
   first, then each entry is put; a failed put undoes itself only, and the
   entries before it stay. *done counts the entries put. more > 0 (from
   mm3_hmap_put_many): the entries still to come, these included, which the
   table is sized for first. */
static int put_group(mm3_file *f, uint8_t *c, const mm3_ctype *t, size_t m, const uint8_t *keys,
                     const uint8_t *vals, const uint64_t *h, int *created, size_t *done, uint64_t more) {
  uint64_t sp;
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  ghead *g = (ghead *)c;
  if (t->kind == MM3_HMAP && more > m) presize(f, g, more);
  if (t->kind == MM3_HMAP && g->rehash) {
    rc = mm3__log(f, g, sizeof *g);
    if (!rc) rc = rehash_step(f, t, g, REHASH_STEP * m);
    if (rc) mm3__rollback(f, sp); /* undone before readers may look again */
  }
  if (m > 1)
    for (size_t j = 0; j < m; j++) PREFETCH(first_at(f, c, t, h[j]));
  /* Outside a transaction a group of growable map puts takes no savepoint
     per put, and logs the map's head once for all of them. Should put j
     fail, the group's puts are undone together, those before j are made
     again one savepoint each, as below, and j's error is returned. */
  uint64_t sg;
  size_t upto = m; /* the puts to make one savepoint each */
  int failed = 0;
  if (!rc && m > 1 && t->kind == MM3_HMAP && f->txn_depth == 0 && !mm3__other_txn(f) &&
      (rc = mm3__savepoint(f, &sg)) == 0) {
    upto = 0;
    failed = mm3__log(f, g, sizeof *g);
    uint64_t group = 0;
    for (; upto < m && !failed; upto++)
      if ((failed = gput(f, c, t, keys + upto * t->key_size, h[upto], vals + upto * t->elem_size, created,
                         more - upto, &group)) != 0)
        break;
    if (failed) mm3__rollback(f, sg);
    else *done += m, upto = 0;
  }
  for (size_t j = 0; j < upto && !rc; j++) {
    uint64_t sj;
    rc = mm3__savepoint(f, &sj);
    if (rc) break;
    const uint8_t *kj = keys + j * t->key_size, *vj = vals + j * t->elem_size;
    if (t->kind == MM3_FMAP) rc = fput(f, c, t, kj, h[j], vj, created);
    else if ((rc = mm3__log(f, c, sizeof(ghead))) == 0)
      rc = gput(f, c, t, kj, h[j], vj, created, more > j ? more - j : 0, NULL);
    if (rc) mm3__rollback(f, sj);
    else ++*done;
  }
  if (!rc) rc = failed;
  /* what was put before a failure stays; a failed group of one (a single
     put) changes nothing at all, its share of a resize included */
  int erc = mm3__op_end(f, sp, m == 1 ? rc : 0);
  return rc ? rc : erc;
}

int mm3_hmap_put(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, const void *val, int *created) {
  if (!MM3__IS_MAP(t)) return MM3_EINVAL;
  uint64_t h;
  hash_group(f, c, t, 1, key, &h); /* the bucket's miss overlaps the lock and the log's set-up */
  size_t done = 0;
  return put_group(f, c, t, 1, key, val, &h, created, &done, 0);
}

int mm3_hmap_put_many(mm3_file *f, uint8_t *c, const mm3_ctype *t, size_t n, const void *keys, const void *vals,
                      size_t *done) {
  if (done) *done = 0;
  if (!MM3__IS_MAP(t)) return MM3_EINVAL;
  const uint8_t *k = keys, *v = vals;
  uint64_t h[GROUP];
  size_t put = 0;
  int rc = 0;
  while (put < n && !rc) {
    size_t m = n - put < GROUP ? n - put : GROUP;
    const uint8_t *kg = k + put * t->key_size;
    hash_group(f, c, t, m, kg, h); /* before the lock: its wait overlaps these misses */
    rc = put_group(f, c, t, m, kg, v + put * t->elem_size, h, NULL, &put, n - put);
  }
  if (done) *done = put;
  return rc;
}

int mm3_hmap_del(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key) {
  if (!MM3__IS_MAP(t)) return MM3_EINVAL;
  uint64_t h, sp;
  hash_group(f, c, t, 1, key, &h);
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  rc = t->kind == MM3_FMAP ? fdel(f, c, t, key, h) : gdel(f, c, t, key, h);
  return mm3__op_end(f, sp, rc); /* (a failed one rolled back there, the sequence still odd) */
}

int mm3_hmap_clear(mm3_file *f, uint8_t *c, const mm3_ctype *t) {
  if (!MM3__IS_MAP(t)) return MM3_EINVAL;
  uint64_t sp;
  int rc = mm3__op_begin(f, &sp);
  if (rc) return rc;
  ghead old;
  memcpy(&old, c, sizeof old);
  rc = mm3__log(f, c, t->kind == MM3_FMAP ? t->size : sizeof(ghead));
  if (!rc) memset(c, 0, t->kind == MM3_FMAP ? t->size : sizeof(ghead)); /* detached in one step */
  rc = mm3__op_end(f, sp, rc);
  if (rc || t->kind == MM3_FMAP) return rc;
  return free_detached(f, t, &old);
}

/* Positions: fixed maps: pos[0] is the last node slot returned (1-based).
   Growable maps: pos[0] = table << 63 | bucket, pos[1] = the node returned
   last, pos[2] = its successor then. Resuming finds the last node again and
   continues after it, so clearing any entry (the last one included) during a
   traversal skips nothing; if both were deleted, the bucket is walked again. */
/* One step of mm3_hmap_next, the lock held if locked. */
static int next_step(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t pos[3], int locked, uint8_t **key,
                     uint8_t **val) {
  int rc = mm3_file_refresh(f);
  if (rc) goto out;
  rc = MM3_ENOTFOUND;
  if (t->kind == MM3_FMAP) {
    fhead *hd = (fhead *)c;
    uint32_t used = hd->used > t->cap ? (uint32_t)t->cap : hd->used;
    for (uint64_t i = (pos[0] & (MM3_HMAP_AS_IS - 1)) + 1; i <= used; i++) { /* (AS_IS: nothing to finish) */
      uint8_t *n = fnode(c, t, (uint32_t)i);
      if (((uint32_t *)n)[1]) {
        pos[0] = i;
        *key = n + t->key_off;
        *val = n + t->val_off;
        rc = 0;
        break;
      }
    }
    goto out;
  }
  ghead *g = (ghead *)c;
  while (pos[0] == 0 && pos[1] == 0 && locked && g->rehash) {
    /* a traversal starts: finish the resize so entries stay in one table,
       in logged batches */
    uint64_t sp;
    rc = mm3__op_begin(f, &sp);
    if (rc == MM3_EBUSY) { /* another handle's transaction: walk both tables as they are */
      rc = MM3_ENOTFOUND;
      break;
    }
    if (rc) goto out;
    rc = mm3__log(f, g, sizeof *g);
    if (!rc) rc = rehash_step(f, t, g, BATCH);
    rc = mm3__op_end(f, sp, rc);
    if (rc) goto out;
    rc = MM3_ENOTFOUND;
  }
  uint64_t tab_i = pos[0] >> 63, b = pos[0] & (MM3_HMAP_AS_IS - 1), last = pos[1], succ = pos[2];
  for (; tab_i < 2; tab_i++, b = 0, last = succ = 0) {
    uint64_t *tab = gtable(f, g, (int)tab_i);
    if (!tab) continue;
    uint64_t nb = (uint64_t)1 << g->lg[tab_i];
    for (; b < nb; b++, last = succ = 0) {
      uint64_t off = tab[b], guard = 0, found_succ = 0;
      if (last) { /* resume after the node returned last */
        uint64_t o = off;
        while (o && o != last) {
          uint8_t *n = gnode(f, t, o);
          if (!n || past_nodes(f, t, g, guard++)) { rc = MM3_ECORRUPT; goto out; }
          if (o == succ) found_succ = 1;
          o = *(uint64_t *)n;
        }
        if (o) { /* still there: its successor now */
          uint8_t *n = gnode(f, t, o);
          if (!n) { rc = MM3_ECORRUPT; goto out; }
          off = *(uint64_t *)n;
        } else if (succ && found_succ) {
          off = succ; /* the last one was deleted: go on from its old successor */
        } /* else both are gone: walk the bucket again (entries may repeat) */
      }
      if (!off) continue;
      uint8_t *n = gnode(f, t, off);
      if (!n) { rc = MM3_ECORRUPT; goto out; }
      if (*(uint64_t *)n == off) { rc = MM3_ECORRUPT; goto out; } /* a node linked to itself */
      *key = n + t->key_off;
      *val = n + t->val_off;
      pos[0] = tab_i << 63 | b;
      pos[1] = off;
      pos[2] = *(uint64_t *)n;
      rc = 0;
      goto out;
    }
  }
out:
  return rc;
}

int mm3_hmap_next(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t pos[3], uint8_t **key, uint8_t **val) {
  if (!MM3__IS_MAP(t)) return MM3_EINVAL;
  int locked = mm3_file_lock(f) == 0;
  int rc = next_step(f, c, t, pos, locked, key, val);
  if (locked) mm3_file_unlock(f);
  return rc;
}

int mm3_hmap_next_copy(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t pos[3], void *key_out,
                       void *val_out) {
  if (!MM3__IS_MAP(t)) return MM3_EINVAL;
  uint8_t *k, *v;
  int rc;
  if (mm3_file_lock(f) == 0) {
    rc = next_step(f, c, t, pos, 1, &k, &v);
    if (!rc && key_out) memcpy(key_out, k, t->key_size);
    if (!rc && val_out) memcpy(val_out, v, t->elem_size);
    mm3_file_unlock(f);
    return rc;
  }
  /* Read-only: no lock holds the writers off. A step that a write overlapped
     (the sequence moved, or was odd) is taken again from where it started,
     letting the writers run, until mm3__read_begin gives up (MM3_EWRITERS). */
  uint64_t from[3] = {pos[0], pos[1], pos[2]};
  mm3__retry retry = {0};
  uint64_t s;
  int again;
  while ((again = mm3__read_begin(f, &retry, &s)) == 0) {
    memcpy(pos, from, sizeof from);
    rc = next_step(f, c, t, pos, 0, &k, &v);
    if (!rc && key_out) memcpy(key_out, k, t->key_size);
    if (!rc && val_out) memcpy(val_out, v, t->elem_size);
    if (mm3__read_ok(f, s)) return rc;
  }
  return again;
}

/* ---- checking (memmap3 check) ---- */

#include <stdio.h>

#define BAD(...)                          \
  do {                                    \
    snprintf(why, n, __VA_ARGS__);        \
    return MM3_ECORRUPT;                  \
  } while (0)

/* A growable map's arenas, as [first node, next unused node) ranges sorted
   by offset. */
typedef struct arenas {
  uint64_t (*r)[2];
  size_t n, cap;
} arenas;

static int by_start(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Is off a node that one of the arenas handed out? */
static int in_arenas(const arenas *as, const mm3_ctype *t, uint64_t off) {
  size_t lo = 0, hi = as->n - 1;
  while (lo < hi) { /* the last range starting at or below off */
    size_t mid = (lo + hi + 1) / 2;
    if (as->r[mid][0] <= off) lo = mid;
    else hi = mid - 1;
  }
  return off >= as->r[lo][0] && off < as->r[lo][1] && (off - as->r[lo][0]) % t->node_size == 0;
}

/* The growable map g's checks, its arenas found. */
static int gcheck(mm3_file *f, const mm3_ctype *t, ghead *g, const arenas *as, char *why, size_t n) {
  uint64_t chained = 0, handed = 0;
  for (size_t i = 0; i < as->n; i++) {
    if (i > 0 && as->r[i][0] - sizeof(arena) < as->r[i - 1][1])
      BAD("map: two node arenas overlap (or their links loop)");
    handed += (as->r[i][1] - as->r[i][0]) / t->node_size;
  }
  for (int i = 0; i < 2; i++) {
    if (!g->tab[i]) continue;
    uint64_t *tab = gtable(f, g, i);
    if (!tab) BAD("map: table %d at offset %llu (2^%u buckets) is outside the file", i, (unsigned long long)g->tab[i], g->lg[i]);
    uint64_t nb = (uint64_t)1 << g->lg[i];
    for (uint64_t b = 0; b < nb; b++) {
      uint64_t guard = 0;
      for (uint64_t off = tab[b]; off; off = *(uint64_t *)(f->base + off)) {
        uint8_t *nd = gnode(f, t, off);
        if (!nd) BAD("map: bucket %llu links to offset %llu, outside the file", (unsigned long long)b, (unsigned long long)off);
        if (past_nodes(f, t, g, guard++)) BAD("map: a chain loops (bucket %llu)", (unsigned long long)b);
        if (as->n && !in_arenas(as, t, off))
          BAD("map: bucket %llu links to offset %llu, not a node its arenas handed out", (unsigned long long)b, (unsigned long long)off);
        uint64_t hh = mm3_hmap_key_hash(f, t, nd + t->key_off);
        if (((uint64_t *)nd)[1] != hh) BAD("map: node at %llu has a wrong hash", (unsigned long long)off);
        if ((hh & (nb - 1)) != b) BAD("map: node at %llu is in the wrong bucket", (unsigned long long)off);
        chained++;
      }
    }
  }
  if (chained != g->count) BAD("map: %llu entries linked, count says %llu", (unsigned long long)chained, (unsigned long long)g->count);
  if (!as->n) return 0;
  uint64_t nfree = 0;
  for (uint64_t off = ((const arena *)(f->base + g->arena))->free; off; off = *(const uint64_t *)(f->base + off)) {
    if (!in_arenas(as, t, off)) BAD("map: free node list links to offset %llu, not a node of its arenas", (unsigned long long)off);
    if (++nfree > handed) BAD("map: free node list loops");
    /* a free node keeps its old key: a lookup of it that lands on this very
       node finds it linked as well (every linked node is in its key's
       bucket: checked above) */
    uint8_t *nd = f->base + off, *found = NULL;
    uint64_t *link;
    int which;
    if (gfind(f, t, g, nd + t->key_off, mm3_hmap_key_hash(f, t, nd + t->key_off), &link, &found, &which) == 0 &&
        found == nd)
      BAD("map: node at %llu is both linked and on the free node list", (unsigned long long)off);
  }
  if (chained + nfree != handed)
    BAD("map: its arenas handed out %llu nodes, %llu linked and %llu free", (unsigned long long)handed,
        (unsigned long long)chained, (unsigned long long)nfree);
  return 0;
}

int mm3__hmap_check(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n) {
  if (t->kind == MM3_FMAP) {
    fhead *hd = (fhead *)c;
    if (hd->used > t->cap) BAD("map: %u nodes used, capacity %llu", hd->used, (unsigned long long)t->cap);
    if (hd->count > hd->used) BAD("map: count %llu over the %u nodes used", (unsigned long long)hd->count, hd->used);
    uint64_t chained = 0;
    for (uint64_t b = 0; b < t->buckets; b++) {
      uint32_t idx = fbuckets(c)[b];
      for (uint64_t steps = 0; idx; steps++) {
        if (idx > hd->used || steps > hd->used) BAD("map: bucket %llu links to node %u (used %u)", (unsigned long long)b, idx, hd->used);
        uint8_t *nd = fnode(c, t, idx);
        if (!((uint32_t *)nd)[1]) BAD("map: node %u is linked but not live", idx);
        if ((mm3_hmap_key_hash(f, t, nd + t->key_off) & (t->buckets - 1)) != b) BAD("map: node %u is in the wrong bucket", idx);
        chained++;
        idx = *(uint32_t *)nd;
      }
    }
    if (chained != hd->count) BAD("map: %llu entries linked, count says %llu", (unsigned long long)chained, (unsigned long long)hd->count);
    uint64_t freed = 0;
    for (uint32_t idx = hd->free_head; idx; idx = *(uint32_t *)fnode(c, t, idx)) {
      if (idx > hd->used || ++freed > hd->used) BAD("map: free list is damaged at node %u", idx);
    }
    if (freed + hd->count != hd->used) BAD("map: %llu free + %llu live nodes, %u used", (unsigned long long)freed, (unsigned long long)hd->count, hd->used);
    return 0;
  }
  ghead *g = (ghead *)c;
  if (g->rehash && !g->tab[1]) BAD("map: resizing without a second table");
  /* its arenas (sorted by offset): where its nodes may be */
  arenas as = {NULL, 0, 0};
  int rc = 0;
  /* no more than the file holds (links that loop come back, and show as
     arenas that overlap once sorted) */
  uint64_t most = arena_bound(f);
  for (uint64_t off = g->arena; off && !rc; as.n++) {
    const arena *a = arena_at(f, t, off);
    if (!a) {
      snprintf(why, n, "map: node arena at offset %llu is damaged", (unsigned long long)off);
      rc = MM3_ECORRUPT;
    } else if (as.n == most) {
      snprintf(why, n, "map: more node arenas than the file holds (their links loop)");
      rc = MM3_ECORRUPT;
    } else if (as.n == as.cap) {
      void *more = realloc(as.r, (as.cap ? 2 * as.cap : 64) * sizeof *as.r);
      if (!more) rc = ENOMEM;
      else as.r = more, as.cap = as.cap ? 2 * as.cap : 64;
    }
    if (rc) break;
    as.r[as.n][0] = off + sizeof(arena), as.r[as.n][1] = a->bump;
    off = a->prev;
  }
  if (as.n > 1) qsort(as.r, as.n, sizeof *as.r, by_start);
  if (!rc) rc = gcheck(f, t, g, &as, why, n);
  free(as.r);
  return rc;
}

/* A growable map's blocks: its tables, its arenas, or (made before arenas)
   its nodes, each a block of its own. */
int mm3__hmap_blocks(mm3_file *f, uint8_t *c, const mm3_ctype *t, mm3__block_fn fn, void *ud) {
  if (t->kind != MM3_HMAP) return 0; /* (a fixed map lives in its parent) */
  ghead *g = (ghead *)c;
  int rc = 0;
  for (int i = 0; i < 2 && !rc; i++)
    if (g->tab[i]) rc = gtable(f, g, i) ? fn(ud, g->tab[i]) : MM3_ECORRUPT;
  uint64_t most = arena_bound(f), k = 0;
  for (uint64_t off = g->arena; off && !rc;) {
    const arena *a = arena_at(f, t, off);
    if (!a || ++k > most) return MM3_ECORRUPT; /* (its link is not followed) */
    rc = fn(ud, off);
    off = a->prev;
  }
  for (int i = 0; i < 2 && !rc && !g->arena; i++) {
    uint64_t *tab = gtable(f, g, i);
    for (uint64_t b = 0; tab && b < ((uint64_t)1 << g->lg[i]) && !rc; b++) {
      uint64_t steps = 0;
      for (uint64_t off = tab[b]; off && !rc;) {
        uint8_t *n = gnode(f, t, off);
        if (!n || past_nodes(f, t, g, steps++)) return MM3_ECORRUPT;
        rc = fn(ud, off);
        off = *(uint64_t *)n;
      }
    }
  }
  return rc;
}
