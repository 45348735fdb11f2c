/* select.c: device selection. kiln_gpu_visible() reads a scheduler's visibility list
 * (CUDA_VISIBLE_DEVICES and its kin: indices in PCI order, or UUIDs) into the GPUs it leaves;
 * kiln_gpu_select() and kiln_gpu_select_visible() turn a spec ("auto", "all", "gpu", a type, an
 * index or a name) into physical-device indices in order of preference, the latter among the
 * visible GPUs only; kiln_gpu_device_pick() chooses, among opened devices, the one with the least
 * work in flight.
 *
 * All read only what the instance described at creation (gpu->info) or the lanes' in-flight
 * hints, so they work for any number of devices: selection writes into the caller's array and
 * fails when it is too small; the pick walks the caller's array as given.
 *
 * Lock order: this file takes no locks. */
#define _GNU_SOURCE
#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
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

static bool is_gpu(const kiln_gpu_device_info *d) {
  return d->type != KILN_GPU_TYPE_CPU;
}

/* A selection in progress. The candidates are the devices it may choose, in the order ties go:
 * every device by index, or (visible) the visible GPUs in the list's order, then the CPU devices.
 * The chosen indices are distinct, in the caller's array of cap entries. */
typedef struct sel {
  const kiln_gpu *gpu;
  uint32_t *cand;
  size_t ncand;
  bool visible;    /* a visibility list applies */
  size_t numbered; /* visible: cand[0..numbered) are the visible GPUs, numbered 0.. by the spec */
  uint32_t *idx;
  size_t cap, n;
  size_t matches;    /* sel_add calls, duplicates included */
  bool overflow;     /* a distinct index did not fit: the call fails */
  char *msg;         /* why it failed (malloc'd), or NULL */
  bool show_devices; /* kiln_gpu_select follows msg with the list of devices */
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

/* Records why the selection fails; returns code. */
static int sel_fail(sel *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sel_fail(sel *s, int code, const char *fmt, ...) {
  free(s->msg);
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s->msg, fmt, ap) < 0) s->msg = NULL;
  va_end(ap);
  return code;
}

typedef bool (*want_fn)(const kiln_gpu_device_info *, const void *);

/* Adds the usable candidates that pass `want` in order of preference (stable by candidate order). */
static void add_ranked(sel *s, want_fn want, const void *arg) {
  for (int r = 0; r <= 4; r++)
    for (size_t k = 0; k < s->ncand; k++) {
      const kiln_gpu_device_info *d = &s->gpu->info[s->cand[k]];
      if (d->usable && rank(d->type) == r && want(d, arg)) sel_add(s, s->cand[k]);
    }
}

/* The best usable candidate (its index), or -1 when none is usable. */
static int64_t best_device(const sel *s) {
  int64_t best = -1;
  for (size_t k = 0; k < s->ncand; k++) {
    const kiln_gpu_device_info *d = &s->gpu->info[s->cand[k]];
    if (d->usable && (best < 0 || rank(d->type) < rank(s->gpu->info[best].type))) best = s->cand[k];
  }
  return best;
}

