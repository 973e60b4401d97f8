/* loss.c: the contrastive loss of one step over all replicas (see
 * include/simclr/loss.h).
 *
 * Not here: the NT-Xent arithmetic (ntxent.c, the kernel underneath) or any
 * MPI (the SimclrComm hooks). This file is the one place that gathers the
 * replicas' rows, builds the positives map of the gathered layout, keeps the
 * kernel's workspace large enough and hands each replica its rows' dz.
 *
 * Why the gathered loss needs no averaging over replicas: with R gathered
 * rows the loss is L = (1/R) sum_i loss_i over every anchor of every
 * replica, computed identically on each. dL/dz_j for a row j of replica r
 * includes the terms of other replicas' anchors (z_j is a negative of
 * theirs). Replica r backpropagates dL/dz of its rows only, so its parameter
 * gradient is the part of dL/dtheta that flows through its rows, and the SUM
 * over replicas is dL/dtheta of the whole batch.
 *
 * Collectives per forward, in this order on every replica: an all-gather of
 * a 3-int header (rows, dim, views), then -- only when the gathered sizes
 * outgrow the buffers -- an all-reduce of an allocation-failure flag, then
 * the all-gather of z. The growth decision depends only on the gathered
 * headers and the previous capacities, which every replica computes alike,
 * so all of them take the same branch.
 *
 * The queue of negatives (cfg.queue_size > 0): the unit rows of earlier
 * steps, in a ring of queue_size rows, join every anchor's denominator as
 * constants (the kernel's simclr_ntxent_forward_queue). A step's rows enter
 * the ring in simclr_loss_backward, after its gradient is taken (a failed
 * step adds nothing, and the forward and backward of one step see the same
 * queue). With K replicas every replica holds the gathered rows' units and
 * enqueues all of them, in the order of one process with the whole batch
 * (view-major over the replicas' samples, see enqueue ()), so the ring is
 * the same on every replica and the same as one process's.
 */
#include "simclr/loss.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/ntxent.h"

/* The header every replica contributes before its rows. */
enum { HDR_ROWS, HDR_DIM, HDR_VIEWS, HDR_N };

struct SimclrLoss {
  SimclrLossConfig cfg;
  SimclrComm comm;
  SimclrNtxent *nt;           /* workspace for nt_rows x nt_dim */
  int nt_rows, nt_dim;
  /* Gathered layout of the last forward (rows == 0: none usable). */
  int rows, dim;              /* this replica's */
  int total;                  /* rows of every replica */
  int offset;                 /* first gathered row of this replica */
  /* Replicas > 1 only: */
  int32_t *headers;           /* (size, HDR_N) */
  float *all_z, *all_dz;      /* (cap_rows, cap_dim) */
  int *positive;              /* (cap_rows): each gathered row's positive
                               * (2 views) or sample (more views) */
  float *padded;              /* (size x max rows, dim) gather scratch for
                               * replicas of unequal rows */
  size_t cap_floats, cap_rows, cap_padded;
  /* The queue: (queue_size, queue_dim) unit rows, a ring. */
  float *queue;
  int queue_dim;              /* 0 until the first forward allocates it */
  int queue_len;              /* rows filled, <= queue_size */
  int queue_head;             /* the next row written */
  int pending;                /* the last forward's rows are not enqueued */
};

void
simclr_loss_config_default (SimclrLossConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->temperature = 0.5;
  cfg->views = 2;
  cfg->queue_size = 0;
}

static SimclrStatus
check_temperature (double tau, SimclrError *err)
{
  if (!(tau > 0) || !isfinite (tau))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss.temperature", NULL,
        "loss: temperature %g must be positive and finite", tau);
  return SIMCLR_OK;
}

