/* Pumping between the pump end of an offloaded socket and its device
 * socket, with the guest driver's blocking API. Two threads per socket
 * (parked after their socket ends and reused by the next one: spawn()),
 * except that with the event queue each direction of every socket (stream
 * or datagram) is one dispatcher thread ("the dispatcher" below for down,
 * "the up dispatcher" for up), which hands a socket to such a thread only
 * for its slow cases:
 *
 *   down (device -> program): recv from the device, write to the pump end;
 *     device EOF -> shutdown(SHUT_WR) on the pump end (the program reads
 *     EOF); error -> the entry is killed (EOF / EPIPE for the program).
 *   up (program -> device): read the pump end, send to the device; program
 *     EOF -> hwsock_guest_shutdown(WR), then wait for the hang-up that says
 *     the program closed it (or both directions are done) and kill.
 *
 * Datagram sockets move one datagram per SEQPACKET record. For sockets
 * without a default peer, the down pump records each datagram's source in
 * the entry (srcq) for the intercepted recvfrom/recvmsg, and the up pump
 * drops what the program writes without an address (EDESTADDRREQ on a host
 * socket; the supervisor cannot report it from here). An ICMP error
 * (ECONNREFUSED, unreachable) does not end a datagram socket: it becomes
 * the pending error plus an empty marker record that wakes the program's
 * poll (hwsock__run_dgram_post_err).
 *
 * Listeners have an acceptor instead: it accepts from the device ahead of
 * the program (at most RUN_MAX_PREACCEPT) and writes one byte per ready
 * connection to the pump end, so the program's poll/epoll on its listener
 * fd sees it readable. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

#include "hwsock/wire.h"
#include "run.h"
#include "srcq.h"

/* ---- threads ------------------------------------------------------------- */

static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t threads_cond = PTHREAD_COND_INITIALIZER;
static int nthreads;
/* Of them, the program -> device pumps (what the program wrote). */
static int nsenders;

/* Counts d threads (of them `senders` program -> device pumps) in or out;
 * a count that goes down wakes hwsock__run_pump_wait's waiters. Pumps,
 * custodies and dispatchers all count, so the exit drain waits for them. */
static void count_threads(int d, int senders) {
  pthread_mutex_lock(&threads_lock);
  nthreads += d;
  nsenders += senders;
  if (d < 0 || senders < 0)
    pthread_cond_broadcast(&threads_cond);
  pthread_mutex_unlock(&threads_lock);
}

/* A detached thread with a small stack (hwsock-run may run thousands of
 * pumps when the dispatchers are not available): 0 or HWSOCK_E*. */
static int start_thread(void *(*fn)(void *), void *arg) {
  pthread_attr_t at;
  pthread_t t;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 256 * 1024);
  int rc = pthread_create(&t, &at, fn, arg);
  pthread_attr_destroy(&at);
  return rc ? hwsock__run_err(rc) : 0;
}

typedef struct pump_arg {
  run_sock *s;
  void (*fn)(run_sock *s, const char *uri);
  int sender;
  char uri[HWSOCK_URI_MAX + 1];
  /* a socket the dispatcher handed over (stream_resume): what its
   * non-blocking recv returned (bytes not yet written, 0 at EOF, an error),
   * or fresh: nothing taken yet */
  uint8_t *data;
  ssize_t n;
  int fresh;
  int hup; /* the up dispatcher: the socket waits for its hang-up */
  int end; /* a datagram socket's recv ended: n is its error, or 0 (EOF) */
  void (*job)(struct pump_arg *a); /* instead of fn */
} pump_arg;

static void stream_up(run_sock *s, const char *unused);
static void dgram_up(run_sock *s, const char *unused);

/* Pump threads are kept: one whose socket ended parks (at most
 * PUMP_PARKED_MAX of them, each for PUMP_PARKED_MS) and the next spawn()
 * hands it its job, so a connection costs a wake-up instead of a thread's
 * creation and exit (clone3, stack mapping and its madvise at exit, rseq,
 * robust list, signal masks: docs/PERFORMANCE.md, "hwsock-run per
 * connection"). */
#define PUMP_PARKED_MAX 64u
#define PUMP_PARKED_MS 5000

typedef struct parked {
  struct parked *next;
  pthread_cond_t cond;
  pump_arg *job; /* set by spawn() (pool_lock) */
} parked;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static parked *pool;
static unsigned npool;

static void run_job(pump_arg *a) {
  if (a->job)
    a->job(a);
  else
    a->fn(a->s, a->uri);
  hwsock__run_sock_put(a->s);
  count_threads(-1, -a->sender);
  free(a->data);
  free(a);
}

/* Parks the calling thread until spawn() gives it a job (returned) or
 * PUMP_PARKED_MS pass (NULL: the thread ends). */
static pump_arg *park(void) {
  parked me;
  me.job = NULL;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&me.cond, &ca);
  pthread_condattr_destroy(&ca);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += PUMP_PARKED_MS / 1000;
  pthread_mutex_lock(&pool_lock);
  if (npool < PUMP_PARKED_MAX) {
    me.next = pool;
    pool = &me;
    npool++;
    while (!me.job)
      if (pthread_cond_timedwait(&me.cond, &pool_lock, &ts) != 0)
        break;
    if (!me.job) { /* timed out: leave the pool */
      parked **pp = &pool;
      while (*pp != &me)
        pp = &(*pp)->next;
      *pp = me.next;
      npool--;
    }
  }
  pthread_mutex_unlock(&pool_lock);
  pthread_cond_destroy(&me.cond);
  return me.job;
}

static void *thread_main(void *p) {
  for (pump_arg *a = p; a; a = park())
    run_job(a);
  return NULL;
}

/* Gives a to a parked thread: 1, or 0 when none is parked. */
static int unpark(pump_arg *a) {
  pthread_mutex_lock(&pool_lock);
  parked *t = pool;
  if (t) {
    pool = t->next;
    npool--;
    t->job = a;
    pthread_cond_signal(&t->cond);
  }
  pthread_mutex_unlock(&pool_lock);
  return t != NULL;
}

static int spawn_job(pump_arg *a, run_sock *s,
                     void (*fn)(run_sock *, const char *), const char *uri) {
  a->s = s;
  a->fn = fn;
  a->sender |= fn == stream_up || fn == dgram_up; /* or set by the caller */
  if (uri)
    snprintf(a->uri, sizeof(a->uri), "%s", uri);
  hwsock__run_sock_get(s);
  count_threads(1, a->sender);
  if (unpark(a))
    return 0;
  int rc = start_thread(thread_main, a);
  if (rc != 0) {
    count_threads(-1, -a->sender);
    hwsock__run_sock_put(s);
    free(a->data);
    free(a);
  }
  return rc;
}

