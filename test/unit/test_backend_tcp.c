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
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "hwsock/backend.h"
#include "hwsock/device.h"

#define TCP_SO HWSOCK_BUILD_BACKEND_DIR "/tcp.so"
#define TIMEOUT_NS (10ull * 1000 * 1000 * 1000)

/* ---- fixture: the module, one instance, a loop ---------------------------- */

static uv_loop_t loop;
static uv_timer_t tick; /* wakes UV_RUN_ONCE so that waits can time out */
static hwsock_plugin *plugin;
static const hwsock_backend_ops *ops;
static hwsock_backend_host host;
static void *inst;
static int seq; /* completion order across all requests */

typedef struct treq {
  hwsock_breq br; /* first: complete() gets &br */
  int ncomplete;
  int status;
  size_t len;
  int order;
  struct iovec iov[8];
  hwsock_addr addr;
} treq;

static void on_complete(hwsock_breq *req, int status, size_t len) {
  treq *r = (treq *)req;
  r->ncomplete++;
  r->status = status;
  r->len = len;
  r->order = ++seq;
}

static void on_tick(uv_timer_t *t) {}

static void setup(void) {
  char err[256] = "";
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(hwsock_plugin_load(TCP_SO, &plugin, err, sizeof(err)), 0, "%s",
               err);
  ops = hwsock_plugin_desc(plugin)->ops;
  memset(&host, 0, sizeof(host));
  host.size = sizeof(host);
  host.loop = &loop;
  host.options = "";
  host.complete = on_complete;
  cr_assert_eq(ops->create(&host, &inst), 0);
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_tick, 20, 20);
  seq = 0;
}

static void teardown(void) {
  ops->destroy(inst);
  uv_timer_stop(&tick);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT); /* the closing poll handles finish */
  cr_assert_eq(uv_loop_close(&loop), 0, "every handle was closed");
  hwsock_plugin_unload(plugin);
}

TestSuite(tcp, .init = setup, .fini = teardown, .timeout = 60);

