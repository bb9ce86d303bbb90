/* ipx backend: the 30-byte IPX header, big-endian as on the wire.
 *
 *   0 checksum (0xffff)   2 length   4 transport control   5 packet type
 *   6 destination network (4)  10 destination node (6)  16 destination socket
 *  18 source network (4)       22 source node (6)       28 source socket */
#include <string.h>

#include "ipx_int.h"

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

void hwsock__ipx_hdr_encode(const ipx_hdr *h, uint8_t out[IPX_HDR_LEN]) {
  put16(out + 0, h->checksum);
  put16(out + 2, h->length);
  out[4] = h->tc;
  out[5] = h->type;
  memcpy(out + 6, h->dnet, 4);
  memcpy(out + 10, h->dnode, 6);
  put16(out + 16, h->dsock);
  memcpy(out + 18, h->snet, 4);
  memcpy(out + 22, h->snode, 6);
  put16(out + 28, h->ssock);
}

int hwsock__ipx_hdr_decode(const uint8_t *p, size_t udp_len, ipx_hdr *h,
                           const char **why) {
  if (udp_len < IPX_HDR_LEN) {
    *why = "shorter than an IPX header";
    return -1;
  }
  h->checksum = get16(p + 0);
  h->length = get16(p + 2);
  h->tc = p[4];
  h->type = p[5];
  memcpy(h->dnet, p + 6, 4);
  memcpy(h->dnode, p + 10, 6);
  h->dsock = get16(p + 16);
  memcpy(h->snet, p + 18, 4);
  memcpy(h->snode, p + 22, 6);
  h->ssock = get16(p + 28);
  if (h->length < IPX_HDR_LEN) {
    *why = "length field shorter than the header";
    return -1;
  }
  /* Senders may pad an odd packet to an even size; the length field keeps
   * the real size. */
  if (h->length != udp_len && !(h->length + 1u == udp_len && (h->length & 1))) {
    *why = "length field does not match the UDP length";
    return -1;
  }
  if (h->checksum != IPX_CHECKSUM_NONE) {
    *why = "checksum field is not 0xffff";
    return -1;
  }
  if (h->tc > IPX_MAX_HOPS) {
    *why = "transport control above 15 hops";
    return -1;
  }
  return 0;
}
