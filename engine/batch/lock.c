/* lock.c: the output folder's lock.
 *
 * Two runs on one folder would both render every frame (one then loses each rename race), so a run
 * holds an exclusive flock on <out_dir>/.kiln.lock from before its first frame until it returns.
 * flock, not fcntl: fcntl locks belong to the process, so two batches of one process would both
 * get one; flock locks belong to the open file, so they exclude each other too. The kernel drops
 * the lock when the file is closed or the process dies, so a killed run leaves no stale claim (its
 * file stays, unlocked, and the next run takes it). The holder removes the file before it closes
 * it, still holding the lock; a run that opened the file just before (and so locks a file no
 * longer there) sees that the name now leads elsewhere, and starts again on whatever file is at
 * the name. Unlocking first and then removing would remove a file another run may hold by then.
 * The holder writes "PID HOST" into it for the message of the runs it turns away.
 *
 * The processes of one sharded or claiming job share the folder by design (their frames are
 * disjoint, or claimed), so they take the lock shared: together they exclude a plain run, and a
 * plain run excludes them. A shared holder leaving removes the file only when it can take the lock
 * exclusively, that is when it was the last; otherwise it only closes it. Where the file
 * system has no locks (ENOLCK: NFS mounted nolock, without a lock manager), the run goes on
 * without one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch_internal.h"

static int lock_path(const char *out_dir, char *path, size_t cap) {
  return snprintf(path, cap, "%s/.kiln.lock", out_dir) < (int)cap ? 0 : KILN_EINVAL;
}

/* The message of a run turned away by the holder of fd's lock (KILN_EBUSY). */
static int busy(const char *dir, int fd, char *msg, size_t cap) {
  char held[96], host[40], other[40] = "";
  ssize_t n = pread(fd, held, sizeof held - 1, 0);
  held[n > 0 ? n : 0] = 0;
  close(fd);
  long pid = 0;
  kiln__tmp_host(host, sizeof host);
  if (sscanf(held, "%ld %39s", &pid, other) < 1 || pid <= 0)
    kiln__say(msg, cap, "another kiln render is writing to %s", dir);
  else if (other[0] && strcmp(other, host) != 0)
    kiln__say(msg, cap, "another kiln render (pid %ld on %s) is writing to %s", pid, other, dir);
  else kiln__say(msg, cap, "another kiln render (pid %ld) is writing to %s", pid, dir);
  return KILN_EBUSY;
}

/* fd (locked) is the file at path still: not removed or replaced since it was opened. */
static bool still_at(int fd, const char *path) {
  struct stat a, p;
  return fstat(fd, &a) == 0 && lstat(path, &p) == 0 && a.st_dev == p.st_dev && a.st_ino == p.st_ino;
}

int kiln__lock_out_dir(const char *out_dir, bool shared, int *fd_out, char *msg, size_t cap) {
  char path[PATH_MAX], held[96], host[40];
  *fd_out = -1;
  if (lock_path(out_dir, path, sizeof path)) {
    kiln__say(msg, cap, "output path too long: %s/.kiln.lock", out_dir);
    return KILN_EINVAL;
  }
  int fd;
  for (int tries = 0;; tries++) {
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
      kiln__say(msg, cap, "cannot open %s: %s", path, strerror(errno));
      return KILN_EIO;
    }
    if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
      int e = errno;
      /* a sharer may hold the lock exclusively for the moment it takes to leave (see above) */
      if (e == EWOULDBLOCK && shared && tries < 50) {
        close(fd);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
        continue;
      }
      if (e == EWOULDBLOCK) return busy(out_dir, fd, msg, cap);
      close(fd);
      if (e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS) return 0;
      kiln__say(msg, cap, "cannot lock %s: %s", path, strerror(e));
      return KILN_EIO;
    }
    if (still_at(fd, path)) break;
    close(fd); /* its holder removed it after we opened it: lock the file at the name now */
    if (tries == 100) {
      kiln__say(msg, cap, "cannot lock %s: it keeps being replaced", path);
      return KILN_EBUSY;
    }
  }
  kiln__tmp_host(host, sizeof host);
  int n = snprintf(held, sizeof held, "%ld %s\n", (long)getpid(), host);
  /* only for messages: a run that cannot write it still holds the lock */
  if (ftruncate(fd, 0) == 0 && pwrite(fd, held, (size_t)n, 0) != n) (void)!ftruncate(fd, 0);
  *fd_out = fd;
  return 0;
}

void kiln__unlock_out_dir(const char *out_dir, bool shared, int *fd) {
  char path[PATH_MAX];
  if (*fd < 0) return;
  /* removes the file, then closes it (which releases the lock): in this order, see above; and not
   * when someone else removed it meanwhile (the file at the name may be another run's now) */
  bool last = !shared || flock(*fd, LOCK_EX | LOCK_NB) == 0;
  if (last && !lock_path(out_dir, path, sizeof path) && still_at(*fd, path)) unlink(path);
  close(*fd);
  *fd = -1;
}
