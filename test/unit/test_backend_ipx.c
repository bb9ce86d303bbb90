/* The ipx backend module: two instances (two "guests" of two VMMs, each the
 * other's peer) on 127.0.0.1 with distinct UDP ports exchange IPX datagrams
 * on one real uv loop; plain UDP sockets stand in for peers to see the exact
 * bytes on the wire and to send malformed packets. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "hwsock/backend.h"
#include "hwsock/device.h"
#include "support/backend_harness.h"
#include "support/loopback_sock.h"

#define IPX_SO HWSOCK_BUILD_BACKEND_DIR "/ipx.so"

#define NODE_A "02005e0001a2"
#define NODE_B "02005e0001a3"
#define NODE_X "02005e0001ff" /* the plain socket standing in for a peer */
#define NET "0000cafe"

/* ---- fixture: the module, a loop (backend_harness.h), instances per test -- */

typedef struct guest {
  hwsock_backend_host host;
  char options[512];
  void *inst;
  uint16_t port;
} guest;

static guest ga, gb;

/* bh_on_log, with the guest that logged: "A msg" or "B msg". */
static void on_log(const hwsock_backend_host *h, int level, const char *msg) {
  size_t n = strlen(bh.log);
  snprintf(bh.log + n, sizeof(bh.log) - n, "%c %s\n",
           h == &ga.host ? 'A' : 'B', msg);
}

static void setup(void) {
  bh_setup(IPX_SO);
  memset(&ga, 0, sizeof(ga));
  memset(&gb, 0, sizeof(gb));
}

static void teardown(void) {
  if (ga.inst)
    bh.ops->destroy(ga.inst);
  if (gb.inst)
    bh.ops->destroy(gb.inst);
  bh_teardown();
}

TestSuite(ipx, .init = setup, .fini = teardown, .timeout = 60);

/* A plain UDP socket on 127.0.0.1 (port 0: any). */
static int plain_udp(uint16_t *port) {
  return loopback_socket(AF_INET, SOCK_DGRAM, port);
}

/* A UDP port free right now (for an instance to bind). */
static uint16_t free_port(void) {
  uint16_t p;
  close(plain_udp(&p));
  return p;
}

static int start_guest(guest *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int start_guest(guest *g, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g->options, sizeof(g->options), fmt, ap);
  va_end(ap);
  bh_host_init(&g->host, g->options);
  g->host.log = on_log;
  g->inst = NULL;
  int rc = bh.ops->create(&g->host, &g->inst);
  if (rc < 0)
    g->inst = NULL;
  return rc;
}

/* Two guests on network 0000cafe, each the other's peer. */
static void start_pair(void) {
  ga.port = free_port();
  gb.port = free_port();
  cr_assert_eq(start_guest(&ga, "net=" NET " node=" NODE_A " port=%u "
                           "bind=127.0.0.1 peer=" NODE_B "@127.0.0.1:%u",
                           ga.port, gb.port),
               0, "%s", bh.log);
  cr_assert_eq(start_guest(&gb, "net=" NET "  node=" NODE_B " port=%u "
                           "bind=127.0.0.1 peer=" NODE_A "@127.0.0.1:%u",
                           gb.port, ga.port),
               0, "%s", bh.log);
}

/* ---- requests ------------------------------------------------------------- */

static void req_init(bh_req *r, uint16_t opcode) {
  bh_req_init(r, opcode, HWSOCK_SCHEME_IPX);
}

static void *open_sock(guest *g) { return bh_open(g->inst, HWSOCK_SCHEME_IPX); }

static hwsock_addr ipx(const char *uri) {
  hwsock_addr a;
  cr_assert_eq(hwsock_uri_parse(uri, strlen(uri), HWSOCK_URI_ALLOW_PORT0, &a,
                                NULL),
               0, "%s", uri);
  return a;
}

static int run_addr(void *s, uint16_t op, const char *uri) {
  hwsock_addr a = ipx(uri);
  return bh_run_addr(s, op, &a);
}

static int send_to(void *s, const void *data, size_t len, const char *uri) {
  hwsock_addr a;
  if (uri != NULL)
    a = ipx(uri);
  return bh_run_send(s, HWSOCK_SCHEME_IPX, data, len, uri ? &a : NULL);
}

static void submit_recv(void *s, bh_req *r, void *buf, size_t len,
                        uint32_t flags) {
  bh_submit_recv(s, HWSOCK_SCHEME_IPX, r, buf, len, flags);
}

static void uri_of(const hwsock_addr *a, char *buf, size_t n) {
  cr_assert_geq(hwsock_uri_format(a, buf, n), 0);
}

static hwsock_addr getname(void *s, uint32_t which, int *status) {
  return bh_getname(s, HWSOCK_SCHEME_IPX, which, status);
}

static void expect_name(void *s, const char *want) {
  int st;
  hwsock_addr a = getname(s, 0, &st);
  cr_assert_eq(st, 0);
  char u[HWSOCK_URI_MAX + 1];
  uri_of(&a, u, sizeof(u));
  cr_assert_str_eq(u, want);
}

/* ---- packets by hand ------------------------------------------------------ */

