/* gstsimclr.h: names shared by the elements of the simclr plugin: caps, metas,
 * the gradient event and bus messages. Elements are glue; the math lives in
 * libsimclr (core/).
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* Embeddings: each buffer holds rows x dimension float32, row-major, native
 * endianness, with a GstSimclrEmbeddingMeta naming each row. */
#define SIMCLR_EMBEDDING_MEDIA_TYPE "application/x-simclr-embedding"
#define SIMCLR_EMBEDDING_CAPS \
  SIMCLR_EMBEDDING_MEDIA_TYPE ", dimension = (int) [ 1, 65536 ]"

/* Upstream custom event from ntxentsink to simclrencoder carrying dL/dz of
 * one step: fields "step" (guint64), "rows" (gint), "dimension" (gint),
 * "gradient" (GstBuffer of rows x dimension float32), "loss" (gdouble) and
 * "temperature" (gdouble, the loss's, which the encoder's checkpoints
 * record). */
#define SIMCLR_GRADIENT_EVENT "simclr-gradient"

/* Element messages. */
#define SIMCLR_TRAIN_MESSAGE "simclr-train"        /* ntxentsink, per interval */
#define SIMCLR_CHECKPOINT_MESSAGE "simclr-checkpoint" /* simclrencoder, per save */
#define SIMCLR_NOVELTY_MESSAGE "simclr-novelty"    /* simclrnoveltyfilter, per kept frame */
#define SIMCLR_NOVELTY_SUMMARY_MESSAGE "simclr-novelty-summary" /* simclrnoveltyfilter, EOS */

/* ---------------------------------------------------------------------------
 * GstSimclrFrameMeta: what a frame is in the data set.
 * Attached by simclrdatasetsrc (view -1) and by simclraugment (view 0..K-1).
 * The API has no tags, so video transforms (videoscale, videoconvert, queue)
 * keep it. */
typedef struct {
  GstMeta meta;
  guint64 sample_id;  /* index in the data set, or the frame count of a stream */
  gint view;          /* 0 .. views-1 for a view; -1 for an original frame */
  gint label;         /* class label, -1 when unknown */
  guint64 epoch;      /* epoch the sample was drawn in (0 for streams) */
} GstSimclrFrameMeta;

GType gst_simclr_frame_meta_api_get_type (void);
#define GST_SIMCLR_FRAME_META_API_TYPE (gst_simclr_frame_meta_api_get_type ())
const GstMetaInfo *gst_simclr_frame_meta_get_info (void);

GstSimclrFrameMeta *gst_buffer_add_simclr_frame_meta (GstBuffer *buffer,
    guint64 sample_id, gint view, gint label, guint64 epoch);
#define gst_buffer_get_simclr_frame_meta(b) \
  ((GstSimclrFrameMeta *) gst_buffer_get_meta ((b), GST_SIMCLR_FRAME_META_API_TYPE))

/* ---------------------------------------------------------------------------
 * GstSimclrEmbeddingMeta: one record per row of an embedding buffer. */
typedef struct {
  guint64 sample_id;
  gint view;
  gint label;
  GstClockTime pts;   /* timestamp of the frame the row came from */
} GstSimclrEmbeddingRow;

typedef struct {
  GstMeta meta;
  guint64 step;                 /* training step, or a running batch count in embed mode */
  guint rows;
  GstSimclrEmbeddingRow *row;   /* (rows), owned by the meta */
  gdouble epoch;                /* train: the largest GstSimclrFrameMeta.epoch of the
                                 * batch's views; embed: 0 */
  gdouble lr;                   /* train: learning rate of this step; embed: 0 */
  /* Train mode with a replay buffer (simclrencoder replay-size > 0): the
   * stream's counts at this step, since the element started; has_counts is
   * FALSE and the counts 0 otherwise. ntxentsink posts them in its
   * simclr-train messages. */
  gboolean has_counts;
  guint64 frames_seen;          /* samples (view pairs) that reached the buffer */
  guint64 frames_buffered;      /* of those, taken into it */
  guint64 frames_trained;       /* distinct samples drawn into a batch */
  guint64 frames_dropped;       /* never trained on: refused, overwritten
                                 * before being drawn, or views missing */
  guint replay_held;            /* samples in the buffer */
} GstSimclrEmbeddingMeta;

GType gst_simclr_embedding_meta_api_get_type (void);
#define GST_SIMCLR_EMBEDDING_META_API_TYPE (gst_simclr_embedding_meta_api_get_type ())
const GstMetaInfo *gst_simclr_embedding_meta_get_info (void);

