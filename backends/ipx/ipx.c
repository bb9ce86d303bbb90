/* ipx backend: AF_IPX datagram sockets (scheme ipx) carried as real IPX
 * packets encapsulated in UDP, as RFC 1234 describes (docs/IPX.md).
 *
 * One UDP socket per instance (per device), bound to the options' bind:port
 * and watched by one uv_poll_t, carries the packets of every IPX socket of
 * the guest. Each packet is the 30-byte IPX header followed by the payload,
 * big-endian as on a real IPX network, so captures decode as IPX.
 *
 * Sending: one sendmsg() per destination, the header from our stack and the
 * payload straight from the request's iovecs (guest memory). The peer table
 * from the options maps destination nodes to UDP endpoints; the broadcast
 * node goes to every peer. SENDs of all sockets wait in one FIFO when the
 * UDP socket is full, so each socket's SENDs complete in order.
 *
 * Receiving: the shared socket is read whenever it is readable, because one
 * socket serves many IPX sockets; every packet is checked (header, length,
 * checksum field, sender is a configured peer using its own node, addressed
 * to us) and demultiplexed by destination socket number. Here we must copy:
 * a packet goes straight into a waiting RECV's buffers, or else into a small
 * bounded per-socket queue (IPX_QUEUE_MAX packets of at most IPX_MAX_PACKET
 * bytes). Every dropped packet is counted and logged (DEBUG each, WARN when
 * a count reaches a power of two, so that a flood cannot flood the log).
 *
 * Options (net, node, port, bind, peer=NODE@IP:PORT...) come from the VMM;
 * an instance created without any has no IPX network: its sockets fail to
 * open with HWSOCK_ENETDOWN and nothing is bound.
 *
 * Re-entrancy: host->complete() may call back into submit() or close(). A
 * request is unlinked before it is completed; a socket is freed only when no
 * function of this file holds it (sock_hold/sock_release); the instance is
 * freed in its poll handle's close callback. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <uv.h>

#include "hwsock/backend.h"
#include "hwsock/backend_util.h"
#include "hwsock/backend_uv.h"
#include "ipx_int.h"

#define IPX_HASH 64u       /* buckets of bound sockets (by socket number) */
#define IPX_SG_MAX 64u     /* payload iovecs sent without gathering */
#define IPX_READ_BATCH 64u /* packets read per readable event */

