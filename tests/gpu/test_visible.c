/* test_visible.c: visibility lists (kiln_gpu_visible) and selection within them
 * (kiln_gpu_select_visible), over instances filled in by hand with GPUs no machine here has
 * (selection reads only the descriptions), and over the real instance (lavapipe in CI). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu_test_util.h"
#include "gpu_internal.h"

enum { NV = 0x10de, INTEL = 0x8086 };

/* A machine as Vulkan lists it, out of PCI order:
 *   0  NVIDIA  bus 0x81     1  lavapipe (CPU, no PCI)     2  NVIDIA  bus 0x01
 *   3  Intel integrated, bus 0x00                         4  NVIDIA  bus 0x41
 * so CUDA's indices (NVIDIA only, PCI order) are 0 -> 2, 1 -> 4, 2 -> 0. UUIDs: device i's is
 * i+1 repeated in its first byte, then distinct bytes; devices 2 and 4 share the prefix "ab". */
static kiln_gpu *fake_gpu(void) {
  kiln_gpu *gpu = calloc(1, sizeof(*gpu));
  KT_TRUE(gpu != NULL);
  tg_config(&gpu->cfg);
  gpu->nphys = 5;
  gpu->info = calloc(5, sizeof(*gpu->info));
  KT_TRUE(gpu->info != NULL);
  static const struct {
    kiln_gpu_type type;
    uint32_t vendor, bus;
    bool pci;
    uint8_t uuid0, uuid1;
  } dev[5] = {{KILN_GPU_TYPE_DISCRETE, NV, 0x81, true, 0x8a, 0x7f},
              {KILN_GPU_TYPE_CPU, 0x10005, 0, false, 0x6d, 0x65},
              {KILN_GPU_TYPE_DISCRETE, NV, 0x01, true, 0xab, 0x01},
              {KILN_GPU_TYPE_INTEGRATED, INTEL, 0x00, true, 0x12, 0x34},
              {KILN_GPU_TYPE_DISCRETE, NV, 0x41, true, 0xab, 0x02}};
  for (uint32_t i = 0; i < 5; i++) {
    kiln_gpu_device_info *d = &gpu->info[i];
    d->index = i;
    d->usable = true;
    d->type = dev[i].type;
    d->vendor_id = dev[i].vendor;
    d->has_pci = dev[i].pci;
    d->pci_bus = dev[i].bus;
    d->device_uuid[0] = dev[i].uuid0;
    d->device_uuid[1] = dev[i].uuid1;
    for (int b = 2; b < 16; b++) d->device_uuid[b] = (uint8_t)(16 * i + b);
    snprintf(d->name, sizeof(d->name), "Fake %u", i);
  }
  return gpu;
}

static void fake_gpu_free(kiln_gpu *gpu) {
  free(gpu->info);
  free(gpu);
}

/* kiln_gpu_visible into a string: "2,4" (device indices), or "error:CODE". */
static const char *vis(kiln_gpu *gpu, const char *list, uint32_t vendor) {
  static char out[128];
  uint32_t idx[8];
  size_t n = 99;
  kiln_error_detail err;
  int rc = kiln_gpu_visible(gpu, list, vendor, idx, 8, &n, &err);
  if (rc) {
    KT_EQ(n, 0);
    KT_EQ(err.code, rc);
    snprintf(out, sizeof out, "error:%s", kiln_err_name(rc));
    return out;
  }
  KT_EQ(err.code, 0);
  out[0] = '\0';
  for (size_t k = 0; k < n; k++)
    snprintf(out + strlen(out), sizeof out - strlen(out), "%s%u", k ? "," : "", idx[k]);
  return out;
}

