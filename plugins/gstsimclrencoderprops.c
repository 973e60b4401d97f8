/* gstsimclrencoderprops.c: the properties of simclrencoder: their pspecs
 * (with the doc comments), defaults, get/set under the object lock and the
 * snapshot a run takes at start. The element's behaviour is in
 * gstsimclrencoder.c; see its SECTION comment.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrencoderpriv.h"

#include <string.h>

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
  PROP_VIEWS,
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
  PROP_ATTACH_META,
  PROP_MAX_LATENCY,
  PROP_MONITOR_LOCATION,
  PROP_MONITOR_SAMPLES,
  PROP_LR_SCHEDULE,
  PROP_RESTART_PERIOD,
  PROP_CHECKPOINT_KEEP,
  PROP_CHECKPOINT_SECONDS,
  PROP_REPLAY_SIZE,
  PROP_REPLAY_POLICY,
  PROP_REPLAY_MAX_BYTES,
  PROP_REPLAY_MIN,
  PROP_REPLAY_OVERFLOW,
  PROP_PASSES,
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
#define DEFAULT_VIEWS 2
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
#define DEFAULT_ATTACH_META FALSE
#define DEFAULT_MAX_LATENCY 0
#define DEFAULT_MONITOR_LOCATION NULL
#define DEFAULT_MONITOR_SAMPLES 1000
#define DEFAULT_LR_SCHEDULE SIMCLR_LR_SCHEDULE_COSINE
#define DEFAULT_RESTART_PERIOD 1000
#define DEFAULT_CHECKPOINT_KEEP 3
#define DEFAULT_CHECKPOINT_SECONDS 0.0
#define DEFAULT_REPLAY_SIZE 0
#define DEFAULT_REPLAY_POLICY SIMCLR_REPLAY_RING
#define DEFAULT_REPLAY_MAX_BYTES 0
#define DEFAULT_REPLAY_MIN 0
#define DEFAULT_REPLAY_OVERFLOW GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_AUTO
#define DEFAULT_PASSES 1

#define MAX_BATCH_SIZE 32768
/* Ranges are what the core accepts (issue 15): the optimiser needs a
 * positive, finite learning rate and a momentum below 1. */
#define MIN_LEARNING_RATE 1e-12
#define MAX_LEARNING_RATE G_MAXDOUBLE   /* any finite rate is accepted */
#define MAX_MOMENTUM 0.9999
#define MAX_EMBED_BATCH 4096

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
    {GST_SIMCLR_ENCODER_STEM_STRIDE2, "3x3 convolution, stride 2, no "
          "max-pool: a quarter of the cifar stem's arithmetic (small images, "
          "short budgets)", "stride2"},
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

#define GST_TYPE_SIMCLR_ENCODER_LR_SCHEDULE (gst_simclr_encoder_lr_schedule_get_type ())
static GType
gst_simclr_encoder_lr_schedule_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {SIMCLR_LR_SCHEDULE_COSINE, "Warm-up, then cosine decay to 0 at "
          "total-steps (SimCLR's)", "cosine"},
    {SIMCLR_LR_SCHEDULE_CONSTANT, "Warm-up, then the peak rate for ever "
          "(streams without an end)", "constant"},
    {SIMCLR_LR_SCHEDULE_COSINE_RESTARTS, "Warm-up, then cosine decay from the "
          "peak over restart-period steps, again and again", "cosine-restarts"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderLrSchedule", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_SIMCLR_ENCODER_REPLAY_POLICY (gst_simclr_encoder_replay_policy_get_type ())
static GType
gst_simclr_encoder_replay_policy_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {SIMCLR_REPLAY_RING, "Keep the newest replay-size samples (a new one "
          "overwrites the oldest)", "ring"},
    {SIMCLR_REPLAY_RESERVOIR, "Keep a uniform random subset of every sample "
          "seen (reservoir sampling)", "reservoir"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderReplayPolicy", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_SIMCLR_ENCODER_REPLAY_OVERFLOW (gst_simclr_encoder_replay_overflow_get_type ())
static GType
gst_simclr_encoder_replay_overflow_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_AUTO, "drop when upstream is live, "
          "else wait", "auto"},
    {GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_DROP, "Overwrite: never block "
          "upstream (live sources)", "drop"},
    {GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_WAIT, "Block upstream until the "
          "sample about to be overwritten was trained on once (files)",
        "wait"},
    {0, NULL, NULL}
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstSimclrEncoderReplayOverflow",
        values);
    g_once_init_leave (&type, t);
  }
  return type;
}

