/* Handing a device's host sockets to another device (lib/handover.c,
 * docs/EMBEDDING.md §12): a connection exported with its host socket and
 * imported into the restored device keeps its bytes, and the RECV that
 * waited across the hand-over completes with the peer's next bytes instead
 * of ECONNRESET, and a connected UDP socket keeps its address and its
 * waiting RECV, and a listener its port and its waiting ACCEPT; export
 * waits (EAGAIN) while a socket is between states;
 * a bad record is refused and the socket stays reset. Real tcp and udp
 * backends and host sockets on 127.0.0.1; the driver side is the vring
 * builder. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
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
#define QSIZE 64u

static uv_loop_t loop;
static vrb rq;
static hwsock_device *dev;
static hwsock_policy *pol;
static hwsock_plugin *plug, *uplug;
static int lst = -1, peer = -1;
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
  cr_assert_eq(hwsock_device_add_backend(d, hwsock_plugin_desc(uplug), NULL),
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
  cr_assert_eq(hwsock_plugin_load(UDP_SO, &uplug, err, sizeof(err)), 0, "%s",
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
  hwsock_plugin_unload(uplug);
  hwsock_policy_free(pol);
  vrb_free(&rq);
  close(lst);
  if (peer >= 0)
    close(peer);
}

TestSuite(handover, .init = setup, .fini = teardown);

/* ---- the driver side ---------------------------------------------------- */

typedef struct pending {
  int head;
  uint64_t resp;
  size_t mark;
} pending;

static pending post(unsigned op, uint32_t id, uint32_t a0, uint32_t a1,
                    const char *uri, const char *data) {
  pending p = {.mark = vrb_mark(&rq)};
  size_t ul = uri ? strlen(uri) : 0, dl = data ? strlen(data) : 0;
  uint64_t req = vrb_alloc(&rq, sizeof(hwsock_req_hdr) + ul + dl + 16, 8);
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
  if (dl)
    memcpy((char *)(h + 1) + ul, data, dl);
  vrb_seg segs[2] = {{req, (uint32_t)(sizeof(*h) + ul + dl), 0},
                     {p.resp, 256, HWSOCK_VRING_DESC_F_WRITE}};
  p.head = vrb_add_chain(&rq, segs, 2);
  cr_assert(p.head >= 0);
  vrb_publish(&rq);
  return p;
}

/* Waits for p's completion on device d: its status, and its data bytes
 * (or its URI when there are none) into got (NUL-terminated) when given. */
static int wait_done(hwsock_device *d, pending p, char *got, size_t cap) {
  uint32_t uid = UINT32_MAX, ulen;
  int ok = 0;
  for (int i = 0; i < 20000 && !(ok = vrb_get_used(&rq, &uid, &ulen)); i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    hwsock_device_flush(d);
    if (i > 100)
      usleep(100);
  }
  cr_assert(ok, "no completion");
  cr_assert_eq(uid, (uint32_t)p.head);
  hwsock_resp_hdr *r = vrb_host(&rq, p.resp);
  int st = -(int)hwsock_le32_get(&r->status);
  if (got != NULL) { /* the data, or the URI of a GETNAME */
    size_t n = hwsock_le32_get(&r->len);
    if (n == 0)
      n = hwsock_le32_get(&r->uri_len);
    cr_assert_lt(n, cap);
    memcpy(got, r + 1, n);
    got[n] = '\0';
  }
  vrb_release(&rq, p.mark);
  return st;
}

static int request(unsigned op, uint32_t id, const char *uri,
                   const char *data) {
  pending p = post(op, id, op == HWSOCK_OP_OPEN ? HWSOCK_AF_INET : 0,
                   op == HWSOCK_OP_OPEN ? HWSOCK_SOCK_STREAM : 0, uri, data);
  hwsock_device_kick(dev, 0);
  return wait_done(dev, p, NULL, 0);
}

