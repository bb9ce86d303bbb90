/* End to end: destinations are decided as the host kernel will use them
 * (docs/POLICY.md, "Destinations as the kernel uses them"). A guest that
 * writes 0.0.0.0, ::, ::ffff:0.0.0.0, a v4-mapped or a v4-compatible address
 * must not reach a real loopback socket the policy denies: each test counts
 * what arrived at such a socket (nothing may) and shows, on an allowed port,
 * that the same spelling still works where the policy allows it. Policies
 * are written per test, since they name the ports the kernel picked. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inproc.h"
#include "support/loopback_sock.h"

static inproc ip;
static int started;

static void start(const char *yaml) {
  inproc_opts o = {.policy_yaml = yaml, .backends = {"udp", "tcp", "deny"}};
  cr_assert_eq(inproc_start(&ip, &o), 0);
  started = 1;
}

static void teardown(void) {
  if (started)
    inproc_stop(&ip);
  started = 0;
}

TestSuite(e2e_dest, .fini = teardown, .timeout = 120);

/* A non-blocking listening socket on 127.0.0.1 or ::1. */
static int listener(int family, uint16_t *port) {
  int l = loopback_socket(family, SOCK_STREAM, port);
  cr_assert_eq(listen(l, 8), 0);
  cr_assert_eq(fcntl(l, F_SETFL, O_NONBLOCK), 0);
  return l;
}

/* Connections waiting at a listener: every guest call has completed, so a
 * loopback connection it made is already in the accept queue. */
static int pending_connections(int l) {
  int n = 0, c;
  while ((c = accept(l, NULL, NULL)) >= 0) {
    close(c);
    n++;
  }
  cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "accept: %s",
            strerror(errno));
  return n;
}

/* Datagrams waiting at a host socket (a loopback sendto has delivered by
 * the time it returns). */
static int pending_datagrams(int h) {
  char buf[64];
  int n = 0;
  while (recv(h, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
    n++;
  cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s",
            strerror(errno));
  return n;
}

/* What an allowed call delivered: at least `want` arrivals, collected for
 * up to 10 s (the host may still be handing them over), then whatever else
 * is waiting. A bound on the wait, not a timing assertion. */
static int arrivals(int fd, int (*pending)(int), int want) {
  int n = pending(fd);
  for (int i = 0; i < 100 && n < want; i++) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    (void)poll(&p, 1, 100);
    n += pending(fd);
  }
  return n;
}

static int guest_connect(unsigned family, const char *fmt, uint16_t port) {
  char uri[96];
  snprintf(uri, sizeof(uri), fmt, port);
  int s = hwsock_guest_socket(ip.guest, family, HWSOCK_SOCK_STREAM);
  cr_assert_geq(s, 0, "socket: %s", hwsock_strerror(s));
  int rc = hwsock_guest_connect(ip.guest, s, uri);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  return rc;
}

static ssize_t guest_sendto(int s, const char *fmt, uint16_t port) {
  char uri[96];
  snprintf(uri, sizeof(uri), fmt, port);
  return hwsock_guest_sendto(ip.guest, s, "x", 1, 0, uri);
}

/* POLICY.md's "offload everything except metadata and the host itself",
 * narrowed to the denied test ports so that the rest of loopback can show
 * that an allowed spelling still works. */
static void offload_all_but_host(uint16_t denied4, uint16_t denied6) {
  static char yaml[512];
  snprintf(yaml, sizeof(yaml),
           "version: 1\n"
           "default: offload\n"
           "rules:\n"
           "  - action: deny\n"
           "    to: [169.254.0.0/16, \"fe80::/10\", 127.0.0.0/8, \"::1\"]\n"
           "    ports: [%u, %u]\n"
           "    error: ENETUNREACH\n"
           "    reason: not reachable from guests\n",
           denied4, denied6);
  start(yaml);
}

Test(e2e_dest, tcp_unspecified_destinations_reach_no_denied_port) {
  uint16_t d4, d6, a4;
  int l4 = listener(AF_INET, &d4), l6 = listener(AF_INET6, &d6);
  int la = listener(AF_INET, &a4);
  offload_all_but_host(d4, d6);

  int rc1 = guest_connect(HWSOCK_AF_INET, "tcp://0.0.0.0:%u", d4);
  int rc2 = guest_connect(HWSOCK_AF_INET6, "tcp6://[::]:%u", d6);
  int rc3 = guest_connect(HWSOCK_AF_INET6, "tcp6://[::ffff:0.0.0.0]:%u", d4);
  cr_expect_eq(pending_connections(l4), 0, "the denied 127.0.0.1 port was "
                                           "reached");
  cr_expect_eq(pending_connections(l6), 0, "the denied ::1 port was reached");
  cr_assert_eq(rc1, HWSOCK_ENETUNREACH, "0.0.0.0: %d", rc1);
  cr_assert_eq(rc2, HWSOCK_ENETUNREACH, ":: %d", rc2);
  cr_assert_eq(rc3, HWSOCK_ENETUNREACH, "::ffff:0.0.0.0: %d", rc3);

  /* the same spellings are loopback where loopback is allowed */
  cr_assert_eq(guest_connect(HWSOCK_AF_INET, "tcp://0.0.0.0:%u", a4), 0);
  cr_assert_eq(guest_connect(HWSOCK_AF_INET6, "tcp6://[::ffff:0.0.0.0]:%u",
                             a4),
               0);
  cr_assert_eq(arrivals(la, pending_connections, 2), 2);
  close(l4);
  close(l6);
  close(la);
}

