/* Snapshot and restore: quiesce holds requests, save needs it, a restored
 * device continues the rings where the saved one was, sockets whose host
 * socket is gone come back reset (their waiting RECV completes with
 * ECONNRESET, every later call too, CLOSE frees the id), undecided sockets
 * come back as they were, listeners and UDP sockets are re-created on their
 * address (their waiting ACCEPT/RECV go on), a listener whose address was
 * taken meanwhile comes back reset, a device with the event queue keeps its
 * credits and posted buffers, and a malformed or unfitting blob is refused
 * with the device left reset. Real tcp and udp backends and host sockets
 * on 127.0.0.1; the driver side is the vring builder. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "device_int.h"
#include "hwsock/stats.h"
#include "support/vring_builder.h"

#define TCP_SO HWSOCK_BUILD_BACKEND_DIR "/tcp.so"
#define UDP_SO HWSOCK_BUILD_BACKEND_DIR "/udp.so"
#define DENY_SO HWSOCK_BUILD_BACKEND_DIR "/deny.so"
#define QSIZE 64u
#define EVBUF 512u
/* the blob (lib/snapshot.c): an offloaded socket's statistics, and the
 * device's counters at the end */
#define ST_LEN 48u
#define CNT_OPS (HWSOCK_OP_MAX_ + 1u)
#define CNT_LEN                                                              \
  (16u + 8u * (15u + 2u * CNT_OPS + CNT_OPS * HWSOCK_LAT_BUCKETS +           \
               HWSOCK_STATS_ERR_SLOTS))

static uv_loop_t loop;
static vrb rq, eq; /* queue 0: requests; queue 1: events (evq tests) */
static hwsock_device *dev;
static hwsock_policy *pol;
static hwsock_plugin *plug, *uplug, *dplug;
static int lst = -1;
static uint16_t lport;
static unsigned nqueues = 1; /* of the next new_device() */

/* The device's log on stderr: a failed test then says what restore did. */
static void log_line(void *opaque, int level, const char *msg) {
  (void)opaque;
  fprintf(stderr, "device log %d: %s\n", level, msg);
}

static const hwsock_device_ops dev_ops = {.size = sizeof(hwsock_device_ops),
                                          .log = log_line};

static hwsock_device *new_device(void) {
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.ops = &dev_ops;
  c.num_queues = nqueues;
  c.max_sockets = 16;
  c.max_inflight = 32;
  c.max_queue_size = QSIZE;
  c.policy = pol;
  c.backend_loop = &loop;
  hwsock_device *d;
  cr_assert_eq(hwsock_device_new(&c, &d), 0);
  cr_assert_eq(hwsock_device_add_backend(d, hwsock_plugin_desc(plug), NULL),
               0);
  cr_assert_eq(hwsock_device_add_backend(d, hwsock_plugin_desc(uplug), NULL),
               0);
  /* last: the schemes' own backends come first */
  cr_assert_eq(hwsock_device_add_backend(d, hwsock_plugin_desc(dplug), NULL),
               0);
  cr_assert_eq(hwsock_device_add_region(d, rq.gpa, rq.size, rq.mem), 0);
  cr_assert_eq(hwsock_device_add_region(d, eq.gpa, eq.size, eq.mem), 0);
  return d;
}

static void setup(void) {
  char err[256];
  const char *y = "version: 1\ndefault: offload\nrules: []\n";
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(vrb_init(&rq, 0x100000, 1u << 20, QSIZE), 0);
  cr_assert_eq(vrb_init(&eq, 0x400000, 1u << 20, QSIZE), 0);
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t", &pol, err,
                                         sizeof(err)), 0, "%s", err);
  cr_assert_eq(hwsock_plugin_load(TCP_SO, &plug, err, sizeof(err)), 0, "%s",
               err);
  cr_assert_eq(hwsock_plugin_load(UDP_SO, &uplug, err, sizeof(err)), 0, "%s",
               err);
  cr_assert_eq(hwsock_plugin_load(DENY_SO, &dplug, err, sizeof(err)), 0,
               "%s", err);
  nqueues = 1;
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
  hwsock_plugin_unload(uplug);
  hwsock_plugin_unload(dplug);
  hwsock_policy_free(pol);
  vrb_free(&rq);
  vrb_free(&eq);
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
  static unsigned char buf[1u << 16];
  size_t n;
  cr_assert_eq(hwsock_device_save(dev, buf, sizeof(buf), &n), HWSOCK_EBUSY);
  hwsock_device_quiesce(dev, 1);
  cr_assert_eq(hwsock_device_save(dev, buf, 60, &n), HWSOCK_ENOSPC);
  cr_assert_eq(hwsock_device_save(dev, buf, sizeof(buf), &n), 0);
  /* header, one queue, nothing open, the counters */
  cr_assert_eq(n, 48u + 40u + CNT_LEN);
}

