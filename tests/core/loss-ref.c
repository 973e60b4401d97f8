/* loss-ref.c: see loss-ref.h. */
#include "loss-ref.h"

#include <math.h>
#include <string.h>

#include <glib.h>

double
loss_ref_ntxent (const double *z, int R, int D, double tau, const int *pos,
    const int *group, const double *m, int Q)
{
  double *u = g_new (double, (size_t) R * D);
  double loss = 0.0;

  for (int i = 0; i < R; i++) {
    double n = 0.0;
    for (int c = 0; c < D; c++)
      n += z[i * D + c] * z[i * D + c];
    n = sqrt (n);
    for (int c = 0; c < D; c++)
      u[i * D + c] = z[i * D + c] / n;
  }
  for (int i = 0; i < R; i++) {
    const int p = pos ? pos[i] : (i < R / 2 ? i + R / 2 : i - R / 2);
    double sum = 0.0, spos = 0.0;
    int npos = 0;
    for (int k = 0; k < R; k++) {
      double s = 0.0;
      if (k == i)
        continue;
      for (int c = 0; c < D; c++)
        s += u[i * D + c] * u[k * D + c];
      s /= tau;
      sum += exp (s);
      if (group && !pos ? group[k] == group[i] : k == p) {
        spos += s;
        npos++;
      }
    }
    for (int q = 0; q < Q; q++) {
      double s = 0.0;
      for (int c = 0; c < D; c++)
        s += u[i * D + c] * m[q * D + c];
      sum += exp (s / tau);
    }
    if (npos == 0)
      g_error ("loss_ref_ntxent: row %d of %d has no positive", i, R);
    loss += -spos / npos + log (sum);
  }
  g_free (u);
  return loss / R;
}

double
fixture_number (FILE *f)
{
  double v;
  if (fscanf (f, "%lf", &v) != 1)
    g_error ("fixture: expected a number at byte %ld", ftell (f));
  return v;
}

void
fixture_word (FILE *f, const char *word)
{
  char buf[64];
  if (fscanf (f, "%63s", buf) != 1 || strcmp (buf, word) != 0)
    g_error ("fixture: expected '%s' at byte %ld", word, ftell (f));
}
