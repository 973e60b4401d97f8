/* gstntxentsink.c: the NT-Xent loss sink (issue 4).
 *
 * Glue only: it checks buffers and metas, hands them to the core's loss
 * object (include/simclr/loss.h: the loss, dL/dz and, under MPI, the
 * all-gather of every rank's rows), sends the gradient upstream to
 * simclrencoder and reports metrics. It holds no model and computes
 * nothing itself.
 */

/**
 * SECTION:element-ntxentsink
 * @title: ntxentsink
 *
 * ntxentsink is the end of a SimCLR training pipeline. Each buffer holds the
 * projections z of one training step: 2N rows of `dimension` float32, rows
 * 0..N-1 view 0 of N samples and rows N..2N-1 view 1 of the same samples in
 * the same order, with a #GstSimclrEmbeddingMeta naming each row. Caps with
 * `views=V` (simclrencoder views=V) carry V views of each sample, V x N rows
 * view-major; the loss is then the multi-positive form of NT-Xent, every
 * other view of the anchor's sample a positive. For every
 * buffer the sink computes the NT-Xent loss (temperature
 * #GstNtxentSink:temperature) and its gradient dL/dz, and sends the gradient
 * upstream as a custom upstream event named `simclr-gradient` whose structure
 * holds:
 *
 * * #guint64 `step`: the step of the buffer (from the embedding meta)
 * * #gint `rows`: 2N
 * * #gint `dimension`: D
 * * #gdouble `loss`, `top1`, `top5`: as in the message below
 * * #gdouble `temperature`: the temperature the loss used (the encoder
 *   records it in its checkpoints)
 * * #GstBuffer `gradient`: rows x D float32, row-major, dL/dz
 *
 * If #GstNtxentSink:post-messages is %TRUE, the sink posts an element message
 * named `simclr-train` after every #GstNtxentSink:interval steps (the steps
 * whose 1-based number, step + 1, is a multiple of the interval). The
 * message's structure contains these fields:
 *
 * * #guint64 `step`: 0-based index of the training step just done
 * * #gdouble `epoch`: the epoch the step's samples were drawn in, as the
 *   encoder reports it in the embedding meta (the largest of the batch;
 *   0 for streams)
 * * #gdouble `loss`: the NT-Xent loss of the step, mean over the 2N anchors,
 *   in nats (natural log)
 * * #gdouble `top1`: fraction (0..1) of anchors whose positive is the most
 *   similar of the other 2N-1 rows
 * * #gdouble `top5`: fraction (0..1) of anchors whose positive is among the 5
 *   most similar other rows
 * * #gdouble `lr`: the learning rate the encoder used for the step
 * * #gdouble `views-per-second`: views (rows) per second of wall-clock time
 *   over the interval that ends with this step; the first interval is
 *   measured from the start of the stream, so it includes start-up
 *
 * When the encoder trains from a replay buffer (simclrencoder replay-size >
 * 0, live sources), the message also carries the stream's counts since the
 * encoder started, as the encoder reports them in the embedding meta:
 *
 * * #guint64 `frames-seen`: samples (pairs of views) that reached the buffer
 * * #guint64 `frames-buffered`: of those, the samples taken into it
 * * #guint64 `frames-trained`: distinct samples drawn into at least one batch
 * * #guint64 `frames-dropped`: samples never trained on (refused by a
 *   reservoir, overwritten before being drawn, or missing a view)
 * * #guint `replay-held`: samples in the buffer at this step
 *
 * If #GstNtxentSink:metrics-location is set, the same rows are appended to a
 * CSV file (header line `step,epoch,loss,top1,top5,lr,views-per-second`),
 * flushed after each row so it can be followed during training.
 *
 * Data-parallel training: under `mpirun -np K` (plugin built with MPI, see
 * gstsimclrmpi.h) each rank's sink all-gathers the 2N rows of every rank
 * (2NK rows; the positive of a row is the other view of the same sample of
 * the same rank), computes the loss and accuracies over all 2NK anchors and
 * returns to its encoder dL/dz of its own 2N rows, where L is that global
 * loss. The `loss`, `top1`, `top5` and `views-per-second` figures are
 * global; only rank 0 posts messages and writes the metrics file.
 *
 * A queue of negatives (#GstNtxentSink:queue-size Q > 0): the projections
 * of the last steps, up to Q rows (all ranks' under MPI, the same on every
 * rank), are extra negatives of every anchor, without gradient (a memory
 * bank, MoCo's queue without a momentum encoder), so a small batch sees
 * thousands of negatives. A step's rows join the queue after its gradient;
 * the oldest leave first. The queue starts empty at every start of the
 * element and is not saved in the encoder's checkpoint: a resumed run
 * refills it within Q / 2N steps (its first step is the loss without a
 * queue). The `simclr-train` message then also carries
 * #guint `queue-length`: rows in the queue after the step.
 *
 * A non-finite loss or embedding stops the stream with a STREAM/FAILED error
 * naming the step; no gradient is sent for it, so the encoder does not apply
 * it (the last good checkpoint stays).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -m simclrdatasetsrc location=/usr/share/datasets/fashion-mnist \
 *     num-samples=640 ! simclraugment size=28 ! queue \
 *     ! simclrencoder batch-size=64 width=0.25 warmup-steps=1 total-steps=10 \
 *     ! ntxentsink interval=2 metrics-location=metrics.csv
 * ]| trains a small encoder for 10 steps on Fashion-MNIST, printing a
 * `simclr-train` message every 2 steps and writing them to metrics.csv
 * (pipelines/pretrain-fashion-mnist.sh runs longer).
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstntxentsink.h"
#include "gstsimclr.h"
#include "gstsimclrgradient.h"
#include "gstsimclrmpi.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include "simclr/loss.h"

GST_DEBUG_CATEGORY_STATIC (gst_ntxent_sink_debug);
#define GST_CAT_DEFAULT gst_ntxent_sink_debug

/* The recipe's temperature (issue 11): chosen on a validation split of
 * Fashion-MNIST for budgets of minutes (README "Linear evaluation"). */
