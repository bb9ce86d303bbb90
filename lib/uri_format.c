/* hwsock_uri_format: the one canonical text of an address, so that equal
 * addresses always read the same in logs, policies and over the wire.
 * IPv6 follows RFC 5952 and is written here rather than by inet_ntop, whose
 * choices (e.g. for ::a.b.c.d) differ between C libraries. */
#include <stdio.h>
#include <string.h>

#include "hwsock/uri.h"
#include "hwsock/wire.h"

static const char hex_digits[] = "0123456789abcdef";

/* RFC 5952: lowercase, no leading zeros, the longest run of two or more
 * zero groups (the first one on a tie) as "::", and the v4-mapped prefix
 * ::ffff:0:0/96 with a dotted quad (section 5). out holds >= 46 bytes. */
static size_t format_ipv6(const uint8_t a[16], char *out) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  unsigned g[8];
  int best = -1, best_len = 0;
  size_t n = 0;

  if (memcmp(a, mapped, sizeof(mapped)) == 0)
    return (size_t)sprintf(out, "::ffff:%u.%u.%u.%u", a[12], a[13], a[14],
                           a[15]);
  for (int i = 0; i < 8; i++)
    g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && g[j] == 0)
      j++;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j > i ? j : i + 1;
  }
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      out[n++] = ':';
      out[n++] = ':';
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len)
      out[n++] = ':';
    int shift = 12;
    while (shift > 0 && ((g[i] >> shift) & 0xf) == 0)
      shift -= 4;
    for (; shift >= 0; shift -= 4)
      out[n++] = hex_digits[(g[i] >> shift) & 0xf];
  }
  out[n] = '\0';
  return n;
}

/* A zone must be one the parser would accept, or the output would not
 * parse back. */
static int zone_ok(const char *z) {
  size_t n = strnlen(z, HWSOCK_ZONE_MAX + 1);
  if (n > HWSOCK_ZONE_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = z[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
          (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

int hwsock_uri_format(const hwsock_addr *addr, char *buf, size_t size) {
  char text[HWSOCK_URI_MAX + 64], ip6[48];
  const char *name;
  int n;

  if (buf != NULL && size > 0)
    buf[0] = '\0';
  if (addr == NULL || (name = hwsock_scheme_name(addr->scheme)) == NULL ||
      addr->family != hwsock_scheme_family(addr->scheme))
    return HWSOCK_EINVAL;
  switch (addr->family) {
  case HWSOCK_AF_INET:
    n = snprintf(text, sizeof(text), "%s://%u.%u.%u.%u:%u", name,
                 addr->u.v4[0], addr->u.v4[1], addr->u.v4[2], addr->u.v4[3],
                 addr->port);
    break;
  case HWSOCK_AF_INET6:
    if (!zone_ok(addr->zone))
      return HWSOCK_EINVAL;
    format_ipv6(addr->u.v6, ip6);
    n = snprintf(text, sizeof(text), "%s://[%s%s%.*s]:%u", name, ip6,
                 addr->zone[0] ? "%25" : "", HWSOCK_ZONE_MAX, addr->zone,
                 addr->port);
    break;
  default: { /* HWSOCK_AF_IPX */
    const uint8_t *net = addr->u.ipx.net, *node = addr->u.ipx.node;
    n = snprintf(text, sizeof(text),
                 "%s://%02x%02x%02x%02x.%02x%02x%02x%02x%02x%02x.%04x", name,
                 net[0], net[1], net[2], net[3], node[0], node[1], node[2],
                 node[3], node[4], node[5], addr->port);
    break;
  }
  }
  if (buf == NULL || size == 0)
    return HWSOCK_ENOSPC;
  if ((size_t)n >= size) {
    memcpy(buf, text, size - 1);
    buf[size - 1] = '\0';
    return HWSOCK_ENOSPC;
  }
  memcpy(buf, text, (size_t)n + 1);
  return n;
}
