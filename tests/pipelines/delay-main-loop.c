/* delay-main-loop.c: an LD_PRELOAD shim for test-negotiation-loop.sh. It
 * sleeps SIMCLR_DELAY_US microseconds after gst-launch-1.0 asks its pipeline
 * for PAUSED, i.e. between gst_element_set_state() returning and
 * g_main_loop_run() starting. gst-launch-1.0 (1.22) handles an ERROR message
 * in its bus sync handler with g_main_loop_quit(); a quit issued before the
 * loop runs is lost, and the tool then waits forever (issue 15). A streaming
 * thread that fails within microseconds hits that window only sometimes; the
 * shim makes it certain, so the test shows the failure on every run instead
 * of 7 in 20. Not part of the plugin.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <gst/gst.h>

GstStateChangeReturn
gst_element_set_state (GstElement * element, GstState state)
{
  static GstStateChangeReturn (*real) (GstElement *, GstState);
  GstStateChangeReturn ret;
  const char *us = getenv ("SIMCLR_DELAY_US");

  if (!real)
    real = (GstStateChangeReturn (*)(GstElement *, GstState))
        dlsym (RTLD_NEXT, "gst_element_set_state");
  ret = real (element, state);
  if (us && GST_IS_PIPELINE (element) && state == GST_STATE_PAUSED)
    usleep ((useconds_t) atoi (us));
  return ret;
}
