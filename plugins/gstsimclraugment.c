/* gstsimclraugment.c: the simclraugment element, glue between GStreamer video
 * frames and libsimclr's SimclrAugmenter (simclr/augment.h). It negotiates
 * caps, holds frames for temporal pairs, tags views with GstSimclrFrameMeta
 * and maps properties to a SimclrAugmentConfig. It does no pixel math itself.
 */

/**
 * SECTION:element-simclraugment
 * @title: simclraugment
 * @see_also: simclrencoder, ntxentsink
 *
 * Makes #GstSimclrAugment:views random views of every input frame, as SimCLR
 * (Chen et al., 2020) does: random resized crop to
 * #GstSimclrAugment:size x #GstSimclrAugment:size pixels, horizontal flip,
 * colour jitter, random grayscale, Gaussian blur and optional solarize. Input
 * and output are video/x-raw RGB or GRAY8 (the output keeps the input format,
 * square pixels); the input may have any size and stride.
 *
 * Each view is a normal video frame carrying a GstSimclrFrameMeta: the sample
 * id (taken from an upstream GstSimclrFrameMeta, e.g. from a data-set source,
 * otherwise a running count of input frames since the element started), the
 * view index 0 .. views-1, the label (from the upstream meta, else -1) and the
 * epoch (from the upstream meta, else 0). Every view of a frame carries that
 * frame's PTS, DTS and duration, so the output has views buffers per
 * timestamp; the caps keep the input framerate. Views are pushed in order
 * view 0, view 1, ... for one frame before any view of the next frame.
 *
 * The random choices of a view are a pure function of (#GstSimclrAugment:seed,
 * sample id, epoch, view index): the same seed and input give the same views on
 * any machine and with any scheduling, and every epoch of a data set gets new
 * views (epoch 0 uses the sample id alone as the key; epoch e > 0 uses
 * simclr_rng_stream2 (sample id, e)).
 *
 * With #GstSimclrAugment:pair-mode=temporal, view v of frame t is made from
 * frame t + v * #GstSimclrAugment:temporal-offset (each view still randomly
 * augmented; the meta and timestamps are those of frame t). The element then
 * holds the last (views - 1) * temporal-offset + 1 frames. At end of stream
 * (and at a new segment or a change of pixel format) the frames still held
 * are not dropped: a frame whose later partner never arrived is paired with
 * the last frame available (the very last frame pairs with itself), so every
 * input frame gives exactly #GstSimclrAugment:views views in both modes. A
 * flush (seek) drops the held frames.
 *
 * Multi-crop (#GstSimclrAugment:small-views K > 0, Caron et al. 2020): after
 * its views, every frame gives K small views of
 * #GstSimclrAugment:small-size pixels (crops of the anchor frame with the
 * small-crop-scale range, the other augmentations as the full views'),
 * view indices views .. views + K - 1, each in its own buffer with a
 * GstVideoMeta of its size; the output caps carry the fields small-views
 * and small-size, from which simclrencoder (train mode) sets up a step on
 * both sizes. Elements that ignore the video meta (videoconvert) cannot
 * show them.
 * |[
 * gst-launch-1.0 simclrdatasetsrc location=/usr/share/datasets/fashion-mnist ! \
 *     simclraugment size=28 views=2 small-views=4 small-size=14 ! queue ! \
 *     simclrencoder batch-size=64 views=2 width=0.25 total-steps=100 ! \
 *     ntxentsink
 * ]| trains on 2 views of 28 x 28 and 4 of 14 x 14 per image.
 *
 * Settings are checked when the element starts (READY to PAUSED): an
 * impossible combination (crop-scale-min > crop-scale-max, blur-sigma-min >
 * blur-sigma-max, ...) posts a LIBRARY/SETTINGS error naming the properties
 * and the state change fails. Properties marked mutable in PLAYING take
 * effect at the next input frame; a combination made impossible while
 * playing posts a warning and the previous settings stay in use until it is
 * valid again. #GstSimclrAugment:size renegotiates the output caps.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=8 pattern=smpte ! \
 *     video/x-raw,format=RGB,width=320,height=240 ! \
 *     simclraugment size=96 views=2 seed=1 ! videoconvert ! pngenc ! \
 *     multifilesink location=view-%05d.png
 * ]| writes 16 PNG views of 96 x 96 pixels, two per test-pattern frame.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>
#include <time.h>

#include <gst/video/video.h>

#include "simclr/augment.h"
#include "simclr/rng.h"

#include "gstsimclr.h"
#include "gstsimclraugment.h"
#include "gstsimclrfields.h"

GST_DEBUG_CATEGORY_STATIC (gst_simclr_augment_debug);
#define GST_CAT_DEFAULT gst_simclr_augment_debug

/* One input frame held until its views are made. */
typedef struct
{
  GstBuffer *buffer;            /* owned */
  GstVideoInfo info;            /* the layout @buffer was negotiated with */
  guint64 sample_id;
  gint label;
  guint64 epoch;
} GstSimclrAugmentFrame;

struct _GstSimclrAugment
{
  GstBaseTransform parent;

  /* Properties, under the object lock. config.size is the size property. */
  SimclrAugmentConfig config;
  guint views;
  guint small_views;            /* multi-crop: extra small views, 0 = off */
  guint small_size;
  gdouble small_scale_min, small_scale_max;
  guint64 seed;
  GstSimclrAugmentPairMode pair_mode;
  guint temporal_offset;
  gboolean config_changed;      /* config written since the streaming thread read it */

  /* Streaming state: streaming thread and state changes only. */
  GstVideoInfo in_info;
  GstVideoInfo out_info;
  GstBufferPool *pool;          /* output buffers for out_info */
  SimclrAugmenter *augmenter;
  gint augmenter_size;          /* output side @augmenter was made for */
  guint run_views;              /* views and frame offset fixed at start */
  guint run_offset;
  guint run_small;              /* small views and their side, fixed at start */
  gint run_small_size;
  SimclrAugmenter *small_augmenter;     /* run_small_size views, or NULL */
  GstVideoInfo small_info;      /* run_small_size x run_small_size frames */
  guint64 frame_count;
  GQueue ring;                  /* GstSimclrAugmentFrame *, oldest first */
  gboolean job_active;          /* views of the ring head being made */
  gboolean started;             /* start() succeeded, stop() not yet run;
                                 * GST_OBJECT_LOCK (the streaming thread
                                 * may read it while start() runs) */
  guint next_view;
  guint64 job_seed;

  /* With the debug category at INFO (GST_DEBUG=simclraugment:4), printed at
   * EOS: the streaming thread's CPU seconds (source, this element, the push
   * downstream) against the wall seconds, from the first input frame on,
   * and the CPU seconds of the augmentation itself. */
  gboolean prof_enabled;
  gdouble prof_wall0, prof_cpu0;        /* at the first frame; 0 = none yet */
  gdouble prof_view_cpu;
  guint64 prof_views;
};

enum
{
  PROP_0,
  PROP_SIZE,
  PROP_VIEWS,
  PROP_SEED,
  PROP_CROP_SCALE_MIN,
  PROP_CROP_SCALE_MAX,
  PROP_CROP_RATIO_MIN,
  PROP_CROP_RATIO_MAX,
  PROP_FLIP_PROBABILITY,
  PROP_JITTER_STRENGTH,
  PROP_JITTER_PROBABILITY,
  PROP_GRAYSCALE_PROBABILITY,
  PROP_BLUR_PROBABILITY,
  PROP_BLUR_SIGMA_MIN,
  PROP_BLUR_SIGMA_MAX,
  PROP_SOLARIZE_PROBABILITY,
  PROP_PAIR_MODE,
  PROP_TEMPORAL_OFFSET,
  PROP_SMALL_VIEWS,
  PROP_SMALL_SIZE,
  PROP_SMALL_CROP_SCALE_MIN,
  PROP_SMALL_CROP_SCALE_MAX,
};

