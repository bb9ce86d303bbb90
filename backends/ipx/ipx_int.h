/* ipx backend internals: limits, the instance configuration (from the
 * backend options), and the IPX header codec. docs/IPX.md describes the
 * encapsulation and the options for VMM authors. */
#ifndef HWSOCK_BACKEND_IPX_INT_H
#define HWSOCK_BACKEND_IPX_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define IPX_HDR_LEN 30u        /* the IPX header on the wire */
#define IPX_MAX_PACKET 1500u   /* whole IPX packet (header + payload) */
#define IPX_MAX_PAYLOAD (IPX_MAX_PACKET - IPX_HDR_LEN)
#define IPX_CHECKSUM_NONE 0xffffu /* IPX sends no checksum: the field is this */
#define IPX_TYPE_PEP 4u        /* packet type: Packet Exchange Protocol */
#define IPX_MAX_HOPS 15u       /* transport control above this: routing loop */
#define IPX_DEFAULT_PORT 213u  /* RFC 1234's UDP port */
#define IPX_MAX_PEERS 64u      /* peer= entries per instance */
#define IPX_QUEUE_MAX 64u      /* packets waiting per socket for a RECV */
#define IPX_EPHEMERAL_FIRST 0x4000u /* socket numbers bind picks from */
#define IPX_EPHEMERAL_LAST 0x7fffu

/* A peer: the IPX node of another guest and the UDP endpoint of its VMM. */
typedef struct ipx_peer {
  uint8_t node[6];
  struct sockaddr_storage sa;
  socklen_t salen;
} ipx_peer;

/* What the options say (docs/IPX.md, "Options"). */
typedef struct ipx_config {
  uint8_t net[4];  /* this guest's network, big-endian */
  uint8_t node[6]; /* this guest's node */
  struct sockaddr_storage bind; /* the shared UDP socket's address */
  socklen_t bind_len;
  ipx_peer peers[IPX_MAX_PEERS];
  unsigned npeers;
  int fd; /* fd=: the shared socket, bound by the VMM (-1: bind one) */
} ipx_config;

/* Parses the backend options ("net=0000cafe node=02005e0001a2 port=213
 * bind=127.0.0.1 peer=02005e0001a3@127.0.0.1:2130 ..."; NULL reads as "").
 * Returns 0, or HWSOCK_EBADCONFIG with a one-line reason in err. */
int hwsock__ipx_parse_options(const char *options, ipx_config *cfg, char *err,
                              size_t errlen);

/* The IPX header, decoded (host byte order for the 16-bit fields). */
typedef struct ipx_hdr {
  uint16_t checksum;
  uint16_t length; /* header + payload */
  uint8_t tc;      /* transport control (hop count) */
  uint8_t type;    /* packet type */
  uint8_t dnet[4], dnode[6];
  uint16_t dsock;
  uint8_t snet[4], snode[6];
  uint16_t ssock;
} ipx_hdr;

/* Writes h as the 30 wire bytes (big-endian). */
void hwsock__ipx_hdr_encode(const ipx_hdr *h, uint8_t out[IPX_HDR_LEN]);

/* Decodes and checks the header of a packet of udp_len bytes at p (the
 * whole UDP payload). Returns 0, or -1 with *why saying what was wrong:
 * shorter than a header, length field not matching the UDP length (one
 * padding byte allowed), checksum field not 0xffff, too many hops. */
int hwsock__ipx_hdr_decode(const uint8_t *p, size_t udp_len, ipx_hdr *h,
                           const char **why);

#endif
