/* shard.c: `--shard K/N` and `--shard auto`, which reads K and N from the launcher's environment
 * (docs/CLUSTER.md). No MPI library is linked: every launcher kiln knows exports its rank and size
 * to each process it starts, and an embarrassingly parallel job needs nothing more.
 *
 * Two levels, multiplied: the Slurm job array (the outer level, one array task per element) and
 * the tasks one launcher starts together (the inner level: Open MPI's mpirun, a PMI launcher such
 * as MPICH's hydra, Slurm's srun, or a Kubernetes Indexed Job), the first of these found, in that
 * order: mpirun's own variables come first because mpirun inside a Slurm allocation starts its
 * processes under Slurm variables that describe its daemons, not its ranks. An array task that
 * runs `srun -n 4` (or mpirun) renders shard array_k * 4 + task_k of array_n * 4. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

/* A whole non-negative decimal number up to max. */
static bool number(const char *s, unsigned long long max, unsigned long long *out) {
  if (!s || !*s || *s == '-' || *s == '+') return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max) return false;
  *out = v;
  return true;
}

bool kiln_cli_shard_parse(const char *s, uint32_t *k, uint32_t *n) {
  char buf[64];
  if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) return false;
  char *slash = strchr(buf, '/');
  if (!slash) return false;
  *slash = 0;
  unsigned long long a, b;
  if (!number(buf, UINT32_MAX, &a) || !number(slash + 1, UINT32_MAX, &b) || b < 1 || a >= b)
    return false;
  *k = (uint32_t)a, *n = (uint32_t)b;
  return true;
}

/* The variable name's value as a number into *v: 1, 0 when unset, -1 when set but not a number
 * (err says so). */
static int env_number(const char *name, unsigned long long *v, char *err, size_t cap) {
  const char *s = getenv(name);
  if (!s) return 0;
  if (number(s, UINT32_MAX, v)) return 1;
  say(err, cap, "%s=%s is not a whole number", name, s);
  return -1;
}

/* The Slurm array: 1 found (k, n, from), 0 none, -1 error. */
static int slurm_array(uint32_t *k, uint32_t *n, char *from, size_t fcap, char *err, size_t cap) {
  unsigned long long id, min, max = 0, step = 1, count = 0;
  int r = env_number("SLURM_ARRAY_TASK_ID", &id, err, cap);
  if (r <= 0) return r;
  if ((r = env_number("SLURM_ARRAY_TASK_MIN", &min, err, cap)) <= 0) {
    if (r == 0) say(err, cap, "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not");
    return -1;
  }
  bool has_step = (r = env_number("SLURM_ARRAY_TASK_STEP", &step, err, cap)) == 1;
  if (r < 0) return -1;
  int rc = env_number("SLURM_ARRAY_TASK_COUNT", &count, err, cap);
  int rm = env_number("SLURM_ARRAY_TASK_MAX", &max, err, cap);
  if (rc < 0 || rm < 0) return -1;
  if (step == 0) step = 1;
  if (rc == 0 && rm == 0) {
    say(err, cap, "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor _MAX");
    return -1;
  }
  if (rc == 0) count = (max - min) / step + 1;
  /* an array given as a list (--array=1,4,9) has no step: its elements cannot be numbered */
  if (!has_step && rm == 1 && max - min + 1 != count) {
    say(err, cap,
        "the Slurm array is not evenly stepped (SLURM_ARRAY_TASK_MIN=%llu, _MAX=%llu, _COUNT=%llu): "
        "use --array=A-B or A-B:STEP with --shard auto, or --shard K/N",
        min, max, count);
    return -1;
  }
  if (id < min || (id - min) % step != 0 || (id - min) / step >= count || count == 0) {
    say(err, cap,
        "SLURM_ARRAY_TASK_ID=%llu is not an element of the array MIN=%llu STEP=%llu COUNT=%llu", id,
        min, step, count);
    return -1;
  }
  *k = (uint32_t)((id - min) / step), *n = (uint32_t)count;
  say(from, fcap, "the Slurm array: SLURM_ARRAY_TASK_ID=%llu, MIN=%llu, STEP=%llu, COUNT=%llu", id,
      min, step, count);
  return 1;
}

/* A rank/size pair of variables: 1 found, 0 not set, -1 error. */
static int rank_size(const char *rank, const char *size, const char *who, uint32_t *k, uint32_t *n,
                     char *from, size_t fcap, char *err, size_t cap) {
  unsigned long long r, s;
  int a = env_number(rank, &r, err, cap);
  if (a <= 0) return a;
  int b = env_number(size, &s, err, cap);
  if (b <= 0) {
    if (b == 0) say(err, cap, "%s is set but %s is not", rank, size);
    return -1;
  }
  if (s < 1 || r >= s) {
    say(err, cap, "%s=%llu is not below %s=%llu", rank, r, size, s);
    return -1;
  }
  *k = (uint32_t)r, *n = (uint32_t)s;
  say(from, fcap, "%s: %s=%llu, %s=%llu", who, rank, r, size, s);
  return 1;
}

