/* test_psync.c: process-shared lock, rlock, semaphore, condition, event and barrier (LOCK, RLOCK,
 * SEM, COND-05, EVT-02, BAR-03 and the dead-holder rule) with real processes.
 *
 * Children are children of the fork server (the tests across many processes) or plain forks of
 * this single-threaded process; either way they find the objects by name. */
// kt: timeout 60
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "pshm_test_util.h"

/* ---- lock ---- */

/* LOCK-01/05/07: try-acquire on a free and a held lock, a timed acquire that gives up after
 * about its timeout, release of an unlocked lock (KILN_ESTATE), NaN (KILN_EINVAL). */
TEST(LOCK_01_07_acquire_release_timeout) {
  pt_leaks lk = pt_leaks_begin();
  kiln_plock *l;
  KT_CODE(kiln_plock_create(pt_name("lock"), &l), KILN_OK);
  KT_FALSE(kiln_plock_locked(l));
  KT_CODE(kiln_plock_acquire(l, 0), KILN_OK);
  KT_TRUE(kiln_plock_locked(l));
  double t0 = kt_now();
  KT_CODE(kiln_plock_acquire(l, 0), KILN_ETIMEDOUT); /* not reentrant (LOCK-03) */
  KT_TRUE(kt_now() - t0 < 0.05);
  t0 = kt_now();
  KT_CODE(kiln_plock_acquire(l, 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_CODE(kiln_plock_acquire(l, NAN), KILN_EINVAL);
  KT_CODE(kiln_plock_release(l), KILN_OK);
  KT_FALSE(kiln_plock_locked(l));
  KT_CODE(kiln_plock_release(l), KILN_ESTATE);
  KT_CODE(kiln_plock_acquire(l, 0), KILN_OK);
  KT_CODE(kiln_plock_release(l), KILN_OK);
  kiln_plock_destroy(l);
  pt_leaks_end(lk);
}

static void child_release(void *arg) {
  kiln_plock *l;
  KT_CODE(kiln_plock_attach(arg, &l), KILN_OK);
  KT_TRUE(kiln_plock_locked(l));
  KT_CODE(kiln_plock_release(l), KILN_OK);
  kiln_plock_destroy(l);
}

/* LOCK-04: another process may release the lock. */
TEST(LOCK_04_release_by_another_process) {
  pt_leaks lk = pt_leaks_begin();
  kiln_plock *l;
  KT_CODE(kiln_plock_create(NULL, &l), KILN_OK);
  KT_CODE(kiln_plock_acquire(l, -1), KILN_OK);
  pt_wait(pt_fork(child_release, (void *)kiln_shm_name(kiln_plock_shm(l))));
  KT_FALSE(kiln_plock_locked(l));
  KT_CODE(kiln_plock_acquire(l, 0), KILN_OK);
  KT_CODE(kiln_plock_release(l), KILN_OK);
  kiln_plock_destroy(l);
  pt_leaks_end(lk);
}

/* A lock and a counter placed in one segment (kiln_plock_init / kiln_plock_at). */
enum { COUNT_PROCS = 4, COUNT_EACH = 3000 };

static void child_count(void *arg) {
  kiln_shm *s;
  KT_CODE(kiln_shm_attach(arg, &s), KILN_OK);
  kiln_plock *l;
  KT_CODE(kiln_plock_at(kiln_shm_data(s), &l), KILN_OK);
  volatile long *counter = (long *)((char *)kiln_shm_data(s) + kiln_plock_size());
  for (int i = 0; i < COUNT_EACH; i++) {
    KT_CODE(kiln_plock_acquire(l, -1), KILN_OK);
    *counter = *counter + 1; /* not atomic: only the lock keeps increments whole */
    KT_CODE(kiln_plock_release(l), KILN_OK);
  }
  kiln_plock_destroy(l);
  kiln_shm_close(s);
}

PT_FS_WRAP(fs_child_count, child_count)

/* LOCK-02: every process blocked in acquire gets through, one at a time: increments of a plain
 * counter by 4 processes (children of the fork server) under the lock all count. */
TEST(LOCK_02_mutual_exclusion_across_processes) {
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_shm *s;
  KT_CODE(kiln_shm_create(NULL, kiln_plock_size() + 64, &s), KILN_OK);
  KT_CODE(kiln_plock_init(kiln_shm_data(s)), KILN_OK);
  kiln_plock *wrong;
  KT_CODE(kiln_prlock_at(kiln_shm_data(s), (kiln_prlock **)&wrong), KILN_EINVAL);
  kiln_process *p[COUNT_PROCS];
  for (int i = 0; i < COUNT_PROCS; i++) p[i] = pt_fs_run(fs_child_count, kiln_shm_name(s));
  for (int i = 0; i < COUNT_PROCS; i++) pt_fs_wait(p[i]);
  KT_EQ(*(long *)((char *)kiln_shm_data(s) + kiln_plock_size()), COUNT_PROCS * COUNT_EACH);
  KT_CODE(kiln_shm_unlink(s), KILN_OK);
  kiln_shm_close(s);
  pt_leaks_end(lk);
  pt_fs_stop();
}

/* ---- dead holders ---- */

typedef struct holder_arg {
  const char *name;
  pt_pipe p;
  bool rlock;
} holder_arg;

static void child_hold_forever(void *arg) {
  holder_arg *h = arg;
  if (h->rlock) {
    kiln_prlock *r;
    KT_CODE(kiln_prlock_attach(h->name, &r), KILN_OK);
    KT_CODE(kiln_prlock_acquire(r, -1), KILN_OK);
    KT_CODE(kiln_prlock_acquire(r, -1), KILN_OK);
  } else {
    kiln_plock *l;
    KT_CODE(kiln_plock_attach(h->name, &l), KILN_OK);
    KT_CODE(kiln_plock_acquire(l, -1), KILN_OK);
  }
  pt_signal(h->p);
  for (;;) pause(); /* until SIGKILL */
}

static void child_wait_for_dead(void *arg) {
  kiln_plock *l;
  KT_CODE(kiln_plock_attach(arg, &l), KILN_OK);
  KT_CODE(kiln_plock_acquire(l, -1), KILN_EOWNERDEAD); /* and now holds it */
  KT_TRUE(kiln_plock_locked(l));
  KT_CODE(kiln_plock_release(l), KILN_OK);
  kiln_plock_destroy(l);
}

/* A holder SIGKILLed while holding the lock: a process already blocked in acquire takes it over
 * with KILN_EOWNERDEAD; later acquires are ordinary. */
TEST(LOCK_holder_killed_blocked_waiter_gets_ownerdead) {
  pt_leaks lk = pt_leaks_begin();
  kiln_plock *l;
  KT_CODE(kiln_plock_create(pt_name("dead"), &l), KILN_OK);
  holder_arg h = {pt_name("dead"), pt_pipe_new(), false};
  pid_t holder = pt_fork(child_hold_forever, &h);
  pt_await(h.p);
  pid_t waiter = pt_fork(child_wait_for_dead, (void *)pt_name("dead"));
  pt_kill(holder);
  pt_wait(waiter);
  KT_CODE(kiln_plock_acquire(l, 0), KILN_OK);
  KT_CODE(kiln_plock_release(l), KILN_OK);
  pt_pipe_close(h.p);
  kiln_plock_destroy(l);
  pt_leaks_end(lk);
}

/* The same for a holder that is dead but not yet reaped (a zombie), taken with a try-acquire. */
TEST(LOCK_holder_killed_zombie_try_acquire) {
  pt_leaks lk = pt_leaks_begin();
  kiln_plock *l;
  KT_CODE(kiln_plock_create(pt_name("zombie"), &l), KILN_OK);
  holder_arg h = {pt_name("zombie"), pt_pipe_new(), false};
  pid_t holder = pt_fork(child_hold_forever, &h);
  pt_await(h.p);
  KT_CODE(kiln_plock_acquire(l, 0), KILN_ETIMEDOUT);
  KT_EQ(kill(holder, SIGKILL), 0);
  siginfo_t si;
  KT_EQ(waitid(P_PID, (id_t)holder, &si, WEXITED | WNOWAIT), 0); /* dead, not reaped */
  KT_CODE(kiln_plock_acquire(l, 0), KILN_EOWNERDEAD);
  KT_CODE(kiln_plock_acquire(l, 0), KILN_ETIMEDOUT); /* held by this process now */
  KT_CODE(kiln_plock_release(l), KILN_OK);
  KT_EQ(waitpid(holder, NULL, 0), holder);
  pt_pipe_close(h.p);
  kiln_plock_destroy(l);
  pt_leaks_end(lk);
}

/* A child of the fork server takes the lock and says so through an event (it inherits no pipe). */
static void fs_hold(void *arg) {
  char ev_name[96];
  snprintf(ev_name, sizeof ev_name, "%s-ev", (const char *)arg);
  kiln_plock *l;
  kiln_pevent *e;
  KT_CODE(kiln_plock_attach(arg, &l), KILN_OK);
  KT_CODE(kiln_pevent_attach(ev_name, &e), KILN_OK);
  KT_CODE(kiln_plock_acquire(l, -1), KILN_OK);
  kiln_pevent_set(e);
  for (;;) pause(); /* until SIGKILL */
}
PT_FS_WRAP(fs_hold_forever, fs_hold)

/* The same with a holder started through the fork server and killed with kiln_process_kill. */
TEST(LOCK_holder_killed_forkserver) {
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_plock *l;
  kiln_pevent *held;
  KT_CODE(kiln_plock_create(pt_name("fsdead"), &l), KILN_OK);
  KT_CODE(kiln_pevent_create(pt_name("fsdead-ev"), &held), KILN_OK);
  kiln_process *p = pt_fs_run(fs_hold_forever, pt_name("fsdead"));
  KT_CODE(kiln_pevent_wait(held, -1), KILN_OK);
  KT_CODE(kiln_plock_acquire(l, 0), KILN_ETIMEDOUT);
  KT_CODE(kiln_process_kill(p), KILN_OK);
  KT_CODE(kiln_process_join(p, -1), KILN_OK);
  int code = 0;
  KT_CODE(kiln_process_exitcode(p, &code), KILN_OK);
  KT_EQ(code, -SIGKILL);
  kiln_process_destroy(p);
  KT_CODE(kiln_plock_acquire(l, -1), KILN_EOWNERDEAD);
  KT_CODE(kiln_plock_release(l), KILN_OK);
  kiln_pevent_destroy(held);
  kiln_plock_destroy(l);
  pt_leaks_end(lk);
  pt_fs_stop();
}

/* An rlock held twice by a killed process passes to the next acquirer at count 1. */
TEST(RLOCK_holder_killed_ownerdead) {
  pt_leaks lk = pt_leaks_begin();
  kiln_prlock *r;
  KT_CODE(kiln_prlock_create(pt_name("rdead"), &r), KILN_OK);
  holder_arg h = {pt_name("rdead"), pt_pipe_new(), true};
  pid_t holder = pt_fork(child_hold_forever, &h);
  pt_await(h.p);
  KT_TRUE(kiln_prlock_locked(r));
  KT_FALSE(kiln_prlock_is_owned(r));
  KT_CODE(kiln_prlock_release(r), KILN_ESTATE); /* RLOCK-03: not the owner */
  pt_kill(holder);
  KT_CODE(kiln_prlock_acquire(r, -1), KILN_EOWNERDEAD);
  KT_TRUE(kiln_prlock_is_owned(r));
  KT_CODE(kiln_prlock_release(r), KILN_OK);
  KT_FALSE(kiln_prlock_locked(r));
  pt_pipe_close(h.p);
  kiln_prlock_destroy(r);
  pt_leaks_end(lk);
}

/* ---- rlock ---- */

static kiln_prlock *g_r;
static void *thread_rlock_probe(void *arg) {
  (void)arg;
  KT_FALSE(kiln_prlock_is_owned(g_r));
  KT_TRUE(kiln_prlock_locked(g_r));
  KT_CODE(kiln_prlock_release(g_r), KILN_ESTATE);
  KT_CODE(kiln_prlock_acquire(g_r, 0), KILN_ETIMEDOUT);
  return NULL;
}

/* RLOCK-01..04: re-entry with a count, ownership per thread, releases by a non-owner or one too
 * many are KILN_ESTATE. */
TEST(RLOCK_01_04_reentry_and_ownership) {
  pt_leaks lk = pt_leaks_begin();
  KT_CODE(kiln_prlock_create(NULL, &g_r), KILN_OK);
  KT_CODE(kiln_prlock_release(g_r), KILN_ESTATE);
  KT_CODE(kiln_prlock_acquire(g_r, -1), KILN_OK);
  KT_CODE(kiln_prlock_acquire(g_r, 0), KILN_OK);
  KT_TRUE(kiln_prlock_is_owned(g_r));
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, thread_rlock_probe, NULL), 0);
  KT_EQ(pthread_join(t, NULL), 0);
  KT_CODE(kiln_prlock_release(g_r), KILN_OK);
  KT_TRUE(kiln_prlock_locked(g_r));
  KT_CODE(kiln_prlock_release(g_r), KILN_OK);
  KT_FALSE(kiln_prlock_locked(g_r));
  KT_FALSE(kiln_prlock_is_owned(g_r));
  KT_CODE(kiln_prlock_release(g_r), KILN_ESTATE);
  kiln_prlock_destroy(g_r);
  pt_leaks_end(lk);
}

