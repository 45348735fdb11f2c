/* test_shm.c: named shared memory and shared Values / Arrays (SHM-01..SHM-06).
 *
 * Children are plain forks of this single-threaded process; those that must find an object by
 * name attach it (as a fork server's child would) instead of using the inherited mapping. */
// kt: timeout 60
#include <stdint.h>

#include "pshm_test_util.h"

/* ---- named shared memory ---- */

static void child_rw_by_name(void *arg) {
  kiln_shm *s;
  KT_CODE(kiln_shm_attach(arg, &s), KILN_OK);
  KT_EQ(kiln_shm_size(s), 4096 + 3);
  unsigned char *p = kiln_shm_data(s);
  KT_STR_EQ((char *)p, "from parent");
  strcpy((char *)p + 100, "from child");
  p[4096 + 2] = 0x5a;
  kiln_shm_close(s);
}

/* SHM-06: size 0 and bad names are KILN_EINVAL; a second create is KILN_EEXIST; a missing name
 * and a second unlink are KILN_ENOENT; the attacher gets the segment's own size; a child
 * attaching by name sees the parent's writes and makes its own. */
TEST(SHM_06_named_segment) {
  pt_leaks lk = pt_leaks_begin();
  kiln_shm *s = (kiln_shm *)1, *t = NULL;
  KT_CODE(kiln_shm_create(pt_name("a"), 0, &s), KILN_EINVAL);
  KT_TRUE(s == NULL);
  KT_CODE(kiln_shm_create("a/b", 16, &s), KILN_EINVAL);
  KT_CODE(kiln_shm_create("", 16, &s), KILN_EINVAL);
  KT_CODE(kiln_shm_attach(NULL, &s), KILN_EINVAL);
  KT_CODE(kiln_shm_attach(pt_name("missing"), &s), KILN_ENOENT);
  KT_CODE(kiln_shm_create(pt_name("a"), 4096 + 3, &s), KILN_OK);
  KT_STR_EQ(kiln_shm_name(s), pt_name("a"));
  KT_CODE(kiln_shm_create(pt_name("a"), 64, &t), KILN_EEXIST);
  KT_TRUE(t == NULL);
  unsigned char *p = kiln_shm_data(s);
  for (size_t i = 0; i < kiln_shm_size(s); i++) KT_EQ(p[i], 0);
  strcpy((char *)p, "from parent");
  pt_wait(pt_fork(child_rw_by_name, (void *)pt_name("a")));
  KT_STR_EQ((char *)p + 100, "from child");
  KT_EQ(p[4096 + 2], 0x5a);
  KT_CODE(kiln_shm_attach(pt_name("a"), &t), KILN_OK);
  KT_EQ(kiln_shm_size(t), 4096 + 3);
  KT_CODE(kiln_shm_unlink(s), KILN_OK);
  KT_CODE(kiln_shm_unlink(t), KILN_ENOENT);
  KT_STR_EQ((char *)kiln_shm_data(t) + 100, "from child"); /* mappings outlive the name */
  kiln_shm *u = (kiln_shm *)1;
  KT_CODE(kiln_shm_attach(pt_name("a"), &u), KILN_ENOENT);
  KT_TRUE(u == NULL);
  kiln_shm_close(s);
  kiln_shm_close(t);
  kiln_shm_close(NULL);
  pt_leaks_end(lk);
}

PT_FS_WRAP(fs_child_rw_by_name, child_rw_by_name)

/* SHM-06: a child of the fork server (which does not inherit the segment) attaches it by name,
 * sees the parent's writes and makes its own. */
TEST(SHM_06_forkserver_child_attaches_by_name) {
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_shm *s;
  KT_CODE(kiln_shm_create(pt_name("fs"), 4096 + 3, &s), KILN_OK);
  strcpy(kiln_shm_data(s), "from parent");
  pt_fs_wait(pt_fs_run(fs_child_rw_by_name, pt_name("fs")));
  KT_STR_EQ((char *)kiln_shm_data(s) + 100, "from child");
  KT_CODE(kiln_shm_unlink(s), KILN_OK);
  kiln_shm_close(s);
  pt_leaks_end(lk);
  pt_fs_stop();
}

