/* A confined program attacking its supervisor, for test/run (run_ptrace):
 * with write access to hwsock-run's memory it could clear the confine flag
 * (or answer its own notifications); with write access to the VMM's it
 * could rewrite the policy. Each attempt must fail with a permission error:
 *
 *   process_vm_readv / process_vm_writev of one byte at an unmapped address
 *     (EFAULT would mean the permission check passed: the attack works);
 *   ptrace(PTRACE_SEIZE) and ptrace(PTRACE_ATTACH) (detached again at once
 *     if they succeed, so a failing test does not leave a stopped process);
 *   open("/proc/PID/mem", O_RDWR), which a root program without ptrace()
 *     could still use to write the memory.
 *
 * The targets are the parent (hwsock-run: the supervisor) and VMM_PID (0:
 * none; -1: every other child of the parent, which is where hwsock-run's
 * private VMM is, found in /proc/PPID/task/PPID/children).
 * Then a connect to DENY_PORT must still fail with EACCES and one to
 * OFFLOAD_PORT still succeed: the supervisor is alive and still confining.
 *
 * usage: ptrace_attack VMM_PID OFFLOAD_PORT DENY_PORT
 * Prints one line per attempt ("ptrace-seize 1234: refused (errno 1)" or
 * "... SUCCEEDED") and exits 0 only when every attack was refused and both
 * connects behaved. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void report(const char *what, pid_t pid, int ok, int err) {
  if (ok) {
    printf("%s %d: SUCCEEDED\n", what, (int)pid);
    failures++;
  } else if (err == EPERM || err == EACCES) {
    printf("%s %d: refused (errno %d)\n", what, (int)pid, err);
  } else {
    /* EFAULT from process_vm_*: access was granted, only the address was
     * bad. Anything but a permission error counts as a success. */
    printf("%s %d: SUCCEEDED (errno %d: %s)\n", what, (int)pid, err,
           strerror(err));
    failures++;
  }
  fflush(stdout);
}

static void attack(pid_t pid) {
  char byte = 0;
  struct iovec local = {&byte, 1};
  struct iovec remote = {(void *)(uintptr_t)0x10000, 1}; /* unmapped */
  ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
  report("process_vm_readv", pid, n >= 0, errno);
  n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
  report("process_vm_writev", pid, n >= 0, errno);

  long r = ptrace(PTRACE_SEIZE, pid, 0, 0);
  int e = errno;
  if (r == 0) { /* stop it to detach cleanly */
    ptrace(PTRACE_INTERRUPT, pid, 0, 0);
    waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, 0, 0);
  }
  report("ptrace-seize", pid, r == 0, e);
  r = ptrace(PTRACE_ATTACH, pid, 0, 0);
  e = errno;
  if (r == 0) {
    waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, 0, 0);
  }
  report("ptrace-attach", pid, r == 0, e);

  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  e = errno;
  if (fd >= 0)
    close(fd);
  report("open-proc-mem", pid, fd >= 0, e);
}

static int try_connect(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((unsigned short)port);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0)
    return errno;
  int rc = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : errno;
  close(s);
  return rc;
}

/* Attacks every child of the parent but us: the private VMM. */
static void attack_siblings(void) {
  char path[96];
  pid_t pp = getppid();
  snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pp, (int)pp);
  FILE *f = fopen(path, "r");
  int n = 0, pid;
  while (f && fscanf(f, "%d", &pid) == 1) {
    if (pid != (int)getpid()) {
      attack((pid_t)pid);
      n++;
    }
  }
  if (f)
    fclose(f);
  if (n == 0) {
    printf("no sibling (the VMM) found in %s\n", path);
    failures++;
  }
}

int main(int argc, char **argv) {
  if (argc != 4)
    return 2;
  pid_t vmm = (pid_t)atoi(argv[1]);
  int offload = atoi(argv[2]), deny = atoi(argv[3]);
  attack(getppid());
  if (vmm > 0)
    attack(vmm);
  else if (vmm < 0)
    attack_siblings();
  int e = try_connect(deny);
  printf("connect denied port: errno %d\n", e);
  if (e != EACCES)
    failures++;
  e = try_connect(offload);
  printf("connect offloaded port: errno %d\n", e);
  if (e != 0)
    failures++;
  printf("failures %d\n", failures);
  return failures ? 1 : 0;
}