/* ---- semaphore ---- */

static void child_sem_acquire(void *arg) {
  kiln_psem *s;
  KT_CODE(kiln_psem_attach(arg, &s), KILN_OK);
  KT_CODE(kiln_psem_acquire(s, -1), KILN_OK);
  kiln_psem_destroy(s);
}

/* SEM-01/02/04/06/08: values 2 → 1 → 0 → 1 → 2 (and above the initial value), a try at 0 fails at
 * once even with a timeout given (the multiprocessing form of SEM-06), a timed acquire gives up
 * after about its timeout, a child blocked at 0 gets the unit the parent releases. */
TEST(SEM_02_06_values_and_timeouts) {
  pt_leaks lk = pt_leaks_begin();
  kiln_psem *s = (kiln_psem *)1;
  KT_CODE(kiln_psem_create(NULL, -1, false, &s), KILN_EINVAL);
  KT_TRUE(s == NULL);
  KT_CODE(kiln_psem_create(pt_name("sem"), 2, false, &s), KILN_OK);
  KT_EQ(kiln_psem_value(s), 2);
  KT_CODE(kiln_psem_acquire(s, 0), KILN_OK);
  KT_EQ(kiln_psem_value(s), 1);
  KT_CODE(kiln_psem_acquire(s, -1), KILN_OK);
  KT_EQ(kiln_psem_value(s), 0);
  double t0 = kt_now();
  KT_CODE(kiln_psem_acquire(s, 0), KILN_ETIMEDOUT);
  KT_TRUE(kt_now() - t0 < 0.05);
  t0 = kt_now();
  KT_CODE(kiln_psem_acquire(s, 0.1), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.1);
  KT_CODE(kiln_psem_release(s, 1), KILN_OK);
  KT_EQ(kiln_psem_value(s), 1);
  KT_CODE(kiln_psem_release(s, 0), KILN_EINVAL);
  KT_CODE(kiln_psem_release(s, 2), KILN_OK);
  KT_EQ(kiln_psem_value(s), 3); /* SEM-08 */
  for (int i = 0; i < 3; i++) KT_CODE(kiln_psem_acquire(s, 0), KILN_OK);
  pid_t a = pt_fork(child_sem_acquire, (void *)pt_name("sem"));
  pid_t b = pt_fork(child_sem_acquire, (void *)pt_name("sem"));
  KT_CODE(kiln_psem_release(s, 2), KILN_OK); /* SEM-04: lets both in */
  pt_wait(a);
  pt_wait(b);
  KT_EQ(kiln_psem_value(s), 0);
  kiln_psem_destroy(s);
  pt_leaks_end(lk);
}

