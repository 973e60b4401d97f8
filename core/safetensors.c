/* safetensors.c: reader and atomic writer of safetensors files (see
 * include/simclr/checkpoint.h for the format).
 *
 * The reader loads the whole file, parses the JSON header with json-glib and
 * validates every entry before anything is handed out, so callers see either
 * a consistent file or an error naming the file and the tensor. The writer
 * writes a temporary file in the target's directory, fsyncs it and renames
 * it over the target (then fsyncs the directory): a crash or an error leaves
 * the previous file whole. This file knows nothing about models.
 */
#include "simclr/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

/* Headers beyond this are not checkpoints of ours nor PyTorch's (the
 * reference implementation caps it at 100 MB too). */
#define MAX_HEADER_BYTES (100u * 1024 * 1024)

static const struct {
  const char *name;
  size_t size;
} dtypes[] = {
  [SIMCLR_DTYPE_F32] = { "F32", 4 },
  [SIMCLR_DTYPE_F64] = { "F64", 8 },
  [SIMCLR_DTYPE_I64] = { "I64", 8 },
  [SIMCLR_DTYPE_I32] = { "I32", 4 },
  [SIMCLR_DTYPE_U8] = { "U8", 1 },
  [SIMCLR_DTYPE_F16] = { "F16", 2 },
  [SIMCLR_DTYPE_BF16] = { "BF16", 2 },
};
#define N_DTYPES ((int) (sizeof dtypes / sizeof dtypes[0]))

const char *
simclr_dtype_to_string (SimclrDtype dtype)
{
  if ((int) dtype < 0 || (int) dtype >= N_DTYPES)
    return NULL;
  return dtypes[dtype].name;
}

size_t
simclr_dtype_size (SimclrDtype dtype)
{
  if ((int) dtype < 0 || (int) dtype >= N_DTYPES)
    return 0;
  return dtypes[dtype].size;
}

static int
dtype_from_string (const char *s)
{
  for (int i = 0; i < N_DTYPES; i++)
    if (strcmp (s, dtypes[i].name) == 0)
      return i;
  return -1;
}

/* ------------------------------------------------------------------------ */
/* reader */

typedef struct {
  char *key, *value;
} MetaEntry;

struct SimclrSafetensors {
  char *path;
  unsigned char *data;        /* the byte buffer (after the header) */
  size_t data_size;
  SimclrSafetensorsTensor *tensors;
  int n_tensors;
  MetaEntry *meta;
  int n_meta;
};

void
simclr_safetensors_free (SimclrSafetensors *st)
{
  if (!st)
    return;
  for (int i = 0; i < st->n_tensors; i++)
    free ((char *) st->tensors[i].name);
  for (int i = 0; i < st->n_meta; i++) {
    free (st->meta[i].key);
    free (st->meta[i].value);
  }
  free (st->tensors);
  free (st->meta);
  free (st->data);
  free (st->path);
  free (st);
}

static uint64_t
read_le64 (const unsigned char *b)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | b[i];
  return v;
}

static int
read_full (FILE *f, void *buf, size_t n)
{
  return n == 0 || fread (buf, 1, n, f) == n;
}

/* A JSON integer >= 0 (json-glib keeps integers as gint64). */
static int
node_is_uint (JsonNode *node, int64_t *out)
{
  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return 0;
  *out = json_node_get_int (node);
  return *out >= 0;
}

typedef struct {
  uint64_t begin, end;
  int index;
} Span;

