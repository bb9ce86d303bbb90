/* Capture (hwsock/capture.h): synthesizes frames for offloaded flows and
 * writes them with libpcap. Only reached when a device has a capture set.
 * Built as libhwsock-capture (so that libhwsock does not load libpcap): the
 * device reaches this code through dev->capture_hooks. */
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "hwsock/capture.h"
#include "device_int.h"
#include "iov.h"

#define SEG_MAX 16384u      /* payload bytes per synthesized segment */
#define FRAME_MAX (14u + 40u + 20u + 30u + SEG_MAX)
#define IPX_UDP_PORT 213u
#define DEFAULT_MAX_BYTES (64ull << 20)

struct hwsock_capture {
  pcap_t *pcap;
  pcap_dumper_t *dumper;
  uint64_t max_bytes, bytes, written, dropped;
  uint8_t frame[FRAME_MAX];
  uint8_t scratch[30 + SEG_MAX]; /* payload gathered from guest memory */
};

/* The file is created here, not by libpcap: pcap_dump_open() opens with
 * fopen("w"), which follows a symlink planted at the path and truncates
 * whatever it names. O_EXCL refuses any existing name (a symlink included,
 * dangling or not), so the capture never overwrites a file it did not
 * create; 0600 because the frames carry the guests' payloads. */
static FILE *create_file(const char *path, int *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0600);
  if (fd < 0) {
    *err = errno;
    return NULL;
  }
  FILE *f = fdopen(fd, "wb");
  if (f == NULL) {
    *err = errno;
    close(fd);
    unlink(path);
  }
  return f;
}

int hwsock_capture_open(const char *path, uint64_t max_bytes,
                        hwsock_capture **out, char *errbuf, size_t errlen) {
  if (path == NULL || out == NULL || path[0] == '\0')
    return HWSOCK_EINVAL;
  hwsock_capture *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return HWSOCK_ENOMEM;
  c->max_bytes = max_bytes ? max_bytes : DEFAULT_MAX_BYTES;
  c->pcap = pcap_open_dead(DLT_EN10MB, FRAME_MAX);
  if (c->pcap == NULL) {
    if (errbuf != NULL)
      snprintf(errbuf, errlen, "%s: pcap_open_dead failed", path);
    free(c);
    return HWSOCK_ENOMEM;
  }
  int err = 0;
  FILE *f = create_file(path, &err);
  if (f == NULL) {
    if (errbuf != NULL)
      snprintf(errbuf, errlen, "%s: %s%s", path, strerror(err),
               err == EEXIST ? " (a capture never overwrites a file: "
                               "remove it or pick a new name)"
                             : "");
    pcap_close(c->pcap);
    free(c);
    return hwsock_err_from_errno(err);
  }
  c->dumper = pcap_dump_fopen(c->pcap, f);
  if (c->dumper == NULL) {
    if (errbuf != NULL)
      snprintf(errbuf, errlen, "%s: %s", path, pcap_geterr(c->pcap));
    fclose(f);
    unlink(path); /* ours: created above */
    pcap_close(c->pcap);
    free(c);
    return HWSOCK_EIO;
  }
  c->bytes = 24; /* file header */
  *out = c;
  return 0;
}

void hwsock_capture_close(hwsock_capture *c) {
  if (c == NULL)
    return;
  pcap_dump_close(c->dumper);
  pcap_close(c->pcap);
  free(c);
}

void hwsock_capture_counts(const hwsock_capture *c, uint64_t *written,
                           uint64_t *dropped) {
  if (written)
    *written = c->written;
  if (dropped)
    *dropped = c->dropped;
}

static void capture_event(hwsock_device *dev, hwsock__req *req, int status,
                          size_t len);
static void capture_close(hwsock_device *dev, hwsock__sock *s);
static const hwsock__capture_hooks capture_hooks = {capture_event,
                                                    capture_close};

void hwsock_device_set_capture(hwsock_device *dev, hwsock_capture *c) {
  dev->capture_hooks = &capture_hooks;
  /* The per-socket stream state exists only while capturing: an idle
   * socket's device memory stays within its budget (PROTOCOL.md §16). */
  if (c != NULL && dev->capsocks == NULL) {
    dev->capsocks = calloc(dev->cfg.max_sockets, sizeof(*dev->capsocks));
    if (dev->capsocks == NULL) {
      hwsock__device_log(dev, HWSOCK_LOG_ERROR,
                         "capture: out of memory: not capturing");
      c = NULL;
    }
  }
  dev->capture = c;
  if (dev->capsocks != NULL)
    memset(dev->capsocks, 0, dev->cfg.max_sockets * sizeof(*dev->capsocks));
}

