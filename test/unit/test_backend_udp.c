/* The udp backend module, loaded by path like a VMM would, driven on a real
 * uv loop against real loopback peers (plain UDP sockets run by the test). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "hwsock/backend.h"
#include "support/backend_harness.h"
#include "support/loopback_sock.h"

#define UDP_SO HWSOCK_BUILD_BACKEND_DIR "/udp.so"

/* ---- fixture: the module, one instance, a loop (backend_harness.h) -------- */

static void setup(void) { bh_setup_instance(UDP_SO); }

TestSuite(udp, .init = setup, .fini = bh_teardown_instance, .timeout = 60);

/* ---- requests ------------------------------------------------------------- */

static hwsock_addr addr_v4(uint16_t port) {
  return loopback_addr(HWSOCK_SCHEME_UDP, port);
}

static hwsock_addr addr_v6(uint16_t port) {
  return loopback_addr(HWSOCK_SCHEME_UDP6, port);
}

/* Runs an addressed request (CONNECT, BIND) to completion. */
static int run_addr(void *s, uint16_t op, hwsock_addr a) {
  return bh_run_addr(s, op, &a);
}

/* Sends one datagram (to `to` when not NULL); returns the status. */
static int send_dgram(void *s, const void *data, size_t len,
                      const hwsock_addr *to) {
  return bh_run_send(s, to ? to->scheme : HWSOCK_SCHEME_UDP, data, len, to);
}

static void submit_recv(void *s, bh_req *r, void *buf, size_t len,
                        uint32_t flags) {
  bh_submit_recv(s, HWSOCK_SCHEME_UDP, r, buf, len, flags);
}

/* GETNAME (which: 0 local, 1 peer). */
static hwsock_addr getname(void *s, uint32_t which, int *status) {
  return bh_getname(s, HWSOCK_SCHEME_UDP, which, status);
}

static void *bound_sock(int scheme, uint16_t *port) {
  void *s = bh_open(bh.inst, scheme);
  hwsock_addr a = scheme == HWSOCK_SCHEME_UDP ? addr_v4(0) : addr_v6(0);
  cr_assert_eq(run_addr(s, HWSOCK_OP_BIND, a), 0);
  int st;
  hwsock_addr me = getname(s, 0, &st);
  cr_assert_eq(st, 0);
  cr_assert_neq(me.port, 0, "an ephemeral port was picked");
  *port = me.port;
  return s;
}

/* ---- plain-socket peers ---------------------------------------------------- */

static void plain_sendto(int fd, int family, uint16_t port, const void *buf,
                         size_t len) {
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
                              .sin6_port = htons(port),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  ssize_t n = family == AF_INET
                  ? sendto(fd, buf, len, 0, (struct sockaddr *)&sin,
                           sizeof(sin))
                  : sendto(fd, buf, len, 0, (struct sockaddr *)&sin6,
                           sizeof(sin6));
  cr_assert_eq(n, (ssize_t)len, "sendto: %s", strerror(errno));
}

/* One datagram with a deadline; returns its length and the source port. */
static ssize_t plain_recvfrom(int fd, void *buf, size_t len,
                              uint16_t *src_port) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  cr_assert_eq(poll(&p, 1, 5000), 1, "a datagram arrives");
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  ssize_t n = recvfrom(fd, buf, len, 0, (struct sockaddr *)&ss, &sl);
  cr_assert_geq(n, 0);
  *src_port = loopback_port_of(&ss);
  return n;
}

static void set_int_opt(void *s, uint32_t level, uint32_t name, uint32_t v,
                        int want) {
  hwsock_le32 val;
  hwsock_le32_set(&val, v);
  bh_req r;
  bh_req_init(&r, HWSOCK_OP_SETSOCKOPT, HWSOCK_SCHEME_UDP);
  r.br.arg0 = level;
  r.br.arg1 = name;
  bh_set_iov(&r, 1, (void *)&val, sizeof(val));
  bh.ops->submit(s, &r.br);
  bh_expect_done(&r, want);
}

