/* Test support: the vring builder's device-side helpers (vring_builder.h),
 * apart from the public libhwsock-ringtest (lib/ringtest.c) because they
 * call the library's internal memory map and queue code. */
#include "vring_builder.h"

int vrb_add_regions(const vrb *r, hwsock__memmap *m, size_t split) {
  if (split == 0 || split >= r->size)
    return hwsock__mem_add(m, r->gpa, r->size, r->mem);
  int rc = hwsock__mem_add(m, r->gpa, split, r->mem);
  if (rc == 0)
    rc = hwsock__mem_add(m, r->gpa + split, r->size - split, r->mem + split);
  return rc;
}

int vrb_vq_init(const vrb *r, hwsock__vq *vq, const hwsock__memmap *m,
                uint64_t features, unsigned max_segs) {
  return hwsock__vq_init(vq, m, r->qsize, r->desc_gpa, r->avail_gpa,
                         r->used_gpa, features, max_segs);
}
