/* echo: an in-VMM echo service, as a libhwsock backend plugin.
 *
 * A guest TCP socket that the policy routes here (`backend: echo`) connects
 * at once to whatever address it names, and every byte it sends comes back
 * on its next receives. No host socket exists: the "peer" is a bounded
 * buffer per socket (64 KiB unless the option bufsize=N says otherwise).
 *
 * The plugin needs no event loop: every request completes either inside its
 * own submit() or inside the submit() of another request of the same
 * socket that made it possible (a SEND completes a waiting RECV, a RECV
 * makes room for a waiting SEND). The ABI allows completing inside submit().
 *
 * Flow control: a SEND completes when all its bytes are in the buffer; when
 * the buffer is full it waits, holding its bytes in guest memory, until
 * RECVs drain it. So host memory per socket stays bounded whatever the guest
 * sends. A RECV waits until data arrives or the stream ends (SHUT_WR: the
 * echo of a closed write side is an orderly EOF once the buffer is empty).
 *
 * Waiting requests sit in two FIFO queues (hwsock_bq) linked through
 * backend_priv[0];
 * backend_priv[1] counts the bytes a request has done so far. Their iovecs
 * point into guest memory and are used only while the plugin owns the
 * request, i.e. until it calls host->complete().
 *
 * This file uses only the installed SDK headers hwsock/backend.h and the
 * header-only helpers of hwsock/backend_util.h (and what they include).
 * docs/PLUGINS.md walks through it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hwsock/backend.h>
#include <hwsock/backend_util.h>

#define ECHO_DEFAULT_BUFSIZE (64u * 1024u)
#define ECHO_MAX_BUFSIZE (16u * 1024u * 1024u)

typedef struct echo_instance {
  const hwsock_backend_host *host;
  size_t bufsize;  /* per socket, from the options */
  unsigned nsocks; /* open sockets, to report a leak at destroy() */
} echo_instance;

typedef struct echo_sock {
  echo_instance *inst;
  int scheme;       /* hwsock_scheme: tcp or tcp6 */
  hwsock_addr peer; /* what CONNECT asked for */
  unsigned connected : 1;
  unsigned wr_shut : 1; /* SHUT_WR done: SENDs fail, RECVs end in EOF */
  unsigned rd_shut : 1; /* SHUT_RD done: what is sent is dropped */
  unsigned closed : 1;  /* close() ran: free when the pump unwinds */
  unsigned running : 1; /* a submit() is on the stack */
  unsigned again : 1;   /* a nested pump was asked for */
  unsigned char *buf;   /* ring of inst->bufsize bytes, from CONNECT on */
  size_t head, used;    /* ring: first byte, bytes held */
  hwsock_bq sends;      /* SEND and write-side SHUTDOWN, in order */
  hwsock_bq recvs;      /* RECV, in order */
} echo_sock;

/* ---- helpers ----------------------------------------------------------- */

static size_t req_done(const hwsock_breq *r) {
  return (size_t)(uintptr_t)r->backend_priv[1];
}

static void req_set_done(hwsock_breq *r, size_t n) {
  r->backend_priv[1] = (void *)(uintptr_t)n;
}

static void complete(echo_sock *s, hwsock_breq *r, int status, size_t len) {
  s->inst->host->complete(r, status, len);
}

/* Copies up to `max` bytes between the request's iovecs, from byte `off`
 * of them on, and the ring: appended to it (to_ring) or read from its start
 * (else; the caller consumes them or not). The caller bounds `max` by the
 * ring's room or content. Returns the count. */
static size_t ring_xfer(echo_sock *s, const hwsock_breq *r, size_t off,
                        size_t max, int to_ring) {
  size_t size = s->inst->bufsize, moved = 0;
  for (unsigned i = 0; i < r->iovcnt && moved < max; i++) {
    size_t len = r->iov[i].iov_len;
    if (off >= len) {
      off -= len;
      continue;
    }
    unsigned char *p = (unsigned char *)r->iov[i].iov_base + off;
    size_t n = len - off < max - moved ? len - off : max - moved;
    off = 0;
    while (n > 0) {
      size_t pos = (s->head + (to_ring ? s->used : 0) + moved) % size;
      size_t piece = size - pos < n ? size - pos : n; /* up to the wrap */
      if (to_ring)
        memcpy(s->buf + pos, p, piece);
      else
        memcpy(p, s->buf + pos, piece);
      p += piece;
      n -= piece;
      moved += piece;
    }
  }
  return moved;
}