Test(snapshot, a_restored_device_continues_the_ring_and_keeps_undecided_sockets) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 3, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 4, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  static unsigned char buf[1u << 16];
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
  static unsigned char buf[1u << 16];
  cr_assert_eq(hwsock_device_quiesce(dev, 1), 1); /* the RECV */
  size_t n = save(buf, sizeof(buf));
  cr_assert_eq(n, 48u + 40u + 16u + ST_LEN + 16u + CNT_LEN);
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
  static unsigned char good[1u << 16], b[1u << 16];
  size_t n = save(good, sizeof(good));
  free_device(dev);
  dev = new_device();
  struct {
    size_t off;
    unsigned char val;
    int err;
  } cases[] = {
      {0, 0x00, HWSOCK_EBADMSG},        /* magic */
      {4, 0x01, HWSOCK_EBADMSG},        /* version 1 (and any other) */
      {6, 0x02, HWSOCK_EINVAL},         /* queues: not this device's */
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
      {88 + 7, 0x04, HWSOCK_EBADMSG},   /* socket flags */
      {88 + 16 + 43, 0x80, HWSOCK_EBADMSG}, /* rule < -1 */
      {152 + 0, 0x01, HWSOCK_EBADMSG},  /* request on queue 1 */
      {152 + 2, 0x40, HWSOCK_EBADMSG},  /* head >= queue size */
      {40, 0x00, HWSOCK_EBADMSG},       /* counters' length */
      {44, 0x01, HWSOCK_EBADMSG},       /* reserved */
      {168 + 0, 0x00, HWSOCK_EBADMSG},  /* counters: no opcode slot */
      {168 + 4, 0x10, HWSOCK_EBADMSG},  /* counters: histogram buckets */
      {168 + 8, 0x10, HWSOCK_EBADMSG},  /* counters: error slots */
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

/* ---- listeners, UDP sockets and the event queue ------------------------ */

/* SETSOCKOPT of one 4-byte value. */
static int setopt(uint32_t id, uint32_t level, uint32_t name, uint32_t val) {
  pending p = {.mark = vrb_mark(&rq)};
  uint64_t req = vrb_alloc(&rq, sizeof(hwsock_req_hdr) + 4, 8);
  p.resp = vrb_alloc(&rq, 256, 8);
  hwsock_req_hdr *h = vrb_host(&rq, req);
  hwsock_le16_set(&h->opcode, HWSOCK_OP_SETSOCKOPT);
  hwsock_le32_set(&h->sock_id, id);
  hwsock_le32_set(&h->arg0, level);
  hwsock_le32_set(&h->arg1, name);
  hwsock_le32_set((hwsock_le32 *)(h + 1), val);
  vrb_seg segs[2] = {{req, (uint32_t)sizeof(*h) + 4, 0},
                     {p.resp, 256, HWSOCK_VRING_DESC_F_WRITE}};
  p.head = vrb_add_chain(&rq, segs, 2);
  cr_assert(p.head >= 0);
  vrb_publish(&rq);
  hwsock_device_kick(dev, 0);
  return wait_done(dev, p);
}

/* The local address of socket id (GETNAME) as a URI, and its port. */
static uint16_t local_port(uint32_t id, char *uri, size_t cap) {
  pending p = post(HWSOCK_OP_GETNAME, id, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  hwsock_resp_hdr *r = vrb_host(&rq, p.resp);
  uint32_t id2, len;
  for (int i = 0; i < 1000 && !vrb_get_used(&rq, &id2, &len); i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  cr_assert_eq(hwsock_le32_get(&r->status), 0);
  uint32_t n = hwsock_le32_get(&r->uri_len);
  cr_assert(n > 0 && n < cap);
  memcpy(uri, (const char *)(r + 1), n);
  uri[n] = 0;
  vrb_release(&rq, p.mark);
  const char *colon = strrchr(uri, ':');
  cr_assert_not_null(colon);
  return (uint16_t)atoi(colon + 1);
}

/* A host TCP client of 127.0.0.1:port; -1 when refused. */
static int tcp_client(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void udp_send_to(uint16_t port, const char *msg) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a,
                      sizeof(a)), (ssize_t)strlen(msg));
  close(fd);
}

/* Saves dev, frees it, restores the blob into a new device: the count of
 * sockets reset. */
static int move_device(void) {
  static unsigned char buf[1u << 16];
  size_t n = save(buf, sizeof(buf));
  free_device(dev);
  dev = new_device();
  return hwsock_device_restore(dev, buf, n);
}

/* A server as servers are written: SO_REUSEADDR, bind, listen. The option
 * is the guest's, kept with the socket: the new host socket binds past the
 * TIME_WAIT of the connection the old device closed. */
Test(snapshot, a_listener_comes_back_on_its_port_and_its_accept_goes_on) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(setopt(1, HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 1), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 1, 8, 0, NULL), 0);
  char uri[HWSOCK_URI_MAX + 1];
  uint16_t port = local_port(1, uri, sizeof(uri));
  /* one connection accepted and closed by the old device (its TIME_WAIT
   * stays on the port), then an ACCEPT waits across the move */
  int c0 = tcp_client(port);
  cr_assert_geq(c0, 0);
  cr_assert_eq(request(HWSOCK_OP_ACCEPT, 1, 0, 2, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 2, 0, 0, NULL), 0);
  close(c0);
  pending acc = post(HWSOCK_OP_ACCEPT, 1, 0, 3, NULL);
  hwsock_device_kick(dev, 0);
  for (int i = 0; i < 50; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  int rc = move_device();
  cr_assert_eq(rc, 0, "the listener was reset (%d)", rc);
  /* the same port takes a new connection; the waiting ACCEPT gets it */
  int c = tcp_client(port);
  cr_assert_geq(c, 0, "nothing listens on %u after restore", port);
  cr_assert_eq(wait_done(dev, acc), 0);
  cr_assert_eq(write(c, "hi", 2), 2);
  pending rd = post(HWSOCK_OP_RECV, 3, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  hwsock_resp_hdr *r = vrb_host(&rq, rd.resp);
  cr_assert_eq(wait_done(dev, rd), 0);
  cr_assert_eq(hwsock_le32_get(&r->len), 2);
  cr_assert_eq(memcmp(r + 1, "hi", 2), 0);
  /* and the listener still accepts after that */
  int c2 = tcp_client(port);
  cr_assert_geq(c2, 0);
  cr_assert_eq(request(HWSOCK_OP_ACCEPT, 1, 0, 4, NULL), 0);
  char again[HWSOCK_URI_MAX + 1];
  cr_assert_eq(local_port(1, again, sizeof(again)), port);
  cr_assert_str_eq(again, uri);
  close(c);
  close(c2);
}

Test(snapshot, a_listener_whose_port_was_taken_comes_back_reset) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 1, 8, 0, NULL), 0);
  char uri[HWSOCK_URI_MAX + 1];
  uint16_t port = local_port(1, uri, sizeof(uri));
  pending acc = post(HWSOCK_OP_ACCEPT, 1, 0, 2, NULL);
  hwsock_device_kick(dev, 0);
  static unsigned char buf[1u << 16];
  size_t n = save(buf, sizeof(buf));
  free_device(dev);
  /* someone else listens there now */
  int other = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(other, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(other, 4), 0);
  dev = new_device();
  int rc = hwsock_device_restore(dev, buf, n);
  cr_assert_eq(rc, 1, "restore: %d", rc);
  cr_assert_eq(wait_done(dev, acc), HWSOCK_ECONNRESET);
  cr_assert_eq(request(HWSOCK_OP_ACCEPT, 1, 0, 2, NULL), HWSOCK_ECONNRESET);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 1, 0, 0, NULL), 0);
  close(other);
}

