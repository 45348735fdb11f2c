/* image_internal.h (internal): the layout of kiln_image, shared by image.c and render.c. */
#ifndef KILN_ENGINE_IMAGE_INTERNAL_H
#define KILN_ENGINE_IMAGE_INTERNAL_H

#include <stdio.h>

#include "kiln/image.h"

struct kiln_image {
  int32_t width, height;
  uint32_t spp;
  float *color, *depth, *normal, *albedo; /* malloc'd, owned */
  uint32_t *object_id, *instance_id;
};

/* A new image with every plane allocated (uninitialised); NULL on ENOMEM. */
kiln_image *kiln__image_new(int32_t w, int32_t h);

#endif
