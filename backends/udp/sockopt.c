/* udp backend: socket options through one allow-list table. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "hwsock/wire.h"
#include "sockopt.h"

static const struct opt {
  uint32_t level, name; /* wire */
  int host_level, host_name;
  int get_only;
} opts[] = {
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, SOL_SOCKET, SO_REUSEADDR, 0},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST, SOL_SOCKET, SO_BROADCAST, 0},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, SOL_SOCKET, SO_RCVBUF, 0},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, SOL_SOCKET, SO_SNDBUF, 0},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_ERROR, SOL_SOCKET, SO_ERROR, 1},
    {HWSOCK_SOL_IP, HWSOCK_IP_TOS, IPPROTO_IP, IP_TOS, 0},
    {HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, IPPROTO_IPV6, IPV6_V6ONLY, 0},
    {HWSOCK_SOL_IPV6, HWSOCK_IPV6_TCLASS, IPPROTO_IPV6, IPV6_TCLASS, 0},
};

static const struct opt *find(const hwsock_breq *req, int family) {
  for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
    if (opts[i].level != req->arg0 || opts[i].name != req->arg1)
      continue;
    if (opts[i].host_level == IPPROTO_IPV6 && family != AF_INET6)
      return NULL; /* IPv6 options exist only on udp6 sockets */
    return &opts[i];
  }
  return NULL;
}

/* The first 4 bytes of the request's iovecs (the caller checked there are
 * at least 4). */
static void gather4(const hwsock_breq *req, hwsock_le32 *v) {
  uint8_t *p = v->b;
  size_t n = sizeof(*v);
  for (unsigned i = 0; i < req->iovcnt && n > 0; i++) {
    size_t k = req->iov[i].iov_len < n ? req->iov[i].iov_len : n;
    memcpy(p, req->iov[i].iov_base, k);
    p += k;
    n -= k;
  }
}

static void scatter4(const hwsock_breq *req, const hwsock_le32 *v) {
  const uint8_t *p = v->b;
  size_t n = sizeof(*v);
  for (unsigned i = 0; i < req->iovcnt && n > 0; i++) {
    size_t k = req->iov[i].iov_len < n ? req->iov[i].iov_len : n;
    memcpy(req->iov[i].iov_base, p, k);
    p += k;
    n -= k;
  }
}

int hwsock__udp_setsockopt(int fd, int family, const hwsock_breq *req) {
  const struct opt *o = find(req, family);
  if (o == NULL || o->get_only)
    return HWSOCK_ENOPROTOOPT;
  if (req->iov_len < sizeof(hwsock_le32))
    return HWSOCK_EINVAL;
  hwsock_le32 v;
  gather4(req, &v);
  int x = (int)(int32_t)hwsock_le32_get(&v);
  if (setsockopt(fd, o->host_level, o->host_name, &x, sizeof(x)) != 0)
    return hwsock_err_from_errno(errno);
  return 0;
}

int hwsock__udp_getsockopt(int fd, int family, const hwsock_breq *req,
                           size_t *len) {
  const struct opt *o = find(req, family);
  if (o == NULL)
    return HWSOCK_ENOPROTOOPT;
  if (req->iov_len < sizeof(hwsock_le32))
    return HWSOCK_EINVAL;
  int x = 0;
  socklen_t sl = sizeof(x);
  if (getsockopt(fd, o->host_level, o->host_name, &x, &sl) != 0)
    return hwsock_err_from_errno(errno);
  if (o->host_name == SO_ERROR && o->host_level == SOL_SOCKET)
    x = x ? -hwsock_err_from_errno(x) : 0; /* errno -> wire value */
  hwsock_le32 v;
  hwsock_le32_set(&v, (uint32_t)x);
  scatter4(req, &v);
  *len = sizeof(v);
  return 0;
}
