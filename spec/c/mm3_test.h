/*
 * mm3_test.h - a minimal unit-test harness for the C core.
 *
 * TEST(name) { ... } defines a test; CHECK(cond) and CHECK_EQ(a, b) record a
 * failure and keep going; REQUIRE(cond) ends the test; SKIP("why") ends a
 * test that cannot run here (counted apart, never as passed). main() comes
 * from RUN_TESTS(...) and prints "N skipped" (when some were) and then
 * "N passed, N failed" as its last line.
 */
#ifndef MM3_TEST_H
#define MM3_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int mm3t_failed_checks;
static const char *mm3t_current;
static int mm3t_skipped; /* set by SKIP in the current test */

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__,     \
              mm3t_current, #cond);                                              \
      mm3t_failed_checks++;                                                      \
    }                                                                            \
  } while (0)

#define CHECK_EQ(a, b)                                                           \
  do {                                                                           \
    long long mm3t_a = (long long)(a), mm3t_b = (long long)(b);                  \
    if (mm3t_a != mm3t_b) {                                                      \
      fprintf(stderr, "  %s:%d: %s: %s == %s failed (%lld vs %lld)\n", __FILE__, \
              __LINE__, mm3t_current, #a, #b, mm3t_a, mm3t_b);                   \
      mm3t_failed_checks++;                                                      \
    }                                                                            \
  } while (0)

/* CHECK_RC(call): the call must return 0; prints mm3_strerror otherwise. */
#define CHECK_RC(call)                                                           \
  do {                                                                           \
    int mm3t_rc = (call);                                                        \
    if (mm3t_rc != 0) {                                                          \
      fprintf(stderr, "  %s:%d: %s: %s returned %d (%s)\n", __FILE__, __LINE__,  \
              mm3t_current, #call, mm3t_rc, mm3_strerror(mm3t_rc));              \
      mm3t_failed_checks++;                                                      \
    }                                                                            \
  } while (0)

#define REQUIRE(cond)                                                            \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "  %s:%d: %s: REQUIRE(%s) failed\n", __FILE__, __LINE__,   \
              mm3t_current, #cond);                                              \
      mm3t_failed_checks++;                                                      \
      return;                                                                    \
    }                                                                            \
  } while (0)

/* SKIP(fmt, ...): the test cannot run on this machine (says why); it ends. */
#define SKIP(...)                                                                \
  do {                                                                           \
    printf("  skip %s: ", mm3t_current);                                         \
    printf(__VA_ARGS__);                                                         \
    printf("\n");                                                                \
    mm3t_skipped = 1;                                                            \
    return;                                                                      \
  } while (0)

#define TEST(name) static void name(void)

typedef void (*mm3t_fn)(void);

static int mm3t_run(const char *file, const mm3t_fn *fns, const char *const *names, int n) {
  int passed = 0, failed = 0, skipped = 0;
  for (int i = 0; i < n; i++) {
    int before = mm3t_failed_checks;
    mm3t_current = names[i];
    mm3t_skipped = 0;
    fns[i]();
    if (mm3t_failed_checks != before) {
      failed++;
      printf("  FAIL %s\n", names[i]);
    } else if (mm3t_skipped) {
      skipped++;
    } else {
      passed++;
      printf("  ok   %s\n", names[i]);
    }
  }
  printf("%s\n", file);
  if (skipped) printf("%d skipped\n", skipped);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

#define MM3T_FN(x) x,
#define MM3T_NAME(x) #x,
#define MM3T_EXPAND(...) __VA_ARGS__

/* RUN_TESTS(t1, t2, ...) defines main(). */
#define RUN_TESTS(...)                                                           \
  int main(void) {                                                               \
    static const mm3t_fn fns[] = {MM3T_MAP(MM3T_FN, __VA_ARGS__)};               \
    static const char *const names[] = {MM3T_MAP(MM3T_NAME, __VA_ARGS__)};       \
    return mm3t_run(__FILE__, fns, names, (int)(sizeof fns / sizeof fns[0]));    \
  }

/* A small preprocessor map, up to about 120 arguments. */
#define MM3T_EVAL0(...) __VA_ARGS__
#define MM3T_EVAL1(...) MM3T_EVAL0(MM3T_EVAL0(MM3T_EVAL0(__VA_ARGS__)))
#define MM3T_EVAL2(...) MM3T_EVAL1(MM3T_EVAL1(MM3T_EVAL1(__VA_ARGS__)))
#define MM3T_EVAL3(...) MM3T_EVAL2(MM3T_EVAL2(MM3T_EVAL2(__VA_ARGS__)))
#define MM3T_EVAL(...) MM3T_EVAL3(MM3T_EVAL3(MM3T_EVAL3(__VA_ARGS__)))
#define MM3T_END(...)
#define MM3T_OUT
#define MM3T_GET_END2() 0, MM3T_END
#define MM3T_GET_END1(...) MM3T_GET_END2
#define MM3T_GET_END(...) MM3T_GET_END1
#define MM3T_NEXT0(test, next, ...) next MM3T_OUT
#define MM3T_NEXT1(test, next) MM3T_NEXT0(test, next, 0)
#define MM3T_NEXT(test, next) MM3T_NEXT1(MM3T_GET_END test, next)
#define MM3T_MAP0(f, x, peek, ...) f(x) MM3T_NEXT(peek, MM3T_MAP1)(f, peek, __VA_ARGS__)
#define MM3T_MAP1(f, x, peek, ...) f(x) MM3T_NEXT(peek, MM3T_MAP0)(f, peek, __VA_ARGS__)
#define MM3T_MAP(f, ...) MM3T_EVAL(MM3T_MAP1(f, __VA_ARGS__, ()()(), ()()(), ()()(), 0))

/* A temporary file path under $TMPDIR (or /tmp), removed by the caller. */
static inline void mm3t_tmpname(char *buf, size_t n, const char *tag) {
  const char *dir = getenv("TMPDIR");
  static int seq;
  snprintf(buf, n, "%s/mm3test-%s-%d-%d", dir ? dir : "/tmp", tag, (int)getpid(), seq++);
}

#endif
