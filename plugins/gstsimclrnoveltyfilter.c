/* gstsimclrnoveltyfilter.c: the simclrnoveltyfilter element: passes a video
 * frame only when its embedding is far from the frames it kept before.
 *
 * Glue: the embedding (include/simclr/embed.h) and the novelty decision
 * (include/simclr/novelty.h) are libsimclr's. It does not train and does not
 * change the frames it passes.
 */

/**
 * SECTION:element-simclrnoveltyfilter
 * @title: simclrnoveltyfilter
 *
 * Keeps only novel frames of a video stream: each frame is embedded with the
 * encoder of #GstSimclrNoveltyFilter:checkpoint-location (run by the element
 * itself through libsimclr, evaluation mode: the frame is resized to the
 * encoder's input, whole frame squeezed into the square, and converted to
 * its channels; the frame that passes is the original, untouched), or with a
 * checkpoint-free baseline (#GstSimclrNoveltyFilter:embedding raw or ahash),
 * or taken from the #GstSimclrVectorMeta that `simclrencoder mode=embed
 * attach-meta=true` attached upstream (embedding=meta; a frame without one is
 * an error).
 * Its score is its highest cosine similarity to the last
 * #GstSimclrNoveltyFilter:memory frames kept (-1 for the first frame). The
 * frame passes when
 *
 * * #GstSimclrNoveltyFilter:keep-ratio is 0 (default): score <
 *   #GstSimclrNoveltyFilter:threshold (a cosine similarity in [-1, 1]:
 *   lower keeps fewer frames);
 * * keep-ratio is r in (0, 1]: score <= a threshold that follows the
 *   stream (it starts at the second frame's score, falls by 0.01 (1 - r) after a kept frame and
 *   rises by 0.01 r after a dropped one), so about that fraction of frames
 *   passes: over T frames the fraction differs from r by at most 2 / (0.01
 *   T), and in practice far less (see include/simclr/novelty.h).
 *
 * Dropped frames are not pushed (timestamps of the kept frames are
 * unchanged). Memory is bounded: `memory` x dimension floats.
 *
 * Messages (when #GstSimclrNoveltyFilter:post-messages is TRUE):
 *
 * * `simclr-novelty`, one per kept frame: `frame` (guint64, input frame
 *   number from 0), `pts` (guint64, ns, GST_CLOCK_TIME_NONE if unknown),
 *   `score` (gdouble, best cosine similarity to the remembered frames, -1
 *   for the first), `threshold` (gdouble, the threshold of this decision),
 *   `kept` (guint64, frames kept so far, this one included).
 * * `simclr-novelty-summary`, at EOS: `frames` (guint64, frames seen),
 *   `kept` (guint64), `ratio` (gdouble, kept / frames), `threshold`
 *   (gdouble, the last threshold), `memory` (guint).
 *
 * Settings are checked when the element starts: a threshold outside [-1, 1]
 * or a keep-ratio outside [0, 1] is an error naming the property, a missing
 * or malformed checkpoint an error naming the file. Input: RGB or GRAY8
 * frames of any size.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=/usr/share/doc/opencv-doc/examples/data/vtest.avi \
 *     ! decodebin ! videoconvert ! video/x-raw,format=RGB \
 *     ! simclrnoveltyfilter embedding=raw keep-ratio=0.03 \
 *     ! videoconvert ! jpegenc ! multifilesink location=novel-%05d.jpg
 * ]| writes about 3 % of the frames of vtest.avi, each one that differed
 * most from the frames already kept (pixel correlation), as JPEG files: a
 * video turned into a folder of distinct frames (30 of 795 here).
 * `embedding=h checkpoint-location=enc.safetensors` uses a trained encoder
 * instead, and `threshold=0.98` a fixed cosine threshold
 * (pipelines/curate-video.sh).
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrnoveltyfilter.h"
#include "gstsimclr.h"

#include <math.h>
#include <string.h>

#include <gst/video/video.h>

#include "simclr/checkpoint.h"
#include "simclr/embed.h"
#include "simclr/novelty.h"

GST_DEBUG_CATEGORY_STATIC (gst_simclr_novelty_filter_debug);
#define GST_CAT_DEFAULT gst_simclr_novelty_filter_debug

typedef enum
{
  GST_SIMCLR_NOVELTY_EMBEDDING_H = SIMCLR_EMBED_H,
  GST_SIMCLR_NOVELTY_EMBEDDING_Z = SIMCLR_EMBED_Z,
  GST_SIMCLR_NOVELTY_EMBEDDING_RAW = SIMCLR_EMBED_RAW,
  GST_SIMCLR_NOVELTY_EMBEDDING_AHASH = SIMCLR_EMBED_AHASH,
  GST_SIMCLR_NOVELTY_EMBEDDING_META = 100,
} GstSimclrNoveltyEmbedding;

enum
{
  PROP_0,
  PROP_CHECKPOINT_LOCATION,
  PROP_EMBEDDING,
  PROP_FLIP_AVERAGE,
  PROP_THRESHOLD,
  PROP_KEEP_RATIO,
  PROP_MEMORY,
  PROP_POST_MESSAGES,
  PROP_FRAMES,
  PROP_KEPT,
};

#define DEFAULT_CHECKPOINT_LOCATION NULL
#define DEFAULT_EMBEDDING GST_SIMCLR_NOVELTY_EMBEDDING_H
#define DEFAULT_FLIP_AVERAGE FALSE
#define DEFAULT_THRESHOLD 0.9
#define DEFAULT_KEEP_RATIO 0.0
#define DEFAULT_MEMORY 100
#define DEFAULT_POST_MESSAGES TRUE

struct _GstSimclrNoveltyFilter
{
  GstVideoFilter parent;

  /* Properties (object lock). */
  gchar *checkpoint_location;
  GstSimclrNoveltyEmbedding embedding;
  gboolean flip_average;
  gdouble threshold;
  gdouble keep_ratio;
  guint memory;
  gboolean post_messages;

  /* Streaming thread; set in start (). Counters read under the lock. */
  SimclrModel *model;
  SimclrEmbedder *embedder;
  SimclrNovelty *novelty;
  gfloat *row;
  /* TRUE (under the object lock) once start () has set up everything above:
   * the streaming thread reads it before touching any of it. */
  gboolean ready;
  gboolean embedding_kind_meta;
  SimclrNoveltyConfig novelty_cfg;
  gboolean run_post_messages;
  guint64 frames, kept;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE ("{ RGB, GRAY8 }")));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE ("{ RGB, GRAY8 }")));

