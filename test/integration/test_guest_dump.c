/* hwsock_guest_dump(): the guest driver's own socket table, against a real
 * device and real loopback sockets (in-process harness). Each test drives
 * sockets into known states and checks the exact rows of the dump, and
 * that the device's table (hwsock_device_foreach_socket) agrees on the
 * state where both can know it. */
#define _GNU_SOURCE /* memfd_create */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inproc.h"

static const char *policy =
    "version: 1\n"
    "default: deny\n"
    "rules:\n"
    "  - action: offload\n"
    "    scheme: tcp\n"
    "    to: 127.0.0.0/8\n"
    "    reason: loopback\n";

static inproc ip;

static void setup(void) {
  inproc_opts o = {.policy_yaml = policy};
  cr_assert_eq(inproc_start(&ip, &o), 0);
}
static void teardown(void) { inproc_stop(&ip); }

TestSuite(guest_dump, .init = setup, .fini = teardown, .timeout = 60);

/* The dump as text. */
static void dump(char *buf, size_t len) {
  int fd = memfd_create("dump", MFD_CLOEXEC);
  cr_assert_geq(fd, 0);
  cr_assert_eq(hwsock_guest_dump(ip.guest, fd), 0);
  off_t n = lseek(fd, 0, SEEK_CUR);
  cr_assert(n > 0 && (size_t)n < len);
  cr_assert_eq(pread(fd, buf, (size_t)n, 0), n);
  buf[n] = '\0';
  close(fd);
}

/* Row `id` of the dump split into words; returns their count. */
static int row(const char *text, int id, char words[8][160]) {
  char copy[8192];
  snprintf(copy, sizeof(copy), "%s", text);
  char *save = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    int n = 0;
    char *s2 = NULL;
    for (char *w = strtok_r(line, " ", &s2); w && n < 8;
         w = strtok_r(NULL, " ", &s2))
      snprintf(words[n++], 160, "%s", w);
    if (n > 0 && strcmp(words[0], "Id") != 0 && atoi(words[0]) == id)
      return n;
  }
  return 0;
}

static void expect_row(const char *text, int id, const char *netid,
                       const char *state, const char *local,
                       const char *peer, const char *out, const char *in) {
  char w[8][160];
  cr_assert_eq(row(text, id, w), 8, "no row for id %d in:\n%s", id, text);
  const char *want[] = {NULL, netid, state, local, peer, out, in, "0"};
  for (int k = 1; k < 8; k++)
    cr_expect_str_eq(w[k], want[k], "id %d column %d: %s, want %s\n%s", id,
                     k, w[k], want[k], text);
}

typedef struct dev_state {
  unsigned id;
  int state;
} dev_state;

static int find_state(const hwsock_sock_info *i, void *arg) {
  dev_state *d = arg;
  if (i->id == d->id) {
    d->state = i->state;
    return 1;
  }
  return 0;
}

static void on_device(hwsock_device *dev, void *arg) {
  hwsock_device_foreach_socket(dev, find_state, arg);
}

static const char *device_state(unsigned id) {
  dev_state d = {id, -1};
  inproc_on_device(&ip, on_device, &d);
  return d.state < 0 ? "(none)" : hwsock_ss_name(d.state);
}

static int host_listener(int *port) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(l, 4), 0);
  socklen_t al = sizeof(a);
  getsockname(l, (struct sockaddr *)&a, &al);
  *port = ntohs(a.sin_port);
  return l;
}

Test(guest_dump, header_and_empty_table) {
  char text[8192];
  dump(text, sizeof(text));
  cr_assert(strncmp(text, "Id    Netid State", 17) == 0, "%s", text);
  cr_assert_eq(strchr(text, '\n') - text + 1, (long)strlen(text),
               "rows in an empty table:\n%s", text);
}

