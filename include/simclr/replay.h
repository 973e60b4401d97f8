/* replay.h: a bounded replay buffer of recent samples, for training from
 * streams without an end (issue 13).
 *
 * Consecutive frames of a live stream are near-duplicates: a batch of the
 * last N frames holds almost no true negatives. The buffer keeps up to
 * `capacity` samples (each `views` images of `view_bytes`, e.g. the two
 * augmented views of a frame) and every training batch is drawn from all of
 * them, so negatives come from a window of `capacity` samples, not N.
 *
 * Eviction policies:
 * - ring: the newest `capacity` samples; a new one overwrites the oldest.
 * - reservoir: a uniform random subset of every sample offered so far
 *   (Vitter's algorithm R): the i-th sample (0-based) is kept with
 *   probability capacity / (i + 1), replacing a uniformly chosen slot.
 *
 * Batches: simclr_replay_sample draws n distinct held samples uniformly.
 * simclr_replay_sample_pairs (ring only) draws n distinct anchors and pairs
 * each with the sample k positions later in the stream, k uniform in
 * [k_min, k_max], so temporal positives (frame t and t + k) come from the
 * buffer itself. Every random choice is a pure function of (seed, what it is
 * for, a counter: the sample's position in the stream or the caller's draw
 * number), as everywhere in libsimclr (simclr/rng.h): the same sequence of
 * calls gives the same buffer and batches on any machine.
 *
 * Memory: the whole buffer (pixels, per-sample records, sampling scratch) is
 * allocated and touched at creation, so resident memory does not grow after
 * it; simclr_replay_bytes says how much before anything is allocated, and
 * creation is refused (naming the bytes) above cfg->max_bytes or above the
 * memory the system reports available.
 *
 * Thread-safety: one buffer, one thread at a time (the caller locks);
 * distinct buffers are independent.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/batcher.h"
#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SIMCLR_REPLAY_MAX_VIEWS 16

typedef struct SimclrReplay SimclrReplay;

typedef enum {
  SIMCLR_REPLAY_RING = 0,        /* keep the newest; evict the oldest */
  SIMCLR_REPLAY_RESERVOIR = 1,   /* keep a uniform sample of all seen */
} SimclrReplayPolicy;

typedef struct {
  int capacity;                  /* samples held, >= 1 */
  int views;                     /* images per sample, 1..SIMCLR_REPLAY_MAX_VIEWS */
  size_t view_bytes;             /* bytes of one image (H*W*C uint8), >= 1 */
  SimclrReplayPolicy policy;
  uint64_t seed;                 /* reservoir choices and batch draws */
  size_t max_bytes;              /* refuse a buffer above this; 0 = no limit
                                  * of ours (the system's available memory
                                  * still applies) */
} SimclrReplayConfig;

/* What the caller knows of a sample; stored beside its pixels. */
typedef struct {
  uint64_t sample_id;
  uint64_t epoch;
  int32_t label;
  uint64_t pts[SIMCLR_REPLAY_MAX_VIEWS];  /* per view; opaque to the buffer */
} SimclrReplayInfo;

/* Counters since creation (or the last simclr_replay_clear). */
typedef struct {
  uint64_t seen;                 /* samples offered to simclr_replay_add */
  uint64_t stored;               /* of those, taken into the buffer */
  uint64_t rejected;             /* of those, refused (reservoir) */
  uint64_t evicted;              /* stored samples later overwritten */
  uint64_t evicted_unused;       /* of those, never drawn into a batch */
  uint64_t trained;              /* distinct samples drawn at least once */
  uint64_t draws;                /* sample slots drawn into batches (a pair
                                  * counts its anchor and its partner) */
  int held;                      /* samples in the buffer now */
  size_t bytes;                  /* memory the buffer holds */
} SimclrReplayStats;

/* capacity 1024, views 2, view_bytes 0 (set it), ring, seed 0, max_bytes 0. */
void simclr_replay_config_default (SimclrReplayConfig *cfg);

/* Checks ranges (capacity, views, view_bytes, policy) and that the size
 * computation does not overflow. */
SimclrStatus simclr_replay_config_validate (const SimclrReplayConfig *cfg,
    SimclrError *err);

/* Bytes a buffer of @cfg allocates: pixels capacity x views x view_bytes,
 * plus per-sample records and the sampling scratch. Fails as validate. */
SimclrStatus simclr_replay_bytes (const SimclrReplayConfig *cfg,
    size_t *bytes, SimclrError *err);

/* The memory the system reports available now (Linux: MemAvailable of
 * /proc/meminfo), or 0 if unknown. */
size_t simclr_replay_memory_available (void);

/* Returns NULL with @err set on an invalid configuration
 * (SIMCLR_ERROR_INVALID_ARGUMENT), a size above cfg->max_bytes or above the
 * available memory (SIMCLR_ERROR_NO_MEMORY; the message states both sizes),
 * or a failed allocation. Free with simclr_replay_free. */
SimclrReplay *simclr_replay_new (const SimclrReplayConfig *cfg,
    SimclrError *err);
