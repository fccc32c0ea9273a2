/*
 * mm3_schema.c - the layout of a canonical schema text, in C, so that a C
 * program can create a file from the text alone (mm3_file_open with
 * root_size 0). It follows lua/memmap3/schema.lua rule for rule (C's natural
 * alignment and padding; containers as mm3_ctype_init lays them out), and a
 * spec checks that the two agree. The text is the one memmap3 stores in files:
 *
 *   struct NAME{field:type;field:atomic<type>;...}   (one definition a line)
 *   enum NAME:base{a,b,...}
 *   root TYPE
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm3_internal.h"

/* Nesting of type expressions (vec<map<u8, T[2]>, 4>...): as deep as the
   Lua layer lets a type go (schema.lua's MAX_DEPTH), and no deeper: each
   level is a C call. */
#define MAX_NESTING 256

/* A struct or enum defined so far: its name is a span of the text. */
typedef struct named {
  const char *name;
  size_t len;
  uint64_t size;
  uint32_t align;
} named;

typedef struct parser {
  const char *p;
  named *names; /* (grown as definitions come: any number, as in Lua) */
  int n, cap;
  int depth;
} parser;

/* An identifier at the text's position: *s and *len, a span of the text
   (any length: Lua's names have no limit either). */
static int ident(parser *ps, const char **s, size_t *len) {
  const char *p = ps->p;
  if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')) return MM3_EINVAL;
  while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_') p++;
  *s = ps->p;
  *len = (size_t)(p - ps->p);
  ps->p = p;
  return 0;
}

/* Is the span s (len bytes) the word w? */
static int is(const char *s, size_t len, const char *w) { return strlen(w) == len && memcmp(s, w, len) == 0; }

static int number(parser *ps, uint64_t *v) {
  uint64_t x = 0;
  if (*ps->p < '0' || *ps->p > '9') return MM3_EINVAL;
  while (*ps->p >= '0' && *ps->p <= '9') {
    if (x > ((uint64_t)1 << 40)) return MM3_ETOOBIG;
    x = x * 10 + (uint64_t)(*ps->p++ - '0');
  }
  *v = x;
  return 0;
}

static int eat(parser *ps, const char *s) {
  size_t n = strlen(s);
  if (strncmp(ps->p, s, n) != 0) return MM3_EINVAL;
  ps->p += n;
  return 0;
}

