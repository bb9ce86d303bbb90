/* Snapshot and restore: quiesce holds requests, save needs it, a restored
 * device continues the rings where the saved one was, sockets whose host
 * socket is gone come back reset (their waiting RECV completes with
 * ECONNRESET, every later call too, CLOSE frees the id), undecided sockets
 * come back as they were, and a malformed or unfitting blob is refused
 * with the device left reset. A real tcp backend and a host listener on
 * 127.0.0.1; the driver side is the vring builder. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "device_int.h"
#include "support/vring_builder.h"

#define TCP_SO HWSOCK_BUILD_BACKEND_DIR "/tcp.so"
#define QSIZE 64u

static uv_loop_t loop;
static vrb rq;
static hwsock_device *dev;
static hwsock_policy *pol;
static hwsock_plugin *plug;
static int lst = -1;
static uint16_t lport;

static hwsock_device *new_device(void) {
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 16;
  c.max_inflight = 32;
  c.max_queue_size = QSIZE;
  c.policy = pol;
  c.backend_loop = &loop;
  hwsock_device *d;
  cr_assert_eq(hwsock_device_new(&c, &d), 0);
  cr_assert_eq(hwsock_device_add_backend(d, hwsock_plugin_desc(plug), NULL),
               0);
  cr_assert_eq(hwsock_device_add_region(d, rq.gpa, rq.size, rq.mem), 0);
  return d;
}

static void setup(void) {
  char err[256];
  const char *y = "version: 1\ndefault: offload\nrules: []\n";
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(vrb_init(&rq, 0x100000, 1u << 20, QSIZE), 0);
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t", &pol, err,
                                         sizeof(err)), 0, "%s", err);
  cr_assert_eq(hwsock_plugin_load(TCP_SO, &plug, err, sizeof(err)), 0, "%s",
               err);
  dev = new_device();
  cr_assert_eq(hwsock_device_set_features(dev, HWSOCK_F_VERSION_1), 0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 0, QSIZE, rq.desc_gpa,
                                         rq.avail_gpa, rq.used_gpa), 0);
  cr_assert_eq(hwsock_device_start(dev), 0);
  lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(lst, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(lst, 16), 0);
  cr_assert_eq(getsockname(lst, (struct sockaddr *)&a, &al), 0);
  lport = ntohs(a.sin_port);
}

static void free_device(hwsock_device *d) {
  hwsock_device_free(d);
  for (int i = 0; i < 100; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void teardown(void) {
  free_device(dev);
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
    ;
  uv_loop_close(&loop);
  hwsock_plugin_unload(plug);
  hwsock_policy_free(pol);
  vrb_free(&rq);
  close(lst);
}

TestSuite(snapshot, .init = setup, .fini = teardown);

/* ---- the driver side ---------------------------------------------------- */

typedef struct pending {
  int head;
  uint64_t resp;
  size_t mark;
} pending;

static pending post(unsigned op, uint32_t id, uint32_t a0, uint32_t a1,
                    const char *uri) {
  pending p = {.mark = vrb_mark(&rq)};
  size_t ul = uri ? strlen(uri) : 0;
  uint64_t req = vrb_alloc(&rq, sizeof(hwsock_req_hdr) + ul + 16, 8);
  p.resp = vrb_alloc(&rq, 256, 8);
  hwsock_req_hdr *h = vrb_host(&rq, req);
  hwsock_le16_set(&h->opcode, (uint16_t)op);
  hwsock_le32_set(&h->sock_id, id);
  hwsock_le64_set(&h->tag, 0xabc000u + op);
  hwsock_le32_set(&h->arg0, a0);
  hwsock_le32_set(&h->arg1, a1);
  hwsock_le32_set(&h->uri_len, (uint32_t)ul);
  if (ul)
    memcpy(h + 1, uri, ul);
  uint32_t out_len = (uint32_t)(sizeof(*h) + ul);
  if (op == HWSOCK_OP_SEND) {
    memcpy((char *)(h + 1) + ul, "hello", 5);
    out_len += 5;
  }
  vrb_seg segs[2] = {{req, out_len, 0},
                     {p.resp, 256, HWSOCK_VRING_DESC_F_WRITE}};
  p.head = vrb_add_chain(&rq, segs, 2);
  cr_assert(p.head >= 0);
  vrb_publish(&rq);
  return p;
}

