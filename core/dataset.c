/* dataset.c: IDX / CIFAR / JPEG-folder readers and the epoch order (see
 * include/simclr/dataset.h).
 *
 * IDX and CIFAR sets are decoded whole into one pixel array at open; a JPEG
 * folder keeps a sorted file list and decodes (and optionally resizes) one
 * image per get(). This file does no augmentation and no normalisation.
 */
#include "simclr/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <turbojpeg.h>
#include <zlib.h>

#include "simclr/rng.h"

#define IDX_IMAGES_MAGIC 0x00000803u   /* uint8, 3 dimensions */
#define IDX_LABELS_MAGIC 0x00000801u   /* uint8, 1 dimension */
#define IDX_MAX_LABEL 254              /* 255 is rejected: "no label" in some sets */
#define CIFAR_SIDE 32
#define CIFAR_PIXELS (CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR10_RECORD (1 + 3 * CIFAR_PIXELS)
#define CIFAR100_RECORD (2 + 3 * CIFAR_PIXELS)
#define MAX_SIDE 16384
/* A JPEG header (SOF) normally sits in the first few KB; EXIF thumbnails can
 * push it further, then the whole file is read. */
#define JPEG_HEADER_PROBE (64 * 1024)

typedef struct {
  char *path;
  int width, height;   /* from the header; 0 if the header is unreadable */
  int label;
} JpegEntry;

struct SimclrDataset {
  SimclrDatasetFormat format;
  int64_t n;
  int channels;
  int n_classes;
  int width, height;          /* native; 0 if images vary */

  /* IDX / CIFAR: everything in memory. */
  uint8_t *pixels;            /* (n, height, width, channels) */
  int16_t *labels;            /* (n) */
  char **files;               /* (n_files) */
  int64_t *file_start;        /* (n_files + 1): first sample of each file */
  int n_files;

  /* JPEG folder. */
  JpegEntry *jpeg;            /* (n) */
  int target_w, target_h;     /* 0, 0: native sizes */
  tjhandle tj;
  uint8_t *file_buf;
  size_t file_cap;
  uint8_t *decode_buf;        /* native-size RGB before resizing */
  size_t decode_cap;
  float *resize_tmp;
  size_t resize_cap;
};

/* ------------------------------------------------------------------------- */
/* Small helpers */

static char *
path_join (const char *dir, const char *name)
{
  size_t a = strlen (dir), b = strlen (name);
  char *p = malloc (a + b + 2);
  if (!p)
    return NULL;
  memcpy (p, dir, a);
  p[a] = '/';
  memcpy (p + a + 1, name, b + 1);
  return p;
}

static char *
str_dup (const char *s)
{
  size_t n = strlen (s) + 1;
  char *p = malloc (n);
  if (p)
    memcpy (p, s, n);
  return p;
}

