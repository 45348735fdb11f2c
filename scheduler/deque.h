/* deque.h (internal): the Chase-Lev work-stealing deque of void * items.
 * Owner (one thread): kiln__deque_push, kiln__deque_pop. Thieves (any thread): kiln__deque_steal.
 * Algorithm: Chase & Lev, "Dynamic circular work-stealing deque" (SPAA 2005), with the C11 memory
 * orders of Lê, Pop, Cohen, Zappa Nardelli, "Correct and efficient work-stealing for weak memory
 * models" (PPoPP 2013). The array grows; old arrays are kept until kiln__deque_fini because a thief
 * may still be reading one. */
#ifndef KILN_SCHED_DEQUE_H
#define KILN_SCHED_DEQUE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kiln__deque_array {
  int64_t size;                       /* a power of two */
  struct kiln__deque_array *prev;     /* older arrays, freed at fini */
  _Atomic(void *) buf[];
} kiln__deque_array;

typedef struct kiln__deque {
  _Alignas(64) _Atomic int64_t top;   /* thieves' end; separate cache line from bottom */
  _Alignas(64) _Atomic int64_t bottom;/* owner's end */
  _Atomic(kiln__deque_array *) array;
} kiln__deque;

#define KILN__DEQUE_EMPTY ((void *)0)
#define KILN__DEQUE_ABORT ((void *)1) /* lost a race with another thief: try again */

int kiln__deque_init(kiln__deque *d, int64_t capacity); /* 0 or KILN_ENOMEM */
void kiln__deque_fini(kiln__deque *d);
int kiln__deque_push(kiln__deque *d, void *item);        /* owner; 0 or KILN_ENOMEM */
void *kiln__deque_pop(kiln__deque *d);                   /* owner; item or EMPTY */
void *kiln__deque_steal(kiln__deque *d);                 /* any; item, EMPTY or ABORT */

#endif
