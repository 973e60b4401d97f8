/* apps-common.c: decoding, embedder set-up, thumbnails, contact sheets and
 * image files for the embedding tools (see apps-common.h). */
#include "apps-common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <turbojpeg.h>
#include <zlib.h>

double
apps_now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- media ------------------------------------------------------------- */

int
apps_is_image_name (const char *path)
{
  const char *dot = strrchr (path, '.');
  static const char *const ext[] = { "jpg", "jpeg", "png", "bmp", NULL };
  if (!dot)
    return 0;
  for (int i = 0; ext[i]; i++)
    if (g_ascii_strcasecmp (dot + 1, ext[i]) == 0)
      return 1;
  return 0;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

void
apps_strv_free (char **v)
{
  g_strfreev (v);
}

char **
apps_list_inputs (const char *path)
{
  struct stat st;
  GPtrArray *a;
  DIR *d;
  struct dirent *de;

  if (stat (path, &st) != 0) {
    fprintf (stderr, "error: cannot read \"%s\": %s\n", path,
        strerror (errno));
    return NULL;
  }
  a = g_ptr_array_new ();
  if (!S_ISDIR (st.st_mode)) {
    g_ptr_array_add (a, g_strdup (path));
    g_ptr_array_add (a, NULL);
    return (char **) g_ptr_array_free (a, FALSE);
  }
  d = opendir (path);
  if (!d) {
    fprintf (stderr, "error: cannot list \"%s\": %s\n", path,
        strerror (errno));
    g_ptr_array_free (a, TRUE);
    return NULL;
  }
  while ((de = readdir (d)))
    if (de->d_name[0] != '.' && apps_is_image_name (de->d_name))
      g_ptr_array_add (a, g_build_filename (path, de->d_name, NULL));
  closedir (d);
  if (a->len == 0) {
    fprintf (stderr, "error: no image (*.jpg, *.jpeg, *.png, *.bmp) in the "
        "folder \"%s\"\n", path);
    g_ptr_array_free (a, TRUE);
    return NULL;
  }
  qsort (a->pdata, a->len, sizeof (char *), cmp_str);
  g_ptr_array_add (a, NULL);
  return (char **) g_ptr_array_free (a, FALSE);
}

int
apps_decode (const char *path, int every, AppsFrameFn fn, void *user,
    char *errbuf, size_t errlen)
{
  GstElement *pipe, *src, *sink;
  GError *gerr = NULL;
  GstBus *bus;
  GstMessage *msg = NULL;
  int64_t index = 0;
  int ret = 0, stop = 0;
  uint8_t *packed = NULL;
  size_t packed_cap = 0;

  gst_init (NULL, NULL);
  if (access (path, R_OK) != 0) {
    snprintf (errbuf, errlen, "cannot read \"%s\": %s", path,
        strerror (errno));
    return -1;
  }
  /* videoconvert to packed RGB; sync=false: as fast as it decodes. */
  pipe = gst_parse_launch ("filesrc name=src ! decodebin ! videoconvert ! "
      "video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=4",
      &gerr);
  if (!pipe) {
    snprintf (errbuf, errlen, "cannot build a decoder for \"%s\": %s", path,
        gerr ? gerr->message : "?");
    g_clear_error (&gerr);
    return -1;
  }
  src = gst_bin_get_by_name (GST_BIN (pipe), "src");
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  g_object_set (src, "location", path, NULL);
  gst_element_set_state (pipe, GST_STATE_PLAYING);

  bus = gst_element_get_bus (pipe);
  while (!stop) {
    GstVideoInfo info;
    GstVideoFrame vf;
    GstBuffer *buf;
    /* A decoding error does not reach the appsink as EOS: wait in short
     * slices and look at the bus in between. */
    GstSample *sample = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
        100 * GST_MSECOND);
    if (!sample) {
      if (gst_app_sink_is_eos (GST_APP_SINK (sink)))
        break;
      msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
      if (msg)
        break;
      continue;
    }
    buf = gst_sample_get_buffer (sample);
    if (every <= 1 || index % every == 0) {
      if (!gst_video_info_from_caps (&info, gst_sample_get_caps (sample))
          || !gst_video_frame_map (&vf, &info, buf, GST_MAP_READ)) {
        snprintf (errbuf, errlen, "cannot map a decoded frame of \"%s\"",
            path);
        gst_sample_unref (sample);
        ret = -1;
        break;
      }
      {
        const int w = GST_VIDEO_FRAME_WIDTH (&vf), h =
            GST_VIDEO_FRAME_HEIGHT (&vf);
        const int stride = GST_VIDEO_FRAME_PLANE_STRIDE (&vf, 0);
        const uint8_t *data = GST_VIDEO_FRAME_PLANE_DATA (&vf, 0);
        AppsFrame f;
        /* Rows are padded to 4 bytes: pack them. */
        if (packed_cap < (size_t) w * h * 3) {
          packed_cap = (size_t) w * h * 3;
          packed = g_realloc (packed, packed_cap);
        }
        for (int y = 0; y < h; y++)
          memcpy (packed + (size_t) y * w * 3, data + (size_t) y * stride,
              (size_t) w * 3);
        f.rgb = packed;
        f.w = w;
        f.h = h;
        f.index = index;
        f.pts_ns = GST_BUFFER_PTS_IS_VALID (buf) ? (int64_t) GST_BUFFER_PTS
            (buf) : -1;
        f.path = path;
        gst_video_frame_unmap (&vf);
        stop = fn (&f, user);
      }
    }
    index++;
    gst_sample_unref (sample);
  }

  if (!msg)
    msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (msg && ret == 0 && !stop) {
    GError *e = NULL;
    gst_message_parse_error (msg, &e, NULL);
    snprintf (errbuf, errlen, "cannot decode \"%s\": %s", path,
        e ? e->message : "?");
    g_clear_error (&e);
    ret = -1;
  } else if (ret == 0 && index == 0) {
    snprintf (errbuf, errlen, "\"%s\" has no video frame", path);
    ret = -1;
  }
  if (msg)
    gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  g_free (packed);
  return ret;
}

