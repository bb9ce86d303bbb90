/* The header-only backend helpers (hwsock/backend_util.h), used as a plugin
 * would: the queue, the host table checks, logging, iovec copies, and the
 * socket helpers against a real loopback UDP socket. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hwsock/backend_util.h"
#include "hwsock/backend_uv.h"
#include "support/loopback_sock.h"

/* ---- the queue ------------------------------------------------------------ */

Test(backend_util, queue_is_fifo_and_pop_unlinks) {
  hwsock_bq q = {NULL, NULL};
  hwsock_breq a, b, c;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  memset(&c, 0, sizeof(c));
  cr_assert_null(hwsock_bq_pop(&q), "empty queue pops NULL");
  hwsock_bq_push(&q, &a);
  hwsock_bq_push(&q, &b);
  hwsock_bq_push(&q, &c);
  cr_assert_eq(q.head, &a);
  cr_assert_eq(q.tail, &c);
  cr_assert_eq(hwsock_bq_pop(&q), &a);
  cr_assert_null(a.backend_priv[0], "a popped request is unlinked");
  cr_assert_eq(hwsock_bq_pop(&q), &b);
  cr_assert_eq(hwsock_bq_pop(&q), &c);
  cr_assert_null(q.head);
  cr_assert_null(q.tail);
  cr_assert_null(hwsock_bq_pop(&q));
  hwsock_bq_push(&q, &b); /* usable again after running empty */
  cr_assert_eq(q.head, &b);
  cr_assert_eq(q.tail, &b);
}

Test(backend_util, remove_unlinks_head_middle_and_tail) {
  hwsock_bq q = {NULL, NULL};
  hwsock_breq r[4], other;
  memset(r, 0, sizeof(r));
  memset(&other, 0, sizeof(other));
  for (int i = 0; i < 4; i++)
    hwsock_bq_push(&q, &r[i]);
  cr_assert_eq(hwsock_bq_remove(&q, &other), 0, "not queued: not found");
  cr_assert_eq(hwsock_bq_remove(&q, &r[1]), 1); /* middle */
  cr_assert_null(r[1].backend_priv[0]);
  cr_assert_eq(hwsock_bq_remove(&q, &r[3]), 1); /* tail */
  cr_assert_eq(q.tail, &r[2], "the tail moves back");
  cr_assert_eq(hwsock_bq_remove(&q, &r[0]), 1); /* head */
  cr_assert_eq(q.head, &r[2]);
  cr_assert_eq(hwsock_bq_remove(&q, &r[1]), 0, "already removed");
  hwsock_bq_push(&q, &r[3]); /* the tail is right: a push lands after r[2] */
  cr_assert_eq(hwsock_bq_pop(&q), &r[2]);
  cr_assert_eq(hwsock_bq_pop(&q), &r[3]);
  cr_assert_eq(hwsock_bq_remove(&q, &r[3]), 0, "empty queue");
  cr_assert_null(q.head);
  cr_assert_null(q.tail);
}

/* ---- the host table --------------------------------------------------------- */

static char logged[HWSOCK_BACKEND_LOG_MAX + 64];
static int logged_level = -1;

static void on_log(const hwsock_backend_host *host, int level,
                   const char *msg) {
  (void)host;
  logged_level = level;
  snprintf(logged, sizeof(logged), "%s", msg);
}

static void on_complete(hwsock_breq *req, int status, size_t len) {
  (void)req;
  (void)status;
  (void)len;
}

static hwsock_backend_host full_host(void) {
  static int loop_stand_in;
  hwsock_backend_host h;
  memset(&h, 0, sizeof(h));
  h.size = sizeof(h);
  h.loop = &loop_stand_in;
  h.options = "";
  h.complete = on_complete;
  h.log = on_log;
  return h;
}

Test(backend_util, host_ok_checks_size_complete_and_loop) {
  hwsock_backend_host h = full_host();
  cr_assert_eq(hwsock_backend_host_ok(&h, 1), 1);
  cr_assert_eq(hwsock_backend_host_ok(NULL, 0), 0);
  h.size = (uint32_t)offsetof(hwsock_backend_host, host_data);
  cr_assert_eq(hwsock_backend_host_ok(&h, 0), 0, "a struct older than v1");
  h = full_host();
  h.complete = NULL;
  cr_assert_eq(hwsock_backend_host_ok(&h, 0), 0);
  h = full_host();
  h.loop = NULL;
  cr_assert_eq(hwsock_backend_host_ok(&h, 1), 0, "a loop is needed");
  cr_assert_eq(hwsock_backend_host_ok(&h, 0), 1, "no loop is needed");
  h.log = NULL;
  cr_assert_eq(hwsock_backend_host_ok(&h, 0), 1, "log is optional");
}