static const uint8_t bcast_node[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t zero_net[4];

enum ipx_drop {
  DROP_MALFORMED, /* header, length, checksum field, hops, oversize */
  DROP_SENDER,    /* not a configured peer, or not using its own node */
  DROP_NOT_OURS,  /* destination network or node is not this guest's */
  DROP_NO_SOCKET, /* nothing bound to the destination socket */
  DROP_QUEUE,     /* the socket's queue was full */
  DROP_KINDS
};

static const char *const drop_names[DROP_KINDS] = {
    "malformed", "unknown sender", "not for this node", "no socket",
    "queue full"};

typedef struct ipx_pkt {
  uint8_t net[4], node[6]; /* source */
  uint16_t sock;
  uint16_t len;            /* payload bytes */
  uint8_t data[];
} ipx_pkt;

typedef struct ipx_sock ipx_sock;

typedef struct ipx_instance {
  uv_poll_t poll; /* poll.data = the instance */
  const hwsock_backend_host *host;
  int fd;
  int events;
  unsigned nsocks;
  unsigned draining : 1;
  uint16_t next_ephemeral;
  ipx_config cfg;
  ipx_sock *bound[IPX_HASH];
  hwsock_bq wq; /* SENDs of every socket, in submission order */
  uint64_t drops[DROP_KINDS];
  uint8_t rbuf[IPX_MAX_PACKET + 1]; /* one more: an oversize packet shows */
} ipx_instance;

struct ipx_sock {
  ipx_instance *inst;
  ipx_sock *hnext;   /* hash chain of bound sockets */
  uint16_t port;     /* bound socket number, 0 when unbound */
  unsigned connected : 1;
  unsigned closed : 1;
  int busy;          /* functions of this file holding it */
  hwsock_addr dest;  /* CONNECT's default destination */
  hwsock_bq rq;      /* RECV */
  ipx_pkt *pq[IPX_QUEUE_MAX]; /* packets waiting for a RECV (a ring) */
  unsigned pq_head, pq_len;
  uint64_t drops;    /* packets dropped because pq was full */
};

/* backend_priv use: [0] queue link, [1] SEND: peers done (broadcast),
 * [2] SEND: the socket, [3] SEND: error decided at submit. */

static void inst_poll_cb(uv_poll_t *handle, int status, int events);

/* ---- helpers --------------------------------------------------------- */

static int is_bcast(const uint8_t node[6]) {
  return memcmp(node, bcast_node, 6) == 0;
}

static void sock_hold(ipx_sock *s) { s->busy++; }

static void sock_free(ipx_sock *s) {
  while (s->pq_len > 0) {
    free(s->pq[s->pq_head]);
    s->pq_head = (s->pq_head + 1) % IPX_QUEUE_MAX;
    s->pq_len--;
  }
  free(s);
}

static void sock_release(ipx_sock *s) {
  if (--s->busy == 0 && s->closed)
    sock_free(s);
}

/* Counts a dropped packet and logs it. */
static void drop(ipx_instance *inst, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void drop(ipx_instance *inst, int kind, const char *fmt, ...) {
  uint64_t n = ++inst->drops[kind];
  char why[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  int level = (n & (n - 1)) == 0 ? HWSOCK_LOG_WARN : HWSOCK_LOG_DEBUG;
  hwsock_backend_logf(inst->host, level,
                      "ipx: dropped packet (%s, %llu so far): %s",
                      drop_names[kind], (unsigned long long)n, why);
}

static void endpoint_text(const struct sockaddr_storage *ss, char *buf,
                          size_t size) {
  hwsock_addr a;
  int scheme = ss->ss_family == AF_INET6 ? HWSOCK_SCHEME_UDP6
                                         : HWSOCK_SCHEME_UDP;
  if (hwsock_addr_from_sockaddr((const struct sockaddr *)ss, sizeof(*ss),
                                scheme, &a) != 0 ||
      hwsock_uri_format(&a, buf, size) < 0)
    snprintf(buf, size, "?");
}

/* ---- bound sockets ---------------------------------------------------- */

static ipx_sock *lookup(const ipx_instance *inst, uint16_t port) {
  for (ipx_sock *s = inst->bound[port % IPX_HASH]; s != NULL; s = s->hnext)
    if (s->port == port)
      return s;
  return NULL;
}

static int bind_port(ipx_sock *s, uint16_t port) {
  ipx_instance *inst = s->inst;
  if (port == 0) {
    /* The next free number of the ephemeral range, round robin, so that a
     * number just released is not handed out again at once. */
    unsigned span = IPX_EPHEMERAL_LAST - IPX_EPHEMERAL_FIRST + 1;
    for (unsigned i = 0; i < span && port == 0; i++) {
      uint16_t p = inst->next_ephemeral;
      inst->next_ephemeral =
          p == IPX_EPHEMERAL_LAST ? IPX_EPHEMERAL_FIRST : (uint16_t)(p + 1);
      if (lookup(inst, p) == NULL)
        port = p;
    }
    if (port == 0)
      return HWSOCK_EADDRINUSE;
  } else if (lookup(inst, port) != NULL) {
    return HWSOCK_EADDRINUSE;
  }
  s->port = port;
  s->hnext = inst->bound[port % IPX_HASH];
  inst->bound[port % IPX_HASH] = s;
  return 0;
}

static void unbind_port(ipx_sock *s) {
  if (s->port == 0)
    return;
  ipx_sock **pp = &s->inst->bound[s->port % IPX_HASH];
  while (*pp != NULL && *pp != s)
    pp = &(*pp)->hnext;
  if (*pp == s)
    *pp = s->hnext;
  s->hnext = NULL;
}

static const ipx_peer *find_peer(const ipx_instance *inst,
                                 const uint8_t node[6]) {
  for (unsigned i = 0; i < inst->cfg.npeers; i++)
    if (memcmp(inst->cfg.peers[i].node, node, 6) == 0)
      return &inst->cfg.peers[i];
  return NULL;
}

static int same_endpoint(const struct sockaddr_storage *a,
                         const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port &&
         memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* ---- receiving ---------------------------------------------------------- */

/* Copies a packet into a RECV's buffers and completes it. */
static void fill_recv(ipx_sock *s, hwsock_breq *req, const uint8_t net[4],
                      const uint8_t node[6], uint16_t sock,
                      const uint8_t *data, size_t len) {
  size_t done = hwsock_breq_scatter(req, data, len);
  if (done < len)
    req->resp_flags |= HWSOCK_RESP_F_TRUNC;
  req->resp_val = (uint32_t)len;
  memset(&req->peer, 0, sizeof(req->peer));
  req->peer.scheme = HWSOCK_SCHEME_IPX;
  req->peer.family = HWSOCK_AF_IPX;
  req->peer.port = sock;
  memcpy(req->peer.u.ipx.net, net, 4);
  memcpy(req->peer.u.ipx.node, node, 6);
  req->has_peer = 1;
  s->inst->host->complete(req, 0, done);
}

/* Hands queued packets to posted RECVs, in order. */
static void pump(ipx_sock *s) {
  sock_hold(s);
  while (!s->closed && s->rq.head != NULL && s->pq_len > 0) {
    ipx_pkt *p = s->pq[s->pq_head];
    hwsock_breq *req = hwsock_bq_pop(&s->rq);
    int peek = (req->arg0 & HWSOCK_RECV_PEEK) != 0;
    if (!peek) {
      s->pq_head = (s->pq_head + 1) % IPX_QUEUE_MAX;
      s->pq_len--;
    }
    fill_recv(s, req, p->net, p->node, p->sock, p->data, p->len);
    if (!peek)
      free(p);
  }
  sock_release(s);
}

static void deliver(ipx_sock *s, const ipx_hdr *h, const uint8_t *data,
                    size_t len) {
  hwsock_breq *req = s->rq.head;
  if (req != NULL && s->pq_len == 0 && !(req->arg0 & HWSOCK_RECV_PEEK)) {
    hwsock_bq_pop(&s->rq); /* a RECV waits: straight into its buffers */
    fill_recv(s, req, h->snet, h->snode, h->ssock, data, len);
    return;
  }
  if (s->pq_len == IPX_QUEUE_MAX) {
    s->drops++;
    drop(s->inst, DROP_QUEUE, "socket %04x has %u packets waiting (%llu "
         "dropped on it)", s->port, IPX_QUEUE_MAX,
         (unsigned long long)s->drops);
    return;
  }
  ipx_pkt *p = malloc(sizeof(*p) + len);
  if (p == NULL) {
    s->drops++;
    drop(s->inst, DROP_QUEUE, "out of memory for socket %04x", s->port);
    return;
  }
  memcpy(p->net, h->snet, 4);
  memcpy(p->node, h->snode, 6);
  p->sock = h->ssock;
  p->len = (uint16_t)len;
  memcpy(p->data, data, len);
  s->pq[(s->pq_head + s->pq_len) % IPX_QUEUE_MAX] = p;
  s->pq_len++;
  pump(s);
}

/* One packet to the socket bound to its destination socket number. A
 * packet this guest sent to itself (`local`) skips the sender (`except`) and
 * is not counted when nobody takes it, as a wire would not tell. */
static void demux(ipx_instance *inst, const ipx_hdr *h, const uint8_t *data,
                  size_t len, int local, const ipx_sock *except) {
  ipx_sock *s = lookup(inst, h->dsock);
  if (s == NULL || s == except) {
    if (!local)
      drop(inst, DROP_NO_SOCKET, "nothing bound to socket %04x", h->dsock);
    return;
  }
  sock_hold(s);
  deliver(s, h, data, len);
  sock_release(s);
}

static void receive_packet(ipx_instance *inst, size_t n,
                           const struct sockaddr_storage *from) {
  ipx_hdr h;
  const char *why;
  char ep[HWSOCK_URI_MAX + 1];
  if (n > IPX_MAX_PACKET) {
    endpoint_text(from, ep, sizeof(ep));
    drop(inst, DROP_MALFORMED, "from %s: longer than %u bytes", ep,
         IPX_MAX_PACKET);
    return;
  }
  if (hwsock__ipx_hdr_decode(inst->rbuf, n, &h, &why) < 0) {
    endpoint_text(from, ep, sizeof(ep));
    drop(inst, DROP_MALFORMED, "from %s: %s", ep, why);
    return;
  }
  /* Only a configured peer may send, and only from its own node. */
  const ipx_peer *p = find_peer(inst, h.snode);
  if (p == NULL || !same_endpoint(&p->sa, from)) {
    endpoint_text(from, ep, sizeof(ep));
    drop(inst, DROP_SENDER, "from %s: source node "
         "%02x%02x%02x%02x%02x%02x is not the peer there", ep, h.snode[0],
         h.snode[1], h.snode[2], h.snode[3], h.snode[4], h.snode[5]);
    return;
  }
  if ((memcmp(h.dnet, inst->cfg.net, 4) != 0 &&
       memcmp(h.dnet, zero_net, 4) != 0) ||
      (memcmp(h.dnode, inst->cfg.node, 6) != 0 && !is_bcast(h.dnode))) {
    drop(inst, DROP_NOT_OURS, "to %02x%02x%02x%02x.%02x%02x%02x%02x%02x%02x",
         h.dnet[0], h.dnet[1], h.dnet[2], h.dnet[3], h.dnode[0], h.dnode[1],
         h.dnode[2], h.dnode[3], h.dnode[4], h.dnode[5]);
    return;
  }
  demux(inst, &h, inst->rbuf + IPX_HDR_LEN, h.length - IPX_HDR_LEN, 0,
        NULL);
}

static void read_packets(ipx_instance *inst) {
  for (unsigned i = 0; i < IPX_READ_BATCH; i++) {
    struct sockaddr_storage from;
    struct iovec v = {.iov_base = inst->rbuf, .iov_len = sizeof(inst->rbuf)};
    struct msghdr m = {.msg_name = &from,
                       .msg_namelen = sizeof(from),
                       .msg_iov = &v,
                       .msg_iovlen = 1};
    memset(&from, 0, sizeof(from));
    /* MSG_TRUNC: the real length, so that an oversize packet is seen as
     * such and not read as a cut one. */
    ssize_t n = recvmsg(inst->fd, &m, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        hwsock_backend_logf(inst->host, HWSOCK_LOG_WARN, "ipx: recvmsg: %s",
                            strerror(errno));
      return;
    }
    receive_packet(inst, (size_t)n, &from);
  }
}

/* ---- sending ------------------------------------------------------------ */

static void update_poll(ipx_instance *inst) {
  int ev = UV_READABLE | (inst->wq.head != NULL ? UV_WRITABLE : 0);
  if (ev == inst->events)
    return;
  int rc = uv_poll_start(&inst->poll, ev, inst_poll_cb);
  if (rc < 0) {
    hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR, "ipx: uv_poll_start: %s",
                        uv_strerror(rc));
    inst->events = 0;
    return;
  }
  inst->events = ev;
}

static const hwsock_addr *send_dest(const ipx_sock *s,
                                    const hwsock_breq *req) {
  return req->addr != NULL ? req->addr : &s->dest;
}

/* The packet's header for a SEND of socket s. */
static void build_hdr(const ipx_sock *s, const hwsock_breq *req,
                      uint8_t out[IPX_HDR_LEN], ipx_hdr *h) {
  const hwsock_addr *d = send_dest(s, req);
  memset(h, 0, sizeof(*h));
  h->checksum = IPX_CHECKSUM_NONE;
  h->length = (uint16_t)(IPX_HDR_LEN + req->iov_len);
  h->tc = 0;
  h->type = IPX_TYPE_PEP;
  /* Network 0 means "this network": the packet names it. */
  memcpy(h->dnet, memcmp(d->u.ipx.net, zero_net, 4) == 0 ? s->inst->cfg.net
                                                         : d->u.ipx.net,
         4);
  memcpy(h->dnode, d->u.ipx.node, 6);
  h->dsock = d->port;
  memcpy(h->snet, s->inst->cfg.net, 4);
  memcpy(h->snode, s->inst->cfg.node, 6);
  h->ssock = s->port;
  hwsock__ipx_hdr_encode(h, out);
}

/* Sends the packet to one UDP endpoint: 0, 1 when the socket is full, or a
 * negative HWSOCK_E*. */
static int send_one(ipx_instance *inst, const hwsock_breq *req,
                    const uint8_t hdr[IPX_HDR_LEN], const ipx_peer *p) {
  struct iovec v[1 + IPX_SG_MAX];
  uint8_t pkt[IPX_MAX_PACKET];
  struct msghdr m = {.msg_name = (void *)&p->sa,
                     .msg_namelen = p->salen,
                     .msg_iov = v};
  if (req->iovcnt <= IPX_SG_MAX) {
    v[0].iov_base = (void *)hdr;
    v[0].iov_len = IPX_HDR_LEN;
    for (unsigned i = 0; i < req->iovcnt; i++)
      v[1 + i] = req->iov[i];
    m.msg_iovlen = 1 + req->iovcnt;
  } else { /* a long chain of small pieces: one contiguous packet */
    memcpy(pkt, hdr, IPX_HDR_LEN);
    v[0].iov_base = pkt;
    v[0].iov_len = IPX_HDR_LEN + hwsock_breq_gather(req, pkt + IPX_HDR_LEN);
    m.msg_iovlen = 1;
  }
  for (;;) {
    if (sendmsg(inst->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
      return 0;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return 1;
    return hwsock_err_from_errno(errno);
  }
}

/* This guest sending to itself (its own node, or a broadcast): the packet
 * goes to its own sockets, as on a real interface. */
static void send_local(ipx_sock *s, const hwsock_breq *req,
                       const ipx_hdr *h) {
  uint8_t buf[IPX_MAX_PAYLOAD];
  size_t n = hwsock_breq_gather(req, buf);
  demux(s->inst, h, buf, n, 1, is_bcast(h->dnode) ? s : NULL);
}

/* Tries to send the SEND at the head of the instance queue: 1 when it must
 * wait for the socket, else 0 (it was popped and completed). */
static int send_head(ipx_instance *inst) {
  hwsock_breq *req = inst->wq.head;
  ipx_sock *s = req->backend_priv[2];
  int err = (int)(intptr_t)req->backend_priv[3];
  uint8_t hdr[IPX_HDR_LEN];
  ipx_hdr h;
  if (err == 0) {
    build_hdr(s, req, hdr, &h);
    if (is_bcast(h.dnode)) {
      /* Every peer (best effort, like a broadcast on a wire), then the
       * guest's own sockets. */
      size_t i = (size_t)(uintptr_t)req->backend_priv[1];
      for (; i < inst->cfg.npeers; i++) {
        int rc = send_one(inst, req, hdr, &inst->cfg.peers[i]);
        if (rc == 1) {
          req->backend_priv[1] = (void *)(uintptr_t)i;
          return 1;
        }
        if (rc < 0)
          hwsock_backend_logf(inst->host, HWSOCK_LOG_DEBUG,
                              "ipx: broadcast to peer %zu: %s", i + 1,
                              hwsock_strerror(rc));
      }
      hwsock_bq_pop(&inst->wq);
      send_local(s, req, &h);
    } else if (memcmp(h.dnode, inst->cfg.node, 6) == 0) {
      hwsock_bq_pop(&inst->wq);
      send_local(s, req, &h);
    } else {
      const ipx_peer *p = find_peer(inst, h.dnode);
      err = p == NULL ? HWSOCK_EHOSTUNREACH : send_one(inst, req, hdr, p);
      if (err == 1)
        return 1;
      hwsock_bq_pop(&inst->wq);
    }
  } else {
    hwsock_bq_pop(&inst->wq);
  }
  inst->host->complete(req, err, err == 0 ? req->iov_len : 0);
  return 0;
}

/* Sends what waits, in order, until the socket is full. Nested calls (from
 * a completion) leave the work to the outer loop. */
static void drain(ipx_instance *inst) {
  if (inst->draining)
    return;
  inst->draining = 1;
  while (inst->wq.head != NULL && send_head(inst) == 0)
    ;
  inst->draining = 0;
  update_poll(inst);
}

static void inst_poll_cb(uv_poll_t *handle, int status, int events) {
  ipx_instance *inst = handle->data;
  if (status < 0) {
    /* POLLERR (libuv stopped the handle): an ICMP error on the shared
     * socket. Read it off (recvmsg returns and clears it) and go on. */
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(inst->fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err)
      hwsock_backend_logf(inst->host, HWSOCK_LOG_DEBUG, "ipx: socket error: %s",
                          strerror(err));
    inst->events = 0;
    read_packets(inst);
    drain(inst);
    return;
  }
  if (events & UV_READABLE)
    read_packets(inst);
  if (events & UV_WRITABLE)
    drain(inst);
}

/* ---- requests ---------------------------------------------------------- */

/* Our own address, or a part of it left 0, is the only one to bind. */
static int do_bind(ipx_sock *s, const hwsock_addr *a) {
  const ipx_config *c = &s->inst->cfg;
  static const uint8_t zero_node[6];
  if (a == NULL || a->family != HWSOCK_AF_IPX)
    return HWSOCK_EINVAL;
  if ((memcmp(a->u.ipx.net, zero_net, 4) != 0 &&
       memcmp(a->u.ipx.net, c->net, 4) != 0) ||
      (memcmp(a->u.ipx.node, zero_node, 6) != 0 &&
       memcmp(a->u.ipx.node, c->node, 6) != 0))
    return HWSOCK_EADDRNOTAVAIL;
  if (s->port != 0)
    return HWSOCK_EINVAL; /* bound already, as bind(2) says */
  return bind_port(s, a->port);
}

/* A destination must be reachable: a peer, the broadcast node or us. */
static int check_dest(const ipx_sock *s, const hwsock_addr *a) {
  if (a == NULL || a->family != HWSOCK_AF_IPX || a->port == 0)
    return HWSOCK_EINVAL;
  if (is_bcast(a->u.ipx.node) || memcmp(a->u.ipx.node, s->inst->cfg.node,
                                        6) == 0 ||
      find_peer(s->inst, a->u.ipx.node) != NULL)
    return 0;
  return HWSOCK_EHOSTUNREACH;
}

/* Like Linux IPX: sending, receiving or connecting binds an unbound socket
 * to an ephemeral number first. */
static int autobind(ipx_sock *s) {
  return s->port != 0 ? 0 : bind_port(s, 0);
}

static int send_check(ipx_sock *s, const hwsock_breq *req) {
  if (req->addr == NULL && !s->connected)
    return HWSOCK_ENOTCONN;
  if (req->iov_len > IPX_MAX_PAYLOAD)
    return HWSOCK_EMSGSIZE;
  int rc = check_dest(s, send_dest(s, req));
  return rc < 0 ? rc : autobind(s);
}

/* The socket's own address: this guest's network and node, its number. */
static void local_addr(const ipx_sock *s, hwsock_addr *a) {
  memset(a, 0, sizeof(*a));
  a->scheme = HWSOCK_SCHEME_IPX;
  a->family = HWSOCK_AF_IPX;
  a->port = s->port;
  memcpy(a->u.ipx.net, s->inst->cfg.net, 4);
  memcpy(a->u.ipx.node, s->inst->cfg.node, 6);
}

static void do_getname(ipx_sock *s, hwsock_breq *req, int *rc) {
  if (req->arg0 == 1) {
    if (!s->connected) {
      *rc = HWSOCK_ENOTCONN;
      return;
    }
    req->peer = s->dest;
  } else {
    local_addr(s, &req->peer);
  }
  req->has_peer = 1;
  *rc = 0;
}

static void ipx_submit(void *sock, hwsock_breq *req) {
  ipx_sock *s = sock;
  ipx_instance *inst = s->inst;
  int rc = 0;
  hwsock_breq_reset(req);
  if (s->closed) {
    inst->host->complete(req, HWSOCK_ECANCELED, 0);
    return;
  }
  switch (req->opcode) {
  case HWSOCK_OP_BIND:
    rc = do_bind(s, req->addr);
    break;
  case HWSOCK_OP_CONNECT:
    rc = check_dest(s, req->addr);
    if (rc == 0)
      rc = autobind(s);
    if (rc == 0) {
      s->dest = *req->addr;
      s->connected = 1;
    }
    break;
  case HWSOCK_OP_SEND:
    req->backend_priv[2] = s;
    req->backend_priv[3] = (void *)(intptr_t)send_check(s, req);
    hwsock_bq_push(&inst->wq, req);
    drain(inst);
    return;
  case HWSOCK_OP_RECV:
    rc = autobind(s);
    if (rc == 0) {
      hwsock_bq_push(&s->rq, req);
      pump(s);
      return;
    }
    break;
  case HWSOCK_OP_GETNAME:
    do_getname(s, req, &rc);
    break;
  case HWSOCK_OP_GETSOCKOPT:
  case HWSOCK_OP_SETSOCKOPT:
    rc = HWSOCK_ENOPROTOOPT; /* no IPX option is in the allow-list */
    break;
  default: /* LISTEN, ACCEPT, SHUTDOWN: not for IPX datagrams */
    rc = HWSOCK_EOPNOTSUPP;
    break;
  }
  inst->host->complete(req, rc, 0);
}

/* ---- sockets and instances ---------------------------------------------- */

static int ipx_open(void *instance, const hwsock_bopen *params, void **sock) {
  ipx_instance *inst = instance;
  if (params->scheme != HWSOCK_SCHEME_IPX)
    return HWSOCK_EPROTONOSUPPORT;
  ipx_sock *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return HWSOCK_ENOMEM;
  s->inst = inst;
  inst->nsocks++;
  *sock = s;
  return 0;
}

static void ipx_close(void *sock) {
  ipx_sock *s = sock;
  ipx_instance *inst = s->inst;
  if (s->closed)
    return;
  s->closed = 1;
  unbind_port(s);
  s->port = 0;
  inst->nsocks--;
  sock_hold(s);
  /* This socket's SENDs leave the shared queue (the others keep order). */
  hwsock_bq keep = {NULL, NULL}, gone = {NULL, NULL};
  hwsock_breq *r;
  while ((r = hwsock_bq_pop(&inst->wq)) != NULL)
    hwsock_bq_push(r->backend_priv[2] == s ? &gone : &keep, r);
  inst->wq = keep;
  while ((r = hwsock_bq_pop(&gone)) != NULL)
    inst->host->complete(r, HWSOCK_ECANCELED, 0);
  while ((r = hwsock_bq_pop(&s->rq)) != NULL)
    inst->host->complete(r, HWSOCK_ECANCELED, 0);
  sock_release(s); /* frees it unless a caller up the stack holds it */
  if (!inst->draining)
    update_poll(inst);
}

static void inst_close_cb(uv_handle_t *handle) { free(handle->data); }

static int blank(const char *s) {
  if (s != NULL)
    for (; *s != '\0'; s++)
      if (*s != ' ' && *s != '\t' && *s != '\n')
        return 0;
  return 1;
}

/* fd=: a duplicate of the VMM's UDP socket, which must be bound where
 * bind= and port= say (the peers send there). 0, or HWSOCK_EBADCONFIG
 * logged. */
static int adopt(ipx_instance *inst) {
  char ep[HWSOCK_URI_MAX + 1];
  struct sockaddr_storage got;
  socklen_t gl = sizeof(got);
  memset(&got, 0, sizeof(got));
  int fd = fcntl(inst->cfg.fd, F_DUPFD_CLOEXEC, 0);
  const char *why = NULL;
  if (fd < 0)
    why = "not an open descriptor";
  else if (hwsock_backend_adopt_fd(fd, SOCK_DGRAM, inst->cfg.bind.ss_family,
                                   IPPROTO_UDP) < 0)
    why = "not a UDP socket of bind's address family";
  else if (getsockname(fd, (struct sockaddr *)&got, &gl) != 0 ||
           !same_endpoint(&got, &inst->cfg.bind))
    why = "not bound to bind:port";
  if (why == NULL) {
    inst->fd = fd;
    return 0;
  }
  if (fd >= 0)
    close(fd);
  endpoint_text(&inst->cfg.bind, ep, sizeof(ep));
  hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR, "ipx: fd=%d: %s (%s)",
                      inst->cfg.fd, why, ep);
  return HWSOCK_EBADCONFIG;
}

static int ipx_create(const hwsock_backend_host *host, void **instance) {
  char err[200];
  if (!hwsock_backend_host_ok(host, 1))
    return HWSOCK_EINVAL;
  ipx_instance *inst = calloc(1, sizeof(*inst));
  if (inst == NULL)
    return HWSOCK_ENOMEM;
  inst->host = host;
  inst->next_ephemeral = IPX_EPHEMERAL_FIRST;
  inst->fd = -1;
  if (blank(host->options)) {
    /* A VMM that loads every module of a folder gives no options: this
     * device then has no IPX network. Say so (HWSOCK_ENETDOWN): the device
     * is served without this backend and does not offer F_IPX, rather than
     * a failing device, a guessed address and UDP port, or an offered
     * scheme whose every socket fails. */
    hwsock_backend_logf(host, HWSOCK_LOG_INFO,
                        "ipx: no options (net=, node=, peer=...): "
                        "IPX is down for this device, F_IPX not offered");
    free(inst);
    return HWSOCK_ENETDOWN;
  }
  int rc = hwsock__ipx_parse_options(host->options, &inst->cfg, err,
                                     sizeof(err));
  if (rc < 0) {
    hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR, "%s", err);
    free(inst);
    return rc;
  }
  if (inst->cfg.fd >= 0) {
    rc = adopt(inst);
    if (rc < 0) {
      free(inst);
      return rc;
    }
  } else if ((inst->fd = socket(inst->cfg.bind.ss_family,
                                SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                IPPROTO_UDP)) < 0) {
    rc = hwsock_err_from_errno(errno);
    free(inst);
    return rc;
  } else if (bind(inst->fd, (struct sockaddr *)&inst->cfg.bind,
                  inst->cfg.bind_len) != 0) {
    char ep[HWSOCK_URI_MAX + 1];
    int e = errno;
    rc = hwsock_err_from_errno(e);
    endpoint_text(&inst->cfg.bind, ep, sizeof(ep));
    hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR, "ipx: cannot bind %s: %s",
                        ep, strerror(e));
    close(inst->fd);
    free(inst);
    return rc;
  }
  rc = uv_poll_init_socket(host->loop, &inst->poll, inst->fd);
  if (rc < 0) {
    hwsock_backend_logf(inst->host, HWSOCK_LOG_ERROR,
                        "ipx: uv_poll_init_socket: %s", uv_strerror(rc));
    close(inst->fd);
    free(inst);
    return hwsock_err_from_errno(-rc);
  }
  inst->poll.data = inst;
  update_poll(inst);
  if (inst->events == 0) {
    hwsock_uv_close_poll_fd(&inst->poll, &inst->fd, inst_close_cb);
    return HWSOCK_EIO;
  }
  *instance = inst;
  return 0;
}

static void ipx_destroy(void *instance) {
  ipx_instance *inst = instance;
  hwsock_backend_check_closed(inst->host, inst->nsocks);
  hwsock_uv_close_poll_fd(&inst->poll, &inst->fd, inst_close_cb);
}

/* Observability: the IPX names. The shared UDP socket is no fd of this
 * socket's own, so fd stays -1. */
static int ipx_info(void *sock, hwsock_bsock_info *out) {
  ipx_sock *s = sock;
  local_addr(s, &out->local);
  out->has_local = 1;
  if (s->connected) {
    out->peer = s->dest;
    out->has_peer = 1;
  }
  return 0;
}

/* ---- hand-over (backend.h's export_sock, docs/EMBEDDING.md §12) ---------
 * An IPX socket has no host socket of its own: its state is its number and
 * its connection. The shared UDP socket is the instance's; a VMM that hands
 * it over binds it itself and gives it with fd= to both instances. State,
 * EXPORT_LEN bytes: [0] flags, [1] 0, [2..3] socket number, [4..5] the
 * connection's socket number, [6..9] its net, [10..15] its node (numbers
 * little-endian, the rest as in a hwsock_addr). */
#define EXPORT_LEN 16u
#define EXPORT_F_CONNECTED 1u

static int ipx_export(void *sock, hwsock_bexport *out) {
  ipx_sock *s = sock;
  if (s->closed)
    return HWSOCK_ECANCELED;
  if (out->size < offsetof(hwsock_bexport, state) + EXPORT_LEN)
    return HWSOCK_EINVAL;
  /* Settled only: no SEND waits for room (it would be submitted again and
   * its order kept only per direction), at most one RECV. Packets received
   * that the guest has not read live in this instance: they stay behind
   * (a guest quiesced for the hand-over cannot read them; waiting for it
   * would fail every hand-over under traffic). */
  for (const hwsock_breq *r = s->inst->wq.head; r != NULL;
       r = r->backend_priv[0])
    if (r->backend_priv[2] == s)
      return HWSOCK_EAGAIN;
  if (!hwsock_bq_at_most_one(&s->rq))
    return HWSOCK_EAGAIN;
  if (s->pq_len > 0)
    hwsock_backend_logf(s->inst->host, HWSOCK_LOG_DEBUG,
                        "ipx: hand-over: socket %04x: %u packets not read "
                        "stay behind", s->port, s->pq_len);
  uint8_t *st = out->state;
  memset(st, 0, EXPORT_LEN);
  st[0] = s->connected ? EXPORT_F_CONNECTED : 0;
  st[2] = (uint8_t)s->port;
  st[3] = (uint8_t)(s->port >> 8);
  if (s->connected) {
    st[4] = (uint8_t)s->dest.port;
    st[5] = (uint8_t)(s->dest.port >> 8);
    memcpy(st + 6, s->dest.u.ipx.net, 4);
    memcpy(st + 10, s->dest.u.ipx.node, 6);
  }
  out->fd = -1;
  out->state_len = EXPORT_LEN;
  return 0;
}

static int ipx_import(void *instance, const hwsock_bexport *in, void **sock) {
  ipx_instance *inst = instance;
  if (in->size < offsetof(hwsock_bexport, state) + EXPORT_LEN ||
      in->state_len != EXPORT_LEN || in->fd != -1 ||
      in->scheme != HWSOCK_SCHEME_IPX)
    return HWSOCK_EINVAL;
  const uint8_t *st = in->state;
  static const uint8_t zero[10];
  int connected = (st[0] & EXPORT_F_CONNECTED) != 0;
  if ((st[0] & ~EXPORT_F_CONNECTED) != 0 || st[1] != 0 ||
      (!connected && memcmp(st + 4, zero, 2) != 0) ||
      (!connected && memcmp(st + 6, zero, 10) != 0))
    return HWSOCK_EINVAL;
  ipx_sock *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return HWSOCK_ENOMEM;
  s->inst = inst;
  int rc = 0;
  if (connected) {
    s->dest.scheme = HWSOCK_SCHEME_IPX;
    s->dest.family = HWSOCK_AF_IPX;
    s->dest.port = (uint16_t)(st[4] | st[5] << 8);
    memcpy(s->dest.u.ipx.net, st + 6, 4);
    memcpy(s->dest.u.ipx.node, st + 10, 6);
    rc = check_dest(s, &s->dest); /* a peer of this instance */
    s->connected = 1;
  }
  uint16_t port = (uint16_t)(st[2] | st[3] << 8);
  if (rc == 0 && port != 0)
    rc = bind_port(s, port); /* taken: HWSOCK_EADDRINUSE */
  if (rc < 0) {
    free(s);
    return rc;
  }
  inst->nsocks++;
  *sock = s;
  return 0;
}

static const hwsock_backend_ops ipx_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = ipx_create,
    .destroy = ipx_destroy,
    .open = ipx_open,
    .submit = ipx_submit,
    .close = ipx_close,
    .info = ipx_info,
    .export_sock = ipx_export,
    .import_sock = ipx_import,
};

static const char *const ipx_schemes[] = {"ipx", NULL};

static const hwsock_backend_desc ipx_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "ipx",
    .description = "IPX datagrams encapsulated in UDP, RFC 1234 (ipx://)",
    .schemes = ipx_schemes,
    .ops = &ipx_ops,
};

HWSOCK_BACKEND_DEFINE(ipx_desc)
