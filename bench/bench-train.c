/* bench-train.c: training-step and inference throughput of the core, beside
 * cblas_sgemm's own GFLOP/s measured in the same run.
 *
 * Prints tables; asserts nothing. One view = one augmented image; a step of
 * batch N trains on 2N views. FLOPs are counted as the PyTorch peer counts them
 * (2 x MACs of every convolution and linear layer; a training step is 3x the
 * forward), so GFLOP/s figures are comparable with ../shared/peer.
 *
 *   bench-train [--batch N] [--reps R] [--min-seconds S] [--threads T]
 *               [--config w0.25-28x1,w1-28x1,...] [--no-sgemm] [--no-infer]
 *               [--profile [--units]] [--cpu-time] [--no-train]
 *
 * --no-train: inference only, from a model sized for the inference batch
 * (so the peak RSS printed is that of inference alone, as the peer's
 * separate --bench infer process).
 *
 * --profile: after the timed steps, a few more steps with the model's
 * profile attached (core/profile-private.h), and a table of where a step's
 * time goes: convolution forward, input gradient, weight gradient, batch
 * norm (with its ReLU / residual passes), and the rest (head, loss,
 * optimiser, input conversion, pooling), with GFLOP/s per convolution kind;
 * --units adds one line per convolution + BN unit.
 * --cpu-time: time steps and the profile with the process's CPU clock
 * instead of the wall clock. With --threads 1 and OPENBLAS_NUM_THREADS=1
 * that is the work of one core, which other jobs on a shared machine do not
 * inflate (much): use it for A/B comparisons under load, never as a
 * throughput figure.
 * SIMCLR_CPU (include/simclr/cpu.h) picks a lower kernel set for A/B runs.
 *
 * Set OPENBLAS_NUM_THREADS (and OPENBLAS_CORETYPE where scripts/env.sh says)
 * before starting: OpenBLAS reads them when it loads.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "simclr/simclr.h"
#include "profile-private.h"

extern char *openblas_get_corename (void);
extern int openblas_get_num_threads (void);

typedef struct {
  double width;
  int size, channels;
} BenchConfig;

static int use_cpu_time;

static double
now_seconds (void)
{
  struct timespec ts;
  clock_gettime (use_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC,
      &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

typedef struct {
  double median, min, max;
} Summary;

static Summary
summarize (double *v, int n)
{
  Summary s;
  qsort (v, n, sizeof *v, cmp_double);
  s.min = v[0];
  s.max = v[n - 1];
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return s;
}

static double
peak_rss_mib (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;   /* Linux: KiB */
}

/* Output side of a 3x3/7x7/1x1 convolution or pool with this stride. */
static int
down (int s, int k, int stride, int pad)
{
  return (s + 2 * pad - k) / stride + 1;
}

/* Forward FLOPs (2 x MACs of conv and linear layers) of one image, read off
 * the model's tensor table: a weight's shape gives its MACs per output pixel,
 * its layer gives the output resolution. */
static double
forward_flops_per_image (const SimclrModel *m)
{
  const SimclrModelConfig *cfg = simclr_model_get_config (m);
  int s0 = cfg->image_size;
  if (cfg->stem == SIMCLR_STEM_IMAGENET)
    s0 = down (down (s0, 7, 2, 3), 3, 2, 1);
  int res[5] = { s0, s0, 0, 0, 0 };
  for (int l = 2; l <= 4; l++)
    res[l] = down (res[l - 1], 3, 2, 1);
  int bottleneck = cfg->arch == SIMCLR_ARCH_RESNET50;
  double flops = 0;
  for (int i = 0; i < simclr_model_n_tensors (m); i++) {
    const SimclrTensorInfo *t = simclr_model_tensor (m, i);
    size_t len = strlen (t->name);
    if (t->storage != SIMCLR_TENSOR_PARAM || len < 7
        || strcmp (t->name + len - 7, ".weight") != 0)
      continue;
    if (t->ndim == 4) {
      int out_side;
      if (strcmp (t->name, "conv1.weight") == 0) {
        out_side = cfg->stem == SIMCLR_STEM_IMAGENET
            ? down (cfg->image_size, 7, 2, 3) : cfg->image_size;
      } else {
        int layer = t->name[5] - '0';
        out_side = res[layer];
        /* A bottleneck's first 1x1 runs before the stride. */
        if (bottleneck && layer > 1 && strstr (t->name, ".0.conv1."))
          out_side = res[layer - 1];
      }
      double macs_per_pixel = (double) t->shape[0] * t->shape[1] * t->shape[2]
          * t->shape[3];
      flops += 2.0 * macs_per_pixel * out_side * out_side;
    } else if (t->ndim == 2) {
      flops += 2.0 * (double) t->shape[0] * t->shape[1];
    }
  }
  return flops;
}

