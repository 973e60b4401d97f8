/* test-batcher.c: SimclrBatcher, views -> complete samples -> batches.
 *
 * - Pairing by (sample id, epoch) whatever the arrival order; batches of N
 *   complete samples in completion order, rows view-major; the label of
 *   the first view; max epoch and min timestamp.
 * - Copied frames (padding dropped, independent of the source afterwards)
 *   and held frames (the same pointer, released exactly once: after the
 *   batch, when replaced, cleared or freed, and on refusal).
 * - Duplicates, views out of range, bad strides, take before ready.
 * - Frames of the wrong size, stride or view index (multi-crop: a small
 *   view's frame at another size) refused before a byte is read, nothing
 *   stored or replaced; the bad frames lie in buffers of exactly their own
 *   bytes, so under AddressSanitizer a missing check is a heap overflow.
 * - A long stream with many pending samples against a reference model of
 *   the pairing (hash table insertions and deletions in every order).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "simclr/batcher.h"
#include "simclr/rng.h"

#define SIDE 3
#define CH 1
#define FRAME (SIDE * SIDE * CH)

/* A held frame: pixels plus a release counter. */
typedef struct {
  uint8_t pix[FRAME];
  int released;
} Owned;

static void
release_owned (void *owner)
{
  ((Owned *) owner)->released++;
}

static SimclrBatcherView
view_of (uint64_t id, uint64_t epoch, int v, const uint8_t *pix, int stride)
{
  SimclrBatcherView x;
  memset (&x, 0, sizeof x);
  x.sample_id = id;
  x.epoch = epoch;
  x.view = v;
  x.label = (int) (id % 10);
  x.timestamp = 1000 * id + v;
  x.frame.data = pix;
  x.frame.stride = stride;
  x.frame.width = x.frame.height = SIDE;
  return x;
}

static void
fill (uint8_t *p, uint64_t id, int v)
{
  for (int i = 0; i < FRAME; i++)
    p[i] = (uint8_t) (id * 7 + v * 3 + i);
}

