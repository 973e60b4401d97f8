/* simclr.h: umbrella header of libsimclr's public API (the core: no
 * GStreamer, no GLib types). Include this or the single headers. */
#pragma once

#include "simclr/error.h"
#include "simclr/cpu.h"
#include "simclr/rng.h"
#include "simclr/augment.h"
#include "simclr/dataset.h"
#include "simclr/ntxent.h"
#include "simclr/optim.h"
#include "simclr/model.h"
#include "simclr/checkpoint.h"
#include "simclr/trainer.h"
#include "simclr/features.h"
#include "simclr/linclf.h"
#include "simclr/index.h"
#include "simclr/embed.h"
#include "simclr/novelty.h"
#include "simclr/replay.h"
#include "simclr/ckptdir.h"
