/* layers.c: the small layers of a ResNet and its projection head: ReLU,
 * residual add, 3x3/2 max-pool, global average pool and linear (sgemm, with
 * a naive twin). Convolution and batch norm live in conv.c and batchnorm.c.
 * Backward functions accumulate; nothing here allocates or prints.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "layers-private.h"

/* ---------------------------------------------------------------------------
 * threads: a pool of workers started on first use and kept for the process.
 * Starting and joining threads per call cost 27-32 us each time (batch norm
 * calls twice per channel block, the thin convolutions once per pass), and
 * a thread created while the cores are busy can wait a scheduler slice
 * before it runs. Task 0 runs on the calling thread and task i on worker i;
 * which thread runs a task never changes what the task computes, so the
 * results are those of the per-call threads before.
 *
 * One call uses the workers at a time (pool.busy). A call made while another
 * holds them (a second trainer's thread, or a task calling in again) starts
 * threads of its own for that call, as before the pool: it never waits for
 * another call's work. A worker that cannot be started leaves its task to
 * the calling thread: same results, slower.
 *
 * Waiting: an idle worker spins for POOL_SPIN_NS (the next call of a
 * training step is usually that close), then parks on its condition
 * variable, so it never holds a core that MPI ranks or OpenBLAS threads
 * need for long; the caller waits for the last task likewise. The workers
 * are joined at exit; a forked child starts with none. */
typedef struct {
  void (*fn) (void *ctx, int task);
  void *ctx;
  int task;
} ParallelJob;

static void *
parallel_job (void *arg)
{
  ParallelJob *j = arg;
  j->fn (j->ctx, j->task);
  return NULL;
}

/* Without the pool: tasks 1.. on threads started for this call (also
 * bench-parallel's baseline). */
void
simclr_parallel_for_spawn (int tasks, void (*fn) (void *ctx, int task), void *ctx)
{
  pthread_t tid[SIMCLR_MAX_THREADS];
  int started[SIMCLR_MAX_THREADS] = { 0 };
  ParallelJob jobs[SIMCLR_MAX_THREADS];
  for (int i = 1; i < tasks; i++) {
    jobs[i] = (ParallelJob) { fn, ctx, i };
    started[i] = pthread_create (&tid[i], NULL, parallel_job, &jobs[i]) == 0;
  }
  fn (ctx, 0);
  for (int i = 1; i < tasks; i++) {
    if (started[i])
      pthread_join (tid[i], NULL);
    else
      fn (ctx, i);
  }
}

#ifndef POOL_SPIN_NS
#define POOL_SPIN_NS 20000
#endif

/* One worker; its own cache line, so a caller handing out tasks and the
 * workers polling do not share lines. */
typedef struct {
  _Alignas (64) atomic_ulong seq;       /* +1 by the caller per task given */
  void (*fn) (void *ctx, int task);
  void *ctx;
  pthread_cond_t wake;
  pthread_t tid;
} PoolWorker;

static struct {
  pthread_mutex_t busy;         /* held by the call using the workers */
  pthread_mutex_t mu;           /* parking: wake, done and quit */
  pthread_cond_t done;
  int n_workers;                /* workers 1 .. n_workers run (under busy) */
  int closed;                   /* joined at exit: calls spawn threads */
  atomic_int quit;
  _Alignas (64) atomic_int pending;     /* tasks given, not yet finished */
  PoolWorker w[SIMCLR_MAX_THREADS];     /* [0] unused: the caller */
} pool = {
  .busy = PTHREAD_MUTEX_INITIALIZER,
  .mu = PTHREAD_MUTEX_INITIALIZER,
  .done = PTHREAD_COND_INITIALIZER,
};

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#endif
}

static inline uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Spins until *p != v (returns 1) or POOL_SPIN_NS pass (returns 0). */
static int
spin_while_ulong (atomic_ulong *p, unsigned long v)
{
  if (POOL_SPIN_NS <= 0)
    return 0;
  const uint64_t t0 = now_ns ();
  for (;;) {
    for (int k = 0; k < 64; k++) {
      if (atomic_load_explicit (p, memory_order_acquire) != v)
        return 1;
      cpu_relax ();
    }
    if (atomic_load_explicit (&pool.quit, memory_order_relaxed)
        || now_ns () - t0 > POOL_SPIN_NS)
      return 0;
  }
}

/* Spins while tasks are out: returns 1 when all have finished, 0 when
 * POOL_SPIN_NS pass first. */