/* Socket `id` connected to the listener; the peer's end in `peer`. */
static void connect_sock(uint32_t id) {
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", lport);
  cr_assert_eq(request(HWSOCK_OP_OPEN, id, NULL, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, id, uri, NULL), 0);
  peer = accept(lst, NULL, NULL);
  cr_assert_geq(peer, 0);
}

static void spin(int n) {
  for (int i = 0; i < n; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void peer_read(const char *want) {
  char buf[64];
  size_t n = strlen(want), got = 0;
  while (got < n) {
    ssize_t k = recv(peer, buf + got, n - got, 0);
    cr_assert_gt(k, 0);
    got += (size_t)k;
  }
  cr_assert_eq(memcmp(buf, want, n), 0);
}

/* The whole hand-over of a device to a new one; returns the new device. */
static hwsock_device *hand_over(int want_held) {
  cr_assert_geq(hwsock_device_quiesce(dev, 1), 0);
  hwsock_sock_export ex[4];
  int n = hwsock_device_export_socks(dev, ex, 4);
  cr_assert_eq(n, 1);
  cr_assert_geq(ex[0].fd, 0);
  static unsigned char blob[1u << 16];
  size_t len;
  cr_assert_eq(hwsock_device_save(dev, blob, sizeof(blob), &len), 0);
  /* the old device goes; its copy of the host socket closes (no FIN: the
   * exported duplicate keeps the connection) */
  free_device(dev);
  uint32_t id, ulen;
  cr_assert_eq(vrb_get_used(&rq, &id, &ulen), 0, "the old device completed");
  hwsock_device *d = new_device();
  cr_assert_eq(hwsock_device_restore_held(d, blob, len), 1);
  cr_assert_eq(vrb_get_used(&rq, &id, &ulen), 0, "a held request completed");
  cr_assert_eq(hwsock_device_import_sock(d, &ex[0]), 0);
  cr_assert_eq(hwsock_device_resume_held(d), want_held);
  return d;
}

/* ---- tests -------------------------------------------------------------- */

Test(handover, a_connection_keeps_its_bytes_and_its_waiting_recv) {
  connect_sock(1);
  cr_assert_eq(request(HWSOCK_OP_SEND, 1, NULL, "before"), 0);
  peer_read("before");
  pending rcv = post(HWSOCK_OP_RECV, 1, 0, 0, NULL, NULL);
  hwsock_device_kick(dev, 0);
  spin(20);
  dev = hand_over(1);
  /* the RECV that waited gets the peer's bytes sent after the hand-over */
  cr_assert_eq(send(peer, "after", 5, 0), 5);
  char got[256];
  cr_assert_eq(wait_done(dev, rcv, got, sizeof(got)), 0);
  cr_assert_str_eq(got, "after");
  cr_assert_eq(request(HWSOCK_OP_SEND, 1, NULL, "again"), 0);
  peer_read("again");
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 1, NULL, NULL), 0);
  char c;
  cr_assert_eq(recv(peer, &c, 1, 0), 0, "CLOSE did not end the connection");
}

Test(handover, requests_added_while_quiesced_are_served_by_the_new_device) {
  connect_sock(2);
  cr_assert_eq(hwsock_device_quiesce(dev, 1), 0);
  pending snd = post(HWSOCK_OP_SEND, 2, 0, 0, NULL, "queued");
  hwsock_device_kick(dev, 0); /* remembered by the old device only */
  dev = hand_over(0);
  cr_assert_eq(wait_done(dev, snd, NULL, 0), 0);
  peer_read("queued");
}

