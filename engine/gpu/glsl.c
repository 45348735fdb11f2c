/* glsl.c: user GLSL compute shaders compiled to SPIR-V at run time with glslang's C API
 * (glslang_c_interface.h), for embedders who do not want a build step.
 *
 * glslang reports errors as "ERROR: <string>:<line>: <text>"; they are rewritten as
 * "<name>:<line>: error: <text>", one a line, so that a message points into the user's file.
 * glslang_initialize_process() is reference-counted and locked inside glslang, so each compile
 * brackets itself with initialize/finalize and may run on any thread.
 *
 * Lock order: no engine locks. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glslang/Include/glslang_c_interface.h>
#include <glslang/Public/resource_limits_c.h>

#include "gpu_internal.h"

/* Appends glslang's log lines as "<name>:<line>: error: text". Returns the new buffer. */
static char *rewrite_log(char *out, const char *log, const char *name) {
  size_t len = out ? strlen(out) : 0;
  for (const char *p = log; p && *p;) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    const char *kind = NULL, *rest = NULL;
    if (n > 7 && strncmp(p, "ERROR: ", 7) == 0) kind = "error", rest = p + 7;
    else if (n > 9 && strncmp(p, "WARNING: ", 9) == 0) kind = "warning", rest = p + 9;
    char *line = NULL;
    if (kind) {
      /* "<string>:<line>: text" names a place; "N compilation errors..." does not. */
      const char *q = rest;
      while (isdigit((unsigned char)*q)) q++;
      unsigned long lineno = 0;
      char *after = NULL;
      if (q > rest && *q == ':') lineno = strtoul(q + 1, &after, 10);
      if (after && after > q + 1 && after[0] == ':' && after[1] == ' ')
        line = kiln__strdup_printf("%s:%lu: %s: %.*s\n", name, lineno, kind,
                                   (int)(n - (size_t)(after + 2 - p)), after + 2);
      else if (strstr(rest, "compilation errors") == NULL)
        line =
            kiln__strdup_printf("%s: %s: %.*s\n", name, kind, (int)(n - (size_t)(rest - p)), rest);
    }
    if (line) {
      size_t add = strlen(line);
      char *grown = realloc(out, len + add + 1);
      if (grown) {
        memcpy(grown + len, line, add + 1);
        out = grown;
        len += add;
      }
      free(line);
    }
    p = eol ? eol + 1 : NULL;
  }
  return out;
}

int kiln_gpu_compile_glsl(const char *source, const char *name, uint32_t **words, size_t *size,
                          char **message) {
  *words = NULL;
  *size = 0;
  if (message) *message = NULL;
  if (!source) return KILN_EINVAL;
  if (!name) name = "shader";
  glslang_initialize_process();
  glslang_input_t in = {
      .language = GLSLANG_SOURCE_GLSL,
      .stage = GLSLANG_STAGE_COMPUTE,
      .client = GLSLANG_CLIENT_VULKAN,
      .client_version = GLSLANG_TARGET_VULKAN_1_2,
      .target_language = GLSLANG_TARGET_SPV,
      .target_language_version = GLSLANG_TARGET_SPV_1_5,
      .code = source,
      .default_version = 450,
      .default_profile = GLSLANG_NO_PROFILE,
      .messages =
          GLSLANG_MSG_DEFAULT_BIT | GLSLANG_MSG_SPV_RULES_BIT | GLSLANG_MSG_VULKAN_RULES_BIT,
      .resource = glslang_default_resource(),
  };
  int rc = KILN_ENOMEM;
  char *log = NULL;
  glslang_shader_t *sh = glslang_shader_create(&in);
  glslang_program_t *prog = NULL;
  if (!sh) goto done;
  rc = KILN_EPARSE;
  if (!glslang_shader_preprocess(sh, &in) || !glslang_shader_parse(sh, &in)) {
    log = rewrite_log(log, glslang_shader_get_info_log(sh), name);
    goto done;
  }
  prog = glslang_program_create();
  if (!prog) {
    rc = KILN_ENOMEM;
    goto done;
  }
  glslang_program_add_shader(prog, sh);
  if (!glslang_program_link(prog, in.messages)) {
    log = rewrite_log(log, glslang_program_get_info_log(prog), name);
    goto done;
  }
  glslang_program_SPIRV_generate(prog, GLSLANG_STAGE_COMPUTE);
  size_t n = glslang_program_SPIRV_get_size(prog);
  const char *spv_msg = glslang_program_SPIRV_get_messages(prog);
  if (spv_msg && *spv_msg) log = rewrite_log(log, spv_msg, name);
  rc = KILN_ENOMEM;
  if (n == 0 || !(*words = malloc(n * sizeof(uint32_t)))) goto done;
  glslang_program_SPIRV_get(prog, *words);
  *size = n * sizeof(uint32_t);
  rc = 0;
done:
  if (rc == KILN_EPARSE && !log) log = kiln__strdup_printf("%s: error: does not compile\n", name);
  if (message) *message = log;
  else free(log);
  if (prog) glslang_program_delete(prog);
  if (sh) glslang_shader_delete(sh);
  glslang_finalize_process();
  return rc;
}
