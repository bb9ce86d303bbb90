/* Guest memory map and the device side of split virtqueues (lib/ring.h).
 *
 * The driver side is test/support/vring_builder: a fake guest memory block
 * (1 MiB at guest physical 0x100000) holding one queue. Good paths first,
 * then adversarial rings: each must end in the exact outcome the contract
 * names (HWSOCK_ENEEDSRESET with a reason, or EINVAL/EFAULT/ENOSPC). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "hwsock/common.h"
#include "ring.h"
#include "support/vring_builder.h"

#define W HWSOCK_VRING_DESC_F_WRITE
#define NEXT HWSOCK_VRING_DESC_F_NEXT
#define INDIRECT HWSOCK_VRING_DESC_F_INDIRECT
#define ALL_F (HWSOCK_F_INDIRECT_DESC | HWSOCK_F_EVENT_IDX)
#define CAP 64u

static struct {
  vrb r;
  hwsock__region regs[8];
  hwsock__memmap m;
  hwsock__vq vq;
  struct iovec iov[CAP];
  hwsock__chain c;
  const char *why;
} F;

static void teardown(void) { vrb_free(&F.r); }

TestSuite(ring, .fini = teardown);
TestSuite(mem);

/* A queue of qsize entries over the whole block, as one region. */
static void setup(unsigned qsize, uint64_t features, unsigned max_segs) {
  cr_assert_eq(vrb_init(&F.r, 0, 0, qsize), 0);
  F.m = (hwsock__memmap){F.regs, 0, 8};
  cr_assert_eq(vrb_add_regions(&F.r, &F.m, 0), 0);
  cr_assert_eq(vrb_vq_init(&F.r, &F.vq, &F.m, features, max_segs), 0);
}

static int pop(void) {
  F.why = NULL;
  return hwsock__vq_pop(&F.vq, &F.c, F.iov, CAP, &F.why);
}

/* Scratch buffer in guest memory filled with a byte pattern. */
static uint64_t buf(size_t len, uint8_t fill) {
  uint64_t g = vrb_alloc(&F.r, len, 16);
  cr_assert_neq(g, 0);
  memset(vrb_host(&F.r, g), fill, len);
  return g;
}

#define assert_broken(word)                                                   \
  do {                                                                        \
    int rc_ = pop();                                                          \
    cr_assert_eq(rc_, HWSOCK_ENEEDSRESET, "pop returned %d", rc_);            \
    cr_assert_not_null(F.why);                                                \
    cr_assert(strstr(F.why, word) != NULL, "why was: %s", F.why);             \
  } while (0)

/* ======================= memory map ===================================== */

Test(mem, add_rejects_size_zero_null_hva_and_wraparound) {
  hwsock__region regs[4];
  hwsock__memmap m = {regs, 0, 4};
  uint8_t host[64];
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 0, host), HWSOCK_EINVAL);
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 64, NULL), HWSOCK_EINVAL);
  cr_assert_eq(hwsock__mem_add(&m, UINT64_MAX - 31, 64, host), HWSOCK_EINVAL);
  cr_assert_eq(m.n, 0);
  /* ending exactly at 2^64 is not a wrap */
  cr_assert_eq(hwsock__mem_add(&m, UINT64_MAX - 63, 64, host), 0);
  cr_assert_eq(m.n, 1);
}

Test(mem, add_rejects_every_kind_of_overlap) {
  hwsock__region regs[8];
  hwsock__memmap m = {regs, 0, 8};
  uint8_t host[0x300];
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 0x100, host), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 0x100, host), HWSOCK_EINVAL);
  cr_assert_eq(hwsock__mem_add(&m, 0x10ff, 0x10, host), HWSOCK_EINVAL);
  cr_assert_eq(hwsock__mem_add(&m, 0x0ff0, 0x11, host), HWSOCK_EINVAL);
  cr_assert_eq(hwsock__mem_add(&m, 0x0f00, 0x300, host), HWSOCK_EINVAL);
  cr_assert_eq(hwsock__mem_add(&m, 0x1080, 0x10, host), HWSOCK_EINVAL);
  /* touching on either side is fine */
  cr_assert_eq(hwsock__mem_add(&m, 0x0f00, 0x100, host), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0x1100, 0x100, host), 0);
  cr_assert_eq(m.n, 3);
}

Test(mem, add_reports_enospc_when_the_table_is_full) {
  hwsock__region regs[2];
  hwsock__memmap m = {regs, 0, 2};
  uint8_t host[16];
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 16, host), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0x2000, 16, host), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0x3000, 16, host), HWSOCK_ENOSPC);
  cr_assert_eq(m.n, 2);
}

