/* Scalar values of a policy file: address prefixes, port ranges, errno
 * names. One strict grammar each (docs/POLICY.md), so that what an operator
 * reads in the file is exactly what the matcher compares. */
#include <arpa/inet.h>
#include <string.h>

#include "hwsock/wire.h"
#include "hwsock/backend_util.h" /* hwsock_hex_digit */
#include "policy_int.h"

/* Decimal number without sign or leading zero, at most `max`: returns the
 * number of bytes consumed (> 0), or one of these. */
#define DEC_NONE (-1)    /* no digit */
#define DEC_ZERO (-2)    /* leading zero */
#define DEC_RANGE (-3)   /* above max */
static int parse_dec(const char *s, size_t len, unsigned max, unsigned *out) {
  size_t i = 0;
  unsigned v = 0;
  while (i < len && s[i] >= '0' && s[i] <= '9') {
    if (i == 1 && s[0] == '0')
      return DEC_ZERO;
    v = v * 10u + (unsigned)(s[i] - '0');
    if (v > max)
      return DEC_RANGE;
    i++;
  }
  if (i == 0)
    return DEC_NONE;
  *out = v;
  return (int)i;
}

/* Four decimal octets, nothing else: the URI grammar's IPv4 form. */
static int parse_v4(const char *s, size_t len, uint8_t out[4],
                    const char **why) {
  static const char *const grammar =
      "IPv4 address needs four decimal octets a.b.c.d";
  size_t pos = 0;
  for (int i = 0; i < 4; i++) {
    unsigned v;
    if (i > 0) {
      if (pos >= len || s[pos] != '.') {
        *why = grammar;
        return -1;
      }
      pos++;
    }
    int n = parse_dec(s + pos, len - pos, 255, &v);
    if (n < 0) {
      *why = n == DEC_ZERO    ? "IPv4 octet with a leading zero"
             : n == DEC_RANGE ? "IPv4 octet above 255"
                              : grammar;
      return -1;
    }
    pos += (size_t)n;
    out[i] = (uint8_t)v;
  }
  if (pos != len) {
    *why = grammar;
    return -1;
  }
  return 0;
}

static int parse_v6(const char *s, size_t len, uint8_t out[16],
                    const char **why) {
  char buf[64];
  if (len == 0 || len >= sizeof(buf)) {
    *why = "malformed IPv6 address";
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
          (c >= 'A' && c <= 'F') || c == ':' || c == '.')) {
      *why = c == '%' ? "zone ids have no place in a policy prefix"
                      : "malformed IPv6 address";
      return -1;
    }
  }
  memcpy(buf, s, len);
  buf[len] = '\0';
  if (inet_pton(AF_INET6, buf, out) != 1) {
    *why = "malformed IPv6 address";
    return -1;
  }
  return 0;
}

static int host_bits_set(const uint8_t *a, unsigned bytes, unsigned prefix) {
  for (unsigned bit = prefix; bit < bytes * 8u; bit++)
    if (a[bit / 8u] & (0x80u >> (bit % 8u)))
      return 1;
  return 0;
}

/* An IPv6 prefix that holds only addresses embedding IPv4 can never match:
 * a v4-mapped address is matched as IPv4 and a v4-compatible one is refused
 * before any rule (hwsock_policy_effective_addr). Refusing the prefix turns
 * a silent hole into an error. :: and ::1 are native IPv6. Returns 1 for a
 * prefix inside ::ffff:0:0/96, 2 for one of v4-compatible addresses. */
static int only_embedded_v4(const uint8_t a[16], unsigned prefix) {
  static const uint8_t zero[16];
  if (prefix < 96)
    return 0;
  if (memcmp(a, zero, 10) == 0 && a[10] == 0xff && a[11] == 0xff)
    return 1; /* inside ::ffff:0:0/96 */
  if (memcmp(a, zero, 12) != 0)
    return 0;
  if (memcmp(a, zero, 16) == 0)
    return 0; /* contains :: */
  if (prefix == 128 && memcmp(a, zero, 15) == 0 && a[15] == 1)
    return 0; /* ::1 */
  return 2;
}

