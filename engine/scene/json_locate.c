/* json_locate.c: where a JSON path is in the scene text.
 *
 * cJSON keeps no source positions, so a semantic error (a roughness of 2 at
 * objects[3].material.roughness) is located by re-scanning the text: walk the path step by step,
 * skipping every value that is not on it. The text has already been parsed by cJSON, so it is valid
 * JSON; the scanner still never reads past the terminating NUL. A key step names the first
 * member of that name unless its index says which occurrence (the loader refuses duplicates and
 * points at the second). Keys are compared byte for byte as written (a key spelled with
 * escapes is not found, and the position of its parent is reported instead). */
#include <string.h>

#include "scene_internal.h"

typedef struct scan {
  const char *t;
  size_t i;
} scan;

static void skip_ws(scan *s) {
  while (s->t[s->i] == ' ' || s->t[s->i] == '\t' || s->t[s->i] == '\n' || s->t[s->i] == '\r')
    s->i++;
}

/* At an opening quote: moves past the closing one. */
static void skip_string(scan *s) {
  s->i++;
  while (s->t[s->i] && s->t[s->i] != '"') {
    if (s->t[s->i] == '\\' && s->t[s->i + 1]) s->i++;
    s->i++;
  }
  if (s->t[s->i] == '"') s->i++;
}

/* At the first character of a value: moves past it (iteratively, whatever the nesting). */
static void skip_value(scan *s) {
  int depth = 0;
  do {
    char c = s->t[s->i];
    if (!c) return;
    if (c == '"') {
      skip_string(s);
    } else if (c == '{' || c == '[') {
      depth++, s->i++;
    } else if (c == '}' || c == ']') {
      depth--, s->i++;
    } else if (depth > 0) {
      s->i++; /* ',', ':', whitespace, or part of a literal inside a container */
    } else {
      while (s->t[s->i] && !strchr(",]} \t\r\n", s->t[s->i])) s->i++;
    }
  } while (depth > 0);
}

/* At an opening quote: whether the raw key equals key. */
static bool key_is(const scan *s, const char *key) {
  size_t n = strlen(key);
  return strncmp(s->t + s->i + 1, key, n) == 0 && s->t[s->i + 1 + n] == '"';
}

/* At '{': finds the nth (0-based) member named key; on success s is at its value and *key_at at
 * its opening quote. */
static bool find_member(scan *s, const char *key, int nth, size_t *key_at) {
  s->i++;
  for (;;) {
    skip_ws(s);
    if (s->t[s->i] != '"') return false;
    size_t at = s->i;
    bool hit = key_is(s, key) && nth-- == 0;
    skip_string(s);
    skip_ws(s);
    if (s->t[s->i] != ':') return false;
    s->i++;
    skip_ws(s);
    if (hit) {
      *key_at = at;
      return true;
    }
    skip_value(s);
    skip_ws(s);
    if (s->t[s->i] != ',') return false;
    s->i++;
  }
}

/* At '[': finds element index; on success s is at it. */
static bool find_element(scan *s, int index) {
  s->i++;
  for (int k = 0;; k++) {
    skip_ws(s);
    if (!s->t[s->i] || s->t[s->i] == ']') return false;
    if (k == index) return true;
    skip_value(s);
    skip_ws(s);
    if (s->t[s->i] != ',') return false;
    s->i++;
  }
}

void kiln__text_position(const char *text, size_t off, int *line, int *column) {
  int l = 1, c = 1;
  for (size_t i = 0; i < off && text[i]; i++) {
    if (text[i] == '\n') l++, c = 1;
    else c++;
  }
  *line = l, *column = c;
}

bool kiln__json_locate(const char *text, const kiln__jpath_step *path, int n, bool at_key,
                       int *line, int *column) {
  scan s = {text, 0};
  skip_ws(&s);
  size_t best = s.i, key_at = s.i;
  bool found = true;
  for (int k = 0; k < n && found; k++) {
    scan t = s;
    if (path[k].key) {
      found = t.t[t.i] == '{' && find_member(&t, path[k].key, path[k].index, &key_at);
    } else {
      found = t.t[t.i] == '[' && find_element(&t, path[k].index);
      key_at = t.i;
    }
    if (found) s = t, best = s.i;
  }
  if (found && at_key && n > 0 && path[n - 1].key) best = key_at;
  kiln__text_position(text, best, line, column);
  return found;
}

/* cJSON decodes \u0000 into a NUL that ends the C string it returns, so "a\u0000b" would silently
 * become "a": the raw text is scanned for the escape instead. The text is valid JSON (cJSON
 * parsed it), so every backslash inside a string starts an escape of known length. */
size_t kiln__json_nul_escape(const char *text) {
  bool in_string = false;
  for (size_t i = 0; text[i]; i++) {
    if (text[i] == '"') {
      in_string = !in_string;
    } else if (in_string && text[i] == '\\') {
      if (text[i + 1] == 'u' && strncmp(text + i + 2, "0000", 4) == 0) return i;
      if (text[i + 1]) i++; /* the escaped character; \uXXXX's digits are plain characters */
    }
  }
  return (size_t)-1;
}
