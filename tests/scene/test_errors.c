/* test_errors.c: every error says where: file, line, column, JSON path, and what. The expected
 * position of each case is the first occurrence of a marker in its text (the value or key at
 * fault), so the table states exactly where each error must point. */
#include <math.h>

#include "scene_test_util.h"

#include <sys/stat.h>
#include <unistd.h>

/* An allocation larger than the sanitizers' limit must return NULL (as malloc does), not end the
 * process: out_of_memory_blames_the_mesh asks for one. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "allocator_may_return_null=1"; }

#define CAM "\"camera\": {\"position\": [0, 0, -1], \"look_at\": [0, 0, 0]},\n"
#define DIF "{\"type\": \"diffuse\"}"
#define SPHERE(mat) \
  "\"objects\": [\n  {\"type\": \"sphere\", \"radius\": 1, \"material\": " mat "}\n]\n"

typedef struct ecase {
  const char *json;
  int code;
  const char *path;     /* expected err.path */
  const char *marker;   /* expected line:column = first occurrence of this in json; NULL: 1:1 */
  const char *fragment; /* in err.message */
} ecase;

static const ecase cases[] = {
    /* semantic errors in every section */
    {"{\n" CAM SPHERE("{\"type\": \"conductor\", \"roughness\": 2.5}") "}", KILN_EPARSE,
     "objects[0].material.roughness", "2.5", "roughness must be in [0, 1]"},
    {"{\n" CAM SPHERE("{\"type\": \"diffuse\", \"albdo\": [1, 1, 1]}") "}", KILN_EPARSE,
     "objects[0].material.albdo", "\"albdo\"", "did you mean 'albedo'"},
    {"{\n" CAM SPHERE("{\"type\": \"diffuse\", \"albedo\": [1, 1e999, 1]}") "}", KILN_EPARSE,
     "objects[0].material.albedo[1]", "1e999", "finite"},
    {"{\n" CAM SPHERE("{\"type\": \"diffuse\", \"albedo\": [1, 1.5, 1]}") "}", KILN_EPARSE,
     "objects[0].material.albedo[1]", "1.5", "in [0, 1]"},
    {"{\n" CAM SPHERE("{\"type\": \"dielectric\", \"ior\": 1.0}") "}", KILN_EPARSE,
     "objects[0].material.ior", "1.0", "ior must be > 1"},
    {"{\n" CAM SPHERE("{\"type\": \"emissive\", \"emission\": [0, 0, 0]}") "}", KILN_EPARSE,
     "objects[0].material.emission", "[0, 0, 0]}}", "black"},
    /* the principled material */
    {"{\n" CAM SPHERE("{\"type\": \"principled\", \"base_colour\": [1, 1, 1]}") "}",
     KILN_EPARSE, "objects[0].material.base_colour", "\"base_colour\"",
     "did you mean 'base_color'"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\", \"metallic\": 1.5}") "}", KILN_EPARSE,
     "objects[0].material.metallic", "1.5", "metallic must be in [0, 1]"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\", \"ior\": 0.5}") "}", KILN_EPARSE,
     "objects[0].material.ior", "0.5", "ior must be >= 1"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\", \"alpha_cutoff\": -0.25}") "}", KILN_EPARSE,
     "objects[0].material.alpha_cutoff", "-0.25", "alpha_cutoff must be in [0, 1]"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\", \"texture\": \"a.png\"}") "}", KILN_EPARSE,
     "objects[0].material.texture", "\"texture\"", "unknown key 'texture'"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\",\n \"uv_transform\": {\"scale\": [1, 2, 3]}}") "}",
     KILN_EPARSE, "objects[0].material.uv_transform.scale", "[1, 2, 3]", "array of 2 numbers"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\",\n \"uv_transform\": {\"offst\": [0, 1]}}") "}",
     KILN_EPARSE, "objects[0].material.uv_transform.offst", "\"offst\"",
     "did you mean 'offset'"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\",\n \"uv_transform\": {\"offset\": [0, true]}}") "}",
     KILN_EPARSE, "objects[0].material.uv_transform.offset[1]", "true", "finite number"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\", \"emission_texture\": \"e.png\"}") "}",
     KILN_EPARSE, "objects[0].material.emission_texture", "\"e.png\"", "emission, which is black"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\", \"normal_texture\": \"n.png\"}") "}",
     KILN_EIO, "objects[0].material.normal_texture", "\"n.png\"", "cannot open"},
    {"{\n" CAM SPHERE("{\"type\": \"principled\", \"base_color_texture\": 3}") "}",
     KILN_EPARSE, "objects[0].material.base_color_texture", "3}", "non-empty string"},
    {"{\n" CAM SPHERE("{\"type\": \"plastic\"}") "}", KILN_EPARSE, "objects[0].material.type",
     "\"plastic\"", "unknown type 'plastic'"},
    {"{\n" CAM SPHERE("\"whte\"") ",\n\"materials\": {\"white\": {\"type\": \"diffuse\"}}}",
     KILN_EPARSE, "objects[0].material", "\"whte\"", "did you mean 'white'"},
    {"{\n" CAM SPHERE("7") "}", KILN_EPARSE, "objects[0].material", "7}",
     "material name or a material object"},
    {"{\n" CAM
     "\"objects\": [\n  {\"type\": \"sphere\", \"radius\": -0.5, \"material\": {\"type\": \"diffuse\"}}\n]}",
     KILN_EPARSE, "objects[0].radius", "-0.5", "radius must be > 0"},
    {"{\n" CAM "\"objects\": [\n  {\"type\": \"spher\", \"radius\": 1}\n]}", KILN_EPARSE,
     "objects[0].type", "\"spher\"", "did you mean 'sphere'"},
    {"{\n" CAM "\"objects\": [\n  {\"type\": \"sphere\"}\n]}", KILN_EPARSE, "objects[0]",
     "{\"type\": \"sphere\"}", "missing required key 'material'"},
    {"{\n" CAM "\"objects\": [{\"type\": \"box\", \"material\": {\"type\": \"diffuse\"},\n"
     "  \"min\": [0, 0, 0], \"max\": [1, -1, 1]}]}",
     KILN_EPARSE, "objects[0].max", "[1, -1, 1]", "box size must be positive"},
    {"{\n" CAM "\"objects\": [{\"type\": \"quad\", \"material\": {\"type\": \"diffuse\"},\n"
     "  \"corner\": [0, 0, 0], \"u\": [1, 0, 0], \"v\": [2, 0, 0]}]}",
     KILN_EPARSE, "objects[0]", "{\"type\": \"quad\"", "zero area"},
    {"{\n" CAM "\"lights\": [\n {\"type\": \"quad\", \"corner\": [0, 1, 0], \"u\": [0, 0, 0], "
     "\"v\": [1, 0, 0], \"radiance\": [1, 1, 1]}]}",
     KILN_EPARSE, "lights[0]", "{\"type\": \"quad\"", "zero area"},
    {"{\n" CAM "\"lights\": [\n {\"type\": \"quad\", \"corner\": [0, 1, 0], \"u\": [0, 0, 1], "
     "\"v\": [1, 0, 0], \"radiance\": [1, -1, 1]}]}",
     KILN_EPARSE, "lights[0].radiance[1]", "-1, 1]}", "in [0, "},
    {"{\n" CAM "\"lights\": [\n {\"type\": \"quad\", \"corner\": [0, 1, 0], \"u\": [0, 0, 1], "
     "\"v\": [1, 0, 0]}]}",
     KILN_EPARSE, "lights[0]", "{\"type\": \"quad\"", "missing required key 'radiance'"},
    /* camera */
    {"{\"camera\": {\"position\": [0, 0, -1],\n \"look_at\": [0, 0, 0], \"up\": [0, 0, 0]}}",
     KILN_EPARSE, "camera.up", "[0, 0, 0]}", "up has zero length"},
    {"{\"camera\": {\"position\": [0, 0, -1],\n \"look_at\": [0, 0, 0], \"up\": [0, 0, 2]}}",
     KILN_EPARSE, "camera.up", "[0, 0, 2]", "parallel"},
    {"{\"camera\": {\"position\": [1, 2, 3],\n \"look_at\": [1, 2, 3]}}", KILN_EPARSE,
     "camera.look_at", "[1, 2, 3]}", "look_at equals position"},
    {"{\"camera\": {\"position\": [0, 0, -1], \"look_at\": [0, 0, 0],\n \"vfov\": 180}}",
     KILN_EPARSE, "camera.vfov", "180", "vfov must be in (0, 180)"},
    {"{\"camera\": {\"position\": [0, 0, -1], \"look_at\": [0, 0, 0],\n \"aperture\": 0.1}}",
     KILN_EPARSE, "camera.aperture", "\"aperture\"", "unknown key 'aperture'"},
    {"{\"camera\": {\"type\": \"thin_lens\", \"position\": [0, 0, -1], \"look_at\": [0, 0, 0],\n"
     " \"aperture\": 0.1, \"focus_distance\": -2}}",
     KILN_EPARSE, "camera.focus_distance", "-2", "in [0, "},
    {"{\"camera\": {\"position\": [0, 0],\n \"look_at\": [0, 0, 0]}}", KILN_EPARSE,
     "camera.position", "[0, 0]", "array of 3 numbers"},
    {"{\"settings\": {}}", KILN_EPARSE, "", NULL, "missing required key 'camera'"},
    /* settings */
    {"{" CAM "\"settings\": {\"width\": 64,\n  \"spp\": 0}}", KILN_EPARSE, "settings.spp", "0}",
     "spp must be in [1, "},
    {"{" CAM "\"settings\": {\"width\": 100000}}", KILN_EPARSE, "settings.width", "100000",
     "width must be in [1, 16384]"},
    {"{" CAM "\"settings\": {\"height\": 0}}", KILN_EPARSE, "settings.height", "0}",
     "height must be in [1, 16384]"},
    {"{" CAM "\"settings\": {\"width\": 64.5}}", KILN_EPARSE, "settings.width", "64.5",
     "must be an integer"},
    {"{" CAM "\"settings\": {\"spp\": \"16\"}}", KILN_EPARSE, "settings.spp", "\"16\"",
     "must be a number"},
    {"{" CAM "\"settings\": {\"max_bounces\": -1}}", KILN_EPARSE, "settings.max_bounces", "-1}}",
     "max_bounces must be in [0, "},
    {"{" CAM "\"settings\": {\"tonemap\": \"filmik\"}}", KILN_EPARSE, "settings.tonemap",
     "\"filmik\"", "did you mean 'filmic'"},
    {"{" CAM "\"settings\": {\"sample\": 4}}", KILN_EPARSE, "settings.sample", "\"sample\"",
     "unknown key 'sample'"},
    /* duplicates: reported at the second occurrence */
    {"{" CAM "\"settings\": {\"spp\": 4, \"width\": 8,\n \"spp\": 8}}", KILN_EPARSE, "settings.spp",
     "\"spp\": 8", "duplicate key 'spp'"},
    {"{" CAM "\"materials\": {\"a\": {\"type\": \"diffuse\"},\n \"a\": {\"type\": \"diffuse\"}}}",
     KILN_EPARSE, "materials.a", "\"a\": {\"type\": \"diffuse\"}}}", "defined twice"},
    /* the first repeat in document order: b's second occurrence comes before a's */
    {"{" CAM "\"materials\": {\"a\": " DIF ", \"b\": " DIF ", \"b\" : " DIF ", \"a\" : " DIF "}}",
     KILN_EPARSE, "materials.b", "\"b\" :", "material 'b' is defined twice"},
    {"{" CAM "\"materials\": {\"a\": " DIF ", \"a\" : " DIF ", \"a\"  : " DIF "}}", KILN_EPARSE,
     "materials.a", "\"a\" :", "material 'a' is defined twice"},
    /* top level and environment */
    {"{" CAM "\"object\": []}", KILN_EPARSE, "object", "\"object\"", "did you mean 'objects'"},
    {"{" CAM "\"environment\": {\"type\": \"constant\", \"color\": [1, 1]}}", KILN_EPARSE,
     "environment.color", "[1, 1]", "array of 3 numbers"},
    {"{" CAM "\"environment\": {\"type\": \"gradient\", \"top\": [1, 1, 1]}}", KILN_EPARSE,
     "environment", "{\"type\": \"gradient\"", "missing required key 'bottom'"},
    {"{" CAM "\"environment\": {\"type\": \"map\", \"file\": \"nope.hdr\"}}", KILN_EIO,
     "environment.file", "\"nope.hdr\"", "cannot open"},
    /* transforms and instances */
    {"{" CAM "\"objects\": [{\"type\": \"quad\", \"material\": {\"type\": \"diffuse\"},\n"
     " \"corner\": [0, 0, 0], \"u\": [1, 0, 0], \"v\": [0, 1, 0],\n"
     " \"transform\": {\"scale\": [1, 0, 1]}}]}",
     KILN_EPARSE, "objects[0].transform.scale", "[1, 0, 1]", "scale must not be zero"},
    {"{" CAM "\"objects\": [{\"type\": \"quad\", \"material\": {\"type\": \"diffuse\"},\n"
     " \"corner\": [0, 0, 0], \"u\": [1, 0, 0], \"v\": [0, 1, 0],\n"
     " \"transform\": {\"rotate\": {\"axis\": [0, 0, 0], \"angle\": 30}}}]}",
     KILN_EPARSE, "objects[0].transform.rotate.axis", "[0, 0, 0], \"angle\"",
     "axis has zero length"},
    {"{" CAM "\"objects\": [{\"type\": \"quad\", \"material\": {\"type\": \"diffuse\"},\n"
     " \"corner\": [0, 0, 0], \"u\": [1, 0, 0], \"v\": [0, 1, 0],\n"
     " \"transform\": {\"matrix\": [1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,2]}}]}",
     KILN_EPARSE, "objects[0].transform.matrix", "[1,0,0,0", "last row must be 0 0 0 1"},
    {"{" CAM "\"objects\": [{\"type\": \"quad\", \"material\": {\"type\": \"diffuse\"},\n"
     " \"corner\": [0, 0, 0], \"u\": [1, 0, 0], \"v\": [0, 1, 0],\n"
     " \"transform\": {\"matrix\": [1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1], \"scale\": 2}}]}",
     KILN_EPARSE, "objects[0].transform.scale", "\"scale\"", "unknown key 'scale'"},
    {"{" CAM "\"objects\": [{\"type\": \"quad\", \"material\": {\"type\": \"diffuse\"},\n"
     " \"corner\": [0, 0, 0], \"u\": [1, 0, 0], \"v\": [0, 1, 0],\n"
     " \"instances\": []}]}",
     KILN_EPARSE, "objects[0].instances", "[]}", "non-empty array"},
    {"{" CAM "\"objects\": [{\"type\": \"quad\", \"material\": {\"type\": \"diffuse\"},\n"
     " \"corner\": [0, 0, 0], \"u\": [1, 0, 0], \"v\": [0, 1, 0],\n"
     " \"instances\": [{\"translate\": [1, 0, 0]}, {\"translat\": [2, 0, 0]}]}]}",
     KILN_EPARSE, "objects[0].instances[1].translat", "\"translat\"", "did you mean 'translate'"},
    {"{" CAM
     "\"objects\": [{\"type\": \"sphere\", \"radius\": 1, \"material\": {\"type\": \"diffuse\"},\n"
     " \"transform\": {\"scale\": [1, 2, 1]}}]}",
     KILN_EPARSE, "objects[0]", "{\"type\": \"sphere\"", "uniformly"},
    {"{" CAM "\"objects\": [{\"type\": \"quad\", \"material\": {\"type\": \"diffuse\"},\n"
     " \"corner\": [1e30, 0, 0], \"u\": [1, 0, 0], \"v\": [0, 1, 0],\n"
     " \"transform\": {\"scale\": 1e30}}]}",
     KILN_EPARSE, "objects[0]", "{\"type\": \"quad\"", "not finite"},
    /* meshes named by the scene */
    {"{" CAM "\"objects\": [{\"type\": \"mesh\",\n \"file\": \"missing.obj\"}]}", KILN_EIO,
     "objects[0].file", "\"missing.obj\"", "cannot open"},
    {"{" CAM "\"objects\": [{\"type\": \"mesh\",\n \"file\": \"model.stl\"}]}", KILN_EPARSE,
     "objects[0].file", "\"model.stl\"", "must end in .obj or .ply"},
    {"{" CAM "\"objects\": [{\"type\": \"mesh\",\n \"file\": \"m.obj\", \"share\": 1}]}", KILN_EPARSE,
     "objects[0].share", "1}", "share must be true or false"},
};

