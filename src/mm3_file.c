/*
 * mm3_file.c - memmap3 files: header, schema text, root object, growth.
 *
 * The file is mapped into an address range reserved once (PROT_NONE,
 * MAP_NORESERVE), extent after extent with MAP_FIXED, so growth never moves
 * data and C pointers into the file stay valid until close.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mm3_internal.h"

uint32_t mm3__create_version;

_Static_assert(sizeof(mm3_header) == MM3_HEADER_SIZE, "header size");
_Static_assert(offsetof(mm3_header, heap_top) == 144, "header layout");
_Static_assert(offsetof(mm3_header, free_list) == 160, "header layout");
_Static_assert(offsetof(mm3_header, gaps_n) == 720, "header layout");

static const char magic[8] = {'M', 'E', 'M', 'M', 'A', 'P', '3', 0};
#define BYTE_ORDER_MARK 0x01020304u

uint64_t mm3_fnv1a64(const void *data, size_t len, uint64_t h) {
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static uint64_t header_check(const mm3_header *h, const char *schema) {
  uint64_t c = mm3_fnv1a64(h, 16, MM3_FNV_OFFSET);
  c = mm3_fnv1a64((const uint8_t *)h + 24, 48, c);
  return mm3_fnv1a64(schema, (size_t)h->schema_len, c);
}

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* ---- validation of a header read from disk ---- */

static int check_header(const mm3_header *h, uint64_t file_size) {
  if (memcmp(h->magic, magic, 8) != 0) return MM3_EBADFILE;
  if (h->byte_order != BYTE_ORDER_MARK)
    return h->byte_order == 0x04030201u ? MM3_EBYTEORDER : MM3_ECORRUPT;
  if (h->version > MM3_FORMAT_VERSION) return MM3_EVERSION;
  if (h->version == 0) return MM3_ECORRUPT;
  if (h->schema_off != MM3_HEADER_SIZE || h->schema_len == 0 || h->schema_len > MM3_MAX_SCHEMA)
    return MM3_ECORRUPT;
  if (h->root_off < h->schema_off + h->schema_len || h->root_off % 64 != 0 ||
      h->root_off > ((uint64_t)1 << 50) || h->root_size > ((uint64_t)1 << 50))
    return MM3_ECORRUPT;
  if (h->size < h->root_off + h->root_size || h->size % mm3__page_size() != 0)
    return MM3_ECORRUPT;
  if (h->size > file_size) return MM3_ETRUNCATED;
  return 0;
}

/* Read and check the header and schema of an open descriptor. */
static int read_meta(int fd, mm3_header *h, char **schema) {
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR; /* (as a read-write open of it says) */
  if (!S_ISREG(st.st_mode)) return MM3_EBADFILE;
  uint64_t fsize = (uint64_t)st.st_size;
  if (fsize < sizeof magic) return MM3_EBADFILE;
  ssize_t n = pread(fd, h, sizeof *h, 0);
  if (n < 0) return errno;
  if ((size_t)n < sizeof magic || memcmp(h->magic, magic, 8) != 0) return MM3_EBADFILE;
  if ((size_t)n < sizeof *h) return MM3_ETRUNCATED;
  int rc = check_header(h, fsize);
  if (rc) return rc;
  char *s = malloc((size_t)h->schema_len + 1);
  if (!s) return ENOMEM;
  n = pread(fd, s, (size_t)h->schema_len, (off_t)h->schema_off);
  if (n < 0 || (uint64_t)n != h->schema_len) {
    free(s);
    return n < 0 ? errno : MM3_ETRUNCATED;
  }
  s[h->schema_len] = 0;
  if (header_check(h, s) != h->check || mm3_fnv1a64(s, (size_t)h->schema_len, MM3_FNV_OFFSET) != h->fingerprint ||
      strlen(s) != h->schema_len) {
    free(s);
    return MM3_ECORRUPT;
  }
  *schema = s;
  return 0;
}

/* ---- creation ---- */

static int write_all(int fd, const void *buf, size_t n, off_t off) {
  const uint8_t *p = buf;
  while (n) {
    ssize_t w = pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w, n -= (size_t)w, off += w;
  }
  return 0;
}

/* Write a complete new file under a temporary name and link it into place.
   Returns 0 and an open descriptor, EEXIST if path appeared meanwhile. */
