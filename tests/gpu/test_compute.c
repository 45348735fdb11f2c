/* test_compute.c: kernels, buffers, upload and read-back, and the sub-allocator. */
// kt: timeout 120
#define _GNU_SOURCE
#include <stdlib.h>

#include "gpu_test_util.h"

enum { N = 1000 }; /* not a multiple of the workgroup size (64): the bounds check matters */

/* The hash kernel, through a job of upload + dispatch + download, matches its CPU reference. */
TEST(hash_matches_cpu) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_kernel *k = tg_kernel(dev, "hash", 2, 8);
  kiln_gpu_buffer *src, *dst;
  KT_CODE(kiln_gpu_buffer_create(dev, N * 4, &src), KILN_OK);
  KT_CODE(kiln_gpu_buffer_create(dev, N * 4 + 64, &dst), KILN_OK);
  KT_EQ(kiln_gpu_buffer_get_size(dst), N * 4 + 64);
  KT_PTR_EQ(kiln_gpu_buffer_get_device(dst), dev);
  uint32_t in[N], out[N + 16];
  for (uint32_t i = 0; i < N; i++) in[i] = i * 2654435761u;
  /* The tail past N must stay untouched by the kernel: fill it with a known pattern. */
  uint32_t sentinel[16];
  for (int i = 0; i < 16; i++) sentinel[i] = 0xdeadbeef;
  uint32_t push[2] = {N, 12345};

  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_upload(job, src, 0, in, sizeof(in)), KILN_OK);
  KT_CODE(kiln_gpu_job_upload(job, dst, N * 4, sentinel, sizeof(sentinel)), KILN_OK);
  memset(in, 0, sizeof(in)); /* the upload copied it already */
  kiln_gpu_buffer *binds[2] = {src, dst};
  KT_CODE(kiln_gpu_job_dispatch(job, k, binds, push, (N + 63) / 64, 1, 1), KILN_OK);
  KT_CODE(kiln_gpu_job_download(job, dst, 0, sizeof(out), out), KILN_OK);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  void *value = (void *)1;
  TG_OK(f, &value);
  KT_PTR_EQ(value, NULL); /* the download went to `out` */
  for (uint32_t i = 0; i < N; i++) {
    uint32_t want = tg_pcg(i * 2654435761u + 12345u);
    if (out[i] != want) KT_FAIL("out[%u] = %u, CPU reference %u", i, out[i], want);
  }
  for (int i = 0; i < 16; i++) KT_EQ(out[N + i], 0xdeadbeef);
  kiln_future_release(f);

  /* The same through the one-command calls; the download's value is owned by its future. */
  kiln_future *up, *run, *down;
  for (uint32_t i = 0; i < N; i++) in[i] = i;
  KT_CODE(kiln_gpu_upload(src, 0, in, sizeof(in), NULL, 0, &up), KILN_OK);
  push[1] = 7;
  KT_CODE(kiln_gpu_dispatch(k, binds, push, (N + 63) / 64, 1, 1, &up, 1, &run), KILN_OK);
  KT_CODE(kiln_gpu_download(dst, 0, N * 4, &run, 1, &down), KILN_OK);
  TG_OK(down, &value);
  const uint32_t *got = value;
  for (uint32_t i = 0; i < N; i++) KT_EQ(got[i], tg_pcg(i + 7));
  TG_OK(up, NULL);
  TG_OK(run, NULL);
  kiln_future_release(up);
  kiln_future_release(run);
  kiln_future_release(down);

  kiln_gpu_device_stats st;
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.submitted, 4);
  KT_EQ(st.completed, 4);
  KT_EQ(st.failed, 0);
  KT_EQ(st.in_flight, 0);

  kiln_gpu_buffer_destroy(src);
  kiln_gpu_buffer_destroy(dst);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* A kernel from user SPIR-V (the embedded words given as if they were the user's), and bad
 * SPIR-V or a bad config refused with KILN_EINVAL / KILN_EVULKAN. */
TEST(user_spirv) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  size_t nnames;
  const char *const *names = kiln_gpu_builtin_names(&nnames);
  bool has_iadd = false;
  for (size_t i = 0; i < nnames; i++) has_iadd = has_iadd || strcmp(names[i], "iadd") == 0;
  KT_TRUE(has_iadd);
  const uint32_t *words;
  size_t size;
  KT_CODE(kiln_gpu_builtin_spirv("iadd", &words, &size), KILN_OK);
  KT_CODE(kiln_gpu_builtin_spirv("nope", &words, &size), KILN_EINVAL);
  KT_CODE(kiln_gpu_builtin_spirv("iadd", &words, &size), KILN_OK);
  uint32_t *copy = malloc(size);
  memcpy(copy, words, size);
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.spirv = copy;
  kc.spirv_size = size;
  kc.buffers = 1;
  kc.push_size = 8;
  kiln_gpu_kernel *k = NULL;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_OK);
  free(copy); /* borrowed for the call only */

  kiln_gpu_buffer *buf;
  KT_CODE(kiln_gpu_buffer_create(dev, 64 * 4, &buf), KILN_OK);
  uint32_t data[64];
  for (uint32_t i = 0; i < 64; i++) data[i] = 100 * i;
  uint32_t push[2] = {64, 5};
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  kiln_gpu_job_upload(job, buf, 0, data, sizeof(data));
  kiln_gpu_job_dispatch(job, k, &buf, push, 1, 1, 1);
  kiln_gpu_job_dispatch(job, k, &buf, push, 1, 1, 1); /* ordered after the first */
  kiln_gpu_job_download(job, buf, 0, sizeof(data), NULL);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  void *v;
  TG_OK(f, &v);
  for (uint32_t i = 0; i < 64; i++) KT_EQ(((uint32_t *)v)[i], 100 * i + 10);
  kiln_future_release(f);

  /* Bad SPIR-V and configs. */
  uint32_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  kc.spirv = junk;
  kc.spirv_size = sizeof(junk);
  kiln_gpu_kernel *bad = (kiln_gpu_kernel *)&kc;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &bad), KILN_EINVAL);
  KT_PTR_EQ(bad, NULL);
  KT_TRUE(tg_logged("magic number"));
  kc.spirv = NULL;
  kc.builtin = "no-such-shader";
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &bad), KILN_EINVAL);
  KT_TRUE(tg_logged("no embedded shader named \"no-such-shader\""));
  kc.builtin = "iadd";
  kc.push_size = 6;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &bad), KILN_EINVAL);
  kc.push_size = 8;
  kc.buffers = 33;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &bad), KILN_EINVAL);

  kiln_gpu_buffer_destroy(buf);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* Commands with bad arguments make the job's future fail with KILN_EINVAL; nothing is submitted;
 * buffers of another device are refused. */
