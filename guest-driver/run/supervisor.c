/* The notification loop: one thread receives notifications from the
 * seccomp listener and hands each to a worker of a small pool (grown on
 * demand up to RUN_MAX_WORKERS), so one slow connect or blocking accept
 * never holds up the program's other calls; the calls that never wait
 * (socket, an accept with a connection ready) it answers itself. When every worker is busy the
 * notification waits in a bounded queue; past that bound it fails with
 * EAGAIN rather than growing without limit. Workers can all be waiting on
 * the program's behalf (threads blocked in accept, recvfrom, connect),
 * and the call that would end their waits (a connect to that listener)
 * would then wait for ever behind them: a queue that does not move for
 * STALL_MS gets more workers, up to WORKERS_STALLED. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hostsock.h"
#include "run.h"

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_idle = PTHREAD_COND_INITIALIZER;
/* Workers beyond RUN_MAX_WORKERS, started only while the queue does not
 * move (each is a program thread's blocked call); they end when they find
 * the queue empty. */
#define WORKERS_STALLED 1024u
/* How long the queue may stand still before they are started: far longer
 * than a worker takes to pick up a call when one is free. */
#define STALL_MS 100

static run_call *queue[RUN_MAX_QUEUED];
static unsigned q_head, q_n;
static unsigned long q_taken; /* calls the workers took from the queue */
static unsigned nworkers, nidle;
static int stopping;
static int stopfd = -1;
static pthread_t loop_thread;
static int loop_started;

static void dispatch(run_call *c) {
  switch (c->n.data.nr) {
  case SYS_socket: hwsock__run_on_socket(c); break;
  case SYS_connect: hwsock__run_on_connect(c); break;
  case SYS_bind: hwsock__run_on_bind(c); break;
  case SYS_listen: hwsock__run_on_listen(c); break;
#ifdef SYS_accept
  case SYS_accept: hwsock__run_on_accept(c, 0); break;
#endif
  case SYS_accept4: hwsock__run_on_accept(c, 1); break;
  case SYS_sendto: hwsock__run_on_sendto(c); break;
  case SYS_sendmsg: hwsock__run_on_sendmsg(c); break;
  case SYS_recvfrom: hwsock__run_on_recvfrom(c); break;
  case SYS_recvmsg: hwsock__run_on_recvmsg(c); break;
  case SYS_sendmmsg: hwsock__run_on_sendmmsg(c); break;
  case SYS_recvmmsg: hwsock__run_on_recvmmsg(c); break;
  case SYS_getsockname: hwsock__run_on_getname(c, 0); break;
  case SYS_getpeername: hwsock__run_on_getname(c, 1); break;
  case SYS_getsockopt: hwsock__run_on_getsockopt(c); break;
  case SYS_setsockopt: hwsock__run_on_setsockopt(c); break;
  default:
    /* the filter notifies nothing else; be safe anyway */
    hwsock__run_reply(c, 0, HWSOCK_ENOSYS);
    break;
  }
}

/* Calls that never wait are answered by the loop itself: handing one to a
 * worker costs two thread wake-ups, a good part of what a connection costs
 * (docs/PERFORMANCE.md, "hwsock-run per connection"). socket() makes a
 * pair and installs it; accept on an offloaded listener takes a connection
 * that is ready (or answers EAGAIN when nonblocking). 1: answered. */
static int answer_inline(run_call *c) {
  switch (c->n.data.nr) {
  case SYS_socket: hwsock__run_on_socket(c); return 1;
#ifdef SYS_accept
  case SYS_accept: return hwsock__run_try_accept(c, 0);
#endif
  case SYS_accept4: return hwsock__run_try_accept(c, 1);
  default: return 0;
  }
}

static void *worker_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&q_lock);
  for (;;) {
    while (q_n == 0 && !stopping && nworkers <= RUN_MAX_WORKERS) {
      nidle++;
      pthread_cond_wait(&q_cond, &q_lock);
      nidle--;
    }
    if (q_n == 0)
      break; /* stopping, or one of the stalled queue's extra workers */
    run_call *c = queue[q_head];
    q_head = (q_head + 1) % RUN_MAX_QUEUED;
    q_n--;
    q_taken++;
    pthread_mutex_unlock(&q_lock);
    dispatch(c);
    hwsock__run_call_done(c);
    free(c);
    pthread_mutex_lock(&q_lock);
  }
  nworkers--;
  pthread_cond_broadcast(&q_idle);
  pthread_mutex_unlock(&q_lock);
  return NULL;
}

/* One more worker. q_lock held. */
static void spawn_worker(void) {
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&a, 512 * 1024);
  if (pthread_create(&t, &a, worker_main, NULL) == 0)
    nworkers++;
  pthread_attr_destroy(&a);
}