static double
sgemm_gflops (int n, int reps)
{
  float *a = malloc (sizeof (float) * n * n);
  float *b = malloc (sizeof (float) * n * n);
  float *c = malloc (sizeof (float) * n * n);
  double *g = malloc (sizeof (double) * reps), med;
  for (int i = 0; i < n * n; i++) {
    a[i] = (float) ((i * 7) % 13) * 0.01f;
    b[i] = (float) ((i * 5) % 11) * 0.01f;
  }
  /* C (n,n) = A (n,n) B (n,n): M = N = K = n. */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n,
      b, n, 0.0f, c, n);
  for (int r = 0; r < reps; r++) {
    double t0 = now_seconds ();
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a,
        n, b, n, 0.0f, c, n);
    g[r] = 2.0 * n * n * (double) n / (now_seconds () - t0) / 1e9;
  }
  med = summarize (g, reps).median;
  free (a);
  free (b);
  free (c);
  free (g);
  return med;
}

static void
fill_views (uint8_t *v, size_t n, uint64_t seed)
{
  for (size_t i = 0; i < n; i++)
    v[i] = (uint8_t) (simclr_rng_u64 (seed, 0, i) >> 56);
}

static const char *const kind_names[SIMCLR_PROFILE_N_KINDS] = {
  "conv forward", "conv input gradient", "conv weight gradient",
  "batch norm + ReLU + add",
};

/* Runs `steps` more training steps with a profile attached; prints where a
 * step's time goes. */
