/* test-mpi-equivalence.c: K ranks of N samples train exactly like one rank
 * of NK samples (issue 6), through the code paths the elements use:
 * SimclrTrainer + simclr_trainer_join (gradient sum, SyncBN, rank-0
 * broadcast) and SimclrLoss (z all-gather, global loss, own rows' dL/dz),
 * with the MPI hooks of mpi/simclr-mpi.c. Run under `mpirun -np 2` (meson
 * runs it over the default transports and over TCP, `--mca btl tcp,self`);
 * exits 77 (skip) when not started by mpirun with at least two ranks.
 *
 * 1. Distributed, SyncBN on: K ranks x N samples, 20 SGD steps (a free
 *    run; the ranks other than 0 start from other weights, BN statistics
 *    and velocity, so join's rank-0 broadcast is needed). Every rank must
 *    hold the same weights as rank 0 (bitwise).
 * 2. Reference on rank 0: one trainer, no hooks, all NK samples per step
 *    (rows: view 0 of samples 0..NK-1, then view 1), the loss computed by
 *    simclr_ntxent_forward with the default pairing.
 *    In lockstep (below) for 20 steps: every step's loss within TOL_LOSS,
 *    at most MAX_FLIPS steps whose worst gradient error exceeds TOL_MV_GRAD
 *    (ReLU flips), the median step's weight-update error within
 *    TOL_STEP_UPDATE, the BN running statistics within TOL_BUF after every
 *    step. The free run's losses must agree within TOL_LOSS for its first
 *    FREE_STEPS steps; its 20-step weight update and statistics are
 *    printed, not checked.
 *    Noise floor: each of those tolerances is max(fixed, FLOOR_FACTOR x
 *    floor), the floor measured in the same run as
 *    tests/mpi/test-mpi-pipeline.py measures its own: rank 0 makes the
 *    reference's computation once more under another kernel table
 *    (simclr_cpu_kernels_other: every convolution direct when Winograd is
 *    routed, else another level's; simclr_cpu_force_kernels), in lockstep
 *    (a third trainer reset to the reference's state every step, compared
 *    the same way) and for the free run's first FREE_STEPS. The gradient's
 *    floor is the floor run's lower-quartile step (its median is a flip's
 *    when half its steps flip); the allowed flip count is max(MAX_FLIPS,
 *    FLOOR_FACTOR x the floor run's), at most 3/4 of the steps, so a fault
 *    of every step still fails. A floor lifting a tolerance above
 *    FLOOR_CEILING x the fixed one fails the test (the update's only where
 *    it is checked, in 3: with F(4x4, 3x3) in the forward the multi-crop
 *    case's floor run flipped 5 of 10 steps, and its median update error,
 *    5.9e-3, refused there, failed a case that checks no update). Why:
 *    Winograd F(4x4, 3x3) in the forward rounds ~10x coarser than F(2x2,
 *    3x3) (per image the same bits whatever the batch split) and flipped 7
 *    of 20 lockstep steps with a median update error of 1.19e-3 (> the
 *    fixed 1e-3 and 5): the same single-rank computation under direct
 *    kernels measured the same 1.19e-3 and 5 flips against the reference,
 *    so the fixed tolerances failed a kernel, not the data-parallel code.
 *    Why lockstep: 20 free steps are chaotic. A ReLU input within float
 *    noise of 0 flips between the two runs (their sums run in other
 *    orders); at SIMCLR_CPU=avx2 one such flip made the free runs' losses
 *    drift from 1e-6 apart to 1.9e-4 between steps 15 and 19 and the BN
 *    statistics to 1.1e-5, while at avx512 they stayed within 2.4e-6: which
 *    level passes was an accident of one kernel set's rounding. In lockstep
 *    every step starts from the reference's state, so the error does not
 *    compound. Measured (generic / avx2 / avx512 / avx512 + Winograd,
 *    AMD EPYC Zen 5): lockstep losses within 1.5e-6 / 1.5e-6 / 2.9e-6 /
 *    1.0e-6; median gradient error 9.0e-6 / 9.0e-6 / 9.2e-6 / 9.1e-6;
 *    median update error 1.3e-4 / 1.3e-4 / 1.5e-4 / 1.2e-4 (the update of
 *    one step is 1e-5 of the weights, so float rounding of the weights
 *    alone is ~1e-4 of it); 0 / 1 / 0 / 1 flip steps; free-run losses of
 *    the first 8 steps within 1.5e-6 / 8.2e-7 / 2.1e-6 / 1.7e-6 (the avx2
 *    run first exceeded 1e-5 at step 16). (These figures predate the
 *    floor; medians are still printed.) The mutations the test must
 *    catch are far off: without the gradient sum the median gradient
 *    error is 2 (all 20 steps flagged), without SyncBN the lockstep losses
 *    differ by 0.38, a 1/K loss scale halves every gradient (0.5), a
 *    skipped rank-0 broadcast leaves replicas 7e-3 apart (case 1).
 * 3. Distributed, SyncBN off: must differ from the reference by more than
 *    DIFFER_FACTOR x the tolerance (so the test sees whether BN is global).
 * 4. K views per sample (issue 11): 1 and 2 again with 3 views per sample,
 *    the multi-positive loss (SimclrLoss views 3 on the ranks,
 *    simclr_ntxent_forward_groups on the reference's rows).
 * 7. Multi-crop (issue 11): 5 again with 4 views per sample, the last 2 of
 *    them SMALL_SIZE x SMALL_SIZE (SimclrTrainerConfig.small_views: a
 *    second model shares the weights at that size; SyncBN on both).
 * 6. A queue of negatives (issue 11): 5 again with 2 views and SimclrLoss
 *    queue_size QUEUE on the ranks (global rows, gathered) and on the
 *    reference (one process); the losses must also differ from run 1's
 *    (the queue is in effect).
 * Lockstep: the distributed replicas reset to the reference's state
 * (weights, velocity, BN statistics, broadcast from rank 0) before every
 * step. LOCKSTEP=1 also prints each step of an extra 20-step lockstep run.
 * The synthetic images are a pure function of (step, sample, view, pixel).
 * OPENBLAS_NUM_THREADS=1: each rank sums in a fixed order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include <glib.h>

#include "simclr/loss.h"
#include "simclr/ntxent.h"
#include "simclr/rng.h"
#include "simclr/trainer.h"
#include "simclr-mpi.h"
#include "cpu-private.h"

#define N 4                     /* samples per rank per step */
#define SIZE 12                /* image H = W */
#define STEPS 20
#define MV_STEPS 10             /* the 3-view run (lockstep) */
/* 3 views, lockstep: every step's gradient agreed within 1.4e-5 except a
 * ReLU flip (7e-4 in one tensor). */
