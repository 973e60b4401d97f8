/* augment.c: SimCLR view augmentations (see include/simclr/augment.h).
 *
 * The semantics follow torchvision 0.14's tensor path on uint8 images, op by
 * op, including where it truncates and where it rounds: resized_crop
 * (bilinear, antialias=True) and gaussian_blur round half to even, the colour
 * ops (_blend, rgb_to_grayscale, adjust_hue) truncate. Between ops the image
 * is uint8 as in torchvision, so chained results match too. The arithmetic is
 * float32 where torchvision's is, so most pixels match bit for bit.
 * This is not an image library: RGB / GRAY8 in, the same out, nothing else.
 *
 * Cost: the resize reads only the crop rectangle; brightness and contrast
 * are 256-entry tables; blur and resize are separable with contiguous inner
 * loops the compiler can vectorise.
 */
#include "simclr/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/rng.h"

/* Draw indices within the (sample id, view) stream: each decision owns its
 * index, so changing one probability never shifts the others' numbers. */
enum {
  DRAW_CROP = 0,                /* 4 per try (area, ratio, y, x), 10 tries */
  DRAW_FLIP = 40,
  DRAW_JITTER = 41,
  DRAW_BRIGHTNESS = 42,
  DRAW_CONTRAST = 43,
  DRAW_SATURATION = 44,
  DRAW_HUE = 45,
  DRAW_ORDER = 46,              /* 3 draws of a Fisher-Yates shuffle */
  DRAW_GRAYSCALE = 50,
  DRAW_BLUR = 51,
  DRAW_SIGMA = 52,
  DRAW_SOLARIZE = 53,
};

#define CROP_TRIES 10
#define MAX_SIZE 4096
#define SOLARIZE_THRESHOLD 128

void
simclr_augment_config_default (SimclrAugmentConfig * cfg)
{
  cfg->size = 32;
  cfg->crop_scale_min = 0.08;
  cfg->crop_scale_max = 1.0;
  cfg->crop_ratio_min = 3.0 / 4.0;
  cfg->crop_ratio_max = 4.0 / 3.0;
  cfg->flip_probability = 0.5;
  cfg->jitter_strength = 1.0;
  cfg->jitter_probability = 0.8;
  cfg->grayscale_probability = 0.2;
  cfg->blur_probability = 0.5;
  cfg->blur_sigma_min = 0.1;
  cfg->blur_sigma_max = 2.0;
  cfg->solarize_probability = 0.0;
}

static int
is_probability (double p)
{
  return p >= 0.0 && p <= 1.0;  /* false for NaN */
}

SimclrStatus
simclr_augment_config_validate (const SimclrAugmentConfig * cfg,
    SimclrError * err)
{
  if (cfg == NULL)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: config is NULL");
  if (cfg->size < 1 || cfg->size > MAX_SIZE)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: size %d not in [1, %d]", cfg->size, MAX_SIZE);
  if (!(cfg->crop_scale_min > 0.0 && cfg->crop_scale_min <= cfg->crop_scale_max
          && cfg->crop_scale_max <= 1.0))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: crop scale [%g, %g] must satisfy 0 < min <= max <= 1",
        cfg->crop_scale_min, cfg->crop_scale_max);
  if (!(cfg->crop_ratio_min > 0.0 && cfg->crop_ratio_min <= cfg->crop_ratio_max
          && isfinite (cfg->crop_ratio_max)))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: crop ratio [%g, %g] must satisfy 0 < min <= max < inf",
        cfg->crop_ratio_min, cfg->crop_ratio_max);
  if (!is_probability (cfg->flip_probability))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: flip probability %g not in [0, 1]", cfg->flip_probability);
  if (!is_probability (cfg->jitter_probability))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: jitter probability %g not in [0, 1]",
        cfg->jitter_probability);
  if (!is_probability (cfg->grayscale_probability))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: grayscale probability %g not in [0, 1]",
        cfg->grayscale_probability);
  if (!is_probability (cfg->blur_probability))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: blur probability %g not in [0, 1]", cfg->blur_probability);
  if (!is_probability (cfg->solarize_probability))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: solarize probability %g not in [0, 1]",
        cfg->solarize_probability);
  /* Hue moves by up to 0.2 s and torchvision bounds it to 0.5. */
  if (!(cfg->jitter_strength >= 0.0 && cfg->jitter_strength <= 2.5))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: jitter strength %g not in [0, 2.5]", cfg->jitter_strength);
  if (!(cfg->blur_sigma_min > 0.0 && cfg->blur_sigma_min <= cfg->blur_sigma_max
          && isfinite (cfg->blur_sigma_max)))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: blur sigma [%g, %g] must satisfy 0 < min <= max < inf",
        cfg->blur_sigma_min, cfg->blur_sigma_max);
  return SIMCLR_OK;
}

