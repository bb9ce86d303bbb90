/* Handing a device's host sockets to another process (hwsock/device.h,
 * docs/EMBEDDING.md §12): a VMM replacing itself keeps every connection.
 *
 * The old process quiesces the device, exports each offloaded socket (a
 * duplicate of its host socket and a record: the backend's name and state,
 * the device's own per-socket state), saves the blob (snapshot.c) and
 * sends all of it; the new process restores the blob with the requests in
 * flight held (snapshot.c walks their chains but neither completes nor
 * submits them), imports each socket into its reset slot, and submits the
 * held requests again. That is correct because the backends export only a
 * settled socket: no held request has moved a byte (export_sock refuses
 * otherwise), so submitting it again is submitting it for the first time.
 *
 * The record, little-endian, REC_LEN (96) bytes:
 *    0  magic "HSKX"       4  version (1)      6  scheme
 *    7  flags: 1 bound, 2 guest shut down its side, 4 peer's EOF seen,
 *              8 identity header sent
 *    8  locked (HWSOCK_HOSTOPT_* the policy set)
 *   12  ss (hwsock_ss_state)  13  0           14  backend state length
 *   15  0                 16  backend name, NUL-padded (16 bytes)
 *   32  backend state (HWSOCK_BEXPORT_STATE_MAX)   64  zero to the end */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "device_int.h"
#include "hwsock/stats.h"

#define REC_LEN sizeof(((hwsock_sock_export *)0)->rec)
#define REC_MAGIC 0x584b5348u /* "HSKX" */
#define REC_VERSION 1u
#define REC_NAME 16u
#define REC_STATE 32u
#define F_BOUND 1u
#define F_SHUT_WR 2u
#define F_PEER_EOF 4u
#define F_IDENTITY 8u

