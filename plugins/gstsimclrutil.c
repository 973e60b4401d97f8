/* gstsimclrutil.c: helpers shared by the elements (not element code). */
#include "gstsimclr.h"

#include <string.h>

/* Declared by OpenBLAS (not in cblas.h). */
extern char *openblas_get_corename (void);

/* OpenBLAS 0.3.21 does not know some recent CPUs and falls back to its
 * generic "Prescott" kernel, 5-10x slower for sgemm (see PLATFORM.md). The
 * kernel is chosen when the library loads, so the only fix is the
 * environment before the process starts. */
const gchar *
gst_simclr_openblas_advice (void)
{
  static gsize done = 0;
  static const gchar *advice = NULL;
  if (g_once_init_enter (&done)) {
    const char *core = openblas_get_corename ();
    gboolean slow_core = core && (g_ascii_strcasecmp (core, "Prescott") == 0
        || g_ascii_strcasecmp (core, "Core2") == 0
        || g_ascii_strcasecmp (core, "Penryn") == 0
        || g_ascii_strcasecmp (core, "Nehalem") == 0);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init ();
    if (slow_core && __builtin_cpu_supports ("avx512f"))
      advice = "OpenBLAS runs its slow generic kernel on this AVX-512 CPU: "
          "set OPENBLAS_CORETYPE=SkylakeX in the environment before starting "
          "the pipeline (about 5-10x faster training)";
    else if (slow_core && __builtin_cpu_supports ("avx2"))
      advice = "OpenBLAS runs its slow generic kernel on this AVX2 CPU: "
          "set OPENBLAS_CORETYPE=Haswell in the environment before starting "
          "the pipeline";
#else
    (void) slow_core;
#endif
    g_once_init_leave (&done, 1);
  }
  return advice;
}
