/* test-augment.c: SimCLR augmentations: exact properties (identities,
 * flips, grayscale, determinism, strides, errors), an antialiasing check, the
 * resized crop against a double-precision direct reference, and statistics of
 * the drawn parameters against their configured ranges and probabilities.
 * The op-by-op comparison with torchvision lives in augment-torchvision.py. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "simclr/augment.h"
#include "simclr/rng.h"
#include "cpu-private.h"
#include "cpu-level.h"

/* Random frame (h, w * C) with a stride of w * C + pad, padding bytes 0xEE. */
static uint8_t *
random_frame (int w, int h, int C, int pad, uint64_t seed)
{
  int stride = w * C + pad;
  uint8_t *f = g_malloc ((size_t) stride * h);
  memset (f, 0xEE, (size_t) stride * h);
  for (int y = 0; y < h; y++)
    for (int k = 0; k < w * C; k++)
      f[(size_t) y * stride + k] = (uint8_t) (simclr_rng_u64 (seed, y, k) >> 56);
  return f;
}

/* A smooth-ish photo stand-in: gradients plus a few random blobs, so the
 * colour ops see varied hues and saturations. */
static uint8_t *
smooth_frame (int w, int h, int C, uint64_t seed)
{
  uint8_t *f = g_malloc ((size_t) w * h * C);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < C; c++) {
        double v = 128 + 100 * sin (0.11 * x * (c + 1) + 0.07 * y + seed)
            * cos (0.05 * y * (2 - c % 2));
        v += (double) (simclr_rng_u64 (seed, y * w + x, c) >> 60) - 8;
        f[((size_t) y * w + x) * C + c] = (uint8_t) CLAMP (v, 0, 255);
      }
  return f;
}

static void
identity_params (SimclrAugmentParams * p, int w, int h)
{
  memset (p, 0, sizeof (*p));
  p->crop_w = w;
  p->crop_h = h;
  p->brightness = p->contrast = p->saturation = 1.0;
  for (int i = 0; i < 4; i++)
    p->order[i] = (SimclrJitterOp) i;
  p->blur_kernel = 3;
  p->blur_sigma = 1.0;
}

static SimclrAugmenter *
new_augmenter (int size)
{
  SimclrAugmentConfig cfg;
  SimclrError err = { 0 };
  simclr_augment_config_default (&cfg);
  cfg.size = size;
  SimclrAugmenter *a = simclr_augmenter_new (&cfg, &err);
  if (a == NULL)
    g_error ("augmenter_new: %s", err.message);
  return a;
}

/* Applies @p to a packed (w, h, C) frame; returns a (size, size, C) image. */
static uint8_t *
run (SimclrAugmenter * a, const SimclrAugmentParams * p, const uint8_t * src,
    int w, int h, int C, int size)
{
  SimclrError err = { 0 };
  uint8_t *out = g_malloc ((size_t) size * size * C);
  SimclrStatus st = simclr_augmenter_apply (a, p, src, w, h, w * C, C, out,
      size * C, &err);
  if (st != SIMCLR_OK)
    g_error ("apply: %s", err.message);
  return out;
}

/* Fails with the first differing element if |a - b| > tol anywhere. */
static void
assert_close (const uint8_t * a, const uint8_t * b, size_t n, int tol,
    const char *what)
{
  for (size_t k = 0; k < n; k++) {
    if (abs ((int) a[k] - (int) b[k]) > tol) {
      g_test_message ("%s: first mismatch at %zu: %d vs %d (tol %d)", what,
          k, a[k], b[k], tol);
      g_test_fail ();
      return;
    }
  }
}

/* ---- configuration and errors ---- */

