/* replay.c: the bounded replay buffer (see include/simclr/replay.h).
 *
 * Storage: one block of capacity x views x view_bytes pixels, one record per
 * slot (the caller's info, the stream position, a use count) and two int
 * arrays of sampling scratch. Slots fill in order 0, 1, ... and are never
 * emptied, so the held samples are always slots [0, held). Ring: position p
 * lives in slot p mod capacity. Reservoir: a slot holds whichever sample
 * last replaced it.
 *
 * Not here: locking (the caller's), augmentation (done before the buffer),
 * the policy of what to do when the buffer is refused (the caller's).
 */
#include "simclr/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/rng.h"

/* RNG streams: what each random choice is for (simclr/rng.h). */
#define STREAM_RESERVOIR 0x7265736572766f69ULL  /* index: position seen */
#define STREAM_SAMPLE 0x73616d706c650000ULL     /* stream2 with the draw */
#define STREAM_PAIR_K 0x706169726b000000ULL     /* stream2 with the draw */

typedef struct {
  SimclrReplayInfo info;
  uint64_t position;            /* stream position of the sample held */
  uint64_t uses;                /* times drawn */
} Record;

struct SimclrReplay {
  SimclrReplayConfig cfg;
  uint8_t *pixels;              /* (capacity, views, view_bytes) */
  Record *rec;                  /* (capacity) */
  int *perm;                    /* (capacity) identity between calls */
  int *swaps;                   /* (capacity) partial Fisher-Yates log */
  int held;
  size_t bytes;
  SimclrReplayStats stats;
};

void
simclr_replay_config_default (SimclrReplayConfig *cfg)
{
  if (!cfg)
    return;
  memset (cfg, 0, sizeof *cfg);
  cfg->capacity = 1024;
  cfg->views = 2;
  cfg->view_bytes = 0;
  cfg->policy = SIMCLR_REPLAY_RING;
  cfg->seed = 0;
  cfg->max_bytes = 0;
}

/* Bytes of @cfg, 0 on overflow. */
static size_t
size_of (const SimclrReplayConfig *cfg)
{
  size_t pix, per, recs, scratch, total;
  if (__builtin_mul_overflow ((size_t) cfg->capacity, (size_t) cfg->views,
          &per) || __builtin_mul_overflow (per, cfg->view_bytes, &pix)
      || __builtin_mul_overflow ((size_t) cfg->capacity, sizeof (Record),
          &recs)
      || __builtin_mul_overflow ((size_t) cfg->capacity, 2 * sizeof (int),
          &scratch)
      || __builtin_add_overflow (pix, recs, &total)
      || __builtin_add_overflow (total, scratch, &total)
      || __builtin_add_overflow (total, sizeof (SimclrReplay), &total))
    return 0;
  return total;
}

SimclrStatus
simclr_replay_config_validate (const SimclrReplayConfig *cfg, SimclrError *err)
{
  if (!cfg)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay: NULL configuration");
  if (cfg->capacity < 1)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay: capacity %d must be >= 1 sample", cfg->capacity);
  if (cfg->views < 1 || cfg->views > SIMCLR_REPLAY_MAX_VIEWS)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay: %d views per sample out of range [1, %d]", cfg->views,
        SIMCLR_REPLAY_MAX_VIEWS);
  if (cfg->view_bytes < 1)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay: view_bytes must be >= 1 (H x W x C of one view)");
  if (cfg->policy != SIMCLR_REPLAY_RING
      && cfg->policy != SIMCLR_REPLAY_RESERVOIR)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay: unknown eviction policy %d", (int) cfg->policy);
  if (size_of (cfg) == 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay: %d samples x %d views x %zu bytes overflows the address "
        "space", cfg->capacity, cfg->views, cfg->view_bytes);
  return SIMCLR_OK;
}

SimclrStatus
simclr_replay_bytes (const SimclrReplayConfig *cfg, size_t *bytes,
    SimclrError *err)
{
  SimclrStatus s = simclr_replay_config_validate (cfg, err);
  if (s != SIMCLR_OK)
    return s;
  if (bytes)
    *bytes = size_of (cfg);
  return SIMCLR_OK;
}

size_t
simclr_replay_memory_available (void)
{
  FILE *f = fopen ("/proc/meminfo", "r");
  char line[256];
  unsigned long long kib = 0;
  int found = 0;

  if (!f)
    return 0;
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "MemAvailable: %llu kB", &kib) == 1) {
      found = 1;
      break;
    }
  fclose (f);
  if (!found || kib > SIZE_MAX / 1024)
    return 0;
  return (size_t) kib * 1024;
}

