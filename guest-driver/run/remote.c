/* The program behind a notification: its memory (process_vm_readv/writev),
 * its fds (pidfd_getfd) and the replies (SECCOMP_IOCTL_NOTIF_*).
 *
 * Everything here treats the program as untrusted and possibly gone: a
 * notification whose thread died (or, on a kernel without
 * WAIT_KILLABLE_RECV, was interrupted by a signal) is no longer valid, and every ioctl then fails with ENOENT, which callers treat
 * as the normal end of the call (HWSOCK_ENOENT: like every function of
 * run/, these answer 0 or a run error, runerr.h; hwsock__run_reply is where
 * it becomes the program's errno). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "run.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

int hwsock__run_valid(const run_call *c) {
  uint64_t id = c->n.id;
  return ioctl(hwsock__run.notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hwsock__run_wait_readable(const run_call *c, int fd, int64_t *deadline) {
  if (*deadline == 0) {
    /* SO_RCVTIMEO of the program end (set there: sockopt.c local_opt),
     * which the kernel's blocking recvfrom/accept would honour: C clients
     * (resolvers, NTP) time out with it rather than with poll */
    struct timeval tv = {0, 0};
    socklen_t l = sizeof(tv);
    int64_t ms = getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) == 0
                     ? (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000
                     : 0;
    *deadline = ms > 0 ? now_ms() + ms : -1;
  }
  int slice = RUN_POLL_SLICE_MS;
  if (*deadline > 0) {
    int64_t left = *deadline - now_ms();
    if (left <= 0)
      return HWSOCK_EAGAIN;
    if (left < slice)
      slice = (int)left;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, slice) == 0 && hwsock__run_interrupted(c))
    return HWSOCK_ENOENT; /* answered: the thread takes a signal */
  return hwsock__run_valid(c) ? 0 : HWSOCK_ENOENT;
}

int hwsock__run_read(run_call *c, uint64_t addr, void *buf, size_t len) {
  if (len == 0)
    return 0;
  struct iovec local = {buf, len};
  struct iovec remote = {(void *)(uintptr_t)addr, len};
  ssize_t n = process_vm_readv((pid_t)c->n.pid, &local, 1, &remote, 1, 0);
  if (n != (ssize_t)len)
    return HWSOCK_EFAULT;
  /* the pid may have been reused by another process since the call */
  return hwsock__run_valid(c) ? 0 : HWSOCK_ENOENT;
}

int hwsock__run_write(run_call *c, uint64_t addr, const void *buf,
                      size_t len) {
  if (len == 0)
    return 0;
  if (!hwsock__run_valid(c))
    return HWSOCK_ENOENT;
  struct iovec local = {(void *)buf, len};
  struct iovec remote = {(void *)(uintptr_t)addr, len};
  ssize_t n = process_vm_writev((pid_t)c->n.pid, &local, 1, &remote, 1, 0);
  return n == (ssize_t)len ? 0 : HWSOCK_EFAULT;
}

/* The pid in a notification is the calling thread's; pidfd_open() wants a
 * thread-group leader unless PIDFD_THREAD (Linux 6.9) is given; before
 * that, the leader is found in /proc/TID/status (any thread's table of fds
 * is the process's). */
static pid_t tgid_of(pid_t tid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0)
    return -1;
  ssize_t n = read(f, buf, sizeof(buf) - 1);
  close(f);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  char *p = strstr(buf, "\nTgid:");
  return p ? (pid_t)strtol(p + 6, NULL, 10) : -1;
}

static int open_pidfd(run_call *c) {
  if (c->pidfd >= 0)
    return c->pidfd;
  pid_t pid = (pid_t)c->n.pid;
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0)
    fd = (int)syscall(SYS_pidfd_open, pid, PIDFD_THREAD);
  if (fd < 0) {
    pid_t leader = tgid_of(pid);
    if (leader > 0 && leader != pid)
      fd = (int)syscall(SYS_pidfd_open, leader, 0);
  }
  if (fd < 0)
    return hwsock__run_err(errno);
  c->pidfd = fd;
  return fd;
}

int hwsock__run_getfd(run_call *c, int fd) {
  if (fd < 0)
    return HWSOCK_EBADF;
  int pfd = open_pidfd(c);
  if (pfd < 0)
    return pfd;
  int ours = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
  if (ours < 0)
    return hwsock__run_err(errno);
  if (!hwsock__run_valid(c)) {
    close(ours);
    return HWSOCK_ENOENT;
  }
  return ours;
}

int hwsock__run_fd_cloexec(run_call *c, int fd) {
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%u/fdinfo/%d", (unsigned)c->n.pid, fd);
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0)
    return hwsock__run_err(errno);
  ssize_t n = read(f, buf, sizeof(buf) - 1);
  close(f);
  if (n <= 0)
    return HWSOCK_EIO;
  buf[n] = '\0';
  char *p = strstr(buf, "flags:");
  if (!p)
    return HWSOCK_EIO;
  unsigned long flags = strtoul(p + 6, NULL, 8); /* printed in octal */
  return (flags & O_CLOEXEC) ? 1 : 0;
}

/* The one place a run error becomes the program's errno (runerr.h). */
int hwsock__run_reply(run_call *c, int64_t val, int err) {
  assert(err <= 0 && err != RUN_ANSWERED); /* an errno here is a bug */
  struct seccomp_notif_resp r;
  memset(&r, 0, sizeof(r));
  r.id = c->n.id;
  r.val = err ? 0 : val;
  r.error = err ? -hwsock__run_to_errno(err) : 0;
  if (ioctl(hwsock__run.notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &r) < 0)
    return hwsock__run_err(errno);
  return 0;
}

int hwsock__run_continue(run_call *c) {
  struct seccomp_notif_resp r;
  memset(&r, 0, sizeof(r));
  r.id = c->n.id;
  r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  if (ioctl(hwsock__run.notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &r) < 0)
    return hwsock__run_err(errno);
  return 0;
}

int hwsock__run_addfd(run_call *c, int fd, int newfd, int cloexec, int send) {
  struct seccomp_notif_addfd a;
  memset(&a, 0, sizeof(a));
  a.id = c->n.id;
  a.srcfd = (uint32_t)fd;
  if (newfd >= 0) {
    a.flags |= SECCOMP_ADDFD_FLAG_SETFD;
    a.newfd = (uint32_t)newfd;
  }
  if (send)
    a.flags |= SECCOMP_ADDFD_FLAG_SEND;
  a.newfd_flags = cloexec ? O_CLOEXEC : 0;
  int r = ioctl(hwsock__run.notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
  return r < 0 ? hwsock__run_err(errno) : r;
}

void hwsock__run_call_done(run_call *c) {
  if (c->pidfd >= 0)
    close(c->pidfd);
  c->pidfd = -1;
}
