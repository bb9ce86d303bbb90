/* hwsock-run [--vmm PATH | --policy FILE] [--confine] [--table PATH] [-v] --
 *            PROGRAM [ARGS]
 *
 * Runs PROGRAM with its INET socket calls carried to a libhwsock device
 * (docs/HWSOCK-RUN.md). Exit status: PROGRAM's (128+N when killed by
 * signal N); 125 when hwsock-run itself fails, 126/127 when PROGRAM cannot
 * be executed / is not found (like env(1)). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hwsock/attach.h"
#include "hwsock/policy.h"
#include "run.h"
#include "table.h"
#include "vmm.h"

#define EXIT_FAILED 125

static void usage(FILE *f) {
  fprintf(f,
    "usage: hwsock-run [--vmm PATH | --policy FILE] [--confine] "
    "[--table PATH] [-v] -- PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM with its AF_INET/AF_INET6/AF_IPX socket calls offered to a\n"
    "libhwsock device first (offload, decline to the host stack, or deny).\n"
    "\n"
    "  --vmm PATH     attach to a running hwsock-vmm at PATH (default: start\n"
    "                 a private one)\n"
    "  --policy FILE  policy for the private VMM (default: the built-in one)\n"
    "  --confine      no INET call ever reaches the host stack: a declined\n"
    "                 call fails with EACCES (automatic when the policy can\n"
    "                 never decline)\n"
    "  --table PATH   keep the guest-side socket table in PATH (rewritten\n"
    "                 when a socket changes, counters at most once a\n"
    "                 second); PROGRAM finds PATH in $HWSOCK_TABLE\n"
    "  -v, --verbose  one line per decision on stderr (twice: VMM logs too)\n"
    "  -h, --help     this text\n");
}

static volatile pid_t child_pid = -1;

static void forward_signal(int sig) {
  if (child_pid > 0)
    kill(child_pid, sig);
}

/* Under confinement no host INET socket may exist in the program, and the
 * filter only ever sees calls made after it: an AF_INET/AF_INET6 socket
 * inherited from hwsock-run's parent (systemd-style socket passing, a
 * shell's fd) would be one, usable with any call that continues in the
 * kernel. Each is replaced, on the same fd number, by a dead socket: one end
 * of a unix socketpair whose other end is closed (reads see EOF, writes
 * fail with EPIPE, as on a connection that is gone). Replaced rather than
 * closed, so that the number stays taken and a later open() cannot land on
 * it while the program still writes to "its socket". Returns how many were
 * replaced, or -1 when one could not be (the child must not run). */
static int neuter_one(int fd) {
  int dom = 0;
  socklen_t l = sizeof(dom);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0 ||
      (dom != AF_INET && dom != AF_INET6))
    return 0; /* not a socket, or not an INET one */
  int fdfl = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    return -1;
  close(sv[1]);
  int rc = sv[0] == fd ? 0 : dup2(sv[0], fd);
  if (sv[0] != fd)
    close(sv[0]);
  if (rc < 0)
    return -1;
  if (fdfl >= 0 && (fdfl & FD_CLOEXEC))
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (fl >= 0 && (fl & O_NONBLOCK))
    fcntl(fd, F_SETFL, O_NONBLOCK);
  hwsock__run_log("confined: inherited INET socket on fd %d replaced by a "
                  "dead socket", fd);
  return 1;
}

static int neuter_inherited_inet(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      char *end;
      long fd = strtol(e->d_name, &end, 10);
      if (*end != '\0' || end == e->d_name || fd == self)
        continue;
      int r = neuter_one((int)fd);
      if (r < 0) {
        closedir(d);
        return -1;
      }
      n += r;
    }
    closedir(d);
    return n;
  }
  /* no /proc: every possible fd number (bounded) */
  struct rlimit rl;
  long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 20)
                 ? (long)rl.rlim_cur
                 : (1L << 20);
  for (long fd = 0; fd < max; fd++) {
    int r = neuter_one((int)fd);
    if (r < 0)
      return -1;
    n += r;
  }
  return n;
}