#define RUN_UNTIL(cond)                                                       \
  do {                                                                        \
    uint64_t t0_ = uv_hrtime();                                               \
    while (!(cond)) {                                                         \
      uv_run(&loop, UV_RUN_ONCE);                                             \
      cr_assert(uv_hrtime() - t0_ < TIMEOUT_NS, "timed out: " #cond);         \
    }                                                                         \
  } while (0)

static void run_for_ms(unsigned ms) {
  uint64_t t0 = uv_hrtime();
  while (uv_hrtime() - t0 < (uint64_t)ms * 1000000)
    uv_run(&loop, UV_RUN_ONCE);
}

/* ---- requests ------------------------------------------------------------- */

static void req_init(treq *r, uint16_t opcode) {
  memset(r, 0, sizeof(*r));
  r->br.size = sizeof(r->br);
  r->br.opcode = opcode;
  r->br.scheme = HWSOCK_SCHEME_TCP;
}

static void *open_sock(int scheme) {
  hwsock_bopen bo = {.size = sizeof(bo), .scheme = scheme, .reason = ""};
  void *s = NULL;
  cr_assert_eq(ops->open(inst, &bo, &s), 0);
  cr_assert_not_null(s);
  return s;
}

static void submit_addr(void *s, treq *r, uint16_t op, const hwsock_addr *a) {
  req_init(r, op);
  r->addr = *a;
  r->br.addr = &r->addr;
  ops->submit(s, &r->br);
}

/* Sets the request's buffers: n (pointer, length) pairs. */
static void set_iov(treq *r, unsigned n, ...) {
  va_list ap;
  va_start(ap, n);
  r->br.iov_len = 0;
  for (unsigned i = 0; i < n; i++) {
    r->iov[i].iov_base = va_arg(ap, void *);
    r->iov[i].iov_len = va_arg(ap, size_t);
    r->br.iov_len += r->iov[i].iov_len;
  }
  va_end(ap);
  r->br.iov = r->iov;
  r->br.iovcnt = n;
}

static void submit_op(void *s, treq *r, uint16_t op, uint32_t arg0,
                      uint32_t arg1) {
  req_init(r, op);
  r->br.arg0 = arg0;
  r->br.arg1 = arg1;
  ops->submit(s, &r->br);
}

/* Submits r (already initialised with its buffers). */
static void submit_prepared(void *s, treq *r) { ops->submit(s, &r->br); }

static void expect_done(const treq *r, int status) {
  cr_assert_eq(r->ncomplete, 1, "completed exactly once (%d)", r->ncomplete);
  cr_assert_eq(r->status, status, "status %s, want %s",
               hwsock_err_name(r->status), hwsock_err_name(status));
}

/* ---- plain-socket peers ---------------------------------------------------- */

static hwsock_addr v4_addr(uint16_t port) {
  hwsock_addr a;
  memset(&a, 0, sizeof(a));
  a.scheme = HWSOCK_SCHEME_TCP;
  a.family = HWSOCK_AF_INET;
  a.port = port;
  a.u.v4[0] = 127;
  a.u.v4[3] = 1;
  return a;
}

static uint16_t local_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
  return ntohs(ss.ss_family == AF_INET
                   ? ((struct sockaddr_in *)&ss)->sin_port
                   : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A listening plain socket on 127.0.0.1 (or ::1); rcvbuf > 0 sets
 * SO_RCVBUF, which accepted sockets inherit. */
static int plain_listener(int family, int rcvbuf, uint16_t *port) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  if (rcvbuf > 0)
    cr_assert_eq(
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
  if (family == AF_INET) {
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  } else {
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
                                .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
  }
  cr_assert_eq(listen(fd, 8), 0);
  *port = local_port(fd);
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
  void *s = open_sock(HWSOCK_SCHEME_TCP);
  treq c;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  RUN_UNTIL(c.ncomplete);
  expect_done(&c, 0);
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
  treq r;
  req_init(&r, HWSOCK_OP_SETSOCKOPT);
  r.br.arg0 = level;
  r.br.arg1 = name;
  set_iov(&r, 1, (void *)&val, sizeof(val));
  submit_prepared(s, &r);
  expect_done(&r, 0);
}

static uint32_t get_int_opt(void *s, uint32_t level, uint32_t name) {
  hwsock_le32 val;
  treq r;
  req_init(&r, HWSOCK_OP_GETSOCKOPT);
  r.br.arg0 = level;
  r.br.arg1 = name;
  set_iov(&r, 1, (void *)&val, sizeof(val));
  submit_prepared(s, &r);
  expect_done(&r, 0);
  cr_assert_eq(r.len, 4);
  return hwsock_le32_get(&val);
}

/* ---- tests ---------------------------------------------------------------- */

Test(tcp, echo_with_multi_iovec_send_and_recv) {
  int peer;
  void *s = connected_pair(&peer, NULL);

  char a[] = "hello, ", b[] = "scatter", c[] = "-gather!";
  treq snd;
  req_init(&snd, HWSOCK_OP_SEND);
  set_iov(&snd, 3, a, strlen(a), b, strlen(b), c, strlen(c));
  submit_prepared(s, &snd);
  RUN_UNTIL(snd.ncomplete);
  expect_done(&snd, 0);
  cr_assert_eq(snd.len, 22);

  char got[23] = {0};
  read_exact(peer, got, 22);
  cr_assert_str_eq(got, "hello, scatter-gather!");

  /* the peer answers; one RECV fills three buffers in order */
  write_all(peer, "0123456789", 10);
  char x[3], y[4], z[16];
  treq rcv;
  req_init(&rcv, HWSOCK_OP_RECV);
  set_iov(&rcv, 3, x, sizeof(x), y, sizeof(y), z, sizeof(z));
  submit_prepared(s, &rcv);
  RUN_UNTIL(rcv.ncomplete);
  expect_done(&rcv, 0);
  cr_assert_eq(rcv.len, 10);
  cr_assert_eq(rcv.br.resp_flags, 0);
  cr_assert_arr_eq(x, "012", 3);
  cr_assert_arr_eq(y, "3456", 4);
  cr_assert_arr_eq(z, "789", 3);

  ops->close(s);
  close(peer);
}

Test(tcp, recv_never_exceeds_its_buffer_and_keeps_the_rest) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  write_all(peer, "abcdefgh", 8);
  char b1[5], b2[16];
  treq r1, r2;
  req_init(&r1, HWSOCK_OP_RECV);
  set_iov(&r1, 1, b1, sizeof(b1));
  req_init(&r2, HWSOCK_OP_RECV);
  set_iov(&r2, 1, b2, sizeof(b2));
  submit_prepared(s, &r1);
  submit_prepared(s, &r2);
  RUN_UNTIL(r1.ncomplete && r2.ncomplete);
  expect_done(&r1, 0);
  expect_done(&r2, 0);
  cr_assert_eq(r1.len, 5);
  cr_assert_eq(r2.len, 3);
  cr_assert_lt(r1.order, r2.order, "RECVs complete in order");
  cr_assert_arr_eq(b1, "abcde", 5);
  cr_assert_arr_eq(b2, "fgh", 3);
  ops->close(s);
  close(peer);
}

Test(tcp, recv_waits_for_data_then_waitall_fills_the_buffer) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  char buf[10];
  treq r;
  req_init(&r, HWSOCK_OP_RECV);
  r.br.arg0 = HWSOCK_RECV_WAITALL;
  set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  run_for_ms(50);
  cr_assert_eq(r.ncomplete, 0, "no data, no completion");
  write_all(peer, "01234", 5);
  run_for_ms(100);
  cr_assert_eq(r.ncomplete, 0, "WAITALL holds a partly filled buffer");
  write_all(peer, "56789", 5);
  RUN_UNTIL(r.ncomplete);
  expect_done(&r, 0);
  cr_assert_eq(r.len, 10);
  cr_assert_arr_eq(buf, "0123456789", 10);
  ops->close(s);
  close(peer);
}

