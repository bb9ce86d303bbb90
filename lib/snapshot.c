/* Snapshot and restore (hwsock/device.h, docs/EMBEDDING.md §11).
 *
 * The blob, all little-endian, version 4:
 *   header   48 bytes  magic "HSNP", version, queues, total length, counts,
 *                      status, features, in-band negotiation done, the
 *                      counters' length
 *   queue    40 bytes  each of num_queues: size, last_avail, used_idx, the
 *                      last signalled used idx, desc/avail/used gpa
 *   socket   16 bytes  each open id, ascending: id, state, scheme, ss,
 *                      flags, receive window, event flags, counts; an
 *                      offloaded socket's statistics (48 bytes: bytes and
 *                      requests each way, created_ns, rule, rule line);
 *                      then the options the guest set (20 bytes each:
 *                      before the decision, then those the backend applied
 *                      after it),
 *                      its local and peer URIs, zero padding to 8 bytes
 *   request  16 bytes  each request in flight: queue, head, socket, tag
 *   counters           the device's counters (hwsock/stats.h): opcode,
 *                      bucket and error slot counts (16 bytes), then each
 *                      counter as 64 bits (put_counters)
 *
 * Older versions restore as they always did: version 3 is version 4
 * without the counters and the sockets' statistics (a restore then counts
 * from zero, as before); version 2 is version 3 without options set after
 * the decision (at most HWSOCK_BPRESET_MAX per socket), and a version 3
 * blob with more options is not taken for one.
 *
 * Restore trusts nothing in it: the lengths must add up exactly, every
 * count is bounded by the restoring device's config, ids are ascending,
 * states, schemes, options and URIs valid, each queue's positions agree
 * with the requests in flight on it (used_idx + in flight == last_avail),
 * heads are unique and in range, and the queue addresses go through
 * hwsock_device_queue_setup() like a driver's. Only the chains of the
 * requests in flight are read from guest memory, through the ring walker
 * (a bad chain is the guest's ring fault, as it would have been at pop
 * time). Listeners, bound stream sockets and datagram sockets get a host
 * socket again on their address (snapshot_sock.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device_int.h"
#include "iov.h"

#define SNAP_MAGIC 0x504e5348u /* "HSNP" */
#define SNAP_VERSION 4u
#define SNAP_VERSION_MIN 2u /* restored too */
#define HDR_LEN 48u
#define Q_LEN 40u
#define S_LEN 16u  /* a socket record's fixed part */
#define O_LEN 20u  /* one option: level, name, len, 8 value bytes */
#define R_LEN 16u
#define ST_LEN 48u /* an offloaded socket's statistics (version 4) */
/* the counters: 16 bytes of counts, the scalars, then per opcode slot its
 * requests, latency sum and histogram, then the error slots */
#define C_SCALARS 15u
#define C_LEN(nops)                                                          \
  (16u + 8u * (C_SCALARS + 2u * (nops) + (nops) * HWSOCK_LAT_BUCKETS +      \
               HWSOCK_STATS_ERR_SLOTS))
/* the longest socket record: every option, two URIs, padding */
#define S_MAX                                                                \
  ((S_LEN + ST_LEN + HWSOCK__SOCKOPTS_MAX * O_LEN + 2u * HWSOCK_URI_MAX +   \
    7u) & ~7u)
/* socket record flags */
#define SF_BOUND 1u
#define SF_STATS 2u /* the statistics follow the fixed part (version 4) */
/* socket record event flags (the event queue, PROTOCOL.md §16) */
#define SE_WANT_ACCEPT 1u
#define SE_WANT_WRITE 2u
#define SE_RDONE 4u
#define SE_RESET 8u /* a reset not yet reported through the event queue */
#define SAVED_STATUS (HWSOCK_STATUS_FEATURES_OK | HWSOCK_STATUS_DRIVER_OK)

typedef struct snap_q {
  uint32_t size;
  uint16_t last_avail, used_idx, signalled_used, signalled_valid;
  uint64_t desc, avail, used;
} snap_q;

typedef struct snap_s {
  uint32_t id, window;
  uint8_t state, scheme, ss, flags, ev, nopt, has_local, has_peer;
  const uint8_t *stats; /* ST_LEN bytes in the blob, or NULL */
  const uint8_t *opt; /* nopt options, in the blob */
  hwsock_addr local, peer;
} snap_s;

typedef struct snap_r {
  uint16_t queue, head;
  uint32_t sock;
  uint64_t tag;
} snap_r;

/* ---- little-endian cursor ------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)v);
  put16(p + 2, (uint16_t)(v >> 16));
}
static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) {
  return get16(p) | (uint32_t)get16(p + 2) << 16;
}
static uint64_t get64(const uint8_t *p) {
  return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- quiesce, save ------------------------------------------------------- */

int hwsock_device_quiesce(hwsock_device *dev, int on) {
  if (dev == NULL)
    return HWSOCK_EINVAL;
  int was = dev->quiesced;
  dev->quiesced = on != 0;
  if (was && !on)
    hwsock_device_flush(dev); /* kicks that came meanwhile */
  return (int)dev->inflight;
}