TEST(bad_commands) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *a = tg_device(gpu, NULL), *b = tg_device(gpu, NULL);
  kiln_gpu_kernel *k = tg_kernel(a, "iadd", 1, 8);
  kiln_gpu_buffer *ba, *bb;
  KT_CODE(kiln_gpu_buffer_create(a, 256, &ba), KILN_OK);
  KT_CODE(kiln_gpu_buffer_create(b, 256, &bb), KILN_OK);
  kiln_gpu_buffer *tmp;
  KT_CODE(kiln_gpu_buffer_create(a, 0, &tmp), KILN_EINVAL);
  uint32_t push[2] = {64, 1};
  uint8_t bytes[512] = {0};

  kiln_gpu_job *job;
  kiln_future *f;
  /* another device's buffer in a dispatch */
  KT_CODE(kiln_gpu_job_create(a, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_dispatch(job, k, &bb, push, 1, 1, 1), KILN_EINVAL);
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  KT_CODE(kiln_future_result(f, 10, NULL), KILN_EINVAL);
  kiln_future_release(f);
  /* zero groups */
  KT_CODE(kiln_gpu_job_create(a, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_dispatch(job, k, &ba, push, 0, 1, 1), KILN_EINVAL);
  kiln_gpu_job_discard(job);
  /* out-of-range upload, download, copy; copy across devices */
  KT_CODE(kiln_gpu_job_create(a, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_upload(job, ba, 128, bytes, 256), KILN_EINVAL);
  KT_CODE(kiln_gpu_job_download(job, ba, 0, 257, NULL), KILN_EINVAL);
  KT_CODE(kiln_gpu_job_copy(job, ba, 0, bb, 0, 16), KILN_EINVAL);
  KT_CODE(kiln_gpu_job_copy(job, ba, 0, ba, 255, 2), KILN_EINVAL);
  KT_CODE(kiln_gpu_job_upload(job, ba, UINT64_MAX, bytes, 2), KILN_EINVAL);
  /* a second owned download */
  KT_CODE(kiln_gpu_job_download(job, ba, 0, 4, NULL), KILN_OK);
  KT_CODE(kiln_gpu_job_download(job, ba, 0, 4, NULL), KILN_EINVAL);
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  KT_CODE(kiln_future_result(f, 10, NULL), KILN_EINVAL); /* the first error */
  kiln_future_release(f);

  /* a valid copy between two buffers of one device */
  kiln_gpu_buffer *ba2;
  KT_CODE(kiln_gpu_buffer_create(a, 256, &ba2), KILN_OK);
  for (int i = 0; i < 256; i++) bytes[i] = (uint8_t)i;
  KT_CODE(kiln_gpu_job_create(a, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_upload(job, ba, 0, bytes, 256), KILN_OK);
  KT_CODE(kiln_gpu_job_copy(job, ba, 16, ba2, 0, 32), KILN_OK);
  KT_CODE(kiln_gpu_job_download(job, ba2, 0, 32, NULL), KILN_OK);
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  void *v;
  TG_OK(f, &v);
  for (int i = 0; i < 32; i++) KT_EQ(((uint8_t *)v)[i], 16 + i);
  kiln_future_release(f);

  kiln_gpu_device_stats st;
  kiln_gpu_device_get_stats(a, &st);
  KT_EQ(st.submitted, 1);
  KT_EQ(st.failed, 2);
  kiln_gpu_buffer_destroy(ba2);
  kiln_gpu_buffer_destroy(ba);
  kiln_gpu_buffer_destroy(bb);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(b);
  kiln_gpu_device_close(a);
  tg_finish(gpu);
}

/* Many buffers and staging areas come from a few VkDeviceMemory blocks; a buffer larger than a
 * block gets its own allocation, freed with it; freed ranges are reused. */
TEST(suballocator) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device_config cfg;
  kiln_gpu_device_config_default(&cfg);
  cfg.pipeline_cache = false;
  cfg.block_size = 1u << 20;
  kiln_gpu_device *dev = tg_device(gpu, &cfg);
  enum { NB = 100 };
  kiln_gpu_buffer *bufs[NB];
  for (int i = 0; i < NB; i++) KT_CODE(kiln_gpu_buffer_create(dev, 1000 + i, &bufs[i]), KILN_OK);
  kiln_gpu_device_stats st;
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.memory_allocations, 1); /* 100 buffers of ~1 KiB in one 1 MiB block */
  /* Each buffer holds its own data: write all, read all back. */
  kiln_future *fs[NB];
  for (int i = 0; i < NB; i++) {
    uint8_t data[1100];
    memset(data, i, sizeof(data));
    kiln_gpu_job *job;
    KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
    KT_CODE(kiln_gpu_job_upload(job, bufs[i], 0, data, 1000 + (uint64_t)i), KILN_OK);
    KT_CODE(kiln_gpu_job_download(job, bufs[i], 0, 1000 + (uint64_t)i, NULL), KILN_OK);
    KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &fs[i]), KILN_OK);
  }
  for (int i = 0; i < NB; i++) {
    void *v;
    TG_OK(fs[i], &v);
    for (int j = 0; j < 1000 + i; j++)
      if (((uint8_t *)v)[j] != i) KT_FAIL("buffer %d byte %d = %d", i, j, ((uint8_t *)v)[j]);
    kiln_future_release(fs[i]);
  }
  kiln_gpu_device_get_stats(dev, &st);
  KT_TRUE(st.memory_allocations <= 3); /* the device block and one or two staging blocks */
  uint64_t before = st.memory_allocations;
  for (int i = 0; i < NB; i++) kiln_gpu_buffer_destroy(bufs[i]);
  kiln_gpu_device_get_stats(dev, &st);
  uint64_t bytes = st.buffer_bytes;
  for (int i = 0; i < NB; i++) KT_CODE(kiln_gpu_buffer_create(dev, 2000, &bufs[i]), KILN_OK);
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.memory_allocations, before); /* 200 KB fit in the freed block */
  KT_EQ(st.buffer_bytes, bytes + NB * 2000u); /* the buffers' sizes, not the block's */
  for (int i = 0; i < NB; i++) kiln_gpu_buffer_destroy(bufs[i]);
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.buffer_bytes, bytes);

  kiln_gpu_buffer *big;
  uint64_t blocks = st.memory_blocks;
  KT_CODE(kiln_gpu_buffer_create(dev, 3u << 20, &big), KILN_OK);
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.memory_allocations, before + 1);
  KT_EQ(st.memory_blocks, blocks + 1);
  kiln_gpu_buffer_destroy(big);
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.memory_blocks, blocks);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* User GLSL compiled at run time: a working kernel, and a compile error reported as
 * KILN_EPARSE with the shader's name and line. */
