/* The tcp backend module, loaded by path like a VMM would, driven on a real
 * uv loop against real loopback peers (plain sockets run by the test). */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "hwsock/backend.h"
#include "support/backend_harness.h"
#include "support/loopback_sock.h"

#define TCP_SO HWSOCK_BUILD_BACKEND_DIR "/tcp.so"

/* ---- fixture: the module, one instance, a loop (backend_harness.h) -------- */

static void setup(void) { bh_setup_instance(TCP_SO); }

TestSuite(tcp, .init = setup, .fini = bh_teardown_instance, .timeout = 60);

/* ---- requests ------------------------------------------------------------- */

static void req_init(bh_req *r, uint16_t opcode) {
  bh_req_init(r, opcode, HWSOCK_SCHEME_TCP);
}

static void submit_addr(void *s, bh_req *r, uint16_t op, const hwsock_addr *a) {
  req_init(r, op);
  r->addr = *a;
  r->br.addr = &r->addr;
  bh.ops->submit(s, &r->br);
}

static void submit_op(void *s, bh_req *r, uint16_t op, uint32_t arg0,
                      uint32_t arg1) {
  req_init(r, op);
  r->br.arg0 = arg0;
  r->br.arg1 = arg1;
  bh.ops->submit(s, &r->br);
}

/* Submits r (already initialised with its buffers). */
static void submit_prepared(void *s, bh_req *r) { bh.ops->submit(s, &r->br); }

/* ---- plain-socket peers ---------------------------------------------------- */

static hwsock_addr v4_addr(uint16_t port) {
  return loopback_addr(HWSOCK_SCHEME_TCP, port);
}

static uint16_t local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
  return loopback_port_of(&ss);
}

/* A listening plain socket on 127.0.0.1 (or ::1); rcvbuf > 0 sets
 * SO_RCVBUF, which accepted sockets inherit. */
static int plain_listener(int family, int rcvbuf, uint16_t *port) {
  int fd = loopback_socket(family, SOCK_STREAM, port);
  if (rcvbuf > 0)
    cr_assert_eq(
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
  cr_assert_eq(listen(fd, 8), 0);
  return fd;
}

/* accept() with a deadline. */
static int plain_accept(int lfd) {
  struct pollfd p = {.fd = lfd, .events = POLLIN};
  cr_assert_eq(poll(&p, 1, 5000), 1, "a connection arrives");
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  cr_assert_geq(fd, 0);
  return fd;
}

/* Reads exactly n bytes from a blocking fd, with a deadline. */
static void read_exact(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "data arrives (%zu of %zu)", got, n);
    ssize_t k = read(fd, (char *)buf + got, n - got);
    cr_assert_gt(k, 0, "read: %zd (%s)", k, strerror(errno));
    got += (size_t)k;
  }
}

static void expect_eof(int fd) {
  char c;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  cr_assert_eq(poll(&p, 1, 5000), 1);
  cr_assert_eq(read(fd, &c, 1), 0, "the peer sees EOF");
}

static void write_all(int fd, const void *buf, size_t n) {
  cr_assert_eq(write(fd, buf, n), (ssize_t)n);
}

/* A backend socket connected to a plain peer: *peer is the peer's fd. */
static void *connected_pair(int *peer, int *lfd_out) {
  uint16_t port;
  int lfd = plain_listener(AF_INET, 0, &port);
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req c;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  BH_RUN_UNTIL(c.ncomplete);
  bh_expect_done(&c, 0);
  *peer = plain_accept(lfd);
  if (lfd_out)
    *lfd_out = lfd;
  else
    close(lfd);
  return s;
}

static void set_int_opt(void *s, uint32_t level, uint32_t name, uint32_t v) {
  hwsock_le32 val;
  hwsock_le32_set(&val, v);
  bh_req r;
  req_init(&r, HWSOCK_OP_SETSOCKOPT);
  r.br.arg0 = level;
  r.br.arg1 = name;
  bh_set_iov(&r, 1, (void *)&val, sizeof(val));
  submit_prepared(s, &r);
  bh_expect_done(&r, 0);
}

static uint32_t get_int_opt(void *s, uint32_t level, uint32_t name) {
  hwsock_le32 val;
  bh_req r;
  req_init(&r, HWSOCK_OP_GETSOCKOPT);
  r.br.arg0 = level;
  r.br.arg1 = name;
  bh_set_iov(&r, 1, (void *)&val, sizeof(val));
  submit_prepared(s, &r);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 4);
  return hwsock_le32_get(&val);
}

/* ---- tests ---------------------------------------------------------------- */