static void
profile_steps (SimclrTrainer *t, const uint8_t *views, int rows, int steps,
    int units)
{
  SimclrModel *m = simclr_trainer_get_model (t);
  SimclrProfile *p = calloc (1, sizeof (*p));
  p->cpu_time = use_cpu_time;
  SimclrNtxentResult res;
  SimclrError err = { 0 };
  simclr_model_set_profile (m, p);
  double t0 = now_seconds ();
  for (int i = 0; i < steps; i++)
    simclr_trainer_train_step (t, views, rows, &res, &err);
  double step = (now_seconds () - t0) / steps;
  simclr_model_set_profile (m, NULL);

  double known = 0;
  printf ("|   profile (%d steps, %.1f ms/step) | ms/step | share | GFLOP/s |\n",
      steps, step * 1e3);
  printf ("|---|---|---|---|\n");
  for (int k = 0; k < SIMCLR_PROFILE_N_KINDS; k++) {
    double s = p->seconds[k] / steps;
    known += s;
    if (p->flops[k] > 0)
      printf ("|   %s | %.1f | %.0f %% | %.1f |\n", kind_names[k], s * 1e3,
          100.0 * s / step, p->flops[k] / p->seconds[k] / 1e9);
    else
      printf ("|   %s | %.1f | %.0f %% | |\n", kind_names[k], s * 1e3,
          100.0 * s / step);
  }
  printf ("|   the rest (head, loss, optimiser, input, pooling) | %.1f | %.0f %% | |\n",
      (step - known) * 1e3, 100.0 * (step - known) / step);
  if (units) {
    printf ("\n| unit | shape (B,H,W,C -> OC, k/s) | fwd ms | GF/s | dinput ms | GF/s | dweight ms | GF/s | BN ms | paths fwd/dinp/dw |\n");
    printf ("|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < p->n_units; i++) {
      const SimclrProfileUnit *u = &p->unit[i];
      const SimclrConvShape *cs = &u->shape;
      double ms[SIMCLR_PROFILE_N_KINDS], gf[SIMCLR_PROFILE_N_KINDS];
      for (int k = 0; k < SIMCLR_PROFILE_N_KINDS; k++) {
        ms[k] = u->seconds[k] / steps * 1e3;
        gf[k] = u->seconds[k] > 0 ? u->flops[k] / u->seconds[k] / 1e9 : 0;
      }
      printf ("| %s | %d,%d,%d,%d -> %d, %d/%d | %.2f | %.0f | %.2f | %.0f | %.2f | %.0f | %.2f | %s/%s/%s |\n",
          u->name ? u->name : "?", cs->B, cs->H, cs->W, cs->C, cs->OC, cs->KH,
          cs->stride, ms[0], gf[0], ms[1], gf[1], ms[2], gf[2], ms[3],
          simclr_conv2d_kernel_name (cs, SIMCLR_CONV_FORWARD),
          simclr_conv2d_kernel_name (cs, SIMCLR_CONV_DINPUT),
          simclr_conv2d_kernel_name (cs, SIMCLR_CONV_DWEIGHT));
    }
  }
  fflush (stdout);
  free (p);
}

/* Inference only (--no-train): a model sized for the batch, eval mode. */
static int
bench_infer_only (const BenchConfig *bc, int batch, int reps,
    double min_seconds, int threads)
{
  SimclrModelConfig mc;
  SimclrError err = { 0 };
  simclr_model_config_default (&mc);
  mc.arch = SIMCLR_ARCH_RESNET18;
  mc.width = bc->width;
  mc.in_channels = bc->channels;
  mc.stem = SIMCLR_STEM_CIFAR;
  mc.image_size = bc->size;
  mc.max_batch = batch;
  mc.threads = threads;
  SimclrModel *m = simclr_model_new (&mc, 1, &err);
  if (!m) {
    fprintf (stderr, "bench-train: %s\n", err.message);
    return 1;
  }
  size_t per = (size_t) bc->size * bc->size * bc->channels;
  uint8_t *views = malloc (per * batch);
  float *x = malloc (sizeof (float) * per * batch);
  float *h = malloc (sizeof (float) * simclr_model_feature_dim (m) * batch);
  fill_views (views, per * batch, 7);
  for (size_t i = 0; i < per * batch; i++)
    x[i] = views[i] / 255.0f;
  simclr_model_forward (m, x, batch, 0, h, NULL, &err);
  double t0 = now_seconds ();
  simclr_model_forward (m, x, batch, 0, h, NULL, &err);
  double one = now_seconds () - t0;
  int ir = (int) ceil (min_seconds / one);
  if (ir < 1)
    ir = 1;
  double *ts = calloc (reps, sizeof (double));
  for (int r = 0; r < reps; r++) {
    t0 = now_seconds ();
    for (int i = 0; i < ir; i++)
      simclr_model_forward (m, x, batch, 0, h, NULL, &err);
    ts[r] = (now_seconds () - t0) / ir;
  }
  Summary is = summarize (ts, reps);
  printf ("| resnet18 w%-4g %2dx%2dx%d | inference batch %d | %.0f images/s "
      "(%.0f-%.0f) | %.1f GFLOP/s | peak RSS %.0f MiB |\n", bc->width,
      bc->size, bc->size, bc->channels, batch, batch / is.median,
      batch / is.max, batch / is.min,
      batch * forward_flops_per_image (m) / is.median / 1e9, peak_rss_mib ());
  free (ts);
  free (views);
  free (x);
  free (h);
  simclr_model_free (m);
  return 0;
}

