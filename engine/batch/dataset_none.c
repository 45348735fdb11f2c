/* dataset_none.c: the dataset writers' entry points (batch_internal.h) in a build without
 * writers: asking for one fails before any frame. The COCO and BOP writers replace this file. */
#include "batch_internal.h"

int kiln__dataset_open(kiln_writer kind, const char *out_dir, const char *shard_tag,
                       const struct kiln__scene *s, bool durable, kiln__dataset **out, char *msg,
                       size_t msgcap) {
  (void)kind, (void)out_dir, (void)shard_tag, (void)s, (void)durable;
  *out = NULL;
  kiln__say(msg, msgcap, "no dataset writer in this build");
  return KILN_EINVAL;
}

int kiln__dataset_frame(kiln__dataset *d, const kiln_job_frame *fr, const kiln__frame_gt *gt,
                        const kiln_image *img, char *msg, size_t msgcap) {
  (void)d, (void)fr, (void)gt, (void)img, (void)msg, (void)msgcap;
  return KILN_EINVAL;
}

int kiln__dataset_commit(kiln__dataset *d, bool keep, char *msg, size_t msgcap) {
  (void)d, (void)keep, (void)msg, (void)msgcap;
  return 0;
}
