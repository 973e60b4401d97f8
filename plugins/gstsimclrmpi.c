/* gstsimclrmpi.c: data-parallel training under Open MPI (issue 6); see
 * gstsimclrmpi.h for the contract.
 *
 * Why the loss gradient needs no averaging: with R = 2NK gathered rows the
 * loss is L = (1/R) sum_i loss_i over every anchor of every rank, computed
 * identically on each rank. dL/dz_j for a row j of rank r includes the terms
 * of other ranks' anchors (z_j is a negative of theirs). Rank r backpropagates
 * dL/dz of its rows only, so its parameter gradient is the part of dL/dtheta
 * that flows through its rows, and the SUM over ranks is dL/dtheta of the
 * whole batch. Batch norm couples rows inside a layer too; SyncBN (the
 * model's allreduce hook) makes its forward statistics and its backward sums
 * global, and the parameter gradients dgamma/dbeta are per-rank shares summed
 * with the rest. Hence replicas = 1 in simclr_trainer_set_replicas.
 *
 * Not here: element logic; the elements call in at a few points.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrmpi.h"

#include <stdlib.h>
#include <string.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

#ifdef HAVE_MPI

static GMutex init_lock;
static gboolean init_tried;
static gboolean active;
static gboolean we_initialised;
static gint my_rank = 0;
static gint world_size = 1;
static MPI_Comm comms[GST_SIMCLR_MPI_N_CHANNELS];
static MPI_Comm control_comm;
static gint failed;             /* atomic: an error was seen on this rank */
static gdouble comm_seconds[GST_SIMCLR_MPI_N_CHANNELS];
static guint64 comm_calls[GST_SIMCLR_MPI_N_CHANNELS];

static gint
env_int (const gchar * name, gint fallback)
{
  const gchar *v = g_getenv (name);
  gchar *end;
  gint64 x;

  if (!v || !*v)
    return fallback;
  x = g_ascii_strtoll (v, &end, 10);
  if (*end != '\0' || x < 0 || x > G_MAXINT)
    return fallback;
  return (gint) x;
}

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

/* A multi-rank job started by mpirun (Open MPI, or a PMI launcher). */
static gboolean
launched_by_mpirun (void)
{
  if (g_strcmp0 (g_getenv ("SIMCLR_MPI"), "0") == 0)
    return FALSE;
  return env_int ("OMPI_COMM_WORLD_SIZE", 0) > 1
      || env_int ("PMI_SIZE", 0) > 1;
}

static void
print_stats (void)
{
  static const gchar *names[] = { "encoder (BN + gradient all-reduce)",
    "loss (z all-gather)"
  };

  for (gint c = 0; c < GST_SIMCLR_MPI_N_CHANNELS; c++)
    g_printerr ("simclr-mpi: rank %d of %d: %s: %" G_GUINT64_FORMAT
        " collectives, %.3f s\n", my_rank, world_size, names[c],
        comm_calls[c], comm_seconds[c]);
}

/* atexit: finalise once per process, never while another rank may still sit
 * in a collective that needs us (that would hang the job). */
static void
finalize_at_exit (void)
{
  MPI_Request req;
  gdouble timeout, start;
  int done = 0;

  if (g_strcmp0 (g_getenv ("SIMCLR_MPI_STATS"), "1") == 0)
    print_stats ();
  if (g_atomic_int_get (&failed))
    MPI_Abort (MPI_COMM_WORLD, 1);

  timeout = env_seconds ("SIMCLR_MPI_FINALIZE_TIMEOUT", 60.0);
  start = MPI_Wtime ();
  MPI_Ibarrier (control_comm, &req);
  while (!done) {
    MPI_Test (&req, &done, MPI_STATUS_IGNORE);
    if (done)
      break;
    if (MPI_Wtime () - start > timeout) {
      g_printerr ("simclr-mpi: rank %d of %d finished, but not every rank "
          "did within %.0f s (different numbers of steps? a rank stuck?); "
          "aborting all ranks\n", my_rank, world_size, timeout);
      MPI_Abort (MPI_COMM_WORLD, 1);
    }
    g_usleep (2000);
  }
  MPI_Finalize ();
}