Test(snapshot, a_udp_socket_comes_back_on_its_address_and_receives) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 5, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 5, 0, 0, "udp://127.0.0.1:0"), 0);
  char uri[HWSOCK_URI_MAX + 1];
  uint16_t port = local_port(5, uri, sizeof(uri));
  pending rd = post(HWSOCK_OP_RECV, 5, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  for (int i = 0; i < 50; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  cr_assert_eq(move_device(), 0, "the UDP socket was reset");
  /* the RECV that waited across the move gets a datagram sent to the old
   * address */
  udp_send_to(port, "after");
  hwsock_resp_hdr *r = vrb_host(&rq, rd.resp);
  cr_assert_eq(wait_done(dev, rd), 0);
  cr_assert_eq(hwsock_le32_get(&r->len), 5);
  cr_assert_eq(memcmp(r + 1, "after", 5), 0);
  /* and a second one, with a new RECV */
  udp_send_to(port, "again");
  pending rd2 = post(HWSOCK_OP_RECV, 5, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  r = vrb_host(&rq, rd2.resp);
  cr_assert_eq(wait_done(dev, rd2), 0);
  cr_assert_eq(hwsock_le32_get(&r->len), 5);
  cr_assert_eq(memcmp(r + 1, "again", 5), 0);
}

/* Options the guest set before the decision are kept: an SO_RCVBUF set
 * on an undecided socket reaches the host socket it gets after the move
 * (the host's default, 128 KiB and more, would show it lost). */
Test(snapshot, options_set_before_the_decision_survive) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(setopt(1, HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 4096), 0);
  cr_assert_eq(move_device(), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "tcp://127.0.0.1:0"), 0);
  hwsock_bsock_info bi;
  memset(&bi, 0, sizeof(bi));
  bi.size = sizeof(bi);
  bi.fd = -1;
  cr_assert_eq(hwsock__sock_info(dev, &dev->socks[1], &bi), 0);
  int v = 0;
  socklen_t vl = sizeof(v);
  cr_assert_eq(getsockopt(bi.fd, SOL_SOCKET, SO_RCVBUF, &v, &vl), 0);
  cr_assert_leq(v, 16384, "SO_RCVBUF preset lost: %d", v);
}

/* An int option of socket id's host socket (its backend's fd). */
static int host_opt(uint32_t id, int level, int name) {
  hwsock_bsock_info bi;
  memset(&bi, 0, sizeof(bi));
  bi.size = sizeof(bi);
  bi.fd = -1;
  cr_assert_eq(hwsock__sock_info(dev, &dev->socks[id], &bi), 0);
  cr_assert_geq(bi.fd, 0);
  int v = 0;
  socklen_t vl = sizeof(v);
  cr_assert_eq(getsockopt(bi.fd, level, name, &v, &vl), 0);
  return v;
}

/* Options the guest set after the decision (on a bound socket, a
 * listener, a bound UDP socket) were applied to the old host socket: the
 * new one gets them too. Host defaults would show each one lost:
 * SO_RCVBUF 128 KiB and more, the others 0 (TCP_KEEPIDLE 7200). */
Test(snapshot, options_set_after_the_decision_are_applied_again) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(setopt(1, HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 4096), 0);
  cr_assert_eq(setopt(1, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, 1), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 1, 8, 0, NULL), 0);
  cr_assert_eq(setopt(1, HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE, 1), 0);
  cr_assert_eq(setopt(1, HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE, 77), 0);
  cr_assert_eq(setopt(1, HWSOCK_SOL_IP, HWSOCK_IP_TOS, 0x10), 0);
  /* the last value counts */
  cr_assert_eq(setopt(1, HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE, 78), 0);
  /* one that fails on the host is not kept */
  cr_assert_eq(setopt(1, HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPCNT, 0),
               HWSOCK_EINVAL);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 2, 0, 0, "udp://127.0.0.1:0"), 0);
  cr_assert_eq(setopt(2, HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST, 1), 0);
  char uri[HWSOCK_URI_MAX + 1];
  uint16_t port = local_port(1, uri, sizeof(uri));
  int rc = move_device();
  cr_assert_eq(rc, 0, "restore: %d", rc);
  cr_assert_eq(local_port(1, uri, sizeof(uri)), port);
  cr_assert_leq(host_opt(1, SOL_SOCKET, SO_RCVBUF), 16384);
  cr_assert_neq(host_opt(1, IPPROTO_TCP, TCP_NODELAY), 0);
  cr_assert_neq(host_opt(1, SOL_SOCKET, SO_KEEPALIVE), 0);
  cr_assert_eq(host_opt(1, IPPROTO_TCP, TCP_KEEPIDLE), 78);
  cr_assert_eq(host_opt(1, IPPROTO_IP, IP_TOS), 0x10);
  cr_assert_neq(host_opt(2, SOL_SOCKET, SO_BROADCAST), 0);
  /* and again after a second move: the restored socket keeps its table */
  cr_assert_eq(move_device(), 0);
  cr_assert_eq(host_opt(1, IPPROTO_TCP, TCP_KEEPIDLE), 78);
  cr_assert_neq(host_opt(2, SOL_SOCKET, SO_BROADCAST), 0);
}

