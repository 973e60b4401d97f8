/* test-simclrencoder.c: GstHarness tests of the simclrencoder element.
 *
 * References are independent of the element: a SimclrTrainer (or a model
 * loaded with simclr_checkpoint_load_model) driven directly by the test on
 * pixels the test rebuilds from a formula of (sample, epoch, view), in the
 * row order the element's embedding meta announces. So a wrong pairing, a
 * wrong row order, a stride bug or a step taken with the wrong gradient all
 * show up as mismatching floats (the first one is printed with both values).
 * Models are tiny (ResNet-18 x 0.25, 16x16 GRAY8, N = 4) and run with one
 * OpenBLAS thread, so element and reference compute the same floats.
 */
#include <math.h>
#include <string.h>
#include <glib/gstdio.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "simclr/checkpoint.h"
#include "simclr/model.h"
#include "simclr/trainer.h"
#include "gstsimclr.h"
#include "gstsimclrencoder.h"

#define SIZE 16
#define N 4
#define DIM 8
#define SEED 7
#define CAPS "video/x-raw,format=GRAY8,width=16,height=16,framerate=0/1"
#define TOL 1e-5

/* Training settings of the element, mirrored by ref_config (). */
#define TRAIN_SETTINGS "width=0.25 batch-size=4 proj-dim=8 seed=7 " \
  "warmup-steps=2 total-steps=10 threads=1"

/* ------------------------------------------------------------------------ */
/* Helpers */

/* The meta functions are hidden in the plugin: use the registered names. */
static GstSimclrEmbeddingMeta *
get_embedding_meta (GstBuffer * buf)
{
  GType t = g_type_from_name ("GstSimclrEmbeddingMetaAPI");
  fail_unless (t != 0, "GstSimclrEmbeddingMetaAPI not registered");
  return (GstSimclrEmbeddingMeta *) gst_buffer_get_meta (buf, t);
}

static void
add_frame_meta (GstBuffer * buf, guint64 sample_id, gint view, gint label,
    guint64 epoch)
{
  const GstMetaInfo *info = gst_meta_get_info ("GstSimclrFrameMeta");
  GstSimclrFrameMeta *m;

  fail_unless (info != NULL, "GstSimclrFrameMeta not registered");
  m = (GstSimclrFrameMeta *) gst_buffer_add_meta (buf, info, NULL);
  m->sample_id = sample_id;
  m->view = view;
  m->label = label;
  m->epoch = epoch;
}

/* The pixels of view @view of @sample in @epoch: a hash, so every view
 * differs. */
static guint8
pixel (guint64 sample, guint64 epoch, gint view, gint i)
{
  guint32 h = (guint32) (sample * 2654435761u) ^ (guint32) (epoch * 40503u) ^
      (guint32) (view * 2246822519u) ^ (guint32) (i * 3266489917u);
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  return (guint8) (h >> 8);
}

static void
fill_view (guint8 * dst, guint64 sample, guint64 epoch, gint view)
{
  gint i;
  for (i = 0; i < SIZE * SIZE; i++)
    dst[i] = pixel (sample, epoch, view, i);
}

/* A GRAY8 16x16 frame with a stride of 20 (padding filled with 0xEE, which
 * must never reach the model). */
static GstBuffer *
make_view (guint64 sample, guint64 epoch, gint view, GstClockTime pts)
{
  const gint stride = 20;
  GstBuffer *buf = gst_buffer_new_allocate (NULL, stride * SIZE, NULL);
  gsize offset[GST_VIDEO_MAX_PLANES] = { 0 };
  gint strides[GST_VIDEO_MAX_PLANES] = { stride };
  GstMapInfo map;
  gint y, x;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  memset (map.data, 0xEE, map.size);
  for (y = 0; y < SIZE; y++)
    for (x = 0; x < SIZE; x++)
      map.data[y * stride + x] = pixel (sample, epoch, view, y * SIZE + x);
  gst_buffer_unmap (buf, &map);
  gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
      GST_VIDEO_FORMAT_GRAY8, SIZE, SIZE, 1, offset, strides);
  if (view >= 0)
    add_frame_meta (buf, sample, view, (gint) (sample % 10), epoch);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_MSECOND;
  return buf;
}

/* A pool of at most @max GRAY8 16x16 buffers (v4l2src-like). */
static GstBufferPool *
bounded_pool (guint max)
{
  GstBufferPool *pool = gst_video_buffer_pool_new ();
  GstCaps *caps = gst_caps_from_string (CAPS);
  GstStructure *config = gst_buffer_pool_get_config (pool);
  GstVideoInfo info;

  fail_unless (gst_video_info_from_caps (&info, caps));
  gst_buffer_pool_config_set_params (config, caps, GST_VIDEO_INFO_SIZE (&info),
      0, max);
  gst_buffer_pool_config_add_option (config,
      GST_BUFFER_POOL_OPTION_VIDEO_META);
  fail_unless (gst_buffer_pool_set_config (pool, config));
  fail_unless (gst_buffer_pool_set_active (pool, TRUE));
  gst_caps_unref (caps);
  return pool;
}

/* make_view's frame in a buffer of @pool. The acquire never waits: if the
 * element kept the pool's buffers, the test fails instead of hanging. */
static GstBuffer *
pool_view (GstBufferPool * pool, guint64 sample, guint64 epoch, gint view,
    GstClockTime pts)
{
  GstBufferPoolAcquireParams params = { 0 };
  GstBuffer *buf = NULL;
  GstCaps *caps = gst_caps_from_string (CAPS);
  GstVideoInfo info;
  GstVideoFrame frame;
  gint y, x;

  params.flags = GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT;
  fail_unless_equals_int (gst_buffer_pool_acquire_buffer (pool, &buf,
          &params), GST_FLOW_OK);
  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless (gst_video_frame_map (&frame, &info, buf, GST_MAP_WRITE));
  for (y = 0; y < SIZE; y++)
    for (x = 0; x < SIZE; x++)
      ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0))[y *
          GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0) + x] =
          pixel (sample, epoch, view, y * SIZE + x);
  gst_video_frame_unmap (&frame);
  gst_caps_unref (caps);
  if (view >= 0)
    add_frame_meta (buf, sample, view, (gint) (sample % 10), epoch);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_MSECOND;
  return buf;
}

