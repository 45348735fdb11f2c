/* base.h (internal): the helpers every layer of kiln uses: the clock, files, strings and hashing.
 * Stateless apart from the temporary-name counter of kiln__write_atomic; no Vulkan, no pool.
 * Compiled into the runtime library, and (hidden) into the engine's shared library as well.
 *
 *   clock.c    the monotonic clock, deadlines from timeouts
 *   files.c    whole-file reads, mkdir -p, path joins, atomic writes and the sweep of their leftovers
 *   strings.c  formatted allocation, messages into caller buffers
 *   hash.c     FNV-1a */
#ifndef KILN_BASE_H
#define KILN_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* ---- clock.c ---- */

/* Seconds on CLOCK_MONOTONIC. Thread-safe. */
double kiln__now(void);
/* The absolute deadline (kiln__now() base) of a timeout in seconds: negative waits forever
 * (+inf). KILN_EINVAL for NaN. */
int kiln__deadline(double timeout, double *deadline);
/* A deadline as a timespec for pthread_cond_timedwait on CLOCK_MONOTONIC (clamped far ahead). */
void kiln__abs_timespec(double deadline, struct timespec *ts);

/* ---- files.c ---- */

/* Reads the whole regular file into a new NUL-terminated buffer (*buf, freed by the caller; *len
 * excludes the NUL). 0, KILN_EIO (msg says why: "cannot open: No such file or directory", "is a
 * directory, not a file"; a device, FIFO or socket is refused without blocking or reading it) or
 * KILN_ENOMEM (msg says so). */
int kiln__read_file(const char *path, char **buf, size_t *len, char *msg, size_t msgsz);
/* The folder part of path with its trailing '/' ("a/b.obj" -> "a/", "b.obj" -> ""); malloc'd,
 * NULL when out of memory. */
char *kiln__dirname(const char *path);
/* dir + '/' + name, or name alone when it is absolute or dir is NULL; malloc'd, NULL when out of
 * memory. */
char *kiln__path_join(const char *dir, const char *name);
/* mkdir -p with the given mode for the folders it creates; 0 or an errno value (ENOTDIR when
 * path exists and is not a folder). */
int kiln__make_dirs(const char *path, mode_t mode);

/* Writes data to path atomically: a temporary file in the same folder (".NAME.tmp-HOST-PID-N",
 * HOST from kiln__tmp_host), then rename(2), so path is either absent/old or complete, never
 * partial. With durable, fsyncs the file and its folder (survives power loss, not only crashes).
 * On failure the temporary is removed, path is untouched, and msg (if given) says what failed
 * ("cannot write out/a.png: No space left on device"). 0, KILN_EIO, or KILN_EINVAL for a path too
 * long to build the temporary's name. Thread-safe. */
int kiln__write_atomic(const char *path, const void *data, size_t len, bool durable, char *msg,
                       size_t msgcap);
/* The name of a new temporary beside path, as kiln__write_atomic makes them
 * (".NAME.tmp-HOST-PID-N", N from one counter of the process): 0, or KILN_EINVAL when it does not
 * fit cap. Thread-safe. */
int kiln__tmp_name(const char *path, char *tmp, size_t cap);
/* This machine's host name as it appears in temporary names: letters and digits, others as '_',
 * at most 32 characters (no '-', so the name parses from its end). */
void kiln__tmp_host(char *out, size_t cap);
/* Removes the temporary files a killed kiln left in dir: exactly ".NAME.tmp-HOST-PID-N" whose
 * HOST is this machine and whose PID is no longer running. Files of this process, of live
 * processes, and of other machines (a shared folder) are kept. */
void kiln__sweep_temporaries(const char *dir);

/* ---- strings.c ---- */

/* vasprintf into a new string (freed by the caller); NULL when out of memory. */
char *kiln__strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* snprintf into msg when msg is not NULL and cap is not 0. */
void kiln__say(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- hash.c ---- */

/* 64-bit FNV-1a of n bytes, continuing from h (start with KILN__FNV1A_SEED). */
#define KILN__FNV1A_SEED 0xcbf29ce484222325ull
uint64_t kiln__fnv1a(uint64_t h, const void *data, size_t n);

#endif
