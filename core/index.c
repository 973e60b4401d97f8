/* index.c: the similarity index (include/simclr/index.h): unit rows, exact
 * cosine top-k by blocked sgemm plus a k-heap per query, .npy + CSV files.
 * Not an approximate index and not an embedding computer. */
#include "simclr/index.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

/* Scores are computed for QUERY_BLOCK queries against ROW_BLOCK rows at a
 * time: a (64 x 8192) float block is 2 MB, so the selection pass reads it
 * from cache right after the product, and memory does not grow with n. */
#define QUERY_BLOCK 64
#define ROW_BLOCK 8192
#define MAX_DIM 65536
#define NPY_HEADER_SIZE 128
#define CSV_HEADER "index,pts_ns,sample_id,view,label"

struct SimclrIndex {
  int dim;
  int64_t n, capacity;
  float *rows;                  /* (capacity, dim), the first n used */
  SimclrIndexEntry *entries;    /* (capacity); names owned (malloc) */
};

SimclrIndex *
simclr_index_new (int dim, SimclrError *err)
{
  SimclrIndex *idx;
  if (dim < 1 || dim > MAX_DIM) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index: dimension %d is outside [1, %d]", dim, MAX_DIM);
    return NULL;
  }
  idx = calloc (1, sizeof *idx);
  if (!idx) {
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "index: out of memory");
    return NULL;
  }
  idx->dim = dim;
  return idx;
}

void
simclr_index_free (SimclrIndex *idx)
{
  if (!idx)
    return;
  for (int64_t i = 0; i < idx->n; i++)
    free ((char *) idx->entries[i].name);
  free (idx->entries);
  free (idx->rows);
  free (idx);
}

int
simclr_index_dim (const SimclrIndex *idx)
{
  return idx->dim;
}

int64_t
simclr_index_size (const SimclrIndex *idx)
{
  return idx->n;
}

const float *
simclr_index_row (const SimclrIndex *idx, int64_t i)
{
  if (i < 0 || i >= idx->n)
    return NULL;
  return idx->rows + (size_t) i * idx->dim;
}

const SimclrIndexEntry *
simclr_index_entry (const SimclrIndex *idx, int64_t i)
{
  if (i < 0 || i >= idx->n)
    return NULL;
  return &idx->entries[i];
}

static SimclrStatus
reserve (SimclrIndex *idx, int64_t need, SimclrError *err)
{
  int64_t cap = idx->capacity;
  float *rows;
  SimclrIndexEntry *entries;
  if (need <= cap)
    return SIMCLR_OK;
  if (cap < 64)
    cap = 64;
  while (cap < need)
    cap *= 2;
  rows = realloc (idx->rows, (size_t) cap * idx->dim * sizeof (float));
  if (!rows)
    goto no_memory;
  idx->rows = rows;
  entries = realloc (idx->entries, (size_t) cap * sizeof *entries);
  if (!entries)
    goto no_memory;
  idx->entries = entries;
  idx->capacity = cap;
  return SIMCLR_OK;

no_memory:
  return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
      "index: out of memory for %lld rows of %d floats", (long long) need,
      idx->dim);
}

/* Scales @v (d) to unit length in place; the norm is summed in double so a
 * long row keeps its precision. Returns 0 if a value is not finite. A zero
 * row stays zero. */
static int
normalize (float *v, int d)
{
  double ss = 0.0;
  for (int j = 0; j < d; j++) {
    if (!isfinite (v[j]))
      return 0;
    ss += (double) v[j] * v[j];
  }
  if (ss > 0.0) {
    float inv = (float) (1.0 / sqrt (ss));
    for (int j = 0; j < d; j++)
      v[j] *= inv;
  }
  return 1;
}

