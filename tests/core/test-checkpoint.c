/* test-checkpoint.c: safetensors files and model / trainer checkpoints.
 *
 * - Round trip of models (weights, running statistics, counter, config) with
 *   identical eval outputs, and the on-disk layout (conv weights OIHW).
 * - Every malformed-file case gives its status and a message naming the file
 *   and the tensor or key at fault, never a crash. The corrupt files are
 *   written here, byte by byte.
 * - Atomic write: a failed save (target is a directory, directory missing,
 *   file-size limit hit mid-write) leaves the previous file intact and no
 *   temporary file behind.
 * - Trainer resume: the losses after a save/load equal, bit for bit, those
 *   of the uninterrupted run.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "simclr/checkpoint.h"
#include "simclr/model.h"
#include "simclr/rng.h"
#include "simclr/trainer.h"

static char *tmpdir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static SimclrModel *
small_model (SimclrArch arch, SimclrStem stem, int proj_layers, int in_ch)
{
  SimclrModelConfig cfg;
  simclr_model_config_default (&cfg);
  cfg.arch = arch;
  cfg.stem = stem;
  cfg.width = arch == SIMCLR_ARCH_RESNET50 ? 0.0625 : 0.125;
  cfg.in_channels = in_ch;
  cfg.image_size = stem == SIMCLR_STEM_IMAGENET ? 16 : 8;
  cfg.max_batch = 4;
  cfg.proj_layers = proj_layers;
  cfg.proj_hidden = 24;
  cfg.proj_dim = 16;
  SimclrError err = { 0 };
  SimclrModel *m = simclr_model_new (&cfg, 5, &err);
  if (!m)
    g_error ("model: %s", err.message);
  return m;
}

static float *
random_input (const SimclrModel *m, int B, uint64_t seed)
{
  const SimclrModelConfig *c = simclr_model_get_config (m);
  size_t n = (size_t) B * c->image_size * c->image_size * c->in_channels;
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = simclr_rng_uniform (seed, 0, i);
  return x;
}

/* ------------------------------------------------------------------------ */