#define gst_simclr_novelty_filter_parent_class parent_class
G_DEFINE_TYPE (GstSimclrNoveltyFilter, gst_simclr_novelty_filter,
    GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (simclrnoveltyfilter, "simclrnoveltyfilter",
    GST_RANK_NONE, GST_TYPE_SIMCLR_NOVELTY_FILTER);

#define GST_TYPE_SIMCLR_NOVELTY_EMBEDDING \
  (gst_simclr_novelty_embedding_get_type ())
static GType
gst_simclr_novelty_embedding_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_SIMCLR_NOVELTY_EMBEDDING_H, "The encoder's representation h",
        "h"},
    {GST_SIMCLR_NOVELTY_EMBEDDING_Z, "The encoder's projection z", "z"},
    {GST_SIMCLR_NOVELTY_EMBEDDING_RAW,
        "Centred pixels at 32x32 (no checkpoint; cosine = pixel correlation)",
        "raw"},
    {GST_SIMCLR_NOVELTY_EMBEDDING_AHASH,
        "8x8 average hash (no checkpoint)", "ahash"},
    {GST_SIMCLR_NOVELTY_EMBEDDING_META,
        "The GstSimclrVectorMeta on each frame (simclrencoder mode=embed "
          "attach-meta=true upstream)", "meta"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrNoveltyEmbedding", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void gst_simclr_novelty_filter_set_property (GObject * object,
    guint prop_id, const GValue * value, GParamSpec * pspec);
static void gst_simclr_novelty_filter_get_property (GObject * object,
    guint prop_id, GValue * value, GParamSpec * pspec);
static void gst_simclr_novelty_filter_finalize (GObject * object);
static gboolean gst_simclr_novelty_filter_start (GstBaseTransform * trans);
static gboolean gst_simclr_novelty_filter_stop (GstBaseTransform * trans);
static gboolean gst_simclr_novelty_filter_sink_event (GstBaseTransform * trans,
    GstEvent * event);
static GstFlowReturn gst_simclr_novelty_filter_transform_frame_ip (
    GstVideoFilter * filter, GstVideoFrame * frame);