#define DEFAULT_TEMPERATURE 0.2f
/* Issue 15: at G_MINFLOAT (1.2e-38) the gradient, ~1/tau, overflows float
 * and the first step fails with a NaN gradient; 1e-30 still trains (a
 * temperature far below SimCLR's 0.05 - 1, but a finite one). */
#define MIN_TEMPERATURE 1e-30f
#define MAX_TEMPERATURE 10.0f
#define DEFAULT_QUEUE_SIZE 0
#define DEFAULT_INTERVAL 1
#define DEFAULT_POST_MESSAGES TRUE
#define DEFAULT_METRICS_LOCATION NULL

enum
{
  PROP_0,
  PROP_TEMPERATURE,
  PROP_QUEUE_SIZE,
  PROP_INTERVAL,
  PROP_POST_MESSAGES,
  PROP_METRICS_LOCATION,
  PROP_LAST_LOSS,
  PROP_STEP,
};

struct _GstNtxentSink
{
  GstBaseSink parent;

  gboolean prepared;            /* change_state did start ()'s work */
  /* Properties: written under the object lock, snapshot per buffer. */
  gfloat temperature;
  guint queue_size;
  guint interval;
  gboolean post_messages;
  gchar *metrics_location;
  gdouble last_loss;            /* read-only */
  guint64 step;                 /* read-only */

  /* Streaming thread only. */
  gint dim;                     /* from caps, 0 until set */
  gint views;                   /* from caps (2 without the field) */
  SimclrLoss *loss;             /* from start to stop */
  FILE *metrics_file;
  gchar *metrics_file_name;     /* the name it was opened under */
  gint64 window_start;          /* g_get_monotonic_time () in us */
  guint64 window_views;         /* rows (of all ranks) seen since window_start */
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (SIMCLR_EMBEDDING_CAPS));

