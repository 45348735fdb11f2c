"""cffi (ABI mode) binding of libkiln.so: ``ffi`` and ``lib``.

The C declarations below are copied from include/kiln/*.h (only what the package calls; a struct
the package only passes by pointer as NULL is declared opaque). ABI mode needs no compiler at
import, so the layouts must match the headers exactly: tests/test_core_ffi.py compiles a C
program against the headers, when a compiler is present, and compares every struct's size and
field offsets with cffi's, and checks that every function declared here is exported.

The library is found through, in order:
  1. KILN_LIBRARY, a path to libkiln.so (the build tree's tests set it);
  2. an installed copy: <prefix>/lib*/libkiln.so* with the package under
     <prefix>/lib*/python3*/site-packages/kiln (or dist-packages), searched upwards from here;
  3. ctypes.util.find_library("kiln") (the dynamic loader's own search).

libkiln.so depends on libkiln-sched.so (futures, pools, errors); dlopen loads it too, and lookups
through libkiln.so's handle find its symbols.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import re
from typing import List, Optional

import cffi

CDEF = r"""
/* ---- kiln/version.h ---- */
int kiln_version(const char **str);

/* ---- kiln/error.h ---- */
enum {
  KILN_OK = 0,
  KILN_ETIMEDOUT = -1, KILN_ECANCELLED = -2, KILN_EINVAL = -3, KILN_ESTATE = -4,
  KILN_ESHUTDOWN = -5, KILN_EBROKEN = -6, KILN_EFULL = -7, KILN_EEMPTY = -8, KILN_EEOF = -9,
  KILN_ENOMEM = -10, KILN_EDEPENDENCY = -11, KILN_EIO = -12, KILN_EPARSE = -13,
  KILN_EVULKAN = -14, KILN_EDEVICE_LOST = -15, KILN_EUNSUPPORTED = -16, KILN_EBUSY = -17,
  KILN_EKILLED = -18, KILN_EEXITED = -19, KILN_EOWNERDEAD = -20, KILN_EEXIST = -21,
  KILN_ENOENT = -22, KILN_EAUTH = -23
};
const char *kiln_strerror(int code);
const char *kiln_err_name(int code);
typedef struct kiln_error_detail {
  int code;
  char file[512];
  int line, column;
  char path[256];
  char message[512];
} kiln_error_detail;
char *kiln_error_detail_format(const kiln_error_detail *err, char *buf, size_t size);

/* ---- kiln/sched.h ---- */
typedef struct kiln_pool kiln_pool;
typedef struct kiln_future kiln_future;
typedef void (*kiln_done_fn)(kiln_future *f, void *arg);
typedef struct kiln_pool_config {
  int threads;
  int (*init)(void *init_arg);
  void *init_arg;
  const char *name;
} kiln_pool_config;
void kiln_pool_config_default(kiln_pool_config *cfg);
int kiln_pool_create(const kiln_pool_config *cfg, kiln_pool **out);
void kiln_pool_destroy(kiln_pool *p);
int kiln_pool_threads(const kiln_pool *p);
kiln_future *kiln_future_retain(kiln_future *f);
void kiln_future_release(kiln_future *f);
int kiln_future_result(kiln_future *f, double timeout, void **value);
int kiln_future_error(kiln_future *f, double timeout, const char **message);
bool kiln_future_done(kiln_future *f);
bool kiln_future_cancelled(kiln_future *f);
bool kiln_future_cancel(kiln_future *f);
int kiln_future_on_done(kiln_future *f, kiln_done_fn fn, void *arg);

/* ---- kiln/scene.h ---- */
typedef struct kiln_scene kiln_scene;
int kiln_scene_load(const char *path, kiln_error_detail *err, kiln_scene **out);
int kiln_scene_load_string(const char *json, const char *base_dir,
                           const char *name_for_messages, kiln_error_detail *err,
                           kiln_scene **out);
typedef struct kiln_scene_info {
  int32_t width, height;
  int32_t spp;
  int32_t max_bounces;
  uint32_t seed;
  float exposure;
  bool filmic;
  size_t nobjects;
  size_t ntriangles, nspheres, nmaterials, ntextures;
  size_t nlight_triangles;
} kiln_scene_info;
void kiln_scene_get_info(const kiln_scene *s, kiln_scene_info *info);
const char *kiln_scene_object_name(const kiln_scene *s, uint32_t id);
size_t kiln_scene_warning_count(const kiln_scene *s);
const char *kiln_scene_warning(const kiln_scene *s, size_t i);
void kiln_scene_destroy(kiln_scene *s);