Test(handover, export_waits_while_a_socket_is_between_states) {
  connect_sock(3);
  /* two RECVs wait on one socket: their order would be lost */
  pending r1 = post(HWSOCK_OP_RECV, 3, 0, 0, NULL, NULL);
  pending r2 = post(HWSOCK_OP_RECV, 3, 0, 0, NULL, NULL);
  hwsock_device_kick(dev, 0);
  spin(20);
  hwsock_sock_export ex[2];
  cr_assert_eq(hwsock_device_export_socks(dev, ex, 2), HWSOCK_EBUSY);
  cr_assert_eq(hwsock_device_quiesce(dev, 1), 2);
  cr_assert_eq(hwsock_device_export_socks(dev, ex, 2), HWSOCK_EAGAIN);
  cr_assert_eq(hwsock_device_export_socks(dev, ex, 0), HWSOCK_ENOSPC);
  /* the first one completes (completions go out while quiesced): settled */
  cr_assert_eq(send(peer, "x", 1, 0), 1);
  char got[256];
  cr_assert_eq(wait_done(dev, r1, got, sizeof(got)), 0);
  cr_assert_str_eq(got, "x");
  cr_assert_eq(hwsock_device_export_socks(dev, ex, 2), 1);
  close(ex[0].fd);
  cr_assert_eq(hwsock_device_quiesce(dev, 0), 1);
  cr_assert_eq(send(peer, "y", 1, 0), 1);
  cr_assert_eq(wait_done(dev, r2, got, sizeof(got)), 0);
  cr_assert_str_eq(got, "y");
}

Test(handover, a_bad_record_is_refused_and_the_socket_stays_reset) {
  connect_sock(4);
  cr_assert_eq(hwsock_device_quiesce(dev, 1), 0);
  hwsock_sock_export ex[1];
  cr_assert_eq(hwsock_device_export_socks(dev, ex, 1), 1);
  static unsigned char blob[1u << 16];
  size_t len;
  cr_assert_eq(hwsock_device_save(dev, blob, sizeof(blob), &len), 0);
  free_device(dev);
  dev = new_device();
  cr_assert_eq(hwsock_device_restore_held(dev, blob, len), 1);
  struct {
    size_t off;
    unsigned char val;
    int err;
  } cases[] = {
      {0, 0x00, HWSOCK_EINVAL},  /* magic */
      {4, 0x02, HWSOCK_EINVAL},  /* version */
      {6, HWSOCK_SCHEME_UDP, HWSOCK_EINVAL}, /* not the socket's scheme */
      {7, 0x80, HWSOCK_EINVAL},  /* flags */
      {14, 0x40, HWSOCK_EINVAL}, /* state length */
      {16, 'x', HWSOCK_ENOENT},  /* no backend "xcp" */
      {32, 0x07, HWSOCK_EINVAL}, /* tcp state */
      {90, 0x01, HWSOCK_EINVAL}, /* the zero tail */
      /* denied, yet it hands a host socket over (one outside the quota) */
      {12, HWSOCK_SS_DENIED, HWSOCK_EINVAL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    hwsock_sock_export b = ex[0];
    b.fd = fcntl(ex[0].fd, F_DUPFD_CLOEXEC, 0);
    b.rec[cases[i].off] = cases[i].val;
    cr_assert_eq(hwsock_device_import_sock(dev, &b), cases[i].err,
                 "case %zu (offset %zu)", i, cases[i].off);
  }
  hwsock_sock_export wrong = ex[0];
  wrong.id = 5; /* not a reset socket */
  wrong.fd = -1;
  cr_assert_eq(hwsock_device_import_sock(dev, &wrong), HWSOCK_EINVAL);
  /* a descriptor that is not a TCP socket of the family */
  wrong = ex[0];
  int pair[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  wrong.fd = pair[0];
  cr_assert_eq(hwsock_device_import_sock(dev, &wrong), HWSOCK_EINVAL);
  close(pair[1]);
  cr_assert_eq(hwsock_device_resume_held(dev), 0);
  cr_assert_eq(hwsock_device_resume_held(dev), HWSOCK_EINVAL);
  close(ex[0].fd);
  /* not imported: the socket is reset, as after a plain restore */
  cr_assert_eq(request(HWSOCK_OP_SEND, 4, NULL, "x"), HWSOCK_ECONNRESET);
}

Test(handover, a_udp_socket_keeps_its_address_and_its_waiting_recv) {
  int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(u, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(u, (struct sockaddr *)&a, &al), 0);
  char uri[64];
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", ntohs(a.sin_port));
  pending op = post(HWSOCK_OP_OPEN, 6, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                    NULL, NULL);
  hwsock_device_kick(dev, 0);
  cr_assert_eq(wait_done(dev, op, NULL, 0), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 6, uri, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_SEND, 6, NULL, "ping"), 0);
  struct sockaddr_in from;
  socklen_t fl = sizeof(from);
  char buf[16];
  cr_assert_eq(recvfrom(u, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                        &fl), 4);
  pending rcv = post(HWSOCK_OP_RECV, 6, 0, 0, NULL, NULL);
  hwsock_device_kick(dev, 0);
  spin(20);
  dev = hand_over(1);
  /* the same host socket: the datagram to the address it had arrives */
  cr_assert_eq(sendto(u, "pong", 4, 0, (struct sockaddr *)&from, fl), 4);
  char got[256];
  cr_assert_eq(wait_done(dev, rcv, got, sizeof(got)), 0);
  cr_assert_str_eq(got, "pong");
  cr_assert_eq(request(HWSOCK_OP_SEND, 6, NULL, "again"), 0);
  cr_assert_eq(recv(u, buf, sizeof(buf), 0), 5);
  cr_assert_eq(memcmp(buf, "again", 5), 0);
  close(u);
}

Test(handover, a_listener_keeps_its_address_and_its_waiting_accept) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 7, NULL, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 7, "tcp://127.0.0.1:0", NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 7, NULL, NULL), 0);
  pending gn = post(HWSOCK_OP_GETNAME, 7, 0, 0, NULL, NULL);
  hwsock_device_kick(dev, 0);
  char name[256];
  cr_assert_eq(wait_done(dev, gn, name, sizeof(name)), 0);
  unsigned port = 0;
  cr_assert_eq(sscanf(name, "tcp://127.0.0.1:%u", &port), 1, "%s", name);
  /* an ACCEPT waits for a connection, into id 8 */
  pending acc = post(HWSOCK_OP_ACCEPT, 7, 0, 8, NULL, NULL);
  hwsock_device_kick(dev, 0);
  spin(20);
  dev = hand_over(1);
  /* the same listening socket: a connection to its port is accepted */
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(wait_done(dev, acc, NULL, 0), 0);
  cr_assert_eq(send(c, "hi", 2, 0), 2);
  pending rcv = post(HWSOCK_OP_RECV, 8, 0, 0, NULL, NULL);
  hwsock_device_kick(dev, 0);
  char got[256];
  cr_assert_eq(wait_done(dev, rcv, got, sizeof(got)), 0);
  cr_assert_str_eq(got, "hi");
  close(c);
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

