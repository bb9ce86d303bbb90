/* accept/accept4 on an offloaded listener. The listener's program end holds
 * one byte per connection the acceptor took from the device; accept
 * consumes a byte (so poll/epoll readiness stays exact), takes the oldest
 * connection, gives the program a new socketpair end for it (ADDFD+SEND,
 * honouring SOCK_NONBLOCK/SOCK_CLOEXEC) and writes the peer's address.
 * A byte 0 says the listener failed (the VMM went away): that accept
 * returns the failure (s->lerr, ENETDOWN), and so does every other accept
 * that was waiting then (threads blocked in accept on the listener: the
 * byte wakes only one of them); accepts that start after the byte was
 * taken find nothing ready. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run.h"

/* Takes one ready connection; 0, HWSOCK_EAGAIN (none and nonblocking),
 * HWSOCK_ENOENT (the call went away) or another HWSOCK_E*. */
static int take(run_call *c, run_target *t, int nb, run_accepted *out) {
  run_sock *s = t->s;
  pthread_mutex_lock(&s->lock);
  /* the failure was reported before the program made this call (not only
   * before a worker got to it: seccomp numbers calls in order) */
  int late = s->lerr_taken != 0 && c->n.id >= s->lerr_taken;
  pthread_mutex_unlock(&s->lock);
  int failed_seen = 0;
  int64_t deadline = 0;
  for (;;) {
    uint8_t token;
    ssize_t n = recv(t->fd, &token, 1, MSG_DONTWAIT);
    if (n == 1 && token == 0) { /* pump.c's listener_failed */
      pthread_mutex_lock(&s->lock);
      int lerr = s->lerr;
      if (s->lerr_taken == 0)
        s->lerr_taken =
            __atomic_load_n(&hwsock__run.notif_seen, __ATOMIC_ACQUIRE) + 1;
      pthread_mutex_unlock(&s->lock);
      return lerr < 0 ? lerr : HWSOCK_EINVAL;
    }
    if (n == 1) {
      int got = 0;
      pthread_mutex_lock(&s->lock);
      if (s->acq_n > 0) {
        *out = s->acq[s->acq_head];
        s->acq_head = (s->acq_head + 1) % RUN_MAX_PREACCEPT;
        s->acq_n--;
        got = 1;
        pthread_cond_broadcast(&s->cond); /* room for the acceptor */
      }
      pthread_mutex_unlock(&s->lock);
      if (got)
        return 0;
      continue; /* a token without a connection: cannot happen; skip it */
    }
    if (n == 0)
      return HWSOCK_EINVAL; /* the listener is gone */
    if (errno != EAGAIN && errno != EINTR)
      return hwsock__run_err(errno);
    if (!late) {
      /* The listener failed while this call waited and another took the
       * byte: this accept fails too. The byte is sent before lerr is set
       * (under the lock), so one more look finds it if nobody took it,
       * or a connection queued before it. */
      pthread_mutex_lock(&s->lock);
      int lerr = s->lerr;
      pthread_mutex_unlock(&s->lock);
      if (lerr < 0 && failed_seen)
        return lerr;
      if (lerr < 0) {
        failed_seen = 1;
        continue;
      }
    }
    if (nb)
      return HWSOCK_EAGAIN;
    int w = hwsock__run_wait_readable(c, t->fd, &deadline);
    if (w < 0)
      return w; /* SO_RCVTIMEO's EAGAIN, or gone */
  }
}

/* Puts a connection back at the head (the program's call went away after
 * we took it), with its token. */