/* Copies @rows records from @row; epoch and lr start at 0 (set them on the
 * returned meta). */
GstSimclrEmbeddingMeta *gst_buffer_add_simclr_embedding_meta (GstBuffer *buffer,
    guint64 step, guint rows, const GstSimclrEmbeddingRow *row);
#define gst_buffer_get_simclr_embedding_meta(b) \
  ((GstSimclrEmbeddingMeta *) gst_buffer_get_meta ((b), GST_SIMCLR_EMBEDDING_META_API_TYPE))

/* ---------------------------------------------------------------------------
 * GstSimclrVectorMeta: the embedding of a whole frame, riding on the frame.
 * Attached by simclrencoder mode=embed attach-meta=true to the frames it
 * passes through. The API has no tags, so video transforms (scale, convert,
 * queue, tee) keep it: it describes the picture's content. */
typedef struct {
  GstMeta meta;
  guint dimension;
  gfloat *data;         /* (dimension), owned by the meta */
  gint output;          /* 0: representation h, 1: projection z */
  guint64 sample_id;    /* as GstSimclrEmbeddingRow.sample_id */
} GstSimclrVectorMeta;

GType gst_simclr_vector_meta_api_get_type (void);
#define GST_SIMCLR_VECTOR_META_API_TYPE (gst_simclr_vector_meta_api_get_type ())
const GstMetaInfo *gst_simclr_vector_meta_get_info (void);

/* Copies @dimension floats from @data. */
GstSimclrVectorMeta *gst_buffer_add_simclr_vector_meta (GstBuffer *buffer,
    const gfloat *data, guint dimension, gint output, guint64 sample_id);
#define gst_buffer_get_simclr_vector_meta(b) \
  ((GstSimclrVectorMeta *) gst_buffer_get_meta ((b), GST_SIMCLR_VECTOR_META_API_TYPE))

/* Warns once per process (as a GST_WARNING in the "simclr" category and a
 * g_printerr-free element warning by the caller) when OpenBLAS runs a kernel
 * far below what the CPU supports, or SIMCLR_CPU names an instruction set
 * the core could not honour. Returns a message to show, or NULL. */
const gchar *gst_simclr_openblas_advice (void);

/* Seconds now: monotonic wall time and the calling thread's CPU time (the
 * elements' step profiles at debug INFO). */
void gst_simclr_thread_clocks (gdouble * wall, gdouble * cpu);

/* Negotiation that cannot succeed, found before data flows (issue 15): FALSE
 * when @pad is linked and its peer can produce (sink pad) or accept (source
 * pad) none of @caps. *@peer_caps then holds the peer's caps (caller unrefs;
 * NULL otherwise). An element calls this in its READY->PAUSED change and
 * fails it with an error naming both caps: an error posted from a streaming
 * thread a moment later can reach gst-launch-1.0 1.22 before its main loop
 * runs, and that tool then hangs for good. */
gboolean gst_simclr_peer_can_negotiate (GstPad * pad, GstCaps * caps,
    GstCaps ** peer_caps);

/* start ()'s work, done before the base class (issue 15: each error once).
 * GstBaseSink calls start () in NULL->READY, GstBaseSrc in READY->PAUSED,
 * and a start () that fails makes them post a second, generic error
 * ("state change failed and some element failed to post a proper error
 * message"). An element's change_state instead returns
 * gst_simclr_change_state_prepared (): at transition @at it runs @prepare
 * first and fails the change alone (with @prepare's error) when it fails,
 * else sets *@prepared and chains up; the start () that the base class
 * then calls returns gst_simclr_prepared_start (), which skips the work
 * done (and clears *@prepared). If the base class fails @at after a
 * successful @prepare, @undo releases what @prepare set up. Other
 * transitions just chain up to @parent_class. The functions take the
 * element (GLib callback style: a function of the element's base class
 * type, cast). */
typedef gboolean (*GstSimclrPrepareFunc) (GstElement * element);

GstStateChangeReturn gst_simclr_change_state_prepared (GstElement * element,
    GstStateChange transition, GstStateChange at,
    GstElementClass * parent_class, GstSimclrPrepareFunc prepare,
    GstSimclrPrepareFunc undo, gboolean * prepared);
gboolean gst_simclr_prepared_start (GstElement * element,
    GstSimclrPrepareFunc prepare, gboolean * prepared);

G_END_DECLS