size_t hwsock_device_save_bound(const hwsock_device *dev) {
  return HDR_LEN + (size_t)dev->cfg.num_queues * Q_LEN +
         (size_t)dev->cfg.max_sockets * S_MAX +
         (size_t)dev->cfg.max_inflight * R_LEN + C_LEN(HWSOCK__OPS);
}

/* ---- the counters ---------------------------------------------------------
 * A takeover or a restore continues the saved device's figures: monotonic
 * counters must not go back (a scraper takes a drop for a reset). They are
 * written by name, not as the private struct, so that a library with more
 * opcodes reads an older blob (and one with fewer drops the slots it does
 * not know). */

static const size_t c_scalar[C_SCALARS] = {
    offsetof(hwsock__counters, kicks),
    offsetof(hwsock__counters, requests),
    offsetof(hwsock__counters, completions),
    offsetof(hwsock__counters, errors),
    offsetof(hwsock__counters, bad_requests),
    offsetof(hwsock__counters, verdicts[0]),
    offsetof(hwsock__counters, verdicts[1]),
    offsetof(hwsock__counters, verdicts[2]),
    offsetof(hwsock__counters, needs_reset),
    offsetof(hwsock__counters, resets),
    offsetof(hwsock__counters, bytes_out),
    offsetof(hwsock__counters, bytes_in),
    offsetof(hwsock__counters, notifies),
    offsetof(hwsock__counters, notifies_suppressed),
    offsetof(hwsock__counters, ev_no_buffer),
};
/* A counter added to hwsock__counters must be saved too: */
_Static_assert(sizeof(hwsock__counters) == C_LEN(HWSOCK__OPS) - 16u,
               "every counter is in the blob");

static uint64_t *c_at(hwsock__counters *c, size_t off) {
  return (uint64_t *)(void *)((char *)c + off);
}

static uint64_t c_get(const hwsock__counters *c, size_t off) {
  uint64_t v;
  memcpy(&v, (const char *)c + off, sizeof(v));
  return v;
}

static void put_counters(uint8_t *p, const hwsock__counters *c) {
  put32(p, HWSOCK__OPS);
  put32(p + 4, HWSOCK_LAT_BUCKETS);
  put32(p + 8, HWSOCK_STATS_ERR_SLOTS);
  p += 16;
  for (unsigned i = 0; i < C_SCALARS; i++, p += 8)
    put64(p, c_get(c, c_scalar[i]));
  for (unsigned op = 0; op < HWSOCK__OPS; op++, p += 16) {
    put64(p, c->requests_by_op[op]);
    put64(p + 8, c->latency_sum_ns[op]);
  }
  for (unsigned op = 0; op < HWSOCK__OPS; op++)
    for (unsigned b = 0; b < HWSOCK_LAT_BUCKETS; b++, p += 8)
      put64(p, c->latency[op][b]);
  for (unsigned i = 0; i < HWSOCK_STATS_ERR_SLOTS; i++, p += 8)
    put64(p, c->errors_by_slot[i]);
}

/* The opcode slots of the counters section at p, len bytes long, or 0
 * when it is not one. */
static unsigned counters_ops(const uint8_t *p, size_t len) {
  if (len < 16)
    return 0;
  uint32_t nops = get32(p);
  if (nops == 0 || nops > HWSOCK_STATS_OPS ||
      get32(p + 4) != HWSOCK_LAT_BUCKETS ||
      get32(p + 8) != HWSOCK_STATS_ERR_SLOTS || get32(p + 12) != 0 ||
      len != C_LEN(nops))
    return 0;
  return nops;
}

/* Adds the saved counters (checked by counters_ops) to the device's: a
 * fresh device continues the saved figures, one that counted before does
 * not go back. Opcode slots this library does not know are dropped. */
static void add_counters(hwsock_device *dev, const uint8_t *p) {
  hwsock__counters *c = &dev->counters;
  unsigned nops = get32(p);
  p += 16;
  for (unsigned i = 0; i < C_SCALARS; i++, p += 8)
    *c_at(c, c_scalar[i]) += get64(p);
  for (unsigned op = 0; op < nops; op++, p += 16)
    if (op < HWSOCK__OPS) {
      c->requests_by_op[op] += get64(p);
      c->latency_sum_ns[op] += get64(p + 8);
    }
  for (unsigned op = 0; op < nops; op++)
    for (unsigned b = 0; b < HWSOCK_LAT_BUCKETS; b++, p += 8)
      if (op < HWSOCK__OPS)
        c->latency[op][b] += get64(p);
  for (unsigned i = 0; i < HWSOCK_STATS_ERR_SLOTS; i++, p += 8)
    c->errors_by_slot[i] += get64(p);
}

static int saved_state(const hwsock__sock *s) {
  switch (s->state) {
  case HWSOCK__S_OPEN:
  case HWSOCK__S_OFFLOADED:
  case HWSOCK__S_DECLINED:
  case HWSOCK__S_RESERVED:
  case HWSOCK__S_RESET:
    return 1;
  default:
    return 0;
  }
}

