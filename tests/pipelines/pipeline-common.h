/* pipeline-common.h: helpers of the pipeline tests: run a gst_parse_launch
 * description to EOS or ERROR and collect what the bus said (the sink's
 * simclr-train messages, the encoder's simclr-monitor and simclr-checkpoint
 * messages, the latter with a
 * copy of the file taken when it was written, the first error).
 */
#pragma once

#include <glib.h>
#include <gst/gst.h>

#define PT_FASHION_MNIST "/usr/share/datasets/fashion-mnist"

typedef struct
{
  guint64 step;
  gdouble loss, top1, top5, lr;
} PtTrainRow;

/* simclrencoder's "simclr-monitor" message (kNN on monitor-location). */
typedef struct
{
  guint64 step, epoch;
  gdouble knn_top1, knn_top5;
  gint samples;
} PtMonitorRow;

typedef struct
{
  GArray *train;                /* PtTrainRow, in posting order */
  GArray *monitor;              /* PtMonitorRow, in posting order */
  guint n_checkpoints;
  guint64 last_checkpoint_step;
  gchar *last_checkpoint_location;
  GBytes *last_checkpoint_bytes;  /* the file as it was right after the save */
  gboolean eos;
  GError *error;                /* the first ERROR message, or NULL */
  gchar *error_debug;
  gchar *error_source;          /* factory name of the element that posted it */
} PtRun;

/* TRUE if the Fashion-MNIST training images are installed. */
gboolean pt_have_fashion_mnist (void);

/* Runs @description (gst_parse_launch) until EOS or the first ERROR, at most
 * @timeout_s seconds (a timeout is a test failure). Returns a new PtRun
 * (free with pt_run_free). */
PtRun *pt_run_pipeline (const gchar * description, guint timeout_s);
void pt_run_free (PtRun * run);

/* The loss of step @step in @run, or NAN if it was not reported. */
gdouble pt_run_loss (const PtRun * run, guint64 step);

/* Asserts that two safetensors files hold the same tensors (names, dtypes,
 * shapes, bytes; at least one "optim.velocity." tensor) and the same "step"
 * metadata, printing the first differing element. */
void pt_assert_same_tensors (const gchar * path_a, const gchar * path_c);