SimclrStatus
simclr_loss_config_validate (const SimclrLossConfig *cfg, SimclrError *err)
{
  if (!cfg)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss: config is NULL");
  SimclrStatus s = check_temperature (cfg->temperature, err);
  if (s != SIMCLR_OK)
    return s;
  /* V = 2: SimCLR's NT-Xent (one positive); V > 2: the multi-positive
   * form, every other view of the sample a positive (ntxent.h). */
  if (cfg->views < 2 || cfg->views > SIMCLR_LOSS_MAX_VIEWS)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss.views", NULL,
        "loss: %d views per sample: must be in [2, %d]", cfg->views,
        SIMCLR_LOSS_MAX_VIEWS);
  if (cfg->queue_size < 0 || cfg->queue_size > SIMCLR_LOSS_MAX_QUEUE)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss.queue_size", NULL,
        "loss: a queue of %d negatives: must be in [0, %d]", cfg->queue_size,
        SIMCLR_LOSS_MAX_QUEUE);
  return SIMCLR_OK;
}

SimclrLoss *
simclr_loss_new (const SimclrLossConfig *cfg, const SimclrComm *comm,
    SimclrError *err)
{
  SimclrLoss *loss;

  if (simclr_loss_config_validate (cfg, err) != SIMCLR_OK)
    return NULL;
  if (comm && simclr_comm_validate (comm, err) != SIMCLR_OK)
    return NULL;
  loss = calloc (1, sizeof *loss);
  if (!loss) {
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "loss: out of memory");
    return NULL;
  }
  loss->cfg = *cfg;
  if (comm)
    loss->comm = *comm;
  else
    simclr_comm_init_local (&loss->comm);
  if (loss->comm.size > 1) {
    loss->headers = malloc ((size_t) loss->comm.size * HDR_N
        * sizeof (int32_t));
    if (!loss->headers) {
      simclr_loss_free (loss);
      simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "loss: out of memory");
      return NULL;
    }
  }
  return loss;
}

void
simclr_loss_free (SimclrLoss *loss)
{
  if (!loss)
    return;
  simclr_ntxent_free (loss->nt);
  free (loss->headers);
  free (loss->all_z);
  free (loss->all_dz);
  free (loss->positive);
  free (loss->padded);
  free (loss->queue);
  free (loss);
}

SimclrStatus
simclr_loss_set_temperature (SimclrLoss *loss, double tau, SimclrError *err)
{
  SimclrStatus s = check_temperature (tau, err);
  if (s == SIMCLR_OK)
    loss->cfg.temperature = tau;
  return s;
}

double
simclr_loss_get_temperature (const SimclrLoss *loss)
{
  return loss->cfg.temperature;
}

const SimclrLossConfig *
simclr_loss_get_config (const SimclrLoss *loss)
{
  return &loss->cfg;
}

/* Makes the kernel's workspace hold @rows x @dim (it only grows). */
static SimclrStatus
ensure_kernel (SimclrLoss *loss, int rows, int dim, SimclrError *err)
{
  rows += rows % 2;             /* the workspace's size is even */
  if (loss->nt && rows <= loss->nt_rows && dim <= loss->nt_dim)
    return SIMCLR_OK;
  int r = rows > loss->nt_rows ? rows : loss->nt_rows;
  int d = dim > loss->nt_dim ? dim : loss->nt_dim;
  simclr_ntxent_free (loss->nt);
  loss->nt_rows = loss->nt_dim = 0;
  loss->nt = simclr_ntxent_new_with_queue (r, loss->cfg.queue_size, d, err);
  if (!loss->nt)
    return err && err->status != SIMCLR_OK ? err->status
        : SIMCLR_ERROR_NO_MEMORY;
  loss->nt_rows = r;
  loss->nt_dim = d;
  return SIMCLR_OK;
}

/* Rows of replica @q are usable: a whole number of samples, each with all
 * its views. */
static int
rows_ok (int rows, int views)
{
  return rows >= views && rows % views == 0;
}

int
simclr_loss_queue_length (const SimclrLoss *loss)
{
  return loss ? loss->queue_len : 0;
}

void
simclr_loss_clear_queue (SimclrLoss *loss)
{
  if (!loss)
    return;
  loss->queue_len = loss->queue_head = 0;
  loss->pending = 0;
}

