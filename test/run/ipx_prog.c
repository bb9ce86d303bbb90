/* An ordinary AF_IPX program for the hwsock-run tests: the host kernel has
 * no IPX, so it only works under hwsock-run with a VMM that gives the guest
 * an IPX network (hwsock-vmm --ipx-net). Plain socket calls, no libhwsock.
 *
 *   ipx_prog NET.NODE.SOCK N
 *
 * socket(AF_IPX, SOCK_DGRAM), bind to socket 0 of "my" network and node
 * (the device picks a number), getsockname (prints "addr NET.NODE.SOCK"),
 * then N datagrams of sizes 1..1470: sendto the peer, recvfrom the echo,
 * check size, bytes and source address; then the same with sendmsg/recvmsg
 * (a two-part iovec), then connect() + send()/recv() and getpeername().
 * Finally "ok N". stderr: the failing step. Exit: 0 ok, 1 usage, 2 socket
 * setup, 3 I/O error, 4 wrong data or address. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#if __has_include(<netipx/ipx.h>)
#include <netipx/ipx.h>
#else
/* glibc's <netipx/ipx.h> layout (Linux uapi linux/ipx.h) */
#define AF_IPX 4
struct sockaddr_ipx {
  sa_family_t sipx_family;
  uint16_t sipx_port;
  uint32_t sipx_network;
  unsigned char sipx_node[6];
  uint8_t sipx_type;
  unsigned char sipx_zero;
};
#endif

#define MAX_PAYLOAD 1470u

