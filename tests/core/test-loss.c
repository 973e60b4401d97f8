/* test-loss.c: the step's contrastive loss object (SimclrLoss) for one
 * process and for K data-parallel replicas.
 *
 * K replicas are simulated in one process: K threads, each with its own
 * SimclrLoss, and a SimclrComm whose hooks are an in-process all-gather,
 * all-reduce and broadcast over a barrier (FakeGroup below) -- the same
 * contract as the MPI hooks of mpi/simclr-mpi.c. Checked:
 *  - K replicas == the NT-Xent kernel on the gathered rows with the gathered
 *    positives map, bit for bit (the object adds no arithmetic);
 *  - K replicas == one process with all the samples, up to float rounding
 *    (rows permuted), loss and every dz row;
 *  - dz of each replica against central differences of a double-precision
 *    naive loss of the gathered layout;
 *  - closed forms (all rows identical: ln(R-1), dz 0; positives identical,
 *    others orthogonal: ln(1 + (R-2) e^(-1/t)));
 *  - the PyTorch fixture of test-ntxent split over 2 and 3 replicas;
 *  - replicas of unequal batches; a bad replica fails every replica alike;
 *  - K views per sample (the multi-positive loss): the same three checks
 *    against simclr_ntxent_forward_groups and a naive double loss;
 *  - configuration errors name their field.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "simclr/loss.h"
#include "simclr/ntxent.h"
#include "simclr/rng.h"

#include "fake-comm.h"
#include "loss-ref.h"

/* One replica's job: z (rows, D) in, result and dz out. */
typedef struct {
  FakeMember member;
  SimclrLossConfig cfg;
  const float *z;
  int rows, dim;
  SimclrLossResult res;
  float *dz;
  SimclrStatus status, back_status;
  SimclrError err;
} Job;

static gpointer
run_job (gpointer data)
{
  Job *j = data;
  SimclrComm comm;
  fake_comm (&j->member, &comm);
  SimclrLoss *loss = simclr_loss_new (&j->cfg, &comm, &j->err);
  g_assert_nonnull (loss);
  j->status = simclr_loss_forward (loss, j->z, j->rows, j->dim, &j->res,
      &j->err);
  j->back_status = j->status == SIMCLR_OK
      ? simclr_loss_backward (loss, j->dz, NULL) : SIMCLR_ERROR_INVALID_ARGUMENT;
  simclr_loss_free (loss);
  return NULL;
}

/* Runs K replicas of @views views per sample; z[q] (rows[q], D); jobs (K)
 * receive results and dz[q]. */
static void
run_replicas_views (int K, int views, const int *rows, int D, double tau,
    float *const *z, float *const *dz, Job *jobs, FakeGroup *g)
{
  GThread **threads = g_new (GThread *, K);
  fake_group_init (g, K);
  for (int q = 0; q < K; q++) {
    Job *j = &jobs[q];
    memset (j, 0, sizeof *j);
    j->member.g = g;
    j->member.rank = q;
    simclr_loss_config_default (&j->cfg);
    j->cfg.temperature = tau;
    j->cfg.views = views;
    j->z = z[q];
    j->rows = rows[q];
    j->dim = D;
    j->dz = dz[q];
    threads[q] = g_thread_new ("replica", run_job, j);
  }
  for (int q = 0; q < K; q++)
    g_thread_join (threads[q]);
  fake_group_clear (g);
  g_free (threads);
}

static void
run_replicas (int K, const int *rows, int D, double tau, float *const *z,
    float *const *dz, Job *jobs, FakeGroup *g)
{
  run_replicas_views (K, 2, rows, D, tau, z, dz, jobs, g);
}

/* ---------------------------------------------------------------------------
 * Layouts. Replica q holds n[q] samples, rows view-major. The gathered rows
 * are the replicas' blocks in order; the "one process" layout is view 0 of
 * every sample (replica by replica), then view 1.
 */
static int
gathered_row_v (const int *n, int V, int q, int v, int j)
{
  int b = 0;
  for (int r = 0; r < q; r++)
    b += V * n[r];
  return b + v * n[q] + j;
}

