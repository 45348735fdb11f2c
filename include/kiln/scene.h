/* kiln/scene.h: scenes: loading kiln's JSON scene format (docs/SCENE.md) with located errors.
 *
 * kiln_scene_load reads a scene file (kiln's JSON, or a glTF 2.0 .gltf / .glb) and every file it
 * names (glTF files, OBJ + MTL and PLY meshes, PNG/JPEG textures, .hdr and .exr environment maps),
 * validates all of it, and returns an immutable scene: everything a renderer needs, in world
 * space. Every error, syntax or semantic, says where: the file, the line
 * and column, and the JSON path of the offending value (`objects[3].material.roughness`); an error in
 * a mesh file names that file and its line.
 *
 * A kiln_scene is immutable once loaded: any number of threads and renderers may use it at once.
 * It is freed with kiln_scene_destroy once no renderer uses it. */
#ifndef KILN_SCENE_H
#define KILN_SCENE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_scene kiln_scene;

/* Loads the scene file at path. Relative file names inside it are relative to its folder. A path
 * ending in .gltf or .glb (any case) is read as a glTF 2.0 file making the whole scene: kiln's
 * default settings, the file's camera (else one framing its geometry) and punctual lights
 * (docs/SCENE.md, "glTF"); its errors carry the JSON path inside the glTF.
 * Returns 0 and *out (owned by the caller: kiln_scene_destroy), or
 *   KILN_EINVAL  path or out is NULL
 *   KILN_EIO     a file cannot be opened or read (the scene or one it names)
 *   KILN_EPARSE  a syntax error, an unknown key, a value of the wrong type or out of range, or a
 *                malformed mesh or image file
 *   KILN_ENOMEM  out of memory
 * and *out = NULL. err may be NULL; otherwise it is filled (kiln_error_detail, kiln/error.h: the
 * file, line, column and JSON path of the error, which for an error in a mesh, MTL, texture or
 * map file is that file and the path of the key naming it) and zeroed on success.
 * Thread-safe: any number of loads may run at once. */
KILN_API int kiln_scene_load(const char *path, kiln_error_detail *err, kiln_scene **out);

typedef struct kiln_pool kiln_pool; /* kiln/sched.h */

/* As kiln_scene_load, with the scene's mesh files (when there are several) read in parallel as
 * tasks of pool (kiln_map; pool NULL: as kiln_scene_load). Each file is read once however many
 * objects name it. Errors are the same, and reported in the same order, as kiln_scene_load's.
 * May be called from a task of pool (kiln_map then helps run the loads). */
KILN_API int kiln_scene_load_pool(kiln_pool *pool, const char *path, kiln_error_detail *err,
                                  kiln_scene **out);

/* As kiln_scene_load, for scene text held in memory (NUL-terminated). base_dir is the folder that
 * relative file names are relative to (NULL: the current directory); name_for_messages is what
 * err->file says for errors in json (NULL: "<string>"). */
KILN_API int kiln_scene_load_string(const char *json, const char *base_dir,
                                    const char *name_for_messages, kiln_error_detail *err,
                                    kiln_scene **out);

/* Read-only facts about a loaded scene (s must not be NULL). */
typedef struct kiln_scene_info {
  int32_t width, height; /* settings.width, settings.height */
  int32_t spp;           /* samples per pixel */
  int32_t max_bounces;   /* Cycles' meaning: 0 = direct light only */
  uint32_t seed;
  float exposure;  /* stops */
  bool filmic;     /* settings.tonemap is "filmic" (else "none": clamp) */
  size_t nobjects; /* object ids are 1..nobjects */
  size_t ntriangles, nspheres, nmaterials, ntextures;
  size_t nlight_triangles; /* triangles with an emissive material */
} kiln_scene_info;

KILN_API void kiln_scene_get_info(const kiln_scene *s, kiln_scene_info *info);

/* The name of object id (1-based), borrowed from s (valid until kiln_scene_destroy); NULL when id
 * is 0 or greater than nobjects. */
KILN_API const char *kiln_scene_object_name(const kiln_scene *s, uint32_t id);

/* What the loader accepted but cannot render as written (an MTL key without a meaning in kiln,
 * a glTF feature it ignores): each distinct message once, in order of first occurrence, each
 * naming its file. Warnings never stop a load; a program decides whether to show them (kiln
 * render prints them). kiln_scene_warning returns NULL for i >= the count; the strings are
 * borrowed from s. */
KILN_API size_t kiln_scene_warning_count(const kiln_scene *s);
KILN_API const char *kiln_scene_warning(const kiln_scene *s, size_t i);

/* Frees the scene. NULL is a no-op. */
KILN_API void kiln_scene_destroy(kiln_scene *s);

#ifdef __cplusplus
}
#endif
#endif /* KILN_SCENE_H */