static void
test_round_trip (gconstpointer data)
{
  int variant = GPOINTER_TO_INT (data);
  SimclrModel *m = variant == 0
      ? small_model (SIMCLR_ARCH_RESNET18, SIMCLR_STEM_CIFAR, 2, 3)
      : small_model (SIMCLR_ARCH_RESNET50, SIMCLR_STEM_IMAGENET, 3, 1);
  SimclrError err = { 0 };
  float *x = random_input (m, 4, 1);
  /* Two train forwards: running stats and the counter move. */
  g_assert_cmpint (simclr_model_forward (m, x, 4, 1, NULL, NULL, &err), ==, 0);
  g_assert_cmpint (simclr_model_forward (m, x, 3, 1, NULL, NULL, &err), ==, 0);
  char *path = tmp_path ("round.safetensors");
  g_assert_cmpint (simclr_checkpoint_save_model (m, path, &err), ==,
      SIMCLR_OK);

  SimclrModel *m2 = simclr_checkpoint_load_model (path, 2, &err);
  if (!m2)
    g_error ("load: %s", err.message);
  const SimclrModelConfig *a = simclr_model_get_config (m);
  const SimclrModelConfig *b = simclr_model_get_config (m2);
  g_assert_cmpint (a->arch, ==, b->arch);
  g_assert_cmpint (a->stem, ==, b->stem);
  g_assert_cmpfloat (a->width, ==, b->width);
  g_assert_cmpint (a->in_channels, ==, b->in_channels);
  g_assert_cmpint (a->image_size, ==, b->image_size);
  g_assert_cmpint (a->proj_layers, ==, b->proj_layers);
  g_assert_cmpint (a->proj_hidden, ==, b->proj_hidden);
  g_assert_cmpint (a->proj_dim, ==, b->proj_dim);
  g_assert_cmpint (b->max_batch, ==, 2);
  size_t n1, n2, nb1, nb2;
  float *p1 = simclr_model_params (m, &n1), *p2 = simclr_model_params (m2, &n2);
  float *b1 = simclr_model_buffers (m, &nb1);
  float *b2 = simclr_model_buffers (m2, &nb2);
  g_assert_cmpint (n1, ==, n2);
  g_assert_cmpint (nb1, ==, nb2);
  g_assert_cmpint (memcmp (p1, p2, n1 * sizeof (float)), ==, 0);
  g_assert_cmpint (memcmp (b1, b2, nb1 * sizeof (float)), ==, 0);
  g_assert_cmpint (simclr_model_num_batches_tracked (m2), ==, 2);

  /* Same eval outputs, bit for bit. */
  int D = simclr_model_output_dim (m);
  float z1[2 * 64], z2[2 * 64];
  g_assert_cmpint (D, <=, 64);
  g_assert_cmpint (simclr_model_forward (m, x, 2, 0, NULL, z1, &err), ==, 0);
  g_assert_cmpint (simclr_model_forward (m2, x, 2, 0, NULL, z2, &err), ==, 0);
  g_assert_cmpint (memcmp (z1, z2, 2 * D * sizeof (float)), ==, 0);

  /* On disk: OIHW, I64 counters, metadata. */
  SimclrSafetensors *st = simclr_safetensors_open (path, &err);
  g_assert_nonnull (st);
  const SimclrSafetensorsTensor *t = simclr_safetensors_find (st,
      "layer1.0.conv2.weight");
  const SimclrTensorInfo *ti = simclr_model_tensor (m,
      simclr_model_find_tensor (m, "layer1.0.conv2.weight"));
  g_assert_nonnull (t);
  g_assert_cmpint (t->dtype, ==, SIMCLR_DTYPE_F32);
  g_assert_cmpint (t->ndim, ==, 4);
  int64_t O = ti->shape[0], I = ti->shape[1], K = ti->shape[2];
  for (int64_t o = 0; o < O; o++)
    for (int64_t i = 0; i < I; i++)
      for (int64_t y = 0; y < K; y++)
        for (int64_t xx = 0; xx < K; xx++) {
          float f = ((const float *) t->data)[((o * I + i) * K + y) * K + xx];
          float w = p1[ti->offset + ((o * K + y) * K + xx) * I + i];
          g_assert_cmpfloat (f, ==, w);
        }
  t = simclr_safetensors_find (st, "bn1.num_batches_tracked");
  g_assert_nonnull (t);
  g_assert_cmpint (t->dtype, ==, SIMCLR_DTYPE_I64);
  g_assert_cmpint (t->ndim, ==, 0);
  g_assert_cmpint (*(const int64_t *) t->data, ==, 2);
  g_assert_cmpstr (simclr_safetensors_metadata (st, "arch"), ==,
      variant == 0 ? "resnet18" : "resnet50");
  g_assert_cmpstr (simclr_safetensors_metadata (st, "format_version"), ==, "1");
  simclr_safetensors_free (st);

  /* Loading into a model of another shape fails cleanly. */
  SimclrModel *other = small_model (SIMCLR_ARCH_RESNET34, SIMCLR_STEM_CIFAR, 2,
      3);
  g_assert_cmpint (simclr_checkpoint_load_into_model (other, path, &err), ==,
      SIMCLR_ERROR_MISMATCH);
  g_test_message ("into resnet34: %s", err.message);
  simclr_model_free (other);

  g_free (x);
  g_free (path);
  simclr_model_free (m);
  simclr_model_free (m2);
}

/* ------------------------------------------------------------------------ */
/* malformed files */

static void
write_raw (const char *path, uint64_t hlen, const char *header,
    const void *data, size_t n)
{
  FILE *f = fopen (path, "wb");
  g_assert_nonnull (f);
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char) (hlen >> (8 * i));
  g_assert_cmpint (fwrite (b, 1, 8, f), ==, 8);
  if (header)
    g_assert_cmpint (fwrite (header, 1, strlen (header), f), ==,
        strlen (header));
  if (n)
    g_assert_cmpint (fwrite (data, 1, n, f), ==, n);
  fclose (f);
}

typedef struct {
  const char *label;
  const char *header;        /* NULL: special case */
  int64_t hlen_delta;        /* added to strlen (header) */
  size_t data_bytes;
  SimclrStatus status;
  const char *needle;        /* in the message, besides the path */
} BadFile;

