/* getsockopt/setsockopt/getsockname/getpeername on intercepted sockets.
 *
 * Options: SO_TYPE/SO_DOMAIN/SO_PROTOCOL/SO_ACCEPTCONN are answered here;
 * SO_ERROR here too (it waits for a background connect); the wire
 * allow-list (hwsock/wire.h: SO_REUSEADDR, SO_BROADCAST, SO_SNDBUF,
 * SO_RCVBUF, SO_KEEPALIVE, SO_LINGER, TCP_NODELAY, TCP_KEEPIDLE/INTVL/CNT,
 * IPV6_V6ONLY) goes to the device once it decided; the timeouts
 * (SO_RCVTIMEO/SO_SNDTIMEO) apply to the program end itself, which is where
 * the program blocks; TCP_CORK is accepted and remembered (stream_hint).
 * Before the decision every option is remembered (and
 * replayed: the allow-list to the device after an offload, all of them to
 * the host socket after a decline), since the device refuses options on an
 * undecided socket (ENOTCONN, by design). Anything else: ENOPROTOOPT. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hwsock/wire.h"
#include "run.h"

typedef struct opt_map {
  int level, name;
  unsigned wlevel, wname;
  int linger; /* value is struct linger (two le32 on the wire) */
  int raw;    /* get only, the bytes as they come (TCP_INFO) */
} opt_map;

static const opt_map allow[] = {
    {SOL_SOCKET, SO_REUSEADDR, HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 0, 0},
    {SOL_SOCKET, SO_BROADCAST, HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST, 0, 0},
    {SOL_SOCKET, SO_SNDBUF, HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF, 0, 0},
    {SOL_SOCKET, SO_RCVBUF, HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF, 0, 0},
    {SOL_SOCKET, SO_KEEPALIVE, HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE, 0, 0},
    {SOL_SOCKET, SO_LINGER, HWSOCK_SOL_SOCKET, HWSOCK_SO_LINGER, 1, 0},
    {IPPROTO_TCP, TCP_NODELAY, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, 0, 0},
    {IPPROTO_TCP, TCP_KEEPIDLE, HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE, 0, 0},
    {IPPROTO_TCP, TCP_KEEPINTVL, HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPINTVL, 0, 0},
    {IPPROTO_TCP, TCP_KEEPCNT, HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPCNT, 0, 0},
    {IPPROTO_IPV6, IPV6_V6ONLY, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 0, 0},
    {IPPROTO_IP, IP_TOS, HWSOCK_SOL_IP, HWSOCK_IP_TOS, 0, 0},
    {IPPROTO_IPV6, IPV6_TCLASS, HWSOCK_SOL_IPV6, HWSOCK_IPV6_TCLASS, 0, 0},
    /* the device's host connection: struct tcp_info, fields little-endian
     * on the wire as on the little-endian hosts this runs on */
    {IPPROTO_TCP, TCP_INFO, HWSOCK_SOL_TCP, HWSOCK_TCP_INFO, 0, 1},
};

