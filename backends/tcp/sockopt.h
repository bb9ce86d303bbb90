/* tcp backend: the socket option allow-list (HWSOCK_SOL_* / HWSOCK_SO_* /
 * HWSOCK_TCP_* / HWSOCK_IPV6_V6ONLY of wire.h mapped to host options).
 * Anything not in the list is refused with HWSOCK_ENOPROTOOPT, so the guest
 * can never reach an option the device does not know. */
#ifndef HWSOCK_BACKEND_TCP_SOCKOPT_H
#define HWSOCK_BACKEND_TCP_SOCKOPT_H

#include <stddef.h>

#include "hwsock/backend.h"

/* SETSOCKOPT: level req->arg0, option req->arg1, value le32 (SO_LINGER: two
 * le32, onoff and seconds) read from req->iov. Returns 0 or a negative
 * HWSOCK_E* (HWSOCK_EINVAL when the value is too short). */
int hwsock__tcp_setsockopt(int fd, int family, const hwsock_breq *req);

/* GETSOCKOPT: writes the value into req->iov and sets *len to its size.
 * `connecting` makes SO_ERROR answer 0 without reading (and so clearing)
 * the error a pending connect is waiting for. */
int hwsock__tcp_getsockopt(int fd, int family, int connecting,
                           const hwsock_breq *req, size_t *len);

/* Applies the host-side options a policy rule sets (hwsock/hostopts.h) to
 * a new socket. Returns 0 or the first failure as a negative HWSOCK_E*
 * (e.g. an unknown congestion control algorithm: HWSOCK_ENOENT). */
int hwsock__tcp_apply_hostopts(int fd, const hwsock_hostopts *o);

#endif