static const char *good_glsl = "#version 450\n"
                               "layout(local_size_x = 32) in;\n"
                               "layout(std430, binding = 0) buffer B { uint v[]; } b;\n"
                               "layout(push_constant) uniform P { uint n; uint k; } pc;\n"
                               "void main() {\n"
                               "  uint i = gl_GlobalInvocationID.x;\n"
                               "  if (i < pc.n) b.v[i] = b.v[i] * 2u + pc.k;\n"
                               "}\n";

static const char *bad_glsl = "#version 450\n"
                              "layout(local_size_x = 32) in;\n"
                              "layout(std430, binding = 0) buffer B { uint v[]; } b;\n"
                              "void main() {\n"
                              "  uint i = gl_GlobalInvocationID.x;\n"
                              "  b.v[i] = undeclared_thing + 1u;\n"
                              "}\n";

TEST(runtime_glsl) {
  uint32_t *words;
  size_t size;
  char *msg = NULL;
  KT_CODE(kiln_gpu_compile_glsl(bad_glsl, "user.comp", &words, &size, &msg), KILN_EPARSE);
  KT_PTR_EQ(words, NULL);
  KT_STR_CONTAINS(msg, "user.comp:6: error:");
  KT_STR_CONTAINS(msg, "undeclared_thing");
  free(msg);
  KT_CODE(kiln_gpu_compile_glsl("#version 450\nvoid main( {", NULL, &words, &size, &msg),
          KILN_EPARSE);
  KT_STR_CONTAINS(msg, "shader:2: error:");
  free(msg);
  KT_CODE(kiln_gpu_compile_glsl(good_glsl, "good.comp", &words, &size, NULL), KILN_OK);
  KT_TRUE(size > 20 && size % 4 == 0);
  KT_EQ(words[0], 0x07230203);
  free(words);

  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.glsl = bad_glsl;
  kc.glsl_name = "bad.comp";
  kc.buffers = 1;
  kiln_gpu_kernel *k = NULL;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_EPARSE);
  KT_TRUE(tg_logged("bad.comp:6: error:"));
  kc.glsl = good_glsl;
  kc.glsl_name = "good.comp";
  kc.push_size = 8;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_OK);
  kiln_gpu_buffer *buf;
  KT_CODE(kiln_gpu_buffer_create(dev, 100 * 4, &buf), KILN_OK);
  uint32_t data[100];
  for (uint32_t i = 0; i < 100; i++) data[i] = i;
  uint32_t push[2] = {100, 9};
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  kiln_gpu_job_upload(job, buf, 0, data, sizeof(data));
  kiln_gpu_job_dispatch(job, k, &buf, push, 4, 1, 1);
  kiln_gpu_job_download(job, buf, 0, sizeof(data), NULL);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  void *v;
  TG_OK(f, &v);
  for (uint32_t i = 0; i < 100; i++) KT_EQ(((uint32_t *)v)[i], 2 * i + 9);
  kiln_future_release(f);
  kiln_gpu_buffer_destroy(buf);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* Runs k (binding 0: 64 uints out, binding 1: the table, whatever its kind) over a 64-entry
 * uvec4 table on dev and checks each invocation i summed entry (i * 7) % 64. */