/* Writes a 32-bit option value (little-endian, as the wire wants) into the
 * request's buffers. */
static int put_le32(hwsock_breq *r, uint32_t v, size_t *len) {
  hwsock_le32 le;
  if (r->iov_len < sizeof(le))
    return HWSOCK_EINVAL;
  hwsock_le32_set(&le, v);
  *len = hwsock_breq_scatter(r, le.b, sizeof(le));
  return 0;
}

/* ---- the pump: moves bytes between waiting requests and the ring ------ */

/* Takes what waiting SENDs have into the ring; completes the SENDs that
 * are all in and the write-side SHUTDOWNs they reach. 1 on progress. */
static int pump_sends(echo_sock *s) {
  int progress = 0;
  hwsock_breq *r;
  while (!s->closed && (r = s->sends.head) != NULL) {
    if (r->opcode == HWSOCK_OP_SHUTDOWN) { /* every SEND before it is in */
      hwsock_bq_pop(&s->sends);
      s->wr_shut = 1;
      complete(s, r, 0, 0);
      progress = 1;
      continue;
    }
    if (s->wr_shut) {
      hwsock_bq_pop(&s->sends);
      complete(s, r, HWSOCK_EPIPE, 0);
      progress = 1;
      continue;
    }
    size_t done = req_done(r);
    size_t want = r->iov_len - done;
    if (s->rd_shut) {
      done += want; /* nobody reads the echo any more: drop it */
    } else {
      size_t room = s->inst->bufsize - s->used;
      size_t n = ring_xfer(s, r, done, want < room ? want : room, 1);
      s->used += n;
      done += n;
      progress |= n > 0;
    }
    if (done < r->iov_len) {
      req_set_done(r, done);
      break; /* the ring is full: wait for a RECV */
    }
    hwsock_bq_pop(&s->sends);
    complete(s, r, 0, done);
    progress = 1;
  }
  return progress;
}

/* Fills waiting RECVs from the ring; a RECV completes with what it got, or
 * when it asked for WAITALL once full, or at the end of the stream. */
static int pump_recvs(echo_sock *s) {
  int progress = 0;
  hwsock_breq *r;
  while (!s->closed && (r = s->recvs.head) != NULL) {
    int peek = (r->arg0 & HWSOCK_RECV_PEEK) != 0;
    int waitall = (r->arg0 & HWSOCK_RECV_WAITALL) != 0 && !peek;
    size_t done = req_done(r);
    size_t want = r->iov_len - done;
    size_t n = ring_xfer(s, r, done, want < s->used ? want : s->used, 0);
    if (!peek && n > 0) {
      s->head = (s->head + n) % s->inst->bufsize;
      s->used -= n;
      progress = 1;
    }
    done += n;
    int eof = s->used == 0 && (s->wr_shut || s->rd_shut);
    if (done == r->iov_len || (done > 0 && !waitall) || eof) {
      hwsock_bq_pop(&s->recvs);
      if (done == 0 && r->iov_len > 0) /* only the end can get us here */
        r->resp_flags |= HWSOCK_RESP_F_EOF;
      complete(s, r, 0, done);
      progress = 1;
      continue;
    }
    req_set_done(r, done);
    break; /* the ring is empty: wait for a SEND */
  }
  return progress;
}

static void sock_free(echo_sock *s) {
  s->inst->nsocks--;
  free(s->buf);
  free(s);
}

/* Every entry from the device (submit) runs between sock_enter() and
 * sock_leave(), which pumps until nothing moves. A completion may call back
 * into submit() or close() of this socket: a nested submit() only asks the
 * outer one to pump again, and a close() meanwhile leaves the freeing to
 * the outer sock_leave(), so no function here ever touches freed memory. */
static int sock_enter(echo_sock *s) {
  if (s->running)
    return 0;
  s->running = 1;
  return 1;
}

