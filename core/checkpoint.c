/* checkpoint.c: models <-> safetensors files (see include/simclr/checkpoint.h).
 *
 * Maps the model's parameter table onto safetensors tensors with
 * torchvision's names and layouts (conv weights OHWI in memory, OIHW in the
 * file; num_batches_tracked as I64 scalars) and the configuration onto
 * metadata strings. The file format itself lives in safetensors.c; the
 * trainer adds its optimiser state through checkpoint-private.h.
 */
#include "checkpoint-private.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* (O,KH,KW,I) -> (O,I,KH,KW) */
static void
ohwi_to_oihw (float *dst, const float *src, const int64_t *shape)
{
  int64_t O = shape[0], I = shape[1], KH = shape[2], KW = shape[3];
  for (int64_t o = 0; o < O; o++)
    for (int64_t y = 0; y < KH; y++)
      for (int64_t x = 0; x < KW; x++)
        for (int64_t i = 0; i < I; i++)
          dst[((o * I + i) * KH + y) * KW + x] =
              src[((o * KH + y) * KW + x) * I + i];
}

/* (O,I,KH,KW) -> (O,KH,KW,I) */
static void
oihw_to_ohwi (float *dst, const float *src, const int64_t *shape)
{
  int64_t O = shape[0], I = shape[1], KH = shape[2], KW = shape[3];
  for (int64_t o = 0; o < O; o++)
    for (int64_t i = 0; i < I; i++)
      for (int64_t y = 0; y < KH; y++)
        for (int64_t x = 0; x < KW; x++)
          dst[((o * KH + y) * KW + x) * I + i] =
              src[((o * I + i) * KH + y) * KW + x];
}

SimclrStatus
simclr_checkpoint_set_meta_double (SimclrSafetensorsWriter *w, const char *key,
    double v, SimclrError *err)
{
  char buf[64];
  /* 17 significant digits round-trip every double exactly. */
  snprintf (buf, sizeof buf, "%.17g", v);
  return simclr_safetensors_writer_set_metadata (w, key, buf, err);
}

SimclrStatus
simclr_checkpoint_set_meta_int64 (SimclrSafetensorsWriter *w, const char *key,
    int64_t v, SimclrError *err)
{
  char buf[32];
  snprintf (buf, sizeof buf, "%" PRId64, v);
  return simclr_safetensors_writer_set_metadata (w, key, buf, err);
}

SimclrStatus
simclr_checkpoint_meta_double (const SimclrSafetensors *st, const char *key,
    int required, double *out, SimclrError *err)
{
  const char *s = simclr_safetensors_metadata (st, key);
  if (!s) {
    if (required)
      return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "%s: metadata \"%s\" missing", simclr_safetensors_path (st), key);
    return SIMCLR_OK;
  }
  char *end;
  errno = 0;
  double v = strtod (s, &end);
  if (end == s || *end != '\0' || errno == ERANGE)
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: metadata \"%s\" = \"%s\" is not a number",
        simclr_safetensors_path (st), key, s);
  *out = v;
  return SIMCLR_OK;
}

SimclrStatus
simclr_checkpoint_meta_int64 (const SimclrSafetensors *st, const char *key,
    int required, int64_t *out, SimclrError *err)
{
  const char *s = simclr_safetensors_metadata (st, key);
  if (!s) {
    if (required)
      return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "%s: metadata \"%s\" missing", simclr_safetensors_path (st), key);
    return SIMCLR_OK;
  }
  char *end;
  errno = 0;
  long long v = strtoll (s, &end, 10);
  if (end == s || *end != '\0' || errno == ERANGE)
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: metadata \"%s\" = \"%s\" is not an integer",
        simclr_safetensors_path (st), key, s);
  *out = v;
  return SIMCLR_OK;
}

static SimclrStatus
meta_int (const SimclrSafetensors *st, const char *key, int *out,
    SimclrError *err)
{
  int64_t v = *out;
  SimclrStatus s = simclr_checkpoint_meta_int64 (st, key, 0, &v, err);
  if (s != SIMCLR_OK)
    return s;
  if (v < INT32_MIN || v > INT32_MAX)
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: metadata \"%s\" = %" PRId64 " out of range",
        simclr_safetensors_path (st), key, v);
  *out = (int) v;
  return SIMCLR_OK;
}