Test(tcp, echo_with_multi_iovec_send_and_recv) {
  int peer;
  void *s = connected_pair(&peer, NULL);

  char a[] = "hello, ", b[] = "scatter", c[] = "-gather!";
  bh_req snd;
  req_init(&snd, HWSOCK_OP_SEND);
  bh_set_iov(&snd, 3, a, strlen(a), b, strlen(b), c, strlen(c));
  submit_prepared(s, &snd);
  BH_RUN_UNTIL(snd.ncomplete);
  bh_expect_done(&snd, 0);
  cr_assert_eq(snd.len, 22);

  char got[23] = {0};
  read_exact(peer, got, 22);
  cr_assert_str_eq(got, "hello, scatter-gather!");

  /* the peer answers; one RECV fills three buffers in order */
  write_all(peer, "0123456789", 10);
  char x[3], y[4], z[16];
  bh_req rcv;
  req_init(&rcv, HWSOCK_OP_RECV);
  bh_set_iov(&rcv, 3, x, sizeof(x), y, sizeof(y), z, sizeof(z));
  submit_prepared(s, &rcv);
  BH_RUN_UNTIL(rcv.ncomplete);
  bh_expect_done(&rcv, 0);
  cr_assert_eq(rcv.len, 10);
  cr_assert_eq(rcv.br.resp_flags, 0);
  cr_assert_arr_eq(x, "012", 3);
  cr_assert_arr_eq(y, "3456", 4);
  cr_assert_arr_eq(z, "789", 3);

  bh.ops->close(s);
  close(peer);
}

Test(tcp, recv_never_exceeds_its_buffer_and_keeps_the_rest) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  write_all(peer, "abcdefgh", 8);
  char b1[5], b2[16];
  bh_req r1, r2;
  req_init(&r1, HWSOCK_OP_RECV);
  bh_set_iov(&r1, 1, b1, sizeof(b1));
  req_init(&r2, HWSOCK_OP_RECV);
  bh_set_iov(&r2, 1, b2, sizeof(b2));
  submit_prepared(s, &r1);
  submit_prepared(s, &r2);
  BH_RUN_UNTIL(r1.ncomplete && r2.ncomplete);
  bh_expect_done(&r1, 0);
  bh_expect_done(&r2, 0);
  cr_assert_eq(r1.len, 5);
  cr_assert_eq(r2.len, 3);
  cr_assert_lt(r1.order, r2.order, "RECVs complete in order");
  cr_assert_arr_eq(b1, "abcde", 5);
  cr_assert_arr_eq(b2, "fgh", 3);
  bh.ops->close(s);
  close(peer);
}

Test(tcp, recv_waits_for_data_then_waitall_fills_the_buffer) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  char buf[10];
  bh_req r;
  req_init(&r, HWSOCK_OP_RECV);
  r.br.arg0 = HWSOCK_RECV_WAITALL;
  bh_set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  bh_run_for_ms(50);
  cr_assert_eq(r.ncomplete, 0, "no data, no completion");
  write_all(peer, "01234", 5);
  bh_run_for_ms(100);
  cr_assert_eq(r.ncomplete, 0, "WAITALL holds a partly filled buffer");
  write_all(peer, "56789", 5);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 10);
  cr_assert_arr_eq(buf, "0123456789", 10);
  bh.ops->close(s);
  close(peer);
}

Test(tcp, peek_leaves_the_data_and_zero_length_recv_completes_at_once) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  bh_req z;
  req_init(&z, HWSOCK_OP_RECV);
  submit_prepared(s, &z);
  bh_expect_done(&z, 0);
  cr_assert_eq(z.len, 0);

  write_all(peer, "peek", 4);
  char p[8], q[8];
  bh_req rp, rq;
  req_init(&rp, HWSOCK_OP_RECV);
  rp.br.arg0 = HWSOCK_RECV_PEEK;
  bh_set_iov(&rp, 1, p, sizeof(p));
  submit_prepared(s, &rp);
  BH_RUN_UNTIL(rp.ncomplete);
  bh_expect_done(&rp, 0);
  cr_assert_eq(rp.len, 4);
  req_init(&rq, HWSOCK_OP_RECV);
  bh_set_iov(&rq, 1, q, sizeof(q));
  submit_prepared(s, &rq);
  BH_RUN_UNTIL(rq.ncomplete);
  bh_expect_done(&rq, 0);
  cr_assert_eq(rq.len, 4);
  cr_assert_arr_eq(p, "peek", 4);
  cr_assert_arr_eq(q, "peek", 4);
  bh.ops->close(s);
  close(peer);
}

