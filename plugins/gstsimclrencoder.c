/* gstsimclrencoder.c: the simclrencoder element. In train mode it gathers
 * the two augmented views of N samples, runs the SimCLR forward pass,
 * pushes the 2N embeddings downstream, waits for the loss gradient that
 * ntxentsink sends back upstream and takes the optimiser step; in embed mode
 * it turns frames into embeddings with a trained checkpoint.
 *
 * This file is glue (pads, caps, properties, events, bus messages): the
 * model, the optimiser, the schedule and the checkpoint format are
 * libsimclr's (include/simclr/trainer.h, checkpoint.h). It does not compute
 * the loss (ntxentsink does) and does not augment (simclraugment does).
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
 * come interleaved or shuffled. When N = #GstSimclrEncoder:batch-size samples
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
 * element message `simclr-checkpoint` with fields `step` (guint64, steps
 * taken), `location` (gchararray) and `samples-seen` (guint64, step x N:
 * the samples a resumed run should skip). A model whose weights are not finite is
 * never written. #GstSimclrEncoder:resume-from continues a run from such a
 * file: model, optimiser and schedule configuration then come from the file
 * (the properties that set them are ignored), and the stream should skip the
 * `step * batch_size` samples already seen (simclrdatasetsrc start-position).
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
 * Non-square input caps are refused with an error naming the fix (crop or
 * scale to a square).
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
 * checkpoints, and `samples-seen` counts the samples of one rank (the
 * start-position of its simclrdatasetsrc shard).
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
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrencoder.h"
#include "gstsimclr.h"
#include "gstsimclrmpi.h"

#include <gst/video/video.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/checkpoint.h"
#include "simclr/dataset.h"
#include "simclr/features.h"
#include "simclr/linclf.h"
#include "simclr/model.h"
#include "simclr/trainer.h"

/* Declared by OpenBLAS (not in cblas.h). */
extern int openblas_get_num_threads (void);

GST_DEBUG_CATEGORY_STATIC (gst_simclr_encoder_debug);
#define GST_CAT_DEFAULT gst_simclr_encoder_debug

/* How long the element waits for a gradient before it warns (once) that
 * nothing seems to send one. */
#define GRADIENT_WARN_SECONDS 30

enum
{
  PROP_0,
  PROP_MODE,
  PROP_ARCH,
  PROP_WIDTH,
  PROP_STEM,
  PROP_PROJ_LAYERS,
  PROP_PROJ_HIDDEN,
  PROP_PROJ_DIM,
  PROP_BATCH_SIZE,
  PROP_OPTIMIZER,
  PROP_LEARNING_RATE,
  PROP_LR_SCALING,
  PROP_WEIGHT_DECAY,
  PROP_MOMENTUM,
  PROP_WARMUP_STEPS,
  PROP_TOTAL_STEPS,
  PROP_CHECKPOINT_LOCATION,
  PROP_CHECKPOINT_INTERVAL,
  PROP_RESUME_FROM,
  PROP_SEED,
  PROP_THREADS,
  PROP_STOP_AT_END,
  PROP_OUTPUT,
  PROP_EMBED_BATCH,
  PROP_MAX_LATENCY,
  PROP_MONITOR_LOCATION,
  PROP_MONITOR_SAMPLES,
  PROP_STEP,
  PROP_LR,
};

#define DEFAULT_MODE GST_SIMCLR_ENCODER_MODE_TRAIN
#define DEFAULT_ARCH SIMCLR_ARCH_RESNET18
#define DEFAULT_WIDTH 1.0
#define DEFAULT_STEM GST_SIMCLR_ENCODER_STEM_AUTO
#define DEFAULT_PROJ_LAYERS 2
#define DEFAULT_PROJ_HIDDEN 0
#define DEFAULT_PROJ_DIM 128
#define DEFAULT_BATCH_SIZE 256
#define DEFAULT_OPTIMIZER SIMCLR_OPTIM_LARS
#define DEFAULT_LEARNING_RATE 0.3
#define DEFAULT_LR_SCALING SIMCLR_LR_SCALING_LINEAR
#define DEFAULT_WEIGHT_DECAY 1e-6
#define DEFAULT_MOMENTUM 0.9
#define DEFAULT_WARMUP_STEPS 10
#define DEFAULT_TOTAL_STEPS 100
#define DEFAULT_CHECKPOINT_LOCATION NULL
#define DEFAULT_CHECKPOINT_INTERVAL 0
#define DEFAULT_RESUME_FROM NULL
#define DEFAULT_SEED 0
#define DEFAULT_THREADS 0
#define DEFAULT_OUTPUT GST_SIMCLR_ENCODER_OUTPUT_REPRESENTATION
#define DEFAULT_STOP_AT_END TRUE
#define DEFAULT_EMBED_BATCH 16
#define DEFAULT_MAX_LATENCY 0
#define DEFAULT_MONITOR_LOCATION NULL
#define DEFAULT_MONITOR_SAMPLES 1000

#define MAX_BATCH_SIZE 32768
#define MAX_EMBED_BATCH 4096

/* Every property, as set by the application (under GST_OBJECT_LOCK) or as
 * snapshotted for one run (streaming thread). */
typedef struct
{
  GstSimclrEncoderMode mode;
  SimclrArch arch;
  gdouble width;
  GstSimclrEncoderStem stem;
  gint proj_layers;
  gint proj_hidden;
  gint proj_dim;
  gint batch_size;
  SimclrOptimKind optimizer;
  gdouble learning_rate;
  SimclrLrScaling lr_scaling;
  gdouble weight_decay;
  gdouble momentum;
  guint64 warmup_steps;
  guint64 total_steps;
  gchar *checkpoint_location;   /* NULL or "" = none */
  guint64 checkpoint_interval;
  gchar *resume_from;           /* NULL or "" = none */
  guint64 seed;
  gint threads;
  gboolean stop_at_end;
  GstSimclrEncoderOutput output;
  gint embed_batch;
  GstClockTime max_latency;
  gchar *monitor_location;      /* NULL or "" = no kNN monitor */
  gint monitor_samples;
} Settings;

/* A sample waiting for its views, keyed by (sample id, epoch). */
typedef struct
{
  guint64 sample_id;
  guint64 epoch;
  gint label;
  guint8 *pix[2];               /* (H,W,C) packed uint8, NULL until the view came */
  GstClockTime pts[2];
} PendingSample;

/* What embed mode keeps of a frame until its batch is computed. */
typedef struct
{
  GstClockTime pts, dts, duration;
  guint64 offset, offset_end;
  guint64 sample_id;
  gint view;
  gint label;
} EmbedFrame;

struct _GstSimclrEncoder
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* GST_OBJECT_LOCK */
  Settings props;
  guint64 cur_step;             /* read-only "step" */
  gdouble cur_lr;               /* read-only "lr" */
  gint caps_size;               /* the model's input for caps queries, 0 = */
  gint caps_channels;           /* no model yet */

  /* Streaming thread (and state changes while the pads are inactive). */
  Settings run;
  gboolean configured;          /* caps seen and model ready */
  GstVideoInfo vinfo;
  gint size;                    /* frame side = model image_size */
  gint channels;                /* 1 (GRAY8) or 3 (RGB) */
  gsize frame_bytes;            /* size * size * channels */
  gint out_dim;                 /* D of the output rows */
  SimclrTrainer *trainer;       /* train mode */
  SimclrModel *model;           /* embed mode */
  const gchar *model_origin;    /* file the model came from, for messages */
  /* train mode */
  gint n;                       /* samples per step */
  GHashTable *pending;          /* PendingSample* -> itself */
  GPtrArray *ready;             /* PendingSample*, both views, completion order */
  guint8 *batch_u8;             /* (2N,H,W,C) */
  gfloat *batch_z;              /* (2N,D) */
  gboolean saved;
  guint64 last_saved_step;
  gboolean warned_horizon;
  gboolean warned_unpaired;
  gboolean warned_view;
  /* kNN monitor (train mode, rank 0): the labelled set's two splits */
  SimclrDataset *monitor_train;
  SimclrDataset *monitor_test;
  guint64 monitor_epoch;        /* epoch of the previous batch; G_MAXUINT64 = none */
  /* embed mode */
  gfloat *embed_in;             /* (embed_batch,H,W,C) float, pixel/255 */
  gfloat *embed_out;            /* (embed_batch,D) */
  EmbedFrame *embed_frames;     /* (embed_batch) */
  gint embed_count;
  guint64 embed_batches;
  guint64 frames_seen;

  /* The gradient rendezvous between the streaming thread (waits) and the
   * thread the upstream event arrives on (the sink's, through a queue, or the
   * streaming thread itself inside gst_pad_push). */
  GMutex grad_lock;
  GCond grad_cond;
  gboolean waiting;
  guint64 wait_step;
  GstBuffer *gradient;
  gint grad_rows, grad_dim;     /* as the event said; -1 if absent */
  gboolean flushing;
  gboolean shutdown;
};

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
    GST_STATIC_CAPS (SIMCLR_EMBEDDING_CAPS));

