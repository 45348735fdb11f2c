/* test_devices_env.c: GPU visibility from the environment. `kiln devices` run with the
 * scheduler's variables set (the built binary, KILN_CLI_PATH), and the CLI's device picking
 * (tools/kiln/devsel.c, compiled into this test) on the real instance: on a machine with only
 * lavapipe, CUDA_VISIBLE_DEVICES=0 leaves no GPU, so --device auto warns and goes on with the CPU
 * device while --device gpu fails with exit status 3. */
// kt: timeout 120
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_test_util.h"
#include "kt.h"

#include "../../tools/kiln/devsel.c"

static const char *const vis_vars[] = {"KILN_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES",
                                       "NVIDIA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                                       "HIP_VISIBLE_DEVICES"};

/* Only the variables given ("NAME=value", NULL-terminated) among the visibility variables. */
static void set_vis_env(const char *const *env) {
  for (size_t i = 0; i < sizeof vis_vars / sizeof *vis_vars; i++) unsetenv(vis_vars[i]);
  for (; env && *env; env++) {
    char *kv = keep(strdup(*env)), *eq = strchr(kv, '=');
    *eq = '\0';
    setenv(kv, eq + 1, 1);
  }
}

/* Runs `kiln devices ARG` with the visibility variables env; collects its output. */
static result devices(const char *arg, const char *const *env) {
  char *dir = tmpdir(), *o = fmt("%s/out", dir), *e = fmt("%s/err", dir);
  pid_t pid = fork();
  if (pid < 0) KT_FAIL("fork: %s", strerror(errno));
  if (pid == 0) {
    set_vis_env(env);
    int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fo, 1), dup2(fe, 2);
    execl(KILN_CLI_PATH, KILN_CLI_PATH, "devices", arg, (char *)NULL);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) KT_FAIL("waitpid: %s", strerror(errno));
  size_t len;
  result r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), (char *)read_all(o, &len),
              (char *)read_all(e, &len)};
  if (!r.out || !r.err) KT_FAIL("no output from kiln devices");
  return r;
}

#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})

static kiln_gpu *real_gpu(uint32_t *gpus) {
  kiln_gpu *gpu = NULL;
  KT_CODE(kiln_gpu_create(NULL, &gpu), KILN_OK);
  *gpus = 0;
  for (uint32_t i = 0; i < kiln_gpu_get_device_count(gpu); i++) {
    kiln_gpu_device_info d;
    kiln_gpu_get_device_info(gpu, i, &d);
    *gpus += d.type != KILN_GPU_TYPE_CPU;
  }
  return gpu;
}

/* `kiln devices` says which variable decided and what it leaves; KILN_ overrides CUDA_. */
TEST(devices_show_visibility) {
  result r = devices("--verbose", ENV(NULL));
  KT_EQ(r.status, 0);
  KT_STR_CONTAINS(r.out, "visibility: no KILN_, CUDA_, NVIDIA_, ROCR_ or HIP_VISIBLE_DEVICES set");
  KT_STR_CONTAINS(r.out, "   GPU-"); /* each device's UUID, as nvidia-smi writes it */

  r = devices("--verbose", ENV("CUDA_VISIBLE_DEVICES=999", "NVIDIA_VISIBLE_DEVICES=all"));
  KT_EQ(r.status, 0);
  KT_STR_CONTAINS(r.out, "visibility: CUDA_VISIBLE_DEVICES=999: 0 GPU(s) visible");
  KT_STR_CONTAINS(r.err, "entry 1 (\"999\") of the visible-devices list \"999\" is past the");

  r = devices("--verbose", ENV("KILN_VISIBLE_DEVICES=none", "CUDA_VISIBLE_DEVICES=999"));
  KT_EQ(r.status, 0);
  KT_STR_CONTAINS(r.out, "visibility: KILN_VISIBLE_DEVICES=none: 0 GPU(s) visible");
  KT_TRUE(strstr(r.err, "999") == NULL);

  r = devices("--json", ENV("ROCR_VISIBLE_DEVICES=-1"));
  KT_EQ(r.status, 0);
  KT_STR_CONTAINS(r.out, "\"visibility\": {\"variable\": \"ROCR_VISIBLE_DEVICES\", \"value\": "
                         "\"-1\", \"allocated\": false, \"visible_gpus\": []}");
  KT_STR_CONTAINS(r.out, "\"uuid\": \"GPU-");
}

/* A malformed variable: the devices are still listed (they help to correct it), then the error
 * naming the variable and quoting its value, exit status 2. */
TEST(devices_malformed_variable) {
  result r = devices("--verbose", ENV("CUDA_VISIBLE_DEVICES=0,gpu1"));
  KT_EQ(r.status, 2);
  KT_STR_CONTAINS(r.out, "0: ");
  KT_STR_CONTAINS(r.err, "kiln devices: CUDA_VISIBLE_DEVICES: entry 2 (\"gpu1\") of \"0,gpu1\" "
                         "is neither an index nor a GPU UUID");
}