Test(mem, ptr_requires_the_whole_range_in_one_region) {
  hwsock__region regs[2];
  hwsock__memmap m = {regs, 0, 2};
  uint8_t a[0x100], b[0x100];
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 0x100, a), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0x1100, 0x100, b), 0);
  cr_assert_eq(hwsock__mem_ptr(&m, 0x1010, 0x10), a + 0x10);
  cr_assert_eq(hwsock__mem_ptr(&m, 0x1100, 0x100), b);
  cr_assert_eq(hwsock__mem_ptr(&m, 0x1000, 0x100), a);
  cr_assert_null(hwsock__mem_ptr(&m, 0x10f0, 0x20)); /* straddles a|b */
  cr_assert_null(hwsock__mem_ptr(&m, 0x1100, 0x101)); /* runs off b */
  cr_assert_null(hwsock__mem_ptr(&m, 0x0fff, 1));
  cr_assert_null(hwsock__mem_ptr(&m, 0x1010, UINT64_MAX));
  /* len 0 checks the address itself */
  cr_assert_eq(hwsock__mem_ptr(&m, 0x11ff, 0), b + 0xff);
  cr_assert_null(hwsock__mem_ptr(&m, 0x1200, 0));
}

Test(mem, map_splits_a_buffer_across_contiguous_regions) {
  hwsock__region regs[2];
  hwsock__memmap m = {regs, 0, 2};
  uint8_t a[0x100], b[0x100]; /* separate host buffers */
  cr_assert_eq(hwsock__mem_add(&m, 0x1100, 0x100, b), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 0x100, a), 0);
  struct iovec iov[4];
  unsigned n = 1; /* appends after what is there */
  cr_assert_eq(hwsock__mem_map(&m, 0x10f0, 0x20, iov, 4, &n), 0);
  cr_assert_eq(n, 3);
  cr_assert_eq(iov[1].iov_base, a + 0xf0);
  cr_assert_eq(iov[1].iov_len, 0x10);
  cr_assert_eq(iov[2].iov_base, b);
  cr_assert_eq(iov[2].iov_len, 0x10);
}

Test(mem, map_of_length_zero_appends_nothing) {
  hwsock__region regs[1];
  hwsock__memmap m = {regs, 0, 1};
  uint8_t a[16];
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 16, a), 0);
  struct iovec iov[1];
  unsigned n = 0;
  cr_assert_eq(hwsock__mem_map(&m, 0x1000, 0, iov, 1, &n), 0);
  cr_assert_eq(n, 0);
}

Test(mem, map_faults_on_a_hole_and_leaves_the_count_alone) {
  hwsock__region regs[2];
  hwsock__memmap m = {regs, 0, 2};
  uint8_t a[0x100], b[0x100];
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 0x100, a), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0x1200, 0x100, b), 0); /* hole between */
  struct iovec iov[4];
  unsigned n = 0;
  cr_assert_eq(hwsock__mem_map(&m, 0x10f0, 0x20, iov, 4, &n), HWSOCK_EFAULT);
  cr_assert_eq(n, 0);
  cr_assert_eq(hwsock__mem_map(&m, 0x1300, 1, iov, 4, &n), HWSOCK_EFAULT);
  cr_assert_eq(hwsock__mem_map(&m, 0x11ff, 2, iov, 4, &n), HWSOCK_EFAULT);
  cr_assert_eq(n, 0);
}

Test(mem, map_faults_when_gpa_plus_len_wraps_even_if_both_ends_are_mapped) {
  /* regions at the top and the bottom of the address space are
   * "contiguous" modulo 2^64: a buffer must not wrap from one into the
   * other */
  hwsock__region regs[2];
  hwsock__memmap m = {regs, 0, 2};
  uint8_t top[0x100], bottom[0x100];
  cr_assert_eq(hwsock__mem_add(&m, UINT64_MAX - 0xff, 0x100, top), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0, 0x100, bottom), 0);
  struct iovec iov[4];
  unsigned n = 0;
  cr_assert_eq(hwsock__mem_map(&m, UINT64_MAX - 7, 16, iov, 4, &n),
               HWSOCK_EFAULT);
  cr_assert_eq(n, 0);
  /* the last byte of the address space itself is fine */
  cr_assert_eq(hwsock__mem_map(&m, UINT64_MAX - 7, 8, iov, 4, &n), 0);
  cr_assert_eq(n, 1);
  cr_assert_eq(iov[0].iov_base, top + 0xf8);
  cr_assert_eq(iov[0].iov_len, 8);
  cr_assert_eq(hwsock__mem_map(&m, 1, UINT64_MAX, iov, 4, &n), HWSOCK_EFAULT);
}

Test(mem, map_reports_enobufs_when_cap_is_too_small) {
  hwsock__region regs[2];
  hwsock__memmap m = {regs, 0, 2};
  uint8_t a[0x100], b[0x100];
  cr_assert_eq(hwsock__mem_add(&m, 0x1000, 0x100, a), 0);
  cr_assert_eq(hwsock__mem_add(&m, 0x1100, 0x100, b), 0);
  struct iovec iov[2];
  unsigned n = 1;
  cr_assert_eq(hwsock__mem_map(&m, 0x10f0, 0x20, iov, 2, &n), HWSOCK_ENOBUFS);
  cr_assert_eq(n, 1);
}

/* ======================= queue setup ==================================== */

