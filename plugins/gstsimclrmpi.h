/* gstsimclrmpi.h: data-parallel training under Open MPI (issue 6), the
 * plugin's side.
 *
 * `mpirun -np K gst-launch-1.0 ...` runs K copies of a training pipeline,
 * one per rank. The arithmetic of a data-parallel step is the core's
 * (SimclrTrainer joins the replicas, SimclrLoss gathers z; see
 * include/simclr/comm.h) and the MPI hooks are mpi/simclr-mpi.c's. This file
 * adds only what needs GStreamer: lazy MPI initialisation from an element's
 * start() (never from plugin_init), the hooks per element thread, and
 * failure propagation (an error on one rank ends every rank within
 * seconds).
 *
 * MPI is used only if the plugin was built with it (meson feature `mpi`)
 * AND the process was started by mpirun with more than one rank AND the
 * environment variable SIMCLR_MPI is not "0" (see mpi/simclr-mpi.h).
 * Otherwise every function here is a cheap no-op (rank 0 of 1, the
 * one-replica SimclrComm) and the elements behave exactly as without MPI.
 *
 * Failure: an ERROR message on the bus of a pipeline whose element called
 * gst_simclr_mpi_start() prints the error with the rank and calls MPI_Abort
 * after a grace of SIMCLR_MPI_ABORT_GRACE seconds (default 1, so gst-launch
 * can print it too); a process that exits after such an error aborts at
 * once. A process that exits cleanly waits for the other ranks at most
 * SIMCLR_MPI_FINALIZE_TIMEOUT seconds (see mpi/simclr-mpi.h). With
 * SIMCLR_MPI_STATS=1 each rank prints its time spent in collectives at
 * exit.
 */
#pragma once

#include <gst/gst.h>

#include "simclr/comm.h"

G_BEGIN_DECLS

/* Each element thread that runs collectives has its own channel (an MPI
 * communicator), so the encoder's all-reduces and the sink's all-gathers
 * never interleave in a different order on different ranks. */
typedef enum {
  GST_SIMCLR_MPI_ENCODER = 0,   /* simclrencoder: the trainer */
  GST_SIMCLR_MPI_LOSS = 1,      /* ntxentsink: the loss */
} GstSimclrMpiChannel;

/* Call from an element's start() (never from plugin_init). Initialises MPI
 * once per process if this is a multi-rank mpirun job (see above), and
 * watches @element's bus (may be NULL: no watch) for errors. Returns TRUE if
 * this process is one of several ranks. On failure (an MPI without
 * MPI_THREAD_MULTIPLE) returns FALSE with @error set. */
gboolean gst_simclr_mpi_start (GstElement * element, GError ** error);

/* TRUE after a successful gst_simclr_mpi_start with more than one rank. */
gboolean gst_simclr_mpi_active (void);
gint gst_simclr_mpi_rank (void);        /* 0 unless active */
gint gst_simclr_mpi_size (void);        /* 1 unless active */

/* The collective hooks of @channel for the core's objects: MPI when active,
 * else the one-replica SimclrComm. */
void gst_simclr_mpi_comm (GstSimclrMpiChannel channel, SimclrComm * comm);

/* Wall seconds (@cpu: thread CPU seconds, may be NULL) this process has
 * spent so far inside the collectives of every channel (0 unless active):
 * for the encoder's step profile, which takes differences of them around
 * each phase. */
gdouble gst_simclr_mpi_collective_seconds (gdouble * cpu);

/* Prints @reason with the rank to stderr and ends every rank now
 * (MPI_Abort, exit code 1). Without MPI: does nothing. */
void gst_simclr_mpi_abort (const gchar * reason);

G_END_DECLS