/* ---- enum types ---------------------------------------------------------- */

#define GST_TYPE_SIMCLR_ENCODER_MODE (gst_simclr_encoder_mode_get_type ())
static GType
gst_simclr_encoder_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_SIMCLR_ENCODER_MODE_TRAIN, "Train on pairs of views", "train"},
    {GST_SIMCLR_ENCODER_MODE_EMBED, "Embed frames with a checkpoint", "embed"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_SIMCLR_ENCODER_ARCH (gst_simclr_encoder_arch_get_type ())
static GType
gst_simclr_encoder_arch_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {SIMCLR_ARCH_RESNET18, "ResNet-18", "resnet18"},
    {SIMCLR_ARCH_RESNET34, "ResNet-34", "resnet34"},
    {SIMCLR_ARCH_RESNET50, "ResNet-50", "resnet50"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderArch", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_SIMCLR_ENCODER_STEM (gst_simclr_encoder_stem_get_type ())
static GType
gst_simclr_encoder_stem_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_SIMCLR_ENCODER_STEM_AUTO, "cifar for frames up to 64 pixels, "
          "else imagenet", "auto"},
    {GST_SIMCLR_ENCODER_STEM_CIFAR, "3x3 convolution, stride 1, no max-pool",
        "cifar"},
    {GST_SIMCLR_ENCODER_STEM_IMAGENET, "7x7 convolution, stride 2, max-pool",
        "imagenet"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderStem", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_SIMCLR_ENCODER_OPTIMIZER (gst_simclr_encoder_optimizer_get_type ())
static GType
gst_simclr_encoder_optimizer_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {SIMCLR_OPTIM_LARS, "LARS (layer-wise trust ratio)", "lars"},
    {SIMCLR_OPTIM_SGD, "SGD with momentum", "sgd"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderOptimizer", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_SIMCLR_ENCODER_LR_SCALING (gst_simclr_encoder_lr_scaling_get_type ())
static GType
gst_simclr_encoder_lr_scaling_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {SIMCLR_LR_SCALING_LINEAR, "learning-rate x batch-size / 256", "linear"},
    {SIMCLR_LR_SCALING_SQRT, "learning-rate x sqrt (batch-size)", "sqrt"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderLrScaling", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_SIMCLR_ENCODER_OUTPUT (gst_simclr_encoder_output_get_type ())
static GType
gst_simclr_encoder_output_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_SIMCLR_ENCODER_OUTPUT_REPRESENTATION,
        "Representation h (encoder output, before the head)", "representation"},
    {GST_SIMCLR_ENCODER_OUTPUT_PROJECTION, "Projection z (after the head)",
        "projection"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderOutput", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* ---- forward declarations -------------------------------------------------- */

static void gst_simclr_encoder_finalize (GObject * object);
static void gst_simclr_encoder_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_simclr_encoder_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
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
static void gst_simclr_encoder_publish_input (GstSimclrEncoder * self,
    SimclrModel * m);

/* ---- class ----------------------------------------------------------------- */

static void
gst_simclr_encoder_class_init (GstSimclrEncoderClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->finalize = gst_simclr_encoder_finalize;
  gobject_class->set_property = gst_simclr_encoder_set_property;
  gobject_class->get_property = gst_simclr_encoder_get_property;

  /**
   * GstSimclrEncoder:mode:
   *
   * train: learn from pairs of views (needs ntxentsink downstream); embed:
   * emit the embeddings of a trained checkpoint.
   */
  g_object_class_install_property (gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode",
          "train: learn from pairs of views (ntxentsink downstream); embed: "
          "one embedding per frame from checkpoint-location",
          GST_TYPE_SIMCLR_ENCODER_MODE, DEFAULT_MODE, rw));
  /**
   * GstSimclrEncoder:arch:
   *
   * Encoder architecture of a new model (train mode without resume-from).
   */
  g_object_class_install_property (gobject_class, PROP_ARCH,
      g_param_spec_enum ("arch", "Architecture",
          "ResNet of a new model (ignored with resume-from and in embed mode)",
          GST_TYPE_SIMCLR_ENCODER_ARCH, DEFAULT_ARCH, rw));
  /**
   * GstSimclrEncoder:width:
   *
   * Channel width multiplier of a new model.
   */
  g_object_class_install_property (gobject_class, PROP_WIDTH,
      g_param_spec_double ("width", "Width multiplier",
          "Channel multiplier of a new model: every layer has "
          "max (1, round (channels x width)) channels (1 = torchvision's ResNet)",
          0.25, 4.0, DEFAULT_WIDTH, rw));
  /**
   * GstSimclrEncoder:stem:
   *
   * First layer of a new model; auto chooses cifar for frames of 64 pixels
   * or less (SimCLR's CIFAR-10 variant), imagenet above.
   */
  g_object_class_install_property (gobject_class, PROP_STEM,
      g_param_spec_enum ("stem", "Stem",
          "First layer of a new model: cifar (3x3 stride 1), imagenet (7x7 "
          "stride 2 + max-pool) or auto (cifar up to 64 pixels)",
          GST_TYPE_SIMCLR_ENCODER_STEM, DEFAULT_STEM, rw));
  /**
   * GstSimclrEncoder:proj-layers:
   *
   * Linear layers of the projection head: 0 (none, z = h), 2 (SimCLR v1) or
   * 3 (SimCLR v2, with batch norm). 1 is rejected at start.
   */
  g_object_class_install_property (gobject_class, PROP_PROJ_LAYERS,
      g_param_spec_int ("proj-layers", "Projection layers",
          "Linear layers of the projection head: 0 (none), 2 (SimCLR v1) or "
          "3 (SimCLR v2)", 0, 3, DEFAULT_PROJ_LAYERS, rw));
  /**
   * GstSimclrEncoder:proj-hidden:
   *
   * Hidden width of the projection head; 0 = the feature dimension d.
   */
  g_object_class_install_property (gobject_class, PROP_PROJ_HIDDEN,
      g_param_spec_int ("proj-hidden", "Projection hidden size",
          "Hidden units of the projection head (0 = the encoder's feature "
          "dimension)", 0, 65536, DEFAULT_PROJ_HIDDEN, rw));
  /**
   * GstSimclrEncoder:proj-dim:
   *
   * Output dimension of the projection head (the dimension of z).
   */
  g_object_class_install_property (gobject_class, PROP_PROJ_DIM,
      g_param_spec_int ("proj-dim", "Projection dimension",
          "Output dimension of the projection head (z)", 1, 65536,
          DEFAULT_PROJ_DIM, rw));
  /**
   * GstSimclrEncoder:batch-size:
   *
   * Samples N per training step: a step consumes 2N views and emits 2N rows.
   * Also the N of the learning-rate scaling. With resume-from, the file's
   * value is used.
   */
  g_object_class_install_property (gobject_class, PROP_BATCH_SIZE,
      g_param_spec_int ("batch-size", "Batch size",
          "Samples N per training step (2N views, 2N output rows)", 1,
          MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE, rw));
  g_object_class_install_property (gobject_class, PROP_OPTIMIZER,
      g_param_spec_enum ("optimizer", "Optimizer",
          "Optimiser: LARS (SimCLR's) or SGD with momentum",
          GST_TYPE_SIMCLR_ENCODER_OPTIMIZER, DEFAULT_OPTIMIZER, rw));
  /**
   * GstSimclrEncoder:learning-rate:
   *
   * Base learning rate, scaled by lr-scaling: the peak rate is
   * learning-rate x N / 256 (linear) or learning-rate x sqrt (N) (sqrt;
   * SimCLR uses 0.075 there).
   */
  g_object_class_install_property (gobject_class, PROP_LEARNING_RATE,
      g_param_spec_double ("learning-rate", "Learning rate",
          "Base learning rate before lr-scaling (peak = base x N / 256 or "
          "base x sqrt (N))", 0.0, G_MAXDOUBLE, DEFAULT_LEARNING_RATE, rw));
  g_object_class_install_property (gobject_class, PROP_LR_SCALING,
      g_param_spec_enum ("lr-scaling", "Learning-rate scaling",
          "How the base learning rate scales with batch-size",
          GST_TYPE_SIMCLR_ENCODER_LR_SCALING, DEFAULT_LR_SCALING, rw));
  g_object_class_install_property (gobject_class, PROP_WEIGHT_DECAY,
      g_param_spec_double ("weight-decay", "Weight decay",
          "L2 weight decay of convolution and linear weights (biases and "
          "batch-norm parameters are excluded)", 0.0, 1.0,
          DEFAULT_WEIGHT_DECAY, rw));
  g_object_class_install_property (gobject_class, PROP_MOMENTUM,
      g_param_spec_double ("momentum", "Momentum",
          "Momentum of the optimiser (0 = none; must be below 1)", 0.0, 1.0,
          DEFAULT_MOMENTUM, rw));
  /**
   * GstSimclrEncoder:warmup-steps:
   *
   * Steps of linear warm-up from 0 to the peak learning rate (default 10).
   */
  g_object_class_install_property (gobject_class, PROP_WARMUP_STEPS,
      g_param_spec_uint64 ("warmup-steps", "Warm-up steps",
          "Steps of linear learning-rate warm-up (0 = none)", 0, G_MAXINT64,
          DEFAULT_WARMUP_STEPS, rw));
  /**
   * GstSimclrEncoder:total-steps:
   *
   * The cosine schedule's horizon: the learning rate decays to 0 at this
   * step and stays 0 after it (a warning says so once). Must exceed
   * warmup-steps. Default 100: set it to epochs x samples / batch-size for a
   * real run.
   */
  g_object_class_install_property (gobject_class, PROP_TOTAL_STEPS,
      g_param_spec_uint64 ("total-steps", "Total steps",
          "Steps of the schedule: cosine decay reaches 0 here (must exceed "
          "warmup-steps; epochs x samples / batch-size)", 1, G_MAXINT64,
          DEFAULT_TOTAL_STEPS, rw));
  /**
   * GstSimclrEncoder:checkpoint-location:
   *
   * Train mode: file the trainer checkpoint is written to (overwritten
   * atomically at each save). Embed mode: the checkpoint to load.
   */
  g_object_class_install_property (gobject_class, PROP_CHECKPOINT_LOCATION,
      g_param_spec_string ("checkpoint-location", "Checkpoint location",
          "Train: safetensors file written every checkpoint-interval steps and "
          "at EOS (NULL/\"\" = none); embed: the checkpoint to load",
          DEFAULT_CHECKPOINT_LOCATION, rw));
  g_object_class_install_property (gobject_class, PROP_CHECKPOINT_INTERVAL,
      g_param_spec_uint64 ("checkpoint-interval", "Checkpoint interval",
          "Write a checkpoint every this many steps (0 = only at EOS)", 0,
          G_MAXUINT64, DEFAULT_CHECKPOINT_INTERVAL, rw));
  /**
   * GstSimclrEncoder:resume-from:
   *
   * Trainer checkpoint to continue from: weights, optimiser state, step and
   * the whole configuration come from the file. Its image size and channels
   * must match the input caps.
   */
  g_object_class_install_property (gobject_class, PROP_RESUME_FROM,
      g_param_spec_string ("resume-from", "Resume from",
          "Trainer checkpoint to resume (configuration, weights, optimiser "
          "state and step come from the file; NULL/\"\" = start anew)",
          DEFAULT_RESUME_FROM, rw));
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Seed of the weight initialisation of a new model", 0, G_MAXUINT64,
          DEFAULT_SEED, rw));
  /**
   * GstSimclrEncoder:threads:
   *
   * Worker threads of the model's own parallel loops (thin convolutions) in
   * train mode. OpenBLAS's threads are process-wide and set by
   * OPENBLAS_NUM_THREADS in the environment, not by this property. The
   * default 0 uses as many workers as OpenBLAS has threads: the thin layers
   * then use every core (their GEMMs are sliced below OpenBLAS's own
   * threading threshold, so the two never oversubscribe the cores).
   */
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_int ("threads", "Threads",
          "Model worker threads for thin convolutions (0 = as many as "
          "OpenBLAS uses, set by OPENBLAS_NUM_THREADS)", 0, 256,
          DEFAULT_THREADS,
          rw));
  /**
   * GstSimclrEncoder:stop-at-end:
   *
   * In train mode, once the schedule is complete (the step count reaches
   * total-steps, where the learning rate has decayed to 0) the element
   * returns GST_FLOW_EOS to upstream: the source then sends EOS, which
   * writes the final checkpoint and ends the pipeline. A run can thus be
   * sized by total-steps alone, whatever the length of the stream. FALSE
   * keeps consuming the stream (with learning rate 0) until its own EOS.
   */
  g_object_class_install_property (gobject_class, PROP_STOP_AT_END,
      g_param_spec_boolean ("stop-at-end", "Stop at end",
          "Train mode: end the stream once total-steps steps are done "
          "(FALSE: keep going with learning rate 0 until EOS)",
          DEFAULT_STOP_AT_END, rw));
  g_object_class_install_property (gobject_class, PROP_OUTPUT,
      g_param_spec_enum ("output", "Output",
          "Embed mode: representation h (for downstream tasks) or projection z",
          GST_TYPE_SIMCLR_ENCODER_OUTPUT, DEFAULT_OUTPUT, rw));
  /**
   * GstSimclrEncoder:embed-batch:
   *
   * Embed mode: frames per forward pass. Larger is faster; each frame still
   * gets its own output buffer.
   */
  g_object_class_install_property (gobject_class, PROP_EMBED_BATCH,
      g_param_spec_int ("embed-batch", "Embed batch",
          "Embed mode: frames per forward pass (1 = no added latency)", 1,
          MAX_EMBED_BATCH, DEFAULT_EMBED_BATCH, rw));
  /**
   * GstSimclrEncoder:max-latency:
   *
   * Embed mode: a partial batch is computed once its frames span this much
   * stream time (nanoseconds, by PTS); 0 = only when full, at EOS or flush.
   */
  g_object_class_install_property (gobject_class, PROP_MAX_LATENCY,
      g_param_spec_uint64 ("max-latency", "Maximum latency",
          "Embed mode: compute a partial batch once it spans this much stream "
          "time (ns; 0 = wait for a full batch)", 0, G_MAXUINT64,
          DEFAULT_MAX_LATENCY, rw));
  /**
   * GstSimclrEncoder:monitor-location:
   *
   * Train mode: a labelled data set with a train and a test split (IDX,
   * CIFAR binary or image class folders, as simclrdatasetsrc reads; images
   * of the training input's size and channels). At the start of every new
   * epoch the element embeds the first monitor-samples images of each split
   * with the frozen encoder (eval mode, running statistics; the training
   * state is untouched) and classifies the test images by kNN on the train
   * images (cosine, k 200, temperature 0.1), then posts an element message
   * "simclr-monitor" (step, epoch: the epoch just completed, knn-top1,
   * knn-top5, samples, seconds). Under MPI rank 0 does this alone.
   */
  g_object_class_install_property (gobject_class, PROP_MONITOR_LOCATION,
      g_param_spec_string ("monitor-location", "Monitor location",
          "Train mode: labelled data set (train and test splits) for a kNN "
          "accuracy posted as \"simclr-monitor\" every epoch (NULL/\"\" = off)",
          DEFAULT_MONITOR_LOCATION, rw));
  g_object_class_install_property (gobject_class, PROP_MONITOR_SAMPLES,
      g_param_spec_int ("monitor-samples", "Monitor samples",
          "Images of each split the kNN monitor uses (the first ones)", 10,
          G_MAXINT, DEFAULT_MONITOR_SAMPLES, rw));
  g_object_class_install_property (gobject_class, PROP_STEP,
      g_param_spec_uint64 ("step", "Step",
          "Optimiser steps taken (train mode)", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_LR,
      g_param_spec_double ("lr", "Learning rate now",
          "Learning rate of the next step (train mode)", 0.0, G_MAXDOUBLE, 0.0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_simclr_encoder_change_state);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "SimCLR encoder", "Filter/Video/Analyzer",
      "Trains a SimCLR ResNet encoder from pairs of augmented views (with "
      "ntxentsink), or embeds frames with a trained checkpoint",
      "gst-simclr developers");

  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_ARCH, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_STEM, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_OPTIMIZER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_LR_SCALING, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_OUTPUT, 0);

  /* Register the metas this element reads and writes, so applications
   * (and tests) can find them by name once the element exists. */
  gst_simclr_frame_meta_get_info ();
  gst_simclr_embedding_meta_get_info ();

  GST_DEBUG_CATEGORY_INIT (gst_simclr_encoder_debug, "simclrencoder", 0,
      "SimCLR encoder");
}

