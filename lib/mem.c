/* Guest memory map: translating guest physical ranges to host memory.
 *
 * Every range is handled as [gpa, last] with an inclusive last byte, so that
 * a region or buffer ending exactly at 2^64 is expressible and no end
 * address is ever computed by an addition that could wrap. Lookups are a
 * linear scan: the table is small (HWSOCK_MAX_REGIONS) and fixed. */
#include <stdint.h>

#include "hwsock/common.h"
#include "ring.h"

/* Region containing gpa, or NULL. */
static const hwsock__region *find_region(const hwsock__memmap *m,
                                         uint64_t gpa) {
  for (unsigned i = 0; i < m->n; i++) {
    const hwsock__region *r = &m->regions[i];
    if (gpa >= r->gpa && gpa - r->gpa < r->size)
      return r;
  }
  return NULL;
}

int hwsock__mem_add(hwsock__memmap *m, uint64_t gpa, uint64_t size,
                    void *hva) {
  if (size == 0 || hva == NULL)
    return HWSOCK_EINVAL;
  uint64_t last = gpa + (size - 1);
  if (last < gpa) /* wraps past 2^64 */
    return HWSOCK_EINVAL;
  /* the host side must not wrap either: iovecs point into [hva, hva+size) */
  if (size - 1 > (uint64_t)(UINTPTR_MAX - (uintptr_t)hva))
    return HWSOCK_EINVAL;
  for (unsigned i = 0; i < m->n; i++) {
    const hwsock__region *r = &m->regions[i];
    uint64_t rlast = r->gpa + (r->size - 1);
    if (gpa <= rlast && r->gpa <= last)
      return HWSOCK_EINVAL;
  }
  if (m->n >= m->max)
    return HWSOCK_ENOSPC;
  m->regions[m->n].gpa = gpa;
  m->regions[m->n].size = size;
  m->regions[m->n].hva = hva;
  m->regions[m->n].uaddr = 0;
  m->n++;
  return 0;
}

void *hwsock__mem_ptr(const hwsock__memmap *m, uint64_t gpa, uint64_t len) {
  if (len == 0)
    len = 1;
  const hwsock__region *r = find_region(m, gpa);
  if (r == NULL)
    return NULL;
  uint64_t off = gpa - r->gpa; /* < r->size */
  if (len > r->size - off)
    return NULL;
  return r->hva + off;
}

int hwsock__mem_map(const hwsock__memmap *m, uint64_t gpa, uint64_t len,
                    struct iovec *iov, unsigned cap, unsigned *n) {
  if (len == 0)
    return 0;
  if (len - 1 > UINT64_MAX - gpa) /* gpa+len wraps */
    return HWSOCK_EFAULT;
  unsigned k = *n; /* published only on success */
  while (len > 0) {
    const hwsock__region *r = find_region(m, gpa);
    if (r == NULL)
      return HWSOCK_EFAULT;
    uint64_t off = gpa - r->gpa;
    uint64_t room = r->size - off; /* >= 1 */
    uint64_t chunk = len < room ? len : room;
    if (k >= cap)
      return HWSOCK_ENOBUFS;
    iov[k].iov_base = r->hva + off;
    iov[k].iov_len = (size_t)chunk; /* fits: mem_add bounds size by the
                                       host address space */
    k++;
    len -= chunk;
    gpa += chunk; /* wraps to 0 only when len is now 0 (checked above) */
  }
  *n = k;
  return 0;
}
