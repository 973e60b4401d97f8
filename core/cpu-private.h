/* cpu-private.h: the table of kernels per instruction set.
 *
 * Private to libsimclr (tests and benchmarks reach it through the static
 * library). core/cpu.c detects the CPU once and resolves, for every level
 * the CPU supports, the list of kernel sets usable there, best first. Each
 * instruction set has its kernels in a file of its own (conv-avx2.c,
 * conv-avx512.c, ...) exporting one SimclrConvKernels, and one row in
 * cpu.c's table: adding a set is one file and one row.
 *
 * Dispatch (conv.c): for each operation the first set in the list whose
 * *_ok() accepts the shape runs it; a NULL member or a refusal passes the
 * shape to the next lower set, and past the last one to the portable path
 * (im2col + cblas_sgemm). The *_ok() predicates are pure functions of the
 * shape, so scratch sizing and the kernels agree.
 * Thread-safety: the tables are constant after the first (thread-safe,
 * once-only) detection.
 */
#pragma once

#include "simclr/augment.h"
#include "simclr/cpu.h"
#include "layers-private.h"

/* Direct convolution kernels of one instruction set. Weight layouts are
 * conv.c's conv_pack_weight layouts. All work on images [b0, b1) only, so
 * conv.c can spread chunks of images over threads. */
typedef struct {
  /* out (B,OH,OW,OC) = conv (inp) + bias (bias may be NULL), or with
   * accumulate out += conv (inp); wp (KH, KW, C, OC). */
  int (*forward_ok) (const SimclrConvShape *s);
  void (*forward) (float *out, const float *inp, const float *wp,
      const float *bias, int accumulate, const SimclrConvShape *s, int b0,
      int b1);
  /* Accumulates dwp (KH, KW, C, OC) += the weight gradient. */
  int (*dweight_ok) (const SimclrConvShape *s);
  void (*dweight) (float *dwp, const float *inp, const float *dout,
      const SimclrConvShape *s, int b0, int b1);
  /* Accumulates dinp (B,H,W,C) += the input gradient of a strided
   * convolution (stride >= 2: stride 1 runs as the forward of the
   * transposed convolution instead); wt (KH, KW, OC, C). */
  int (*backward_data_ok) (const SimclrConvShape *s);
  void (*backward_data) (float *dinp, const float *dout, const float *wt,
      const SimclrConvShape *s, int b0, int b1);
  /* The input gradient of a 3x3 stride-2 pad-1 convolution, written
   * (dinp = ...) or with accumulate added (dinp += ...); with dsc (not
   * NULL) plus that of a 1x1 stride-2 pad-0 convolution on the same input
   * (a ResNet block's downsampling shortcut): dsc (B,OH,OW,ocsc), wsc
   * (ocsc, C) as stored. wt (3, 3, OC, C). NULL: the set has none. */
  int (*dinput_s2_ok) (const SimclrConvShape *s);
  void (*dinput_s2) (float *dinp, const float *dout, const float *wt,
      const float *dsc, const float *wsc, int ocsc, int accumulate,
      const SimclrConvShape *s, int b0, int b1);
} SimclrConvKernels;

/* Winograd F(m x m, 3x3) forward of one instruction set, for 3x3 stride-1
 * pad-1 convolutions (conv-winograd.c; conv.c also runs the input gradient
 * of those through it, as the forward of the transposed convolution). */
typedef struct {
  /* Output tile side: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3) (the weight
   * transform and buffer sizes of conv-winograd-private.h follow it). */
  int m;
  /* Whether conv.c routes the shape here: a pure function of the shape
   * (not of B, so scratch sized at the largest batch covers every batch),
   * chosen where bench-conv measured Winograd faster than the set's direct
   * kernel. The kernel itself takes any 3x3 s1 p1 shape its set's channel
   * constraints allow (simclr_winograd_shape_ok). */
  int (*ok) (const SimclrConvShape *s);
  /* out (B,OH,OW,OC) = conv (inp) + bias (bias may be NULL), or with
   * accumulate out += conv (inp), for images [b0, b1); u is the
   * transformed weight (simclr_winograd_weight), work a private buffer of
   * simclr_winograd_work_floats (s) floats. */
  void (*forward) (float *out, const float *inp, const float *u,
      const float *bias, int accumulate, const SimclrConvShape *s, int b0,
      int b1, float *work);
  /* Weight gradient (NULL in the forward kernels; forward is NULL in the
   * weight-gradient ones, whose ok() routes dweight): accumulates du
   * (points, OC, C) += the transformed weight gradient of images [b0, b1),
   * points of rows [r0, r1) of the (m+2) x (m+2) tile only (threads split
   * the points, so each point's sum runs over all tiles in one order on
   * any thread count); work: simclr_winograd_dw_work_floats (s) floats.
   * simclr_winograd_dweight_out turns du into the weight gradient. */
  void (*dweight) (float *du, const float *inp, const float *dout,
      const SimclrConvShape *s, int b0, int b1, int r0, int r1, float *work);
} SimclrWinogradKernels;