static uint32_t get_int_opt(void *s, uint32_t level, uint32_t name,
                            int want) {
  hwsock_le32 val;
  hwsock_le32_set(&val, 0xdeadbeef);
  bh_req r;
  bh_req_init(&r, HWSOCK_OP_GETSOCKOPT, HWSOCK_SCHEME_UDP);
  r.br.arg0 = level;
  r.br.arg1 = name;
  bh_set_iov(&r, 1, (void *)&val, sizeof(val));
  bh.ops->submit(s, &r.br);
  bh_expect_done(&r, want);
  if (want == 0)
    cr_assert_eq(r.len, 4);
  return hwsock_le32_get(&val);
}

/* ---- tests ---------------------------------------------------------------- */

Test(udp, unconnected_send_to_two_peers_and_recv_reports_each_source) {
  uint16_t me, pa, pb, src;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa),
      b = loopback_socket(AF_INET, SOCK_DGRAM, &pb);

  hwsock_addr to_a = addr_v4(pa), to_b = addr_v4(pb);
  cr_assert_eq(send_dgram(s, "to-a", 4, &to_a), 0);
  cr_assert_eq(send_dgram(s, "to-bb", 5, &to_b), 0);
  char buf[64];
  cr_assert_eq(plain_recvfrom(a, buf, sizeof(buf), &src), 4);
  cr_assert_arr_eq(buf, "to-a", 4);
  cr_assert_eq(src, me, "the peer sees the bound port");
  cr_assert_eq(plain_recvfrom(b, buf, sizeof(buf), &src), 5);
  cr_assert_arr_eq(buf, "to-bb", 5);
  cr_assert_eq(src, me);

  /* Two RECVs posted before anything arrives wait, then take one datagram
   * each, in order, each with its own source. */
  char r1b[32], r2b[32];
  bh_req r1, r2;
  submit_recv(s, &r1, r1b, sizeof(r1b), 0);
  submit_recv(s, &r2, r2b, sizeof(r2b), 0);
  bh_run_for_ms(30);
  cr_assert_eq(r1.ncomplete + r2.ncomplete, 0, "nothing arrived yet");
  plain_sendto(b, AF_INET, me, "from-b", 6);
  plain_sendto(a, AF_INET, me, "from-a!", 7);
  BH_RUN_UNTIL(r1.ncomplete && r2.ncomplete);
  bh_expect_done(&r1, 0);
  bh_expect_done(&r2, 0);
  cr_assert_lt(r1.order, r2.order, "RECVs complete in order");
  cr_assert_eq(r1.len, 6);
  cr_assert_arr_eq(r1b, "from-b", 6);
  cr_assert_eq(r1.br.has_peer, 1);
  cr_assert_eq(r1.br.peer.scheme, HWSOCK_SCHEME_UDP);
  cr_assert_eq(r1.br.peer.port, pb);
  cr_assert_arr_eq(r1.br.peer.u.v4, ((uint8_t[]){127, 0, 0, 1}), 4);
  cr_assert_eq(r1.br.resp_flags, 0);
  cr_assert_eq(r1.br.resp_val, 6, "the full length");
  cr_assert_eq(r2.len, 7);
  cr_assert_arr_eq(r2b, "from-a!", 7);
  cr_assert_eq(r2.br.peer.port, pa);

  bh.ops->close(s);
  close(a);
  close(b);
}

Test(udp, send_gathers_iovecs_into_one_datagram) {
  uint16_t me, pa, src;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa);
  bh_req r;
  bh_req_init(&r, HWSOCK_OP_SEND, HWSOCK_SCHEME_UDP);
  r.addr = addr_v4(pa);
  r.br.addr = &r.addr;
  bh_set_iov(&r, 3, "one,", (size_t)4, "two,", (size_t)4, "three", (size_t)5);
  bh.ops->submit(s, &r.br);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 13);
  char buf[64];
  cr_assert_eq(plain_recvfrom(a, buf, sizeof(buf), &src), 13);
  cr_assert_arr_eq(buf, "one,two,three", 13);
  bh.ops->close(s);
  close(a);
}

