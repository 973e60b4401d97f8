/* cpu.c: detects the CPU once and resolves the kernel table per level (see
 * include/simclr/cpu.h and cpu-private.h).
 *
 * The one place that asks the CPU what it has: conv.c, augment.c and the
 * elements' OpenBLAS advice all read the answer from here. Detection runs
 * under pthread_once; afterwards everything is constant.
 * Not here: the kernels (conv-*.c), the choice between a kernel and the
 * portable path for a shape (conv.c, through the sets' predicates).
 */
#include "cpu-private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define CPU_X86 1
#endif

/* One row per instruction set, lowest first. The generic level has no
 * kernels of its own: it is the portable path every operation falls back
 * to. The last member: the weight gradient's Winograd kernels (AVX-512:
 * F(4x4, 3x3) first; AVX2: F(4x4, 3x3); their rounding error, test-conv-winograd.c's
 * test_dweight, left the equivalence tests within their tolerances; the
 * same in the f43 rows). */
static const SimclrKernelSet kernel_sets[] = {
  {SIMCLR_CPU_GENERIC, "generic", NULL, {NULL}, {NULL}},
#ifdef CPU_X86
  {SIMCLR_CPU_AVX2, "avx2", &simclr_conv_kernels_avx2, {NULL},
      {&simclr_winograd43_avx2}, {&simclr_winograd43_dw_avx2}},
  {SIMCLR_CPU_AVX512, "avx512", &simclr_conv_kernels_avx512,
      {&simclr_winograd_avx512}, {&simclr_winograd43_avx512},
      {&simclr_winograd43_dw_avx512, &simclr_winograd_dw_avx512}},
#endif
};

/* The default table: the rows above with Winograd F(4x4, 3x3) (1.2-1.8x
 * faster than the direct kernels on the thin layers) in the forward as
 * well as the input gradient. Its rounding error is about 4x F(2x2, 3x3)'s
 * and the direct kernels' on average (at the w0.25 model's shapes, batch
 * 512: 0.47-0.84 against 0.13-0.16 eps of sum |w| |x|; worst 19-60), so the
 * data-parallel equivalence tests (tests/mpi mpi-equivalence and
 * test-mpi-pipeline, test-multicrop's replicas) measure their noise floor
 * beside the comparison under tables whose forward rounds differently
 * (simclr_cpu_kernels_other; test-mpi-pipeline sets SIMCLR_WINOGRAD), and
 * pass with it. A free run is chaotic through ReLU flips with either
 * table; F(4x4, 3x3) makes them likelier (see README, "Kernel choice").
 * The rows above (F(4x4, 3x3) on input gradients only, F(2x2, 3x3) or
 * direct forwards) stay selectable: SIMCLR_WINOGRAD=f23,
 * simclr_cpu_kernels_winograd_at. */
static const SimclrKernelSet wino43_sets[] = {
  {SIMCLR_CPU_GENERIC, "generic", NULL, {NULL}, {NULL}},
#ifdef CPU_X86
  {SIMCLR_CPU_AVX2, "avx2", &simclr_conv_kernels_avx2,
      {&simclr_winograd43_avx2}, {NULL}, {&simclr_winograd43_dw_avx2}},
  {SIMCLR_CPU_AVX512, "avx512", &simclr_conv_kernels_avx512,
      {&simclr_winograd43_avx512, &simclr_winograd_avx512}, {NULL},
      {&simclr_winograd43_dw_avx512, &simclr_winograd_dw_avx512}},
#endif
};

/* The same rows without Winograd (simclr_cpu_kernels_direct_at). The
 * generic Winograd twin (simclr_winograd_generic) is the tests' reference
 * and is not routed at the generic level: OpenBLAS's im2col + sgemm beats
 * plain C with 2.25x fewer multiplications. */
static const SimclrKernelSet direct_sets[] = {
  {SIMCLR_CPU_GENERIC, "generic", NULL, {NULL}, {NULL}},
#ifdef CPU_X86
  {SIMCLR_CPU_AVX2, "avx2", &simclr_conv_kernels_avx2, {NULL}, {NULL}},
  {SIMCLR_CPU_AVX512, "avx512", &simclr_conv_kernels_avx512, {NULL},
      {NULL}},
#endif
};

#define N_SETS (sizeof (kernel_sets) / sizeof (kernel_sets[0]))

static const char *const level_names[SIMCLR_CPU_N_LEVELS] = {
  "generic", "avx2", "avx512",
};

