/* udp backend: offloaded UDP sockets (schemes udp and udp6) on host sockets.
 *
 * Each backend socket is one nonblocking host datagram socket watched by a
 * uv_poll_t, created at once by open(). Every SEND is one sendmsg() of one
 * datagram straight from the request's iovecs, every RECV one recvmsg() of
 * one datagram straight into them (they point into guest memory): no copy.
 * Requests wait in intrusive FIFO queues (hwsock_bq) linked through
 * backend_priv[0];
 * a SEND's backend_priv[1] holds an error found when it was submitted,
 * completed in its turn so that SENDs complete in submission order.
 *
 * The receive queue. Datagrams that arrive while no RECV is posted wait in
 * the host kernel's socket buffer, bounded by SO_RCVBUF (which the guest may
 * set through the allow-list): that IS the bounded per-socket queue. We do
 * not keep our own copy because (1) a RECV then reads the datagram straight
 * into guest memory, with no copy at all, and (2) the device holds no guest
 * data of its own, so host memory per socket stays what the kernel bounds.
 * When the buffer is full the kernel drops new datagrams and counts them;
 * with SO_RXQ_OVFL each datagram queued after a drop carries that counter
 * (so drops show when the next datagram is read), which we track per socket
 * and log through host->log whenever it grows.
 *
 * Semantics follow the kernel's UDP: CONNECT sets the default destination
 * and lets the kernel filter what arrives; SHUTDOWN is shutdown(2) as is
 * (ENOTCONN on an unconnected socket, with the shutdown still recorded, as
 * Linux does); a RECV after SHUT_RD that finds nothing queued completes
 * with EOF, as a blocking recv(2) would; a pending ICMP error completes the
 * next RECV or SEND with it (e.g. HWSOCK_ECONNREFUSED on a connected
 * socket). A RECV reports the datagram's source always (req->peer), and
 * resp_val the datagram's full length, with HWSOCK_RESP_F_TRUNC when it was
 * longer than the buffers (MSG_TRUNC).
 *
 * Re-entrancy as in the tcp backend: a request is unlinked before it is
 * completed, nested runs are deferred to the outer loop's next pass, and
 * the socket memory is freed only in the poll handle's close callback. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <uv.h>

#include "hwsock/backend.h"
#include "hwsock/backend_util.h"
#include "hwsock/backend_uv.h"
#include "sockopt.h"

/* Largest UDP payload: 65535 - 8 (UDP) - 20 (IPv4) / - 40 (IPv6). */
#define UDP_MAX_PAYLOAD4 65507u
#define UDP_MAX_PAYLOAD6 65527u

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

typedef struct udp_instance {
  const hwsock_backend_host *host;
  uv_loop_t *loop;
  unsigned nsocks; /* open sockets, to report a device that leaks some */
} udp_instance;

enum { RUN_WRITE = 1, RUN_READ = 2 };

typedef struct udp_sock {
  uv_poll_t poll; /* poll.data = the udp_sock */
  udp_instance *inst;
  int fd;
  int family;   /* AF_INET or AF_INET6 */
  int scheme;   /* hwsock_scheme */
  int events;   /* what the poll handle watches now */
  int poll_err; /* the poll handle could not start: requests fail with it */
  int again;    /* RUN_* asked for while udp_run was already running */
  unsigned closed : 1;
  unsigned running : 1;
  unsigned connected : 1;
  unsigned rd_shut : 1; /* SHUT_RD done: an empty queue reads as EOF */
  uint32_t rxq_ovfl;    /* the kernel's drop counter, as last seen */
  uint64_t ncompleted;  /* requests completed: progress on an error event */
  hwsock_bq wq;         /* SEND */
  hwsock_bq rq;         /* RECV */
  unsigned watch;       /* HWSOCK_BWATCH_* armed by the device (event queue) */
  void *cookie;         /* ... and what to give host->ready() */
} udp_sock;

static void udp_poll_cb(uv_poll_t *handle, int status, int events);

/* ---- helpers --------------------------------------------------------- */

/* A SEND's error found at submit time (0 when none). */
static int req_err(const hwsock_breq *r) {
  return (int)(intptr_t)r->backend_priv[1];
}