static void
test_config (void)
{
  SimclrAugmentConfig cfg;
  SimclrError err = { 0 };
  simclr_augment_config_default (&cfg);
  g_assert_cmpint (simclr_augment_config_validate (&cfg, &err), ==, SIMCLR_OK);
  g_assert_cmpint (cfg.size, ==, 32);
  g_assert_cmpfloat (cfg.crop_scale_min, ==, 0.08);
  g_assert_cmpfloat (cfg.jitter_probability, ==, 0.8);

  SimclrAugmentConfig c;
  c = cfg;
  c.size = 0;
  g_assert_cmpint (simclr_augment_config_validate (&c, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "size"));
  c = cfg;
  c.crop_scale_min = 0.9;
  c.crop_scale_max = 0.5;
  g_assert_cmpint (simclr_augment_config_validate (&c, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "scale"));
  c = cfg;
  c.crop_ratio_min = 0.0;
  g_assert_cmpint (simclr_augment_config_validate (&c, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  c = cfg;
  c.flip_probability = 1.5;
  g_assert_cmpint (simclr_augment_config_validate (&c, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "flip"));
  c = cfg;
  c.blur_probability = NAN;
  g_assert_cmpint (simclr_augment_config_validate (&c, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  c = cfg;
  c.jitter_strength = 3.0;
  g_assert_cmpint (simclr_augment_config_validate (&c, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  c = cfg;
  c.blur_sigma_min = 0.0;
  g_assert_cmpint (simclr_augment_config_validate (&c, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_null (simclr_augmenter_new (&c, &err));
  g_assert_nonnull (strstr (err.message, "sigma"));
  simclr_augmenter_free (NULL);
}

static void
test_apply_errors (void)
{
  SimclrAugmenter *a = new_augmenter (8);
  SimclrError err = { 0 };
  uint8_t src[16 * 16 * 3] = { 0 }, dst[8 * 8 * 3];
  SimclrAugmentParams p;
  identity_params (&p, 16, 16);

  g_assert_cmpint (simclr_augmenter_apply (a, &p, src, 16, 16, 48, 2, dst, 24,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_augmenter_apply (a, &p, src, 16, 16, 40, 3, dst, 24,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_augmenter_apply (a, &p, src, 16, 16, 48, 3, dst, 20,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  p.crop_x = 1;
  g_assert_cmpint (simclr_augmenter_apply (a, &p, src, 16, 16, 48, 3, dst, 24,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "crop"));
  identity_params (&p, 16, 16);
  p.blur = 1;
  p.blur_kernel = 4;
  g_assert_cmpint (simclr_augmenter_apply (a, &p, src, 16, 16, 48, 3, dst, 24,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  identity_params (&p, 16, 16);
  p.jitter = 1;
  p.hue = 0.7;
  g_assert_cmpint (simclr_augmenter_apply (a, &p, src, 16, 16, 48, 3, dst, 24,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  identity_params (&p, 16, 16);
  g_assert_cmpint (simclr_augmenter_apply (a, &p, src, 16, 16, 48, 3, dst, 24,
          &err), ==, SIMCLR_OK);
  simclr_augmenter_free (a);
}

/* ---- exact properties ---- */

static void
test_identity_crop (gconstpointer data)
{
  const int C = GPOINTER_TO_INT (data);
  const int n = 37, pad = 5;
  SimclrAugmenter *a = new_augmenter (n);
  uint8_t *src = random_frame (n, n, C, pad, 1);
  uint8_t *packed = g_malloc ((size_t) n * n * C);
  for (int y = 0; y < n; y++)
    memcpy (packed + (size_t) y * n * C, src + (size_t) y * (n * C + pad),
        (size_t) n * C);
  SimclrAugmentParams p;
  identity_params (&p, n, n);
  /* Output with padding too: the bytes past size * C stay untouched. */
  int dst_stride = n * C + 3;
  uint8_t *dst = g_malloc ((size_t) dst_stride * n);
  memset (dst, 0x5A, (size_t) dst_stride * n);
  SimclrError err = { 0 };
  g_assert_cmpint (simclr_augmenter_apply (a, &p, src, n, n, n * C + pad, C,
          dst, dst_stride, &err), ==, SIMCLR_OK);
  for (int y = 0; y < n; y++) {
    assert_close (dst + (size_t) y * dst_stride, packed + (size_t) y * n * C,
        (size_t) n * C, 0, "whole-frame crop at the same size");
    for (int k = n * C; k < dst_stride; k++)
      g_assert_cmpint (dst[(size_t) y * dst_stride + k], ==, 0x5A);
  }
  g_free (dst);
  g_free (packed);
  g_free (src);
  simclr_augmenter_free (a);
}

static void
test_flip (gconstpointer data)
{
  const int C = GPOINTER_TO_INT (data);
  const int n = 24;
  SimclrAugmenter *a = new_augmenter (n);
  uint8_t *src = random_frame (n, n, C, 0, 2);
  SimclrAugmentParams p;
  identity_params (&p, n, n);
  p.flip = 1;
  uint8_t *once = run (a, &p, src, n, n, C, n);
  for (int y = 0; y < n; y++)
    for (int x = 0; x < n; x++)
      for (int c = 0; c < C; c++)
        g_assert_cmpint (once[((size_t) y * n + x) * C + c], ==,
            src[((size_t) y * n + (n - 1 - x)) * C + c]);
  uint8_t *twice = run (a, &p, once, n, n, C, n);
  assert_close (twice, src, (size_t) n * n * C, 0, "flip twice");
  g_free (twice);
  g_free (once);
  g_free (src);
  simclr_augmenter_free (a);
}

static void
test_jitter_identity (gconstpointer data)
{
  const int C = GPOINTER_TO_INT (data);
  const int n = 32;
  SimclrAugmenter *a = new_augmenter (n);
  uint8_t *src = smooth_frame (n, n, C, 3);
  SimclrAugmentParams p;
  identity_params (&p, n, n);
  p.jitter = 1;
  uint8_t *out = run (a, &p, src, n, n, C, n);
  assert_close (out, src, (size_t) n * n * C, 0, "factors 1, 1, 1, hue 0");
  g_free (out);

  /* Through the arithmetic rather than the shortcut: factors a hair from 1
   * (not representable in float32, as torchvision sees them) and a hue
   * shift of 1e-7, far below a grey level. */
  p.brightness = 1.0 + 1e-12;
  p.contrast = 1.0 - 1e-12;
  p.saturation = 1.0 + 1e-12;
  out = run (a, &p, src, n, n, C, n);
  assert_close (out, src, (size_t) n * n * C, 0, "factors 1 +- 1e-12");
  g_free (out);
  if (C == 3) {
    identity_params (&p, n, n);
    p.jitter = 1;
    p.hue = 1e-7;
    out = run (a, &p, src, n, n, C, n);
    /* The float32 HSV round trip truncates: at most one level lost. */
    int maxd = 0;
    for (size_t k = 0; k < (size_t) n * n * C; k++)
      maxd = MAX (maxd, abs ((int) out[k] - (int) src[k]));
    g_test_message ("hue 1e-7: max |diff| %d", maxd);
    g_assert_cmpint (maxd, <=, 1);
    g_free (out);
  }
  g_free (src);
  simclr_augmenter_free (a);
}

static void
test_jitter_effects (void)
{
  /* Brightness 0 is black, contrast 0 is the flat mean grey, saturation 0 is
   * the luma image, brightness 2 doubles (saturating). */
  const int n = 16, C = 3;
  SimclrAugmenter *a = new_augmenter (n);
  uint8_t *src = smooth_frame (n, n, C, 4);
  SimclrAugmentParams p;
  identity_params (&p, n, n);
  p.jitter = 1;
  p.brightness = 0.0;
  uint8_t *out = run (a, &p, src, n, n, C, n);
  for (size_t k = 0; k < (size_t) n * n * C; k++)
    g_assert_cmpint (out[k], ==, 0);
  g_free (out);

  p.brightness = 2.0;
  out = run (a, &p, src, n, n, C, n);
  for (size_t k = 0; k < (size_t) n * n * C; k++)
    g_assert_cmpint (out[k], ==, MIN (255, 2 * src[k]));
  g_free (out);

  identity_params (&p, n, n);
  p.jitter = 1;
  p.contrast = 0.0;
  out = run (a, &p, src, n, n, C, n);
  double mean = 0;
  for (size_t k = 0; k < (size_t) n * n; k++)
    mean += floor (0.2989 * src[3 * k] + 0.587 * src[3 * k + 1]
        + 0.114 * src[3 * k + 2] + 1e-9);
  mean /= n * n;
  for (size_t k = 0; k < (size_t) n * n * C; k++)
    g_assert_cmpint (out[k], ==, (int) mean);
  g_free (out);

  identity_params (&p, n, n);
  p.jitter = 1;
  p.saturation = 0.0;
  uint8_t *gray = run (a, &p, src, n, n, C, n);
  identity_params (&p, n, n);
  p.grayscale = 1;
  uint8_t *gray2 = run (a, &p, src, n, n, C, n);
  assert_close (gray, gray2, (size_t) n * n * C, 0,
      "saturation 0 vs grayscale");
  g_free (gray);
  g_free (gray2);
  g_free (src);
  simclr_augmenter_free (a);
}

static void
test_grayscale (void)
{
  const int n = 20, C = 3;
  SimclrAugmenter *a = new_augmenter (n);
  uint8_t *src = random_frame (n, n, C, 0, 5);
  SimclrAugmentParams p;
  identity_params (&p, n, n);
  p.grayscale = 1;
  uint8_t *out = run (a, &p, src, n, n, C, n);
  for (size_t k = 0; k < (size_t) n * n; k++) {
    g_assert_cmpint (out[3 * k], ==, out[3 * k + 1]);
    g_assert_cmpint (out[3 * k], ==, out[3 * k + 2]);
    /* ITU-R 601 luma in double, truncated; torchvision's float32 0.2989
     * may land one level lower. */
    double l = 0.299 * src[3 * k] + 0.587 * src[3 * k + 1]
        + 0.114 * src[3 * k + 2];
    g_assert_cmpint (abs ((int) out[3 * k] - (int) floor (l)), <=, 1);
  }
  g_free (out);
  g_free (src);
  simclr_augmenter_free (a);
}

static void
test_blur (gconstpointer data)
{
  /* data: channels | side << 8 (sides off the 8-lane grid test the tails) */
  const int C = GPOINTER_TO_INT (data) & 0xff;
  const int n = GPOINTER_TO_INT (data) >> 8;
  SimclrAugmenter *a = new_augmenter (n);
  uint8_t *src = random_frame (n, n, C, 0, 6);
  SimclrAugmentParams p;
  identity_params (&p, n, n);
  p.blur = 1;
  p.blur_kernel = 5;
  p.blur_sigma = 0.1;
  uint8_t *out = run (a, &p, src, n, n, C, n);
  assert_close (out, src, (size_t) n * n * C, 0, "blur sigma 0.1");
  g_free (out);

  /* Sigma 1.5, kernel 7 against a direct 2D convolution in double with
   * reflect padding; float32 rounding may move a .5 by one level. */
  p.blur_sigma = 1.5;
  p.blur_kernel = 7;
  out = run (a, &p, src, n, n, C, n);
  double k1[7], tot = 0;
  for (int t = 0; t < 7; t++)
    tot += k1[t] = exp (-0.5 * pow ((t - 3) / 1.5, 2));
  int maxd = 0;
  for (int y = 0; y < n; y++)
    for (int x = 0; x < n; x++)
      for (int c = 0; c < C; c++) {
        double s = 0;
        for (int u = 0; u < 7; u++)
          for (int v = 0; v < 7; v++) {
            int yy = y + u - 3, xx = x + v - 3;
            yy = yy < 0 ? -yy : (yy >= n ? 2 * n - 2 - yy : yy);
            xx = xx < 0 ? -xx : (xx >= n ? 2 * n - 2 - xx : xx);
            s += k1[u] * k1[v] / (tot * tot) * src[((size_t) yy * n + xx) * C
                + c];
          }
        int d = abs ((int) out[((size_t) y * n + x) * C + c]
            - (int) nearbyint (s));
        if (d > maxd)
          g_test_message ("blur (%d,%d,%d): %d vs %.3f", y, x, c,
              out[((size_t) y * n + x) * C + c], s);
        maxd = MAX (maxd, d);
      }
  g_assert_cmpint (maxd, <=, 1);
  g_free (out);

  /* A kernel wider than the image: reflection keeps going, a flat image
   * stays flat. */
  SimclrAugmenter *small = new_augmenter (2);
  uint8_t flat[2 * 2 * 3];
  memset (flat, 77, sizeof (flat));
  p.blur_kernel = 9;
  p.crop_w = p.crop_h = 2;
  uint8_t *o2 = run (small, &p, flat, 2, 2, C, 2);
  for (int k = 0; k < 4 * C; k++)
    g_assert_cmpint (o2[k], ==, 77);
  g_free (o2);
  simclr_augmenter_free (small);
  g_free (src);
  simclr_augmenter_free (a);
}

static void
test_solarize (void)
{
  const int n = 16, C = 1;
  SimclrAugmenter *a = new_augmenter (n);
  uint8_t *src = random_frame (n, n, C, 0, 7);
  SimclrAugmentParams p;
  identity_params (&p, n, n);
  p.solarize = 1;
  uint8_t *out = run (a, &p, src, n, n, C, n);
  for (int k = 0; k < n * n; k++)
    g_assert_cmpint (out[k], ==, src[k] >= 128 ? 255 - src[k] : src[k]);
  g_free (out);
  g_free (src);
  simclr_augmenter_free (a);
}

/* ---- resize ---- */

/* Direct double-precision antialiased bilinear (PIL / torch antialias rule):
 * m (out_size, in_size), row i holds the normalised triangle weights
 * max (0, 1 - |x + 1/2 - c| / support), c = scale (i + 1/2), support =
 * max (scale, 1). out = My src Mx^T. */
static double *
aa_matrix (int in_size, int out_size)
{
  double *m = g_new0 (double, (size_t) in_size * out_size);
  double scale = (double) in_size / out_size;
  double support = MAX (scale, 1.0);
  for (int i = 0; i < out_size; i++) {
    double center = scale * (i + 0.5), tot = 0;
    for (int x = 0; x < in_size; x++)
      tot += m[(size_t) i * in_size + x] =
          MAX (0.0, 1.0 - fabs ((x + 0.5 - center) / support));
    for (int x = 0; x < in_size; x++)
      m[(size_t) i * in_size + x] /= tot;
  }
  return m;
}

static void
test_resize_reference (gconstpointer data)
{
  const int C = GPOINTER_TO_INT (data);
  const int w = 61, h = 47, size = 19, pad = 3;
  SimclrAugmenter *a = new_augmenter (size);
  uint8_t *src = random_frame (w, h, C, pad, 8);
  const int stride = w * C + pad;
  const int crops[][4] = {
    {0, 0, 61, 47},             /* shrink */
    {10, 5, 9, 13},             /* enlarge */
    {3, 7, 40, 11},             /* shrink in x, enlarge in y */
    {60, 46, 1, 1},             /* one pixel */
  };
  uint8_t *out = g_malloc ((size_t) size * size * C);
  for (size_t ci = 0; ci < G_N_ELEMENTS (crops); ci++) {
    SimclrAugmentParams p;
    identity_params (&p, crops[ci][2], crops[ci][3]);
    p.crop_x = crops[ci][0];
    p.crop_y = crops[ci][1];
    SimclrError err = { 0 };
    g_assert_cmpint (simclr_augmenter_apply (a, &p, src, w, h, stride, C,
            out, size * C, &err), ==, SIMCLR_OK);
    double *my = aa_matrix (p.crop_h, size), *mx = aa_matrix (p.crop_w, size);
    int maxd = 0;
    for (int i = 0; i < size; i++)
      for (int j = 0; j < size; j++)
        for (int c = 0; c < C; c++) {
          double s = 0;
          for (int y = 0; y < p.crop_h; y++) {
            double wy = my[(size_t) i * p.crop_h + y];
            if (wy == 0)
              continue;
            for (int x = 0; x < p.crop_w; x++)
              s += wy * mx[(size_t) j * p.crop_w + x]
                  * src[(size_t) (p.crop_y + y) * stride
                  + (size_t) (p.crop_x + x) * C + c];
          }
          int got = out[((size_t) i * size + j) * C + c];
          int d = abs (got - (int) nearbyint (s));
          if (d > 1)
            g_test_message ("crop %zu (%d,%d,%d): %d vs %.4f", ci, i, j, c,
                got, s);
          maxd = MAX (maxd, d);
        }
    g_free (my);
    g_free (mx);
    g_test_message ("crop %zu: max |diff| vs double reference %d", ci, maxd);
    g_assert_cmpint (maxd, <=, 1);
  }
  g_free (out);
  g_free (src);
  simclr_augmenter_free (a);
}

static void
test_antialias (void)
{
  /* One-pixel stripes and checkerboard on a 768x576 frame, shrunk to 32:
   * an antialiased filter averages to mid-grey; plain bilinear (2 taps)
   * would sample the stripes and alias to 0 / 255 patterns. */
  const int w = 768, h = 576, C = 3, size = 32;
  uint8_t *src = g_malloc ((size_t) w * h * C);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < C; c++)
        src[((size_t) y * w + x) * C + c] = c == 0 ? ((x & 1) ? 255 : 0)
            : c == 1 ? (((x ^ y) & 1) ? 255 : 0) : ((y & 1) ? 255 : 0);
  SimclrAugmenter *a = new_augmenter (size);
  SimclrAugmentParams p;
  identity_params (&p, w, h);
  uint8_t *out = run (a, &p, src, w, h, C, size);
  int lo = 255, hi = 0;
  for (int k = 0; k < size * size * C; k++) {
    lo = MIN (lo, out[k]);
    hi = MAX (hi, out[k]);
  }
  g_test_message ("768x576 stripes -> 32x32: range [%d, %d]", lo, hi);
  g_assert_cmpint (lo, >=, 120);
  g_assert_cmpint (hi, <=, 135);
  g_free (out);
  g_free (src);
  simclr_augmenter_free (a);
}

/* ---- draws ---- */

static void
test_determinism (void)
{
  const int w = 50, h = 40, C = 3, size = 32;
  SimclrAugmenter *a = new_augmenter (size);
  uint8_t *src = smooth_frame (w, h, C, 9);
  uint8_t o1[32 * 32 * 3], o2[32 * 32 * 3], o3[32 * 32 * 3];
  SimclrAugmentParams p1, p2, p3;
  SimclrError err = { 0 };
  int differ_seed = 0, differ_view = 0;
  for (int s = 0; s < 20; s++) {
    g_assert_cmpint (simclr_augmenter_view (a, 100 + s, 7, 0, src, w, h,
            w * C, C, o1, size * C, &p1, &err), ==, SIMCLR_OK);
    /* A second object, another sample in between: same result. */
    SimclrAugmenter *b = new_augmenter (size);
    g_assert_cmpint (simclr_augmenter_view (b, 1, 8, 1, src, w, h, w * C, C,
            o2, size * C, NULL, &err), ==, SIMCLR_OK);
    g_assert_cmpint (simclr_augmenter_view (b, 100 + s, 7, 0, src, w, h,
            w * C, C, o2, size * C, &p2, &err), ==, SIMCLR_OK);
    simclr_augmenter_free (b);
    g_assert_true (memcmp (&p1, &p2, sizeof (p1)) == 0);
    assert_close (o1, o2, sizeof (o1), 0, "same seed, same view");
    g_assert_cmpint (simclr_augmenter_view (a, 200 + s, 7, 0, src, w, h,
            w * C, C, o3, size * C, &p3, &err), ==, SIMCLR_OK);
    differ_seed += memcmp (o1, o3, sizeof (o1)) != 0;
    g_assert_cmpint (simclr_augmenter_view (a, 100 + s, 7, 1, src, w, h,
            w * C, C, o3, size * C, &p3, &err), ==, SIMCLR_OK);
    differ_view += memcmp (o1, o3, sizeof (o1)) != 0;
  }
  g_assert_cmpint (differ_seed, ==, 20);
  g_assert_cmpint (differ_view, ==, 20);
  g_free (src);
  simclr_augmenter_free (a);
}

/* |count - n p| within 4.5 binomial sigmas. */
static void
assert_rate (const char *what, int count, int n, double prob)
{
  double sd = sqrt (n * prob * (1 - prob));
  g_test_message ("%s: %d / %d (expect %.1f +- %.1f)", what, count, n,
      n * prob, 4.5 * sd);
  g_assert_cmpfloat (fabs (count - n * prob), <=, 4.5 * sd + 1e-9);
}

static void
test_draw_statistics (void)
{
  SimclrAugmentConfig cfg;
  simclr_augment_config_default (&cfg);
  cfg.solarize_probability = 0.3;
  const int n = 20000, W = 1000, H = 1000;
  int flips = 0, jitters = 0, grays = 0, blurs = 0, solar = 0;
  int first[4] = { 0 }, area_bins[10] = { 0 };
  double sum_lr = 0, sum_lr2 = 0, sum_pos = 0, amin = 1, amax = 0;
  double sum_b = 0, sum_h = 0, sum_sigma = 0;
  int pos_n = 0;
  for (int i = 0; i < n; i++) {
    SimclrAugmentParams p;
    simclr_augment_draw (&cfg, 42, i, i & 1, W, H, 3, &p);
    g_assert_cmpint (p.crop_x, >=, 0);
    g_assert_cmpint (p.crop_y, >=, 0);
    g_assert_cmpint (p.crop_x + p.crop_w, <=, W);
    g_assert_cmpint (p.crop_y + p.crop_h, <=, H);
    double area = (double) p.crop_w * p.crop_h / (W * H);
    double ratio = (double) p.crop_w / p.crop_h;
    /* Rounding w and h to integers moves area and ratio by < 1% here. */
    g_assert_cmpfloat (area, >=, 0.08 * 0.99);
    g_assert_cmpfloat (area, <=, 1.0);
    g_assert_cmpfloat (ratio, >=, 0.75 * 0.99);
    g_assert_cmpfloat (ratio, <=, 4.0 / 3.0 * 1.01);
    amin = MIN (amin, area);
    amax = MAX (amax, area);
    area_bins[MIN (9, (int) ((area - 0.08) / 0.92 * 10))]++;
    sum_lr += log (ratio);
    sum_lr2 += log (ratio) * log (ratio);
    if (p.crop_w < W) {
      sum_pos += (double) p.crop_x / (W - p.crop_w);
      pos_n++;
    }
    flips += p.flip;
    jitters += p.jitter;
    grays += p.grayscale;
    blurs += p.blur;
    solar += p.solarize;
    if (p.jitter) {
      int seen = 0;
      for (int k = 0; k < 4; k++)
        seen |= 1 << p.order[k];
      g_assert_cmpint (seen, ==, 15);
      first[p.order[0]]++;
      g_assert_cmpfloat (p.brightness, >=, 0.2);
      g_assert_cmpfloat (p.brightness, <=, 1.8);
      g_assert_cmpfloat (p.contrast, >=, 0.2);
      g_assert_cmpfloat (p.saturation, <=, 1.8);
      g_assert_cmpfloat (fabs (p.hue), <=, 0.2);
      sum_b += p.brightness;
      sum_h += p.hue;
    } else {
      g_assert_cmpfloat (p.brightness, ==, 1.0);
      g_assert_cmpfloat (p.hue, ==, 0.0);
    }
    if (p.blur) {
      g_assert_cmpfloat (p.blur_sigma, >=, 0.1);
      g_assert_cmpfloat (p.blur_sigma, <=, 2.0);
      sum_sigma += p.blur_sigma;
    }
    g_assert_cmpint (p.blur_kernel, ==, 3);
  }
  assert_rate ("flip", flips, n, 0.5);
  assert_rate ("jitter", jitters, n, 0.8);
  assert_rate ("grayscale", grays, n, 0.2);
  assert_rate ("blur", blurs, n, 0.5);
  assert_rate ("solarize", solar, n, 0.3);
  for (int k = 0; k < 4; k++)
    assert_rate ("jitter op first", first[k], jitters, 0.25);

  /* On a square frame a ratio and its inverse are equally often rejected,
   * so log-ratio stays symmetric around 0. */
  double l = log (4.0 / 3.0);
  double mlr = sum_lr / n, sdlr = sqrt (sum_lr2 / n - mlr * mlr);
  g_test_message ("log ratio: mean %.4f sd %.4f", mlr, sdlr);
  g_assert_cmpfloat (fabs (mlr), <=, 4.5 * l / sqrt (3) / sqrt (n));
  g_test_message ("area: min %.4f max %.4f", amin, amax);
  g_assert_cmpfloat (amin, <=, 0.085);
  g_assert_cmpfloat (amax, >=, 0.97);
  for (int b = 0; b < 10; b++) {
    g_test_message ("area bin %d: %d", b, area_bins[b]);
    /* Rejected tries (a side longer than the frame) thin the top bins. */
    g_assert_cmpint (area_bins[b], >=, n / 100);
  }
  g_assert_cmpfloat (fabs (sum_pos / pos_n - 0.5), <=,
      4.5 * sqrt (1.0 / 12 / pos_n));
  /* Uniform factors: means 1 and 0, sd 0.8 / sqrt 3 and 0.2 / sqrt 3. */
  g_assert_cmpfloat (fabs (sum_b / jitters - 1.0), <=,
      4.5 * 0.8 / sqrt (3) / sqrt (jitters));
  g_assert_cmpfloat (fabs (sum_h / jitters), <=,
      4.5 * 0.2 / sqrt (3) / sqrt (jitters));
  g_assert_cmpfloat (fabs (sum_sigma / blurs - 1.05), <=,
      4.5 * 1.9 / sqrt (12) / sqrt (blurs));

  /* GRAY8 draws no saturation, hue or grayscale. */
  for (int i = 0; i < 200; i++) {
    SimclrAugmentParams p;
    simclr_augment_draw (&cfg, 1, i, 0, 28, 28, 1, &p);
    g_assert_cmpfloat (p.saturation, ==, 1.0);
    g_assert_cmpfloat (p.hue, ==, 0.0);
    g_assert_cmpint (p.grayscale, ==, 0);
  }

  /* Kernel side follows the output size: 10%, odd, at least 3. */
  const int sizes[][2] = { {28, 3}, {32, 3}, {96, 9}, {224, 23}, {64, 7} };
  for (size_t k = 0; k < G_N_ELEMENTS (sizes); k++) {
    SimclrAugmentParams p;
    cfg.size = sizes[k][0];
    simclr_augment_draw (&cfg, 1, 1, 0, 100, 100, 3, &p);
    g_assert_cmpint (p.blur_kernel, ==, sizes[k][1]);
  }
}

/* Where no try can be rejected (scale <= 1/2 on a square: the longest side
 * is sqrt (0.5 * 4/3) < 1) area and log-ratio are exactly uniform:
 * chi-square over 10 bins each, and the moments. */
static void
test_crop_uniform (void)
{
  SimclrAugmentConfig cfg;
  simclr_augment_config_default (&cfg);
  cfg.crop_scale_min = 0.1;
  cfg.crop_scale_max = 0.5;
  const int n = 20000, W = 2000;
  int abins[10] = { 0 }, rbins[10] = { 0 };
  double l = log (4.0 / 3.0), sum_a = 0, sum_lr = 0, sum_lr2 = 0;
  for (int i = 0; i < n; i++) {
    SimclrAugmentParams p;
    simclr_augment_draw (&cfg, 5, i, 0, W, W, 3, &p);
    double area = (double) p.crop_w * p.crop_h / ((double) W * W);
    double lr = log ((double) p.crop_w / p.crop_h);
    sum_a += area;
    sum_lr += lr;
    sum_lr2 += lr * lr;
    abins[CLAMP ((int) ((area - 0.1) / 0.4 * 10), 0, 9)]++;
    rbins[CLAMP ((int) ((lr + l) / (2 * l) * 10), 0, 9)]++;
  }
  double chi_a = 0, chi_r = 0, e = n / 10.0;
  for (int b = 0; b < 10; b++) {
    chi_a += (abins[b] - e) * (abins[b] - e) / e;
    chi_r += (rbins[b] - e) * (rbins[b] - e) / e;
  }
  double mlr = sum_lr / n, sdlr = sqrt (sum_lr2 / n - mlr * mlr);
  g_test_message ("uniform crops: chi2 area %.1f, log-ratio %.1f (9 dof, "
      "0.999 quantile 27.9); mean area %.4f; log-ratio mean %.4f sd %.4f "
      "(expect %.4f)", chi_a, chi_r, sum_a / n, mlr, sdlr, l / sqrt (3));
  /* Rounding sides to integers (~1e-3 relative at this size) blurs bin
   * edges a little, far below these bounds. */
  g_assert_cmpfloat (chi_a, <, 27.9);
  g_assert_cmpfloat (chi_r, <, 27.9);
  g_assert_cmpfloat (fabs (sum_a / n - 0.3), <=,
      4.5 * 0.4 / sqrt (12) / sqrt (n));
  g_assert_cmpfloat (fabs (mlr), <=, 4.5 * l / sqrt (3) / sqrt (n));
  g_assert_cmpfloat (fabs (sdlr - l / sqrt (3)), <=, 0.005);
}

static void
test_crop_fallback (void)
{
  /* Ratios no square crop can meet with scale 1: every try is rejected and
   * torchvision's centre crop of the clamped ratio is taken. */
  SimclrAugmentConfig cfg;
  simclr_augment_config_default (&cfg);
  cfg.crop_scale_min = cfg.crop_scale_max = 1.0;
  cfg.crop_ratio_min = 2.0;
  cfg.crop_ratio_max = 3.0;
  SimclrAugmentParams p;
  simclr_augment_draw (&cfg, 3, 4, 0, 101, 100, 3, &p);
  g_assert_cmpint (p.crop_w, ==, 101);
  g_assert_cmpint (p.crop_h, ==, 50);   /* round (101 / 2) = 50 (half even) */
  g_assert_cmpint (p.crop_x, ==, 0);
  g_assert_cmpint (p.crop_y, ==, 25);
  cfg.crop_ratio_min = 0.25;
  cfg.crop_ratio_max = 0.5;
  simclr_augment_draw (&cfg, 3, 4, 0, 100, 100, 3, &p);
  g_assert_cmpint (p.crop_h, ==, 100);
  g_assert_cmpint (p.crop_w, ==, 50);
  g_assert_cmpint (p.crop_x, ==, 25);
  g_assert_cmpint (p.crop_y, ==, 0);
  /* A frame within the ratio range: the whole frame. */
  cfg.crop_ratio_min = 0.5;
  cfg.crop_ratio_max = 0.9;
  cfg.crop_scale_min = cfg.crop_scale_max = 1.0;
  simclr_augment_draw (&cfg, 3, 4, 0, 80, 100, 3, &p);
  g_assert_cmpint (p.crop_w * p.crop_h, <=, 8000);
}

/* Odd shapes end to end, every op on: tiny outputs and sources, thin
 * sources, sides off the vector grid, padded strides. Checks status and
 * that the output is a pure function of the inputs (run under the
 * sanitizers in CI, this also checks the memory accesses). */
static void
test_shapes (void)
{
  const int sizes[] = { 1, 2, 3, 7, 9, 17, 33 };
  const int srcs[][2] = { {1, 1}, {1, 50}, {50, 1}, {33, 17}, {200, 3} };
  for (size_t si = 0; si < G_N_ELEMENTS (sizes); si++) {
    SimclrAugmentConfig cfg;
    SimclrError err = { 0 };
    simclr_augment_config_default (&cfg);
    cfg.size = sizes[si];
    cfg.jitter_probability = cfg.blur_probability = 1.0;
    cfg.solarize_probability = cfg.grayscale_probability = 0.5;
    SimclrAugmenter *a = simclr_augmenter_new (&cfg, &err);
    g_assert_nonnull (a);
    for (size_t k = 0; k < G_N_ELEMENTS (srcs); k++)
      for (int C = 1; C <= 3; C += 2) {
        const int w = srcs[k][0], h = srcs[k][1], pad = 3;
        uint8_t *src = random_frame (w, h, C, pad, k);
        const int n = sizes[si] * sizes[si] * C;
        uint8_t *o1 = g_malloc (n), *o2 = g_malloc (n);
        for (int view = 0; view < 4; view++) {
          g_assert_cmpint (simclr_augmenter_view (a, 9, k, view, src, w, h,
                  w * C + pad, C, o1, sizes[si] * C, NULL, &err), ==,
              SIMCLR_OK);
          g_assert_cmpint (simclr_augmenter_view (a, 9, k, view, src, w, h,
                  w * C + pad, C, o2, sizes[si] * C, NULL, &err), ==,
              SIMCLR_OK);
          assert_close (o1, o2, n, 0, "same view twice");
        }
        g_free (o1);
        g_free (o2);
        g_free (src);
      }
    simclr_augmenter_free (a);
  }
}

/* Every CPU level runs its own copy of the hot loops (cpu.c, augment.c):
 * all must give the same bytes. Many drawn views per shape, with every op
 * likely (jitter, blur, grayscale, solarize), shrinking and enlarging
 * crops, GRAY8 and RGB. */
static void
test_levels_bit_identical (void)
{
  static const struct {
    int w, h, C, size;
  } shapes[] = {
    {28, 28, 1, 28}, {32, 32, 3, 32}, {45, 37, 3, 96}, {200, 120, 3, 24},
  };
  SimclrCpuLevel best = simclr_cpu_best_level ();
  if (best == SIMCLR_CPU_GENERIC) {
    g_test_skip ("one level only on this CPU");
    return;
  }
  for (size_t i = 0; i < G_N_ELEMENTS (shapes); i++) {
    const int w = shapes[i].w, h = shapes[i].h, C = shapes[i].C;
    const int size = shapes[i].size;
    SimclrAugmentConfig cfg;
    SimclrError err = { 0 };
    simclr_augment_config_default (&cfg);
    cfg.size = size;
    cfg.jitter_probability = 0.9;
    cfg.grayscale_probability = 0.3;
    cfg.blur_probability = 0.7;
    cfg.solarize_probability = 0.3;
    SimclrAugmenter *a = simclr_augmenter_new (&cfg, &err);
    g_assert_nonnull (a);
    uint8_t *src = smooth_frame (w, h, C, 11 + i);
    size_t n = (size_t) size * size * C;
    uint8_t *ref = g_malloc (n), *got = g_malloc (n);
    for (int v = 0; v < 40; v++) {
      simclr_augmenter_set_cpu_level (a, SIMCLR_CPU_GENERIC);
      g_assert_cmpint (simclr_augmenter_view (a, 5, v, v % 2, src, w, h,
              w * C, C, ref, size * C, NULL, &err), ==, SIMCLR_OK);
      for (int l = 1; l <= (int) best; l++) {
        simclr_augmenter_set_cpu_level (a, (SimclrCpuLevel) l);
        g_assert_cmpint (simclr_augmenter_view (a, 5, v, v % 2, src, w, h,
                w * C, C, got, size * C, NULL, &err), ==, SIMCLR_OK);
        for (size_t k = 0; k < n; k++)
          if (got[k] != ref[k])
            g_error ("%dx%dx%d -> %d, view %d: byte %zu is %d at level %s, "
                "%d at generic", w, h, C, size, v, k, got[k],
                simclr_cpu_level_name ((SimclrCpuLevel) l), ref[k]);
      }
    }
    g_free (ref);
    g_free (got);
    g_free (src);
    simclr_augmenter_free (a);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (cpu_level_unavailable ("augment"))
    return g_test_run ();
  g_test_add_func ("/augment/levels-bit-identical", test_levels_bit_identical);
  g_test_add_func ("/augment/config", test_config);
  g_test_add_func ("/augment/apply-errors", test_apply_errors);
  g_test_add_data_func ("/augment/identity-crop/gray8", GINT_TO_POINTER (1),
      test_identity_crop);
  g_test_add_data_func ("/augment/identity-crop/rgb", GINT_TO_POINTER (3),
      test_identity_crop);
  g_test_add_data_func ("/augment/flip/gray8", GINT_TO_POINTER (1), test_flip);
  g_test_add_data_func ("/augment/flip/rgb", GINT_TO_POINTER (3), test_flip);
  g_test_add_data_func ("/augment/jitter-identity/gray8", GINT_TO_POINTER (1),
      test_jitter_identity);
  g_test_add_data_func ("/augment/jitter-identity/rgb", GINT_TO_POINTER (3),
      test_jitter_identity);
  g_test_add_func ("/augment/jitter-effects", test_jitter_effects);
  g_test_add_func ("/augment/grayscale", test_grayscale);
  g_test_add_data_func ("/augment/blur/gray8-40", GINT_TO_POINTER (1 | 40 << 8),
      test_blur);
  g_test_add_data_func ("/augment/blur/rgb-40", GINT_TO_POINTER (3 | 40 << 8),
      test_blur);
  g_test_add_data_func ("/augment/blur/gray8-37", GINT_TO_POINTER (1 | 37 << 8),
      test_blur);
  g_test_add_data_func ("/augment/blur/rgb-37", GINT_TO_POINTER (3 | 37 << 8),
      test_blur);
  g_test_add_func ("/augment/solarize", test_solarize);
  g_test_add_data_func ("/augment/resize-reference/gray8", GINT_TO_POINTER (1),
      test_resize_reference);
  g_test_add_data_func ("/augment/resize-reference/rgb", GINT_TO_POINTER (3),
      test_resize_reference);
  g_test_add_func ("/augment/antialias", test_antialias);
  g_test_add_func ("/augment/determinism", test_determinism);
  g_test_add_func ("/augment/shapes", test_shapes);
  g_test_add_func ("/augment/draw-statistics", test_draw_statistics);
  g_test_add_func ("/augment/crop-uniform", test_crop_uniform);
  g_test_add_func ("/augment/crop-fallback", test_crop_fallback);
  return g_test_run ();
}
