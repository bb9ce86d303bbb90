/* tcp backend: offloaded TCP sockets (schemes tcp and tcp6) on host sockets.
 *
 * Each backend socket is one nonblocking host socket watched by a uv_poll_t.
 * The backend does the I/O itself with sendmsg/recvmsg straight from and
 * into the request's iovecs, which point into guest memory: no copy, and no
 * data buffered here. Requests wait in intrusive FIFO queues (hwsock_bq of
 * hwsock/backend_util.h) linked through req->backend_priv[0];
 * backend_priv[1] holds the bytes done so far.
 *
 * Flow control: the poll handle watches only what a queued request needs
 * (readable for RECV/ACCEPT, writable for CONNECT/SEND) and stops when
 * nothing waits, so unread data stays in the host kernel until the guest
 * posts a RECV, and a SEND completes only when the kernel took every byte.
 *
 * Re-entrancy: host->complete() may call back into submit() or close() of
 * the same socket. A request is unlinked before it is completed, the work
 * loop (tcp_run) defers nested runs to its own next pass, and the socket
 * memory is freed only in the poll handle's close callback, i.e. never
 * while a function of this file is still on the stack for it.
 *
 * Identity (docs/IDENTITY.md): a CONNECT that carries the VMM's identity
 * builds a PROXY v2 header once the connection is up (the names are the
 * host's) and writes it before the head of the write queue: guest SENDs
 * queued meanwhile wait, a partial write continues when writable, and a
 * guest's own PROXY header can only follow it, as data. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "hwsock/backend.h"
#include "hwsock/backend_util.h"
#include "hwsock/backend_uv.h"
#include "proxy_v2.h"
#include "sockopt.h"

#define IOV_BATCH 64 /* iovecs handed to one sendmsg/recvmsg */

typedef struct tcp_instance {
  const hwsock_backend_host *host;
  uv_loop_t *loop;
  unsigned nsocks; /* open sockets, to report a device that leaks some */
  hwsock_ratelog accept_log; /* accept backoff's log lines (uv_hrtime) */
} tcp_instance;

/* accept() out of fds or memory: the listener is not watched for a while
 * (10 ms, doubling up to 1 s), and the log says so at most once a second. */
#define ACCEPT_BACKOFF_MIN_MS 10u
#define ACCEPT_BACKOFF_MAX_MS 1000u
#define ACCEPT_LOG_INTERVAL_NS 1000000000ull

enum tcp_state { TCP_IDLE, TCP_CONNECTING, TCP_CONNECTED, TCP_LISTENING };

/* What tcp_run() should try. */
enum { RUN_CONNECT = 1, RUN_WRITE = 2, RUN_READ = 4 };

typedef struct tcp_sock {
  uv_poll_t poll; /* poll.data = the tcp_sock */
  tcp_instance *inst;
  int fd;
  int family; /* AF_INET or AF_INET6 */
  int scheme; /* hwsock_scheme */
  int state;  /* tcp_state */
  int events; /* what the poll handle watches now (UV_READABLE|...) */
  int poll_err; /* the poll handle could not start: requests fail with it */
  int again;    /* RUN_* asked for while tcp_run was already running */
  unsigned closed : 1;
  unsigned running : 1;
  unsigned wr_shut : 1; /* a SHUT_WR was done: later SENDs get EPIPE */
  uint64_t ncompleted;  /* requests completed: progress on an error event */
  hwsock_breq *connect_req;
  hwsock_bq wq; /* SEND and write-side SHUTDOWN, in submission order */
  hwsock_bq rq; /* RECV */
  hwsock_bq aq; /* ACCEPT */
  uv_timer_t *backoff;  /* accept backoff (listeners only, on demand) */
  unsigned backoff_ms;  /* its last delay, 0 after an accept succeeded */
  unsigned backing_off : 1; /* the timer runs: the listener is not watched */
  const hwsock_identity *identity; /* of the last CONNECT, or NULL */
  uint8_t *pp;      /* the identity header, NULL when none */
  size_t pp_len, pp_off; /* its length and the bytes written so far */
  int pp_err;       /* it could not be built or written: writes fail */
  unsigned watch;   /* HWSOCK_BWATCH_* armed by the device (event queue) */
  void *cookie;     /* ... and what to give host->ready() */
} tcp_sock;

/* An idle offloaded socket costs the device at most 512 bytes: this and
 * the device's slot (test_evq asserts the slot's share, PROTOCOL.md §16). */
_Static_assert(sizeof(tcp_sock) <= 336, "tcp_sock grew beyond its budget");