/* A semaphore and a counter in one segment, for processes that take units. */
static void child_sem_take_two(void *arg) {
  kiln_shm *s;
  KT_CODE(kiln_shm_attach(arg, &s), KILN_OK);
  kiln_psem *sem;
  KT_CODE(kiln_psem_at(kiln_shm_data(s), &sem), KILN_OK);
  atomic_long *taken = (atomic_long *)((char *)kiln_shm_data(s) + kiln_psem_size());
  for (int i = 0; i < 2; i++) {
    KT_CODE(kiln_psem_acquire(sem, -1), KILN_OK);
    atomic_fetch_add(taken, 1);
  }
  kiln_psem_destroy(sem);
  kiln_shm_close(s);
}
PT_FS_WRAP(fs_child_sem_take_two, child_sem_take_two)

/* SEM-03: processes blocked at 0 (children of the fork server) get exactly one unit per unit
 * released: 4 processes x 2 acquires, released 3, then 5. */
TEST(SEM_03_each_release_lets_in_one_process) {
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_shm *s;
  KT_CODE(kiln_shm_create(NULL, kiln_psem_size() + sizeof(atomic_long), &s), KILN_OK);
  KT_CODE(kiln_psem_init(kiln_shm_data(s), 0, false), KILN_OK);
  kiln_psem *sem;
  KT_CODE(kiln_psem_at(kiln_shm_data(s), &sem), KILN_OK);
  atomic_long *taken = (atomic_long *)((char *)kiln_shm_data(s) + kiln_psem_size());
  kiln_process *p[4];
  for (int i = 0; i < 4; i++) p[i] = pt_fs_run(fs_child_sem_take_two, kiln_shm_name(s));
  KT_CODE(kiln_psem_release(sem, 3), KILN_OK);
  PT_UNTIL(atomic_load(taken) == 3);
  KT_EQ(kiln_psem_value(sem), 0); /* and so no fourth can have got through */
  KT_CODE(kiln_psem_release(sem, 5), KILN_OK);
  for (int i = 0; i < 4; i++) pt_fs_wait(p[i]);
  KT_EQ(atomic_load(taken), 8);
  KT_EQ(kiln_psem_value(sem), 0);
  kiln_psem_destroy(sem);
  KT_CODE(kiln_shm_unlink(s), KILN_OK);
  kiln_shm_close(s);
  pt_leaks_end(lk);
  pt_fs_stop();
}