static bool want_gpu(const kiln_gpu_device_info *d, const void *arg) {
  (void)arg;
  return is_gpu(d);
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

static bool any_usable_gpu(const sel *s) {
  for (size_t k = 0; k < s->ncand; k++)
    if (s->gpu->info[s->cand[k]].usable && is_gpu(&s->gpu->info[s->cand[k]])) return true;
  return false;
}

/* ---- selection words ---------------------------------------------------------------------- */

/* "gpu" matched nothing: says whether no GPU is listed, none visible or none usable. */
static int fail_no_gpu(sel *s) {
  uint32_t listed = 0, visible = 0;
  for (uint32_t i = 0; i < s->gpu->nphys; i++) listed += is_gpu(&s->gpu->info[i]);
  for (size_t k = 0; k < s->ncand; k++) visible += is_gpu(&s->gpu->info[s->cand[k]]);
  s->show_devices = true;
  if (listed == 0)
    return sel_fail(s, KILN_EUNSUPPORTED,
                    "\"gpu\": Vulkan lists no GPU, only %s: no GPU driver is installed or loaded",
                    s->gpu->nphys ? "the CPU device (lavapipe)" : "no device");
  if (visible == 0)
    return sel_fail(s, KILN_EUNSUPPORTED,
                    "\"gpu\": none of the %u GPU(s) Vulkan lists is visible (visible-devices list)",
                    listed);
  return sel_fail(s, KILN_EUNSUPPORTED, "\"gpu\": no %sGPU is usable", s->visible ? "visible " : "");
}

/* A word that starts with a digit: a device index, or (visible) a position in the visible list. */
static int select_number(sel *s, const char *w) {
  char *end;
  unsigned long i = strtoul(w, &end, 10);
  if (*end != '\0')
    return sel_fail(s, KILN_EINVAL, "device selection \"%s\": not a number, type or name", w);
  s->show_devices = true;
  if (s->visible && i >= s->numbered)
    return sel_fail(s, KILN_EUNSUPPORTED, "visible GPU %lu does not exist (%zu visible)", i,
                    s->numbered);
  if (!s->visible && i >= s->gpu->nphys)
    return sel_fail(s, KILN_EUNSUPPORTED, "device %lu does not exist", i);
  uint32_t dev = s->visible ? s->cand[i] : (uint32_t)i;
  if (!s->gpu->info[dev].usable)
    return sel_fail(s, KILN_EUNSUPPORTED, "device %u is not usable", dev);
  sel_add(s, dev);
  s->show_devices = false; /* set above for the failures only */
  return 0;
}

/* Applies one word of a selection spec. */
static int select_word(sel *s, const char *w) {
  static const kiln_gpu_type types[] = {KILN_GPU_TYPE_OTHER, KILN_GPU_TYPE_INTEGRATED,
                                        KILN_GPU_TYPE_DISCRETE, KILN_GPU_TYPE_VIRTUAL,
                                        KILN_GPU_TYPE_CPU};
  size_t before = s->matches;
  if (w[0] == '\0' || strcasecmp(w, "auto") == 0) {
    int64_t best = best_device(s);
    if (best >= 0) sel_add(s, (uint32_t)best);
  } else if (strcasecmp(w, "all") == 0) {
    add_ranked(s, any_usable_gpu(s) ? want_gpu : want_any, NULL);
  } else if (strcasecmp(w, "gpu") == 0) {
    add_ranked(s, want_gpu, NULL);
    if (s->matches == before) return fail_no_gpu(s);
  } else if (isdigit((unsigned char)w[0])) {
    return select_number(s, w);
  } else {
    bool typed = false;
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
      if (strcasecmp(w, kiln_gpu_type_name(types[t])) == 0) {
        add_ranked(s, want_type, &types[t]);
        typed = true;
      }
    if (!typed) add_ranked(s, want_name, w);
  }
  if (s->matches == before) {
    s->show_devices = true;
    return sel_fail(s, KILN_EUNSUPPORTED, "no usable %sVulkan device matches \"%s\"",
                    s->visible ? "visible " : "", w);
  }
  return 0;
}

/* Logs the note on each CPU device chosen (INFO): its work runs on the CPU. */
static void note_cpu_devices(const sel *s) {
  bool any_gpu = any_usable_gpu(s);
  for (size_t i = 0; i < s->n; i++)
    if (s->gpu->info[s->idx[i]].type == KILN_GPU_TYPE_CPU)
      kiln__log(s->gpu, KILN_GPU_LOG_INFO,
                "selected device %u, %s: the CPU Vulkan driver (lavapipe); its work runs on the "
                "CPU, %s",
                s->idx[i], s->gpu->info[s->idx[i]].name,
                any_gpu      ? "as asked"
                : s->visible ? "because no usable GPU is visible"
                             : "because no GPU was found");
}

/* Fills s's candidates: every device, or the visible GPUs then the CPU devices. */
static int sel_candidates(sel *s, const uint32_t *visible, size_t nvisible) {
  const kiln_gpu *gpu = s->gpu;
  s->cand = malloc((gpu->nphys + nvisible + 1) * sizeof(*s->cand));
  if (!s->cand) return KILN_ENOMEM;
  s->visible = visible != NULL;
  if (!visible) {
    for (uint32_t i = 0; i < gpu->nphys; i++) s->cand[s->ncand++] = i;
    return 0;
  }
  for (size_t k = 0; k < nvisible; k++) {
    if (visible[k] >= gpu->nphys || !is_gpu(&gpu->info[visible[k]]))
      return sel_fail(s, KILN_EINVAL, "visible device %u is %s", visible[k],
                      visible[k] >= gpu->nphys ? "out of range" : "not a GPU");
    s->cand[s->ncand++] = visible[k];
  }
  s->numbered = s->ncand;
  for (uint32_t i = 0; i < gpu->nphys; i++)
    if (!is_gpu(&gpu->info[i])) s->cand[s->ncand++] = i;
  return 0;
}

/* The selection behind both entry points; on failure s->msg says why. */
static int select_spec(sel *s, const char *spec, const uint32_t *visible, size_t nvisible) {
  int rc = sel_candidates(s, visible, nvisible);
  if (rc) return rc;
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
    rc = select_word(s, word);
    free(word);
    if (rc) return rc;
    p = comma ? comma + 1 : NULL;
  } while (p);
  if (s->overflow)
    return sel_fail(s, KILN_EINVAL, "device selection \"%s\" matches more than %zu devices",
                    spec ? spec : "", s->cap);
  note_cpu_devices(s);
  return 0;
}