static int build_header(const mm3_file_opts *o, mm3_header *hp) {
  size_t slen = strlen(o->schema);
  if (slen == 0 || slen > MM3_MAX_SCHEMA) return MM3_EINVAL;
  if (o->root_size > ((uint64_t)1 << 50)) return MM3_ETOOBIG;
  mm3_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, magic, 8);
  h.version = mm3__create_version ? mm3__create_version : MM3_FORMAT_VERSION;
  h.byte_order = BYTE_ORDER_MARK;
  h.schema_off = MM3_HEADER_SIZE;
  h.schema_len = slen;
  h.root_off = round_up(MM3_HEADER_SIZE + slen + 1, 64);
  h.root_size = o->root_size;
  h.size = round_up(h.root_off + h.root_size, mm3__page_size());
  h.fingerprint = mm3_fnv1a64(o->schema, slen, MM3_FNV_OFFSET);
  if (getrandom(&h.seed, sizeof h.seed, 0) != (ssize_t)sizeof h.seed)
    h.seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
  h.check = header_check(&h, o->schema);
  int rc = mm3__lock_init(h.lock);
  if (rc) return rc;
  *hp = h;
  return 0;
}

static int create_file(const char *path, const mm3_file_opts *o, int *fdout) {
  mm3_header h;
  int rc = build_header(o, &h);
  if (rc) return rc;
  size_t slen = (size_t)h.schema_len;
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32);
  if (!tmp) return ENOMEM;
  snprintf(tmp, plen + 32, "%s.tmp%ld.%08x", path, (long)getpid(), (unsigned)(h.seed & 0xffffffffu));
  int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o->perm ? o->perm : 0666);
  if (fd < 0) {
    free(tmp);
    return errno;
  }
  rc = posix_fallocate(fd, 0, (off_t)h.size);
  if (!rc) rc = write_all(fd, &h, sizeof h, 0);
  if (!rc) rc = write_all(fd, o->schema, slen, MM3_HEADER_SIZE);
  if (!rc && link(tmp, path) != 0) rc = errno;
  unlink(tmp);
  free(tmp);
  if (rc) {
    close(fd);
    return rc;
  }
  /* Reopen by its real name, so /proc/PID/maps and lsof show that name. */
  int fd2 = open(path, O_RDWR | O_CLOEXEC);
  if (fd2 >= 0) {
    close(fd);
    fd = fd2;
  }
  *fdout = fd;
  return 0;
}

/* A file that exists but is empty (os.tmpname, touch) is initialised in
   place under create: under an exclusive flock, so racing creators agree,
   with the magic number written last, so no reader takes a half-written
   header for a file. Returns 0, or an errno / MM3 code. */
static int init_empty(int fd, const mm3_file_opts *o) {
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0) return errno;
  if (st.st_size != 0) {
    /* Not empty: nothing to make. But a racing creator may be writing it
       right now, under its exclusive flock: wait for that with a shared one
       (which the file's openers hold too, so this never waits for them). */
    while (flock(fd, LOCK_SH) != 0)
      if (errno != EINTR) return errno;
    flock(fd, LOCK_UN);
    return 0;
  }
  if (flock(fd, LOCK_EX) != 0) return errno;
  if (fstat(fd, &st) != 0) rc = errno;
  else if (st.st_size == 0) {
    mm3_header h;
    rc = build_header(o, &h);
    if (!rc) rc = posix_fallocate(fd, 0, (off_t)h.size);
    if (!rc) {
      char m[8];
      memcpy(m, h.magic, 8);
      memset(h.magic, 0, 8);
      rc = write_all(fd, &h, sizeof h, 0);
      if (!rc) rc = write_all(fd, o->schema, (size_t)h.schema_len, MM3_HEADER_SIZE);
      if (!rc) rc = write_all(fd, m, 8, 0);
    }
  }
  flock(fd, LOCK_UN);
  return rc;
}

/* ---- mapping ---- */

static int map_extent(mm3_file *f, uint64_t from, uint64_t to) {
  int prot = f->readonly ? PROT_READ : PROT_READ | PROT_WRITE;
  void *p = mmap(f->base + from, (size_t)(to - from), prot, MAP_SHARED | MAP_FIXED, f->fd, (off_t)from);
  if (p == MAP_FAILED) return errno;
  f->mapped = to;
  return 0;
}

static volatile uint64_t *size_word(const mm3_file *f) {
  return &((volatile mm3_header *)f->base)->size;
}