Test(backend_util, logf_formats_cuts_and_tolerates_no_log) {
  hwsock_backend_host h = full_host();
  hwsock_backend_logf(&h, HWSOCK_LOG_WARN, "%u sockets, %s", 3u, "open");
  cr_assert_eq(logged_level, HWSOCK_LOG_WARN);
  cr_assert_str_eq(logged, "3 sockets, open");

  char longer[HWSOCK_BACKEND_LOG_MAX + 40];
  memset(longer, 'x', sizeof(longer) - 1);
  longer[sizeof(longer) - 1] = '\0';
  hwsock_backend_logf(&h, HWSOCK_LOG_INFO, "%s", longer);
  cr_assert_eq(strlen(logged), HWSOCK_BACKEND_LOG_MAX - 1, "cut, terminated");

  h.log = NULL;
  logged_level = -1;
  hwsock_backend_logf(&h, HWSOCK_LOG_ERROR, "nobody hears %d", 1);
  cr_assert_eq(logged_level, -1);
}

Test(backend_util, no_options_accepts_empty_and_refuses_the_rest) {
  hwsock_backend_host h = full_host();
  cr_assert_eq(hwsock_backend_no_options(&h, "tcp"), 0);
  h.options = NULL;
  cr_assert_eq(hwsock_backend_no_options(&h, "tcp"), 0);
  logged_level = -1;
  h.options = "nodelay=1";
  cr_assert_eq(hwsock_backend_no_options(&h, "tcp"), HWSOCK_EBADCONFIG);
  cr_assert_eq(logged_level, HWSOCK_LOG_ERROR);
  cr_assert_str_eq(logged, "unknown options 'nodelay=1' (tcp has none)");
}

Test(backend_util, instance_new_checks_host_and_options_then_zeroes) {
  hwsock_backend_host h = full_host();
  void *inst = (void *)&h;
  h.loop = NULL;
  cr_assert_eq(hwsock_backend_instance_new(&h, "tcp", 1, 64, &inst),
               HWSOCK_EINVAL, "no loop");
  cr_assert_eq(inst, (void *)&h, "nothing written on failure");
  h = full_host();
  h.options = "x=1";
  cr_assert_eq(hwsock_backend_instance_new(&h, "tcp", 1, 64, &inst),
               HWSOCK_EBADCONFIG);
  h = full_host();
  cr_assert_eq(hwsock_backend_instance_new(&h, "tcp", 1, 64, &inst), 0);
  for (int i = 0; i < 64; i++)
    cr_assert_eq(((unsigned char *)inst)[i], 0);
  free(inst);
}

Test(backend_util, check_closed_warns_only_about_open_sockets) {
  hwsock_backend_host h = full_host();
  logged_level = -1;
  hwsock_backend_check_closed(&h, 0);
  cr_assert_eq(logged_level, -1);
  hwsock_backend_check_closed(&h, 3);
  cr_assert_eq(logged_level, HWSOCK_LOG_WARN);
  cr_assert_str_eq(logged, "destroyed with 3 sockets still open");
}

static int closed_cbs;
static void on_poll_closed(uv_handle_t *h) {
  (void)h;
  closed_cbs++;
}

Test(backend_util, uv_close_poll_fd_closes_the_fd_now_and_the_handle_later) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  cr_assert_geq(fd, 0);
  uv_poll_t poll;
  cr_assert_eq(uv_poll_init_socket(&loop, &poll, fd), 0);
  cr_assert_eq(uv_poll_start(&poll, UV_READABLE, NULL), 0);
  int kept = fd;
  closed_cbs = 0;
  hwsock_uv_close_poll_fd(&poll, &fd, on_poll_closed);
  cr_assert_eq(fd, -1);
  cr_assert_eq(fcntl(kept, F_GETFD), -1, "the fd is closed at once");
  cr_assert_eq(errno, EBADF);
  cr_assert_eq(closed_cbs, 0, "the handle's callback comes on the loop");
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(closed_cbs, 1);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- requests --------------------------------------------------------------- */

