/* fuzz_template.c: output-name templates (docs/JOBS.md, "Output names") and the CLI's pass and
 * format lists. The input's first line is a template (as a job's "output" or kiln render
 * --template gives it), checked and then expanded for a few frames, names and passes; the second
 * line goes to kiln_pass_parse, the third to kiln_format_parse. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"
#include "fuzz.h"
#include "kiln/batch.h"

static char *next_line(char **p) {
  char *s = *p;
  if (!s) return NULL;
  char *nl = strchr(s, '\n');
  if (nl) *nl = '\0';
  *p = nl ? nl + 1 : NULL;
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fz_cstr(data, size), *p = text;
  char *tmpl = next_line(&p), *passes = next_line(&p), *format = next_line(&p);
  char out[1024], msg[512];
  int rc = kiln__outname_check(tmpl, msg, sizeof msg);
  fz_report("template", rc, msg);
  if (rc == 0) {
    static const long frames[] = {0, 7, -12, 99999, LONG_MAX, LONG_MIN};
    static const char *const names[] = {NULL, "a", "front_left", ""};
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
      kiln__outname_vars v = {frames[i], names[i % 4], "depth", "png", (uint64_t)i};
      (void)kiln__outname_expand(tmpl, &v, out, sizeof out, msg, sizeof msg);
    }
    kiln__outname_vars v = {1, "x", "color", "exr", 1};
    (void)kiln__outname_expand(tmpl, &v, out, 8, msg, sizeof msg); /* one that may not fit */
  }
  if (passes) {
    unsigned bits = 0;
    kiln_error_detail err;
    rc = kiln_pass_parse(passes, &bits, &err);
    fz_report("passes", rc, err.message);
  }
  if (format) {
    kiln_format f;
    rc = kiln_format_parse(format, &f);
    fz_report("format", rc, rc ? "unknown" : kiln_format_name(f));
  }
  free(text);
  return 0;
}