static void check_table_kernel(kiln_gpu_device *dev, kiln_gpu_kernel *k, uint32_t mul) {
  kiln_gpu_buffer *out, *table;
  KT_CODE(kiln_gpu_buffer_create(dev, 64 * 4, &out), KILN_OK);
  KT_CODE(kiln_gpu_buffer_create(dev, 64 * 16, &table), KILN_OK);
  uint32_t t[64][4];
  for (uint32_t i = 0; i < 64; i++)
    for (uint32_t c = 0; c < 4; c++) t[i][c] = 1000u * i + mul * c;
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_upload(job, table, 0, t, sizeof t), KILN_OK);
  kiln_gpu_buffer *binds[2] = {out, table};
  KT_CODE(kiln_gpu_job_dispatch(job, k, binds, NULL, 1, 1, 1), KILN_OK);
  KT_CODE(kiln_gpu_job_download(job, out, 0, 64 * 4, NULL), KILN_OK);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  void *v;
  TG_OK(f, &v);
  for (uint32_t i = 0; i < 64; i++) {
    uint32_t *e = t[(i * 7u) % 64u];
    KT_EQ(((uint32_t *)v)[i], e[0] + e[1] + e[2] + e[3]);
  }
  kiln_future_release(f);
  kiln_gpu_buffer_destroy(table);
  kiln_gpu_buffer_destroy(out);
}

