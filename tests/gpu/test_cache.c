/* test_cache.c: the pipeline cache on disk: written at close, loaded (and reused) by the next
 * open of the same device and driver, ignored with a warning when corrupt. */
// kt: timeout 120
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu_test_util.h"

/* The one file in dir (the cache), or "" if none. */
static void cache_file(const char *dir, char *out, size_t size) {
  out[0] = '\0';
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(out, size, "%s/%s", dir, e->d_name);
    n++;
  }
  closedir(d);
  KT_TRUE(n <= 1); /* no temporary file left behind */
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Opens a device with the cache in dir, builds two kernels, runs one, closes. */
static kiln_gpu_device_stats run_once(kiln_gpu *gpu, const char *dir) {
  kiln_gpu_device_config cfg;
  kiln_gpu_device_config_default(&cfg);
  cfg.cache_dir = dir;
  cfg.block_size = 1u << 20;
  kiln_gpu_device *dev = tg_device(gpu, &cfg);
  kiln_gpu_kernel *k1 = tg_kernel(dev, "hash", 2, 8), *k2 = tg_kernel(dev, "iadd", 1, 8);
  kiln_gpu_buffer *buf;
  KT_CODE(kiln_gpu_buffer_create(dev, 256, &buf), KILN_OK);
  uint32_t zero[64] = {0}, push[2] = {64, 3};
  kiln_gpu_job *job;
  KT_CODE(kiln_gpu_job_create(dev, &job), KILN_OK);
  kiln_gpu_job_upload(job, buf, 0, zero, sizeof(zero));
  kiln_gpu_job_dispatch(job, k2, &buf, push, 1, 1, 1);
  kiln_gpu_job_download(job, buf, 0, 256, NULL);
  kiln_future *f;
  KT_CODE(kiln_gpu_job_submit(job, NULL, 0, &f), KILN_OK);
  void *v;
  TG_OK(f, &v);
  KT_EQ(((uint32_t *)v)[63], 3);
  kiln_future_release(f);
  kiln_gpu_device_stats st;
  kiln_gpu_device_get_stats(dev, &st);
  KT_EQ(st.pipelines_created, 2);
  kiln_gpu_buffer_destroy(buf);
  kiln_gpu_kernel_destroy(k1);
  kiln_gpu_kernel_destroy(k2);
  kiln_gpu_device_close(dev);
  return st;
}

TEST(reused_and_corrupt) {
  char dir[] = "/tmp/kiln-cache-test-XXXXXX";
  KT_TRUE(mkdtemp(dir) != NULL);
  char sub[256];
  snprintf(sub, sizeof(sub), "%s/nested/kiln", dir); /* created on first write */
  kiln_gpu *gpu = tg_gpu();

  /* First run: nothing to load; the cache is written at close. */
  kiln_gpu_device_stats st = run_once(gpu, sub);
  KT_EQ(st.pipeline_cache_loaded, 0);
  char path[512];
  cache_file(sub, path, sizeof(path));
  KT_TRUE(path[0] != '\0');
  long size = file_size(path);
  KT_TRUE(size > 24 + 16); /* kiln's header and at least the Vulkan header */

  /* Second run: the whole blob is loaded back into the driver's cache. */
  st = run_once(gpu, sub);
  KT_EQ(st.pipeline_cache_loaded, size - 24);

  /* Corrupt it (one byte flipped past the headers): ignored with a warning, still works. */
  FILE *fp = fopen(path, "r+b");
  KT_TRUE(fp != NULL);
  fseek(fp, size - 1, SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, size - 1, SEEK_SET);
  fputc(c ^ 0x5a, fp);
  fclose(fp);
  st = run_once(gpu, sub);
  KT_EQ(st.pipeline_cache_loaded, 0);
  KT_TRUE(tg_logged("ignoring pipeline cache"));
  KT_TRUE(tg_logged("checksum mismatch"));
  /* ... and rewritten whole at that close: the next run loads it again. */
  st = run_once(gpu, sub);
  KT_TRUE(st.pipeline_cache_loaded > 0);

  /* Garbage and a truncated file are ignored the same way. */
  fp = fopen(path, "wb");
  fputs("not a cache at all", fp);
  fclose(fp);
  st = run_once(gpu, sub);
  KT_EQ(st.pipeline_cache_loaded, 0);
  KT_TRUE(tg_logged("not a kiln pipeline cache"));
  KT_TRUE(truncate(path, 30) == 0);
  st = run_once(gpu, sub);
  KT_EQ(st.pipeline_cache_loaded, 0);

  /* A cache folder that cannot be created is a warning, not a failure. */
  char blocked[300];
  snprintf(blocked, sizeof(blocked), "%s/file", dir);
  fp = fopen(blocked, "wb");
  fclose(fp);
  snprintf(sub, sizeof(sub), "%s/file/kiln", dir);
  st = run_once(gpu, sub);
  KT_TRUE(tg_logged("cannot write pipeline cache"));

  tg_finish(gpu);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  KT_EQ(system(cmd), 0);
}
