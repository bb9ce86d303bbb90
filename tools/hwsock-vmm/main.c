/* hwsock-vmm: startup, the listening socket, signals and shutdown.
 *
 * Lifetime order matters in one place: the backend modules' code runs in
 * close callbacks of their libuv handles, so the modules are unloaded only
 * after the loop has run dry and been closed. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm.h"

static void on_listen_closed(uv_handle_t *h) {
  vmm *v = h->data;
  close(v->listen_fd);
  v->listen_fd = -1;
  if (!v->handed_over) /* else the new VMM listens on it */
    unlink(v->opt.listen_path);
}

static void on_signal_closed(uv_handle_t *h) { (void)h; }

static void on_timer_closed(uv_handle_t *h) { (void)h; }

/* Stops accepting, detaches every guest and lets the loop run dry. */
void vmm_stop(vmm *v, const char *why) {
  if (v->stopping)
    return;
  v->stopping = 1;
  if (v->listen_poll.data == NULL)
    return; /* before setup_loop (a failed --takeover): nothing to close */
  vmm_log(HWSOCK_LOG_INFO, "stopping: %s", why);
  uv_close((uv_handle_t *)&v->listen_poll, on_listen_closed);
  uv_close((uv_handle_t *)&v->listen_timer, on_timer_closed);
  vmm_control_stop(v);
  vmm_takeover_stop(v);
  while (v->guests != NULL)
    vmm_guest_detach(v->guests, HWSOCK_LOG_INFO, "the VMM is stopping");
  uv_close((uv_handle_t *)&v->sig_int, on_signal_closed);
  uv_close((uv_handle_t *)&v->sig_term, on_signal_closed);
}

void vmm_guest_gone(vmm *v) {
  if (v->opt.once)
    vmm_stop(v, "the guest detached (--once)");
}