#define TOL_MV_GRAD 1e-4
/* The free run's losses checked: step 0 (the same weights after join) and
 * the next 2. A ReLU flip reaches the loss through the later updates and
 * grows from step to step: with an AVX-512 stride-2 input-gradient kernel
 * of another rounding (helper stride2, not on main), at SIMCLR_WINOGRAD=0
 * a flip at step 3-5 moved the loss by 1.6e-4 by step 8; at
 * SIMCLR_CPU=avx2 one passed 1e-5 at step 16. Every step's transition is
 * checked in lockstep. */
#define FREE_STEPS 3
#define MAX_FLIPS 5
#define TOL_STEP_UPDATE 1e-3
#define SEED 11
#define TAU 0.5f
/* Observed (2 ranks vs 1, see the header for the lockstep figures): the
 * free run without SyncBN differs by losses 0.37, update 2.5, statistics
 * 0.2 (case 4 asks for DIFFER_FACTOR x TOL_UPDATE and x TOL_LOSS). */
#define TOL_LOSS 1e-5
#define TOL_UPDATE 5e-3
#define TOL_BUF 1e-5
#define DIFFER_FACTOR 10.0
/* The noise floor (see the header): tolerances are max(fixed,
 * FLOOR_FACTOR x floor); a floor lifting one above FLOOR_CEILING x the
 * fixed one fails the test. */
#define FLOOR_FACTOR 4
#define FLOOR_CEILING 20.0

static int rank, size;
static int views = 2;           /* views per sample of the current run */
static int small_views = 0;     /* of which SMALL_SIZE x SMALL_SIZE */
#define SMALL_SIZE 6
/* Queue rows of the current run (0: none). 40 = 2.5 steps of 16 global
 * rows, so the ring evicts part of a step. */
#define QUEUE 40
static int queue_size = 0;
static double lock_losses[STEPS];       /* run_lockstep's distributed losses */
/* The noise floor's kernel table (simclr_cpu_kernels_other) and its
 * setting; NULL: none */
static const SimclrKernels *floor_kernels;
static const char *floor_name = "";

static void
make_config (SimclrTrainerConfig *cfg, int rows)
{
  simclr_trainer_config_default (cfg);
  cfg->model.arch = SIMCLR_ARCH_RESNET18;
  cfg->model.width = 0.25;
  cfg->model.in_channels = 1;
  cfg->model.stem = SIMCLR_STEM_CIFAR;
  cfg->model.image_size = SIZE;
  cfg->model.max_batch = rows;
  cfg->model.proj_layers = 3;   /* BatchNorm1d in the head too */
  cfg->model.proj_dim = 16;
  cfg->model.threads = 1;
  /* SGD at a small rate (lr 3e-5: the weights move by ~7e-4 relative in 20
   * steps). Why small: a ReLU whose input is within float noise of 0 flips
   * between the two runs (their sums run in different orders), which changes
   * one row's share of a layer-4 gradient by a few percent (seen with
   * LOCKSTEP=1 at steps 1, 8, 15 even from identical weights); at a large
   * rate such a flip is amplified chaotically within a few steps, for the
   * 1-rank run against itself too (weights perturbed by 1e-7). */
  cfg->optim.kind = SIMCLR_OPTIM_SGD;
  cfg->optim.base_lr = 0.001;
  cfg->optim.batch_size = N * size;     /* the global batch, as one rank */
  cfg->optim.warmup_steps = 0;
  cfg->optim.total_steps = 100;
  cfg->optim.weight_decay = 1e-4;
  cfg->temperature = TAU;
  cfg->seed = SEED;
  cfg->views = views;
  cfg->small_views = small_views;
  cfg->small_size = small_views ? SMALL_SIZE : 0;
}

/* Side of view @v, and the offset of view @v of the @j-th of @n samples in
 * the packed rows (full-size views first, view-major, then the small). */
static int
view_side (int v)
{
  return v < views - small_views ? SIZE : SMALL_SIZE;
}

static size_t
view_offset (int v, int j, int n)
{
  int full = views - small_views;
  if (v < full)
    return (size_t) (v * n + j) * SIZE * SIZE;
  return (size_t) full * n * SIZE * SIZE
      + (size_t) ((v - full) * n + j) * SMALL_SIZE * SMALL_SIZE;
}

/* Pixel of view @v of global sample @s at @step. */
static void
fill_view (uint8_t *dst, int step, int s, int v)
{
  /* views 0 and 1 keep the two-view test's keys; more views get their own */
  uint64_t stream = ((uint64_t) step << 32) | (v < 2
      ? ((uint64_t) s << 1) | v : ((uint64_t) 1 << 31) | ((uint64_t) s << 6) | v);
  int side = view_side (v);
  for (int i = 0; i < side * side; i++) {
    /* a per-sample pattern plus view noise, so views of one sample are
     * closer than views of different samples; a small view samples the
     * pattern on its coarser grid */
    int bi = side == SIZE ? i : (i / side) * SIZE / side * SIZE
        + (i % side) * SIZE / side;
    float base = simclr_rng_uniform (SEED, ((uint64_t) s << 1), bi);
    float noise = simclr_rng_uniform (SEED + 1, stream, i);
    dst[i] = (uint8_t) (255.0f * (0.7f * base + 0.3f * noise));
  }
}

/* Local rows of @r: view 0 of samples r*N..r*N+N-1, then view 1, ... */
static void
local_views (uint8_t *pix, int step, int r)
{
  for (int v = 0; v < views; v++)
    for (int j = 0; j < N; j++)
      fill_view (pix + view_offset (v, j, N), step, r * N + j, v);
}

static void
global_views (uint8_t *pix, int step)
{
  int nk = N * size;
  for (int v = 0; v < views; v++)
    for (int s = 0; s < nk; s++)
      fill_view (pix + view_offset (v, s, nk), step, s, v);
}