/* SimCLR's kernel: 10% of the image side, made odd, at least 3. */
static int
blur_kernel_for_size (int size)
{
  int k = (int) (0.1 * size);
  if (k % 2 == 0)
    k++;
  return k < 3 ? 3 : k;
}

/* RandomResizedCrop.get_params of torchvision 0.14 with our generator.
 * Python's round() is half to even, as nearbyint in the default mode. */
static void
draw_crop (const SimclrAugmentConfig * cfg, uint64_t seed, uint64_t stream,
    int width, int height, SimclrAugmentParams * p)
{
  double area = (double) width * height;
  double lr0 = log (cfg->crop_ratio_min), lr1 = log (cfg->crop_ratio_max);

  for (int t = 0; t < CROP_TRIES; t++) {
    uint64_t d = DRAW_CROP + 4 * t;
    double u_area = simclr_rng_uniform_double (seed, stream, d);
    double u_ratio = simclr_rng_uniform_double (seed, stream, d + 1);
    double target = area * (cfg->crop_scale_min
        + (cfg->crop_scale_max - cfg->crop_scale_min) * u_area);
    double ratio = exp (lr0 + (lr1 - lr0) * u_ratio);
    double wf = nearbyint (sqrt (target * ratio));
    double hf = nearbyint (sqrt (target / ratio));

    if (wf > 0 && wf <= width && hf > 0 && hf <= height) {
      int w = (int) wf, h = (int) hf;
      p->crop_y = (int) simclr_rng_below (seed, stream, d + 2,
          (uint32_t) (height - h + 1));
      p->crop_x = (int) simclr_rng_below (seed, stream, d + 3,
          (uint32_t) (width - w + 1));
      p->crop_w = w;
      p->crop_h = h;
      return;
    }
  }

  /* Fallback: the central crop of the image clamped to the ratio range. */
  double in_ratio = (double) width / (double) height;
  int w, h;
  if (in_ratio < cfg->crop_ratio_min) {
    w = width;
    h = (int) nearbyint (w / cfg->crop_ratio_min);
  } else if (in_ratio > cfg->crop_ratio_max) {
    h = height;
    w = (int) nearbyint (h * cfg->crop_ratio_max);
  } else {
    w = width;
    h = height;
  }
  /* Rounding cannot exceed the frame (the ratio bound keeps h <= height),
   * but keep the rectangle valid for degenerate ratios anyway. */
  if (w < 1)
    w = 1;
  if (h < 1)
    h = 1;
  if (w > width)
    w = width;
  if (h > height)
    h = height;
  p->crop_w = w;
  p->crop_h = h;
  p->crop_y = (height - h) / 2;
  p->crop_x = (width - w) / 2;
}

