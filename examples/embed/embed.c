/* examples/embed/embed.c: rendering frames from your own program with the kiln library.
 *
 *   embed SCENE COUNT OUTDIR [--size N] [--spp N] [--bounces N] [--device SPEC]
 *   embed examples/cornell/scene.json 8 /tmp/frames --size 64 --spp 4
 *
 * Loads SCENE, opens one Vulkan device (a GPU, else Mesa's lavapipe on the CPU), submits COUNT
 * frames at once -- the camera orbits the scene's centre a little more each frame -- then takes
 * them in the order they finish and writes each as OUTDIR/frame_NNNN.png (OUTDIR must exist),
 * with the scene's exposure and tone mapping. Prints one line per image.
 *
 * The orbit below is examples/cornell's (the centre of the box, the scene camera's distance,
 * 0.2 degrees a frame): change ORBIT_* for another scene. Build it against an installed kiln
 * with pkg-config or CMake: see README.md in this folder. */
#include <kiln/render.h>
#include <kiln/scene.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frame 0 is the scene's camera, on the -z side looking along +z; later frames turn about +y. */
static const float ORBIT_CENTER[3] = {0.278f, 0.273f, 0.2796f}; /* the camera looks here */
static const float ORBIT_RADIUS = 1.0796f;                      /* distance in the x-z plane */
static const float ORBIT_DEG_PER_FRAME = 0.2f;
static const float ORBIT_VFOV_DEG = 39.30765f;

typedef struct options {
  const char *scene, *outdir, *device;
  int count, size, spp, bounces; /* size, spp, bounces: 0 / -1 keep the scene's */
} options;

static int usage(void) {
  fprintf(stderr, "usage: embed SCENE COUNT OUTDIR [--size N] [--spp N] [--bounces N] "
                  "[--device SPEC]\n");
  return 2;
}

/* Parses argv into *o; false on a malformed command line. */
static bool parse_args(int argc, char **argv, options *o) {
  const char *pos[3];
  int npos = 0;
  *o = (options){.device = "auto", .bounces = -1};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) {
      if (npos == 3) return false;
      pos[npos++] = a;
      continue;
    }
    if (i + 1 == argc) return false;
    const char *v = argv[++i];
    if (strcmp(a, "--size") == 0) o->size = atoi(v);
    else if (strcmp(a, "--spp") == 0) o->spp = atoi(v);
    else if (strcmp(a, "--bounces") == 0) o->bounces = atoi(v);
    else if (strcmp(a, "--device") == 0) o->device = v;
    else return false;
  }
  if (npos != 3) return false;
  o->scene = pos[0];
  o->count = atoi(pos[1]);
  o->outdir = pos[2];
  return o->count > 0 && o->size >= 0 && o->spp >= 0 && o->bounces >= -1;
}

/* The engine never prints: it hands its messages (which package is missing, which Vulkan call
 * failed) to this callback, from any thread. */
static void log_message(void *arg, kiln_gpu_log_level level, const char *msg) {
  (void)arg;
  fprintf(stderr, "kiln gpu (%d): %s\n", (int)level, msg);
}

/* Opens the first device that `spec` selects (kiln/gpu.h: "auto" prefers a discrete GPU). */
static int open_device(const char *spec, kiln_gpu **gpu, kiln_gpu_device **dev) {
  kiln_gpu_config gc;
  kiln_gpu_config_default(&gc);
  gc.log = log_message;
  gc.log_level = KILN_GPU_LOG_WARN;
  uint32_t index;
  size_t n;
  int rc = kiln_gpu_create(&gc, gpu);
  if (rc == 0) rc = kiln_gpu_select(*gpu, spec, &index, 1, &n);
  if (rc == 0) rc = kiln_gpu_device_open(*gpu, index, NULL, dev);
  kiln_gpu_device_info di;
  if (rc == 0) kiln_gpu_device_get_info(*dev, &di);
  if (rc == 0) printf("device: %s\n", di.name);
  return rc;
}

/* Frame i's camera: the orbit position, rotated about +y through ORBIT_CENTER. */
static kiln_camera orbit_camera(int i) {
  float a = (float)i * ORBIT_DEG_PER_FRAME * 3.14159265f / 180.0f;
  kiln_camera c = {.thin_lens = false, .up = {0, 1, 0}, .vfov_deg = ORBIT_VFOV_DEG};
  c.position[0] = ORBIT_CENTER[0] - ORBIT_RADIUS * sinf(a);
  c.position[1] = ORBIT_CENTER[1];
  c.position[2] = ORBIT_CENTER[2] - ORBIT_RADIUS * cosf(a);
  memcpy(c.look_at, ORBIT_CENTER, sizeof c.look_at);
  return c;
}

