/* process_internal.h (internal): what the files of processes and the fork server share.
 *
 *   process.c          process handles: start (both methods), join, signals, wait; what every
 *                      child runs first (kiln__child_main)
 *   forkserver.c       the fork server: its protocol, starting and stopping it, and the program's
 *                      side of a request
 *   forkserver_main.c  the fork server process: its request loop and the reaping of its children
 *   fdpass.c           bytes with descriptors over a Unix socket
 *   spawner.c          the thread that forks daemon FORK children
 *   reaper.c           the thread that reaps children nobody will join */
#ifndef KILN_PROCESS_INTERNAL_H
#define KILN_PROCESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kiln/proc.h"
#include "kiln/sync.h"
#include "proc_internal.h"
/* the channel internals proc/ needs (kiln__channel_share, _adopt, _wait_extra): proc/ does not
 * otherwise see sync/'s private headers */
#include "../sync/sync_internal.h"

/* The most channels one child may be given (they cross to the fork server in one SCM_RIGHTS
 * message, whose kernel limit is 253 descriptors: each channel is a socket and a memfd, plus the
 * request's status socket). More is KILN_EINVAL. */
enum { KILN__MAX_CHANNELS = 64, KILN__MAX_REQUEST_FDS = 2 * KILN__MAX_CHANNELS + 1 };

/* ---- process.c ---- */

/* What a new child runs. Every pointer is borrowed and stays valid in the child (a copy of the
 * parent's memory). keep[0..nkeep) are the descriptors the child keeps besides 0, 1, 2 (its
 * channels'), sorted ascending. */
typedef struct kiln__child_spec {
  kiln_process_fn fn;
  const void *arg;
  size_t len;
  bool daemon;
  pid_t parent; /* the parent's pid before the fork, checked after PR_SET_PDEATHSIG */
  const char *name;
  kiln_channel *const *channels;
  size_t nchannels;
  const int *keep;
  size_t nkeep;
} kiln__child_spec;

/* Runs in a child just after fork: resets signal dispositions and the mask, arms the death signal
 * of a daemon, names the process, closes every descriptor except 0, 1, 2 and keep, forgets the
 * parent's fork server (its orphans: reaper.c's fork handler), runs fn and leaves with its
 * status via _exit after flushing stdout and stderr (exit() would run the parent's atexit
 * handlers). Never returns. Takes no lock before fn, so it is as safe after a fork of a threaded
 * program as fn itself is. */
_Noreturn void kiln__child_main(const kiln__child_spec *s);

/* Default dispositions for every signal and an empty mask (a new child, the fork server). */
void kiln__reset_signals(void);

/* Replaces any of the descriptors 0, 1, 2 that is close-on-exec with /dev/null. Standard streams
 * are not close-on-exec, and every descriptor kiln makes is: one sitting at 0..2 (possible only
 * in a program that had closed that stream) is kiln's own, and must not show through as a child's
 * standard stream. Async-signal-safe. */
void kiln__tame_std_streams(void);

/* Sorts fds[0..n) ascending (insertion sort: n <= KILN__MAX_REQUEST_FDS). */
void kiln__sort_fds(int *fds, size_t n);

/* pidfd_open / pidfd_send_signal through syscall(2). -1 and errno on failure. */
int kiln__pidfd_open(pid_t pid);
int kiln__pidfd_signal(int pidfd, int sig);

/* ---- forkserver.c, forkserver_main.c ---- */

/* A request to the fork server (see forkserver.c for the protocol). */
typedef struct kiln__fs_req {
  uint64_t fn; /* the address of the kiln_process_fn: the server is a fork of the program */
  uint64_t len;
  uint32_t daemon;
  uint32_t nchannels;
  char name[16];
  /* per channel, the flags of kiln__channel_fds, and KILN__CH_MEM when a memfd follows its
   * socket among the request's descriptors */
  uint8_t dirs[KILN__MAX_CHANNELS];
} kiln__fs_req;

/* The server process, forked by kiln_forkserver_start: serves requests on sock until the program
 * closes it and its last child has ended. parent: the program's pid. Never returns. */
_Noreturn void kiln__forkserver_main(int sock, pid_t parent);

/* Asks the fork server for a child. On success *pid, *pidfd (the child's pidfd, owned by the
 * caller) and *statfd (a socket on which the child's wait status arrives as 4 bytes when it has
 * ended, then end of stream; owned by the caller). KILN_ESTATE when the server is not running,
 * KILN_EINVAL for a closed channel, KILN_EIO, KILN_ENOMEM. Any thread (requests are serialised). */
int kiln__forkserver_spawn(const kiln_process_config *cfg, kiln_process_fn fn, const void *arg,
                           size_t len, pid_t *pid, int *pidfd, int *statfd);

/* In a new child: forgets the parent's fork server without touching its descriptor (the child
 * closes it with the others). The child is single-threaded there. */
void kiln__forkserver_forget(void);

/* ---- fdpass.c ---- */

/* Sends buf[0..len) on a Unix stream socket with fds[0..nfds) (nfds <= KILN__MAX_REQUEST_FDS)
 * attached to its first bytes; MSG_NOSIGNAL. 0 or errno. Any thread (one sender per socket). */
int kiln__send_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/* Receives exactly len bytes and the descriptors that came with them (up to cap into fds, the
 * others closed; their count in *nfds; owned by the caller even on failure). 0, -1 at a clean end
 * of stream, or an errno. */
int kiln__recv_fds(int sock, void *buf, size_t len, int *fds, size_t cap, size_t *nfds);

/* ---- spawner.c ---- */

/* Forks a daemon KILN_START_FORK child from kiln's spawner thread, which lives as long as the
 * program (so that the child's PR_SET_PDEATHSIG fires when the program ends, not when the calling
 * thread does); the child runs kiln__child_main(s). The child's pid, or -1 with *err set. s must
 * stay valid until this returns. Any thread (one request at a time). */
pid_t kiln__spawn_daemon(const kiln__child_spec *s, int *err);

/* ---- reaper.c ---- */

/* Hands over a child kiln will never join: pidfd (owned from now on) becomes readable when it
 * exits, and the reaper thread then reaps it (waitid on the pidfd). Any thread. */
void kiln__reap_later(pid_t pid, int pidfd);

/* Starts a detached thread running fn(NULL) with every signal blocked, so that no handler of the
 * program runs on kiln's own threads (the reaper, the spawner). true if it started. */
bool kiln__start_quiet_thread(void *(*fn)(void *));

#endif /* KILN_PROCESS_INTERNAL_H */
