/* gstsimclrencoderpriv.h: what the files of simclrencoder share (not
 * installed, not API): the instance, its settings and the functions each
 * file gives the others.
 *
 *   gstsimclrencoder.c       the element: pads, caps, state, start
 *   gstsimclrencodertrain.c  train mode: set-up and the training step
 *   gstsimclrencoderembed.c  embed mode
 *   gstsimclrencoderprops.c  the properties: pspecs, get/set, snapshot
 *   gstsimclrencoderlive.c   replay mode (replay-size > 0): the replay
 *                            buffer, the training thread, passes by seeks
 */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include "gstsimclrencoder.h"
#include "gstsimclr.h"
#include "gstsimclrframe.h"
#include "gstsimclrgradient.h"

#include "simclr/batcher.h"
#include "simclr/ckptdir.h"
#include "simclr/replay.h"
#include "simclr/dataset.h"
#include "simclr/model.h"
#include "simclr/optim.h"
#include "simclr/trainer.h"

G_BEGIN_DECLS

GST_DEBUG_CATEGORY_EXTERN (gst_simclr_encoder_debug);

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
  gint views;                   /* train: views per sample */
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
  gboolean attach_meta;         /* embed: pass frames with a vector meta */
  GstClockTime max_latency;
  gchar *monitor_location;      /* NULL or "" = no kNN monitor */
  gint monitor_samples;
  /* streams (issue 13) */
  SimclrLrSchedule lr_schedule;
  guint64 restart_period;
  guint checkpoint_keep;        /* checkpoint-location a folder: files kept */
  gdouble checkpoint_seconds;   /* 0 = no time cadence */
  gint replay_size;             /* 0 = no replay buffer (train in order) */
  SimclrReplayPolicy replay_policy;
  guint64 replay_max_bytes;     /* 0 = only the memory available limits */
  gint replay_min;              /* samples held before the first step; 0 = N */
  GstSimclrEncoderReplayOverflow replay_overflow;
  guint passes;                 /* passes over a seekable input; 0 = endless */
} Settings;

/* Replay mode's state (gstsimclrencoderlive.c). The streaming thread files
 * samples into the buffer; the training thread (a task on the source pad)
 * draws batches from it. Everything under @lock unless said otherwise. */
typedef struct
{
  GMutex lock;
  GCond cond;                   /* samples added or drawn, flags changed */
  SimclrReplay *replay;
  gboolean wait;                /* the overflow policy resolved: TRUE waits */
  gint min_fill;                /* samples held before the first step */
  gboolean flushing;
  gboolean eos;                 /* input ended: finish after this step */
  gboolean done;                /* EOS pushed or a fatal error: no more steps */
  gboolean task_running;        /* the training thread was started */
  gboolean stopped;             /* going to READY: no restart until reset */
  guint64 dropped_unpaired;     /* samples whose views did not all come */
  SimclrReplayBatch *draw;      /* training thread: the drawn batch */
  guint passes_done;            /* streaming thread */
} GstSimclrEncoderLive;

/* What embed mode keeps of a frame until its batch is computed. */
typedef struct
{
  GstSimclrHeldFrame *held;     /* the frame, held; NULL once released */
  SimclrFrame pixels;           /* held->vframe's, or a copy in embed_copy */
  GstClockTime pts, dts, duration;
  guint64 offset, offset_end;
  guint64 sample_id;
  gint view;
  gint label;
  GstBuffer *pass;              /* attach-meta: the frame to pass on */
} EmbedFrame;

/* Where a training step's time goes, per phase (train mode, with the
 * debug category simclrencoder at INFO or above: GST_DEBUG=simclrencoder:4;
 * printed at EOS). Wall seconds and the streaming thread's CPU seconds: on
 * a shared or busy core the two differ by the time the thread waited or was
 * not scheduled. */