static int
gathered_row (const int *n, int q, int v, int j)
{
  return gathered_row_v (n, 2, q, v, j);
}

/* The sample (group) of every gathered row: replica q's sample j is
 * n[0] + .. + n[q-1] + j. */
static int *
gathered_groups (const int *n, int K, int V, int *R)
{
  int total = 0, before = 0;
  for (int q = 0; q < K; q++)
    total += V * n[q];
  int *group = g_new (int, total);
  for (int q = 0; q < K; q++) {
    for (int v = 0; v < V; v++)
      for (int j = 0; j < n[q]; j++)
        group[gathered_row_v (n, V, q, v, j)] = before + j;
    before += n[q];
  }
  *R = total;
  return group;
}

static int
single_row (const int *n, int K, int q, int v, int j)
{
  int total = 0, before = 0;
  for (int r = 0; r < K; r++) {
    total += n[r];
    if (r < q)
      before += n[r];
  }
  return v * total + before + j;
}

static int *
gathered_positives (const int *n, int K, int *R)
{
  int total = 0;
  for (int q = 0; q < K; q++)
    total += 2 * n[q];
  int *pos = g_new (int, total);
  for (int q = 0; q < K; q++)
    for (int v = 0; v < 2; v++)
      for (int j = 0; j < n[q]; j++)
        pos[gathered_row (n, q, v, j)] = gathered_row (n, q, 1 - v, j);
  *R = total;
  return pos;
}

static void
random_z (float *z, int rows, int D, uint64_t seed)
{
  for (int i = 0; i < rows * D; i++)
    z[i] = (float) simclr_rng_normal (seed, 3, i);
}

/* ---------------------------------------------------------------------------
 * Cases.
 */
typedef struct {
  const char *name;
  int K;
  int n[4];                     /* samples per replica */
  int D;
  double tau;
  int views;                    /* 0: 2 (NT-Xent) */
} SplitCase;

static const SplitCase split_cases[] = {
  {"k2-equal", 2, {4, 4}, 16, 0.5},
  {"k3-equal", 3, {3, 3, 3}, 8, 0.2},
  {"k2-unequal", 2, {2, 5}, 12, 0.1},
  {"k4-unequal", 4, {1, 3, 2, 4}, 6, 0.5},
  /* K views per sample, every other view a positive (issue 11) */
  {"k2-views3", 2, {3, 3}, 8, 0.3, 3},
  {"k3-views4-unequal", 3, {2, 1, 3}, 6, 0.2, 4},
  {"k1-views5", 1, {3}, 7, 0.5, 5},
};

/* K replicas == the kernel on the gathered rows (exactly) == one process
 * (up to rounding); FD on every replica's dz. */