/* Waits for p's completion on device d; returns its status. */
static int wait_done(hwsock_device *d, pending p) {
  uint32_t uid = UINT32_MAX, ulen;
  int got = 0;
  for (int i = 0; i < 20000 && !(got = vrb_get_used(&rq, &uid, &ulen)); i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    hwsock_device_flush(d);
    if (i > 100)
      usleep(100);
  }
  cr_assert(got, "no completion");
  cr_assert_eq(uid, (uint32_t)p.head);
  hwsock_resp_hdr *r = vrb_host(&rq, p.resp);
  int st = -(int)hwsock_le32_get(&r->status);
  vrb_release(&rq, p.mark);
  return st;
}

static int request_on(hwsock_device *d, unsigned op, uint32_t id, uint32_t a0,
                      uint32_t a1, const char *uri) {
  pending p = post(op, id, a0, a1, uri);
  hwsock_device_kick(d, 0);
  return wait_done(d, p);
}

static int request(unsigned op, uint32_t id, uint32_t a0, uint32_t a1,
                   const char *uri) {
  return request_on(dev, op, id, a0, a1, uri);
}

static size_t save(unsigned char *buf, size_t cap) {
  size_t n = 0;
  cr_assert_geq(hwsock_device_quiesce(dev, 1), 0);
  cr_assert_leq(hwsock_device_save_bound(dev), cap);
  cr_assert_eq(hwsock_device_save(dev, buf, cap, &n), 0);
  return n;
}

/* ---- tests -------------------------------------------------------------- */

Test(snapshot, quiesce_holds_requests_until_resumed) {
  cr_assert_eq(hwsock_device_quiesce(dev, 1), 0);
  pending p = post(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM, NULL);
  cr_assert_eq(hwsock_device_kick(dev, 0), 0);
  hwsock_device_flush(dev);
  uint32_t id, len;
  cr_assert_eq(vrb_get_used(&rq, &id, &len), 0, "taken while quiesced");
  cr_assert_eq(hwsock_device_pending(dev), 0);
  cr_assert_eq(hwsock_device_quiesce(dev, 0), 0);
  cr_assert_eq(wait_done(dev, p), 0);
}

Test(snapshot, save_needs_quiesce_and_room) {
  unsigned char buf[4096];
  size_t n;
  cr_assert_eq(hwsock_device_save(dev, buf, sizeof(buf), &n), HWSOCK_EBUSY);
  hwsock_device_quiesce(dev, 1);
  cr_assert_eq(hwsock_device_save(dev, buf, 60, &n), HWSOCK_ENOSPC);
  cr_assert_eq(hwsock_device_save(dev, buf, sizeof(buf), &n), 0);
  cr_assert_eq(n, 48u + 40u); /* header, one queue, nothing open */
}

Test(snapshot, a_restored_device_continues_the_ring_and_keeps_undecided_sockets) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 3, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 4, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  unsigned char buf[4096];
  size_t n = save(buf, sizeof(buf));
  free_device(dev);
  dev = new_device();
  cr_assert_eq(hwsock_device_restore(dev, buf, n), 0); /* none reset */
  cr_assert_eq(hwsock_device_status(dev) & HWSOCK_STATUS_DRIVER_OK,
               HWSOCK_STATUS_DRIVER_OK);
  /* ids 3 and 4 are open (undecided) again; 5 is free */
  cr_assert_eq(request(HWSOCK_OP_OPEN, 3, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), HWSOCK_EEXIST);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 5, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  /* and socket 3 still works: it connects through the new device */
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", lport);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 3, 0, 0, uri), 0);
}

Test(snapshot, a_connected_socket_comes_back_reset_and_its_recv_fails) {
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", lport);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0, uri), 0);
  /* a RECV that waits: nothing is sent to it */
  pending recv = post(HWSOCK_OP_RECV, 1, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  for (int i = 0; i < 50; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  uint32_t id, len;
  cr_assert_eq(vrb_get_used(&rq, &id, &len), 0, "RECV completed early");
  unsigned char buf[4096];
  cr_assert_eq(hwsock_device_quiesce(dev, 1), 1); /* the RECV */
  size_t n = save(buf, sizeof(buf));
  cr_assert_eq(n, 48u + 40u + 16u + 16u);
  /* the old device goes (its host connection with it); the RECV it held is
   * not completed by it */
  free_device(dev);
  cr_assert_eq(vrb_get_used(&rq, &id, &len), 0);
  dev = new_device();
  cr_assert_eq(hwsock_device_restore(dev, buf, n), 1); /* one reset */
  cr_assert_eq(vrb_get_used(&rq, &id, &len), 1, "RECV not completed");
  cr_assert_eq(id, (uint32_t)recv.head);
  hwsock_resp_hdr *r = vrb_host(&rq, recv.resp);
  cr_assert_eq(-(int)hwsock_le32_get(&r->status), HWSOCK_ECONNRESET);
  cr_assert_eq(hwsock_le64_get(&r->tag), 0xabc000u + HWSOCK_OP_RECV);
  vrb_release(&rq, recv.mark);
  cr_assert_eq(request(HWSOCK_OP_SEND, 1, 0, 0, NULL), HWSOCK_ECONNRESET);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 1, 0, 0, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0, uri), 0);
}

