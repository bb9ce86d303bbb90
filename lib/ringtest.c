/* libhwsock-ringtest: the driver side of a split virtqueue in a memory
 * block (hwsock/ringtest.h). Needs only the public wire format: it links
 * nothing of the device side. */
#include "hwsock/ringtest.h"

#include <stdlib.h>
#include <string.h>

#include "ringtest_int.h"

#define BLOCK_ALIGN 4096u

static size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

/* The queue's parts at the start of the block (see the header). */
static size_t avail_off(unsigned qsize) {
  return hwsock_vring_desc_bytes(qsize);
}
static size_t used_off(unsigned qsize) {
  return align_up(avail_off(qsize) + hwsock_vring_avail_bytes(qsize), 4);
}
static size_t queue_end(unsigned qsize) {
  return used_off(qsize) + hwsock_vring_used_bytes(qsize);
}

static int fits(size_t mem_size, unsigned qsize) {
  return qsize > 0 && qsize <= HWSOCK_VRING_MAX_SIZE &&
         queue_end(qsize) <= mem_size;
}

/* Lays out the queue in r->mem (mem_size bytes, zeroed here). */
static void layout(hwsock_ringtest *r, uint64_t gpa, size_t mem_size,
                   unsigned qsize) {
  memset(r->mem, 0, mem_size);
  r->gpa = gpa;
  r->size = mem_size;
  r->qsize = qsize;
  r->desc_gpa = gpa;
  r->avail_gpa = gpa + avail_off(qsize);
  r->used_gpa = gpa + used_off(qsize);
  r->desc = (hwsock_vring_desc *)(void *)r->mem;
  r->avail = (hwsock_vring_avail *)(void *)(r->mem + avail_off(qsize));
  r->used = (hwsock_vring_used *)(void *)(r->mem + used_off(qsize));
  r->brk = align_up(queue_end(qsize), 64);
}

int hwsock_ringtest_init(hwsock_ringtest *r, uint64_t gpa, size_t mem_size,
                         unsigned qsize) {
  memset(r, 0, sizeof *r);
  if (gpa == 0)
    gpa = HWSOCK_RINGTEST_DEFAULT_GPA;
  if (mem_size == 0)
    mem_size = HWSOCK_RINGTEST_DEFAULT_MEM;
  if (!fits(mem_size, qsize) || mem_size > SIZE_MAX - BLOCK_ALIGN)
    return HWSOCK_EINVAL;
  mem_size = align_up(mem_size, BLOCK_ALIGN);
  r->mem = aligned_alloc(BLOCK_ALIGN, mem_size);
  if (r->mem == NULL)
    return HWSOCK_ENOMEM;
  layout(r, gpa, mem_size, qsize);
  return 0;
}

int hwsock_ringtest_init_at(hwsock_ringtest *r, void *mem, uint64_t gpa,
                            size_t mem_size, unsigned qsize) {
  memset(r, 0, sizeof *r);
  if (mem == NULL || gpa == 0 || !fits(mem_size, qsize))
    return HWSOCK_EINVAL;
  r->mem = mem;
  r->borrowed = 1;
  layout(r, gpa, mem_size, qsize);
  return 0;
}

void hwsock_ringtest_free(hwsock_ringtest *r) {
  if (!r->borrowed)
    free(r->mem);
  memset(r, 0, sizeof *r);
}

uint64_t hwsock_ringtest_alloc(hwsock_ringtest *r, size_t len, size_t align) {
  if (align == 0)
    align = 8;
  if ((align & (align - 1)) != 0 || r->brk > SIZE_MAX - align)
    return 0;
  size_t off = align_up(r->brk, align);
  if (off > r->size || len > r->size - off)
    return 0;
  memset(r->mem + off, 0, len);
  r->brk = off + len;
  return r->gpa + off;
}

size_t hwsock_ringtest_mark(const hwsock_ringtest *r) { return r->brk; }

void hwsock_ringtest_release(hwsock_ringtest *r, size_t mark) {
  if (mark <= r->brk)
    r->brk = mark;
}