static double
mib (size_t bytes)
{
  return (double) bytes / (1024.0 * 1024.0);
}

static void
touch (void *p, size_t n)
{
  volatile uint8_t *b = p;
  for (size_t i = 0; i < n; i += 4096)
    b[i] = 0;
  if (n > 0)
    b[n - 1] = 0;
}

SimclrReplay *
simclr_replay_new (const SimclrReplayConfig *cfg, SimclrError *err)
{
  size_t bytes, avail;
  SimclrReplay *r;

  if (simclr_replay_bytes (cfg, &bytes, err) != SIMCLR_OK)
    return NULL;
  if (cfg->max_bytes > 0 && bytes > cfg->max_bytes) {
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "replay: %d samples x %d "
        "views x %zu bytes need %zu bytes (%.1f MiB), above the limit of %zu "
        "bytes (%.1f MiB)", cfg->capacity, cfg->views, cfg->view_bytes, bytes,
        mib (bytes), cfg->max_bytes, mib (cfg->max_bytes));
    return NULL;
  }
  /* The buffer is touched below: refuse rather than let the kernel's
   * out-of-memory killer end the process later. */
  avail = simclr_replay_memory_available ();
  if (avail > 0 && bytes > avail) {
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "replay: %d samples x %d "
        "views x %zu bytes need %zu bytes (%.1f MiB), more than the %zu bytes "
        "(%.1f MiB) the system has available", cfg->capacity, cfg->views,
        cfg->view_bytes, bytes, mib (bytes), avail, mib (avail));
    return NULL;
  }
  r = calloc (1, sizeof *r);
  if (!r)
    goto no_memory;
  r->cfg = *cfg;
  r->bytes = bytes;
  r->pixels = malloc ((size_t) cfg->capacity * cfg->views * cfg->view_bytes);
  r->rec = calloc ((size_t) cfg->capacity, sizeof (Record));
  r->perm = malloc ((size_t) cfg->capacity * sizeof (int));
  r->swaps = malloc ((size_t) cfg->capacity * sizeof (int));
  if (!r->pixels || !r->rec || !r->perm || !r->swaps)
    goto no_memory;
  /* Touch every page now, so resident memory is the stated size from the
   * start and does not grow as the buffer fills. A volatile write per page:
   * a plain memset after malloc may become calloc, which touches nothing. */
  touch (r->pixels, (size_t) cfg->capacity * cfg->views * cfg->view_bytes);
  touch (r->rec, (size_t) cfg->capacity * sizeof (Record));
  for (int i = 0; i < cfg->capacity; i++)
    r->perm[i] = i;
  memset (r->swaps, 0, (size_t) cfg->capacity * sizeof (int));
  r->stats.bytes = bytes;
  return r;

no_memory:
  simclr_replay_free (r);
  simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "replay: could not allocate "
      "%zu bytes (%.1f MiB) for %d samples x %d views x %zu bytes", bytes,
      mib (bytes), cfg->capacity, cfg->views, cfg->view_bytes);
  return NULL;
}

void
simclr_replay_free (SimclrReplay *r)
{
  if (!r)
    return;
  free (r->pixels);
  free (r->rec);
  free (r->perm);
  free (r->swaps);
  free (r);
}

const SimclrReplayConfig *
simclr_replay_get_config (const SimclrReplay *r)
{
  return r ? &r->cfg : NULL;
}

static uint8_t *
view_ptr (const SimclrReplay *r, int slot, int view)
{
  return r->pixels + ((size_t) slot * r->cfg.views + view) * r->cfg.view_bytes;
}

/* Uniform in [0, n) for n up to 2^64 - 1 (Lemire's multiply-shift on 64 bits;
 * simclr_rng_below stops at 2^32). */
static uint64_t
below64 (uint64_t seed, uint64_t stream, uint64_t index, uint64_t n)
{
  unsigned __int128 x = (unsigned __int128) simclr_rng_u64 (seed, stream,
      index) * n;
  return (uint64_t) (x >> 64);
}

/* The slot sample number @i (0-based, counting every sample offered) goes
 * to: -1 a new slot, -2 refused, else the slot it overwrites. */