static void log_devices(const kiln_gpu *gpu) {
  for (uint32_t i = 0; i < gpu->nphys; i++)
    kiln__log(gpu, KILN_GPU_LOG_ERROR, "  device %u: %s (%s)%s%s", i, gpu->info[i].name,
              kiln_gpu_type_name(gpu->info[i].type),
              gpu->info[i].usable ? "" : ", unusable: ", gpu->info[i].unusable_reason);
}

int kiln_gpu_select(kiln_gpu *gpu, const char *spec, uint32_t *indices, size_t cap, size_t *n) {
  *n = 0;
  sel s = {.gpu = gpu, .idx = indices, .cap = cap};
  int rc = select_spec(&s, spec, NULL, 0);
  if (rc && s.msg) {
    kiln__log(gpu, KILN_GPU_LOG_ERROR, "%s%s", s.msg, s.show_devices ? "; devices:" : "");
    if (s.show_devices) log_devices(gpu);
  }
  if (!rc) *n = s.n;
  free(s.cand);
  free(s.msg);
  return rc == KILN_ENOMEM ? rc : rc ? KILN_EINVAL : 0; /* its contract: every miss is EINVAL */
}

int kiln_gpu_select_visible(kiln_gpu *gpu, const char *spec, const uint32_t *visible,
                            size_t nvisible, uint32_t *indices, size_t cap, size_t *n,
                            kiln_error_detail *err) {
  *n = 0;
  if (err) memset(err, 0, sizeof(*err));
  sel s = {.gpu = gpu, .idx = indices, .cap = cap};
  int rc = select_spec(&s, spec, visible, nvisible);
  if (!rc) *n = s.n;
  if (rc && err) {
    err->code = rc;
    snprintf(err->message, sizeof(err->message), "%s", s.msg ? s.msg : kiln_strerror(rc));
  }
  free(s.cand);
  free(s.msg);
  return rc;
}

/* ---- visibility lists --------------------------------------------------------------------- */

char *kiln_gpu_uuid_string(const uint8_t uuid[16], char *buf, size_t size) {
  char tmp[48] = "GPU-";
  char *p = tmp + 4;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    p += sprintf(p, "%02x", uuid[i]);
  }
  if (size) snprintf(buf, size, "%s", tmp);
  return buf;
}

/* Earlier on the PCI bus: domain, bus, device, function; the Vulkan index breaks ties. */
static bool pci_before(const kiln_gpu_device_info *a, const kiln_gpu_device_info *b) {
  if (a->pci_domain != b->pci_domain) return a->pci_domain < b->pci_domain;
  if (a->pci_bus != b->pci_bus) return a->pci_bus < b->pci_bus;
  if (a->pci_device != b->pci_device) return a->pci_device < b->pci_device;
  if (a->pci_function != b->pci_function) return a->pci_function < b->pci_function;
  return a->index < b->index;
}

/* The GPUs an index counts (of vendor, when not 0), in counting order, into out; returns how
 * many. PCI order when every one of them has an address; a mix cannot be ordered consistently,
 * so then Vulkan's order. */