#define gst_ntxent_sink_parent_class parent_class
G_DEFINE_TYPE (GstNtxentSink, gst_ntxent_sink, GST_TYPE_BASE_SINK);
GST_ELEMENT_REGISTER_DEFINE (ntxentsink, "ntxentsink", GST_RANK_NONE,
    GST_TYPE_NTXENT_SINK);

static void gst_ntxent_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_ntxent_sink_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static void gst_ntxent_sink_finalize (GObject * object);
static gboolean gst_ntxent_sink_start (GstBaseSink * sink);
static gboolean gst_ntxent_sink_stop (GstBaseSink * sink);
static GstStateChangeReturn gst_ntxent_sink_change_state (GstElement *
    element, GstStateChange transition);
static gboolean gst_ntxent_sink_set_caps (GstBaseSink * sink, GstCaps * caps);
static GstFlowReturn gst_ntxent_sink_render (GstBaseSink * sink,
    GstBuffer * buffer);

static void
gst_ntxent_sink_class_init (GstNtxentSinkClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *basesink_class = GST_BASE_SINK_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_ntxent_sink_debug, "ntxentsink", 0,
      "NT-Xent loss sink");

  gobject_class->set_property = gst_ntxent_sink_set_property;
  gobject_class->get_property = gst_ntxent_sink_get_property;
  gobject_class->finalize = gst_ntxent_sink_finalize;

  /**
   * GstNtxentSink:temperature:
   *
   * The temperature tau dividing the cosine similarities. Default 0.2, the
   * recipe chosen on a validation split of Fashion-MNIST for budgets of
   * minutes (README "Linear evaluation"; 0.1 measured within one seed's
   * noise of it). SimCLR's paper uses 0.5 at batch 256 and 0.1 for long
   * runs.
   */
  g_object_class_install_property (gobject_class, PROP_TEMPERATURE,
      g_param_spec_float ("temperature", "Temperature",
          "Temperature tau of the NT-Xent loss: cosine similarities are "
          "divided by it before the softmax (must be > 0). 0.2 is the "
          "short-budget recipe; SimCLR's paper uses 0.5 (long runs 0.1)",
          MIN_TEMPERATURE, MAX_TEMPERATURE, DEFAULT_TEMPERATURE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstNtxentSink:queue-size:
   *
   * Rows of a queue of negatives: the projections of earlier steps (all
   * ranks' under MPI), extra negatives of every anchor without gradient.
   * 0 (default) = no queue, the plain NT-Xent loss. The queue starts empty
   * and is not in checkpoints (see above). Measured (README, "A queue of
   * negatives"): without a momentum encoder a queue of 4096 ruined the
   * representation at the recipe's learning rate (the encoder chases its
   * own stale rows, as MoCo reports for momentum 0), hence off by default.
   */
  g_object_class_install_property (gobject_class, PROP_QUEUE_SIZE,
      g_param_spec_uint ("queue-size", "Queue size",
          "Rows of projections of earlier steps kept as extra negatives "
          "without gradient (a memory bank; all ranks' rows under MPI); "
          "0 = none, the plain NT-Xent loss",
          0, SIMCLR_LOSS_MAX_QUEUE, DEFAULT_QUEUE_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstNtxentSink:interval:
   *
   * Report metrics after every this many steps.
   */
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval",
          "Post a simclr-train message (and write a metrics row) after every "
          "this many training steps; 0 = never",
          0, G_MAXUINT, DEFAULT_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstNtxentSink:post-messages:
   *
   * Whether to post `simclr-train` element messages on the bus.
   */
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post a simclr-train element message on the bus every interval "
          "steps", DEFAULT_POST_MESSAGES,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstNtxentSink:metrics-location:
   *
   * A CSV file to write the metrics rows to (truncated at start).
   */
  g_object_class_install_property (gobject_class, PROP_METRICS_LOCATION,
      g_param_spec_string ("metrics-location", "Metrics location",
          "CSV file receiving one row per interval (step, epoch, loss, top1, "
          "top5, lr, views-per-second); NULL = none. Truncated at start",
          DEFAULT_METRICS_LOCATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstNtxentSink:last-loss:
   *
   * The loss of the last step (0 before the first).
   */
  g_object_class_install_property (gobject_class, PROP_LAST_LOSS,
      g_param_spec_double ("last-loss", "Last loss",
          "NT-Xent loss of the last step in nats (0 before the first step)",
          -G_MAXDOUBLE, G_MAXDOUBLE, 0.0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstNtxentSink:step:
   *
   * The step of the last buffer processed (0 before the first).
   */
  g_object_class_install_property (gobject_class, PROP_STEP,
      g_param_spec_uint64 ("step", "Step",
          "0-based training step of the last buffer processed (0 before the "
          "first)", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (element_class,
      "NT-Xent loss sink", "Sink/Machine-Learning",
      "Computes the SimCLR NT-Xent loss of paired embeddings, sends dL/dz "
      "upstream and posts training metrics",
      "gst-simclr developers");

  basesink_class->start = GST_DEBUG_FUNCPTR (gst_ntxent_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR (gst_ntxent_sink_stop);
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_ntxent_sink_change_state);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR (gst_ntxent_sink_set_caps);
  basesink_class->render = GST_DEBUG_FUNCPTR (gst_ntxent_sink_render);
}

static void
gst_ntxent_sink_init (GstNtxentSink * self)
{
  self->temperature = DEFAULT_TEMPERATURE;
  self->queue_size = DEFAULT_QUEUE_SIZE;
  self->interval = DEFAULT_INTERVAL;
  self->post_messages = DEFAULT_POST_MESSAGES;
  self->metrics_location = g_strdup (DEFAULT_METRICS_LOCATION);
  self->last_loss = 0.0;
  self->step = 0;
  self->views = 2;

  /* Training runs as fast as the CPU allows, not at the stream's clock
   * (multifilesink does the same). */
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
}

static void
gst_ntxent_sink_finalize (GObject * object)
{
  GstNtxentSink *self = GST_NTXENT_SINK (object);

  g_free (self->metrics_location);
  simclr_loss_free (self->loss);
  if (self->metrics_file)
    fclose (self->metrics_file);
  g_free (self->metrics_file_name);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ntxent_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstNtxentSink *self = GST_NTXENT_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_TEMPERATURE:
      self->temperature = g_value_get_float (value);
      break;
    case PROP_QUEUE_SIZE:
      self->queue_size = g_value_get_uint (value);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint (value);
      break;
    case PROP_POST_MESSAGES:
      self->post_messages = g_value_get_boolean (value);
      break;
    case PROP_METRICS_LOCATION:
      g_free (self->metrics_location);
      self->metrics_location = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ntxent_sink_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstNtxentSink *self = GST_NTXENT_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_TEMPERATURE:
      g_value_set_float (value, self->temperature);
      break;
    case PROP_QUEUE_SIZE:
      g_value_set_uint (value, self->queue_size);
      break;
    case PROP_INTERVAL:
      g_value_set_uint (value, self->interval);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->post_messages);
      break;
    case PROP_METRICS_LOCATION:
      g_value_set_string (value, self->metrics_location);
      break;
    case PROP_LAST_LOSS:
      g_value_set_double (value, self->last_loss);
      break;
    case PROP_STEP:
      g_value_set_uint64 (value, self->step);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_ntxent_sink_prepare (GstBaseSink * sink)
{
  GstNtxentSink *self = GST_NTXENT_SINK (sink);
  gchar *location;
  guint queue_size;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->metrics_location);
  queue_size = self->queue_size;
  self->last_loss = 0.0;
  self->step = 0;
  GST_OBJECT_UNLOCK (self);

  self->window_start = g_get_monotonic_time ();
  self->window_views = 0;

  /* Data-parallel (mpirun -np K, see gstsimclrmpi.h): the loss is computed
   * over the rows of all ranks; rank 0 alone reports and writes metrics. */
  {
    GError *mpi_error = NULL;
    gst_simclr_mpi_start (GST_ELEMENT (self), &mpi_error);
    if (mpi_error) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("%s", mpi_error->message),
          (NULL));
      g_clear_error (&mpi_error);
      g_free (location);
      return FALSE;
    }
  }

  /* The loss of every step, with its all-gather on the loss channel. */
  {
    SimclrLossConfig cfg;
    SimclrComm comm;
    SimclrError err = { 0 };
    simclr_loss_config_default (&cfg);
    cfg.queue_size = (int) queue_size;
    gst_simclr_mpi_comm (GST_SIMCLR_MPI_LOSS, &comm);
    g_clear_pointer (&self->loss, simclr_loss_free);
    self->loss = simclr_loss_new (&cfg, &comm, &err);
    if (!self->loss) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT, (NULL), ("%s", err.message));
      g_free (location);
      return FALSE;
    }
  }

  if (location && location[0] != '\0' && gst_simclr_mpi_rank () == 0) {
    self->metrics_file = g_fopen (location, "w");
    if (!self->metrics_file)
      goto open_failed;
    self->metrics_file_name = location;
    location = NULL;
    if (fputs ("step,epoch,loss,top1,top5,lr,views-per-second\n",
            self->metrics_file) < 0 || fflush (self->metrics_file) != 0)
      goto write_failed;
  }
  g_free (location);
  return TRUE;

  /* ERRORS */
open_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Could not open metrics file \"%s\" for writing.", location),
        GST_ERROR_SYSTEM);
    g_free (location);
    return FALSE;
  }
write_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to metrics file \"%s\".", self->metrics_file_name),
        GST_ERROR_SYSTEM);
    return FALSE;
  }
}