static int
bench_config (const BenchConfig *bc, int batch, int reps, double min_seconds,
    int threads, int infer, double sgemm_peak, int profile)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  int rows = 2 * batch;
  simclr_trainer_config_default (&cfg);
  cfg.model.arch = SIMCLR_ARCH_RESNET18;
  cfg.model.width = bc->width;
  cfg.model.in_channels = bc->channels;
  cfg.model.stem = SIMCLR_STEM_CIFAR;
  cfg.model.image_size = bc->size;
  cfg.model.max_batch = rows;
  cfg.model.threads = threads;
  cfg.optim.batch_size = batch;
  cfg.optim.warmup_steps = 10;
  cfg.optim.total_steps = 1000;
  cfg.seed = 1;

  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  if (!t) {
    fprintf (stderr, "bench-train: %s\n", err.message);
    return 1;
  }
  size_t per = (size_t) bc->size * bc->size * bc->channels;
  uint8_t *views = malloc (per * rows);
  fill_views (views, per * rows, 7);

  SimclrNtxentResult res;
  double t0 = now_seconds ();
  if (simclr_trainer_train_step (t, views, rows, &res, &err) != SIMCLR_OK) {
    fprintf (stderr, "bench-train: %s\n", err.message);
    simclr_trainer_free (t);
    free (views);
    return 1;
  }
  double first = now_seconds () - t0;
  int per_rep = (int) ceil (min_seconds / first);
  if (per_rep < 1)
    per_rep = 1;
  double *step_s = calloc (reps, sizeof (double));
  for (int r = 0; r < reps; r++) {
    t0 = now_seconds ();
    for (int i = 0; i < per_rep; i++)
      simclr_trainer_train_step (t, views, rows, &res, &err);
    step_s[r] = (now_seconds () - t0) / per_rep;
  }
  Summary st = summarize (step_s, reps);
  SimclrModel *m = simclr_trainer_get_model (t);
  double flops_view = 3.0 * forward_flops_per_image (m);
  double gflops = rows * flops_view / st.median / 1e9;
  printf ("| resnet18 w%-4g %2dx%2dx%d | %5d | %8.1f | %7.1f (%6.1f-%6.1f) | %6.1f | %5.1f %% | %7.0f | %.3f |\n",
      bc->width, bc->size, bc->size, bc->channels, rows, rows / st.median,
      st.median * 1e3, st.min * 1e3, st.max * 1e3, gflops,
      sgemm_peak > 0 ? 100.0 * gflops / sgemm_peak : 0.0, peak_rss_mib (),
      res.loss);
  fflush (stdout);
  if (profile)
    profile_steps (t, views, rows, per_rep > 3 ? per_rep : 3, profile > 1);

  if (infer) {
    /* Inference: encoder only, eval mode, batch N uint8 images through
     * the frame entry (the / 255 included, as in embed mode). */
    SimclrFrame *x = malloc (sizeof (SimclrFrame) * batch);
    float *h = malloc (sizeof (float) * simclr_model_feature_dim (m) * batch);
    simclr_frames_packed (x, views, batch, bc->size, bc->channels);
    simclr_model_forward_frames (m, x, batch, bc->channels, 0, h, NULL, &err);
    t0 = now_seconds ();
    simclr_model_forward_frames (m, x, batch, bc->channels, 0, h, NULL, &err);
    double one = now_seconds () - t0;
    int ir = (int) ceil (min_seconds / one);
    if (ir < 1)
      ir = 1;
    double *ts = calloc (reps, sizeof (double));
    for (int r = 0; r < reps; r++) {
      t0 = now_seconds ();
      for (int i = 0; i < ir; i++)
        simclr_model_forward_frames (m, x, batch, bc->channels, 0, h, NULL,
            &err);
      ts[r] = (now_seconds () - t0) / ir;
    }
    Summary is = summarize (ts, reps);
    printf ("|   inference (eval, h only), batch %d: %.0f images/s (%.1f GFLOP/s)\n",
        batch, batch / is.median,
        batch * (flops_view / 3.0) / is.median / 1e9);
    free (ts);
    free (x);
    free (h);
  }
  free (step_s);
  free (views);
  simclr_trainer_free (t);
  return 0;
}