/* What restore may need to give an offloaded socket a host socket again:
 * its local address (and a connected datagram socket's peer), asked of
 * the backend. A socket without them comes back reset. */
typedef struct sock_addrs {
  char local[HWSOCK_URI_MAX + 1], peer[HWSOCK_URI_MAX + 1];
  size_t ll, pl;
} sock_addrs;

static int recreatable(const hwsock__sock *s) {
  if (hwsock_scheme_socktype(s->scheme) == HWSOCK_SOCK_DGRAM)
    return s->ss == HWSOCK_SS_UNCONN || s->ss == HWSOCK_SS_ESTAB;
  return s->ss == HWSOCK_SS_LISTEN || s->ss == HWSOCK_SS_UNCONN;
}

/* A URI the device itself would take (max_uri_len), else 0: a restore
 * into a device of the same config never refuses the blob for it. */
static size_t uri_of(const hwsock_device *dev, const hwsock_addr *a,
                     char *buf) {
  int n = hwsock_uri_format(a, buf, HWSOCK_URI_MAX + 1);
  return n > 0 && (unsigned)n <= dev->cfg.max_uri_len ? (size_t)n : 0;
}

static void addrs_of(const hwsock_device *dev, const hwsock__sock *s,
                     sock_addrs *a) {
  a->ll = a->pl = 0;
  hwsock_bsock_info bi;
  if (s->state != HWSOCK__S_OFFLOADED || s->backend < 0 || !recreatable(s) ||
      hwsock__sock_info(dev, s, &bi) < 0 || !bi.has_local ||
      bi.local.scheme != s->scheme)
    return;
  if (s->ss == HWSOCK_SS_ESTAB) { /* a connected datagram socket */
    if (!bi.has_peer || bi.peer.scheme != s->scheme || bi.peer.port == 0 ||
        (a->pl = uri_of(dev, &bi.peer, a->peer)) == 0)
      return;
  }
  if ((a->ll = uri_of(dev, &bi.local, a->local)) == 0)
    a->pl = 0;
}

static size_t rec_len(const hwsock__sock *s, const sock_addrs *a) {
  size_t n = S_LEN + (s->state == HWSOCK__S_OFFLOADED ? ST_LEN : 0) +
             (s->preset ? s->preset->n : 0) * O_LEN + a->ll + a->pl;
  return (n + 7u) & ~(size_t)7u;
}

static uint8_t ev_to_blob(uint16_t ev) {
  return (uint8_t)(((ev & HWSOCK__EV_WANT_ACCEPT) ? SE_WANT_ACCEPT : 0) |
                   ((ev & HWSOCK__EV_WANT_WRITE) ? SE_WANT_WRITE : 0) |
                   ((ev & HWSOCK__EV_RDONE) ? SE_RDONE : 0) |
                   ((ev & HWSOCK__EV_PEND_RESET) ? SE_RESET : 0));
}

static uint16_t ev_from_blob(uint8_t ev) {
  return (uint16_t)(((ev & SE_WANT_ACCEPT) ? HWSOCK__EV_WANT_ACCEPT : 0) |
                    ((ev & SE_WANT_WRITE) ? HWSOCK__EV_WANT_WRITE : 0) |
                    ((ev & SE_RDONE) ? HWSOCK__EV_RDONE : 0) |
                    ((ev & SE_RESET) ? HWSOCK__EV_PEND_RESET : 0));
}

static uint8_t *put_sock(uint8_t *p, uint32_t id, const hwsock__sock *s,
                         const sock_addrs *a) {
  size_t n = rec_len(s, a);
  uint32_t nopt = s->preset ? s->preset->n : 0;
  memset(p, 0, n);
  put32(p, id);
  p[4] = s->state;
  if (s->state == HWSOCK__S_RESERVED)
    return p + n; /* a bare id: see parse_sock */
  int offl = s->state == HWSOCK__S_OFFLOADED;
  p[5] = s->scheme;
  p[6] = offl ? s->ss : 0;
  p[7] = (uint8_t)((s->bound ? SF_BOUND : 0) | (offl ? SF_STATS : 0));
  put32(p + 8, s->window);
  p[12] = ev_to_blob(s->ev);
  p[13] = (uint8_t)nopt;
  p[14] = (uint8_t)a->ll;
  p[15] = (uint8_t)a->pl;
  uint8_t *q = p + S_LEN;
  if (offl) {
    put64(q, s->bytes_out);
    put64(q + 8, s->bytes_in);
    put64(q + 16, s->reqs_out);
    put64(q + 24, s->reqs_in);
    put64(q + 32, s->created_ns);
    put32(q + 40, (uint32_t)s->rule);
    put32(q + 44, (uint32_t)s->rule_line);
    q += ST_LEN;
  }
  for (uint32_t i = 0; i < nopt; i++, q += O_LEN) {
    const hwsock_bsockopt *o = &s->preset->opt[i];
    put32(q, o->level);
    put32(q + 4, o->name);
    put32(q + 8, o->len);
    memcpy(q + 12, o->val, 8);
  }
  memcpy(q, a->local, a->ll);
  memcpy(q + a->ll, a->peer, a->pl);
  return p + n;
}