/* The work of start() runs in change_state, before the base class's
 * NULL->READY (where GstBaseSink calls start ()): when it fails, ours is the only error posted. A failing
 * start() made the base class post a second, generic one ("state change
 * failed and some element failed to post a proper error message"; issue
 * 15: each error once). */
static gboolean
gst_ntxent_sink_start (GstBaseSink * base)
{
  GstNtxentSink *self = GST_NTXENT_SINK (base);

  if (self->prepared) {
    self->prepared = FALSE;
    return TRUE;
  }
  return gst_ntxent_sink_prepare (base);
}

static GstStateChangeReturn
gst_ntxent_sink_change_state (GstElement * element, GstStateChange transition)
{
  return gst_simclr_change_state_prepared (element, transition,
      GST_STATE_CHANGE_NULL_TO_READY, GST_ELEMENT_CLASS (parent_class),
      (GstSimclrPrepareFunc) gst_ntxent_sink_prepare,
      (GstSimclrPrepareFunc) gst_ntxent_sink_stop,
      &GST_NTXENT_SINK (element)->prepared);
}

static gboolean
gst_ntxent_sink_stop (GstBaseSink * sink)
{
  GstNtxentSink *self = GST_NTXENT_SINK (sink);

  if (self->metrics_file) {
    if (fclose (self->metrics_file) != 0)
      GST_ELEMENT_WARNING (self, RESOURCE, CLOSE,
          ("Could not close metrics file \"%s\".", self->metrics_file_name),
          GST_ERROR_SYSTEM);
    self->metrics_file = NULL;
  }
  g_clear_pointer (&self->metrics_file_name, g_free);
  g_clear_pointer (&self->loss, simclr_loss_free);
  self->dim = 0;
  self->views = 2;
  return TRUE;
}