static int
spin_while_pending (void)
{
  if (atomic_load_explicit (&pool.pending, memory_order_acquire) == 0)
    return 1;
  if (POOL_SPIN_NS <= 0)
    return 0;
  const uint64_t t0 = now_ns ();
  for (;;) {
    for (int k = 0; k < 64; k++) {
      if (atomic_load_explicit (&pool.pending, memory_order_acquire) == 0)
        return 1;
      cpu_relax ();
    }
    if (now_ns () - t0 > POOL_SPIN_NS)
      return 0;
  }
}

static void *
pool_worker (void *arg)
{
  PoolWorker *w = arg;
  const int task = (int) (w - pool.w);
  unsigned long seen = 0;       /* pool_grow's seq, before any task */
  for (;;) {
    if (!spin_while_ulong (&w->seq, seen)) {
      pthread_mutex_lock (&pool.mu);
      while (atomic_load_explicit (&w->seq, memory_order_acquire) == seen
          && !atomic_load (&pool.quit))
        pthread_cond_wait (&w->wake, &pool.mu);
      pthread_mutex_unlock (&pool.mu);
    }
    const unsigned long s = atomic_load_explicit (&w->seq,
        memory_order_acquire);
    if (s == seen)              /* quit: only set while no task is out */
      break;
    seen = s;
    w->fn (w->ctx, task);
    if (atomic_fetch_sub_explicit (&pool.pending, 1,
            memory_order_acq_rel) == 1) {
      /* the caller may be parked: wake it (a late signal to a later call's
       * caller is harmless, it checks pending again) */
      pthread_mutex_lock (&pool.mu);
      pthread_cond_signal (&pool.done);
      pthread_mutex_unlock (&pool.mu);
    }
  }
  return NULL;
}

static void
pool_shutdown (void)
{
  /* at exit. A call still running (in another thread, or exit called from
   * a task) keeps its workers: they end with the process. */
  if (pthread_mutex_trylock (&pool.busy) != 0)
    return;
  pthread_mutex_lock (&pool.mu);
  atomic_store (&pool.quit, 1);
  for (int i = 1; i <= pool.n_workers; i++)
    pthread_cond_signal (&pool.w[i].wake);
  pthread_mutex_unlock (&pool.mu);
  for (int i = 1; i <= pool.n_workers; i++)
    pthread_join (pool.w[i].tid, NULL);
  pool.n_workers = 0;
  /* calls made after this (later exit handlers) start threads per call */
  pool.closed = 1;
  pthread_mutex_unlock (&pool.busy);
}

static void
pool_fork_child (void)
{
  /* the workers do not exist in a child: start afresh (a parent's call in
   * progress in another thread has no thread here either) */
  pthread_mutex_init (&pool.busy, NULL);
  pthread_mutex_init (&pool.mu, NULL);
  pthread_cond_init (&pool.done, NULL);
  for (int i = 1; i <= pool.n_workers; i++)
    pthread_cond_init (&pool.w[i].wake, NULL);
  pool.n_workers = 0;
  atomic_store (&pool.pending, 0);
}

static void
pool_init (void)
{
  pthread_atfork (NULL, NULL, pool_fork_child);
  atexit (pool_shutdown);
}

/* Starts workers up to n_workers = want (fewer if a thread cannot start).
 * Under pool.busy. */
static void
pool_grow (int want)
{
  while (pool.n_workers < want) {
    PoolWorker *w = &pool.w[pool.n_workers + 1];
    atomic_store (&w->seq, 0);
    pthread_cond_init (&w->wake, NULL);
    if (pthread_create (&w->tid, NULL, pool_worker, w) != 0) {
      pthread_cond_destroy (&w->wake);
      return;
    }
    pool.n_workers++;
  }
}

void
simclr_parallel_for (int tasks, void (*fn) (void *ctx, int task), void *ctx)
{
  if (tasks > SIMCLR_MAX_THREADS)
    tasks = SIMCLR_MAX_THREADS;
  if (tasks <= 1) {
    fn (ctx, 0);
    return;
  }
  pthread_once (&pool_once, pool_init);
  if (pthread_mutex_trylock (&pool.busy) != 0) {
    simclr_parallel_for_spawn (tasks, fn, ctx);
    return;
  }
  if (pool.closed) {
    pthread_mutex_unlock (&pool.busy);
    simclr_parallel_for_spawn (tasks, fn, ctx);
    return;
  }
  pool_grow (tasks - 1);
  const int nw = pool.n_workers < tasks - 1 ? pool.n_workers : tasks - 1;
  atomic_store_explicit (&pool.pending, nw, memory_order_relaxed);
  pthread_mutex_lock (&pool.mu);
  for (int i = 1; i <= nw; i++) {
    PoolWorker *w = &pool.w[i];
    w->fn = fn;
    w->ctx = ctx;
    atomic_fetch_add_explicit (&w->seq, 1, memory_order_release);
  }
  pthread_mutex_unlock (&pool.mu);
  for (int i = 1; i <= nw; i++)
    pthread_cond_signal (&pool.w[i].wake);
  fn (ctx, 0);
  for (int i = nw + 1; i < tasks; i++)  /* workers that could not start */
    fn (ctx, i);
  /* the last task: spin a little, then park */
  if (!spin_while_pending ()) {
    pthread_mutex_lock (&pool.mu);
    while (atomic_load_explicit (&pool.pending, memory_order_acquire) > 0)
      pthread_cond_wait (&pool.done, &pool.mu);
    pthread_mutex_unlock (&pool.mu);
  }
  pthread_mutex_unlock (&pool.busy);
}

