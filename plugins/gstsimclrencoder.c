/* gstsimclrencoder.c: the simclrencoder element. In train mode it pairs
 * the augmented views of N samples, runs the SimCLR forward pass, pushes
 * the 2N embeddings downstream, waits for the loss gradient that ntxentsink
 * sends back upstream and takes the optimiser step; in embed mode it turns
 * frames into embeddings with a trained checkpoint.
 *
 * This file is glue (pads, caps, properties, events, bus messages): view
 * pairing (SimclrBatcher), the model's input, the model, the optimiser, the
 * schedule, the batch arithmetic of data-parallel runs, the kNN monitor and
 * the checkpoint format are libsimclr's (include/simclr/batcher.h,
 * trainer.h, features.h, checkpoint.h). It does not compute the loss
 * (ntxentsink does) and does not augment (simclraugment does).
 */

/**
 * SECTION:element-simclrencoder
 * @title: simclrencoder
 *
 * SimCLR encoder (a ResNet with a projection head) as an element.
 *
 * ## Train mode (default)
 *
 * Input: square video frames (GRAY8 or RGB; the frame size is the model's
 * image size, the format its input channels) tagged with a
 * #GstSimclrFrameMeta by simclraugment: sample id, epoch and view 0 or 1.
 * Views are paired by (sample id, epoch), never by arrival order, so they may
 * come interleaved or shuffled (the core's SimclrBatcher does it). A view is
 * held (its buffer referenced) until its batch's forward reads it, unless
 * its buffer comes from a bounded pool, which would starve: then its pixels
 * are copied once. When N = #GstSimclrEncoder:batch-size samples
 * have both views, the element runs the forward pass and pushes ONE buffer of
 * 2N float32 rows (caps `application/x-simclr-embedding, dimension=D`):
 * rows 0..N-1 are view 0 of samples s_0..s_{N-1} (in the order their pairs
 * completed) and rows N..2N-1 view 1 of the same samples, so the positive of
 * row i is row i +- N. A #GstSimclrEmbeddingMeta names each row (sample id,
 * view, label, pts) and carries the step, the step's learning rate and the
 * largest epoch of the batch; the buffer offset is the step.
 *
 * The element then waits for the upstream custom event `simclr-gradient`
 * of that step (sent by ntxentsink; it passes a queue at once), runs the
 * backward pass and the optimiser step (LARS or SGD, linear warm-up then
 * cosine decay to 0 at #GstSimclrEncoder:total-steps). Step k+1 is computed
 * only after step k's gradient arrived. A flush or a state change to READY
 * ends the wait (the step is then not taken). Train mode therefore needs a
 * sink that sends the gradient (ntxentsink): with another sink the stream
 * stalls after the first batch (a warning says so after 30 s).
 *
 * At EOS a partial batch is DROPPED (its views are logged at INFO level; views
 * whose partner never came at WARNING level), as drop_last does in PyTorch's
 * loaders: a step on fewer samples would change the schedule's batch size.
 * Then the final checkpoint is written (if #GstSimclrEncoder:checkpoint-location
 * is set) and EOS is forwarded.
 *
 * Checkpoints (safetensors with torchvision names, plus optimiser state and
 * step; written atomically by the core, so a failed write keeps the previous
 * file) go to #GstSimclrEncoder:checkpoint-location every
 * #GstSimclrEncoder:checkpoint-interval steps and at EOS. Each save posts an
 * element message `simclr-checkpoint` with fields
 *
 * * #guint64 `step`: steps taken
 * * #gchararray `location`: the file written
 * * #guint64 `samples-seen`: step x the global batch, the samples every
 *   rank together consumed (with one process, step x batch-size)
 * * #guint64 `rank-samples-seen`: step x batch-size, the samples this rank
 *   consumed: the start-position of its simclrdatasetsrc shard that a
 *   resumed run skips to (equal to `samples-seen` with one process)
 *
 * The checkpoint also records the loss temperature that ntxentsink used (it
 * comes with the gradient event). A model whose weights are not finite is
 * never written. #GstSimclrEncoder:resume-from continues a run from such a
 * file: model, optimiser and schedule configuration then come from the file
 * (the properties that set them are ignored), and the stream should skip the
 * `step * batch_size` samples already seen (simclrdatasetsrc start-position).
 *
 * ## Long runs: schedules, checkpoints, passes
 *
 * #GstSimclrEncoder:lr-schedule picks what follows the warm-up: cosine to 0
 * at total-steps (default), constant, or cosine restarted every
 * #GstSimclrEncoder:restart-period steps; the last two never complete, so a
 * stream trains on until it ends. When #GstSimclrEncoder:checkpoint-location
 * names an existing folder, every save is a new file
 * `FOLDER/ckpt-<step, 12 digits>.safetensors` and the newest
 * #GstSimclrEncoder:checkpoint-keep stay (older ones and temporary files of a
 * killed writer are removed after a successful save, never before);
 * #GstSimclrEncoder:checkpoint-seconds adds a wall-clock cadence. Each file is
 * written to a temporary name, fsynced, renamed and its folder fsynced, so a
 * kill -9 or a power loss at any moment leaves the newest complete file
 * loadable. #GstSimclrEncoder:resume-from may name the folder (its newest
 * checkpoint that opens; an empty folder starts a new run) or a glob
 * pattern, so one command line starts and restarts a long run.
 * #GstSimclrEncoder:passes plays a seekable input several times in one
 * pipeline by seeking back to its start at its end (an EOS before the end,
 * e.g. gst-launch-1.0 -e on Ctrl-C, still ends the run).
 *
 * ## Replay mode: live sources (replay-size > 0)
 *
 * Consecutive frames of a live stream are near-duplicates, and a training
 * step takes far longer than a frame. With #GstSimclrEncoder:replay-size R >
 * 0 the streaming thread only pairs the views of each sample and files the
 * sample (its views, copied) in a replay buffer of R samples (the core's
 * SimclrReplay): it never runs a step, so the source is never held up. A
 * training thread of the element (a task on the source pad) draws each
 * step's N samples uniformly from the whole buffer, so negatives come from
 * the last R frames (ring) or a uniform sample of all frames seen
 * (reservoir, #GstSimclrEncoder:replay-policy), and temporal positives
 * (simclraugment pair-mode=temporal) stay as they came. Frames that arrive
 * while a step runs go into the buffer; when it is full a new sample
 * replaces the oldest (ring) or a random one (reservoir); with
 * #GstSimclrEncoder:replay-overflow=drop (the default for a live source) an
 * untrained sample may be replaced (counted as dropped), with wait (the
 * default for a file) the streaming thread waits until it trained once.
 * The buffer's memory (R x views x the view's bytes, plus a small record per
 * sample) is allocated and touched when the caps are known and never grows;
 * it is posted as an element message `simclr-replay` (capacity, bytes,
 * policy, overflow, min-fill). A buffer above
 * #GstSimclrEncoder:replay-max-bytes or the memory the system has available
 * is refused with an error stating both sizes. The first step waits for
 * #GstSimclrEncoder:replay-min samples. Every step's embedding meta carries
 * the stream's counts, which ntxentsink posts in its `simclr-train`
 * messages: frames-seen, frames-buffered, frames-trained, frames-dropped,
 * replay-held. A periodic checkpoint that cannot be written (disk full) is
 * a warning and training goes on (the saved files stay); the final one is an
 * error. At EOS the training thread ends after its step, writes the final
 * checkpoint and pushes EOS; if the pipeline stops on an error instead (a
 * camera unplugged, a stream lost), the element writes the steps not saved
 * yet when it goes to READY. Which samples a batch draws depends on timing
 * (the draw is a function of the seed, the step and the buffer's contents),
 * so replay runs are not bit-reproducible. A renegotiating source is
 * rescaled and converted before simclraugment (videoconvert ! videoscale !
 * caps, as pipelines/pretrain-live.sh does); without them, the encoder's
 * caps query admits only its model's size and format, so the source's
 * renegotiation fails (not-negotiated) rather than feeding wrong frames.
 *
 * ## Embed mode
 *
 * Loads the model of #GstSimclrEncoder:checkpoint-location (a training
 * checkpoint or a model-only one), runs it in evaluation mode (batch-norm
 * running statistics) and emits one buffer per input frame holding one
 * float32 row: h (#GstSimclrEncoder:output=representation) or z
 * (output=projection), with the frame's PTS, DTS, duration and offset and a
 * one-row #GstSimclrEmbeddingMeta (sample id from the frame meta or a frame
 * count, label, pts; `step` is the index of the forward batch). Frames are
 * computed in batches of #GstSimclrEncoder:embed-batch; a partial batch is
 * computed at EOS, at a flush, at a caps change, or once it spans
 * #GstSimclrEncoder:max-latency of stream time. The model fixes the input
 * size and format, and the sink pad's caps say so, so `videoscale !
 * videoconvert` before the element negotiate it.
 *
 * With #GstSimclrEncoder:attach-meta=true the element instead passes every
 * input frame on unchanged (source caps = sink caps) with its embedding
 * attached as a #GstSimclrVectorMeta (dimension, the floats, h or z, sample
 * id), so downstream elements see the frame and its vector together, e.g.
 * `simclrencoder mode=embed attach-meta=true checkpoint-location=enc.safetensors
 * ! simclrnoveltyfilter embedding=meta keep-ratio=0.05`.
 *
 * Non-square input caps are refused with an error naming the fix (crop or
 * scale to a square). When the model is known at start (embed mode,
 * resume-from) and upstream cannot produce its size and format at all, the
 * READY->PAUSED change fails with a CORE/NEGOTIATION error naming the
 * model's caps and the ones upstream offers. A training stream that ends
 * before a first step (fewer samples than #GstSimclrEncoder:batch-size) is
 * a LIBRARY/SETTINGS error naming batch-size, and no checkpoint is written:
 * an untrained model never replaces a checkpoint file.
 *
 * ## Data-parallel training (mpirun)
 *
 * Under `mpirun -np K` (plugin built with MPI, see gstsimclrmpi.h) each
 * rank's encoder trains the same model on its own N =
 * #GstSimclrEncoder:batch-size samples per step: batch norm uses the
 * statistics of all K x N samples (SyncBN), the parameter gradients are
 * summed over the ranks after the backward pass (ntxentsink returns each
 * rank dL/dz of its rows for the loss of all ranks' rows), and the
 * learning-rate scaling and the checkpoint's batch_size use the global batch
 * K x N. Rank 0's initial weights are broadcast, rank 0 alone writes
 * checkpoints; their `samples-seen` is the global count (K x N per step)
 * and `rank-samples-seen` the count of one rank (N per step, the
 * start-position of its simclrdatasetsrc shard). Before this was split,
 * `samples-seen` counted one rank's samples under MPI.
 *
 * If OpenBLAS runs a slow generic kernel on this CPU, a warning naming the
 * fix (an environment variable) is posted once per process at start.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 -e simclrdatasetsrc location=/usr/share/datasets/fashion-mnist epochs=1 ! \
 *     simclraugment size=28 ! queue ! \
 *     simclrencoder batch-size=64 width=0.25 warmup-steps=90 total-steps=937 \
 *         checkpoint-location=fmnist.safetensors checkpoint-interval=100 ! \
 *     ntxentsink
 * ]| pretrains a small ResNet-18 (width 0.25) on Fashion-MNIST for one epoch
 * (937 steps of 64 pairs; about 10 minutes on 2 cores; Ctrl-C stops early
 * and, thanks to -e, still writes the checkpoint).
 * |[
 * gst-launch-1.0 filesrc location=/usr/share/doc/opencv-doc/examples/data/vtest.avi ! \
 *     decodebin ! videoconvert ! videoscale ! \
 *     simclrencoder mode=embed checkpoint-location=fmnist.safetensors ! fakesink
 * ]| embeds every frame of a video with that checkpoint (the caps negotiate the
 * model's size and format).
 * |[
 * mkdir -p ckpts && gst-launch-1.0 -e videotestsrc is-live=true pattern=ball ! \
 *     videoconvert ! videoscale ! video/x-raw,format=RGB,width=64,height=64 ! \
 *     simclraugment size=32 pair-mode=temporal temporal-offset=5 ! \
 *     simclrencoder batch-size=32 width=0.25 replay-size=1024 lr-schedule=constant \
 *         checkpoint-location=ckpts checkpoint-seconds=60 resume-from=ckpts ! \
 *     ntxentsink
 * ]| trains from a live source until Ctrl-C, keeping the last three
 * checkpoints in ckpts/ and resuming from the newest when started again.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrencoderpriv.h"
#include "gstsimclr.h"
#include "gstsimclrfields.h"
#include "gstsimclrmpi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/checkpoint.h"
#include "simclr/features.h"

/* Declared by OpenBLAS (not in cblas.h). */
extern int openblas_get_num_threads (void);

