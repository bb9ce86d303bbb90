/* Shared by the device fuzzers (fuzz_dispatch, fuzz_device): a whole
 * device (lib/device.c, dispatch.c, the policy) with one queue in fake
 * guest memory driven by the vring builder, and a fake in-process backend
 * whose requests stay pending until the fuzzer completes them (with any
 * status, any byte count, an accepted socket or a peer address).
 *
 * Oracles besides the sanitizers: a used element names a head the guest
 * made available, its length never exceeds the chain's writable bytes, and
 * an error completion has used length 32 and a status the protocol knows. */
#ifndef HWSOCK_FUZZ_DEV_H
#define HWSOCK_FUZZ_DEV_H

#include <stdlib.h>
#include <string.h>

#include "../support/vring_builder.h" /* the builder: in hwsock_internal */
#include "hwsock/backend.h"
#include "hwsock/device.h"
#include "hwsock/policy.h"

#define FD_QS 16u
#define FD_MAX_PENDING 64u

static void fd_check(int cond) {
  if (!cond)
    __builtin_trap();
}

typedef struct fd_sock {
  int dead;
} fd_sock;

static const hwsock_backend_host *fd_host;
static hwsock_breq *fd_pending[FD_MAX_PENDING];
static void *fd_pending_sock[FD_MAX_PENDING];
static unsigned fd_npending;
static volatile uint8_t fd_sum;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd_create(const hwsock_backend_host *host, void **inst) {
  fd_host = host;
  *inst = (void *)host;
  return 0;
}
static void fd_destroy(void *inst) { (void)inst; }
static int fd_open(void *inst, const hwsock_bopen *p, void **sock) {
  (void)inst;
  (void)p;
  fd_sock *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return HWSOCK_ENOMEM;
  *sock = s;
  return 0;
}
static void fd_submit(void *sock, hwsock_breq *req) {
  if (fd_npending == FD_MAX_PENDING) {
    fd_host->complete(req, HWSOCK_EAGAIN, 0);
    return;
  }
  fd_pending[fd_npending] = req;
  fd_pending_sock[fd_npending++] = sock;
}
/* Completes pending request i (removed first: complete may re-enter). */
static void fd_complete(unsigned i, int status, size_t len, int accept,
                        int peer) {
  hwsock_breq *req = fd_pending[i];
  fd_pending[i] = fd_pending[--fd_npending];
  fd_pending_sock[i] = fd_pending_sock[fd_npending];
  if (status == 0 && req->opcode == HWSOCK_OP_ACCEPT && accept)
    req->accepted = calloc(1, sizeof(fd_sock));
  if (peer) {
    memset(&req->peer, 0, sizeof(req->peer));
    req->peer.scheme = HWSOCK_SCHEME_TCP;
    req->peer.family = HWSOCK_AF_INET;
    req->peer.u.v4[0] = 127;
    req->peer.u.v4[3] = 1;
    req->peer.port = 4242;
    req->has_peer = 1;
  }
  /* RECV / GETSOCKOPT: write what the backend claims (bounded by the
   * buffers: a backend never writes past them; the claim itself may lie) */
  if (req->opcode == HWSOCK_OP_RECV || req->opcode == HWSOCK_OP_GETSOCKOPT) {
    size_t left = len;
    for (unsigned k = 0; k < req->iovcnt && left > 0; k++) {
      size_t n = req->iov[k].iov_len < left ? req->iov[k].iov_len : left;
      memset(req->iov[k].iov_base, 'r', n);
      left -= n;
    }
  } else if (req->opcode == HWSOCK_OP_SEND || req->opcode == HWSOCK_OP_SETSOCKOPT) {
    /* touch every byte the device handed over (ASan checks the iovecs) */
    uint8_t sum = 0;
    for (unsigned k = 0; k < req->iovcnt; k++)
      for (size_t j = 0; j < req->iov[k].iov_len; j++)
        sum ^= ((const uint8_t *)req->iov[k].iov_base)[j];
    fd_sum ^= sum;
  }
  fd_host->complete(req, status, len);
}
static void fd_close(void *sock) {
  for (unsigned i = 0; i < fd_npending;) {
    if (fd_pending_sock[i] == sock)
      fd_complete(i, HWSOCK_ECANCELED, 0, 0, 0);
    else
      i++;
  }
  free(sock);
}
static const hwsock_backend_ops fd_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = fd_create,
    .destroy = fd_destroy,
    .open = fd_open,
    .submit = fd_submit,
    .close = fd_close,
};
static const char *const fd_schemes[] = {"tcp", "udp", "tcp6", "udp6", NULL};
static const hwsock_backend_desc fd_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "fake",
    .description = "fuzz backend",
    .schemes = fd_schemes,
    .ops = &fd_ops,
};

static const char fd_policy_yaml[] =
    "version: 1\n"
    "default: deny\n"
    "rules:\n"
    "  - action: deny\n"
    "    to: 127.0.0.2\n"
    "    error: ENETUNREACH\n"
    "  - action: decline\n"
    "    to: 127.0.0.3\n"
    "  - action: offload\n"
    "    to: [127.0.0.0/8, \"::1\"]\n"
    "    set: {nodelay: true}\n"
    "  - action: offload\n"
    "    scheme: [udp, udp6]\n"
    "    to: [0.0.0.0/0, \"::/0\"]\n";

