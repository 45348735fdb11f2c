/* image.c: kiln_image (kiln/image.h): allocation, kiln_image_get_info, and the PFM / PNG writers. */
#include "image_internal.h"

#include <stdlib.h>
#include <string.h>

void kiln_image_get_info(const kiln_image *img, kiln_image_info *info) {
  *info = (kiln_image_info){.width = img->width,
                            .height = img->height,
                            .spp = img->spp,
                            .color = img->color,
                            .depth = img->depth,
                            .normal = img->normal,
                            .albedo = img->albedo,
                            .object_id = img->object_id,
                            .instance_id = img->instance_id,
                            .uv = img->uv};
}

kiln_image *kiln__image_new(int32_t w, int32_t h) { return kiln__image_new_planes(w, h, 0); }

kiln_image *kiln__image_new_planes(int32_t w, int32_t h, unsigned planes) {
  enum { DEPTH = 2, NORMAL = 4, ALBEDO = 8, ID = 16, INSTANCE = 32, UV = 64 }; /* KILN_PLANE_* */
  if (!planes) planes = ~0u;
  kiln_image *img = calloc(1, sizeof *img);
  if (!img) return NULL;
  size_t n = (size_t)w * (size_t)h;
  img->width = w, img->height = h;
  bool fail = !(img->color = malloc(n * 3 * sizeof(float)));
  if (planes & DEPTH) fail |= !(img->depth = malloc(n * sizeof(float)));
  if (planes & NORMAL) fail |= !(img->normal = malloc(n * 3 * sizeof(float)));
  if (planes & ALBEDO) fail |= !(img->albedo = malloc(n * 3 * sizeof(float)));
  if (planes & ID) fail |= !(img->object_id = malloc(n * sizeof(uint32_t)));
  if (planes & INSTANCE) fail |= !(img->instance_id = malloc(n * sizeof(uint32_t)));
  if (planes & UV) fail |= !(img->uv = malloc(n * 2 * sizeof(float)));
  if (fail) {
    kiln_image_destroy(img);
    return NULL;
  }
  return img;
}

void kiln_image_destroy(kiln_image *img) {
  if (!img) return;
  free(img->color), free(img->depth), free(img->normal), free(img->albedo);
  free(img->object_id), free(img->instance_id), free(img->uv);
  free(img);
}

int kiln_image_write_pfm(const kiln_image *img, const char *path) {
  char head[64];
  int hl = snprintf(head, sizeof head, "PF\n%d %d\n-1.0\n", img->width, img->height);
  size_t row = (size_t)img->width * 3 * sizeof(float);
  size_t len = (size_t)hl + row * (size_t)img->height;
  char *buf = malloc(len);
  if (!buf) return KILN_ENOMEM;
  memcpy(buf, head, (size_t)hl);
  for (int32_t y = 0; y < img->height; y++) /* PFM rows run bottom to top */
    memcpy(buf + hl + row * (size_t)y, img->color + (size_t)(img->height - 1 - y) * img->width * 3,
           row);
  /* kiln's targets are little-endian; PFM's negative scale says so. */
  int rc = kiln__write_atomic(path, buf, len, false, NULL, 0);
  free(buf);
  return rc;
}

int kiln_image_write_png(const kiln_image *img, const char *path, float exposure, bool filmic) {
  size_t n = (size_t)img->width * (size_t)img->height;
  uint8_t *px = malloc(n * 3);
  if (!px) return KILN_ENOMEM;
  kiln__linear_to_srgb(img->color, n, exposure, filmic, KILN__PIX_U8, px);
  kiln__raster r = {img->width, img->height, 3, KILN__PIX_U8, px, 0};
  void *png;
  size_t len;
  int rc = kiln__encode_png(&r, 0, &png, &len);
  free(px);
  if (rc) return rc;
  rc = kiln__write_atomic(path, png, len, false, NULL, 0);
  free(png);
  return rc;
}
