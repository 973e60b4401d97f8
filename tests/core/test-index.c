/* test-index.c: the similarity index against a brute-force double-precision
 * reference (several query and row blocks, ties, duplicates, k > n, k = n),
 * save/load round trips, simclrnpysink's files, and every bad file. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "simclr/index.h"
#include "simclr/rng.h"

static gchar *tmpdir;

static float *
random_rows (int64_t n, int d, uint64_t seed)
{
  float *x = g_new (float, (size_t) n * d);
  for (int64_t i = 0; i < n * d; i++)
    x[i] = (float) simclr_rng_normal (seed, 1, (uint64_t) i);
  return x;
}

/* Cosine of a and b in double. */
static double
ref_cosine (const float *a, const float *b, int d)
{
  double ab = 0, aa = 0, bb = 0;
  for (int j = 0; j < d; j++) {
    ab += (double) a[j] * b[j];
    aa += (double) a[j] * a[j];
    bb += (double) b[j] * b[j];
  }
  if (aa == 0 || bb == 0)
    return 0;
  return ab / sqrt (aa * bb);
}

static int
cmp_desc (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x > y ? -1 : x < y ? 1 : 0;
}

/* The search result of @nq queries is a valid top-k of the double reference:
 * rows distinct and in range, scores best first, each score the reference
 * cosine of its row, and the j-th score the reference's j-th best. */
static void
check_topk (const float *x, int64_t n, int d, const float *q, int64_t nq,
    int k, const int64_t *rows, const float *scores)
{
  const double tol = 2e-5;
  double *ref = g_new (double, n);
  int kk = k < n ? k : (int) n;
  for (int64_t i = 0; i < nq; i++) {
    const int64_t *r = rows + i * k;
    const float *s = scores + i * k;
    for (int64_t j = 0; j < n; j++)
      ref[j] = ref_cosine (q + i * d, x + j * d, d);
    for (int j = 0; j < kk; j++) {
      g_assert_cmpint (r[j], >=, 0);
      g_assert_cmpint (r[j], <, n);
      for (int l = 0; l < j; l++)
        g_assert_cmpint (r[l], !=, r[j]);
      if (j > 0)
        g_assert_cmpfloat (s[j], <=, s[j - 1]);
      if (fabs (s[j] - ref[r[j]]) > tol) {
        g_printerr ("query %lld rank %d: row %lld scored %.8f, reference "
            "%.8f\n", (long long) i, j, (long long) r[j], s[j], ref[r[j]]);
        g_assert_not_reached ();
      }
    }
    for (int j = kk; j < k; j++) {
      g_assert_cmpint (r[j], ==, -1);
      g_assert_true (isinf (s[j]) && s[j] < 0);
    }
    qsort (ref, n, sizeof (double), cmp_desc);
    for (int j = 0; j < kk; j++)
      if (fabs (s[j] - ref[j]) > tol) {
        g_printerr ("query %lld rank %d: score %.8f, reference top-k %.8f\n",
            (long long) i, j, s[j], ref[j]);
        g_assert_not_reached ();
      }
  }
  g_free (ref);
}

typedef struct {
  int64_t n;
  int d, k;
  int64_t nq;
} TopkCase;

static const TopkCase topk_cases[] = {
  {20000, 16, 10, 70},   /* 3 row blocks, 2 query blocks */
  {1000, 128, 1, 5},
  {300, 8, 5, 64},
  {5, 4, 8, 3},          /* k > n */
  {7, 4, 7, 3},          /* k = n */
  {1, 3, 1, 2},
};