Test(backend_util, reset_clears_results_and_priv_only) {
  hwsock_breq r;
  memset(&r, 0xa5, sizeof(r));
  r.opcode = HWSOCK_OP_RECV;
  r.arg0 = 7;
  hwsock_breq_reset(&r);
  cr_assert_eq(r.has_peer, 0);
  cr_assert_eq(r.resp_flags, 0);
  cr_assert_eq(r.resp_val, 0);
  cr_assert_null(r.accepted);
  for (int i = 0; i < 4; i++)
    cr_assert_null(r.backend_priv[i]);
  cr_assert_eq(r.opcode, HWSOCK_OP_RECV, "the request itself is kept");
  cr_assert_eq(r.arg0, 7);
}

Test(backend_util, scatter_and_gather_walk_the_iovecs) {
  char a[3], b[1], c[5];
  struct iovec v[3] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};
  hwsock_breq r;
  memset(&r, 0, sizeof(r));
  r.iov = v;
  r.iovcnt = 3;
  r.iov_len = 9;
  memset(c, '.', sizeof(c));
  cr_assert_eq(hwsock_breq_scatter(&r, "0123456", 6), 6);
  cr_assert_arr_eq(a, "012", 3);
  cr_assert_arr_eq(b, "3", 1);
  cr_assert_arr_eq(c, "45...", 5, "only len bytes are written");
  cr_assert_eq(hwsock_breq_scatter(&r, "abcdefghijkl", 12), 9,
               "the buffers bound the copy");
  char out[9];
  cr_assert_eq(hwsock_breq_gather(&r, out), 9);
  cr_assert_arr_eq(out, "abcdefghi", 9);
}

/* ---- host sockets ------------------------------------------------------------- */

Test(backend_util, sockaddr_converts_and_checks_the_family) {
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  hwsock_addr a = loopback_addr(HWSOCK_SCHEME_UDP, 5353);
  cr_assert_eq(hwsock_backend_sockaddr(&a, AF_INET, &ss, &sl), 0);
  cr_assert_eq(sl, sizeof(struct sockaddr_in));
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
  cr_assert_eq(ntohs(sin->sin_port), 5353);
  cr_assert_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
  cr_assert_eq(hwsock_backend_sockaddr(&a, AF_INET6, &ss, &sl),
               HWSOCK_EAFNOSUPPORT);
  cr_assert_eq(hwsock_backend_sockaddr(NULL, AF_INET, &ss, &sl),
               HWSOCK_EINVAL);
}

/* A UDP socket bound to 127.0.0.1, connected to `peer` when peer != 0. */
static int udp_sock(uint16_t peer, uint16_t *port) {
  int fd = loopback_socket(AF_INET, SOCK_DGRAM, port);
  if (peer != 0) {
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(peer),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  }
  return fd;
}

Test(backend_util, getname_answers_from_the_host_socket) {
  uint16_t p1, p2;
  int fd1 = udp_sock(0, &p1);
  int fd2 = udp_sock(p1, &p2);
  hwsock_breq r;
  memset(&r, 0, sizeof(r));
  r.arg0 = 0;
  cr_assert_eq(hwsock_backend_getname(fd2, HWSOCK_SCHEME_UDP, &r), 0);
  cr_assert_eq(r.has_peer, 1);
  cr_assert_eq(r.peer.scheme, HWSOCK_SCHEME_UDP);
  cr_assert_eq(r.peer.port, p2, "local name");
  r.arg0 = 1;
  cr_assert_eq(hwsock_backend_getname(fd2, HWSOCK_SCHEME_UDP, &r), 0);
  cr_assert_eq(r.peer.port, p1, "peer name");
  r.has_peer = 0;
  cr_assert_eq(hwsock_backend_getname(fd1, HWSOCK_SCHEME_UDP, &r),
               HWSOCK_ENOTCONN, "an unconnected socket has no peer");
  r.arg0 = 2;
  cr_assert_eq(hwsock_backend_getname(fd2, HWSOCK_SCHEME_UDP, &r),
               HWSOCK_EINVAL);
  close(fd1);
  close(fd2);
}