Test(udp, connected_socket_sends_to_its_peer_and_hears_only_it) {
  uint16_t me, pa, pb, src;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa),
      b = loopback_socket(AF_INET, SOCK_DGRAM, &pb);
  cr_assert_eq(run_addr(s, HWSOCK_OP_CONNECT, addr_v4(pa)), 0);

  cr_assert_eq(send_dgram(s, "hi", 2, NULL), 0, "SEND without an address");
  char buf[16];
  cr_assert_eq(plain_recvfrom(a, buf, sizeof(buf), &src), 2);
  cr_assert_arr_eq(buf, "hi", 2);
  cr_assert_eq(src, me);

  int st;
  hwsock_addr peer = getname(s, 1, &st);
  cr_assert_eq(st, 0);
  cr_assert_eq(peer.port, pa);

  /* b is not the peer: the kernel drops its datagram; a's arrives. */
  plain_sendto(b, AF_INET, me, "nope", 4);
  plain_sendto(a, AF_INET, me, "yes", 3);
  bh_req r;
  submit_recv(s, &r, buf, sizeof(buf), 0);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 3);
  cr_assert_arr_eq(buf, "yes", 3);
  cr_assert_eq(r.br.peer.port, pa);
  bh.ops->close(s);
  close(a);
  close(b);
}

Test(udp, send_errors_enotconn_and_emsgsize) {
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_UDP);
  cr_assert_eq(send_dgram(s, "x", 1, NULL), HWSOCK_ENOTCONN,
               "no address and not connected");
  uint16_t pa;
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa);
  hwsock_addr to = addr_v4(pa);
  static char big[65508];
  cr_assert_eq(send_dgram(s, big, 65508, &to), HWSOCK_EMSGSIZE);
  cr_assert_eq(send_dgram(s, big, 65507, &to), 0, "the largest IPv4 payload");
  char *got = malloc(65536);
  uint16_t src;
  cr_assert_eq(plain_recvfrom(a, got, 65536, &src), 65507);
  free(got);
  bh.ops->close(s);
  close(a);
}

Test(udp, truncated_datagram_sets_the_flag_and_full_length) {
  uint16_t me, pa;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa);
  char data[100];
  for (int i = 0; i < 100; i++)
    data[i] = (char)('a' + i % 26);
  plain_sendto(a, AF_INET, me, data, sizeof(data));
  plain_sendto(a, AF_INET, me, "next", 4);

  char small[10], buf[16];
  bh_req r1, r2;
  submit_recv(s, &r1, small, sizeof(small), 0);
  submit_recv(s, &r2, buf, sizeof(buf), 0);
  BH_RUN_UNTIL(r1.ncomplete && r2.ncomplete);
  bh_expect_done(&r1, 0);
  cr_assert_eq(r1.len, 10);
  cr_assert_arr_eq(small, data, 10);
  cr_assert_eq(r1.br.resp_flags & HWSOCK_RESP_F_TRUNC, HWSOCK_RESP_F_TRUNC);
  cr_assert_eq(r1.br.resp_val, 100, "the length before truncation");
  cr_assert_eq(r1.br.peer.port, pa);
  /* the rest of a truncated datagram is gone, as with recvmsg */
  bh_expect_done(&r2, 0);
  cr_assert_eq(r2.len, 4);
  cr_assert_arr_eq(buf, "next", 4);
  cr_assert_eq(r2.br.resp_flags, 0);
  bh.ops->close(s);
  close(a);
}