static GstElement *
new_element (const gchar * settings)
{
  GstElement *e = gst_element_factory_make ("simclrencoder", NULL);
  gchar **kv, **p;

  fail_unless (e != NULL, "simclrencoder not found");
  kv = g_strsplit (settings, " ", -1);
  for (p = kv; *p; p++) {
    gchar **pair;
    if (**p == '\0')
      continue;
    pair = g_strsplit (*p, "=", 2);
    gst_util_set_object_arg (G_OBJECT (e), pair[0], pair[1]);
    g_strfreev (pair);
  }
  g_strfreev (kv);
  return e;
}

static GstHarness *
new_harness (const gchar * settings, GstBus ** bus)
{
  GstElement *e = new_element (settings);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  if (bus) {
    *bus = gst_bus_new ();
    gst_element_set_bus (h->element, *bus);
  }
  return h;
}

static void
teardown (GstHarness * h, GstBus * bus)
{
  if (bus) {
    gst_element_set_bus (h->element, NULL);
    gst_object_unref (bus);
  }
  gst_harness_teardown (h);
}

static void
ref_config (SimclrTrainerConfig * cfg)
{
  simclr_trainer_config_default (cfg);
  cfg->model.arch = SIMCLR_ARCH_RESNET18;
  cfg->model.width = 0.25;
  cfg->model.in_channels = 1;
  cfg->model.stem = SIMCLR_STEM_CIFAR;
  cfg->model.image_size = SIZE;
  cfg->model.max_batch = 2 * N;
  cfg->model.proj_layers = 2;
  cfg->model.proj_hidden = 0;
  cfg->model.proj_dim = DIM;
  cfg->model.threads = 1;
  cfg->optim.kind = SIMCLR_OPTIM_LARS;
  cfg->optim.base_lr = 0.3;     /* the element's defaults (the recipe) */
  cfg->optim.lr_scaling = SIMCLR_LR_SCALING_SQRT;
  cfg->optim.batch_size = N;
  cfg->optim.momentum = 0.9;
  cfg->optim.weight_decay = 1e-6;
  cfg->optim.warmup_steps = 2;
  cfg->optim.total_steps = 10;
  cfg->seed = SEED;
}

static SimclrTrainer *
ref_trainer (void)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  SimclrTrainer *t;

  ref_config (&cfg);
  t = simclr_trainer_new (&cfg, &err);
  fail_unless (t != NULL, "reference trainer: %s", err.message);
  return t;
}

/* The batch the element announces in @meta, rebuilt from the formula. */
static guint8 *
views_of_meta (const GstSimclrEmbeddingMeta * meta, guint64 epoch)
{
  guint8 *views = g_malloc ((gsize) meta->rows * SIZE * SIZE);
  guint r;
  for (r = 0; r < meta->rows; r++)
    fill_view (views + (gsize) r * SIZE * SIZE, meta->row[r].sample_id, epoch,
        meta->row[r].view);
  return views;
}

static void
assert_close (const gchar * what, const gfloat * got, const gfloat * want,
    gsize n)
{
  gsize i;
  for (i = 0; i < n; i++) {
    if (!(fabs (got[i] - want[i]) <= TOL * (1.0 + fabs (want[i])))) {
      ck_abort_msg ("%s: first mismatch at %" G_GSIZE_FORMAT ": element %.9g, "
          "reference %.9g", what, i, got[i], want[i]);
    }
  }
}

/* The gradient the test sends for a step: deterministic, small. */
static gfloat *
test_gradient (guint64 step)
{
  gfloat *dz = g_new (gfloat, 2 * N * DIM);
  gint i;
  for (i = 0; i < 2 * N * DIM; i++)
    dz[i] = 0.05f * (gfloat) sin (0.7 * i + (gdouble) step);
  return dz;
}

static GstEvent *
gradient_event (guint64 step, const gfloat * dz, gint rows)
{
  GstBuffer *b = gst_buffer_new_memdup (dz, (gsize) rows * DIM * sizeof (gfloat));
  GstEvent *ev = gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM,
      gst_structure_new (SIMCLR_GRADIENT_EVENT,
          "step", G_TYPE_UINT64, step,
          "rows", G_TYPE_INT, rows,
          "dimension", G_TYPE_INT, DIM,
          "loss", G_TYPE_DOUBLE, 1.0,
          "gradient", GST_TYPE_BUFFER, b, NULL));
  gst_buffer_unref (b);
  return ev;
}

/* Pushes buffers from a thread of its own: the element blocks in the push
 * that completes a batch until the test (playing the sink) sends the
 * gradient, as with a queue between encoder and sink. */
typedef struct
{
  GstHarness *h;
  GPtrArray *bufs;
  GstFlowReturn ret;
} PushJob;

static gpointer
push_thread (gpointer data)
{
  PushJob *job = data;
  guint i;
  job->ret = GST_FLOW_OK;
  for (i = 0; i < job->bufs->len; i++) {
    GstBuffer *b = g_ptr_array_index (job->bufs, i);
    g_ptr_array_index (job->bufs, i) = NULL;
    job->ret = gst_harness_push (job->h, b);
    if (job->ret != GST_FLOW_OK)
      break;
  }
  return NULL;
}

static GThread *
push_async (PushJob * job, GstHarness * h, GPtrArray * bufs)
{
  job->h = h;
  job->bufs = bufs;
  return g_thread_new ("pusher", push_thread, job);
}

static void
push_job_finish (GThread * th, PushJob * job)
{
  guint i;
  g_thread_join (th);
  for (i = 0; i < job->bufs->len; i++)
    if (g_ptr_array_index (job->bufs, i))
      gst_buffer_unref (g_ptr_array_index (job->bufs, i));
  g_ptr_array_unref (job->bufs);
}

/* The views of samples @first .. @first+@count-1 of @epoch, in an order where
 * views of different samples interleave and view 1 often comes first. */
static GPtrArray *
shuffled_views (guint64 first, gint count, guint64 epoch)
{
  GPtrArray *a = g_ptr_array_new ();
  gint i;
  /* view 1 of the even samples, then view 0 of all, then view 1 of the odd
   * ones in reverse */
  for (i = 0; i < count; i += 2)
    g_ptr_array_add (a, make_view (first + i, epoch, 1, (first + i) * 10 + 1));
  for (i = 0; i < count; i++)
    g_ptr_array_add (a, make_view (first + i, epoch, 0, (first + i) * 10));
  for (i = count - 1; i >= 0; i--)
    if (i % 2 == 1)
      g_ptr_array_add (a, make_view (first + i, epoch, 1,
              (first + i) * 10 + 1));
  return a;
}