static void check_case(int i, const ecase *c) {
  kiln_error_detail e;
  kiln_scene *s = (kiln_scene *)&e; /* must be reset to NULL */
  int rc = kiln_scene_load_string(c->json, "/nonexistent-kiln-dir", "bad.json", &e, &s);
  char buf[2048];
  kiln_error_detail_format(&e, buf, sizeof buf);
  if (rc != c->code)
    KT_FAIL("case %d: %s, want %s: %s", i, kiln_err_name(rc), kiln_err_name(c->code), buf);
  KT_TRUE(s == NULL);
  int line = 1, col = 1;
  if (c->marker) {
    const char *at = strstr(c->json, c->marker);
    if (!at) KT_FAIL("case %d: marker not in json", i);
    for (const char *p = c->json; p < at; p++) {
      if (*p == '\n') line++, col = 1;
      else col++;
    }
  }
  if (strcmp(e.path, c->path) != 0)
    KT_FAIL("case %d: path '%s', want '%s': %s", i, e.path, c->path, buf);
  if (!strstr(e.message, c->fragment))
    KT_FAIL("case %d: message lacks '%s': %s", i, c->fragment, buf);
  bool in_json = strcmp(e.file, "bad.json") == 0;
  if (in_json && (e.line != line || e.column != col))
    KT_FAIL("case %d: at %d:%d, want %d:%d: %s", i, e.line, e.column, line, col, buf);
  if (!in_json) { /* an error in a named file: reported at that file */
    KT_STR_CONTAINS(e.file, "/nonexistent-kiln-dir/");
  }
}

