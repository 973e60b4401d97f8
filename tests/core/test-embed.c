/* test-embed.c: the embedder (flip averaging makes h exactly
 * mirror-invariant; model rows equal a direct forward; the baselines'
 * closed forms; channel conversion; errors) and the novelty memory
 * (decisions against hand-computed cosines, the window forgets, keep-ratio,
 * bad settings). */
#include <math.h>
#include <string.h>

#include <glib.h>

#include "simclr/simclr.h"

static SimclrModel *
small_model (int size, int channels)
{
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  SimclrModel *m;
  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.image_size = size;
  cfg.in_channels = channels;
  cfg.max_batch = 8;
  m = simclr_model_new (&cfg, 7, &err);
  g_assert_nonnull (m);
  return m;
}

/* A w x h RGB image of seeded noise, and its mirror. */
static void
noise_image (uint8_t *img, uint8_t *mirror, int w, int h, uint64_t seed)
{
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) {
        uint8_t v = (uint8_t) simclr_rng_u64 (seed, y * w + x, c);
        img[(y * w + x) * 3 + c] = v;
        if (mirror)
          mirror[(y * w + (w - 1 - x)) * 3 + c] = v;
      }
}

static void
test_flip_average (void)
{
  SimclrModel *m = small_model (16, 3);
  SimclrEmbedConfig cfg;
  SimclrError err = { 0 };
  SimclrEmbedder *e;
  uint8_t img[16 * 16 * 3], mir[16 * 16 * 3];
  float out[2 * 128];
  int d;

  simclr_embed_config_default (&cfg);
  cfg.flip_average = 1;
  cfg.max_batch = 2;
  e = simclr_embedder_new (&cfg, m, &err);
  g_assert_nonnull (e);
  d = simclr_embedder_dim (e);
  g_assert_cmpint (d, ==, simclr_model_feature_dim (m));
  noise_image (img, mir, 16, 16, 3);
  g_assert_cmpint (simclr_embedder_push (e, img, 16, 16, 48, 3, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_push (e, mir, 16, 16, 48, 3, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_push (e, img, 16, 16, 48, 3, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);   /* the batch is full */
  g_assert_cmpint (simclr_embedder_flush (e, out, &err), ==, SIMCLR_OK);
  /* The mean of (x, mirror x) and of (mirror x, x): the same two rows of
   * one batched forward, so equal up to the order of one addition. */
  for (int j = 0; j < d; j++)
    g_assert_cmpfloat_with_epsilon (out[j], out[d + j], 1e-6);
  simclr_embedder_free (e);
  simclr_model_free (m);
}

/* A 16x16 image through the embedder equals a direct forward of pixel/255
 * (resizing 16 to 16 is the identity); z likewise; a larger image is
 * resized. */
static void
test_model_rows (void)
{
  SimclrModel *m = small_model (16, 3);
  SimclrEmbedConfig cfg;
  SimclrError err = { 0 };
  uint8_t img[16 * 16 * 3], big[40 * 24 * 3];
  float in[16 * 16 * 3], h_ref[128], z_ref[128], out[128];

  noise_image (img, NULL, 16, 16, 4);
  noise_image (big, NULL, 40, 24, 5);
  for (int i = 0; i < 16 * 16 * 3; i++)
    in[i] = img[i] / 255.0f;
  g_assert_cmpint (simclr_model_forward (m, in, 1, 0, h_ref, z_ref, &err), ==,
      SIMCLR_OK);
  for (int kind = SIMCLR_EMBED_H; kind <= SIMCLR_EMBED_Z; kind++) {
    SimclrEmbedder *e;
    const float *ref = kind == SIMCLR_EMBED_H ? h_ref : z_ref;
    simclr_embed_config_default (&cfg);
    cfg.kind = kind;
    cfg.max_batch = 1;
    e = simclr_embedder_new (&cfg, m, &err);
    g_assert_nonnull (e);
    g_assert_cmpint (simclr_embedder_push (e, img, 16, 16, 48, 3, &err), ==,
        SIMCLR_OK);
    g_assert_cmpint (simclr_embedder_flush (e, out, &err), ==, SIMCLR_OK);
    for (int j = 0; j < simclr_embedder_dim (e); j++)
      g_assert_cmpfloat_with_epsilon (out[j], ref[j], 1e-5);
    /* Any size and a padded stride are accepted. */
    g_assert_cmpint (simclr_embedder_push (e, big, 40, 23, 40 * 3, 3, &err),
        ==, SIMCLR_OK);
    g_assert_cmpint (simclr_embedder_flush (e, out, &err), ==, SIMCLR_OK);
    g_assert_true (isfinite (out[0]));
    simclr_embedder_free (e);
  }
  simclr_model_free (m);
}

/* RGB into a 1-channel model is converted to luma; GRAY into a 3-channel
 * model is replicated: same rows as converting by hand. */
static void
test_channels (void)
{
  SimclrModel *m1 = small_model (8, 1), *m3 = small_model (8, 3);
  SimclrEmbedConfig cfg;
  SimclrError err = { 0 };
  SimclrEmbedder *e1, *e3;
  uint8_t gray[64], rgb[64 * 3], gray3[64 * 3];
  float a[128], b[128];

  for (int i = 0; i < 64; i++) {
    gray[i] = (uint8_t) (i * 4);
    rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
    gray3[3 * i] = gray3[3 * i + 1] = gray3[3 * i + 2] = gray[i];
  }
  simclr_embed_config_default (&cfg);
  cfg.max_batch = 4;
  e1 = simclr_embedder_new (&cfg, m1, &err);
  e3 = simclr_embedder_new (&cfg, m3, &err);
  g_assert_cmpint (simclr_embedder_push (e1, rgb, 8, 8, 24, 3, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_flush (e1, a, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_push (e1, gray, 8, 8, 8, 1, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_flush (e1, b, &err), ==, SIMCLR_OK);
  for (int j = 0; j < simclr_embedder_dim (e1); j++)
    g_assert_cmpfloat_with_epsilon (a[j], b[j], 1e-6);
  g_assert_cmpint (simclr_embedder_push (e3, gray, 8, 8, 8, 1, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_flush (e3, a, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_push (e3, gray3, 8, 8, 24, 3, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_flush (e3, b, &err), ==, SIMCLR_OK);
  for (int j = 0; j < simclr_embedder_dim (e3); j++)
    g_assert_cmpfloat_with_epsilon (a[j], b[j], 1e-6);
  simclr_embedder_free (e1);
  simclr_embedder_free (e3);
  simclr_model_free (m1);
  simclr_model_free (m3);
}

static void
test_baselines (void)
{
  SimclrEmbedConfig cfg;
  SimclrError err = { 0 };
  SimclrEmbedder *e;
  uint8_t img[8 * 8 * 3];
  float out[8 * 8 * 3];
  double sum = 0;

  /* Left half 0, right half 255. */
  for (int y = 0; y < 8; y++)
    for (int x = 0; x < 8; x++)
      for (int c = 0; c < 3; c++)
        img[(y * 8 + x) * 3 + c] = x < 4 ? 0 : 255;
  simclr_embed_config_default (&cfg);
  cfg.kind = SIMCLR_EMBED_AHASH;
  e = simclr_embedder_new (&cfg, NULL, &err);
  g_assert_nonnull (e);
  g_assert_cmpint (simclr_embedder_dim (e), ==, 64);
  g_assert_cmpint (simclr_embedder_push (e, img, 8, 8, 24, 3, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_flush (e, out, &err), ==, SIMCLR_OK);
  for (int i = 0; i < 64; i++)
    g_assert_cmpfloat (out[i], ==, (i % 8) < 4 ? -1.0f : 1.0f);
  simclr_embedder_free (e);

  /* Raw at 8x8x3: pixel/255 minus the mean (0.5): -0.5 and +0.5; with flip
   * averaging the halves cancel to 0. */
  cfg.kind = SIMCLR_EMBED_RAW;
  cfg.size = 8;
  e = simclr_embedder_new (&cfg, NULL, &err);
  g_assert_cmpint (simclr_embedder_dim (e), ==, 192);
  g_assert_cmpint (simclr_embedder_push (e, img, 8, 8, 24, 3, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_flush (e, out, &err), ==, SIMCLR_OK);
  for (int i = 0; i < 192; i++) {
    g_assert_cmpfloat_with_epsilon (out[i], ((i / 3) % 8) < 4 ? -0.5 : 0.5,
        1e-6);
    sum += out[i];
  }
  g_assert_cmpfloat_with_epsilon (sum, 0.0, 1e-4);
  simclr_embedder_free (e);
  cfg.flip_average = 1;
  e = simclr_embedder_new (&cfg, NULL, &err);
  g_assert_cmpint (simclr_embedder_push (e, img, 8, 8, 24, 3, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_embedder_flush (e, out, &err), ==, SIMCLR_OK);
  for (int i = 0; i < 192; i++)
    g_assert_cmpfloat_with_epsilon (out[i], 0.0, 1e-6);
  simclr_embedder_free (e);
}

static void
test_embed_errors (void)
{
  SimclrEmbedConfig cfg;
  SimclrError err = { 0 };
  SimclrModel *m = small_model (8, 3);
  uint8_t img[12] = { 0 };
  SimclrEmbedder *e;

  simclr_embed_config_default (&cfg);
  cfg.max_batch = 4;
  g_assert_null (simclr_embedder_new (&cfg, NULL, &err));
  g_assert_nonnull (strstr (err.message, "needs a model"));
  cfg.max_batch = 5;
  cfg.flip_average = 1;          /* 10 rows > the model's 8 */
  g_assert_null (simclr_embedder_new (&cfg, m, &err));
  g_assert_nonnull (strstr (err.message, "max_batch"));
  cfg.max_batch = 1;
  e = simclr_embedder_new (&cfg, m, &err);
  g_assert_cmpint (simclr_embedder_push (e, img, 2, 2, 6, 2, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_embedder_push (e, img, 2, 2, 3, 3, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_embedder_pending (e), ==, 0);
  simclr_embedder_free (e);
  simclr_model_free (m);
  g_assert_cmpint (simclr_embed_kind_from_string ("ahash"), ==,
      SIMCLR_EMBED_AHASH);
  g_assert_cmpint (simclr_embed_kind_from_string ("nope"), ==, -1);
}

/* ---- novelty ------------------------------------------------------------ */

static void
test_novelty_threshold (void)
{
  SimclrNoveltyConfig cfg;
  SimclrError err = { 0 };
  SimclrNovelty *n;
  /* e0 and e1 orthogonal; a: cos(a, e0) = 0.8, cos(a, e1) = 0.6. */
  const float e0[2] = { 1, 0 }, e1[2] = { 0, 3 }, a[2] = { 4, 3 };
  double score;
  int keep;

  simclr_novelty_config_default (&cfg);
  cfg.dim = 2;
  cfg.memory = 1;
  cfg.threshold = 0.7;
  n = simclr_novelty_new (&cfg, &err);
  g_assert_nonnull (n);
  g_assert_cmpint (simclr_novelty_offer (n, e0, &score, &keep, &err), ==,
      SIMCLR_OK);
  g_assert_true (keep);
  g_assert_cmpfloat (score, ==, -1.0);
  simclr_novelty_offer (n, e0, &score, &keep, &err);     /* a repeat */
  g_assert_false (keep);
  g_assert_cmpfloat_with_epsilon (score, 1.0, 1e-6);
  simclr_novelty_offer (n, a, &score, &keep, &err);      /* 0.8 >= 0.7 */
  g_assert_false (keep);
  g_assert_cmpfloat_with_epsilon (score, 0.8, 1e-6);
  simclr_novelty_offer (n, e1, &score, &keep, &err);     /* 0 < 0.7 */
  g_assert_true (keep);
  g_assert_cmpfloat_with_epsilon (score, 0.0, 1e-6);
  /* Memory 1: e0 is forgotten, so it is new again. */
  simclr_novelty_offer (n, e0, &score, &keep, &err);
  g_assert_true (keep);
  g_assert_cmpint (simclr_novelty_offered (n), ==, 5);
  g_assert_cmpint (simclr_novelty_kept (n), ==, 3);
  simclr_novelty_free (n);

  /* Memory 2 remembers both: a scores max(0.8, 0.6). */
  cfg.memory = 2;
  cfg.threshold = 0.85;
  n = simclr_novelty_new (&cfg, &err);
  simclr_novelty_offer (n, e0, &score, &keep, &err);
  simclr_novelty_offer (n, e1, &score, &keep, &err);
  simclr_novelty_offer (n, a, &score, &keep, &err);
  g_assert_cmpfloat_with_epsilon (score, 0.8, 1e-6);
  g_assert_true (keep);
  simclr_novelty_free (n);
}

/* The window grows from a few hundred rows to memory as frames are kept
 * (a large memory costs only what the stream fills): every kept row is
 * still found after the growths, the ring forgets the oldest once full, and
 * scores match a double brute force. A memory the system cannot hold is
 * refused at start naming the field (before: memory 10^6 of raw 32x32x3
 * rows allocated 12 GB at start, found by the harness fuzz). */
static void
test_novelty_growth (void)
{
  enum { D = 8, MEM = 1000, TOTAL = 1200 };
  SimclrNoveltyConfig cfg;
  SimclrError err = { 0 };
  SimclrNovelty *n;
  static float x[TOTAL + 1][D];
  double score, best = -1.0;
  int keep;

  for (int i = 0; i <= TOTAL; i++)
    for (int j = 0; j < D; j++)
      x[i][j] = (float) simclr_rng_normal (9, i, j);
  simclr_novelty_config_default (&cfg);
  cfg.dim = D;
  cfg.memory = MEM;
  cfg.threshold = 0.999;
  n = simclr_novelty_new (&cfg, &err);
  g_assert_nonnull (n);
  for (int i = 0; i < TOTAL; i++) {
    g_assert_cmpint (simclr_novelty_offer (n, x[i], &score, &keep, &err), ==,
        SIMCLR_OK);
    g_assert_true (keep);
  }
  /* x[TOTAL] is new: its score is its best cosine among the last MEM. */
  for (int i = TOTAL - MEM; i < TOTAL; i++) {
    double dot = 0, a = 0, b = 0;
    for (int j = 0; j < D; j++) {
      dot += (double) x[i][j] * x[TOTAL][j];
      a += (double) x[i][j] * x[i][j];
      b += (double) x[TOTAL][j] * x[TOTAL][j];
    }
    if (dot / sqrt (a * b) > best)
      best = dot / sqrt (a * b);
  }
  simclr_novelty_offer (n, x[TOTAL], &score, &keep, &err);
  g_assert_cmpfloat_with_epsilon (score, best, 1e-5);
  /* Row 500 (kept after two growths) is remembered; row 100 was forgotten
   * when the ring wrapped. */
  simclr_novelty_offer (n, x[500], &score, &keep, &err);
  g_assert_cmpfloat_with_epsilon (score, 1.0, 1e-5);
  g_assert_false (keep);
  simclr_novelty_offer (n, x[100], &score, &keep, &err);
  g_assert_cmpfloat (score, <, 0.999);
  g_assert_true (keep);
  simclr_novelty_free (n);

  /* 10^6 rows of 65536 floats (256 GB): refused, naming the field. */
  if (simclr_replay_memory_available () > 0) {
    cfg.memory = 1000000;
    cfg.dim = 65536;
    simclr_error_clear (&err);
    g_assert_null (simclr_novelty_new (&cfg, &err));
    g_assert_cmpstr (err.field, ==, "novelty.memory");
    g_assert_nonnull (strstr (err.message, "available"));
  }
}

/* keep-ratio on i.i.d. scores and on a drifting "video" (a random walk of
 * embeddings, the memory filling up): the fraction kept follows the ratio,
 * within the documented bound r + (t_0 - t_T) / (rate T). */
static void
test_novelty_keep_ratio (void)
{
  for (int walk = 0; walk <= 1; walk++) {
    SimclrNoveltyConfig cfg;
    SimclrError err = { 0 };
    SimclrNovelty *n;
    float v[16] = { 0 };
    int kept = 0, keep;
    double score;
    const int total = 3000;

    simclr_novelty_config_default (&cfg);
    cfg.dim = 16;
    cfg.memory = walk ? 100 : 1;
    cfg.keep_ratio = 0.1;
    n = simclr_novelty_new (&cfg, &err);
    for (int i = 0; i < total; i++) {
      for (int j = 0; j < 16; j++)
        v[j] = walk ? v[j] + 0.05f * (float) simclr_rng_normal (2, i, j)
            : (float) simclr_rng_normal (2, i, j);
      g_assert_cmpint (simclr_novelty_offer (n, v, &score, &keep, &err), ==,
          SIMCLR_OK);
      kept += keep;
    }
    {
      double ratio = kept / (double) total;
      double bound = 2.0 / (cfg.ratio_rate * total);
      if (fabs (ratio - 0.1) > 0.02 || fabs (ratio - 0.1) > bound) {
        g_printerr ("%s: kept %.4f of the frames for keep_ratio 0.1 (bound "
            "%.4f)\n", walk ? "walk" : "iid", ratio, bound);
        g_assert_not_reached ();
      }
    }
    v[3] = NAN;
    g_assert_cmpint (simclr_novelty_offer (n, v, &score, &keep, &err), ==,
        SIMCLR_ERROR_NUMERIC);
    simclr_novelty_free (n);
  }
}

static void
test_novelty_bad_config (void)
{
  SimclrNoveltyConfig cfg;
  SimclrError err = { 0 };
  simclr_novelty_config_default (&cfg);
  cfg.dim = 4;
  cfg.threshold = 1.5;
  g_assert_null (simclr_novelty_new (&cfg, &err));
  g_assert_nonnull (strstr (err.message, "threshold 1.5"));
  cfg.threshold = NAN;
  g_assert_cmpint (simclr_novelty_config_validate (&cfg, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  cfg.threshold = 0.5;
  cfg.keep_ratio = -0.1;
  g_assert_cmpint (simclr_novelty_config_validate (&cfg, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "keep_ratio"));
  cfg.keep_ratio = 0;
  cfg.memory = 0;
  g_assert_cmpint (simclr_novelty_config_validate (&cfg, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "memory"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/embed/flip-average", test_flip_average);
  g_test_add_func ("/embed/model-rows", test_model_rows);
  g_test_add_func ("/embed/channels", test_channels);
  g_test_add_func ("/embed/baselines", test_baselines);
  g_test_add_func ("/embed/errors", test_embed_errors);
  g_test_add_func ("/novelty/threshold", test_novelty_threshold);
  g_test_add_func ("/novelty/keep-ratio", test_novelty_keep_ratio);
  g_test_add_func ("/novelty/growth", test_novelty_growth);
  g_test_add_func ("/novelty/bad-config", test_novelty_bad_config);
  return g_test_run ();
}
