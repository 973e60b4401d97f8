/* simclr-mpi.h: the collective hooks of include/simclr/comm.h over MPI, and
 * the MPI life cycle of a gst-simclr process.
 *
 * libsimclr is MPI-free: it calls the hooks of a SimclrComm. This small
 * library fills those hooks with MPI (MPI_Allreduce, MPI_Allgather,
 * MPI_Bcast), so the GStreamer plugin (plugins/gstsimclrmpi.c: start-up from
 * an element, the bus failure watch) and the tools (tools/simclr-train.c)
 * share one implementation. Built only when meson finds MPI. No GStreamer,
 * no GLib.
 *
 * MPI is used only if the process was started by mpirun with more than one
 * rank (OMPI_COMM_WORLD_SIZE, or PMI_SIZE, > 1) AND the environment variable
 * SIMCLR_MPI is not "0"; otherwise simclr_mpi_init does nothing and every
 * SimclrComm given out is the one-replica one.
 *
 * Channels: each thread that runs collectives uses its own communicator
 * (MPI_Comm_dup of the world), so the trainer's all-reduces (streaming
 * thread of simclrencoder) and the loss's all-gathers (ntxentsink's thread)
 * never interleave in different orders on different ranks.
 *
 * Exit: a process that exits cleanly first waits (non-blocking barrier) for
 * every rank to reach exit, at most SIMCLR_MPI_FINALIZE_TIMEOUT seconds
 * (default 60), then calls MPI_Finalize; past the timeout (ranks that ran a
 * different number of steps, a rank stuck) it aborts instead of hanging.
 * After simclr_mpi_set_failed it aborts at once. With SIMCLR_MPI_STATS=1
 * each rank prints its time spent in collectives at exit.
 *
 * Thread-safety: simclr_mpi_init may be called from several threads (once
 * per process takes effect). The hooks of one channel: one thread at a time.
 */
#pragma once

#include "simclr/comm.h"
#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  SIMCLR_MPI_TRAINER = 0,   /* the trainer: SyncBN, gradient sum, set-up */
  SIMCLR_MPI_LOSS = 1,      /* the loss: z all-gather */
  SIMCLR_MPI_N_CHANNELS = 2,
} SimclrMpiChannel;

/* 1 if mpirun started this process as one of several ranks and SIMCLR_MPI
 * is not "0". */
int simclr_mpi_launched (void);

/* Initialises MPI once per process (MPI_THREAD_MULTIPLE) if
 * simclr_mpi_launched (), and registers the exit handler. Returns 1 if this
 * process is one of several ranks, 0 if MPI is not used, or a negative
 * SimclrStatus with @err set (an MPI without MPI_THREAD_MULTIPLE; every
 * later call fails alike). */
int simclr_mpi_init (SimclrError *err);

int simclr_mpi_active (void);      /* 1 after a successful multi-rank init */
int simclr_mpi_rank (void);        /* 0 unless active */
int simclr_mpi_size (void);        /* 1 unless active */

/* The hooks of @channel (user = the channel), or the one-replica comm when
 * MPI is not active. */
void simclr_mpi_comm (SimclrMpiChannel channel, SimclrComm *comm);

/* Prints @reason with the rank to stderr and ends every rank now
 * (MPI_Abort, exit code 1). Does nothing unless active. */
void simclr_mpi_abort (const char *reason);

/* Marks this process failed: at exit it aborts every rank instead of
 * waiting for them. Async-signal-safe enough for a bus handler (an atomic
 * store). */
void simclr_mpi_set_failed (void);

/* Seconds spent in collectives on @channel by this process so far. */
double simclr_mpi_comm_seconds (SimclrMpiChannel channel);

/* Thread CPU seconds spent inside the all-reduces and all-gathers of
 * @channel so far (Open MPI polls while it waits, so on a busy machine this
 * is the part of a wait that took a core). */
double simclr_mpi_comm_cpu (SimclrMpiChannel channel);

#ifdef __cplusplus
}
#endif
