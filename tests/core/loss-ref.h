/* loss-ref.h: the double-precision naive contrastive loss the loss tests
 * check against (test-ntxent, test-loss, test-loss-queue), and the word
 * readers of their PyTorch fixtures (tests/data/make-*-fixture.py).
 *
 * Test code only: straight from the definition, no shortcuts, so it shares
 * nothing with the code under test.
 */
#pragma once

#include <stdio.h>

/* NT-Xent in double precision, straight from the definition:
 *   u_i = z_i / ||z_i||,  s_ik = u_i.u_k / tau,
 *   loss = mean_i [ log (sum_{k != i} exp (s_ik) + sum_q exp (u_i.m_q / tau))
 *                   - mean_{p in P(i)} s_ip ].
 * z (R, D). Positives P(i): @pos given: the one row pos[i]; else @group
 * given: every other row k with group[k] == group[i]; both NULL: the pair
 * i <-> i +- R/2. m (Q, D): extra negatives used as given (a queue; not
 * normalised here), NULL with Q 0 for none. Logits stay below 1/tau in the
 * tests, so exp without the max shift is exact enough (and independent of
 * the code under test). */
double loss_ref_ntxent (const double *z, int R, int D, double tau,
    const int *pos, const int *group, const double *m, int Q);

/* The next number of a fixture, or a failed test naming the byte offset. */
double fixture_number (FILE *f);

/* Reads the next word of a fixture; a failed test unless it is @word. */
void fixture_word (FILE *f, const char *word);
