/* libFuzzer: the device's request decoder and dispatch (lib/dispatch.c, the
 * policy, the completion path) on one request from the guest, against a
 * device whose sockets are in every state: 1 undecided (tcp), 2 offloaded
 * and connected (tcp), 3 declined, 4 offloaded (udp), 5 denied by the
 * policy, the rest free. A fake backend (fuzz_dev.h) holds what reaches it.
 *
 * Input layout:
 *   byte 0   writable part: 2 * b bytes (0..510)
 *   byte 1   how the backend completes what it holds: bit 0 with an error
 *            (ECONNRESET), bit 1 an accepted socket, bit 2 a peer address,
 *            bits 3..7 the byte count claimed, * 64 (may exceed the buffers)
 *   rest     the readable part, as is: request header, URI, data
 *
 * Oracles: fuzz_dev.h's (used length, status), the sanitizers, and no
 * backend request left behind when the device is freed. */
#include "fuzz_dev.h"

static void prep(uint16_t op, uint32_t id, uint32_t a0, uint32_t a1,
                 const char *uri) {
  uint8_t buf[sizeof(hwsock_req_hdr) + 64];
  hwsock_req_hdr *h = (hwsock_req_hdr *)buf;
  size_t ul = uri ? strlen(uri) : 0;
  memset(buf, 0, sizeof(buf));
  hwsock_le16_set(&h->opcode, op);
  hwsock_le32_set(&h->sock_id, id);
  hwsock_le32_set(&h->arg0, a0);
  hwsock_le32_set(&h->arg1, a1);
  hwsock_le32_set(&h->uri_len, (uint32_t)ul);
  if (ul > 0)
    memcpy(buf + sizeof(*h), uri, ul);
  fd_check(fd_add(buf, sizeof(*h) + ul + (op == HWSOCK_OP_SEND), 32) >= 0);
  vrb_publish(&fd_r);
  hwsock_device_kick(fd_dev, 0);
  while (fd_npending > 0)
    fd_complete(0, 0, op == HWSOCK_OP_SEND, 0, 0);
  fd_reap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 + 1 || size > 2 + 1024)
    return 0;
  if (fd_new(HWSOCK_F_VERSION_1 | HWSOCK_F_INDIRECT_DESC) < 0)
    return 0;
  prep(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM, NULL);
  prep(HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM, NULL);
  prep(HWSOCK_OP_CONNECT, 2, 0, 0, "tcp://127.0.0.1:80");
  prep(HWSOCK_OP_OPEN, 3, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM, NULL);
  prep(HWSOCK_OP_CONNECT, 3, 0, 0, "tcp://127.0.0.3:80");
  prep(HWSOCK_OP_OPEN, 4, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM, NULL);
  prep(HWSOCK_OP_SEND, 4, 0, 0, "udp://127.0.0.1:53");
  prep(HWSOCK_OP_OPEN, 5, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM, NULL);
  prep(HWSOCK_OP_CONNECT, 5, 0, 0, "tcp://127.0.0.2:80");

  uint32_t wlen = 2u * data[0];
  uint8_t how = data[1];
  if (fd_add(data + 2, size - 2, wlen) >= 0) {
    vrb_publish(&fd_r);
    hwsock_device_kick(fd_dev, 0);
    hwsock_device_flush(fd_dev);
    while (fd_npending > 0)
      fd_complete(0, (how & 1) ? HWSOCK_ECONNRESET : 0,
                  (size_t)(how >> 3) * 64, how & 2, how & 4);
    hwsock_device_flush(fd_dev);
    fd_reap();
  }
  fd_free();
  return 0;
}