static int
is_dir (const char *path)
{
  struct stat st;
  return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

static int
is_file (const char *path)
{
  struct stat st;
  return stat (path, &st) == 0 && S_ISREG (st.st_mode);
}

static uint32_t
read_be32 (const uint8_t *p)
{
  return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
      ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static int
has_suffix_ci (const char *s, const char *suffix)
{
  size_t a = strlen (s), b = strlen (suffix);
  return a >= b && strcasecmp (s + a - b, suffix) == 0;
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Lists the names in @dir (no "." entries) that are directories (@want_dirs)
 * or JPEG files, sorted byte-wise. Returns the count, or -1 on failure
 * (@err set); *names is malloc'd, each name too. */
static int
list_dir (const char *dir, int want_dirs, char ***names, SimclrError *err)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  char **v = NULL;
  int n = 0, cap = 0;

  *names = NULL;
  if (!d) {
    simclr_error_set (err, SIMCLR_ERROR_IO, "cannot open folder %s: %s", dir,
        strerror (errno));
    return -1;
  }
  while ((e = readdir (d))) {
    char *full;
    int keep;
    if (e->d_name[0] == '.')
      continue;
    full = path_join (dir, e->d_name);
    if (!full)
      goto no_memory;
    keep = want_dirs ? is_dir (full) : (is_file (full) &&
        (has_suffix_ci (e->d_name, ".jpg") || has_suffix_ci (e->d_name, ".jpeg")));
    free (full);
    if (!keep)
      continue;
    if (n == cap) {
      char **nv;
      cap = cap ? 2 * cap : 64;
      nv = realloc (v, (size_t) cap * sizeof *v);
      if (!nv)
        goto no_memory;
      v = nv;
    }
    if (!(v[n] = str_dup (e->d_name)))
      goto no_memory;
    n++;
  }
  closedir (d);
  if (n > 1)
    qsort (v, (size_t) n, sizeof *v, compare_strings);
  *names = v;
  return n;

no_memory:
  closedir (d);
  while (n > 0)
    free (v[--n]);
  free (v);
  simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory listing %s", dir);
  return -1;
}

static void
free_names (char **names, int n)
{
  for (int i = 0; i < n; i++)
    free (names[i]);
  free (names);
}

static SimclrStatus
add_file (SimclrDataset *ds, const char *path, int64_t start, SimclrError *err)
{
  char **f = realloc (ds->files, (size_t) (ds->n_files + 1) * sizeof *f);
  int64_t *s;
  if (!f)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  ds->files = f;
  s = realloc (ds->file_start, (size_t) (ds->n_files + 2) * sizeof *s);
  if (!s)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  ds->file_start = s;
  if (!(ds->files[ds->n_files] = str_dup (path)))
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  ds->file_start[ds->n_files] = start;
  ds->n_files++;
  ds->file_start[ds->n_files] = start;
  return SIMCLR_OK;
}

/* ------------------------------------------------------------------------- */
/* IDX */

/* Reads exactly @len bytes (fewer only at end of data) from @gz into @buf.
 * Returns the count read, or -1 on a zlib error (message in @err). */
static int64_t
gz_read_full (gzFile gz, const char *path, uint8_t *buf, size_t len,
    SimclrError *err)
{
  size_t done = 0;
  while (done < len) {
    size_t chunk = len - done;
    int got;
    if (chunk > (1u << 30))
      chunk = 1u << 30;
    got = gzread (gz, buf + done, (unsigned) chunk);
    if (got < 0) {
      int errnum;
      const char *msg = gzerror (gz, &errnum);
      simclr_error_set (err, SIMCLR_ERROR_FORMAT, "%s: corrupt gzip data (%s)",
          path, msg);
      return -1;
    }
    if (got == 0)
      break;
    done += (size_t) got;
  }
  return (int64_t) done;
}

/* Reads an IDX file of uint8 with @ndims dimensions: *dims gets them, *data
 * (malloc'd) the payload. Checks the magic and that the payload is exactly as
 * long as the dimensions say. */
static SimclrStatus
idx_read (const char *path, uint32_t magic, int ndims, uint32_t *dims,
    uint8_t **data, SimclrError *err)
{
  gzFile gz;
  uint8_t head[16];
  uint64_t need = 1;
  size_t cap, have = 0;
  uint8_t *buf = NULL, extra;
  int64_t got;
  int errnum = Z_OK;

  *data = NULL;
  gz = gzopen (path, "rb");
  if (!gz)
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot open %s: %s",
        path, strerror (errno));
  gzbuffer (gz, 256 * 1024);

  got = gz_read_full (gz, path, head, 4 + 4 * (size_t) ndims, err);
  if (got < 0)
    goto fail_quiet;
  if (got < 4 + 4 * ndims) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: truncated IDX header (%lld bytes, need %d)", path,
        (long long) got, 4 + 4 * ndims);
    goto fail_quiet;
  }
  if (read_be32 (head) != magic) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: wrong IDX magic 0x%08x (expected 0x%08x: uint8 %s)", path,
        read_be32 (head), magic, ndims == 3 ? "images" : "labels");
    goto fail_quiet;
  }
  for (int i = 0; i < ndims; i++) {
    dims[i] = read_be32 (head + 4 + 4 * i);
    if (dims[i] == 0 || (i > 0 && dims[i] > MAX_SIDE)) {
      simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "%s: invalid IDX dimension %d = %u", path, i, dims[i]);
      goto fail_quiet;
    }
    need *= dims[i];
  }
  if (need > (1ull << 40)) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT, "%s: IDX dimensions too large "
        "(%llu bytes)", path, (unsigned long long) need);
    goto fail_quiet;
  }

  /* Grow towards the declared size as data arrives, so a lying header on a
   * short file does not allocate the declared size up front. */
  cap = need < (1u << 22) ? (size_t) need : (1u << 22);
  buf = malloc (cap);
  if (!buf)
    goto no_memory;
  while (have < need) {
    if (have == cap) {
      uint8_t *nb;
      cap = (uint64_t) cap * 2 > need ? (size_t) need : cap * 2;
      nb = realloc (buf, cap);
      if (!nb)
        goto no_memory;
      buf = nb;
    }
    got = gz_read_full (gz, path, buf + have, cap - have, err);
    if (got < 0)
      goto fail_quiet;
    have += (size_t) got;
    if (have < cap)
      break;
  }
  gzerror (gz, &errnum);
  if (have < need) {
    if (dims[0] && ndims == 3)
      simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "%s: truncated: dimensions %ux%ux%u need %llu bytes of pixels, "
          "the file has %llu%s", path, dims[0], dims[1], dims[2],
          (unsigned long long) need, (unsigned long long) have,
          errnum == Z_BUF_ERROR ? " (gzip stream cut short)" : "");
    else
      simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "%s: truncated: %llu labels declared, the file has %llu%s", path,
          (unsigned long long) need, (unsigned long long) have,
          errnum == Z_BUF_ERROR ? " (gzip stream cut short)" : "");
    goto fail_quiet;
  }
  got = gz_read_full (gz, path, &extra, 1, err);
  if (got < 0)
    goto fail_quiet;
  if (got > 0) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: trailing data after the %llu bytes the IDX dimensions declare",
        path, (unsigned long long) need);
    goto fail_quiet;
  }
  gzclose (gz);
  *data = buf;
  return SIMCLR_OK;

no_memory:
  simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "%s: out of memory", path);
fail_quiet:
  free (buf);
  gzclose (gz);
  return err->status;
}

/* Finds "<dir>/<base>" or "<dir>/<base>.gz"; NULL if neither exists. */
static char *
find_raw_or_gz (const char *dir, const char *base)
{
  char *p = path_join (dir, base);
  size_t n;
  char *q;
  if (!p || is_file (p))
    return p;
  n = strlen (p);
  q = realloc (p, n + 4);
  if (!q) {
    free (p);
    return NULL;
  }
  memcpy (q + n, ".gz", 4);
  if (is_file (q))
    return q;
  free (q);
  return NULL;
}

