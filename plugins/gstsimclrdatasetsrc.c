/* gstsimclrdatasetsrc.c: the simclrdatasetsrc element, glue between
 * libsimclr's data-set readers (simclr/dataset.h) and GStreamer: properties,
 * caps, timestamps, GstSimclrFrameMeta and error reporting. Decoding, the
 * epoch order and sharding are done by the core.
 */

/**
 * SECTION:element-simclrdatasetsrc
 * @title: simclrdatasetsrc
 * @see_also: simclraugment
 *
 * Plays the images of a data set on disk as video frames, one sample per
 * buffer, for SimCLR training or embedding. Supported layouts (see
 * #GstSimclrDatasetSrc:format): IDX (MNIST / Fashion-MNIST, gzip or raw:
 * GRAY8), CIFAR-10 and CIFAR-100 binary (RGB, CIFAR-100 gives the fine
 * label) and a folder of JPEG images with one sub-folder per class, optionally
 * under train/ and test/ (RGB; the class index is the position of the
 * sub-folder name in sorted order).
 *
 * Output: video/x-raw GRAY8 or RGB at the set's size, framerate 0/1, square
 * pixels. A JPEG folder whose images differ in size either sets
 * #GstSimclrDatasetSrc:target-width and #GstSimclrDatasetSrc:target-height
 * (every image resized with an antialiased bilinear filter, aspect ratio not
 * kept) or, without them, sends new caps whenever the size changes from one
 * sample to the next (downstream must accept a caps change; `videoscale`
 * does).
 *
 * Each buffer carries a GstSimclrFrameMeta (sample id = index of the image in
 * the data set, view -1, label, epoch), its offset is the running frame count
 * since start, and its timestamps are nominal: PTS = frame count x 1/30 s,
 * duration 1/30 s (a synchronising display sink shows 30 samples per second;
 * training pipelines do not synchronise and are not slowed).
 *
 * Order: every epoch visits a permutation of the data set that is a pure
 * function of (#GstSimclrDatasetSrc:seed, epoch) when
 * #GstSimclrDatasetSrc:shuffle is set (a new order each epoch), the stored
 * order otherwise. With #GstSimclrDatasetSrc:shard-count K, shard r plays the
 * r-th of K disjoint equal blocks of that permutation (n % K samples are left
 * out each epoch), so K data-parallel pipelines with the same seed see
 * disjoint samples. Under `mpirun -np K` (plugin built with MPI) the
 * defaults are shard-index = the rank and shard-count = K, so every rank
 * plays its own part without settings; a property set explicitly wins.
 * #GstSimclrDatasetSrc:num-samples keeps the first samples
 * of each epoch's (shard) order. After #GstSimclrDatasetSrc:epochs epochs the
 * element sends EOS (epochs=0: never). #GstSimclrDatasetSrc:start-position
 * resumes a run part-way (the skipped samples are not read).
 *
 * Errors: a missing file or folder posts RESOURCE/NOT_FOUND (other read
 * failures RESOURCE/OPEN_READ), a malformed file (wrong IDX magic, truncated
 * file, label count mismatch, CIFAR size not a multiple of the record)
 * STREAM/DECODE, impossible settings LIBRARY/SETTINGS; each when the element
 * starts, with the reader's message naming the file, and the state change
 * fails. A corrupt JPEG met while streaming is skipped with a STREAM/DECODE
 * warning naming the file, posted once per run (it is not replaced, so each
 * epoch is one sample shorter; later epochs skip it silently); an epoch in
 * which no image could be decoded is an error. A JPEG that libjpeg-turbo can
 * decode only in part (a truncated download: "Premature end of JPEG file";
 * corrupt entropy-coded data) counts as corrupt and is skipped, never played
 * with the missing pixels filled in, since training on the filler would
 * teach the encoder an artefact. Any warning of the decoder skips the image.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 simclrdatasetsrc location=/usr/share/datasets/fashion-mnist \
 *     num-samples=16 ! videoconvert ! fakesink
 * ]| plays the first 16 Fashion-MNIST training images (28 x 28 GRAY8).
 * |[
 * gst-launch-1.0 simclrdatasetsrc location=/usr/share/datasets/fashion-mnist \
 *     shuffle=true seed=1 epochs=2 num-samples=8 ! simclraugment size=28 ! \
 *     videoconvert ! pngenc ! multifilesink location=view-%05d.png
 * ]| writes 32 augmented views of 8 random samples per epoch for two epochs.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <gst/video/video.h>

#include "simclr/dataset.h"

#include "gstsimclr.h"
#include "gstsimclrdatasetsrc.h"
#include "gstsimclrmpi.h"

GST_DEBUG_CATEGORY_STATIC (gst_simclr_dataset_src_debug);
#define GST_CAT_DEFAULT gst_simclr_dataset_src_debug

/* Nominal frame rate of the timestamps (see the SECTION comment). */
#define NOMINAL_FPS 30
/* Resizing targets: at most this side, and at most MAX_UPSCALE times the
 * largest image of the set per side (in area: its square), so a stray
 * target-width=16384 cannot make 800 MB frames of thumbnails (issue 15). */
#define MAX_TARGET_SIDE 4096
#define MAX_UPSCALE 16

struct _GstSimclrDatasetSrc
{
  GstPushSrc parent;

