/* kt_exr_write.h: small OpenEXR files for the tests and the fuzz seeds, written by tinyexr's own
 * writer (scanline or tiled, one level or mipmapped, HALF or FLOAT, any compression it writes).
 * Header-only, static; link tinyexr. */
#ifndef KILN_TESTS_KT_EXR_WRITE_H
#define KILN_TESTS_KT_EXR_WRITE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tinyexr.h>

typedef struct kt_exr_opts {
  int half;        /* store HALF (else FLOAT) */
  int compression; /* TINYEXR_COMPRESSIONTYPE_* */
  int tile;        /* 0: scanlines; else square tiles of this side */
  int mipmap;      /* tiled only: every mip level (box-filtered by halving, rounded down) */
} kt_exr_opts;

/* Level l of a w x h image of nch interleaved channels: each texel the mean of the 2x2 (or fewer)
 * texels of level l - 1 it covers, computed from level 0 for simplicity. */
static float *kt_exr_level(const float *px, int w, int h, int nch, int l, int *lw, int *lh) {
  int s = 1 << l;
  *lw = w >> l ? w >> l : 1, *lh = h >> l ? h >> l : 1;
  float *o = calloc((size_t)*lw * (size_t)*lh * (size_t)nch, sizeof *o);
  for (int y = 0; o && y < *lh; y++)
    for (int x = 0; x < *lw; x++)
      for (int c = 0; c < nch; c++) {
        double sum = 0;
        int n = 0;
        for (int yy = y * s; yy < (y + 1) * s && yy < h; yy++)
          for (int xx = x * s; xx < (x + 1) * s && xx < w; xx++, n++)
            sum += px[((size_t)yy * (size_t)w + (size_t)xx) * (size_t)nch + (size_t)c];
        o[((size_t)y * (size_t)*lw + (size_t)x) * (size_t)nch + (size_t)c] = (float)(sum / n);
      }
  return o;
}

/* The tiles of one level into img (planes of tile * tile floats, row stride tile). */
static int kt_exr_tiles(EXRImage *img, const float *px, int w, int h, int nch, int tile, int l) {
  int nx = (w + tile - 1) / tile, ny = (h + tile - 1) / tile;
  img->num_tiles = nx * ny, img->width = w, img->height = h, img->num_channels = nch;
  img->level_x = img->level_y = l;
  img->tiles = calloc((size_t)img->num_tiles, sizeof *img->tiles);
  if (!img->tiles) return -1;
  for (int t = 0; t < img->num_tiles; t++) {
    EXRTile *tl = &img->tiles[t];
    tl->offset_x = t % nx, tl->offset_y = t / nx, tl->level_x = tl->level_y = l;
    tl->width = w - tl->offset_x * tile < tile ? w - tl->offset_x * tile : tile;
    tl->height = h - tl->offset_y * tile < tile ? h - tl->offset_y * tile : tile;
    tl->images = calloc((size_t)nch, sizeof *tl->images);
    if (!tl->images) return -1;
    for (int c = 0; c < nch; c++) {
      float *p = calloc((size_t)tile * (size_t)tile, sizeof *p);
      if (!p) return -1;
      for (int y = 0; y < tl->height; y++)
        for (int x = 0; x < tl->width; x++) {
          size_t gx = (size_t)(tl->offset_x * tile + x), gy = (size_t)(tl->offset_y * tile + y);
          p[y * tile + x] = px[(gy * (size_t)w + gx) * (size_t)nch + (size_t)c];
        }
      tl->images[c] = (unsigned char *)p;
    }
  }
  return 0;
}

static void kt_exr_free_tiles(EXRImage *img) {
  for (EXRImage *l = img; l; l = l->next_level) {
    for (int t = 0; l->tiles && t < l->num_tiles; t++) {
      for (int c = 0; l->tiles[t].images && c < l->num_channels; c++) free(l->tiles[t].images[c]);
      free(l->tiles[t].images);
    }
    free(l->tiles);
  }
  for (EXRImage *l = img->next_level; l;) {
    EXRImage *next = l->next_level;
    free(l);
    l = next;
  }
}