Test(tcp, connect_to_a_closed_port_is_refused) {
  /* take a free port, then free it again */
  uint16_t port;
  int lfd = plain_listener(AF_INET, 0, &port);
  close(lfd);
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req c;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  BH_RUN_UNTIL(c.ncomplete);
  bh_expect_done(&c, HWSOCK_ECONNREFUSED);
  /* the failed socket is not connected */
  bh_req snd;
  char x = 'x';
  req_init(&snd, HWSOCK_OP_SEND);
  bh_set_iov(&snd, 1, &x, (size_t)1);
  submit_prepared(s, &snd);
  bh_expect_done(&snd, HWSOCK_ENOTCONN);
  bh.ops->close(s);
}

Test(tcp, pipelined_connect_send_recv) {
  /* SEND and RECV submitted behind a CONNECT wait for it, in order */
  uint16_t port;
  int lfd = plain_listener(AF_INET, 0, &port);
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req c, snd, rcv;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  req_init(&snd, HWSOCK_OP_SEND);
  bh_set_iov(&snd, 1, "ping", (size_t)4);
  submit_prepared(s, &snd);
  char buf[8];
  req_init(&rcv, HWSOCK_OP_RECV);
  bh_set_iov(&rcv, 1, buf, sizeof(buf));
  submit_prepared(s, &rcv);
  BH_RUN_UNTIL(snd.ncomplete);
  bh_expect_done(&c, 0);
  bh_expect_done(&snd, 0);
  cr_assert_lt(c.order, snd.order);
  int peer = plain_accept(lfd);
  char got[4];
  read_exact(peer, got, 4);
  cr_assert_arr_eq(got, "ping", 4);
  write_all(peer, "pong", 4);
  BH_RUN_UNTIL(rcv.ncomplete);
  bh_expect_done(&rcv, 0);
  cr_assert_eq(rcv.len, 4);
  cr_assert_arr_eq(buf, "pong", 4);
  bh.ops->close(s);
  close(peer);
  close(lfd);
}

Test(tcp, connect_states_already_and_isconn) {
  /* A listener with a full accept queue drops SYNs, so a connect to it
   * stays in progress: a second CONNECT meanwhile is EALREADY. */
  uint16_t port;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  cr_assert_eq(listen(lfd, 0), 0);
  port = local_port(lfd);
  int fill[2];
  for (int i = 0; i < 2; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sin.sin_port = htons(port);
    connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
  }
  usleep(50000);
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req c1, c2;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c1, HWSOCK_OP_CONNECT, &a);
  bh_run_for_ms(100);
  cr_assert_eq(c1.ncomplete, 0, "the connect is in progress");
  submit_addr(s, &c2, HWSOCK_OP_CONNECT, &a);
  bh_expect_done(&c2, HWSOCK_EALREADY);
  /* SO_ERROR while connecting does not steal the connect's outcome */
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_ERROR), 0);
  /* closing cancels the pending connect synchronously */
  bh.ops->close(s);
  bh_expect_done(&c1, HWSOCK_ECANCELED);
  for (int i = 0; i < 2; i++)
    close(fill[i]);
  close(lfd);

  /* connected: CONNECT is EISCONN, a SEND with a destination too */
  int peer;
  s = connected_pair(&peer, NULL);
  submit_addr(s, &c2, HWSOCK_OP_CONNECT, &a);
  bh_expect_done(&c2, HWSOCK_EISCONN);
  bh_req snd;
  req_init(&snd, HWSOCK_OP_SEND);
  snd.addr = a;
  snd.br.addr = &snd.addr;
  bh_set_iov(&snd, 1, "x", (size_t)1);
  submit_prepared(s, &snd);
  bh_expect_done(&snd, HWSOCK_EISCONN);
  submit_op(s, &c2, HWSOCK_OP_LISTEN, 4, 0);
  bh_expect_done(&c2, HWSOCK_EINVAL);
  bh.ops->close(s);
  close(peer);
}

Test(tcp, shutdown_read_ends_a_pending_recv_with_eof) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  char buf[4];
  bh_req r, sh;
  req_init(&r, HWSOCK_OP_RECV);
  bh_set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  bh_run_for_ms(20);
  cr_assert_eq(r.ncomplete, 0);
  submit_op(s, &sh, HWSOCK_OP_SHUTDOWN, HWSOCK_SHUT_RD, 0);
  bh_expect_done(&sh, 0);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 0);
  cr_assert_eq(r.br.resp_flags, HWSOCK_RESP_F_EOF);
  /* the write side still works */
  bh_req snd;
  req_init(&snd, HWSOCK_OP_SEND);
  bh_set_iov(&snd, 1, "ok", (size_t)2);
  submit_prepared(s, &snd);
  BH_RUN_UNTIL(snd.ncomplete);
  bh_expect_done(&snd, 0);
  char got[2];
  read_exact(peer, got, 2);
  cr_assert_arr_eq(got, "ok", 2);
  bh.ops->close(s);
  close(peer);
}