GST_DEBUG_CATEGORY (gst_simclr_encoder_debug);
#define GST_CAT_DEFAULT gst_simclr_encoder_debug

G_DEFINE_TYPE (GstSimclrEncoder, gst_simclr_encoder, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (simclrencoder, "simclrencoder", GST_RANK_NONE,
    GST_TYPE_SIMCLR_ENCODER);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE ("{ GRAY8, RGB }")));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (SIMCLR_EMBEDDING_CAPS "; "
        GST_VIDEO_CAPS_MAKE ("{ GRAY8, RGB }")));

/* ---- forward declarations -------------------------------------------------- */

static void gst_simclr_encoder_finalize (GObject * object);
static GstStateChangeReturn gst_simclr_encoder_change_state (GstElement *
    element, GstStateChange transition);
static GstFlowReturn gst_simclr_encoder_chain (GstPad * pad, GstObject * parent,
    GstBuffer * buf);
static gboolean gst_simclr_encoder_sink_event (GstPad * pad,
    GstObject * parent, GstEvent * event);
static gboolean gst_simclr_encoder_sink_query (GstPad * pad,
    GstObject * parent, GstQuery * query);
static gboolean gst_simclr_encoder_src_event (GstPad * pad, GstObject * parent,
    GstEvent * event);

/* ---- class ----------------------------------------------------------------- */

