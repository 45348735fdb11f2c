/* devices.c: `kiln devices`: lists the Vulkan devices kiln sees (kiln_gpu_create's enumeration),
 * usable or not, with their UUIDs, PCI addresses, queue families and memory heaps, and which of
 * them the scheduler's visibility variable (devsel.c) leaves to kiln, as text or as JSON (--json).
 * The driver's log goes to stderr: warnings and errors always, everything with --verbose. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kiln/gpu.h"
#include "cli.h"

typedef struct log_state {
  bool verbose;
} log_state;

static void on_log(void *arg, kiln_gpu_log_level level, const char *msg) {
  const log_state *s = arg;
  static const char *names[] = {"debug", "info", "warning", "error"};
  if (level >= KILN_GPU_LOG_WARN || s->verbose)
    fprintf(stderr, "kiln: %s: %s\n", names[level], msg);
}

/* Writes s as a JSON string literal. */
static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static void uuid_str(const uint8_t *u, char *out) {
  for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", u[i]);
}

/* The number --device gives device i under the visibility list, or -1 when the list hides it
 * (CPU devices are never hidden: they have no number); without a list, i itself. */
static int64_t visible_number(const kiln_cli_visibility *v, const kiln_gpu_device_info *d) {
  if (!v->restricted) return d->index;
  for (size_t k = 0; k < v->n; k++)
    if (v->idx[k] == d->index) return (int64_t)k;
  return -1;
}

static bool hidden(const kiln_cli_visibility *v, const kiln_gpu_device_info *d) {
  return d->type != KILN_GPU_TYPE_CPU && visible_number(v, d) < 0;
}

static void print_json(kiln_gpu *gpu, const kiln_cli_visibility *v, const char *vis_error) {
  uint32_t n = kiln_gpu_get_device_count(gpu);
  printf("{\"devices\": [");
  for (uint32_t i = 0; i < n; i++) {
    kiln_gpu_device_info d;
    kiln_gpu_get_device_info(gpu, i, &d);
    char api[32], dev_uuid[33], drv_uuid[33];
    uuid_str(d.device_uuid, dev_uuid);
    uuid_str(d.driver_uuid, drv_uuid);
    printf("%s\n  {\"index\": %u, \"name\": ", i ? "," : "", d.index);
    json_str(d.name);
    printf(", \"type\": \"%s\", \"vendor_id\": %u, \"device_id\": %u, \"api_version\": \"%s\", ",
           kiln_gpu_type_name(d.type), d.vendor_id, d.device_id,
           kiln_gpu_version_string(d.api_version, api, sizeof(api)));
    printf("\"driver_version\": %u, \"driver_name\": ", d.driver_version);
    json_str(d.driver_name);
    printf(", \"driver_info\": ");
    json_str(d.driver_info);
    char uuid[48], pci[32];
    printf(", \"device_uuid\": \"%s\", \"driver_uuid\": \"%s\", \"uuid\": \"%s\", \"pci_bus_id\": ",
           dev_uuid, drv_uuid, kiln_gpu_uuid_string(d.device_uuid, uuid, sizeof uuid));
    if (d.has_pci) printf("\"%s\"", kiln_cli_pci_string(&d, pci, sizeof pci));
    else printf("null");
    printf(", \"visible\": %s", hidden(v, &d) ? "false" : "true");
    if (v->restricted && d.type != KILN_GPU_TYPE_CPU && !hidden(v, &d))
      printf(", \"visible_number\": %lld", (long long)visible_number(v, &d));
    printf(", \"usable\": %s", d.usable ? "true" : "false");
    if (!d.usable) {
      printf(", \"unusable_reason\": ");
      json_str(d.unusable_reason);
    }
    printf(",\n   \"queue_families\": [");
    for (uint32_t f = 0; f < d.family_count; f++)
      printf("%s{\"queues\": %u, \"compute\": %s, \"graphics\": %s, \"transfer\": %s}",
             f ? ", " : "", d.families[f].queues, d.families[f].compute ? "true" : "false",
             d.families[f].graphics ? "true" : "false", d.families[f].transfer ? "true" : "false");
    printf("],\n   \"memory_heaps\": [");
    for (uint32_t h = 0; h < d.heap_count; h++)
      printf("%s{\"size\": %llu, \"device_local\": %s}", h ? ", " : "",
             (unsigned long long)d.heaps[h].size, d.heaps[h].device_local ? "true" : "false");
    printf("]}");
  }
  printf("\n ],\n \"visibility\": {\"variable\": ");
  if (v->var) json_str(v->var);
  else printf("null");
  printf(", \"value\": ");
  if (v->var) json_str(v->value);
  else printf("null");
  printf(", \"allocated\": %s, \"visible_gpus\": ", v->allocated ? "true" : "false");
  if (!v->restricted) printf("\"all\"");
  else {
    putchar('['); /* device indices, in --device's numbering */
    for (size_t k = 0; k < v->n; k++) printf("%s%u", k ? ", " : "", v->idx[k]);
    putchar(']');
  }
  if (vis_error) {
    printf(", \"error\": ");
    json_str(vis_error);
  }
  printf("}}\n");
}

