/* simclr-mpi.c: MPI implementation of the SimclrComm hooks and the process's
 * MPI life cycle (see simclr-mpi.h).
 *
 * Not here: anything about GStreamer (plugins/gstsimclrmpi.c watches the
 * bus) or about training (the core decides what to all-reduce and gather).
 */
#include "simclr-mpi.h"

#include <limits.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_tried;
static int init_status;         /* result of the first simclr_mpi_init */
static char init_message[SIMCLR_ERROR_MESSAGE_SIZE];
static int active;
static int my_rank = 0;
static int world_size = 1;
static MPI_Comm comms[SIMCLR_MPI_N_CHANNELS];
static MPI_Comm control_comm;
static atomic_int failed;
/* One thread per channel writes these. */
static double comm_seconds[SIMCLR_MPI_N_CHANNELS];
static unsigned long long comm_calls[SIMCLR_MPI_N_CHANNELS];
/* The all-reduces of at least BIG_ALLREDUCE floats (the gradient sum) apart
 * from the small ones (SyncBN statistics), for SIMCLR_MPI_STATS. */
#define BIG_ALLREDUCE 65536
static double big_seconds[SIMCLR_MPI_N_CHANNELS];
/* Thread CPU seconds inside the collectives (Open MPI polls while it waits:
 * wall minus CPU is the time the thread was off the core). */
static double comm_cpu[SIMCLR_MPI_N_CHANNELS];
static unsigned long long big_calls[SIMCLR_MPI_N_CHANNELS];


/* A non-negative int from the environment, or @fallback. */
static long
env_long (const char *name, long fallback)
{
  const char *v = getenv (name);
  char *end;
  long x;

  if (!v || !*v)
    return fallback;
  x = strtol (v, &end, 10);
  if (*end != '\0' || x < 0)
    return fallback;
  return x;
}

static double
env_seconds (const char *name, double fallback)
{
  const char *v = getenv (name);
  char *end;
  double x;

  if (!v || !*v)
    return fallback;
  x = strtod (v, &end);
  if (*end != '\0' || !(x >= 0))
    return fallback;
  return x;
}

int
simclr_mpi_launched (void)
{
  const char *off = getenv ("SIMCLR_MPI");
  if (off && strcmp (off, "0") == 0)
    return 0;
  return env_long ("OMPI_COMM_WORLD_SIZE", 0) > 1
      || env_long ("PMI_SIZE", 0) > 1;
}

static void
print_stats (void)
{
  static const char *names[] = { "trainer (BN + gradient all-reduce)",
    "loss (z all-gather)"
  };

  for (int c = 0; c < SIMCLR_MPI_N_CHANNELS; c++)
    fprintf (stderr, "simclr-mpi: rank %d of %d: %s: %llu collectives, "
        "%.3f s, %.3f s CPU (all-reduces of %d floats or more: %llu, "
        "%.3f s)\n", my_rank, world_size, names[c], comm_calls[c],
        comm_seconds[c], comm_cpu[c], BIG_ALLREDUCE, big_calls[c],
        big_seconds[c]);
}

/* atexit: finalise once per process, never while another rank may still sit
 * in a collective that needs us (that would hang the job). */
static void
finalize_at_exit (void)
{
  MPI_Request req;
  double timeout, start;
  int done = 0;
  const char *stats = getenv ("SIMCLR_MPI_STATS");

  if (stats && strcmp (stats, "1") == 0)
    print_stats ();
  if (atomic_load (&failed))
    MPI_Abort (MPI_COMM_WORLD, 1);

  timeout = env_seconds ("SIMCLR_MPI_FINALIZE_TIMEOUT", 60.0);
  start = MPI_Wtime ();
  MPI_Ibarrier (control_comm, &req);
  while (!done) {
    MPI_Test (&req, &done, MPI_STATUS_IGNORE);
    if (done)
      break;
    if (MPI_Wtime () - start > timeout) {
      fprintf (stderr, "simclr-mpi: rank %d of %d finished, but not every "
          "rank did within %.0f s (different numbers of steps? a rank "
          "stuck?); aborting all ranks\n", my_rank, world_size, timeout);
      MPI_Abort (MPI_COMM_WORLD, 1);
    }
    usleep (2000);
  }
  MPI_Finalize ();
}

