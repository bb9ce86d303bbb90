/* libFuzzer harness: hwsock-vhost-user's message handling
 * (tools/hwsock-vhost-user/conn.c and mem.c, the real code) fed what a
 * hostile front-end can send. Each input is one connection: it is cut into
 * messages (12-byte header, then `size` payload bytes, as far as the input
 * goes) sent over a socketpair, each with file descriptors attached as a
 * front-end would (bits 8..11 of the header's flags say how many, a
 * convention of this harness only): a sealed memfd standing for guest RAM
 * for SET_MEM_TABLE, an eventfd otherwise. The back-end's loop runs after
 * every whole message; a cut message ends the input with the write side shut,
 * so that the back-end never waits for bytes that will not come. Then the
 * connection ends and the device must be reset and its memory unmapped.
 * Crashes, sanitizer reports and leaks are the findings. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "scm_send.h"
#include "vu.h"

#define RAM_SIZE (1u << 20)
#define FUZZ_MAX_INPUT 8192u

void vu_listen_resume(vu *u) { (void)u; }

static vu u;
static int ram_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void init_once(void) {
  if (u.dev != NULL)
    return;
  /* quiet: every message is logged at error or below; FUZZ_VU_LOG=1 to
   * see what an input does */
  vmm_log_level = getenv("FUZZ_VU_LOG") ? HWSOCK_LOG_DEBUG : -1;
  vmm_log_prog = "fuzz_vhost_user";
  if (uv_loop_init(&u.v.loop) < 0)
    abort();
  static hwsock_device_ops ops;
  ops.size = sizeof(ops);
  ops.notify = vu_notify;
  ops.needs_reset = vu_needs_reset;
  hwsock_device_config cfg;
  hwsock_device_config_init(&cfg);
  cfg.num_queues = VU_QUEUES;
  cfg.max_queue_size = VU_MAX_QUEUE_SIZE;
  cfg.max_regions = VU_MAX_REGIONS;
  cfg.backend_loop = &u.v.loop;
  cfg.ops = &ops;
  cfg.opaque = &u;
  cfg.inband_negotiation = 1;
  if (hwsock_device_new(&cfg, &u.dev) < 0)
    abort();
  u.cid = VU_DEFAULT_CID;
  ram_fd = memfd_create("fuzz-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (ram_fd < 0 || ftruncate(ram_fd, RAM_SIZE) < 0 ||
      fcntl(ram_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
    abort();
}

static void send_piece(int fd, const uint8_t *p, size_t len, uint32_t request,
                       unsigned nfds) {
  int fds[SCM_SEND_MAX_FDS];
  for (unsigned i = 0; i < nfds; i++)
    fds[i] = request == VU_SET_MEM_TABLE ? dup(ram_fd)
                                         : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct iovec iov = {(void *)p, len};
  (void)!scm_send(fd, &iov, 1, fds, nfds, MSG_NOSIGNAL | MSG_DONTWAIT);
  for (unsigned i = 0; i < nfds; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

/* Runs the back-end's loop until it has nothing ready, and throws the
 * replies away so that the back-end's writes never fill the socket. */
static void settle(int fd) {
  for (int i = 0; i < 4; i++)
    uv_run(&u.v.loop, UV_RUN_NOWAIT);
  char sink[4096];
  while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
    ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_once();
  if (size > FUZZ_MAX_INPUT)
    return 0;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    abort();
  vu_conn_accept(&u, sv[1]);
  size_t off = 0;
  while (off < size && u.conn != NULL) {
    vu_hdr h;
    size_t left = size - off;
    if (left < sizeof(h)) {
      send_piece(sv[0], data + off, left, 0, 0);
      off = size;
      break;
    }
    memcpy(&h, data + off, sizeof(h));
    size_t len = sizeof(h) + (h.size < left - sizeof(h) ? h.size
                                                         : left - sizeof(h));
    unsigned nfds = (h.flags >> 8) & 0xfu;
    if (nfds > 10)
      nfds = 10; /* beyond the back-end's 8: it must refuse, not leak */
    send_piece(sv[0], data + off, len, h.request, nfds);
    off += len;
    if (len < sizeof(h) + h.size)
      break; /* cut: shut the stream before the back-end reads it */
    settle(sv[0]);
  }
  shutdown(sv[0], SHUT_WR);
  while (u.conn != NULL)
    settle(sv[0]);
  close(sv[0]);
  uv_run(&u.v.loop, UV_RUN_DEFAULT); /* the closes finish */
  return 0;
}