/* Makes room for @n more rows and sets their entries, without the data. */
static SimclrStatus
append_entries (SimclrIndex *idx, int64_t n, const SimclrIndexEntry *entries,
    SimclrError *err)
{
  SimclrStatus s = reserve (idx, idx->n + n, err);
  if (s != SIMCLR_OK)
    return s;
  for (int64_t i = 0; i < n; i++) {
    SimclrIndexEntry *e = &idx->entries[idx->n + i];
    if (entries) {
      *e = entries[i];
      e->name = NULL;
      if (entries[i].name) {
        e->name = strdup (entries[i].name);
        if (!e->name) {
          for (int64_t j = 0; j < i; j++)
            free ((char *) idx->entries[idx->n + j].name);
          return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
              "index: out of memory for row names");
        }
      }
    } else {
      e->id = idx->n + i;
      e->pts_ns = -1;
      e->view = -1;
      e->label = -1;
      e->name = NULL;
    }
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_index_add (SimclrIndex *idx, const float *rows, int64_t n,
    const SimclrIndexEntry *entries, SimclrError *err)
{
  const int d = idx->dim;
  SimclrStatus s;
  if (n < 0 || (n > 0 && !rows))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index: add of %lld rows without data", (long long) n);
  if (n == 0)
    return SIMCLR_OK;
  s = reserve (idx, idx->n + n, err);
  if (s != SIMCLR_OK)
    return s;
  float *dst = idx->rows + (size_t) idx->n * d;
  memcpy (dst, rows, (size_t) n * d * sizeof (float));
  for (int64_t i = 0; i < n; i++)
    if (!normalize (dst + (size_t) i * d, d))
      return simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
          "index: row %lld of the rows added has a non-finite value",
          (long long) i);
  s = append_entries (idx, n, entries, err);
  if (s != SIMCLR_OK)
    return s;
  idx->n += n;
  return SIMCLR_OK;
}

/* ---- search ------------------------------------------------------------- */

typedef struct {
  float score;
  int64_t row;
} Hit;

/* a ranks before b: higher score, then lower row. */
static inline int
better (float sa, int64_t ra, float sb, int64_t rb)
{
  return sa > sb || (sa == sb && ra < rb);
}

/* Min-heap on "better": heap[0] is the worst kept hit. */
static void
sift_down (Hit *heap, int size, int i)
{
  for (;;) {
    int l = 2 * i + 1, r = l + 1, w = i;
    if (l < size && better (heap[w].score, heap[w].row, heap[l].score,
            heap[l].row))
      w = l;
    if (r < size && better (heap[w].score, heap[w].row, heap[r].score,
            heap[r].row))
      w = r;
    if (w == i)
      return;
    Hit t = heap[i];
    heap[i] = heap[w];
    heap[w] = t;
    i = w;
  }
}

static void
sift_up (Hit *heap, int i)
{
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!better (heap[p].score, heap[p].row, heap[i].score, heap[i].row))
      return;
    Hit t = heap[i];
    heap[i] = heap[p];
    heap[p] = t;
    i = p;
  }
}

static int
cmp_hit_best_first (const void *a, const void *b)
{
  const Hit *x = a, *y = b;
  if (better (x->score, x->row, y->score, y->row))
    return -1;
  if (better (y->score, y->row, x->score, x->row))
    return 1;
  return 0;
}

