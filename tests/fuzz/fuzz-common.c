/* fuzz-common.c: see fuzz-common.h. */
#include "fuzz-common.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

static char *dir;

static void
remove_tree (const char *path, int keep_top)
{
  DIR *d = opendir (path);
  struct dirent *e;

  if (d) {
    while ((e = readdir (d))) {
      char *p;
      struct stat st;
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      p = malloc (strlen (path) + strlen (e->d_name) + 2);
      FUZZ_CHECK (p != NULL, "out of memory");
      sprintf (p, "%s/%s", path, e->d_name);
      if (lstat (p, &st) == 0 && S_ISDIR (st.st_mode))
        remove_tree (p, 0);
      else
        unlink (p);
      free (p);
    }
    closedir (d);
  }
  if (!keep_top)
    rmdir (path);
}

static void
cleanup (void)
{
  if (dir)
    remove_tree (dir, 0);
  free (dir);
  dir = NULL;
}

const char *
fuzz_dir (void)
{
  if (!dir) {
    const char *base = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    dir = malloc (strlen (base) + 32);
    FUZZ_CHECK (dir != NULL, "out of memory");
    sprintf (dir, "%s/simclr-fuzz-XXXXXX", base);
    FUZZ_CHECK (mkdtemp (dir) != NULL, "mkdtemp: %s", strerror (errno));
    atexit (cleanup);
  }
  return dir;
}

char *
fuzz_path (const char *name)
{
  const char *d = fuzz_dir ();
  char *p = malloc (strlen (d) + strlen (name) + 2);
  FUZZ_CHECK (p != NULL, "out of memory");
  sprintf (p, "%s/%s", d, name);
  /* parent folders */
  for (char *s = p + strlen (d) + 1; *s; s++) {
    if (*s == '/') {
      *s = '\0';
      mkdir (p, 0755);
      *s = '/';
    }
  }
  return p;
}

void
fuzz_write (const char *path, const void *data, size_t len)
{
  FILE *f = fopen (path, "wb");
  FUZZ_CHECK (f != NULL, "cannot write %s: %s", path, strerror (errno));
  FUZZ_CHECK (len == 0 || fwrite (data, 1, len, f) == len, "short write %s",
      path);
  FUZZ_CHECK (fclose (f) == 0, "close %s", path);
}

void
fuzz_write_gz (const char *path, const void *data, size_t len)
{
  gzFile gz = gzopen (path, "wb1");
  FUZZ_CHECK (gz != NULL, "cannot write %s", path);
  FUZZ_CHECK (len == 0 || gzwrite (gz, data, (unsigned) len) == (int) len,
      "gzwrite %s", path);
  FUZZ_CHECK (gzclose (gz) == Z_OK, "gzclose %s", path);
}

void
fuzz_clear (void)
{
  remove_tree (fuzz_dir (), 1);
}
