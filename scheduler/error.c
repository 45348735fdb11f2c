/* error.c: kiln_strerror() and kiln_err_name(), generated from the one table in kiln/error.h. */
#include "kiln/error.h"

const char *kiln_strerror(int code) {
  switch (code) {
  case KILN_OK: return "success";
#define KILN__ERR_MSG(name, value, msg) case KILN_##name: return msg;
    KILN_ERRNO_MAP(KILN__ERR_MSG)
#undef KILN__ERR_MSG
  default: return "unknown error";
  }
}

const char *kiln_err_name(int code) {
  switch (code) {
  case KILN_OK: return "KILN_OK";
#define KILN__ERR_NAME(name, value, msg) case KILN_##name: return "KILN_" #name;
    KILN_ERRNO_MAP(KILN__ERR_NAME)
#undef KILN__ERR_NAME
  default: return "KILN_UNKNOWN";
  }
}

int kiln_version(const char **str) {
  if (str) *str = KILN_VERSION_STRING;
  return KILN_VERSION_NUMBER;
}