SimclrStatus
simclr_index_search (const SimclrIndex *idx, const float *queries, int64_t nq,
    int k, int64_t *out_rows, float *out_scores, SimclrError *err)
{
  const int d = idx->dim;
  const int64_t n = idx->n;
  const int keep = (int64_t) k < n ? k : (int) n;
  float *q = NULL, *scores = NULL;
  Hit *heaps = NULL;
  int *sizes = NULL;
  SimclrStatus status = SIMCLR_OK;

  if (k < 1)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index search: k = %d, must be at least 1", k);
  if (n == 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index search: the index is empty");
  if (nq < 0 || (nq > 0 && (!queries || !out_rows)))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index search: no query or no output array");
  if (nq == 0)
    return SIMCLR_OK;

  q = malloc ((size_t) QUERY_BLOCK * d * sizeof (float));
  scores = malloc ((size_t) QUERY_BLOCK * ROW_BLOCK * sizeof (float));
  heaps = malloc ((size_t) QUERY_BLOCK * keep * sizeof (Hit));
  sizes = malloc (QUERY_BLOCK * sizeof (int));
  if (!q || !scores || !heaps || !sizes) {
    status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "index search: out of memory");
    goto done;
  }

  for (int64_t q0 = 0; q0 < nq; q0 += QUERY_BLOCK) {
    const int qb = nq - q0 < QUERY_BLOCK ? (int) (nq - q0) : QUERY_BLOCK;
    memcpy (q, queries + (size_t) q0 * d, (size_t) qb * d * sizeof (float));
    for (int i = 0; i < qb; i++) {
      if (!normalize (q + (size_t) i * d, d)) {
        status = simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
            "index search: query %lld has a non-finite value",
            (long long) (q0 + i));
        goto done;
      }
      sizes[i] = 0;
    }
    for (int64_t r0 = 0; r0 < n; r0 += ROW_BLOCK) {
      const int rb = n - r0 < ROW_BLOCK ? (int) (n - r0) : ROW_BLOCK;
      /* scores (qb, rb) = q (qb, d) . rows[r0 .. r0+rb) (rb, d)^T:
       * M = qb, N = rb, K = d. */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, qb, rb, d, 1.0f,
          q, d, idx->rows + (size_t) r0 * d, d, 0.0f, scores, rb);
      for (int i = 0; i < qb; i++) {
        Hit *heap = heaps + (size_t) i * keep;
        const float *s = scores + (size_t) i * rb;
        int size = sizes[i];
        int j = 0;
        /* Fill the heap first, then a candidate replaces the worst kept
         * hit only if it ranks before it. Rows come in increasing order, so
         * an equal score never displaces a kept hit (ties: lower row). */
        for (; j < rb && size < keep; j++) {
          heap[size].score = s[j];
          heap[size].row = r0 + j;
          sift_up (heap, size);
          size++;
        }
        float worst = heap[0].score;
        for (; j < rb; j++) {
          if (s[j] > worst) {
            heap[0].score = s[j];
            heap[0].row = r0 + j;
            sift_down (heap, keep, 0);
            worst = heap[0].score;
          }
        }
        sizes[i] = size;
      }
    }
    for (int i = 0; i < qb; i++) {
      Hit *heap = heaps + (size_t) i * keep;
      int64_t *orow = out_rows + (size_t) (q0 + i) * k;
      float *oscore = out_scores ? out_scores + (size_t) (q0 + i) * k : NULL;
      qsort (heap, sizes[i], sizeof (Hit), cmp_hit_best_first);
      for (int j = 0; j < k; j++) {
        orow[j] = j < sizes[i] ? heap[j].row : -1;
        if (oscore)
          oscore[j] = j < sizes[i] ? heap[j].score : -INFINITY;
      }
    }
  }

done:
  free (q);
  free (scores);
  free (heaps);
  free (sizes);
  return status;
}

/* ---- grouping ----------------------------------------------------------- */

SimclrStatus
simclr_index_group (const SimclrIndex *idx, double threshold, int64_t *group,
    float *leader_score, int64_t *n_groups, SimclrError *err)
{
  const int d = idx->dim;
  int64_t nl = 0, cap = 0;
  float *leaders = NULL, *sims = NULL;
  int64_t *leader_group = NULL;

  if (!(threshold >= -1.0 && threshold <= 1.0))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index grouping: threshold %g is outside [-1, 1] (a cosine "
        "similarity)", threshold);
  if (idx->n == 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index grouping: the index is empty");
  for (int64_t i = 0; i < idx->n; i++) {
    const float *row = idx->rows + (size_t) i * d;
    int64_t best = -1;
    float best_sim = 0.0f;
    if (nl > 0) {
      /* sims (nl) = leaders (nl, d) . row (d) */
      cblas_sgemv (CblasRowMajor, CblasNoTrans, (int) nl, d, 1.0f, leaders, d,
          row, 1, 0.0f, sims, 1);
      for (int64_t l = 0; l < nl; l++)
        if (best < 0 || sims[l] > best_sim) {
          best = l;
          best_sim = sims[l];
        }
    }
    if (best >= 0 && best_sim >= threshold) {
      group[i] = leader_group[best];
      if (leader_score)
        leader_score[i] = best_sim;
      continue;
    }
    if (nl == cap) {
      int64_t nc = cap ? 2 * cap : 256;
      float *l2 = realloc (leaders, (size_t) nc * d * sizeof (float));
      float *s2 = l2 ? realloc (sims, (size_t) nc * sizeof (float)) : NULL;
      int64_t *g2 = s2 ? realloc (leader_group, (size_t) nc * sizeof
          (int64_t)) : NULL;
      if (l2)
        leaders = l2;
      if (s2)
        sims = s2;
      if (!g2) {
        free (leaders);
        free (sims);
        free (leader_group);
        return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
            "index grouping: out of memory");
      }
      leader_group = g2;
      cap = nc;
    }
    memcpy (leaders + (size_t) nl * d, row, (size_t) d * sizeof (float));
    leader_group[nl] = nl;
    group[i] = nl;
    if (leader_score)
      leader_score[i] = 1.0f;
    nl++;
  }
  free (leaders);
  free (sims);
  free (leader_group);
  *n_groups = nl;
  return SIMCLR_OK;
}