static void tcp_poll_cb(uv_poll_t *handle, int status, int events);

/* ---- helpers --------------------------------------------------------- */

static size_t req_done(const hwsock_breq *r) {
  return (size_t)(uintptr_t)r->backend_priv[1];
}

static void req_set_done(hwsock_breq *r, size_t n) {
  r->backend_priv[1] = (void *)(uintptr_t)n;
}

static void tcp_complete(tcp_sock *s, hwsock_breq *req, int status,
                         size_t len) {
  s->ncompleted++;
  s->inst->host->complete(req, status, len);
}

static int host_err(void) { return hwsock_err_from_errno(errno); }

/* The iovecs of req from byte `off` on, at most `max` of them, into v.
 * Returns the count; *bytes receives their total length. */
static unsigned iov_slice(const hwsock_breq *req, size_t off,
                          struct iovec *v, unsigned max, size_t *bytes) {
  unsigned n;
  *bytes = hwsock_iov_slice(req->iov, req->iovcnt, off, SIZE_MAX, v, max, &n);
  return n;
}

static int has_pending(const tcp_sock *s) {
  return s->connect_req != NULL || s->wq.head != NULL || s->rq.head != NULL ||
         s->aq.head != NULL;
}

/* Completes every pending request with err, in the order they came. */
static void fail_all(tcp_sock *s, int err) {
  hwsock_breq *r;
  if ((r = s->connect_req) != NULL) {
    s->connect_req = NULL;
    tcp_complete(s, r, err, 0);
  }
  while ((r = hwsock_bq_pop(&s->wq)) != NULL)
    tcp_complete(s, r, err, req_done(r));
  while ((r = hwsock_bq_pop(&s->rq)) != NULL)
    tcp_complete(s, r, err, 0);
  while ((r = hwsock_bq_pop(&s->aq)) != NULL)
    tcp_complete(s, r, err, 0);
}

static int pp_pending(const tcp_sock *s) {
  return s->pp != NULL && s->pp_err == 0 && s->pp_off < s->pp_len;
}

/* The connection is up: build its identity header, if its CONNECT asked,
 * from the names the host's socket has. 0 or a negative HWSOCK_E*; on an
 * error the connection is shut down (it must not carry guest bytes without
 * the header). The CONNECT's completion reports the header (req->prefix). */
static int pp_start(tcp_sock *s, hwsock_breq *req) {
  if (s->identity == NULL)
    return 0;
  struct sockaddr_storage src, dst;
  socklen_t sl = sizeof(src), dl = sizeof(dst);
  uint8_t uid[HWSOCK_PP2_UNIQUE_ID_LEN];
  int rc = 0;
  free(s->pp);
  s->pp = malloc(HWSOCK__PP2_MAX);
  s->pp_len = s->pp_off = 0;
  if (s->pp == NULL)
    rc = HWSOCK_ENOMEM;
  else if (getsockname(s->fd, (struct sockaddr *)&src, &sl) != 0 ||
           getpeername(s->fd, (struct sockaddr *)&dst, &dl) != 0)
    rc = host_err();
  /* 16 random bytes: unique per connection without shared state. */
  else if (getrandom(uid, sizeof(uid), GRND_NONBLOCK) != (ssize_t)sizeof(uid))
    rc = HWSOCK_EAGAIN;
  if (rc == 0) {
    int n = hwsock__pp2_build((struct sockaddr *)&src, (struct sockaddr *)&dst,
                              s->identity, uid, s->pp, HWSOCK__PP2_MAX);
    if (n < 0)
      rc = n;
    else
      s->pp_len = (size_t)n;
  }
  if (rc < 0) {
    hwsock_backend_logf(s->inst->host, HWSOCK_LOG_ERROR,
                        "identity header: %s", hwsock_strerror(rc));
    s->pp_err = rc;
    shutdown(s->fd, SHUT_RDWR);
    return rc;
  }
  if (req != NULL &&
      req->size >= offsetof(hwsock_breq, prefix_len) + sizeof(req->prefix_len)) {
    req->prefix = s->pp;
    req->prefix_len = (uint32_t)s->pp_len;
  }
  return 0;
}

/* Writes what is left of the identity header. 1 when done, 0 when the
 * socket is full (wait for writable), or a negative HWSOCK_E*. */
static int pp_write(tcp_sock *s) {
  while (pp_pending(s)) {
    int flags = MSG_NOSIGNAL | MSG_DONTWAIT;
    if (s->wq.head != NULL)
      flags |= MSG_MORE; /* the guest's first bytes follow at once */
    ssize_t n = send(s->fd, s->pp + s->pp_off, s->pp_len - s->pp_off, flags);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      s->pp_err = host_err();
      break;
    }
    s->pp_off += (size_t)n;
  }
  return s->pp_err < 0 ? s->pp_err : 1;
}