static void
gst_simclr_encoder_class_init (GstSimclrEncoderClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->finalize = gst_simclr_encoder_finalize;
  gobject_class->set_property = gst_simclr_encoder_set_property;
  gobject_class->get_property = gst_simclr_encoder_get_property;

  gst_simclr_encoder_install_properties (gobject_class);

  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_simclr_encoder_change_state);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "SimCLR encoder", "Filter/Video/Analyzer",
      "Trains a SimCLR ResNet encoder from pairs of augmented views (with "
      "ntxentsink), or embeds frames with a trained checkpoint",
      "gst-simclr developers");

  /* Register the metas this element reads and writes, so applications
   * (and tests) can find them by name once the element exists. */
  gst_simclr_frame_meta_get_info ();
  gst_simclr_embedding_meta_get_info ();
  gst_simclr_vector_meta_get_info ();

  GST_DEBUG_CATEGORY_INIT (gst_simclr_encoder_debug, "simclrencoder", 0,
      "SimCLR encoder");
}

gboolean
gst_simclr_encoder_str_set (const gchar * s)
{
  return s != NULL && s[0] != '\0';
}

static void
gst_simclr_encoder_init (GstSimclrEncoder * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_simclr_encoder_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_simclr_encoder_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_simclr_encoder_sink_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_event_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_simclr_encoder_src_event));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  gst_simclr_encoder_settings_init (&self->props);
  gst_simclr_encoder_settings_init (&self->run);
  self->monitor_epoch = G_MAXUINT64;
  gst_simclr_gradient_wait_init (&self->grad);
  gst_simclr_encoder_live_init (self);
}

