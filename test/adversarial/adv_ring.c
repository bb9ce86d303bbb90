/* Broken rings (PROTOCOL.md §2.8): each case writes one fault by hand and
 * expects NEEDS_RESET with exactly that fault's code, nothing written to
 * the used ring, and (after) a RESET that brings the device back. */
#include <string.h>

#include "adversarial/adv.h"

#define QS 16u
#define F HWSOCK_VRING_DESC_F_NEXT
#define W HWSOCK_VRING_DESC_F_WRITE
#define IND HWSOCK_VRING_DESC_F_INDIRECT

/* A valid request buffer (GETNAME of a socket never opened) and a response
 * buffer, both in queue 0's scratch memory. */
static uint64_t req_buf(adv *a) {
  uint64_t g = vrb_alloc(&a->q[0], 256, 16);
  hwsock_req_hdr *h = vrb_host(&a->q[0], g);
  hwsock_le16_set(&h->opcode, HWSOCK_OP_GETNAME);
  hwsock_le32_set(&h->sock_id, 7);
  hwsock_le64_set(&h->tag, 0x77);
  return g;
}

static uint64_t mem_end(const adv *a) { return a->gpa + a->size; }

/* Publishes head and expects NEEDS_RESET `code` with the used ring left
 * alone. */
static int expect_fault(adv *a, uint16_t head, int code) {
  vrb *r = &a->q[0];
  uint16_t used0 = vrb_used_idx(r);
  vrb_put_head(r, head);
  adv_go(a, 0);
  int got = adv_wait_reset(a, ADV_WAIT_MS);
  ADV_CHECK(got == code, "NEEDS_RESET code %d, want %d", got, code);
  ADV_CHECK(vrb_used_idx(r) == used0, "used idx %u after a ring fault",
            vrb_used_idx(r));
  /* broken: a well-formed request kicked now is not taken either (the last
   * two descriptors: clear of a used ring placed over the table) */
  uint64_t g = req_buf(a), w = vrb_alloc(r, 64, 16);
  unsigned d = r->qsize - 2;
  vrb_set_desc(r, d, g, 32, F, (uint16_t)(d + 1));
  vrb_set_desc(r, d + 1, w, 64, W, 0);
  vrb_put_head(r, (uint16_t)d);
  adv_go(a, 0);
  ADV_CHECK(adv_used_still(a, 0, used0, 200) == 0,
            "a broken device wrote a completion");
  return 0;
}

static int setup(adv *a) { return adv_setup(a, ADV_FEATURES, QS); }

static int recover(adv *a) {
  if (adv_reset_setup(a, ADV_FEATURES, QS) < 0)
    return -1;
  return adv_healthy(a);
}

static int desc_loop(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint64_t g = req_buf(a);
  vrb_set_desc(&a->q[0], 0, g, 32, F, 1);
  vrb_set_desc(&a->q[0], 1, g, 0, F, 0);
  return expect_fault(a, 0, HWSOCK_RESET_CHAIN_LOOP);
}

static int desc_self_loop(adv *a) {
  if (setup(a) < 0)
    return -1;
  vrb_set_desc(&a->q[0], 3, req_buf(a), 32, F, 3);
  return expect_fault(a, 3, HWSOCK_RESET_CHAIN_LOOP);
}

/* Every descriptor of the table in one chain that comes back to its head:
 * longer than the queue. */
static int chain_longer_than_queue(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint64_t g = req_buf(a);
  for (unsigned i = 0; i < QS; i++)
    vrb_set_desc(&a->q[0], i, g, 1, F, (uint16_t)((i + 1) % QS));
  return expect_fault(a, 5, HWSOCK_RESET_CHAIN_LOOP);
}

/* 65 distinct descriptors: more than max_chain_segs (64) in a queue of 128. */
static int chain_over_max_segs(adv *a) {
  if (adv_setup(a, ADV_FEATURES, 128) < 0)
    return -1;
  unsigned segs = hwsock_le32_get(&a->cfg.max_chain_segs);
  ADV_CHECK(segs < 127, "max_chain_segs %u leaves no room for the case", segs);
  uint64_t g = req_buf(a);
  for (unsigned i = 0; i <= segs; i++)
    vrb_set_desc(&a->q[0], i, g, 1, i < segs ? F : 0, (uint16_t)(i + 1));
  return expect_fault(a, 0, HWSOCK_RESET_CHAIN_SEGS);
}

static int recover128(adv *a) {
  if (adv_reset_setup(a, ADV_FEATURES, 128) < 0)
    return -1;
  return adv_healthy(a);
}

/* 8 MiB that exist, then 0xffffffff: the sum passes 2^32. */
static int len_sum_overflow(adv *a) {
  if (setup(a) < 0)
    return -1;
  vrb_set_desc(&a->q[0], 0, a->gpa, 8u << 20, F, 1);
  vrb_set_desc(&a->q[0], 1, a->gpa, 0xffffffffu, 0, 0);
  return expect_fault(a, 0, HWSOCK_RESET_CHAIN_LEN);
}