/* The labels file beside an images file: "images-idx3" -> "labels-idx1",
 * trying the name with and without ".gz". NULL if none exists. */
static char *
idx_labels_path_for (const char *images)
{
  const char *hit = strstr (images, "images-idx3");
  char *p, *q;
  size_t n;
  if (!hit)
    return NULL;
  p = malloc (strlen (images) + 4);
  if (!p)
    return NULL;
  n = (size_t) (hit - images);
  memcpy (p, images, n);
  memcpy (p + n, "labels-idx1", 11);
  strcpy (p + n + 11, hit + 11);
  if (is_file (p))
    return p;
  n = strlen (p);
  if (n > 3 && strcmp (p + n - 3, ".gz") == 0) {
    p[n - 3] = '\0';
  } else {
    q = p + n;
    memcpy (q, ".gz", 4);
  }
  if (is_file (p))
    return p;
  free (p);
  return NULL;
}

static SimclrStatus
open_idx (SimclrDataset *ds, const char *location, int test, SimclrError *err)
{
  char *images = NULL, *labels = NULL;
  uint32_t idims[3], ldims[1];
  uint8_t *ldata = NULL;
  SimclrStatus st;

  if (is_dir (location)) {
    const char *prefix = test ? "t10k" : "train";
    char base[64];
    snprintf (base, sizeof base, "%s-images-idx3-ubyte", prefix);
    images = find_raw_or_gz (location, base);
    if (!images)
      return simclr_error_set (err, SIMCLR_ERROR_IO,
          "no %s or %s.gz in %s", base, base, location);
    snprintf (base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    labels = find_raw_or_gz (location, base);
    if (!labels) {
      free (images);
      return simclr_error_set (err, SIMCLR_ERROR_IO,
          "no %s or %s.gz in %s", base, base, location);
    }
  } else {
    if (!is_file (location))
      return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot open %s: no such "
          "file or folder", location);
    images = str_dup (location);
    if (!images)
      return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
    labels = idx_labels_path_for (location);
  }

  st = idx_read (images, IDX_IMAGES_MAGIC, 3, idims, &ds->pixels, err);
  if (st != SIMCLR_OK)
    goto out;
  ds->n = idims[0];
  ds->height = (int) idims[1];
  ds->width = (int) idims[2];
  ds->channels = 1;
  ds->labels = malloc ((size_t) ds->n * sizeof *ds->labels);
  if (!ds->labels) {
    st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
    goto out;
  }
  if (labels) {
    int max_label = -1;
    st = idx_read (labels, IDX_LABELS_MAGIC, 1, ldims, &ldata, err);
    if (st != SIMCLR_OK)
      goto out;
    if ((int64_t) ldims[0] != ds->n) {
      st = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "%s: %u labels but %s has %lld images", labels, ldims[0], images,
          (long long) ds->n);
      goto out;
    }
    for (int64_t i = 0; i < ds->n; i++) {
      if (ldata[i] > IDX_MAX_LABEL) {
        st = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
            "%s: label %d of item %lld out of range [0, %d]", labels,
            ldata[i], (long long) i, IDX_MAX_LABEL);
        goto out;
      }
      ds->labels[i] = ldata[i];
      if (ldata[i] > max_label)
        max_label = ldata[i];
    }
    ds->n_classes = max_label + 1;
  } else {
    for (int64_t i = 0; i < ds->n; i++)
      ds->labels[i] = -1;
    ds->n_classes = 0;
  }
  st = add_file (ds, images, 0, err);

out:
  free (ldata);
  free (images);
  free (labels);
  return st;
}

/* ------------------------------------------------------------------------- */
/* CIFAR */

static SimclrStatus
read_whole_file (const char *path, uint8_t **data, size_t *len,
    SimclrError *err)
{
  FILE *f = fopen (path, "rb");
  long size;
  uint8_t *buf;

  *data = NULL;
  *len = 0;
  if (!f)
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot open %s: %s",
        path, strerror (errno));
  if (fseek (f, 0, SEEK_END) != 0 || (size = ftell (f)) < 0 ||
      fseek (f, 0, SEEK_SET) != 0) {
    fclose (f);
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot seek in %s", path);
  }
  buf = malloc (size > 0 ? (size_t) size : 1);
  if (!buf) {
    fclose (f);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "out of memory reading %s (%ld bytes)", path, size);
  }
  if (size > 0 && fread (buf, 1, (size_t) size, f) != (size_t) size) {
    const char *why = ferror (f) ? strerror (errno) : "file shrank";
    free (buf);
    fclose (f);
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot read %s: %s",
        path, why);
  }
  fclose (f);
  *data = buf;
  *len = (size_t) size;
  return SIMCLR_OK;
}

