/* kiln/scene.h: scenes: loading kiln's JSON scene format (docs/SCENE.md) with located errors.
 *
 * A kiln_scene is immutable once loaded: any number of threads and renderers may use it at once.
 * It is freed with kiln_scene_destroy once no renderer uses it. */
#ifndef KILN_SCENE_H
#define KILN_SCENE_H

#include "kiln/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_scene kiln_scene;

/* Frees the scene. NULL is a no-op. */
void kiln_scene_destroy(kiln_scene *s);

#ifdef __cplusplus
}
#endif
#endif /* KILN_SCENE_H */
