/* strings.c: formatted strings, allocated or into a caller's buffer (see base.h). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>

#include "base.h"

char *kiln__strdup_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

void kiln__say(char *msg, size_t cap, const char *fmt, ...) {
  if (!msg || !cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, cap, fmt, ap);
  va_end(ap);
}