Test(tcp, peek_leaves_the_data_and_zero_length_recv_completes_at_once) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  treq z;
  req_init(&z, HWSOCK_OP_RECV);
  submit_prepared(s, &z);
  expect_done(&z, 0);
  cr_assert_eq(z.len, 0);

  write_all(peer, "peek", 4);
  char p[8], q[8];
  treq rp, rq;
  req_init(&rp, HWSOCK_OP_RECV);
  rp.br.arg0 = HWSOCK_RECV_PEEK;
  set_iov(&rp, 1, p, sizeof(p));
  submit_prepared(s, &rp);
  RUN_UNTIL(rp.ncomplete);
  expect_done(&rp, 0);
  cr_assert_eq(rp.len, 4);
  req_init(&rq, HWSOCK_OP_RECV);
  set_iov(&rq, 1, q, sizeof(q));
  submit_prepared(s, &rq);
  RUN_UNTIL(rq.ncomplete);
  expect_done(&rq, 0);
  cr_assert_eq(rq.len, 4);
  cr_assert_arr_eq(p, "peek", 4);
  cr_assert_arr_eq(q, "peek", 4);
  ops->close(s);
  close(peer);
}

Test(tcp, connect_to_a_closed_port_is_refused) {
  /* take a free port, then free it again */
  uint16_t port;
  int lfd = plain_listener(AF_INET, 0, &port);
  close(lfd);
  void *s = open_sock(HWSOCK_SCHEME_TCP);
  treq c;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  RUN_UNTIL(c.ncomplete);
  expect_done(&c, HWSOCK_ECONNREFUSED);
  /* the failed socket is not connected */
  treq snd;
  char x = 'x';
  req_init(&snd, HWSOCK_OP_SEND);
  set_iov(&snd, 1, &x, (size_t)1);
  submit_prepared(s, &snd);
  expect_done(&snd, HWSOCK_ENOTCONN);
  ops->close(s);
}

