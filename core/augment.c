/* augment.c: SimCLR view augmentations (see include/simclr/augment.h).
 *
 * The semantics follow torchvision 0.14's tensor path on uint8 images, op by
 * op, including where it truncates and where it rounds: resized_crop
 * (bilinear, antialias=True) and gaussian_blur round half to even, the colour
 * ops (_blend, rgb_to_grayscale, adjust_hue) truncate. Between ops the image
 * holds the integers torchvision's uint8 tensor holds, so chained results
 * match too. The arithmetic is float32 with torchvision's operations in its
 * order, so nearly every pixel matches bit for bit (tests/core/
 * augment-torchvision.py measures it). This is not an image library: RGB /
 * GRAY8 in, the same out, nothing else.
 *
 * Cost: the resize reads only the crop rectangle, in the cheaper pass order;
 * the working image is planar float32 so that every op after the crop is
 * 8-lane vector arithmetic (GCC / Clang vector extensions, also built for
 * AVX2 and picked by the CPU level of cpu.c); identity factors are skipped.
 */
#include "simclr/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/rng.h"
#include "cpu-private.h"

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
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.size", NULL,
        "augment: size %d not in [1, %d]", cfg->size, MAX_SIZE);
  if (!(cfg->crop_scale_min > 0.0 && cfg->crop_scale_min <= cfg->crop_scale_max
          && cfg->crop_scale_max <= 1.0))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.crop_scale_min", "augment.crop_scale_max",
        "augment: crop scale [%g, %g] must satisfy 0 < min <= max <= 1",
        cfg->crop_scale_min, cfg->crop_scale_max);
  if (!(cfg->crop_ratio_min > 0.0 && cfg->crop_ratio_min <= cfg->crop_ratio_max
          && isfinite (cfg->crop_ratio_max)))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.crop_ratio_min", "augment.crop_ratio_max",
        "augment: crop ratio [%g, %g] must satisfy 0 < min <= max < inf",
        cfg->crop_ratio_min, cfg->crop_ratio_max);
  if (!is_probability (cfg->flip_probability))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.flip_probability", NULL,
        "augment: flip probability %g not in [0, 1]", cfg->flip_probability);
  if (!is_probability (cfg->jitter_probability))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.jitter_probability", NULL,
        "augment: jitter probability %g not in [0, 1]",
        cfg->jitter_probability);
  if (!is_probability (cfg->grayscale_probability))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.grayscale_probability", NULL,
        "augment: grayscale probability %g not in [0, 1]",
        cfg->grayscale_probability);
  if (!is_probability (cfg->blur_probability))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.blur_probability", NULL,
        "augment: blur probability %g not in [0, 1]", cfg->blur_probability);
  if (!is_probability (cfg->solarize_probability))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.solarize_probability", NULL,
        "augment: solarize probability %g not in [0, 1]",
        cfg->solarize_probability);
  /* Hue moves by up to 0.2 s and torchvision bounds it to 0.5. */
  if (!(cfg->jitter_strength >= 0.0 && cfg->jitter_strength <= 2.5))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.jitter_strength", NULL,
        "augment: jitter strength %g not in [0, 2.5]", cfg->jitter_strength);
  if (!(cfg->blur_sigma_min > 0.0 && cfg->blur_sigma_min <= cfg->blur_sigma_max
          && isfinite (cfg->blur_sigma_max)))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "augment.blur_sigma_min", "augment.blur_sigma_max",
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

/* The working image is planar float32, (C, size * size), holding the integer
 * values torchvision's uint8 tensor would hold between ops (every op ends
 * in the same truncation or rounding). Planes make every colour op and the
 * blur plain vector arithmetic; bytes are touched once on the way in (the
 * crop) and once on the way out. */

/* Vectors in whatever SIMD the target has (GCC / Clang vector extension,
 * lowered to narrower registers or scalars where needed): 8 float lanes for
 * the planes, and 4 for one RGB pixel plus a spare lane in the resize. */
typedef float vf __attribute__ ((vector_size (32)));
typedef int32_t vi __attribute__ ((vector_size (32)));
typedef float vf_u __attribute__ ((vector_size (32), aligned (4),
        may_alias));
typedef float v4f __attribute__ ((vector_size (16)));
#define VL 8

