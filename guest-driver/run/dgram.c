/* Calls with an address: sendto/sendmsg with a destination (the first one
 * on a UDP socket is a decision) and recvfrom/recvmsg asking for the
 * source of a datagram on an offloaded UDP socket. The payload crosses the
 * supervisor: it is copied once out of (or into) the program's memory. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "decide.h"
#include "hwsock/wire.h"
#include "run.h"
#include "srcq.h"

static int nonblocking(const run_target *t, int flags) {
  if (flags & MSG_DONTWAIT)
    return 1;
  int fl = fcntl(t->fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK);
}

/* ---- sending ---------------------------------------------------------------- */

/* Reads the program's sockaddr at (addr, alen) and makes it s's URI: 0,
 * HWSOCK_ENOENT (the call is gone: no reply), or HWSOCK_E* to reply with. */
static int dest_uri(run_call *c, run_sock *s, uint64_t addr, uint64_t alen,
                    char uri[HWSOCK_URI_MAX + 1]) {
  struct sockaddr_storage ss;
  if (alen > sizeof(ss) || alen < sizeof(sa_family_t))
    return HWSOCK_EINVAL;
  int rc = hwsock__run_read(c, addr, &ss, (size_t)alen);
  if (rc == 0)
    rc = hwsock__run_sa_to_uri(&ss, (size_t)alen, s->family, s->type, 0, uri,
                               HWSOCK_URI_MAX + 1);
  return rc;
}

/* Sends data (already copied out) to the sockaddr at (addr, alen). Replies
 * to the call in every case. */
static void send_with_addr(run_call *c, run_target *t, uint64_t addr,
                           uint64_t alen, const uint8_t *data, size_t n,
                           int flags) {
  run_sock *s = t->s;
  int fd = (int)c->n.data.args[0];
  if (s->type == SOCK_STREAM) {
    pthread_mutex_lock(&s->lock);
    int state = s->state;
    pthread_mutex_unlock(&s->lock);
    if ((flags & MSG_FASTOPEN) &&
        (state == RS_UNDECIDED || state == RS_BOUND)) {
      /* a connect that carries its first bytes (TCP fast open) */
      char uri[HWSOCK_URI_MAX + 1];
      int rc = dest_uri(c, s, addr, alen, uri);
      if (rc == HWSOCK_ENOENT)
        return;
      if (rc < 0)
        hwsock__run_reply(c, 0, rc);
      else
        hwsock__run_connect_with_data(c, t, uri, data, n, flags);
      return;
    }
    /* TCP ignores a destination once connected */
    if (state != RS_CONNECTED && state != RS_CONNECTING) {
      hwsock__run_reply(c, 0, HWSOCK_ENOTCONN);
      return;
    }
    int f = MSG_NOSIGNAL | (nonblocking(t, flags) ? MSG_DONTWAIT : 0);
    ssize_t w = send(t->fd, data, n, f);
    hwsock__run_reply(c, w < 0 ? 0 : w, w < 0 ? hwsock__run_err(errno) : 0);
    return;
  }
  int perr = hwsock__run_dgram_take_err(s, t->fd);
  if (perr) { /* the kernel fails the send with it, and sends nothing */
    hwsock__run_reply(c, 0, perr);
    return;
  }
  char uri[HWSOCK_URI_MAX + 1];
  int rc = dest_uri(c, s, addr, alen, uri);
  if (rc == HWSOCK_ENOENT)
    return;
  if (rc < 0) {
    hwsock__run_reply(c, 0, rc);
    return;
  }
  int fresh = s->id < 0;
  if ((rc = hwsock__run_open_device(s)) < 0) {
    hwsock__run_reply(c, 0, rc);
    return;
  }
  ssize_t w = hwsock_guest_sendto(hwsock__run.g, s->id, data, n, 0, uri);
  /* quiet: per-datagram failures of an offloaded socket are not logged */
  if (hwsock__run_device_failed(c, s, fd, fresh, w < 0 ? (int)w : 0,
                                "sendto", uri, 1))
    return;
  if (fresh) {
    hwsock__run_replay_opts(s);
    pthread_mutex_lock(&s->lock);
    s->state = RS_CONNECTED;
    pthread_mutex_unlock(&s->lock);
    hwsock__run_unwatch(s);
    hwsock__run_log("offload: fd %d (socket %d) sendto %s", fd, s->id,
                    uri);
    if ((rc = hwsock__run_pump_start(s)) < 0) {
      hwsock__run_reply(c, 0, rc);
      return;
    }
  }
  hwsock__run_reply(c, w, 0);
}