/* SEM-09: a bounded semaphore refuses releases above its initial value, also from another
 * process than the acquirer. */
static void child_sem_release(void *arg) {
  kiln_psem *s;
  KT_CODE(kiln_psem_attach(arg, &s), KILN_OK);
  KT_CODE(kiln_psem_release(s, 1), KILN_OK);
  KT_CODE(kiln_psem_release(s, 1), KILN_EINVAL);
  kiln_psem_destroy(s);
}

TEST(SEM_09_bounded) {
  pt_leaks lk = pt_leaks_begin();
  kiln_psem *s;
  KT_CODE(kiln_psem_create(NULL, 1, true, &s), KILN_OK);
  KT_CODE(kiln_psem_release(s, 1), KILN_EINVAL);
  KT_CODE(kiln_psem_acquire(s, 0), KILN_OK);
  pt_wait(pt_fork(child_sem_release, (void *)kiln_shm_name(kiln_psem_shm(s))));
  KT_EQ(kiln_psem_value(s), 1);
  kiln_psem_destroy(s);
  pt_leaks_end(lk);
}

/* ---- condition ---- */

/* The condition and the counters it guards, in one segment: a waiter bumps `waiting` and waits;
 * once woken it bumps `woken`, all under the condition's lock. */
typedef struct cond_shared {
  long woken;
  long bad;
} cond_shared;

static void cond_waiter(kiln_pcond *c, cond_shared *cs) {
  KT_CODE(kiln_pcond_acquire(c, -1), KILN_OK);
  int rc = kiln_pcond_wait(c, -1);
  if (rc != 0) cs->bad++;
  cs->woken++;
  KT_CODE(kiln_pcond_release(c), KILN_OK);
}

static void open_cond(const char *name, kiln_shm **s, kiln_pcond **c, cond_shared **cs) {
  KT_CODE(kiln_shm_attach(name, s), KILN_OK);
  KT_CODE(kiln_pcond_at(kiln_shm_data(*s), c), KILN_OK);
  *cs = (cond_shared *)((char *)kiln_shm_data(*s) + kiln_pcond_size());
}

static void child_cond(void *arg) {
  kiln_shm *s;
  kiln_pcond *c;
  cond_shared *cs;
  open_cond(arg, &s, &c, &cs);
  cond_waiter(c, cs);
  kiln_pcond_destroy(c);
  kiln_shm_close(s);
}

static const char *g_cond_name;
static void *thread_cond(void *arg) {
  (void)arg;
  child_cond((void *)g_cond_name);
  return NULL;
}

PT_FS_WRAP(fs_child_cond, child_cond)

static long woken_now(kiln_pcond *c, cond_shared *cs) {
  KT_CODE(kiln_pcond_acquire(c, -1), KILN_OK);
  long n = cs->woken;
  KT_CODE(kiln_pcond_release(c), KILN_OK);
  return n;
}

/* One cycle: 2 waiting processes (children of the fork server) and 2 waiting threads. */
static void cond_cycle(kiln_pcond *c, cond_shared *cs) {
  long w0 = woken_now(c, cs);
  kiln_process *pid[2];
  for (int i = 0; i < 2; i++) pid[i] = pt_fs_run(fs_child_cond, g_cond_name);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) KT_EQ(pthread_create(&th[i], NULL, thread_cond, NULL), 0);
  PT_UNTIL(kiln__pcond_waiting(c) == 4);
  KT_CODE(kiln_pcond_acquire(c, -1), KILN_OK);
  KT_CODE(kiln_pcond_notify(c, 1), KILN_OK);
  KT_EQ(kiln__pcond_waiting(c), 3);
  KT_EQ(cs->woken, w0); /* woken, but not past the lock the notifier holds */
  KT_CODE(kiln_pcond_release(c), KILN_OK);
  PT_UNTIL(woken_now(c, cs) == w0 + 1);
  KT_CODE(kiln_pcond_acquire(c, -1), KILN_OK);
  KT_CODE(kiln_pcond_notify(c, 2), KILN_OK);
  KT_EQ(kiln__pcond_waiting(c), 1);
  KT_CODE(kiln_pcond_release(c), KILN_OK);
  PT_UNTIL(woken_now(c, cs) == w0 + 3);
  KT_EQ(kiln__pcond_waiting(c), 1);
  KT_CODE(kiln_pcond_acquire(c, -1), KILN_OK);
  KT_CODE(kiln_pcond_notify_all(c), KILN_OK);
  KT_EQ(kiln__pcond_waiting(c), 0);
  KT_CODE(kiln_pcond_release(c), KILN_OK);
  for (int i = 0; i < 2; i++) KT_EQ(pthread_join(th[i], NULL), 0);
  for (int i = 0; i < 2; i++) pt_fs_wait(pid[i]);
  KT_EQ(woken_now(c, cs), w0 + 4);
}