static void udp_complete(udp_sock *s, hwsock_breq *req, int status,
                         size_t len) {
  s->ncompleted++;
  s->inst->host->complete(req, status, len);
}

static int host_err(void) { return hwsock_err_from_errno(errno); }

static int has_pending(const udp_sock *s) {
  return s->wq.head != NULL || s->rq.head != NULL;
}

/* Completes every pending request with err, SENDs first (in order). */
static void fail_all(udp_sock *s, int err) {
  hwsock_breq *r;
  while ((r = hwsock_bq_pop(&s->wq)) != NULL)
    udp_complete(s, r, err, 0);
  while ((r = hwsock_bq_pop(&s->rq)) != NULL)
    udp_complete(s, r, err, 0);
}

/* Watches exactly what the queued requests wait for. */
static void update_poll(udp_sock *s) {
  int ev = 0;
  if (s->closed || s->poll_err)
    return;
  if (s->wq.head != NULL)
    ev |= UV_WRITABLE;
  if (s->rq.head != NULL || (s->watch & HWSOCK_BWATCH_READ))
    ev |= UV_READABLE;
  if (s->watch & HWSOCK_BWATCH_WRITE)
    ev |= UV_WRITABLE;
  if (ev == s->events)
    return;
  if (ev == 0) {
    uv_poll_stop(&s->poll);
    s->events = 0;
    return;
  }
  int rc = uv_poll_start(&s->poll, ev, udp_poll_cb);
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

/* Logs when the kernel's drop counter (SO_RXQ_OVFL) has grown. */
static void note_drops(udp_sock *s, struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL;
       c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_RXQ_OVFL ||
        c->cmsg_len < CMSG_LEN(sizeof(uint32_t)))
      continue;
    uint32_t total;
    memcpy(&total, CMSG_DATA(c), sizeof(total));
    if (total == s->rxq_ovfl)
      continue;
    uint32_t grew = total - s->rxq_ovfl; /* the counter wraps */
    s->rxq_ovfl = total;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    hwsock_addr a;
    char uri[HWSOCK_URI_MAX + 1] = "?";
    if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0 &&
        hwsock_addr_from_sockaddr((struct sockaddr *)&ss, (unsigned)sl,
                                  s->scheme, &a) == 0)
      hwsock_uri_format(&a, uri, sizeof(uri));
    hwsock_backend_logf(s->inst->host, HWSOCK_LOG_WARN,
            "udp %s: receive queue full (SO_RCVBUF), %u datagrams dropped, "
            "%u in total",
            uri, grew, total);
  }
}

/* ---- the work loop ----------------------------------------------------- */

static void do_writes(udp_sock *s) {
  hwsock_breq *req;
  while (!s->closed && (req = s->wq.head) != NULL) {
    int rc = req_err(req);
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    if (rc == 0 && req->addr != NULL)
      rc = hwsock_backend_sockaddr(req->addr, s->family, &ss, &sl);
    if (rc < 0) {
      hwsock_bq_pop(&s->wq);
      udp_complete(s, req, rc, 0);
      continue;
    }
    /* One datagram: all the iovecs in one call. The kernel neither keeps
     * nor changes msg_iov. */
    struct msghdr m = {.msg_iov = (struct iovec *)req->iov,
                       .msg_iovlen = req->iovcnt};
    if (req->addr != NULL) {
      m.msg_name = &ss;
      m.msg_namelen = sl;
    }
    ssize_t n = sendmsg(s->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break; /* the send buffer is full: wait until writable */
      hwsock_bq_pop(&s->wq);
      udp_complete(s, req, host_err(), 0);
      continue;
    }
    hwsock_bq_pop(&s->wq);
    udp_complete(s, req, 0, (size_t)n);
  }
}