/* Submits one dispatch of k with buffer b at binding 1: refused with KILN_EINVAL. */
static void check_refused(kiln_gpu_device *dev, kiln_gpu_kernel *k, kiln_gpu_buffer *b) {
  kiln_gpu_buffer *out;
  KT_CODE(kiln_gpu_buffer_create(dev, 64 * 4, &out), KILN_OK);
  kiln_gpu_buffer *binds[2] = {out, b};
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_dispatch(job, k, binds, NULL, 1, 1, 1), KILN_EINVAL);
  kiln_gpu_job_discard(job);
  kiln_gpu_buffer_destroy(out);
}

/* A uniform-buffer binding (kiln_gpu_kernel_config.uniform_buffers) read at per-invocation
 * indices beside a storage binding; a uniform binding out of the layout, and a buffer beyond the
 * device's maxUniformBufferRange bound to it, are refused. */
static const char *uniform_glsl =
    "#version 450\n"
    "layout(local_size_x = 64) in;\n"
    "layout(std430, binding = 0) buffer Out { uint v[]; } o;\n"
    "layout(std140, binding = 1) uniform Table { uvec4 t[64]; } tab;\n"
    "void main() {\n"
    "  uint i = gl_GlobalInvocationID.x;\n"
    "  uvec4 e = tab.t[(i * 7u) % 64u];\n"
    "  o.v[i] = e.x + e.y + e.z + e.w;\n"
    "}\n";

TEST(uniform_binding) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.glsl = uniform_glsl;
  kc.glsl_name = "uniform.comp";
  kc.buffers = 2;
  kc.uniform_buffers = 1u << 2; /* no binding 2 */
  kiln_gpu_kernel *k = NULL;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_EINVAL);
  kc.uniform_buffers = 1u << 1;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_OK);
  check_table_kernel(dev, k, 1);
  /* a uniform binding larger than the device allows (lavapipe and NVIDIA: 64 KiB; the spec's
   * least 16 KiB; some drivers allow gigabytes, where this part is left out) */
  kiln_gpu_device_info info;
  kiln_gpu_device_get_info(dev, &info);
  uint64_t limit = info.max_uniform_range;
  if (limit <= (64u << 20)) {
    kiln_gpu_buffer *huge;
    KT_CODE(kiln_gpu_buffer_create(dev, limit + 16, &huge), KILN_OK);
    check_refused(dev, k, huge);
    kiln_gpu_buffer_destroy(huge);
  }
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* A uniform-texel-buffer binding (kiln_gpu_kernel_config.texel_buffers, RGBA32UI texels) read by
 * texelFetch at per-invocation indices; a binding named both uniform and texel, and a buffer
 * whose size is no whole number of texels, are refused. */
static const char *texel_glsl = "#version 450\n"
                                "layout(local_size_x = 64) in;\n"
                                "layout(std430, binding = 0) buffer Out { uint v[]; } o;\n"
                                "layout(binding = 1) uniform usamplerBuffer tab;\n"
                                "void main() {\n"
                                "  uint i = gl_GlobalInvocationID.x;\n"
                                "  uvec4 e = texelFetch(tab, int((i * 7u) % 64u));\n"
                                "  o.v[i] = e.x + e.y + e.z + e.w;\n"
                                "}\n";