static int die(int code, const char *step) {
  fprintf(stderr, "ipx_prog: %s: %s\n", step, strerror(errno));
  return code;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* NET.NODE.SOCK (8.12.4 hex digits) into a sockaddr_ipx. */
static int parse(const char *s, struct sockaddr_ipx *a) {
  uint8_t b[12];
  static const unsigned group[3] = {4, 6, 2};
  unsigned k = 0;
  for (unsigned g = 0; g < 3; g++) {
    for (unsigned i = 0; i < group[g]; i++, k++) {
      int hi = hexval(*s++), lo = hi < 0 ? -1 : hexval(*s++);
      if (hi < 0 || lo < 0)
        return -1;
      b[k] = (uint8_t)(hi << 4 | lo);
    }
    if (*s++ != (g < 2 ? '.' : '\0'))
      return -1;
  }
  memset(a, 0, sizeof(*a));
  a->sipx_family = AF_IPX;
  memcpy(&a->sipx_network, b, 4);
  memcpy(a->sipx_node, b + 4, 6);
  memcpy(&a->sipx_port, b + 10, 2);
  return 0;
}

static void show(const struct sockaddr_ipx *a, char *buf, size_t len) {
  const unsigned char *n = a->sipx_node;
  snprintf(buf, len, "%08x.%02x%02x%02x%02x%02x%02x.%04x",
           (unsigned)ntohl(a->sipx_network), n[0], n[1], n[2], n[3], n[4],
           n[5], (unsigned)ntohs(a->sipx_port));
}

static int same(const struct sockaddr_ipx *a, const struct sockaddr_ipx *b) {
  return a->sipx_family == b->sipx_family &&
         a->sipx_network == b->sipx_network &&
         memcmp(a->sipx_node, b->sipx_node, 6) == 0 &&
         a->sipx_port == b->sipx_port;
}

static size_t size_of(unsigned long k) {
  return k == 0 ? 1 : k == 1 ? MAX_PAYLOAD : (size_t)((k * 613u) % MAX_PAYLOAD) + 1;
}

static void fill(unsigned char *p, size_t len, unsigned long k) {
  for (size_t i = 0; i < len; i++)
    p[i] = (unsigned char)((k * 29u + i * 7u + (i >> 7)) & 0xff);
}

static int check_echo(const unsigned char *out, const unsigned char *in,
                      size_t len, ssize_t got, const struct sockaddr_ipx *src,
                      socklen_t srclen, const struct sockaddr_ipx *peer,
                      const char *how, unsigned long k) {
  char a[40], b[40];
  if (got != (ssize_t)len) {
    fprintf(stderr, "ipx_prog: %s %lu: %zd bytes back, sent %zu\n", how, k,
            got, len);
    return 4;
  }
  if (memcmp(in, out, len) != 0) {
    fprintf(stderr, "ipx_prog: %s %lu: the echo differs\n", how, k);
    return 4;
  }
  if (src != NULL && (srclen != sizeof(*src) || !same(src, peer))) {
    show(src, a, sizeof(a));
    show(peer, b, sizeof(b));
    fprintf(stderr, "ipx_prog: %s %lu: from %s (len %u), expected %s\n", how,
            k, a, (unsigned)srclen, b);
    return 4;
  }
  return 0;
}

int main(int argc, char **argv) {
  struct sockaddr_ipx peer, me;
  unsigned long n;
  char *end;
  if (argc != 3 || parse(argv[1], &peer) < 0 ||
      (n = strtoul(argv[2], &end, 10), *end != '\0' || argv[2][0] == '\0')) {
    fprintf(stderr, "usage: ipx_prog NET.NODE.SOCK N\n");
    return 1;
  }
  int fd = socket(AF_IPX, SOCK_DGRAM, 0);
  if (fd < 0)
    return die(2, "socket(AF_IPX, SOCK_DGRAM)");
  memset(&me, 0, sizeof(me));
  me.sipx_family = AF_IPX; /* network, node, socket 0: mine, any number */
  if (bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0)
    return die(2, "bind");
  socklen_t sl = sizeof(me);
  if (getsockname(fd, (struct sockaddr *)&me, &sl) < 0)
    return die(2, "getsockname");
  char name[40];
  show(&me, name, sizeof(name));
  if (sl != sizeof(me) || me.sipx_family != AF_IPX || me.sipx_port == 0 ||
      me.sipx_network == 0) {
    fprintf(stderr, "ipx_prog: getsockname: %s (len %u) is not a bound "
            "address\n", name, (unsigned)sl);
    return 4;
  }
  printf("addr %s\n", name);
  fflush(stdout);

  unsigned char out[MAX_PAYLOAD], in[MAX_PAYLOAD + 64];
  int code;
  for (unsigned long k = 0; k < n; k++) {
    size_t len = size_of(k);
    fill(out, len, k);
    ssize_t w = sendto(fd, out, len, 0, (struct sockaddr *)&peer,
                       sizeof(peer));
    if (w != (ssize_t)len)
      return die(3, "sendto");
    struct sockaddr_ipx src;
    socklen_t srclen = sizeof(src);
    ssize_t got = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *)&src,
                           &srclen);
    if (got < 0)
      return die(3, "recvfrom");
    if ((code = check_echo(out, in, len, got, &src, srclen, &peer, "recvfrom",
                           k)) != 0)
      return code;
  }

  /* sendmsg/recvmsg with a two-part iovec */
  size_t len = 1000;
  fill(out, len, 12345);
  struct iovec iov[2] = {{out, 300}, {out + 300, len - 300}};
  struct msghdr m = {.msg_name = &peer, .msg_namelen = sizeof(peer),
                     .msg_iov = iov, .msg_iovlen = 2};
  if (sendmsg(fd, &m, 0) != (ssize_t)len)
    return die(3, "sendmsg");
  struct sockaddr_ipx src;
  struct iovec riov[2] = {{in, 100}, {in + 100, sizeof(in) - 100}};
  struct msghdr r = {.msg_name = &src, .msg_namelen = sizeof(src),
                     .msg_iov = riov, .msg_iovlen = 2};
  ssize_t got = recvmsg(fd, &r, 0);
  if (got < 0)
    return die(3, "recvmsg");
  if ((code = check_echo(out, in, len, got, &src, r.msg_namelen, &peer,
                         "recvmsg", 0)) != 0)
    return code;

  /* connected: send/recv without addresses, getpeername */
  if (connect(fd, (struct sockaddr *)&peer, sizeof(peer)) < 0)
    return die(3, "connect");
  struct sockaddr_ipx pn;
  sl = sizeof(pn);
  if (getpeername(fd, (struct sockaddr *)&pn, &sl) < 0)
    return die(3, "getpeername");
  if (sl != sizeof(pn) || !same(&pn, &peer)) {
    fprintf(stderr, "ipx_prog: getpeername is not the peer\n");
    return 4;
  }
  len = 777;
  fill(out, len, 999);
  if (send(fd, out, len, 0) != (ssize_t)len)
    return die(3, "send");
  got = recv(fd, in, sizeof(in), 0);
  if (got < 0)
    return die(3, "recv");
  if ((code = check_echo(out, in, len, got, NULL, 0, &peer, "recv", 0)) != 0)
    return code;
  close(fd);
  printf("ok %lu\n", n);
  return 0;
}