static SimclrStatus
open_cifar (SimclrDataset *ds, const char *location, int test, int hundred,
    SimclrError *err)
{
  const char *names10[] = { "data_batch_1.bin", "data_batch_2.bin",
    "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin" };
  const char *name_test = hundred ? "test.bin" : "test_batch.bin";
  const char *name_train100 = "train.bin";
  const char **names;
  int n_names;
  size_t record = hundred ? CIFAR100_RECORD : CIFAR10_RECORD;
  int max_label = hundred ? 99 : 9;
  uint8_t *bufs[5] = { NULL };
  size_t lens[5] = { 0 };
  char *paths[5] = { NULL };
  SimclrStatus st = SIMCLR_OK;
  int64_t total = 0, at = 0;

  if (!is_dir (location))
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot open folder %s: "
        "no such folder", location);
  if (test) {
    names = &name_test;
    n_names = 1;
  } else if (hundred) {
    names = &name_train100;
    n_names = 1;
  } else {
    names = names10;
    n_names = 5;
  }

  for (int f = 0; f < n_names; f++) {
    paths[f] = path_join (location, names[f]);
    if (!paths[f]) {
      st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
      goto out;
    }
    st = read_whole_file (paths[f], &bufs[f], &lens[f], err);
    if (st != SIMCLR_OK)
      goto out;
    if (lens[f] == 0 || lens[f] % record != 0) {
      st = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "%s: size %zu is not a positive multiple of the %s record size %zu",
          paths[f], lens[f], hundred ? "CIFAR-100" : "CIFAR-10", record);
      goto out;
    }
    total += (int64_t) (lens[f] / record);
  }

  ds->n = total;
  ds->width = ds->height = CIFAR_SIDE;
  ds->channels = 3;
  ds->n_classes = max_label + 1;
  ds->pixels = malloc ((size_t) total * 3 * CIFAR_PIXELS);
  ds->labels = malloc ((size_t) total * sizeof *ds->labels);
  if (!ds->pixels || !ds->labels) {
    st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
    goto out;
  }

  for (int f = 0; f < n_names; f++) {
    int64_t count = (int64_t) (lens[f] / record);
    st = add_file (ds, paths[f], at, err);
    if (st != SIMCLR_OK)
      goto out;
    for (int64_t r = 0; r < count; r++, at++) {
      /* record: [coarse label (CIFAR-100)] label, R plane, G plane, B plane
       * (each 32x32 row-major) -> interleaved (32,32,3) */
      const uint8_t *rec = bufs[f] + (size_t) r * record;
      const uint8_t *planes = rec + (hundred ? 2 : 1);
      uint8_t *dst = ds->pixels + (size_t) at * 3 * CIFAR_PIXELS;
      int label = hundred ? rec[1] : rec[0];
      if (hundred && rec[0] > 19) {
        st = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
            "%s: coarse label %d of record %lld out of range [0, 19]",
            paths[f], rec[0], (long long) r);
        goto out;
      }
      if (label > max_label) {
        st = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
            "%s: label %d of record %lld out of range [0, %d]", paths[f],
            label, (long long) r, max_label);
        goto out;
      }
      ds->labels[at] = (int16_t) label;
      for (int p = 0; p < CIFAR_PIXELS; p++) {
        dst[3 * p + 0] = planes[p];
        dst[3 * p + 1] = planes[CIFAR_PIXELS + p];
        dst[3 * p + 2] = planes[2 * CIFAR_PIXELS + p];
      }
    }
  }

out:
  for (int f = 0; f < 5; f++) {
    free (bufs[f]);
    free (paths[f]);
  }
  return st;
}

/* ------------------------------------------------------------------------- */
/* JPEG folder */

/* Reads up to @max bytes of @path (all if @max == 0) into ds->file_buf. */
static SimclrStatus
jpeg_load_file (SimclrDataset *ds, const char *path, size_t max, size_t *len,
    int *whole, SimclrError *err)
{
  FILE *f = fopen (path, "rb");
  long size;
  size_t want;

  if (!f)
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot open %s: %s",
        path, strerror (errno));
  if (fseek (f, 0, SEEK_END) != 0 || (size = ftell (f)) < 0 ||
      fseek (f, 0, SEEK_SET) != 0) {
    fclose (f);
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot seek in %s", path);
  }
  want = (size_t) size;
  if (max && want > max)
    want = max;
  if (want > ds->file_cap) {
    uint8_t *nb = realloc (ds->file_buf, want);
    if (!nb) {
      fclose (f);
      return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
          "out of memory reading %s", path);
    }
    ds->file_buf = nb;
    ds->file_cap = want;
  }
  if (want > 0 && fread (ds->file_buf, 1, want, f) != want) {
    const char *why = ferror (f) ? strerror (errno) : "file shrank";
    fclose (f);
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot read %s: %s",
        path, why);
  }
  fclose (f);
  *len = want;
  *whole = want == (size_t) size;
  return SIMCLR_OK;
}

/* A TurboJPEG handle is not usable after a failed call: libjpeg-turbo 2.1
 * leaves the decompressor inside the failed header (tjDecompressHeader3 does
 * not abort it when libjpeg raises an error), so the next file is parsed as
 * the continuation of the broken one and every later image fails with the
 * same message ("Bogus Huffman table definition"): one JPEG cut inside its
 * tables emptied a whole data set (issue 15). After any failure the handle is
 * replaced by a fresh one. Returns SIMCLR_OK or SIMCLR_ERROR_NO_MEMORY. */
static SimclrStatus
jpeg_reset_decoder (SimclrDataset *ds, SimclrError *err)
{
  if (ds->tj)
    tjDestroy (ds->tj);
  ds->tj = tjInitDecompress ();
  if (!ds->tj)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "cannot create a JPEG decompressor: %s", tjGetErrorStr2 (NULL));
  return SIMCLR_OK;
}

