/* rng.c: counter-based randomness (see include/simclr/rng.h). */
#include "simclr/rng.h"

#include <math.h>

/* SplitMix64 finaliser: a bijective avalanche on 64 bits (Steele et al. 2014). */
static uint64_t
mix64 (uint64_t x)
{
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t
simclr_rng_u64 (uint64_t seed, uint64_t stream, uint64_t index)
{
  /* Chain the keys through the mixer so that nearby (stream, index) pairs
   * give unrelated outputs; the golden-ratio offsets keep zeros from
   * collapsing. */
  uint64_t h = mix64 (seed + 0x9e3779b97f4a7c15ULL);
  h = mix64 (h ^ (stream + 0x632be59bd9b4e019ULL));
  h = mix64 (h ^ (index + 0x85157af5ULL));
  return h;
}

float
simclr_rng_uniform (uint64_t seed, uint64_t stream, uint64_t index)
{
  return (float) (simclr_rng_u64 (seed, stream, index) >> 40) * (1.0f / 16777216.0f);
}

double
simclr_rng_uniform_double (uint64_t seed, uint64_t stream, uint64_t index)
{
  return (double) (simclr_rng_u64 (seed, stream, index) >> 11) * (1.0 / 9007199254740992.0);
}

double
simclr_rng_normal (uint64_t seed, uint64_t stream, uint64_t index)
{
  /* 1 - u keeps the log's argument in (0, 1]. */
  double u1 = 1.0 - simclr_rng_uniform_double (seed, stream, 2 * index);
  double u2 = simclr_rng_uniform_double (seed, stream, 2 * index + 1);
  return sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2);
}

uint32_t
simclr_rng_below (uint64_t seed, uint64_t stream, uint64_t index, uint32_t n)
{
  uint64_t r = simclr_rng_u64 (seed, stream, index) >> 32;
  return (uint32_t) ((r * (uint64_t) n) >> 32);
}

uint64_t
simclr_rng_stream2 (uint64_t a, uint64_t b)
{
  return mix64 (a * 0x9e3779b97f4a7c15ULL + b);
}
