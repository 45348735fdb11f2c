/* kiln/error.h: the error codes every kiln call returns.
 *
 * Functions that can fail return an int: KILN_OK (0) or one of the negative codes below.
 * The table is one X-macro so that codes and their messages cannot drift apart. */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include <stddef.h>

#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define KILN_ERRNO_MAP(X)                                               \
  X(ETIMEDOUT, -1, "timed out")                                         \
  X(ECANCELLED, -2, "cancelled")                                        \
  X(EINVAL, -3, "invalid argument")                                     \
  X(ESTATE, -4, "wrong state or not the owner")                         \
  X(ESHUTDOWN, -5, "shut down: no new work is accepted")                \
  X(EBROKEN, -6, "broken (pool initializer failed, or barrier broken)") \
  X(EFULL, -7, "full")                                                  \
  X(EEMPTY, -8, "empty")                                                \
  X(EEOF, -9, "end of stream")                                          \
  X(ENOMEM, -10, "out of memory")                                       \
  X(EDEPENDENCY, -11, "a dependency failed or was cancelled")           \
  X(EIO, -12, "input/output error")                                     \
  X(EPARSE, -13, "parse error")                                         \
  X(EVULKAN, -14, "Vulkan error")                                       \
  X(EDEVICE_LOST, -15, "device lost")                                   \
  X(EUNSUPPORTED, -16, "unsupported")                                  \
  X(EBUSY, -17, "busy: in use by another run")                         \
  X(EKILLED, -18, "a process was killed by a signal")                  \
  X(EEXITED, -19, "a worker process exited while running a task")      \
  X(EOWNERDEAD, -20, "the previous owner died holding it")             \
  X(EEXIST, -21, "already exists")                                     \
  X(ENOENT, -22, "not found")                                          \
  X(EAUTH, -23, "authentication failed")

enum {
  KILN_OK = 0,
#define KILN__ERR_ENUM(name, value, msg) KILN_##name = (value),
  KILN_ERRNO_MAP(KILN__ERR_ENUM)
#undef KILN__ERR_ENUM
};

/* The message of a code; "unknown error" for a code that is not in the table.
 * The string is static: never free it. Thread-safe. */
KILN_API const char *kiln_strerror(int code);

/* The symbolic name of a code ("KILN_ETIMEDOUT"); "KILN_UNKNOWN" if not in the table. */
KILN_API const char *kiln_err_name(int code);

/* Where and why a call that reads a file failed: the one error-detail form of every call that
 * reports a located message (scene and job loading, frame scenes, batches, pass lists). Each such
 * call takes a `kiln_error_detail *err` that may be NULL; it fills it on failure and zeroes it on
 * success.
 *   code     the KILN_E* code the call returned (KILN_OK on success)
 *   file     the file the error is in: the scene or job file (or the name given for a text held in
 *            memory), a mesh, MTL, texture or map file the scene names, or a list file; "" when no
 *            file applies (e.g. an invalid argument)
 *   line     1-based line in file; 0 when no line applies (e.g. a file that cannot be opened)
 *   column   1-based column (in bytes) in file; 0 when unknown
 *   path     JSON path of the value at fault (`objects[3].material.roughness`), "" for the whole
 *            document (e.g. a syntax error) or when no JSON value is at fault; for errors inside a
 *            mesh file, the path of its "file" (a glTF's: its "file", and the path inside the
 *            glTF leads the message); for a glTF loaded as the scene, the path inside it
 *   message  what is wrong, in words */
typedef struct kiln_error_detail {
  int code;
  char file[512];
  int line, column;
  char path[256];
  char message[512];
} kiln_error_detail;

/* Formats err as "file:line:column: path: message" into buf (always NUL-terminated when size > 0;
 * parts that do not apply are left out). Returns buf. err must not be NULL. Thread-safe. */
KILN_API char *kiln_error_detail_format(const kiln_error_detail *err, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* KILN_ERROR_H */