/* SHM-06: a NULL name picks a new unique name every time. */
TEST(SHM_06_generated_names) {
  pt_leaks lk = pt_leaks_begin();
  kiln_shm *a, *b, *c;
  KT_CODE(kiln_shm_create(NULL, 10, &a), KILN_OK);
  KT_CODE(kiln_shm_create(NULL, 10, &b), KILN_OK);
  KT_TRUE(strcmp(kiln_shm_name(a), kiln_shm_name(b)) != 0);
  KT_CODE(kiln_shm_attach(kiln_shm_name(b), &c), KILN_OK);
  ((char *)kiln_shm_data(c))[3] = 7;
  KT_EQ(((char *)kiln_shm_data(b))[3], 7);
  KT_EQ(pt_shm_count(), 2);
  KT_CODE(kiln_shm_unlink(a), KILN_OK);
  KT_CODE(kiln_shm_unlink(c), KILN_OK);
  kiln_shm_close(a);
  kiln_shm_close(b);
  kiln_shm_close(c);
  pt_leaks_end(lk);
}

/* ---- Value / Array ---- */

static kiln_shared *make(kiln_ctype type, size_t n, kiln_shared_lock mode, const void *init) {
  kiln_shared_config cfg;
  kiln_shared_config_default(&cfg);
  cfg.type = type;
  cfg.length = n;
  cfg.lock_mode = mode;
  cfg.init = init;
  kiln_shared *s = NULL;
  KT_CODE(kiln_shared_create(&cfg, &s), KILN_OK);
  return s;
}

typedef struct value_names {
  char n[5][80];
} value_names;

static void child_write_values(void *arg) {
  value_names *vn = arg;
  kiln_shared *v[5];
  for (int i = 0; i < 5; i++) KT_CODE(kiln_shared_attach(vn->n[i], &v[i]), KILN_OK);
  *(int *)kiln_shared_data(v[0]) = -7;
  *(double *)kiln_shared_data(v[1]) = 2.5;
  *(short *)kiln_shared_data(v[2]) = 1234;
  *(long long *)kiln_shared_data(v[3]) = 1LL << 40;
  *(char *)kiln_shared_data(v[4]) = 'z';
  for (int i = 0; i < 5; i++) kiln_shared_destroy(v[i]);
}

static void check_values(kiln_shared_lock mode) {
  pt_leaks lk = pt_leaks_begin();
  int i0 = 42;
  double d0 = 1.25;
  short s0 = -3;
  long long ll0 = -(1LL << 50);
  char c0 = 'x';
  kiln_shared *v[5] = {
      make(KILN_CT_INT, 1, mode, &i0),      make(KILN_CT_DOUBLE, 1, mode, &d0),
      make(KILN_CT_SHORT, 1, mode, &s0),    make(KILN_CT_LONGLONG, 1, mode, &ll0),
      make(KILN_CT_CHAR, 1, mode, &c0),
  };
  KT_EQ(*(int *)kiln_shared_data(v[0]), 42);
  KT_TRUE(*(double *)kiln_shared_data(v[1]) == 1.25);
  KT_EQ(*(short *)kiln_shared_data(v[2]), -3);
  KT_EQ(*(long long *)kiln_shared_data(v[3]), -(1LL << 50));
  KT_EQ(*(char *)kiln_shared_data(v[4]), 'x');
  value_names vn;
  for (int i = 0; i < 5; i++) {
    KT_EQ(kiln_shared_length(v[i]), 1);
    KT_EQ(kiln_shared_get_lock(v[i]) != NULL, mode != KILN_SHARED_LOCK_NONE);
    snprintf(vn.n[i], sizeof vn.n[i], "%s", kiln_shm_name(kiln_shared_shm(v[i])));
  }
  pt_wait(pt_fork(child_write_values, &vn));
  KT_EQ(*(int *)kiln_shared_data(v[0]), -7);
  KT_TRUE(*(double *)kiln_shared_data(v[1]) == 2.5);
  KT_EQ(*(short *)kiln_shared_data(v[2]), 1234);
  KT_EQ(*(long long *)kiln_shared_data(v[3]), 1LL << 40);
  KT_EQ(*(char *)kiln_shared_data(v[4]), 'z');
  for (int i = 0; i < 5; i++) kiln_shared_destroy(v[i]);
  pt_leaks_end(lk);
}

