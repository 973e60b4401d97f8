/* fuzz-common.h: shared helpers of the fuzz targets (tests/fuzz/fuzz-*.c).
 *
 * Each target defines LLVMFuzzerTestOneInput. Built with clang and
 * -fsanitize=fuzzer it is a libFuzzer program (scripts/fuzz.sh); built with
 * replay-main.c by any compiler it replays the files of a corpus, which is
 * how the default test suite runs every regression input (tests/fuzz/corpus/
 * <target>/). The readers take paths, so inputs are written to files in a
 * private temporary folder (under /dev/shm when it exists).
 *
 * A target checks what the reader promises beyond "no crash" (sizes that
 * agree, bytes inside the buffers, a valid file still readable after a bad
 * one) and calls FUZZ_CHECK, which aborts with a message, so a broken promise
 * is a crash that libFuzzer saves and the replay test reports.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...) do { \
    if (!(cond)) { \
      fprintf (stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf (stderr, __VA_ARGS__); \
      fputc ('\n', stderr); \
      abort (); \
    } \
  } while (0)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The target's private folder (created once, removed at exit). */
const char *fuzz_dir (void);

/* "<fuzz_dir>/<name>" (static buffer per call site is not enough: returns a
 * malloc'd string, free it). Creates the parent folders of @name. */
char *fuzz_path (const char *name);

/* Writes @len bytes to @path (replacing it); aborts if the disk fails. */
void fuzz_write (const char *path, const void *data, size_t len);

/* Removes every file and folder below fuzz_dir (not the folder itself). */
void fuzz_clear (void);

/* Writes @data gzip-compressed (zlib's gzwrite) to @path. */
void fuzz_write_gz (const char *path, const void *data, size_t len);
