/* libhwsock-ringtest (hwsock/ringtest.h), the public test-support ring
 * builder, checked against the device's own queue code (lib/ring.h): what
 * it builds is what the device pops, and each hostile layout makes the
 * device report exactly the HWSOCK_RESET_* code add_fault() promises. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "hwsock/common.h"
#include "hwsock/ringtest.h"
#include "ring.h"

#define QS 16u
#define CAP 64u
#define FEATURES (HWSOCK_F_INDIRECT_DESC | HWSOCK_F_EVENT_IDX)

static struct {
  hwsock_ringtest r;
  hwsock__region regs[2];
  hwsock__memmap m;
  hwsock__vq vq;
  struct iovec iov[CAP];
  hwsock__chain c;
  const char *why;
} F;

static void teardown(void) { hwsock_ringtest_free(&F.r); }

TestSuite(ringtest, .fini = teardown);

/* The device side of F.r's queue, over the whole block as one region. */
static void device(uint64_t features) {
  F.m = (hwsock__memmap){F.regs, 0, 2};
  cr_assert_eq(hwsock__mem_add(&F.m, F.r.gpa, F.r.size, F.r.mem), 0);
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, F.r.qsize, F.r.desc_gpa,
                               F.r.avail_gpa, F.r.used_gpa, features, CAP),
               0);
}

static int pop(void) {
  F.why = NULL;
  return hwsock__vq_pop(&F.vq, &F.c, F.iov, CAP, &F.why);
}

Test(ringtest, init_refuses_bad_sizes_and_leaves_nothing_to_free) {
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, 32769), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 4096, 1024), HWSOCK_EINVAL);
  cr_assert_null(F.r.mem);
  uint8_t block[8192];
  cr_assert_eq(hwsock_ringtest_init_at(&F.r, block, 0, sizeof block, 16),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_ringtest_init_at(&F.r, NULL, 0x1000, 8192, 16),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_ringtest_init_at(&F.r, block, 0x1000, sizeof block, 16),
               0);
  cr_assert_eq(F.r.borrowed, 1);
  hwsock_ringtest_free(&F.r); /* the caller's block: not freed */
  cr_assert_null(F.r.mem);
}

Test(ringtest, layout_is_aligned_and_scratch_is_bounded) {
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, QS), 0);
  cr_assert_eq(F.r.gpa, HWSOCK_RINGTEST_DEFAULT_GPA);
  cr_assert_eq(F.r.size, HWSOCK_RINGTEST_DEFAULT_MEM);
  cr_assert_eq(F.r.desc_gpa, F.r.gpa);
  cr_assert_eq(F.r.avail_gpa, F.r.gpa + 16 * QS);
  cr_assert_eq(F.r.used_gpa % 4, 0);
  cr_assert_geq(F.r.used_gpa, F.r.avail_gpa + 6 + 2 * QS);
  uint64_t a = hwsock_ringtest_alloc(&F.r, 100, 256);
  cr_assert_neq(a, 0);
  cr_assert_eq(a % 256, 0);
  cr_assert_gt(a, F.r.used_gpa);
  cr_assert_eq(hwsock_ringtest_host(&F.r, a), F.r.mem + (a - F.r.gpa));
  cr_assert_null(hwsock_ringtest_host(&F.r, F.r.gpa + F.r.size));
  cr_assert_eq(hwsock_ringtest_alloc(&F.r, 8, 3), 0); /* not a power of 2 */
  size_t mark = hwsock_ringtest_mark(&F.r);
  cr_assert_eq(hwsock_ringtest_alloc(&F.r, F.r.size, 8), 0); /* too big */
  uint64_t b = hwsock_ringtest_alloc(&F.r, 64, 8);
  hwsock_ringtest_release(&F.r, mark);
  cr_assert_eq(hwsock_ringtest_alloc(&F.r, 64, 8), b);
}