static void
gst_simclr_novelty_filter_class_init (GstSimclrNoveltyFilterClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_simclr_novelty_filter_debug,
      "simclrnoveltyfilter", 0, "keeps novel frames by their embedding");

  gobject_class->set_property = gst_simclr_novelty_filter_set_property;
  gobject_class->get_property = gst_simclr_novelty_filter_get_property;
  gobject_class->finalize = gst_simclr_novelty_filter_finalize;

  /**
   * GstSimclrNoveltyFilter:checkpoint-location:
   *
   * The encoder checkpoint that embeds the frames (embedding h or z).
   */
  g_object_class_install_property (gobject_class, PROP_CHECKPOINT_LOCATION,
      g_param_spec_string ("checkpoint-location", "Checkpoint location",
          "Encoder checkpoint (safetensors) embedding each frame; needed for "
          "embedding=h and z", DEFAULT_CHECKPOINT_LOCATION,
          rw | GST_PARAM_MUTABLE_READY));
  /**
   * GstSimclrNoveltyFilter:embedding:
   *
   * What a frame's embedding is.
   */
  g_object_class_install_property (gobject_class, PROP_EMBEDDING,
      g_param_spec_enum ("embedding", "Embedding",
          "h or z of the checkpoint's encoder, or a checkpoint-free baseline "
          "(raw: centred 32x32 pixels; ahash: 8x8 average hash)",
          GST_TYPE_SIMCLR_NOVELTY_EMBEDDING, DEFAULT_EMBEDDING,
          rw | GST_PARAM_MUTABLE_READY));
  /**
   * GstSimclrNoveltyFilter:flip-average:
   *
   * Average the embedding of each frame with its mirror's.
   */
  g_object_class_install_property (gobject_class, PROP_FLIP_AVERAGE,
      g_param_spec_boolean ("flip-average", "Flip average",
          "Average each frame's embedding with that of its horizontal mirror "
          "(exactly flip-invariant; twice the encoder work)",
          DEFAULT_FLIP_AVERAGE, rw | GST_PARAM_MUTABLE_READY));
  /**
   * GstSimclrNoveltyFilter:threshold:
   *
   * A frame passes when its best cosine similarity to the kept frames is
   * below this. The range is [-1, 1] (issue 15: it used to show +-1.8e308
   * and refuse the rest at start); GLib refuses other values when they are
   * set, with a warning naming the property.
   */
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
          "Cosine similarity in [-1, 1]: a frame passes when its highest "
          "similarity to the remembered kept frames is below it (ignored "
          "when keep-ratio > 0)", -1.0, 1.0,
          DEFAULT_THRESHOLD, rw | GST_PARAM_MUTABLE_PLAYING));
  /**
   * GstSimclrNoveltyFilter:keep-ratio:
   *
   * 0: use the threshold; r in (0, 1]: pass about that fraction of frames.
   */
  g_object_class_install_property (gobject_class, PROP_KEEP_RATIO,
      g_param_spec_double ("keep-ratio", "Keep ratio",
          "0: use threshold; r in (0, 1]: the threshold follows the stream "
          "so that about r of the frames pass", 0.0, 1.0, DEFAULT_KEEP_RATIO,
          rw | GST_PARAM_MUTABLE_READY));
  /**
   * GstSimclrNoveltyFilter:memory:
   *
   * How many kept frames are remembered.
   */
  g_object_class_install_property (gobject_class, PROP_MEMORY,
      g_param_spec_uint ("memory", "Memory",
          "Kept frames remembered (the oldest is forgotten first): a frame "
          "is compared with this many", 1, 1000000, DEFAULT_MEMORY,
          rw | GST_PARAM_MUTABLE_READY));
  /**
   * GstSimclrNoveltyFilter:post-messages:
   *
   * Post `simclr-novelty` and `simclr-novelty-summary` messages.
   */
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post a simclr-novelty message per kept frame and a summary at EOS",
          DEFAULT_POST_MESSAGES, rw));
  g_object_class_install_property (gobject_class, PROP_FRAMES,
      g_param_spec_uint64 ("frames", "Frames", "Frames seen so far", 0,
          G_MAXUINT64, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_KEPT,
      g_param_spec_uint64 ("kept", "Kept", "Frames passed so far", 0,
          G_MAXUINT64, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "SimCLR novelty filter", "Filter/Video",
      "Passes only frames whose embedding is far from the frames kept "
      "before (a video becomes a set of distinct frames)",
      "gst-simclr developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_simclr_novelty_filter_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_simclr_novelty_filter_stop);
  trans_class->sink_event =
      GST_DEBUG_FUNCPTR (gst_simclr_novelty_filter_sink_event);
  filter_class->transform_frame_ip =
      GST_DEBUG_FUNCPTR (gst_simclr_novelty_filter_transform_frame_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_NOVELTY_EMBEDDING, 0);
}

static void
gst_simclr_novelty_filter_init (GstSimclrNoveltyFilter * self)
{
  self->checkpoint_location = g_strdup (DEFAULT_CHECKPOINT_LOCATION);
  self->embedding = DEFAULT_EMBEDDING;
  self->flip_average = DEFAULT_FLIP_AVERAGE;
  self->threshold = DEFAULT_THRESHOLD;
  self->keep_ratio = DEFAULT_KEEP_RATIO;
  self->memory = DEFAULT_MEMORY;
  self->post_messages = DEFAULT_POST_MESSAGES;
  /* Frames pass unchanged; dropping is done by returning DROPPED. */
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_simclr_novelty_filter_clear (GstSimclrNoveltyFilter * self)
{
  GST_OBJECT_LOCK (self);
  self->ready = FALSE;
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&self->novelty, simclr_novelty_free);
  g_clear_pointer (&self->embedder, simclr_embedder_free);
  g_clear_pointer (&self->model, simclr_model_free);
  g_clear_pointer (&self->row, g_free);
}

static void
gst_simclr_novelty_filter_finalize (GObject * object)
{
  GstSimclrNoveltyFilter *self = GST_SIMCLR_NOVELTY_FILTER (object);
  gst_simclr_novelty_filter_clear (self);
  g_free (self->checkpoint_location);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_simclr_novelty_filter_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstSimclrNoveltyFilter *self = GST_SIMCLR_NOVELTY_FILTER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_CHECKPOINT_LOCATION:
      g_free (self->checkpoint_location);
      self->checkpoint_location = g_value_dup_string (value);
      break;
    case PROP_EMBEDDING:
      self->embedding = g_value_get_enum (value);
      break;
    case PROP_FLIP_AVERAGE:
      self->flip_average = g_value_get_boolean (value);
      break;
    case PROP_THRESHOLD:
      self->threshold = g_value_get_double (value);
      break;
    case PROP_KEEP_RATIO:
      self->keep_ratio = g_value_get_double (value);
      break;
    case PROP_MEMORY:
      self->memory = g_value_get_uint (value);
      break;
    case PROP_POST_MESSAGES:
      self->post_messages = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_simclr_novelty_filter_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstSimclrNoveltyFilter *self = GST_SIMCLR_NOVELTY_FILTER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_CHECKPOINT_LOCATION:
      g_value_set_string (value, self->checkpoint_location);
      break;
    case PROP_EMBEDDING:
      g_value_set_enum (value, self->embedding);
      break;
    case PROP_FLIP_AVERAGE:
      g_value_set_boolean (value, self->flip_average);
      break;
    case PROP_THRESHOLD:
      g_value_set_double (value, self->threshold);
      break;
    case PROP_KEEP_RATIO:
      g_value_set_double (value, self->keep_ratio);
      break;
    case PROP_MEMORY:
      g_value_set_uint (value, self->memory);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->post_messages);
      break;
    case PROP_FRAMES:
      g_value_set_uint64 (value, self->frames);
      break;
    case PROP_KEPT:
      g_value_set_uint64 (value, self->kept);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_simclr_novelty_filter_set_ready (GstSimclrNoveltyFilter * self)
{
  GST_OBJECT_LOCK (self);
  self->ready = TRUE;
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_simclr_novelty_filter_start (GstBaseTransform * trans)
{
  GstSimclrNoveltyFilter *self = GST_SIMCLR_NOVELTY_FILTER (trans);
  SimclrEmbedConfig ecfg;
  SimclrNoveltyConfig ncfg;
  SimclrError err = { 0 };
  gchar *location;
  gdouble threshold, keep_ratio;
  gboolean model_kind;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->checkpoint_location);
  simclr_embed_config_default (&ecfg);
  ecfg.kind = (SimclrEmbedKind) self->embedding;
  self->embedding_kind_meta =
      self->embedding == GST_SIMCLR_NOVELTY_EMBEDDING_META;
  ecfg.flip_average = self->flip_average;
  ecfg.max_batch = 1;
  simclr_novelty_config_default (&ncfg);
  ncfg.memory = self->memory;
  threshold = self->threshold;
  keep_ratio = self->keep_ratio;
  self->run_post_messages = self->post_messages;
  self->frames = 0;
  self->kept = 0;
  GST_OBJECT_UNLOCK (self);

  if (!(threshold >= -1.0 && threshold <= 1.0))
    goto bad_threshold;
  if (!(keep_ratio >= 0.0 && keep_ratio <= 1.0))
    goto bad_keep_ratio;
  ncfg.threshold = threshold;
  ncfg.keep_ratio = keep_ratio;

  self->novelty_cfg = ncfg;
  if (self->embedding_kind_meta) {
    g_free (location);
    gst_simclr_novelty_filter_set_ready (self);
    return TRUE;                /* the novelty memory is sized at the first
                                 * meta */
  }
  model_kind = ecfg.kind == SIMCLR_EMBED_H || ecfg.kind == SIMCLR_EMBED_Z;
  if (model_kind) {
    if (!location || !*location)
      goto no_checkpoint;
    self->model = simclr_checkpoint_load_model (location, 2, &err);
    if (!self->model)
      goto load_failed;
  }
  self->embedder = simclr_embedder_new (&ecfg, self->model, &err);
  if (!self->embedder)
    goto setup_failed;
  ncfg.dim = simclr_embedder_dim (self->embedder);
  self->novelty = simclr_novelty_new (&ncfg, &err);
  if (!self->novelty)
    goto setup_failed;
  self->row = g_new (gfloat, ncfg.dim);
  g_free (location);
  gst_simclr_novelty_filter_set_ready (self);
  return TRUE;

  /* ERRORS */
bad_threshold:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Property threshold = %g is outside [-1, 1]: it is a cosine "
            "similarity.", threshold), (NULL));
    g_free (location);
    return FALSE;
  }