typedef enum
{
  GST_SIMCLR_PHASE_INPUT,       /* from the previous step to a full batch:
                                 * views in (queue waits, batcher) */
  GST_SIMCLR_PHASE_FORWARD,     /* model forward (SyncBN all-reduces) */
  GST_SIMCLR_PHASE_EXCHANGE,    /* z to ntxentsink, its loss (z all-gather)
                                 * and the gradient back */
  GST_SIMCLR_PHASE_APPLY,       /* backward (SyncBN), gradient all-reduce,
                                 * optimiser */
  GST_SIMCLR_PHASE_AFTER,       /* checkpoint cadence, end of schedule */
  GST_SIMCLR_N_PHASES
} GstSimclrPhase;

#define GST_SIMCLR_PROFILE_STEPS 1024

typedef struct
{
  gboolean enabled;
  guint64 steps;                /* steps counted (after the first two) */
  guint64 seen;                 /* steps timed in all */
  gdouble wall[GST_SIMCLR_N_PHASES], cpu[GST_SIMCLR_N_PHASES];
  gdouble mark_wall, mark_cpu;  /* the end of the previous phase; 0 = none */
  gdouble step_wall[GST_SIMCLR_N_PHASES], step_cpu[GST_SIMCLR_N_PHASES];
  /* Wall and thread CPU seconds inside MPI collectives (waiting for the
   * other ranks, and the transfers), per phase: on a quiet machine the rank
   * that waits longest is the fastest one. Open MPI polls, so a wait takes
   * CPU; CPU minus collective CPU is the rank's own work, comparable
   * between ranks even on a busy machine. wait_steps keeps each counted
   * step's collective CPU (the first GST_SIMCLR_PROFILE_STEPS steps) for
   * its median and maximum. */
  gdouble coll[GST_SIMCLR_N_PHASES], step_coll[GST_SIMCLR_N_PHASES];
  gdouble coll_cpu[GST_SIMCLR_N_PHASES], step_coll_cpu[GST_SIMCLR_N_PHASES];
  gdouble mark_coll, mark_coll_cpu;
  gdouble setup_coll, setup_coll_cpu;   /* in them up to the end of step 2 */
  /* This thread's page faults (getrusage RUSAGE_THREAD) at the end of
   * step 2: memory freed to the system and touched again costs a fault per
   * page (and on a virtual machine the host's work behind it). */
  glong minflt0, majflt0;
  gfloat wait_steps[GST_SIMCLR_PROFILE_STEPS];
} GstSimclrStepProfile;

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
  gint small_views;             /* multi-crop, from the caps (simclraugment */
  gint small_size;              /* small-views, small-size); 0 = none */
  GstVideoInfo small_vinfo;     /* their frames (the caps give vinfo's) */
  gint out_dim;                 /* D of the output rows */
  SimclrTrainer *trainer;       /* train mode */
  SimclrModel *model;           /* embed mode */
  const gchar *model_origin;    /* file the model came from, for messages */
  /* train mode */
  SimclrBatcher *batcher;       /* views -> batches of the trainer's N */
  SimclrCkptCadence ckpt;       /* saves due, steps unsaved (ckptdir.h) */
  gboolean ckpt_rotate;         /* checkpoint-location is a folder */
  gboolean warned_horizon;
  gboolean warned_unpaired;
  gboolean warned_view;
  /* kNN monitor (train mode, rank 0): the labelled set's two splits */
  SimclrDataset *monitor_train;
  SimclrDataset *monitor_test;
  guint64 monitor_epoch;        /* epoch of the previous batch;
                                 * G_MAXUINT64 = none */
  /* embed mode */
  EmbedFrame *embed_frames;     /* (embed_batch) */
  SimclrFrame *embed_in;        /* (embed_batch) the frames of the batch */
  guint8 *embed_copy;           /* (embed_batch,H,W,C) frames not held */
  gfloat *embed_out;            /* (embed_batch,D) */
  gint embed_count;
  guint64 embed_batches;
  guint64 frames_seen;

  /* The gradient rendezvous between the streaming thread (waits) and the
   * thread the upstream event arrives on (gstsimclrgradient.h). */
  GstSimclrGradientWait grad;

  /* replay mode (replay-size > 0) */
  GstSimclrEncoderLive live;

  GstSimclrStepProfile profile; /* train mode, debug INFO */
};

