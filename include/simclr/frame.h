/* frame.h: uint8 video frames as the model's input.
 *
 * The model takes NHWC float32 pixels / 255 (torchvision's ToTensor, no
 * mean/std normalisation), channels in frame order: GRAY8 for 1 input
 * channel, RGB for 3. This header is the one place that rule is written:
 * simclrencoder (train and embed), the trainer, frozen-feature extraction
 * and the benchmarks hand frames to simclr_model_forward_frames /
 * simclr_trainer_forward_frames, which convert each pixel once, straight
 * into the model's input buffer.
 *
 * A SimclrFrame is a borrowed view of one frame: its first row, the
 * distance in bytes between rows (a GstVideoFrame's plane stride; RGB rows
 * are often padded to 4 bytes) and its size as the caller mapped it, so
 * that a frame of another size is refused instead of read past its end.
 * Pure functions; thread-safe.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const uint8_t *data;   /* first row; the caller keeps it alive */
  int stride;            /* bytes from a row to the next, >= side x channels */
  int width, height;     /* pixels per row, rows: what the data holds */
} SimclrFrame;

/* dst (height, width, channels) float, row-major NHWC = frame / 255. */
void simclr_frame_to_input (float *dst, const SimclrFrame *frame, int width,
    int height, int channels);

/* Fills frames (n) with the views of a packed (n, side, side, channels)
 * uint8 array (stride = side x channels). */
void simclr_frames_packed (SimclrFrame *frames, const uint8_t *data, int n,
    int side, int channels);

/* Checks @n frames of side x side x @channels: channels 1 (GRAY8) or 3
 * (RGB), non-NULL data, a width and height of @side, stride >= side x
 * channels. The message names the first bad frame. */
SimclrStatus simclr_frames_check (const SimclrFrame *frames, int n, int side,
    int channels, SimclrError *err);

#ifdef __cplusplus
}
#endif