static void
test_pairing (void)
{
  SimclrError err = { 0 };
  SimclrBatcher *b = simclr_batcher_new (3, 2, SIDE, CH, &err);
  uint8_t pix[FRAME];
  unsigned flags;
  SimclrBatch batch;

  g_assert_nonnull (b);
  /* views of samples 5, 6, 7, 8 (epoch 0) and 5 (epoch 1), interleaved:
   * completion order 6, 5, 8, then 7 */
  struct { uint64_t id, epoch; int v; } order[] = {
    {5, 0, 1}, {6, 0, 0}, {5, 1, 0}, {6, 0, 1}, {7, 0, 0}, {5, 0, 0},
    {8, 0, 1}, {8, 0, 0}, {7, 0, 1},
  };
  for (size_t i = 0; i < G_N_ELEMENTS (order); i++) {
    fill (pix, order[i].id + 100 * order[i].epoch, order[i].v);
    SimclrBatcherView v = view_of (order[i].id, order[i].epoch, order[i].v,
        pix, SIDE * CH);
    g_assert_cmpint (simclr_batcher_add (b, &v, &flags, &err), ==, SIMCLR_OK);
    /* the copy is taken now: scribbling on the source changes nothing */
    memset (pix, 0xEE, sizeof pix);
    if (i == 3)
      g_assert_true (flags & SIMCLR_BATCHER_COMPLETED);
    if (i == 4)
      g_assert_false (flags & SIMCLR_BATCHER_COMPLETED);
    /* ready once 6, 5 and 8 are complete (the 8th view) */
    g_assert_cmpint (simclr_batcher_batch_ready (b), ==, i >= 7);
  }
  g_assert_cmpint (simclr_batcher_n_complete (b), ==, 4);
  g_assert_cmpint (simclr_batcher_n_pending (b), ==, 1);  /* 5 of epoch 1 */

  g_assert_cmpint (simclr_batcher_take (b, &batch, &err), ==, SIMCLR_OK);
  g_assert_cmpint (batch.rows, ==, 6);
  const uint64_t want[3] = { 6, 5, 8 };
  for (int v = 0; v < 2; v++)
    for (int j = 0; j < 3; j++) {
      const SimclrBatchRow *r = &batch.row[v * 3 + j];
      uint8_t expect[FRAME];
      g_assert_cmpuint (r->sample_id, ==, want[j]);
      g_assert_cmpint (r->view, ==, v);
      g_assert_cmpuint (r->epoch, ==, 0);
      g_assert_cmpint (r->label, ==, (int) (want[j] % 10));
      g_assert_cmpuint (r->timestamp, ==, 1000 * want[j] + v);
      fill (expect, want[j], v);
      g_assert_cmpint (batch.frames[v * 3 + j].stride, ==, SIDE * CH);
      g_assert_cmpint (memcmp (batch.frames[v * 3 + j].data, expect, FRAME),
          ==, 0);
    }
  g_assert_cmpuint (batch.max_epoch, ==, 0);
  g_assert_cmpuint (batch.min_timestamp, ==, 5000);
  simclr_batcher_release_batch (b);
  g_assert_false (simclr_batcher_batch_ready (b));
  g_assert_cmpint (simclr_batcher_take (b, &batch, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);

  int complete = -1, pending = -1;
  simclr_batcher_clear (b, &complete, &pending);
  g_assert_cmpint (complete, ==, 1);
  g_assert_cmpint (pending, ==, 1);
  g_assert_cmpint (simclr_batcher_n_complete (b), ==, 0);
  g_assert_cmpint (simclr_batcher_n_pending (b), ==, 0);
  simclr_batcher_free (b);
  simclr_batcher_free (NULL);
}

/* Padded source rows are copied without the padding. */
static void
test_stride_copy (void)
{
  SimclrError err = { 0 };
  SimclrBatcher *b = simclr_batcher_new (1, 2, 2, 3, &err);
  uint8_t src[2][2 * 8];          /* 2 rows of 8 bytes, 6 used */
  SimclrBatch batch;

  for (int v = 0; v < 2; v++) {
    for (int i = 0; i < 16; i++)
      src[v][i] = (uint8_t) (i % 8 < 6 ? 10 * v + i : 0xFF);
    SimclrBatcherView x = view_of (1, 0, v, src[v], 8);
    x.frame.width = x.frame.height = 2;
    g_assert_cmpint (simclr_batcher_add (b, &x, NULL, &err), ==, SIMCLR_OK);
  }
  g_assert_cmpint (simclr_batcher_take (b, &batch, &err), ==, SIMCLR_OK);
  for (int v = 0; v < 2; v++) {
    g_assert_cmpint (batch.frames[v].stride, ==, 6);
    for (int y = 0; y < 2; y++)
      for (int x = 0; x < 6; x++)
        g_assert_cmpint (batch.frames[v].data[y * 6 + x], ==,
            10 * v + y * 8 + x);
  }
  /* a stride shorter than a row is refused */
  SimclrBatcherView bad = view_of (2, 0, 0, src[0], 5);
  bad.frame.width = bad.frame.height = 2;
  g_assert_cmpint (simclr_batcher_add (b, &bad, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  simclr_batcher_free (b);
}

/* Held frames: no copy, each owner released exactly once. */
static void
test_held (void)
{
  SimclrError err = { 0 };
  SimclrBatcher *b = simclr_batcher_new (2, 2, SIDE, CH, &err);
  Owned o[8];
  unsigned flags;
  SimclrBatch batch;

  memset (o, 0, sizeof o);
  for (int i = 0; i < 8; i++)
    fill (o[i].pix, i, 0);
#define HOLD(k, id, v) do { \
    SimclrBatcherView x = view_of (id, 0, v, o[k].pix, SIDE * CH); \
    x.owner = &o[k]; x.release = release_owned; \
    g_assert_cmpint (simclr_batcher_add (b, &x, &flags, &err), ==, SIMCLR_OK); \
  } while (0)
  HOLD (0, 1, 0);
  HOLD (1, 1, 0);                 /* duplicate: o[0] released */
  g_assert_true (flags & SIMCLR_BATCHER_DUPLICATE);
  g_assert_cmpint (o[0].released, ==, 1);
  HOLD (2, 1, 1);
  HOLD (3, 2, 1);
  HOLD (4, 2, 0);
  HOLD (5, 1, 7);                 /* no view 7: released at once */
  g_assert_true (flags & SIMCLR_BATCHER_BAD_VIEW);
  g_assert_cmpint (o[5].released, ==, 1);
  HOLD (6, 3, 0);                 /* stays pending */
  g_assert_true (simclr_batcher_batch_ready (b));
  g_assert_cmpint (simclr_batcher_take (b, &batch, &err), ==, SIMCLR_OK);
  /* the frames are the owners' pixels, not copies */
  g_assert_true (batch.frames[0].data == o[1].pix);
  g_assert_true (batch.frames[2].data == o[2].pix);
  g_assert_true (batch.frames[1].data == o[4].pix);
  g_assert_true (batch.frames[3].data == o[3].pix);
  for (int k = 1; k <= 4; k++)
    g_assert_cmpint (o[k].released, ==, 0);
  simclr_batcher_release_batch (b);
  for (int k = 1; k <= 4; k++)
    g_assert_cmpint (o[k].released, ==, 1);
  simclr_batcher_release_batch (b);       /* twice is a no-op */
  g_assert_cmpint (o[1].released, ==, 1);
  /* a refused frame's owner is released too */
  {
    SimclrBatcherView x = view_of (9, 0, 0, o[7].pix, 1);
    x.owner = &o[7];
    x.release = release_owned;
    g_assert_cmpint (simclr_batcher_add (b, &x, NULL, &err), ==,
        SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_cmpint (o[7].released, ==, 1);
  }
  g_assert_cmpint (o[6].released, ==, 0);
  simclr_batcher_free (b);                /* the pending one goes */
  g_assert_cmpint (o[6].released, ==, 1);
  for (int k = 0; k < 8; k++)
    g_assert_cmpint (o[k].released, ==, 1);
#undef HOLD
}

typedef struct {
  double when;
  int s, v;
} Arrival;

static int
by_arrival (const void *a, const void *c)
{
  double x = ((const Arrival *) a)->when, y = ((const Arrival *) c)->when;
  return (x > y) - (x < y);
}

/* A stream of 20000 samples whose two views come up to ~6000 views apart
 * (so thousands pend at once), checked against a plain reference: the
 * complete samples in completion order. */
static void
test_long_stream (void)
{
  const int N = 16, S = 20000;
  SimclrError err = { 0 };
  SimclrBatcher *b = simclr_batcher_new (N, 2, SIDE, CH, &err);
  uint8_t pix[FRAME];
  uint64_t *expected = g_new (uint64_t, S), *got = g_new (uint64_t, S);
  int *seen = g_new0 (int, S);
  int n_expected = 0, n_got = 0;
  /* arrival: view 0 of s at position 2s, view 1 at 2s + delay(s) */
  Arrival *arr = g_new (Arrival, 2 * S);
  for (int s = 0; s < S; s++) {
    arr[2 * s].when = 2.0 * s;
    arr[2 * s].s = s;
    arr[2 * s].v = 0;
    arr[2 * s + 1].when = 2.0 * s + 1 + (double) (simclr_rng_u64 (3, 0, s)
        % 6000);
    arr[2 * s + 1].s = s;
    arr[2 * s + 1].v = 1;
  }
  qsort (arr, 2 * S, sizeof *arr, by_arrival);
  gboolean backlogged = FALSE;
  for (int i = 0; i < 2 * S; i++) {
    unsigned flags;
    fill (pix, arr[i].s, arr[i].v);
    SimclrBatcherView x = view_of ((uint64_t) arr[i].s * 7919, 3, arr[i].v,
        pix, SIDE * CH);
    g_assert_cmpint (simclr_batcher_add (b, &x, &flags, &err), ==, SIMCLR_OK);
    if (++seen[arr[i].s] == 2) {
      expected[n_expected++] = (uint64_t) arr[i].s * 7919;
      g_assert_true (flags & SIMCLR_BATCHER_COMPLETED);
    }
    backlogged |= simclr_batcher_backlogged (b);
    while (simclr_batcher_batch_ready (b)) {
      SimclrBatch batch;
      g_assert_cmpint (simclr_batcher_take (b, &batch, &err), ==, SIMCLR_OK);
      for (int j = 0; j < N; j++) {
        uint8_t want[FRAME];
        uint64_t s = batch.row[j].sample_id / 7919;
        g_assert_cmpuint (batch.row[N + j].sample_id, ==,
            batch.row[j].sample_id);
        fill (want, s, 1);
        g_assert_cmpint (memcmp (batch.frames[N + j].data, want, FRAME), ==,
            0);
        got[n_got++] = batch.row[j].sample_id;
      }
      simclr_batcher_release_batch (b);
    }
  }
  g_assert_cmpint (n_expected, ==, S);
  g_assert_cmpint (n_got, ==, S - S % N);
  for (int i = 0; i < n_got; i++)
    if (got[i] != expected[i])
      g_error ("batch order: row %d is sample %" G_GUINT64_FORMAT
          ", completion order says %" G_GUINT64_FORMAT, i, got[i],
          expected[i]);
  /* ~1500 samples pend on average (a view 1 comes ~3000 views late): over
   * 8 N + 1024 */
  g_assert_true (backlogged);
  g_assert_cmpint (simclr_batcher_n_pending (b), ==, 0);
  simclr_batcher_free (b);
  g_free (arr);
  g_free (seen);
  g_free (expected);
  g_free (got);
}

static void
test_refusals (void)
{
  SimclrError err = { 0 };
  g_assert_null (simclr_batcher_new (0, 2, SIDE, CH, &err));
  g_assert_null (simclr_batcher_new (4, 2, SIDE, 2, &err));
  g_assert_null (simclr_batcher_new (4, 0, SIDE, CH, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
}

/* Multi-crop: the last views are small; each view is copied at its own
 * side (padding dropped), rows view-major as always. */
static void
test_mixed_sizes (void)
{
  SimclrError err = { 0 };
  const int views = 4, small = 2, side = 5, sside = 2, n = 2;
  SimclrBatcher *b = simclr_batcher_new_mixed (n, views, side, small, sside,
      3, &err);
  g_assert_nonnull (b);
  /* frames with padded rows: stride side*3 + 2 */
  uint8_t pix[4][5 * 17];
  for (int id = 0; id < n; id++)
    for (int v = views - 1; v >= 0; v--) {
      int sd = v >= views - small ? sside : side, stride = sd * 3 + 2;
      uint8_t *p = pix[v];
      for (int i = 0; i < (int) sizeof pix[v]; i++)
        p[i] = (uint8_t) (id * 50 + v * 10 + i);
      SimclrBatcherView x = view_of ((uint64_t) id, 0, v, p, stride);
      x.frame.width = x.frame.height = sd;
      g_assert_cmpint (simclr_batcher_add (b, &x, NULL, &err), ==,
          SIMCLR_OK);
    }
  g_assert_true (simclr_batcher_batch_ready (b));
  SimclrBatch batch;
  g_assert_cmpint (simclr_batcher_take (b, &batch, &err), ==, SIMCLR_OK);
  g_assert_cmpint (batch.rows, ==, views * n);
  for (int v = 0; v < views; v++)
    for (int id = 0; id < n; id++) {
      int sd = v >= views - small ? sside : side, stride = sd * 3 + 2;
      const SimclrFrame *f = &batch.frames[v * n + id];
      g_assert_cmpint (f->stride, ==, sd * 3);
      g_assert_cmpint (batch.row[v * n + id].view, ==, v);
      for (int y = 0; y < sd; y++)
        for (int x = 0; x < sd * 3; x++)
          g_assert_cmpint (f->data[y * f->stride + x], ==,
              (uint8_t) (id * 50 + v * 10 + y * stride + x));
    }
  simclr_batcher_release_batch (b);
  /* a small view's stride must fit its own side only; a full view's its */
  uint8_t tiny[2 * 2 * 3];
  SimclrBatcherView x = view_of (9, 0, 3, tiny, 2 * 3);
  x.frame.width = x.frame.height = sside;
  g_assert_cmpint (simclr_batcher_add (b, &x, NULL, &err), ==, SIMCLR_OK);
  x = view_of (9, 0, 0, tiny, 2 * 3);
  x.frame.width = x.frame.height = side;
  g_assert_cmpint (simclr_batcher_add (b, &x, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "stride of 6 bytes"));
  simclr_batcher_free (b);
  /* refusals */
  g_assert_null (simclr_batcher_new_mixed (n, views, side, views, sside, 3,
          &err));
  g_assert_null (simclr_batcher_new_mixed (n, views, side, small, 0, 3,
          &err));
  g_assert_nonnull (strstr (err.message, "small views"));
}

/* A bad frame for the multi-crop batcher of bad_frames_run: view @view of
 * sample 1, @width x @height as the caller claims, rows @stride bytes
 * apart in a buffer of exactly @rows x @stride bytes (NULL when 0). */
typedef struct {
  const char *what;
  int view, width, height, stride, rows;
  const char *message;          /* NULL: ignored with SIMCLR_BATCHER_BAD_VIEW */
} BadFrame;

/* views 3 (the last small), full 5 x 5, small 3 x 3, GRAY8, N 2. */
static const BadFrame bad_frames[] = {
  /* the element's case: a 6x6 GRAY8 small view (stride 8) for a model of
   * 8x8 small views; the stride passes, the rows do not exist */
  {"small view smaller", 2, 2, 2, 4, 2,
      "batcher: view 2 of sample 1 is a 2 x 2 frame; the batcher takes "
      "small views of 3 x 3"},
  {"small view larger", 2, 5, 5, 5, 5,
      "batcher: view 2 of sample 1 is a 5 x 5 frame; the batcher takes "
      "small views of 3 x 3"},
  {"full view at the small size", 0, 3, 3, 8, 3,
      "batcher: view 0 of sample 1 is a 3 x 3 frame; the batcher takes "
      "full-size views of 5 x 5"},
  {"small view not square (height)", 2, 3, 2, 4, 2,
      "batcher: view 2 of sample 1 is a 3 x 2 frame; the batcher takes "
      "small views of 3 x 3"},
  {"small view not square (width)", 2, 2, 3, 4, 3,
      "batcher: view 2 of sample 1 is a 2 x 3 frame; the batcher takes "
      "small views of 3 x 3"},
  {"size not given", 2, 0, 0, 4, 3,
      "batcher: view 2 of sample 1 is a 0 x 0 frame; the batcher takes "
      "small views of 3 x 3"},
  {"small view stride short", 2, 3, 3, 2, 3,
      "frames: frame 0 has a stride of 2 bytes, less than its 3 x 3 pixels "
      "of 1 channel(s)"},
  {"full view stride short", 0, 5, 5, 4, 5,
      "frames: frame 0 has a stride of 4 bytes, less than its 5 x 5 pixels "
      "of 1 channel(s)"},
  {"no data", 2, 3, 3, 3, 0, "frames: frame 0 of 1 has no data"},
  {"view past the views", 3, 3, 3, 3, 3, NULL},
  {"negative view", -1, 5, 5, 5, 5, NULL},
};

static void
bad_frames_run (const BadFrame *bf, int hold)
{
  SimclrError err = { 0 };
  const int views = 3, side = 5, sside = 3, n = 2;
  SimclrBatcher *b = simclr_batcher_new_mixed (n, views, side, 1, sside, 1,
      &err);
  uint8_t good[2][3][25];
  unsigned flags = 0xFF;
  g_assert_nonnull (b);
  /* sample 2 complete, sample 1 pending with views 0 and 2 */
  for (int id = 1; id <= 2; id++)
    for (int v = 0; v < views; v++) {
      if (id == 1 && v == 1)
        continue;
      int sd = v == views - 1 ? sside : side;
      for (int i = 0; i < 25; i++)
        good[id - 1][v][i] = (uint8_t) (100 * id + 10 * v + i);
      SimclrBatcherView x = view_of ((uint64_t) id, 0, v, good[id - 1][v],
          sd);
      x.frame.width = x.frame.height = sd;
      g_assert_cmpint (simclr_batcher_add (b, &x, NULL, &err), ==,
          SIMCLR_OK);
    }
  g_assert_cmpint (simclr_batcher_n_pending (b), ==, 1);
  g_assert_cmpint (simclr_batcher_n_complete (b), ==, 1);

  /* the bad frame, for a view sample 1 already has (or none) */
  size_t bytes = (size_t) bf->rows * bf->stride;
  Owned owner = { {0}, 0 };
  uint8_t *pix = bytes ? g_malloc (bytes) : NULL;
  if (pix)
    memset (pix, 0xEE, bytes);
  SimclrBatcherView x = view_of (1, 0, bf->view, pix, bf->stride);
  x.frame.width = bf->width;
  x.frame.height = bf->height;
  if (hold) {
    x.owner = &owner;
    x.release = release_owned;
  }
  memset (&err, 0, sizeof err);
  SimclrStatus s = simclr_batcher_add (b, &x, &flags, &err);
  if (bf->message) {
    if (s != SIMCLR_ERROR_INVALID_ARGUMENT)
      g_error ("%s (%s): status %d, want a refusal", bf->what,
          hold ? "held" : "copied", s);
    g_assert_cmpstr (err.message, ==, bf->message);
    g_assert_cmpuint (flags, ==, 0);
  } else {
    g_assert_cmpint (s, ==, SIMCLR_OK);
    g_assert_cmpuint (flags, ==, SIMCLR_BATCHER_BAD_VIEW);
  }
  /* the owner goes back at once, exactly once */
  g_assert_cmpint (owner.released, ==, hold ? 1 : 0);
  g_free (pix);
  /* nothing stored, nothing replaced */
  g_assert_cmpint (simclr_batcher_n_pending (b), ==, 1);
  g_assert_cmpint (simclr_batcher_n_complete (b), ==, 1);
  g_assert_false (simclr_batcher_batch_ready (b));
  SimclrBatcherView last = view_of (1, 0, 1, good[0][0], side);
  last.frame.width = last.frame.height = side;
  g_assert_cmpint (simclr_batcher_add (b, &last, &flags, &err), ==,
      SIMCLR_OK);
  g_assert_cmpuint (flags, ==, SIMCLR_BATCHER_COMPLETED);
  SimclrBatch batch;
  g_assert_cmpint (simclr_batcher_take (b, &batch, &err), ==, SIMCLR_OK);
  g_assert_cmpint (batch.rows, ==, views * n);
  /* sample 2 completed first: column 0; sample 1 column 1 */
  for (int v = 0; v < views; v++) {
    int sd = v == views - 1 ? sside : side;
    const SimclrFrame *f = &batch.frames[v * n + 1];
    const uint8_t *want = v == 1 ? good[0][0] : good[0][v];
    g_assert_cmpuint (batch.row[v * n + 1].sample_id, ==, 1);
    g_assert_cmpuint (batch.row[v * n + 1].timestamp, ==, 1000 + v);
    g_assert_cmpint (f->stride, ==, sd);
    g_assert_cmpmem (f->data, sd * sd, want, sd * sd);
  }
  simclr_batcher_free (b);
}

static void
test_bad_frames (void)
{
  for (size_t k = 0; k < G_N_ELEMENTS (bad_frames); k++)
    for (int hold = 0; hold < 2; hold++)
      bad_frames_run (&bad_frames[k], hold);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/batcher/pairing", test_pairing);
  g_test_add_func ("/batcher/stride-copy", test_stride_copy);
  g_test_add_func ("/batcher/held", test_held);
  g_test_add_func ("/batcher/long-stream", test_long_stream);
  g_test_add_func ("/batcher/refusals", test_refusals);
  g_test_add_func ("/batcher/mixed-sizes", test_mixed_sizes);
  g_test_add_func ("/batcher/bad-frames", test_bad_frames);
  return g_test_run ();
}