Test(ring, init_rejects_sizes_that_are_not_a_power_of_two_in_range) {
  cr_assert_eq(vrb_init(&F.r, 0, 0, 256), 0);
  F.m = (hwsock__memmap){F.regs, 0, 8};
  cr_assert_eq(vrb_add_regions(&F.r, &F.m, 0), 0);
  const unsigned bad[] = {0, 3, 6, 100, 255, 65536, 32769};
  for (unsigned k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    int rc = hwsock__vq_init(&F.vq, &F.m, bad[k], F.r.desc_gpa,
                             F.r.avail_gpa, F.r.used_gpa, 0, 8);
    cr_assert_eq(rc, HWSOCK_EINVAL, "size %u gave %d", bad[k], rc);
    cr_assert_eq(F.vq.size, 0);
  }
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 1, F.r.desc_gpa, F.r.avail_gpa,
                               F.r.used_gpa, 0, 8),
               0);
  cr_assert_eq(F.vq.size, 1);
}

Test(ring, init_rejects_misaligned_parts) {
  cr_assert_eq(vrb_init(&F.r, 0, 0, 16), 0);
  F.m = (hwsock__memmap){F.regs, 0, 8};
  cr_assert_eq(vrb_add_regions(&F.r, &F.m, 0), 0);
  uint64_t d = F.r.desc_gpa, a = F.r.avail_gpa, u = F.r.used_gpa;
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 16, d + 8, a, u, 0, 8),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 16, d, a + 1, u, 0, 8),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 16, d, a, u + 2, 0, 8),
               HWSOCK_EINVAL);
  cr_assert_eq(F.vq.size, 0);
}

Test(ring, init_rejects_parts_outside_or_across_regions) {
  cr_assert_eq(vrb_init(&F.r, 0, 0, 16), 0);
  F.m = (hwsock__memmap){F.regs, 0, 8};
  /* two regions, contiguous in guest memory, split inside the desc table */
  cr_assert_eq(vrb_add_regions(&F.r, &F.m, 64), 0);
  uint64_t d = F.r.desc_gpa, a = F.r.avail_gpa, u = F.r.used_gpa;
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 16, d, a, u, 0, 8), HWSOCK_EFAULT);
  uint64_t end = F.r.gpa + F.r.size;
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 16, end, a, u, 0, 8),
               HWSOCK_EFAULT);
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 16, 0x1000, a, u, 0, 8),
               HWSOCK_EFAULT);
  /* the used ring (6 + 8*16 = 134 bytes) must fit before the end */
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 16, d + 64, a, end - 132, 0, 8),
               HWSOCK_EFAULT);
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 16, d + 64, end - 4, u, 0, 8),
               HWSOCK_EFAULT);
  cr_assert_eq(F.vq.size, 0);
  /* all parts in the second region: fine */
  cr_assert_eq(hwsock__vq_init(&F.vq, &F.m, 2, d + 64, a, u, 0, 8), 0);
}

Test(ring, init_rejects_max_segs_zero) {
  cr_assert_eq(vrb_init(&F.r, 0, 0, 16), 0);
  F.m = (hwsock__memmap){F.regs, 0, 8};
  cr_assert_eq(vrb_add_regions(&F.r, &F.m, 0), 0);
  cr_assert_eq(vrb_vq_init(&F.r, &F.vq, &F.m, 0, 0), HWSOCK_EINVAL);
}

/* ======================= good paths ===================================== */

Test(ring, empty_ring_pops_nothing_and_unpublished_chains_are_invisible) {
  setup(8, 0, 8);
  cr_assert_eq(pop(), 0);
  vrb_seg s = {buf(8, 1), 8, 0};
  cr_assert_eq(vrb_add_chain(&F.r, &s, 1), 0);
  cr_assert_eq(pop(), 0);
  cr_assert_eq(hwsock__vq_pending(&F.vq), 0);
  vrb_publish(&F.r);
  cr_assert_eq(hwsock__vq_pending(&F.vq), 1);
  cr_assert_eq(pop(), 1);
  cr_assert_eq(pop(), 0);
}

Test(ring, pop_returns_readable_then_writable_segments_of_one_chain) {
  setup(8, 0, 8);
  const char hdr[] = "request-header";
  const char uri[] = "tcp://192.0.2.7:80";
  struct iovec out[2] = {{(void *)hdr, sizeof hdr}, {(void *)uri, sizeof uri}};
  uint32_t in_lens[1] = {64};
  uint64_t in_gpa[1];
  int head = vrb_add_rw(&F.r, out, 2, in_lens, 1, in_gpa);
  cr_assert_geq(head, 0);
  vrb_publish(&F.r);

  cr_assert_eq(pop(), 1);
  cr_assert_null(F.why);
  cr_assert_eq(F.c.head, head);
  cr_assert_eq(F.c.n_out, 2);
  cr_assert_eq(F.c.n_in, 1);
  cr_assert_eq(F.c.out_len, sizeof hdr + sizeof uri);
  cr_assert_eq(F.c.in_len, 64);
  cr_assert_eq(F.iov[0].iov_len, sizeof hdr);
  cr_assert_str_eq(F.iov[0].iov_base, hdr);
  cr_assert_str_eq(F.iov[1].iov_base, uri);
  cr_assert_eq(F.iov[2].iov_base, vrb_host(&F.r, in_gpa[0]));
  cr_assert_eq(F.iov[2].iov_len, 64);
  cr_assert_eq(F.vq.last_avail, 1);
}

