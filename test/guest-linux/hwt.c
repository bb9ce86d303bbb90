/* hwt: static test programs run inside the guest by test/guest-linux/run.
 * Ordinary socket code: nothing in it knows about the device.
 *
 *   hwt get IP PORT PATH      HTTP/1.0 GET, prints "sha256 HEX bytes N"
 *   hwt udp IP PORT MSG       sendto + recvfrom, prints "reply MSG from IP:PORT"
 *   hwt listen IP PORT        bind+listen+accept one, echo "guest-says:" LINE
 *   hwt udpserve IP PORT      bind, answer one datagram "guest-echo:" DATA
 *   hwt connect IP PORT       prints "connect ok" or "connect errno NAME"
 *   hwt epoll IP PORT N       N nonblocking connections to an echo server
 *   hwt hold IP PORT          a connection open while /proc/net/hwsock is
 *                             printed and unloading the module is tried
 *   hwt nbget IP PORT PATH    nonblocking connect, poll, SO_ERROR, then an
 *                             HTTP/1.0 GET; prints "body LINE"...
 *   hwt fill IP SINK GO       nonblocking sends to a peer that does not read
 *                             until EAGAIN, close, then tell GO the count
 *   hwt linger IP PORT        SO_LINGER 0 set after connect, close: the
 *                             server then tells what it saw (reset or eof)
 *   hwt lingerpre IP PORT     the same with SO_LINGER set before connect
 *   hwt idle IP SILENT ECHO N N connections to a peer that never sends, all
 *                             waited on with epoll, then one echo exchange
 *   hwt many IP ECHO N        N connections echo a byte, then 64 KiB each,
 *                             written last to first, read first to last
 *   hwt manyudp IP ECHO N D   the same with N UDP sockets, D datagrams each
 *   hwt sem IP ECHOPORT DEADPORT RSTPORT   socket semantics against an
 *                             echo server, a port where nothing listens and
 *                             a server that resets every connection
 *   hwt udperr IP ECHO DEAD   a connected UDP socket refused by ICMP (UDP
 *                             port DEAD): the error once from recv, send
 *                             and SO_ERROR, then it still receives (ECHO) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- SHA-256 (FIPS 180-4) ---- */
typedef struct { uint32_t h[8]; uint64_t n; uint8_t b[64]; size_t bl; } sha256;
static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
  0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
  0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void sha_block(sha256 *s, const uint8_t *p) {
  uint32_t w[64], a[8];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | p[4 * i + 1] << 16 | p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  memcpy(a, s->h, sizeof(a));
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = a[7] + (ROR(a[4], 6) ^ ROR(a[4], 11) ^ ROR(a[4], 25)) +
                  ((a[4] & a[5]) ^ (~a[4] & a[6])) + K[i] + w[i];
    uint32_t t2 = (ROR(a[0], 2) ^ ROR(a[0], 13) ^ ROR(a[0], 22)) +
                  ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
    memmove(a + 1, a, 7 * sizeof(uint32_t));
    a[4] += t1;
    a[0] = t1 + t2;
  }
  for (int i = 0; i < 8; i++) s->h[i] += a[i];
}
static void sha_init(sha256 *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof(h0));
  s->n = 0;
  s->bl = 0;
}
static void sha_add(sha256 *s, const uint8_t *p, size_t n) {
  s->n += n;
  while (n) {
    size_t k = 64 - s->bl < n ? 64 - s->bl : n;
    memcpy(s->b + s->bl, p, k);
    s->bl += k, p += k, n -= k;
    if (s->bl == 64) sha_block(s, s->b), s->bl = 0;
  }
}
static void sha_hex(sha256 *s, char out[65]) {
  uint64_t bits = s->n * 8;
  uint8_t pad = 0x80, z = 0, len[8];
  sha_add(s, &pad, 1);
  while (s->bl != 56) sha_add(s, &z, 1);
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha_add(s, len, 8);
  for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", s->h[i]);
}

