/* batcher.c: views -> complete samples -> batches (see
 * include/simclr/batcher.h).
 *
 * Pending samples sit in an open-addressing hash table keyed by (sample
 * id, epoch), linear probing with backward-shift deletion (no tombstones,
 * so a long stream never degrades it); complete samples in a FIFO.
 */
#include "simclr/batcher.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  SimclrFrame frame;           /* what the batch hands out */
  void *owner;                 /* held frame, or NULL */
  SimclrReleaseFn release;
  uint8_t *copy;               /* our packed copy, or NULL */
  uint64_t timestamp;
  int present;
} Held;

typedef struct {
  uint64_t id, epoch;
  int label;
  int have;                    /* views present */
  Held v[];                    /* (views) */
} Sample;

struct SimclrBatcher {
  int batch, views, side, channels;
  int small_views, small_side;  /* the last small_views views: small_side */
  Sample **slots;              /* (cap) pending, NULL = empty */
  size_t cap, count;
  Sample **queue;              /* (qcap) complete, from qhead on */
  size_t qcap, qhead, qlen;
  Sample **taken;              /* (batch) the batch handed out */
  int n_taken;
  SimclrFrame *frames;         /* (views x batch) */
  SimclrBatchRow *rows;        /* (views x batch) */
};

static size_t
hash_key (uint64_t id, uint64_t epoch)
{
  uint64_t h = id * 0x9E3779B97F4A7C15ULL ^ epoch * 0xC2B2AE3D27D4EB4FULL;
  return (size_t) (h ^ (h >> 32));
}

static void
release_held (Held *h)
{
  if (!h->present)
    return;
  if (h->owner && h->release)
    h->release (h->owner);
  free (h->copy);
  memset (h, 0, sizeof *h);
}

static void
sample_free (SimclrBatcher *b, Sample *s)
{
  if (!s)
    return;
  for (int v = 0; v < b->views; v++)
    release_held (&s->v[v]);
  free (s);
}

/* Side of view @view's frames. */
static int
view_side (const SimclrBatcher *b, int view)
{
  return view >= b->views - b->small_views ? b->small_side : b->side;
}

SimclrBatcher *
simclr_batcher_new (int batch, int views, int side, int channels,
    SimclrError *err)
{
  return simclr_batcher_new_mixed (batch, views, side, 0, 0, channels, err);
}

SimclrBatcher *
simclr_batcher_new_mixed (int batch, int views, int side, int small_views,
    int small_side, int channels, SimclrError *err)
{
  SimclrBatcher *b;

  if (small_views < 0 || small_views >= views || (small_views > 0
          && (small_side < 1 || small_side > 4096))) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "batcher: %d small views of side %d out of range (views %d)",
        small_views, small_side, views);
    return NULL;
  }
  if (batch < 1 || batch > (1 << 20) || views < 1 || views > 64
      || side < 1 || side > 4096 || (channels != 1 && channels != 3)) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "batcher: batch %d, views %d, side %d, channels %d out of range",
        batch, views, side, channels);
    return NULL;
  }
  b = calloc (1, sizeof *b);
  if (!b)
    goto no_memory;
  b->batch = batch;
  b->views = views;
  b->side = side;
  b->small_views = small_views;
  b->small_side = small_side;
  b->channels = channels;
  b->cap = 64;
  b->slots = calloc (b->cap, sizeof *b->slots);
  b->qcap = (size_t) batch + 1;
  b->queue = malloc (b->qcap * sizeof *b->queue);
  b->taken = malloc ((size_t) batch * sizeof *b->taken);
  b->frames = malloc ((size_t) views * batch * sizeof *b->frames);
  b->rows = malloc ((size_t) views * batch * sizeof *b->rows);
  if (!b->slots || !b->queue || !b->taken || !b->frames || !b->rows)
    goto no_memory;
  return b;

no_memory:
  simclr_batcher_free (b);
  simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
      "batcher: out of memory for batches of %d", batch);
  return NULL;
}

void
simclr_batcher_free (SimclrBatcher *b)
{
  if (!b)
    return;
  simclr_batcher_clear (b, NULL, NULL);
  free (b->slots);
  free (b->queue);
  free (b->taken);
  free (b->frames);
  free (b->rows);
  free (b);
}

