/* A program outside kiln: runs one task computing 6*7 on an installed kiln and prints 42. */
#include <kiln/sched.h>

#include <stdint.h>
#include <stdio.h>

static int times(void *arg, void **result) {
  intptr_t x = (intptr_t)arg;
  *result = (void *)(x * 7);
  return 0;
}

int main(void) {
  kiln_pool *pool = NULL;
  kiln_future *f = NULL;
  void *value = NULL;
  int rc = kiln_pool_create(NULL, &pool);
  if (rc != 0) {
    fprintf(stderr, "kiln_pool_create: %s\n", kiln_strerror(rc));
    return 1;
  }
  rc = kiln_submit(pool, times, (void *)(intptr_t)6, &f);
  if (rc != 0) {
    fprintf(stderr, "kiln_submit: %s\n", kiln_strerror(rc));
    kiln_pool_destroy(pool);
    return 1;
  }
  rc = kiln_future_result(f, -1.0, &value);
  if (rc != 0) {
    fprintf(stderr, "kiln_future_result: %s\n", kiln_strerror(rc));
    kiln_future_release(f);
    kiln_pool_destroy(pool);
    return 1;
  }
  intptr_t answer = (intptr_t)value;
  printf("%ld\n", (long)answer);
  kiln_future_release(f);
  kiln_pool_destroy(pool);
  return answer == 42 ? 0 : 1;
}
