/* frame.c: the model's input rule, pixel / 255 (see include/simclr/frame.h). */
#include "simclr/frame.h"

void
simclr_frame_to_input (float *dst, const SimclrFrame *frame, int width,
    int height, int channels)
{
  /* dst (height, width, channels); source rows frame->stride bytes apart. */
  const size_t row = (size_t) width * channels;
  for (int y = 0; y < height; y++) {
    const uint8_t *s = frame->data + (size_t) y * frame->stride;
    float *d = dst + (size_t) y * row;
    for (size_t x = 0; x < row; x++)
      d[x] = s[x] * (1.0f / 255.0f);
  }
}

void
simclr_frames_packed (SimclrFrame *frames, const uint8_t *data, int n,
    int side, int channels)
{
  const size_t bytes = (size_t) side * side * channels;
  for (int i = 0; i < n; i++) {
    frames[i].data = data + (size_t) i * bytes;
    frames[i].stride = side * channels;
    frames[i].width = frames[i].height = side;
  }
}

SimclrStatus
simclr_frames_check (const SimclrFrame *frames, int n, int side,
    int channels, SimclrError *err)
{
  if (channels != 1 && channels != 3)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "frames: %d channels; GRAY8 has 1, RGB 3", channels);
  if (n > 0 && !frames)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "frames: NULL array of %d frames", n);
  for (int i = 0; i < n; i++) {
    if (!frames[i].data)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "frames: frame %d of %d has no data", i, n);
    if (frames[i].width != side || frames[i].height != side)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "frames: frame %d of %d is %d x %d pixels; the model takes %d x %d",
          i, n, frames[i].width, frames[i].height, side, side);
    if (frames[i].stride < side * channels)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "frames: frame %d has a stride of %d bytes, less than its %d x %d "
          "pixels of %d channel(s)", i, frames[i].stride, side, side,
          channels);
  }
  return SIMCLR_OK;
}
