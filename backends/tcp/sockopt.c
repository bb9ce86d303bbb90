/* tcp backend: socket options through one allow-list table. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "hwsock/wire.h"
#include "sockopt.h"

enum { OPT_INT, OPT_LINGER, OPT_ERROR, OPT_TCPINFO };

static const struct opt {
  uint32_t level, name; /* wire */
  int host_level, host_name;
  int kind;
} opts[] = {
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, SOL_SOCKET, SO_REUSEADDR, OPT_INT},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_ERROR, SOL_SOCKET, SO_ERROR, OPT_ERROR},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST, SOL_SOCKET, SO_BROADCAST, OPT_INT},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, SOL_SOCKET, SO_SNDBUF, OPT_INT},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, SOL_SOCKET, SO_RCVBUF, OPT_INT},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE, SOL_SOCKET, SO_KEEPALIVE, OPT_INT},
    {HWSOCK_SOL_SOCKET, HWSOCK_SO_LINGER, SOL_SOCKET, SO_LINGER, OPT_LINGER},
    {HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, IPPROTO_TCP, TCP_NODELAY, OPT_INT},
    {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE, IPPROTO_TCP, TCP_KEEPIDLE, OPT_INT},
    {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPINTVL, IPPROTO_TCP, TCP_KEEPINTVL,
     OPT_INT},
    {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPCNT, IPPROTO_TCP, TCP_KEEPCNT, OPT_INT},
    {HWSOCK_SOL_TCP, HWSOCK_TCP_INFO, IPPROTO_TCP, TCP_INFO, OPT_TCPINFO},
    {HWSOCK_SOL_IP, HWSOCK_IP_TOS, IPPROTO_IP, IP_TOS, OPT_INT},
    {HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, IPPROTO_IPV6, IPV6_V6ONLY, OPT_INT},
    {HWSOCK_SOL_IPV6, HWSOCK_IPV6_TCLASS, IPPROTO_IPV6, IPV6_TCLASS, OPT_INT},
};

/* struct tcp_info (linux/tcp.h) as runs of same-sized fields, up to
 * tcpi_total_rto_time: the wire wants them little-endian. Fields a newer
 * kernel appends stay as the host wrote them (little-endian hosts: the
 * same). */
static const struct {
  uint16_t end;  /* offset where the run ends */
  uint8_t size;  /* bytes per field */
} tcp_info_runs[] = {{8, 1},   {104, 4}, {136, 8}, {160, 4}, {192, 8},
                     {200, 4}, {216, 8}, {240, 4}, {244, 2}, {248, 4}};

static void tcp_info_to_le(uint8_t *p, size_t n) {
  size_t off = 0;
  for (size_t r = 0; r < sizeof(tcp_info_runs) / sizeof(tcp_info_runs[0]);
       r++) {
    for (; off + tcp_info_runs[r].size <= tcp_info_runs[r].end &&
           off + tcp_info_runs[r].size <= n;
         off += tcp_info_runs[r].size) {
      if (tcp_info_runs[r].size == 2) {
        uint16_t v;
        memcpy(&v, p + off, 2);
        p[off] = (uint8_t)v;
        p[off + 1] = (uint8_t)(v >> 8);
      } else if (tcp_info_runs[r].size == 4) {
        uint32_t v;
        memcpy(&v, p + off, 4);
        hwsock_le32_set((hwsock_le32 *)(void *)(p + off), v);
      } else if (tcp_info_runs[r].size == 8) {
        uint64_t v;
        memcpy(&v, p + off, 8);
        hwsock_le64_set((hwsock_le64 *)(void *)(p + off), v);
      }
    }
    off = tcp_info_runs[r].end;
  }
}

static const struct opt *find(const hwsock_breq *req, int family) {
  for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
    if (opts[i].level != req->arg0 || opts[i].name != req->arg1)
      continue;
    if (opts[i].host_level == IPPROTO_IPV6 && family != AF_INET6)
      return NULL; /* IPv6 options exist only on IPv6 sockets */
    return &opts[i];
  }
  return NULL;
}

static size_t value_size(const struct opt *o) {
  return o->kind == OPT_LINGER ? 8 : 4;
}

/* Copies the first n bytes of the request's iovecs into buf. */
static void gather(const hwsock_breq *req, void *buf, size_t n) {
  uint8_t *p = buf;
  for (unsigned i = 0; i < req->iovcnt && n > 0; i++) {
    size_t k = req->iov[i].iov_len < n ? req->iov[i].iov_len : n;
    memcpy(p, req->iov[i].iov_base, k);
    p += k;
    n -= k;
  }
}

static void scatter(const hwsock_breq *req, const void *buf, size_t n) {
  const uint8_t *p = buf;
  for (unsigned i = 0; i < req->iovcnt && n > 0; i++) {
    size_t k = req->iov[i].iov_len < n ? req->iov[i].iov_len : n;
    memcpy(req->iov[i].iov_base, p, k);
    p += k;
    n -= k;
  }
}

