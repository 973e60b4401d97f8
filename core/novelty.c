/* novelty.c: the novelty memory of simclrnoveltyfilter (novelty.h): a
 * window of kept unit embeddings, exact best-cosine scores, a fixed or
 * quantile threshold. */
#include "simclr/novelty.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "simclr/replay.h"          /* simclr_replay_memory_available */

/* Rows allocated at start; the window doubles from there up to memory. */
#define NOVELTY_FIRST_ROWS 256

struct SimclrNovelty {
  SimclrNoveltyConfig cfg;
  float *window;                /* (capacity, dim) unit rows, ring */
  int capacity;                 /* rows allocated: grows to memory as frames
                                 * are kept, so a large memory costs only what
                                 * the stream fills */
  int filled, next;             /* rows in use, next slot to write */
  float *unit, *sims;           /* (dim), (memory) scratch */
  double tau;                   /* keep-ratio threshold */
  int64_t offered_scored;       /* frames scored against a memory */
  int64_t offered, kept;
  double last_threshold;
};

void
simclr_novelty_config_default (SimclrNoveltyConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->memory = 100;
  cfg->threshold = 0.9;
  cfg->keep_ratio = 0.0;
  cfg->ratio_rate = 0.01;
}

SimclrStatus
simclr_novelty_config_validate (const SimclrNoveltyConfig *cfg,
    SimclrError *err)
{
  if (cfg->dim < 1 || cfg->dim > 65536)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "novelty: dim %d is outside [1, 65536]", cfg->dim);
  if (cfg->memory < 1 || cfg->memory > 1000000)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "novelty: memory %d is outside [1, 1000000]", cfg->memory);
  if (!(cfg->threshold >= -1.0 && cfg->threshold <= 1.0))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "novelty: threshold %g is outside [-1, 1] (a cosine similarity)",
        cfg->threshold);
  if (!(cfg->keep_ratio >= 0.0 && cfg->keep_ratio <= 1.0))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "novelty: keep_ratio %g is outside [0, 1] (0: use the threshold)",
        cfg->keep_ratio);
  if (!(cfg->ratio_rate > 0.0 && cfg->ratio_rate <= 1.0))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "novelty: ratio_rate %g is outside (0, 1]", cfg->ratio_rate);
  return SIMCLR_OK;
}

void
simclr_novelty_free (SimclrNovelty *n)
{
  if (!n)
    return;
  free (n->window);
  free (n->unit);
  free (n->sims);
  free (n);
}

SimclrNovelty *
simclr_novelty_new (const SimclrNoveltyConfig *cfg, SimclrError *err)
{
  SimclrNovelty *n;
  size_t full_bytes, avail;
  if (simclr_novelty_config_validate (cfg, err) != SIMCLR_OK)
    return NULL;
  /* The window may grow to memory x dim floats: refuse at start what the
   * system could never hold rather than fail (or swap) hours into a run. */
  full_bytes = (size_t) cfg->memory * cfg->dim * sizeof (float);
  avail = simclr_replay_memory_available ();
  if (avail > 0 && full_bytes > avail) {
    simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "novelty.memory", NULL, "novelty: memory %d x %d dimensions needs "
        "%.1f MiB, more than the %.1f MiB the system has available",
        cfg->memory, cfg->dim, full_bytes / 1048576.0, avail / 1048576.0);
    return NULL;
  }
  n = calloc (1, sizeof *n);
  if (n) {
    n->cfg = *cfg;
    n->capacity = cfg->memory < NOVELTY_FIRST_ROWS ? cfg->memory :
        NOVELTY_FIRST_ROWS;
    n->window = malloc ((size_t) n->capacity * cfg->dim * sizeof (float));
    n->unit = malloc ((size_t) cfg->dim * sizeof (float));
    n->sims = malloc ((size_t) n->capacity * sizeof (float));
    n->tau = 1.0;
    n->last_threshold = cfg->keep_ratio > 0.0 ? 1.0 : cfg->threshold;
  }
  if (!n || !n->window || !n->unit || !n->sims) {
    simclr_novelty_free (n);
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "novelty: out of memory for %d x %d", NOVELTY_FIRST_ROWS, cfg->dim);
    return NULL;
  }
  return n;
}

