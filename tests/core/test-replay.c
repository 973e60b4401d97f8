/* test-replay.c: the bounded replay buffer (include/simclr/replay.h).
 *
 * - Memory accounting: the bytes stated before creation are what the process
 *   gains in resident memory at creation (pages touched), the limit and the
 *   system's available memory refuse larger buffers with both sizes named,
 *   overflowing sizes are refused.
 * - Eviction: the ring keeps exactly the newest samples; the reservoir keeps
 *   each of m samples with probability capacity / m (counted over seeds).
 * - Sampling: distinct slots, each slot equally likely (counted over draws),
 *   temporal pairs at the requested distances, uniform k.
 * - Determinism: the same seed and calls give the same slots; another seed or
 *   draw number gives others.
 * - Bounds: too few samples, bad slots and views are errors that leave the
 *   buffer and its counters as they were.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "simclr/replay.h"

#define VB 12                   /* view bytes of the small buffers */

/* Resident-memory tolerance: 2 MiB, plus AddressSanitizer's shadow (an
 * eighth of what is touched) when built with it. */
#if defined(__SANITIZE_ADDRESS__)
#define SLACK(bytes) (2.0 * (1 << 20) + (double) (bytes) / 8)
#else
#define SLACK(bytes) (2.0 * (1 << 20))
#endif

static SimclrReplay *
make (int capacity, SimclrReplayPolicy policy, uint64_t seed)
{
  SimclrReplayConfig cfg;
  SimclrError err = { 0 };
  SimclrReplay *r;

  simclr_replay_config_default (&cfg);
  cfg.capacity = capacity;
  cfg.views = 2;
  cfg.view_bytes = VB;
  cfg.policy = policy;
  cfg.seed = seed;
  r = simclr_replay_new (&cfg, &err);
  if (!r)
    g_error ("replay_new: %s", err.message);
  return r;
}

/* Adds sample @id: view v filled with bytes (id * 2 + v) mod 256, id and
 * pts recorded. Returns the slot (-1 if refused). */
