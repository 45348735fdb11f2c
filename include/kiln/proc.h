/* kiln/proc.h: multiprocessing for C: processes and their start methods, connections (pipes)
 * between processes, a process pool whose results are ordinary kiln futures, shared memory,
 * process-shared locks, semaphores, conditions, events and barriers, process queues, and a
 * manager process that serves named objects to other processes and hosts.
 *
 * Semantics follow CPython's multiprocessing, with exceptions turned into negative KILN_E* codes
 * (kiln/error.h); docs/CONFORMANCE.md lists the rules kept and docs/PROCESSES.md explains the
 * choices a threaded C program forces (start methods, what crosses a process boundary).
 *
 * What crosses a process boundary: byte strings (the caller serialises; kiln copies bytes, never
 * pointers), shared memory segments (by name), and connections handed to a child when it starts.
 * Function pointers are passed as addresses: every process kiln starts is a fork of the program
 * (directly, or of its fork server), so a function of the program or of a library loaded before
 * the fork server started has the same address in the child.
 *
 * Timeouts are double seconds: negative waits forever, 0 does not block, NaN is KILN_EINVAL. */
#ifndef KILN_PROC_H
#define KILN_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/sched.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== processes, connections, process pool ======================================================= */


/* ==== shared memory, process-shared synchronisation, process queues ============================== */


/* ==== manager ==================================================================================== */


#ifdef __cplusplus
}
#endif
#endif /* KILN_PROC_H */