static void hexbytes(const char *hex, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

/* A well-formed packet from NODE_X socket 0x1234 to (net, node, sock). */
static size_t make_packet(uint8_t *p, const char *dnet, const char *dnode,
                          uint16_t dsock, const void *data, size_t len) {
  p[0] = 0xff;
  p[1] = 0xff;
  p[2] = (uint8_t)((30 + len) >> 8);
  p[3] = (uint8_t)(30 + len);
  p[4] = 0;
  p[5] = 4;
  hexbytes(dnet, p + 6, 4);
  hexbytes(dnode, p + 10, 6);
  p[16] = (uint8_t)(dsock >> 8);
  p[17] = (uint8_t)dsock;
  hexbytes(NET, p + 18, 4);
  hexbytes(NODE_X, p + 22, 6);
  p[28] = 0x12;
  p[29] = 0x34;
  memcpy(p + 30, data, len);
  return 30 + len;
}

static void udp_to(int fd, uint16_t port, const void *p, size_t n) {
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(sendto(fd, p, n, 0, (struct sockaddr *)&sin, sizeof(sin)),
               (ssize_t)n);
}

static ssize_t udp_from(int fd, void *buf, size_t n, uint16_t *src) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  /* the instances live on this thread's loop: run it while waiting */
  uint64_t t0 = uv_hrtime();
  while (poll(&p, 1, 0) == 0) {
    uv_run(&bh.loop, UV_RUN_NOWAIT);
    cr_assert(uv_hrtime() - t0 < BH_TIMEOUT_NS, "a datagram arrives");
    usleep(1000);
  }
  struct sockaddr_in sin;
  socklen_t sl = sizeof(sin);
  ssize_t k = recvfrom(fd, buf, n, 0, (struct sockaddr *)&sin, &sl);
  cr_assert_geq(k, 0);
  *src = ntohs(sin.sin_port);
  return k;
}

/* ---- tests ---------------------------------------------------------------- */

Test(ipx, two_guests_exchange_datagrams_both_ways) {
  start_pair();
  void *sa = open_sock(&ga), *sb = open_sock(&gb);
  cr_assert_eq(run_addr(sa, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".5000"),
               0);
  cr_assert_eq(run_addr(sb, HWSOCK_OP_BIND, "ipx://00000000.000000000000.0000"),
               0, "net, node and socket 0: ours, ours, ephemeral");
  expect_name(sa, "ipx://" NET "." NODE_A ".5000");
  expect_name(sb, "ipx://" NET "." NODE_B ".4000");

  /* A -> B, 1400 bytes in two pieces, B's RECV posted first */
  static uint8_t out[1400], in[2000];
  for (size_t i = 0; i < sizeof(out); i++)
    out[i] = (uint8_t)(i * 7 + 3);
  bh_req rb;
  submit_recv(sb, &rb, in, sizeof(in), 0);
  bh_req snd;
  req_init(&snd, HWSOCK_OP_SEND);
  snd.addr = ipx("ipx://" NET "." NODE_B ".4000");
  snd.br.addr = &snd.addr;
  snd.iov[0] = (struct iovec){out, 600};
  snd.iov[1] = (struct iovec){out + 600, 800};
  snd.br.iov = snd.iov;
  snd.br.iovcnt = 2;
  snd.br.iov_len = sizeof(out);
  bh.ops->submit(sa, &snd.br);
  BH_RUN_UNTIL(snd.ncomplete && rb.ncomplete);
  bh_expect_done(&snd, 0);
  cr_assert_eq(snd.len, sizeof(out));
  bh_expect_done(&rb, 0);
  cr_assert_eq(rb.len, sizeof(out));
  cr_assert_arr_eq(in, out, sizeof(out), "payload intact");
  cr_assert_eq(rb.br.resp_flags, 0);
  cr_assert_eq(rb.br.resp_val, sizeof(out));
  cr_assert_eq(rb.br.has_peer, 1);
  char u[HWSOCK_URI_MAX + 1];
  uri_of(&rb.br.peer, u, sizeof(u));
  cr_assert_str_eq(u, "ipx://" NET "." NODE_A ".5000");

  /* B -> A: reply to the source; it waits in A's queue until A posts. */
  cr_assert_eq(send_to(sb, "pong", 4, u), 0);
  bh_run_for_ms(30);
  bh_req ra;
  submit_recv(sa, &ra, in, sizeof(in), 0);
  cr_assert_eq(ra.ncomplete, 1, "the queued packet completes the RECV at once");
  bh_expect_done(&ra, 0);
  cr_assert_eq(ra.len, 4);
  cr_assert_arr_eq(in, "pong", 4);
  uri_of(&ra.br.peer, u, sizeof(u));
  cr_assert_str_eq(u, "ipx://" NET "." NODE_B ".4000");

  /* connected: SENDs without an address go to the default destination */
  cr_assert_eq(run_addr(sb, HWSOCK_OP_CONNECT, "ipx://" NET "." NODE_A ".5000"),
               0);
  int st;
  hwsock_addr peer = getname(sb, 1, &st);
  cr_assert_eq(st, 0);
  uri_of(&peer, u, sizeof(u));
  cr_assert_str_eq(u, "ipx://" NET "." NODE_A ".5000");
  cr_assert_eq(send_to(sb, "again", 5, NULL), 0);
  submit_recv(sa, &ra, in, sizeof(in), 0);
  BH_RUN_UNTIL(ra.ncomplete);
  bh_expect_done(&ra, 0);
  cr_assert_eq(ra.len, 5);
  cr_assert_arr_eq(in, "again", 5);

  bh.ops->close(sa);
  bh.ops->close(sb);
}

