/* simclr-split: carves a validation split out of a data set's training
 * images, so hyperparameters are chosen without reading the test set.
 *
 *   simclr-split --data DIR --holdout N [--seed S] --out DIR
 *   simclr-split --data DIR --info
 *
 * The held-out images are the first N of a seeded random permutation of the
 * training split (simclr_dataset_epoch_order with shuffle: the same rule as
 * the source's epoch order), so a set stored sorted by class still gives a
 * held-out part of every class. The output is a data set of the same format
 * whose "train" split is the remaining images (in their stored order) and
 * whose "test" split is the held-out ones, so pretraining
 * (simclrdatasetsrc location=OUT) and linear evaluation
 * (simclr-lineval --data OUT) run on it unchanged and never see the real
 * test split:
 *   IDX       train-{images-idx3,labels-idx1}-ubyte and t10k-... (raw IDX)
 *   CIFAR-10  data_batch_{1..5}.bin (the remaining images in five parts)
 *             and test_batch.bin
 *   CIFAR-100 train.bin and test.bin (coarse label written as 0: the
 *             readers use the fine label)
 *   JPEG      train/<class>/<file> and test/<class>/<file> as symbolic links
 *             to the original files (every class folder exists in both)
 * The split is a pure function of (data set, N, seed); OUT/split.txt records
 * them. --info prints the training split's size instead, one line of
 * shell assignments (format, images, width, height, channels, classes), for
 * scripts that size a schedule from the data set. Not here: any change of the pixels (no resizing, no re-encoding).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simclr/dataset.h"

/* Epoch key of the held-out permutation: not an epoch the source plays with
 * a small seed, so the held-out draw is unrelated to any training order. */
#define SPLIT_EPOCH 0x73706c6974ULL

static void
usage (FILE *f)
{
  fprintf (f,
      "usage: simclr-split --data DIR --holdout N --out DIR [--seed S]\n"
      "       simclr-split --data DIR --info\n"
      "  --data DIR     data set (IDX, CIFAR binary, JPEG class folders); its\n"
      "                 training split is divided\n"
      "  --holdout N    images held out (N >= 1; a value below 1 is a fraction\n"
      "                 of the training images)\n"
      "  --seed S       permutation seed (default 0)\n"
      "  --out DIR      output data set: train = the rest, test = held out\n"
      "  --info         print the training split's format, images, width,\n"
      "                 height (0: sizes vary), channels and classes as\n"
      "                 shell assignments, and write nothing\n");
}

static int
make_dir (const char *path)
{
  if (mkdir (path, 0755) == 0 || errno == EEXIST)
    return 0;
  fprintf (stderr, "simclr-split: cannot create folder %s: %s\n", path,
      strerror (errno));
  return -1;
}

