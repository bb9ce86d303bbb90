/* The blocking socket API: each call is one request (send: one per io_len
 * piece) run by hwsock__guest_call(). The socket table is socktab.c. */
#include <limits.h>
#include <string.h>

#include "guest_int.h"

/* ---- API ------------------------------------------------------------------ */

static void call_init(guest_call *c, uint16_t op, int s) {
  memset(c, 0, sizeof(*c));
  c->op = op;
  c->rule = CALL_SOCK_USE;
  c->sock = s;
}

/* A URI argument: must be there; its length is checked against the
 * device's limit by hwsock__guest_call. */
static int set_uri(const hwsock_guest *g, guest_call *c, const char *uri) {
  if (!uri)
    return HWSOCK_EINVAL;
  size_t n = strnlen(uri, (size_t)g->uri_max + 1);
  if (n > g->uri_max)
    return HWSOCK_ENAMETOOLONG;
  c->uri = uri;
  c->uri_len = n;
  return 0;
}

int hwsock_guest_socket(hwsock_guest *g, unsigned family, unsigned type) {
  guest_call c;
  if (!g)
    return HWSOCK_EINVAL;
  call_init(&c, HWSOCK_OP_OPEN, -1);
  c.rule = CALL_SOCK_NEW;
  c.arg0 = family;
  c.arg1 = type;
  int err = hwsock__guest_call(g, &c);
  return err < 0 ? err : c.sock;
}

static int uri_call(hwsock_guest *g, uint16_t op, int s, const char *uri) {
  guest_call c;
  if (!g)
    return HWSOCK_EINVAL;
  call_init(&c, op, s);
  int err = set_uri(g, &c, uri);
  return err < 0 ? err : hwsock__guest_call(g, &c);
}

int hwsock_guest_connect(hwsock_guest *g, int s, const char *uri) {
  return uri_call(g, HWSOCK_OP_CONNECT, s, uri);
}

int hwsock_guest_bind(hwsock_guest *g, int s, const char *uri) {
  return uri_call(g, HWSOCK_OP_BIND, s, uri);
}

int hwsock_guest_listen(hwsock_guest *g, int s, int backlog) {
  guest_call c;
  if (!g)
    return HWSOCK_EINVAL;
  call_init(&c, HWSOCK_OP_LISTEN, s);
  c.arg0 = backlog < 0 ? 0u : (uint32_t)backlog;
  return hwsock__guest_call(g, &c);
}

int hwsock_guest_accept(hwsock_guest *g, int s, char *peer, size_t peer_len) {
  guest_call c;
  char name[HWSOCK_URI_MAX + 1]; /* whole, for the socket table */
  if (!g)
    return HWSOCK_EINVAL;
  call_init(&c, HWSOCK_OP_ACCEPT, s);
  c.rule = CALL_SOCK_ACCEPT;
  c.in_uri = g->uri_max;
  c.uri_buf = name;
  c.uri_buf_len = sizeof(name);
  int err = hwsock__guest_call(g, &c);
  hwsock__ev_accepted(g, s, err); /* an ACCEPTABLE is used up */
  if (err < 0)
    return err;
  if (peer && peer_len) {
    size_t n = strnlen(name, peer_len - 1);
    memcpy(peer, name, n);
    peer[n] = '\0';
  }
  return (int)c.arg1;
}

/* One SEND request of at most io_len bytes; returns the bytes taken. */
static ssize_t send_piece(hwsock_guest *g, int s, const void *buf,
                          size_t len, unsigned flags, const char *uri) {
  guest_call c;
  call_init(&c, HWSOCK_OP_SEND, s);
  c.arg0 = flags;
  c.out = buf;
  c.out_len = len;
  if (uri) {
    int err = set_uri(g, &c, uri);
    if (err < 0)
      return err;
  }
  int err = hwsock__guest_call(g, &c);
  return err < 0 ? err : (ssize_t)c.len;
}

/* The next piece of a stream send of len bytes, posted bytes already out:
 * at most io_len, flagged MORE unless it is the last, so the device may
 * coalesce the pieces. */
static void send_piece_call(const hwsock_guest *g, guest_call *c, int s,
                            const void *buf, size_t len, size_t posted,
                            unsigned flags) {
  size_t piece = len - posted < g->io_len ? len - posted : g->io_len;
  call_init(c, HWSOCK_OP_SEND, s);
  c->arg0 = flags | (posted + piece < len ? HWSOCK_SEND_MORE : 0);
  c->out = (const uint8_t *)buf + posted;
  c->out_len = piece;
}