/* The slot holding (id, epoch), or the empty slot where it would go. */
static size_t
find_slot (const SimclrBatcher *b, uint64_t id, uint64_t epoch)
{
  size_t mask = b->cap - 1, i = hash_key (id, epoch) & mask;
  while (b->slots[i] && !(b->slots[i]->id == id && b->slots[i]->epoch
          == epoch))
    i = (i + 1) & mask;
  return i;
}

static int
grow_table (SimclrBatcher *b)
{
  Sample **old = b->slots;
  size_t old_cap = b->cap;
  Sample **slots = calloc (old_cap * 2, sizeof *slots);
  if (!slots)
    return 0;
  b->slots = slots;
  b->cap = old_cap * 2;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i])
      b->slots[find_slot (b, old[i]->id, old[i]->epoch)] = old[i];
  free (old);
  return 1;
}

/* Empties slot @i, shifting back the entries whose probe ran past it. */
static void
remove_slot (SimclrBatcher *b, size_t i)
{
  size_t mask = b->cap - 1, j = i;
  b->slots[i] = NULL;
  b->count--;
  for (;;) {
    j = (j + 1) & mask;
    if (!b->slots[j])
      break;
    size_t k = hash_key (b->slots[j]->id, b->slots[j]->epoch) & mask;
    /* The entry at j may stay if its home k lies cyclically in (i, j]. */
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
      continue;
    b->slots[i] = b->slots[j];
    b->slots[j] = NULL;
    i = j;
  }
}

static int
queue_push (SimclrBatcher *b, Sample *s)
{
  if (b->qhead + b->qlen == b->qcap) {
    if (b->qhead > 0) {
      memmove (b->queue, b->queue + b->qhead, b->qlen * sizeof *b->queue);
      b->qhead = 0;
    } else {
      Sample **q = realloc (b->queue, 2 * b->qcap * sizeof *q);
      if (!q)
        return 0;
      b->queue = q;
      b->qcap *= 2;
    }
  }
  b->queue[b->qhead + b->qlen++] = s;
  return 1;
}

static void
release_owner (const SimclrBatcherView *v)
{
  if (v->owner && v->release)
    v->release (v->owner);
}

SimclrStatus
simclr_batcher_add (SimclrBatcher *b, const SimclrBatcherView *v,
    unsigned *flags, SimclrError *err)
{
  unsigned f = 0;
  SimclrStatus s;
  Sample *smp;
  Held *h;
  size_t i;

  if (flags)
    *flags = 0;
  if (v->view < 0 || v->view >= b->views) {
    release_owner (v);
    if (flags)
      *flags = SIMCLR_BATCHER_BAD_VIEW;
    return SIMCLR_OK;
  }
  /* The frame's size is the caller's word, checked before a row is read. */
  if (v->frame.width != view_side (b, v->view)
      || v->frame.height != view_side (b, v->view)) {
    release_owner (v);
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "batcher: view %d of sample %llu is a %d x %d frame; the batcher "
        "takes %s views of %d x %d", v->view,
        (unsigned long long) v->sample_id, v->frame.width, v->frame.height,
        v->view >= b->views - b->small_views ? "small" : "full-size",
        view_side (b, v->view), view_side (b, v->view));
  }
  s = simclr_frames_check (&v->frame, 1, view_side (b, v->view),
      b->channels, err);
  if (s != SIMCLR_OK) {
    release_owner (v);
    return s;
  }

  i = find_slot (b, v->sample_id, v->epoch);
  smp = b->slots[i];
  if (!smp) {
    if ((b->count + 1) * 2 > b->cap) {
      if (!grow_table (b))
        goto no_memory;
      i = find_slot (b, v->sample_id, v->epoch);
    }
    smp = calloc (1, sizeof *smp + (size_t) b->views * sizeof (Held));
    if (!smp)
      goto no_memory;
    smp->id = v->sample_id;
    smp->epoch = v->epoch;
    smp->label = v->label;
    b->slots[i] = smp;
    b->count++;
  }

  h = &smp->v[v->view];
  if (h->present) {
    /* The later copy wins (a re-sent frame). */
    release_held (h);
    smp->have--;
    f |= SIMCLR_BATCHER_DUPLICATE;
  }
  if (v->owner) {
    h->frame = v->frame;
    h->owner = v->owner;
    h->release = v->release;
  } else {
    const int side = view_side (b, v->view);
    const size_t row = (size_t) side * b->channels;
    h->copy = malloc (row * side);
    if (!h->copy)
      goto no_memory;
    for (int y = 0; y < side; y++)
      memcpy (h->copy + y * row, v->frame.data + (size_t) y
          * v->frame.stride, row);
    h->frame = v->frame;
    h->frame.data = h->copy;
    h->frame.stride = (int) row;
  }
  h->timestamp = v->timestamp;
  h->present = 1;
  smp->have++;

  if (smp->have == b->views) {
    if (!queue_push (b, smp))
      goto no_memory_complete;
    remove_slot (b, i);
    f |= SIMCLR_BATCHER_COMPLETED;
  }
  if (flags)
    *flags = f;
  return SIMCLR_OK;

  /* ERRORS */