/* Reads the JPEG header in ds->file_buf (@len bytes): *w, *h. Returns 0, or
 * -1 with the decoder reset (its message copied to @msg first). A header
 * that parses without a frame (tables only) gives -1 too: TurboJPEG then
 * returns 0 without setting the size. */
static int
jpeg_read_header_size (SimclrDataset *ds, size_t len, int *w, int *h,
    char *msg, size_t msg_len)
{
  int subsamp, cs;

  *w = *h = 0;
  if (!ds->tj && jpeg_reset_decoder (ds, NULL) != SIMCLR_OK) {
    snprintf (msg, msg_len, "no JPEG decompressor (out of memory)");
    return -1;
  }
  if (tjDecompressHeader3 (ds->tj, ds->file_buf, (unsigned long) len, w, h,
          &subsamp, &cs) != 0) {
    snprintf (msg, msg_len, "%s", tjGetErrorStr2 (ds->tj));
    *w = *h = 0;
    jpeg_reset_decoder (ds, NULL);
    return -1;
  }
  if (*w < 1 || *h < 1) {
    snprintf (msg, msg_len, "no image frame in the header");
    *w = *h = 0;
    jpeg_reset_decoder (ds, NULL);
    return -1;
  }
  return 0;
}

/* Reads the header of @e's file for its size. An unreadable header leaves the
 * size 0: get() reports the error when the image is asked for. */
static void
jpeg_probe (SimclrDataset *ds, JpegEntry *e)
{
  size_t len;
  int whole, w, h;
  char msg[256];

  if (jpeg_load_file (ds, e->path, JPEG_HEADER_PROBE, &len, &whole, NULL))
    return;
  if (jpeg_read_header_size (ds, len, &w, &h, msg, sizeof msg) != 0) {
    if (whole || jpeg_load_file (ds, e->path, 0, &len, &whole, NULL) ||
        jpeg_read_header_size (ds, len, &w, &h, msg, sizeof msg) != 0)
      return;
  }
  if (w > MAX_SIDE || h > MAX_SIDE)
    return;
  e->width = w;
  e->height = h;
}

static SimclrStatus
open_jpeg (SimclrDataset *ds, const char *location, int test, SimclrError *err)
{
  char *root = NULL, *train_dir, *test_dir;
  char **classes = NULL;
  int n_classes = -1, cap = 0;
  SimclrStatus st = SIMCLR_OK;

  if (!is_dir (location))
    return simclr_error_set (err, SIMCLR_ERROR_IO, "cannot open folder %s: "
        "no such folder", location);
  train_dir = path_join (location, "train");
  test_dir = path_join (location, "test");
  if (!train_dir || !test_dir) {
    free (train_dir);
    free (test_dir);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  }
  if (is_dir (train_dir) || is_dir (test_dir)) {
    root = test ? test_dir : train_dir;
    free (test ? train_dir : test_dir);
    if (!is_dir (root)) {
      st = simclr_error_set (err, SIMCLR_ERROR_IO, "no folder %s for split "
          "\"%s\"", root, test ? "test" : "train");
      goto out;
    }
  } else {
    free (train_dir);
    free (test_dir);
    root = str_dup (location);
    if (!root)
      return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  }

  n_classes = list_dir (root, 1, &classes, err);
  if (n_classes < 0) {
    st = err->status;
    goto out;
  }
  if (n_classes == 0) {
    st = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: no class sub-folders", root);
    goto out;
  }

  ds->tj = tjInitDecompress ();
  if (!ds->tj) {
    st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "cannot create a JPEG decompressor: %s", tjGetErrorStr2 (NULL));
    goto out;
  }

  for (int c = 0; c < n_classes; c++) {
    char *cdir = path_join (root, classes[c]);
    char **files = NULL;
    int nf;
    if (!cdir) {
      st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
      goto out;
    }
    nf = list_dir (cdir, 0, &files, err);
    if (nf < 0) {
      free (cdir);
      st = err->status;
      goto out;
    }
    for (int i = 0; i < nf; i++) {
      JpegEntry *e;
      if (ds->n == cap) {
        JpegEntry *nj;
        cap = cap ? 2 * cap : 256;
        nj = realloc (ds->jpeg, (size_t) cap * sizeof *nj);
        if (!nj) {
          free (cdir);
          free_names (files, nf);
          st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
          goto out;
        }
        ds->jpeg = nj;
      }
      e = &ds->jpeg[ds->n];
      e->path = path_join (cdir, files[i]);
      e->width = e->height = 0;
      e->label = c;
      if (!e->path) {
        free (cdir);
        free_names (files, nf);
        st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
        goto out;
      }
      ds->n++;
      jpeg_probe (ds, e);
    }
    free (cdir);
    free_names (files, nf);
  }
  if (ds->n == 0) {
    st = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: no *.jpg / *.jpeg images in its %d class sub-folders", root,
        n_classes);
    goto out;
  }

  ds->channels = 3;
  ds->n_classes = n_classes;
  ds->width = ds->height = 0;
  {
    int first = 1, vary = 0;
    for (int64_t i = 0; i < ds->n; i++) {
      const JpegEntry *e = &ds->jpeg[i];
      if (e->width == 0)
        continue;
      if (first) {
        ds->width = e->width;
        ds->height = e->height;
        first = 0;
      } else if (e->width != ds->width || e->height != ds->height) {
        vary = 1;
      }
    }
    if (vary)
      ds->width = ds->height = 0;
  }