Test(ring, chains_pop_in_avail_order_and_complete_out_of_order) {
  setup(8, 0, 8);
  int heads[3];
  for (int k = 0; k < 3; k++) {
    vrb_seg s[2] = {{buf(16, (uint8_t)k), 16, 0}, {buf(32, 0), 32, W}};
    heads[k] = vrb_add_chain(&F.r, s, 2);
    cr_assert_geq(heads[k], 0);
  }
  vrb_publish(&F.r);
  for (int k = 0; k < 3; k++) {
    cr_assert_eq(pop(), 1);
    cr_assert_eq(F.c.head, heads[k]);
    cr_assert_eq(((uint8_t *)F.iov[0].iov_base)[0], k);
  }
  cr_assert_eq(pop(), 0);

  hwsock__vq_push(&F.vq, (uint16_t)heads[2], 7);
  hwsock__vq_push(&F.vq, (uint16_t)heads[0], 0);
  hwsock__vq_push(&F.vq, (uint16_t)heads[1], 32);
  cr_assert_eq(vrb_used_idx(&F.r), 3);
  const uint32_t want_id[3] = {(uint32_t)heads[2], (uint32_t)heads[0],
                               (uint32_t)heads[1]};
  const uint32_t want_len[3] = {7, 0, 32};
  for (int k = 0; k < 3; k++) {
    uint32_t id, len;
    cr_assert_eq(vrb_get_used(&F.r, &id, &len), 1);
    cr_assert_eq(id, want_id[k]);
    cr_assert_eq(len, want_len[k]);
  }
  uint32_t id, len;
  cr_assert_eq(vrb_get_used(&F.r, &id, &len), 0);
}

Test(ring, indirect_chain_is_walked_through_its_table) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  uint64_t a = buf(32, 0xaa), b = buf(8, 0xbb), w = buf(100, 0);
  vrb_seg s[3] = {{a, 32, 0}, {b, 8, 0}, {w, 100, W}};
  int head = vrb_add_indirect(&F.r, s, 3);
  cr_assert_geq(head, 0);
  vrb_publish(&F.r);
  cr_assert_eq(pop(), 1, "why: %s", F.why);
  cr_assert_eq(F.c.head, head);
  cr_assert_eq(F.c.n_out, 2);
  cr_assert_eq(F.c.n_in, 1);
  cr_assert_eq(F.c.out_len, 40);
  cr_assert_eq(F.c.in_len, 100);
  cr_assert_eq(F.iov[0].iov_base, vrb_host(&F.r, a));
  cr_assert_eq(F.iov[1].iov_base, vrb_host(&F.r, b));
  cr_assert_eq(F.iov[2].iov_base, vrb_host(&F.r, w));
}

Test(ring, direct_descriptors_may_precede_an_indirect_one_that_ends_the_chain) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  uint64_t hdr = buf(32, 1), w = buf(64, 0);
  uint64_t table = vrb_alloc(&F.r, 16, 16);
  vrb_write_desc(&F.r, table, w, 64, W, 0);
  vrb_set_desc(&F.r, 0, hdr, 32, NEXT, 1);
  vrb_set_desc(&F.r, 1, table, 16, INDIRECT, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  cr_assert_eq(pop(), 1, "why: %s", F.why);
  cr_assert_eq(F.c.n_out, 1);
  cr_assert_eq(F.c.n_in, 1);
  cr_assert_eq(F.iov[1].iov_base, vrb_host(&F.r, w));
}

Test(ring, zero_length_descriptors_are_accepted_and_add_no_iovec) {
  setup(8, 0, 8);
  vrb_seg s[4] = {{buf(5, 1), 5, 0},
                  {buf(1, 0), 0, 0},
                  {buf(1, 0), 0, W},
                  {buf(16, 0), 16, W}};
  cr_assert_geq(vrb_add_chain(&F.r, s, 4), 0);
  vrb_publish(&F.r);
  cr_assert_eq(pop(), 1, "why: %s", F.why);
  cr_assert_eq(F.c.n_out, 1);
  cr_assert_eq(F.c.n_in, 1);
  cr_assert_eq(F.c.out_len, 5);
  cr_assert_eq(F.c.in_len, 16);
  cr_assert_eq(F.iov[1].iov_base, vrb_host(&F.r, s[3].gpa));
}

Test(ring, buffer_straddling_two_contiguous_regions_becomes_two_iovecs) {
  cr_assert_eq(vrb_init(&F.r, 0, 0, 8), 0);
  F.m = (hwsock__memmap){F.regs, 0, 8};
  size_t split = 0x8000;
  cr_assert_eq(vrb_add_regions(&F.r, &F.m, split), 0);
  cr_assert_eq(F.m.n, 2);
  cr_assert_eq(vrb_vq_init(&F.r, &F.vq, &F.m, 0, 8), 0);
  uint64_t at = F.r.gpa + split - 10;
  vrb_seg s[2] = {{at, 30, 0}, {buf(8, 0), 8, W}};
  cr_assert_geq(vrb_add_chain(&F.r, s, 2), 0);
  vrb_publish(&F.r);
  cr_assert_eq(pop(), 1, "why: %s", F.why);
  cr_assert_eq(F.c.n_out, 2);
  cr_assert_eq(F.c.out_len, 30);
  cr_assert_eq(F.iov[0].iov_base, F.r.mem + split - 10);
  cr_assert_eq(F.iov[0].iov_len, 10);
  cr_assert_eq(F.iov[1].iov_base, F.r.mem + split);
  cr_assert_eq(F.iov[1].iov_len, 20);
  cr_assert_eq(F.c.n_in, 1);
}