static void
settings_init (Settings * s)
{
  memset (s, 0, sizeof *s);
  s->mode = DEFAULT_MODE;
  s->arch = DEFAULT_ARCH;
  s->width = DEFAULT_WIDTH;
  s->stem = DEFAULT_STEM;
  s->proj_layers = DEFAULT_PROJ_LAYERS;
  s->proj_hidden = DEFAULT_PROJ_HIDDEN;
  s->proj_dim = DEFAULT_PROJ_DIM;
  s->batch_size = DEFAULT_BATCH_SIZE;
  s->optimizer = DEFAULT_OPTIMIZER;
  s->learning_rate = DEFAULT_LEARNING_RATE;
  s->lr_scaling = DEFAULT_LR_SCALING;
  s->weight_decay = DEFAULT_WEIGHT_DECAY;
  s->momentum = DEFAULT_MOMENTUM;
  s->warmup_steps = DEFAULT_WARMUP_STEPS;
  s->total_steps = DEFAULT_TOTAL_STEPS;
  s->checkpoint_location = g_strdup (DEFAULT_CHECKPOINT_LOCATION);
  s->checkpoint_interval = DEFAULT_CHECKPOINT_INTERVAL;
  s->resume_from = g_strdup (DEFAULT_RESUME_FROM);
  s->seed = DEFAULT_SEED;
  s->threads = DEFAULT_THREADS;
  s->stop_at_end = DEFAULT_STOP_AT_END;
  s->output = DEFAULT_OUTPUT;
  s->embed_batch = DEFAULT_EMBED_BATCH;
  s->max_latency = DEFAULT_MAX_LATENCY;
  s->monitor_location = g_strdup (DEFAULT_MONITOR_LOCATION);
  s->monitor_samples = DEFAULT_MONITOR_SAMPLES;
}

