/* dataset.h: image data sets on disk: IDX (MNIST / Fashion-MNIST), CIFAR-10 /
 * CIFAR-100 binary, and a folder of JPEG images with one sub-folder per class.
 *
 * IDX and CIFAR sets are read whole into memory at open (Fashion-MNIST train:
 * 47 MB, about 0.5 s to gunzip); a JPEG folder is listed at open (each file's
 * header is read for its size) and each image is decoded on demand by
 * simclr_dataset_get. Pixels are uint8 (H,W,C), C = 1 for IDX (GRAY8) and
 * C = 3 for CIFAR and JPEG (interleaved RGB; grayscale JPEGs are expanded).
 * This is not an augmentation library (see augment.h) and it does no
 * normalisation.
 *
 * Thread-safety: simclr_dataset_epoch_order is pure and reentrant. A
 * SimclrDataset holds decoding scratch: one object, one thread at a time;
 * distinct objects run concurrently.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  SIMCLR_DATASET_AUTO = 0,      /* guessed from the files at @location */
  SIMCLR_DATASET_IDX = 1,
  SIMCLR_DATASET_CIFAR10 = 2,
  SIMCLR_DATASET_CIFAR100 = 3,
  SIMCLR_DATASET_JPEG_FOLDER = 4,
} SimclrDatasetFormat;

typedef struct SimclrDataset SimclrDataset;

/* Opens a data set.
 * @location: a directory holding
 *   IDX: {train,t10k}-images-idx3-ubyte[.gz] and {train,t10k}-labels-idx1-ubyte[.gz]
 *        (gzip or raw; "test" split reads t10k-*); or for IDX the images file
 *        itself (the labels file is found by replacing "images-idx3" by
 *        "labels-idx1" in its name; without one, labels are -1);
 *   CIFAR-10: data_batch_{1..5}.bin (train, in that order) / test_batch.bin;
 *   CIFAR-100: train.bin / test.bin (the fine label is used);
 *   JPEG: one sub-folder per class (class index = position of the name in
 *        byte-wise sorted order), optionally under train/ and test/ (then
 *        @split selects one; without them @split is ignored); files *.jpg /
 *        *.jpeg (any case; others ignored), sorted by name within a class,
 *        classes in order. Grayscale JPEGs are expanded to RGB.
 * @split: "train" or "test" (NULL means "train").
 * @format: SIMCLR_DATASET_AUTO guesses: an IDX file name or *-idx3-ubyte*
 *   files, data_batch_1.bin / test_batch.bin (CIFAR-10), train.bin /
 *   test.bin (CIFAR-100), else a folder of sub-folders (JPEG).
 * Validation (SIMCLR_ERROR_FORMAT, the message names the file): wrong magic,
 * fewer bytes than the dimensions say, label count != image count, labels out
 * of range (IDX: > 254; CIFAR-10: > 9; CIFAR-100: > 99), CIFAR file size not a
 * multiple of the record size, an empty set. A missing file or folder is
 * SIMCLR_ERROR_IO. A corrupt JPEG is NOT an open error: get() reports it.
 * Returns a new data set (free with simclr_dataset_free) or NULL with @err set.
 */
SimclrDataset *simclr_dataset_open (const char *location, const char *split,
    SimclrDatasetFormat format, SimclrError *err);

/* Frees @ds; NULL is a no-op. */
void simclr_dataset_free (SimclrDataset *ds);

/* The format actually opened (never AUTO). */
SimclrDatasetFormat simclr_dataset_format (const SimclrDataset *ds);

/* "auto", "idx", "cifar10", "cifar100", "jpeg-folder"; NULL if out of range. */
const char *simclr_dataset_format_to_string (SimclrDatasetFormat format);

int64_t simclr_dataset_size (const SimclrDataset *ds);          /* samples */
int simclr_dataset_channels (const SimclrDataset *ds);          /* 1 or 3 */
/* Classes: IDX max label + 1 (10 for Fashion-MNIST); CIFAR 10 / 100; JPEG
 * the number of class sub-folders. */
int simclr_dataset_n_classes (const SimclrDataset *ds);

/* Fixed-size sets (IDX, CIFAR, JPEG with one size or with a target size):
 * width/height in pixels; 0 if images vary. */
int simclr_dataset_width (const SimclrDataset *ds);
int simclr_dataset_height (const SimclrDataset *ds);

/* Bytes of the largest image get() can return (w * h * channels): a buffer of
 * this capacity always suffices. */
size_t simclr_dataset_max_image_bytes (const SimclrDataset *ds);

/* JPEG folders only: resize every image to @width x @height (RGB, separable
 * triangle filter widened when shrinking, i.e. antialiased, as PIL's
 * BILINEAR; aspect ratio not kept). 0, 0 restores native sizes. Other formats:
 * SIMCLR_ERROR_UNSUPPORTED unless the size equals the native one.
 * Returns SIMCLR_ERROR_INVALID_ARGUMENT for sizes outside [1, 16384]. */
SimclrStatus simclr_dataset_set_target_size (SimclrDataset *ds, int width,
    int height, SimclrError *err);

/* The file sample @index comes from (JPEG: the image; IDX / CIFAR: the file
 * holding it). Borrowed, valid while @ds lives; NULL if out of range. */
const char *simclr_dataset_sample_path (const SimclrDataset *ds, int64_t index);

/* Copies image @index (H,W,C) uint8, rows packed (stride w * C), into @pixels
 * (caller-owned, @capacity bytes), returns its size in *w, *h and its label
 * in *label (-1 unknown); @w, @h, @label may be NULL.
 * Errors: SIMCLR_ERROR_INVALID_ARGUMENT (index out of range, capacity too
 * small: the message gives the size needed), SIMCLR_ERROR_IO (JPEG file
 * unreadable), SIMCLR_ERROR_FORMAT (corrupt JPEG, or one whose size changed
 * since the folder was listed; the message names the file). A JPEG that
 * libjpeg-turbo decodes only with a warning (truncated: "Premature end of
 * JPEG file"; corrupt entropy-coded data) is SIMCLR_ERROR_FORMAT too: its
 * partial pixels are never returned. A corrupt file does not affect the
 * images read after it. On error *w, *h, *label are left unchanged. */
SimclrStatus simclr_dataset_get (SimclrDataset *ds, int64_t index,
    uint8_t *pixels, size_t capacity, int *w, int *h, int *label,
    SimclrError *err);

/* The sample order of an epoch: a permutation of 0..n-1 that is a pure
 * function of (seed, epoch) (shuffle=0: identity), restricted to shard
 * shard_index of shard_count.
 * Permutation: forward Fisher-Yates, for i = 0 .. n-2 swap p[i] with
 * p[i + simclr_rng_below (seed, epoch, i, n - i)] starting from p = identity.
 * Sharding: with m = n / shard_count (integer division), shard r takes the
 * contiguous block p[r*m .. r*m + m - 1]; the last n % shard_count entries of
 * p are dropped (with shuffle they are different samples each epoch). So the
 * shards are disjoint, equally sized, and together cover n - n % shard_count
 * samples.
 * @out: caller-owned, capacity n / shard_count. Returns the count written (m),
 * or -1 if an argument is invalid (n < 0, n >= 2^32 with shuffle, shard_count
 * < 1, shard_index outside [0, shard_count), @out NULL with m > 0) or memory
 * runs out (a shuffled permutation needs n temporary int64 when shard_count
 * > 1). */
int64_t simclr_dataset_epoch_order (int64_t n, uint64_t seed, uint64_t epoch,
    int shuffle, int shard_index, int shard_count, int64_t *out);

#ifdef __cplusplus
}
#endif
