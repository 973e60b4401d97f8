/* gstsimclrmpi.h: data-parallel training under Open MPI (issue 6).
 *
 * `mpirun -np K gst-launch-1.0 ...` runs K copies of a training pipeline, one
 * per rank. This module is the only place that calls MPI: lazy
 * initialisation from an element's start(), rank and size, the collectives
 * the elements need (float sum all-reduce for gradients and batch-norm
 * statistics, all-gather of the projections z for the NT-Xent loss), and
 * failure propagation (an error on one rank ends every rank within seconds).
 *
 * MPI is used only if the plugin was built with it (meson feature `mpi`) AND
 * the process was started by mpirun with more than one rank
 * (OMPI_COMM_WORLD_SIZE, or PMI_SIZE, > 1) AND the environment variable
 * SIMCLR_MPI is not "0". Otherwise every function here is a cheap no-op
 * (rank 0 of 1) and the elements behave exactly as without MPI.
 *
 * Semantics of a step with K ranks of N samples each (see gstsimclrmpi.c):
 * ntxentsink all-gathers the 2N x D projections of every rank, computes the
 * loss of all 2NK anchors (mean over them, the same number on every rank)
 * and returns to each rank dL/dz of its own rows; simclrencoder backpropagates
 * them and SUMS the parameter gradients over the ranks (replicas = 1), which
 * is then exactly the gradient of one rank with the whole 2NK batch. Batch
 * norm sums its statistics over the ranks (SyncBN). So K ranks of N compute
 * the update of one rank of NK, up to float rounding.
 *
 * Failure: an ERROR message on the bus of a pipeline whose element called
 * gst_simclr_mpi_start() prints the error with the rank and calls MPI_Abort
 * after a grace of SIMCLR_MPI_ABORT_GRACE seconds (default 1, so gst-launch
 * can print it too); a process that exits after such an error aborts at
 * once. A process that exits cleanly first waits (non-blocking barrier) for
 * every rank to reach exit, at most SIMCLR_MPI_FINALIZE_TIMEOUT seconds
 * (default 60), then MPI_Finalize; past the timeout (ranks that ran a
 * different number of steps, a rank stuck) it aborts instead of hanging.
 * With SIMCLR_MPI_STATS=1 each rank prints its time spent in collectives at
 * exit.
 */
#pragma once

#include <gst/gst.h>

#include "simclr/error.h"
#include "simclr/model.h"
#include "simclr/ntxent.h"
#include "simclr/trainer.h"

G_BEGIN_DECLS

/* Each thread that runs collectives uses its own communicator, so the
 * encoder's all-reduces and the sink's all-gathers never interleave in a
 * different order on different ranks. Pass GST_SIMCLR_MPI_CHANNEL (c) as the
 * `user` argument of gst_simclr_mpi_allreduce_sum. */
typedef enum {
  GST_SIMCLR_MPI_ENCODER = 0,   /* simclrencoder: BN statistics, gradients */
  GST_SIMCLR_MPI_LOSS = 1,      /* ntxentsink: z all-gather */
  GST_SIMCLR_MPI_N_CHANNELS = 2,
} GstSimclrMpiChannel;

#define GST_SIMCLR_MPI_CHANNEL(c) GINT_TO_POINTER ((gint) (c) + 1)

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

/* SimclrAllreduceFn: in-place float sum over all ranks on @channel's
 * communicator (GST_SIMCLR_MPI_CHANNEL (c)). A no-op unless active. */
void gst_simclr_mpi_allreduce_sum (float *buf, int n, void *channel);

/* Makes @t a data-parallel replica (a no-op returning TRUE unless active):
 * gradient hook = sum over ranks with replicas = 1 (the loss gradient the
 * sink returns is already that of the global mean loss), batch-norm
 * statistics summed over the ranks if @sync_bn, and the parameters, BN
 * buffers and optimiser velocity broadcast from rank 0 so every replica
 * starts identical. Fails (every rank alike) if the ranks' step counters
 * differ (resumed from different checkpoints). Collective over the encoder
 * channel: every rank must call it. */
gboolean gst_simclr_mpi_setup_trainer (SimclrTrainer * t, gboolean sync_bn,
    GError ** error);

/* The NT-Xent loss of one step across all ranks. z (rows, dim) are this
 * rank's rows (view 0 of its samples, then view 1 in the same order); the
 * rows of every rank are all-gathered (rank order), each anchor's positive
 * is the other view of the same sample of the same rank, and the loss is the
 * mean over all anchors of all ranks. @result gets the global loss and
 * accuracies (identical on every rank); dz (rows, dim) gets dL/dz for this
 * rank's rows only. *@nt / *@nt_rows are the caller's workspace, replaced
 * when too small for the gathered rows. @global_rows (may be NULL) gets the
 * total row count. Without MPI (or one rank) it is the local loss.
 * Collective over the loss channel: every rank must call it once per step. */
SimclrStatus gst_simclr_mpi_ntxent (SimclrNtxent ** nt, gint * nt_rows,
    const float *z, int rows, int dim, float tau, SimclrNtxentResult * result,
    float *dz, int *global_rows, SimclrError * err);

/* Prints @reason with the rank to stderr and ends every rank now
 * (MPI_Abort, exit code 1). Without MPI: does nothing. */
void gst_simclr_mpi_abort (const gchar * reason);

/* Seconds spent in collectives on @channel by this process so far. */
gdouble gst_simclr_mpi_comm_seconds (GstSimclrMpiChannel channel);

G_END_DECLS
