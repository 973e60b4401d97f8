/* embed.h: one embedding per image, for the embedding applications (search,
 * de-duplication, novelty filtering, maps) and their baselines.
 *
 * A SimclrEmbedder turns uint8 images of any size (RGB or GRAY8, any
 * stride) into rows of floats:
 *   - SIMCLR_EMBED_H / SIMCLR_EMBED_Z: a model's representation h or
 *     projection z in evaluation mode (running batch-norm statistics). Each
 *     image is resized to the model's image_size x image_size (separable
 *     triangle filter, antialiased when shrinking; the aspect ratio is NOT
 *     kept: the whole frame is squeezed into the square, as the encoder's
 *     `videoscale` caps do without borders) and converted to the model's
 *     channels (RGB to gray by ITU-R 601 luma; gray to RGB by copying), then
 *     scaled to [0, 1] as simclrencoder does.
 *   - SIMCLR_EMBED_RAW: the pixel baseline: the resized image (size x size x
 *     channels) / 255 minus its own mean, so cosine similarity is the
 *     Pearson correlation of the two images' pixels.
 *   - SIMCLR_EMBED_AHASH: an average hash: the image in gray at size x size
 *     (8 x 8 by default), +1 where a pixel is above the mean and -1 where not;
 *     the cosine of two hashes is 1 - 2 Hamming / size^2.
 * flip_average = 1 averages the row of an image and of its horizontal mirror,
 * so the embedding is exactly invariant to horizontal flips (for the models
 * the mirror is computed by the same forward batch).
 *
 * Images are pushed one at a time (resized into the embedder's batch) and
 * flushed in batches of up to max_batch, so the model runs batched forwards.
 *
 * Ownership: the model is BORROWED and must outlive the embedder; the
 * embedder never changes its weights or statistics. Thread-safety: one
 * embedder (and its model), one thread at a time.
 */
#pragma once

#include <stdint.h>

#include "simclr/error.h"
#include "simclr/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  SIMCLR_EMBED_H = 0,       /* the model's representation h */
  SIMCLR_EMBED_Z = 1,       /* the model's projection z */
  SIMCLR_EMBED_RAW = 2,     /* centred pixels (baseline) */
  SIMCLR_EMBED_AHASH = 3,   /* average hash (baseline) */
} SimclrEmbedKind;

typedef struct {
  SimclrEmbedKind kind;
  int flip_average;   /* 1: mean of the image's row and its mirror's */
  int size;           /* RAW / AHASH side (0: 32 for RAW, 8 for AHASH);
                       * the models use their image_size */
  int channels;       /* RAW: 1 or 3 (0: 3); AHASH: 1; models: theirs */
  int max_batch;      /* images per flush (1 .. 4096); with a model,
                       * max_batch (x 2 with flip_average) must not exceed
                       * the model's max_batch */
} SimclrEmbedConfig;

/* SIMCLR_EMBED_H, no flip averaging, size 0, channels 0, max_batch 16. */
void simclr_embed_config_default (SimclrEmbedConfig *cfg);

/* "h", "z", "raw", "ahash" and back (-1 for an unknown name). */
const char *simclr_embed_kind_to_string (SimclrEmbedKind kind);
int simclr_embed_kind_from_string (const char *s);

typedef struct SimclrEmbedder SimclrEmbedder;

/* @model: required for H and Z (borrowed), ignored otherwise. NULL with
 * @err set (naming the field) on a bad configuration or no memory. */
SimclrEmbedder *simclr_embedder_new (const SimclrEmbedConfig *cfg,
    SimclrModel *model, SimclrError *err);
void simclr_embedder_free (SimclrEmbedder *e);   /* NULL is a no-op */

int simclr_embedder_dim (const SimclrEmbedder *e);      /* row length */
int simclr_embedder_max_batch (const SimclrEmbedder *e);
int simclr_embedder_pending (const SimclrEmbedder *e);  /* images pushed */

/* Resizes and converts one image into the next batch slot. @src: @h rows of
 * @stride bytes, @w * @channels used, @channels 1 or 3. Fails when the batch
 * is full (flush first) or on bad sizes. */
SimclrStatus simclr_embedder_push (SimclrEmbedder *e, const uint8_t *src,
    int w, int h, int stride, int channels, SimclrError *err);

/* Embeds the pending images into @out (pending, dim), caller-owned, in push
 * order, and empties the batch. No pending image: nothing to do. */
SimclrStatus simclr_embedder_flush (SimclrEmbedder *e, float *out,
    SimclrError *err);

#ifdef __cplusplus
}
#endif