/* \u0000 would end the string cJSON returns ("a\u0000b" read as "a"): an error at the escape,
 * wherever the string is; an escaped backslash before u0000 is not the escape. */
TEST(nul_escape_in_a_string) {
  static const char *const bad[] = {
      "{\n \"name\": \"a\\u0000b\"}",
      "{\n \"materials\": {\"m\\u0000x\": {\"type\": \"diffuse\"}}}",
      "{\"description\": \"\\\\\\u0000\"}", /* "\\\u0000": a backslash, then the escape */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    kiln_error_detail e;
    kiln_scene *s = NULL;
    KT_CODE(kiln_scene_load_string(bad[i], NULL, "nul.json", &e, &s), KILN_EPARSE);
    KT_STR_CONTAINS(e.message, "\\u0000 in a string");
    const char *at = strstr(bad[i], "\\u0000");
    int line = 1, col = 1;
    for (const char *p = bad[i]; p < at; p++) *p == '\n' ? (line++, col = 1) : col++;
    if (e.line != line || e.column != col)
      KT_FAIL("case %zu at %d:%d, want %d:%d", i, e.line, e.column, line, col);
  }
  /* "\\u0000" is a backslash and "u0000"; \u0001 is an ordinary character */
  kiln_scene *s = st_load_ok("{" CAM "\"description\": \"a\\\\u0000b \\u0001\"}", NULL);
  kiln_scene_destroy(s);
}

