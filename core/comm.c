/* comm.c: the one-replica SimclrComm and its validation (see
 * include/simclr/comm.h). The hooks themselves are implemented outside the
 * core (mpi/simclr-mpi.c, tests). */
#include "simclr/comm.h"

#include <string.h>

void
simclr_comm_init_local (SimclrComm *comm)
{
  memset (comm, 0, sizeof *comm);
  comm->size = 1;
  comm->rank = 0;
}

SimclrStatus
simclr_comm_validate (const SimclrComm *comm, SimclrError *err)
{
  if (!comm)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "comm: NULL");
  if (comm->size < 1 || comm->size > 65536)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "comm: %d replicas not in [1, 65536]", comm->size);
  if (comm->rank < 0 || comm->rank >= comm->size)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "comm: rank %d not in [0, %d)", comm->rank, comm->size);
  if (comm->size > 1
      && (!comm->allreduce || !comm->allgather || !comm->broadcast))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "comm: %d replicas need the allreduce, allgather and broadcast "
        "hooks", comm->size);
  return SIMCLR_OK;
}