static void sock_leave(echo_sock *s, int outer) {
  if (!outer) {
    s->again = 1;
    return;
  }
  while (!s->closed) {
    s->again = 0;
    int progress = pump_sends(s);
    progress |= pump_recvs(s);
    if (!progress && !s->again)
      break;
  }
  s->running = 0;
  if (s->closed)
    sock_free(s);
}

/* ---- requests ---------------------------------------------------------- */

static void do_connect(echo_sock *s, hwsock_breq *r) {
  if (s->connected) {
    complete(s, r, HWSOCK_EISCONN, 0);
    return;
  }
  if (r->addr == NULL) { /* the device always gives one; be strict anyway */
    complete(s, r, HWSOCK_EINVAL, 0);
    return;
  }
  s->buf = malloc(s->inst->bufsize);
  if (s->buf == NULL) {
    complete(s, r, HWSOCK_ENOMEM, 0);
    return;
  }
  s->peer = *r->addr;
  s->connected = 1;
  complete(s, r, 0, 0);
}

static void do_getname(echo_sock *s, hwsock_breq *r) {
  if (r->arg0 == 1) { /* peer: the address the guest connected to */
    if (!s->connected) {
      complete(s, r, HWSOCK_ENOTCONN, 0);
      return;
    }
    r->peer = s->peer;
  } else { /* local: there is none; say "any address, port 0" */
    memset(&r->peer, 0, sizeof(r->peer));
    r->peer.scheme = (uint8_t)s->scheme;
    r->peer.family = (uint8_t)hwsock_scheme_family(s->scheme);
  }
  r->has_peer = 1;
  complete(s, r, 0, 0);
}

static void do_getsockopt(echo_sock *s, hwsock_breq *r) {
  size_t len = 0;
  int rc = HWSOCK_ENOPROTOOPT;
  if (r->arg0 == HWSOCK_SOL_SOCKET && r->arg1 == HWSOCK_SO_ERROR)
    rc = put_le32(r, 0, &len); /* an echo never fails asynchronously */
  else if (r->arg0 == HWSOCK_SOL_SOCKET &&
           (r->arg1 == HWSOCK_SO_RCVBUF || r->arg1 == HWSOCK_SO_SNDBUF))
    rc = put_le32(r, (uint32_t)s->inst->bufsize, &len);
  complete(s, r, rc, rc == 0 ? len : 0);
}

/* Options that tune a network path: there is none, so they are accepted
 * and have no effect. Anything else is not an option of this socket. */
static void do_setsockopt(echo_sock *s, hwsock_breq *r) {
  int ok = (r->arg0 == HWSOCK_SOL_TCP && r->arg1 == HWSOCK_TCP_NODELAY) ||
           (r->arg0 == HWSOCK_SOL_SOCKET && r->arg1 == HWSOCK_SO_KEEPALIVE);
  complete(s, r, ok ? 0 : HWSOCK_ENOPROTOOPT, 0);
}

static void echo_submit(void *sock, hwsock_breq *r) {
  echo_sock *s = sock;
  hwsock_breq_reset(r);
  if (s->closed) { /* a completion's callback submitting after close() */
    complete(s, r, HWSOCK_ECANCELED, 0);
    return;
  }
  int outer = sock_enter(s);
  switch (r->opcode) {
  case HWSOCK_OP_CONNECT:
    do_connect(s, r);
    break;
  case HWSOCK_OP_GETNAME:
    do_getname(s, r);
    break;
  case HWSOCK_OP_GETSOCKOPT:
    do_getsockopt(s, r);
    break;
  case HWSOCK_OP_SETSOCKOPT:
    do_setsockopt(s, r);
    break;
  case HWSOCK_OP_SEND:
    if (!s->connected || r->addr != NULL) /* sendto: stream sockets say no */
      complete(s, r, s->connected ? HWSOCK_EISCONN : HWSOCK_ENOTCONN, 0);
    else if (s->wr_shut)
      complete(s, r, HWSOCK_EPIPE, 0);
    else
      hwsock_bq_push(&s->sends, r); /* the pump takes it, now or later */
    break;
  case HWSOCK_OP_RECV:
    if (!s->connected)
      complete(s, r, HWSOCK_ENOTCONN, 0);
    else
      hwsock_bq_push(&s->recvs, r);
    break;
  case HWSOCK_OP_SHUTDOWN:
    if (!s->connected) {
      complete(s, r, HWSOCK_ENOTCONN, 0);
      break;
    }
    if (r->arg0 & HWSOCK_SHUT_RD) /* RD=1, WR=2, RDWR=3 */
      s->rd_shut = 1;
    if (r->arg0 & HWSOCK_SHUT_WR)
      hwsock_bq_push(&s->sends, r); /* takes effect after the SENDs before it */
    else
      complete(s, r, 0, 0);
    break;
  default: /* BIND, LISTEN, ACCEPT: an echo has no local side */
    complete(s, r, HWSOCK_EOPNOTSUPP, 0);
    break;
  }
  sock_leave(s, outer); /* may free s */
}

