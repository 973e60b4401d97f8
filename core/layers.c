/* layers.c: the small layers of a ResNet and its projection head: ReLU,
 * residual add, 3x3/2 max-pool, global average pool and linear (sgemm, with
 * a naive twin). Convolution and batch norm live in conv.c and batchnorm.c.
 * Backward functions accumulate; nothing here allocates or prints.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include <cblas.h>

#include "layers-private.h"

/* ---------------------------------------------------------------------------
 * threads: task 0 on the calling thread, tasks 1.. on pthreads started per
 * call (as conv.c's chunks); a thread that cannot start runs its task here
 * afterwards: same results, slower. */
typedef struct {
  void (*fn) (void *ctx, int task);
  void *ctx;
  int task;
} ParallelJob;

static void *
parallel_job (void *arg)
{
  ParallelJob *j = arg;
  j->fn (j->ctx, j->task);
  return NULL;
}

void
simclr_parallel_for (int tasks, void (*fn) (void *ctx, int task), void *ctx)
{
  pthread_t tid[SIMCLR_MAX_THREADS];
  int started[SIMCLR_MAX_THREADS] = { 0 };
  ParallelJob jobs[SIMCLR_MAX_THREADS];
  if (tasks > SIMCLR_MAX_THREADS)
    tasks = SIMCLR_MAX_THREADS;
  for (int i = 1; i < tasks; i++) {
    jobs[i] = (ParallelJob) { fn, ctx, i };
    started[i] = pthread_create (&tid[i], NULL, parallel_job, &jobs[i]) == 0;
  }
  fn (ctx, 0);
  for (int i = 1; i < tasks; i++) {
    if (started[i])
      pthread_join (tid[i], NULL);
    else
      fn (ctx, i);
  }
}

/* The elementwise loops run in blocks of 8 through a small array: GCC's
 * -O2 vectoriser (the "very cheap" model) leaves loops that may alias or
 * need an epilogue scalar, and the scalar ReLU compiled to a branch that
 * mispredicts on half the inputs (17 ms for 3.2M floats). Loading a whole
 * block before storing it also keeps in-place calls (out == inp) right. */
#define EW 8

void
simclr_relu_forward (float *out, const float *inp, size_t n)
{
  /* inp, out (n); out may alias inp */
  size_t i = 0;
  for (; i + EW <= n; i += EW) {
    float t[EW];
    for (int j = 0; j < EW; j++)
      t[j] = inp[i + j] > 0.0f ? inp[i + j] : 0.0f;
    for (int j = 0; j < EW; j++)
      out[i + j] = t[j];
  }
  for (; i < n; i++)
    out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void
simclr_relu_backward (float *dinp, const float *dout, const float *out,
    size_t n)
{
  /* accumulates dinp (n); the gate is the forward output, so the caller
   * needs not keep the input: out > 0 exactly where inp > 0. */
  size_t i = 0;
  for (; i + EW <= n; i += EW) {
    float t[EW];
    for (int j = 0; j < EW; j++)
      t[j] = dinp[i + j] + (out[i + j] > 0.0f ? dout[i + j] : 0.0f);
    for (int j = 0; j < EW; j++)
      dinp[i + j] = t[j];
  }
  for (; i < n; i++)
    dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void
simclr_add_forward (float *out, const float *a, const float *b, size_t n)
{
  /* out = a + b (n); out may alias a or b */
  size_t i = 0;
  for (; i + EW <= n; i += EW) {
    float t[EW];
    for (int j = 0; j < EW; j++)
      t[j] = a[i + j] + b[i + j];
    for (int j = 0; j < EW; j++)
      out[i + j] = t[j];
  }
  for (; i < n; i++)
    out[i] = a[i] + b[i];
}

static void
add_into (float *d, const float *src, size_t n)
{
  size_t i = 0;
  for (; i + EW <= n; i += EW) {
    float t[EW];
    for (int j = 0; j < EW; j++)
      t[j] = d[i + j] + src[i + j];
    for (int j = 0; j < EW; j++)
      d[i + j] = t[j];
  }
  for (; i < n; i++)
    d[i] += src[i];
}

void
simclr_add_backward (float *da, float *db, const float *dout, size_t n)
{
  /* accumulates da and db (n); either may be NULL */
  if (da)
    add_into (da, dout, n);
  if (db)
    add_into (db, dout, n);
}

/* ---------------------------------------------------------------------------
 * max-pool 3x3 stride 2 pad 1 */
void
simclr_maxpool_forward (float *out, int32_t *argmax, const float *inp,
    int B, int H, int W, int C)
{
  /* inp (B,H,W,C); out, argmax (B,OH,OW,C), OH = (H - 1) / 2 + 1.
   * argmax holds the flat index into inp of the first maximum in scan order
   * (kh, kw); padding never wins since every window holds a real pixel. */
  const int OH = (H + 2 - 3) / 2 + 1, OW = (W + 2 - 3) / 2 + 1;
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        size_t o = (((size_t) b * OH + oh) * OW + ow) * C;
        for (int c = 0; c < C; c++) {
          out[o + c] = -FLT_MAX;
          argmax[o + c] = -1;
        }
        for (int kh = 0; kh < 3; kh++) {
          int ih = oh * 2 - 1 + kh;
          if (ih < 0 || ih >= H)
            continue;
          for (int kw = 0; kw < 3; kw++) {
            int iw = ow * 2 - 1 + kw;
            if (iw < 0 || iw >= W)
              continue;
            size_t i = (((size_t) b * H + ih) * W + iw) * C;
            for (int c = 0; c < C; c++) {
              float v = inp[i + c];
              /* first maximum wins ties; a NaN wins, so it propagates */
              if (argmax[o + c] < 0 || v > out[o + c] ||
                  (isnan (v) && !isnan (out[o + c]))) {
                out[o + c] = v;
                argmax[o + c] = (int32_t) (i + c);
              }
            }
          }
        }
      }
}

void
simclr_maxpool_backward (float *dinp, const float *dout,
    const int32_t *argmax, int B, int OH, int OW, int C)
{
  /* dout, argmax (B,OH,OW,C); accumulates dinp (B,H,W,C) at the argmax */
  size_t n = (size_t) B * OH * OW * C;
  for (size_t i = 0; i < n; i++)
    dinp[argmax[i]] += dout[i];
}

/* ---------------------------------------------------------------------------
 * global average pool */
void
simclr_avgpool_forward (float *out, const float *inp, int B, int HW, int C)
{
  /* inp (B, HW, C) -> out (B, C) */
  const float scale = 1.0f / HW;
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t) b * C;
    memset (o, 0, sizeof (float) * C);
    for (int p = 0; p < HW; p++) {
      const float *x = inp + ((size_t) b * HW + p) * C;
      for (int c = 0; c < C; c++)
        o[c] += x[c];
    }
    for (int c = 0; c < C; c++)
      o[c] *= scale;
  }
}