/* Queues c and makes sure a worker will take it. q_lock held. */
static int enqueue(run_call *c) {
  if (q_n == RUN_MAX_QUEUED)
    return HWSOCK_EAGAIN;
  queue[(q_head + q_n) % RUN_MAX_QUEUED] = c;
  q_n++;
  if (nidle >= q_n) {
    pthread_cond_signal(&q_cond);
    return 0;
  }
  if (nworkers < RUN_MAX_WORKERS)
    spawn_worker();
  pthread_cond_signal(&q_cond);
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The loop's check of the queue, at least every STALL_MS while
 * calls wait in it: when no worker took one for that long (every worker
 * waits on the program's behalf), a worker per waiting call, up to
 * WORKERS_STALLED. Returns whether calls still wait (poll's timeout). */
static int unstall(unsigned long *seen, int64_t *since) {
  pthread_mutex_lock(&q_lock);
  int64_t now = now_ms();
  if (q_n == 0 || q_taken != *seen || nidle > 0) {
    *seen = q_taken;
    *since = now;
  } else if (now - *since >= STALL_MS) {
    unsigned want = q_n;
    if (nworkers < WORKERS_STALLED && want > WORKERS_STALLED - nworkers)
      want = WORKERS_STALLED - nworkers;
    if (nworkers >= WORKERS_STALLED)
      want = 0;
    for (unsigned i = 0; i < want; i++)
      spawn_worker();
    pthread_cond_broadcast(&q_cond);
    *since = now;
  }
  int waiting = q_n > 0;
  pthread_mutex_unlock(&q_lock);
  return waiting;
}

static void *loop_main(void *arg) {
  (void)arg;
  struct pollfd p[2] = {{.fd = hwsock__run.notify_fd, .events = POLLIN},
                        {.fd = stopfd, .events = POLLIN}};
  unsigned long seen = 0;
  int64_t since = now_ms();
  int waiting = 0;
  for (;;) {
    int r = poll(p, 2, waiting ? STALL_MS : -1);
    waiting = unstall(&seen, &since);
    if (r == 0)
      continue;
    if (r < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (p[1].revents)
      break;
    if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
      break; /* every supervised task is gone */
    if (!(p[0].revents & POLLIN))
      continue;
    run_call *c = calloc(1, sizeof(*c));
    if (!c)
      continue; /* the notification stays pending; retry */
    c->pidfd = -1;
    /* the kernel wants a zeroed struct */
    if (ioctl(hwsock__run.notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &c->n) < 0) {
      free(c); /* ENOENT: the caller went away before we got it */
      continue;
    }
    /* received in order: the newest so far */
    __atomic_store_n(&hwsock__run.notif_seen, c->n.id, __ATOMIC_RELEASE);
    if (answer_inline(c)) {
      hwsock__run_call_done(c);
      free(c);
      continue;
    }
    pthread_mutex_lock(&q_lock);
    int rc = enqueue(c);
    waiting = 1;
    pthread_mutex_unlock(&q_lock);
    if (rc < 0) {
      hwsock__run_log("refused (EAGAIN): syscall %d of pid %u: "
                      "RUN_MAX_QUEUED (%u) calls waiting for a worker "
                      "(raise it in guest-driver/run/run.h)",
                      c->n.data.nr, (unsigned)c->n.pid, RUN_MAX_QUEUED);
      hwsock__run_reply(c, 0, HWSOCK_EAGAIN);
      free(c);
    }
  }
  return NULL;
}

int hwsock__run_supervisor_start(void) {
  stopfd = eventfd(0, EFD_CLOEXEC);
  if (stopfd < 0)
    return hwsock__run_err(errno);
  int rc = pthread_create(&loop_thread, NULL, loop_main, NULL);
  if (rc != 0)
    return hwsock__run_err(rc);
  loop_started = 1;
  return 0;
}

void hwsock__run_supervisor_stop(void) {
  if (!loop_started)
    return;
  uint64_t one = 1;
  if (write(stopfd, &one, sizeof(one)) < 0) {
    /* cannot fail for a fresh eventfd; the join below would hang if it
     * did, so be explicit */
  }
  pthread_join(loop_thread, NULL);
  loop_started = 0;
  /* workers still busy are stuck in a call of a program that is gone or in
   * the driver: they end when the transport is shut down */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 2;
  pthread_mutex_lock(&q_lock);
  stopping = 1;
  pthread_cond_broadcast(&q_cond);
  while (nworkers > 0)
    if (pthread_cond_timedwait(&q_idle, &q_lock, &ts) != 0)
      break;
  while (q_n > 0) { /* never dispatched */
    free(queue[q_head]);
    q_head = (q_head + 1) % RUN_MAX_QUEUED;
    q_n--;
  }
  pthread_mutex_unlock(&q_lock);
  close(stopfd);
  stopfd = -1;
}
