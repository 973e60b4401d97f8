/* bench-conv.c: GFLOP/s of the conv2d kernels on ResNet-18 shapes.
 *
 * For each shape: forward, backward-data and backward-weights of the fast
 * path with threads = 1 and threads = T (the `threads` field), and one
 * cblas_sgemm of the same M, N, K (OpenBLAS threads as the environment says)
 * as the yardstick. Backward-data is timed as backward(dinp) minus
 * backward(dinp = NULL). Medians of --reps runs after one warm-up. Prints a
 * table; asserts nothing.
 *
 * Usage: bench-conv [--batch N] [--wide-batch N] [--reps R] [--threads T]
 *                   [--min] [--cpu] [--only SUBSTRING]
 *                   [--levels generic,avx2,avx512]
 *
 * --levels: instead, A/B of the kernel sets of those instruction-set levels
 * (cpu-private.h) on one thread: per shape and pass, the levels run one
 * after the other in every repetition (alternated, so a busy machine slows
 * them alike), with the path each took ("gemm" or the set's name). This is
 * how conv-<set>.c's predicates were chosen: on a shared machine use
 * --cpu --min (thread CPU time, best of the reps), e.g.
 *   OPENBLAS_NUM_THREADS=1 bench-conv --levels generic,avx2,avx512 --cpu --min
 *
 * --winograd: instead, per 3x3 stride-1 shape at --batch and half of it,
 * forward, input gradient and weight gradient of the best level's kernels with Winograd
 * (where the set routes it, simclr_cpu_kernels_winograd_at, whatever
 * SIMCLR_WINOGRAD says) against the same sets without it
 * (simclr_cpu_kernels_direct_at), alternated in every repetition on
 * --threads threads: ms, GFLOP/s counted as the direct convolution's
 * 2*B*OH*OW*OC*9*C, and the ratio direct / Winograd (> 1: Winograd
 * faster). This is how conv-winograd.c's predicate was chosen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "conv-winograd-private.h"
#include "cpu-private.h"
#include "layers-private.h"

typedef struct {
  const char *name;
  int H, W, C, OC, K, stride, pad, wide;
} Shape;

/* ResNet-18 on 28x28x1 (cifar stem), width 0.25 then width 1. */
static const Shape shapes[] = {
  {"w.25 stem 28x28x1->16", 28, 28, 1, 16, 3, 1, 1, 0},
  {"w.25 l1 28x28x16->16", 28, 28, 16, 16, 3, 1, 1, 0},
  {"w.25 l2 28x28x16->32 s2", 28, 28, 16, 32, 3, 2, 1, 0},
  {"w.25 l2 14x14x32->32", 14, 14, 32, 32, 3, 1, 1, 0},
  {"w.25 l2 down 1x1 s2", 28, 28, 16, 32, 1, 2, 0, 0},
  {"w.25 l3 14x14x32->64 s2", 14, 14, 32, 64, 3, 2, 1, 0},
  {"w.25 l3 down 1x1 s2", 14, 14, 32, 64, 1, 2, 0, 0},
  {"w.25 l4 7x7x64->128 s2", 7, 7, 64, 128, 3, 2, 1, 0},
  {"w.25 l4 down 1x1 s2", 7, 7, 64, 128, 1, 2, 0, 0},
  {"w.25 l3 7x7x64->64", 7, 7, 64, 64, 3, 1, 1, 0},
  {"w.25 l4 4x4x128->128", 4, 4, 128, 128, 3, 1, 1, 0},
  {"w1 l1 28x28x64->64", 28, 28, 64, 64, 3, 1, 1, 1},
  {"w1 l2 14x14x128->128", 14, 14, 128, 128, 3, 1, 1, 1},
  {"w1 l3 7x7x256->256", 7, 7, 256, 256, 3, 1, 1, 1},
  {"w1 l4 4x4x512->512", 4, 4, 512, 512, 3, 1, 1, 1},
};

/* --cpu: time the calling thread's CPU time instead of wall time; with
 * OPENBLAS_NUM_THREADS=1 --threads 1 everything runs on that thread, and
 * other jobs' time slices on a shared machine no longer count. */