/* Watches exactly what the queued requests wait for. */
static void update_poll(tcp_sock *s) {
  int ev = 0;
  if (s->closed || s->poll_err)
    return;
  if (s->state == TCP_CONNECTING ||
      (s->state == TCP_CONNECTED && (s->wq.head != NULL || pp_pending(s))))
    ev |= UV_WRITABLE;
  if ((s->state == TCP_CONNECTED && s->rq.head != NULL) ||
      (s->state == TCP_LISTENING && s->aq.head != NULL && !s->backing_off))
    ev |= UV_READABLE;
  /* The device's watches (ops->watch): readiness only, nothing is read. */
  if ((s->watch & HWSOCK_BWATCH_READ) &&
      (s->state == TCP_CONNECTED ||
       (s->state == TCP_LISTENING && !s->backing_off)))
    ev |= UV_READABLE;
  if ((s->watch & HWSOCK_BWATCH_WRITE) && s->state == TCP_CONNECTED)
    ev |= UV_WRITABLE;
  if (ev == s->events)
    return;
  if (ev == 0) {
    uv_poll_stop(&s->poll);
    s->events = 0;
    return;
  }
  int rc = uv_poll_start(&s->poll, ev, tcp_poll_cb);
  if (rc < 0) {
    hwsock_backend_logf(s->inst->host, HWSOCK_LOG_ERROR, "uv_poll_start: %s",
                        uv_strerror(rc));
    s->poll_err = hwsock_err_from_errno(-rc);
    s->events = 0;
    fail_all(s, s->poll_err);
    return;
  }
  s->events = ev;
}

/* ---- the work loop ----------------------------------------------------- */

static void finish_connect(tcp_sock *s) {
  if (s->state != TCP_CONNECTING)
    return;
  int err = 0;
  socklen_t l = sizeof(err);
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
    err = errno;
  hwsock_breq *req = s->connect_req;
  s->connect_req = NULL;
  if (err != 0) {
    /* The socket may try again; what was queued behind the attempt fails
     * with its error, as it would on a blocking socket. */
    int e = hwsock_err_from_errno(err);
    s->state = TCP_IDLE;
    if (req != NULL)
      tcp_complete(s, req, e, 0);
    if (!s->closed)
      fail_all(s, e);
    return;
  }
  s->state = TCP_CONNECTED;
  s->again |= RUN_WRITE | RUN_READ; /* SEND/RECV queued behind the connect */
  int rc = pp_start(s, req);
  if (req != NULL)
    tcp_complete(s, req, rc, 0);
}

static void do_shutdown(tcp_sock *s, hwsock_breq *req) {
  int how = req->arg0 == HWSOCK_SHUT_RD   ? SHUT_RD
            : req->arg0 == HWSOCK_SHUT_WR ? SHUT_WR
                                          : SHUT_RDWR;
  int rc = shutdown(s->fd, how) == 0 ? 0 : host_err();
  if (rc == 0 && how != SHUT_RD)
    s->wr_shut = 1;
  tcp_complete(s, req, rc, 0);
}

static void do_writes(tcp_sock *s) {
  hwsock_breq *req;
  /* Nothing of the guest's goes out before the identity header. */
  int pp = s->state == TCP_CONNECTED ? pp_write(s) : 1;
  if (pp == 0)
    return;
  if (pp < 0) {
    while (!s->closed && (req = hwsock_bq_pop(&s->wq)) != NULL)
      tcp_complete(s, req, pp, 0);
    return;
  }
  while (!s->closed && s->state == TCP_CONNECTED &&
         (req = s->wq.head) != NULL) {
    if (req->opcode == HWSOCK_OP_SHUTDOWN) {
      hwsock_bq_pop(&s->wq);
      do_shutdown(s, req);
      continue;
    }
    size_t done = req_done(req);
    if (s->wr_shut || done == req->iov_len) {
      hwsock_bq_pop(&s->wq);
      tcp_complete(s, req, s->wr_shut ? HWSOCK_EPIPE : 0, done);
      continue;
    }
    struct iovec v[IOV_BATCH];
    size_t want;
    struct msghdr m = {.msg_iov = v};
    m.msg_iovlen = iov_slice(req, done, v, IOV_BATCH, &want);
    int flags = MSG_NOSIGNAL | MSG_DONTWAIT;
    if (req->arg0 & HWSOCK_SEND_MORE)
      flags |= MSG_MORE;
    ssize_t n = sendmsg(s->fd, &m, flags);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      hwsock_bq_pop(&s->wq);
      tcp_complete(s, req, host_err(), done);
      continue;
    }
    done += (size_t)n;
    req_set_done(req, done);
    if (done == req->iov_len) {
      hwsock_bq_pop(&s->wq);
      tcp_complete(s, req, 0, done);
    } else if ((size_t)n < want) {
      break; /* the send buffer is full: wait until writable */
    }
  }
}