static int one_desc_fault(adv *a, uint64_t addr, uint32_t len, int code) {
  if (setup(a) < 0)
    return -1;
  vrb_set_desc(&a->q[0], 2, addr, len, 0, 0);
  return expect_fault(a, 2, code);
}

static int addr_below_memory(adv *a) {
  return one_desc_fault(a, a->gpa - 4096, 32, HWSOCK_RESET_BUFFER);
}
static int addr_beyond_memory(adv *a) {
  return one_desc_fault(a, mem_end(a), 32, HWSOCK_RESET_BUFFER);
}
static int addr_straddles_end(adv *a) {
  return one_desc_fault(a, mem_end(a) - 16, 32, HWSOCK_RESET_BUFFER);
}
static int addr_wraps(adv *a) {
  return one_desc_fault(a, UINT64_MAX - 15, 32, HWSOCK_RESET_BUFFER);
}

static int writable_before_readable(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint64_t g = req_buf(a), w = vrb_alloc(&a->q[0], 64, 16);
  vrb_set_desc(&a->q[0], 0, w, 64, W | F, 1);
  vrb_set_desc(&a->q[0], 1, g, 32, 0, 0);
  return expect_fault(a, 0, HWSOCK_RESET_READ_AFTER_WRITE);
}

/* An indirect table of n entries in scratch; its gpa. */
static uint64_t table(adv *a, unsigned n) {
  return vrb_alloc(&a->q[0], 16 * (size_t)n, 16);
}

static int indirect_fault(adv *a, uint64_t t, uint32_t len, uint16_t flags,
                          int code) {
  vrb_set_desc(&a->q[0], 4, t, len, IND | flags, 5);
  return expect_fault(a, 4, code);
}

static int indirect_loop(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint64_t g = req_buf(a), t = table(a, 2);
  vrb_write_desc(&a->q[0], t, g, 32, F, 1);
  vrb_write_desc(&a->q[0], t + 16, g, 0, F, 0);
  return indirect_fault(a, t, 32, 0, HWSOCK_RESET_INDIRECT_LOOP);
}

static int indirect_nested(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint64_t g = req_buf(a), t = table(a, 2), inner = table(a, 1);
  vrb_write_desc(&a->q[0], inner, g, 32, 0, 0);
  vrb_write_desc(&a->q[0], t, inner, 16, IND, 0);
  return indirect_fault(a, t, 32, 0, HWSOCK_RESET_INDIRECT_NESTED);
}

static int indirect_zero_len(adv *a) {
  if (setup(a) < 0)
    return -1;
  return indirect_fault(a, table(a, 1), 0, 0, HWSOCK_RESET_INDIRECT_LEN);
}

static int indirect_len_not_multiple(adv *a) {
  if (setup(a) < 0)
    return -1;
  return indirect_fault(a, table(a, 2), 24, 0, HWSOCK_RESET_INDIRECT_LEN);
}

static int indirect_oversized(adv *a) {
  if (setup(a) < 0)
    return -1;
  unsigned n = hwsock_le32_get(&a->cfg.max_chain_segs) + 1;
  return indirect_fault(a, table(a, n), 16 * n, 0,
                        HWSOCK_RESET_INDIRECT_ENTRIES);
}

static int indirect_with_next(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint64_t t = table(a, 1);
  vrb_write_desc(&a->q[0], t, req_buf(a), 32, 0, 0);
  return indirect_fault(a, t, 16, F, HWSOCK_RESET_INDIRECT_WITH_NEXT);
}

static int indirect_not_negotiated(adv *a) {
  if (adv_setup(a, ADV_FEATURES & ~HWSOCK_F_INDIRECT_DESC, QS) < 0)
    return -1;
  uint64_t t = table(a, 1);
  vrb_write_desc(&a->q[0], t, req_buf(a), 32, 0, 0);
  return indirect_fault(a, t, 16, 0, HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED);
}

static int indirect_straddles_end(adv *a) {
  if (setup(a) < 0)
    return -1;
  return indirect_fault(a, mem_end(a) - 16, 32, 0,
                        HWSOCK_RESET_INDIRECT_REGION);
}

static int indirect_next_out_of_range(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint64_t t = table(a, 2);
  vrb_write_desc(&a->q[0], t, req_buf(a), 32, F, 5);
  return indirect_fault(a, t, 32, 0, HWSOCK_RESET_INDIRECT_NEXT_INDEX);
}

