/* fuzz-header-json.c: the JSON header of safetensors files (tensor table
 * and "__metadata__"), fuzzed as text. Input: the header's JSON; the file
 * is the 8-byte length, the input, then 4096 bytes of tensor data (a
 * counting pattern), so offsets in the JSON can point anywhere in it. */
#include "fuzz-safetensors-check.h"

#define DATA_BYTES 4096

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  SimclrError err = { 0 };
  char *p;
  SimclrSafetensors *st;
  uint8_t *file;
  size_t len = 8 + size + DATA_BYTES;

  fuzz_clear ();
  file = malloc (len);
  FUZZ_CHECK (file != NULL, "out of memory");
  for (int i = 0; i < 8; i++)
    file[i] = (uint8_t) ((uint64_t) size >> (8 * i));
  memcpy (file + 8, data, size);
  for (size_t i = 0; i < DATA_BYTES; i++)
    file[8 + size + i] = (uint8_t) i;
  p = fuzz_path ("in.safetensors");
  fuzz_write (p, file, len);
  st = simclr_safetensors_open (p, &err);
  if (!st) {
    FUZZ_CHECK (err.status != SIMCLR_OK && err.message[0] != '\0',
        "open failed without a message");
  } else {
    check_safetensors (st, len);
    simclr_safetensors_free (st);
  }
  free (file);
  free (p);
  return 0;
}