/* The fields of one valid blob, each broken in turn: refused, and the
 * device is left as new (it can still be configured by a driver). */
Test(snapshot, malformed_or_unfitting_blobs_are_refused_whole) {
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", lport);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 2, 0, 0, uri), 0);
  pending recv = post(HWSOCK_OP_RECV, 2, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  unsigned char good[4096], b[4096];
  size_t n = save(good, sizeof(good));
  free_device(dev);
  dev = new_device();
  struct {
    size_t off;
    unsigned char val;
    int err;
  } cases[] = {
      {0, 0x00, HWSOCK_EBADMSG},        /* magic */
      {4, 0x02, HWSOCK_EBADMSG},        /* version */
      {6, 0x02, HWSOCK_EBADMSG},        /* queues: length no longer adds up */
      {8, 0x00, HWSOCK_EBADMSG},        /* total length */
      {12, 0x09, HWSOCK_EBADMSG},       /* socket count vs length */
      {20, 0x44, HWSOCK_EBADMSG},       /* status: NEEDS_RESET */
      {24, 0x10, HWSOCK_EINVAL},        /* features: event queue */
      {32, 0x01, HWSOCK_EBADMSG},       /* in-band without the config */
      {48 + 0, 0x80, HWSOCK_EINVAL},    /* queue size > max_queue_size */
      {48 + 4, 0x55, HWSOCK_EBADMSG},   /* last_avail vs in flight */
      {48 + 10, 0x02, HWSOCK_EBADMSG},  /* signalled flag */
      {48 + 23, 0x70, HWSOCK_EINVAL},   /* desc table outside memory */
      {88 + 0, 0x20, HWSOCK_EINVAL},    /* socket id >= max_sockets */
      {88 + 4, 0x09, HWSOCK_EBADMSG},   /* socket state */
      {88 + 5, 0x09, HWSOCK_EBADMSG},   /* scheme */
      {104 + 0, 0x01, HWSOCK_EBADMSG},  /* request on queue 1 */
      {104 + 2, 0x40, HWSOCK_EBADMSG},  /* head >= queue size */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memcpy(b, good, n);
    b[cases[i].off] = cases[i].val;
    cr_assert_eq(hwsock_device_restore(dev, b, n), cases[i].err,
                 "case %zu (offset %zu)", i, cases[i].off);
    cr_assert_eq(hwsock_device_status(dev), 0, "case %zu left state", i);
  }
  cr_assert_eq(hwsock_device_restore(dev, good, n - 1), HWSOCK_EBADMSG);
  cr_assert_eq(hwsock_device_restore(dev, good, 10), HWSOCK_EBADMSG);
  /* and the good one still restores into the device every refusal left */
  cr_assert_eq(hwsock_device_restore(dev, good, n), 1);
  uint32_t id, len;
  cr_assert_eq(vrb_get_used(&rq, &id, &len), 1);
  cr_assert_eq(id, (uint32_t)recv.head);
  /* a second restore into a running device is refused */
  cr_assert_eq(hwsock_device_restore(dev, good, n), HWSOCK_EBUSY);
}

/* hwsock_device_set_regions() returns the requests in flight (their
 * buffers were translated through the old map), and
 * hwsock_device_inflight() says when the old mapping may go. */
Test(snapshot, a_new_memory_map_reports_the_requests_in_flight) {
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", lport);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0, uri), 0);
  pending recv = post(HWSOCK_OP_RECV, 1, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  for (int i = 0; i < 50; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  hwsock_region map[1] = {{.gpa = rq.gpa, .size = rq.size, .hva = rq.mem}};
  cr_assert_eq(hwsock_device_set_regions(dev, map, 1), 1);
  cr_assert_eq(hwsock_device_inflight(dev), 1);
  /* CLOSE cancels the RECV (it completes first), then closes */
  pending close_req = post(HWSOCK_OP_CLOSE, 1, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  cr_assert_eq(wait_done(dev, recv), HWSOCK_ECANCELED);
  cr_assert_eq(wait_done(dev, close_req), 0);
  cr_assert_eq(hwsock_device_inflight(dev), 0);
}
