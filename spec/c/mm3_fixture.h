/*
 * mm3_fixture.h - the fixture of the C tests (test_file.c, test_containers.c,
 * test_txn.c, test_map.c): what a test opens and creates (files, maps,
 * descriptors, temporary paths, raw pages) is closed, removed or unmapped
 * after it, also when a REQUIRE ends it early.
 *
 * FTEST(name) { body } defines a TEST whose fixture is cleaned up after the
 * body. Temporary files are also removed on a crash (a fault or an abort; not
 * SIGKILL). A forked child (fork_child) forgets the parent's fixture, so it
 * never removes the parent's files, and leaves with _exit().
 */
#ifndef MM3_FIXTURE_H
#define MM3_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memmap3.h"
#include "mm3_test.h"

#define FX_MAX 128

static struct {
  mm3_file *files[FX_MAX];
  int nfiles;
  mm3_map *maps[FX_MAX];
  int nmaps;
  int fds[FX_MAX];
  int nfds;
  char paths[FX_MAX][256];
  int npaths;
  void *blocks[FX_MAX]; /* raw pages (test_map.c's block_page_at), one page each */
  int nblocks;
} fx;

static inline void fx_cleanup(void) {
  alarm(0); /* a watchdog a test set and did not reach the end to clear */
  for (int i = 0; i < fx.nfiles; i++) mm3_file_close(fx.files[i]);
  for (int i = 0; i < fx.nmaps; i++) mm3_map_close(fx.maps[i]);
  for (int i = 0; i < fx.nfds; i++) close(fx.fds[i]);
  for (int i = 0; i < fx.npaths; i++) unlink(fx.paths[i]);
  for (int i = 0; i < fx.nblocks; i++) munmap(fx.blocks[i], (size_t)sysconf(_SC_PAGESIZE));
  memset(&fx, 0, sizeof fx);
}

static const int fx_signals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
#define FX_NSIG ((int)(sizeof fx_signals / sizeof fx_signals[0]))
static struct sigaction fx_old_actions[FX_NSIG];
static int fx_handlers_set;

/* A crash (a fault such as SIGBUS from a mapping, a sanitizer's abort) skips
   fx_cleanup: remove the temporary files here, then let the previous handler
   take over. */
static inline void fx_on_crash(int sig, siginfo_t *info, void *ctx) {
  (void)ctx;
  for (int i = 0; i < fx.npaths; i++) unlink(fx.paths[i]); /* async-signal-safe */
  for (int i = 0; i < FX_NSIG; i++)
    if (fx_signals[i] == sig) sigaction(sig, &fx_old_actions[i], NULL);
  /* A fault repeats when the instruction reruns; a sent signal must be resent. */
  if (info->si_code <= 0) raise(sig);
}

static inline void fx_setup(void) {
  if (fx_handlers_set) return;
  fx_handlers_set = 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = fx_on_crash;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < FX_NSIG; i++) sigaction(fx_signals[i], &sa, &fx_old_actions[i]);
}

#define FTEST(name)                                                              \
  static void name##_body(void);                                                 \
  TEST(name) {                                                                   \
    fx_setup();                                                                  \
    name##_body();                                                               \
    fx_cleanup();                                                                \
  }                                                                              \
  static void name##_body(void)

static inline void fx_full(const char *what) {
  fprintf(stderr, "  %s: fixture full (%s); raise FX_MAX\n", mm3t_current, what);
  mm3t_failed_checks++;
}

/* A fresh temporary path, removed by the fixture (the file need not exist). */
static inline const char *tmp_path(const char *tag) {
  if (fx.npaths >= FX_MAX) {
    fx_full("paths");
    return "/nonexistent/mm3test-too-many-paths";
  }
  char *p = fx.paths[fx.npaths++];
  mm3t_tmpname(p, sizeof fx.paths[0], tag);
  unlink(p);
  return p;
}

