/* batchnorm.c: batch normalisation over the rows of an (M, C) matrix.
 *
 * Serves BatchNorm2d on NHWC activations (M = B*H*W) and BatchNorm1d (M = B)
 * with PyTorch's semantics: the biased batch variance normalises, the
 * unbiased one updates running_var. Data-parallel replicas reduce their
 * per-channel sums through an optional allreduce callback so every replica
 * normalises with the exact global statistics: sum and count first (mean),
 * then the centred sum of squares (variance), which avoids the cancellation
 * of E[x^2] - E[x]^2. Local sums run in float over blocks of BN_ROWS rows
 * and in double across blocks.
 * Not here: the allreduce itself (the caller's callback), allocation (the
 * two small reduction buffers live on the stack in blocks of channels).
 */
#include <math.h>
#include <string.h>

#include "layers-private.h"

/* Channels reduced per allreduce call; keeps the buffers on the stack.
 * Every replica has the same C, so all make the same sequence of calls. */
#define BN_BLOCK 256
/* Rows summed in float before adding into the double accumulators. */
#define BN_ROWS 64
/* Inner loops run over 8 channels at a time with a constant trip count so
 * GCC's -O2 (SLP) vectoriser takes them; the runtime-length channel loop
 * stayed scalar and made batch norm cost about as much as the convolution
 * of a thin layer. */
#define BN_VEC 8

/* acc[c] += sum over rows [r0, r1) of x[r][c0 + c] (and of the centred
 * square with mean != NULL), c < n: float partial sums of BN_ROWS rows. */
static void
bn_sums (double *acc, const float *inp, int r0, int r1, int C, int c0, int n,
    const float *mean)
{
  float fs[BN_BLOCK];
  for (int rb = r0; rb < r1; rb += BN_ROWS) {
    int re = rb + BN_ROWS < r1 ? rb + BN_ROWS : r1;
    memset (fs, 0, sizeof (float) * n);
    for (int r = rb; r < re; r++) {
      const float *x = inp + (size_t) r * C + c0;
      int c = 0;
      if (mean) {
        for (; c + BN_VEC <= n; c += BN_VEC)
          for (int j = 0; j < BN_VEC; j++) {
            float d = x[c + j] - mean[c + j];
            fs[c + j] += d * d;
          }
        for (; c < n; c++) {
          float d = x[c] - mean[c];
          fs[c] += d * d;
        }
      } else {
        for (; c + BN_VEC <= n; c += BN_VEC)
          for (int j = 0; j < BN_VEC; j++)
            fs[c + j] += x[c + j];
        for (; c < n; c++)
          fs[c] += x[c];
      }
    }
    for (int c = 0; c < n; c++)
      acc[c] += fs[c];
  }
}

/* y[r][c] = x[r][c] * scale[c] + shift[c] for all rows, channels c0..c0+n */
static void
bn_affine (float *out, const float *inp, int M, int C, int c0, int n,
    const float *scale, const float *shift)
{
  for (int r = 0; r < M; r++) {
    const float *x = inp + (size_t) r * C + c0;
    float *y = out + (size_t) r * C + c0;
    int c = 0;
    for (; c + BN_VEC <= n; c += BN_VEC) {
      float t[BN_VEC];
      for (int j = 0; j < BN_VEC; j++)
        t[j] = x[c + j] * scale[c + j] + shift[c + j];
      for (int j = 0; j < BN_VEC; j++)
        y[c + j] = t[j];
    }
    for (; c < n; c++)
      y[c] = x[c] * scale[c] + shift[c];
  }
}

void
simclr_batchnorm_forward_train (float *out, float *mean, float *rstd,
    float *running_mean, float *running_var, const float *inp,
    const float *weight, const float *bias, int M, int C, float momentum,
    float eps, SimclrAllreduceFn allreduce, void *allreduce_user)
{
  /* inp, out (M, C); weight, bias, running_*, mean, rstd (C).
   * Writes out, mean, rstd (the batch statistics backward needs) and updates
   * running_mean, running_var in place. */
  for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
    const int n = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
    double acc[BN_BLOCK];
    float buf[BN_BLOCK + 1];

    /* pass 1: per-channel sum and the row count */
    memset (acc, 0, sizeof (acc));
    bn_sums (acc, inp, 0, M, C, c0, n, NULL);
    for (int c = 0; c < n; c++)
      buf[c] = (float) acc[c];
    buf[n] = (float) M;
    if (allreduce)
      allreduce (buf, n + 1, allreduce_user);
    const double count = buf[n];
    for (int c = 0; c < n; c++)
      mean[c0 + c] = (float) (buf[c] / count);

    /* pass 2: centred sum of squares around the global mean */
    memset (acc, 0, sizeof (acc));
    bn_sums (acc, inp, 0, M, C, c0, n, mean + c0);
    for (int c = 0; c < n; c++)
      buf[c] = (float) acc[c];
    if (allreduce)
      allreduce (buf, n, allreduce_user);
    for (int c = 0; c < n; c++) {
      double var = buf[c] / count;
      double unbiased = count > 1 ? buf[c] / (count - 1) : var;
      rstd[c0 + c] = (float) (1.0 / sqrt (var + eps));
      running_mean[c0 + c] = (1.0f - momentum) * running_mean[c0 + c] +
          momentum * mean[c0 + c];
      running_var[c0 + c] = (1.0f - momentum) * running_var[c0 + c] +
          momentum * (float) unbiased;
    }

    /* out = (x - mean) * rstd * weight + bias, as one scale and shift */
    float scale[BN_BLOCK], shift[BN_BLOCK];
    for (int c = 0; c < n; c++) {
      scale[c] = rstd[c0 + c] * weight[c0 + c];
      shift[c] = bias[c0 + c] - mean[c0 + c] * scale[c];
    }
    bn_affine (out, inp, M, C, c0, n, scale, shift);
  }
}