/* Submits o->count frames; they render concurrently, on the device's queues. */
static int submit_frames(kiln_renderer *r, const options *o, kiln_future **fs) {
  for (int i = 0; i < o->count; i++) {
    kiln_camera cam = orbit_camera(i);
    kiln_frame_config fc;
    kiln_frame_config_default(r, &fc);
    fc.camera = &cam; /* borrowed for the call only */
    fc.frame = (uint32_t)i;
    fc.width = fc.height = o->size;
    fc.spp = o->spp;
    fc.max_bounces = o->bounces;
    int rc = kiln_renderer_submit(r, &fc, &fs[i]);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Writes frame f (index i) as a PNG and prints one line. */
static int write_frame(kiln_future *f, int i, const options *o, const kiln_scene_info *info) {
  kiln_image *img;
  const char *msg = NULL;
  int rc = kiln_future_result(f, 0.0, (void **)&img); /* done: does not block */
  if (rc != 0) {
    kiln_future_error(f, 0.0, &msg);
    fprintf(stderr, "frame %d: %s%s%s\n", i, kiln_strerror(rc), msg ? ": " : "", msg ? msg : "");
    return rc;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/frame_%04d.png", o->outdir, i);
  rc = kiln_image_write_png(img, path, info->exposure, info->filmic);
  if (rc != 0) {
    fprintf(stderr, "%s: %s\n", path, kiln_strerror(rc));
    return rc;
  }
  kiln_image_info ii;
  kiln_image_get_info(img, &ii);
  printf("frame %d: %s %dx%d %u spp\n", i, path, (int)ii.width, (int)ii.height, ii.spp);
  return 0;
}

/* Writes the frames in the order they finish. */
static int collect_frames(kiln_future **fs, const options *o, const kiln_scene_info *info) {
  kiln_completion *c;
  int rc = kiln_as_completed(fs, (size_t)o->count, -1.0, &c);
  if (rc != 0) return rc;
  kiln_future *f;
  while (rc == 0 && (rc = kiln_completion_next(c, &f)) == 0) {
    int i = 0;
    while (fs[i] != f) i++; /* which frame this is */
    rc = write_frame(f, i, o, info);
    kiln_future_release(f);
  }
  kiln_completion_destroy(c);
  return rc == KILN_EEOF ? 0 : rc; /* KILN_EEOF: every frame was yielded */
}

/* Uploads the scene to dev, renders and writes every frame, and waits for all of them (also after
 * an error: the renderer may only be destroyed once no frame is in flight). */
static int render(const options *o, kiln_scene *scene, kiln_pool *pool, kiln_gpu_device *dev) {
  kiln_scene_info info;
  kiln_scene_get_info(scene, &info);
  kiln_renderer_config rcfg;
  kiln_renderer_config_default(&rcfg);
  rcfg.pool = pool; /* builds the BVH in parallel */
  kiln_renderer *r;
  int rc = kiln_renderer_create(scene, &dev, 1, &rcfg, &r);
  if (rc != 0) return rc;
  kiln_future **fs = calloc((size_t)o->count, sizeof *fs);
  if (!fs) rc = KILN_ENOMEM;
  if (rc == 0) rc = submit_frames(r, o, fs);
  if (rc == 0) rc = collect_frames(fs, o, &info);
  size_t n = 0, ndone;
  while (fs && n < (size_t)o->count && fs[n]) n++; /* the futures made (a submit may fail) */
  if (n > 0) kiln_wait(fs, n, KILN_ALL_COMPLETED, -1.0, &ndone); /* all done before destroy */
  for (size_t i = 0; i < n; i++) kiln_future_release(fs[i]);
  free(fs);
  kiln_renderer_destroy(r);
  return rc;
}

int main(int argc, char **argv) {
  options o;
  if (!parse_args(argc, argv, &o)) return usage();

  kiln_pool *pool = NULL;
  kiln_scene *scene = NULL;
  kiln_gpu *gpu = NULL;
  kiln_gpu_device *dev = NULL;
  kiln_error_detail err;
  char where[1400];
  int rc = kiln_pool_create(NULL, &pool); /* one worker per CPU */
  if (rc != 0) {
    fprintf(stderr, "kiln_pool_create: %s\n", kiln_strerror(rc));
  } else if ((rc = kiln_scene_load_pool(pool, o.scene, &err, &scene)) != 0) {
    fprintf(stderr, "%s\n", kiln_error_detail_format(&err, where, sizeof where));
  } else if ((rc = open_device(o.device, &gpu, &dev)) != 0) {
    fprintf(stderr, "no Vulkan device (%s): %s\n", o.device, kiln_strerror(rc));
  } else if ((rc = render(&o, scene, pool, dev)) != 0) {
    fprintf(stderr, "render: %s\n", kiln_strerror(rc));
  }
  kiln_gpu_device_close(dev); /* each destroy takes NULL */
  kiln_gpu_destroy(gpu);
  kiln_scene_destroy(scene);
  kiln_pool_destroy(pool);
  return rc == 0 ? 0 : 1;
}