/* A folder, a FIFO or a device given as a file is refused at once (a FIFO would block the read
 * forever, and a device such as /dev/zero never end it), naming what it is; the test's timeout
 * catches a block. */
TEST(non_regular_files_are_refused) {
  const char *dir = st_tmpdir();
  char sub[1024], fifo[1024], json[4096];
  snprintf(sub, sizeof sub, "%s/meshes.obj", dir);
  snprintf(fifo, sizeof fifo, "%s/pipe.obj", dir);
  KT_EQ(mkdir(sub, 0755), 0);
  KT_EQ(mkfifo(fifo, 0644), 0);
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(kiln_scene_load(dir, &e, &s), KILN_EIO); /* the scene itself */
  KT_STR_CONTAINS(e.message, "is a directory");
  static const struct {
    const char *file, *fragment;
  } t[] = {{"meshes.obj", "is a directory"}, {"pipe.obj", "not a regular file"}};
  for (size_t i = 0; i < 2; i++) {
    snprintf(json, sizeof json,
             "{" CAM "\"objects\": [{\"type\": \"mesh\", \"file\": \"%s\",\n"
             " \"material\": {\"type\": \"diffuse\"}}]}",
             t[i].file);
    KT_CODE(kiln_scene_load_string(json, dir, "m.json", &e, &s), KILN_EIO);
    KT_STR_CONTAINS(e.message, t[i].fragment);
    KT_STR_CONTAINS(e.file, t[i].file);
    KT_STR_EQ(e.path, "objects[0].file");
  }
  /* a device: /dev/null as an OBJ through a symbolic link (the name must end in .obj) */
  char link[1024];
  snprintf(link, sizeof link, "%s/null.obj", dir);
  KT_EQ(symlink("/dev/null", link), 0);
  snprintf(json, sizeof json,
           "{" CAM "\"objects\": [{\"type\": \"mesh\", \"file\": \"null.obj\",\n"
           " \"material\": {\"type\": \"diffuse\"}}]}");
  KT_CODE(kiln_scene_load_string(json, dir, "m.json", &e, &s), KILN_EIO);
  KT_STR_CONTAINS(e.message, "not a regular file");
  /* a texture that is a FIFO */
  snprintf(fifo, sizeof fifo, "%s/pipe.png", dir);
  KT_EQ(mkfifo(fifo, 0644), 0);
  snprintf(json, sizeof json,
           "{" CAM "\"objects\": [{\"type\": \"sphere\", \"radius\": 1,\n"
           " \"material\": {\"type\": \"diffuse\", \"texture\": \"pipe.png\"}}]}");
  KT_CODE(kiln_scene_load_string(json, dir, "m.json", &e, &s), KILN_EIO);
  KT_STR_CONTAINS(e.message, "not a regular file");
  KT_STR_CONTAINS(e.file, "pipe.png");
  st_tmp_cleanup();
}