static void
settings_clear (Settings * s)
{
  g_clear_pointer (&s->checkpoint_location, g_free);
  g_clear_pointer (&s->resume_from, g_free);
  g_clear_pointer (&s->monitor_location, g_free);
}

static void
settings_copy (Settings * dst, const Settings * src)
{
  settings_clear (dst);
  *dst = *src;
  dst->checkpoint_location = g_strdup (src->checkpoint_location);
  dst->resume_from = g_strdup (src->resume_from);
  dst->monitor_location = g_strdup (src->monitor_location);
}

static gboolean
str_set (const gchar * s)
{
  return s != NULL && s[0] != '\0';
}

static guint
pending_hash (gconstpointer key)
{
  const PendingSample *p = key;
  guint64 h = p->sample_id * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15) ^
      p->epoch * G_GUINT64_CONSTANT (0xC2B2AE3D27D4EB4F);
  return (guint) (h ^ (h >> 32));
}

static gboolean
pending_equal (gconstpointer a, gconstpointer b)
{
  const PendingSample *x = a, *y = b;
  return x->sample_id == y->sample_id && x->epoch == y->epoch;
}

static void
pending_free (gpointer data)
{
  PendingSample *p = data;
  g_free (p->pix[0]);
  g_free (p->pix[1]);
  g_free (p);
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

  settings_init (&self->props);
  settings_init (&self->run);
  self->pending = g_hash_table_new_full (pending_hash, pending_equal,
      NULL, pending_free);
  self->ready = g_ptr_array_new_with_free_func (pending_free);
  self->monitor_epoch = G_MAXUINT64;
  g_mutex_init (&self->grad_lock);
  g_cond_init (&self->grad_cond);
}

/* Frees everything a run allocated (state changes only: pads inactive). */
static void
gst_simclr_encoder_reset (GstSimclrEncoder * self)
{
  g_hash_table_remove_all (self->pending);
  g_ptr_array_set_size (self->ready, 0);
  g_clear_pointer (&self->trainer, simclr_trainer_free);
  g_clear_pointer (&self->model, simclr_model_free);
  g_clear_pointer (&self->batch_u8, g_free);
  g_clear_pointer (&self->batch_z, g_free);
  g_clear_pointer (&self->embed_in, g_free);
  g_clear_pointer (&self->embed_out, g_free);
  g_clear_pointer (&self->embed_frames, g_free);
  self->embed_count = 0;
  self->embed_batches = 0;
  self->frames_seen = 0;
  self->configured = FALSE;
  self->size = self->channels = 0;
  self->frame_bytes = 0;
  self->out_dim = 0;
  self->n = 0;
  self->saved = FALSE;
  self->last_saved_step = 0;
  self->warned_horizon = FALSE;
  self->warned_unpaired = FALSE;
  self->warned_view = FALSE;
  g_clear_pointer (&self->monitor_train, simclr_dataset_free);
  g_clear_pointer (&self->monitor_test, simclr_dataset_free);
  self->monitor_epoch = G_MAXUINT64;
  self->model_origin = NULL;
  gst_simclr_encoder_publish_input (self, NULL);
  g_mutex_lock (&self->grad_lock);
  gst_clear_buffer (&self->gradient);
  self->waiting = FALSE;
  g_mutex_unlock (&self->grad_lock);
}

static void
gst_simclr_encoder_finalize (GObject * object)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (object);

  gst_simclr_encoder_reset (self);
  g_hash_table_unref (self->pending);
  g_ptr_array_unref (self->ready);
  settings_clear (&self->props);
  settings_clear (&self->run);
  g_mutex_clear (&self->grad_lock);
  g_cond_clear (&self->grad_cond);

  G_OBJECT_CLASS (gst_simclr_encoder_parent_class)->finalize (object);
}

static void
gst_simclr_encoder_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (object);
  Settings *s = &self->props;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODE:
      s->mode = g_value_get_enum (value);
      break;
    case PROP_ARCH:
      s->arch = g_value_get_enum (value);
      break;
    case PROP_WIDTH:
      s->width = g_value_get_double (value);
      break;
    case PROP_STEM:
      s->stem = g_value_get_enum (value);
      break;
    case PROP_PROJ_LAYERS:
      s->proj_layers = g_value_get_int (value);
      break;
    case PROP_PROJ_HIDDEN:
      s->proj_hidden = g_value_get_int (value);
      break;
    case PROP_PROJ_DIM:
      s->proj_dim = g_value_get_int (value);
      break;
    case PROP_BATCH_SIZE:
      s->batch_size = g_value_get_int (value);
      break;
    case PROP_OPTIMIZER:
      s->optimizer = g_value_get_enum (value);
      break;
    case PROP_LEARNING_RATE:
      s->learning_rate = g_value_get_double (value);
      break;
    case PROP_LR_SCALING:
      s->lr_scaling = g_value_get_enum (value);
      break;
    case PROP_WEIGHT_DECAY:
      s->weight_decay = g_value_get_double (value);
      break;
    case PROP_MOMENTUM:
      s->momentum = g_value_get_double (value);
      break;
    case PROP_WARMUP_STEPS:
      s->warmup_steps = g_value_get_uint64 (value);
      break;
    case PROP_TOTAL_STEPS:
      s->total_steps = g_value_get_uint64 (value);
      break;
    case PROP_CHECKPOINT_LOCATION:
      g_free (s->checkpoint_location);
      s->checkpoint_location = g_value_dup_string (value);
      break;
    case PROP_CHECKPOINT_INTERVAL:
      s->checkpoint_interval = g_value_get_uint64 (value);
      break;
    case PROP_RESUME_FROM:
      g_free (s->resume_from);
      s->resume_from = g_value_dup_string (value);
      break;
    case PROP_SEED:
      s->seed = g_value_get_uint64 (value);
      break;
    case PROP_THREADS:
      s->threads = g_value_get_int (value);
      break;
    case PROP_STOP_AT_END:
      s->stop_at_end = g_value_get_boolean (value);
      break;
    case PROP_OUTPUT:
      s->output = g_value_get_enum (value);
      break;
    case PROP_EMBED_BATCH:
      s->embed_batch = g_value_get_int (value);
      break;
    case PROP_MAX_LATENCY:
      s->max_latency = g_value_get_uint64 (value);
      break;
    case PROP_MONITOR_LOCATION:
      g_free (s->monitor_location);
      s->monitor_location = g_value_dup_string (value);
      break;
    case PROP_MONITOR_SAMPLES:
      s->monitor_samples = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_simclr_encoder_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (object);
  Settings *s = &self->props;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODE:
      g_value_set_enum (value, s->mode);
      break;
    case PROP_ARCH:
      g_value_set_enum (value, s->arch);
      break;
    case PROP_WIDTH:
      g_value_set_double (value, s->width);
      break;
    case PROP_STEM:
      g_value_set_enum (value, s->stem);
      break;
    case PROP_PROJ_LAYERS:
      g_value_set_int (value, s->proj_layers);
      break;
    case PROP_PROJ_HIDDEN:
      g_value_set_int (value, s->proj_hidden);
      break;
    case PROP_PROJ_DIM:
      g_value_set_int (value, s->proj_dim);
      break;
    case PROP_BATCH_SIZE:
      g_value_set_int (value, s->batch_size);
      break;
    case PROP_OPTIMIZER:
      g_value_set_enum (value, s->optimizer);
      break;
    case PROP_LEARNING_RATE:
      g_value_set_double (value, s->learning_rate);
      break;
    case PROP_LR_SCALING:
      g_value_set_enum (value, s->lr_scaling);
      break;
    case PROP_WEIGHT_DECAY:
      g_value_set_double (value, s->weight_decay);
      break;
    case PROP_MOMENTUM:
      g_value_set_double (value, s->momentum);
      break;
    case PROP_WARMUP_STEPS:
      g_value_set_uint64 (value, s->warmup_steps);
      break;
    case PROP_TOTAL_STEPS:
      g_value_set_uint64 (value, s->total_steps);
      break;
    case PROP_CHECKPOINT_LOCATION:
      g_value_set_string (value, s->checkpoint_location);
      break;
    case PROP_CHECKPOINT_INTERVAL:
      g_value_set_uint64 (value, s->checkpoint_interval);
      break;
    case PROP_RESUME_FROM:
      g_value_set_string (value, s->resume_from);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, s->seed);
      break;
    case PROP_THREADS:
      g_value_set_int (value, s->threads);
      break;
    case PROP_STOP_AT_END:
      g_value_set_boolean (value, s->stop_at_end);
      break;
    case PROP_OUTPUT:
      g_value_set_enum (value, s->output);
      break;
    case PROP_EMBED_BATCH:
      g_value_set_int (value, s->embed_batch);
      break;
    case PROP_MAX_LATENCY:
      g_value_set_uint64 (value, s->max_latency);
      break;
    case PROP_MONITOR_LOCATION:
      g_value_set_string (value, s->monitor_location);
      break;
    case PROP_MONITOR_SAMPLES:
      g_value_set_int (value, s->monitor_samples);
      break;
    case PROP_STEP:
      g_value_set_uint64 (value, self->cur_step);
      break;
    case PROP_LR:
      g_value_set_double (value, self->cur_lr);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- helpers ----------------------------------------------------------------- */

