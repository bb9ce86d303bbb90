/* Loopback transport messages (hwsock/loopback.h): one fixed-size message
 * per SOCK_SEQPACKET record, file descriptors alongside as SCM_RIGHTS.
 *
 * Both ends treat the other as untrusted: a record of any other size, more
 * descriptors than the caller expects or a control message the kernel had
 * to cut short is refused, and every descriptor that did arrive is closed
 * so that a hostile peer cannot make us leak them. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hwsock/loopback.h"

/* Room for the most descriptors a message may legitimately carry. The
 * kernel discards (closes) whatever does not fit and sets MSG_CTRUNC. */
#define CMSG_BYTES CMSG_SPACE(sizeof(int) * HWSOCK_LB_MAX_FDS)

int hwsock_lb_send(int sock, const hwsock_lb_msg *m, const int *fds,
                   unsigned nfds) {
  if (m == NULL || nfds > HWSOCK_LB_MAX_FDS || (nfds > 0 && fds == NULL))
    return HWSOCK_EINVAL;
  union {
    char buf[CMSG_BYTES];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_control = ctl.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (n == (ssize_t)sizeof(*m))
      return 0;
    if (n >= 0) /* a seqpacket record is sent whole or not at all */
      return HWSOCK_EPROTO;
    if (errno == EINTR)
      continue;
    if (errno == EWOULDBLOCK)
      return HWSOCK_EAGAIN;
    return hwsock_err_from_errno(errno);
  }
}

/* Collects the SCM_RIGHTS descriptors of a received message into fds (up to
 * cap; every fd beyond cap is closed here) and returns how many arrived in
 * total. *foreign is set when a control message of another kind came. */
static unsigned collect_fds(struct msghdr *mh, int *fds, unsigned cap,
                            int *foreign) {
  unsigned total = 0;
  *foreign = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
       c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      *foreign = 1;
      continue;
    }
    if (c->cmsg_len < CMSG_LEN(0))
      continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char *data = CMSG_DATA(c);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, data + i * sizeof(int), sizeof(int));
      if (total < cap)
        fds[total] = fd;
      else
        close(fd);
      total++;
    }
  }
  return total;
}

static void close_all(const int *fds, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    close(fds[i]);
}

int hwsock_lb_recv(int sock, hwsock_lb_msg *m, int *fds, unsigned max_fds,
                   unsigned *nfds) {
  if (m == NULL || (max_fds > 0 && (fds == NULL || nfds == NULL)))
    return HWSOCK_EINVAL;
  if (nfds != NULL)
    *nfds = 0;
  union {
    char buf[CMSG_BYTES];
    struct cmsghdr align;
  } ctl;
  int got[HWSOCK_LB_MAX_FDS];
  struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
  struct msghdr mh;
  ssize_t n;
  for (;;) {
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (n >= 0)
      break;
    if (errno == EINTR)
      continue;
    if (errno == EWOULDBLOCK)
      return HWSOCK_EAGAIN;
    return hwsock_err_from_errno(errno);
  }
  int foreign;
  unsigned total = collect_fds(&mh, got, HWSOCK_LB_MAX_FDS, &foreign);
  unsigned kept = total < HWSOCK_LB_MAX_FDS ? total : HWSOCK_LB_MAX_FDS;
  if (n == 0 && total == 0 && !foreign && !(mh.msg_flags & MSG_TRUNC))
    return HWSOCK_ECONNRESET; /* end of stream (or an empty record) */
  if (n != (ssize_t)sizeof(*m) || foreign || total > max_fds ||
      (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    close_all(got, kept);
    return HWSOCK_EPROTO;
  }
  if (kept > 0)
    memcpy(fds, got, sizeof(int) * kept);
  if (nfds != NULL)
    *nfds = kept;
  return 0;
}
