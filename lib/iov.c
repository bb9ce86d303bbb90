/* iovec helpers for the device: guest memory is reached only through the
 * iovecs the ring engine produced (already range-checked). */
#include <string.h>

#include "iov.h"

size_t hwsock__iov_gather(const struct iovec *iov, unsigned n, size_t off,
                          void *buf, size_t len) {
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
    memcpy((char *)buf + done, (const char *)iov[i].iov_base + off, take);
    done += take;
    off = 0;
  }
  return done;
}

size_t hwsock__iov_scatter(const struct iovec *iov, unsigned n, size_t off,
                           const void *buf, size_t len) {
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
    memcpy((char *)iov[i].iov_base + off, (const char *)buf + done, take);
    done += take;
    off = 0;
  }
  return done;
}

size_t hwsock__iov_slice(const struct iovec *src, unsigned n, size_t off,
                         size_t maxlen, struct iovec *dst, unsigned cap,
                         unsigned *dn) {
  size_t total = 0;
  unsigned k = 0;
  for (unsigned i = 0; i < n && total < maxlen && k < cap; i++) {
    size_t seg = src[i].iov_len;
    if (off >= seg) {
      off -= seg;
      continue;
    }
    size_t take = seg - off;
    if (take > maxlen - total)
      take = maxlen - total;
    dst[k].iov_base = (char *)src[i].iov_base + off;
    dst[k].iov_len = take;
    k++;
    total += take;
    off = 0;
  }
  *dn = k;
  return total;
}