int
simclr_mpi_init (SimclrError *err)
{
  int result;

  pthread_mutex_lock (&init_lock);
  if (!init_tried) {
    init_tried = 1;
    init_status = 0;
    if (simclr_mpi_launched ()) {
      int initialised = 0, provided = 0;
      MPI_Initialized (&initialised);
      if (!initialised) {
        MPI_Init_thread (NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        atexit (finalize_at_exit);
      } else {
        MPI_Query_thread (&provided);
      }
      MPI_Comm_rank (MPI_COMM_WORLD, &my_rank);
      MPI_Comm_size (MPI_COMM_WORLD, &world_size);
      if (provided < MPI_THREAD_MULTIPLE) {
        init_status = SIMCLR_ERROR_UNSUPPORTED;
        snprintf (init_message, sizeof init_message, "The MPI library does "
            "not provide MPI_THREAD_MULTIPLE (level %d); the encoder and the "
            "loss sink run collectives from two threads", provided);
      } else if (world_size > 1) {
        for (int c = 0; c < SIMCLR_MPI_N_CHANNELS; c++)
          MPI_Comm_dup (MPI_COMM_WORLD, &comms[c]);
        MPI_Comm_dup (MPI_COMM_WORLD, &control_comm);
        active = 1;
        init_status = 1;
      }
    }
  }
  result = init_status;
  pthread_mutex_unlock (&init_lock);
  if (result < 0)
    simclr_error_set (err, (SimclrStatus) result, "%s", init_message);
  return result;
}

int
simclr_mpi_active (void)
{
  return active;
}

int
simclr_mpi_rank (void)
{
  return active ? my_rank : 0;
}

int
simclr_mpi_size (void)
{
  return active ? world_size : 1;
}

static double
thread_cpu (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int
channel_index (void *user)
{
  intptr_t c = (intptr_t) user - 1;
  if (c < 0 || c >= SIMCLR_MPI_N_CHANNELS)
    c = SIMCLR_MPI_TRAINER;
  return (int) c;
}

static void
hook_allreduce (float *buf, int n, void *user)
{
  int c = channel_index (user);
  double t0, c0;

  if (n <= 0)
    return;
  c0 = thread_cpu ();
  t0 = MPI_Wtime ();
  MPI_Allreduce (MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, comms[c]);
  t0 = MPI_Wtime () - t0;
  comm_cpu[c] += thread_cpu () - c0;
  comm_seconds[c] += t0;
  comm_calls[c]++;
  if (n >= BIG_ALLREDUCE) {
    big_seconds[c] += t0;
    big_calls[c]++;
  }
}

static void
hook_allgather (const void *send, size_t bytes, void *recv, void *user)
{
  int c = channel_index (user);
  double t0, c0;

  /* MPI counts are int; a block past 2 GiB would be a bug upstream. */
  if (bytes > INT_MAX)
    simclr_mpi_abort ("all-gather block larger than 2 GiB");
  c0 = thread_cpu ();
  t0 = MPI_Wtime ();
  MPI_Allgather (send, (int) bytes, MPI_BYTE, recv, (int) bytes, MPI_BYTE,
      comms[c]);
  comm_seconds[c] += MPI_Wtime () - t0;
  comm_cpu[c] += thread_cpu () - c0;
  comm_calls[c]++;
}

static void
hook_broadcast (void *buf, size_t bytes, void *user)
{
  int c = channel_index (user);
  const size_t chunk = (size_t) 1 << 30;   /* counts are int: in chunks */
  double t0 = MPI_Wtime ();

  for (size_t off = 0; off < bytes; off += chunk) {
    size_t m = bytes - off < chunk ? bytes - off : chunk;
    MPI_Bcast ((char *) buf + off, (int) m, MPI_BYTE, 0, comms[c]);
  }
  comm_seconds[c] += MPI_Wtime () - t0;
  comm_calls[c]++;
}

void
simclr_mpi_comm (SimclrMpiChannel channel, SimclrComm *comm)
{
  simclr_comm_init_local (comm);
  if (!active)
    return;
  comm->size = world_size;
  comm->rank = my_rank;
  comm->allreduce = hook_allreduce;
  comm->allgather = hook_allgather;
  comm->broadcast = hook_broadcast;
  comm->user = (void *) (intptr_t) ((int) channel + 1);
}

void
simclr_mpi_abort (const char *reason)
{
  if (!active)
    return;
  atomic_store (&failed, 1);
  fprintf (stderr, "simclr-mpi: rank %d of %d: %s; ending every rank "
      "(MPI_Abort)\n", my_rank, world_size, reason);
  MPI_Abort (MPI_COMM_WORLD, 1);
}

void
simclr_mpi_set_failed (void)
{
  atomic_store (&failed, 1);
}

double
simclr_mpi_comm_seconds (SimclrMpiChannel channel)
{
  if ((int) channel < 0 || channel >= SIMCLR_MPI_N_CHANNELS)
    return 0.0;
  return comm_seconds[channel];
}

double
simclr_mpi_comm_cpu (SimclrMpiChannel channel)
{
  if ((int) channel < 0 || channel >= SIMCLR_MPI_N_CHANNELS)
    return 0.0;
  return comm_cpu[channel];
}
