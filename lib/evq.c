/* The event queue (PROTOCOL.md §16): shared receive buffers and per-socket
 * credit, so that a socket waiting for input holds no request.
 *
 * A socket with a receive window (CREDIT) has a one-shot READ watch armed
 * in its backend (ops->watch). When it fires, the socket joins the ready
 * line, a FIFO threaded through the socket table (no allocation). Serving
 * the line takes one event buffer per socket per turn, so one busy socket
 * cannot starve the others; a socket still readable afterwards is watched
 * again and comes back at the end of the line. Data is read by an ordinary
 * RECV handed to the backend, whose iovecs point into the event buffer
 * after the event header: the data is read straight from the host socket
 * into guest memory, at most the window, and nothing is buffered here.
 * With the window at 0 the socket is not watched and its data stays in the
 * host kernel, which pushes back on the peer. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "device_int.h"
#include "iov.h"

#define EV_LEN ((uint32_t)sizeof(hwsock_event))

int hwsock__evq_index(const hwsock_device *dev) {
  if (!(dev->features & HWSOCK_F_EVENT_QUEUE) || dev->cfg.num_queues < 2)
    return -1;
  return (int)dev->cfg.num_queues - 1;
}

static int is_dgram(const hwsock__sock *s) {
  return hwsock_scheme_socktype(s->scheme) == HWSOCK_SOCK_DGRAM;
}

static const hwsock_backend_ops *ops_of(const hwsock_device *dev,
                                        const hwsock__sock *s) {
  return dev->backends[s->backend].desc->ops;
}

/* The backend has the watch op (appended to the ops struct). */
static int can_watch(const hwsock_device *dev, const hwsock__sock *s) {
  const hwsock_backend_ops *o = ops_of(dev, s);
  return o->size >= offsetof(hwsock_backend_ops, watch) + sizeof(o->watch) &&
         o->watch != NULL;
}

static void line_push(hwsock_device *dev, uint32_t id) {
  hwsock__sock *s = &dev->socks[id];
  if (s->ev & HWSOCK__EV_IN_LINE)
    return;
  s->ev |= HWSOCK__EV_IN_LINE;
  s->ev_next = 0;
  if (dev->ev_tail == 0)
    dev->ev_head = id + 1;
  else
    dev->socks[dev->ev_tail - 1].ev_next = id + 1;
  dev->ev_tail = id + 1;
}

static uint32_t line_pop(hwsock_device *dev) {
  uint32_t id = dev->ev_head - 1;
  hwsock__sock *s = &dev->socks[id];
  dev->ev_head = s->ev_next;
  if (dev->ev_head == 0)
    dev->ev_tail = 0;
  s->ev_next = 0;
  s->ev &= (uint16_t)~HWSOCK__EV_IN_LINE;
  return id;
}

void hwsock__evq_arm(hwsock_device *dev, uint32_t id) {
  hwsock__sock *s = &dev->socks[id];
  if (s->state != HWSOCK__S_OFFLOADED || s->backend < 0 || s->bsock == NULL ||
      !can_watch(dev, s))
    return;
  unsigned want = 0;
  /* A watch is not needed while the socket already waits in the line. */
  if ((s->ev & HWSOCK__EV_WANT_ACCEPT) && !(s->ev & HWSOCK__EV_PEND_ACCEPT))
    want |= HWSOCK_BWATCH_READ;
  if (s->window > 0 && !(s->ev & (HWSOCK__EV_RDONE | HWSOCK__EV_READING |
                                  HWSOCK__EV_PEND_READ)))
    want |= HWSOCK_BWATCH_READ;
  if ((s->ev & HWSOCK__EV_WANT_WRITE) && !(s->ev & HWSOCK__EV_PEND_WRITE))
    want |= HWSOCK_BWATCH_WRITE;
  unsigned have = ((s->ev & HWSOCK__EV_W_READ) ? HWSOCK_BWATCH_READ : 0) |
                  ((s->ev & HWSOCK__EV_W_WRITE) ? HWSOCK_BWATCH_WRITE : 0);
  if (want == have)
    return;
  /* Set first: the backend may fire from inside watch(). */
  s->ev &= (uint16_t)~(HWSOCK__EV_W_READ | HWSOCK__EV_W_WRITE);
  s->ev |= (uint16_t)(((want & HWSOCK_BWATCH_READ) ? HWSOCK__EV_W_READ : 0) |
                      ((want & HWSOCK_BWATCH_WRITE) ? HWSOCK__EV_W_WRITE : 0));
  int rc = ops_of(dev, s)->watch(s->bsock, want, (void *)(uintptr_t)id);
  if (rc < 0) {
    s->ev &= (uint16_t)~(HWSOCK__EV_W_READ | HWSOCK__EV_W_WRITE);
    hwsock__device_log(dev, HWSOCK_LOG_WARN, "socket %u: watch: %s", id,
                       hwsock_strerror(rc));
  }
}