int
main (int argc, char **argv)
{
  int batch = 256, reps = 3, threads = 0, do_sgemm = 1, infer = 1;
  int profile = 0, train = 1;
  double min_seconds = 3.0;
  const char *configs = "w0.25-28x1,w0.25-32x3,w1-28x1,w1-32x3";
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--batch") && i + 1 < argc)
      batch = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--reps") && i + 1 < argc)
      reps = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--min-seconds") && i + 1 < argc)
      min_seconds = atof (argv[++i]);
    else if (!strcmp (argv[i], "--threads") && i + 1 < argc)
      threads = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--config") && i + 1 < argc)
      configs = argv[++i];
    else if (!strcmp (argv[i], "--no-sgemm"))
      do_sgemm = 0;
    else if (!strcmp (argv[i], "--no-infer"))
      infer = 0;
    else if (!strcmp (argv[i], "--profile"))
      profile = profile > 1 ? 2 : 1;
    else if (!strcmp (argv[i], "--units"))
      profile = 2;
    else if (!strcmp (argv[i], "--cpu-time"))
      use_cpu_time = 1;
    else if (!strcmp (argv[i], "--no-train"))
      train = 0;
    else {
      fprintf (stderr, "usage: %s [--batch N] [--reps R] [--min-seconds S] "
          "[--threads T] [--config w0.25-28x1,...] [--no-sgemm] [--no-infer]"
          " [--profile [--units]] [--cpu-time] [--no-train]\n",
          argv[0]);
      return 2;
    }
  }
  if (batch < 1 || reps < 1) {
    fprintf (stderr, "bench-train: --batch and --reps must be positive\n");
    return 2;
  }
  if (threads <= 0)
    threads = openblas_get_num_threads ();

  SimclrError cpu_err = { 0 };
  if (simclr_cpu_check_env (&cpu_err) != SIMCLR_OK)
    fprintf (stderr, "bench-train: %s\n", cpu_err.message);
  printf ("OpenBLAS core %s, %d threads; model worker threads %d; batch N=%d (%d views)\n",
      openblas_get_corename (), openblas_get_num_threads (), threads, batch,
      2 * batch);
  printf ("kernels: %s\n", simclr_cpu_describe ());
  double peak = do_sgemm ? sgemm_gflops (2048, 5) : 0;
  if (do_sgemm)
    printf ("square sgemm 2048^3: %.1f GFLOP/s (median of 5)\n", peak);
  printf ("\n| model | views | views/s | step ms median (min-max) | GFLOP/s | of sgemm | peak RSS MiB | loss |\n");
  printf ("|---|---|---|---|---|---|---|---|\n");

  char *list = strdup (configs), *save = NULL;
  int rc = 0;
  for (char *tok = strtok_r (list, ",", &save); tok;
      tok = strtok_r (NULL, ",", &save)) {
    BenchConfig bc;
    if (sscanf (tok, "w%lf-%dx%d", &bc.width, &bc.size, &bc.channels) != 3) {
      fprintf (stderr, "bench-train: bad config '%s' (want e.g. w0.25-28x1)\n",
          tok);
      rc = 2;
      break;
    }
    if (train)
      rc |= bench_config (&bc, batch, reps, min_seconds, threads, infer, peak,
          profile);
    else
      rc |= bench_infer_only (&bc, batch, reps, min_seconds, threads);
  }
  free (list);
  return rc;
}