static void
die (const char *what, const SimclrError *err)
{
  fprintf (stderr, "rank %d: %s: %s\n", rank, what, err ? err->message : "");
  MPI_Abort (MPI_COMM_WORLD, 1);
}

/* The trainer's replica set-up on the trainer channel, as simclrencoder does. */
static void
join (SimclrTrainer *t, gboolean sync_bn)
{
  SimclrComm comm;
  SimclrError err = { 0 };
  simclr_mpi_comm (SIMCLR_MPI_TRAINER, &comm);
  if (simclr_trainer_join (t, &comm, sync_bn, &err) != SIMCLR_OK)
    die ("join", &err);
}

/* The loss over all ranks on the loss channel, as ntxentsink does. */
static SimclrLoss *
new_gathered_loss (void)
{
  SimclrLossConfig cfg;
  SimclrComm comm;
  SimclrError err = { 0 };
  simclr_loss_config_default (&cfg);
  cfg.temperature = TAU;
  cfg.views = views;
  cfg.queue_size = queue_size;
  simclr_mpi_comm (SIMCLR_MPI_LOSS, &comm);
  SimclrLoss *loss = simclr_loss_new (&cfg, &comm, &err);
  if (!loss)
    die ("loss_new", &err);
  return loss;
}

/* Runs the distributed training; fills losses (STEPS) and returns the
 * trainer. */
static SimclrTrainer *
run_distributed (gboolean sync_bn, double *losses)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  SimclrLoss *loss = new_gathered_loss ();
  const int rows = views * N;

  make_config (&cfg, rows);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  if (!t)
    die ("trainer_new", &err);
  if (rank != 0) {
    /* other ranks start elsewhere: join's rank-0 broadcast must fix that
     * (case 1 sees a replica that kept its own weights) */
    size_t np, nb;
    SimclrModel *m = simclr_trainer_get_model (t);
    float *p = simclr_model_params (m, &np);
    float *b = simclr_model_buffers (m, &nb);
    float *v = simclr_trainer_get_velocity (t, &np);
    for (size_t i = 0; i < np; i++) {
      p[i] += 1e-3f * (float) rank;
      v[i] += 1e-3f * (float) rank;
    }
    for (size_t i = 0; i < nb; i++)
      b[i] += 1e-3f * (float) rank;
  }
  join (t, sync_bn);
  int out = simclr_model_output_dim (simclr_trainer_get_model (t));
  uint8_t *pix = g_malloc ((size_t) rows * SIZE * SIZE);
  float *z = g_new (float, (size_t) rows * out);
  float *dz = g_new (float, (size_t) rows * out);
  for (int step = 0; step < STEPS; step++) {
    SimclrLossResult res;
    local_views (pix, step, rank);
    if (simclr_trainer_forward_u8 (t, pix, rows, z, &err) != SIMCLR_OK)
      die ("forward", &err);
    if (simclr_loss_forward (loss, z, rows, out, &res, &err) != SIMCLR_OK
        || simclr_loss_backward (loss, dz, &err) != SIMCLR_OK)
      die ("gathered loss", &err);
    if (res.rows != rows * size) {
      fprintf (stderr, "rank %d: %d gathered rows, expected %d\n", rank,
          res.rows, rows * size);
      MPI_Abort (MPI_COMM_WORLD, 1);
    }
    if (simclr_trainer_backward_and_step (t, dz, &err) != SIMCLR_OK)
      die ("backward_and_step", &err);
    losses[step] = res.loss;
  }
  simclr_loss_free (loss);
  g_free (pix);
  g_free (z);
  g_free (dz);
  return t;
}

static SimclrTrainer *
run_reference (double *losses, int steps)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  const int rows = views * N * size;
  int *group = g_new (int, rows);

  /* more than 2 views: row v * NK + s is view v of sample s */
  for (int i = 0; i < rows; i++)
    group[i] = i % (N * size);
  make_config (&cfg, rows);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  if (!t)
    die ("reference trainer_new", &err);
  int out = simclr_model_output_dim (simclr_trainer_get_model (t));
  SimclrNtxent *nt = simclr_ntxent_new (rows, out, &err);
  if (!nt)
    die ("ntxent_new", &err);
  /* with a queue: the loss object of one process (no hooks) */
  SimclrLoss *qloss = NULL;
  if (queue_size > 0) {
    SimclrLossConfig lc;
    simclr_loss_config_default (&lc);
    lc.temperature = TAU;
    lc.views = views;
    lc.queue_size = queue_size;
    qloss = simclr_loss_new (&lc, NULL, &err);
    if (!qloss)
      die ("reference loss_new", &err);
  }
  uint8_t *pix = g_malloc ((size_t) rows * SIZE * SIZE);
  float *z = g_new (float, (size_t) rows * out);
  float *dz = g_new (float, (size_t) rows * out);
  for (int step = 0; step < steps; step++) {
    SimclrNtxentResult res;
    global_views (pix, step);
    if (qloss) {
      SimclrLossResult lr;
      if (simclr_trainer_forward_u8 (t, pix, rows, z, &err) != SIMCLR_OK
          || simclr_loss_forward (qloss, z, rows, out, &lr, &err) != SIMCLR_OK
          || simclr_loss_backward (qloss, dz, &err) != SIMCLR_OK
          || simclr_trainer_backward_and_step (t, dz, &err) != SIMCLR_OK)
        die ("reference with a queue", &err);
      losses[step] = lr.loss;
      continue;
    }
    if (simclr_trainer_forward_u8 (t, pix, rows, z, &err) != SIMCLR_OK
        || (views == 2
            ? simclr_ntxent_forward (nt, z, rows, out, TAU, NULL, &res, &err)
            : simclr_ntxent_forward_groups (nt, z, rows, out, TAU, group,
                &res, &err)) != SIMCLR_OK)
      die ("reference forward", &err);
    simclr_ntxent_backward (nt, dz);
    if (simclr_trainer_backward_and_step (t, dz, &err) != SIMCLR_OK)
      die ("reference step", &err);
    losses[step] = res.loss;
  }
  simclr_ntxent_free (nt);
  simclr_loss_free (qloss);
  g_free (group);
  g_free (pix);
  g_free (z);
  g_free (dz);
  return t;
}