static hwsock__capsock *cs_of(hwsock_device *dev, const hwsock__sock *s) {
  return &dev->capsocks[s - dev->socks];
}

/* ---- frame building ------------------------------------------------------ */

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
  for (size_t i = 0; i + 1 < n; i += 2)
    acc += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1)
    acc += (uint32_t)p[n - 1] << 8;
  return acc;
}

static uint16_t fold(uint32_t acc) {
  while (acc >> 16)
    acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)~acc;
}

static void be16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void be32(uint8_t *p, uint32_t v) {
  be16(p, v >> 16);
  be16(p + 2, v);
}

enum { F_FIN = 1, F_SYN = 2, F_RST = 4, F_PSH = 8, F_ACK = 16 };

typedef struct flow {
  const hwsock_addr *src, *dst;
  int tcp;            /* else UDP */
  uint32_t seq, ack;
  uint8_t flags;
} flow;

static void emit(hwsock_capture *c, const flow *f, const uint8_t *payload,
                 size_t plen) {
  uint8_t *fr = c->frame;
  int v6 = f->src->family == HWSOCK_AF_INET6;
  size_t iph = v6 ? 40 : 20, l4 = f->tcp ? 20 : 8;
  size_t total = 14 + iph + l4 + plen;
  if (c->bytes + 16 + total > c->max_bytes) {
    c->dropped++;
    return;
  }
  memset(fr, 0, 14 + iph + l4);
  be16(fr + 12, v6 ? 0x86dd : 0x0800);
  uint8_t *ip = fr + 14, *th = ip + iph;
  const uint8_t *sa = v6 ? f->src->u.v6 : f->src->u.v4;
  const uint8_t *da = v6 ? f->dst->u.v6 : f->dst->u.v4;
  size_t alen = v6 ? 16 : 4;
  if (v6) {
    ip[0] = 0x60;
    be16(ip + 4, (uint32_t)(l4 + plen));
    ip[6] = f->tcp ? 6 : 17;
    ip[7] = 64;
    memcpy(ip + 8, sa, 16);
    memcpy(ip + 24, da, 16);
  } else {
    ip[0] = 0x45;
    be16(ip + 2, (uint32_t)(20 + l4 + plen));
    ip[6] = 0x40; /* DF */
    ip[8] = 64;
    ip[9] = f->tcp ? 6 : 17;
    memcpy(ip + 12, sa, 4);
    memcpy(ip + 16, da, 4);
    be16(ip + 10, fold(sum16(ip, 20, 0)));
  }
  be16(th, f->src->port);
  be16(th + 2, f->dst->port);
  if (f->tcp) {
    be32(th + 4, f->seq);
    be32(th + 8, f->ack);
    th[12] = 5 << 4;
    th[13] = f->flags;
    be16(th + 14, 65535);
  } else {
    be16(th + 4, (uint32_t)(8 + plen));
  }
  if (plen > 0)
    memcpy(th + l4, payload, plen);
  /* Transport checksum over the pseudo header. */
  uint32_t acc = sum16(sa, alen, 0);
  acc = sum16(da, alen, acc);
  acc += (uint32_t)(f->tcp ? 6 : 17) + (uint32_t)(l4 + plen);
  acc = sum16(th, l4 + plen, acc);
  uint16_t ck = fold(acc);
  if (!f->tcp && ck == 0)
    ck = 0xffff;
  be16(th + (f->tcp ? 16 : 6), ck);

  struct pcap_pkthdr h;
  gettimeofday(&h.ts, NULL);
  h.caplen = h.len = (bpf_u_int32)total;
  pcap_dump((u_char *)c->dumper, &h, fr);
  c->bytes += 16 + total;
  c->written++;
}

/* Payload from iovecs, in SEG_MAX pieces. */
static void emit_data(hwsock_capture *c, flow *f, const struct iovec *iov,
                      unsigned n, size_t len, uint32_t *seq) {
  uint8_t *buf = c->scratch;
  for (size_t off = 0; off < len;) {
    size_t k = len - off < SEG_MAX ? len - off : SEG_MAX;
    hwsock__iov_gather(iov, n, off, buf, k);
    f->seq = *seq;
    emit(c, f, buf, k);
    *seq += (uint32_t)k;
    off += k;
  }
}

