/* libhwsock-ringtest: the driver side of one split virtqueue (PROTOCOL.md
 * §2.2) written by hand into a memory block, for unit tests of a driver or
 * a device against the protocol. It is what libhwsock's own tests,
 * adversarial guests and hwsock-conform build their rings with.
 *
 * A hwsock_ringtest stands for one queue in a block of memory that plays
 * guest physical [gpa, gpa + size). The queue sits at the start of the
 * block:
 *
 *   desc table  at gpa                          (16 * qsize bytes)
 *   avail ring  right after it                  (6 + 2 * qsize)
 *   used ring   after that, 4-aligned           (6 + 8 * qsize)
 *   scratch     the rest, handed out by hwsock_ringtest_alloc()
 *
 * Hand desc_gpa, avail_gpa and used_gpa (and the block as a memory region)
 * to the device under test; this side then writes chains as a driver does,
 * and reads the device's completions from the used ring.
 *
 * Descriptors are handed out round-robin from index 0; the caller keeps at
 * most qsize descriptors in flight. Chains go onto the avail ring at the
 * driver's shadow index and become visible to the device only at
 * hwsock_ringtest_publish() (release barrier, then the avail idx store), as
 * a real driver does.
 *
 * The raw functions (set_desc, write_desc, put_head, set_avail_idx) write
 * whatever they are given, unchecked: they exist to build hostile rings.
 * hwsock_ringtest_add_fault() writes one ready-made hostile layout and
 * tells which HWSOCK_RESET_* code a conforming device must report for it.
 *
 * Threads: a hwsock_ringtest is one driver; calls on one object must not
 * overlap. The device under test may run in another thread or process
 * (the block may be shared memory): the ring fields are accessed with the
 * barriers the protocol asks of a driver.
 *
 * Errors: functions return 0 (or a non-negative index or count) or a
 * negative HWSOCK_E* (hwsock/common.h); hwsock_ringtest_alloc() returns
 * guest address 0 when the block is full, so blocks must not start at
 * guest address 0.
 *
 * The library depends on nothing but libc; link it with pkg-config
 * `hwsock-ringtest` or CMake `hwsock::ringtest` (docs/EMBEDDING.md,
 * "Testing against the protocol"). */
#ifndef HWSOCK_RINGTEST_H
#define HWSOCK_RINGTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hwsock/common.h"
#include "hwsock/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where hwsock_ringtest_init() puts the block when given 0, and its size
 * when given 0. */
#define HWSOCK_RINGTEST_DEFAULT_GPA 0x100000ull
#define HWSOCK_RINGTEST_DEFAULT_MEM (1u << 20) /* 1 MiB */
/* Most segments hwsock_ringtest_add_rw() takes (out + in). */
#define HWSOCK_RINGTEST_MAX_RW_SEGS 64u

/* One queue's driver side. Caller-allocated (stack, static or heap); its
 * fields are set by the init functions and may be read at any time.
 * Writing them directly is for hostile tests only (e.g. pointing `used` at
 * another place). */
typedef struct hwsock_ringtest {
  uint8_t *mem;   /* the block: owned unless borrowed (see init_at) */
  uint64_t gpa;   /* guest physical address of mem[0] */
  size_t size;    /* bytes in the block */
  size_t brk;     /* next free scratch offset */
  unsigned qsize; /* queue entries */
  uint64_t desc_gpa, avail_gpa, used_gpa; /* hand these to the device */
  hwsock_vring_desc *desc;                /* host views of the three parts */
  hwsock_vring_avail *avail;
  hwsock_vring_used *used;
  uint16_t avail_shadow; /* the driver's next avail idx (published or not) */
  uint16_t next_desc;    /* next descriptor handed out */
  uint16_t last_used;    /* next used entry hwsock_ringtest_get_used() reads */
  int borrowed;          /* mem is the caller's (hwsock_ringtest_init_at) */
} hwsock_ringtest;