static void do_reads(udp_sock *s) {
  hwsock_breq *req;
  while (!s->closed && (req = s->rq.head) != NULL) {
    struct sockaddr_storage ss;
    union {
      char buf[CMSG_SPACE(sizeof(uint32_t))];
      struct cmsghdr align;
    } ctl;
    struct msghdr m = {.msg_name = &ss,
                       .msg_namelen = sizeof(ss),
                       .msg_iov = (struct iovec *)req->iov,
                       .msg_iovlen = req->iovcnt < IOV_MAX ? req->iovcnt
                                                           : IOV_MAX,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof(ctl.buf)};
    size_t room = 0;
    for (size_t i = 0; i < m.msg_iovlen; i++)
      room += req->iov[i].iov_len;
    int flags = MSG_DONTWAIT | MSG_TRUNC;
    if (req->arg0 & HWSOCK_RECV_PEEK)
      flags |= MSG_PEEK;
    /* With MSG_TRUNC, UDP returns the datagram's real length. */
    ssize_t n = recvmsg(s->fd, &m, flags);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!s->rd_shut)
          break;
        hwsock_bq_pop(&s->rq); /* nothing queued and never more: EOF */
        req->resp_flags |= HWSOCK_RESP_F_EOF;
        udp_complete(s, req, 0, 0);
        continue;
      }
      hwsock_bq_pop(&s->rq);
      udp_complete(s, req, host_err(), 0);
      continue;
    }
    hwsock_bq_pop(&s->rq);
    note_drops(s, &m);
    size_t full = (size_t)n;
    if ((m.msg_flags & MSG_TRUNC) || full > room)
      req->resp_flags |= HWSOCK_RESP_F_TRUNC;
    req->resp_val = (uint32_t)full;
    if (m.msg_namelen > 0 &&
        hwsock_addr_from_sockaddr((struct sockaddr *)&ss, m.msg_namelen,
                                  s->scheme, &req->peer) == 0)
      req->has_peer = 1;
    udp_complete(s, req, 0, full < room ? full : room);
  }
}

/* Does all the I/O that `what` asks for and that can be done now, then
 * sets the poll interest. A nested call (from a completion) only records
 * what it wanted; the outer call does it in its next pass. */
static void udp_run(udp_sock *s, int what) {
  if (s->running) {
    s->again |= what;
    return;
  }
  s->running = 1;
  while (what != 0 && !s->closed) {
    s->again = 0;
    if (what & RUN_WRITE)
      do_writes(s);
    if (what & RUN_READ)
      do_reads(s);
    what = s->again;
  }
  if (s->closed)
    return; /* close() ran inside a completion: nothing more to do */
  s->running = 0;
  update_poll(s);
}

/* Tells the device which of its watches hold, after the queued requests
 * had their turn (a watch is about what a new request would find). */
static void fire_watches(udp_sock *s, int events) {
  unsigned fired = 0;
  if (s->closed || s->watch == 0)
    return;
  if ((s->watch & HWSOCK_BWATCH_READ) && (events & UV_READABLE) &&
      s->rq.head == NULL)
    fired |= HWSOCK_BWATCH_READ;
  if ((s->watch & HWSOCK_BWATCH_WRITE) && (events & UV_WRITABLE) &&
      s->wq.head == NULL)
    fired |= HWSOCK_BWATCH_WRITE;
  if (fired == 0)
    return;
  s->watch &= ~fired;
  s->inst->host->ready(s->inst->host, s->cookie, fired);
  if (!s->closed && !s->running)
    update_poll(s);
}

static void udp_poll_cb(uv_poll_t *handle, int status, int events) {
  udp_sock *s = handle->data;
  if (status < 0) {
    /* An error event (POLLERR: libuv reports UV_EBADF and has stopped the
     * handle). For UDP that is a pending ICMP error: the next recvmsg or
     * sendmsg returns it, so let the pending requests meet it. */
    uint64_t before = s->ncompleted;
    s->events = 0;
    udp_run(s, RUN_WRITE | RUN_READ);
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
    /* The pending ICMP error is what a new RECV would meet. */
    fire_watches(s, UV_READABLE | UV_WRITABLE);
    return;
  }
  int what = 0;
  if (events & UV_WRITABLE)
    what |= RUN_WRITE;
  if (events & UV_READABLE)
    what |= RUN_READ;
  udp_run(s, what);
  fire_watches(s, events);
}