int hwsock__evq_credit(hwsock_device *dev, uint32_t id, uint32_t add,
                       uint32_t watch) {
  hwsock__sock *s = &dev->socks[id];
  if (watch & ~(HWSOCK_WATCH_ACCEPT | HWSOCK_WATCH_WRITE))
    return HWSOCK_EINVAL;
  if (add > HWSOCK_CREDIT_MAX - s->window)
    return HWSOCK_ERANGE;
  if (s->state == HWSOCK__S_OFFLOADED && s->backend >= 0 && !can_watch(dev, s))
    return HWSOCK_EOPNOTSUPP;
  s->window += add;
  if (watch & HWSOCK_WATCH_ACCEPT)
    s->ev |= HWSOCK__EV_WANT_ACCEPT;
  if (watch & HWSOCK_WATCH_WRITE)
    s->ev |= HWSOCK__EV_WANT_WRITE;
  hwsock__evq_arm(dev, id);
  return 0;
}

void hwsock__evq_ready(const hwsock_backend_host *host, void *cookie,
                       unsigned events) {
  hwsock__backend *b = host->host_data;
  hwsock_device *dev = b->dev;
  uint32_t id = (uint32_t)(uintptr_t)cookie;
  if (id >= dev->cfg.max_sockets)
    return;
  hwsock__sock *s = &dev->socks[id];
  if (events & HWSOCK_BWATCH_READ)
    s->ev &= (uint16_t)~HWSOCK__EV_W_READ;
  if (events & HWSOCK_BWATCH_WRITE)
    s->ev &= (uint16_t)~HWSOCK__EV_W_WRITE;
  if (s->state != HWSOCK__S_OFFLOADED || dev->in_teardown)
    return;
  if (events & HWSOCK_BWATCH_READ) {
    /* On a listener READ means "a connection waits". */
    if (s->ev & HWSOCK__EV_WANT_ACCEPT)
      s->ev |= HWSOCK__EV_PEND_ACCEPT;
    else if (s->window > 0 && !(s->ev & HWSOCK__EV_RDONE))
      s->ev |= HWSOCK__EV_PEND_READ;
  }
  if ((events & HWSOCK_BWATCH_WRITE) && (s->ev & HWSOCK__EV_WANT_WRITE))
    s->ev |= HWSOCK__EV_PEND_WRITE;
  if (s->ev & (HWSOCK__EV_PEND_READ | HWSOCK__EV_PEND_ACCEPT |
               HWSOCK__EV_PEND_WRITE))
    line_push(dev, id);
  hwsock__evq_service(dev);
}

/* Writes the event header; used length `used`; completes the buffer. */
static void publish(hwsock_device *dev, hwsock__req *req, hwsock_event *ev,
                    uint32_t used) {
  if (!dev->in_teardown && !dev->broken)
    hwsock__iov_scatter(req->iov, req->chain.n_in, 0, ev, EV_LEN);
  hwsock__req_push(dev, req, used);
}

static void event_init(hwsock_event *ev, uint32_t id, unsigned type,
                       const hwsock__sock *s) {
  memset(ev, 0, sizeof(*ev));
  hwsock_le32_set(&ev->sock_id, id);
  hwsock_le16_set(&ev->type, (uint16_t)type);
  hwsock_le32_set(&ev->window, s->window);
}

/* Starts the read of one socket into the buffer held by req. */
static void start_read(hwsock_device *dev, hwsock__req *req, uint32_t id) {
  hwsock__sock *s = &dev->socks[id];
  hwsock_breq *b = &req->breq;
  unsigned cap = dev->cfg.max_chain_segs + dev->cfg.max_regions, n = 0;
  int dgram = is_dgram(s);
  uint32_t off = EV_LEN + (dgram ? HWSOCK_EV_URI_AREA : 0);
  size_t room = req->chain.in_len - off; /* in_len >= HWSOCK_EV_BUF_MIN */
  if (room > dev->cfg.max_io_len)
    room = dev->cfg.max_io_len;
  if (!dgram && room > s->window)
    room = s->window;
  memset(b, 0, sizeof(*b));
  b->size = sizeof(*b);
  b->opcode = HWSOCK_OP_RECV;
  b->scheme = s->scheme;
  req->opcode = HWSOCK_OP_RECV;
  req->sock_id = id;
  req->tag = 0;
  req->uri_area = dgram ? HWSOCK_EV_URI_AREA : 0;
  b->iov_len =
      hwsock__iov_slice(req->iov, req->chain.n_in, off, room, req->data, cap, &n);
  b->iov = req->data;
  b->iovcnt = n;
  s->ev |= HWSOCK__EV_READING;
  s->inflight++;
  ops_of(dev, s)->submit(s->bsock, b);
}

