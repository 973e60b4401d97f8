/* loss.h: the contrastive loss of a training step, for one process or K
 * data-parallel replicas, in one object.
 *
 * A SimclrLoss takes this replica's projections z and returns the loss, the
 * contrastive top-1/top-5 accuracy and dL/dz of this replica's rows. It owns
 * the whole sequence: the all-gather of every replica's rows (through the
 * SimclrComm hooks of comm.h; the identity for one replica), the positives
 * map of the gathered rows, the NT-Xent kernel (ntxent.h) and its workspace,
 * grown as batches grow. simclrencoder/ntxentsink, the trainer's convenience
 * step and the tools all call this, so a new loss is written once.
 *
 * Row layout. A replica's rows are V x N, view-major: row v * N + j is view
 * v of sample j (V = views). With K replicas the gathered rows are replica
 * 0's block, then replica 1's, ...; an anchor's positive is another view of
 * the same sample of the same replica. The loss is the mean over every
 * anchor of every replica (identical on each replica); replica r's dz is
 * d(that mean)/dz of its own rows. Summing the parameter gradients over the
 * replicas then gives exactly the gradient of one process with the whole
 * K x N batch (see trainer.h, simclr_trainer_join).
 * Replicas may hold different N (each V x N_r rows), but the same V and D.
 *
 * V = 2 is the NT-Xent of SimCLR; V > 2 views per sample use the
 * multi-positive form (simclr_ntxent_forward_groups: every other view of
 * the sample is a positive, the loss of an anchor averages over them), which
 * equals NT-Xent at V = 2.
 *
 * A queue of negatives (queue_size Q > 0; the memory bank of Wu et al. 2018
 * / MoCo's queue without its momentum encoder): the unit rows of the last
 * steps, up to Q of them, are extra negatives of every anchor, constants to
 * the gradient (ntxent.h, simclr_ntxent_forward_queue), so a small batch
 * sees thousands of negatives. A step's rows join the queue in
 * simclr_loss_backward, after its gradient; the oldest leave first. With K
 * replicas the queue holds the gathered rows of every replica (global
 * negatives), in the order of one process with the whole batch, identical
 * on every replica. The queue starts empty (a first step equals the loss
 * without a queue, bit for bit) and is not part of a checkpoint: a resumed
 * run refills it within Q / rows steps. queue_size 0 is the loss without a
 * queue, bit for bit.
 *
 * Thread-safety: one object, one thread at a time. Its collectives run on
 * the SimclrComm given at creation (its own channel, see comm.h).
 */
#pragma once

#include "simclr/comm.h"
#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SimclrLoss SimclrLoss;

#define SIMCLR_LOSS_MAX_VIEWS 64
#define SIMCLR_LOSS_MAX_QUEUE 65536

typedef struct {
  double temperature;   /* tau > 0: cosine similarities are divided by it; 0.5 */
  int views;            /* views per sample V in [2, SIMCLR_LOSS_MAX_VIEWS]; 2 */
  int queue_size;       /* negatives kept from earlier steps, in
                         * [0, SIMCLR_LOSS_MAX_QUEUE]; 0 = no queue; 0 */
} SimclrLossConfig;

typedef struct {
  double loss;          /* mean over the anchors of all replicas, nats */
  double top1;          /* fraction of anchors whose positive is the most
                         * similar other row (ties count for the positive) */
  double top5;          /* ... among the 5 most similar other rows */
  int rows;             /* anchors over all replicas (the gathered rows) */
} SimclrLossResult;

/* temperature 0.5, views 2, queue_size 0. */
void simclr_loss_config_default (SimclrLossConfig *cfg);

/* Checks temperature (positive, finite), views ([2, 64]; field
 * "loss.views") and queue_size ([0, 65536]; field "loss.queue_size"). */
SimclrStatus simclr_loss_config_validate (const SimclrLossConfig *cfg,
    SimclrError *err);

/* A loss for @cfg whose collectives go through @comm (copied; NULL = one
 * replica). NULL with @err set on an invalid configuration or no memory.
 * Free with simclr_loss_free (NULL is a no-op). */
SimclrLoss *simclr_loss_new (const SimclrLossConfig *cfg,
    const SimclrComm *comm, SimclrError *err);
void simclr_loss_free (SimclrLoss *loss);

/* The temperature of the next forward (an element's property may change
 * while it runs). Fails on tau <= 0 or not finite, keeping the old one. */
SimclrStatus simclr_loss_set_temperature (SimclrLoss *loss, double tau,
    SimclrError *err);
double simclr_loss_get_temperature (const SimclrLoss *loss);
const SimclrLossConfig *simclr_loss_get_config (const SimclrLoss *loss);

/* z (rows, dim) row-major: this replica's rows, view-major (see above);
 * rows a multiple of V, at least V. Gathers every replica's rows (a
 * collective: every replica calls it once per step, also when its own
 * arguments are bad, so that all of them fail alike), computes the loss and
 * the accuracies over all of them into @result, and caches what backward
 * needs. Fails with SIMCLR_ERROR_NUMERIC if a row or the loss is not
 * finite, SIMCLR_ERROR_INVALID_ARGUMENT if any replica's rows or dim do not
 * fit (the message names the replica). */
SimclrStatus simclr_loss_forward (SimclrLoss *loss, const float *z, int rows,
    int dim, SimclrLossResult *result, SimclrError *err);

/* dz (rows, dim) of the last successful forward: dL/dz of this replica's
 * rows (overwritten, not accumulated: the loss is the graph's root). Local:
 * no collective. Fails if there was no successful forward. With a queue,
 * the first backward after a forward then adds that forward's gathered
 * unit rows to the queue (a second backward of the same forward does not). */
SimclrStatus simclr_loss_backward (SimclrLoss *loss, float *dz,
    SimclrError *err);

/* Rows in the queue now (0 without one), in [0, queue_size]. */
int simclr_loss_queue_length (const SimclrLoss *loss);

/* Empties the queue (e.g. after a seek: the rows before it are of another
 * stream position). Local; replicas must all do it at the same step. */
void simclr_loss_clear_queue (SimclrLoss *loss);

#ifdef __cplusplus
}
#endif