bad_keep_ratio:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Property keep-ratio = %g is outside [0, 1] (0 uses the "
            "threshold).", keep_ratio), (NULL));
    g_free (location);
    return FALSE;
  }
no_checkpoint:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No checkpoint-location set: embedding=%s needs an encoder "
            "checkpoint (or use embedding=raw or ahash).",
            simclr_embed_kind_to_string (ecfg.kind)), (NULL));
    g_free (location);
    return FALSE;
  }
load_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not load the checkpoint \"%s\": %s", location, err.message),
        ("%s", err.message));
    g_free (location);
    return FALSE;
  }
setup_failed:
  {
    if (err.field && !strcmp (err.field, "novelty.memory"))
      GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
          ("Property memory = %u is too large: %s", self->memory,
              err.message), (NULL));
    else
      GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("%s", err.message),
          ("%s", err.message));
    gst_simclr_novelty_filter_clear (self);
    g_free (location);
    return FALSE;
  }
}

static gboolean
gst_simclr_novelty_filter_stop (GstBaseTransform * trans)
{
  GstSimclrNoveltyFilter *self = GST_SIMCLR_NOVELTY_FILTER (trans);
  gst_simclr_novelty_filter_clear (self);
  return TRUE;
}

static gboolean
gst_simclr_novelty_filter_sink_event (GstBaseTransform * trans,
    GstEvent * event)
{
  GstSimclrNoveltyFilter *self = GST_SIMCLR_NOVELTY_FILTER (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->run_post_messages
      && self->novelty) {
    guint64 frames, kept;
    guint memory;
    GST_OBJECT_LOCK (self);
    frames = self->frames;
    kept = self->kept;
    memory = self->memory;
    GST_OBJECT_UNLOCK (self);
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self),
            gst_structure_new (SIMCLR_NOVELTY_SUMMARY_MESSAGE,
                "frames", G_TYPE_UINT64, frames,
                "kept", G_TYPE_UINT64, kept,
                "ratio", G_TYPE_DOUBLE, frames ? (gdouble) kept / frames : 0.0,
                "threshold", G_TYPE_DOUBLE,
                simclr_novelty_last_threshold (self->novelty),
                "memory", G_TYPE_UINT, memory, NULL)));
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static guint
vm_dimension (GstVideoFrame * frame)
{
  GstSimclrVectorMeta *vm = gst_buffer_get_simclr_vector_meta (frame->buffer);
  return vm ? vm->dimension : 0;
}

