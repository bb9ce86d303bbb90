/* Internal: copying between private buffers and iovec lists that point into
 * guest memory, and slicing iovec lists. Bounded by the lists given. */
#ifndef HWSOCK_LIB_IOV_H
#define HWSOCK_LIB_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Copies up to len bytes starting at byte `off` of the list into buf.
 * Returns the number copied (less than len when the list is shorter). */
size_t hwsock__iov_gather(const struct iovec *iov, unsigned n, size_t off,
                          void *buf, size_t len);

/* Copies len bytes of buf into the list at byte `off`. Returns the number
 * copied. */
size_t hwsock__iov_scatter(const struct iovec *iov, unsigned n, size_t off,
                           const void *buf, size_t len);

/* Writes into dst (capacity cap) the part of src that starts at byte `off`
 * and is at most maxlen long. Returns the length of the slice; *dn gets its
 * segment count. */
size_t hwsock__iov_slice(const struct iovec *src, unsigned n, size_t off,
                         size_t maxlen, struct iovec *dst, unsigned cap,
                         unsigned *dn);

#endif