static void
test_topk (gconstpointer data)
{
  const TopkCase *c = data;
  SimclrError err = { 0 };
  float *x = random_rows (c->n, c->d, 11);
  float *q = random_rows (c->nq, c->d, 12);
  int64_t *rows = g_new (int64_t, c->nq * c->k);
  float *scores = g_new (float, c->nq * c->k);
  SimclrIndex *idx = simclr_index_new (c->d, &err);

  g_assert_nonnull (idx);
  /* Added in two calls, so appends are covered. */
  g_assert_cmpint (simclr_index_add (idx, x, c->n / 2, NULL, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_index_add (idx, x + (c->n / 2) * c->d,
          c->n - c->n / 2, NULL, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_index_size (idx), ==, c->n);
  g_assert_cmpint (simclr_index_search (idx, q, c->nq, c->k, rows, scores,
          &err), ==, SIMCLR_OK);
  check_topk (x, c->n, c->d, q, c->nq, c->k, rows, scores);
  /* k = n: every row exactly once. */
  if (c->k == c->n) {
    for (int64_t i = 0; i < c->nq; i++) {
      int64_t sum = 0;
      for (int j = 0; j < c->k; j++)
        sum += rows[i * c->k + j];
      g_assert_cmpint (sum, ==, c->n * (c->n - 1) / 2);
    }
  }
  /* Row ids default to the row numbers. */
  g_assert_cmpint (simclr_index_entry (idx, c->n - 1)->id, ==, c->n - 1);
  simclr_index_free (idx);
  g_free (x);
  g_free (q);
  g_free (rows);
  g_free (scores);
}

/* Exact ties across row blocks: duplicates of a basis vector (every product
 * exact in float whatever the summation order) rank by row index; a scaled
 * duplicate is still a duplicate for cosine. */
static void
test_ties (void)
{
  const int d = 8;
  const int64_t n = 20000;
  const int64_t dup[] = { 3, 10, 8191, 8192, 19999 };
  const int ndup = G_N_ELEMENTS (dup), k = 7;
  float *x = random_rows (n, d, 5);
  float q[8] = { 0 };
  int64_t rows[7];
  float scores[7];
  SimclrError err = { 0 };
  SimclrIndex *idx = simclr_index_new (d, &err);

  /* Random rows keep their first coordinate small so none ties. */
  for (int64_t i = 0; i < n; i++)
    x[i * d] *= 0.01f;
  for (int i = 0; i < ndup; i++) {
    memset (x + dup[i] * d, 0, d * sizeof (float));
    x[dup[i] * d] = (float) (1 + i);      /* scale must not matter */
  }
  q[0] = 2.0f;
  g_assert_cmpint (simclr_index_add (idx, x, n, NULL, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_index_search (idx, q, 1, k, rows, scores, &err), ==,
      SIMCLR_OK);
  for (int i = 0; i < ndup; i++) {
    g_assert_cmpint (rows[i], ==, dup[i]);
    g_assert_cmpfloat (scores[i], ==, 1.0f);
  }
  g_assert_cmpfloat (scores[ndup], <, 1.0f);
  check_topk (x, n, d, q, 1, k, rows, scores);
  simclr_index_free (idx);
  g_free (x);
}

static void
test_search_errors (void)
{
  SimclrError err = { 0 };
  SimclrIndex *idx = simclr_index_new (4, &err);
  float q[4] = { 1, 0, 0, 0 }, x[8] = { 1, 2, 3, 4, 0, 0, 0, 0 };
  int64_t rows[2];
  float scores[2];

  g_assert_cmpint (simclr_index_search (idx, q, 1, 1, rows, scores, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "empty"));
  /* A zero row is kept and scores 0. */
  g_assert_cmpint (simclr_index_add (idx, x, 2, NULL, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_index_search (idx, q, 1, 2, rows, scores, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (rows[0], ==, 0);
  g_assert_cmpfloat_with_epsilon (scores[0], 1.0 / sqrt (30.0), 1e-6);
  g_assert_cmpfloat (scores[1], ==, 0.0f);
  g_assert_cmpint (simclr_index_search (idx, q, 1, 0, rows, scores, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "k = 0"));
  q[2] = NAN;
  g_assert_cmpint (simclr_index_search (idx, q, 1, 1, rows, scores, &err), ==,
      SIMCLR_ERROR_NUMERIC);
  g_assert_nonnull (strstr (err.message, "query 0"));
  x[5] = INFINITY;
  g_assert_cmpint (simclr_index_add (idx, x, 2, NULL, &err), ==,
      SIMCLR_ERROR_NUMERIC);
  g_assert_nonnull (strstr (err.message, "row 1"));
  g_assert_cmpint (simclr_index_size (idx), ==, 2);
  simclr_index_free (idx);
  g_assert_null (simclr_index_new (0, &err));
  g_assert_nonnull (strstr (err.message, "dimension 0"));
}

/* Leader clustering against its definition, checked in double: members are
 * within the threshold of their leader, which was the best leader at their
 * turn; leaders are below the threshold to every earlier leader. */
static void
test_group (void)
{
  const int d = 12, centers = 20, copies = 10;
  const int64_t n = centers * copies;
  const double threshold = 0.9;
  float *c = random_rows (centers, d, 21), *x = g_new (float, n * d);
  int64_t *group = g_new (int64_t, n), *leader_row = g_new (int64_t, n);
  float *score = g_new (float, n);
  int64_t ng = 0;
  SimclrError err = { 0 };
  SimclrIndex *idx = simclr_index_new (d, &err);

  /* Noisy copies of the centres, interleaved in time. */
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < d; j++)
      x[i * d + j] = c[(i % centers) * d + j]
          + 0.3f * (float) simclr_rng_normal (22, i, j);
  g_assert_cmpint (simclr_index_add (idx, x, n, NULL, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_index_group (idx, threshold, group, score, &ng,
          &err), ==, SIMCLR_OK);
  g_assert_cmpint (ng, >=, centers / 2);
  g_assert_cmpint (ng, <, n);
  for (int64_t g = 0; g < ng; g++)
    leader_row[g] = -1;
  for (int64_t i = 0; i < n; i++) {
    double best = -2;
    int64_t best_g = -1;
    g_assert_cmpint (group[i], >=, 0);
    g_assert_cmpint (group[i], <, ng);
    for (int64_t g = 0; g < ng; g++)
      if (leader_row[g] >= 0) {
        double s = ref_cosine (x + i * d, x + leader_row[g] * d, d);
        if (s > best + 1e-6) {
          best = s;
          best_g = g;
        }
      }
    if (leader_row[group[i]] < 0) {
      /* A new leader: no earlier leader was within the threshold. */
      g_assert_cmpfloat (best, <, threshold + 1e-5);
      (void) best_g;
      g_assert_cmpfloat (score[i], ==, 1.0f);
      leader_row[group[i]] = i;
    } else {
      double s = ref_cosine (x + i * d, x + leader_row[group[i]] * d, d);
      g_assert_cmpfloat (s, >=, threshold - 1e-5);
      g_assert_cmpfloat_with_epsilon (score[i], s, 1e-5);
      g_assert_cmpfloat (s, >=, best - 1e-5);
    }
  }
  /* Groups are numbered in the order their leaders appear. */
  for (int64_t g = 1; g < ng; g++)
    g_assert_cmpint (leader_row[g], >, leader_row[g - 1]);
  g_assert_cmpint (simclr_index_group (idx, 1.5, group, score, &ng, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "threshold 1.5"));
  g_assert_cmpint (simclr_index_group (idx, -1.0, group, NULL, &ng, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (ng, ==, 1);    /* every cosine is >= -1 */
  simclr_index_free (idx);
  g_free (c);
  g_free (x);
  g_free (group);
  g_free (leader_row);
  g_free (score);
}

/* ---- files -------------------------------------------------------------- */

static gchar *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

/* A .npy v1.0 file with the given dict and raw data bytes. */
static void
write_npy_raw (const char *path, const char *dict, const void *data,
    size_t bytes)
{
  FILE *f = fopen (path, "wb");
  size_t dl = strlen (dict), total = ((10 + dl + 1 + 63) / 64) * 64;
  guint16 hlen = (guint16) (total - 10);
  unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
    (unsigned char) (hlen & 0xff), (unsigned char) (hlen >> 8) };
  g_assert_nonnull (f);
  fwrite (pre, 1, 10, f);
  fwrite (dict, 1, dl, f);
  for (size_t i = 10 + dl; i < total - 1; i++)
    fputc (' ', f);
  fputc ('\n', f);
  if (bytes)
    fwrite (data, 1, bytes, f);
  fclose (f);
}

static void
write_npy_f32 (const char *path, const float *x, int64_t n, int d)
{
  gchar *dict = g_strdup_printf ("{'descr': '<f4', 'fortran_order': False, "
      "'shape': (%lld, %d), }", (long long) n, d);
  write_npy_raw (path, dict, x, (size_t) n * d * sizeof (float));
  g_free (dict);
}

static void
write_text (const char *path, const char *text)
{
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
}

/* What simclrnpysink writes for 3 frames of a stream without frame metas,
 * then the index saved and loaded again keeps rows and entries. */
static void
test_npysink_files_and_round_trip (void)
{
  const float x[6] = { 3, 4, 0, 2, -1, 0 };
  gchar *npy = tmp_path ("sink.npy"), *csv = tmp_path ("sink.npy.csv");
  gchar *npy2 = tmp_path ("saved.npy"), *csv2 = tmp_path ("saved.csv");
  SimclrError err = { 0 };
  SimclrIndex *idx, *back;
  SimclrIndexEntry e[2] = {
    {7, 100, -1, 2, "frames/a,b \"q\".jpg"},
    {8, -1, 1, -1, NULL},
  };

  write_npy_f32 (npy, x, 3, 2);
  write_text (csv, "index,pts_ns,sample_id,view,label\n"
      "0,0,0,-1,-1\n1,33366666,1,-1,-1\n2,,,,\n");
  idx = simclr_index_load (npy, NULL, &err);
  g_assert_nonnull (idx);
  g_assert_cmpint (simclr_index_size (idx), ==, 3);
  g_assert_cmpint (simclr_index_dim (idx), ==, 2);
  g_assert_cmpfloat_with_epsilon (simclr_index_row (idx, 0)[0], 0.6, 1e-7);
  g_assert_cmpfloat_with_epsilon (simclr_index_row (idx, 0)[1], 0.8, 1e-7);
  g_assert_cmpint (simclr_index_entry (idx, 1)->pts_ns, ==, 33366666);
  g_assert_cmpint (simclr_index_entry (idx, 1)->id, ==, 1);
  g_assert_cmpint (simclr_index_entry (idx, 2)->pts_ns, ==, -1);
  g_assert_cmpint (simclr_index_entry (idx, 2)->id, ==, -1);
  g_assert_null (simclr_index_entry (idx, 3));

  /* Two more rows with names (a comma and quotes need CSV quoting). */
  g_assert_cmpint (simclr_index_add (idx, x, 2, e, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_index_save (idx, npy2, csv2, &err), ==, SIMCLR_OK);
  back = simclr_index_load (npy2, csv2, &err);
  g_assert_nonnull (back);
  g_assert_cmpint (simclr_index_size (back), ==, 5);
  for (int64_t i = 0; i < 5; i++) {
    const SimclrIndexEntry *a = simclr_index_entry (idx, i);
    const SimclrIndexEntry *b = simclr_index_entry (back, i);
    g_assert_cmpmem (simclr_index_row (idx, i), 2 * sizeof (float),
        simclr_index_row (back, i), 2 * sizeof (float));
    g_assert_cmpint (a->id, ==, b->id);
    g_assert_cmpint (a->pts_ns, ==, b->pts_ns);
    g_assert_cmpint (a->view, ==, b->view);
    g_assert_cmpint (a->label, ==, b->label);
    g_assert_cmpstr (a->name, ==, b->name);
  }
  g_assert_cmpstr (simclr_index_entry (back, 3)->name, ==,
      "frames/a,b \"q\".jpg");
  /* Saved files are themselves simclrnpysink-compatible: 128-byte header. */
  {
    gchar *contents;
    gsize len;
    g_assert_true (g_file_get_contents (npy2, &contents, &len, NULL));
    g_assert_cmpuint (len, ==, 128 + 5 * 2 * 4);
    g_assert_cmpint (contents[127], ==, '\n');
    g_free (contents);
  }
  simclr_index_free (idx);
  simclr_index_free (back);
  g_free (npy);
  g_free (csv);
  g_free (npy2);
  g_free (csv2);
}

static void
test_f64 (void)
{
  const double x[4] = { 1, 0, 0, 2 };
  gchar *npy = tmp_path ("f64.npy"), *csv = tmp_path ("f64.npy.csv");
  SimclrError err = { 0 };
  SimclrIndex *idx;
  write_npy_raw (npy, "{'descr': '<f8', 'fortran_order': False, 'shape': "
      "(2, 2), }", x, sizeof x);
  write_text (csv, "index,pts_ns,sample_id,view,label\n0,,,,\n1,,,,\n");
  idx = simclr_index_load (npy, csv, &err);
  g_assert_nonnull (idx);
  g_assert_cmpfloat (simclr_index_row (idx, 1)[1], ==, 1.0f);
  simclr_index_free (idx);
  g_free (npy);
  g_free (csv);
}

typedef struct {
  const char *name;
  const char *dict;             /* NULL: a valid (2, 2) f32 header */
  int data_floats;              /* floats of data written */
  int nan_row;                  /* -1: none */
  const char *csv;              /* NULL: no sidecar file */
  SimclrStatus status;
  const char *in_message;       /* besides the file name */
  int names_csv;                /* 1: the message must name the CSV */
} BadCase;

#define CSV_OK "index,pts_ns,sample_id,view,label\n0,,,,\n1,,,,\n"

static const BadCase bad_cases[] = {
  {"csv-fewer-rows", NULL, 4, -1, "index,pts_ns,sample_id,view,label\n0,,,,\n",
      SIMCLR_ERROR_MISMATCH, "disagree", 1},
  {"csv-more-rows", NULL, 4, -1, CSV_OK "2,,,,\n", SIMCLR_ERROR_MISMATCH,
      "more rows", 1},
  {"empty", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }", 0,
      -1, "index,pts_ns,sample_id,view,label\n", SIMCLR_ERROR_INVALID_ARGUMENT,
      "empty", 0},
  {"nan-row", NULL, 4, 1, CSV_OK, SIMCLR_ERROR_NUMERIC, "row 1", 0},
  {"no-csv", NULL, 4, -1, NULL, SIMCLR_ERROR_IO, "sidecar", 1},
  {"bad-header", NULL, 4, -1, "row,time\n0,,,,\n1,,,,\n", SIMCLR_ERROR_FORMAT,
      "line 1", 1},
  {"out-of-order", NULL, 4, -1, "index,pts_ns,sample_id,view,label\n1,,,,\n"
        "0,,,,\n", SIMCLR_ERROR_FORMAT, "line 2", 1},
  {"bad-line", NULL, 4, -1, "index,pts_ns,sample_id,view,label\n0,,,,\n"
        "1,x,,,\n", SIMCLR_ERROR_FORMAT, "line 3", 1},
  {"int-dtype", "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }",
      4, -1, CSV_OK, SIMCLR_ERROR_FORMAT, "dtype", 0},
  {"fortran", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 4,
      -1, CSV_OK, SIMCLR_ERROR_FORMAT, "fortran_order", 0},
  {"one-d", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 4,
      -1, CSV_OK, SIMCLR_ERROR_FORMAT, "shape", 0},
  {"truncated", NULL, 3, -1, CSV_OK, SIMCLR_ERROR_FORMAT, "bytes", 0},
  {"not-npy", "", 0, -1, CSV_OK, SIMCLR_ERROR_FORMAT, "magic", 0},
};

static void
test_bad_file (gconstpointer data)
{
  const BadCase *c = data;
  gchar *base = g_strdup_printf ("bad-%s.npy", c->name);
  gchar *npy = tmp_path (base), *csv = g_strconcat (npy, ".csv", NULL);
  float x[4] = { 1, 2, 3, 4 };
  SimclrError err = { 0 };
  SimclrIndex *idx;

  if (c->nan_row >= 0)
    x[c->nan_row * 2 + 1] = NAN;
  if (c->dict && c->dict[0] == '\0')
    write_text (npy, "this is not an array");
  else if (c->dict)
    write_npy_raw (npy, c->dict, x, c->data_floats * sizeof (float));
  else
    write_npy_raw (npy, "{'descr': '<f4', 'fortran_order': False, 'shape': "
        "(2, 2), }", x, c->data_floats * sizeof (float));
  g_unlink (csv);
  if (c->csv)
    write_text (csv, c->csv);

  idx = simclr_index_load (npy, NULL, &err);
  if (idx || err.status != c->status || !strstr (err.message, c->in_message)
      || !strstr (err.message, c->names_csv ? csv : npy)) {
    g_printerr ("case %s: status %d (%d expected), message \"%s\" (should "
        "name %s and say \"%s\")\n", c->name, err.status, c->status,
        err.message, c->names_csv ? csv : npy, c->in_message);
    g_assert_not_reached ();
  }
  g_free (base);
  g_free (npy);
  g_free (csv);
}

static void
test_save_error (void)
{
  SimclrError err = { 0 };
  SimclrIndex *idx = simclr_index_new (2, &err);
  const float x[2] = { 1, 1 };
  g_assert_cmpint (simclr_index_add (idx, x, 1, NULL, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_index_save (idx, "/nonexistent-dir/i.npy", NULL,
          &err), ==, SIMCLR_ERROR_IO);
  g_assert_nonnull (strstr (err.message, "/nonexistent-dir/i.npy"));
  simclr_index_free (idx);
}

int
main (int argc, char **argv)
{
  int ret;
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("test-index-XXXXXX", NULL);
  g_assert_nonnull (tmpdir);
  for (guint i = 0; i < G_N_ELEMENTS (topk_cases); i++) {
    gchar *p = g_strdup_printf ("/index/topk/n%lld-d%d-k%d",
        (long long) topk_cases[i].n, topk_cases[i].d, topk_cases[i].k);
    g_test_add_data_func (p, &topk_cases[i], test_topk);
    g_free (p);
  }
  g_test_add_func ("/index/ties", test_ties);
  g_test_add_func ("/index/search-errors", test_search_errors);
  g_test_add_func ("/index/group", test_group);
  g_test_add_func ("/index/npysink-files-round-trip",
      test_npysink_files_and_round_trip);
  g_test_add_func ("/index/f64", test_f64);
  for (guint i = 0; i < G_N_ELEMENTS (bad_cases); i++) {
    gchar *p = g_strdup_printf ("/index/bad-file/%s", bad_cases[i].name);
    g_test_add_data_func (p, &bad_cases[i], test_bad_file);
    g_free (p);
  }
  g_test_add_func ("/index/save-error", test_save_error);
  ret = g_test_run ();
  {
    GDir *dir = g_dir_open (tmpdir, 0, NULL);
    const gchar *name;
    while (dir && (name = g_dir_read_name (dir))) {
      gchar *p = g_build_filename (tmpdir, name, NULL);
      g_unlink (p);
      g_free (p);
    }
    if (dir)
      g_dir_close (dir);
    g_rmdir (tmpdir);
  }
  g_free (tmpdir);
  return ret;
}