  gboolean prepared;            /* change_state did start ()'s work */
  /* Properties, under the object lock. */
  gchar *location;
  GstSimclrDatasetFormat format;
  GstSimclrDatasetSplit split;
  gboolean shuffle;
  guint64 seed;
  guint epochs;
  guint64 num_samples;
  guint shard_index;
  guint shard_count;
  gboolean shard_index_set;     /* set explicitly: wins over the MPI rank */
  gboolean shard_count_set;     /* set explicitly: wins over the MPI size */
  gint target_width;
  gint target_height;
  guint64 start_position;

  /* Negotiated size, under the object lock (get_caps reads it from any
   * thread); 0 before the first sample is read. */
  gint cur_width;
  gint cur_height;

  /* Streaming state: start/stop and the streaming thread only. */
  SimclrDataset *ds;
  gint channels;
  gboolean run_shuffle;
  guint64 run_seed;
  guint run_epochs;
  guint run_shard_index;
  guint run_shard_count;
  gint64 *order;                /* (per_epoch) */
  gint64 per_epoch;             /* samples drawn per epoch */
  gint64 pos;                   /* next position in @order */
  gint64 skip_in_epoch;         /* start-position: positions skipped in the
                                 * first epoch's order */
  gboolean epoch_whole;         /* this epoch was read from its start */
  guint64 epoch;
  gboolean epoch_ready;         /* @order holds @epoch's order */
  gint64 decoded_in_epoch;
  guint8 *bad;                  /* (n + 7) / 8 bits: samples that failed to
                                 * decode, warned about once, then skipped */
  guint64 frame_count;
  guint8 *pixels;               /* (max_image_bytes) packed rows */
  gsize pixels_cap;
  /* The sample read ahead (start() reads the first one to know the caps). */
  gboolean have_pending;
  gint64 pending_index;
  gint pending_width, pending_height, pending_label;
  guint64 pending_epoch;
  GstVideoInfo info;
};

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_FORMAT,
  PROP_SPLIT,
  PROP_SHUFFLE,
  PROP_SEED,
  PROP_EPOCHS,
  PROP_NUM_SAMPLES,
  PROP_SHARD_INDEX,
  PROP_SHARD_COUNT,
  PROP_TARGET_WIDTH,
  PROP_TARGET_HEIGHT,
  PROP_START_POSITION,
};

#define DEFAULT_LOCATION NULL
#define DEFAULT_FORMAT GST_SIMCLR_DATASET_FORMAT_AUTO
#define DEFAULT_SPLIT GST_SIMCLR_DATASET_SPLIT_TRAIN
#define DEFAULT_SHUFFLE FALSE
#define DEFAULT_SEED 0
#define DEFAULT_EPOCHS 1
#define DEFAULT_NUM_SAMPLES 0
#define DEFAULT_SHARD_INDEX 0
#define DEFAULT_SHARD_COUNT 1
#define DEFAULT_TARGET_WIDTH 0
#define DEFAULT_TARGET_HEIGHT 0
#define DEFAULT_START_POSITION 0

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) { GRAY8, RGB }, "
        "width = (int) [ 1, 16384 ], height = (int) [ 1, 16384 ], "
        "framerate = (fraction) 0/1, pixel-aspect-ratio = (fraction) 1/1"));

#define gst_simclr_dataset_src_parent_class parent_class
G_DEFINE_TYPE (GstSimclrDatasetSrc, gst_simclr_dataset_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE (simclrdatasetsrc, "simclrdatasetsrc",
    GST_RANK_NONE, GST_TYPE_SIMCLR_DATASET_SRC);

GType
gst_simclr_dataset_format_get_type (void)
{
  static gsize type_id = 0;
  static const GEnumValue values[] = {
    {GST_SIMCLR_DATASET_FORMAT_AUTO, "Guess from the files", "auto"},
    {GST_SIMCLR_DATASET_FORMAT_IDX, "IDX (MNIST, Fashion-MNIST)", "idx"},
    {GST_SIMCLR_DATASET_FORMAT_CIFAR10, "CIFAR-10 binary", "cifar10"},
    {GST_SIMCLR_DATASET_FORMAT_CIFAR100, "CIFAR-100 binary (fine labels)",
        "cifar100"},
    {GST_SIMCLR_DATASET_FORMAT_JPEG_FOLDER,
        "JPEG images, one sub-folder per class", "jpeg-folder"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type_id)) {
    GType t = g_enum_register_static ("GstSimclrDatasetFormat", values);
    g_once_init_leave (&type_id, t);
  }
  return (GType) type_id;
}

GType
gst_simclr_dataset_split_get_type (void)
{
  static gsize type_id = 0;
  static const GEnumValue values[] = {
    {GST_SIMCLR_DATASET_SPLIT_TRAIN, "Training split", "train"},
    {GST_SIMCLR_DATASET_SPLIT_TEST, "Test split", "test"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type_id)) {
    GType t = g_enum_register_static ("GstSimclrDatasetSplit", values);
    g_once_init_leave (&type_id, t);
  }
  return (GType) type_id;
}

/* ------------------------------------------------------------------------ */
/* Caps */

static GstCaps *
gst_simclr_dataset_src_make_caps (gint channels, gint width, gint height)
{
  return gst_caps_new_simple ("video/x-raw",
      "format", G_TYPE_STRING, channels == 1 ? "GRAY8" : "RGB",
      "width", G_TYPE_INT, width,
      "height", G_TYPE_INT, height,
      "framerate", GST_TYPE_FRACTION, 0, 1,
      "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
}

static GstCaps *
gst_simclr_dataset_src_get_caps (GstBaseSrc * src, GstCaps * filter)
{
  GstSimclrDatasetSrc *self = GST_SIMCLR_DATASET_SRC (src);
  GstCaps *caps;
  gint w, h;

  GST_OBJECT_LOCK (self);
  w = self->cur_width;
  h = self->cur_height;
  GST_OBJECT_UNLOCK (self);

  if (w > 0)
    caps = gst_simclr_dataset_src_make_caps (self->channels, w, h);
  else
    caps = gst_pad_get_pad_template_caps (GST_BASE_SRC_PAD (src));

  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, caps,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = tmp;
  }
  return caps;
}

static gboolean
gst_simclr_dataset_src_set_caps (GstBaseSrc * src, GstCaps * caps)
{
  GstSimclrDatasetSrc *self = GST_SIMCLR_DATASET_SRC (src);

  if (!gst_video_info_from_caps (&self->info, caps)) {
    GST_ERROR_OBJECT (self, "invalid caps %" GST_PTR_FORMAT, caps);
    return FALSE;
  }
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, caps);
  return TRUE;
}