static int
span_cmp (const void *a, const void *b)
{
  const Span *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* Parses one tensor entry into t (name already set) and its byte span.
 * Returns SIMCLR_OK or an error naming path and tensor. */
static SimclrStatus
parse_tensor (const char *path, const char *name, JsonNode *node,
    size_t data_size, SimclrSafetensorsTensor *t, Span *span,
    SimclrError *err)
{
  const SimclrStatus E = SIMCLR_ERROR_FORMAT;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return simclr_error_set (err, E, "%s: tensor \"%s\": entry is not a JSON "
        "object", path, name);
  JsonObject *o = json_node_get_object (node);
  JsonNode *dn = json_object_get_member (o, "dtype");
  JsonNode *sn = json_object_get_member (o, "shape");
  JsonNode *on = json_object_get_member (o, "data_offsets");
  if (!dn || !JSON_NODE_HOLDS_VALUE (dn)
      || json_node_get_value_type (dn) != G_TYPE_STRING)
    return simclr_error_set (err, E, "%s: tensor \"%s\": missing or non-string "
        "\"dtype\"", path, name);
  const char *ds = json_node_get_string (dn);
  int dt = dtype_from_string (ds);
  if (dt < 0)
    return simclr_error_set (err, E, "%s: tensor \"%s\": unknown dtype \"%s\"",
        path, name, ds);
  t->dtype = (SimclrDtype) dt;
  if (!sn || !JSON_NODE_HOLDS_ARRAY (sn))
    return simclr_error_set (err, E, "%s: tensor \"%s\": missing or non-array "
        "\"shape\"", path, name);
  JsonArray *sa = json_node_get_array (sn);
  guint ndim = json_array_get_length (sa);
  if (ndim > SIMCLR_SAFETENSORS_MAX_DIMS)
    return simclr_error_set (err, E, "%s: tensor \"%s\": %u dimensions (at "
        "most %d supported)", path, name, ndim, SIMCLR_SAFETENSORS_MAX_DIMS);
  t->ndim = (int) ndim;
  /* numel as a double too, to catch products that overflow size_t. */
  size_t numel = 1;
  double numel_d = 1;
  for (guint i = 0; i < ndim; i++) {
    int64_t v;
    if (!node_is_uint (json_array_get_element (sa, i), &v))
      return simclr_error_set (err, E, "%s: tensor \"%s\": shape[%u] is not a "
          "non-negative integer", path, name, i);
    t->shape[i] = v;
    numel *= (size_t) v;
    numel_d *= (double) v;
  }
  t->numel = numel;
  if (!on || !JSON_NODE_HOLDS_ARRAY (on)
      || json_array_get_length (json_node_get_array (on)) != 2)
    return simclr_error_set (err, E, "%s: tensor \"%s\": \"data_offsets\" must "
        "be an array [begin, end]", path, name);
  JsonArray *oa = json_node_get_array (on);
  int64_t b, e;
  if (!node_is_uint (json_array_get_element (oa, 0), &b)
      || !node_is_uint (json_array_get_element (oa, 1), &e))
    return simclr_error_set (err, E, "%s: tensor \"%s\": data_offsets are not "
        "non-negative integers", path, name);
  if (b > e || (uint64_t) e > data_size)
    return simclr_error_set (err, E, "%s: tensor \"%s\": data_offsets [%lld, "
        "%lld] out of range of the %zu-byte data buffer", path, name,
        (long long) b, (long long) e, data_size);
  size_t es = dtypes[dt].size;
  if (numel_d * es > (double) data_size
      || (uint64_t) (e - b) != (uint64_t) numel * es)
    return simclr_error_set (err, E, "%s: tensor \"%s\": shape holds %.0f "
        "elements of %s (%.0f bytes) but data_offsets span %lld bytes", path,
        name, numel_d, ds, numel_d * es, (long long) (e - b));
  if (b % es != 0)
    return simclr_error_set (err, E, "%s: tensor \"%s\": data offset %lld is "
        "not a multiple of the %s element size %zu (misaligned)", path, name,
        (long long) b, ds, es);
  span->begin = (uint64_t) b;
  span->end = (uint64_t) e;
  return SIMCLR_OK;
}

SimclrSafetensors *
simclr_safetensors_open (const char *path, SimclrError *err)
{
  SimclrSafetensors *st = NULL;
  FILE *f = NULL;
  char *header = NULL;
  JsonParser *parser = NULL;
  Span *spans = NULL;
  SimclrStatus status = SIMCLR_OK;

  if (!path) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "safetensors: path is NULL");
    return NULL;
  }
  f = fopen (path, "rb");
  if (!f) {
    simclr_error_set (err, SIMCLR_ERROR_IO, "%s: cannot open: %s", path,
        strerror (errno));
    return NULL;
  }
  struct stat sb;
  if (fstat (fileno (f), &sb) != 0 || !S_ISREG (sb.st_mode)) {
    status = simclr_error_set (err, SIMCLR_ERROR_IO, "%s: not a regular file",
        path);
    goto out;
  }
  uint64_t file_size = (uint64_t) sb.st_size;
  unsigned char lenbuf[8];
  if (file_size < 8 || !read_full (f, lenbuf, 8)) {
    status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: too short for a safetensors file (%llu bytes, need >= 8)", path,
        (unsigned long long) file_size);
    goto out;
  }
  uint64_t hlen = read_le64 (lenbuf);
  if (hlen > file_size - 8 || hlen > MAX_HEADER_BYTES) {
    status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: header length %llu beyond the file (%llu bytes after the length "
        "field) or above %u", path, (unsigned long long) hlen,
        (unsigned long long) (file_size - 8), MAX_HEADER_BYTES);
    goto out;
  }
  if (hlen < 2) {
    status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: header of %llu bytes cannot hold a JSON object", path,
        (unsigned long long) hlen);
    goto out;
  }
  header = malloc (hlen + 1);
  st = calloc (1, sizeof *st);
  if (!header || !st) {
    status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "%s: out of memory for the header", path);
    goto out;
  }
  st->path = strdup (path);
  if (!read_full (f, header, hlen)) {
    status = simclr_error_set (err, SIMCLR_ERROR_IO, "%s: read error in the "
        "header", path);
    goto out;
  }
  header[hlen] = '\0';
  if (memchr (header, '\0', hlen)) {
    status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: header holds a NUL byte (not JSON text)", path);
    goto out;
  }
  st->data_size = file_size - 8 - hlen;
  /* malloc's alignment (>= 16) makes every element-aligned offset aligned. */
  st->data = malloc (st->data_size ? st->data_size : 1);
  if (!st->data) {
    status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "%s: out of memory for %zu bytes of tensor data", path, st->data_size);
    goto out;
  }
  if (!read_full (f, st->data, st->data_size)) {
    status = simclr_error_set (err, SIMCLR_ERROR_IO, "%s: read error in the "
        "tensor data", path);
    goto out;
  }

  parser = json_parser_new ();
  GError *gerr = NULL;
  if (!json_parser_load_from_data (parser, header, (gssize) hlen, &gerr)) {
    status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: header is not valid JSON: %s", path, gerr->message);
    g_error_free (gerr);
    goto out;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: header is not a JSON object", path);
    goto out;
  }
  JsonObject *ro = json_node_get_object (root);
  GList *members = json_object_get_members (ro);
  guint n = g_list_length (members);
  st->tensors = calloc (n ? n : 1, sizeof *st->tensors);
  spans = calloc (n ? n : 1, sizeof *spans);
  if (!st->tensors || !spans) {
    g_list_free (members);
    status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "%s: out of memory", path);
    goto out;
  }
  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (ro, name);
    if (strcmp (name, "__metadata__") == 0) {
      if (!JSON_NODE_HOLDS_OBJECT (node)) {
        status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
            "%s: \"__metadata__\" is not a JSON object", path);
        break;
      }
      JsonObject *mo = json_node_get_object (node);
      GList *keys = json_object_get_members (mo);
      guint nk = g_list_length (keys);
      st->meta = calloc (nk ? nk : 1, sizeof *st->meta);
      if (!st->meta)
        status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
            "%s: out of memory", path);
      for (GList *k = keys; k && status == SIMCLR_OK; k = k->next) {
        JsonNode *vn = json_object_get_member (mo, k->data);
        if (!JSON_NODE_HOLDS_VALUE (vn)
            || json_node_get_value_type (vn) != G_TYPE_STRING) {
          status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
              "%s: metadata \"%s\" is not a string", path,
              (const char *) k->data);
          break;
        }
        st->meta[st->n_meta].key = strdup (k->data);
        st->meta[st->n_meta].value = strdup (json_node_get_string (vn));
        st->n_meta++;
      }
      g_list_free (keys);
      if (status != SIMCLR_OK)
        break;
      continue;
    }
    SimclrSafetensorsTensor *t = &st->tensors[st->n_tensors];
    t->name = strdup (name);
    st->n_tensors++;
    if (!t->name) {
      status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "%s: out of "
          "memory", path);
      break;
    }
    status = parse_tensor (path, name, node, st->data_size, t,
        &spans[st->n_tensors - 1], err);
    spans[st->n_tensors - 1].index = st->n_tensors - 1;
    if (status != SIMCLR_OK)
      break;
  }
  g_list_free (members);
  if (status != SIMCLR_OK)
    goto out;

  /* Overlaps: sort the spans; each non-empty one must start at or after the
   * end of the previous. Tensors are then listed in data order. */
  qsort (spans, st->n_tensors, sizeof *spans, span_cmp);
  uint64_t prev_end = 0;
  int prev = -1;
  for (int i = 0; i < st->n_tensors; i++) {
    if (spans[i].begin == spans[i].end)
      continue;
    if (prev >= 0 && spans[i].begin < prev_end) {
      status = simclr_error_set (err, SIMCLR_ERROR_FORMAT,
          "%s: tensor \"%s\" bytes [%llu, %llu) overlap tensor \"%s\" [.., "
          "%llu)", path, st->tensors[spans[i].index].name,
          (unsigned long long) spans[i].begin,
          (unsigned long long) spans[i].end, st->tensors[prev].name,
          (unsigned long long) prev_end);
      goto out;
    }
    prev_end = spans[i].end;
    prev = spans[i].index;
  }
  {
    size_t nt = st->n_tensors > 0 ? (size_t) st->n_tensors : 1;
    SimclrSafetensorsTensor *sorted = calloc (nt, sizeof *sorted);
    if (!sorted) {
      status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "%s: out of "
          "memory", path);
      goto out;
    }
    for (int i = 0; i < st->n_tensors; i++) {
      sorted[i] = st->tensors[spans[i].index];
      sorted[i].data = st->data + spans[i].begin;
    }
    free (st->tensors);
    st->tensors = sorted;
  }