static GstMessage *
pop_message (GstBus * bus, GstMessageType type)
{
  return gst_bus_pop_filtered (bus, type);
}

static void
assert_error_names (GstBus * bus, const gchar * needle)
{
  GstMessage *msg = pop_message (bus, GST_MESSAGE_ERROR);
  GError *gerr = NULL;
  gchar *dbg = NULL;

  fail_unless (msg != NULL, "no error message (wanted one naming %s)", needle);
  gst_message_parse_error (msg, &gerr, &dbg);
  fail_unless (strstr (gerr->message, needle) != NULL,
      "error \"%s\" does not name \"%s\"", gerr->message, needle);
  g_error_free (gerr);
  g_free (dbg);
  gst_message_unref (msg);
}

/* Checks the buffer of a step, compares its rows with @ref's forward on the
 * same views, and returns the meta's first sample ids. */
static void
check_step_buffer (GstBuffer * out, guint64 step, guint64 epoch,
    SimclrTrainer * ref)
{
  GstSimclrEmbeddingMeta *meta = get_embedding_meta (out);
  SimclrError err = { 0 };
  gfloat zref[2 * N * DIM];
  GstMapInfo map;
  guint8 *views;
  gint i;

  fail_unless (meta != NULL, "no embedding meta");
  fail_unless_equals_int (meta->rows, 2 * N);
  fail_unless_equals_uint64 (meta->step, step);
  fail_unless_equals_uint64 (GST_BUFFER_OFFSET (out), step);
  fail_unless_equals_int ((gint) gst_buffer_get_size (out),
      2 * N * DIM * (gint) sizeof (gfloat));
  for (i = 0; i < N; i++) {
    fail_unless_equals_uint64 (meta->row[i].sample_id,
        meta->row[i + N].sample_id);
    fail_unless_equals_int (meta->row[i].view, 0);
    fail_unless_equals_int (meta->row[i + N].view, 1);
    fail_unless_equals_int (meta->row[i].label,
        (gint) (meta->row[i].sample_id % 10));
    fail_unless_equals_uint64 (meta->row[i].pts,
        meta->row[i].sample_id * 10);
    fail_unless_equals_uint64 (meta->row[i + N].pts,
        meta->row[i].sample_id * 10 + 1);
  }
  fail_unless (meta->epoch == (gdouble) epoch);
  fail_unless (fabs (meta->lr - simclr_trainer_get_lr (ref)) < 1e-12,
      "lr %g, reference %g", meta->lr, simclr_trainer_get_lr (ref));

  views = views_of_meta (meta, epoch);
  fail_unless (simclr_trainer_forward_u8 (ref, views, 2 * N, zref, &err)
      == SIMCLR_OK, "%s", err.message);
  g_free (views);
  gst_buffer_map (out, &map, GST_MAP_READ);
  assert_close ("embeddings", (const gfloat *) map.data, zref, 2 * N * DIM);
  gst_buffer_unmap (out, &map);
}

static void
check_output_caps (GstHarness * h, gint dim)
{
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstStructure *s;
  gint d = 0;
  fail_unless (caps != NULL);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_has_name (s, SIMCLR_EMBEDDING_MEDIA_TYPE));
  fail_unless (gst_structure_get_int (s, "dimension", &d));
  fail_unless_equals_int (d, dim);
  gst_caps_unref (caps);
}

static guint64
get_step (GstHarness * h)
{
  guint64 step = 0;
  g_object_get (h->element, "step", &step, NULL);
  return step;
}

/* ------------------------------------------------------------------------ */
/* Train mode */

/* Shuffled views pair by meta; embeddings and the step taken with the
 * test's gradient match an independent trainer, twice in a row (so the
 * second batch shows the weights after the element's step). */
/* With stop-at-end (the default) the push that completes the last step of
 * the schedule returns EOS, so upstream stops; with stop-at-end=false it
 * keeps training (learning rate 0). */
static void
run_two_steps (gboolean stop_at_end)
{
  GstHarness *h = new_harness (stop_at_end
      ? "width=0.25 batch-size=4 proj-dim=8 seed=7 warmup-steps=0 "
      "total-steps=2 threads=1"
      : "width=0.25 batch-size=4 proj-dim=8 seed=7 warmup-steps=0 "
      "total-steps=2 threads=1 stop-at-end=false", NULL);
  PushJob job;
  GThread *th;
  GstBuffer *out;
  gfloat *dz;

  gst_harness_set_src_caps_str (h, CAPS);
  for (guint64 step = 0; step < 2; step++) {
    th = push_async (&job, h, shuffled_views (step * N, N, 0));
    out = gst_harness_pull (h);
    fail_unless (out != NULL);
    gst_buffer_unref (out);
    dz = test_gradient (step);
    fail_unless (gst_harness_push_upstream_event (h, gradient_event (step, dz,
                2 * N)));
    g_free (dz);
    push_job_finish (th, &job);
    /* The push that completed step 1 (the last of total-steps 2) is the one
     * that learns the schedule is over. */
    if (step == 1 && stop_at_end) {
      fail_unless_equals_int (job.ret, GST_FLOW_EOS);
    } else {
      fail_unless_equals_int (job.ret, GST_FLOW_OK);
    }
  }
  fail_unless_equals_uint64 (get_step (h), 2);
  teardown (h, NULL);
}

GST_START_TEST (test_stop_at_end)
{
  run_two_steps (TRUE);
  run_two_steps (FALSE);
}

GST_END_TEST;

