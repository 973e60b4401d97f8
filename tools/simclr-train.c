/* simclr-train: SimCLR pretraining through the core alone (no GStreamer),
 * on one process or data-parallel under mpirun.
 *
 *   simclr-train [--data DIR] [--batch N] [--steps S] [options]
 *   mpirun -np K simclr-train --batch N/K ...      (plugin-free MPI)
 *
 * Each step takes the next N x K samples of the shuffled training split
 * (simclr_dataset_epoch_order, --data-seed), rank r the r-th N of them;
 * views 0 and 1 of each sample come from simclr_augmenter_view keyed by the
 * sample id (--aug-seed), so K ranks of N see exactly the samples and views
 * of one process of N x K. The step is the trainer's convenience step: its
 * SimclrLoss all-gathers z, batch norm sums over the ranks, the gradients
 * are summed (simclr_trainer_join), all through the MPI hooks of
 * mpi/simclr-mpi.h. Rank 0 prints one line per step
 * ("step loss top1 top5 lr", the loss with 17 digits) and writes the
 * checkpoint (--out). Not here: an epoch loop beyond one pass, a kNN
 * monitor (see simclrencoder) or speed tuning (see bench/bench-train).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/simclr.h"
#ifdef HAVE_MPI
#include "simclr-mpi.h"
#endif

/* Declared by OpenBLAS (not in cblas.h). */
extern int openblas_get_num_threads (void);

typedef struct {
  const char *data, *out;
  int batch, steps, threads, proj_hidden;
  double width, lr, tau;
  uint64_t seed, data_seed, aug_seed;
  int sgd, sqrt_scaling;
  int64_t warmup;
} Options;

static void
usage (FILE *f)
{
  fprintf (f,
      "usage: simclr-train [options]   (under mpirun: one rank each)\n"
      "  --data DIR        labelled set (default /usr/share/datasets/fashion-mnist)\n"
      "  --batch N         samples per step and rank (16)\n"
      "  --steps S         steps (10; the cosine schedule's horizon)\n"
      "  --warmup W        warm-up steps (1)\n"
      "  --width W         ResNet-18 width multiplier (0.25)\n"
      "  --proj-hidden H   head hidden units (0: the feature size)\n"
      "  --lr L            base learning rate (0.3, linear scaling)\n"
      "  --sqrt            sqrt learning-rate scaling\n"
      "  --sgd             SGD with momentum instead of LARS\n"
      "  --tau T           NT-Xent temperature (0.5)\n"
      "  --seed S          initial weights (0)\n"
      "  --data-seed S     sample order (0)\n"
      "  --aug-seed S      augmentations (0)\n"
      "  --threads T       model worker threads (0: OpenBLAS's)\n"
      "  --out FILE        write the trainer checkpoint at the end (rank 0)\n");
}

static int
parse_args (int argc, char **argv, Options *o)
{
  memset (o, 0, sizeof *o);
  o->data = "/usr/share/datasets/fashion-mnist";
  o->batch = 16;
  o->steps = 10;
  o->warmup = 1;
  o->width = 0.25;
  o->lr = 0.3;
  o->tau = 0.5;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VALUE() do { if (!v) { fprintf (stderr, "simclr-train: %s needs a value\n", a); return -1; } i++; } while (0)
    if (!strcmp (a, "--data")) { VALUE (); o->data = v; }
    else if (!strcmp (a, "--out")) { VALUE (); o->out = v; }
    else if (!strcmp (a, "--batch")) { VALUE (); o->batch = atoi (v); }
    else if (!strcmp (a, "--steps")) { VALUE (); o->steps = atoi (v); }
    else if (!strcmp (a, "--warmup")) { VALUE (); o->warmup = atoll (v); }
    else if (!strcmp (a, "--width")) { VALUE (); o->width = atof (v); }
    else if (!strcmp (a, "--proj-hidden")) { VALUE (); o->proj_hidden = atoi (v); }
    else if (!strcmp (a, "--lr")) { VALUE (); o->lr = atof (v); }
    else if (!strcmp (a, "--tau")) { VALUE (); o->tau = atof (v); }
    else if (!strcmp (a, "--seed")) { VALUE (); o->seed = strtoull (v, NULL, 10); }
    else if (!strcmp (a, "--data-seed")) { VALUE (); o->data_seed = strtoull (v, NULL, 10); }
    else if (!strcmp (a, "--aug-seed")) { VALUE (); o->aug_seed = strtoull (v, NULL, 10); }
    else if (!strcmp (a, "--threads")) { VALUE (); o->threads = atoi (v); }
    else if (!strcmp (a, "--sgd")) o->sgd = 1;
    else if (!strcmp (a, "--sqrt")) o->sqrt_scaling = 1;
    else if (!strcmp (a, "--help") || !strcmp (a, "-h")) { usage (stdout); exit (0); }
    else {
      fprintf (stderr, "simclr-train: unknown option '%s'\n", a);
      return -1;
    }
#undef VALUE
  }
  if (o->batch < 1 || o->steps < 1 || o->warmup < 0) {
    fprintf (stderr, "simclr-train: --batch and --steps must be >= 1\n");
    return -1;
  }
  return 0;
}