/* ---- embedding options ------------------------------------------------- */

const char *const apps_embed_usage =
    "  --checkpoint FILE   encoder checkpoint (safetensors)\n"
    "  --embed KIND        h (representation, default), z (projection), or\n"
    "                      the baselines raw (centred pixels) and ahash\n"
    "                      (8x8 average hash); raw/ahash need no checkpoint\n"
    "  --flip-average      average each image's embedding with its mirror's\n"
    "                      (exactly invariant to horizontal flips)\n"
    "  --size S            side of the raw / ahash baselines (32 / 8)\n";

int
apps_parse_embed_option (AppsEmbedOptions *o, int argc, char **argv, int *i)
{
  const char *a = argv[*i];
  if (strcmp (a, "--flip-average") == 0) {
    o->flip_average = 1;
    return 1;
  }
  if (strcmp (a, "--checkpoint") && strcmp (a, "--embed")
      && strcmp (a, "--size"))
    return 0;
  if (*i + 1 >= argc) {
    fprintf (stderr, "error: %s needs a value\n", a);
    return -1;
  }
  (*i)++;
  if (strcmp (a, "--checkpoint") == 0)
    o->checkpoint = argv[*i];
  else if (strcmp (a, "--embed") == 0)
    o->embed = argv[*i];
  else
    o->size = atoi (argv[*i]);
  return 1;
}

SimclrEmbedder *
apps_embedder_new (const AppsEmbedOptions *o, SimclrModel **model)
{
  SimclrEmbedConfig cfg;
  SimclrError err = { 0 };
  SimclrEmbedder *e;
  int kind = simclr_embed_kind_from_string (o->embed ? o->embed : "h");

  *model = NULL;
  if (kind < 0) {
    fprintf (stderr, "error: --embed %s: h, z, raw or ahash expected\n",
        o->embed);
    return NULL;
  }
  simclr_embed_config_default (&cfg);
  cfg.kind = kind;
  cfg.flip_average = o->flip_average;
  cfg.size = o->size;
  cfg.max_batch = 32;
  if (kind == SIMCLR_EMBED_H || kind == SIMCLR_EMBED_Z) {
    if (!o->checkpoint) {
      fprintf (stderr, "error: --embed %s needs --checkpoint FILE\n",
          simclr_embed_kind_to_string (kind));
      return NULL;
    }
    *model = simclr_checkpoint_load_model (o->checkpoint, 2 * cfg.max_batch,
        &err);
    if (!*model) {
      fprintf (stderr, "error: %s\n", err.message);
      return NULL;
    }
  }
  e = simclr_embedder_new (&cfg, *model, &err);
  if (!e) {
    fprintf (stderr, "error: %s\n", err.message);
    simclr_model_free (*model);
    *model = NULL;
  }
  return e;
}

