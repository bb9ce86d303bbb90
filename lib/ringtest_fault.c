/* libhwsock-ringtest: ready-made hostile chains, one per ring fault of
 * PROTOCOL.md §2.8 whose code depends only on the chain (not on the
 * device's limits or memory map). */
#include <string.h>

#include "ringtest_int.h"

#define NEXT HWSOCK_VRING_DESC_F_NEXT
#define WR HWSOCK_VRING_DESC_F_WRITE
#define IND HWSOCK_VRING_DESC_F_INDIRECT
#define DESC sizeof(hwsock_vring_desc)

static const struct {
  const char *name;
  int code; /* HWSOCK_RESET_* a device must report */
} faults[HWSOCK_RINGTEST_FAULT_MAX_ + 1] = {
    [HWSOCK_RINGTEST_DESC_LOOP] = {"desc_loop", HWSOCK_RESET_CHAIN_LOOP},
    [HWSOCK_RINGTEST_SELF_LOOP] = {"self_loop", HWSOCK_RESET_CHAIN_LOOP},
    [HWSOCK_RINGTEST_HEAD_INDEX] = {"head_index", HWSOCK_RESET_HEAD_INDEX},
    [HWSOCK_RINGTEST_NEXT_INDEX] = {"next_index", HWSOCK_RESET_NEXT_INDEX},
    [HWSOCK_RINGTEST_AVAIL_IDX] = {"avail_idx", HWSOCK_RESET_AVAIL_IDX},
    [HWSOCK_RINGTEST_ADDR_WRAPS] = {"addr_wraps", HWSOCK_RESET_BUFFER},
    [HWSOCK_RINGTEST_READ_AFTER_WRITE] = {"read_after_write",
                                          HWSOCK_RESET_READ_AFTER_WRITE},
    [HWSOCK_RINGTEST_INDIRECT_WITH_NEXT] = {"indirect_with_next",
                                            HWSOCK_RESET_INDIRECT_WITH_NEXT},
    [HWSOCK_RINGTEST_INDIRECT_ZERO_LEN] = {"indirect_zero_len",
                                           HWSOCK_RESET_INDIRECT_LEN},
    [HWSOCK_RINGTEST_INDIRECT_LEN] = {"indirect_len",
                                      HWSOCK_RESET_INDIRECT_LEN},
    [HWSOCK_RINGTEST_INDIRECT_NEXT_INDEX] = {"indirect_next_index",
                                             HWSOCK_RESET_INDIRECT_NEXT_INDEX},
    [HWSOCK_RINGTEST_INDIRECT_LOOP] = {"indirect_loop",
                                       HWSOCK_RESET_INDIRECT_LOOP},
    [HWSOCK_RINGTEST_INDIRECT_NESTED] = {"indirect_nested",
                                         HWSOCK_RESET_INDIRECT_NESTED},
};

const char *hwsock_ringtest_fault_name(int fault) {
  if (fault < 1 || fault > HWSOCK_RINGTEST_FAULT_MAX_)
    return NULL;
  return faults[fault].name;
}

/* desc[i] of the main table. */
static void put(hwsock_ringtest *r, unsigned i, uint64_t addr, uint32_t len,
                uint16_t flags, uint16_t next) {
  hwsock__ringtest_put_desc(&r->desc[i % r->qsize], addr, len, flags, next);
}

int hwsock_ringtest_add_fault(hwsock_ringtest *r, int fault) {
  if (hwsock_ringtest_fault_name(fault) == NULL || r->qsize < 2)
    return HWSOCK_EINVAL;
  size_t mark = hwsock_ringtest_mark(r);
  /* a well-formed request-sized readable buffer, a writable one, and a
   * table of two entries: whatever the layout points at besides its fault */
  uint64_t rd = hwsock_ringtest_alloc(r, 64, 16);
  uint64_t wr = hwsock_ringtest_alloc(r, 64, 16);
  uint64_t t = hwsock_ringtest_alloc(r, 2 * DESC, 16);
  uint64_t inner = hwsock_ringtest_alloc(r, DESC, 16);
  if (rd == 0 || wr == 0 || t == 0 || inner == 0) {
    hwsock_ringtest_release(r, mark);
    return HWSOCK_ENOMEM;
  }
  uint16_t q = (uint16_t)r->qsize;
  uint16_t h = hwsock__ringtest_take_descs(r, 2);
  uint16_t h1 = (uint16_t)((h + 1) % q);
  switch ((hwsock_ringtest_fault)fault) {
  case HWSOCK_RINGTEST_DESC_LOOP:
    put(r, h, rd, 32, NEXT, h1);
    put(r, h1, rd, 0, NEXT, h);
    break;
  case HWSOCK_RINGTEST_SELF_LOOP:
    put(r, h, rd, 32, NEXT, h);
    break;
  case HWSOCK_RINGTEST_HEAD_INDEX:
    h = q;
    break;
  case HWSOCK_RINGTEST_NEXT_INDEX:
    put(r, h, rd, 32, NEXT, q);
    break;
  case HWSOCK_RINGTEST_AVAIL_IDX:
    /* more than qsize ahead of anything the device can have consumed */
    r->avail_shadow = (uint16_t)(r->avail_shadow + q + 1);
    return faults[fault].code;
  case HWSOCK_RINGTEST_ADDR_WRAPS:
    put(r, h, UINT64_MAX - 15, 32, 0, 0);
    break;
  case HWSOCK_RINGTEST_READ_AFTER_WRITE:
    put(r, h, wr, 64, WR | NEXT, h1);
    put(r, h1, rd, 32, 0, 0);
    break;
  case HWSOCK_RINGTEST_INDIRECT_WITH_NEXT:
    hwsock_ringtest_write_desc(r, t, rd, 32, 0, 0);
    put(r, h, t, DESC, IND | NEXT, h1);
    put(r, h1, wr, 64, WR, 0);
    break;
  case HWSOCK_RINGTEST_INDIRECT_ZERO_LEN:
    hwsock_ringtest_write_desc(r, t, rd, 32, 0, 0);
    put(r, h, t, 0, IND, 0);
    break;
  case HWSOCK_RINGTEST_INDIRECT_LEN:
    hwsock_ringtest_write_desc(r, t, rd, 32, NEXT, 1);
    hwsock_ringtest_write_desc(r, t + DESC, wr, 64, WR, 0);
    put(r, h, t, DESC + DESC / 2, IND, 0);
    break;
  case HWSOCK_RINGTEST_INDIRECT_NEXT_INDEX:
    hwsock_ringtest_write_desc(r, t, rd, 32, NEXT, 2);
    hwsock_ringtest_write_desc(r, t + DESC, wr, 64, WR, 0);
    put(r, h, t, 2 * DESC, IND, 0);
    break;
  case HWSOCK_RINGTEST_INDIRECT_LOOP:
    hwsock_ringtest_write_desc(r, t, rd, 32, NEXT, 1);
    hwsock_ringtest_write_desc(r, t + DESC, rd, 0, NEXT, 0);
    put(r, h, t, 2 * DESC, IND, 0);
    break;
  case HWSOCK_RINGTEST_INDIRECT_NESTED:
    hwsock_ringtest_write_desc(r, inner, rd, 32, 0, 0);
    hwsock_ringtest_write_desc(r, t, inner, DESC, IND, 0);
    put(r, h, t, DESC, IND, 0);
    break;
  }
  hwsock_ringtest_put_head(r, h);
  return faults[fault].code;
}