/* ---- .npy --------------------------------------------------------------- */

/* Finds the value after 'key': in a .npy header dict; NULL if absent. */
static const char *
dict_value (const char *dict, const char *key)
{
  char pat[64];
  const char *p;
  snprintf (pat, sizeof pat, "'%s':", key);
  p = strstr (dict, pat);
  if (!p)
    return NULL;
  p += strlen (pat);
  while (*p == ' ')
    p++;
  return p;
}

/* Reads the array into a new index (unit rows, default entries). */
static SimclrIndex *
read_npy (const char *path, SimclrError *err)
{
  FILE *f = fopen (path, "rb");
  unsigned char pre[12];
  char *dict = NULL;
  size_t hlen, data_off, esize;
  long long rows = -1, cols = -1;
  int f8 = 0;
  SimclrIndex *idx = NULL;
  struct stat st;
  const char *v;

  if (!f) {
    simclr_error_set (err, SIMCLR_ERROR_IO, "index: cannot open \"%s\": %s",
        path, strerror (errno));
    return NULL;
  }
  if (fread (pre, 1, 10, f) != 10 || memcmp (pre, "\x93NUMPY", 6) != 0) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" is not a NumPy .npy file (no \\x93NUMPY magic)", path);
    goto fail;
  }
  if (pre[6] == 1) {
    hlen = pre[8] | (size_t) pre[9] << 8;
    data_off = 10 + hlen;
  } else if (pre[6] == 2 || pre[6] == 3) {
    if (fread (pre + 10, 1, 2, f) != 2)
      goto truncated;
    hlen = pre[8] | (size_t) pre[9] << 8 | (size_t) pre[10] << 16
        | (size_t) pre[11] << 24;
    data_off = 12 + hlen;
  } else {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" has .npy format version %d.%d (1, 2 or 3 expected)",
        path, pre[6], pre[7]);
    goto fail;
  }
  if (hlen > (1 << 20)) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" has an implausible .npy header length %zu", path, hlen);
    goto fail;
  }
  dict = malloc (hlen + 1);
  if (!dict)
    goto no_memory;
  if (fread (dict, 1, hlen, f) != hlen)
    goto truncated;
  dict[hlen] = '\0';

  v = dict_value (dict, "descr");
  if (v && (strncmp (v, "'<f4'", 5) == 0 || strncmp (v, "'=f4'", 5) == 0))
    f8 = 0;
  else if (v && (strncmp (v, "'<f8'", 5) == 0 || strncmp (v, "'=f8'", 5) == 0))
    f8 = 1;
  else {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" holds dtype %.12s; float32 ('<f4') or float64 "
        "('<f8') expected", path, v ? v : "(none)");
    goto fail;
  }
  v = dict_value (dict, "fortran_order");
  if (!v || strncmp (v, "False", 5) != 0) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" is not a C-order array (fortran_order must be False)",
        path);
    goto fail;
  }
  v = dict_value (dict, "shape");
  if (!v || sscanf (v, "(%lld, %lld)", &rows, &cols) != 2 || rows < 0
      || cols < 0) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" has shape %.40s; a 2-D (rows, dimension) array is "
        "expected", path, v ? v : "(none)");
    goto fail;
  }
  if (rows == 0) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index: \"%s\" is empty (0 rows): nothing to search", path);
    goto fail;
  }
  if (cols < 1 || cols > MAX_DIM) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" has rows of %lld values; 1 .. %d expected", path, cols,
        MAX_DIM);
    goto fail;
  }
  esize = f8 ? 8 : 4;
  if (fstat (fileno (f), &st) != 0 || (unsigned long long) st.st_size
      != data_off + (unsigned long long) rows * cols * esize) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" has %lld bytes; shape (%lld, %lld) of %zu-byte floats "
        "needs %llu", path, (long long) st.st_size, rows, cols, esize,
        (unsigned long long) (data_off + (unsigned long long) rows * cols *
            esize));
    goto fail;
  }

  idx = simclr_index_new ((int) cols, err);
  if (!idx)
    goto fail;
  if (reserve (idx, rows, err) != SIMCLR_OK)
    goto fail;
  if (!f8) {
    if (fread (idx->rows, esize, (size_t) rows * cols, f) !=
        (size_t) rows * cols)
      goto truncated;
  } else {
    double buf[1024];
    size_t total = (size_t) rows * cols, done = 0;
    while (done < total) {
      size_t m = total - done < 1024 ? total - done : 1024;
      if (fread (buf, 8, m, f) != m)
        goto truncated;
      for (size_t j = 0; j < m; j++)
        idx->rows[done + j] = (float) buf[j];
      done += m;
    }
  }
  for (long long i = 0; i < rows; i++)
    if (!normalize (idx->rows + (size_t) i * cols, (int) cols)) {
      simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
          "index: row %lld of \"%s\" has a non-finite value (NaN or "
          "infinity)", i, path);
      goto fail;
    }
  if (append_entries (idx, rows, NULL, err) != SIMCLR_OK)
    goto fail;
  idx->n = rows;
  free (dict);
  fclose (f);
  return idx;