static const BadFile bad_files[] = {
  { "header-beyond-file", "{}", 1000, 0, SIMCLR_ERROR_FORMAT, "beyond" },
  { "bad-json", "{\"a\": {\"dtype\": \"F32\", ", 0, 16, SIMCLR_ERROR_FORMAT,
    "not valid JSON" },
  { "not-object", "[1, 2, 3]", 0, 0, SIMCLR_ERROR_FORMAT, "not a JSON object" },
  { "unknown-dtype", "{\"w\": {\"dtype\": \"Q7\", \"shape\": [2], "
    "\"data_offsets\": [0, 8]}}", 0, 8, SIMCLR_ERROR_FORMAT,
    "tensor \"w\": unknown dtype \"Q7\"" },
  { "offsets-out-of-range", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], "
    "\"data_offsets\": [0, 16]}}", 0, 8, SIMCLR_ERROR_FORMAT,
    "tensor \"w\": data_offsets [0, 16] out of range" },
  { "offsets-reversed", "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], "
    "\"data_offsets\": [8, 4]}}", 0, 8, SIMCLR_ERROR_FORMAT,
    "tensor \"w\": data_offsets" },
  { "shape-size-mismatch", "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], "
    "\"data_offsets\": [0, 8]}}", 0, 8, SIMCLR_ERROR_FORMAT,
    "tensor \"w\": shape holds 3 elements" },
  { "overlap", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], "
    "\"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], "
    "\"data_offsets\": [4, 12]}}", 0, 12, SIMCLR_ERROR_FORMAT, "overlap" },
  { "misaligned", "{\"a\": {\"dtype\": \"U8\", \"shape\": [2], "
    "\"data_offsets\": [0, 2]}, \"b\": {\"dtype\": \"F32\", \"shape\": [1], "
    "\"data_offsets\": [2, 6]}}", 0, 8, SIMCLR_ERROR_FORMAT,
    "tensor \"b\": data offset 2 is not a multiple" },
  { "negative-shape", "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], "
    "\"data_offsets\": [0, 4]}}", 0, 4, SIMCLR_ERROR_FORMAT,
    "tensor \"w\": shape[0]" },
  { "missing-offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 0, 4,
    SIMCLR_ERROR_FORMAT, "tensor \"w\": \"data_offsets\"" },
  { "metadata-not-string", "{\"__metadata__\": {\"arch\": 18}}", 0, 0,
    SIMCLR_ERROR_FORMAT, "metadata \"arch\" is not a string" },
  { "huge-shape", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, "
    "4294967296, 4294967296], \"data_offsets\": [0, 4]}}", 0, 4,
    SIMCLR_ERROR_FORMAT, "tensor \"w\": shape holds" },
  { "too-short", NULL, 0, 0, SIMCLR_ERROR_FORMAT, "too short" },
  { "missing-file", NULL, 0, 0, SIMCLR_ERROR_IO, "cannot open" },
};

static void
test_bad_file (gconstpointer data)
{
  const BadFile *c = data;
  char *name = g_strdup_printf ("bad-%s.safetensors", c->label);
  char *path = tmp_path (name);
  unsigned char zeros[64] = { 0 };
  if (c->header) {
    write_raw (path, strlen (c->header) + c->hlen_delta, c->header, zeros,
        c->data_bytes);
  } else if (strcmp (c->label, "too-short") == 0) {
    g_assert_true (g_file_set_contents (path, "abc", 3, NULL));
  }
  SimclrError err = { 0 };
  SimclrSafetensors *st = simclr_safetensors_open (path, &err);
  g_assert_null (st);
  g_test_message ("%s: %s", c->label, err.message);
  if (err.status != c->status || !strstr (err.message, path)
      || !strstr (err.message, c->needle))
    g_error ("%s: got status %d \"%s\", want %d with \"%s\"", c->label,
        err.status, err.message, c->status, c->needle);
  /* The model loader reports the same. */
  SimclrModel *m = simclr_checkpoint_load_model (path, 1, &err);
  g_assert_null (m);
  g_assert_cmpint (err.status, ==, c->status);
  g_free (path);
  g_free (name);
}

/* Model-level problems: a valid file that does not fit. @edit rewrites the
 * saved checkpoint through the generic reader/writer. */
typedef enum {
  EDIT_DROP_TENSOR, EDIT_WRONG_SHAPE, EDIT_UNKNOWN_ARCH, EDIT_NO_ARCH,
  EDIT_EXTRA_TENSOR, EDIT_WRONG_DTYPE,
} Edit;

typedef struct {
  const char *label;
  Edit edit;
  SimclrStatus status;
  const char *needle;
} ModelCase;

