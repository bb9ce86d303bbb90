/* socket, connect, bind, listen: where the device gets its first right of
 * refusal.
 *
 * socket(AF_INET/AF_INET6/AF_IPX) gives the program a placeholder: one end
 * of a unix socketpair (SOCK_STREAM for TCP, SOCK_SEQPACKET for datagrams),
 * installed with ADDFD+SEND so that it is the syscall's result. The first
 * connect/bind/listen/sendto asks the device:
 *   offload -> the placeholder simply becomes the data path (nothing to
 *              replace: epoll registrations and dups stay valid);
 *   decline -> a real kernel socket (same family, type, options, O_NONBLOCK
 *              and FD_CLOEXEC) replaces the placeholder (ADDFD+SETFD) and
 *              the call CONTINUEs in the host kernel; under confinement the
 *              call fails with EACCES instead;
 *   deny    -> the policy's errno.
 * Under confinement the program therefore never holds a host INET socket. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decide.h"
#include "hostsock.h"
#include "hwsock/wire.h"
#include "run.h"

/* SO_SNDTIMEO of the program end (set there: sockopt.c local_opt) in ms,
 * -1 when none: the kernel ends a blocking connect with EINPROGRESS when
 * it passes, and the handshake goes on (C clients bound connects so). */
static int sndtimeo_ms(int fd) {
  struct timeval tv = {0, 0};
  socklen_t l = sizeof(tv);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &l) < 0 ||
      (tv.tv_sec == 0 && tv.tv_usec == 0))
    return -1;
  long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
  return ms > 24LL * 3600 * 1000 ? -1 : (int)ms;
}

/* Errors of a TCP connect that come from the peer or the network after
 * the SYN left: a nonblocking connect reports them later (SO_ERROR), not
 * as its own answer. A policy's denial, a missing route or a bad address
 * the kernel answers at once, and so does hwsock-run. */
static int refused_later(int err) {
  return err == HWSOCK_ECONNREFUSED || err == HWSOCK_ETIMEDOUT ||
         err == HWSOCK_EHOSTUNREACH || err == HWSOCK_ECONNRESET;
}

static int nonblocking(const run_target *t) {
  int fl = fcntl(t->fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK);
}

/* ---- socket() ---------------------------------------------------------------- */

static int ipx_offered(void) {
  return (hwsock_guest_features(hwsock__run.g) & HWSOCK_F_IPX) != 0;
}

void hwsock__run_on_socket(run_call *c) {
  int domain = (int)c->n.data.args[0];
  int type = (int)c->n.data.args[1];
  int proto = (int)c->n.data.args[2];
  int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  int ok = 0;
  if (domain == AF_IPX) {
    ok = base == SOCK_DGRAM && proto >= 0 && proto <= 255;
    if (ok && !ipx_offered()) {
      hwsock__run_reply(c, 0, HWSOCK_EAFNOSUPPORT);
      return;
    }
  } else if (base == SOCK_STREAM) {
    ok = proto == 0 || proto == IPPROTO_TCP;
    proto = IPPROTO_TCP;
  } else if (base == SOCK_DGRAM) {
    ok = proto == 0 || proto == IPPROTO_UDP;
    proto = IPPROTO_UDP;
  }
  if (!ok) {
    /* raw, ICMP, SCTP, MPTCP, bad arguments: not ours. Arguments in
     * registers cannot change under us, so CONTINUE is exact. */
    if (hwsock__run.confine) {
      hwsock__run_log("deny: socket(%d, %d, %d) under confinement", domain,
                      type, (int)c->n.data.args[2]);
      hwsock__run_reply(c, 0, HWSOCK_EACCES);
    } else {
      hwsock__run_continue(c);
    }
    return;
  }
  int sv[2];
  int ptype = base == SOCK_STREAM ? SOCK_STREAM : SOCK_SEQPACKET;
  if (socketpair(AF_UNIX, ptype | SOCK_CLOEXEC, 0, sv) < 0) {
    hwsock__run_reply(c, 0, errno == EMFILE ? HWSOCK_EMFILE : HWSOCK_ENOBUFS);
    return;
  }
  struct stat st;
  if ((type & SOCK_NONBLOCK) && fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0)
    goto fail;
  if (fstat(sv[1], &st) < 0)
    goto fail;
  run_sock *s = hwsock__run_sock_new(domain, base, proto, sv[0],
                                     (uint64_t)st.st_ino, (uint64_t)st.st_dev);
  if (!s)
    goto fail;
  hwsock__run_watch(s);
  int fd = hwsock__run_addfd(c, sv[1], -1, !!(type & SOCK_CLOEXEC), 1);
  close(sv[1]);
  if (fd < 0) { /* the call went away: the placeholder goes with it */
    hwsock__run_sock_unlink(s);
    hwsock__run_sock_kill(s);
  } else {
    s->prog_fd = fd; /* for log lines */
  }
  hwsock__run_sock_put(s);
  return;
fail:
  close(sv[0]);
  close(sv[1]);
  hwsock__run_reply(c, 0, HWSOCK_ENOBUFS);
}