static hwsock_policy *fd_policy;
static vrb fd_r;
static hwsock_device *fd_dev;
static uint32_t fd_wlen[FD_QS]; /* writable bytes of the chain at each head */
static uint64_t fd_wgpa[FD_QS]; /* its writable buffer */
static uint8_t fd_live[FD_QS];  /* head made available, not yet completed */
static uint8_t fd_ndesc[FD_QS]; /* descriptors of the chain at each head */
static uint8_t fd_busy[FD_QS];  /* descriptor belongs to a live chain */
static unsigned fd_nlive;

static void fd_notify(void *o, unsigned q) {
  (void)o;
  (void)q;
}
static void fd_reset(void *o, const char *why) {
  (void)o;
  (void)why;
}
static const hwsock_device_ops fd_dev_ops = {.size = sizeof(hwsock_device_ops),
                                             .notify = fd_notify,
                                             .needs_reset = fd_reset};

/* Features, queue, start; 0 or -1. */
static int fd_setup(uint64_t features) {
  memset(fd_live, 0, sizeof(fd_live));
  memset(fd_busy, 0, sizeof(fd_busy));
  fd_nlive = 0;
  memset(fd_r.mem, 0, 4096); /* the queue: zeroed before QUEUE */
  fd_r.avail_shadow = fd_r.next_desc = fd_r.last_used = 0;
  if (hwsock_device_set_features(fd_dev, features) < 0 ||
      hwsock_device_queue_setup(fd_dev, 0, FD_QS, fd_r.desc_gpa,
                                fd_r.avail_gpa, fd_r.used_gpa) < 0 ||
      hwsock_device_start(fd_dev) < 0)
    return -1;
  return 0;
}

static int fd_new(uint64_t features) {
  if (fd_policy == NULL &&
      hwsock_policy_load_string(fd_policy_yaml, sizeof(fd_policy_yaml) - 1,
                                "fuzz", &fd_policy, NULL, 0) < 0)
    __builtin_trap();
  if (vrb_init(&fd_r, 0, 1u << 16, FD_QS) < 0)
    return -1;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 8;
  c.max_inflight = 12;
  c.max_chain_segs = 8;
  c.max_io_len = 4096;
  c.kick_budget = 4;
  c.policy = fd_policy;
  c.ops = &fd_dev_ops;
  fd_npending = 0;
  if (hwsock_device_new(&c, &fd_dev) < 0 ||
      hwsock_device_add_region(fd_dev, fd_r.gpa, fd_r.size, fd_r.mem) < 0 ||
      hwsock_device_add_backend(fd_dev, &fd_desc, "") < 0 || fd_setup(features) < 0)
    __builtin_trap();
  return 0;
}

static void fd_free(void) {
  hwsock_device_free(fd_dev); /* closes every socket: pending ones complete */
  fd_check(fd_npending == 0);
  vrb_free(&fd_r);
}

/* Takes every new used element and checks it. */
static void fd_reap(void) {
  uint32_t id, len;
  while (vrb_get_used(&fd_r, &id, &len)) {
    fd_check(id < FD_QS && fd_live[id]);
    fd_check(len <= fd_wlen[id]);
    if (len >= sizeof(hwsock_resp_hdr)) {
      const hwsock_resp_hdr *p = vrb_host(&fd_r, fd_wgpa[id]);
      uint32_t st = hwsock_le32_get(&p->status);
      fd_check(st == 0 || hwsock_err_is_known(st));
      if (st != 0)
        fd_check(len == sizeof(hwsock_resp_hdr));
    }
    fd_live[id] = 0;
    fd_nlive--;
    for (unsigned k = 0; k < fd_ndesc[id]; k++)
      fd_busy[(id + k) % FD_QS] = 0;
  }
}

/* Adds a request chain: readable = rd[0..rdlen) (rdlen > 0), writable =
 * wlen bytes. Unpublished. -1 (nothing added) when its descriptors or
 * scratch are still in use by live chains. */
static int fd_add(const uint8_t *rd, size_t rdlen, uint32_t wlen) {
  struct iovec out = {(void *)rd, rdlen};
  unsigned nin = wlen > 0, n = 1 + nin;
  for (unsigned k = 0; k < n; k++)
    if (fd_busy[(fd_r.next_desc + k) % FD_QS])
      return -1;
  if (fd_r.size - vrb_mark(&fd_r) < rdlen + wlen + 64) {
    if (fd_nlive > 0)
      return -1;
    vrb_release(&fd_r, 4096); /* scratch after the queue's page */
  }
  uint64_t wg = 0;
  int head = vrb_add_rw(&fd_r, &out, 1, &wlen, nin, &wg);
  if (head >= 0) {
    fd_wlen[head] = nin ? wlen : 0;
    fd_wgpa[head] = wg;
    fd_live[head] = 1;
    fd_ndesc[head] = (uint8_t)n;
    fd_nlive++;
    for (unsigned k = 0; k < n; k++)
      fd_busy[(head + k) % FD_QS] = 1;
  }
  return head;
}

#endif
