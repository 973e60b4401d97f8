/* gstsimclrencoderprops.c: the properties of simclrencoder as one table:
 * a row per property (name, nick, blurb, range, default, the Settings field
 * it sets), from which install, get/set under the object lock and the
 * Settings a run snapshots at start are all derived. The element's
 * behaviour is in gstsimclrencoder.c; see its SECTION comment.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrencoderpriv.h"

#include <stddef.h>
#include <string.h>

/* ---- defaults: change a default here, nowhere else ----------------------- */
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
/* The recipe (issue 11, README "Linear evaluation"): LARS at 0.3 x sqrt (N),
 * chosen on a validation split for budgets of minutes. */
#define DEFAULT_LR_SCALING SIMCLR_LR_SCALING_SQRT
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

/* ---- enum types: one row each, registered by enum_type () ---------------- */

enum
{
  E_NONE, E_MODE, E_ARCH, E_STEM, E_OPTIMIZER, E_LR_SCALING, E_OUTPUT,
  E_LR_SCHEDULE, E_REPLAY_POLICY, E_REPLAY_OVERFLOW, N_ENUMS
};

static const struct
{
  const gchar *name;
  GEnumValue values[5];         /* ends with {0, NULL, NULL} */
} enums[N_ENUMS] = {
  [E_MODE] = {"GstSimclrEncoderMode", {
          {GST_SIMCLR_ENCODER_MODE_TRAIN, "Train on pairs of views", "train"},
          {GST_SIMCLR_ENCODER_MODE_EMBED, "Embed frames with a checkpoint",
              "embed"}}},
  [E_ARCH] = {"GstSimclrEncoderArch", {
          {SIMCLR_ARCH_RESNET18, "ResNet-18", "resnet18"},
          {SIMCLR_ARCH_RESNET34, "ResNet-34", "resnet34"},
          {SIMCLR_ARCH_RESNET50, "ResNet-50", "resnet50"}}},
  [E_STEM] = {"GstSimclrEncoderStem", {
          {GST_SIMCLR_ENCODER_STEM_AUTO, "cifar for frames up to 64 pixels, "
                "else imagenet", "auto"},
          {GST_SIMCLR_ENCODER_STEM_CIFAR, "3x3 convolution, stride 1, no "
                "max-pool", "cifar"},
          {GST_SIMCLR_ENCODER_STEM_IMAGENET, "7x7 convolution, stride 2, "
                "max-pool", "imagenet"},
          {GST_SIMCLR_ENCODER_STEM_STRIDE2, "3x3 convolution, stride 2, no "
                "max-pool: a quarter of the cifar stem's arithmetic (small "
                "images, short budgets)", "stride2"}}},
  [E_OPTIMIZER] = {"GstSimclrEncoderOptimizer", {
          {SIMCLR_OPTIM_LARS, "LARS (layer-wise trust ratio)", "lars"},
          {SIMCLR_OPTIM_SGD, "SGD with momentum", "sgd"}}},
  [E_LR_SCALING] = {"GstSimclrEncoderLrScaling", {
          {SIMCLR_LR_SCALING_LINEAR, "learning-rate x batch-size / 256",
              "linear"},
          {SIMCLR_LR_SCALING_SQRT, "learning-rate x sqrt (batch-size)",
              "sqrt"}}},
  [E_OUTPUT] = {"GstSimclrEncoderOutput", {
          {GST_SIMCLR_ENCODER_OUTPUT_REPRESENTATION, "Representation h "
                "(encoder output, before the head)", "representation"},
          {GST_SIMCLR_ENCODER_OUTPUT_PROJECTION, "Projection z (after the "
                "head)", "projection"}}},
  [E_LR_SCHEDULE] = {"GstSimclrEncoderLrSchedule", {
          {SIMCLR_LR_SCHEDULE_COSINE, "Warm-up, then cosine decay to 0 at "
                "total-steps (SimCLR's)", "cosine"},
          {SIMCLR_LR_SCHEDULE_CONSTANT, "Warm-up, then the peak rate for "
                "ever (streams without an end)", "constant"},
          {SIMCLR_LR_SCHEDULE_COSINE_RESTARTS, "Warm-up, then cosine decay "
                "from the peak over restart-period steps, again and again",
              "cosine-restarts"}}},
  [E_REPLAY_POLICY] = {"GstSimclrEncoderReplayPolicy", {
          {SIMCLR_REPLAY_RING, "Keep the newest replay-size samples (a new "
                "one overwrites the oldest)", "ring"},
          {SIMCLR_REPLAY_RESERVOIR, "Keep a uniform random subset of every "
                "sample seen (reservoir sampling)", "reservoir"}}},
  [E_REPLAY_OVERFLOW] = {"GstSimclrEncoderReplayOverflow", {
          {GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_AUTO, "drop when upstream is "
                "live, else wait", "auto"},
          {GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_DROP, "Overwrite: never block "
                "upstream (live sources)", "drop"},
          {GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_WAIT, "Block upstream until the "
                "sample about to be overwritten was trained on once (files)",
              "wait"}}},
};

