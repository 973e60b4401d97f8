/* simclr-dedup: groups the near-duplicates of an index.
 *
 *   simclr-dedup --index IDX.npy --threshold 0.95 [--out PREFIX]
 *                [--sheet FILE.jpg] [--source VIDEO]
 *
 * Groups by leader clustering (simclr_index_group): rows in index order
 * (time order for a video); a row joins the most similar earlier
 * representative if their cosine similarity is at least --threshold, else it
 * becomes a representative itself. Leader clustering rather than connected
 * components: every member of a group is within the threshold of the one
 * representative that is kept (with connected components a chain of
 * near-duplicates, a slow pan, can merge frames that look nothing alike),
 * and the kept frame is the earliest of its group. The price: the result
 * depends on the order (a frame between two representatives joins the more
 * similar one).
 *
 * Writes PREFIX-groups.csv (group, row, id, pts_ns, score to the
 * representative, representative 0/1, name), PREFIX-kept.csv (one line per
 * group: group, size, row, id, pts_ns, name of its representative) and,
 * with --sheet, a contact sheet JPEG of the largest groups (representative
 * first, framed in green).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "apps-common.h"

static void
usage (FILE *f)
{
  fprintf (f,
      "usage: simclr-dedup --index IDX.npy --threshold T [options]\n"
      "  --threshold T     cosine similarity in [-1, 1]: rows at least this\n"
      "                    similar to a representative join its group\n"
      "  --out PREFIX      write PREFIX-groups.csv and PREFIX-kept.csv\n"
      "                    (default: the index path without .npy)\n"
      "  --sheet FILE.jpg  contact sheet of the largest groups\n"
      "  --sheet-groups N  groups on the sheet (8), --sheet-members M (7)\n"
      "  --source VIDEO    the video an index without names was made from\n");
}

static const char *
row_source (const SimclrIndexEntry *e, const char *source, int64_t *frame)
{
  if (e->name) {
    *frame = apps_is_image_name (e->name) ? 0 : e->id;
    return e->name;
  }
  *frame = e->id;
  return e->id >= 0 ? source : NULL;
}

static void
csv_name (FILE *f, const char *name)
{
  fputc ('"', f);
  for (const char *p = name ? name : ""; *p; p++) {
    if (*p == '"')
      fputc ('"', f);
    fputc (*p, f);
  }
  fputc ('"', f);
}

static void
csv_opt (FILE *f, int64_t v)
{
  if (v >= 0)
    fprintf (f, "%lld", (long long) v);
}

static int64_t *sizes_for_sort;

static int
cmp_group_size (const void *a, const void *b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
  if (sizes_for_sort[x] != sizes_for_sort[y])
    return sizes_for_sort[x] > sizes_for_sort[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  const char *index_path = NULL, *threshold_arg = NULL, *out = NULL,
      *sheet_path = NULL, *source = NULL;
  int sheet_groups = 8, sheet_members = 7;
  SimclrError err = { 0 };
  SimclrIndex *idx = NULL;
  int64_t n, ng = 0, *group = NULL, *sizes = NULL, *leader = NULL,
      *order = NULL;
  float *score = NULL;
  double threshold;
  char *end, *prefix = NULL, *path = NULL;
  FILE *f = NULL;
  int ret = 1;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp (a, "-h") || !strcmp (a, "--help")) {
      usage (stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf (stderr, "error: %s needs a value (or is unknown; see --help)\n",
          a);
      return 2;
    }
    if (!strcmp (a, "--index"))
      index_path = argv[++i];
    else if (!strcmp (a, "--threshold"))
      threshold_arg = argv[++i];
    else if (!strcmp (a, "--out"))
      out = argv[++i];
    else if (!strcmp (a, "--sheet"))
      sheet_path = argv[++i];
    else if (!strcmp (a, "--sheet-groups"))
      sheet_groups = atoi (argv[++i]);
    else if (!strcmp (a, "--sheet-members"))
      sheet_members = atoi (argv[++i]);
    else if (!strcmp (a, "--source"))
      source = argv[++i];
    else {
      fprintf (stderr, "error: unknown option %s (see --help)\n", a);
      return 2;
    }
  }
  if (!index_path || !threshold_arg) {
    usage (stderr);
    return 2;
  }
  threshold = strtod (threshold_arg, &end);
  if (*end != '\0' || !(threshold >= -1.0 && threshold <= 1.0)) {
    fprintf (stderr, "error: --threshold %s is outside [-1, 1]: it is a "
        "cosine similarity\n", threshold_arg);
    return 2;
  }

  idx = simclr_index_load (index_path, NULL, &err);
  if (!idx) {
    fprintf (stderr, "error: %s\n", err.message);
    return 1;
  }
  n = simclr_index_size (idx);
  group = g_new (int64_t, n);
  score = g_new (float, n);
  if (simclr_index_group (idx, threshold, group, score, &ng, &err)
      != SIMCLR_OK) {
    fprintf (stderr, "error: %s\n", err.message);
    goto out;
  }
  sizes = g_new0 (int64_t, ng);
  leader = g_new (int64_t, ng);
  for (int64_t i = n - 1; i >= 0; i--) {
    sizes[group[i]]++;
    leader[group[i]] = i;       /* ends at the earliest row: the leader */
  }

  if (out)
    prefix = g_strdup (out);
  else if (g_str_has_suffix (index_path, ".npy"))
    prefix = g_strndup (index_path, strlen (index_path) - 4);
  else
    prefix = g_strdup (index_path);

  path = g_strconcat (prefix, "-groups.csv", NULL);
  f = fopen (path, "w");
  if (!f)
    goto write_failed;
  fprintf (f, "group,row,id,pts_ns,score,representative,name\n");
  for (int64_t i = 0; i < n; i++) {
    const SimclrIndexEntry *e = simclr_index_entry (idx, i);
    fprintf (f, "%lld,%lld,", (long long) group[i], (long long) i);
    csv_opt (f, e->id);
    fputc (',', f);
    csv_opt (f, e->pts_ns);
    fprintf (f, ",%.6f,%d,", score[i], leader[group[i]] == i);
    csv_name (f, e->name);
    fputc ('\n', f);
  }
  if (fclose (f) != 0) {
    f = NULL;
    goto write_failed;
  }
  f = NULL;
  g_free (path);
  path = g_strconcat (prefix, "-kept.csv", NULL);
  f = fopen (path, "w");
  if (!f)
    goto write_failed;
  fprintf (f, "group,size,row,id,pts_ns,name\n");
  for (int64_t g = 0; g < ng; g++) {
    const SimclrIndexEntry *e = simclr_index_entry (idx, leader[g]);
    fprintf (f, "%lld,%lld,%lld,", (long long) g, (long long) sizes[g],
        (long long) leader[g]);
    csv_opt (f, e->id);
    fputc (',', f);
    csv_opt (f, e->pts_ns);
    fputc (',', f);
    csv_name (f, e->name);
    fputc ('\n', f);
  }
  if (fclose (f) != 0) {
    f = NULL;
    goto write_failed;
  }
  f = NULL;

  order = g_new (int64_t, ng);
  for (int64_t g = 0; g < ng; g++)
    order[g] = g;
  sizes_for_sort = sizes;
  qsort (order, ng, sizeof (int64_t), cmp_group_size);
  printf ("%lld rows of %s -> %lld groups at cosine >= %g (leader "
      "clustering); %lld rows are near-duplicates of a kept one\n",
      (long long) n, index_path, (long long) ng, threshold,
      (long long) (n - ng));
  for (int64_t j = 0; j < ng && j < 5; j++) {
    const SimclrIndexEntry *e = simclr_index_entry (idx, leader[order[j]]);
    printf ("  group %lld: %lld rows, kept row %lld%s%s\n",
        (long long) order[j], (long long) sizes[order[j]],
        (long long) leader[order[j]], e->name ? " " : "",
        e->name ? e->name : "");
  }
  printf ("wrote %s-groups.csv and %s-kept.csv\n", prefix, prefix);

  if (sheet_path) {
    const int tw = 128, th = 96, pad = 6, label = 20;
    const int rows = ng < sheet_groups ? (int) ng : sheet_groups;
    AppsThumbs *thumbs = apps_thumbs_new (tw, th);
    AppsImage *sheet = apps_image_new (pad + sheet_members * (tw + pad),
        pad + rows * (th + label + pad), 40, 40, 40);
    int64_t **members = g_new0 (int64_t *, rows);
    int *count = g_new0 (int, rows);
    for (int r = 0; r < rows; r++) {
      members[r] = g_new (int64_t, sheet_members);
      for (int64_t i = 0; i < n && count[r] < sheet_members; i++)
        if (group[i] == order[r])
          members[r][count[r]++] = i;
      for (int m = 0; m < count[r]; m++) {
        int64_t frame;
        const char *src = row_source (simclr_index_entry (idx, members[r][m]),
            source, &frame);
        apps_thumbs_want (thumbs, src, frame);
      }
    }
    apps_thumbs_load (thumbs);
    for (int r = 0; r < rows; r++) {
      int y = pad + r * (th + label + pad);
      for (int m = 0; m < count[r]; m++) {
        int64_t frame, row = members[r][m];
        const char *src = row_source (simclr_index_entry (idx, row), source,
            &frame);
        const AppsImage *im = apps_thumbs_get (thumbs, src, frame);
        int x = pad + m * (tw + pad);
        char text[48];
        if (im)
          apps_image_paste (sheet, im, x, y);
        else
          apps_image_fill (sheet, x, y, tw, th, 90, 90, 90);
        if (m == 0) {
          apps_image_rect (sheet, x - 3, y - 3, tw + 6, th + 6, 3, 60, 220,
              60);
          snprintf (text, sizeof text, "G%lld n%lld", (long long) order[r],
              (long long) sizes[order[r]]);
        } else
          snprintf (text, sizeof text, "%.3f", score[row]);
        apps_image_text (sheet, x, y + th + 5, 2, text, 230, 230, 230);
      }
      g_free (members[r]);
    }
    if (apps_image_write_jpeg (sheet, sheet_path) == 0)
      printf ("contact sheet: %s (%d largest groups)\n", sheet_path, rows);
    g_free (members);
    g_free (count);
    apps_image_free (sheet);
    apps_thumbs_free (thumbs);
  }
  ret = 0;
  goto out;

write_failed:
  fprintf (stderr, "error: cannot write \"%s\"\n", path);
out:
  if (f)
    fclose (f);
  g_free (path);
  g_free (prefix);
  g_free (order);
  g_free (group);
  g_free (score);
  g_free (sizes);
  g_free (leader);
  simclr_index_free (idx);
  return ret;
}
