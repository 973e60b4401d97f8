/* bench-bn.c: milliseconds and GB/s of the training batch-norm passes on
 * the activations of ResNet-18 width 0.25 at 28x28x1 (N views), with 1 and
 * T threads, beside a plain streaming loop over the same bytes (the
 * memory's roofline on this machine).
 *
 * Passes (as the model calls them):
 *   fwd      BN + ReLU (a unit without a residual)
 *   fwd+res  relu (BN + residual) (a block's last unit)
 *   bwd      backward with the ReLU mask recomputed (relu 1)
 *   bwd+res  residual_relu_backward (mask by the output y, dmask stored)
 *   stream   out = a + b over the same M*C floats, for the bandwidth
 * Bytes counted: each pass's tensor reads and writes of M*C floats (fwd:
 * x for the statistics, x and out for the affine pass; bwd: dout and x
 * for the sums, both again and dinp; bwd+res adds y, dmask written then
 * read); a block read twice from L1 counts once. Medians of --reps runs after a warm-up;
 * the thread counts alternate in every repetition. Asserts nothing.
 *
 * Usage: bench-bn [--views N] [--reps R] [--threads T] [--only SUBSTRING]
 *                 [--min]
 * --min: the fastest of the reps instead of the median (on a shared
 * machine, the run least disturbed by other processes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layers-private.h"

typedef struct {
  const char *name;
  int side, C;
} Shape;

static const Shape shapes[] = {
  {"l1 28x28x16", 28, 16},
  {"l2 14x14x32", 14, 32},
  {"l3 7x7x64", 7, 64},
  {"l4 4x4x128", 4, 128},
};

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

enum { P_FWD, P_FWD_RES, P_BWD, P_BWD_RES, P_STREAM, P_N };
static const char *pass_names[P_N] =
    { "fwd", "fwd+res", "bwd", "bwd+res", "stream" };
/* tensors of M*C floats each pass moves */
static const int pass_tensors[P_N] = { 3, 4, 5, 7, 3 };

typedef struct {
  int M, C;
  float *x, *res, *out, *dout, *dinp, *dmask;
  float *w, *b, *mean, *rstd, *rm, *rv, *dw, *db;
} Bufs;

typedef struct {
  const float *a, *b;
  float *out;
  size_t n;
  int tasks;
} StreamJob;

static void
stream_task (void *ctx, int task)
{
  StreamJob *j = ctx;
  size_t i0 = j->n * task / j->tasks, i1 = j->n * (task + 1) / j->tasks;
  for (size_t i = i0; i < i1; i++)
    j->out[i] = j->a[i] + j->b[i];
}

static void
run_pass (Bufs *b, int pass, int threads)
{
  switch (pass) {
    case P_FWD:
      simclr_batchnorm_act_forward_train (b->out, b->mean, b->rstd, b->rm,
          b->rv, b->x, NULL, 1, b->w, b->b, b->M, b->C, 0.1f, 1e-5f, threads,
          NULL, NULL);
      break;
    case P_FWD_RES:
      simclr_batchnorm_act_forward_train (b->out, b->mean, b->rstd, b->rm,
          b->rv, b->x, b->res, 1, b->w, b->b, b->M, b->C, 0.1f, 1e-5f,
          threads, NULL, NULL);
      break;
    case P_BWD:
      simclr_batchnorm_act_backward (b->dinp, b->dw, b->db, b->dout, b->x,
          b->w, b->b, b->mean, b->rstd, 1, 0, b->M, b->C, threads, NULL,
          NULL);
      break;
    case P_BWD_RES:
      simclr_batchnorm_residual_relu_backward (b->dinp, b->dmask, b->dw,
          b->db, b->dout, b->out, b->x, b->w, b->mean, b->rstd, 0, b->M,
          b->C, threads, NULL, NULL);
      break;
    case P_STREAM:{
      StreamJob j = { b->x, b->res, b->out, (size_t) b->M * b->C,
        threads > 1 ? threads : 1
      };
      if (j.tasks > 1)
        simclr_parallel_for (j.tasks, stream_task, &j);
      else
        stream_task (&j, 0);
      break;
    }
  }
}