static uint64_t up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static int prim(const char *s, size_t len, uint64_t *size) {
  static const struct { const char *n; uint64_t s; } t[] = {
      {"u8", 1},   {"u16", 2},  {"u32", 4},   {"u64", 8},   {"i8", 1},    {"i16", 2},
      {"i32", 4},  {"i64", 8},  {"f32", 4},   {"f64", 8},   {"bool", 1},  {"char", 4},
      {"u128", 16}, {"i128", 16}, {"usize", 8}, {"isize", 8}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (is(s, len, t[i].n)) {
      *size = t[i].s;
      return 0;
    }
  return MM3_EINVAL;
}

static int type(parser *ps, uint64_t *size, uint32_t *align);

#define TRY(x)            \
  do {                    \
    int rc_ = (x);        \
    if (rc_) return rc_;  \
  } while (0)

static int container(parser *ps, mm3_ckind kind, int with_cap, uint64_t *size, uint32_t *align) {
  mm3_ctype t;
  memset(&t, 0, sizeof t);
  t.kind = kind;
  uint64_t es;
  uint32_t ea;
  TRY(eat(ps, "<"));
  TRY(type(ps, &es, &ea));
  if (es > 0xFFFFFFFFu) return MM3_ETOOBIG; /* element sizes are 32-bit */
  t.elem_size = (uint32_t)es;
  t.elem_align = ea;
  if (with_cap) {
    TRY(eat(ps, ","));
    TRY(number(ps, &t.cap));
  }
  TRY(eat(ps, ">"));
  TRY(mm3_ctype_init(&t));
  *size = t.size;
  *align = t.align;
  return 0;
}

static int base(parser *ps, uint64_t *size, uint32_t *align) {
  const char *word;
  size_t wl;
  TRY(ident(ps, &word, &wl));
  uint64_t n, m;
  if (is(word, wl, "string") || is(word, wl, "bytes")) {
    TRY(eat(ps, "<"));
    TRY(number(ps, &n));
    TRY(eat(ps, ">"));
    if (n == 0) return MM3_EINVAL;
    if (n > 0xFFFFFFFFu) return MM3_ETOOBIG; /* as the Lua layer: at most 2^32 - 1 */
    *size = n;
    *align = 1;
    return 0;
  }
  if (is(word, wl, "vec")) return container(ps, MM3_VEC, 1, size, align);
  if (is(word, wl, "ring")) return container(ps, MM3_RING, 1, size, align);
  if (is(word, wl, "segmented")) return container(ps, MM3_SEGMENTED, 0, size, align);
  if (is(word, wl, "string_array")) {
    TRY(eat(ps, "<"));
    TRY(number(ps, &n));
    TRY(eat(ps, ","));
    TRY(number(ps, &m));
    TRY(eat(ps, ">"));
    if (!n || !m) return MM3_EINVAL;
    if (m > 0xFFFFFFFFu || n > ((uint64_t)1 << 40) / m) return MM3_ETOOBIG;
    *size = n * m;
    *align = 1;
    return 0;
  }
  if (is(word, wl, "map")) {
    mm3_ctype t;
    memset(&t, 0, sizeof t);
    uint64_t ks, vs;
    uint32_t ka, va;
    TRY(eat(ps, "<"));
    TRY(type(ps, &ks, &ka));
    TRY(eat(ps, ","));
    TRY(type(ps, &vs, &va));
    t.kind = MM3_HMAP;
    if (*ps->p == ',') {
      ps->p++;
      TRY(number(ps, &t.cap));
      t.kind = MM3_FMAP;
    }
    TRY(eat(ps, ">"));
    if (ks > 0xFFFFFFFFu || vs > 0xFFFFFFFFu) return MM3_ETOOBIG;
    t.key_size = (uint32_t)ks;
    t.key_align = ka;
    t.elem_size = (uint32_t)vs;
    t.elem_align = va;
    TRY(mm3_ctype_init(&t));
    *size = t.size;
    *align = t.align;
    return 0;
  }
  if (is(word, wl, "value")) {
    mm3_ctype t;
    memset(&t, 0, sizeof t);
    t.kind = MM3_VALUE;
    if (*ps->p == '<') {
      ps->p++;
      TRY(number(ps, &t.cap));
      TRY(eat(ps, ">"));
      if (!t.cap) return MM3_EINVAL;
    }
    TRY(mm3_ctype_init(&t));
    *size = t.size;
    *align = t.align;
    return 0;
  }
  if (prim(word, wl, &n) == 0) {
    *size = n;
    *align = (uint32_t)n;
    return 0;
  }
  for (int i = 0; i < ps->n; i++)
    if (ps->names[i].len == wl && memcmp(ps->names[i].name, word, wl) == 0) {
      *size = ps->names[i].size;
      *align = ps->names[i].align;
      return 0;
    }
  return MM3_EINVAL; /* an unknown type */
}

static int type(parser *ps, uint64_t *size, uint32_t *align) {
  if (ps->depth >= MAX_NESTING) return MM3_ETOOBIG;
  ps->depth++;
  int rc = base(ps, size, align);
  ps->depth--;
  TRY(rc);
  uint64_t count = 1;
  while (*ps->p == '[') { /* T[a][b]: a * b elements of T */
    uint64_t d;
    ps->p++;
    TRY(number(ps, &d));
    TRY(eat(ps, "]"));
    if (d == 0) return MM3_EINVAL;
    if (count > ((uint64_t)1 << 40) / d) return MM3_ETOOBIG;
    count *= d;
  }
  if (*size > ((uint64_t)1 << 40) / count) return MM3_ETOOBIG;
  *size *= count;
  return 0;
}

static int define(parser *ps) {
  if (ps->n == ps->cap) {
    if (ps->cap > (1 << 24)) return MM3_ETOOBIG; /* (more definitions than a schema text of 2^24 lines) */
    int cap = ps->cap ? 2 * ps->cap : 16;
    named *more = realloc(ps->names, (size_t)cap * sizeof *more);
    if (!more) return ENOMEM;
    ps->names = more, ps->cap = cap;
  }
  named *d = &ps->names[ps->n];
  if (eat(ps, "struct ") == 0) {
    TRY(ident(ps, &d->name, &d->len));
    TRY(eat(ps, "{"));
    uint64_t off = 0;
    uint32_t al = 1;
    for (;;) {
      const char *field;
      size_t fl;
      uint64_t fs;
      uint32_t fa;
      TRY(ident(ps, &field, &fl));
      TRY(eat(ps, ":"));
      if (eat(ps, "atomic<") == 0) {
        TRY(type(ps, &fs, &fa));
        TRY(eat(ps, ">"));
      } else {
        TRY(type(ps, &fs, &fa));
      }
      off = up(off, fa) + fs;
      if (fa > al) al = fa;
      if (*ps->p == ';') {
        ps->p++;
        continue;
      }
      TRY(eat(ps, "}"));
      break;
    }
    d->size = up(off, al);
    d->align = al;
  } else {
    TRY(eat(ps, "enum "));
    TRY(ident(ps, &d->name, &d->len));
    TRY(eat(ps, ":"));
    const char *b;
    size_t bl;
    TRY(ident(ps, &b, &bl));
    TRY(prim(b, bl, &d->size));
    d->align = (uint32_t)d->size;
    while (*ps->p && *ps->p != '}') ps->p++;
    TRY(eat(ps, "}"));
  }
  ps->n++;
  return eat(ps, "\n");
}

int mm3_schema_layout(const char *text, uint64_t *size, uint32_t *align) {
  if (!text) return MM3_EINVAL;
  parser *ps = calloc(1, sizeof *ps);
  if (!ps) return ENOMEM;
  ps->p = text;
  int rc = 0;
  while (!rc && strncmp(ps->p, "root ", 5) != 0) rc = define(ps);
  uint64_t s = 0;
  uint32_t a = 1;
  if (!rc) rc = eat(ps, "root ");
  if (!rc) rc = type(ps, &s, &a);
  if (!rc && *ps->p) rc = MM3_EINVAL; /* trailing text */
  free(ps->names);
  free(ps);
  if (rc) return rc == MM3_ETOOBIG || rc == ENOMEM ? rc : MM3_ESCHEMA;
  *size = s;
  if (align) *align = a;
  return 0;
}