Test(e2e_dest, udp_sendto_unspecified_is_not_delivered_to_a_denied_port) {
  uint16_t d4, d6, a4;
  int h4 = loopback_socket(AF_INET, SOCK_DGRAM, &d4);
  int h6 = loopback_socket(AF_INET6, SOCK_DGRAM, &d6);
  int ha = loopback_socket(AF_INET, SOCK_DGRAM, &a4);
  offload_all_but_host(d4, d6);

  /* first call of a socket: the decision itself */
  int s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
  cr_assert_geq(s, 0);
  cr_expect_eq(guest_sendto(s, "udp://0.0.0.0:%u", d4), HWSOCK_ENETUNREACH);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET6, HWSOCK_SOCK_DGRAM);
  cr_assert_geq(s, 0);
  cr_expect_eq(guest_sendto(s, "udp6://[::]:%u", d6), HWSOCK_ENETUNREACH);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);

  /* an offloaded socket: every later destination is checked the same way */
  s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
  cr_assert_geq(s, 0);
  cr_expect_eq(guest_sendto(s, "udp://0.0.0.0:%u", a4), 1);
  cr_expect_eq(guest_sendto(s, "udp://0.0.0.0:%u", d4), HWSOCK_ENETUNREACH);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET6, HWSOCK_SOCK_DGRAM);
  cr_assert_geq(s, 0);
  cr_expect_eq(guest_sendto(s, "udp6://[::ffff:0.0.0.0]:%u", a4), 1);
  cr_expect_eq(guest_sendto(s, "udp6://[::]:%u", d6), HWSOCK_ENETUNREACH);
  cr_expect_eq(guest_sendto(s, "udp6://[::ffff:0.0.0.0]:%u", d4),
               HWSOCK_ENETUNREACH);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);

  cr_expect_eq(pending_datagrams(h4), 0, "a denied port was reached");
  cr_expect_eq(pending_datagrams(h6), 0, "a denied port was reached");
  cr_assert_eq(arrivals(ha, pending_datagrams, 2), 2);
  close(h4);
  close(h6);
  close(ha);
}

/* The kernel sends to 0.0.0.0 from a bound socket at the bound address:
 * 127.0.0.1 would be the wrong answer, so the device refuses. */
Test(e2e_dest, unspecified_destination_of_a_bound_socket_is_refused) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t al = sizeof(a);
  a.sin_addr.s_addr = htonl(0x7f000002); /* 127.0.0.2 */
  int h = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(h, 0);
  cr_assert_eq(bind(h, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(h, (struct sockaddr *)&a, &al), 0);
  uint16_t port = ntohs(a.sin_port);
  static char yaml[256];
  snprintf(yaml, sizeof(yaml),
           "version: 1\n"
           "default: offload\n"
           "rules:\n"
           "  - action: deny\n"
           "    direction: outbound\n"
           "    to: 127.0.0.2\n"
           "    ports: %u\n",
           port);
  start(yaml);

  int s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
  cr_assert_geq(s, 0);
  cr_assert_eq(hwsock_guest_bind(ip.guest, s, "udp://127.0.0.2:0"), 0);
  cr_expect_eq(guest_sendto(s, "udp://0.0.0.0:%u", port), HWSOCK_ENETUNREACH);
  cr_expect_eq(guest_sendto(s, "udp://127.0.0.2:%u", port), HWSOCK_EACCES);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  cr_assert_eq(pending_datagrams(h), 0, "the denied port was reached");
  close(h);
}

/* The example: a deny written for tcp catches a tcp6 socket whose
 * destination is the same IPv4 address, v4-mapped. */
Test(e2e_dest, mapped_destination_is_matched_as_ipv4) {
  uint16_t d, a;
  int ld = listener(AF_INET, &d), la = listener(AF_INET, &a);
  static char yaml[512];
  snprintf(yaml, sizeof(yaml),
           "version: 1\n"
           "default: deny\n"
           "rules:\n"
           "  - action: deny\n"
           "    scheme: [tcp]\n"
           "    to: 127.0.0.1\n"
           "    ports: %u\n"
           "    error: ECONNREFUSED\n"
           "  - action: offload\n"
           "    scheme: [tcp, tcp6]\n"
           "    to: [0.0.0.0/0, \"::/0\"]\n",
           d);
  start(yaml);

  int rc1 = guest_connect(HWSOCK_AF_INET6, "tcp6://[::ffff:127.0.0.1]:%u", d);
  int rc2 = guest_connect(HWSOCK_AF_INET6, "tcp6://[::ffff:7f00:1]:%u", d);
  /* a v4-compatible address: the bytes say IPv4, the host routes IPv6 */
  int rc3 = guest_connect(HWSOCK_AF_INET6, "tcp6://[::127.0.0.1]:%u", d);
  cr_expect_eq(pending_connections(ld), 0, "the denied port was reached");
  cr_assert_eq(rc1, HWSOCK_ECONNREFUSED, "%d", rc1);
  cr_assert_eq(rc2, HWSOCK_ECONNREFUSED, "%d", rc2);
  cr_assert_eq(rc3, HWSOCK_ENETUNREACH, "%d", rc3);

  cr_assert_eq(guest_connect(HWSOCK_AF_INET6, "tcp6://[::ffff:127.0.0.1]:%u",
                             a),
               0);
  cr_assert_eq(arrivals(la, pending_connections, 1), 1);
  close(ld);
  close(la);
}