truncated:
  simclr_error_set (err, SIMCLR_ERROR_FORMAT, "index: \"%s\" is truncated",
      path);
  goto fail;
no_memory:
  simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
      "index: out of memory reading \"%s\"", path);
fail:
  simclr_index_free (idx);
  free (dict);
  fclose (f);
  return NULL;
}

/* ---- CSV ---------------------------------------------------------------- */

/* Splits @line (modified in place) into at most @max fields; a field may be
 * quoted ("a,b" with "" for a quote). Returns the field count, -1 on an
 * unterminated quote. */
static int
split_csv (char *line, char **fields, int max)
{
  int nf = 0;
  char *p = line;
  for (;;) {
    char *start = p, *w = p;
    if (nf == max)
      return nf + 1;            /* too many */
    if (*p == '"') {
      p++;
      for (;;) {
        if (*p == '\0')
          return -1;
        if (*p == '"' && p[1] == '"') {
          *w++ = '"';
          p += 2;
        } else if (*p == '"') {
          p++;
          break;
        } else
          *w++ = *p++;
      }
      if (*p != ',' && *p != '\0')
        return -1;
    } else {
      while (*p != ',' && *p != '\0')
        *w++ = *p++;
    }
    fields[nf++] = start;
    if (*p == '\0') {
      *w = '\0';
      return nf;
    }
    p++;
    *w = '\0';
  }
}

/* Parses an optional integer field: empty -> @unknown. 0 on garbage. */
static int
parse_int_field (const char *s, int64_t unknown, int64_t *out)
{
  char *end;
  long long v;
  if (*s == '\0') {
    *out = unknown;
    return 1;
  }
  errno = 0;
  v = strtoll (s, &end, 10);
  if (errno != 0 || *end != '\0')
    return 0;
  *out = v;
  return 1;
}

