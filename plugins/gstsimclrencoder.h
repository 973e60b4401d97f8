/* gstsimclrencoder.h: the simclrencoder element (SimCLR encoder training and
 * embedding). The model, optimiser and checkpoints live in libsimclr. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* What the element does with its input. */
typedef enum {
  GST_SIMCLR_ENCODER_MODE_TRAIN = 0,   /* pairs of views -> batches, learns */
  GST_SIMCLR_ENCODER_MODE_EMBED = 1,   /* frames -> embeddings of a checkpoint */
} GstSimclrEncoderMode;

/* Which vector embed mode emits. */
typedef enum {
  GST_SIMCLR_ENCODER_OUTPUT_REPRESENTATION = 0,  /* h: the pooled encoder output */
  GST_SIMCLR_ENCODER_OUTPUT_PROJECTION = 1,      /* z: after the projection head */
} GstSimclrEncoderOutput;

/* Stem of a new model; auto picks cifar for frames of 64 pixels or less. */
typedef enum {
  GST_SIMCLR_ENCODER_STEM_AUTO = 0,
  GST_SIMCLR_ENCODER_STEM_CIFAR = 1,
  GST_SIMCLR_ENCODER_STEM_IMAGENET = 2,
  GST_SIMCLR_ENCODER_STEM_STRIDE2 = 3,
} GstSimclrEncoderStem;

/* Replay mode: what a sample that would overwrite one never trained on
 * does (issue 13). */
typedef enum {
  GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_AUTO = 0,  /* drop if upstream is live */
  GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_DROP = 1,  /* overwrite: never block */
  GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_WAIT = 2,  /* block upstream until drawn */
} GstSimclrEncoderReplayOverflow;

#define GST_TYPE_SIMCLR_ENCODER (gst_simclr_encoder_get_type ())
G_DECLARE_FINAL_TYPE (GstSimclrEncoder, gst_simclr_encoder, GST,
    SIMCLR_ENCODER, GstElement)

GST_ELEMENT_REGISTER_DECLARE (simclrencoder);

G_END_DECLS