Test(ring, chain_of_exactly_queue_size_descriptors_is_accepted) {
  setup(4, 0, 8);
  vrb_seg s[4];
  for (int k = 0; k < 4; k++)
    s[k] = (vrb_seg){buf(4, 0), 4, k < 2 ? 0 : W};
  cr_assert_geq(vrb_add_chain(&F.r, s, 4), 0);
  vrb_publish(&F.r);
  cr_assert_eq(pop(), 1, "why: %s", F.why);
  cr_assert_eq(F.c.n_out + F.c.n_in, 4);
}

Test(ring, a_single_buffer_of_uint32_max_bytes_is_accepted) {
  /* a 4 GiB reservation that is never touched: pop only maps addresses */
  size_t big = (size_t)1 << 32;
  void *res = mmap(NULL, big, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  cr_assert_neq(res, MAP_FAILED);
  setup(4, 0, 8);
  cr_assert_eq(hwsock__mem_add(&F.m, 1ull << 36, big, res), 0);
  vrb_seg s = {1ull << 36, UINT32_MAX, W};
  cr_assert_geq(vrb_add_chain(&F.r, &s, 1), 0);
  vrb_publish(&F.r);
  int rc = pop();
  munmap(res, big);
  cr_assert_eq(rc, 1, "why: %s", F.why);
  cr_assert_eq(F.c.in_len, UINT32_MAX);
}

Test(ring, pending_counts_available_entries_not_yet_popped) {
  setup(8, 0, 8);
  vrb_seg s = {buf(4, 0), 4, 0};
  for (int k = 0; k < 3; k++)
    vrb_add_chain(&F.r, &s, 1);
  vrb_publish(&F.r);
  cr_assert_eq(hwsock__vq_pending(&F.vq), 3);
  cr_assert_eq(pop(), 1);
  cr_assert_eq(hwsock__vq_pending(&F.vq), 2);
}

Test(ring, indices_wrap_around_after_65536_requests) {
  setup(4, HWSOCK_F_EVENT_IDX, 4);
  vrb_seg s[2] = {{buf(16, 3), 16, 0}, {buf(16, 0), 16, W}};
  const unsigned total = 70000;
  for (unsigned k = 0; k < total; k++) {
    int head = vrb_add_chain(&F.r, s, 2);
    cr_assert_geq(head, 0);
    vrb_publish(&F.r);
    cr_assert_eq(hwsock__vq_pending(&F.vq), 1);
    int rc = pop();
    cr_assert_eq(rc, 1, "request %u: rc %d why %s", k, rc, F.why);
    cr_assert_eq(F.c.head, head);
    hwsock__vq_push(&F.vq, F.c.head, k);
    uint32_t id, len;
    cr_assert_eq(vrb_get_used(&F.r, &id, &len), 1);
    cr_assert_eq(id, (uint32_t)head);
    cr_assert_eq(len, k);
  }
  cr_assert_eq(F.vq.last_avail, (uint16_t)total);
  cr_assert_eq(F.vq.used_idx, (uint16_t)total);
  cr_assert_eq(vrb_used_idx(&F.r), (uint16_t)total);
  cr_assert_eq(pop(), 0);
}

/* ======================= notifications ================================== */

/* Publishes and pops n one-descriptor chains, returning their heads. */
static void pop_n(unsigned n, uint16_t *heads) {
  vrb_seg s = {buf(4, 0), 4, W};
  for (unsigned k = 0; k < n; k++)
    cr_assert_geq(vrb_add_chain(&F.r, &s, 1), 0);
  vrb_publish(&F.r);
  for (unsigned k = 0; k < n; k++) {
    cr_assert_eq(pop(), 1);
    heads[k] = F.c.head;
  }
}

Test(ring, should_notify_honours_used_event_with_event_idx) {
  setup(8, HWSOCK_F_EVENT_IDX, 8);
  uint16_t h[6];
  pop_n(6, h);
  vrb_set_used_event(&F.r, 0); /* interrupt once used idx passes 0 */
  hwsock__vq_push(&F.vq, h[0], 0);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 1);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 0, "nothing new was used");

  vrb_set_used_event(&F.r, 3); /* the guest wants entry 3 (idx 3 -> 4) */
  hwsock__vq_push(&F.vq, h[1], 0); /* idx 2 */
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 0);
  hwsock__vq_push(&F.vq, h[2], 0); /* idx 3 */
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 0);
  hwsock__vq_push(&F.vq, h[3], 0); /* idx 4: passes used_event */
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 1);
  hwsock__vq_push(&F.vq, h[4], 0); /* idx 5: already signalled past it */
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 0);
}

