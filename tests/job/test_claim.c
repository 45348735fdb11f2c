/* test_claim.c: the claim files of engine/batch/claim.c, which let processes on any hosts share
 * the chunks of one job: a claim excludes others while its heartbeat lives, a finished chunk is
 * done for everyone, an expired claim (old heartbeat, given back, or a dead holder on this host)
 * is taken over by exactly one of the processes racing for it, and a holder whose claim was taken
 * over learns it at its next heartbeat. Several claims objects in one process stand for several
 * processes (each has its own heartbeat and clock); a claim "of another host" is a file written
 * by the test. */
// kt: timeout 60
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batch_internal.h"
#include "kt.h"

static char *new_dir(void) {
  static char d[64];
  snprintf(d, sizeof d, "/tmp/kiln-claim-XXXXXX");
  if (!mkdtemp(d)) KT_FAIL("mkdtemp: %s", strerror(errno));
  return d;
}

static kiln__claims *open_claims(const char *dir, double timeout) {
  kiln__claims *c = NULL;
  char m[512];
  int rc = kiln__claims_open(dir, timeout, &c, m, sizeof m);
  if (rc) KT_FAIL("kiln__claims_open: %s", m);
  return c;
}

static kiln__claim_result try_claim(kiln__claims *c, uint64_t chunk) {
  kiln__claim_result r;
  char m[512];
  int rc = kiln__claims_try(c, chunk, &r, m, sizeof m);
  if (rc) KT_FAIL("kiln__claims_try: %s", m);
  return r;
}

static char *claim_path(const char *dir, uint64_t chunk, const char *suffix) {
  static char p[4][512];
  static int i;
  char *out = p[i++ % 4];
  snprintf(out, 512, "%s/%08llu.%s", dir, (unsigned long long)chunk, suffix);
  return out;
}

/* A claim file as another process (on host, with pid) would leave it, its heartbeat age_s old. */
static void fake_claim(const char *path, const char *host, long pid, double age_s) {
  FILE *f = fopen(path, "w");
  if (!f) KT_FAIL("cannot write %s", path);
  fprintf(f, "%s %ld\n", host, pid);
  fclose(f);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct timespec t[2] = {{now.tv_sec - (time_t)age_s, 0}, {now.tv_sec - (time_t)age_s, 0}};
  KT_EQ(utimensat(AT_FDCWD, path, t, 0), 0);
}

static double mtime_age(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) KT_FAIL("stat %s: %s", path, strerror(errno));
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return (double)(now.tv_sec - st.st_mtim.tv_sec) + 1e-9 * (double)(now.tv_nsec - st.st_mtim.tv_nsec);
}

TEST(a_claim_excludes_until_finished_then_done_for_all) {
  char *dir = new_dir();
  kiln__claims *a = open_claims(dir, 60), *b = open_claims(dir, 60);
  KT_EQ(try_claim(a, 3), KILN__CLAIM_MINE);
  KT_EQ(try_claim(b, 3), KILN__CLAIM_BUSY);
  KT_EQ(try_claim(b, 4), KILN__CLAIM_MINE); /* other chunks stay free */
  bool stale;
  KT_FALSE(kiln__claims_poll(b, 3, &stale));
  KT_FALSE(stale);
  char m[256];
  KT_EQ(kiln__claims_finish(a, 3, 5, 1, m, sizeof m), 0);
  KT_TRUE(kiln__claims_poll(b, 3, &stale));
  KT_EQ(try_claim(b, 3), KILN__CLAIM_DONE);
  KT_EQ(try_claim(a, 3), KILN__CLAIM_DONE);
  size_t len;
  char *text = NULL;
  KT_EQ(kiln__read_file(claim_path(dir, 3, "done"), &text, &len, NULL, 0), 0);
  KT_STR_CONTAINS(text, "written 5 failed 1");
  free(text);
  kiln__claims_close(a);
  kiln__claims_close(b); /* gives chunk 4 back */
  kiln__claims *c = open_claims(dir, 60);
  KT_EQ(try_claim(c, 4), KILN__CLAIM_TAKEN);
  kiln__claims_close(c);
}

TEST(an_expired_claim_of_another_host_is_taken_over) {
  char *dir = new_dir();
  kiln__claims *a = open_claims(dir, 5);
  fake_claim(claim_path(dir, 0, "0"), "elsewhere", 4242, 1); /* fresh: busy */
  KT_EQ(try_claim(a, 0), KILN__CLAIM_BUSY);
  fake_claim(claim_path(dir, 0, "0"), "elsewhere", 4242, 30); /* no heartbeat for 30 s */
  bool stale;
  KT_FALSE(kiln__claims_poll(a, 0, &stale));
  KT_TRUE(stale);
  KT_EQ(try_claim(a, 0), KILN__CLAIM_TAKEN);
  KT_EQ(access(claim_path(dir, 0, "1"), F_OK), 0); /* a new generation; the old one stays */
  KT_EQ(access(claim_path(dir, 0, "0"), F_OK), 0);
  kiln__claims_close(a);
}

