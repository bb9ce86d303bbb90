/* Stream identity (docs/IDENTITY.md): the VMM vouches for the guest.
 *
 * A policy rule with `identity: proxy-v2` makes the backend send, on every
 * TCP connection the rule offloads, a PROXY protocol version 2 header before
 * any byte of the guest's. The header carries the connection's addresses as
 * the host made them and TLVs naming the VM (the VMM's configuration, never
 * the guest's), a unique id per connection and, with a key, an HMAC-SHA256
 * that a server holding the key checks. UDP is out of scope.
 *
 * The VMM gives the device its identity in hwsock_device_config.identity;
 * the device hands it to the backend with each CONNECT whose rule asks for
 * it (hwsock_breq.identity). */
#ifndef HWSOCK_IDENTITY_H
#define HWSOCK_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "hwsock/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a rule asks for (hwsock_policy_rule_identity). */
#define HWSOCK_IDENTITY_NONE 0
#define HWSOCK_IDENTITY_PROXY_V2 1

/* Limits of the VMM's identity. */
#define HWSOCK_IDENTITY_NAME_MAX 255u  /* VM name, bytes */
#define HWSOCK_IDENTITY_KEY_MIN 16u    /* HMAC key, bytes */
#define HWSOCK_IDENTITY_KEY_MAX 4096u

/* PROXY protocol v2 TLV types used (HAProxy's proxy-protocol.txt; 0xE0..0xEF
 * is the range the spec leaves to applications). */
#define HWSOCK_PP2_TYPE_UNIQUE_ID 0x05 /* 16 random bytes per connection */
#define HWSOCK_PP2_TYPE_VM_NAME 0xE0   /* the VM's name (UTF-8, no NUL) */
#define HWSOCK_PP2_TYPE_HMAC 0xE1      /* HMAC-SHA256, 32 bytes */
#define HWSOCK_PP2_UNIQUE_ID_LEN 16u
#define HWSOCK_PP2_HMAC_LEN 32u

/* The VMM's identity. Owned by the embedder; must outlive the device. */
typedef struct hwsock_identity {
  uint32_t size;       /* sizeof(hwsock_identity) */
  uint32_t reserved;   /* 0 */
  const char *name;    /* 1..HWSOCK_IDENTITY_NAME_MAX bytes, NUL-terminated,
                          no control characters */
  const uint8_t *key;  /* HMAC key, or NULL: no HMAC TLV */
  size_t key_len;      /* 0, or KEY_MIN..KEY_MAX */
} hwsock_identity;

/* 0 when id is usable (size, name, key length), else HWSOCK_EINVAL. */
HWSOCK_EXTERN int hwsock_identity_check(const hwsock_identity *id);

/* Reads an HMAC key file: its exact bytes are the key. The file must be a
 * regular file, not a symlink (O_NOFOLLOW), readable by its owner only
 * (no group/other permission bits, as ssh insists for private keys) and
 * KEY_MIN..KEY_MAX bytes long. On success writes the key into key[cap]
 * (cap >= HWSOCK_IDENTITY_KEY_MAX) and its length into *len. Errors:
 * negative HWSOCK_E* with a one-line reason in errbuf. */
HWSOCK_EXTERN int hwsock_identity_load_key(const char *path, uint8_t *key,
                                           size_t cap, size_t *len,
                                           char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