Test(backend_util, info_from_fd_reports_fd_and_names) {
  uint16_t p1, p2;
  int fd1 = udp_sock(0, &p1);
  int fd2 = udp_sock(p1, &p2);
  hwsock_bsock_info in;
  memset(&in, 0, sizeof(in));
  cr_assert_eq(hwsock_bsock_info_from_fd(fd2, HWSOCK_SCHEME_UDP, 1, &in), 0);
  cr_assert_eq(in.fd, fd2);
  cr_assert_eq(in.has_local, 1);
  cr_assert_eq(in.local.port, p2);
  cr_assert_eq(in.has_peer, 1);
  cr_assert_eq(in.peer.port, p1);

  memset(&in, 0, sizeof(in));
  cr_assert_eq(hwsock_bsock_info_from_fd(fd2, HWSOCK_SCHEME_UDP, 0, &in), 0);
  cr_assert_eq(in.has_local, 1);
  cr_assert_eq(in.has_peer, 0, "with_peer 0: no getpeername");

  memset(&in, 0, sizeof(in));
  cr_assert_eq(hwsock_bsock_info_from_fd(fd1, HWSOCK_SCHEME_UDP, 1, &in), 0);
  cr_assert_eq(in.has_peer, 0, "not connected: no peer");

  memset(&in, 0, sizeof(in));
  cr_assert_eq(hwsock_bsock_info_from_fd(-1, HWSOCK_SCHEME_UDP, 1, &in), 0);
  cr_assert_eq(in.fd, -1);
  cr_assert_eq(in.has_local, 0);
  close(fd1);
  close(fd2);
}

/* ---- iovecs, rate-limited logs, option strings --------------------------------- */

Test(backend_util, iov_slice_starts_at_off_and_stops_at_maxlen_or_cap) {
  char a[3], b[1], c[5];
  struct iovec v[3] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};
  struct iovec d[3];
  unsigned dn = 99;
  cr_assert_eq(hwsock_iov_slice(v, 3, 2, 100, d, 3, &dn), 7);
  cr_assert_eq(dn, 3);
  cr_assert_eq(d[0].iov_base, a + 2);
  cr_assert_eq(d[0].iov_len, 1);
  cr_assert_eq(d[1].iov_base, b);
  cr_assert_eq(d[2].iov_base, c);
  cr_assert_eq(d[2].iov_len, 5);
  cr_assert_eq(hwsock_iov_slice(v, 3, 3, 3, d, 3, &dn), 3, "maxlen cuts");
  cr_assert_eq(dn, 2);
  cr_assert_eq(d[0].iov_base, b, "an iovec consumed whole is skipped");
  cr_assert_eq(d[1].iov_base, c);
  cr_assert_eq(d[1].iov_len, 2);
  cr_assert_eq(hwsock_iov_slice(v, 3, 0, 100, d, 2, &dn), 4, "cap cuts");
  cr_assert_eq(dn, 2);
  cr_assert_eq(hwsock_iov_slice(v, 3, 9, 100, d, 3, &dn), 0, "past the end");
  cr_assert_eq(dn, 0);
}

Test(backend_util, ratelog_passes_one_line_per_interval_and_counts_the_rest) {
  hwsock_ratelog r;
  memset(&r, 0, sizeof(r));
  unsigned held = 99;
  cr_assert_eq(hwsock_ratelog_pass(&r, 5000, 1000, &held), 1, "the first");
  cr_assert_eq(held, 0);
  held = 99;
  cr_assert_eq(hwsock_ratelog_pass(&r, 5001, 1000, &held), 0);
  cr_assert_eq(hwsock_ratelog_pass(&r, 5999, 1000, &held), 0);
  cr_assert_eq(held, 99, "untouched while held back");
  cr_assert_eq(hwsock_ratelog_pass(&r, 6000, 1000, &held), 1);
  cr_assert_eq(held, 2, "the two held back");
  cr_assert_eq(hwsock_ratelog_pass(&r, 6500, 1000, &held), 0);
  cr_assert_eq(hwsock_ratelog_pass(&r, 9000, 1000, &held), 1);
  cr_assert_eq(held, 1, "the count restarts after each line");
}

