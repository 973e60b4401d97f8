/* test-loss-queue.c: the queue of negatives of SimclrLoss (issue 11).
 *
 * Checked:
 *  - queue_size 0 is the loss without a queue bit for bit over several
 *    steps (loss, accuracies, dz), and so is a queue's first step (the
 *    queue starts empty) and the first step after simclr_loss_clear_queue;
 *    the kernel's forward_queue with 0 queue rows == its plain forms;
 *  - dz with a queue against central differences of a double-precision
 *    naive loss whose queue rows are constants (two views and three, a
 *    queue that evicts part of a step);
 *  - the PyTorch fixture (tests/data/make-queue-fixture.py): consecutive
 *    steps in one process and split over 2 replicas;
 *  - K replicas (in-process, fake-comm.c) == one process holding every
 *    sample, over steps (the queue holds the same global rows), and the
 *    replicas agree bit for bit;
 *  - the queue's length: rows join in backward once per successful step,
 *    the oldest leave first; a configuration outside [0, 65536] names
 *    loss.queue_size.
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

#define MAX_K 3
#define MAX_STEPS 6

static void
random_z (float *z, int rows, int D, uint64_t seed)
{
  for (int i = 0; i < rows * D; i++)
    z[i] = (float) simclr_rng_normal (seed, 5, i);
}

static SimclrLoss *
new_loss (int views, double tau, int queue, const SimclrComm *comm)
{
  SimclrLossConfig cfg;
  SimclrError err = { 0 };
  simclr_loss_config_default (&cfg);
  cfg.views = views;
  cfg.temperature = tau;
  cfg.queue_size = queue;
  SimclrLoss *loss = simclr_loss_new (&cfg, comm, &err);
  if (!loss)
    g_error ("simclr_loss_new (queue %d): %s", queue, err.message);
  return loss;
}

static void
step (SimclrLoss *loss, const float *z, int rows, int D, SimclrLossResult *r,
    float *dz)
{
  SimclrError err = { 0 };
  if (simclr_loss_forward (loss, z, rows, D, r, &err) != SIMCLR_OK)
    g_error ("forward: %s", err.message);
  if (simclr_loss_backward (loss, dz, &err) != SIMCLR_OK)
    g_error ("backward: %s", err.message);
}

static void
assert_same (const char *what, int s, const SimclrLossResult *a,
    const float *dza, const SimclrLossResult *b, const float *dzb, int n)
{
  if (a->loss != b->loss || a->top1 != b->top1 || a->top5 != b->top5)
    g_error ("%s, step %d: loss %.17g top1 %g top5 %g, want %.17g %g %g",
        what, s, a->loss, a->top1, a->top5, b->loss, b->top1, b->top5);
  for (int i = 0; i < n; i++)
    if (dza[i] != dzb[i])
      g_error ("%s, step %d: dz[%d] = %.9g, want %.9g", what, s, i,
          (double) dza[i], (double) dzb[i]);
}

/* ---------------------------------------------------------------------------
 * queue 0 == no queue; an empty queue == no queue.
 */
