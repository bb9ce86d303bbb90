/* A deliberately non-conforming device for the conformance test only
 * (test/conform/conform_test.py): a relay in front of a real hwsock-vmm
 * that passes every loopback-transport message (PROTOCOL.md §14) and its
 * descriptors through unchanged, except that the HELLO reply's config
 * carries protocol_version + 1 — the simplest fault that flips exactly one
 * clause (§3) of hwsock-conform.
 *
 *   broken_vmm LISTEN UPSTREAM   prints "ready", then serves one guest at a
 *                                time until killed */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hwsock/loopback.h"
#include "hwsock/wire.h"

static int unix_sock(const char *path, int listening) {
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
  if (s < 0)
    return -1;
  int rc = listening ? bind(s, (struct sockaddr *)&sun, sizeof(sun))
                     : connect(s, (struct sockaddr *)&sun, sizeof(sun));
  if (rc < 0 || (listening && listen(s, 4) < 0)) {
    close(s);
    return -1;
  }
  return s;
}

/* One message from `from` to `to`, descriptors included. 0, or -1 when
 * either side is gone. */
static int relay(int from, int to, int patch_hello) {
  hwsock_lb_msg m;
  int fds[HWSOCK_LB_MAX_FDS];
  unsigned nfds = 0;
  if (hwsock_lb_recv(from, &m, fds, HWSOCK_LB_MAX_FDS, &nfds) < 0)
    return -1;
  if (patch_hello && hwsock_le32_get(&m.type) == HWSOCK_LB_HELLO)
    hwsock_le32_set(&m.config.protocol_version, HWSOCK_PROTOCOL_VERSION + 1);
  int rc = hwsock_lb_send(to, &m, nfds > 0 ? fds : NULL, nfds);
  for (unsigned i = 0; i < nfds; i++)
    close(fds[i]);
  return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: broken_vmm LISTEN UPSTREAM\n");
    return 2;
  }
  int l = unix_sock(argv[1], 1);
  if (l < 0) {
    perror("broken_vmm: listen");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    int g = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (g < 0)
      continue;
    int v = unix_sock(argv[2], 0);
    if (v < 0) {
      perror("broken_vmm: upstream");
      close(g);
      continue;
    }
    for (;;) {
      struct pollfd p[2] = {{g, POLLIN, 0}, {v, POLLIN, 0}};
      if (poll(p, 2, -1) < 0)
        break;
      if (p[0].revents && relay(g, v, 0) < 0)
        break;
      if (p[1].revents && relay(v, g, 1) < 0)
        break;
    }
    close(g);
    close(v);
  }
}