/* One buffer of a chain: flags is 0 (device-readable) or
 * HWSOCK_VRING_DESC_F_WRITE (device-writable); the chain builders add
 * F_NEXT themselves. */
typedef struct hwsock_ringtest_seg {
  uint64_t gpa;
  uint32_t len;
  uint16_t flags;
} hwsock_ringtest_seg;

/* ---- the block ----------------------------------------------------------- */

/* Allocates a zeroed, page-aligned block of mem_size bytes (0 =
 * HWSOCK_RINGTEST_DEFAULT_MEM, rounded up to 4096) standing for guest
 * address gpa (0 = HWSOCK_RINGTEST_DEFAULT_GPA) and lays out a queue of
 * qsize entries (1..32768, any value: the device decides what it accepts).
 * Ownership: *r is the caller's; the block belongs to *r until
 * hwsock_ringtest_free(). On failure *r holds nothing to free.
 * HWSOCK_EINVAL (qsize 0 or above 32768, or the queue does not fit in the
 * block), HWSOCK_ENOMEM. */
HWSOCK_EXTERN int hwsock_ringtest_init(hwsock_ringtest *r, uint64_t gpa,
                                       size_t mem_size, unsigned qsize);

/* The same over the caller's memory (e.g. a shared memfd mapping that a
 * device in another process sees as guest RAM): mem_size bytes at mem are
 * guest address gpa (not 0). The block is zeroed here. Ownership: mem
 * stays the caller's, must outlive *r, and is never freed by
 * hwsock_ringtest_free(). HWSOCK_EINVAL. */
HWSOCK_EXTERN int hwsock_ringtest_init_at(hwsock_ringtest *r, void *mem,
                                          uint64_t gpa, size_t mem_size,
                                          unsigned qsize);

/* Frees the block unless it was borrowed and zeroes *r (which may then be
 * initialised again). Every host pointer obtained from *r is invalid
 * afterwards. Safe on a zeroed or failed-init *r. */
HWSOCK_EXTERN void hwsock_ringtest_free(hwsock_ringtest *r);

/* Scratch memory in the block: the guest address of len zeroed bytes
 * aligned to align (a power of 2; 0 = 8), or 0 when the block is full. The
 * bytes belong to the block: valid until hwsock_ringtest_release() to a
 * mark before them, or hwsock_ringtest_free(). */
HWSOCK_EXTERN uint64_t hwsock_ringtest_alloc(hwsock_ringtest *r, size_t len,
                                             size_t align);

/* The scratch allocator's position, to return to with
 * hwsock_ringtest_release() (everything allocated after the mark is then
 * free again; a mark beyond the current position is ignored). */
HWSOCK_EXTERN size_t hwsock_ringtest_mark(const hwsock_ringtest *r);
HWSOCK_EXTERN void hwsock_ringtest_release(hwsock_ringtest *r, size_t mark);

/* The host pointer of guest address gpa when it lies in the block, else
 * NULL. Borrowed from the block: valid as long as the block. */
HWSOCK_EXTERN void *hwsock_ringtest_host(const hwsock_ringtest *r,
                                         uint64_t gpa);

/* ---- chains -------------------------------------------------------------- */

/* Adds a direct chain of n segments (1..qsize) to the avail ring,
 * unpublished. segs is read during the call only; the buffers it names
 * are the caller's (usually scratch of this block). The head index, or
 * HWSOCK_EINVAL. */
HWSOCK_EXTERN int hwsock_ringtest_add_chain(hwsock_ringtest *r,
                                            const hwsock_ringtest_seg *segs,
                                            unsigned n);

/* Adds a chain made of copies of out[0..n_out) (each copied into new
 * scratch, device-readable) followed by n_in device-writable scratch
 * buffers of in_lens[i] bytes, whose guest addresses go to in_gpas[i]
 * (in_gpas may be NULL). out and in_lens are read during the call only;
 * the scratch belongs to the block (see hwsock_ringtest_alloc). The head,
 * or HWSOCK_EINVAL (no segment, more than HWSOCK_RINGTEST_MAX_RW_SEGS or
 * qsize), HWSOCK_ENOMEM (the block is full; nothing was added). */