/* Out of memory while reading a mesh blames the mesh, not the scene: a sparse file claiming 8 TiB
 * (far beyond any machine's memory and swap) cannot be allocated. */
TEST(out_of_memory_blames_the_mesh) {
  FILE *oc = fopen("/proc/sys/vm/overcommit_memory", "r");
  int mode = oc && fscanf(oc, "%d", &mode) == 1 ? mode : -1;
  if (oc) fclose(oc);
  if (mode == 1) KT_SKIP("vm.overcommit_memory is 1: an 8 TiB allocation would succeed");
  const char *dir = st_tmpdir();
  char path[1024], json[2048];
  snprintf(path, sizeof path, "%s/huge.obj", dir);
  FILE *f = fopen(path, "w");
  KT_TRUE(f != NULL);
  if (ftruncate(fileno(f), (off_t)1 << 43) != 0) {
    fclose(f);
    st_tmp_cleanup();
    KT_SKIP("this file system has no 8 TiB sparse files");
  }
  fclose(f);
  snprintf(json, sizeof json,
           "{" CAM "\"objects\": [{\"type\": \"mesh\", \"file\": \"huge.obj\",\n"
           " \"material\": {\"type\": \"diffuse\"}}]}");
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(kiln_scene_load_string(json, dir, "m.json", &e, &s), KILN_ENOMEM);
  KT_STR_EQ(e.file, path);
  KT_STR_CONTAINS(e.message, "out of memory");
  KT_STR_EQ(e.path, "objects[0].file");
  st_tmp_cleanup();
}