/* Enum properties are stored as gint in Settings. */
G_STATIC_ASSERT (sizeof (GstSimclrEncoderMode) == sizeof (gint));
G_STATIC_ASSERT (sizeof (SimclrArch) == sizeof (gint));
G_STATIC_ASSERT (sizeof (SimclrReplayPolicy) == sizeof (gint));

static GType
enum_type (guint e)
{
  static GType types[N_ENUMS];

  if (types[e] == 0) {
    /* class_init runs once, under GType's class lock */
    types[e] = g_enum_register_static (enums[e].name, enums[e].values);
    gst_type_mark_as_plugin_api (types[e], 0);
  }
  return types[e];
}

/* ---- the table ------------------------------------------------------------ */

typedef enum
{ K_BOOL, K_INT, K_UINT, K_UINT64, K_DOUBLE, K_STRING, K_ENUM } Kind;

typedef struct
{
  const gchar *name, *nick, *blurb;
  Kind kind;
  guint enum_id;                /* K_ENUM: E_* */
  guint64 min, max, def;        /* integer kinds, K_BOOL, K_ENUM (def) */
  gdouble dmin, dmax, ddef;     /* K_DOUBLE */
  const gchar *sdef;            /* K_STRING */
  gsize offset;                 /* of the field in Settings */
} Prop;

#define F(field) offsetof (Settings, field)
#define ENUM(n, nk, b, e, d, f) {n, nk, b, K_ENUM, e, 0, 0, d, 0, 0, 0, NULL, F (f)}
#define INT(n, nk, b, lo, hi, d, f) {n, nk, b, K_INT, 0, lo, hi, d, 0, 0, 0, NULL, F (f)}
#define UINT(n, nk, b, lo, hi, d, f) {n, nk, b, K_UINT, 0, lo, hi, d, 0, 0, 0, NULL, F (f)}
#define UINT64(n, nk, b, lo, hi, d, f) {n, nk, b, K_UINT64, 0, lo, hi, d, 0, 0, 0, NULL, F (f)}
#define DOUBLE(n, nk, b, lo, hi, d, f) {n, nk, b, K_DOUBLE, 0, 0, 0, 0, lo, hi, d, NULL, F (f)}
#define BOOL(n, nk, b, d, f) {n, nk, b, K_BOOL, 0, 0, 0, d, 0, 0, 0, NULL, F (f)}
#define STRING(n, nk, b, d, f) {n, nk, b, K_STRING, 0, 0, 0, 0, 0, 0, 0, d, F (f)}