/* The SimCLR defaults, as simclr_augment_config_default() (the element test
 * checks that they agree). */
#define DEFAULT_SIZE 32
#define DEFAULT_VIEWS 2
#define DEFAULT_SEED 0
#define DEFAULT_CROP_SCALE_MIN 0.08
#define DEFAULT_CROP_SCALE_MAX 1.0
#define DEFAULT_CROP_RATIO_MIN (3.0 / 4.0)
#define DEFAULT_CROP_RATIO_MAX (4.0 / 3.0)
#define DEFAULT_FLIP_PROBABILITY 0.5
#define DEFAULT_JITTER_STRENGTH 1.0
#define DEFAULT_JITTER_PROBABILITY 0.8
#define DEFAULT_GRAYSCALE_PROBABILITY 0.2
#define DEFAULT_BLUR_PROBABILITY 0.5
#define DEFAULT_BLUR_SIGMA_MIN 0.1
#define DEFAULT_BLUR_SIGMA_MAX 2.0
#define DEFAULT_SOLARIZE_PROBABILITY 0.0
#define DEFAULT_PAIR_MODE GST_SIMCLR_AUGMENT_PAIR_INDEPENDENT
#define DEFAULT_TEMPORAL_OFFSET 1
/* Multi-crop: off; SwAV's small-crop scales (Caron et al. 2020). */
#define DEFAULT_SMALL_VIEWS 0
#define DEFAULT_SMALL_SIZE 0
#define DEFAULT_SMALL_CROP_SCALE_MIN 0.05
#define DEFAULT_SMALL_CROP_SCALE_MAX 0.14

/* Ranges: the core checks the same bounds (size 1..4096, strength 0..2.5);
 * combinations (min <= max) are checked when the element starts. */
#define MAX_SIZE 4096
/* A view may be at most this many times the input's larger side: beyond
 * that it is upsampled from a handful of pixels, and size=4096 on a small
 * input only burns CPU and memory (issue 15). */
#define MAX_UPSCALE 16
/* Temporal mode holds (views - 1) x temporal-offset + 1 input frames: at
 * most this many bytes of them. */
#define MAX_HELD_BYTES (1024 * 1024 * 1024)
#define MAX_VIEWS 64
#define MAX_TEMPORAL_OFFSET 1000
#define MIN_CROP_SCALE 0.001
#define MIN_CROP_RATIO 0.01
#define MAX_CROP_RATIO 100.0
#define MAX_JITTER_STRENGTH 2.5
#define MIN_BLUR_SIGMA 0.001
#define MAX_BLUR_SIGMA 100.0

#define VIDEO_CAPS GST_VIDEO_CAPS_MAKE ("{ RGB, GRAY8 }")

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (VIDEO_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (VIDEO_CAPS));

#define gst_simclr_augment_parent_class parent_class
G_DEFINE_TYPE (GstSimclrAugment, gst_simclr_augment, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (simclraugment, "simclraugment", GST_RANK_NONE,
    GST_TYPE_SIMCLR_AUGMENT);

GType
gst_simclr_augment_pair_mode_get_type (void)
{
  static gsize type_id = 0;
  static const GEnumValue values[] = {
    {GST_SIMCLR_AUGMENT_PAIR_INDEPENDENT,
        "Every view from the same frame", "independent"},
    {GST_SIMCLR_AUGMENT_PAIR_TEMPORAL,
        "View v from the frame v * temporal-offset later", "temporal"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type_id)) {
    GType t = g_enum_register_static ("GstSimclrAugmentPairMode", values);
    g_once_init_leave (&type_id, t);
  }
  return (GType) type_id;
}

/* ------------------------------------------------------------------------ */
/* Held frames */

static void
gst_simclr_augment_frame_free (gpointer data)
{
  GstSimclrAugmentFrame *frame = data;

  gst_buffer_unref (frame->buffer);
  g_free (frame);
}

static void
gst_simclr_augment_clear_ring (GstSimclrAugment * self)
{
  g_queue_clear_full (&self->ring, gst_simclr_augment_frame_free);
  self->job_active = FALSE;
  self->next_view = 0;
}

/* Frames the ring must hold before the head's views can be made. */
static guint
gst_simclr_augment_span (GstSimclrAugment * self)
{
  return (self->run_views - 1) * self->run_offset + 1;
}

static gint
gst_simclr_augment_channels (const GstVideoInfo * info)
{
  return GST_VIDEO_INFO_FORMAT (info) == GST_VIDEO_FORMAT_GRAY8 ? 1 : 3;
}

/* Takes @inbuf. */
static void
gst_simclr_augment_hold (GstSimclrAugment * self, GstBuffer * inbuf)
{
  GstSimclrAugmentFrame *frame = g_new0 (GstSimclrAugmentFrame, 1);
  GstSimclrFrameMeta *meta = gst_buffer_get_simclr_frame_meta (inbuf);

  /* A frame held across several input frames must not starve the pool of
   * a live source (v4l2src has a handful of buffers): keep our own copy. */
  if (gst_simclr_augment_span (self) > 1 && inbuf->pool != NULL) {
    GstBuffer *copy = gst_buffer_copy_deep (inbuf);
    gst_buffer_unref (inbuf);
    inbuf = copy;
  }

  frame->buffer = inbuf;
  frame->info = self->in_info;
  if (meta) {
    frame->sample_id = meta->sample_id;
    frame->label = meta->label;
    frame->epoch = meta->epoch;
  } else {
    frame->sample_id = self->frame_count;
    frame->label = -1;
    frame->epoch = 0;
  }
  self->frame_count++;
  g_queue_push_tail (&self->ring, frame);
}

/* ------------------------------------------------------------------------ */
/* Settings */

/* Makes sure the augmenter matches the current properties and output size;
 * snapshots the seed for the next frame's views. */
static gboolean
gst_simclr_augment_refresh (GstSimclrAugment * self)
{
  SimclrAugmentConfig cfg;
  SimclrAugmenter *augmenter;
  SimclrError err = { 0 };
  gboolean changed;
  gchar *msg;

  GST_OBJECT_LOCK (self);
  cfg = self->config;
  changed = self->config_changed;
  self->config_changed = FALSE;
  self->job_seed = self->seed;
  GST_OBJECT_UNLOCK (self);

  /* The negotiated caps decide the output side; the size property only
   * drives negotiation. */
  cfg.size = GST_VIDEO_INFO_WIDTH (&self->out_info);
  if (self->augmenter && !changed && cfg.size == self->augmenter_size)
    return TRUE;

  augmenter = simclr_augmenter_new (&cfg, &err);
  if (augmenter == NULL)
    goto invalid;

  if (self->run_small > 0) {
    SimclrAugmentConfig sc = cfg;
    SimclrAugmenter *small;
    sc.size = self->run_small_size;
    GST_OBJECT_LOCK (self);
    sc.crop_scale_min = self->small_scale_min;
    sc.crop_scale_max = self->small_scale_max;
    GST_OBJECT_UNLOCK (self);
    small = simclr_augmenter_new (&sc, &err);
    if (small == NULL) {
      simclr_augmenter_free (augmenter);
      goto invalid;
    }
    simclr_augmenter_free (self->small_augmenter);
    self->small_augmenter = small;
  }
  simclr_augmenter_free (self->augmenter);
  self->augmenter = augmenter;
  self->augmenter_size = cfg.size;
  GST_DEBUG_OBJECT (self, "augmenter for %d x %d views", cfg.size, cfg.size);
  return TRUE;

  /* ERRORS */
invalid:
  {
    msg = gst_simclr_settings_error_text ("simclraugment", &err);
    if (self->augmenter && self->augmenter_size == cfg.size) {
      GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS,
          ("Invalid augmentation settings, keeping the previous ones: %s",
              msg), ("%s", err.message));
      g_free (msg);
      return TRUE;
    }
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Invalid augmentation settings: %s", msg), ("%s", err.message));
    g_free (msg);
    return FALSE;
  }
}