static gpointer
abort_later (gpointer data)
{
  gdouble grace = env_seconds ("SIMCLR_MPI_ABORT_GRACE", 1.0);

  g_usleep ((gulong) (grace * G_USEC_PER_SEC));
  g_printerr ("simclr-mpi: rank %d of %d: aborting all ranks after the "
      "error above\n", my_rank, world_size);
  MPI_Abort (MPI_COMM_WORLD, 1);
  return NULL;
}

/* "sync-message::error" of the pipeline's bus, in the posting thread. */
static void
on_sync_error (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  GError *gerr = NULL;
  gchar *dbg = NULL;
  gchar *src;

  if (!g_atomic_int_compare_and_exchange (&failed, 0, 1))
    return;
  gst_message_parse_error (msg, &gerr, &dbg);
  src = GST_MESSAGE_SRC (msg) ? gst_object_get_path_string (GST_MESSAGE_SRC
      (msg)) : g_strdup ("(unknown)");
  g_printerr ("simclr-mpi: rank %d of %d: ERROR from %s: %s\n%s%s%s"
      "simclr-mpi: rank %d of %d: ending every rank (MPI_Abort)\n", my_rank,
      world_size, src, gerr ? gerr->message : "(no message)",
      dbg ? "Additional debug info:\n" : "", dbg ? dbg : "", dbg ? "\n" : "",
      my_rank, world_size);
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
  g_mutex_lock (&init_lock);
  if (!g_object_get_qdata (G_OBJECT (bus), watched)) {
    g_object_set_qdata (G_OBJECT (bus), watched, GINT_TO_POINTER (1));
    gst_bus_enable_sync_message_emission (bus);
    g_signal_connect (bus, "sync-message::error", G_CALLBACK (on_sync_error),
        NULL);
  }
  g_mutex_unlock (&init_lock);
  gst_object_unref (bus);
}

