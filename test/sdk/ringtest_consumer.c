/* A user's unit test of its own "device" with libhwsock-ringtest, built
 * outside the tree against an installed prefix (test/sdk/ringtest_test.sh):
 * the ring builder plays the driver, a few lines below play a device that
 * echoes the readable bytes into the writable buffer, and a hostile
 * layout must be recognised. Prints one line and exits 0 when every
 * expectation held. */
#include <stdio.h>
#include <string.h>

#include <hwsock/ringtest.h>

/* The device under test: pops every available chain of r's queue, copies
 * the readable bytes into the writable ones and completes the chain. A
 * head out of range is refused (returns -1), as a device must. */
static int toy_device(hwsock_ringtest *r, uint16_t *last_avail) {
  uint16_t avail = hwsock_le16_load(&r->avail->idx);
  while (*last_avail != avail) {
    uint16_t head = hwsock_le16_get(&r->avail->ring[*last_avail % r->qsize]);
    if (head >= r->qsize)
      return -1;
    unsigned char buf[256];
    size_t n = 0;
    uint32_t written = 0;
    for (uint16_t i = head;;) {
      const hwsock_vring_desc *d = &r->desc[i];
      uint16_t fl = hwsock_le16_get(&d->flags);
      uint32_t len = hwsock_le32_get(&d->len);
      unsigned char *p = hwsock_ringtest_host(r, hwsock_le64_get(&d->addr));
      if (p == NULL)
        return -1;
      if (!(fl & HWSOCK_VRING_DESC_F_WRITE)) {
        if (len > sizeof buf - n)
          return -1;
        memcpy(buf + n, p, len);
        n += len;
      } else {
        uint32_t k = n - written < len ? (uint32_t)(n - written) : len;
        memcpy(p, buf + written, k);
        written += k;
      }
      if (!(fl & HWSOCK_VRING_DESC_F_NEXT))
        break;
      i = hwsock_le16_get(&d->next);
      if (i >= r->qsize)
        return -1;
    }
    uint16_t used = hwsock_le16_load(&r->used->idx);
    hwsock_vring_used_elem *e = &r->used->ring[used % r->qsize];
    hwsock_le32_set(&e->id, head);
    hwsock_le32_set(&e->len, written);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    hwsock_le16_store(&r->used->idx, (uint16_t)(used + 1));
    (*last_avail)++;
  }
  return 0;
}

int main(void) {
  hwsock_ringtest r;
  if (hwsock_ringtest_init(&r, 0, 0, 8) != 0)
    return 1;
  uint16_t last_avail = 0;
  struct iovec out = {(void *)"ping", 4};
  uint32_t in_len = 16;
  uint64_t in_gpa = 0;
  int head = hwsock_ringtest_add_rw(&r, &out, 1, &in_len, 1, &in_gpa);
  hwsock_ringtest_publish(&r);
  uint32_t id = 0, len = 0;
  if (head < 0 || toy_device(&r, &last_avail) != 0 ||
      hwsock_ringtest_get_used(&r, &id, &len) != 1 || id != (uint32_t)head ||
      len != 4 || memcmp(hwsock_ringtest_host(&r, in_gpa), "ping", 4) != 0)
    return 2;
  int code = hwsock_ringtest_add_fault(&r, HWSOCK_RINGTEST_HEAD_INDEX);
  hwsock_ringtest_publish(&r);
  if (code != HWSOCK_RESET_HEAD_INDEX || toy_device(&r, &last_avail) != -1)
    return 3;
  printf("ringtest: echoed %u bytes, refused %s (code %d)\n", len,
         hwsock_ringtest_fault_name(HWSOCK_RINGTEST_HEAD_INDEX), code);
  hwsock_ringtest_free(&r);
  return 0;
}
