/* dataset_test_util.h: what the tests of the dataset writers share (tests/dataset/test_writers.c on
 * hand-built frames, tests/cli/test_writers.c through the built kiln): reading their JSON, PNG and
 * COCO RLE output back. Include it after cli/cli_test_util.h (read_all, keep). */
#ifndef KILN_DATASET_TEST_UTIL_H
#define KILN_DATASET_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <spng.h>
#include <stdint.h>

#include "kt.h"

static inline cJSON *load_json(const char *path) {
  size_t n = 0;
  unsigned char *t = read_all(path, &n);
  if (!t) KT_FAIL("cannot read %s", path);
  cJSON *j = cJSON_Parse((const char *)t);
  if (!j) KT_FAIL("%s is not JSON: %s", path, t);
  return j;
}

static inline const cJSON *item(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v) KT_FAIL("no \"%s\" in %s", key, cJSON_PrintUnformatted(o));
  return v;
}

static inline double num(const cJSON *o, const char *key) {
  const cJSON *v = item(o, key);
  if (!cJSON_IsNumber(v)) KT_FAIL("\"%s\" is not a number", key);
  return v->valuedouble;
}

/* Element i of a JSON array of numbers. */
static inline double at(const cJSON *arr, int i) {
  const cJSON *v = cJSON_GetArrayItem(arr, i);
  if (!cJSON_IsNumber(v))
    KT_FAIL("element %d of %s is not a number", i, cJSON_PrintUnformatted(arr));
  return v->valuedouble;
}

/* A PNG's pixels (host-endian for 16 bits); the test fails unless it is w x h, of bits a sample and
 * channels 1 (grey) or 3 (RGB). */
static inline void *png_read(const char *path, int w, int h, int bits, int channels) {
  size_t n = 0;
  unsigned char *b = read_all(path, &n);
  if (!b) KT_FAIL("cannot read %s", path);
  spng_ctx *ctx = spng_ctx_new(0);
  struct spng_ihdr ih;
  size_t size = 0;
  KT_EQ(spng_set_png_buffer(ctx, b, n), 0);
  KT_EQ(spng_get_ihdr(ctx, &ih), 0);
  KT_EQ(ih.width, w);
  KT_EQ(ih.height, h);
  KT_EQ(ih.bit_depth, bits);
  KT_EQ(ih.color_type, channels == 1 ? SPNG_COLOR_TYPE_GRAYSCALE : SPNG_COLOR_TYPE_TRUECOLOR);
  KT_EQ(spng_decoded_image_size(ctx, SPNG_FMT_PNG, &size), 0);
  void *px = keep(malloc(size));
  KT_EQ(spng_decode_image(ctx, px, size, SPNG_FMT_PNG, 0), 0);
  spng_ctx_free(ctx);
  return px;
}

/* pycocotools' rleFrString (maskApi.c): the counts of an RLE string; at most cap of them. */
static inline size_t rle_decode(const char *s, uint32_t *cnts, size_t cap) {
  size_t m = 0, p = 0;
  while (s[p]) {
    long x = 0;
    int k = 0, more = 1;
    while (more) {
      long c = s[p] - 48;
      x |= (c & 0x1f) << 5 * k;
      more = (int)(c & 0x20);
      p++, k++;
      if (!more && (c & 0x10)) x |= (long)((unsigned long)-1 << 5 * k);
    }
    if (m > 2) x += (long)cnts[m - 2];
    if (m == cap) KT_FAIL("too many counts in \"%s\"", s);
    cnts[m++] = (uint32_t)x;
  }
  return m;
}

/* The mask (w x h, column-major as RLE, 0 or 1 a pixel) of a COCO RLE string; the test fails
 * unless its counts cover the image exactly. */
static inline void rle_mask(const char *s, int w, int h, uint8_t *mask) {
  size_t cap = (size_t)w * (size_t)h + 1, p = 0;
  uint32_t *cnts = malloc(cap * sizeof *cnts);
  if (!cnts) KT_FAIL("out of memory");
  size_t m = rle_decode(s, cnts, cap);
  for (size_t i = 0; i < m; i++)
    for (uint32_t k = 0; k < cnts[i]; k++) {
      if (p >= cap - 1) KT_FAIL("the counts of \"%s\" run past a %dx%d image", s, w, h);
      mask[p++] = (uint8_t)(i & 1);
    }
  KT_EQ(p, cap - 1);
  free(cnts);
}

#endif