/* ---- write-behind ---------------------------------------------------------
 * With cfg->write_behind, a stream send returns once its pieces are posted
 * (their data is in the slots): the socket keeps up to HWSOCK_GUEST_WB_MAX
 * of them in flight, waited for later, oldest first. The device completes a
 * socket's SENDs in order, so the first error is the one to report. */

static int sock_in_range(const hwsock_guest *g, int s) {
  return s >= 0 && (unsigned)s < g->nsock;
}

/* A datagram socket's pending soft error, an ICMP error that came through
 * the event queue (events.c, PROTOCOL.md §16.9): its next send or SO_ERROR
 * takes it, once, as the kernel's sock_error() does. 0 if none. */
static int soft_take(hwsock_guest *g, int s) {
  if (!sock_in_range(g, s))
    return 0;
  pthread_mutex_lock(&g->lock);
  int err = hwsock__ev_soft_take(g, s);
  pthread_mutex_unlock(&g->lock);
  return err;
}

/* Waits for every write-behind send of s; returns the first error of them
 * (sticky: later sends fail with it too), or 0. */
static int wb_flush(hwsock_guest *g, int s) {
  if (!sock_in_range(g, s))
    return 0; /* (none without write-behind or submitted send buffers) */
  while (hwsock__wb_finish_oldest(g, s, 0))
    ;
  pthread_mutex_lock(&g->lock);
  int err = hwsock__wb_err_take(g, s);
  pthread_mutex_unlock(&g->lock);
  return err;
}

/* dontwait (HWSOCK_GUEST_SEND_DONTWAIT): stop where a piece would wait,
 * for the socket's oldest send or for a slot. */
static ssize_t send_behind(hwsock_guest *g, int s, const void *buf,
                           size_t len, unsigned flags, int dontwait) {
  if (!sock_in_range(g, s))
    return HWSOCK_EBADF;
  guest_sock *gs = &g->socks[s];
  if (dontwait) {
    /* Nobody may be reaping (write-behind senders wait for nothing): take
     * the completions there are, so that finished sends count as such. */
    pthread_mutex_lock(&g->lock);
    hwsock__guest_reap_idle(g);
    pthread_mutex_unlock(&g->lock);
  }
  while (hwsock__wb_finish_oldest(g, s, 1))
    ; /* free what the device already completed */
  size_t posted = 0;
  int reclaimed = 0;
  while (posted < len) {
    pthread_mutex_lock(&g->lock);
    int err = hwsock__wb_err_take(g, s), held = gs->wb_n;
    pthread_mutex_unlock(&g->lock);
    if (err < 0)
      return posted ? (ssize_t)posted : err;
    if (held == HWSOCK_GUEST_WB_MAX) {
      if (dontwait)
        break;
      hwsock__wb_finish_oldest(g, s, 0);
      continue;
    }
    guest_call c;
    unsigned idx;
    send_piece_call(g, &c, s, buf, len, posted, flags);
    /* Wait for a free slot only while holding none: a thread holding slots
     * never blocks on slots others must free. */
    int rc = hwsock__guest_start(g, &c, &idx, held == 0 && !dontwait);
    if (rc == HWSOCK_EAGAIN && dontwait && !reclaimed) {
      /* Completed sends of sockets nobody sends on may hold every slot
       * (with many idle sockets they do): finish them, as the event
       * thread does for callers that wait for a slot. */
      pthread_mutex_lock(&g->lock);
      hwsock__guest_reap_idle(g);
      pthread_mutex_unlock(&g->lock);
      hwsock__wb_reclaim(g);
      reclaimed = 1;
      continue;
    }
    if (rc == HWSOCK_EAGAIN && dontwait)
      break;
    if (rc == HWSOCK_EAGAIN && held > 0) {
      hwsock__wb_finish_oldest(g, s, 0);
      continue;
    }
    if (rc < 0)
      return posted ? (ssize_t)posted : rc;
    c.out = NULL; /* the data is in the slot; the caller's buffer is free */
    pthread_mutex_lock(&g->lock);
    g->slot_call[idx] = c;
    gs->wb_slot[(gs->wb_head + gs->wb_n) % HWSOCK_GUEST_WB_MAX] = idx;
    gs->wb_n++;
    pthread_mutex_unlock(&g->lock);
    posted += c.out_len;
  }
  return posted || !len ? (ssize_t)posted : HWSOCK_EAGAIN;
}