static void print_text(kiln_gpu *gpu, const kiln_cli_visibility *v) {
  uint32_t n = kiln_gpu_get_device_count(gpu);
  for (uint32_t i = 0; i < n; i++) {
    kiln_gpu_device_info d;
    kiln_gpu_get_device_info(gpu, i, &d);
    char api[32], uuid[48], pci[32];
    printf("%u: %s (%s)%s%s", d.index, d.name, kiln_gpu_type_name(d.type),
           d.usable ? "" : ", unusable: ", d.unusable_reason);
    if (hidden(v, &d)) printf(" [hidden by %s]", v->var);
    else if (v->restricted && d.type != KILN_GPU_TYPE_CPU)
      printf(" [visible: --device %lld]", (long long)visible_number(v, &d));
    printf("\n   %s, %s%s\n", kiln_gpu_uuid_string(d.device_uuid, uuid, sizeof uuid),
           d.has_pci ? "PCI " : "", kiln_cli_pci_string(&d, pci, sizeof pci));
    printf("   Vulkan %s, driver %s (%s), vendor 0x%04x, device 0x%04x\n",
           kiln_gpu_version_string(d.api_version, api, sizeof(api)),
           d.driver_name[0] ? d.driver_name : "?", d.driver_info[0] ? d.driver_info : "?",
           d.vendor_id, d.device_id);
    for (uint32_t f = 0; f < d.family_count; f++)
      printf("   queue family %u: %u queue(s)%s%s%s\n", f, d.families[f].queues,
             d.families[f].compute ? " compute" : "", d.families[f].graphics ? " graphics" : "",
             d.families[f].transfer ? " transfer" : "");
    for (uint32_t h = 0; h < d.heap_count; h++)
      printf("   memory heap %u: %.1f MiB%s\n", h, (double)d.heaps[h].size / (1024.0 * 1024.0),
             d.heaps[h].device_local ? " device-local" : "");
  }
  if (!v->var)
    printf("visibility: no KILN_, CUDA_, NVIDIA_, ROCR_ or HIP_VISIBLE_DEVICES set: every device "
           "is visible\n");
  else
    printf("visibility: %s=%s: %zu GPU(s) visible, numbered from 0 by --device in this order:%s\n",
           v->var, v->value, v->n, v->n ? "" : " none");
  for (size_t k = 0; v->var && k < v->n; k++) printf("   --device %zu = device %u\n", k, v->idx[k]);
}

int kiln_cli_devices(int argc, char **argv) {
  bool json = false;
  log_state ls = {0};
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: kiln devices [--json] [--verbose]\n\n"
             "Lists the Vulkan devices kiln sees, usable or not, with their UUIDs, PCI addresses,\n"
             "queues and memory, and which GPUs the environment (KILN_VISIBLE_DEVICES,\n"
             "CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES,\n"
             "HIP_VISIBLE_DEVICES: the first set decides) leaves to kiln.\n"
             "  --json      machine-readable output\n"
             "  --verbose   also the driver's log\n");
      return 0;
    }
    if (strcmp(argv[i], "--json") == 0) json = true;
    else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) ls.verbose = true;
    else {
      fprintf(stderr, "kiln devices: unknown option %s\n(kiln devices --help shows the options)\n",
              argv[i]);
      return 2;
    }
  }
  kiln_gpu_config cfg;
  kiln_gpu_config_default(&cfg);
  cfg.log = on_log;
  cfg.log_arg = &ls;
  cfg.log_level = KILN_GPU_LOG_DEBUG;
  kiln_gpu *gpu;
  int rc = kiln_gpu_create(&cfg, &gpu);
  if (rc) {
    fprintf(stderr, "kiln devices: %s (%s)\n", kiln_strerror(rc), kiln_err_name(rc));
    return 1;
  }
  /* A malformed visibility variable is reported after the list, which helps to correct it. */
  kiln_cli_visibility v;
  char msg[1024];
  int status = kiln_cli_visibility_read(gpu, &v, msg, sizeof msg);
  if (json) print_json(gpu, &v, status ? msg : NULL);
  else print_text(gpu, &v);
  if (status) fprintf(stderr, "kiln devices: %s\n", msg);
  kiln_gpu_destroy(gpu);
  return status;
}
