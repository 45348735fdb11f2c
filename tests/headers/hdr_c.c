/* Every public header, included together, compiles as C11 with kiln's warnings. */
#include "kiln/error.h"
#include "kiln/sched.h"
#include "kiln/sync.h"
#include "kiln/scene.h"

#include <stdio.h>

int main(void) {
  const char *msg = kiln_strerror(KILN_ETIMEDOUT);
  kiln_pool_config cfg = {0}; /* the types are usable; only kiln_strerror is called */
  (void)cfg.threads;
  if (msg == NULL || msg[0] == '\0') {
    fprintf(stderr, "kiln_strerror returned nothing\n");
    return 1;
  }
  printf("ok headers (C11): %s\n", msg);
  return 0;
}