/* ---- helpers ---- */
static const char *ename(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EACCES) E(EPERM) E(ECONNREFUSED) E(ECONNRESET) E(ENETUNREACH)
    E(EHOSTUNREACH) E(ENETDOWN) E(ETIMEDOUT) E(EADDRNOTAVAIL) E(EADDRINUSE)
    E(EAFNOSUPPORT) E(EOPNOTSUPP) E(EBUSY) E(EAGAIN) E(EINVAL) E(ENOENT)
    E(EIO) E(EINPROGRESS) E(ENOTCONN) E(EPIPE)
#undef E
  }
  return "other";
}
static int die(const char *what) {
  printf("error %s: %s (%s)\n", what, strerror(errno), ename(errno));
  return 1;
}
static struct sockaddr_in addr4(const char *ip, const char *port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}
static int tcp_to(const char *ip, const char *port) {
  struct sockaddr_in a = addr4(ip, port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}
static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w, n -= (size_t)w;
  }
  return 0;
}
static const char *name_of(struct sockaddr_in *a, char *buf) {
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
  sprintf(buf, "%s:%u", ip, ntohs(a->sin_port));
  return buf;
}

/* ---- commands ---- */
static int cmd_get(char **av) {
  int fd = tcp_to(av[0], av[1]);
  if (fd < 0) return die("connect");
  struct sockaddr_in peer;
  socklen_t pl = sizeof(peer);
  char nb[64], req[512];
  if (getpeername(fd, (struct sockaddr *)&peer, &pl)) return die("getpeername");
  printf("peer %s\n", name_of(&peer, nb));
  snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", av[2], av[0]);
  if (write_all(fd, req, strlen(req))) return die("write");
  static char buf[65536];
  char hdr[8192];
  size_t hl = 0, body = 0;
  int in_body = 0;
  sha256 s;
  sha_init(&s);
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) return die("read");
    if (n == 0) break;
    char *p = buf;
    if (!in_body) {
      size_t k = (size_t)n < sizeof(hdr) - hl ? (size_t)n : sizeof(hdr) - hl;
      memcpy(hdr + hl, buf, k);
      char *e = memmem(hdr, hl + k, "\r\n\r\n", 4);
      if (!e) {
        hl += k;
        continue;
      }
      size_t used = (size_t)(e + 4 - hdr) - hl; /* bytes of buf in the header */
      in_body = 1;
      p += used;
      n -= (ssize_t)used;
    }
    sha_add(&s, (uint8_t *)p, (size_t)n);
    body += (size_t)n;
  }
  char hex[65];
  sha_hex(&s, hex);
  printf("sha256 %s bytes %zu\n", hex, body);
  close(fd);
  return 0;
}

static int cmd_udp(char **av) {
  struct sockaddr_in a = addr4(av[0], av[1]), from;
  socklen_t fl = sizeof(from);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct timeval tv = {5, 0};
  char buf[2048], nb[64];
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (sendto(fd, av[2], strlen(av[2]), 0, (struct sockaddr *)&a, sizeof(a)) < 0)
    return die("sendto");
  ssize_t n = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &fl);
  if (n < 0) return die("recvfrom");
  buf[n] = 0;
  printf("reply %s from %s\n", buf, name_of(&from, nb));
  return 0;
}

static int cmd_listen(char **av) {
  struct sockaddr_in a = addr4(av[0], av[1]), peer;
  socklen_t pl = sizeof(peer);
  int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
  char buf[256], out[300], nb[64];
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&a, sizeof(a))) return die("bind");
  if (listen(fd, 4)) return die("listen");
  printf("listening\n");
  fflush(stdout);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, 30000) != 1) return die("poll accept");
  int c = accept(fd, (struct sockaddr *)&peer, &pl);
  if (c < 0) return die("accept");
  printf("accepted from %s\n", name_of(&peer, nb));
  ssize_t n = read(c, buf, sizeof(buf) - 1);
  if (n <= 0) return die("read");
  buf[n] = 0;
  buf[strcspn(buf, "\r\n")] = 0;
  snprintf(out, sizeof(out), "guest-says:%s\n", buf);
  if (write_all(c, out, strlen(out))) return die("write");
  shutdown(c, SHUT_WR);
  close(c);
  close(fd);
  printf("served %s\n", buf);
  return 0;
}