static GstFlowReturn
gst_simclr_novelty_filter_transform_frame_ip (GstVideoFilter * filter,
    GstVideoFrame * frame)
{
  GstSimclrNoveltyFilter *self = GST_SIMCLR_NOVELTY_FILTER (filter);
  SimclrError err = { 0 };
  const gint channels =
      GST_VIDEO_FRAME_FORMAT (frame) == GST_VIDEO_FORMAT_GRAY8 ? 1 : 3;
  gdouble score;
  gint keep;
  guint64 index, kept;
  gboolean ready;

  /* GStreamer 1.22 lets a buffer through a sink pad whose activation is in
   * progress (the pad stops flushing before start () runs), so a buffer may
   * arrive while start () is still setting up (a NULL row reached the
   * embedder under ASan) or after it failed. Found by
   * tests/elements/test-harness-fuzz.c (issue 15); behave as the flushing
   * pad should have. */
  GST_OBJECT_LOCK (self);
  ready = self->ready;
  GST_OBJECT_UNLOCK (self);
  if (G_UNLIKELY (!ready))
    return GST_FLOW_FLUSHING;

  if (self->embedding_kind_meta) {
    GstSimclrVectorMeta *vm = gst_buffer_get_simclr_vector_meta
        (frame->buffer);
    if (!vm)
      goto no_meta;
    if (!self->novelty) {
      self->novelty_cfg.dim = (gint) vm->dimension;
      self->novelty = simclr_novelty_new (&self->novelty_cfg, &err);
      if (!self->novelty)
        goto embed_failed;
    }
    if ((gint) vm->dimension != self->novelty_cfg.dim)
      goto meta_dimension;
    if (simclr_novelty_offer (self->novelty, vm->data, &score, &keep, &err)
        != SIMCLR_OK)
      goto embed_failed;
  } else if (simclr_embedder_push (self->embedder,
          GST_VIDEO_FRAME_PLANE_DATA (frame, 0), GST_VIDEO_FRAME_WIDTH (frame),
          GST_VIDEO_FRAME_HEIGHT (frame), GST_VIDEO_FRAME_PLANE_STRIDE (frame,
              0), channels, &err) != SIMCLR_OK
      || simclr_embedder_flush (self->embedder, self->row, &err) != SIMCLR_OK
      || simclr_novelty_offer (self->novelty, self->row, &score, &keep,
          &err) != SIMCLR_OK)
    goto embed_failed;

  GST_OBJECT_LOCK (self);
  index = self->frames++;
  if (keep)
    self->kept++;
  kept = self->kept;
  GST_OBJECT_UNLOCK (self);
  GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": score %.4f, %s", index,
      score, keep ? "kept" : "dropped");
  if (!keep)
    return GST_BASE_TRANSFORM_FLOW_DROPPED;

  if (self->run_post_messages)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self),
            gst_structure_new (SIMCLR_NOVELTY_MESSAGE,
                "frame", G_TYPE_UINT64, index,
                "pts", G_TYPE_UINT64, GST_BUFFER_PTS (frame->buffer),
                "score", G_TYPE_DOUBLE, score,
                "threshold", G_TYPE_DOUBLE,
                simclr_novelty_last_threshold (self->novelty),
                "kept", G_TYPE_UINT64, kept, NULL)));
  return GST_FLOW_OK;

  /* ERRORS */
no_meta:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Frame %" G_GUINT64_FORMAT " has no embedding meta: embedding=meta "
            "needs simclrencoder mode=embed attach-meta=true upstream.",
            self->frames), (NULL));
    return GST_FLOW_ERROR;
  }
meta_dimension:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Frame %" G_GUINT64_FORMAT " carries an embedding of %u values; "
            "earlier frames had %d.", self->frames, vm_dimension (frame),
            self->novelty_cfg.dim), (NULL));
    return GST_FLOW_ERROR;
  }
embed_failed:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("Could not embed frame %" G_GUINT64_FORMAT ": %s", self->frames,
            err.message), ("%s", err.message));
    return GST_FLOW_ERROR;
  }
}