/* gstsimclrencoder.c */
gboolean gst_simclr_encoder_str_set (const gchar * s);
void gst_simclr_encoder_update_progress (GstSimclrEncoder * self);
void gst_simclr_encoder_publish_input (GstSimclrEncoder * self,
    SimclrModel * m);
void gst_simclr_encoder_post_load_error (GstSimclrEncoder * self,
    const gchar * property, const gchar * path, const SimclrError * err);

/* gstsimclrencodertrain.c */
gboolean gst_simclr_encoder_train_start (GstSimclrEncoder * self);
gboolean gst_simclr_encoder_train_new (GstSimclrEncoder * self, gint size,
    gint channels);
gboolean gst_simclr_encoder_train_setup (GstSimclrEncoder * self);
void gst_simclr_encoder_train_free (GstSimclrEncoder * self);
GstFlowReturn gst_simclr_encoder_chain_train (GstSimclrEncoder * self,
    GstBuffer * buf);
gint gst_simclr_encoder_train_drop (GstSimclrEncoder * self,
    const gchar * why);
void gst_simclr_encoder_train_eos (GstSimclrEncoder * self);
GstFlowReturn gst_simclr_encoder_train_batch (GstSimclrEncoder * self,
    const SimclrBatch * batch, gboolean live_counts);
gboolean gst_simclr_encoder_save (GstSimclrEncoder * self);
gboolean gst_simclr_encoder_unsaved (GstSimclrEncoder * self);

/* gstsimclrencoderlive.c */
gboolean gst_simclr_encoder_live_enabled (GstSimclrEncoder * self);
void gst_simclr_encoder_live_init (GstSimclrEncoder * self);
void gst_simclr_encoder_live_clear (GstSimclrEncoder * self);
gboolean gst_simclr_encoder_live_setup (GstSimclrEncoder * self);
GstFlowReturn gst_simclr_encoder_live_add (GstSimclrEncoder * self,
    const SimclrBatch * sample);
gboolean gst_simclr_encoder_live_sink_event (GstSimclrEncoder * self,
    GstEvent * event, gboolean * result);
void gst_simclr_encoder_live_stop (GstSimclrEncoder * self);
void gst_simclr_encoder_live_free (GstSimclrEncoder * self);
void gst_simclr_encoder_live_count_unpaired (GstSimclrEncoder * self,
    gint n);
void gst_simclr_encoder_live_counts (GstSimclrEncoder * self,
    GstSimclrEmbeddingMeta * meta);
gboolean gst_simclr_encoder_passes_eos (GstSimclrEncoder * self);
gint gst_simclr_encoder_live_held (GstSimclrEncoder * self);

/* gstsimclrencoderprops.c */
void gst_simclr_encoder_install_properties (GObjectClass * klass);
void gst_simclr_encoder_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
void gst_simclr_encoder_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
void gst_simclr_encoder_settings_init (Settings * s);
void gst_simclr_encoder_settings_clear (Settings * s);
void gst_simclr_encoder_settings_copy (Settings * dst, const Settings * src);

/* gstsimclrencoderembed.c */
void gst_simclr_encoder_embed_setup (GstSimclrEncoder * self, gint dim);
void gst_simclr_encoder_embed_free (GstSimclrEncoder * self);
GstFlowReturn gst_simclr_encoder_chain_embed (GstSimclrEncoder * self,
    GstBuffer * buf);
GstFlowReturn gst_simclr_encoder_embed_flush (GstSimclrEncoder * self);
void gst_simclr_encoder_embed_drop (GstSimclrEncoder * self);

G_END_DECLS