GST_START_TEST (test_train_pairing_and_gradient)
{
  GstHarness *h = new_harness (TRAIN_SETTINGS, NULL);
  SimclrTrainer *ref = ref_trainer ();
  SimclrError err = { 0 };
  PushJob job;
  GThread *th;
  GPtrArray *bufs;
  GstBuffer *out;
  gfloat *dz;
  guint64 step;
  gdouble lr;
  size_t np;
  gfloat *before;

  gst_harness_set_src_caps_str (h, CAPS);

  for (step = 0; step < 2; step++) {
    /* one stray view of another epoch (never completed) in the mix */
    bufs = shuffled_views (step * N, N, 3);
    g_ptr_array_insert (bufs, 2, make_view (step * N, 4, 0, 999));
    th = push_async (&job, h, bufs);

    out = gst_harness_pull (h);
    fail_unless (out != NULL, "no output for step %" G_GUINT64_FORMAT, step);
    check_output_caps (h, DIM);
    check_step_buffer (out, step, 3, ref);
    gst_buffer_unref (out);

    /* a gradient for another step is ignored */
    dz = test_gradient (step);
    fail_if (gst_harness_push_upstream_event (h, gradient_event (step + 5, dz,
                2 * N)));
    fail_unless (gst_harness_push_upstream_event (h, gradient_event (step,
                dz, 2 * N)));
    push_job_finish (th, &job);
    fail_unless_equals_int (job.ret, GST_FLOW_OK);

    before = simclr_model_params (simclr_trainer_get_model (ref), &np);
    before = g_memdup2 (before, np * sizeof (gfloat));
    fail_unless (simclr_trainer_backward_and_step (ref, dz, &err) ==
        SIMCLR_OK, "%s", err.message);
    fail_unless (memcmp (before, simclr_model_params (simclr_trainer_get_model
                (ref), NULL), np * sizeof (gfloat)) != 0,
        "reference weights did not change");
    g_free (before);
    g_free (dz);

    fail_unless_equals_uint64 (get_step (h), step + 1);
    g_object_get (h->element, "lr", &lr, NULL);
    fail_unless (fabs (lr - simclr_trainer_get_lr (ref)) < 1e-12);
  }

  simclr_trainer_free (ref);
  teardown (h, NULL);
}

GST_END_TEST;

/* Without a queue, the sink answers inside gst_pad_push: a probe on the
 * harness's sink pad sends the gradient from the pushing thread itself. */
static GstPadProbeReturn
reentrant_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstSimclrEmbeddingMeta *meta = get_embedding_meta (buf);
  gfloat *dz = test_gradient (meta->step);
  gboolean *sent = user;
  *sent = gst_pad_push_event (pad, gradient_event (meta->step, dz, 2 * N));
  g_free (dz);
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_train_reentrant_gradient)
{
  GstHarness *h = new_harness (TRAIN_SETTINGS, NULL);
  SimclrTrainer *ref = ref_trainer ();
  SimclrError err = { 0 };
  gboolean sent = FALSE;
  GPtrArray *bufs;
  GstBuffer *out;
  gfloat *dz;
  guint i;

  gst_harness_set_src_caps_str (h, CAPS);
  gst_pad_add_probe (h->sinkpad, GST_PAD_PROBE_TYPE_BUFFER, reentrant_probe,
      &sent, NULL);
  for (i = 0; i < 2; i++) {
    bufs = shuffled_views (i * N, N, 0);
    for (guint j = 0; j < bufs->len; j++)
      fail_unless_equals_int (gst_harness_push (h, g_ptr_array_index (bufs, j)),
          GST_FLOW_OK);
    g_ptr_array_unref (bufs);
    fail_unless (sent);
    sent = FALSE;
    out = gst_harness_pull (h);
    check_step_buffer (out, i, 0, ref);
    gst_buffer_unref (out);
    dz = test_gradient (i);
    fail_unless (simclr_trainer_backward_and_step (ref, dz, &err) ==
        SIMCLR_OK, "%s", err.message);
    g_free (dz);
    fail_unless_equals_uint64 (get_step (h), i + 1);
  }
  simclr_trainer_free (ref);
  teardown (h, NULL);
}

GST_END_TEST;

/* Views from a bounded pool (2 buffers for batches of 8 views) are copied,
 * not held, so the pool never runs dry; the steps are the reference's. */
GST_START_TEST (test_train_bounded_pool)
{
  GstHarness *h = new_harness (TRAIN_SETTINGS, NULL);
  GstBufferPool *pool = bounded_pool (2);
  SimclrTrainer *ref = ref_trainer ();
  SimclrError err = { 0 };
  gboolean sent = FALSE;
  GstBuffer *out;
  gfloat *dz;
  guint i;
  gint j, v;

  gst_harness_set_src_caps_str (h, CAPS);
  gst_pad_add_probe (h->sinkpad, GST_PAD_PROBE_TYPE_BUFFER, reentrant_probe,
      &sent, NULL);
  for (i = 0; i < 2; i++) {
    for (j = 0; j < N; j++)
      for (v = 1; v >= 0; v--)
        fail_unless_equals_int (gst_harness_push (h, pool_view (pool,
                    i * N + j, 0, v, (i * N + j) * 10 + v)), GST_FLOW_OK);
    fail_unless (sent);
    sent = FALSE;
    out = gst_harness_pull (h);
    check_step_buffer (out, i, 0, ref);
    gst_buffer_unref (out);
    dz = test_gradient (i);
    fail_unless (simclr_trainer_backward_and_step (ref, dz, &err) ==
        SIMCLR_OK, "%s", err.message);
    g_free (dz);
  }
  simclr_trainer_free (ref);
  teardown (h, NULL);
  gst_buffer_pool_set_active (pool, FALSE);
  gst_object_unref (pool);
}

GST_END_TEST;

/* A state change to READY while the element waits for a gradient ends the
 * wait (the push returns FLUSHING) and takes no step. */
GST_START_TEST (test_train_shutdown_wakes_wait)
{
  GstHarness *h = new_harness (TRAIN_SETTINGS, NULL);
  PushJob job;
  GThread *th;
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, CAPS);
  th = push_async (&job, h, shuffled_views (0, N, 0));
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  gst_buffer_unref (out);
  g_usleep (50 * 1000);
  fail_unless_equals_int (gst_element_set_state (h->element, GST_STATE_READY),
      GST_STATE_CHANGE_SUCCESS);
  push_job_finish (th, &job);
  fail_unless_equals_int (job.ret, GST_FLOW_FLUSHING);
  teardown (h, NULL);
}

GST_END_TEST;

/* A flush-start while waiting ends the wait too. */
GST_START_TEST (test_train_flush_wakes_wait)
{
  GstHarness *h = new_harness (TRAIN_SETTINGS, NULL);
  PushJob job;
  GThread *th;
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, CAPS);
  th = push_async (&job, h, shuffled_views (0, N, 0));
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  gst_buffer_unref (out);
  g_usleep (50 * 1000);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  push_job_finish (th, &job);
  fail_unless_equals_int (job.ret, GST_FLOW_FLUSHING);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  fail_unless_equals_uint64 (get_step (h), 0);
  teardown (h, NULL);
}