/* Under confinement the program must not reach the supervisor's or the
 * VMM's memory. Both are non-dumpable, which stops a process of the same
 * uid unless it has CAP_SYS_PTRACE: a root program has it, so it goes from
 * the bounding set (when we may drop it) and from the current sets; with
 * no_new_privs a later exec cannot give it back. That closes
 * /proc/PID/mem too, which the filter cannot see (it refuses ptrace and
 * process_vm_* outright). */
static int drop_ptrace_cap(void) {
  prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0); /* needs CAP_SETPCAP */
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0)
    return hwsock__run_err(errno);
  uint32_t bit = 1u << CAP_SYS_PTRACE; /* < 32: in d[0] */
  d[0].effective &= ~bit;
  d[0].permitted &= ~bit;
  d[0].inheritable &= ~bit;
  if (syscall(SYS_capset, &h, d) < 0) /* dropping is always allowed */
    return hwsock__run_err(errno);
  return 0;
}

/* In the child: filter, hand the listener to the parent, exec. */
static void child(char **argv, int confine, int sync_w, int go_r) {
  sigset_t none;
  sigemptyset(&none);
  for (int sig = 1; sig < NSIG; sig++)
    signal(sig, SIG_DFL); /* errors for KILL/STOP/RT-reserved are fine */
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* the supervisor is non-dumpable; the program is not (the supervisor
   * reads its memory and fds, exec would reset it anyway) */
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  if (confine) {
    if (neuter_inherited_inet() < 0) {
      fprintf(stderr, "hwsock-run: cannot replace an inherited INET socket: "
                      "%s\n", strerror(errno));
      _exit(EXIT_FAILED);
    }
    int rc = drop_ptrace_cap();
    if (rc < 0) {
      fprintf(stderr, "hwsock-run: dropping CAP_SYS_PTRACE: %s\n",
              strerror(hwsock__run_to_errno(rc)));
      _exit(EXIT_FAILED);
    }
  }
  int lfd = hwsock__run_install_filter(confine);
  if (lfd < 0) {
    fprintf(stderr, "hwsock-run: installing the seccomp filter: %s\n",
            strerror(hwsock__run_to_errno(lfd)));
    _exit(EXIT_FAILED);
  }
  /* The parent fetches the listener with pidfd_getfd: sendmsg would be
   * intercepted by the very filter whose listener it carries. */
  char go;
  if (write(sync_w, &lfd, sizeof(lfd)) != (ssize_t)sizeof(lfd) ||
      read(go_r, &go, 1) != 1)
    _exit(EXIT_FAILED);
  close(lfd); /* the program must never hold its own listener */
  close(sync_w);
  close(go_r);
  execvp(argv[0], argv);
  int e = errno;
  fprintf(stderr, "hwsock-run: %s: %s\n", argv[0], strerror(e));
  _exit(e == ENOENT ? 127 : 126);
}

/* Takes the child's listener fd; -1 if the child failed first. */
static int fetch_listener(pid_t pid, int sync_r) {
  int lfd;
  ssize_t n;
  do
    n = read(sync_r, &lfd, sizeof(lfd));
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof(lfd))
    return -1;
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0)
    return -1;
  int fd = (int)syscall(SYS_pidfd_getfd, pidfd, lfd, 0);
  close(pidfd);
  if (fd >= 0)
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

static int status_of(int st) {
  if (WIFEXITED(st))
    return WEXITSTATUS(st);
  if (WIFSIGNALED(st))
    return 128 + WTERMSIG(st);
  return EXIT_FAILED;
}

/* The command line. Returns 0, 1 after --help, -1 on a usage error
 * (already reported). */
typedef struct run_args {
  const char *vmm_path, *policy_path, *table_path;
  int confine, verbose;
  char **prog;
} run_args;