/* Names for log lines: the options programs commonly set. */
#define OPT_NAME(level, name) {level, name, #name}
static const struct opt_name {
  int level, name;
  const char *text;
} opt_names[] = {
    OPT_NAME(SOL_SOCKET, SO_DEBUG), OPT_NAME(SOL_SOCKET, SO_REUSEADDR),
    OPT_NAME(SOL_SOCKET, SO_TYPE), OPT_NAME(SOL_SOCKET, SO_ERROR),
    OPT_NAME(SOL_SOCKET, SO_DONTROUTE), OPT_NAME(SOL_SOCKET, SO_BROADCAST),
    OPT_NAME(SOL_SOCKET, SO_SNDBUF), OPT_NAME(SOL_SOCKET, SO_RCVBUF),
    OPT_NAME(SOL_SOCKET, SO_SNDBUFFORCE), OPT_NAME(SOL_SOCKET, SO_RCVBUFFORCE),
    OPT_NAME(SOL_SOCKET, SO_KEEPALIVE), OPT_NAME(SOL_SOCKET, SO_OOBINLINE),
    OPT_NAME(SOL_SOCKET, SO_NO_CHECK), OPT_NAME(SOL_SOCKET, SO_PRIORITY),
    OPT_NAME(SOL_SOCKET, SO_LINGER), OPT_NAME(SOL_SOCKET, SO_REUSEPORT),
    OPT_NAME(SOL_SOCKET, SO_PASSCRED), OPT_NAME(SOL_SOCKET, SO_PEERCRED),
    OPT_NAME(SOL_SOCKET, SO_RCVLOWAT), OPT_NAME(SOL_SOCKET, SO_SNDLOWAT),
    OPT_NAME(SOL_SOCKET, SO_RCVTIMEO), OPT_NAME(SOL_SOCKET, SO_SNDTIMEO),
    OPT_NAME(SOL_SOCKET, SO_BINDTODEVICE), OPT_NAME(SOL_SOCKET, SO_TIMESTAMP),
    OPT_NAME(SOL_SOCKET, SO_ACCEPTCONN), OPT_NAME(SOL_SOCKET, SO_MARK),
    OPT_NAME(SOL_SOCKET, SO_PROTOCOL), OPT_NAME(SOL_SOCKET, SO_DOMAIN),
    OPT_NAME(SOL_SOCKET, SO_RXQ_OVFL), OPT_NAME(SOL_SOCKET, SO_BUSY_POLL),
    OPT_NAME(SOL_SOCKET, SO_INCOMING_CPU), OPT_NAME(SOL_SOCKET, SO_ZEROCOPY),
    OPT_NAME(IPPROTO_TCP, TCP_NODELAY), OPT_NAME(IPPROTO_TCP, TCP_MAXSEG),
    OPT_NAME(IPPROTO_TCP, TCP_CORK), OPT_NAME(IPPROTO_TCP, TCP_KEEPIDLE),
    OPT_NAME(IPPROTO_TCP, TCP_KEEPINTVL), OPT_NAME(IPPROTO_TCP, TCP_KEEPCNT),
    OPT_NAME(IPPROTO_TCP, TCP_SYNCNT), OPT_NAME(IPPROTO_TCP, TCP_LINGER2),
    OPT_NAME(IPPROTO_TCP, TCP_DEFER_ACCEPT),
    OPT_NAME(IPPROTO_TCP, TCP_WINDOW_CLAMP), OPT_NAME(IPPROTO_TCP, TCP_INFO),
    OPT_NAME(IPPROTO_TCP, TCP_QUICKACK), OPT_NAME(IPPROTO_TCP, TCP_CONGESTION),
    OPT_NAME(IPPROTO_TCP, TCP_FASTOPEN),
    OPT_NAME(IPPROTO_TCP, TCP_USER_TIMEOUT),
    OPT_NAME(IPPROTO_TCP, TCP_NOTSENT_LOWAT),
    OPT_NAME(IPPROTO_TCP, TCP_FASTOPEN_CONNECT),
    OPT_NAME(IPPROTO_IP, IP_TOS), OPT_NAME(IPPROTO_IP, IP_TTL),
    OPT_NAME(IPPROTO_IP, IP_HDRINCL), OPT_NAME(IPPROTO_IP, IP_OPTIONS),
    OPT_NAME(IPPROTO_IP, IP_PKTINFO), OPT_NAME(IPPROTO_IP, IP_RECVERR),
    OPT_NAME(IPPROTO_IP, IP_RECVTOS), OPT_NAME(IPPROTO_IP, IP_RECVTTL),
    OPT_NAME(IPPROTO_IP, IP_MTU_DISCOVER), OPT_NAME(IPPROTO_IP, IP_MTU),
    OPT_NAME(IPPROTO_IP, IP_FREEBIND), OPT_NAME(IPPROTO_IP, IP_TRANSPARENT),
    OPT_NAME(IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT),
    OPT_NAME(IPPROTO_IP, IP_MULTICAST_IF),
    OPT_NAME(IPPROTO_IP, IP_MULTICAST_TTL),
    OPT_NAME(IPPROTO_IP, IP_MULTICAST_LOOP),
    OPT_NAME(IPPROTO_IP, IP_ADD_MEMBERSHIP),
    OPT_NAME(IPPROTO_IP, IP_DROP_MEMBERSHIP),
    OPT_NAME(IPPROTO_IPV6, IPV6_V6ONLY), OPT_NAME(IPPROTO_IPV6, IPV6_TCLASS),
    OPT_NAME(IPPROTO_IPV6, IPV6_UNICAST_HOPS),
    OPT_NAME(IPPROTO_IPV6, IPV6_RECVPKTINFO),
    OPT_NAME(IPPROTO_IPV6, IPV6_RECVERR),
    OPT_NAME(IPPROTO_IPV6, IPV6_MTU_DISCOVER),
    OPT_NAME(IPPROTO_IPV6, IPV6_MULTICAST_IF),
    OPT_NAME(IPPROTO_IPV6, IPV6_MULTICAST_HOPS),
    OPT_NAME(IPPROTO_IPV6, IPV6_MULTICAST_LOOP),
    OPT_NAME(IPPROTO_IPV6, IPV6_JOIN_GROUP),
    OPT_NAME(IPPROTO_IPV6, IPV6_LEAVE_GROUP),
};