Test(tcp, requests_on_an_unconnected_socket) {
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req r;
  req_init(&r, HWSOCK_OP_SEND);
  bh_set_iov(&r, 1, "x", (size_t)1);
  submit_prepared(s, &r);
  bh_expect_done(&r, HWSOCK_ENOTCONN);
  char b[4];
  req_init(&r, HWSOCK_OP_RECV);
  bh_set_iov(&r, 1, b, sizeof(b));
  submit_prepared(s, &r);
  bh_expect_done(&r, HWSOCK_ENOTCONN);
  submit_op(s, &r, HWSOCK_OP_ACCEPT, 0, 0);
  bh_expect_done(&r, HWSOCK_EINVAL);
  submit_op(s, &r, HWSOCK_OP_GETNAME, 1, 0);
  bh_expect_done(&r, HWSOCK_ENOTCONN);
  submit_op(s, &r, HWSOCK_OP_GETNAME, 2, 0);
  bh_expect_done(&r, HWSOCK_EINVAL);
  submit_op(s, &r, HWSOCK_OP_SHUTDOWN, 9, 0);
  bh_expect_done(&r, HWSOCK_EINVAL);
  submit_op(s, &r, HWSOCK_OP_OPEN, 0, 0);
  bh_expect_done(&r, HWSOCK_EOPNOTSUPP);
  /* a tcp socket takes no tcp6 address */
  hwsock_addr a6;
  memset(&a6, 0, sizeof(a6));
  a6.scheme = HWSOCK_SCHEME_TCP6;
  a6.family = HWSOCK_AF_INET6;
  a6.port = 9;
  a6.u.v6[15] = 1;
  submit_addr(s, &r, HWSOCK_OP_CONNECT, &a6);
  bh_expect_done(&r, HWSOCK_EAFNOSUPPORT);
  req_init(&r, HWSOCK_OP_CONNECT);
  bh.ops->submit(s, &r.br); /* no address */
  bh_expect_done(&r, HWSOCK_EINVAL);
  bh.ops->close(s);
}

Test(tcp, peer_close_gives_eof) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  char buf[8];
  bh_req r;
  req_init(&r, HWSOCK_OP_RECV);
  bh_set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  bh_run_for_ms(20);
  cr_assert_eq(r.ncomplete, 0);
  close(peer);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 0);
  cr_assert_eq(r.br.resp_flags, HWSOCK_RESP_F_EOF);
  /* EOF stays: a later RECV sees it too */
  bh_req r2;
  req_init(&r2, HWSOCK_OP_RECV);
  bh_set_iov(&r2, 1, buf, sizeof(buf));
  submit_prepared(s, &r2);
  BH_RUN_UNTIL(r2.ncomplete);
  bh_expect_done(&r2, 0);
  cr_assert_eq(r2.br.resp_flags, HWSOCK_RESP_F_EOF);
  bh.ops->close(s);
}

Test(tcp, peer_reset_gives_econnreset) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  char buf[8];
  bh_req r;
  req_init(&r, HWSOCK_OP_RECV);
  bh_set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  bh_run_for_ms(20);
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  cr_assert_eq(setsockopt(peer, SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
  close(peer); /* linger 0: RST */
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, HWSOCK_ECONNRESET);
  bh.ops->close(s);
}

Test(tcp, half_close_keeps_the_other_direction) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  bh_req snd, shut, late;
  req_init(&snd, HWSOCK_OP_SEND);
  bh_set_iov(&snd, 1, "last words", (size_t)10);
  submit_prepared(s, &snd);
  submit_op(s, &shut, HWSOCK_OP_SHUTDOWN, HWSOCK_SHUT_WR, 0);
  req_init(&late, HWSOCK_OP_SEND);
  bh_set_iov(&late, 1, "too late", (size_t)8);
  submit_prepared(s, &late);
  BH_RUN_UNTIL(late.ncomplete);
  bh_expect_done(&snd, 0);
  bh_expect_done(&shut, 0);
  bh_expect_done(&late, HWSOCK_EPIPE);
  cr_assert(snd.order < shut.order && shut.order < late.order,
            "the write side completes in submission order");

  char got[10];
  read_exact(peer, got, 10);
  cr_assert_arr_eq(got, "last words", 10);
  expect_eof(peer);

  /* the peer can still talk back */
  write_all(peer, "reply", 5);
  char buf[8];
  bh_req r;
  req_init(&r, HWSOCK_OP_RECV);
  bh_set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 5);
  cr_assert_arr_eq(buf, "reply", 5);
  bh.ops->close(s);
  close(peer);
}

