/* Test support: plain host sockets on the loopback interface, the peers that
 * backend and end-to-end tests talk to. Every failure is a criterion
 * assertion (the test stops there). Test support only; not library API. */
#ifndef HWSOCK_TEST_LOOPBACK_SOCK_H
#define HWSOCK_TEST_LOOPBACK_SOCK_H

#include <stdint.h>
#include <sys/socket.h>

#include "hwsock/uri.h"

/* A socket of `family` (AF_INET or AF_INET6) and `type` (SOCK_STREAM,
 * SOCK_DGRAM), close-on-exec and blocking, bound to 127.0.0.1 or ::1 on a
 * port the kernel picks; *port receives that port. Returns the fd (the
 * caller closes it). */
int loopback_socket(int family, int type, uint16_t *port);

/* The port of a socket address (AF_INET or AF_INET6), host byte order. */
uint16_t loopback_port_of(const struct sockaddr_storage *ss);

/* The loopback address of a scheme's family (127.0.0.1, or ::1 for tcp6 and
 * udp6) with `port`, as a request address. */
hwsock_addr loopback_addr(int scheme, uint16_t port);

#endif
