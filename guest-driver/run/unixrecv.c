/* Under confinement: fds received over unix sockets (SCM_RIGHTS).
 *
 * A confined program must never hold a host INET socket (docs/HWSOCK-RUN.md,
 * "Confinement"), but a unix socket connected to a process outside
 * hwsock-run can carry one in: with SCM_RIGHTS, the kernel installs the fds
 * of a message in the receiver at its recvmsg. With such a socket the
 * program could race a dup2() over an AF_UNIX fd that the supervisor lets
 * the kernel use (CONTINUE). So under confinement a recvmsg that can
 * receive fds (an AF_UNIX socket, a control buffer) is not continued: the
 * supervisor performs it on its own copy of the fd, replaces every
 * AF_INET/AF_INET6 socket among the received fds by a dead socket (as for
 * inherited ones: reads EOF, writes EPIPE), installs the fds in the program
 * (SECCOMP_IOCTL_NOTIF_ADDFD, MSG_CMSG_CLOEXEC honoured), rewrites their
 * numbers in the control data and copies the message, its sender's address
 * and its flags back. recvmmsg with a control buffer takes one message this
 * way (recvmmsg may return fewer messages than asked).
 *
 * Blocking: the supervisor waits in bounded slices for the socket to become
 * readable and re-checks the call (a signal or the program's death ends
 * it), then receives without blocking, so no message is taken for a call
 * that is gone. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hostsock.h"

/* Bounds of one emulated receive: the data (a larger stream read returns
 * less, as a stream read may; a datagram larger than this is truncated),
 * the control buffer, the iovecs (the kernel's UIO_MAXIOV). */
#define UNIX_MAX_DATA (4u << 20)
#define UNIX_MAX_CONTROL 65536u
#define UNIX_MAX_IOV 1024u
/* SCM_PIDFD (Linux 6.5): the control message carries an fd too. */
#define RUN_SCM_PIDFD 0x04

static int is_inet_socket(int fd) {
  int dom = 0;
  socklen_t l = sizeof(dom);
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 &&
         (dom == AF_INET || dom == AF_INET6);
}

/* A dead socket in place of a received INET one: the fd (closed) is
 * replaced by one end of a unix socketpair whose other end is closed. */
static int neutered(int fd) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return -1;
  close(sv[1]);
  close(fd);
  hwsock__run_log("confined: an INET socket received with SCM_RIGHTS was "
                  "replaced by a dead socket");
  return sv[0];
}

/* Installs the fds of every fd-carrying control message in the program and
 * rewrites their numbers. 0, or HWSOCK_E* (HWSOCK_ENOENT: the call is
 * gone). The supervisor's copies are closed in every case. */
static int install_fds(run_call *c, struct msghdr *lm, int cloexec) {
  int rc = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(lm); cm; cm = CMSG_NXTHDR(lm, cm)) {
    if (cm->cmsg_level != SOL_SOCKET ||
        (cm->cmsg_type != SCM_RIGHTS && cm->cmsg_type != RUN_SCM_PIDFD))
      continue;
    size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *fds = (int *)(void *)CMSG_DATA(cm);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, &fds[i], sizeof(fd));
      if (rc == 0 && is_inet_socket(fd)) {
        int d = neutered(fd);
        if (d < 0) {
          /* the INET socket is closed below, not installed */
          rc = HWSOCK_ENOBUFS;
        } else {
          fd = d;
        }
      }
      int got = rc == 0 ? hwsock__run_addfd(c, fd, -1, cloexec, 0) : -1;
      close(fd);
      if (rc == 0 && got < 0)
        rc = got;
      memcpy(&fds[i], &got, sizeof(got));
    }
  }
  return rc;
}

/* One emulated recvmsg: the program's msghdr at mp, flags. The received
 * length (>= 0), or negative: HWSOCK_ENOENT (call gone, no answer), else
 * HWSOCK_E* to answer. */