void hwsock__run_on_sendto(run_call *c) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  if (!hwsock__run_target_ours(c, fd, &t))
    return;
  uint64_t len = c->n.data.args[2];
  uint8_t *buf = NULL;
  if (len > RUN_MAX_DGRAM) {
    char lb[64];
    hwsock__run_log("%s: sendto of %llu bytes refused (EMSGSIZE): "
                    "RUN_MAX_DGRAM is %u", hwsock__run_label(t.s, lb,
                                                             sizeof(lb)),
                    (unsigned long long)len, RUN_MAX_DGRAM);
    hwsock__run_reply(c, 0, HWSOCK_EMSGSIZE);
  } else if (!(buf = malloc(len ? len : 1))) {
    hwsock__run_reply(c, 0, HWSOCK_ENOBUFS);
  } else {
    int rc = hwsock__run_read(c, c->n.data.args[1], buf, (size_t)len);
    if (rc == 0)
      send_with_addr(c, &t, c->n.data.args[4], c->n.data.args[5], buf,
                     (size_t)len, (int)c->n.data.args[3]);
    else if (rc != HWSOCK_ENOENT)
      hwsock__run_reply(c, 0, rc);
  }
  free(buf);
  hwsock__run_target_done(&t);
}

/* Reads the program's msghdr and its iovec array (bounded). */
static int read_msg(run_call *c, uint64_t p, struct msghdr *m,
                    struct iovec *iov) {
  int rc = hwsock__run_read(c, p, m, sizeof(*m));
  if (rc < 0)
    return rc;
  if (m->msg_iovlen > RUN_MAX_IOV) {
    hwsock__run_log("fd %d: %zu iovecs refused (EMSGSIZE): RUN_MAX_IOV is %u "
                    "(raise it in guest-driver/run/run.h)",
                    (int)c->n.data.args[0], (size_t)m->msg_iovlen,
                    RUN_MAX_IOV);
    return HWSOCK_EMSGSIZE;
  }
  return hwsock__run_read(c, (uint64_t)(uintptr_t)m->msg_iov, iov,
                          m->msg_iovlen * sizeof(*iov));
}

void hwsock__run_on_sendmsg(run_call *c) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  if (!hwsock__run_target_ours(c, fd, &t))
    return;
  struct msghdr m;
  struct iovec iov[RUN_MAX_IOV];
  uint8_t *buf = NULL;
  int rc = read_msg(c, c->n.data.args[1], &m, iov);
  if (rc == HWSOCK_ENOENT)
    goto out;
  if (rc == 0 && (m.msg_name == NULL || m.msg_namelen == 0)) {
    if (t.s->type != SOCK_STREAM) {
      int perr = hwsock__run_dgram_take_err(t.s, t.fd);
      pthread_mutex_lock(&t.s->lock);
      int connected = t.s->connected;
      pthread_mutex_unlock(&t.s->lock);
      if (perr || !connected) { /* as the kernel: nothing is sent */
        hwsock__run_reply(c, 0, perr ? perr : HWSOCK_EDESTADDRREQ);
        goto out;
      }
    }
    /* no address: plain I/O on the socketpair */
    hwsock__run_continue(c);
    goto out;
  }
  size_t total = 0;
  for (size_t i = 0; rc == 0 && i < m.msg_iovlen; i++) {
    if (iov[i].iov_len > RUN_MAX_DGRAM - total) {
      rc = HWSOCK_EMSGSIZE;
      hwsock__run_log("fd %d: sendmsg refused (EMSGSIZE): more than "
                      "RUN_MAX_DGRAM (%u) bytes", fd, RUN_MAX_DGRAM);
    }
    else
      total += iov[i].iov_len;
  }
  if (rc == 0 && !(buf = malloc(total ? total : 1)))
    rc = HWSOCK_ENOBUFS;
  size_t off = 0;
  for (size_t i = 0; rc == 0 && i < m.msg_iovlen; i++) {
    rc = hwsock__run_read(c, (uint64_t)(uintptr_t)iov[i].iov_base, buf + off,
                          iov[i].iov_len);
    off += iov[i].iov_len;
  }
  if (rc == 0)
    send_with_addr(c, &t, (uint64_t)(uintptr_t)m.msg_name, m.msg_namelen, buf,
                   total, (int)c->n.data.args[2]);
  else if (rc != HWSOCK_ENOENT)
    hwsock__run_reply(c, 0, rc);