static struct {
  pthread_once_t once;
  SimclrCpuLevel best, level;
  unsigned features;            /* SimclrCpuFeature bits the CPU has */
  char env_msg[SIMCLR_ERROR_MESSAGE_SIZE];
  char describe[128];
  SimclrKernels kernels[SIMCLR_CPU_N_LEVELS];
  SimclrKernels direct[SIMCLR_CPU_N_LEVELS];
  SimclrKernels wino43[SIMCLR_CPU_N_LEVELS];
  /* SIMCLR_WINOGRAD: 0 direct only, 1 (=f23) F(4x4, 3x3) on input
   * gradients only, 2 (default) F(4x4, 3x3) first in the forward too */
  int winograd;
  /* simclr_cpu_force_kernels's table, NULL: none */
  const SimclrKernels *forced;
} cpu = {.once = PTHREAD_ONCE_INIT };

const char *
simclr_cpu_level_name (SimclrCpuLevel level)
{
  if ((int) level < 0 || level >= SIMCLR_CPU_N_LEVELS)
    return "?";
  return level_names[level];
}

SimclrCpuLevel
simclr_cpu_parse_level (const char *value, SimclrCpuLevel best, char *msg,
    size_t msg_size)
{
  if (msg_size > 0)
    msg[0] = '\0';
  if (value == NULL || value[0] == '\0')
    return best;
  for (int l = 0; l < SIMCLR_CPU_N_LEVELS; l++) {
    if (strcasecmp (value, level_names[l]) != 0)
      continue;
    if ((SimclrCpuLevel) l <= best)
      return (SimclrCpuLevel) l;
    snprintf (msg, msg_size, "SIMCLR_CPU=%s asks for an instruction set "
        "this CPU lacks (its best is %s): using %s", value,
        level_names[best], level_names[best]);
    return best;
  }
  snprintf (msg, msg_size, "SIMCLR_CPU=%.64s is not an instruction set "
      "(known: generic, avx2, avx512; it can only lower the CPU's best): "
      "using %s", value, level_names[best]);
  return best;
}

int
simclr_cpu_parse_winograd (const char *value, char *msg, size_t msg_size)
{
  if (value == NULL || value[0] == '\0' || strcasecmp (value, "f43") == 0)
    return 2;
  if (strcmp (value, "0") == 0 || strcasecmp (value, "off") == 0)
    return 0;
  if (strcasecmp (value, "f23") == 0)
    return 1;
  if (msg && msg_size > 0)
    snprintf (msg, msg_size, "SIMCLR_WINOGRAD=%.64s is not a routing "
        "(known: f43, the default; f23; 0 or off): using f43", value);
  return 2;
}

static void
cpu_detect (void)
{
  cpu.best = SIMCLR_CPU_GENERIC;
  cpu.features = 0;
#ifdef CPU_X86
  /* libgcc's checks include the operating system's support (XCR0) for the
   * AVX and AVX-512 register state. */
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma")) {
    cpu.best = SIMCLR_CPU_AVX2;
    if (__builtin_cpu_supports ("avx512f")
        && __builtin_cpu_supports ("avx512bw")
        && __builtin_cpu_supports ("avx512dq")
        && __builtin_cpu_supports ("avx512vl"))
      cpu.best = SIMCLR_CPU_AVX512;
  }
  if (cpu.best >= SIMCLR_CPU_AVX512 && __builtin_cpu_supports ("avx512bf16"))
    cpu.features |= SIMCLR_CPU_FEATURE_AVX512_BF16;