/* Frees everything a run allocated (state changes only: pads inactive). */
static void
gst_simclr_encoder_reset (GstSimclrEncoder * self)
{
  gst_simclr_encoder_embed_free (self);
  gst_simclr_encoder_train_free (self);
  g_clear_pointer (&self->model, simclr_model_free);
  self->configured = FALSE;
  self->size = self->channels = 0;
  self->small_views = self->small_size = 0;
  self->out_dim = 0;
  self->model_origin = NULL;
  gst_simclr_encoder_publish_input (self, NULL);
  gst_simclr_gradient_wait_reset (&self->grad);
}

static void
gst_simclr_encoder_finalize (GObject * object)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (object);

  gst_simclr_encoder_reset (self);
  gst_simclr_encoder_settings_clear (&self->props);
  gst_simclr_encoder_settings_clear (&self->run);
  gst_simclr_gradient_wait_clear (&self->grad);
  gst_simclr_encoder_live_clear (self);

  G_OBJECT_CLASS (gst_simclr_encoder_parent_class)->finalize (object);
}


/* ---- helpers ----------------------------------------------------------------- */

void
gst_simclr_encoder_update_progress (GstSimclrEncoder * self)
{
  guint64 step = 0;
  gdouble lr = 0.0;
  if (self->trainer) {
    step = (guint64) simclr_trainer_get_step (self->trainer);
    lr = simclr_trainer_get_lr (self->trainer);
  }
  GST_OBJECT_LOCK (self);
  self->cur_step = step;
  self->cur_lr = lr;
  GST_OBJECT_UNLOCK (self);
}