/* The whole table: code, path, position and message of each. */
TEST(error_table) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case((int)i, &cases[i]);
}

/* A syntax error is reported where parsing stopped. */
TEST(syntax_errors) {
  const struct {
    const char *json;
    int line, col;
  } t[] = {
      {"{\n  \"camera\": {\n    \"position\": [0, 0, -1],,\n", 3,
       29}, /* cJSON: just past the 2nd ',' */
      {"{\n  \"a\": tru\n}", 2, 8},
      {"{\"a\": [1, 2", 1, 12},
      {"", 1, 1},
      {"{} x", 1, 4},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    kiln_error_detail e;
    kiln_scene *s = NULL;
    int rc = kiln_scene_load_string(t[i].json, NULL, "syn.json", &e, &s);
    KT_CODE(rc, KILN_EPARSE);
    KT_STR_EQ(e.file, "syn.json");
    KT_STR_EQ(e.path, "");
    KT_STR_CONTAINS(e.message, "syntax");
    if (e.line != t[i].line || e.column != t[i].col)
      KT_FAIL("syntax case %zu at %d:%d, want %d:%d", i, e.line, e.column, t[i].line, t[i].col);
  }
}

/* Files: a missing scene is KILN_EIO naming it; NULL arguments are KILN_EINVAL; the formatted
 * error has every part. */
