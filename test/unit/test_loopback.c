/* hwsock_lb_send / hwsock_lb_recv (hwsock/loopback.h) over a real
 * SOCK_SEQPACKET socketpair: descriptors travel, and every malformed
 * message is refused without leaving a received descriptor open. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hwsock/loopback.h"

static int sp[2];

static void setup(void) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
}

static void teardown(void) {
  close(sp[0]);
  close(sp[1]);
}

TestSuite(loopback, .init = setup, .fini = teardown);

/* Open descriptors of this process. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory stream's own fd */
}

static void msg(hwsock_lb_msg *m, uint32_t type, uint64_t a) {
  memset(m, 0, sizeof(*m));
  hwsock_le32_set(&m->type, type);
  hwsock_le64_set(&m->a, a);
}

/* Sends raw bytes with n copies of fd attached, bypassing hwsock_lb_send's
 * checks, as a hostile peer would. */
static void send_raw(const void *buf, size_t len, int fd, unsigned n) {
  char ctl[CMSG_SPACE(sizeof(int) * 64)];
  int fds[64];
  cr_assert_leq(n, 64u);
  for (unsigned i = 0; i < n; i++)
    fds[i] = fd;
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  memset(ctl, 0, sizeof(ctl));
  if (n > 0) {
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  }
  cr_assert_eq(sendmsg(sp[0], &mh, 0), (ssize_t)len);
}

Test(loopback, message_and_fds_arrive_and_work) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  hwsock_lb_msg m, r;
  msg(&m, HWSOCK_LB_HELLO, 0x1122334455667788ull);
  int fds[2] = {p[1], p[1]};
  cr_assert_eq(hwsock_lb_send(sp[0], &m, fds, 2), 0);

  int got[HWSOCK_LB_MAX_FDS];
  unsigned n = 99;
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, got, HWSOCK_LB_MAX_FDS, &n), 0);
  cr_assert_eq(memcmp(&m, &r, sizeof(m)), 0);
  cr_assert_eq(n, 2u);
  /* New descriptors, close-on-exec, reaching the same pipe. */
  cr_assert_neq(got[0], p[1]);
  cr_assert_neq(got[0], got[1]);
  cr_assert(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
  cr_assert_eq(write(got[1], "x", 1), 1);
  char c = 0;
  cr_assert_eq(read(p[0], &c, 1), 1);
  cr_assert_eq(c, 'x');
  close(got[0]);
  close(got[1]);
  close(p[0]);
  close(p[1]);
}

Test(loopback, message_without_fds) {
  hwsock_lb_msg m, r;
  msg(&m, HWSOCK_LB_START, 0);
  cr_assert_eq(hwsock_lb_send(sp[0], &m, NULL, 0), 0);
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, NULL, 0, NULL), 0);
  cr_assert_eq(hwsock_le32_get(&r.type), HWSOCK_LB_START);
}

Test(loopback, wrong_size_is_eproto_and_leaks_no_fd) {
  int before = count_fds();
  char small[64] = {1};
  send_raw(small, sizeof(small), sp[0], 3);
  hwsock_lb_msg r;
  int got[HWSOCK_LB_MAX_FDS];
  unsigned n = 99;
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, got, HWSOCK_LB_MAX_FDS, &n),
               HWSOCK_EPROTO);
  cr_assert_eq(n, 0u);
  cr_assert_eq(count_fds(), before);

  char big[sizeof(hwsock_lb_msg) + 1] = {1};
  send_raw(big, sizeof(big), sp[0], 2);
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, got, HWSOCK_LB_MAX_FDS, &n),
               HWSOCK_EPROTO);
  cr_assert_eq(count_fds(), before);
}

Test(loopback, more_fds_than_expected_is_eproto_and_leaks_no_fd) {
  int before = count_fds();
  hwsock_lb_msg m, r;
  msg(&m, HWSOCK_LB_FEATURES, 1);
  send_raw(&m, sizeof(m), sp[0], 3);
  int got[2];
  unsigned n = 99;
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, got, 2, &n), HWSOCK_EPROTO);
  cr_assert_eq(n, 0u);
  cr_assert_eq(count_fds(), before);

  /* None expected at all. */
  send_raw(&m, sizeof(m), sp[0], 1);
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, NULL, 0, NULL), HWSOCK_EPROTO);
  cr_assert_eq(count_fds(), before);
}

Test(loopback, truncated_control_message_is_eproto_and_leaks_no_fd) {
  /* More descriptors than any message may carry: the kernel cuts the
   * control data (MSG_CTRUNC); the ones that did arrive are closed. */
  int before = count_fds();
  hwsock_lb_msg m, r;
  msg(&m, HWSOCK_LB_HELLO, 1);
  send_raw(&m, sizeof(m), sp[0], HWSOCK_LB_MAX_FDS + 8);
  int got[HWSOCK_LB_MAX_FDS];
  unsigned n = 99;
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, got, HWSOCK_LB_MAX_FDS, &n),
               HWSOCK_EPROTO);
  cr_assert_eq(count_fds(), before);
}

Test(loopback, send_refuses_too_many_fds) {
  hwsock_lb_msg m;
  msg(&m, HWSOCK_LB_HELLO, 1);
  int fds[HWSOCK_LB_MAX_FDS + 1];
  for (unsigned i = 0; i <= HWSOCK_LB_MAX_FDS; i++)
    fds[i] = sp[0];
  cr_assert_eq(hwsock_lb_send(sp[0], &m, fds, HWSOCK_LB_MAX_FDS + 1),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_lb_send(sp[0], &m, NULL, 1), HWSOCK_EINVAL);
}

Test(loopback, the_next_message_is_intact_after_a_bad_one) {
  char small[8] = {0};
  send_raw(small, sizeof(small), sp[0], 0);
  hwsock_lb_msg m, r;
  msg(&m, HWSOCK_LB_RESET, 7);
  cr_assert_eq(hwsock_lb_send(sp[0], &m, NULL, 0), 0);
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, NULL, 0, NULL), HWSOCK_EPROTO);
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, NULL, 0, NULL), 0);
  cr_assert_eq(hwsock_le64_get(&r.a), 7u);
}

Test(loopback, eof_is_econnreset_and_nonblocking_empty_is_eagain) {
  hwsock_lb_msg r;
  cr_assert_eq(fcntl(sp[1], F_SETFL, O_NONBLOCK), 0);
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, NULL, 0, NULL), HWSOCK_EAGAIN);
  shutdown(sp[0], SHUT_WR);
  cr_assert_eq(hwsock_lb_recv(sp[1], &r, NULL, 0, NULL), HWSOCK_ECONNRESET);
}

Test(loopback, send_to_a_closed_peer_is_epipe_without_sigpipe) {
  hwsock_lb_msg m;
  msg(&m, HWSOCK_LB_START, 0);
  close(sp[1]);
  sp[1] = open("/dev/null", O_RDONLY); /* keep teardown's close harmless */
  cr_assert_eq(hwsock_lb_send(sp[0], &m, NULL, 0), HWSOCK_EPIPE);
}
