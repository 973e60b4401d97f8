/* fuzz-cifar.c: the CIFAR-10 / CIFAR-100 binary reader.
 *
 * Input: [flags] then the file. flags bit 0: CIFAR-100 (else CIFAR-10);
 * bit 1: the training split (CIFAR-100 train.bin; CIFAR-10 data_batch_1.bin
 * holds the input and data_batch_2..5.bin one valid record each), else the
 * test file. Checks on success: the sample count is the records', every
 * probed sample's pixels are the record's planes interleaved, labels in
 * range.
 */
#include <string.h>

#include "simclr/dataset.h"

#include "fuzz-common.h"

#define SIDE 32
#define PIX (SIDE * SIDE)

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  SimclrError err = { 0 };
  SimclrDataset *ds;
  int hundred, train;
  size_t record, len;
  const uint8_t *file;
  char *p, *loc;

  if (size < 1)
    return 0;
  hundred = data[0] & 1;
  train = (data[0] >> 1) & 1;
  file = data + 1;
  len = size - 1;
  record = hundred ? 2 + 3 * PIX : 1 + 3 * PIX;

  fuzz_clear ();
  if (hundred) {
    p = fuzz_path (train ? "set/train.bin" : "set/test.bin");
    fuzz_write (p, file, len);
    free (p);
  } else if (train) {
    uint8_t one[1 + 3 * PIX];
    memset (one, 7, sizeof one);
    one[0] = 3;
    p = fuzz_path ("set/data_batch_1.bin");
    fuzz_write (p, file, len);
    free (p);
    for (int b = 2; b <= 5; b++) {
      char name[32];
      snprintf (name, sizeof name, "set/data_batch_%d.bin", b);
      p = fuzz_path (name);
      fuzz_write (p, one, sizeof one);
      free (p);
    }
  } else {
    p = fuzz_path ("set/test_batch.bin");
    fuzz_write (p, file, len);
    free (p);
  }
  loc = fuzz_path ("set");
  ds = simclr_dataset_open (loc, train ? "train" : "test", hundred ?
      SIMCLR_DATASET_CIFAR100 : SIMCLR_DATASET_CIFAR10, &err);
  free (loc);
  if (!ds) {
    FUZZ_CHECK (err.status != SIMCLR_OK && err.message[0] != '\0',
        "open failed without a message");
    return 0;
  }
  {
    int64_t n = simclr_dataset_size (ds), from_input = (int64_t) (len / record);
    uint8_t buf[3 * PIX];
    int64_t probe[3] = { 0, from_input / 2, from_input - 1 };

    FUZZ_CHECK (len % record == 0 && from_input > 0, "a %zu-byte file "
        "opened (record %zu)", len, record);
    FUZZ_CHECK (n == from_input + (!hundred && train ? 4 : 0), "n %lld",
        (long long) n);
    FUZZ_CHECK (simclr_dataset_width (ds) == SIDE
        && simclr_dataset_height (ds) == SIDE
        && simclr_dataset_channels (ds) == 3, "geometry");
    FUZZ_CHECK (simclr_dataset_max_image_bytes (ds) == sizeof buf, "bytes");
    for (int i = 0; i < 3; i++) {
      int64_t k = probe[i];
      const uint8_t *rec = file + (size_t) k * record;
      const uint8_t *planes = rec + (hundred ? 2 : 1);
      int label = -2;
      FUZZ_CHECK (simclr_dataset_get (ds, k, buf, sizeof buf, NULL, NULL,
              &label, &err) == SIMCLR_OK, "get: %s", err.message);
      FUZZ_CHECK (label == (hundred ? rec[1] : rec[0]), "label %d", label);
      FUZZ_CHECK (label >= 0 && label < (hundred ? 100 : 10), "label %d",
          label);
      for (int q = 0; q < PIX; q++)
        for (int c = 0; c < 3; c++)
          FUZZ_CHECK (buf[3 * q + c] == planes[c * PIX + q], "sample %lld "
              "pixel %d channel %d", (long long) k, q, c);
    }
  }
  simclr_dataset_free (ds);
  return 0;
}
