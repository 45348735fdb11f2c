/* devsel.c: the devices a kiln command uses, following the scheduler's allocation.
 *
 * Schedulers and container runtimes hand GPUs to a process through an environment variable. kiln
 * reads the first of these that is set, in this order:
 *   KILN_VISIBLE_DEVICES    kiln's own: overrides the others (e.g. "none" to run on the CPU
 *                           without the warning below, or indices when the others are wrong)
 *   CUDA_VISIBLE_DEVICES    what Slurm's gres/gpu plugin (and most batch systems) set
 *   NVIDIA_VISIBLE_DEVICES  what the NVIDIA container runtime and Kubernetes' device plugin set
 *   ROCR_VISIBLE_DEVICES    AMD (ROCm); what Slurm sets for AMD GPUs
 *   HIP_VISIBLE_DEVICES     AMD (HIP)
 * and gives its value to kiln_gpu_visible (gpu.h: indices in PCI order or UUIDs, CUDA's rules);
 * indices count NVIDIA GPUs for the CUDA and NVIDIA variables, AMD GPUs for the ROCm and HIP ones,
 * every GPU for kiln's. NVIDIA_VISIBLE_DEVICES is an instruction to the container runtime, which
 * has already applied it when kiln runs: inside the container only the GPUs it names exist, and
 * its indices are the host's. So an NVIDIA_VISIBLE_DEVICES of indices makes every NVIDIA GPU
 * visible (CUDA does not read the variable either); its UUIDs are matched.
 *
 * When the variable hands out a GPU and no visible GPU is usable, the work falls back to lavapipe
 * (--device auto) with a loud warning on stderr that says why that usually happens, or fails at
 * once (--device gpu, exit 3). */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kiln/gpu.h"
#include "cli.h"

enum { VENDOR_NVIDIA = 0x10de, VENDOR_AMD = 0x1002 };

static const struct {
  const char *name;
  uint32_t vendor;
} vars[] = {
    {"KILN_VISIBLE_DEVICES", 0},
    {"CUDA_VISIBLE_DEVICES", VENDOR_NVIDIA},
    {"NVIDIA_VISIBLE_DEVICES", VENDOR_NVIDIA},
    {"ROCR_VISIBLE_DEVICES", VENDOR_AMD},
    {"HIP_VISIBLE_DEVICES", VENDOR_AMD},
};

/* The first entry of value, trimmed, into buf. */
static const char *first_entry(const char *value, char *buf, size_t size) {
  while (*value == ' ' || *value == '\t') value++;
  size_t len = strcspn(value, ",");
  while (len && (value[len - 1] == ' ' || value[len - 1] == '\t')) len--;
  snprintf(buf, size, "%.*s", (int)len, value);
  return buf;
}

/* True when value hands out at least one GPU: not a "no GPU" word, not led by "-1" or nothing. */
static bool hands_out_gpus(const char *value) {
  char e[64];
  first_entry(value, e, sizeof e);
  return e[0] && e[0] != '-' && strcasecmp(e, "none") && strcasecmp(e, "void") &&
         strcasecmp(e, "NoDevFiles");
}

/* True when every entry of value is a number (host indices). */
static bool only_indices(const char *value) {
  bool any = false;
  for (const char *p = value; *p; p++) {
    if (*p >= '0' && *p <= '9') any = true;
    else if (*p != ',' && *p != ' ' && *p != '\t') return false;
  }
  return any;
}

int kiln_cli_visibility_read(kiln_gpu *gpu, kiln_cli_visibility *v, char *msg, size_t size) {
  memset(v, 0, sizeof *v);
  for (size_t i = 0; i < sizeof vars / sizeof *vars && !v->var; i++)
    if ((v->value = getenv(vars[i].name))) v->var = vars[i].name, v->vendor = vars[i].vendor;
  if (!v->var) return 0;
  v->restricted = true;
  v->allocated = hands_out_gpus(v->value);
  if (!strcmp(v->var, "NVIDIA_VISIBLE_DEVICES") && only_indices(v->value)) {
    v->host_indices = true;
    for (uint32_t i = 0; i < kiln_gpu_get_device_count(gpu) && v->n < KILN_CLI_MAX_VISIBLE; i++) {
      kiln_gpu_device_info d;
      if (!kiln_gpu_get_device_info(gpu, i, &d) && d.type != KILN_GPU_TYPE_CPU &&
          d.vendor_id == VENDOR_NVIDIA)
        v->idx[v->n++] = i;
    }
    return 0;
  }
  kiln_error_detail err;
  int rc = kiln_gpu_visible(gpu, v->value, v->vendor, v->idx, KILN_CLI_MAX_VISIBLE, &v->n, &err);
  if (rc) {
    snprintf(msg, size, "%s: %s", v->var, err.message);
    return 2;
  }
  return 0;
}

/* "DDDD:BB:DD.F", or "no PCI address" when the driver does not say. */
const char *kiln_cli_pci_string(const kiln_gpu_device_info *d, char *buf, size_t size) {
  if (!d->has_pci) snprintf(buf, size, "no PCI address");
  else
    snprintf(buf, size, "%04x:%02x:%02x.%x", d->pci_domain, d->pci_bus, d->pci_device,
             d->pci_function);
  return buf;
}