int hwsock_device_save(hwsock_device *dev, void *buf, size_t len,
                       size_t *out_len) {
  if (dev == NULL || buf == NULL || out_len == NULL)
    return HWSOCK_EINVAL;
  if (!dev->quiesced)
    return HWSOCK_EBUSY;
  if (dev->broken)
    return HWSOCK_ENEEDSRESET;
  uint32_t ns = 0, nr = 0;
  size_t slen = 0;
  sock_addrs a;
  for (unsigned i = 0; i < dev->cfg.max_sockets; i++) {
    const hwsock__sock *s = &dev->socks[i];
    if (!saved_state(s))
      continue;
    ns++;
    addrs_of(dev, s, &a);
    slen += rec_len(s, &a);
  }
  for (unsigned i = 0; i < dev->cfg.max_inflight; i++)
    nr += dev->reqs[i].in_use;
  size_t clen = C_LEN(HWSOCK__OPS);
  size_t total = HDR_LEN + (size_t)dev->cfg.num_queues * Q_LEN + slen +
                 (size_t)nr * R_LEN + clen;
  if (len < total)
    return HWSOCK_ENOSPC;
  uint8_t *p = buf;
  /* the sockets' end */
  const uint8_t *end = p + total - (size_t)nr * R_LEN - clen;
  memset(p, 0, total);
  put32(p, SNAP_MAGIC);
  put16(p + 4, SNAP_VERSION);
  put16(p + 6, (uint16_t)dev->cfg.num_queues);
  put32(p + 8, (uint32_t)total);
  put32(p + 12, ns);
  put32(p + 16, nr);
  put32(p + 20, dev->status & SAVED_STATUS);
  put64(p + 24, dev->features);
  put32(p + 32, dev->negotiated ? 1 : 0);
  put32(p + 36, dev->cfg.max_sockets);
  put32(p + 40, (uint32_t)clen);
  p += HDR_LEN;
  for (unsigned q = 0; q < dev->cfg.num_queues; q++, p += Q_LEN) {
    const hwsock__vq *vq = &dev->vq[q];
    put32(p, vq->size);
    put16(p + 4, vq->last_avail);
    put16(p + 6, vq->used_idx);
    put16(p + 8, vq->signalled_used);
    put16(p + 10, vq->signalled_used_valid ? 1 : 0);
    put64(p + 16, vq->desc_gpa);
    put64(p + 24, vq->avail_gpa);
    put64(p + 32, vq->used_gpa);
  }
  for (unsigned i = 0; i < dev->cfg.max_sockets; i++) {
    const hwsock__sock *s = &dev->socks[i];
    if (!saved_state(s))
      continue;
    addrs_of(dev, s, &a); /* as above: nothing ran in between */
    if (rec_len(s, &a) > (size_t)(end - p))
      return HWSOCK_EIO; /* the backend answered differently: no overrun */
    p = put_sock(p, i, s, &a);
  }
  for (unsigned i = 0; i < dev->cfg.max_inflight; i++) {
    const hwsock__req *r = &dev->reqs[i];
    if (!r->in_use)
      continue;
    put16(p, r->queue);
    put16(p + 2, r->head);
    put32(p + 4, r->sock_id);
    put64(p + 8, r->tag);
    p += R_LEN;
  }
  put_counters(p, &dev->counters);
  *out_len = total;
  return 0;
}

/* ---- restore ------------------------------------------------------------- */

typedef struct snap {
  uint32_t status, negotiated, ns, nr;
  const uint8_t *counters; /* the blob's (version 4), or NULL */
  uint64_t features;
  snap_q q[HWSOCK_MAX_QUEUES];
  snap_s *s;
  snap_r *r;
} snap;

/* One socket record at p (room bytes left for the records): its length,
 * or a negative HWSOCK_E*. */
