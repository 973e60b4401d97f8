/* bench-allreduce.c: the time of the all-reduces of a data-parallel step,
 * through the same hook the trainer calls (mpi/simclr-mpi.c), on whatever
 * transport mpirun chose (--mca btl vader,self: shared memory; --mca btl
 * tcp,self: TCP, as between machines).
 *
 *   mpirun -np 2 [--mca btl tcp,self] bench-allreduce [--reps R]
 *
 * Sizes: the gradient buffer of ResNet-18 at width 0.25 and 1 with the
 * 2-layer head (the parameter count of a real SimclrModel, 28x28x1
 * CIFAR-stem: the input does not change it), 10M floats (the README's
 * shared-memory figure), and a batch-norm statistics all-reduce (2 x 64
 * floats, latency-bound). Prints a table (median, min, max over R reps
 * after 3 warm-ups; algorithm bandwidth 2 (K-1)/K x bytes / median, what a
 * ring all-reduce moves per rank). Asserts nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "simclr/model.h"
#include "simclr-mpi.h"

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static size_t
resnet18_params (double width)
{
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  size_t n = 0;
  simclr_model_config_default (&cfg);
  cfg.width = width;
  cfg.in_channels = 1;
  cfg.image_size = 28;
  cfg.max_batch = 2;
  SimclrModel *m = simclr_model_new (&cfg, 1, &err);
  if (!m) {
    fprintf (stderr, "bench-allreduce: %s\n", err.message);
    exit (1);
  }
  simclr_model_params (m, &n);
  simclr_model_free (m);
  return n;
}

int
main (int argc, char **argv)
{
  SimclrError err = { 0 };
  SimclrComm comm;
  int reps = 20;

  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--reps") && i + 1 < argc)
      reps = atoi (argv[++i]);
    else {
      fprintf (stderr, "usage: mpirun -np K %s [--reps R]\n", argv[0]);
      return 2;
    }
  }
  if (simclr_mpi_init (&err) <= 0) {
    fprintf (stderr, "bench-allreduce: run under mpirun with >= 2 ranks%s%s\n",
        err.message[0] ? ": " : "", err.message);
    return 77;
  }
  simclr_mpi_comm (SIMCLR_MPI_TRAINER, &comm);
  const int K = comm.size;
  struct { const char *name; size_t n; } sizes[] = {
    {"BN statistics (2 x 64)", 128},
    {"ResNet-18 w0.25 gradient", resnet18_params (0.25)},
    {"ResNet-18 w1 gradient", resnet18_params (1.0)},
    {"10M floats", 10000000},
  };
  double *t = malloc (sizeof (double) * reps);

  if (comm.rank == 0) {
    char name[MPI_MAX_LIBRARY_VERSION_STRING];
    int len;
    MPI_Get_library_version (name, &len);
    printf ("%d ranks; %.60s\n", K, name);
    printf ("| buffer | floats | MB | median ms | min ms | max ms | GB/s (2(K-1)/K x bytes) |\n");
    printf ("|---|---|---|---|---|---|---|\n");
  }
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s].n;
    float *buf = malloc (sizeof (float) * n);
    for (size_t i = 0; i < n; i++)
      buf[i] = (float) (i % 7) * 1e-3f;
    for (int w = 0; w < 3; w++)
      comm.allreduce (buf, (int) n, comm.user);
    for (int r = 0; r < reps; r++) {
      MPI_Barrier (MPI_COMM_WORLD);
      double t0 = MPI_Wtime ();
      comm.allreduce (buf, (int) n, comm.user);
      double mine = MPI_Wtime () - t0, slowest;
      /* the collective ends when the slowest rank has its sum */
      MPI_Allreduce (&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      t[r] = slowest;
    }
    qsort (t, reps, sizeof (double), cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    double bytes = 4.0 * n;
    if (comm.rank == 0)
      printf ("| %s | %zu | %.2f | %.3f | %.3f | %.3f | %.2f |\n",
          sizes[s].name, n, bytes / 1e6, med * 1e3, t[0] * 1e3,
          t[reps - 1] * 1e3, 2.0 * (K - 1) / K * bytes / med / 1e9);
    free (buf);
  }
  free (t);
  return 0;
}