/* Weights: the relative error of the 20-step update, ||a - ref|| /
 * ||ref - init|| (2-norms), worst over the parameter tensors that moved.
 * BN running statistics: max |a - ref| / (1 + |ref|). *where names the worst
 * tensor. */
static void
compare_weights (SimclrTrainer *a, SimclrTrainer *ref, const float *init,
    double *update_err, double *buffer_err, char *where, size_t where_size)
{
  SimclrModel *ma = simclr_trainer_get_model (a);
  SimclrModel *mr = simclr_trainer_get_model (ref);
  double worst = 0, worst_buf = 0;
  where[0] = '\0';
  for (int k = 0; k < simclr_model_n_tensors (ma); k++) {
    const SimclrTensorInfo *ti = simclr_model_tensor (ma, k);
    size_t n;
    if (ti->storage == SIMCLR_TENSOR_PARAM) {
      const float *pa = simclr_model_params (ma, &n);
      const float *pr = simclr_model_params (mr, &n);
      double num = 0, den = 0;
      for (size_t i = ti->offset; i < ti->offset + ti->numel; i++) {
        num += ((double) pa[i] - pr[i]) * ((double) pa[i] - pr[i]);
        den += ((double) pr[i] - init[i]) * ((double) pr[i] - init[i]);
      }
      if (den == 0)
        continue;
      double e = sqrt (num / den);
      if (!(e <= worst)) {
        worst = isnan (e) ? INFINITY : e;
        snprintf (where, where_size, "%s (update norm %.3g, error norm "
            "%.3g)", ti->name, sqrt (den), sqrt (num));
      }
    } else {
      const float *pa = simclr_model_buffers (ma, &n);
      const float *pr = simclr_model_buffers (mr, &n);
      for (size_t i = ti->offset; i < ti->offset + ti->numel; i++) {
        double d = fabs ((double) pa[i] - pr[i]) / (1.0 + fabs (pr[i]));
        worst_buf = fmax (worst_buf, isnan (d) ? INFINITY : d);
      }
    }
  }
  *update_err = worst;
  *buffer_err = worst_buf;
}

/* ||ref - init|| / ||init|| over all parameters: how far 20 steps went. */
static double
relative_update (SimclrTrainer *ref, const float *init)
{
  size_t n;
  const float *p = simclr_model_params (simclr_trainer_get_model (ref), &n);
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += ((double) p[i] - init[i]) * ((double) p[i] - init[i]);
    den += (double) init[i] * init[i];
  }
  return sqrt (num / den);
}

