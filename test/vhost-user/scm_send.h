/* Test support for the vhost-user tests: sendmsg() with file descriptors
 * attached (SCM_RIGHTS), as a front-end sends them. */
#ifndef HWSOCK_TEST_SCM_SEND_H
#define HWSOCK_TEST_SCM_SEND_H

#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define SCM_SEND_MAX_FDS 16u

/* Sends iov[0..iovcnt) with fds[0..nfds) (nfds <= SCM_SEND_MAX_FDS).
 * sendmsg()'s result. */
static inline ssize_t scm_send(int fd, struct iovec *iov, size_t iovcnt,
                               const int *fds, unsigned nfds, int flags) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * SCM_SEND_MAX_FDS)];
    struct cmsghdr align;
  } cbuf;
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = iovcnt;
  if (nfds > SCM_SEND_MAX_FDS)
    nfds = SCM_SEND_MAX_FDS;
  if (nfds > 0) {
    mh.msg_control = cbuf.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  return sendmsg(fd, &mh, flags);
}

#endif
