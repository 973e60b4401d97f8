/* ckptdir.h: a folder of rotating checkpoints, for runs that last hours
 * (issue 13).
 *
 * A run that checkpoints into a folder writes one file per save,
 * DIR/ckpt-<step>.safetensors with the step zero-padded to 12 digits (so the
 * names sort as the steps), each written atomically by the safetensors
 * writer (temporary file in DIR, fsync, rename, fsync of DIR): a file under
 * its final name is always complete, whenever the process is killed. After a
 * successful save, simclr_ckptdir_rotate keeps the newest M files and removes
 * the older ones and the temporary files a killed writer left behind; a
 * failed save removes nothing, so what was saved stays.
 *
 * simclr_ckptdir_resolve turns what a user gives `resume-from` into one file:
 * a file, a folder (its newest complete checkpoint) or a glob pattern (the
 * matching file with the largest "step").
 *
 * No GLib; POSIX file calls. Thread-safety: the functions are reentrant; two
 * writers must not share one folder.
 */
#pragma once

#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SIMCLR_CKPTDIR_PREFIX "ckpt-"
#define SIMCLR_CKPTDIR_SUFFIX ".safetensors"

/* "DIR/ckpt-000000001234.safetensors" for @step >= 0; malloc'd (free()),
 * NULL for a negative step or no memory. */
char *simclr_ckptdir_path (const char *dir, int64_t step);

/* The steps of the checkpoints in @dir (names ckpt-<digits>.safetensors; other
 * files are ignored), newest first, in *@steps (malloc'd, free(); NULL when
 * *@n is 0). Fails with SIMCLR_ERROR_IO naming @dir if it cannot be read. */
SimclrStatus simclr_ckptdir_list (const char *dir, int64_t **steps, int *n,
    SimclrError *err);

/* Removes every checkpoint of @dir but the newest @keep (by step; @keep >= 1)
 * and the file of @protect_step (the one just written, even if an abandoned
 * run left newer steps; -1 = none), and every temporary file
 * "ckpt-*.safetensors.tmp-*" (left by a writer killed mid-save; call this
 * only when no save is in progress). *@removed (may be NULL) counts the
 * files removed. An unlink failure is SIMCLR_ERROR_IO naming the file; the
 * remaining removals are still attempted. */
SimclrStatus simclr_ckptdir_rotate (const char *dir, int keep,
    int64_t protect_step, int *removed, SimclrError *err);

/* Whether checkpoints can be written at @location: an existing folder
 * (*@is_dir = 1, may be NULL) must let us create files, and so must the
 * folder of a file. SIMCLR_ERROR_IO otherwise, with the message
 * `folder "<folder>": <strerror>` (ENOENT when it does not exist, ENOTDIR
 * when it is not a folder). */
SimclrStatus simclr_ckptdir_check_writable (const char *location,
    int *is_dir, SimclrError *err);

/* A run's checkpoint cadence: every @interval steps, or once @seconds
 * passed since the last save attempt (or the run's start), and whether
 * steps were taken that no checkpoint holds. Times are the caller's
 * monotonic clock in microseconds: the core reads no clock. A plain value
 * (no allocation): fill it with simclr_ckpt_cadence_init, then keep it up to
 * date with _tried and _saved; the fields may be read, and first_step set
 * once the run's trainer is known (new: 0; resumed: the file's step). */
typedef struct {
  int64_t interval;              /* steps between saves; 0 = none by steps */
  double seconds;                /* seconds between saves; 0 = none by time */
  int64_t first_step;            /* the step the run began at (a resumed
                                  * run: the checkpoint's) */
  int64_t saved_step;            /* the step of the last save of this run;
                                  * -1 = none yet */
  int64_t last_try_us;           /* the start, or the last save attempt */
} SimclrCkptCadence;

/* A run beginning at @first_step at time @now_us: no save yet. Negative
 * @interval or @seconds (or a NaN) count as 0. */
void simclr_ckpt_cadence_init (SimclrCkptCadence *c, int64_t interval,
    double seconds, int64_t first_step, int64_t now_us);

/* 1 if a checkpoint is due after the step that made the trainer's step
 * @step: @step a multiple of interval, or seconds passed since
 * last_try_us at @now_us; else 0. */
int simclr_ckpt_cadence_due (const SimclrCkptCadence *c, int64_t step,
    int64_t now_us);

/* A save was attempted at @now_us, whether or not it worked: the time
 * cadence counts from here (a failing disk is tried again a period later,
 * not at every step). */
void simclr_ckpt_cadence_tried (SimclrCkptCadence *c, int64_t now_us);

/* The checkpoint of @step was written. */
void simclr_ckpt_cadence_saved (SimclrCkptCadence *c, int64_t step);

/* 1 if the trainer at @step took steps this run that no checkpoint holds
 * (the last save, or before any save the run's first step, is older). */
int simclr_ckpt_cadence_unsaved (const SimclrCkptCadence *c, int64_t step);

/* What `resume-from` names, as one file (malloc'd, free()):
 * - an existing regular file: itself (not opened here);
 * - a folder: its newest checkpoint (ckpt-<step>.safetensors) that opens as a
 *   complete safetensors file; a newer file that does not open is skipped
 *   and named in @skipped (may be NULL; a message, empty when none was);
 * - otherwise, if it holds glob characters (* ? [): among the matching
 *   files that open, the one with the largest "step" metadata (every match
 *   is opened).
 * Returns NULL with @err set: SIMCLR_ERROR_END when a folder or pattern
 * holds no checkpoint at all (the caller may start anew), SIMCLR_ERROR_IO
 * when @spec does not exist or a folder cannot be read, SIMCLR_ERROR_FORMAT
 * when checkpoints exist but none opens (the message names the newest and
 * why). */
char *simclr_ckptdir_resolve (const char *spec, SimclrError *skipped,
    SimclrError *err);

#ifdef __cplusplus
}
#endif