/* Indices count the vendor's GPUs in PCI order, never the CPU device; the list's order is kept. */
TEST(indices_in_pci_order) {
  kiln_gpu *gpu = fake_gpu();
  KT_STR_EQ(vis(gpu, "0", NV), "2");
  KT_STR_EQ(vis(gpu, "1", NV), "4");
  KT_STR_EQ(vis(gpu, "2", NV), "0");
  KT_STR_EQ(vis(gpu, "2,0", NV), "0,2");
  KT_STR_EQ(vis(gpu, " 1 , 0 ", NV), "4,2");
  /* every vendor (KILN_VISIBLE_DEVICES): the Intel GPU on bus 0 comes first */
  KT_STR_EQ(vis(gpu, "0,1,2,3", 0), "3,2,4,0");
  /* a GPU named twice counts once */
  KT_STR_EQ(vis(gpu, "1,1,0", NV), "4,2");
  fake_gpu_free(gpu);
}

/* One GPU counted without a PCI address: Vulkan's order for all of them. */
TEST(indices_without_pci_follow_vulkan) {
  kiln_gpu *gpu = fake_gpu();
  gpu->info[4].has_pci = false;
  KT_STR_EQ(vis(gpu, "0,1,2", NV), "0,2,4");
  /* the Intel GPU is not counted under NVIDIA's variables, so its PCI address does not matter */
  gpu->info[4].has_pci = true;
  gpu->info[3].has_pci = false;
  KT_STR_EQ(vis(gpu, "0,1,2", NV), "2,4,0");
  KT_STR_EQ(vis(gpu, "0,1,2,3", 0), "0,2,3,4");
  fake_gpu_free(gpu);
}

/* UUIDs as nvidia-smi prints them, without "GPU-", without hyphens, in capitals, or a prefix. */
TEST(uuids) {
  kiln_gpu *gpu = fake_gpu();
  char full[48];
  kiln_gpu_uuid_string(gpu->info[0].device_uuid, full, sizeof full);
  KT_STR_EQ(full, "GPU-8a7f0203-0405-0607-0809-0a0b0c0d0e0f");
  KT_STR_EQ(vis(gpu, full, NV), "0");
  KT_STR_EQ(vis(gpu, full + 4, NV), "0");
  KT_STR_EQ(vis(gpu, "8A7F02030405060708090A0B0C0D0E0F", NV), "0");
  KT_STR_EQ(vis(gpu, "gpu-8a7f", NV), "0");
  KT_STR_EQ(vis(gpu, "GPU-ab-02", NV), "4");
  /* a UUID names its GPU whatever the vendor; mixed with indices */
  KT_STR_EQ(vis(gpu, "GPU-1234,0", NV), "3,2");
  /* a bare hex word that is no number is a UUID prefix too */
  KT_STR_EQ(vis(gpu, "ab01", NV), "2");
  /* the CPU device is never named, even by its UUID */
  KT_STR_EQ(vis(gpu, "GPU-6d65", NV), "");
  KT_TRUE(tg_logged("matches no GPU's UUID"));
  /* an ambiguous prefix names no GPU: the list ends there */
  KT_STR_EQ(vis(gpu, "0,GPU-ab,2", NV), "2");
  KT_TRUE(tg_logged("entry 2 (\"GPU-ab\") of the visible-devices list \"0,GPU-ab,2\" matches 2 "
                    "GPUs' UUIDs"));
  fake_gpu_free(gpu);
}

/* As CUDA: an entry that names no GPU ends the list, and is logged. */
TEST(invalid_entry_ends_list) {
  kiln_gpu *gpu = fake_gpu();
  KT_STR_EQ(vis(gpu, "0,7,1", NV), "2");
  KT_TRUE(tg_logged("warn: entry 2 (\"7\") of the visible-devices list \"0,7,1\" is past the 3 "
                    "GPU(s) of vendor 0x10de that Vulkan lists: it and the entries after it are "
                    "ignored"));
  KT_STR_EQ(vis(gpu, "3", NV), ""); /* the Intel GPU is not NVIDIA's fourth */
  KT_STR_EQ(vis(gpu, "99999999999999999999", NV), "");
  KT_STR_EQ(vis(gpu, "1,,0", NV), "4");
  KT_TRUE(tg_logged("(\"\") of the visible-devices list \"1,,0\" is empty"));
  KT_STR_EQ(vis(gpu, "MIG-8a7f0203-0405-0607-0809-0a0b0c0d0e0f,0", NV), "");
  KT_TRUE(tg_logged("is a MIG instance"));
  /* "-1", the usual way to hide every GPU, is a note, not a warning */
  KT_STR_EQ(vis(gpu, "-1", NV), "");
  KT_TRUE(tg_logged("info: entry 1 (\"-1\") of the visible-devices list \"-1\" is a negative"));
  KT_STR_EQ(vis(gpu, "1,-1,0", NV), "4");
  fake_gpu_free(gpu);
}