static gboolean
gst_ntxent_sink_set_caps (GstBaseSink * sink, GstCaps * caps)
{
  GstNtxentSink *self = GST_NTXENT_SINK (sink);
  GstStructure *s = gst_caps_get_structure (caps, 0);
  gint dim, views = 2;

  if (!gst_structure_get_int (s, "dimension", &dim) || dim < 1) {
    GST_ERROR_OBJECT (self, "caps without a dimension: %" GST_PTR_FORMAT,
        caps);
    return FALSE;
  }
  if (gst_structure_has_field (s, "views")
      && (!gst_structure_get_int (s, "views", &views) || views < 2
          || views > SIMCLR_LOSS_MAX_VIEWS)) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("caps with views outside [2, %d]: %" GST_PTR_FORMAT,
            SIMCLR_LOSS_MAX_VIEWS, caps));
    return FALSE;
  }
  /* A loss of V views per sample; made at start for 2. Under MPI every
   * rank's encoder has the same views, so every rank remakes its loss at
   * the same point (creating one is local: no collective). */
  if (self->loss && simclr_loss_get_config (self->loss)->views != views) {
    SimclrLossConfig cfg = *simclr_loss_get_config (self->loss);
    SimclrComm comm;
    SimclrError err = { 0 };
    SimclrLoss *loss;
    cfg.views = views;
    gst_simclr_mpi_comm (GST_SIMCLR_MPI_LOSS, &comm);
    loss = simclr_loss_new (&cfg, &comm, &err);
    if (!loss) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT, (NULL), ("%s", err.message));
      return FALSE;
    }
    simclr_loss_free (self->loss);
    self->loss = loss;
  }
  self->dim = dim;
  self->views = views;
  GST_DEBUG_OBJECT (self, "dimension %d, %d views per sample", dim, views);
  return TRUE;
}