/* ---- shared steps ------------------------------------------------------------- */

int hwsock__run_open_device(run_sock *s) {
  if (s->id >= 0)
    return 0;
  if (hwsock__run.device_down)
    return HWSOCK_ENETDOWN;
  int rc = hwsock__run_offload_reserve();
  if (rc < 0)
    return rc;
  unsigned fam = s->family == AF_INET    ? HWSOCK_AF_INET
                 : s->family == AF_INET6 ? HWSOCK_AF_INET6
                                         : HWSOCK_AF_IPX;
  unsigned type = s->type == SOCK_STREAM ? HWSOCK_SOCK_STREAM
                                         : HWSOCK_SOCK_DGRAM;
  int id = hwsock_guest_socket(hwsock__run.g, fam, type);
  if (id < 0) {
    hwsock__run_offload_release();
    if (id == HWSOCK_ECONNRESET || id == HWSOCK_ENEEDSRESET) {
      hwsock__run.device_down = 1; /* OPEN has no peer to reset it */
      hwsock__run_device_gone();
      return HWSOCK_ENETDOWN;
    }
    return id;
  }
  pthread_mutex_lock(&s->lock);
  s->id = id;
  s->id_shut = 0;
  s->down_done = 0;
  pthread_mutex_unlock(&s->lock);
  /* options the program set so far go with the decision, applied before
   * the device's bind or connect (SO_REUSEADDR before bind) */
  hwsock__run_preset_opts(s);
  return 0;
}

/* Gives back the device socket of an entry the device did not take (or
 * whose connect failed): the next attempt opens a new one. */
void hwsock__run_drop_device(run_sock *s) {
  int id = -1;
  pthread_mutex_lock(&s->lock);
  id = s->id;
  s->id = -1;
  pthread_mutex_unlock(&s->lock);
  if (id >= 0) {
    hwsock_guest_close(hwsock__run.g, id);
    hwsock__run_offload_release();
  }
}

void hwsock__run_decline(run_call *c, run_sock *s, int prog_fd) {
  hwsock__run_drop_device(s);
  if (hwsock__run.confine) {
    hwsock__run_log("decline -> EACCES (confined)");
    hwsock__run_reply(c, 0, HWSOCK_EACCES);
    return;
  }
  /* a host socket like the one the program asked for, with its options */
  int k = socket(s->family, s->type | SOCK_CLOEXEC, s->proto);
  if (k < 0) {
    hwsock__run_reply(c, 0, hwsock__run_err(errno));
    return;
  }
  pthread_mutex_lock(&s->lock);
  for (unsigned i = 0; i < s->nopts; i++)
    setsockopt(k, s->opts[i].level, s->opts[i].name, s->opts[i].val,
               s->opts[i].len);
  int wild = s->wild_bound;
  pthread_mutex_unlock(&s->lock);
  if (wild) { /* the program's bind(wildcard, 0), after its options */
    struct sockaddr_storage any;
    socklen_t alen;
    hwsock__run_sa_any(s->family, &any, &alen);
    if (bind(k, (struct sockaddr *)&any, alen) < 0) {
      int e = hwsock__run_err(errno);
      close(k);
      hwsock__run_reply(c, 0, e);
      return;
    }
  }
  int ours = hwsock__run_getfd(c, prog_fd);
  int fl = ours >= 0 ? fcntl(ours, F_GETFL) : -1;
  if (ours >= 0)
    close(ours);
  if (fl >= 0 && (fl & O_NONBLOCK))
    fcntl(k, F_SETFL, O_NONBLOCK);
  int cloexec = hwsock__run_fd_cloexec(c, prog_fd);
  int rc = hwsock__run_addfd(c, k, prog_fd, cloexec > 0, 0);
  close(k);
  if (rc < 0)
    return; /* the call is gone */
  hwsock__run_sock_unlink(s);
  hwsock__run_unwatch(s);
  hwsock__run_sock_kill(s);
  hwsock__run_log("decline: fd %d continues on the host stack", prog_fd);
  /* The kernel re-reads the call's arguments: the documented TOCTOU gap
   * that confinement closes. */
  hwsock__run_continue(c);
}

