/* test_submit.c: the renderer's API as a caller meets it: render.h's usage example, compiled and
 * run as the header prints it, and a submission that must not block when it cannot register its
 * completion callback. */
// kt: timeout 60
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kiln/sync.h"
#include "render_internal.h"
#include "render_test_util.h"

/* ---- render.h's example -------------------------------------------------------------------- */

/* The example's text, as code here and as a string to compare with the header's. */
#define EXAMPLE_BODY(...)                                                                       \
  static int example(kiln_scene *scene, kiln_gpu_device *dev, const char *path) { __VA_ARGS__ } \
  static const char example_text[] = #__VA_ARGS__;

EXAMPLE_BODY(kiln_renderer *r; int rc = kiln_renderer_create(scene, &dev, 1, NULL, &r);
             if (rc) return rc; kiln_frame_config fc; kiln_frame_config_default(r, &fc);
             fc.frame = 7; kiln_future * f; rc = kiln_renderer_submit(r, &fc, &f);
             if (rc == KILN_OK) {
               void *img;
               rc = kiln_future_result(f, -1, &img);
               if (rc == KILN_OK) rc = kiln_image_write_pfm(img, path);
               kiln_future_release(f);
             } kiln_renderer_destroy(r);
             return rc;)

/* s with every run of white space made one space, and none next to punctuation (the
 * preprocessor's stringizing keeps a space where the source had one). In place. */
static void squeeze(char *s) {
  char *o = s;
  for (const char *p = s; *p; p++) {
    if (isspace((unsigned char)*p)) {
      while (isspace((unsigned char)p[1])) p++;
      bool word_before = o > s && (isalnum((unsigned char)o[-1]) || o[-1] == '_');
      bool word_after = isalnum((unsigned char)p[1]) || p[1] == '_';
      if (word_before && word_after) *o++ = ' ';
      continue;
    }
    *o++ = *p;
  }
  *o = 0;
}

/* The example block of include/kiln/render.h: the lines indented "*   " after "Example:" up to
 * the next line that is not, without their comment prefix. malloc'd. */
static char *header_example(void) {
  char *path = repo_path("include/kiln/render.h");
  FILE *fp = fopen(path, "r");
  free(path);
  KT_TRUE(fp != NULL);
  char line[512], *out = calloc(1, 8192);
  bool in = false, seen = false;
  while (fgets(line, sizeof line, fp)) {
    if (!in && strstr(line, "Example:")) in = true;
    if (!in) continue;
    bool code = strncmp(line, " *   ", 5) == 0;
    if (code) seen = true, strncat(out, line + 5, 8191 - strlen(out));
    else if (seen) break;
  }
  fclose(fp);
  return out;
}

/* render.h's example compiles (it is EXAMPLE_BODY above, compared as text with the header's) and
 * writes a picture of a small scene. */
TEST(header_example) {
  char *head = header_example(), *mine = strdup(example_text);
  squeeze(head), squeeze(mine);
  if (strcmp(head, mine) != 0)
    KT_FAIL("render.h's example differs from the test's:\n%s\n%s", head, mine);
  free(head), free(mine);

  kiln__scene s = base_scene();
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  add_sphere(&s, 0, 0, 0, 1, 0, 1);
  s.settings.width = s.settings.height = 8, s.settings.spp = 1;
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_scene *scene = kiln__scene_wrap(&s);
  KT_TRUE(scene != NULL);
  char path[] = "/tmp/kiln_example_XXXXXX";
  int fd = mkstemp(path);
  KT_TRUE(fd >= 0);
  close(fd);
  KT_CODE(example(scene, dev, path), KILN_OK);
  FILE *fp = fopen(path, "rb");
  char head3[3] = {0};
  KT_TRUE(fp && fread(head3, 1, 3, fp) == 3);
  fclose(fp);
  KT_TRUE(memcmp(head3, "PF\n", 3) == 0);
  remove(path);
  kiln_scene_destroy(scene);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* ---- submission never blocks ---------------------------------------------------------------- */

typedef struct hold {
  kiln_event *entered, *release;
} hold;

/* A done-callback that keeps the device's completion thread until the test lets it go. */
static void hold_completions(kiln_future *f, void *arg) {
  (void)f;
  hold *h = arg;
  kiln_event_set(h->entered);
  kiln_event_wait(h->release, -1);
}

/* With the device's completion thread held (so that no GPU job of the device can complete) and
 * kiln_future_on_done failing, kiln_renderer_submit returns KILN_ENOMEM at once, and *out NULL:
 * it used to wait there for the frame's job, here for ever. Once the thread goes on, frames
 * render again, and destroy frees the failed frame's buffers after its job (ASan: no leak). */
TEST(submit_never_blocks) {
  kiln__scene s = base_scene();
  add_material(&s, (kiln__material){.type = KILN__MAT_DIFFUSE, .albedo = {0.5f, 0.5f, 0.5f}});
  add_sphere(&s, 0, 0, 0, 1, 0, 1);
  s.settings.width = s.settings.height = 8, s.settings.spp = 1;
  ctx c = open_ctx(&s, NULL);
  hold h;
  KT_CODE(kiln_event_create(&h.entered), KILN_OK);
  KT_CODE(kiln_event_create(&h.release), KILN_OK);
  /* A job held back by a promise, so that the callback is added before it can complete. */
  kiln_future *gate, *held;
  KT_CODE(kiln_promise_create(&gate), KILN_OK);
  kiln_gpu_buffer *buf;
  KT_CODE(kiln_gpu_buffer_create(c.dev, 16, &buf), KILN_OK);
  static const uint8_t zeros[16];
  KT_CODE(kiln_gpu_upload(buf, 0, zeros, 16, &gate, 1, &held), KILN_OK);
  KT_CODE(kiln_future_on_done(held, hold_completions, &h), KILN_OK);
  KT_CODE(kiln_promise_resolve(gate, NULL), KILN_OK);
  KT_CODE(kiln_event_wait(h.entered, -1), KILN_OK);

  kiln_frame_config fc;
  kiln_frame_config_default(c.r, &fc);
  kiln__renderer_fail_on_done(c.r, 1);
  kiln_future *f = gate; /* not NULL: the call must clear it */
  KT_CODE(kiln_renderer_submit(c.r, &fc, &f), KILN_ENOMEM);
  KT_PTR_EQ(f, NULL);

  kiln_event_set(h.release);
  const kiln_image *img = render(&c, &fc, &f);
  KT_TRUE(img != NULL);
  kiln_future_release(f);
  KT_CODE(kiln_future_result(held, -1, NULL), KILN_OK);
  kiln_future_release(held);
  kiln_future_release(gate);
  kiln_gpu_buffer_destroy(buf);
  close_ctx(&c);
  kiln_event_destroy(h.entered);
  kiln_event_destroy(h.release);
}
