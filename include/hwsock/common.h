/* libhwsock: what every layer shares: export macro and the one error map.
 *
 * Errors. Every function of the library returns 0 (or a non-negative count)
 * on success and a negative HWSOCK_E* value on failure. The numeric values
 * are part of the wire protocol (docs/PROTOCOL.md): a response's status field
 * carries the positive value. They equal Linux errno numbers where one exists
 * so that traces read naturally, but they are fixed: on any host they are
 * mapped to and from the host's errno only at the edges
 * (hwsock_err_to_errno / hwsock_err_from_errno). */
#ifndef HWSOCK_COMMON_H
#define HWSOCK_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "hwsock/version.h"

#if defined(__GNUC__) || defined(__clang__)
#define HWSOCK_EXTERN __attribute__((visibility("default")))
#else
#define HWSOCK_EXTERN
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* XX(NAME, wire value, host errno, message). The host errno column is what
 * hwsock_err_to_errno() returns; protocol-only outcomes map to the errno an
 * application would understand best. */
#define HWSOCK_ERRNO_MAP(XX)                                                  \
  XX(EPERM, 1, EPERM, "operation not permitted")                              \
  XX(ENOENT, 2, ENOENT, "no such file or directory")                          \
  XX(EINTR, 4, EINTR, "interrupted system call")                              \
  XX(EIO, 5, EIO, "i/o error")                                                \
  XX(EBADF, 9, EBADF, "bad socket id")                                        \
  XX(EAGAIN, 11, EAGAIN, "resource temporarily unavailable")                  \
  XX(ENOMEM, 12, ENOMEM, "not enough memory")                                 \
  XX(EACCES, 13, EACCES, "permission denied")                                 \
  XX(EFAULT, 14, EFAULT, "bad address in guest memory")                       \
  XX(EBUSY, 16, EBUSY, "resource busy")                                       \
  XX(EEXIST, 17, EEXIST, "already exists")                                    \
  XX(EINVAL, 22, EINVAL, "invalid argument")                                  \
  XX(EMFILE, 24, EMFILE, "too many sockets")                                  \
  XX(ENOSPC, 28, ENOSPC, "no space left")                                     \
  XX(EPIPE, 32, EPIPE, "broken pipe")                                         \
  XX(ERANGE, 34, ERANGE, "result too large")                                  \
  XX(ENOSYS, 38, ENOSYS, "operation not implemented")                         \
  XX(ENAMETOOLONG, 36, ENAMETOOLONG, "name too long")                         \
  XX(EPROTO, 71, EPROTO, "protocol error")                                    \
  XX(EBADMSG, 74, EBADMSG, "malformed request")                               \
  XX(EMSGSIZE, 90, EMSGSIZE, "message too long")                              \
  XX(EPROTOTYPE, 91, EPROTOTYPE, "protocol wrong type for socket")            \
  XX(ENOPROTOOPT, 92, ENOPROTOOPT, "protocol option not available")           \
  XX(EPROTONOSUPPORT, 93, EPROTONOSUPPORT, "protocol not supported")          \
  XX(EOPNOTSUPP, 95, EOPNOTSUPP, "operation not supported")                   \
  XX(EAFNOSUPPORT, 97, EAFNOSUPPORT, "address family not supported")          \
  XX(EADDRINUSE, 98, EADDRINUSE, "address already in use")                    \
  XX(EADDRNOTAVAIL, 99, EADDRNOTAVAIL, "address not available")               \
  XX(ENETDOWN, 100, ENETDOWN, "network is down")                              \
  XX(ENETUNREACH, 101, ENETUNREACH, "network is unreachable")                 \
  XX(ECONNABORTED, 103, ECONNABORTED, "connection aborted")                   \
  XX(ECONNRESET, 104, ECONNRESET, "connection reset by peer")                 \
  XX(ENOBUFS, 105, ENOBUFS, "no buffer space available")                      \
  XX(EISCONN, 106, EISCONN, "socket is already connected")                    \
  XX(ENOTCONN, 107, ENOTCONN, "socket is not connected")                      \
  XX(ESHUTDOWN, 108, ESHUTDOWN, "cannot send after socket shutdown")          \
  XX(ETIMEDOUT, 110, ETIMEDOUT, "connection timed out")                       \
  XX(ECONNREFUSED, 111, ECONNREFUSED, "connection refused")                   \
  XX(EHOSTUNREACH, 113, EHOSTUNREACH, "host is unreachable")                  \
  XX(EALREADY, 114, EALREADY, "operation already in progress")                \
  XX(EINPROGRESS, 115, EINPROGRESS, "operation in progress")                  \
  XX(ECANCELED, 125, ECANCELED, "operation canceled")                         \
  XX(EDECLINED, 1000, EOPNOTSUPP,                                             \
     "declined: not offloaded, use the guest's own stack")                   \
  XX(EBADURI, 1001, EINVAL, "malformed address URI")                          \
  XX(ENEEDSRESET, 1002, EIO, "device needs reset")                            \
  XX(EABI, 1003, ENOEXEC, "incompatible plugin ABI")                          \
  XX(EBADCONFIG, 1004, EINVAL, "invalid configuration")                       \
  XX(ESRCH, 3, ESRCH, "no such process")                                      \
  XX(ENODEV, 19, ENODEV, "no such device")                                    \
  XX(ENFILE, 23, ENFILE, "too many open files in the system")                 \
  XX(EDOM, 33, EDOM, "argument out of domain")                                \
  XX(ENOTSOCK, 88, ENOTSOCK, "not a socket")                                  \
  XX(EDESTADDRREQ, 89, EDESTADDRREQ, "destination address required")          \
  XX(ESOCKTNOSUPPORT, 94, ESOCKTNOSUPPORT, "socket type not supported")       \
  XX(ENETRESET, 102, ENETRESET, "connection dropped by network reset")        \
  XX(EHOSTDOWN, 112, EHOSTDOWN, "host is down")

