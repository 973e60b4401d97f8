/* fuzz-safetensors-check.h: what a safetensors file that opened must
 * satisfy, shared by fuzz-safetensors.c and fuzz-header-json.c. Every
 * tensor's bytes lie inside the file's data (read here, so ASan sees any
 * overrun), aligned to the element size, numel the product of the shape;
 * lookups by name agree; and writing the tensors and metadata back and
 * reading that file gives the same tensors (the writer round trip). */
#pragma once

#include <string.h>

#include "simclr/checkpoint.h"

#include "fuzz-common.h"

static void
check_safetensors (SimclrSafetensors *st, size_t file_size)
{
  int n = simclr_safetensors_n_tensors (st);
  size_t total = 0;
  SimclrSafetensorsWriter *w = simclr_safetensors_writer_new ();
  SimclrError err = { 0 };
  char *again = fuzz_path ("again.safetensors");
  SimclrSafetensors *st2;
  static const char *keys[] = { "arch", "format", "format_version", "width",
    "step", "image_size", "__metadata__", "" };

  FUZZ_CHECK (n >= 0, "n %d", n);
  for (int i = 0; i < n; i++) {
    const SimclrSafetensorsTensor *t = simclr_safetensors_tensor (st, i);
    size_t es = simclr_dtype_size (t->dtype), numel = 1, bytes;
    volatile uint8_t sum = 0;

    FUZZ_CHECK (es > 0, "dtype %d", (int) t->dtype);
    FUZZ_CHECK (t->ndim >= 0 && t->ndim <= SIMCLR_SAFETENSORS_MAX_DIMS,
        "ndim %d", t->ndim);
    for (int d = 0; d < t->ndim; d++) {
      FUZZ_CHECK (t->shape[d] >= 0, "shape");
      numel *= (size_t) t->shape[d];
    }
    FUZZ_CHECK (numel == t->numel, "numel %zu vs %zu", numel, t->numel);
    bytes = numel * es;
    FUZZ_CHECK (bytes <= file_size, "tensor \"%s\" of %zu bytes in a "
        "%zu-byte file", t->name, bytes, file_size);
    total += bytes;
    FUZZ_CHECK (bytes == 0 || ((uintptr_t) t->data) % es == 0, "misaligned");
    for (size_t b = 0; b < bytes; b++)
      sum += ((const uint8_t *) t->data)[b];
    (void) sum;
    FUZZ_CHECK (simclr_safetensors_find (st, t->name) != NULL, "find \"%s\"",
        t->name);
    FUZZ_CHECK (simclr_safetensors_writer_add (w, t->name, t->dtype, t->ndim,
            t->shape, t->data, &err) == SIMCLR_OK || t->name[0] == '\0',
        "writer refused tensor \"%s\": %s", t->name, err.message);
  }
  /* spans do not overlap, so their sum fits in the file */
  FUZZ_CHECK (total <= file_size, "%zu tensor bytes in a %zu-byte file",
      total, file_size);
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    const char *v = simclr_safetensors_metadata (st, keys[k]);
    if (v) {
      volatile size_t l = strlen (v);
      (void) l;
      simclr_safetensors_writer_set_metadata (w, keys[k], v, &err);
    }
  }
  FUZZ_CHECK (simclr_safetensors_find (st, "no such tensor \x01") == NULL,
      "find");

  if (simclr_safetensors_writer_write (w, again, &err) == SIMCLR_OK) {
    st2 = simclr_safetensors_open (again, &err);
    FUZZ_CHECK (st2 != NULL, "our own file does not open: %s", err.message);
    for (int i = 0; i < simclr_safetensors_n_tensors (st2); i++) {
      const SimclrSafetensorsTensor *b = simclr_safetensors_tensor (st2, i);
      const SimclrSafetensorsTensor *a = simclr_safetensors_find (st,
          b->name);
      FUZZ_CHECK (a != NULL, "round trip invented \"%s\"", b->name);
      FUZZ_CHECK (a->dtype == b->dtype && a->ndim == b->ndim
          && a->numel == b->numel, "round trip changed \"%s\"", b->name);
      FUZZ_CHECK (memcmp (a->shape, b->shape, sizeof a->shape[0] * a->ndim)
          == 0, "shape of \"%s\"", b->name);
      FUZZ_CHECK (a->numel == 0 || memcmp (a->data, b->data,
              a->numel * simclr_dtype_size (a->dtype)) == 0,
          "bytes of \"%s\"", b->name);
    }
    simclr_safetensors_free (st2);
  }
  simclr_safetensors_writer_free (w);
  free (again);
}
