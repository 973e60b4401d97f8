/* simclr-search: find the frames of an index most similar to query images.
 *
 *   simclr-search --index IDX.npy --query PATH [--query PATH ...] [options]
 *   simclr-search --build PATH --index IDX.npy [options]      (make an index)
 *
 * An index is a .npy of embeddings and its CSV sidecar, as simclrnpysink
 * writes them (or --build writes them from a folder of images or a video).
 * A query is an image, a folder of images or a video (every --every-th
 * frame); each is embedded with the same encoder as the index (--checkpoint,
 * --embed, --flip-average: the index and the queries must be embedded alike;
 * a dimension mismatch is an error naming the index file), and the index
 * returns the exact cosine top-k (include/simclr/index.h).
 *
 * Output: one line per match on stdout, a CSV (--csv; columns query,
 * query_frame, rank, row, id, pts_ns, score, name) and a contact sheet JPEG
 * (--sheet): each query (blue frame) beside its top matches with rank and
 * score. Thumbnails of index rows come from the row's name (the file
 * --build read) or, for an index written by simclrnpysink from a video,
 * from --source VIDEO (frame = the row's sample id).
 *
 * Query images of any size or channel count are resized to the encoder's
 * input (the whole frame squeezed into the square, no crop) and converted to
 * its channels, exactly as the index's frames were; nothing else is
 * changed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "apps-common.h"

typedef struct {
  char *path;                   /* the file the query frame came from */
  int64_t frame;
  int64_t pts_ns;
  AppsImage *thumb;
} Query;

typedef struct {
  SimclrEmbedder *emb;
  float *rows;                  /* grows: (n, dim) */
  size_t n, cap;
  GArray *entries;              /* SimclrIndexEntry (names owned) */
  GPtrArray *queries;           /* Query* when querying */
  int thumbs;                   /* keep query thumbnails */
  int tw, th;
  int64_t next_id;
  int failed;
} Collect;

static void
usage (FILE *f)
{
  fprintf (f,
      "usage: simclr-search --index IDX.npy --query PATH [--query PATH ...] "
      "[options]\n"
      "       simclr-search --build PATH --index IDX.npy [options]\n"
      "  --index FILE        the index (.npy; its sidecar FILE.csv)\n"
      "  --build PATH        embed an image, a folder of images or a video "
      "and\n"
      "                      write it as the index first\n"
      "  --query PATH        an image, a folder of images or a video (repeat)\n"
      "  --every N           take every N-th frame of videos (1)\n"
      "  -k, --k K           matches per query (5)\n"
      "  --csv FILE          write query,query_frame,rank,row,id,pts_ns,score,"
      "name\n"
      "  --sheet FILE.jpg    contact sheet: each query beside its matches\n"
      "  --sheet-queries N   queries on the sheet (20)\n"
      "  --source VIDEO      the video an index without names was made from\n"
      "                      (thumbnails of its rows)\n"
      "  --quiet             no line per match on stdout\n%s",
      apps_embed_usage);
}

static int
flush_batch (Collect *c)
{
  SimclrError err = { 0 };
  const int k = simclr_embedder_pending (c->emb), d = simclr_embedder_dim
      (c->emb);
  if (k == 0)
    return 0;
  if (c->n + k > c->cap) {
    c->cap = (c->n + k) * 2;
    c->rows = g_realloc (c->rows, c->cap * d * sizeof (float));
  }
  if (simclr_embedder_flush (c->emb, c->rows + c->n * d, &err) != SIMCLR_OK) {
    fprintf (stderr, "error: %s\n", err.message);
    return -1;
  }
  c->n += k;
  return 0;
}

