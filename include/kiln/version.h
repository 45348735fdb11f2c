/* kiln/version.h: kiln's version, and KILN_API, the mark of every exported function.
 *
 * The numbers below are the one place the version is written: CMake reads them for the project,
 * the libraries' SONAMEs and the pkg-config files. KILN_VERSION_* is the version of the headers
 * a program was compiled with; kiln_version() that of the library it runs with. */
#ifndef KILN_VERSION_H
#define KILN_VERSION_H

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 2
#define KILN_VERSION_PATCH 0

#define KILN_VERSION_STRINGIFY_(x) #x
#define KILN_VERSION_STRINGIFY(x) KILN_VERSION_STRINGIFY_(x)
/* "0.2.0" */
#define KILN_VERSION_STRING                  \
  KILN_VERSION_STRINGIFY(KILN_VERSION_MAJOR) \
  "." KILN_VERSION_STRINGIFY(KILN_VERSION_MINOR) "." KILN_VERSION_STRINGIFY(KILN_VERSION_PATCH)
/* One number that orders versions: major * 10000 + minor * 100 + patch. */
#define KILN_VERSION_NUMBER \
  (KILN_VERSION_MAJOR * 10000 + KILN_VERSION_MINOR * 100 + KILN_VERSION_PATCH)

/* The libraries are built with -fvisibility=hidden: only functions marked KILN_API are exported. */
#if defined(__GNUC__) || defined(__clang__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library the program runs with, as KILN_VERSION_NUMBER; the string form
 * ("0.2.0") through *str when str is not NULL (static storage). Thread-safe. */
KILN_API int kiln_version(const char **str);

#ifdef __cplusplus
}
#endif

#endif
