/* libFuzzer: the device side of a split virtqueue against arbitrary guest
 * memory (lib/ring.h).
 *
 * Input layout:
 *   byte 0   features: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX
 *   byte 1   queue size = 1 << (b % 5)            (1..16)
 *   byte 2   max_segs   = 1 + b % 32
 *   byte 3   iovec cap  = 1 + b % 64
 *   rest     the contents of guest memory: region A, then region B
 *
 * Guest memory: A = [0x10000, +8 KiB) holding the queue at fixed addresses,
 * B = [0x12000, +4 KiB) right after it (so buffers may straddle A|B), a hole,
 * then C = [0x20000, +256) (a small region to run off). Each region is its
 * own exact-size heap block, so ASan flags any iovec that strays outside.
 *
 * The harness pops until the ring is empty or broken, pushes every popped
 * head, reads every readable byte and writes every writable byte, and checks
 * the chain's accounting against its iovecs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hwsock/common.h"
#include "ring.h"

#define A_GPA 0x10000ull
#define A_SIZE 0x2000u
#define B_GPA 0x12000ull
#define B_SIZE 0x1000u
#define C_GPA 0x20000ull
#define C_SIZE 0x100u

#define DESC_GPA A_GPA            /* 16 * 16 = 256 bytes */
#define AVAIL_GPA (A_GPA + 0x100) /* 6 + 2 * 16 = 38 bytes */
#define USED_GPA (A_GPA + 0x140)  /* 6 + 8 * 16 = 134 bytes */

#define MAX_CAP 64u

static void check(int cond) {
  if (!cond)
    __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  uint64_t features = 0;
  if (data[0] & 1)
    features |= HWSOCK_F_INDIRECT_DESC;
  if (data[0] & 2)
    features |= HWSOCK_F_EVENT_IDX;
  unsigned qsize = 1u << (data[1] % 5);
  unsigned max_segs = 1u + data[2] % 32;
  unsigned cap = 1u + data[3] % MAX_CAP;
  data += 4;
  size -= 4;

  uint8_t *a = calloc(1, A_SIZE), *b = calloc(1, B_SIZE), *c = calloc(1, C_SIZE);
  if (a == NULL || b == NULL || c == NULL)
    goto out;
  size_t na = size < A_SIZE ? size : A_SIZE;
  memcpy(a, data, na);
  size_t nb = size - na < B_SIZE ? size - na : B_SIZE;
  memcpy(b, data + na, nb);

  hwsock__region regs[3];
  hwsock__memmap m = {regs, 0, 3};
  check(hwsock__mem_add(&m, A_GPA, A_SIZE, a) == 0);
  check(hwsock__mem_add(&m, B_GPA, B_SIZE, b) == 0);
  check(hwsock__mem_add(&m, C_GPA, C_SIZE, c) == 0);

  hwsock__vq vq;
  check(hwsock__vq_init(&vq, &m, qsize, DESC_GPA, AVAIL_GPA, USED_GPA,
                        features, max_segs) == 0);

  struct iovec iov[MAX_CAP];
  volatile uint8_t sink = 0;
  for (unsigned round = 0; round < 2 * qsize + 4; round++) {
    hwsock__chain ch;
    const char *why = NULL;
    int rc = hwsock__vq_pop(&vq, &ch, iov, cap, &why);
    if (rc == 0) {
      if (!hwsock__vq_enable_kicks(&vq))
        break;
      continue;
    }
    if (rc < 0) {
      check(rc == HWSOCK_ENEEDSRESET && why != NULL && why[0] != '\0');
      break;
    }
    check(rc == 1 && why == NULL);
    check(ch.head < qsize);
    check(ch.n_out + ch.n_in <= cap);
    check(ch.out_len + ch.in_len <= UINT32_MAX);
    size_t out = 0, in = 0;
    for (unsigned k = 0; k < ch.n_out; k++) {
      check(iov[k].iov_len > 0);
      const uint8_t *p = iov[k].iov_base;
      for (size_t j = 0; j < iov[k].iov_len; j++)
        sink ^= p[j];
      out += iov[k].iov_len;
    }
    for (unsigned k = ch.n_out; k < ch.n_out + ch.n_in; k++) {
      check(iov[k].iov_len > 0);
      memset(iov[k].iov_base, 0x5a, iov[k].iov_len);
      in += iov[k].iov_len;
    }
    check(out == ch.out_len && in == ch.in_len);
    hwsock__vq_push(&vq, ch.head, (uint32_t)in);
    (void)hwsock__vq_should_notify(&vq);
    check(hwsock__vq_pending(&vq) <= qsize);
  }
  (void)sink;
out:
  free(a);
  free(b);
  free(c);
  return 0;
}
