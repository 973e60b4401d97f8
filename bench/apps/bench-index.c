/* bench-index: exact cosine top-k queries/s of the similarity index
 * (include/simclr/index.h) on random unit vectors; prints a table, asserts
 * nothing. With --dump DIR it also writes the database, the queries and its
 * top-k rows as .npy (+ CSV) so compare-faiss.py can check FAISS returns
 * the same neighbours.
 *
 *   bench-index [--sizes 10000,100000,1000000] [--dim 128] [--queries 1000]
 *               [--k 10] [--repeat 3] [--dump DIR]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simclr/simclr.h"

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *
gaussian (int64_t n, int d, uint64_t seed)
{
  float *x = malloc ((size_t) n * d * sizeof (float));
  for (int64_t i = 0; x && i < n * d; i++)
    x[i] = (float) simclr_rng_normal (seed, 0, (uint64_t) i);
  return x;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  const char *sizes = "10000,100000,1000000", *dump = NULL;
  int d = 128, nq = 1000, k = 10, repeat = 3;
  SimclrError err = { 0 };

  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp (argv[i], "--sizes"))
      sizes = argv[i + 1];
    else if (!strcmp (argv[i], "--dim"))
      d = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--queries"))
      nq = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--k"))
      k = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--repeat"))
      repeat = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--dump"))
      dump = argv[i + 1];
    else {
      fprintf (stderr, "bench-index: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  printf ("exact cosine top-%d, dimension %d, %d queries per run, %d runs "
      "(min / median / max queries/s)\n", k, d, nq, repeat);
  for (const char *p = sizes; *p;) {
    int64_t n = strtoll (p, (char **) &p, 10);
    float *x = gaussian (n, d, 1), *q = gaussian (nq, d, 2);
    int64_t *rows = malloc ((size_t) nq * k * sizeof (int64_t));
    float *scores = malloc ((size_t) nq * k * sizeof (float));
    double *qps = malloc ((size_t) repeat * sizeof (double)), t0;
    SimclrIndex *idx = simclr_index_new (d, &err);
    if (*p == ',')
      p++;
    if (!x || !q || !rows || !scores || !idx
        || simclr_index_add (idx, x, n, NULL, &err) != SIMCLR_OK) {
      fprintf (stderr, "bench-index: %s\n", err.message[0] ? err.message :
          "out of memory");
      return 1;
    }
    free (x);
    for (int r = 0; r < repeat; r++) {
      t0 = now ();
      if (simclr_index_search (idx, q, nq, k, rows, scores, &err)
          != SIMCLR_OK) {
        fprintf (stderr, "bench-index: %s\n", err.message);
        return 1;
      }
      qps[r] = nq / (now () - t0);
    }
    qsort (qps, repeat, sizeof (double), cmp_double);
    printf ("RESULT gst-simclr n=%lld queries/s %.0f / %.0f / %.0f\n",
        (long long) n, qps[0], qps[repeat / 2], qps[repeat - 1]);
    fflush (stdout);
    if (dump && n <= 100000) {
      char path[4096];
      SimclrIndex *qi = simclr_index_new (d, &err);
      /* The unit rows and queries, through the index's own writer. */
      snprintf (path, sizeof path, "%s/db-%lld.npy", dump, (long long) n);
      simclr_index_save (idx, path, NULL, &err);
      simclr_index_add (qi, q, nq, NULL, &err);
      snprintf (path, sizeof path, "%s/queries-%lld.npy", dump,
          (long long) n);
      simclr_index_save (qi, path, NULL, &err);
      snprintf (path, sizeof path, "%s/rows-%lld.txt", dump, (long long) n);
      {
        FILE *f = fopen (path, "w");
        for (int64_t i = 0; f && i < (int64_t) nq * k; i++)
          fprintf (f, "%lld%c", (long long) rows[i], (i + 1) % k ? ' ' : '\n');
        if (f)
          fclose (f);
      }
      simclr_index_free (qi);
    }
    simclr_index_free (idx);
    free (q);
    free (rows);
    free (scores);
    free (qps);
  }
  return 0;
}
