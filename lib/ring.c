/* Device side of virtio 1.x split virtqueues (virtio 1.x section 2.7).
 *
 * The guest writes the descriptor table and the available ring, the device
 * writes the used ring; both change under the other side's feet. Hence:
 * each shared index is loaded once (hwsock_le16_load) into a local, each
 * descriptor is copied into a local once and only the copy is checked and
 * used, and the barriers pair with the driver's (see virtio_ring.c in Linux:
 * virtio_wmb before avail->idx, virtio_mb before reading avail_event).
 *
 * A guest mistake in the ring itself is not a per-request error: the ring
 * can no longer be trusted, so hwsock__vq_pop() reports HWSOCK_ENEEDSRESET
 * with a static reason and leaves last_avail where it was. */
#include <string.h>

#include "hwsock/common.h"
#include "ring.h"

/* A descriptor copied out of guest memory and decoded. */
typedef struct desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
} desc;

/* Copies table[i] once into private memory. The compiler barrier keeps the
 * compiler from replacing later uses of the copy by fresh loads from the
 * shared table (which the guest may have changed meanwhile). */
static void read_desc(const hwsock_vring_desc *table, unsigned i, desc *d) {
  hwsock_vring_desc raw;
  memcpy(&raw, &table[i], sizeof raw);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  d->addr = hwsock_le64_get(&raw.addr);
  d->len = hwsock_le32_get(&raw.len);
  d->flags = hwsock_le16_get(&raw.flags);
  d->next = hwsock_le16_get(&raw.next);
}

/* used_event lives after avail->ring[size], avail_event after used->ring. */
static volatile hwsock_le16 *used_event(const hwsock__vq *vq) {
  return &vq->avail->ring[vq->size];
}
static volatile hwsock_le16 *avail_event(const hwsock__vq *vq) {
  return (hwsock_le16 *)(void *)&vq->used->ring[vq->size];
}

int hwsock__vq_init(hwsock__vq *vq, const hwsock__memmap *mem, unsigned size,
                    uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
                    uint64_t features, unsigned max_segs) {
  memset(vq, 0, sizeof *vq); /* size 0 = not set up, also on failure */
  if (size == 0 || size > HWSOCK_VRING_MAX_SIZE || (size & (size - 1)) != 0)
    return HWSOCK_EINVAL;
  if (max_segs == 0)
    return HWSOCK_EINVAL;
  if ((desc_gpa & 15) != 0 || (avail_gpa & 1) != 0 || (used_gpa & 3) != 0)
    return HWSOCK_EINVAL;
  void *d = hwsock__mem_ptr(mem, desc_gpa, hwsock_vring_desc_bytes(size));
  void *a = hwsock__mem_ptr(mem, avail_gpa, hwsock_vring_avail_bytes(size));
  void *u = hwsock__mem_ptr(mem, used_gpa, hwsock_vring_used_bytes(size));
  if (d == NULL || a == NULL || u == NULL)
    return HWSOCK_EFAULT;
  vq->desc = d;
  vq->avail = a;
  vq->used = u;
  vq->desc_gpa = desc_gpa;
  vq->avail_gpa = avail_gpa;
  vq->used_gpa = used_gpa;
  vq->mem = mem;
  vq->event_idx = (features & HWSOCK_F_EVENT_IDX) != 0;
  vq->indirect = (features & HWSOCK_F_INDIRECT_DESC) != 0;
  vq->max_segs = max_segs;
  vq->size = size;
  return 0;
}

/* The ring faults (PROTOCOL.md §2.8): the code the guest is told, the line
 * the VMM logs. Every reason hwsock__vq_pop() gives is one of these. */
static const char *const fault_text[HWSOCK_RESET_MAX_ + 1] = {
    [HWSOCK_RESET_AVAIL_IDX] = "avail idx moved more than the queue size ahead",
    [HWSOCK_RESET_HEAD_INDEX] = "head descriptor index out of range",
    [HWSOCK_RESET_NEXT_INDEX] = "next descriptor index out of range",
    [HWSOCK_RESET_CHAIN_LOOP] = "descriptor chain loops or is longer than the queue",
    [HWSOCK_RESET_CHAIN_SEGS] = "chain has more descriptors than max_segs",
    [HWSOCK_RESET_CHAIN_IOVECS] = "chain needs more iovecs than the device's capacity (cap)",
    [HWSOCK_RESET_CHAIN_LEN] = "chain length sum exceeds 32 bits",
    [HWSOCK_RESET_BUFFER] = "descriptor buffer outside guest memory or wraps around",
    [HWSOCK_RESET_READ_AFTER_WRITE] = "device-readable descriptor after a device-writable one",
    [HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED] = "indirect descriptor but INDIRECT_DESC not negotiated",
    [HWSOCK_RESET_INDIRECT_WITH_NEXT] = "indirect descriptor with NEXT set",
    [HWSOCK_RESET_INDIRECT_LEN] = "indirect table length is 0 or not a multiple of 16",
    [HWSOCK_RESET_INDIRECT_ENTRIES] = "indirect table has more entries than max_segs",
    [HWSOCK_RESET_INDIRECT_REGION] = "indirect table not inside one guest memory region",
    [HWSOCK_RESET_INDIRECT_NEXT_INDEX] = "indirect next index out of range",
    [HWSOCK_RESET_INDIRECT_LOOP] = "indirect chain loops or is longer than its table",
    [HWSOCK_RESET_INDIRECT_NESTED] = "nested indirect descriptor",
};