/* ------------------------------------------------------------------------ */
/* Profile (debug INFO) */

static void
gst_simclr_augment_prof_report (GstSimclrAugment * self)
{
  gdouble wall, cpu;

  if (!self->prof_enabled || self->prof_wall0 == 0)
    return;
  gst_simclr_thread_clocks (&wall, &cpu);
  GST_INFO_OBJECT (self, "streaming thread: %.3f s CPU over %.3f s wall "
      "since the first frame; the %" G_GUINT64_FORMAT " views' augmentation "
      "%.3f s CPU (%.1f us a view)", cpu - self->prof_cpu0,
      wall - self->prof_wall0, self->prof_views, self->prof_view_cpu,
      self->prof_views ? 1e6 * self->prof_view_cpu / self->prof_views : 0.0);
  self->prof_wall0 = 0;
}

/* ------------------------------------------------------------------------ */
/* Views */

static GstFlowReturn
gst_simclr_augment_make_view (GstSimclrAugment * self, guint view,
    GstBuffer ** outbuf)
{
  GstSimclrAugmentFrame *anchor, *source;
  GstVideoFrame in_frame, out_frame;
  GstBuffer *buf = NULL;
  GstFlowReturn ret = GST_FLOW_OK;
  SimclrError err = { 0 };
  SimclrStatus status;
  guint64 sample_key;
  guint n, idx;
  gint channels;
  const gboolean small = view >= self->run_views;
  const GstVideoInfo *out_info = small ? &self->small_info : &self->out_info;

  *outbuf = NULL;
  n = g_queue_get_length (&self->ring);
  anchor = g_queue_peek_head (&self->ring);
  /* Temporal partner, or the last frame available when draining; a small
   * view crops the anchor frame. */
  idx = small ? 0 : MIN (view * self->run_offset, n - 1);
  source = g_queue_peek_nth (&self->ring, idx);

  channels = gst_simclr_augment_channels (&source->info);
  if (channels != gst_simclr_augment_channels (&self->out_info))
    goto wrong_format;

  if (small) {
    gsize offset[GST_VIDEO_MAX_PLANES];
    gint stride[GST_VIDEO_MAX_PLANES];
    memcpy (offset, out_info->offset, sizeof offset);
    memcpy (stride, out_info->stride, sizeof stride);
    /* Its own buffer of small_size x small_size: the caps give the full
     * views' size, the video meta this one's (read through GstVideoFrame,
     * as simclrencoder does). */
    buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (out_info),
        NULL);
    if (buf == NULL)
      goto no_buffer;
    gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (out_info), GST_VIDEO_INFO_WIDTH (out_info),
        GST_VIDEO_INFO_HEIGHT (out_info), GST_VIDEO_INFO_N_PLANES (out_info),
        offset, stride);
  } else {
    ret = gst_buffer_pool_acquire_buffer (self->pool, &buf, NULL);
    if (ret != GST_FLOW_OK)
      goto no_buffer;
  }

  if (!gst_video_frame_map (&in_frame, &source->info, source->buffer,
          GST_MAP_READ))
    goto map_in_failed;
  if (!gst_video_frame_map (&out_frame, out_info, buf, GST_MAP_WRITE)) {
    gst_video_frame_unmap (&in_frame);
    goto map_out_failed;
  }

  /* Epoch 0 keys by the sample id alone; later epochs mix the epoch in, so a
   * data set revisited in a new epoch gets new views of every sample. */
  sample_key = anchor->epoch == 0 ? anchor->sample_id
      : simclr_rng_stream2 (anchor->sample_id, anchor->epoch);
  if (self->prof_enabled) {
    struct timespec ts;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
    self->prof_view_cpu -= ts.tv_sec + 1e-9 * ts.tv_nsec;
  }
  status = simclr_augmenter_view (small ? self->small_augmenter
      : self->augmenter, self->job_seed,
      sample_key, (int) view,
      GST_VIDEO_FRAME_PLANE_DATA (&in_frame, 0),
      GST_VIDEO_FRAME_WIDTH (&in_frame), GST_VIDEO_FRAME_HEIGHT (&in_frame),
      GST_VIDEO_FRAME_PLANE_STRIDE (&in_frame, 0), channels,
      GST_VIDEO_FRAME_PLANE_DATA (&out_frame, 0),
      GST_VIDEO_FRAME_PLANE_STRIDE (&out_frame, 0), NULL, &err);
  if (self->prof_enabled) {
    struct timespec ts;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
    self->prof_view_cpu += ts.tv_sec + 1e-9 * ts.tv_nsec;
    self->prof_views++;
  }

  gst_video_frame_unmap (&out_frame);
  gst_video_frame_unmap (&in_frame);
  if (status != SIMCLR_OK)
    goto augment_failed;

  GST_BUFFER_PTS (buf) = GST_BUFFER_PTS (anchor->buffer);
  GST_BUFFER_DTS (buf) = GST_BUFFER_DTS (anchor->buffer);
  GST_BUFFER_DURATION (buf) = GST_BUFFER_DURATION (anchor->buffer);
  gst_buffer_add_simclr_frame_meta (buf, anchor->sample_id, (gint) view,
      anchor->label, anchor->epoch);

  GST_LOG_OBJECT (self, "sample %" G_GUINT64_FORMAT " view %u from frame +%u",
      anchor->sample_id, view, idx);
  *outbuf = buf;
  return GST_FLOW_OK;

  /* ERRORS */
wrong_format:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("held frame is %s but the output is %s",
            GST_VIDEO_INFO_NAME (&source->info),
            GST_VIDEO_INFO_NAME (&self->out_info)));
    return GST_FLOW_NOT_NEGOTIATED;
  }
no_buffer:
  {
    GST_DEBUG_OBJECT (self, "no output buffer: %s", gst_flow_get_name (ret));
    return ret;
  }
map_in_failed:
  {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Could not map an input frame"),
        ("%" GST_PTR_FORMAT " does not fit %s %dx%d", source->buffer,
            GST_VIDEO_INFO_NAME (&source->info),
            GST_VIDEO_INFO_WIDTH (&source->info),
            GST_VIDEO_INFO_HEIGHT (&source->info)));
    return GST_FLOW_ERROR;
  }
map_out_failed:
  {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Could not map an output frame"),
        (NULL));
    return GST_FLOW_ERROR;
  }
augment_failed:
  {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("Augmentation failed"),
        ("%s", err.message));
    return GST_FLOW_ERROR;
  }
}

/* Starts the views of the ring head. */
static GstFlowReturn
gst_simclr_augment_start_job (GstSimclrAugment * self)
{
  if (!gst_simclr_augment_refresh (self))
    return GST_FLOW_ERROR;
  self->job_active = TRUE;
  self->next_view = 0;
  return GST_FLOW_OK;
}