/* COND-05: with 2 waiting processes and 2 waiting threads, notify(1) wakes exactly one,
 * notify(2) exactly two more and notify_all the last; none continues before the notifier releases
 * the lock; twice over on the same condition. */
TEST(COND_05_notify_threads_and_processes) {
  const int cycles = 2;
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_shm *s;
  KT_CODE(kiln_shm_create(NULL, kiln_pcond_size() + sizeof(cond_shared), &s), KILN_OK);
  KT_CODE(kiln_pcond_init(kiln_shm_data(s), false), KILN_OK);
  g_cond_name = kiln_shm_name(s);
  kiln_pcond *c;
  KT_CODE(kiln_pcond_at(kiln_shm_data(s), &c), KILN_OK);
  cond_shared *cs = (cond_shared *)((char *)kiln_shm_data(s) + kiln_pcond_size());
  for (int i = 0; i < cycles; i++) cond_cycle(c, cs);
  KT_EQ(cs->bad, 0);
  kiln_pcond_destroy(c);
  KT_CODE(kiln_shm_unlink(s), KILN_OK);
  kiln_shm_close(s);
  pt_leaks_end(lk);
  pt_fs_stop();
}

static void child_cond_wait_forever(void *arg) {
  kiln_pcond *c;
  KT_CODE(kiln_pcond_attach(arg, &c), KILN_OK);
  KT_CODE(kiln_pcond_acquire(c, -1), KILN_OK);
  kiln_pcond_wait(c, -1); /* killed while waiting */
  _exit(3);
}

static kiln_pcond *g_c;
static atomic_int g_rc = -1000;
static void *thread_cond_wait(void *arg) {
  (void)arg;
  KT_CODE(kiln_pcond_acquire(g_c, -1), KILN_OK);
  atomic_store(&g_rc, kiln_pcond_wait(g_c, -1));
  KT_CODE(kiln_pcond_release(g_c), KILN_OK);
  return NULL;
}

/* A waiter process killed while waiting does not absorb a notify: notify(1) passes over it to
 * the live waiter behind it, and frees its slot. */
TEST(COND_dead_waiter_is_passed_over) {
  pt_leaks lk = pt_leaks_begin();
  KT_CODE(kiln_pcond_create(pt_name("cdead"), false, &g_c), KILN_OK);
  pid_t pid = pt_fork(child_cond_wait_forever, (void *)pt_name("cdead"));
  PT_UNTIL(kiln__pcond_waiting(g_c) == 1);
  pt_kill(pid);
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, thread_cond_wait, NULL), 0);
  PT_UNTIL(kiln__pcond_waiting(g_c) == 2);
  KT_CODE(kiln_pcond_acquire(g_c, -1), KILN_OK);
  KT_CODE(kiln_pcond_notify(g_c, 1), KILN_OK);
  KT_EQ(kiln__pcond_waiting(g_c), 0);
  KT_CODE(kiln_pcond_release(g_c), KILN_OK);
  KT_EQ(pthread_join(t, NULL), 0);
  KT_CODE(atomic_load(&g_rc), KILN_OK);
  kiln_pcond_destroy(g_c);
  pt_leaks_end(lk);
}

static bool never(void *arg) {
  (void)arg;
  return false;
}

/* COND-03/04/07: wait and notify need the lock (KILN_ESTATE); wait(0) and a timed wait give
 * KILN_ETIMEDOUT, and the rlock comes back at every level; wait_for gives up at its deadline. */
TEST(COND_wait_rules) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pcond *c;
  KT_CODE(kiln_pcond_create(NULL, false, &c), KILN_OK);
  KT_CODE(kiln_pcond_wait(c, 0), KILN_ESTATE);
  KT_CODE(kiln_pcond_notify(c, 1), KILN_ESTATE);
  KT_CODE(kiln_pcond_acquire(c, -1), KILN_OK);
  KT_CODE(kiln_pcond_acquire(c, -1), KILN_OK);
  KT_CODE(kiln_pcond_wait(c, 0), KILN_ETIMEDOUT);
  double t0 = kt_now();
  KT_CODE(kiln_pcond_wait(c, 0.05), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.05);
  t0 = kt_now();
  KT_CODE(kiln_pcond_wait_for(c, never, NULL, 0.05), KILN_ETIMEDOUT);
  KT_TIMED(kt_now() - t0, 0.05);
  KT_CODE(kiln_pcond_notify(c, 3), KILN_OK); /* no waiter: not stored */
  KT_CODE(kiln_pcond_release(c), KILN_OK);
  KT_CODE(kiln_pcond_release(c), KILN_OK);
  KT_CODE(kiln_pcond_release(c), KILN_ESTATE);
  kiln_pcond_destroy(c);
  pt_leaks_end(lk);
}

/* ---- event ---- */

static void child_event_wait(void *arg) {
  kiln_pevent *e;
  KT_CODE(kiln_pevent_attach(arg, &e), KILN_OK);
  KT_CODE(kiln_pevent_wait(e, -1), KILN_OK);
  kiln_pevent_destroy(e);
}

PT_FS_WRAP(fs_child_event_wait, child_event_wait)

/* EVT-02: set wakes every waiting process (children of the fork server), each wait returns 0,
 * later waits return at once; again after clear. */