Test(tcp, pipelined_connect_send_recv) {
  /* SEND and RECV submitted behind a CONNECT wait for it, in order */
  uint16_t port;
  int lfd = plain_listener(AF_INET, 0, &port);
  void *s = open_sock(HWSOCK_SCHEME_TCP);
  treq c, snd, rcv;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  req_init(&snd, HWSOCK_OP_SEND);
  set_iov(&snd, 1, "ping", (size_t)4);
  submit_prepared(s, &snd);
  char buf[8];
  req_init(&rcv, HWSOCK_OP_RECV);
  set_iov(&rcv, 1, buf, sizeof(buf));
  submit_prepared(s, &rcv);
  RUN_UNTIL(snd.ncomplete);
  expect_done(&c, 0);
  expect_done(&snd, 0);
  cr_assert_lt(c.order, snd.order);
  int peer = plain_accept(lfd);
  char got[4];
  read_exact(peer, got, 4);
  cr_assert_arr_eq(got, "ping", 4);
  write_all(peer, "pong", 4);
  RUN_UNTIL(rcv.ncomplete);
  expect_done(&rcv, 0);
  cr_assert_eq(rcv.len, 4);
  cr_assert_arr_eq(buf, "pong", 4);
  ops->close(s);
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
  void *s = open_sock(HWSOCK_SCHEME_TCP);
  treq c1, c2;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c1, HWSOCK_OP_CONNECT, &a);
  run_for_ms(100);
  cr_assert_eq(c1.ncomplete, 0, "the connect is in progress");
  submit_addr(s, &c2, HWSOCK_OP_CONNECT, &a);
  expect_done(&c2, HWSOCK_EALREADY);
  /* SO_ERROR while connecting does not steal the connect's outcome */
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_ERROR), 0);
  /* closing cancels the pending connect synchronously */
  ops->close(s);
  expect_done(&c1, HWSOCK_ECANCELED);
  for (int i = 0; i < 2; i++)
    close(fill[i]);
  close(lfd);

  /* connected: CONNECT is EISCONN, a SEND with a destination too */
  int peer;
  s = connected_pair(&peer, NULL);
  submit_addr(s, &c2, HWSOCK_OP_CONNECT, &a);
  expect_done(&c2, HWSOCK_EISCONN);
  treq snd;
  req_init(&snd, HWSOCK_OP_SEND);
  snd.addr = a;
  snd.br.addr = &snd.addr;
  set_iov(&snd, 1, "x", (size_t)1);
  submit_prepared(s, &snd);
  expect_done(&snd, HWSOCK_EISCONN);
  submit_op(s, &c2, HWSOCK_OP_LISTEN, 4, 0);
  expect_done(&c2, HWSOCK_EINVAL);
  ops->close(s);
  close(peer);
}

Test(tcp, shutdown_read_ends_a_pending_recv_with_eof) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  char buf[4];
  treq r, sh;
  req_init(&r, HWSOCK_OP_RECV);
  set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  run_for_ms(20);
  cr_assert_eq(r.ncomplete, 0);
  submit_op(s, &sh, HWSOCK_OP_SHUTDOWN, HWSOCK_SHUT_RD, 0);
  expect_done(&sh, 0);
  RUN_UNTIL(r.ncomplete);
  expect_done(&r, 0);
  cr_assert_eq(r.len, 0);
  cr_assert_eq(r.br.resp_flags, HWSOCK_RESP_F_EOF);
  /* the write side still works */
  treq snd;
  req_init(&snd, HWSOCK_OP_SEND);
  set_iov(&snd, 1, "ok", (size_t)2);
  submit_prepared(s, &snd);
  RUN_UNTIL(snd.ncomplete);
  expect_done(&snd, 0);
  char got[2];
  read_exact(peer, got, 2);
  cr_assert_arr_eq(got, "ok", 2);
  ops->close(s);
  close(peer);
}

Test(tcp, requests_on_an_unconnected_socket) {
  void *s = open_sock(HWSOCK_SCHEME_TCP);
  treq r;
  req_init(&r, HWSOCK_OP_SEND);
  set_iov(&r, 1, "x", (size_t)1);
  submit_prepared(s, &r);
  expect_done(&r, HWSOCK_ENOTCONN);
  char b[4];
  req_init(&r, HWSOCK_OP_RECV);
  set_iov(&r, 1, b, sizeof(b));
  submit_prepared(s, &r);
  expect_done(&r, HWSOCK_ENOTCONN);
  submit_op(s, &r, HWSOCK_OP_ACCEPT, 0, 0);
  expect_done(&r, HWSOCK_EINVAL);
  submit_op(s, &r, HWSOCK_OP_GETNAME, 1, 0);
  expect_done(&r, HWSOCK_ENOTCONN);
  submit_op(s, &r, HWSOCK_OP_GETNAME, 2, 0);
  expect_done(&r, HWSOCK_EINVAL);
  submit_op(s, &r, HWSOCK_OP_SHUTDOWN, 9, 0);
  expect_done(&r, HWSOCK_EINVAL);
  submit_op(s, &r, HWSOCK_OP_OPEN, 0, 0);
  expect_done(&r, HWSOCK_EOPNOTSUPP);
  /* a tcp socket takes no tcp6 address */
  hwsock_addr a6;
  memset(&a6, 0, sizeof(a6));
  a6.scheme = HWSOCK_SCHEME_TCP6;
  a6.family = HWSOCK_AF_INET6;
  a6.port = 9;
  a6.u.v6[15] = 1;
  submit_addr(s, &r, HWSOCK_OP_CONNECT, &a6);
  expect_done(&r, HWSOCK_EAFNOSUPPORT);
  req_init(&r, HWSOCK_OP_CONNECT);
  ops->submit(s, &r.br); /* no address */
  expect_done(&r, HWSOCK_EINVAL);
  ops->close(s);
}

