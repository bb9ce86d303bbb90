/* File descriptors: every host socket a guest's device opens is an fd of
 * this process, and so are each guest's own connection and eventfds, the
 * control clients and the capture. Left unbounded, one guest binding
 * sockets takes every fd: the other guests' connects fail with EMFILE and
 * new guests cannot attach (docs/EMBEDDING.md, "Limits").
 *
 * So: the soft RLIMIT_NOFILE is raised to the hard one at start; a
 * headroom is kept for what the VMM itself needs at --max-guests; the rest
 * is the VMM-wide host socket quota (--vmm-sockets), shared by every
 * guest's device (hwsock_quota), and each guest gets at most a quarter of
 * it, or --max-sockets if smaller (--guest-sockets). When fds run out
 * anyway (quotas set above the limit, another library's fds), accept()
 * failures back off instead of spinning on a listening socket that stays
 * readable, and their log lines are rate-limited. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "vmm.h"

#define VMM_MIN_HOST_SOCKETS 16u

int vmm_limits_setup(vmm *v) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    return -1;
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      vmm_log(HWSOCK_LOG_WARN, "raising the fd limit to %llu: %s",
              (unsigned long long)want, strerror(errno));
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  unsigned long long fds = rl.rlim_cur == RLIM_INFINITY
                               ? (unsigned long long)HWSOCK_MAX_SOCKETS_LIMIT
                               : (unsigned long long)rl.rlim_cur;
  unsigned long long reserve =
      VMM_FD_RESERVE +
      (unsigned long long)v->opt.max_guests *
          (VMM_FDS_PER_GUEST_BASE + 2u * v->opt.queues);
  unsigned long long room = fds > reserve ? fds - reserve : 0;
  if (room > HWSOCK_MAX_SOCKETS_LIMIT)
    room = HWSOCK_MAX_SOCKETS_LIMIT;
  unsigned vmm_socks = v->opt.vmm_sockets;
  if (vmm_socks == 0) {
    if (room < VMM_MIN_HOST_SOCKETS) {
      vmm_log(HWSOCK_LOG_ERROR,
              "the fd limit (%llu) leaves no room for host sockets: %llu are "
              "kept for --max-guests %u and the VMM itself; raise it "
              "(ulimit -n) or lower --max-guests",
              fds, reserve, v->opt.max_guests);
      return -1;
    }
    vmm_socks = (unsigned)room;
  } else if (vmm_socks > room) {
    vmm_log(HWSOCK_LOG_WARN,
            "--vmm-sockets %u is more than the fd limit (%llu) leaves "
            "(%llu): guests may run the VMM out of fds", vmm_socks, fds, room);
  }
  unsigned guest_socks = v->opt.guest_sockets;
  if (guest_socks == 0) {
    unsigned ids = v->opt.max_sockets ? v->opt.max_sockets
                                      : HWSOCK_DEFAULT_MAX_SOCKETS;
    guest_socks = vmm_socks / 4 > 0 ? vmm_socks / 4 : 1;
    if (guest_socks > ids)
      guest_socks = ids;
  }
  v->guest_sockets = guest_socks;
  v->quota.limit = vmm_socks;
  v->quota.used = 0;
  v->quota.hint = "hwsock-vmm --vmm-sockets N";
  vmm_log(HWSOCK_LOG_INFO,
          "fd limit %llu: host sockets at most %u per guest "
          "(--guest-sockets), %u in all (--vmm-sockets)",
          fds, guest_socks, vmm_socks);
  return 0;
}

int vmm_fd_shortage(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

void vmm_backoff_failed(vmm_backoff *b) {
  b->delay_ms = b->delay_ms == 0 ? VMM_BACKOFF_MIN_MS
                : b->delay_ms >= VMM_BACKOFF_MAX_MS / 2 ? VMM_BACKOFF_MAX_MS
                                                        : b->delay_ms * 2;
}

void vmm_log_limited(vmm_ratelog *r, int level, const char *fmt, ...) {
  unsigned held;
  if (!hwsock_ratelog_pass(r, uv_hrtime(), VMM_RATELOG_INTERVAL_NS, &held))
    return;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (held > 0)
    vmm_log(level, "%s (%u similar messages suppressed)", msg, held);
  else
    vmm_log(level, "%s", msg);
}
