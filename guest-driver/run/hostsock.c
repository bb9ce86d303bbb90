/* Calls on host INET sockets, and sendmmsg/recvmmsg.
 *
 * Without confinement a program holds host TCP/UDP sockets: the declined
 * ones (the placeholder was replaced by a host socket) and any it
 * inherited. The device decided a declined socket once, on its first call;
 * a later connect or send on it names a new destination the device never
 * saw. Every such destination is asked of the device here, before the call
 * continues in the kernel.
 *
 * How: the device keeps a declined socket declined (it answers EDECLINED
 * to everything on it, by design), so the question goes through a fresh
 * device socket of the same family and type, closed right after. The
 * request is chosen to have no effect on the network whatever the verdict:
 *   UDP: CONNECT (a UDP connect sends nothing);
 *   TCP: a zero-byte SEND with the destination on the never-connected
 *        socket (the policy decides outbound on it; an offloaded one is
 *        answered ENOTCONN by the backend; a CONNECT would really connect).
 * EDECLINED -> the call continues on the host; the offload verdict (0,
 * ENOTCONN, EISCONN) -> it continues too (the destination is allowed; the
 * socket cannot move to the device, so the host stack carries it); anything
 * else (the deny verdict's errno, a device failure) -> the call fails with
 * it. Only the device's own answer lets a call through: the policy is the
 * VMM's, never a copy in hwsock-run. An allowed answer is remembered for
 * that exact destination (family, type and URI; a small table, oldest
 * replaced): a loaded policy never changes (hwsock/policy.h) and the
 * question, asked on a fresh socket, depends on nothing else, so a UDP
 * client sending to one declined server pays the three round trips once.
 * Refusals are not remembered (they cost nothing on the network).
 *
 * Holding no state also means nothing to evict: a host socket is known by
 * what the kernel says of the fd (SO_DOMAIN, SO_TYPE, SO_PROTOCOL) at every
 * call, so a table that fills up, or an inode number reused, cannot let a
 * call through unchecked. The check and the kernel's use of the arguments
 * are two moments (the seccomp CONTINUE gap, docs/HWSOCK-RUN.md): a program
 * racing its own arguments can still pass between them; confinement, where
 * no host INET socket exists, is the answer to that.
 *
 * Errors: as everywhere in run/, 0 or HWSOCK_E* (runerr.h); only the
 * reply to the program (hwsock__run_reply) turns it into an errno. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hostsock.h"
#include "hwsock/wire.h"

/* The kernel takes at most this many messages per sendmmsg (UIO_MAXIOV). */
#define RUN_MAX_MMSG 1024u
/* Allowed destinations remembered (direct-mapped by a hash). */
#define RUN_ALLOWED_CACHE 256u

typedef struct allowed_entry {
  int family, type; /* 0: empty */
  char uri[HWSOCK_URI_MAX + 1];
} allowed_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static allowed_entry cache[RUN_ALLOWED_CACHE];

