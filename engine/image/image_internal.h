/* image_internal.h: engine/image's private header: the layout of kiln_image (image.c; filled by
 * engine/render/renderer.c) and the image encoders (encode.c; used by image.c, engine/batch and
 * tools/bench). */
#ifndef KILN_ENGINE_IMAGE_INTERNAL_H
#define KILN_ENGINE_IMAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base.h"
#include "kiln/image.h"

/* ---- kiln_image ---------------------------------------------------------------------------- */

struct kiln_image {
  int32_t width, height;
  uint32_t spp;
  float *color, *depth, *normal, *albedo; /* malloc'd, owned */
  uint32_t *object_id, *instance_id;
  float *uv;
};

/* A new image with every plane allocated (uninitialised); NULL on ENOMEM. */
kiln_image *kiln__image_new(int32_t w, int32_t h);

/* The same with the colour and the planes in planes (kiln/render.h's KILN_PLANE_* bits; 0: all)
 * allocated, the others NULL. */
kiln_image *kiln__image_new_planes(int32_t w, int32_t h, unsigned planes);

/* ---- encoders ------------------------------------------------------------------------------ */

/* Encoders (encode.c): image encoders over caller-owned pixel buffers.
 *
 * Used by the image writers (image.h) and the batch pipeline. Every encoder is a pure function of
 * its input: it allocates the encoded bytes (*out, free() them) and touches no file, so any number
 * of threads may encode at once. Formats: PNG 8/16-bit (libdeflate: stb's PNG encoder is ~10x
 * slower and ~30% larger), JPEG and Radiance HDR (stb_image_write), OpenEXR (tinyexr), NPY
 * (NumPy's format: what ML code loads with numpy.load). */
typedef enum { KILN__PIX_U8, KILN__PIX_U16, KILN__PIX_U32, KILN__PIX_F32 } kiln__pixel_type;

/* A w x h raster of `channels` interleaved values of `type`, rows top to bottom, row r starting
 * at (const char *)data + r * stride (stride 0: packed). Native byte order. */
typedef struct kiln__raster {
  int32_t width, height, channels;
  kiln__pixel_type type;
  const void *data;
  size_t stride;
} kiln__raster;

/* PNG of a U8 or U16 raster with 1-4 channels (gray, gray+alpha, RGB, RGBA). level: libdeflate's
 * 1 (fastest) .. 12; 0 means the default (6). KILN_EINVAL for other inputs, KILN_ENOMEM. Rows
 * filtered by libpng's heuristic at every level. Each calling thread keeps a compressor and
 * its two filter buffers (up to 4 MiB each) between calls, freed when the thread exits; they
 * never change the bytes of an image. */
int kiln__encode_png(const kiln__raster *r, int level, void **out, size_t *len);

/* JPEG of a U8 raster with 1 or 3 channels; quality 1..100. */
int kiln__encode_jpeg(const kiln__raster *r, int quality, void **out, size_t *len);

/* Radiance .hdr (RGBE) of an F32 raster with 3 channels. */
int kiln__encode_hdr(const kiln__raster *r, void **out, size_t *len);

/* OpenEXR of an F32 raster with 1-4 channels (Y, YA, RGB, RGBA), stored as 32-bit float with ZIP
 * compression. */
int kiln__encode_exr(const kiln__raster *r, void **out, size_t *len);

/* One channel of an EXR written by kiln__encode_exr_channels: the value of pixel i (rows top to
 * bottom) is ((const float or uint32_t *)data)[i * step]. */
typedef struct kiln__exr_channel {
  const char *name;
  bool uint;        /* uint32 values, stored as UINT (exact), else float */
  bool half;        /* a float channel stored as 16-bit half */
  const void *data; /* borrowed for the call */
  size_t step;      /* values from one pixel to the next (>= 1) */
} kiln__exr_channel;

/* OpenEXR (one part, scanlines) of w x h pixels and n channels, which must come sorted by name
 * (strcmp: EXR's order), with compression one of tinyexr's TINYEXR_COMPRESSIONTYPE_* (NONE, RLE,
 * ZIPS, ZIP, PIZ). KILN_EINVAL for other inputs, KILN_ENOMEM, KILN_EIO when tinyexr fails. */
int kiln__encode_exr_channels(int32_t w, int32_t h, const kiln__exr_channel *ch, int n,
                              int compression, void **out, size_t *len);

/* NPY (version 1.0) of any raster: dtype <u1, <u2, <u4 or <f4, shape (h, w) for one channel,
 * else (h, w, c), C order. */
int kiln__encode_npy(const kiln__raster *r, void **out, size_t *len);

/* Linear RGB floats (3 per pixel) to 8- or 16-bit sRGB (type U8 or U16 into out, 3 per pixel):
 * scaled by 2^exposure, then tone-mapped (filmic: an ACES fit) or clamped, then the sRGB transfer
 * curve, rounded. NaN becomes 0. 8 bits through a table (kiln__srgb8), 16 by the curve. */
void kiln__linear_to_srgb(const float *rgb, size_t npixels, float exposure, bool filmic,
                          kiln__pixel_type type, void *out);

/* The 8-bit sRGB code of v in [0, 1] (not NaN): kiln__srgb8 through the table that
 * kiln__linear_to_srgb uses for 8 bits, kiln__srgb8_exact by the curve (powf); the same for every
 * such float (tests/encode checks all of them). Any thread. */
uint8_t kiln__srgb8(float v);
uint8_t kiln__srgb8_exact(float v);

#endif
