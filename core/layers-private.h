/* layers-private.h: forward/backward kernels of the network layers.
 *
 * Private to libsimclr (tests reach it through the static library). Every
 * layer is a pair of free functions: outputs first, then inputs, then sizes.
 * Activations are NHWC float32: an image batch (B,H,W,C) is also a matrix of
 * M = B*H*W rows and C columns, which is how batch norm, ReLU and the 1x1
 * convolution see it.
 *
 * Backward functions ACCUMULATE (+=) into every gradient they write (dinp,
 * dweight, dbias): the caller zeroes gradients once per step. This is what a
 * residual network needs (two branches add into one dinp).
 *
 * Every BLAS-backed kernel has a *_naive twin (plain loops, same contract)
 * used as the test reference. Kernels never allocate: the caller passes
 * scratch sized by the matching *_scratch_floats function. Thread-safety:
 * kernels are reentrant; they may use OpenBLAS threads and, for thin
 * convolutions, split work over up to `threads` worker threads of their own.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Runs fn (ctx, task) for task = 0 .. tasks-1 (clipped to 1 ..
 * SIMCLR_MAX_THREADS) and returns when all have finished: task 0 on the
 * calling thread, the others on a pool of worker threads kept for the
 * process (layers.c). Safe from several threads at once and from inside a
 * task: a call that finds the pool busy runs its tasks on threads started
 * for it instead of waiting. fn must not depend on which thread runs it. */
#define SIMCLR_MAX_THREADS 16
void simclr_parallel_for (int tasks, void (*fn) (void *ctx, int task),
    void *ctx);
/* The same without the pool: tasks 1.. on threads started for this call
 * (what simclr_parallel_for falls back to when the pool is busy). */
void simclr_parallel_for_spawn (int tasks,
    void (*fn) (void *ctx, int task), void *ctx);

/* In-place sum across data-parallel replicas (MPI_Allreduce with MPI_SUM).
 * NULL means one replica: the local values are the global ones. */
typedef void (*SimclrAllreduceFn) (float *buf, int n, void *user);

/* The kernel table of one instruction-set level (cpu-private.h). */
typedef struct SimclrKernels SimclrKernels;

/* ---------------------------------------------------------------------------
 * conv2d
 * inp (B,H,W,C) NHWC; weight (OC, KH, KW, C) row-major, i.e. (OC, K) with
 * K = KH*KW*C; bias (OC) or NULL; out (B,OH,OW,OC) with
 * OH = (H + 2*pad - KH) / stride + 1, OW likewise.
 * Forward: a direct kernel of the CPU's instruction set where one takes the
 * shape, else im2col over chunks of images + cblas_sgemm; a 1x1 stride-1
 * pad-0 convolution is a plain GEMM on inp without columns.
 */
typedef struct {
  int B, H, W, C;       /* input */
  int OC, KH, KW;       /* output channels, kernel size */
  int stride, pad;
  int OH, OW;           /* derived by simclr_conv2d_shape_init */
  int threads;          /* worker threads the fast path may use (0 or 1: the
                         * calling thread only); results must not depend on it
                         * beyond float summation order */
  const SimclrKernels *kernels; /* NULL: the CPU's (simclr_cpu_kernels);
                                 * tests and benchmarks may pin a level's
                                 * (simclr_cpu_kernels_at) */
} SimclrConvShape;

/* Fills OH, OW; returns 0 if the shape is valid, -1 otherwise. */
int simclr_conv2d_shape_init (SimclrConvShape *s);

/* Floats of scratch the fast forward/backward need (0 for 1x1 convolutions). */
size_t simclr_conv2d_scratch_floats (const SimclrConvShape *s);

/* Images per im2col chunk the fast path uses (a pure function of the shape;
 * exposed so tests can cover chunk boundaries). 0 for 1x1 convolutions,
 * which need no columns. */
int simclr_conv2d_chunk_images (const SimclrConvShape *s);