/* SHM-01: Values of int, double, short, long long and char read back their initial value, and
 * writes a child makes are seen after it is joined; RawValue (no lock) the same. */
TEST(SHM_01_value_and_rawvalue) {
  check_values(KILN_SHARED_LOCK_FRESH);
  check_values(KILN_SHARED_LOCK_NONE);
}

/* SHM-02: fresh lock by default; a supplied lock comes back as-is (and is attached by name in
 * another process); no lock for a raw object; a bad lock argument is KILN_EINVAL. */
static void child_uses_given_lock(void *arg) {
  kiln_shared *v;
  KT_CODE(kiln_shared_attach(arg, &v), KILN_OK);
  kiln_prlock *l = kiln_shared_get_lock(v);
  KT_TRUE(l != NULL);
  KT_TRUE(kiln_prlock_locked(l)); /* the parent holds it */
  KT_CODE(kiln_prlock_acquire(l, 0), KILN_ETIMEDOUT);
  kiln_shared_destroy(v);
}

TEST(SHM_02_get_lock) {
  pt_leaks lk = pt_leaks_begin();
  kiln_shared *a = make(KILN_CT_INT, 4, KILN_SHARED_LOCK_FRESH, NULL);
  kiln_prlock *la = kiln_shared_get_lock(a);
  KT_TRUE(la != NULL);
  KT_CODE(kiln_prlock_acquire(la, -1), KILN_OK);
  KT_TRUE(kiln_prlock_is_owned(la));
  KT_CODE(kiln_prlock_release(la), KILN_OK);
  kiln_shared *raw = make(KILN_CT_INT, 4, KILN_SHARED_LOCK_NONE, NULL);
  KT_TRUE(kiln_shared_get_lock(raw) == NULL);

  kiln_prlock *mine;
  KT_CODE(kiln_prlock_create(NULL, &mine), KILN_OK);
  kiln_shared_config cfg;
  kiln_shared_config_default(&cfg);
  cfg.lock_mode = KILN_SHARED_LOCK_GIVEN;
  cfg.lock = mine;
  kiln_shared *g;
  KT_CODE(kiln_shared_create(&cfg, &g), KILN_OK);
  KT_PTR_EQ(kiln_shared_get_lock(g), mine);
  KT_CODE(kiln_prlock_acquire(mine, -1), KILN_OK);
  pt_wait(pt_fork(child_uses_given_lock, (void *)kiln_shm_name(kiln_shared_shm(g))));
  KT_CODE(kiln_prlock_release(mine), KILN_OK);

  kiln_shared *bad = (kiln_shared *)1;
  cfg.lock = NULL; /* GIVEN without a lock */
  KT_CODE(kiln_shared_create(&cfg, &bad), KILN_EINVAL);
  KT_TRUE(bad == NULL);
  cfg.lock_mode = KILN_SHARED_LOCK_NONE; /* a lock with lock=False */
  cfg.lock = mine;
  KT_CODE(kiln_shared_create(&cfg, &bad), KILN_EINVAL);
  cfg.lock_mode = (kiln_shared_lock)7;
  KT_CODE(kiln_shared_create(&cfg, &bad), KILN_EINVAL);
  /* a lock placed in the caller's memory cannot be found by another process: refused */
  _Alignas(64) unsigned char mem[512];
  KT_TRUE(kiln_prlock_size() <= sizeof mem);
  KT_CODE(kiln_prlock_init(mem), KILN_OK);
  kiln_prlock *placed;
  KT_CODE(kiln_prlock_at(mem, &placed), KILN_OK);
  cfg.lock_mode = KILN_SHARED_LOCK_GIVEN;
  cfg.lock = placed;
  KT_CODE(kiln_shared_create(&cfg, &bad), KILN_EINVAL);
  kiln_prlock_destroy(placed);
  cfg.lock = NULL;
  cfg.lock_mode = KILN_SHARED_LOCK_FRESH;
  cfg.length = 0;
  KT_CODE(kiln_shared_create(&cfg, &bad), KILN_EINVAL);

  kiln_shared_destroy(g);
  kiln_prlock_destroy(mine);
  kiln_shared_destroy(raw);
  kiln_shared_destroy(a);
  kiln_shared_destroy(NULL);
  pt_leaks_end(lk);
}

