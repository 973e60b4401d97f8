/* error.c: status names and the error record (see include/simclr/error.h). */
#include "simclr/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *
simclr_status_to_string (SimclrStatus status)
{
  switch (status) {
    case SIMCLR_OK:
      return "ok";
    case SIMCLR_ERROR_INVALID_ARGUMENT:
      return "invalid argument";
    case SIMCLR_ERROR_NO_MEMORY:
      return "out of memory";
    case SIMCLR_ERROR_IO:
      return "input/output error";
    case SIMCLR_ERROR_FORMAT:
      return "malformed file";
    case SIMCLR_ERROR_MISMATCH:
      return "does not match the model";
    case SIMCLR_ERROR_NUMERIC:
      return "non-finite value";
    case SIMCLR_ERROR_UNSUPPORTED:
      return "unsupported";
    case SIMCLR_ERROR_END:
      return "end of data";
  }
  return "unknown status";
}

SimclrStatus
simclr_error_set (SimclrError *err, SimclrStatus status, const char *format, ...)
{
  if (err) {
    va_list ap;
    err->status = status;
    err->field = NULL;
    err->related = NULL;
    va_start (ap, format);
    vsnprintf (err->message, sizeof err->message, format, ap);
    va_end (ap);
  }
  return status;
}

SimclrStatus
simclr_error_set_field (SimclrError *err, SimclrStatus status,
    const char *field, const char *related, const char *format, ...)
{
  if (err) {
    va_list ap;
    err->status = status;
    err->field = field;
    err->related = related;
    va_start (ap, format);
    vsnprintf (err->message, sizeof err->message, format, ap);
    va_end (ap);
  }
  return status;
}

void
simclr_error_clear (SimclrError *err)
{
  if (err) {
    err->status = SIMCLR_OK;
    err->message[0] = '\0';
    err->field = NULL;
    err->related = NULL;
  }
}