static unsigned cache_slot(int family, int type, const char *uri) {
  uint32_t h = 2166136261u ^ (uint32_t)family ^ ((uint32_t)type << 8);
  for (const char *p = uri; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  return h % RUN_ALLOWED_CACHE;
}

static int cache_has(int family, int type, const char *uri) {
  allowed_entry *e = &cache[cache_slot(family, type, uri)];
  pthread_mutex_lock(&cache_lock);
  int hit = e->family == family && e->type == type && !strcmp(e->uri, uri);
  pthread_mutex_unlock(&cache_lock);
  return hit;
}

static void cache_put(int family, int type, const char *uri) {
  allowed_entry *e = &cache[cache_slot(family, type, uri)];
  pthread_mutex_lock(&cache_lock);
  e->family = family;
  e->type = type;
  snprintf(e->uri, sizeof(e->uri), "%s", uri);
  pthread_mutex_unlock(&cache_lock);
}

/* Asks the device about one destination; 0: allowed, else HWSOCK_E*. */
static int probe(int family, int type, const char *uri) {
  if (hwsock__run.device_down)
    return HWSOCK_ENETDOWN;
  if (cache_has(family, type, uri))
    return 0;
  int rc = hwsock__run_offload_reserve();
  if (rc < 0)
    return rc;
  unsigned fam = family == AF_INET6 ? HWSOCK_AF_INET6 : HWSOCK_AF_INET;
  int stream = type == SOCK_STREAM;
  int id = hwsock_guest_socket(hwsock__run.g, fam,
                               stream ? HWSOCK_SOCK_STREAM : HWSOCK_SOCK_DGRAM);
  int err;
  if (id < 0) {
    err = id;
    if (id == HWSOCK_ECONNRESET || id == HWSOCK_ENEEDSRESET)
      hwsock__run_device_gone(); /* OPEN has no peer to reset it */
  } else {
    err = stream ? (int)hwsock_guest_sendto(hwsock__run.g, id, "", 0, 0, uri)
                 : hwsock_guest_connect(hwsock__run.g, id, uri);
    hwsock_guest_close(hwsock__run.g, id);
    if (err == HWSOCK_EDECLINED || err >= 0 ||
        (stream && (err == HWSOCK_ENOTCONN || err == HWSOCK_EISCONN)))
      err = 0;
  }
  hwsock__run_offload_release();
  if (err == HWSOCK_ECONNRESET || err == HWSOCK_ENEEDSRESET ||
      (err < 0 && hwsock__run.device_down))
    return HWSOCK_ENETDOWN;
  if (err < 0)
    return err;
  cache_put(family, type, uri);
  return 0;
}

/* An unspecified IPv4 destination (0.0.0.0, or ::ffff:0.0.0.0 on an
 * AF_INET6 socket) is sent by the kernel to the socket's own bound address
 * when it has one (ip_route_connect/ip_route_output: a zero daddr becomes
 * the saddr, and only without one loopback). The device's probe socket is
 * never bound, so it would judge the destination as 127.0.0.1: put the
 * bound address in first. `::` is loopback whatever the binding (the IPv6
 * stack's rule), which is what the device assumes. */
static void bound_unspecified(int fd, struct sockaddr_storage *ss) {
  struct sockaddr_storage me;
  socklen_t ml = sizeof(me);
  if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0)
    return;
  if (ss->ss_family == AF_INET && me.ss_family == AF_INET) {
    struct sockaddr_in *d = (struct sockaddr_in *)ss;
    const struct sockaddr_in *l = (const struct sockaddr_in *)&me;
    if (d->sin_addr.s_addr == htonl(INADDR_ANY))
      d->sin_addr = l->sin_addr;
  } else if (ss->ss_family == AF_INET6 && me.ss_family == AF_INET6) {
    struct sockaddr_in6 *d = (struct sockaddr_in6 *)ss;
    const struct sockaddr_in6 *l = (const struct sockaddr_in6 *)&me;
    static const uint8_t mapped_any[16] = {[10] = 0xff, [11] = 0xff};
    if (!memcmp(&d->sin6_addr, mapped_any, 16) &&
        IN6_IS_ADDR_V4MAPPED(&l->sin6_addr))
      memcpy(&d->sin6_addr.s6_addr[12], &l->sin6_addr.s6_addr[12], 4);
  }
}

/* Reads and checks one destination. 0: allowed; else the call is
 * answered (or gone) and 1. */