int hwsock__run_device_failed(run_call *c, run_sock *s, int fd, int fresh,
                              int err, const char *op, const char *uri,
                              int quiet) {
  if (err >= 0)
    return 0;
  if (err == HWSOCK_EDECLINED && fresh) {
    hwsock__run_decline(c, s, fd);
    return 1;
  }
  if (fresh)
    hwsock__run_drop_device(s);
  if (!quiet || fresh || err == HWSOCK_EACCES)
    hwsock__run_log("%s: fd %d %s %s: %s",
                    err == HWSOCK_EACCES ? "deny" : "fail", fd, op, uri,
                    hwsock_strerror(err));
  hwsock__run_reply(c, 0, err == HWSOCK_EDECLINED ? HWSOCK_EACCES
                                                  : hwsock__run_dev_err(err));
  return 1;
}

/* Reads the call's sockaddr once and converts it for the entry. */
static int read_uri(run_call *c, run_sock *s, uint64_t addr, uint64_t len,
                    unsigned flags, char *uri, size_t cap, int *unspec) {
  struct sockaddr_storage ss;
  *unspec = 0;
  if (len > sizeof(ss) || len < sizeof(sa_family_t))
    return HWSOCK_EINVAL;
  int rc = hwsock__run_read(c, addr, &ss, (size_t)len);
  if (rc < 0)
    return rc;
  if (ss.ss_family == AF_UNSPEC) {
    *unspec = 1;
    return 0;
  }
  return hwsock__run_sa_to_uri(&ss, (size_t)len, s->family, s->type, flags,
                               uri, cap);
}

/* ---- connect ------------------------------------------------------------------- */

/* data/n: the bytes of a sendto(MSG_FASTOPEN) (flags: its flags), written
 * once connected; NULL for connect(2). */