/* The elementwise loops run in blocks of 8 through a small array: GCC's
 * -O2 vectoriser (the "very cheap" model) leaves loops that may alias or
 * need an epilogue scalar, and the scalar ReLU compiled to a branch that
 * mispredicts on half the inputs (17 ms for 3.2M floats). Loading a whole
 * block before storing it also keeps in-place calls (out == inp) right. */
#define EW 8

void
simclr_relu_forward (float *out, const float *inp, size_t n)
{
  /* inp, out (n); out may alias inp */
  size_t i = 0;
  for (; i + EW <= n; i += EW) {
    float t[EW];
    for (int j = 0; j < EW; j++)
      t[j] = inp[i + j] > 0.0f ? inp[i + j] : 0.0f;
    for (int j = 0; j < EW; j++)
      out[i + j] = t[j];
  }
  for (; i < n; i++)
    out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void
simclr_relu_backward (float *dinp, const float *dout, const float *out,
    size_t n)
{
  /* accumulates dinp (n); the gate is the forward output, so the caller
   * needs not keep the input: out > 0 exactly where inp > 0. */
  size_t i = 0;
  for (; i + EW <= n; i += EW) {
    float t[EW];
    for (int j = 0; j < EW; j++)
      t[j] = dinp[i + j] + (out[i + j] > 0.0f ? dout[i + j] : 0.0f);
    for (int j = 0; j < EW; j++)
      dinp[i + j] = t[j];
  }
  for (; i < n; i++)
    dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void
simclr_add_forward (float *out, const float *a, const float *b, size_t n)
{
  /* out = a + b (n); out may alias a or b */
  size_t i = 0;
  for (; i + EW <= n; i += EW) {
    float t[EW];
    for (int j = 0; j < EW; j++)
      t[j] = a[i + j] + b[i + j];
    for (int j = 0; j < EW; j++)
      out[i + j] = t[j];
  }
  for (; i < n; i++)
    out[i] = a[i] + b[i];
}

static void
add_into (float *d, const float *src, size_t n)
{
  size_t i = 0;
  for (; i + EW <= n; i += EW) {
    float t[EW];
    for (int j = 0; j < EW; j++)
      t[j] = d[i + j] + src[i + j];
    for (int j = 0; j < EW; j++)
      d[i + j] = t[j];
  }
  for (; i < n; i++)
    d[i] += src[i];
}

void
simclr_add_backward (float *da, float *db, const float *dout, size_t n)
{
  /* accumulates da and db (n); either may be NULL */
  if (da)
    add_into (da, dout, n);
  if (db)
    add_into (db, dout, n);
}

/* ---------------------------------------------------------------------------
 * max-pool 3x3 stride 2 pad 1 */
void
simclr_maxpool_forward (float *out, int32_t *argmax, const float *inp,
    int B, int H, int W, int C)
{
  /* inp (B,H,W,C); out, argmax (B,OH,OW,C), OH = (H - 1) / 2 + 1.
   * argmax holds the flat index into inp of the first maximum in scan order
   * (kh, kw); padding never wins since every window holds a real pixel. */
  const int OH = (H + 2 - 3) / 2 + 1, OW = (W + 2 - 3) / 2 + 1;
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        size_t o = (((size_t) b * OH + oh) * OW + ow) * C;
        for (int c = 0; c < C; c++) {
          out[o + c] = -FLT_MAX;
          argmax[o + c] = -1;
        }
        for (int kh = 0; kh < 3; kh++) {
          int ih = oh * 2 - 1 + kh;
          if (ih < 0 || ih >= H)
            continue;
          for (int kw = 0; kw < 3; kw++) {
            int iw = ow * 2 - 1 + kw;
            if (iw < 0 || iw >= W)
              continue;
            size_t i = (((size_t) b * H + ih) * W + iw) * C;
            for (int c = 0; c < C; c++) {
              float v = inp[i + c];
              /* first maximum wins ties; a NaN wins, so it propagates */
              if (argmax[o + c] < 0 || v > out[o + c] ||
                  (isnan (v) && !isnan (out[o + c]))) {
                out[o + c] = v;
                argmax[o + c] = (int32_t) (i + c);
              }
            }
          }
        }
      }
}

void
simclr_maxpool_backward (float *dinp, const float *dout,
    const int32_t *argmax, int B, int OH, int OW, int C)
{
  /* dout, argmax (B,OH,OW,C); accumulates dinp (B,H,W,C) at the argmax */
  size_t n = (size_t) B * OH * OW * C;
  for (size_t i = 0; i < n; i++)
    dinp[argmax[i]] += dout[i];
}

/* ---------------------------------------------------------------------------
 * global average pool */
void
simclr_avgpool_forward (float *out, const float *inp, int B, int HW, int C)
{
  /* inp (B, HW, C) -> out (B, C) */
  const float scale = 1.0f / HW;
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t) b * C;
    memset (o, 0, sizeof (float) * C);
    for (int p = 0; p < HW; p++) {
      const float *x = inp + ((size_t) b * HW + p) * C;
      for (int c = 0; c < C; c++)
        o[c] += x[c];
    }
    for (int c = 0; c < C; c++)
      o[c] *= scale;
  }
}

