/* error.h: status codes and the caller-owned error record of libsimclr.
 *
 * Every fallible core function returns a SimclrStatus (SIMCLR_OK == 0, failures
 * negative) and fills an optional SimclrError whose message names the file,
 * tensor or shape at fault. The core never prints and never aborts on bad input.
 * Thread-safety: a SimclrError belongs to one caller; the functions here are
 * reentrant.
 */
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  SIMCLR_OK = 0,
  SIMCLR_ERROR_INVALID_ARGUMENT = -1, /* a size, shape or option out of range */
  SIMCLR_ERROR_NO_MEMORY = -2,
  SIMCLR_ERROR_IO = -3,               /* open, read, write or rename failed */
  SIMCLR_ERROR_FORMAT = -4,           /* a file is malformed or of a wrong kind */
  SIMCLR_ERROR_MISMATCH = -5,         /* a file does not fit the model (name, shape, dtype) */
  SIMCLR_ERROR_NUMERIC = -6,          /* a non-finite value (loss, gradient) */
  SIMCLR_ERROR_UNSUPPORTED = -7,      /* valid, but not implemented here */
  SIMCLR_ERROR_END = -8,              /* end of data: not a failure for readers */
} SimclrStatus;

#define SIMCLR_ERROR_MESSAGE_SIZE 512

/* Caller-owned; zero-initialise it or pass NULL when the message is not wanted.
 *
 * @field names the configuration field at fault by its identifier, so a
 * caller can map it to its own name for it (an element to its property)
 * without reading the English message: "<struct>.<member>" of the config
 * struct that was validated, e.g. "augment.crop_scale_min",
 * "model.width", "optim.total_steps", "trainer.temperature",
 * "loss.views". @related names a second field when the constraint ties two
 * ("augment.crop_scale_max" beside "augment.crop_scale_min": min <= max).
 * Both are static strings (never freed), NULL when the failure is not about
 * one configuration field (a file, a shape, memory). */
typedef struct {
  SimclrStatus status;
  char message[SIMCLR_ERROR_MESSAGE_SIZE];
  const char *field;
  const char *related;
} SimclrError;

/* A static English name of @status ("invalid argument", ...). Never NULL. */
const char *simclr_status_to_string (SimclrStatus status);

/* Records @status and a printf-style message in @err (if not NULL) and returns
 * @status, so a failing path can read `return simclr_error_set (err, ...);`. */
SimclrStatus simclr_error_set (SimclrError *err, SimclrStatus status,
    const char *format, ...) __attribute__ ((format (printf, 3, 4)));

/* As simclr_error_set, and records the configuration field(s) at fault:
 * @field and @related (may be NULL) must be static strings (see SimclrError). */
SimclrStatus simclr_error_set_field (SimclrError *err, SimclrStatus status,
    const char *field, const char *related, const char *format, ...)
    __attribute__ ((format (printf, 5, 6)));

/* Clears @err (if not NULL) to SIMCLR_OK and an empty message. */
void simclr_error_clear (SimclrError *err);

#ifdef __cplusplus
}
#endif