static void
test_zero_is_plain (gconstpointer data)
{
  const int V = GPOINTER_TO_INT (data), n = 5, D = 7, R = V * n, S = 4;
  const double tau = 0.2;
  float *z = g_new (float, R * D), *dz = g_new (float, R * D);
  float *dz0 = g_new (float, R * D), *dzk = g_new (float, R * D);
  int *group = g_new (int, R);
  SimclrLossResult r, r0;
  SimclrNtxentResult kr, kq;
  SimclrError err = { 0 };
  SimclrLoss *zero = new_loss (V, tau, 0, NULL);
  SimclrNtxent *nt = simclr_ntxent_new_with_queue (R + R % 2, 16, D, &err);

  g_assert_nonnull (nt);
  for (int i = 0; i < R; i++)
    group[i] = i % n;
  for (int s = 0; s < S; s++) {
    random_z (z, R, D, 300 + s);
    step (zero, z, R, D, &r0, dz0);
    g_assert_cmpint (simclr_loss_queue_length (zero), ==, 0);
    /* The kernel's plain forms. */
    if (V == 2)
      g_assert_cmpint (simclr_ntxent_forward (nt, z, R, D, (float) tau, NULL,
              &kr, &err), ==, SIMCLR_OK);
    else
      g_assert_cmpint (simclr_ntxent_forward_groups (nt, z, R, D,
              (float) tau, group, &kr, &err), ==, SIMCLR_OK);
    simclr_ntxent_backward (nt, dzk);
    SimclrLossResult kres = { kr.loss, kr.top1, kr.top5, R };
    assert_same ("queue 0 against the kernel", s, &r0, dz0, &kres, dzk,
        R * D);
    /* The kernel with 0 queue rows. */
    g_assert_cmpint (simclr_ntxent_forward_queue (nt, z, R, D, (float) tau,
            NULL, V == 2 ? NULL : group, z, 0, &kq, &err), ==, SIMCLR_OK);
    simclr_ntxent_backward (nt, dzk);
    SimclrLossResult qres = { kq.loss, kq.top1, kq.top5, R };
    assert_same ("kernel, 0 queue rows", s, &qres, dzk, &r0, dz0, R * D);

    /* A fresh loss with a queue: its first step sees an empty queue. */
    SimclrLoss *fresh = new_loss (V, tau, 64, NULL);
    step (fresh, z, R, D, &r, dz);
    assert_same ("first step of a queue of 64", s, &r, dz, &r0, dz0, R * D);
    g_assert_cmpint (simclr_loss_queue_length (fresh), ==, R);
    /* A second step differs (the first step's rows are negatives now),
     * and after clearing the queue it is the plain loss again. */
    step (fresh, z, R, D, &r, dz);
    g_assert_cmpfloat (r.loss, >, r0.loss);
    simclr_loss_clear_queue (fresh);
    g_assert_cmpint (simclr_loss_queue_length (fresh), ==, 0);
    step (fresh, z, R, D, &r, dz);
    assert_same ("after clear", s, &r, dz, &r0, dz0, R * D);
    simclr_loss_free (fresh);
  }
  simclr_loss_free (zero);
  simclr_ntxent_free (nt);
  g_free (z);
  g_free (dz);
  g_free (dz0);
  g_free (dzk);
  g_free (group);
}

/* ---------------------------------------------------------------------------
 * Finite differences against a double naive loss with constant queue rows.
 */

/* loss = mean_i [lse_i - mean_{p in P(i)} s_ip], lse over the other rows
 * and the queue rows m (Q, D), used as given. */
static double
naive_loss (const double *z, int R, int D, int V, double tau,
    const double *m, int Q)
{
  int *group = g_new (int, R);
  double loss;

  for (int i = 0; i < R; i++)
    group[i] = i % (R / V);     /* row i is sample i mod n, n = R / V */
  loss = loss_ref_ntxent (z, R, D, tau, NULL, group, m, Q);
  g_free (group);
  return loss;
}

typedef struct {
  const char *name;
  int V, n, D, Q, steps;
  double tau;
} FdCase;

static const FdCase fd_cases[] = {
  /* 12 rows a step, queue 30: the third and later steps evict part of a
   * step */
  {"v2-n6-q30", 2, 6, 8, 30, 4, 0.2},
  {"v3-n4-q20", 3, 4, 6, 20, 3, 0.5},
  {"v2-n5-q4", 2, 5, 5, 4, 3, 0.1},   /* a queue smaller than a step */
};

