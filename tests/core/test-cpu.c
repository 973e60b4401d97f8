/* test-cpu.c: CPU detection and the kernel table (core/cpu.c).
 *
 * - SIMCLR_CPU parsing: every level name, case, unset and empty values, a
 *   level above the CPU's and an unknown word (both refused with a message
 *   naming the value, the CPU's best and the level used instead).
 * - The detected levels are consistent: the level in use is at most the
 *   best, the tables exist exactly up to the best, each lists its sets best
 *   first and never a set above its level, and SIMCLR_CPU (when this
 *   process has it) is honoured or reported.
 * - The direct convolution kernels are really picked where a set serves a
 *   shape, so the per-level runs of test-layers test what they claim.
 */
#include <string.h>
#include <stdlib.h>
#include <glib.h>

#include "cpu-private.h"

static void
test_parse (void)
{
  char msg[256];
  static const struct {
    const char *value;
    SimclrCpuLevel best, want;
    gboolean honoured;
  } cases[] = {
    {NULL, SIMCLR_CPU_AVX512, SIMCLR_CPU_AVX512, TRUE},
    {"", SIMCLR_CPU_AVX2, SIMCLR_CPU_AVX2, TRUE},
    {"generic", SIMCLR_CPU_AVX512, SIMCLR_CPU_GENERIC, TRUE},
    {"avx2", SIMCLR_CPU_AVX512, SIMCLR_CPU_AVX2, TRUE},
    {"AVX2", SIMCLR_CPU_AVX2, SIMCLR_CPU_AVX2, TRUE},
    {"avx512", SIMCLR_CPU_AVX512, SIMCLR_CPU_AVX512, TRUE},
    {"generic", SIMCLR_CPU_GENERIC, SIMCLR_CPU_GENERIC, TRUE},
    /* never above the CPU */
    {"avx512", SIMCLR_CPU_AVX2, SIMCLR_CPU_AVX2, FALSE},
    {"avx2", SIMCLR_CPU_GENERIC, SIMCLR_CPU_GENERIC, FALSE},
    /* unknown words: the CPU's best, with a message */
    {"sse9", SIMCLR_CPU_AVX2, SIMCLR_CPU_AVX2, FALSE},
    {"avx512 ", SIMCLR_CPU_AVX512, SIMCLR_CPU_AVX512, FALSE},
    {"%s%s%n", SIMCLR_CPU_GENERIC, SIMCLR_CPU_GENERIC, FALSE},
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++) {
    memset (msg, 'x', sizeof (msg));
    SimclrCpuLevel got = simclr_cpu_parse_level (cases[i].value,
        cases[i].best, msg, sizeof (msg));
    g_test_message ("SIMCLR_CPU=%s best %s -> %s \"%s\"",
        cases[i].value ? cases[i].value : "(unset)",
        simclr_cpu_level_name (cases[i].best), simclr_cpu_level_name (got),
        msg);
    g_assert_cmpint (got, ==, cases[i].want);
    if (cases[i].honoured) {
      g_assert_cmpstr (msg, ==, "");
    } else {
      g_assert_nonnull (strstr (msg, cases[i].value));
      g_assert_nonnull (strstr (msg,
              simclr_cpu_level_name (cases[i].best)));
    }
  }
  /* A long value is cut, never overflows the message. */
  char long_value[1000];
  memset (long_value, 'a', sizeof (long_value) - 1);
  long_value[sizeof (long_value) - 1] = '\0';
  char small[40];
  g_assert_cmpint (simclr_cpu_parse_level (long_value, SIMCLR_CPU_AVX2, small,
          sizeof (small)), ==, SIMCLR_CPU_AVX2);
  g_assert_cmpuint (strlen (small), ==, sizeof (small) - 1);
}

/* SIMCLR_WINOGRAD: the known routings, and an unknown value named in the
 * message (the default used). */
static void
test_parse_winograd (void)
{
  const struct { const char *value; int want; } ok[] = {
    {NULL, 2}, {"", 2}, {"f43", 2}, {"F43", 2}, {"f23", 1}, {"0", 0},
    {"off", 0}, {"OFF", 0},
  };
  char msg[SIMCLR_ERROR_MESSAGE_SIZE];
  for (size_t i = 0; i < G_N_ELEMENTS (ok); i++) {
    msg[0] = 'x';
    msg[1] = '\0';
    g_assert_cmpint (simclr_cpu_parse_winograd (ok[i].value, msg,
            sizeof (msg)), ==, ok[i].want);
    g_assert_cmpstr (msg, ==, "x");
  }
  g_assert_cmpint (simclr_cpu_parse_winograd ("f42", msg, sizeof (msg)), ==,
      2);
  g_assert_nonnull (strstr (msg, "SIMCLR_WINOGRAD=f42"));
  g_assert_nonnull (strstr (msg, "using f43"));
  g_assert_cmpint (simclr_cpu_parse_winograd ("1", NULL, 0), ==, 2);
}

