/* png_check: checks a PNG that examples/embed wrote (tests/install/embed.sh).
 *
 *   png_check FILE WIDTH HEIGHT
 *
 * Reads the file's first 33 bytes and checks them byte by byte: the PNG signature, then an IHDR
 * chunk of length 13 with WIDTH and HEIGHT (big-endian), bit depth 8 and colour type 2 (RGB), as
 * kiln_image_write_png promises. Then walks every chunk and checks its CRC-32 (computed here, not
 * with the library's own CRC code; libpng rejects a file with a wrong one, stb_image does not look)
 * and that the last is IEND. Then decodes the whole file with an independent reader (stb_image)
 * and checks that it is not black: the
 * mean of all channels is at least 8 (of 255), so more than a few light-source pixels are lit.
 * Prints "ok FILE WxH mean M" or what is wrong, with both values, and exits 0 or 1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The signature and IHDR of the first 33 bytes of path; 0 or 1. */
static int check_header(const char *path, uint32_t w, uint32_t h) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  unsigned char b[33];
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "FAIL %s: cannot open\n", path);
    return 1;
  }
  size_t got = fread(b, 1, sizeof b, f);
  fclose(f);
  if (got != sizeof b) {
    fprintf(stderr, "FAIL %s: %zu bytes, a PNG has at least 33 before its image data\n", path, got);
    return 1;
  }
  if (memcmp(b, sig, sizeof sig) != 0) {
    fprintf(stderr, "FAIL %s: no PNG signature\n", path);
    return 1;
  }
  if (be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0) {
    fprintf(stderr, "FAIL %s: first chunk is not a 13-byte IHDR (length %u)\n", path, be32(b + 8));
    return 1;
  }
  if (be32(b + 16) != w || be32(b + 20) != h) {
    fprintf(stderr, "FAIL %s: IHDR says %ux%u, expected %ux%u\n", path, be32(b + 16), be32(b + 20),
            w, h);
    return 1;
  }
  if (b[24] != 8 || b[25] != 2) {
    fprintf(stderr, "FAIL %s: bit depth %u colour type %u, expected 8 and 2 (RGB)\n", path, b[24],
            b[25]);
    return 1;
  }
  return 0;
}

/* CRC-32 of the PNG spec (ISO 3309, reflected, polynomial 0xEDB88320), bit by bit. */
static uint32_t crc32_png(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

/* Every chunk after the signature: its length fits, its CRC is right, and the last is IEND. */
static int check_chunks(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "FAIL %s: cannot open\n", path);
    return 1;
  }
  static unsigned char b[1 << 24];
  size_t n = fread(b, 1, sizeof b, f);
  fclose(f);
  size_t i = 8;
  char last[5] = "";
  while (i + 12 <= n) {
    size_t len = be32(b + i);
    if (len > n - i - 12) break;
    uint32_t want = be32(b + i + 8 + len), got = crc32_png(b + i + 4, len + 4);
    memcpy(last, b + i + 4, 4);
    if (want != got) {
      fprintf(stderr, "FAIL %s: chunk %s at byte %zu: CRC in file %08x, computed %08x\n", path,
              last, i, want, got);
      return 1;
    }
    i += 12 + len;
  }
  if (i != n || strcmp(last, "IEND") != 0) {
    fprintf(stderr,
            "FAIL %s: chunks end at byte %zu of %zu, last chunk '%s', expected IEND at the "
            "end\n",
            path, i, n, last);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: png_check FILE WIDTH HEIGHT\n");
    return 2;
  }
  const char *path = argv[1];
  uint32_t w = (uint32_t)strtoul(argv[2], NULL, 10), h = (uint32_t)strtoul(argv[3], NULL, 10);
  if (check_header(path, w, h) != 0 || check_chunks(path) != 0) return 1;

  int dw, dh, channels;
  unsigned char *px = stbi_load(path, &dw, &dh, &channels, 3);
  if (!px) {
    fprintf(stderr, "FAIL %s: does not decode: %s\n", path, stbi_failure_reason());
    return 1;
  }
  size_t n = (size_t)dw * (size_t)dh * 3;
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += px[i];
  double mean = n ? sum / (double)n : 0.0;
  stbi_image_free(px);
  if ((uint32_t)dw != w || (uint32_t)dh != h) {
    fprintf(stderr, "FAIL %s: decodes as %dx%d, expected %ux%u\n", path, dw, dh, w, h);
    return 1;
  }
  if (mean < 8.0) {
    fprintf(stderr, "FAIL %s: black: mean channel value %.2f, expected >= 8\n", path, mean);
    return 1;
  }
  printf("ok %s %ux%u mean %.1f\n", path, w, h, mean);
  return 0;
}
