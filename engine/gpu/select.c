/* select.c: device selection. kiln_gpu_select() turns a spec ("auto", "all", a type, an index or
 * a name) into physical-device indices in order of preference; kiln_gpu_device_pick() chooses,
 * among opened devices, the one with the least work in flight.
 *
 * Both read only what the instance described at creation (gpu->info) or the lanes' in-flight
 * hints, so they work for any number of devices: selection writes into the caller's array and
 * fails when it is too small; the pick walks the caller's array as given.
 *
 * Lock order: this file takes no locks. */
#define _GNU_SOURCE
#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gpu_internal.h"

/* ---- ranking ------------------------------------------------------------------------------ */

/* Preference rank: lower is better. */
static int rank(kiln_gpu_type t) {
  switch (t) {
    case KILN_GPU_TYPE_DISCRETE: return 0;
    case KILN_GPU_TYPE_INTEGRATED: return 1;
    case KILN_GPU_TYPE_VIRTUAL: return 2;
    case KILN_GPU_TYPE_OTHER: return 3;
    case KILN_GPU_TYPE_CPU: return 4;
  }
  return 5;
}

/* The indices chosen so far: distinct, in the caller's array of cap entries. */
typedef struct sel {
  uint32_t *idx;
  size_t cap, n;
  size_t matches; /* sel_add calls, duplicates included */
  bool overflow;  /* a distinct index did not fit: the call fails */
} sel;

static void sel_add(sel *s, uint32_t i) {
  s->matches++;
  for (size_t k = 0; k < s->n; k++)
    if (s->idx[k] == i) return;
  if (s->n == s->cap) {
    s->overflow = true;
    return;
  }
  s->idx[s->n++] = i;
}

typedef bool (*want_fn)(const kiln_gpu_device_info *, const void *);

/* Adds the usable devices that pass `want` in order of preference (stable by index). */
static void add_ranked(const kiln_gpu *gpu, sel *s, want_fn want, const void *arg) {
  for (int r = 0; r <= 4; r++)
    for (uint32_t i = 0; i < gpu->nphys; i++)
      if (gpu->info[i].usable && rank(gpu->info[i].type) == r && want(&gpu->info[i], arg))
        sel_add(s, i);
}

/* The best usable device (its index), or -1 when none is usable. */
static int64_t best_device(const kiln_gpu *gpu) {
  int64_t best = -1;
  for (uint32_t i = 0; i < gpu->nphys; i++)
    if (gpu->info[i].usable && (best < 0 || rank(gpu->info[i].type) < rank(gpu->info[best].type)))
      best = i;
  return best;
}

static bool want_gpu(const kiln_gpu_device_info *d, const void *arg) {
  (void)arg;
  return d->type != KILN_GPU_TYPE_CPU;
}
static bool want_any(const kiln_gpu_device_info *d, const void *arg) {
  (void)d, (void)arg;
  return true;
}
static bool want_type(const kiln_gpu_device_info *d, const void *arg) {
  return d->type == *(const kiln_gpu_type *)arg;
}
static bool want_name(const kiln_gpu_device_info *d, const void *arg) {
  return strcasestr(d->name, arg) != NULL;
}

static bool any_usable_gpu(const kiln_gpu *gpu) {
  for (uint32_t i = 0; i < gpu->nphys; i++)
    if (gpu->info[i].usable && gpu->info[i].type != KILN_GPU_TYPE_CPU) return true;
  return false;
}

/* ---- kiln_gpu_select ---------------------------------------------------------------------- */

static void log_devices(const kiln_gpu *gpu) {
  for (uint32_t i = 0; i < gpu->nphys; i++)
    kiln__log(gpu, KILN_GPU_LOG_ERROR, "  device %u: %s (%s)%s%s", i, gpu->info[i].name,
              kiln_gpu_type_name(gpu->info[i].type),
              gpu->info[i].usable ? "" : ", unusable: ", gpu->info[i].unusable_reason);
}

