/* batcher.h: pairs the views of samples into training batches.
 *
 * Augmented views arrive one at a time, tagged with their sample id, the
 * epoch the sample was drawn in and their view index 0 .. V-1 (a
 * GstSimclrFrameMeta in the elements). Views are paired by (sample id,
 * epoch), never by arrival order, so they may come interleaved or shuffled.
 * A sample with all V views is complete; complete samples queue in the
 * order they completed, and a batch is the first N of them, rows view-major
 * (row v * N + j is view v of the j-th sample), the layout of the trainer
 * and of SimclrLoss.
 *
 * Frames: a view's pixels are either copied at once (owner NULL: packed,
 * the row padding dropped) or held as they are until the batch is released
 * (owner and release given: the batcher keeps frame.data valid by holding
 * @owner and calls release (owner) exactly once when done with it -- after
 * the batch's forward, when replaced, cleared or freed). Holding lets the
 * frame go straight into the model's input (frame.h) without a copy; the
 * caller decides (a frame from a small, bounded buffer pool must be copied,
 * or the pool starves).
 *
 * Not here: what a batch trains (the trainer), a replay of old samples
 * (a separate object beside this one). Thread-safety: one object, one
 * thread at a time.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/error.h"
#include "simclr/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SimclrBatcher SimclrBatcher;

/* Called once per held frame when the batcher is done with it. */
typedef void (*SimclrReleaseFn) (void *owner);

#define SIMCLR_TIMESTAMP_NONE UINT64_MAX

typedef struct {
  uint64_t sample_id;
  uint64_t epoch;
  int view;                    /* 0 .. views-1 */
  int label;                   /* class, -1 unknown (the first view's counts) */
  uint64_t timestamp;          /* opaque to the batcher (a PTS);
                                * SIMCLR_TIMESTAMP_NONE if none */
  SimclrFrame frame;           /* side x side x channels pixels (small_side
                                * for a small view); a frame of any other
                                * size is refused, never read */
  void *owner;                 /* NULL: copy now; else hold (see above) */
  SimclrReleaseFn release;     /* with owner */
} SimclrBatcherView;

/* What simclr_batcher_add did, beyond storing the view. */
enum {
  SIMCLR_BATCHER_DUPLICATE = 1 << 0,  /* replaced an earlier copy of this view */
  SIMCLR_BATCHER_BAD_VIEW = 1 << 1,   /* view outside [0, views): ignored */
  SIMCLR_BATCHER_COMPLETED = 1 << 2,  /* the view completed its sample */
};

/* One row of a batch. */
typedef struct {
  uint64_t sample_id;
  uint64_t epoch;
  int view;
  int label;
  uint64_t timestamp;
} SimclrBatchRow;

/* A batch taken out of the batcher; its arrays stay valid until
 * simclr_batcher_release_batch (or the next take). */
typedef struct {
  int rows;                    /* views x N */
  const SimclrFrame *frames;   /* (rows) view-major */
  const SimclrBatchRow *row;   /* (rows) */
  uint64_t max_epoch;          /* the largest epoch of its samples */
  uint64_t min_timestamp;      /* the smallest valid one, or NONE */
} SimclrBatch;

/* A batcher for batches of @batch samples of @views views, each frame
 * @side x @side x @channels (1 GRAY8, 3 RGB). NULL with @err set on bad
 * sizes or no memory. Free with simclr_batcher_free (releases everything
 * held; NULL is a no-op). */
SimclrBatcher *simclr_batcher_new (int batch, int views, int side,
    int channels, SimclrError *err);
/* As simclr_batcher_new for multi-crop: the last @small_views of the
 * @views views (0 .. views - 1) are @small_side x @small_side frames, the
 * others @side x @side (the trainer's small_views, small_size). */
SimclrBatcher *simclr_batcher_new_mixed (int batch, int views, int side,
    int small_views, int small_side, int channels, SimclrError *err);
void simclr_batcher_free (SimclrBatcher *b);

/* Adds one view (see SimclrBatcherView; the batcher owns @v->owner from
 * here on, also on failure). @flags (may be NULL) receives
 * SIMCLR_BATCHER_* bits. Fails (SIMCLR_ERROR_INVALID_ARGUMENT, nothing
 * stored or replaced) on a bad frame: a width x height other than the
 * view's side x side, no data, or a stride shorter than a row; or on no
 * memory. */
SimclrStatus simclr_batcher_add (SimclrBatcher *b, const SimclrBatcherView *v,
    unsigned *flags, SimclrError *err);

/* 1 when a batch of N complete samples can be taken. */
int simclr_batcher_batch_ready (const SimclrBatcher *b);

/* Takes the first N complete samples as @batch (releasing the previous
 * batch if it was not released). Fails unless a batch is ready. */
SimclrStatus simclr_batcher_take (SimclrBatcher *b, SimclrBatch *batch,
    SimclrError *err);

/* Releases the frames of the last batch taken (copies freed, held frames'
 * release called). The SimclrBatch arrays are invalid afterwards. */
void simclr_batcher_release_batch (SimclrBatcher *b);

int simclr_batcher_n_complete (const SimclrBatcher *b);  /* waiting in the queue */
int simclr_batcher_n_pending (const SimclrBatcher *b);   /* samples missing a view */

/* 1 once so many samples wait for a missing view (8 N + 1024) that
 * upstream probably drops frames. */
int simclr_batcher_backlogged (const SimclrBatcher *b);

/* Drops every complete and pending sample (a partial batch at EOS or a
 * flush); *complete / *pending (each may be NULL) get how many. */
void simclr_batcher_clear (SimclrBatcher *b, int *complete, int *pending);

#ifdef __cplusplus
}
#endif