TEST(texel_binding) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  kc.glsl = texel_glsl;
  kc.glsl_name = "texel.comp";
  kc.buffers = 2;
  kc.texel_buffers = kc.uniform_buffers = 1u << 1;
  kiln_gpu_kernel *k = NULL;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_EINVAL);
  kc.uniform_buffers = 0;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_OK);
  check_table_kernel(dev, k, 10);
  kiln_gpu_buffer *odd;
  KT_CODE(kiln_gpu_buffer_create(dev, 100, &odd), KILN_OK); /* 6.25 texels */
  check_refused(dev, k, odd);
  kiln_gpu_buffer_destroy(odd);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* A word-texel binding (kiln_gpu_kernel_config.word_texel_buffers, R32UI texels) read by
 * texelFetch: the same table read word by word gives the same sums, the same buffer is bound as
 * RGBA32UI texels by one kernel and as words by another; a binding in two of the masks, and a
 * buffer whose size is no whole number of words, are refused (100 bytes: 25 words, fine). */
static const char *word_texel_glsl =
    "#version 450\n"
    "layout(local_size_x = 64) in;\n"
    "layout(std430, binding = 0) buffer Out { uint v[]; } o;\n"
    "layout(binding = 1) uniform usamplerBuffer tab;\n"
    "void main() {\n"
    "  uint i = gl_GlobalInvocationID.x, e = (i * 7u) % 64u;\n"
    "  uint s = 0u;\n"
    "  for (uint c = 0u; c < 4u; c++) s += texelFetch(tab, int(4u * e + c)).x;\n"
    "  o.v[i] = s;\n"
    "}\n";

TEST(word_texel_binding) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_kernel_config kc;
  kiln_gpu_kernel_config_default(&kc);
  KT_EQ(kc.word_texel_buffers, 0);
  kc.glsl = word_texel_glsl;
  kc.glsl_name = "word_texel.comp";
  kc.buffers = 2;
  kc.word_texel_buffers = kc.texel_buffers = 1u << 1;
  kiln_gpu_kernel *k = NULL, *quad = NULL;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_EINVAL);
  kc.texel_buffers = 0, kc.uniform_buffers = 1u << 1;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_EINVAL);
  kc.uniform_buffers = 0, kc.word_texel_buffers = 1u << 2; /* beyond the layout */
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_EINVAL);
  kc.word_texel_buffers = 1u << 1;
  KT_CODE(kiln_gpu_kernel_create(dev, &kc, &k), KILN_OK);
  check_table_kernel(dev, k, 3);
  /* one buffer, both views, one job */
  kiln_gpu_kernel_config qc;
  kiln_gpu_kernel_config_default(&qc);
  qc.glsl = texel_glsl, qc.glsl_name = "texel.comp", qc.buffers = 2, qc.texel_buffers = 1u << 1;
  KT_CODE(kiln_gpu_kernel_create(dev, &qc, &quad), KILN_OK);
  kiln_gpu_buffer *out[2], *table;
  for (int i = 0; i < 2; i++) KT_CODE(kiln_gpu_buffer_create(dev, 64 * 4, &out[i]), KILN_OK);
  KT_CODE(kiln_gpu_buffer_create(dev, 64 * 16, &table), KILN_OK);
  uint32_t t[64 * 4];
  for (uint32_t i = 0; i < 64 * 4; i++) t[i] = 7u * i + 1u;
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_upload(job, table, 0, t, sizeof t), KILN_OK);
  kiln_gpu_buffer *b0[2] = {out[0], table}, *b1[2] = {out[1], table};
  KT_CODE(kiln_gpu_job_dispatch(job, k, b0, NULL, 1, 1, 1), KILN_OK);
  KT_CODE(kiln_gpu_job_dispatch(job, quad, b1, NULL, 1, 1, 1), KILN_OK);
  kiln_gpu_readback *rb;
  KT_CODE(kiln_gpu_readback_create(dev, 2 * 64 * 4, &rb), KILN_OK);
  KT_CODE(kiln_gpu_job_download_into(job, out[0], 0, 64 * 4, rb, 0), KILN_OK);
  KT_CODE(kiln_gpu_job_download_into(job, out[1], 0, 64 * 4, rb, 64 * 4), KILN_OK);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  TG_OK(f, NULL);
  const uint32_t *got = kiln_gpu_readback_data(rb);
  for (uint32_t i = 0; i < 64; i++) {
    const uint32_t *e = t + 4 * ((i * 7u) % 64u);
    KT_EQ(got[i], e[0] + e[1] + e[2] + e[3]);
    KT_EQ(got[64 + i], got[i]);
  }
  kiln_future_release(f);
  kiln_gpu_readback_destroy(rb);
  kiln_gpu_buffer *odd;
  KT_CODE(kiln_gpu_buffer_create(dev, 102, &odd), KILN_OK); /* 25.5 words */
  check_refused(dev, k, odd);
  kiln_gpu_buffer_destroy(odd);
  KT_CODE(kiln_gpu_buffer_create(dev, 100, &odd), KILN_OK);
  check_refused(dev, quad, odd); /* 6.25 RGBA texels */
  kiln_gpu_job *ok;
  KT_CODE(kiln_gpu_job_create(dev, &ok), KILN_OK);
  kiln_gpu_buffer *bo[2] = {out[0], odd};
  KT_CODE(kiln_gpu_job_dispatch(ok, k, bo, NULL, 1, 1, 1), KILN_OK); /* 25 words */
  kiln_gpu_job_discard(ok);
  kiln_gpu_buffer_destroy(odd);
  for (int i = 0; i < 2; i++) kiln_gpu_buffer_destroy(out[i]);
  kiln_gpu_buffer_destroy(table);
  kiln_gpu_kernel_destroy(quad);
  kiln_gpu_kernel_destroy(k);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}

