/* End to end over UDP and IPv6: guest driver -> split virtqueues -> device
 * -> policy -> udp / tcp backends (libuv) -> real loopback sockets, and
 * back, for udp://, udp6:// and tcp6://. The host side is plain sockets on
 * the test's thread; the device runs on its own. */
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

#include "inproc.h"
#include "support/loopback_sock.h"

static const char *policy =
    "version: 1\n"
    "default: deny\n"
    "rules:\n"
    "  - action: offload\n"
    "    scheme: [udp, udp6, tcp6]\n"
    "    to: [127.0.0.0/8, \"::1/128\"]\n"
    "    reason: test loopback\n";

static inproc ip;

static void setup(void) {
  inproc_opts o = {.policy_yaml = policy, .backends = {"udp", "tcp", "deny"}};
  cr_assert_eq(inproc_start(&ip, &o), 0);
}
static void teardown(void) { inproc_stop(&ip); }

TestSuite(e2e_udp, .init = setup, .fini = teardown, .timeout = 120);

static ssize_t recv_deadline(int fd, void *buf, size_t n,
                             struct sockaddr_storage *from) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  cr_assert_eq(poll(&p, 1, 5000), 1, "data arrives");
  socklen_t sl = sizeof(*from);
  return recvfrom(fd, buf, n, 0, (struct sockaddr *)from, &sl);
}

/* The guest sends a datagram to a host socket, which answers to the source
 * it saw; the guest's recvfrom names the host socket. */
static void datagram_round_trip(int family) {
  int v6 = family == AF_INET6;
  uint16_t hport;
  int h = loopback_socket(family, SOCK_DGRAM, &hport);
  int s = hwsock_guest_socket(ip.guest, v6 ? HWSOCK_AF_INET6 : HWSOCK_AF_INET,
                              HWSOCK_SOCK_DGRAM);
  cr_assert_geq(s, 0, "socket: %s", hwsock_strerror(s));
  char to[80];
  snprintf(to, sizeof(to), v6 ? "udp6://[::1]:%u" : "udp://127.0.0.1:%u",
           hport);
  ssize_t n = hwsock_guest_sendto(ip.guest, s, "ping", 4, 0, to);
  cr_assert_eq(n, 4, "sendto: %s", hwsock_strerror((int)n));

  char buf[64];
  struct sockaddr_storage from;
  cr_assert_eq(recv_deadline(h, buf, sizeof(buf), &from), 4);
  cr_assert_arr_eq(buf, "ping", 4);
  cr_assert_eq(from.ss_family, family);

  /* the guest's local name is the port the host saw */
  char name[80], want[80];
  cr_assert_geq(hwsock_guest_getname(ip.guest, s, 0, name, sizeof(name)), 0);
  snprintf(want, sizeof(want), v6 ? "udp6://[::]:%u" : "udp://0.0.0.0:%u",
           loopback_port_of(&from));
  cr_assert_str_eq(name, want);

  cr_assert_eq(sendto(h, "pong!", 5, 0, (struct sockaddr *)&from,
                      v6 ? sizeof(struct sockaddr_in6)
                         : sizeof(struct sockaddr_in)),
               5);
  char src[80];
  unsigned flags = 99;
  n = hwsock_guest_recvfrom(ip.guest, s, buf, sizeof(buf), 0, src,
                            sizeof(src), &flags);
  cr_assert_eq(n, 5, "recvfrom: %s", hwsock_strerror((int)n));
  cr_assert_arr_eq(buf, "pong!", 5);
  cr_assert_str_eq(src, to, "the source URI");
  cr_assert_eq(flags, 0);

  /* a datagram longer than the buffer: truncated and flagged */
  static char big[3000];
  memset(big, 'z', sizeof(big));
  cr_assert_eq(sendto(h, big, sizeof(big), 0, (struct sockaddr *)&from,
                      v6 ? sizeof(struct sockaddr_in6)
                         : sizeof(struct sockaddr_in)),
               (ssize_t)sizeof(big));
  n = hwsock_guest_recvfrom(ip.guest, s, buf, 10, 0, src, sizeof(src),
                            &flags);
  cr_assert_eq(n, 10);
  cr_assert(flags & HWSOCK_RESP_F_TRUNC, "flags %u", flags);

  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  close(h);
}