out:
  if (f)
    fclose (f);
  free (header);
  free (spans);
  if (parser)
    g_object_unref (parser);
  if (status != SIMCLR_OK) {
    simclr_safetensors_free (st);
    return NULL;
  }
  return st;
}

const char *
simclr_safetensors_path (const SimclrSafetensors *st)
{
  return st->path;
}

int
simclr_safetensors_n_tensors (const SimclrSafetensors *st)
{
  return st->n_tensors;
}

const SimclrSafetensorsTensor *
simclr_safetensors_tensor (const SimclrSafetensors *st, int i)
{
  if (i < 0 || i >= st->n_tensors)
    return NULL;
  return &st->tensors[i];
}

const SimclrSafetensorsTensor *
simclr_safetensors_find (const SimclrSafetensors *st, const char *name)
{
  for (int i = 0; i < st->n_tensors; i++)
    if (strcmp (st->tensors[i].name, name) == 0)
      return &st->tensors[i];
  return NULL;
}

const char *
simclr_safetensors_metadata (const SimclrSafetensors *st, const char *key)
{
  for (int i = 0; i < st->n_meta; i++)
    if (strcmp (st->meta[i].key, key) == 0)
      return st->meta[i].value;
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* writer */

typedef struct {
  char *name;
  SimclrDtype dtype;
  int ndim;
  int64_t shape[SIMCLR_SAFETENSORS_MAX_DIMS];
  size_t nbytes;
  const void *data;
  void *owned;
} WTensor;

struct SimclrSafetensorsWriter {
  WTensor *t;
  int n, cap;
  MetaEntry *meta;
  int n_meta, cap_meta;
};

SimclrSafetensorsWriter *
simclr_safetensors_writer_new (void)
{
  return calloc (1, sizeof (SimclrSafetensorsWriter));
}

void
simclr_safetensors_writer_free (SimclrSafetensorsWriter *w)
{
  if (!w)
    return;
  for (int i = 0; i < w->n; i++) {
    free (w->t[i].name);
    free (w->t[i].owned);
  }
  for (int i = 0; i < w->n_meta; i++) {
    free (w->meta[i].key);
    free (w->meta[i].value);
  }
  free (w->t);
  free (w->meta);
  free (w);
}

static SimclrStatus
writer_add (SimclrSafetensorsWriter *w, const char *name, SimclrDtype dtype,
    int ndim, const int64_t *shape, const void *data, void *owned,
    SimclrError *err)
{
  const SimclrStatus E = SIMCLR_ERROR_INVALID_ARGUMENT;
  SimclrStatus status = SIMCLR_OK;
  if (!w || !name || !name[0] || strcmp (name, "__metadata__") == 0)
    status = simclr_error_set (err, E, "safetensors writer: bad tensor name "
        "\"%s\"", name ? name : "(null)");
  else if (!simclr_dtype_to_string (dtype))
    status = simclr_error_set (err, E, "safetensors writer: tensor \"%s\": "
        "bad dtype %d", name, (int) dtype);
  else if (ndim < 0 || ndim > SIMCLR_SAFETENSORS_MAX_DIMS
      || (ndim > 0 && !shape))
    status = simclr_error_set (err, E, "safetensors writer: tensor \"%s\": "
        "bad ndim %d", name, ndim);
  for (int i = 0; status == SIMCLR_OK && i < w->n; i++)
    if (strcmp (w->t[i].name, name) == 0)
      status = simclr_error_set (err, E, "safetensors writer: duplicate "
          "tensor \"%s\"", name);
  size_t numel = 1;
  for (int i = 0; status == SIMCLR_OK && i < ndim; i++) {
    if (shape[i] < 0)
      status = simclr_error_set (err, E, "safetensors writer: tensor \"%s\": "
          "negative shape[%d]", name, i);
    else
      numel *= (size_t) shape[i];
  }
  if (status == SIMCLR_OK && numel > 0 && !data)
    status = simclr_error_set (err, E, "safetensors writer: tensor \"%s\": "
        "data is NULL", name);
  if (status == SIMCLR_OK && w->n == w->cap) {
    int cap = w->cap ? 2 * w->cap : 64;
    WTensor *t = realloc (w->t, cap * sizeof *t);
    if (!t)
      status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
          "safetensors writer: out of memory");
    else {
      w->t = t;
      w->cap = cap;
    }
  }
  if (status != SIMCLR_OK) {
    free (owned);
    return status;
  }
  WTensor *t = &w->t[w->n];
  memset (t, 0, sizeof *t);
  t->name = strdup (name);
  if (!t->name) {
    free (owned);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "safetensors writer: out of memory");
  }
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    t->shape[i] = shape[i];
  t->nbytes = numel * simclr_dtype_size (dtype);
  t->data = data;
  t->owned = owned;
  w->n++;
  return SIMCLR_OK;
}

