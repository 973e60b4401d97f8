/* test-parallel.c: simclr_parallel_for (core/layers.c), the worker pool the
 * thin convolutions, batch norm and the loss masks split their work over.
 *
 * - Every task runs exactly once, for 0 .. 40 tasks (clipped to 1 ..
 *   SIMCLR_MAX_THREADS), task 0 on the calling thread, the call returning
 *   only after every task has finished.
 * - Task i runs on the same worker thread in every call (the pool keeps its
 *   workers instead of starting threads per call).
 * - A partitioned sum gives the same bits as the same tasks run one after
 *   another on one thread, call after call.
 * - Calls from several threads at once and calls from inside a task (on the
 *   calling thread and on a worker, two levels deep) all finish and run
 *   every task once; batch norm run from four threads at once gives the
 *   same bits as run alone.
 * - 5000 tiny calls in a row (each task once; the time per call printed).
 * - Exit does not hang: a forked child uses the pool and calls exit(); a
 *   forked child calls exit() while another of its threads is inside a call
 *   whose task never returns.
 */
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <pthread.h>

#include "layers-private.h"

typedef struct {
  atomic_int runs[SIMCLR_MAX_THREADS];
  pthread_t thread[SIMCLR_MAX_THREADS];
  atomic_int finished;
  int nested;                   /* tasks 0 and 1 make parallel calls too */
  atomic_int nested_runs[SIMCLR_MAX_THREADS];
  atomic_int nested2_runs[SIMCLR_MAX_THREADS];
} Record;

static void
nested2_task (void *ctx, int task)
{
  Record *r = ctx;
  atomic_fetch_add (&r->nested2_runs[task], 1);
}

static void
nested_task (void *ctx, int task)
{
  Record *r = ctx;
  atomic_fetch_add (&r->nested_runs[task], 1);
  if (task == 1)                /* a second level, from a nested worker */
    simclr_parallel_for (2, nested2_task, r);
}

static void
record_task (void *ctx, int task)
{
  Record *r = ctx;
  if (task < 0 || task >= SIMCLR_MAX_THREADS)
    g_error ("task %d out of 0 .. %d", task, SIMCLR_MAX_THREADS - 1);
  atomic_fetch_add (&r->runs[task], 1);
  r->thread[task] = pthread_self ();
  if (r->nested && (task == 0 || task == 1))
    simclr_parallel_for (3, nested_task, r);
  /* some work, so the tasks overlap and end at different times */
  volatile double s = 0;
  for (int i = 0; i < 2000 * (1 + task % 3); i++)
    s += i * 1e-9;
  atomic_fetch_add (&r->finished, 1);
}

static int
clipped (int tasks)
{
  return tasks < 1 ? 1 : tasks > SIMCLR_MAX_THREADS ? SIMCLR_MAX_THREADS
      : tasks;
}

static void
check_once (Record *r, int tasks, const char *what)
{
  const int ran = clipped (tasks);
  for (int i = 0; i < SIMCLR_MAX_THREADS; i++) {
    const int want = i < ran ? 1 : 0;
    const int got = atomic_load (&r->runs[i]);
    if (got != want)
      g_error ("%s: tasks=%d: task %d ran %d times, want %d", what, tasks, i,
          got, want);
  }
  if (atomic_load (&r->finished) != ran)
    g_error ("%s: tasks=%d: the call returned with %d of %d tasks finished",
        what, tasks, atomic_load (&r->finished), ran);
}

static void
test_every_task_once (void)
{
  static const int counts[] = { 0, 1, 2, 3, 2, 16, 5, 2, 17, 40, 2, -3 };
  pthread_t first[SIMCLR_MAX_THREADS];
  int have_first[SIMCLR_MAX_THREADS] = { 0 };
  for (unsigned c = 0; c < G_N_ELEMENTS (counts); c++) {
    for (int rep = 0; rep < 20; rep++) {
      Record *r = g_new0 (Record, 1);
      simclr_parallel_for (counts[c], record_task, r);
      check_once (r, counts[c], "one caller");
      if (!pthread_equal (r->thread[0], pthread_self ()))
        g_error ("tasks=%d: task 0 did not run on the calling thread",
            counts[c]);
      const int ran = clipped (counts[c]);
      for (int i = 1; i < ran; i++) {
        if (pthread_equal (r->thread[i], pthread_self ()))
          g_error ("tasks=%d: task %d ran on the calling thread", counts[c],
              i);
        if (!have_first[i]) {
          first[i] = r->thread[i];
          have_first[i] = 1;
        } else if (!pthread_equal (first[i], r->thread[i])) {
          g_error ("tasks=%d rep %d: task %d ran on another thread than "
              "before (a worker was started for this call)", counts[c], rep,
              i);
        }
      }
      g_free (r);
    }
  }
}

