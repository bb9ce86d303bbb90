/* Plain loopback sockets for tests (loopback_sock.h). */
#include "support/loopback_sock.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "hwsock/wire.h"

uint16_t loopback_port_of(const struct sockaddr_storage *ss) {
  return ntohs(ss->ss_family == AF_INET
                   ? ((const struct sockaddr_in *)ss)->sin_port
                   : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

int loopback_socket(int family, int type, uint16_t *port) {
  int fd = socket(family, type | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t sl;
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sl = sizeof(*sin);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
    sl = sizeof(*sin6);
  }
  cr_assert_eq(bind(fd, (struct sockaddr *)&ss, sl), 0);
  sl = sizeof(ss);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
  *port = loopback_port_of(&ss);
  return fd;
}

hwsock_addr loopback_addr(int scheme, uint16_t port) {
  hwsock_addr a;
  memset(&a, 0, sizeof(a));
  a.scheme = (uint8_t)scheme;
  a.family = (uint8_t)hwsock_scheme_family(scheme);
  a.port = port;
  if (a.family == HWSOCK_AF_INET6) {
    a.u.v6[15] = 1;
  } else {
    a.u.v4[0] = 127;
    a.u.v4[3] = 1;
  }
  return a;
}