static void
test_names (void)
{
  g_assert_cmpstr (simclr_cpu_level_name (SIMCLR_CPU_GENERIC), ==, "generic");
  g_assert_cmpstr (simclr_cpu_level_name (SIMCLR_CPU_AVX2), ==, "avx2");
  g_assert_cmpstr (simclr_cpu_level_name (SIMCLR_CPU_AVX512), ==, "avx512");
  g_assert_cmpstr (simclr_cpu_level_name (SIMCLR_CPU_N_LEVELS), ==, "?");
  g_assert_cmpstr (simclr_cpu_level_name ((SimclrCpuLevel) - 1), ==, "?");
}

static void
test_detected (void)
{
  SimclrCpuLevel best = simclr_cpu_best_level (), level = simclr_cpu_level ();
  g_test_message ("%s", simclr_cpu_describe ());
  g_assert_cmpint (level, <=, best);
  g_assert_true (simclr_cpu_kernels () == simclr_cpu_kernels_at (level));
  for (int l = 0; l < SIMCLR_CPU_N_LEVELS; l++) {
    const SimclrKernels *k = simclr_cpu_kernels_at ((SimclrCpuLevel) l);
    if (l > (int) best) {
      g_assert_null (k);
      continue;
    }
    g_assert_nonnull (k);
    g_assert_cmpint (k->level, ==, l);
    g_assert_nonnull (k->set[0]);
    for (int i = 0; k->set[i]; i++) {
      g_assert_cmpint (k->set[i]->level, <=, l);
      if (i > 0)
        g_assert_cmpint (k->set[i]->level, <, k->set[i - 1]->level);
    }
  }
  /* bf16 only where AVX-512 is in use */
  if (level < SIMCLR_CPU_AVX512)
    g_assert_false (simclr_cpu_has (SIMCLR_CPU_FEATURE_AVX512_BF16));

  SimclrError err = { 0 };
  const char *env = g_getenv ("SIMCLR_CPU");
  SimclrStatus st = simclr_cpu_check_env (&err);
  char msg[SIMCLR_ERROR_MESSAGE_SIZE];
  SimclrCpuLevel want = simclr_cpu_parse_level (env, best, msg, sizeof (msg));
  g_assert_cmpint (level, ==, want);
  if (msg[0]) {
    g_assert_cmpint (st, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_cmpstr (err.message, ==, msg);
  } else {
    g_assert_cmpint (st, ==, SIMCLR_OK);
  }
}

/* Per level: the kernel each pass of a few shapes takes. */
static void
test_conv_paths (void)
{
  SimclrConvShape thin = { .B = 4, .H = 8, .W = 8, .C = 16, .OC = 16,
    .KH = 3, .KW = 3, .stride = 1, .pad = 1, .threads = 1 };
  SimclrConvShape strided = thin, pointwise = thin;
  strided.stride = 2;
  pointwise.KH = pointwise.KW = 1;
  pointwise.pad = 0;
  g_assert_cmpint (simclr_conv2d_shape_init (&thin), ==, 0);
  g_assert_cmpint (simclr_conv2d_shape_init (&strided), ==, 0);
  g_assert_cmpint (simclr_conv2d_shape_init (&pointwise), ==, 0);
  for (int l = 0; l <= (int) simclr_cpu_best_level (); l++) {
    thin.kernels = strided.kernels = pointwise.kernels =
        simclr_cpu_kernels_at ((SimclrCpuLevel) l);
    const char *fwd = simclr_conv2d_kernel_name (&thin, SIMCLR_CONV_FORWARD);
    const char *dw = simclr_conv2d_kernel_name (&thin, SIMCLR_CONV_DWEIGHT);
    const char *dx = simclr_conv2d_kernel_name (&strided, SIMCLR_CONV_DINPUT);
    g_test_message ("level %s: 3x3 c16 oc16 forward %s, dweight %s, "
        "stride-2 dinput %s", simclr_cpu_level_name ((SimclrCpuLevel) l),
        fwd, dw, dx);
    g_assert_cmpstr (simclr_conv2d_kernel_name (&pointwise,
            SIMCLR_CONV_FORWARD), ==, "gemm");
    if (l == SIMCLR_CPU_GENERIC) {
      g_assert_cmpstr (fwd, ==, "gemm");
      g_assert_cmpstr (dw, ==, "gemm");
      g_assert_cmpstr (dx, ==, "gemm");
    } else {
      /* a direct kernel of a set listed at this level (never above) */
      const char *names[] = { fwd, dw, dx };
      for (int i = 0; i < 3; i++) {
        gboolean listed = FALSE;
        for (const SimclrKernelSet *const *k = thin.kernels->set; *k; k++)
          listed |= strcmp ((*k)->name, names[i]) == 0 && (*k)->conv;
        if (!listed)
          g_error ("level %s: kernel \"%s\" is not a set of this level",
              simclr_cpu_level_name ((SimclrCpuLevel) l), names[i]);
      }
    }
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cpu/parse", test_parse);
  g_test_add_func ("/cpu/parse-winograd", test_parse_winograd);
  g_test_add_func ("/cpu/names", test_names);
  g_test_add_func ("/cpu/detected", test_detected);
  g_test_add_func ("/cpu/conv-paths", test_conv_paths);
  return g_test_run ();
}