static int
on_frame (const AppsFrame *f, void *user)
{
  Collect *c = user;
  SimclrError err = { 0 };
  if (simclr_embedder_push (c->emb, f->rgb, f->w, f->h, f->w * 3, 3, &err)
      != SIMCLR_OK) {
    fprintf (stderr, "error: %s: %s\n", f->path, err.message);
    c->failed = 1;
    return 1;
  }
  if (c->queries) {
    Query *q = g_new0 (Query, 1);
    q->path = g_strdup (f->path);
    q->frame = f->index;
    q->pts_ns = f->pts_ns;
    if (c->thumbs)
      q->thumb = apps_thumbnail (f->rgb, f->w, f->h, c->tw, c->th);
    g_ptr_array_add (c->queries, q);
  } else {
    SimclrIndexEntry e;
    /* An image's id counts the images; a video frame's is its number. */
    e.id = apps_is_image_name (f->path) ? c->next_id++ : f->index;
    e.pts_ns = f->pts_ns;
    e.view = -1;
    e.label = -1;
    e.name = g_strdup (f->path);
    g_array_append_val (c->entries, e);
  }
  if (simclr_embedder_pending (c->emb) == simclr_embedder_max_batch (c->emb)
      && flush_batch (c) != 0) {
    c->failed = 1;
    return 1;
  }
  return 0;
}

/* Embeds every frame of every input of @path into @c. */
static int
collect (Collect *c, const char *path, int every)
{
  char **files = apps_list_inputs (path);
  char err[1024];
  if (!files)
    return -1;
  for (char **f = files; *f; f++) {
    if (apps_decode (*f, every, on_frame, c, err, sizeof err) != 0) {
      fprintf (stderr, "error: %s\n", err);
      apps_strv_free (files);
      return -1;
    }
    if (c->failed) {
      apps_strv_free (files);
      return -1;
    }
  }
  apps_strv_free (files);
  return flush_batch (c);
}

/* Where the thumbnail of index row @e comes from. */
static const char *
row_source (const SimclrIndexEntry *e, const char *source, int64_t *frame)
{
  if (e->name) {
    *frame = apps_is_image_name (e->name) ? 0 : e->id;
    return e->name;
  }
  *frame = e->id >= 0 ? e->id : -1;
  return source;
}

static void
format_time (char *buf, size_t len, int64_t pts_ns)
{
  if (pts_ns >= 0)
    snprintf (buf, len, "%.3f s", pts_ns * 1e-9);
  else
    snprintf (buf, len, "-");
}