/* The double the user meant by the float property @f: the shortest
 * decimal that reads back as @f (0.2f -> 0.2, not 0.20000000298...), so the
 * encoder's checkpoint records "0.2" as a core run with temperature 0.2
 * does. The loss computes with the float either way. */
static gdouble
float_as_decimal (gfloat f)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE], fmt[8];

  for (gint digits = 1; digits <= 9; digits++) {
    /* g_ascii_formatd: a '.' whatever the locale */
    g_snprintf (fmt, sizeof fmt, "%%.%dg", digits);
    g_ascii_formatd (buf, sizeof buf, fmt, (gdouble) f);
    if ((gfloat) g_ascii_strtod (buf, NULL) == f)
      return g_ascii_strtod (buf, NULL);
  }
  return f;
}

/* The loss of one step (all ranks' rows under MPI) and dz = dL/dz of this
 * rank's rows z (rows, dim), dz (rows, dim) overwritten. */
static SimclrStatus
gst_ntxent_sink_compute (GstNtxentSink * self, const float *z, gint rows,
    gint dim, gfloat tau, SimclrLossResult * result, float *dz,
    SimclrError * err)
{
  SimclrStatus status;

  status = simclr_loss_set_temperature (self->loss, tau, err);
  if (status == SIMCLR_OK)
    status = simclr_loss_forward (self->loss, z, rows, dim, result, err);
  if (status == SIMCLR_OK)
    status = simclr_loss_backward (self->loss, dz, err);
  return status;
}

/* Epoch and learning rate of the step, as the encoder put them in the meta. */
static void
embedding_meta_epoch_lr (const GstSimclrEmbeddingMeta * meta, gdouble * epoch,
    gdouble * lr)
{
  *epoch = meta->epoch;
  *lr = meta->lr;
}

static void
write_csv_double (GString * line, gdouble v)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
  /* Locale-independent shortest round-trip form. */
  g_string_append (line, g_ascii_dtostr (buf, sizeof buf, v));
}

/* Posts the message and/or writes the CSV row of one interval. Returns FALSE
 * (after posting an error) if the CSV row cannot be written. */