/* Every option a guest may set, one before the decision and eleven
 * after: more than open() takes (HWSOCK_BPRESET_MAX); all come back. */
Test(snapshot, every_settable_option_comes_back) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 3, HWSOCK_AF_INET6, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(setopt(3, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 1), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 3, 0, 0, "tcp6://[::1]:0"), 0);
  static const struct {
    uint32_t level, name, val;
    int hl, hn;
  } o[] = {
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 1, SOL_SOCKET, SO_REUSEADDR},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST, 1, SOL_SOCKET, SO_BROADCAST},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, 4096, SOL_SOCKET, SO_SNDBUF},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 4096, SOL_SOCKET, SO_RCVBUF},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE, 1, SOL_SOCKET, SO_KEEPALIVE},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, 1, IPPROTO_TCP, TCP_NODELAY},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE, 61, IPPROTO_TCP, TCP_KEEPIDLE},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPINTVL, 62, IPPROTO_TCP, TCP_KEEPINTVL},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPCNT, 5, IPPROTO_TCP, TCP_KEEPCNT},
      {HWSOCK_SOL_IPV6, HWSOCK_IPV6_TCLASS, 0x20, IPPROTO_IPV6, IPV6_TCLASS},
  };
  size_t n = sizeof(o) / sizeof(o[0]);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(setopt(3, o[i].level, o[i].name, o[i].val), 0, "%zu", i);
  /* SO_LINGER: two values */
  pending p = {.mark = vrb_mark(&rq)};
  uint64_t req = vrb_alloc(&rq, sizeof(hwsock_req_hdr) + 8, 8);
  p.resp = vrb_alloc(&rq, 256, 8);
  hwsock_req_hdr *h = vrb_host(&rq, req);
  hwsock_le16_set(&h->opcode, HWSOCK_OP_SETSOCKOPT);
  hwsock_le32_set(&h->sock_id, 3);
  hwsock_le32_set(&h->arg0, HWSOCK_SOL_SOCKET);
  hwsock_le32_set(&h->arg1, HWSOCK_SO_LINGER);
  hwsock_le32_set((hwsock_le32 *)(h + 1), 1);
  hwsock_le32_set((hwsock_le32 *)(h + 1) + 1, 9);
  vrb_seg segs[2] = {{req, (uint32_t)sizeof(*h) + 8, 0},
                     {p.resp, 256, HWSOCK_VRING_DESC_F_WRITE}};
  p.head = vrb_add_chain(&rq, segs, 2);
  vrb_publish(&rq);
  hwsock_device_kick(dev, 0);
  cr_assert_eq(wait_done(dev, p), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 3, 8, 0, NULL), 0);
  int rc = move_device();
  cr_assert_eq(rc, 0, "restore: %d", rc);
  cr_assert_neq(host_opt(3, IPPROTO_IPV6, IPV6_V6ONLY), 0);
  for (size_t i = 0; i < n; i++) {
    int v = host_opt(3, o[i].hl, o[i].hn);
    if (o[i].hn == SO_SNDBUF || o[i].hn == SO_RCVBUF)
      cr_assert_leq(v, 2 * (int)o[i].val, "option %zu lost: %d", i, v);
    else
      cr_assert_eq(v, (int)o[i].val, "option %zu lost: %d", i, v);
  }
  hwsock_bsock_info bi;
  memset(&bi, 0, sizeof(bi));
  bi.size = sizeof(bi);
  bi.fd = -1;
  cr_assert_eq(hwsock__sock_info(dev, &dev->socks[3], &bi), 0);
  struct linger l;
  socklen_t ll = sizeof(l);
  cr_assert_eq(getsockopt(bi.fd, SOL_SOCKET, SO_LINGER, &l, &ll), 0);
  cr_assert(l.l_onoff && l.l_linger == 9, "SO_LINGER lost");
}

/* The restoring device's policy sets TCP_KEEPINTVL on the host socket:
 * the guest's value of it, ninth in the socket's table (beyond what
 * open() takes), does not override the policy's; the tenth still comes
 * back. */
Test(snapshot, the_restoring_policys_set_wins_over_the_guests_options) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "tcp://127.0.0.1:0"), 0);
  static const uint32_t o[][3] = {
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 1},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST, 1},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, 4096},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 4096},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE, 1},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, 1},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE, 61},
      {HWSOCK_SOL_IP, HWSOCK_IP_TOS, 4},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPINTVL, 62},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPCNT, 5}};
  for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
    cr_assert_eq(setopt(1, o[i][0], o[i][1], o[i][2]), 0, "%zu", i);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 1, 8, 0, NULL), 0);
  static unsigned char buf[1u << 16];
  size_t n = save(buf, sizeof(buf));
  free_device(dev);
  const char *y = "version: 1\ndefault: offload\nrules:\n"
                  "  - action: offload\n    scheme: [tcp]\n"
                  "    direction: inbound\n    set: {keepintvl: 30}\n";
  char err[256];
  hwsock_policy_free(pol);
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t4", &pol, err,
                                         sizeof(err)), 0, "%s", err);
  dev = new_device();
  cr_assert_eq(hwsock_device_restore(dev, buf, n), 0);
  cr_assert_eq(host_opt(1, IPPROTO_TCP, TCP_KEEPINTVL), 30);
  cr_assert_eq(host_opt(1, IPPROTO_TCP, TCP_KEEPCNT), 5);
  cr_assert_eq(host_opt(1, IPPROTO_TCP, TCP_KEEPIDLE), 61);
}

