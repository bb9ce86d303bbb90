/* Ways around the seccomp filter's socket traps, for test/run
 * (run_syscall_escape): each mode tries to reach a denied loopback TCP
 * port from under hwsock-run --confine by a path that is not the plain
 * x86-64 connect(2). The test asserts on the denied listener (it must count
 * 0) and on how each attempt ended:
 *
 *   iouring PORT   io_uring_setup; when it works (it must not under
 *                  confinement): IORING_OP_SOCKET + IORING_OP_CONNECT, a
 *                  socket and a connect the filter never sees
 *   int80 PORT     32-bit socketcall(SOCKET) and socketcall(CONNECT) via
 *                  int 0x80 (other syscall numbers: the filter must kill)
 *   x32 PORT       socket/connect with the x32 bit set (must fail ENOSYS)
 *   clone3 ALLOWED PORT N
 *                  a pthread (glibc creates it with clone3) and a bare
 *                  clone(CLONE_VM) thread flip the sockaddr's port
 *                  between ALLOWED and PORT while the main thread connects
 *                  N times: the supervisor must act on one copy (connected
 *                  to ALLOWED or EACCES, never the denied port)
 *   vfork PORT     a vfork child (sharing the parent's memory) connects to
 *                  the denied port, then the parent does with the sockaddr
 *                  the child left
 *   setuid PATH PORT
 *                  execs PATH (a setuid copy of this program, made by the
 *                  test) in mode "connect": exec of a setuid binary keeps
 *                  the filter (and NO_NEW_PRIVS)
 *   connect PORT   plain connect to the denied port
 *
 * Prints one line "MODE: ..." with what happened; exit 0 unless the setup
 * failed (2) or an attempt got through (3). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_in dst;

static void set_dst(int port) {
  memset(&dst, 0, sizeof(dst));
  dst.sin_family = AF_INET;
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  dst.sin_port = htons((unsigned short)port);
}

/* ---- io_uring ------------------------------------------------------------ */

static int uring(void) {
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  int fd = (int)syscall(__NR_io_uring_setup, 4, &p);
  if (fd < 0) {
    printf("iouring: io_uring_setup: %s\n", strerror(errno));
    return 0;
  }
  size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  uint8_t *sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                     IORING_OFF_SQ_RING);
  uint8_t *cq = mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                     IORING_OFF_CQ_RING);
  struct io_uring_sqe *sqes =
      mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE,
           MAP_SHARED, fd, IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
    printf("iouring: setup worked, mmap failed\n");
    return 3;
  }
  int sock = -1, res = 0;
  for (int step = 0; step < 2; step++) {
    unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
    unsigned *array = (unsigned *)(sq + p.sq_off.array);
    unsigned mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    unsigned t = *tail;
    struct io_uring_sqe *e = &sqes[t & mask];
    memset(e, 0, sizeof(*e));
    if (step == 0) {
#ifdef IORING_OP_SOCKET
      e->opcode = IORING_OP_SOCKET;
      e->fd = AF_INET;
      e->off = SOCK_STREAM;
#else
      sock = socket(AF_INET, SOCK_STREAM, 0);
      continue;
#endif
    } else {
      e->opcode = IORING_OP_CONNECT;
      e->fd = sock;
      e->addr = (uint64_t)(uintptr_t)&dst;
      e->off = sizeof(dst);
    }
    array[t & mask] = t & mask;
    __atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL,
                0) < 0) {
      printf("iouring: enter: %s\n", strerror(errno));
      return 3;
    }
    unsigned *head = (unsigned *)(cq + p.cq_off.head);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    unsigned cmask = *(unsigned *)(cq + p.cq_off.ring_mask);
    res = cqes[*head & cmask].res;
    __atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
    if (step == 0)
      sock = res;
    if (res < 0)
      break;
  }
  printf("iouring: setup worked; socket %d, connect %d\n", sock, res);
  return 3; /* io_uring itself must not be available */
}

/* ---- int 0x80 and x32 ------------------------------------------------- */

static int int80(void) {
  /* the arguments must be addressable with 32 bits */
  uint32_t *args = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (args == MAP_FAILED)
    return 2;
  struct sockaddr_in *sin = (struct sockaddr_in *)(args + 16);
  *sin = dst;
  args[0] = AF_INET;
  args[1] = SOCK_STREAM;
  args[2] = 0;
  long fd;
  /* socketcall(SYS_SOCKET = 1, args) is syscall 102 in the i386 table */
  __asm__ volatile("int $0x80"
                   : "=a"(fd)
                   : "a"(102), "b"(1), "c"((uint32_t)(uintptr_t)args)
                   : "memory");
  printf("int80: socket %ld\n", fd);
  fflush(stdout);
  if (fd < 0)
    return 0;
  args[0] = (uint32_t)fd;
  args[1] = (uint32_t)(uintptr_t)sin;
  args[2] = sizeof(*sin);
  long rc;
  __asm__ volatile("int $0x80"
                   : "=a"(rc)
                   : "a"(102), "b"(3), "c"((uint32_t)(uintptr_t)args)
                   : "memory");
  printf("int80: connect %ld\n", rc);
  return rc == 0 ? 3 : 0;
}