/* Applies one word of a selection spec. */
static int select_word(const kiln_gpu *gpu, const char *w, sel *s) {
  static const kiln_gpu_type types[] = {KILN_GPU_TYPE_OTHER, KILN_GPU_TYPE_INTEGRATED,
                                        KILN_GPU_TYPE_DISCRETE, KILN_GPU_TYPE_VIRTUAL,
                                        KILN_GPU_TYPE_CPU};
  size_t before = s->matches;
  if (w[0] == '\0' || strcasecmp(w, "auto") == 0) {
    int64_t best = best_device(gpu);
    if (best >= 0) sel_add(s, (uint32_t)best);
  } else if (strcasecmp(w, "all") == 0) {
    add_ranked(gpu, s, any_usable_gpu(gpu) ? want_gpu : want_any, NULL);
  } else if (isdigit((unsigned char)w[0])) {
    char *end;
    unsigned long i = strtoul(w, &end, 10);
    if (*end != '\0') {
      kiln__log(gpu, KILN_GPU_LOG_ERROR, "device selection \"%s\": not a number, type or name", w);
      return KILN_EINVAL;
    }
    if (i >= gpu->nphys || !gpu->info[i].usable) {
      kiln__log(gpu, KILN_GPU_LOG_ERROR, "device %lu %s; devices:", i,
                i >= gpu->nphys ? "does not exist" : "is not usable");
      log_devices(gpu);
      return KILN_EINVAL;
    }
    sel_add(s, (uint32_t)i);
  } else {
    bool typed = false;
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
      if (strcasecmp(w, kiln_gpu_type_name(types[t])) == 0) {
        add_ranked(gpu, s, want_type, &types[t]);
        typed = true;
      }
    if (!typed) add_ranked(gpu, s, want_name, w);
  }
  if (s->matches == before) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR, "no usable Vulkan device matches \"%s\"; devices:", w);
    log_devices(gpu);
    return KILN_EINVAL;
  }
  return 0;
}

/* Logs the note on each CPU device chosen (INFO): its work runs on the CPU. */
static void note_cpu_devices(const kiln_gpu *gpu, const sel *s) {
  bool any_gpu = any_usable_gpu(gpu);
  for (size_t i = 0; i < s->n; i++)
    if (gpu->info[s->idx[i]].type == KILN_GPU_TYPE_CPU)
      kiln__log(gpu, KILN_GPU_LOG_INFO,
                "selected device %u, %s: the CPU Vulkan driver (lavapipe); its work runs on the "
                "CPU, %s",
                s->idx[i], gpu->info[s->idx[i]].name,
                any_gpu ? "as asked" : "because no GPU was found");
}

int kiln_gpu_select(kiln_gpu *gpu, const char *spec, uint32_t *indices, size_t cap, size_t *n) {
  *n = 0;
  sel s = {.idx = indices, .cap = cap};
  const char *p = spec ? spec : "";
  do {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    while (len && isspace((unsigned char)*p)) p++, len--;
    while (len && isspace((unsigned char)p[len - 1])) len--;
    char *word = malloc(len + 1); /* any length: a long word is a name that matches nothing */
    if (!word) return KILN_ENOMEM;
    memcpy(word, p, len);
    word[len] = '\0';
    int rc = select_word(gpu, word, &s);
    free(word);
    if (rc) return rc;
    p = comma ? comma + 1 : NULL;
  } while (p);
  if (s.overflow) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR, "device selection \"%s\" matches more than %zu devices",
              spec ? spec : "", cap);
    return KILN_EINVAL;
  }
  note_cpu_devices(gpu, &s);
  *n = s.n;
  return 0;
}

/* ---- kiln_gpu_device_pick ----------------------------------------------------------------- */

int kiln_gpu_device_pick(kiln_gpu_device *const *devs, size_t n) {
  assert(n <= INT_MAX); /* the result is an int */
  int best = -1;
  uint64_t best_load = UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (kiln_gpu_device_lost(devs[i])) continue;
    uint64_t load = 0;
    for (uint32_t l = 0; l < devs[i]->nlanes; l++)
      load += atomic_load_explicit(&devs[i]->lanes[l].in_flight, memory_order_relaxed);
    if (load < best_load) best = (int)i, best_load = load;
  }
  return best;
}
