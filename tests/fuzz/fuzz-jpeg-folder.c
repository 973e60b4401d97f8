/* fuzz-jpeg-folder.c: the JPEG-folder reader.
 *
 * Input: [flags][tw][th] then the bytes of one file named *.jpg, placed in a
 * class folder beside a valid 16x12 JPEG made here. flags bit 0: resize to
 * (tw % 48 + 1) x (th % 48 + 1); bit 1: the fuzzed file sorts after the
 * valid one (else before); bit 2: it sits in a second class folder.
 * Checks: the folder opens (it holds a valid image), the valid image decodes
 * to exactly the pixels it gives alone, whatever the fuzzed file did to the
 * decoder (issue 15: a broken file emptied the whole set), the fuzzed file
 * gives OK with a size in range or SIMCLR_ERROR_FORMAT naming it, and
 * max_image_bytes covers every image get() returns.
 */
#include <string.h>

#include <turbojpeg.h>

#include "simclr/dataset.h"

#include "fuzz-common.h"

#define VW 16
#define VH 12

static unsigned char *valid_jpeg;
static unsigned long valid_len;

static void
make_valid (void)
{
  tjhandle c;
  uint8_t src[VW * VH * 3];

  if (valid_jpeg)
    return;
  for (int i = 0; i < VW * VH * 3; i++)
    src[i] = (uint8_t) (i * 7 + i / 5);
  c = tjInitCompress ();
  FUZZ_CHECK (c && tjCompress2 (c, src, VW, 0, VH, TJPF_RGB, &valid_jpeg,
          &valid_len, TJSAMP_420, 90, 0) == 0, "tjCompress2");
  tjDestroy (c);
}

/* Pixels of the valid image alone (optionally resized): a fresh data set
 * holding only it. Cached per target size (opening costs as much as the
 * rest of an execution). */
static size_t
reference_uncached (int tw, int th, uint8_t *out, size_t cap);

static size_t
reference (int tw, int th, uint8_t *out, size_t cap)
{
  static uint8_t *cache[49][49];
  static size_t cache_len[49][49];
  uint8_t **slot = &cache[tw][th];

  if (!*slot) {
    *slot = malloc (cap);
    FUZZ_CHECK (*slot != NULL, "out of memory");
    cache_len[tw][th] = reference_uncached (tw, th, *slot, cap);
  }
  memcpy (out, *slot, cache_len[tw][th]);
  return cache_len[tw][th];
}

static size_t
reference_uncached (int tw, int th, uint8_t *out, size_t cap)
{
  SimclrError err = { 0 };
  char *p = fuzz_path ("ref/only/m.jpg"), *loc = fuzz_path ("ref");
  SimclrDataset *ds;
  int w, h;

  fuzz_write (p, valid_jpeg, valid_len);
  ds = simclr_dataset_open (loc, NULL, SIMCLR_DATASET_JPEG_FOLDER, &err);
  FUZZ_CHECK (ds != NULL, "reference: %s", err.message);
  if (tw)
    FUZZ_CHECK (simclr_dataset_set_target_size (ds, tw, th, &err) ==
        SIMCLR_OK, "%s", err.message);
  FUZZ_CHECK (simclr_dataset_get (ds, 0, out, cap, &w, &h, NULL, &err) ==
      SIMCLR_OK, "reference get: %s", err.message);
  simclr_dataset_free (ds);
  free (p);
  free (loc);
  return (size_t) w * h * 3;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static uint8_t ref[48 * 48 * 3], buf[48 * 48 * 3];
  SimclrError err = { 0 };
  SimclrDataset *ds;
  int resize, after, other_class, tw = 0, th = 0;
  size_t ref_bytes;
  char *p, *loc;
  int64_t valid_index, fuzz_index, n;
  const char *fuzz_name;

  if (size < 3)
    return 0;
  make_valid ();
  resize = data[0] & 1;
  after = (data[0] >> 1) & 1;
  other_class = (data[0] >> 2) & 1;
  if (resize) {
    tw = data[1] % 48 + 1;
    th = data[2] % 48 + 1;
  }
  fuzz_clear ();
  ref_bytes = reference (tw, th, ref, sizeof ref);

  p = fuzz_path ("set/b/m.jpg");
  fuzz_write (p, valid_jpeg, valid_len);
  free (p);
  fuzz_name = other_class ? (after ? "set/c/z.jpg" : "set/a/a.jpg") :
      (after ? "set/b/z.jpg" : "set/b/a.jpg");
  p = fuzz_path (fuzz_name);
  fuzz_write (p, data + 3, size - 3);
  loc = fuzz_path ("set");
  ds = simclr_dataset_open (loc, NULL, SIMCLR_DATASET_JPEG_FOLDER, &err);
  FUZZ_CHECK (ds != NULL, "a folder with a valid JPEG did not open: %s",
      err.message);
  n = simclr_dataset_size (ds);
  FUZZ_CHECK (n == 2, "%lld images listed", (long long) n);
  valid_index = after ? 0 : 1;
  fuzz_index = 1 - valid_index;
  FUZZ_CHECK (strcmp (simclr_dataset_sample_path (ds, fuzz_index), p) == 0,
      "order");
  FUZZ_CHECK (simclr_dataset_n_classes (ds) == (other_class ? 2 : 1),
      "classes");
  if (resize)
    FUZZ_CHECK (simclr_dataset_set_target_size (ds, tw, th, &err) ==
        SIMCLR_OK, "%s", err.message);

  /* Both orders of access: the fuzzed file first, then the valid one, then
   * the fuzzed one again. */
  for (int pass = 0; pass < 3; pass++) {
    int64_t k = pass == 1 ? valid_index : fuzz_index;
    size_t cap = simclr_dataset_max_image_bytes (ds);
    uint8_t *img = malloc (cap ? cap : 1);
    int w = 0, h = 0, label = -1;
    SimclrStatus st;

    FUZZ_CHECK (img != NULL, "out of memory (%zu bytes)", cap);
    FUZZ_CHECK (cap >= ref_bytes, "max bytes %zu below the valid image's %zu",
        cap, ref_bytes);
    st = simclr_dataset_get (ds, k, img, cap, &w, &h, &label, &err);
    if (k == valid_index) {
      FUZZ_CHECK (st == SIMCLR_OK, "the valid JPEG failed after the fuzzed "
          "one: %s", err.message);
      FUZZ_CHECK ((size_t) w * h * 3 == ref_bytes, "valid image %dx%d", w, h);
      FUZZ_CHECK (memcmp (img, ref, ref_bytes) == 0, "the valid JPEG's "
          "pixels changed after the fuzzed one");
      FUZZ_CHECK (label == (other_class && !after ? 1 : 0), "label %d",
          label);
    } else if (st == SIMCLR_OK) {
      FUZZ_CHECK (w >= 1 && h >= 1 && (size_t) w * h * 3 <= cap, "fuzzed "
          "image %dx%d in a %zu-byte buffer", w, h, cap);
      if (resize)
        FUZZ_CHECK (w == tw && h == th, "resized to %dx%d", w, h);
      memcpy (buf, img, 1);
    } else {
      FUZZ_CHECK (st == SIMCLR_ERROR_FORMAT || st == SIMCLR_ERROR_NO_MEMORY,
          "fuzzed image: status %d (%s)", (int) st, err.message);
      FUZZ_CHECK (strstr (err.message, fuzz_name + 6) != NULL, "message "
          "\"%s\" does not name the file", err.message);
    }
    free (img);
  }
  simclr_dataset_free (ds);
  free (p);
  free (loc);
  return 0;
}
