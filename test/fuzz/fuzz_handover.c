/* libFuzzer: the new process's side of a hand-over (lib/handover.c,
 * docs/EMBEDDING.md §12) on arbitrary input. The blob and the socket
 * records come from another process: untrusted. Each input is
 * hwsock_device_restore_held() of a blob, hwsock_device_import_sock() of
 * up to 8 records, each with a host descriptor of some kind (none, a TCP
 * or UDP socket of either family, or a WRONG one: a socketpair, a pipe,
 * a memfd), then hwsock_device_resume_held() and the device freed.
 *
 * Input: byte 0 the config (bit 0 in-band negotiation, bit 1 two queues,
 * bit 2 the fake backend refuses BIND/LISTEN/CONNECT: fuzz_snapshot's
 * layout, whose corpus blobs are valid here), bytes 1-2 the blob's length
 * n (little-endian), n bytes of blob, then records of 100 bytes each:
 *   0  ctl: bits 0-2 the descriptor (0 none, 1 tcp4, 2 tcp6, 3 udp4,
 *      4 udp6, 5 unix socketpair, 6 pipe, 7 memfd); bit 3 write a good
 *      magic and version; bit 4 the id is the nth reset socket instead of
 *      bytes 1-2; bit 5 the scheme is that socket's
 *   1  id, 16 bits little-endian    3  0
 *   4  the 96-byte record, as is (a short tail is zero-padded)
 * so the fuzzer reaches the backends' checks of the state (any length,
 * any bytes) and hwsock_backend_adopt_fd()'s type/family checks.
 *
 * Backends: the fake one of fuzz_snapshot (first: it serves every scheme,
 * so nothing the blob re-creates gets a host socket), which imports only
 * without a descriptor, then the real tcp, udp and deny modules (what
 * import_sock reaches by name). Guest memory is zeroed for each input and
 * the process moves to a network namespace of its own when it may
 * (root): a held request resumed on a real socket reaches nothing.
 *
 * Oracles besides the sanitizers (and LSan): no descriptor is left open
 * after an input (the device owns each one it is given, closed on failure
 * too), an import that succeeded means the socket is offloaded, and a
 * socket imported as denied was given no descriptor. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "device_int.h"
#include "../support/vring_builder.h"

#define REC_BYTES 100u
#define MAX_RECS 8u

static vrb r;
static uv_loop_t loop;
static hwsock_policy *offload_all;
static hwsock_plugin *plug[3];
static int refuse_steps;
static int inited;

static void check(int cond) {
  if (!cond)
    __builtin_trap();
}

/* ---- the fake backend (fuzz_snapshot's, with hand-over ops) ------------- */

#define FK_PENDING 8u
typedef struct fk_sock {
  const hwsock_backend_host *host;
  hwsock_breq *pending[FK_PENDING];
  unsigned np;
} fk_sock;

static int fk_create(const hwsock_backend_host *host, void **instance) {
  *instance = (void *)host;
  return 0;
}
static void fk_destroy(void *instance) { (void)instance; }
static int fk_open(void *instance, const hwsock_bopen *params, void **sock) {
  (void)params;
  fk_sock *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return HWSOCK_ENOMEM;
  s->host = instance;
  *sock = s;
  return 0;
}
static void fk_submit(void *sock, hwsock_breq *req) {
  fk_sock *s = sock;
  switch (req->opcode) {
  case HWSOCK_OP_BIND:
  case HWSOCK_OP_LISTEN:
  case HWSOCK_OP_CONNECT:
    s->host->complete(req, refuse_steps ? HWSOCK_EADDRINUSE : 0, 0);
    return;
  case HWSOCK_OP_RECV:
  case HWSOCK_OP_ACCEPT:
    if (s->np < FK_PENDING) {
      s->pending[s->np++] = req;
      return;
    }
    s->host->complete(req, HWSOCK_EAGAIN, 0);
    return;
  default:
    s->host->complete(req, HWSOCK_EOPNOTSUPP, 0);
    return;
  }
}
static void fk_close(void *sock) {
  fk_sock *s = sock;
  for (unsigned i = 0; i < s->np; i++)
    s->host->complete(s->pending[i], HWSOCK_ECANCELED, 0);
  free(s);
}
static int fk_export(void *sock, hwsock_bexport *out) {
  (void)sock;
  out->state_len = 0;
  return 0;
}
/* No host socket: a descriptor, or state, is a bad record. */
static int fk_import(void *instance, const hwsock_bexport *in, void **sock) {
  if (in->fd >= 0 || in->state_len != 0)
    return HWSOCK_EINVAL;
  return fk_open(instance, NULL, sock);
}
static const hwsock_backend_ops fk_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = fk_create,
    .destroy = fk_destroy,
    .open = fk_open,
    .submit = fk_submit,
    .close = fk_close,
    .export_sock = fk_export,
    .import_sock = fk_import,
};
static const char *const fk_schemes[] = {"tcp", "udp", "tcp6", "udp6", "ipx",
                                         NULL};
static const hwsock_backend_desc fk_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "fake",
    .description = "fuzz_handover's backend",
    .schemes = fk_schemes,
    .ops = &fk_ops,
};

/* ---- descriptors -------------------------------------------------------- */

/* The descriptors this input made, by number and identity: each must be
 * closed when the device is gone (counting /proc/self/fd is no oracle:
 * libFuzzer's symbolizer opens pipes of its own now and then). */
static struct {
  int fd;
  dev_t dev;
  ino_t ino;
} made[MAX_RECS];
static unsigned nmade;