HWSOCK_EXTERN int hwsock_ringtest_add_rw(hwsock_ringtest *r,
                                         const struct iovec *out,
                                         unsigned n_out,
                                         const uint32_t *in_lens,
                                         unsigned n_in, uint64_t *in_gpas);

/* Adds one main-table descriptor with F_INDIRECT pointing at a new
 * scratch table holding segs[0..n) chained 0 -> 1 -> ... -> n-1 (n at
 * most 4096). segs is read during the call only; the table belongs to the
 * block. The head, or HWSOCK_EINVAL, HWSOCK_ENOMEM. The device must have
 * HWSOCK_F_INDIRECT_DESC negotiated. */
HWSOCK_EXTERN int hwsock_ringtest_add_indirect(hwsock_ringtest *r,
                                               const hwsock_ringtest_seg *segs,
                                               unsigned n);

/* Adds one hwsock request (PROTOCOL.md §4.1): a readable buffer holding
 * *hdr exactly as given (uri_len included: a hostile test may make it
 * lie), then uri_len bytes of uri and dlen bytes of data (data NULL: dlen
 * zero bytes), and, when wlen >
 * 0, one writable buffer of wlen bytes for the response, whose guest
 * address goes to *resp_gpa (may be NULL; 0 when wlen is 0). hdr, uri and
 * data are copied during the call; both buffers are new scratch of the
 * block (see hwsock_ringtest_alloc). The head, or HWSOCK_EINVAL, or
 * HWSOCK_ENOMEM (the block is full; nothing was added). */
HWSOCK_EXTERN int hwsock_ringtest_add_request(hwsock_ringtest *r,
                                              const hwsock_req_hdr *hdr,
                                              const void *uri,
                                              uint32_t uri_len,
                                              const void *data, uint32_t dlen,
                                              uint32_t wlen,
                                              uint64_t *resp_gpa);

/* Release barrier, then avail->idx = the shadow idx: everything added so
 * far becomes visible to the device. */
HWSOCK_EXTERN void hwsock_ringtest_publish(hwsock_ringtest *r);

/* ---- raw access, no checks ------------------------------------------------ */

/* desc[i % qsize] = {addr, len, flags, next}, exactly as given. */
HWSOCK_EXTERN void hwsock_ringtest_set_desc(hwsock_ringtest *r, unsigned i,
                                            uint64_t addr, uint32_t len,
                                            uint16_t flags, uint16_t next);
/* Writes one descriptor at guest address gpa (e.g. into an indirect table
 * in scratch); nothing when the 16 bytes are not all in the block. */
HWSOCK_EXTERN void hwsock_ringtest_write_desc(hwsock_ringtest *r,
                                              uint64_t gpa, uint64_t addr,
                                              uint32_t len, uint16_t flags,
                                              uint16_t next);
/* avail->ring[shadow % qsize] = head; shadow++ (unpublished). Any head,
 * also one out of range. */
HWSOCK_EXTERN void hwsock_ringtest_put_head(hwsock_ringtest *r,
                                            uint16_t head);
/* avail->idx = idx now (release barrier first), and the shadow follows. */
HWSOCK_EXTERN void hwsock_ringtest_set_avail_idx(hwsock_ringtest *r,
                                                 uint16_t idx);

/* ---- hostile layouts ------------------------------------------------------ */

/* Ready-made broken chains (PROTOCOL.md §2.8), one per ring fault whose
 * code does not depend on the device's limits or memory map. Each needs
 * only this block; the indirect ones assume HWSOCK_F_INDIRECT_DESC was
 * negotiated (else a device must report
 * HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED instead). */
