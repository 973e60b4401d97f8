/* fuzz-idx.c: the IDX reader (MNIST / Fashion-MNIST layout), raw and gzip.
 *
 * Input: [flags][split_hi][split_lo] then the images file bytes and the
 * labels file bytes (split at the given offset, modulo what is left).
 * flags bit 0: images gzip; bit 1: labels gzip; bit 2: no labels file;
 * bit 3: gzip files hold the bytes compressed by us (valid streams of
 * fuzzed content) rather than the bytes themselves (fuzzed gzip streams);
 * bit 4: open the images file by its path rather than the folder.
 * Checks on success: sizes in range, get() of samples agrees with the size
 * and (raw images) returns exactly the file's bytes, labels in [-1, 254].
 */
#include <string.h>

#include "simclr/dataset.h"

#include "fuzz-common.h"

static void
put_file (const char *name, const uint8_t *data, size_t len, int gz,
    int compress)
{
  char *p = fuzz_path (name);
  if (gz && compress)
    fuzz_write_gz (p, data, len);
  else
    fuzz_write (p, data, len);
  free (p);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  SimclrError err = { 0 };
  SimclrDataset *ds;
  uint8_t flags;
  size_t split, rest;
  const uint8_t *img, *lab;
  size_t img_len, lab_len;
  int img_gz, lab_gz, no_labels, compress, by_path;
  char *loc;

  if (size < 3)
    return 0;
  flags = data[0];
  rest = size - 3;
  split = rest ? (((size_t) data[1] << 8) | data[2]) % (rest + 1) : 0;
  img = data + 3;
  img_len = split;
  lab = img + split;
  lab_len = rest - split;
  img_gz = flags & 1;
  lab_gz = (flags >> 1) & 1;
  no_labels = (flags >> 2) & 1;
  compress = (flags >> 3) & 1;
  by_path = (flags >> 4) & 1;

  fuzz_clear ();
  put_file (img_gz ? "set/train-images-idx3-ubyte.gz" :
      "set/train-images-idx3-ubyte", img, img_len, img_gz, compress);
  if (!no_labels)
    put_file (lab_gz ? "set/train-labels-idx1-ubyte.gz" :
        "set/train-labels-idx1-ubyte", lab, lab_len, lab_gz, compress);
  loc = fuzz_path (by_path ? (img_gz ? "set/train-images-idx3-ubyte.gz" :
          "set/train-images-idx3-ubyte") : "set");

  ds = simclr_dataset_open (loc, "train", SIMCLR_DATASET_IDX, &err);
  if (!ds) {
    FUZZ_CHECK (err.status != SIMCLR_OK && err.message[0] != '\0',
        "open failed without a message");
    free (loc);
    return 0;
  }
  {
    int64_t n = simclr_dataset_size (ds);
    int w = simclr_dataset_width (ds), h = simclr_dataset_height (ds);
    size_t cap = simclr_dataset_max_image_bytes (ds);
    uint8_t *buf;
    int64_t probe[4] = { 0, 1, n / 2, n - 1 };

    FUZZ_CHECK (n > 0, "opened an empty set");
    FUZZ_CHECK (w >= 1 && w <= 16384 && h >= 1 && h <= 16384, "size %dx%d",
        w, h);
    FUZZ_CHECK (simclr_dataset_channels (ds) == 1, "channels");
    FUZZ_CHECK (cap == (size_t) w * h, "max bytes %zu for %dx%d", cap, w, h);
    FUZZ_CHECK (simclr_dataset_n_classes (ds) >= 0
        && simclr_dataset_n_classes (ds) <= 255, "classes");
    /* the payload was read whole: it cannot exceed the input */
    if (!img_gz)
      FUZZ_CHECK ((uint64_t) n * cap + 16 == img_len, "%lld x %zu bytes from "
          "a %zu-byte file", (long long) n, cap, img_len);
    buf = malloc (cap);
    FUZZ_CHECK (buf != NULL, "out of memory");
    for (int i = 0; i < 4; i++) {
      int64_t k = probe[i];
      int gw = 0, gh = 0, label = -2;
      if (k < 0 || k >= n)
        continue;
      FUZZ_CHECK (simclr_dataset_get (ds, k, buf, cap, &gw, &gh, &label,
              &err) == SIMCLR_OK, "get %lld: %s", (long long) k, err.message);
      FUZZ_CHECK (gw == w && gh == h, "get size");
      FUZZ_CHECK (label >= -1 && label <= 254, "label %d", label);
      FUZZ_CHECK (no_labels ? label == -1 : label >= 0, "label %d", label);
      if (!img_gz)
        FUZZ_CHECK (memcmp (buf, img + 16 + (size_t) k * cap, cap) == 0,
            "pixels of sample %lld differ from the file", (long long) k);
    }
    FUZZ_CHECK (simclr_dataset_get (ds, n, buf, cap, NULL, NULL, NULL, &err)
        == SIMCLR_ERROR_INVALID_ARGUMENT, "index n accepted");
    if (cap > 1)
      FUZZ_CHECK (simclr_dataset_get (ds, 0, buf, cap - 1, NULL, NULL, NULL,
              &err) == SIMCLR_ERROR_INVALID_ARGUMENT, "short buffer accepted");
    free (buf);
  }
  simclr_dataset_free (ds);
  free (loc);
  return 0;
}