static float *
alloc_fill (size_t n, unsigned *seed)
{
  float *p = aligned_alloc (64, ((n * sizeof (float)) + 63) / 64 * 64);
  if (!p) {
    fprintf (stderr, "bench-bn: out of memory (%zu floats)\n", n);
    exit (1);
  }
  for (size_t i = 0; i < n; i++) {
    *seed = *seed * 1103515245u + 12345u;
    p[i] = ((int) (*seed >> 8 & 0xffff) - 32768) / 16384.0f;
  }
  return p;
}

int
main (int argc, char **argv)
{
  int views = 512, reps = 7, threads = 2, use_min = 0;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--views") && i + 1 < argc)
      views = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--reps") && i + 1 < argc)
      reps = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--threads") && i + 1 < argc)
      threads = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--min"))
      use_min = 1;
    else if (!strcmp (argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else {
      fprintf (stderr, "usage: bench-bn [--views N] [--reps R] "
          "[--threads T] [--only SUBSTRING] [--min]\n");
      return 2;
    }
  }
  if (views < 1 || reps < 1 || threads < 1) {
    fprintf (stderr, "bench-bn: views, reps, threads must be >= 1\n");
    return 2;
  }
  printf ("batch norm passes, %d views, %s of %d (ms, GB/s), "
      "threads 1 | %d\n", views, use_min ? "minimum" : "medians", reps,
      threads);
  printf ("%-14s %-8s %9s %7s | %9s %7s | %6s\n", "shape", "pass", "ms 1",
      "GB/s", "ms T", "GB/s", "T/1");
  unsigned seed = 12345;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const Shape *sh = &shapes[s];
    if (only && !strstr (sh->name, only))
      continue;
    Bufs b = {.M = views * sh->side * sh->side,.C = sh->C };
    size_t n = (size_t) b.M * b.C;
    b.x = alloc_fill (n, &seed);
    b.res = alloc_fill (n, &seed);
    b.out = alloc_fill (n, &seed);
    b.dout = alloc_fill (n, &seed);
    b.dinp = alloc_fill (n, &seed);
    b.dmask = alloc_fill (n, &seed);
    b.w = alloc_fill (b.C, &seed);
    b.b = alloc_fill (b.C, &seed);
    b.mean = alloc_fill (b.C, &seed);
    b.rstd = alloc_fill (b.C, &seed);
    b.rm = alloc_fill (b.C, &seed);
    b.rv = alloc_fill (b.C, &seed);
    b.dw = alloc_fill (b.C, &seed);
    b.db = alloc_fill (b.C, &seed);
    for (int c = 0; c < b.C; c++)
      b.rv[c] = 1.0f;
    for (int p = 0; p < P_N; p++) {
      double *t1 = calloc (reps, sizeof (double));
      double *tt = calloc (reps, sizeof (double));
      if (!t1 || !tt)
        return 1;
      run_pass (&b, P_FWD_RES, 1);  /* the mean/rstd/out backward reads */
      run_pass (&b, p, 1);
      run_pass (&b, p, threads);
      for (int r = 0; r < reps; r++) {
        double t0 = now ();
        run_pass (&b, p, 1);
        t1[r] = now () - t0;
        t0 = now ();
        run_pass (&b, p, threads);
        tt[r] = now () - t0;
      }
      qsort (t1, reps, sizeof (double), cmp_double);
      qsort (tt, reps, sizeof (double), cmp_double);
      double m1 = t1[use_min ? 0 : reps / 2], mt = tt[use_min ? 0 : reps / 2];
      double bytes = (double) pass_tensors[p] * n * sizeof (float);
      printf ("%-14s %-8s %9.3f %7.1f | %9.3f %7.1f | %6.2f\n", sh->name,
          pass_names[p], m1 * 1e3, bytes / m1 * 1e-9, mt * 1e3,
          bytes / mt * 1e-9, m1 / mt);
      free (t1);
      free (tt);
    }
    free (b.x);
    free (b.res);
    free (b.out);
    free (b.dout);
    free (b.dinp);
    free (b.dmask);
    free (b.w);
    free (b.b);
    free (b.mean);
    free (b.rstd);
    free (b.rm);
    free (b.rv);
    free (b.dw);
    free (b.db);
  }
  return 0;
}
