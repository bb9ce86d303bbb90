/* hwsock_attach_reset_reason(): an in-test fake loopback VMM (PROTOCOL.md
 * §14) attaches a guest through libhwsock-guest, waits for the guest's
 * first kick and answers it with NEEDS_RESET carrying a HWSOCK_RESET_*
 * code; the guest library must report exactly that code. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hwsock/attach.h"
#include "hwsock/guest.h"
#include "hwsock/loopback.h"
#include "hwsock/wire.h"

#define FAKE_MEM_SIZE (16u << 20)

typedef struct fake_vmm {
  int listener;
  uint64_t code; /* NEEDS_RESET's a */
  int hang_up;   /* instead of NEEDS_RESET: close the socket */
  char path[108];
} fake_vmm;

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

/* One guest: HELLO with a memfd and one queue's eventfds, every setup
 * request answered 0, then NEEDS_RESET (or a hang-up) on the first kick. */
static void *fake_vmm_run(void *arg) {
  fake_vmm *v = arg;
  int s = accept(v->listener, NULL, NULL);
  cr_assert(s >= 0);
  int fds[3];
  fds[0] = memfd_create("fake-guest-mem", MFD_CLOEXEC);
  fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); /* kick */
  fds[2] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); /* call */
  cr_assert(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0);
  cr_assert(ftruncate(fds[0], FAKE_MEM_SIZE) == 0);

  hwsock_lb_msg m;
  cr_assert(hwsock_lb_recv(s, &m, NULL, 0, NULL) == 0);
  cr_assert(hwsock_le32_get(&m.type) == HWSOCK_LB_HELLO);
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, HWSOCK_LB_HELLO);
  hwsock_le64_set(&m.a, FAKE_MEM_SIZE);
  hwsock_le64_set(&m.b, 0x100000);
  hwsock_le64_set(&m.c, 1);
  fake_config(&m.config);
  cr_assert(hwsock_lb_send(s, &m, fds, 3) == 0);

  for (;;) { /* setup: answer until START */
    cr_assert(hwsock_lb_recv(s, &m, NULL, 0, NULL) == 0);
    uint32_t t = hwsock_le32_get(&m.type);
    memset(&m, 0, sizeof(m));
    hwsock_le32_set(&m.type, t);
    cr_assert(hwsock_lb_send(s, &m, NULL, 0) == 0);
    if (t == HWSOCK_LB_START)
      break;
  }

  struct pollfd p = {.fd = fds[1], .events = POLLIN};
  cr_assert(poll(&p, 1, -1) == 1); /* the guest's first request */
  if (v->hang_up) {
    close(s);
    s = -1;
  } else {
    memset(&m, 0, sizeof(m));
    hwsock_le32_set(&m.type, HWSOCK_LB_NEEDS_RESET);
    hwsock_le64_set(&m.a, v->code);
    cr_assert(hwsock_lb_send(s, &m, NULL, 0) == 0);
    /* until the guest closes its attachment */
    while (hwsock_lb_recv(s, &m, NULL, 0, NULL) == 0)
      ;
    close(s);
  }
  for (int i = 0; i < 3; i++)
    close(fds[i]);
  return NULL;
}

static void fake_vmm_start(fake_vmm *v, pthread_t *t) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(v->path, sizeof(v->path), "/tmp/hwsock-attach-reset-%d.sock",
           (int)getpid());
  unlink(v->path);
  memcpy(sun.sun_path, v->path, strlen(v->path) + 1);
  v->listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  cr_assert(v->listener >= 0);
  cr_assert(bind(v->listener, (struct sockaddr *)&sun, sizeof(sun)) == 0);
  cr_assert(listen(v->listener, 1) == 0);
  cr_assert(pthread_create(t, NULL, fake_vmm_run, v) == 0);
}

/* Attaches, checks the healthy 0, makes one request (which the fake VMM
 * answers by stopping the device) and returns the reason reported then. */
static int reason_after_first_request(fake_vmm *v) {
  pthread_t t;
  fake_vmm_start(v, &t);
  hwsock_attachment *at = NULL;
  int rc = hwsock_attach(v->path, NULL, &at);
  cr_assert(rc == 0, "attach: %s", hwsock_err_name(rc));
  cr_assert(hwsock_attach_reset_reason(at) == 0, "healthy device: 0");
  hwsock_guest *g = hwsock_attach_guest(at);
  int sd = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(sd < 0, "the request must fail once the device is gone");
  int reason = hwsock_attach_reset_reason(at);
  /* a second call fails the same way and the code stays */
  cr_assert(hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM) < 0);
  cr_assert(hwsock_attach_reset_reason(at) == reason);
  hwsock_attach_close(at);
  pthread_join(t, NULL);
  close(v->listener);
  unlink(v->path);
  return reason;
}

Test(attach_reset, needs_reset_code_reaches_the_caller) {
  fake_vmm v = {.code = HWSOCK_RESET_CHAIN_LOOP};
  cr_assert_eq(reason_after_first_request(&v), HWSOCK_RESET_CHAIN_LOOP);
}

Test(attach_reset, another_code) {
  fake_vmm v = {.code = HWSOCK_RESET_INDIRECT_NESTED};
  cr_assert_eq(reason_after_first_request(&v), HWSOCK_RESET_INDIRECT_NESTED);
}

Test(attach_reset, hang_up_without_needs_reset_is_0) {
  fake_vmm v = {.hang_up = 1};
  cr_assert_eq(reason_after_first_request(&v), 0);
}

Test(attach_reset, code_beyond_int_is_unknown_0) {
  fake_vmm v = {.code = 0x100000000ull};
  cr_assert_eq(reason_after_first_request(&v), 0);
}

Test(attach_reset, null_is_0) {
  cr_assert_eq(hwsock_attach_reset_reason(NULL), 0);
}
