/* fake-comm.c: in-process replicas for tests (see fake-comm.h). */
#include "fake-comm.h"

#include <string.h>
#include <glib.h>

void
fake_group_init (FakeGroup *g, int K)
{
  memset (g, 0, sizeof *g);
  g->K = K;
  g->slots = g_malloc ((size_t) K * FAKE_SLOT_BYTES);
  pthread_barrier_init (&g->barrier, NULL, K);
}

void
fake_group_clear (FakeGroup *g)
{
  pthread_barrier_destroy (&g->barrier);
  g_free (g->slots);
  g->slots = NULL;
}

static char *
slot (FakeGroup *g, int q)
{
  return g->slots + (size_t) q * FAKE_SLOT_BYTES;
}

static void
fake_allgather (const void *send, size_t bytes, void *recv, void *user)
{
  FakeMember *m = user;
  FakeGroup *g = m->g;
  if (bytes > FAKE_SLOT_BYTES)
    g_error ("fake all-gather of %zu bytes: raise FAKE_SLOT_BYTES", bytes);
  memcpy (slot (g, m->rank), send, bytes);
  pthread_barrier_wait (&g->barrier);
  for (int q = 0; q < g->K; q++)
    memcpy ((char *) recv + (size_t) q * bytes, slot (g, q), bytes);
  if (m->rank == 0)
    g->gathers++;
  pthread_barrier_wait (&g->barrier);
}

/* Large buffers (a gradient) go through the slots in pieces. */
static void
fake_allreduce (float *buf, int n, void *user)
{
  FakeMember *m = user;
  FakeGroup *g = m->g;
  const size_t piece = FAKE_SLOT_BYTES / sizeof (float);
  for (size_t off = 0; off < (size_t) n; off += piece) {
    size_t len = (size_t) n - off < piece ? (size_t) n - off : piece;
    memcpy (slot (g, m->rank), buf + off, len * sizeof (float));
    pthread_barrier_wait (&g->barrier);
    for (size_t i = 0; i < len; i++) {
      float s = 0;
      for (int q = 0; q < g->K; q++)
        s += ((const float *) slot (g, q))[i];
      buf[off + i] = s;
    }
    pthread_barrier_wait (&g->barrier);
  }
  if (m->rank == 0)
    g->reduces++;
}

static void
fake_broadcast (void *buf, size_t bytes, void *user)
{
  FakeMember *m = user;
  FakeGroup *g = m->g;
  for (size_t off = 0; off < bytes; off += FAKE_SLOT_BYTES) {
    size_t len = bytes - off < FAKE_SLOT_BYTES ? bytes - off
        : FAKE_SLOT_BYTES;
    if (m->rank == 0)
      memcpy (slot (g, 0), (char *) buf + off, len);
    pthread_barrier_wait (&g->barrier);
    if (m->rank != 0)
      memcpy ((char *) buf + off, slot (g, 0), len);
    pthread_barrier_wait (&g->barrier);
  }
  if (m->rank == 0)
    g->broadcasts++;
}

void
fake_comm (FakeMember *m, SimclrComm *comm)
{
  memset (comm, 0, sizeof *comm);
  comm->size = m->g->K;
  comm->rank = m->rank;
  comm->allreduce = fake_allreduce;
  comm->allgather = fake_allgather;
  comm->broadcast = fake_broadcast;
  comm->user = m;
}