static int cmd_udpserve(char **av) {
  struct sockaddr_in a = addr4(av[0], av[1]), from;
  socklen_t fl = sizeof(from);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct timeval tv = {30, 0};
  char buf[2048], out[2100], nb[64];
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (bind(fd, (struct sockaddr *)&a, sizeof(a))) return die("bind");
  ssize_t n = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &fl);
  if (n < 0) return die("recvfrom");
  buf[n] = 0;
  int len = snprintf(out, sizeof(out), "guest-echo:%s", buf);
  if (sendto(fd, out, (size_t)len, 0, (struct sockaddr *)&from, fl) != len)
    return die("sendto");
  printf("served %s from %s\n", buf, name_of(&from, nb));
  return 0;
}

static int cmd_connect(char **av) {
  int fd = tcp_to(av[0], av[1]);
  if (fd < 0) {
    printf("connect errno %s\n", ename(errno));
    return 0;
  }
  printf("connect ok\n");
  close(fd);
  return 0;
}

/* N connections at once, nonblocking connect (EINPROGRESS, EPOLLOUT,
 * SO_ERROR), each sends a line and waits for its echo. */
static int cmd_epoll(char **av) {
  int n = atoi(av[2]), ep = epoll_create1(0), done = 0, fionread_ok = 0;
  struct sockaddr_in a = addr4(av[0], av[1]);
  int *fd = calloc(n, sizeof(int)), *st = calloc(n, sizeof(int));
  for (int i = 0; i < n; i++) {
    fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd[i] < 0) return die("socket");
    int r = connect(fd[i], (struct sockaddr *)&a, sizeof(a));
    if (r && errno != EINPROGRESS) return die("connect");
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev)) return die("epoll_ctl");
  }
  while (done < n) {
    struct epoll_event evs[64];
    int k = epoll_wait(ep, evs, 64, 20000);
    if (k <= 0) {
      printf("epoll timeout: %d of %d done\n", done, n);
      return 1;
    }
    for (int j = 0; j < k; j++) {
      int i = (int)evs[j].data.u32;
      char msg[64], buf[128];
      snprintf(msg, sizeof(msg), "conn-%d\n", i);
      if (st[i] == 0) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
          errno = err;
          return die("SO_ERROR");
        }
        if (write_all(fd[i], msg, strlen(msg))) return die("send");
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd[i], &ev);
        st[i] = 1;
      } else if (st[i] == 1) {
        int avail = 0;
        if (ioctl(fd[i], FIONREAD, &avail) == 0 && avail == (int)strlen(msg))
          fionread_ok++;
        ssize_t r = recv(fd[i], buf, sizeof(buf), 0);
        if (r < 0 && errno == EAGAIN) continue;
        if (r != (ssize_t)strlen(msg) || memcmp(buf, msg, (size_t)r)) {
          printf("bad echo on %d (%zd)\n", i, r);
          return 1;
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, fd[i], NULL);
        st[i] = 2;
        done++;
      }
    }
  }
  /* all still open: the table has n sockets */
  FILE *f = fopen("/proc/net/hwsock", "r");
  int lines = -1;
  char line[512];
  while (f && fgets(line, sizeof(line), f)) lines++;
  if (f) fclose(f);
  for (int i = 0; i < n; i++) close(fd[i]);
  printf("epoll done %d fionread %d table %d\n", done, fionread_ok, lines);
  return 0;
}

static int cmd_hold(char **av) {
  int fd = tcp_to(av[0], av[1]);
  if (fd < 0) return die("connect");
  char line[512];
  FILE *f = fopen("/proc/net/hwsock", "r");
  if (!f) return die("/proc/net/hwsock");
  while (fgets(line, sizeof(line), f)) printf("table %s", line);
  fclose(f);
  if (syscall(SYS_delete_module, "hw_socket", O_NONBLOCK) == 0)
    printf("unload succeeded with a socket open\n");
  else
    printf("unload refused %s\n", ename(errno));
  close(fd);
  return 0;
}

