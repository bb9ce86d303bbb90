/* PROXY protocol version 2 header with the VMM's identity TLVs
 * (docs/IDENTITY.md; format: HAProxy's doc/proxy-protocol.txt, section 2.2).
 * Pure: no I/O, so the unit test checks exact bytes. */
#ifndef HWSOCK_BACKENDS_TCP_PROXY_V2_H
#define HWSOCK_BACKENDS_TCP_PROXY_V2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hwsock/identity.h"

/* 16 fixed + 36 (TCP6 addresses) + name TLV + unique id TLV + HMAC TLV. */
#define HWSOCK__PP2_MAX                                                      \
  (16u + 36u + 3u + HWSOCK_IDENTITY_NAME_MAX + 3u +                          \
   HWSOCK_PP2_UNIQUE_ID_LEN + 3u + HWSOCK_PP2_HMAC_LEN)

/* Builds the header of a connection the host made from `src` (its
 * getsockname) to `dst` (its getpeername), both AF_INET or both AF_INET6,
 * into out[cap]: addresses, then TLV 0xE0 (VM name), 0x05 (uid), and with a
 * key 0xE1 (HMAC-SHA256 over the whole header with this TLV's value zero).
 * Returns the length, or a negative HWSOCK_E*. */
int hwsock__pp2_build(const struct sockaddr *src, const struct sockaddr *dst,
                      const hwsock_identity *id,
                      const uint8_t uid[HWSOCK_PP2_UNIQUE_ID_LEN],
                      uint8_t *out, size_t cap);

#endif