Test(ipx, wire_bytes_are_a_real_ipx_header) {
  uint16_t xport;
  int x = plain_udp(&xport);
  ga.port = free_port();
  cr_assert_eq(start_guest(&ga, "net=" NET " node=" NODE_A " port=%u "
                           "bind=127.0.0.1 peer=" NODE_X "@127.0.0.1:%u",
                           ga.port, xport),
               0, "%s", bh.log);
  void *s = open_sock(&ga);
  cr_assert_eq(run_addr(s, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".4567"),
               0);
  cr_assert_eq(send_to(s, "hello ipx", 9, "ipx://0000beef." NODE_X ".0453"), 0);

  uint8_t p[2048];
  uint16_t src;
  ssize_t n = udp_from(x, p, sizeof(p), &src);
  cr_assert_eq(n, 39, "30-byte header + 9 bytes");
  cr_assert_eq(src, ga.port, "from the instance's UDP port");
  static const uint8_t want[30] = {
      0xff, 0xff,                         /* checksum: none */
      0x00, 0x27,                         /* length 39 */
      0x00,                               /* transport control */
      0x04,                               /* packet type PEP */
      0x00, 0x00, 0xbe, 0xef,             /* destination network */
      0x02, 0x00, 0x5e, 0x00, 0x01, 0xff, /* destination node */
      0x04, 0x53,                         /* destination socket */
      0x00, 0x00, 0xca, 0xfe,             /* source network */
      0x02, 0x00, 0x5e, 0x00, 0x01, 0xa2, /* source node */
      0x45, 0x67};                        /* source socket */
  cr_assert_arr_eq(p, want, 30);
  cr_assert_arr_eq(p + 30, "hello ipx", 9);

  /* network 0 means ours: the packet names it */
  cr_assert_eq(send_to(s, "", 0, "ipx://00000000." NODE_X ".0453"), 0);
  n = udp_from(x, p, sizeof(p), &src);
  cr_assert_eq(n, 30);
  cr_assert_eq(p[3], 30);
  cr_assert_arr_eq(p + 6, ((uint8_t[]){0x00, 0x00, 0xca, 0xfe}), 4);
  bh.ops->close(s);
  close(x);
}

Test(ipx, malformed_and_foreign_packets_are_dropped_and_counted) {
  uint16_t xport, yport;
  int x = plain_udp(&xport), y = plain_udp(&yport);
  ga.port = free_port();
  cr_assert_eq(start_guest(&ga, "net=" NET " node=" NODE_A " port=%u "
                           "bind=127.0.0.1 peer=" NODE_X "@127.0.0.1:%u",
                           ga.port, xport),
               0, "%s", bh.log);
  void *s = open_sock(&ga);
  cr_assert_eq(run_addr(s, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".4567"),
               0);
  uint8_t p[2048];
  size_t n;

  udp_to(x, ga.port, "short", 5); /* malformed 1 */
  n = make_packet(p, NET, NODE_A, 0x4567, "data", 4);
  p[0] = 0x12; /* a checksum: malformed 2 */
  udp_to(x, ga.port, p, n);
  n = make_packet(p, NET, NODE_A, 0x4567, "data", 4);
  p[3] = 40; /* length field says more than arrived: malformed 3 */
  udp_to(x, ga.port, p, n);
  n = make_packet(p, NET, NODE_A, 0x4567, "data", 4);
  p[4] = 16; /* 16 hops: malformed 4 */
  udp_to(x, ga.port, p, n);
  static uint8_t huge[1600], filler[1500];
  n = make_packet(huge, NET, NODE_A, 0x4567, filler, sizeof(filler));
  udp_to(x, ga.port, huge, n); /* over 1500 bytes: malformed 5 */

  n = make_packet(p, NET, NODE_A, 0x4567, "data", 4);
  udp_to(y, ga.port, p, n); /* not a peer's endpoint: sender 1 */
  n = make_packet(p, NET, NODE_A, 0x4567, "data", 4);
  hexbytes(NODE_B, p + 22, 6); /* the peer posing as another node: sender 2 */
  udp_to(x, ga.port, p, n);
  n = make_packet(p, "0000beef", NODE_A, 0x4567, "data", 4);
  udp_to(x, ga.port, p, n); /* another network: not ours 1 */
  n = make_packet(p, NET, NODE_B, 0x4567, "data", 4);
  udp_to(x, ga.port, p, n); /* another node: not ours 2 */
  n = make_packet(p, NET, NODE_A, 0x4568, "data", 4);
  udp_to(x, ga.port, p, n); /* nothing bound there: no socket 1 */

  /* one good packet last, padded to an even size as some senders do */
  n = make_packet(p, "00000000", NODE_A, 0x4567, "good!", 5);
  p[n] = 0;
  udp_to(x, ga.port, p, n + 1);
  char buf[64];
  bh_req r;
  submit_recv(s, &r, buf, sizeof(buf), 0);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 5, "only the good packet arrives");
  cr_assert_arr_eq(buf, "good!", 5);
  char u[HWSOCK_URI_MAX + 1];
  uri_of(&r.br.peer, u, sizeof(u));
  cr_assert_str_eq(u, "ipx://" NET "." NODE_X ".1234");

  /* every drop is logged with its running count */
  cr_assert_not_null(strstr(bh.log, "(malformed, 5 so far): from udp://"
                                    "127.0.0.1:"),
                     "%s", bh.log);
  cr_assert_not_null(strstr(bh.log, "checksum field is not 0xffff"));
  cr_assert_not_null(strstr(bh.log, "length field does not match"));
  cr_assert_not_null(strstr(bh.log, "shorter than an IPX header"));
  cr_assert_not_null(strstr(bh.log, "above 15 hops"));
  cr_assert_not_null(strstr(bh.log, "longer than 1500 bytes"));
  cr_assert_not_null(strstr(bh.log, "(unknown sender, 2 so far)"), "%s",
                     bh.log);
  cr_assert_null(strstr(bh.log, "(unknown sender, 3"));
  cr_assert_not_null(strstr(bh.log, "(not for this node, 2 so far)"));
  cr_assert_null(strstr(bh.log, "(not for this node, 3"));
  cr_assert_not_null(strstr(bh.log, "(no socket, 1 so far): nothing bound to "
                                    "socket 4568"));
  cr_assert_null(strstr(bh.log, "(no socket, 2"));
  bh.ops->close(s);
  close(x);
  close(y);
}

