/* kt.h: kiln's test harness. A test file holds TEST(NAME) { ... } blocks and includes this header;
 * the CMake in tests/ registers each TEST(NAME) line (at the start of a line) as its own CTest test,
 * run as `<binary> NAME` in its own process with a timeout. Without an argument the binary lists its
 * tests. Assertions print both values and the place, then exit(1). Tests never sleep to
 * synchronise: they use the primitives under test or explicit handshakes. */
#ifndef KILN_KT_H
#define KILN_KT_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*kt_fn)(void);
struct kt_entry {
  const char *name;
  kt_fn fn;
};
enum { KT_MAX = 512 };
static struct kt_entry kt_tests[KT_MAX];
static int kt_ntests;

static inline void kt_register(const char *name, kt_fn fn) {
  if (kt_ntests < KT_MAX) kt_tests[kt_ntests++] = (struct kt_entry){name, fn};
}

#define TEST(name)                                                                                \
  static void kt_t_##name(void);                                                                  \
  __attribute__((constructor)) static void kt_r_##name(void) { kt_register(#name, kt_t_##name); } \
  static void kt_t_##name(void)

#define KT_FAIL(...)                                \
  do {                                              \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__);                   \
    fprintf(stderr, "\n");                          \
    exit(1);                                        \
  } while (0)

#define KT_TRUE(x)                              \
  do {                                          \
    if (!(x)) KT_FAIL("expected true: %s", #x); \
  } while (0)
#define KT_FALSE(x)                           \
  do {                                        \
    if (x) KT_FAIL("expected false: %s", #x); \
  } while (0)
#define KT_EQ(a, b)                                                          \
  do {                                                                       \
    long long kt_a = (long long)(a), kt_b = (long long)(b);                  \
    if (kt_a != kt_b) KT_FAIL("%s == %s: %lld != %lld", #a, #b, kt_a, kt_b); \
  } while (0)
#define KT_NE(a, b)                                                 \
  do {                                                              \
    long long kt_a = (long long)(a), kt_b = (long long)(b);         \
    if (kt_a == kt_b) KT_FAIL("%s != %s: both %lld", #a, #b, kt_a); \
  } while (0)
#define KT_PTR_EQ(a, b)                                                  \
  do {                                                                   \
    const void *kt_a = (a), *kt_b = (b);                                 \
    if (kt_a != kt_b) KT_FAIL("%s == %s: %p != %p", #a, #b, kt_a, kt_b); \
  } while (0)
#define KT_STR_EQ(a, b)                                                     \
  do {                                                                      \
    const char *kt_a = (a), *kt_b = (b);                                    \
    if (!kt_a || !kt_b || strcmp(kt_a, kt_b) != 0)                          \
      KT_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, kt_a ? kt_a : "(null)", \
              kt_b ? kt_b : "(null)");                                      \
  } while (0)
#define KT_STR_CONTAINS(hay, needle)                                           \
  do {                                                                         \
    const char *kt_h = (hay), *kt_n = (needle);                                \
    if (!kt_h || !strstr(kt_h, kt_n))                                          \
      KT_FAIL("\"%s\" does not contain \"%s\"", kt_h ? kt_h : "(null)", kt_n); \
  } while (0)
/* Skips the test (CTest shows it as skipped, never as passed): only for a missing facility of the
 * machine, named in the message. */
#define KT_SKIP(...)              \
  do {                            \
    fprintf(stderr, "skipped: "); \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(77);                     \
  } while (0)
/* A code compared with its symbolic name in the message. */
#define KT_CODE(a, b)                                                            \
  do {                                                                           \
    int kt_a = (a), kt_b = (b);                                                  \
    if (kt_a != kt_b)                                                            \
      KT_FAIL("%s == %s: %s (%d) != %s (%d)", #a, #b, kiln_err_name(kt_a), kt_a, \
              kiln_err_name(kt_b), kt_b);                                        \
  } while (0)

static inline double kt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A timed wait must take >= 0.6 x timeout and < 10 x timeout (CHECKLIST, lt.assertTimeout). */
#define KT_TIMED(elapsed, timeout)                                         \
  do {                                                                     \
    double kt_e = (elapsed), kt_t = (timeout);                             \
    if (kt_e < 0.6 * kt_t || kt_e >= 10.0 * kt_t + 0.05)                   \
      KT_FAIL("timed wait took %.4fs for a timeout of %.4fs", kt_e, kt_t); \
  } while (0)

int main(int argc, char **argv) {
  if (argc < 2) {
    for (int i = 0; i < kt_ntests; i++) printf("%s\n", kt_tests[i].name);
    return 0;
  }
  for (int i = 0; i < kt_ntests; i++) {
    if (strcmp(kt_tests[i].name, argv[1]) == 0) {
      kt_tests[i].fn();
      printf("ok %s\n", argv[1]);
      return 0;
    }
  }
  fprintf(stderr, "no test named %s\n", argv[1]);
  return 2;
}

#endif /* KILN_KT_H */
