/* udp backend: the socket option allow-list (wire.h's HWSOCK_SOL_* and
 * option numbers mapped to host options). UDP knows SO_REUSEADDR,
 * SO_BROADCAST, SO_RCVBUF, SO_SNDBUF, SO_ERROR (get only) and, on udp6
 * sockets, IPV6_V6ONLY; anything else is HWSOCK_ENOPROTOOPT, so the guest
 * never reaches an option the device does not know. */
#ifndef HWSOCK_BACKEND_UDP_SOCKOPT_H
#define HWSOCK_BACKEND_UDP_SOCKOPT_H

#include <stddef.h>

#include "hwsock/backend.h"

/* SETSOCKOPT: level req->arg0, option req->arg1, le32 value read from
 * req->iov. Returns 0 or a negative HWSOCK_E* (HWSOCK_EINVAL when the value
 * is shorter than 4 bytes). */
int hwsock__udp_setsockopt(int fd, int family, const hwsock_breq *req);

/* GETSOCKOPT: writes the le32 value into req->iov and sets *len to 4.
 * SO_ERROR answers the wire error value (a pending ICMP error), not errno. */
int hwsock__udp_getsockopt(int fd, int family, const hwsock_breq *req,
                           size_t *len);

#endif
