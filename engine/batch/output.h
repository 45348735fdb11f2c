/* batch_out.h (internal): what the batch writes and where (batch_out.c), for batch.c. */
#ifndef KILN_ENGINE_BATCH_OUT_H
#define KILN_ENGINE_BATCH_OUT_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

#include "kiln/batch.h"

enum { KILN__NPASS = 6 };

/* "color", "depth", "normal", "albedo", "id", "instance", NULL: pass i is bit 1 << i. */
extern const char *const kiln__pass_names[KILN__NPASS + 1];

/* "png", "png16", "jpg", "exr", "npy", "hdr", "jpeg", NULL: the names a job or --format may give;
 * kiln__format_of(i) is the format of name i ("jpeg" is KILN_FORMAT_JPEG). */
extern const char *const kiln__format_names[];
kiln_format kiln__format_of(int i);

/* The file extension of pass pi in format f (colour in f's own, the others where they keep their
 * meaning: PNG, EXR or NPY). */
const char *kiln__pass_ext(kiln_format f, int pi);

/* Encodes pass pi of img in format f (colour scaled by 2^exposure and tone-mapped when it becomes
 * 8- or 16-bit) into *data and *len (free() them). Conversion time is added to *conv_s. 0, or a
 * KILN_E* code with msg saying why. Thread-safe. */
int kiln__encode_pass(kiln_format f, float exposure, bool filmic, const kiln_image *img, int pi,
                      void **data, size_t *len, double *conv_s, char *msg, size_t msgcap);

#endif