int hwsock__policy_parse_net(const char *s, size_t len, hwsock__net *out,
                             const char **why) {
  const char *slash = memchr(s, '/', len);
  size_t alen = slash ? (size_t)(slash - s) : len;
  int v6 = memchr(s, ':', alen) != NULL;
  int v4 = !v6 && memchr(s, '.', alen) != NULL;

  memset(out, 0, sizeof(*out));
  if (!v4 && !v6) {
    if (slash == NULL && len == 8) {
      for (size_t i = 0; i < 8; i++) {
        int h = hwsock_hex_digit(s[i]);
        if (h < 0)
          goto not_a_net;
        out->addr[i / 2] = (uint8_t)(out->addr[i / 2] << 4 | h);
      }
      out->family = HWSOCK_AF_IPX;
      out->prefix = 32;
      return 0;
    }
  not_a_net:
    *why = "expected an IPv4 or IPv6 address or prefix (a.b.c.d/N, x:y::z/N) "
           "or an IPX network number (8 hex digits)";
    return -1;
  }

  unsigned max = v4 ? 32u : 128u;
  unsigned prefix = max;
  if (v4 ? parse_v4(s, alen, out->addr, why)
         : parse_v6(s, alen, out->addr, why))
    return -1;
  if (slash != NULL) {
    size_t plen = len - alen - 1;
    int n = parse_dec(slash + 1, plen, max, &prefix);
    if (n < 0 || (size_t)n != plen) {
      *why = v4 ? "prefix length must be a decimal 0..32 without leading zero"
                : "prefix length must be a decimal 0..128 without leading "
                  "zero";
      return -1;
    }
  }
  if (host_bits_set(out->addr, max / 8u, prefix)) {
    *why = "address has bits set beyond the prefix length";
    return -1;
  }
  int embedded = v6 ? only_embedded_v4(out->addr, prefix) : 0;
  if (embedded != 0) {
    *why = embedded == 1
               ? "IPv4-mapped addresses (::ffff:a.b.c.d) are matched as "
                 "IPv4: write this prefix in IPv4 form"
               : "IPv4-compatible addresses (::a.b.c.d) are refused before "
                 "any rule: this prefix would never match";
    return -1;
  }
  out->family = v4 ? HWSOCK_AF_INET : HWSOCK_AF_INET6;
  out->prefix = (uint8_t)prefix;
  return 0;
}

int hwsock__policy_parse_ports(const char *s, size_t len, hwsock__ports *out,
                               const char **why) {
  unsigned lo, hi;
  int n = parse_dec(s, len, 65535, &lo);
  if (n < 0)
    goto bad;
  hi = lo;
  if ((size_t)n < len) {
    size_t rest = len - (size_t)n - 1;
    if (s[n] != '-') {
      n = DEC_NONE;
      goto bad;
    }
    int m = parse_dec(s + n + 1, rest, 65535, &hi);
    if (m < 0 || (size_t)m != rest) {
      n = m < 0 ? m : DEC_NONE;
      goto bad;
    }
    if (hi < lo) {
      *why = "reversed port range: the first port is above the last";
      return -1;
    }
  }
  out->lo = (uint16_t)lo;
  out->hi = (uint16_t)hi;
  return 0;
bad:
  *why = n == DEC_ZERO    ? "port with a leading zero"
         : n == DEC_RANGE ? "port above 65535"
                          : "expected a port 0..65535 or a range a-b";
  return -1;
}

/* The errors a deny may give: those an application meets from a refused
 * connect/bind/sendto anyway, so its error handling already knows them. */
#define HWSOCK__DENY_ERRNOS(XX)                                               \
  XX(EACCES) XX(EPERM) XX(ECONNREFUSED) XX(ECONNRESET) XX(ENETUNREACH)        \
  XX(EHOSTUNREACH) XX(ENETDOWN) XX(ETIMEDOUT) XX(EADDRNOTAVAIL)               \
  XX(EADDRINUSE) XX(EAFNOSUPPORT) XX(EPROTONOSUPPORT) XX(EOPNOTSUPP)

int hwsock__policy_parse_errno(const char *s, size_t len, int *out) {
#define XX(name)                                                              \
  if (len == sizeof(#name) - 1 && memcmp(s, #name, len) == 0) {               \
    *out = HWSOCK_##name;                                                     \
    return 0;                                                                 \
  }
  HWSOCK__DENY_ERRNOS(XX)
#undef XX
  return -1;
}

const char *hwsock__policy_errno_names(void) {
#define XX(name) " " #name
  return "one of" HWSOCK__DENY_ERRNOS(XX);
#undef XX
}