/* SHM-03: length, items, slice reads and writes (out of range: KILN_EINVAL, nothing copied);
 * in-place updates made by a child are seen by the parent. */
static void child_square(void *arg) {
  kiln_shared *a;
  KT_CODE(kiln_shared_attach(arg, &a), KILN_OK);
  int *x = kiln_shared_data(a);
  for (size_t i = 0; i < kiln_shared_length(a); i++) x[i] *= x[i];
  kiln_shared_destroy(a);
}

TEST(SHM_03_array_slices) {
  pt_leaks lk = pt_leaks_begin();
  int init[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (int raw = 0; raw < 2; raw++) {
    kiln_shared *a = make(KILN_CT_INT, 10, raw ? KILN_SHARED_LOCK_NONE : KILN_SHARED_LOCK_FRESH, init);
    KT_EQ(kiln_shared_length(a), 10);
    KT_EQ(kiln_shared_type(a), KILN_CT_INT);
    int got[10] = {0};
    KT_CODE(kiln_shared_read(a, 2, 5, got), KILN_OK);
    for (int i = 0; i < 5; i++) KT_EQ(got[i], i + 2);
    int put[3] = {-1, -2, -3};
    KT_CODE(kiln_shared_write(a, 7, 3, put), KILN_OK);
    KT_CODE(kiln_shared_write(a, 8, 3, put), KILN_EINVAL);
    KT_CODE(kiln_shared_read(a, 11, 0, got), KILN_EINVAL);
    KT_CODE(kiln_shared_read(a, 10, 0, got), KILN_OK);
    KT_EQ(((int *)kiln_shared_data(a))[9], -3);
    pt_wait(pt_fork(child_square, (void *)kiln_shm_name(kiln_shared_shm(a))));
    KT_CODE(kiln_shared_read(a, 0, 10, got), KILN_OK);
    int want[10] = {0, 1, 4, 9, 16, 25, 36, 1, 4, 9};
    for (int i = 0; i < 10; i++) KT_EQ(got[i], want[i]);
    kiln_shared_destroy(a);
  }
  pt_leaks_end(lk);
}

/* SHM-04: an Array made without initial values is zero-filled every time, also when the memory
 * it gets was just used and dirtied by another. */
TEST(SHM_04_array_zero_filled) {
  pt_leaks lk = pt_leaks_begin();
  for (int round = 0; round < 20; round++) {
    kiln_shared *a = make(KILN_CT_DOUBLE, 1000 + (size_t)round, KILN_SHARED_LOCK_FRESH, NULL);
    double *x = kiln_shared_data(a);
    for (size_t i = 0; i < kiln_shared_length(a); i++) {
      KT_TRUE(x[i] == 0.0);
      x[i] = 3.0;
    }
    kiln_shared_destroy(a);
  }
  pt_leaks_end(lk);
}

/* SHM-05: a child doubles ints, doubles and long longs (a Value and Array items) under get_lock,
 * and a char array used as a string goes from "hello" to "hellohello". */
typedef struct arith_names {
  char v[80], ai[80], ad[80], al[80], s[80];
} arith_names;

static void double_under_lock(kiln_shared *x) {
  kiln_prlock *l = kiln_shared_get_lock(x);
  KT_CODE(kiln_prlock_acquire(l, -1), KILN_OK);
  void *d = kiln_shared_data(x);
  for (size_t i = 0; i < kiln_shared_length(x); i++) {
    switch (kiln_shared_type(x)) {
      case KILN_CT_INT: ((int *)d)[i] *= 2; break;
      case KILN_CT_DOUBLE: ((double *)d)[i] *= 2; break;
      case KILN_CT_LONGLONG: ((long long *)d)[i] *= 2; break;
      default: KT_FAIL("type %d", (int)kiln_shared_type(x));
    }
  }
  KT_CODE(kiln_prlock_release(l), KILN_OK);
}

static void child_arith(void *arg) {
  arith_names *n = arg;
  const char *names[4] = {n->v, n->ai, n->ad, n->al};
  for (int i = 0; i < 4; i++) {
    kiln_shared *x;
    KT_CODE(kiln_shared_attach(names[i], &x), KILN_OK);
    double_under_lock(x);
    kiln_shared_destroy(x);
  }
  kiln_shared *s;
  KT_CODE(kiln_shared_attach(n->s, &s), KILN_OK);
  kiln_prlock *l = kiln_shared_get_lock(s);
  KT_CODE(kiln_prlock_acquire(l, -1), KILN_OK);
  char *str = kiln_shared_data(s);
  size_t len = strlen(str);
  KT_TRUE(2 * len < kiln_shared_length(s));
  memcpy(str + len, str, len);
  str[2 * len] = 0;
  KT_CODE(kiln_prlock_release(l), KILN_OK);
  kiln_shared_destroy(s);
}

PT_FS_WRAP(fs_child_arith, child_arith)

static void check_arith(bool forkserver) {
  pt_leaks lk = pt_leaks_begin();
  int v0 = 5, ai0[3] = {1, 2, -3};
  double ad0[3] = {0.5, 1.5, -2.25};
  long long al0[2] = {1LL << 40, -7};
  kiln_shared *v = make(KILN_CT_INT, 1, KILN_SHARED_LOCK_FRESH, &v0);
  kiln_shared *ai = make(KILN_CT_INT, 3, KILN_SHARED_LOCK_FRESH, ai0);
  kiln_shared *ad = make(KILN_CT_DOUBLE, 3, KILN_SHARED_LOCK_FRESH, ad0);
  kiln_shared *al = make(KILN_CT_LONGLONG, 2, KILN_SHARED_LOCK_FRESH, al0);
  kiln_shared *s = make(KILN_CT_CHAR, 20, KILN_SHARED_LOCK_FRESH, NULL);
  KT_CODE(kiln_shared_write(s, 0, 6, "hello"), KILN_OK);
  arith_names n;
  snprintf(n.v, sizeof n.v, "%s", kiln_shm_name(kiln_shared_shm(v)));
  snprintf(n.ai, sizeof n.ai, "%s", kiln_shm_name(kiln_shared_shm(ai)));
  snprintf(n.ad, sizeof n.ad, "%s", kiln_shm_name(kiln_shared_shm(ad)));
  snprintf(n.al, sizeof n.al, "%s", kiln_shm_name(kiln_shared_shm(al)));
  snprintf(n.s, sizeof n.s, "%s", kiln_shm_name(kiln_shared_shm(s)));
  if (forkserver) { /* the names travel as one byte string */
    kiln_process_config pc;
    pt_fs_config(&pc);
    kiln_process *p;
    KT_CODE(kiln_process_start(&pc, fs_child_arith, &n, sizeof n, &p), KILN_OK);
    pt_fs_wait(p);
  } else {
    pt_wait(pt_fork(child_arith, &n));
  }
  KT_EQ(*(int *)kiln_shared_data(v), 10);
  int gi[3];
  double gd[3];
  long long gl[2];
  KT_CODE(kiln_shared_read(ai, 0, 3, gi), KILN_OK);
  KT_CODE(kiln_shared_read(ad, 0, 3, gd), KILN_OK);
  KT_CODE(kiln_shared_read(al, 0, 2, gl), KILN_OK);
  for (int i = 0; i < 3; i++) KT_EQ(gi[i], 2 * ai0[i]);
  for (int i = 0; i < 3; i++) KT_TRUE(gd[i] == 2 * ad0[i]);
  for (int i = 0; i < 2; i++) KT_EQ(gl[i], 2 * al0[i]);
  KT_STR_EQ((char *)kiln_shared_data(s), "hellohello");
  kiln_shared_destroy(v);
  kiln_shared_destroy(ai);
  kiln_shared_destroy(ad);
  kiln_shared_destroy(al);
  kiln_shared_destroy(s);
  pt_leaks_end(lk);
}

TEST(SHM_05_child_arithmetic) { check_arith(false); }

TEST(SHM_05_child_arithmetic_forkserver) {
  pt_fs_start();
  check_arith(true);
  pt_fs_stop();
}

typedef struct hold_arg {
  char name[80];
  pt_pipe p;
} hold_arg;

static void child_hold_value_lock(void *arg) {
  hold_arg *h = arg;
  kiln_shared *v;
  KT_CODE(kiln_shared_attach(h->name, &v), KILN_OK);
  KT_CODE(kiln_prlock_acquire(kiln_shared_get_lock(v), -1), KILN_OK);
  *(int *)kiln_shared_data(v) = 99; /* a half-done update */
  pt_signal(h->p);
  for (;;) pause(); /* until SIGKILL */
}

/* A process killed holding a Value's lock: the next slice copy still happens and says
 * KILN_EOWNERDEAD; the one after is ordinary. */
TEST(SHM_value_lock_holder_killed) {
  pt_leaks lk = pt_leaks_begin();
  kiln_shared *v = make(KILN_CT_INT, 1, KILN_SHARED_LOCK_FRESH, NULL);
  hold_arg h;
  snprintf(h.name, sizeof h.name, "%s", kiln_shm_name(kiln_shared_shm(v)));
  h.p = pt_pipe_new();
  pid_t pid = pt_fork(child_hold_value_lock, &h);
  pt_await(h.p);
  pt_kill(pid);
  int x = 0;
  KT_CODE(kiln_shared_read(v, 0, 1, &x), KILN_EOWNERDEAD);
  KT_EQ(x, 99);
  KT_CODE(kiln_shared_write(v, 0, 1, &(int){5}), KILN_OK);
  KT_CODE(kiln_shared_read(v, 0, 1, &x), KILN_OK);
  KT_EQ(x, 5);
  pt_pipe_close(h.p);
  kiln_shared_destroy(v);
  pt_leaks_end(lk);
}

/* SHM-06: a size no segment can have (above what a file offset holds, up to SIZE_MAX) is
 * KILN_ENOMEM, as one the address space cannot map is, and leaves no name behind. */
TEST(SHM_06_huge_size_is_enomem) {
  pt_leaks lk = pt_leaks_begin();
  size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4095, ((size_t)1 << 63) + 5, (size_t)1 << 62};
  for (int i = 0; i < 4; i++) {
    kiln_shm *s = (kiln_shm *)1;
    KT_CODE(kiln_shm_create(pt_name("huge"), sizes[i], &s), KILN_ENOMEM);
    KT_TRUE(s == NULL);
    KT_CODE(kiln_shm_create(NULL, sizes[i], &s), KILN_ENOMEM);
  }
  pt_leaks_end(lk);
}