Test(ringtest, rw_and_indirect_chains_pop_as_built_and_complete) {
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, QS), 0);
  device(FEATURES);
  struct iovec out[2] = {{"header..", 8}, {"payload", 7}};
  uint32_t in_lens[1] = {64};
  uint64_t in_gpa = 0;
  int h1 = hwsock_ringtest_add_rw(&F.r, out, 2, in_lens, 1, &in_gpa);
  cr_assert_geq(h1, 0);
  hwsock_ringtest_seg segs[2] = {{in_gpa, 32, 0},
                                 {in_gpa, 16, HWSOCK_VRING_DESC_F_WRITE}};
  int h2 = hwsock_ringtest_add_indirect(&F.r, segs, 2);
  cr_assert_geq(h2, 0);
  cr_assert_eq(pop(), 0, "nothing is visible before publish");
  hwsock_ringtest_publish(&F.r);
  cr_assert_eq(pop(), 1);
  cr_assert_eq(F.c.head, h1);
  cr_assert_eq(F.c.n_out, 2);
  cr_assert_eq(F.c.n_in, 1);
  cr_assert_eq(memcmp(F.iov[1].iov_base, "payload", 7), 0);
  cr_assert_eq(F.iov[2].iov_base, hwsock_ringtest_host(&F.r, in_gpa));
  cr_assert_eq(pop(), 1);
  cr_assert_eq(F.c.head, h2);
  cr_assert_eq(F.c.out_len, 32);
  cr_assert_eq(F.c.in_len, 16);
  hwsock__vq_push(&F.vq, (uint16_t)h2, 16);
  uint32_t id = 0, len = 0;
  cr_assert_eq(hwsock_ringtest_get_used(&F.r, &id, &len), 1);
  cr_assert_eq(id, (uint32_t)h2);
  cr_assert_eq(len, 16);
  cr_assert_eq(hwsock_ringtest_get_used(&F.r, &id, &len), 0);
  cr_assert_eq(hwsock_ringtest_add_rw(&F.r, NULL, 0, NULL, 0, NULL),
               HWSOCK_EINVAL);
}

Test(ringtest, fault_names_are_known_and_unknown_faults_refused) {
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, QS), 0);
  cr_assert_null(hwsock_ringtest_fault_name(0));
  cr_assert_null(hwsock_ringtest_fault_name(HWSOCK_RINGTEST_FAULT_MAX_ + 1));
  cr_assert_eq(hwsock_ringtest_add_fault(&F.r, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_ringtest_add_fault(&F.r, HWSOCK_RINGTEST_FAULT_MAX_ + 1),
               HWSOCK_EINVAL);
  for (int f = 1; f <= HWSOCK_RINGTEST_FAULT_MAX_; f++) {
    cr_assert_not_null(hwsock_ringtest_fault_name(f));
    for (int g = 1; g < f; g++)
      cr_assert_str_neq(hwsock_ringtest_fault_name(f),
                        hwsock_ringtest_fault_name(g));
  }
  hwsock_ringtest_free(&F.r);
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, 1), 0);
  cr_assert_eq(hwsock_ringtest_add_fault(&F.r, HWSOCK_RINGTEST_DESC_LOOP),
               HWSOCK_EINVAL);
}

/* Every hostile layout, after `before` good chains were taken (so that
 * descriptor and avail positions are not at 0): the device pops exactly
 * the promised fault, leaves its position alone, and the used ring is
 * untouched. */