static int parse_sock(const hwsock_device *dev, const uint8_t *p, size_t room,
                      unsigned version, int evq, const snap_s *prev,
                      snap_s *x) {
  if (room < S_LEN)
    return HWSOCK_EBADMSG;
  x->id = get32(p);
  x->state = p[4];
  x->scheme = p[5];
  x->ss = p[6];
  x->flags = p[7];
  x->window = get32(p + 8);
  x->ev = p[12];
  x->nopt = p[13];
  size_t ll = p[14], pl = p[15];
  if (prev != NULL && x->id <= prev->id)
    return HWSOCK_EBADMSG;
  if (x->id >= dev->cfg.max_sockets)
    return HWSOCK_EINVAL;
  /* a pending ACCEPT's target is a bare id: its scheme comes with the
   * connection */
  int reserved = x->state == HWSOCK__S_RESERVED;
  /* the statistics: an offloaded socket's, from version 4 on */
  unsigned flags_ok =
      SF_BOUND |
      (version >= 4 && x->state == HWSOCK__S_OFFLOADED ? SF_STATS : 0u);
  if (x->state < HWSOCK__S_OPEN || x->state > HWSOCK__S_RESET ||
      (reserved ? (x->scheme | x->flags | x->window | x->ev | x->nopt) != 0
                : x->scheme < HWSOCK_SCHEME_TCP ||
                      x->scheme > HWSOCK_SCHEME_IPX) ||
      x->ss > HWSOCK_SS_DENIED ||
      (x->state != HWSOCK__S_OFFLOADED && x->ss != 0) ||
      (x->flags & ~flags_ok) != 0 ||
      (x->ev & ~(SE_WANT_ACCEPT | SE_WANT_WRITE | SE_RDONE | SE_RESET)) ||
      x->window > HWSOCK_CREDIT_MAX || (!evq && (x->window | x->ev) != 0))
    return HWSOCK_EBADMSG;
  /* Options set after the decision (version 3) only on a socket that had
   * a host socket (not a denied one): one that is undecided after restore
   * gives its options to open(), which takes HWSOCK_BPRESET_MAX. */
  int after = version >= 3 && x->state == HWSOCK__S_OFFLOADED &&
              x->ss != HWSOCK_SS_DENIED;
  if (x->nopt > (after ? HWSOCK__SOCKOPTS_MAX : HWSOCK_BPRESET_MAX))
    return HWSOCK_EBADMSG;
  /* addresses: an offloaded socket's own; a peer only with a local one,
   * and only on a datagram socket */
  if ((ll | pl) != 0 && x->state != HWSOCK__S_OFFLOADED)
    return HWSOCK_EBADMSG;
  if (pl != 0 && (ll == 0 || hwsock_scheme_socktype(x->scheme) !=
                                 HWSOCK_SOCK_DGRAM))
    return HWSOCK_EBADMSG;
  size_t st = (x->flags & SF_STATS) ? ST_LEN : 0;
  size_t n = S_LEN + st + (size_t)x->nopt * O_LEN + ll + pl;
  size_t padded = (n + 7u) & ~(size_t)7u;
  if (padded > room)
    return HWSOCK_EBADMSG;
  for (size_t i = n; i < padded; i++)
    if (p[i] != 0)
      return HWSOCK_EBADMSG;
  /* a rule index and line, or -1 (the default, unknown) */
  x->stats = st ? p + S_LEN : NULL;
  if (st && ((int32_t)get32(p + S_LEN + 40) < -1 ||
             (int32_t)get32(p + S_LEN + 44) < -1))
    return HWSOCK_EBADMSG;
  /* the options as SETSOCKOPT would have taken them (dispatch.c) */
  x->opt = p + S_LEN + st;
  for (unsigned i = 0; i < x->nopt; i++) {
    const uint8_t *o = x->opt + i * O_LEN;
    uint32_t level = get32(o), name = get32(o + 4), len = get32(o + 8);
    if (!hwsock__sockopt_allowed(level, name, 1) ||
        len != hwsock__sockopt_len(level, name) ||
        (level == HWSOCK_SOL_IPV6 &&
         hwsock_scheme_family(x->scheme) != HWSOCK_AF_INET6))
      return HWSOCK_EBADMSG;
    for (unsigned k = 0; k < i; k++) /* one entry per option */
      if (get32(x->opt + k * O_LEN) == level &&
          get32(x->opt + k * O_LEN + 4) == name)
        return HWSOCK_EBADMSG;
  }
  const char *u = (const char *)x->opt + (size_t)x->nopt * O_LEN;
  x->has_local = ll != 0;
  x->has_peer = pl != 0;
  if (ll > dev->cfg.max_uri_len || pl > dev->cfg.max_uri_len)
    return HWSOCK_EINVAL;
  if ((ll != 0 && (hwsock_uri_parse(u, ll, HWSOCK_URI_ALLOW_PORT0, &x->local,
                                    NULL) < 0 ||
                   x->local.scheme != x->scheme)) ||
      (pl != 0 && (hwsock_uri_parse(u + ll, pl, 0, &x->peer, NULL) < 0 ||
                   x->peer.scheme != x->scheme)))
    return HWSOCK_EBADMSG;
  return (int)padded;
}