int hwsock__vq_fault_code(const char *why) {
  for (int i = 1; i <= HWSOCK_RESET_MAX_; i++)
    if (why != NULL && fault_text[i] != NULL && strcmp(why, fault_text[i]) == 0)
      return i;
  return 0;
}

/* Chain walk state shared by the direct and indirect parts of one chain. */
typedef struct walk {
  hwsock__vq *vq;
  hwsock__chain *c;
  struct iovec *iov;
  unsigned cap;
  unsigned n_iov;   /* iovecs written so far */
  unsigned n_segs;  /* data descriptors so far (max_segs) */
  uint64_t total;   /* byte sum, bounded by UINT32_MAX */
  int seen_write;   /* a writable descriptor came already */
} walk;

/* Accounts one data (non-indirect) descriptor. Returns NULL or a reason. */
static const char *take_desc(walk *w, const desc *d) {
  if (++w->n_segs > w->vq->max_segs)
    return fault_text[HWSOCK_RESET_CHAIN_SEGS];
  int writable = (d->flags & HWSOCK_VRING_DESC_F_WRITE) != 0;
  if (writable)
    w->seen_write = 1;
  else if (w->seen_write)
    return fault_text[HWSOCK_RESET_READ_AFTER_WRITE];
  w->total += d->len;
  if (w->total > UINT32_MAX)
    return fault_text[HWSOCK_RESET_CHAIN_LEN];
  unsigned before = w->n_iov;
  int rc = hwsock__mem_map(w->vq->mem, d->addr, d->len, w->iov, w->cap,
                           &w->n_iov);
  if (rc == HWSOCK_ENOBUFS)
    return fault_text[HWSOCK_RESET_CHAIN_IOVECS];
  if (rc != 0)
    return fault_text[HWSOCK_RESET_BUFFER];
  if (writable) {
    w->c->n_in += w->n_iov - before;
    w->c->in_len += d->len;
  } else {
    w->c->n_out += w->n_iov - before;
    w->c->out_len += d->len;
  }
  return NULL;
}

/* Walks an indirect table described by d (a descriptor with F_INDIRECT from
 * the main table). Each table entry is copied once when visited. */
static const char *walk_indirect(walk *w, const desc *d) {
  const hwsock__vq *vq = w->vq;
  if (!vq->indirect)
    return fault_text[HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED];
  if (d->flags & HWSOCK_VRING_DESC_F_NEXT)
    return fault_text[HWSOCK_RESET_INDIRECT_WITH_NEXT];
  if (d->len == 0 || d->len % sizeof(hwsock_vring_desc) != 0)
    return fault_text[HWSOCK_RESET_INDIRECT_LEN];
  unsigned entries = d->len / sizeof(hwsock_vring_desc);
  if (entries > vq->max_segs)
    return fault_text[HWSOCK_RESET_INDIRECT_ENTRIES];
  const hwsock_vring_desc *table = hwsock__mem_ptr(vq->mem, d->addr, d->len);
  if (table == NULL)
    return fault_text[HWSOCK_RESET_INDIRECT_REGION];

  unsigned i = 0, steps = 0;
  for (;;) {
    desc e;
    if (++steps > entries)
      return fault_text[HWSOCK_RESET_INDIRECT_LOOP];
    read_desc(table, i, &e);
    if (e.flags & HWSOCK_VRING_DESC_F_INDIRECT)
      return fault_text[HWSOCK_RESET_INDIRECT_NESTED];
    const char *why = take_desc(w, &e);
    if (why != NULL)
      return why;
    if (!(e.flags & HWSOCK_VRING_DESC_F_NEXT))
      return NULL;
    if (e.next >= entries)
      return fault_text[HWSOCK_RESET_INDIRECT_NEXT_INDEX];
    i = e.next;
  }
}

int hwsock__vq_pop(hwsock__vq *vq, hwsock__chain *c, struct iovec *iov,
                   unsigned cap, const char **why) {
  const char *dummy;
  if (why == NULL)
    why = &dummy;
  *why = NULL;
  if (vq->size == 0)
    return 0; /* a queue that is not set up has nothing to pop */

  uint16_t avail_idx = hwsock_le16_load(&vq->avail->idx);
  uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
  if (pending > vq->size) {
    *why = fault_text[HWSOCK_RESET_AVAIL_IDX];
    return HWSOCK_ENEEDSRESET;
  }
  if (pending == 0)
    return 0;
  /* pairs with the driver's write barrier before it published avail idx:
   * the ring entry and descriptors are read only after the idx */
  __atomic_thread_fence(__ATOMIC_ACQUIRE);

  uint16_t head =
      hwsock_le16_load(&vq->avail->ring[vq->last_avail & (vq->size - 1)]);
  if (head >= vq->size) {
    *why = fault_text[HWSOCK_RESET_HEAD_INDEX];
    return HWSOCK_ENEEDSRESET;
  }

  int rc = hwsock__vq_walk(vq, head, c, iov, cap, why);
  if (rc < 0)
    return rc;
  vq->last_avail++;
  return 1;
}