static uint32_t le32_at(const unsigned char *p) {
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void le32_put(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* The blob of n bytes as an older library wrote it (version 2 or 3: no
 * counters, no socket statistics; version 2 also had no options set after
 * the decision, which the caller sees to): its new length. */
static size_t as_version(unsigned char *b, size_t n, unsigned version) {
  size_t p = 48 + (size_t)(b[6] | b[7] << 8) * 40;
  uint32_t ns = le32_at(b + 12), clen = le32_at(b + 40);
  for (uint32_t i = 0; i < ns; i++) {
    if (b[p + 7] & 2) { /* the statistics go */
      memmove(b + p + 16, b + p + 16 + ST_LEN, n - (p + 16 + ST_LEN));
      n -= ST_LEN;
      b[p + 7] &= (unsigned char)~2;
    }
    size_t len = 16 + (size_t)b[p + 13] * 20 + b[p + 14] + b[p + 15];
    p += (len + 7) & ~(size_t)7;
  }
  n -= clen;
  le32_put(b + 40, 0);
  le32_put(b + 8, (uint32_t)n);
  b[4] = (unsigned char)version;
  return n;
}

/* Blobs of version 2 (before the options set after the decision were
 * saved) and 3 (before the counters) still restore; one with more options
 * than version 2 allowed does not pass for one. */
Test(snapshot, older_blobs_still_restore) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(setopt(1, HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 4096), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 1, 8, 0, NULL), 0);
  static unsigned char buf[1u << 16];
  size_t n = save(buf, sizeof(buf));
  cr_assert_eq(buf[4] | buf[5] << 8, 4, "not a version 4 blob");
  n = as_version(buf, n, 2);
  free_device(dev);
  dev = new_device();
  cr_assert_eq(hwsock_device_restore(dev, buf, n), 0);
  cr_assert_leq(host_opt(1, SOL_SOCKET, SO_RCVBUF), 16384);
  /* nine options: a version 3 blob only */
  static const uint32_t more[][2] = {
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPINTVL},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPCNT},
      {HWSOCK_SOL_IP, HWSOCK_IP_TOS}};
  for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
    cr_assert_eq(setopt(1, more[i][0], more[i][1], 4), 0, "%zu", i);
  n = as_version(buf, save(buf, sizeof(buf)), 3);
  free_device(dev);
  dev = new_device();
  buf[4] = 2;
  cr_assert_eq(hwsock_device_restore(dev, buf, n), HWSOCK_EBADMSG);
  buf[4] = 3;
  cr_assert_eq(hwsock_device_restore(dev, buf, n), 0);
  cr_assert_eq(host_opt(1, IPPROTO_IP, IP_TOS), 4);
  /* nothing carried the counters: the device counts from zero */
  hwsock_device_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  hwsock_device_get_stats(dev, &st);
  cr_assert_eq(st.requests_by_op[HWSOCK_OP_SETSOCKOPT], 0);
}

/* Every counter of b is at least a's (the gauges sockets_open and
 * sockets_offloaded aside): none went back. */
static void assert_counters_go_on(const hwsock_device_stats *a,
                                  const hwsock_device_stats *b) {
  for (size_t off = offsetof(hwsock_device_stats, kicks);
       off + 8 <= sizeof(*a); off += 8) {
    if (off == offsetof(hwsock_device_stats, sockets_open) ||
        off == offsetof(hwsock_device_stats, sockets_offloaded))
      continue;
    uint64_t x, y;
    memcpy(&x, (const char *)a + off, 8);
    memcpy(&y, (const char *)b + off, 8);
    cr_assert_geq(y, x, "the counter at offset %zu went back: %llu -> %llu",
                  off, (unsigned long long)x, (unsigned long long)y);
  }
}

static hwsock_device_stats stats_of(const hwsock_device *d) {
  hwsock_device_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  hwsock_device_get_stats(d, &st);
  return st;
}

static int info_cb(const hwsock_sock_info *i, void *arg) {
  hwsock_sock_info *out = arg;
  if (i->id == out->id)
    *out = *i;
  return 0;
}

/* The socket table's line of socket id (id UINT32_MAX: none). */
static hwsock_sock_info info_of(const hwsock_device *d, uint32_t id) {
  hwsock_sock_info i;
  memset(&i, 0, sizeof(i));
  i.id = id;
  hwsock_device_foreach_socket(d, info_cb, &i);
  if (i.size == 0)
    i.id = UINT32_MAX;
  return i;
}

/* A restore continues the saved device's counters (a scraper takes a
 * drop for a reset) and the socket table's byte counts: nothing counted
 * twice either (the ACCEPT dispatched again was counted by the old
 * device). */