static void
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
static void
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
static void
post_load_error (GstSimclrEncoder * self, const gchar * property,
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

/* Data-parallel under mpirun (a no-op otherwise): gradient sum and SyncBN
 * over the ranks, rank 0's state broadcast (gstsimclrmpi.h). */
static gboolean
gst_simclr_encoder_mpi_setup (GstSimclrEncoder * self)
{
  SimclrComm comm;
  SimclrError err = { 0 };

  gst_simclr_mpi_comm (GST_SIMCLR_MPI_ENCODER, &comm);
  if (simclr_trainer_join (self->trainer, &comm, TRUE, &err) == SIMCLR_OK)
    return TRUE;
  GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", err.message), (NULL));
  return FALSE;
}

/* Checks the settings that the pspec ranges cannot express, then loads what
 * a run needs before caps: the embed model, or the trainer to resume. */
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
    if (!str_set (s->checkpoint_location))
      goto no_checkpoint;
    self->model = simclr_checkpoint_load_model (s->checkpoint_location,
        s->embed_batch, &err);
    if (self->model == NULL) {
      post_load_error (self, "checkpoint-location", s->checkpoint_location,
          &err);
      return FALSE;
    }
    self->model_origin = s->checkpoint_location;
    gst_simclr_encoder_publish_input (self, self->model);
    GST_INFO_OBJECT (self, "loaded model from %s", s->checkpoint_location);
    return TRUE;
  }

  {
    /* Data-parallel under mpirun: initialise MPI here, never in plugin_init */
    GError *mpi_error = NULL;
    gst_simclr_mpi_start (GST_ELEMENT (self), &mpi_error);
    if (mpi_error) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("%s", mpi_error->message),
          (NULL));
      g_clear_error (&mpi_error);
      return FALSE;
    }
  }

  if (str_set (s->monitor_location) && gst_simclr_mpi_rank () == 0) {
    self->monitor_train = simclr_dataset_open (s->monitor_location, "train",
        SIMCLR_DATASET_AUTO, &err);
    if (self->monitor_train)
      self->monitor_test = simclr_dataset_open (s->monitor_location, "test",
          SIMCLR_DATASET_AUTO, &err);
    if (self->monitor_test == NULL) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
          ("Could not open the labelled data set \"%s\" of monitor-location: "
              "%s", s->monitor_location, err.message), (NULL));
      return FALSE;
    }
  }

  if (s->proj_layers == 1)
    goto bad_proj_layers;
  if (s->total_steps <= s->warmup_steps)
    goto bad_total_steps;
  if (s->momentum >= 1.0)
    goto bad_momentum;

  if (str_set (s->resume_from)) {
    const SimclrTrainerConfig *cfg;
    self->trainer = simclr_trainer_load (s->resume_from, 2 * s->batch_size,
        &err);
    if (self->trainer == NULL) {
      post_load_error (self, "resume-from", s->resume_from, &err);
      return FALSE;
    }
    cfg = simclr_trainer_get_config (self->trainer);
    /* MPI: the file holds the global batch, K x the per-rank batch-size */
    if (cfg->optim.batch_size != s->batch_size * gst_simclr_mpi_size ()) {
      /* The file's batch size is the schedule's: use it, and size the
       * model's scratch for it. */
      gint n = cfg->optim.batch_size / gst_simclr_mpi_size ();
      if (n < 1 || n * gst_simclr_mpi_size () != cfg->optim.batch_size)
        goto bad_resume_ranks;
      GST_INFO_OBJECT (self, "%s was trained with batch-size %d: using it "
          "instead of %d", s->resume_from, n, s->batch_size);
      simclr_trainer_free (self->trainer);
      self->trainer = simclr_trainer_load (s->resume_from, 2 * n, &err);
      if (self->trainer == NULL) {
        post_load_error (self, "resume-from", s->resume_from, &err);
        return FALSE;
      }
    }
    if (!gst_simclr_encoder_mpi_setup (self))
      return FALSE;
    self->model_origin = s->resume_from;
    GST_INFO_OBJECT (self, "resuming from %s at step %" G_GINT64_FORMAT,
        s->resume_from, simclr_trainer_get_step (self->trainer));
    gst_simclr_encoder_update_progress (self);
    gst_simclr_encoder_publish_input (self,
        simclr_trainer_get_model (self->trainer));
  }
  return TRUE;

  /* ERRORS */
no_checkpoint:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Embed mode needs checkpoint-location (the checkpoint to load)."),
        (NULL));
    return FALSE;
  }
bad_proj_layers:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("proj-layers must be 0, 2 or 3, not %d.", s->proj_layers), (NULL));
    return FALSE;
  }
bad_total_steps:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("total-steps (%" G_GUINT64_FORMAT ") must be greater than "
            "warmup-steps (%" G_GUINT64_FORMAT ").", s->total_steps,
            s->warmup_steps), (NULL));
    return FALSE;
  }
bad_momentum:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("momentum must be below 1, not %g.", s->momentum), (NULL));
    return FALSE;
  }
bad_resume_ranks:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("\"%s\" was trained with a global batch of %d samples, which %d "
            "MPI ranks cannot split evenly.", s->resume_from,
            simclr_trainer_get_config (self->trainer)->optim.batch_size,
            gst_simclr_mpi_size ()), (NULL));
    return FALSE;
  }
}

/* Creates a new trainer from the properties for @size x @size frames of
 * @channels channels. */
static gboolean
gst_simclr_encoder_new_trainer (GstSimclrEncoder * self, gint size,
    gint channels)
{
  const Settings *s = &self->run;
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };

  simclr_trainer_config_default (&cfg);
  cfg.model.arch = s->arch;
  cfg.model.width = s->width;
  cfg.model.in_channels = channels;
  if (s->stem == GST_SIMCLR_ENCODER_STEM_AUTO)
    cfg.model.stem = size <= 64 ? SIMCLR_STEM_CIFAR : SIMCLR_STEM_IMAGENET;
  else if (s->stem == GST_SIMCLR_ENCODER_STEM_CIFAR)
    cfg.model.stem = SIMCLR_STEM_CIFAR;
  else
    cfg.model.stem = SIMCLR_STEM_IMAGENET;
  cfg.model.image_size = size;
  cfg.model.max_batch = 2 * s->batch_size;
  cfg.model.proj_layers = s->proj_layers;
  cfg.model.proj_hidden = s->proj_hidden;
  cfg.model.proj_dim = s->proj_dim;
  cfg.model.threads = s->threads > 0 ? s->threads : openblas_get_num_threads ();
  cfg.optim.kind = s->optimizer;
  cfg.optim.base_lr = s->learning_rate;
  cfg.optim.lr_scaling = s->lr_scaling;
  /* the global batch: batch-size per MPI rank (1 rank without MPI) */
  cfg.optim.batch_size = s->batch_size * gst_simclr_mpi_size ();
  cfg.optim.momentum = s->momentum;
  cfg.optim.weight_decay = s->weight_decay;
  cfg.optim.warmup_steps = (int64_t) s->warmup_steps;
  cfg.optim.total_steps = (int64_t) s->total_steps;
  cfg.seed = s->seed;

  self->trainer = simclr_trainer_new (&cfg, &err);
  if (self->trainer == NULL) {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Invalid encoder configuration: %s", err.message),
        ("%s", err.message));
    return FALSE;
  }
  if (!gst_simclr_encoder_mpi_setup (self))
    return FALSE;
  GST_INFO_OBJECT (self, "new %s width %g %s stem, %dx%dx%d, N %d",
      simclr_arch_to_string (cfg.model.arch), cfg.model.width,
      simclr_stem_to_string (cfg.model.stem), size, size, channels,
      s->batch_size);
  gst_simclr_encoder_update_progress (self);
  gst_simclr_encoder_publish_input (self,
      simclr_trainer_get_model (self->trainer));
  return TRUE;
}