/* Posts CORE/NEGOTIATION naming the caps this source offers and the ones
 * downstream accepts (@peer_caps may be NULL when unknown). */
static void
gst_simclr_dataset_src_post_not_negotiated (GstSimclrDatasetSrc * self,
    GstCaps * ours, GstCaps * peer_caps)
{
  gchar *o = gst_caps_to_string (ours);
  gchar *p = peer_caps ? gst_caps_to_string (peer_caps) : g_strdup ("unknown");
  gchar *location;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location ? self->location : "");
  GST_OBJECT_UNLOCK (self);

  GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
      ("Downstream does not accept the frames of this data set: they are %s; "
          "downstream accepts %s (add videoscale / videoconvert, or set "
          "target-width and target-height for a JPEG folder)", o, p),
      ("location \"%s\"", location));
  g_free (location);
  g_free (o);
  g_free (p);
}

/* basesrc's own failure message is only "Internal data stream error ...
 * not-negotiated": name the caps first. */
static gboolean
gst_simclr_dataset_src_negotiate (GstBaseSrc * src)
{
  GstSimclrDatasetSrc *self = GST_SIMCLR_DATASET_SRC (src);
  GstPad *pad = GST_BASE_SRC_PAD (src);
  GstCaps *ours, *peer;

  if (GST_BASE_SRC_CLASS (parent_class)->negotiate (src))
    return TRUE;
  if (GST_PAD_IS_FLUSHING (pad))
    return FALSE;
  ours = gst_pad_query_caps (pad, NULL);
  peer = gst_pad_is_linked (pad) ? gst_pad_peer_query_caps (pad, NULL) : NULL;
  gst_simclr_dataset_src_post_not_negotiated (self, ours, peer);
  gst_caps_unref (ours);
  if (peer)
    gst_caps_unref (peer);
  return FALSE;
}

/* ------------------------------------------------------------------------ */
/* Reading */

/* Reads the next sample of the epoch order into self->pixels (the pending
 * sample), moving to the next epoch when one ends. Corrupt images are skipped
 * with a warning. Returns GST_FLOW_OK, GST_FLOW_EOS after the last epoch, or
 * GST_FLOW_ERROR with an error posted. */
static GstFlowReturn
gst_simclr_dataset_src_read_next (GstSimclrDatasetSrc * self)
{
  SimclrError err = { 0 };

  for (;;) {
    gint64 index;
    gint w = 0, h = 0, label = -1;
    SimclrStatus st;

    if (!self->epoch_ready) {
      gint64 m;
      if (self->run_epochs != 0 && self->epoch >= self->run_epochs)
        return GST_FLOW_EOS;
      m = simclr_dataset_epoch_order (simclr_dataset_size (self->ds),
          self->run_seed, self->epoch, self->run_shuffle,
          (int) self->run_shard_index, (int) self->run_shard_count,
          self->order);
      if (m < self->per_epoch)
        goto order_failed;
      self->pos = self->skip_in_epoch;
      self->epoch_whole = self->skip_in_epoch == 0;
      self->skip_in_epoch = 0;
      self->decoded_in_epoch = 0;
      self->epoch_ready = TRUE;
      GST_DEBUG_OBJECT (self, "epoch %" G_GUINT64_FORMAT ": %" G_GINT64_FORMAT
          " samples", self->epoch, self->per_epoch);
    }
    if (self->pos >= self->per_epoch) {
      /* a whole epoch of corrupt images would loop forever with epochs=0 */
      if (self->decoded_in_epoch == 0 && self->epoch_whole)
        goto nothing_decoded;
      self->epoch++;
      self->epoch_ready = FALSE;
      continue;
    }

    index = self->order[self->pos++];
    if (self->bad && (self->bad[index / 8] & (1u << (index % 8)))) {
      GST_LOG_OBJECT (self, "sample %" G_GINT64_FORMAT " is known corrupt",
          index);
      continue;
    }
    st = simclr_dataset_get (self->ds, index, self->pixels, self->pixels_cap,
        &w, &h, &label, &err);
    if (st == SIMCLR_ERROR_FORMAT) {
      /* One warning per corrupt file per run, not one per epoch: later
       * epochs skip it without reading it again. */
      if (!self->bad)
        self->bad = g_new0 (guint8,
            (simclr_dataset_size (self->ds) + 7) / 8);
      self->bad[index / 8] |= (guint8) (1u << (index % 8));
      GST_ELEMENT_WARNING (self, STREAM, DECODE,
          ("Skipping sample %" G_GINT64_FORMAT ": %s", index, err.message),
          ("corrupt image %s in epoch %" G_GUINT64_FORMAT " (skipped in "
              "every epoch; not warned about again)",
              simclr_dataset_sample_path (self->ds, index), self->epoch));
      continue;
    }
    if (st != SIMCLR_OK)
      goto read_failed;

    self->decoded_in_epoch++;
    self->have_pending = TRUE;
    self->pending_index = index;
    self->pending_width = w;
    self->pending_height = h;
    self->pending_label = label;
    self->pending_epoch = self->epoch;
    return GST_FLOW_OK;
  }

  /* ERRORS */
order_failed:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("Could not compute the order of epoch %" G_GUINT64_FORMAT,
            self->epoch), ("simclr_dataset_epoch_order failed"));
    return GST_FLOW_ERROR;
  }
