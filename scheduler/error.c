/* error.c: kiln_strerror() and kiln_err_name(), generated from the one table in kiln/error.h, and
 * the formatting of a kiln_error_detail. */
#include "kiln/error.h"

#include <stdio.h>

const char *kiln_strerror(int code) {
  switch (code) {
    case KILN_OK: return "success";
#define KILN__ERR_MSG(name, value, msg) \
  case KILN_##name: return msg;
      KILN_ERRNO_MAP(KILN__ERR_MSG)
#undef KILN__ERR_MSG
    default: return "unknown error";
  }
}

const char *kiln_err_name(int code) {
  switch (code) {
    case KILN_OK: return "KILN_OK";
#define KILN__ERR_NAME(name, value, msg) \
  case KILN_##name: return "KILN_" #name;
      KILN_ERRNO_MAP(KILN__ERR_NAME)
#undef KILN__ERR_NAME
    default: return "KILN_UNKNOWN";
  }
}

int kiln_version(const char **str) {
  if (str) *str = KILN_VERSION_STRING;
  return KILN_VERSION_NUMBER;
}

char *kiln_error_detail_format(const kiln_error_detail *e, char *buf, size_t size) {
  if (!size) return buf;
  int n = 0;
  buf[0] = '\0';
  if (e->file[0] && e->line > 0 && e->column > 0)
    n = snprintf(buf, size, "%s:%d:%d: ", e->file, e->line, e->column);
  else if (e->file[0] && e->line > 0) n = snprintf(buf, size, "%s:%d: ", e->file, e->line);
  else if (e->file[0]) n = snprintf(buf, size, "%s: ", e->file);
  if (n < 0) n = 0;
  if ((size_t)n < size && e->path[0]) n += snprintf(buf + n, size - (size_t)n, "%s: ", e->path);
  if ((size_t)n < size) snprintf(buf + n, size - (size_t)n, "%s", e->message);
  return buf;
}