static int cmd_nbget(char **av) {
  struct sockaddr_in a = addr4(av[0], av[1]);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), err = 0;
  socklen_t el = sizeof(err);
  int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
  printf("connect %s\n", r == 0 ? "at once" : ename(errno));
  if (r && errno != EINPROGRESS) return 1;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, 20000) != 1) return die("poll");
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
    errno = err;
    return die("SO_ERROR");
  }
  fcntl(fd, F_SETFL, 0);
  char req[256], buf[4096];
  snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", av[2]);
  if (write_all(fd, req, strlen(req))) return die("write");
  size_t got = 0;
  ssize_t n;
  while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
    got += (size_t)n;
  buf[got] = 0;
  char *body = strstr(buf, "\r\n\r\n");
  printf("body %s", body ? body + 4 : "(none)\n");
  close(fd);
  return 0;
}

static int cmd_fill(char **av) {
  struct sockaddr_in a = addr4(av[0], av[1]);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  static char chunk[65536];
  long long total = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof(a))) return die("connect");
  fcntl(fd, F_SETFL, O_NONBLOCK);
  for (size_t i = 0; i < sizeof(chunk); i++) chunk[i] = (char)('a' + i % 26);
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  for (;;) {
    ssize_t n = send(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EAGAIN) {
      if (poll(&p, 1, 2000) == 0) break; /* the peer's window is full */
      continue;
    }
    if (n < 0) return die("send");
    total += n;
    if (total > (1ll << 30)) {
      printf("no EAGAIN after 1 GiB\n");
      return 1;
    }
  }
  printf("eagain after data, poll says %d\n", poll(&p, 1, 0));
  close(fd); /* with data still in flight: it must still arrive */
  int g = tcp_to(av[0], av[2]);
  if (g < 0) return die("connect go");
  char msg[64], reply[64] = "";
  snprintf(msg, sizeof(msg), "%lld\n", total);
  if (write_all(g, msg, strlen(msg))) return die("write go");
  ssize_t n = read(g, reply, sizeof(reply) - 1);
  if (n > 0) reply[n] = 0;
  reply[strcspn(reply, "\n")] = 0;
  printf("sent %lld, %s\n", total, reply);
  return 0;
}

static int linger(char **av, int before) {
  struct sockaddr_in a = addr4(av[0], av[1]);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct linger l = {1, 0};
  char buf[64] = "";
  if (before && setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
    return die("SO_LINGER");
  if (connect(fd, (struct sockaddr *)&a, sizeof(a))) return die("connect");
  if (write_all(fd, "x", 1)) return die("write");
  if (!before && setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
    return die("SO_LINGER");
  close(fd);
  fd = tcp_to(av[0], av[1]);
  if (fd < 0) return die("connect again");
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  if (n > 0) buf[n] = 0;
  printf("peer saw %s\n", buf);
  close(fd);
  return 0;
}
static int cmd_linger(char **av) { return linger(av, 0); }
static int cmd_lingerpre(char **av) { return linger(av, 1); }

static int cmd_idle(char **av) {
  int n = atoi(av[3]), ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    int fd = tcp_to(av[0], av[1]);
    if (fd < 0) return die("connect silent");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) return die("epoll_ctl");
  }
  int fd = tcp_to(av[0], av[2]);
  if (fd < 0) return die("connect echo");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  if (write_all(fd, "ping\n", 5)) return die("write");
  int k = epoll_wait(ep, &ev, 1, 10000);
  char buf[16];
  if (k == 1 && ev.data.fd == fd && read(fd, buf, sizeof(buf)) == 5)
    printf("echo seen with %d idle connections\n", n);
  else
    printf("echo not seen with %d idle connections (starved)\n", n);
  return 0;
}