Test(ring, should_notify_sees_used_event_passed_within_a_batch) {
  setup(8, HWSOCK_F_EVENT_IDX, 8);
  uint16_t h[7];
  pop_n(7, h);
  vrb_set_used_event(&F.r, 0);
  hwsock__vq_push(&F.vq, h[0], 0);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 1); /* idx 1 */
  vrb_set_used_event(&F.r, 2); /* entry 2 is inside the next batch */
  for (int k = 1; k < 4; k++)
    hwsock__vq_push(&F.vq, h[k], 0);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 1); /* idx 1 -> 4 */
  vrb_set_used_event(&F.r, 10); /* beyond the next batch */
  for (int k = 4; k < 7; k++)
    hwsock__vq_push(&F.vq, h[k], 0);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 0); /* idx 4 -> 7 */
}

Test(ring, no_interrupt_flag_suppresses_notification_without_event_idx) {
  setup(8, 0, 8);
  uint16_t h[2];
  pop_n(2, h);
  vrb_set_no_interrupt(&F.r, 1);
  hwsock__vq_push(&F.vq, h[0], 0);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 0);
  vrb_set_no_interrupt(&F.r, 0);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 1);
  hwsock__vq_push(&F.vq, h[1], 0);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 1);
}

Test(ring, no_interrupt_flag_is_ignored_with_event_idx) {
  setup(8, HWSOCK_F_EVENT_IDX, 8);
  uint16_t h[1];
  pop_n(1, h);
  vrb_set_no_interrupt(&F.r, 1);
  vrb_set_used_event(&F.r, 0);
  hwsock__vq_push(&F.vq, h[0], 0);
  cr_assert_eq(hwsock__vq_should_notify(&F.vq), 1);
}

Test(ring, enable_kicks_publishes_avail_event_and_reports_late_arrivals) {
  setup(8, HWSOCK_F_EVENT_IDX, 8);
  uint16_t h[2];
  pop_n(2, h);
  cr_assert_eq(hwsock__vq_enable_kicks(&F.vq), 0);
  cr_assert_eq(vrb_avail_event(&F.r), 2);
  /* a request arrives between the last pop and enable_kicks */
  vrb_seg s = {buf(4, 0), 4, 0};
  vrb_add_chain(&F.r, &s, 1);
  vrb_publish(&F.r);
  cr_assert_eq(hwsock__vq_enable_kicks(&F.vq), 1);
  cr_assert_eq(vrb_avail_event(&F.r), 2);
  cr_assert_eq(pop(), 1);
  cr_assert_eq(hwsock__vq_enable_kicks(&F.vq), 0);
  cr_assert_eq(vrb_avail_event(&F.r), 3);
}

Test(ring, enable_kicks_clears_no_notify_without_event_idx) {
  setup(8, 0, 8);
  vrb_set_used_flags(&F.r, HWSOCK_VRING_USED_F_NO_NOTIFY);
  cr_assert_eq(hwsock__vq_enable_kicks(&F.vq), 0);
  cr_assert_eq(vrb_used_flags(&F.r) & HWSOCK_VRING_USED_F_NO_NOTIFY, 0);
  vrb_seg s = {buf(4, 0), 4, 0};
  vrb_add_chain(&F.r, &s, 1);
  vrb_publish(&F.r);
  cr_assert_eq(hwsock__vq_enable_kicks(&F.vq), 1);
}

/* ======================= adversarial rings ============================== */

Test(ring, two_descriptor_loop_needs_reset) {
  setup(8, 0, 64);
  uint64_t b = buf(8, 0);
  vrb_set_desc(&F.r, 2, b, 8, NEXT, 5);
  vrb_set_desc(&F.r, 5, b, 8, NEXT, 2);
  vrb_put_head(&F.r, 2);
  vrb_publish(&F.r);
  assert_broken("loops");
}

Test(ring, self_loop_needs_reset) {
  setup(8, 0, 64);
  vrb_set_desc(&F.r, 3, buf(8, 0), 8, NEXT, 3);
  vrb_put_head(&F.r, 3);
  vrb_publish(&F.r);
  assert_broken("loops");
}

Test(ring, chain_longer_than_the_queue_needs_reset) {
  /* every descriptor once, then back to the first: size + 1 descriptors */
  setup(4, 0, 64);
  uint64_t b = buf(8, 0);
  for (unsigned i = 0; i < 4; i++)
    vrb_set_desc(&F.r, i, b, 8, NEXT, (uint16_t)((i + 1) % 4));
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("longer than the queue");
}

Test(ring, head_index_out_of_range_needs_reset) {
  setup(8, 0, 8);
  vrb_put_head(&F.r, 8);
  vrb_publish(&F.r);
  assert_broken("head descriptor index out of range");
}

Test(ring, next_index_out_of_range_needs_reset) {
  setup(8, 0, 8);
  vrb_set_desc(&F.r, 0, buf(8, 0), 8, NEXT, 8);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("next descriptor index out of range");
}