static int spawn(run_sock *s, void (*fn)(run_sock *, const char *),
                 const char *uri) {
  pump_arg *a = calloc(1, sizeof(*a));
  if (!a)
    return HWSOCK_ENOMEM;
  return spawn_job(a, s, fn, uri);
}

/* Waits until *count is 0 or timeout_ms passed; returns what is left. */
static int wait_count(const int *count, int timeout_ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  ts.tv_sec += ts.tv_nsec / 1000000000L;
  ts.tv_nsec %= 1000000000L;
  pthread_mutex_lock(&threads_lock);
  while (*count > 0)
    if (pthread_cond_timedwait(&threads_cond, &threads_lock, &ts) != 0)
      break;
  int left = *count;
  pthread_mutex_unlock(&threads_lock);
  return left;
}

int hwsock__run_pump_wait(int timeout_ms) {
  return wait_count(&nthreads, timeout_ms);
}

int hwsock__run_pump_wait_senders(int timeout_ms) {
  return wait_count(&nsenders, timeout_ms);
}

/* ---- helpers ------------------------------------------------------------- */

static int is_dead(run_sock *s) {
  pthread_mutex_lock(&s->lock);
  int d = s->dead;
  pthread_mutex_unlock(&s->lock);
  return d;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return hwsock__run_err(errno);
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Both directions of the pump end are finished or the program closed it. */
static void wait_hangup(run_sock *s) {
  struct pollfd p = {.fd = s->pfd, .events = 0};
  while (!is_dead(s)) {
    int r = poll(&p, 1, 1000);
    if (r > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
      return;
    if (r < 0 && errno != EINTR)
      return;
  }
}

/* The program closed its end (not only shut it down: a hang-up also
 * follows a shutdown of both directions while the program holds the fd,
 * so the kernel is asked whether the program end still exists). */
static int program_closed(run_sock *s) {
  struct pollfd p = {.fd = s->pfd, .events = 0};
  if (poll(&p, 1, 0) != 1 || !(p.revents & POLLHUP))
    return 0;
  pthread_mutex_lock(&s->lock);
  int dead = s->dead, down_done = s->down_done;
  pthread_mutex_unlock(&s->lock);
  if (dead) /* kill's shutdown made the hang-up (dead is set before it) */
    return 0;
  /* Both directions shut needs our SHUT_WR, which only the down pump's
   * EOF makes: without it the hang-up is the program's close, and the
   * sock_diag lookup (a walk of the kernel's unix socket table, the
   * costliest syscall of a connection's end) is not needed. */
  return !down_done || hwsock__run_unix_alive(s->ino) == 0;
}

/* Ends the connection: the pumps stop; the entry stays findable while the
 * program holds the fd (getsockname still answers). */
static void finish(run_sock *s) { hwsock__run_sock_retire(s); }

/* The transport is gone (every driver call fails with ECONNRESET), not
 * the connection. Asked of the driver: a socket the device reset (after a
 * restore or a hand-over that could not take it) fails every call with
 * ECONNRESET too, GETNAME included, while the device goes on. */
static int transport_gone(run_sock *s) {
  (void)s;
  return hwsock__run_transport_lost();
}

static void fail(run_sock *s, const char *what, int err) {
  /* A program that closed its end (with data unread: the pump end reads
   * ECONNRESET) closed the socket normally: retire() says so. */
  if (!is_dead(s) && hwsock__run_unix_alive(s->ino) != 0) {
    char lb[64];
    hwsock__run_label(s, lb, sizeof(lb));
    if (err == HWSOCK_ECONNRESET && transport_gone(s)) {
      hwsock__run_log("close: %s: the device went away", lb);
      hwsock__run_device_gone();
    } else {
      hwsock__run_log("close: %s: %s: %s", lb, what,
                      hwsock__run_strerror(err));
    }
  }
  if (err == HWSOCK_ENEEDSRESET) {
    hwsock__run.device_down = 1;
    hwsock__run_device_gone();
  }
  finish(s);
}

/* A pump's buffer; NULL (and the entry killed) when there is no memory. */
static uint8_t *pump_buf(run_sock *s, size_t size) {
  uint8_t *buf = malloc(size);
  if (!buf)
    fail(s, "pump", HWSOCK_ENOMEM);
  return buf;
}

/* ---- streams ------------------------------------------------------------- */

/* What one device recv returned (n bytes in buf, 0 at EOF, an error),
 * delivered to the program: 1 to go on, 0 when this direction ended. */
static int down_deliver(run_sock *s, const uint8_t *buf, ssize_t n) {
  if (n > 0) {
    if (write_all(s->pfd, buf, (size_t)n) < 0) {
      fail(s, "program side", HWSOCK_EPIPE);
      return 0;
    }
    return 1;
  }
  if (n == 0) { /* the peer's orderly shutdown */
    char lb[64];
    pthread_mutex_lock(&s->lock);
    s->down_done = 1;
    pthread_mutex_unlock(&s->lock);
    if (!is_dead(s))
      hwsock__run_log("eof: %s: the peer closed its side",
                      hwsock__run_label(s, lb, sizeof(lb)));
    shutdown(s->pfd, SHUT_WR);
    return 0;
  }
  fail(s, "recv", (int)n);
  return 0;
}

static void stream_down(run_sock *s, const char *unused) {
  (void)unused;
  uint8_t *buf = pump_buf(s, RUN_PUMP_BUF);
  if (!buf)
    return;
  for (;;) {
    ssize_t n = hwsock_guest_recv(hwsock__run.g, s->id, buf, RUN_PUMP_BUF, 0);
    if (!down_deliver(s, buf, n))
      break;
  }
  free(buf);
}

/* ---- the dispatcher: device -> program of every socket ---------------------
 *
 * With the event queue one thread carries what the device received for all
 * offloaded stream sockets: it watches each for HWSOCK_GUEST_IN, and for a
 * ready one takes what is there without waiting and writes it to the pump
 * end without waiting. Whatever does not go that way (the program end is
 * full, end of file, an error, the device going away) hands the socket to a
 * pooled thread (stream_resume) that does what stream_down does: a
 * blocking write of the rest, then the socket comes back here, or its
 * end. One socket is with one of them at a time (its bytes keep their
 * order); the dispatcher stops watching a socket before it lets go of it,
 * and the reference it holds keeps the device id open (not reused) while
 * it is watched. Datagram sockets the same way, one datagram at a time
 * (disp_dgram_ready: its source queued, a soft error made pending, as
 * dgram_down does; dgram_resume for the slow cases). Without the event
 * queue (a --vmm with one queue) each socket has its own stream_down or
 * dgram_down thread, as before. */

#define DISP_EVENTS 64

static pthread_mutex_t disp_lock = PTHREAD_MUTEX_INITIALIZER;
static run_sock *disp_socks[RUN_MAX_SOCKS]; /* by device id, referenced */
static unsigned disp_gen[RUN_MAX_SOCKS];    /* registrations of each id */
static int disp_state;                      /* 0 not started, 1 runs, -1 gone */
/* What the dispatcher did, logged (-v) when it stops: its waits, the
 * sockets they reported, and of those the ones it found no entry for (a
 * report it can do nothing with; many per socket is the dispatcher
 * spinning: test/run/many_test.py accept). Dispatcher thread only. */
static unsigned long disp_waits, disp_reports, disp_unknown;

/* The custody of a socket counts as a pump (hwsock__run_pump_wait). */
static void custody_take(run_sock *s) {
  hwsock__run_sock_get(s);
  count_threads(1, 0);
}

static void custody_drop(run_sock *s) {
  hwsock__run_sock_put(s);
  count_threads(-1, 0);
}

static void stream_resume(pump_arg *a);
static void dgram_resume(pump_arg *a);
static void up_kick(void);
static int dgram_soft_err(int err);
static int dgram_src_push(run_sock *s, const uint8_t *buf, size_t n,
                          const char *uri, unsigned rflags, uint8_t *full);

/* A datagram socket's "datagrams dropped" episode (logged once each), by
 * device id: only the socket's pump (the dispatcher or its thread)
 * touches it. */
static uint8_t dgram_full[RUN_MAX_SOCKS];

/* A hand-over's job carrying a copy of the n > 0 bytes a dispatcher took
 * (copy: 0 when there are none to carry), or NULL without memory. */
static pump_arg *hand_over_job(const uint8_t *data, ssize_t n, int copy) {
  pump_arg *a = calloc(1, sizeof(*a));
  if (a && copy && n > 0) {
    if (!(a->data = malloc((size_t)n))) {
      free(a);
      return NULL;
    }
    memcpy(a->data, data, (size_t)n);
  }
  if (a)
    a->n = n;
  return a;
}

/* Takes the socket away from the dispatcher (which holds it) and gives it
 * to a thread with what its recv returned (data: n bytes, or the EOF /
 * error n; fresh: nothing taken yet; a datagram socket: end says n is
 * the end, else n bytes are a datagram whose source is queued). */
static void disp_hand_over(int id, run_sock *s, const uint8_t *data, ssize_t n,
                           int fresh, int end) {
  hwsock_guest_watch(hwsock__run.g, id, 0);
  pthread_mutex_lock(&disp_lock);
  disp_socks[id] = NULL;
  pthread_mutex_unlock(&disp_lock);
  pump_arg *a = hand_over_job(data, n, !fresh);
  if (!a) {
    fail(s, "pump", HWSOCK_ENOMEM);
  } else {
    a->fresh = fresh;
    a->end = end;
    a->job = s->type == SOCK_DGRAM ? dgram_resume : stream_resume;
    if (spawn_job(a, s, NULL, NULL) < 0)
      fail(s, "pump", HWSOCK_ENOMEM);
  }
  custody_drop(s);
}

_Static_assert(RUN_PUMP_BUF >= RUN_MAX_DGRAM, "the dispatcher's buffer");

/* One ready datagram socket: one datagram (its source queued) goes to the
 * program, a soft error becomes pending (dgram_down's way), and a full
 * program end, an error or the end goes to a thread. */
static void disp_dgram_ready(int id, run_sock *s, uint8_t *buf) {
  char uri[HWSOCK_URI_MAX + 1];
  unsigned rflags = 0;
  uri[0] = '\0';
  ssize_t n = hwsock_guest_recvfrom(hwsock__run.g, id, buf, RUN_MAX_DGRAM,
                                    HWSOCK_GUEST_RECV_DONTWAIT, uri,
                                    sizeof(uri), &rflags);
  if (n == HWSOCK_EAGAIN)
    return;
  if (n < 0 && dgram_soft_err((int)n) && !is_dead(s)) {
    hwsock__run_dgram_post_err(s, (int)n, 1);
    return;
  }
  if (n < 0 || (rflags & HWSOCK_RESP_F_EOF)) {
    disp_hand_over(id, s, NULL, n < 0 ? n : 0, 0, 1);
    return;
  }
  if (!dgram_src_push(s, buf, (size_t)n, uri, rflags, &dgram_full[id]))
    return; /* dropped: the program does not keep up */
  if (send(s->pfd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n)
    return;
  /* full (EAGAIN) or failing: the blocking write tells which */
  disp_hand_over(id, s, buf, n, 0, 0);
}

/* One ready socket: what is there goes to the program, or to a thread. */
static void disp_ready(int id, uint8_t *buf) {
  pthread_mutex_lock(&disp_lock);
  run_sock *s = disp_socks[id];
  pthread_mutex_unlock(&disp_lock);
  disp_reports++;
  if (!s) { /* handed over earlier in this batch */
    disp_unknown++;
    return;
  }
  if (s->type == SOCK_DGRAM) {
    disp_dgram_ready(id, s, buf);
    return;
  }
  ssize_t n = hwsock_guest_recv(hwsock__run.g, id, buf, RUN_PUMP_BUF,
                                HWSOCK_GUEST_RECV_DONTWAIT);
  if (n == HWSOCK_EAGAIN)
    return; /* drained meanwhile */
  if (n <= 0) { /* end of file or an error: stream_down's way */
    disp_hand_over(id, s, NULL, n, 0, 0);
    return;
  }
  ssize_t w = send(s->pfd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w == n)
    return;
  if (w < 0)
    w = 0; /* full (EAGAIN) or failing: the blocking write tells which */
  disp_hand_over(id, s, buf + w, n - w, 0, 0);
}

static void *dispatcher(void *unused) {
  (void)unused;
  static uint8_t buf[RUN_PUMP_BUF];
  hwsock_guest_event ev[DISP_EVENTS];
  int rc;
  for (;;) {
    rc = hwsock_guest_wait(hwsock__run.g, ev, DISP_EVENTS, 1000);
    if (rc < 0)
      break;
    disp_waits++;
    for (int i = 0; i < rc; i++)
      if (ev[i].sock >= 0 && (unsigned)ev[i].sock < RUN_MAX_SOCKS)
        disp_ready(ev[i].sock, buf);
  }
  /* The driver failed for good (the device went away, or exit shut the
   * transport): every socket goes to a thread of its own, whose recv meets
   * the failure and ends it as stream_down does. New sockets get their own
   * threads from now on. (Nothing logged: at exit this is our own doing,
   * and a device that went away is reported by the sockets' ends.) */
  hwsock__run_log("dispatcher: stopped: %lu waits, %lu sockets reported, "
                  "%lu of them unknown to it",
                  disp_waits, disp_reports, disp_unknown);
  pthread_mutex_lock(&disp_lock);
  disp_state = -1;
  pthread_mutex_unlock(&disp_lock);
  up_kick(); /* the up dispatcher stops too */
  for (unsigned id = 0; id < RUN_MAX_SOCKS; id++) {
    pthread_mutex_lock(&disp_lock);
    run_sock *s = disp_socks[id];
    pthread_mutex_unlock(&disp_lock);
    if (s)
      disp_hand_over((int)id, s, NULL, 0, 1, 0);
  }
  count_threads(-1, 0);
  return NULL;
}

/* Starts the dispatcher once (disp_lock held): 0, or HWSOCK_E* (not
 * available: the caller pumps the socket with a thread of its own). */
static int disp_start_locked(void) {
  if (disp_state != 0)
    return disp_state > 0 ? 0 : HWSOCK_EOPNOTSUPP;
  count_threads(1, 0); /* the dispatcher is in the driver until the transport ends */
  int rc = start_thread(dispatcher, NULL);
  if (rc != 0) {
    count_threads(-1, 0);
    disp_state = -1;
    return rc;
  }
  disp_state = 1;
  hwsock__run_log("dispatcher: one thread carries device -> program of "
                  "every stream and datagram socket (event queue)");
  return 0;
}

/* Gives the device -> program direction of stream socket s to the
 * dispatcher: 0, or HWSOCK_E* (no event queue, or the socket cannot be
 * watched): the caller runs stream_down for it. */
static int disp_add(run_sock *s) {
  int id = s->id;
  if (!(hwsock_guest_features(hwsock__run.g) & HWSOCK_F_EVENT_QUEUE))
    return HWSOCK_EOPNOTSUPP;
  if (id < 0 || (unsigned)id >= RUN_MAX_SOCKS)
    return HWSOCK_EINVAL;
  pthread_mutex_lock(&disp_lock);
  int rc = disp_start_locked();
  pthread_mutex_unlock(&disp_lock);
  if (rc < 0)
    return rc;
  custody_take(s);
  /* Registered before it is watched, so that every report finds it. The
   * other way round, a socket with data already there (an accepted
   * connection's request) was reported by every wait, level-triggered,
   * for the whole device round trip of the watch: the dispatcher spun on
   * an id it did not know (~4,500 waits per accepted connection, and the
   * thread that would register it delayed). The dispatcher may take the
   * socket as soon as it is reported, before the watch returns here. */
  pthread_mutex_lock(&disp_lock);
  if (disp_state < 0) { /* stopped meanwhile: its sweep may be past id */
    pthread_mutex_unlock(&disp_lock);
    custody_drop(s);
    return HWSOCK_EOPNOTSUPP;
  }
  disp_socks[id] = s;
  unsigned gen = ++disp_gen[id];
  pthread_mutex_unlock(&disp_lock);
  rc = hwsock_guest_watch(hwsock__run.g, id, HWSOCK_GUEST_IN);
  if (rc < 0) {
    /* Still ours unless the dispatcher met it meanwhile (an error is
     * reported too) and handed it over: then that hand-over stopped the
     * watch and dropped our custody, and the socket is in a thread's care
     * (which may have given it back already: the watch is left alone). */
    pthread_mutex_lock(&disp_lock);
    int ours = disp_socks[id] == s && disp_gen[id] == gen;
    if (ours)
      disp_socks[id] = NULL;
    pthread_mutex_unlock(&disp_lock);
    if (!ours)
      return 0;
    hwsock_guest_watch(hwsock__run.g, id, 0);
    custody_drop(s);
    return rc;
  }
  return 0;
}

/* A socket the dispatcher handed over: the slow path, as stream_down
 * (the bytes the dispatcher could not write, or its EOF / error), then
 * back to the dispatcher, or stream_down on this thread when it is gone. */
static void stream_resume(pump_arg *a) {
  run_sock *s = a->s;
  if (!a->fresh && !down_deliver(s, a->data, a->n))
    return;
  if (disp_add(s) < 0)
    stream_down(s, NULL);
}

/* What one recv from the pump end returned (n bytes in buf, 0 at the
 * program's end of file, a negative HWSOCK_E*), sent to the device: 1 to
 * go on, 0 when this direction ended, 2 when the program shut its side
 * down and the socket now waits for the hang-up (wait_hangup, then
 * finish). */
static int up_deliver(run_sock *s, const uint8_t *buf, ssize_t n) {
  if (n > 0) {
    ssize_t w = hwsock_guest_send(hwsock__run.g, s->id, buf, (size_t)n, 0);
    if (w != n) {
      fail(s, "send", w < 0 ? (int)w : HWSOCK_EIO);
      return 0;
    }
    return 1;
  }
  if (n < 0) {
    fail(s, "program side", (int)n);
    return 0;
  }
  if (is_dead(s))
    return 0;
  if (program_closed(s)) {
    /* Closed, not shut down: the device's CLOSE at the last reference
     * ends the connection (the FIN) without a SHUTDOWN request of its
     * own; what the program wrote goes first, as before a SHUT_WR. */
    int err = hwsock_guest_send_wait(hwsock__run.g, s->id);
    if (err < 0) {
      fail(s, "send", err);
      return 0;
    }
    hwsock__run_sock_closed(s);
    return 0;
  }
  /* the program shut down its side */
  int err = hwsock_guest_shutdown(hwsock__run.g, s->id, HWSOCK_SHUT_WR);
  if (err < 0 && err != HWSOCK_ENOTCONN) {
    fail(s, "shutdown", err);
    return 0;
  }
  return 2;
}

static void stream_up(run_sock *s, const char *unused) {
  (void)unused;
  uint8_t *buf = pump_buf(s, RUN_PUMP_UP_BUF);
  if (!buf)
    return;
  for (;;) {
    ssize_t n = recv(s->pfd, buf, RUN_PUMP_UP_BUF, 0);
    if (n < 0 && errno == EINTR)
      continue;
    int go = up_deliver(s, buf, n < 0 ? hwsock__run_err(errno) : n);
    if (go == 1)
      continue;
    if (go == 2) {
      wait_hangup(s);
      finish(s);
    }
    break;
  }
  free(buf);
}

/* ---- the up dispatcher: program -> device of every socket ----------------
 *
 * With the event queue a second thread carries what the programs write on
 * all offloaded stream sockets: it epolls their pump ends (level-triggered
 * EPOLLIN), takes what is there with MSG_DONTWAIT and gives it to the device
 * with HWSOCK_GUEST_SEND_DONTWAIT (write-behind: the bytes are copied into
 * free request slots, at most HWSOCK_GUEST_WB_MAX sends in flight per
 * socket). Whatever would wait (the socket's sends in flight are not done,
 * no free slot), the program's end of file or an error hands the socket
 * (out of the epoll set first) to a pooled thread (up_resume) that does
 * what stream_up does with the bytes left: a blocking send, then the
 * socket comes back here; the end of file's SHUTDOWN or CLOSE; an error's
 * end. A socket the program shut down for writing waits here too, for its
 * hang-up (no events asked: EPOLLHUP), not in a thread of its own. One
 * socket is with one of them at a time, so its bytes keep their order;
 * the dispatcher's reference keeps the device id open while it is in the
 * set, and only the dispatcher takes sockets out of it. Its custody counts
 * as a sender (the exit drain waits for it). It stops when the device ->
 * program dispatcher does (the driver failed for good): every socket goes
 * to a thread of its own (stream_up), as do new ones. A datagram socket
 * whose pump end is readable goes to a thread at once (dgram_up_resume:
 * every datagram there is, then back): a datagram's send waits for its
 * result, so the dispatcher sends none itself. */

enum { UP_DATA, UP_HANGUP };
#define UP_WAKE UINT64_MAX /* the eventfd's epoll data */

static pthread_mutex_t up_lock = PTHREAD_MUTEX_INITIALIZER;
static run_sock *up_socks[RUN_MAX_SOCKS]; /* by device id, referenced */
static uint8_t up_mode[RUN_MAX_SOCKS];
static int up_state; /* 0 not started, 1 runs, -1 gone */
static int up_ep = -1, up_wake = -1;

static void up_custody_take(run_sock *s) {
  hwsock__run_sock_get(s);
  count_threads(1, 1);
}

static void up_custody_drop(run_sock *s) {
  hwsock__run_sock_put(s);
  count_threads(-1, -1);
}

static void up_resume(pump_arg *a);
static void dgram_up_resume(pump_arg *a);

/* Takes socket s (device id id, in the set) out of the set and gives it to
 * a thread: data/n as up_deliver's, fresh (nothing taken: stream_up), or
 * hup (wait for the hang-up and finish). Dispatcher thread only. */
static void up_hand_over(int id, run_sock *s, const uint8_t *data, ssize_t n,
                         int fresh, int hup) {
  pthread_mutex_lock(&up_lock);
  epoll_ctl(up_ep, EPOLL_CTL_DEL, s->pfd, NULL);
  up_socks[id] = NULL;
  pthread_mutex_unlock(&up_lock);
  pump_arg *a = hand_over_job(data, n, !fresh && !hup);
  if (!a) {
    fail(s, "pump", HWSOCK_ENOMEM);
  } else {
    a->fresh = fresh;
    a->hup = hup;
    a->sender = 1;
    a->job = s->type == SOCK_DGRAM ? dgram_up_resume : up_resume;
    if (spawn_job(a, s, NULL, NULL) < 0)
      fail(s, "pump", HWSOCK_ENOMEM);
  }
  up_custody_drop(s);
}

/* One ready pump end: its bytes go to the device, or to a thread. */
static void up_ready(uint64_t key, uint8_t *buf) {
  int id = (int)(uint32_t)key, pfd = (int)(key >> 32);
  if (id < 0 || (unsigned)id >= RUN_MAX_SOCKS)
    return;
  pthread_mutex_lock(&up_lock);
  run_sock *s = up_socks[id];
  int mode = up_mode[id];
  pthread_mutex_unlock(&up_lock);
  if (!s || s->pfd != pfd)
    return; /* not the socket this event was for */
  if (mode == UP_HANGUP) {
    up_hand_over(id, s, NULL, 0, 0, 1);
    return;
  }
  if (s->type == SOCK_DGRAM) { /* its sends wait: all of it in a thread */
    up_hand_over(id, s, NULL, 0, 0, 0);
    return;
  }
  ssize_t n = recv(pfd, buf, RUN_PUMP_UP_BUF, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (n <= 0) { /* end of file or an error: stream_up's way */
    up_hand_over(id, s, NULL, n < 0 ? hwsock__run_err(errno) : 0, 0, 0);
    return;
  }
  ssize_t w = hwsock_guest_send(hwsock__run.g, id, buf, (size_t)n,
                                HWSOCK_GUEST_SEND_DONTWAIT);
  if (w == n)
    return;
  if (w < 0)
    w = 0; /* would wait, or failed: the blocking send tells which */
  up_hand_over(id, s, buf + w, n - w, 0, 0);
}

static int disp_gone(void) {
  pthread_mutex_lock(&disp_lock);
  int gone = disp_state < 0;
  pthread_mutex_unlock(&disp_lock);
  return gone;
}

static void *up_dispatcher(void *unused) {
  (void)unused;
  static uint8_t buf[RUN_PUMP_UP_BUF];
  struct epoll_event ev[DISP_EVENTS];
  while (!disp_gone()) {
    int n = epoll_wait(up_ep, ev, DISP_EVENTS, 1000);
    if (n < 0 && errno != EINTR)
      break;
    for (int i = 0; i < n && !disp_gone(); i++) {
      if (ev[i].data.u64 == UP_WAKE) {
        uint64_t v;
        if (read(up_wake, &v, sizeof(v)) < 0) {
          /* nothing to do: it only wakes us */
        }
        continue;
      }
      up_ready(ev[i].data.u64, buf);
    }
  }
  pthread_mutex_lock(&up_lock);
  up_state = -1;
  pthread_mutex_unlock(&up_lock);
  for (unsigned id = 0; id < RUN_MAX_SOCKS; id++) {
    pthread_mutex_lock(&up_lock);
    run_sock *s = up_socks[id];
    int mode = up_mode[id];
    pthread_mutex_unlock(&up_lock);
    if (s)
      up_hand_over((int)id, s, NULL, 0, mode == UP_DATA, mode == UP_HANGUP);
  }
  count_threads(-1, 0);
  return NULL;
}

/* Wakes the up dispatcher to see that the driver failed for good. */
static void up_kick(void) {
  pthread_mutex_lock(&up_lock);
  uint64_t one = 1;
  if (up_wake >= 0 && write(up_wake, &one, sizeof(one)) < 0) {
    /* saturated: it is awake anyway */
  }
  pthread_mutex_unlock(&up_lock);
}

/* Starts the up dispatcher once (up_lock held): 0 or HWSOCK_E*. */
static int up_start_locked(void) {
  if (up_state != 0)
    return up_state > 0 ? 0 : HWSOCK_EOPNOTSUPP;
  up_state = -1; /* unless all goes well */
  up_ep = epoll_create1(EPOLL_CLOEXEC);
  up_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UP_WAKE};
  if (up_ep < 0 || up_wake < 0 ||
      epoll_ctl(up_ep, EPOLL_CTL_ADD, up_wake, &ev) < 0) {
    int err = hwsock__run_err(errno);
    if (up_ep >= 0)
      close(up_ep);
    if (up_wake >= 0)
      close(up_wake);
    up_ep = up_wake = -1;
    return err;
  }
  count_threads(1, 0); /* as the device -> program dispatcher */
  int rc = start_thread(up_dispatcher, NULL);
  if (rc != 0) {
    count_threads(-1, 0);
    return rc;
  }
  up_state = 1;
  hwsock__run_log("dispatcher: one thread carries program -> device of "
                  "every stream socket (epoll)");
  return 0;
}

/* Gives the program -> device direction of stream socket s to the up
 * dispatcher (mode UP_DATA), or its wait for the hang-up (UP_HANGUP): 0, or
 * HWSOCK_E* (no event queue, the driver failed, no epoll): the caller
 * does it with a thread. */
static int up_add(run_sock *s, int mode) {
  int id = s->id;
  if (!(hwsock_guest_features(hwsock__run.g) & HWSOCK_F_EVENT_QUEUE))
    return HWSOCK_EOPNOTSUPP;
  if (id < 0 || (unsigned)id >= RUN_MAX_SOCKS || s->pfd < 0)
    return HWSOCK_EINVAL;
  if (disp_gone())
    return HWSOCK_EOPNOTSUPP;
  up_custody_take(s);
  pthread_mutex_lock(&up_lock);
  int rc = up_start_locked();
  if (rc == 0) {
    /* no events asked for the hang-up: EPOLLHUP is always reported */
    struct epoll_event ev = {
        .events = mode == UP_DATA ? EPOLLIN : 0,
        .data.u64 = (uint64_t)(uint32_t)s->pfd << 32 | (uint32_t)id};
    up_socks[id] = s;
    up_mode[id] = (uint8_t)mode;
    if (epoll_ctl(up_ep, EPOLL_CTL_ADD, s->pfd, &ev) < 0) {
      up_socks[id] = NULL;
      rc = hwsock__run_err(errno);
    }
  }
  pthread_mutex_unlock(&up_lock);
  if (rc < 0)
    up_custody_drop(s);
  return rc;
}

/* A socket the up dispatcher handed over: what stream_up would do with
 * what it took, then back to the dispatcher; stream_up on this thread when
 * it is gone. */
static void up_resume(pump_arg *a) {
  run_sock *s = a->s;
  if (a->hup) {
    wait_hangup(s);
    finish(s);
    return;
  }
  if (a->fresh) {
    stream_up(s, NULL);
    return;
  }
  int go = up_deliver(s, a->data, a->n);
  if (go == 2 && up_add(s, UP_HANGUP) < 0) {
    wait_hangup(s);
    finish(s);
  }
  if (go == 1 && up_add(s, UP_DATA) < 0)
    stream_up(s, NULL);
}

/* ---- datagrams ----------------------------------------------------------- */

/* Errors a datagram socket lives on (ICMP answers to an earlier datagram):
 * the kernel reports them once on the next call, and the socket stays. The
 * device's list (PROTOCOL.md §16.9), shared: a soft ERROR event the core
 * takes as pending comes back from its recv as one of these. */
static int dgram_soft_err(int err) { return hwsock_err_is_soft(err); }

void hwsock__run_dgram_post_err(run_sock *s, int err, int marker) {
  pthread_mutex_lock(&s->rxlock);
  pthread_mutex_lock(&s->lock);
  int had = s->so_error != 0;
  s->so_error = err;
  pthread_mutex_unlock(&s->lock);
  /* One marker per pending error (a second ICMP only replaces the error,
   * as in the kernel). Without room in srcq the error is still pending for
   * the next intercepted call, only poll does not see it. */
  if (marker && !had && hwsock__run_srcq_room(s)) {
    run_src m;
    memset(&m, 0, sizeof(m));
    m.err = err;
    m.sum = hwsock__run_dgram_sum(NULL, 0);
    s->srcq[(s->srcq_head + s->srcq_n) % RUN_MAX_SRCQ] = m;
    s->srcq_n++;
    if (send(s->pfd, "", 0, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
      s->srcq_n--; /* the pair is full or gone: no marker */
  }
  pthread_mutex_unlock(&s->rxlock);
}

/* The device's recv on a datagram socket failed (n < 0) or said end of
 * file (n 0: shut down for reading, the entry was killed): its end. */
static void dgram_down_end(run_sock *s, ssize_t n) {
  if (n == 0)
    return;
  /* The VMM went away, or the device reset this socket (a restore, or a
   * hand-over that could not take it: ECONNRESET while the device goes
   * on): the kernel's UDP socket would stay, without an end of file. One
   * error, ENETDOWN or ECONNRESET (a marker record: readable once, then
   * never again), and kill shuts only our reading side down, so the
   * program's sends fail with EPIPE; a shutdown both ways would leave the
   * program end readable (EOF) for ever: an epoll program would spin
   * reading empty datagrams. */
  if (n == HWSOCK_ENEEDSRESET || n == HWSOCK_ECONNRESET) {
    int err = n == HWSOCK_ENEEDSRESET || transport_gone(s)
                  ? HWSOCK_ENETDOWN
                  : HWSOCK_ECONNRESET;
    hwsock__run_dgram_post_err(s, err, 1);
    pthread_mutex_lock(&s->lock);
    s->lerr = err;
    pthread_mutex_unlock(&s->lock);
  }
  fail(s, "recv", (int)n);
}

/* Queues the source of a datagram from the device (n bytes, from uri; cut
 * by the device when rflags has HWSOCK_RESP_F_TRUNC) for
 * the intercepted recvfrom/recvmsg: 1, then the caller writes it to the
 * pump end; 0 when it is dropped (the program does not keep up; logged
 * once per episode, *full). */
static int dgram_src_push(run_sock *s, const uint8_t *buf, size_t n,
                          const char *uri, unsigned rflags, uint8_t *full) {
  run_src src;
  memset(&src, 0, sizeof(src));
  src.len = (uint32_t)n;
  src.trunc = (rflags & HWSOCK_RESP_F_TRUNC) != 0;
  src.sum = hwsock__run_dgram_sum(buf, n);
  if (uri[0] == '\0' ||
      hwsock__run_uri_to_sa(uri, s->family, &src.sa, &src.salen) < 0)
    src.salen = 0;
  if (s->type != SOCK_DGRAM) /* a stream: nothing to record it in */
    return 0;
  pthread_mutex_lock(&s->rxlock);
  /* every datagram written so far has been read by the program: whatever
   * it consumed without asking for the source, the queue restarts aligned */
  int outq = 0;
  if (ioctl(s->pfd, SIOCOUTQ, &outq) == 0 && outq == 0)
    s->srcq_n = 0;
  if (!hwsock__run_srcq_room(s)) { /* the program does not keep up (or no
                                      memory for the ring): drop */
    pthread_mutex_unlock(&s->rxlock);
    if (!*full) {
      char lb[64];
      hwsock__run_log("%s: datagrams dropped: %u unread with their sources "
                      "(RUN_MAX_SRCQ %u; raise it in "
                      "guest-driver/run/run.h)",
                      hwsock__run_label(s, lb, sizeof(lb)), RUN_MAX_SRCQ,
                      RUN_MAX_SRCQ);
      *full = 1; /* once per episode */
    }
    return 0;
  }
  *full = 0;
  s->srcq[(s->srcq_head + s->srcq_n) % RUN_MAX_SRCQ] = src;
  s->srcq_n++;
  pthread_mutex_unlock(&s->rxlock);
  return 1;
}

static void dgram_down(run_sock *s, const char *unused) {
  (void)unused;
  uint8_t *buf = pump_buf(s, RUN_MAX_DGRAM);
  if (!buf)
    return;
  char uri[HWSOCK_URI_MAX + 1];
  uint8_t own = 0, *full = s->id >= 0 && (unsigned)s->id < RUN_MAX_SOCKS
                               ? &dgram_full[s->id]
                               : &own;
  for (;;) {
    unsigned rflags = 0;
    uri[0] = '\0';
    ssize_t n = hwsock_guest_recvfrom(hwsock__run.g, s->id, buf, RUN_MAX_DGRAM,
                                      0, uri, sizeof(uri), &rflags);
    if (n < 0 && dgram_soft_err((int)n) && !is_dead(s)) {
      hwsock__run_dgram_post_err(s, (int)n, 1);
      continue;
    }
    if (n < 0 || (rflags & HWSOCK_RESP_F_EOF)) {
      dgram_down_end(s, n < 0 ? n : 0);
      break;
    }
    if (!dgram_src_push(s, buf, (size_t)n, uri, rflags, full))
      continue;
    ssize_t w = send(s->pfd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0) {
      fail(s, "program side", HWSOCK_EPIPE);
      break;
    }
  }
  free(buf);
}

/* A datagram socket the dispatcher handed over: the datagram it could not
 * write (its source queued already; a blocking write now), or the end it
 * met; then back to the dispatcher, or dgram_down on this thread. */
static void dgram_resume(pump_arg *a) {
  run_sock *s = a->s;
  if (a->end) {
    dgram_down_end(s, a->n);
    return;
  }
  if (!a->fresh &&
      send(s->pfd, a->data ? a->data : (const uint8_t *)"", (size_t)a->n,
           MSG_NOSIGNAL) < 0) {
    fail(s, "program side", HWSOCK_EPIPE);
    return;
  }
  if (disp_add(s) < 0)
    dgram_down(s, NULL);
}

/* One datagram the program wrote (n bytes in buf, or a negative HWSOCK_E*
 * from the pump end) to the device: 1 to go on, 0 when the socket ended,
 * 2 when the program shut it down for writing (it waits for the hang-up;
 * the device -> program direction goes on). */
static int dgram_up_one(run_sock *s, const uint8_t *buf, ssize_t n) {
  if (n < 0) {
    fail(s, "program side", (int)n);
    return 0;
  }
  if (n == 0) { /* an empty datagram, the program's shutdown, or its close */
    struct pollfd p = {.fd = s->pfd, .events = POLLRDHUP};
    int r = poll(&p, 1, 0);
    if (is_dead(s) || (r == 1 && (p.revents & POLLHUP))) {
      finish(s);
      return 0;
    }
    /* shutdown(SHUT_WR) (socat at the end of its input): every recv now
     * reads 0 at once, which is no datagram; the kernel sends nothing
     * for it. Read as empty datagrams, for ever, they flooded the peer
     * (or spun, unconnected). An empty datagram written just before the
     * shutdown is taken for it. */
    if (r == 1 && (p.revents & POLLRDHUP))
      return 2;
  }
  pthread_mutex_lock(&s->lock);
  int connected = s->connected;
  pthread_mutex_unlock(&s->lock);
  if (!connected)
    return 1; /* no destination: dropped */
  ssize_t w = hwsock_guest_sendto(hwsock__run.g, s->id, buf, (size_t)n, 0,
                                  NULL);
  if (w < 0 && dgram_soft_err((int)w)) {
    /* an earlier datagram's ICMP error, met by this send, or this one's
     * own EMSGSIZE or EACCES (too big, broadcast without SO_BROADCAST),
     * which the program's send on the pair could not fail with: the
     * program learns it on its next intercepted call. No marker from this
     * thread: only the down pump writes records, so markers keep their
     * place in srcq. */
    hwsock__run_dgram_post_err(s, (int)w, 0);
    return 1;
  }
  if (w < 0 && w != HWSOCK_ENOBUFS && w != HWSOCK_EAGAIN) {
    fail(s, "send", (int)w);
    return 0;
  }
  return 1;
}

static void dgram_up(run_sock *s, const char *unused) {
  (void)unused;
  uint8_t *buf = pump_buf(s, RUN_MAX_DGRAM);
  if (!buf)
    return;
  for (;;) {
    ssize_t n = recv(s->pfd, buf, RUN_MAX_DGRAM, 0);
    if (n < 0 && errno == EINTR)
      continue;
    int go = dgram_up_one(s, buf, n < 0 ? hwsock__run_err(errno) : n);
    if (go == 2) {
      wait_hangup(s);
      finish(s);
    }
    if (go != 1)
      break;
  }
  free(buf);
}

/* A datagram socket the up dispatcher handed over (it became readable):
 * what dgram_up does for every datagram there is now, then back to the
 * dispatcher (dgram_up on this thread when it is gone). The dispatcher
 * takes nothing itself: a datagram's send waits for its result. */
static void dgram_up_resume(pump_arg *a) {
  run_sock *s = a->s;
  if (a->hup) {
    wait_hangup(s);
    finish(s);
    return;
  }
  if (a->fresh) {
    dgram_up(s, NULL);
    return;
  }
  uint8_t *buf = pump_buf(s, RUN_MAX_DGRAM);
  if (!buf)
    return;
  int go = 1;
  while (go == 1) {
    ssize_t n = recv(s->pfd, buf, RUN_MAX_DGRAM, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    go = dgram_up_one(s, buf, n < 0 ? hwsock__run_err(errno) : n);
  }
  free(buf);
  if (go == 2 && up_add(s, UP_HANGUP) < 0) {
    wait_hangup(s);
    finish(s);
  }
  if (go == 1 && up_add(s, UP_DATA) < 0)
    dgram_up(s, NULL);
}

int hwsock__run_pump_start(run_sock *s) {
  int rc;
  if (s->type == SOCK_STREAM) {
    if (disp_add(s) < 0 && (rc = spawn(s, stream_down, NULL)) < 0)
      return rc;
    return up_add(s, UP_DATA) < 0 ? spawn(s, stream_up, NULL) : 0;
  }
  if (s->id >= 0 && (unsigned)s->id < RUN_MAX_SOCKS)
    dgram_full[s->id] = 0;
  if (disp_add(s) < 0 && (rc = spawn(s, dgram_down, NULL)) < 0)
    return rc;
  return up_add(s, UP_DATA) < 0 ? spawn(s, dgram_up, NULL) : 0;
}

/* ---- connect in the background ------------------------------------------- */

static void connector(run_sock *s, const char *uri) {
  int err = hwsock_guest_connect(hwsock__run.g, s->id, uri);
  if (err == 0)
    hwsock__run_replay_opts(s);
  int id = -1;
  pthread_mutex_lock(&s->lock);
  s->conn_err = err;
  if (err == 0) {
    s->state = s->dead ? RS_CLOSED : RS_CONNECTED;
  } else {
    s->state = s->dead ? RS_CLOSED : RS_UNDECIDED;
    if (!s->conn_waiter) /* the program polls, then asks SO_ERROR */
      s->so_error = err == HWSOCK_EDECLINED ? HWSOCK_ECONNREFUSED
                                            : hwsock__run_dev_err(err);
    id = s->id; /* useless now: the next connect opens a new one */
    s->id = -1;
  }
  pthread_cond_broadcast(&s->cond);
  int dead = s->dead;
  pthread_mutex_unlock(&s->lock);
  if (id >= 0) {
    hwsock_guest_close(hwsock__run.g, id);
    hwsock__run_offload_release();
  }
  if (err != 0 || dead)
    return;
  hwsock__run_unwatch(s);
  if (up_add(s, UP_DATA) < 0 && spawn(s, stream_up, NULL) < 0) {
    fail(s, "pump", HWSOCK_ENOMEM);
    return;
  }
  if (disp_add(s) < 0)
    stream_down(s, NULL); /* this thread becomes the down pump */
}

int hwsock__run_connect_start(run_sock *s, const char *uri) {
  return spawn(s, connector, uri);
}

/* ---- listeners ----------------------------------------------------------- */

/* The device's accept failed for good (the VMM went away, or refused).
 * The program keeps its listener, as a kernel keeps one whose network went
 * away: one error token (0) makes it readable once and accept returns the
 * failure once (ENETDOWN when the device is gone), after which it is
 * never readable again. A shutdown instead would leave the program end
 * readable (end of file) for ever and every accept failing: an epoll
 * server would spin, and hwsock-run with it, answering its accepts. When
 * the token cannot be written, lerr stays 0 and kill shuts the end down. */
static void listener_failed(run_sock *s, int err) {
  int lerr = err;
  if (err == HWSOCK_ENEEDSRESET ||
      (err == HWSOCK_ECONNRESET && transport_gone(s)))
    lerr = HWSOCK_ENETDOWN;
  lerr = hwsock__run_dev_err(lerr);
  uint8_t token = 0;
  pthread_mutex_lock(&s->lock);
  if (!s->dead && s->pfd >= 0 &&
      send(s->pfd, &token, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
    s->lerr = lerr;
  pthread_mutex_unlock(&s->lock);
  /* retire()'s sweep notices the program's close from now on: the
   * watcher would report the same close a second time */
  hwsock__run_unwatch(s);
}

static void acceptor(run_sock *s, const char *unused) {
  (void)unused;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    while (!s->dead && s->acq_n >= RUN_MAX_PREACCEPT)
      pthread_cond_wait(&s->cond, &s->lock);
    int dead = s->dead, lid = s->id;
    pthread_mutex_unlock(&s->lock);
    if (dead)
      return;
    run_accepted a;
    memset(&a, 0, sizeof(a));
    int id = hwsock_guest_accept(hwsock__run.g, lid, a.peer, sizeof(a.peer));
    if (id < 0) {
      if (id == HWSOCK_ECONNABORTED || id == HWSOCK_EAGAIN ||
          id == HWSOCK_EINTR)
        continue;
      listener_failed(s, id);
      fail(s, "accept", id);
      return;
    }
    if (hwsock__run_offload_reserve() < 0) {
      char lb[64];
      hwsock__run_log("%s: accepted connection dropped: %u sockets "
                      "offloaded at once",
                      hwsock__run_label(s, lb, sizeof(lb)),
                      hwsock__run_offload_max());
      hwsock_guest_close(hwsock__run.g, id);
      continue;
    }
    a.id = id;
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
      pthread_mutex_unlock(&s->lock);
      hwsock_guest_close(hwsock__run.g, id);
      hwsock__run_offload_release();
      return;
    }
    s->acq[(s->acq_head + s->acq_n) % RUN_MAX_PREACCEPT] = a;
    s->acq_n++;
    pthread_mutex_unlock(&s->lock);
    uint8_t token = 1;
    if (write_all(s->pfd, &token, 1) < 0) {
      fail(s, "program side", HWSOCK_EPIPE);
      return;
    }
  }
}

int hwsock__run_acceptor_start(run_sock *s) {
  return spawn(s, acceptor, NULL);
}