Test(snapshot, a_restore_continues_the_counters) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "udp://127.0.0.1:0"), 0);
  char uri[HWSOCK_URI_MAX + 1];
  uint16_t port = local_port(1, uri, sizeof(uri));
  udp_send_to(port, "seven!!");
  cr_assert_eq(request(HWSOCK_OP_RECV, 1, 0, 0, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 2, 4, 0, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_ACCEPT, 9, 0, 3, NULL), HWSOCK_EBADF);
  pending acc = post(HWSOCK_OP_ACCEPT, 2, 0, 3, NULL);
  hwsock_device_kick(dev, 0);
  for (int i = 0; i < 50; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  cr_assert_geq(hwsock_device_quiesce(dev, 1), 0);
  hwsock_device_stats a = stats_of(dev);
  hwsock_sock_info s1 = info_of(dev, 1);
  cr_assert_eq(s1.bytes_in, 7);
  cr_assert_eq(move_device(), 0);
  hwsock_device_stats b = stats_of(dev);
  assert_counters_go_on(&a, &b);
  cr_assert_eq(b.requests, a.requests, "the ACCEPT was counted twice");
  cr_assert_eq(b.requests_by_op[HWSOCK_OP_ACCEPT],
               a.requests_by_op[HWSOCK_OP_ACCEPT]);
  cr_assert_eq(hwsock_stats_errors(&b, HWSOCK_EBADF), 1);
  hwsock_sock_info t1 = info_of(dev, 1);
  cr_assert_eq(t1.bytes_in, 7, "the socket table's bytes restarted");
  cr_assert_eq(t1.requests_in, s1.requests_in);
  /* and it counts on */
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 1, 0, 0, NULL), 0);
  hwsock_device_stats c = stats_of(dev);
  cr_assert_eq(c.requests, a.requests + 1);
  int cl = tcp_client(local_port(2, uri, sizeof(uri)));
  cr_assert_geq(cl, 0);
  cr_assert_eq(wait_done(dev, acc), 0);
  close(cl);
}

/* ---- the event queue ---------------------------------------------------- */

typedef struct evrec {
  uint32_t sock, window, len, status;
  unsigned type;
  char data[64];
} evrec;

static void evq_start(void) {
  free_device(dev);
  nqueues = 2;
  dev = new_device();
  cr_assert_eq(hwsock_device_set_features(dev, HWSOCK_F_VERSION_1 |
                                                   HWSOCK_F_EVENT_QUEUE), 0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 0, QSIZE, rq.desc_gpa,
                                         rq.avail_gpa, rq.used_gpa), 0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 1, QSIZE, eq.desc_gpa,
                                         eq.avail_gpa, eq.used_gpa), 0);
  cr_assert_eq(hwsock_device_start(dev), 0);
}

static void post_evbufs(unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    uint64_t g = vrb_alloc(&eq, EVBUF, 16);
    cr_assert(g != 0);
    vrb_seg s = {g, EVBUF, HWSOCK_VRING_DESC_F_WRITE};
    cr_assert(vrb_add_chain(&eq, &s, 1) >= 0);
  }
  vrb_publish(&eq);
  hwsock_device_kick(dev, 1);
}

/* The next event with content (buffers returned empty are skipped and
 * counted in *empty). */
static evrec next_event(unsigned *empty) {
  uint32_t head, len = 0;
  evrec e;
  memset(&e, 0, sizeof(e));
  for (int i = 0; i < 20000; i++) {
    if (vrb_get_used(&eq, &head, &len)) {
      if (len == 0) {
        (*empty)++;
        continue;
      }
      const hwsock_event *ev =
          vrb_host(&eq, hwsock_le64_get(&eq.desc[head].addr));
      e.sock = hwsock_le32_get(&ev->sock_id);
      e.type = hwsock_le16_get(&ev->type);
      e.window = hwsock_le32_get(&ev->window);
      e.len = hwsock_le32_get(&ev->len);
      e.status = hwsock_le32_get(&ev->status);
      /* the data ends the used length (a datagram's follows the URI
       * area) */
      size_t off = len - e.len;
      if (e.len < sizeof(e.data) && off >= sizeof(*ev))
        memcpy(e.data, (const char *)ev + off, e.len);
      return e;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    hwsock_device_flush(dev);
    if (i > 100)
      usleep(100);
  }
  cr_assert_fail("no event");
  return e;
}

/* A device with the event queue: a UDP socket with credit, a listener
 * armed for ACCEPTABLE, a connected TCP socket reading through events.
 * After the move the credits are as they were, the event buffers posted
 * before the save are used by the new device, the UDP socket and the
 * listener go on, and the connection that could not move reports a reset
 * through the event queue (the guest holds no request for it to fail). */
Test(snapshot, an_event_queue_device_keeps_credits_and_posted_buffers) {
  evq_start();
  /* UDP socket 1, 3 datagrams of credit */
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "udp://127.0.0.1:0"), 0);
  char uri[HWSOCK_URI_MAX + 1];
  uint16_t uport = local_port(1, uri, sizeof(uri));
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 1, 3, 0, NULL), 0);
  /* listener 2, one ACCEPTABLE armed */
  cr_assert_eq(request(HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 2, 0, 0, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 2, 8, 0, NULL), 0);
  uint16_t tport = local_port(2, uri, sizeof(uri));
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 2, 0, HWSOCK_WATCH_ACCEPT, NULL), 0);
  /* connection 3 to the host listener, 1000 bytes of credit */
  char dst[64];
  snprintf(dst, sizeof(dst), "tcp://127.0.0.1:%u", lport);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 3, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 3, 0, 0, dst), 0);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 3, 1000, 0, NULL), 0);
  /* one datagram before the move: the window goes 3 -> 2 */
  post_evbufs(4);
  unsigned empty = 0;
  udp_send_to(uport, "one");
  evrec e = next_event(&empty);
  cr_assert_eq(e.sock, 1);
  cr_assert_eq(e.type, HWSOCK_EV_DATA);
  cr_assert_eq(e.window, 2);
  /* 3 buffers stay posted across the move */
  cr_assert_eq(move_device(), 1, "only the connection is reset");
  cr_assert_eq(hwsock_device_status(dev) & HWSOCK_STATUS_DRIVER_OK,
               HWSOCK_STATUS_DRIVER_OK);
  /* the reset connection says so through the event queue */
  e = next_event(&empty);
  cr_assert_eq(e.sock, 3);
  cr_assert_eq(e.type, HWSOCK_EV_ERROR);
  cr_assert_eq(e.status, (uint32_t)-HWSOCK_ECONNRESET);
  cr_assert_eq(request(HWSOCK_OP_RECV, 3, 0, 0, NULL), HWSOCK_ECONNRESET);
  /* the UDP socket's credit is what was left: 2 */
  udp_send_to(uport, "two");
  e = next_event(&empty);
  cr_assert_eq(e.sock, 1);
  cr_assert_eq(e.type, HWSOCK_EV_DATA);
  cr_assert_eq(e.window, 1);
  cr_assert_eq(e.len, 3);
  cr_assert_eq(memcmp(e.data, "two", 3), 0);
  /* the listener's armed watch: a connection makes it ACCEPTABLE */
  int c = tcp_client(tport);
  cr_assert_geq(c, 0);
  e = next_event(&empty);
  cr_assert_eq(e.sock, 2);
  cr_assert_eq(e.type, HWSOCK_EV_ACCEPTABLE);
  cr_assert_eq(request(HWSOCK_OP_ACCEPT, 2, 0, 4, NULL), 0);
  /* traffic continues: more credit, more buffers, the last datagrams */
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 1, 1, 0, NULL), 0);
  post_evbufs(2);
  udp_send_to(uport, "three");
  e = next_event(&empty);
  cr_assert_eq(e.sock, 1);
  cr_assert_eq(e.window, 1);
  udp_send_to(uport, "four");
  e = next_event(&empty);
  cr_assert_eq(e.window, 0);
  cr_assert_eq(memcmp(e.data, "four", 4), 0);
  cr_assert_eq(empty, 0);
  close(c);
}