#endif
  cpu.level = simclr_cpu_parse_level (getenv ("SIMCLR_CPU"), cpu.best,
      cpu.env_msg, sizeof (cpu.env_msg));
  /* Winograd convolutions are routed where the set's predicate takes them
   * (tested against the naive twins, bitwise invariant to batch split and
   * threads), F(4x4, 3x3) in the forward too (wino43_sets);
   * SIMCLR_WINOGRAD=0 keeps every convolution direct, e.g. to compare the
   * two paths; SIMCLR_WINOGRAD=f23 keeps F(4x4, 3x3) out of the forward
   * (the default before; kernel_sets); f43 is the default, and so is an
   * unknown value (reported by simclr_cpu_check_env). */
  cpu.winograd = simclr_cpu_parse_winograd (getenv ("SIMCLR_WINOGRAD"),
      cpu.env_msg[0] ? NULL : cpu.env_msg, sizeof (cpu.env_msg));

  for (int l = 0; l < SIMCLR_CPU_N_LEVELS; l++) {
    SimclrKernels *k = &cpu.kernels[l], *d = &cpu.direct[l];
    SimclrKernels *w = &cpu.wino43[l];
    int n = 0;
    k->level = d->level = w->level = (SimclrCpuLevel) l;
    for (int i = (int) N_SETS - 1; i >= 0; i--)
      if (kernel_sets[i].level <= (SimclrCpuLevel) l) {
        d->set[n] = &direct_sets[i];
        w->set[n] = &wino43_sets[i];
        k->set[n++] = &kernel_sets[i];
      }
    k->set[n] = d->set[n] = w->set[n] = NULL;
  }

  snprintf (cpu.describe, sizeof (cpu.describe), "%s%s (CPU best %s%s)%s",
      level_names[cpu.level], cpu.winograd == 2 ? " +winograd" :
      cpu.winograd ? " +winograd f23" : "",
      level_names[cpu.best],
      cpu.features & SIMCLR_CPU_FEATURE_AVX512_BF16 ? ", avx512_bf16" : "",
      cpu.env_msg[0] ? " [environment not honoured]" : "");
}

static void
cpu_init (void)
{
  pthread_once (&cpu.once, cpu_detect);
}

SimclrCpuLevel
simclr_cpu_level (void)
{
  cpu_init ();
  return cpu.level;
}

SimclrCpuLevel
simclr_cpu_best_level (void)
{
  cpu_init ();
  return cpu.best;
}

int
simclr_cpu_has (SimclrCpuFeature feature)
{
  cpu_init ();
  if (feature == SIMCLR_CPU_FEATURE_AVX512_BF16
      && cpu.level < SIMCLR_CPU_AVX512)
    return 0;
  return (cpu.features & feature) == (unsigned) feature;
}

SimclrStatus
simclr_cpu_check_env (SimclrError *err)
{
  cpu_init ();
  if (cpu.env_msg[0] == '\0')
    return SIMCLR_OK;
  return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT, "%s",
      cpu.env_msg);
}

const char *
simclr_cpu_describe (void)
{
  cpu_init ();
  return cpu.describe;
}

const SimclrKernels *
simclr_cpu_kernels (void)
{
  cpu_init ();
  if (cpu.forced)
    return cpu.forced;
  return cpu.winograd == 2 ? &cpu.wino43[cpu.level] :
      cpu.winograd ? &cpu.kernels[cpu.level] : &cpu.direct[cpu.level];
}

const SimclrKernels *
simclr_cpu_kernels_at (SimclrCpuLevel level)
{
  cpu_init ();
  if ((int) level < 0 || level > cpu.best)
    return NULL;
  return cpu.winograd == 2 ? &cpu.wino43[level] :
      cpu.winograd ? &cpu.kernels[level] : &cpu.direct[level];
}

const SimclrKernels *
simclr_cpu_kernels_winograd_at (SimclrCpuLevel level)
{
  cpu_init ();
  if ((int) level < 0 || level > cpu.best)
    return NULL;
  return &cpu.kernels[level];
}

const SimclrKernels *
simclr_cpu_kernels_winograd43_at (SimclrCpuLevel level)
{
  cpu_init ();
  if ((int) level < 0 || level > cpu.best)
    return NULL;
  return &cpu.wino43[level];
}

const SimclrKernels *
simclr_cpu_kernels_direct_at (SimclrCpuLevel level)
{
  cpu_init ();
  if ((int) level < 0 || level > cpu.best)
    return NULL;
  return &cpu.direct[level];
}

const SimclrKernels *
simclr_cpu_force_kernels (const SimclrKernels *k)
{
  cpu_init ();
  const SimclrKernels *was = cpu.forced;
  cpu.forced = k;
  return was;
}

const SimclrKernels *
simclr_cpu_kernels_other (const char **name)
{
  cpu_init ();
  if (cpu.winograd && cpu.level >= SIMCLR_CPU_AVX2) {
    if (name)
      *name = "every convolution direct (SIMCLR_WINOGRAD=0)";
    return &cpu.direct[cpu.level];
  }
  SimclrCpuLevel other = cpu.level == SIMCLR_CPU_GENERIC ? SIMCLR_CPU_AVX2 :
      SIMCLR_CPU_GENERIC;
  if (other > cpu.best)
    return NULL;
  if (name)
    *name = other == SIMCLR_CPU_AVX2 ? "SIMCLR_CPU=avx2 SIMCLR_WINOGRAD=0" :
        "SIMCLR_CPU=generic";
  return &cpu.direct[other];
}