TEST(EVT_02_set_wakes_every_process) {
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_pevent *e;
  KT_CODE(kiln_pevent_create(pt_name("evt"), &e), KILN_OK);
  KT_FALSE(kiln_pevent_is_set(e));
  for (int round = 0; round < 2; round++) {
    kiln_process *pid[3];
    for (int i = 0; i < 3; i++) pid[i] = pt_fs_run(fs_child_event_wait, pt_name("evt"));
    PT_UNTIL(kiln__pevent_sleepers(e) == 3);
    kiln_pevent_set(e);
    for (int i = 0; i < 3; i++) pt_fs_wait(pid[i]);
    KT_TRUE(kiln_pevent_is_set(e));
    KT_CODE(kiln_pevent_wait(e, 0), KILN_OK);
    kiln_pevent_clear(e);
    KT_FALSE(kiln_pevent_is_set(e));
    double t0 = kt_now();
    KT_CODE(kiln_pevent_wait(e, 0.05), KILN_ETIMEDOUT);
    KT_TIMED(kt_now() - t0, 0.05);
  }
  kiln_pevent_destroy(e);
  pt_leaks_end(lk);
  pt_fs_stop();
}

/* ---- barrier ---- */

enum { BAR_PROCS = 3, BAR_ROUNDS = 1000 };

typedef struct bar_shared {
  atomic_long arrived;   /* lock-free, so it works between processes */
  atomic_long index_sum; /* sum of the indices of every round */
  atomic_long zeros;
  atomic_long bad;
} bar_shared;

static void bar_party(const char *name) {
  kiln_shm *s;
  KT_CODE(kiln_shm_attach(name, &s), KILN_OK);
  kiln_pbarrier *b;
  KT_CODE(kiln_pbarrier_at(kiln_shm_data(s), &b), KILN_OK);
  bar_shared *bs = (bar_shared *)((char *)kiln_shm_data(s) + kiln_pbarrier_size());
  for (long k = 0; k < BAR_ROUNDS; k++) {
    atomic_fetch_add(&bs->arrived, 1);
    int idx = -1;
    if (kiln_pbarrier_wait(b, &idx) != 0) atomic_fetch_add(&bs->bad, 1);
    long a = atomic_load(&bs->arrived);
    /* lockstep: everyone arrived for round k, nobody can have arrived past round k + 1 */
    if (a < BAR_PROCS * (k + 1) || a > BAR_PROCS * (k + 2)) atomic_fetch_add(&bs->bad, 1);
    atomic_fetch_add(&bs->index_sum, idx);
    if (idx == 0) atomic_fetch_add(&bs->zeros, 1);
  }
  kiln_pbarrier_destroy(b);
  kiln_shm_close(s);
}

static void child_bar(void *arg) { bar_party(arg); }

PT_FS_WRAP(fs_child_bar, child_bar)

/* BAR-03/04: 1000 rounds in lockstep across 3 processes (this one and 2 children of the fork
 * server), distinct indices in every round. */
TEST(BAR_03_thousand_rounds_across_processes) {
  pt_fs_start();
  pt_leaks lk = pt_leaks_begin();
  kiln_shm *s;
  KT_CODE(kiln_shm_create(NULL, kiln_pbarrier_size() + sizeof(bar_shared), &s), KILN_OK);
  KT_CODE(kiln_pbarrier_init(kiln_shm_data(s), BAR_PROCS, -1), KILN_OK);
  bar_shared *bs = (bar_shared *)((char *)kiln_shm_data(s) + kiln_pbarrier_size());
  kiln_process *pid[BAR_PROCS - 1];
  for (int i = 0; i < BAR_PROCS - 1; i++) pid[i] = pt_fs_run(fs_child_bar, kiln_shm_name(s));
  bar_party(kiln_shm_name(s));
  for (int i = 0; i < BAR_PROCS - 1; i++) pt_fs_wait(pid[i]);
  KT_EQ(atomic_load(&bs->bad), 0);
  KT_EQ(atomic_load(&bs->zeros), BAR_ROUNDS);
  KT_EQ(atomic_load(&bs->index_sum), (long)BAR_ROUNDS * BAR_PROCS * (BAR_PROCS - 1) / 2);
  KT_CODE(kiln_shm_unlink(s), KILN_OK);
  kiln_shm_close(s);
  pt_leaks_end(lk);
  pt_fs_stop();
}

static void child_bar_timeout(void *arg) {
  kiln_pbarrier *b;
  KT_CODE(kiln_pbarrier_attach(arg, &b), KILN_OK);
  KT_CODE(kiln_pbarrier_wait(b, NULL), KILN_EBROKEN); /* the other party times out */
  kiln_pbarrier_destroy(b);
}

/* BAR-01/06/08/09/10: parties < 1 refused; a wait that times out breaks the barrier for the
 * waiting process too; later waits fail until reset; abort breaks it; one party never waits. */
TEST(BAR_broken_abort_reset) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pbarrier *b = (kiln_pbarrier *)1;
  KT_CODE(kiln_pbarrier_create(NULL, 0, -1, &b), KILN_EINVAL);
  KT_TRUE(b == NULL);
  KT_CODE(kiln_pbarrier_create(pt_name("bar"), 3, -1, &b), KILN_OK);
  KT_EQ(kiln_pbarrier_parties(b), 3);
  pid_t pid = pt_fork(child_bar_timeout, (void *)pt_name("bar"));
  PT_UNTIL(kiln_pbarrier_n_waiting(b) == 1);
  double t0 = kt_now();
  KT_CODE(kiln_pbarrier_wait_timeout(b, 0.05, NULL), KILN_EBROKEN);
  KT_TIMED(kt_now() - t0, 0.05);
  pt_wait(pid);
  KT_TRUE(kiln_pbarrier_broken(b));
  KT_CODE(kiln_pbarrier_wait(b, NULL), KILN_EBROKEN);
  kiln_pbarrier_reset(b);
  KT_FALSE(kiln_pbarrier_broken(b));
  KT_EQ(kiln_pbarrier_n_waiting(b), 0);
  kiln_pbarrier_abort(b);
  KT_CODE(kiln_pbarrier_wait_timeout(b, -1, NULL), KILN_EBROKEN);
  kiln_pbarrier_destroy(b);
  KT_CODE(kiln_pbarrier_create(NULL, 1, -1, &b), KILN_OK);
  int idx = -1;
  for (int i = 0; i < 3; i++) KT_CODE(kiln_pbarrier_wait(b, &idx), KILN_OK);
  KT_EQ(idx, 0);
  kiln_pbarrier_destroy(b);
  pt_leaks_end(lk);
}