int hwsock__vq_walk(hwsock__vq *vq, uint16_t head, hwsock__chain *c,
                    struct iovec *iov, unsigned cap, const char **why) {
  const char *dummy;
  if (why == NULL)
    why = &dummy;
  *why = NULL;
  if (vq->size == 0 || head >= vq->size) {
    *why = fault_text[HWSOCK_RESET_HEAD_INDEX];
    return HWSOCK_ENEEDSRESET;
  }
  memset(c, 0, sizeof *c);
  c->head = head;
  walk w = {.vq = vq, .c = c, .iov = iov, .cap = cap};
  unsigned i = head, steps = 0;
  const char *err;
  for (;;) {
    desc d;
    if (++steps > vq->size) {
      err = fault_text[HWSOCK_RESET_CHAIN_LOOP];
      break;
    }
    read_desc(vq->desc, i, &d);
    if (d.flags & HWSOCK_VRING_DESC_F_INDIRECT) {
      /* walk_indirect refuses NEXT, so the table ends the chain */
      err = walk_indirect(&w, &d);
      break;
    }
    err = take_desc(&w, &d);
    if (err != NULL || !(d.flags & HWSOCK_VRING_DESC_F_NEXT))
      break;
    if (d.next >= vq->size) {
      err = fault_text[HWSOCK_RESET_NEXT_INDEX];
      break;
    }
    i = d.next;
  }
  if (err != NULL) {
    *why = err;
    return HWSOCK_ENEEDSRESET;
  }
  return 0;
}

void hwsock__vq_push(hwsock__vq *vq, uint16_t head, uint32_t len) {
  if (vq->size == 0)
    return;
  uint16_t idx = vq->used_idx;
  hwsock_vring_used_elem *e = &vq->used->ring[idx & (vq->size - 1)];
  hwsock_le32_set(&e->id, head);
  hwsock_le32_set(&e->len, len);
  /* the element must be visible before the guest can see the new idx */
  __atomic_thread_fence(__ATOMIC_RELEASE);
  vq->used_idx = (uint16_t)(idx + 1);
  hwsock_le16_store(&vq->used->idx, vq->used_idx);
}

int hwsock__vq_should_notify(hwsock__vq *vq) {
  if (vq->size == 0)
    return 0;
  /* used idx is published; the guest's flags/used_event must be read after
   * it (the guest writes used_event, then reads used idx: store-load both
   * ways needs a full barrier on each side) */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  uint16_t old = vq->signalled_used;
  uint16_t new_idx = vq->used_idx;
  int valid = vq->signalled_used_valid;
  if (valid && old == new_idx)
    return 0; /* nothing new since the last interrupt */
  if (vq->event_idx) {
    uint16_t ev = hwsock_le16_load(used_event(vq));
    /* the interval (old, new] has been examined either way */
    vq->signalled_used = new_idx;
    vq->signalled_used_valid = 1;
    return !valid || hwsock_vring_need_event(ev, new_idx, old);
  }
  uint16_t flags = hwsock_le16_load(&vq->avail->flags);
  if (flags & HWSOCK_VRING_AVAIL_F_NO_INTERRUPT)
    return 0;
  vq->signalled_used = new_idx;
  vq->signalled_used_valid = 1;
  return 1;
}

int hwsock__vq_enable_kicks(hwsock__vq *vq) {
  if (vq->size == 0)
    return 0;
  if (vq->event_idx) {
    hwsock_le16_store(avail_event(vq), vq->last_avail);
  } else {
    uint16_t flags = hwsock_le16_load(&vq->used->flags);
    hwsock_le16_store(&vq->used->flags,
                      (uint16_t)(flags & ~HWSOCK_VRING_USED_F_NO_NOTIFY));
  }
  /* the guest publishes avail idx then reads avail_event/flags; we publish
   * avail_event/flags then read avail idx: a full barrier on both sides
   * guarantees one of us sees the other's store */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  /* any difference, even a bad one, means "pop again": pop reports breakage */
  return hwsock_le16_load(&vq->avail->idx) != vq->last_avail;
}

unsigned hwsock__vq_pending(const hwsock__vq *vq) {
  if (vq->size == 0)
    return 0;
  uint16_t n = (uint16_t)(hwsock_le16_load(&vq->avail->idx) - vq->last_avail);
  return n > vq->size ? 0 : n;
}
