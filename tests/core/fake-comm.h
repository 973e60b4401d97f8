/* fake-comm.h: K data-parallel replicas in one process, for tests.
 *
 * The hooks of include/simclr/comm.h over a barrier: each replica runs in
 * its own thread with its own SimclrComm (fake_comm), and every collective
 * meets in shared slots -- the contract of the MPI hooks of
 * mpi/simclr-mpi.c. The all-reduce sums in replica order (deterministic).
 */
#pragma once

#include <pthread.h>

#include "simclr/comm.h"

#define FAKE_SLOT_BYTES (1 << 22)

typedef struct {
  int K;
  pthread_barrier_t barrier;
  char *slots;                  /* (K, FAKE_SLOT_BYTES) */
  int gathers, reduces, broadcasts;   /* collectives completed */
} FakeGroup;

typedef struct {
  FakeGroup *g;
  int rank;
} FakeMember;

void fake_group_init (FakeGroup *g, int K);
void fake_group_clear (FakeGroup *g);
/* @m must outlive the comm's use. */
void fake_comm (FakeMember *m, SimclrComm *comm);
