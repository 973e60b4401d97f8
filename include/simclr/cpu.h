/* cpu.h: the instruction set libsimclr's kernels use on this CPU.
 *
 * The core detects the CPU once per process (the first call of any function
 * here, or of a kernel) and runs every layer with the kernels of the best
 * instruction set the CPU and the operating system support. The environment
 * variable SIMCLR_CPU, read at that moment, forces a LOWER set so that tests
 * and benchmarks can run every path a machine has:
 *
 *     SIMCLR_CPU=generic   portable C and OpenBLAS only
 *     SIMCLR_CPU=avx2      AVX2 + FMA kernels
 *     SIMCLR_CPU=avx512    AVX-512 (F, BW, DQ, VL) kernels
 *
 * A value naming a set the CPU lacks, or no known set, is not honoured: the
 * core then uses the best set the CPU has and simclr_cpu_check_env() says
 * why, so a program can show it. Nothing here prints or aborts.
 * Thread-safety: all functions may be called from any thread at any time;
 * the answers never change within a process.
 */
#pragma once

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Instruction-set levels, each including the ones below it. */
typedef enum {
  SIMCLR_CPU_GENERIC = 0,
  SIMCLR_CPU_AVX2 = 1,          /* AVX2 and FMA */
  SIMCLR_CPU_AVX512 = 2,        /* AVX-512 F, BW, DQ and VL */
  SIMCLR_CPU_N_LEVELS
} SimclrCpuLevel;

/* Optional features beyond a level. */
typedef enum {
  SIMCLR_CPU_FEATURE_AVX512_BF16 = 1 << 0,      /* vdpbf16ps */
} SimclrCpuFeature;

/* The level the kernels use: the best the CPU has, or the lower one forced
 * by SIMCLR_CPU. */
SimclrCpuLevel simclr_cpu_level (void);

/* The best level this CPU (and the operating system) supports. */
SimclrCpuLevel simclr_cpu_best_level (void);

/* Whether the kernels may use @feature: the CPU has it and the level in use
 * includes the set it belongs to (forcing SIMCLR_CPU=avx2 hides bf16). */
int simclr_cpu_has (SimclrCpuFeature feature);

/* The SIMCLR_CPU spelling of @level ("generic", "avx2", "avx512"); a static
 * string, "?" for a value out of range. */
const char *simclr_cpu_level_name (SimclrCpuLevel level);

/* SIMCLR_OK when SIMCLR_CPU is unset or was honoured. Otherwise
 * SIMCLR_ERROR_INVALID_ARGUMENT, and @err (if not NULL) says what the value
 * was, what the CPU has and which level is used instead. */
SimclrStatus simclr_cpu_check_env (SimclrError *err);

/* A one-line description for logs and benchmark headers, e.g.
 * "avx512 (CPU best avx512, avx512_bf16)"; a static string. */
const char *simclr_cpu_describe (void);

#ifdef __cplusplus
}
#endif