/* A sum over n values split into `tasks` contiguous ranges, each range
 * summed in float in order, the partials then added in task order. */
typedef struct {
  const float *x;
  int n, tasks;
  float part[SIMCLR_MAX_THREADS];
} SumJob;

static void
sum_task (void *ctx, int task)
{
  SumJob *j = ctx;
  const int i0 = (int) ((long) j->n * task / j->tasks);
  const int i1 = (int) ((long) j->n * (task + 1) / j->tasks);
  float s = 0.0f;
  for (int i = i0; i < i1; i++)
    s += j->x[i] * j->x[i] - 0.5f * j->x[i];
  j->part[task] = s;
}

static float
sum_total (const SumJob *j)
{
  float t = 0.0f;
  for (int i = 0; i < j->tasks; i++)
    t += j->part[i];
  return t;
}

static void
test_same_bits_as_serial (void)
{
  const int n = 100003;
  float *x = g_new (float, n);
  GRand *rand = g_rand_new_with_seed (14);
  for (int i = 0; i < n; i++)
    x[i] = (float) g_rand_double_range (rand, -3.0, 3.0);
  g_rand_free (rand);
  for (int tasks = 1; tasks <= SIMCLR_MAX_THREADS; tasks++) {
    SumJob serial = {.x = x,.n = n,.tasks = tasks };
    for (int i = 0; i < tasks; i++)
      sum_task (&serial, i);
    const float want = sum_total (&serial);
    for (int rep = 0; rep < 50; rep++) {
      SumJob par = {.x = x,.n = n,.tasks = tasks };
      for (int i = 0; i < SIMCLR_MAX_THREADS; i++)
        par.part[i] = NAN;
      simclr_parallel_for (tasks, sum_task, &par);
      for (int i = 0; i < tasks; i++)
        if (memcmp (&par.part[i], &serial.part[i], sizeof (float)) != 0)
          g_error ("tasks=%d rep %d: part %d is %.9g, serial %.9g", tasks,
              rep, i, par.part[i], serial.part[i]);
      const float got = sum_total (&par);
      if (memcmp (&got, &want, sizeof (float)) != 0)
        g_error ("tasks=%d rep %d: sum %.9g, serial %.9g", tasks, rep, got,
            want);
    }
  }
  g_free (x);
}

static void
test_nested (void)
{
  for (int tasks = 2; tasks <= 4; tasks++) {
    for (int rep = 0; rep < 20; rep++) {
      Record *r = g_new0 (Record, 1);
      r->nested = 1;
      simclr_parallel_for (tasks, record_task, r);
      check_once (r, tasks, "nested");
      /* tasks 0 and 1 each made a 3-task call, whose task 1 made a 2-task
       * call */
      for (int i = 0; i < SIMCLR_MAX_THREADS; i++) {
        const int want = i < 3 ? 2 : 0, want2 = i < 2 ? 2 : 0;
        if (atomic_load (&r->nested_runs[i]) != want)
          g_error ("nested tasks=%d: inner task %d ran %d times, want %d",
              tasks, i, atomic_load (&r->nested_runs[i]), want);
        if (atomic_load (&r->nested2_runs[i]) != want2)
          g_error ("nested tasks=%d: second-level task %d ran %d times, "
              "want %d", tasks, i, atomic_load (&r->nested2_runs[i]), want2);
      }
      g_free (r);
    }
  }
}

typedef struct {
  int tasks, reps, nested;
} CallerArg;