/* Publishes the model's input size and format for caps queries. */
void
gst_simclr_encoder_publish_input (GstSimclrEncoder * self, SimclrModel * m)
{
  const SimclrModelConfig *c = m ? simclr_model_get_config (m) : NULL;
  GST_OBJECT_LOCK (self);
  self->caps_size = c ? c->image_size : 0;
  self->caps_channels = c ? c->in_channels : 0;
  GST_OBJECT_UNLOCK (self);
}

/* Posts the resource error of a checkpoint that could not be loaded:
 * NOT_FOUND when the file is absent, READ otherwise, with the core's
 * message (which names the file) as details. */
void
gst_simclr_encoder_post_load_error (GstSimclrEncoder * self,
    const gchar * property,
    const gchar * path, const SimclrError * err)
{
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("Checkpoint \"%s\" (%s) does not exist.", path, property),
        ("%s", err->message));
  } else {
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("Could not load checkpoint \"%s\" (%s): %s", path, property,
            err->message), ("%s", err->message));
  }
}

/* Loads what a run needs before caps: the embed model, or (train mode)
 * MPI, the monitor's data set, checked settings and a trainer to resume. */
static gboolean
gst_simclr_encoder_start (GstSimclrEncoder * self)
{
  const Settings *s = &self->run;
  SimclrError err = { 0 };
  const gchar *advice;
  static gint advised = 0;

  advice = gst_simclr_openblas_advice ();
  if (advice && g_atomic_int_compare_and_exchange (&advised, 0, 1))
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("%s", advice), (NULL));

  if (s->mode == GST_SIMCLR_ENCODER_MODE_EMBED) {
    if (!gst_simclr_encoder_str_set (s->checkpoint_location))
      goto no_checkpoint;
    self->model = simclr_checkpoint_load_model (s->checkpoint_location,
        s->embed_batch, &err);
    if (self->model == NULL) {
      gst_simclr_encoder_post_load_error (self, "checkpoint-location",
          s->checkpoint_location,
          &err);
      return FALSE;
    }
    self->model_origin = s->checkpoint_location;
    gst_simclr_encoder_publish_input (self, self->model);
    GST_INFO_OBJECT (self, "loaded model from %s", s->checkpoint_location);
    return TRUE;
  }

  return gst_simclr_encoder_train_start (self);

  /* ERRORS */
no_checkpoint:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Embed mode needs checkpoint-location (the checkpoint to load)."),
        (NULL));
    return FALSE;
  }
}

