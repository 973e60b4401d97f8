/* conv.c: 2-d convolution on NHWC activations, forward and backward.
 *
 * The fast path is im2col + cblas_sgemm over chunks of images, so the column
 * buffer stays bounded (and cache-sized for thin layers); a 1x1 stride-1
 * pad-0 convolution is a plain GEMM on the activations. With s->threads > 1
 * the chunks are spread over worker threads, each calling its own GEMMs.
 * The *_naive twins are plain loops, kept as the test reference.
 * This file does not allocate (the caller passes scratch) and never prints.
 */
#include <pthread.h>
#include <string.h>

#include <cblas.h>

#include "layers-private.h"

/* Upper bound on worker threads of one call (scratch grows with it). */
#define CONV_MAX_THREADS 16

/* Column buffer of one chunk: aim at about CONV_CHUNK_FLOATS floats (fits the
 * 512 KiB L2 of a Zen core with room for the weights), but never fewer than
 * CONV_MIN_ROWS rows: the weight-gradient GEMM reduces over the rows of a
 * chunk and rewrites the whole (OC, K) dweight once per chunk, so tiny chunks
 * of wide layers would stream dweight through memory for little work. */
#define CONV_CHUNK_FLOATS (96 * 1024)
#define CONV_MIN_ROWS 256

int
simclr_conv2d_shape_init (SimclrConvShape *s)
{
  if (s->B <= 0 || s->H <= 0 || s->W <= 0 || s->C <= 0 || s->OC <= 0 ||
      s->KH <= 0 || s->KW <= 0 || s->stride <= 0 || s->pad < 0)
    return -1;
  if (s->H + 2 * s->pad < s->KH || s->W + 2 * s->pad < s->KW)
    return -1;
  s->OH = (s->H + 2 * s->pad - s->KH) / s->stride + 1;
  s->OW = (s->W + 2 * s->pad - s->KW) / s->stride + 1;
  /* Flat indices are int32 elsewhere (max-pool argmax); keep tensors below. */
  if ((double) s->B * s->H * s->W * s->C > 2147483647.0 ||
      (double) s->B * s->OH * s->OW * s->OC > 2147483647.0)
    return -1;
  return 0;
}

static int
conv_is_pointwise (const SimclrConvShape *s)
{
  return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
}

static int
conv_threads (const SimclrConvShape *s)
{
  int t = s->threads;
  if (t < 1)
    t = 1;
  if (t > CONV_MAX_THREADS)
    t = CONV_MAX_THREADS;
  return t;
}

/* Images per chunk: a pure function of the shape, so scratch sizing and the
 * kernels agree. */
static int
conv_chunk_images (const SimclrConvShape *s)
{
  size_t per_img_rows = (size_t) s->OH * s->OW;
  size_t K = (size_t) s->KH * s->KW * s->C;
  size_t n = CONV_CHUNK_FLOATS / (per_img_rows * K);
  size_t min_n = (CONV_MIN_ROWS + per_img_rows - 1) / per_img_rows;
  if (n < min_n)
    n = min_n;
  if (n < 1)
    n = 1;
  /* With several workers, make sure each gets at least one chunk. */
  int t = conv_threads (s);
  if (t > 1 && n * t > (size_t) s->B) {
    n = (size_t) s->B / t;
    if (n < 1)
      n = 1;
  }
  if (n > (size_t) s->B)
    n = s->B;
  return (int) n;
}

int
simclr_conv2d_chunk_images (const SimclrConvShape *s)
{
  return conv_is_pointwise (s) ? 0 : conv_chunk_images (s);
}

/* Workers actually used: no more than there are chunks. */
static int
conv_workers (const SimclrConvShape *s)
{
  int t = conv_threads (s);
  int nimg = conv_chunk_images (s);
  int chunks = (s->B + nimg - 1) / nimg;
  return t < chunks ? t : chunks;
}

size_t
simclr_conv2d_scratch_floats (const SimclrConvShape *s)
{
  if (conv_is_pointwise (s))
    return 0;
  size_t K = (size_t) s->KH * s->KW * s->C;
  size_t rows = (size_t) conv_chunk_images (s) * s->OH * s->OW;
  int t = conv_workers (s);
  /* Per worker: one column buffer (reused for dcols in backward); workers
   * beyond the first also keep a private dweight (OC, K) and dbias (OC). */
  return (size_t) t * rows * K + (size_t) (t - 1) * ((size_t) s->OC * K + s->OC);
}

/* ---------------------------------------------------------------------------
 * im2col / col2im
 * inp (n, H, W, C) -> cols (n*OH*OW, KH*KW*C): row (b, oh, ow), column
 * (kh, kw, c) in the order of a weight row (OC, KH, KW, C). Padding reads 0. */