Test(ipx, bind_conflicts_and_addresses) {
  start_pair();
  void *s1 = open_sock(&ga), *s2 = open_sock(&ga), *s3 = open_sock(&ga);
  cr_assert_eq(run_addr(s1, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".4000"),
               0);
  cr_assert_eq(run_addr(s2, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".4000"),
               HWSOCK_EADDRINUSE);
  cr_assert_eq(run_addr(s2, HWSOCK_OP_BIND, "ipx://0000beef." NODE_A ".4001"),
               HWSOCK_EADDRNOTAVAIL, "another network");
  cr_assert_eq(run_addr(s2, HWSOCK_OP_BIND, "ipx://" NET "." NODE_B ".4001"),
               HWSOCK_EADDRNOTAVAIL, "another node");
  cr_assert_eq(run_addr(s1, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".4002"),
               HWSOCK_EINVAL, "bound already");
  /* ephemeral numbers skip the taken 4000 */
  cr_assert_eq(run_addr(s2, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".0000"),
               0);
  expect_name(s2, "ipx://" NET "." NODE_A ".4001");
  /* a socket bound on the other guest does not conflict */
  void *sb = open_sock(&gb);
  cr_assert_eq(run_addr(sb, HWSOCK_OP_BIND, "ipx://" NET "." NODE_B ".4000"),
               0);
  /* closing frees the number */
  bh.ops->close(s1);
  cr_assert_eq(run_addr(s3, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".4000"),
               0);
  expect_name(s3, "ipx://" NET "." NODE_A ".4000");
  bh.ops->close(s2);
  bh.ops->close(s3);
  bh.ops->close(sb);
}

Test(ipx, send_errors_and_autobind) {
  start_pair();
  void *s = open_sock(&ga);
  expect_name(s, "ipx://" NET "." NODE_A ".0000");
  cr_assert_eq(send_to(s, "x", 1, NULL), HWSOCK_ENOTCONN);
  cr_assert_eq(send_to(s, "x", 1, "ipx://" NET ".02005e000999.4000"),
               HWSOCK_EHOSTUNREACH, "no peer has that node");
  cr_assert_eq(
      run_addr(s, HWSOCK_OP_CONNECT, "ipx://" NET ".02005e000999.4000"),
      HWSOCK_EHOSTUNREACH);
  static char big[1471];
  cr_assert_eq(send_to(s, big, sizeof(big), "ipx://" NET "." NODE_B ".4000"),
               HWSOCK_EMSGSIZE);
  expect_name(s, "ipx://" NET "." NODE_A ".0000");
  /* the first good SEND binds an ephemeral number, like Linux IPX */
  cr_assert_eq(send_to(s, big, 1470, "ipx://" NET "." NODE_B ".4000"), 0);
  expect_name(s, "ipx://" NET "." NODE_A ".4000");

  bh_req r;
  req_init(&r, HWSOCK_OP_SHUTDOWN);
  r.br.arg0 = HWSOCK_SHUT_RDWR;
  bh.ops->submit(s, &r.br);
  bh_expect_done(&r, HWSOCK_EOPNOTSUPP);
  req_init(&r, HWSOCK_OP_GETSOCKOPT);
  bh.ops->submit(s, &r.br);
  bh_expect_done(&r, HWSOCK_ENOPROTOOPT);
  int st;
  getname(s, 1, &st);
  cr_assert_eq(st, HWSOCK_ENOTCONN);
  bh.ops->close(s);
}

