/* Adaptive polling on both sides (device: hwsock_uv_set_poll; driver:
 * poll_us) must not change what arrives: a request-response loop and a
 * bulk echo, checked byte for byte. (Timings are the benchmark's business.) */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inproc.h"

static inproc ip;
static const char *policy = "version: 1\nrules:\n  - action: offload\n"
                            "    to: 127.0.0.0/8\n";

static void setup(void) {
  inproc_opts o = {.policy_yaml = policy, .poll_us = 200};
  cr_assert_eq(inproc_start(&ip, &o), 0);
}
static void teardown(void) { inproc_stop(&ip); }
TestSuite(poll, .init = setup, .fini = teardown, .timeout = 120);

static void *echo_once(void *arg) {
  int l = *(int *)arg;
  int c = accept(l, NULL, NULL);
  char buf[65536];
  ssize_t n;
  while ((n = read(c, buf, sizeof(buf))) > 0)
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(c, buf + off, (size_t)(n - off));
      if (w <= 0)
        break;
      off += w;
    }
  close(c);
  return NULL;
}

Test(poll, request_response_and_bulk_echo_are_exact_while_polling) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(l, 1), 0);
  getsockname(l, (struct sockaddr *)&a, &al);
  pthread_t t;
  pthread_create(&t, NULL, echo_once, &l);

  int s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", ntohs(a.sin_port));
  cr_assert_eq(hwsock_guest_connect(ip.guest, s, uri), 0);
  for (int i = 0; i < 2000; i++) {
    unsigned char b = (unsigned char)i, r = 0;
    cr_assert_eq(hwsock_guest_send(ip.guest, s, &b, 1, 0), 1);
    cr_assert_eq(hwsock_guest_recv(ip.guest, s, &r, 1, 0), 1);
    cr_assert_eq(r, b, "round trip %d", i);
  }
  enum { BULK = 8 << 20 };
  unsigned char *out = malloc(BULK), *in = malloc(BULK);
  for (size_t i = 0; i < BULK; i++)
    out[i] = (unsigned char)(i * 131 + (i >> 13));
  size_t got = 0;
  for (size_t off = 0; off < BULK; off += 1 << 20) {
    cr_assert_eq(hwsock_guest_send(ip.guest, s, out + off, 1 << 20, 0), 1 << 20);
    while (got < off + (1 << 20)) {
      ssize_t n = hwsock_guest_recv(ip.guest, s, in + got, BULK - got, 0);
      cr_assert(n > 0);
      got += (size_t)n;
    }
  }
  cr_assert_eq(memcmp(in, out, BULK), 0);
  hwsock_guest_close(ip.guest, s);
  pthread_join(t, NULL);
  close(l);
  free(in);
  free(out);
}
