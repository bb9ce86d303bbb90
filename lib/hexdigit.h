/* Internal: one hexadecimal digit's value, for the text parsers (IPX
 * addresses in URIs, hex values in policy files). Header-only. */
#ifndef HWSOCK_LIB_HEXDIGIT_H
#define HWSOCK_LIB_HEXDIGIT_H

/* 0..15 for [0-9a-fA-F], else -1. */
static inline int hwsock__hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

#endif
