/* kiln/render.h: the path tracer. A renderer holds one scene uploaded to one or more opened GPU
 * devices (kiln/gpu.h); each submitted frame renders on one of them and yields a kiln_image
 * (kiln/image.h) through a future (kiln/sched.h).
 *
 * Example: frame 7 of a loaded scene (kiln/scene.h) on an opened device dev, written to path
 * (tests/render/test_submit.c compiles and runs this text):
 *
 *   kiln_renderer *r;
 *   int rc = kiln_renderer_create(scene, &dev, 1, NULL, &r);
 *   if (rc) return rc;
 *   kiln_frame_config fc;
 *   kiln_frame_config_default(r, &fc);
 *   fc.frame = 7;
 *   kiln_future *f;
 *   rc = kiln_renderer_submit(r, &fc, &f);
 *   if (rc == KILN_OK) {
 *     void *img;
 *     rc = kiln_future_result(f, -1, &img);
 *     if (rc == KILN_OK) rc = kiln_image_write_pfm(img, path);
 *     kiln_future_release(f);
 *   }
 *   kiln_renderer_destroy(r);
 *   return rc;
 *
 * The image is a pure function of the scene, the camera, seed, frame, spp and max_bounces: the
 * same bits whatever the tile size, the samples per pass, the device or the threads.
 *
 * Supported: albedo textures, per-vertex shading normals, every environment kind (an
 * equirectangular map importance-sampled by its luminance), light sampling with MIS of emissive
 * triangles, emissive spheres and the environment; docs/SCENE.md says how each is interpreted.
 * Not yet supported: rough dielectrics (the dielectric is smooth) and textures on anything but
 * the albedo. */
#ifndef KILN_RENDER_H
#define KILN_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/gpu.h"
#include "kiln/image.h"
#include "kiln/sched.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_scene kiln_scene; /* kiln/scene.h */
typedef struct kiln_renderer kiln_renderer;

/* Where the path tracer reads a scene's BVH, primitives, materials and lights from. A scene
 * too large for the mode asked (shared: 16 KiB; uniform: 64 KiB and the device's
 * maxUniformBufferRange; texel: the device's maxTexelBufferElements) uses the storage buffers.
 * The images are the same bits whichever; only speed differs. */
typedef enum kiln_renderer_scene_memory {
  KILN_RENDERER_SCENE_AUTO = 0, /* CPU devices (lavapipe): texel; GPUs: shared, else storage */
  KILN_RENDERER_SCENE_STORAGE,  /* storage buffers */
  KILN_RENDERER_SCENE_SHARED,   /* a copy in each workgroup's shared memory */
  KILN_RENDERER_SCENE_UNIFORM,  /* a uniform buffer (lavapipe gathers its loads in one go) */
  KILN_RENDERER_SCENE_TEXEL     /* the scene through texel fetches of uniform texel buffers
                                  (lavapipe: gathers, its fastest), but for the materials and
                                  lights where the uniform buffer holds them (small scenes
                                  without shared meshes) and vertex colours and tangents
                                  (storage) */
} kiln_renderer_scene_memory;

typedef struct kiln_renderer_config {
  kiln_pool *pool;    /* builds the BVH in parallel and finishes frames (builds their images);
                            it must outlive the renderer. NULL: the BVH serially in the caller,
                            frames on a thread of the renderer's own */
  uint32_t tile_size; /* pixels on a side of one dispatch's tile. 0 (default): per device,
                            64 on CPU devices (lavapipe), 1024 on GPUs */
  uint32_t pass_spp;  /* samples per pixel of one dispatch. 0 (default): per device, 4 on
                            CPU devices, 8 on GPUs. Neither changes the image's bits */
  kiln_renderer_scene_memory scene_memory; /* default KILN_RENDERER_SCENE_AUTO */
  bool scene_variants; /* keep the scene's BVH and packed buffers on the host, so that
                          kiln_renderer_submit_scene can render variants of it. Default false */
} kiln_renderer_config;

KILN_API void kiln_renderer_config_default(kiln_renderer_config *cfg);

/* Builds the scene's BVH and uploads the scene to each of devs[0..ndevs) (opened devices that
 * must outlive the renderer); waits for the uploads. The scene is borrowed for the call only.
 * 0 and *out, or KILN_EINVAL (no device, bad config, more than 2^27 primitives: the packed BVH's
 * limit), KILN_ENOMEM, or an upload's error (the
 * engine's code, e.g. KILN_EVULKAN); *out NULL then. Blocking; from a task of cfg->pool it
 * helps run the BVH chunks. Any thread. */
KILN_API int kiln_renderer_create(const kiln_scene *scene, kiln_gpu_device *const *devs,
                                  size_t ndevs, const kiln_renderer_config *cfg,
                                  kiln_renderer **out);

/* A camera (overrides the scene's for one frame). */
typedef struct kiln_camera {
  bool thin_lens;
  float position[3], look_at[3], up[3];
  float vfov_deg;       /* vertical field of view, degrees; unused (may be 0) with intrinsics */
  float aperture;       /* lens diameter, thin lens only */
  float focus_distance; /* thin lens only */
  /* Intrinsics in pixels, OpenCV's convention (x right, y down, pixel centres at whole numbers,
   * so a centred principal point is ((k_width - 1) / 2, (k_height - 1) / 2)) for an image of
   * k_width x k_height. Used instead of vfov_deg when k_width > 0, scaled to the size rendered;
   * all 0 (vfov_deg decides, square pixels, centred) otherwise. For another image size
   * W x H, K scales in the continuous frame: fx * W / k_width, (cx + 0.5) * W / k_width - 0.5. */
  float fx, fy, cx, cy;
  int32_t k_width, k_height;
} kiln_camera;