int
main (int argc, char **argv)
{
  Options o;
  SimclrError err = { 0 };
  SimclrComm trainer_comm;
  SimclrDataset *ds = NULL;
  SimclrAugmenter *aug = NULL;
  SimclrTrainer *t = NULL;
  int64_t *order = NULL;
  uint8_t *pix = NULL, *views = NULL;
  int rc = 1;

  if (parse_args (argc, argv, &o) < 0) {
    usage (stderr);
    return 2;
  }
  simclr_comm_init_local (&trainer_comm);
#ifdef HAVE_MPI
  if (simclr_mpi_init (&err) < 0) {
    fprintf (stderr, "simclr-train: %s\n", err.message);
    return 1;
  }
  simclr_mpi_comm (SIMCLR_MPI_TRAINER, &trainer_comm);
#endif
  const int rank = trainer_comm.rank, K = trainer_comm.size;

  ds = simclr_dataset_open (o.data, "train", SIMCLR_DATASET_AUTO, &err);
  if (!ds)
    goto failed;
  const int side = simclr_dataset_width (ds), ch = simclr_dataset_channels (ds);
  if (side <= 0 || side != simclr_dataset_height (ds)) {
    fprintf (stderr, "simclr-train: %s: square images of one size needed\n",
        o.data);
    goto out;
  }
  const int64_t n = simclr_dataset_size (ds);
  const int64_t global = (int64_t) o.batch * K;
  if (global * o.steps > n) {
    fprintf (stderr, "simclr-train: %d steps of %lld samples exceed the %lld "
        "of %s\n", o.steps, (long long) global, (long long) n, o.data);
    goto out;
  }
  order = malloc (sizeof (int64_t) * n);
  if (!order || simclr_dataset_epoch_order (n, o.data_seed, 0, 1, 0, 1,
          order) != n) {
    fprintf (stderr, "simclr-train: no sample order\n");
    goto out;
  }

  SimclrAugmentConfig acfg;
  simclr_augment_config_default (&acfg);
  acfg.size = side;
  aug = simclr_augmenter_new (&acfg, &err);
  if (!aug)
    goto failed;

  SimclrTrainerConfig cfg;
  simclr_trainer_config_default (&cfg);
  cfg.model.arch = SIMCLR_ARCH_RESNET18;
  cfg.model.width = o.width;
  cfg.model.in_channels = ch;
  cfg.model.stem = side <= 64 ? SIMCLR_STEM_CIFAR : SIMCLR_STEM_IMAGENET;
  cfg.model.image_size = side;
  cfg.model.proj_hidden = o.proj_hidden;
  cfg.model.threads = o.threads > 0 ? o.threads : openblas_get_num_threads ();
  cfg.optim.kind = o.sgd ? SIMCLR_OPTIM_SGD : SIMCLR_OPTIM_LARS;
  cfg.optim.base_lr = o.lr;
  cfg.optim.lr_scaling = o.sqrt_scaling ? SIMCLR_LR_SCALING_SQRT
      : SIMCLR_LR_SCALING_LINEAR;
  cfg.optim.warmup_steps = o.warmup;
  cfg.optim.total_steps = o.steps > o.warmup ? o.steps : o.warmup + 1;
  cfg.temperature = o.tau;
  cfg.seed = o.seed;
  if (simclr_trainer_config_set_batch (&cfg, o.batch, K, &err) != SIMCLR_OK)
    goto failed;
  t = simclr_trainer_new (&cfg, &err);
  if (!t || simclr_trainer_join (t, &trainer_comm, 1, &err) != SIMCLR_OK)
    goto failed;

  const int N = simclr_trainer_local_batch (t);
  const size_t frame = (size_t) side * side * ch;
  pix = malloc (simclr_dataset_max_image_bytes (ds));
  views = malloc (frame * simclr_trainer_local_rows (t));
  if (!pix || !views) {
    fprintf (stderr, "simclr-train: out of memory\n");
    goto out;
  }
  if (rank == 0)
    printf ("# %d rank(s) x %d samples = %lld per step, %dx%dx%d, %d steps\n"
        "# step loss top1 top5 lr\n", K, N, (long long) global, side, side,
        ch, o.steps);
  for (int step = 0; step < o.steps; step++) {
    SimclrNtxentResult res;
    double lr = simclr_trainer_get_lr (t);
    /* this rank's N samples of the step; rows view-major */
    for (int j = 0; j < N; j++) {
      int64_t id = order[(int64_t) step * global + (int64_t) rank * N + j];
      int w, h;
      if (simclr_dataset_get (ds, id, pix, simclr_dataset_max_image_bytes
              (ds), &w, &h, NULL, &err) != SIMCLR_OK)
        goto failed;
      for (int v = 0; v < 2; v++)
        if (simclr_augmenter_view (aug, o.aug_seed, (uint64_t) id, v, pix, w,
                h, w * ch, ch, views + (size_t) (v * N + j) * frame,
                side * ch, NULL, &err) != SIMCLR_OK)
          goto failed;
    }
    if (simclr_trainer_train_step (t, views, 2 * N, &res, &err) != SIMCLR_OK)
      goto failed;
    if (rank == 0) {
      printf ("%d %.17g %.6f %.6f %.17g\n", step, res.loss, res.top1,
          res.top5, lr);
      fflush (stdout);
    }
  }
  if (o.out && rank == 0 && simclr_trainer_save (t, o.out, &err) != SIMCLR_OK)
    goto failed;
  rc = 0;
  goto out;

failed:
  fprintf (stderr, "simclr-train: rank %d: %s\n", rank, err.message);
#ifdef HAVE_MPI
  /* the other ranks would wait in a collective */
  simclr_mpi_abort ("simclr-train failed");
#endif
out:
  free (views);
  free (pix);
  free (order);
  simclr_trainer_free (t);
  simclr_augmenter_free (aug);
  simclr_dataset_free (ds);
  return rc;
}
