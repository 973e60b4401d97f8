/* novelty.h: keeps the frames of a stream whose embedding is new.
 *
 * A SimclrNovelty remembers the unit embeddings of the last `memory` frames
 * it kept (a window: the oldest is forgotten first, so memory stays bounded
 * however long the stream). Each offered embedding gets a score, its highest
 * cosine similarity to the remembered ones (-1 while nothing is remembered),
 * computed exactly (one sgemv over the window). The frame is kept when
 *   - keep_ratio == 0: score < threshold (threshold in [-1, 1]; 1 keeps
 *     every frame that is not an exact repeat of a remembered direction);
 *   - keep_ratio r in (0, 1]: score <= t, where the threshold t follows the
 *     stream (a stochastic quantile tracker, Robbins-Monro): it starts at
 *     the first score (the second frame's) and after every frame moves by ratio_rate x (r - kept), down when a
 *     frame was kept, up when not. t stays within [-1 - rate, 1 + rate], so
 *     over T frames the fraction kept is r + (t_0 - t_T) / (ratio_rate T):
 *     within 2 / (ratio_rate T) of r whatever the scores do (a scene
 *     change, a memory filling up), and much closer when t settles. The
 *     first frame is always kept.
 * A kept frame's embedding enters the memory.
 *
 * Thread-safety: one object, one thread at a time.
 */
#pragma once

#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int dim;              /* embedding length (1 .. 65536) */
  int memory;           /* kept embeddings remembered (1 .. 1000000; 100) */
  double threshold;     /* cosine similarity in [-1, 1] (0.9) */
  double keep_ratio;    /* 0 (use threshold) or (0, 1] */
  double ratio_rate;    /* keep-ratio threshold step (0 < rate <= 1; 0.01) */
} SimclrNoveltyConfig;

/* dim 0 (must be set), memory 100, threshold 0.9, keep_ratio 0,
 * ratio_rate 0.01. */
void simclr_novelty_config_default (SimclrNoveltyConfig *cfg);

/* SIMCLR_ERROR_INVALID_ARGUMENT naming the field ("threshold", ...). */
SimclrStatus simclr_novelty_config_validate (const SimclrNoveltyConfig *cfg,
    SimclrError *err);

typedef struct SimclrNovelty SimclrNovelty;

SimclrNovelty *simclr_novelty_new (const SimclrNoveltyConfig *cfg,
    SimclrError *err);
void simclr_novelty_free (SimclrNovelty *n);   /* NULL is a no-op */

/* Scores @embedding (dim floats, any length; not changed), decides, and
 * remembers it if kept. @score and @keep receive the outcome. A non-finite
 * value is SIMCLR_ERROR_NUMERIC (nothing changes). */
SimclrStatus simclr_novelty_offer (SimclrNovelty *n, const float *embedding,
    double *score, int *keep, SimclrError *err);

int64_t simclr_novelty_offered (const SimclrNovelty *n);
int64_t simclr_novelty_kept (const SimclrNovelty *n);
/* The threshold of the last decision (the quantile in keep-ratio mode). */
double simclr_novelty_last_threshold (const SimclrNovelty *n);

#ifdef __cplusplus
}
#endif