/* Room for one more kept row: until the ring first wraps, next == filled,
 * so the window only has to grow while filled < memory. */
static SimclrStatus
novelty_make_room (SimclrNovelty *n, SimclrError *err)
{
  int cap;
  float *w, *s;
  if (n->filled < n->capacity || n->capacity >= n->cfg.memory)
    return SIMCLR_OK;
  cap = n->capacity > n->cfg.memory / 2 ? n->cfg.memory : 2 * n->capacity;
  w = realloc (n->window, (size_t) cap * n->cfg.dim * sizeof (float));
  if (w)
    n->window = w;
  s = w ? realloc (n->sims, (size_t) cap * sizeof (float)) : NULL;
  if (s)
    n->sims = s;
  if (!w || !s)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "novelty: out of memory growing the window to %d x %d rows "
        "(memory %d)", cap, n->cfg.dim, n->cfg.memory);
  n->capacity = cap;
  return SIMCLR_OK;
}

SimclrStatus
simclr_novelty_offer (SimclrNovelty *n, const float *embedding, double *score,
    int *keep, SimclrError *err)
{
  const int d = n->cfg.dim;
  double ss = 0.0, best = -1.0;
  int k;

  for (int j = 0; j < d; j++) {
    if (!isfinite (embedding[j]))
      return simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
          "novelty: the embedding of frame %lld has a non-finite value",
          (long long) n->offered);
    ss += (double) embedding[j] * embedding[j];
  }
  for (int j = 0; j < d; j++)
    n->unit[j] = ss > 0.0 ? (float) (embedding[j] / sqrt (ss)) : 0.0f;

  if (n->filled > 0) {
    /* sims (filled) = window (filled, d) . unit (d) */
    cblas_sgemv (CblasRowMajor, CblasNoTrans, n->filled, d, 1.0f, n->window,
        d, n->unit, 1, 0.0f, n->sims, 1);
    best = n->sims[0];
    for (int i = 1; i < n->filled; i++)
      if (n->sims[i] > best)
        best = n->sims[i];
  }

  if (n->cfg.keep_ratio > 0.0) {
    /* Robbins-Monro quantile tracking: the threshold falls by rate x (1 - r)
     * after a kept frame and rises by rate x r after a dropped one, so it
     * settles where a fraction r of the scores is at or below it. */
    /* The threshold starts at the first score there is (the second
     * frame's), so it starts near where it settles. */
    if (n->filled > 0 && n->offered_scored++ == 0)
      n->tau = best;
    n->last_threshold = n->tau;
    k = n->filled == 0 || best <= n->tau;
    n->tau += n->cfg.ratio_rate * (n->cfg.keep_ratio - (k ? 1.0 : 0.0));
  } else {
    n->last_threshold = n->cfg.threshold;
    k = n->filled == 0 || best < n->cfg.threshold;
  }

  if (k) {
    SimclrStatus st = novelty_make_room (n, err);
    if (st != SIMCLR_OK)
      return st;
    memcpy (n->window + (size_t) n->next * d, n->unit,
        (size_t) d * sizeof (float));
    n->next = (n->next + 1) % n->cfg.memory;
    if (n->filled < n->cfg.memory)
      n->filled++;
    n->kept++;
  }
  n->offered++;
  if (score)
    *score = best;
  if (keep)
    *keep = k;
  return SIMCLR_OK;
}

int64_t
simclr_novelty_offered (const SimclrNovelty *n)
{
  return n->offered;
}

int64_t
simclr_novelty_kept (const SimclrNovelty *n)
{
  return n->kept;
}

double
simclr_novelty_last_threshold (const SimclrNovelty *n)
{
  return n->last_threshold;
}