/* The file's bytes (malloc'd, *len) for a w x h image of nch channels named names[] (in the order
 * written; EXR readers expect them sorted: "A", "B", "G", "R"), px interleaved floats. NULL with
 * tinyexr's message on stderr when it refuses. */
static unsigned char *kt_exr_bytes(int w, int h, int nch, const char *const *names,
                                   const float *px, kt_exr_opts o, size_t *len) {
  EXRHeader hd;
  InitEXRHeader(&hd);
  EXRImage img;
  InitEXRImage(&img);
  EXRChannelInfo ch[8];
  int in_t[8], out_t[8];
  memset(ch, 0, sizeof ch);
  for (int c = 0; c < nch; c++) {
    snprintf(ch[c].name, sizeof ch[c].name, "%s", names[c]);
    ch[c].x_sampling = ch[c].y_sampling = 1;
    in_t[c] = TINYEXR_PIXELTYPE_FLOAT;
    out_t[c] = o.half ? TINYEXR_PIXELTYPE_HALF : TINYEXR_PIXELTYPE_FLOAT;
  }
  hd.num_channels = nch, hd.channels = ch, hd.pixel_types = in_t, hd.requested_pixel_types = out_t;
  hd.compression_type = o.compression;
  hd.data_window.max_x = hd.display_window.max_x = w - 1; /* the tiled writer reads these */
  hd.data_window.max_y = hd.display_window.max_y = h - 1;
  float *planes[8] = {0};
  int failed = 0;
  if (!o.tile) {
    for (int c = 0; c < nch; c++) {
      planes[c] = malloc((size_t)w * (size_t)h * sizeof(float));
      if (!planes[c]) return NULL;
      for (size_t i = 0; i < (size_t)w * (size_t)h; i++) planes[c][i] = px[i * (size_t)nch + (size_t)c];
    }
    img.images = (unsigned char **)planes, img.width = w, img.height = h, img.num_channels = nch;
  } else {
    hd.tiled = 1, hd.tile_size_x = hd.tile_size_y = o.tile;
    hd.tile_level_mode = o.mipmap ? TINYEXR_TILE_MIPMAP_LEVELS : TINYEXR_TILE_ONE_LEVEL;
    hd.tile_rounding_mode = TINYEXR_TILE_ROUND_DOWN;
    int levels = 1;
    for (int m = w > h ? w : h; o.mipmap && m > 1; m /= 2) levels++;
    EXRImage *l = &img;
    for (int k = 0; k < levels && !failed; k++) {
      int lw, lh;
      float *lp = kt_exr_level(px, w, h, nch, k, &lw, &lh);
      failed = !lp || kt_exr_tiles(l, lp, lw, lh, nch, o.tile, k);
      free(lp);
      if (k + 1 < levels && !failed) {
        l->next_level = calloc(1, sizeof *l);
        if (!l->next_level) failed = 1;
        else InitEXRImage(l->next_level), l = l->next_level;
      }
    }
  }
  unsigned char *mem = NULL;
  const char *err = NULL;
  size_t n = failed ? 0 : SaveEXRImageToMemory(&img, &hd, &mem, &err);
  if (!failed && n == 0) {
    fprintf(stderr, "kt_exr_bytes: %s\n", err ? err : "?");
    FreeEXRErrorMessage(err);
  }
  if (o.tile) kt_exr_free_tiles(&img);
  for (int c = 0; c < nch; c++) free(planes[c]);
  *len = n;
  return n ? mem : NULL;
}

/* kt_exr_bytes written to path, the first keep bytes of it (or all when keep is 0). 0 or -1. */
static __attribute__((unused)) int kt_exr_write(const char *path, int w, int h, int nch,
                                               const char *const *names,
                        const float *px, kt_exr_opts o, size_t keep) {
  size_t n;
  unsigned char *b = kt_exr_bytes(w, h, nch, names, px, o, &n);
  if (!b) return -1;
  FILE *f = fopen(path, "wb");
  int rc = f && fwrite(b, 1, keep && keep < n ? keep : n, f) == (keep && keep < n ? keep : n) ? 0 : -1;
  if (f && fclose(f)) rc = -1;
  free(b);
  return rc;
}

#endif