static SimclrStatus
read_csv (SimclrIndex *idx, const char *npy_path, const char *path,
    SimclrError *err)
{
  FILE *f = fopen (path, "r");
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int64_t row = 0, lineno = 1;
  int has_name = 0;
  SimclrStatus s = SIMCLR_OK;

  if (!f)
    return simclr_error_set (err, SIMCLR_ERROR_IO,
        "index: cannot open the sidecar \"%s\" of \"%s\": %s (it names each "
        "row: %s[,name])", path, npy_path, strerror (errno), CSV_HEADER);
  len = getline (&line, &cap, f);
  if (len < 0) {
    s = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: the sidecar \"%s\" is empty (header %s expected)", path,
        CSV_HEADER);
    goto done;
  }
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  if (strcmp (line, CSV_HEADER) == 0)
    has_name = 0;
  else if (strcmp (line, CSV_HEADER ",name") == 0)
    has_name = 1;
  else {
    s = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "index: \"%s\" line 1 is \"%.80s\"; the header %s[,name] is "
        "expected", path, line, CSV_HEADER);
    goto done;
  }
  while ((len = getline (&line, &cap, f)) >= 0) {
    char *fields[7];
    int nf, want = has_name ? 6 : 5;
    int64_t index, pts, id, view, label;
    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    if (len == 0)
      continue;                 /* a trailing blank line */
    if (row >= idx->n) {
      s = simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
          "index: \"%s\" has more rows than the %lld of \"%s\" (line %lld)",
          path, (long long) idx->n, npy_path, (long long) lineno);
      goto done;
    }
    nf = split_csv (line, fields, 6);
    if (nf != want || !parse_int_field (fields[0], -2, &index)
        || !parse_int_field (fields[1], -1, &pts)
        || !parse_int_field (fields[2], -1, &id)
        || !parse_int_field (fields[3], -1, &view)
        || !parse_int_field (fields[4], -1, &label)) {
      s = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "index: \"%s\" line %lld is malformed (%d integer fields%s "
          "expected)", path, (long long) lineno, 5, has_name ? " and a name" :
          "");
      goto done;
    }
    if (index != row) {
      s = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "index: \"%s\" line %lld has index %lld; rows must be listed in "
          "order (index %lld expected)", path, (long long) lineno,
          (long long) index, (long long) row);
      goto done;
    }
    SimclrIndexEntry *e = &idx->entries[row];
    e->pts_ns = pts;
    e->id = id;
    e->view = (int) view;
    e->label = (int) label;
    if (has_name && fields[5][0] != '\0') {
      e->name = strdup (fields[5]);
      if (!e->name) {
        s = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
            "index: out of memory reading \"%s\"", path);
        goto done;
      }
    }
    row++;
  }
  if (row != idx->n)
    s = simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "index: \"%s\" has %lld rows but \"%s\" names %lld: the array and its "
        "sidecar disagree", npy_path, (long long) idx->n, path,
        (long long) row);

done:
  free (line);
  fclose (f);
  return s;
}

SimclrIndex *
simclr_index_load (const char *npy_path, const char *csv_path,
    SimclrError *err)
{
  SimclrIndex *idx;
  char *csv = NULL;
  if (!npy_path || !*npy_path) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index: no .npy file named");
    return NULL;
  }
  if (!csv_path) {
    csv = malloc (strlen (npy_path) + 5);
    if (!csv) {
      simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "index: out of memory");
      return NULL;
    }
    strcpy (csv, npy_path);
    strcat (csv, ".csv");
    csv_path = csv;
  }
  idx = read_npy (npy_path, err);
  if (idx && read_csv (idx, npy_path, csv_path, err) != SIMCLR_OK) {
    simclr_index_free (idx);
    idx = NULL;
  }
  free (csv);
  return idx;
}

/* ---- save --------------------------------------------------------------- */

static FILE *
open_temp_beside (const char *path, char **tmp_path)
{
  char *tmpl = malloc (strlen (path) + 8);
  int fd;
  FILE *f;
  if (!tmpl)
    return NULL;
  strcpy (tmpl, path);
  strcat (tmpl, ".XXXXXX");
  fd = mkstemp (tmpl);
  if (fd < 0) {
    free (tmpl);
    return NULL;
  }
  (void) fchmod (fd, 0644);
  f = fdopen (fd, "wb");
  if (!f) {
    close (fd);
    unlink (tmpl);
    free (tmpl);
    return NULL;
  }
  *tmp_path = tmpl;
  return f;
}

/* Closes @f (fsync first) and renames @tmp to @path; removes @tmp on any
 * failure. */