void
simclr_batchnorm_forward_eval (float *out, const float *inp,
    const float *weight, const float *bias, const float *running_mean,
    const float *running_var, int M, int C, float eps)
{
  /* inp, out (M, C); weight, bias, running_mean, running_var (C) */
  for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
    const int n = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
    float scale[BN_BLOCK], shift[BN_BLOCK];
    for (int c = 0; c < n; c++) {
      scale[c] = weight[c0 + c] / sqrtf (running_var[c0 + c] + eps);
      shift[c] = bias[c0 + c] - running_mean[c0 + c] * scale[c];
    }
    bn_affine (out, inp, M, C, c0, n, scale, shift);
  }
}

void
simclr_batchnorm_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const float *mean, const float *rstd, int M, int C,
    SimclrAllreduceFn allreduce, void *allreduce_user)
{
  /* dout, inp, dinp (M, C); weight, mean, rstd, dweight, dbias (C).
   * Accumulates dinp, dweight, dbias. With xhat = (x - mean) * rstd and
   * N the global row count:
   *   dinp = rstd * w * (dout - sum(dout) / N - xhat * sum(dout * xhat) / N)
   * where the two sums run over all replicas' rows. dweight and dbias get
   * this replica's share only (sum over local rows): the trainer reduces the
   * gradient buffer across replicas afterwards, as for every parameter. */
  for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
    const int n = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
    double sd[BN_BLOCK], sdx[BN_BLOCK];
    float buf[2 * BN_BLOCK + 1];
    memset (sd, 0, sizeof (sd));
    memset (sdx, 0, sizeof (sdx));
    const float *m = mean + c0, *rs = rstd + c0;
    for (int rb = 0; rb < M; rb += BN_ROWS) {
      int re = rb + BN_ROWS < M ? rb + BN_ROWS : M;
      float fd[BN_BLOCK], fdx[BN_BLOCK];
      memset (fd, 0, sizeof (float) * n);
      memset (fdx, 0, sizeof (float) * n);
      for (int r = rb; r < re; r++) {
        const float *x = inp + (size_t) r * C + c0;
        const float *d = dout + (size_t) r * C + c0;
        int c = 0;
        for (; c + BN_VEC <= n; c += BN_VEC)
          for (int j = 0; j < BN_VEC; j++) {
            fd[c + j] += d[c + j];
            fdx[c + j] += d[c + j] * ((x[c + j] - m[c + j]) * rs[c + j]);
          }
        for (; c < n; c++) {
          fd[c] += d[c];
          fdx[c] += d[c] * ((x[c] - m[c]) * rs[c]);
        }
      }
      for (int c = 0; c < n; c++) {
        sd[c] += fd[c];
        sdx[c] += fdx[c];
      }
    }
    for (int c = 0; c < n; c++) {
      dbias[c0 + c] += (float) sd[c];
      dweight[c0 + c] += (float) sdx[c];
      buf[c] = (float) sd[c];
      buf[n + c] = (float) sdx[c];
    }
    buf[2 * n] = (float) M;
    if (allreduce)
      allreduce (buf, 2 * n + 1, allreduce_user);
    const float count = buf[2 * n];
    float mean_d[BN_BLOCK], mean_dx[BN_BLOCK], k[BN_BLOCK];
    for (int c = 0; c < n; c++) {
      mean_d[c] = buf[c] / count;
      mean_dx[c] = buf[n + c] / count;
      k[c] = rstd[c0 + c] * weight[c0 + c];
    }
    for (int r = 0; r < M; r++) {
      const float *x = inp + (size_t) r * C + c0;
      const float *d = dout + (size_t) r * C + c0;
      float *dx = dinp + (size_t) r * C + c0;
      int c = 0;
      for (; c + BN_VEC <= n; c += BN_VEC) {
        float t[BN_VEC];
        for (int j = 0; j < BN_VEC; j++) {
          float xhat = (x[c + j] - m[c + j]) * rs[c + j];
          t[j] = dx[c + j] + k[c + j] * (d[c + j] - mean_d[c + j] -
              xhat * mean_dx[c + j]);
        }
        for (int j = 0; j < BN_VEC; j++)
          dx[c + j] = t[j];
      }
      for (; c < n; c++) {
        float xhat = (x[c] - m[c]) * rs[c];
        dx[c] += k[c] * (d[c] - mean_d[c] - xhat * mean_dx[c]);
      }
    }
  }
}