/* The queue holds rows of @dim: (re)allocates it for another dim (emptied:
 * rows of another dimension are no negatives). 0 on success, 1 if memory
 * ran out (the queue is then released). */
static int
queue_fit (SimclrLoss *loss, int dim)
{
  if (loss->cfg.queue_size == 0 || loss->queue_dim == dim)
    return 0;
  free (loss->queue);
  loss->queue = malloc ((size_t) loss->cfg.queue_size * dim * sizeof (float));
  loss->queue_dim = loss->queue ? dim : 0;
  loss->queue_len = loss->queue_head = 0;
  return loss->queue == NULL;
}

/* The last forward's unit rows join the ring, in the order of one process
 * holding every replica's samples: view v of every sample of replica 0,
 * then of replica 1, ..., for v = 0 .. V-1. One process: the rows' own
 * order. */
static void
enqueue (SimclrLoss *loss)
{
  const int Q = loss->cfg.queue_size, D = loss->dim, V = loss->cfg.views;
  const int K = loss->comm.size;
  int R;
  const float *u = simclr_ntxent_unit_rows (loss->nt, &R);

  if (Q == 0 || !u || !loss->queue || loss->queue_dim != D)
    return;
  for (int v = 0; v < V; v++)
    for (int q = 0, b = 0; q < K; q++) {
      const int n = (K == 1 ? R : loss->headers[(size_t) q * HDR_N + HDR_ROWS])
          / V;
      for (int j = 0; j < n; j++) {
        memcpy (loss->queue + (size_t) loss->queue_head * D,
            u + (size_t) (b + v * n + j) * D, (size_t) D * sizeof (float));
        loss->queue_head = (loss->queue_head + 1) % Q;
        if (loss->queue_len < Q)
          loss->queue_len++;
      }
      b += V * n;
    }
}

/* One replica: the kernel on the local rows, default pairing i <-> i +- N
 * (the same map as the gathered one, spelled NULL). */
static SimclrStatus
forward_local (SimclrLoss *loss, const float *z, int rows, int dim,
    SimclrLossResult *result, SimclrError *err)
{
  SimclrNtxentResult r;
  SimclrStatus s;

  if (!z)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss: z is NULL");
  if (!rows_ok (rows, loss->cfg.views))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss: %d rows is not a whole number of samples of %d views "
        "(at least one)", rows, loss->cfg.views);
  if (dim < 1)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss: dim %d must be >= 1", dim);
  s = ensure_kernel (loss, rows, dim, err);
  if (s != SIMCLR_OK)
    return s;
  if (queue_fit (loss, dim))
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "loss: out of memory for a queue of %d rows of dimension %d",
        loss->cfg.queue_size, dim);
  if (loss->cfg.views == 2) {
    s = simclr_ntxent_forward_queue (loss->nt, z, rows, dim,
        (float) loss->cfg.temperature, NULL, NULL, loss->queue,
        loss->queue_len, &r, err);
  } else {
    /* View v of sample j is row v * n + j: group j. */
    const int n = rows / loss->cfg.views;
    if ((size_t) rows > loss->cap_rows) {
      free (loss->positive);
      loss->positive = malloc ((size_t) rows * sizeof (int));
      loss->cap_rows = loss->positive ? (size_t) rows : 0;
      if (!loss->positive)
        return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
            "loss: out of memory for %d rows", rows);
    }
    for (int i = 0; i < rows; i++)
      loss->positive[i] = i % n;
    s = simclr_ntxent_forward_queue (loss->nt, z, rows, dim,
        (float) loss->cfg.temperature, NULL, loss->positive, loss->queue,
        loss->queue_len, &r, err);
  }
  if (s != SIMCLR_OK)
    return s;
  result->loss = r.loss;
  result->top1 = r.top1;
  result->top5 = r.top5;
  result->rows = rows;
  loss->rows = rows;
  loss->dim = dim;
  loss->total = rows;
  loss->offset = 0;
  return SIMCLR_OK;
}