Test(tcp, peer_close_gives_eof) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  char buf[8];
  treq r;
  req_init(&r, HWSOCK_OP_RECV);
  set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  run_for_ms(20);
  cr_assert_eq(r.ncomplete, 0);
  close(peer);
  RUN_UNTIL(r.ncomplete);
  expect_done(&r, 0);
  cr_assert_eq(r.len, 0);
  cr_assert_eq(r.br.resp_flags, HWSOCK_RESP_F_EOF);
  /* EOF stays: a later RECV sees it too */
  treq r2;
  req_init(&r2, HWSOCK_OP_RECV);
  set_iov(&r2, 1, buf, sizeof(buf));
  submit_prepared(s, &r2);
  RUN_UNTIL(r2.ncomplete);
  expect_done(&r2, 0);
  cr_assert_eq(r2.br.resp_flags, HWSOCK_RESP_F_EOF);
  ops->close(s);
}

Test(tcp, peer_reset_gives_econnreset) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  char buf[8];
  treq r;
  req_init(&r, HWSOCK_OP_RECV);
  set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  run_for_ms(20);
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  cr_assert_eq(setsockopt(peer, SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
  close(peer); /* linger 0: RST */
  RUN_UNTIL(r.ncomplete);
  expect_done(&r, HWSOCK_ECONNRESET);
  ops->close(s);
}

Test(tcp, half_close_keeps_the_other_direction) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  treq snd, shut, late;
  req_init(&snd, HWSOCK_OP_SEND);
  set_iov(&snd, 1, "last words", (size_t)10);
  submit_prepared(s, &snd);
  submit_op(s, &shut, HWSOCK_OP_SHUTDOWN, HWSOCK_SHUT_WR, 0);
  req_init(&late, HWSOCK_OP_SEND);
  set_iov(&late, 1, "too late", (size_t)8);
  submit_prepared(s, &late);
  RUN_UNTIL(late.ncomplete);
  expect_done(&snd, 0);
  expect_done(&shut, 0);
  expect_done(&late, HWSOCK_EPIPE);
  cr_assert(snd.order < shut.order && shut.order < late.order,
            "the write side completes in submission order");

  char got[10];
  read_exact(peer, got, 10);
  cr_assert_arr_eq(got, "last words", 10);
  expect_eof(peer);

  /* the peer can still talk back */
  write_all(peer, "reply", 5);
  char buf[8];
  treq r;
  req_init(&r, HWSOCK_OP_RECV);
  set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(s, &r);
  RUN_UNTIL(r.ncomplete);
  expect_done(&r, 0);
  cr_assert_eq(r.len, 5);
  cr_assert_arr_eq(buf, "reply", 5);
  ops->close(s);
  close(peer);
}