static void print_visible(const char *cmd, kiln_gpu *gpu, const kiln_cli_visibility *v) {
  if (v->host_indices)
    fprintf(stderr,
            "%s: NVIDIA_VISIBLE_DEVICES=%s names GPUs by the host's index: the container runtime "
            "has made them the only ones here, so every NVIDIA GPU Vulkan lists is visible\n",
            cmd, v->value);
  if (v->n == 0) {
    fprintf(stderr, "%s: %s=%s: no GPU visible\n", cmd, v->var, v->value);
    return;
  }
  fprintf(stderr, "%s: %s=%s: visible GPU(s):\n", cmd, v->var, v->value);
  for (size_t k = 0; k < v->n; k++) {
    kiln_gpu_device_info d;
    char uuid[48], pci[32];
    kiln_gpu_get_device_info(gpu, v->idx[k], &d);
    fprintf(stderr, "  %zu = device %u: %s, %s, %s%s%s\n", k, d.index, d.name,
            kiln_gpu_uuid_string(d.device_uuid, uuid, sizeof uuid),
            kiln_cli_pci_string(&d, pci, sizeof pci), d.usable ? "" : ", unusable: ",
            d.unusable_reason);
  }
}

/* Is some ICD manifest of that name in the loader's standard folders? */
static bool icd_present(const char *file) {
  static const char *dirs[] = {"/etc/vulkan/icd.d", "/usr/share/vulkan/icd.d",
                               "/usr/local/share/vulkan/icd.d"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dirs[i], file);
    if (access(path, R_OK) == 0) return true;
  }
  return false;
}

/* The warning for a GPU handed out that cannot be used: why that happens, and what to do. */
static void warn_fallback(const char *cmd, kiln_gpu *gpu, const kiln_cli_visibility *v) {
  uint32_t listed = 0;
  for (uint32_t i = 0; i < kiln_gpu_get_device_count(gpu); i++) {
    kiln_gpu_device_info d;
    listed += !kiln_gpu_get_device_info(gpu, i, &d) && d.type != KILN_GPU_TYPE_CPU;
  }
  fprintf(stderr,
          "%s: WARNING: %s=%s hands this process a GPU, but kiln can use no GPU here.\n"
          "%s: WARNING: work that asks for --device auto runs on the CPU (lavapipe), many times "
          "slower.\n",
          cmd, v->var, v->value, cmd);
  if (listed && v->n == 0) {
    fprintf(stderr,
            "  %s names none of the %u GPU(s) Vulkan lists (`kiln devices` shows their indices "
            "and UUIDs).\n",
            v->var, listed);
  } else if (listed) {
    fprintf(stderr, "  The visible GPU(s) are not usable by kiln (`kiln devices` says why).\n");
  } else {
    const char *caps = getenv("NVIDIA_DRIVER_CAPABILITIES");
    const char *files = getenv("VK_DRIVER_FILES") ? getenv("VK_DRIVER_FILES")
                                                  : getenv("VK_ICD_FILENAMES");
    fprintf(stderr,
            "  Vulkan lists no GPU at all. Likely causes:\n"
            "  - in a container, the NVIDIA runtime mounts the Vulkan driver only when "
            "NVIDIA_DRIVER_CAPABILITIES includes graphics (here: %s); set "
            "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics (or all);\n"
            "  - the NVIDIA Vulkan ICD manifest nvidia_icd.json is %s /etc/vulkan/icd.d or "
            "/usr/share/vulkan/icd.d (it comes with the driver's GL/Vulkan libraries, e.g. "
            "libnvidia-gl-<version>)%s%s%s;\n"
            "  - for AMD GPUs, no Vulkan driver (mesa-vulkan-drivers' RADV), or /dev/dri not "
            "available to the job or container;\n"
            "  - the job's cgroup does not give it the GPU's device files.\n"
            "  `vulkaninfo --summary` shows what the Vulkan loader finds.\n",
            caps ? caps : "unset, which the runtime reads as compute,utility",
            icd_present("nvidia_icd.json") ? "present in" : "missing from",
            files ? " (VK_DRIVER_FILES/VK_ICD_FILENAMES limit the loader to " : "",
            files ? files : "", files ? ")" : "");
  }
  fprintf(stderr,
          "  --device gpu makes this an error (exit 3); KILN_VISIBLE_DEVICES=none runs on the "
          "CPU without this warning.\n");
}

static bool any_usable_gpu(kiln_gpu *gpu, const kiln_cli_visibility *v) {
  uint32_t count = v->restricted ? (uint32_t)v->n : kiln_gpu_get_device_count(gpu);
  for (uint32_t k = 0; k < count; k++) {
    kiln_gpu_device_info d;
    if (!kiln_gpu_get_device_info(gpu, v->restricted ? v->idx[k] : k, &d) && d.usable &&
        d.type != KILN_GPU_TYPE_CPU)
      return true;
  }
  return false;
}

int kiln_cli_pick_devices(kiln_gpu *gpu, const char *cmd, const char *spec, uint32_t *idx,
                          size_t cap, size_t *n, bool quiet, char *msg, size_t size) {
  *n = 0;
  kiln_cli_visibility v;
  int rc = kiln_cli_visibility_read(gpu, &v, msg, size);
  if (rc) return rc;
  if (v.var && !quiet) print_visible(cmd, gpu, &v);
  if (v.allocated && !any_usable_gpu(gpu, &v)) warn_fallback(cmd, gpu, &v);
  kiln_error_detail err;
  rc = kiln_gpu_select_visible(gpu, spec, v.restricted ? v.idx : NULL, v.n, idx, cap, n, &err);
  if (rc == 0) return 0;
  snprintf(msg, size, "--device %s: %s (`kiln devices` lists the devices%s%s%s%s)",
           spec ? spec : "auto", err.message, v.var ? "; " : "", v.var ? v.var : "",
           v.var ? "=" : "", v.var ? v.value : "");
  return rc == KILN_EUNSUPPORTED ? 3 : 2;
}