static int
choose_slot (const SimclrReplay *r, uint64_t i)
{
  const SimclrReplayConfig *c = &r->cfg;
  int s;

  if (c->policy == SIMCLR_REPLAY_RING) {
    s = (int) (r->stats.stored % (uint64_t) c->capacity);
  } else if (i < (uint64_t) c->capacity) {
    s = (int) i;
  } else {
    /* Algorithm R: keep sample i with probability capacity / (i + 1), in a
     * slot drawn uniformly; j uniform in [0, i] does both at once. */
    uint64_t j = below64 (c->seed, STREAM_RESERVOIR, i, i + 1);
    if (j >= (uint64_t) c->capacity)
      return -2;
    s = (int) j;
  }
  return s < r->held ? s : -1;
}

int
simclr_replay_next_slot (const SimclrReplay *r)
{
  if (!r)
    return -2;
  return choose_slot (r, r->stats.seen);
}

/* simclr_replay_add, with each view's rows @strides[v] bytes apart
 * (@strides NULL: packed) and @row_bytes per row (0: packed). */
static SimclrStatus
add_views (SimclrReplay *r, const uint8_t *const *views, const int *strides,
    size_t row_bytes, const SimclrReplayInfo *info, int *slot,
    SimclrError *err)
{
  const SimclrReplayConfig *c;
  uint64_t i;
  int s;

  if (slot)
    *slot = -1;
  if (!r || !views)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay add: NULL buffer or views");
  c = &r->cfg;
  for (int v = 0; v < c->views; v++)
    if (!views[v])
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "replay add: view %d of %d is NULL", v, c->views);
  i = r->stats.seen++;
  s = choose_slot (r, i);
  if (s == -2) {
    r->stats.rejected++;
    return SIMCLR_OK;
  }
  if (s >= 0) {
    r->stats.evicted++;
    if (r->rec[s].uses == 0)
      r->stats.evicted_unused++;
  } else {
    s = r->held++;              /* slots fill in order */
  }
  for (int v = 0; v < c->views; v++) {
    if (!strides || (size_t) strides[v] == row_bytes) {
      memcpy (view_ptr (r, s, v), views[v], c->view_bytes);
      continue;
    }
    for (size_t y = 0; y < c->view_bytes / row_bytes; y++)
      memcpy (view_ptr (r, s, v) + y * row_bytes,
          views[v] + y * (size_t) strides[v], row_bytes);
  }
  if (info)
    r->rec[s].info = *info;
  else
    memset (&r->rec[s].info, 0, sizeof r->rec[s].info);
  r->rec[s].position = r->stats.stored++;
  r->rec[s].uses = 0;
  r->stats.held = r->held;
  if (slot)
    *slot = s;
  return SIMCLR_OK;
}

SimclrStatus
simclr_replay_add (SimclrReplay *r, const uint8_t *const *views,
    const SimclrReplayInfo *info, int *slot, SimclrError *err)
{
  return add_views (r, views, NULL, 0, info, slot, err);
}

SimclrStatus
simclr_replay_add_sample (SimclrReplay *r, const SimclrBatch *sample,
    int row_bytes, int *slot, SimclrError *err)
{
  const uint8_t *views[SIMCLR_REPLAY_MAX_VIEWS];
  int strides[SIMCLR_REPLAY_MAX_VIEWS];
  SimclrReplayInfo info;

  if (slot)
    *slot = -1;
  if (!r || !sample || !sample->frames || !sample->row)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay add: NULL buffer or sample");
  if (sample->rows != r->cfg.views)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay add: a sample of %d views, the buffer holds %d",
        sample->rows, r->cfg.views);
  if (row_bytes < 1 || r->cfg.view_bytes % (size_t) row_bytes != 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay add: rows of %d bytes do not divide views of %zu bytes",
        row_bytes, r->cfg.view_bytes);
  memset (&info, 0, sizeof info);
  info.sample_id = sample->row[0].sample_id;
  info.epoch = sample->row[0].epoch;
  info.label = sample->row[0].label;
  for (int v = 0; v < sample->rows; v++) {
    if (sample->frames[v].stride < row_bytes)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "replay add: view %d has stride %d, below a row of %d bytes", v,
          sample->frames[v].stride, row_bytes);
    views[v] = sample->frames[v].data;
    strides[v] = sample->frames[v].stride;
    info.pts[v] = sample->row[v].timestamp;
  }
  return add_views (r, views, strides, (size_t) row_bytes, &info, slot, err);
}

/* n distinct values of [0, m) into out, uniformly, for (stream, draw):
 * a partial Fisher-Yates shuffle of r->perm[0..m), undone afterwards so the
 * scratch is the identity again (O(n), not O(capacity), per call). */
