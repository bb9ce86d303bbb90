/* Memory map changes without a reset (hwsock/device.h): a whole new map at
 * once, one region less, and the front-end-address translation that
 * vhost-user style VMMs need for ring addresses.
 *
 * A new map is built and checked on the side, every set-up queue is
 * translated through it, and only when all of that succeeded is it copied
 * over the device's table and the queues' host pointers replaced: a refused
 * map changes nothing. Requests in flight keep the iovecs the old map gave
 * them; the caller keeps the old memory mapped until they are done (the
 * count is returned). */
#include <stddef.h>
#include <string.h>

#include "device_int.h"

static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
                          uint64_t blen) {
  return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* Installs src[0..n) (host form) as the device's map, or changes nothing. */
static int install(hwsock_device *dev, const hwsock__region *src, unsigned n) {
  hwsock__region tmp_regions[HWSOCK_MAX_REGIONS];
  hwsock__memmap tmp = {.regions = tmp_regions, .n = 0, .max = dev->mem.max};
  if (n > dev->mem.max)
    return HWSOCK_ENOSPC;
  for (unsigned i = 0; i < n; i++) {
    int rc = hwsock__mem_add(&tmp, src[i].gpa, src[i].size, src[i].hva);
    if (rc < 0)
      return rc;
    uint64_t u = src[i].uaddr;
    if (u != 0) {
      if (src[i].size - 1 > UINT64_MAX - u)
        return HWSOCK_EINVAL;
      for (unsigned j = 0; j < i; j++)
        if (tmp_regions[j].uaddr != 0 &&
            ranges_overlap(tmp_regions[j].uaddr, tmp_regions[j].size, u,
                           src[i].size))
          return HWSOCK_EINVAL; /* a front-end address must be unambiguous */
    }
    tmp_regions[i].uaddr = u;
  }
  /* Every queue part inside one region of the new map, or no change. */
  void *ptr[HWSOCK_MAX_QUEUES][3];
  for (unsigned q = 0; q < dev->cfg.num_queues; q++) {
    const hwsock__vq *vq = &dev->vq[q];
    if (vq->size == 0)
      continue;
    ptr[q][0] = hwsock__mem_ptr(&tmp, vq->desc_gpa,
                                hwsock_vring_desc_bytes(vq->size));
    ptr[q][1] = hwsock__mem_ptr(&tmp, vq->avail_gpa,
                                hwsock_vring_avail_bytes(vq->size));
    ptr[q][2] = hwsock__mem_ptr(&tmp, vq->used_gpa,
                                hwsock_vring_used_bytes(vq->size));
    if (ptr[q][0] == NULL || ptr[q][1] == NULL || ptr[q][2] == NULL) {
      hwsock__device_log(dev, HWSOCK_LOG_WARN,
                         "new memory map refused: queue %u would lie outside "
                         "it", q);
      return HWSOCK_EBUSY;
    }
  }
  memcpy(dev->mem.regions, tmp_regions, (size_t)n * sizeof(tmp_regions[0]));
  dev->mem.n = n;
  for (unsigned q = 0; q < dev->cfg.num_queues; q++) {
    hwsock__vq *vq = &dev->vq[q];
    if (vq->size == 0)
      continue;
    vq->desc = ptr[q][0];
    vq->avail = ptr[q][1];
    vq->used = ptr[q][2];
  }
  hwsock__device_log(dev, HWSOCK_LOG_INFO,
                     "new memory map: %u regions, %u requests in flight", n,
                     dev->inflight);
  return (int)dev->inflight;
}

int hwsock_device_set_regions_sized(hwsock_device *dev,
                                    const hwsock_region *regions, unsigned n,
                                    size_t elem_size) {
  if (dev == NULL || (n > 0 && regions == NULL) ||
      elem_size < sizeof(hwsock_region))
    return HWSOCK_EINVAL;
  if (n > dev->mem.max)
    return HWSOCK_ENOSPC;
  hwsock__region src[HWSOCK_MAX_REGIONS];
  for (unsigned i = 0; i < n; i++) {
    const unsigned char *e = (const unsigned char *)regions + i * elem_size;
    /* a caller built with a later header: what we do not know must be 0 */
    for (size_t k = sizeof(hwsock_region); k < elem_size; k++)
      if (e[k] != 0)
        return HWSOCK_EINVAL;
    hwsock_region r;
    memcpy(&r, e, sizeof(r));
    src[i].gpa = r.gpa;
    src[i].size = r.size;
    src[i].hva = r.hva;
    src[i].uaddr = r.uaddr;
  }
  return install(dev, src, n);
}

int hwsock_device_remove_region(hwsock_device *dev, uint64_t gpa) {
  if (dev == NULL)
    return HWSOCK_EINVAL;
  hwsock__region src[HWSOCK_MAX_REGIONS];
  unsigned n = 0, found = 0;
  for (unsigned i = 0; i < dev->mem.n; i++) {
    if (dev->mem.regions[i].gpa == gpa)
      found = 1;
    else
      src[n++] = dev->mem.regions[i];
  }
  if (!found)
    return HWSOCK_ENOENT;
  return install(dev, src, n);
}

unsigned hwsock_device_inflight(const hwsock_device *dev) {
  return dev != NULL ? dev->inflight : 0;
}

int hwsock_device_uaddr_to_gpa(const hwsock_device *dev, uint64_t uaddr,
                               uint64_t len, uint64_t *gpa) {
  if (dev == NULL || gpa == NULL)
    return HWSOCK_EINVAL;
  if (len == 0)
    len = 1;
  for (unsigned i = 0; i < dev->mem.n; i++) {
    const hwsock__region *r = &dev->mem.regions[i];
    if (r->uaddr == 0 || uaddr < r->uaddr)
      continue;
    uint64_t off = uaddr - r->uaddr;
    if (off < r->size && len <= r->size - off) {
      *gpa = r->gpa + off;
      return 0;
    }
  }
  return HWSOCK_EFAULT;
}