no_memory_complete:
  /* Keep the invariant (a pending sample misses a view): drop this one. */
  release_held (h);
  smp->have--;
  return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
      "batcher: out of memory");
no_memory:
  release_owner (v);
  return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
      "batcher: out of memory");
}

int
simclr_batcher_batch_ready (const SimclrBatcher *b)
{
  return b->qlen >= (size_t) b->batch;
}

void
simclr_batcher_release_batch (SimclrBatcher *b)
{
  for (int j = 0; j < b->n_taken; j++)
    sample_free (b, b->taken[j]);
  b->n_taken = 0;
}

SimclrStatus
simclr_batcher_take (SimclrBatcher *b, SimclrBatch *batch, SimclrError *err)
{
  const int N = b->batch;

  simclr_batcher_release_batch (b);
  if (!simclr_batcher_batch_ready (b))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "batcher: %zu complete samples, a batch needs %d", b->qlen, N);
  memcpy (b->taken, b->queue + b->qhead, (size_t) N * sizeof *b->taken);
  b->qhead += N;
  b->qlen -= N;
  if (b->qlen == 0)
    b->qhead = 0;
  b->n_taken = N;

  batch->rows = b->views * N;
  batch->frames = b->frames;
  batch->row = b->rows;
  batch->max_epoch = 0;
  batch->min_timestamp = SIMCLR_TIMESTAMP_NONE;
  for (int j = 0; j < N; j++) {
    const Sample *s = b->taken[j];
    for (int v = 0; v < b->views; v++) {
      const Held *h = &s->v[v];
      SimclrBatchRow *r = &b->rows[v * N + j];
      b->frames[v * N + j] = h->frame;
      r->sample_id = s->id;
      r->epoch = s->epoch;
      r->view = v;
      r->label = s->label;
      r->timestamp = h->timestamp;
      if (h->timestamp != SIMCLR_TIMESTAMP_NONE
          && h->timestamp < batch->min_timestamp)
        batch->min_timestamp = h->timestamp;
    }
    if (s->epoch > batch->max_epoch)
      batch->max_epoch = s->epoch;
  }
  return SIMCLR_OK;
}

int
simclr_batcher_n_complete (const SimclrBatcher *b)
{
  return (int) b->qlen;
}

int
simclr_batcher_n_pending (const SimclrBatcher *b)
{
  return (int) b->count;
}

int
simclr_batcher_backlogged (const SimclrBatcher *b)
{
  return b->count > 8 * (size_t) b->batch + 1024;
}

void
simclr_batcher_clear (SimclrBatcher *b, int *complete, int *pending)
{
  if (complete)
    *complete = (int) b->qlen;
  if (pending)
    *pending = (int) b->count;
  simclr_batcher_release_batch (b);
  for (size_t q = 0; q < b->qlen; q++)
    sample_free (b, b->queue[b->qhead + q]);
  b->qhead = b->qlen = 0;
  for (size_t i = 0; i < b->cap; i++) {
    sample_free (b, b->slots[i]);
    b->slots[i] = NULL;
  }
  b->count = 0;
}