/* The new device continues the old one's counters and socket table:
 * the counters, the connection's byte counts, its age and the rule that
 * decided it; the RECV it submits again was counted by the old device. */
Test(handover, the_counters_and_the_socket_table_go_on) {
  connect_sock(4);
  cr_assert_eq(request(HWSOCK_OP_SEND, 4, NULL, "before"), 0);
  peer_read("before");
  pending rcv = post(HWSOCK_OP_RECV, 4, 0, 0, NULL, NULL);
  hwsock_device_kick(dev, 0);
  spin(20);
  hwsock_device_stats a = stats_of(dev);
  hwsock_sock_info s = info_of(dev, 4);
  cr_assert_eq(s.bytes_out, 6);
  cr_assert_neq(s.created_ns, 0);
  dev = hand_over(1);
  hwsock_device_stats b = stats_of(dev);
  assert_counters_go_on(&a, &b);
  cr_assert_eq(b.requests, a.requests, "the held RECV was counted twice");
  cr_assert_eq(b.bytes_out, 6);
  hwsock_sock_info t = info_of(dev, 4);
  cr_assert_eq(t.id, 4);
  cr_assert_eq(t.bytes_out, 6, "the socket table's bytes restarted");
  cr_assert_eq(t.requests_out, s.requests_out);
  cr_assert_eq(t.created_ns, s.created_ns, "the socket's age restarted");
  cr_assert_eq(t.rule, s.rule);
  cr_assert_eq(t.rule_line, s.rule_line);
  cr_assert_eq(send(peer, "after", 5, 0), 5);
  char got[256];
  cr_assert_eq(wait_done(dev, rcv, got, sizeof(got)), 0);
  hwsock_device_stats c = stats_of(dev);
  cr_assert_eq(c.bytes_in, a.bytes_in + 5);
  cr_assert_eq(c.completions, a.completions + 1);
}