static int use_cpu;

static double
now (void)
{
  struct timespec ts;
  clock_gettime (use_cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

enum { OP_FWD, OP_BWD_W, OP_BWD_ALL, OP_GEMM, OP_BWD_D };

typedef struct {
  SimclrConvShape s;
  float *x, *w, *out, *dout, *dx, *dw, *scratch, *gc;
} Bufs;

static void
run_op (Bufs *b, int op)
{
  const SimclrConvShape *s = &b->s;
  switch (op) {
    case OP_FWD:
      simclr_conv2d_forward (b->out, b->x, b->w, NULL, s, b->scratch);
      break;
    case OP_BWD_W:
      simclr_conv2d_backward (NULL, b->dw, NULL, b->dout, b->x, b->w, s,
          b->scratch);
      break;
    case OP_BWD_ALL:
      simclr_conv2d_backward (b->dx, b->dw, NULL, b->dout, b->x, b->w, s,
          b->scratch);
      break;
    case OP_BWD_D:
      simclr_conv2d_backward_input (b->dx, b->dout, b->w, s, b->scratch);
      break;
    case OP_GEMM:{
      /* M = B*OH*OW, N = OC, K = KH*KW*C: the forward's flops in one call,
       * with the activations standing in for columns (same sizes). */
      int M = s->B * s->OH * s->OW, K = s->KH * s->KW * s->C;
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, s->OC, K,
          1.0f, b->gc, K, b->w, K, 0.0f, b->out, s->OC);
      break;
    }
  }
}

/* --min: report the fastest run instead of the median (a steadier figure
 * on a machine shared with other jobs). */
static int use_min;

static double
median_time (Bufs *b, int op, int reps)
{
  double t[64];
  if (reps > 64)
    reps = 64;
  run_op (b, op);               /* warm-up */
  for (int r = 0; r < reps; r++) {
    double t0 = now ();
    run_op (b, op);
    t[r] = now () - t0;
  }
  qsort (t, reps, sizeof (double), cmp_double);
  return use_min ? t[0] : t[reps / 2];
}

static float *
rand_buf (size_t n)
{
  float *p = malloc (sizeof (float) * (n ? n : 1));
  if (!p) {
    fprintf (stderr, "out of memory\n");
    exit (1);
  }
  for (size_t i = 0; i < n; i++)
    p[i] = (float) rand () / RAND_MAX - 0.5f;
  return p;
}

#define MAX_LEVELS 4

/* One shape's buffers for several kernel tables side by side: the input,
 * weight and output gradient are shared, outputs and scratch are each
 * table's own. */
typedef struct {
  Bufs b[MAX_LEVELS];
  int n;
  float *x, *w, *dout;
  double flops;                 /* of one pass, counted as direct */
} Side;

static void
side_open (Side *sd, const SimclrConvShape *s0,
    const SimclrKernels *const *tabs, int n)
{
  size_t nin = (size_t) s0->B * s0->H * s0->W * s0->C;
  size_t K = (size_t) s0->KH * s0->KW * s0->C;
  size_t M = (size_t) s0->B * s0->OH * s0->OW;
  memset (sd, 0, sizeof (*sd));
  sd->n = n;
  sd->flops = 2.0 * M * s0->OC * K;
  sd->x = rand_buf (nin);
  sd->w = rand_buf (s0->OC * K);
  sd->dout = rand_buf (M * s0->OC);
  for (int l = 0; l < n; l++) {
    Bufs *b = &sd->b[l];
    b->s = *s0;
    b->s.kernels = tabs[l];
    b->x = sd->x;
    b->w = sd->w;
    b->dout = sd->dout;
    b->out = rand_buf (M * s0->OC);
    b->dx = rand_buf (nin);
    b->dw = rand_buf (s0->OC * K);
    b->scratch = rand_buf (simclr_conv2d_scratch_floats (&b->s));
  }
}

/* Times pass @op of every table, alternated within each repetition (so
 * load changes hit all alike): tt[l] the median (or --min best). */
static void
side_times (Side *sd, int op, int reps, double *tt)
{
  double t[MAX_LEVELS][64];
  int n = reps > 64 ? 64 : reps;
  for (int l = 0; l < sd->n; l++)
    run_op (&sd->b[l], op);     /* warm-up */
  for (int r = 0; r < n; r++)
    for (int l = 0; l < sd->n; l++) {
      double t0 = now ();
      run_op (&sd->b[l], op);
      t[l][r] = now () - t0;
    }
  for (int l = 0; l < sd->n; l++) {
    qsort (t[l], n, sizeof (double), cmp_double);
    tt[l] = use_min ? t[l][0] : t[l][n / 2];
  }
}

static void
side_close (Side *sd)
{
  for (int l = 0; l < sd->n; l++) {
    free (sd->b[l].out);
    free (sd->b[l].dx);
    free (sd->b[l].dw);
    free (sd->b[l].scratch);
  }
  free (sd->x);
  free (sd->w);
  free (sd->dout);
}

static SimclrConvShape
shape_at (const Shape *sh, int batch, int threads)
{
  SimclrConvShape s = { .B = batch, .H = sh->H, .W = sh->W, .C = sh->C,
    .OC = sh->OC, .KH = sh->K, .KW = sh->K, .stride = sh->stride,
    .pad = sh->pad, .threads = threads
  };
  return s;
}

/* --levels: per shape and pass, each level's kernels alternated within
 * every repetition; GFLOP/s of the median (or --min best) of each. */
static void
compare_levels (const Shape *sh, int batch, const SimclrKernels **lv,
    int nlv, int reps)
{
  static const char *const op_names[3] = { "fwd", "dinput", "dweight" };
  static const int ops[3] = { OP_FWD, OP_BWD_D, OP_BWD_W };
  static const SimclrConvOp cops[3] = { SIMCLR_CONV_FORWARD,
    SIMCLR_CONV_DINPUT, SIMCLR_CONV_DWEIGHT
  };
  SimclrConvShape s0 = shape_at (sh, batch, 1);
  if (simclr_conv2d_shape_init (&s0) != 0)
    return;
  Side sd;
  side_open (&sd, &s0, lv, nlv);
  printf ("%-26s %4d |", sh->name, batch);
  for (int o = 0; o < 3; o++) {
    double tt[MAX_LEVELS];
    side_times (&sd, ops[o], reps, tt);
    for (int l = 0; l < nlv; l++)
      printf (" %s %6.1f %-7s", l == 0 ? op_names[o] : "",
          sd.flops / tt[l] * 1e-9,
          simclr_conv2d_kernel_name (&sd.b[l].s, cops[o]));
    printf (" |");
  }
  printf ("\n");
  fflush (stdout);
  side_close (&sd);
}

/* --winograd: one shape, direct (a) against Winograd (b), alternated. */
static void
compare_winograd (const Shape *sh, int batch, int threads, int reps)
{
  static const char *const op_names[3] = { "fwd", "dinput", "dweight" };
  static const int ops[3] = { OP_FWD, OP_BWD_D, OP_BWD_W };
  static const SimclrConvOp cops[3] = { SIMCLR_CONV_FORWARD,
    SIMCLR_CONV_DINPUT, SIMCLR_CONV_DWEIGHT
  };
  SimclrCpuLevel best = simclr_cpu_best_level ();
  SimclrConvShape s0 = shape_at (sh, batch, threads);
  if (simclr_conv2d_shape_init (&s0) != 0 || !simclr_winograd_shape_ok (&s0))
    return;
  const SimclrKernels *tabs[2] = { simclr_cpu_kernels_direct_at (best),
    simclr_cpu_kernels_winograd_at (best)
  };
  Side sd;
  side_open (&sd, &s0, tabs, 2);
  printf ("%-26s %4d |", sh->name, batch);
  for (int o = 0; o < 3; o++) {
    double tt[MAX_LEVELS];
    side_times (&sd, ops[o], reps, tt);
    printf (" %-6s %6.2f %6.1f %-6s %6.2f %6.1f %-3s %5.2fx |", op_names[o],
        tt[0] * 1e3, sd.flops / tt[0] * 1e-9,
        simclr_conv2d_kernel_name (&sd.b[0].s, cops[o]), tt[1] * 1e3,
        sd.flops / tt[1] * 1e-9,
        simclr_conv2d_uses_winograd (&sd.b[1].s, cops[o]) ? "wg" : "-",
        tt[0] / tt[1]);
  }
  printf ("\n");
  fflush (stdout);
  side_close (&sd);
}

/* --tiles: one shape on one thread, the forward of the direct table
 * (conv.c) at the level in use (SIMCLR_CPU) against each Winograd kernel
 * of that level called directly (AVX-512: F(2x2, 3x3) and F(4x4, 3x3);
 * AVX2: F(4x4, 3x3)), whatever the predicates route (the weight transform
 * included in every call), alternated in every repetition: ms, GFLOP/s
 * counted as the direct convolution's, and direct / kernel (then the
 * same for the weight gradient, compare_tiles_dw). This is how
 * conv-winograd.c's predicates were chosen. */
static void
compare_tiles (const Shape *sh, int batch, int reps)
{
#if defined(__GNUC__) && defined(__x86_64__)
  SimclrCpuLevel level = simclr_cpu_level ();
  const SimclrWinogradKernels *wk[2];
  int nk = 0;
  if (level >= SIMCLR_CPU_AVX512) {
    wk[nk++] = &simclr_winograd_avx512;
    wk[nk++] = &simclr_winograd43_avx512;
  } else if (level >= SIMCLR_CPU_AVX2) {
    wk[nk++] = &simclr_winograd43_avx2;
  }
  SimclrConvShape s = shape_at (sh, batch, 1);
  if (nk == 0 || simclr_conv2d_shape_init (&s) != 0 ||
      !simclr_winograd_shape_ok (&s) || s.C % 16 || s.OC % 16)
    return;
  s.kernels = simclr_cpu_kernels_direct_at (level);
  size_t nin = (size_t) s.B * s.H * s.W * s.C, K = (size_t) 9 * s.C;
  size_t nout = (size_t) s.B * s.OH * s.OW * s.OC;
  double flops = 2.0 * nout * K;
  float *x = rand_buf (nin), *w = rand_buf (s.OC * K), *out = rand_buf (nout);
  float *scratch = rand_buf (simclr_conv2d_scratch_floats (&s));
  float *wp = rand_buf (s.OC * K), *u[2], *work[2];
  for (int k = 0; k < nk; k++) {
    u[k] = rand_buf (simclr_winograd_u_floats (wk[k], &s));
    work[k] = rand_buf (simclr_winograd_work_floats (wk[k], &s));
  }
  double t[3][64];
  int n = reps > 64 ? 64 : reps;
  for (int r = -1; r < n; r++)
    for (int v = 0; v <= nk; v++) {
      double t0 = now ();
      if (v == 0) {
        simclr_conv2d_forward (out, x, w, NULL, &s, scratch);
      } else {
        /* the packed layout conv.c transforms from (3, 3, C, OC) */
        for (int o = 0; o < s.OC; o++)
          for (size_t j = 0; j < K; j++)
            wp[j * s.OC + o] = w[o * K + j];
        simclr_winograd_weight (wk[v - 1], u[v - 1], wp, s.C, s.OC);
        wk[v - 1]->forward (out, x, u[v - 1], NULL, 0, &s, 0, s.B,
            work[v - 1]);
      }
      if (r >= 0)
        t[v][r] = now () - t0;
    }
  printf ("%-26s %4d |", sh->name, batch);
  for (int v = 0; v <= nk; v++) {
    qsort (t[v], n, sizeof (double), cmp_double);
    double tt = use_min ? t[v][0] : t[v][n / 2];
    if (v == 0)
      printf (" direct %7.2f ms %6.1f %-6s |", tt * 1e3, flops / tt * 1e-9,
          simclr_conv2d_kernel_name (&s, SIMCLR_CONV_FORWARD));
    else
      printf (" F(%d,3) %7.2f ms %6.1f %5.2fx |", wk[v - 1]->m, tt * 1e3,
          flops / tt * 1e-9, (use_min ? t[0][0] : t[0][n / 2]) / tt);
  }
  printf ("\n");
  fflush (stdout);
  for (int k = 0; k < nk; k++) {
    free (u[k]);
    free (work[k]);
  }
  free (wp);
  free (scratch);
  free (out);
  free (w);
  free (x);
#endif
}

/* --tiles, weight gradient: one shape on one thread, the direct table's
 * weight gradient (conv.c) at the level in use against each weight-gradient
 * Winograd kernel of that level called directly (AVX-512: F(2x2, 3x3) and
 * F(4x4, 3x3); AVX2: F(4x4, 3x3); zeroing du, the kernel over all points and images, and the
 * G^T du G transform into dweight, all in every call), alternated in every
 * repetition: ms, GFLOP/s counted as the direct convolution's, and
 * direct / kernel. This is how the dweight predicates were chosen. */
static void
compare_tiles_dw (const Shape *sh, int batch, int reps)
{
#if defined(__GNUC__) && defined(__x86_64__)
  SimclrCpuLevel level = simclr_cpu_level ();
  const SimclrWinogradKernels *wk[2];
  int nk = 0;
  int vec = 16;
  if (level >= SIMCLR_CPU_AVX512) {
    wk[nk++] = &simclr_winograd_dw_avx512;
    wk[nk++] = &simclr_winograd43_dw_avx512;
  } else if (level >= SIMCLR_CPU_AVX2) {
    wk[nk++] = &simclr_winograd43_dw_avx2;
    vec = 8;
  }
  SimclrConvShape s = shape_at (sh, batch, 1);
  if (nk == 0 || simclr_conv2d_shape_init (&s) != 0 ||
      !simclr_winograd_shape_ok (&s) || s.C % vec || s.OC % vec)
    return;
  s.kernels = simclr_cpu_kernels_direct_at (level);
  size_t nin = (size_t) s.B * s.H * s.W * s.C, K = (size_t) 9 * s.C;
  size_t nout = (size_t) s.B * s.OH * s.OW * s.OC;
  double flops = 2.0 * nout * K;
  float *x = rand_buf (nin), *dout = rand_buf (nout);
  float *dw = rand_buf (s.OC * K), *w = rand_buf (s.OC * K);
  float *scratch = rand_buf (simclr_conv2d_scratch_floats (&s));
  float *du[2], *work[2];
  for (int k = 0; k < nk; k++) {
    du[k] = rand_buf (simclr_winograd_u_floats (wk[k], &s));
    work[k] = rand_buf (simclr_winograd_dw_work_floats (wk[k], &s));
  }
  double t[3][64];
  int n = reps > 64 ? 64 : reps;
  for (int r = -1; r < n; r++)
    for (int v = 0; v <= nk; v++) {
      double t0 = now ();
      if (v == 0) {
        simclr_conv2d_backward (NULL, dw, NULL, dout, x, w, &s, scratch);
      } else {
        const SimclrWinogradKernels *k = wk[v - 1];
        memset (du[v - 1], 0, sizeof (float) *
            simclr_winograd_u_floats (k, &s));
        k->dweight (du[v - 1], x, dout, &s, 0, s.B, 0, k->m + 2,
            work[v - 1]);
        simclr_winograd_dweight_out (k, dw, du[v - 1], s.C, s.OC);
      }
      if (r >= 0)
        t[v][r] = now () - t0;
    }
  printf ("%-26s %4d |", sh->name, batch);
  for (int v = 0; v <= nk; v++) {
    qsort (t[v], n, sizeof (double), cmp_double);
    double tt = use_min ? t[v][0] : t[v][n / 2];
    if (v == 0)
      printf (" dweight direct %7.2f ms %6.1f %-6s |", tt * 1e3,
          flops / tt * 1e-9,
          simclr_conv2d_kernel_name (&s, SIMCLR_CONV_DWEIGHT));
    else
      printf (" F(%d,3) %7.2f ms %6.1f %5.2fx |", wk[v - 1]->m, tt * 1e3,
          flops / tt * 1e-9, (use_min ? t[0][0] : t[0][n / 2]) / tt);
  }
  printf ("\n");
  fflush (stdout);
  for (int k = 0; k < nk; k++) {
    free (du[k]);
    free (work[k]);
  }
  free (scratch);
  free (w);
  free (dw);
  free (dout);
  free (x);
#endif
}

int
main (int argc, char **argv)
{
  int batch = 512, wide_batch = 64, reps = 5, threads = 2;
  const char *only = NULL, *levels = NULL;
  int winograd = 0, tiles = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--batch") && i + 1 < argc)
      batch = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--wide-batch") && i + 1 < argc)
      wide_batch = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--reps") && i + 1 < argc)
      reps = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--threads") && i + 1 < argc)
      threads = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--min"))
      use_min = 1;
    else if (!strcmp (argv[i], "--cpu"))
      use_cpu = 1;
    else if (!strcmp (argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp (argv[i], "--levels") && i + 1 < argc)
      levels = argv[++i];
    else if (!strcmp (argv[i], "--winograd"))
      winograd = 1;
    else if (!strcmp (argv[i], "--tiles"))
      tiles = 1;
    else {
      fprintf (stderr, "usage: %s [--batch N] [--wide-batch N] [--reps R] "
          "[--threads T] [--min] [--cpu] [--only SUBSTRING] "
          "[--levels generic,avx2,avx512] [--winograd] [--tiles]\n",
          argv[0]);
      return 2;
    }
  }
  if (tiles) {
    printf ("# one thread, %s of %d%s; direct forward (level %s) against "
        "the level's Winograd kernels: ms GFLOP/s (direct FLOPs) "
        "direct/kernel\n", use_min ? "best" : "medians", reps,
        use_cpu ? " (thread CPU time)" : "",
        simclr_cpu_level_name (simclr_cpu_level ()));
    for (int half = 0; half < 2; half++)
      for (size_t i = 0; i < sizeof (shapes) / sizeof (shapes[0]); i++)
        if (!only || strstr (shapes[i].name, only)) {
          int bb = shapes[i].wide ? wide_batch : batch;
          compare_tiles (&shapes[i], half ? bb / 2 : bb, reps);
          compare_tiles_dw (&shapes[i], half ? bb / 2 : bb, reps);
        }
    return 0;
  }
  if (winograd) {
    printf ("# OpenBLAS %s, %d threads; conv threads %d; %s of %d%s; "
        "level %s\n", openblas_get_corename (), openblas_get_num_threads (),
        threads, use_min ? "best" : "medians", reps,
        use_cpu ? " (thread CPU time)" : "",
        simclr_cpu_level_name (simclr_cpu_best_level ()));
    printf ("# per pass: direct ms GFLOP/s path | Winograd ms GFLOP/s "
        "(direct FLOPs; wg = took Winograd) | direct/Winograd\n");
    for (int half = 0; half < 2; half++)
      for (size_t i = 0; i < sizeof (shapes) / sizeof (shapes[0]); i++)
        if (!only || strstr (shapes[i].name, only)) {
          int bb = shapes[i].wide ? wide_batch : batch;
          compare_winograd (&shapes[i], half ? bb / 2 : bb, threads, reps);
        }
    return 0;
  }
  if (levels) {
    const SimclrKernels *lv[MAX_LEVELS];
    int nlv = 0;
    char *list = strdup (levels), *save = NULL;
    for (char *tok = strtok_r (list, ",", &save); tok && nlv < MAX_LEVELS;
        tok = strtok_r (NULL, ",", &save)) {
      char msg[256];
      SimclrCpuLevel l = simclr_cpu_parse_level (tok, simclr_cpu_best_level (),
          msg, sizeof (msg));
      if (msg[0]) {
        fprintf (stderr, "bench-conv: %s\n", msg);
        free (list);
        return 2;
      }
      lv[nlv++] = simclr_cpu_kernels_at (l);
    }
    free (list);
    printf ("# OpenBLAS %s, %d threads; conv threads 1; %s of %d%s; "
        "levels %s\n", openblas_get_corename (), openblas_get_num_threads (),
        use_min ? "best" : "medians", reps,
        use_cpu ? " (thread CPU time)" : "", levels);
    printf ("# GFLOP/s and path per level, in the order given\n");
    for (size_t i = 0; i < sizeof (shapes) / sizeof (shapes[0]); i++)
      if (!only || strstr (shapes[i].name, only))
        compare_levels (&shapes[i], shapes[i].wide ? wide_batch : batch, lv,
            nlv, reps);
    return 0;
  }
  printf ("# OpenBLAS %s, %d threads; conv threads 1 and %d; %s of %d%s\n",
      openblas_get_corename (), openblas_get_num_threads (), threads,
      use_min ? "best" : "medians", reps,
      use_cpu ? " (thread CPU time)" : "");
  printf ("# GFLOP/s (2*B*OH*OW*OC*KH*KW*C per pass); bwd-d = full backward"
      " minus weights-only backward\n");
  printf ("%-26s %4s %6s | %7s %7s %7s | %7s %7s %7s | %7s | %5s\n",
      "shape", "B", "chunk", "fwd:1", "bwd-d:1", "bwd-w:1",
      "fwd:T", "bwd-d:T", "bwd-w:T", "gemm", "ms:T");

  for (size_t i = 0; i < sizeof (shapes) / sizeof (shapes[0]); i++) {
    const Shape *sh = &shapes[i];
    if (only && !strstr (sh->name, only))
      continue;
    Bufs b = { 0 };
    b.s = (SimclrConvShape) { .B = sh->wide ? wide_batch : batch, .H = sh->H,
      .W = sh->W, .C = sh->C, .OC = sh->OC, .KH = sh->K, .KW = sh->K,
      .stride = sh->stride, .pad = sh->pad, .threads = threads };
    if (simclr_conv2d_shape_init (&b.s) != 0)
      continue;
    const SimclrConvShape *s = &b.s;
    size_t nin = (size_t) s->B * s->H * s->W * s->C;
    size_t K = (size_t) s->KH * s->KW * s->C;
    size_t M = (size_t) s->B * s->OH * s->OW;
    size_t nout = M * s->OC;
    double flops = 2.0 * M * s->OC * K;
    b.x = rand_buf (nin);
    b.dx = rand_buf (nin);
    b.w = rand_buf (s->OC * K);
    b.dw = rand_buf (s->OC * K);
    b.out = rand_buf (nout);
    b.dout = rand_buf (nout);
    b.gc = rand_buf (M * K);
    double g[2][3];
    int chunk = 0;
    for (int v = 0; v < 2; v++) {
      b.s.threads = v == 0 ? 1 : threads;
      b.scratch = rand_buf (simclr_conv2d_scratch_floats (s));
      if (v == 1)
        chunk = simclr_conv2d_chunk_images (s);
      double tf = median_time (&b, OP_FWD, reps);
      double tw = median_time (&b, OP_BWD_W, reps);
      double ta = median_time (&b, OP_BWD_ALL, reps);
      double td = ta - tw;
      g[v][0] = flops / tf * 1e-9;
      g[v][1] = td > 0 ? flops / td * 1e-9 : 0;
      g[v][2] = flops / tw * 1e-9;
      free (b.scratch);
      if (v == 1)
        printf ("%-26s %4d %6d | %7.1f %7.1f %7.1f | %7.1f %7.1f %7.1f |"
            " %7.1f | %5.1f\n", sh->name, s->B, chunk, g[0][0], g[0][1],
            g[0][2], g[1][0], g[1][1], g[1][2],
            flops / median_time (&b, OP_GEMM, reps) * 1e-9,
            (tf + ta) * 1e3);
    }
    fflush (stdout);
    free (b.x);
    free (b.dx);
    free (b.w);
    free (b.dw);
    free (b.out);
    free (b.dout);
    free (b.gc);
  }
  return 0;
}
