/* kiln/error.h: the error codes every kiln call returns.
 *
 * Functions that can fail return an int: KILN_OK (0) or one of the negative codes below.
 * The table is one X-macro so that codes and their messages cannot drift apart. */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define KILN_ERRNO_MAP(X)                                                              \
  X(ETIMEDOUT, -1, "timed out")                                                        \
  X(ECANCELLED, -2, "cancelled")                                                       \
  X(EINVAL, -3, "invalid argument")                                                    \
  X(ESTATE, -4, "wrong state or not the owner")                                        \
  X(ESHUTDOWN, -5, "shut down: no new work is accepted")                               \
  X(EBROKEN, -6, "broken (pool initializer failed, or barrier broken)")                \
  X(EFULL, -7, "full")                                                                 \
  X(EEMPTY, -8, "empty")                                                               \
  X(EEOF, -9, "end of stream")                                                         \
  X(ENOMEM, -10, "out of memory")                                                      \
  X(EDEPENDENCY, -11, "a dependency failed or was cancelled")                          \
  X(EIO, -12, "input/output error")                                                    \
  X(EPARSE, -13, "parse error")                                                        \
  X(EVULKAN, -14, "Vulkan error")                                                      \
  X(EDEVICE_LOST, -15, "device lost")                                                  \
  X(EUNSUPPORTED, -16, "unsupported")

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

#ifdef __cplusplus
}
#endif
#endif /* KILN_ERROR_H */