static void connect_stream(run_call *c, run_target *t, const char *uri,
                           const uint8_t *data, size_t n, int flags) {
  run_sock *s = t->s;
  int fd = (int)c->n.data.args[0];
  int rc = hwsock__run_open_device(s);
  if (rc < 0) {
    hwsock__run_reply(c, 0, rc);
    return;
  }
  pthread_mutex_lock(&s->lock);
  s->state = RS_CONNECTING;
  s->conn_waiter = 1;
  pthread_mutex_unlock(&s->lock);
  if ((rc = hwsock__run_connect_start(s, uri)) < 0) {
    pthread_mutex_lock(&s->lock);
    s->state = RS_UNDECIDED;
    s->conn_waiter = 0;
    pthread_mutex_unlock(&s->lock);
    hwsock__run_drop_device(s);
    hwsock__run_reply(c, 0, rc);
    return;
  }
  int nb = nonblocking(t);
  hwsock__run_wait_connect(c, s, nb ? RUN_NB_DECIDE_MS : sndtimeo_ms(t->fd));
  pthread_mutex_lock(&s->lock);
  s->conn_waiter = 0;
  int state = s->state, err = s->conn_err;
  pthread_mutex_unlock(&s->lock);
  if (state == RS_CONNECTING) {
    /* still connecting: offloaded, finishing in the background */
    hwsock__run_log("offload: fd %d (socket %d) connect %s (in progress)", fd,
                    s->id, uri);
    hwsock__run_reply(c, 0, HWSOCK_EINPROGRESS);
    return;
  }
  if (err == 0 && data) {
    hwsock__run_log("offload: fd %d (socket %d) connect %s (sendto with "
                    "MSG_FASTOPEN)", fd, s->id, uri);
    int f = MSG_NOSIGNAL | ((flags & MSG_DONTWAIT) || nb ? MSG_DONTWAIT : 0);
    ssize_t w = send(t->fd, data, n, f);
    hwsock__run_reply(c, w < 0 ? 0 : w, w < 0 ? hwsock__run_err(errno) : 0);
  } else if (err == 0) {
    hwsock__run_log("offload: fd %d (socket %d) connect %s", fd, s->id,
                    uri);
    hwsock__run_reply(c, 0, 0);
  } else if (err == HWSOCK_EDECLINED) {
    hwsock__run_decline(c, s, fd);
  } else if (nb && refused_later(err)) {
    /* The kernel answers a nonblocking connect before any reply of the
     * peer, even on loopback: a refusal (or a timeout) is SO_ERROR after
     * EINPROGRESS, and the program's poll/SO_ERROR loop expects it so. */
    hwsock__run_log("fail: fd %d connect %s: %s (reported by SO_ERROR)", fd,
                    uri, hwsock_strerror(err));
    pthread_mutex_lock(&s->lock);
    if (s->state == RS_UNDECIDED)
      s->so_error = hwsock__run_dev_err(err);
    pthread_mutex_unlock(&s->lock);
    hwsock__run_reply(c, 0, HWSOCK_EINPROGRESS);
  } else {
    hwsock__run_log("%s: fd %d connect %s: %s",
                    err == HWSOCK_EACCES || err == HWSOCK_EPERM ? "deny"
                                                                : "fail",
                    fd, uri, hwsock_strerror(err));
    hwsock__run_reply(c, 0, hwsock__run_dev_err(err));
  }
}

/* UDP/IPX connect: immediate on the device. */
static void connect_dgram(run_call *c, run_target *t, const char *uri) {
  run_sock *s = t->s;
  int fd = (int)c->n.data.args[0];
  int fresh = s->id < 0;
  int rc = hwsock__run_open_device(s);
  if (rc < 0) {
    hwsock__run_reply(c, 0, rc);
    return;
  }
  int err = hwsock_guest_connect(hwsock__run.g, s->id, uri);
  if (hwsock__run_device_failed(c, s, fd, fresh, err, "connect", uri, 0))
    return;
  if (fresh)
    hwsock__run_replay_opts(s);
  pthread_mutex_lock(&s->lock);
  s->connected = 1;
  int start = s->state == RS_UNDECIDED || s->state == RS_BOUND;
  s->state = RS_CONNECTED;
  pthread_mutex_unlock(&s->lock);
  if (start) {
    hwsock__run_unwatch(s);
    if ((rc = hwsock__run_pump_start(s)) < 0) {
      hwsock__run_reply(c, 0, rc);
      return;
    }
  }
  hwsock__run_log("offload: fd %d (socket %d) connect %s", fd, s->id, uri);
  hwsock__run_reply(c, 0, 0);
}

/* connect(2) on a TCP socket whose connect is in progress. A blocking one
 * waits for it, as the kernel's does: the call the kernel restarts after a
 * signal handler with SA_RESTART (the first was answered when the signal
 * came, sigpend.c) is this; before, it failed with EALREADY at once.
 * Nonblocking: EALREADY. */