/* ---- kiln/image.h ---- */
typedef struct kiln_image kiln_image;
typedef struct kiln_image_info {
  int32_t width, height;
  uint32_t spp;
  const float *color, *depth, *normal, *albedo;
  const uint32_t *object_id, *instance_id;
  const float *uv;
} kiln_image_info;
void kiln_image_get_info(const kiln_image *img, kiln_image_info *info);
int kiln_image_write_pfm(const kiln_image *img, const char *path);
int kiln_image_write_png(const kiln_image *img, const char *path, float exposure, bool filmic);

/* ---- kiln/gpu.h ---- */
typedef struct kiln_gpu kiln_gpu;
typedef struct kiln_gpu_device kiln_gpu_device;
typedef enum {
  KILN_GPU_LOG_DEBUG,
  KILN_GPU_LOG_INFO,
  KILN_GPU_LOG_WARN,
  KILN_GPU_LOG_ERROR
} kiln_gpu_log_level;
typedef void (*kiln_gpu_log_fn)(void *arg, kiln_gpu_log_level level, const char *msg);
typedef struct kiln_gpu_config {
  kiln_gpu_log_fn log;
  void *log_arg;
  kiln_gpu_log_level log_level;
  bool validation;
  const char *loader;
  const char *app_name;
} kiln_gpu_config;
void kiln_gpu_config_default(kiln_gpu_config *cfg);
int kiln_gpu_create(const kiln_gpu_config *cfg, kiln_gpu **out);
void kiln_gpu_destroy(kiln_gpu *gpu);
typedef enum {
  KILN_GPU_TYPE_OTHER,
  KILN_GPU_TYPE_INTEGRATED,
  KILN_GPU_TYPE_DISCRETE,
  KILN_GPU_TYPE_VIRTUAL,
  KILN_GPU_TYPE_CPU
} kiln_gpu_type;
const char *kiln_gpu_type_name(kiln_gpu_type type);
enum { KILN_GPU_MAX_FAMILIES = 16, KILN_GPU_MAX_HEAPS = 16 };
typedef struct kiln_gpu_queue_family {
  uint32_t queues;
  bool compute, graphics, transfer;
} kiln_gpu_queue_family;
typedef struct kiln_gpu_heap {
  uint64_t size;
  bool device_local;
} kiln_gpu_heap;
typedef struct kiln_gpu_device_info {
  uint32_t index;
  char name[256];
  kiln_gpu_type type;
  uint32_t vendor_id, device_id;
  uint32_t api_version;
  uint32_t driver_version;
  char driver_name[256];
  char driver_info[256];
  uint8_t device_uuid[16];
  uint8_t driver_uuid[16];
  bool usable;
  char unusable_reason[128];
  uint32_t family_count;
  kiln_gpu_queue_family families[16];
  uint32_t heap_count;
  kiln_gpu_heap heaps[16];
  uint32_t max_uniform_range;
  uint32_t max_texels;
  bool has_pci;
  uint32_t pci_domain, pci_bus, pci_device, pci_function;
} kiln_gpu_device_info;
uint32_t kiln_gpu_get_device_count(const kiln_gpu *gpu);
int kiln_gpu_get_device_info(const kiln_gpu *gpu, uint32_t index, kiln_gpu_device_info *out);
char *kiln_gpu_version_string(uint32_t api_version, char *buf, size_t size);
char *kiln_gpu_uuid_string(const uint8_t uuid[16], char *buf, size_t size);
int kiln_gpu_visible(const kiln_gpu *gpu, const char *list, uint32_t vendor_id,
                     uint32_t *indices, size_t cap, size_t *n, kiln_error_detail *err);
int kiln_gpu_select_visible(kiln_gpu *gpu, const char *spec, const uint32_t *visible,
                            size_t nvisible, uint32_t *indices, size_t cap, size_t *n,
                            kiln_error_detail *err);
typedef struct kiln_gpu_device_config kiln_gpu_device_config; /* passed as NULL only */
int kiln_gpu_device_open(kiln_gpu *gpu, uint32_t index, const kiln_gpu_device_config *cfg,
                         kiln_gpu_device **out);
void kiln_gpu_device_close(kiln_gpu_device *dev);
void kiln_gpu_device_get_info(const kiln_gpu_device *dev, kiln_gpu_device_info *out);