#define VS(x) ((vf) { (x), (x), (x), (x), (x), (x), (x), (x) })
#define VSI(x) ((vi) { (x), (x), (x), (x), (x), (x), (x), (x) })

/* The hot loops are built twice: they are inlined into two copies of the
 * pipeline (augment_run), one for the baseline target and one for AVX2,
 * where an 8-lane vector fits one register. The augmenter runs the copy of
 * its CPU level (cpu.c: the CPU's best, or the lower one SIMCLR_CPU forces),
 * so the tests exercise both. The arithmetic is the same IEEE float32 (no
 * FMA contraction in ISO C mode), so the results are bit-identical. */
#define HOT static inline __attribute__ ((always_inline))
#if defined(__x86_64__) && defined(__GNUC__)
#define AUGMENT_AVX2 1
#endif

/* The 8-lane helpers are macros: GCC warns that functions passing 32-byte
 * vectors by value have another ABI with and without AVX. Arguments are
 * side-effect free expressions (some are evaluated twice). Loads and stores
 * are unaligned, through a may_alias 4-byte aligned type (as GCC's own
 * __m256_u). */
#define vload(p) (*(const vf_u *) (p))
#define vstore(p, v) (*(vf_u *) (p) = (v))
/* Lane-wise m ? a : b, m from a vector comparison (all ones or zero). */
#define vsel(m, a, b) ((vf) (((m) & (vi) (a)) | (~(m) & (vi) (b))))
#define vmax(a, b) vsel ((a) > (b), (a), (b))
#define vmin(a, b) vsel ((a) < (b), (a), (b))
#define vclamp(x, lo, hi) \
    vsel ((x) < VS (lo), VS (lo), vsel ((x) > VS (hi), VS (hi), (x)))
/* Truncation toward zero, as a float-to-uint8 cast does in [0, 256). */
#define vtrunc(x) \
    __builtin_convertvector (__builtin_convertvector ((x), vi), vf)
/* Round half to even for 0 <= x < 2^22, as torch.round, without a libm
 * call: adding 1.5 * 2^23 leaves no fraction bits, so the FPU's default
 * rounding does the work. Needs strict IEEE evaluation (no -ffast-math). */
#define vround(x) (((x) + VS (12582912.0f)) - VS (12582912.0f))
/* torchvision's rgb_to_grayscale: (0.2989 r + 0.587 g) + 0.114 b in float32
 * (0.2989 rather than 601's 0.299: torchvision's constant, matched here);
 * the caller truncates. */
#define vluma(r, g, b) \
    (VS (0.2989f) * (r) + VS (0.587f) * (g) + VS (0.114f) * (b))

static inline v4f
load4 (const float *p)
{
  v4f v;
  memcpy (&v, p, sizeof (v));
  return v;
}

static inline float
round_f (float x)
{
  return (x + 12582912.0f) - 12582912.0f;
}

static inline float
luma_f (float r, float g, float b)
{
  return 0.2989f * r + 0.587f * g + 0.114f * b;
}

/* Antialiased bilinear weights of one axis. */
typedef struct {
  int in_size, out_size;        /* cache key */
  int taps;                     /* weights per output, the same for all */
  int *start;                   /* (out_size) first input index */
  int *count;                   /* (out_size) scratch: non-zero weights */
  float *w;                     /* (out_size, taps) */
  int cap_out, cap_taps;
} AxisWeights;

struct SimclrAugmenter {
  SimclrAugmentConfig cfg;
  AxisWeights ax, ay;
  size_t plane;                 /* floats per plane: size * size rounded up to VL */
  float *img;                   /* (3, plane) the working image */
  float *fimg;                  /* (plane) blur scratch, one channel at a time */
  float *row;                   /* (crop_w * C + 4) resize: one row, floats */
  size_t row_cap;
  float *tmp;                   /* (C, crop_h, size) resize: horizontal pass */
  size_t tmp_cap;
  float *frow;                  /* (size + 2 r) blur: one padded row */
  size_t frow_cap;
  int *refl;                    /* (size + 2 r) reflected indices */
  size_t refl_cap;
  SimclrCpuLevel level;         /* which copy of the hot loops runs */
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
  a->level = simclr_cpu_level ();
  a->plane = ((size_t) cfg->size * cfg->size + VL - 1) & ~(size_t) (VL - 1);
  a->img = calloc (3 * a->plane, sizeof (float));
  a->fimg = calloc (a->plane, sizeof (float));
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
  free (a->img);
  free (a->fimg);
  free (a->row);
  free (a->tmp);
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