const char *hwsock__run_optname(int level, int name, char *buf, size_t cap) {
  for (size_t i = 0; i < sizeof(opt_names) / sizeof(opt_names[0]); i++)
    if (opt_names[i].level == level && opt_names[i].name == name) {
      snprintf(buf, cap, "%s", opt_names[i].text);
      return buf;
    }
  const char *lv = level == SOL_SOCKET    ? "SOL_SOCKET"
                   : level == IPPROTO_TCP ? "IPPROTO_TCP"
                   : level == IPPROTO_IP  ? "IPPROTO_IP"
                   : level == IPPROTO_IPV6 ? "IPPROTO_IPV6"
                   : level == IPPROTO_UDP ? "IPPROTO_UDP"
                                          : NULL;
  if (lv)
    snprintf(buf, cap, "%s/%d", lv, name);
  else
    snprintf(buf, cap, "%d/%d", level, name);
  return buf;
}

static const opt_map *find_opt(int level, int name) {
  for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++)
    if (allow[i].level == level && allow[i].name == name)
      return &allow[i];
  return NULL;
}

/* Options that belong to the program end (where the program blocks). */
static int local_opt(int level, int name) {
  return level == SOL_SOCKET &&
         (name == SO_RCVTIMEO || name == SO_SNDTIMEO || name == SO_RCVLOWAT);
}

/* TCP_CORK (nginx's tcp_nopush, set around each sendfile response, Debian's
 * default): it only says how the kernel may cut the stream into segments.
 * The program's bytes reach the device by hwsock-run's pump, which sends
 * what it reads at once, so the option is accepted, remembered (replayed
 * to the host socket on a decline, where it is in force) and read back as
 * set. Refusing it (ENOPROTOOPT) made nginx drop every response. */
static int stream_hint(const run_sock *s, int level, int name) {
  return s->type == SOCK_STREAM && level == IPPROTO_TCP && name == TCP_CORK;
}

/* Host value -> wire bytes; returns the wire length, HWSOCK_EINVAL (too
 * short) or HWSOCK_ENOPROTOOPT (get only). */
static int to_wire(const opt_map *m, const uint8_t *val, unsigned len,
                   uint8_t out[8]) {
  if (m->raw)
    return HWSOCK_ENOPROTOOPT; /* get only */
  if (m->linger) {
    struct linger l;
    if (len < sizeof(l))
      return HWSOCK_EINVAL;
    memcpy(&l, val, sizeof(l));
    hwsock_le32_set((hwsock_le32 *)out, (uint32_t)l.l_onoff);
    hwsock_le32_set((hwsock_le32 *)(out + 4), (uint32_t)l.l_linger);
    return 8;
  }
  int v;
  if (len < sizeof(v))
    return HWSOCK_EINVAL;
  memcpy(&v, val, sizeof(v));
  hwsock_le32_set((hwsock_le32 *)out, (uint32_t)v);
  return 4;
}

static void replay_one(run_sock *s, const run_opt *o) {
  const opt_map *m = find_opt(o->level, o->name);
  uint8_t w[8];
  int wl = m ? to_wire(m, o->val, o->len, w) : HWSOCK_EINVAL;
  if (wl < 0)
    return;
  int err = hwsock_guest_setsockopt(hwsock__run.g, s->id, m->wlevel, m->wname,
                                    w, (size_t)wl);
  if (err < 0) {
    char lb[64], on[48];
    hwsock__run_log("%s: option %s not applied on the device: %s",
                    hwsock__run_label(s, lb, sizeof(lb)),
                    hwsock__run_optname(o->level, o->name, on, sizeof(on)),
                    hwsock_strerror(err));
  }
}