TEST(files_and_arguments) {
  kiln_error_detail e;
  kiln_scene *s = NULL;
  KT_CODE(kiln_scene_load("/nonexistent-kiln-dir/scene.json", &e, &s), KILN_EIO);
  KT_STR_EQ(e.file, "/nonexistent-kiln-dir/scene.json");
  KT_TRUE(s == NULL);
  KT_CODE(kiln_scene_load(NULL, &e, &s), KILN_EINVAL);
  KT_CODE(kiln_scene_load_string("{}", NULL, NULL, &e, NULL), KILN_EINVAL);
  KT_CODE(kiln_scene_load_string("{}", NULL, NULL, NULL, &s), KILN_EPARSE); /* err may be NULL */
  KT_CODE(kiln_scene_load_string("{\n \"camera\": 1}", NULL, NULL, &e, &s), KILN_EPARSE);
  char buf[1024];
  KT_STR_EQ(kiln_error_detail_format(&e, buf, sizeof buf),
            "<string>:2:12: camera: camera must be an object");
  kiln_error_detail_format(&e, buf, 5);
  KT_STR_EQ(buf, "<str");
  /* a scene file with a semantic error names the file */
  const char *dir = st_tmpdir();
  const char *p = st_write(
      dir, "s.json",
      "{\"camera\": {\"position\": [0, 0, 0],\n\"look_at\": [0, 0, 1], \"up\": [0, 0, 1]}}",
      (size_t)-1);
  char path[1024];
  snprintf(path, sizeof path, "%s", p);
  KT_CODE(kiln_scene_load(path, &e, &s), KILN_EPARSE);
  KT_STR_EQ(e.file, path);
  KT_EQ(e.line, 2);
  KT_EQ(e.column, 29);
  KT_STR_EQ(e.path, "camera.up");
  st_tmp_cleanup();
}

/* 60,000 materials: every object finds the material of its name; the same scene with one name
 * repeated at the very end fails there, at the repeat. */