Test(tcp, listen_accept_reports_the_peer_address) {
  void *ls = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req r;
  hwsock_addr any = v4_addr(0);
  submit_addr(ls, &r, HWSOCK_OP_BIND, &any);
  bh_expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_LISTEN, 100000, 0); /* clamped, not refused */
  bh_expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_GETNAME, 0, 0);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.br.has_peer, 1);
  cr_assert_eq(r.br.peer.scheme, HWSOCK_SCHEME_TCP);
  uint16_t port = r.br.peer.port;
  cr_assert_neq(port, 0);

  bh_req acc;
  submit_op(ls, &acc, HWSOCK_OP_ACCEPT, 0, 0);
  bh_run_for_ms(20);
  cr_assert_eq(acc.ncomplete, 0, "ACCEPT waits for a connection");

  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  BH_RUN_UNTIL(acc.ncomplete);
  bh_expect_done(&acc, 0);
  cr_assert_not_null(acc.br.accepted);
  cr_assert_eq(acc.br.has_peer, 1);
  cr_assert_eq(acc.br.peer.family, HWSOCK_AF_INET);
  cr_assert_eq(acc.br.peer.port, local_port(cfd));
  static const uint8_t lo[4] = {127, 0, 0, 1};
  cr_assert_arr_eq(acc.br.peer.u.v4, lo, 4);

  /* the accepted socket works like any other */
  void *as = acc.br.accepted;
  write_all(cfd, "hi", 2);
  char buf[4];
  req_init(&r, HWSOCK_OP_RECV);
  bh_set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(as, &r);
  BH_RUN_UNTIL(r.ncomplete);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 2);
  cr_assert_arr_eq(buf, "hi", 2);
  submit_op(as, &r, HWSOCK_OP_GETNAME, 1, 0);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.br.peer.port, local_port(cfd));

  bh.ops->close(as);
  bh.ops->close(ls);
  close(cfd);
}

Test(tcp, tcp6_listen_connect_accept) {
  void *ls = bh_open(bh.inst, HWSOCK_SCHEME_TCP6);
  hwsock_addr a = loopback_addr(HWSOCK_SCHEME_TCP6, 0); /* ::1 port 0 */
  bh_req r;
  submit_addr(ls, &r, HWSOCK_OP_BIND, &a);
  if (r.status == HWSOCK_EADDRNOTAVAIL) {
    bh.ops->close(ls);
    cr_skip_test("no IPv6 loopback on this host");
  }
  bh_expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_LISTEN, 4, 0);
  bh_expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_GETNAME, 0, 0);
  bh_expect_done(&r, 0);
  a.port = r.br.peer.port;

  bh_req acc, con;
  submit_op(ls, &acc, HWSOCK_OP_ACCEPT, 0, 0);
  void *cs = bh_open(bh.inst, HWSOCK_SCHEME_TCP6);
  submit_addr(cs, &con, HWSOCK_OP_CONNECT, &a);
  BH_RUN_UNTIL(acc.ncomplete && con.ncomplete);
  bh_expect_done(&acc, 0);
  bh_expect_done(&con, 0);
  cr_assert_eq(acc.br.peer.scheme, HWSOCK_SCHEME_TCP6);
  cr_assert_arr_eq(acc.br.peer.u.v6, a.u.v6, 16);
  submit_op(cs, &r, HWSOCK_OP_GETNAME, 0, 0);
  bh_expect_done(&r, 0);
  cr_assert_eq(acc.br.peer.port, r.br.peer.port);
  bh.ops->close(cs);
  bh.ops->close(acc.br.accepted);
  bh.ops->close(ls);
}

Test(tcp, getname_local_and_peer) {
  uint16_t port;
  int lfd = plain_listener(AF_INET, 0, &port);
  int peer;
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req c, r;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  BH_RUN_UNTIL(c.ncomplete);
  bh_expect_done(&c, 0);
  peer = plain_accept(lfd);

  submit_op(s, &r, HWSOCK_OP_GETNAME, 1, 0);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.br.has_peer, 1);
  cr_assert_eq(r.br.peer.port, port);
  cr_assert_eq(r.br.peer.u.v4[0], 127);

  struct sockaddr_in pn;
  socklen_t pl = sizeof(pn);
  cr_assert_eq(getpeername(peer, (struct sockaddr *)&pn, &pl), 0);
  submit_op(s, &r, HWSOCK_OP_GETNAME, 0, 0);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.br.peer.port, ntohs(pn.sin_port),
               "our local port is what the peer sees");
  cr_assert_eq(r.br.peer.scheme, HWSOCK_SCHEME_TCP);
  bh.ops->close(s);
  close(peer);
  close(lfd);
}

