/* Internal: guest memory map and the device side of split virtqueues.
 *
 * Nothing here allocates: the memory map's region array and every iovec
 * array are provided by the caller (the device allocates them once, sized by
 * its config). Nothing here aborts: a guest mistake is a return value.
 *
 * Every guest physical address is translated through the region table and
 * range-checked; every shared ring field is read once into a local before it
 * is checked and used. */
#ifndef HWSOCK_LIB_RING_H
#define HWSOCK_LIB_RING_H

#include <stdint.h>
#include <sys/uio.h>

#include "hwsock/wire.h"

typedef struct hwsock__region {
  uint64_t gpa;  /* guest physical start */
  uint64_t size; /* bytes, > 0 */
  uint8_t *hva;  /* host address of gpa */
  uint64_t uaddr; /* the front-end's address of gpa (hwsock_region), 0: none */
} hwsock__region;

typedef struct hwsock__memmap {
  hwsock__region *regions; /* caller-owned array of capacity max */
  unsigned n;
  unsigned max;
} hwsock__memmap;

/* Adds a region. 0, HWSOCK_EINVAL (size 0, gpa+size wraps, overlaps an
 * existing region, hva NULL) or HWSOCK_ENOSPC (table full). */
int hwsock__mem_add(hwsock__memmap *m, uint64_t gpa, uint64_t size, void *hva);

/* Host pointer for [gpa, gpa+len) when it lies inside ONE region, else NULL.
 * len 0 is treated as 1 (the address itself must be valid). */
void *hwsock__mem_ptr(const hwsock__memmap *m, uint64_t gpa, uint64_t len);

/* Translates [gpa, gpa+len) into host iovecs appended at iov[*n], splitting
 * at region boundaries when regions are adjacent in guest physical space
 * (a buffer may straddle two contiguous regions, as in a VM with memory
 * split around a hole). Returns 0, or HWSOCK_EFAULT when any byte lies
 * outside every region or gpa+len wraps, or HWSOCK_ENOBUFS when more than
 * cap iovecs would be needed. len 0 appends nothing. */
int hwsock__mem_map(const hwsock__memmap *m, uint64_t gpa, uint64_t len,
                    struct iovec *iov, unsigned cap, unsigned *n);

/* One split virtqueue, device side. */
typedef struct hwsock__vq {
  unsigned size;                /* entries; 0 = not set up */
  hwsock_vring_desc *desc;      /* host pointers into guest memory */
  hwsock_vring_avail *avail;
  hwsock_vring_used *used;
  const hwsock__memmap *mem;
  uint16_t last_avail;          /* next avail entry the device reads */
  uint16_t used_idx;            /* device's own copy: never read back */
  uint16_t signalled_used;      /* used_idx at the last notification */
  int signalled_used_valid;
  int event_idx;                /* VIRTIO_RING_F_EVENT_IDX negotiated */
  int indirect;                 /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
  unsigned max_segs;            /* descriptors per chain the device takes */
  /* where the parts are in guest physical space: a new memory map
   * (hwsock_device_set_regions) translates them again */
  uint64_t desc_gpa, avail_gpa, used_gpa;
} hwsock__vq;

/* Sets up a queue. size must be a power of 2 in 1..HWSOCK_VRING_MAX_SIZE;
 * each part must be inside one region and aligned (desc 16, avail 2,
 * used 4). `features` are the negotiated HWSOCK_F_* bits. Returns 0,
 * HWSOCK_EINVAL (size/alignment, max_segs 0) or HWSOCK_EFAULT (not in a
 * region). On failure vq->size is 0. */
int hwsock__vq_init(hwsock__vq *vq, const hwsock__memmap *mem, unsigned size,
                    uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
                    uint64_t features, unsigned max_segs);

/* A popped chain: device-readable segments iov[0..n_out), then
 * device-writable iov[n_out..n_out+n_in). */
typedef struct hwsock__chain {
  uint16_t head;   /* head descriptor index: the used-ring id */
  unsigned n_out, n_in;
  size_t out_len, in_len; /* byte sums (each <= UINT32_MAX) */
} hwsock__chain;

/* Pops the next available chain into *c, writing its segments to iov
 * (capacity cap; max_segs bounds the descriptor count independently).
 * Returns 1 when a chain was popped, 0 when the ring is empty, or
 * HWSOCK_ENEEDSRESET when the ring is broken, with *why a static message
 * naming the fault. Broken means any of: avail idx more than size ahead of
 * last_avail; head or next index >= size; a loop or a chain longer than the
 * queue size; more than max_segs descriptors; length sum overflowing
 * 32 bits; an address not in the regions; a readable descriptor after a
 * writable one; INDIRECT without the feature, INDIRECT together with NEXT,
 * a nested indirect, an indirect table whose length is 0, not a multiple of
 * 16, or larger than max_segs entries (or not inside one region). Also
 * broken: more iovecs needed than cap. On failure last_avail is unchanged.
 * Zero-length descriptors are allowed and add no iovec (their address is
 * not checked: no byte of it is ever touched). An INDIRECT descriptor may
 * end a direct chain; its table entries count towards max_segs. A queue
 * that is not set up (size 0) pops nothing. */
int hwsock__vq_pop(hwsock__vq *vq, hwsock__chain *c, struct iovec *iov,
                   unsigned cap, const char **why);

/* Walks the chain at `head` again, as hwsock__vq_pop() walked it when it
 * was popped, without touching the avail ring (a restored device finding
 * the buffers of requests the saved device had taken). 0, or
 * HWSOCK_ENEEDSRESET with *why as hwsock__vq_pop(). */
int hwsock__vq_walk(hwsock__vq *vq, uint16_t head, hwsock__chain *c,
                    struct iovec *iov, unsigned cap, const char **why);

/* The HWSOCK_RESET_* code of a reason hwsock__vq_pop() gave (0: none). */
int hwsock__vq_fault_code(const char *why);

/* Puts head into the used ring with `len` bytes written and publishes the
 * new used idx (release barrier first). Out-of-order completion is fine. */
void hwsock__vq_push(hwsock__vq *vq, uint16_t head, uint32_t len);

/* After pushes: whether the guest wants an interrupt now (EVENT_IDX:
 * vring_need_event against used_event; else !AVAIL_F_NO_INTERRUPT).
 * Records the notification when it returns 1 (with EVENT_IDX the examined
 * used interval is recorded on every call, as virtio devices do). Returns 0
 * when nothing was pushed since the last recorded notification. */
int hwsock__vq_should_notify(hwsock__vq *vq);

/* With EVENT_IDX: publishes avail_event = last_avail so that the guest
 * kicks for the next request; returns 1 when more requests arrived
 * meanwhile (the caller should pop again). Without EVENT_IDX it clears
 * USED_F_NO_NOTIFY and does the same re-check. */
int hwsock__vq_enable_kicks(hwsock__vq *vq);

/* Available entries not yet popped (0..size); a bad avail idx reads as 0. */
unsigned hwsock__vq_pending(const hwsock__vq *vq);

#endif