/* Property id = row + 1; "step" and "lr" (read-only) follow the table. */
static const Prop props[] = {
  /**
   * GstSimclrEncoder:mode:
   *
   * train: learn from pairs of views (needs ntxentsink downstream); embed:
   * emit the embeddings of a trained checkpoint.
   */
  ENUM ("mode", "Mode",
      "train: learn from pairs of views (ntxentsink downstream); embed: "
      "one embedding per frame from checkpoint-location", E_MODE,
      DEFAULT_MODE, mode),
  ENUM ("arch", "Architecture",
      "ResNet of a new model (ignored with resume-from and in embed mode)",
      E_ARCH, DEFAULT_ARCH, arch),
  /**
   * GstSimclrEncoder:width:
   *
   * Default 1: torchvision's ResNet-18 (h of 512), the model "ResNet-18"
   * names. Unlike the optimiser and loss defaults this is not the
   * Fashion-MNIST recipe's value (0.25, h of 128): the width is the model's
   * size, chosen for the images and the compute budget (0.25 is 16x less
   * arithmetic, the 2-core choice for 28-pixel images), so the scripts pass
   * it. A resumed or embedded checkpoint keeps its own width.
   */
  DOUBLE ("width", "Width multiplier",
      "Channel multiplier of a new model: every layer has "
      "max (1, round (channels x width)) channels (1 = torchvision's ResNet; "
      "the 2-core Fashion-MNIST recipe uses 0.25)",
      0.25, 4.0, DEFAULT_WIDTH, width),
  /**
   * GstSimclrEncoder:stem:
   *
   * auto chooses cifar for frames of 64 pixels or less (SimCLR's CIFAR-10
   * variant). stride2 runs every later layer at half the side of cifar's:
   * about a quarter of the arithmetic, for small images on a small CPU
   * budget (README, "Linear evaluation").
   */
  ENUM ("stem", "Stem",
      "First layer of a new model: cifar (3x3 stride 1), stride2 (3x3 "
      "stride 2), imagenet (7x7 stride 2 + max-pool) or auto (cifar up "
      "to 64 pixels)", E_STEM, DEFAULT_STEM, stem),
  /**
   * GstSimclrEncoder:proj-layers:
   *
   * 0: z = h; 3 has batch norm (SimCLR v2). 1 is rejected at start.
   */
  INT ("proj-layers", "Projection layers",
      "Linear layers of the projection head: 0 (none), 2 (SimCLR v1) or "
      "3 (SimCLR v2)", 0, 3, DEFAULT_PROJ_LAYERS, proj_layers),
  INT ("proj-hidden", "Projection hidden size",
      "Hidden units of the projection head (0 = the encoder's feature "
      "dimension)", 0, 65536, DEFAULT_PROJ_HIDDEN, proj_hidden),
  INT ("proj-dim", "Projection dimension",
      "Output dimension of the projection head (z)", 1, 65536,
      DEFAULT_PROJ_DIM, proj_dim),
  /**
   * GstSimclrEncoder:batch-size:
   *
   * Also the N of the learning-rate scaling. With resume-from, the file's
   * value is used.
   */
  INT ("batch-size", "Batch size",
      "Samples N per training step (2N views, 2N output rows)", 1,
      MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE, batch_size),
  /**
   * GstSimclrEncoder:views:
   *
   * A step emits V x N rows, with V in the caps (views=V), so ntxentsink
   * computes the loss of V views, where every other view of a sample is a
   * positive (the multi-positive form of NT-Xent).
   */
  INT ("views", "Views per sample",
      "Train mode: views per sample in a step (views 0 .. views-1 of "
      "each sample; simclraugment views=V); 2 = SimCLR's pairs",
      2, SIMCLR_LOSS_MAX_VIEWS, DEFAULT_VIEWS, views),
  ENUM ("optimizer", "Optimizer",
      "Optimiser: LARS (SimCLR's) or SGD with momentum", E_OPTIMIZER,
      DEFAULT_OPTIMIZER, optimizer),
  /**
   * GstSimclrEncoder:learning-rate:
   *
   * Default 0.3 with lr-scaling sqrt (0.3 x sqrt (N) = 4.8 at N 256): the
   * recipe chosen on a Fashion-MNIST validation split for budgets of
   * minutes (+2.2 points of linear top-1 over SimCLR's 0.075 x sqrt (N) at
   * 200 steps; README "Linear evaluation"). SimCLR uses 0.075 with sqrt
   * scaling for long runs. The range is what the optimiser accepts (issue
   * 15: it used to say 0 - 1.8e308 and refuse 0 at start).
   */
  DOUBLE ("learning-rate", "Learning rate",
      "Base learning rate before lr-scaling (peak = base x N / 256 or "
      "base x sqrt (N)); must be > 0. Default 0.3 x sqrt (N), the "
      "short-budget recipe; SimCLR's long runs use 0.075", MIN_LEARNING_RATE,
      MAX_LEARNING_RATE, DEFAULT_LEARNING_RATE, learning_rate),
  ENUM ("lr-scaling", "Learning-rate scaling",
      "How the base learning rate scales with batch-size (default sqrt, "
      "the recipe's; linear was the default before)", E_LR_SCALING,
      DEFAULT_LR_SCALING, lr_scaling),
  DOUBLE ("weight-decay", "Weight decay",
      "L2 weight decay of convolution and linear weights (biases and "
      "batch-norm parameters are excluded)", 0.0, 1.0,
      DEFAULT_WEIGHT_DECAY, weight_decay),
  DOUBLE ("momentum", "Momentum",
      "Momentum of the optimiser (0 = none; below 1)", 0.0, MAX_MOMENTUM,
      DEFAULT_MOMENTUM, momentum),
  /**
   * GstSimclrEncoder:warmup-steps:
   *
   * A step count (default 10, a tenth of the default total-steps); the
   * recipe warms up for 5 % of total-steps.
   */
  UINT64 ("warmup-steps", "Warm-up steps",
      "Steps of linear learning-rate warm-up (0 = none)", 0, G_MAXINT64,
      DEFAULT_WARMUP_STEPS, warmup_steps),
  /**
   * GstSimclrEncoder:total-steps:
   *
   * The learning rate stays 0 after this step (a warning says so once).
   * Default 100: set it for a real run.
   */
  UINT64 ("total-steps", "Total steps",
      "Steps of the schedule: cosine decay reaches 0 here (must exceed "
      "warmup-steps; epochs x samples / batch-size)", 1, G_MAXINT64,
      DEFAULT_TOTAL_STEPS, total_steps),
  /**
   * GstSimclrEncoder:checkpoint-location:
   *
   * A file is overwritten atomically at each save. An existing folder: every
   * save is a new file FOLDER/ckpt-<step, 12 digits>.safetensors and the
   * newest #GstSimclrEncoder:checkpoint-keep are kept (the core's
   * ckptdir.h).
   */
  STRING ("checkpoint-location", "Checkpoint location",
      "Train: safetensors file written every checkpoint-interval steps and "
      "at EOS, or a folder of rotating ckpt-<step>.safetensors files "
      "(NULL/\"\" = none); embed: the checkpoint to load",
      DEFAULT_CHECKPOINT_LOCATION, checkpoint_location),
  UINT64 ("checkpoint-interval", "Checkpoint interval",
      "Write a checkpoint every this many steps (0 = only at EOS)", 0,
      G_MAXUINT64, DEFAULT_CHECKPOINT_INTERVAL, checkpoint_interval),
  /**
   * GstSimclrEncoder:resume-from:
   *
   * The file's image size and channels must match the input caps. A folder
   * resumes its newest checkpoint that opens completely (a newer file that
   * does not open is skipped with a warning naming it); a folder without
   * any starts anew with a warning, so one command line starts and
   * restarts a long run. A glob pattern (* ? or [) resumes the matching
   * file with the largest step.
   */
  STRING ("resume-from", "Resume from",
      "Trainer checkpoint to resume (configuration, weights, optimiser "
      "state and step come from the file), a folder (its newest complete "
      "checkpoint; none: start anew) or a glob pattern (largest step); "
      "NULL/\"\" = start anew", DEFAULT_RESUME_FROM, resume_from),
  UINT64 ("seed", "Seed",
      "Seed of the weight initialisation of a new model", 0, G_MAXUINT64,
      DEFAULT_SEED, seed),
  /**
   * GstSimclrEncoder:threads:
   *
   * Train mode. The thin layers' GEMMs are sliced below OpenBLAS's own
   * threading threshold, so the two never oversubscribe the cores.
   */
  INT ("threads", "Threads",
      "Model worker threads for thin convolutions (0 = as many as "
      "OpenBLAS uses, set by OPENBLAS_NUM_THREADS)", 0, 256,
      DEFAULT_THREADS, threads),
  /**
   * GstSimclrEncoder:stop-at-end:
   *
   * Once the schedule is complete the element returns GST_FLOW_EOS
   * upstream: the source then sends EOS, which writes the final checkpoint
   * and ends the pipeline, so total-steps alone sizes a run.
   */
  BOOL ("stop-at-end", "Stop at end",
      "Train mode: end the stream once total-steps steps are done "
      "(FALSE: keep going with learning rate 0 until EOS)",
      DEFAULT_STOP_AT_END, stop_at_end),
  ENUM ("output", "Output",
      "Embed mode: representation h (for downstream tasks) or projection z",
      E_OUTPUT, DEFAULT_OUTPUT, output),
  INT ("embed-batch", "Embed batch",
      "Embed mode: frames per forward pass (1 = no added latency)", 1,
      MAX_EMBED_BATCH, DEFAULT_EMBED_BATCH, embed_batch),
  /**
   * GstSimclrEncoder:attach-meta:
   *
   * TRUE: the source caps are the sink caps, and each frame carries its
   * embedding as a #GstSimclrVectorMeta.
   */
  BOOL ("attach-meta", "Attach meta",
      "Embed mode: pass the input frames on with their embedding as a "
      "GstSimclrVectorMeta instead of pushing embedding buffers",
      DEFAULT_ATTACH_META, attach_meta),
  UINT64 ("max-latency", "Maximum latency",
      "Embed mode: compute a partial batch once it spans this much stream "
      "time (ns; 0 = wait for a full batch)", 0, G_MAXUINT64,
      DEFAULT_MAX_LATENCY, max_latency),
  /**
   * GstSimclrEncoder:monitor-location:
   *
   * IDX, CIFAR binary or image class folders of the training input's size
   * and channels. At every new epoch the frozen encoder (eval mode; the
   * training state is untouched) embeds the first monitor-samples images of
   * each split, classifies the test images by kNN on the train images
   * (cosine, k 200, temperature 0.1) and posts "simclr-monitor" (step,
   * epoch: the epoch just completed, knn-top1, knn-top5, samples, seconds).
   * Under MPI rank 0 does this alone.
   */
  STRING ("monitor-location", "Monitor location",
      "Train mode: labelled data set (train and test splits) for a kNN "
      "accuracy posted as \"simclr-monitor\" every epoch (NULL/\"\" = off)",
      DEFAULT_MONITOR_LOCATION, monitor_location),
  INT ("monitor-samples", "Monitor samples",
      "Images of each split the kNN monitor uses (the first ones)", 10,
      G_MAXINT, DEFAULT_MONITOR_SAMPLES, monitor_samples),
  /**
   * GstSimclrEncoder:lr-schedule:
   *
   * The stream schedules never complete, so stop-at-end does not end them.
   * Saved in checkpoints ("lr_schedule"); resume-from uses the file's.
   */
  ENUM ("lr-schedule", "Learning-rate schedule",
      "After the warm-up: cosine to 0 at total-steps, constant, or cosine "
      "restarted every restart-period steps", E_LR_SCHEDULE,
      DEFAULT_LR_SCHEDULE, lr_schedule),
  UINT64 ("restart-period", "Restart period",
      "lr-schedule=cosine-restarts: steps from one restart to the next",
      1, G_MAXINT64, DEFAULT_RESTART_PERIOD, restart_period),
  /**
   * GstSimclrEncoder:checkpoint-keep:
   *
   * Older files (and temporary files a killed writer left) are removed
   * after each successful save, never before.
   */
  UINT ("checkpoint-keep", "Checkpoints kept",
      "checkpoint-location a folder: newest checkpoint files kept", 1,
      G_MAXINT, DEFAULT_CHECKPOINT_KEEP, checkpoint_keep),
  /**
   * GstSimclrEncoder:checkpoint-seconds:
   *
   * Checked after every step; with checkpoint-interval, whichever comes
   * first.
   */
  DOUBLE ("checkpoint-seconds", "Checkpoint seconds",
      "Write a checkpoint once this many seconds passed since the last "
      "(0 = only checkpoint-interval and EOS)", 0.0, G_MAXDOUBLE,
      DEFAULT_CHECKPOINT_SECONDS, checkpoint_seconds),
  /**
   * GstSimclrEncoder:replay-size:
   *
   * Positive: the capacity, in samples, of a replay buffer (the core's
   * SimclrReplay). The streaming thread only files each complete sample
   * into it; a training thread draws every batch uniformly from the whole
   * buffer, so negatives come from a window of replay-size samples and a
   * live source is never held up. Its memory (replay-size x views x the
   * view's bytes, plus a record per sample) is allocated at start.
   */
  INT ("replay-size", "Replay size",
      "Train: samples held in a replay buffer that batches are drawn "
      "from, trained by a thread of the element (0 = none: train on the "
      "views in arrival order, in the streaming thread)", 0, G_MAXINT,
      DEFAULT_REPLAY_SIZE, replay_size),
  ENUM ("replay-policy", "Replay policy",
      "Which samples the replay buffer keeps when it is full",
      E_REPLAY_POLICY, DEFAULT_REPLAY_POLICY, replay_policy),
  /**
   * GstSimclrEncoder:replay-max-bytes:
   *
   * A larger buffer is refused with an error naming both sizes, as is one
   * above the memory the system reports available.
   */
  UINT64 ("replay-max-bytes", "Replay maximum bytes",
      "Largest replay buffer allowed, in bytes (0 = only the memory "
      "available limits it)", 0, G_MAXUINT64, DEFAULT_REPLAY_MAX_BYTES,
      replay_max_bytes),
  INT ("replay-min", "Replay minimum",
      "Samples the replay buffer holds before the first step (0 = "
      "batch-size; at most replay-size)", 0, G_MAXINT, DEFAULT_REPLAY_MIN,
      replay_min),
  /**
   * GstSimclrEncoder:replay-overflow:
   *
   * drop: a new sample overwrites even one never drawn (counted as
   * dropped). wait: the streaming thread waits until the sample about to
   * be overwritten trained once, so every frame of a file trains. auto:
   * drop if upstream reports itself live (latency query), else wait.
   */
  ENUM ("replay-overflow", "Replay overflow",
      "Full replay buffer: overwrite untrained samples (drop, live), "
      "block upstream until they trained once (wait, files), or auto",
      E_REPLAY_OVERFLOW, DEFAULT_REPLAY_OVERFLOW, replay_overflow),
  /**
   * GstSimclrEncoder:passes:
   *
   * At the end of each pass but the last the element seeks upstream back
   * to the start (a flushing seek) instead of ending; simclraugment keeps
   * counting frames, so each pass gets new views, and the replay buffer
   * keeps its samples. An input that cannot seek ends after its pass with
   * a warning.
   */
  UINT ("passes", "Passes",
      "Train: passes over a seekable input, by seeking back to the start "
      "at its end (0 = endless)", 0, G_MAXUINT, DEFAULT_PASSES, passes),
};

