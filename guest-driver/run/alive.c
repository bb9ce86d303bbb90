/* Is the program still holding a socket whose pumps have ended?
 *
 * When an offloaded connection is over (the peer reset it, or both
 * directions are shut down), the pump end is shut down both ways, and a
 * socket shut down both ways reports POLLHUP whatever its peer does: the
 * hang-up can no longer tell that the program closed its end. Yet the
 * program may keep the fd and call getsockname() on it, which the kernel
 * answers as long as the fd exists. So the entry stays in the table and
 * the supervisor asks the kernel whether the program end still exists: a
 * sock_diag (NETLINK_SOCK_DIAG) lookup of a unix socket by inode, which
 * fails with ENOENT once the last fd to it is closed. */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "run.h"

/* One netlink socket for every lookup, kept open: making one per lookup
 * (socket, autobind, close) cost as much as the lookup itself, once per
 * closed connection. Lookups take turns (the lock); each carries its own
 * sequence number, so a reply left over from a failed one is skipped. */
static pthread_mutex_t nl_lock = PTHREAD_MUTEX_INITIALIZER;
static int nl_fd = -1;
static uint32_t nl_seq;

/* One lookup on the open socket: 1, 0, or HWSOCK_E* (nl_lock held). */
static int lookup(uint32_t ino) {
  struct {
    struct nlmsghdr h;
    struct unix_diag_req r;
  } req;
  memset(&req, 0, sizeof(req));
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.h.nlmsg_seq = ++nl_seq;
  req.r.sdiag_family = AF_UNIX;
  req.r.udiag_states = ~0u;
  req.r.udiag_ino = ino;
  req.r.udiag_cookie[0] = req.r.udiag_cookie[1] = ~0u; /* no cookie */
  struct sockaddr_nl to = {.nl_family = AF_NETLINK};
  if (sendto(nl_fd, &req, sizeof(req), 0, (struct sockaddr *)&to,
             sizeof(to)) != (ssize_t)sizeof(req))
    return hwsock__run_err(errno);
  union {
    struct nlmsghdr h;
    uint8_t b[1024];
  } resp;
  for (;;) {
    ssize_t n = recv(nl_fd, &resp, sizeof(resp), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return hwsock__run_err(errno);
    if (n < (ssize_t)sizeof(struct nlmsghdr))
      return HWSOCK_EPROTO;
    if (resp.h.nlmsg_seq != req.h.nlmsg_seq)
      continue; /* an earlier lookup's reply */
    if (resp.h.nlmsg_type == SOCK_DIAG_BY_FAMILY)
      return 1;
    if (resp.h.nlmsg_type == NLMSG_ERROR &&
        (size_t)n >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
      const struct nlmsgerr *e = NLMSG_DATA(&resp.h);
      if (e->error == -ENOENT)
        return 0;
      return e->error < 0 ? hwsock__run_err(-e->error) : HWSOCK_EPROTO;
    }
    return HWSOCK_EPROTO;
  }
}

int hwsock__run_unix_alive(uint64_t ino) {
  if (ino > UINT32_MAX) /* unix_diag names inodes with 32 bits */
    return hwsock__run_err(EOVERFLOW); /* not in the map: carried */
  pthread_mutex_lock(&nl_lock);
  if (nl_fd < 0)
    nl_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  int rc = nl_fd < 0 ? hwsock__run_err(errno) : lookup((uint32_t)ino);
  if (rc < 0 && nl_fd >= 0) { /* start afresh next time */
    close(nl_fd);
    nl_fd = -1;
  }
  pthread_mutex_unlock(&nl_lock);
  return rc;
}