static void do_reads(tcp_sock *s) {
  hwsock_breq *req;
  while (!s->closed && s->state == TCP_CONNECTED &&
         (req = s->rq.head) != NULL) {
    size_t done = req_done(req);
    if (req->iov_len == 0) {
      hwsock_bq_pop(&s->rq);
      tcp_complete(s, req, 0, 0);
      continue;
    }
    int peek = (req->arg0 & HWSOCK_RECV_PEEK) != 0;
    int waitall = (req->arg0 & HWSOCK_RECV_WAITALL) != 0 && !peek;
    struct iovec v[IOV_BATCH];
    size_t want;
    struct msghdr m = {.msg_iov = v};
    m.msg_iovlen = iov_slice(req, done, v, IOV_BATCH, &want);
    ssize_t n = recvmsg(s->fd, &m, MSG_DONTWAIT | (peek ? MSG_PEEK : 0));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      /* Bytes already read are delivered; the error ends the request
       * (like recv(MSG_WAITALL) returning a short count). */
      int e = host_err();
      hwsock_bq_pop(&s->rq);
      tcp_complete(s, req, done > 0 ? 0 : e, done);
      continue;
    }
    if (n == 0) { /* orderly shutdown by the peer; it stays readable */
      hwsock_bq_pop(&s->rq);
      if (done == 0)
        req->resp_flags |= HWSOCK_RESP_F_EOF;
      tcp_complete(s, req, 0, done);
      continue;
    }
    done += (size_t)n;
    if (!waitall || done == req->iov_len) {
      hwsock_bq_pop(&s->rq);
      tcp_complete(s, req, 0, done);
      if ((size_t)n < want)
        break; /* drained: the poll says when more arrives */
      continue;
    }
    req_set_done(req, done);
    if ((size_t)n < want)
      break;
  }
}

static tcp_sock *sock_new(tcp_instance *inst, int scheme, int family, int fd,
                          int state, int *err);

/* accept(2) reports some network errors of the new connection; they are
 * that connection's, not the listener's: retry (see accept(2), NOTES). */
static int accept_retry(int e) {
  return e == EINTR || e == ECONNABORTED || e == ENETDOWN || e == EPROTO ||
         e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET ||
         e == EHOSTUNREACH || e == EOPNOTSUPP || e == ENETUNREACH;
}

static int fd_shortage(int e) {
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

static void backoff_closed(uv_handle_t *h) { free(h); }

static void tcp_run(tcp_sock *s, int what);

static void backoff_done(uv_timer_t *t) {
  tcp_sock *s = t->data;
  s->backing_off = 0;
  tcp_run(s, RUN_READ);
}

/* The connection stays in the kernel's backlog and the ACCEPT waits for
 * it: the listener is readable all along, so watching it now would spin
 * (and log) every loop turn until some fd is closed. Look again after a
 * pause. The next pause is longer while the shortage lasts. */
static void accept_back_off(tcp_sock *s, int err) {
  tcp_instance *inst = s->inst;
  if (s->backoff == NULL) {
    s->backoff = malloc(sizeof(*s->backoff));
    if (s->backoff == NULL) {
      hwsock_breq *req = hwsock_bq_pop(&s->aq);
      tcp_complete(s, req, hwsock_err_from_errno(err), 0);
      return;
    }
    uv_timer_init(inst->loop, s->backoff);
    s->backoff->data = s;
  }
  s->backoff_ms = s->backoff_ms == 0 ? ACCEPT_BACKOFF_MIN_MS
                  : s->backoff_ms >= ACCEPT_BACKOFF_MAX_MS / 2
                      ? ACCEPT_BACKOFF_MAX_MS
                      : s->backoff_ms * 2;
  s->backing_off = 1;
  uv_timer_start(s->backoff, backoff_done, s->backoff_ms, 0);
  unsigned held;
  if (!hwsock_ratelog_pass(&inst->accept_log, uv_hrtime(),
                           ACCEPT_LOG_INTERVAL_NS, &held))
    return;
  hwsock_backend_logf(inst->host, HWSOCK_LOG_WARN,
                      "accept: %s: backing off %u ms (%u similar messages "
                      "suppressed)", strerror(err), s->backoff_ms, held);
}

static void do_accepts(tcp_sock *s) {
  hwsock_breq *req;
  while (!s->closed && s->state == TCP_LISTENING && !s->backing_off &&
         (req = s->aq.head) != NULL) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      if (accept_retry(errno))
        continue;
      if (fd_shortage(errno)) {
        accept_back_off(s, errno);
        break;
      }
      hwsock_bq_pop(&s->aq);
      tcp_complete(s, req, host_err(), 0);
      continue;
    }
    s->backoff_ms = 0; /* fds are back: a new shortage starts short */
    int err;
    tcp_sock *ns = sock_new(s->inst, s->scheme, s->family, fd, TCP_CONNECTED,
                            &err);
    hwsock_bq_pop(&s->aq);
    if (ns == NULL) {
      tcp_complete(s, req, err, 0);
      continue;
    }
    req->accepted = ns;
    if (hwsock_addr_from_sockaddr((struct sockaddr *)&ss, (unsigned)sl,
                                  s->scheme, &req->peer) == 0)
      req->has_peer = 1;
    tcp_complete(s, req, 0, 0);
  }
}