/* Grows the gathered buffers for @total rows of @dim (and @padded floats of
 * gather scratch). Returns 0 on success, 1 if memory ran out (the buffers
 * are then released, capacities 0). */
static int
grow (SimclrLoss *loss, size_t total, size_t dim, size_t padded)
{
  size_t floats = total * dim;
  int failed = 0;

  if (floats > loss->cap_floats) {
    free (loss->all_z);
    free (loss->all_dz);
    loss->all_z = malloc (floats * sizeof (float));
    loss->all_dz = malloc (floats * sizeof (float));
    loss->cap_floats = floats;
    failed |= !loss->all_z || !loss->all_dz;
  }
  if (total > loss->cap_rows) {
    free (loss->positive);
    loss->positive = malloc (total * sizeof (int));
    loss->cap_rows = total;
    failed |= !loss->positive;
  }
  if (padded > loss->cap_padded) {
    free (loss->padded);
    loss->padded = malloc (padded * sizeof (float));
    loss->cap_padded = padded;
    failed |= !loss->padded;
  }
  if (!failed && ensure_kernel (loss, (int) total, (int) dim, NULL)
      != SIMCLR_OK)
    failed = 1;
  if (!failed && queue_fit (loss, (int) dim))
    failed = 1;
  if (failed) {
    free (loss->all_z);
    free (loss->all_dz);
    free (loss->positive);
    free (loss->padded);
    loss->all_z = loss->all_dz = loss->padded = NULL;
    loss->positive = NULL;
    loss->cap_floats = loss->cap_rows = loss->cap_padded = 0;
  }
  return failed;
}

/* K replicas: header exchange, checks every replica makes alike, gather,
 * kernel on all rows. */