static void
put_be32 (unsigned char *p, uint32_t v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static FILE *
open_out (const char *dir, const char *name, char *path, size_t cap)
{
  snprintf (path, cap, "%s/%s", dir, name);
  FILE *f = fopen (path, "wb");
  if (!f)
    fprintf (stderr, "simclr-split: cannot write %s: %s\n", path,
        strerror (errno));
  return f;
}

static int
close_out (FILE *f, const char *path)
{
  if (ferror (f) | fclose (f)) {
    fprintf (stderr, "simclr-split: write error on %s\n", path);
    return -1;
  }
  return 0;
}

/* Writes the images @idx (count) of @ds as one IDX image file and one label
 * file: <prefix>-images-idx3-ubyte, <prefix>-labels-idx1-ubyte. */
static int
write_idx (SimclrDataset *ds, const int64_t *idx, int64_t count,
    const char *dir, const char *prefix, uint8_t *pix, size_t cap)
{
  char name[64], pi[4096], pl[4096];
  unsigned char head[16];
  int w = simclr_dataset_width (ds), h = simclr_dataset_height (ds);
  SimclrError err = { 0 };

  snprintf (name, sizeof name, "%s-images-idx3-ubyte", prefix);
  FILE *fi = open_out (dir, name, pi, sizeof pi);
  snprintf (name, sizeof name, "%s-labels-idx1-ubyte", prefix);
  FILE *fl = fi ? open_out (dir, name, pl, sizeof pl) : NULL;
  if (!fi || !fl) {
    if (fi)
      fclose (fi);
    return -1;
  }
  put_be32 (head, 0x803);
  put_be32 (head + 4, (uint32_t) count);
  put_be32 (head + 8, (uint32_t) h);
  put_be32 (head + 12, (uint32_t) w);
  fwrite (head, 1, 16, fi);
  put_be32 (head, 0x801);
  put_be32 (head + 4, (uint32_t) count);
  fwrite (head, 1, 8, fl);
  for (int64_t k = 0; k < count; k++) {
    int label;
    if (simclr_dataset_get (ds, idx[k], pix, cap, NULL, NULL, &label,
            &err) != SIMCLR_OK) {
      fprintf (stderr, "simclr-split: %s\n", err.message);
      fclose (fi);
      fclose (fl);
      return -1;
    }
    unsigned char l = (unsigned char) (label < 0 ? 0 : label);
    fwrite (pix, 1, (size_t) w * h, fi);
    fwrite (&l, 1, 1, fl);
  }
  return close_out (fi, pi) | close_out (fl, pl);
}

/* CIFAR records of images idx[0 .. count) into the file @name: [coarse]
 * label, then the R, G and B planes. */
static int
write_cifar (SimclrDataset *ds, const int64_t *idx, int64_t count,
    const char *dir, const char *name, int hundred, uint8_t *pix, size_t cap)
{
  char path[4096];
  unsigned char rec[2 + 3 * 1024];
  SimclrError err = { 0 };
  FILE *f = open_out (dir, name, path, sizeof path);

  if (!f)
    return -1;
  for (int64_t k = 0; k < count; k++) {
    int label, o = hundred ? 2 : 1;
    if (simclr_dataset_get (ds, idx[k], pix, cap, NULL, NULL, &label,
            &err) != SIMCLR_OK) {
      fprintf (stderr, "simclr-split: %s\n", err.message);
      fclose (f);
      return -1;
    }
    rec[0] = 0;
    rec[o - 1] = (unsigned char) label;
    for (int p = 0; p < 1024; p++)
      for (int c = 0; c < 3; c++)
        rec[o + c * 1024 + p] = pix[3 * p + c];
    fwrite (rec, 1, (size_t) o + 3 * 1024, f);
  }
  return close_out (f, path);
}

/* JPEG: OUT/<part>/<class>/<file> -> the original file. The class folder is
 * the image's parent folder name. @folders_only: create the class folders
 * of the images, no links. */
static int
link_jpeg (SimclrDataset *ds, const int64_t *idx, int64_t count,
    const char *dir, const char *part, int folders_only)
{
  char sub[4096], link[8192];

  snprintf (sub, sizeof sub, "%s/%s", dir, part);
  if (make_dir (sub) < 0)
    return -1;
  for (int64_t k = 0; k < count; k++) {
    const char *src = simclr_dataset_sample_path (ds, idx[k]);
    char *abs = src ? realpath (src, NULL) : NULL;
    if (!abs) {
      fprintf (stderr, "simclr-split: no file for sample %lld\n",
          (long long) idx[k]);
      return -1;
    }
    /* .../<class>/<file>: link OUT/<part>/<class>/<file>. */
    char *file = strrchr (abs, '/');
    *file = '\0';
    snprintf (link, sizeof link, "%s%s", sub, strrchr (abs, '/'));
    *file = '/';
    if (make_dir (link) < 0) {
      free (abs);
      return -1;
    }
    if (folders_only) {
      free (abs);
      continue;
    }
    strncat (link, file, sizeof link - strlen (link) - 1);
    if (symlink (abs, link) < 0 && errno != EEXIST) {
      fprintf (stderr, "simclr-split: cannot link %s: %s\n", link,
          strerror (errno));
      free (abs);
      return -1;
    }
    free (abs);
  }
  return 0;
}

static int
cmp_i64 (const void *a, const void *b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
  return (x > y) - (x < y);
}

int
main (int argc, char **argv)
{
  const char *data = NULL, *out = NULL;
  double holdout = 0;
  uint64_t seed = 0;
  SimclrError err = { 0 };
  int rc = 1, info = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp (a, "--help") || !strcmp (a, "-h")) {
      usage (stdout);
      return 0;
    }
    if (!strcmp (a, "--info")) {
      info = 1;
      continue;
    }
    if (!v) {
      fprintf (stderr, "simclr-split: %s needs a value\n", a);
      usage (stderr);
      return 2;
    }
    i++;
    if (!strcmp (a, "--data"))
      data = v;
    else if (!strcmp (a, "--out"))
      out = v;
    else if (!strcmp (a, "--holdout"))
      holdout = atof (v);
    else if (!strcmp (a, "--seed"))
      seed = strtoull (v, NULL, 10);
    else {
      fprintf (stderr, "simclr-split: unknown option '%s'\n", a);
      usage (stderr);
      return 2;
    }
  }
  if (info && data) {
    SimclrDataset *ds = simclr_dataset_open (data, "train",
        SIMCLR_DATASET_AUTO, &err);
    if (!ds) {
      fprintf (stderr, "simclr-split: %s\n", err.message);
      return 1;
    }
    printf ("format=%s images=%lld width=%d height=%d channels=%d "
        "classes=%d\n",
        simclr_dataset_format_to_string (simclr_dataset_format (ds)),
        (long long) simclr_dataset_size (ds), simclr_dataset_width (ds),
        simclr_dataset_height (ds), simclr_dataset_channels (ds),
        simclr_dataset_n_classes (ds));
    simclr_dataset_free (ds);
    return 0;
  }
  if (!data || !out || !(holdout > 0)) {
    fprintf (stderr, "simclr-split: give --data, --out and --holdout > 0\n");
    usage (stderr);
    return 2;
  }

  SimclrDataset *ds = simclr_dataset_open (data, "train", SIMCLR_DATASET_AUTO,
      &err);
  if (!ds) {
    fprintf (stderr, "simclr-split: %s\n", err.message);
    return 1;
  }
  int64_t n = simclr_dataset_size (ds);
  int64_t n_val = holdout < 1 ? (int64_t) (holdout * n + 0.5)
      : (int64_t) holdout;
  SimclrDatasetFormat fmt = simclr_dataset_format (ds);
  int64_t *perm = malloc (sizeof (int64_t) * (n > 0 ? n : 1));
  int64_t *keep = malloc (sizeof (int64_t) * (n > 0 ? n : 1));
  size_t cap = simclr_dataset_max_image_bytes (ds);
  uint8_t *pix = malloc (cap > 0 ? cap : 1);

  if (n_val < 1 || n_val >= n) {
    fprintf (stderr, "simclr-split: --holdout %g of %lld training images "
        "leaves nothing on one side\n", holdout, (long long) n);
    goto done;
  }
  if (!perm || !keep || !pix
      || simclr_dataset_epoch_order (n, seed, SPLIT_EPOCH, 1, 0, 1, perm)
      != n) {
    fprintf (stderr, "simclr-split: out of memory for %lld images\n",
        (long long) n);
    goto done;
  }
  /* Held out: perm[0 .. n_val), written in stored order like the rest. */
  qsort (perm, (size_t) n_val, sizeof (int64_t), cmp_i64);
  {
    char *held = calloc ((size_t) n, 1);
    int64_t k = 0;
    if (!held)
      goto done;
    for (int64_t i = 0; i < n_val; i++)
      held[perm[i]] = 1;
    for (int64_t i = 0; i < n; i++)
      if (!held[i])
        keep[k++] = i;
    free (held);
  }
  if (make_dir (out) < 0)
    goto done;

  int bad = 0;
  switch (fmt) {
    case SIMCLR_DATASET_IDX:
      bad = write_idx (ds, keep, n - n_val, out, "train", pix, cap)
          || write_idx (ds, perm, n_val, out, "t10k", pix, cap);
      break;
    case SIMCLR_DATASET_CIFAR10:{
      static const char *names[5] = { "data_batch_1.bin", "data_batch_2.bin",
        "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"
      };
      int64_t m = n - n_val, at = 0;
      if (m < 5) {
        fprintf (stderr, "simclr-split: CIFAR-10 needs >= 5 training images "
            "left (5 files)\n");
        goto done;
      }
      for (int f = 0; f < 5 && !bad; f++) {
        int64_t c = m / 5 + (f < m % 5);
        bad = write_cifar (ds, keep + at, c, out, names[f], 0, pix, cap);
        at += c;
      }
      bad = bad || write_cifar (ds, perm, n_val, out, "test_batch.bin", 0,
          pix, cap);
      break;
    }
    case SIMCLR_DATASET_CIFAR100:
      bad = write_cifar (ds, keep, n - n_val, out, "train.bin", 1, pix, cap)
          || write_cifar (ds, perm, n_val, out, "test.bin", 1, pix, cap);
      break;
    case SIMCLR_DATASET_JPEG_FOLDER:
      /* Every class folder on both sides keeps the class indices (sorted
       * folder names) equal to the original's. */
      bad = link_jpeg (ds, perm, n, out, "train", 1)
          || link_jpeg (ds, perm, n, out, "test", 1)
          || link_jpeg (ds, keep, n - n_val, out, "train", 0)
          || link_jpeg (ds, perm, n_val, out, "test", 0);
      break;
    default:
      fprintf (stderr, "simclr-split: unsupported format\n");
      bad = 1;
  }
  if (bad)
    goto done;
  {
    char path[4096];
    FILE *f = open_out (out, "split.txt", path, sizeof path);
    if (!f)
      goto done;
    fprintf (f, "source %s\nformat %s\ntrain %lld\nheld-out %lld\nseed %llu\n",
        data, simclr_dataset_format_to_string (fmt), (long long) (n - n_val),
        (long long) n_val, (unsigned long long) seed);
    if (close_out (f, path) < 0)
      goto done;
  }
  printf ("simclr-split: %s (%s, %lld training images) -> %s: train %lld, "
      "held out (test) %lld, seed %llu\n", data,
      simclr_dataset_format_to_string (fmt), (long long) n, out,
      (long long) (n - n_val), (long long) n_val, (unsigned long long) seed);
  rc = 0;

done:
  free (perm);
  free (keep);
  free (pix);
  simclr_dataset_free (ds);
  return rc;
}
