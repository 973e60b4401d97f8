/* augment.h: SimCLR view augmentations on uint8 RGB / GRAY8 frames.
 *
 * One view is: random resized crop (bilinear, antialiased when shrinking) to
 * size x size, horizontal flip, colour jitter (brightness, contrast,
 * saturation, hue in random order, torchvision semantics), random grayscale
 * (ITU-R 601 luma, channels kept), Gaussian blur (reflect padding) and an
 * optional solarize, in that order, as the SimCLR / torchvision transform.
 * Every random choice is a pure function of (seed, sample id, view, draw)
 * through simclr/rng.h, so results do not depend on threads or call order.
 * This is not a general image library: no other formats, no float output
 * (normalisation to float belongs to the consumer).
 *
 * Thread-safety: simclr_augment_config_* and simclr_augment_draw are pure and
 * reentrant. A SimclrAugmenter holds scratch memory: one object, one thread at
 * a time; distinct objects run concurrently.
 */
#pragma once

#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int size;                                   /* output side, pixels (default 32) */
  double crop_scale_min, crop_scale_max;      /* 0.08, 1.0 (area fraction) */
  double crop_ratio_min, crop_ratio_max;      /* 3/4, 4/3 (w/h, log-uniform) */
  double flip_probability;                    /* 0.5 */
  double jitter_strength;                     /* s = 1.0: brightness 0.8s, contrast 0.8s,
                                                 saturation 0.8s, hue 0.2s */
  double jitter_probability;                  /* 0.8 */
  double grayscale_probability;               /* 0.2 */
  double blur_probability;                    /* 0.5 */
  double blur_sigma_min, blur_sigma_max;      /* 0.1, 2.0 */
  double solarize_probability;                /* 0.0, threshold 128 */
} SimclrAugmentConfig;

/* Fills @cfg with the SimCLR defaults listed beside the fields. */
void simclr_augment_config_default (SimclrAugmentConfig *cfg);

/* Checks ranges: size in [1, 4096], 0 < scale_min <= scale_max <= 1,
 * 0 < ratio_min <= ratio_max, probabilities in [0, 1], strength in [0, 2.5]
 * (the hue range 0.2s must stay within torchvision's [-0.5, 0.5]),
 * 0 < sigma_min <= sigma_max. Returns SIMCLR_OK or
 * SIMCLR_ERROR_INVALID_ARGUMENT with the offending field named in @err. */
SimclrStatus simclr_augment_config_validate (const SimclrAugmentConfig *cfg,
    SimclrError *err);

typedef enum {
  SIMCLR_JITTER_BRIGHTNESS,
  SIMCLR_JITTER_CONTRAST,
  SIMCLR_JITTER_SATURATION,
  SIMCLR_JITTER_HUE
} SimclrJitterOp;

/* What was drawn for one view. */
typedef struct {
  int crop_x, crop_y, crop_w, crop_h;   /* in source pixels */
  int flip;
  int jitter;                           /* colour jitter applied at all */
  double brightness, contrast, saturation, hue;  /* factors (1,1,1,0 = identity) */
  SimclrJitterOp order[4];
  int grayscale;
  int blur;
  double blur_sigma;
  int blur_kernel;                      /* odd kernel side: 10% of size, odd, >= 3 */
  int solarize;
} SimclrAugmentParams;

/* Draws the parameters of one view: a pure function of (@cfg, @seed,
 * @sample_id, @view, @src_w, @src_h, @channels). With @channels == 1 the
 * saturation and hue stay at identity (GRAY8 only gets brightness and
 * contrast) and grayscale is 0. @cfg must be valid; @params is caller-owned. */
void simclr_augment_draw (const SimclrAugmentConfig *cfg, uint64_t seed,
    uint64_t sample_id, int view, int src_w, int src_h, int channels,
    SimclrAugmentParams *params);

/* Scratch-holding worker: one per thread. */
typedef struct SimclrAugmenter SimclrAugmenter;

/* Returns a new augmenter for a copy of @cfg (free with
 * simclr_augmenter_free), or NULL with @err set if @cfg is invalid or memory
 * runs out. */
SimclrAugmenter *simclr_augmenter_new (const SimclrAugmentConfig *cfg,
    SimclrError *err);

/* Frees @a; NULL is a no-op. */
void simclr_augmenter_free (SimclrAugmenter *a);

/* Applies @params exactly (tests use hand-made params).
 * src: h rows of @stride bytes, w * channels used; channels 1 (GRAY8) or 3
 * (RGB). dst: size rows of @dst_stride bytes (size from the config), size *
 * channels used. The crop rectangle must lie inside the source.
 * Returns SIMCLR_OK or SIMCLR_ERROR_INVALID_ARGUMENT (bad sizes, strides,
 * channels or params) with @err filled. Only the crop region of @src is read. */
SimclrStatus simclr_augmenter_apply (SimclrAugmenter *a,
    const SimclrAugmentParams *params, const uint8_t *src, int w, int h,
    int stride, int channels, uint8_t *dst, int dst_stride, SimclrError *err);

/* simclr_augment_draw + simclr_augmenter_apply; @params_out may be NULL. */
SimclrStatus simclr_augmenter_view (SimclrAugmenter *a, uint64_t seed,
    uint64_t sample_id, int view, const uint8_t *src, int w, int h, int stride,
    int channels, uint8_t *dst, int dst_stride, SimclrAugmentParams *params_out,
    SimclrError *err);

#ifdef __cplusplus
}
#endif