static int check_dest(run_call *c, int fd, int family, int type, uint64_t addr,
                      uint64_t len, const char *what) {
  struct sockaddr_storage ss;
  char uri[HWSOCK_URI_MAX + 1];
  int rc = 0;
  if (len > sizeof(ss) || len < sizeof(sa_family_t))
    rc = HWSOCK_EINVAL;
  if (rc == 0)
    rc = hwsock__run_read(c, addr, &ss, (size_t)len);
  if (rc == HWSOCK_ENOENT)
    return 1; /* the program is gone */
  if (rc == 0 && ss.ss_family == AF_UNSPEC && !strcmp(what, "connect"))
    return 0; /* dissolves the association: no destination */
  if (rc == 0)
    bound_unspecified(fd, &ss);
  if (rc == 0)
    rc = hwsock__run_sa_to_uri(&ss, (size_t)len, family, type, 0, uri,
                               sizeof(uri));
  if (rc == 0)
    rc = probe(family, type, uri);
  if (rc == 0)
    return 0;
  int e = hwsock__run_to_errno(rc); /* for the log line */
  hwsock__run_log("deny: fd %d %s %s (host socket): %s",
                  (int)c->n.data.args[0], what, e == EINVAL ? "?" : uri,
                  strerror(e));
  hwsock__run_reply(c, 0, rc);
  return 1;
}

/* Checks every named destination of a sendmmsg. */
static int check_mmsg(run_call *c, int fd, int family, int type) {
  uint64_t vec = c->n.data.args[1];
  unsigned n = (unsigned)c->n.data.args[2];
  if (n > RUN_MAX_MMSG)
    n = RUN_MAX_MMSG; /* the kernel ignores the rest */
  struct mmsghdr *m = n ? calloc(n, sizeof(*m)) : NULL;
  if (n && !m) {
    hwsock__run_reply(c, 0, HWSOCK_ENOBUFS);
    return 1;
  }
  int rc = hwsock__run_read(c, vec, m, n * sizeof(*m));
  if (rc < 0) {
    free(m);
    if (rc != HWSOCK_ENOENT)
      hwsock__run_reply(c, 0, rc);
    return 1;
  }
  int answered = 0;
  for (unsigned i = 0; i < n && !answered; i++) {
    struct msghdr *h = &m[i].msg_hdr;
    if (h->msg_name == NULL || h->msg_namelen == 0)
      continue;
    answered = check_dest(c, fd, family, type,
                          (uint64_t)(uintptr_t)h->msg_name,
                          h->msg_namelen, "sendmmsg");
  }
  free(m);
  return answered;
}

int hwsock__run_host_check(run_call *c, const run_target *t) {
  int type = 0, proto = 0;
  socklen_t l = sizeof(type);
  if (getsockopt(t->fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
    return 0;
  l = sizeof(proto);
  if (getsockopt(t->fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) < 0)
    return 0;
  int tcp = type == SOCK_STREAM && proto == IPPROTO_TCP;
  int udp = type == SOCK_DGRAM && proto == IPPROTO_UDP;
  if (!tcp && !udp)
    return 0; /* raw, ICMP, SCTP, MPTCP: no scheme the policy knows */
  int fam = t->family;
  const __u64 *a = c->n.data.args;
  switch (c->n.data.nr) {
  case SYS_connect:
    return check_dest(c, t->fd, fam, type, a[1], a[2], "connect");
  case SYS_sendto: /* trapped with an address only */
    if (tcp && !(a[3] & MSG_FASTOPEN))
      return 0; /* TCP ignores the address unless it connects with it */
    return check_dest(c, t->fd, fam, type, a[4], a[5], "sendto");
  case SYS_sendmsg: {
    if (tcp && !(a[2] & MSG_FASTOPEN))
      return 0;
    struct msghdr m;
    int rc = hwsock__run_read(c, a[1], &m, sizeof(m));
    if (rc < 0) {
      if (rc != HWSOCK_ENOENT)
        hwsock__run_reply(c, 0, rc);
      return 1;
    }
    if (m.msg_name == NULL || m.msg_namelen == 0)
      return 0;
    return check_dest(c, t->fd, fam, type, (uint64_t)(uintptr_t)m.msg_name,
                      m.msg_namelen, "sendmsg");
  }
  case SYS_sendmmsg:
    if (tcp && !(a[3] & MSG_FASTOPEN))
      return 0;
    return check_mmsg(c, t->fd, fam, type);
  default:
    return 0; /* no destination */
  }
}