out:
  free(buf);
  hwsock__run_target_done(&t);
}

/* ---- receiving ----------------------------------------------------------- */

/* One datagram from the program end, with its source. Returns its full
 * length, HWSOCK_EAGAIN, HWSOCK_ENOENT (call gone) or another HWSOCK_E*
 * (a pending error included). */
static ssize_t recv_one(run_call *c, run_target *t, int flags, uint8_t *buf,
                        run_src *src) {
  run_sock *s = t->s;
  int nb = nonblocking(t, flags);
  int peek = flags & MSG_PEEK;
  int64_t deadline = 0;
  for (;;) {
    pthread_mutex_lock(&s->rxlock);
    /* a pending error comes before queued data, as in the kernel */
    int perr = hwsock__run_dgram_take_err_locked(s, t->fd);
    if (perr) {
      pthread_mutex_unlock(&s->rxlock);
      return perr;
    }
    ssize_t n = recv(t->fd, buf, RUN_MAX_DGRAM, MSG_DONTWAIT | peek);
    int err = errno, stale = 0;
    if (n >= 0) {
      hwsock__run_src_match(s, buf, (size_t)n, peek, src);
      /* the marker of an error already reported (SO_ERROR, a send): not a
       * datagram; a peek consumes it too */
      stale = n == 0 && src->err != 0;
      if (stale && peek) {
        n = recv(t->fd, buf, 1, MSG_DONTWAIT);
        s->srcq_head = (s->srcq_head + 1) % RUN_MAX_SRCQ;
        s->srcq_n--;
      }
    }
    pthread_mutex_unlock(&s->rxlock);
    if (stale)
      continue;
    if (n >= 0)
      return n;
    if (err != EAGAIN && err != EINTR)
      return hwsock__run_err(err);
    if (nb)
      return HWSOCK_EAGAIN;
    int w = hwsock__run_wait_readable(c, t->fd, &deadline);
    if (w < 0)
      return w; /* SO_RCVTIMEO's EAGAIN, or gone */
  }
}

/* recv_one into a new buffer (*buf: the caller frees it): the datagram's
 * length, or negative when the call was answered with the error (or went
 * away). */
static ssize_t recv_answered(run_call *c, run_target *t, int flags,
                             uint8_t **buf, run_src *src) {
  *buf = malloc(RUN_MAX_DGRAM);
  ssize_t n = *buf ? recv_one(c, t, flags, *buf, src) : HWSOCK_ENOBUFS;
  if (n < 0 && n != HWSOCK_ENOENT)
    hwsock__run_reply(c, 0, (int)n);
  return n;
}

/* The source of a datagram, or the connected peer when none was recorded. */
static void source_of(run_sock *s, run_src *src, struct sockaddr_storage *ss,
                      socklen_t *sl) {
  if (src->salen > 0) {
    *ss = src->sa;
    *sl = src->salen;
    return;
  }
  char uri[HWSOCK_URI_MAX + 1];
  if (s->id >= 0 &&
      hwsock_guest_getname(hwsock__run.g, s->id, 1, uri, sizeof(uri)) >= 0 &&
      hwsock__run_uri_to_sa(uri, s->family, ss, sl) == 0)
    return;
  hwsock__run_sa_any(s->family, ss, sl);
}

