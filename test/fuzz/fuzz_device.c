/* libFuzzer, stateful: a random guest drives a whole device (fuzz_dev.h:
 * lib/device.c, dispatch.c, the policy, one queue of 16 in fake guest
 * memory, a fake backend) through a sequence of ring operations and backend
 * completions. Each step is one byte of opcode and its arguments:
 *
 *   0 request  op, id, arg0, arg1, uri pick, data len, writable len: one
 *              chain (header + URI + data | response), published and kicked
 *   1 kick     (also a kick with nothing new)
 *   2 complete index, status pick, byte count (* 16), flags: one request
 *              the backend holds (an accepted socket, a peer address)
 *   3 flush    the loop turn (backlog, stalls)
 *   4 reset    RESET, then features (bit 0 EVENT_IDX, bit 1 INDIRECT), queue
 *              and start again
 *   5 raw      desc index, addr pick, len, flags, next: one descriptor
 *              written as is and made available (ring faults)
 *   6 reap     read the used ring (the oracle of fuzz_dev.h)
 *   7 header   raw 32-byte header from the input, writable len: a chain
 *
 * The sanitizers, fuzz_dev.h's oracles and a clean free (no request left
 * in the backend) judge the run. */
#include "fuzz_dev.h"

static const char *const uris[] = {
    "tcp://127.0.0.1:80", "udp://127.0.0.1:53", "tcp://127.0.0.2:80",
    "tcp://127.0.0.3:80", "tcp://0.0.0.0:80", "tcp6://[::1]:80",
    "tcp6://[::ffff:127.0.0.2]:80", "udp://10.0.0.1:9", "tcp://127.0.0.1:0",
    "tcp6://[::127.0.0.1]:80", "tcp://1.2.3.4:5", "udp6://[::]:7",
    "tcp://127.0.0.1", "x", "",
};
#define NURIS (sizeof(uris) / sizeof(uris[0]))
static const int statuses[] = {0, HWSOCK_ECONNRESET, HWSOCK_EAGAIN,
                               HWSOCK_ECANCELED, 5, -5000, HWSOCK_EPIPE, 0};

typedef struct in {
  const uint8_t *p;
  size_t n;
} in;
static int get(in *s) {
  if (s->n == 0)
    return -1;
  s->n--;
  return *s->p++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096)
    return 0;
  in s = {data, size};
  if (fd_new(HWSOCK_F_VERSION_1 | HWSOCK_F_INDIRECT_DESC |
             HWSOCK_F_EVENT_IDX) < 0)
    return 0;
  int op;
  unsigned steps = 0;
  while ((op = get(&s)) >= 0 && steps++ < 256) {
    switch (op % 8) {
    case 0:
    case 7: {
      uint8_t buf[sizeof(hwsock_req_hdr) + HWSOCK_URI_MAX + 255];
      hwsock_req_hdr *h = (hwsock_req_hdr *)buf;
      memset(buf, 0, sizeof(buf));
      size_t len = sizeof(*h);
      if (op % 8 == 7) {
        if (s.n < sizeof(*h))
          goto done;
        memcpy(h, s.p, sizeof(*h));
        s.p += sizeof(*h);
        s.n -= sizeof(*h);
      } else {
        int o = get(&s), id = get(&s), a0 = get(&s), a1 = get(&s),
            u = get(&s), dl = get(&s);
        if (dl < 0)
          goto done;
        const char *uri = uris[u % NURIS];
        size_t ul = strlen(uri);
        hwsock_le16_set(&h->opcode, (uint16_t)(o % 16));
        hwsock_le32_set(&h->sock_id, (uint32_t)(id % 10));
        hwsock_le32_set(&h->arg0, (uint32_t)(a0 % 8));
        hwsock_le32_set(&h->arg1, (uint32_t)(a1 < 200 ? a1 % 8 : a1));
        hwsock_le32_set(&h->uri_len, (uint32_t)ul);
        memcpy(buf + len, uri, ul);
        len += ul + (size_t)dl;
      }
      int wl = get(&s);
      if (wl < 0)
        goto done;
      if (fd_add(buf, len, (uint32_t)wl * 2) >= 0) {
        vrb_publish(&fd_r);
        hwsock_device_kick(fd_dev, 0);
      }
      break;
    }
    case 1:
      hwsock_device_kick(fd_dev, 0);
      break;
    case 2: {
      int i = get(&s), st = get(&s), n = get(&s), fl = get(&s);
      if (fl < 0)
        goto done;
      if (fd_npending > 0)
        fd_complete((unsigned)i % fd_npending,
                    statuses[st % (int)(sizeof(statuses) / sizeof(int))],
                    (size_t)n * 16, fl & 1, fl & 2);
      break;
    }
    case 3:
      hwsock_device_flush(fd_dev);
      break;
    case 4: {
      int f = get(&s);
      if (f < 0)
        goto done;
      fd_reap();
      hwsock_device_reset(fd_dev);
      fd_check(fd_npending == 0); /* reset closed every socket */
      uint64_t feat = HWSOCK_F_VERSION_1 |
                      ((f & 1) ? HWSOCK_F_EVENT_IDX : 0) |
                      ((f & 2) ? HWSOCK_F_INDIRECT_DESC : 0);
      fd_check(fd_setup(feat) == 0);
      break;
    }
    case 5: {
      int d = get(&s), a = get(&s), l = get(&s), fl = get(&s), nx = get(&s);
      if (nx < 0)
        goto done;
      uint64_t addr = (a & 0x80) ? 0xfffffffffffff000ull + (uint64_t)a
                                 : fd_r.gpa + 4096 + (uint64_t)a * 64;
      unsigned di = (unsigned)d % FD_QS;
      if (fd_busy[di])
        break; /* a live chain's descriptor: the oracle needs it intact */
      vrb_set_desc(&fd_r, di, addr, (uint32_t)l * 8, (uint16_t)(fl & 7),
                   (uint16_t)(nx % 20));
      vrb_put_head(&fd_r, (uint16_t)(d % 20));
      vrb_publish(&fd_r);
      hwsock_device_kick(fd_dev, 0);
      /* whatever the device made of it, it is not one of ours */
      goto done;
    }
    case 6:
      fd_reap();
      break;
    }
  }
  fd_reap();
done:
  fd_free();
  return 0;
}