static void connect_again(run_call *c, run_target *t) {
  run_sock *s = t->s;
  if (nonblocking(t)) {
    hwsock__run_reply(c, 0, HWSOCK_EALREADY);
    return;
  }
  pthread_mutex_lock(&s->lock);
  s->conn_waiter = 1;
  pthread_mutex_unlock(&s->lock);
  int done = hwsock__run_wait_connect(c, s, sndtimeo_ms(t->fd));
  pthread_mutex_lock(&s->lock);
  s->conn_waiter = 0;
  int state = s->state, err = s->conn_err, pending = s->so_error;
  if (done && state != RS_CONNECTED)
    s->so_error = 0; /* reported here */
  pthread_mutex_unlock(&s->lock);
  if (!hwsock__run_valid(c))
    return; /* gone, or answered: its thread takes a signal */
  if (!done) /* SO_SNDTIMEO passed: the restarted call's own error */
    hwsock__run_reply(c, 0, HWSOCK_EALREADY);
  else if (state == RS_CONNECTED)
    hwsock__run_reply(c, 0, 0);
  else if (pending)
    hwsock__run_reply(c, 0, pending);
  else
    hwsock__run_reply(c, 0, err == HWSOCK_EDECLINED || err == 0
                                ? HWSOCK_ECONNREFUSED
                                : hwsock__run_dev_err(err));
}

void hwsock__run_connect_with_data(run_call *c, run_target *t, const char *uri,
                                   const uint8_t *data, size_t n, int flags) {
  connect_stream(c, t, uri, data, n, flags);
}

void hwsock__run_on_connect(run_call *c) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  if (!hwsock__run_target_ours(c, fd, &t))
    return;
  run_sock *s = t.s;
  char uri[HWSOCK_URI_MAX + 1];
  int unspec;
  int rc = read_uri(c, s, c->n.data.args[1], c->n.data.args[2], 0, uri,
                    sizeof(uri), &unspec);
  if (rc == HWSOCK_ENOENT)
    goto out;
  pthread_mutex_lock(&s->lock);
  int state = s->state, so_error = s->so_error;
  if (state == RS_UNDECIDED && so_error)
    s->so_error = 0; /* a second connect after an async failure reports it */
  pthread_mutex_unlock(&s->lock);
  if (rc < 0) {
    hwsock__run_reply(c, 0, rc);
  } else if (unspec) {
    /* AF_UNSPEC dissolves an association: a no-op before a decision */
    hwsock__run_reply(c, 0, state == RS_UNDECIDED ? 0 : HWSOCK_EOPNOTSUPP);
  } else if (s->type == SOCK_STREAM) {
    if (state == RS_CONNECTING)
      connect_again(c, &t);
    else if (state == RS_CONNECTED || state == RS_LISTENING)
      hwsock__run_reply(c, 0, HWSOCK_EISCONN);
    else if (state == RS_UNDECIDED && so_error)
      hwsock__run_reply(c, 0, so_error);
    else if (state == RS_UNDECIDED || state == RS_BOUND)
      connect_stream(c, &t, uri, NULL, 0, 0);
    else
      hwsock__run_reply(c, 0, HWSOCK_ECONNABORTED);
  } else {
    if (state == RS_UNDECIDED || state == RS_BOUND || state == RS_CONNECTED)
      connect_dgram(c, &t, uri);
    else
      hwsock__run_reply(c, 0, HWSOCK_ENETDOWN);
  }
out:
  hwsock__run_target_done(&t);
}

/* ---- bind / listen ---------------------------------------------------------- */

/* bind(0.0.0.0:0) or bind([::]:0): what resolvers and remote shells do
 * before connect (a source port, no address). Asked of the device as a
 * bind, it is an inbound wildcard, which a loopback-only policy denies and
 * the built-in one declines, so the connection would never be offloaded.
 * It is part of the connect: the entry remembers it and stays undecided;
 * the first connect or sendto decides (an offloaded device socket gets its
 * ephemeral port at the connect, as the host would; a declined host socket
 * gets the bind replayed first); listen asks about exactly this address. */
static int wildcard_ephemeral(const run_sock *s, const char *uri) {
  if (s->family != AF_INET && s->family != AF_INET6)
    return 0;
  hwsock_addr a;
  if (hwsock_uri_parse(uri, strlen(uri), HWSOCK_URI_ALLOW_PORT0, &a, NULL) <
          0 ||
      a.port != 0 || a.zone[0] != '\0')
    return 0;
  size_t n = a.family == HWSOCK_AF_INET ? 4u : 16u;
  for (size_t i = 0; i < n; i++)
    if (a.u.v6[i] != 0)
      return 0;
  return 1;
}