/* The words for no GPU and for every GPU. */
TEST(no_gpu_and_all) {
  kiln_gpu *gpu = fake_gpu();
  const char *none[] = {"", "  ", "none", "void", "NoDevFiles", "NODEVFILES", " none "};
  for (size_t i = 0; i < sizeof none / sizeof *none; i++) KT_STR_EQ(vis(gpu, none[i], NV), "");
  KT_STR_EQ(vis(gpu, "all", NV), "3,2,4,0"); /* every GPU, any vendor, PCI order */
  KT_STR_EQ(vis(gpu, NULL, NV), "3,2,4,0");
  uint32_t idx[2];
  size_t n;
  kiln_error_detail err;
  KT_CODE(kiln_gpu_visible(gpu, "all", 0, idx, 2, &n, &err), KILN_EINVAL);
  KT_STR_CONTAINS(err.message, "more than 2 GPUs");
  KT_CODE(kiln_gpu_visible(gpu, "0,1,2", NV, idx, 2, &n, &err), KILN_EINVAL);
  KT_EQ(err.column, 5);
  KT_CODE(kiln_gpu_visible(gpu, "0,1,1", NV, idx, 2, &n, &err), KILN_OK); /* duplicates fit */
  KT_EQ(n, 2);
  fake_gpu_free(gpu);
}

/* A value that is neither an index nor a UUID is an error that quotes it and points at the entry,
 * even past an entry that ends the list. */