static int dgram_target(run_call *c, run_target *t) {
  int fd = (int)c->n.data.args[0];
  if (hwsock__run_target(c, fd, t) < 0 || t->kind != RT_OURS ||
      t->s->type == SOCK_STREAM) {
    /* a stream has no datagram source: plain I/O (the host stack leaves
     * the address empty for TCP too) */
    hwsock__run_pass(c, t);
    hwsock__run_target_done(t);
    return 0;
  }
  return 1;
}

void hwsock__run_on_recvfrom(run_call *c) {
  run_target t;
  if (!dgram_target(c, &t))
    return;
  int flags = (int)c->n.data.args[3];
  uint64_t len = c->n.data.args[2];
  uint8_t *buf = NULL;
  run_src src;
  ssize_t n = recv_answered(c, &t, flags, &buf, &src);
  if (n < 0)
    goto out;
  size_t copy = (size_t)n < len ? (size_t)n : (size_t)len;
  struct sockaddr_storage ss;
  socklen_t sl;
  source_of(t.s, &src, &ss, &sl);
  int rc = hwsock__run_write(c, c->n.data.args[1], buf, copy);
  if (rc == 0)
    rc = hwsock__run_put_sa(c, c->n.data.args[4], c->n.data.args[5], &ss, sl);
  if (rc != HWSOCK_ENOENT)
    hwsock__run_reply(c, (flags & MSG_TRUNC) ? n : (ssize_t)copy, rc);
out:
  free(buf);
  hwsock__run_target_done(&t);
}

void hwsock__run_on_recvmsg(run_call *c) {
  run_target t;
  if (!dgram_target(c, &t))
    return;
  int flags = (int)c->n.data.args[2];
  uint64_t mp = c->n.data.args[1];
  struct msghdr m;
  struct iovec iov[RUN_MAX_IOV];
  uint8_t *buf = NULL;
  int rc = read_msg(c, mp, &m, iov);
  if (rc == HWSOCK_ENOENT)
    goto out;
  if (rc < 0) {
    hwsock__run_reply(c, 0, rc);
    goto out;
  }
  if (m.msg_name == NULL) {
    int perr = hwsock__run_dgram_take_err(t.s, t.fd);
    if (perr)
      hwsock__run_reply(c, 0, perr);
    else
      hwsock__run_continue(c); /* no source asked: plain I/O */
    goto out;
  }
  run_src src;
  ssize_t n = recv_answered(c, &t, flags, &buf, &src);
  if (n < 0)
    goto out;
  size_t off = 0;
  for (size_t i = 0; rc == 0 && i < m.msg_iovlen && off < (size_t)n; i++) {
    size_t k = iov[i].iov_len < (size_t)n - off ? iov[i].iov_len
                                                : (size_t)n - off;
    rc = hwsock__run_write(c, (uint64_t)(uintptr_t)iov[i].iov_base, buf + off,
                           k);
    off += k;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  source_of(t.s, &src, &ss, &sl);
  if (rc == 0) {
    socklen_t have = m.msg_namelen;
    rc = hwsock__run_write(c, (uint64_t)(uintptr_t)m.msg_name, &ss,
                           have < sl ? have : sl);
  }
  /* cut by the program's buffer, or on the way (the device's buffer) */
  int mflags = off < (size_t)n || src.trunc ? MSG_TRUNC : 0;
  size_t zero = 0;
  if (rc == 0)
    rc = hwsock__run_write(c, mp + offsetof(struct msghdr, msg_namelen), &sl,
                           sizeof(sl));
  if (rc == 0)
    rc = hwsock__run_write(c, mp + offsetof(struct msghdr, msg_controllen),
                           &zero, sizeof(zero));
  if (rc == 0)
    rc = hwsock__run_write(c, mp + offsetof(struct msghdr, msg_flags), &mflags,
                           sizeof(mflags));
  if (rc != HWSOCK_ENOENT)
    hwsock__run_reply(c, (flags & MSG_TRUNC) ? n : (ssize_t)off, rc);
out:
  free(buf);
  hwsock__run_target_done(&t);
}