nothing_decoded:
  {
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("No image of epoch %" G_GUINT64_FORMAT " could be decoded",
            self->epoch), ("%" G_GINT64_FORMAT " samples skipped",
            self->per_epoch));
    return GST_FLOW_ERROR;
  }
read_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("%s", err.message),
        ("sample %" G_GINT64_FORMAT " (%s)", (gint64) self->order[self->pos - 1],
            simclr_status_to_string (err.status)));
    return GST_FLOW_ERROR;
  }
}

/* ------------------------------------------------------------------------ */
/* Start / stop */

static void
gst_simclr_dataset_src_reset (GstSimclrDatasetSrc * self)
{
  simclr_dataset_free (self->ds);
  self->ds = NULL;
  g_clear_pointer (&self->order, g_free);
  g_clear_pointer (&self->pixels, g_free);
  g_clear_pointer (&self->bad, g_free);
  self->pixels_cap = 0;
  self->have_pending = FALSE;
  self->epoch_ready = FALSE;
  self->epoch = 0;
  self->pos = 0;
  self->skip_in_epoch = 0;
  self->frame_count = 0;
  gst_video_info_init (&self->info);
  GST_OBJECT_LOCK (self);
  self->cur_width = self->cur_height = 0;
  GST_OBJECT_UNLOCK (self);
}

/* Posts the error of a failed open: the core's message names the file. */
static void
gst_simclr_dataset_src_post_open_error (GstSimclrDatasetSrc * self,
    const gchar * location, const SimclrError * err)
{
  const gchar *msg = err->message;

  switch (err->status) {
    case SIMCLR_ERROR_IO:
      if (!g_file_test (location, G_FILE_TEST_EXISTS) || g_str_has_prefix (msg,
              "no ") || strstr (msg, "No such file") || strstr (msg, "no such"))
        GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("%s", msg),
            ("location \"%s\"", location));
      else
        GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("%s", msg),
            ("location \"%s\"", location));
      break;
    case SIMCLR_ERROR_FORMAT:
      GST_ELEMENT_ERROR (self, STREAM, DECODE, ("%s", msg),
          ("location \"%s\"", location));
      break;
    case SIMCLR_ERROR_INVALID_ARGUMENT:
    case SIMCLR_ERROR_UNSUPPORTED:
      GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", msg),
          ("location \"%s\"", location));
      break;
    default:
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("%s", msg),
          ("location \"%s\" (%s)", location,
              simclr_status_to_string (err->status)));
      break;
  }
}