static SimclrStatus
forward_gathered (SimclrLoss *loss, const float *z, int rows, int dim,
    SimclrLossResult *result, SimclrError *err)
{
  const SimclrComm *c = &loss->comm;
  const int K = c->size, V = loss->cfg.views;
  int32_t mine[HDR_N];
  int64_t total = 0, offset = 0;
  int max_rows = 0, equal = 1;
  SimclrNtxentResult r;
  SimclrStatus s;

  /* A replica with bad arguments still joins the exchange (rows -1), so
   * that every replica sees the failure and none waits for the others. */
  mine[HDR_ROWS] = z ? rows : -1;
  mine[HDR_DIM] = dim;
  mine[HDR_VIEWS] = V;
  c->allgather (mine, sizeof mine, loss->headers, c->user);

  for (int q = 0; q < K; q++) {
    const int32_t *h = loss->headers + (size_t) q * HDR_N;
    if (h[HDR_VIEWS] != V || h[HDR_DIM] != loss->headers[HDR_DIM]
        || h[HDR_DIM] < 1 || !rows_ok (h[HDR_ROWS], V))
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "loss: replica %d of %d has %d rows of dimension %d with %d views "
          "per sample; every replica needs a whole number of samples (at "
          "least one) and replica 0's dimension %d and views %d", q, K,
          (int) h[HDR_ROWS], (int) h[HDR_DIM], (int) h[HDR_VIEWS],
          (int) loss->headers[HDR_DIM], V);
    if (q == c->rank)
      offset = total;
    total += h[HDR_ROWS];
    if (h[HDR_ROWS] != loss->headers[HDR_ROWS])
      equal = 0;
    if (h[HDR_ROWS] > max_rows)
      max_rows = h[HDR_ROWS];
  }
  if (total > 65536 || total * dim > INT32_MAX)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss: %lld gathered rows of dimension %d are too many (65536 "
        "rows at most)", (long long) total, dim);

  {
    size_t padded = equal ? 0 : (size_t) K * max_rows * dim;
    int needs = (size_t) total * dim > loss->cap_floats
        || (size_t) total > loss->cap_rows || padded > loss->cap_padded
        || total > loss->nt_rows || dim > loss->nt_dim || !loss->nt
        || (loss->cfg.queue_size > 0 && loss->queue_dim != dim);
    if (needs) {
      /* Memory may run out on one replica only: agree before gathering. */
      float failed = (float) grow (loss, (size_t) total, (size_t) dim,
          padded);
      c->allreduce (&failed, 1, c->user);
      if (failed > 0)
        return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
            "loss: out of memory on %g of %d replicas for %lld gathered "
            "rows of dimension %d", (double) failed, K, (long long) total,
            dim);
    }
  }

  if (equal) {
    c->allgather (z, (size_t) rows * dim * sizeof (float), loss->all_z,
        c->user);
  } else {
    /* Pad every block to the largest, gather, then close the gaps. */
    float *send = loss->all_dz;       /* scratch until backward */
    size_t block = (size_t) max_rows * dim;
    memcpy (send, z, (size_t) rows * dim * sizeof (float));
    memset (send + (size_t) rows * dim, 0,
        (block - (size_t) rows * dim) * sizeof (float));
    c->allgather (send, block * sizeof (float), loss->padded, c->user);
    for (int q = 0, at = 0; q < K; q++) {
      int rq = loss->headers[(size_t) q * HDR_N + HDR_ROWS];
      memcpy (loss->all_z + (size_t) at * dim, loss->padded + q * block,
          (size_t) rq * dim * sizeof (float));
      at += rq;
    }
  }

  /* Replica q's block: view v of its sample j is row b + v * n + j; with
   * two views the positive of each is the other view of the sample, with
   * more every other view of it (the group of the sample: b / V + j, unique
   * over the replicas). */
  for (int q = 0, b = 0; q < K; q++) {
    int n = loss->headers[(size_t) q * HDR_N + HDR_ROWS] / V;
    for (int j = 0; j < n; j++) {
      if (V == 2) {
        loss->positive[b + j] = b + j + n;
        loss->positive[b + j + n] = b + j;
      } else {
        for (int v = 0; v < V; v++)
          loss->positive[b + v * n + j] = b / V + j;
      }
    }
    b += V * n;
  }

  s = simclr_ntxent_forward_queue (loss->nt, loss->all_z, (int) total, dim,
      (float) loss->cfg.temperature, V == 2 ? loss->positive : NULL,
      V == 2 ? NULL : loss->positive, loss->queue, loss->queue_len, &r, err);
  if (s != SIMCLR_OK)
    return s;
  result->loss = r.loss;
  result->top1 = r.top1;
  result->top5 = r.top5;
  result->rows = (int) total;
  loss->rows = rows;
  loss->dim = dim;
  loss->total = (int) total;
  loss->offset = (int) offset;
  return SIMCLR_OK;
}

SimclrStatus
simclr_loss_forward (SimclrLoss *loss, const float *z, int rows, int dim,
    SimclrLossResult *result, SimclrError *err)
{
  SimclrLossResult local;

  if (!loss)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss: NULL object");
  if (!result)
    result = &local;
  loss->rows = 0;               /* nothing for backward until this succeeds */
  loss->pending = 0;
  SimclrStatus s = loss->comm.size == 1
      ? forward_local (loss, z, rows, dim, result, err)
      : forward_gathered (loss, z, rows, dim, result, err);
  loss->pending = s == SIMCLR_OK;
  return s;
}

SimclrStatus
simclr_loss_backward (SimclrLoss *loss, float *dz, SimclrError *err)
{
  if (!loss || !dz)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss backward: NULL object or dz");
  if (loss->rows == 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "loss backward: no successful forward to differentiate");
  if (loss->comm.size == 1) {
    simclr_ntxent_backward (loss->nt, dz);
  } else {
    simclr_ntxent_backward (loss->nt, loss->all_dz);
    memcpy (dz, loss->all_dz + (size_t) loss->offset * loss->dim,
        (size_t) loss->rows * loss->dim * sizeof (float));
  }
  /* Once per step, after the gradient (which used the queue as it was). */
  if (loss->pending) {
    enqueue (loss);
    loss->pending = 0;
  }
  return SIMCLR_OK;
}