_Static_assert(REC_STATE + HWSOCK_BEXPORT_STATE_MAX <= REC_LEN,
               "the backend state fits the record");

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
  p[3] = (uint8_t)(v >> 24);
}
static uint32_t get32(const uint8_t *p) {
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static int has_handover_ops(const hwsock_backend_ops *o) {
  return o->size >= offsetof(hwsock_backend_ops, import_sock) +
                        sizeof(o->import_sock) &&
         o->export_sock != NULL && o->import_sock != NULL;
}

static int export_one(hwsock_device *dev, uint32_t id, hwsock_sock_export *e) {
  const hwsock__sock *s = &dev->socks[id];
  const hwsock__backend *b = &dev->backends[s->backend];
  const char *name = b->desc->name;
  if (!has_handover_ops(b->desc->ops) || strlen(name) >= REC_NAME)
    return HWSOCK_EOPNOTSUPP;
  hwsock_bexport x;
  memset(&x, 0, sizeof(x));
  x.size = sizeof(x);
  x.fd = -1;
  x.scheme = s->scheme;
  int rc = b->desc->ops->export_sock(s->bsock, &x);
  if (rc == 0 && x.state_len > HWSOCK_BEXPORT_STATE_MAX)
    rc = HWSOCK_EIO; /* a backend bug */
  if (rc < 0) {
    if (x.fd >= 0)
      close(x.fd);
    return rc;
  }
  memset(e, 0, sizeof(*e));
  e->id = id;
  e->fd = x.fd;
  uint8_t *p = e->rec;
  put32(p, REC_MAGIC);
  p[4] = REC_VERSION;
  p[6] = s->scheme;
  p[7] = (uint8_t)((s->bound ? F_BOUND : 0) | (s->shut_wr ? F_SHUT_WR : 0) |
                   (s->peer_eof ? F_PEER_EOF : 0) |
                   (s->identity ? F_IDENTITY : 0));
  put32(p + 8, s->locked);
  p[12] = s->ss;
  p[14] = (uint8_t)x.state_len;
  memcpy(p + 16, name, strlen(name));
  memcpy(p + REC_STATE, x.state, x.state_len);
  return 0;
}

int hwsock_device_export_socks(hwsock_device *dev, hwsock_sock_export *out,
                               unsigned max) {
  if (dev == NULL || (out == NULL && max > 0))
    return HWSOCK_EINVAL;
  if (!dev->quiesced)
    return HWSOCK_EBUSY;
  unsigned n = 0;
  int rc = 0;
  for (uint32_t id = 0; id < dev->sock_hwm && rc == 0; id++) {
    const hwsock__sock *s = &dev->socks[id];
    if (s->state != HWSOCK__S_OFFLOADED || s->backend < 0)
      continue;
    if (n == max) {
      rc = HWSOCK_ENOSPC;
      break;
    }
    rc = export_one(dev, id, &out[n]);
    if (rc == 0) {
      n++;
    } else if (rc == HWSOCK_EOPNOTSUPP) {
      hwsock__device_log(dev, HWSOCK_LOG_WARN,
                         "hand-over: socket %u: backend %s cannot export it: "
                         "it will be reset", id,
                         dev->backends[s->backend].desc->name);
      rc = 0;
    }
  }
  if (rc < 0) {
    while (n > 0)
      if (out[--n].fd >= 0)
        close(out[n].fd);
    return rc;
  }
  return (int)n;
}

int hwsock_device_restore_held(hwsock_device *dev, const void *buf,
                               size_t len) {
  if (dev == NULL)
    return HWSOCK_EINVAL;
  dev->held = 1;
  int rc = hwsock_device_restore(dev, buf, len);
  if (rc < 0)
    dev->held = 0;
  return rc;
}

/* The record, checked: 0 and the backend's index, name-matched. */
static int parse_rec(const hwsock_device *dev, const uint8_t *p,
                     hwsock_bexport *x, unsigned *bi, uint8_t *flags) {
  if (get32(p) != REC_MAGIC || p[4] != REC_VERSION || p[5] != 0 ||
      p[13] != 0 || p[15] != 0 || p[14] > HWSOCK_BEXPORT_STATE_MAX ||
      p[7] > (F_BOUND | F_SHUT_WR | F_PEER_EOF | F_IDENTITY) ||
      p[12] > HWSOCK_SS_DENIED)
    return HWSOCK_EINVAL;
  for (size_t i = REC_STATE + p[14]; i < REC_LEN; i++)
    if (p[i] != 0)
      return HWSOCK_EINVAL;
  char name[REC_NAME];
  memcpy(name, p + 16, REC_NAME);
  if (name[REC_NAME - 1] != '\0')
    return HWSOCK_EINVAL;
  for (size_t i = strlen(name); i < REC_NAME; i++)
    if (name[i] != '\0')
      return HWSOCK_EINVAL;
  *bi = dev->nbackends;
  for (unsigned i = 0; i < dev->nbackends; i++)
    if (strcmp(dev->backends[i].desc->name, name) == 0)
      *bi = i;
  if (*bi == dev->nbackends)
    return HWSOCK_ENOENT;
  x->scheme = p[6];
  x->state_len = p[14];
  memcpy(x->state, p + REC_STATE, x->state_len);
  *flags = p[7];
  return 0;
}

int hwsock_device_import_sock(hwsock_device *dev, const hwsock_sock_export *e) {
  if (dev == NULL || e == NULL)
    return HWSOCK_EINVAL;
  int fd = e->fd;
  hwsock_bexport x;
  memset(&x, 0, sizeof(x));
  x.size = sizeof(x);
  x.fd = fd;
  unsigned bi = 0;
  uint8_t flags = 0;
  int rc = HWSOCK_EINVAL;
  hwsock__sock *s = NULL;
  if (e->id < dev->cfg.max_sockets) {
    s = &dev->socks[e->id];
    if (s->state == HWSOCK__S_RESET)
      rc = parse_rec(dev, e->rec, &x, &bi, &flags);
  }
  if (rc == 0 && x.scheme != s->scheme)
    rc = HWSOCK_EINVAL;
  const hwsock_backend_ops *ops = rc == 0 ? dev->backends[bi].desc->ops : NULL;
  if (rc == 0 && !has_handover_ops(ops))
    rc = HWSOCK_EOPNOTSUPP;
  /* A denied socket holds no host socket and no quota (dispatch.c): a
   * record that says denied yet hands a descriptor over is a bad one (its
   * host socket would be outside the quota, and capture and the statistics
   * take a denied socket for one without a host socket). */
  int denied = rc == 0 && e->rec[12] == HWSOCK_SS_DENIED;
  if (denied && fd >= 0) {
    rc = HWSOCK_EINVAL;
    denied = 0;
  }
  if (rc == 0 && !denied)
    rc = hwsock__quota_take(dev);
  void *bsock = NULL;
  if (rc == 0) {
    rc = ops->import_sock(dev->backends[bi].instance, &x, &bsock);
    if (rc < 0 && !denied)
      hwsock__quota_put(dev);
  }
  if (rc < 0) {
    if (fd >= 0)
      close(fd);
    hwsock__device_log(dev, HWSOCK_LOG_WARN,
                       "hand-over: socket %u not imported: %s", e->id,
                       hwsock_strerror(rc));
    return rc;
  }
  s->state = HWSOCK__S_OFFLOADED;
  s->backend = (int16_t)bi;
  s->bsock = bsock;
  s->quota = !denied;
  s->locked = get32(e->rec + 8);
  s->ss = e->rec[12];
  s->bound = (flags & F_BOUND) != 0;
  s->shut_wr = (flags & F_SHUT_WR) != 0;
  s->peer_eof = (flags & F_PEER_EOF) != 0;
  s->identity = (flags & F_IDENTITY) ? HWSOCK_IDENTITY_PROXY_V2 : 0;
  /* The rule that decided it and when: from the blob (version 4), the old
   * process's decision; else unknown, and its age starts now. */
  if (s->created_ns == 0)
    s->created_ns = hwsock__now_ns(CLOCK_REALTIME);
  if (hwsock__evq_index(dev) >= 0)
    hwsock__evq_arm(dev, e->id);
  return 0;
}

int hwsock_device_resume_held(hwsock_device *dev) {
  if (dev == NULL || !dev->held)
    return HWSOCK_EINVAL;
  dev->held = 0;
  int n = 0;
  /* restore took them in the blob's order from the free list; the backends
   * settled with at most one request per direction and socket, so no order
   * between two of one socket's requests is lost. */
  for (unsigned i = 0; i < dev->cfg.max_inflight; i++) {
    hwsock__req *req = &dev->reqs[i];
    if (!req->in_use || req->event)
      continue;
    req->t0_ns = hwsock__now_ns(CLOCK_MONOTONIC);
    /* the old device counted it when it took it, if the blob said so */
    req->again = (uint8_t)dev->held_counted;
    dev->counters.requests += !req->again;
    n++;
    hwsock__dispatch(dev, req);
  }
  /* A socket not imported is reset for good: one whose input went
   * through the event queue holds no request to fail, an ERROR event says
   * so (snapshot.c does it at once outside a hand-over). */
  if (hwsock__evq_index(dev) >= 0)
    for (uint32_t id = 0; id < dev->sock_hwm; id++) /* the rest is FREE */
      if (dev->socks[id].state == HWSOCK__S_RESET)
        hwsock__evq_report_reset(dev, id);
  for (unsigned q = 0; q < dev->cfg.num_queues && !dev->broken; q++)
    if ((int)q != hwsock__evq_index(dev))
      hwsock_device_kick(dev, q);
  hwsock_device_flush(dev);
  return n;
}