static gboolean
gst_ntxent_sink_report (GstNtxentSink * self, gboolean post, guint64 step,
    gdouble epoch, const SimclrLossResult * res, gdouble lr,
    const GstSimclrEmbeddingMeta * meta)
{
  gint64 now = g_get_monotonic_time ();
  gdouble seconds = (now - self->window_start) / 1e6;
  gdouble vps = seconds > 0 ? self->window_views / seconds : 0.0;

  self->window_start = now;
  self->window_views = 0;

  if (post) {
    GstStructure *s = gst_structure_new (SIMCLR_TRAIN_MESSAGE,
        "step", G_TYPE_UINT64, step,
        "epoch", G_TYPE_DOUBLE, epoch,
        "loss", G_TYPE_DOUBLE, res->loss,
        "top1", G_TYPE_DOUBLE, res->top1,
        "top5", G_TYPE_DOUBLE, res->top5,
        "lr", G_TYPE_DOUBLE, lr,
        "views-per-second", G_TYPE_DOUBLE, vps, NULL);
    if (meta && meta->has_counts)
      gst_structure_set (s,
          "frames-seen", G_TYPE_UINT64, meta->frames_seen,
          "frames-buffered", G_TYPE_UINT64, meta->frames_buffered,
          "frames-trained", G_TYPE_UINT64, meta->frames_trained,
          "frames-dropped", G_TYPE_UINT64, meta->frames_dropped,
          "replay-held", G_TYPE_UINT, meta->replay_held, NULL);
    if (simclr_loss_get_config (self->loss)->queue_size > 0)
      gst_structure_set (s, "queue-length", G_TYPE_UINT,
          (guint) simclr_loss_queue_length (self->loss), NULL);
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), s));
  }

  if (self->metrics_file) {
    GString *line = g_string_new (NULL);
    gboolean ok;

    g_string_append_printf (line, "%" G_GUINT64_FORMAT ",", step);
    write_csv_double (line, epoch);
    g_string_append_c (line, ',');
    write_csv_double (line, res->loss);
    g_string_append_c (line, ',');
    write_csv_double (line, res->top1);
    g_string_append_c (line, ',');
    write_csv_double (line, res->top5);
    g_string_append_c (line, ',');
    write_csv_double (line, lr);
    g_string_append_c (line, ',');
    write_csv_double (line, vps);
    g_string_append_c (line, '\n');
    ok = fwrite (line->str, 1, line->len, self->metrics_file) == line->len
        && fflush (self->metrics_file) == 0;
    g_string_free (line, TRUE);
    if (!ok)
      goto write_failed;
  }
  return TRUE;

  /* ERRORS */
write_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to metrics file \"%s\".", self->metrics_file_name),
        GST_ERROR_SYSTEM);
    return FALSE;
  }
}