static gboolean
gst_simclr_encoder_set_caps (GstSimclrEncoder * self, GstCaps * caps)
{
  GstVideoInfo info;
  const SimclrModelConfig *mcfg = NULL;
  SimclrModel *m;
  gint size, channels, dim;
  GstCaps *srccaps;
  gboolean ok;

  if (!gst_video_info_from_caps (&info, caps))
    goto invalid_caps;
  if (GST_VIDEO_INFO_WIDTH (&info) != GST_VIDEO_INFO_HEIGHT (&info))
    goto not_square;
  size = GST_VIDEO_INFO_WIDTH (&info);
  channels = GST_VIDEO_INFO_FORMAT (&info) == GST_VIDEO_FORMAT_GRAY8 ? 1 : 3;

  if (self->configured) {
    if (size != self->size || channels != self->channels)
      goto size_changed;
    self->vinfo = info;         /* same frames, maybe other strides */
    return TRUE;
  }

  if (self->run.mode == GST_SIMCLR_ENCODER_MODE_TRAIN && self->trainer == NULL
      && !gst_simclr_encoder_new_trainer (self, size, channels))
    return FALSE;

  m = self->trainer ? simclr_trainer_get_model (self->trainer) : self->model;
  g_assert (m != NULL);
  mcfg = simclr_model_get_config (m);
  if (mcfg->image_size != size || mcfg->in_channels != channels)
    goto model_mismatch;
  if (self->monitor_train && (simclr_dataset_width (self->monitor_train) != size
          || simclr_dataset_height (self->monitor_train) != size
          || simclr_dataset_channels (self->monitor_train) != channels)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("monitor-location \"%s\" has %dx%d images of %d channels, but the "
            "encoder trains on %dx%d frames of %d.", self->run.monitor_location,
            simclr_dataset_width (self->monitor_train),
            simclr_dataset_height (self->monitor_train),
            simclr_dataset_channels (self->monitor_train), size, size,
            channels), (NULL));
    return FALSE;
  }

  self->vinfo = info;
  self->size = size;
  self->channels = channels;
  self->frame_bytes = (gsize) size * size * channels;

  if (self->trainer) {
    self->n = simclr_trainer_get_config (self->trainer)->optim.batch_size /
        gst_simclr_mpi_size ();     /* per rank */
    dim = simclr_model_output_dim (m);
    self->batch_u8 = g_malloc ((gsize) 2 * self->n * self->frame_bytes);
    self->batch_z = g_malloc ((gsize) 2 * self->n * dim * sizeof (gfloat));
  } else {
    gint k = self->run.embed_batch;
    dim = self->run.output == GST_SIMCLR_ENCODER_OUTPUT_PROJECTION ?
        simclr_model_output_dim (m) : simclr_model_feature_dim (m);
    self->embed_in = g_malloc ((gsize) k * self->frame_bytes * sizeof (gfloat));
    self->embed_out = g_malloc ((gsize) k * dim * sizeof (gfloat));
    self->embed_frames = g_new0 (EmbedFrame, k);
  }
  self->out_dim = dim;

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

/* Copies a frame's pixels (H,W,C) into @dst, dropping the row padding. */
static gboolean
copy_frame_u8 (GstSimclrEncoder * self, GstBuffer * buf, guint8 * dst)
{
  GstVideoFrame frame;
  const guint8 *src;
  gint stride, y;
  gsize row = (gsize) self->size * self->channels;

  if (!gst_video_frame_map (&frame, &self->vinfo, buf, GST_MAP_READ))
    return FALSE;
  src = GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
  stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
  for (y = 0; y < self->size; y++)
    memcpy (dst + y * row, src + (gsize) y * stride, row);
  gst_video_frame_unmap (&frame);
  return TRUE;
}

static gboolean
all_finite (const gfloat * x, gsize n)
{
  gsize i;
  for (i = 0; i < n; i++)
    if (!isfinite (x[i]))
      return FALSE;
  return TRUE;
}

/* Writes the trainer checkpoint (atomic in the core) and posts
 * SIMCLR_CHECKPOINT_MESSAGE. A model with non-finite weights is never
 * written, so the last good file stays. */
static gboolean
gst_simclr_encoder_save (GstSimclrEncoder * self)
{
  const gchar *path = self->run.checkpoint_location;
  SimclrError err = { 0 };
  SimclrModel *m;
  guint64 step;
  size_t n_params = 0, n_buffers = 0;
  const gfloat *params, *buffers;

  if (!str_set (path) || self->trainer == NULL)
    return TRUE;
  if (gst_simclr_mpi_rank () != 0)
    return TRUE;                /* MPI: replicas are identical; rank 0 writes */
  step = (guint64) simclr_trainer_get_step (self->trainer);
  m = simclr_trainer_get_model (self->trainer);
  params = simclr_model_params (m, &n_params);
  buffers = simclr_model_buffers (m, &n_buffers);
  if (!all_finite (params, n_params) || !all_finite (buffers, n_buffers))
    goto not_finite;
  if (simclr_trainer_save (self->trainer, path, &err) != SIMCLR_OK)
    goto write_failed;
  self->saved = TRUE;
  self->last_saved_step = step;
  GST_INFO_OBJECT (self, "wrote %s at step %" G_GUINT64_FORMAT, path, step);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new (SIMCLR_CHECKPOINT_MESSAGE,
              "step", G_TYPE_UINT64, step,
              "location", G_TYPE_STRING, path,
              "samples-seen", G_TYPE_UINT64, step * (guint64) self->n,
              NULL)));
  return TRUE;

  /* ERRORS */
not_finite:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("The model has non-finite weights at step %" G_GUINT64_FORMAT
            ": not writing checkpoint \"%s\" (the previous one stays).", step,
            path), (NULL));
    return FALSE;
  }
write_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write checkpoint \"%s\": %s", path, err.message),
        ("%s", err.message));
    return FALSE;
  }
}

/* ---- train mode ------------------------------------------------------------- */

/* Runs one step on the N ready samples: forward, push, wait for the
 * gradient, backward and optimiser step, checkpoint. */
/* kNN accuracy of the frozen encoder on the monitor set, posted as
 * "simclr-monitor". Eval-mode forwards only: features.c checks that the
 * model's bytes are unchanged, so training continues exactly as without. */
static gboolean
gst_simclr_encoder_monitor (GstSimclrEncoder * self, guint64 epoch)
{
  SimclrModel *m = simclr_trainer_get_model (self->trainer);
  SimclrError err = { 0 };
  gfloat *xtr = NULL, *xte = NULL;
  gint *ytr = NULL, *yte = NULL, dim = 0, dim_te = 0;
  gint64 ntr = 0, nte = 0;
  gdouble top1 = 0, top5 = 0;
  gint64 t0 = g_get_monotonic_time ();
  gint limit = self->run.monitor_samples;
  SimclrStatus st;

  st = simclr_features_extract (m, self->monitor_train, limit,
      SIMCLR_FEATURES_REPRESENTATION, &xtr, &ytr, &ntr, &dim, &err);
  if (st == SIMCLR_OK)
    st = simclr_features_extract (m, self->monitor_test, limit,
        SIMCLR_FEATURES_REPRESENTATION, &xte, &yte, &nte, &dim_te, &err);
  if (st == SIMCLR_OK)
    st = simclr_knn_classify (xtr, ytr, (gint) ntr, xte, yte, (gint) nte, dim,
        simclr_dataset_n_classes (self->monitor_train),
        (gint) MIN (ntr, SIMCLR_KNN_DEFAULT_K), SIMCLR_KNN_DEFAULT_TEMPERATURE,
        NULL, &top1, &top5, &err);
  free (xtr);
  free (xte);
  free (ytr);
  free (yte);
  if (st != SIMCLR_OK) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("kNN monitor on \"%s\" failed after epoch %" G_GUINT64_FORMAT ": %s",
            self->run.monitor_location, epoch, err.message), (NULL));
    return FALSE;
  }
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("simclr-monitor",
              "step", G_TYPE_UINT64,
              (guint64) simclr_trainer_get_step (self->trainer),
              "epoch", G_TYPE_UINT64, epoch,
              "knn-top1", G_TYPE_DOUBLE, top1,
              "knn-top5", G_TYPE_DOUBLE, top5,
              "samples", G_TYPE_INT, (gint) nte,
              "seconds", G_TYPE_DOUBLE,
              (g_get_monotonic_time () - t0) / 1e6, NULL)));
  return TRUE;
}