void
simclr_augment_draw (const SimclrAugmentConfig * cfg, uint64_t seed,
    uint64_t sample_id, int view, int src_w, int src_h, int channels,
    SimclrAugmentParams * p)
{
  uint64_t stream = simclr_rng_stream2 (sample_id, (uint64_t) view);

  memset (p, 0, sizeof (*p));
  draw_crop (cfg, seed, stream, src_w, src_h, p);

  p->flip = simclr_rng_uniform_double (seed, stream, DRAW_FLIP)
      < cfg->flip_probability;

  p->brightness = p->contrast = p->saturation = 1.0;
  p->hue = 0.0;
  for (int i = 0; i < 4; i++)
    p->order[i] = (SimclrJitterOp) i;
  p->jitter = simclr_rng_uniform_double (seed, stream, DRAW_JITTER)
      < cfg->jitter_probability;
  if (p->jitter) {
    double s = cfg->jitter_strength;
    double lo = fmax (0.0, 1.0 - 0.8 * s), hi = 1.0 + 0.8 * s;
    p->brightness = lo + (hi - lo)
        * simclr_rng_uniform_double (seed, stream, DRAW_BRIGHTNESS);
    p->contrast = lo + (hi - lo)
        * simclr_rng_uniform_double (seed, stream, DRAW_CONTRAST);
    if (channels == 3) {
      p->saturation = lo + (hi - lo)
          * simclr_rng_uniform_double (seed, stream, DRAW_SATURATION);
      p->hue = 0.2 * s
          * (2.0 * simclr_rng_uniform_double (seed, stream, DRAW_HUE) - 1.0);
    }
    /* Fisher-Yates: a uniform permutation, like torch.randperm (4). */
    for (int i = 3; i > 0; i--) {
      int j = (int) simclr_rng_below (seed, stream, DRAW_ORDER + 3 - i,
          (uint32_t) (i + 1));
      SimclrJitterOp tmp = p->order[i];
      p->order[i] = p->order[j];
      p->order[j] = tmp;
    }
  }

  p->grayscale = channels == 3
      && simclr_rng_uniform_double (seed, stream, DRAW_GRAYSCALE)
      < cfg->grayscale_probability;

  p->blur_kernel = blur_kernel_for_size (cfg->size);
  p->blur = simclr_rng_uniform_double (seed, stream, DRAW_BLUR)
      < cfg->blur_probability;
  p->blur_sigma = 0.0;
  if (p->blur)
    p->blur_sigma = cfg->blur_sigma_min + (cfg->blur_sigma_max
        - cfg->blur_sigma_min) * simclr_rng_uniform_double (seed, stream,
        DRAW_SIGMA);

  p->solarize = simclr_rng_uniform_double (seed, stream, DRAW_SOLARIZE)
      < cfg->solarize_probability;
}

/* ------------------------------------------------------------------------ */
/* The worker */

/* Antialiased bilinear weights of one axis. */
typedef struct {
  int in_size, out_size;        /* cache key */
  int taps;                     /* weights per output */
  int *start;                   /* (out_size) first input index */
  int *count;                   /* (out_size) used weights */
  float *w;                     /* (out_size, taps) */
  int cap_out, cap_taps;
} AxisWeights;

struct SimclrAugmenter {
  SimclrAugmentConfig cfg;
  AxisWeights ax, ay;
  float *row;                   /* (crop_w * C) vertical resize pass */
  size_t row_cap;
  uint8_t *img;                 /* (size, size, C) working image */
  float *fimg;                  /* (size, size, C) blur horizontal pass */
  float *frow;                  /* ((size + 2 r) * C) padded blur row */
  size_t frow_cap;
  int *refl;                    /* (size + 2 r) reflected indices */
  size_t refl_cap;
};

SimclrAugmenter *
simclr_augmenter_new (const SimclrAugmentConfig * cfg, SimclrError * err)
{
  if (simclr_augment_config_validate (cfg, err) != SIMCLR_OK)
    return NULL;
  SimclrAugmenter *a = calloc (1, sizeof (*a));
  if (a == NULL)
    goto no_memory;
  a->cfg = *cfg;
  size_t n = (size_t) cfg->size * cfg->size * 3;
  a->img = malloc (n);
  a->fimg = malloc (n * sizeof (float));
  if (a->img == NULL || a->fimg == NULL)
    goto no_memory;
  return a;

  /* ERRORS */
no_memory:
  simclr_augmenter_free (a);
  simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
      "augment: cannot allocate scratch for size %d", cfg->size);
  return NULL;
}

static void
axis_free (AxisWeights * ax)
{
  free (ax->start);
  free (ax->count);
  free (ax->w);
}

