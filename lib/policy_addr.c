/* The address a rule is matched against: the one the host kernel will use.
 *
 * A guest's address and the kernel's are not always the same bytes, and a
 * policy that compared the guest's text would be bypassed by every address
 * the kernel rewrites (docs/POLICY.md, "Destinations as the kernel uses
 * them"). Linux (net/ipv4/route.c ip_route_output_key_hash_rcu,
 * net/ipv6/tcp_ipv6.c tcp_v6_connect, udpv6_sendmsg) sends:
 *  - to 0.0.0.0: the socket's own bound address, or 127.0.0.1 when it has
 *    none (or only the wildcard);
 *  - to ::: ::1, or 127.0.0.1 when the socket is bound to a v4-mapped
 *    address;
 *  - to ::ffff:a.b.c.d: IPv4 to a.b.c.d (the IPv4 code does the sending,
 *    so ::ffff:0.0.0.0 is 0.0.0.0 above);
 *  - to ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291): IPv6, on
 *    whatever route ::/96 has.
 * This is the only place that knows; the matcher and the device's every
 * destination check go through it. */
#include <string.h>

#include "hwsock/policy.h"
#include "hwsock/wire.h"

static const uint8_t zero16[16];
static const char unspec_bound[] =
    "unspecified destination of a bound socket refused";

static int is_mapped(const uint8_t b[16]) {
  return memcmp(b, zero16, 10) == 0 && b[10] == 0xff && b[11] == 0xff;
}

/* ::a.b.c.d except :: and ::1, which are IPv6's own. */
static int is_compat(const uint8_t b[16]) {
  return memcmp(b, zero16, 12) == 0 &&
         !(memcmp(b + 12, zero16, 3) == 0 && b[15] <= 1);
}

static int v4_scheme_of(int scheme) {
  return scheme == HWSOCK_SCHEME_TCP6   ? HWSOCK_SCHEME_TCP
         : scheme == HWSOCK_SCHEME_UDP6 ? HWSOCK_SCHEME_UDP
                                        : HWSOCK_SCHEME_NONE;
}

static int refuse(const char **why, const char *msg, int rc) {
  if (why != NULL)
    *why = msg;
  return rc;
}

int hwsock_policy_effective_addr(const hwsock_addr *addr, int direction,
                                 unsigned flags, hwsock_addr *out,
                                 const char **why) {
  hwsock_addr a;
  int outbound = direction == HWSOCK_DIR_OUTBOUND;

  if (why != NULL)
    *why = NULL;
  if (addr == NULL || out == NULL ||
      (direction != HWSOCK_DIR_OUTBOUND && direction != HWSOCK_DIR_INBOUND) ||
      hwsock_scheme_family(addr->scheme) != addr->family)
    return refuse(why, "invalid address or direction", HWSOCK_EINVAL);
  a = *addr;
  if (a.family == HWSOCK_AF_IPX) {
    *out = a;
    return 0; /* no address of IPX is rewritten by anyone */
  }
  if (a.family == HWSOCK_AF_INET6 && is_mapped(a.u.v6)) {
    /* IPv4 traffic, sent (or bound) by the IPv4 code: it is tcp/udp. */
    uint8_t v4[4];
    memcpy(v4, a.u.v6 + 12, 4);
    memset(&a.u, 0, sizeof(a.u));
    memcpy(a.u.v4, v4, 4);
    memset(a.zone, 0, sizeof(a.zone));
    a.family = HWSOCK_AF_INET;
    a.scheme = (uint8_t)v4_scheme_of(addr->scheme);
  } else if (a.family == HWSOCK_AF_INET6 && is_compat(a.u.v6)) {
    /* The bytes say IPv4, the host routes IPv6: no rule can mean both. */
    return refuse(why, "IPv4-compatible address (::a.b.c.d) refused",
                  outbound ? HWSOCK_ENETUNREACH : HWSOCK_EADDRNOTAVAIL);
  }
  if (!outbound) {
    *out = a; /* a local address: the wildcard stays one */
    return 0;
  }

  if (a.port == 0) /* what the kernel says to sendto port 0 */
    return refuse(why, "destination port 0 refused", HWSOCK_EINVAL);
  if (a.family == HWSOCK_AF_INET && memcmp(a.u.v4, zero16, 4) == 0) {
    /* 0.0.0.0 is the bound address when there is one: the device does not
     * follow which, so it refuses rather than guess */
    if (flags & HWSOCK_POLICY_BOUND)
      return refuse(why, unspec_bound, HWSOCK_ENETUNREACH);
    a.u.v4[0] = 127;
    a.u.v4[3] = 1;
  } else if (a.family == HWSOCK_AF_INET6 && memcmp(a.u.v6, zero16, 16) == 0) {
    /* :: is ::1, or 127.0.0.1 when bound to a mapped address */
    if (flags & HWSOCK_POLICY_BOUND)
      return refuse(why, unspec_bound, HWSOCK_ENETUNREACH);
    a.u.v6[15] = 1;
    memset(a.zone, 0, sizeof(a.zone));
  }
  *out = a;
  return 0;
}
