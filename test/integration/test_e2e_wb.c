/* Write-behind sends (hwsock_guest_config.write_behind): a send returns
 * once its data is in the slots. What arrives must not change, errors must
 * still reach the program, and close must not drop written data. */
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
  inproc_opts o = {.policy_yaml = policy, .write_behind = 1};
  cr_assert_eq(inproc_start(&ip, &o), 0);
}
static void teardown(void) { inproc_stop(&ip); }
TestSuite(wb, .init = setup, .fini = teardown, .timeout = 120);

typedef struct srv {
  int l, port, mode; /* mode 0: count bytes to EOF; 1: RST after 64 KiB */
  size_t got;
  pthread_t t;
} srv;

static void *srv_main(void *arg) {
  srv *s = arg;
  int c = accept(s->l, NULL, NULL);
  char buf[65536];
  ssize_t n;
  while ((n = read(c, buf, sizeof(buf))) > 0) {
    s->got += (size_t)n;
    if (s->mode == 1 && s->got >= 65536) {
      struct linger lg = {1, 0};
      setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      break;
    }
  }
  close(c);
  return NULL;
}

static int start(srv *s, int mode) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  memset(s, 0, sizeof(*s));
  s->mode = mode;
  s->l = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_eq(bind(s->l, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(s->l, 1), 0);
  getsockname(s->l, (struct sockaddr *)&a, &al);
  s->port = ntohs(a.sin_port);
  pthread_create(&s->t, NULL, srv_main, s);
  int g = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", s->port);
  cr_assert_eq(hwsock_guest_connect(ip.guest, g, uri), 0);
  return g;
}

Test(wb, close_right_after_sends_delivers_every_byte) {
  srv s;
  int g = start(&s, 0);
  enum { N = 16 << 20, CHUNK = 65536 };
  char *buf = calloc(1, CHUNK);
  for (size_t off = 0; off < N; off += CHUNK)
    cr_assert_eq(hwsock_guest_send(ip.guest, g, buf, CHUNK, 0), CHUNK);
  cr_assert_eq(hwsock_guest_close(ip.guest, g), 0);
  pthread_join(s.t, NULL);
  cr_assert_eq(s.got, (size_t)N, "server got %zu of %u", s.got, N);
  close(s.l);
  free(buf);
}

Test(wb, an_error_of_an_earlier_send_reaches_a_later_call) {
  srv s;
  int g = start(&s, 1);
  char *buf = calloc(1, 65536);
  ssize_t n = 0;
  for (int i = 0; i < 4096 && n >= 0; i++)
    n = hwsock_guest_send(ip.guest, g, buf, 65536, 0);
  cr_assert(n == HWSOCK_ECONNRESET || n == HWSOCK_EPIPE, "send: %s",
            hwsock_err_name((int)n));
  /* sticky, and shutdown reports it too */
  n = hwsock_guest_send(ip.guest, g, buf, 10, 0);
  cr_assert(n == HWSOCK_ECONNRESET || n == HWSOCK_EPIPE);
  int rc = hwsock_guest_shutdown(ip.guest, g, HWSOCK_SHUT_WR);
  cr_assert(rc == HWSOCK_ECONNRESET || rc == HWSOCK_EPIPE, "shutdown: %s",
            hwsock_err_name(rc));
  cr_assert_eq(hwsock_guest_close(ip.guest, g), 0);
  pthread_join(s.t, NULL);
  close(s.l);
  free(buf);
}