/* Does all the I/O that `what` asks for and that can be done now, then
 * sets the poll interest. A nested call (from a completion) only records
 * what it wanted; the outer call does it in its next pass. */
static void tcp_run(tcp_sock *s, int what) {
  if (s->running) {
    s->again |= what;
    return;
  }
  s->running = 1;
  while (what != 0 && !s->closed) {
    s->again = 0;
    if (what & RUN_CONNECT)
      finish_connect(s);
    if (what & RUN_WRITE)
      do_writes(s);
    if (what & RUN_READ) {
      do_reads(s);
      do_accepts(s);
    }
    what = s->again;
  }
  if (s->closed)
    return; /* close() ran inside a completion: nothing more to do */
  s->running = 0;
  update_poll(s);
}

/* Tells the device which of its watches hold, after the queued requests
 * had their turn (a watch is about what a new request would find). */
static void fire_watches(tcp_sock *s, int events) {
  unsigned fired = 0;
  if (s->closed || s->watch == 0)
    return;
  if ((s->watch & HWSOCK_BWATCH_READ) && (events & UV_READABLE) &&
      ((s->state == TCP_CONNECTED && s->rq.head == NULL) ||
       (s->state == TCP_LISTENING && s->aq.head == NULL && !s->backing_off)))
    fired |= HWSOCK_BWATCH_READ;
  if ((s->watch & HWSOCK_BWATCH_WRITE) && (events & UV_WRITABLE) &&
      s->state == TCP_CONNECTED && s->wq.head == NULL && !pp_pending(s))
    fired |= HWSOCK_BWATCH_WRITE;
  if (fired == 0)
    return;
  s->watch &= ~fired;
  s->inst->host->ready(s->inst->host, s->cookie, fired);
  if (!s->closed && !s->running)
    update_poll(s);
}

static void tcp_poll_cb(uv_poll_t *handle, int status, int events) {
  tcp_sock *s = handle->data;
  if (status < 0) {
    /* An error event (libuv reports POLLERR as UV_EBADF and has stopped
     * the handle). The real error is the socket's: let each pending
     * operation meet it in its own system call. */
    uint64_t before = s->ncompleted;
    s->events = 0;
    tcp_run(s, RUN_CONNECT | RUN_WRITE | RUN_READ);
    if (!s->closed && s->ncompleted == before && has_pending(s)) {
      /* Nothing moved: fail what waits rather than spin on the error. */
      int err = 0;
      socklen_t l = sizeof(err);
      if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err == 0)
        err = -status;
      fail_all(s, hwsock_err_from_errno(err));
      if (!s->closed)
        update_poll(s);
    }
    /* The error is what a new RECV or SEND would meet. */
    fire_watches(s, UV_READABLE | UV_WRITABLE);
    return;
  }
  int what = 0;
  if (events & UV_WRITABLE)
    what |= s->state == TCP_CONNECTING ? RUN_CONNECT : RUN_WRITE;
  if (events & UV_READABLE)
    what |= RUN_READ;
  tcp_run(s, what);
  fire_watches(s, events);
}