  int used = 1;
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
    if (hi - lo > used)
      used = hi - lo;
  }
  /* Repack every output to exactly `used` taps (2 when enlarging), so the
   * loops run a fixed count: zero weights pad the row, leading ones where
   * the row would run past the input's end. Adding 0 * x changes no sum. */
  for (int i = 0; i < out_size; i++) {
    const int count = ax->count[i];
    const int shift = ax->start[i] + used > in_size ?
        ax->start[i] + used - in_size : 0;
    float *dst = ax->w + (size_t) i * used;
    memmove (dst + shift, ax->w + (size_t) i * taps,
        (size_t) count * sizeof (float));
    for (int t = 0; t < shift; t++)
      dst[t] = 0.0f;
    for (int t = shift + count; t < used; t++)
      dst[t] = 0.0f;
    ax->start[i] -= shift;
  }
  ax->in_size = in_size;
  ax->out_size = out_size;
  ax->taps = used;
  return 1;
}


/* Horizontal resize of one interleaved row at output pixel j.
 * in: (in_w * C) floats plus 4 readable. For C = 3 one 4-lane
 * multiply-add per tap covers the three channels (the fourth lane is
 * ignored). */
static inline v4f
resize_h3 (const AxisWeights * ax, const float *in, int j)
{
  const int n = ax->taps;
  const float *wx = ax->w + (size_t) j * n;
  const float *p = in + (size_t) ax->start[j] * 3;
  if (n == 2)
    return wx[0] * load4 (p) + wx[1] * load4 (p + 3);
  v4f acc = { 0.0f, 0.0f, 0.0f, 0.0f };
  for (int t = 0; t < n; t++)
    acc += wx[t] * load4 (p + 3 * t);
  return acc;
}

static inline float
resize_h1 (const AxisWeights * ax, const float *in, int j)
{
  const int n = ax->taps;
  const float *wx = ax->w + (size_t) j * n;
  const float *p = in + ax->start[j];
  if (n == 2)
    return wx[0] * p[0] + wx[1] * p[1];
  int t = 0;
  float acc = 0.0f;
  if (n >= VL) {
    /* Shrinking a lot: a long contiguous dot product, VL taps at a time. */
    vf v = VS (0.0f);
    for (; t + VL <= n; t += VL)
      v += vload (wx + t) * vload (p + t);
    for (int l = 0; l < VL; l++)
      acc += v[l];
  }
  for (; t < n; t++)
    acc += wx[t] * p[t];
  return acc;
}

typedef uint8_t vu8 __attribute__ ((vector_size (VL)));

/* 8 bytes to 8 floats. */
static inline void
u8_to_float (float *dst, const uint8_t * src, size_t n)
{
  size_t k = 0;
  for (; k + VL <= n; k += VL) {
    vu8 b;
    memcpy (&b, src + k, sizeof (b));
    vstore (dst + k, __builtin_convertvector (__builtin_convertvector (b,
                vi), vf));
  }
  for (; k < n; k++)
    dst[k] = src[k];
}

/* Resized crop + flip into the planes of a->img, rounded half to even as
 * torchvision's resize on uint8.
 * src: (h, stride) bytes; the crop (cx, cy, cw, ch) inside it is all that is
 * read. Separable, horizontal pass first as torchvision: each crop row once
 * to floats and through the horizontal weights into tmp (C, ch, size), then
 * the vertical pass, contiguous vector multiply-adds over tmp rows.
 * (Running the vertical pass first over the wide source rows measured
 * slower here even when shrinking 768x576 to 32: every tap then converts
 * bytes again.) */