/* Parses and checks the blob against dev without changing dev. */
static int parse(const hwsock_device *dev, const uint8_t *p, size_t len,
                 snap *sn) {
  unsigned version = len < HDR_LEN ? 0 : get16(p + 4);
  if (len < HDR_LEN || get32(p) != SNAP_MAGIC || version < SNAP_VERSION_MIN ||
      version > SNAP_VERSION)
    return HWSOCK_EBADMSG;
  unsigned nq = get16(p + 6);
  sn->ns = get32(p + 12);
  sn->nr = get32(p + 16);
  sn->status = get32(p + 20);
  sn->features = get64(p + 24);
  sn->negotiated = get32(p + 32);
  /* the counters' length: version 4 has them, older versions 0 */
  uint32_t clen = version >= 4 ? get32(p + 40) : 0;
  if (get32(p + 8) != len || (version < 4 && get32(p + 40) != 0) ||
      get32(p + 44) != 0 || (version >= 4 && clen == 0))
    return HWSOCK_EBADMSG;
  /* 64-bit sums of 32-bit counts: no overflow. The socket records fill
   * what the fixed parts leave, each at least S_LEN. */
  uint64_t fixed = (uint64_t)HDR_LEN + (uint64_t)nq * Q_LEN +
                   (uint64_t)sn->nr * R_LEN + clen;
  if (fixed + (uint64_t)sn->ns * S_LEN > len)
    return HWSOCK_EBADMSG;
  if (clen != 0) {
    sn->counters = p + len - clen;
    if (counters_ops(sn->counters, clen) == 0)
      return HWSOCK_EBADMSG;
  }
  size_t slen = len - (size_t)fixed;
  if (nq != dev->cfg.num_queues || sn->ns > dev->cfg.max_sockets ||
      sn->nr > dev->cfg.max_inflight)
    return HWSOCK_EINVAL;
  if ((sn->status & ~SAVED_STATUS) != 0 || sn->negotiated > 1 ||
      (sn->negotiated && !dev->cfg.inband_negotiation))
    return HWSOCK_EBADMSG;
  int fok = (sn->status & HWSOCK_STATUS_FEATURES_OK) != 0;
  int dok = (sn->status & HWSOCK_STATUS_DRIVER_OK) != 0;
  if (dok && !fok)
    return HWSOCK_EBADMSG;
  if (!fok && sn->features != 0)
    return HWSOCK_EBADMSG;
  if (sn->features & ~hwsock__device_features(dev))
    return HWSOCK_EINVAL; /* e.g. the event queue on a device of one queue */
  int evq = (sn->features & HWSOCK_F_EVENT_QUEUE) != 0;
  p += HDR_LEN;
  for (unsigned q = 0; q < nq; q++, p += Q_LEN) {
    snap_q *x = &sn->q[q];
    x->size = get32(p);
    x->last_avail = get16(p + 4);
    x->used_idx = get16(p + 6);
    x->signalled_used = get16(p + 8);
    x->signalled_valid = get16(p + 10);
    x->desc = get64(p + 16);
    x->avail = get64(p + 24);
    x->used = get64(p + 32);
    if (get32(p + 12) != 0 || x->signalled_valid > 1)
      return HWSOCK_EBADMSG;
    if (x->size == 0 ? (x->last_avail | x->used_idx | x->signalled_used |
                        x->signalled_valid | x->desc | x->avail | x->used) != 0
                     : !fok)
      return HWSOCK_EBADMSG;
    if (dok && x->size == 0)
      return HWSOCK_EBADMSG; /* started with a queue missing */
    if (x->size > dev->cfg.max_queue_size)
      return HWSOCK_EINVAL;
  }
  const uint8_t *send = p + slen;
  for (uint32_t i = 0; i < sn->ns; i++) {
    int rc = parse_sock(dev, p, (size_t)(send - p), version, evq,
                        i > 0 ? &sn->s[i - 1] : NULL, &sn->s[i]);
    if (rc <= 0)
      return rc < 0 ? rc : HWSOCK_EBADMSG;
    p += rc;
  }
  if (p != send)
    return HWSOCK_EBADMSG;
  if (sn->nr > 0 && !dok)
    return HWSOCK_EBADMSG;
  unsigned per_q[HWSOCK_MAX_QUEUES] = {0};
  for (uint32_t i = 0; i < sn->nr; i++, p += R_LEN) {
    snap_r *x = &sn->r[i];
    x->queue = get16(p);
    x->head = get16(p + 2);
    x->sock = get32(p + 4);
    x->tag = get64(p + 8);
    if (x->queue >= nq || x->head >= sn->q[x->queue].size)
      return HWSOCK_EBADMSG;
    for (uint32_t j = 0; j < i; j++) /* nr <= max_inflight: bounded */
      if (sn->r[j].queue == x->queue && sn->r[j].head == x->head)
        return HWSOCK_EBADMSG;
    per_q[x->queue]++;
  }
  /* every request taken and not completed is one in flight */
  for (unsigned q = 0; q < nq; q++)
    if ((uint16_t)(sn->q[q].last_avail - sn->q[q].used_idx) != per_q[q])
      return HWSOCK_EBADMSG;
  return 0;
}

/* Request x again in a free request, its chain walked from the saved head
 * (NULL: the ring is broken, and the device says so). */
static hwsock__req *take_saved(hwsock_device *dev, const snap_r *x) {
  hwsock__req *req = dev->free_reqs; /* nr <= max_inflight: never NULL */
  hwsock__vq *vq = &dev->vq[x->queue];
  const char *why = NULL;
  if (hwsock__vq_walk(vq, x->head, &req->chain, req->iov,
                      dev->cfg.max_chain_segs + dev->cfg.max_regions,
                      &why) < 0) {
    hwsock__set_broken(dev, x->queue, why ? why : "bad ring");
    return NULL;
  }
  dev->free_reqs = req->next_free;
  dev->inflight++;
  req->in_use = 1;
  req->queue = x->queue;
  req->head = x->head;
  req->sock_id = x->sock;
  req->tag = x->tag;
  return req;
}