static GstFlowReturn
gst_simclr_encoder_train_step (GstSimclrEncoder * self)
{
  const gint n = self->n, rows = 2 * n, dim = self->out_dim;
  SimclrError err = { 0 };
  GstSimclrEmbeddingRow *meta_rows;
  GstSimclrEmbeddingMeta *meta;
  GstBuffer *out, *grad;
  GstMapInfo map;
  GstClockTime pts = GST_CLOCK_TIME_NONE;
  guint64 step, max_epoch = 0;
  gint64 step_i;
  gdouble lr;
  gint i, v, grad_rows, grad_dim;
  gboolean warned = FALSE;
  GstFlowReturn ret;
  SimclrStatus st;

  meta_rows = g_new0 (GstSimclrEmbeddingRow, rows);
  for (i = 0; i < n; i++) {
    PendingSample *p = g_ptr_array_index (self->ready, i);
    for (v = 0; v < 2; v++) {
      GstSimclrEmbeddingRow *r = &meta_rows[v * n + i];
      memcpy (self->batch_u8 + (gsize) (v * n + i) * self->frame_bytes,
          p->pix[v], self->frame_bytes);
      r->sample_id = p->sample_id;
      r->view = v;
      r->label = p->label;
      r->pts = p->pts[v];
      if (GST_CLOCK_TIME_IS_VALID (p->pts[v]) &&
          (!GST_CLOCK_TIME_IS_VALID (pts) || p->pts[v] < pts))
        pts = p->pts[v];
    }
    max_epoch = MAX (max_epoch, p->epoch);
  }
  g_ptr_array_set_size (self->ready, 0);

  /* The first batch of a later epoch: the previous epoch is done, and the
   * model has trained on it alone. */
  if (self->monitor_train && self->monitor_epoch != G_MAXUINT64
      && max_epoch > self->monitor_epoch
      && !gst_simclr_encoder_monitor (self, self->monitor_epoch)) {
    g_free (meta_rows);
    return GST_FLOW_ERROR;
  }
  self->monitor_epoch = max_epoch;

  step_i = simclr_trainer_get_step (self->trainer);
  step = (guint64) step_i;
  lr = simclr_trainer_get_lr (self->trainer);
  if (!self->warned_horizon && step_i >= (gint64)
      simclr_trainer_get_config (self->trainer)->optim.total_steps) {
    self->warned_horizon = TRUE;
    GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS,
        ("Step %" G_GUINT64_FORMAT " is past total-steps: the learning rate "
            "is 0 and training no longer changes the model.", step), (NULL));
  }

  st = simclr_trainer_forward_u8 (self->trainer, self->batch_u8, rows,
      self->batch_z, &err);
  if (st != SIMCLR_OK)
    goto forward_failed;
  if (!all_finite (self->batch_z, (gsize) rows * dim))
    goto not_finite;

  out = gst_buffer_new_memdup (self->batch_z, (gsize) rows * dim *
      sizeof (gfloat));
  meta = gst_buffer_add_simclr_embedding_meta (out, step, rows, meta_rows);
  meta->epoch = (gdouble) max_epoch;
  meta->lr = lr;
  g_free (meta_rows);
  meta_rows = NULL;
  GST_BUFFER_OFFSET (out) = step;
  GST_BUFFER_PTS (out) = pts;

  g_mutex_lock (&self->grad_lock);
  gst_clear_buffer (&self->gradient);
  self->wait_step = step;
  self->waiting = TRUE;
  g_mutex_unlock (&self->grad_lock);

  GST_LOG_OBJECT (self, "pushing step %" G_GUINT64_FORMAT, step);
  ret = gst_pad_push (self->srcpad, out);

  g_mutex_lock (&self->grad_lock);
  if (ret == GST_FLOW_OK) {
    gint64 deadline = g_get_monotonic_time () +
        GRADIENT_WARN_SECONDS * G_TIME_SPAN_SECOND;
    while (self->gradient == NULL && !self->flushing && !self->shutdown) {
      if (!g_cond_wait_until (&self->grad_cond, &self->grad_lock, deadline)
          && !warned) {
        warned = TRUE;
        g_mutex_unlock (&self->grad_lock);
        GST_ELEMENT_WARNING (self, STREAM, FAILED,
            ("No gradient for step %" G_GUINT64_FORMAT " after %d s: train "
                "mode needs ntxentsink (or another element sending "
                "\"" SIMCLR_GRADIENT_EVENT "\") downstream.", step,
                GRADIENT_WARN_SECONDS), (NULL));
        g_mutex_lock (&self->grad_lock);
      }
    }
  }
  grad = self->gradient;
  self->gradient = NULL;
  grad_rows = self->grad_rows;
  grad_dim = self->grad_dim;
  self->waiting = FALSE;
  g_mutex_unlock (&self->grad_lock);

  if (ret != GST_FLOW_OK) {
    gst_clear_buffer (&grad);
    return ret;
  }
  /* A gradient that arrived is applied even if a flush raced with it: the
   * sink has already accounted for this step. */
  if (grad == NULL) {
    GST_DEBUG_OBJECT (self, "wait for step %" G_GUINT64_FORMAT " ended "
        "without gradient (flush or shutdown)", step);
    return GST_FLOW_FLUSHING;
  }

  if ((grad_rows >= 0 && grad_rows != rows) || (grad_dim >= 0
          && grad_dim != dim) || gst_buffer_get_size (grad) !=
      (gsize) rows * dim * sizeof (gfloat))
    goto bad_gradient;
  if (!gst_buffer_map (grad, &map, GST_MAP_READ))
    goto bad_gradient;
  st = simclr_trainer_backward_and_step (self->trainer,
      (const gfloat *) map.data, &err);
  gst_buffer_unmap (grad, &map);
  gst_buffer_unref (grad);
  if (st != SIMCLR_OK)
    goto step_failed;
  gst_simclr_encoder_update_progress (self);

  step = (guint64) simclr_trainer_get_step (self->trainer);
  if (self->run.checkpoint_interval > 0
      && step % self->run.checkpoint_interval == 0
      && !gst_simclr_encoder_save (self))
    return GST_FLOW_ERROR;
  if (self->run.stop_at_end && (gint64) step >=
      simclr_trainer_get_config (self->trainer)->optim.total_steps) {
    /* The schedule is done: tell upstream to stop; its EOS then writes the
     * final checkpoint (see stop-at-end). */
    GST_INFO_OBJECT (self, "schedule complete at step %" G_GUINT64_FORMAT
        ": returning EOS upstream", step);
    return GST_FLOW_EOS;
  }
  return GST_FLOW_OK;

  /* ERRORS */
forward_failed:
  {
    g_free (meta_rows);
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("Forward pass of step %" G_GUINT64_FORMAT " failed: %s", step,
            err.message), ("%s", err.message));
    return GST_FLOW_ERROR;
  }
not_finite:
  {
    g_free (meta_rows);
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Non-finite embeddings at step %" G_GUINT64_FORMAT ": training "
            "diverged (lower learning-rate).", step), (NULL));
    return GST_FLOW_ERROR;
  }
bad_gradient:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("The gradient of step %" G_GUINT64_FORMAT " does not fit the batch "
            "(%d x %d float32 expected, got rows %d, dimension %d, %"
            G_GSIZE_FORMAT " bytes).", step, rows, dim, grad_rows, grad_dim,
            gst_buffer_get_size (grad)), (NULL));
    gst_buffer_unref (grad);
    return GST_FLOW_ERROR;
  }
step_failed:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Optimiser step %" G_GUINT64_FORMAT " failed: %s", step, err.message),
        ("%s", err.message));
    return GST_FLOW_ERROR;
  }
}

static GstFlowReturn
gst_simclr_encoder_chain_train (GstSimclrEncoder * self, GstBuffer * buf)
{
  GstSimclrFrameMeta *fm = gst_buffer_get_simclr_frame_meta (buf);
  PendingSample key, *p;
  gint view;

  if (fm == NULL)
    goto no_meta;
  view = fm->view;
  if (view != 0 && view != 1) {
    if (!self->warned_view) {
      self->warned_view = TRUE;
      GST_ELEMENT_WARNING (self, STREAM, FORMAT,
          ("Dropping frames of view %d: train mode uses views 0 and 1.", view),
          (NULL));
    }
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }

  key.sample_id = fm->sample_id;
  key.epoch = fm->epoch;
  p = g_hash_table_lookup (self->pending, &key);
  if (p == NULL) {
    p = g_new0 (PendingSample, 1);
    p->sample_id = fm->sample_id;
    p->epoch = fm->epoch;
    p->label = fm->label;
    p->pts[0] = p->pts[1] = GST_CLOCK_TIME_NONE;
    g_hash_table_add (self->pending, p);
  }
  if (p->pix[view] != NULL) {
    GST_WARNING_OBJECT (self, "view %d of sample %" G_GUINT64_FORMAT
        " epoch %" G_GUINT64_FORMAT " came twice: keeping the last", view,
        p->sample_id, p->epoch);
  } else {
    p->pix[view] = g_malloc (self->frame_bytes);
  }
  if (!copy_frame_u8 (self, buf, p->pix[view]))
    goto map_failed;
  p->pts[view] = GST_BUFFER_PTS (buf);
  gst_buffer_unref (buf);

  if (p->pix[0] == NULL || p->pix[1] == NULL) {
    /* Views whose partner never comes pile up here: say so once. */
    if (!self->warned_unpaired &&
        g_hash_table_size (self->pending) > (guint) (8 * self->n + 1024)) {
      self->warned_unpaired = TRUE;
      GST_ELEMENT_WARNING (self, STREAM, FORMAT,
          ("%u samples wait for their second view: does upstream drop "
              "frames?", g_hash_table_size (self->pending)), (NULL));
    }
    return GST_FLOW_OK;
  }
  g_hash_table_steal (self->pending, p);
  g_ptr_array_add (self->ready, p);
  if ((gint) self->ready->len < self->n)
    return GST_FLOW_OK;
  return gst_simclr_encoder_train_step (self);

  /* ERRORS */
no_meta:
  {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Train mode needs views tagged with GstSimclrFrameMeta (sample id, "
            "view): put simclraugment upstream."), (NULL));
    return GST_FLOW_ERROR;
  }