Test(tcp, listen_accept_reports_the_peer_address) {
  void *ls = open_sock(HWSOCK_SCHEME_TCP);
  treq r;
  hwsock_addr any = v4_addr(0);
  submit_addr(ls, &r, HWSOCK_OP_BIND, &any);
  expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_LISTEN, 100000, 0); /* clamped, not refused */
  expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_GETNAME, 0, 0);
  expect_done(&r, 0);
  cr_assert_eq(r.br.has_peer, 1);
  cr_assert_eq(r.br.peer.scheme, HWSOCK_SCHEME_TCP);
  uint16_t port = r.br.peer.port;
  cr_assert_neq(port, 0);

  treq acc;
  submit_op(ls, &acc, HWSOCK_OP_ACCEPT, 0, 0);
  run_for_ms(20);
  cr_assert_eq(acc.ncomplete, 0, "ACCEPT waits for a connection");

  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  RUN_UNTIL(acc.ncomplete);
  expect_done(&acc, 0);
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
  set_iov(&r, 1, buf, sizeof(buf));
  submit_prepared(as, &r);
  RUN_UNTIL(r.ncomplete);
  expect_done(&r, 0);
  cr_assert_eq(r.len, 2);
  cr_assert_arr_eq(buf, "hi", 2);
  submit_op(as, &r, HWSOCK_OP_GETNAME, 1, 0);
  expect_done(&r, 0);
  cr_assert_eq(r.br.peer.port, local_port(cfd));

  ops->close(as);
  ops->close(ls);
  close(cfd);
}

Test(tcp, tcp6_listen_connect_accept) {
  void *ls = open_sock(HWSOCK_SCHEME_TCP6);
  hwsock_addr a;
  memset(&a, 0, sizeof(a));
  a.scheme = HWSOCK_SCHEME_TCP6;
  a.family = HWSOCK_AF_INET6;
  a.u.v6[15] = 1; /* ::1 port 0 */
  treq r;
  submit_addr(ls, &r, HWSOCK_OP_BIND, &a);
  if (r.status == HWSOCK_EADDRNOTAVAIL) {
    ops->close(ls);
    cr_skip_test("no IPv6 loopback on this host");
  }
  expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_LISTEN, 4, 0);
  expect_done(&r, 0);
  submit_op(ls, &r, HWSOCK_OP_GETNAME, 0, 0);
  expect_done(&r, 0);
  a.port = r.br.peer.port;

  treq acc, con;
  submit_op(ls, &acc, HWSOCK_OP_ACCEPT, 0, 0);
  void *cs = open_sock(HWSOCK_SCHEME_TCP6);
  submit_addr(cs, &con, HWSOCK_OP_CONNECT, &a);
  RUN_UNTIL(acc.ncomplete && con.ncomplete);
  expect_done(&acc, 0);
  expect_done(&con, 0);
  cr_assert_eq(acc.br.peer.scheme, HWSOCK_SCHEME_TCP6);
  cr_assert_arr_eq(acc.br.peer.u.v6, a.u.v6, 16);
  submit_op(cs, &r, HWSOCK_OP_GETNAME, 0, 0);
  expect_done(&r, 0);
  cr_assert_eq(acc.br.peer.port, r.br.peer.port);
  ops->close(cs);
  ops->close(acc.br.accepted);
  ops->close(ls);
}

Test(tcp, getname_local_and_peer) {
  uint16_t port;
  int lfd = plain_listener(AF_INET, 0, &port);
  int peer;
  void *s = open_sock(HWSOCK_SCHEME_TCP);
  treq c, r;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  RUN_UNTIL(c.ncomplete);
  expect_done(&c, 0);
  peer = plain_accept(lfd);

  submit_op(s, &r, HWSOCK_OP_GETNAME, 1, 0);
  expect_done(&r, 0);
  cr_assert_eq(r.br.has_peer, 1);
  cr_assert_eq(r.br.peer.port, port);
  cr_assert_eq(r.br.peer.u.v4[0], 127);

  struct sockaddr_in pn;
  socklen_t pl = sizeof(pn);
  cr_assert_eq(getpeername(peer, (struct sockaddr *)&pn, &pl), 0);
  submit_op(s, &r, HWSOCK_OP_GETNAME, 0, 0);
  expect_done(&r, 0);
  cr_assert_eq(r.br.peer.port, ntohs(pn.sin_port),
               "our local port is what the peer sees");
  cr_assert_eq(r.br.peer.scheme, HWSOCK_SCHEME_TCP);
  ops->close(s);
  close(peer);
  close(lfd);
}