void
gst_simclr_encoder_install_properties (GObjectClass * gobject_class)
{
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

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
   * or less (SimCLR's CIFAR-10 variant), imagenet above. stride2 (3x3
   * stride 2, no max-pool) runs every later layer at half the side of
   * cifar's: about a quarter of the arithmetic, for small images on a small
   * CPU budget (README, "Linear evaluation").
   */
  g_object_class_install_property (gobject_class, PROP_STEM,
      g_param_spec_enum ("stem", "Stem",
          "First layer of a new model: cifar (3x3 stride 1), stride2 (3x3 "
          "stride 2), imagenet (7x7 stride 2 + max-pool) or auto (cifar up "
          "to 64 pixels)",
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
  /**
   * GstSimclrEncoder:views:
   *
   * Views per sample in train mode: a step takes views 0 .. views-1 of N
   * samples (simclraugment views=V) and emits V x N rows, with the number
   * in the caps (views=V) so ntxentsink computes the loss of V views, where
   * every other view of a sample is a positive (the multi-positive form of
   * NT-Xent; 2 is SimCLR's).
   */
  g_object_class_install_property (gobject_class, PROP_VIEWS,
      g_param_spec_int ("views", "Views per sample",
          "Train mode: views per sample in a step (views 0 .. views-1 of "
          "each sample; simclraugment views=V); 2 = SimCLR's pairs",
          2, SIMCLR_LOSS_MAX_VIEWS, DEFAULT_VIEWS, rw));
  g_object_class_install_property (gobject_class, PROP_OPTIMIZER,
      g_param_spec_enum ("optimizer", "Optimizer",
          "Optimiser: LARS (SimCLR's) or SGD with momentum",
          GST_TYPE_SIMCLR_ENCODER_OPTIMIZER, DEFAULT_OPTIMIZER, rw));
  /**
   * GstSimclrEncoder:learning-rate:
   *
   * Base learning rate, scaled by lr-scaling: the peak rate is
   * learning-rate x N / 256 (linear) or learning-rate x sqrt (N) (sqrt;
   * SimCLR uses 0.075 there). The range is what the optimiser accepts
   * (issue 15: it used to say 0 - 1.8e308 and refuse 0 at start).
   */
  g_object_class_install_property (gobject_class, PROP_LEARNING_RATE,
      g_param_spec_double ("learning-rate", "Learning rate",
          "Base learning rate before lr-scaling (peak = base x N / 256 or "
          "base x sqrt (N)); must be > 0", MIN_LEARNING_RATE,
          MAX_LEARNING_RATE, DEFAULT_LEARNING_RATE, rw));
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
          "Momentum of the optimiser (0 = none; below 1)", 0.0, MAX_MOMENTUM,
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
   * atomically at each save), or an existing folder: then every save is a
   * new file FOLDER/ckpt-<step, 12 digits>.safetensors and the newest
   * #GstSimclrEncoder:checkpoint-keep are kept (rotation; the core's
   * ckptdir.h). Embed mode: the checkpoint to load.
   */
  g_object_class_install_property (gobject_class, PROP_CHECKPOINT_LOCATION,
      g_param_spec_string ("checkpoint-location", "Checkpoint location",
          "Train: safetensors file written every checkpoint-interval steps and "
          "at EOS, or a folder of rotating ckpt-<step>.safetensors files "
          "(NULL/\"\" = none); embed: the checkpoint to load",
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
   * must match the input caps. A folder resumes its newest checkpoint that
   * opens completely (ckpt-<step>.safetensors; a newer file that does not
   * open is skipped with a warning naming it); a folder without any
   * checkpoint starts anew (a warning says so), so one command line can
   * start and restart a long run. A glob pattern (with * ? or [) resumes
   * the matching file with the largest step.
   */
  g_object_class_install_property (gobject_class, PROP_RESUME_FROM,
      g_param_spec_string ("resume-from", "Resume from",
          "Trainer checkpoint to resume (configuration, weights, optimiser "
          "state and step come from the file), a folder (its newest complete "
          "checkpoint; none: start anew) or a glob pattern (largest step); "
          "NULL/\"\" = start anew", DEFAULT_RESUME_FROM, rw));
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
   * GstSimclrEncoder:attach-meta:
   *
   * Embed mode: FALSE (default) pushes one embedding buffer per frame
   * (application/x-simclr-embedding); TRUE passes every input frame on
   * unchanged (the source caps are the sink caps) with its embedding
   * attached as a #GstSimclrVectorMeta, so downstream elements see the
   * image and its vector together.
   */
  g_object_class_install_property (gobject_class, PROP_ATTACH_META,
      g_param_spec_boolean ("attach-meta", "Attach meta",
          "Embed mode: pass the input frames on with their embedding as a "
          "GstSimclrVectorMeta instead of pushing embedding buffers",
          DEFAULT_ATTACH_META, rw | GST_PARAM_MUTABLE_READY));
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
  /**
   * GstSimclrEncoder:lr-schedule:
   *
   * What follows the linear warm-up: cosine decay to 0 at total-steps
   * (default), a constant rate, or cosine with warm restarts every
   * restart-period steps. The stream schedules never complete, so
   * stop-at-end does not end them. Saved in checkpoints ("lr_schedule");
   * with resume-from the file's schedule is used.
   */
  g_object_class_install_property (gobject_class, PROP_LR_SCHEDULE,
      g_param_spec_enum ("lr-schedule", "Learning-rate schedule",
          "After the warm-up: cosine to 0 at total-steps, constant, or cosine "
          "restarted every restart-period steps",
          GST_TYPE_SIMCLR_ENCODER_LR_SCHEDULE, DEFAULT_LR_SCHEDULE, rw));
  g_object_class_install_property (gobject_class, PROP_RESTART_PERIOD,
      g_param_spec_uint64 ("restart-period", "Restart period",
          "lr-schedule=cosine-restarts: steps from one restart to the next",
          1, G_MAXINT64, DEFAULT_RESTART_PERIOD, rw));
  /**
   * GstSimclrEncoder:checkpoint-keep:
   *
   * checkpoint-location is a folder: the newest files kept; older ones (and
   * temporary files a killed writer left) are removed after each
   * successful save, never before, so a failed save keeps what was saved.
   */
  g_object_class_install_property (gobject_class, PROP_CHECKPOINT_KEEP,
      g_param_spec_uint ("checkpoint-keep", "Checkpoints kept",
          "checkpoint-location a folder: newest checkpoint files kept", 1,
          G_MAXINT, DEFAULT_CHECKPOINT_KEEP, rw));
  /**
   * GstSimclrEncoder:checkpoint-seconds:
   *
   * Also write a checkpoint once this many seconds (wall clock) passed
   * since the last one, checked after every step (0 = steps only). With
   * checkpoint-interval, whichever comes first.
   */
  g_object_class_install_property (gobject_class, PROP_CHECKPOINT_SECONDS,
      g_param_spec_double ("checkpoint-seconds", "Checkpoint seconds",
          "Write a checkpoint once this many seconds passed since the last "
          "(0 = only checkpoint-interval and EOS)", 0.0, G_MAXDOUBLE,
          DEFAULT_CHECKPOINT_SECONDS, rw));
  /**
   * GstSimclrEncoder:replay-size:
   *
   * Train mode: 0 (default) trains on the views in the order they come,
   * each once, in the streaming thread. A positive value is the capacity,
   * in samples, of a replay buffer (the core's SimclrReplay): the streaming
   * thread only files each complete sample into it, and a training thread
   * of the element draws every batch uniformly from the whole buffer, so
   * the negatives of a batch come from a window of replay-size samples,
   * not from the last N near-identical frames, and a live source is never
   * held up by a training step. The buffer's memory (replay-size x 2 views
   * x the view's bytes, plus a record per sample) is allocated at start and
   * does not grow. See the element's documentation.
   */
  g_object_class_install_property (gobject_class, PROP_REPLAY_SIZE,
      g_param_spec_int ("replay-size", "Replay size",
          "Train: samples held in a replay buffer that batches are drawn "
          "from, trained by a thread of the element (0 = none: train on the "
          "views in arrival order, in the streaming thread)", 0, G_MAXINT,
          DEFAULT_REPLAY_SIZE, rw));
  g_object_class_install_property (gobject_class, PROP_REPLAY_POLICY,
      g_param_spec_enum ("replay-policy", "Replay policy",
          "Which samples the replay buffer keeps when it is full",
          GST_TYPE_SIMCLR_ENCODER_REPLAY_POLICY, DEFAULT_REPLAY_POLICY, rw));
  /**
   * GstSimclrEncoder:replay-max-bytes:
   *
   * Refuse (an error naming both sizes) a replay buffer needing more bytes
   * than this. 0: no limit of its own; a buffer above the memory the system
   * reports available is refused either way.
   */
  g_object_class_install_property (gobject_class, PROP_REPLAY_MAX_BYTES,
      g_param_spec_uint64 ("replay-max-bytes", "Replay maximum bytes",
          "Largest replay buffer allowed, in bytes (0 = only the memory "
          "available limits it)", 0, G_MAXUINT64, DEFAULT_REPLAY_MAX_BYTES,
          rw));
  g_object_class_install_property (gobject_class, PROP_REPLAY_MIN,
      g_param_spec_int ("replay-min", "Replay minimum",
          "Samples the replay buffer holds before the first step (0 = "
          "batch-size; at most replay-size)", 0, G_MAXINT, DEFAULT_REPLAY_MIN,
          rw));
  /**
   * GstSimclrEncoder:replay-overflow:
   *
   * A sample arriving when the buffer is full overwrites one (ring: the
   * oldest). drop: always, even one never drawn into a batch (counted as
   * dropped): upstream is never blocked, as a live source needs. wait: the
   * streaming thread waits until the sample about to be overwritten was
   * trained on once, so every frame of a file trains at least once and
   * the file plays as fast as training allows. auto: drop if upstream
   * reports itself live (latency query), else wait.
   */
  g_object_class_install_property (gobject_class, PROP_REPLAY_OVERFLOW,
      g_param_spec_enum ("replay-overflow", "Replay overflow",
          "Full replay buffer: overwrite untrained samples (drop, live), "
          "block upstream until they trained once (wait, files), or auto",
          GST_TYPE_SIMCLR_ENCODER_REPLAY_OVERFLOW, DEFAULT_REPLAY_OVERFLOW,
          rw));
  /**
   * GstSimclrEncoder:passes:
   *
   * Train mode: passes over the input within one pipeline. At the end of
   * each pass but the last the element seeks upstream back to the start
   * (a flushing seek; the input must be seekable, e.g. a file through
   * decodebin) instead of ending; simclraugment keeps counting frames, so
   * each pass gets new views. The replay buffer keeps its samples across
   * passes. 0 = endless (stop-at-end or an EOS from the application ends
   * the run). An input that cannot seek ends after its pass with a warning.
   */
  g_object_class_install_property (gobject_class, PROP_PASSES,
      g_param_spec_uint ("passes", "Passes",
          "Train: passes over a seekable input, by seeking back to the start "
          "at its end (0 = endless)", 0, G_MAXUINT, DEFAULT_PASSES, rw));
  g_object_class_install_property (gobject_class, PROP_STEP,
      g_param_spec_uint64 ("step", "Step",
          "Optimiser steps taken (train mode)", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_LR,
      g_param_spec_double ("lr", "Learning rate now",
          "Learning rate of the next step (train mode)", 0.0, G_MAXDOUBLE, 0.0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_ARCH, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_STEM, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_OPTIMIZER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_LR_SCALING, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_OUTPUT, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_LR_SCHEDULE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_REPLAY_POLICY, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_ENCODER_REPLAY_OVERFLOW, 0);
}

void
gst_simclr_encoder_settings_init (Settings * s)
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
  s->views = DEFAULT_VIEWS;
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
  s->attach_meta = DEFAULT_ATTACH_META;
  s->max_latency = DEFAULT_MAX_LATENCY;
  s->monitor_location = g_strdup (DEFAULT_MONITOR_LOCATION);
  s->monitor_samples = DEFAULT_MONITOR_SAMPLES;
  s->lr_schedule = DEFAULT_LR_SCHEDULE;
  s->restart_period = DEFAULT_RESTART_PERIOD;
  s->checkpoint_keep = DEFAULT_CHECKPOINT_KEEP;
  s->checkpoint_seconds = DEFAULT_CHECKPOINT_SECONDS;
  s->replay_size = DEFAULT_REPLAY_SIZE;
  s->replay_policy = DEFAULT_REPLAY_POLICY;
  s->replay_max_bytes = DEFAULT_REPLAY_MAX_BYTES;
  s->replay_min = DEFAULT_REPLAY_MIN;
  s->replay_overflow = DEFAULT_REPLAY_OVERFLOW;
  s->passes = DEFAULT_PASSES;
}

void
gst_simclr_encoder_settings_clear (Settings * s)
{
  g_clear_pointer (&s->checkpoint_location, g_free);
  g_clear_pointer (&s->resume_from, g_free);
  g_clear_pointer (&s->monitor_location, g_free);
}

void
gst_simclr_encoder_settings_copy (Settings * dst, const Settings * src)
{
  gst_simclr_encoder_settings_clear (dst);
  *dst = *src;
  dst->checkpoint_location = g_strdup (src->checkpoint_location);
  dst->resume_from = g_strdup (src->resume_from);
  dst->monitor_location = g_strdup (src->monitor_location);
}

void
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
    case PROP_VIEWS:
      s->views = g_value_get_int (value);
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
    case PROP_ATTACH_META:
      s->attach_meta = g_value_get_boolean (value);
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
    case PROP_LR_SCHEDULE:
      s->lr_schedule = g_value_get_enum (value);
      break;
    case PROP_RESTART_PERIOD:
      s->restart_period = g_value_get_uint64 (value);
      break;
    case PROP_CHECKPOINT_KEEP:
      s->checkpoint_keep = g_value_get_uint (value);
      break;
    case PROP_CHECKPOINT_SECONDS:
      s->checkpoint_seconds = g_value_get_double (value);
      break;
    case PROP_REPLAY_SIZE:
      s->replay_size = g_value_get_int (value);
      break;
    case PROP_REPLAY_POLICY:
      s->replay_policy = g_value_get_enum (value);
      break;
    case PROP_REPLAY_MAX_BYTES:
      s->replay_max_bytes = g_value_get_uint64 (value);
      break;
    case PROP_REPLAY_MIN:
      s->replay_min = g_value_get_int (value);
      break;
    case PROP_REPLAY_OVERFLOW:
      s->replay_overflow = g_value_get_enum (value);
      break;
    case PROP_PASSES:
      s->passes = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

void
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
    case PROP_VIEWS:
      g_value_set_int (value, s->views);
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
    case PROP_ATTACH_META:
      g_value_set_boolean (value, s->attach_meta);
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
    case PROP_LR_SCHEDULE:
      g_value_set_enum (value, s->lr_schedule);
      break;
    case PROP_RESTART_PERIOD:
      g_value_set_uint64 (value, s->restart_period);
      break;
    case PROP_CHECKPOINT_KEEP:
      g_value_set_uint (value, s->checkpoint_keep);
      break;
    case PROP_CHECKPOINT_SECONDS:
      g_value_set_double (value, s->checkpoint_seconds);
      break;
    case PROP_REPLAY_SIZE:
      g_value_set_int (value, s->replay_size);
      break;
    case PROP_REPLAY_POLICY:
      g_value_set_enum (value, s->replay_policy);
      break;
    case PROP_REPLAY_MAX_BYTES:
      g_value_set_uint64 (value, s->replay_max_bytes);
      break;
    case PROP_REPLAY_MIN:
      g_value_set_int (value, s->replay_min);
      break;
    case PROP_REPLAY_OVERFLOW:
      g_value_set_enum (value, s->replay_overflow);
      break;
    case PROP_PASSES:
      g_value_set_uint (value, s->passes);
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