/* Max |p - p_rank0| over the parameters, on every rank. */
static double
replica_spread (SimclrTrainer *t)
{
  size_t n;
  float *p = simclr_model_params (simclr_trainer_get_model (t), &n);
  float *p0 = g_memdup2 (p, n * sizeof (float));
  MPI_Bcast (p0, (int) n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  double d = 0, all;
  for (size_t i = 0; i < n; i++)
    d = fmax (d, fabs ((double) p[i] - p0[i]));
  g_free (p0);
  MPI_Allreduce (&d, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return all;
}

/* A lockstep run of @steps steps (<= STEPS) against the reference, and its
 * summary on rank 0. */
typedef struct {
  int steps;
  double step_err[STEPS];       /* each step's worst gradient error */
  double loss_diff[STEPS];      /* each step's |loss - reference| */
  double upd_err[STEPS];        /* each step's worst weight-update error */
  double buf_err[STEPS];        /* each step's BN statistics error */
  double worst_loss;            /* of loss_diff */
  double median, worst;         /* of step_err */
  double quartile;              /* of step_err: the lower quartile */
  double median_upd;            /* of upd_err */
  double worst_buf;             /* of buf_err */
  char where[256];              /* the worst gradient error's tensor */
} LockstepResult;

/* Step @step's errors of @m (which started the step from the weights
 * @before, the reference's) against the reference @ref's model into @r:
 * the worst relative gradient error (2-norm per tensor), the weight update
 * (worst tensor, relative 2-norm) and the BN running statistics after it
 * (max |a - ref| / (1 + |ref|)); r->worst and r->where follow the worst
 * gradient error so far. */
static void
step_errors (SimclrModel *m, const float *before, SimclrModel *rm, int step,
    LockstepResult *r)
{
  const float *g = simclr_model_grads (m, NULL);
  const float *p = simclr_model_params (m, NULL);
  const float *b = simclr_model_buffers (m, NULL);
  const float *rg = simclr_model_grads (rm, NULL);
  const float *rp = simclr_model_params (rm, NULL);
  const float *rb = simclr_model_buffers (rm, NULL);
  double step_worst = 0, upd_worst = 0, buf_worst = 0;
  for (int k = 0; k < simclr_model_n_tensors (m); k++) {
    const SimclrTensorInfo *ti = simclr_model_tensor (m, k);
    if (ti->storage != SIMCLR_TENSOR_PARAM) {
      for (size_t i = ti->offset; i < ti->offset + ti->numel; i++) {
        double d = fabs ((double) b[i] - rb[i]) / (1.0 + fabs (rb[i]));
        buf_worst = fmax (buf_worst, isnan (d) ? INFINITY : d);
      }
      continue;
    }
    double num = 0, den = 0, unum = 0, uden = 0;
    for (size_t i = ti->offset; i < ti->offset + ti->numel; i++) {
      num += ((double) g[i] - rg[i]) * ((double) g[i] - rg[i]);
      den += (double) rg[i] * rg[i];
      unum += ((double) p[i] - rp[i]) * ((double) p[i] - rp[i]);
      uden += ((double) rp[i] - before[i]) * ((double) rp[i] - before[i]);
    }
    double e = den > 0 ? sqrt (num / den) : sqrt (num);
    e = isnan (e) ? INFINITY : e;
    step_worst = fmax (step_worst, e);
    if (!(e <= r->worst)) {
      r->worst = e;
      snprintf (r->where, sizeof r->where, "step %d %s (gradient norm %.3g, "
          "error norm %.3g)", step, ti->name, sqrt (den), sqrt (num));
    }
    if (uden > 0) {
      double u = sqrt (unum / uden);
      upd_worst = fmax (upd_worst, isnan (u) ? INFINITY : u);
    }
  }
  r->step_err[step] = step_worst;
  r->upd_err[step] = upd_worst;
  r->buf_err[step] = buf_worst;
}

/* Copies @from's weights, BN statistics and velocity into @to. */
static void
copy_state (SimclrTrainer *to, SimclrTrainer *from)
{
  size_t np, nb;
  SimclrModel *mt = simclr_trainer_get_model (to);
  SimclrModel *mf = simclr_trainer_get_model (from);
  float *p = simclr_model_params (mt, &np);
  float *b = simclr_model_buffers (mt, &nb);
  memcpy (p, simclr_model_params (mf, NULL), np * sizeof (float));
  memcpy (b, simclr_model_buffers (mf, NULL), nb * sizeof (float));
  memcpy (simclr_trainer_get_velocity (to, NULL),
      simclr_trainer_get_velocity (from, NULL), np * sizeof (float));
}

/* One reference-style step of @t on all @grows rows @pix: the loss of one
 * process (@rq with a queue, else @nt); returns the loss. */
static double
reference_step (SimclrTrainer *t, SimclrNtxent *nt, SimclrLoss *rq,
    const uint8_t *pix, int grows, int out, const int *group, float *z,
    float *dz)
{
  SimclrError err = { 0 };
  SimclrNtxentResult res;
  if (simclr_trainer_forward_u8 (t, pix, grows, z, &err) != SIMCLR_OK)
    die ("lockstep reference forward", &err);
  if (rq) {
    SimclrLossResult qr;
    if (simclr_loss_forward (rq, z, grows, out, &qr, &err) != SIMCLR_OK
        || simclr_loss_backward (rq, dz, &err) != SIMCLR_OK)
      die ("lockstep reference with a queue", &err);
    res.loss = qr.loss;
  } else {
    if ((views == 2
            ? simclr_ntxent_forward (nt, z, grows, out, TAU, NULL, &res, &err)
            : simclr_ntxent_forward_groups (nt, z, grows, out, TAU, group,
                &res, &err)) != SIMCLR_OK)
      die ("lockstep reference loss", &err);
    simclr_ntxent_backward (nt, dz);
  }
  if (simclr_trainer_backward_and_step (t, dz, &err) != SIMCLR_OK)
    die ("lockstep reference step", &err);
  return res.loss;
}

static SimclrLoss *
new_local_loss (void)
{
  SimclrLossConfig lc;
  SimclrError err = { 0 };
  simclr_loss_config_default (&lc);
  lc.temperature = TAU;
  lc.views = views;
  lc.queue_size = queue_size;
  SimclrLoss *l = simclr_loss_new (&lc, NULL, &err);
  if (!l)
    die ("lockstep reference loss_new", &err);
  return l;
}

/* Lockstep: every step, the distributed trainer and (on rank 0) the
 * reference start from the same weights, velocity and BN statistics (rank
 * 0's reference state broadcast); the gradients and the new weights of the
 * step are compared (into @r on rank 0). With @fl (rank 0; floor_kernels
 * not NULL), the noise floor in the same run: a third trainer, created and
 * run under floor_kernels (simclr_cpu_force_kernels), makes the
 * reference's step on the same rows from the same state, compared the same
 * way into @fl. */
static void
run_lockstep (int steps, LockstepResult *r, LockstepResult *fl)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  SimclrLoss *loss = new_gathered_loss ();
  SimclrNtxent *rnt = NULL;
  const int rows = views * N, grows = views * N * size;
  int *group = g_new (int, grows);

  for (int i = 0; i < grows; i++)
    group[i] = i % (N * size);
  memset (r, 0, sizeof *r);
  r->steps = steps;
  if (fl) {
    memset (fl, 0, sizeof *fl);
    fl->steps = steps;
  }

  make_config (&cfg, rows);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  join (t, TRUE);
  SimclrTrainer *ref = NULL, *alt = NULL;
  make_config (&cfg, grows);
  if (rank == 0)
    ref = simclr_trainer_new (&cfg, &err);
  if (rank == 0 && fl) {
    const SimclrKernels *was = simclr_cpu_force_kernels (floor_kernels);
    alt = simclr_trainer_new (&cfg, &err);
    simclr_cpu_force_kernels (was);
  }
  if (rank == 0 && (!ref || (fl && !alt)))
    die ("lockstep reference trainer_new", &err);
  int out = simclr_model_output_dim (simclr_trainer_get_model (t));
  uint8_t *pix = g_malloc ((size_t) grows * SIZE * SIZE);
  float *z = g_new (float, (size_t) grows * out);
  float *dz = g_new (float, (size_t) grows * out);
  /* the reference's and the floor trainer's losses with a queue */
  SimclrLoss *rq = NULL, *aq = NULL;
  if (rank == 0)
    rnt = simclr_ntxent_new (grows, out, &err);
  if (rank == 0 && queue_size > 0) {
    rq = new_local_loss ();
    aq = fl ? new_local_loss () : NULL;
  }
  SimclrModel *m = simclr_trainer_get_model (t);
  size_t np, nb;
  float *p = simclr_model_params (m, &np);
  float *b = simclr_model_buffers (m, &nb);
  float *v = simclr_trainer_get_velocity (t, &np);
  float *before = g_new (float, np);   /* the weights the step starts from */
  for (int step = 0; step < steps; step++) {
    SimclrLossResult lres;
    if (rank == 0)
      copy_state (t, ref);
    MPI_Bcast (p, (int) np, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Bcast (b, (int) nb, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Bcast (v, (int) np, MPI_FLOAT, 0, MPI_COMM_WORLD);
    memcpy (before, p, np * sizeof (float));
    local_views (pix, step, rank);
    if (simclr_trainer_forward_u8 (t, pix, rows, z, &err) != SIMCLR_OK
        || simclr_loss_forward (loss, z, rows, out, &lres, &err) != SIMCLR_OK
        || simclr_loss_backward (loss, dz, &err) != SIMCLR_OK
        || simclr_trainer_backward_and_step (t, dz, &err) != SIMCLR_OK)
      die ("lockstep", &err);
    if (rank != 0)
      continue;
    global_views (pix, step);
    lock_losses[step] = lres.loss;
    double alt_loss = 0;
    if (alt) {
      copy_state (alt, ref);
      const SimclrKernels *was = simclr_cpu_force_kernels (floor_kernels);
      alt_loss = reference_step (alt, rnt, aq, pix, grows, out, group, z, dz);
      simclr_cpu_force_kernels (was);
    }
    double ref_loss = reference_step (ref, rnt, rq, pix, grows, out, group,
        z, dz);
    SimclrModel *rm = simclr_trainer_get_model (ref);
    step_errors (m, before, rm, step, r);
    r->loss_diff[step] = fabs (lres.loss - ref_loss);
    if (alt) {
      step_errors (simclr_trainer_get_model (alt), before, rm, step, fl);
      fl->loss_diff[step] = fabs (alt_loss - ref_loss);
    }
    if (getenv ("LOCKSTEP"))
      printf ("#   lockstep step %d: worst gradient error %.3g, update %.3g, "
          "BN statistics %.3g, loss %.7f\n", step, r->step_err[step],
          r->upd_err[step], r->buf_err[step], ref_loss);
  }
  simclr_loss_free (loss);
  simclr_loss_free (rq);
  simclr_loss_free (aq);
  simclr_ntxent_free (rnt);
  simclr_trainer_free (t);
  simclr_trainer_free (ref);
  simclr_trainer_free (alt);
  g_free (before);
  g_free (group);
  g_free (pix);
  g_free (z);
  g_free (dz);
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* The @k-th smallest of @n values (0: the least), NaN counting as
 * infinite. */
static double
order_stat (const double *v, int n, int k)
{
  double sorted[STEPS];
  for (int s = 0; s < n; s++)
    sorted[s] = isnan (v[s]) ? INFINITY : v[s];
  qsort (sorted, n, sizeof (double), cmp_double);
  return sorted[k];
}

/* Fills @r's summary from its steps (NaN counts as infinite). */
static void
summarise (LockstepResult *r)
{
  for (int s = 0; s < r->steps; s++) {
    r->worst_loss = fmax (r->worst_loss, isnan (r->loss_diff[s]) ? INFINITY
        : r->loss_diff[s]);
    r->worst_buf = fmax (r->worst_buf, isnan (r->buf_err[s]) ? INFINITY
        : r->buf_err[s]);
  }
  r->median = order_stat (r->step_err, r->steps, r->steps / 2);
  r->quartile = order_stat (r->step_err, r->steps, r->steps / 4);
  r->median_upd = order_stat (r->upd_err, r->steps, r->steps / 2);
}

/* Of the first @n values of @v, how many exceed @tol (NaN does). */
static int
count_above (const double *v, int n, double tol)
{
  int k = 0;
  for (int s = 0; s < n; s++)
    k += !(v[s] <= tol);
  return k;
}

/* The tolerances of one lockstep comparison: the fixed ones, or
 * FLOOR_FACTOR x the noise floor measured beside it where that is larger
 * (see the header). A floor that is not finite or would lift a tolerance
 * above FLOOR_CEILING x the fixed one is refused (ok = FALSE): the floor
 * run itself is broken, and it must never make a check vacuous. */
typedef struct {
  double loss, grad, upd, buf;
  int flips;                    /* allowed steps above grad */
  gboolean ok;
  gboolean upd_ok;              /* upd's floor accepted (only 3 checks upd) */
} Tolerances;

static double
floored (double fixed, double floor, gboolean *ok)
{
  double t = fmax (fixed, FLOOR_FACTOR * floor);
  if (!(t <= FLOOR_CEILING * fixed)) {
    *ok = FALSE;
    return fixed;
  }
  return t;
}

static Tolerances
tolerances (const LockstepResult *fl, int steps)
{
  /* without a floor: MAX_FLIPS, and fewer than half the steps (the median
   * step within the gradient tolerance) */
  Tolerances t = {TOL_LOSS, TOL_MV_GRAD, TOL_STEP_UPDATE, TOL_BUF,
    MIN (MAX_FLIPS, (steps - 1) / 2), TRUE, TRUE};
  if (!fl)
    return t;
  t.loss = floored (TOL_LOSS, fl->worst_loss, &t.ok);
  /* the gradient's noise level: the floor run's lower-quartile step (its
   * median is a ReLU flip's when half its steps flip, as at 3 views with
   * F(4x4, 3x3)) */
  t.grad = floored (TOL_MV_GRAD, fl->quartile, &t.ok);
  t.upd = floored (TOL_STEP_UPDATE, fl->median_upd, &t.upd_ok);
  t.buf = floored (TOL_BUF, fl->worst_buf, &t.ok);
  /* ReLU flips: FLOOR_FACTOR x the floor run's count, at most 3/4 of the
   * steps (a fault of every step still fails) */
  int ff = FLOOR_FACTOR * count_above (fl->step_err, steps, t.grad);
  t.flips = MAX (t.flips, MIN (ff, 3 * steps / 4));
  return t;
}

/* Runs run_lockstep on every rank (with the noise floor when
 * floor_kernels is set); rank 0 prints each step after @label, fills @r
 * and returns the tolerances. */
static Tolerances
run_lockstep_case (const char *label, int steps, LockstepResult *r)
{
  LockstepResult fl;
  gboolean with_floor = rank == 0 && floor_kernels != NULL;
  run_lockstep (steps, r, with_floor ? &fl : NULL);
  if (rank != 0)
    return tolerances (NULL, steps);
  summarise (r);
  for (int s = 0; s < steps; s++) {
    printf ("#   %s, step %d: |loss - reference| %.3g, worst gradient "
        "error %.3g, update %.3g, BN statistics %.3g", label, s,
        r->loss_diff[s], r->step_err[s], r->upd_err[s], r->buf_err[s]);
    if (with_floor)
      printf ("; floor %.3g, %.3g, %.3g, %.3g", fl.loss_diff[s],
          fl.step_err[s], fl.upd_err[s], fl.buf_err[s]);
    printf ("\n");
  }
  if (!with_floor) {
    printf ("# %s: no noise floor (the CPU has no other kernel setting): "
        "the fixed tolerances\n", label);
    return tolerances (NULL, steps);
  }
  summarise (&fl);
  Tolerances t = tolerances (&fl, steps);
  printf ("# %s: noise floor (one trainer of all rows under %s, in "
      "lockstep with the reference): losses %.3g, gradient error lower "
      "quartile %.3g (median %.3g), median update error %.3g, BN statistics "
      "%.3g, %d steps above %.3g; tolerances max(fixed, %d x floor): "
      "losses %.3g, gradient %.3g, update %.3g, BN statistics %.3g, at most "
      "%d steps above the gradient tolerance%s%s\n", label,
      floor_name, fl.worst_loss, fl.quartile, fl.median, fl.median_upd,
      fl.worst_buf, count_above (fl.step_err, steps, t.grad), t.grad,
      FLOOR_FACTOR, t.loss, t.grad, t.upd, t.buf, t.flips, t.ok ? "" :
      " (REFUSED: a floor above the ceiling; fixed tolerances, not ok)",
      t.upd_ok ? "" : " (the update's floor REFUSED: above the ceiling; "
      "not ok where the update is checked)");
  return t;
}

/* Prints case @num's TAP line: @what, then the losses within t->loss
 * (@against names the reference) and the median step's worst gradient
 * error within t->grad, then @tail; @extra_ok and t->ok must hold too.
 * Returns 1 on failure. */
static int
lockstep_verdict (int num, const char *what, const char *against,
    const LockstepResult *r, const Tolerances *t, gboolean extra_ok,
    const char *tail)
{
  int flips = count_above (r->step_err, r->steps, t->grad);
  gboolean ok = r->worst_loss <= t->loss && flips <= t->flips
      && extra_ok && t->ok;
  printf ("%s %d - %s, %d steps in lockstep: losses within %.3g%s (max "
      "%.3g), %d steps' worst gradient error above %.3g (ReLU flips, <= %d; "
      "median %.3g, worst %.3g at %s)%s\n", ok ? "ok" : "not ok", num, what,
      r->steps, t->loss, against, r->worst_loss, flips, t->grad, t->flips,
      r->median, r->worst, r->where, tail);
  return !ok;
}

int
main (int argc, char **argv)
{
  SimclrError merr = { 0 };
  double loss_sync[STEPS], loss_local[STEPS], loss_ref[STEPS];
  int failures = 0;
  int started = simclr_mpi_init (&merr);

  if (started <= 0) {
    if (started < 0) {
      fprintf (stderr, "MPI start failed: %s\n", merr.message);
      return 1;
    }
    printf ("1..0 # SKIP not started by mpirun with 2 or more ranks\n");
    return 77;
  }
  rank = simclr_mpi_rank ();
  size = simclr_mpi_size ();
  if (rank == 0)
    printf ("# %d ranks x %d samples vs 1 rank x %d samples, %d steps\n",
        size, N, N * size, STEPS);

  /* initial weights, the same on every rank (seeded) */
  SimclrTrainerConfig icfg;
  SimclrError ierr = { 0 };
  make_config (&icfg, 2 * N);
  SimclrTrainer *fresh = simclr_trainer_new (&icfg, &ierr);
  if (!fresh)
    die ("trainer_new", &ierr);
  size_t n_init;
  const float *p0 = simclr_model_params (simclr_trainer_get_model (fresh),
      &n_init);
  float *init = g_memdup2 (p0, n_init * sizeof (float));
  simclr_trainer_free (fresh);

  floor_kernels = simclr_cpu_kernels_other (&floor_name);
  if (rank == 0)
    printf ("# kernels %s; noise floor under %s\n", simclr_cpu_describe (),
        floor_kernels ? floor_name : "none (no other kernel setting)");
  if (getenv ("LOCKSTEP")) {
    LockstepResult dl;
    run_lockstep (STEPS, &dl, NULL);
    if (rank == 0)
      printf ("# lockstep worst gradient error %.3g at %s\n", dl.worst,
          dl.where);
  }
  gint64 t0 = g_get_monotonic_time ();
  SimclrTrainer *sync = run_distributed (TRUE, loss_sync);
  gint64 t1 = g_get_monotonic_time ();
  double spread_sync = replica_spread (sync);
  SimclrTrainer *local = run_distributed (FALSE, loss_local);
  double spread_local = replica_spread (local);
  LockstepResult lr;
  Tolerances tol = run_lockstep_case ("2 views", STEPS, &lr);

  if (rank == 0) {
    gint64 t2 = g_get_monotonic_time ();
    double losses_ref_time;
    SimclrTrainer *ref = run_reference (loss_ref, STEPS);
    losses_ref_time = (g_get_monotonic_time () - t2) / 1e6;
    /* the free run's noise floor: the reference's first FREE_STEPS under
     * floor_kernels */
    double free_floor = 0, loss_alt[STEPS];
    gboolean free_ok = TRUE;
    if (floor_kernels) {
      const SimclrKernels *was = simclr_cpu_force_kernels (floor_kernels);
      simclr_trainer_free (run_reference (loss_alt, FREE_STEPS));
      simclr_cpu_force_kernels (was);
      for (int s = 0; s < FREE_STEPS; s++)
        free_floor = fmax (free_floor, isnan (loss_alt[s] - loss_ref[s])
            ? INFINITY : fabs (loss_alt[s] - loss_ref[s]));
    }
    double tol_free = floored (TOL_LOSS, free_floor, &free_ok);
    printf ("# distributed %.2f s, reference %.2f s; encoder comm %.3f s, "
        "loss comm %.3f s\n", (t1 - t0) / 1e6, losses_ref_time,
        simclr_mpi_comm_seconds (SIMCLR_MPI_TRAINER),
        simclr_mpi_comm_seconds (SIMCLR_MPI_LOSS));

    /* 1: replicas identical */
    printf ("%s 1 - replicas hold identical weights (max |p - p_rank0| "
        "%.3g sync BN, %.3g local BN)\n", spread_sync == 0
        && spread_local == 0 ? "ok" : "not ok", spread_sync, spread_local);
    failures += !(spread_sync == 0 && spread_local == 0);

    /* 2: losses, in lockstep, and the free run's first FREE_STEPS */
    double worst = 0, worst_local = 0;
    int first_bad = -1;
    for (int s = 0; s < STEPS; s++) {
      double d = fabs (loss_sync[s] - loss_ref[s]);
      if (s < FREE_STEPS && !(d <= tol_free) && first_bad < 0)
        first_bad = s;
      if (s < FREE_STEPS)
        worst = fmax (worst, isnan (d) ? INFINITY : d);
      worst_local = fmax (worst_local, fabs (loss_local[s] - loss_ref[s]));
      printf ("#   step %2d: loss ref %.7f  %d ranks %.7f (|diff| %.2g)  "
          "(no SyncBN %.7f)%s\n", s, loss_ref[s], size, loss_sync[s], d,
          loss_local[s], s < FREE_STEPS ? "" : "  not checked");
    }
    if (first_bad >= 0)
      printf ("# first loss mismatch at step %d: %.9g vs reference %.9g\n",
          first_bad, loss_sync[first_bad], loss_ref[first_bad]);
    printf ("# free run: noise floor (the reference's first %d steps "
        "under %s) %.3g; tolerance max(%g, %d x floor) = %.3g%s\n",
        FREE_STEPS, floor_kernels ? floor_name : "none", free_floor,
        TOL_LOSS, FLOOR_FACTOR, tol_free, free_ok ? "" : " (floor REFUSED)");
    gboolean ok2 = first_bad < 0 && free_ok && tol.ok
        && lr.worst_loss <= tol.loss;
    printf ("%s 2 - loss sequence: %d steps in lockstep within %.3g (max "
        "|diff| %.3g) and the free run's first %d within %.3g (max |diff| "
        "%.3g)\n", ok2 ? "ok" : "not ok", STEPS, tol.loss, lr.worst_loss,
        FREE_STEPS, tol_free, worst);
    failures += !ok2;

    /* 3: gradients, weight updates and running statistics, in lockstep */
    char where[256];
    double ue, be, ue_local, be_local;
    compare_weights (sync, ref, init, &ue, &be, where, sizeof where);
    printf ("# the reference moved the weights by %.3g (relative 2-norm); "
        "the free run's %d-step update differs by %.3g relative (worst "
        "tensor: %s), its BN statistics by %.3g (not checked: chaotic)\n",
        relative_update (ref, init), STEPS, ue, where, be);
    int flips = count_above (lr.step_err, STEPS, tol.grad);
    gboolean ok3 = tol.ok && tol.upd_ok && flips <= tol.flips
        && lr.median_upd <= tol.upd && lr.worst_buf <= tol.buf;
    printf ("%s 3 - %d steps in lockstep: %d steps' worst gradient error "
        "above %.3g (ReLU flips, <= %d; median %.3g, worst %.3g at %s), "
        "median step's weight-update error %.3g (<= %.3g), BN running "
        "statistics within %.3g after every step (max %.3g)\n",
        ok3 ? "ok" : "not ok", STEPS, flips, tol.grad, tol.flips, lr.median,
        lr.worst, lr.where, lr.median_upd, tol.upd, tol.buf, lr.worst_buf);
    failures += !ok3;

    /* 4: without SyncBN the run must be measurably different */
    compare_weights (local, ref, init, &ue_local, &be_local, where,
        sizeof where);
    gboolean differs = ue_local > DIFFER_FACTOR * TOL_UPDATE
        && worst_local > DIFFER_FACTOR * fmax (tol.loss, tol_free);
    printf ("%s 4 - without SyncBN the run differs (update %.3g, BN "
        "statistics %.3g, losses %.3g; need > %g x tolerance: %.3g, %.3g)\n",
        differs ? "ok" : "not ok", ue_local, be_local, worst_local,
        DIFFER_FACTOR, DIFFER_FACTOR * TOL_UPDATE,
        DIFFER_FACTOR * fmax (tol.loss, tol_free));
    failures += !differs;
    simclr_trainer_free (ref);
  }

  /* 5: three views per sample, the multi-positive loss, SyncBN on, in
   * lockstep: before every step the ranks take the reference's weights, so
   * each step's loss and gradient are compared from identical states. Why
   * not a free run as in 2: with 3 x 8 rows a ReLU input within float noise
   * of 0 flipped at step 0 (one tensor's gradient off by 7e-4) and the free
   * runs drifted apart by 8e-5 in loss within 10 steps, while every other
   * step's gradients agreed to 1.4e-5 (as with 2 views). The median over the
   * steps ignores such a flip; a wrong loss or gradient moves every step. */
  views = 3;
  tol = run_lockstep_case ("3 views", MV_STEPS, &lr);
  if (rank == 0)
    failures += lockstep_verdict (5, "3 views per sample (multi-positive "
        "loss)", "", &lr, &tol, TRUE, "");

  /* 6: a queue of negatives (global rows), 2 views, SyncBN, in lockstep as
   * 5. Why not a free run as in 2: the queue couples the steps, so float
   * noise grows chaotically (seen: losses equal to 1e-6 for 8 steps, then
   * 3e-3 apart by step 19). The queues of both sides are built from their
   * own rows, so they differ by float noise only. */
  views = 2;
  queue_size = QUEUE;
  tol = run_lockstep_case ("queue", MV_STEPS, &lr);
  if (rank == 0) {
    double moved = 0;
    char what[64], tail[128];
    for (int s = 0; s < MV_STEPS; s++) {
      moved = fmax (moved, fabs (lock_losses[s] - loss_sync[s]));
      printf ("#   queue %d, step %d: loss %.7f (no queue, free run "
          "%.7f)\n", QUEUE, s, lock_losses[s], loss_sync[s]);
    }
    snprintf (what, sizeof what, "a queue of %d global negatives", QUEUE);
    snprintf (tail, sizeof tail, "; first step as without a queue, later "
        "ones moved by up to %.3g", moved);
    /* the first step sees an empty queue: run 1's loss exactly */
    failures += lockstep_verdict (6, what, " of one process", &lr, &tol,
        lock_losses[0] == loss_sync[0] && moved > DIFFER_FACTOR * tol.loss,
        tail);
  }

  /* 7: multi-crop, as 5 with 2 full-size and 2 small views per sample. */
  views = 4;
  small_views = 2;
  queue_size = 0;
  tol = run_lockstep_case ("multi-crop", MV_STEPS, &lr);
  if (rank == 0) {
    char what[96];
    snprintf (what, sizeof what, "multi-crop (2 views of %d and 2 of %d "
        "pixels)", SIZE, SMALL_SIZE);
    failures += lockstep_verdict (7, what, "", &lr, &tol, TRUE, "");
    printf ("1..7\n");
  }
  MPI_Bcast (&failures, 1, MPI_INT, 0, MPI_COMM_WORLD);
  simclr_trainer_free (sync);
  simclr_trainer_free (local);
  return failures ? 1 : 0;
}
