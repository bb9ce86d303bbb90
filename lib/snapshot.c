/* Snapshot and restore (hwsock/device.h, docs/EMBEDDING.md §11).
 *
 * The blob, all little-endian, version 1:
 *   header   48 bytes  magic "HSNP", version, queues, total length, counts,
 *                      status, features, in-band negotiation done
 *   queue    40 bytes  each of num_queues: size, last_avail, used_idx, the
 *                      last signalled used idx, desc/avail/used gpa
 *   socket   16 bytes  each open id, ascending: id, state, scheme
 *   request  16 bytes  each request in flight: queue, head, socket, tag
 *
 * Restore trusts nothing in it: the lengths must add up exactly, every
 * count is bounded by the restoring device's config, ids are ascending,
 * states and schemes known, each queue's positions agree with the requests
 * in flight on it (used_idx + in flight == last_avail), heads are unique and
 * in range, and the queue addresses go through hwsock_device_queue_setup()
 * like a driver's. Only the chains of the requests in flight are read from
 * guest memory, through the ring walker (a bad chain is the guest's ring
 * fault, as it would have been at pop time). */
#include <stdlib.h>
#include <string.h>

#include "device_int.h"
#include "iov.h"

#define SNAP_MAGIC 0x504e5348u /* "HSNP" */
#define SNAP_VERSION 1u
#define HDR_LEN 48u
#define Q_LEN 40u
#define S_LEN 16u
#define R_LEN 16u
#define SAVED_STATUS (HWSOCK_STATUS_FEATURES_OK | HWSOCK_STATUS_DRIVER_OK)

typedef struct snap_q {
  uint32_t size;
  uint16_t last_avail, used_idx, signalled_used, signalled_valid;
  uint64_t desc, avail, used;
} snap_q;