gboolean
gst_simclr_mpi_start (GstElement * element, GError ** error)
{
  gboolean ok = TRUE;

  g_mutex_lock (&init_lock);
  if (!init_tried && launched_by_mpirun ()) {
    int initialised = 0, provided = 0;

    init_tried = TRUE;
    MPI_Initialized (&initialised);
    if (!initialised) {
      MPI_Init_thread (NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
      we_initialised = TRUE;
      atexit (finalize_at_exit);
    } else {
      MPI_Query_thread (&provided);
    }
    MPI_Comm_rank (MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size (MPI_COMM_WORLD, &world_size);
    if (provided < MPI_THREAD_MULTIPLE) {
      g_set_error (error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT,
          "The MPI library does not provide MPI_THREAD_MULTIPLE (level %d); "
          "the encoder and the loss sink run collectives from two threads",
          provided);
      ok = FALSE;
    } else if (world_size > 1) {
      for (gint c = 0; c < GST_SIMCLR_MPI_N_CHANNELS; c++)
        MPI_Comm_dup (MPI_COMM_WORLD, &comms[c]);
      MPI_Comm_dup (MPI_COMM_WORLD, &control_comm);
      active = TRUE;
    }
  } else if (init_tried && !active && we_initialised && world_size > 1) {
    g_set_error (error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT,
        "The MPI library does not provide MPI_THREAD_MULTIPLE");
    ok = FALSE;
  }
  g_mutex_unlock (&init_lock);

  if (ok && active)
    watch_bus (element);
  return ok && active;
}

gboolean
gst_simclr_mpi_active (void)
{
  return active;
}

gint
gst_simclr_mpi_rank (void)
{
  return active ? my_rank : 0;
}

gint
gst_simclr_mpi_size (void)
{
  return active ? world_size : 1;
}

static MPI_Comm
channel_comm (void *channel, gint * index)
{
  gint c = GPOINTER_TO_INT (channel) - 1;

  if (c < 0 || c >= GST_SIMCLR_MPI_N_CHANNELS)
    c = GST_SIMCLR_MPI_ENCODER;
  *index = c;
  return comms[c];
}

void
gst_simclr_mpi_allreduce_sum (float *buf, int n, void *channel)
{
  gint c;
  MPI_Comm comm;
  gdouble t0;

  if (!active || n <= 0)
    return;
  comm = channel_comm (channel, &c);
  t0 = MPI_Wtime ();
  MPI_Allreduce (MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, comm);
  /* one thread per channel: no lock needed */
  comm_seconds[c] += MPI_Wtime () - t0;
  comm_calls[c]++;
}

static void
bcast_floats (float *buf, size_t n, MPI_Comm comm)
{
  /* counts are int: send in chunks */
  const size_t chunk = (size_t) 1 << 28;
  for (size_t off = 0; off < n; off += chunk) {
    size_t m = n - off < chunk ? n - off : chunk;
    MPI_Bcast (buf + off, (int) m, MPI_FLOAT, 0, comm);
  }
}

gboolean
gst_simclr_mpi_setup_trainer (SimclrTrainer * t, gboolean sync_bn,
    GError ** error)
{
  SimclrModel *m;
  MPI_Comm comm = comms[GST_SIMCLR_MPI_ENCODER];
  long long step[2], lo_hi[2];
  float *p;
  size_t n;

  if (!active)
    return TRUE;
  m = simclr_trainer_get_model (t);

  step[0] = simclr_trainer_get_step (t);
  step[1] = -step[0];
  MPI_Allreduce (step, lo_hi, 2, MPI_LONG_LONG, MPI_MIN, comm);
  if (lo_hi[0] != -lo_hi[1]) {
    g_set_error (error, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_SETTINGS,
        "The ranks start at different steps (%lld .. %lld): every rank "
        "must resume from the same checkpoint", lo_hi[0], -lo_hi[1]);
    return FALSE;
  }

  p = simclr_model_params (m, &n);
  bcast_floats (p, n, comm);
  p = simclr_model_buffers (m, &n);
  if (p && n > 0)
    bcast_floats (p, n, comm);
  p = simclr_trainer_get_velocity (t, &n);
  bcast_floats (p, n, comm);

  simclr_model_set_allreduce (m, sync_bn ? gst_simclr_mpi_allreduce_sum :
      NULL, GST_SIMCLR_MPI_CHANNEL (GST_SIMCLR_MPI_ENCODER));
  simclr_trainer_set_gradient_allreduce (t, gst_simclr_mpi_allreduce_sum,
      GST_SIMCLR_MPI_CHANNEL (GST_SIMCLR_MPI_ENCODER));
  simclr_trainer_set_replicas (t, 1);
  return TRUE;
}

static SimclrStatus
ensure_workspace (SimclrNtxent ** nt, gint * nt_rows, int rows, int dim,
    SimclrError * err)
{
  if (*nt && rows <= *nt_rows)
    return SIMCLR_OK;
  g_clear_pointer (nt, simclr_ntxent_free);
  *nt_rows = 0;
  *nt = simclr_ntxent_new (rows, dim, err);
  if (!*nt)
    return err->status != SIMCLR_OK ? err->status : SIMCLR_ERROR_NO_MEMORY;
  *nt_rows = rows;
  return SIMCLR_OK;
}

SimclrStatus
gst_simclr_mpi_ntxent (SimclrNtxent ** nt, gint * nt_rows, const float *z,
    int rows, int dim, float tau, SimclrNtxentResult * result, float *dz,
    int *global_rows, SimclrError * err)
{
  MPI_Comm comm = comms[GST_SIMCLR_MPI_LOSS];
  int *counts, *displs, *pos;
  float *all_z, *all_dz;
  gint64 total = 0;
  SimclrStatus s;
  gdouble t0;

  if (!active) {
    if (global_rows)
      *global_rows = rows;
    s = ensure_workspace (nt, nt_rows, rows, dim, err);
    if (s == SIMCLR_OK)
      s = simclr_ntxent_forward (*nt, z, rows, dim, tau, NULL, result, err);
    if (s == SIMCLR_OK)
      simclr_ntxent_backward (*nt, dz);
    return s;
  }

  counts = g_new (int, world_size);
  displs = g_new (int, world_size);
  t0 = MPI_Wtime ();
  MPI_Allgather (&rows, 1, MPI_INT, counts, 1, MPI_INT, comm);
  /* Every rank sees the same counts, so every rank takes the same branch. */
  for (gint r = 0; r < world_size; r++) {
    if (counts[r] < 2 || counts[r] % 2 != 0) {
      comm_seconds[GST_SIMCLR_MPI_LOSS] += MPI_Wtime () - t0;
      s = simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "rank %d has %d embedding rows; every rank needs an even count "
          ">= 2", r, counts[r]);
      g_free (counts);
      g_free (displs);
      return s;
    }
    displs[r] = (int) total;
    total += counts[r];
  }
  if (total * dim > G_MAXINT) {
    g_free (counts);
    g_free (displs);
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "%" G_GINT64_FORMAT " gathered rows of %d floats exceed an MPI count",
        total, dim);
  }
  for (gint r = 0; r < world_size; r++) {
    counts[r] *= dim;
    displs[r] *= dim;
  }
  all_z = g_try_new (float, (gsize) total * dim);
  all_dz = g_try_new (float, (gsize) total * dim);
  pos = g_try_new (int, total);
  if (!all_z || !all_dz || !pos) {
    /* The other ranks would wait in the gather: end them all. */
    gst_simclr_mpi_abort ("out of memory for the gathered embeddings");
  }
  MPI_Allgatherv (z, rows * dim, MPI_FLOAT, all_z, counts, displs, MPI_FLOAT,
      comm);
  comm_seconds[GST_SIMCLR_MPI_LOSS] += MPI_Wtime () - t0;
  comm_calls[GST_SIMCLR_MPI_LOSS] += 2;

  /* Rank r's block: view 0 of its n samples, then view 1 of the same. */
  for (gint r = 0; r < world_size; r++) {
    int b = displs[r] / dim, half = counts[r] / dim / 2;
    for (int j = 0; j < half; j++) {
      pos[b + j] = b + j + half;
      pos[b + j + half] = b + j;
    }
  }

  s = ensure_workspace (nt, nt_rows, (int) total, dim, err);
  if (s == SIMCLR_OK)
    s = simclr_ntxent_forward (*nt, all_z, (int) total, dim, tau, pos,
        result, err);
  if (s == SIMCLR_OK) {
    simclr_ntxent_backward (*nt, all_dz);
    memcpy (dz, all_dz + displs[my_rank], (size_t) rows * dim *
        sizeof (float));
  }
  if (global_rows)
    *global_rows = (int) total;
  g_free (all_z);
  g_free (all_dz);
  g_free (pos);
  g_free (counts);
  g_free (displs);
  return s;
}