/* TCP_KEEPIDLE of socket id's host socket on device d. */
static int keepidle(hwsock_device *d, uint32_t id) {
  hwsock_bsock_info bi;
  memset(&bi, 0, sizeof(bi));
  bi.size = sizeof(bi);
  bi.fd = -1;
  cr_assert_eq(hwsock__sock_info(d, &d->socks[id], &bi), 0);
  int v = 0;
  socklen_t vl = sizeof(v);
  cr_assert_eq(getsockopt(bi.fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl), 0);
  return v;
}

/* An option set after the decision: the handed-over host socket has it
 * (the same socket), and the new device knows it, so that a snapshot
 * restore after the hand-over gives it to the listener's next host
 * socket. */
Test(handover, a_listeners_options_outlive_the_hand_over_and_a_restore) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 7, NULL, NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 7, "tcp://127.0.0.1:0", NULL), 0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 7, NULL, NULL), 0);
  pending p = {.mark = vrb_mark(&rq)};
  uint64_t req = vrb_alloc(&rq, sizeof(hwsock_req_hdr) + 4, 8);
  p.resp = vrb_alloc(&rq, 256, 8);
  hwsock_req_hdr *h = vrb_host(&rq, req);
  hwsock_le16_set(&h->opcode, HWSOCK_OP_SETSOCKOPT);
  hwsock_le32_set(&h->sock_id, 7);
  hwsock_le32_set(&h->arg0, HWSOCK_SOL_TCP);
  hwsock_le32_set(&h->arg1, HWSOCK_TCP_KEEPIDLE);
  hwsock_le32_set((hwsock_le32 *)(h + 1), 55);
  vrb_seg segs[2] = {{req, (uint32_t)sizeof(*h) + 4, 0},
                     {p.resp, 256, HWSOCK_VRING_DESC_F_WRITE}};
  p.head = vrb_add_chain(&rq, segs, 2);
  vrb_publish(&rq);
  hwsock_device_kick(dev, 0);
  cr_assert_eq(wait_done(dev, p, NULL, 0), 0);
  dev = hand_over(0);
  cr_assert_eq(keepidle(dev, 7), 55);
  cr_assert_geq(hwsock_device_quiesce(dev, 1), 0);
  static unsigned char blob[1u << 16];
  size_t len;
  cr_assert_eq(hwsock_device_save(dev, blob, sizeof(blob), &len), 0);
  free_device(dev);
  dev = new_device();
  cr_assert_eq(hwsock_device_restore(dev, blob, len), 0);
  cr_assert_eq(keepidle(dev, 7), 55, "the option was lost");
}

/* The old device goes after the new one took over: it must not write the
 * ECANCELED of its closing sockets into the requests' buffers (the new
 * device may have completed them already, the guest reposted them). */
Test(handover, freeing_the_old_device_writes_nothing_into_guest_memory) {
  connect_sock(9);
  pending rcv = post(HWSOCK_OP_RECV, 9, 0, 0, NULL, NULL);
  hwsock_device_kick(dev, 0);
  spin(20);
  unsigned char *resp = vrb_host(&rq, rcv.resp);
  memset(resp, 0x5a, 256);
  cr_assert_eq(hwsock_device_quiesce(dev, 1), 1);
  free_device(dev);
  for (unsigned i = 0; i < 256; i++)
    cr_assert_eq(resp[i], 0x5a, "byte %u of the response written: %#x", i,
                 resp[i]);
  uint32_t id, len;
  cr_assert_eq(vrb_get_used(&rq, &id, &len), 0);
  dev = new_device();
}
