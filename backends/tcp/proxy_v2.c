/* PROXY protocol v2 header builder (proxy_v2.h). The HMAC is OpenSSL's
 * libcrypto: a maintained, audited SHA-256 rather than one more copy of it,
 * linked into this backend module only (the library and the guest side stay
 * free of it). */
#include <netinet/in.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proxy_v2.h"

static const uint8_t pp2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void be16(uint8_t *p, size_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static size_t tlv(uint8_t *p, uint8_t type, const void *val, size_t len) {
  p[0] = type;
  be16(p + 1, len);
  if (val != NULL)
    memcpy(p + 3, val, len);
  else
    memset(p + 3, 0, len);
  return 3 + len;
}

int hwsock__pp2_build(const struct sockaddr *src, const struct sockaddr *dst,
                      const hwsock_identity *id,
                      const uint8_t uid[HWSOCK_PP2_UNIQUE_ID_LEN],
                      uint8_t *out, size_t cap) {
  if (src == NULL || dst == NULL || id == NULL || uid == NULL ||
      out == NULL || cap < HWSOCK__PP2_MAX ||
      hwsock_identity_check(id) < 0 || src->sa_family != dst->sa_family)
    return HWSOCK_EINVAL;
  size_t n = 16;
  memcpy(out, pp2_sig, sizeof(pp2_sig));
  out[12] = 0x21; /* version 2, command PROXY */
  if (src->sa_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)src;
    const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
    out[13] = 0x11; /* TCP over IPv4 */
    memcpy(out + n, &s->sin_addr, 4);
    memcpy(out + n + 4, &d->sin_addr, 4);
    memcpy(out + n + 8, &s->sin_port, 2); /* already network order */
    memcpy(out + n + 10, &d->sin_port, 2);
    n += 12;
  } else if (src->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
    const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst;
    out[13] = 0x21; /* TCP over IPv6 */
    memcpy(out + n, &s->sin6_addr, 16);
    memcpy(out + n + 16, &d->sin6_addr, 16);
    memcpy(out + n + 32, &s->sin6_port, 2);
    memcpy(out + n + 34, &d->sin6_port, 2);
    n += 36;
  } else {
    return HWSOCK_EAFNOSUPPORT;
  }
  n += tlv(out + n, HWSOCK_PP2_TYPE_VM_NAME, id->name, strlen(id->name));
  n += tlv(out + n, HWSOCK_PP2_TYPE_UNIQUE_ID, uid, HWSOCK_PP2_UNIQUE_ID_LEN);
  size_t mac_at = 0;
  if (id->key != NULL) {
    mac_at = n + 3;
    n += tlv(out + n, HWSOCK_PP2_TYPE_HMAC, NULL, HWSOCK_PP2_HMAC_LEN);
  }
  be16(out + 14, n - 16); /* length of what follows the fixed part */
  if (id->key != NULL) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    if (HMAC(EVP_sha256(), id->key, (int)id->key_len, out, n, mac, &mlen) ==
            NULL ||
        mlen != HWSOCK_PP2_HMAC_LEN)
      return HWSOCK_EIO;
    memcpy(out + mac_at, mac, HWSOCK_PP2_HMAC_LEN);
  }
  return (int)n;
}