static void
im2col (float *cols, const float *inp, int n, const SimclrConvShape *s)
{
  const int H = s->H, W = s->W, C = s->C;
  const size_t K = (size_t) s->KH * s->KW * C;
  float *row = cols;
  for (int b = 0; b < n; b++) {
    const float *img = inp + (size_t) b * H * W * C;
    for (int oh = 0; oh < s->OH; oh++) {
      for (int ow = 0; ow < s->OW; ow++, row += K) {
        float *dst = row;
        int ih0 = oh * s->stride - s->pad, iw0 = ow * s->stride - s->pad;
        for (int kh = 0; kh < s->KH; kh++) {
          int ih = ih0 + kh;
          if (ih < 0 || ih >= H) {
            memset (dst, 0, sizeof (float) * s->KW * C);
            dst += (size_t) s->KW * C;
            continue;
          }
          const float *src_row = img + (size_t) ih * W * C;
          /* Copy the in-range run of kw in one memcpy (NHWC keeps it
           * contiguous); zero the padded ends. */
          int kw_lo = iw0 < 0 ? -iw0 : 0;
          int kw_hi = s->KW;
          if (iw0 + kw_hi > W)
            kw_hi = W - iw0;
          if (kw_hi < kw_lo)
            kw_hi = kw_lo;
          if (kw_lo > 0)
            memset (dst, 0, sizeof (float) * kw_lo * C);
          if (kw_hi > kw_lo)
            memcpy (dst + (size_t) kw_lo * C,
                src_row + (size_t) (iw0 + kw_lo) * C,
                sizeof (float) * (kw_hi - kw_lo) * C);
          if (kw_hi < s->KW)
            memset (dst + (size_t) kw_hi * C, 0,
                sizeof (float) * (s->KW - kw_hi) * C);
          dst += (size_t) s->KW * C;
        }
      }
    }
  }
}

/* Accumulates cols (n*OH*OW, KH*KW*C) back into dinp (n, H, W, C). */
static void
col2im_add (float *dinp, const float *cols, int n, const SimclrConvShape *s)
{
  const int H = s->H, W = s->W, C = s->C;
  const size_t K = (size_t) s->KH * s->KW * C;
  const float *row = cols;
  for (int b = 0; b < n; b++) {
    float *img = dinp + (size_t) b * H * W * C;
    for (int oh = 0; oh < s->OH; oh++) {
      for (int ow = 0; ow < s->OW; ow++, row += K) {
        int ih0 = oh * s->stride - s->pad, iw0 = ow * s->stride - s->pad;
        for (int kh = 0; kh < s->KH; kh++) {
          int ih = ih0 + kh;
          if (ih < 0 || ih >= H)
            continue;
          int kw_lo = iw0 < 0 ? -iw0 : 0;
          int kw_hi = s->KW;
          if (iw0 + kw_hi > W)
            kw_hi = W - iw0;
          if (kw_hi <= kw_lo)
            continue;
          /* (kw, c) of the run is contiguous in both cols and dinp. */
          const float *src = row + ((size_t) kh * s->KW + kw_lo) * C;
          float *dst = img + ((size_t) ih * W + iw0 + kw_lo) * C;
          size_t len = (size_t) (kw_hi - kw_lo) * C;
          for (size_t i = 0; i < len; i++)
            dst[i] += src[i];
        }
      }
    }
  }
}

/* ---------------------------------------------------------------------------
 * Chunk workers. One task covers a contiguous range of chunks; the caller
 * runs task 0 itself and tasks 1.. on pthreads. */
typedef struct {
  const SimclrConvShape *s;
  int img_begin, img_end, nimg;
  float *cols;
  /* forward */
  float *out;
  const float *inp, *weight, *bias;
  /* backward */
  float *dinp, *dweight, *dbias;
  const float *dout;
} ConvTask;

static void
bias_fill (float *out, const float *bias, size_t rows, int OC)
{
  for (size_t r = 0; r < rows; r++) {
    if (bias)
      memcpy (out + r * OC, bias, sizeof (float) * OC);
    else
      memset (out + r * OC, 0, sizeof (float) * OC);
  }
}

/* out (n*OH*OW, OC) = cols (n*OH*OW, K) x weight^T (K, OC) + bias, per chunk. */
static void *
conv_forward_task (void *arg)
{
  ConvTask *t = arg;
  const SimclrConvShape *s = t->s;
  const int K = s->KH * s->KW * s->C, OC = s->OC;
  const size_t in_img = (size_t) s->H * s->W * s->C;
  const size_t out_rows_img = (size_t) s->OH * s->OW;
  for (int b = t->img_begin; b < t->img_end; b += t->nimg) {
    int n = t->img_end - b < t->nimg ? t->img_end - b : t->nimg;
    int rows = (int) (n * out_rows_img);
    float *o = t->out + (size_t) b * out_rows_img * OC;
    im2col (t->cols, t->inp + (size_t) b * in_img, n, s);
    bias_fill (o, t->bias, rows, OC);
    /* GEMM M = rows (output pixels), N = OC, K = KH*KW*C:
     * out (M, N) += cols (M, K) x weight^T, weight stored (N, K). */
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, rows, OC, K,
        1.0f, t->cols, K, t->weight, K, 1.0f, o, OC);
  }
  return NULL;
}