static void *
caller (void *arg)
{
  const CallerArg *a = arg;
  for (int rep = 0; rep < a->reps; rep++) {
    Record *r = g_new0 (Record, 1);
    r->nested = a->nested && rep % 7 == 0;
    simclr_parallel_for (a->tasks, record_task, r);
    check_once (r, a->tasks, "concurrent callers");
    g_free (r);
  }
  return NULL;
}

static void
test_concurrent_callers (void)
{
  CallerArg args[] = { {2, 300, 0}, {3, 300, 1}, {2, 300, 0}, {4, 300, 1} };
  pthread_t tid[G_N_ELEMENTS (args)];
  for (unsigned i = 1; i < G_N_ELEMENTS (args); i++)
    if (pthread_create (&tid[i], NULL, caller, &args[i]) != 0)
      g_error ("cannot start caller thread %u", i);
  caller (&args[0]);
  for (unsigned i = 1; i < G_N_ELEMENTS (args); i++)
    pthread_join (tid[i], NULL);
}

/* batch norm's training forward (statistics, then BN + residual + ReLU) on
 * 4 threads, alone and from four threads at once: the same bits */
enum { BN_M = 32768, BN_C = 24 };  /* 6 tasks of BN_MIN_TASK_FLOATS: 4 run */

typedef struct {
  const float *x, *res, *w, *b;
  float out[BN_M * BN_C], mean[BN_C], rstd[BN_C], rm[BN_C], rv[BN_C];
} BnRun;

static void
bn_run (BnRun *r)
{
  for (int c = 0; c < BN_C; c++) {
    r->rm[c] = 0.0f;
    r->rv[c] = 1.0f;
  }
  simclr_batchnorm_act_forward_train (r->out, r->mean, r->rstd, r->rm, r->rv,
      r->x, r->res, 1, r->w, r->b, BN_M, BN_C, 0.1f, 1e-5f, 4, NULL, NULL);
}

static void *
bn_thread (void *arg)
{
  for (int rep = 0; rep < 20; rep++)
    bn_run (arg);
  return NULL;
}

static void
test_batchnorm_concurrent (void)
{
  float *x = g_new (float, BN_M * BN_C), *res = g_new (float, BN_M * BN_C);
  float w[BN_C], b[BN_C];
  GRand *rand = g_rand_new_with_seed (7);
  for (int i = 0; i < BN_M * BN_C; i++) {
    x[i] = (float) g_rand_double_range (rand, -2.0, 3.0);
    res[i] = (float) g_rand_double_range (rand, -1.0, 1.0);
  }
  for (int c = 0; c < BN_C; c++) {
    w[c] = (float) g_rand_double_range (rand, 0.5, 1.5);
    b[c] = (float) g_rand_double_range (rand, -0.5, 0.5);
  }
  g_rand_free (rand);
  BnRun *alone = g_new0 (BnRun, 1);
  *alone = (BnRun) {.x = x,.res = res,.w = w,.b = b };
  bn_run (alone);
  BnRun *runs = g_new0 (BnRun, 4);
  pthread_t tid[4];
  for (int t = 0; t < 4; t++) {
    runs[t] = (BnRun) {.x = x,.res = res,.w = w,.b = b };
    if (t > 0 && pthread_create (&tid[t], NULL, bn_thread, &runs[t]) != 0)
      g_error ("cannot start batch-norm thread %d", t);
  }
  bn_thread (&runs[0]);
  for (int t = 1; t < 4; t++)
    pthread_join (tid[t], NULL);
  for (int t = 0; t < 4; t++) {
    if (memcmp (runs[t].mean, alone->mean, sizeof (alone->mean)) != 0 ||
        memcmp (runs[t].rstd, alone->rstd, sizeof (alone->rstd)) != 0)
      g_error ("batch norm thread %d: statistics differ from a lone call "
          "(mean[0] %.9g vs %.9g)", t, runs[t].mean[0], alone->mean[0]);
    for (int i = 0; i < BN_M * BN_C; i++)
      if (memcmp (&runs[t].out[i], &alone->out[i], sizeof (float)) != 0)
        g_error ("batch norm thread %d: out[%d] = %.9g, a lone call %.9g", t,
            i, runs[t].out[i], alone->out[i]);
  }
  g_free (runs);
  g_free (alone);
  g_free (res);
  g_free (x);
}

