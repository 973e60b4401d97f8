/* bench-parallel.c: what one simclr_parallel_for call costs (core/layers.c's
 * worker pool) beside threads started and joined per call (the code it
 * replaced, copied here as the reference), in one process, the two
 * alternating in every repetition.
 *
 * Work per call (T tasks, contiguous equal ranges):
 *   empty      tasks that return at once: the call's own overhead
 *   stream 4M  out = a + b over 4 MiB per tensor (layer4's BN tensors)
 *   stream 25M out = a + b over 25.7 MB per tensor (layer1's)
 * Printed: microseconds per call, median (or --min) of --reps repetitions
 * of --calls calls each, per mechanism, and pool / per-call. Asserts
 * nothing; run it on a quiet machine (alone) for figures worth quoting.
 *
 * Usage: bench-parallel [--threads T] [--reps R] [--calls N] [--min]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layers-private.h"

typedef struct {
  const float *a, *b;
  float *out;
  size_t n;
  int tasks;
} Job;

static void
job_task (void *ctx, int task)
{
  Job *j = ctx;
  size_t i0 = j->n * task / j->tasks, i1 = j->n * (task + 1) / j->tasks;
  for (size_t i = i0; i < i1; i++)
    j->out[i] = j->a[i] + j->b[i];
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *x, const void *y)
{
  double a = *(const double *) x, b = *(const double *) y;
  return (a > b) - (a < b);
}

int
main (int argc, char **argv)
{
  int threads = 2, reps = 11, calls = 200, use_min = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--threads") && i + 1 < argc)
      threads = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--reps") && i + 1 < argc)
      reps = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--calls") && i + 1 < argc)
      calls = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--min"))
      use_min = 1;
    else {
      fprintf (stderr, "usage: bench-parallel [--threads T] [--reps R] "
          "[--calls N] [--min]\n");
      return 2;
    }
  }
  if (threads < 2 || threads > SIMCLR_MAX_THREADS || reps < 1 || calls < 1) {
    fprintf (stderr, "bench-parallel: threads 2 .. %d, reps and calls >= 1\n",
        SIMCLR_MAX_THREADS);
    return 2;
  }
  const struct {
    const char *name;
    size_t n;
    int calls_div;
  } works[] = {
    {"empty", 0, 1},
    {"stream 4M", 1u << 20, 10},
    {"stream 25M", 512u * 28 * 28 * 16, 50},
  };
  const size_t nmax = works[2].n;
  float *a = aligned_alloc (64, nmax * sizeof (float));
  float *b = aligned_alloc (64, nmax * sizeof (float));
  float *out = aligned_alloc (64, nmax * sizeof (float));
  if (!a || !b || !out) {
    fprintf (stderr, "bench-parallel: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < nmax; i++) {
    a[i] = (float) (i % 1000) * 1e-3f;
    b[i] = 1.0f;
    out[i] = 0.0f;
  }
  double *tp = calloc (reps, sizeof (double)), *ts = calloc (reps,
      sizeof (double));
  printf ("simclr_parallel_for, %d tasks: us per call, %s of %d reps "
      "(alternated)\n", threads, use_min ? "minimum" : "median", reps);
  printf ("%-12s %7s %12s %12s %8s\n", "work", "calls", "per-call thr",
      "pool", "pool/thr");
  for (unsigned w = 0; w < sizeof works / sizeof works[0]; w++) {
    Job j = { a, b, out, works[w].n, threads };
    int nc = calls / works[w].calls_div;
    if (nc < 1)
      nc = 1;
    simclr_parallel_for (threads, job_task, &j);        /* warm-up */
    simclr_parallel_for_spawn (threads, job_task, &j);
    for (int r = 0; r < reps; r++) {
      for (int side = 0; side < 2; side++) {
        const int pool = (r + side) % 2 == 0;
        double t0 = now ();
        for (int c = 0; c < nc; c++) {
          if (pool)
            simclr_parallel_for (threads, job_task, &j);
          else
            simclr_parallel_for_spawn (threads, job_task, &j);
        }
        double us = (now () - t0) * 1e6 / nc;
        if (pool)
          tp[r] = us;
        else
          ts[r] = us;
      }
    }
    qsort (tp, reps, sizeof (double), cmp_double);
    qsort (ts, reps, sizeof (double), cmp_double);
    const double p = use_min ? tp[0] : tp[reps / 2];
    const double s = use_min ? ts[0] : ts[reps / 2];
    printf ("%-12s %7d %12.2f %12.2f %8.2f\n", works[w].name, nc, s, p,
        p / s);
  }
  free (tp);
  free (ts);
  free (a);
  free (b);
  free (out);
  return 0;
}