TEST(sixty_thousand_materials) {
  enum { N = 60000 };
  size_t cap = (size_t)N * 64 + 4096, n = 0;
  char *json = malloc(cap);
  KT_TRUE(json != NULL);
  n += (size_t)snprintf(json + n, cap - n, "{" CAM "\"objects\": [");
  const int used[] = {0, 1, 10, 100, 29999, 30000, 59999};
  for (size_t k = 0; k < sizeof used / sizeof used[0]; k++)
    n += (size_t)snprintf(json + n, cap - n,
                          "%s{\"type\": \"sphere\", \"radius\": %d, \"material\": \"m%d\"}",
                          k ? ", " : "", used[k] + 1, used[k]);
  n += (size_t)snprintf(json + n, cap - n, "],\n\"materials\": {");
  for (int i = 0; i < N; i++)
    n += (size_t)snprintf(json + n, cap - n,
                          "%s\"m%d\": {\"type\": \"diffuse\", \"albedo\": [0.5, 0.5, 0.5]}",
                          i ? ",\n" : "", i);
  size_t end = n;
  snprintf(json + n, cap - n, "}}");
  kiln_scene *s = st_load_ok(json, NULL);
  const kiln__scene *d = st_data(s);
  KT_EQ(d->nmaterials, N);
  KT_EQ(d->nspheres, sizeof used / sizeof used[0]);
  for (size_t k = 0; k < d->nspheres; k++) {
    char want[16];
    snprintf(want, sizeof want, "m%d", (int)d->spheres[k].radius - 1);
    KT_STR_EQ(d->materials[d->spheres[k].material].name, want);
  }
  kiln_scene_destroy(s);
  snprintf(json + end, cap - end, ",\n\"m31415\": " DIF "}}");
  kiln_error_detail e;
  KT_CODE(kiln_scene_load_string(json, NULL, "many.json", &e, &s), KILN_EPARSE);
  KT_STR_EQ(e.message, "material 'm31415' is defined twice");
  KT_STR_EQ(e.path, "materials.m31415");
  KT_EQ(e.line, 3 + N);
  KT_EQ(e.column, 1);
  free(json);
}

/* Every prefix of the Cornell scene, and a few thousand random byte mutations of it, load or fail
 * with a located error; none crashes (ASan/UBSan in CI). */
TEST(fuzz_cornell_json) {
  char path[1300], dir[1200];
  snprintf(dir, sizeof dir, "%s/../../examples/cornell", st_src_dir());
  snprintf(path, sizeof path, "%s/scene.json", dir);
  size_t n;
  char *text = st_read_file(path, &n);
  char *buf = malloc(n + 1);
  KT_TRUE(buf != NULL);
  for (size_t k = 0; k < n; k += (k < 200 ? 1 : 7)) {
    memcpy(buf, text, k);
    buf[k] = '\0';
    kiln_error_detail e;
    kiln_scene *s = NULL;
    int rc = kiln_scene_load_string(buf, dir, "cut.json", &e, &s);
    KT_CODE(rc, KILN_EPARSE);
    KT_TRUE(e.line >= 1 && e.column >= 1);
  }
  static const char alphabet[] = "{}[]\",:0-1.e9 aztn\n";
  uint32_t x = 2463534242u;
  int ok = 0;
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(buf, text, n + 1);
    for (int m = 0; m < 1 + iter % 3; m++) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      buf[x % n] = alphabet[(x >> 16) % (sizeof alphabet - 1)];
    }
    kiln_error_detail e;
    kiln_scene *s = NULL;
    int rc = kiln_scene_load_string(buf, dir, "mut.json", &e, &s);
    if (rc == KILN_OK) {
      ok++;
      kiln_scene_destroy(s);
      continue;
    }
    if (rc != KILN_EPARSE && rc != KILN_EIO) KT_FAIL("mutation %d: %s", iter, kiln_err_name(rc));
    if (strcmp(e.file, "mut.json") == 0 && (e.line < 1 || e.column < 1))
      KT_FAIL("mutation %d: no position: %s", iter, e.message);
  }
  KT_TRUE(ok > 0); /* some mutations (inside numbers, names) still load */
  free(buf), free(text);
}