void hwsock__run_preset_opts(run_sock *s) {
  run_opt opts[RUN_MAX_OPTS];
  pthread_mutex_lock(&s->lock);
  unsigned n = s->nopts;
  memcpy(opts, s->opts, n * sizeof(opts[0]));
  pthread_mutex_unlock(&s->lock);
  for (unsigned i = 0; i < n; i++) {
    const opt_map *m = find_opt(opts[i].level, opts[i].name);
    uint8_t w[8];
    int wl = m ? to_wire(m, opts[i].val, opts[i].len, w) : HWSOCK_EINVAL;
    if (wl < 0)
      continue; /* not the device's (timeouts, or for a host socket) */
    int err = hwsock_guest_setsockopt(hwsock__run.g, s->id, m->wlevel,
                                      m->wname, w, (size_t)wl);
    if (err == HWSOCK_ENOTCONN)
      return; /* an older device: the replay after the decision does it */
  }
}

void hwsock__run_replay_opts(run_sock *s) {
  run_opt opts[RUN_MAX_OPTS];
  pthread_mutex_lock(&s->lock);
  unsigned n = s->nopts;
  memcpy(opts, s->opts, n * sizeof(opts[0]));
  pthread_mutex_unlock(&s->lock);
  for (unsigned i = 0; i < n; i++)
    replay_one(s, &opts[i]);
}

static int decided(const run_sock *s) {
  return s->id >= 0 && s->state != RS_UNDECIDED && s->state != RS_CONNECTING;
}

/* Writes an option value the way the kernel does (truncated to *optlen,
 * the length written back). */
static int put_opt(run_call *c, const void *val, socklen_t len) {
  uint64_t optval = c->n.data.args[3], optlenp = c->n.data.args[4];
  socklen_t have;
  int rc = hwsock__run_read(c, optlenp, &have, sizeof(have));
  if (rc < 0)
    return rc;
  if ((int)have < 0)
    return HWSOCK_EINVAL;
  socklen_t n = have < len ? have : len;
  if ((rc = hwsock__run_write(c, optval, val, n)) < 0)
    return rc;
  return hwsock__run_write(c, optlenp, &n, sizeof(n));
}

/* The value an undecided socket reports: what the program set, else what a
 * fresh host socket of the same kind has. */
static int undecided_value(run_sock *s, int level, int name, uint8_t *val,
                           socklen_t *len) {
  pthread_mutex_lock(&s->lock);
  for (unsigned i = 0; i < s->nopts; i++) {
    if (s->opts[i].level == level && s->opts[i].name == name) {
      socklen_t n = s->opts[i].len < *len ? s->opts[i].len : *len;
      memcpy(val, s->opts[i].val, n);
      *len = n;
      pthread_mutex_unlock(&s->lock);
      return 0;
    }
  }
  pthread_mutex_unlock(&s->lock);
  if (s->family == AF_IPX)
    return HWSOCK_ENOPROTOOPT;
  int k = socket(s->family, s->type | SOCK_CLOEXEC, 0);
  if (k < 0)
    return hwsock__run_err(errno);
  int rc = getsockopt(k, level, name, val, len) < 0 ? hwsock__run_err(errno)
                                                    : 0;
  close(k);
  return rc;
}

static int so_error(run_call *c, run_sock *s, int *val) {
  hwsock__run_wait_connect(c, s, -1);
  if (!hwsock__run_valid(c))
    return HWSOCK_ENOENT;
  pthread_mutex_lock(&s->lock);
  *val = s->so_error;
  s->so_error = 0;
  pthread_mutex_unlock(&s->lock);
  return 0;
}

