/* A signal for a program thread that waits in a call the supervisor took.
 *
 * The filter has SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (filter.c): once
 * the supervisor received a call, only a fatal signal cancels it, so a
 * call it carries out is never cancelled halfway (a datagram sent, then
 * sent again by the kernel's restart; a datagram taken, then lost with the
 * reply). In exchange the kernel no longer ends a *blocking* wait at a
 * signal: the supervisor does. Each slice of a wait it makes on the
 * program's behalf (remote.c hwsock__run_wait_readable, target.c
 * hwsock__run_wait_connect) asks whether the thread has a signal to take,
 * and if so answers -ERESTARTSYS, the value the kernel's own interrupted
 * waits return: when the thread takes the signal the kernel turns it into
 * a restart of the call (SA_RESTART, or a stop signal and SIGCONT) or into
 * EINTR, exactly as for a native blocking accept/recvfrom/connect. A call
 * that never waits natively (getsockopt SO_ERROR, which here waits for a
 * background connect) gets -ERESTARTNOINTR instead: the handler runs, the
 * call restarts, and the program never sees an EINTR it does not expect.
 *
 * Either must only be answered when the thread will take a signal on its
 * way out (otherwise the program would see errno 512): a signal sent to
 * the thread that it does not block always is; a process-wide one (kill,
 * ITIMER_REAL, a terminal's ^C) when the thread is the process's only one
 * or its main thread, which the kernel picks first for such a signal when
 * it does not block it (complete_signal; a python3 program's main thread
 * blocked in accept while other threads serve). Another thread may take
 * one otherwise, and this call then waits on, as before. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "run.h"

/* The kernel's restart codes (include/linux/errno.h; not in the uapi). */
#define RUN_ERESTARTSYS 512
#define RUN_ERESTARTNOINTR 513

/* The value after "\nName:" in the status text (0 when absent). */
static unsigned long long field(const char *text, const char *name,
                                int base) {
  const char *p = strstr(text, name);
  return p ? strtoull(p + strlen(name), NULL, base) : 0;
}

enum { SIG_NONE, SIG_OURS, SIG_SHARED };

/* A group stop under way (SIGSTOP, ^Z): the main thread has taken the
 * stop signal and stopped, and every other thread is asked to stop too,
 * which a thread in a call the supervisor took does only once the call is
 * answered (the kernel sets its TIF_SIGPENDING; the answer restarts the
 * call after SIGCONT). Without this a program stopped only in part and
 * its shell waited. Read from the main thread's /proc/TGID/stat. */
static int group_stopping(unsigned long long tgid) {
  char path[64], text[512];
  snprintf(path, sizeof(path), "/proc/%llu/stat", tgid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0)
    return 0;
  text[n] = '\0';
  const char *p = strrchr(text, ')'); /* after the command name */
  return p && p[1] == ' ' && p[2] == 'T';
}

/* Whether thread tid has a signal to take when its call returns: SIG_OURS
 * surely, SIG_SHARED a process-wide one that the main thread of a process
 * with several would take (unless the kernel gave it to another). One
 * read of /proc/TID/status: every blocked call does this each slice. */
static int signal_to_take(pid_t tid) {
  char path[64], text[4096];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return SIG_NONE;
  ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0)
    return SIG_NONE;
  text[n] = '\0';
  unsigned long long pnd = field(text, "\nSigPnd:", 16),
                     shd = field(text, "\nShdPnd:", 16),
                     blk = field(text, "\nSigBlk:", 16);
  unsigned long long threads = field(text, "\nThreads:", 10),
                     tgid = field(text, "\nTgid:", 10);
  if (pnd & ~blk)
    return SIG_OURS;
  if (threads > 1 && tgid != (unsigned long long)tid && group_stopping(tgid))
    return SIG_OURS; /* a ^Z: the other threads stop, this one must too */
  if (!(shd & ~blk) || (threads != 1 && tgid != (unsigned long long)tid))
    return SIG_NONE; /* (another thread may take it) */
  return threads == 1 ? SIG_OURS : SIG_SHARED;
}

/* A process-wide signal still pending after SETTLE_US was not taken by
 * another thread (a running one takes it at once; SIGCHLD goes to the
 * thread that forked): it waits for this one. */
#define SETTLE_US 5000

int hwsock__run_interrupted(const run_call *c) {
  int k = signal_to_take((pid_t)c->n.pid);
  if (k == SIG_SHARED) {
    usleep(SETTLE_US);
    k = signal_to_take((pid_t)c->n.pid);
  }
  if (k == SIG_NONE)
    return 0;
  /* the status was read while the call was valid: the tid is still the
   * waiting thread (it cannot exit inside the call) */
  struct seccomp_notif_resp r;
  memset(&r, 0, sizeof(r));
  r.id = c->n.id;
  switch (c->n.data.nr) {
  case SYS_connect:
#ifdef SYS_accept
  case SYS_accept:
#endif
  case SYS_accept4:
  case SYS_recvfrom:
  case SYS_recvmsg:
    r.error = -RUN_ERESTARTSYS; /* interruptible natively */
    break;
  default:
    r.error = -RUN_ERESTARTNOINTR;
    break;
  }
  /* (the ioctl itself, not remote.c's hwsock__run_valid: remote.c calls
   * this file, and files of run/ form no cycles: file_cycles_guest_run) */
  uint64_t id = c->n.id;
  if (ioctl(hwsock__run.notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)
    return 1; /* gone anyway */
  ioctl(hwsock__run.notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
  return 1;
}