SimclrStatus
simclr_checkpoint_config_from_metadata (const SimclrSafetensors *st,
    SimclrModelConfig *cfg, SimclrError *err)
{
  const char *path = simclr_safetensors_path (st);
  simclr_model_config_default (cfg);
  const char *arch = simclr_safetensors_metadata (st, "arch");
  if (!arch)
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: metadata \"arch\" missing: not a model checkpoint", path);
  int a = simclr_arch_from_string (arch);
  if (a < 0)
    return simclr_error_set (err, SIMCLR_ERROR_UNSUPPORTED,
        "%s: unknown architecture \"%s\" (resnet18, resnet34, resnet50)",
        path, arch);
  cfg->arch = (SimclrArch) a;
  const char *fmt = simclr_safetensors_metadata (st, "format_version");
  if (fmt && strcmp (fmt, "1") != 0)
    return simclr_error_set (err, SIMCLR_ERROR_UNSUPPORTED,
        "%s: checkpoint format_version \"%s\" (this build reads 1)", path, fmt);
  const char *stem = simclr_safetensors_metadata (st, "stem");
  if (stem) {
    int s = simclr_stem_from_string (stem);
    if (s < 0)
      return simclr_error_set (err, SIMCLR_ERROR_UNSUPPORTED,
          "%s: unknown stem \"%s\" (cifar, imagenet)", path, stem);
    cfg->stem = (SimclrStem) s;
  }
  SimclrStatus s;
  if ((s = simclr_checkpoint_meta_double (st, "width", 0, &cfg->width, err))
      || (s = meta_int (st, "in_channels", &cfg->in_channels, err))
      || (s = meta_int (st, "image_size", &cfg->image_size, err))
      || (s = meta_int (st, "proj_layers", &cfg->proj_layers, err))
      || (s = meta_int (st, "proj_hidden", &cfg->proj_hidden, err))
      || (s = meta_int (st, "proj_dim", &cfg->proj_dim, err))
      || (s = meta_int (st, "zero_init_residual", &cfg->zero_init_residual,
              err))
      || (s = simclr_checkpoint_meta_double (st, "bn_momentum", 0,
              &cfg->bn_momentum, err))
      || (s = simclr_checkpoint_meta_double (st, "bn_eps", 0, &cfg->bn_eps,
              err)))
    return s;
  SimclrError verr = { 0 };
  if (simclr_model_config_validate (cfg, &verr) != SIMCLR_OK)
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT, "%s: bad model "
        "configuration in metadata: %s", path, verr.message);
  return SIMCLR_OK;
}