/* Worker threads the fast path may start for this shape: s->threads, capped
 * so each worker gets enough work to pay for starting it, and by the number
 * of chunks (exposed for tests). 1 for 1x1 convolutions. */
int simclr_conv2d_max_workers (const SimclrConvShape *s);

/* Which path runs one pass of a convolution (for tests and benchmarks):
 * the name of the instruction set whose direct kernel serves the shape
 * ("avx2", ...), or "gemm" for im2col / col2im + cblas_sgemm (and the
 * plain GEMM of a 1x1 stride-1 convolution). */
typedef enum {
  SIMCLR_CONV_FORWARD,
  SIMCLR_CONV_DWEIGHT,          /* weight (and bias) gradient */
  SIMCLR_CONV_DINPUT,           /* input gradient */
} SimclrConvOp;
const char *simclr_conv2d_kernel_name (const SimclrConvShape *s,
    SimclrConvOp op);

void simclr_conv2d_forward (float *out, const float *inp, const float *weight,
    const float *bias, const SimclrConvShape *s, float *scratch);

/* What follows a convolution in eval mode, applied to each chunk of
 * images while it is in cache: out = act (conv * scale + shift + residual)
 * (residual (B,OH,OW,OC) or NULL; act = ReLU with relu): batch norm with
 * its running statistics, the residual sum and the ReLU, without a pass
 * over memory of their own. Same arithmetic as simclr_affine_act. */
typedef struct {
  const float *scale, *shift;   /* (OC) */
  const float *residual;
  int relu;
} SimclrConvEpilogue;

void simclr_conv2d_forward_epilogue (float *out, const float *inp,
    const float *weight, const float *bias, const SimclrConvEpilogue *ep,
    const SimclrConvShape *s, float *scratch);

/* Accumulates dinp (may be NULL: the stem needs no input gradient), dweight,
 * dbias (may be NULL when the convolution has no bias): the two passes
 * below, one after the other. */
void simclr_conv2d_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const SimclrConvShape *s, float *scratch);
/* Accumulates dweight (OC, K) and dbias (OC) (if not NULL). */
void simclr_conv2d_backward_weight (float *dweight, float *dbias,
    const float *dout, const float *inp, const SimclrConvShape *s,
    float *scratch);
/* Accumulates dinp (B,H,W,C). */
void simclr_conv2d_backward_input (float *dinp, const float *dout,
    const float *weight, const SimclrConvShape *s, float *scratch);
/* Writes dinp (B,H,W,C) = the input gradient: for a caller whose dinp has
 * no other term yet, instead of zeroing it first (a pass over memory). */
void simclr_conv2d_backward_input_set (float *dinp, const float *dout,
    const float *weight, const SimclrConvShape *s, float *scratch);
/* A ResNet block's two input gradients in one pass: writes dinp (B,H,W,C)
 * = the input gradient of the 3x3 stride-2 pad-1 convolution s (dout,
 * weight) + that of the 1x1 stride-2 pad-0 shortcut ssc on the same input
 * (dsc (B,OH,OW,ssc->OC), wsc (ssc->OC, C)), where a kernel set of the
 * CPU's level has such a kernel (simclr_conv2d_s2_shortcut_fusable);
 * returns 1 then, else 0 without touching dinp (the caller runs the two
 * separately). Scratch as for s. */
int simclr_conv2d_s2_shortcut_fusable (const SimclrConvShape *s,
    const SimclrConvShape *ssc);
int simclr_conv2d_backward_input_s2_shortcut (float *dinp,
    const float *dout, const float *weight, const SimclrConvShape *s,
    const float *dsc, const float *wsc, const SimclrConvShape *ssc,
    float *scratch);

void simclr_conv2d_forward_naive (float *out, const float *inp,
    const float *weight, const float *bias, const SimclrConvShape *s);
void simclr_conv2d_backward_naive (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const SimclrConvShape *s);

