/* conv-winograd-private.h: Winograd convolution helpers shared by conv.c
 * (dispatch, scratch sizing), the kernels (conv-winograd.c), the tests and
 * the benchmarks. The kernel entry points are the SimclrWinogradKernels of
 * cpu-private.h; each names its output tile side m.
 *
 * A 3x3 stride-1 pad-1 convolution is cut into m x m output tiles, each
 * read from an (m+2) x (m+2) input tile: Y = A^T [(G g G^T) (.) (B^T d B)] A
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
 * 2015). The (m+2)^2 element-wise products summed over the input channels
 * are (m+2)^2 GEMMs (tiles x C) x (C x OC):
 *   F(2x2, 3x3): 16 multiplications per 4 outputs and channel pair instead
 *                of 36, 2.25x fewer;
 *   F(4x4, 3x3): 36 per 16 outputs instead of 144, 4x fewer (larger
 *                transforms, and larger rounding errors: see
 *                conv-winograd.c and test-conv-winograd.c).
 * Thread-safety: pure functions of their arguments.
 */
#pragma once

#include <stddef.h>

#include "cpu-private.h"

/* Points of the transformed tile, (m+2)^2: 16 for F(2x2, 3x3), 36 for
 * F(4x4, 3x3). */
int simclr_winograd_points (const SimclrWinogradKernels *k);

/* Whether the shape is a 3x3 stride-1 pad-1 convolution (the only one the
 * kernels as written here compute). */
int simclr_winograd_shape_ok (const SimclrConvShape *s);

/* Floats of the transformed weight u (points, C, OC). */
size_t simclr_winograd_u_floats (const SimclrWinogradKernels *k,
    const SimclrConvShape *s);

/* Tiles one block transforms at a time (a pure function of m, C and OC:
 * the block's transformed input and products stay in L2). */
int simclr_winograd_block_tiles (const SimclrWinogradKernels *k,
    const SimclrConvShape *s);

/* Floats of one worker's private buffer: the block's transformed input
 * (points, T + pad, C) and products (points, T + pad, OC). */
size_t simclr_winograd_work_floats (const SimclrWinogradKernels *k,
    const SimclrConvShape *s);

/* u (points, C, OC) = G g G^T for every (c, oc) of wp (3, 3, C, OC) (the
 * direct forward's packed layout, conv.c CONV_PACK_C_OC, or the turned
 * weight of the transposed convolution in the same layout). */
void simclr_winograd_weight (const SimclrWinogradKernels *k, float *u,
    const float *wp, int C, int OC);

/* Weight gradient (the kernels' dweight member). With P points and the
 * tiles of the forward, dweight = sum over tiles of G^T [(B^T d B) (.)
 * (A dy A^T)] G per (c, oc): the transpose of the forward's linear map in
 * the weight, so the forward's input transform, the output gradient's
 * tile dy (m x m) through A (the transpose of A^T) and one weight-side
 * transform G^T ... G at the end. du (P, OC, C) holds the sums. */

/* Tiles one block of the weight gradient transforms at a time. */
int simclr_winograd_dw_block_tiles (const SimclrWinogradKernels *k,
    const SimclrConvShape *s);

/* Floats of one worker's private buffer for the weight gradient: the
 * block's transformed input (P, T, C) and output gradient (P, T, OC). */
size_t simclr_winograd_dw_work_floats (const SimclrWinogradKernels *k,
    const SimclrConvShape *s);

/* Accumulates dweight (OC, 3, 3, C) += G^T du G for every (oc, c) of du
 * (P, OC, C), in double, rounded once. */
void simclr_winograd_dweight_out (const SimclrWinogradKernels *k,
    float *dweight, const float *du, int C, int OC);

/* The same for the output channels [o0, o1) from @groups partial sums
 * du_g (P, OC, C), du_g = du + g P OC C (each the sum over its own tiles):
 * per element their sum in double, in the order of g, then G^T . G in
 * double, rounded once into dweight. Rows of different calls are
 * independent (threads may split them). With groups = 1, o0 = 0, o1 = OC:
 * simclr_winograd_dweight_out. */
void simclr_winograd_dweight_out_sum (const SimclrWinogradKernels *k,
    float *dweight, const float *du, int groups, int o0, int o1, int C,
    int OC);

/* Whether conv.c runs this pass of the shape on a Winograd kernel (the
 * input gradient: as the forward of the transposed convolution); for tests
 * and benchmarks. simclr_conv2d_kernel_name names the set either way. */
int simclr_conv2d_uses_winograd (const SimclrConvShape *s, SimclrConvOp op);

/* The output tile side m of the Winograd kernel conv.c runs this pass on
 * (2 or 4), 0 when it runs none; for tests and benchmarks. */
int simclr_conv2d_winograd_tile (const SimclrConvShape *s, SimclrConvOp op);

/* The image groups conv.c cuts a Winograd weight gradient of this shape
 * into (each summed into its own partial du; a function of the shape
 * only), 0 when it runs none; for tests and benchmarks. */
int simclr_conv2d_winograd_dw_groups (const SimclrConvShape *s);
