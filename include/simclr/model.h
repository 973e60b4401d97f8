/* model.h: the SimCLR encoder (ResNet-18/34/50) and its projection head.
 *
 * A SimclrModel owns ONE contiguous float buffer of parameters, a gradient
 * buffer of the same layout and a separate buffer of batch-norm running
 * statistics, plus activations preallocated for max_batch rows at creation
 * (a larger batch is an error). A table of named slices (torchvision
 * state_dict names; the projection head under "head.") describes both
 * buffers, so checkpointing, gradient all-reduce and the optimiser are loops
 * over one buffer.
 *
 * Architecture: torchvision's ResNet (basic blocks for 18/34, bottleneck
 * with expansion 4 for 50, its stride on the 3x3 convolution as torchvision
 * does, "ResNet v1.5"), channels max(1, round(c * width)); stem "cifar"
 * (3x3 stride 1, no max-pool), "stride2" (3x3 stride 2, no max-pool) or
 * "imagenet" (7x7 stride 2 + max-pool 3x3/2);
 * global average pool gives h (B, d). Head:
 *   proj_layers 2 (SimCLR v1): head.0 Linear(d,hid) - head.1 ReLU - head.2 Linear(hid,out)
 *   proj_layers 3 (SimCLR v2): head.0 Linear(d,hid,bias=False) - head.1 BN1d -
 *                              head.2 ReLU - head.3 Linear(hid,hid,bias=False) -
 *                              head.4 BN1d - head.5 ReLU - head.6 Linear(hid,out)
 *   (a bias before BN is redundant; the peer's head does the same)
 *   (this is nn.Sequential numbering, so a PyTorch module of that shape loads
 *   with strict=True). proj_layers 0: no head, z = h.
 * Initialisation as torchvision: convolutions Kaiming normal (fan_out, relu),
 * BN weight 1 bias 0, Linear PyTorch's default uniform(+-1/sqrt(in)) for weight
 * and bias; optional zero-init of each residual block's last BN gamma.
 * Random numbers come from simclr/rng.h with stream = tensor index.
 *
 * Convolution weights are stored (O, KH, KW, I) in memory (NHWC kernels);
 * checkpoints convert to PyTorch's OIHW.
 *
 * Thread-safety: one model, one thread at a time; distinct models run
 * concurrently.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/comm.h"
#include "simclr/error.h"
#include "simclr/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SimclrModel SimclrModel;

typedef enum {
  SIMCLR_ARCH_RESNET18 = 0,
  SIMCLR_ARCH_RESNET34 = 1,
  SIMCLR_ARCH_RESNET50 = 2,
} SimclrArch;

typedef enum {
  SIMCLR_STEM_CIFAR = 0,     /* conv 3x3 stride 1 pad 1, no max-pool */
  SIMCLR_STEM_IMAGENET = 1,  /* conv 7x7 stride 2 pad 3 + max-pool 3x3/2 */
  SIMCLR_STEM_STRIDE2 = 2,   /* conv 3x3 stride 2 pad 1, no max-pool: every
                              * later layer at half the side of the CIFAR
                              * stem's (about a quarter of the arithmetic),
                              * for small images on a small CPU budget */
} SimclrStem;

typedef struct {
  SimclrArch arch;
  double width;                /* 0.25 .. 4: channels max(1, round(c * width)) */
  int in_channels;             /* 1 or 3 */
  SimclrStem stem;
  int image_size;              /* input H = W */
  int max_batch;               /* rows forward accepts (scratch sized for it) */
  int proj_layers;             /* 0 (none), 2 (v1) or 3 (v2, with BN) */
  int proj_hidden;             /* 0 = feature dim d */
  int proj_dim;                /* 128 */
  int zero_init_residual;      /* 1: last BN gamma of each block starts at 0 */
  double bn_momentum, bn_eps;  /* 0.1, 1e-5 (PyTorch convention) */
  int threads;                 /* worker threads for thin convs (0 = 1) */
} SimclrModelConfig;

/* ResNet-18, width 1, 3 channels, CIFAR stem, 32x32, max_batch 256, head 2
 * layers (hidden = d) to 128, no zero-init, BN 0.1 / 1e-5, 1 thread. */
void simclr_model_config_default (SimclrModelConfig *cfg);

/* Checks every field's range; the message names the field. */
SimclrStatus simclr_model_config_validate (const SimclrModelConfig *cfg,
    SimclrError *err);

/* Names used in checkpoint metadata: "resnet18", "cifar", ... NULL if out of
 * range. The _from_string functions return -1 for an unknown name. */
const char *simclr_arch_to_string (SimclrArch arch);
int simclr_arch_from_string (const char *s);
const char *simclr_stem_to_string (SimclrStem stem);
int simclr_stem_from_string (const char *s);

/* Creates a model initialised from @seed. Returns NULL with @err set if the
 * configuration is invalid or memory runs out. Free with simclr_model_free. */
SimclrModel *simclr_model_new (const SimclrModelConfig *cfg, uint64_t seed,
    SimclrError *err);
void simclr_model_free (SimclrModel *m);   /* NULL is a no-op */