enum
{
  PROP_STEP = G_N_ELEMENTS (props) + 1,
  PROP_LR,
};

void
gst_simclr_encoder_install_properties (GObjectClass * gobject_class)
{
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
  guint i;

  for (i = 0; i < G_N_ELEMENTS (props); i++) {
    const Prop *p = &props[i];
    GParamSpec *ps = NULL;

    switch (p->kind) {
      case K_BOOL:
        ps = g_param_spec_boolean (p->name, p->nick, p->blurb, p->def, rw);
        break;
      case K_INT:
        ps = g_param_spec_int (p->name, p->nick, p->blurb, p->min, p->max,
            p->def, rw);
        break;
      case K_UINT:
        ps = g_param_spec_uint (p->name, p->nick, p->blurb, p->min, p->max,
            p->def, rw);
        break;
      case K_UINT64:
        ps = g_param_spec_uint64 (p->name, p->nick, p->blurb, p->min, p->max,
            p->def, rw);
        break;
      case K_DOUBLE:
        ps = g_param_spec_double (p->name, p->nick, p->blurb, p->dmin,
            p->dmax, p->ddef, rw);
        break;
      case K_STRING:
        ps = g_param_spec_string (p->name, p->nick, p->blurb, p->sdef, rw);
        break;
      case K_ENUM:
        ps = g_param_spec_enum (p->name, p->nick, p->blurb,
            enum_type (p->enum_id), p->def, rw);
        break;
    }
    g_object_class_install_property (gobject_class, i + 1, ps);
  }
  g_object_class_install_property (gobject_class, PROP_STEP,
      g_param_spec_uint64 ("step", "Step",
          "Optimiser steps taken (train mode)", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_LR,
      g_param_spec_double ("lr", "Learning rate now",
          "Learning rate of the next step (train mode)", 0.0, G_MAXDOUBLE, 0.0,
          ro));
}

static gpointer
field (const Settings * s, const Prop * p)
{
  return (guint8 *) s + p->offset;
}

void
gst_simclr_encoder_settings_init (Settings * s)
{
  guint i;

  memset (s, 0, sizeof *s);
  for (i = 0; i < G_N_ELEMENTS (props); i++) {
    const Prop *p = &props[i];
    gpointer f = field (s, p);

    switch (p->kind) {
      case K_BOOL:
      case K_INT:
      case K_ENUM:
        *(gint *) f = (gint) p->def;
        break;
      case K_UINT:
        *(guint *) f = (guint) p->def;
        break;
      case K_UINT64:
        *(guint64 *) f = p->def;
        break;
      case K_DOUBLE:
        *(gdouble *) f = p->ddef;
        break;
      case K_STRING:
        *(gchar **) f = g_strdup (p->sdef);
        break;
    }
  }
}

void
gst_simclr_encoder_settings_clear (Settings * s)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (props); i++)
    if (props[i].kind == K_STRING)
      g_clear_pointer ((gchar **) field (s, &props[i]), g_free);
}