/* Runs kiln_cli_pick_devices with stderr captured; returns its status, *err the stderr text. */
static int pick(kiln_gpu *gpu, const char *spec, bool quiet, uint32_t *idx, size_t *n, char *msg,
                char **err) {
  char *path = fmt("%s/stderr", tmpdir());
  fflush(stderr);
  int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  KT_TRUE(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  int status = kiln_cli_pick_devices(gpu, "kiln test", spec, idx, 16, n, quiet, msg, 1024);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  size_t len;
  *err = (char *)read_all(path, &len);
  KT_TRUE(*err != NULL);
  return status;
}

/* A GPU handed out but none usable: a loud warning, "auto" goes on with lavapipe, "gpu" fails
 * with 3. Without a variable nothing is printed. */
TEST(pick_warns_and_gpu_fails) {
  uint32_t gpus;
  kiln_gpu *gpu = real_gpu(&gpus);
  uint32_t idx[16];
  size_t n;
  char msg[1024], *err;
  /* on a machine with GPUs, an index past them leaves none, as "0" does on lavapipe alone */
  set_vis_env(gpus ? ENV("CUDA_VISIBLE_DEVICES=999") : ENV("CUDA_VISIBLE_DEVICES=0"));
  KT_EQ(pick(gpu, "auto", false, idx, &n, msg, &err), 0);
  KT_EQ(n, 1);
  kiln_gpu_device_info d;
  kiln_gpu_get_device_info(gpu, idx[0], &d);
  KT_EQ(d.type, KILN_GPU_TYPE_CPU);
  KT_STR_CONTAINS(err, ": no GPU visible");
  KT_STR_CONTAINS(err, "kiln test: WARNING: CUDA_VISIBLE_DEVICES=");
  KT_STR_CONTAINS(err, "hands this process a GPU, but kiln can use no GPU here");
  KT_STR_CONTAINS(err, gpus ? "names none of the" : "NVIDIA_DRIVER_CAPABILITIES");
  KT_STR_CONTAINS(err, "--device gpu makes this an error (exit 3)");

  KT_EQ(pick(gpu, "gpu", true, idx, &n, msg, &err), 3);
  KT_EQ(n, 0);
  KT_STR_CONTAINS(err, "WARNING"); /* even with quiet */
  KT_TRUE(strstr(err, "no GPU visible") == NULL);
  KT_STR_CONTAINS(msg, "--device gpu: \"gpu\": ");
  KT_STR_CONTAINS(msg, "; CUDA_VISIBLE_DEVICES=");

  KT_EQ(pick(gpu, "7x", true, idx, &n, msg, &err), 2);
  KT_STR_CONTAINS(msg, "not a number, type or name");

  /* a malformed variable: 2, naming it */
  set_vis_env(ENV("HIP_VISIBLE_DEVICES=gpu0"));
  KT_EQ(pick(gpu, "auto", false, idx, &n, msg, &err), 2);
  KT_STR_CONTAINS(msg, "HIP_VISIBLE_DEVICES: entry 1 (\"gpu0\") of \"gpu0\"");

  /* hiding every GPU on purpose ("none", "-1"): no warning */
  set_vis_env(ENV("KILN_VISIBLE_DEVICES=none", "CUDA_VISIBLE_DEVICES=0"));
  KT_EQ(pick(gpu, "auto", false, idx, &n, msg, &err), 0);
  KT_STR_CONTAINS(err, "KILN_VISIBLE_DEVICES=none: no GPU visible");
  KT_TRUE(strstr(err, "WARNING") == NULL);

  /* no variable: as kiln_gpu_select, silently */
  set_vis_env(NULL);
  KT_EQ(pick(gpu, "auto", false, idx, &n, msg, &err), 0);
  KT_EQ(n, 1);
  KT_STR_EQ(err, "");
  KT_EQ(pick(gpu, "gpu", false, idx, &n, msg, &err), gpus ? 0 : 3);
  kiln_gpu_destroy(gpu);
}

/* NVIDIA_VISIBLE_DEVICES of indices is the container runtime's (already applied): every NVIDIA GPU
 * stays visible, and it is said; its UUIDs are matched. */
TEST(pick_nvidia_host_indices) {
  uint32_t gpus;
  kiln_gpu *gpu = real_gpu(&gpus);
  uint32_t idx[16];
  size_t n;
  char msg[1024], *err;
  set_vis_env(ENV("NVIDIA_VISIBLE_DEVICES=3,5"));
  KT_EQ(pick(gpu, "auto", false, idx, &n, msg, &err), 0);
  KT_STR_CONTAINS(err, "names GPUs by the host's index");
  kiln_cli_visibility v;
  KT_EQ(kiln_cli_visibility_read(gpu, &v, msg, sizeof msg), 0);
  KT_TRUE(v.host_indices && v.allocated && v.restricted);
  uint32_t nvidia = 0;
  for (uint32_t i = 0; i < kiln_gpu_get_device_count(gpu); i++) {
    kiln_gpu_device_info d;
    kiln_gpu_get_device_info(gpu, i, &d);
    nvidia += d.type != KILN_GPU_TYPE_CPU && d.vendor_id == 0x10de;
  }
  KT_EQ(v.n, nvidia);
  set_vis_env(ENV("NVIDIA_VISIBLE_DEVICES=GPU-00000000-0000-0000-0000-00000000000f"));
  KT_EQ(kiln_cli_visibility_read(gpu, &v, msg, sizeof msg), 0);
  KT_FALSE(v.host_indices);
  KT_EQ(v.n, 0);
  kiln_gpu_destroy(gpu);
}