SimclrStatus
simclr_checkpoint_add_model (SimclrSafetensorsWriter *w, const SimclrModel *m,
    SimclrError *err)
{
  SimclrModel *mm = (SimclrModel *) m;  /* accessors are not const; we only read */
  const SimclrModelConfig *c = simclr_model_get_config (m);
  float *params = simclr_model_params (mm, NULL);
  float *buffers = simclr_model_buffers (mm, NULL);
  SimclrStatus s;
  if ((s = simclr_safetensors_writer_set_metadata (w, "format",
              SIMCLR_CHECKPOINT_FORMAT, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "format_version",
              SIMCLR_CHECKPOINT_FORMAT_VERSION, err))
      || (s = simclr_safetensors_writer_set_metadata (w, "arch",
              simclr_arch_to_string (c->arch), err))
      || (s = simclr_checkpoint_set_meta_double (w, "width", c->width, err))
      || (s = simclr_safetensors_writer_set_metadata (w, "stem",
              simclr_stem_to_string (c->stem), err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "in_channels",
              c->in_channels, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "image_size",
              c->image_size, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "proj_layers",
              c->proj_layers, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "proj_hidden",
              c->proj_hidden, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "proj_dim", c->proj_dim,
              err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "zero_init_residual",
              c->zero_init_residual, err))
      || (s = simclr_checkpoint_set_meta_double (w, "bn_momentum",
              c->bn_momentum, err))
      || (s = simclr_checkpoint_set_meta_double (w, "bn_eps", c->bn_eps, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "feature_dim",
              simclr_model_feature_dim (m), err)))
    return s;

  int n = simclr_model_n_tensors (m);
  for (int i = 0; i < n; i++) {
    const SimclrTensorInfo *t = simclr_model_tensor (m, i);
    if (t->storage == SIMCLR_TENSOR_COUNTER) {
      int64_t *v = malloc (sizeof *v);
      if (!v)
        return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
      *v = simclr_model_num_batches_tracked (m);
      s = simclr_safetensors_writer_add_take (w, t->name, SIMCLR_DTYPE_I64, 0,
          NULL, v, err);
    } else if (t->ohwi) {
      float *conv = malloc (t->numel * sizeof (float));
      if (!conv)
        return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
      ohwi_to_oihw (conv, params + t->offset, t->shape);
      s = simclr_safetensors_writer_add_take (w, t->name, SIMCLR_DTYPE_F32,
          t->ndim, t->shape, conv, err);
    } else {
      const float *base = t->storage == SIMCLR_TENSOR_PARAM ? params : buffers;
      s = simclr_safetensors_writer_add (w, t->name, SIMCLR_DTYPE_F32, t->ndim,
          t->shape, base + t->offset, err);
    }
    if (s != SIMCLR_OK)
      return s;
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_checkpoint_add_param_like (SimclrSafetensorsWriter *w,
    const SimclrModel *m, const char *prefix, const float *buf,
    SimclrError *err)
{
  int n = simclr_model_n_tensors (m);
  for (int i = 0; i < n; i++) {
    const SimclrTensorInfo *t = simclr_model_tensor (m, i);
    if (t->storage != SIMCLR_TENSOR_PARAM)
      continue;
    char name[512];
    snprintf (name, sizeof name, "%s%s", prefix, t->name);
    float *copy = malloc (t->numel * sizeof (float));
    if (!copy)
      return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
    if (t->ohwi)
      ohwi_to_oihw (copy, buf + t->offset, t->shape);
    else
      memcpy (copy, buf + t->offset, t->numel * sizeof (float));
    SimclrStatus s = simclr_safetensors_writer_add_take (w, name,
        SIMCLR_DTYPE_F32, t->ndim, t->shape, copy, err);
    if (s != SIMCLR_OK)
      return s;
  }
  return SIMCLR_OK;
}

static void
shape_str (char *out, size_t n, int ndim, const int64_t *shape)
{
  size_t k = (size_t) snprintf (out, n, "(");
  for (int i = 0; i < ndim && k < n; i++)
    k += (size_t) snprintf (out + k, n - k, "%s%" PRId64, i ? ", " : "",
        shape[i]);
  if (k < n)
    snprintf (out + k, n - k, ")");
}

/* Checks @ft against the model tensor @t (F32 and the same shape). */
static SimclrStatus
check_tensor (const char *path, const char *name,
    const SimclrSafetensorsTensor *ft, const SimclrTensorInfo *t,
    SimclrError *err)
{
  if (!ft)
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "%s: tensor \"%s\" missing", path, name);
  if (ft->dtype != SIMCLR_DTYPE_F32)
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "%s: tensor \"%s\" has dtype %s, expected F32", path, name,
        simclr_dtype_to_string (ft->dtype));
  int same = ft->ndim == t->ndim;
  for (int d = 0; same && d < t->ndim; d++)
    same = ft->shape[d] == t->shape[d];
  if (!same) {
    char a[128], b[128];
    shape_str (a, sizeof a, ft->ndim, ft->shape);
    shape_str (b, sizeof b, t->ndim, t->shape);
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "%s: tensor \"%s\" has shape %s, the model expects %s", path, name, a,
        b);
  }
  return SIMCLR_OK;
}

/* Every check of simclr_checkpoint_read_model before its first copy; @m may
 * be a layout (simclr_model_layout_new). */
static SimclrStatus
check_model_tensors (const SimclrSafetensors *st, const SimclrModel *m,
    const char *allowed_prefix, SimclrError *err)
{
  const char *path = simclr_safetensors_path (st);
  /* Unknown tensors first, so nothing is half-loaded on that error. */
  for (int i = 0; i < simclr_safetensors_n_tensors (st); i++) {
    const char *name = simclr_safetensors_tensor (st, i)->name;
    if (simclr_model_find_tensor (m, name) >= 0)
      continue;
    if (allowed_prefix && strncmp (name, allowed_prefix,
            strlen (allowed_prefix)) == 0)
      continue;
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "%s: unexpected tensor \"%s\" (not part of a %s model)", path, name,
        simclr_arch_to_string (simclr_model_get_config (m)->arch));
  }
  /* Then every check before any copy. */
  int n = simclr_model_n_tensors (m);
  for (int i = 0; i < n; i++) {
    const SimclrTensorInfo *t = simclr_model_tensor (m, i);
    const SimclrSafetensorsTensor *ft = simclr_safetensors_find (st, t->name);
    if (t->storage == SIMCLR_TENSOR_COUNTER) {
      if (!ft)
        return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
            "%s: tensor \"%s\" missing", path, t->name);
      if (ft->dtype != SIMCLR_DTYPE_I64 || ft->numel != 1 || ft->ndim > 1)
        return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
            "%s: tensor \"%s\" must be an I64 scalar", path, t->name);
      continue;
    }
    SimclrStatus s = check_tensor (path, t->name, ft, t, err);
    if (s != SIMCLR_OK)
      return s;
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_checkpoint_read_model (const SimclrSafetensors *st, SimclrModel *m,
    const char *allowed_prefix, SimclrError *err)
{
  float *params = simclr_model_params (m, NULL);
  float *buffers = simclr_model_buffers (m, NULL);
  SimclrStatus s = check_model_tensors (st, m, allowed_prefix, err);
  if (s != SIMCLR_OK)
    return s;
  int n = simclr_model_n_tensors (m);
  int64_t nbt = -1;
  for (int i = 0; i < n; i++) {
    const SimclrTensorInfo *t = simclr_model_tensor (m, i);
    const SimclrSafetensorsTensor *ft = simclr_safetensors_find (st, t->name);
    if (t->storage == SIMCLR_TENSOR_COUNTER) {
      int64_t v;
      memcpy (&v, ft->data, sizeof v);
      if (v > nbt)
        nbt = v;
      continue;
    }
    float *dst = (t->storage == SIMCLR_TENSOR_PARAM ? params : buffers)
        + t->offset;
    if (t->ohwi)
      oihw_to_ohwi (dst, ft->data, t->shape);
    else
      memcpy (dst, ft->data, t->numel * sizeof (float));
  }
  if (nbt >= 0)
    simclr_model_set_num_batches_tracked (m, nbt);
  return SIMCLR_OK;
}