static const ModelCase model_cases[] = {
  { "missing-tensor", EDIT_DROP_TENSOR, SIMCLR_ERROR_MISMATCH,
    "tensor \"layer2.0.bn1.running_var\" missing" },
  { "wrong-shape", EDIT_WRONG_SHAPE, SIMCLR_ERROR_MISMATCH,
    "tensor \"layer1.0.conv1.weight\" has shape (8, 8, 3, 1), the model "
    "expects (8, 8, 3, 3)" },
  { "unknown-arch", EDIT_UNKNOWN_ARCH, SIMCLR_ERROR_UNSUPPORTED,
    "unknown architecture \"resnet99\"" },
  { "no-arch", EDIT_NO_ARCH, SIMCLR_ERROR_FORMAT, "\"arch\" missing" },
  { "extra-tensor", EDIT_EXTRA_TENSOR, SIMCLR_ERROR_MISMATCH,
    "unexpected tensor \"fc.weight\"" },
  { "wrong-dtype", EDIT_WRONG_DTYPE, SIMCLR_ERROR_MISMATCH,
    "tensor \"head.0.bias\" has dtype F64" },
};

static void
test_model_mismatch (gconstpointer data)
{
  const ModelCase *c = data;
  SimclrModel *m = small_model (SIMCLR_ARCH_RESNET18, SIMCLR_STEM_CIFAR, 2, 3);
  char *good = tmp_path ("good.safetensors");
  char *name = g_strdup_printf ("bad-%s.safetensors", c->label);
  char *path = tmp_path (name);
  SimclrError err = { 0 };
  g_assert_cmpint (simclr_checkpoint_save_model (m, good, &err), ==, 0);
  SimclrSafetensors *st = simclr_safetensors_open (good, &err);
  g_assert_nonnull (st);
  SimclrSafetensorsWriter *w = simclr_safetensors_writer_new ();
  static const char *keys[] = { "format", "format_version", "arch", "width",
    "stem", "in_channels", "image_size", "proj_layers", "proj_hidden",
    "proj_dim", "bn_momentum", "bn_eps" };
  for (unsigned i = 0; i < G_N_ELEMENTS (keys); i++) {
    const char *v = simclr_safetensors_metadata (st, keys[i]);
    g_assert_nonnull (v);
    if (strcmp (keys[i], "arch") == 0 && c->edit == EDIT_NO_ARCH)
      continue;
    if (strcmp (keys[i], "arch") == 0 && c->edit == EDIT_UNKNOWN_ARCH)
      v = "resnet99";
    g_assert_cmpint (simclr_safetensors_writer_set_metadata (w, keys[i], v,
            &err), ==, 0);
  }
  static double f64[4];
  for (int i = 0; i < simclr_safetensors_n_tensors (st); i++) {
    const SimclrSafetensorsTensor *t = simclr_safetensors_tensor (st, i);
    int64_t shape[8];
    memcpy (shape, t->shape, sizeof shape);
    if (c->edit == EDIT_DROP_TENSOR
        && strcmp (t->name, "layer2.0.bn1.running_var") == 0)
      continue;
    if (c->edit == EDIT_WRONG_SHAPE
        && strcmp (t->name, "layer1.0.conv1.weight") == 0) {
      shape[2] = 3;             /* (8,8,3,3) -> (8,8,3,1) + (8,8,...) */
      shape[3] = 1;
    }
    if (c->edit == EDIT_WRONG_SHAPE
        && strcmp (t->name, "layer1.0.conv1.weight") == 0) {
      g_assert_cmpint (simclr_safetensors_writer_add (w, t->name, t->dtype,
              t->ndim, shape, t->data, &err), ==, 0);
      continue;
    }
    if (c->edit == EDIT_WRONG_DTYPE && strcmp (t->name, "head.0.bias") == 0) {
      /* 24 floats -> 12 doubles would change the shape; keep shape (24)
       * and write F64 bytes. */
      double *d = g_new0 (double, t->numel);
      g_assert_cmpint (simclr_safetensors_writer_add_take (w, t->name,
              SIMCLR_DTYPE_F64, t->ndim, shape, d, &err), ==, 0);
      continue;
    }
    g_assert_cmpint (simclr_safetensors_writer_add (w, t->name, t->dtype,
            t->ndim, shape, t->data, &err), ==, 0);
  }
  if (c->edit == EDIT_EXTRA_TENSOR) {
    int64_t shape[1] = { 4 };
    g_assert_cmpint (simclr_safetensors_writer_add (w, "fc.weight",
            SIMCLR_DTYPE_F64, 1, shape, f64, &err), ==, 0);
  }
  g_assert_cmpint (simclr_safetensors_writer_write (w, path, &err), ==, 0);
  simclr_safetensors_writer_free (w);
  simclr_safetensors_free (st);

  SimclrModel *m2 = simclr_checkpoint_load_model (path, 4, &err);
  g_assert_null (m2);
  g_test_message ("%s: %s", c->label, err.message);
  if (err.status != c->status || !strstr (err.message, path)
      || !strstr (err.message, c->needle))
    g_error ("%s: got status %d \"%s\", want %d with \"%s\"", c->label,
        err.status, err.message, c->status, c->needle);
  if (c->edit != EDIT_UNKNOWN_ARCH && c->edit != EDIT_NO_ARCH) {
    /* Loading into an existing model: same error, model untouched. */
    size_t n;
    float *p = simclr_model_params (m, &n);
    float *before = g_memdup2 (p, n * sizeof (float));
    g_assert_cmpint (simclr_checkpoint_load_into_model (m, path, &err), ==,
        c->status);
    g_assert_cmpint (memcmp (before, p, n * sizeof (float)), ==, 0);
    g_free (before);
  }
  g_free (path);
  g_free (name);
  g_free (good);
  simclr_model_free (m);
}