GST_END_TEST;

static guint64
checkpoint_message_step (GstBus * bus, const gchar * path)
{
  GstMessage *msg;
  const GstStructure *s;
  guint64 step = G_MAXUINT64;

  while ((msg = pop_message (bus, GST_MESSAGE_ELEMENT))) {
    s = gst_message_get_structure (msg);
    if (gst_structure_has_name (s, SIMCLR_CHECKPOINT_MESSAGE)) {
      guint64 seen = 0;
      fail_unless (gst_structure_get_uint64 (s, "step", &step));
      fail_unless (gst_structure_get_uint64 (s, "samples-seen", &seen));
      fail_unless_equals_uint64 (seen, step * N);
      fail_unless_equals_string (gst_structure_get_string (s, "location"),
          path);
      gst_message_unref (msg);
      break;
    }
    gst_message_unref (msg);
  }
  return step;
}

/* Runs one training step through @h with the test's gradient. */
static void
run_step (GstHarness * h, guint64 first_sample, guint64 step)
{
  PushJob job;
  GThread *th = push_async (&job, h, shuffled_views (first_sample, N, 0));
  GstBuffer *out = gst_harness_pull (h);
  gfloat *dz = test_gradient (step);

  fail_unless (out != NULL);
  gst_buffer_unref (out);
  fail_unless (gst_harness_push_upstream_event (h, gradient_event (step, dz,
              2 * N)));
  g_free (dz);
  push_job_finish (th, &job);
  fail_unless_equals_int (job.ret, GST_FLOW_OK);
}

/* checkpoint-interval=2: a file at step 2 (not at step 1), with a message;
 * EOS mid-batch drops the partial batch, writes the final checkpoint (step
 * 3) and forwards EOS. The file resumes to the same step and weights as the
 * reference trainer after the same three steps. */