typedef enum hwsock_ringtest_fault {
  HWSOCK_RINGTEST_DESC_LOOP = 1,    /* two descriptors naming each other */
  HWSOCK_RINGTEST_SELF_LOOP,        /* a descriptor whose next is itself */
  HWSOCK_RINGTEST_HEAD_INDEX,       /* avail ring names head qsize */
  HWSOCK_RINGTEST_NEXT_INDEX,       /* next = qsize */
  HWSOCK_RINGTEST_AVAIL_IDX,        /* avail idx qsize + 1 ahead */
  HWSOCK_RINGTEST_ADDR_WRAPS,       /* addr + len wraps past 2^64 */
  HWSOCK_RINGTEST_READ_AFTER_WRITE, /* readable after writable */
  HWSOCK_RINGTEST_INDIRECT_WITH_NEXT,  /* F_INDIRECT | F_NEXT */
  HWSOCK_RINGTEST_INDIRECT_ZERO_LEN,   /* indirect table of 0 bytes */
  HWSOCK_RINGTEST_INDIRECT_LEN,        /* table length not a multiple of 16 */
  HWSOCK_RINGTEST_INDIRECT_NEXT_INDEX, /* next beyond the table */
  HWSOCK_RINGTEST_INDIRECT_LOOP,       /* a loop inside the table */
  HWSOCK_RINGTEST_INDIRECT_NESTED,     /* F_INDIRECT inside the table */
  HWSOCK_RINGTEST_FAULT_MAX_ = HWSOCK_RINGTEST_INDIRECT_NESTED
} hwsock_ringtest_fault;

/* Writes the hostile layout `fault` (descriptors taken round-robin, its
 * buffers and tables in scratch) and makes it available, unpublished like
 * any chain (AVAIL_IDX moves the shadow idx instead: publishing writes the
 * bad idx). Returns the HWSOCK_RESET_* code (> 0) a conforming device
 * must report once it is published and kicked, and after which it writes
 * nothing more to the used ring; HWSOCK_EINVAL for an unknown fault or a
 * queue too small for it (qsize < 2), HWSOCK_ENOMEM. */
HWSOCK_EXTERN int hwsock_ringtest_add_fault(hwsock_ringtest *r, int fault);

/* A static name for `fault` ("desc_loop", ...), or NULL when unknown. */
HWSOCK_EXTERN const char *hwsock_ringtest_fault_name(int fault);

/* ---- notification fields -------------------------------------------------- */

/* EVENT_IDX: the used_event field (interrupt when used idx passes v). */
HWSOCK_EXTERN void hwsock_ringtest_set_used_event(hwsock_ringtest *r,
                                                  uint16_t v);
/* HWSOCK_VRING_AVAIL_F_NO_INTERRUPT on or off. */
HWSOCK_EXTERN void hwsock_ringtest_set_no_interrupt(hwsock_ringtest *r,
                                                    int on);
/* EVENT_IDX: the avail_event field the device writes. */
HWSOCK_EXTERN uint16_t hwsock_ringtest_avail_event(const hwsock_ringtest *r);
/* The used ring's flags (the device writes them; set_used_flags exists to
 * test that a device clears or ignores what a driver must not write). */
HWSOCK_EXTERN uint16_t hwsock_ringtest_used_flags(const hwsock_ringtest *r);
HWSOCK_EXTERN void hwsock_ringtest_set_used_flags(hwsock_ringtest *r,
                                                  uint16_t flags);

/* ---- completions ---------------------------------------------------------- */

/* The device's published used idx. */
HWSOCK_EXTERN uint16_t hwsock_ringtest_used_idx(const hwsock_ringtest *r);
/* Reads the next used element (acquire barrier after the idx): 1 with *id
 * and *len set, 0 when the device published nothing new. */
HWSOCK_EXTERN int hwsock_ringtest_get_used(hwsock_ringtest *r, uint32_t *id,
                                           uint32_t *len);

#ifdef __cplusplus
}
#endif

#endif