out:
  if (classes)
    free_names (classes, n_classes);
  free (root);
  return st;
}

/* Separable resize with a triangle filter whose support widens by the
 * shrink factor (PIL's BILINEAR, antialiased when shrinking).
 * src (sh,sw,3) packed, dst (dh,dw,3) packed, tmp (sh,dw,3) float. */
static void
resize_rgb (const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh,
    float *tmp)
{
  /* horizontal pass: src -> tmp */
  double sx = (double) sw / dw, sy = (double) sh / dh;
  double fx = sx > 1.0 ? sx : 1.0, fy = sy > 1.0 ? sy : 1.0;

  for (int x = 0; x < dw; x++) {
    double center = (x + 0.5) * sx;
    int lo = (int) (center - fx), hi = (int) (center + fx) + 1;
    double wsum = 0.0;
    if (lo < 0)
      lo = 0;
    if (hi > sw)
      hi = sw;
    for (int i = lo; i < hi; i++) {
      double d = i + 0.5 - center;
      double t = 1.0 - (d < 0 ? -d : d) / fx;
      if (t > 0)
        wsum += t;
    }
    for (int y = 0; y < sh; y++) {
      double acc[3] = { 0, 0, 0 };
      for (int i = lo; i < hi; i++) {
        double d = i + 0.5 - center;
        double t = 1.0 - (d < 0 ? -d : d) / fx;
        const uint8_t *p = src + ((size_t) y * sw + i) * 3;
        if (t <= 0)
          continue;
        acc[0] += t * p[0];
        acc[1] += t * p[1];
        acc[2] += t * p[2];
      }
      for (int c = 0; c < 3; c++)
        tmp[((size_t) y * dw + x) * 3 + c] = (float) (acc[c] / wsum);
    }
  }
  /* vertical pass: tmp -> dst */
  for (int y = 0; y < dh; y++) {
    double center = (y + 0.5) * sy;
    int lo = (int) (center - fy), hi = (int) (center + fy) + 1;
    double wsum = 0.0;
    if (lo < 0)
      lo = 0;
    if (hi > sh)
      hi = sh;
    for (int i = lo; i < hi; i++) {
      double d = i + 0.5 - center;
      double t = 1.0 - (d < 0 ? -d : d) / fy;
      if (t > 0)
        wsum += t;
    }
    for (int x = 0; x < dw * 3; x++) {
      double acc = 0.0;
      long v;
      for (int i = lo; i < hi; i++) {
        double d = i + 0.5 - center;
        double t = 1.0 - (d < 0 ? -d : d) / fy;
        if (t > 0)
          acc += t * tmp[(size_t) i * dw * 3 + x];
      }
      v = lround (acc / wsum);
      dst[(size_t) y * dw * 3 + x] = (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }
}

static SimclrStatus
grow (void **buf, size_t *cap, size_t need, SimclrError *err)
{
  void *nb;
  if (need <= *cap)
    return SIMCLR_OK;
  nb = realloc (*buf, need);
  if (!nb)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory "
        "(%zu bytes)", need);
  *buf = nb;
  *cap = need;
  return SIMCLR_OK;
}

static SimclrStatus
jpeg_get (SimclrDataset *ds, int64_t index, uint8_t *pixels, size_t capacity,
    int *w_out, int *h_out, SimclrError *err)
{
  const JpegEntry *e = &ds->jpeg[index];
  size_t len, need;
  int whole, w, h, ow, oh;
  SimclrStatus st;
  uint8_t *target;
  char msg[256];

  st = jpeg_load_file (ds, e->path, 0, &len, &whole, err);
  if (st != SIMCLR_OK)
    return st;
  if (jpeg_read_header_size (ds, len, &w, &h, msg, sizeof msg) != 0)
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: corrupt JPEG (%s)", e->path, msg);
  if (w > MAX_SIDE || h > MAX_SIDE)
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: JPEG size %dx%d outside [1, %d]", e->path, w, h, MAX_SIDE);
  /* max_image_bytes() was computed from the sizes listed at open: a file
   * replaced since then by a larger image may not fit the caller's buffer. */
  if (!ds->target_w && (w != e->width || h != e->height))
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: the JPEG is %dx%d now, %dx%d when the folder was listed (the "
        "file changed)", e->path, w, h, e->width, e->height);
  ow = ds->target_w ? ds->target_w : w;
  oh = ds->target_h ? ds->target_h : h;
  need = (size_t) ow * oh * 3;
  if (capacity < need)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "%s: image is %dx%d RGB, needs %zu bytes, capacity is %zu", e->path,
        ow, oh, need, capacity);

  if (ow == w && oh == h) {
    target = pixels;
  } else {
    st = grow ((void **) &ds->decode_buf, &ds->decode_cap, (size_t) w * h * 3,
        err);
    if (st == SIMCLR_OK)
      st = grow ((void **) &ds->resize_tmp, &ds->resize_cap,
          (size_t) h * ow * 3 * sizeof (float), err);
    if (st != SIMCLR_OK)
      return st;
    target = ds->decode_buf;
  }
  /* Warnings also return -1, and such an image is skipped, not used: on a
   * truncated file ("Premature end of JPEG file") or corrupt entropy-coded
   * data libjpeg-turbo invents the missing pixels (grey or repeated rows), and
   * training on that would teach the encoder the artefact. The decision is
   * documented in dataset.h and the README (issue 15). Since any warning
   * skips the image, decoding stops at the first one: a corrupt file that
   * claims a large size costs no full decode. */
  if (tjDecompress2 (ds->tj, ds->file_buf, (unsigned long) len, target, w, 0,
          h, TJPF_RGB, TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0) {
    st = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: corrupt JPEG (%s)", e->path, tjGetErrorStr2 (ds->tj));
    if (jpeg_reset_decoder (ds, NULL) != SIMCLR_OK)
      st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
          "%s: cannot recreate the JPEG decompressor", e->path);
    return st;
  }
  if (target != pixels)
    resize_rgb (target, w, h, pixels, ow, oh, ds->resize_tmp);
  if (w_out)
    *w_out = ow;
  if (h_out)
    *h_out = oh;
  return SIMCLR_OK;
}