/* Completes req with ECONNRESET, as dispatch's finish(). */
static void fail_request(hwsock_device *dev, hwsock__req *req) {
  hwsock_resp_hdr resp;
  memset(&resp, 0, sizeof(resp));
  hwsock_le64_set(&resp.tag, req->tag);
  hwsock_le32_set(&resp.status, (uint32_t)-HWSOCK_ECONNRESET);
  hwsock__iov_scatter(req->iov + req->chain.n_out, req->chain.n_in, 0, &resp,
                      sizeof(resp));
  dev->counters.completions++;
  dev->counters.errors++;
  hwsock__req_push(dev, req, (uint32_t)sizeof(resp));
}

/* A request that was in flight: an event buffer goes back empty (used len
 * 0, PROTOCOL.md §16.2: its read is gone with the old host socket); a
 * request of a socket that got a host socket again is dispatched again
 * (read from guest memory and checked as if just taken: it had not
 * completed, so to the guest it is still pending); any other fails with
 * ECONNRESET. In a hand-over (handover.c) the requests are held. */
static void restore_request(hwsock_device *dev, const snap *sn,
                            const snap_r *x, const uint8_t *recreated) {
  hwsock__req *req = take_saved(dev, x);
  if (req == NULL)
    return;
  if ((int)x->queue == hwsock__evq_index(dev)) {
    req->event = 1;
    hwsock__req_push(dev, req, 0);
    return;
  }
  if (dev->held)
    return; /* a hand-over: submitted again by hwsock_device_resume_held */
  if (x->sock < dev->cfg.max_sockets && recreated[x->sock] &&
      dev->socks[x->sock].state == HWSOCK__S_OFFLOADED) {
    req->t0_ns = hwsock__now_ns(CLOCK_MONOTONIC);
    req->again = sn->counters != NULL; /* counted by the saved device */
    dev->counters.requests += !req->again;
    hwsock__dispatch(dev, req);
    return;
  }
  fail_request(dev, req);
}

/* A listener, a bound stream socket or a datagram socket of the blob gets
 * a host socket again; 0, or why not. */
static int recreate(hwsock_device *dev, const snap_s *x) {
  if (!x->has_local)
    return HWSOCK_EOPNOTSUPP; /* its address is not known */
  int dgram = hwsock_scheme_socktype(x->scheme) == HWSOCK_SOCK_DGRAM;
  int listener = !dgram && x->ss == HWSOCK_SS_LISTEN;
  if (dgram ? x->ss != HWSOCK_SS_UNCONN && x->ss != HWSOCK_SS_ESTAB
            : x->ss != HWSOCK_SS_LISTEN && x->ss != HWSOCK_SS_UNCONN)
    return HWSOCK_EOPNOTSUPP; /* a connection: its state stayed behind */
  if (dgram && (x->ss == HWSOCK_SS_ESTAB) != x->has_peer)
    return HWSOCK_EOPNOTSUPP;
  return hwsock__snap_recreate(dev, x->id, &x->local,
                               x->has_peer ? &x->peer : NULL, listener);
}

/* The socket table of the blob into dev: *recreated[id] for the sockets
 * that got a host socket again. The count of sockets reset, or
 * HWSOCK_ENOMEM. */