Test(tcp, sockopt_allow_list_round_trips) {
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  set_int_opt(s, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, 1);
  cr_assert_neq(get_int_opt(s, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY), 0);
  set_int_opt(s, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, 0);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY), 0);
  set_int_opt(s, HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE, 77);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE), 77);
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE, 1);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE), 1);
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 1);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR), 1);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_ERROR), 0);

  /* SO_LINGER: two le32, one value split over two iovecs */
  hwsock_le32 lv[2];
  hwsock_le32_set(&lv[0], 1);
  hwsock_le32_set(&lv[1], 7);
  bh_req r;
  req_init(&r, HWSOCK_OP_SETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_SOCKET;
  r.br.arg1 = HWSOCK_SO_LINGER;
  bh_set_iov(&r, 2, (void *)lv, (size_t)3, (char *)lv + 3, (size_t)5);
  submit_prepared(s, &r);
  bh_expect_done(&r, 0);
  uint8_t out[12];
  memset(out, 0xee, sizeof(out));
  req_init(&r, HWSOCK_OP_GETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_SOCKET;
  r.br.arg1 = HWSOCK_SO_LINGER;
  bh_set_iov(&r, 1, (void *)out, sizeof(out));
  submit_prepared(s, &r);
  bh_expect_done(&r, 0);
  cr_assert_eq(r.len, 8);
  cr_assert_eq(hwsock_le32_get((hwsock_le32 *)out), 1);
  cr_assert_eq(hwsock_le32_get((hwsock_le32 *)(out + 4)), 7);
  cr_assert_eq(out[8], 0xee, "nothing written past the value");
  bh.ops->close(s);
}

Test(tcp, sockopt_refusals) {
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  hwsock_le32 v;
  hwsock_le32_set(&v, 1);
  static const uint32_t bad[][2] = {
      {HWSOCK_SOL_SOCKET, 99},                 /* unknown option */
      {HWSOCK_SOL_SOCKET, 3},                  /* SO_TYPE: not allowed */
      {HWSOCK_SOL_TCP, 13},                    /* TCP_CONGESTION */
      {255, HWSOCK_TCP_NODELAY},               /* unknown level */
      {HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY},   /* v6 option, v4 socket */
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_ERROR},    /* get only */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    bh_req r;
    req_init(&r, HWSOCK_OP_SETSOCKOPT);
    r.br.arg0 = bad[i][0];
    r.br.arg1 = bad[i][1];
    bh_set_iov(&r, 1, (void *)&v, sizeof(v));
    submit_prepared(s, &r);
    bh_expect_done(&r, HWSOCK_ENOPROTOOPT);
    if (bad[i][1] != HWSOCK_SO_ERROR) {
      req_init(&r, HWSOCK_OP_GETSOCKOPT);
      r.br.arg0 = bad[i][0];
      r.br.arg1 = bad[i][1];
      bh_set_iov(&r, 1, (void *)&v, sizeof(v));
      submit_prepared(s, &r);
      bh_expect_done(&r, HWSOCK_ENOPROTOOPT);
    }
  }
  /* value too short, for set and for get */
  bh_req r;
  req_init(&r, HWSOCK_OP_SETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_TCP;
  r.br.arg1 = HWSOCK_TCP_NODELAY;
  bh_set_iov(&r, 1, (void *)&v, (size_t)2);
  submit_prepared(s, &r);
  bh_expect_done(&r, HWSOCK_EINVAL);
  req_init(&r, HWSOCK_OP_SETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_SOCKET;
  r.br.arg1 = HWSOCK_SO_LINGER;
  bh_set_iov(&r, 1, (void *)&v, sizeof(v)); /* linger needs 8 */
  submit_prepared(s, &r);
  bh_expect_done(&r, HWSOCK_EINVAL);
  req_init(&r, HWSOCK_OP_GETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_TCP;
  r.br.arg1 = HWSOCK_TCP_NODELAY;
  bh_set_iov(&r, 1, (void *)&v, (size_t)3);
  submit_prepared(s, &r);
  bh_expect_done(&r, HWSOCK_EINVAL);
  bh.ops->close(s);

  /* the v6 option is there on a tcp6 socket */
  s = bh_open(bh.inst, HWSOCK_SCHEME_TCP6);
  set_int_opt(s, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 1);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY), 1);
  bh.ops->close(s);
}

Test(tcp, close_cancels_pending_requests_synchronously) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  bh_req r1, r2;
  char b1[4], b2[4];
  req_init(&r1, HWSOCK_OP_RECV);
  bh_set_iov(&r1, 1, b1, sizeof(b1));
  req_init(&r2, HWSOCK_OP_RECV);
  bh_set_iov(&r2, 1, b2, sizeof(b2));
  submit_prepared(s, &r1);
  submit_prepared(s, &r2);
  bh_run_for_ms(20);
  cr_assert_eq(r1.ncomplete + r2.ncomplete, 0);
  bh.ops->close(s);
  bh_expect_done(&r1, HWSOCK_ECANCELED);
  bh_expect_done(&r2, HWSOCK_ECANCELED);
  cr_assert_lt(r1.order, r2.order);
  /* the host socket is gone at once: the peer sees EOF */
  expect_eof(peer);
  /* and nothing calls back later */
  write_all(peer, "x", 1);
  bh_run_for_ms(50);
  cr_assert_eq(r1.ncomplete, 1);
  cr_assert_eq(r2.ncomplete, 1);
  close(peer);
}