Test(udp, peek_leaves_the_datagram_queued) {
  uint16_t me, pa;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa);
  plain_sendto(a, AF_INET, me, "peekaboo", 8);
  char p[4], q[16];
  bh_req rp, rq;
  submit_recv(s, &rp, p, sizeof(p), HWSOCK_RECV_PEEK);
  BH_RUN_UNTIL(rp.ncomplete);
  bh_expect_done(&rp, 0);
  cr_assert_eq(rp.len, 4);
  cr_assert_arr_eq(p, "peek", 4);
  cr_assert(rp.br.resp_flags & HWSOCK_RESP_F_TRUNC);
  cr_assert_eq(rp.br.resp_val, 8);
  submit_recv(s, &rq, q, sizeof(q), 0);
  BH_RUN_UNTIL(rq.ncomplete);
  bh_expect_done(&rq, 0);
  cr_assert_eq(rq.len, 8);
  cr_assert_arr_eq(q, "peekaboo", 8);
  bh.ops->close(s);
  close(a);
}

Test(udp, udp6_on_loopback_both_ways) {
  uint16_t me, pa, src;
  void *s = bound_sock(HWSOCK_SCHEME_UDP6, &me);
  int st;
  hwsock_addr local = getname(s, 0, &st);
  cr_assert_eq(local.scheme, HWSOCK_SCHEME_UDP6);
  cr_assert_eq(local.u.v6[15], 1, "bound to ::1");
  int a = loopback_socket(AF_INET6, SOCK_DGRAM, &pa);
  hwsock_addr to = addr_v6(pa);
  cr_assert_eq(send_dgram(s, "six", 3, &to), 0);
  char buf[16];
  cr_assert_eq(plain_recvfrom(a, buf, sizeof(buf), &src), 3);
  cr_assert_arr_eq(buf, "six", 3);
  cr_assert_eq(src, me);

  plain_sendto(a, AF_INET6, me, "back", 4);
  bh_req r;
  submit_recv(s, &r, buf, sizeof(buf), 0);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 4);
  cr_assert_arr_eq(buf, "back", 4);
  cr_assert_eq(r.br.peer.scheme, HWSOCK_SCHEME_UDP6);
  cr_assert_eq(r.br.peer.family, HWSOCK_AF_INET6);
  cr_assert_eq(r.br.peer.port, pa);
  static const uint8_t lo6[16] = {[15] = 1};
  cr_assert_arr_eq(r.br.peer.u.v6, lo6, 16);

  /* an IPv4 destination does not fit an IPv6 socket */
  hwsock_addr v4 = addr_v4(pa);
  cr_assert_eq(send_dgram(s, "x", 1, &v4), HWSOCK_EAFNOSUPPORT);
  bh.ops->close(s);
  close(a);
}

Test(udp, sockopt_allow_list_and_refusals) {
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_UDP);
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST, 1, 0);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST, 0), 1);
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 1, 0);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 0), 1);
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 65536, 0);
  cr_assert_geq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 0), 65536,
                "Linux doubles it");
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, 32768, 0);
  cr_assert_geq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, 0), 32768);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_ERROR, 0), 0);

  /* refused: not in the list, get-only, wrong family, short value */
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_ERROR, 0, HWSOCK_ENOPROTOOPT);
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE, 1,
              HWSOCK_ENOPROTOOPT);
  get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_LINGER, HWSOCK_ENOPROTOOPT);
  set_int_opt(s, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, 1, HWSOCK_ENOPROTOOPT);
  set_int_opt(s, 9999, 1, 1, HWSOCK_ENOPROTOOPT);
  set_int_opt(s, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 1, HWSOCK_ENOPROTOOPT);
  uint8_t two[2] = {1, 0};
  bh_req r;
  bh_req_init(&r, HWSOCK_OP_SETSOCKOPT, HWSOCK_SCHEME_UDP);
  r.br.arg0 = HWSOCK_SOL_SOCKET;
  r.br.arg1 = HWSOCK_SO_BROADCAST;
  bh_set_iov(&r, 1, (void *)two, sizeof(two));
  bh.ops->submit(s, &r.br);
  bh_expect_done(&r, HWSOCK_EINVAL);
  bh.ops->close(s);

  void *s6 = bh_open(bh.inst, HWSOCK_SCHEME_UDP6);
  set_int_opt(s6, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 1, 0);
  cr_assert_eq(get_int_opt(s6, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 0), 1);
  set_int_opt(s6, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 0, 0);
  cr_assert_eq(get_int_opt(s6, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 0), 0);
  bh.ops->close(s6);
}