static int udp_watch(void *sock, unsigned events, void *cookie) {
  udp_sock *s = sock;
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

static void do_connect(udp_sock *s, hwsock_breq *req) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc = hwsock_backend_sockaddr(req->addr, s->family, &ss, &sl);
  if (rc == 0 && connect(s->fd, (struct sockaddr *)&ss, sl) != 0)
    rc = host_err(); /* UDP connect(2) never blocks */
  if (rc == 0)
    s->connected = 1;
  udp_complete(s, req, rc, 0);
}

static void do_bind(udp_sock *s, hwsock_breq *req) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc = hwsock_backend_sockaddr(req->addr, s->family, &ss, &sl);
  if (rc == 0 && bind(s->fd, (struct sockaddr *)&ss, sl) != 0)
    rc = host_err();
  udp_complete(s, req, rc, 0);
}

static void do_shutdown(udp_sock *s, hwsock_breq *req) {
  int how = req->arg0 == HWSOCK_SHUT_RD   ? SHUT_RD
            : req->arg0 == HWSOCK_SHUT_WR ? SHUT_WR
                                          : SHUT_RDWR;
  int rc = shutdown(s->fd, how) == 0 ? 0 : host_err();
  /* Linux records the shutdown even when it answers ENOTCONN (an
   * unconnected UDP socket); later SENDs get EPIPE from the kernel. */
  if ((rc == 0 || rc == HWSOCK_ENOTCONN) && how != SHUT_WR)
    s->rd_shut = 1;
  udp_complete(s, req, rc, 0);
  if (s->rd_shut)
    udp_run(s, RUN_READ); /* waiting RECVs now see EOF */
}

/* What a SEND must fail with, decided when it is submitted (the socket's
 * state then is what the guest saw). */
static int send_check(const udp_sock *s, const hwsock_breq *req) {
  size_t max = s->family == AF_INET ? UDP_MAX_PAYLOAD4 : UDP_MAX_PAYLOAD6;
  if (req->addr == NULL && !s->connected)
    return HWSOCK_ENOTCONN;
  if (req->iov_len > max || req->iovcnt > IOV_MAX)
    return HWSOCK_EMSGSIZE;
  return 0;
}

/* Queues a request that waits for the socket, unless the poll handle is
 * known to be broken. */
static int enqueue(udp_sock *s, hwsock_bq *q, hwsock_breq *req) {
  if (s->poll_err) {
    udp_complete(s, req, s->poll_err, 0);
    return 0;
  }
  hwsock_bq_push(q, req);
  return 1;
}

static void udp_submit(void *sock, hwsock_breq *req) {
  udp_sock *s = sock;
  hwsock_breq_reset(req);
  if (s->closed) {
    udp_complete(s, req, HWSOCK_ECANCELED, 0);
    return;
  }
  switch (req->opcode) {
  case HWSOCK_OP_CONNECT:
    do_connect(s, req);
    break;
  case HWSOCK_OP_BIND:
    do_bind(s, req);
    break;
  case HWSOCK_OP_SEND: {
    int rc = send_check(s, req);
    req->backend_priv[1] = (void *)(intptr_t)rc;
    if (enqueue(s, &s->wq, req))
      udp_run(s, RUN_WRITE);
    break;
  }
  case HWSOCK_OP_RECV:
    if (enqueue(s, &s->rq, req))
      udp_run(s, RUN_READ);
    break;
  case HWSOCK_OP_SHUTDOWN:
    if (req->arg0 < HWSOCK_SHUT_RD || req->arg0 > HWSOCK_SHUT_RDWR)
      udp_complete(s, req, HWSOCK_EINVAL, 0);
    else
      do_shutdown(s, req);
    break;
  case HWSOCK_OP_SETSOCKOPT:
    udp_complete(s, req, hwsock__udp_setsockopt(s->fd, s->family, req), 0);
    break;
  case HWSOCK_OP_GETSOCKOPT: {
    size_t len = 0;
    int rc = hwsock__udp_getsockopt(s->fd, s->family, req, &len);
    udp_complete(s, req, rc, rc == 0 ? len : 0);
    break;
  }
  case HWSOCK_OP_GETNAME:
    udp_complete(s, req, hwsock_backend_getname(s->fd, s->scheme, req), 0);
    break;
  default: /* LISTEN, ACCEPT: not for datagrams */
    udp_complete(s, req, HWSOCK_EOPNOTSUPP, 0);
    break;
  }
}

