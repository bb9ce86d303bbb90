/* iovec helpers for the device: guest memory is reached only through the
 * iovecs the ring engine produced (already range-checked). */
#include <string.h>

#include "hwsock/backend_util.h"
#include "iov.h"

/* The one walk of gather and scatter: copies up to len bytes between a
 * private buffer and the iovecs from byte off of them on, into `out` (from
 * the iovecs) when it is not NULL, else from `in` (into the iovecs). The
 * direction is decided once per segment, not per byte, and is a constant at
 * both callers, so the compiler folds it away. */
static inline size_t iov_copy(const struct iovec *iov, unsigned n, size_t off,
                              void *out, const void *in, size_t len) {
  size_t done = 0;
  for (unsigned i = 0; i < n && done < len; i++) {
    size_t seg = iov[i].iov_len;
    if (off >= seg) {
      off -= seg;
      continue;
    }
    size_t take = seg - off;
    if (take > len - done)
      take = len - done;
    char *guest = (char *)iov[i].iov_base + off;
    if (out != NULL)
      memcpy((char *)out + done, guest, take);
    else
      memcpy(guest, (const char *)in + done, take);
    done += take;
    off = 0;
  }
  return done;
}

size_t hwsock__iov_gather(const struct iovec *iov, unsigned n, size_t off,
                          void *buf, size_t len) {
  return iov_copy(iov, n, off, buf, NULL, len);
}

size_t hwsock__iov_scatter(const struct iovec *iov, unsigned n, size_t off,
                           const void *buf, size_t len) {
  return iov_copy(iov, n, off, NULL, buf, len);
}

/* The one slicing walk is the plugin helper's (hwsock/backend_util.h),
 * which the tcp backend uses too. */
size_t hwsock__iov_slice(const struct iovec *src, unsigned n, size_t off,
                         size_t maxlen, struct iovec *dst, unsigned cap,
                         unsigned *dn) {
  return hwsock_iov_slice(src, n, off, maxlen, dst, cap, dn);
}