static ssize_t recv_one(run_call *c, int fd, uint64_t mp, int flags) {
  struct msghdr m;
  int rc = hwsock__run_read(c, mp, &m, sizeof(m));
  if (rc < 0)
    return rc;
  if (m.msg_iovlen > UNIX_MAX_IOV)
    return HWSOCK_EMSGSIZE;
  size_t niov = m.msg_iovlen;
  struct iovec *iov = calloc(niov ? niov : 1, sizeof(*iov));
  if (!iov)
    return HWSOCK_ENOBUFS;
  ssize_t out = 0;
  uint8_t *buf = NULL, *cbuf = NULL;
  rc = hwsock__run_read(c, (uint64_t)(uintptr_t)m.msg_iov, iov,
                        niov * sizeof(*iov));
  size_t total = 0;
  for (size_t i = 0; rc == 0 && i < niov; i++)
    total += iov[i].iov_len < UNIX_MAX_DATA - total ? iov[i].iov_len
                                                    : UNIX_MAX_DATA - total;
  size_t clen = m.msg_controllen < UNIX_MAX_CONTROL ? m.msg_controllen
                                                    : UNIX_MAX_CONTROL;
  if (rc == 0 && (!(buf = malloc(total ? total : 1)) ||
                  !(cbuf = calloc(1, clen))))
    rc = HWSOCK_ENOBUFS;
  if (rc < 0) {
    out = rc;
    goto done;
  }
  struct sockaddr_storage name;
  socklen_t have = m.msg_name ? m.msg_namelen : 0;
  int cloexec = !!(flags & MSG_CMSG_CLOEXEC);
  int nb = (flags & MSG_DONTWAIT) != 0;
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK))
    nb = 1;
  struct iovec liov = {buf, total};
  struct msghdr lm;
  ssize_t n;
  int64_t deadline = 0;
  for (;;) {
    memset(&lm, 0, sizeof(lm));
    lm.msg_name = have ? &name : NULL;
    lm.msg_namelen = have ? sizeof(name) : 0;
    lm.msg_iov = &liov;
    lm.msg_iovlen = 1;
    lm.msg_control = cbuf;
    lm.msg_controllen = clen;
    n = recvmsg(fd, &lm, (flags & ~MSG_CMSG_CLOEXEC) | MSG_DONTWAIT |
                             MSG_CMSG_CLOEXEC);
    if (n >= 0 || (errno != EAGAIN && errno != EINTR) || nb)
      break;
    int w = hwsock__run_wait_readable(c, fd, &deadline);
    if (w < 0) {
      out = w; /* SO_RCVTIMEO's EAGAIN, or gone */
      goto done;
    }
  }
  if (n < 0) {
    out = hwsock__run_err(errno);
    goto done;
  }
  rc = install_fds(c, &lm, cloexec);
  size_t got = (size_t)n < total ? (size_t)n : total;
  size_t off = 0;
  for (size_t i = 0; rc == 0 && i < niov && off < got; i++) {
    size_t k = iov[i].iov_len < got - off ? iov[i].iov_len : got - off;
    rc = hwsock__run_write(c, (uint64_t)(uintptr_t)iov[i].iov_base, buf + off,
                           k);
    off += k;
  }
  if (rc == 0 && lm.msg_controllen > 0)
    rc = hwsock__run_write(c, (uint64_t)(uintptr_t)m.msg_control, cbuf,
                           lm.msg_controllen);
  size_t ctl = lm.msg_controllen;
  if (rc == 0)
    rc = hwsock__run_write(c, mp + offsetof(struct msghdr, msg_controllen),
                           &ctl, sizeof(ctl));
  if (rc == 0 && have) {
    socklen_t nl = lm.msg_namelen;
    rc = hwsock__run_write(c, (uint64_t)(uintptr_t)m.msg_name, &name,
                           nl < have ? nl : have);
    if (rc == 0)
      rc = hwsock__run_write(c, mp + offsetof(struct msghdr, msg_namelen),
                             &nl, sizeof(nl));
  }
  /* the kernel echoes MSG_CMSG_CLOEXEC, which we always ask for */
  int mflags = (lm.msg_flags & ~MSG_CMSG_CLOEXEC) | (flags & MSG_CMSG_CLOEXEC);
  if (rc == 0)
    rc = hwsock__run_write(c, mp + offsetof(struct msghdr, msg_flags),
                           &mflags, sizeof(mflags));
  out = rc < 0 ? rc : n;
done:
  free(cbuf);
  free(buf);
  free(iov);
  return out;
}

/* Does a recvmsg-like call on t need the emulation? The unix socket and a
 * control buffer in the msghdr at mp. 1 yes, 0 no, HWSOCK_E* to
 * answer. */
static int wants_fds(run_call *c, const run_target *t, uint64_t mp) {
  int dom = 0;
  socklen_t l = sizeof(dom);
  if (t->fd < 0 ||
      getsockopt(t->fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0 ||
      dom != AF_UNIX)
    return 0;
  struct msghdr m;
  int rc = hwsock__run_read(c, mp, &m, sizeof(m));
  if (rc < 0)
    return rc;
  /* without a control buffer the kernel closes passed fds itself */
  return m.msg_control != NULL && m.msg_controllen > 0;
}

int hwsock__run_unix_recv(run_call *c, const run_target *t) {
  if (!hwsock__run.confine || t->kind != RT_OTHER)
    return 0;
  int nr = (int)c->n.data.nr;
  if (nr != SYS_recvmsg && nr != SYS_recvmmsg)
    return 0;
  uint64_t mp = c->n.data.args[1];
  int flags = (int)c->n.data.args[2];
  if (nr == SYS_recvmmsg) {
    flags = (int)c->n.data.args[3];
    if (c->n.data.args[2] == 0)
      return 0; /* vlen 0: nothing to receive */
  }
  int w = wants_fds(c, t, mp);
  if (w == 0)
    return 0;
  if (w < 0) {
    if (w != HWSOCK_ENOENT)
      hwsock__run_reply(c, 0, w);
    return 1;
  }
  ssize_t n = recv_one(c, t->fd, mp, flags & ~MSG_WAITFORONE);
  if (n == HWSOCK_ENOENT)
    return 1;
  if (n < 0) {
    hwsock__run_reply(c, 0, (int)n);
    return 1;
  }
  if (nr == SYS_recvmsg) {
    hwsock__run_reply(c, n, 0);
    return 1;
  }
  unsigned len = (unsigned)n;
  int rc = hwsock__run_write(c, mp + offsetof(struct mmsghdr, msg_len), &len,
                             sizeof(len));
  if (rc != HWSOCK_ENOENT)
    hwsock__run_reply(c, rc < 0 ? 0 : 1, rc < 0 ? rc : 0);
  return 1;
}
