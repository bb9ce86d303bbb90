/* The front-end's memory table (SET_MEM_TABLE): each region comes as an fd
 * (a shared memfd of guest RAM) with the guest physical address, the size,
 * the front-end's own virtual address and the offset in the fd. The device
 * translates buffer addresses (guest physical) through its own region table;
 * ring addresses arrive as front-end virtual addresses and are translated
 * here, to guest physical, before the device sees them. */
#define _GNU_SOURCE /* F_GET_SEALS */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vu.h"

void vu_mem_clear(vu_conn *c) {
  for (unsigned i = 0; i < c->mem.n; i++)
    munmap(c->mem.r[i].map, c->mem.r[i].map_len);
  memset(&c->mem, 0, sizeof(c->mem));
}

static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
                          uint64_t blen) {
  return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* Checks one region's numbers against its fd and the regions before it. */
static int check_region(const vu_mem *m, const vu_mem_region *r, int fd,
                        unsigned i) {
  uint64_t last;
  if (r->size == 0 || __builtin_add_overflow(r->gpa, r->size - 1, &last) ||
      __builtin_add_overflow(r->uva, r->size - 1, &last) ||
      __builtin_add_overflow(r->mmap_offset, r->size, &last) ||
      last > (uint64_t)SIZE_MAX) {
    vmm_log(HWSOCK_LOG_ERROR, "memory region %u: bad size or address", i);
    return -1;
  }
  for (unsigned j = 0; j < m->n; j++) {
    if (ranges_overlap(m->r[j].uva, m->r[j].size, r->uva, r->size)) {
      vmm_log(HWSOCK_LOG_ERROR, "memory region %u overlaps region %u", i, j);
      return -1;
    }
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
      (uint64_t)st.st_size < last) {
    vmm_log(HWSOCK_LOG_ERROR,
            "memory region %u: the fd is not a file of at least %llu bytes",
            i, (unsigned long long)last);
    return -1;
  }
  /* A file that may shrink later would turn a guest buffer access into
   * SIGBUS: QEMU's memory-backend-memfd seals it (seal=on, the default). */
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK))
    vmm_log(HWSOCK_LOG_WARN,
            "memory region %u: the file is not sealed against shrinking "
            "(a front-end that truncates it would crash this process)", i);
  return 0;
}

int vu_mem_set(vu_conn *c, const vu_memory *m, int *fds, unsigned nfds) {
  vu_mem_clear(c);
  int rc = hwsock_device_clear_regions(c->u->dev);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "memory table: device busy: %s",
            hwsock_strerror(rc));
    return -1;
  }
  for (unsigned i = 0; i < m->nregions && i < nfds; i++) {
    const vu_mem_region *r = &m->regions[i];
    if (check_region(&c->mem, r, fds[i], i) < 0)
      goto fail;
    size_t len = (size_t)(r->mmap_offset + r->size);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
    if (p == MAP_FAILED) {
      vmm_log(HWSOCK_LOG_ERROR, "memory region %u: mmap: %s", i,
              strerror(errno));
      goto fail;
    }
    close(fds[i]);
    fds[i] = -1;
    vu_region *d = &c->mem.r[c->mem.n++];
    d->gpa = r->gpa;
    d->size = r->size;
    d->uva = r->uva;
    d->map = p;
    d->map_len = len;
    d->hva = (uint8_t *)p + r->mmap_offset;
    rc = hwsock_device_add_region(c->u->dev, d->gpa, d->size, d->hva);
    if (rc < 0) {
      vmm_log(HWSOCK_LOG_ERROR, "memory region %u (gpa 0x%llx): %s", i,
              (unsigned long long)d->gpa, hwsock_strerror(rc));
      goto fail;
    }
    vmm_log(HWSOCK_LOG_DEBUG,
            "memory region %u: gpa 0x%llx size 0x%llx uva 0x%llx off 0x%llx",
            i, (unsigned long long)r->gpa, (unsigned long long)r->size,
            (unsigned long long)r->uva, (unsigned long long)r->mmap_offset);
  }
  return 0;
fail:
  hwsock_device_clear_regions(c->u->dev);
  vu_mem_clear(c);
  return -1;
}

static const vu_region *find(const vu_mem *m, uint64_t uva, uint64_t len) {
  if (len == 0)
    len = 1;
  for (unsigned i = 0; i < m->n; i++) {
    const vu_region *r = &m->r[i];
    if (uva >= r->uva && uva - r->uva < r->size &&
        len <= r->size - (uva - r->uva))
      return r;
  }
  return NULL;
}

int vu_mem_uva_to_gpa(const vu_mem *m, uint64_t uva, uint64_t len,
                      uint64_t *gpa) {
  const vu_region *r = find(m, uva, len);
  if (r == NULL)
    return -1;
  *gpa = r->gpa + (uva - r->uva);
  return 0;
}

void *vu_mem_uva_ptr(const vu_mem *m, uint64_t uva, uint64_t len) {
  const vu_region *r = find(m, uva, len);
  return r == NULL ? NULL : r->hva + (uva - r->uva);
}