static int tcp_watch(void *sock, unsigned events, void *cookie) {
  tcp_sock *s = sock;
  if (s->closed)
    return HWSOCK_ECANCELED;
  if (s->poll_err)
    return s->poll_err;
  if (!hwsock_backend_host_can_watch(s->inst->host))
    return HWSOCK_EOPNOTSUPP;
  s->watch = events & (HWSOCK_BWATCH_READ | HWSOCK_BWATCH_WRITE);
  s->cookie = cookie;
  if (!s->running)
    update_poll(s);
  return 0;
}

/* ---- requests ---------------------------------------------------------- */

static void start_connect(tcp_sock *s, hwsock_breq *req) {
  if (s->state == TCP_CONNECTING) {
    tcp_complete(s, req, HWSOCK_EALREADY, 0);
    return;
  }
  if (s->state == TCP_CONNECTED) {
    tcp_complete(s, req, HWSOCK_EISCONN, 0);
    return;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc = hwsock_backend_sockaddr(req->addr, s->family, &ss, &sl);
  if (rc == 0 && s->poll_err)
    rc = s->poll_err;
  if (rc < 0) {
    tcp_complete(s, req, rc, 0);
    return;
  }
  s->identity =
      req->size >= offsetof(hwsock_breq, identity) + sizeof(req->identity)
          ? req->identity
          : NULL;
  if (connect(s->fd, (struct sockaddr *)&ss, sl) == 0) {
    s->state = TCP_CONNECTED;
    rc = pp_start(s, req);
    tcp_complete(s, req, rc, 0);
    if (!s->closed && rc == 0 && pp_pending(s))
      tcp_run(s, RUN_WRITE);
    return;
  }
  /* EINTR on a nonblocking connect: it goes on asynchronously. */
  if (errno != EINPROGRESS && errno != EINTR) {
    tcp_complete(s, req, host_err(), 0);
    return;
  }
  s->state = TCP_CONNECTING;
  s->connect_req = req;
  update_poll(s);
}

static void do_bind(tcp_sock *s, hwsock_breq *req) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc = hwsock_backend_sockaddr(req->addr, s->family, &ss, &sl);
  if (rc == 0 && bind(s->fd, (struct sockaddr *)&ss, sl) != 0)
    rc = host_err();
  tcp_complete(s, req, rc, 0);
}

static void do_listen(tcp_sock *s, hwsock_breq *req) {
  int backlog = req->arg0 < 1           ? 1
                : req->arg0 > SOMAXCONN ? SOMAXCONN
                                        : (int)req->arg0;
  int rc = 0;
  if (listen(s->fd, backlog) != 0) /* EINVAL when connected or connecting */
    rc = host_err();
  else
    s->state = TCP_LISTENING;
  tcp_complete(s, req, rc, 0);
}

/* Queues a request that waits for the socket, unless the poll handle is
 * known to be broken. */
static int enqueue(tcp_sock *s, hwsock_bq *q, hwsock_breq *req) {
  if (s->poll_err) {
    tcp_complete(s, req, s->poll_err, 0);
    return 0;
  }
  hwsock_bq_push(q, req);
  return 1;
}

static void tcp_submit(void *sock, hwsock_breq *req) {
  tcp_sock *s = sock;
  hwsock_breq_reset(req);
  if (s->closed) {
    tcp_complete(s, req, HWSOCK_ECANCELED, 0);
    return;
  }
  int connected = s->state == TCP_CONNECTED;
  int connecting = s->state == TCP_CONNECTING;
  switch (req->opcode) {
  case HWSOCK_OP_CONNECT:
    start_connect(s, req);
    break;
  case HWSOCK_OP_BIND:
    do_bind(s, req);
    break;
  case HWSOCK_OP_LISTEN:
    do_listen(s, req);
    break;
  case HWSOCK_OP_ACCEPT:
    if (s->state != TCP_LISTENING)
      tcp_complete(s, req, HWSOCK_EINVAL, 0);
    else if (enqueue(s, &s->aq, req))
      tcp_run(s, RUN_READ);
    break;
  case HWSOCK_OP_SEND:
    /* A SEND may be pipelined behind a CONNECT: it waits in the queue. */
    if (req->addr != NULL)
      tcp_complete(s, req,
                   connected || connecting ? HWSOCK_EISCONN : HWSOCK_ENOTCONN,
                   0);
    else if (!connected && !connecting)
      tcp_complete(s, req, HWSOCK_ENOTCONN, 0);
    else if (enqueue(s, &s->wq, req) && connected)
      tcp_run(s, RUN_WRITE);
    break;
  case HWSOCK_OP_RECV:
    if (!connected && !connecting)
      tcp_complete(s, req, HWSOCK_ENOTCONN, 0);
    else if (req->iov_len == 0 && s->rq.head == NULL)
      tcp_complete(s, req, 0, 0);
    else if (enqueue(s, &s->rq, req) && connected)
      tcp_run(s, RUN_READ);
    break;
  case HWSOCK_OP_SHUTDOWN:
    if (req->arg0 < HWSOCK_SHUT_RD || req->arg0 > HWSOCK_SHUT_RDWR)
      tcp_complete(s, req, HWSOCK_EINVAL, 0);
    else if (req->arg0 != HWSOCK_SHUT_RD && (connected || connecting)) {
      /* The write side closes after the SENDs queued before it. */
      if (enqueue(s, &s->wq, req) && connected)
        tcp_run(s, RUN_WRITE);
    } else {
      do_shutdown(s, req);
    }
    break;
  case HWSOCK_OP_SETSOCKOPT:
    tcp_complete(s, req, hwsock__tcp_setsockopt(s->fd, s->family, req), 0);
    break;
  case HWSOCK_OP_GETSOCKOPT: {
    size_t len = 0;
    int rc = hwsock__tcp_getsockopt(s->fd, s->family, connecting, req, &len);
    tcp_complete(s, req, rc, rc == 0 ? len : 0);
    break;
  }
  case HWSOCK_OP_GETNAME:
    tcp_complete(s, req, hwsock_backend_getname(s->fd, s->scheme, req), 0);
    break;
  default:
    tcp_complete(s, req, HWSOCK_EOPNOTSUPP, 0);
    break;
  }
}

