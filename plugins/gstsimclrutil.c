/* gstsimclrutil.c: helpers shared by the elements (not element code). */
#include "gstsimclr.h"

#include <string.h>
#include <time.h>

#include "simclr/cpu.h"

/* Declared by OpenBLAS (not in cblas.h). */
extern char *openblas_get_corename (void);

/* OpenBLAS 0.3.21 does not know some recent CPUs and falls back to its
 * generic "Prescott" kernel, 5-10x slower for sgemm (see PLATFORM.md). The
 * kernel is chosen when the library loads, so the only fix is the
 * environment before the process starts. The CPU's instruction sets come
 * from the core's one detection (core/cpu.c), which also reports a
 * SIMCLR_CPU value it could not honour: both end up in this advice. */
const gchar *
gst_simclr_openblas_advice (void)
{
  static gsize done = 0;
  static gchar *advice = NULL;
  if (g_once_init_enter (&done)) {
    const char *core = openblas_get_corename ();
    const gchar *blas = NULL;
    SimclrError err = { 0 };
    gboolean slow_core = core && (g_ascii_strcasecmp (core, "Prescott") == 0
        || g_ascii_strcasecmp (core, "Core2") == 0
        || g_ascii_strcasecmp (core, "Penryn") == 0
        || g_ascii_strcasecmp (core, "Nehalem") == 0);
    SimclrCpuLevel best = simclr_cpu_best_level ();
    if (slow_core && best >= SIMCLR_CPU_AVX512)
      blas = "OpenBLAS runs its slow generic kernel on this AVX-512 CPU: "
          "set OPENBLAS_CORETYPE=SkylakeX in the environment before starting "
          "the pipeline (about 5-10x faster training)";
    else if (slow_core && best >= SIMCLR_CPU_AVX2)
      blas = "OpenBLAS runs its slow generic kernel on this AVX2 CPU: "
          "set OPENBLAS_CORETYPE=Haswell in the environment before starting "
          "the pipeline";
    if (simclr_cpu_check_env (&err) != SIMCLR_OK)
      advice = blas ? g_strdup_printf ("%s; %s", blas, err.message)
          : g_strdup (err.message);
    else if (blas)
      advice = g_strdup (blas);
    g_once_init_leave (&done, 1);
  }
  return advice;
}

gboolean
gst_simclr_peer_can_negotiate (GstPad * pad, GstCaps * caps,
    GstCaps ** peer_caps)
{
  GstCaps *peer;
  gboolean ok;

  *peer_caps = NULL;
  if (!gst_pad_is_linked (pad))
    return TRUE;
  /* Unfiltered: the message shows everything the peer could take. */
  peer = gst_pad_peer_query_caps (pad, NULL);
  if (peer == NULL)
    return TRUE;
  ok = gst_caps_can_intersect (peer, caps);
  if (ok)
    gst_caps_unref (peer);
  else
    *peer_caps = peer;
  return ok;
}

GstStateChangeReturn
gst_simclr_change_state_prepared (GstElement * element,
    GstStateChange transition, GstStateChange at,
    GstElementClass * parent_class, GstSimclrPrepareFunc prepare,
    GstSimclrPrepareFunc undo, gboolean * prepared)
{
  GstStateChangeReturn ret;

  if (transition == at) {
    if (!prepare (element))
      return GST_STATE_CHANGE_FAILURE;
    *prepared = TRUE;
  }
  ret = parent_class->change_state (element, transition);
  if (transition == at && ret == GST_STATE_CHANGE_FAILURE && *prepared) {
    *prepared = FALSE;
    undo (element);
  }
  return ret;
}

gboolean
gst_simclr_prepared_start (GstElement * element, GstSimclrPrepareFunc prepare,
    gboolean * prepared)
{
  if (*prepared) {
    *prepared = FALSE;
    return TRUE;
  }
  return prepare (element);
}

void
gst_simclr_thread_clocks (gdouble * wall, gdouble * cpu)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  *wall = ts.tv_sec + 1e-9 * ts.tv_nsec;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  *cpu = ts.tv_sec + 1e-9 * ts.tv_nsec;
}