static inline mm3_file *keep_file(mm3_file *f) {
  if (!f) return f;
  if (fx.nfiles < FX_MAX) fx.files[fx.nfiles++] = f;
  else fx_full("files");
  return f;
}

static inline mm3_map *keep_map(mm3_map *m) {
  if (!m) return m;
  if (fx.nmaps < FX_MAX) fx.maps[fx.nmaps++] = m;
  else fx_full("maps");
  return m;
}

/* One page unmapped by the fixture (test_map.c's block_page_at); 0 if full. */
static inline int keep_block(void *page) {
  if (fx.nblocks >= FX_MAX) return 0;
  fx.blocks[fx.nblocks++] = page;
  return 1;
}

/* A descriptor closed by the fixture; fd < 0 is passed through. */
static inline int keep_fd(int fd) {
  if (fd < 0) return fd;
  if (fx.nfds < FX_MAX) fx.fds[fx.nfds++] = fd;
  else fx_full("descriptors");
  return fd;
}

/* Close a file the fixture keeps (before the test ends, e.g. to reopen it). */
static inline void close_file(mm3_file *f) {
  for (int i = 0; i < fx.nfiles; i++)
    if (fx.files[i] == f) {
      fx.files[i] = fx.files[--fx.nfiles];
      break;
    }
  mm3_file_close(f);
}

/* mm3_file_open; the file is kept by the fixture on success. */
static inline int open_file(const char *path, const mm3_file_opts *o, mm3_file **out) {
  *out = NULL;
  int rc = mm3_file_open(path, o, out);
  if (rc == 0) keep_file(*out);
  return rc;
}

/* Open an existing file read-write (readonly = 0) or read-only, accepting its
   own schema; NULL on failure (reported). */
static inline mm3_file *open_existing(const char *path, int readonly) {
  mm3_file_opts o = {0};
  o.readonly = readonly;
  mm3_file *f;
  CHECK_RC(open_file(path, &o, &f));
  return f;
}

/* Create a new file at a fresh temporary path; *path (may be NULL) receives
   it. NULL on failure (reported). */
static inline mm3_file *new_file(const char *tag, const char *schema, uint64_t root_size, const char **path) {
  const char *p = tmp_path(tag);
  mm3_file_opts o = {0};
  o.create = 1;
  o.exclusive = 1;
  o.schema = schema;
  o.root_size = root_size;
  mm3_file *f;
  CHECK_RC(open_file(p, &o, &f));
  if (path) *path = p;
  return f;
}

/* A shared anonymous page for flags between a test and its children. */
static inline volatile uint64_t *shared_words(void) {
  mm3_anon_opts ao = {0};
  ao.shared = 1;
  mm3_map *m = NULL;
  if (mm3_map_anon(4096, &ao, &m) != 0) return NULL;
  keep_map(m);
  return (volatile uint64_t *)mm3_map_ptr(m);
}

/* fork() with the output flushed first; the child forgets the fixture. */
static inline pid_t fork_child(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    /* the parent's to release */
    fx.nfiles = fx.nmaps = fx.nfds = fx.npaths = fx.nblocks = 0;
    alarm(60); /* a deadlocked child fails, never hangs */
  }
  return pid;
}

/* Wait for a child: its exit status, 128 + signal if killed, -1 on error. */
static inline int wait_child(pid_t pid) {
  int st;
  if (pid <= 0 || waitpid(pid, &st, 0) != pid) return -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

/* The u64 of the file's header at byte off. */
static inline uint64_t hdr_u64(const mm3_file *f, size_t off) {
  uint64_t v;
  memcpy(&v, mm3_file_base(f) + off, 8);
  return v;
}

static inline int all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

/* Schema texts as the Lua layer writes them. */
#define SCHEMA_S "struct S{a:u64;b:u32}\nroot S" /* root_size 16 */
#define SCHEMA_U64 "root u64"                     /* root_size 8 */

#endif