typedef enum hwsock_errno {
#define HWSOCK__ERR_ENUM(name, val, host, msg) HWSOCK_##name = -(val),
  HWSOCK_ERRNO_MAP(HWSOCK__ERR_ENUM)
#undef HWSOCK__ERR_ENUM
  HWSOCK_ERRNO_MAX_ = -4096 /* keeps the enum signed; not an error */
} hwsock_errno;

/* Message for a negative HWSOCK_E* value (or 0). Never NULL; unknown values
 * give "unknown error". The string is static: do not free it. */
HWSOCK_EXTERN const char *hwsock_strerror(int err);

/* Symbolic name ("HWSOCK_ECONNRESET") for a negative HWSOCK_E* value, or
 * "HWSOCK_EUNKNOWN". Static string. */
HWSOCK_EXTERN const char *hwsock_err_name(int err);

/* Host errno for a negative HWSOCK_E* value (positive result, EIO if
 * unknown, 0 for 0). */
HWSOCK_EXTERN int hwsock_err_to_errno(int err);

/* Negative HWSOCK_E* value for a host errno (positive input). Unknown
 * errnos become HWSOCK_EIO. 0 gives 0. */
HWSOCK_EXTERN int hwsock_err_from_errno(int host_errno);

/* True when a positive wire status value names a known error. */
HWSOCK_EXTERN int hwsock_err_is_known(uint32_t wire_status);

/* True when a datagram socket's error err (negative HWSOCK_E*) is soft
 * (docs/PROTOCOL.md §16.9): what the host kernel makes of an ICMP or ICMPv6
 * error answering an earlier datagram, reported once; the socket goes on.
 * Inline, no symbol: the device and the drivers share this one list. */
static inline int hwsock_err_is_soft(int err) {
  switch (err) {
  case HWSOCK_ECONNREFUSED:
  case HWSOCK_EHOSTUNREACH:
  case HWSOCK_ENETUNREACH:
  case HWSOCK_EHOSTDOWN:
  case HWSOCK_ENOPROTOOPT:
  case HWSOCK_EMSGSIZE:
  case HWSOCK_EACCES:
  case HWSOCK_EPROTO:
    return 1;
  default:
    return 0;
  }
}

/* Version of the library linked at run time (HWSOCK_VERSION_HEX form). */
HWSOCK_EXTERN unsigned hwsock_version(void);
HWSOCK_EXTERN const char *hwsock_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