static gboolean
gst_simclr_encoder_set_caps (GstSimclrEncoder * self, GstCaps * caps)
{
  GstVideoInfo info;
  const SimclrModelConfig *mcfg = NULL;
  SimclrModel *m;
  gint size, channels, dim, small_views, small_size;
  GstCaps *srccaps;
  gboolean ok;

  if (!gst_video_info_from_caps (&info, caps))
    goto invalid_caps;
  if (GST_VIDEO_INFO_WIDTH (&info) != GST_VIDEO_INFO_HEIGHT (&info))
    goto not_square;
  size = GST_VIDEO_INFO_WIDTH (&info);
  channels = GST_VIDEO_INFO_FORMAT (&info) == GST_VIDEO_FORMAT_GRAY8 ? 1 : 3;
  /* Multi-crop (simclraugment small-views): small views per sample after
   * the full-size ones, each a buffer of small_size x small_size with a
   * GstVideoMeta. */
  small_views = small_size = 0;
  {
    const GstStructure *cs = gst_caps_get_structure (caps, 0);
    if (gst_structure_has_field (cs, "small-views")
        && (!gst_structure_get_int (cs, "small-views", &small_views)
            || !gst_structure_get_int (cs, "small-size", &small_size)
            || small_views < 0 || small_size < 0))
      goto invalid_caps;
    if (small_views == 0)
      small_size = 0;
  }
  if (small_views > 0 && self->run.mode != GST_SIMCLR_ENCODER_MODE_TRAIN)
    goto small_in_embed;

  if (self->configured) {
    if (size != self->size || channels != self->channels
        || small_views != self->small_views || small_size != self->small_size)
      goto size_changed;
    self->vinfo = info;         /* same frames, maybe other strides */
    return TRUE;
  }

  self->small_views = small_views;
  self->small_size = small_size;
  if (small_views > 0) {
    self->small_vinfo = info;
    gst_video_info_set_format (&self->small_vinfo,
        GST_VIDEO_INFO_FORMAT (&info), small_size, small_size);
  }
  if (self->run.mode == GST_SIMCLR_ENCODER_MODE_TRAIN && self->trainer == NULL
      && !gst_simclr_encoder_train_new (self, size, channels))
    return FALSE;

  m = self->trainer ? simclr_trainer_get_model (self->trainer) : self->model;
  g_assert (m != NULL);
  mcfg = simclr_model_get_config (m);
  if (mcfg->image_size != size || mcfg->in_channels != channels)
    goto model_mismatch;

  self->vinfo = info;
  self->size = size;
  self->channels = channels;

  if (self->trainer) {
    dim = simclr_model_output_dim (m);
    if (!gst_simclr_encoder_train_setup (self))
      return FALSE;
  } else {
    dim = self->run.output == GST_SIMCLR_ENCODER_OUTPUT_PROJECTION ?
        simclr_model_output_dim (m) : simclr_model_feature_dim (m);
    gst_simclr_encoder_embed_setup (self, dim);
  }
  self->out_dim = dim;

  if (!self->trainer && self->run.attach_meta)
    srccaps = gst_caps_ref (caps);      /* the frames pass through */
  else if (self->trainer)
    /* views: ntxentsink's loss groups the rows V x N (property views) */
    srccaps = gst_caps_new_simple (SIMCLR_EMBEDDING_MEDIA_TYPE,
        "dimension", G_TYPE_INT, dim,
        "views", G_TYPE_INT, simclr_trainer_views (self->trainer), NULL);
  else
    srccaps = gst_caps_new_simple (SIMCLR_EMBEDDING_MEDIA_TYPE,
        "dimension", G_TYPE_INT, dim, NULL);
  ok = gst_pad_set_caps (self->srcpad, srccaps);
  gst_caps_unref (srccaps);
  if (!ok)
    return FALSE;
  self->configured = TRUE;
  GST_DEBUG_OBJECT (self, "configured: %dx%d, %d channels, D %d", size, size,
      channels, dim);
  return TRUE;

  /* ERRORS */
invalid_caps:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("invalid caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
small_in_embed:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Embed mode takes one view per frame, but the input carries %d "
            "small views (simclraugment small-views): set small-views=0.",
            small_views), ("caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
not_square:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("simclrencoder needs square frames, got %dx%d: crop or scale them to "
            "a square first (videoscale ! video/x-raw,width=S,height=S).",
            GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info)),
        ("caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
size_changed:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("The frame size or format changed mid-stream (%dx%dx%d, was "
            "%dx%dx%d); the model's input is fixed.", size, size, channels,
            self->size, self->size, self->channels), (NULL));
    return FALSE;
  }