static void each_fault(unsigned before) {
  for (int f = 1; f <= HWSOCK_RINGTEST_FAULT_MAX_; f++) {
    cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, QS), 0);
    device(FEATURES);
    for (unsigned i = 0; i < before; i++) {
      uint32_t in = 32;
      cr_assert_geq(hwsock_ringtest_add_rw(&F.r, NULL, 0, &in, 1, NULL), 0);
      hwsock_ringtest_publish(&F.r);
      cr_assert_eq(pop(), 1);
    }
    int code = hwsock_ringtest_add_fault(&F.r, f);
    cr_assert_gt(code, 0, "%s: %d", hwsock_ringtest_fault_name(f), code);
    cr_assert_leq(code, HWSOCK_RESET_MAX_);
    hwsock_ringtest_publish(&F.r);
    int rc = pop();
    cr_assert_eq(rc, HWSOCK_ENEEDSRESET, "%s: pop %d",
                 hwsock_ringtest_fault_name(f), rc);
    cr_assert_eq(hwsock__vq_fault_code(F.why), code, "%s: device says %s",
                 hwsock_ringtest_fault_name(f), F.why);
    cr_assert_eq(F.vq.last_avail, (uint16_t)before);
    cr_assert_eq(hwsock_ringtest_used_idx(&F.r), 0);
    hwsock_ringtest_free(&F.r);
  }
}

Test(ringtest, each_fault_is_the_promised_ring_fault) { each_fault(0); }
Test(ringtest, each_fault_after_good_chains) { each_fault(QS - 1); }

/* Without INDIRECT_DESC negotiated, an indirect layout is that fault. */
Test(ringtest, indirect_fault_without_the_feature) {
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, QS), 0);
  device(HWSOCK_F_EVENT_IDX);
  cr_assert_eq(hwsock_ringtest_add_fault(&F.r,
                                         HWSOCK_RINGTEST_INDIRECT_NESTED),
               HWSOCK_RESET_INDIRECT_NESTED);
  hwsock_ringtest_publish(&F.r);
  cr_assert_eq(pop(), HWSOCK_ENEEDSRESET);
  cr_assert_eq(hwsock__vq_fault_code(F.why),
               HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED);
}

Test(ringtest, a_request_is_header_uri_data_then_the_response_buffer) {
  cr_assert_eq(hwsock_ringtest_init(&F.r, 0, 0, QS), 0);
  device(FEATURES);
  hwsock_req_hdr h;
  memset(&h, 0, sizeof h);
  hwsock_le16_set(&h.opcode, HWSOCK_OP_SEND);
  hwsock_le32_set(&h.uri_len, 9);
  uint64_t resp = 0;
  int head = hwsock_ringtest_add_request(&F.r, &h, "udp://x:1", 9, "abc", 3,
                                         64, &resp);
  cr_assert_geq(head, 0);
  hwsock_ringtest_publish(&F.r);
  cr_assert_eq(pop(), 1);
  cr_assert_eq(F.c.head, head);
  cr_assert_eq(F.c.n_out, 1);
  cr_assert_eq(F.c.n_in, 1);
  cr_assert_eq(F.c.out_len, sizeof h + 9 + 3);
  cr_assert_eq(F.c.in_len, 64);
  const uint8_t *p = F.iov[0].iov_base;
  cr_assert_eq(memcmp(p, &h, sizeof h), 0);
  cr_assert_eq(memcmp(p + sizeof h, "udp://x:1abc", 12), 0);
  cr_assert_eq(F.iov[1].iov_base, hwsock_ringtest_host(&F.r, resp));
  /* no response buffer; data NULL is that many zero bytes */
  head = hwsock_ringtest_add_request(&F.r, &h, NULL, 0, NULL, 4, 0, &resp);
  cr_assert_geq(head, 0);
  cr_assert_eq(resp, 0);
  hwsock_ringtest_publish(&F.r);
  cr_assert_eq(pop(), 1);
  cr_assert_eq(F.c.n_in, 0);
  cr_assert_eq(F.c.out_len, sizeof h + 4);
  cr_assert_eq(memcmp((const uint8_t *)F.iov[0].iov_base + sizeof h,
                      "\0\0\0\0", 4),
               0);
  cr_assert_eq(hwsock_ringtest_add_request(&F.r, &h, NULL, 3, NULL, 0, 0,
                                           NULL),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_ringtest_add_request(&F.r, NULL, NULL, 0, NULL, 0, 0,
                                           NULL),
               HWSOCK_EINVAL);
}
