// Every public header, included together, compiles as C++17 (extern "C", no C-only syntax).
#include "kiln/error.h"
#include "kiln/sched.h"
#include "kiln/sync.h"
#include "kiln/scene.h"

#include <cstdio>

int main() {
  const char *msg = kiln_strerror(KILN_ETIMEDOUT);
  kiln_pool_config cfg{};  // the types are usable; only kiln_strerror is called
  (void)cfg.threads;
  if (msg == nullptr || msg[0] == '\0') {
    std::fprintf(stderr, "kiln_strerror returned nothing\n");
    return 1;
  }
  std::printf("ok headers (C++17): %s\n", msg);
  return 0;
}