/* A completion that submits the next RECV from inside complete(): the
 * backend must cope with being re-entered. */
static void *chain_sock;
static bh_req chain_req[3];
static char chain_buf[3][2];
static int chain_n;

static void chain_complete(hwsock_breq *req, int status, size_t len) {
  bh_on_complete(req, status, len);
  if (chain_n < 3) {
    bh_req *r = &chain_req[chain_n];
    req_init(r, HWSOCK_OP_RECV);
    bh_set_iov(r, 1, chain_buf[chain_n], (size_t)2);
    chain_n++;
    bh.ops->submit(chain_sock, &r->br);
  }
}

Test(tcp, submit_from_inside_a_completion) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  chain_sock = s;
  chain_n = 0;
  bh.host.complete = chain_complete;
  write_all(peer, "aabbcc", 6);
  bh_req first;
  char fb[2];
  req_init(&first, HWSOCK_OP_RECV);
  bh_set_iov(&first, 1, fb, (size_t)2);
  submit_prepared(s, &first);
  BH_RUN_UNTIL(chain_req[1].ncomplete);
  bh_expect_done(&first, 0);
  bh_expect_done(&chain_req[0], 0);
  bh_expect_done(&chain_req[1], 0);
  cr_assert_arr_eq(fb, "aa", 2);
  cr_assert_arr_eq(chain_buf[0], "bb", 2);
  cr_assert_arr_eq(chain_buf[1], "cc", 2);
  cr_assert(first.order < chain_req[0].order &&
            chain_req[0].order < chain_req[1].order);
  bh_run_for_ms(20);
  cr_assert_eq(chain_req[2].ncomplete, 0, "the third waits for data");
  bh.host.complete = bh_on_complete;
  bh.ops->close(s);
  bh_expect_done(&chain_req[2], HWSOCK_ECANCELED);
  close(peer);
}

/* ---- a SEND larger than the socket buffers, against a slow reader ---------- */

#define BIG (8u << 20)

static uint8_t pattern(size_t i) {
  return (uint8_t)(i ^ (i >> 8) ^ (i >> 16) ^ 0x5a);
}

typedef struct slow_reader {
  int fd;
  size_t got;
  size_t bad; /* first mismatching offset + 1, 0 when all good */
  uint8_t *buf;
} slow_reader;

static void on_handle_closed(uv_handle_t *h) { h->data = NULL; }

static void slow_read_tick(uv_timer_t *t) {
  slow_reader *sr = t->data;
  ssize_t k = recv(sr->fd, sr->buf, 64 * 1024, MSG_DONTWAIT);
  if (k <= 0)
    return;
  for (ssize_t i = 0; i < k && !sr->bad; i++)
    if (sr->buf[i] != pattern(sr->got + (size_t)i))
      sr->bad = sr->got + (size_t)i + 1;
  sr->got += (size_t)k;
}

