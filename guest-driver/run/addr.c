/* sockaddr <-> URI at the program's edge. The sockaddr was copied once out
 * of the program's memory; everything here works on that private copy. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netipx/ipx.h>
#include <stdio.h>
#include <string.h>

#include "hwsock/uri.h"
#include "hwsock/wire.h"
#include "run.h"

static int scheme_of(int family, int type) {
  unsigned f = family == AF_INET    ? HWSOCK_AF_INET
               : family == AF_INET6 ? HWSOCK_AF_INET6
               : family == AF_IPX   ? HWSOCK_AF_IPX
                                    : 0;
  unsigned t = type == SOCK_STREAM  ? HWSOCK_SOCK_STREAM
               : type == SOCK_DGRAM ? HWSOCK_SOCK_DGRAM
                                    : 0;
  return hwsock_scheme_for(f, t);
}

static int ipx_to_uri(const void *sa, size_t len, char *uri, size_t cap) {
  struct sockaddr_ipx sipx;
  if (len < sizeof(sipx))
    return HWSOCK_EINVAL;
  memcpy(&sipx, sa, sizeof(sipx));
  const uint8_t *n = sipx.sipx_node;
  int w = snprintf(uri, cap, "ipx://%08x.%02x%02x%02x%02x%02x%02x.%04x",
                   (unsigned)ntohl(sipx.sipx_network), n[0], n[1], n[2], n[3],
                   n[4], n[5], (unsigned)ntohs(sipx.sipx_port));
  return w > 0 && (size_t)w < cap ? 0 : HWSOCK_ENAMETOOLONG;
}

int hwsock__run_sa_to_uri(const void *sa, size_t len, int family, int type,
                          unsigned flags, char *uri, size_t cap) {
  sa_family_t f;
  if (len < sizeof(f))
    return HWSOCK_EINVAL;
  memcpy(&f, sa, sizeof(f));
  if (f != family)
    return HWSOCK_EAFNOSUPPORT;
  if (family == AF_IPX)
    return ipx_to_uri(sa, len, uri, cap);
  hwsock_addr a;
  int scheme = scheme_of(family, type);
  if (scheme == HWSOCK_SCHEME_NONE)
    return HWSOCK_EPROTOTYPE;
  int rc = hwsock_addr_from_sockaddr(sa, (unsigned)len, scheme, &a);
  if (rc < 0) /* the program's errno: EAFNOSUPPORT or EINVAL, as the host */
    return rc == HWSOCK_EAFNOSUPPORT ? HWSOCK_EAFNOSUPPORT : HWSOCK_EINVAL;
  if (a.port == 0 && !(flags & HWSOCK_URI_ALLOW_PORT0))
    return HWSOCK_ECONNREFUSED; /* what the host stack answers for port 0 */
  rc = hwsock_uri_format(&a, uri, cap);
  return rc < 0 ? HWSOCK_EINVAL : 0;
}

int hwsock__run_uri_to_sa(const char *uri, int family,
                          struct sockaddr_storage *ss, socklen_t *len) {
  hwsock_addr a;
  memset(ss, 0, sizeof(*ss));
  if (hwsock_uri_parse(uri, strlen(uri), HWSOCK_URI_ALLOW_PORT0, &a, NULL) < 0)
    return HWSOCK_EINVAL;
  if (a.family == HWSOCK_AF_IPX) {
    struct sockaddr_ipx sipx;
    memset(&sipx, 0, sizeof(sipx));
    sipx.sipx_family = AF_IPX;
    sipx.sipx_port = htons(a.port);
    memcpy(&sipx.sipx_network, a.u.ipx.net, 4);
    memcpy(sipx.sipx_node, a.u.ipx.node, 6);
    memcpy(ss, &sipx, sizeof(sipx));
    *len = sizeof(sipx);
    return 0;
  }
  unsigned l = sizeof(*ss);
  if (hwsock_addr_to_sockaddr(&a, (struct sockaddr *)ss, &l) < 0)
    return HWSOCK_EINVAL;
  if (family == AF_INET6 && a.family == HWSOCK_AF_INET) {
    /* the program has an AF_INET6 socket: v4 answers come v4-mapped */
    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(a.port);
    s6.sin6_addr.s6_addr[10] = 0xff;
    s6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s6.sin6_addr.s6_addr[12], a.u.v4, 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &s6, sizeof(s6));
    l = sizeof(s6);
  }
  *len = (socklen_t)l;
  return 0;
}

void hwsock__run_sa_any(int family, struct sockaddr_storage *ss,
                        socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  ss->ss_family = (sa_family_t)family;
  *len = family == AF_INET6 ? sizeof(struct sockaddr_in6)
         : family == AF_IPX ? sizeof(struct sockaddr_ipx)
                            : sizeof(struct sockaddr_in);
}

int hwsock__run_put_sa(run_call *c, uint64_t addr, uint64_t lenp,
                       const struct sockaddr_storage *ss, socklen_t len) {
  if (addr == 0 || lenp == 0)
    return 0;
  socklen_t have;
  int rc = hwsock__run_read(c, lenp, &have, sizeof(have));
  if (rc < 0)
    return rc;
  if ((int)have < 0)
    return HWSOCK_EINVAL;
  size_t n = have < len ? have : len;
  if ((rc = hwsock__run_write(c, addr, ss, n)) < 0)
    return rc;
  return hwsock__run_write(c, lenp, &len, sizeof(len));
}

const char *hwsock__run_label(const run_sock *s, char *buf, size_t cap) {
  int id = s->id; /* a snapshot: log lines only */
  if (s->prog_fd >= 0 && id >= 0)
    snprintf(buf, cap, "fd %d (socket %d)", s->prog_fd, id);
  else if (s->prog_fd >= 0)
    snprintf(buf, cap, "fd %d", s->prog_fd);
  else if (id >= 0)
    snprintf(buf, cap, "socket %d", id);
  else
    snprintf(buf, cap, "a new socket");
  return buf;
}

int hwsock__run_dev_err(int err) {
  if (err >= 0)
    return 0;
  /* asked at each failure, not only once a pump met the loss: a sendto
   * right after the VMM died would otherwise say ECONNRESET */
  if (hwsock__run_transport_lost())
    return HWSOCK_ENETDOWN;
  return err;
}