static gboolean
gst_simclr_dataset_src_prepare (GstBaseSrc * src)
{
  GstSimclrDatasetSrc *self = GST_SIMCLR_DATASET_SRC (src);
  SimclrError err = { 0 };
  gchar *location;
  GstSimclrDatasetFormat format;
  GstSimclrDatasetSplit split;
  guint64 num_samples;
  gint target_w, target_h;
  guint64 start_position;
  gint64 n, m;
  GstFlowReturn ret;
  gboolean distributed;
  GError *mpi_error = NULL;
  GstCaps *peer_caps = NULL;

  /* Under `mpirun -np K` (plugin built with MPI): initialise MPI, so that an
   * error here ends every rank, and shard by rank unless told otherwise. */
  distributed = gst_simclr_mpi_start (GST_ELEMENT (self), &mpi_error);
  if (mpi_error) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("%s", mpi_error->message),
        (NULL));
    g_clear_error (&mpi_error);
    return FALSE;
  }

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  format = self->format;
  split = self->split;
  self->run_shuffle = self->shuffle;
  self->run_seed = self->seed;
  self->run_epochs = self->epochs;
  num_samples = self->num_samples;
  self->run_shard_index = self->shard_index;
  self->run_shard_count = self->shard_count;
  if (distributed && !self->shard_index_set)
    self->run_shard_index = gst_simclr_mpi_rank ();
  if (distributed && !self->shard_count_set)
    self->run_shard_count = gst_simclr_mpi_size ();
  target_w = self->target_width;
  target_h = self->target_height;
  start_position = self->start_position;
  GST_OBJECT_UNLOCK (self);

  gst_simclr_dataset_src_reset (self);

  if (location == NULL || *location == '\0')
    goto no_location;
  if ((target_w == 0) != (target_h == 0))
    goto bad_target;
  if (self->run_shard_index >= self->run_shard_count)
    goto bad_shard;

  self->ds = simclr_dataset_open (location,
      split == GST_SIMCLR_DATASET_SPLIT_TEST ? "test" : "train",
      (SimclrDatasetFormat) format, &err);
  if (self->ds == NULL)
    goto open_failed;
  if (target_w > 0) {
    /* the largest image, in pixels, before any resizing */
    guint64 native = simclr_dataset_max_image_bytes (self->ds) /
        (guint64) simclr_dataset_channels (self->ds);
    if ((guint64) target_w * target_h > (guint64) MAX_UPSCALE * MAX_UPSCALE *
        MAX (native, 1))
      goto target_too_large;
    if (simclr_dataset_set_target_size (self->ds, target_w, target_h,
            &err) != SIMCLR_OK)
      goto open_failed;
  }

  n = simclr_dataset_size (self->ds);
  m = n / self->run_shard_count;
  if (m == 0)
    goto too_many_shards;
  self->per_epoch = num_samples > 0 && (guint64) m > num_samples ?
      (gint64) num_samples : m;
  if (num_samples > (guint64) m)
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
        ("Property num-samples = %" G_GUINT64_FORMAT " exceeds the %"
            G_GINT64_FORMAT " samples of %s: each epoch plays %" G_GINT64_FORMAT
            ".", num_samples, m, self->run_shard_count > 1 ? "this shard" :
            "the data set", m), ("location \"%s\"", location));
  if (self->run_epochs > 0 && start_position >= (guint64) self->run_epochs *
      (guint64) self->per_epoch)
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
        ("Property start-position = %" G_GUINT64_FORMAT " is at or past the "
            "end of the run (epochs = %u x %" G_GINT64_FORMAT " samples): "
            "nothing is played.", start_position, self->run_epochs,
            self->per_epoch), ("location \"%s\"", location));
  self->order = g_new (gint64, m);
  self->channels = simclr_dataset_channels (self->ds);
  self->pixels_cap = simclr_dataset_max_image_bytes (self->ds);
  self->pixels = g_malloc (MAX (self->pixels_cap, 1));
  /* Resume: start-position samples of the run are skipped without being
   * read; offsets and timestamps continue from there. */
  self->epoch = start_position / (guint64) self->per_epoch;
  self->skip_in_epoch = (gint64) (start_position % (guint64) self->per_epoch);
  self->frame_count = start_position;

  GST_INFO_OBJECT (self, "%s: %s, %" G_GINT64_FORMAT " samples, %d classes, "
      "%dx%d x %d, %" G_GINT64_FORMAT " per epoch (shard %u of %u)", location,
      simclr_dataset_format_to_string (simclr_dataset_format (self->ds)), n,
      simclr_dataset_n_classes (self->ds), simclr_dataset_width (self->ds),
      simclr_dataset_height (self->ds), self->channels, self->per_epoch,
      self->run_shard_index, self->run_shard_count);

  /* Read the first sample now: its size fixes the caps negotiated before
   * the first buffer (JPEG folders of varying sizes have no set size). */
  ret = gst_simclr_dataset_src_read_next (self);
  if (ret == GST_FLOW_OK) {
    GstCaps *caps = gst_simclr_dataset_src_make_caps (self->channels,
        self->pending_width, self->pending_height);
    gboolean ok = gst_simclr_peer_can_negotiate (GST_BASE_SRC_PAD (self),
        caps, &peer_caps);
    if (!ok) {
      gst_simclr_dataset_src_post_not_negotiated (self, caps, peer_caps);
      gst_caps_unref (caps);
      gst_caps_unref (peer_caps);
      gst_simclr_dataset_src_reset (self);
      g_free (location);
      return FALSE;
    }
    gst_caps_unref (caps);
    GST_OBJECT_LOCK (self);
    self->cur_width = self->pending_width;
    self->cur_height = self->pending_height;
    GST_OBJECT_UNLOCK (self);
  } else if (ret != GST_FLOW_EOS) {
    gst_simclr_dataset_src_reset (self);
    g_free (location);
    return FALSE;
  }
  g_free (location);
  return TRUE;

  /* ERRORS */
no_location:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No data set location given"), ("set the location property"));
    g_free (location);
    return FALSE;
  }
bad_target:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("target-width and target-height must both be 0 or both be set "
            "(%d x %d)", target_w, target_h), (NULL));
    g_free (location);
    return FALSE;
  }
bad_shard:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("shard-index %u must be below shard-count %u",
            self->run_shard_index, self->run_shard_count), (NULL));
    g_free (location);
    return FALSE;
  }
open_failed:
  {
    gst_simclr_dataset_src_post_open_error (self, location, &err);
    gst_simclr_dataset_src_reset (self);
    g_free (location);
    return FALSE;
  }
target_too_large:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Properties target-width x target-height = %d x %d are more than %d "
            "times the largest image of %s (%" G_GUINT64_FORMAT " pixels) per "
            "side: every frame would be upsampled from a thumbnail.",
            target_w, target_h, MAX_UPSCALE, location,
            (guint64) (simclr_dataset_max_image_bytes (self->ds) /
                (guint64) simclr_dataset_channels (self->ds))), (NULL));
    gst_simclr_dataset_src_reset (self);
    g_free (location);
    return FALSE;
  }