void hwsock__evq_complete(hwsock_device *dev, hwsock__req *req, int status,
                          size_t len) {
  uint32_t id = req->sock_id;
  hwsock__sock *s = &dev->socks[id];
  const hwsock_breq *b = &req->breq;
  s->ev &= (uint16_t)~HWSOCK__EV_READING;
  if (status == HWSOCK_ECANCELED || s->state != HWSOCK__S_OFFLOADED ||
      dev->in_teardown) {
    /* CLOSE cancelled it: the buffer goes back without an event, before
     * the CLOSE's completion. */
    hwsock__req_push(dev, req, 0);
    return;
  }
  hwsock_event ev;
  uint32_t used = EV_LEN;
  if (status < 0 && is_dgram(s) && hwsock_err_is_soft(status)) {
    /* A datagram socket's ICMP error (the host kernel's report of an ICMP
     * error to an earlier datagram, which recvmsg returns once and clears;
     * only these: any other read error may persist, and a soft error
     * re-arms the watch, so it must not be one the next read meets again):
     * reported, the read side goes on and W is unchanged. A driver
     * without F_SOFT_ERRORS takes every ERROR for the end of the read
     * side; it gets the buffer back empty instead (no event): a lost soft
     * error is less wrong than a socket that never receives again. */
    if (!(dev->features & HWSOCK_F_SOFT_ERRORS)) {
      hwsock__device_log(dev, HWSOCK_LOG_DEBUG,
                         "socket %u: %s not reported (no soft errors)", id,
                         hwsock_strerror(status));
      hwsock__req_push(dev, req, 0);
      hwsock__evq_arm(dev, id);
      return;
    }
    event_init(&ev, id, HWSOCK_EV_ERROR, s);
    hwsock_le16_set(&ev.flags, HWSOCK_EV_F_SOFT);
    hwsock_le32_set(&ev.status, (uint32_t)-status);
  } else if (status < 0) {
    s->ev |= HWSOCK__EV_RDONE;
    event_init(&ev, id, HWSOCK_EV_ERROR, s);
    hwsock_le32_set(&ev.status, (uint32_t)-status);
  } else if (len == 0 && (b->resp_flags & HWSOCK_RESP_F_EOF)) {
    s->ev |= HWSOCK__EV_RDONE;
    if (dev->capture != NULL)
      dev->capture_hooks->event(dev, req, 0, 0);
    event_init(&ev, id, HWSOCK_EV_DATA, s);
    hwsock_le16_set(&ev.flags, HWSOCK_EV_F_EOF);
  } else {
    int dgram = is_dgram(s);
    uint32_t take = dgram ? 1u : (uint32_t)len;
    s->window -= take <= s->window ? take : s->window;
    event_init(&ev, id, HWSOCK_EV_DATA, s);
    hwsock_le32_set(&ev.len, (uint32_t)len);
    if (b->resp_flags & HWSOCK_RESP_F_TRUNC)
      hwsock_le16_set(&ev.flags, HWSOCK_EV_F_TRUNC);
    if (dgram) {
      hwsock_le32_set(&ev.val, b->resp_val);
      if (b->has_peer) {
        char uri[HWSOCK_URI_MAX + 1];
        int n = hwsock_uri_format(&b->peer, uri, sizeof(uri));
        if (n > 0 && (uint32_t)n <= HWSOCK_EV_URI_AREA) {
          hwsock__iov_scatter(req->iov, req->chain.n_in, EV_LEN, uri,
                              (size_t)n);
          hwsock_le32_set(&ev.uri_len, (uint32_t)n);
        }
      }
      used += HWSOCK_EV_URI_AREA;
    }
    used += (uint32_t)len;
    if (dev->capture != NULL)
      dev->capture_hooks->event(dev, req, 0, len);
    dev->counters.bytes_in += len;
    s->bytes_in += len;
    s->reqs_in++;
  }
  publish(dev, req, &ev, used);
  /* Still has a window: watched again, back at the end of the line. */
  hwsock__evq_arm(dev, id);
}

/* Pops one event buffer into a free request. 1: req holds it; 0: none
 * available; negative: the ring is broken. */
static int pop_buffer(hwsock_device *dev, unsigned q, hwsock__req **out) {
  for (;;) {
    if (dev->free_reqs == NULL)
      return 0;
    hwsock__req *req;
    int rc = hwsock__take_request(dev, q, &req);
    if (rc == 0)
      dev->counters.ev_no_buffer++; /* the guest's pool has run dry */
    if (rc <= 0)
      return rc;
    req->event = 1;
    req->t0_ns = 0;
    if (req->chain.n_out != 0 || req->chain.in_len < HWSOCK_EV_BUF_MIN) {
      dev->counters.bad_requests++;
      hwsock__req_push(dev, req, 0);
      continue;
    }
    *out = req;
    return 1;
  }
}