HOT SimclrStatus
resize_crop (SimclrAugmenter * a, const uint8_t * src, size_t stride, int C,
    int cx, int cy, int cw, int ch, int flip, SimclrError * err)
{
  const int size = a->cfg.size;
  const AxisWeights *ax = &a->ax, *ay = &a->ay;
  const size_t len = (size_t) cw * C, plane = a->plane;
  const uint8_t *base = src + (size_t) cx * C + (size_t) cy * stride;

  if (!grow ((void **) &a->row, &a->row_cap, len + 4, sizeof (float))
      || !grow ((void **) &a->tmp, &a->tmp_cap, (size_t) C * ch * size,
          sizeof (float)))
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "augment: cannot allocate resize scratch for a %dx%d crop", cw, ch);
  float *row = a->row, *tmp = a->tmp;
  /* resize_h3 reads a fourth lane past the last pixel: keep it finite. */
  memset (row + len, 0, 4 * sizeof (float));

  for (int y = 0; y < ch; y++) {
    u8_to_float (row, base + (size_t) y * stride, len);
    float *t0 = tmp + (size_t) y * size;
    if (C == 3) {
      float *t1 = t0 + (size_t) ch * size, *t2 = t1 + (size_t) ch * size;
      for (int pos = 0; pos < size; pos++) {
        const v4f acc = resize_h3 (ax, row, flip ? size - 1 - pos : pos);
        t0[pos] = acc[0];
        t1[pos] = acc[1];
        t2[pos] = acc[2];
      }
    } else {
      for (int pos = 0; pos < size; pos++)
        t0[pos] = resize_h1 (ax, row, flip ? size - 1 - pos : pos);
    }
  }

  const int ny = ay->taps;
  for (int c = 0; c < C; c++) {
    for (int i = 0; i < size; i++) {
      const float *wy = ay->w + (size_t) i * ny;
      const float *r0 = tmp + ((size_t) c * ch + ay->start[i]) * size;
      float *out = a->img + c * plane + (size_t) i * size;
      int m = 0;
      for (; m + VL <= size; m += VL) {
        vf acc = VS (0.0f);
        for (int t = 0; t < ny; t++)
          acc += wy[t] * vload (r0 + (size_t) t * size + m);
        vstore (out + m, vround (acc));
      }
      for (; m < size; m++) {
        float acc = 0.0f;
        for (int t = 0; t < ny; t++)
          acc += wy[t] * r0[(size_t) t * size + m];
        out[m] = round_f (acc);
      }
    }
  }
  return SIMCLR_OK;
}

/* _blend (img, other, ratio) = clamp (ratio img + (1 - ratio) other, 0, 255)
 * truncated, with other a constant (0 for brightness, the mean luma for
 * contrast): offset = (float) (1 - ratio) * other. x: (n), n % VL == 0. */
HOT void
blend_const (float *x, size_t n, double ratio, float offset)
{
  const vf rf = VS ((float) ratio), of = VS (offset);
  for (size_t m = 0; m < n; m += VL)
    vstore (x + m, vtrunc (vclamp (rf * vload (x + m) + of, 0.0f, 255.0f)));
}

/* Mean of the truncated luma (RGB) or of the values (GRAY8), as
 * torchvision's adjust_contrast takes it. Sums are exact integers. */
HOT float
mean_gray (const float *img, size_t plane, size_t npix, int C)
{
  vi acc = VSI (0);
  uint64_t sum = 0;
  size_t k = 0;
  const size_t nv = npix & ~(size_t) (VL - 1);
  /* int32 lanes: at most 255 * npix / VL < 2^31 for size <= 4096. */
  if (C == 3) {
    const float *r = img, *g = img + plane, *b = img + 2 * plane;
    for (; k < nv; k += VL)
      acc += __builtin_convertvector (vluma (vload (r + k), vload (g + k),
              vload (b + k)), vi);
    for (; k < npix; k++)
      sum += (uint64_t) luma_f (r[k], g[k], b[k]);
  } else {
    for (; k < nv; k += VL)
      acc += __builtin_convertvector (vload (img + k), vi);
    for (; k < npix; k++)
      sum += (uint64_t) img[k];
  }
  for (int l = 0; l < VL; l++)
    sum += (uint64_t) acc[l];
  return (float) ((double) sum / (double) npix);
}

