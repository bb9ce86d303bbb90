/* The private loopback VMM hwsock-run starts when no --vmm is given:
 * hwsock-vmm --listen DIR/vmm.sock --once --ready-fd N [--policy FILE], in
 * its own process group (a Ctrl-C meant for the program does not take the
 * device away from under it), killed if hwsock-run dies (PDEATHSIG), and
 * exiting by itself (--once) when hwsock-run detaches. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runerr.h"
#include "vmm.h"

#define READY_TIMEOUT_MS 10000

static int executable(const char *p) { return access(p, X_OK) == 0; }

/* hwsock-vmm next to our own binary, then the build tree's, then the
 * installed one. */
static int find_vmm(char *out, size_t cap) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = '\0';
      int n2 = snprintf(out, cap, "%s/hwsock-vmm", self);
      if (n2 > 0 && (size_t)n2 < cap && executable(out))
        return 0;
    }
  }
#ifdef HWSOCK_RUN_BUILD_VMM
  snprintf(out, cap, "%s", HWSOCK_RUN_BUILD_VMM);
  if (executable(out))
    return 0;
#endif
#ifdef HWSOCK_RUN_INSTALLED_VMM
  snprintf(out, cap, "%s", HWSOCK_RUN_INSTALLED_VMM);
  if (executable(out))
    return 0;
#endif
  return HWSOCK_ENOENT;
}

int hwsock__run_vmm_start(run_vmm *v, const char *policy, int verbose) {
  memset(v, 0, sizeof(*v));
  v->pid = -1;
  char bin[PATH_MAX];
  if (find_vmm(bin, sizeof(bin)) < 0) {
    fprintf(stderr, "hwsock-run: cannot find hwsock-vmm (looked next to "
                    "hwsock-run, in the build tree and the install prefix)\n");
    return -1;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(v->dir, sizeof(v->dir), "%s/hwsock-run.XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(v->dir)) {
    fprintf(stderr, "hwsock-run: mkdtemp %s: %s\n", v->dir, strerror(errno));
    v->dir[0] = '\0';
    return -1;
  }
  int pl = snprintf(v->path, sizeof(v->path), "%s/vmm.sock", v->dir);
  if (pl < 0 || (size_t)pl >= sizeof(v->path)) {
    fprintf(stderr, "hwsock-run: temporary path too long\n");
    return -1;
  }
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) {
    fprintf(stderr, "hwsock-run: pipe: %s\n", strerror(errno));
    return -1;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "hwsock-run: fork: %s\n", strerror(errno));
    close(pfd[0]);
    close(pfd[1]);
    return -1;
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
      _exit(1);
    close(pfd[0]);
    int wfd = pfd[1];
    if (fcntl(wfd, F_SETFD, 0) < 0)
      _exit(1);
    char fdnum[16];
    snprintf(fdnum, sizeof(fdnum), "%d", wfd);
    const char *argv[24];
    int a = 0;
    argv[a++] = bin;
    argv[a++] = "--listen";
    argv[a++] = v->path;
    argv[a++] = "--once";
    argv[a++] = "--ready-fd";
    argv[a++] = fdnum;
    /* Two queues: requests and the event queue (PROTOCOL.md §16); ids and
     * host sockets for as many connections as the fd limit allows. */
    argv[a++] = "--queues";
    argv[a++] = "2";
    argv[a++] = "--max-guests";
    argv[a++] = "1";
    argv[a++] = "--max-sockets";
    argv[a++] = RUN_VMM_MAX_SOCKETS;
    argv[a++] = "--guest-sockets";
    argv[a++] = RUN_VMM_MAX_SOCKETS;
    if (policy) {
      argv[a++] = "--policy";
      argv[a++] = policy;
    }
    if (verbose > 1)
      argv[a++] = "-v";
    argv[a] = NULL;
    execv(bin, (char *const *)argv);
    fprintf(stderr, "hwsock-run: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  v->pid = pid;
  close(pfd[1]);
  /* wait for "ready\n" (or the VMM's death: EOF) */
  char buf[16];
  size_t got = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (got < 6) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (ms >= READY_TIMEOUT_MS)
      break;
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    int r = poll(&p, 1, (int)(READY_TIMEOUT_MS - ms));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    ssize_t n = read(pfd[0], buf + got, sizeof(buf) - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(pfd[0]);
  if (got < 6 || memcmp(buf, "ready\n", 6) != 0) {
    fprintf(stderr, "hwsock-run: hwsock-vmm did not become ready\n");
    hwsock__run_vmm_stop(v);
    return -1;
  }
  return 0;
}

void hwsock__run_vmm_stop(run_vmm *v) {
  if (v->pid > 0) {
    /* --once: it exits by itself after we detached; give it a moment */
    int status;
    for (int i = 0; i < 300; i++) {
      pid_t r = waitpid(v->pid, &status, WNOHANG);
      if (r == v->pid || (r < 0 && errno != EINTR)) {
        v->pid = -1;
        break;
      }
      if (i == 100)
        kill(v->pid, SIGTERM);
      struct timespec ts = {0, 10 * 1000000L};
      nanosleep(&ts, NULL);
    }
    if (v->pid > 0) {
      kill(v->pid, SIGKILL);
      waitpid(v->pid, &status, 0);
      v->pid = -1;
    }
  }
  if (v->path[0])
    unlink(v->path);
  if (v->dir[0])
    rmdir(v->dir);
  v->path[0] = v->dir[0] = '\0';
}