/* ---- kiln/render.h ---- */
typedef struct kiln_renderer kiln_renderer;
typedef enum kiln_renderer_scene_memory {
  KILN_RENDERER_SCENE_AUTO = 0,
  KILN_RENDERER_SCENE_STORAGE,
  KILN_RENDERER_SCENE_SHARED,
  KILN_RENDERER_SCENE_UNIFORM,
  KILN_RENDERER_SCENE_TEXEL
} kiln_renderer_scene_memory;
typedef struct kiln_renderer_config {
  kiln_pool *pool;
  uint32_t tile_size;
  uint32_t pass_spp;
  kiln_renderer_scene_memory scene_memory;
  bool scene_variants;
} kiln_renderer_config;
void kiln_renderer_config_default(kiln_renderer_config *cfg);
int kiln_renderer_create(const kiln_scene *scene, kiln_gpu_device *const *devs,
                         size_t ndevs, const kiln_renderer_config *cfg,
                         kiln_renderer **out);
typedef struct kiln_camera {
  bool thin_lens;
  float position[3], look_at[3], up[3];
  float vfov_deg;
  float aperture;
  float focus_distance;
  float fx, fy, cx, cy;
  int32_t k_width, k_height;
} kiln_camera;
typedef struct kiln_frame_config {
  const kiln_camera *camera;
  uint32_t seed;
  uint32_t frame;
  int32_t spp;
  int32_t max_bounces;
  int32_t width, height;
  uint32_t tile_size;
  uint32_t pass_spp;
  int device;
  unsigned planes;
} kiln_frame_config;
void kiln_frame_config_default(const kiln_renderer *r, kiln_frame_config *fc);
int kiln_renderer_submit(kiln_renderer *r, const kiln_frame_config *fc, kiln_future **out);
int kiln_renderer_submit_scene(kiln_renderer *r, const kiln_scene *scene,
                               const kiln_frame_config *fc, kiln_future **out);
void kiln_renderer_destroy(kiln_renderer *r);

/* ---- kiln/proc.h: the fork server (render_job(isolate=True)) ---- */
int kiln_forkserver_start(void);

/* kiln/batch.h: passes, formats, jobs and the batch (kiln.render_job) */
int kiln_pass_parse(const char *list, unsigned *passes, kiln_error_detail *err);
typedef enum {
  KILN_FORMAT_DEFAULT = 0,
  KILN_FORMAT_PNG,
  KILN_FORMAT_PNG16,
  KILN_FORMAT_JPEG,
  KILN_FORMAT_EXR,
  KILN_FORMAT_NPY,
  KILN_FORMAT_HDR,
  KILN_FORMAT_EXR_MULTI
} kiln_format;
int kiln_format_parse(const char *name, kiln_format *out);

typedef struct kiln_job kiln_job;
typedef struct kiln_job_options {
  const char *scene;
  kiln_pool *pool;
} kiln_job_options;
int kiln_job_load(const char *path, const kiln_job_options *opt, kiln_error_detail *err,
                  kiln_job **out);
typedef struct kiln_job_info {
  const char *output;
  unsigned passes;
  kiln_format format;
  uint64_t count;
  bool exr_half;
  int exr_compression;
  uint32_t tar_frames;
} kiln_job_info;
void kiln_job_get_info(const kiln_job *job, kiln_job_info *info);
typedef struct kiln_job_frame {
  uint64_t index;
  long frame;
  char name[128];
  char where[600];
  kiln_camera camera;
  uint32_t seed;
  char *scene_patch;
} kiln_job_frame;
void kiln_job_destroy(kiln_job *job);