void
simclr_avgpool_backward (float *dinp, const float *dout, int B, int HW,
    int C)
{
  /* dout (B, C); accumulates dinp (B, HW, C) */
  const float scale = 1.0f / HW;
  for (int b = 0; b < B; b++) {
    const float *d = dout + (size_t) b * C;
    for (int p = 0; p < HW; p++) {
      float *dx = dinp + ((size_t) b * HW + p) * C;
      for (int c = 0; c < C; c++)
        dx[c] += d[c] * scale;
    }
  }
}

/* ---------------------------------------------------------------------------
 * linear */
void
simclr_linear_forward (float *out, const float *inp, const float *weight,
    const float *bias, int B, int IC, int OC)
{
  /* inp (B, IC), weight (OC, IC), bias (OC) or NULL, out (B, OC) */
  for (int b = 0; b < B; b++) {
    if (bias)
      memcpy (out + (size_t) b * OC, bias, sizeof (float) * OC);
    else
      memset (out + (size_t) b * OC, 0, sizeof (float) * OC);
  }
  /* GEMM M = B, N = OC, K = IC: out (M, N) += inp (M, K) x weight^T */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, IC,
      1.0f, inp, IC, weight, IC, 1.0f, out, OC);
}

void
simclr_linear_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight, int B, int IC,
    int OC)
{
  /* dout (B, OC), inp (B, IC), weight (OC, IC); accumulates dinp (B, IC)
   * (if not NULL), dweight (OC, IC), dbias (OC) (if not NULL). */
  if (dbias)
    for (int b = 0; b < B; b++)
      for (int o = 0; o < OC; o++)
        dbias[o] += dout[(size_t) b * OC + o];
  /* dweight: GEMM M = OC, N = IC, K = B: dweight += dout^T (OC, B) x inp */
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, B,
      1.0f, dout, OC, inp, IC, 1.0f, dweight, IC);
  /* dinp: GEMM M = B, N = IC, K = OC: dinp += dout (B, OC) x weight */
  if (dinp)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IC, OC,
        1.0f, dout, OC, weight, IC, 1.0f, dinp, IC);
}

void
simclr_linear_forward_naive (float *out, const float *inp,
    const float *weight, const float *bias, int B, int IC, int OC)
{
  for (int b = 0; b < B; b++)
    for (int o = 0; o < OC; o++) {
      float acc = bias ? bias[o] : 0.0f;
      for (int i = 0; i < IC; i++)
        acc += inp[(size_t) b * IC + i] * weight[(size_t) o * IC + i];
      out[(size_t) b * OC + o] = acc;
    }
}

void
simclr_linear_backward_naive (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight, int B, int IC,
    int OC)
{
  for (int b = 0; b < B; b++)
    for (int o = 0; o < OC; o++) {
      float d = dout[(size_t) b * OC + o];
      if (dbias)
        dbias[o] += d;
      for (int i = 0; i < IC; i++) {
        dweight[(size_t) o * IC + i] += d * inp[(size_t) b * IC + i];
        if (dinp)
          dinp[(size_t) b * IC + i] += d * weight[(size_t) o * IC + i];
      }
    }
}