/* Slurm's tasks (srun -n N): SLURM_PROCID of SLURM_NTASKS, but only in a job step that srun
 * started. The batch script itself also sees SLURM_PROCID=0 and, with #SBATCH -n N, SLURM_NTASKS=N:
 * taking those would render a quarter of the job and call it done. */
static int slurm_tasks(uint32_t *k, uint32_t *n, char *from, size_t fcap, char *err, size_t cap) {
  if (!getenv("SLURM_PROCID")) return 0;
  const char *step = getenv("SLURM_STEP_ID");
  if (!step) step = getenv("SLURM_STEPID");
  unsigned long long tasks = 1;
  if (env_number("SLURM_NTASKS", &tasks, err, cap) < 0) return -1;
  if (!step || !strcmp(step, "batch") || !strcmp(step, "4294967294")) {
    if (tasks > 1) {
      say(err, cap,
          "SLURM_NTASKS=%llu, but this is the batch script, not one of srun's tasks: start kiln "
          "with srun so that each task renders its shard",
          tasks);
      return -1;
    }
    return 0;
  }
  return rank_size("SLURM_PROCID", "SLURM_NTASKS", "Slurm's tasks (srun)", k, n, from, fcap, err,
                   cap);
}

/* A Kubernetes Indexed Job: JOB_COMPLETION_INDEX, with N from --shards or KILN_SHARDS. */
static int kubernetes(uint32_t flag_n, uint32_t *k, uint32_t *n, char *from, size_t fcap, char *err,
                      size_t cap) {
  unsigned long long idx, shards = flag_n;
  int r = env_number("JOB_COMPLETION_INDEX", &idx, err, cap);
  if (r <= 0) return r;
  const char *src = "--shards";
  if (!flag_n) {
    src = "KILN_SHARDS";
    int s = env_number("KILN_SHARDS", &shards, err, cap);
    if (s < 0) return -1;
    if (s == 0 || shards == 0) {
      say(err, cap,
          "JOB_COMPLETION_INDEX=%llu is set but the number of shards is not: give --shards N or "
          "KILN_SHARDS=N (the Job's completions)",
          idx);
      return -1;
    }
  }
  if (idx >= shards) {
    say(err, cap, "JOB_COMPLETION_INDEX=%llu is not below %s=%llu", idx, src, shards);
    return -1;
  }
  *k = (uint32_t)idx, *n = (uint32_t)shards;
  say(from, fcap, "a Kubernetes Indexed Job: JOB_COMPLETION_INDEX=%llu of %s=%llu", idx, src,
      shards);
  return 1;
}

int kiln_cli_shard_auto(uint32_t flag_n, uint32_t *k, uint32_t *n, char *from, size_t fcap,
                        char *err, size_t cap) {
  uint32_t ak = 0, an = 1, tk = 0, tn = 1;
  char afrom[256] = "", tfrom[256] = "";
  int a = slurm_array(&ak, &an, afrom, sizeof afrom, err, cap);
  if (a < 0) return -1;
  int t = rank_size("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI", &tk, &tn, tfrom,
                    sizeof tfrom, err, cap);
  if (t == 0)
    t = rank_size("PMI_RANK", "PMI_SIZE", "a PMI launcher", &tk, &tn, tfrom, sizeof tfrom, err,
                  cap);
  if (t == 0) t = slurm_tasks(&tk, &tn, tfrom, sizeof tfrom, err, cap);
  if (t == 0) t = kubernetes(flag_n, &tk, &tn, tfrom, sizeof tfrom, err, cap);
  if (t < 0) return -1;
  if (a == 0 && t == 0) {
    say(err, cap,
        "--shard auto: no launcher's environment found (looked for a Slurm array, Open MPI, PMI, "
        "srun tasks and a Kubernetes Indexed Job; docs/CLUSTER.md); give --shard K/N");
    return -1;
  }
  if ((unsigned long long)an * tn > UINT32_MAX) {
    say(err, cap, "%u array tasks of %u tasks each: too many shards", an, tn);
    return -1;
  }
  *k = ak * tn + tk, *n = an * tn;
  if (a && t) say(from, fcap, "%s; within it, %s", afrom, tfrom);
  else say(from, fcap, "%s", a ? afrom : tfrom);
  return 0;
}
