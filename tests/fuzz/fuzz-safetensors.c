/* fuzz-safetensors.c: the safetensors reader (and, on what it accepts, the
 * writer's round trip). Input: the whole file. See fuzz-safetensors-check.h
 * for the checks. */
#include "fuzz-safetensors-check.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  SimclrError err = { 0 };
  char *p;
  SimclrSafetensors *st;

  fuzz_clear ();
  p = fuzz_path ("in.safetensors");
  fuzz_write (p, data, size);
  st = simclr_safetensors_open (p, &err);
  if (!st) {
    FUZZ_CHECK (err.status != SIMCLR_OK && err.message[0] != '\0',
        "open failed without a message");
    FUZZ_CHECK (strstr (err.message, p) != NULL, "message \"%s\" does not "
        "name the file", err.message);
  } else {
    check_safetensors (st, size);
    simclr_safetensors_free (st);
  }
  free (p);
  return 0;
}