void hwsock__run_on_getsockopt(run_call *c) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  int level = (int)c->n.data.args[1], name = (int)c->n.data.args[2];
  if (!hwsock__run_target_ours(c, fd, &t))
    return;
  run_sock *s = t.s;
  int iv = 0, rc = 0, have_int = 1;
  uint8_t val[HWSOCK_SOCKOPT_MAX];
  socklen_t vlen = sizeof(val);
  const opt_map *m = find_opt(level, name);
  if (level == SOL_SOCKET && name == SO_TYPE) {
    iv = s->type;
  } else if (level == SOL_SOCKET && name == SO_DOMAIN) {
    iv = s->family;
  } else if (level == SOL_SOCKET && name == SO_PROTOCOL) {
    iv = s->proto;
  } else if (level == SOL_SOCKET && name == SO_ACCEPTCONN) {
    iv = s->state == RS_LISTENING;
  } else if (level == SOL_SOCKET && name == SO_ERROR &&
             s->type != SOCK_STREAM) {
    iv = hwsock__run_dgram_take_err(s, t.fd); /* an ICMP error, once */
  } else if (level == SOL_SOCKET && name == SO_ERROR) {
    rc = so_error(c, s, &iv);
  } else if (local_opt(level, name)) {
    have_int = 0;
    rc = getsockopt(t.fd, level, name, val, &vlen) < 0 ? hwsock__run_err(errno)
                                                         : 0;
  } else if ((m && !decided(s)) || stream_hint(s, level, name)) {
    have_int = 0;
    rc = undecided_value(s, level, name, val, &vlen);
  } else if (m) {
    uint8_t w[HWSOCK_SOCKOPT_MAX];
    size_t wl = sizeof(w);
    int err = hwsock_guest_getsockopt(hwsock__run.g, s->id, m->wlevel,
                                      m->wname, w, &wl);
    have_int = 0;
    if (err < 0) {
      rc = hwsock__run_dev_err(err);
    } else if (m->raw) {
      memcpy(val, w, wl);
      vlen = (socklen_t)wl;
    } else if (m->linger && wl >= 8) {
      struct linger l = {(int)hwsock_le32_get((hwsock_le32 *)w),
                         (int)hwsock_le32_get((hwsock_le32 *)(w + 4))};
      memcpy(val, &l, sizeof(l));
      vlen = sizeof(l);
    } else if (!m->linger && wl >= 4) {
      int v = (int)hwsock_le32_get((hwsock_le32 *)w);
      memcpy(val, &v, sizeof(v));
      vlen = sizeof(v);
    } else {
      rc = HWSOCK_EPROTO;
    }
  } else {
    rc = HWSOCK_ENOPROTOOPT;
  }
  if (rc == 0 && have_int && level == SOL_SOCKET && name == SO_ERROR)
    iv = hwsock__run_to_errno(iv); /* the program reads an errno here */
  if (rc == 0 && have_int) {
    memcpy(val, &iv, sizeof(iv));
    vlen = sizeof(iv);
  }
  if (rc == 0)
    rc = put_opt(c, val, vlen);
  if (rc != HWSOCK_ENOENT)
    hwsock__run_reply(c, 0, rc);
  hwsock__run_target_done(&t);
}

/* What the kernel answers at once for this option on a socket like s (an
 * option it refuses, e.g. IPV6_V6ONLY on an AF_INET socket, fails at once
 * with its errno, not later when it is replayed): 0 or HWSOCK_E*. */
static int host_would_take(run_sock *s, int level, int name,
                           const uint8_t *val, socklen_t len) {
  if (s->family == AF_IPX)
    return 0;
  int k = socket(s->family, s->type | SOCK_CLOEXEC, s->proto);
  if (k < 0)
    return 0; /* cannot tell: the replay will */
  int rc = setsockopt(k, level, name, val, len) < 0 ? hwsock__run_err(errno)
                                                    : 0;
  close(k);
  return rc;
}

/* Remembers an option set before the decision (replacing an earlier value
 * of the same option). */