static int restore_socks(hwsock_device *dev, const snap *sn,
                         uint8_t *recreated) {
  int reset = 0;
  int evq = hwsock__evq_index(dev) >= 0;
  for (uint32_t i = 0; i < sn->ns; i++) {
    const snap_s *x = &sn->s[i];
    hwsock__sock *s = &dev->socks[x->id];
    hwsock__sock_seen(dev, x->id);
    if (x->state == HWSOCK__S_RESERVED)
      continue; /* its ACCEPT is in flight: dispatched again or failed */
    s->scheme = x->scheme;
    s->backend = -1;
    s->rule = -1;
    s->rule_line = -1;
    s->bound = (x->flags & SF_BOUND) != 0;
    s->window = x->window;
    s->ev = ev_from_blob(x->ev);
    if (x->stats != NULL) { /* the socket table's figures go on */
      s->bytes_out = get64(x->stats);
      s->bytes_in = get64(x->stats + 8);
      s->reqs_out = get64(x->stats + 16);
      s->reqs_in = get64(x->stats + 24);
      /* a hand-over keeps the old process's decision (handover.c); a
       * re-created socket is decided again (snapshot_sock.c) */
      s->created_ns = get64(x->stats + 32);
      s->rule = (int32_t)get32(x->stats + 40);
      s->rule_line = (int32_t)get32(x->stats + 44);
    }
    if (x->nopt > 0) {
      if ((s->preset = calloc(1, sizeof(*s->preset))) == NULL)
        return HWSOCK_ENOMEM;
      s->preset->n = x->nopt;
      for (unsigned k = 0; k < x->nopt; k++) {
        const uint8_t *o = x->opt + k * O_LEN;
        hwsock_bsockopt *d = &s->preset->opt[k];
        d->level = get32(o);
        d->name = get32(o + 4);
        d->len = get32(o + 8);
        memcpy(d->val, o + 12, 8);
      }
    }
    s->state = x->state == HWSOCK__S_OFFLOADED ? HWSOCK__S_RESET : x->state;
    if (x->state == HWSOCK__S_OFFLOADED && x->ss == HWSOCK_SS_DENIED) {
      /* the deny backend held nothing: decided again by this device */
      s->state = HWSOCK__S_OPEN;
    } else if (x->state == HWSOCK__S_OFFLOADED && !dev->held) {
      int rc = recreate(dev, x);
      char uri[HWSOCK_URI_MAX + 1];
      if (!x->has_local || hwsock_uri_format(&x->local, uri, sizeof(uri)) < 0)
        strcpy(uri, "?");
      if (rc == 0) {
        recreated[x->id] = 1;
        hwsock__device_log(dev, HWSOCK_LOG_INFO,
                           "restore: socket %u: again on %s", x->id, uri);
      } else {
        s->state = HWSOCK__S_RESET;
        hwsock__device_log(dev, HWSOCK_LOG_INFO,
                           "restore: socket %u (%s): reset: %s", x->id, uri,
                           rc == HWSOCK_EOPNOTSUPP ? "its host socket is gone"
                                                   : hwsock_strerror(rc));
      }
    }
    if (s->state == HWSOCK__S_RESET) {
      reset++;
      if (evq && !dev->held)
        hwsock__evq_report_reset(dev, x->id);
    } else if (evq && s->state == HWSOCK__S_OFFLOADED) {
      hwsock__evq_arm(dev, x->id); /* the credit and watches it had */
    }
  }
  return reset;
}

static int apply(hwsock_device *dev, const snap *sn, uint8_t *recreated) {
  int rc;
  if (sn->status & HWSOCK_STATUS_FEATURES_OK) {
    if ((rc = hwsock_device_set_features(dev, sn->features)) < 0)
      return HWSOCK_EINVAL;
  }
  dev->negotiated = sn->negotiated;
  for (unsigned q = 0; q < dev->cfg.num_queues; q++) {
    const snap_q *x = &sn->q[q];
    if (x->size == 0)
      continue;
    if ((rc = hwsock_device_queue_setup(dev, q, x->size, x->desc, x->avail,
                                        x->used)) < 0)
      return HWSOCK_EINVAL;
    hwsock__vq *vq = &dev->vq[q];
    vq->last_avail = x->last_avail;
    vq->used_idx = x->used_idx;
    vq->signalled_used = x->signalled_used;
    vq->signalled_used_valid = x->signalled_valid;
  }
  if (sn->status & HWSOCK_STATUS_DRIVER_OK) {
    if ((rc = hwsock_device_start(dev)) < 0)
      return HWSOCK_EINVAL;
  }
  int reset = restore_socks(dev, sn, recreated);
  if (reset < 0)
    return reset;
  for (uint32_t i = 0; i < sn->nr && !dev->broken; i++)
    restore_request(dev, sn, &sn->r[i], recreated);
  /* the completions' notifications, the resets the event queue reports */
  hwsock_device_flush(dev);
  return reset;
}

int hwsock_device_restore(hwsock_device *dev, const void *buf, size_t len) {
  if (dev == NULL || (buf == NULL && len > 0))
    return HWSOCK_EINVAL;
  if (dev->status != 0 || dev->inflight != 0)
    return HWSOCK_EBUSY;
  for (unsigned i = 0; i < dev->cfg.max_sockets; i++)
    if (dev->socks[i].state != HWSOCK__S_FREE)
      return HWSOCK_EBUSY;
  snap sn;
  memset(&sn, 0, sizeof(sn));
  sn.s = calloc(dev->cfg.max_sockets ? dev->cfg.max_sockets : 1,
                sizeof(*sn.s));
  sn.r = calloc(dev->cfg.max_inflight ? dev->cfg.max_inflight : 1,
                sizeof(*sn.r));
  uint8_t *recreated = calloc(dev->cfg.max_sockets ? dev->cfg.max_sockets : 1,
                              1);
  int rc = HWSOCK_ENOMEM;
  if (sn.s != NULL && sn.r != NULL && recreated != NULL) {
    rc = len < HDR_LEN ? HWSOCK_EBADMSG : parse(dev, buf, len, &sn);
    if (rc == 0) {
      rc = apply(dev, &sn, recreated);
      if (rc < 0) {
        hwsock_device_reset(dev); /* all or nothing */
      } else if (sn.counters != NULL) {
        add_counters(dev, sn.counters);
        dev->held_counted = dev->held; /* resume_held counts none again */
      } else {
        dev->held_counted = 0;
      }
    }
  }
  free(sn.s);
  free(sn.r);
  free(recreated);
  return rc;
}
