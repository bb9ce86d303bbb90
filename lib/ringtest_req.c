/* libhwsock-ringtest: one hwsock request as a chain (PROTOCOL.md §4.1). */
#include <string.h>

#include "ringtest_int.h"

int hwsock_ringtest_add_request(hwsock_ringtest *r, const hwsock_req_hdr *hdr,
                                const void *uri, uint32_t uri_len,
                                const void *data, uint32_t dlen,
                                uint32_t wlen, uint64_t *resp_gpa) {
  if (hdr == NULL || (uri_len > 0 && uri == NULL) ||
      (uint64_t)uri_len + dlen > UINT32_MAX - sizeof(*hdr) ||
      r->qsize < (wlen > 0 ? 2u : 1u))
    return HWSOCK_EINVAL;
  size_t rlen = sizeof(*hdr) + (size_t)uri_len + dlen;
  size_t mark = hwsock_ringtest_mark(r);
  uint64_t rg = hwsock_ringtest_alloc(r, rlen, 8);
  uint64_t wg = wlen > 0 ? hwsock_ringtest_alloc(r, wlen, 8) : 0;
  if (rg == 0 || (wlen > 0 && wg == 0)) {
    hwsock_ringtest_release(r, mark);
    return HWSOCK_ENOMEM;
  }
  uint8_t *p = hwsock_ringtest_host(r, rg);
  memcpy(p, hdr, sizeof(*hdr));
  if (uri_len > 0)
    memcpy(p + sizeof(*hdr), uri, uri_len);
  if (dlen > 0 && data != NULL) /* else zeros: alloc zeroed them */
    memcpy(p + sizeof(*hdr) + uri_len, data, dlen);
  hwsock_ringtest_seg s[2] = {{rg, (uint32_t)rlen, 0},
                              {wg, wlen, HWSOCK_VRING_DESC_F_WRITE}};
  int head = hwsock_ringtest_add_chain(r, s, wlen > 0 ? 2 : 1);
  if (head >= 0 && resp_gpa != NULL)
    *resp_gpa = wg;
  return head;
}