static void child_bar_forever(void *arg) {
  kiln_pbarrier *b;
  KT_CODE(kiln_pbarrier_attach(arg, &b), KILN_OK);
  kiln_pbarrier_wait(b, NULL);
  KT_FAIL("the barrier let a party through that should wait until SIGKILL");
}

static void child_bar_broken(void *arg) {
  kiln_pbarrier *b;
  KT_CODE(kiln_pbarrier_attach(arg, &b), KILN_OK);
  KT_CODE(kiln_pbarrier_wait(b, NULL), KILN_EBROKEN); /* no timeout: only the death breaks it */
  kiln_pbarrier_destroy(b);
}

static void child_bar_ok(void *arg) {
  kiln_pbarrier *b;
  KT_CODE(kiln_pbarrier_attach(arg, &b), KILN_OK);
  KT_CODE(kiln_pbarrier_wait(b, NULL), KILN_OK);
  kiln_pbarrier_destroy(b);
}

/* A party SIGKILLed while it waits breaks the barrier for a party that waits with no timeout
 * (else it would wait forever); after a reset the barrier counts only live parties: a full round
 * of three passes. */
TEST(BAR_a_party_killed_in_the_wait_breaks_the_barrier) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pbarrier *b;
  KT_CODE(kiln_pbarrier_create(pt_name("bar"), 3, -1, &b), KILN_OK);
  pid_t dead = pt_fork(child_bar_forever, (void *)pt_name("bar"));
  PT_UNTIL(kiln_pbarrier_n_waiting(b) == 1);
  pt_kill(dead);
  pt_wait(pt_fork(child_bar_broken, (void *)pt_name("bar")));
  KT_TRUE(kiln_pbarrier_broken(b));
  KT_EQ(kiln_pbarrier_n_waiting(b), 0);
  kiln_pbarrier_reset(b);
  pid_t p1 = pt_fork(child_bar_ok, (void *)pt_name("bar"));
  pid_t p2 = pt_fork(child_bar_ok, (void *)pt_name("bar"));
  KT_CODE(kiln_pbarrier_wait(b, NULL), KILN_OK);
  pt_wait(p1);
  pt_wait(p2);
  kiln_pbarrier_destroy(b);
  pt_leaks_end(lk);
}

/* A party killed in the wait just before the last one arrives counts as arrived (the round
 * passes), and the round's drain does not wait for it to leave: the next round passes too. */
TEST(BAR_a_round_with_a_party_killed_inside_drains) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pbarrier *b;
  KT_CODE(kiln_pbarrier_create(pt_name("bar"), 2, -1, &b), KILN_OK);
  pid_t dead = pt_fork(child_bar_forever, (void *)pt_name("bar"));
  PT_UNTIL(kiln_pbarrier_n_waiting(b) == 1);
  pt_kill(dead);
  int idx = -1;
  KT_CODE(kiln_pbarrier_wait(b, &idx), KILN_OK);
  KT_EQ(idx, 1);
  pid_t next = pt_fork(child_bar_ok, (void *)pt_name("bar"));
  KT_CODE(kiln_pbarrier_wait(b, NULL), KILN_OK);
  pt_wait(next);
  KT_FALSE(kiln_pbarrier_broken(b));
  kiln_pbarrier_destroy(b);
  pt_leaks_end(lk);
}

/* ---- attaching a truncated segment ---- */

/* Cuts the segment of name down to size bytes, as a process that resized it would. */
static void truncate_segment(const char *name, off_t size) {
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/kiln-%s", name);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  KT_TRUE(fd >= 0);
  KT_EQ(ftruncate(fd, size), 0);
  close(fd);
}

/* A segment that starts with the right header but is shorter than the object is refused with
 * KILN_EINVAL, never mapped and used past its end (a condition is more than a page: touching its
 * last waiter slots would be a SIGBUS). */
TEST(attach_truncated_segment) {
  pt_leaks lk = pt_leaks_begin();
  kiln_pcond *c, *c2 = (kiln_pcond *)1;
  KT_CODE(kiln_pcond_create(pt_name("cut"), false, &c), KILN_OK);
  KT_TRUE(kiln_pcond_size() > 4096);
  truncate_segment(pt_name("cut"), 4096);
  KT_CODE(kiln_pcond_attach(pt_name("cut"), &c2), KILN_EINVAL);
  KT_TRUE(c2 == NULL);
  kiln_pcond_destroy(c);
  kiln_plock *l, *l2 = (kiln_plock *)1;
  KT_CODE(kiln_plock_create(pt_name("cutl"), &l), KILN_OK);
  truncate_segment(pt_name("cutl"), 8);
  KT_CODE(kiln_plock_attach(pt_name("cutl"), &l2), KILN_EINVAL);
  KT_TRUE(l2 == NULL);
  kiln_plock_destroy(l);
  pt_leaks_end(lk);
}

/* ---- telling a live holder from a dead one ---- */

typedef struct live_holder {
  kiln_plock *l; /* inherited by the plain fork */
  pt_pipe held, go;
} live_holder;

/* Takes the lock while this process cannot open another descriptor (so not /proc either), then
 * holds it until told to go on. */
static void child_hold_without_fds(void *arg) {
  live_holder *h = arg;
  struct rlimit r;
  KT_EQ(getrlimit(RLIMIT_NOFILE, &r), 0);
  r.rlim_cur = 3; /* below every descriptor but stdio: the next open fails with EMFILE */
  KT_EQ(setrlimit(RLIMIT_NOFILE, &r), 0);
  KT_CODE(kiln_plock_acquire(h->l, -1), KILN_OK);
  pt_signal(h->held);
  pt_await(h->go);
  KT_CODE(kiln_plock_release(h->l), KILN_OK);
}