static size_t counted_gpus(const kiln_gpu *gpu, uint32_t vendor, uint32_t *out) {
  size_t n = 0;
  bool pci = true;
  for (uint32_t i = 0; i < gpu->nphys; i++)
    if (is_gpu(&gpu->info[i]) && (!vendor || gpu->info[i].vendor_id == vendor)) {
      out[n++] = i;
      pci = pci && gpu->info[i].has_pci;
    }
  for (size_t k = 1; pci && k < n; k++) /* insertion sort: a handful of GPUs */
    for (size_t j = k; j > 0 && pci_before(&gpu->info[out[j]], &gpu->info[out[j - 1]]); j--) {
      uint32_t t = out[j];
      out[j] = out[j - 1], out[j - 1] = t;
    }
  return n;
}

typedef enum { ENT_INDEX, ENT_UUID, ENT_NONE } entry_kind;

/* One entry of a list, read; ENT_NONE is an entry that names no GPU by its form alone. */
typedef struct entry {
  entry_kind kind;
  uint64_t index;    /* ENT_INDEX (saturated) */
  uint8_t nib[32];   /* ENT_UUID: the hex digits given */
  size_t nnib;
  const char *why;   /* ENT_NONE: why, for the log; or why the entry is malformed */
  bool quiet;        /* ENT_NONE on purpose ("-1"): logged at INFO */
} entry;

static bool has_prefix(const char *e, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && strncasecmp(e, prefix, n) == 0;
}

/* Reads e[0..len); false when it is malformed (x->why says how). */
static bool read_entry(const char *e, size_t len, entry *x) {
  memset(x, 0, sizeof(*x));
  size_t digits = 0;
  while (digits < len && isdigit((unsigned char)e[digits])) digits++;
  if (len == 0) {
    x->kind = ENT_NONE, x->why = "is empty";
  } else if (digits == len) {
    x->kind = ENT_INDEX;
    for (size_t i = 0; i < len; i++)
      x->index = x->index > UINT32_MAX ? x->index : x->index * 10 + (uint64_t)(e[i] - '0');
  } else if (e[0] == '-' && len > 1 && strspn(e + 1, "0123456789") >= len - 1) {
    x->kind = ENT_NONE, x->why = "is a negative index", x->quiet = true;
  } else if (has_prefix(e, len, "MIG-")) {
    x->kind = ENT_NONE, x->why = "is a MIG instance, which Vulkan cannot use";
  } else {
    size_t i = has_prefix(e, len, "GPU-") ? 4 : 0;
    x->kind = ENT_UUID;
    for (; i < len; i++) {
      if (e[i] == '-') continue;
      if (!isxdigit((unsigned char)e[i])) {
        x->why = "is neither an index nor a GPU UUID (e.g. 0 or GPU-8a7f0c3e-...)";
        return false;
      }
      if (x->nnib == 32) {
        x->why = "has more than the 32 hex digits of a UUID";
        return false;
      }
      x->nib[x->nnib++] = (uint8_t)(isdigit((unsigned char)e[i]) ? e[i] - '0'
                                                                 : tolower((unsigned char)e[i]) - 'a' + 10);
    }
    if (x->nnib == 0) {
      x->why = "has no hex digit of a UUID";
      return false;
    }
  }
  return true;
}

static bool uuid_known(const kiln_gpu_device_info *d) {
  for (int i = 0; i < 16; i++)
    if (d->device_uuid[i]) return true;
  return false;
}

/* The device an entry names, or -1 (x->why, or why[], says why not). */
static int64_t resolve_entry(const kiln_gpu *gpu, const uint32_t *counted, size_t ncounted,
                             uint32_t vendor, entry *x, char *why, size_t whysize) {
  if (x->kind == ENT_NONE) return -1;
  if (x->kind == ENT_INDEX) {
    if (x->index < ncounted) return counted[x->index];
    if (vendor)
      snprintf(why, whysize, "is past the %zu GPU(s) of vendor 0x%04x that Vulkan lists", ncounted,
               vendor);
    else snprintf(why, whysize, "is past the %zu GPU(s) Vulkan lists", ncounted);
    x->why = why;
    return -1;
  }
  int64_t found = -1;
  size_t matches = 0;
  for (uint32_t i = 0; i < gpu->nphys; i++) {
    const kiln_gpu_device_info *d = &gpu->info[i];
    if (!is_gpu(d) || !uuid_known(d)) continue;
    size_t k = 0;
    while (k < x->nnib && x->nib[k] == (k % 2 ? d->device_uuid[k / 2] & 15 : d->device_uuid[k / 2] >> 4))
      k++;
    if (k == x->nnib) found = i, matches++;
  }
  if (matches == 1) return found;
  if (matches == 0) snprintf(why, whysize, "matches no GPU's UUID");
  else snprintf(why, whysize, "matches %zu GPUs' UUIDs (give more digits)", matches);
  x->why = why;
  return -1;
}