/* A connected UDP socket comes back bound where it was and connected to
 * its peer: a SEND without address reaches the peer from the old port,
 * and the peer's answer to that port is received. */
Test(snapshot, a_connected_udp_socket_comes_back_connected) {
  int peer = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(peer, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(peer, (struct sockaddr *)&a, &al), 0);
  char dst[64], uri[HWSOCK_URI_MAX + 1];
  snprintf(dst, sizeof(dst), "udp://127.0.0.1:%u", ntohs(a.sin_port));
  cr_assert_eq(request(HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 2, 0, 0, "udp://127.0.0.1:0"), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 2, 0, 0, dst), 0);
  uint16_t port = local_port(2, uri, sizeof(uri));
  int rc = move_device();
  cr_assert_eq(rc, 0, "the UDP socket was reset (%d)", rc);
  cr_assert_eq(request(HWSOCK_OP_SEND, 2, 0, 0, NULL), 0); /* "hello" */
  char buf[16];
  struct sockaddr_in from;
  socklen_t fl = sizeof(from);
  cr_assert_eq(recvfrom(peer, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                        &fl), 5);
  cr_assert_eq(memcmp(buf, "hello", 5), 0);
  cr_assert_eq(ntohs(from.sin_port), port, "sent from another port");
  cr_assert_eq(sendto(peer, "back", 4, 0, (struct sockaddr *)&from, fl), 4);
  pending rd = post(HWSOCK_OP_RECV, 2, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  hwsock_resp_hdr *r = vrb_host(&rq, rd.resp);
  cr_assert_eq(wait_done(dev, rd), 0);
  cr_assert_eq(hwsock_le32_get(&r->len), 4);
  close(peer);
}

/* The restoring device decides again with its own policy: one that no
 * longer offloads UDP servers resets the UDP socket (its waiting RECV
 * fails) while the listener, still allowed, comes back. */
Test(snapshot, the_restoring_devices_policy_decides_again) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "udp://127.0.0.1:0"), 0);
  pending rd = post(HWSOCK_OP_RECV, 1, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 2, 4, 0, NULL), 0); /* any port */
  char uri[HWSOCK_URI_MAX + 1];
  uint16_t tport = local_port(2, uri, sizeof(uri));
  static unsigned char buf[1u << 16];
  size_t n = save(buf, sizeof(buf));
  free_device(dev);
  const char *y = "version: 1\ndefault: offload\nrules:\n"
                  "  - action: deny\n    scheme: [udp]\n"
                  "    direction: inbound\n    reason: no UDP servers\n";
  char err[256];
  hwsock_policy_free(pol);
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t2", &pol, err,
                                         sizeof(err)), 0, "%s", err);
  dev = new_device();
  int rc = hwsock_device_restore(dev, buf, n);
  cr_assert_eq(rc, 1, "restore: %d", rc);
  cr_assert_eq(wait_done(dev, rd), HWSOCK_ECONNRESET);
  int c = tcp_client(tport);
  cr_assert_geq(c, 0, "the listener did not come back");
  cr_assert_eq(request(HWSOCK_OP_ACCEPT, 2, 0, 3, NULL), 0);
  close(c);
}

/* One socket of each kind the table of EMBEDDING.md §11 names that the
 * other tests do not: declined stays declined, denied (by the deny
 * backend) is undecided again and its next CONNECT is decided anew, a
 * bound TCP socket comes back bound on its address and can listen there,
 * a connection is reset; only the connection counts as reset. */
