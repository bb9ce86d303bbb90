/* A fake loopback VMM (PROTOCOL.md §14) for run_device_reset: it accepts
 * one guest at PATH, answers the setup, and answers the guest's first kick
 * with NEEDS_RESET carrying CODE (or, for "hangup", closes the connection).
 * Then it waits until the guest closes its side. It stands for a VMM that
 * found the guest's rings broken; no host socket is ever opened.
 *
 * Usage: reset_vmm PATH CODE|hangup   (prints "ready" once listening) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hwsock/loopback.h"
#include "hwsock/wire.h"

#define FAKE_MEM_SIZE (64u << 20)
#define WAIT_MS 60000 /* every wait is bounded */

static int die(const char *what) {
  fprintf(stderr, "reset_vmm: %s\n", what);
  return 1;
}

static void fake_config(hwsock_wire_config *c) {
  memset(c, 0, sizeof(*c));
  hwsock_le32_set(&c->magic, HWSOCK_CONFIG_MAGIC);
  hwsock_le32_set(&c->protocol_version, HWSOCK_PROTOCOL_VERSION);
  hwsock_le64_set(&c->device_features, HWSOCK_F_VERSION_1);
  hwsock_le16_set(&c->num_queues, 1);
  hwsock_le16_set(&c->max_queue_size, 256);
  hwsock_le32_set(&c->max_sockets, 64);
  hwsock_le32_set(&c->max_inflight, 256);
  hwsock_le32_set(&c->max_uri_len, 256);
  hwsock_le32_set(&c->max_io_len, 65536);
  hwsock_le32_set(&c->max_chain_segs, 16);
}

static int readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, WAIT_MS) == 1;
}

int main(int argc, char **argv) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (argc != 3 || strlen(argv[1]) >= sizeof(sun.sun_path))
    return die("usage: reset_vmm PATH CODE|hangup");
  int hang_up = !strcmp(argv[2], "hangup");
  unsigned long long code = hang_up ? 0 : strtoull(argv[2], NULL, 0);
  memcpy(sun.sun_path, argv[1], strlen(argv[1]) + 1);
  int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (l < 0 || bind(l, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
      listen(l, 1) < 0)
    return die("cannot listen");
  printf("ready\n");
  fflush(stdout);
  if (!readable(l))
    return die("no guest came");
  int s = accept(l, NULL, NULL);
  int fds[3];
  fds[0] = memfd_create("reset-vmm-mem", MFD_CLOEXEC);
  fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); /* kick */
  fds[2] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); /* call */
  if (s < 0 || fds[0] < 0 || fds[1] < 0 || fds[2] < 0 ||
      ftruncate(fds[0], FAKE_MEM_SIZE) < 0)
    return die("setup");

  hwsock_lb_msg m;
  if (!readable(s) || hwsock_lb_recv(s, &m, NULL, 0, NULL) != 0 ||
      hwsock_le32_get(&m.type) != HWSOCK_LB_HELLO)
    return die("no HELLO");
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, HWSOCK_LB_HELLO);
  hwsock_le64_set(&m.a, FAKE_MEM_SIZE);
  hwsock_le64_set(&m.b, 0x100000);
  hwsock_le64_set(&m.c, 1);
  fake_config(&m.config);
  if (hwsock_lb_send(s, &m, fds, 3) != 0)
    return die("HELLO reply");
  for (;;) { /* setup: every request answered 0, until START */
    if (!readable(s) || hwsock_lb_recv(s, &m, NULL, 0, NULL) != 0)
      return die("setup request");
    uint32_t t = hwsock_le32_get(&m.type);
    memset(&m, 0, sizeof(m));
    hwsock_le32_set(&m.type, t);
    if (hwsock_lb_send(s, &m, NULL, 0) != 0)
      return die("setup reply");
    if (t == HWSOCK_LB_START)
      break;
  }
  if (!readable(fds[1]))
    return die("no request from the guest");
  if (hang_up) {
    close(s);
    return 0;
  }
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, HWSOCK_LB_NEEDS_RESET);
  hwsock_le64_set(&m.a, code);
  if (hwsock_lb_send(s, &m, NULL, 0) != 0)
    return die("NEEDS_RESET");
  while (readable(s) && hwsock_lb_recv(s, &m, NULL, 0, NULL) == 0)
    ; /* until the guest closes its attachment */
  close(s);
  return 0;
}