typedef struct snap_s {
  uint32_t id;
  uint8_t state, scheme;
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
         (size_t)dev->cfg.max_sockets * S_LEN +
         (size_t)dev->cfg.max_inflight * R_LEN;
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

int hwsock_device_save(hwsock_device *dev, void *buf, size_t len,
                       size_t *out_len) {
  if (dev == NULL || buf == NULL || out_len == NULL)
    return HWSOCK_EINVAL;
  if (!dev->quiesced)
    return HWSOCK_EBUSY;
  if (dev->broken)
    return HWSOCK_ENEEDSRESET;
  if (hwsock__evq_index(dev) >= 0)
    return HWSOCK_EOPNOTSUPP;
  uint32_t ns = 0, nr = 0;
  for (unsigned i = 0; i < dev->cfg.max_sockets; i++)
    ns += saved_state(&dev->socks[i]);
  for (unsigned i = 0; i < dev->cfg.max_inflight; i++)
    nr += dev->reqs[i].in_use;
  size_t total = HDR_LEN + (size_t)dev->cfg.num_queues * Q_LEN +
                 (size_t)ns * S_LEN + (size_t)nr * R_LEN;
  if (len < total)
    return HWSOCK_ENOSPC;
  uint8_t *p = buf;
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
    put32(p, i);
    p[4] = s->state;
    p[5] = s->scheme;
    p += S_LEN;
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
  *out_len = total;
  return 0;
}

/* ---- restore ------------------------------------------------------------- */

typedef struct snap {
  uint32_t status, negotiated, ns, nr;
  uint64_t features;
  snap_q q[HWSOCK_MAX_QUEUES];
  snap_s *s;
  snap_r *r;
} snap;

/* Parses and checks the blob against dev without changing dev. */
static int parse(const hwsock_device *dev, const uint8_t *p, size_t len,
                 snap *sn) {
  if (len < HDR_LEN || get32(p) != SNAP_MAGIC || get16(p + 4) != SNAP_VERSION)
    return HWSOCK_EBADMSG;
  unsigned nq = get16(p + 6);
  sn->ns = get32(p + 12);
  sn->nr = get32(p + 16);
  sn->status = get32(p + 20);
  sn->features = get64(p + 24);
  sn->negotiated = get32(p + 32);
  if (get32(p + 8) != len || get64(p + 40) != 0)
    return HWSOCK_EBADMSG;
  /* 64-bit sums of 32-bit counts: no overflow */
  if ((uint64_t)HDR_LEN + (uint64_t)nq * Q_LEN + (uint64_t)sn->ns * S_LEN +
          (uint64_t)sn->nr * R_LEN != len)
    return HWSOCK_EBADMSG;
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
  if (sn->features & HWSOCK_F_EVENT_QUEUE)
    return HWSOCK_EINVAL; /* not saved by this version */
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
  uint32_t prev = 0;
  for (uint32_t i = 0; i < sn->ns; i++, p += S_LEN) {
    snap_s *x = &sn->s[i];
    x->id = get32(p);
    x->state = p[4];
    x->scheme = p[5];
    if (p[6] | p[7] || get64(p + 8) != 0 || (i > 0 && x->id <= prev))
      return HWSOCK_EBADMSG;
    prev = x->id;
    if (x->id >= dev->cfg.max_sockets)
      return HWSOCK_EINVAL;
    if (x->state < HWSOCK__S_OPEN || x->state > HWSOCK__S_RESET ||
        x->scheme < HWSOCK_SCHEME_TCP || x->scheme > HWSOCK_SCHEME_IPX)
      return HWSOCK_EBADMSG;
  }
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

/* Completes restored request x with ECONNRESET, as dispatch's finish(). */
static void fail_request(hwsock_device *dev, const snap_r *x) {
  hwsock__req *req = dev->free_reqs; /* nr <= max_inflight: never NULL */
  hwsock__vq *vq = &dev->vq[x->queue];
  const char *why = NULL;
  if (hwsock__vq_walk(vq, x->head, &req->chain, req->iov,
                      dev->cfg.max_chain_segs + dev->cfg.max_regions,
                      &why) < 0) {
    hwsock__set_broken(dev, x->queue, why ? why : "bad ring");
    return;
  }
  dev->free_reqs = req->next_free;
  dev->inflight++;
  req->in_use = 1;
  req->queue = x->queue;
  req->head = x->head;
  req->sock_id = x->sock;
  req->tag = x->tag;
  hwsock_resp_hdr resp;
  memset(&resp, 0, sizeof(resp));
  hwsock_le64_set(&resp.tag, x->tag);
  hwsock_le32_set(&resp.status, (uint32_t)-HWSOCK_ECONNRESET);
  hwsock__iov_scatter(req->iov + req->chain.n_out, req->chain.n_in, 0, &resp,
                      sizeof(resp));
  dev->counters.completions++;
  dev->counters.errors++;
  hwsock__req_push(dev, req, (uint32_t)sizeof(resp));
}

static int apply(hwsock_device *dev, const snap *sn) {
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
  int reset = 0;
  for (uint32_t i = 0; i < sn->ns; i++) {
    const snap_s *x = &sn->s[i];
    hwsock__sock *s = &dev->socks[x->id];
    if (x->state == HWSOCK__S_RESERVED)
      continue; /* its ACCEPT is in flight and fails below */
    s->scheme = x->scheme;
    s->backend = -1;
    s->rule = -1;
    s->rule_line = -1;
    if (x->state == HWSOCK__S_OFFLOADED || x->state == HWSOCK__S_RESET) {
      s->state = HWSOCK__S_RESET;
      reset++;
      hwsock__device_log(dev, HWSOCK_LOG_INFO,
                         "restore: socket %u was offloaded: reset", x->id);
    } else {
      s->state = x->state;
    }
  }
  for (uint32_t i = 0; i < sn->nr && !dev->broken; i++)
    fail_request(dev, &sn->r[i]);
  hwsock_device_flush(dev); /* the completions' notifications */
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
  int rc = HWSOCK_ENOMEM;
  if (sn.s != NULL && sn.r != NULL) {
    rc = len < HDR_LEN ? HWSOCK_EBADMSG : parse(dev, buf, len, &sn);
    if (rc == 0) {
      rc = apply(dev, &sn);
      if (rc < 0)
        hwsock_device_reset(dev); /* all or nothing */
    }
  }
  free(sn.s);
  free(sn.r);
  return rc;
}