static int avail_idx_ahead(adv *a) {
  if (setup(a) < 0)
    return -1;
  vrb_set_avail_idx(&a->q[0], (uint16_t)(QS + 1));
  adv_kick(a, 0);
  int got = adv_wait_reset(a, ADV_WAIT_MS);
  ADV_CHECK(got == HWSOCK_RESET_AVAIL_IDX, "NEEDS_RESET code %d, want %d", got,
            HWSOCK_RESET_AVAIL_IDX);
  ADV_CHECK(vrb_used_idx(&a->q[0]) == 0, "used idx moved");
  return 0;
}

static int head_out_of_range(adv *a) {
  if (setup(a) < 0)
    return -1;
  return expect_fault(a, (uint16_t)QS, HWSOCK_RESET_HEAD_INDEX);
}

static int next_out_of_range(adv *a) {
  if (setup(a) < 0)
    return -1;
  vrb_set_desc(&a->q[0], 1, req_buf(a), 32, F, (uint16_t)QS);
  return expect_fault(a, 1, HWSOCK_RESET_NEXT_INDEX);
}

/* The used ring placed over the descriptor table (QUEUE accepts it: each
 * part is aligned and in memory). The device writes where it was told: the
 * first completion lands in descriptor 0's bytes, a chain that then starts
 * at descriptor 0 names an address the device itself wrote (used idx in
 * bits 16..31, the used id in bits 32..63: far outside memory), which is a
 * ring fault like any other. */
static int used_over_desc(adv *a) {
  ADV_CHECK(adv_msg(a, HWSOCK_LB_FEATURES, ADV_FEATURES, 0, 0, 0, 0) == 0,
            "FEATURES");
  size_t slice = (a->size / a->nq) & ~(size_t)4095;
  for (unsigned q = 0; q < a->nq; q++) {
    vrb *r = &a->q[q];
    ADV_CHECK(vrb_init_at(r, a->mem + q * slice, a->gpa + q * slice, slice,
                          QS) == 0,
              "layout");
    uint64_t used = q == 0 ? r->desc_gpa : r->used_gpa;
    int st = adv_msg(a, HWSOCK_LB_QUEUE, q, QS, r->desc_gpa, r->avail_gpa, used);
    ADV_CHECK(st == 0, "QUEUE with the used ring over the table: status %d", st);
    r->used = vrb_host(r, used);
  }
  ADV_CHECK(adv_msg(a, HWSOCK_LB_START, 0, 0, 0, 0, 0) == 0, "START");
  /* descriptors 12, 13: past the used ring's 4 + 8 * 16 + 2 bytes */
  uint64_t g = req_buf(a), w = vrb_alloc(&a->q[0], 64, 16);
  vrb_set_desc(&a->q[0], 12, g, 32, F, 13);
  vrb_set_desc(&a->q[0], 13, w, 64, W, 0);
  vrb_set_desc(&a->q[0], 0, g, 32, 0, 0); /* valid until the device writes */
  vrb_put_head(&a->q[0], 12);
  adv_go(a, 0);
  ADV_CHECK(adv_wait_head(a, 0, 12, ADV_WAIT_MS) == 0,
            "no completion through a used ring over the table");
  const hwsock_resp_hdr *r = vrb_host(&a->q[0], w);
  ADV_CHECK(hwsock_le32_get(&r->status) == (uint32_t)-HWSOCK_EBADF,
            "GETNAME of a free id: status %u", hwsock_le32_get(&r->status));
  return expect_fault(a, 0, HWSOCK_RESET_BUFFER);
}

const adv_case adv_ring_cases[] = {
    {"desc_loop", desc_loop, recover},
    {"desc_self_loop", desc_self_loop, recover},
    {"chain_longer_than_queue", chain_longer_than_queue, recover},
    {"chain_over_max_segs", chain_over_max_segs, recover128},
    {"len_sum_overflow", len_sum_overflow, recover},
    {"addr_below_memory", addr_below_memory, recover},
    {"addr_beyond_memory", addr_beyond_memory, recover},
    {"addr_straddles_end", addr_straddles_end, recover},
    {"addr_wraps", addr_wraps, recover},
    {"writable_before_readable", writable_before_readable, recover},
    {"indirect_loop", indirect_loop, recover},
    {"indirect_nested", indirect_nested, recover},
    {"indirect_zero_len", indirect_zero_len, recover},
    {"indirect_len_not_multiple", indirect_len_not_multiple, recover},
    {"indirect_oversized", indirect_oversized, recover},
    {"indirect_with_next", indirect_with_next, recover},
    {"indirect_not_negotiated", indirect_not_negotiated, recover},
    {"indirect_straddles_end", indirect_straddles_end, recover},
    {"indirect_next_out_of_range", indirect_next_out_of_range, recover},
    {"avail_idx_ahead", avail_idx_ahead, recover},
    {"head_out_of_range", head_out_of_range, recover},
    {"next_out_of_range", next_out_of_range, recover},
    {"used_over_desc", used_over_desc, recover},
    {NULL, NULL, NULL},
};