static void
test_finite_differences (gconstpointer data)
{
  const FdCase *c = data;
  const int V = c->V, R = V * c->n, D = c->D, Q = c->Q;
  float *z = g_new (float, R * D), *dz = g_new (float, R * D);
  /* every row of every earlier step, normalised in double, in order */
  double *hist = g_new (double, (size_t) c->steps * R * D);
  int hist_rows = 0;
  SimclrLoss *loss = new_loss (V, c->tau, Q, NULL);
  SimclrLossResult r;

  for (int s = 0; s < c->steps; s++) {
    random_z (z, R, D, 700 + s);
    step (loss, z, R, D, &r, dz);
    int held = hist_rows < Q ? hist_rows : Q;
    const double *m = hist + (size_t) (hist_rows - held) * D;

    double *zd = g_new (double, R * D), dmax = 0.0;
    for (int i = 0; i < R * D; i++) {
      zd[i] = z[i];
      dmax = fmax (dmax, fabs (dz[i]));
    }
    double want = naive_loss (zd, R, D, V, c->tau, m, held);
    if (fabs (r.loss - want) > 1e-5 * fabs (want))
      g_error ("%s step %d: loss %.9g, naive %.9g (queue of %d)", c->name, s,
          r.loss, want, held);
    const double h = 1e-5;
    int probes = 0;
    for (int k = 0; k < R * D && probes < 40; k += 1 + (R * D) / 40,
        probes++) {
      double keep = zd[k], up, down, fd;
      zd[k] = keep + h;
      up = naive_loss (zd, R, D, V, c->tau, m, held);
      zd[k] = keep - h;
      down = naive_loss (zd, R, D, V, c->tau, m, held);
      zd[k] = keep;
      fd = (up - down) / (2 * h);
      if (fabs (dz[k] - fd) > 1e-4 * fmax (dmax, 1e-3))
        g_error ("%s step %d (queue of %d): dz[%d] = %.9g, central "
            "difference %.9g", c->name, s, held, k, (double) dz[k], fd);
    }
    g_assert_cmpint (probes, >=, 20);
    g_assert_cmpint (simclr_loss_queue_length (loss), ==,
        MIN (Q, (s + 1) * R));

    /* this step's rows join the history (the queue's constants next) */
    for (int i = 0; i < R; i++) {
      double nn = 0.0;
      for (int d = 0; d < D; d++)
        nn += zd[i * D + d] * zd[i * D + d];
      nn = sqrt (nn);
      for (int d = 0; d < D; d++)
        hist[(size_t) (hist_rows + i) * D + d] = zd[i * D + d] / nn;
    }
    hist_rows += R;
    g_free (zd);
  }
  simclr_loss_free (loss);
  g_free (z);
  g_free (dz);
  g_free (hist);
}

/* ---------------------------------------------------------------------------
 * K replicas, in threads over fake-comm.c, for several steps.
 */
typedef struct {
  FakeMember member;
  int V, D, Q, steps;
  double tau;
  int rows;
  const float *z[MAX_STEPS];    /* (rows, D) per step */
  float *dz[MAX_STEPS];
  SimclrLossResult res[MAX_STEPS];
  int queue_len[MAX_STEPS];
  SimclrError err;
  int failed;
} Job;

static gpointer
run_job (gpointer data)
{
  Job *j = data;
  SimclrComm comm;
  fake_comm (&j->member, &comm);
  SimclrLoss *loss = new_loss (j->V, j->tau, j->Q, &comm);
  for (int s = 0; s < j->steps && !j->failed; s++) {
    if (simclr_loss_forward (loss, j->z[s], j->rows, j->D, &j->res[s],
            &j->err) != SIMCLR_OK
        || simclr_loss_backward (loss, j->dz[s], &j->err) != SIMCLR_OK)
      j->failed = 1;
    j->queue_len[s] = simclr_loss_queue_length (loss);
  }
  simclr_loss_free (loss);
  return NULL;
}

/* Runs K replicas: replica q's rows of step s in z[q][s]. */
static void
run_replicas (int K, Job *jobs, FakeGroup *g)
{
  GThread *threads[MAX_K];
  fake_group_init (g, K);
  for (int q = 0; q < K; q++) {
    jobs[q].member.g = g;
    jobs[q].member.rank = q;
    threads[q] = g_thread_new ("replica", run_job, &jobs[q]);
  }
  for (int q = 0; q < K; q++)
    g_thread_join (threads[q]);
  fake_group_clear (g);
  for (int q = 0; q < K; q++)
    if (jobs[q].failed)
      g_error ("replica %d of %d: %s", q, K, jobs[q].err.message);
}

typedef struct {
  const char *name;
  int K;
  int n[MAX_K];
  int V, D, Q, steps;
  double tau;
} SplitCase;

static const SplitCase split_cases[] = {
  {"k2-equal-q20", 2, {3, 3}, 2, 8, 20, 5, 0.2},
  {"k3-unequal-q17", 3, {1, 3, 2}, 2, 6, 17, 5, 0.5},
  {"k2-views3-q40", 2, {2, 3}, 3, 5, 40, 4, 0.3},
  {"k1-q9", 1, {4}, 2, 6, 9, 4, 0.2},
};