/* A holder that could not read its own start time when it took the lock (out of descriptors) is
 * alive: the lock stays its own, others time out instead of taking it over as from a dead one. */
TEST(LOCK_live_holder_out_of_descriptors_is_not_dead) {
  pt_leaks lk = pt_leaks_begin();
  live_holder h = {NULL, pt_pipe_new(), pt_pipe_new()};
  KT_CODE(kiln_plock_create(pt_name("nofd"), &h.l), KILN_OK);
  pid_t pid = pt_fork(child_hold_without_fds, &h);
  pt_await(h.held);
  KT_CODE(kiln_plock_acquire(h.l, 0), KILN_ETIMEDOUT);
  KT_CODE(kiln_plock_acquire(h.l, 0.05), KILN_ETIMEDOUT);
  pt_signal(h.go);
  pt_wait(pid);
  KT_CODE(kiln_plock_acquire(h.l, 0), KILN_OK);
  KT_CODE(kiln_plock_release(h.l), KILN_OK);
  pt_pipe_close(h.held);
  pt_pipe_close(h.go);
  kiln_plock_destroy(h.l);
  pt_leaks_end(lk);
}

static void *thread_hold(void *arg) {
  live_holder *h = arg;
  KT_CODE(kiln_plock_acquire(h->l, -1), KILN_OK);
  pt_signal(h->held);
  pt_await(h->go);
  KT_CODE(kiln_plock_release(h->l), KILN_OK);
  _exit(0); /* as pt_fork's children end: no exit handlers (LSan would see the parent's handles) */
}

/* A thread takes the lock and the main thread ends with pthread_exit: the process lives on. */
static void child_hold_after_main_exits(void *arg) {
  pthread_t t;
  KT_EQ(pthread_create(&t, NULL, thread_hold, arg), 0);
  pthread_exit(NULL);
}

static char proc_state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  KT_TRUE(f != NULL);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  KT_TRUE(p != NULL);
  return p[2];
}

/* A process whose main thread has ended shows as a zombie in /proc/PID/stat while its other
 * threads run: a lock one of them holds is not taken over as from a dead process. */
TEST(LOCK_live_holder_after_main_thread_exit_is_not_dead) {
  pt_leaks lk = pt_leaks_begin();
  live_holder h = {NULL, pt_pipe_new(), pt_pipe_new()};
  KT_CODE(kiln_plock_create(pt_name("mainexit"), &h.l), KILN_OK);
  pid_t pid = pt_fork(child_hold_after_main_exits, &h);
  pt_await(h.held);
  PT_UNTIL(proc_state(pid) == 'Z');
  KT_CODE(kiln_plock_acquire(h.l, 0), KILN_ETIMEDOUT);
  pt_signal(h.go);
  pt_wait(pid);
  KT_CODE(kiln_plock_acquire(h.l, 0), KILN_OK);
  KT_CODE(kiln_plock_release(h.l), KILN_OK);
  pt_pipe_close(h.held);
  pt_pipe_close(h.go);
  kiln_plock_destroy(h.l);
  pt_leaks_end(lk);
}

/* A holder record with this process's pid but another start time is a process that had this pid
 * before and died: it is neither this process (no re-entry of an rlock) nor alive. */
TEST(RLOCK_holder_with_reused_pid_is_dead) {
  for (int recursive = 0; recursive < 2; recursive++) {
    kiln__mon m;
    KT_CODE(kiln__mon_init(&m), KILN_OK);
    kiln__plk l = {.count = 2, .recursive = (uint32_t)recursive};
    kiln__powner_self(&l.owner);
    KT_TRUE(l.owner.start != 0);
    l.owner.start -= 1; /* started earlier: the earlier owner of this pid */
    KT_FALSE(kiln__powner_is_me(&l.owner));
    KT_TRUE(kiln__powner_dead(&l.owner));
    kiln__mon_lock(&m);
    KT_CODE(kiln__plk_release(&m, &l), recursive ? KILN_ESTATE : KILN_OK);
    l.count = 2;
    KT_CODE(kiln__plk_acquire(&m, &l, 0.0), KILN_EOWNERDEAD); /* deadline passed: no wait */
    KT_EQ(l.count, 1);
    KT_TRUE(kiln__powner_is_me(&l.owner));
    KT_CODE(kiln__plk_release(&m, &l), KILN_OK);
    kiln__mon_unlock(&m);
    pthread_mutex_destroy(&m.mu);
  }
}

/* The same holder killed: the process is dead (a zombie, not reaped) and the lock passes on. */
TEST(LOCK_holder_thread_of_killed_process_is_dead) {
  pt_leaks lk = pt_leaks_begin();
  live_holder h = {NULL, pt_pipe_new(), pt_pipe_new()};
  KT_CODE(kiln_plock_create(pt_name("mainexitk"), &h.l), KILN_OK);
  pid_t pid = pt_fork(child_hold_after_main_exits, &h);
  pt_await(h.held);
  PT_UNTIL(proc_state(pid) == 'Z');
  KT_CODE(kiln_plock_acquire(h.l, 0), KILN_ETIMEDOUT);
  KT_EQ(kill(pid, SIGKILL), 0);
  siginfo_t si;
  KT_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0); /* dead, not reaped */
  KT_CODE(kiln_plock_acquire(h.l, 5), KILN_EOWNERDEAD);
  KT_CODE(kiln_plock_release(h.l), KILN_OK);
  KT_EQ(waitpid(pid, NULL, 0), pid);
  pt_pipe_close(h.held);
  pt_pipe_close(h.go);
  kiln_plock_destroy(h.l);
  pt_leaks_end(lk);
}
