/* libhwsock-ringtest internals shared by ringtest.c and ringtest_fault.c
 * (hidden: not exported). */
#ifndef HWSOCK_RINGTEST_INT_H
#define HWSOCK_RINGTEST_INT_H

#include "hwsock/ringtest.h"

/* Writes one descriptor, little-endian. */
void hwsock__ringtest_put_desc(hwsock_vring_desc *d, uint64_t addr,
                               uint32_t len, uint16_t flags, uint16_t next);
/* Takes n descriptors round-robin; returns the first index. */
uint16_t hwsock__ringtest_take_descs(hwsock_ringtest *r, unsigned n);

#endif