static void
test_replicas (gconstpointer data)
{
  const SplitCase *c = data;
  const int K = c->K, V = c->V, D = c->D;
  int total = 0, R;
  Job jobs[MAX_K];
  FakeGroup g;

  for (int q = 0; q < K; q++)
    total += c->n[q];
  R = V * total;
  memset (jobs, 0, sizeof jobs);
  /* One process's rows of step s: view v of sample (replica q, j) is row
   * v * total + (n[0] + .. + n[q-1]) + j. */
  float *one[MAX_STEPS];
  for (int s = 0; s < c->steps; s++) {
    one[s] = g_new (float, R * D);
    random_z (one[s], R, D, 900 + s);
  }
  for (int q = 0, before = 0; q < K; q++) {
    Job *j = &jobs[q];
    j->V = V;
    j->D = D;
    j->Q = c->Q;
    j->steps = c->steps;
    j->tau = c->tau;
    j->rows = V * c->n[q];
    for (int s = 0; s < c->steps; s++) {
      float *zq = g_new (float, j->rows * D);
      for (int v = 0; v < V; v++)
        memcpy (zq + (size_t) v * c->n[q] * D,
            one[s] + (size_t) (v * total + before) * D,
            sizeof (float) * c->n[q] * D);
      j->z[s] = zq;
      j->dz[s] = g_new (float, j->rows * D);
    }
    before += c->n[q];
  }
  run_replicas (K, jobs, &g);

  SimclrLoss *single = new_loss (V, c->tau, c->Q, NULL);
  float *dz = g_new (float, R * D);
  for (int s = 0; s < c->steps; s++) {
    SimclrLossResult r;
    step (single, one[s], R, D, &r, dz);
    for (int q = 0; q < K; q++) {
      /* every replica the same, bit for bit */
      g_assert_cmpfloat (jobs[q].res[s].loss, ==, jobs[0].res[s].loss);
      g_assert_cmpfloat (jobs[q].res[s].top1, ==, jobs[0].res[s].top1);
      g_assert_cmpint (jobs[q].queue_len[s], ==,
          simclr_loss_queue_length (single));
    }
    if (fabs (r.loss - jobs[0].res[s].loss) > 1e-6 * fabs (r.loss))
      g_error ("%s step %d: %d replicas loss %.9g, one process %.9g",
          c->name, s, K, jobs[0].res[s].loss, r.loss);
    g_assert_cmpfloat (r.top1, ==, jobs[0].res[s].top1);
    g_assert_cmpfloat (r.top5, ==, jobs[0].res[s].top5);
    double dmax = 0.0;
    for (int i = 0; i < R * D; i++)
      dmax = fmax (dmax, fabs (dz[i]));
    for (int q = 0, before = 0; q < K; q++) {
      for (int v = 0; v < V; v++)
        for (int j = 0; j < c->n[q]; j++)
          for (int d = 0; d < D; d++) {
            float a = jobs[q].dz[s][(v * c->n[q] + j) * D + d];
            float b = dz[(size_t) (v * total + before + j) * D + d];
            if (fabs (a - b) > 1e-5 * dmax)
              g_error ("%s step %d: replica %d row (%d,%d) dz[%d] = %.9g, "
                  "one process %.9g", c->name, s, q, v, j, d, (double) a,
                  (double) b);
          }
      before += c->n[q];
    }
  }
  /* the queue did something: the last step's loss is above the plain one */
  {
    SimclrLoss *plain = new_loss (V, c->tau, 0, NULL);
    SimclrLossResult p;
    step (plain, one[c->steps - 1], R, D, &p, dz);
    g_assert_cmpfloat (jobs[0].res[c->steps - 1].loss, >, p.loss);
    simclr_loss_free (plain);
  }
  simclr_loss_free (single);
  g_free (dz);
  for (int s = 0; s < c->steps; s++) {
    g_free (one[s]);
    for (int q = 0; q < K; q++) {
      g_free ((float *) jobs[q].z[s]);
      g_free (jobs[q].dz[s]);
    }
  }
}

/* ---------------------------------------------------------------------------
 * PyTorch fixture.
 */
