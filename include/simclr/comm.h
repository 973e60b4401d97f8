/* comm.h: the collectives of data-parallel replicas, as hooks (no MPI here).
 *
 * libsimclr never calls MPI. When K processes (ranks) train one model on K
 * shards of each batch, the objects that need the other replicas' values --
 * batch norm (SyncBN sums), the trainer (gradient sum, replica set-up) and
 * the loss (all-gather of z) -- call the hooks of a SimclrComm. An MPI
 * implementation lives outside the core (mpi/simclr-mpi.h); tests implement
 * the same hooks with threads in one process.
 *
 * Contract of every hook: collective. Every replica calls it, in the same
 * order relative to the other collectives of the same SimclrComm, with the
 * same sizes. A hook does not return an error: an implementation that cannot
 * complete a collective must end the job (MPI_Abort does), since the other
 * replicas would wait forever.
 *
 * Thread-safety: a SimclrComm is a plain value; two objects that run their
 * collectives on different threads need different `user` channels (an MPI
 * implementation: one communicator per thread), so collectives never
 * interleave in different orders on different ranks.
 */
#pragma once

#include <stddef.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* In-place float sum across replicas (MPI_Allreduce with MPI_SUM). */
typedef void (*SimclrAllreduceFn) (float *buf, int n, void *user);

/* All-gather: every replica passes @bytes bytes in @send (the same count on
 * every replica); @recv (size x @bytes) receives replica 0's block, then
 * replica 1's, ... (MPI_Allgather of MPI_BYTE). */
typedef void (*SimclrAllgatherFn) (const void *send, size_t bytes, void *recv,
    void *user);

/* Broadcast: @bytes bytes of @buf from replica 0 to every replica, in place
 * (MPI_Bcast from rank 0). */
typedef void (*SimclrBroadcastFn) (void *buf, size_t bytes, void *user);

typedef struct {
  int size;                     /* replicas K >= 1 */
  int rank;                     /* this replica, 0 .. K-1 */
  SimclrAllreduceFn allreduce;  /* required when size > 1 */
  SimclrAllgatherFn allgather;  /* required when size > 1 */
  SimclrBroadcastFn broadcast;  /* required when size > 1 */
  void *user;                   /* passed to every hook */
} SimclrComm;

/* One replica: size 1, rank 0, no hooks (every collective is the identity). */
void simclr_comm_init_local (SimclrComm *comm);

/* Checks 1 <= size <= 65536, 0 <= rank < size, and the hooks present when
 * size > 1. */
SimclrStatus simclr_comm_validate (const SimclrComm *comm, SimclrError *err);

#ifdef __cplusplus
}
#endif