int hwsock__tcp_setsockopt(int fd, int family, const hwsock_breq *req) {
  const struct opt *o = find(req, family);
  if (o == NULL || o->kind == OPT_ERROR || o->kind == OPT_TCPINFO)
    return HWSOCK_ENOPROTOOPT;
  size_t need = value_size(o);
  if (req->iov_len < need)
    return HWSOCK_EINVAL;
  hwsock_le32 v[2];
  gather(req, v, need);
  int rc;
  if (o->kind == OPT_LINGER) {
    struct linger l = {.l_onoff = hwsock_le32_get(&v[0]) != 0,
                       .l_linger = (int)(int32_t)hwsock_le32_get(&v[1])};
    rc = setsockopt(fd, o->host_level, o->host_name, &l, sizeof(l));
  } else {
    int x = (int)(int32_t)hwsock_le32_get(&v[0]);
    rc = setsockopt(fd, o->host_level, o->host_name, &x, sizeof(x));
  }
  return rc == 0 ? 0 : hwsock_err_from_errno(errno);
}

int hwsock__tcp_getsockopt(int fd, int family, int connecting,
                           const hwsock_breq *req, size_t *len) {
  const struct opt *o = find(req, family);
  if (o == NULL)
    return HWSOCK_ENOPROTOOPT;
  if (o->kind == OPT_TCPINFO) {
    /* the host's own connection, truncated to the buffer as by the host */
    uint8_t info[HWSOCK_SOCKOPT_MAX];
    memset(info, 0, sizeof(info));
    socklen_t sl = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &sl) != 0)
      return hwsock_err_from_errno(errno);
    size_t n = sl < req->iov_len ? sl : req->iov_len;
    tcp_info_to_le(info, n);
    scatter(req, info, n);
    *len = n;
    return 0;
  }
  size_t need = value_size(o);
  if (req->iov_len < need)
    return HWSOCK_EINVAL;
  hwsock_le32 v[2];
  if (o->kind == OPT_LINGER) {
    struct linger l;
    socklen_t sl = sizeof(l);
    if (getsockopt(fd, o->host_level, o->host_name, &l, &sl) != 0)
      return hwsock_err_from_errno(errno);
    hwsock_le32_set(&v[0], l.l_onoff != 0);
    hwsock_le32_set(&v[1], (uint32_t)l.l_linger);
  } else {
    int x = 0;
    socklen_t sl = sizeof(x);
    if (!(o->kind == OPT_ERROR && connecting) &&
        getsockopt(fd, o->host_level, o->host_name, &x, &sl) != 0)
      return hwsock_err_from_errno(errno);
    /* SO_ERROR holds a host errno: the guest gets the wire error value. */
    if (o->kind == OPT_ERROR)
      x = x ? -hwsock_err_from_errno(x) : 0;
    hwsock_le32_set(&v[0], (uint32_t)x);
  }
  scatter(req, v, need);
  *len = need;
  return 0;
}

int hwsock__tcp_apply_hostopts(int fd, const hwsock_hostopts *o) {
  static const struct {
    uint32_t bit;
    int level, name;
    size_t field; /* offset of the int32_t in hwsock_hostopts */
  } map[] = {
      {HWSOCK_HOSTOPT_NODELAY, IPPROTO_TCP, TCP_NODELAY,
       offsetof(hwsock_hostopts, nodelay)},
      {HWSOCK_HOSTOPT_KEEPALIVE, SOL_SOCKET, SO_KEEPALIVE,
       offsetof(hwsock_hostopts, keepalive)},
      {HWSOCK_HOSTOPT_KEEPIDLE, IPPROTO_TCP, TCP_KEEPIDLE,
       offsetof(hwsock_hostopts, keepidle)},
      {HWSOCK_HOSTOPT_KEEPINTVL, IPPROTO_TCP, TCP_KEEPINTVL,
       offsetof(hwsock_hostopts, keepintvl)},
      {HWSOCK_HOSTOPT_KEEPCNT, IPPROTO_TCP, TCP_KEEPCNT,
       offsetof(hwsock_hostopts, keepcnt)},
      {HWSOCK_HOSTOPT_SNDBUF, SOL_SOCKET, SO_SNDBUF,
       offsetof(hwsock_hostopts, sndbuf)},
      {HWSOCK_HOSTOPT_RCVBUF, SOL_SOCKET, SO_RCVBUF,
       offsetof(hwsock_hostopts, rcvbuf)},
  };
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
    if (!(o->mask & map[i].bit))
      continue;
    int v = *(const int32_t *)(const void *)((const char *)o + map[i].field);
    if (setsockopt(fd, map[i].level, map[i].name, &v, sizeof(v)) != 0)
      return hwsock_err_from_errno(errno);
  }
  if ((o->mask & HWSOCK_HOSTOPT_CONGESTION) &&
      setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, o->congestion,
                 (socklen_t)strlen(o->congestion)) != 0)
    return hwsock_err_from_errno(errno);
  return 0;
}