/* ---- sockets and instances ---------------------------------------------- */

static int udp_open(void *instance, const hwsock_bopen *params, void **sock) {
  udp_instance *inst = instance;
  int family;
  switch (params->scheme) {
  case HWSOCK_SCHEME_UDP:
    family = AF_INET;
    break;
  case HWSOCK_SCHEME_UDP6:
    family = AF_INET6;
    break;
  default:
    return HWSOCK_EPROTONOSUPPORT;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  IPPROTO_UDP);
  if (fd < 0)
    return host_err();
  /* What the guest set before the decision, before anything else */
  int prc = hwsock_backend_preset(params, fd, family, hwsock__udp_setsockopt);
  if (prc < 0) {
    close(fd);
    return prc;
  }
  /* Host-side options the policy sets: buffer sizes only for UDP; a TCP
   * option in a rule that offloads UDP is an error, not silently dropped. */
  if (params->size >= offsetof(hwsock_bopen, set) + sizeof(params->set) &&
      params->set != NULL) {
    const hwsock_hostopts *o = params->set;
    int rc = 0;
    if (o->mask & ~(HWSOCK_HOSTOPT_SNDBUF | HWSOCK_HOSTOPT_RCVBUF))
      rc = HWSOCK_ENOPROTOOPT;
    else if (((o->mask & HWSOCK_HOSTOPT_SNDBUF) &&
              setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf,
                         sizeof(o->sndbuf)) != 0) ||
             ((o->mask & HWSOCK_HOSTOPT_RCVBUF) &&
              setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf,
                         sizeof(o->rcvbuf)) != 0))
      rc = host_err();
    if (rc < 0) {
      hwsock_backend_logf(inst->host, HWSOCK_LOG_WARN, "policy options: %s",
                          hwsock_strerror(rc));
      close(fd);
      return rc;
    }
  }
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on)) != 0)
    hwsock_backend_logf(inst->host, HWSOCK_LOG_WARN,
                        "SO_RXQ_OVFL: %s (drops go uncounted)",
                        strerror(errno));
  udp_sock *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    close(fd);
    return HWSOCK_ENOMEM;
  }
  int rc = uv_poll_init_socket(inst->loop, &s->poll, fd);
  if (rc < 0) {
    hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR, "uv_poll_init_socket: %s",
            uv_strerror(rc));
    close(fd);
    free(s);
    return hwsock_err_from_errno(-rc);
  }
  s->poll.data = s;
  s->inst = inst;
  s->fd = fd;
  s->family = family;
  s->scheme = params->scheme;
  inst->nsocks++;
  *sock = s;
  return 0;
}

static void udp_close_cb(uv_handle_t *handle) { free(handle->data); }

static void udp_close(void *sock) {
  udp_sock *s = sock;
  if (s->closed)
    return;
  s->closed = 1;
  fail_all(s, HWSOCK_ECANCELED);
  hwsock_uv_close_poll_fd(&s->poll, &s->fd, udp_close_cb);
  s->inst->nsocks--;
}

static int udp_create(const hwsock_backend_host *host, void **instance) {
  udp_instance *inst;
  int rc = hwsock_backend_instance_new(host, "udp", 1, sizeof(*inst),
                                       (void **)&inst);
  if (rc < 0)
    return rc;
  inst->host = host;
  inst->loop = host->loop;
  *instance = inst;
  return 0;
}

static void udp_destroy(void *instance) {
  udp_instance *inst = instance;
  hwsock_backend_check_closed(inst->host, inst->nsocks);
  free(inst);
}

/* Observability: the host fd and both names, as the kernel knows them. */
static int udp_info(void *sock, hwsock_bsock_info *out) {
  udp_sock *s = sock;
  return hwsock_bsock_info_from_fd(s->fd, s->scheme, s->connected, out);
}