static void put_back(run_sock *s, const run_accepted *a) {
  pthread_mutex_lock(&s->lock);
  if (s->acq_n < RUN_MAX_PREACCEPT && !s->dead) {
    s->acq_head = (s->acq_head + RUN_MAX_PREACCEPT - 1) % RUN_MAX_PREACCEPT;
    s->acq[s->acq_head] = *a;
    s->acq_n++;
    pthread_mutex_unlock(&s->lock);
    uint8_t token = 1;
    if (send(s->pfd, &token, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
      return;
    pthread_mutex_lock(&s->lock); /* cannot signal it: drop it again */
    s->acq_head = (s->acq_head + 1) % RUN_MAX_PREACCEPT;
    s->acq_n--;
  }
  pthread_mutex_unlock(&s->lock);
  hwsock_guest_close(hwsock__run.g, a->id);
  hwsock__run_offload_release();
}

/* The new connection's two ends: a socketpair, the supervisor's end in a
 * new socket entry *n (connected, device socket a->id), the program's end
 * in *prog_end (non-blocking when the call asked). 0 or HWSOCK_ENOBUFS
 * (nothing left over: the caller puts the connection back). */
static int new_pair(const run_sock *s, const run_accepted *a, int flags,
                    run_sock **n, int *prog_end) {
  int sv[2];
  struct stat st;
  *n = NULL;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return HWSOCK_ENOBUFS;
  if (((flags & SOCK_NONBLOCK) && fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0) ||
      fstat(sv[1], &st) < 0 ||
      !(*n = hwsock__run_sock_new(s->family, SOCK_STREAM, s->proto, sv[0],
                                  (uint64_t)st.st_ino, (uint64_t)st.st_dev))) {
    close(sv[0]);
    close(sv[1]);
    return HWSOCK_ENOBUFS;
  }
  (*n)->id = a->id;
  (*n)->state = RS_CONNECTED;
  *prog_end = sv[1];
  return 0;
}

/* Writes the peer's address for the call and installs the program's end as
 * the call's result (ADDFD+SEND answers it). Returns the program's new fd,
 * or HWSOCK_ENOENT (the call went away) or another HWSOCK_E* (its address
 * buffer is bad); prog_end is closed either way. */
static int hand_over(run_call *c, const run_sock *s, const run_accepted *a,
                     int prog_end, int flags) {
  uint64_t addr = c->n.data.args[1], lenp = c->n.data.args[2];
  struct sockaddr_storage ss;
  socklen_t sl;
  if (hwsock__run_uri_to_sa(a->peer, s->family, &ss, &sl) < 0)
    hwsock__run_sa_any(s->family, &ss, &sl);
  int rc = hwsock__run_put_sa(c, addr, lenp, &ss, sl);
  int newfd = rc < 0 ? rc : hwsock__run_addfd(c, prog_end, -1,
                                               !!(flags & SOCK_CLOEXEC), 1);
  close(prog_end);
  return newfd;
}

/* accept/accept4: take the oldest ready connection, make its two ends,
 * hand the program its end, start the pump. Anything that fails after the
 * take puts the connection back for the next accept. Without may_wait
 * (the supervisor's loop) nothing waits: a call that would (a blocking
 * accept with nothing ready) or that is not on one of our sockets is left
 * unanswered, and 0 returned; else 1: answered. */
static int accept_call(run_call *c, int is_accept4, int may_wait) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  int flags = is_accept4 ? (int)c->n.data.args[3] : 0;
  if (!may_wait) {
    if (hwsock__run_target(c, fd, &t) < 0 || t.kind != RT_OURS) {
      hwsock__run_target_done(&t);
      return 0;
    }
  } else if (!hwsock__run_target_ours(c, fd, &t)) {
    return 1;
  }
  run_sock *s = t.s;
  int rc;
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
    rc = HWSOCK_EINVAL;
    goto reply;
  }
  pthread_mutex_lock(&s->lock);
  int listening = s->state == RS_LISTENING || s->lerr < 0; /* failed: once */
  pthread_mutex_unlock(&s->lock);
  if (!listening) {
    rc = s->type == SOCK_STREAM ? HWSOCK_EINVAL : HWSOCK_EOPNOTSUPP;
    goto reply;
  }
  int fl = fcntl(t.fd, F_GETFL);
  int nb = fl >= 0 && (fl & O_NONBLOCK);
  run_accepted a;
  rc = take(c, &t, nb || !may_wait, &a);
  if (rc == HWSOCK_EAGAIN && !nb && !may_wait) {
    hwsock__run_target_done(&t);
    return 0; /* a blocking accept waits in a worker */
  }
  if (rc == HWSOCK_ENOENT)
    goto out;
  if (rc < 0)
    goto reply;

  run_sock *n;
  int prog_end;
  if ((rc = new_pair(s, &a, flags, &n, &prog_end)) < 0) {
    put_back(s, &a);
    goto reply;
  }
  int newfd = hand_over(c, s, &a, prog_end, flags);
  if (newfd < 0) {
    n->id = -1; /* the connection goes back, not with this entry */
    hwsock__run_sock_unlink(n);
    hwsock__run_sock_kill(n);
    hwsock__run_sock_put(n);
    put_back(s, &a);
    if (newfd == HWSOCK_ENOENT)
      goto out;
    rc = newfd;
    goto reply;
  }
  n->prog_fd = newfd;
  char lb[64];
  hwsock__run_log("offload: fd %d accepted %s as %s", fd, a.peer,
                  hwsock__run_label(n, lb, sizeof(lb)));
  if (hwsock__run_pump_start(n) < 0) {
    hwsock__run_sock_unlink(n);
    hwsock__run_sock_kill(n);
  }
  hwsock__run_sock_put(n);
  goto out; /* ADDFD+SEND answered the call */
reply:
  hwsock__run_reply(c, 0, rc < 0 ? rc : 0);
out:
  hwsock__run_target_done(&t);
  return 1;
}

void hwsock__run_on_accept(run_call *c, int is_accept4) {
  accept_call(c, is_accept4, 1);
}

int hwsock__run_try_accept(run_call *c, int is_accept4) {
  return accept_call(c, is_accept4, 0);
}