SimclrStatus
simclr_safetensors_writer_add (SimclrSafetensorsWriter *w, const char *name,
    SimclrDtype dtype, int ndim, const int64_t *shape, const void *data,
    SimclrError *err)
{
  return writer_add (w, name, dtype, ndim, shape, data, NULL, err);
}

SimclrStatus
simclr_safetensors_writer_add_take (SimclrSafetensorsWriter *w,
    const char *name, SimclrDtype dtype, int ndim, const int64_t *shape,
    void *data, SimclrError *err)
{
  return writer_add (w, name, dtype, ndim, shape, data, data, err);
}

SimclrStatus
simclr_safetensors_writer_set_metadata (SimclrSafetensorsWriter *w,
    const char *key, const char *value, SimclrError *err)
{
  if (!w || !key || !value)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "safetensors writer: NULL metadata key or value");
  for (int i = 0; i < w->n_meta; i++)
    if (strcmp (w->meta[i].key, key) == 0) {
      char *v = strdup (value);
      if (!v)
        return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
            "safetensors writer: out of memory");
      free (w->meta[i].value);
      w->meta[i].value = v;
      return SIMCLR_OK;
    }
  if (w->n_meta == w->cap_meta) {
    int cap = w->cap_meta ? 2 * w->cap_meta : 32;
    MetaEntry *m = realloc (w->meta, cap * sizeof *m);
    if (!m)
      return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
          "safetensors writer: out of memory");
    w->meta = m;
    w->cap_meta = cap;
  }
  w->meta[w->n_meta].key = strdup (key);
  w->meta[w->n_meta].value = strdup (value);
  if (!w->meta[w->n_meta].key || !w->meta[w->n_meta].value) {
    free (w->meta[w->n_meta].key);
    free (w->meta[w->n_meta].value);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "safetensors writer: out of memory");
  }
  w->n_meta++;
  return SIMCLR_OK;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes so the data
 * buffer starts 8-aligned in the file (as the reference implementation
 * does). Caller frees with g_free. */