/* Makes the next view of the current job; ends the job after its last
 * view. */
static GstFlowReturn
gst_simclr_augment_next_view (GstSimclrAugment * self, GstBuffer ** outbuf)
{
  GstFlowReturn ret;

  ret = gst_simclr_augment_make_view (self, self->next_view, outbuf);
  if (ret != GST_FLOW_OK)
    return ret;
  if (++self->next_view == self->run_views + self->run_small) {
    gst_simclr_augment_frame_free (g_queue_pop_head (&self->ring));
    self->job_active = FALSE;
  }
  return GST_FLOW_OK;
}

/* Pushes the views of every held frame, each partnered with the last frame
 * available (end of stream, new segment, format change). */
static GstFlowReturn
gst_simclr_augment_drain (GstSimclrAugment * self)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  GstFlowReturn ret = GST_FLOW_OK;
  GstBuffer *outbuf;

  if (!g_queue_is_empty (&self->ring))
    GST_DEBUG_OBJECT (self, "draining %u held frames",
        g_queue_get_length (&self->ring));

  while (!g_queue_is_empty (&self->ring)) {
    if (!self->job_active) {
      ret = gst_simclr_augment_start_job (self);
      if (ret != GST_FLOW_OK)
        break;
    }
    ret = gst_simclr_augment_next_view (self, &outbuf);
    if (ret != GST_FLOW_OK)
      break;
    ret = gst_pad_push (GST_BASE_TRANSFORM_SRC_PAD (trans), outbuf);
    if (ret != GST_FLOW_OK)
      break;
  }
  if (ret != GST_FLOW_OK) {
    GST_DEBUG_OBJECT (self, "drain stopped: %s", gst_flow_get_name (ret));
    gst_simclr_augment_clear_ring (self);
  }
  return ret;
}

/* Called by GstBaseTransform's chain after submit_input_buffer, then again
 * as long as it returns a buffer. */
static GstFlowReturn
gst_simclr_augment_generate_output (GstBaseTransform * trans,
    GstBuffer ** outbuf)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (trans);
  GstBuffer *inbuf = trans->queued_buf;
  GstFlowReturn ret;
  gboolean started;

  *outbuf = NULL;
  trans->queued_buf = NULL;
  /* GStreamer 1.22 lets a buffer through a sink pad whose activation is in
   * progress (flushing is cleared before start() runs): before start()
   * finished, or after it failed, nothing is set up. Behave as the flushing
   * pad would (issue 15, tests/elements/test-harness-fuzz.c). The flag is
   * read under the object lock, so everything start() set before it is
   * seen too (a plain flag was a data race with start()). */
  GST_OBJECT_LOCK (self);
  started = self->started;
  GST_OBJECT_UNLOCK (self);
  if (G_UNLIKELY (!started)) {
    if (inbuf)
      gst_buffer_unref (inbuf);
    return GST_FLOW_FLUSHING;
  }
  if (inbuf && self->prof_enabled && self->prof_wall0 == 0)
    gst_simclr_thread_clocks (&self->prof_wall0, &self->prof_cpu0);
  if (inbuf)
    gst_simclr_augment_hold (self, inbuf);

  if (!self->job_active) {
    if (g_queue_get_length (&self->ring) < gst_simclr_augment_span (self))
      return GST_FLOW_OK;
    ret = gst_simclr_augment_start_job (self);
    if (ret != GST_FLOW_OK)
      return ret;
  }
  return gst_simclr_augment_next_view (self, outbuf);
}

/* ------------------------------------------------------------------------ */
/* Caps */

static gboolean
gst_simclr_augment_fits_size (const GstStructure * s, const gchar * field,
    gint size)
{
  const GValue *value = gst_structure_get_value (s, field);
  GValue v = G_VALUE_INIT;
  gboolean ok;

  if (value == NULL)
    return TRUE;
  g_value_init (&v, G_TYPE_INT);
  g_value_set_int (&v, size);
  ok = gst_value_can_intersect (value, &v);
  g_value_unset (&v);
  return ok;
}

static GstCaps *
gst_simclr_augment_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (trans);
  GstCaps *ret = gst_caps_new_empty ();
  gint size;
  guint i, small_views, small_size;

  GST_OBJECT_LOCK (self);
  size = self->config.size;
  small_views = self->small_views;
  small_size = self->small_size;
  GST_OBJECT_UNLOCK (self);

  for (i = 0; i < gst_caps_get_size (caps); i++) {
    GstStructure *s = gst_caps_get_structure (caps, i);
    GstCapsFeatures *f = gst_caps_get_features (caps, i);

    if (direction == GST_PAD_SINK) {
      /* Input to output: any input size gives size x size square pixels. */
      s = gst_structure_copy (s);
      gst_structure_set (s, "width", G_TYPE_INT, size, "height", G_TYPE_INT,
          size, "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
      /* Multi-crop: simclrencoder learns here how many small views follow
       * the full-size ones, and their side. */
      if (small_views > 0)
        gst_structure_set (s, "small-views", G_TYPE_INT, (gint) small_views,
            "small-size", G_TYPE_INT, (gint) small_size, NULL);
      else
        gst_structure_remove_fields (s, "small-views", "small-size", NULL);
    } else {
      /* Output to input: only outputs of our size, from any input size. */
      if (!gst_simclr_augment_fits_size (s, "width", size)
          || !gst_simclr_augment_fits_size (s, "height", size))
        continue;
      s = gst_structure_copy (s);
      gst_structure_set (s, "width", GST_TYPE_INT_RANGE, 1, G_MAXINT,
          "height", GST_TYPE_INT_RANGE, 1, G_MAXINT, NULL);
      gst_structure_remove_fields (s, "pixel-aspect-ratio", "small-views",
          "small-size", NULL);
    }
    ret = gst_caps_merge_structure_full (ret, s,
        f ? gst_caps_features_copy (f) : NULL);
  }

  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, ret,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (ret);
    ret = tmp;
  }
  GST_DEBUG_OBJECT (self, "%s %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      direction == GST_PAD_SINK ? "sink" : "src", caps, ret);
  return ret;
}

static GstCaps *
gst_simclr_augment_fixate_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * othercaps)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (trans);
  GstStructure *in = gst_caps_get_structure (caps, 0);
  GstStructure *out;
  const gchar *format;
  gint size, fps_n, fps_d;

  GST_OBJECT_LOCK (self);
  size = self->config.size;
  GST_OBJECT_UNLOCK (self);

  othercaps = gst_caps_truncate (othercaps);
  othercaps = gst_caps_make_writable (othercaps);
  out = gst_caps_get_structure (othercaps, 0);

  /* Same format and rate as the other side, our size, square pixels. */
  format = gst_structure_get_string (in, "format");
  if (format)
    gst_structure_fixate_field_string (out, "format", format);
  if (gst_structure_get_fraction (in, "framerate", &fps_n, &fps_d))
    gst_structure_fixate_field_nearest_fraction (out, "framerate", fps_n,
        fps_d);
  if (direction == GST_PAD_SINK) {
    gst_structure_fixate_field_nearest_int (out, "width", size);
    gst_structure_fixate_field_nearest_int (out, "height", size);
    if (gst_structure_has_field (out, "pixel-aspect-ratio"))
      gst_structure_fixate_field_nearest_fraction (out, "pixel-aspect-ratio",
          1, 1);
  }
  othercaps = gst_caps_fixate (othercaps);
  GST_DEBUG_OBJECT (self, "fixated to %" GST_PTR_FORMAT, othercaps);
  return othercaps;
}