void hwsock__evq_report_reset(hwsock_device *dev, uint32_t id) {
  hwsock__sock *s = &dev->socks[id];
  int waits = (s->window > 0 && !(s->ev & HWSOCK__EV_RDONE)) ||
              (s->ev & (HWSOCK__EV_WANT_ACCEPT | HWSOCK__EV_WANT_WRITE |
                        HWSOCK__EV_PEND_RESET));
  s->window = 0;
  s->ev &= HWSOCK__EV_IN_LINE;
  if (!waits)
    return;
  s->ev |= HWSOCK__EV_PEND_RESET;
  line_push(dev, id);
}

/* The ERROR event of a reset socket into the buffer held by req. */
static void publish_reset(hwsock_device *dev, hwsock__req *req, uint32_t id) {
  hwsock__sock *s = &dev->socks[id];
  hwsock_event ev;
  s->ev = (uint16_t)((s->ev & ~HWSOCK__EV_PEND_RESET) | HWSOCK__EV_RDONE);
  event_init(&ev, id, HWSOCK_EV_ERROR, s);
  hwsock_le32_set(&ev.status, (uint32_t)-HWSOCK_ECONNRESET);
  publish(dev, req, &ev, EV_LEN);
}

void hwsock__evq_service(hwsock_device *dev) {
  int q = hwsock__evq_index(dev);
  /* Quiesced: no buffer is taken (hwsock_device_save copies the rings);
   * the line waits for the resume, or for the restored device's watches. */
  if (q < 0 || dev->broken || !(dev->status & HWSOCK_STATUS_DRIVER_OK) ||
      dev->in_teardown || dev->quiesced || dev->vq[q].size == 0)
    return;
  while (dev->ev_head != 0) {
    uint32_t id = dev->ev_head - 1;
    hwsock__sock *s = &dev->socks[id];
    if ((s->ev & HWSOCK__EV_PEND_RESET) && s->state == HWSOCK__S_RESET) {
      hwsock__req *req = NULL;
      if (pop_buffer(dev, (unsigned)q, &req) <= 0)
        return;
      line_pop(dev);
      publish_reset(dev, req, id);
      continue;
    }
    unsigned pend = s->ev & (HWSOCK__EV_PEND_READ | HWSOCK__EV_PEND_ACCEPT |
                             HWSOCK__EV_PEND_WRITE);
    if (pend == 0 || s->state != HWSOCK__S_OFFLOADED) {
      /* closed (and maybe reused) since it joined: nothing to deliver */
      line_pop(dev);
      continue;
    }
    hwsock__req *req = NULL;
    if (pop_buffer(dev, (unsigned)q, &req) <= 0)
      return; /* wait for buffers (a kick of the event queue) */
    line_pop(dev);
    hwsock_event ev;
    if (pend & HWSOCK__EV_PEND_ACCEPT) {
      s->ev &= (uint16_t)~(HWSOCK__EV_PEND_ACCEPT | HWSOCK__EV_WANT_ACCEPT);
      event_init(&ev, id, HWSOCK_EV_ACCEPTABLE, s);
      publish(dev, req, &ev, EV_LEN);
    } else if (pend & HWSOCK__EV_PEND_WRITE) {
      s->ev &= (uint16_t)~(HWSOCK__EV_PEND_WRITE | HWSOCK__EV_WANT_WRITE);
      event_init(&ev, id, HWSOCK_EV_WRITABLE, s);
      publish(dev, req, &ev, EV_LEN);
    } else {
      s->ev &= (uint16_t)~HWSOCK__EV_PEND_READ;
      if (s->window == 0 || (s->ev & HWSOCK__EV_RDONE)) {
        hwsock__req_push(dev, req, 0); /* nothing to read after all */
      } else {
        start_read(dev, req, id); /* may complete (and re-arm) at once */
      }
    }
    /* More pending (e.g. data and WRITABLE): back at the end of the line. */
    if (s->state == HWSOCK__S_OFFLOADED &&
        (s->ev & (HWSOCK__EV_PEND_READ | HWSOCK__EV_PEND_ACCEPT |
                  HWSOCK__EV_PEND_WRITE)))
      line_push(dev, id);
    else
      hwsock__evq_arm(dev, id);
  }
}

void hwsock__evq_reset(hwsock_device *dev) {
  while (dev->ev_head != 0)
    line_pop(dev);
  /* Written only where set: the table's untouched pages stay unmapped. */
  for (unsigned i = 0; i < dev->sock_hwm; i++)
    if (dev->socks[i].ev != 0)
      dev->socks[i].ev = 0;
}