Test(guest_dump, states_names_and_bytes) {
  char text[8192], uri[64], name[HWSOCK_URI_MAX + 1];
  hwsock_guest *g = ip.guest;

  /* 0: opened only. */
  int fresh = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert_eq(fresh, 0);

  /* 1: a listener bound to port 0; GETNAME tells the driver the port. */
  int lst = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert_eq(hwsock_guest_bind(g, lst, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(hwsock_guest_listen(g, lst, 4), 0);
  cr_assert_eq(hwsock_guest_getname(g, lst, 0, name, sizeof(name)), 0);
  int gport = atoi(strrchr(name, ':') + 1);
  cr_assert(gport > 0);

  /* A host client connects to it: 2 is the accepted socket. */
  int hc = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)gport),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(hc, (struct sockaddr *)&a, sizeof(a)), 0);
  struct sockaddr_in hl;
  socklen_t hll = sizeof(hl);
  getsockname(hc, (struct sockaddr *)&hl, &hll);
  char peer[HWSOCK_URI_MAX + 1];
  int acc = hwsock_guest_accept(g, lst, peer, sizeof(peer));
  cr_assert_eq(acc, 2);
  char hc_uri[64];
  snprintf(hc_uri, sizeof(hc_uri), "tcp://127.0.0.1:%d", ntohs(hl.sin_port));
  cr_assert_str_eq(peer, hc_uri);

  /* 5 bytes in, 7 out, then the host shuts down: CLOSE-WAIT. */
  cr_assert_eq(write(hc, "hello", 5), 5);
  char buf[16];
  size_t got = 0;
  while (got < 5) {
    ssize_t n = hwsock_guest_recv(g, acc, buf + got, sizeof(buf) - got, 0);
    cr_assert_gt(n, 0);
    got += (size_t)n;
  }
  cr_assert_eq(hwsock_guest_send(g, acc, "goodbye", 7, 0), 7);
  cr_assert_eq(read(hc, buf, 7), 7);
  shutdown(hc, SHUT_WR);
  cr_assert_eq(hwsock_guest_recv(g, acc, buf, sizeof(buf), 0), 0);

  /* 3: a connection out to a host listener, shut down by the guest. */
  int hport;
  int hlst = host_listener(&hport);
  int out = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", hport);
  cr_assert_eq(hwsock_guest_connect(g, out, uri), 0);
  int hs = accept(hlst, NULL, NULL);
  cr_assert_geq(hs, 0);
  cr_assert_eq(hwsock_guest_send(g, out, "abc", 3, 0), 3);
  cr_assert_eq(hwsock_guest_shutdown(g, out, HWSOCK_SHUT_WR), 0);

  dump(text, sizeof(text));
  expect_row(text, fresh, "tcp", "UNCONN", "*", "*", "0", "0");
  expect_row(text, lst, "tcp", "LISTEN", name, "*", "0", "0");
  expect_row(text, acc, "tcp", "CLOSE-WAIT", name, hc_uri, "7", "5");
  expect_row(text, out, "tcp", "FIN-WAIT", "*", uri, "3", "0");
  /* The device, which saw the same requests, agrees. */
  cr_expect_str_eq(device_state((unsigned)lst), "LISTEN");
  cr_expect_str_eq(device_state((unsigned)acc), "CLOSE-WAIT");
  cr_expect_str_eq(device_state((unsigned)out), "FIN-WAIT");

  /* Both sides down: LAST-ACK; a closed id leaves the table. */
  cr_assert_eq(hwsock_guest_shutdown(g, acc, HWSOCK_SHUT_WR), 0);
  cr_assert_eq(hwsock_guest_close(g, fresh), 0);
  dump(text, sizeof(text));
  expect_row(text, acc, "tcp", "LAST-ACK", name, hc_uri, "7", "5");
  char w[8][160];
  cr_expect_eq(row(text, fresh, w), 0, "closed id still listed:\n%s", text);

  close(hs);
  close(hlst);
  close(hc);
}

Test(guest_dump, bad_arguments) {
  cr_expect_eq(hwsock_guest_dump(NULL, 1), HWSOCK_EINVAL);
  cr_expect_eq(hwsock_guest_dump(ip.guest, -1), HWSOCK_EINVAL);
  int p[2];
  cr_assert_eq(pipe(p), 0);
  close(p[0]);
  signal(SIGPIPE, SIG_IGN);
  cr_expect_eq(hwsock_guest_dump(ip.guest, p[1]), HWSOCK_EIO);
  close(p[1]);
}
