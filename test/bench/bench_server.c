/* hwsock-bench-server: the loopback servers every benchmark path talks to.
 *
 * One epoll thread serves, on 127.0.0.1 ports chosen by the kernel:
 *   sink  TCP: reads and discards; at EOF writes the byte count (8 bytes,
 *              little-endian) and closes, so a bulk client's clock covers
 *              the whole transfer, not just its own send buffer;
 *   echo  TCP: writes back whatever arrives (request-response, idle
 *              sockets: a connection that sends nothing costs nothing);
 *   cps   TCP: reads one request byte, answers one byte, closes (the
 *              server closes first, so TIME_WAIT lands on this side);
 *   udp   UDP: counts datagrams and bytes;
 *   ctrl  TCP: answers "udp PACKETS BYTES\n" and closes.
 * It prints "ports SINK ECHO CPS UDP CTRL" on stdout once listening and
 * runs until SIGTERM/SIGINT or until stdin reaches EOF (so it never
 * outlives the script that started it).
 *
 * Only 127.0.0.1 is ever bound. Not a test: nothing here runs under ctest. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { K_SINK, K_ECHO, K_CPS, K_UDP, K_CTRL, K_NLISTEN, K_CONN, K_STDIN };

/* Per-connection state; epoll's data.ptr points at it. Every entry is
 * also on the `conns` list: epoll's copy of the pointer is in the kernel,
 * where LeakSanitizer does not look, so the exit frees them from there. */
typedef struct conn {
  struct conn *prev, *next;
  int fd;
  int kind;   /* K_CONN or a listener kind */
  int svc;    /* for a connection: the service it came from */
  uint64_t bytes;
} conn;

static conn *conns;

static volatile sig_atomic_t stop;
static uint64_t udp_pkts, udp_bytes;
static char buf[1 << 18];

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int listen_on(int type, uint16_t *port) {
  int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (type == SOCK_DGRAM) {
    int sz = 8 << 20; /* absorb bursts; SO_RCVBUFFORCE needs root */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  }
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof(sa);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      (type == SOCK_STREAM && listen(fd, 4096) < 0) ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

/* Writes all of p (small replies); waits for room if the socket is full. */
static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 5000) <= 0)
          return -1;
        continue;
      }
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static void drop(int ep, conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->prev)
    c->prev->next = c->next;
  else
    conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  free(c);
}

/* At the exit (SIGTERM, SIGINT, stdin's end): every listener and
 * connection still open. */
static void drop_all(int ep) {
  while (conns)
    drop(ep, conns);
  close(ep);
}

static void add(int ep, int fd, int kind, int svc) {
  conn *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    close(fd);
    return;
  }
  c->fd = fd;
  c->kind = kind;
  c->svc = svc;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    close(fd);
    free(c);
    return;
  }
  c->next = conns;
  if (conns)
    conns->prev = c;
  conns = c;
}

static void on_accept(int ep, conn *l) {
  for (;;) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return; /* EAGAIN, or EMFILE: the client will see it */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (l->kind == K_CTRL) {
      char line[96];
      int n = snprintf(line, sizeof(line), "udp %llu %llu\n",
                       (unsigned long long)udp_pkts,
                       (unsigned long long)udp_bytes);
      write_all(fd, line, (size_t)n);
      close(fd);
      continue;
    }
    add(ep, fd, K_CONN, l->kind);
  }
}

static void on_udp(conn *l) {
  for (int i = 0; i < 256; i++) {
    ssize_t r = recv(l->fd, buf, sizeof(buf), 0);
    if (r < 0)
      return;
    udp_pkts++;
    udp_bytes += (uint64_t)r;
  }
}

static void on_conn(int ep, conn *c) {
  ssize_t r = read(c->fd, buf, sizeof(buf));
  if (r < 0) {
    if (errno == EAGAIN || errno == EINTR)
      return;
    drop(ep, c);
    return;
  }
  if (r == 0) {
    if (c->svc == K_SINK) {
      uint8_t le[8];
      for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(c->bytes >> (8 * i));
      write_all(c->fd, le, sizeof(le));
    }
    drop(ep, c);
    return;
  }
  c->bytes += (uint64_t)r;
  switch (c->svc) {
  case K_SINK:
    break;
  case K_ECHO:
    if (write_all(c->fd, buf, (size_t)r) < 0)
      drop(ep, c);
    break;
  case K_CPS:
    write_all(c->fd, buf, 1);
    drop(ep, c);
    break;
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    perror("hwsock-bench-server: epoll_create1");
    return 1;
  }
  uint16_t ports[K_NLISTEN];
  for (int k = 0; k < K_NLISTEN; k++) {
    int fd = listen_on(k == K_UDP ? SOCK_DGRAM : SOCK_STREAM, &ports[k]);
    if (fd < 0) {
      perror("hwsock-bench-server: listen");
      drop_all(ep);
      return 1;
    }
    add(ep, fd, k, k);
  }
  add(ep, dup(STDIN_FILENO), K_STDIN, K_STDIN);
  printf("ports %u %u %u %u %u\n", ports[K_SINK], ports[K_ECHO], ports[K_CPS],
         ports[K_UDP], ports[K_CTRL]);
  fflush(stdout);

  struct epoll_event evs[256];
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n < 0 && errno != EINTR) {
      perror("hwsock-bench-server: epoll_wait");
      drop_all(ep);
      return 1;
    }
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      switch (c->kind) {
      case K_STDIN:
        if (read(c->fd, buf, sizeof(buf)) <= 0)
          stop = 1;
        break;
      case K_UDP: on_udp(c); break;
      case K_CONN: on_conn(ep, c); break;
      default: on_accept(ep, c); break;
      }
    }
  }
  drop_all(ep);
  return 0;
}