/* IPX datagram as RFC 1234 IPX-in-UDP between loopback port 213s. */
static void emit_ipx(hwsock_capture *c, const hwsock_addr *src,
                     const hwsock_addr *dst, const struct iovec *iov,
                     unsigned n, size_t len) {
  uint8_t *buf = c->scratch;
  if (len > SEG_MAX)
    len = SEG_MAX;
  be16(buf, 0xffff);
  be16(buf + 2, (uint32_t)(30 + len));
  buf[4] = 0;
  buf[5] = 4;
  memcpy(buf + 6, dst->u.ipx.net, 4);
  memcpy(buf + 10, dst->u.ipx.node, 6);
  be16(buf + 16, dst->port);
  memcpy(buf + 18, src->u.ipx.net, 4);
  memcpy(buf + 22, src->u.ipx.node, 6);
  be16(buf + 28, src->port);
  hwsock__iov_gather(iov, n, 0, buf + 30, len);
  hwsock_addr lo;
  memset(&lo, 0, sizeof(lo));
  lo.family = HWSOCK_AF_INET;
  lo.u.v4[0] = 127;
  lo.u.v4[3] = 1;
  lo.port = IPX_UDP_PORT;
  flow f = {.src = &lo, .dst = &lo};
  emit(c, &f, buf, 30 + len);
}

/* Learns the socket's 5-tuple from the backend; 0 when it is known. */
static int learn(hwsock_device *dev, hwsock__sock *s, const hwsock_addr *peer) {
  hwsock__capsock *cs = cs_of(dev, s);
  if (cs->started)
    return 0;
  hwsock_bsock_info bi;
  if (hwsock__sock_info(dev, s, &bi) < 0 || !bi.has_local)
    return -1;
  cs->local = bi.local;
  if (bi.has_peer)
    cs->remote = bi.peer;
  else if (peer != NULL)
    cs->remote = *peer;
  else if (s->has_remote)
    cs->remote = s->remote;
  else if (hwsock_scheme_socktype(s->scheme) == HWSOCK_SOCK_STREAM)
    return -1;
  cs->started = 1;
  cs->fin_out = cs->fin_in = 0;
  /* Fixed initial sequence numbers: captures of one run compare equal. */
  cs->seq_out = 0x10000000u;
  cs->seq_in = 0x20000000u;
  return 0;
}

static void handshake(hwsock_capture *c, hwsock__capsock *cs, int outbound) {
  const hwsock_addr *a = outbound ? &cs->local : &cs->remote;
  const hwsock_addr *b = outbound ? &cs->remote : &cs->local;
  uint32_t *sa = outbound ? &cs->seq_out : &cs->seq_in;
  uint32_t *sb = outbound ? &cs->seq_in : &cs->seq_out;
  flow f = {.src = a, .dst = b, .tcp = 1, .seq = *sa, .flags = F_SYN};
  emit(c, &f, NULL, 0);
  flow g = {.src = b, .dst = a, .tcp = 1, .seq = *sb, .ack = *sa + 1,
            .flags = F_SYN | F_ACK};
  emit(c, &g, NULL, 0);
  (*sa)++;
  (*sb)++;
  f.seq = *sa;
  f.ack = *sb;
  f.flags = F_ACK;
  emit(c, &f, NULL, 0);
}

static void fin(hwsock_capture *c, hwsock__capsock *cs, int outbound) {
  uint8_t *done = outbound ? &cs->fin_out : &cs->fin_in;
  if (*done)
    return;
  *done = 1;
  flow f = {.src = outbound ? &cs->local : &cs->remote,
            .dst = outbound ? &cs->remote : &cs->local,
            .tcp = 1,
            .seq = outbound ? cs->seq_out : cs->seq_in,
            .ack = outbound ? cs->seq_in : cs->seq_out,
            .flags = F_FIN | F_ACK};
  emit(c, &f, NULL, 0);
  (*(outbound ? &cs->seq_out : &cs->seq_in))++;
}

/* One completed request, per opcode: what the socket's flow shows on the
 * wire. `ev` carries what every opcode needs. */
typedef struct cap_ev {
  hwsock_device *dev;
  hwsock_capture *c;
  hwsock__sock *s;
  hwsock__capsock *cs;
  const hwsock_breq *b;
  size_t len;
  int stream, ipx;
} cap_ev;

/* The handshake once the connection is up, then the identity header, which
 * leads the stream. */
static void on_connect(const cap_ev *e) {
  if (!e->stream || learn(e->dev, e->s, NULL) < 0)
    return;
  hwsock__capsock *cs = e->cs;
  handshake(e->c, cs, 1);
  if (e->b->prefix_len > 0) {
    struct iovec v = {(void *)(uintptr_t)e->b->prefix, e->b->prefix_len};
    flow f = {.src = &cs->local, .dst = &cs->remote, .tcp = 1,
              .ack = cs->seq_in, .flags = F_ACK | F_PSH};
    emit_data(e->c, &f, &v, 1, e->b->prefix_len, &cs->seq_out);
  }
}