typedef struct kiln_batch kiln_batch;
typedef struct kiln_batch_event {
  const kiln_job_frame *frame;
  int status;
  const char *message;
  uint64_t done, failed, skipped, total;
  double elapsed_s;
} kiln_batch_event;
typedef void (*kiln_batch_progress_fn)(void *arg, const kiln_batch_event *ev);
typedef enum kiln_shard_mode {
  KILN_SHARD_ROUND_ROBIN = 0,
  KILN_SHARD_CONTIGUOUS
} kiln_shard_mode;
int kiln_shard_mode_parse(const char *name, kiln_shard_mode *mode);
typedef struct kiln_batch_config {
  kiln_pool *pool;
  kiln_gpu_device *const *devs;
  size_t ndevs;
  const char *out_dir;
  const char *output;
  unsigned passes;
  kiln_format format;
  long first, last, step;
  int32_t width, height, spp;
  size_t in_flight;
  bool resume;
  bool overwrite;
  bool durable;
  const char *contact_sheet;
  bool allow_outside_out_dir;
  int contact_thumb;
  uint32_t shard, shards;
  kiln_shard_mode shard_mode;
  bool claim;
  uint32_t chunk;
  double claim_timeout_s;
  const char *manifest;
  kiln_batch_progress_fn progress;
  void *progress_arg;
  bool isolate;
  double frame_timeout_s;
  uint32_t recycle;
  const char *faults;
  bool annotations;
  int writer;
  bool exr_half;
  int exr_compression;
  uint32_t tar_frames;
  uint64_t in_flight_bytes;
} kiln_batch_config;
void kiln_batch_config_default(kiln_batch_config *cfg);
typedef struct kiln_batch_summary {
  uint64_t total, written, failed, skipped;
  uint64_t elsewhere;
  uint64_t chunks_claimed, chunks_taken_over;
  uint64_t files;
  uint64_t bytes;
  bool stopped;
  double wall_s, first_image_s;
  double images_per_s;
  double prepare_s, render_s, readback_s, encode_s, write_s;
  uint64_t peak_rss_bytes;
  int manifest_status;
  char manifest_message[512];
  int contact_sheet_status;
  char contact_sheet_message[512];
  uint64_t worker_starts, worker_crashes, worker_hangs, worker_lost, worker_recycles;
  uint64_t frames_retried;
  char incidents[2048];
  uint64_t incidents_dropped;
  int writer_status;
  char writer_message[512];
} kiln_batch_summary;
int kiln_batch_create(kiln_job *job, const kiln_batch_config *cfg, kiln_batch **out,
                      kiln_error_detail *err);
int kiln_batch_run(kiln_batch *b, kiln_batch_summary *sum, kiln_error_detail *err);
void kiln_batch_stop(kiln_batch *b);
void kiln_batch_destroy(kiln_batch *b);
"""


def cdef_functions(cdef: str = CDEF) -> List[str]:
    """The names of the functions declared in ``cdef`` (for the export test)."""
    text = re.sub(r"/\*.*?\*/", "", cdef, flags=re.S)
    names = []
    for decl in text.split(";"):
        decl = " ".join(decl.split())
        if decl.startswith("typedef") or "(" not in decl:
            continue
        m = re.match(r"[\w\s\*]*?\**\s*(kiln_\w+)\s*\(", decl)
        if m:
            names.append(m.group(1))
    return names


def _installed_candidates() -> List[str]:
    """libkiln.so copies of an installed prefix that holds this package."""
    here = os.path.dirname(os.path.abspath(__file__))
    out: List[str] = []
    d = here
    for _ in range(6):
        d = os.path.dirname(d)
        for libdir in sorted(glob.glob(os.path.join(d, "lib*"))):
            for name in ("libkiln.so", "libkiln.so.0.2"):
                p = os.path.join(libdir, name)
                if os.path.exists(p):
                    out.append(p)
            out.extend(sorted(glob.glob(os.path.join(libdir, "*", "libkiln.so*"))))
    return out


def find_library() -> str:
    """The path (or loader name) of the libkiln.so this package loads; see the module text."""
    env = os.environ.get("KILN_LIBRARY")
    if env:
        if not os.path.exists(env):
            raise OSError(f"KILN_LIBRARY={env}: no such file")
        return env
    try:  # an installed copy: CMake wrote where its library is, relative to the package
        from ._install import LIBRARY_RELATIVE  # type: ignore[import-not-found]

        here = os.path.dirname(os.path.abspath(__file__))
        installed = os.path.normpath(os.path.join(here, LIBRARY_RELATIVE))
        if os.path.exists(installed):
            return installed
    except ImportError:  # the source tree: no _install.py
        pass
    found: Optional[str] = next(iter(_installed_candidates()), None)
    if found:
        return found
    found = ctypes.util.find_library("kiln")
    if found:
        return found
    raise OSError(
        "libkiln.so not found: set KILN_LIBRARY to its path (build/libkiln.so in a build tree), "
        "or install kiln (cmake --install) so that it lies next to this package"
    )


ffi = cffi.FFI()
ffi.cdef(CDEF)
library_path: str = find_library()
lib = ffi.dlopen(library_path)
