/* shm.c: named shared memory segments (multiprocessing.shared_memory.SharedMemory).
 *
 * A segment is a POSIX shared memory object, /dev/shm/kiln-NAME, mapped MAP_SHARED. The file
 * descriptor is closed right after mmap: the mapping keeps the memory, and a process holding
 * many segments does not run out of descriptors. The size is the object's own (ftruncate at
 * creation), so an attacher learns it from fstat. Unlinking removes the name only; the memory
 * lives until the last mapping goes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc_internal.h"
#include "pshm_internal.h"

enum { NAME_MAX_LEN = 200 };

struct kiln_shm {
  void *data;
  size_t size;
  char name[NAME_MAX_LEN + 1];
};

/* A unique name: the pid, a per-process counter and clock bits (a pid reused by a later program
 * must not collide with a name an earlier one left behind). */
static atomic_uint g_counter;

static void unique_name(char *out, size_t cap) {
  /* relaxed: only uniqueness matters, no other memory is ordered by the counter */
  unsigned n = atomic_fetch_add_explicit(&g_counter, 1, memory_order_relaxed);
  unsigned long long t = (unsigned long long)(kiln__now() * 1e9);
  snprintf(out, cap, "p%d-%u-%llx", (int)getpid(), n, t & 0xffffffffffull);
}

static bool name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  return n >= 1 && n <= NAME_MAX_LEN && !strchr(name, '/');
}

static void os_name(char *out, size_t cap, const char *name) { snprintf(out, cap, "/kiln-%s", name); }

static int map_fd(int fd, size_t size, const char *name, kiln_shm **out) {
  kiln_shm *s = calloc(1, sizeof *s);
  if (!s) return KILN_ENOMEM;
  s->data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (s->data == MAP_FAILED) {
    int e = errno;
    free(s);
    return e == ENOMEM ? KILN_ENOMEM : KILN_EIO;
  }
  s->size = size;
  snprintf(s->name, sizeof s->name, "%s", name);
  *out = s;
  return 0;
}

int kiln_shm_create(const char *name, size_t size, kiln_shm **out) {
  *out = NULL;
  char gen[64], path[NAME_MAX_LEN + 8];
  if (!name) {
    unique_name(gen, sizeof gen);
    name = gen;
  }
  if (size == 0 || !name_ok(name)) return KILN_EINVAL;
  /* a size above what off_t holds would wrap to a negative length in ftruncate */
  if (size > (size_t)INT64_MAX) return KILN_ENOMEM;
  os_name(path, sizeof path, name);
  int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return errno == EEXIST ? KILN_EEXIST : errno == EINVAL ? KILN_EINVAL : KILN_EIO;
  int rc = 0;
  if (ftruncate(fd, (off_t)size) != 0)
    rc = errno == ENOSPC || errno == EFBIG ? KILN_ENOMEM : KILN_EIO;
  if (rc == 0) rc = map_fd(fd, size, name, out);
  close(fd);
  if (rc != 0) shm_unlink(path);
  return rc;
}

int kiln_shm_attach(const char *name, kiln_shm **out) {
  *out = NULL;
  if (!name_ok(name)) return KILN_EINVAL;
  char path[NAME_MAX_LEN + 8];
  os_name(path, sizeof path, name);
  int fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return errno == ENOENT ? KILN_ENOENT : KILN_EIO;
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0) rc = KILN_EIO;
  /* a segment whose creator has not sized it yet (or never will) cannot be mapped */
  else if (st.st_size <= 0) rc = KILN_ENOENT;
  else rc = map_fd(fd, (size_t)st.st_size, name, out);
  close(fd);
  return rc;
}

void *kiln_shm_data(const kiln_shm *s) { return s->data; }
size_t kiln_shm_size(const kiln_shm *s) { return s->size; }
const char *kiln_shm_name(const kiln_shm *s) { return s->name; }

int kiln_shm_unlink(kiln_shm *s) {
  char path[NAME_MAX_LEN + 8];
  os_name(path, sizeof path, s->name);
  if (shm_unlink(path) == 0) return 0;
  return errno == ENOENT ? KILN_ENOENT : KILN_EIO;
}

void kiln_shm_close(kiln_shm *s) {
  if (!s) return;
  munmap(s->data, s->size);
  free(s);
}