void
simclr_augmenter_free (SimclrAugmenter * a)
{
  if (a == NULL)
    return;
  axis_free (&a->ax);
  axis_free (&a->ay);
  free (a->row);
  free (a->img);
  free (a->fimg);
  free (a->frow);
  free (a->refl);
  free (a);
}

/* Grows *buf to hold n elements of elem bytes. Returns 0 on failure. */
static int
grow (void **buf, size_t * cap, size_t n, size_t elem)
{
  if (n <= *cap)
    return 1;
  void *p = realloc (*buf, n * elem);
  if (p == NULL)
    return 0;
  *buf = p;
  *cap = n;
  return 1;
}

static double
triangle (double x)
{
  x = fabs (x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* PyTorch's antialiased bilinear rule (upsample_bilinear2d_aa, which
 * torchvision's resize(antialias=True) calls, and PIL's ImagingResample):
 * output i is centred at scale (i + 1/2) in input coordinates; the triangle
 * filter is stretched by the shrink factor when shrinking (support = scale),
 * plain bilinear when enlarging (support 1), clipped at the borders and
 * renormalised, which at the borders equals clamping the coordinate. */
static int
axis_weights (AxisWeights * ax, int in_size, int out_size)
{
  if (ax->in_size == in_size && ax->out_size == out_size)
    return 1;
  double scale = (double) in_size / out_size;
  double support = scale >= 1.0 ? scale : 1.0;
  double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  int taps = (int) ceil (support) * 2 + 1;

  if (out_size > ax->cap_out) {
    int *s = realloc (ax->start, out_size * sizeof (int));
    if (s == NULL)
      return 0;
    ax->start = s;
    int *c = realloc (ax->count, out_size * sizeof (int));
    if (c == NULL)
      return 0;
    ax->count = c;
    ax->cap_out = out_size;
    ax->cap_taps = 0;           /* w must be regrown for the new out_size */
  }
  if ((size_t) out_size * taps > (size_t) ax->cap_taps) {
    float *w = realloc (ax->w, (size_t) out_size * taps * sizeof (float));
    if (w == NULL)
      return 0;
    ax->w = w;
    ax->cap_taps = out_size * taps;
  }

  for (int i = 0; i < out_size; i++) {
    double center = scale * (i + 0.5);
    /* (int) truncates toward zero, as PyTorch's static_cast<int64_t>. */
    int xmin = (int) (center - support + 0.5);
    if (xmin < 0)
      xmin = 0;
    int xmax = (int) (center + support + 0.5);
    if (xmax > in_size)
      xmax = in_size;
    int n = xmax - xmin;
    float *w = ax->w + (size_t) i * taps;
    double total = 0.0;
    for (int j = 0; j < n; j++)
      total += triangle ((j + xmin - center + 0.5) * invscale);
    for (int j = 0; j < n; j++)
      w[j] = total != 0.0 ?
          (float) (triangle ((j + xmin - center + 0.5) * invscale) / total) :
          0.0f;
    /* Drop zero weights at the ends: less work, same sum. */
    int lo = 0, hi = n;
    while (lo < hi && w[lo] == 0.0f)
      lo++;
    while (hi > lo && w[hi - 1] == 0.0f)
      hi--;
    if (lo > 0)
      memmove (w, w + lo, (size_t) (hi - lo) * sizeof (float));
    ax->start[i] = xmin + lo;
    ax->count[i] = hi - lo;
  }
  ax->in_size = in_size;
  ax->out_size = out_size;
  ax->taps = taps;
  return 1;
}

/* Round half to even for 0 <= x < 2^22, as torch.round, without a libm
 * call: adding 1.5 * 2^23 leaves no fraction bits, so the FPU's default
 * rounding does the work. Needs strict IEEE evaluation (no -ffast-math). */
static inline uint8_t
round_u8 (float x)
{
  float r = (x + 12582912.0f) - 12582912.0f;
  return (uint8_t) r;
}

/* Resized crop + flip.
 * src: (h, stride) bytes, crop (cx, cy, cw, ch) inside; out: (size, size, C)
 * Vertical pass per output row into row (cw * C floats, only the rows under
 * the filter are read), then the horizontal pass writes the row, mirrored
 * if flip. */
static void
resize_crop (SimclrAugmenter * a, const uint8_t * src, size_t stride, int C,
    int cx, int cy, int cw, int flip)
{
  const int size = a->cfg.size;
  const AxisWeights *ax = &a->ax, *ay = &a->ay;
  const int len = cw * C;
  float *row = a->row;
  const uint8_t *base = src + (size_t) cx * C;

  for (int i = 0; i < size; i++) {
    const float *wy = ay->w + (size_t) i * ay->taps;
    const uint8_t *r0 = base + (size_t) (cy + ay->start[i]) * stride;
    const int ny = ay->count[i];
    {
      const float w0 = wy[0];
      for (int k = 0; k < len; k++)
        row[k] = w0 * r0[k];
    }
    for (int t = 1; t < ny; t++) {
      const uint8_t *rt = r0 + (size_t) t * stride;
      const float wt = wy[t];
      for (int k = 0; k < len; k++)
        row[k] += wt * rt[k];
    }

    uint8_t *out = a->img + (size_t) i * size * C;
    if (C == 3) {
      for (int j = 0; j < size; j++) {
        const float *wx = ax->w + (size_t) j * ax->taps;
        const float *p = row + (size_t) ax->start[j] * 3;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f;
        for (int t = 0; t < ax->count[j]; t++) {
          s0 += wx[t] * p[3 * t];
          s1 += wx[t] * p[3 * t + 1];
          s2 += wx[t] * p[3 * t + 2];
        }
        uint8_t *o = out + (size_t) (flip ? size - 1 - j : j) * 3;
        o[0] = round_u8 (s0);
        o[1] = round_u8 (s1);
        o[2] = round_u8 (s2);
      }
    } else {
      for (int j = 0; j < size; j++) {
        const float *wx = ax->w + (size_t) j * ax->taps;
        const float *p = row + ax->start[j];
        float s0 = 0.0f;
        for (int t = 0; t < ax->count[j]; t++)
          s0 += wx[t] * p[t];
        out[flip ? size - 1 - j : j] = round_u8 (s0);
      }
    }
  }
}

/* torchvision's rgb_to_grayscale on uint8: float32 products, truncation.
 * (0.2989 rather than 601's 0.299: torchvision's constant, matched here.) */
static inline uint8_t
luma (uint8_t r, uint8_t g, uint8_t b)
{
  float l = 0.2989f * (float) r + 0.587f * (float) g + 0.114f * (float) b;
  return (uint8_t) l;
}

/* _blend (img1, img2, ratio) = clamp (ratio img1 + (1 - ratio) img2, 0, 255),
 * truncated, with img2 a constant: a table over the 256 values. */
static void
blend_lut (uint8_t lut[256], double ratio, float other)
{
  const float rf = (float) ratio;
  const float of = (float) (1.0 - ratio) * other;
  for (int v = 0; v < 256; v++) {
    float x = rf * (float) v + of;
    x = x < 0.0f ? 0.0f : (x > 255.0f ? 255.0f : x);
    lut[v] = (uint8_t) x;
  }
}

static void
apply_lut (uint8_t * img, size_t n, const uint8_t lut[256])
{
  for (size_t k = 0; k < n; k++)
    img[k] = lut[img[k]];
}

static void
adjust_brightness (uint8_t * img, size_t n, double factor)
{
  uint8_t lut[256];
  blend_lut (lut, factor, 0.0f);
  apply_lut (img, n, lut);
}

/* Blends with the mean of the grayscale image (itself truncated to uint8,
 * as torchvision computes it). */
static void
adjust_contrast (uint8_t * img, size_t npix, int C, double factor)
{
  uint64_t sum = 0;
  if (C == 3) {
    for (size_t k = 0; k < npix; k++)
      sum += luma (img[3 * k], img[3 * k + 1], img[3 * k + 2]);
  } else {
    for (size_t k = 0; k < npix; k++)
      sum += img[k];
  }
  float mean = (float) ((double) sum / (double) npix);
  uint8_t lut[256];
  blend_lut (lut, factor, mean);
  apply_lut (img, npix * C, lut);
}

/* Blends each pixel with its own (truncated) luma. */
static void
adjust_saturation (uint8_t * img, size_t npix, double factor)
{
  float fv[256], fg[256];
  const float rf = (float) factor, of = (float) (1.0 - factor);
  for (int v = 0; v < 256; v++) {
    fv[v] = rf * (float) v;
    fg[v] = of * (float) v;
  }
  for (size_t k = 0; k < npix; k++) {
    uint8_t *p = img + 3 * k;
    const float g = fg[luma (p[0], p[1], p[2])];
    for (int c = 0; c < 3; c++) {
      float x = fv[p[c]] + g;
      x = x < 0.0f ? 0.0f : (x > 255.0f ? 255.0f : x);
      p[c] = (uint8_t) x;
    }
  }
}

static inline float
clamp01 (float x)
{
  return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}

/* torchvision's _rgb2hsv / _hsv2rgb in float32, per pixel. */
static void
adjust_hue (uint8_t * img, size_t npix, double hue)
{
  const float hf = (float) hue;
  for (size_t k = 0; k < npix; k++) {
    uint8_t *px = img + 3 * k;
    const float r = px[0] / 255.0f, g = px[1] / 255.0f, b = px[2] / 255.0f;
    const float maxc = fmaxf (r, fmaxf (g, b));
    const float minc = fminf (r, fminf (g, b));
    const float cr = maxc - minc;
    /* Grey (cr = 0): torchvision divides by 1 instead, giving s = h = 0. */
    const float sdiv = cr == 0.0f ? 1.0f : maxc;
    const float cdiv = cr == 0.0f ? 1.0f : cr;
    const float s = cr / sdiv;
    const float rc = (maxc - r) / cdiv, gc = (maxc - g) / cdiv,
        bc = (maxc - b) / cdiv;
    float h;
    if (maxc == r)
      h = bc - gc;
    else if (maxc == g)
      h = 2.0f + rc - bc;
    else
      h = 4.0f + gc - rc;
    h = fmodf (h / 6.0f + 1.0f, 1.0f);
    /* (h + hue) % 1.0 is torch.remainder: floor-based, result in [0, 1]. */
    h = h + hf;
    h = h - floorf (h);

    const float h6 = h * 6.0f;
    const float fi = floorf (h6);
    const float f = h6 - fi;
    const float v = maxc;
    const float p = clamp01 (v * (1.0f - s));
    const float q = clamp01 (v * (1.0f - s * f));
    const float t = clamp01 (v * (1.0f - s * (1.0f - f)));
    float ro, go, bo;
    switch (((int) fi) % 6) {
      case 0:
        ro = v, go = t, bo = p;
        break;
      case 1:
        ro = q, go = v, bo = p;
        break;
      case 2:
        ro = p, go = v, bo = t;
        break;
      case 3:
        ro = p, go = q, bo = v;
        break;
      case 4:
        ro = t, go = p, bo = v;
        break;
      default:
        ro = v, go = p, bo = q;
        break;
    }
    px[0] = (uint8_t) (ro * 255.0f);
    px[1] = (uint8_t) (go * 255.0f);
    px[2] = (uint8_t) (bo * 255.0f);
  }
}

static void
to_grayscale (uint8_t * img, size_t npix)
{
  for (size_t k = 0; k < npix; k++) {
    uint8_t *p = img + 3 * k;
    p[0] = p[1] = p[2] = luma (p[0], p[1], p[2]);
  }
}

/* 'reflect' padding (edge not repeated), valid for any overhang. */
static int
reflect (int i, int n)
{
  if (n == 1)
    return 0;
  int period = 2 * (n - 1);
  i %= period;
  if (i < 0)
    i += period;
  return i < n ? i : period - i;
}

/* torchvision's gaussian_blur: a float32 kernel exp (-x^2 / 2 sigma^2) on
 * linspace (-(k-1)/2, (k-1)/2), normalised; reflect padding; rounding.
 * Done separably (torchvision convolves with the 2D outer product: the same
 * up to float rounding).
 * img: (size, size, C) in place; fimg: (size, size, C) scratch. */
static SimclrStatus
gaussian_blur (SimclrAugmenter * a, int C, int ksize, double sigma,
    SimclrError * err)
{
  const int size = a->cfg.size;
  const int r = ksize / 2;
  const int padded = size + 2 * r;
  const size_t rowlen = (size_t) size * C;
  float kern[ksize];
  float *fimg = a->fimg;

  if (!grow ((void **) &a->frow, &a->frow_cap, (size_t) padded * C,
          sizeof (float))
      || !grow ((void **) &a->refl, &a->refl_cap, (size_t) padded,
          sizeof (int)))
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "augment: cannot allocate blur scratch for kernel %d", ksize);

  const float sf = (float) sigma;
  float total = 0.0f;
  for (int t = 0; t < ksize; t++) {
    float x = (float) (t - r);
    float z = x / sf;
    kern[t] = expf (-0.5f * (z * z));
    total += kern[t];
  }
  for (int t = 0; t < ksize; t++)
    kern[t] /= total;

  int *refl = a->refl;
  for (int i = 0; i < padded; i++)
    refl[i] = reflect (i - r, size);

  /* Horizontal: padded float row, then contiguous multiply-adds over x*C+c. */
  float *pr = a->frow;
  for (int y = 0; y < size; y++) {
    const uint8_t *in = a->img + (size_t) y * rowlen;
    for (int i = 0; i < padded; i++)
      for (int c = 0; c < C; c++)
        pr[(size_t) i * C + c] = in[(size_t) refl[i] * C + c];
    float *o = fimg + (size_t) y * rowlen;
    const float k0 = kern[0];
    for (size_t m = 0; m < rowlen; m++)
      o[m] = k0 * pr[m];
    for (int t = 1; t < ksize; t++) {
      const float kt = kern[t];
      const float *pt = pr + (size_t) t * C;
      for (size_t m = 0; m < rowlen; m++)
        o[m] += kt * pt[m];
    }
  }

  /* Vertical: accumulate the reflected rows into the padded row buffer. */
  float *acc = a->frow;
  for (int y = 0; y < size; y++) {
    const float *r0 = fimg + (size_t) refl[y] * rowlen;
    const float k0 = kern[0];
    for (size_t m = 0; m < rowlen; m++)
      acc[m] = k0 * r0[m];
    for (int t = 1; t < ksize; t++) {
      const float kt = kern[t];
      const float *rt = fimg + (size_t) refl[y + t] * rowlen;
      for (size_t m = 0; m < rowlen; m++)
        acc[m] += kt * rt[m];
    }
    uint8_t *out = a->img + (size_t) y * rowlen;
    for (size_t m = 0; m < rowlen; m++) {
      float v = acc[m];
      v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
      out[m] = round_u8 (v);
    }
  }
  return SIMCLR_OK;
}

