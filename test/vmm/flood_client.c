/* Guests for the VMM's fairness test (vmm_test.py flood).
 *
 *   flood_client VMM_PATH flood        a raw guest that keeps its queue full:
 *                                      128 cheap requests (GETNAME of a free
 *                                      socket id: the device answers EBADF
 *                                      without a system call), each put back
 *                                      when an interrupt comes (one per half
 *                                      queue: EVENT_IDX), with a kick. Prints
 *                                      "flooding" once 1000 completed, then
 *                                      runs until stdin ends; prints "done N"
 *   flood_client VMM_PATH rate SECONDS [POLL_US]
 *                                      a driver guest doing request/response
 *                                      (OPEN then CLOSE of a socket id, one
 *                                      request in flight) for SECONDS;
 *                                      prints "rate R" (requests per second);
 *                                      POLL_US: the driver busy-polls that
 *                                      long before sleeping (attach opts)
 *   flood_client VMM_PATH echo PORT SECONDS
 *                                      request/response through a real TCP
 *                                      connection: 32 bytes to the echo
 *                                      server on 127.0.0.1:PORT and back, one
 *                                      exchange at a time; prints "rate R"
 *                                      (exchanges per second)
 *
 * Exit: 0 ok, 1 usage, 2 setup failed (reported on stderr). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hwsock/attach.h"
#include "hwsock/guest.h"
#include "hwsock/loopback.h"
#include "support/vring_builder.h"

#define QSIZE 256u
#define CHAINS (QSIZE / 2) /* two descriptors each */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int err) {
  fprintf(stderr, "flood_client: %s: %s\n", what, hwsock_err_name(err));
  return 2;
}

/* One setup message and its reply; the reply's fds into fds. */
static int lb_call(int sock, uint32_t type, uint64_t a, uint64_t b,
                   uint64_t c, uint64_t d, uint64_t e, hwsock_lb_msg *r,
                   int *fds, unsigned max_fds, unsigned *nfds) {
  hwsock_lb_msg m;
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, type);
  hwsock_le64_set(&m.a, a);
  hwsock_le64_set(&m.b, b);
  hwsock_le64_set(&m.c, c);
  hwsock_le64_set(&m.d, d);
  hwsock_le64_set(&m.e, e);
  int rc = hwsock_lb_send(sock, &m, NULL, 0);
  if (rc == 0)
    rc = hwsock_lb_recv(sock, r, fds, max_fds, nfds);
  if (rc == 0 && hwsock_le32_get(&r->status) != 0)
    rc = -(int)hwsock_le32_get(&r->status);
  return rc;
}

static void kick(int fd) {
  uint64_t one = 1;
  (void)!write(fd, &one, sizeof(one));
}