GST_START_TEST (test_train_checkpoints_and_eos)
{
  gchar *dir = g_dir_make_tmp ("simclrencoder-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "ck.safetensors", NULL);
  gchar *settings = g_strdup_printf (TRAIN_SETTINGS " checkpoint-interval=2 "
      "checkpoint-location=%s", path);
  GstBus *bus;
  GstHarness *h = new_harness (settings, &bus);
  SimclrTrainer *ref = ref_trainer (), *loaded, *init;
  SimclrError err = { 0 };
  GstEvent *ev;
  gboolean got_eos = FALSE;
  guint64 s;
  size_t np, np2;

  gst_harness_set_src_caps_str (h, CAPS);
  run_step (h, 0, 0);
  fail_if (g_file_test (path, G_FILE_TEST_EXISTS), "checkpoint after step 1");
  run_step (h, N, 1);
  fail_unless (g_file_test (path, G_FILE_TEST_EXISTS), "no checkpoint at 2");
  fail_unless_equals_uint64 (checkpoint_message_step (bus, path), 2);
  run_step (h, 2 * N, 2);

  /* EOS mid-batch: 1 complete sample and 1 lone view */
  fail_unless_equals_int (gst_harness_push (h, make_view (100, 0, 0, 0)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, make_view (100, 0, 1, 0)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, make_view (101, 0, 1, 0)),
      GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  while ((ev = gst_harness_try_pull_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_EOS)
      got_eos = TRUE;
    gst_event_unref (ev);
  }
  fail_unless (got_eos, "EOS not forwarded");
  fail_unless_equals_uint64 (checkpoint_message_step (bus, path), 3);
  fail_unless_equals_uint64 (get_step (h), 3);

  /* reference: the same three steps */
  for (s = 0; s < 3; s++) {
    guint8 views[2 * N * SIZE * SIZE];
    gfloat *dz = test_gradient (s);
    GstSimclrEmbeddingMeta fake;
    GstSimclrEmbeddingRow rows[2 * N];
    guint8 *v;
    gint i;
    /* the element orders samples by pair completion; rebuild that order
     * from shuffled_views (): odd samples complete in reverse order after
     * the even ones completed in order */
    gint order[N], k = 0;
    for (i = 0; i < N; i += 2)
      order[k++] = i;
    for (i = N - 1; i >= 0; i--)
      if (i % 2 == 1)
        order[k++] = i;
    for (i = 0; i < N; i++) {
      rows[i].sample_id = rows[i + N].sample_id = s * N + order[i];
      rows[i].view = 0;
      rows[i + N].view = 1;
    }
    fake.rows = 2 * N;
    fake.row = rows;
    v = views_of_meta (&fake, 0);
    memcpy (views, v, sizeof views);
    g_free (v);
    fail_unless (simclr_trainer_forward_u8 (ref, views, 2 * N, NULL, &err)
        == SIMCLR_OK, "%s", err.message);
    fail_unless (simclr_trainer_backward_and_step (ref, dz, &err) ==
        SIMCLR_OK, "%s", err.message);
    g_free (dz);
  }
  loaded = simclr_trainer_load (path, 2 * N, &err);
  fail_unless (loaded != NULL, "%s", err.message);
  fail_unless_equals_int64 (simclr_trainer_get_step (loaded), 3);
  /* Early LARS steps move weights by ~1e-6 relative: compare the change
   * since initialisation, not the weights. */
  init = ref_trainer ();
  {
    const gfloat *w0 = simclr_model_params (simclr_trainer_get_model (init),
        &np);
    const gfloat *we = simclr_model_params (simclr_trainer_get_model (loaded),
        &np2);
    const gfloat *wr = simclr_model_params (simclr_trainer_get_model (ref),
        NULL);
    gdouble maxd = 0.0;
    gsize i;
    fail_unless_equals_uint64 (np, np2);
    for (i = 0; i < np; i++)
      maxd = MAX (maxd, fabs ((gdouble) wr[i] - w0[i]));
    fail_unless (maxd > 0.0, "reference weights did not move");
    for (i = 0; i < np; i++) {
      gdouble de = (gdouble) we[i] - w0[i], dr = (gdouble) wr[i] - w0[i];
      if (fabs (de - dr) > 1e-3 * maxd)
        ck_abort_msg ("checkpoint weight %" G_GSIZE_FORMAT " moved %.9g, "
            "reference %.9g", i, de, dr);
    }
  }
  simclr_trainer_free (init);

  simclr_trainer_free (loaded);
  simclr_trainer_free (ref);
  teardown (h, bus);
  g_unlink (path);
  g_rmdir (dir);
  g_free (settings);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

/* stem=stride2 reaches the model: after one step the checkpoint's
 * configuration says stride2, and its conv1 weight is a 3x3 kernel like the
 * cifar stem's (the model runs 16x16 frames at 8x8 after conv1). */
GST_START_TEST (test_train_stem_stride2)
{
  gchar *dir = g_dir_make_tmp ("simclrencoder-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "ck.safetensors", NULL);
  gchar *settings = g_strdup_printf (TRAIN_SETTINGS " stem=stride2 "
      "checkpoint-location=%s", path);
  GstBus *bus;
  GstHarness *h = new_harness (settings, &bus);
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  SimclrTrainer *loaded;
  gint stem = -1;

  g_object_get (h->element, "stem", &stem, NULL);
  fail_unless_equals_int (stem, GST_SIMCLR_ENCODER_STEM_STRIDE2);
  gst_harness_set_src_caps_str (h, CAPS);
  run_step (h, 0, 0);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_uint64 (checkpoint_message_step (bus, path), 1);
  fail_unless (simclr_checkpoint_read_config (path, &cfg, &err) == SIMCLR_OK,
      "%s", err.message);
  fail_unless_equals_string (simclr_stem_to_string (cfg.stem), "stride2");
  loaded = simclr_trainer_load (path, 2 * N, &err);
  fail_unless (loaded != NULL, "%s", err.message);
  {
    SimclrModel *m = simclr_trainer_get_model (loaded);
    const SimclrTensorInfo *t =
        simclr_model_tensor (m, simclr_model_find_tensor (m, "conv1.weight"));
    fail_unless_equals_int (t->ndim, 4);
    fail_unless_equals_int64 (t->shape[2], 3);
    fail_unless_equals_int64 (t->shape[3], 3);
    fail_unless_equals_int (simclr_model_get_config (m)->stem,
        SIMCLR_STEM_STRIDE2);
  }
  simclr_trainer_free (loaded);
  teardown (h, bus);
  g_unlink (path);
  g_rmdir (dir);
  g_free (settings);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

/* resume-from continues at the file's step: the next batch's embeddings
 * are the reference's after the same steps. */
GST_START_TEST (test_train_resume)
{
  gchar *dir = g_dir_make_tmp ("simclrencoder-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "resume.safetensors", NULL);
  gchar *settings;
  SimclrTrainer *ref = ref_trainer ();
  SimclrError err = { 0 };
  GstHarness *h;
  GstBuffer *out;
  PushJob job;
  GThread *th;
  guint8 views[2 * N * SIZE * SIZE];
  gfloat *dz = test_gradient (0);
  gint i;

  /* one step on the reference, saved */
  for (i = 0; i < 2 * N; i++)
    fill_view (views + i * SIZE * SIZE, i % N, 0, i / N);
  fail_unless (simclr_trainer_forward_u8 (ref, views, 2 * N, NULL, &err) ==
      SIMCLR_OK, "%s", err.message);
  fail_unless (simclr_trainer_backward_and_step (ref, dz, &err) == SIMCLR_OK);
  g_free (dz);
  fail_unless (simclr_trainer_save (ref, path, &err) == SIMCLR_OK, "%s",
      err.message);

  /* different model settings on the element: the file's win */
  settings = g_strdup_printf ("width=1 batch-size=2 proj-dim=16 resume-from=%s",
      path);
  h = new_harness (settings, NULL);
  fail_unless_equals_uint64 (get_step (h), 1);
  gst_harness_set_src_caps_str (h, CAPS);
  th = push_async (&job, h, shuffled_views (N, N, 0));
  out = gst_harness_pull (h);
  check_output_caps (h, DIM);
  check_step_buffer (out, 1, 0, ref);
  gst_buffer_unref (out);
  gst_element_set_state (h->element, GST_STATE_READY);
  push_job_finish (th, &job);

  simclr_trainer_free (ref);
  teardown (h, NULL);
  g_unlink (path);
  g_rmdir (dir);
  g_free (settings);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

/* Start errors: element alone (not in a harness, which requires the start
 * to succeed), messages read from its bus. */
static void
check_start_error (const gchar * settings, const gchar * needle)
{
  GstElement *e = new_element (settings);
  GstBus *bus = gst_bus_new ();

  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  assert_error_names (bus, needle);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
}

GST_START_TEST (test_bad_files_and_settings)
{
  gchar *dir = g_dir_make_tmp ("simclrencoder-XXXXXX", NULL);
  gchar *missing = g_build_filename (dir, "missing.safetensors", NULL);
  gchar *bad = g_build_filename (dir, "bad.safetensors", NULL);
  gchar *s;

  fail_unless (g_file_set_contents (bad, "not a safetensors file", -1, NULL));

  s = g_strdup_printf ("resume-from=%s", missing);
  check_start_error (s, missing);
  g_free (s);
  s = g_strdup_printf ("resume-from=%s", bad);
  check_start_error (s, bad);
  g_free (s);
  s = g_strdup_printf ("mode=embed checkpoint-location=%s", missing);
  check_start_error (s, missing);
  g_free (s);
  s = g_strdup_printf ("mode=embed checkpoint-location=%s", bad);
  check_start_error (s, bad);
  g_free (s);
  check_start_error ("mode=embed", "checkpoint-location");
  check_start_error ("proj-layers=1", "proj-layers");
  check_start_error ("warmup-steps=50 total-steps=50", "total-steps");

  g_unlink (bad);
  g_rmdir (dir);
  g_free (bad);
  g_free (missing);
  g_free (dir);
}

GST_END_TEST;

/* Non-square caps are refused with an error that says so; so are caps
 * that do not fit a resumed model. */
GST_START_TEST (test_caps_refused)
{
  GstBus *bus;
  GstHarness *h = new_harness (TRAIN_SETTINGS, &bus);
  GstCaps *caps = gst_caps_from_string
      ("video/x-raw,format=GRAY8,width=16,height=8,framerate=0/1");

  gst_harness_set_src_caps (h, caps);
  fail_unless_equals_int (gst_harness_push (h, make_view (0, 0, 0, 0)),
      GST_FLOW_NOT_NEGOTIATED);
  assert_error_names (bus, "square");
  teardown (h, bus);
}

GST_END_TEST;

/* A checkpoint that cannot be written is an error naming the file. */
GST_START_TEST (test_checkpoint_write_error)
{
  const gchar *path = "/nonexistent-simclr-dir/ck.safetensors";
  gchar *settings = g_strdup_printf (TRAIN_SETTINGS " checkpoint-interval=1 "
      "checkpoint-location=%s", path);
  GstBus *bus;
  GstHarness *h = new_harness (settings, &bus);
  PushJob job;
  GThread *th;
  GstBuffer *out;
  gfloat *dz = test_gradient (0);

  gst_harness_set_src_caps_str (h, CAPS);
  th = push_async (&job, h, shuffled_views (0, N, 0));
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  gst_buffer_unref (out);
  fail_unless (gst_harness_push_upstream_event (h, gradient_event (0, dz,
              2 * N)));
  push_job_finish (th, &job);
  fail_unless_equals_int (job.ret, GST_FLOW_ERROR);
  assert_error_names (bus, path);
  g_free (dz);
  g_free (settings);
  teardown (h, bus);
}

GST_END_TEST;

/* A gradient of the right step but the wrong shape is an error, and no
 * step is taken. */
GST_START_TEST (test_gradient_wrong_shape)
{
  GstBus *bus;
  GstHarness *h = new_harness (TRAIN_SETTINGS, &bus);
  PushJob job;
  GThread *th;
  GstBuffer *out;
  gfloat *dz = test_gradient (0);

  gst_harness_set_src_caps_str (h, CAPS);
  th = push_async (&job, h, shuffled_views (0, N, 0));
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  gst_buffer_unref (out);
  fail_unless (gst_harness_push_upstream_event (h, gradient_event (0, dz, N)));
  push_job_finish (th, &job);
  fail_unless_equals_int (job.ret, GST_FLOW_ERROR);
  assert_error_names (bus, "does not fit");
  fail_unless_equals_uint64 (get_step (h), 0);
  g_free (dz);
  teardown (h, bus);
}

GST_END_TEST;

/* Caps that do not fit a resumed model: an error naming the file. */
GST_START_TEST (test_resume_caps_mismatch)
{
  gchar *dir = g_dir_make_tmp ("simclrencoder-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "resume.safetensors", NULL);
  gchar *settings = g_strdup_printf ("resume-from=%s", path);
  SimclrTrainer *ref = ref_trainer ();
  SimclrError err = { 0 };
  GstBus *bus;
  GstHarness *h;

  fail_unless (simclr_trainer_save (ref, path, &err) == SIMCLR_OK, "%s",
      err.message);
  h = new_harness (settings, &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=GRAY8,width=8,height=8,framerate=0/1");
  fail_unless_equals_int (gst_harness_push (h, make_view (0, 0, 0, 0)),
      GST_FLOW_NOT_NEGOTIATED);
  assert_error_names (bus, path);

  simclr_trainer_free (ref);
  teardown (h, bus);
  g_unlink (path);
  g_rmdir (dir);
  g_free (settings);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* Embed mode */

/* Saves a model (after a few train forwards, so the running statistics are
 * not the initial ones and eval differs from train mode). */
static gchar *
make_embed_checkpoint (gchar * dir)
{
  gchar *path = g_build_filename (dir, "embed.safetensors", NULL);
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  SimclrModel *m;
  gfloat in[4 * SIZE * SIZE];
  gint i;

  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.in_channels = 1;
  cfg.image_size = SIZE;
  cfg.max_batch = 4;
  cfg.proj_dim = DIM;
  m = simclr_model_new (&cfg, 11, &err);
  fail_unless (m != NULL, "%s", err.message);
  for (i = 0; i < 4 * SIZE * SIZE; i++)
    in[i] = pixel (i / (SIZE * SIZE), 9, 0, i) / 255.0f;
  for (i = 0; i < 3; i++)
    fail_unless (simclr_model_forward (m, in, 4, 1, NULL, NULL, &err) ==
        SIMCLR_OK, "%s", err.message);
  fail_unless (simclr_checkpoint_save_model (m, path, &err) == SIMCLR_OK,
      "%s", err.message);
  simclr_model_free (m);
  return path;
}

static void
check_embed (const gchar * output, gboolean projection, GstBufferPool * pool)
{
  const gint frames = 5;
  gchar *dir = g_dir_make_tmp ("simclrencoder-XXXXXX", NULL);
  gchar *path = make_embed_checkpoint (dir);
  gchar *settings = g_strdup_printf ("mode=embed embed-batch=3 output=%s "
      "checkpoint-location=%s", output, path);
  GstHarness *h = new_harness (settings, NULL);
  SimclrError err = { 0 };
  SimclrModel *m = simclr_checkpoint_load_model (path, frames, &err);
  gfloat *in, *want;
  GstCaps *caps;
  gint dim, i, j;

  fail_unless (m != NULL, "%s", err.message);
  dim = projection ? simclr_model_output_dim (m) :
      simclr_model_feature_dim (m);
  in = g_new (gfloat, frames * SIZE * SIZE);
  want = g_new (gfloat, frames * dim);
  for (i = 0; i < frames; i++)
    for (j = 0; j < SIZE * SIZE; j++)
      in[i * SIZE * SIZE + j] = pixel (i, 0, -1, j) / 255.0f;
  fail_unless (simclr_model_forward (m, in, frames, 0, projection ? NULL :
          want, projection ? want : NULL, &err) == SIMCLR_OK, "%s",
      err.message);

  /* the sink pad advertises the model's input */
  caps = gst_pad_peer_query_caps (h->srcpad, NULL);
  {
    GstStructure *st = gst_caps_get_structure (caps, 0);
    gint w = 0, hh = 0;
    fail_unless_equals_int (gst_caps_get_size (caps), 1);
    fail_unless (gst_structure_get_int (st, "width", &w));
    fail_unless (gst_structure_get_int (st, "height", &hh));
    fail_unless_equals_int (w, SIZE);
    fail_unless_equals_int (hh, SIZE);
    fail_unless_equals_string (gst_structure_get_string (st, "format"),
        "GRAY8");
  }
  gst_caps_unref (caps);

  gst_harness_set_src_caps_str (h, CAPS);
  for (i = 0; i < frames; i++)
    fail_unless_equals_int (gst_harness_push (h, pool ? pool_view (pool, i, 0,
                -1, 1000 + i * GST_MSECOND) : make_view (i, 0, -1,
                1000 + i * GST_MSECOND)), GST_FLOW_OK);
  /* 3 come after the first full batch, 2 only at EOS */
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 3);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), frames);
  check_output_caps (h, dim);

  for (i = 0; i < frames; i++) {
    GstBuffer *out = gst_harness_pull (h);
    GstSimclrEmbeddingMeta *meta = get_embedding_meta (out);
    GstMapInfo map;
    gchar what[32];
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 1000 + i * GST_MSECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), GST_MSECOND);
    fail_unless (meta != NULL);
    fail_unless_equals_int (meta->rows, 1);
    fail_unless_equals_uint64 (meta->row[0].sample_id, i);
    fail_unless_equals_uint64 (meta->row[0].pts, 1000 + i * GST_MSECOND);
    fail_unless_equals_uint64 (meta->step, i / 3);
    fail_unless_equals_int ((gint) gst_buffer_get_size (out),
        dim * (gint) sizeof (gfloat));
    gst_buffer_map (out, &map, GST_MAP_READ);
    g_snprintf (what, sizeof what, "frame %d", i);
    assert_close (what, (const gfloat *) map.data, want + i * dim, dim);
    gst_buffer_unmap (out, &map);
    gst_buffer_unref (out);
  }

  simclr_model_free (m);
  g_free (in);
  g_free (want);
  teardown (h, NULL);
  g_unlink (path);
  g_rmdir (dir);
  g_free (settings);
  g_free (path);
  g_free (dir);
}

GST_START_TEST (test_embed_representation)
{
  check_embed ("representation", FALSE, NULL);
}

GST_END_TEST;

GST_START_TEST (test_embed_projection)
{
  check_embed ("projection", TRUE, NULL);
}

GST_END_TEST;

/* Frames from a bounded pool (1 buffer, batches of 3) are copied while
 * the batch fills, so the pool never runs dry. */
GST_START_TEST (test_embed_bounded_pool)
{
  GstBufferPool *pool = bounded_pool (1);
  check_embed ("projection", TRUE, pool);
  gst_buffer_pool_set_active (pool, FALSE);
  gst_object_unref (pool);
}

GST_END_TEST;

/* max-latency computes a partial batch once it spans that much stream
 * time. */
GST_START_TEST (test_embed_max_latency)
{
  gchar *dir = g_dir_make_tmp ("simclrencoder-XXXXXX", NULL);
  gchar *path = make_embed_checkpoint (dir);
  gchar *settings = g_strdup_printf ("mode=embed embed-batch=16 "
      "max-latency=2000000 checkpoint-location=%s", path);
  GstHarness *h = new_harness (settings, NULL);
  gint i;

  gst_harness_set_src_caps_str (h, CAPS);
  for (i = 0; i < 2; i++)
    gst_harness_push (h, make_view (i, 0, -1, i * GST_MSECOND));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_harness_push (h, make_view (2, 0, -1, 2 * GST_MSECOND));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 3);

  teardown (h, NULL);
  g_unlink (path);
  g_rmdir (dir);
  g_free (settings);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

/* The defaults are the recipe's optimiser (issue 11): LARS at 0.3 x
 * sqrt (N), N 256; width stays torchvision's 1.0 (a size choice). */
GST_START_TEST (test_recipe_defaults)
{
  GstElement *e = gst_element_factory_make ("simclrencoder", NULL);
  gdouble lr, width;
  gint batch;
  gchar *scaling = NULL, *optimizer = NULL;

  fail_unless (e != NULL);
  g_object_get (e, "learning-rate", &lr, "batch-size", &batch, "width",
      &width, NULL);
  {
    GParamSpec *p = g_object_class_find_property (G_OBJECT_GET_CLASS (e),
        "lr-scaling");
    GValue ev = G_VALUE_INIT;
    g_value_init (&ev, p->value_type);
    g_object_get_property (G_OBJECT (e), "lr-scaling", &ev);
    scaling = g_strdup (g_enum_get_value (g_type_class_peek (p->value_type),
            g_value_get_enum (&ev))->value_nick);
    g_value_unset (&ev);
    p = g_object_class_find_property (G_OBJECT_GET_CLASS (e), "optimizer");
    g_value_init (&ev, p->value_type);
    g_object_get_property (G_OBJECT (e), "optimizer", &ev);
    optimizer = g_strdup (g_enum_get_value (g_type_class_peek
            (p->value_type), g_value_get_enum (&ev))->value_nick);
    g_value_unset (&ev);
  }
  fail_unless_equals_float (lr, 0.3);
  fail_unless_equals_string (scaling, "sqrt");
  fail_unless_equals_string (optimizer, "lars");
  fail_unless_equals_int (batch, 256);
  fail_unless_equals_float (width, 1.0);
  g_free (scaling);
  g_free (optimizer);
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
simclrencoder_suite (void)
{
  Suite *s = suite_create ("simclrencoder");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_recipe_defaults);
  tcase_add_test (tc, test_train_pairing_and_gradient);
  tcase_add_test (tc, test_stop_at_end);
  tcase_add_test (tc, test_train_reentrant_gradient);
  tcase_add_test (tc, test_train_shutdown_wakes_wait);
  tcase_add_test (tc, test_train_flush_wakes_wait);
  tcase_add_test (tc, test_train_checkpoints_and_eos);
  tcase_add_test (tc, test_train_stem_stride2);
  tcase_add_test (tc, test_train_resume);
  tcase_add_test (tc, test_bad_files_and_settings);
  tcase_add_test (tc, test_caps_refused);
  tcase_add_test (tc, test_checkpoint_write_error);
  tcase_add_test (tc, test_gradient_wrong_shape);
  tcase_add_test (tc, test_resume_caps_mismatch);
  tcase_add_test (tc, test_embed_representation);
  tcase_add_test (tc, test_embed_projection);
  tcase_add_test (tc, test_embed_max_latency);
  tcase_add_test (tc, test_train_bounded_pool);
  tcase_add_test (tc, test_embed_bounded_pool);
  return s;
}

GST_CHECK_MAIN (simclrencoder);
