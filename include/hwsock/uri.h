/* libhwsock URI layer: socket addresses as URIs, parsed into binary form.
 *
 *   tcp://192.0.2.7:80            udp://192.0.2.7:53
 *   tcp6://[2001:db8::1]:443      udp6://[fe80::1%25eth0]:53
 *   tcp6://2001:db8:0:0:0:0:0:1/443   (input only: the original RFC's form)
 *   ipx://0000cafe.02005e0001a2.4000  (network.node.socket, 8/12/4 hex)
 *
 * One strict grammar (docs/ADDRESSES.md): IPv4 only as four decimal
 * octets without leading zeros; no user-info, path, query or fragment; port
 * 1..65535, or 0 when HWSOCK_URI_ALLOW_PORT0 is given (binding to an ephemeral
 * port). Formatting always gives the canonical form (RFC 5952 for IPv6).
 * Parsing is built on uriparser. All functions are pure and thread-safe. */
#ifndef HWSOCK_URI_H
#define HWSOCK_URI_H

#include "hwsock/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sockaddr;

typedef enum hwsock_scheme {
  HWSOCK_SCHEME_NONE = 0,
  HWSOCK_SCHEME_TCP = 1,
  HWSOCK_SCHEME_UDP = 2,
  HWSOCK_SCHEME_TCP6 = 3,
  HWSOCK_SCHEME_UDP6 = 4,
  HWSOCK_SCHEME_IPX = 5
} hwsock_scheme;

/* Longest URI the library formats or accepts (a device may set a smaller
 * limit in its config). Includes no terminator. */
#define HWSOCK_URI_MAX 128
/* Longest IPv6 zone id (interface name or number), without terminator. */
#define HWSOCK_ZONE_MAX 15

/* A parsed socket address. Plain value type: copy freely. */
typedef struct hwsock_addr {
  uint8_t scheme;   /* hwsock_scheme */
  uint8_t family;   /* HWSOCK_AF_INET / _INET6 / _IPX (wire.h) */
  uint16_t port;    /* host byte order; for IPX the socket number */
  union {
    uint8_t v4[4];  /* network byte order */
    uint8_t v6[16]; /* network byte order */
    struct {
      uint8_t net[4];  /* network number, big-endian */
      uint8_t node[6]; /* node (MAC-like) */
    } ipx;
  } u;
  char zone[HWSOCK_ZONE_MAX + 1]; /* IPv6 zone id, "" when none */
} hwsock_addr;

#define HWSOCK_URI_ALLOW_PORT0 1u /* accept port 0 (ephemeral bind) */

/* Parses `len` bytes at `uri` (need not be NUL-terminated) into *out.
 * Returns 0, or HWSOCK_EBADURI when the text is not in the grammar (and
 * HWSOCK_ENAMETOOLONG when len > HWSOCK_URI_MAX). When `why` is not NULL it
 * receives a static message saying precisely what was wrong ("IPv4 octet
 * with a leading zero", "port out of range", ...). */
HWSOCK_EXTERN int hwsock_uri_parse(const char *uri, size_t len, unsigned flags,
                                   hwsock_addr *out, const char **why);

/* Formats *addr canonically into buf (always NUL-terminated when size > 0).
 * Returns the length without terminator, HWSOCK_ENOSPC if it does not fit
 * (buf then holds a truncated string), or HWSOCK_EINVAL for a bad scheme. */
HWSOCK_EXTERN int hwsock_uri_format(const hwsock_addr *addr, char *buf,
                                    size_t size);

/* Scheme name ("tcp6") or NULL for an unknown value. Static string. */
HWSOCK_EXTERN const char *hwsock_scheme_name(int scheme);
/* Scheme for a name ("udp"), or HWSOCK_SCHEME_NONE. */
HWSOCK_EXTERN int hwsock_scheme_from_name(const char *name);
/* Family (HWSOCK_AF_*) and socket type (HWSOCK_SOCK_*) of a scheme;
 * 0 for unknown. */
HWSOCK_EXTERN unsigned hwsock_scheme_family(int scheme);
HWSOCK_EXTERN unsigned hwsock_scheme_socktype(int scheme);
/* Scheme for a (family, type) pair, or HWSOCK_SCHEME_NONE. */
HWSOCK_EXTERN int hwsock_scheme_for(unsigned family, unsigned socktype);

/* Converts an IP address to a host sockaddr (sockaddr_in or sockaddr_in6,
 * zone id resolved with if_nametoindex or as a number). `sa` must have room
 * for a sockaddr_in6 (use a struct sockaddr_storage); *len receives the
 * size. IPX has no host sockaddr: HWSOCK_EAFNOSUPPORT. A zone naming no
 * interface gives HWSOCK_EADDRNOTAVAIL, a number above 2^32-1 HWSOCK_EINVAL. */
HWSOCK_EXTERN int hwsock_addr_to_sockaddr(const hwsock_addr *addr,
                                          struct sockaddr *sa, unsigned *len);
/* The reverse, for the given scheme (TCP/UDP/TCP6/UDP6). An AF_INET6
 * sockaddr holding a v4-mapped address stays IPv6. */
HWSOCK_EXTERN int hwsock_addr_from_sockaddr(const struct sockaddr *sa,
                                            unsigned len, int scheme,
                                            hwsock_addr *out);

/* True when addr is an IPv6 address that embeds an IPv4 one (v4-mapped
 * ::ffff:a.b.c.d or v4-compatible ::a.b.c.d, not :: or ::1); the IPv4 bytes
 * are copied to v4 when it is not NULL. What the host does with such an
 * address (and what the policy matches) is hwsock_policy_effective_addr's
 * answer: the mapped form is IPv4 traffic, the compatible one is IPv6. */
HWSOCK_EXTERN int hwsock_addr_embedded_v4(const hwsock_addr *addr,
                                          uint8_t v4[4]);

#ifdef __cplusplus
}
#endif
#endif
