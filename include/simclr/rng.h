/* rng.h: counter-based randomness.
 *
 * Every random number is a pure function of (seed, stream, index): no state,
 * so results do not depend on threads, scheduling or call order. A "stream"
 * names what the numbers are for (a sample id and view, a tensor's index in
 * the parameter table, ...); "index" counts the draws within that stream.
 * The mixer is SplitMix64's finaliser applied to a combination of the three
 * keys; it is not cryptographic. All functions are pure and thread-safe.
 */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 64 random bits for (seed, stream, index). */
uint64_t simclr_rng_u64 (uint64_t seed, uint64_t stream, uint64_t index);

/* Uniform in [0, 1), 24 bits of resolution (exactly representable in float). */
float simclr_rng_uniform (uint64_t seed, uint64_t stream, uint64_t index);

/* Uniform double in [0, 1), 53 bits of resolution. */
double simclr_rng_uniform_double (uint64_t seed, uint64_t stream, uint64_t index);

/* Standard normal (Box-Muller on draws 2*index and 2*index+1). */
double simclr_rng_normal (uint64_t seed, uint64_t stream, uint64_t index);

/* Uniform integer in [0, n), n > 0 (Lemire's multiply-shift, negligible bias). */
uint32_t simclr_rng_below (uint64_t seed, uint64_t stream, uint64_t index, uint32_t n);

/* Builds a stream key from two small integers (e.g. sample id and view). */
uint64_t simclr_rng_stream2 (uint64_t a, uint64_t b);

#ifdef __cplusplus
}
#endif