/* ------------------------------------------------------------------------ */
/* atomic write */

static int
count_temporaries (void)
{
  GDir *d = g_dir_open (tmpdir, 0, NULL);
  const char *n;
  int k = 0;
  while ((n = g_dir_read_name (d)))
    if (strstr (n, ".tmp-"))
      k++;
  g_dir_close (d);
  return k;
}

static void
test_atomic (void)
{
  SimclrModel *m = small_model (SIMCLR_ARCH_RESNET18, SIMCLR_STEM_CIFAR, 2, 3);
  SimclrError err = { 0 };
  char *path = tmp_path ("atomic.safetensors");
  g_assert_cmpint (simclr_checkpoint_save_model (m, path, &err), ==, 0);
  char *orig = NULL;
  gsize orig_len = 0;
  g_assert_true (g_file_get_contents (path, &orig, &orig_len, NULL));

  /* Change the weights, then fail to save in three ways. */
  size_t n;
  float *p = simclr_model_params (m, &n);
  for (size_t i = 0; i < n; i++)
    p[i] += 1.0f;

  /* 1. The target is a directory. */
  char *dir = tmp_path ("a-directory");
  g_assert_cmpint (g_mkdir (dir, 0755), ==, 0);
  g_assert_cmpint (simclr_checkpoint_save_model (m, dir, &err), ==,
      SIMCLR_ERROR_IO);
  g_test_message ("directory: %s", err.message);
  g_assert_nonnull (strstr (err.message, dir));
  g_assert_true (g_file_test (dir, G_FILE_TEST_IS_DIR));

  /* 2. The directory does not exist. */
  char *nodir = tmp_path ("no-such-dir/x.safetensors");
  g_assert_cmpint (simclr_checkpoint_save_model (m, nodir, &err), ==,
      SIMCLR_ERROR_IO);
  g_assert_nonnull (strstr (err.message, nodir));

  /* 3. The write fails half-way (file-size limit below the checkpoint
   * size; works as root too, unlike a read-only directory). */
  struct rlimit old, lim;
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &old), ==, 0);
  signal (SIGXFSZ, SIG_IGN);
  lim = old;
  lim.rlim_cur = orig_len / 2;
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &lim), ==, 0);
  SimclrStatus s = simclr_checkpoint_save_model (m, path, &err);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &old), ==, 0);
  signal (SIGXFSZ, SIG_DFL);
  g_assert_cmpint (s, ==, SIMCLR_ERROR_IO);
  g_test_message ("size limit: %s", err.message);
  g_assert_nonnull (strstr (err.message, "write failed"));

  char *now = NULL;
  gsize now_len = 0;
  g_assert_true (g_file_get_contents (path, &now, &now_len, NULL));
  g_assert_cmpint (now_len, ==, orig_len);
  g_assert_cmpint (memcmp (now, orig, orig_len), ==, 0);
  g_assert_cmpint (count_temporaries (), ==, 0);

  /* And a successful save replaces it. */
  g_assert_cmpint (simclr_checkpoint_save_model (m, path, &err), ==, 0);
  SimclrModel *m2 = simclr_checkpoint_load_model (path, 1, &err);
  g_assert_nonnull (m2);
  g_assert_cmpfloat (simclr_model_params (m2, NULL)[0], ==, p[0]);
  simclr_model_free (m2);
  g_assert_cmpint (count_temporaries (), ==, 0);

  g_rmdir (dir);
  g_free (dir);
  g_free (nodir);
  g_free (now);
  g_free (orig);
  g_free (path);
  simclr_model_free (m);
}