static void
test_torch_fixture (void)
{
  char *path = g_build_filename (SIMCLR_TEST_DATA, "queue-fixture.txt", NULL);
  FILE *f = fopen (path, "r");
  char word[64];
  int cases = 0;

  /* Committed: missing means a broken tree, not a skip. */
  if (!f)
    g_error ("cannot open %s (regenerate with "
        "tests/data/make-queue-fixture.py)", path);
  while (fscanf (f, "%63s", word) == 1) {
    char name[64];
    int R, D, V, Q, S;
    double tau;

    if (word[0] == '#') {
      int ch;
      while ((ch = fgetc (f)) != EOF && ch != '\n');
      continue;
    }
    g_assert_cmpstr (word, ==, "case");
    if (fscanf (f, "%63s %d %d %lf %d %d %d", name, &R, &D, &tau, &V, &Q,
            &S) != 7 || S > MAX_STEPS || R % V != 0)
      g_error ("queue fixture: bad case header");
    const int n = R / V;
    float *z[MAX_STEPS];
    double *dref[MAX_STEPS], loss[MAX_STEPS], top1[MAX_STEPS],
        top5[MAX_STEPS], dmax[MAX_STEPS];
    for (int s = 0; s < S; s++) {
      z[s] = g_new (float, R * D);
      dref[s] = g_new (double, R * D);
      fixture_word (f, "z");
      for (int i = 0; i < R * D; i++)
        z[s][i] = (float) fixture_number (f);
      fixture_word (f, "loss");
      loss[s] = fixture_number (f);
      fixture_word (f, "top1");
      top1[s] = fixture_number (f);
      fixture_word (f, "top5");
      top5[s] = fixture_number (f);
      fixture_word (f, "dz");
      dmax[s] = 0.0;
      for (int i = 0; i < R * D; i++) {
        dref[s][i] = fixture_number (f);
        dmax[s] = fmax (dmax[s], fabs (dref[s][i]));
      }
    }

    /* One process, then 2 replicas of the samples split in two (the
     * queue then holds both replicas' rows). */
    for (int K = 1; K <= 2; K++) {
      Job jobs[MAX_K];
      FakeGroup g;
      int nq[2] = { K == 1 ? n : n / 2, n - n / 2 };
      memset (jobs, 0, sizeof jobs);
      for (int q = 0, before = 0; q < K; q++) {
        Job *j = &jobs[q];
        j->V = V;
        j->D = D;
        j->Q = Q;
        j->steps = S;
        j->tau = tau;
        j->rows = V * nq[q];
        for (int s = 0; s < S; s++) {
          float *zq = g_new (float, j->rows * D);
          for (int v = 0; v < V; v++)
            memcpy (zq + (size_t) v * nq[q] * D,
                z[s] + (size_t) (v * n + before) * D,
                sizeof (float) * nq[q] * D);
          j->z[s] = zq;
          j->dz[s] = g_new (float, j->rows * D);
        }
        before += nq[q];
      }
      run_replicas (K, jobs, &g);
      for (int s = 0; s < S; s++)
        for (int q = 0, before = 0; q < K; q++) {
          const SimclrLossResult *r = &jobs[q].res[s];
          /* the tolerances of test-ntxent's fixture checks */
          if (fabs (r->loss - loss[s]) > 1e-5 * fabs (loss[s]))
            g_error ("%s over %d, step %d: loss %.9g, torch %.9g", name, K,
                s, r->loss, loss[s]);
          if (r->top1 != top1[s] || r->top5 != top5[s])
            g_error ("%s over %d, step %d: top1 %g top5 %g, torch %g %g",
                name, K, s, r->top1, r->top5, top1[s], top5[s]);
          for (int v = 0; v < V; v++)
            for (int j = 0; j < nq[q]; j++)
              for (int d = 0; d < D; d++) {
                double want = dref[s][(size_t) (v * n + before + j) * D + d];
                double got = jobs[q].dz[s][(v * nq[q] + j) * D + d];
                if (fabs (got - want) > 1e-5 * dmax[s])
                  g_error ("%s over %d, step %d: replica %d row (%d,%d) dz "
                      "%.9g, torch %.9g", name, K, s, q, v, j, got, want);
              }
          before += nq[q];
        }
      for (int q = 0; q < K; q++)
        for (int s = 0; s < S; s++) {
          g_free ((float *) jobs[q].z[s]);
          g_free (jobs[q].dz[s]);
        }
    }
    for (int s = 0; s < S; s++) {
      g_free (z[s]);
      g_free (dref[s]);
    }
    cases++;
  }
  fclose (f);
  g_free (path);
  g_assert_cmpint (cases, ==, 3);
}