void *hwsock_ringtest_host(const hwsock_ringtest *r, uint64_t gpa) {
  if (gpa < r->gpa || gpa - r->gpa >= r->size)
    return NULL;
  return r->mem + (gpa - r->gpa);
}

void hwsock__ringtest_put_desc(hwsock_vring_desc *d, uint64_t addr,
                               uint32_t len, uint16_t flags, uint16_t next) {
  hwsock_le64_set(&d->addr, addr);
  hwsock_le32_set(&d->len, len);
  hwsock_le16_set(&d->flags, flags);
  hwsock_le16_set(&d->next, next);
}

void hwsock_ringtest_set_desc(hwsock_ringtest *r, unsigned i, uint64_t addr,
                              uint32_t len, uint16_t flags, uint16_t next) {
  hwsock__ringtest_put_desc(&r->desc[i % r->qsize], addr, len, flags, next);
}

void hwsock_ringtest_write_desc(hwsock_ringtest *r, uint64_t gpa,
                                uint64_t addr, uint32_t len, uint16_t flags,
                                uint16_t next) {
  uint8_t *p = hwsock_ringtest_host(r, gpa);
  if (p == NULL || gpa > UINT64_MAX - sizeof(hwsock_vring_desc) ||
      hwsock_ringtest_host(r, gpa + sizeof(hwsock_vring_desc) - 1) == NULL)
    return;
  hwsock_vring_desc d;
  hwsock__ringtest_put_desc(&d, addr, len, flags, next);
  memcpy(p, &d, sizeof d);
}

void hwsock_ringtest_put_head(hwsock_ringtest *r, uint16_t head) {
  hwsock_le16_set(&r->avail->ring[r->avail_shadow % r->qsize], head);
  r->avail_shadow++;
}

void hwsock_ringtest_set_avail_idx(hwsock_ringtest *r, uint16_t idx) {
  r->avail_shadow = idx;
  __atomic_thread_fence(__ATOMIC_RELEASE);
  hwsock_le16_store(&r->avail->idx, idx);
}

void hwsock_ringtest_publish(hwsock_ringtest *r) {
  hwsock_ringtest_set_avail_idx(r, r->avail_shadow);
}

uint16_t hwsock__ringtest_take_descs(hwsock_ringtest *r, unsigned n) {
  uint16_t first = r->next_desc;
  r->next_desc = (uint16_t)((r->next_desc + n) % r->qsize);
  return first;
}

int hwsock_ringtest_add_chain(hwsock_ringtest *r,
                              const hwsock_ringtest_seg *segs, unsigned n) {
  if (n == 0 || n > r->qsize)
    return HWSOCK_EINVAL;
  uint16_t head = hwsock__ringtest_take_descs(r, n);
  for (unsigned k = 0; k < n; k++) {
    unsigned i = (head + k) % r->qsize;
    uint16_t next = (uint16_t)((i + 1) % r->qsize);
    uint16_t flags = segs[k].flags;
    if (k + 1 < n)
      flags |= HWSOCK_VRING_DESC_F_NEXT;
    hwsock__ringtest_put_desc(&r->desc[i], segs[k].gpa, segs[k].len, flags,
                              k + 1 < n ? next : 0);
  }
  hwsock_ringtest_put_head(r, head);
  return head;
}