static int remember(run_sock *s, int level, int name, const uint8_t *val,
                    unsigned len) {
  int rc = 0;
  pthread_mutex_lock(&s->lock);
  unsigned i;
  for (i = 0; i < s->nopts; i++)
    if (s->opts[i].level == level && s->opts[i].name == name)
      break;
  if (i == s->nopts) {
    if (s->nopts == RUN_MAX_OPTS)
      rc = HWSOCK_ENOBUFS;
    else
      s->nopts++;
  }
  if (rc == 0) {
    s->opts[i].level = level;
    s->opts[i].name = name;
    s->opts[i].len = len;
    memcpy(s->opts[i].val, val, len);
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
}

void hwsock__run_on_setsockopt(run_call *c) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  int level = (int)c->n.data.args[1], name = (int)c->n.data.args[2];
  uint64_t optval = c->n.data.args[3], optlen = c->n.data.args[4];
  if (!hwsock__run_target_ours(c, fd, &t))
    return;
  run_sock *s = t.s;
  uint8_t val[RUN_MAX_OPTLEN];
  int rc = 0;
  const opt_map *m = find_opt(level, name);
  char lb[64], on[48];
  hwsock__run_label(s, lb, sizeof(lb));
  hwsock__run_optname(level, name, on, sizeof(on));
  if (level == SOL_SOCKET &&
      (name == SO_BINDTODEVICE || name == SO_BINDTOIFINDEX)) {
    /* the device chooses the host interface of an offloaded socket */
    hwsock__run_log("%s: option %s refused (EOPNOTSUPP): hwsock-run sockets "
                    "cannot be bound to a host interface", lb, on);
    rc = HWSOCK_EOPNOTSUPP;
  } else if ((int)optlen < 0 || optlen > RUN_MAX_OPTLEN) {
    rc = m || local_opt(level, name) ? HWSOCK_EINVAL : HWSOCK_ENOPROTOOPT;
    if ((int)optlen > 0)
      hwsock__run_log("%s: option %s refused (%s): value of %d bytes, "
                      "RUN_MAX_OPTLEN is %u (raise it in "
                      "guest-driver/run/run.h)", lb, on,
                      rc == HWSOCK_EINVAL ? "EINVAL" : "ENOPROTOOPT",
                      (int)optlen,
                      RUN_MAX_OPTLEN);
  } else {
    rc = hwsock__run_read(c, optval, val, (size_t)optlen);
  }
  if (rc == HWSOCK_ENOENT)
    goto out;
  if (rc < 0) {
    /* fall through to the reply */
  } else if (local_opt(level, name)) {
    rc = setsockopt(t.fd, level, name, val, (socklen_t)optlen) < 0
             ? hwsock__run_err(errno)
             : 0;
    if (rc == 0 && !decided(s))
      remember(s, level, name, val, (unsigned)optlen);
  } else if (!decided(s) || stream_hint(s, level, name)) {
    uint8_t w[8];
    int wl = m ? to_wire(m, val, (unsigned)optlen, w) : 0;
    if (wl < 0)
      rc = wl; /* EINVAL: too short; ENOPROTOOPT: get only */
    else if ((rc = host_would_take(s, level, name, val,
                                   (socklen_t)optlen)) == 0 &&
             (rc = remember(s, level, name, val, (unsigned)optlen)) < 0)
      hwsock__run_log("%s: option %s refused (ENOBUFS): RUN_MAX_OPTS (%u) "
                      "options remembered before the decision (raise it in "
                      "guest-driver/run/run.h)", lb, on, RUN_MAX_OPTS);
  } else if (m) {
    uint8_t w[8];
    int wl = to_wire(m, val, (unsigned)optlen, w);
    rc = wl < 0 ? wl
                : hwsock__run_dev_err(hwsock_guest_setsockopt(
                      hwsock__run.g, s->id, m->wlevel, m->wname, w,
                      (size_t)wl));
  } else {
    rc = HWSOCK_ENOPROTOOPT;
    hwsock__run_log("%s: option %s refused (ENOPROTOOPT): not in the "
                    "device's allow-list (docs/HWSOCK-RUN.md)", lb, on);
  }
  hwsock__run_reply(c, 0, rc);
out:
  hwsock__run_target_done(&t);
}

/* ---- names ------------------------------------------------------------------ */

void hwsock__run_on_getname(run_call *c, int peer) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  if (!hwsock__run_target_ours(c, fd, &t))
    return;
  run_sock *s = t.s;
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc = 0;
  pthread_mutex_lock(&s->lock);
  int state = s->state, id = s->id, connected = s->connected;
  pthread_mutex_unlock(&s->lock);
  int has_peer = s->type == SOCK_STREAM ? state == RS_CONNECTED : connected;
  if (peer && !has_peer) {
    rc = HWSOCK_ENOTCONN;
  } else if (id < 0 || state == RS_UNDECIDED) {
    hwsock__run_sa_any(s->family, &ss, &sl);
  } else {
    char uri[HWSOCK_URI_MAX + 1];
    int err = hwsock_guest_getname(hwsock__run.g, id, peer, uri, sizeof(uri));
    if (err < 0)
      rc = hwsock__run_dev_err(err);
    else if (hwsock__run_uri_to_sa(uri, s->family, &ss, &sl) < 0)
      rc = HWSOCK_EPROTO;
    pthread_mutex_lock(&s->lock);
    if (rc == 0) { /* kept for when the device is gone */
      s->names[peer != 0] = ss;
      s->names_len[peer != 0] = sl;
    } else if (rc == HWSOCK_ENETDOWN && s->names_len[peer != 0] > 0) {
      ss = s->names[peer != 0]; /* the socket did not move since */
      sl = s->names_len[peer != 0];
      rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
  }
  if (rc == 0)
    rc = hwsock__run_put_sa(c, c->n.data.args[1], c->n.data.args[2], &ss, sl);
  if (rc != HWSOCK_ENOENT)
    hwsock__run_reply(c, 0, rc);
  hwsock__run_target_done(&t);
}