/* ------------------------------------------------------------------------ */
/* trainer resume */

static void
trainer_cfg (SimclrTrainerConfig *cfg)
{
  simclr_trainer_config_default (cfg);
  cfg->model.width = 0.125;
  cfg->model.in_channels = 1;
  cfg->model.image_size = 8;
  cfg->model.max_batch = 8;
  cfg->model.proj_layers = 3;
  cfg->model.proj_hidden = 16;
  cfg->model.proj_dim = 8;
  cfg->optim.batch_size = 4;
  cfg->optim.base_lr = 1.0;
  cfg->optim.warmup_steps = 2;
  cfg->optim.total_steps = 10;
  cfg->optim.weight_decay = 1e-4;
  cfg->temperature = 0.2;
  cfg->seed = 77;
}

static void
batch_u8 (uint8_t *v, size_t n, int step)
{
  for (size_t i = 0; i < n; i++)
    v[i] = (uint8_t) simclr_rng_below (9, step, i, 256);
}

static void
test_trainer_resume (void)
{
  SimclrTrainerConfig cfg;
  trainer_cfg (&cfg);
  SimclrError err = { 0 };
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  if (!t)
    g_error ("trainer: %s", err.message);
  size_t n = 8 * 8 * 8;
  uint8_t views[8 * 8 * 8];
  SimclrNtxentResult r;
  double losses[6];
  for (int s = 0; s < 3; s++) {
    batch_u8 (views, n, s);
    g_assert_cmpint (simclr_trainer_train_step (t, views, 8, &r, &err), ==,
        SIMCLR_OK);
  }
  char *path = tmp_path ("trainer.safetensors");
  g_assert_cmpint (simclr_trainer_save (t, path, &err), ==, SIMCLR_OK);
  for (int s = 3; s < 6; s++) {
    batch_u8 (views, n, s);
    g_assert_cmpint (simclr_trainer_train_step (t, views, 8, &r, &err), ==,
        SIMCLR_OK);
    losses[s] = r.loss;
  }
  g_assert_cmpint (simclr_trainer_get_step (t), ==, 6);

  SimclrTrainer *t2 = simclr_trainer_load (path, 8, &err);
  if (!t2)
    g_error ("resume: %s", err.message);
  g_assert_cmpint (simclr_trainer_get_step (t2), ==, 3);
  const SimclrTrainerConfig *c2 = simclr_trainer_get_config (t2);
  g_assert_cmpfloat (c2->temperature, ==, cfg.temperature);
  g_assert_cmpfloat (c2->optim.weight_decay, ==, cfg.optim.weight_decay);
  g_assert_cmpint (c2->optim.total_steps, ==, cfg.optim.total_steps);
  g_assert_cmpint (c2->seed, ==, cfg.seed);
  g_assert_cmpfloat (simclr_trainer_get_lr (t2), ==,
      simclr_optim_lr (&cfg.optim, 3));
  for (int s = 3; s < 6; s++) {
    batch_u8 (views, n, s);
    g_assert_cmpint (simclr_trainer_train_step (t2, views, 8, &r, &err), ==,
        SIMCLR_OK);
    if (r.loss != losses[s])
      g_error ("step %d: resumed loss %.17g, uninterrupted %.17g", s, r.loss,
          losses[s]);
  }
  size_t np;
  const float *pa = simclr_model_params (simclr_trainer_get_model (t), &np);
  const float *pb = simclr_model_params (simclr_trainer_get_model (t2), NULL);
  for (size_t i = 0; i < np; i++)
    if (memcmp (pa + i, pb + i, sizeof (float)) != 0)
      g_error ("parameter %zu: resumed %.9g, uninterrupted %.9g", i, pb[i],
          pa[i]);
  /* A model checkpoint is not a trainer checkpoint; a trainer checkpoint is
   * a model checkpoint. */
  SimclrModel *m = simclr_checkpoint_load_model (path, 2, &err);
  g_assert_nonnull (m);
  simclr_model_free (m);
  char *mpath = tmp_path ("model-only.safetensors");
  g_assert_cmpint (simclr_checkpoint_save_model (simclr_trainer_get_model (t),
          mpath, &err), ==, 0);
  g_assert_null (simclr_trainer_load (mpath, 8, &err));
  g_assert_nonnull (strstr (err.message, "not a trainer checkpoint"));
  g_free (mpath);
  g_free (path);
  simclr_trainer_free (t);
  simclr_trainer_free (t2);
}

