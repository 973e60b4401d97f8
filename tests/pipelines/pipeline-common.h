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

/* Writes a data set in Fashion-MNIST's files (IDX, uncompressed) into @dir
 * (made if missing), for simclrdatasetsrc: @n images of @side x @side
 * GRAY8 from @pixels (n x side x side bytes), label i % 10. */
void pt_write_idx (const gchar * dir, guint n, guint side,
    const guint8 * pixels);

/* Removes @dir and everything below it (test temp dirs). */
void pt_remove_tree (const gchar * dir);

/* Runs @description (gst_parse_launch) until EOS or the first ERROR, at most
 * @timeout_s seconds (a timeout is a test failure). Returns a new PtRun
 * (free with pt_run_free). */
PtRun *pt_run_pipeline (const gchar * description, guint timeout_s);
void pt_run_free (PtRun * run);

/* The loss of step @step in @run, or NAN if it was not reported. */
gdouble pt_run_loss (const PtRun * run, guint64 step);

/* Asserts that @run reported exactly the @count steps @first.. and that
 * each loss is @ref's of the same step, to the bit (test-resume's
 * guarantee); the first mismatch is printed with both values. */
void pt_assert_same_losses (const PtRun * ref, const PtRun * run,
    guint64 first, guint64 count);

/* Asserts that two safetensors files hold the same tensors (names, dtypes,
 * shapes, bytes; at least one "optim.velocity." tensor) and the same "step"
 * metadata, printing the first differing element. */
void pt_assert_same_tensors (const gchar * path_a, const gchar * path_c);