/* ---- sockets and instances ---------------------------------------------- */

static int echo_open(void *instance, const hwsock_bopen *params, void **sock) {
  echo_instance *inst = instance;
  if (params->scheme != HWSOCK_SCHEME_TCP &&
      params->scheme != HWSOCK_SCHEME_TCP6)
    return HWSOCK_EPROTONOSUPPORT; /* an echo of datagrams is another plugin */
  echo_sock *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return HWSOCK_ENOMEM;
  s->inst = inst;
  s->scheme = params->scheme;
  inst->nsocks++;
  *sock = s;
  return 0;
}

/* Cancels everything pending, synchronously, as the ABI requires. */
static void echo_close(void *sock) {
  echo_sock *s = sock;
  hwsock_breq *r;
  if (s->closed)
    return;
  s->closed = 1;
  while ((r = hwsock_bq_pop(&s->sends)) != NULL)
    complete(s, r, HWSOCK_ECANCELED, 0);
  while ((r = hwsock_bq_pop(&s->recvs)) != NULL)
    complete(s, r, HWSOCK_ECANCELED, 0);
  if (!s->running)
    sock_free(s); /* else the running sock_leave() frees it */
}

/* Options: "" or "bufsize=N" (bytes per socket, 1..16 MiB). */
static int parse_options(echo_instance *inst, const char *opt) {
  if (opt == NULL || opt[0] == '\0')
    return 0;
  const char *key = "bufsize=";
  if (strncmp(opt, key, strlen(key)) == 0) {
    const char *v = opt + strlen(key);
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] >= '0' && v[0] <= '9' && *end == '\0' && n >= 1 &&
        n <= ECHO_MAX_BUFSIZE) {
      inst->bufsize = (size_t)n;
      return 0;
    }
    hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR,
                        "bufsize must be 1..%u bytes, got '%.32s'",
                        ECHO_MAX_BUFSIZE, v);
    return HWSOCK_EBADCONFIG;
  }
  hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR,
                      "unknown option '%.64s' (known: bufsize=N)", opt);
  return HWSOCK_EBADCONFIG;
}

static int echo_create(const hwsock_backend_host *host, void **instance) {
  if (!hwsock_backend_host_ok(host, 0)) /* no event loop needed */
    return HWSOCK_EINVAL;
  echo_instance *inst = calloc(1, sizeof(*inst));
  if (inst == NULL)
    return HWSOCK_ENOMEM;
  inst->host = host;
  inst->bufsize = ECHO_DEFAULT_BUFSIZE;
  int rc = parse_options(inst, host->options);
  if (rc < 0) {
    free(inst);
    return rc;
  }
  *instance = inst;
  return 0;
}

static void echo_destroy(void *instance) {
  echo_instance *inst = instance;
  hwsock_backend_check_closed(inst->host, inst->nsocks);
  free(inst);
}

static const hwsock_backend_ops echo_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = echo_create,
    .destroy = echo_destroy,
    .open = echo_open,
    .submit = echo_submit,
    .close = echo_close,
};

/* No scheme of its own: only policy rules saying `backend: echo` reach it,
 * so loading it never changes where other sockets go. */
static const char *const echo_schemes[] = {NULL};

static const hwsock_backend_desc echo_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "echo",
    .description = "in-VMM echo service: what a socket sends comes back",
    .schemes = echo_schemes,
    .ops = &echo_ops,
};

HWSOCK_BACKEND_DEFINE(echo_desc)