/* ---------------------------------------------------------------------------
 * batch norm over the rows of an (M, C) matrix: 2d (M = B*H*W) and 1d (M = B).
 * weight, bias (C); running_mean, running_var (C); mean, rstd (C) are the
 * batch statistics cached by the training forward for backward.
 * Training: biased batch variance to normalise; running statistics updated as
 * PyTorch does: r = (1 - momentum) * r + momentum * batch, with the unbiased
 * variance (count / (count - 1)). `count` is the global row count (M summed
 * over replicas). With `allreduce` non-NULL the sums are reduced across
 * replicas so every replica normalises with the global batch statistics.
 */
void simclr_batchnorm_forward_train (float *out, float *mean, float *rstd,
    float *running_mean, float *running_var, const float *inp,
    const float *weight, const float *bias, int M, int C, float momentum,
    float eps, SimclrAllreduceFn allreduce, void *allreduce_user);

/* Eval mode: normalise with the running statistics. */
void simclr_batchnorm_forward_eval (float *out, const float *inp,
    const float *weight, const float *bias, const float *running_mean,
    const float *running_var, int M, int C, float eps);

/* Accumulates dinp, dweight, dbias. `allreduce` as in forward: the two
 * per-channel sums of the backward pass are reduced across replicas. */
void simclr_batchnorm_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const float *mean, const float *rstd, int M, int C,
    SimclrAllreduceFn allreduce, void *allreduce_user);

/* Batch norm fused with what follows it in a ResNet unit, in one pass over
 * memory: out = act (BN (inp) + residual), residual (M, C) or NULL, act =
 * ReLU when relu, else the identity. out may alias residual (not inp).
 * Statistics, running statistics and allreduce as above. Up to `threads`
 * threads share the rows (results depend on the count only through the
 * order partial sums are merged in, in double). */
void simclr_batchnorm_act_forward_train (float *out, float *mean, float *rstd,
    float *running_mean, float *running_var, const float *inp,
    const float *residual, int relu, const float *weight, const float *bias,
    int M, int C, float momentum, float eps, int threads,
    SimclrAllreduceFn allreduce, void *allreduce_user);

/* The statistics half of act_forward_train: mean, rstd and the running
 * statistics, with the same allreduce calls, and no output pass: for a
 * downsampling shortcut whose normalised output only feeds the block's
 * residual sum (act_forward_train_bn_residual normalises it there). */
void simclr_batchnorm_stats_train (float *mean, float *rstd,
    float *running_mean, float *running_var, const float *inp, int M, int C,
    float momentum, float eps, int threads, SimclrAllreduceFn allreduce,
    void *allreduce_user);
/* act_forward_train whose residual is itself batch-normalised: out =
 * act (BN (inp) + BN_r (res_inp)), BN_r with res_weight, res_bias and the
 * batch statistics res_mean, res_rstd (from simclr_batchnorm_stats_train).
 * The same float operations, so the same bits, as normalising res_inp into
 * a tensor first (act_forward_train, relu 0, no residual) and passing that
 * as the residual, without writing and reading that tensor. out must not
 * alias inp or res_inp. */
void simclr_batchnorm_act_forward_train_bn_residual (float *out, float *mean,
    float *rstd, float *running_mean, float *running_var, const float *inp,
    const float *res_inp, const float *res_weight, const float *res_bias,
    const float *res_mean, const float *res_rstd, int relu,
    const float *weight, const float *bias, int M, int C, float momentum,
    float eps, int threads, SimclrAllreduceFn allreduce,
    void *allreduce_user);
void simclr_batchnorm_act_forward_eval (float *out, const float *inp,
    const float *residual, int relu, const float *weight, const float *bias,
    const float *running_mean, const float *running_var, int M, int C,
    float eps, int threads);

/* Eval-mode batch norm as one scale and shift per channel (C):
 * scale = weight / sqrt (running_var + eps), shift = bias - mean * scale;
 * the formula of simclr_batchnorm_(act_)forward_eval. */