map_failed:
  {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL),
        ("could not map a video frame"));
    return GST_FLOW_ERROR;
  }
}

/* Drops the views of an incomplete batch (EOS, flush). */
static void
gst_simclr_encoder_drop_partial (GstSimclrEncoder * self, const gchar * why)
{
  guint complete = self->ready->len, unpaired = g_hash_table_size
      (self->pending);
  if (complete > 0)
    GST_INFO_OBJECT (self, "%s: dropping a partial batch of %u samples "
        "(%u views)", why, complete, 2 * complete);
  if (unpaired > 0)
    GST_WARNING_OBJECT (self, "%s: dropping %u views whose partner never "
        "came", why, unpaired);
  g_ptr_array_set_size (self->ready, 0);
  g_hash_table_remove_all (self->pending);
}

/* ---- embed mode ------------------------------------------------------------- */

static GstFlowReturn
gst_simclr_encoder_embed_flush (GstSimclrEncoder * self)
{
  const gint k = self->embed_count, dim = self->out_dim;
  const gboolean proj =
      self->run.output == GST_SIMCLR_ENCODER_OUTPUT_PROJECTION;
  SimclrError err = { 0 };
  GstFlowReturn ret = GST_FLOW_OK;
  guint64 batch = self->embed_batches;
  gint i;

  if (k == 0)
    return GST_FLOW_OK;
  self->embed_count = 0;
  self->embed_batches++;
  if (simclr_model_forward (self->model, self->embed_in, k, 0,
          proj ? NULL : self->embed_out, proj ? self->embed_out : NULL,
          &err) != SIMCLR_OK)
    goto forward_failed;

  for (i = 0; i < k && ret == GST_FLOW_OK; i++) {
    const EmbedFrame *f = &self->embed_frames[i];
    GstSimclrEmbeddingRow r;
    GstBuffer *out = gst_buffer_new_memdup (self->embed_out + (gsize) i * dim,
        (gsize) dim * sizeof (gfloat));
    r.sample_id = f->sample_id;
    r.view = f->view;
    r.label = f->label;
    r.pts = f->pts;
    gst_buffer_add_simclr_embedding_meta (out, batch, 1, &r);
    GST_BUFFER_PTS (out) = f->pts;
    GST_BUFFER_DTS (out) = f->dts;
    GST_BUFFER_DURATION (out) = f->duration;
    GST_BUFFER_OFFSET (out) = f->offset;
    GST_BUFFER_OFFSET_END (out) = f->offset_end;
    ret = gst_pad_push (self->srcpad, out);
  }
  return ret;

  /* ERRORS */
forward_failed:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("Embedding forward pass failed: %s", err.message),
        ("%s", err.message));
    return GST_FLOW_ERROR;
  }
}

static GstFlowReturn
gst_simclr_encoder_chain_embed (GstSimclrEncoder * self, GstBuffer * buf)
{
  GstSimclrFrameMeta *fm = gst_buffer_get_simclr_frame_meta (buf);
  const gint k = self->embed_count;
  EmbedFrame *f = &self->embed_frames[k];
  gfloat *dst = self->embed_in + (gsize) k * self->frame_bytes;
  GstVideoFrame frame;
  const guint8 *src;
  gsize row = (gsize) self->size * self->channels, x;
  gint stride, y;
  gboolean flush;

  if (!gst_video_frame_map (&frame, &self->vinfo, buf, GST_MAP_READ))
    goto map_failed;
  src = GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
  stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
  /* The model takes pixel / 255 (as torchvision's ToTensor). */
  for (y = 0; y < self->size; y++) {
    const guint8 *s = src + (gsize) y * stride;
    gfloat *d = dst + y * row;
    for (x = 0; x < row; x++)
      d[x] = s[x] * (1.0f / 255.0f);
  }
  gst_video_frame_unmap (&frame);

  f->pts = GST_BUFFER_PTS (buf);
  f->dts = GST_BUFFER_DTS (buf);
  f->duration = GST_BUFFER_DURATION (buf);
  f->offset = GST_BUFFER_OFFSET (buf);
  f->offset_end = GST_BUFFER_OFFSET_END (buf);
  f->sample_id = fm ? fm->sample_id : self->frames_seen;
  f->view = fm ? fm->view : -1;
  f->label = fm ? fm->label : -1;
  self->frames_seen++;
  self->embed_count = k + 1;
  gst_buffer_unref (buf);

  flush = self->embed_count >= self->run.embed_batch;
  if (!flush && self->run.max_latency > 0 && GST_CLOCK_TIME_IS_VALID (f->pts)
      && GST_CLOCK_TIME_IS_VALID (self->embed_frames[0].pts)
      && f->pts >= self->embed_frames[0].pts
      && f->pts - self->embed_frames[0].pts >= self->run.max_latency)
    flush = TRUE;
  return flush ? gst_simclr_encoder_embed_flush (self) : GST_FLOW_OK;

  /* ERRORS */
map_failed:
  {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL),
        ("could not map a video frame"));
    return GST_FLOW_ERROR;
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
      g_mutex_lock (&self->grad_lock);
      self->flushing = TRUE;
      g_cond_broadcast (&self->grad_cond);
      g_mutex_unlock (&self->grad_lock);
      break;
    case GST_EVENT_FLUSH_STOP:
      g_mutex_lock (&self->grad_lock);
      self->flushing = FALSE;
      g_mutex_unlock (&self->grad_lock);
      gst_simclr_encoder_drop_partial (self, "flush");
      self->embed_count = 0;
      break;
    case GST_EVENT_EOS:
      if (self->run.mode == GST_SIMCLR_ENCODER_MODE_TRAIN) {
        gst_simclr_encoder_drop_partial (self, "EOS");
        /* The final checkpoint, unless the interval just wrote this step. */
        if (self->trainer && !(self->saved && self->last_saved_step ==
                (guint64) simclr_trainer_get_step (self->trainer)))
          gst_simclr_encoder_save (self);
        /* The last epoch's kNN, after the checkpoint is safe. */
        if (self->trainer && self->monitor_train
            && self->monitor_epoch != G_MAXUINT64)
          gst_simclr_encoder_monitor (self, self->monitor_epoch);
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

static gboolean
gst_simclr_encoder_src_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (parent);
  const GstStructure *s;
  GstBuffer *grad = NULL;
  guint64 step;
  gint rows = -1, dim = -1;
  gboolean accepted = FALSE;

  if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_UPSTREAM)
    return gst_pad_event_default (pad, parent, event);
  s = gst_event_get_structure (event);
  if (s == NULL || !gst_structure_has_name (s, SIMCLR_GRADIENT_EVENT))
    return gst_pad_event_default (pad, parent, event);

  if (!gst_structure_get_uint64 (s, "step", &step) ||
      !gst_structure_get (s, "gradient", GST_TYPE_BUFFER, &grad, NULL) ||
      grad == NULL) {
    GST_WARNING_OBJECT (self, "ignoring malformed gradient event %"
        GST_PTR_FORMAT, s);
    gst_event_unref (event);
    return FALSE;
  }
  gst_structure_get_int (s, "rows", &rows);
  gst_structure_get_int (s, "dimension", &dim);

  g_mutex_lock (&self->grad_lock);
  if (self->waiting && step == self->wait_step && self->gradient == NULL) {
    self->gradient = grad;
    self->grad_rows = rows;
    self->grad_dim = dim;
    grad = NULL;
    accepted = TRUE;
    g_cond_broadcast (&self->grad_cond);
  }
  g_mutex_unlock (&self->grad_lock);

  if (!accepted) {
    GST_WARNING_OBJECT (self, "ignoring a gradient for unexpected step %"
        G_GUINT64_FORMAT, step);
    gst_buffer_unref (grad);
  } else {
    GST_LOG_OBJECT (self, "gradient of step %" G_GUINT64_FORMAT, step);
  }
  gst_event_unref (event);
  return accepted;
}

/* ---- state ------------------------------------------------------------------ */

static GstStateChangeReturn
gst_simclr_encoder_change_state (GstElement * element,
    GstStateChange transition)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      GST_OBJECT_LOCK (self);
      settings_copy (&self->run, &self->props);
      GST_OBJECT_UNLOCK (self);
      g_mutex_lock (&self->grad_lock);
      self->flushing = FALSE;
      self->shutdown = FALSE;
      g_mutex_unlock (&self->grad_lock);
      if (!gst_simclr_encoder_start (self)) {
        gst_simclr_encoder_reset (self);
        return GST_STATE_CHANGE_FAILURE;
      }
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* Wake a streaming thread waiting for a gradient, so that the pad
       * deactivation below can take the stream lock. */
      g_mutex_lock (&self->grad_lock);
      self->shutdown = TRUE;
      g_cond_broadcast (&self->grad_cond);
      g_mutex_unlock (&self->grad_lock);
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