Test(backend_util, hex_parses_exact_digits_only) {
  uint8_t b[3];
  cr_assert_eq(hwsock_hex_digit('0'), 0);
  cr_assert_eq(hwsock_hex_digit('a'), 10);
  cr_assert_eq(hwsock_hex_digit('F'), 15);
  cr_assert_eq(hwsock_hex_digit('g'), -1);
  cr_assert_eq(hwsock_hex_digit('/'), -1);
  cr_assert_eq(hwsock_parse_hex("0aBcff", 6, b, 3), 0);
  cr_assert_eq(b[0], 0x0a);
  cr_assert_eq(b[1], 0xbc);
  cr_assert_eq(b[2], 0xff);
  cr_assert_eq(hwsock_parse_hex("0aBcf", 5, b, 3), -1, "too short");
  cr_assert_eq(hwsock_parse_hex("0aBcff0", 7, b, 3), -1, "too long");
  cr_assert_eq(hwsock_parse_hex("0aBcfx", 6, b, 3), -1, "not hex");
  cr_assert_eq(hwsock_parse_hex("0aBcff", 6, b, 3), 0, "len, not NUL");
}

Test(backend_util, port_is_decimal_1_to_65535) {
  uint16_t p = 7;
  cr_assert_eq(hwsock_parse_port("65535", 5, &p), 0);
  cr_assert_eq(p, 65535);
  cr_assert_eq(hwsock_parse_port("213x", 3, &p), 0, "only len bytes");
  cr_assert_eq(p, 213);
  cr_assert_eq(hwsock_parse_port("0", 1, &p), -1);
  cr_assert_eq(hwsock_parse_port("65536", 5, &p), -1);
  cr_assert_eq(hwsock_parse_port("000080", 6, &p), -1, "at most 5 digits");
  cr_assert_eq(hwsock_parse_port("+80", 3, &p), -1);
  cr_assert_eq(hwsock_parse_port("", 0, &p), -1);
  cr_assert_eq(p, 213, "untouched on failure");
}

Test(backend_util, ip_and_endpoint_parse_literals_of_both_families) {
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  cr_assert_eq(hwsock_parse_ip("127.0.0.1", 9, 213, &ss, &sl), AF_INET);
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
  cr_assert_eq(sl, sizeof(*sin));
  cr_assert_eq(ntohs(sin->sin_port), 213);
  cr_assert_eq(ntohl(sin->sin_addr.s_addr), 0x7f000001);
  cr_assert_eq(hwsock_parse_ip("[::1]", 5, 9, &ss, &sl), AF_INET6);
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
  cr_assert_eq(sl, sizeof(*sin6));
  cr_assert_eq(ntohs(sin6->sin6_port), 9);
  cr_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
  cr_assert_eq(hwsock_parse_ip("::1", 3, 9, &ss, &sl), AF_INET6);
  cr_assert_eq(hwsock_parse_ip("localhost", 9, 9, &ss, &sl), -1, "no names");
  cr_assert_eq(hwsock_parse_ip("[]", 2, 9, &ss, &sl), -1);
  cr_assert_eq(hwsock_parse_ip("127.0.0.1 ", 10, 9, &ss, &sl), -1);

  cr_assert_eq(hwsock_parse_endpoint("127.0.0.2:6000", 14, &ss, &sl),
               AF_INET);
  cr_assert_eq(ntohs(sin->sin_port), 6000);
  cr_assert_eq(ntohl(sin->sin_addr.s_addr), 0x7f000002);
  cr_assert_eq(hwsock_parse_endpoint("[::1]:7000", 10, &ss, &sl), AF_INET6);
  cr_assert_eq(ntohs(sin6->sin6_port), 7000);
  cr_assert_eq(hwsock_parse_endpoint("::1:7000", 8, &ss, &sl), -1,
               "a bare IPv6 address is refused");
  cr_assert_eq(hwsock_parse_endpoint("127.0.0.1", 9, &ss, &sl), -1,
               "no port");
  cr_assert_eq(hwsock_parse_endpoint("127.0.0.1:", 10, &ss, &sl), -1);
  cr_assert_eq(hwsock_parse_endpoint(":80", 3, &ss, &sl), -1, "no address");
  cr_assert_eq(hwsock_parse_endpoint("127.0.0.1:0", 11, &ss, &sl), -1);
}