int
main (int argc, char **argv)
{
  AppsEmbedOptions eo = { 0 };
  const char *index_path = NULL, *build = NULL, *csv_path = NULL,
      *sheet_path = NULL, *source = NULL;
  GPtrArray *query_paths = g_ptr_array_new ();
  int k = 5, every = 1, sheet_queries = 20, quiet = 0, ret = 1;
  SimclrModel *model = NULL;
  SimclrEmbedder *emb = NULL;
  SimclrIndex *idx = NULL;
  SimclrError err = { 0 };
  Collect qc = { 0 };
  int64_t *hits = NULL;
  float *scores = NULL;
  FILE *csv = NULL;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r = apps_parse_embed_option (&eo, argc, argv, &i);
    if (r < 0)
      return 2;
    if (r > 0)
      continue;
    if (strcmp (a, "-h") == 0 || strcmp (a, "--help") == 0) {
      usage (stdout);
      return 0;
    }
    if (!strcmp (a, "--quiet")) {
      quiet = 1;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf (stderr, "error: %s needs a value (or is unknown; see --help)\n",
          a);
      return 2;
    }
    if (!strcmp (a, "--index"))
      index_path = argv[++i];
    else if (!strcmp (a, "--build"))
      build = argv[++i];
    else if (!strcmp (a, "--query"))
      g_ptr_array_add (query_paths, argv[++i]);
    else if (!strcmp (a, "--every"))
      every = atoi (argv[++i]);
    else if (!strcmp (a, "-k") || !strcmp (a, "--k"))
      k = atoi (argv[++i]);
    else if (!strcmp (a, "--csv"))
      csv_path = argv[++i];
    else if (!strcmp (a, "--sheet"))
      sheet_path = argv[++i];
    else if (!strcmp (a, "--sheet-queries"))
      sheet_queries = atoi (argv[++i]);
    else if (!strcmp (a, "--source"))
      source = argv[++i];
    else {
      fprintf (stderr, "error: unknown option %s (see --help)\n", a);
      return 2;
    }
  }
  if (!index_path || (!build && query_paths->len == 0)) {
    usage (stderr);
    return 2;
  }
  if (k < 1 || every < 1) {
    fprintf (stderr, "error: --k and --every must be at least 1\n");
    return 2;
  }

  emb = apps_embedder_new (&eo, &model);
  if (!emb)
    goto out;

  if (build) {
    Collect bc = { 0 };
    double t0 = apps_now ();
    bc.emb = emb;
    bc.entries = g_array_new (FALSE, FALSE, sizeof (SimclrIndexEntry));
    if (collect (&bc, build, every) == 0) {
      idx = simclr_index_new (simclr_embedder_dim (emb), &err);
      if (idx && simclr_index_add (idx, bc.rows, bc.n,
              (SimclrIndexEntry *) bc.entries->data, &err) == SIMCLR_OK
          && simclr_index_save (idx, index_path, NULL, &err) == SIMCLR_OK)
        printf ("built %s: %zu rows of %d (%s) from %s in %.1f s\n",
            index_path, bc.n, simclr_embedder_dim (emb),
            apps_embedder_describe (&eo), build, apps_now () - t0);
      else
        fprintf (stderr, "error: %s\n", err.message);
    }
    for (guint i = 0; i < bc.entries->len; i++)
      g_free ((char *) g_array_index (bc.entries, SimclrIndexEntry, i).name);
    g_array_free (bc.entries, TRUE);
    g_free (bc.rows);
    simclr_index_free (idx);
    idx = NULL;
    if (err.status != SIMCLR_OK || bc.failed)
      goto out;
  }
  if (query_paths->len == 0) {
    ret = 0;
    goto out;
  }

  idx = simclr_index_load (index_path, NULL, &err);
  if (!idx) {
    fprintf (stderr, "error: %s\n", err.message);
    goto out;
  }
  if (simclr_index_dim (idx) != simclr_embedder_dim (emb)) {
    fprintf (stderr, "error: the index \"%s\" holds rows of %d values but "
        "the queries' embedding (%s) has %d: embed the index and the queries "
        "with the same encoder and --embed\n", index_path,
        simclr_index_dim (idx), apps_embedder_describe (&eo),
        simclr_embedder_dim (emb));
    goto out;
  }

  qc.emb = emb;
  qc.queries = g_ptr_array_new ();
  qc.thumbs = sheet_path != NULL;
  qc.tw = 128;
  qc.th = 96;
  for (guint i = 0; i < query_paths->len; i++)
    if (collect (&qc, query_paths->pdata[i], every) != 0)
      goto out;

  hits = g_new (int64_t, qc.n * k);
  scores = g_new (float, qc.n * k);
  if (simclr_index_search (idx, qc.rows, qc.n, k, hits, scores, &err)
      != SIMCLR_OK) {
    fprintf (stderr, "error: %s\n", err.message);
    goto out;
  }

  if (csv_path) {
    csv = fopen (csv_path, "w");
    if (!csv) {
      fprintf (stderr, "error: cannot write \"%s\"\n", csv_path);
      goto out;
    }
    fprintf (csv, "query,query_frame,rank,row,id,pts_ns,score,name\n");
  }
  for (size_t q = 0; q < qc.n; q++) {
    Query *qq = qc.queries->pdata[q];
    if (!quiet)
      printf ("query %s frame %lld:\n", qq->path, (long long) qq->frame);
    for (int j = 0; j < k; j++) {
      int64_t row = hits[q * k + j];
      const SimclrIndexEntry *e = simclr_index_entry (idx, row);
      char t[32];
      if (!e)
        continue;
      format_time (t, sizeof t, e->pts_ns);
      if (!quiet)
        printf ("  %d. row %lld id %lld t %s score %.4f%s%s\n", j + 1,
            (long long) row, (long long) e->id, t, scores[q * k + j],
            e->name ? " " : "", e->name ? e->name : "");
      if (csv) {
        fprintf (csv, "\"%s\",%lld,%d,%lld,%lld,", qq->path,
            (long long) qq->frame, j + 1, (long long) row, (long long) e->id);
        if (e->pts_ns >= 0)
          fprintf (csv, "%lld", (long long) e->pts_ns);
        fprintf (csv, ",%.6f,\"%s\"\n", scores[q * k + j],
            e->name ? e->name : "");
      }
    }
  }
  if (csv && fclose (csv) != 0) {
    csv = NULL;
    fprintf (stderr, "error: cannot write \"%s\"\n", csv_path);
    goto out;
  }
  csv = NULL;

  if (sheet_path) {
    const int tw = qc.tw, th = qc.th, pad = 6, label = 20;
    const int nq = (int) qc.n < sheet_queries ? (int) qc.n : sheet_queries;
    const int cw = tw + pad, ch = th + label + pad;
    AppsThumbs *thumbs = apps_thumbs_new (tw, th);
    AppsImage *sheet = apps_image_new (pad + (k + 1) * cw + pad, pad + nq * ch,
        40, 40, 40);
    for (int q = 0; q < nq; q++)
      for (int j = 0; j < k; j++) {
        const SimclrIndexEntry *e = simclr_index_entry (idx, hits[q * k + j]);
        int64_t frame;
        const char *src = e ? row_source (e, source, &frame) : NULL;
        if (src && frame >= 0)
          apps_thumbs_want (thumbs, src, frame);
      }
    apps_thumbs_load (thumbs);
    for (int q = 0; q < nq; q++) {
      Query *qq = qc.queries->pdata[q];
      int y = pad + q * ch;
      char text[32];
      apps_image_paste (sheet, qq->thumb, pad, y);
      apps_image_rect (sheet, pad - 3, y - 3, tw + 6, th + 6, 3, 60, 120, 255);
      snprintf (text, sizeof text, "Q%d", q + 1);
      apps_image_text (sheet, pad, y + th + 5, 2, text, 120, 170, 255);
      for (int j = 0; j < k; j++) {
        const SimclrIndexEntry *e = simclr_index_entry (idx, hits[q * k + j]);
        int64_t frame = -1;
        const char *src = e ? row_source (e, source, &frame) : NULL;
        const AppsImage *im = src ? apps_thumbs_get (thumbs, src, frame) : NULL;
        int x = pad + (j + 1) * cw + pad;
        if (!e)
          continue;
        if (im)
          apps_image_paste (sheet, im, x, y);
        else
          apps_image_fill (sheet, x, y, tw, th, 90, 90, 90);
        snprintf (text, sizeof text, "#%d %.3f", j + 1, scores[q * k + j]);
        apps_image_text (sheet, x, y + th + 5, 2, text, 230, 230, 230);
      }
    }
    if (apps_image_write_jpeg (sheet, sheet_path) == 0)
      printf ("contact sheet: %s (%d queries x %d matches)\n", sheet_path, nq,
          k);
    apps_image_free (sheet);
    apps_thumbs_free (thumbs);
  }
  ret = 0;

out:
  if (csv)
    fclose (csv);
  if (qc.queries) {
    for (guint i = 0; i < qc.queries->len; i++) {
      Query *q = qc.queries->pdata[i];
      g_free (q->path);
      apps_image_free (q->thumb);
      g_free (q);
    }
    g_ptr_array_free (qc.queries, TRUE);
  }
  g_free (qc.rows);
  g_free (hits);
  g_free (scores);
  simclr_index_free (idx);
  simclr_embedder_free (emb);
  simclr_model_free (model);
  g_ptr_array_free (query_paths, TRUE);
  return ret;
}