static char *
build_header (const SimclrSafetensorsWriter *w, size_t *len)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  if (w->n_meta) {
    json_builder_set_member_name (b, "__metadata__");
    json_builder_begin_object (b);
    for (int i = 0; i < w->n_meta; i++) {
      json_builder_set_member_name (b, w->meta[i].key);
      json_builder_add_string_value (b, w->meta[i].value);
    }
    json_builder_end_object (b);
  }
  uint64_t off = 0;
  for (int i = 0; i < w->n; i++) {
    const WTensor *t = &w->t[i];
    /* Keep each tensor element-aligned: pad before it if needed. */
    size_t es = simclr_dtype_size (t->dtype);
    off = (off + es - 1) / es * es;
    json_builder_set_member_name (b, t->name);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "dtype");
    json_builder_add_string_value (b, simclr_dtype_to_string (t->dtype));
    json_builder_set_member_name (b, "shape");
    json_builder_begin_array (b);
    for (int d = 0; d < t->ndim; d++)
      json_builder_add_int_value (b, t->shape[d]);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "data_offsets");
    json_builder_begin_array (b);
    json_builder_add_int_value (b, (gint64) off);
    json_builder_add_int_value (b, (gint64) (off + t->nbytes));
    json_builder_end_array (b);
    json_builder_end_object (b);
    off += t->nbytes;
  }
  json_builder_end_object (b);
  JsonGenerator *g = json_generator_new ();
  JsonNode *root = json_builder_get_root (b);
  json_generator_set_root (g, root);
  gsize n;
  char *text = json_generator_to_data (g, &n);
  json_node_unref (root);
  g_object_unref (g);
  g_object_unref (b);
  size_t padded = (n + 7) / 8 * 8;
  char *out = g_malloc (padded + 1);
  memcpy (out, text, n);
  memset (out + n, ' ', padded - n);
  out[padded] = '\0';
  g_free (text);
  *len = padded;
  return out;
}

