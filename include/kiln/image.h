/* kiln/image.h: rendered images: linear RGB float colour and the passes (AOVs) of a frame, and
 * writers for them.
 *
 * A kiln_image is immutable once made, so any number of threads may read it. Rows run top to
 * bottom, pixel (x, y) at index y * width + x. Images made by the renderer are owned by the
 * frame's future (kiln/render.h): valid while you hold a reference to it. */
#ifndef KILN_IMAGE_H
#define KILN_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_image kiln_image;

/* What an image is, and its planes: borrowed pointers into img, valid as long as img.
 * color:    3 floats per pixel, linear RGB radiance (the mean of the samples).
 * depth:    1 float per pixel, the distance along the camera's forward axis to the surface seen
 *           through the pixel centre; 0 where the centre ray escapes (background).
 * normal:   3 floats per pixel, the unit world-space shading normal there, as stored (not turned
 *           towards the camera): for a mesh with vertex normals their interpolation at the hit,
 *           else the winding's geometric normal; for spheres outwards; 0,0,0 for background.
 * albedo:   3 floats per pixel, the material's albedo there: its constant albedo times its
 *           texture (linear, bilinearly filtered at the hit's uv) when it has one; 0 for
 *           background.
 * object_id, instance_id: 1 uint32 per pixel, the scene's 1-based ids; 0 for background.
 * uv:       2 floats per pixel, the texture coordinates there (u, v: interpolated from the mesh's
 *           vertex uv, the primitive's own for quads, boxes and spheres; 0, 0 for a mesh without
 *           uv and for background; tell background by object_id 0).
 * A plane the frame did not compute (kiln_frame_config.planes, kiln/render.h) is NULL. */
typedef struct kiln_image_info {
  int32_t width, height;
  uint32_t spp; /* samples per pixel the colour averages */
  const float *color, *depth, *normal, *albedo;
  const uint32_t *object_id, *instance_id;
  const float *uv; /* added after the others: appended so the struct's prefix keeps its layout */
} kiln_image_info;

/* Fills *info (all of it) from img. Any thread. */
KILN_API void kiln_image_get_info(const kiln_image *img, kiln_image_info *info);

/* Frees an image the caller owns (never one owned by a future). NULL is a no-op. */
KILN_API void kiln_image_destroy(kiln_image *img);

/* Writes the colour as a little-endian PFM (float RGB, "PF", scale -1, rows bottom to top as the
 * format says), atomically (temporary file, then rename). 0, KILN_EIO, KILN_ENOMEM. Any thread;
 * blocking file I/O (fine in a task). */
KILN_API int kiln_image_write_pfm(const kiln_image *img, const char *path);

/* Writes the colour as an 8-bit sRGB PNG: scaled by 2^exposure, tone-mapped (filmic) or clamped,
 * then the sRGB curve; atomically. 0, KILN_EIO, KILN_ENOMEM. Any thread; blocking file I/O. */
KILN_API int kiln_image_write_png(const kiln_image *img, const char *path, float exposure,
                                  bool filmic);

#ifdef __cplusplus
}
#endif
#endif /* KILN_IMAGE_H */
