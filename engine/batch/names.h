/* outname.h (internal): output file names from templates, and contact sheets.
 *
 * Templates (docs/JOBS.md): `{frame}`, `{frame:05d}` (printf-style width with zero padding; any
 * width 1..12), `{name}` (the frame's output name), `{pass}` (color, depth, normal, albedo, id,
 * instance), `{ext}`; `{{` and `}}` are literal braces. Anything else in braces is an error, so a
 * typo cannot silently write every frame to the same file. */
#ifndef KILN_ENGINE_OUTNAME_H
#define KILN_ENGINE_OUTNAME_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef struct kiln__outname_vars {
  long frame;
  const char *name; /* NULL: "{name}" expands to the frame number, zero-padded to 5 digits */
  const char *pass;
  const char *ext;
} kiln__outname_vars;

/* Checks a template without expanding it. 0, or KILN_EPARSE with msg naming the column
 * ("template \"out/{frme}.png\", column 6: unknown field {frme}; fields: frame, name, pass, ext"). */
int kiln__outname_check(const char *tmpl, char *msg, size_t msgcap);

/* Expands tmpl into out[0..cap). 0, KILN_EPARSE (bad template, msg says why), or KILN_EINVAL when
 * the result does not fit. */
int kiln__outname_expand(const char *tmpl, const kiln__outname_vars *v, char *out, size_t cap,
                         char *msg, size_t msgcap);

/* A contact sheet: n images (8-bit RGB, packed, w x h each) scaled down by an integer box filter
 * to fit cells of at most thumb x thumb pixels, laid out `columns` per row (0: about square) on
 * a dark grey background with a 2-pixel gap. Allocates *out (3 bytes per pixel) and sets its
 * size. 0, KILN_EINVAL, KILN_ENOMEM. */
int kiln__contact_sheet(const uint8_t *const *images, size_t n, int w, int h, int thumb,
                        int columns, uint8_t **out, int *out_w, int *out_h);

/* Box-filters an 8-bit RGB image (packed, w x h) by an integer factor f >= 1 into out, which holds
 * max(w / f, 1) x max(h / f, 1) pixels (edge cells average the pixels they have). */
void kiln__box_downscale(const uint8_t *rgb, int w, int h, int f, uint8_t *out);

#endif
