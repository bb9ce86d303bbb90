/* Host-side options from the policy (`set:`): applied to the host socket,
 * invisible to and not overridable by the guest. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inproc.h"

static const char *policy =
    "version: 1\n"
    "rules:\n"
    "  - action: offload\n"
    "    scheme: tcp\n"
    "    to: 127.0.0.0/8\n"
    "    set: {congestion: reno, nodelay: true, keepalive: true,\n"
    "          keepidle: 77, sndbuf: 65536}\n";

static inproc ip;
static void setup(void) {
  inproc_opts o = {.policy_yaml = policy};
  cr_assert_eq(inproc_start(&ip, &o), 0);
}
static void teardown(void) { inproc_stop(&ip); }
TestSuite(hostopts, .init = setup, .fini = teardown, .timeout = 60);

typedef struct found {
  int fd;
} found;
static int first_fd(const hwsock_sock_info *i, void *arg) {
  ((found *)arg)->fd = i->host_fd;
  return 1;
}
static void find(hwsock_device *dev, void *arg) {
  ((found *)arg)->fd = -1;
  hwsock_device_foreach_socket(dev, first_fd, arg);
}

Test(hostopts, policy_options_are_set_on_the_host_socket_and_locked) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(l, 1), 0);
  getsockname(l, (struct sockaddr *)&a, &al);

  int s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", ntohs(a.sin_port));
  cr_assert_eq(hwsock_guest_connect(ip.guest, s, uri), 0);

  /* The backend's host fd lives in this process: read its options. */
  found f;
  inproc_on_device(&ip, find, &f);
  cr_assert(f.fd >= 0);
  char cc[16] = {0};
  socklen_t cl = sizeof(cc);
  cr_assert_eq(getsockopt(f.fd, IPPROTO_TCP, TCP_CONGESTION, cc, &cl), 0);
  cr_assert_str_eq(cc, "reno");
  int v = 0;
  socklen_t vl = sizeof(v);
  getsockopt(f.fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl);
  cr_assert_eq(v, 1);
  getsockopt(f.fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl);
  cr_assert_eq(v, 77);

  /* The guest may not override them; other options stay its own. */
  unsigned char off[4] = {0};
  cr_assert_eq(hwsock_guest_setsockopt(ip.guest, s, HWSOCK_SOL_TCP,
                                       HWSOCK_TCP_NODELAY, off, 4),
               HWSOCK_EPERM);
  cr_assert_eq(hwsock_guest_setsockopt(ip.guest, s, HWSOCK_SOL_SOCKET,
                                       HWSOCK_SO_SNDBUF, off, 4),
               HWSOCK_EPERM);
  unsigned char on[4] = {1, 0, 0, 0};
  cr_assert_eq(hwsock_guest_setsockopt(ip.guest, s, HWSOCK_SOL_SOCKET,
                                       HWSOCK_SO_REUSEADDR, on, 4),
               0);
  hwsock_guest_close(ip.guest, s);
  close(l);
}