static void
count_task (void *ctx, int task)
{
  atomic_int *runs = ctx;
  atomic_fetch_add (&runs[task], 1);
}

static void
test_many_tiny_calls (void)
{
  enum { CALLS = 5000 };
  atomic_int runs[3] = { 0 };
  const gint64 t0 = g_get_monotonic_time ();
  for (int i = 0; i < CALLS; i++)
    simclr_parallel_for (2 + i % 2, count_task, runs);
  const gint64 t1 = g_get_monotonic_time ();
  const int want[3] = { CALLS, CALLS, CALLS / 2 };
  for (int t = 0; t < 3; t++)
    if (atomic_load (&runs[t]) != want[t])
      g_error ("%d tiny calls: task %d ran %d times, want %d", CALLS, t,
          atomic_load (&runs[t]), want[t]);
  g_test_message ("%d tiny calls: %.2f us per call", CALLS,
      (double) (t1 - t0) / CALLS);
}

/* Waits up to 30 s for pid; kills it and fails if it is still running. */
static void
wait_child (pid_t pid, int want_status, const char *what)
{
  int status = 0;
  for (int i = 0; i < 3000; i++) {
    pid_t got = waitpid (pid, &status, WNOHANG);
    if (got == pid) {
      if (!WIFEXITED (status) || WEXITSTATUS (status) != want_status)
        g_error ("%s: child ended with status 0x%x, want exit %d", what,
            status, want_status);
      return;
    }
    if (got < 0)
      g_error ("%s: waitpid failed", what);
    g_usleep (10000);
  }
  kill (pid, SIGKILL);
  waitpid (pid, &status, 0);
  g_error ("%s: the child did not exit within 30 s (exit hangs)", what);
}

static void
test_exit_after_fork (void)
{
  Record *r = g_new0 (Record, 1);
  simclr_parallel_for (3, record_task, r);      /* the parent's pool exists */
  check_once (r, 3, "before fork");
  g_free (r);
  pid_t pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0) {
    Record c;
    memset (&c, 0, sizeof c);
    simclr_parallel_for (3, record_task, &c);
    const int ok = atomic_load (&c.finished) == 3 &&
        atomic_load (&c.runs[0]) == 1 && atomic_load (&c.runs[1]) == 1 &&
        atomic_load (&c.runs[2]) == 1;
    exit (ok ? 17 : 1);         /* exit, not _exit: the pool's exit handler */
  }
  wait_child (pid, 17, "fork, parallel call, exit");
}

static atomic_int blocked_started;

static void
block_task (void *ctx, int task)
{
  (void) ctx;
  if (task == 1) {
    atomic_store (&blocked_started, 1);
    for (;;)
      pause ();
  }
}

static void *
block_caller (void *arg)
{
  (void) arg;
  simclr_parallel_for (2, block_task, NULL);
  return NULL;
}

static void
test_exit_during_call (void)
{
  pid_t pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0) {
    pthread_t tid;
    if (pthread_create (&tid, NULL, block_caller, NULL) != 0)
      _exit (2);
    for (int i = 0; i < 20000 && !atomic_load (&blocked_started); i++)
      g_usleep (1000);
    exit (atomic_load (&blocked_started) ? 23 : 3);
  }
  wait_child (pid, 23, "exit while a call is in progress");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/parallel/every-task-once", test_every_task_once);
  g_test_add_func ("/parallel/same-bits-as-serial", test_same_bits_as_serial);
  g_test_add_func ("/parallel/nested", test_nested);
  g_test_add_func ("/parallel/concurrent-callers", test_concurrent_callers);
  g_test_add_func ("/parallel/batchnorm-concurrent",
      test_batchnorm_concurrent);
  g_test_add_func ("/parallel/many-tiny-calls", test_many_tiny_calls);
  g_test_add_func ("/parallel/exit-after-fork", test_exit_after_fork);
  g_test_add_func ("/parallel/exit-during-call", test_exit_during_call);
  return g_test_run ();
}