static gboolean
gst_simclr_augment_accept_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps)
{
  gboolean ret;

  ret = GST_BASE_TRANSFORM_CLASS (parent_class)->accept_caps (trans,
      direction, caps);
  if (!ret && direction == GST_PAD_SINK)
    GST_INFO_OBJECT (trans, "refusing %" GST_PTR_FORMAT ": simclraugment "
        "takes video/x-raw RGB or GRAY8 in system memory", caps);
  return ret;
}

static gboolean
gst_simclr_augment_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (trans);
  GstVideoInfo in_info, out_info;
  GstStructure *config;

  if (!gst_video_info_from_caps (&in_info, incaps)
      || !gst_video_info_from_caps (&out_info, outcaps))
    goto invalid_caps;
  if (GST_VIDEO_INFO_FORMAT (&in_info) != GST_VIDEO_INFO_FORMAT (&out_info)
      || GST_VIDEO_INFO_WIDTH (&out_info) != GST_VIDEO_INFO_HEIGHT (&out_info))
    goto invalid_caps;

  {
    gint in_side = MAX (GST_VIDEO_INFO_WIDTH (&in_info),
        GST_VIDEO_INFO_HEIGHT (&in_info));
    guint64 held = (guint64) gst_simclr_augment_span (self) *
        GST_VIDEO_INFO_SIZE (&in_info);
    if ((gint64) GST_VIDEO_INFO_WIDTH (&out_info) > (gint64) MAX_UPSCALE *
        in_side)
      goto too_large;
    if (gst_simclr_augment_span (self) > 1 && held > MAX_HELD_BYTES)
      goto too_many_held;
  }

  self->in_info = in_info;

  if (self->pool == NULL || !gst_video_info_is_equal (&out_info,
          &self->out_info)) {
    if (self->pool) {
      gst_buffer_pool_set_active (self->pool, FALSE);
      gst_object_unref (self->pool);
    }
    /* Our own pool: GstBaseTransform gives none to an element without a
     * transform function, and views are small. */
    self->pool = gst_video_buffer_pool_new ();
    config = gst_buffer_pool_get_config (self->pool);
    gst_buffer_pool_config_set_params (config, outcaps,
        GST_VIDEO_INFO_SIZE (&out_info), 0, 0);
    if (!gst_buffer_pool_set_config (self->pool, config)
        || !gst_buffer_pool_set_active (self->pool, TRUE))
      goto no_pool;
  }
  self->out_info = out_info;
  if (self->run_small > 0)
    gst_video_info_set_format (&self->small_info,
        GST_VIDEO_INFO_FORMAT (&out_info), self->run_small_size,
        self->run_small_size);
  GST_DEBUG_OBJECT (self, "%s %dx%d stride %d -> %dx%d",
      GST_VIDEO_INFO_NAME (&in_info), GST_VIDEO_INFO_WIDTH (&in_info),
      GST_VIDEO_INFO_HEIGHT (&in_info), GST_VIDEO_INFO_PLANE_STRIDE (&in_info,
          0), GST_VIDEO_INFO_WIDTH (&out_info),
      GST_VIDEO_INFO_HEIGHT (&out_info));
  return TRUE;

  /* ERRORS */
invalid_caps:
  {
    GST_ERROR_OBJECT (self, "cannot go from %" GST_PTR_FORMAT " to %"
        GST_PTR_FORMAT, incaps, outcaps);
    return FALSE;
  }
too_large:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Property size = %d is more than %d times the %dx%d input: each "
            "view would be upsampled from a few pixels. Use a smaller size, "
            "or scale the input up first (videoscale).",
            GST_VIDEO_INFO_WIDTH (&out_info), MAX_UPSCALE,
            GST_VIDEO_INFO_WIDTH (&in_info), GST_VIDEO_INFO_HEIGHT (&in_info)),
        ("input %" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
too_many_held:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Properties views = %u and temporal-offset = %u hold %u frames of "
            "%dx%d (%" G_GUINT64_FORMAT " MiB), above the %d MiB limit: "
            "lower views or temporal-offset, or the frame size.",
            self->run_views, self->run_offset, gst_simclr_augment_span (self),
            GST_VIDEO_INFO_WIDTH (&in_info), GST_VIDEO_INFO_HEIGHT (&in_info),
            (guint64) gst_simclr_augment_span (self) *
            GST_VIDEO_INFO_SIZE (&in_info) >> 20, MAX_HELD_BYTES >> 20),
        (NULL));
    return FALSE;
  }
no_pool:
  {
    GST_ERROR_OBJECT (self, "could not set up an output pool for %"
        GST_PTR_FORMAT, outcaps);
    gst_object_unref (self->pool);
    self->pool = NULL;
    return FALSE;
  }
}

static gboolean
gst_simclr_augment_propose_allocation (GstBaseTransform * trans,
    GstQuery * decide_query, GstQuery * query)
{
  /* We read through GstVideoFrame, so any stride upstream likes is fine. */
  gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  return TRUE;
}

static gboolean
gst_simclr_augment_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_STOP:
      gst_simclr_augment_clear_ring (self);
      break;
    case GST_EVENT_EOS:
    case GST_EVENT_SEGMENT:
      /* Held frames belong to the ending segment. */
      gst_simclr_augment_drain (self);
      if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
        gst_simclr_augment_prof_report (self);
      break;
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      GstVideoInfo info;

      /* A new size is fine for held frames (each keeps its layout); a new
       * format changes the output caps, so finish the old frames first. */
      gst_event_parse_caps (event, &caps);
      if (!g_queue_is_empty (&self->ring)
          && gst_video_info_from_caps (&info, caps)
          && GST_VIDEO_INFO_FORMAT (&info) !=
          GST_VIDEO_INFO_FORMAT (&self->in_info))
        gst_simclr_augment_drain (self);
      break;
    }
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* ------------------------------------------------------------------------ */
/* State */

static gboolean
gst_simclr_augment_start (GstBaseTransform * trans)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (trans);
  SimclrAugmentConfig cfg;
  SimclrError err = { 0 };
  GstSimclrAugmentPairMode mode;
  guint views, offset, small_views, small_size;
  gdouble small_min, small_max;
  gchar *msg;

  GST_OBJECT_LOCK (self);
  cfg = self->config;
  views = self->views;
  small_views = self->small_views;
  small_size = self->small_size;
  small_min = self->small_scale_min;
  small_max = self->small_scale_max;
  mode = self->pair_mode;
  offset = self->temporal_offset;
  self->config_changed = TRUE;
  GST_OBJECT_UNLOCK (self);

  if (simclr_augment_config_validate (&cfg, &err) != SIMCLR_OK)
    goto invalid;
  if (small_views > 0 && (small_size < 1 || small_size > (guint) cfg.size))
    goto bad_small_size;
  if (small_views > 0 && views + small_views > MAX_VIEWS)
    goto too_many_views;
  if (small_views > 0 && small_min > small_max)
    goto bad_small_scale;

  self->run_views = views;
  self->run_small = small_views;
  self->run_small_size = (gint) small_size;
  self->run_offset = mode == GST_SIMCLR_AUGMENT_PAIR_TEMPORAL ? offset : 0;
  self->frame_count = 0;
  gst_simclr_augment_clear_ring (self);
  GST_DEBUG_OBJECT (self, "%u views, frame offset %u, holding %u frames",
      self->run_views, self->run_offset, gst_simclr_augment_span (self));
  GST_OBJECT_LOCK (self);
  self->started = TRUE;
  self->prof_enabled =
      gst_debug_category_get_threshold (GST_CAT_DEFAULT) >= GST_LEVEL_INFO;
  self->prof_wall0 = self->prof_cpu0 = self->prof_view_cpu = 0;
  self->prof_views = 0;
  GST_OBJECT_UNLOCK (self);
  return TRUE;

  /* ERRORS */