static void
test_split (gconstpointer data)
{
  const SplitCase *c = data;
  const int K = c->K, D = c->D, V = c->views ? c->views : 2;
  int rows[4] = { 0 }, R, total_n = 0;
  float *z[4] = { NULL }, *dz[4] = { NULL };
  Job jobs[4];
  FakeGroup g;
  SimclrError err = { 0 };

  for (int q = 0; q < K; q++) {
    rows[q] = V * c->n[q];
    total_n += c->n[q];
    z[q] = g_new (float, rows[q] * D);
    dz[q] = g_new (float, rows[q] * D);
    random_z (z[q], rows[q], D, 100 + q);
  }
  /* V = 2: the positives map; V > 2: the sample of each row. */
  int *pos = V == 2 ? gathered_positives (c->n, K, &R)
      : gathered_groups (c->n, K, V, &R);
  g_assert_cmpint (R, ==, V * total_n);

  run_replicas_views (K, V, rows, D, c->tau, z, dz, jobs, &g);
  for (int q = 0; q < K; q++) {
    if (jobs[q].status != SIMCLR_OK)
      g_error ("replica %d: %s", q, jobs[q].err.message);
    g_assert_cmpint (jobs[q].back_status, ==, SIMCLR_OK);
    g_assert_cmpint (jobs[q].res.rows, ==, R);
    /* identical on every replica */
    g_assert_cmpfloat (jobs[q].res.loss, ==, jobs[0].res.loss);
    g_assert_cmpfloat (jobs[q].res.top1, ==, jobs[0].res.top1);
    g_assert_cmpfloat (jobs[q].res.top5, ==, jobs[0].res.top5);
  }
  /* header + (equal: z; unequal: z padded) per forward; one replica
   * gathers nothing */
  g_assert_cmpint (g.gathers, ==, K > 1 ? 2 : 0);

  /* 1. The kernel on the gathered layout: bit for bit. */
  float *all = g_new (float, R * D), *all_dz = g_new (float, R * D);
  for (int q = 0; q < K; q++)
    memcpy (all + (size_t) gathered_row_v (c->n, V, q, 0, 0) * D, z[q],
        sizeof (float) * rows[q] * D);
  SimclrNtxent *nt = simclr_ntxent_new (R + R % 2, D, &err);
  SimclrNtxentResult kr;
  if (V == 2)
    g_assert_cmpint (simclr_ntxent_forward (nt, all, R, D, (float) c->tau,
            pos, &kr, &err), ==, SIMCLR_OK);
  else
    g_assert_cmpint (simclr_ntxent_forward_groups (nt, all, R, D,
            (float) c->tau, pos, &kr, &err), ==, SIMCLR_OK);
  simclr_ntxent_backward (nt, all_dz);
  if (kr.loss != jobs[0].res.loss)
    g_error ("%s: loss %.17g, kernel %.17g", c->name, jobs[0].res.loss,
        kr.loss);
  g_assert_cmpfloat (kr.top1, ==, jobs[0].res.top1);
  g_assert_cmpfloat (kr.top5, ==, jobs[0].res.top5);
  for (int q = 0; q < K; q++)
    for (int i = 0; i < rows[q] * D; i++) {
      float want = all_dz[(size_t) gathered_row_v (c->n, V, q, 0, 0) * D + i];
      if (dz[q][i] != want)
        g_error ("%s: replica %d dz[%d] = %.9g, kernel %.9g", c->name, q, i,
            (double) dz[q][i], (double) want);
    }

  /* 2. One process with every sample: the same loss up to rounding. */
  SimclrLossConfig cfg;
  simclr_loss_config_default (&cfg);
  cfg.temperature = c->tau;
  cfg.views = V;
  SimclrLoss *one = simclr_loss_new (&cfg, NULL, &err);
  float *single = g_new (float, R * D), *single_dz = g_new (float, R * D);
  for (int q = 0; q < K; q++)
    for (int v = 0; v < V; v++)
      for (int j = 0; j < c->n[q]; j++)
        memcpy (single + (size_t) single_row (c->n, K, q, v, j) * D,
            z[q] + (size_t) (v * c->n[q] + j) * D, sizeof (float) * D);
  SimclrLossResult sr;
  g_assert_cmpint (simclr_loss_forward (one, single, R, D, &sr, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_loss_backward (one, single_dz, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (sr.rows, ==, R);
  if (fabs (sr.loss - jobs[0].res.loss) > 1e-6 * fabs (sr.loss))
    g_error ("%s: %d replicas loss %.9g, one process %.9g", c->name, K,
        jobs[0].res.loss, sr.loss);
  g_assert_cmpfloat (sr.top1, ==, jobs[0].res.top1);
  g_assert_cmpfloat (sr.top5, ==, jobs[0].res.top5);
  double dmax = 0;
  for (int i = 0; i < R * D; i++)
    dmax = fmax (dmax, fabs (single_dz[i]));
  for (int q = 0; q < K; q++)
    for (int v = 0; v < V; v++)
      for (int j = 0; j < c->n[q]; j++)
        for (int d = 0; d < D; d++) {
          float a = dz[q][(v * c->n[q] + j) * D + d];
          float b = single_dz[(size_t) single_row (c->n, K, q, v, j) * D + d];
          if (fabs (a - b) > 1e-5 * dmax)
            g_error ("%s: replica %d row (%d,%d) dz[%d] = %.9g, one process "
                "%.9g", c->name, q, v, j, d, (double) a, (double) b);
        }

  /* 3. Central differences of the double naive loss of the gathered
   * layout, at up to 40 probes spread over the replicas. */
  double *zd = g_new (double, R * D);
  for (int i = 0; i < R * D; i++)
    zd[i] = all[i];
  const double h = 1e-5;
  int probes = 0;
  for (int k = 0; k < R * D && probes < 40; k += 1 + (R * D) / 40, probes++) {
    double keep = zd[k], up, down, fd;
    zd[k] = keep + h;
    up = V == 2 ? loss_ref_ntxent (zd, R, D, c->tau, pos, NULL, NULL, 0)
        : loss_ref_ntxent (zd, R, D, c->tau, NULL, pos, NULL, 0);
    zd[k] = keep - h;
    down = V == 2 ? loss_ref_ntxent (zd, R, D, c->tau, pos, NULL, NULL, 0)
        : loss_ref_ntxent (zd, R, D, c->tau, NULL, pos, NULL, 0);
    zd[k] = keep;
    fd = (up - down) / (2 * h);
    /* which replica holds gathered element k */
    int row = k / D, q = 0, b = 0;
    while (row >= b + rows[q]) {
      b += rows[q];
      q++;
    }
    double got = dz[q][(row - b) * D + k % D];
    if (fabs (got - fd) > 1e-4 * fmax (dmax, 1e-3))
      g_error ("%s: replica %d dz of gathered element %d = %.9g, central "
          "difference %.9g", c->name, q, k, got, fd);
  }
  g_assert_cmpint (probes, >=, 20);

  simclr_loss_free (one);
  simclr_ntxent_free (nt);
  g_free (zd);
  g_free (single);
  g_free (single_dz);
  g_free (all);
  g_free (all_dz);
  g_free (pos);
  for (int q = 0; q < K; q++) {
    g_free (z[q]);
    g_free (dz[q]);
  }
}

/* All rows identical: every similarity is 1, loss ln(R-1), dz 0; positives
 * identical and every other pair orthogonal: ln(1 + (R-2) e^(-1/t)). Over 2
 * replicas of 3 samples each (R = 12). */
static void
test_closed_forms (void)
{
  const int K = 2, n = 3, D = 16, R = 2 * n * K;
  const double tau = 0.5;
  int rows[2] = { 2 * n, 2 * n };
  float *z[2], *dz[2];
  Job jobs[2];
  FakeGroup g;

  for (int q = 0; q < K; q++) {
    z[q] = g_new (float, 2 * n * D);
    dz[q] = g_new (float, 2 * n * D);
    for (int i = 0; i < 2 * n * D; i++)
      z[q][i] = (float) (1 + (i % D));
  }
  run_replicas (K, rows, D, tau, z, dz, jobs, &g);
  for (int q = 0; q < K; q++) {
    g_assert_cmpint (jobs[q].status, ==, SIMCLR_OK);
    g_assert_cmpfloat_with_epsilon (jobs[q].res.loss, log (R - 1.0), 1e-6);
    for (int i = 0; i < 2 * n * D; i++)
      g_assert_cmpfloat_with_epsilon (dz[q][i], 0.0, 1e-6);
  }

  /* sample s of replica q: basis vector e_{q n + s} for both views */
  for (int q = 0; q < K; q++)
    for (int v = 0; v < 2; v++)
      for (int j = 0; j < n; j++)
        for (int d = 0; d < D; d++)
          z[q][(v * n + j) * D + d] = d == q * n + j ? 2.0f : 0.0f;
  run_replicas (K, rows, D, tau, z, dz, jobs, &g);
  double want = log (1 + (R - 2) * exp (-1 / tau));
  for (int q = 0; q < K; q++) {
    g_assert_cmpint (jobs[q].status, ==, SIMCLR_OK);
    if (fabs (jobs[q].res.loss - want) > 1e-6)
      g_error ("orthogonal: replica %d loss %.9g, closed form %.9g", q,
          jobs[q].res.loss, want);
    g_assert_cmpfloat (jobs[q].res.top1, ==, 1.0);
  }
  for (int q = 0; q < K; q++) {
    g_free (z[q]);
    g_free (dz[q]);
  }
}

/* ---------------------------------------------------------------------------
 * PyTorch fixture (tests/data/make-ntxent-fixture.py): rows 0..N-1 view 0
 * and N..2N-1 view 1 of N samples, split into K replicas of N / K samples.
 */
static void
test_torch_fixture (void)
{
  char *path = g_build_filename (SIMCLR_TEST_DATA, "ntxent-fixture.txt", NULL);
  FILE *f = fopen (path, "r");
  char word[64];
  int runs = 0;

  if (!f)
    g_error ("cannot open %s", path);
  while (fscanf (f, "%63s", word) == 1) {
    char name[64];
    int R, D;
    double tau, loss, top1, top5, dmax = 0.0;

    if (word[0] == '#') {
      int ch;
      while ((ch = fgetc (f)) != EOF && ch != '\n');
      continue;
    }
    g_assert_cmpstr (word, ==, "case");
    if (fscanf (f, "%63s %d %d %lf", name, &R, &D, &tau) != 4)
      g_error ("ntxent fixture: bad case header");
    float *zf = g_new (float, R * D);
    double *dref = g_new (double, R * D);
    fixture_word (f, "z");
    for (int j = 0; j < R * D; j++)
      zf[j] = (float) fixture_number (f);
    fixture_word (f, "loss");
    loss = fixture_number (f);
    fixture_word (f, "top1");
    top1 = fixture_number (f);
    fixture_word (f, "top5");
    top5 = fixture_number (f);
    fixture_word (f, "dz");
    for (int j = 0; j < R * D; j++) {
      dref[j] = fixture_number (f);
      dmax = fmax (dmax, fabs (dref[j]));
    }

    const int N = R / 2;
    for (int K = 2; K <= 3; K++) {
      if (N % K != 0)
        continue;
      int n = N / K, rows[3];
      float *z[3], *dz[3];
      Job jobs[3];
      FakeGroup g;
      for (int q = 0; q < K; q++) {
        rows[q] = 2 * n;
        z[q] = g_new (float, 2 * n * D);
        dz[q] = g_new (float, 2 * n * D);
        for (int v = 0; v < 2; v++)
          memcpy (z[q] + (size_t) v * n * D, zf + (size_t) (v * N + q * n) * D,
              sizeof (float) * n * D);
      }
      run_replicas (K, rows, D, tau, z, dz, jobs, &g);
      for (int q = 0; q < K; q++) {
        g_assert_cmpint (jobs[q].status, ==, SIMCLR_OK);
        /* the tolerances of test-ntxent's fixture check */
        if (fabs (jobs[q].res.loss - loss) > 1e-5 * fabs (loss))
          g_error ("%s over %d: loss %.9g, torch %.9g", name, K,
              jobs[q].res.loss, loss);
        g_assert_cmpfloat (jobs[q].res.top1, ==, top1);
        g_assert_cmpfloat (jobs[q].res.top5, ==, top5);
        for (int v = 0; v < 2; v++)
          for (int j = 0; j < n; j++)
            for (int d = 0; d < D; d++) {
              double want = dref[(size_t) (v * N + q * n + j) * D + d];
              double got = dz[q][(v * n + j) * D + d];
              if (fabs (got - want) > 1e-5 * dmax)
                g_error ("%s over %d: replica %d row (%d,%d) dz %.9g, torch "
                    "%.9g", name, K, q, v, j, got, want);
            }
      }
      for (int q = 0; q < K; q++) {
        g_free (z[q]);
        g_free (dz[q]);
      }
      runs++;
    }
    g_free (zf);
    g_free (dref);
  }
  fclose (f);
  g_free (path);
  /* the two r8 cases over 2 replicas, r12 over 2 and over 3 */
  g_assert_cmpint (runs, ==, 4);
}

/* ---------------------------------------------------------------------------
 * Failures.
 */

/* One replica with an odd row count: every replica fails, with the same
 * message naming that replica, and none hangs. */
static void
test_bad_replica (void)
{
  const int D = 4;
  int rows[3] = { 4, 5, 4 };
  float *z[3], *dz[3];
  Job jobs[3];
  FakeGroup g;

  for (int q = 0; q < 3; q++) {
    z[q] = g_new (float, rows[q] * D);
    dz[q] = g_new (float, rows[q] * D);
    random_z (z[q], rows[q], D, q);
  }
  run_replicas (3, rows, D, 0.5, z, dz, jobs, &g);
  for (int q = 0; q < 3; q++) {
    g_assert_cmpint (jobs[q].status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_cmpstr (jobs[q].err.message, ==, jobs[0].err.message);
  }
  g_assert_nonnull (strstr (jobs[0].err.message, "replica 1 of 3"));
  g_assert_cmpint (g.gathers, ==, 1);     /* the header only */
  for (int q = 0; q < 3; q++) {
    g_free (z[q]);
    g_free (dz[q]);
  }
}

static void
test_config_errors (void)
{
  SimclrLossConfig cfg;
  SimclrError err = { 0 };
  float z[8] = { 1, 0, 0, 1, 1, 0, 0, 1 }, dz[8];

  simclr_loss_config_default (&cfg);
  g_assert_cmpfloat (cfg.temperature, ==, 0.5);
  g_assert_cmpint (cfg.views, ==, 2);

  /* 2 .. 64 views per sample */
  cfg.views = 1;
  g_assert_null (simclr_loss_new (&cfg, NULL, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (err.field, ==, "loss.views");
  cfg.views = SIMCLR_LOSS_MAX_VIEWS + 1;
  g_assert_null (simclr_loss_new (&cfg, NULL, &err));
  g_assert_cmpstr (err.field, ==, "loss.views");
  cfg.views = 3;
  {
    SimclrLoss *l3 = simclr_loss_new (&cfg, NULL, &err);
    g_assert_nonnull (l3);
    /* 4 rows are not whole samples of 3 views; 3 rows are one sample */
    g_assert_cmpint (simclr_loss_forward (l3, z, 4, 2, NULL, &err), ==,
        SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_cmpint (simclr_loss_forward (l3, z, 3, 2, NULL, &err), ==,
        SIMCLR_OK);
    simclr_loss_free (l3);
  }

  simclr_loss_config_default (&cfg);
  cfg.temperature = 0;
  g_assert_null (simclr_loss_new (&cfg, NULL, &err));
  g_assert_cmpstr (err.field, ==, "loss.temperature");

  simclr_loss_config_default (&cfg);
  SimclrLoss *loss = simclr_loss_new (&cfg, NULL, &err);
  g_assert_nonnull (loss);
  g_assert_cmpint (simclr_loss_set_temperature (loss, NAN, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpfloat (simclr_loss_get_temperature (loss), ==, 0.5);
  /* no forward yet */
  g_assert_cmpint (simclr_loss_backward (loss, dz, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  /* 3 rows: not whole samples of 2 views */
  g_assert_cmpint (simclr_loss_forward (loss, z, 3, 2, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_loss_backward (loss, dz, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  /* the workspace grows: 2 rows, then 4 */
  g_assert_cmpint (simclr_loss_forward (loss, z, 2, 4, NULL, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_loss_forward (loss, z, 4, 2, NULL, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_loss_backward (loss, dz, &err), ==, SIMCLR_OK);
  /* a non-finite row */
  z[0] = NAN;
  g_assert_cmpint (simclr_loss_forward (loss, z, 4, 2, NULL, &err), ==,
      SIMCLR_ERROR_NUMERIC);
  simclr_loss_free (loss);
  simclr_loss_free (NULL);

  /* a comm of 2 without hooks */
  SimclrComm comm;
  simclr_comm_init_local (&comm);
  comm.size = 2;
  g_assert_null (simclr_loss_new (&cfg, &comm, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (size_t i = 0; i < G_N_ELEMENTS (split_cases); i++) {
    char *name = g_strdup_printf ("/loss/replicas/%s", split_cases[i].name);
    g_test_add_data_func (name, &split_cases[i], test_split);
    g_free (name);
  }
  g_test_add_func ("/loss/closed-forms", test_closed_forms);
  g_test_add_func ("/loss/torch-fixture", test_torch_fixture);
  g_test_add_func ("/loss/bad-replica", test_bad_replica);
  g_test_add_func ("/loss/config-errors", test_config_errors);
  return g_test_run ();
}