int hwsock_ringtest_add_rw(hwsock_ringtest *r, const struct iovec *out,
                           unsigned n_out, const uint32_t *in_lens,
                           unsigned n_in, uint64_t *in_gpas) {
  hwsock_ringtest_seg segs[HWSOCK_RINGTEST_MAX_RW_SEGS];
  if (n_out > HWSOCK_RINGTEST_MAX_RW_SEGS ||
      n_in > HWSOCK_RINGTEST_MAX_RW_SEGS - n_out || n_out + n_in == 0 ||
      n_out + n_in > r->qsize)
    return HWSOCK_EINVAL;
  size_t mark = hwsock_ringtest_mark(r);
  for (unsigned k = 0; k < n_out; k++) {
    uint64_t g = hwsock_ringtest_alloc(r, out[k].iov_len, 8);
    if (g == 0 || out[k].iov_len > UINT32_MAX)
      goto full;
    if (out[k].iov_len > 0)
      memcpy(hwsock_ringtest_host(r, g), out[k].iov_base, out[k].iov_len);
    segs[k] = (hwsock_ringtest_seg){g, (uint32_t)out[k].iov_len, 0};
  }
  for (unsigned k = 0; k < n_in; k++) {
    uint64_t g = hwsock_ringtest_alloc(r, in_lens[k], 8);
    if (g == 0)
      goto full;
    if (in_gpas != NULL)
      in_gpas[k] = g;
    segs[n_out + k] =
        (hwsock_ringtest_seg){g, in_lens[k], HWSOCK_VRING_DESC_F_WRITE};
  }
  return hwsock_ringtest_add_chain(r, segs, n_out + n_in);
full:
  hwsock_ringtest_release(r, mark);
  return HWSOCK_ENOMEM;
}

int hwsock_ringtest_add_indirect(hwsock_ringtest *r,
                                 const hwsock_ringtest_seg *segs, unsigned n) {
  if (n == 0 || n > 65536 / sizeof(hwsock_vring_desc))
    return HWSOCK_EINVAL;
  uint64_t table = hwsock_ringtest_alloc(r, n * sizeof(hwsock_vring_desc), 16);
  if (table == 0)
    return HWSOCK_ENOMEM;
  for (unsigned k = 0; k < n; k++) {
    uint16_t flags = segs[k].flags;
    if (k + 1 < n)
      flags |= HWSOCK_VRING_DESC_F_NEXT;
    hwsock_ringtest_write_desc(r, table + k * sizeof(hwsock_vring_desc),
                               segs[k].gpa, segs[k].len, flags,
                               (uint16_t)(k + 1 < n ? k + 1 : 0));
  }
  uint16_t head = hwsock__ringtest_take_descs(r, 1);
  hwsock__ringtest_put_desc(&r->desc[head], table,
                            (uint32_t)(n * sizeof(hwsock_vring_desc)),
                            HWSOCK_VRING_DESC_F_INDIRECT, 0);
  hwsock_ringtest_put_head(r, head);
  return head;
}

void hwsock_ringtest_set_used_event(hwsock_ringtest *r, uint16_t v) {
  hwsock_le16_store(&r->avail->ring[r->qsize], v);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void hwsock_ringtest_set_no_interrupt(hwsock_ringtest *r, int on) {
  uint16_t f = hwsock_le16_load(&r->avail->flags);
  if (on)
    f |= HWSOCK_VRING_AVAIL_F_NO_INTERRUPT;
  else
    f &= (uint16_t)~HWSOCK_VRING_AVAIL_F_NO_INTERRUPT;
  hwsock_le16_store(&r->avail->flags, f);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint16_t hwsock_ringtest_avail_event(const hwsock_ringtest *r) {
  return hwsock_le16_load(
      (const hwsock_le16 *)(const void *)&r->used->ring[r->qsize]);
}

uint16_t hwsock_ringtest_used_flags(const hwsock_ringtest *r) {
  return hwsock_le16_load(&r->used->flags);
}

void hwsock_ringtest_set_used_flags(hwsock_ringtest *r, uint16_t flags) {
  hwsock_le16_store(&r->used->flags, flags);
}

uint16_t hwsock_ringtest_used_idx(const hwsock_ringtest *r) {
  return hwsock_le16_load(&r->used->idx);
}

int hwsock_ringtest_get_used(hwsock_ringtest *r, uint32_t *id,
                             uint32_t *len) {
  if (hwsock_ringtest_used_idx(r) == r->last_used)
    return 0;
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  const hwsock_vring_used_elem *e = &r->used->ring[r->last_used % r->qsize];
  *id = hwsock_le32_get(&e->id);
  *len = hwsock_le32_get(&e->len);
  r->last_used++;
  return 1;
}