/* Pieces of one send kept in flight: the device copies nothing, so the
 * next piece's bounce copy overlaps the backend's writev of the previous
 * one instead of waiting a round trip for it. */
#define SEND_PIPELINE 4

ssize_t hwsock_guest_send(hwsock_guest *g, int s, const void *buf, size_t len,
                          unsigned flags) {
  if (!g || (!buf && len))
    return HWSOCK_EINVAL;
  if (len > SSIZE_MAX)
    len = SSIZE_MAX;
  int dontwait = (flags & HWSOCK_GUEST_SEND_DONTWAIT) != 0;
  flags &= ~HWSOCK_GUEST_SEND_DONTWAIT; /* never on the wire */
  if (dontwait && !g->write_behind)
    return HWSOCK_EINVAL; /* such a send waits for its completion */
  if (len == 0 && !dontwait) {
    int soft = soft_take(g, s);
    return soft < 0 ? soft : send_piece(g, s, buf, 0, flags, NULL);
  }
  if (sock_in_range(g, s)) {
    pthread_mutex_lock(&g->lock);
    int dgram = g->socks[s].type == HWSOCK_SOCK_DGRAM;
    int wb_err = hwsock__wb_err_take(g, s); /* of a send buffer too */
    pthread_mutex_unlock(&g->lock);
    if (dgram && dontwait)
      return HWSOCK_EINVAL; /* a datagram's send waits for its result */
    /* A datagram is one request: never split it into pieces. */
    if (dgram && len > g->io_len)
      return HWSOCK_EMSGSIZE;
    int soft = dgram ? soft_take(g, s) : 0;
    if (soft < 0)
      return soft;
    if (wb_err < 0)
      return wb_err;
  }
  if (g->write_behind)
    return send_behind(g, s, buf, len, flags, dontwait);
  struct {
    guest_call c;
    unsigned slot;
  } p[SEND_PIPELINE];
  unsigned head = 0, n = 0;
  size_t posted = 0, done = 0;
  int err = 0;
  while (done < len) {
    while (!err && posted < len && n < SEND_PIPELINE) {
      guest_call *c = &p[(head + n) % SEND_PIPELINE].c;
      send_piece_call(g, c, s, buf, len, posted, flags);
      /* Only the first piece may wait for a slot: a thread that holds
       * pieces never blocks on slots others might need to free. */
      int rc = hwsock__guest_start(g, c, &p[(head + n) % SEND_PIPELINE].slot,
                                   n == 0);
      if (rc == HWSOCK_EAGAIN && n > 0)
        break;
      if (rc < 0) {
        err = rc;
        break;
      }
      posted += c->out_len;
      n++;
    }
    if (n == 0)
      break;
    /* Sends of one socket complete in order: wait for the oldest. */
    guest_call *c = &p[head].c;
    int rc = hwsock__guest_wait(g, p[head].slot, c);
    head = (head + 1) % SEND_PIPELINE;
    n--;
    if (rc == 0 && c->len == c->out_len) {
      if (!err)
        done += c->len;
      continue;
    }
    if (!err) {
      err = rc < 0 ? rc : HWSOCK_EPROTO; /* a short send is no progress */
      if (rc == 0)
        done += c->len;
    }
  }
  return done ? (ssize_t)done : err; /* report what did go out */
}

ssize_t hwsock_guest_sendto(hwsock_guest *g, int s, const void *buf,
                            size_t len, unsigned flags, const char *uri) {
  if (!g || (!buf && len))
    return HWSOCK_EINVAL;
  if (len > g->io_len)
    return HWSOCK_EMSGSIZE; /* one datagram is one request */
  int soft = soft_take(g, s);
  if (soft < 0)
    return soft;
  return send_piece(g, s, buf, len, flags, uri);
}

ssize_t hwsock_guest_recvfrom(hwsock_guest *g, int s, void *buf, size_t len,
                              unsigned flags, char *uri, size_t uri_len,
                              unsigned *resp_flags) {
  guest_call c;
  ssize_t r;
  if (!g || (!buf && len))
    return HWSOCK_EINVAL;
  /* With the event queue the data is already in the driver's buffers. */
  if (hwsock__ev_recv(g, s, buf, len, flags, uri, uri_len, resp_flags, &r))
    return r;
  flags &= ~HWSOCK_GUEST_RECV_DONTWAIT; /* never on the wire */
  call_init(&c, HWSOCK_OP_RECV, s);
  c.arg0 = flags;
  c.in_len = len < g->io_len ? (uint32_t)len : g->io_len;
  c.in_buf = buf;
  if (uri && uri_len) {
    c.in_uri = g->uri_max;
    c.arg1 = c.in_uri;
    c.uri_buf = uri;
    c.uri_buf_len = uri_len;
  }
  int err = hwsock__guest_call(g, &c);
  if (err < 0)
    return err;
  if (resp_flags)
    *resp_flags = c.flags;
  return (ssize_t)c.len;
}