Test(tcp, big_send_completes_only_when_all_bytes_are_taken) {
  uint16_t port;
  int lfd = plain_listener(AF_INET, 64 * 1024, &port);
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  /* small buffers on both sides: 8 MiB cannot hide in the kernel */
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, 64 * 1024);
  bh_req c;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  BH_RUN_UNTIL(c.ncomplete);
  bh_expect_done(&c, 0);
  int peer = plain_accept(lfd);
  close(lfd);

  uint8_t *data = malloc(BIG);
  cr_assert_not_null(data);
  for (size_t i = 0; i < BIG; i++)
    data[i] = pattern(i);
  /* three uneven iovecs, plus a later SEND that must complete after it */
  uint8_t tail[16];
  for (size_t i = 0; i < sizeof(tail); i++)
    tail[i] = pattern(BIG + i);
  bh_req big, small;
  req_init(&big, HWSOCK_OP_SEND);
  bh_set_iov(&big, 4, data, (size_t)1000003, data + 1000003, (size_t)0,
          data + 1000003, (size_t)(3u << 20),
          data + 1000003 + (3u << 20), (size_t)(BIG - 1000003 - (3u << 20)));
  submit_prepared(s, &big);
  req_init(&small, HWSOCK_OP_SEND);
  bh_set_iov(&small, 1, tail, sizeof(tail));
  submit_prepared(s, &small);
  bh_run_for_ms(200);
  cr_assert_eq(big.ncomplete, 0, "no reader, no completion");

  slow_reader sr = {.fd = peer, .buf = malloc(64 * 1024)};
  uv_timer_t rt;
  uv_timer_init(&bh.loop, &rt);
  rt.data = &sr;
  uv_timer_start(&rt, slow_read_tick, 1, 1);
  BH_RUN_UNTIL(big.ncomplete);
  size_t read_at_completion = sr.got;
  bh_expect_done(&big, 0);
  cr_assert_eq(big.len, BIG);
  cr_assert_geq(read_at_completion + (2u << 20), BIG,
                "completed only after the reader took most bytes (%zu)",
                read_at_completion);
  BH_RUN_UNTIL(small.ncomplete);
  bh_expect_done(&small, 0);
  cr_assert_lt(big.order, small.order);
  BH_RUN_UNTIL(sr.got >= BIG + 16);
  cr_assert_eq(sr.got, BIG + 16);
  cr_assert_eq(sr.bad, 0, "byte %zu differs", sr.bad - 1);
  uv_close((uv_handle_t *)&rt, on_handle_closed);
  BH_RUN_UNTIL(rt.data == NULL); /* rt lives on this stack frame */
  bh.ops->close(s);
  close(peer);
  free(sr.buf);
  free(data);
}

Test(tcp, instance_options_are_refused) {
  hwsock_backend_host h = bh.host;
  h.options = "nodelay";
  void *i2 = NULL;
  cr_assert_eq(bh.ops->create(&h, &i2), HWSOCK_EBADCONFIG);
  hwsock_bopen bo = {.size = sizeof(bo), .scheme = HWSOCK_SCHEME_UDP};
  void *s = NULL;
  cr_assert_eq(bh.ops->open(bh.inst, &bo, &s), HWSOCK_EPROTONOSUPPORT);
}

/* Out of fds, an ACCEPT waits (the connection stays in the kernel's
 * backlog) instead of failing, and the listener is not polled in a loop
 * meanwhile: it backs off (10 ms doubling) and says so in one log line.
 * Once fds are back the ACCEPT completes. Before the backoff it failed at
 * once with EMFILE. */
static unsigned turns;
static uv_check_t turn_check; /* static: closed after the test returns */
static void count_turn(uv_check_t *h) { (void)h; turns++; }

Test(tcp, accept_out_of_fds_backs_off_then_completes) {
  void *ls = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req r;
  hwsock_addr any = v4_addr(0);
  submit_addr(ls, &r, HWSOCK_OP_BIND, &any);
  bh_expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_LISTEN, 8, 0);
  bh_expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_GETNAME, 0, 0);
  bh_expect_done(&r, 0);
  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons(r.br.peer.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);

  /* This test process only (criterion forks one per test): a low limit,
   * filled up with copies of stdin. */
  int top = dup(0);
  cr_assert(top >= 0);
  struct rlimit saved, rl = {(rlim_t)top + 8, (rlim_t)top + 8};
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rl.rlim_max = saved.rlim_max;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  int fill[16], nfill = 0;
  while (nfill < 16 && (fill[nfill] = dup(0)) >= 0)
    nfill++;
  cr_assert(nfill < 16 && errno == EMFILE, "the fd table did not fill");

  uv_check_init(&bh.loop, &turn_check);
  uv_check_start(&turn_check, count_turn);
  turns = 0;
  bh_req acc;
  submit_op(ls, &acc, HWSOCK_OP_ACCEPT, 0, 0);
  bh_run_for_ms(300);
  cr_assert_eq(acc.ncomplete, 0, "ACCEPT failed (%d) for want of fds",
               acc.status);
  cr_assert(turns < 100, "%u loop turns in 300 ms: the listener spins",
            turns);
  cr_assert(strstr(bh.log, "accept: Too many open files: backing off") !=
                NULL, "log: %s", bh.log);

  while (nfill > 0)
    close(fill[--nfill]);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
  BH_RUN_UNTIL(acc.ncomplete);
  bh_expect_done(&acc, 0);
  cr_assert_not_null(acc.br.accepted);
  uv_close((uv_handle_t *)&turn_check, NULL);
  bh.ops->close(acc.br.accepted);
  bh.ops->close(ls);
  close(cfd);
  close(top);
}
