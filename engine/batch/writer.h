/* writer.h: how the batch writes a frame's files (writer.c).
 *
 * Every file of a frame goes through the kiln_io engine at once: the temporaries
 * (".NAME.tmp-HOST-PID-N", as kiln__write_atomic names them) each created, written, fsynced
 * (durable) and closed by one op (kiln_io_create_file_async, which removes its temporary itself
 * when a step fails), all in flight together, and only when all of them are complete renamed into
 * place
 * one after the other. A frame whose write fails before the renames renames none of its files;
 * a rename that fails (rare: the name is a folder, say) leaves the files renamed before it in
 * place. Either way every temporary is removed and the frame fails, so a final name is either
 * absent, the old file, or the complete new one. The waits
 * are the scheduler's (kiln_io_result, kiln_future_result): in a pool fiber they suspend the fiber
 * and free the worker; in a plain task they wait there, running other queued tasks meanwhile.
 *
 * Read from the environment when a batch first runs (kiln__writer_config_env):
 *   KILN_BATCH_WRITES=sync|async     sync: the files one after the other through
 *                                    kiln__write_atomic, in the writing task, as before the
 *                                    engine (on a fast local disk about as fast; see
 *                                    docs/PERFORMANCE.md); async (the default): the engine;
 *                                    async-task: the engine, the frame's writer a plain task
 *                                    (for the benchmark that tells what the fiber adds)
 * Test hooks (tests and benchmarks only):
 *   KILN_TEST_WRITE_DELAY_US=N       every file write takes at least N microseconds more: slow
 *                                    shared storage. With the engine the writes of a frame are in
 *                                    flight together and the delay is a timer that holds no
 *                                    worker (as a write waiting on the network holds none of the
 *                                    caller's threads); sync sleeps the writing thread before each
 *                                    file (as a blocking write(2) on such storage would)
 *   KILN_TEST_WRITE_FAULT=K          the K-th file the writer writes (from 1, counted over the
 *                                    writer's life) fails after half its bytes reached the
 *                                    temporary: a disk that fills mid-write. Engine only
 *
 * Threads: kiln__writer_write may be called from any number of tasks and fibers at once;
 * open/close by one thread while no write runs. */
#ifndef KILN_BATCH_WRITER_H
#define KILN_BATCH_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/sched.h"

typedef struct kiln__writer kiln__writer;

typedef struct kiln__writer_config {
  bool sync;         /* write through kiln__write_atomic, one file after another */
  bool tasks;        /* the engine, but the batch runs its writers as plain tasks, not fibers */
  double delay_s;    /* added to every file write (test hook); 0: none */
  uint64_t fault_at; /* the file (from 1) whose write fails half way (test hook); 0: none */
} kiln__writer_config;

/* The defaults (the engine, no hooks) overridden by the variables above. KILN_EINVAL with msg for
 * a value that does not parse. */
int kiln__writer_config_env(kiln__writer_config *cfg, char *msg, size_t msgcap);

/* A writer: the kiln_io engine (unless cfg->sync) and the hooks. pool: where delay timers run as
 * fibers (may be NULL: then a delay sleeps the waiting thread). 0 and *out, or KILN_ENOMEM /
 * the engine's error with msg. */
int kiln__writer_open(const kiln__writer_config *cfg, kiln_pool *pool, kiln__writer **out,
                      char *msg, size_t msgcap);
/* Stops the engine and frees w; no write may be running. NULL is a no-op. */
void kiln__writer_close(kiln__writer *w);
/* Whether w waits through the engine and its callers should run as pool fibers (they gain: their
 * waits then free the worker). */
bool kiln__writer_async(const kiln__writer *w);

typedef struct kiln__wfile {
  const char *path; /* the final name; its folder exists */
  const void *data;
  size_t len;
} kiln__wfile;

enum { KILN__WRITER_MAX_FILES = 32 };

/* Writes files[0..n) (n <= KILN__WRITER_MAX_FILES) as described at the top (sync: one after the
 * other, stopping at the first failure). w NULL: as sync without hooks. 0, or KILN_EIO /
 * KILN_EINVAL / KILN_ENOMEM with msg naming the file ("cannot write out/a.png: ..."). */
int kiln__writer_write(kiln__writer *w, const kiln__wfile *files, int n, bool durable, char *msg,
                       size_t msgcap);

#endif