static int
write_all (int fd, const void *buf, size_t n)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t k = write (fd, p, n > (1u << 30) ? (1u << 30) : n);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += k;
    n -= (size_t) k;
  }
  return 0;
}

SimclrStatus
simclr_safetensors_writer_write (SimclrSafetensorsWriter *w, const char *path,
    SimclrError *err)
{
  if (!w || !path || !path[0])
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "safetensors writer: NULL writer or empty path");
  struct stat sb;
  if (stat (path, &sb) == 0 && S_ISDIR (sb.st_mode))
    return simclr_error_set (err, SIMCLR_ERROR_IO,
        "%s: is a directory, cannot write a checkpoint there", path);

  size_t hlen;
  char *header = build_header (w, &hlen);
  size_t plen = strlen (path);
  char *tmp = malloc (plen + 16);
  char *dir = malloc (plen + 2);
  if (!tmp || !dir) {
    free (tmp);
    free (dir);
    g_free (header);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "%s: out of memory",
        path);
  }
  snprintf (tmp, plen + 16, "%s.tmp-XXXXXX", path);
  strcpy (dir, path);
  char *slash = strrchr (dir, '/');
  if (!slash)
    strcpy (dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';

  SimclrStatus status = SIMCLR_OK;
  int fd = mkstemp (tmp);
  if (fd < 0) {
    status = simclr_error_set (err, SIMCLR_ERROR_IO,
        "%s: cannot create a temporary file in %s: %s", path, dir,
        strerror (errno));
    goto done;
  }
  /* mkstemp makes 0600; a checkpoint is an ordinary file (umask applies). */
  mode_t mask = umask (0);
  umask (mask);
  if (fchmod (fd, 0666 & ~mask) != 0) {
    /* Not fatal: the file is still usable by its owner. */
  }
  unsigned char lenbuf[8];
  for (int i = 0; i < 8; i++)
    lenbuf[i] = (unsigned char) ((uint64_t) hlen >> (8 * i));
  int bad = write_all (fd, lenbuf, 8) || write_all (fd, header, hlen);
  uint64_t off = 0;
  static const unsigned char zeros[8] = { 0 };
  for (int i = 0; !bad && i < w->n; i++) {
    size_t es = simclr_dtype_size (w->t[i].dtype);
    uint64_t aligned = (off + es - 1) / es * es;
    if (aligned > off)
      bad = write_all (fd, zeros, aligned - off);
    off = aligned + w->t[i].nbytes;
    if (!bad && w->t[i].nbytes)
      bad = write_all (fd, w->t[i].data, w->t[i].nbytes);
  }
  if (bad) {
    status = simclr_error_set (err, SIMCLR_ERROR_IO, "%s: write failed: %s",
        tmp, strerror (errno));
  } else if (fsync (fd) != 0) {
    status = simclr_error_set (err, SIMCLR_ERROR_IO, "%s: fsync failed: %s",
        tmp, strerror (errno));
  }
  if (close (fd) != 0 && status == SIMCLR_OK)
    status = simclr_error_set (err, SIMCLR_ERROR_IO, "%s: close failed: %s",
        tmp, strerror (errno));
  if (status == SIMCLR_OK && rename (tmp, path) != 0)
    status = simclr_error_set (err, SIMCLR_ERROR_IO,
        "%s: cannot rename the temporary file into place: %s", path,
        strerror (errno));
  if (status != SIMCLR_OK) {
    unlink (tmp);
  } else {
    /* Make the rename itself durable. */
    int dfd = open (dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      fsync (dfd);
      close (dfd);
    }
  }

done:
  free (tmp);
  free (dir);
  g_free (header);
  return status;
}