ssize_t hwsock_guest_recv(hwsock_guest *g, int s, void *buf, size_t len,
                          unsigned flags) {
  return hwsock_guest_recvfrom(g, s, buf, len, flags, NULL, 0, NULL);
}

int hwsock_guest_shutdown(hwsock_guest *g, int s, unsigned how) {
  guest_call c;
  if (!g)
    return HWSOCK_EINVAL;
  /* The device would order it after the sends anyway; waiting for them
   * reports their error here rather than never. */
  int err = wb_flush(g, s);
  call_init(&c, HWSOCK_OP_SHUTDOWN, s);
  c.arg0 = how;
  int rc = hwsock__guest_call(g, &c);
  return err < 0 ? err : rc;
}

int hwsock_guest_close(hwsock_guest *g, int s) {
  guest_call c;
  if (!g)
    return HWSOCK_EINVAL;
  /* CLOSE cancels what is pending: let written data go out first, as a
   * kernel close does. */
  (void)wb_flush(g, s);
  call_init(&c, HWSOCK_OP_CLOSE, s);
  c.rule = CALL_SOCK_CLOSE;
  hwsock__ev_close_begin(g, s);
  int rc = hwsock__guest_call(g, &c);
  hwsock__ev_close_end(g, s);
  if (rc == 0) {
    pthread_mutex_lock(&g->lock);
    g->socks[s].wb_err = 0; /* the id may be reused */
    pthread_mutex_unlock(&g->lock);
  }
  return rc;
}

int hwsock_guest_getsockopt(hwsock_guest *g, int s, unsigned level,
                            unsigned opt, void *val, size_t *len) {
  guest_call c;
  uint8_t tmp[GUEST_OPTVAL_MAX];
  if (!g || !val || !len)
    return HWSOCK_EINVAL;
  int soft = level == HWSOCK_SOL_SOCKET && opt == HWSOCK_SO_ERROR
                 ? soft_take(g, s)
                 : 0;
  if (soft < 0) { /* the device's host socket no longer has it */
    hwsock_le32 v;
    hwsock_le32_set(&v, (uint32_t)-soft);
    size_t n = sizeof(v) < *len ? sizeof(v) : *len;
    memcpy(val, &v, n);
    *len = n;
    return 0;
  }
  call_init(&c, HWSOCK_OP_GETSOCKOPT, s);
  c.arg0 = level;
  c.arg1 = opt;
  c.in_len = GUEST_OPTVAL_MAX;
  c.in_buf = tmp;
  int err = hwsock__guest_call(g, &c);
  if (err < 0)
    return err;
  size_t n = c.len < *len ? c.len : *len;
  memcpy(val, tmp, n);
  *len = n;
  return 0;
}

int hwsock_guest_setsockopt(hwsock_guest *g, int s, unsigned level,
                            unsigned opt, const void *val, size_t len) {
  guest_call c;
  if (!g || (!val && len) || len > HWSOCK_SOCKOPT_MAX)
    return HWSOCK_EINVAL;
  call_init(&c, HWSOCK_OP_SETSOCKOPT, s);
  c.arg0 = level;
  c.arg1 = opt;
  c.out = val;
  c.out_len = len;
  return hwsock__guest_call(g, &c);
}

int hwsock_guest_getname(hwsock_guest *g, int s, int which, char *uri,
                         size_t uri_len) {
  guest_call c;
  if (!g || (which != 0 && which != 1) || !uri || !uri_len)
    return HWSOCK_EINVAL;
  char name[HWSOCK_URI_MAX + 1]; /* whole, for the socket table */
  call_init(&c, HWSOCK_OP_GETNAME, s);
  c.arg0 = (uint32_t)which;
  c.in_uri = g->uri_max;
  c.uri_buf = name;
  c.uri_buf_len = sizeof(name);
  int err = hwsock__guest_call(g, &c);
  if (err < 0)
    return err;
  size_t n = strnlen(name, uri_len - 1);
  memcpy(uri, name, n);
  uri[n] = '\0';
  return 0;
}