static void
draw_distinct (SimclrReplay *r, uint64_t stream, int m, int n, int *out)
{
  for (int i = 0; i < n; i++) {
    int j = i + (int) simclr_rng_below (r->cfg.seed, stream, (uint64_t) i,
        (uint32_t) (m - i));
    int t = r->perm[i];
    r->perm[i] = r->perm[j];
    r->perm[j] = t;
    r->swaps[i] = j;
    out[i] = r->perm[i];
  }
  for (int i = n - 1; i >= 0; i--) {
    int j = r->swaps[i];
    int t = r->perm[i];
    r->perm[i] = r->perm[j];
    r->perm[j] = t;
  }
}

static void
count_use (SimclrReplay *r, int slot)
{
  if (r->rec[slot].uses++ == 0)
    r->stats.trained++;
  r->stats.draws++;
}

SimclrStatus
simclr_replay_sample (SimclrReplay *r, uint64_t draw, int n, int *slots,
    SimclrError *err)
{
  if (!r || !slots)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay sample: NULL buffer or slots");
  if (n < 1 || n > r->held)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay sample: cannot draw %d distinct samples from %d held", n,
        r->held);
  draw_distinct (r, simclr_rng_stream2 (STREAM_SAMPLE, draw), r->held, n,
      slots);
  for (int i = 0; i < n; i++)
    count_use (r, slots[i]);
  return SIMCLR_OK;
}

SimclrStatus
simclr_replay_sample_pairs (SimclrReplay *r, uint64_t draw, int n, int k_min,
    int k_max, int *anchors, int *partners, SimclrError *err)
{
  uint64_t oldest, kstream;
  int eligible;

  if (!r || !anchors || !partners)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay sample pairs: NULL buffer or slots");
  if (r->cfg.policy != SIMCLR_REPLAY_RING)
    return simclr_error_set (err, SIMCLR_ERROR_UNSUPPORTED,
        "replay sample pairs: temporal pairs need the ring policy (a "
        "reservoir does not keep frame t + k beside frame t)");
  if (k_min < 0 || k_max < k_min)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay sample pairs: offsets [%d, %d] must satisfy 0 <= k_min <= "
        "k_max", k_min, k_max);
  eligible = r->held - k_max;
  if (n < 1 || eligible < n)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay sample pairs: cannot draw %d anchors with partners up to %d "
        "later from %d held samples (need %d)", n, k_max, r->held,
        n + k_max);
  /* The ring holds positions [oldest, stored): contiguous. */
  oldest = r->stats.stored - (uint64_t) r->held;
  draw_distinct (r, simclr_rng_stream2 (STREAM_SAMPLE, draw), eligible, n,
      anchors);
  kstream = simclr_rng_stream2 (STREAM_PAIR_K, draw);
  for (int i = 0; i < n; i++) {
    uint64_t pos = oldest + (uint64_t) anchors[i];
    int k = k_min + (int) simclr_rng_below (r->cfg.seed, kstream, (uint64_t) i,
        (uint32_t) (k_max - k_min + 1));
    anchors[i] = (int) (pos % (uint64_t) r->cfg.capacity);
    partners[i] = (int) ((pos + (uint64_t) k) % (uint64_t) r->cfg.capacity);
    count_use (r, anchors[i]);
    if (partners[i] != anchors[i])
      count_use (r, partners[i]);
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_replay_gather (const SimclrReplay *r, const int *slots, int n, int view,
    uint8_t *dst, SimclrError *err)
{
  if (!r || !slots || !dst || n < 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay gather: NULL argument or negative count");
  if (view < 0 || view >= r->cfg.views)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay gather: view %d out of range [0, %d)", view, r->cfg.views);
  for (int i = 0; i < n; i++)
    if (slots[i] < 0 || slots[i] >= r->held)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "replay gather: slot %d (entry %d) is not held (%d held)", slots[i],
          i, r->held);
  for (int i = 0; i < n; i++)
    memcpy (dst + (size_t) i * r->cfg.view_bytes, view_ptr (r, slots[i], view),
        r->cfg.view_bytes);
  return SIMCLR_OK;
}

const SimclrReplayInfo *
simclr_replay_info (const SimclrReplay *r, int slot)
{
  if (!r || slot < 0 || slot >= r->held)
    return NULL;
  return &r->rec[slot].info;
}

int64_t
simclr_replay_position (const SimclrReplay *r, int slot)
{
  if (!r || slot < 0 || slot >= r->held)
    return -1;
  return (int64_t) r->rec[slot].position;
}

int64_t
simclr_replay_uses (const SimclrReplay *r, int slot)
{
  if (!r || slot < 0 || slot >= r->held)
    return -1;
  return (int64_t) r->rec[slot].uses;
}

void
simclr_replay_get_stats (const SimclrReplay *r, SimclrReplayStats *stats)
{
  if (!stats)
    return;
  if (!r) {
    memset (stats, 0, sizeof *stats);
    return;
  }
  *stats = r->stats;
}

int
simclr_replay_held (const SimclrReplay *r)
{
  return r ? r->held : 0;
}

void
simclr_replay_clear (SimclrReplay *r)
{
  if (!r)
    return;
  r->held = 0;
  memset (&r->stats, 0, sizeof r->stats);
  r->stats.bytes = r->bytes;
}

/* ---- training batches ------------------------------------------------------ */

struct SimclrReplayBatch {
  int n, views;
  size_t view_bytes;
  uint8_t *staging;             /* (views, n, view_bytes) */
  SimclrFrame *frames;          /* (views x n) into staging */
  SimclrBatchRow *rows;         /* (views x n) */
  int *slots;                   /* (n) */
};

SimclrReplayBatch *
simclr_replay_batch_new (const SimclrReplay *r, int n, int side, int channels,
    SimclrError *err)
{
  SimclrReplayBatch *b;
  int rows;

  if (!r || n < 1 || side < 1 || channels < 1) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay batch: NULL buffer or batch %d, side %d, channels %d below 1",
        n, side, channels);
    return NULL;
  }
  if ((size_t) side * side * channels != r->cfg.view_bytes) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay batch: %dx%dx%d views are %zu bytes, the buffer's are %zu",
        side, side, channels, (size_t) side * side * channels,
        r->cfg.view_bytes);
    return NULL;
  }
  rows = r->cfg.views * n;
  b = calloc (1, sizeof *b);
  if (b) {
    b->n = n;
    b->views = r->cfg.views;
    b->view_bytes = r->cfg.view_bytes;
    b->staging = calloc ((size_t) rows, r->cfg.view_bytes);
    b->frames = calloc ((size_t) rows, sizeof *b->frames);
    b->rows = calloc ((size_t) rows, sizeof *b->rows);
    b->slots = calloc ((size_t) n, sizeof *b->slots);
  }
  if (!b || !b->staging || !b->frames || !b->rows || !b->slots) {
    simclr_replay_batch_free (b);
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "replay batch: cannot allocate %d views of %zu bytes", rows,
        r->cfg.view_bytes);
    return NULL;
  }
  simclr_frames_packed (b->frames, b->staging, rows, side, channels);
  return b;
}