int mm3_file_open(const char *path, const mm3_file_opts *o, mm3_file **out) {
  if (!path || !o) return MM3_EINVAL;
  int fd = -1, rc;
  int created = 0;
  mm3_file_opts computed;
  if (o->create && o->schema && !o->root_size) { /* the layout from the text */
    computed = *o;
    int lrc = mm3_schema_layout(o->schema, &computed.root_size, NULL);
    if (lrc) return lrc;
    o = &computed;
  }
  if (o->create && !o->readonly && (o->schema || o->exclusive)) {
    if (!o->schema || !o->root_size) return MM3_EINVAL;
    if (o->exclusive || access(path, F_OK) != 0) {
      rc = create_file(path, o, &fd);
      if (rc == 0) created = 1;
      else if (rc != EEXIST || o->exclusive) return rc;
    }
  }
  if (fd < 0) {
    /* O_NONBLOCK: a FIFO at path would block the open until a writer came;
       it opens at once and is refused below (regular files ignore it) */
    fd = open(path, (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return errno;
    if (o->create && !created && !o->readonly && o->schema) {
      rc = init_empty(fd, o);
      if (rc) {
        close(fd);
        return rc;
      }
    }
  }
  mm3_header h;
  char *schema = NULL;
  rc = read_meta(fd, &h, &schema);
  if (rc) {
    close(fd);
    return rc;
  }
  if (o->schema && strcmp(o->schema, schema) != 0) {
    free(schema);
    close(fd);
    return MM3_ESCHEMA;
  }
  mm3_file *f = calloc(1, sizeof *f);
  char *pcopy = strdup(path);
  if (!f || !pcopy) {
    free(f);
    free(pcopy);
    free(schema);
    close(fd);
    return ENOMEM;
  }
  f->fd = fd;
  f->readonly = o->readonly;
  f->schema = schema;
  f->schema_len = (size_t)h.schema_len;
  f->root_off = h.root_off;
  f->root_size = h.root_size;
  f->fingerprint = h.fingerprint;
  f->heap_start = (h.root_off + h.root_size + 63) / 64 * 64;
  f->seed = h.seed;
  f->sip = mm3__sip_init(h.seed);
  f->path = pcopy;
  /* past 2^62 no address space has room, and rounding up could wrap to 0:
     ask for 2^62, which mmap refuses (ENOMEM) */
  uint64_t asked = o->reserve > ((uint64_t)1 << 62) ? ((uint64_t)1 << 62) : o->reserve;
  f->reserve = asked ? round_up(asked, mm3__page_size()) : MM3_DEFAULT_RESERVE;
  if (f->reserve < h.size) f->reserve = round_up(h.size * 2, mm3__page_size());
  void *base = mmap(NULL, (size_t)f->reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  /* The default reservation shrinks where address space is scarce (ulimit -v,
     valgrind): down to twice the file, never below it. */
  while (base == MAP_FAILED && (errno == ENOMEM || errno == EINVAL) && !o->reserve && f->reserve / 2 >= h.size * 2 &&
         f->reserve / 2 >= ((uint64_t)64 << 20)) {
    f->reserve = round_up(f->reserve / 2, mm3__page_size());
    base = mmap(NULL, (size_t)f->reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  }
  if (base == MAP_FAILED) {
    rc = errno;
    mm3_file_close(f);
    return rc;
  }
  f->base = base;
  rc = map_extent(f, 0, h.size);
  if (rc) {
    mm3_file_close(f);
    return rc;
  }
  /* Every opener holds a shared flock while the file is open. Whoever gets
     it exclusively is alone: the lock word may be stale (its holder died
     with the machine, where robust mutexes cannot help), so it is made anew,
     and a write a dead process left half done is rolled back. */
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
    mm3_header *hd = mm3__hdr(f);
    if (!f->readonly) {
      rc = mm3__lock_init(hd->lock);
      if (!rc && hd->log_len) {
        mm3__recover(f);
        if (!hd->log_len) f->recovered++; /* (else it cannot map all the log: the first lock tries again) */
      } else if (!rc) {
        mm3__seq_settle(f); /* a writer died with nothing logged: read-only reads would wait for a write */
      }
    } else if (hd->log_len || (__atomic_load_n(&hd->seq, __ATOMIC_ACQUIRE) & 1)) {
      rc = MM3_ERECOVER; /* (alone, an odd sequence is a dead writer's too) */
    }
    if (rc) {
      mm3_file_close(f);
      return rc;
    }
  }
  if (flock(fd, LOCK_SH) != 0) {
    rc = errno;
    mm3_file_close(f);
    return rc;
  }
  if (!f->readonly) mm3__lock_mark(f);
  struct stat st;
  if (fstat(fd, &st) == 0) mm3__held_attach(f, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
  else f->held = &f->own_held, f->txn_owner = &f->own_txn_owner;
  if ((rc = mm3__guard_add(f)) != 0) { /* (an unguarded file would crash on a cut) */
    mm3_file_close(f);
    return rc;
  }
  *out = f;
  return 0;
}

int mm3_file_read_schema(const char *path, char **buf, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
  if (fd < 0) return errno;
  mm3_header h;
  char *s = NULL;
  int rc = read_meta(fd, &h, &s);
  close(fd);
  if (rc) return rc;
  *buf = s;
  if (len) *len = (size_t)h.schema_len;
  return 0;
}

void mm3_file_close(mm3_file *f) {
  if (!f) return;
  mm3__guard_remove(f);
  if (f->base && f->lock_depth > 0) {
    /* closed inside a transaction: undo it, and never unmap a held lock */
    f->op_own = 0; /* the whole transaction goes, from the file's log */
    if (f->txn_depth > 0) {
      mm3__rollback(f, 0);
      __atomic_store_n(&mm3__hdr(f)->log_len, 0, __ATOMIC_RELEASE);
    }
    f->npending = 0; /* (a rollback to 0 dropped them all) */
    /* not while another handle here has a transaction open: the log blocks
       it replaced and the gaps it left are its own to free */
    if (!mm3__other_txn(f)) mm3__settle(f);
    f->txn_depth = 0;
    if (f->txn_owner && *f->txn_owner == f) *f->txn_owner = NULL; /* under the lock, before others get it */
    while (f->lock_depth > 0) mm3_file_unlock(f);
  }
  mm3__held_detach(f);
  if (f->base) munmap(f->base, (size_t)f->reserve);
  if (f->fd >= 0) close(f->fd);
  free(f->schema);
  free(f->path);
  free(f->pending);
  free(f->seen);
  free(f->own);
  free(f);
}

uint8_t *mm3_file_root(const mm3_file *f) { return f->base + f->root_off; }
uint64_t mm3_file_root_size(const mm3_file *f) { return f->root_size; }
uint8_t *mm3_file_base(const mm3_file *f) { return f->base; }
uint64_t mm3_file_size(const mm3_file *f) { return f->mapped; }
uint64_t mm3_file_fingerprint(const mm3_file *f) { return f->fingerprint; }
int mm3_file_readonly(const mm3_file *f) { return f->readonly; }
const char *mm3_file_path(const mm3_file *f) { return f->path; }

const char *mm3_file_schema(const mm3_file *f, size_t *len) {
  if (len) *len = f->schema_len;
  return f->schema;
}

int mm3_file_flush(mm3_file *f) {
  if (f->readonly) return 0;
  if (msync(f->base, (size_t)f->mapped, MS_SYNC) != 0) return errno;
  return fdatasync(f->fd) == 0 ? 0 : errno;
}

int mm3_file_refresh(mm3_file *f) {
  uint64_t size = __atomic_load_n(size_word(f), __ATOMIC_ACQUIRE);
  if (size <= f->mapped) return 0;
  if (size > f->reserve) return MM3_ERESERVE;
  return map_extent(f, f->mapped, size);
}

int mm3_file_grow(mm3_file *f, uint64_t new_size) {
  if (f->readonly) return MM3_EREADONLY;
  int rc = mm3_file_refresh(f);
  if (rc) return rc;
  if (new_size > f->reserve) return MM3_ERESERVE; /* also before rounding, which could wrap */
  new_size = round_up(new_size, mm3__page_size());
  if (new_size <= f->mapped) return 0;
  if (new_size > f->reserve) return MM3_ERESERVE;
  /* Blocks first: a full disk fails here, never as SIGBUS on a later write. */
  rc = posix_fallocate(f->fd, (off_t)f->mapped, (off_t)(new_size - f->mapped));
  if (rc) return rc;
  rc = map_extent(f, f->mapped, new_size);
  if (rc) return rc;
  uint64_t cur = __atomic_load_n(size_word(f), __ATOMIC_ACQUIRE);
  while (cur < new_size &&
         !__atomic_compare_exchange_n(size_word(f), &cur, new_size, 0, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE)) {
  }
  return 0;
}