SimclrStatus
simclr_checkpoint_read_param_like (const SimclrSafetensors *st,
    const SimclrModel *m, const char *prefix, float *buf, SimclrError *err)
{
  const char *path = simclr_safetensors_path (st);
  int n = simclr_model_n_tensors (m);
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < n; i++) {
      const SimclrTensorInfo *t = simclr_model_tensor (m, i);
      if (t->storage != SIMCLR_TENSOR_PARAM)
        continue;
      char name[512];
      snprintf (name, sizeof name, "%s%s", prefix, t->name);
      const SimclrSafetensorsTensor *ft = simclr_safetensors_find (st, name);
      if (pass == 0) {
        SimclrStatus s = check_tensor (path, name, ft, t, err);
        if (s != SIMCLR_OK)
          return s;
      } else if (t->ohwi) {
        oihw_to_ohwi (buf + t->offset, ft->data, t->shape);
      } else {
        memcpy (buf + t->offset, ft->data, t->numel * sizeof (float));
      }
    }
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_checkpoint_save_model (const SimclrModel *m, const char *path,
    SimclrError *err)
{
  if (!m || !path)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "checkpoint save: NULL model or path");
  SimclrSafetensorsWriter *w = simclr_safetensors_writer_new ();
  if (!w)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  SimclrStatus s = simclr_checkpoint_add_model (w, m, err);
  if (s == SIMCLR_OK)
    s = simclr_safetensors_writer_write (w, path, err);
  simclr_safetensors_writer_free (w);
  return s;
}

SimclrStatus
simclr_checkpoint_read_config (const char *path, SimclrModelConfig *cfg,
    SimclrError *err)
{
  SimclrError e = { 0 };
  SimclrSafetensors *st = simclr_safetensors_open (path, &e);
  if (!st) {
    if (err)
      *err = e;
    return e.status;
  }
  SimclrStatus s = simclr_checkpoint_config_from_metadata (st, cfg, err);
  simclr_safetensors_free (st);
  return s;
}

SimclrModel *
simclr_checkpoint_load_model (const char *path, int max_batch,
    SimclrError *err)
{
  SimclrSafetensors *st = simclr_safetensors_open (path, err);
  if (!st)
    return NULL;
  SimclrModelConfig cfg;
  SimclrModel *m = NULL;
  if (simclr_checkpoint_config_from_metadata (st, &cfg, err) != SIMCLR_OK)
    goto out;
  cfg.max_batch = max_batch;
  /* The file's tensors against the claimed model before its memory: a
   * header alone can claim a model of gigabytes (found by fuzz-checkpoint). */
  SimclrModel *layout = simclr_model_layout_new (&cfg, err);
  if (!layout)
    goto out;
  SimclrStatus checked = check_model_tensors (st, layout, "optim.", err);
  simclr_model_free (layout);
  if (checked != SIMCLR_OK)
    goto out;
  m = simclr_model_new (&cfg, 0, err);
  if (!m)
    goto out;
  if (simclr_checkpoint_read_model (st, m, "optim.", err) != SIMCLR_OK) {
    simclr_model_free (m);
    m = NULL;
  }
out:
  simclr_safetensors_free (st);
  return m;
}

SimclrStatus
simclr_checkpoint_load_into_model (SimclrModel *m, const char *path,
    SimclrError *err)
{
  SimclrError e = { 0 };
  SimclrSafetensors *st = simclr_safetensors_open (path, &e);
  if (!st) {
    if (err)
      *err = e;
    return e.status;
  }
  SimclrStatus s = simclr_checkpoint_read_model (st, m, "optim.", err);
  simclr_safetensors_free (st);
  return s;
}