/* ---- sockets and instances ---------------------------------------------- */

static tcp_sock *sock_new(tcp_instance *inst, int scheme, int family, int fd,
                          int state, int *err) {
  tcp_sock *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    close(fd);
    *err = HWSOCK_ENOMEM;
    return NULL;
  }
  int rc = uv_poll_init_socket(inst->loop, &s->poll, fd);
  if (rc < 0) {
    hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR, "uv_poll_init_socket: %s",
            uv_strerror(rc));
    close(fd);
    free(s);
    *err = hwsock_err_from_errno(-rc);
    return NULL;
  }
  s->poll.data = s;
  s->inst = inst;
  s->fd = fd;
  s->family = family;
  s->scheme = scheme;
  s->state = state;
  inst->nsocks++;
  return s;
}

static int tcp_open(void *instance, const hwsock_bopen *params, void **sock) {
  tcp_instance *inst = instance;
  int family;
  switch (params->scheme) {
  case HWSOCK_SCHEME_TCP:
    family = AF_INET;
    break;
  case HWSOCK_SCHEME_TCP6:
    family = AF_INET6;
    break;
  default:
    return HWSOCK_EPROTONOSUPPORT;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  IPPROTO_TCP);
  if (fd < 0)
    return host_err();
  /* What the guest set before the decision (SO_REUSEADDR before the bind),
   * before the policy's options, which win. */
  int prc = hwsock_backend_preset(params, fd, family, hwsock__tcp_setsockopt);
  if (prc < 0) {
    close(fd);
    return prc;
  }
  /* Host-side options the policy sets (appended to hwsock_bopen in ABI 1). */
  if (params->size >= offsetof(hwsock_bopen, set) + sizeof(params->set) &&
      params->set != NULL) {
    int rc = hwsock__tcp_apply_hostopts(fd, params->set);
    if (rc < 0) {
      hwsock_backend_logf(inst->host, HWSOCK_LOG_WARN, "policy options: %s",
                          hwsock_strerror(rc));
      close(fd);
      return rc;
    }
  }
  int err;
  tcp_sock *s = sock_new(inst, params->scheme, family, fd, TCP_IDLE, &err);
  if (s == NULL)
    return err;
  *sock = s;
  return 0;
}

static void tcp_close_cb(uv_handle_t *handle) {
  tcp_sock *s = handle->data;
  free(s->pp);
  free(s);
}

static void tcp_close(void *sock) {
  tcp_sock *s = sock;
  if (s->closed)
    return;
  s->closed = 1;
  fail_all(s, HWSOCK_ECANCELED);
  if (s->backoff != NULL) /* its callback never runs after this */
    uv_close((uv_handle_t *)s->backoff, backoff_closed);
  s->backoff = NULL;
  hwsock_uv_close_poll_fd(&s->poll, &s->fd, tcp_close_cb);
  s->inst->nsocks--;
}

static int tcp_create(const hwsock_backend_host *host, void **instance) {
  tcp_instance *inst;
  int rc = hwsock_backend_instance_new(host, "tcp", 1, sizeof(*inst),
                                       (void **)&inst);
  if (rc < 0)
    return rc;
  inst->host = host;
  inst->loop = host->loop;
  *instance = inst;
  return 0;
}

