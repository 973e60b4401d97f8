/* make-seeds.c: writes small valid inputs for each fuzz target into
 * DIR/<target>/ (the starting corpus of scripts/fuzz.sh; a few are also
 * committed in tests/fuzz/corpus/ so the replay test always has inputs).
 * Usage: make-seeds DIR
 */
#include <string.h>
#include <sys/stat.h>

#include <turbojpeg.h>
#include <zlib.h>

#include "simclr/checkpoint.h"
#include "simclr/model.h"

#include "fuzz-common.h"

static char *root;

static void
seed (const char *target, const char *name, const void *data, size_t len)
{
  char *d = malloc (strlen (root) + strlen (target) + strlen (name) + 3);
  FUZZ_CHECK (d != NULL, "out of memory");
  sprintf (d, "%s/%s", root, target);
  mkdir (d, 0755);
  sprintf (d, "%s/%s/%s", root, target, name);
  fuzz_write (d, data, len);
  free (d);
}

static size_t
be32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
  return 4;
}

/* gzip of @len bytes into @out (capacity @cap); returns the size. */
static size_t
gzip_bytes (const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
  z_stream z;
  memset (&z, 0, sizeof z);
  FUZZ_CHECK (deflateInit2 (&z, 6, Z_DEFLATED, 15 + 16, 8,
          Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
  z.next_in = (uint8_t *) in;
  z.avail_in = (uInt) len;
  z.next_out = out;
  z.avail_out = (uInt) cap;
  FUZZ_CHECK (deflate (&z, Z_FINISH) == Z_STREAM_END, "deflate");
  deflateEnd (&z);
  return cap - z.avail_out;
}

static void
idx_seeds (void)
{
  /* 3 images of 4x5, labels 0 1 2 */
  uint8_t in[3 + 16 + 60 + 8 + 3], *p = in + 3, gz[512 + 200];
  size_t img_len, lab_len;

  p += be32 (p, 0x803);
  p += be32 (p, 3);
  p += be32 (p, 4);
  p += be32 (p, 5);
  for (int i = 0; i < 60; i++)
    *p++ = (uint8_t) (i * 13);
  img_len = (size_t) (p - in) - 3;
  p += be32 (p, 0x801);
  p += be32 (p, 3);
  for (int i = 0; i < 3; i++)
    *p++ = (uint8_t) i;
  lab_len = (size_t) (p - in) - 3 - img_len;
  in[1] = (uint8_t) (img_len >> 8);
  in[2] = (uint8_t) img_len;
  {
    /* raw, no labels, by path; gzip compressed here (8 | 1, 2, 3) */
    const int list[] = { 0, 4, 16, 20, 9, 10, 11, 27 };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
      char name[32];
      in[0] = (uint8_t) list[i];
      snprintf (name, sizeof name, "flags-%02d", list[i]);
      seed ("idx", name, in, 3 + img_len + lab_len);
    }
  }
  /* gzip streams as the fuzzed bytes (flags 3: both .gz, verbatim) */
  {
    uint8_t g[3 + 2 * 400];
    size_t a = gzip_bytes (in + 3, img_len, gz, sizeof gz);
    size_t b;
    memcpy (g + 3, gz, a);
    b = gzip_bytes (in + 3 + img_len, lab_len, g + 3 + a, sizeof g - 3 - a);
    g[0] = 3;
    g[1] = (uint8_t) (a >> 8);
    g[2] = (uint8_t) a;
    seed ("idx", "gz-verbatim", g, 3 + a + b);
  }
}

static void
cifar_seeds (void)
{
  size_t rec10 = 1 + 3072, rec100 = 2 + 3072;
  uint8_t *b = malloc (1 + 2 * rec100);
  FUZZ_CHECK (b != NULL, "out of memory");
  for (int flags = 0; flags < 4; flags++) {
    size_t rec = (flags & 1) ? rec100 : rec10;
    char name[32];
    b[0] = (uint8_t) flags;
    for (size_t i = 0; i < 2 * rec; i++)
      b[1 + i] = (uint8_t) (i * 31 + i / 1024);
    b[1] = 3;                   /* labels of record 0 (coarse, fine) */
    b[2] = 7;
    b[1 + rec] = 9;
    b[1 + rec + 1] = 1;
    snprintf (name, sizeof name, "two-records-%d", flags);
    seed ("cifar", name, b, 1 + 2 * rec);
  }
  free (b);
}

static void
jpeg_seeds (void)
{
  tjhandle c = tjInitCompress ();
  uint8_t src[20 * 14 * 3];
  const int samps[] = { TJSAMP_444, TJSAMP_420, TJSAMP_GRAY, TJSAMP_422 };

  for (int i = 0; i < (int) sizeof src; i++)
    src[i] = (uint8_t) (i * 5 + (i / 60) * 9);
  for (int k = 0; k < 8; k++) {
    unsigned char *jpeg = NULL;
    unsigned long len = 0;
    uint8_t *in;
    char name[32];
    int flags = TJFLAG_ACCURATEDCT | ((k & 4) ? TJFLAG_PROGRESSIVE : 0);
    FUZZ_CHECK (tjCompress2 (c, src, 20, 0, 14, TJPF_RGB, &jpeg, &len,
            samps[k & 3], 75, flags) == 0, "tjCompress2: %s",
        tjGetErrorStr2 (c));
    in = malloc (len + 3);
    in[0] = (uint8_t) k;
    in[1] = 9;
    in[2] = 33;
    memcpy (in + 3, jpeg, len);
    snprintf (name, sizeof name, "jpeg-%d", k);
    seed ("jpeg-folder", name, in, len + 3);
    /* the truncated one of issue 15 */
    in[0] = (uint8_t) (k ^ 2);
    snprintf (name, sizeof name, "jpeg-%d-third", k);
    seed ("jpeg-folder", name, in, 3 + len / 3);
    free (in);
    tjFree (jpeg);
  }
  tjDestroy (c);
}

/* A tiny model checkpoint (ResNet-18 width 1/16, 8x8 gray, 2-layer head 16
 * wide) for the checkpoint target, and a few plain safetensors files. */
static void
safetensors_seeds (void)
{
  SimclrModelConfig cfg;
  SimclrModel *m;
  SimclrError err = { 0 };
  char *path = fuzz_path ("seed.safetensors");
  FILE *f;
  long size;
  uint8_t *buf;

  simclr_model_config_default (&cfg);
  cfg.width = 0.0625;
  cfg.in_channels = 1;
  cfg.image_size = 8;
  cfg.proj_hidden = 16;
  cfg.proj_dim = 8;
  cfg.max_batch = 2;
  m = simclr_model_new (&cfg, 1, &err);
  FUZZ_CHECK (m != NULL, "%s", err.message);
  FUZZ_CHECK (simclr_checkpoint_save_model (m, path, &err) == SIMCLR_OK,
      "%s", err.message);
  simclr_model_free (m);
  f = fopen (path, "rb");
  fseek (f, 0, SEEK_END);
  size = ftell (f);
  fseek (f, 0, SEEK_SET);
  buf = malloc ((size_t) size);
  FUZZ_CHECK (fread (buf, 1, (size_t) size, f) == (size_t) size, "read");
  fclose (f);
  seed ("checkpoint", "resnet18-w0.0625-8x8", buf, (size_t) size);
  /* its header alone, for the JSON target */
  {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
      hlen = (hlen << 8) | buf[i];
    seed ("header-json", "model-header", buf + 8, (size_t) hlen);
  }
  free (buf);

  {
    SimclrSafetensorsWriter *w = simclr_safetensors_writer_new ();
    float a[6] = { 1, -2, 3.5f, 0, 1e-30f, 7 };
    int64_t sa[2] = { 2, 3 }, sb[1] = { 3 }, sc[1] = { 0 };
    int64_t b[3] = { 1, 2, 3 };
    uint8_t u[4] = { 1, 2, 3, 4 };
    simclr_safetensors_writer_add (w, "a", SIMCLR_DTYPE_F32, 2, sa, a, &err);
    simclr_safetensors_writer_add (w, "b", SIMCLR_DTYPE_I64, 1, sb, b, &err);
    simclr_safetensors_writer_add (w, "empty", SIMCLR_DTYPE_F32, 1, sc, a,
        &err);
    simclr_safetensors_writer_add (w, "scalar.u8", SIMCLR_DTYPE_U8, 0, NULL,
        u, &err);
    simclr_safetensors_writer_set_metadata (w, "step", "12", &err);
    simclr_safetensors_writer_set_metadata (w, "arch", "resnet18", &err);
    FUZZ_CHECK (simclr_safetensors_writer_write (w, path, &err) == SIMCLR_OK,
        "%s", err.message);
    simclr_safetensors_writer_free (w);
    f = fopen (path, "rb");
    fseek (f, 0, SEEK_END);
    size = ftell (f);
    fseek (f, 0, SEEK_SET);
    buf = malloc ((size_t) size);
    FUZZ_CHECK (fread (buf, 1, (size_t) size, f) == (size_t) size, "read");
    fclose (f);
    seed ("safetensors", "four-tensors", buf, (size_t) size);
    {
      uint64_t hlen = 0;
      for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
      seed ("header-json", "four-tensors-header", buf + 8, (size_t) hlen);
    }
    free (buf);
  }
  {
    const char *j = "{\"__metadata__\":{\"k\":\"v\"},\"t\":{\"dtype\":\"F32\","
        "\"shape\":[4,4],\"data_offsets\":[64,128]},\"u\":{\"dtype\":\"U8\","
        "\"shape\":[],\"data_offsets\":[0,1]}}";
    seed ("header-json", "hand-written", j, strlen (j));
  }
  free (path);
}

int
main (int argc, char **argv)
{
  FUZZ_CHECK (argc == 2, "usage: %s DIR", argv[0]);
  root = argv[1];
  mkdir (root, 0755);
  idx_seeds ();
  cifar_seeds ();
  jpeg_seeds ();
  safetensors_seeds ();
  return 0;
}