/* ---------------------------------------------------------------------------
 * Length bookkeeping and configuration.
 */
static void
test_length (void)
{
  const int n = 3, D = 4, R = 2 * n, Q = 10;
  float z[2 * 3 * 4], dz[2 * 3 * 4];
  SimclrLossResult r;
  SimclrError err = { 0 };
  SimclrLoss *loss = new_loss (2, 0.2, Q, NULL);

  random_z (z, R, D, 11);
  /* forward alone adds nothing */
  g_assert_cmpint (simclr_loss_forward (loss, z, R, D, &r, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_loss_queue_length (loss), ==, 0);
  g_assert_cmpint (simclr_loss_backward (loss, dz, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_loss_queue_length (loss), ==, R);
  /* a second backward of the same forward adds nothing */
  g_assert_cmpint (simclr_loss_backward (loss, dz, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_loss_queue_length (loss), ==, R);
  /* a failed forward adds nothing (and leaves nothing to backward) */
  z[0] = NAN;
  g_assert_cmpint (simclr_loss_forward (loss, z, R, D, &r, &err), ==,
      SIMCLR_ERROR_NUMERIC);
  g_assert_cmpint (simclr_loss_backward (loss, dz, NULL), !=, SIMCLR_OK);
  g_assert_cmpint (simclr_loss_queue_length (loss), ==, R);
  random_z (z, R, D, 12);
  step (loss, z, R, D, &r, dz);
  g_assert_cmpint (simclr_loss_queue_length (loss), ==, Q);
  step (loss, z, R, D, &r, dz);
  g_assert_cmpint (simclr_loss_queue_length (loss), ==, Q);
  /* another dimension empties it (those rows are no negatives) */
  step (loss, z, 2 * n - 2, D + 2, &r, dz);
  g_assert_cmpint (simclr_loss_queue_length (loss), ==, 2 * n - 2);
  simclr_loss_free (loss);
}

static void
test_config (void)
{
  SimclrLossConfig cfg;
  SimclrError err = { 0 };
  const int bad[] = { -1, SIMCLR_LOSS_MAX_QUEUE + 1, G_MININT };

  simclr_loss_config_default (&cfg);
  g_assert_cmpint (cfg.queue_size, ==, 0);
  cfg.queue_size = SIMCLR_LOSS_MAX_QUEUE;
  g_assert_cmpint (simclr_loss_config_validate (&cfg, &err), ==, SIMCLR_OK);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    memset (&err, 0, sizeof err);
    cfg.queue_size = bad[i];
    g_assert_cmpint (simclr_loss_config_validate (&cfg, &err), ==,
        SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_cmpstr (err.field, ==, "loss.queue_size");
    g_assert_nonnull (strstr (err.message, "queue"));
    g_assert_null (simclr_loss_new (&cfg, NULL, NULL));
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/loss-queue/zero-is-plain/2-views",
      GINT_TO_POINTER (2), test_zero_is_plain);
  g_test_add_data_func ("/loss-queue/zero-is-plain/3-views",
      GINT_TO_POINTER (3), test_zero_is_plain);
  for (guint i = 0; i < G_N_ELEMENTS (fd_cases); i++) {
    char *name = g_strdup_printf ("/loss-queue/finite-differences/%s",
        fd_cases[i].name);
    g_test_add_data_func (name, &fd_cases[i], test_finite_differences);
    g_free (name);
  }
  for (guint i = 0; i < G_N_ELEMENTS (split_cases); i++) {
    char *name = g_strdup_printf ("/loss-queue/replicas/%s",
        split_cases[i].name);
    g_test_add_data_func (name, &split_cases[i], test_replicas);
    g_free (name);
  }
  g_test_add_func ("/loss-queue/torch-fixture", test_torch_fixture);
  g_test_add_func ("/loss-queue/length", test_length);
  g_test_add_func ("/loss-queue/config", test_config);
  return g_test_run ();
}
