/* A statically linked TCP client for test/run (test_static): connects to
 * 127.0.0.1:PORT, sends a message, expects it echoed back, checks the
 * names the socket reports. Built with -static by tests.cmake, so it uses
 * no shared libc: hwsock-run must intercept it at the syscall boundary.
 * Exit 0 on success. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2)
    return 2;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)atoi(argv[1]));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    perror("static_echo: connect");
    return 1;
  }
  struct sockaddr_in peer;
  socklen_t pl = sizeof(peer);
  if (getpeername(s, (struct sockaddr *)&peer, &pl) < 0 ||
      peer.sin_family != AF_INET || peer.sin_port != sa.sin_port) {
    fprintf(stderr, "static_echo: getpeername does not name the server\n");
    return 1;
  }
  static char msg[100000], got[sizeof(msg)];
  for (size_t i = 0; i < sizeof(msg); i++)
    msg[i] = (char)('a' + i % 26);
  size_t off = 0;
  while (off < sizeof(msg)) {
    ssize_t n = write(s, msg + off, sizeof(msg) - off);
    if (n <= 0) {
      perror("static_echo: write");
      return 1;
    }
    off += (size_t)n;
  }
  shutdown(s, SHUT_WR);
  off = 0;
  for (;;) {
    ssize_t n = read(s, got + off, sizeof(got) - off);
    if (n < 0) {
      perror("static_echo: read");
      return 1;
    }
    if (n == 0)
      break;
    off += (size_t)n;
    if (off == sizeof(got))
      break;
  }
  if (off != sizeof(msg) || memcmp(msg, got, sizeof(msg)) != 0) {
    fprintf(stderr, "static_echo: echo differs (%zu bytes)\n", off);
    return 1;
  }
  close(s);
  puts("static ok");
  return 0;
}
