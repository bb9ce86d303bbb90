/* Test support: the short names libhwsock's own tests use for the public
 * test-support library libhwsock-ringtest (hwsock/ringtest.h, where every
 * function is documented): vrb_x is hwsock_ringtest_x, VRB_X is
 * HWSOCK_RINGTEST_X. Tests link the library (or hwsock_internal, which
 * holds the same objects); nothing here is compiled of its own.
 *
 * Besides the aliases, the builder's two device-side helpers, which reach
 * the library's internal memory map and queue code (ring.h) and so cannot
 * be public: vring_device.c. */
#ifndef HWSOCK_TEST_VRING_BUILDER_H
#define HWSOCK_TEST_VRING_BUILDER_H

#include "hwsock/ringtest.h"
#include "ring.h"

#define VRB_DEFAULT_GPA HWSOCK_RINGTEST_DEFAULT_GPA
#define VRB_DEFAULT_MEM HWSOCK_RINGTEST_DEFAULT_MEM

typedef hwsock_ringtest vrb;
typedef hwsock_ringtest_seg vrb_seg;

#define vrb_init hwsock_ringtest_init
#define vrb_init_at hwsock_ringtest_init_at
#define vrb_free hwsock_ringtest_free
#define vrb_alloc hwsock_ringtest_alloc
#define vrb_mark hwsock_ringtest_mark
#define vrb_release hwsock_ringtest_release
#define vrb_host hwsock_ringtest_host
#define vrb_add_chain hwsock_ringtest_add_chain
#define vrb_add_rw hwsock_ringtest_add_rw
#define vrb_add_indirect hwsock_ringtest_add_indirect
#define vrb_add_fault hwsock_ringtest_add_fault
#define vrb_add_request hwsock_ringtest_add_request
#define vrb_publish hwsock_ringtest_publish
#define vrb_set_desc hwsock_ringtest_set_desc
#define vrb_write_desc hwsock_ringtest_write_desc
#define vrb_put_head hwsock_ringtest_put_head
#define vrb_set_avail_idx hwsock_ringtest_set_avail_idx
#define vrb_set_used_event hwsock_ringtest_set_used_event
#define vrb_set_no_interrupt hwsock_ringtest_set_no_interrupt
#define vrb_avail_event hwsock_ringtest_avail_event
#define vrb_used_flags hwsock_ringtest_used_flags
#define vrb_set_used_flags hwsock_ringtest_set_used_flags
#define vrb_used_idx hwsock_ringtest_used_idx
#define vrb_get_used hwsock_ringtest_get_used

/* Adds the block to m as one region (split 0) or as two regions that are
 * contiguous in guest physical space, split `split` bytes into the block.
 * Returns hwsock__mem_add()'s result. (vring_device.c) */
int vrb_add_regions(const vrb *r, hwsock__memmap *m, size_t split);

/* hwsock__vq_init() with this queue's layout. (vring_device.c) */
int vrb_vq_init(const vrb *r, hwsock__vq *vq, const hwsock__memmap *m,
                uint64_t features, unsigned max_segs);

#endif