Test(udp, close_cancels_a_pending_recv_synchronously) {
  uint16_t me;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  char b1[8], b2[8];
  bh_req r1, r2;
  submit_recv(s, &r1, b1, sizeof(b1), 0);
  submit_recv(s, &r2, b2, sizeof(b2), 0);
  bh_run_for_ms(20);
  cr_assert_eq(r1.ncomplete + r2.ncomplete, 0);
  bh.ops->close(s);
  bh_expect_done(&r1, HWSOCK_ECANCELED);
  bh_expect_done(&r2, HWSOCK_ECANCELED);
  cr_assert_lt(r1.order, r2.order);
  bh_run_for_ms(20);
  cr_assert_eq(r1.ncomplete, 1, "never completed twice");
}

Test(udp, full_receive_queue_drops_are_counted_and_logged) {
  uint16_t me, pa;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  /* the smallest buffer the kernel allows: a few datagrams fit */
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 1, 0);
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa);
  enum { SENT = 200 };
  char data[1000];
  memset(data, 'd', sizeof(data));
  for (int i = 0; i < SENT; i++)
    plain_sendto(a, AF_INET, me, data, sizeof(data));

  /* read until nothing is left */
  unsigned got = 0;
  char buf[1000];
  bh_req r;
  for (;;) {
    submit_recv(s, &r, buf, sizeof(buf), 0);
    uint64_t t0 = uv_hrtime();
    while (!r.ncomplete && uv_hrtime() - t0 < 100000000ull)
      uv_run(&bh.loop, UV_RUN_ONCE);
    if (!r.ncomplete)
      break;
    bh_expect_done(&r, 0);
    cr_assert_eq(r.len, sizeof(data));
    got++;
  }
  cr_assert_gt(got, 0);
  cr_assert_lt(got, SENT, "the small queue overflowed");
  /* The kernel stamps its drop counter on the datagrams queued after the
   * drops: the next one to arrive tells. */
  plain_sendto(a, AF_INET, me, "late", 4);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 4);
  const char *line = strstr(bh.log, "datagrams dropped");
  cr_assert_not_null(line, "a drop was logged: %s", bh.log);
  unsigned grew = 0, total = 0;
  const char *p = strstr(bh.log, "full (SO_RCVBUF), ");
  cr_assert_not_null(p, "%s", bh.log);
  cr_assert_eq(sscanf(p, "full (SO_RCVBUF), %u datagrams dropped, %u in total",
                      &grew, &total),
               2, "%s", bh.log);
  cr_assert_eq(grew, total, "the first report counts every drop so far");
  cr_assert_eq(got + total, SENT, "received %u + dropped %u", got, total);
  cr_assert_null(strstr(p + 1, "full (SO_RCVBUF)"), "logged once: %s", bh.log);
  bh.ops->close(s);
  close(a);
}

