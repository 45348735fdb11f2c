/* keep_vulkan_drivers.c: an LD_PRELOAD library for the ASan suites that open Vulkan. Its dlclose
 * keeps Vulkan drivers ("libvulkan_*.so") mapped and passes every other handle on to libc's.
 *
 * Why: Mesa's lavapipe allocates a block inside a pthread_once initialiser and keeps the pointer
 * only in its own globals; the Vulkan loader unloads the driver at vkDestroyInstance, after which
 * LeakSanitizer sees the block as leaked, with a stack wholly inside the unloaded library ("<unknown
 * module>"), which no suppression can name. Kept mapped, the driver's globals still point at the
 * block and nothing is reported, while kiln's own leaks are still found. Tests only; never
 * installed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <string.h>

int dlclose(void *handle) {
  static int (*real_dlclose)(void *);
  if (!real_dlclose) real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
  struct link_map *lm = NULL;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name) {
    const char *base = strrchr(lm->l_name, '/');
    base = base ? base + 1 : lm->l_name;
    if (strncmp(base, "libvulkan_", 10) == 0) return 0;
  }
  return real_dlclose ? real_dlclose(handle) : -1;
}