/* Downloads into a readback land where asked, in place (the future carries no value), the
 * readback reused job after job; out-of-range downloads fail the job with KILN_EINVAL. */
TEST(readback_in_place) {
  kiln_gpu *gpu = tg_gpu();
  kiln_gpu_device *dev = tg_device(gpu, NULL);
  kiln_gpu_buffer *a, *b;
  kiln_gpu_readback *rb;
  KT_CODE(kiln_gpu_buffer_create(dev, 256, &a), KILN_OK);
  KT_CODE(kiln_gpu_buffer_create(dev, 100, &b), KILN_OK);
  KT_CODE(kiln_gpu_readback_create(dev, 400, &rb), KILN_OK);
  KT_EQ(kiln_gpu_readback_get_size(rb), 400);
  const uint8_t *mem = kiln_gpu_readback_data(rb);
  for (int round = 0; round < 3; round++) {
    uint8_t da[256], db[100];
    memset(da, 10 + round, sizeof da), memset(db, 20 + round, sizeof db);
    kiln_gpu_job *job;
    KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
    KT_CODE(kiln_gpu_job_upload(job, a, 0, da, sizeof da), KILN_OK);
    KT_CODE(kiln_gpu_job_upload(job, b, 0, db, sizeof db), KILN_OK);
    KT_CODE(kiln_gpu_job_download_into(job, a, 0, 256, rb, 0), KILN_OK);
    KT_CODE(kiln_gpu_job_download_into(job, b, 10, 90, rb, 300), KILN_OK);
    kiln_future *f;
    KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
    void *v = (void *)1;
    TG_OK(f, &v);
    KT_PTR_EQ(v, NULL);
    for (int i = 0; i < 256; i++) KT_EQ(mem[i], 10 + round);
    for (int i = 300; i < 390; i++) KT_EQ(mem[i], 20 + round);
    kiln_future_release(f);
  }
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  KT_CODE(kiln_gpu_job_download_into(job, a, 0, 256, rb, 200), KILN_EINVAL); /* past its end */
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  KT_CODE(kiln_future_result(f, -1, NULL), KILN_EINVAL);
  kiln_future_release(f);
  kiln_gpu_readback_destroy(rb);
  kiln_gpu_readback_destroy(NULL);
  kiln_gpu_buffer_destroy(a);
  kiln_gpu_buffer_destroy(b);
  kiln_gpu_device_close(dev);
  tg_finish(gpu);
}
