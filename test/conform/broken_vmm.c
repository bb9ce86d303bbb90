/* A deliberately non-conforming device for the conformance test only
 * (test/conform/conform_test.py): a relay in front of a real hwsock-vmm
 * that passes every loopback-transport message (PROTOCOL.md §14) and its
 * descriptors through unchanged, except for one fault:
 *
 *   version    the HELLO reply's config carries protocol_version + 1 (the
 *              simplest fault that flips exactly one clause, §3)
 *   evq-strip  FEATURES reaches the device without HWSOCK_F_EVENT_QUEUE
 *              while the guest is told it was accepted: the device runs
 *              without the event queue the guest set up (every §16 clause
 *              that uses the queue fails)
 *   evq-force  FEATURES reaches the device with HWSOCK_F_EVENT_QUEUE (when
 *              offered) although the guest did not ask for it: CREDIT is
 *              then not ENOSYS (§16)
 *
 *   broken_vmm [--fault NAME] LISTEN UPSTREAM   prints "ready", then serves
 *                                one guest at a time until killed */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <poll.h>
#include <stdint.h>
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

enum fault { F_VERSION, F_EVQ_STRIP, F_EVQ_FORCE };
static enum fault fault = F_VERSION;
static uint64_t offered; /* the device's features, from its HELLO reply */

/* One message from `from` to `to` (to_guest: the device's reply),
 * descriptors included, with the fault applied. 0, or -1 when either side
 * is gone. */
static int relay(int from, int to, int to_guest) {
  hwsock_lb_msg m;
  int fds[HWSOCK_LB_MAX_FDS];
  unsigned nfds = 0;
  if (hwsock_lb_recv(from, &m, fds, HWSOCK_LB_MAX_FDS, &nfds) < 0)
    return -1;
  uint32_t type = hwsock_le32_get(&m.type);
  if (to_guest && type == HWSOCK_LB_HELLO) {
    offered = hwsock_le64_get(&m.config.device_features);
    if (fault == F_VERSION)
      hwsock_le32_set(&m.config.protocol_version,
                      HWSOCK_PROTOCOL_VERSION + 1);
  }
  if (!to_guest && type == HWSOCK_LB_FEATURES) {
    uint64_t f = hwsock_le64_get(&m.a);
    if (fault == F_EVQ_STRIP)
      f &= ~(uint64_t)HWSOCK_F_EVENT_QUEUE;
    if (fault == F_EVQ_FORCE && (offered & HWSOCK_F_EVENT_QUEUE))
      f |= HWSOCK_F_EVENT_QUEUE;
    hwsock_le64_set(&m.a, f);
  }
  int rc = hwsock_lb_send(to, &m, nfds > 0 ? fds : NULL, nfds);
  for (unsigned i = 0; i < nfds; i++)
    close(fds[i]);
  return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "--fault") == 0) {
    if (strcmp(argv[2], "evq-strip") == 0)
      fault = F_EVQ_STRIP;
    else if (strcmp(argv[2], "evq-force") == 0)
      fault = F_EVQ_FORCE;
    else if (strcmp(argv[2], "version") != 0)
      argc = 0;
    argv += 2;
    argc -= 2;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: broken_vmm [--fault version|evq-strip|evq-force] "
                    "LISTEN UPSTREAM\n");
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
