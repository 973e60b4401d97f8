/* augment-helper.c: command-line access to the augmentation core for
 * augment-torchvision.py, which compares it with torchvision. Not a tool for
 * users: raw files, no validation beyond what the core does.
 *
 *   augment-helper draw SEED SAMPLE VIEW W H C SIZE
 *     prints the drawn parameters as one PARAMS line.
 *   augment-helper apply CASEFILE
 *     each line: IN OUT W H C SIZE PARAMS; reads IN (H rows of W*C bytes),
 *     writes OUT (SIZE rows of SIZE*C bytes).
 *
 * PARAMS = cx cy cw ch flip jitter brightness contrast saturation hue
 *          o0 o1 o2 o3 grayscale blur sigma kernel solarize
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/augment.h"

static void
print_params (const SimclrAugmentParams * p)
{
  printf ("%d %d %d %d %d %d %.17g %.17g %.17g %.17g %d %d %d %d %d %d %.17g "
      "%d %d\n", p->crop_x, p->crop_y, p->crop_w, p->crop_h, p->flip,
      p->jitter, p->brightness, p->contrast, p->saturation, p->hue,
      (int) p->order[0], (int) p->order[1], (int) p->order[2],
      (int) p->order[3], p->grayscale, p->blur, p->blur_sigma, p->blur_kernel,
      p->solarize);
}

static int
do_draw (char **argv)
{
  SimclrAugmentConfig cfg;
  SimclrAugmentParams p;
  simclr_augment_config_default (&cfg);
  cfg.size = atoi (argv[6]);
  simclr_augment_draw (&cfg, strtoull (argv[0], NULL, 10),
      strtoull (argv[1], NULL, 10), atoi (argv[2]), atoi (argv[3]),
      atoi (argv[4]), atoi (argv[5]), &p);
  print_params (&p);
  return 0;
}

static int
do_apply (const char *casefile)
{
  FILE *f = fopen (casefile, "r");
  if (f == NULL) {
    perror (casefile);
    return 1;
  }
  char in[1024], out[1024];
  int w, h, C, size, o[4];
  SimclrAugmentParams p;
  int line = 0;
  while (fscanf (f, "%1023s %1023s %d %d %d %d %d %d %d %d %d %d %lf %lf %lf "
          "%lf %d %d %d %d %d %d %lf %d %d", in, out, &w, &h, &C, &size,
          &p.crop_x, &p.crop_y, &p.crop_w, &p.crop_h, &p.flip, &p.jitter,
          &p.brightness, &p.contrast, &p.saturation, &p.hue, &o[0], &o[1],
          &o[2], &o[3], &p.grayscale, &p.blur, &p.blur_sigma, &p.blur_kernel,
          &p.solarize) == 25) {
    line++;
    for (int i = 0; i < 4; i++)
      p.order[i] = (SimclrJitterOp) o[i];
    size_t n = (size_t) w * h * C, m = (size_t) size * size * C;
    uint8_t *src = malloc (n), *dst = malloc (m);
    FILE *fi = fopen (in, "rb");
    if (fi == NULL || fread (src, 1, n, fi) != n) {
      fprintf (stderr, "line %d: cannot read %zu bytes from %s\n", line, n,
          in);
      return 1;
    }
    fclose (fi);

    SimclrAugmentConfig cfg;
    SimclrError err = { 0 };
    simclr_augment_config_default (&cfg);
    cfg.size = size;
    SimclrAugmenter *a = simclr_augmenter_new (&cfg, &err);
    if (a == NULL || simclr_augmenter_apply (a, &p, src, w, h, w * C, C, dst,
            size * C, &err) != SIMCLR_OK) {
      fprintf (stderr, "line %d: %s\n", line, err.message);
      return 1;
    }
    simclr_augmenter_free (a);
    FILE *fo = fopen (out, "wb");
    if (fo == NULL || fwrite (dst, 1, m, fo) != m || fclose (fo) != 0) {
      fprintf (stderr, "line %d: cannot write %s\n", line, out);
      return 1;
    }
    free (src);
    free (dst);
  }
  fclose (f);
  fprintf (stderr, "augment-helper: %d cases\n", line);
  return line > 0 ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if (argc == 9 && strcmp (argv[1], "draw") == 0)
    return do_draw (argv + 2);
  if (argc == 3 && strcmp (argv[1], "apply") == 0)
    return do_apply (argv[2]);
  fprintf (stderr, "usage: %s draw SEED SAMPLE VIEW W H C SIZE\n"
      "       %s apply CASEFILE\n", argv[0], argv[0]);
  return 2;
}
