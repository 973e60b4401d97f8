/* simclr-map: a 2-D map of an embedding space as a PNG.
 *
 *   simclr-map --index IDX.npy --out map.png [--color time|label] [--size 800]
 *
 * The rows of an index (e.g. simclrnpysink's embeddings of a video) are
 * L2-normalised (as the index stores them: cosine geometry), projected on
 * their first two principal components (simclr_pca: covariance + LAPACK
 * ssyevd, computed in C) and drawn as dots: coloured by time (the row's
 * timestamp, or its position when there is none; dark blue early, yellow
 * late) or by label (10 distinct colours; unlabelled rows grey). The
 * horizontal axis is the first component. Prints each component's share of
 * the variance. The PNG encoder is a minimal one of ours (zlib).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "apps-common.h"

static void
usage (FILE *f)
{
  fprintf (f,
      "usage: simclr-map --index IDX.npy --out MAP.png [options]\n"
      "  --color time|label  dot colour: timestamp (default) or label\n"
      "  --size S            image side in pixels (800)\n");
}

/* A perceptually ordered ramp (dark blue, teal, green, yellow). */
static void
ramp (double t, uint8_t rgb[3])
{
  static const double stops[5][3] = {
    {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}
  };
  double p = (t < 0 ? 0 : t > 1 ? 1 : t) * 4;
  int i = p >= 4 ? 3 : (int) p;
  double f = p - i;
  for (int c = 0; c < 3; c++)
    rgb[c] = (uint8_t) (stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
}

static const uint8_t palette[10][3] = {
  {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
  {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
  {188, 189, 34}, {23, 190, 207},
};

int
main (int argc, char **argv)
{
  const char *index_path = NULL, *out = NULL, *color = "time";
  int size = 800, ret = 1, dot = 5, by_row = 0;
  SimclrError err = { 0 };
  SimclrIndex *idx;
  int64_t n;
  int d;
  float *x, *proj, comp[2 * 4096], var[2];
  double total = 0, minx = 1e30, maxx = -1e30, miny = 1e30, maxy = -1e30;
  double tmin = 1e300, tmax = -1e300;
  AppsImage *im;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp (a, "-h") || !strcmp (a, "--help")) {
      usage (stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf (stderr, "error: %s needs a value (or is unknown)\n", a);
      return 2;
    }
    if (!strcmp (a, "--index"))
      index_path = argv[++i];
    else if (!strcmp (a, "--out"))
      out = argv[++i];
    else if (!strcmp (a, "--color"))
      color = argv[++i];
    else if (!strcmp (a, "--size"))
      size = atoi (argv[++i]);
    else {
      fprintf (stderr, "error: unknown option %s\n", a);
      return 2;
    }
  }
  if (!index_path || !out || size < 64 || size > 8192
      || (strcmp (color, "time") && strcmp (color, "label"))) {
    usage (stderr);
    return 2;
  }
  idx = simclr_index_load (index_path, NULL, &err);
  if (!idx) {
    fprintf (stderr, "error: %s\n", err.message);
    return 1;
  }
  n = simclr_index_size (idx);
  d = simclr_index_dim (idx);
  if (n < 2 || d < 2 || d > 4096) {
    fprintf (stderr, "error: \"%s\" has %lld rows of %d: a map needs at least "
        "2 rows of 2 to 4096 values\n", index_path, (long long) n, d);
    simclr_index_free (idx);
    return 1;
  }
  x = g_new (float, n * d);
  proj = g_new (float, n * 2);
  for (int64_t i = 0; i < n; i++)
    memcpy (x + i * d, simclr_index_row (idx, i), d * sizeof (float));
  if (simclr_pca (x, n, d, 2, NULL, comp, var, proj, &err) != SIMCLR_OK) {
    fprintf (stderr, "error: %s\n", err.message);
    goto out;
  }
  for (int64_t i = 0; i < n; i++) {
    const SimclrIndexEntry *e = simclr_index_entry (idx, i);
    double t = e->pts_ns >= 0 ? (double) e->pts_ns : (double) i;
    if (proj[2 * i] < minx)
      minx = proj[2 * i];
    if (proj[2 * i] > maxx)
      maxx = proj[2 * i];
    if (proj[2 * i + 1] < miny)
      miny = proj[2 * i + 1];
    if (proj[2 * i + 1] > maxy)
      maxy = proj[2 * i + 1];
    if (t < tmin)
      tmin = t;
    if (t > tmax)
      tmax = t;
  }
  /* Images of a folder all have timestamp 0: colour by position then. */
  if (tmax <= tmin) {
    by_row = 1;
    tmin = 0;
    tmax = (double) (n - 1);
  }
  /* Total variance of the unit rows: the trace of their covariance. */
  {
    double *mu = g_new0 (double, d);
    for (int64_t i = 0; i < n; i++)
      for (int j = 0; j < d; j++)
        mu[j] += x[i * d + j] / (double) n;
    for (int64_t i = 0; i < n; i++)
      for (int j = 0; j < d; j++)
        total += (x[i * d + j] - mu[j]) * (x[i * d + j] - mu[j]) / (n - 1);
    g_free (mu);
  }

  im = apps_image_new (size, size, 250, 250, 250);
  {
    const int margin = size / 20;
    const double span = fmax (maxx - minx, maxy - miny) + 1e-12;
    const double cx = 0.5 * (minx + maxx), cy = 0.5 * (miny + maxy);
    const double scale = (size - 2 * margin) / span;
    apps_image_rect (im, margin / 2, margin / 2, size - margin, size - margin,
        1, 180, 180, 180);
    if (n > 20000)
      dot = 2;
    else if (n > 2000)
      dot = 3;
    for (int64_t i = 0; i < n; i++) {
      const SimclrIndexEntry *e = simclr_index_entry (idx, i);
      uint8_t rgb[3] = { 150, 150, 150 };
      int px = (int) (size / 2 + (proj[2 * i] - cx) * scale);
      /* Image rows grow downwards: the second component points up. */
      int py = (int) (size / 2 - (proj[2 * i + 1] - cy) * scale);
      if (!strcmp (color, "time")) {
        double t = e->pts_ns >= 0 && !by_row ? (double) e->pts_ns :
            (double) i;
        ramp (tmax > tmin ? (t - tmin) / (tmax - tmin) : 0.0, rgb);
      } else if (e->label >= 0)
        memcpy (rgb, palette[e->label % 10], 3);
      apps_image_fill (im, px - dot / 2, py - dot / 2, dot, dot, rgb[0],
          rgb[1], rgb[2]);
    }
    if (!strcmp (color, "time"))
      for (int k = 0; k < size - margin; k++) {
        uint8_t rgb[3];
        ramp ((double) k / (size - margin - 1), rgb);
        apps_image_fill (im, margin / 2 + k, size - margin / 3, 1, margin / 6,
            rgb[0], rgb[1], rgb[2]);
      }
  }
  if (apps_image_write_png (im, out) == 0) {
    printf ("map of %lld rows of %s: %s (components 1 and 2 hold %.1f %% "
        "and %.1f %% of the variance; colour: %s%s)\n", (long long) n,
        index_path, out, total > 0 ? 100.0 * var[0] / total : 0.0,
        total > 0 ? 100.0 * var[1] / total : 0.0, color,
        by_row ? " = row order" : "");
    ret = 0;
  }
  apps_image_free (im);
out:
  g_free (x);
  g_free (proj);
  simclr_index_free (idx);
  return ret;
}
