/* checkpoint.h: safetensors files, and models saved in them.
 *
 * The safetensors format: an 8-byte little-endian header length L, a JSON
 * header of L bytes {name: {"dtype", "shape", "data_offsets": [begin, end]},
 * "__metadata__": {str: str}}, then the byte buffer the offsets index.
 * The writer pads the header with spaces to a multiple of 8 bytes and writes
 * to a temporary file in the target directory, fsyncs and renames it into
 * place, so an interrupted or failed save leaves the previous file intact.
 * The reader checks everything (header length, JSON, dtypes, shapes against
 * byte sizes, offsets in range, aligned and not overlapping) and names the
 * file and tensor at fault.
 *
 * A model checkpoint holds torchvision's ResNet state_dict (conv weights OIHW,
 * BN num_batches_tracked as I64 scalars) plus the head under "head.", and
 * metadata: "format" = "gst-simclr", "format_version" = "1", the model
 * configuration ("arch" resnet18|resnet34|resnet50, "width", "stem"
 * cifar|imagenet, "in_channels", "image_size", "proj_layers", "proj_hidden",
 * "proj_dim", "zero_init_residual", "bn_momentum", "bn_eps"). Metadata keys
 * missing from a PyTorch-written file take simclr_model_config_default's
 * values, except "arch", which is required.
 *
 * Thread-safety: objects here belong to one thread at a time; distinct
 * objects are independent.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/error.h"
#include "simclr/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SIMCLR_CHECKPOINT_FORMAT "gst-simclr"
#define SIMCLR_CHECKPOINT_FORMAT_VERSION 1
#define SIMCLR_SAFETENSORS_MAX_DIMS 8

typedef enum {
  SIMCLR_DTYPE_F32 = 0,   /* "F32" */
  SIMCLR_DTYPE_F64 = 1,   /* "F64" */
  SIMCLR_DTYPE_I64 = 2,   /* "I64" */
  SIMCLR_DTYPE_I32 = 3,   /* "I32" */
  SIMCLR_DTYPE_U8 = 4,    /* "U8" */
  SIMCLR_DTYPE_F16 = 5,   /* "F16": read and listed, not converted */
  SIMCLR_DTYPE_BF16 = 6,  /* "BF16": read and listed, not converted */
} SimclrDtype;

/* "F32", ...; NULL out of range. */
const char *simclr_dtype_to_string (SimclrDtype dtype);
/* Bytes per element, 0 out of range. */
size_t simclr_dtype_size (SimclrDtype dtype);

/* ---------------------------------------------------------------------------
 * Reader: the whole file is read and validated at open. */
typedef struct SimclrSafetensors SimclrSafetensors;

typedef struct {
  const char *name;
  SimclrDtype dtype;
  int ndim;                              /* 0 for a scalar */
  int64_t shape[SIMCLR_SAFETENSORS_MAX_DIMS];
  size_t numel;                          /* product of shape (1 for a scalar) */
  const void *data;                      /* numel * dtype size bytes, aligned
                                          * to the element size, little-endian */
} SimclrSafetensorsTensor;

/* Returns NULL with @err set (SIMCLR_ERROR_IO or SIMCLR_ERROR_FORMAT, the
 * message naming @path and the tensor) on failure. Free with
 * simclr_safetensors_free. */
SimclrSafetensors *simclr_safetensors_open (const char *path, SimclrError *err);
void simclr_safetensors_free (SimclrSafetensors *st);   /* NULL is a no-op */
const char *simclr_safetensors_path (const SimclrSafetensors *st);
int simclr_safetensors_n_tensors (const SimclrSafetensors *st);
/* Tensors in file order of their data. Borrowed, valid while @st lives. */
const SimclrSafetensorsTensor *simclr_safetensors_tensor (
    const SimclrSafetensors *st, int i);
/* NULL if absent. */
const SimclrSafetensorsTensor *simclr_safetensors_find (
    const SimclrSafetensors *st, const char *name);
/* The "__metadata__" value of @key, NULL if absent. Borrowed. */
const char *simclr_safetensors_metadata (const SimclrSafetensors *st,
    const char *key);

/* ---------------------------------------------------------------------------
 * Writer: collect tensors and metadata, then write atomically. */
typedef struct SimclrSafetensorsWriter SimclrSafetensorsWriter;

SimclrSafetensorsWriter *simclr_safetensors_writer_new (void);
void simclr_safetensors_writer_free (SimclrSafetensorsWriter *w); /* NULL: no-op */

/* Adds a tensor whose bytes (numel * dtype size, little-endian) are BORROWED:
 * @data must stay valid until the writer is freed. Names are copied. Fails
 * on a duplicate or empty name, bad dtype or ndim. */
SimclrStatus simclr_safetensors_writer_add (SimclrSafetensorsWriter *w,
    const char *name, SimclrDtype dtype, int ndim, const int64_t *shape,
    const void *data, SimclrError *err);
/* As _add, but the writer takes ownership of @data (a malloc'd block, freed
 * with free()) even on failure. */
SimclrStatus simclr_safetensors_writer_add_take (SimclrSafetensorsWriter *w,
    const char *name, SimclrDtype dtype, int ndim, const int64_t *shape,
    void *data, SimclrError *err);
/* Sets (or replaces) a metadata entry; both strings copied. */
SimclrStatus simclr_safetensors_writer_set_metadata (SimclrSafetensorsWriter *w,
    const char *key, const char *value, SimclrError *err);
/* Writes @path atomically (temporary file in the same directory, fsync,
 * rename). On failure @path is untouched and no temporary file remains. */
SimclrStatus simclr_safetensors_writer_write (SimclrSafetensorsWriter *w,
    const char *path, SimclrError *err);

/* ---------------------------------------------------------------------------
 * Models. */

/* Saves @m's parameters, running statistics and configuration to @path
 * (atomic). */
SimclrStatus simclr_checkpoint_save_model (const SimclrModel *m,
    const char *path, SimclrError *err);

/* Creates a model from the configuration in @path's metadata (max_batch
 * replaced by @max_batch) and loads every tensor (strict: each model tensor
 * present with the right shape and dtype F32 (I64 for num_batches_tracked),
 * and no unknown tensor outside "optim."). Returns NULL with @err set on any
 * failure. For embedding, run it with train=0. */
SimclrModel *simclr_checkpoint_load_model (const char *path, int max_batch,
    SimclrError *err);

/* Loads @path's tensors into an existing model of the same shape (strict, as
 * above; the configuration in the metadata is not checked). */
SimclrStatus simclr_checkpoint_load_into_model (SimclrModel *m,
    const char *path, SimclrError *err);

/* Reads the model configuration stored in @path's metadata (max_batch set to
 * the default). */
SimclrStatus simclr_checkpoint_read_config (const char *path,
    SimclrModelConfig *cfg, SimclrError *err);

#ifdef __cplusplus
}
#endif