invalid:
  {
    msg = gst_simclr_settings_error_text ("simclraugment", &err);
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Invalid augmentation settings: %s", msg), ("%s", err.message));
    g_free (msg);
    return FALSE;
  }
bad_small_size:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Invalid augmentation settings: small-size = %u with small-views = "
            "%u: the small views need a side of 1 to size = %d pixels.",
            small_size, small_views, cfg.size), (NULL));
    return FALSE;
  }
too_many_views:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Invalid augmentation settings: views = %u plus small-views = %u "
            "is more than %d views per frame.", views, small_views,
            MAX_VIEWS), (NULL));
    return FALSE;
  }
bad_small_scale:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Invalid augmentation settings: small-crop-scale-min = %g is above "
            "small-crop-scale-max = %g.", small_min, small_max), (NULL));
    return FALSE;
  }
}

static gboolean
gst_simclr_augment_stop (GstBaseTransform * trans)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (trans);

  GST_OBJECT_LOCK (self);
  self->started = FALSE;
  GST_OBJECT_UNLOCK (self);
  gst_simclr_augment_clear_ring (self);
  simclr_augmenter_free (self->augmenter);
  self->augmenter = NULL;
  simclr_augmenter_free (self->small_augmenter);
  self->small_augmenter = NULL;
  self->augmenter_size = 0;
  if (self->pool) {
    gst_buffer_pool_set_active (self->pool, FALSE);
    gst_object_unref (self->pool);
    self->pool = NULL;
  }
  gst_video_info_init (&self->in_info);
  gst_video_info_init (&self->out_info);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Properties */