static int
add (SimclrReplay * r, uint64_t id)
{
  uint8_t a[VB], b[VB];
  const uint8_t *views[2] = { a, b };
  SimclrReplayInfo info = { 0 };
  SimclrError err = { 0 };
  int slot = -2;

  memset (a, (int) ((id * 2) & 0xff), VB);
  memset (b, (int) ((id * 2 + 1) & 0xff), VB);
  info.sample_id = id;
  info.label = (int32_t) (id % 10);
  info.pts[0] = id * 1000;
  info.pts[1] = id * 1000 + 1;
  g_assert_cmpint (simclr_replay_add (r, views, &info, &slot, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (slot, >=, -1);
  return slot;
}

static long
rss_bytes (void)
{
  long pages = 0, resident = 0;
  FILE *f = fopen ("/proc/self/statm", "r");
  if (!f)
    return -1;
  if (fscanf (f, "%ld %ld", &pages, &resident) != 2)
    resident = -1;
  fclose (f);
  return resident < 0 ? -1 : resident * sysconf (_SC_PAGESIZE);
}

/* ---------------------------------------------------------------------------
 * Configuration and memory.
 */
static void
test_config (void)
{
  SimclrReplayConfig def, cfg;
  SimclrError err = { 0 };
  size_t bytes = 0;

  simclr_replay_config_default (&def);
  g_assert_cmpint (def.capacity, ==, 1024);
  g_assert_cmpint (def.views, ==, 2);
  g_assert_cmpint (def.policy, ==, SIMCLR_REPLAY_RING);
  /* view_bytes must be set. */
  g_assert_cmpint (simclr_replay_config_validate (&def, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "view_bytes"));
  def.view_bytes = 3072;
  g_assert_cmpint (simclr_replay_config_validate (&def, &err), ==, SIMCLR_OK);

#define EXPECT_BAD(field, value, word) \
  do { \
    cfg = def; \
    cfg.field = value; \
    g_assert_cmpint (simclr_replay_config_validate (&cfg, &err), ==, \
        SIMCLR_ERROR_INVALID_ARGUMENT); \
    g_assert_null (simclr_replay_new (&cfg, NULL)); \
    if (!strstr (err.message, word)) \
      g_error ("%s = %s: message '%s' lacks '%s'", #field, #value, \
          err.message, word); \
  } while (0)
  EXPECT_BAD (capacity, 0, "capacity");
  EXPECT_BAD (capacity, -3, "capacity");
  EXPECT_BAD (views, 0, "views");
  EXPECT_BAD (views, SIMCLR_REPLAY_MAX_VIEWS + 1, "views");
  EXPECT_BAD (policy, 2, "policy");
  EXPECT_BAD (view_bytes, SIZE_MAX / 4, "overflow");
#undef EXPECT_BAD
  g_assert_cmpint (simclr_replay_config_validate (NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_replay_bytes (&def, &bytes, &err), ==, SIMCLR_OK);
  /* Pixels plus a bounded record per sample. */
  g_assert_cmpuint (bytes, >=, 1024u * 2 * 3072);
  g_assert_cmpuint (bytes, <=, 1024u * 2 * 3072 + 1024u * 256 + 4096);
}

static void
test_memory_accounting (void)
{
  SimclrReplayConfig cfg;
  SimclrError err = { 0 };
  SimclrReplay *r;
  SimclrReplayStats st;
  size_t bytes;
  long before, after;

  /* 64 MiB of pixels: the resident memory gained at creation is the stated
   * size (within 2 MiB), and filling the buffer adds nothing. */
  simclr_replay_config_default (&cfg);
  cfg.capacity = 2048;
  cfg.views = 2;
  cfg.view_bytes = 16384;
  g_assert_cmpint (simclr_replay_bytes (&cfg, &bytes, &err), ==, SIMCLR_OK);
  before = rss_bytes ();
  r = simclr_replay_new (&cfg, &err);
  if (!r)
    g_error ("%s", err.message);
  after = rss_bytes ();
  if (before > 0 && after > 0
      && fabs ((double) (after - before) - (double) bytes) > SLACK (bytes))
    g_error ("stated %zu bytes, resident memory grew by %ld", bytes,
        after - before);
  {
    static uint8_t v0[16384], v1[16384];
    const uint8_t *views[2] = { v0, v1 };
    for (int i = 0; i < 3 * 2048; i++)
      g_assert_cmpint (simclr_replay_add (r, views, NULL, NULL, &err), ==,
          SIMCLR_OK);
  }
  if (after > 0 && labs (rss_bytes () - after) > (1 << 20))
    g_error ("resident memory moved by %ld bytes while filling",
        rss_bytes () - after);
  simclr_replay_get_stats (r, &st);
  g_assert_cmpuint (st.bytes, ==, bytes);
  g_assert_cmpint (st.held, ==, 2048);
  simclr_replay_free (r);

  /* Above the limit: refused, naming both sizes. */
  cfg.max_bytes = bytes - 1;
  g_assert_null (simclr_replay_new (&cfg, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_NO_MEMORY);
  {
    gchar *need = g_strdup_printf ("%zu bytes", bytes);
    gchar *limit = g_strdup_printf ("%zu bytes", bytes - 1);
    if (!strstr (err.message, need) || !strstr (err.message, limit)
        || !strstr (err.message, "limit"))
      g_error ("message '%s' lacks '%s' or '%s'", err.message, need, limit);
    g_free (need);
    g_free (limit);
  }
  cfg.max_bytes = bytes;
  r = simclr_replay_new (&cfg, &err);
  g_assert_nonnull (r);
  simclr_replay_free (r);

  /* Beyond the machine: 2^20 samples of 1 GiB is refused before any
   * allocation, naming the memory available. */
  if (simclr_replay_memory_available () == 0) {
    g_test_message ("no MemAvailable here: the system check is not tested");
    return;
  }
  cfg.max_bytes = 0;
  cfg.capacity = 1 << 20;
  cfg.view_bytes = (size_t) 1 << 30;
  g_assert_null (simclr_replay_new (&cfg, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_NO_MEMORY);
  if (!strstr (err.message, "available"))
    g_error ("message '%s' does not say the memory is not available",
        err.message);
}

/* ---------------------------------------------------------------------------
 * Eviction.
 */
static void
test_ring_eviction (void)
{
  SimclrReplay *r = make (8, SIMCLR_REPLAY_RING, 1);
  SimclrReplayStats st;
  SimclrError err = { 0 };
  uint8_t got[VB];
  int slots[8];

  for (uint64_t id = 0; id < 20; id++) {
    /* next_slot says beforehand what the add does: fill, then overwrite
     * the oldest. */
    int next = simclr_replay_next_slot (r);
    g_assert_cmpint (next, ==, id < 8 ? -1 : (int) (id % 8));
    int s = add (r, id);
    g_assert_cmpint (s, ==, (int) (id % 8));
    if (id == 9) {
      /* Draw all 8 held (ids 2..9) once: they are trained, not dropped. */
      g_assert_cmpint (simclr_replay_sample (r, 0, 8, slots, &err), ==,
          SIMCLR_OK);
    }
  }
  simclr_replay_get_stats (r, &st);
  g_assert_cmpuint (st.seen, ==, 20);
  g_assert_cmpuint (st.stored, ==, 20);
  g_assert_cmpuint (st.rejected, ==, 0);
  g_assert_cmpuint (st.evicted, ==, 12);
  /* Evicted: ids 0..11; of those 2..9 were drawn. */
  g_assert_cmpuint (st.evicted_unused, ==, 4);
  g_assert_cmpuint (st.trained, ==, 8);
  g_assert_cmpuint (st.draws, ==, 8);
  g_assert_cmpint (st.held, ==, 8);
  g_assert_cmpint (simclr_replay_held (r), ==, 8);
  /* Exactly the newest 8 (ids 12..19) are held, each in slot id mod 8. */
  for (int s = 0; s < 8; s++) {
    const SimclrReplayInfo *info = simclr_replay_info (r, s);
    uint64_t id = info->sample_id;
    int one = s;
    g_assert_cmpuint (id, >=, 12);
    g_assert_cmpuint (id % 8, ==, (uint64_t) s);
    g_assert_cmpint (simclr_replay_position (r, s), ==, (int64_t) id);
    g_assert_cmpuint (info->pts[1], ==, id * 1000 + 1);
    g_assert_cmpint (info->label, ==, (int32_t) (id % 10));
    g_assert_cmpint (simclr_replay_gather (r, &one, 1, 1, got, &err), ==,
        SIMCLR_OK);
    for (int k = 0; k < VB; k++)
      g_assert_cmpuint (got[k], ==, (id * 2 + 1) & 0xff);
  }
  simclr_replay_free (r);
}

static void
test_reservoir_distribution (void)
{
  /* m samples through a reservoir of c: each is held at the end with
   * probability c / m. Counted over many seeds, per bucket of positions. */
  enum { C = 10, M = 400, SEEDS = 3000, BUCKETS = 8 };
  double counts[BUCKETS] = { 0 };
  const double expect = (double) SEEDS * C / BUCKETS;

  for (uint64_t seed = 0; seed < SEEDS; seed++) {
    SimclrReplay *r = make (C, SIMCLR_REPLAY_RESERVOIR, seed);
    SimclrReplayStats st;
    int stored = 0;
    for (uint64_t id = 0; id < M; id++) {
      int next = simclr_replay_next_slot (r);
      int s = add (r, id);
      /* next_slot predicts the reservoir's choice exactly. */
      g_assert_cmpint (next, ==, id < C ? -1 : s < 0 ? -2 : s);
      if (id < C)
        g_assert_cmpint (s, ==, (int) id);       /* the first c fill in order */
      stored += s >= 0;
    }
    simclr_replay_get_stats (r, &st);
    g_assert_cmpint (st.held, ==, C);
    g_assert_cmpuint (st.seen, ==, M);
    g_assert_cmpuint (st.stored + st.rejected, ==, M);
    g_assert_cmpuint (st.stored, ==, (uint64_t) stored);
    g_assert_cmpuint (st.evicted, ==, st.stored - C);
    g_assert_cmpuint (st.evicted_unused, ==, st.evicted);
    for (int s = 0; s < C; s++) {
      uint64_t id = simclr_replay_info (r, s)->sample_id;
      counts[id * BUCKETS / M] += 1;
    }
    simclr_replay_free (r);
  }
  /* Each bucket: binomial-like, sd about sqrt (expect); 5 sd. */
  for (int b = 0; b < BUCKETS; b++)
    if (fabs (counts[b] - expect) > 5 * sqrt (expect))
      g_error ("reservoir: positions %d..%d held %.0f times, expected %.0f",
          b * M / BUCKETS, (b + 1) * M / BUCKETS - 1, counts[b], expect);
}

/* ---------------------------------------------------------------------------
 * Sampling.
 */
static void
test_sample_uniform (void)
{
  enum { C = 50, N = 10, DRAWS = 20000 };
  SimclrReplay *r = make (C, SIMCLR_REPLAY_RING, 7);
  SimclrError err = { 0 };
  SimclrReplayStats st;
  double counts[C] = { 0 };
  const double p = (double) N / C, expect = DRAWS * p,
      sd = sqrt (DRAWS * p * (1 - p));
  int slots[N];

  for (uint64_t id = 0; id < 3 * C; id++)
    add (r, id);
  for (uint64_t d = 0; d < DRAWS; d++) {
    g_assert_cmpint (simclr_replay_sample (r, d, N, slots, &err), ==,
        SIMCLR_OK);
    for (int i = 0; i < N; i++) {
      g_assert_cmpint (slots[i], >=, 0);
      g_assert_cmpint (slots[i], <, C);
      for (int j = 0; j < i; j++)
        if (slots[i] == slots[j])
          g_error ("draw %" G_GUINT64_FORMAT ": slot %d twice", d, slots[i]);
      counts[slots[i]] += 1;
    }
  }
  for (int s = 0; s < C; s++)
    if (fabs (counts[s] - expect) > 5 * sd)
      g_error ("slot %d drawn %.0f times, expected %.0f +- %.0f", s,
          counts[s], expect, sd);
  simclr_replay_get_stats (r, &st);
  g_assert_cmpuint (st.draws, ==, (uint64_t) DRAWS * N);
  g_assert_cmpuint (st.trained, ==, C);
  for (int s = 0; s < C; s++)
    g_assert_cmpint (simclr_replay_uses (r, s), ==, (int64_t) counts[s]);
  /* Drawing every held sample returns each once. */
  {
    int all[C], seen[C] = { 0 };
    g_assert_cmpint (simclr_replay_sample (r, 99, C, all, &err), ==,
        SIMCLR_OK);
    for (int i = 0; i < C; i++)
      seen[all[i]]++;
    for (int s = 0; s < C; s++)
      g_assert_cmpint (seen[s], ==, 1);
  }
  simclr_replay_free (r);
}

static void
test_sample_pairs (void)
{
  enum { C = 100, N = 16, DRAWS = 4000 };
  SimclrReplay *r = make (C, SIMCLR_REPLAY_RING, 3), *res;
  SimclrError err = { 0 };
  int a[N], p[N];
  double kcount[5] = { 0 };

  /* 250 stored: positions 150..249 held. */
  for (uint64_t id = 0; id < 250; id++)
    add (r, id);
  /* Fixed distance 5: the partner is frame t + 5; anchors leave room. */
  for (uint64_t d = 0; d < 200; d++) {
    g_assert_cmpint (simclr_replay_sample_pairs (r, d, N, 5, 5, a, p, &err),
        ==, SIMCLR_OK);
    for (int i = 0; i < N; i++) {
      uint64_t ta = simclr_replay_info (r, a[i])->sample_id;
      uint64_t tp = simclr_replay_info (r, p[i])->sample_id;
      g_assert_cmpuint (tp, ==, ta + 5);
      g_assert_cmpuint (ta, >=, 150);
      g_assert_cmpuint (tp, <=, 249);
      for (int j = 0; j < i; j++)
        g_assert_cmpint (a[i], !=, a[j]);
    }
  }
  /* k uniform in [2, 6]. */
  for (uint64_t d = 0; d < DRAWS; d++) {
    g_assert_cmpint (simclr_replay_sample_pairs (r, 1000 + d, N, 2, 6, a, p,
            &err), ==, SIMCLR_OK);
    for (int i = 0; i < N; i++) {
      int64_t k = simclr_replay_position (r, p[i])
          - simclr_replay_position (r, a[i]);
      g_assert_cmpint (k, >=, 2);
      g_assert_cmpint (k, <=, 6);
      kcount[k - 2] += 1;
    }
  }
  for (int k = 0; k < 5; k++) {
    double e = DRAWS * N / 5.0, sd = sqrt (DRAWS * N * 0.2 * 0.8);
    if (fabs (kcount[k] - e) > 5 * sd)
      g_error ("k = %d drawn %.0f times, expected %.0f", k + 2, kcount[k], e);
  }
  /* k = 0: the anchor is its own partner (two views of one frame). */
  g_assert_cmpint (simclr_replay_sample_pairs (r, 7, N, 0, 0, a, p, &err), ==,
      SIMCLR_OK);
  for (int i = 0; i < N; i++)
    g_assert_cmpint (a[i], ==, p[i]);
  /* Room: n + k_max held samples are needed (100 held). */
  {
    int big_a[C], big_p[C];
    g_assert_cmpint (simclr_replay_sample_pairs (r, 8, C - 9, 9, 9, big_a,
            big_p, &err), ==, SIMCLR_OK);
    g_assert_cmpint (simclr_replay_sample_pairs (r, 8, C - 8, 9, 9, big_a,
            big_p, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (err.message, "need 101"));
  }
  g_assert_cmpint (simclr_replay_sample_pairs (r, 8, 3, 4, 2, a, p, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_replay_sample_pairs (r, 8, 3, -1, 2, a, p, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  /* A reservoir keeps no frame beside its successor. */
  res = make (C, SIMCLR_REPLAY_RESERVOIR, 3);
  for (uint64_t id = 0; id < 250; id++)
    add (res, id);
  g_assert_cmpint (simclr_replay_sample_pairs (res, 0, 4, 1, 1, a, p, &err),
      ==, SIMCLR_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (err.message, "ring"));
  simclr_replay_free (res);
  simclr_replay_free (r);
}

/* ---------------------------------------------------------------------------
 * Determinism and bounds.
 */
static void
run_sequence (uint64_t seed, uint64_t first_draw, int *out, int n_out)
{
  SimclrReplay *r = make (16, SIMCLR_REPLAY_RESERVOIR, seed);
  SimclrError err = { 0 };
  int k = 0;

  for (uint64_t id = 0; id < 200 && k + 4 <= n_out; id++) {
    add (r, id);
    if (id >= 16 && id % 10 == 0) {
      int slots[4];
      g_assert_cmpint (simclr_replay_sample (r, first_draw + id, 4, slots,
              &err), ==, SIMCLR_OK);
      for (int i = 0; i < 4; i++)
        out[k++] = (int) simclr_replay_info (r, slots[i])->sample_id;
    }
  }
  simclr_replay_free (r);
}

static void
test_determinism (void)
{
  int a[72], b[72], c[72], d[72];

  run_sequence (5, 0, a, 72);
  run_sequence (5, 0, b, 72);
  run_sequence (6, 0, c, 72);
  run_sequence (5, 1, d, 72);
  g_assert_cmpmem (a, sizeof a, b, sizeof b);
  g_assert_true (memcmp (a, c, sizeof a) != 0);
  g_assert_true (memcmp (a, d, sizeof a) != 0);
}

static void
test_bounds (void)
{
  SimclrReplay *r = make (8, SIMCLR_REPLAY_RING, 1);
  SimclrReplayStats before, after;
  SimclrError err = { 0 };
  uint8_t dst[4 * VB];
  int slots[9] = { 0 };
  const uint8_t *nullviews[2] = { dst, NULL };

  /* Empty: nothing to draw. */
  g_assert_cmpint (simclr_replay_sample (r, 0, 1, slots, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  for (uint64_t id = 0; id < 5; id++)
    add (r, id);
  simclr_replay_get_stats (r, &before);
  g_assert_cmpint (simclr_replay_sample (r, 0, 6, slots, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "6 distinct samples from 5"));
  g_assert_cmpint (simclr_replay_sample (r, 0, 0, slots, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  slots[0] = 5;                 /* not held */
  g_assert_cmpint (simclr_replay_gather (r, slots, 1, 0, dst, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  slots[0] = -1;
  g_assert_cmpint (simclr_replay_gather (r, slots, 1, 0, dst, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  slots[0] = 0;
  g_assert_cmpint (simclr_replay_gather (r, slots, 1, 2, dst, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_replay_add (r, nullviews, NULL, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_replay_add (r, NULL, NULL, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_null (simclr_replay_info (r, 5));
  g_assert_null (simclr_replay_info (r, -1));
  g_assert_cmpint (simclr_replay_position (r, 7), ==, -1);
  g_assert_cmpint (simclr_replay_uses (r, 7), ==, -1);
  /* Failed calls leave the counters alone. */
  simclr_replay_get_stats (r, &after);
  g_assert_cmpmem (&before, sizeof before, &after, sizeof after);

  /* clear: empty again, counters zero, memory kept. */
  simclr_replay_clear (r);
  simclr_replay_get_stats (r, &after);
  g_assert_cmpint (after.held, ==, 0);
  g_assert_cmpuint (after.seen, ==, 0);
  g_assert_cmpuint (after.bytes, ==, before.bytes);
  g_assert_cmpint (add (r, 42), ==, 0);
  g_assert_cmpint (simclr_replay_position (r, 0), ==, 0);
  simclr_replay_free (r);
  simclr_replay_free (NULL);
}

/* ---------------------------------------------------------------------------
 * Training batches: simclr_replay_draw is simclr_replay_sample + gather in
 * the batcher's layout (the element's training thread used to do this).
 */

static void
add_epoch (SimclrReplay * r, uint64_t id, uint64_t epoch, int no_pts)
{
  uint8_t a[VB], b[VB];
  const uint8_t *views[2] = { a, b };
  SimclrReplayInfo info = { 0 };
  SimclrError err = { 0 };

  memset (a, (int) ((id * 2) & 0xff), VB);
  memset (b, (int) ((id * 2 + 1) & 0xff), VB);
  info.sample_id = id;
  info.epoch = epoch;
  info.label = (int32_t) (id % 10);
  info.pts[0] = no_pts ? SIMCLR_TIMESTAMP_NONE : 5000 - id * 100;
  info.pts[1] = no_pts ? SIMCLR_TIMESTAMP_NONE : 5000 - id * 100 + 1;
  g_assert_cmpint (simclr_replay_add (r, views, &info, NULL, &err), ==,
      SIMCLR_OK);
}

static void
test_draw_batch (void)
{
  const int n = 4;
  SimclrReplay *r = make (16, SIMCLR_REPLAY_RING, 5);
  SimclrReplay *ref = make (16, SIMCLR_REPLAY_RING, 5);
  SimclrReplay *few = make (8, SIMCLR_REPLAY_RING, 5);
  SimclrReplayBatch *b, *bf;
  SimclrReplayStats s1, s2;
  SimclrError err = { 0 };
  SimclrBatch batch;
  int slots[4];
  uint8_t ref_px[4 * VB];

  /* VB = 12 bytes = 2 x 2 x 3 */
  g_assert_null (simclr_replay_batch_new (r, n, 2, 1, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_null (simclr_replay_batch_new (r, 0, 2, 3, &err));
  b = simclr_replay_batch_new (r, n, 2, 3, &err);
  g_assert_nonnull (b);
  for (uint64_t id = 0; id < 10; id++) {
    add_epoch (r, id, id % 3, 0);
    add_epoch (ref, id, id % 3, 0);
  }

  for (uint64_t draw = 0; draw < 5; draw++) {
    uint64_t max_epoch = 0, min_ts = SIMCLR_TIMESTAMP_NONE;
    g_assert_cmpint (simclr_replay_draw (r, b, draw, &batch, &err), ==,
        SIMCLR_OK);
    g_assert_cmpint (simclr_replay_sample (ref, draw, n, slots, &err), ==,
        SIMCLR_OK);
    g_assert_cmpint (batch.rows, ==, 2 * n);
    for (int v = 0; v < 2; v++) {
      g_assert_cmpint (simclr_replay_gather (ref, slots, n, v, ref_px, &err),
          ==, SIMCLR_OK);
      for (int j = 0; j < n; j++) {
        const SimclrReplayInfo *info = simclr_replay_info (ref, slots[j]);
        const SimclrBatchRow *row = &batch.row[v * n + j];
        const SimclrFrame *f = &batch.frames[v * n + j];
        g_assert_cmpuint (row->sample_id, ==, info->sample_id);
        g_assert_cmpuint (row->epoch, ==, info->epoch);
        g_assert_cmpint (row->view, ==, v);
        g_assert_cmpint (row->label, ==, info->label);
        g_assert_cmpuint (row->timestamp, ==, info->pts[v]);
        g_assert_cmpint (f->stride, ==, 2 * 3);
        g_assert_cmpmem (f->data, VB, ref_px + j * VB, VB);
        g_assert_cmpint (f->data[0], ==, (int) ((info->sample_id * 2 + v)
                & 0xff));
        max_epoch = MAX (max_epoch, info->epoch);
        min_ts = MIN (min_ts, info->pts[v]);
      }
    }
    g_assert_cmpuint (batch.max_epoch, ==, max_epoch);
    g_assert_cmpuint (batch.min_timestamp, ==, min_ts);
  }
  /* The draws counted as simclr_replay_sample's do. */
  simclr_replay_get_stats (r, &s1);
  simclr_replay_get_stats (ref, &s2);
  g_assert_cmpmem (&s1, sizeof s1, &s2, sizeof s2);

  /* Too few samples: an error that touches nothing; no pts: NONE. */
  bf = simclr_replay_batch_new (few, n, 2, 3, &err);
  g_assert_nonnull (bf);
  for (uint64_t id = 0; id < 3; id++)
    add_epoch (few, id, 0, 1);
  simclr_replay_get_stats (few, &s1);
  g_assert_cmpint (simclr_replay_draw (few, bf, 0, &batch, &err), !=,
      SIMCLR_OK);
  simclr_replay_get_stats (few, &s2);
  g_assert_cmpmem (&s1, sizeof s1, &s2, sizeof s2);
  add_epoch (few, 3, 0, 1);
  g_assert_cmpint (simclr_replay_draw (few, bf, 0, &batch, &err), ==,
      SIMCLR_OK);
  g_assert_cmpuint (batch.min_timestamp, ==, SIMCLR_TIMESTAMP_NONE);
  /* A batch fits any buffer of the same views and view size. */
  g_assert_cmpint (simclr_replay_draw (few, b, 0, &batch, &err), ==,
      SIMCLR_OK);
  simclr_replay_batch_free (bf);
  simclr_replay_batch_free (b);
  simclr_replay_batch_free (NULL);
  simclr_replay_free (r);
  simclr_replay_free (ref);
  simclr_replay_free (few);
}

/* simclr_replay_add_sample: a batcher's sample of strided frames is stored
 * packed with its rows' info, as simclr_replay_add of packed copies. */
static void
test_add_sample (void)
{
  /* VB = 12 = 2 rows of 6 bytes; the frames have rows 8 bytes apart */
  uint8_t px[2][16], packed[2][VB], got[VB];
  SimclrFrame frames[2];
  SimclrBatchRow rows[2] = { 0 };
  SimclrBatch sample = { 0 };
  SimclrReplay *r = make (4, SIMCLR_REPLAY_RING, 1);
  SimclrReplay *ref = make (4, SIMCLR_REPLAY_RING, 1);
  const uint8_t *views[2] = { packed[0], packed[1] };
  const SimclrReplayInfo *info;
  SimclrReplayInfo want = { 0 };
  SimclrError err = { 0 };
  int slot = -5, slots[1] = { 0 };

  for (int v = 0; v < 2; v++) {
    for (int i = 0; i < 16; i++)
      px[v][i] = (uint8_t) (v * 100 + i);
    for (int y = 0; y < 2; y++)
      memcpy (packed[v] + y * 6, px[v] + y * 8, 6);
    frames[v].data = px[v];
    frames[v].stride = 8;
    rows[v].sample_id = 77;
    rows[v].epoch = 3;
    rows[v].view = v;
    rows[v].label = 5;
    rows[v].timestamp = 1000 + v;
  }
  sample.rows = 2;
  sample.frames = frames;
  sample.row = rows;
  g_assert_cmpint (simclr_replay_add_sample (r, &sample, 6, &slot, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (slot, ==, 0);
  want.sample_id = 77;
  want.epoch = 3;
  want.label = 5;
  want.pts[0] = 1000;
  want.pts[1] = 1001;
  g_assert_cmpint (simclr_replay_add (ref, views, &want, NULL, &err), ==,
      SIMCLR_OK);
  info = simclr_replay_info (r, 0);
  g_assert_cmpuint (info->sample_id, ==, simclr_replay_info (ref, 0)->sample_id);
  g_assert_cmpuint (info->epoch, ==, simclr_replay_info (ref, 0)->epoch);
  g_assert_cmpint (info->label, ==, simclr_replay_info (ref, 0)->label);
  g_assert_cmpmem (info->pts, sizeof info->pts, simclr_replay_info (ref,
          0)->pts, sizeof info->pts);
  for (int v = 0; v < 2; v++) {
    g_assert_cmpint (simclr_replay_gather (r, slots, 1, v, got, &err), ==,
        SIMCLR_OK);
    g_assert_cmpmem (got, VB, packed[v], VB);
  }
  /* Packed frames (stride = row) too. */
  frames[0].data = packed[0];
  frames[0].stride = 6;
  frames[1].data = packed[1];
  frames[1].stride = 6;
  g_assert_cmpint (simclr_replay_add_sample (r, &sample, 6, &slot, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (slot, ==, 1);
  slots[0] = 1;
  g_assert_cmpint (simclr_replay_gather (r, slots, 1, 1, got, &err), ==,
      SIMCLR_OK);
  g_assert_cmpmem (got, VB, packed[1], VB);

  /* Bad input: wrong view count, rows that do not divide, short stride,
   * no frames, a NULL view: an error naming the fault, nothing stored. */
  sample.rows = 1;
  g_assert_cmpint (simclr_replay_add_sample (r, &sample, 6, &slot, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (slot, ==, -1);
  g_assert_cmpstr (err.message, ==,
      "replay add: a sample of 1 views, the buffer holds 2");
  sample.rows = 2;
  g_assert_cmpint (simclr_replay_add_sample (r, &sample, 5, &slot, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (err.message, ==,
      "replay add: rows of 5 bytes do not divide views of 12 bytes");
  g_assert_cmpint (simclr_replay_add_sample (r, &sample, 0, &slot, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  frames[1].stride = 4;
  g_assert_cmpint (simclr_replay_add_sample (r, &sample, 6, &slot, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (err.message, ==,
      "replay add: view 1 has stride 4, below a row of 6 bytes");
  frames[1].stride = 6;
  frames[1].data = NULL;
  g_assert_cmpint (simclr_replay_add_sample (r, &sample, 6, &slot, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (err.message, ==, "replay add: view 1 of 2 is NULL");
  sample.frames = NULL;
  g_assert_cmpint (simclr_replay_add_sample (r, &sample, 6, &slot, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_replay_add_sample (NULL, &sample, 6, &slot, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_replay_held (r), ==, 2);
  {
    SimclrReplayStats st;       /* a refused sample is not counted as seen */
    simclr_replay_get_stats (r, &st);
    g_assert_cmpuint (st.seen, ==, 2);
  }
  simclr_replay_free (r);
  simclr_replay_free (ref);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/replay/config", test_config);
  g_test_add_func ("/replay/memory-accounting", test_memory_accounting);
  g_test_add_func ("/replay/ring-eviction", test_ring_eviction);
  g_test_add_func ("/replay/reservoir-distribution",
      test_reservoir_distribution);
  g_test_add_func ("/replay/sample-uniform", test_sample_uniform);
  g_test_add_func ("/replay/sample-pairs", test_sample_pairs);
  g_test_add_func ("/replay/determinism", test_determinism);
  g_test_add_func ("/replay/bounds", test_bounds);
  g_test_add_func ("/replay/draw-batch", test_draw_batch);
  g_test_add_func ("/replay/add-sample", test_add_sample);
  return g_test_run ();
}
