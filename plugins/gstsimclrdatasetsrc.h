/* gstsimclrdatasetsrc.h: the simclrdatasetsrc element (frames of an image
 * data set on disk: IDX, CIFAR, JPEG folder). Reading and ordering live in
 * libsimclr (simclr/dataset.h); this is only the GStreamer glue. */
#pragma once

#include <gst/gst.h>
#include <gst/base/gstpushsrc.h>

G_BEGIN_DECLS

/**
 * GstSimclrDatasetFormat:
 * @GST_SIMCLR_DATASET_FORMAT_AUTO: guessed from the files at the location
 * @GST_SIMCLR_DATASET_FORMAT_IDX: MNIST / Fashion-MNIST IDX (GRAY8)
 * @GST_SIMCLR_DATASET_FORMAT_CIFAR10: CIFAR-10 binary (RGB)
 * @GST_SIMCLR_DATASET_FORMAT_CIFAR100: CIFAR-100 binary, fine labels (RGB)
 * @GST_SIMCLR_DATASET_FORMAT_JPEG_FOLDER: one sub-folder of JPEGs per class (RGB)
 *
 * Same values as the core's SimclrDatasetFormat.
 */
typedef enum
{
  GST_SIMCLR_DATASET_FORMAT_AUTO,
  GST_SIMCLR_DATASET_FORMAT_IDX,
  GST_SIMCLR_DATASET_FORMAT_CIFAR10,
  GST_SIMCLR_DATASET_FORMAT_CIFAR100,
  GST_SIMCLR_DATASET_FORMAT_JPEG_FOLDER,
} GstSimclrDatasetFormat;

#define GST_TYPE_SIMCLR_DATASET_FORMAT (gst_simclr_dataset_format_get_type ())
GType gst_simclr_dataset_format_get_type (void);

/**
 * GstSimclrDatasetSplit:
 * @GST_SIMCLR_DATASET_SPLIT_TRAIN: the training split
 * @GST_SIMCLR_DATASET_SPLIT_TEST: the test split
 */
typedef enum
{
  GST_SIMCLR_DATASET_SPLIT_TRAIN,
  GST_SIMCLR_DATASET_SPLIT_TEST,
} GstSimclrDatasetSplit;

#define GST_TYPE_SIMCLR_DATASET_SPLIT (gst_simclr_dataset_split_get_type ())
GType gst_simclr_dataset_split_get_type (void);

#define GST_TYPE_SIMCLR_DATASET_SRC (gst_simclr_dataset_src_get_type ())
G_DECLARE_FINAL_TYPE (GstSimclrDatasetSrc, gst_simclr_dataset_src, GST,
    SIMCLR_DATASET_SRC, GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE (simclrdatasetsrc);

G_END_DECLS