model_mismatch:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("The model of \"%s\" takes %dx%d frames with %d channel(s), but the "
            "input is %dx%d with %d channel(s).", self->model_origin,
            mcfg->image_size, mcfg->image_size, mcfg->in_channels, size, size,
            channels), (NULL));
    return FALSE;
  }
}

/* ---- pads ------------------------------------------------------------------- */

static GstFlowReturn
gst_simclr_encoder_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (parent);

  if (!self->configured) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("buffer before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (self->run.mode == GST_SIMCLR_ENCODER_MODE_TRAIN)
    return gst_simclr_encoder_chain_train (self, buf);
  return gst_simclr_encoder_chain_embed (self, buf);
}

static gboolean
gst_simclr_encoder_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (parent);
  gboolean res;

  /* Replay mode serialises flushes, segments and EOS with its training
   * thread (gstsimclrencoderlive.c). */
  if (gst_simclr_encoder_live_sink_event (self, event, &res))
    return res;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gboolean ok;
      gst_event_parse_caps (event, &caps);
      if (self->configured && self->model)
        gst_simclr_encoder_embed_flush (self);
      ok = gst_simclr_encoder_set_caps (self, caps);
      gst_event_unref (event);
      return ok;
    }
    case GST_EVENT_FLUSH_START:
      gst_simclr_gradient_wait_set_flushing (&self->grad, TRUE);
      break;
    case GST_EVENT_FLUSH_STOP:
      gst_simclr_gradient_wait_set_flushing (&self->grad, FALSE);
      gst_simclr_encoder_train_drop (self, "flush");
      if (self->embed_frames)
        gst_simclr_encoder_embed_drop (self);
      break;
    case GST_EVENT_EOS:
      if (gst_simclr_encoder_passes_eos (self)) {
        /* passes: the element seeks back to the start instead */
        gst_event_unref (event);
        return TRUE;
      }
      if (self->run.mode == GST_SIMCLR_ENCODER_MODE_TRAIN) {
        gst_simclr_encoder_train_eos (self);
      } else if (self->configured) {
        gst_simclr_encoder_embed_flush (self);
      }
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

/* The sink caps: the template, narrowed to the model's size and format once
 * a model is known (embed mode, resume-from), so upstream scalers and
 * converters negotiate it. Accept-caps stays with the template so that
 * unsuitable caps reach set_caps, which explains what is wrong. */
static gboolean
gst_simclr_encoder_sink_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:{
      GstCaps *filter, *caps, *result;
      gint size, channels;
      gst_query_parse_caps (query, &filter);
      caps = gst_pad_get_pad_template_caps (pad);
      GST_OBJECT_LOCK (self);
      size = self->caps_size;
      channels = self->caps_channels;
      GST_OBJECT_UNLOCK (self);
      if (size > 0) {
        caps = gst_caps_make_writable (caps);
        gst_caps_set_simple (caps, "width", G_TYPE_INT, size,
            "height", G_TYPE_INT, size, "format", G_TYPE_STRING,
            channels == 1 ? "GRAY8" : "RGB", NULL);
      }
      if (filter) {
        result = gst_caps_intersect_full (filter, caps,
            GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref (caps);
      } else {
        result = caps;
      }
      gst_query_set_caps_result (query, result);
      gst_caps_unref (result);
      return TRUE;
    }
    case GST_QUERY_ACCEPT_CAPS:{
      GstCaps *caps, *templ;
      gst_query_parse_accept_caps (query, &caps);
      templ = gst_pad_get_pad_template_caps (pad);
      gst_query_set_accept_caps_result (query, gst_caps_is_subset (caps,
              templ));
      gst_caps_unref (templ);
      return TRUE;
    }
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

/* The gradient event of ntxentsink, handed to the waiting train step. */
static gboolean
gst_simclr_encoder_src_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (parent);
  GstSimclrGradient g;
  gboolean accepted;

  if (!gst_simclr_gradient_event_parse (event, &g))
    return gst_pad_event_default (pad, parent, event);
  if (g.gradient == NULL) {
    GST_WARNING_OBJECT (self, "ignoring malformed gradient event %"
        GST_PTR_FORMAT, gst_event_get_structure (event));
    gst_event_unref (event);
    return FALSE;
  }
  accepted = gst_simclr_gradient_wait_offer (&self->grad, &g);
  if (!accepted)
    GST_WARNING_OBJECT (self, "ignoring a gradient for unexpected step %"
        G_GUINT64_FORMAT, g.step);
  else
    GST_LOG_OBJECT (self, "gradient of step %" G_GUINT64_FORMAT, g.step);
  gst_simclr_gradient_clear (&g);
  gst_event_unref (event);
  return accepted;
}

