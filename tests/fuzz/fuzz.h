/* fuzz.h: what the fuzz targets of tests/fuzz share.
 *
 * Each fuzz_<target>.c defines LLVMFuzzerTestOneInput only. It is linked either with libFuzzer
 * (clang, -DKILN_FUZZ=ON: `make fuzz`) or with replay.c, which calls it once per file of the
 * target's seeds and regressions folders (the CTest test fuzz.<target>, in every build).
 *
 * Parsers that take a path get the input written to a file in a temporary folder of this
 * process, created at the first call and removed at exit. The fixed files the inputs may name
 * (a scene for the jobs, meshes and images for the scenes) are in tests/fuzz/assets/
 * (KILN_FUZZ_ASSETS), copied into that folder on demand. */
#ifndef KILN_TESTS_FUZZ_H
#define KILN_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The process's temporary folder ("/tmp/kiln-fuzz-XXXXXX"); aborts if it cannot be made. */
const char *fz_tmpdir(void);

/* Writes data to <tmpdir>/name (replacing it) and returns its path (static storage, valid until
 * the next call). Aborts on failure: a fuzz target that cannot write its input tests nothing. */
const char *fz_write(const char *name, const uint8_t *data, size_t size);

/* Copies tests/fuzz/assets/name into the temporary folder (once per process). */
void fz_asset(const char *name);

/* The assets folder, for loaders that take a base folder. */
const char *fz_assets_dir(void);

/* With KILN_FUZZ_VERBOSE=1 in the environment, prints what one input gave ("ok" when rc is 0,
 * else msg), so that one can see which seeds get past the first error; silent otherwise. */
void fz_report(const char *what, int rc, const char *msg);

/* Reports a broken promise of a parser (a success with a result that its header rules out) and
 * aborts, so that libFuzzer records the input as a finding. */
void fz_fail(const char *fmt, ...);

/* data as a NUL-terminated string (malloc'd; free it). Aborts when out of memory. */
char *fz_cstr(const uint8_t *data, size_t size);

/* Writes data to <tmpdir>/name and loads it as the scene loader loads an image
 * (kiln__texture_load_ex; mode a kiln__tex_mode: FZ_TEX_SRGB, FZ_TEX_LINEAR, FZ_TEX_HDR; alpha:
 * asking for the alpha plane too); a success must give at least one texel, every value finite
 * and non-negative, and an alpha plane (where one came back) of the same size with values in
 * [0, 1], else fz_fail. name ends in the format's extension ("fuzz.png"). */
enum { FZ_TEX_SRGB = 0, FZ_TEX_LINEAR = 1, FZ_TEX_HDR = 2 };
void fz_texture(const char *name, int mode, bool alpha, const uint8_t *data, size_t size);

#endif