static int still_open(unsigned i) {
  struct stat st;
  return fstat(made[i].fd, &st) == 0 && st.st_dev == made[i].dev &&
         st.st_ino == made[i].ino;
}

/* A descriptor of the kind; -1 for none (or when the host has no such
 * socket, e.g. no IPv6: then the record goes without one). */
static int make_fd(unsigned kind) {
  int sv[2], fd = -1;
  switch (kind) {
  case 1:
    return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  case 2:
    return socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  case 3:
    return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  case 4:
    return socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  case 5:
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
      close(sv[1]);
      fd = sv[0];
    }
    return fd;
  case 6:
    if (pipe2(sv, O_CLOEXEC) == 0) {
      close(sv[1]);
      fd = sv[0];
    }
    return fd;
  case 7:
    return memfd_create("fuzz_handover", MFD_CLOEXEC);
  default:
    return -1;
  }
}

/* The nth socket the restore left reset, or max_sockets (none). */
static uint32_t nth_reset(const hwsock_device *dev, unsigned n) {
  unsigned cnt = 0;
  for (uint32_t id = 0; id < dev->sock_hwm; id++)
    if (dev->socks[id].state == HWSOCK__S_RESET)
      cnt++;
  if (cnt == 0)
    return dev->cfg.max_sockets;
  n %= cnt;
  for (uint32_t id = 0; id < dev->sock_hwm; id++)
    if (dev->socks[id].state == HWSOCK__S_RESET && n-- == 0)
      return id;
  return dev->cfg.max_sockets;
}

static void init_once(void) {
  static const char y[] = "version: 1\ndefault: offload\nrules: []\n";
  static const char *const so[] = {HWSOCK_BUILD_BACKEND_DIR "/tcp.so",
                                   HWSOCK_BUILD_BACKEND_DIR "/udp.so",
                                   HWSOCK_BUILD_BACKEND_DIR "/deny.so"};
  char err[256];
  /* a network with nothing in it (not even lo up), when allowed */
  (void)unshare(CLONE_NEWNET);
  if (vrb_init(&r, 0x100000, 1u << 20, 64) != 0 || uv_loop_init(&loop) != 0 ||
      hwsock_policy_load_string(y, sizeof(y) - 1, "fuzz", &offload_all, NULL,
                                0) != 0)
    abort();
  for (int i = 0; i < 3; i++)
    if (hwsock_plugin_load(so[i], &plug[i], err, sizeof(err)) != 0)
      abort();
  inited = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!inited)
    init_once();
  nmade = 0;
  if (size < 3)
    return 0;
  size_t blen = (size_t)data[1] | (size_t)data[2] << 8;
  if (blen > size - 3)
    blen = size - 3;
  const uint8_t *blob = data + 3, *recs = blob + blen;
  size_t left = size - 3 - blen;
  refuse_steps = (data[0] & 4) != 0;
  memset(r.mem, 0, r.size);
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 64;
  c.max_inflight = 64;
  c.max_queue_size = 256;
  c.inband_negotiation = data[0] & 1;
  c.num_queues = (data[0] & 2) ? 2 : 1;
  c.policy = offload_all;
  c.backend_loop = &loop;
  hwsock_device *dev;
  if (hwsock_device_new(&c, &dev) != 0 ||
      hwsock_device_add_region(dev, r.gpa, r.size, r.mem) != 0 ||
      hwsock_device_add_backend(dev, &fk_desc, NULL) != 0)
    abort();
  for (int i = 0; i < 3; i++)
    if (hwsock_device_add_backend(dev, hwsock_plugin_desc(plug[i]), NULL) != 0)
      abort();
  int rc = hwsock_device_restore_held(dev, blob, blen);
  if (rc < 0) {
    check(hwsock_device_status(dev) == 0); /* refused: left reset */
    check(hwsock_device_resume_held(dev) == HWSOCK_EINVAL);
  }
  for (unsigned k = 0; k < MAX_RECS && left > 0; k++) {
    size_t n = left < REC_BYTES ? left : REC_BYTES;
    uint8_t in[REC_BYTES];
    memset(in, 0, sizeof(in));
    memcpy(in, recs, n);
    recs += n, left -= n;
    hwsock_sock_export e;
    memset(&e, 0, sizeof(e));
    e.id = (uint32_t)in[1] | (uint32_t)in[2] << 8;
    if (in[0] & 16)
      e.id = nth_reset(dev, e.id);
    memcpy(e.rec, in + 4, sizeof(e.rec));
    if (in[0] & 8) {
      memcpy(e.rec, "HSKX", 4);
      e.rec[4] = 1;
    }
    if ((in[0] & 32) && e.id < dev->cfg.max_sockets)
      e.rec[6] = dev->socks[e.id].scheme;
    e.fd = make_fd(in[0] & 7u);
    struct stat st;
    if (e.fd >= 0 && fstat(e.fd, &st) == 0)
      made[nmade].fd = e.fd, made[nmade].dev = st.st_dev,
      made[nmade++].ino = st.st_ino;
    /* the device owns e.fd from here on, whatever happens */
    if (hwsock_device_import_sock(dev, &e) == 0) {
      check(dev->socks[e.id].state == HWSOCK__S_OFFLOADED);
      /* a denied socket holds no host socket (nor quota) */
      check(dev->socks[e.id].ss != HWSOCK_SS_DENIED || e.fd < 0);
    }
  }
  if (rc >= 0)
    (void)hwsock_device_resume_held(dev);
  for (int i = 0; i < 4; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  hwsock_device_free(dev);
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
    ;
  for (unsigned i = 0; i < nmade; i++)
    check(!still_open(i)); /* every descriptor given was closed */
  return 0;
}
