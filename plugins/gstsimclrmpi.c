/* gstsimclrmpi.c: data-parallel training under Open MPI (issue 6), the
 * plugin's side; see gstsimclrmpi.h for the contract.
 *
 * Only MPI set-up from an element, the hooks per element thread and the
 * failure watch live here; the collectives are mpi/simclr-mpi.c's and what
 * they compute is the core's (SimclrTrainer, SimclrLoss).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrmpi.h"

#ifdef HAVE_MPI

#include "simclr-mpi.h"

static GMutex watch_lock;
static gint reported;           /* atomic: an error was reported on this rank */

static gdouble
env_seconds (const gchar * name, gdouble fallback)
{
  const gchar *v = g_getenv (name);
  gchar *end;
  gdouble x;

  if (!v || !*v)
    return fallback;
  x = g_ascii_strtod (v, &end);
  if (*end != '\0' || !(x >= 0))
    return fallback;
  return x;
}

static gpointer
abort_later (gpointer data)
{
  gdouble grace = env_seconds ("SIMCLR_MPI_ABORT_GRACE", 1.0);

  g_usleep ((gulong) (grace * G_USEC_PER_SEC));
  simclr_mpi_abort ("aborting all ranks after the error above");
  return NULL;
}

/* "sync-message::error" of the pipeline's bus, in the posting thread. */
static void
on_sync_error (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  GError *gerr = NULL;
  gchar *dbg = NULL;
  gchar *src;
  gint rank = simclr_mpi_rank (), size = simclr_mpi_size ();

  if (!g_atomic_int_compare_and_exchange (&reported, 0, 1))
    return;
  simclr_mpi_set_failed ();
  gst_message_parse_error (msg, &gerr, &dbg);
  src = GST_MESSAGE_SRC (msg) ? gst_object_get_path_string (GST_MESSAGE_SRC
      (msg)) : g_strdup ("(unknown)");
  g_printerr ("simclr-mpi: rank %d of %d: ERROR from %s: %s\n%s%s%s"
      "simclr-mpi: rank %d of %d: ending every rank (MPI_Abort)\n", rank,
      size, src, gerr ? gerr->message : "(no message)",
      dbg ? "Additional debug info:\n" : "", dbg ? dbg : "", dbg ? "\n" : "",
      rank, size);
  g_free (src);
  g_clear_error (&gerr);
  g_free (dbg);
  g_thread_unref (g_thread_new ("simclr-mpi-abort", abort_later, NULL));
}

static void
watch_bus (GstElement * element)
{
  static GQuark watched;
  GstBus *bus;
  GstObject *top, *parent;

  if (!element)
    return;
  /* An element in a bin posts on the bin's internal child bus, whose sync
   * handler drops the messages after forwarding them: watch the bus of the
   * top-level pipeline, where the application reads errors. */
  top = gst_object_ref (GST_OBJECT (element));
  while ((parent = gst_object_get_parent (top))) {
    gst_object_unref (top);
    top = parent;
  }
  bus = GST_IS_ELEMENT (top) ? gst_element_get_bus (GST_ELEMENT (top)) : NULL;
  gst_object_unref (top);
  if (!bus)
    return;
  if (!watched)
    watched = g_quark_from_static_string ("gst-simclr-mpi-watched");
  g_mutex_lock (&watch_lock);
  if (!g_object_get_qdata (G_OBJECT (bus), watched)) {
    g_object_set_qdata (G_OBJECT (bus), watched, GINT_TO_POINTER (1));
    gst_bus_enable_sync_message_emission (bus);
    g_signal_connect (bus, "sync-message::error", G_CALLBACK (on_sync_error),
        NULL);
  }
  g_mutex_unlock (&watch_lock);
  gst_object_unref (bus);
}

gboolean
gst_simclr_mpi_start (GstElement * element, GError ** error)
{
  SimclrError err = { 0 };
  int r = simclr_mpi_init (&err);

  if (r < 0) {
    g_set_error (error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT, "%s",
        err.message);
    return FALSE;
  }
  if (r == 0)
    return FALSE;
  watch_bus (element);
  return TRUE;
}

gboolean
gst_simclr_mpi_active (void)
{
  return simclr_mpi_active ();
}

gint
gst_simclr_mpi_rank (void)
{
  return simclr_mpi_rank ();
}

gint
gst_simclr_mpi_size (void)
{
  return simclr_mpi_size ();
}

void
gst_simclr_mpi_comm (GstSimclrMpiChannel channel, SimclrComm * comm)
{
  simclr_mpi_comm (channel == GST_SIMCLR_MPI_LOSS ? SIMCLR_MPI_LOSS :
      SIMCLR_MPI_TRAINER, comm);
}

gdouble
gst_simclr_mpi_collective_seconds (gdouble * cpu)
{
  if (cpu)
    *cpu = simclr_mpi_comm_cpu (SIMCLR_MPI_TRAINER)
        + simclr_mpi_comm_cpu (SIMCLR_MPI_LOSS);
  return simclr_mpi_comm_seconds (SIMCLR_MPI_TRAINER)
      + simclr_mpi_comm_seconds (SIMCLR_MPI_LOSS);
}

void
gst_simclr_mpi_abort (const gchar * reason)
{
  simclr_mpi_abort (reason);
}

#else /* !HAVE_MPI */

gboolean
gst_simclr_mpi_start (GstElement * element, GError ** error)
{
  return FALSE;
}

gboolean
gst_simclr_mpi_active (void)
{
  return FALSE;
}

gint
gst_simclr_mpi_rank (void)
{
  return 0;
}

gint
gst_simclr_mpi_size (void)
{
  return 1;
}

void
gst_simclr_mpi_comm (GstSimclrMpiChannel channel, SimclrComm * comm)
{
  simclr_comm_init_local (comm);
}

gdouble
gst_simclr_mpi_collective_seconds (gdouble * cpu)
{
  if (cpu)
    *cpu = 0.0;
  return 0.0;
}

void
gst_simclr_mpi_abort (const gchar * reason)
{
}

#endif /* HAVE_MPI */
