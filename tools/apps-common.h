/* apps-common.h: what the embedding tools (simclr-search, simclr-dedup,
 * simclr-map) share: decoding images and videos with GStreamer, an
 * embedder from command-line options, thumbnails, contact sheets written as
 * JPEG (libturbojpeg) and a minimal PNG writer (zlib).
 *
 * Tool code, not core: it may print and it uses GStreamer; the math (index,
 * embedding, PCA) is libsimclr's.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "simclr/simclr.h"

/* ---- media ------------------------------------------------------------- */

/* One decoded frame: packed RGB (stride w * 3). Borrowed for the callback. */
typedef struct {
  const uint8_t *rgb;
  int w, h;
  int64_t index;        /* frame number in its file (0 for an image) */
  int64_t pts_ns;       /* -1 if unknown */
  const char *path;     /* the file it came from */
} AppsFrame;

/* Return 0 to go on, non-zero to stop decoding this file. */
typedef int (*AppsFrameFn) (const AppsFrame *f, void *user);

/* Sorted list of the images in a folder (*.jpg, *.jpeg, *.png, *.bmp, any
 * case), or { path } for a file. NULL-terminated, free with apps_strv_free;
 * NULL (message printed) if nothing can be listed. */
char **apps_list_inputs (const char *path);
void apps_strv_free (char **v);
int apps_is_image_name (const char *path);

/* Decodes every frame of @path (an image or a video; GStreamer decodebin),
 * every @every-th frame for a video (1: all), calling @fn. Returns 0, or -1
 * with a message naming the file in @errbuf. */
int apps_decode (const char *path, int every, AppsFrameFn fn, void *user,
    char *errbuf, size_t errlen);

/* ---- embedding options ------------------------------------------------- */

typedef struct {
  const char *checkpoint;       /* --checkpoint FILE */
  const char *embed;            /* --embed h|z|raw|ahash (default h) */
  int flip_average;             /* --flip-average */
  int size;                     /* --size for raw / ahash */
} AppsEmbedOptions;

/* Parses one embedding option at argv[*i] (advancing *i past its value).
 * Returns 1 if it was one, 0 if not, -1 on a missing value. */
int apps_parse_embed_option (AppsEmbedOptions *o, int argc, char **argv,
    int *i);
extern const char *const apps_embed_usage;

/* Loads the model (if any) and creates the embedder; prints the error and
 * returns NULL on failure. *model receives the model to free. */
SimclrEmbedder *apps_embedder_new (const AppsEmbedOptions *o,
    SimclrModel **model);
/* A short description ("h of enc.safetensors, flip-averaged"). Static. */
const char *apps_embedder_describe (const AppsEmbedOptions *o);

/* ---- images ------------------------------------------------------------ */

typedef struct {
  int w, h;
  uint8_t *rgb;         /* (h, w, 3) */
} AppsImage;

AppsImage *apps_image_new (int w, int h, uint8_t r, uint8_t g, uint8_t b);
void apps_image_free (AppsImage *im);
/* A copy of @src (packed RGB) fitted inside tw x th keeping its aspect
 * ratio, centred on a dark background. */
AppsImage *apps_thumbnail (const uint8_t *rgb, int w, int h, int tw, int th);
void apps_image_paste (AppsImage *dst, const AppsImage *src, int x, int y);
void apps_image_rect (AppsImage *im, int x, int y, int w, int h, int border,
    uint8_t r, uint8_t g, uint8_t b);
void apps_image_fill (AppsImage *im, int x, int y, int w, int h, uint8_t r,
    uint8_t g, uint8_t b);
/* Draws @text (digits, letters, '.', '-', ':', '#', ' ' ...; a 5x7 font
 * scaled by @scale) with its top-left at x, y. */
void apps_image_text (AppsImage *im, int x, int y, int scale,
    const char *text, uint8_t r, uint8_t g, uint8_t b);
/* JPEG (quality 90) / PNG (8-bit RGB, zlib level 6). 0 or -1 (printed). */
int apps_image_write_jpeg (const AppsImage *im, const char *path);
int apps_image_write_png (const AppsImage *im, const char *path);

/* Thumbnails of the frames of one video, of a list of images, or of both,
 * picked by (path, frame index). */
typedef struct AppsThumbs AppsThumbs;
AppsThumbs *apps_thumbs_new (int tw, int th);
void apps_thumbs_free (AppsThumbs *t);
/* Asks for frame @index of @path (an image: index 0). */
void apps_thumbs_want (AppsThumbs *t, const char *path, int64_t index);
/* Decodes what was asked for (each file once). Missing ones stay NULL. */
void apps_thumbs_load (AppsThumbs *t);
const AppsImage *apps_thumbs_get (AppsThumbs *t, const char *path,
    int64_t index);

double apps_now (void);