static SimclrStatus
finish_temp (FILE *f, char *tmp, const char *path, int ok, SimclrError *err)
{
  int saved = 0;
  if (ok && (fflush (f) != 0 || fsync (fileno (f)) != 0))
    ok = 0;
  if (!ok)
    saved = errno;
  if (fclose (f) != 0 && ok) {
    ok = 0;
    saved = errno;
  }
  if (ok && rename (tmp, path) != 0) {
    ok = 0;
    saved = errno;
  }
  if (!ok)
    unlink (tmp);
  free (tmp);
  if (!ok)
    return simclr_error_set (err, SIMCLR_ERROR_IO,
        "index: cannot write \"%s\": %s", path, strerror (saved));
  return SIMCLR_OK;
}

static int
write_csv_name (FILE *f, const char *name)
{
  if (!strpbrk (name, ",\"\n\r"))
    return fputs (name, f) >= 0;
  if (fputc ('"', f) == EOF)
    return 0;
  for (const char *p = name; *p; p++) {
    if (*p == '"' && fputc ('"', f) == EOF)
      return 0;
    if (fputc (*p, f) == EOF)
      return 0;
  }
  return fputc ('"', f) != EOF;
}

static void
write_opt (FILE *f, int64_t v)
{
  if (v >= 0)
    fprintf (f, "%lld", (long long) v);
}

SimclrStatus
simclr_index_save (const SimclrIndex *idx, const char *npy_path,
    const char *csv_path, SimclrError *err)
{
  unsigned char header[NPY_HEADER_SIZE];
  char dict[NPY_HEADER_SIZE], *tmp = NULL, *csv = NULL;
  FILE *f;
  int ok, has_name = 0, len;
  SimclrStatus s;

  if (!npy_path || !*npy_path)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "index: no .npy file named for saving");
  if (!csv_path) {
    csv = malloc (strlen (npy_path) + 5);
    if (!csv)
      return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
          "index: out of memory");
    strcpy (csv, npy_path);
    strcat (csv, ".csv");
    csv_path = csv;
  }

  /* The header as simclrnpysink writes it: v1.0, padded to 128 bytes. */
  len = snprintf (dict, sizeof dict, "{'descr': '<f4', 'fortran_order': "
      "False, 'shape': (%lld, %d), }", (long long) idx->n, idx->dim);
  memcpy (header, "\x93NUMPY\x01\x00", 8);
  header[8] = (NPY_HEADER_SIZE - 10) & 0xff;
  header[9] = (NPY_HEADER_SIZE - 10) >> 8;
  memset (header + 10, ' ', NPY_HEADER_SIZE - 10);
  memcpy (header + 10, dict, len);
  header[NPY_HEADER_SIZE - 1] = '\n';

  f = open_temp_beside (npy_path, &tmp);
  if (!f) {
    s = simclr_error_set (err, SIMCLR_ERROR_IO,
        "index: cannot create a temporary file beside \"%s\": %s", npy_path,
        strerror (errno));
    goto out;
  }
  ok = fwrite (header, 1, sizeof header, f) == sizeof header
      && fwrite (idx->rows, sizeof (float), (size_t) idx->n * idx->dim, f)
      == (size_t) idx->n * idx->dim;
  s = finish_temp (f, tmp, npy_path, ok, err);
  if (s != SIMCLR_OK)
    goto out;

  for (int64_t i = 0; i < idx->n; i++)
    if (idx->entries[i].name)
      has_name = 1;
  f = open_temp_beside (csv_path, &tmp);
  if (!f) {
    s = simclr_error_set (err, SIMCLR_ERROR_IO,
        "index: cannot create a temporary file beside \"%s\": %s", csv_path,
        strerror (errno));
    goto out;
  }
  ok = fputs (has_name ? CSV_HEADER ",name\n" : CSV_HEADER "\n", f) >= 0;
  for (int64_t i = 0; ok && i < idx->n; i++) {
    const SimclrIndexEntry *e = &idx->entries[i];
    fprintf (f, "%lld,", (long long) i);
    write_opt (f, e->pts_ns);
    fputc (',', f);
    write_opt (f, e->id);
    fprintf (f, ",%d,%d", e->view, e->label);
    if (has_name) {
      fputc (',', f);
      if (e->name)
        ok = write_csv_name (f, e->name);
    }
    ok = ok && fputc ('\n', f) != EOF;
  }
  ok = ok && !ferror (f);
  s = finish_temp (f, tmp, csv_path, ok, err);

out:
  free (csv);
  return s;
}