Test(snapshot, each_kind_of_socket_gets_its_documented_outcome) {
  free_device(dev);
  const char *y = "version: 1\ndefault: offload\nrules:\n"
                  "  - action: decline\n    to: 127.0.0.2\n"
                  "  - action: deny\n    to: 127.0.0.3\n"
                  "    error: ENETUNREACH\n";
  char err[256], dst[64], uri[HWSOCK_URI_MAX + 1], again[HWSOCK_URI_MAX + 1];
  hwsock_policy_free(pol);
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t3", &pol, err,
                                         sizeof(err)), 0, "%s", err);
  dev = new_device();
  cr_assert_eq(hwsock_device_set_features(dev, HWSOCK_F_VERSION_1), 0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 0, QSIZE, rq.desc_gpa,
                                         rq.avail_gpa, rq.used_gpa), 0);
  cr_assert_eq(hwsock_device_start(dev), 0);
  snprintf(dst, sizeof(dst), "tcp://127.0.0.1:%u", lport);
  for (uint32_t id = 1; id <= 4; id++)
    cr_assert_eq(request(HWSOCK_OP_OPEN, id, HWSOCK_AF_INET,
                         HWSOCK_SOCK_STREAM, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0, "tcp://127.0.0.2:80"),
               HWSOCK_EDECLINED);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 2, 0, 0, "tcp://127.0.0.3:80"),
               HWSOCK_ENETUNREACH);
  /* denied for good on this device: even an allowed destination */
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 2, 0, 0, dst), HWSOCK_ENETUNREACH);
  cr_assert_eq(request(HWSOCK_OP_BIND, 3, 0, 0, "tcp://127.0.0.1:0"), 0);
  uint16_t port = local_port(3, uri, sizeof(uri));
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 4, 0, 0, dst), 0);
  int rc = move_device();
  cr_assert_eq(rc, 1, "restore: %d", rc);
  cr_assert_eq(request(HWSOCK_OP_SEND, 1, 0, 0, NULL), HWSOCK_EDECLINED);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 2, 0, 0, dst), 0);
  cr_assert_eq(local_port(3, again, sizeof(again)), port);
  cr_assert_str_eq(again, uri);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 3, 4, 0, NULL), 0);
  int c = tcp_client(port);
  cr_assert_geq(c, 0);
  cr_assert_eq(request(HWSOCK_OP_ACCEPT, 3, 0, 5, NULL), 0);
  close(c);
  cr_assert_eq(request(HWSOCK_OP_SEND, 4, 0, 0, NULL), HWSOCK_ECONNRESET);
}

/* A hand-over (hwsock_device_restore_held) re-creates nothing and reports
 * nothing until it resumes: a socket whose host socket was not imported
 * is then reset like any other, and with the event queue it says so by an
 * ERROR event. */
Test(snapshot, a_hand_over_reports_the_sockets_it_did_not_import) {
  evq_start();
  char dst[64];
  snprintf(dst, sizeof(dst), "tcp://127.0.0.1:%u", lport);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 3, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 3, 0, 0, dst), 0);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 3, 1000, 0, NULL), 0);
  post_evbufs(2);
  static unsigned char buf[1u << 16];
  size_t n = save(buf, sizeof(buf));
  free_device(dev);
  dev = new_device();
  cr_assert_eq(hwsock_device_restore_held(dev, buf, n), 1);
  unsigned empty = 0;
  uint32_t head, len;
  for (int i = 0; i < 50; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    hwsock_device_flush(dev);
  }
  cr_assert_eq(vrb_get_used(&eq, &head, &len), 0, "an event while held");
  cr_assert_geq(hwsock_device_resume_held(dev), 0);
  evrec e = next_event(&empty);
  cr_assert_eq(e.sock, 3);
  cr_assert_eq(e.type, HWSOCK_EV_ERROR);
  cr_assert_eq(e.status, (uint32_t)-HWSOCK_ECONNRESET);
}

/* IPv6: a udp6 socket on ::1 and a tcp6 listener come back on their
 * addresses (the local URIs are udp6:// and tcp6:// as the backends name
 * them). */
Test(snapshot, ipv6_sockets_come_back_on_their_addresses) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET6, HWSOCK_SOCK_DGRAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "udp6://[::1]:0"), 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET6, HWSOCK_SOCK_STREAM,
                       NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 2, 0, 0, "tcp6://[::1]:0"), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 2, 4, 0, NULL), 0);
  char u1[HWSOCK_URI_MAX + 1], u2[HWSOCK_URI_MAX + 1];
  char a1[HWSOCK_URI_MAX + 1], a2[HWSOCK_URI_MAX + 1];
  uint16_t p1 = local_port(1, u1, sizeof(u1));
  uint16_t p2 = local_port(2, u2, sizeof(u2));
  int rc = move_device();
  cr_assert_eq(rc, 0, "restore: %d", rc);
  cr_assert_eq(local_port(1, a1, sizeof(a1)), p1);
  cr_assert_str_eq(a1, u1);
  cr_assert_eq(local_port(2, a2, sizeof(a2)), p2);
  cr_assert_str_eq(a2, u2);
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(p1),
                           .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  cr_assert_eq(sendto(fd, "six", 3, 0, (struct sockaddr *)&a, sizeof(a)), 3);
  close(fd);
  pending rd = post(HWSOCK_OP_RECV, 1, 0, 0, NULL);
  hwsock_device_kick(dev, 0);
  hwsock_resp_hdr *r = vrb_host(&rq, rd.resp);
  cr_assert_eq(wait_done(dev, rd), 0);
  cr_assert_eq(hwsock_le32_get(&r->len), 3);
  int c = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  a.sin6_port = htons(p2);
  cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(request(HWSOCK_OP_ACCEPT, 2, 0, 3, NULL), 0);
  close(c);
}