too_many_shards:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("shard-count %u exceeds the %" G_GINT64_FORMAT " samples of %s",
            self->run_shard_count, n, location), (NULL));
    gst_simclr_dataset_src_reset (self);
    g_free (location);
    return FALSE;
  }
}

static gboolean
gst_simclr_dataset_src_stop (GstBaseSrc * src)
{
  gst_simclr_dataset_src_reset (GST_SIMCLR_DATASET_SRC (src));
  return TRUE;
}

/* The work of start() runs in change_state, before the base class's
 * READY->PAUSED: when it fails, ours is the only error posted
 * (gst_simclr_change_state_prepared, issue 15). */
static gboolean
gst_simclr_dataset_src_start (GstBaseSrc * base)
{
  return gst_simclr_prepared_start (GST_ELEMENT (base),
      (GstSimclrPrepareFunc) gst_simclr_dataset_src_prepare,
      &GST_SIMCLR_DATASET_SRC (base)->prepared);
}

static GstStateChangeReturn
gst_simclr_dataset_src_change_state (GstElement * element, GstStateChange transition)
{
  return gst_simclr_change_state_prepared (element, transition,
      GST_STATE_CHANGE_READY_TO_PAUSED, GST_ELEMENT_CLASS (parent_class),
      (GstSimclrPrepareFunc) gst_simclr_dataset_src_prepare,
      (GstSimclrPrepareFunc) gst_simclr_dataset_src_stop,
      &GST_SIMCLR_DATASET_SRC (element)->prepared);
}

/* ------------------------------------------------------------------------ */
/* Streaming */

static GstFlowReturn
gst_simclr_dataset_src_create (GstPushSrc * src, GstBuffer ** outbuf)
{
  GstSimclrDatasetSrc *self = GST_SIMCLR_DATASET_SRC (src);
  GstFlowReturn ret;
  GstVideoFrame frame;
  GstBuffer *buf;
  gint w, h, row_bytes;

  if (!self->have_pending) {
    ret = gst_simclr_dataset_src_read_next (self);
    if (ret != GST_FLOW_OK)
      return ret;
  }
  w = self->pending_width;
  h = self->pending_height;

  if (w != GST_VIDEO_INFO_WIDTH (&self->info)
      || h != GST_VIDEO_INFO_HEIGHT (&self->info)
      || GST_VIDEO_INFO_FORMAT (&self->info) == GST_VIDEO_FORMAT_UNKNOWN) {
    GstCaps *caps = gst_simclr_dataset_src_make_caps (self->channels, w, h);
    gboolean ok;
    GST_OBJECT_LOCK (self);
    self->cur_width = w;
    self->cur_height = h;
    GST_OBJECT_UNLOCK (self);
    GST_DEBUG_OBJECT (self, "size changes to %dx%d", w, h);
    ok = gst_base_src_set_caps (GST_BASE_SRC (self), caps);
    if (!ok) {
      GstPad *pad = GST_BASE_SRC_PAD (self);
      GstCaps *peer = gst_pad_is_linked (pad) ?
          gst_pad_peer_query_caps (pad, NULL) : NULL;
      gst_simclr_dataset_src_post_not_negotiated (self, caps, peer);
      if (peer)
        gst_caps_unref (peer);
      gst_caps_unref (caps);
      goto not_negotiated;
    }
    gst_caps_unref (caps);
  }

  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&self->info),
      NULL);
  if (!gst_video_frame_map (&frame, &self->info, buf, GST_MAP_WRITE)) {
    gst_buffer_unref (buf);
    goto map_failed;
  }
  /* rows are packed in self->pixels, padded to the stride in the frame */
  row_bytes = w * self->channels;
  for (gint y = 0; y < h; y++)
    memcpy ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0) +
        (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0),
        self->pixels + (gsize) y * row_bytes, row_bytes);
  gst_video_frame_unmap (&frame);

  gst_buffer_add_simclr_frame_meta (buf, (guint64) self->pending_index, -1,
      self->pending_label, self->pending_epoch);
  GST_BUFFER_OFFSET (buf) = self->frame_count;
  GST_BUFFER_OFFSET_END (buf) = self->frame_count + 1;
  GST_BUFFER_PTS (buf) = gst_util_uint64_scale_int (self->frame_count,
      GST_SECOND, NOMINAL_FPS);
  GST_BUFFER_DTS (buf) = GST_BUFFER_PTS (buf);
  GST_BUFFER_DURATION (buf) = gst_util_uint64_scale_int (self->frame_count + 1,
      GST_SECOND, NOMINAL_FPS) - GST_BUFFER_PTS (buf);
  self->frame_count++;
  self->have_pending = FALSE;

  GST_LOG_OBJECT (self, "sample %" G_GINT64_FORMAT " label %d epoch %"
      G_GUINT64_FORMAT, self->pending_index, self->pending_label,
      self->pending_epoch);
  *outbuf = buf;
  return GST_FLOW_OK;

  /* ERRORS */
not_negotiated:
  {
    GST_DEBUG_OBJECT (self, "sample %" G_GINT64_FORMAT " (%s): %dx%d refused",
        self->pending_index,
        simclr_dataset_sample_path (self->ds, self->pending_index), w, h);
    return GST_FLOW_NOT_NEGOTIATED;
  }
map_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not map a buffer"),
        (NULL));
    return GST_FLOW_ERROR;
  }
}

/* ------------------------------------------------------------------------ */
/* GObject */