void
simclr_replay_batch_free (SimclrReplayBatch *b)
{
  if (!b)
    return;
  free (b->staging);
  free (b->frames);
  free (b->rows);
  free (b->slots);
  free (b);
}

SimclrStatus
simclr_replay_draw (SimclrReplay *r, SimclrReplayBatch *b, uint64_t draw,
    SimclrBatch *batch, SimclrError *err)
{
  const int n = b ? b->n : 0;
  uint64_t min_ts = SIMCLR_TIMESTAMP_NONE, max_epoch = 0;
  SimclrStatus st;

  if (!r || !b || !batch)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay draw: NULL argument");
  if (b->views != r->cfg.views || b->view_bytes != r->cfg.view_bytes)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "replay draw: the batch was made for another buffer");
  st = simclr_replay_sample (r, draw, n, b->slots, err);
  for (int v = 0; st == SIMCLR_OK && v < b->views; v++)
    st = simclr_replay_gather (r, b->slots, n, v,
        b->staging + (size_t) v * n * b->view_bytes, err);
  if (st != SIMCLR_OK)
    return st;
  for (int j = 0; j < n; j++) {
    const SimclrReplayInfo *info = &r->rec[b->slots[j]].info;
    for (int v = 0; v < b->views; v++) {
      SimclrBatchRow *row = &b->rows[v * n + j];
      row->sample_id = info->sample_id;
      row->epoch = info->epoch;
      row->view = v;
      row->label = info->label;
      row->timestamp = info->pts[v];
      if (row->timestamp != SIMCLR_TIMESTAMP_NONE
          && (min_ts == SIMCLR_TIMESTAMP_NONE || row->timestamp < min_ts))
        min_ts = row->timestamp;
    }
    if (info->epoch > max_epoch)
      max_epoch = info->epoch;
  }
  batch->rows = b->views * n;
  batch->frames = b->frames;
  batch->row = b->rows;
  batch->max_epoch = max_epoch;
  batch->min_timestamp = min_ts;
  return SIMCLR_OK;
}