/* Blends each pixel with its own truncated luma. */
HOT void
adjust_saturation (float *img, size_t plane, double factor)
{
  const vf rf = VS ((float) factor), of = VS ((float) (1.0 - factor));
  float *r = img, *g = img + plane, *b = img + 2 * plane;
  for (size_t m = 0; m < plane; m += VL) {
    const vf vr = vload (r + m), vg = vload (g + m), vb = vload (b + m);
    const vf gl = of * vtrunc (vluma (vr, vg, vb));
    vstore (r + m, vtrunc (vclamp (rf * vr + gl, 0.0f, 255.0f)));
    vstore (g + m, vtrunc (vclamp (rf * vg + gl, 0.0f, 255.0f)));
    vstore (b + m, vtrunc (vclamp (rf * vb + gl, 0.0f, 255.0f)));
  }
}

/* torchvision's _rgb2hsv / _hsv2rgb in float32 with the same operations in
 * the same order (the divisions included), branch-free with masks as
 * torchvision itself is, so the results match. */
HOT void
adjust_hue (float *img, size_t plane, double hue)
{
  const vf one = VS (1.0f), zero = VS (0.0f), hf = VS ((float) hue);
  float *pr = img, *pg = img + plane, *pb = img + 2 * plane;
  for (size_t k = 0; k < plane; k += VL) {
    const vf r = vload (pr + k) / VS (255.0f),
        g = vload (pg + k) / VS (255.0f), b = vload (pb + k) / VS (255.0f);
    const vf maxc = vmax (r, vmax (g, b)), minc = vmin (r, vmin (g, b));
    const vi eqc = maxc == minc;
    const vf cr = maxc - minc;
    /* Grey pixels divide by 1 instead, as torchvision does. */
    const vf s = cr / vsel (eqc, one, maxc);
    const vf crd = vsel (eqc, one, cr);
    const vf rc = (maxc - r) / crd, gc = (maxc - g) / crd,
        bc = (maxc - b) / crd;
    const vi isr = maxc == r, isg = (maxc == g) & ~isr;
    vf h = vsel (isr, bc - gc, vsel (isg, (VS (2.0f) + rc) - bc,
            (VS (4.0f) + gc) - rc));
    /* fmod (h / 6 + 1, 1), the argument in [5/6, 11/6): one exact step. */
    vf x = h / VS (6.0f) + one;
    x = vsel (x >= one, x - one, x);
    /* (x + hue) % 1.0 (torch.remainder), x + hue in [-0.5, 1.5). */
    h = x + hf;
    h = vsel (h < zero, h + one, vsel (h >= one, h - one, h));

    const vf h6 = h * VS (6.0f);
    vi i = __builtin_convertvector (h6, vi);  /* h6 >= 0: floor */
    const vf f = h6 - __builtin_convertvector (i, vf);
    i = i & ~(i == VSI (6));    /* i % 6 for i in [0, 6] */
    const vf v = maxc;
    const vf p = vclamp (v * (one - s), 0.0f, 1.0f);
    const vf q = vclamp (v * (one - s * f), 0.0f, 1.0f);
    const vf t = vclamp (v * (one - s * (one - f)), 0.0f, 1.0f);
    const vi i0 = i == VSI (0), i1 = i == VSI (1), i2 = i == VSI (2),
        i3 = i == VSI (3), i4 = i == VSI (4), i5 = i == VSI (5);
    /* torchvision's a1 = (v, q, p, p, t, v), a2 = (t, v, v, q, p, p),
     * a3 = (p, p, t, v, v, q) indexed by i. */
    const vf ro = vsel (i0 | i5, v, vsel (i1, q, vsel (i4, t, p)));
    const vf go = vsel (i1 | i2, v, vsel (i0, t, vsel (i3, q, p)));
    const vf bo = vsel (i3 | i4, v, vsel (i2, t, vsel (i5, q, p)));
    vstore (pr + k, vtrunc (ro * VS (255.0f)));
    vstore (pg + k, vtrunc (go * VS (255.0f)));
    vstore (pb + k, vtrunc (bo * VS (255.0f)));
  }
}

HOT void
to_grayscale (float *img, size_t plane)
{
  float *r = img, *g = img + plane, *b = img + 2 * plane;
  for (size_t m = 0; m < plane; m += VL) {
    const vf l = vtrunc (vluma (vload (r + m), vload (g + m),
            vload (b + m)));
    vstore (r + m, l);
    vstore (g + m, l);
    vstore (b + m, l);
  }
}