/* The event buffers must never run dry (PROTOCOL.md §16.3). Every
 * connection echoes one byte (its receive window is open), then 64 KiB is
 * written on each, last connection first, and read back first connection
 * first: the windows together (N x 64 KiB) exceed the module's buffers, and
 * the data of the connections read last arrives first. A driver that keeps
 * every buffer until its data is read leaves the device none for the
 * connection being read: SO_RCVTIMEO turns that hang into a quick failure. */
static char many_byte(int conn, int j) {
  if (j % 1024 == 1023) return '\n'; /* the echo server echoes lines */
  return (char)('A' + (conn * 7 + j / 1024 * 3 + j % 1024) % 58);
}
static int cmd_many(char **av) {
  enum { K = 65536 };
  int n = atoi(av[2]);
  int *fd = calloc((size_t)n, sizeof(int));
  char *buf = malloc(K), *want = malloc(K), one = 0;
  struct timeval tv = {.tv_sec = 10};
  if (!fd || !buf || !want) return die("malloc");
  for (int i = 0; i < n; i++) {
    fd[i] = tcp_to(av[0], av[1]);
    if (fd[i] < 0) return die("connect");
    if (setsockopt(fd[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
      return die("SO_RCVTIMEO");
    if (write_all(fd[i], "\n", 1)) return die("write one");
    if (read(fd[i], &one, 1) != 1 || one != '\n') return die("echo one");
  }
  for (int i = n - 1; i >= 0; i--) {
    for (int j = 0; j < K; j++) want[j] = many_byte(i, j);
    if (write_all(fd[i], want, K)) return die("write");
  }
  for (int i = 0; i < n; i++) {
    size_t off = 0;
    while (off < K) {
      ssize_t r = read(fd[i], buf + off, K - off);
      if (r <= 0) {
        printf("many: connection %d stuck at %zu of %d bytes: %s\n", i, off,
               K, r ? ename(errno) : "EOF");
        return 1;
      }
      off += (size_t)r;
    }
    for (int j = 0; j < K; j++)
      if (buf[j] != many_byte(i, j)) {
        printf("many: connection %d: byte %d wrong\n", i, j);
        return 1;
      }
  }
  for (int i = 0; i < n; i++) close(fd[i]);
  printf("many done %d x %d bytes\n", n, K);
  return 0;
}

/* The same with datagrams: each takes an event buffer of its own, so N x D
 * unread datagrams need far more buffers than the module has. */
static int cmd_manyudp(char **av) {
  int n = atoi(av[2]), d = atoi(av[3]);
  struct sockaddr_in a = addr4(av[0], av[1]);
  int *fd = calloc((size_t)n, sizeof(int));
  struct timeval tv = {.tv_sec = 10};
  char msg[64], want[80], buf[128];
  if (!fd) return die("malloc");
  for (int i = 0; i < n; i++) {
    fd[i] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd[i] < 0) return die("socket");
    if (setsockopt(fd[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
      return die("SO_RCVTIMEO");
    if (sendto(fd[i], "one", 3, 0, (struct sockaddr *)&a, sizeof(a)) != 3)
      return die("sendto one");
    if (recv(fd[i], buf, sizeof(buf), 0) != 8) return die("echo one");
  }
  for (int i = n - 1; i >= 0; i--)
    for (int k = 0; k < d; k++) {
      int l = snprintf(msg, sizeof(msg), "udp %d %d", i, k);
      if (sendto(fd[i], msg, (size_t)l, 0, (struct sockaddr *)&a,
                 sizeof(a)) != l)
        return die("sendto");
    }
  for (int i = 0; i < n; i++)
    for (int k = 0; k < d; k++) {
      struct sockaddr_in from;
      socklen_t fl = sizeof(from);
      char who[32];
      ssize_t r = recvfrom(fd[i], buf, sizeof(buf), 0,
                           (struct sockaddr *)&from, &fl);
      int l = snprintf(want, sizeof(want), "echo:udp %d %d", i, k);
      if (r < 0) {
        printf("manyudp: socket %d stuck at datagram %d of %d: %s\n", i, k,
               d, ename(errno));
        return 1;
      }
      if (r != l || memcmp(buf, want, (size_t)l) ||
          from.sin_port != a.sin_port ||
          from.sin_addr.s_addr != a.sin_addr.s_addr) {
        printf("manyudp: socket %d datagram %d: %zd bytes from %s\n", i, k, r,
               name_of(&from, who));
        return 1;
      }
    }
  for (int i = 0; i < n; i++) close(fd[i]);
  printf("manyudp done %d x %d datagrams\n", n, d);
  return 0;
}

static int fails;
static void expect(int good, const char *what) {
  printf("%s %s\n", good ? "pass" : "FAIL", what);
  fails += !good;
}

/* The socket semantics programs rely on, each line "pass WHAT". */
static int cmd_sem(char **av) {
  struct sockaddr_in echo = addr4(av[0], av[1]), dead = addr4(av[0], av[2]);
  struct sockaddr_in me;
  socklen_t ml = sizeof(me);
  char buf[256];
  int err = 0;
  socklen_t el = sizeof(err);

  /* blocking connect to a port where nothing listens */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  expect(connect(fd, (struct sockaddr *)&dead, sizeof(dead)) < 0 &&
         errno == ECONNREFUSED, "blocking connect refused: ECONNREFUSED");
  close(fd);

  /* nonblocking connect refused: EINPROGRESS or at once, then SO_ERROR */
  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int r = connect(fd, (struct sockaddr *)&dead, sizeof(dead));
  if (r < 0 && errno == EINPROGRESS) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    poll(&p, 1, 10000);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    expect(err == ECONNREFUSED, "nonblocking connect refused: SO_ERROR");
  } else {
    expect(r < 0 && errno == ECONNREFUSED, "nonblocking connect refused at once");
  }
  close(fd);

  /* a connection: options set before it, getsockname, peek, timeout,
   * fork, shutdown */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1, v = 0;
  socklen_t vl = sizeof(v);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  expect(connect(fd, (struct sockaddr *)&echo, sizeof(echo)) == 0, "connect");
  expect(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v != 0,
         "TCP_NODELAY set before connect holds after it");
  expect(getsockname(fd, (struct sockaddr *)&me, &ml) == 0 &&
         me.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && me.sin_port != 0,
         "getsockname: loopback address, a port");
  struct timeval tv = {0, 300000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  expect(recv(fd, buf, sizeof(buf), 0) < 0 && errno == EAGAIN,
         "SO_RCVTIMEO: recv times out with EAGAIN");
  expect(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN,
         "MSG_DONTWAIT: EAGAIN");
  pid_t pid = fork();
  if (pid == 0) _exit(write_all(fd, "from-child\n", 11) ? 1 : 0);
  int ws;
  waitpid(pid, &ws, 0);
  expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "fork: the child writes");
  tv.tv_sec = 10;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t n = recv(fd, buf, 5, MSG_PEEK | MSG_WAITALL);
  expect(n > 0 && !memcmp(buf, "from-", (size_t)n), "MSG_PEEK");
  n = recv(fd, buf, 11, MSG_WAITALL);
  expect(n == 11 && !memcmp(buf, "from-child\n", 11),
         "MSG_WAITALL: the echo of the child's line");
  expect(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
  expect(recv(fd, buf, sizeof(buf), 0) == 0, "then the peer's EOF: recv 0");
  expect(send(fd, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE,
         "send after SHUT_WR: EPIPE");
  close(fd);

  /* a peer that resets: the error of a send that was written behind
   * comes back from a later send */
  struct sockaddr_in rst = addr4(av[0], av[3]);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  int serr = 0; /* the reset may already fail the connect (host side) */
  if (connect(fd, (struct sockaddr *)&rst, sizeof(rst)) < 0)
    serr = errno;
  else
    recv(fd, buf, sizeof(buf), 0); /* its reset */
  for (int i = 0; i < 200 && !serr; i++)
    if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) < 0) serr = errno;
  expect(serr == ECONNRESET || serr == EPIPE, "a reset peer: ECONNRESET or EPIPE");
  close(fd);

  /* connected UDP: send/recv without addresses; getpeername */
  struct sockaddr_in peer;
  socklen_t pl = sizeof(peer);
  fd = socket(AF_INET, SOCK_DGRAM, 0);
  expect(connect(fd, (struct sockaddr *)&echo, sizeof(echo)) == 0, "udp connect");
  expect(getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 &&
         peer.sin_port == echo.sin_port, "udp getpeername");
  close(fd);
  printf("sem %s\n", fails ? "failed" : "passed");
  return fails != 0;
}

/* A connected UDP socket whose datagrams a closed port refuses (an ICMP
 * error, PROTOCOL.md 16.9), as on the guest's own UDP: readable, recv fails
 * with ECONNREFUSED once; the next refusal fails the next send, once; the
 * next is SO_ERROR's; then the same socket, connected to the echo server,
 * still receives. Each line "pass WHAT". */
static int cmd_udperr(char **av) {
  struct sockaddr_in echo = addr4(av[0], av[1]), dead = addr4(av[0], av[2]);
  char buf[256];
  int err = 0;
  socklen_t el = sizeof(err);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  expect(connect(fd, (struct sockaddr *)&dead, sizeof(dead)) == 0,
         "udperr: connect to a closed port");
  expect(send(fd, "q1", 2, 0) == 2, "udperr: send");
  expect(poll(&p, 1, 10000) == 1 && (p.revents & (POLLIN | POLLERR)),
         "udperr: readable after the refusal");
  expect(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == ECONNREFUSED,
         "udperr: recv fails with ECONNREFUSED");
  expect(poll(&p, 1, 300) == 0, "udperr: reported once");
  expect(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN,
         "udperr: then nothing to read (EAGAIN, not the end)");
  expect(send(fd, "q2", 2, 0) == 2, "udperr: send again");
  expect(poll(&p, 1, 10000) == 1, "udperr: readable after the second refusal");
  expect(send(fd, "q3", 2, 0) < 0 && errno == ECONNREFUSED,
         "udperr: the next send fails with ECONNREFUSED");
  expect(poll(&p, 1, 300) == 0, "udperr: the failed send sent nothing");
  expect(send(fd, "q4", 2, 0) == 2, "udperr: send a third time");
  expect(poll(&p, 1, 10000) == 1, "udperr: readable after the third refusal");
  expect(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
         err == ECONNREFUSED, "udperr: SO_ERROR is ECONNREFUSED");
  expect(poll(&p, 1, 300) == 0, "udperr: SO_ERROR cleared it");
  expect(connect(fd, (struct sockaddr *)&echo, sizeof(echo)) == 0,
         "udperr: connect the same socket to the echo server");
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  expect(send(fd, "q5", 2, 0) == 2, "udperr: send to the echo server");
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  expect(n == 7 && !memcmp(buf, "echo:q5", 7),
         "udperr: the socket still receives");
  close(fd);
  printf("udperr %s\n", fails ? "failed" : "passed");
  return fails != 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct { const char *name; int args; int (*fn)(char **); } cmds[] = {
      {"get", 3, cmd_get},         {"udp", 3, cmd_udp},
      {"listen", 2, cmd_listen},   {"connect", 2, cmd_connect},
      {"udpserve", 2, cmd_udpserve},
      {"epoll", 3, cmd_epoll},     {"hold", 2, cmd_hold},
      {"sem", 4, cmd_sem},         {"nbget", 3, cmd_nbget},
      {"fill", 3, cmd_fill},        {"linger", 2, cmd_linger},
      {"lingerpre", 2, cmd_lingerpre}, {"idle", 4, cmd_idle},
      {"many", 3, cmd_many},       {"manyudp", 4, cmd_manyudp},
      {"udperr", 3, cmd_udperr},
  };
  for (size_t i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
    if (!strcmp(argv[1], cmds[i].name) && argc == cmds[i].args + 2)
      return cmds[i].fn(argv + 2);
  fprintf(stderr, "usage: hwt get|udp|udpserve|listen|connect|epoll|hold|sem|nbget|fill|linger|lingerpre|idle|many|manyudp|udperr ARGS\n");
  return 2;
}