static void
gst_simclr_augment_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (object);
  SimclrAugmentConfig *cfg = &self->config;
  gboolean reconfigure = FALSE;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SIZE:
      reconfigure = cfg->size != (int) g_value_get_uint (value);
      cfg->size = (int) g_value_get_uint (value);
      break;
    case PROP_VIEWS:
      self->views = g_value_get_uint (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64 (value);
      break;
    case PROP_CROP_SCALE_MIN:
      cfg->crop_scale_min = g_value_get_double (value);
      break;
    case PROP_CROP_SCALE_MAX:
      cfg->crop_scale_max = g_value_get_double (value);
      break;
    case PROP_CROP_RATIO_MIN:
      cfg->crop_ratio_min = g_value_get_double (value);
      break;
    case PROP_CROP_RATIO_MAX:
      cfg->crop_ratio_max = g_value_get_double (value);
      break;
    case PROP_FLIP_PROBABILITY:
      cfg->flip_probability = g_value_get_double (value);
      break;
    case PROP_JITTER_STRENGTH:
      cfg->jitter_strength = g_value_get_double (value);
      break;
    case PROP_JITTER_PROBABILITY:
      cfg->jitter_probability = g_value_get_double (value);
      break;
    case PROP_GRAYSCALE_PROBABILITY:
      cfg->grayscale_probability = g_value_get_double (value);
      break;
    case PROP_BLUR_PROBABILITY:
      cfg->blur_probability = g_value_get_double (value);
      break;
    case PROP_BLUR_SIGMA_MIN:
      cfg->blur_sigma_min = g_value_get_double (value);
      break;
    case PROP_BLUR_SIGMA_MAX:
      cfg->blur_sigma_max = g_value_get_double (value);
      break;
    case PROP_SOLARIZE_PROBABILITY:
      cfg->solarize_probability = g_value_get_double (value);
      break;
    case PROP_PAIR_MODE:
      self->pair_mode = g_value_get_enum (value);
      break;
    case PROP_TEMPORAL_OFFSET:
      self->temporal_offset = g_value_get_uint (value);
      break;
    case PROP_SMALL_VIEWS:
      self->small_views = g_value_get_uint (value);
      break;
    case PROP_SMALL_SIZE:
      self->small_size = g_value_get_uint (value);
      break;
    case PROP_SMALL_CROP_SCALE_MIN:
      self->small_scale_min = g_value_get_double (value);
      break;
    case PROP_SMALL_CROP_SCALE_MAX:
      self->small_scale_max = g_value_get_double (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  if (prop_id != PROP_SEED && prop_id != PROP_VIEWS
      && prop_id != PROP_PAIR_MODE && prop_id != PROP_TEMPORAL_OFFSET
      && prop_id != PROP_SMALL_VIEWS && prop_id != PROP_SMALL_SIZE)
    self->config_changed = TRUE;
  GST_OBJECT_UNLOCK (self);

  /* A new size renegotiates the output caps at the next frame. */
  if (reconfigure)
    gst_base_transform_reconfigure_src (GST_BASE_TRANSFORM (self));
}

static void
gst_simclr_augment_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (object);
  const SimclrAugmentConfig *cfg = &self->config;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SIZE:
      g_value_set_uint (value, (guint) cfg->size);
      break;
    case PROP_VIEWS:
      g_value_set_uint (value, self->views);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_CROP_SCALE_MIN:
      g_value_set_double (value, cfg->crop_scale_min);
      break;
    case PROP_CROP_SCALE_MAX:
      g_value_set_double (value, cfg->crop_scale_max);
      break;
    case PROP_CROP_RATIO_MIN:
      g_value_set_double (value, cfg->crop_ratio_min);
      break;
    case PROP_CROP_RATIO_MAX:
      g_value_set_double (value, cfg->crop_ratio_max);
      break;
    case PROP_FLIP_PROBABILITY:
      g_value_set_double (value, cfg->flip_probability);
      break;
    case PROP_JITTER_STRENGTH:
      g_value_set_double (value, cfg->jitter_strength);
      break;
    case PROP_JITTER_PROBABILITY:
      g_value_set_double (value, cfg->jitter_probability);
      break;
    case PROP_GRAYSCALE_PROBABILITY:
      g_value_set_double (value, cfg->grayscale_probability);
      break;
    case PROP_BLUR_PROBABILITY:
      g_value_set_double (value, cfg->blur_probability);
      break;
    case PROP_BLUR_SIGMA_MIN:
      g_value_set_double (value, cfg->blur_sigma_min);
      break;
    case PROP_BLUR_SIGMA_MAX:
      g_value_set_double (value, cfg->blur_sigma_max);
      break;
    case PROP_SOLARIZE_PROBABILITY:
      g_value_set_double (value, cfg->solarize_probability);
      break;
    case PROP_PAIR_MODE:
      g_value_set_enum (value, self->pair_mode);
      break;
    case PROP_TEMPORAL_OFFSET:
      g_value_set_uint (value, self->temporal_offset);
      break;
    case PROP_SMALL_VIEWS:
      g_value_set_uint (value, self->small_views);
      break;
    case PROP_SMALL_SIZE:
      g_value_set_uint (value, self->small_size);
      break;
    case PROP_SMALL_CROP_SCALE_MIN:
      g_value_set_double (value, self->small_scale_min);
      break;
    case PROP_SMALL_CROP_SCALE_MAX:
      g_value_set_double (value, self->small_scale_max);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_simclr_augment_finalize (GObject * object)
{
  GstSimclrAugment *self = GST_SIMCLR_AUGMENT (object);

  gst_simclr_augment_clear_ring (self);
  simclr_augmenter_free (self->augmenter);
  simclr_augmenter_free (self->small_augmenter);
  if (self->pool)
    gst_object_unref (self->pool);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_simclr_augment_class_init (GstSimclrAugmentClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags playing = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;
  const GParamFlags ready = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  GST_DEBUG_CATEGORY_INIT (gst_simclr_augment_debug, "simclraugment", 0,
      "SimCLR view augmentation");

  gobject_class->set_property = gst_simclr_augment_set_property;
  gobject_class->get_property = gst_simclr_augment_get_property;
  gobject_class->finalize = gst_simclr_augment_finalize;

  /**
   * GstSimclrAugment:size:
   *
   * Side of the square output views in pixels. Changing it while playing
   * renegotiates the output caps at the next frame. At most 16 times the
   * input's larger side: a larger size is refused with an error when the
   * input caps arrive.
   */
  g_object_class_install_property (gobject_class, PROP_SIZE,
      g_param_spec_uint ("size", "Size",
          "Side of the square output views, in pixels (at most 16 x the "
          "input's larger side)", 1, MAX_SIZE, DEFAULT_SIZE, playing));

  /**
   * GstSimclrAugment:views:
   *
   * Number of views pushed per input frame (SimCLR uses 2). Read when the
   * element starts.
   */
  g_object_class_install_property (gobject_class, PROP_VIEWS,
      g_param_spec_uint ("views", "Views",
          "Views pushed per input frame (1 passes one augmented copy)", 1,
          MAX_VIEWS, DEFAULT_VIEWS, ready));

  /**
   * GstSimclrAugment:seed:
   *
   * Seed of every random choice; with the sample id and the view index it
   * decides a view completely.
   */
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Seed of the random augmentations (0 is an ordinary seed); the same "
          "seed gives the same views", 0, G_MAXUINT64, DEFAULT_SEED, playing));

  /**
   * GstSimclrAugment:crop-scale-min:
   *
   * Smallest area of the random crop, as a fraction of the frame area.
   */
  g_object_class_install_property (gobject_class, PROP_CROP_SCALE_MIN,
      g_param_spec_double ("crop-scale-min", "Crop scale min",
          "Smallest crop area as a fraction of the frame area (at most "
          "crop-scale-max)", MIN_CROP_SCALE, 1.0, DEFAULT_CROP_SCALE_MIN,
          playing));

  /**
   * GstSimclrAugment:crop-scale-max:
   *
   * Largest area of the random crop, as a fraction of the frame area.
   */
  g_object_class_install_property (gobject_class, PROP_CROP_SCALE_MAX,
      g_param_spec_double ("crop-scale-max", "Crop scale max",
          "Largest crop area as a fraction of the frame area (1 allows the "
          "whole frame)", MIN_CROP_SCALE, 1.0, DEFAULT_CROP_SCALE_MAX,
          playing));

  /**
   * GstSimclrAugment:crop-ratio-min:
   *
   * Smallest aspect ratio (width / height) of the random crop; ratios are
   * drawn log-uniformly.
   */
  g_object_class_install_property (gobject_class, PROP_CROP_RATIO_MIN,
      g_param_spec_double ("crop-ratio-min", "Crop ratio min",
          "Smallest crop aspect ratio, width / height (at most "
          "crop-ratio-max)", MIN_CROP_RATIO, MAX_CROP_RATIO,
          DEFAULT_CROP_RATIO_MIN, playing));

  /**
   * GstSimclrAugment:crop-ratio-max:
   *
   * Largest aspect ratio (width / height) of the random crop.
   */
  g_object_class_install_property (gobject_class, PROP_CROP_RATIO_MAX,
      g_param_spec_double ("crop-ratio-max", "Crop ratio max",
          "Largest crop aspect ratio, width / height", MIN_CROP_RATIO,
          MAX_CROP_RATIO, DEFAULT_CROP_RATIO_MAX, playing));

  /**
   * GstSimclrAugment:flip-probability:
   *
   * Probability of a horizontal flip.
   */
  g_object_class_install_property (gobject_class, PROP_FLIP_PROBABILITY,
      g_param_spec_double ("flip-probability", "Flip probability",
          "Probability of a horizontal flip (0 never flips)", 0.0, 1.0,
          DEFAULT_FLIP_PROBABILITY, playing));

  /**
   * GstSimclrAugment:jitter-strength:
   *
   * Colour jitter strength s: brightness and contrast and saturation factors
   * in [1 - 0.8 s, 1 + 0.8 s], hue shift in [-0.2 s, 0.2 s] turns.
   */
  g_object_class_install_property (gobject_class, PROP_JITTER_STRENGTH,
      g_param_spec_double ("jitter-strength", "Jitter strength",
          "Colour jitter strength s: brightness, contrast, saturation 0.8 s, "
          "hue 0.2 s (0 disables colour jitter)", 0.0, MAX_JITTER_STRENGTH,
          DEFAULT_JITTER_STRENGTH, playing));

  /**
   * GstSimclrAugment:jitter-probability:
   *
   * Probability that a view gets colour jitter at all.
   */
  g_object_class_install_property (gobject_class, PROP_JITTER_PROBABILITY,
      g_param_spec_double ("jitter-probability", "Jitter probability",
          "Probability of colour jitter (0 never jitters)", 0.0, 1.0,
          DEFAULT_JITTER_PROBABILITY, playing));

  /**
   * GstSimclrAugment:grayscale-probability:
   *
   * Probability that an RGB view is turned to gray (ITU-R 601 luma, three
   * channels kept). No effect on GRAY8.
   */
  g_object_class_install_property (gobject_class,
      PROP_GRAYSCALE_PROBABILITY, g_param_spec_double ("grayscale-probability",
          "Grayscale probability",
          "Probability of turning an RGB view gray (0 never)", 0.0, 1.0,
          DEFAULT_GRAYSCALE_PROBABILITY, playing));

  /**
   * GstSimclrAugment:blur-probability:
   *
   * Probability of a Gaussian blur (kernel about 10% of the view side).
   */
  g_object_class_install_property (gobject_class, PROP_BLUR_PROBABILITY,
      g_param_spec_double ("blur-probability", "Blur probability",
          "Probability of a Gaussian blur (0 never blurs)", 0.0, 1.0,
          DEFAULT_BLUR_PROBABILITY, playing));

  /**
   * GstSimclrAugment:blur-sigma-min:
   *
   * Smallest standard deviation of the blur, in output pixels.
   */
  g_object_class_install_property (gobject_class, PROP_BLUR_SIGMA_MIN,
      g_param_spec_double ("blur-sigma-min", "Blur sigma min",
          "Smallest blur standard deviation, in output pixels (at most "
          "blur-sigma-max)", MIN_BLUR_SIGMA, MAX_BLUR_SIGMA,
          DEFAULT_BLUR_SIGMA_MIN, playing));

  /**
   * GstSimclrAugment:blur-sigma-max:
   *
   * Largest standard deviation of the blur, in output pixels.
   */
  g_object_class_install_property (gobject_class, PROP_BLUR_SIGMA_MAX,
      g_param_spec_double ("blur-sigma-max", "Blur sigma max",
          "Largest blur standard deviation, in output pixels", MIN_BLUR_SIGMA,
          MAX_BLUR_SIGMA, DEFAULT_BLUR_SIGMA_MAX, playing));

  /**
   * GstSimclrAugment:solarize-probability:
   *
   * Probability of solarizing a view (values of 128 and above are inverted),
   * as in BYOL; SimCLR does not solarize.
   */
  g_object_class_install_property (gobject_class,
      PROP_SOLARIZE_PROBABILITY, g_param_spec_double ("solarize-probability",
          "Solarize probability",
          "Probability of solarizing, inverting values >= 128 (0 never)", 0.0,
          1.0, DEFAULT_SOLARIZE_PROBABILITY, playing));

  /**
   * GstSimclrAugment:pair-mode:
   *
   * Where the views of a frame come from: all from the frame itself, or, for
   * video, view v from the frame v * #GstSimclrAugment:temporal-offset
   * later. Read when the element starts.
   */
  g_object_class_install_property (gobject_class, PROP_PAIR_MODE,
      g_param_spec_enum ("pair-mode", "Pair mode",
          "Source of the views: the frame itself, or later frames",
          GST_TYPE_SIMCLR_AUGMENT_PAIR_MODE, DEFAULT_PAIR_MODE, ready));

  /**
   * GstSimclrAugment:temporal-offset:
   *
   * Distance in frames between the sources of consecutive views in temporal
   * mode; the element holds (views - 1) * temporal-offset + 1 frames, at
   * most 1 GiB of them (more is refused with an error naming views and
   * temporal-offset when the input caps arrive). Read when the element
   * starts.
   */
  g_object_class_install_property (gobject_class, PROP_TEMPORAL_OFFSET,
      g_param_spec_uint ("temporal-offset", "Temporal offset",
          "Frames between the sources of consecutive views in temporal mode "
          "(0 takes every view from the same frame)", 0, MAX_TEMPORAL_OFFSET,
          DEFAULT_TEMPORAL_OFFSET, ready));

  /**
   * GstSimclrAugment:small-views:
   *
   * Multi-crop (Caron et al. 2020, SwAV): after the #GstSimclrAugment:views
   * full-size views, every frame also gives this many small views of
   * #GstSimclrAugment:small-size x small-size pixels (view indices views ..
   * views + small-views - 1), cropped with the small-crop-scale range. Each
   * is its own buffer with a GstVideoMeta of its size (the caps keep the
   * full-size width and height and carry the fields small-views and
   * small-size), so simclrencoder trains on both sizes in one step.
   * 0 (default): off. Read when the element starts.
   */
  g_object_class_install_property (gobject_class, PROP_SMALL_VIEWS,
      g_param_spec_uint ("small-views", "Small views",
          "Multi-crop: small low-resolution views per frame after the "
          "full-size ones, each small-size x small-size (0 = off)", 0,
          MAX_VIEWS - 1, DEFAULT_SMALL_VIEWS, ready));

  /**
   * GstSimclrAugment:small-size:
   *
   * Side in pixels of the #GstSimclrAugment:small-views views: 1 to
   * #GstSimclrAugment:size (a 14 x 14 view costs the encoder about a
   * quarter of a 28 x 28 one). Needed when small-views > 0. Read when the
   * element starts.
   */
  g_object_class_install_property (gobject_class, PROP_SMALL_SIZE,
      g_param_spec_uint ("small-size", "Small size",
          "Side of the small views in pixels, 1 to size (needed with "
          "small-views > 0)", 0, MAX_SIZE, DEFAULT_SMALL_SIZE, ready));

  /**
   * GstSimclrAugment:small-crop-scale-min:
   *
   * Smallest crop area of a small view, as a fraction of the frame area
   * (SwAV: 0.05). The other augmentations are the full-size views'.
   */
  g_object_class_install_property (gobject_class, PROP_SMALL_CROP_SCALE_MIN,
      g_param_spec_double ("small-crop-scale-min", "Small crop scale min",
          "Smallest crop area of a small view as a fraction of the frame "
          "area (at most small-crop-scale-max)", MIN_CROP_SCALE, 1.0,
          DEFAULT_SMALL_CROP_SCALE_MIN, playing));

  /**
   * GstSimclrAugment:small-crop-scale-max:
   *
   * Largest crop area of a small view, as a fraction of the frame area
   * (SwAV: 0.14).
   */
  g_object_class_install_property (gobject_class, PROP_SMALL_CROP_SCALE_MAX,
      g_param_spec_double ("small-crop-scale-max", "Small crop scale max",
          "Largest crop area of a small view as a fraction of the frame "
          "area", MIN_CROP_SCALE, 1.0, DEFAULT_SMALL_CROP_SCALE_MAX,
          playing));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "SimCLR augmentation", "Filter/Effect/Video",
      "Makes random SimCLR views (crop, flip, colour jitter, grayscale, blur) "
      "of every frame, tagged with sample id and view", "gst-simclr");

  trans_class->transform_caps =
      GST_DEBUG_FUNCPTR (gst_simclr_augment_transform_caps);
  trans_class->fixate_caps = GST_DEBUG_FUNCPTR (gst_simclr_augment_fixate_caps);
  trans_class->accept_caps = GST_DEBUG_FUNCPTR (gst_simclr_augment_accept_caps);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_simclr_augment_set_caps);
  trans_class->propose_allocation =
      GST_DEBUG_FUNCPTR (gst_simclr_augment_propose_allocation);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_simclr_augment_sink_event);
  trans_class->generate_output =
      GST_DEBUG_FUNCPTR (gst_simclr_augment_generate_output);
  trans_class->start = GST_DEBUG_FUNCPTR (gst_simclr_augment_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_simclr_augment_stop);

  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_AUGMENT_PAIR_MODE, 0);
  /* Register the frame meta now, so applications and tests can find it by
   * name once the element exists. */
  gst_simclr_frame_meta_get_info ();
}