void
gst_simclr_mpi_abort (const gchar * reason)
{
  if (!active)
    return;
  g_atomic_int_set (&failed, 1);
  g_printerr ("simclr-mpi: rank %d of %d: %s; ending every rank "
      "(MPI_Abort)\n", my_rank, world_size, reason);
  MPI_Abort (MPI_COMM_WORLD, 1);
}

gdouble
gst_simclr_mpi_comm_seconds (GstSimclrMpiChannel channel)
{
  if (channel < 0 || channel >= GST_SIMCLR_MPI_N_CHANNELS)
    return 0.0;
  return comm_seconds[channel];
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
gst_simclr_mpi_allreduce_sum (float *buf, int n, void *channel)
{
}

gboolean
gst_simclr_mpi_setup_trainer (SimclrTrainer * t, gboolean sync_bn,
    GError ** error)
{
  return TRUE;
}

SimclrStatus
gst_simclr_mpi_ntxent (SimclrNtxent ** nt, gint * nt_rows, const float *z,
    int rows, int dim, float tau, SimclrNtxentResult * result, float *dz,
    int *global_rows, SimclrError * err)
{
  SimclrStatus s = SIMCLR_OK;

  if (global_rows)
    *global_rows = rows;
  if (!*nt || rows > *nt_rows) {
    g_clear_pointer (nt, simclr_ntxent_free);
    *nt_rows = 0;
    *nt = simclr_ntxent_new (rows, dim, err);
    if (!*nt)
      return err->status != SIMCLR_OK ? err->status : SIMCLR_ERROR_NO_MEMORY;
    *nt_rows = rows;
  }
  s = simclr_ntxent_forward (*nt, z, rows, dim, tau, NULL, result, err);
  if (s == SIMCLR_OK)
    simclr_ntxent_backward (*nt, dz);
  return s;
}

void
gst_simclr_mpi_abort (const gchar * reason)
{
}

gdouble
gst_simclr_mpi_comm_seconds (GstSimclrMpiChannel channel)
{
  return 0.0;
}

#endif /* HAVE_MPI */