/* One instruction set's kernels (one row of cpu.c's table). */
typedef struct {
  SimclrCpuLevel level;
  const char *name;
  const SimclrConvKernels *conv;
  /* Winograd kernels, tried in this order (the first whose predicate
   * takes a shape runs it); NULL: none (further). */
  const SimclrWinogradKernels *winograd[2];
  /* Tried before those for the input gradient's transposed convolution
   * only (the SIMCLR_WINOGRAD=f23 rows: F(4x4, 3x3) there, not in the
   * forward: see cpu.c); NULL: none (further). */
  const SimclrWinogradKernels *winograd_dinput[2];
  /* Weight-gradient Winograd kernels, tried in this order; NULL: none
   * (further). */
  const SimclrWinogradKernels *winograd_dweight[2];
} SimclrKernelSet;

/* The sets usable at one level, best first, NULL-terminated. */
struct SimclrKernels {
  SimclrCpuLevel level;
  const SimclrKernelSet *set[SIMCLR_CPU_N_LEVELS + 1];
};

/* The kernels of the level in use (simclr_cpu_level ()). Never NULL.
 * With the Winograd kernels the set routes unless the environment sets
 * SIMCLR_WINOGRAD=0 (read once, at detection; then
 * simclr_cpu_kernels_direct_at). */
const SimclrKernels *simclr_cpu_kernels (void);

/* The kernels of @level, for tests and benchmarks that compare levels in
 * one process (Winograd as simclr_cpu_kernels decides); NULL when the CPU
 * lacks @level. */
const SimclrKernels *simclr_cpu_kernels_at (SimclrCpuLevel level);

/* The kernels of @level with the Winograd kernels routed whatever
 * SIMCLR_WINOGRAD says, F(4x4, 3x3) on input gradients only (the table
 * SIMCLR_WINOGRAD=f23 selects; tests, benchmarks); NULL when the CPU
 * lacks it. */
const SimclrKernels *simclr_cpu_kernels_winograd_at (SimclrCpuLevel level);

/* The same with Winograd F(4x4, 3x3) tried first in the forward too where
 * its predicate takes the shape (the default table, also
 * SIMCLR_WINOGRAD=f43; cpu.c wino43_sets). NULL when the CPU lacks
 * @level. */
const SimclrKernels *simclr_cpu_kernels_winograd43_at (SimclrCpuLevel level);

/* The same sets without their Winograd kernels (every convolution on the
 * direct or GEMM path): for benchmarks and tests that compare the two on
 * one shape. NULL when the CPU lacks @level. */
const SimclrKernels *simclr_cpu_kernels_direct_at (SimclrCpuLevel level);

/* Test hook: from now on simclr_cpu_kernels () returns @k (NULL: the
 * table chosen at detection again), in every thread; returns the one
 * forced before (NULL: none). For tests that run one computation under two
 * kernel tables in one process (the noise floor of the data-parallel
 * equivalence tests). A model sizes its convolution scratch for the table
 * in force when it is created: run it only while that table is in force.
 * Not synchronised: call it while no convolution runs. */
const SimclrKernels *simclr_cpu_force_kernels (const SimclrKernels *k);

/* For noise floors: another table than simclr_cpu_kernels ()'s, whose
 * convolutions round differently from it: every convolution direct at the
 * same level when that one routes Winograd, else the direct kernels of
 * another level (avx2's for generic, generic's for the others). NULL when
 * the CPU has no other (a generic-only CPU).
 * *name (if not NULL) gets its setting, e.g. "SIMCLR_CPU=generic". */
const SimclrKernels *simclr_cpu_kernels_other (const char **name);

/* Parses a SIMCLR_CPU value against a CPU whose best level is @best:
 * returns the level to use; when the value is not honoured (unknown, or
 * above @best) writes why into @msg (size @msg_size), else makes it "".
 * NULL or "" means unset. Pure: exposed for the tests. */
SimclrCpuLevel simclr_cpu_parse_level (const char *value, SimclrCpuLevel best,
    char *msg, size_t msg_size);

/* SIMCLR_WINOGRAD's value: 2 (f43, the default; NULL or empty), 1 (f23),
 * 0 (0 or off). An unknown value gives 2 and, if @msg is not NULL, a
 * message naming it. */
int simclr_cpu_parse_winograd (const char *value, char *msg,
    size_t msg_size);

/* The kernel sets (one per file). */
extern const SimclrConvKernels simclr_conv_kernels_avx2;
extern const SimclrConvKernels simclr_conv_kernels_avx512;
extern const SimclrWinogradKernels simclr_winograd_generic;
extern const SimclrWinogradKernels simclr_winograd_avx512;
extern const SimclrWinogradKernels simclr_winograd43_generic;
extern const SimclrWinogradKernels simclr_winograd43_avx512;
extern const SimclrWinogradKernels simclr_winograd43_avx2;
extern const SimclrWinogradKernels simclr_winograd_dw_generic;
extern const SimclrWinogradKernels simclr_winograd43_dw_generic;
extern const SimclrWinogradKernels simclr_winograd_dw_avx512;
extern const SimclrWinogradKernels simclr_winograd43_dw_avx512;
extern const SimclrWinogradKernels simclr_winograd43_dw_avx2;

/* Test hook: makes @a run its hot loops at @level (clamped to the CPU's
 * best). The level an augmenter starts with is simclr_cpu_level (); all
 * levels give bit-identical results. */
void simclr_augmenter_set_cpu_level (SimclrAugmenter *a, SimclrCpuLevel level);
