// The engine's headers (gpu.h, render.h, image.h) compile as C++17 (extern "C", no C-only
// syntax) and link.
#include "kiln/gpu.h"
#include "kiln/image.h"
#include "kiln/render.h"

#include <cstdio>

int main() {
  kiln_gpu_config cfg{};
  kiln_gpu_config_default(&cfg);
  kiln_gpu_device_config dcfg{};
  kiln_gpu_device_config_default(&dcfg);
  std::size_t n = 0;
  const char *const *names = kiln_gpu_builtin_names(&n);
  if (n == 0 || names[0] == nullptr || dcfg.block_size == 0) {
    std::fprintf(stderr, "gpu.h: no embedded shaders or no defaults\n");
    return 1;
  }
  std::printf("ok headers (gpu.h, C++17): %zu embedded shaders, first %s\n", n, names[0]);
  return 0;
}
