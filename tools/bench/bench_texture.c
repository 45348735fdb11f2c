/* kiln-bench-texture: texture decoding, kiln's decoders (engine/scene/texture.c: libspng,
 * libjpeg-turbo, its own .hdr reader) against stb_image, which kiln used before, on the same
 * files in the same run.
 *
 * Both sides do the whole load as kiln__texture_load does it: read the file, decode, convert to
 * the floats kiln keeps (8-bit sRGB through the same 256-entry table). The images are 2048x2048
 * 8-bit RGB, a smooth shaded picture with per-pixel noise (seeded: every run decodes the same
 * bytes), written as a PNG by kiln's encoder (libdeflate, level 6) and as JPEGs by TurboJPEG at
 * quality 90 (4:2:0 and 4:4:4), and a 2048x1024 .hdr by stb_image_write (run-length encoded).
 * Each figure is the median of --reps loads, kiln and stb interleaved.
 *
 *   kiln-bench-texture [--reps N] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb_image.h>
#include <stb_image_write.h>
#include <turbojpeg.h>

#include "base.h"
#include "bench_clock.h"
#include "image_internal.h"
#include "scene_data.h"

static uint32_t hash(uint32_t x) {
  x ^= x >> 16, x *= 0x7feb352dU, x ^= x >> 15, x *= 0x846ca68bU, x ^= x >> 16;
  return x;
}

static float shade(int x, int y, int c, int w, int h) {
  float u = (float)x / (float)w, v = (float)y / (float)h;
  float s = 0.5f + 0.4f * sinf(6.0f * u + (float)c) * cosf(4.0f * v);
  float noise = ((float)(hash((uint32_t)(y * w + x) * 3u + (uint32_t)c) & 255u) - 127.5f) / 1600.0f;
  return fminf(fmaxf(s + noise, 0.0f), 1.0f);
}

static void write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

static float srgb_to_linear(unsigned char c) {
  float x = c / 255.0f;
  return x <= 0.04045f ? x / 12.92f : powf((x + 0.055f) / 1.055f, 2.4f);
}

/* The load as kiln did it with stb_image: whole file, decode, floats. */
static float *stb_load(const char *path, bool hdr, int *w, int *h) {
  char *buf, msg[256];
  size_t len;
  if (kiln__read_file(path, &buf, &len, msg, sizeof msg)) return NULL;
  int comp;
  float *f = NULL;
  if (hdr) {
    f = stbi_loadf_from_memory((const stbi_uc *)buf, (int)len, w, h, &comp, 3);
  } else {
    stbi_uc *c = stbi_load_from_memory((const stbi_uc *)buf, (int)len, w, h, &comp, 3);
    size_t n = c ? (size_t)*w * (size_t)*h * 3 : 0;
    if (c && (f = malloc(n * sizeof *f))) {
      float lut[256];
      for (int i = 0; i < 256; i++) lut[i] = srgb_to_linear((unsigned char)i);
      for (size_t i = 0; i < n; i++) f[i] = lut[c[i]];
    }
    stbi_image_free(c);
  }
  free(buf);
  return f;
}

int main(int argc, char **argv) {
  int reps = 9;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: kiln-bench-texture [--reps N]\n");
      return 2;
    }
  }
  if (reps < 1) reps = 1;
  enum { W = 2048, H = 2048 };
  uint8_t *px = malloc((size_t)W * H * 3);
  float *hdr = malloc((size_t)W * (H / 2) * 3 * sizeof *hdr);
  if (!px || !hdr) return 1;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++) {
        float l = shade(x, y, c, W, H);
        px[((size_t)y * W + x) * 3 + c] = (uint8_t)(l * 255.0f + 0.5f);
        if (y < H / 2) hdr[((size_t)y * W + x) * 3 + c] = 4.0f * l * l;
      }
  char dir[] = "/tmp/kiln-bench-texture-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  const char *names[4] = {"t.png", "t420.jpg", "t444.jpg", "t.hdr"};
  char paths[4][96];
  for (int i = 0; i < 4; i++) snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
  kiln__raster ras = {W, H, 3, KILN__PIX_U8, px, 0};
  void *png;
  size_t len;
  if (kiln__encode_png(&ras, 6, &png, &len)) return 1;
  write_file(paths[0], png, len);
  free(png);
  for (int k = 0; k < 2; k++) {
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long jl = 0;
    if (!tj || tjCompress2(tj, px, W, 0, H, TJPF_RGB, &jpg, &jl, k ? TJSAMP_444 : TJSAMP_420, 90,
                           TJFLAG_ACCURATEDCT))
      return 1;
    write_file(paths[1 + k], jpg, jl);
    tjFree(jpg);
    tjDestroy(tj);
  }
  if (!stbi_write_hdr(paths[3], W, H / 2, 3, hdr)) return 1;
  printf("| file | KiB | kiln ms | stb_image ms | kiln speed / stb |\n| --- | --- | --- | --- | --- |\n");
  double *tk = malloc(sizeof(double) * (size_t)reps), *ts = malloc(sizeof(double) * (size_t)reps);
  for (int i = 0; i < 4 && tk && ts; i++) {
    bool is_hdr = i == 3;
    for (int r = 0; r < reps; r++) {
      kiln__texture t;
      char msg[300];
      double t0 = now();
      if (kiln__texture_load(paths[i], is_hdr, &t, msg, sizeof msg)) {
        fprintf(stderr, "%s: %s\n", names[i], msg);
        return 1;
      }
      double t1 = now();
      int w, h;
      float *f = stb_load(paths[i], is_hdr, &w, &h);
      double t2 = now();
      if (!f || w != t.width || h != t.height) return 1;
      free(f), free(t.rgb);
      tk[r] = t1 - t0, ts[r] = t2 - t1;
    }
    qsort(tk, (size_t)reps, sizeof *tk, cmp_double);
    qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
    FILE *f = fopen(paths[i], "rb");
    long size = f && !fseek(f, 0, SEEK_END) ? ftell(f) : 0;
    if (f) fclose(f);
    double mk = tk[reps / 2], ms = ts[reps / 2];
    printf("| %s %dx%d | %ld | %.1f | %.1f | **%.2fx** |\n", names[i], W, is_hdr ? H / 2 : H,
           size / 1024, mk * 1e3, ms * 1e3, ms / mk);
  }
  for (int i = 0; i < 4; i++) unlink(paths[i]);
  rmdir(dir);
  free(tk), free(ts), free(px), free(hdr);
  return 0;
}