void simclr_batchnorm_eval_affine (float *scale, float *shift,
    const float *weight, const float *bias, const float *running_mean,
    const float *running_var, int C, float eps);

/* out = act (inp * scale + shift + residual) per row of C channels (the
 * batch-norm affine pass on its own; out may alias inp or residual): the
 * convolution's epilogue in eval mode. */
void simclr_affine_act (float *out, const float *inp, const float *residual,
    int relu, size_t rows, int C, const float *scale, const float *shift);

/* Backward of act_forward_train without a residual: dout is the gradient
 * wrt its out; with relu the ReLU's mask is recomputed from inp, weight,
 * bias and the batch statistics exactly as the forward computed it (bias
 * is only read with relu). Accumulates dweight, dbias and, with
 * accumulate, dinp; without, writes dinp (no zeroing pass needed). A unit
 * with a residual masks its gradient itself (the shortcut needs it too)
 * and calls this with relu 0. */
void simclr_batchnorm_act_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const float *bias, const float *mean, const float *rstd, int relu,
    int accumulate, int M, int C, int threads, SimclrAllreduceFn allreduce,
    void *allreduce_user);

/* Backward of act_forward_train with a residual and a ReLU (a block's last
 * unit), y = relu (BN (inp) + residual) its output and dout the gradient
 * wrt y: writes dmask = (y > 0 ? dout : 0), the gradient of both BN's
 * output and the residual (dmask may alias dout), while it sums for BN
 * (the mask needs no pass of its own); then dinp as act_backward with
 * relu 0 fed dmask (same arithmetic, same bits). Accumulates dweight,
 * dbias and, with accumulate, dinp; without, writes dinp. */
void simclr_batchnorm_residual_relu_backward (float *dinp, float *dmask,
    float *dweight, float *dbias, const float *dout, const float *y,
    const float *inp, const float *weight, const float *mean,
    const float *rstd, int accumulate, int M, int C, int threads,
    SimclrAllreduceFn allreduce, void *allreduce_user);

/* ---------------------------------------------------------------------------
 * elementwise, n floats. relu_backward uses the forward OUTPUT (out > 0). */
void simclr_relu_forward (float *out, const float *inp, size_t n);
void simclr_relu_backward (float *dinp, const float *dout, const float *out,
    size_t n);
/* out = a + b (out may alias a or b). Backward is dinp += dout for both. */
void simclr_add_forward (float *out, const float *a, const float *b, size_t n);
void simclr_add_backward (float *da, float *db, const float *dout, size_t n);

/* ---------------------------------------------------------------------------
 * max-pool 3x3 stride 2 pad 1 (the ImageNet stem): inp (B,H,W,C),
 * out (B,OH,OW,C), OH = (H + 2 - 3) / 2 + 1; argmax (B,OH,OW,C) records the
 * flat input index of each maximum for backward. */
void simclr_maxpool_forward (float *out, int32_t *argmax, const float *inp,
    int B, int H, int W, int C);
void simclr_maxpool_backward (float *dinp, const float *dout,
    const int32_t *argmax, int B, int OH, int OW, int C);

/* global average pool: inp (B, HW, C) -> out (B, C). */
void simclr_avgpool_forward (float *out, const float *inp, int B, int HW, int C);
void simclr_avgpool_backward (float *dinp, const float *dout, int B, int HW,
    int C);

/* ---------------------------------------------------------------------------
 * linear: inp (B, IC), weight (OC, IC) as PyTorch stores it, bias (OC) or
 * NULL, out (B, OC) = inp weight^T + bias. */
void simclr_linear_forward (float *out, const float *inp, const float *weight,
    const float *bias, int B, int IC, int OC);
void simclr_linear_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight, int B, int IC,
    int OC);
void simclr_linear_forward_naive (float *out, const float *inp,
    const float *weight, const float *bias, int B, int IC, int OC);
void simclr_linear_backward_naive (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight, int B, int IC,
    int OC);