/* ---- state ------------------------------------------------------------------ */

/* Once a model is known (embed mode, resume-from), checks that upstream can
 * produce its frames at all, so that a caps mistake fails the READY->PAUSED
 * change with an error naming both sides. Otherwise the upstream source
 * found out by itself a moment later, in its streaming thread, and posted
 * only "Internal data stream error ... not-negotiated"; gst-launch-1.0 1.22
 * could even hang on it (an error before its main loop runs is lost; issue
 * 15). Not linked yet (decodebin): no check. */
static gboolean
gst_simclr_encoder_check_upstream (GstSimclrEncoder * self)
{
  GstCaps *ours, *peer = NULL;
  gint size, channels;
  gchar *o, *p;

  GST_OBJECT_LOCK (self);
  size = self->caps_size;
  channels = self->caps_channels;
  GST_OBJECT_UNLOCK (self);
  if (size <= 0)
    return TRUE;
  ours = gst_pad_query_caps (self->sinkpad, NULL);
  if (gst_simclr_peer_can_negotiate (self->sinkpad, ours, &peer)) {
    gst_caps_unref (ours);
    return TRUE;
  }
  o = gst_caps_to_string (ours);
  p = gst_caps_to_string (peer);
  GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
      ("The model of \"%s\" takes %dx%d %s frames, which upstream cannot "
          "produce: it offers %s. Add videoscale and videoconvert before "
          "simclrencoder (or a caps filter video/x-raw,width=%d,height=%d,"
          "format=%s).", self->model_origin ? self->model_origin : "",
          size, size, channels == 1 ? "GRAY8" : "RGB", p, size, size,
          channels == 1 ? "GRAY8" : "RGB"),
      ("the encoder accepts %s", o));
  g_free (o);
  g_free (p);
  gst_caps_unref (ours);
  gst_caps_unref (peer);
  return FALSE;
}

static GstStateChangeReturn
gst_simclr_encoder_change_state (GstElement * element,
    GstStateChange transition)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      GST_OBJECT_LOCK (self);
      gst_simclr_encoder_settings_copy (&self->run, &self->props);
      GST_OBJECT_UNLOCK (self);
      gst_simclr_gradient_wait_set_flushing (&self->grad, FALSE);
      gst_simclr_gradient_wait_set_shutdown (&self->grad, FALSE);
      if (!gst_simclr_encoder_start (self)
          || !gst_simclr_encoder_check_upstream (self)) {
        gst_simclr_encoder_reset (self);
        return GST_STATE_CHANGE_FAILURE;
      }
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* Wake a streaming thread waiting for a gradient, so that the pad
       * deactivation below can take the stream lock. */
      gst_simclr_gradient_wait_set_shutdown (&self->grad, TRUE);
      /* Replay mode: stop the training thread, save unsaved steps. */
      gst_simclr_encoder_live_stop (self);
      break;
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (gst_simclr_encoder_parent_class)->change_state
      (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      gst_simclr_encoder_reset (self);
      break;
    default:
      break;
  }
  return ret;
}
