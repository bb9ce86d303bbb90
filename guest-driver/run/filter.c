/* The seccomp filter the program runs under (installed by the child just
 * before execvp; children and exec'd programs inherit it).
 *
 * Only socket calls notify the supervisor, and argument checks keep the
 * hot ones out: send/sendto without an address and recv/recvfrom without
 * one run natively (on an offloaded socket they are plain socketpair I/O),
 * socket() notifies only for AF_INET, AF_INET6 and AF_IPX. read, write,
 * poll, epoll, dup, fork and exec are never intercepted. A foreign
 * architecture (32-bit compat, whose socket calls have other numbers) is
 * killed rather than let through; x32 calls fail with ENOSYS.
 *
 * Under confinement io_uring_setup is refused too: io_uring opcodes
 * (IORING_OP_SOCKET/CONNECT) would bypass the filter; and so is
 * pidfd_getfd, which could fetch a host socket from another process (or
 * the supervisor's listener). So are ptrace, process_vm_readv and
 * process_vm_writev: a program that could write the supervisor's or the
 * VMM's memory could clear the confine flag or rewrite the policy. (The
 * supervisor is also non-dumpable and the program has no CAP_SYS_PTRACE,
 * which covers /proc/PID/mem, that no filter can see: main.c.) */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "run.h"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#if defined(__x86_64__)
#define RUN_AUDIT_ARCH AUDIT_ARCH_X86_64
#define RUN_X32_BIT 0x40000000u
#elif defined(__aarch64__)
#define RUN_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "hwsock-run: unsupported architecture (add its AUDIT_ARCH)"
#endif

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)

#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define JEQ(k, jt, jf) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))
#define JGE(k, jt, jf) BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (k), (jt), (jf))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define NOTIFY RET(SECCOMP_RET_USER_NOTIF)
#define ALLOW RET(SECCOMP_RET_ALLOW)
#define ERRNO(e) RET(SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
/* "if nr == n notify": two instructions, A holds nr */
#define TRAP_NR(n) JEQ((n), 0, 1), NOTIFY
#define DENY_NR(n, e) JEQ((n), 0, 1), ERRNO(e)

int hwsock__run_install_filter(int confine) {
  static const struct sock_filter prog[] = {
      LD(offsetof(struct seccomp_data, arch)),
      JEQ(RUN_AUDIT_ARCH, 1, 0),
      RET(SECCOMP_RET_KILL_PROCESS),
      LD(offsetof(struct seccomp_data, nr)),
#ifdef RUN_X32_BIT
      JGE(RUN_X32_BIT, 0, 1),
      ERRNO(ENOSYS),
#endif
      /* socket(domain, ...): only the families we carry */
      JEQ(SYS_socket, 0, 6),
      LD(ARG_LO(0)),
      JEQ(AF_INET, 3, 0),
      JEQ(AF_INET6, 2, 0),
      JEQ(AF_IPX, 1, 0),
      ALLOW,
      NOTIFY,
      /* sendto/recvfrom: only with an address (arg 4) */
      JEQ(SYS_sendto, 1, 0),
      JEQ(SYS_recvfrom, 0, 6),
      LD(ARG_LO(4)),
      JEQ(0, 0, 3),
      LD(ARG_HI(4)),
      JEQ(0, 0, 1),
      ALLOW,
      NOTIFY,
      /* A still holds nr here */
      TRAP_NR(SYS_connect),
      TRAP_NR(SYS_bind),
      TRAP_NR(SYS_listen),
#ifdef SYS_accept
      TRAP_NR(SYS_accept),
#endif
      TRAP_NR(SYS_accept4),
      TRAP_NR(SYS_sendmsg),
      TRAP_NR(SYS_recvmsg),
      TRAP_NR(SYS_sendmmsg),
      TRAP_NR(SYS_recvmmsg),
      TRAP_NR(SYS_getsockname),
      TRAP_NR(SYS_getpeername),
      TRAP_NR(SYS_getsockopt),
      TRAP_NR(SYS_setsockopt),
  };
  static const struct sock_filter confined_tail[] = {
      DENY_NR(SYS_io_uring_setup, EPERM),
      DENY_NR(SYS_pidfd_getfd, EPERM),
      DENY_NR(SYS_ptrace, EPERM),
      DENY_NR(SYS_process_vm_readv, EPERM),
      DENY_NR(SYS_process_vm_writev, EPERM),
  };
  static const struct sock_filter allow = ALLOW;
  struct sock_filter all[sizeof(prog) / sizeof(prog[0]) +
                         sizeof(confined_tail) / sizeof(confined_tail[0]) + 1];
  size_t n = 0;
  memcpy(all, prog, sizeof(prog));
  n += sizeof(prog) / sizeof(prog[0]);
  if (confine) {
    memcpy(all + n, confined_tail, sizeof(confined_tail));
    n += sizeof(confined_tail) / sizeof(confined_tail[0]);
  }
  all[n++] = allow;
  struct sock_fprog fp = {(unsigned short)n, all};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return hwsock__run_err(errno);
  /* WAIT_KILLABLE_RECV (Linux 5.19): once the supervisor has taken a call,
   * only a fatal signal cancels it. Without it a signal (a SIGCHLD, an
   * interval timer) cancelled a call the supervisor had already carried
   * out: the kernel restarted a sendto that was sent (the datagram went
   * twice; socat UDP-RECVFROM fork answered twice), a recvfrom's datagram
   * was lost with its reply, and socket()/bind()/setsockopt() failed with
   * an EINTR that programs do not expect there. Blocking waits still end
   * at a signal, as in the kernel: remote.c, hwsock__run_interrupted. An
   * older kernel refuses the flag (EINVAL): the filter goes without. */
  int fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                        SECCOMP_FILTER_FLAG_NEW_LISTENER |
                            SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                        &fp);
  if (fd < 0 && errno == EINVAL)
    fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      SECCOMP_FILTER_FLAG_NEW_LISTENER, &fp);
  return fd < 0 ? hwsock__run_err(errno) : fd;
}
