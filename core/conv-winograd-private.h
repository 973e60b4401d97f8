/* conv-winograd-private.h: Winograd F(2x2, 3x3) convolution helpers shared
 * by conv.c (dispatch, scratch sizing), the kernels (conv-winograd.c), the
 * tests and the benchmarks. The kernel entry points are the
 * SimclrWinogradKernels of cpu-private.h.
 *
 * A 3x3 stride-1 pad-1 convolution is cut into 2x2 output tiles, each read
 * from a 4x4 input tile: Y = A^T [(G g G^T) (.) (B^T d B)] A (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2015). The 16
 * element-wise products summed over the input channels are 16 GEMMs
 * (tiles x C) x (C x OC): 16 multiplications per 4 outputs and channel pair
 * instead of 36, 2.25x fewer.
 * Thread-safety: pure functions of their arguments.
 */
#pragma once

#include <stddef.h>

#include "cpu-private.h"

/* Points of the transformed tile (4x4). */
#define SIMCLR_WINOGRAD_POINTS 16

/* Whether the shape is a 3x3 stride-1 pad-1 convolution (the only one
 * F(2x2, 3x3) as written here computes). */
int simclr_winograd_shape_ok (const SimclrConvShape *s);

/* Floats of the transformed weight u (16, C, OC). */
size_t simclr_winograd_u_floats (const SimclrConvShape *s);

/* Tiles one block transforms at a time (a pure function of C and OC: the
 * block's transformed input and products stay in L2). */
int simclr_winograd_block_tiles (const SimclrConvShape *s);

/* Floats of one worker's private buffer: the block's transformed input
 * (16, T + pad, C) and products (16, T + pad, OC). */
size_t simclr_winograd_work_floats (const SimclrConvShape *s);

/* u (16, C, OC) = G g G^T for every (c, oc) of wp (3, 3, C, OC) (the direct
 * forward's packed layout, conv.c CONV_PACK_C_OC, or the turned weight of
 * the transposed convolution in the same layout). */
void simclr_winograd_weight (float *u, const float *wp, int C, int OC);

/* Whether conv.c runs this pass of the shape on a Winograd kernel (the
 * input gradient: as the forward of the transposed convolution); for tests
 * and benchmarks. simclr_conv2d_kernel_name names the set either way. */
int simclr_conv2d_uses_winograd (const SimclrConvShape *s, SimclrConvOp op);