Test(udp, shutdown_as_the_kernel_does) {
  uint16_t me, pa;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  bh_req sh;
  bh_req_init(&sh, HWSOCK_OP_SHUTDOWN, HWSOCK_SCHEME_UDP);
  sh.br.arg0 = HWSOCK_SHUT_WR;
  bh.ops->submit(s, &sh.br);
  bh_expect_done(&sh, HWSOCK_ENOTCONN);
  bh.ops->close(s);

  s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa);
  cr_assert_eq(run_addr(s, HWSOCK_OP_CONNECT, addr_v4(pa)), 0);
  char buf[8];
  bh_req r;
  submit_recv(s, &r, buf, sizeof(buf), 0);
  bh_run_for_ms(20);
  cr_assert_eq(r.ncomplete, 0);
  bh_req_init(&sh, HWSOCK_OP_SHUTDOWN, HWSOCK_SCHEME_UDP);
  sh.br.arg0 = HWSOCK_SHUT_RDWR;
  bh.ops->submit(s, &sh.br);
  bh_expect_done(&sh, 0);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 0);
  cr_assert_eq(r.br.resp_flags, HWSOCK_RESP_F_EOF, "a waiting RECV sees EOF");
  cr_assert_eq(send_dgram(s, "x", 1, NULL), HWSOCK_EPIPE);
  bh.ops->close(s);
  close(a);
}

Test(udp, icmp_port_unreachable_fails_the_recv_of_a_connected_socket) {
  uint16_t me, pa;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa);
  close(a); /* nobody listens there now */
  cr_assert_eq(run_addr(s, HWSOCK_OP_CONNECT, addr_v4(pa)), 0);
  char buf[8];
  bh_req r;
  submit_recv(s, &r, buf, sizeof(buf), 0);
  cr_assert_eq(send_dgram(s, "ping", 4, NULL), 0);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, HWSOCK_ECONNREFUSED);
  bh.ops->close(s);
}

Test(udp, stream_only_requests_are_refused) {
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_UDP);
  bh_req r;
  bh_req_init(&r, HWSOCK_OP_LISTEN, HWSOCK_SCHEME_UDP);
  bh.ops->submit(s, &r.br);
  bh_expect_done(&r, HWSOCK_EOPNOTSUPP);
  bh_req_init(&r, HWSOCK_OP_ACCEPT, HWSOCK_SCHEME_UDP);
  bh.ops->submit(s, &r.br);
  bh_expect_done(&r, HWSOCK_EOPNOTSUPP);
  int st;
  getname(s, 1, &st);
  cr_assert_eq(st, HWSOCK_ENOTCONN);
  bh.ops->close(s);
}

Test(udp, open_refuses_other_schemes_and_create_refuses_options) {
  hwsock_bopen bo = {.size = sizeof(bo), .scheme = HWSOCK_SCHEME_TCP,
                     .reason = ""};
  void *s = NULL;
  cr_assert_eq(bh.ops->open(bh.inst, &bo, &s), HWSOCK_EPROTONOSUPPORT);
  hwsock_backend_host h2 = bh.host;
  h2.options = "rcvbuf=1";
  void *i2 = NULL;
  cr_assert_eq(bh.ops->create(&h2, &i2), HWSOCK_EBADCONFIG);
  cr_assert_not_null(strstr(bh.log, "unknown options"));
}

Test(udp, info_reports_the_fd_and_both_names) {
  cr_assert_not_null(bh.ops->info);
  uint16_t me, pa;
  void *s = bound_sock(HWSOCK_SCHEME_UDP, &me);
  hwsock_bsock_info bi = {.size = sizeof(bi), .fd = -1};
  cr_assert_eq(bh.ops->info(s, &bi), 0);
  cr_assert_geq(bi.fd, 0);
  cr_assert_eq(bi.has_local, 1);
  cr_assert_eq(bi.local.port, me);
  cr_assert_eq(bi.has_peer, 0, "not connected");
  int a = loopback_socket(AF_INET, SOCK_DGRAM, &pa);
  cr_assert_eq(run_addr(s, HWSOCK_OP_CONNECT, addr_v4(pa)), 0);
  memset(&bi, 0, sizeof(bi));
  bi.size = sizeof(bi);
  cr_assert_eq(bh.ops->info(s, &bi), 0);
  cr_assert_eq(bi.has_peer, 1);
  cr_assert_eq(bi.peer.port, pa);
  cr_assert_eq(bi.peer.scheme, HWSOCK_SCHEME_UDP);
  bh.ops->close(s);
  close(a);
}
