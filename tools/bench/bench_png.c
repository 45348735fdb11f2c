/* kiln-bench-png: PNG encoding, kiln (libdeflate, engine/encode.c) against stb_image_write's
 * stbi_write_png_to_mem, on the same image in the same run: input MB/s and output size.
 *
 * The image is what a batch writes: 8-bit sRGB RGB at 256x256 and 1024x1024, a smooth shaded
 * scene with per-pixel Monte-Carlo noise (a seeded hash, so every run encodes the same bytes).
 * Each figure is the median of --reps timed encodes.
 *
 *   kiln-bench-png [--reps N] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stb_image_write.h>

#include "image_internal.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint32_t hash(uint32_t x) {
  x ^= x >> 16, x *= 0x7feb352dU, x ^= x >> 15, x *= 0x846ca68bU, x ^= x >> 16;
  return x;
}

static void make_image(uint8_t *px, int w, int h) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) {
        float u = (float)x / (float)w, v = (float)y / (float)h;
        float shade = 0.5f + 0.4f * sinf(6.0f * u + (float)c) * cosf(4.0f * v);
        float noise =
            ((float)(hash((uint32_t)(y * w + x) * 3u + (uint32_t)c) & 255u) - 127.5f) / 1600.0f;
        float l = fminf(fmaxf(shade + noise, 0.0f), 1.0f);
        px[(y * w + x) * 3 + c] = (uint8_t)(l * 255.0f + 0.5f);
      }
}

/* stb's public API writes through a callback; collect into one buffer (a memcpy per chunk). */
typedef struct sink {
  unsigned char *p;
  size_t len, cap;
} sink;
static void sink_put(void *ctx, void *data, int n) {
  sink *s = ctx;
  if (s->len + (size_t)n > s->cap) {
    s->cap = (s->len + (size_t)n) * 2;
    s->p = realloc(s->p, s->cap);
    if (!s->p) abort();
  }
  memcpy(s->p + s->len, data, (size_t)n);
  s->len += (size_t)n;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int reps = 9;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--reps N]\n", argv[0]);
      return 2;
    }
  }
  if (reps < 1 || reps > 1000) reps = 9;
  printf("| image | encoder | MB/s (input) | size (KiB) | speed vs stb | size vs stb |\n");
  printf("|---|---|---:|---:|---:|---:|\n");
  int sizes[] = {256, 1024};
  for (int s = 0; s < 2; s++) {
    int w = sizes[s], h = sizes[s];
    uint8_t *px = malloc((size_t)w * h * 3);
    double *t = malloc(sizeof(double) * (size_t)reps);
    if (!px || !t) return 1;
    make_image(px, w, h);
    double mb = (double)w * h * 3 / 1e6;
    double stb_t = 0, stb_size = 0;
    for (int enc = 0; enc < 3; enc++) {
      size_t len = 0;
      for (int r = 0; r < reps; r++) {
        double t0 = now();
        void *out = NULL;
        if (enc == 0) {
          sink sk = {0};
          if (!stbi_write_png_to_func(sink_put, &sk, w, h, 3, px, w * 3)) return 1;
          out = sk.p;
          len = sk.len;
        } else {
          kiln__raster ras = {w, h, 3, KILN__PIX_U8, px, 0};
          if (kiln__encode_png(&ras, enc == 1 ? 1 : 6, &out, &len) != 0) return 1;
        }
        t[r] = now() - t0;
        if (!out) return 1;
        free(out);
      }
      qsort(t, (size_t)reps, sizeof *t, cmp);
      double med = t[reps / 2];
      if (enc == 0) stb_t = med, stb_size = (double)len;
      const char *name = enc == 0   ? "stb_image_write"
                         : enc == 1 ? "kiln, level 1"
                                    : "kiln, level 6";
      printf("| %dx%d | %s | %.1f | %.1f | %.2fx | %.2f |\n", w, h, name, mb / med,
             (double)len / 1024.0, stb_t / med, (double)len / stb_size);
    }
    free(px);
    free(t);
  }
  return 0;
}
