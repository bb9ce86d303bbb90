/* Test support: the DRIVER side of one split virtqueue, in fake guest memory.
 *
 * A vrb owns one zeroed, page-aligned host block that stands for guest
 * physical [gpa, gpa+size). The queue sits at the start of the block:
 *
 *   desc table  at gpa                         (16 * qsize bytes)
 *   avail ring  right after it                 (6 + 2 * qsize)
 *   used ring   after that, 4-aligned          (6 + 8 * qsize)
 *   scratch     the rest, handed out by vrb_alloc() (bump allocator)
 *
 * Descriptors are handed out round-robin from index 0; the caller keeps at
 * most qsize descriptors in flight (tests complete requests promptly).
 * Chains are added to the avail ring at the driver's shadow idx and become
 * visible to the device only at vrb_publish() (release barrier + avail idx
 * store), as a real driver does.
 *
 * The raw functions (vrb_set_desc, vrb_write_desc, vrb_put_head,
 * vrb_set_avail_idx) write whatever they are given, with no checks: they
 * exist to build adversarial rings.
 *
 * Test support only (names vrb_*); not library API. Functions that can fail
 * return -1 (or gpa 0: base gpas must therefore be non-zero). */
#ifndef HWSOCK_TEST_VRING_BUILDER_H
#define HWSOCK_TEST_VRING_BUILDER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hwsock/wire.h"
#include "ring.h"

#define VRB_DEFAULT_GPA 0x100000ull
#define VRB_DEFAULT_MEM (1u << 20) /* 1 MiB */

typedef struct vrb {
  uint8_t *mem;       /* host block, owned; freed by vrb_free() */
  uint64_t gpa;       /* guest physical address of mem[0] */
  size_t size;        /* bytes */
  size_t brk;         /* next free scratch offset */
  unsigned qsize;     /* queue entries */
  uint64_t desc_gpa, avail_gpa, used_gpa;
  hwsock_vring_desc *desc;
  hwsock_vring_avail *avail;
  hwsock_vring_used *used;
  uint16_t avail_shadow; /* driver's next avail idx (published or not) */
  uint16_t next_desc;    /* next descriptor handed out */
  uint16_t last_used;    /* next used entry vrb_get_used() reads */
  int borrowed;          /* mem is the caller's (vrb_init_at) */
} vrb;

/* One buffer of a chain: flags is 0 (device-readable) or
 * HWSOCK_VRING_DESC_F_WRITE; the builder adds F_NEXT itself. */
typedef struct vrb_seg {
  uint64_t gpa;
  uint32_t len;
  uint16_t flags;
} vrb_seg;

/* Allocates the block (mem_size 0 = VRB_DEFAULT_MEM) at guest address gpa
 * (0 = VRB_DEFAULT_GPA) and lays out a queue of qsize entries (any value
 * 1..32768; the device decides what it accepts). 0 or -1. */
int vrb_init(vrb *r, uint64_t gpa, size_t mem_size, unsigned qsize);
void vrb_free(vrb *r);
/* The same over the caller's memory (e.g. a shared memfd mapping standing
 * for guest RAM): mem_size bytes at mem are guest physical gpa; the block
 * is zeroed here and never freed by vrb_free(). 0 or -1. */
int vrb_init_at(vrb *r, void *mem, uint64_t gpa, size_t mem_size,
                unsigned qsize);

/* Scratch memory in the block: gpa of len bytes aligned to align (a power
 * of 2, 0 = 8), zeroed; 0 when the block is full. vrb_mark/vrb_release
 * return the scratch allocator to an earlier point. */
uint64_t vrb_alloc(vrb *r, size_t len, size_t align);
size_t vrb_mark(const vrb *r);
void vrb_release(vrb *r, size_t mark);

/* Host pointer for gpa when it lies in the block, else NULL. */
void *vrb_host(const vrb *r, uint64_t gpa);

/* Adds the block to m as one region (split 0) or as two regions that are
 * contiguous in guest physical space, split `split` bytes into the block.
 * Returns hwsock__mem_add()'s result. */
int vrb_add_regions(const vrb *r, hwsock__memmap *m, size_t split);

/* hwsock__vq_init() with this queue's layout. */
int vrb_vq_init(const vrb *r, hwsock__vq *vq, const hwsock__memmap *m,
                uint64_t features, unsigned max_segs);

/* Adds a direct chain of n segments (n >= 1, <= qsize) to the avail ring,
 * unpublished. Returns the head index or -1. */
int vrb_add_chain(vrb *r, const vrb_seg *segs, unsigned n);

/* Adds a chain made of copies of out[0..n_out) (each in new scratch, device-
 * readable) followed by n_in device-writable scratch buffers of in_lens[i]
 * bytes whose gpas are stored in in_gpas[i] (may be NULL). Head or -1. */
int vrb_add_rw(vrb *r, const struct iovec *out, unsigned n_out,
               const uint32_t *in_lens, unsigned n_in, uint64_t *in_gpas);

/* Adds one main-table descriptor with F_INDIRECT pointing at a new scratch
 * table holding segs[0..n) chained 0->1->...->n-1. Head or -1. */
int vrb_add_indirect(vrb *r, const vrb_seg *segs, unsigned n);

/* Release barrier, then avail->idx = the shadow idx. */
void vrb_publish(vrb *r);

/* ---- raw access, no checks ---------------------------------------------- */

/* desc[i % qsize] = {addr, len, flags, next}. */
void vrb_set_desc(vrb *r, unsigned i, uint64_t addr, uint32_t len,
                  uint16_t flags, uint16_t next);
/* Writes one descriptor at guest address gpa (e.g. into an indirect table
 * in scratch). */
void vrb_write_desc(vrb *r, uint64_t gpa, uint64_t addr, uint32_t len,
                    uint16_t flags, uint16_t next);
/* avail->ring[shadow % qsize] = head; shadow++ (unpublished). */
void vrb_put_head(vrb *r, uint16_t head);
/* avail->idx = idx now, and the shadow follows it. */
void vrb_set_avail_idx(vrb *r, uint16_t idx);

/* ---- notification fields ------------------------------------------------ */

void vrb_set_used_event(vrb *r, uint16_t v);    /* EVENT_IDX */
void vrb_set_no_interrupt(vrb *r, int on);      /* AVAIL_F_NO_INTERRUPT */
uint16_t vrb_avail_event(const vrb *r);         /* written by the device */
uint16_t vrb_used_flags(const vrb *r);
void vrb_set_used_flags(vrb *r, uint16_t flags); /* e.g. to test clearing */

/* ---- completions -------------------------------------------------------- */

/* Device's published used idx. */
uint16_t vrb_used_idx(const vrb *r);
/* Reads the next used entry: 1 with *id and *len set, 0 when none is new. */
int vrb_get_used(vrb *r, uint32_t *id, uint32_t *len);

#endif