Test(ipx, broadcast_reaches_every_peer_and_local_sockets) {
  uint16_t xport;
  int x = plain_udp(&xport);
  ga.port = free_port();
  gb.port = free_port();
  cr_assert_eq(start_guest(&ga, "net=" NET " node=" NODE_A " port=%u "
                           "bind=127.0.0.1 peer=" NODE_B "@127.0.0.1:%u "
                           "peer=" NODE_X "@127.0.0.1:%u",
                           ga.port, gb.port, xport),
               0, "%s", bh.log);
  cr_assert_eq(start_guest(&gb, "net=" NET " node=" NODE_B " port=%u "
                           "bind=127.0.0.1 peer=" NODE_A "@127.0.0.1:%u",
                           gb.port, ga.port),
               0, "%s", bh.log);
  void *sa = open_sock(&ga), *la = open_sock(&ga), *sb = open_sock(&gb);
  cr_assert_eq(run_addr(sa, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".4444"),
               0);
  cr_assert_eq(run_addr(la, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".869c"),
               0);
  cr_assert_eq(run_addr(sb, HWSOCK_OP_BIND, "ipx://" NET "." NODE_B ".869c"),
               0);
  char bl[32], bb[32];
  bh_req rl, rb;
  submit_recv(la, &rl, bl, sizeof(bl), 0);
  submit_recv(sb, &rb, bb, sizeof(bb), 0);
  cr_assert_eq(send_to(sa, "anyone?", 7, "ipx://" NET ".ffffffffffff.869c"),
               0);
  BH_RUN_UNTIL(rl.ncomplete && rb.ncomplete);
  bh_expect_done(&rb, 0);
  cr_assert_arr_eq(bb, "anyone?", 7);
  bh_expect_done(&rl, 0);
  cr_assert_arr_eq(bl, "anyone?", 7, "this guest's own sockets hear it too");
  char u[HWSOCK_URI_MAX + 1];
  uri_of(&rl.br.peer, u, sizeof(u));
  cr_assert_str_eq(u, "ipx://" NET "." NODE_A ".4444");
  uint8_t p[64];
  uint16_t src;
  cr_assert_eq(udp_from(x, p, sizeof(p), &src), 37);
  cr_assert_arr_eq(p + 10, ((uint8_t[]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
                   6, "the broadcast node on the wire");

  /* unicast to its own node stays inside the guest */
  submit_recv(la, &rl, bl, sizeof(bl), 0);
  cr_assert_eq(send_to(sa, "me", 2, "ipx://00000000." NODE_A ".869c"), 0);
  bh_expect_done(&rl, 0);
  cr_assert_eq(rl.len, 2);
  bh.ops->close(sa);
  bh.ops->close(la);
  bh.ops->close(sb);
  close(x);
}

Test(ipx, socket_queue_is_bounded_and_peek_and_truncation_work) {
  start_pair();
  void *sa = open_sock(&ga), *sb = open_sock(&gb);
  cr_assert_eq(run_addr(sb, HWSOCK_OP_BIND, "ipx://" NET "." NODE_B ".5000"),
               0);
  enum { SENT = 70, QMAX = 64 };
  for (int i = 0; i < SENT; i++) {
    char m[8];
    snprintf(m, sizeof(m), "m%03d", i);
    cr_assert_eq(send_to(sa, m, 4, "ipx://" NET "." NODE_B ".5000"), 0);
  }
  bh_run_for_ms(50);
  cr_assert_not_null(strstr(bh.log, "B ipx: dropped packet (queue full, 6 so "
                                    "far): socket 5000 has 64 packets waiting"),
                     "%s", bh.log);
  /* peek, then a short buffer: truncated, full length reported */
  char p[8];
  bh_req r;
  submit_recv(sb, &r, p, sizeof(p), HWSOCK_RECV_PEEK);
  bh_expect_done(&r, 0);
  cr_assert_arr_eq(p, "m000", 4);
  submit_recv(sb, &r, p, 2, 0);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 2);
  cr_assert_eq(r.br.resp_flags, HWSOCK_RESP_F_TRUNC);
  cr_assert_eq(r.br.resp_val, 4);
  cr_assert_arr_eq(p, "m0", 2);
  for (int i = 1; i < QMAX; i++) {
    char want[8];
    snprintf(want, sizeof(want), "m%03d", i);
    submit_recv(sb, &r, p, sizeof(p), 0);
    bh_expect_done(&r, 0);
    cr_assert_arr_eq(p, want, 4, "in order");
  }
  submit_recv(sb, &r, p, sizeof(p), 0);
  bh_run_for_ms(30);
  cr_assert_eq(r.ncomplete, 0, "the 6 over the bound were dropped");
  bh.ops->close(sb);
  bh_expect_done(&r, HWSOCK_ECANCELED);
  bh.ops->close(sa);
}

Test(ipx, close_cancels_pending_recvs_synchronously) {
  start_pair();
  void *s = open_sock(&ga);
  char b[8];
  bh_req r1, r2;
  submit_recv(s, &r1, b, sizeof(b), 0);
  submit_recv(s, &r2, b, sizeof(b), 0);
  bh_run_for_ms(20);
  cr_assert_eq(r1.ncomplete + r2.ncomplete, 0);
  bh.ops->close(s);
  bh_expect_done(&r1, HWSOCK_ECANCELED);
  bh_expect_done(&r2, HWSOCK_ECANCELED);
  cr_assert_lt(r1.order, r2.order);
}

Test(ipx, bad_options_are_refused_with_a_reason) {
  static const struct {
    const char *opts, *why;
  } cases[] = {
      {"net=0000cafe", "need net= and node="},
      {"node=02005e0001a2 port=213", "need net= and node="},
      {"net=cafe node=02005e0001a2", "net must be 8 hex digits"},
      {"net=0000cafe node=02005e0001a2 port=0", "port must be 1..65535"},
      {"net=0000cafe node=02005e0001a2 port=70000", "port must be 1..65535"},
      {"net=00000000 node=02005e0001a2", "reserved"},
      {"net=0000cafe node=ffffffffffff", "reserved"},
      {"net=0000cafe node=02005e0001a2 bind=localhost", "bind must be"},
      {"net=0000cafe node=02005e0001a2 peer=02005e0001a3@127.0.0.1",
       "is not NODE@IP:PORT"},
      {"net=0000cafe node=02005e0001a2 peer=02005e0001a3@::1:213",
       "is not NODE@IP:PORT"},
      {"net=0000cafe node=02005e0001a2 peer=02005e0001a3@[::1]:213",
       "not of bind's address family"},
      {"net=0000cafe node=02005e0001a2 peer=02005e0001a2@127.0.0.1:213",
       "this guest's own"},
      {"net=0000cafe node=02005e0001a2 peer=02005e0001a3@127.0.0.1:213 "
       "peer=02005e0001a3@127.0.0.1:214",
       "same node"},
      {"net=0000cafe node=02005e0001a2 colour=blue", "unknown option"},
      {"net=0000cafe node=02005e0001a2 stray", "is not key=value"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bh.log[0] = '\0';
    cr_assert_eq(start_guest(&ga, "%s", cases[i].opts), HWSOCK_EBADCONFIG,
                 "'%s'", cases[i].opts);
    cr_assert_not_null(strstr(bh.log, cases[i].why), "'%s': %s", cases[i].opts,
                       bh.log);
  }
  /* a taken UDP port fails create() too */
  uint16_t taken;
  int x = plain_udp(&taken);
  cr_assert_eq(start_guest(&ga, "net=0000cafe node=02005e0001a2 bind=127.0.0.1 "
                           "port=%u", taken),
               HWSOCK_EADDRINUSE);
  close(x);
  /* IPv6 endpoints work */
  cr_assert_eq(start_guest(&ga, "net=0000cafe node=02005e0001a2 bind=[::1] "
                           "port=%u peer=02005e0001a3@[::1]:213",
                           free_port()),
               0, "%s", bh.log);
}

/* ---- a live capture, decoded by tshark ----------------------------------- */

#if __has_include(<pcap/pcap.h>)
#include <pcap/pcap.h>

static int has_tshark(void) {
  return system("command -v tshark >/dev/null 2>&1") == 0;
}

Test(ipx, live_capture_on_lo_decodes_as_ipx_in_tshark) {
  if (geteuid() != 0)
    cr_skip_test("capturing on lo needs root");
  if (!has_tshark())
    cr_skip_test("tshark is not installed (scripts/deps installs it)");
  /* Guest A on RFC 1234's port 213 when it is free, so that tshark decodes
   * it as IPX on its own; B on any port, decoded as IPX by -d. */
  gb.port = free_port();
  ga.port = 213;
  if (start_guest(&ga, "net=" NET " node=" NODE_A " port=213 bind=127.0.0.1 "
                  "peer=" NODE_B "@127.0.0.1:%u", gb.port) < 0) {
    ga.port = free_port();
    cr_assert_eq(start_guest(&ga, "net=" NET " node=" NODE_A " port=%u "
                             "bind=127.0.0.1 peer=" NODE_B "@127.0.0.1:%u",
                             ga.port, gb.port),
                 0, "%s", bh.log);
  }
  cr_assert_eq(start_guest(&gb, "net=" NET " node=" NODE_B " port=%u "
                           "bind=127.0.0.1 peer=" NODE_A "@127.0.0.1:%u",
                           gb.port, ga.port),
               0, "%s", bh.log);

  char errbuf[PCAP_ERRBUF_SIZE] = "";
  pcap_t *pc = pcap_create("lo", errbuf);
  cr_assert_not_null(pc, "%s", errbuf);
  pcap_set_snaplen(pc, 4096);
  pcap_set_immediate_mode(pc, 1);
  pcap_set_timeout(pc, 10);
  if (pcap_activate(pc) < 0) {
    const char *e = pcap_geterr(pc);
    cr_skip_test("cannot capture on lo: %s", e);
  }
  char filter[64];
  snprintf(filter, sizeof(filter), "udp and port %u and port %u", ga.port,
           gb.port);
  struct bpf_program prog;
  cr_assert_eq(pcap_compile(pc, &prog, filter, 1, PCAP_NETMASK_UNKNOWN), 0,
               "%s", pcap_geterr(pc));
  cr_assert_eq(pcap_setfilter(pc, &prog), 0);
  pcap_freecode(&prog);
  cr_assert_eq(pcap_setnonblock(pc, 1, errbuf), 0, "%s", errbuf);
  char path[] = "/tmp/hwsock-ipx-XXXXXX";
  int tfd = mkstemp(path);
  cr_assert_geq(tfd, 0);
  close(tfd);
  pcap_dumper_t *dump = pcap_dump_open(pc, path);
  cr_assert_not_null(dump, "%s", pcap_geterr(pc));

  void *sa = open_sock(&ga), *sb = open_sock(&gb);
  cr_assert_eq(run_addr(sa, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".4000"),
               0);
  cr_assert_eq(run_addr(sb, HWSOCK_OP_BIND, "ipx://" NET "." NODE_B ".869c"),
               0);
  char buf[64];
  bh_req r;
  submit_recv(sb, &r, buf, sizeof(buf), 0);
  cr_assert_eq(send_to(sa, "hello over IPX", 14,
                       "ipx://" NET "." NODE_B ".869c"),
               0);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(send_to(sb, "and back", 8, "ipx://" NET "." NODE_A ".4000"), 0);

  int captured = 0;
  uint64_t t0 = uv_hrtime();
  while (captured < 2) {
    uv_run(&bh.loop, UV_RUN_NOWAIT);
    int n = pcap_dispatch(pc, -1, pcap_dump, (u_char *)dump);
    cr_assert_geq(n, 0, "%s", pcap_geterr(pc));
    captured += n;
    cr_assert(uv_hrtime() - t0 < BH_TIMEOUT_NS, "both packets captured");
    if (n == 0)
      usleep(2000);
  }
  pcap_dump_close(dump);
  pcap_close(pc);
  bh.ops->close(sa);
  bh.ops->close(sb);

  char cmd[256];
  snprintf(cmd, sizeof(cmd), "tshark -r %s -V -d udp.port==%u,ipx 2>/dev/null",
           path, gb.port);
  FILE *f = popen(cmd, "r");
  cr_assert_not_null(f);
  static char out[65536];
  size_t len = fread(out, 1, sizeof(out) - 1, f);
  out[len] = '\0';
  int rc = pclose(f);
  unlink(path);
  cr_assert_eq(rc, 0, "tshark ran: %s", out);
  cr_assert_not_null(strstr(out, "Internetwork Packet eXchange"), "%s", out);
  cr_assert_not_null(strstr(out, "Checksum: 0xffff"), "%s", out);
  cr_assert_not_null(strstr(out, "Length: 44 bytes"), "%s", out);
  cr_assert_not_null(strstr(out, "Packet Type: PEP (0x04)"), "%s", out);
  cr_assert_not_null(strstr(out, "Destination Network: 00 (0x0000CAFE)"), "%s",
                     out);
  cr_assert_not_null(strstr(out, "Destination Socket: Unknown (0x869c)"), "%s",
                     out);
  cr_assert_not_null(strstr(out, "Source Socket: Unknown (0x4000)"), "%s",
                     out);
  cr_assert_not_null(strstr(out, "Destination Node: 02:00:5e:00:01:a3"), "%s",
                     out);
  cr_assert_not_null(strstr(out, "Data: 68656c6c6f206f76657220495058"),
                     "the payload: %s", out);
  cr_assert_not_null(strstr(out, "Data: 616e64206261636b"), "%s", out);
}
#endif

Test(ipx, info_reports_the_ipx_names) {
  start_pair();
  void *s = open_sock(&ga);
  cr_assert_eq(run_addr(s, HWSOCK_OP_CONNECT, "ipx://" NET "." NODE_B ".4321"),
               0);
  hwsock_bsock_info bi = {.size = sizeof(bi), .fd = -1};
  cr_assert_eq(bh.ops->info(s, &bi), 0);
  cr_assert_eq(bi.fd, -1, "no host fd of its own");
  cr_assert_eq(bi.has_local, 1);
  char u[HWSOCK_URI_MAX + 1];
  uri_of(&bi.local, u, sizeof(u));
  cr_assert_str_eq(u, "ipx://" NET "." NODE_A ".4000", "connect bound it");
  cr_assert_eq(bi.has_peer, 1);
  uri_of(&bi.peer, u, sizeof(u));
  cr_assert_str_eq(u, "ipx://" NET "." NODE_B ".4321");
  bh.ops->close(s);
}

Test(ipx, without_options_the_backend_is_down) {
  /* what a VMM that loads every module of a folder does */
  cr_assert_eq(start_guest(&ga, "%s", ""), HWSOCK_ENETDOWN);
  cr_assert_null(ga.inst);
  cr_assert_not_null(strstr(bh.log, "IPX is down"), "%s", bh.log);
  gb.host = ga.host;
  gb.host.options = NULL;
  cr_assert_eq(bh.ops->create(&gb.host, &gb.inst), HWSOCK_ENETDOWN,
               "NULL options too");
  gb.inst = NULL;
}

static uint64_t offered(const hwsock_device *d) {
  hwsock_wire_config w;
  hwsock_device_get_config(d, &w);
  return hwsock_le64_get(&w.device_features);
}

Test(ipx, a_device_offers_f_ipx_only_with_a_backend_that_can_serve_it) {
  const hwsock_backend_desc *desc = hwsock_plugin_desc(bh.plugin);
  hwsock_device *d = NULL;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.backend_loop = &bh.loop;
  cr_assert_eq(hwsock_device_new(&c, &d), 0);
  cr_assert_eq(hwsock_device_add_backend(d, desc, NULL), HWSOCK_ENETDOWN,
               "no network: the backend is down");
  cr_assert_eq(offered(d) & HWSOCK_F_IPX, 0, "F_IPX offered while IPX is down");
  char opts[200];
  snprintf(opts, sizeof(opts), "net=" NET " node=" NODE_A " port=%u "
           "bind=127.0.0.1 peer=" NODE_B "@127.0.0.1:%u", free_port(),
           free_port());
  cr_assert_eq(hwsock_device_add_backend(d, desc, opts), 0, "%s", bh.log);
  cr_assert_neq(offered(d) & HWSOCK_F_IPX, 0);
  hwsock_device_free(d);
}

/* ---- hand-over (docs/EMBEDDING.md §12) ------------------------------------ */

/* A UDP socket bound to 127.0.0.1:*port, as a VMM that owns each guest's
 * UDP endpoint creates it (fd= option). */
static int owned_udp(uint16_t *port) {
  *port = 0;
  int fd = plain_udp(port);
  cr_assert_geq(fd, 0);
  return fd;
}

/* fd= gives the instance its UDP socket: it binds none, and refuses one
 * that is not a UDP socket bound where bind= and port= say. */
Test(ipx, fd_option_adopts_the_vmms_udp_socket) {
  uint16_t p, xp;
  int fd = owned_udp(&p);
  int x = plain_udp(&xp); /* a peer: NODE_X */
  cr_assert_eq(start_guest(&ga, "net=" NET " node=" NODE_A " bind=127.0.0.1 "
                           "port=%u fd=%d peer=" NODE_X "@127.0.0.1:%u", p, fd,
                           xp), 0, "%s", bh.log);
  /* a wrong port, a TCP socket, no socket at all: refused, with a reason */
  cr_assert_eq(start_guest(&gb, "net=" NET " node=" NODE_B " bind=127.0.0.1 "
                           "port=%u fd=%d", (unsigned)(p ^ 1), fd),
               HWSOCK_EBADCONFIG);
  cr_assert(strstr(bh.log, "fd=") != NULL, "%s", bh.log);
  int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_eq(start_guest(&gb, "net=" NET " node=" NODE_B " bind=127.0.0.1 "
                           "port=%u fd=%d", p, t), HWSOCK_EBADCONFIG);
  close(t);
  cr_assert_eq(start_guest(&gb, "net=" NET " node=" NODE_B " fd=-1"),
               HWSOCK_EBADCONFIG);
  cr_assert_eq(start_guest(&gb, "net=" NET " node=" NODE_B " fd=%d", 1 << 20),
               HWSOCK_EBADCONFIG);
  close(fd); /* the instance has its own duplicate */
  /* and it serves on that socket: a packet to the port reaches a socket */
  void *s = open_sock(&ga);
  cr_assert_eq(run_addr(s, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".5000"),
               0);
  uint8_t pkt[64], in[16];
  size_t n = make_packet(pkt, NET, NODE_A, 0x5000, "hi", 2);
  bh_req r;
  submit_recv(s, &r, in, sizeof(in), 0);
  udp_to(x, p, pkt, n);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 2);
  bh.ops->close(s);
  close(x);
}

/* A socket moves to another instance given the same UDP socket (fd=), as
 * in a VMM's takeover: the same socket number, its connection, and a RECV
 * submitted again gets the next packet; two RECVs waiting are not settled
 * (EAGAIN); a packet the guest had not read stays behind. */
Test(ipx, a_socket_is_handed_to_an_instance_on_the_same_udp_socket) {
  uint16_t pa;
  int fd = owned_udp(&pa);
  gb.port = free_port();
  const char *fmt = "net=" NET " node=" NODE_A " bind=127.0.0.1 port=%u fd=%d "
                    "peer=" NODE_B "@127.0.0.1:%u";
  cr_assert_eq(start_guest(&ga, fmt, pa, fd, gb.port), 0, "%s", bh.log);
  cr_assert_eq(start_guest(&gb, "net=" NET " node=" NODE_B " bind=127.0.0.1 "
                           "port=%u peer=" NODE_A "@127.0.0.1:%u", gb.port,
                           pa), 0, "%s", bh.log);
  cr_assert_not_null(bh.ops->export_sock, "no hand-over");
  cr_assert_not_null(bh.ops->import_sock, "no hand-over");
  void *sa = open_sock(&ga), *sb = open_sock(&gb);
  cr_assert_eq(run_addr(sa, HWSOCK_OP_BIND, "ipx://" NET "." NODE_A ".5000"),
               0);
  cr_assert_eq(run_addr(sa, HWSOCK_OP_CONNECT, "ipx://" NET "." NODE_B
                        ".6000"), 0);
  cr_assert_eq(run_addr(sb, HWSOCK_OP_BIND, "ipx://" NET "." NODE_B ".6000"),
               0);
  hwsock_bexport x;
  memset(&x, 0, sizeof(x));
  x.size = sizeof(x);
  x.fd = -1;
  x.scheme = HWSOCK_SCHEME_IPX;
  /* two RECVs wait: their order would be lost */
  uint8_t in[64], in2[64];
  bh_req r0, r1;
  submit_recv(sa, &r0, in, sizeof(in), 0);
  submit_recv(sa, &r1, in2, sizeof(in2), 0);
  cr_assert_eq(bh.ops->export_sock(sa, &x), HWSOCK_EAGAIN);
  cr_assert_eq(send_to(sb, "early", 5, "ipx://" NET "." NODE_A ".5000"), 0);
  BH_RUN_UNTIL(r0.ncomplete);
  bh_expect_done(&r0, 0);
  cr_assert_eq(r0.len, 5);
  /* one RECV waits: exported */
  cr_assert_eq(r1.ncomplete, 0);
  cr_assert_eq(bh.ops->export_sock(sa, &x), 0);
  cr_assert_eq(x.fd, -1, "an IPX socket has no host socket of its own");
  cr_assert_gt(x.state_len, 0);
  /* the old instance goes (its RECV is the device's to submit again) */
  bh.ops->close(sa);
  bh_expect_done(&r1, HWSOCK_ECANCELED);
  bh.ops->destroy(ga.inst);
  ga.inst = NULL;
  cr_assert_eq(start_guest(&ga, fmt, pa, fd, gb.port), 0, "%s", bh.log);
  close(fd);
  /* untrusted records are checked */
  hwsock_bexport bad = x;
  bad.state[0] = 0x80;
  void *s2 = NULL;
  cr_assert_eq(bh.ops->import_sock(ga.inst, &bad, &s2), HWSOCK_EINVAL);
  bad = x;
  bad.state_len = 3;
  cr_assert_eq(bh.ops->import_sock(ga.inst, &bad, &s2), HWSOCK_EINVAL);
  bad = x;
  bad.fd = 0;
  cr_assert_eq(bh.ops->import_sock(ga.inst, &bad, &s2), HWSOCK_EINVAL);
  cr_assert_eq(bh.ops->import_sock(ga.inst, &x, &s2), 0);
  expect_name(s2, "ipx://" NET "." NODE_A ".5000");
  /* its number is taken now, by the imported socket */
  void *s3 = NULL;
  cr_assert_eq(bh.ops->import_sock(ga.inst, &x, &s3), HWSOCK_EADDRINUSE);
  bh_req r2;
  submit_recv(s2, &r2, in, sizeof(in), 0);
  cr_assert_eq(send_to(sb, "after", 5, "ipx://" NET "." NODE_A ".5000"), 0);
  BH_RUN_UNTIL(r2.ncomplete);
  bh_expect_done(&r2, 0);
  cr_assert_eq(r2.len, 5);
  cr_assert_arr_eq(in, "after", 5);
  /* still connected: a SEND without an address reaches B's socket */
  bh_req rb;
  submit_recv(sb, &rb, in, sizeof(in), 0);
  cr_assert_eq(send_to(s2, "back", 4, NULL), 0);
  BH_RUN_UNTIL(rb.ncomplete);
  bh_expect_done(&rb, 0);
  cr_assert_eq(rb.len, 4);
  char u[HWSOCK_URI_MAX + 1];
  uri_of(&rb.br.peer, u, sizeof(u));
  cr_assert_str_eq(u, "ipx://" NET "." NODE_A ".5000");
  bh.ops->close(s2);
  bh.ops->close(sb);
}