TEST(a_dead_holder_on_this_host_expires_at_once) {
  char *dir = new_dir();
  pid_t child = fork();
  if (child == 0) _exit(0);
  KT_EQ(waitpid(child, NULL, 0), child); /* reaped: its pid runs no more */
  char host[40];
  kiln__tmp_host(host, sizeof host);
  fake_claim(claim_path(dir, 2, "0"), host, child, 0);
  kiln__claims *a = open_claims(dir, 3600);
  KT_EQ(try_claim(a, 2), KILN__CLAIM_TAKEN);
  kiln__claims_close(a);
}

TEST(given_back_claims_are_free_at_once) {
  char *dir = new_dir();
  kiln__claims *a = open_claims(dir, 3600), *b = open_claims(dir, 3600);
  KT_EQ(try_claim(a, 7), KILN__CLAIM_MINE);
  KT_EQ(try_claim(b, 7), KILN__CLAIM_BUSY);
  kiln__claims_release(a, 7);
  KT_EQ(try_claim(b, 7), KILN__CLAIM_TAKEN);
  kiln__claims_close(a);
  kiln__claims_close(b);
}

TEST(heartbeat_keeps_a_claim_alive_and_tells_a_holder_it_lost) {
  char *dir = new_dir();
  kiln__claims *a = open_claims(dir, 0.4); /* heartbeat every 0.1 s */
  KT_EQ(try_claim(a, 1), KILN__CLAIM_MINE);
  const char *p = claim_path(dir, 1, "0");
  struct timespec old[2] = {{1000, 0}, {1000, 0}};
  KT_EQ(utimensat(AT_FDCWD, p, old, 0), 0); /* as if the holder had stalled */
  double t0 = kt_now();
  while (mtime_age(p) > 5) {
    if (kt_now() - t0 > 20) KT_FAIL("the heartbeat never touched %s", p);
    sched_yield();
  }
  /* another process takes the chunk over (it found the claim expired while the holder stalled) */
  fake_claim(claim_path(dir, 1, "1"), "elsewhere", 99, 0);
  t0 = kt_now();
  while (!kiln__claims_lost(a, 1)) {
    if (kt_now() - t0 > 20) KT_FAIL("the holder never learnt that it lost chunk 1");
    sched_yield();
  }
  kiln__claims_close(a);
}

/* Many claimers race for one expired claim: exactly one wins. */
typedef struct racer {
  const char *dir;
  atomic_int *go;
  kiln__claim_result r;
  kiln__claims *c;
} racer;

static void *race(void *arg) {
  racer *r = arg;
  while (!atomic_load(r->go)) {}
  r->r = try_claim(r->c, 9);
  return NULL;
}

TEST(one_winner_among_racers_for_an_expired_claim) {
  enum { N = 8 };
  for (int round = 0; round < 20; round++) {
    char *dir = new_dir();
    fake_claim(claim_path(dir, 9, "0"), "elsewhere", 1, 1000);
    atomic_int go = 0;
    racer rs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
      rs[i] = (racer){dir, &go, KILN__CLAIM_BUSY, open_claims(dir, 60)};
      KT_EQ(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    atomic_store(&go, 1);
    int won = 0;
    for (int i = 0; i < N; i++) {
      pthread_join(th[i], NULL);
      won += rs[i].r == KILN__CLAIM_TAKEN;
      KT_TRUE(rs[i].r == KILN__CLAIM_TAKEN || rs[i].r == KILN__CLAIM_BUSY);
    }
    KT_EQ(won, 1);
    KT_NE(access(claim_path(dir, 9, "2"), F_OK), 0); /* the losers made no generation of their own */
    for (int i = 0; i < N; i++) kiln__claims_close(rs[i].c);
  }
}

TEST(clock_files_of_dead_processes_are_swept) {
  char *dir = new_dir();
  pid_t child = fork();
  if (child == 0) _exit(0);
  KT_EQ(waitpid(child, NULL, 0), child);
  char host[40], p[512];
  kiln__tmp_host(host, sizeof host);
  snprintf(p, sizeof p, "%s/clock-%s-%ld-0", dir, host, (long)child);
  FILE *f = fopen(p, "w");
  KT_TRUE(f != NULL);
  fclose(f);
  kiln__claims *a = open_claims(dir, 60);
  KT_NE(access(p, F_OK), 0);
  kiln__claims_close(a);
}