Test(ring, length_sum_over_uint32_max_needs_reset) {
  size_t big = (size_t)1 << 32;
  void *res = mmap(NULL, big, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  cr_assert_neq(res, MAP_FAILED);
  setup(4, 0, 8);
  cr_assert_eq(hwsock__mem_add(&F.m, 1ull << 36, big, res), 0);
  vrb_seg s[2] = {{1ull << 36, UINT32_MAX, W}, {1ull << 36, 1, W}};
  vrb_add_chain(&F.r, s, 2);
  vrb_publish(&F.r);
  int rc = pop();
  munmap(res, big);
  cr_assert_eq(rc, HWSOCK_ENEEDSRESET);
  cr_assert(strstr(F.why, "exceeds 32 bits") != NULL, "why: %s", F.why);
}

Test(ring, huge_descriptor_lengths_beyond_small_regions_need_reset) {
  /* 3 x 2 GiB in 1 MiB of memory: refused at the first out-of-range byte */
  setup(8, 0, 8);
  vrb_seg s[3] = {{buf(8, 0), 0x80000000u, 0},
                  {buf(8, 0), 0x80000000u, 0},
                  {buf(8, 0), 0x80000000u, 0}};
  vrb_add_chain(&F.r, s, 3);
  vrb_publish(&F.r);
  assert_broken("outside guest memory");
}

Test(ring, address_outside_every_region_needs_reset) {
  setup(8, 0, 8);
  vrb_seg s = {0x10, 8, 0};
  vrb_add_chain(&F.r, &s, 1);
  vrb_publish(&F.r);
  assert_broken("outside guest memory");
}

Test(ring, buffer_straddling_a_region_and_a_hole_needs_reset) {
  setup(8, 0, 8);
  vrb_seg s = {F.r.gpa + F.r.size - 8, 16, W};
  vrb_add_chain(&F.r, &s, 1);
  vrb_publish(&F.r);
  assert_broken("outside guest memory");
}

Test(ring, buffer_wrapping_around_2_to_the_64_needs_reset) {
  setup(8, 0, 8);
  uint8_t *top = vrb_host(&F.r, buf(0x100, 0));
  uint8_t *bottom = vrb_host(&F.r, buf(0x100, 0));
  cr_assert_eq(hwsock__mem_add(&F.m, UINT64_MAX - 0xff, 0x100, top), 0);
  cr_assert_eq(hwsock__mem_add(&F.m, 0, 0x100, bottom), 0);
  vrb_seg s = {UINT64_MAX - 7, 16, 0};
  vrb_add_chain(&F.r, &s, 1);
  vrb_publish(&F.r);
  assert_broken("wraps around");
}

Test(ring, readable_descriptor_after_a_writable_one_needs_reset) {
  setup(8, 0, 8);
  vrb_seg s[3] = {{buf(8, 0), 8, 0}, {buf(8, 0), 8, W}, {buf(8, 0), 8, 0}};
  vrb_add_chain(&F.r, s, 3);
  vrb_publish(&F.r);
  assert_broken("device-readable descriptor after a device-writable one");
}

Test(ring, readable_after_writable_inside_an_indirect_table_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  vrb_seg s[2] = {{buf(8, 0), 8, W}, {buf(8, 0), 8, 0}};
  vrb_add_indirect(&F.r, s, 2);
  vrb_publish(&F.r);
  assert_broken("device-readable descriptor after a device-writable one");
}

Test(ring, nested_indirect_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  uint64_t inner = vrb_alloc(&F.r, 16, 16);
  vrb_write_desc(&F.r, inner, buf(8, 0), 8, 0, 0);
  vrb_seg s[1] = {{inner, 16, INDIRECT}};
  vrb_add_indirect(&F.r, s, 1);
  vrb_publish(&F.r);
  assert_broken("nested indirect");
}

Test(ring, indirect_without_the_negotiated_feature_needs_reset) {
  setup(8, HWSOCK_F_EVENT_IDX, 8);
  vrb_seg s[1] = {{buf(8, 0), 8, 0}};
  vrb_add_indirect(&F.r, s, 1);
  vrb_publish(&F.r);
  assert_broken("INDIRECT_DESC not negotiated");
}

Test(ring, indirect_together_with_next_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  uint64_t table = vrb_alloc(&F.r, 16, 16);
  vrb_write_desc(&F.r, table, buf(8, 0), 8, 0, 0);
  vrb_set_desc(&F.r, 0, table, 16, INDIRECT | NEXT, 1);
  vrb_set_desc(&F.r, 1, buf(8, 0), 8, W, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("indirect descriptor with NEXT");
}

Test(ring, indirect_table_length_not_a_multiple_of_16_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  uint64_t table = vrb_alloc(&F.r, 32, 16);
  vrb_write_desc(&F.r, table, buf(8, 0), 8, 0, 0);
  vrb_set_desc(&F.r, 0, table, 24, INDIRECT, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("not a multiple of 16");
}

Test(ring, indirect_table_of_length_zero_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  vrb_set_desc(&F.r, 0, vrb_alloc(&F.r, 16, 16), 0, INDIRECT, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("length is 0");
}

Test(ring, indirect_table_larger_than_max_segs_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 4);
  vrb_seg s[5];
  for (int k = 0; k < 5; k++)
    s[k] = (vrb_seg){buf(8, 0), 8, 0};
  vrb_add_indirect(&F.r, s, 5);
  vrb_publish(&F.r);
  assert_broken("indirect table has more entries than max_segs");
}

Test(ring, indirect_table_outside_the_regions_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  vrb_set_desc(&F.r, 0, 0x2000, 32, INDIRECT, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("indirect table not inside one guest memory region");
}

Test(ring, indirect_table_running_off_its_region_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  vrb_set_desc(&F.r, 0, F.r.gpa + F.r.size - 16, 32, INDIRECT, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("indirect table not inside one guest memory region");
}

Test(ring, loop_inside_an_indirect_table_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  uint64_t table = vrb_alloc(&F.r, 32, 16), b = buf(8, 0);
  vrb_write_desc(&F.r, table, b, 8, NEXT, 1);
  vrb_write_desc(&F.r, table + 16, b, 8, NEXT, 0);
  vrb_set_desc(&F.r, 0, table, 32, INDIRECT, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("indirect chain loops");
}

Test(ring, next_index_beyond_the_indirect_table_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 8);
  uint64_t table = vrb_alloc(&F.r, 32, 16), b = buf(8, 0);
  vrb_write_desc(&F.r, table, b, 8, NEXT, 2); /* table has entries 0, 1 */
  vrb_write_desc(&F.r, table + 16, b, 8, 0, 0);
  vrb_set_desc(&F.r, 0, table, 32, INDIRECT, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("indirect next index out of range");
}

Test(ring, avail_idx_more_than_queue_size_ahead_needs_reset) {
  setup(8, 0, 8);
  vrb_set_avail_idx(&F.r, 9);
  assert_broken("avail idx moved more than the queue size ahead");
  cr_assert_eq(hwsock__vq_pending(&F.vq), 0);
  /* a request arriving meanwhile still makes enable_kicks say "pop again" */
  cr_assert_eq(hwsock__vq_enable_kicks(&F.vq), 1);
}

Test(ring, avail_idx_exactly_queue_size_ahead_is_fine) {
  setup(8, 0, 8);
  vrb_seg s = {buf(8, 0), 8, 0};
  for (int k = 0; k < 8; k++)
    cr_assert_geq(vrb_add_chain(&F.r, &s, 1), 0);
  vrb_publish(&F.r);
  cr_assert_eq(hwsock__vq_pending(&F.vq), 8);
  for (int k = 0; k < 8; k++)
    cr_assert_eq(pop(), 1);
  cr_assert_eq(pop(), 0);
}

Test(ring, chain_with_more_descriptors_than_max_segs_needs_reset) {
  setup(8, 0, 2);
  vrb_seg s[3] = {{buf(8, 0), 8, 0}, {buf(8, 0), 8, 0}, {buf(8, 0), 8, W}};
  vrb_add_chain(&F.r, s, 3);
  vrb_publish(&F.r);
  assert_broken("more descriptors than max_segs");
}

Test(ring, direct_plus_indirect_descriptors_over_max_segs_needs_reset) {
  setup(8, HWSOCK_F_INDIRECT_DESC, 3);
  uint64_t b = buf(8, 0);
  uint64_t table = vrb_alloc(&F.r, 48, 16);
  vrb_write_desc(&F.r, table, b, 8, NEXT | W, 1);
  vrb_write_desc(&F.r, table + 16, b, 8, NEXT | W, 2);
  vrb_write_desc(&F.r, table + 32, b, 8, W, 0);
  vrb_set_desc(&F.r, 0, b, 8, NEXT, 1);
  vrb_set_desc(&F.r, 1, table, 48, INDIRECT, 0);
  vrb_put_head(&F.r, 0);
  vrb_publish(&F.r);
  assert_broken("more descriptors than max_segs");
}

Test(ring, chain_needing_more_iovecs_than_cap_needs_reset) {
  cr_assert_eq(vrb_init(&F.r, 0, 0, 8), 0);
  F.m = (hwsock__memmap){F.regs, 0, 8};
  cr_assert_eq(vrb_add_regions(&F.r, &F.m, 0x8000), 0);
  cr_assert_eq(vrb_vq_init(&F.r, &F.vq, &F.m, 0, 8), 0);
  vrb_seg s = {F.r.gpa + 0x8000 - 4, 8, 0}; /* straddles: 2 iovecs */
  vrb_add_chain(&F.r, &s, 1);
  vrb_publish(&F.r);
  int rc = hwsock__vq_pop(&F.vq, &F.c, F.iov, 1, &F.why);
  cr_assert_eq(rc, HWSOCK_ENEEDSRESET);
  cr_assert(strstr(F.why, "iovecs") != NULL, "why: %s", F.why);
  /* with room for both it is a good chain */
  cr_assert_eq(hwsock__vq_pop(&F.vq, &F.c, F.iov, 2, &F.why), 1);
}

Test(ring, broken_pop_does_not_consume_the_entry_and_stays_broken) {
  setup(8, 0, 8);
  vrb_seg s = {buf(8, 0), 8, 0};
  vrb_add_chain(&F.r, &s, 1);
  vrb_put_head(&F.r, 200);
  vrb_publish(&F.r);
  cr_assert_eq(pop(), 1);
  assert_broken("head descriptor index out of range");
  cr_assert_eq(F.vq.last_avail, 1);
  assert_broken("head descriptor index out of range");
  cr_assert_eq(F.vq.last_avail, 1);
}