/* Two identical replicas: the hook sums (doubles) the gradient and the
 * trainer divides by 2, which is exact in float, so the run must equal the
 * single-replica run bit for bit. */
static int allreduce_calls;

static void
double_sum (float *buf, int n, void *user)
{
  g_assert_true (user == &allreduce_calls);
  allreduce_calls++;
  for (int i = 0; i < n; i++)
    buf[i] *= 2.0f;
}

static void
test_trainer_allreduce (void)
{
  SimclrTrainerConfig cfg;
  trainer_cfg (&cfg);
  SimclrError err = { 0 };
  SimclrTrainer *a = simclr_trainer_new (&cfg, &err);
  SimclrTrainer *b = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (a);
  g_assert_nonnull (b);
  simclr_trainer_set_gradient_allreduce (b, double_sum, &allreduce_calls);
  simclr_trainer_set_replicas (b, 2);
  uint8_t views[8 * 8 * 8];
  SimclrNtxentResult ra, rb;
  for (int s = 0; s < 3; s++) {
    batch_u8 (views, sizeof views, s);
    g_assert_cmpint (simclr_trainer_train_step (a, views, 8, &ra, &err), ==, 0);
    g_assert_cmpint (simclr_trainer_train_step (b, views, 8, &rb, &err), ==, 0);
    g_assert_cmpfloat (ra.loss, ==, rb.loss);
  }
  g_assert_cmpint (allreduce_calls, ==, 3);
  size_t np;
  const float *pa = simclr_model_params (simclr_trainer_get_model (a), &np);
  const float *pb = simclr_model_params (simclr_trainer_get_model (b), NULL);
  for (size_t i = 0; i < np; i++)
    if (memcmp (pa + i, pb + i, sizeof (float)) != 0)
      g_error ("parameter %zu: with allreduce %.9g, without %.9g", i, pb[i],
          pa[i]);
  /* Without the division the step differs (the test can fail). */
  simclr_trainer_set_replicas (b, 1);
  batch_u8 (views, sizeof views, 3);
  g_assert_cmpint (simclr_trainer_train_step (a, views, 8, &ra, &err), ==, 0);
  g_assert_cmpint (simclr_trainer_train_step (b, views, 8, &rb, &err), ==, 0);
  g_assert_cmpint (memcmp (simclr_model_params (simclr_trainer_get_model (a),
              NULL), simclr_model_params (simclr_trainer_get_model (b), NULL),
          np * sizeof (float)), !=, 0);
  /* Odd rows and oversize batches are errors, not crashes. */
  g_assert_cmpint (simclr_trainer_train_step (a, views, 7, &ra, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_trainer_train_step (a, views, 10, &ra, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_trainer_backward_and_step (a, views == NULL ? NULL
          : (const float *) NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  simclr_trainer_free (a);
  simclr_trainer_free (b);
}

/* Trainer checkpoints record the pretraining wall time ("train_seconds"),
 * and a resumed trainer carries it on, so results can state their budget. */
static void
test_trainer_wall_time (void)
{
  SimclrTrainerConfig cfg;
  trainer_cfg (&cfg);
  SimclrError err = { 0 };
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (t);
  g_usleep (50000);
  char *path = tmp_path ("wall.safetensors");
  char *path2 = tmp_path ("wall2.safetensors");
  g_assert_cmpint (simclr_trainer_save (t, path, &err), ==, SIMCLR_OK);
  SimclrSafetensors *st = simclr_safetensors_open (path, &err);
  g_assert_nonnull (st);
  const char *v = simclr_safetensors_metadata (st, "train_seconds");
  g_assert_nonnull (v);
  double first = g_ascii_strtod (v, NULL);
  g_assert_cmpfloat (first, >=, 0.05);
  g_assert_cmpfloat (first, <, 60.0);
  simclr_safetensors_free (st);

  SimclrTrainer *t2 = simclr_trainer_load (path, 8, &err);
  g_assert_nonnull (t2);
  g_usleep (50000);
  g_assert_cmpint (simclr_trainer_save (t2, path2, &err), ==, SIMCLR_OK);
  st = simclr_safetensors_open (path2, &err);
  g_assert_nonnull (st);
  double second = g_ascii_strtod (simclr_safetensors_metadata (st,
          "train_seconds"), NULL);
  g_assert_cmpfloat (second, >=, first + 0.05);
  simclr_safetensors_free (st);
  simclr_trainer_free (t);
  simclr_trainer_free (t2);
  g_free (path);
  g_free (path2);
}

/* A header can claim a model of gigabytes; the loader checks the file's
 * tensors against the claimed layout before allocating (fuzz-checkpoint:
 * this file took over a minute of CPU in the model's initialisation). */
static void
test_claims_huge_model (void)
{
  const char *header = "{\"__metadata__\":{\"format\":\"gst-simclr\","
      "\"format_version\":\"1\",\"arch\":\"resnet50\",\"width\":\"4\","
      "\"stem\":\"imagenet\",\"in_channels\":\"3\",\"image_size\":"
      "\"224\",\"proj_layers\":\"3\",\"proj_hidden\":\"8192\","
      "\"proj_dim\":\"128\"}}";
  char *path = tmp_path ("claims-huge.safetensors");
  write_raw (path, strlen (header), header, NULL, 0);
  SimclrError err = { 0 };
  SimclrModel *m = simclr_checkpoint_load_model (path, 1, &err);
  g_assert_null (m);
  g_test_message ("%s", err.message);
  if (err.status != SIMCLR_ERROR_MISMATCH || !strstr (err.message, path)
      || !strstr (err.message, "missing"))
    g_error ("got status %d \"%s\", want a missing tensor of %s", err.status,
        err.message, path);
  g_free (path);
}

/* The layout has the real model's tensors, names and shapes, and no memory. */
static void
test_layout (void)
{
  SimclrModel *m = small_model (SIMCLR_ARCH_RESNET18, SIMCLR_STEM_CIFAR,
      2, 3);
  SimclrError err = { 0 };
  SimclrModel *l = simclr_model_layout_new (simclr_model_get_config (m), &err);
  g_assert_nonnull (l);
  g_assert_null (simclr_model_params (l, NULL));
  g_assert_cmpint (simclr_model_n_tensors (l), ==, simclr_model_n_tensors (m));
  for (int i = 0; i < simclr_model_n_tensors (m); i++) {
    const SimclrTensorInfo *a = simclr_model_tensor (m, i);
    const SimclrTensorInfo *b = simclr_model_tensor (l, i);
    g_assert_cmpstr (a->name, ==, b->name);
    g_assert_cmpint (a->storage, ==, b->storage);
    g_assert_cmpint (a->ndim, ==, b->ndim);
    for (int d = 0; d < a->ndim; d++)
      g_assert_cmpint (a->shape[d], ==, b->shape[d]);
  }
  simclr_model_free (l);
  simclr_model_free (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("test-checkpoint-XXXXXX", NULL);
  g_assert_nonnull (tmpdir);
  g_test_add_data_func ("/checkpoint/round-trip/resnet18", GINT_TO_POINTER (0),
      test_round_trip);
  g_test_add_data_func ("/checkpoint/round-trip/resnet50", GINT_TO_POINTER (1),
      test_round_trip);
  for (unsigned i = 0; i < G_N_ELEMENTS (bad_files); i++) {
    char *p = g_strdup_printf ("/checkpoint/malformed/%s", bad_files[i].label);
    g_test_add_data_func (p, &bad_files[i], test_bad_file);
    g_free (p);
  }
  for (unsigned i = 0; i < G_N_ELEMENTS (model_cases); i++) {
    char *p = g_strdup_printf ("/checkpoint/mismatch/%s", model_cases[i].label);
    g_test_add_data_func (p, &model_cases[i], test_model_mismatch);
    g_free (p);
  }
  g_test_add_func ("/checkpoint/atomic", test_atomic);
  g_test_add_func ("/checkpoint/claims-huge-model", test_claims_huge_model);
  g_test_add_func ("/checkpoint/layout", test_layout);
  g_test_add_func ("/checkpoint/trainer-resume", test_trainer_resume);
  g_test_add_func ("/checkpoint/trainer-wall-time", test_trainer_wall_time);
  g_test_add_func ("/checkpoint/trainer-allreduce", test_trainer_allreduce);
  int rc = g_test_run ();
  /* Remove what the tests left. */
  GDir *d = g_dir_open (tmpdir, 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name (d))) {
    char *p = g_build_filename (tmpdir, n, NULL);
    g_remove (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return rc;
}