static void *
conv_backward_task (void *arg)
{
  ConvTask *t = arg;
  const SimclrConvShape *s = t->s;
  const int K = s->KH * s->KW * s->C, OC = s->OC;
  const size_t in_img = (size_t) s->H * s->W * s->C;
  const size_t out_rows_img = (size_t) s->OH * s->OW;
  for (int b = t->img_begin; b < t->img_end; b += t->nimg) {
    int n = t->img_end - b < t->nimg ? t->img_end - b : t->nimg;
    int rows = (int) (n * out_rows_img);
    const float *d = t->dout + (size_t) b * out_rows_img * OC;
    if (t->dbias) {
      for (int r = 0; r < rows; r++)
        for (int o = 0; o < OC; o++)
          t->dbias[o] += d[(size_t) r * OC + o];
    }
    im2col (t->cols, t->inp + (size_t) b * in_img, n, s);
    /* dweight: GEMM M = OC, N = K, K = rows:
     * dweight (OC, K) += dout^T (OC, rows) x cols (rows, K). */
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, K, rows,
        1.0f, d, OC, t->cols, K, 1.0f, t->dweight, K);
    if (t->dinp) {
      /* dcols: GEMM M = rows, N = K, K = OC:
       * dcols (rows, K) = dout (rows, OC) x weight (OC, K); reuses cols. */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, K, OC,
          1.0f, d, OC, t->weight, K, 0.0f, t->cols, K);
      col2im_add (t->dinp + (size_t) b * in_img, t->cols, n, s);
    }
  }
  return NULL;
}

/* Splits the B images into `workers` contiguous ranges of whole chunks and
 * runs fn on each; task 0 on the calling thread. If a thread cannot be
 * created its range runs on the calling thread: same results, just slower. */
static void
conv_run_tasks (ConvTask *tasks, int workers, void *(*fn) (void *))
{
  pthread_t tid[CONV_MAX_THREADS];
  int started[CONV_MAX_THREADS] = { 0 };
  for (int i = 1; i < workers; i++)
    started[i] = pthread_create (&tid[i], NULL, fn, &tasks[i]) == 0;
  fn (&tasks[0]);
  for (int i = 1; i < workers; i++) {
    if (started[i])
      pthread_join (tid[i], NULL);
    else
      fn (&tasks[i]);
  }
}

static int
conv_split (ConvTask *tasks, const SimclrConvShape *s, float *scratch)
{
  const int nimg = conv_chunk_images (s);
  const int workers = conv_workers (s);
  const int chunks = (s->B + nimg - 1) / nimg;
  const size_t K = (size_t) s->KH * s->KW * s->C;
  const size_t col_floats = (size_t) nimg * s->OH * s->OW * K;
  int chunk = 0;
  for (int i = 0; i < workers; i++) {
    /* Spread the chunks evenly: worker i gets chunks [c0, c1). */
    int c1 = (int) ((long) chunks * (i + 1) / workers);
    memset (&tasks[i], 0, sizeof (tasks[i]));
    tasks[i].s = s;
    tasks[i].nimg = nimg;
    tasks[i].img_begin = chunk * nimg;
    tasks[i].img_end = c1 * nimg < s->B ? c1 * nimg : s->B;
    tasks[i].cols = scratch + (size_t) i * col_floats;
    chunk = c1;
  }
  return workers;
}

void
simclr_conv2d_forward (float *out, const float *inp, const float *weight,
    const float *bias, const SimclrConvShape *s, float *scratch)
{
  /* inp (B,H,W,C), weight (OC, KH*KW*C), bias (OC) or NULL,
   * out (B,OH,OW,OC) */
  if (conv_is_pointwise (s)) {
    const int M = s->B * s->H * s->W;
    bias_fill (out, bias, M, s->OC);
    /* GEMM M = B*H*W, N = OC, K = C: out (M, N) += inp (M, K) x weight^T. */
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, s->OC, s->C,
        1.0f, inp, s->C, weight, s->C, 1.0f, out, s->OC);
    return;
  }
  ConvTask tasks[CONV_MAX_THREADS];
  int workers = conv_split (tasks, s, scratch);
  for (int i = 0; i < workers; i++) {
    tasks[i].out = out;
    tasks[i].inp = inp;
    tasks[i].weight = weight;
    tasks[i].bias = bias;
  }
  conv_run_tasks (tasks, workers, conv_forward_task);
}