static SimclrStatus
check_params (const SimclrAugmentParams * p, int w, int h, SimclrError * err)
{
  if (p->crop_w < 1 || p->crop_h < 1 || p->crop_x < 0 || p->crop_y < 0
      || p->crop_w > w - p->crop_x || p->crop_h > h - p->crop_y)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: crop %dx%d+%d+%d outside the %dx%d source",
        p->crop_w, p->crop_h, p->crop_x, p->crop_y, w, h);
  if (p->jitter) {
    if (!(p->brightness >= 0.0 && p->contrast >= 0.0 && p->saturation >= 0.0
            && isfinite (p->brightness) && isfinite (p->contrast)
            && isfinite (p->saturation)))
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "augment: jitter factors (%g, %g, %g) must be finite and >= 0",
          p->brightness, p->contrast, p->saturation);
    if (!(p->hue >= -0.5 && p->hue <= 0.5))
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "augment: hue %g not in [-0.5, 0.5]", p->hue);
    for (int i = 0; i < 4; i++)
      if ((int) p->order[i] < 0 || (int) p->order[i] > 3)
        return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
            "augment: jitter order[%d] = %d not an op", i, (int) p->order[i]);
  }
  if (p->blur) {
    if (p->blur_kernel < 1 || p->blur_kernel % 2 == 0
        || p->blur_kernel > 2 * MAX_SIZE + 1)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "augment: blur kernel %d must be odd and positive", p->blur_kernel);
    if (!(p->blur_sigma > 0.0 && isfinite (p->blur_sigma)))
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "augment: blur sigma %g must be finite and > 0", p->blur_sigma);
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_augmenter_apply (SimclrAugmenter * a, const SimclrAugmentParams * p,
    const uint8_t * src, int w, int h, int stride, int channels,
    uint8_t * dst, int dst_stride, SimclrError * err)
{
  if (a == NULL || p == NULL || src == NULL || dst == NULL)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: NULL augmenter, params or buffer");
  if (channels != 1 && channels != 3)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: %d channels (want 1 or 3)", channels);
  if (w < 1 || h < 1 || stride < w * channels)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: source %dx%d with stride %d (channels %d)", w, h, stride,
        channels);
  const int size = a->cfg.size, C = channels;
  if (dst_stride < size * C)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: destination stride %d < %d", dst_stride, size * C);
  SimclrStatus st = check_params (p, w, h, err);
  if (st != SIMCLR_OK)
    return st;

  if (!axis_weights (&a->ax, p->crop_w, size)
      || !axis_weights (&a->ay, p->crop_h, size)
      || !grow ((void **) &a->row, &a->row_cap, (size_t) p->crop_w * C,
          sizeof (float))) {
    /* A half-built table must not be taken for a cached one. */
    a->ax.in_size = a->ay.in_size = 0;
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "augment: cannot allocate resize scratch for a %dx%d crop",
        p->crop_w, p->crop_h);
  }

  resize_crop (a, src, (size_t) stride, C, p->crop_x, p->crop_y, p->crop_w,
      p->flip);

  const size_t npix = (size_t) size * size;
  uint8_t *img = a->img;
  if (p->jitter) {
    for (int i = 0; i < 4; i++) {
      switch (p->order[i]) {
        case SIMCLR_JITTER_BRIGHTNESS:
          if (p->brightness != 1.0)
            adjust_brightness (img, npix * C, p->brightness);
          break;
        case SIMCLR_JITTER_CONTRAST:
          if (p->contrast != 1.0)
            adjust_contrast (img, npix, C, p->contrast);
          break;
        case SIMCLR_JITTER_SATURATION:
          if (C == 3 && p->saturation != 1.0)
            adjust_saturation (img, npix, p->saturation);
          break;
        case SIMCLR_JITTER_HUE:
          if (C == 3 && p->hue != 0.0)
            adjust_hue (img, npix, p->hue);
          break;
      }
    }
  }
  if (p->grayscale && C == 3)
    to_grayscale (img, npix);
  if (p->blur && p->blur_kernel > 1) {
    st = gaussian_blur (a, C, p->blur_kernel, p->blur_sigma, err);
    if (st != SIMCLR_OK)
      return st;
  }
  if (p->solarize) {
    for (size_t k = 0; k < npix * C; k++)
      if (img[k] >= SOLARIZE_THRESHOLD)
        img[k] = 255 - img[k];
  }

  for (int y = 0; y < size; y++)
    memcpy (dst + (size_t) y * dst_stride, img + (size_t) y * size * C,
        (size_t) size * C);
  return SIMCLR_OK;
}

SimclrStatus
simclr_augmenter_view (SimclrAugmenter * a, uint64_t seed, uint64_t sample_id,
    int view, const uint8_t * src, int w, int h, int stride, int channels,
    uint8_t * dst, int dst_stride, SimclrAugmentParams * params_out,
    SimclrError * err)
{
  SimclrAugmentParams p;
  if (a == NULL)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: NULL augmenter");
  if (w < 1 || h < 1 || (channels != 1 && channels != 3))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment: source %dx%d with %d channels", w, h, channels);
  simclr_augment_draw (&a->cfg, seed, sample_id, view, w, h, channels, &p);
  if (params_out != NULL)
    *params_out = p;
  return simclr_augmenter_apply (a, &p, src, w, h, stride, channels, dst,
      dst_stride, err);
}
