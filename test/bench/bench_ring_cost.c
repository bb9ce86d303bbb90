/* bench_ring_cost: a fixed synthetic workload for counting instructions.
 *
 *   bench_ring_cost ring N     N requests through the ring engine alone:
 *                              driver adds a 2-descriptor chain (32-byte
 *                              request header, 32-byte response header),
 *                              device pops it, pushes the completion and
 *                              asks whether to notify, re-enables kicks.
 *   bench_ring_cost device N   N/2 OPEN + N/2 CLOSE requests through the
 *                              whole device (hwsock_device_kick: ring,
 *                              validation, dispatch, completion) with no
 *                              backend and no sockets.
 *
 * No sockets, no threads, no clock: the instruction count depends only on
 * N, so `valgrind --tool=callgrind` run at two N gives the cost of one
 * request as the difference over delta-N (setup cancels out). scripts/bench
 * restricts the count to the device's functions with --toggle-collect.
 * Exits non-zero if any completion is not what the request asked for, so
 * a broken ring cannot produce a plausible-looking figure. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwsock/device.h"
#include "hwsock/wire.h"
#include "ring.h"
#include "support/vring_builder.h"

#define QSIZE 256u
#define CAP 16u

static int die(const char *what) {
  fprintf(stderr, "bench_ring_cost: %s\n", what);
  return 1;
}

static uint64_t req_hdr(vrb *r, unsigned op, uint32_t id, uint32_t a0,
                        uint32_t a1) {
  uint64_t g = vrb_alloc(r, sizeof(hwsock_req_hdr), 16);
  hwsock_req_hdr *h = vrb_host(r, g);
  hwsock_le16_set(&h->opcode, (uint16_t)op);
  hwsock_le32_set(&h->sock_id, id);
  hwsock_le64_set(&h->tag, op);
  hwsock_le32_set(&h->arg0, a0);
  hwsock_le32_set(&h->arg1, a1);
  return g;
}

static int run_ring(unsigned long n) {
  vrb r;
  hwsock__region regs[2];
  hwsock__memmap m = {regs, 0, 2};
  hwsock__vq vq;
  struct iovec iov[CAP];
  if (vrb_init(&r, 0, 0, QSIZE) < 0 || vrb_add_regions(&r, &m, 0) < 0 ||
      vrb_vq_init(&r, &vq, &m, HWSOCK_F_VERSION_1 | HWSOCK_F_EVENT_IDX, 8) <
          0)
    return die("ring setup failed");
  uint64_t hdr = req_hdr(&r, HWSOCK_OP_OPEN, 0, 1, 1);
  uint64_t resp = vrb_alloc(&r, sizeof(hwsock_resp_hdr), 16);
  vrb_seg segs[2] = {{hdr, sizeof(hwsock_req_hdr), 0},
                     {resp, sizeof(hwsock_resp_hdr),
                      HWSOCK_VRING_DESC_F_WRITE}};
  for (unsigned long i = 0; i < n; i++) {
    int head = vrb_add_chain(&r, segs, 2);
    if (head < 0)
      return die("add chain");
    vrb_set_used_event(&r, (uint16_t)(r.last_used));
    vrb_publish(&r);
    hwsock__chain c;
    const char *why = NULL;
    if (hwsock__vq_pop(&vq, &c, iov, CAP, &why) != 1 || c.n_out != 1 ||
        c.n_in != 1 || c.head != (uint16_t)head)
      return die(why ? why : "pop");
    hwsock__vq_push(&vq, c.head, sizeof(hwsock_resp_hdr));
    (void)hwsock__vq_should_notify(&vq);
    if (hwsock__vq_enable_kicks(&vq) != 0)
      return die("unexpected pending request");
    uint32_t id, len;
    if (vrb_get_used(&r, &id, &len) != 1 || id != (uint32_t)head)
      return die("used entry");
  }
  vrb_free(&r);
  return 0;
}

static int run_device(unsigned long n) {
  vrb r;
  if (vrb_init(&r, 0, 0, QSIZE) < 0)
    return die("vrb_init");
  hwsock_device_config cfg;
  hwsock_device_config_init(&cfg);
  hwsock_device *dev;
  uint64_t feat = HWSOCK_F_VERSION_1 | HWSOCK_F_EVENT_IDX;
  if (hwsock_device_new(&cfg, &dev) < 0 ||
      hwsock_device_add_region(dev, r.gpa, r.size, r.mem) < 0 ||
      hwsock_device_set_features(dev, feat) < 0 ||
      hwsock_device_queue_setup(dev, 0, QSIZE, r.desc_gpa, r.avail_gpa,
                                r.used_gpa) < 0 ||
      hwsock_device_start(dev) < 0)
    return die("device setup failed");
  uint64_t open_h = req_hdr(&r, HWSOCK_OP_OPEN, 7, HWSOCK_AF_INET,
                            HWSOCK_SOCK_STREAM);
  uint64_t close_h = req_hdr(&r, HWSOCK_OP_CLOSE, 7, 0, 0);
  uint64_t resp[2] = {vrb_alloc(&r, sizeof(hwsock_resp_hdr), 16),
                      vrb_alloc(&r, sizeof(hwsock_resp_hdr), 16)};
  vrb_seg open_s[2] = {{open_h, sizeof(hwsock_req_hdr), 0},
                       {resp[0], sizeof(hwsock_resp_hdr),
                        HWSOCK_VRING_DESC_F_WRITE}};
  vrb_seg close_s[2] = {{close_h, sizeof(hwsock_req_hdr), 0},
                        {resp[1], sizeof(hwsock_resp_hdr),
                         HWSOCK_VRING_DESC_F_WRITE}};
  for (unsigned long i = 0; i < n / 2; i++) {
    if (vrb_add_chain(&r, open_s, 2) < 0 || vrb_add_chain(&r, close_s, 2) < 0)
      return die("add chain");
    vrb_set_used_event(&r, (uint16_t)(r.last_used + 1));
    vrb_publish(&r);
    if (hwsock_device_kick(dev, 0) != 2)
      return die("kick did not take 2 requests");
    hwsock_device_flush(dev);
    for (int k = 0; k < 2; k++) {
      uint32_t id, len;
      if (vrb_get_used(&r, &id, &len) != 1)
        return die("missing completion");
      const hwsock_resp_hdr *rh = vrb_host(&r, resp[k]);
      if (hwsock_le32_get(&rh->status) != 0 ||
          hwsock_le64_get(&rh->tag) !=
              (k == 0 ? HWSOCK_OP_OPEN : HWSOCK_OP_CLOSE))
        return die("request failed");
    }
  }
  hwsock_device_free(dev);
  vrb_free(&r);
  return 0;
}

int main(int argc, char **argv) {
  char *end = NULL;
  unsigned long n = argc == 3 ? strtoul(argv[2], &end, 10) : 0;
  if (argc != 3 || end == NULL || *end != '\0' || n == 0) {
    fprintf(stderr, "usage: bench_ring_cost ring|device N\n");
    return 2;
  }
  if (strcmp(argv[1], "ring") == 0)
    return run_ring(n);
  if (strcmp(argv[1], "device") == 0)
    return run_device(n);
  fprintf(stderr, "usage: bench_ring_cost ring|device N\n");
  return 2;
}