/* Trims spaces: e[0..*len) becomes the entry without them. */
static const char *trim(const char *e, size_t *len) {
  while (*len && isspace((unsigned char)*e)) e++, (*len)--;
  while (*len && isspace((unsigned char)e[*len - 1])) (*len)--;
  return e;
}

static bool list_is(const char *l, size_t len, const char *word) {
  return strlen(word) == len && strncasecmp(l, word, len) == 0;
}

static int vis_fail(kiln_error_detail *err, int code, size_t column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int vis_fail(kiln_error_detail *err, int code, size_t column, const char *fmt, ...) {
  if (!err) return code;
  err->code = code;
  err->column = column > INT_MAX ? 0 : (int)column;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return code;
}

/* Adds device i once; false when it does not fit. */
static bool vis_add(uint32_t *indices, size_t cap, size_t *n, uint32_t i) {
  for (size_t k = 0; k < *n; k++)
    if (indices[k] == i) return true;
  if (*n == cap) return false;
  indices[(*n)++] = i;
  return true;
}

/* Walks the entries of list: checks every one's form first (a malformed list is an error even
 * past the entry that ends it), then takes them up to the first that names no GPU. */
static int visible_entries(const kiln_gpu *gpu, const char *list, const uint32_t *counted,
                           size_t ncounted, uint32_t vendor, uint32_t *indices, size_t cap, size_t *n,
                           kiln_error_detail *err) {
  entry x;
  for (int pass = 0; pass < 2; pass++) {
    size_t k = 0;
    for (const char *p = list; p; k++) {
      const char *comma = strchr(p, ',');
      size_t len = comma ? (size_t)(comma - p) : strlen(p);
      const char *e = trim(p, &len);
      size_t column = (size_t)(e - list) + 1;
      p = comma ? comma + 1 : NULL;
      if (!read_entry(e, len, &x))
        return vis_fail(err, KILN_EINVAL, column, "entry %zu (\"%.*s\") of \"%.200s\" %s", k + 1,
                        (int)(len < 100 ? len : 100), e, list, x.why);
      if (pass == 0) continue;
      char why[96];
      int64_t dev = resolve_entry(gpu, counted, ncounted, vendor, &x, why, sizeof(why));
      if (dev < 0) {
        kiln__log(gpu, x.quiet ? KILN_GPU_LOG_INFO : KILN_GPU_LOG_WARN,
                  "entry %zu (\"%.*s\") of the visible-devices list \"%s\" %s: it and the entries "
                  "after it are ignored, as CUDA does",
                  k + 1, (int)len, e, list, x.why);
        return 0;
      }
      if (!vis_add(indices, cap, n, (uint32_t)dev))
        return vis_fail(err, KILN_EINVAL, column, "\"%.200s\" names more than %zu GPUs", list, cap);
    }
  }
  return 0;
}

int kiln_gpu_visible(const kiln_gpu *gpu, const char *list, uint32_t vendor_id,
                     uint32_t *indices, size_t cap, size_t *n, kiln_error_detail *err) {
  *n = 0;
  if (err) memset(err, 0, sizeof(*err));
  size_t len = strlen(list ? list : "all");
  const char *l = trim(list ? list : "all", &len);
  if (len == 0 || list_is(l, len, "none") || list_is(l, len, "void") ||
      list_is(l, len, "NoDevFiles"))
    return 0;
  uint32_t *counted = malloc((gpu->nphys + 1) * sizeof(*counted));
  if (!counted) return vis_fail(err, KILN_ENOMEM, 0, "out of memory");
  int rc = 0;
  if (list_is(l, len, "all")) {
    size_t ncounted = counted_gpus(gpu, 0, counted);
    for (size_t k = 0; k < ncounted && !rc; k++)
      if (!vis_add(indices, cap, n, counted[k]))
        rc = vis_fail(err, KILN_EINVAL, 1, "\"all\" names more than %zu GPUs", cap);
  } else {
    size_t ncounted = counted_gpus(gpu, vendor_id, counted);
    rc = visible_entries(gpu, list, counted, ncounted, vendor_id, indices, cap, n, err);
  }
  free(counted);
  if (rc) *n = 0;
  return rc;
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