const char *
apps_embedder_describe (const AppsEmbedOptions *o)
{
  static char buf[512];
  const char *kind = o->embed ? o->embed : "h";
  if (strcmp (kind, "h") == 0 || strcmp (kind, "z") == 0)
    snprintf (buf, sizeof buf, "%s of %s%s", kind, o->checkpoint,
        o->flip_average ? ", flip-averaged" : "");
  else
    snprintf (buf, sizeof buf, "%s baseline%s", kind,
        o->flip_average ? ", flip-averaged" : "");
  return buf;
}

/* ---- images ------------------------------------------------------------ */

AppsImage *
apps_image_new (int w, int h, uint8_t r, uint8_t g, uint8_t b)
{
  AppsImage *im = g_new (AppsImage, 1);
  im->w = w;
  im->h = h;
  im->rgb = g_malloc ((size_t) w * h * 3);
  for (size_t i = 0; i < (size_t) w * h; i++) {
    im->rgb[3 * i] = r;
    im->rgb[3 * i + 1] = g;
    im->rgb[3 * i + 2] = b;
  }
  return im;
}

void
apps_image_free (AppsImage *im)
{
  if (!im)
    return;
  g_free (im->rgb);
  g_free (im);
}

/* Area-average resize (each destination pixel averages the source pixels
 * its footprint covers, at least one): good enough for thumbnails. */
static void
resize_area (const uint8_t *src, int sw, int sh, uint8_t *dst, int dw,
    int dh, int dstride)
{
  for (int y = 0; y < dh; y++) {
    int y0 = (int) ((int64_t) y * sh / dh), y1 = (int) ((int64_t) (y + 1) *
        sh / dh);
    if (y1 <= y0)
      y1 = y0 + 1;
    for (int x = 0; x < dw; x++) {
      int x0 = (int) ((int64_t) x * sw / dw), x1 = (int) ((int64_t) (x + 1) *
          sw / dw);
      unsigned sum[3] = { 0, 0, 0 }, n = 0;
      if (x1 <= x0)
        x1 = x0 + 1;
      for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) {
          const uint8_t *p = src + ((size_t) yy * sw + xx) * 3;
          sum[0] += p[0];
          sum[1] += p[1];
          sum[2] += p[2];
          n++;
        }
      for (int c = 0; c < 3; c++)
        dst[(size_t) y * dstride + x * 3 + c] = (uint8_t) ((sum[c] + n / 2) /
            n);
    }
  }
}

AppsImage *
apps_thumbnail (const uint8_t *rgb, int w, int h, int tw, int th)
{
  AppsImage *im = apps_image_new (tw, th, 24, 24, 24);
  double s = (double) tw / w < (double) th / h ? (double) tw / w :
      (double) th / h;
  int dw = (int) (w * s + 0.5), dh = (int) (h * s + 0.5);
  if (dw < 1)
    dw = 1;
  if (dh < 1)
    dh = 1;
  if (dw > tw)
    dw = tw;
  if (dh > th)
    dh = th;
  resize_area (rgb, w, h, im->rgb + ((size_t) ((th - dh) / 2) * tw +
          (tw - dw) / 2) * 3, dw, dh, tw * 3);
  return im;
}

void
apps_image_paste (AppsImage *dst, const AppsImage *src, int x, int y)
{
  for (int j = 0; j < src->h; j++) {
    int yy = y + j;
    if (yy < 0 || yy >= dst->h)
      continue;
    for (int i = 0; i < src->w; i++) {
      int xx = x + i;
      if (xx < 0 || xx >= dst->w)
        continue;
      memcpy (dst->rgb + ((size_t) yy * dst->w + xx) * 3,
          src->rgb + ((size_t) j * src->w + i) * 3, 3);
    }
  }
}