/* ---- hand-over to another process (backend.h's export_sock) ---------- */

/* The state, 8 bytes: flags (1 connected, 2 SHUT_RD done), the family's
 * byte (4 or 6), 0, 0, the kernel's drop counter as last seen (le32). */
#define EXPORT_LEN 8u
#define EXPORT_F_CONNECTED 1u
#define EXPORT_F_RD_SHUT 2u

static int udp_export(void *sock, hwsock_bexport *out) {
  udp_sock *s = sock;
  if (s->closed)
    return HWSOCK_ECANCELED;
  if (s->poll_err)
    return s->poll_err;
  /* A datagram moves whole or not at all: only the order of two waiting
   * requests of one direction could be lost. */
  if (!hwsock_bq_at_most_one(&s->wq) || !hwsock_bq_at_most_one(&s->rq))
    return HWSOCK_EAGAIN;
  if (out->size < offsetof(hwsock_bexport, state) + EXPORT_LEN)
    return HWSOCK_EINVAL;
  int fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return host_err();
  out->fd = fd;
  memset(out->state, 0, EXPORT_LEN);
  out->state[0] = (uint8_t)((s->connected ? EXPORT_F_CONNECTED : 0) |
                            (s->rd_shut ? EXPORT_F_RD_SHUT : 0));
  out->state[1] = s->family == AF_INET6 ? 6 : 4;
  for (int i = 0; i < 4; i++)
    out->state[4 + i] = (uint8_t)(s->rxq_ovfl >> (8 * i));
  out->state_len = EXPORT_LEN;
  return 0;
}

static int udp_import(void *instance, const hwsock_bexport *in, void **sock) {
  udp_instance *inst = instance;
  if (in->size < offsetof(hwsock_bexport, state) + EXPORT_LEN ||
      in->state_len != EXPORT_LEN || in->fd < 0)
    return HWSOCK_EINVAL;
  const uint8_t *st = in->state;
  int family = st[1] == 6 ? AF_INET6 : AF_INET;
  int scheme = family == AF_INET6 ? HWSOCK_SCHEME_UDP6 : HWSOCK_SCHEME_UDP;
  if ((st[0] & ~(EXPORT_F_CONNECTED | EXPORT_F_RD_SHUT)) != 0 ||
      (st[1] != 4 && st[1] != 6) || st[2] != 0 || st[3] != 0 ||
      in->scheme != scheme)
    return HWSOCK_EINVAL;
  /* The descriptor must be what the state says (it came from another
   * process): a UDP socket of the family. */
  int rc = hwsock_backend_adopt_fd(in->fd, SOCK_DGRAM, family, IPPROTO_UDP);
  if (rc < 0)
    return rc;
  udp_sock *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return HWSOCK_ENOMEM;
  rc = uv_poll_init_socket(inst->loop, &s->poll, in->fd);
  if (rc < 0) {
    free(s);
    return hwsock_err_from_errno(-rc);
  }
  s->poll.data = s;
  s->inst = inst;
  s->fd = in->fd; /* ours from here on */
  s->family = family;
  s->scheme = scheme;
  s->connected = (st[0] & EXPORT_F_CONNECTED) != 0;
  s->rd_shut = (st[0] & EXPORT_F_RD_SHUT) != 0;
  s->rxq_ovfl = (uint32_t)st[4] | (uint32_t)st[5] << 8 |
                (uint32_t)st[6] << 16 | (uint32_t)st[7] << 24;
  inst->nsocks++;
  *sock = s;
  return 0;
}

static const hwsock_backend_ops udp_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = udp_create,
    .destroy = udp_destroy,
    .open = udp_open,
    .submit = udp_submit,
    .close = udp_close,
    .info = udp_info,
    .watch = udp_watch,
    .export_sock = udp_export,
    .import_sock = udp_import,
};

static const char *const udp_schemes[] = {"udp", "udp6", NULL};

static const hwsock_backend_desc udp_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "udp",
    .description = "UDP over host sockets (udp://, udp6://)",
    .schemes = udp_schemes,
    .ops = &udp_ops,
};

HWSOCK_BACKEND_DEFINE(udp_desc)
