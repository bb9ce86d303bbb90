/* What a notification's fd is (run.h: run_target) and what becomes of a
 * call on an fd that is not one of ours: the step every handler takes
 * first. It calls down only (the socket map, the remote process, the host
 * socket check, the unix receive path, the log), never a handler. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostsock.h"
#include "run.h"

int hwsock__run_target(run_call *c, int fd, run_target *t) {
  memset(t, 0, sizeof(*t));
  t->fd = -1;
  t->kind = RT_NONE;
  int ours = hwsock__run_getfd(c, fd);
  if (ours < 0) {
    t->err = ours;
    return ours;
  }
  t->fd = ours;
  struct stat st;
  if (fstat(ours, &st) < 0 || !S_ISSOCK(st.st_mode)) {
    t->kind = RT_OTHER;
    return 0;
  }
  t->s = hwsock__run_sock_find((uint64_t)st.st_ino, (uint64_t)st.st_dev);
  if (t->s) {
    t->kind = RT_OURS;
    if (t->s->prog_fd < 0) /* for log lines; set by socket() most often */
      t->s->prog_fd = fd;
    return 0;
  }
  int dom = 0;
  socklen_t l = sizeof(dom);
  if (getsockopt(ours, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 &&
      (dom == AF_INET || dom == AF_INET6)) {
    t->kind = RT_KERNEL_INET; /* declined earlier, or inherited */
    t->family = dom;
  } else {
    t->kind = RT_OTHER;
  }
  return 0;
}

void hwsock__run_target_done(run_target *t) {
  if (t->fd >= 0)
    close(t->fd);
  t->fd = -1;
  if (t->s)
    hwsock__run_sock_put(t->s);
  t->s = NULL;
}

void hwsock__run_pass(run_call *c, const run_target *t) {
  if (t->kind == RT_NONE && t->err == HWSOCK_ENOENT)
    return; /* the call went away */
  if (t->kind == RT_NONE && t->err < 0 && t->err != HWSOCK_EBADF) {
    hwsock__run_log("cannot inspect fd %d of pid %u: %s",
                    (int)c->n.data.args[0], (unsigned)c->n.pid,
                    strerror(hwsock__run_to_errno(t->err)));
    hwsock__run_reply(c, 0, t->err);
    return;
  }
  if (t->kind == RT_KERNEL_INET && hwsock__run.confine) {
    hwsock__run_log("deny: host INET socket under confinement");
    hwsock__run_reply(c, 0, HWSOCK_EACCES);
    return;
  }
  /* a declined (or inherited) socket: its later destinations are asked */
  if (t->kind == RT_KERNEL_INET && hwsock__run_host_check(c, t))
    return;
  /* confined: fds arriving over a unix socket are looked at first */
  if (hwsock__run_unix_recv(c, t))
    return;
  hwsock__run_continue(c);
}

int hwsock__run_target_ours(run_call *c, int fd, run_target *t) {
  if (hwsock__run_target(c, fd, t) == 0 && t->kind == RT_OURS)
    return 1;
  hwsock__run_pass(c, t);
  hwsock__run_target_done(t);
  return 0;
}

/* ---- a call on a connecting socket ------------------------------------------ */

int hwsock__run_wait_connect(run_call *c, run_sock *s, int timeout_ms) {
  int waited = 0;
  pthread_mutex_lock(&s->lock);
  while (s->state == RS_CONNECTING) {
    int slice = RUN_POLL_SLICE_MS;
    if (timeout_ms >= 0 && timeout_ms - waited < slice)
      slice = timeout_ms - waited;
    if (slice <= 0)
      break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)slice * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    waited += slice;
    /* a blocking wait ends at a signal (a nonblocking connect's short one
     * does not: it answers EINPROGRESS, never EINTR) */
    if (s->state == RS_CONNECTING &&
        (!hwsock__run_valid(c) ||
         (timeout_ms != RUN_NB_DECIDE_MS && hwsock__run_interrupted(c))))
      break; /* gone, or answered: the thread takes a signal */
  }
  int done = s->state != RS_CONNECTING;
  pthread_mutex_unlock(&s->lock);
  return done;
}

/* ---- calls that only look at their target ------------------------------------ */

/* sendmmsg and recvmmsg: trapped so that no call with an address reaches a
 * host INET socket unseen. On our placeholders they are plain I/O on the
 * socketpair (a destination there reaches only the pair, never the
 * network); on a host INET socket they are checked (sendmmsg) or refused
 * under confinement. */
static void on_mmsg(run_call *c) {
  run_target t;
  int fd = (int)c->n.data.args[0];
  if (hwsock__run_target(c, fd, &t) == 0 && t.kind == RT_OURS)
    hwsock__run_continue(c);
  else
    hwsock__run_pass(c, &t);
  hwsock__run_target_done(&t);
}

void hwsock__run_on_sendmmsg(run_call *c) { on_mmsg(c); }

void hwsock__run_on_recvmmsg(run_call *c) { on_mmsg(c); }