/* Binds an undecided entry on the device. Returns 0 (offloaded), the
 * RUN_ANSWERED marker (declined: handled), or HWSOCK_E*. */
static int bind_device(run_call *c, run_sock *s, int fd, const char *uri) {
  int rc = hwsock__run_open_device(s);
  if (rc < 0)
    return rc;
  int err = hwsock_guest_bind(hwsock__run.g, s->id, uri);
  if (hwsock__run_device_failed(c, s, fd, 1, err, "bind", uri, 0))
    return RUN_ANSWERED; /* bind is the entry's first device call */
  hwsock__run_replay_opts(s);
  hwsock__run_log("offload: fd %d (socket %d) bind %s", fd, s->id, uri);
  pthread_mutex_lock(&s->lock);
  s->state = s->type == SOCK_STREAM ? RS_BOUND : RS_CONNECTED;
  pthread_mutex_unlock(&s->lock);
  if (s->type != SOCK_STREAM) { /* datagrams may arrive from now on */
    hwsock__run_unwatch(s);
    return hwsock__run_pump_start(s);
  }
  return 0;
}

void hwsock__run_on_bind(run_call *c) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  if (!hwsock__run_target_ours(c, fd, &t))
    return;
  run_sock *s = t.s;
  char uri[HWSOCK_URI_MAX + 1];
  int unspec;
  int rc = read_uri(c, s, c->n.data.args[1], c->n.data.args[2],
                    HWSOCK_URI_ALLOW_PORT0, uri, sizeof(uri), &unspec);
  if (rc == HWSOCK_ENOENT)
    goto out;
  if (rc == 0 && unspec)
    rc = HWSOCK_EAFNOSUPPORT;
  if (rc == 0 && (s->state != RS_UNDECIDED || s->id >= 0 || s->wild_bound))
    rc = HWSOCK_EINVAL; /* already bound, connected or decided */
  if (rc == 0 && wildcard_ephemeral(s, uri)) {
    pthread_mutex_lock(&s->lock);
    s->wild_bound = 1;
    pthread_mutex_unlock(&s->lock);
    hwsock__run_log("bind: fd %d %s: decided at its connect or sendto", fd,
                    uri);
  } else if (rc == 0) {
    rc = bind_device(c, s, fd, uri);
  }
  if (rc != RUN_ANSWERED)
    hwsock__run_reply(c, 0, rc < 0 ? rc : 0);
out:
  hwsock__run_target_done(&t);
}

void hwsock__run_on_listen(run_call *c) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  int backlog = (int)c->n.data.args[1];
  if (!hwsock__run_target_ours(c, fd, &t))
    return;
  run_sock *s = t.s;
  int rc = 0;
  if (s->type != SOCK_STREAM) {
    rc = HWSOCK_EOPNOTSUPP;
  } else if (s->state == RS_UNDECIDED) {
    /* listen() without bind(): the host binds an ephemeral port on the
     * unspecified address; ask the device about exactly that */
    const char *any =
        s->family == AF_INET6 ? "tcp6://[::]:0" : "tcp://0.0.0.0:0";
    rc = bind_device(c, s, fd, any);
  } else if (s->state != RS_BOUND && s->state != RS_LISTENING) {
    rc = HWSOCK_EINVAL;
  }
  if (rc == RUN_ANSWERED)
    goto out;
  if (rc == 0) {
    int err = hwsock_guest_listen(hwsock__run.g, s->id, backlog);
    if (err < 0) {
      rc = hwsock__run_dev_err(err);
    } else if (s->state != RS_LISTENING) {
      pthread_mutex_lock(&s->lock);
      s->state = RS_LISTENING;
      pthread_mutex_unlock(&s->lock);
      rc = hwsock__run_acceptor_start(s);
      hwsock__run_log("offload: fd %d (socket %d) listen", fd, s->id);
    }
  }
  hwsock__run_reply(c, 0, rc < 0 ? rc : 0);
out:
  hwsock__run_target_done(&t);
}