/* The axes of a camera-to-world matrix. KILN_CAMERA_GL is kiln's, Blender's and OpenGL's (and
 * NeRF's transforms.json): x right, y up, looking along -z. KILN_CAMERA_CV is OpenCV's (BOP,
 * COLMAP): x right, y down, looking along +z. */
typedef enum kiln_camera_convention { KILN_CAMERA_GL = 0, KILN_CAMERA_CV = 1 } kiln_camera_convention;

/* The 3x3 intrinsic matrix K (row-major, OpenCV's convention as above) of cam for an image of
 * width x height. 0, or KILN_EINVAL (NULL, non-positive size, a camera without a valid vfov or
 * intrinsics). */
KILN_API int kiln_camera_intrinsics(const kiln_camera *cam, int32_t width, int32_t height,
                                    double K[9]);

/* The 4x4 camera-to-world matrix (row-major, rotation orthonormal, last row 0 0 0 1) of cam in
 * convention conv. 0, or KILN_EINVAL (NULL, a degenerate camera). */
KILN_API int kiln_camera_to_world(const kiln_camera *cam, kiln_camera_convention conv,
                                  double M[16]);

typedef struct kiln_frame_config {
  const kiln_camera *camera; /* NULL: the scene's camera. Borrowed for the call */
  uint32_t seed;             /* default: the scene's seed */
  uint32_t frame;            /* frame index, part of the random sequence. Default 0 */
  int32_t spp;               /* 0 (default): the scene's */
  int32_t max_bounces;       /* -1 (default): the scene's */
  int32_t width, height;     /* 0 (default): the scene's */
  uint32_t tile_size;        /* 0 (default): the renderer's */
  uint32_t pass_spp;         /* 0 (default): the renderer's */
  int device;                /* index into the renderer's devices; -1 (default): the least busy */
  unsigned planes;           /* the first-hit planes to compute (KILN_PLANE_*): 0 (default)
                                every one; colour is always computed. A plane left out is not
                                traced, written or read back, and its pointer in the image's
                                kiln_image_info is NULL (uv brings object_id with it) */
} kiln_frame_config;

/* The planes of a frame (kiln_frame_config.planes): the same bits as kiln/batch.h's passes
 * KILN_PASS_COLOR .. KILN_PASS_UV. */
enum {
  KILN_PLANE_COLOR = 1u << 0,
  KILN_PLANE_DEPTH = 1u << 1,
  KILN_PLANE_NORMAL = 1u << 2,
  KILN_PLANE_ALBEDO = 1u << 3,
  KILN_PLANE_ID = 1u << 4,
  KILN_PLANE_INSTANCE = 1u << 5,
  KILN_PLANE_UV = 1u << 6,
  KILN_PLANE_ALL = (1u << 7) - 1
};

/* Defaults for renderer r (its scene's seed). */
KILN_API void kiln_frame_config_default(const kiln_renderer *r, kiln_frame_config *fc);

/* Submits one frame and returns at once. *out succeeds with a kiln_image * owned by the future
 * (freed with its last reference), or fails with the GPU job's error. 0, KILN_EINVAL (bad
 * config, or a frame whose memory, width x height x 16 bytes a plane, does not fit 64 bits; a
 * tile_size larger than the image is the whole image), KILN_ENOMEM, or a buffer-creation error; *out NULL then. Any thread, any number of
 * frames at once; never blocks (when out of memory after the GPU job has started, the call
 * fails and the job's buffers stay with the renderer until kiln_renderer_destroy). */
KILN_API int kiln_renderer_submit(kiln_renderer *r, const kiln_frame_config *fc, kiln_future **out);

/* Like kiln_renderer_submit, for a variant of the renderer's scene: scene (borrowed for the call)
 * is rendered in place of it, with its own camera and settings as the defaults. A variant is the
 * scene with other materials, lights, environment or object placements (what a job's per-frame
 * overrides give), and should keep the scene's meshes and textures: the call uploads only the
 * buffers whose bytes differ from the scene's, builds a BVH only when the triangles or spheres
 * moved, and makes a kernel only for a combination of features not met before (kept for the
 * renderer's life). The image is bit for bit the one a renderer made for scene alone would
 * give. Needs r made with cfg.scene_variants (else KILN_EINVAL); any other scene works, as a
 * variant that differs everywhere. Blocking: packs the scene (and builds its BVH on the
 * config's pool, whose tasks it may help run); the first use of a new feature combination
 * creates a pipeline. Any thread, any number at once. */
KILN_API int kiln_renderer_submit_scene(kiln_renderer *r, const kiln_scene *scene,
                                        const kiln_frame_config *fc, kiln_future **out);

/* Frees the renderer's device buffers and kernels. Every frame future must be done (waited for)
 * first; the images stay valid. Blocks only for the GPU work of frames whose submission failed
 * after their job had started. NULL is a no-op. */
KILN_API void kiln_renderer_destroy(kiln_renderer *r);

#ifdef __cplusplus
}
#endif
#endif /* KILN_RENDER_H */