static void tcp_destroy(void *instance) {
  tcp_instance *inst = instance;
  hwsock_backend_check_closed(inst->host, inst->nsocks);
  free(inst);
}

/* Observability: the host fd and both names, as the kernel knows them. */
static int tcp_info(void *sock, hwsock_bsock_info *out) {
  tcp_sock *s = sock;
  return hwsock_bsock_info_from_fd(s->fd, s->scheme, 1, out);
}

/* ---- hand-over to another process (backend.h's export_sock) ---------- */

/* The state, 4 bytes: tcp_state, flags (1: the write side was shut down),
 * the family's byte (4 or 6), 0. */
#define EXPORT_LEN 4u
#define EXPORT_F_WR_SHUT 1u

static int tcp_export(void *sock, hwsock_bexport *out) {
  tcp_sock *s = sock;
  if (s->closed)
    return HWSOCK_ECANCELED;
  if (s->poll_err)
    return s->poll_err;
  if (s->pp_err)
    return HWSOCK_EOPNOTSUPP; /* its writes fail: nothing to continue */
  /* Settled: every pending request can be submitted again as if for the
   * first time, and no order between two of them can be lost. */
  if (s->state == TCP_CONNECTING || pp_pending(s) ||
      !hwsock_bq_at_most_one(&s->wq) || !hwsock_bq_at_most_one(&s->rq) ||
      (s->wq.head && req_done(s->wq.head) > 0) ||
      (s->rq.head && req_done(s->rq.head) > 0))
    return HWSOCK_EAGAIN;
  if (out->size < offsetof(hwsock_bexport, state) + EXPORT_LEN)
    return HWSOCK_EINVAL;
  int fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return host_err();
  out->fd = fd;
  out->state[0] = (uint8_t)s->state;
  out->state[1] = s->wr_shut ? EXPORT_F_WR_SHUT : 0;
  out->state[2] = s->family == AF_INET6 ? 6 : 4;
  out->state[3] = 0;
  out->state_len = EXPORT_LEN;
  return 0;
}

static int tcp_import(void *instance, const hwsock_bexport *in, void **sock) {
  tcp_instance *inst = instance;
  if (in->size < offsetof(hwsock_bexport, state) + EXPORT_LEN ||
      in->state_len != EXPORT_LEN || in->fd < 0)
    return HWSOCK_EINVAL;
  const uint8_t *st = in->state;
  int family = st[2] == 6 ? AF_INET6 : AF_INET;
  int scheme = family == AF_INET6 ? HWSOCK_SCHEME_TCP6 : HWSOCK_SCHEME_TCP;
  if ((st[0] != TCP_IDLE && st[0] != TCP_CONNECTED &&
       st[0] != TCP_LISTENING) ||
      (st[1] & ~EXPORT_F_WR_SHUT) != 0 || (st[2] != 4 && st[2] != 6) ||
      st[3] != 0 || in->scheme != scheme)
    return HWSOCK_EINVAL;
  /* The descriptor must be what the state says: a TCP socket of the
   * family (the record came from another process). */
  int rc = hwsock_backend_adopt_fd(in->fd, SOCK_STREAM, family, IPPROTO_TCP);
  if (rc < 0)
    return rc;
  /* sock_new closes the fd on failure; the caller closes it then too:
   * hand it a duplicate. */
  int fd = fcntl(in->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return host_err();
  int err;
  tcp_sock *s = sock_new(inst, scheme, family, fd, st[0], &err);
  if (s == NULL)
    return err;
  close(in->fd); /* ours now: the duplicate serves */
  s->wr_shut = (st[1] & EXPORT_F_WR_SHUT) != 0;
  *sock = s;
  return 0;
}

static const hwsock_backend_ops tcp_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = tcp_create,
    .destroy = tcp_destroy,
    .open = tcp_open,
    .submit = tcp_submit,
    .close = tcp_close,
    .info = tcp_info,
    .flags = HWSOCK_BACKEND_F_IDENTITY,
    .watch = tcp_watch,
    .export_sock = tcp_export,
    .import_sock = tcp_import,
};

static const char *const tcp_schemes[] = {"tcp", "tcp6", NULL};

static const hwsock_backend_desc tcp_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "tcp",
    .description = "TCP over host sockets (tcp://, tcp6://)",
    .schemes = tcp_schemes,
    .ops = &tcp_ops,
};

HWSOCK_BACKEND_DEFINE(tcp_desc)