static int parse_args(int argc, char **argv, run_args *a) {
  static const struct option longopts[] = {
      {"vmm", required_argument, NULL, 'm'},
      {"policy", required_argument, NULL, 'p'},
      {"confine", no_argument, NULL, 'c'},
      {"table", required_argument, NULL, 't'},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  memset(a, 0, sizeof(*a));
  while ((c = getopt_long(argc, argv, "+vh", longopts, NULL)) != -1) {
    switch (c) {
    case 'm': a->vmm_path = optarg; break;
    case 'p': a->policy_path = optarg; break;
    case 'c': a->confine = 1; break;
    case 't': a->table_path = optarg; break;
    case 'v': a->verbose++; break;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return -1;
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return -1;
  }
  if (a->vmm_path && a->policy_path) {
    fprintf(stderr, "hwsock-run: --policy is for the private VMM; a VMM "
                    "given with --vmm has its own\n");
    return -1;
  }
  a->prog = argv + optind;
  return 0;
}

/* The policy, when we start the VMM ourselves: a policy that can never
 * decline confines the program (no call continues to the host stack).
 * 0, or -1 (reported). */
static int policy_confines(run_args *a) {
  if (a->vmm_path)
    return 0;
  hwsock_policy *p = NULL;
  char err[256] = "";
  int rc = a->policy_path
               ? hwsock_policy_load_file(a->policy_path, &p, err, sizeof(err))
               : hwsock_policy_load_default(&p);
  if (rc < 0) {
    fprintf(stderr, "hwsock-run: policy %s: %s\n",
            a->policy_path ? a->policy_path : "<default>",
            err[0] ? err : hwsock_strerror(rc));
    return -1;
  }
  if (!hwsock_policy_can_decline(p))
    a->confine = 1;
  hwsock_policy_free(p);
  return 0;
}

/* The device: a private hwsock-vmm unless --vmm named one, then the
 * attachment (hwsock__run.g). 0, or -1 (reported; nothing left running). */
static int attach_device(const run_args *a, run_vmm *vmm,
                         hwsock_attachment **att) {
  const char *vmm_path = a->vmm_path;
  memset(vmm, 0, sizeof(*vmm));
  vmm->pid = -1;
  if (!vmm_path) {
    if (hwsock__run_vmm_start(vmm, a->policy_path, a->verbose) < 0) {
      hwsock__run_vmm_stop(vmm);
      return -1;
    }
    vmm_path = vmm->path;
  }
  hwsock_attach_opts aopts;
  hwsock_attach_opts_init(&aopts);
  /* The pumps send like a kernel does: return once the data is in the
   * slots, errors on the next call (hwsock/guest.h, write_behind). */
  aopts.write_behind = 1;
  /* A socket waiting for input holds no request slot (PROTOCOL.md §16):
   * its data waits in the driver's shared buffers. */
  aopts.event_queue = 1;
  int rc = hwsock_attach(vmm_path, &aopts, att);
  if (rc < 0) {
    fprintf(stderr, "hwsock-run: attaching to %s: %s\n", vmm_path,
            hwsock_strerror(rc));
    hwsock__run_vmm_stop(vmm);
    return -1;
  }
  hwsock__run.g = hwsock_attach_guest(*att);
  hwsock__run.att = *att;
  return 0;
}

/* Forks the program (child() installs the filter and sends its listener
 * over sync[1], then waits for go[0]) and forwards our signals to it.
 * Returns its pid, or -1 (reported). */
static pid_t start_program(const run_args *a, int sync[2], int go[2]) {
  if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
    perror("hwsock-run: pipe");
    return -1;
  }
  signal(SIGPIPE, SIG_IGN);
  /* Nobody reads or writes the supervisor's memory (process_vm_*, ptrace,
   * /proc/PID/mem): a program that could would clear the confine flag or
   * answer its own notifications. Non-dumpable stops every process of the
   * same uid without CAP_SYS_PTRACE (which a confined program loses). */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    perror("hwsock-run: PR_SET_DUMPABLE");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("hwsock-run: fork");
    return -1;
  }
  if (pid == 0)
    child(a->prog, a->confine, sync[1], go[0]);
  child_pid = pid;
  close(sync[1]);
  close(go[0]);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
    sigaction(fwd[i], &sa, NULL);
  return pid;
}

