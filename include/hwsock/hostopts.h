/* Host-side socket options a policy rule sets on offloaded sockets
 * (`set:` in docs/POLICY.md): the seed's "host-side control of network
 * protocols". The guest can neither see nor override them: a guest
 * SETSOCKOPT of an option the rule set fails with HWSOCK_EPERM. */
#ifndef HWSOCK_HOSTOPTS_H
#define HWSOCK_HOSTOPTS_H

#include <stdint.h>

#define HWSOCK_HOSTOPT_NODELAY (1u << 0)    /* TCP_NODELAY */
#define HWSOCK_HOSTOPT_KEEPALIVE (1u << 1)  /* SO_KEEPALIVE */
#define HWSOCK_HOSTOPT_KEEPIDLE (1u << 2)   /* TCP_KEEPIDLE, seconds */
#define HWSOCK_HOSTOPT_KEEPINTVL (1u << 3)  /* TCP_KEEPINTVL, seconds */
#define HWSOCK_HOSTOPT_KEEPCNT (1u << 4)    /* TCP_KEEPCNT */
#define HWSOCK_HOSTOPT_SNDBUF (1u << 5)     /* SO_SNDBUF, bytes */
#define HWSOCK_HOSTOPT_RCVBUF (1u << 6)     /* SO_RCVBUF, bytes */
#define HWSOCK_HOSTOPT_CONGESTION (1u << 7) /* TCP_CONGESTION, a name */

#define HWSOCK_HOSTOPT_NAME_MAX 15 /* congestion control name, bytes */

typedef struct hwsock_hostopts {
  uint32_t mask; /* HWSOCK_HOSTOPT_* present */
  int32_t nodelay, keepalive, keepidle, keepintvl, keepcnt, sndbuf, rcvbuf;
  char congestion[HWSOCK_HOSTOPT_NAME_MAX + 1];
} hwsock_hostopts;

#endif