void
simclr_avgpool_backward (float *dinp, const float *dout, int B, int HW,
    int C)
{
  /* dout (B, C); accumulates dinp (B, HW, C) */
  const float scale = 1.0f / HW;
  for (int b = 0; b < B; b++) {
    const float *d = dout + (size_t) b * C;
    for (int p = 0; p < HW; p++) {
      float *dx = dinp + ((size_t) b * HW + p) * C;
      for (int c = 0; c < C; c++)
        dx[c] += d[c] * scale;
    }
  }
}

/* ---------------------------------------------------------------------------
 * linear */
void
simclr_linear_forward (float *out, const float *inp, const float *weight,
    const float *bias, int B, int IC, int OC)
{
  /* inp (B, IC), weight (OC, IC), bias (OC) or NULL, out (B, OC) */
  for (int b = 0; b < B; b++) {
    if (bias)
      memcpy (out + (size_t) b * OC, bias, sizeof (float) * OC);
    else
      memset (out + (size_t) b * OC, 0, sizeof (float) * OC);
  }
  /* GEMM M = B, N = OC, K = IC: out (M, N) += inp (M, K) x weight^T */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, IC,
      1.0f, inp, IC, weight, IC, 1.0f, out, OC);
}

void
simclr_linear_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight, int B, int IC,
    int OC)
{
  /* dout (B, OC), inp (B, IC), weight (OC, IC); accumulates dinp (B, IC)
   * (if not NULL), dweight (OC, IC), dbias (OC) (if not NULL). */
  if (dbias)
    for (int b = 0; b < B; b++)
      for (int o = 0; o < OC; o++)
        dbias[o] += dout[(size_t) b * OC + o];
  /* dweight: GEMM M = OC, N = IC, K = B: dweight += dout^T (OC, B) x inp */
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, B,
      1.0f, dout, OC, inp, IC, 1.0f, dweight, IC);
  /* dinp: GEMM M = B, N = IC, K = OC: dinp += dout (B, OC) x weight */
  if (dinp)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IC, OC,
        1.0f, dout, OC, weight, IC, 1.0f, dinp, IC);
}

void
simclr_linear_forward_naive (float *out, const float *inp,
    const float *weight, const float *bias, int B, int IC, int OC)
{
  for (int b = 0; b < B; b++)
    for (int o = 0; o < OC; o++) {
      float acc = bias ? bias[o] : 0.0f;
      for (int i = 0; i < IC; i++)
        acc += inp[(size_t) b * IC + i] * weight[(size_t) o * IC + i];
      out[(size_t) b * OC + o] = acc;
    }
}

void
simclr_linear_backward_naive (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight, int B, int IC,
    int OC)
{
  for (int b = 0; b < B; b++)
    for (int o = 0; o < OC; o++) {
      float d = dout[(size_t) b * OC + o];
      if (dbias)
        dbias[o] += d;
      for (int i = 0; i < IC; i++) {
        dweight[(size_t) o * IC + i] += d * inp[(size_t) b * IC + i];
        if (dinp)
          dinp[(size_t) b * IC + i] += d * weight[(size_t) o * IC + i];
      }
    }
}