void simclr_replay_free (SimclrReplay *r);   /* NULL is a no-op */

const SimclrReplayConfig *simclr_replay_get_config (const SimclrReplay *r);

/* Offers one sample: @views[v] points to view_bytes bytes of view v (copied;
 * v < cfg views). @info may be NULL (zeros). *@slot (may be NULL) receives
 * the slot it was stored in, or -1 when the policy refused it (reservoir).
 * Never blocks, never allocates. */
SimclrStatus simclr_replay_add (SimclrReplay *r, const uint8_t *const *views,
    const SimclrReplayInfo *info, int *slot, SimclrError *err);

/* simclr_replay_add of a batch of one sample as the batcher makes it
 * (batcher.h): view v is sample->frames[v] (rows of @row_bytes, @stride
 * apart, view_bytes / row_bytes rows), the info its sample id, epoch and
 * label (of row 0) and each view's timestamp as its pts. sample->rows must
 * be the buffer's views. */
SimclrStatus simclr_replay_add_sample (SimclrReplay *r,
    const SimclrBatch *sample, int row_bytes, int *slot, SimclrError *err);

/* The slot the next simclr_replay_add will write: a held slot it
 * overwrites (check simclr_replay_uses to see whether that sample was ever
 * drawn), -1 when it fills an empty slot, -2 when the policy will refuse
 * the sample (reservoir). Pure: the reservoir's choice is a function of the
 * seed and the sample's position, so this is what the add will do. */
int simclr_replay_next_slot (const SimclrReplay *r);

/* Draws @n distinct held samples uniformly for batch number @draw (any
 * counter: a training step) into @slots (n). Fails (touching nothing) if
 * fewer than @n samples are held. Counts the draws in the statistics. */
SimclrStatus simclr_replay_sample (SimclrReplay *r, uint64_t draw, int n,
    int *slots, SimclrError *err);

/* Ring policy only. Draws @n distinct anchors uniformly among the held
 * samples that have a partner k_max positions later, and for each a k
 * uniform in [k_min, k_max]; @partners[i] is the slot of the sample k
 * positions after @anchors[i] in the stream (the anchor itself when k = 0).
 * Positions count stored samples, so frames dropped before the buffer do not
 * count. Needs at least n + k_max held samples; 0 <= k_min <= k_max. */
SimclrStatus simclr_replay_sample_pairs (SimclrReplay *r, uint64_t draw,
    int n, int k_min, int k_max, int *anchors, int *partners,
    SimclrError *err);

/* Copies view @view of each of the @n samples in @slots into @dst (n x
 * view_bytes, in the order of @slots). */
SimclrStatus simclr_replay_gather (const SimclrReplay *r, const int *slots,
    int n, int view, uint8_t *dst, SimclrError *err);

/* The record of the sample in @slot (NULL if @slot is not held). Borrowed;
 * valid until the slot is overwritten. */
const SimclrReplayInfo *simclr_replay_info (const SimclrReplay *r, int slot);
/* Stream position of the sample in @slot (0 for the first stored sample),
 * or -1 if @slot is not held. */
int64_t simclr_replay_position (const SimclrReplay *r, int slot);
/* Times the sample in @slot was drawn, or -1 if not held. */
int64_t simclr_replay_uses (const SimclrReplay *r, int slot);

void simclr_replay_get_stats (const SimclrReplay *r, SimclrReplayStats *stats);
/* Samples held now (0 for NULL). */
int simclr_replay_held (const SimclrReplay *r);

/* Empties the buffer and zeroes the counters (a new stream); the memory
 * stays allocated. */
void simclr_replay_clear (SimclrReplay *r);

/* ---- training batches drawn from the buffer ------------------------------ */

/* Scratch for drawing training batches of @n samples of a buffer whose
 * views are side x side x channels uint8 images: the drawn views, their
 * frames and rows, in the batcher's layout (batcher.h). */
typedef struct SimclrReplayBatch SimclrReplayBatch;

/* Fails (NULL, @err set) if @n < 1 or side x side x @channels is not the
 * buffer's view_bytes. Free with simclr_replay_batch_free. */
SimclrReplayBatch *simclr_replay_batch_new (const SimclrReplay *r, int n,
    int side, int channels, SimclrError *err);
void simclr_replay_batch_free (SimclrReplayBatch *b);   /* NULL is a no-op */

/* Batch number @draw (a training step): n distinct samples drawn uniformly
 * (simclr_replay_sample), their views copied into @b, and @batch filled
 * view-major as the batcher's batches are (row v x n + j: view v of the
 * j-th sample; its sample id, epoch, label and view v's pts as timestamp),
 * max_epoch and min_timestamp (SIMCLR_TIMESTAMP_NONE pts are skipped).
 * @batch's arrays belong to @b and stay valid until the next draw. Fails,
 * touching nothing, if fewer than n samples are held. */
SimclrStatus simclr_replay_draw (SimclrReplay *r, SimclrReplayBatch *b,
    uint64_t draw, SimclrBatch *batch, SimclrError *err);

#ifdef __cplusplus
}
#endif