void
gst_simclr_encoder_settings_copy (Settings * dst, const Settings * src)
{
  guint i;

  gst_simclr_encoder_settings_clear (dst);
  *dst = *src;
  for (i = 0; i < G_N_ELEMENTS (props); i++)
    if (props[i].kind == K_STRING)
      *(gchar **) field (dst, &props[i]) =
          g_strdup (*(gchar **) field (src, &props[i]));
}

void
gst_simclr_encoder_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (object);
  const Prop *p;
  gpointer f;

  if (prop_id == 0 || prop_id > G_N_ELEMENTS (props)) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    return;
  }
  p = &props[prop_id - 1];
  GST_OBJECT_LOCK (self);
  f = field (&self->props, p);
  switch (p->kind) {
    case K_BOOL:
      *(gboolean *) f = g_value_get_boolean (value);
      break;
    case K_INT:
      *(gint *) f = g_value_get_int (value);
      break;
    case K_ENUM:
      *(gint *) f = g_value_get_enum (value);
      break;
    case K_UINT:
      *(guint *) f = g_value_get_uint (value);
      break;
    case K_UINT64:
      *(guint64 *) f = g_value_get_uint64 (value);
      break;
    case K_DOUBLE:
      *(gdouble *) f = g_value_get_double (value);
      break;
    case K_STRING:
      g_free (*(gchar **) f);
      *(gchar **) f = g_value_dup_string (value);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

void
gst_simclr_encoder_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (object);
  const Prop *p;
  gpointer f;

  GST_OBJECT_LOCK (self);
  if (prop_id == PROP_STEP) {
    g_value_set_uint64 (value, self->cur_step);
  } else if (prop_id == PROP_LR) {
    g_value_set_double (value, self->cur_lr);
  } else if (prop_id == 0 || prop_id > G_N_ELEMENTS (props)) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  } else {
    p = &props[prop_id - 1];
    f = field (&self->props, p);
    switch (p->kind) {
      case K_BOOL:
        g_value_set_boolean (value, *(gboolean *) f);
        break;
      case K_INT:
        g_value_set_int (value, *(gint *) f);
        break;
      case K_ENUM:
        g_value_set_enum (value, *(gint *) f);
        break;
      case K_UINT:
        g_value_set_uint (value, *(guint *) f);
        break;
      case K_UINT64:
        g_value_set_uint64 (value, *(guint64 *) f);
        break;
      case K_DOUBLE:
        g_value_set_double (value, *(gdouble *) f);
        break;
      case K_STRING:
        g_value_set_string (value, *(gchar **) f);
        break;
    }
  }
  GST_OBJECT_UNLOCK (self);
}