static void
gst_simclr_augment_init (GstSimclrAugment * self)
{
  simclr_augment_config_default (&self->config);
  self->config.size = DEFAULT_SIZE;
  self->config.crop_scale_min = DEFAULT_CROP_SCALE_MIN;
  self->config.crop_scale_max = DEFAULT_CROP_SCALE_MAX;
  self->config.crop_ratio_min = DEFAULT_CROP_RATIO_MIN;
  self->config.crop_ratio_max = DEFAULT_CROP_RATIO_MAX;
  self->config.flip_probability = DEFAULT_FLIP_PROBABILITY;
  self->config.jitter_strength = DEFAULT_JITTER_STRENGTH;
  self->config.jitter_probability = DEFAULT_JITTER_PROBABILITY;
  self->config.grayscale_probability = DEFAULT_GRAYSCALE_PROBABILITY;
  self->config.blur_probability = DEFAULT_BLUR_PROBABILITY;
  self->config.blur_sigma_min = DEFAULT_BLUR_SIGMA_MIN;
  self->config.blur_sigma_max = DEFAULT_BLUR_SIGMA_MAX;
  self->config.solarize_probability = DEFAULT_SOLARIZE_PROBABILITY;
  self->views = DEFAULT_VIEWS;
  self->seed = DEFAULT_SEED;
  self->pair_mode = DEFAULT_PAIR_MODE;
  self->temporal_offset = DEFAULT_TEMPORAL_OFFSET;
  self->small_views = DEFAULT_SMALL_VIEWS;
  self->small_size = DEFAULT_SMALL_SIZE;
  self->small_scale_min = DEFAULT_SMALL_CROP_SCALE_MIN;
  self->small_scale_max = DEFAULT_SMALL_CROP_SCALE_MAX;
  self->config_changed = TRUE;
  self->run_views = DEFAULT_VIEWS;
  self->run_offset = 0;
  g_queue_init (&self->ring);
  gst_video_info_init (&self->in_info);
  gst_video_info_init (&self->out_info);
  gst_video_info_init (&self->small_info);

  /* Without transform functions GstBaseTransform starts in passthrough;
   * we never pass input through. */
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), FALSE);
}