Test(tcp, sockopt_allow_list_round_trips) {
  void *s = open_sock(HWSOCK_SCHEME_TCP);
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
  treq r;
  req_init(&r, HWSOCK_OP_SETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_SOCKET;
  r.br.arg1 = HWSOCK_SO_LINGER;
  set_iov(&r, 2, (void *)lv, (size_t)3, (char *)lv + 3, (size_t)5);
  submit_prepared(s, &r);
  expect_done(&r, 0);
  uint8_t out[12];
  memset(out, 0xee, sizeof(out));
  req_init(&r, HWSOCK_OP_GETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_SOCKET;
  r.br.arg1 = HWSOCK_SO_LINGER;
  set_iov(&r, 1, (void *)out, sizeof(out));
  submit_prepared(s, &r);
  expect_done(&r, 0);
  cr_assert_eq(r.len, 8);
  cr_assert_eq(hwsock_le32_get((hwsock_le32 *)out), 1);
  cr_assert_eq(hwsock_le32_get((hwsock_le32 *)(out + 4)), 7);
  cr_assert_eq(out[8], 0xee, "nothing written past the value");
  ops->close(s);
}

Test(tcp, sockopt_refusals) {
  void *s = open_sock(HWSOCK_SCHEME_TCP);
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
    treq r;
    req_init(&r, HWSOCK_OP_SETSOCKOPT);
    r.br.arg0 = bad[i][0];
    r.br.arg1 = bad[i][1];
    set_iov(&r, 1, (void *)&v, sizeof(v));
    submit_prepared(s, &r);
    expect_done(&r, HWSOCK_ENOPROTOOPT);
    if (bad[i][1] != HWSOCK_SO_ERROR) {
      req_init(&r, HWSOCK_OP_GETSOCKOPT);
      r.br.arg0 = bad[i][0];
      r.br.arg1 = bad[i][1];
      set_iov(&r, 1, (void *)&v, sizeof(v));
      submit_prepared(s, &r);
      expect_done(&r, HWSOCK_ENOPROTOOPT);
    }
  }
  /* value too short, for set and for get */
  treq r;
  req_init(&r, HWSOCK_OP_SETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_TCP;
  r.br.arg1 = HWSOCK_TCP_NODELAY;
  set_iov(&r, 1, (void *)&v, (size_t)2);
  submit_prepared(s, &r);
  expect_done(&r, HWSOCK_EINVAL);
  req_init(&r, HWSOCK_OP_SETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_SOCKET;
  r.br.arg1 = HWSOCK_SO_LINGER;
  set_iov(&r, 1, (void *)&v, sizeof(v)); /* linger needs 8 */
  submit_prepared(s, &r);
  expect_done(&r, HWSOCK_EINVAL);
  req_init(&r, HWSOCK_OP_GETSOCKOPT);
  r.br.arg0 = HWSOCK_SOL_TCP;
  r.br.arg1 = HWSOCK_TCP_NODELAY;
  set_iov(&r, 1, (void *)&v, (size_t)3);
  submit_prepared(s, &r);
  expect_done(&r, HWSOCK_EINVAL);
  ops->close(s);

  /* the v6 option is there on a tcp6 socket */
  s = open_sock(HWSOCK_SCHEME_TCP6);
  set_int_opt(s, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 1);
  cr_assert_eq(get_int_opt(s, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY), 1);
  ops->close(s);
}

Test(tcp, close_cancels_pending_requests_synchronously) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  treq r1, r2;
  char b1[4], b2[4];
  req_init(&r1, HWSOCK_OP_RECV);
  set_iov(&r1, 1, b1, sizeof(b1));
  req_init(&r2, HWSOCK_OP_RECV);
  set_iov(&r2, 1, b2, sizeof(b2));
  submit_prepared(s, &r1);
  submit_prepared(s, &r2);
  run_for_ms(20);
  cr_assert_eq(r1.ncomplete + r2.ncomplete, 0);
  ops->close(s);
  expect_done(&r1, HWSOCK_ECANCELED);
  expect_done(&r2, HWSOCK_ECANCELED);
  cr_assert_lt(r1.order, r2.order);
  /* the host socket is gone at once: the peer sees EOF */
  expect_eof(peer);
  /* and nothing calls back later */
  write_all(peer, "x", 1);
  run_for_ms(50);
  cr_assert_eq(r1.ncomplete, 1);
  cr_assert_eq(r2.ncomplete, 1);
  close(peer);
}

/* A completion that submits the next RECV from inside complete(): the
 * backend must cope with being re-entered. */
static void *chain_sock;
static treq chain_req[3];
static char chain_buf[3][2];
static int chain_n;

static void chain_complete(hwsock_breq *req, int status, size_t len) {
  on_complete(req, status, len);
  if (chain_n < 3) {
    treq *r = &chain_req[chain_n];
    req_init(r, HWSOCK_OP_RECV);
    set_iov(r, 1, chain_buf[chain_n], (size_t)2);
    chain_n++;
    ops->submit(chain_sock, &r->br);
  }
}

Test(tcp, submit_from_inside_a_completion) {
  int peer;
  void *s = connected_pair(&peer, NULL);
  chain_sock = s;
  chain_n = 0;
  host.complete = chain_complete;
  write_all(peer, "aabbcc", 6);
  treq first;
  char fb[2];
  req_init(&first, HWSOCK_OP_RECV);
  set_iov(&first, 1, fb, (size_t)2);
  submit_prepared(s, &first);
  RUN_UNTIL(chain_req[1].ncomplete);
  expect_done(&first, 0);
  expect_done(&chain_req[0], 0);
  expect_done(&chain_req[1], 0);
  cr_assert_arr_eq(fb, "aa", 2);
  cr_assert_arr_eq(chain_buf[0], "bb", 2);
  cr_assert_arr_eq(chain_buf[1], "cc", 2);
  cr_assert(first.order < chain_req[0].order &&
            chain_req[0].order < chain_req[1].order);
  run_for_ms(20);
  cr_assert_eq(chain_req[2].ncomplete, 0, "the third waits for data");
  host.complete = on_complete;
  ops->close(s);
  expect_done(&chain_req[2], HWSOCK_ECANCELED);
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
  void *s = open_sock(HWSOCK_SCHEME_TCP);
  /* small buffers on both sides: 8 MiB cannot hide in the kernel */
  set_int_opt(s, HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, 64 * 1024);
  treq c;
  hwsock_addr a = v4_addr(port);
  submit_addr(s, &c, HWSOCK_OP_CONNECT, &a);
  RUN_UNTIL(c.ncomplete);
  expect_done(&c, 0);
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
  treq big, small;
  req_init(&big, HWSOCK_OP_SEND);
  set_iov(&big, 4, data, (size_t)1000003, data + 1000003, (size_t)0,
          data + 1000003, (size_t)(3u << 20),
          data + 1000003 + (3u << 20), (size_t)(BIG - 1000003 - (3u << 20)));
  submit_prepared(s, &big);
  req_init(&small, HWSOCK_OP_SEND);
  set_iov(&small, 1, tail, sizeof(tail));
  submit_prepared(s, &small);
  run_for_ms(200);
  cr_assert_eq(big.ncomplete, 0, "no reader, no completion");

  slow_reader sr = {.fd = peer, .buf = malloc(64 * 1024)};
  uv_timer_t rt;
  uv_timer_init(&loop, &rt);
  rt.data = &sr;
  uv_timer_start(&rt, slow_read_tick, 1, 1);
  RUN_UNTIL(big.ncomplete);
  size_t read_at_completion = sr.got;
  expect_done(&big, 0);
  cr_assert_eq(big.len, BIG);
  cr_assert_geq(read_at_completion + (2u << 20), BIG,
                "completed only after the reader took most bytes (%zu)",
                read_at_completion);
  RUN_UNTIL(small.ncomplete);
  expect_done(&small, 0);
  cr_assert_lt(big.order, small.order);
  RUN_UNTIL(sr.got >= BIG + 16);
  cr_assert_eq(sr.got, BIG + 16);
  cr_assert_eq(sr.bad, 0, "byte %zu differs", sr.bad - 1);
  uv_close((uv_handle_t *)&rt, on_handle_closed);
  RUN_UNTIL(rt.data == NULL); /* rt lives on this stack frame */
  ops->close(s);
  close(peer);
  free(sr.buf);
  free(data);
}

Test(tcp, instance_options_are_refused) {
  hwsock_backend_host h = host;
  h.options = "nodelay";
  void *i2 = NULL;
  cr_assert_eq(ops->create(&h, &i2), HWSOCK_EBADCONFIG);
  hwsock_bopen bo = {.size = sizeof(bo), .scheme = HWSOCK_SCHEME_UDP};
  void *s = NULL;
  cr_assert_eq(ops->open(inst, &bo, &s), HWSOCK_EPROTONOSUPPORT);
}
