/* replay-main.c: runs a fuzz target's LLVMFuzzerTestOneInput on every file
 * named on the command line (a folder: every file in it, sorted), once each,
 * without libFuzzer. The default test suite builds each target with this
 * main to replay tests/fuzz/corpus/<target>/ (regression inputs: every crash
 * or hang the fuzzer found, plus the seeds), so no clang is needed there.
 * A crash or a failed FUZZ_CHECK aborts; success prints one TAP line per
 * folder and exits 0. An empty corpus is a failure (nothing was checked).
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fuzz-common.h"

static int
compare_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
run_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  long size;
  uint8_t *buf;

  FUZZ_CHECK (f != NULL, "cannot open %s: %s", path, strerror (errno));
  FUZZ_CHECK (fseek (f, 0, SEEK_END) == 0 && (size = ftell (f)) >= 0
      && fseek (f, 0, SEEK_SET) == 0, "cannot seek %s", path);
  buf = malloc (size > 0 ? (size_t) size : 1);
  FUZZ_CHECK (buf != NULL, "out of memory");
  FUZZ_CHECK (size == 0 || fread (buf, 1, (size_t) size, f) == (size_t) size,
      "cannot read %s", path);
  fclose (f);
  fprintf (stderr, "# %s (%ld bytes)\n", path, size);
  LLVMFuzzerTestOneInput (buf, (size_t) size);
  free (buf);
}

int
main (int argc, char **argv)
{
  int test = 0;

  for (int a = 1; a < argc; a++) {
    struct stat st;
    FUZZ_CHECK (stat (argv[a], &st) == 0, "%s: %s", argv[a], strerror (errno));
    if (S_ISDIR (st.st_mode)) {
      DIR *d = opendir (argv[a]);
      struct dirent *e;
      char **names = NULL;
      size_t n = 0, cap = 0;
      struct timespec t0, t1;

      FUZZ_CHECK (d != NULL, "%s: %s", argv[a], strerror (errno));
      while ((e = readdir (d))) {
        if (e->d_name[0] == '.')
          continue;
        if (n == cap) {
          cap = cap ? 2 * cap : 64;
          names = realloc (names, cap * sizeof *names);
          FUZZ_CHECK (names != NULL, "out of memory");
        }
        names[n] = malloc (strlen (argv[a]) + strlen (e->d_name) + 2);
        FUZZ_CHECK (names[n] != NULL, "out of memory");
        sprintf (names[n], "%s/%s", argv[a], e->d_name);
        n++;
      }
      closedir (d);
      FUZZ_CHECK (n > 0, "%s holds no input: nothing replayed", argv[a]);
      qsort (names, n, sizeof *names, compare_names);
      clock_gettime (CLOCK_MONOTONIC, &t0);
      for (size_t i = 0; i < n; i++) {
        run_file (names[i]);
        free (names[i]);
      }
      clock_gettime (CLOCK_MONOTONIC, &t1);
      free (names);
      printf ("ok %d - %s: %zu inputs replayed in %.2f s\n", ++test, argv[a],
          n, (double) (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec -
              t0.tv_nsec));
    } else {
      run_file (argv[a]);
      printf ("ok %d - %s\n", ++test, argv[a]);
    }
  }
  FUZZ_CHECK (test > 0, "usage: %s CORPUS_DIR|FILE...", argv[0]);
  printf ("1..%d\n", test);
  return 0;
}