/* Takes the program's listener, starts the supervisor and lets the program
 * go. Returns 1 when it runs supervised; else it was killed (never
 * unsupervised) or never got its filter. *lfd: the listener, or -1. */
static int supervise(pid_t pid, int sync_r, int go_w, int *lfd) {
  int supervising = 0;
  *lfd = fetch_listener(pid, sync_r);
  if (*lfd >= 0) {
    hwsock__run.notify_fd = *lfd;
    if (hwsock__run_sockmap_init() == 0 && hwsock__run_watch_start() == 0 &&
        hwsock__run_supervisor_start() == 0)
      supervising = 1;
    else
      fprintf(stderr, "hwsock-run: cannot start the supervisor\n");
  }
  if (supervising && hwsock__run_table_start() < 0)
    supervising = 0;
  if (supervising) {
    char one = 1;
    if (write(go_w, &one, 1) != 1)
      supervising = 0;
  }
  close(go_w);
  close(sync_r);
  if (!supervising && *lfd >= 0)
    kill(pid, SIGKILL); /* never let it run unsupervised */
  return supervising;
}

/* Teardown: let the pumps deliver what the program wrote, stop taking
 * notifications, fail every driver call (what pumps remain end), then
 * detach (the VMM with --once exits). Does not return when threads are
 * stuck in the driver (nothing is freed under them). */
static int teardown(hwsock_attachment *att, run_vmm *vmm, int lfd, int code) {
  /* The program is gone, and with it (unless a child of its still holds
   * them) its sockets: a kernel would still deliver what it wrote before
   * closing them. Each program -> device pump ends by itself once its
   * program end hung up and its data went out; shutting the transport
   * first would cut those last bytes. Bounded, for sockets someone else
   * still holds. */
  if (hwsock__run_pump_wait_senders(RUN_EXIT_DRAIN_MS) != 0)
    hwsock__run_log("exit: program data still on its way after %d ms "
                    "(RUN_EXIT_DRAIN_MS in run.h): its connections are cut",
                    RUN_EXIT_DRAIN_MS);
  hwsock__run_device_closing(); /* what fails from now on is our doing */
  hwsock_guest_shutdown_transport(hwsock__run.g);
  hwsock__run_supervisor_stop();
  int left = hwsock__run_pump_wait(3000);
  if (left == 0) {
    hwsock__run_sockmap_clear();
    hwsock_attach_close(att); /* no driver call in progress any more */
  }
  if (lfd >= 0)
    close(lfd);
  hwsock__run_vmm_stop(vmm);
  if (left != 0) {
    fflush(NULL);
    _exit(code);
  }
  return code;
}

int main(int argc, char **argv) {
  run_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc != 0)
    return rc > 0 ? 0 : EXIT_FAILED;
  /* Every offloaded connection is a pump end here and a socket in the
   * program (which inherits the limit): up to the hard limit, as a server
   * that raises it itself would have. */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
      nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &nofile);
  }
  if (a.table_path && hwsock__run_table_init(a.table_path) < 0)
    return EXIT_FAILED;
  if (policy_confines(&a) < 0)
    return EXIT_FAILED;
  hwsock__run.confine = a.confine;
  hwsock__run.verbose = a.verbose;

  run_vmm vmm;
  hwsock_attachment *att = NULL;
  if (attach_device(&a, &vmm, &att) < 0)
    return EXIT_FAILED;
  if (a.confine)
    hwsock__run_log("confined: no INET call reaches the host stack");

  int sync[2], go[2];
  pid_t pid = start_program(&a, sync, go);
  if (pid < 0) {
    hwsock_attach_close(att);
    hwsock__run_vmm_stop(&vmm);
    return EXIT_FAILED;
  }
  int lfd;
  int supervising = supervise(pid, sync[0], go[1], &lfd);

  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  child_pid = -1;
  hwsock__run_table_stop(); /* the last table, while the driver is alive */
  int code = supervising ? status_of(st)
                         : (WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_FAILED);
  return teardown(att, &vmm, lfd, code);
}