static GstFlowReturn
gst_ntxent_sink_render (GstBaseSink * sink, GstBuffer * buffer)
{
  GstNtxentSink *self = GST_NTXENT_SINK (sink);
  GstSimclrEmbeddingMeta *meta;
  GstMapInfo zmap, dzmap;
  GstBuffer *grad;
  GstEvent *event;
  SimclrLossResult res = { 0 };
  SimclrError err = { 0 };
  SimclrStatus status;
  gfloat tau;
  guint interval;
  gboolean post;
  gsize row_bytes, size;
  gint rows, dim = self->dim;
  guint64 step;
  gdouble epoch, lr;

  GST_OBJECT_LOCK (self);
  tau = self->temperature;
  interval = self->interval;
  post = self->post_messages;
  GST_OBJECT_UNLOCK (self);

  if (dim < 1)
    goto no_caps;

  meta = gst_buffer_get_simclr_embedding_meta (buffer);
  if (!meta)
    goto no_meta;
  step = meta->step;
  embedding_meta_epoch_lr (meta, &epoch, &lr);

  size = gst_buffer_get_size (buffer);
  row_bytes = (gsize) dim * sizeof (float);
  if (size == 0 || size % row_bytes != 0 || size / row_bytes > G_MAXINT)
    goto wrong_size;
  rows = size / row_bytes;
  if (rows < self->views || rows % self->views != 0)
    goto odd_rows;
  if (meta->rows != (guint) rows)
    goto meta_mismatch;

  grad = gst_buffer_new_allocate (NULL, size, NULL);
  if (!grad)
    goto no_memory;
  if (!gst_buffer_map (buffer, &zmap, GST_MAP_READ)) {
    gst_buffer_unref (grad);
    goto map_failed;
  }
  if (!gst_buffer_map (grad, &dzmap, GST_MAP_WRITE)) {
    gst_buffer_unmap (buffer, &zmap);
    gst_buffer_unref (grad);
    goto map_failed;
  }

  status = gst_ntxent_sink_compute (self, (const float *) zmap.data, rows,
      dim, tau, &res, (float *) dzmap.data, &err);

  gst_buffer_unmap (grad, &dzmap);
  gst_buffer_unmap (buffer, &zmap);

  if (status != SIMCLR_OK) {
    gst_buffer_unref (grad);
    if (status == SIMCLR_ERROR_NUMERIC)
      goto not_finite;
    goto compute_failed;
  }
  /* The core checks this too; the gradient must never carry NaN upstream. */
  if (!isfinite (res.loss)) {
    gst_buffer_unref (grad);
    g_snprintf (err.message, sizeof err.message, "loss is %g", res.loss);
    goto not_finite;
  }

  GST_LOG_OBJECT (self, "step %" G_GUINT64_FORMAT ": %d rows, loss %f, "
      "top1 %f, top5 %f", step, rows, res.loss, res.top1, res.top5);

  GST_OBJECT_LOCK (self);
  self->last_loss = res.loss;
  self->step = step;
  GST_OBJECT_UNLOCK (self);

  /* The rendezvous with simclrencoder (gstsimclrgradient.h). */
  {
    GstSimclrGradient g = { 0 };
    g.step = step;
    g.rows = rows;
    g.dimension = dim;
    g.loss = res.loss;
    g.top1 = res.top1;
    g.top5 = res.top5;
    g.temperature = float_as_decimal (tau);
    g.gradient = grad;
    event = gst_simclr_gradient_event_new (&g);
  }
  gst_buffer_unref (grad);
  if (!gst_pad_push_event (GST_BASE_SINK_PAD (self), event))
    GST_DEBUG_OBJECT (self, "nobody upstream took the gradient of step %"
        G_GUINT64_FORMAT, step);

  self->window_views += res.rows;
  if (interval > 0 && (step + 1) % interval == 0) {
    if (!gst_ntxent_sink_report (self, post && gst_simclr_mpi_rank () == 0,
            step, epoch, &res, lr, meta))
      return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;

  /* ERRORS */
no_caps:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("received a buffer before caps with a dimension"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
no_meta:
  {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Embedding buffer without a GstSimclrEmbeddingMeta."),
        ("ntxentsink needs the meta naming each row (and the step)"));
    return GST_FLOW_ERROR;
  }
wrong_size:
  {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Embedding buffer of step %" G_GUINT64_FORMAT " has a wrong size.",
            step),
        ("%" G_GSIZE_FORMAT " bytes is not a whole number of rows of %d "
            "float32", size, dim));
    return GST_FLOW_ERROR;
  }
odd_rows:
  {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Embedding buffer of step %" G_GUINT64_FORMAT " has %d rows; "
            "the loss needs a multiple of the %d views per sample (V x N), "
            "at least %d.", step, rows, self->views, self->views), (NULL));
    return GST_FLOW_ERROR;
  }
meta_mismatch:
  {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Embedding buffer of step %" G_GUINT64_FORMAT " has %d rows but its "
            "meta names %u.", step, rows, meta->rows), (NULL));
    return GST_FLOW_ERROR;
  }
no_memory:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, (NULL),
        ("could not allocate a gradient of %" G_GSIZE_FORMAT " bytes", size));
    return GST_FLOW_ERROR;
  }
map_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("could not map the buffers of step %" G_GUINT64_FORMAT, step));
    return GST_FLOW_ERROR;
  }
not_finite:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Non-finite NT-Xent loss or embeddings at step %" G_GUINT64_FORMAT
            "; no gradient was sent.", step), ("%s", err.message));
    return GST_FLOW_ERROR;
  }
compute_failed:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("NT-Xent failed at step %" G_GUINT64_FORMAT ".", step),
        ("%s: %s", simclr_status_to_string (status), err.message));
    return GST_FLOW_ERROR;
  }
}
