/* bench-augment.c: SimCLR augmentation throughput, one thread.
 *
 * For each shape (28x28x1, 32x32x3, 96x96x3, 224x224x3; output side = input
 * side, default SimCLR config) it augments pairs of views of random uint8
 * frames (a few distinct frames, cycled) and prints pairs/s as the median of
 * several repetitions, by wall time and by this thread's CPU time (the two
 * differ when other processes share the cores), and the ratio of the wall
 * rate to torchvision's SimCLR transform measured on this machine (single
 * process). Prints timings, asserts nothing.
 *
 *   bench-augment [--reps N] [--seconds S] [--only SIDE]
 *
 * The torchvision side-by-side (run separately):
 *   /usr/bin/python3 /work/shared/peer/torch_simclr.py --bench aug --size 32 \
 *       --channels 3 --workers 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simclr/augment.h"
#include "simclr/rng.h"

#define N_FRAMES 8

/* torchvision's SimCLR transform here (single process), for the ratio. */
static const struct {
  int side, channels;
  double torchvision_pairs;
} shapes[] = {
  {28, 1, 1400.0},
  {32, 3, 670.0},
  {96, 3, 230.0},
  {224, 3, 10.0},
};

static double
clock_s (clockid_t id)
{
  struct timespec ts;
  clock_gettime (id, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double
now (void)
{
  return clock_s (CLOCK_MONOTONIC);
}

/* CPU time of this thread: on a shared machine it shows what one core
 * would do alone, where wall time also counts waiting for a core. */
static double
cpu_now (void)
{
  return clock_s (CLOCK_THREAD_CPUTIME_ID);
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

int
main (int argc, char **argv)
{
  int reps = 5, only = 0;
  double seconds = 0.3;
  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--reps") == 0 && i + 1 < argc)
      reps = atoi (argv[++i]);
    else if (strcmp (argv[i], "--seconds") == 0 && i + 1 < argc)
      seconds = atof (argv[++i]);
    else if (strcmp (argv[i], "--only") == 0 && i + 1 < argc)
      only = atoi (argv[++i]);
    else {
      fprintf (stderr, "usage: %s [--reps N] [--seconds S] [--only SIDE]\n",
          argv[0]);
      return 2;
    }
  }
  if (reps < 1)
    reps = 1;
  double *rate = calloc (reps, sizeof (double));
  double *cpu_rate = calloc (reps, sizeof (double));

  printf ("# bench-augment: default SimCLR config, 1 thread, median of %d "
      "reps of ~%.2f s\n", reps, seconds);
  printf ("%-12s %12s %12s %14s %12s %10s\n", "shape", "pairs/s", "us/view",
      "cpu pairs/s", "tv pairs/s", "x tv");
  for (size_t s = 0; s < sizeof (shapes) / sizeof (shapes[0]); s++) {
    const int side = shapes[s].side, C = shapes[s].channels;
    if (only && only != side)
      continue;
    SimclrAugmentConfig cfg;
    SimclrError err = { 0 };
    simclr_augment_config_default (&cfg);
    cfg.size = side;
    SimclrAugmenter *a = simclr_augmenter_new (&cfg, &err);
    if (a == NULL) {
      fprintf (stderr, "augmenter_new: %s\n", err.message);
      return 1;
    }
    const size_t fbytes = (size_t) side * side * C;
    uint8_t *frames = malloc (fbytes * N_FRAMES), *dst = malloc (fbytes);
    for (size_t k = 0; k < fbytes * N_FRAMES; k++)
      frames[k] = (uint8_t) (simclr_rng_u64 (99, s, k) >> 56);

    uint64_t sample = 0;
    /* Calibrate the batch so that one repetition lasts about @seconds. */
    long batch = 16;
    for (;;) {
      double t0 = now ();
      for (long i = 0; i < batch; i++, sample++)
        for (int v = 0; v < 2; v++)
          simclr_augmenter_view (a, 1, sample, v,
              frames + (sample % N_FRAMES) * fbytes, side, side, side * C, C,
              dst, side * C, NULL, NULL);
      double dt = now () - t0;
      if (dt > seconds / 4 || batch > (1L << 26)) {
        batch = (long) (batch * seconds / (dt > 1e-9 ? dt : 1e-9)) + 1;
        break;
      }
      batch *= 4;
    }
    for (int r = 0; r < reps; r++) {
      double t0 = now (), c0 = cpu_now ();
      for (long i = 0; i < batch; i++, sample++)
        for (int v = 0; v < 2; v++)
          simclr_augmenter_view (a, 1, sample, v,
              frames + (sample % N_FRAMES) * fbytes, side, side, side * C, C,
              dst, side * C, NULL, NULL);
      rate[r] = batch / (now () - t0);
      cpu_rate[r] = batch / (cpu_now () - c0);
    }
    qsort (rate, reps, sizeof (double), cmp_double);
    qsort (cpu_rate, reps, sizeof (double), cmp_double);
    double med = rate[reps / 2];
    char name[32];
    snprintf (name, sizeof (name), "%dx%dx%d", side, side, C);
    printf ("%-12s %12.0f %12.2f %14.0f %12.0f %10.1f\n", name, med,
        1e6 / (2 * med), cpu_rate[reps / 2], shapes[s].torchvision_pairs,
        med / shapes[s].torchvision_pairs);
    fflush (stdout);
    free (frames);
    free (dst);
    simclr_augmenter_free (a);
  }
  free (rate);
  free (cpu_rate);
  return 0;
}
