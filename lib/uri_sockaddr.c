/* Between parsed addresses and the host's sockaddr, at the edge where a
 * backend calls the host's sockets. Zone ids become scope ids here and
 * nowhere else, since interface names mean something only on this host. */
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "hwsock/uri.h"
#include "hwsock/wire.h"

/* "eth0" through if_nametoindex, or a decimal interface number. */
static int zone_to_scope(const char *zone, uint32_t *scope) {
  size_t n = strnlen(zone, HWSOCK_ZONE_MAX + 1), i;
  uint64_t v = 0;
  *scope = 0;
  if (n == 0)
    return 0;
  if (n > HWSOCK_ZONE_MAX)
    return HWSOCK_EINVAL;
  for (i = 0; i < n && zone[i] >= '0' && zone[i] <= '9'; i++)
    v = v * 10 + (uint64_t)(zone[i] - '0');
  if (i == n) { /* all digits: a number, checked like a port */
    if ((n > 1 && zone[0] == '0') || v > UINT32_MAX)
      return HWSOCK_EINVAL;
    *scope = (uint32_t)v;
    return 0;
  }
  *scope = if_nametoindex(zone);
  return *scope ? 0 : HWSOCK_EADDRNOTAVAIL;
}

/* The interface's name when it fits the zone grammar, else its number. */
static void scope_to_zone(uint32_t scope, char zone[HWSOCK_ZONE_MAX + 1]) {
  char name[IF_NAMESIZE > HWSOCK_ZONE_MAX + 1 ? IF_NAMESIZE : HWSOCK_ZONE_MAX + 1];
  int ok;
  memset(zone, 0, HWSOCK_ZONE_MAX + 1);
  if (scope == 0)
    return;
  ok = if_indextoname(scope, name) != NULL &&
       strnlen(name, sizeof(name)) <= HWSOCK_ZONE_MAX;
  for (size_t i = 0; ok && name[i]; i++) {
    char c = name[i];
    ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
  }
  if (ok)
    memcpy(zone, name, strlen(name) + 1);
  else
    snprintf(zone, HWSOCK_ZONE_MAX + 1, "%u", (unsigned)scope);
}

int hwsock_addr_to_sockaddr(const hwsock_addr *addr, struct sockaddr *sa,
                            unsigned *len) {
  if (addr == NULL || sa == NULL || len == NULL)
    return HWSOCK_EINVAL;
  if (addr->family == HWSOCK_AF_INET) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(addr->port);
    memcpy(&sin.sin_addr, addr->u.v4, 4);
    memcpy(sa, &sin, sizeof(sin));
    *len = sizeof(sin);
    return 0;
  }
  if (addr->family == HWSOCK_AF_INET6) {
    struct sockaddr_in6 sin6;
    uint32_t scope;
    int rc = zone_to_scope(addr->zone, &scope);
    if (rc < 0)
      return rc;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(addr->port);
    memcpy(&sin6.sin6_addr, addr->u.v6, 16);
    sin6.sin6_scope_id = scope;
    memcpy(sa, &sin6, sizeof(sin6));
    *len = sizeof(sin6);
    return 0;
  }
  return addr->family == HWSOCK_AF_IPX ? HWSOCK_EAFNOSUPPORT : HWSOCK_EINVAL;
}

int hwsock_addr_from_sockaddr(const struct sockaddr *sa, unsigned len,
                              int scheme, hwsock_addr *out) {
  unsigned family = hwsock_scheme_family(scheme);
  sa_family_t sa_family;
  hwsock_addr a;

  if (sa == NULL || out == NULL || family == 0 ||
      len < offsetof(struct sockaddr, sa_family) + sizeof(sa_family))
    return HWSOCK_EINVAL;
  memcpy(&sa_family, (const char *)sa + offsetof(struct sockaddr, sa_family),
         sizeof(sa_family));
  memset(&a, 0, sizeof(a));
  a.scheme = (uint8_t)scheme;
  a.family = (uint8_t)family;
  if (family == HWSOCK_AF_INET && sa_family == AF_INET) {
    struct sockaddr_in sin;
    if (len < sizeof(sin))
      return HWSOCK_EINVAL;
    memcpy(&sin, sa, sizeof(sin));
    memcpy(a.u.v4, &sin.sin_addr, 4);
    a.port = ntohs(sin.sin_port);
  } else if (family == HWSOCK_AF_INET6 && sa_family == AF_INET6) {
    struct sockaddr_in6 sin6;
    if (len < sizeof(sin6))
      return HWSOCK_EINVAL;
    memcpy(&sin6, sa, sizeof(sin6));
    memcpy(a.u.v6, &sin6.sin6_addr, 16);
    a.port = ntohs(sin6.sin6_port);
    scope_to_zone(sin6.sin6_scope_id, a.zone);
  } else {
    return HWSOCK_EAFNOSUPPORT;
  }
  *out = a;
  return 0;
}

int hwsock_addr_embedded_v4(const hwsock_addr *addr, uint8_t v4[4]) {
  static const uint8_t zero[12];
  const uint8_t *b;
  int mapped, compat;
  if (addr == NULL || addr->family != HWSOCK_AF_INET6)
    return 0;
  b = addr->u.v6;
  mapped = memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff;
  /* ::a.b.c.d, except :: (unspecified) and ::1 (loopback) */
  compat = memcmp(b, zero, 12) == 0 &&
           !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1);
  if (!mapped && !compat)
    return 0;
  if (v4 != NULL)
    memcpy(v4, b + 12, 4);
  return 1;
}