static int flood(const char *path) {
  int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
  if (sock < 0 || connect(sock, (struct sockaddr *)&sun, sizeof(sun)) < 0)
    return fail("connect", hwsock_err_from_errno(errno));
  hwsock_lb_msg r;
  int fds[HWSOCK_LB_MAX_FDS];
  unsigned nfds = 0;
  int rc = lb_call(sock, HWSOCK_LB_HELLO, HWSOCK_LB_VERSION, 0, 0, 0, 0, &r,
                   fds, HWSOCK_LB_MAX_FDS, &nfds);
  if (rc < 0 || nfds < 3)
    return fail("HELLO", rc < 0 ? rc : HWSOCK_EPROTO);
  size_t size = (size_t)hwsock_le64_get(&r.a);
  uint64_t gpa = hwsock_le64_get(&r.b);
  int kick_fd = fds[1], call_fd = fds[2];
  void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
  if (mem == MAP_FAILED)
    return fail("mmap", hwsock_err_from_errno(errno));
  vrb vr;
  if (vrb_init_at(&vr, mem, gpa, size, QSIZE) < 0)
    return fail("vring", HWSOCK_EINVAL);
  if ((rc = lb_call(sock, HWSOCK_LB_FEATURES,
                    HWSOCK_F_VERSION_1 | HWSOCK_F_EVENT_IDX, 0, 0, 0, 0, &r,
                    NULL, 0, NULL)) < 0 ||
      (rc = lb_call(sock, HWSOCK_LB_QUEUE, 0, QSIZE, vr.desc_gpa, vr.avail_gpa,
                    vr.used_gpa, &r, NULL, 0, NULL)) < 0 ||
      (rc = lb_call(sock, HWSOCK_LB_START, 0, 0, 0, 0, 0, &r, NULL, 0,
                    NULL)) < 0)
    return fail("setup", rc);
  for (unsigned i = 0; i < CHAINS; i++) {
    uint64_t req = vrb_alloc(&vr, sizeof(hwsock_req_hdr), 8);
    uint64_t resp = vrb_alloc(&vr, sizeof(hwsock_resp_hdr) + 64, 8);
    hwsock_req_hdr *h = vrb_host(&vr, req);
    hwsock_le16_set(&h->opcode, HWSOCK_OP_GETNAME);
    hwsock_le32_set(&h->sock_id, 7); /* never opened: EBADF */
    hwsock_le64_set(&h->tag, i);
    vrb_seg segs[2] = {{req, sizeof(hwsock_req_hdr), 0},
                       {resp, sizeof(hwsock_resp_hdr) + 64,
                        HWSOCK_VRING_DESC_F_WRITE}};
    if (vrb_add_chain(&vr, segs, 2) < 0)
      return fail("chain", HWSOCK_EINVAL);
  }
  /* Interrupt moderation (EVENT_IDX), as a busy driver does: woken once
   * half the chains completed, so that the flooder itself costs little CPU
   * while its queue never runs below half full. */
  vrb_set_used_event(&vr, (uint16_t)(CHAINS / 2 - 1));
  vrb_publish(&vr);
  kick(kick_fd);
  unsigned long long done = 0;
  int said = 0;
  for (;;) {
    struct pollfd p[2] = {{call_fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int n = poll(p, 2, 1000);
    if (n > 0 && (p[1].revents & (POLLIN | POLLHUP))) {
      char buf[64];
      if (read(STDIN_FILENO, buf, sizeof(buf)) <= 0)
        break;
    }
    uint64_t v;
    (void)!read(call_fd, &v, sizeof(v)); /* nonblocking: EAGAIN is fine */
    uint32_t id, len;
    unsigned got = 0;
    while (vrb_get_used(&vr, &id, &len)) {
      vrb_put_head(&vr, (uint16_t)id);
      got++;
    }
    if (got > 0) {
      done += got;
      vrb_set_used_event(&vr, (uint16_t)(vr.last_used + CHAINS / 2 - 1));
      vrb_publish(&vr);
    }
    kick(kick_fd); /* also after a quiet second: never stall */
    if (!said && done >= 1000) {
      printf("flooding\n");
      fflush(stdout);
      said = 1;
    }
  }
  printf("done %llu\n", done);
  return 0;
}

static int rate(const char *path, double seconds, int poll_us) {
  hwsock_attachment *a;
  hwsock_attach_opts o;
  hwsock_attach_opts_init(&o);
  o.poll_us = poll_us;
  int rc = hwsock_attach(path, &o, &a);
  if (rc < 0)
    return fail("attach", rc);
  hwsock_guest *g = hwsock_attach_guest(a);
  unsigned long long n = 0;
  double t0 = now_s(), t;
  do {
    int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
    if (s < 0 || (rc = hwsock_guest_close(g, s)) < 0) {
      hwsock_attach_close(a);
      return fail("socket/close", s < 0 ? s : rc);
    }
    n += 2;
  } while ((t = now_s()) - t0 < seconds);
  printf("rate %.0f\n", (double)n / (t - t0));
  hwsock_attach_close(a);
  return 0;
}

/* Request/response through a real connection: 32 bytes to an echo server
 * on 127.0.0.1:port and back, one exchange at a time. */
static int echo(const char *path, unsigned port, double seconds) {
  hwsock_attachment *a;
  int rc = hwsock_attach(path, NULL, &a);
  if (rc < 0)
    return fail("attach", rc);
  hwsock_guest *g = hwsock_attach_guest(a);
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", port);
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  if (s < 0 || (rc = hwsock_guest_connect(g, s, uri)) < 0) {
    hwsock_attach_close(a);
    return fail("connect", s < 0 ? s : rc);
  }
  unsigned long long n = 0;
  char out[32], in[32];
  memset(out, 'x', sizeof(out));
  double t0 = now_s(), t;
  do {
    ssize_t k = hwsock_guest_send(g, s, out, sizeof(out), 0);
    size_t got = 0;
    while (k >= 0 && got < sizeof(in)) {
      k = hwsock_guest_recv(g, s, in + got, sizeof(in) - got, 0);
      if (k == 0)
        k = HWSOCK_ECONNRESET;
      if (k > 0)
        got += (size_t)k;
    }
    if (k < 0) {
      hwsock_attach_close(a);
      return fail("echo", (int)k);
    }
    n++;
  } while ((t = now_s()) - t0 < seconds);
  printf("rate %.0f\n", (double)n / (t - t0));
  hwsock_guest_close(g, s);
  hwsock_attach_close(a);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[2], "echo") == 0 && atoi(argv[3]) > 0 &&
      atof(argv[4]) > 0)
    return echo(argv[1], (unsigned)atoi(argv[3]), atof(argv[4]));
  if (argc == 3 && strcmp(argv[2], "flood") == 0)
    return flood(argv[1]);
  if ((argc == 4 || argc == 5) && strcmp(argv[2], "rate") == 0 &&
      atof(argv[3]) > 0)
    return rate(argv[1], atof(argv[3]), argc == 5 ? atoi(argv[4]) : 0);
  fprintf(stderr, "usage: flood_client VMM_PATH flood | rate SECONDS [POLL_US] | "
                  "echo PORT SECONDS\n");
  return 1;
}