void
apps_image_fill (AppsImage *im, int x, int y, int w, int h, uint8_t r,
    uint8_t g, uint8_t b)
{
  for (int j = y; j < y + h; j++)
    for (int i = x; i < x + w; i++) {
      uint8_t *p;
      if (i < 0 || j < 0 || i >= im->w || j >= im->h)
        continue;
      p = im->rgb + ((size_t) j * im->w + i) * 3;
      p[0] = r;
      p[1] = g;
      p[2] = b;
    }
}

void
apps_image_rect (AppsImage *im, int x, int y, int w, int h, int border,
    uint8_t r, uint8_t g, uint8_t b)
{
  apps_image_fill (im, x, y, w, border, r, g, b);
  apps_image_fill (im, x, y + h - border, w, border, r, g, b);
  apps_image_fill (im, x, y, border, h, r, g, b);
  apps_image_fill (im, x + w - border, y, border, h, r, g, b);
}

/* 5x7 glyphs, one byte per row, bit 4 the leftmost column. */
typedef struct {
  char c;
  uint8_t rows[7];
} Glyph;

static const Glyph font[] = {
  {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
  {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
  {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
  {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
  {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
  {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
  {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
  {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
  {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
  {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
  {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
  {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
  {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
  {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}},
  {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
  {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
  {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
  {'x', {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}},
  {'s', {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}},
  {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
  {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}},
};

void
apps_image_text (AppsImage *im, int x, int y, int scale, const char *text,
    uint8_t r, uint8_t g, uint8_t b)
{
  for (const char *p = text; *p; p++, x += 6 * scale) {
    const Glyph *gl = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS (font); i++)
      if (font[i].c == *p)
        gl = &font[i];
    if (!gl)
      continue;                 /* a space, or a character we do not draw */
    for (int row = 0; row < 7; row++)
      for (int col = 0; col < 5; col++)
        if (gl->rows[row] & (0x10 >> col))
          apps_image_fill (im, x + col * scale, y + row * scale, scale, scale,
              r, g, b);
  }
}

int
apps_image_write_jpeg (const AppsImage *im, const char *path)
{
  tjhandle tj = tjInitCompress ();
  unsigned char *jpeg = NULL;
  unsigned long size = 0;
  FILE *f;
  int ok;
  if (!tj || tjCompress2 (tj, im->rgb, im->w, im->w * 3, im->h, TJPF_RGB,
          &jpeg, &size, TJSAMP_420, 90, 0) != 0) {
    fprintf (stderr, "error: JPEG encoding of \"%s\" failed: %s\n", path,
        tjGetErrorStr ());
    if (tj)
      tjDestroy (tj);
    return -1;
  }
  f = fopen (path, "wb");
  ok = f && fwrite (jpeg, 1, size, f) == size;
  if (f && fclose (f) != 0)
    ok = 0;
  if (!ok)
    fprintf (stderr, "error: cannot write \"%s\": %s\n", path,
        strerror (errno));
  tjFree (jpeg);
  tjDestroy (tj);
  return ok ? 0 : -1;
}

static void
put_be32 (unsigned char *p, uint32_t v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

/* One PNG chunk: length, type, data, CRC of type + data. */
static int
write_chunk (FILE *f, const char *type, const unsigned char *data,
    uint32_t len)
{
  unsigned char head[8], tail[4];
  uLong crc = crc32 (0L, (const Bytef *) type, 4);
  if (len)
    crc = crc32 (crc, data, len);
  put_be32 (head, len);
  memcpy (head + 4, type, 4);
  put_be32 (tail, (uint32_t) crc);
  return fwrite (head, 1, 8, f) == 8 && (len == 0
      || fwrite (data, 1, len, f) == len) && fwrite (tail, 1, 4, f) == 4;
}

int
apps_image_write_png (const AppsImage *im, const char *path)
{
  const size_t row = (size_t) im->w * 3 + 1;
  unsigned char ihdr[13];
  unsigned char *raw = g_malloc (row * im->h);
  uLongf zlen = compressBound (row * im->h);
  unsigned char *z = g_malloc (zlen);
  FILE *f;
  int ok;

  /* Filter type 0 (none) on every row. */
  for (int y = 0; y < im->h; y++) {
    raw[y * row] = 0;
    memcpy (raw + y * row + 1, im->rgb + (size_t) y * im->w * 3, row - 1);
  }
  if (compress2 (z, &zlen, raw, row * im->h, 6) != Z_OK) {
    fprintf (stderr, "error: zlib failed for \"%s\"\n", path);
    g_free (raw);
    g_free (z);
    return -1;
  }
  put_be32 (ihdr, im->w);
  put_be32 (ihdr + 4, im->h);
  ihdr[8] = 8;                  /* bit depth */
  ihdr[9] = 2;                  /* colour type: RGB */
  ihdr[10] = ihdr[11] = ihdr[12] = 0;   /* deflate, adaptive, no interlace */
  f = fopen (path, "wb");
  ok = f && fwrite ("\x89PNG\r\n\x1a\n", 1, 8, f) == 8
      && write_chunk (f, "IHDR", ihdr, 13)
      && write_chunk (f, "IDAT", z, (uint32_t) zlen)
      && write_chunk (f, "IEND", NULL, 0);
  if (f && fclose (f) != 0)
    ok = 0;
  if (!ok)
    fprintf (stderr, "error: cannot write \"%s\": %s\n", path,
        strerror (errno));
  g_free (raw);
  g_free (z);
  return ok ? 0 : -1;
}

/* ---- thumbnails -------------------------------------------------------- */

struct AppsThumbs {
  int tw, th;
  GHashTable *want;             /* path -> GHashTable of index -> AppsImage* */
};

AppsThumbs *
apps_thumbs_new (int tw, int th)
{
  AppsThumbs *t = g_new0 (AppsThumbs, 1);
  t->tw = tw;
  t->th = th;
  t->want = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      (GDestroyNotify) g_hash_table_unref);
  return t;
}

void
apps_thumbs_free (AppsThumbs *t)
{
  if (!t)
    return;
  g_hash_table_unref (t->want);
  g_free (t);
}

void
apps_thumbs_want (AppsThumbs *t, const char *path, int64_t index)
{
  GHashTable *frames;
  gint64 *key;
  if (!path)
    return;
  frames = g_hash_table_lookup (t->want, path);
  if (!frames) {
    frames = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
        (GDestroyNotify) apps_image_free);
    g_hash_table_insert (t->want, g_strdup (path), frames);
  }
  key = g_new (gint64, 1);
  *key = index;
  if (!g_hash_table_contains (frames, key))
    g_hash_table_insert (frames, key, NULL);
  else
    g_free (key);
}

typedef struct {
  AppsThumbs *t;
  GHashTable *frames;
  guint left;
} ThumbJob;

static int
thumb_frame (const AppsFrame *f, void *user)
{
  ThumbJob *job = user;
  gint64 key = f->index;
  if (g_hash_table_contains (job->frames, &key)
      && !g_hash_table_lookup (job->frames, &key)) {
    gint64 *k = g_new (gint64, 1);
    *k = key;
    g_hash_table_replace (job->frames, k, apps_thumbnail (f->rgb, f->w, f->h,
            job->t->tw, job->t->th));
    job->left--;
  }
  return job->left == 0;        /* stop decoding once all are found */
}

void
apps_thumbs_load (AppsThumbs *t)
{
  GHashTableIter it;
  gpointer path, frames;
  g_hash_table_iter_init (&it, t->want);
  while (g_hash_table_iter_next (&it, &path, &frames)) {
    ThumbJob job = { t, frames, g_hash_table_size (frames) };
    char err[512];
    if (apps_decode (path, 1, thumb_frame, &job, err, sizeof err) != 0)
      fprintf (stderr, "warning: no thumbnails from %s\n", err);
  }
}

const AppsImage *
apps_thumbs_get (AppsThumbs *t, const char *path, int64_t index)
{
  GHashTable *frames;
  gint64 key = index;
  if (!path)
    return NULL;
  frames = g_hash_table_lookup (t->want, path);
  return frames ? g_hash_table_lookup (frames, &key) : NULL;
}