static void on_signal(uv_signal_t *h, int signum) {
  vmm_stop(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_listen(uv_poll_t *h, int status, int events);

/* The backoff is over: watch the listening socket again (what waits in
 * its backlog is taken at once if fds are back). */
static void on_listen_timer(uv_timer_t *t) {
  vmm *v = t->data;
  if (!v->stopping)
    uv_poll_start(&v->listen_poll, UV_READABLE, on_listen);
}

/* accept() failed for want of fds (or memory): the connection stays in the
 * backlog and the socket stays readable, so retrying at once would spin.
 * Stop watching it for a while, doubling the pause while it lasts. */
static void listen_back_off(vmm *v, int err) {
  vmm_backoff_failed(&v->listen_backoff);
  uv_poll_stop(&v->listen_poll);
  uv_timer_start(&v->listen_timer, on_listen_timer,
                 v->listen_backoff.delay_ms, 0);
  vmm_log_limited(&v->listen_log, HWSOCK_LOG_ERROR,
                  "accept: %s: backing off %u ms (%u guests attached; "
                  "--vmm-sockets %u, %u host sockets held)",
                  strerror(err), v->listen_backoff.delay_ms, v->nguests,
                  v->quota.limit, v->quota.used);
}

static void on_listen(uv_poll_t *h, int status, int events) {
  vmm *v = h->data;
  if (status < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "listening socket: %s", uv_strerror(status));
    return;
  }
  /* Bounded, so that a burst of connections does not starve the guests
   * already attached; the rest are taken on the next turn. */
  for (int i = 0; i < 16 && !v->stopping; i++) {
    int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      v->listen_backoff.delay_ms = 0;
      vmm_guest_attach(v, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if (vmm_fd_shortage(errno)) {
      listen_back_off(v, errno);
      return;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      vmm_log_limited(&v->listen_log, HWSOCK_LOG_ERROR, "accept: %s",
                      strerror(errno));
    break;
  }
}

static int listen_on(vmm *v) {
  if (v->opt.takeover) /* the old VMM's listening socket, and its guests */
    return vmm_takeover_receive(v);
  v->listen_fd = vmm_listen_unix(&v->opt, v->opt.listen_path, SOCK_SEQPACKET);
  return v->listen_fd < 0 ? -1 : 0;
}

static int setup_loop(vmm *v) {
  int rc = uv_poll_init(&v->loop, &v->listen_poll, v->listen_fd);
  if (rc == 0)
    rc = uv_timer_init(&v->loop, &v->listen_timer);
  if (rc == 0) {
    v->listen_poll.data = v->listen_timer.data = v;
    rc = uv_poll_start(&v->listen_poll, UV_READABLE, on_listen);
  }
  if (rc == 0)
    rc = uv_signal_init(&v->loop, &v->sig_int);
  if (rc == 0)
    rc = uv_signal_init(&v->loop, &v->sig_term);
  if (rc == 0) {
    v->sig_int.data = v->sig_term.data = v;
    rc = uv_signal_start(&v->sig_int, on_signal, SIGINT);
  }
  if (rc == 0)
    rc = uv_signal_start(&v->sig_term, on_signal, SIGTERM);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "event loop: %s", uv_strerror(rc));
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static vmm v; /* static: zeroed, and reachable from every callback */
  int rc = vmm_parse_options(argc, argv, &v.opt);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  vmm_log_level = v.opt.verbose >= 2   ? HWSOCK_LOG_DEBUG
                  : v.opt.verbose == 1 ? HWSOCK_LOG_INFO
                                       : HWSOCK_LOG_ERROR;
  /* A guest hanging up mid-write must cost an EPIPE, not the process. */
  signal(SIGPIPE, SIG_IGN);
  /* The VMM holds the policy: no process of the same user may read or
   * write its memory (ptrace, process_vm_*, /proc/PID/mem) unless it has
   * CAP_SYS_PTRACE, which a confined hwsock-run program does not. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  v.listen_fd = -1;
  v.takeover_fd = -1;

  int status = 1;
  int want_control = v.opt.control_path == NULL || v.opt.control_path[0];
  if (vmm_control_path(&v) < 0 || vmm_ipx_setup(&v) < 0 ||
      vmm_identity_setup(&v) < 0 || vmm_load_policy(&v) < 0)
    goto out;
  if (vmm_limits_setup(&v) < 0 || vmm_load_backends(&v) < 0)
    goto out_backends;
  if ((rc = uv_loop_init(&v.loop)) < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "uv_loop_init: %s", uv_strerror(rc));
    goto out_backends;
  }
  if (vmm_open_capture(&v) < 0)
    goto out_loop;
  if (listen_on(&v) < 0)
    goto out_loop;
  if (setup_loop(&v) < 0 ||
      ((want_control || v.adopt_control) &&
       vmm_control_start(&v) < 0)) {
    /* Some handles may be half set up: leave them to the exit. */
    unlink(v.opt.listen_path);
    vmm_close_capture(&v);
    return 1;
  }
  vmm_log(HWSOCK_LOG_INFO, "listening on %s (%u MiB, %u queue%s per guest)",
          v.opt.listen_path, v.opt.mem_mib, v.opt.queues,
          v.opt.queues == 1 ? "" : "s");
  if (v.control != NULL)
    vmm_log(HWSOCK_LOG_INFO, "control socket %s", v.control_path);
  vmm_takeover_listen(&v); /* without it the VMM still serves */
  vmm_announce_ready(&v);
  uv_run(&v.loop, UV_RUN_DEFAULT);
  status = 0;

out_loop:
  /* Handles still open here would be a bug of ours or of a backend: run
   * the loop until they are closed rather than leak them. */
  while (uv_loop_close(&v.loop) == UV_EBUSY)
    uv_run(&v.loop, UV_RUN_DEFAULT);
  vmm_close_capture(&v);
out_backends:
  vmm_unload_backends(&v);
  hwsock_policy_free(v.policy);
out:
  vmm_ipx_free(&v);
  vmm_identity_clear(&v);
  return status;
}