static void
gst_simclr_dataset_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstSimclrDatasetSrc *self = GST_SIMCLR_DATASET_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_FORMAT:
      self->format = g_value_get_enum (value);
      break;
    case PROP_SPLIT:
      self->split = g_value_get_enum (value);
      break;
    case PROP_SHUFFLE:
      self->shuffle = g_value_get_boolean (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64 (value);
      break;
    case PROP_EPOCHS:
      self->epochs = g_value_get_uint (value);
      break;
    case PROP_NUM_SAMPLES:
      self->num_samples = g_value_get_uint64 (value);
      break;
    case PROP_SHARD_INDEX:
      self->shard_index = g_value_get_uint (value);
      self->shard_index_set = TRUE;
      break;
    case PROP_SHARD_COUNT:
      self->shard_count = g_value_get_uint (value);
      self->shard_count_set = TRUE;
      break;
    case PROP_TARGET_WIDTH:
      self->target_width = g_value_get_int (value);
      break;
    case PROP_TARGET_HEIGHT:
      self->target_height = g_value_get_int (value);
      break;
    case PROP_START_POSITION:
      self->start_position = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_simclr_dataset_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstSimclrDatasetSrc *self = GST_SIMCLR_DATASET_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_FORMAT:
      g_value_set_enum (value, self->format);
      break;
    case PROP_SPLIT:
      g_value_set_enum (value, self->split);
      break;
    case PROP_SHUFFLE:
      g_value_set_boolean (value, self->shuffle);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_EPOCHS:
      g_value_set_uint (value, self->epochs);
      break;
    case PROP_NUM_SAMPLES:
      g_value_set_uint64 (value, self->num_samples);
      break;
    case PROP_SHARD_INDEX:
      g_value_set_uint (value, self->shard_index);
      break;
    case PROP_SHARD_COUNT:
      g_value_set_uint (value, self->shard_count);
      break;
    case PROP_TARGET_WIDTH:
      g_value_set_int (value, self->target_width);
      break;
    case PROP_TARGET_HEIGHT:
      g_value_set_int (value, self->target_height);
      break;
    case PROP_START_POSITION:
      g_value_set_uint64 (value, self->start_position);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_simclr_dataset_src_finalize (GObject * object)
{
  GstSimclrDatasetSrc *self = GST_SIMCLR_DATASET_SRC (object);

  gst_simclr_dataset_src_reset (self);
  g_free (self->location);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_simclr_dataset_src_class_init (GstSimclrDatasetSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS (klass);
  GstPushSrcClass *pushsrc_class = GST_PUSH_SRC_CLASS (klass);
  const GParamFlags rw_ready = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  GST_DEBUG_CATEGORY_INIT (gst_simclr_dataset_src_debug, "simclrdatasetsrc",
      0, "SimCLR data-set source");

  gobject_class->set_property = gst_simclr_dataset_src_set_property;
  gobject_class->get_property = gst_simclr_dataset_src_get_property;
  gobject_class->finalize = gst_simclr_dataset_src_finalize;

  /**
   * GstSimclrDatasetSrc:location:
   *
   * The data set: a folder (IDX: {train,t10k}-images-idx3-ubyte[.gz] and the
   * labels files; CIFAR-10: data_batch_{1..5}.bin / test_batch.bin;
   * CIFAR-100: train.bin / test.bin; JPEG: one sub-folder per class,
   * optionally under train/ and test/), or for IDX the images file itself.
   */
  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "Folder of the data set (or an IDX images file)", DEFAULT_LOCATION,
          rw_ready));
  /**
   * GstSimclrDatasetSrc:format:
   *
   * Layout of the files; auto guesses from the names found at the location.
   */
  g_object_class_install_property (gobject_class, PROP_FORMAT,
      g_param_spec_enum ("format", "Format",
          "Layout of the data set files (auto: guess from the file names)",
          GST_TYPE_SIMCLR_DATASET_FORMAT, DEFAULT_FORMAT, rw_ready));
  /**
   * GstSimclrDatasetSrc:split:
   *
   * Training or test part (IDX t10k-* files; CIFAR test_batch.bin / test.bin;
   * JPEG test/ folder).
   */
  g_object_class_install_property (gobject_class, PROP_SPLIT,
      g_param_spec_enum ("split", "Split", "Training or test part of the set",
          GST_TYPE_SIMCLR_DATASET_SPLIT, DEFAULT_SPLIT, rw_ready));
  /**
   * GstSimclrDatasetSrc:shuffle:
   *
   * Visit the samples in a random order, a new one each epoch, a pure
   * function of (seed, epoch).
   */
  g_object_class_install_property (gobject_class, PROP_SHUFFLE,
      g_param_spec_boolean ("shuffle", "Shuffle",
          "Random sample order, new each epoch, reproducible from the seed "
          "(false: stored order)", DEFAULT_SHUFFLE, rw_ready));
  /**
   * GstSimclrDatasetSrc:seed:
   *
   * Seed of the shuffled order; data-parallel shards must share it.
   */
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Seed of the shuffled order (same on every shard)", 0, G_MAXUINT64,
          DEFAULT_SEED, rw_ready));
  /**
   * GstSimclrDatasetSrc:epochs:
   *
   * Passes over the data set before EOS; 0 plays forever.
   */
  g_object_class_install_property (gobject_class, PROP_EPOCHS,
      g_param_spec_uint ("epochs", "Epochs",
          "Passes over the data set before EOS (0 = forever)", 0, G_MAXUINT,
          DEFAULT_EPOCHS, rw_ready));
  /**
   * GstSimclrDatasetSrc:num-samples:
   *
   * Samples per epoch: the first ones of the epoch's (shard) order; 0 plays
   * the whole shard.
   */
  g_object_class_install_property (gobject_class, PROP_NUM_SAMPLES,
      g_param_spec_uint64 ("num-samples", "Samples per epoch",
          "Samples drawn per epoch, from the start of the epoch's order "
          "(0 = all of the shard)", 0, G_MAXINT64, DEFAULT_NUM_SAMPLES,
          rw_ready));
  /**
   * GstSimclrDatasetSrc:shard-index:
   *
   * Which of the shard-count disjoint parts of each epoch this element plays.
   * Under mpirun with several ranks the default is the MPI rank (unless set).
   */
  g_object_class_install_property (gobject_class, PROP_SHARD_INDEX,
      g_param_spec_uint ("shard-index", "Shard index",
          "Part of each epoch played, 0 .. shard-count - 1 (e.g. the MPI rank)",
          0, G_MAXINT - 1, DEFAULT_SHARD_INDEX, rw_ready));
  /**
   * GstSimclrDatasetSrc:shard-count:
   *
   * Number of disjoint equal parts each epoch is split into; n % shard-count
   * samples are left out of each epoch. Under mpirun with several ranks the
   * default is the number of ranks (unless set).
   */
  g_object_class_install_property (gobject_class, PROP_SHARD_COUNT,
      g_param_spec_uint ("shard-count", "Shard count",
          "Disjoint equal parts of each epoch (1 = no sharding)", 1, G_MAXINT,
          DEFAULT_SHARD_COUNT, rw_ready));
  /**
   * GstSimclrDatasetSrc:target-width:
   *
   * JPEG folders: resize every image to target-width x target-height pixels
   * (antialiased bilinear); 0 (with target-height 0) keeps native sizes. A
   * target more than 16 times the largest image per side (in area) is
   * refused when the element starts.
   */
  g_object_class_install_property (gobject_class, PROP_TARGET_WIDTH,
      g_param_spec_int ("target-width", "Target width",
          "JPEG folders: width in pixels every image is resized to "
          "(0 = native size; set target-height too)", 0, MAX_TARGET_SIDE,
          DEFAULT_TARGET_WIDTH, rw_ready));
  /**
   * GstSimclrDatasetSrc:target-height:
   *
   * See #GstSimclrDatasetSrc:target-width.
   */
  g_object_class_install_property (gobject_class, PROP_TARGET_HEIGHT,
      g_param_spec_int ("target-height", "Target height",
          "JPEG folders: height in pixels every image is resized to "
          "(0 = native size; set target-width too)", 0, MAX_TARGET_SIDE,
          DEFAULT_TARGET_HEIGHT, rw_ready));

  /**
   * GstSimclrDatasetSrc:start-position:
   *
   * Samples of the run to skip at start, counted over epochs (epoch =
   * start-position / samples per epoch): resuming a training run after
   * step x batch-size samples continues with the very samples, epoch, offsets
   * and timestamps an uninterrupted run would have had next. Skipped
   * samples are not read.
   */
  g_object_class_install_property (gobject_class, PROP_START_POSITION,
      g_param_spec_uint64 ("start-position", "Start position",
          "Samples of the run skipped at start, counted over epochs "
          "(for resuming; 0 = from the beginning)", 0, G_MAXINT64,
          DEFAULT_START_POSITION, rw_ready));

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "SimCLR data-set source", "Source/Video",
      "Plays the images of an IDX, CIFAR or JPEG-folder data set as video "
      "frames with sample id, label and epoch", "gst-simclr");

  basesrc_class->get_caps = GST_DEBUG_FUNCPTR (gst_simclr_dataset_src_get_caps);
  basesrc_class->set_caps = GST_DEBUG_FUNCPTR (gst_simclr_dataset_src_set_caps);
  basesrc_class->negotiate =
      GST_DEBUG_FUNCPTR (gst_simclr_dataset_src_negotiate);
  basesrc_class->start = GST_DEBUG_FUNCPTR (gst_simclr_dataset_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR (gst_simclr_dataset_src_stop);
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_simclr_dataset_src_change_state);
  pushsrc_class->create = GST_DEBUG_FUNCPTR (gst_simclr_dataset_src_create);

  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_DATASET_FORMAT, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_SIMCLR_DATASET_SPLIT, 0);
}

static void
gst_simclr_dataset_src_init (GstSimclrDatasetSrc * self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  self->format = DEFAULT_FORMAT;
  self->split = DEFAULT_SPLIT;
  self->shuffle = DEFAULT_SHUFFLE;
  self->seed = DEFAULT_SEED;
  self->epochs = DEFAULT_EPOCHS;
  self->num_samples = DEFAULT_NUM_SAMPLES;
  self->shard_index = DEFAULT_SHARD_INDEX;
  self->shard_count = DEFAULT_SHARD_COUNT;
  self->target_width = DEFAULT_TARGET_WIDTH;
  self->target_height = DEFAULT_TARGET_HEIGHT;
  self->start_position = DEFAULT_START_POSITION;
  gst_video_info_init (&self->info);

  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
  gst_base_src_set_live (GST_BASE_SRC (self), FALSE);
}