/* ------------------------------------------------------------------------- */
/* Public API */

static SimclrDatasetFormat
guess_format (const char *location)
{
  const char *probes[][2] = {
    { "data_batch_1.bin", "cifar10" }, { "test_batch.bin", "cifar10" },
    { "train.bin", "cifar100" }, { "test.bin", "cifar100" },
    { "train-images-idx3-ubyte", "idx" }, { "train-images-idx3-ubyte.gz", "idx" },
    { "t10k-images-idx3-ubyte", "idx" }, { "t10k-images-idx3-ubyte.gz", "idx" },
  };
  if (!is_dir (location))
    return SIMCLR_DATASET_IDX;   /* a single IDX file (or a missing path) */
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    char *p = path_join (location, probes[i][0]);
    int hit = p && is_file (p);
    free (p);
    if (hit)
      return strcmp (probes[i][1], "cifar10") == 0 ? SIMCLR_DATASET_CIFAR10 :
          strcmp (probes[i][1], "cifar100") == 0 ? SIMCLR_DATASET_CIFAR100 :
          SIMCLR_DATASET_IDX;
  }
  return SIMCLR_DATASET_JPEG_FOLDER;
}

const char *
simclr_dataset_format_to_string (SimclrDatasetFormat format)
{
  switch (format) {
    case SIMCLR_DATASET_AUTO:
      return "auto";
    case SIMCLR_DATASET_IDX:
      return "idx";
    case SIMCLR_DATASET_CIFAR10:
      return "cifar10";
    case SIMCLR_DATASET_CIFAR100:
      return "cifar100";
    case SIMCLR_DATASET_JPEG_FOLDER:
      return "jpeg-folder";
  }
  return NULL;
}

SimclrDataset *
simclr_dataset_open (const char *location, const char *split,
    SimclrDatasetFormat format, SimclrError *err)
{
  SimclrDataset *ds;
  SimclrStatus st;
  SimclrError local;
  int test;

  /* The readers below read err->status after a failing helper. */
  if (!err)
    err = &local;
  if (!location || !*location) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "data set location is not set");
    return NULL;
  }
  if (!split || strcmp (split, "train") == 0) {
    test = 0;
  } else if (strcmp (split, "test") == 0) {
    test = 1;
  } else {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "split \"%s\" is neither \"train\" nor \"test\"", split);
    return NULL;
  }
  if (format == SIMCLR_DATASET_AUTO) {
    struct stat sb;
    if (stat (location, &sb) != 0) {
      simclr_error_set (err, SIMCLR_ERROR_IO, "cannot open %s: no such file "
          "or folder", location);
      return NULL;
    }
    format = guess_format (location);
  }
  if (!simclr_dataset_format_to_string (format)) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "unknown data set format %d", (int) format);
    return NULL;
  }

  ds = calloc (1, sizeof *ds);
  if (!ds) {
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
    return NULL;
  }
  ds->format = format;
  switch (format) {
    case SIMCLR_DATASET_IDX:
      st = open_idx (ds, location, test, err);
      break;
    case SIMCLR_DATASET_CIFAR10:
      st = open_cifar (ds, location, test, 0, err);
      break;
    case SIMCLR_DATASET_CIFAR100:
      st = open_cifar (ds, location, test, 1, err);
      break;
    default:
      st = open_jpeg (ds, location, test, err);
      break;
  }
  if (st == SIMCLR_OK && ds->n == 0)
    st = simclr_error_set (err, SIMCLR_ERROR_FORMAT, "%s: empty data set",
        location);
  if (st != SIMCLR_OK) {
    simclr_dataset_free (ds);
    return NULL;
  }
  return ds;
}

void
simclr_dataset_free (SimclrDataset *ds)
{
  if (!ds)
    return;
  free (ds->pixels);
  free (ds->labels);
  for (int i = 0; i < ds->n_files; i++)
    free (ds->files[i]);
  free (ds->files);
  free (ds->file_start);
  if (ds->jpeg) {
    for (int64_t i = 0; i < ds->n; i++)
      free (ds->jpeg[i].path);
    free (ds->jpeg);
  }
  if (ds->tj)
    tjDestroy (ds->tj);
  free (ds->file_buf);
  free (ds->decode_buf);
  free (ds->resize_tmp);
  free (ds);
}