Test(e2e_udp, udp_datagrams_both_ways_with_source_and_truncation) {
  datagram_round_trip(AF_INET);
}

Test(e2e_udp, udp6_datagrams_both_ways_on_loopback) {
  datagram_round_trip(AF_INET6);
}

Test(e2e_udp, connected_udp6_send_and_recv) {
  uint16_t hport;
  int h = loopback_socket(AF_INET6, SOCK_DGRAM, &hport);
  int s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET6, HWSOCK_SOCK_DGRAM);
  cr_assert_geq(s, 0);
  char to[80];
  snprintf(to, sizeof(to), "udp6://[::1]:%u", hport);
  cr_assert_eq(hwsock_guest_connect(ip.guest, s, to), 0);
  char peer[80];
  cr_assert_geq(hwsock_guest_getname(ip.guest, s, 1, peer, sizeof(peer)), 0);
  cr_assert_str_eq(peer, to);
  cr_assert_eq(hwsock_guest_send(ip.guest, s, "hello6", 6, 0), 6);
  char buf[16];
  struct sockaddr_storage from;
  cr_assert_eq(recv_deadline(h, buf, sizeof(buf), &from), 6);
  cr_assert_arr_eq(buf, "hello6", 6);
  cr_assert_eq(sendto(h, "back6", 5, 0, (struct sockaddr *)&from,
                      sizeof(struct sockaddr_in6)),
               5);
  cr_assert_eq(hwsock_guest_recv(ip.guest, s, buf, sizeof(buf), 0), 5);
  cr_assert_arr_eq(buf, "back6", 5);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  close(h);
}

Test(e2e_udp, tcp6_connect_send_recv_on_loopback) {
  uint16_t hport;
  int l = loopback_socket(AF_INET6, SOCK_STREAM, &hport);
  cr_assert_eq(listen(l, 1), 0);
  int s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET6, HWSOCK_SOCK_STREAM);
  cr_assert_geq(s, 0);
  char to[80];
  snprintf(to, sizeof(to), "tcp6://[::1]:%u", hport);
  int rc = hwsock_guest_connect(ip.guest, s, to);
  cr_assert_eq(rc, 0, "connect: %s", hwsock_strerror(rc));
  struct pollfd p = {.fd = l, .events = POLLIN};
  cr_assert_eq(poll(&p, 1, 5000), 1);
  int c = accept(l, NULL, NULL);
  cr_assert_geq(c, 0);
  char peer[80];
  cr_assert_geq(hwsock_guest_getname(ip.guest, s, 1, peer, sizeof(peer)), 0);
  cr_assert_str_eq(peer, to);

  cr_assert_eq(hwsock_guest_send(ip.guest, s, "over six", 8, 0), 8);
  char buf[16];
  size_t got = 0;
  while (got < 8) {
    p.fd = c;
    cr_assert_eq(poll(&p, 1, 5000), 1);
    ssize_t n = read(c, buf + got, sizeof(buf) - got);
    cr_assert_gt(n, 0);
    got += (size_t)n;
  }
  cr_assert_arr_eq(buf, "over six", 8);
  cr_assert_eq(write(c, "and back", 8), 8);
  got = 0;
  while (got < 8) {
    ssize_t n = hwsock_guest_recv(ip.guest, s, buf + got, 8 - got, 0);
    cr_assert_gt(n, 0, "recv: %s", hwsock_strerror((int)n));
    got += (size_t)n;
  }
  cr_assert_arr_eq(buf, "and back", 8);
  close(c);
  cr_assert_eq(hwsock_guest_recv(ip.guest, s, buf, sizeof(buf), 0), 0, "EOF");
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  close(l);
}