static int x32(int port) {
  (void)port;
  long fd = syscall(0x40000000L | __NR_socket, AF_INET, SOCK_STREAM, 0);
  int e1 = errno;
  long rc = fd < 0 ? -1
                   : syscall(0x40000000L | __NR_connect, fd, &dst, sizeof(dst));
  printf("x32: socket %ld (%s), connect %ld\n", fd, fd < 0 ? strerror(e1) : "",
         rc);
  return rc == 0 ? 3 : 0;
}

/* ---- racing the sockaddr ------------------------------------------------- */

static volatile int stop;
static uint16_t ports[2];

static int flipper(void *arg) {
  (void)arg;
  unsigned i = 0;
  while (!stop)
    __atomic_store_n(&dst.sin_port, ports[++i & 1], __ATOMIC_RELAXED);
  return 0;
}

static void *pflipper(void *arg) {
  flipper(arg);
  return NULL;
}

static int clone3_race(int allowed, int port, long n) {
  ports[0] = htons((unsigned short)allowed);
  ports[1] = htons((unsigned short)port);
  size_t ssz = 1 << 16;
  char *stack = mmap(NULL, ssz, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED)
    return 2;
  /* Two flippers: a thread of pthread_create (glibc makes it with clone3)
   * and a bare clone(CLONE_VM) thread the libc does not know about. */
  pthread_t pt;
  if (pthread_create(&pt, NULL, pflipper, NULL) != 0)
    return 2;
  long tid = clone(flipper, stack + ssz,
                   CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
                       CLONE_THREAD | CLONE_SYSVSEM,
                   NULL);
  if (tid < 0)
    return 2;
  long ok = 0, denied = 0, other = 0;
  for (long i = 0; i < n; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
      return 2;
    if (connect(s, (struct sockaddr *)&dst, sizeof(dst)) == 0)
      ok++;
    else if (errno == EACCES || errno == EPERM)
      denied++;
    else
      other++;
    close(s);
  }
  stop = 1;
  pthread_join(pt, NULL);
  usleep(100000);
  printf("clone3: connected %ld, denied %ld, other %ld\n", ok, denied, other);
  return 0;
}

static int vfork_child(int port) {
  (void)port;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  pid_t pid = vfork();
  if (pid == 0) {
    /* the child shares the parent's memory and fd table until it execs or
     * exits: a connect from here is one more process to intercept */
    int r = connect(s, (struct sockaddr *)&dst, sizeof(dst));
    dst.sin_port = htons(1); /* the parent sees this change */
    _exit(r == 0 ? 3 : 0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  dst.sin_port = htons((unsigned short)port);
  int s2 = socket(AF_INET, SOCK_STREAM, 0);
  int r = connect(s2, (struct sockaddr *)&dst, sizeof(dst));
  printf("vfork: child exit %d, parent connect %d (%s)\n",
         WIFEXITED(st) ? WEXITSTATUS(st) : -1, r, r < 0 ? strerror(errno) : "");
  return (WIFEXITED(st) && WEXITSTATUS(st) == 3) || r == 0 ? 3 : 0;
}

static int plain_connect(const char *mode) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int r = connect(s, (struct sockaddr *)&dst, sizeof(dst));
  printf("%s: uid %d euid %d no_new_privs %d connect %d (%s)\n", mode,
         (int)getuid(), (int)geteuid(), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
         r, r < 0 ? strerror(errno) : "");
  return r == 0 ? 3 : 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3)
    return 2;
  const char *mode = argv[1];
  set_dst(atoi(argv[argc - 1]));
  if (strcmp(mode, "iouring") == 0)
    return uring();
  if (strcmp(mode, "int80") == 0)
    return int80();
  if (strcmp(mode, "x32") == 0)
    return x32(atoi(argv[2]));
  if (strcmp(mode, "clone3") == 0 && argc == 5) {
    set_dst(atoi(argv[2]));
    return clone3_race(atoi(argv[2]), atoi(argv[3]), atol(argv[4]));
  }
  if (strcmp(mode, "vfork") == 0)
    return vfork_child(atoi(argv[2]));
  if (strcmp(mode, "connect") == 0)
    return plain_connect("connect");
  if (strcmp(mode, "setuid") == 0 && argc == 4) {
    execl(argv[2], argv[2], "connect", argv[3], (char *)NULL);
    perror("exec");
    return 2;
  }
  fprintf(stderr, "usage: see syscall_escape.c\n");
  return 2;
}