SimclrDatasetFormat
simclr_dataset_format (const SimclrDataset *ds)
{
  return ds->format;
}

int64_t
simclr_dataset_size (const SimclrDataset *ds)
{
  return ds->n;
}

int
simclr_dataset_channels (const SimclrDataset *ds)
{
  return ds->channels;
}

int
simclr_dataset_n_classes (const SimclrDataset *ds)
{
  return ds->n_classes;
}

int
simclr_dataset_width (const SimclrDataset *ds)
{
  return ds->target_w ? ds->target_w : ds->width;
}

int
simclr_dataset_height (const SimclrDataset *ds)
{
  return ds->target_h ? ds->target_h : ds->height;
}

size_t
simclr_dataset_max_image_bytes (const SimclrDataset *ds)
{
  size_t m = 0;
  if (ds->target_w)
    return (size_t) ds->target_w * ds->target_h * ds->channels;
  if (ds->format != SIMCLR_DATASET_JPEG_FOLDER)
    return (size_t) ds->width * ds->height * ds->channels;
  for (int64_t i = 0; i < ds->n; i++) {
    size_t b = (size_t) ds->jpeg[i].width * ds->jpeg[i].height * 3;
    if (b > m)
      m = b;
  }
  return m;
}

SimclrStatus
simclr_dataset_set_target_size (SimclrDataset *ds, int width, int height,
    SimclrError *err)
{
  if (width == 0 && height == 0) {
    ds->target_w = ds->target_h = 0;
    return SIMCLR_OK;
  }
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "target size %dx%d outside [1, %d]", width, height, MAX_SIDE);
  if (ds->format != SIMCLR_DATASET_JPEG_FOLDER) {
    if (width == ds->width && height == ds->height)
      return SIMCLR_OK;
    return simclr_error_set (err, SIMCLR_ERROR_UNSUPPORTED,
        "resizing is only done for JPEG folders (this %s set is %dx%d, "
        "%dx%d asked)", simclr_dataset_format_to_string (ds->format),
        ds->width, ds->height, width, height);
  }
  ds->target_w = width;
  ds->target_h = height;
  return SIMCLR_OK;
}

const char *
simclr_dataset_sample_path (const SimclrDataset *ds, int64_t index)
{
  if (index < 0 || index >= ds->n)
    return NULL;
  if (ds->format == SIMCLR_DATASET_JPEG_FOLDER)
    return ds->jpeg[index].path;
  for (int f = 0; f + 1 < ds->n_files; f++)
    if (index < ds->file_start[f + 1])
      return ds->files[f];
  return ds->n_files ? ds->files[ds->n_files - 1] : NULL;
}

SimclrStatus
simclr_dataset_get (SimclrDataset *ds, int64_t index, uint8_t *pixels,
    size_t capacity, int *w, int *h, int *label, SimclrError *err)
{
  size_t bytes;
  SimclrStatus st;

  if (index < 0 || index >= ds->n)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "sample %lld out of range [0, %lld)", (long long) index,
        (long long) ds->n);
  if (!pixels)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "sample %lld: pixels is NULL", (long long) index);

  if (ds->format == SIMCLR_DATASET_JPEG_FOLDER) {
    st = jpeg_get (ds, index, pixels, capacity, w, h, err);
    if (st == SIMCLR_OK && label)
      *label = ds->jpeg[index].label;
    return st;
  }

  bytes = (size_t) ds->width * ds->height * ds->channels;
  if (capacity < bytes)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "sample %lld is %dx%dx%d, needs %zu bytes, capacity is %zu",
        (long long) index, ds->width, ds->height, ds->channels, bytes,
        capacity);
  memcpy (pixels, ds->pixels + (size_t) index * bytes, bytes);
  if (w)
    *w = ds->width;
  if (h)
    *h = ds->height;
  if (label)
    *label = ds->labels[index];
  return SIMCLR_OK;
}

int64_t
simclr_dataset_epoch_order (int64_t n, uint64_t seed, uint64_t epoch,
    int shuffle, int shard_index, int shard_count, int64_t *out)
{
  int64_t m, start, *p;

  if (n < 0 || shard_count < 1 || shard_index < 0 || shard_index >= shard_count)
    return -1;
  if (shuffle && n > (int64_t) UINT32_MAX)
    return -1;
  m = n / shard_count;
  if (m == 0)
    return 0;
  if (!out)
    return -1;
  start = (int64_t) shard_index * m;
  if (!shuffle) {
    for (int64_t j = 0; j < m; j++)
      out[j] = start + j;
    return m;
  }
  /* Forward Fisher-Yates: after step i, p[i] is final, so a shard only needs
   * the first start + m steps; the whole array is still needed as scratch
   * (in @out when it is the first shard of one). */
  p = (shard_count == 1) ? out : malloc ((size_t) n * sizeof *p);
  if (!p)
    return -1;
  for (int64_t i = 0; i < n; i++)
    p[i] = i;
  for (int64_t i = 0; i < start + m && i < n - 1; i++) {
    int64_t j = i + (int64_t) simclr_rng_below (seed, epoch, (uint64_t) i,
        (uint32_t) (n - i));
    int64_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  if (p != out) {
    memcpy (out, p + start, (size_t) m * sizeof *p);
    free (p);
  }
  return m;
}