void
simclr_conv2d_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const SimclrConvShape *s, float *scratch)
{
  /* dout (B,OH,OW,OC), inp (B,H,W,C), weight (OC, KH*KW*C);
   * accumulates dinp (B,H,W,C) (if not NULL), dweight (OC, K), dbias (OC)
   * (if not NULL). */
  const int OC = s->OC;
  if (conv_is_pointwise (s)) {
    const int M = s->B * s->H * s->W, C = s->C;
    if (dbias) {
      for (int r = 0; r < M; r++)
        for (int o = 0; o < OC; o++)
          dbias[o] += dout[(size_t) r * OC + o];
    }
    /* dweight: GEMM M = OC, N = C, K = B*H*W:
     * dweight (OC, C) += dout^T (OC, M) x inp (M, C). */
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, M,
        1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dinp) {
      /* dinp: GEMM M = B*H*W, N = C, K = OC:
       * dinp (M, C) += dout (M, OC) x weight (OC, C). */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, M, C, OC,
          1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    }
    return;
  }
  ConvTask tasks[CONV_MAX_THREADS];
  int workers = conv_split (tasks, s, scratch);
  const size_t K = (size_t) s->KH * s->KW * s->C;
  /* Workers 1.. accumulate into private dweight/dbias after the column
   * buffers, summed into the caller's in a fixed order at the end. */
  float *priv = scratch + (size_t) workers * conv_chunk_images (s) *
      s->OH * s->OW * K;
  for (int i = 0; i < workers; i++) {
    tasks[i].dinp = dinp;
    tasks[i].dout = dout;
    tasks[i].inp = inp;
    tasks[i].weight = weight;
    if (i == 0) {
      tasks[i].dweight = dweight;
      tasks[i].dbias = dbias;
    } else {
      float *p = priv + (size_t) (i - 1) * (OC * K + OC);
      memset (p, 0, sizeof (float) * (OC * K + OC));
      tasks[i].dweight = p;
      tasks[i].dbias = dbias ? p + OC * K : NULL;
    }
  }
  conv_run_tasks (tasks, workers, conv_backward_task);
  for (int i = 1; i < workers; i++) {
    const float *p = tasks[i].dweight;
    for (size_t j = 0; j < OC * K; j++)
      dweight[j] += p[j];
    if (dbias)
      for (int o = 0; o < OC; o++)
        dbias[o] += p[OC * K + o];
  }
}

/* ---------------------------------------------------------------------------
 * Naive twins: direct loops over the definition, the test reference. */
void
simclr_conv2d_forward_naive (float *out, const float *inp,
    const float *weight, const float *bias, const SimclrConvShape *s)
{
  const int H = s->H, W = s->W, C = s->C;
  for (int b = 0; b < s->B; b++)
    for (int oh = 0; oh < s->OH; oh++)
      for (int ow = 0; ow < s->OW; ow++)
        for (int o = 0; o < s->OC; o++) {
          float acc = bias ? bias[o] : 0.0f;
          for (int kh = 0; kh < s->KH; kh++) {
            int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= H)
              continue;
            for (int kw = 0; kw < s->KW; kw++) {
              int iw = ow * s->stride - s->pad + kw;
              if (iw < 0 || iw >= W)
                continue;
              const float *x = inp + (((size_t) b * H + ih) * W + iw) * C;
              const float *w = weight +
                  (((size_t) o * s->KH + kh) * s->KW + kw) * C;
              for (int c = 0; c < C; c++)
                acc += x[c] * w[c];
            }
          }
          out[(((size_t) b * s->OH + oh) * s->OW + ow) * s->OC + o] = acc;
        }
}

void
simclr_conv2d_backward_naive (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const SimclrConvShape *s)
{
  const int H = s->H, W = s->W, C = s->C;
  for (int b = 0; b < s->B; b++)
    for (int oh = 0; oh < s->OH; oh++)
      for (int ow = 0; ow < s->OW; ow++)
        for (int o = 0; o < s->OC; o++) {
          float d = dout[(((size_t) b * s->OH + oh) * s->OW + ow) * s->OC + o];
          if (dbias)
            dbias[o] += d;
          for (int kh = 0; kh < s->KH; kh++) {
            int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= H)
              continue;
            for (int kw = 0; kw < s->KW; kw++) {
              int iw = ow * s->stride - s->pad + kw;
              if (iw < 0 || iw >= W)
                continue;
              size_t xi = (((size_t) b * H + ih) * W + iw) * C;
              size_t wi = (((size_t) o * s->KH + kh) * s->KW + kw) * C;
              for (int c = 0; c < C; c++) {
                dweight[wi + c] += d * inp[xi + c];
                if (dinp)
                  dinp[xi + c] += d * weight[wi + c];
              }
            }
          }
        }
}