/* The accepted socket's handshake, inbound. */
static void on_accept(const cap_ev *e, hwsock__sock *t) {
  if (t->state == HWSOCK__S_OFFLOADED &&
      learn(e->dev, t, e->b->has_peer ? &e->b->peer : NULL) == 0)
    handshake(e->c, cs_of(e->dev, t), 0);
}

/* Outbound data: a stream segment, or a datagram to the request's
 * destination (the connected peer when it has none). */
static void on_send(const cap_ev *e) {
  hwsock__capsock *cs = e->cs;
  const hwsock_breq *b = e->b;
  if (e->len == 0)
    return;
  if (e->stream) {
    if (learn(e->dev, e->s, NULL) < 0)
      return;
    flow f = {.src = &cs->local, .dst = &cs->remote, .tcp = 1,
              .ack = cs->seq_in, .flags = F_ACK | F_PSH};
    emit_data(e->c, &f, b->iov, b->iovcnt, e->len, &cs->seq_out);
    return;
  }
  const hwsock_addr *dst = b->addr;
  if (learn(e->dev, e->s, dst) < 0)
    return;
  if (dst == NULL)
    dst = &cs->remote;
  if (e->ipx) {
    emit_ipx(e->c, &cs->local, dst, b->iov, b->iovcnt, e->len);
  } else if (dst->family == cs->local.family) {
    flow f = {.src = &cs->local, .dst = dst};
    uint32_t seq = 0;
    emit_data(e->c, &f, b->iov, b->iovcnt, e->len, &seq);
  }
}

/* Inbound data: a stream segment (and the peer's FIN at EOF), or a
 * datagram from its source. */
static void on_recv(const cap_ev *e) {
  hwsock__capsock *cs = e->cs;
  const hwsock_breq *b = e->b;
  if (e->stream) {
    if (learn(e->dev, e->s, NULL) < 0)
      return;
    if (e->len > 0) {
      flow f = {.src = &cs->remote, .dst = &cs->local, .tcp = 1,
                .ack = cs->seq_out, .flags = F_ACK | F_PSH};
      emit_data(e->c, &f, b->iov, b->iovcnt, e->len, &cs->seq_in);
    }
    if (b->resp_flags & HWSOCK_RESP_F_EOF)
      fin(e->c, cs, 0);
    return;
  }
  if (e->len == 0 || !b->has_peer || learn(e->dev, e->s, &b->peer) < 0)
    return;
  if (e->ipx) {
    emit_ipx(e->c, &b->peer, &cs->local, b->iov, b->iovcnt, e->len);
  } else if (b->peer.family == cs->local.family) {
    flow f = {.src = &b->peer, .dst = &cs->local};
    uint32_t seq = 0;
    emit_data(e->c, &f, b->iov, b->iovcnt, e->len, &seq);
  }
}

static void capture_event(hwsock_device *dev, hwsock__req *req, int status,
                          size_t len) {
  hwsock__sock *s = &dev->socks[req->sock_id];
  if (status < 0 || s->state != HWSOCK__S_OFFLOADED || s->ss == HWSOCK_SS_DENIED)
    return;
  cap_ev e = {.dev = dev, .c = dev->capture, .s = s, .cs = cs_of(dev, s),
              .b = &req->breq, .len = len,
              .stream = hwsock_scheme_socktype(s->scheme) == HWSOCK_SOCK_STREAM,
              .ipx = s->scheme == HWSOCK_SCHEME_IPX};
  switch (req->opcode) {
  case HWSOCK_OP_CONNECT:
    on_connect(&e);
    return;
  case HWSOCK_OP_ACCEPT:
    on_accept(&e, &dev->socks[req->new_sock]);
    return;
  case HWSOCK_OP_SEND:
    on_send(&e);
    return;
  case HWSOCK_OP_RECV:
    on_recv(&e);
    return;
  case HWSOCK_OP_SHUTDOWN:
    if (e.stream && (e.b->arg0 & HWSOCK_SHUT_WR) && learn(dev, s, NULL) == 0)
      fin(e.c, e.cs, 1);
    return;
  default:
    return;
  }
}

static void capture_close(hwsock_device *dev, hwsock__sock *s) {
  hwsock__capsock *cs = cs_of(dev, s);
  if (cs->started && hwsock_scheme_socktype(s->scheme) == HWSOCK_SOCK_STREAM &&
      s->ss != HWSOCK_SS_LISTEN)
    fin(dev->capture, cs, 1);
}
