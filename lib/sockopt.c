/* The socket option tables of the device (wire.h, hostopts.h): which
 * options a guest may get or set, their values' lengths, and the host
 * option the policy's `set:` holds for each. Used when a request is
 * checked (dispatch.c), a blob's options are checked (snapshot.c) and a
 * restore applies them (snapshot_sock.c). */
#include "device_int.h"
#include "hwsock/hostopts.h"

/* The socket options any backend may see (wire.h). SO_ERROR is get-only. */
int hwsock__sockopt_allowed(uint32_t level, uint32_t opt, int set) {
  switch (level) {
  case HWSOCK_SOL_SOCKET:
    switch (opt) {
    case HWSOCK_SO_ERROR:
      return !set;
    case HWSOCK_SO_REUSEADDR: case HWSOCK_SO_BROADCAST: case HWSOCK_SO_SNDBUF:
    case HWSOCK_SO_RCVBUF: case HWSOCK_SO_KEEPALIVE: case HWSOCK_SO_LINGER:
      return 1;
    default:
      return 0;
    }
  case HWSOCK_SOL_TCP:
    return opt == HWSOCK_TCP_NODELAY || opt == HWSOCK_TCP_KEEPIDLE ||
           opt == HWSOCK_TCP_KEEPINTVL || opt == HWSOCK_TCP_KEEPCNT ||
           (opt == HWSOCK_TCP_INFO && !set);
  case HWSOCK_SOL_IP:
    return opt == HWSOCK_IP_TOS;
  case HWSOCK_SOL_IPV6:
    return opt == HWSOCK_IPV6_V6ONLY || opt == HWSOCK_IPV6_TCLASS;
  default:
    return 0;
  }
}

/* The value length of a settable option: 8 for SO_LINGER, else 4. */
size_t hwsock__sockopt_len(uint32_t level, uint32_t opt) {
  return level == HWSOCK_SOL_SOCKET && opt == HWSOCK_SO_LINGER ? 8 : 4;
}

/* The host option a guest socket option stands for (hostopts.h), or 0. */
uint32_t hwsock__hostopt_bit(uint32_t level, uint32_t opt) {
  if (level == HWSOCK_SOL_TCP)
    return opt == HWSOCK_TCP_NODELAY     ? HWSOCK_HOSTOPT_NODELAY
           : opt == HWSOCK_TCP_KEEPIDLE  ? HWSOCK_HOSTOPT_KEEPIDLE
           : opt == HWSOCK_TCP_KEEPINTVL ? HWSOCK_HOSTOPT_KEEPINTVL
           : opt == HWSOCK_TCP_KEEPCNT   ? HWSOCK_HOSTOPT_KEEPCNT
                                         : 0;
  if (level == HWSOCK_SOL_SOCKET)
    return opt == HWSOCK_SO_KEEPALIVE ? HWSOCK_HOSTOPT_KEEPALIVE
           : opt == HWSOCK_SO_SNDBUF  ? HWSOCK_HOSTOPT_SNDBUF
           : opt == HWSOCK_SO_RCVBUF  ? HWSOCK_HOSTOPT_RCVBUF
                                      : 0;
  return 0;
}