HOT void
solarize (float *img, size_t n)
{
  for (size_t m = 0; m < n; m += VL) {
    const vf x = vload (img + m);
    vstore (img + m, vsel (x >= VS ((float) SOLARIZE_THRESHOLD),
            VS (255.0f) - x, x));
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
 * Done per plane, separably, folding the symmetric taps (torchvision
 * convolves with the 2D outer product: the same up to float rounding). */
HOT SimclrStatus
gaussian_blur (SimclrAugmenter * a, int C, int ksize, double sigma,
    SimclrError * err)
{
  const int size = a->cfg.size;
  const int r = ksize / 2;
  const int padded = size + 2 * r;
  float kern[ksize];
  const float *rows[ksize];

  if (!grow ((void **) &a->frow, &a->frow_cap, (size_t) padded,
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
  const float kc = kern[r];

  int *refl = a->refl;
  for (int i = 0; i < padded; i++)
    refl[i] = reflect (i - r, size);

  float *pr = a->frow, *fimg = a->fimg;
  for (int c = 0; c < C; c++) {
    float *img = a->img + c * a->plane;
    /* Horizontal: the row into the middle of a padded row, reflected
     * borders, then contiguous multiply-adds. */
    for (int y = 0; y < size; y++) {
      const float *in = img + (size_t) y * size;
      memcpy (pr + r, in, (size_t) size * sizeof (float));
      for (int i = 0; i < r; i++) {
        pr[i] = in[refl[i]];
        pr[padded - 1 - i] = in[refl[padded - 1 - i]];
      }
      float *o = fimg + (size_t) y * size;
      int m = 0;
      for (; m + VL <= size; m += VL) {
        vf acc = kc * vload (pr + r + m);
        for (int t = 0; t < r; t++)
          acc += kern[t] * (vload (pr + m + t) + vload (pr + m + 2 * r - t));
        vstore (o + m, acc);
      }
      for (; m < size; m++) {
        float acc = kc * pr[r + m];
        for (int t = 0; t < r; t++)
          acc += kern[t] * (pr[m + t] + pr[m + 2 * r - t]);
        o[m] = acc;
      }
    }
    /* Vertical: rows y - r .. y + r (reflected), folded pairwise, rounded.
     * A convex combination of [0, 255] values needs no clamping. */
    for (int y = 0; y < size; y++) {
      for (int t = 0; t < ksize; t++)
        rows[t] = fimg + (size_t) refl[y + t] * size;
      float *out = img + (size_t) y * size;
      int m = 0;
      for (; m + VL <= size; m += VL) {
        vf acc = kc * vload (rows[r] + m);
        for (int t = 0; t < r; t++)
          acc += kern[t] * (vload (rows[t] + m)
              + vload (rows[2 * r - t] + m));
        vstore (out + m, vround (acc));
      }
      for (; m < size; m++) {
        float acc = kc * rows[r][m];
        for (int t = 0; t < r; t++)
          acc += kern[t] * (rows[t][m] + rows[2 * r - t][m]);
        out[m] = round_f (acc);
      }
    }
  }
  return SIMCLR_OK;
}

/* Planes (integer values in [0, 255]) to interleaved bytes. */
HOT void
write_out (const SimclrAugmenter * a, int C, uint8_t * dst, int dst_stride)
{
  const int size = a->cfg.size;
  const size_t plane = a->plane;
  for (int y = 0; y < size; y++) {
    uint8_t *d = dst + (size_t) y * dst_stride;
    const float *r = a->img + (size_t) y * size;
    int x = 0;
    if (C == 3) {
      const float *g = r + plane, *b = r + 2 * plane;
      for (; x + VL <= size; x += VL) {
        const vi vr = __builtin_convertvector (vload (r + x), vi),
            vg = __builtin_convertvector (vload (g + x), vi),
            vb = __builtin_convertvector (vload (b + x), vi);
        uint8_t *o = d + 3 * x;
        for (int l = 0; l < VL; l++) {
          o[3 * l] = (uint8_t) vr[l];
          o[3 * l + 1] = (uint8_t) vg[l];
          o[3 * l + 2] = (uint8_t) vb[l];
        }
      }
      for (; x < size; x++) {
        d[3 * x] = (uint8_t) r[x];
        d[3 * x + 1] = (uint8_t) g[x];
        d[3 * x + 2] = (uint8_t) b[x];
      }
    } else {
      for (; x + VL <= size; x += VL) {
        const vi v = __builtin_convertvector (vload (r + x), vi);
        for (int l = 0; l < VL; l++)
          d[x + l] = (uint8_t) v[l];
      }
      for (; x < size; x++)
        d[x] = (uint8_t) r[x];
    }
  }
}

/* The pipeline after the checks: resized crop, colour jitter, grayscale,
 * blur, solarize, bytes out. Inlined into one copy per target below. */
HOT SimclrStatus
augment_run (SimclrAugmenter * a, const SimclrAugmentParams * p,
    const uint8_t * src, int stride, int C, uint8_t * dst, int dst_stride,
    SimclrError * err)
{
  const int size = a->cfg.size;
  SimclrStatus st = resize_crop (a, src, (size_t) stride, C, p->crop_x,
      p->crop_y, p->crop_w, p->crop_h, p->flip, err);
  if (st != SIMCLR_OK)
    return st;

  const size_t npix = (size_t) size * size, plane = a->plane;
  float *img = a->img;
  /* Identity factors are skipped: exact, where torchvision's hue 0 would
   * lose a level in its float round trip. */
  if (p->jitter) {
    for (int i = 0; i < 4; i++) {
      switch (p->order[i]) {
        case SIMCLR_JITTER_BRIGHTNESS:
          if (p->brightness != 1.0)
            blend_const (img, C * plane, p->brightness, 0.0f);
          break;
        case SIMCLR_JITTER_CONTRAST:
          if (p->contrast != 1.0) {
            float mean = mean_gray (img, plane, npix, C);
            blend_const (img, C * plane, p->contrast,
                (float) (1.0 - p->contrast) * mean);
          }
          break;
        case SIMCLR_JITTER_SATURATION:
          if (C == 3 && p->saturation != 1.0)
            adjust_saturation (img, plane, p->saturation);
          break;
        case SIMCLR_JITTER_HUE:
          if (C == 3 && p->hue != 0.0)
            adjust_hue (img, plane, p->hue);
          break;
      }
    }
  }
  if (p->grayscale && C == 3)
    to_grayscale (img, plane);
  if (p->blur && p->blur_kernel > 1) {
    st = gaussian_blur (a, C, p->blur_kernel, p->blur_sigma, err);
    if (st != SIMCLR_OK)
      return st;
  }
  if (p->solarize)
    solarize (img, C * plane);

  write_out (a, C, dst, dst_stride);
  return SIMCLR_OK;
}

static SimclrStatus
augment_run_generic (SimclrAugmenter * a, const SimclrAugmentParams * p,
    const uint8_t * src, int stride, int C, uint8_t * dst, int dst_stride,
    SimclrError * err)
{
  return augment_run (a, p, src, stride, C, dst, dst_stride, err);
}

#ifdef AUGMENT_AVX2
__attribute__ ((target ("avx2"))) static SimclrStatus
augment_run_avx2 (SimclrAugmenter * a, const SimclrAugmentParams * p,
    const uint8_t * src, int stride, int C, uint8_t * dst, int dst_stride,
    SimclrError * err)
{
  return augment_run (a, p, src, stride, C, dst, dst_stride, err);
}
#else
#define augment_run_avx2 augment_run_generic
#endif

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
      || !axis_weights (&a->ay, p->crop_h, size)) {
    /* A half-built table must not be taken for a cached one. */
    a->ax.in_size = a->ay.in_size = 0;
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "augment: cannot allocate resize weights for a %dx%d crop",
        p->crop_w, p->crop_h);
  }
  return a->level >= SIMCLR_CPU_AVX2 ?
      augment_run_avx2 (a, p, src, stride, C, dst, dst_stride, err) :
      augment_run_generic (a, p, src, stride, C, dst, dst_stride, err);
}

void
simclr_augmenter_set_cpu_level (SimclrAugmenter * a, SimclrCpuLevel level)
{
  SimclrCpuLevel best = simclr_cpu_best_level ();
  a->level = level < best ? level : best;
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