/* A model at another input size (multi-crop: small views through the same
 * network) that SHARES @owner's parameters, gradients, batch-norm running
 * statistics and num_batches_tracked: only its activations (for
 * @cfg->image_size x @cfg->max_batch) are its own. The tensors do not
 * depend on the input size (global average pool), so @cfg may differ from
 * @owner's configuration only in image_size, max_batch and threads (the
 * error names the first other field that differs). As in PyTorch when one
 * module runs two train forwards per step, each train forward of either
 * model updates the shared running statistics and counts one batch; a
 * backward ACCUMULATES into the shared gradient buffer, so zero it once
 * (simclr_model_zero_grad on either) before both backwards. The batch-norm
 * all-reduce hook is per model (set it on both). @owner must own its
 * memory (not be shared itself) and outlive the shared model; freeing the
 * shared model leaves the borrowed buffers alone. */
SimclrModel *simclr_model_new_shared (const SimclrModelConfig *cfg,
    SimclrModel *owner, SimclrError *err);
/* The model whose buffers @m borrows, NULL if @m owns its own. */
const SimclrModel *simclr_model_get_owner (const SimclrModel *m);

/* The tensors of the model @cfg describes (names, shapes, storage) without
 * its memory or initialisation, so a checkpoint is checked against the
 * configuration its header claims before simclr_model_new allocates it (a
 * few hundred bytes can claim a ResNet-50 x4). Only simclr_model_get_config,
 * simclr_model_n_tensors, simclr_model_tensor and simclr_model_find_tensor
 * may be used on it; free it with simclr_model_free. */
SimclrModel *simclr_model_layout_new (const SimclrModelConfig *cfg,
    SimclrError *err);

/* Borrowed; valid while @m lives. */
const SimclrModelConfig *simclr_model_get_config (const SimclrModel *m);
int simclr_model_feature_dim (const SimclrModel *m);      /* d (h) */
int simclr_model_output_dim (const SimclrModel *m);       /* proj_dim, or d without head */

/* input (B,H,W,C) NHWC float, pixel/255, H = W = image_size, C = in_channels;
 * 1 <= B <= max_batch. h (B,d) and z (B,out) may be NULL (caller-owned).
 * train=1: batch statistics, caches for backward, updates running stats
 * (and num_batches_tracked); train=0: running statistics, no cache.
 * The input is copied into the model, so the caller may reuse it. */
SimclrStatus simclr_model_forward (SimclrModel *m, const float *input, int B,
    int train, float *h, float *z, SimclrError *err);

/* As simclr_model_forward on B uint8 frames of image_size x image_size
 * (GRAY8 for in_channels 1, RGB for 3; @channels must match), each with its
 * own row stride: every pixel becomes pixel / 255 straight in the model's
 * input buffer (see frame.h), the only copy. */
SimclrStatus simclr_model_forward_frames (SimclrModel *m,
    const SimclrFrame *frames, int B, int channels, int train, float *h,
    float *z, SimclrError *err);

/* After a train forward: ACCUMULATES parameter gradients from dz (B,out)
 * (B of that forward). Fails if the last forward was not a train forward. */
SimclrStatus simclr_model_backward (SimclrModel *m, const float *dz,
    SimclrError *err);

/* As simclr_model_backward, and also ACCUMULATES the gradient wrt the input
 * into dinput (B,H,W,C) if not NULL (used by tests). */
SimclrStatus simclr_model_backward_input (SimclrModel *m, const float *dz,
    float *dinput, SimclrError *err);

void simclr_model_zero_grad (SimclrModel *m);

/* The one parameter buffer, its gradient (same layout) and the BN running
 * statistics (running_mean, running_var of every BN). Borrowed: owned by @m,
 * writable, valid while @m lives. @n (may be NULL) receives the float count. */
float *simclr_model_params (SimclrModel *m, size_t *n);
float *simclr_model_grads (SimclrModel *m, size_t *n);
float *simclr_model_buffers (SimclrModel *m, size_t *n);

/* Train forwards seen (PyTorch's num_batches_tracked, equal for every BN). */
int64_t simclr_model_num_batches_tracked (const SimclrModel *m);
void simclr_model_set_num_batches_tracked (SimclrModel *m, int64_t n);

typedef enum {
  SIMCLR_TENSOR_PARAM = 0,     /* slice of params (and grads) */
  SIMCLR_TENSOR_BUFFER = 1,    /* slice of buffers (running stats) */
  SIMCLR_TENSOR_COUNTER = 2,   /* a BN's num_batches_tracked: no storage,
                                * the value is simclr_model_num_batches_tracked;
                                * saved as I64 shape (); offset = numel = 0 */
} SimclrTensorStorage;

typedef struct {
  const char *name;            /* torchvision state_dict name, head under "head." */
  SimclrTensorStorage storage;
  size_t offset, numel;        /* in the params or buffers buffer */
  int ndim;
  int64_t shape[4];            /* PyTorch shape (conv OIHW) */
  int ohwi;                    /* 1: stored (O,KH,KW,I), converted on save/load */
  int adapt;                   /* 1: weight decay + LARS adaptation (conv/linear weights) */
} SimclrTensorInfo;

/* The tensors in state_dict order. Borrowed, valid while @m lives. */
int simclr_model_n_tensors (const SimclrModel *m);
const SimclrTensorInfo *simclr_model_tensor (const SimclrModel *m, int i);
int simclr_model_find_tensor (const SimclrModel *m, const char *name); /* -1 if absent */

/* Sums used by batch norm (training forward and backward) go through @fn so
 * every replica normalises with the global batch statistics (SyncBN).
 * NULL: local statistics. */
void simclr_model_set_allreduce (SimclrModel *m, SimclrAllreduceFn fn,
    void *user);

#ifdef __cplusplus
}
#endif