TEST(malformed) {
  kiln_gpu *gpu = fake_gpu();
  static const struct {
    const char *list, *why;
    int column;
  } bad[] = {
      {"gpu0", "entry 1 (\"gpu0\") of \"gpu0\" is neither an index nor a GPU UUID", 1},
      {"0, cuda:1", "entry 2 (\"cuda:1\") of \"0, cuda:1\" is neither", 4},
      {"0,7,zz", "entry 3 (\"zz\") of \"0,7,zz\" is neither", 5},
      {"GPU-", "has no hex digit", 1},
      {"GPU-xyz", "is neither", 1},
      {"0x1", "is neither", 1},
      {"all,0", "entry 1 (\"all\")", 1},
      {"8a7f0203-0405-0607-0809-0a0b0c0d0e0f0", "more than the 32 hex digits", 1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint32_t idx[8];
    size_t n = 5;
    kiln_error_detail err;
    KT_CODE(kiln_gpu_visible(gpu, bad[i].list, NV, idx, 8, &n, &err), KILN_EINVAL);
    KT_EQ(n, 0);
    KT_STR_CONTAINS(err.message, bad[i].why);
    KT_EQ(err.column, bad[i].column);
  }
  fake_gpu_free(gpu);
}

/* kiln_gpu_select_visible: numbers are positions in the visible list, hidden GPUs are never
 * chosen, CPU devices stay, and "gpu" never falls back to them. */
TEST(select_within_visible) {
  kiln_gpu *gpu = fake_gpu();
  uint32_t vis_idx[8], idx[8];
  size_t nv, n;
  kiln_error_detail err;
  KT_CODE(kiln_gpu_visible(gpu, "2,0", NV, vis_idx, 8, &nv, NULL), KILN_OK); /* devices 0, 2 */
  KT_CODE(kiln_gpu_select_visible(gpu, "0", vis_idx, nv, idx, 8, &n, &err), KILN_OK);
  KT_EQ(n, 1);
  KT_EQ(idx[0], 0);
  KT_CODE(kiln_gpu_select_visible(gpu, "1", vis_idx, nv, idx, 8, &n, &err), KILN_OK);
  KT_EQ(idx[0], 2);
  KT_CODE(kiln_gpu_select_visible(gpu, "2", vis_idx, nv, idx, 8, &n, &err), KILN_EUNSUPPORTED);
  KT_STR_CONTAINS(err.message, "visible GPU 2 does not exist (2 visible)");
  /* ties go to the list's order; the hidden GPUs 3 and 4 are never chosen */
  KT_CODE(kiln_gpu_select_visible(gpu, "auto", vis_idx, nv, idx, 8, &n, &err), KILN_OK);
  KT_EQ(idx[0], 0);
  KT_CODE(kiln_gpu_select_visible(gpu, "all", vis_idx, nv, idx, 8, &n, &err), KILN_OK);
  KT_EQ(n, 2);
  KT_EQ(idx[0], 0);
  KT_EQ(idx[1], 2);
  KT_CODE(kiln_gpu_select_visible(gpu, "gpu", vis_idx, nv, idx, 8, &n, &err), KILN_OK);
  KT_EQ(n, 2);
  KT_CODE(kiln_gpu_select_visible(gpu, "integrated", vis_idx, nv, idx, 8, &n, &err),
          KILN_EUNSUPPORTED);
  KT_STR_CONTAINS(err.message, "no usable visible Vulkan device matches \"integrated\"");
  KT_CODE(kiln_gpu_select_visible(gpu, "cpu", vis_idx, nv, idx, 8, &n, &err), KILN_OK);
  KT_EQ(idx[0], 1);
  KT_CODE(kiln_gpu_select_visible(gpu, "1x", vis_idx, nv, idx, 8, &n, &err), KILN_EINVAL);
  KT_CODE(kiln_gpu_select_visible(gpu, "all", vis_idx, nv, idx, 1, &n, &err), KILN_EINVAL);
  KT_EQ(n, 0);

  /* no GPU visible: "auto" and "all" fall back to the CPU device, "gpu" fails */
  KT_CODE(kiln_gpu_select_visible(gpu, "auto", vis_idx, 0, idx, 8, &n, &err), KILN_OK);
  KT_EQ(n, 1);
  KT_EQ(idx[0], 1);
  KT_TRUE(tg_logged("because no usable GPU is visible"));
  KT_CODE(kiln_gpu_select_visible(gpu, "all", vis_idx, 0, idx, 8, &n, &err), KILN_OK);
  KT_EQ(idx[0], 1);
  n = 3;
  KT_CODE(kiln_gpu_select_visible(gpu, "gpu", vis_idx, 0, idx, 8, &n, &err), KILN_EUNSUPPORTED);
  KT_EQ(n, 0);
  KT_EQ(err.code, KILN_EUNSUPPORTED);
  KT_STR_CONTAINS(err.message, "none of the 4 GPU(s) Vulkan lists is visible");

  /* visible NULL: every device, as kiln_gpu_select, numbers are device indices */
  KT_CODE(kiln_gpu_select_visible(gpu, "3", NULL, 0, idx, 8, &n, &err), KILN_OK);
  KT_EQ(idx[0], 3);
  KT_CODE(kiln_gpu_select_visible(gpu, "9", NULL, 0, idx, 8, &n, &err), KILN_EUNSUPPORTED);
  KT_STR_CONTAINS(err.message, "device 9 does not exist");
  /* a visible list that names the CPU device or no device is the caller's mistake */
  uint32_t wrong = 1;
  KT_CODE(kiln_gpu_select_visible(gpu, "auto", &wrong, 1, idx, 8, &n, &err), KILN_EINVAL);
  KT_STR_CONTAINS(err.message, "visible device 1 is not a GPU");
  fake_gpu_free(gpu);
}

/* "gpu" where only the CPU device exists: KILN_EUNSUPPORTED from select_visible, KILN_EINVAL
 * (its older contract) from kiln_gpu_select, and an unusable GPU is not taken. */
TEST(gpu_word_without_gpu) {
  kiln_gpu *gpu = fake_gpu();
  gpu->info[0] = gpu->info[1]; /* one CPU device, listed first */
  gpu->info[0].index = 0;
  gpu->nphys = 1;
  uint32_t idx[4];
  size_t n;
  kiln_error_detail err;
  KT_CODE(kiln_gpu_select_visible(gpu, "gpu", NULL, 0, idx, 4, &n, &err), KILN_EUNSUPPORTED);
  KT_STR_CONTAINS(err.message, "Vulkan lists no GPU, only the CPU device (lavapipe)");
  KT_CODE(kiln_gpu_select(gpu, "gpu", idx, 4, &n), KILN_EINVAL);
  KT_TRUE(tg_logged("error: \"gpu\": Vulkan lists no GPU"));
  KT_CODE(kiln_gpu_select(gpu, "auto", idx, 4, &n), KILN_OK);
  fake_gpu_free(gpu);

  gpu = fake_gpu();
  for (uint32_t i = 0; i < 5; i++) gpu->info[i].usable = gpu->info[i].type == KILN_GPU_TYPE_CPU;
  KT_CODE(kiln_gpu_select_visible(gpu, "gpu", NULL, 0, idx, 4, &n, &err), KILN_EUNSUPPORTED);
  KT_STR_CONTAINS(err.message, "no GPU is usable");
  fake_gpu_free(gpu);
}

/* The real instance: each device described with its UUID; a CUDA list counts no CPU device, so on
 * a machine with only lavapipe CUDA_VISIBLE_DEVICES=0 leaves no GPU and "gpu" fails. */
TEST(real_instance) {
  kiln_gpu *gpu = tg_gpu();
  uint32_t gpus = 0, cpu = UINT32_MAX;
  for (uint32_t i = 0; i < kiln_gpu_get_device_count(gpu); i++) {
    kiln_gpu_device_info d;
    KT_CODE(kiln_gpu_get_device_info(gpu, i, &d), KILN_OK);
    bool known = false;
    for (int b = 0; b < 16; b++) known = known || d.device_uuid[b];
    if (d.api_version >= (1u << 22 | 1u << 12)) KT_TRUE(known); /* 1.1 and later have one */
    if (d.type == KILN_GPU_TYPE_CPU) cpu = i;
    else gpus++;
  }
  uint32_t vis_idx[16], idx[16];
  size_t nv = 99, n;
  kiln_error_detail err;
  KT_CODE(kiln_gpu_visible(gpu, gpus ? "99" : "0", NV, vis_idx, 16, &nv, &err), KILN_OK);
  KT_EQ(nv, 0);
  KT_TRUE(tg_logged("of the visible-devices list"));
  KT_CODE(kiln_gpu_select_visible(gpu, "gpu", vis_idx, nv, idx, 16, &n, &err), KILN_EUNSUPPORTED);
  if (cpu != UINT32_MAX) {
    KT_CODE(kiln_gpu_select_visible(gpu, "auto", vis_idx, nv, idx, 16, &n, &err), KILN_OK);
    KT_EQ(idx[0], cpu);
  }
  if (gpus == 0) {
    KT_CODE(kiln_gpu_select(gpu, "gpu", idx, 16, &n), KILN_EINVAL);
    KT_CODE(kiln_gpu_select_visible(gpu, "gpu", NULL, 0, idx, 16, &n, &err), KILN_EUNSUPPORTED);
    KT_STR_CONTAINS(err.message, "Vulkan lists no GPU");
  }
  tg_finish(gpu);
}
