/* libFuzzer: hwsock_device_restore() on arbitrary blobs (the blob is
 * untrusted: it may come from a file, another host, an older version).
 * Each input is restored into a fresh device whose queues sit in fake
 * guest memory; a blob that is accepted is then driven (kick, flush, a
 * second save after quiesce, reset) so that whatever it restored is used.
 * The first input byte picks the device's config: bit 0 in-band
 * negotiation, bit 1 two queues (the second one can be the event queue),
 * bit 2 a backend that refuses every BIND, LISTEN, CONNECT and
 * SETSOCKOPT. The device's one backend is a fake in this file that serves
 * every scheme with no host socket (its BIND, LISTEN, CONNECT and
 * SETSOCKOPT complete at once, RECV and ACCEPT wait until close; the
 * options beyond what open() takes are SETSOCKOPTs), under a policy that
 * offloads everything, so that the sockets a blob would give a host socket again
 * are re-created and their requests in flight dispatched again. The
 * sanitizers judge. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device_int.h"
/* the vring builder (libhwsock-ringtest's objects are in hwsock_internal) */
#include "../support/vring_builder.h"

static vrb r;
static unsigned char out[1u << 16];
static hwsock_policy *offload_all;
static int refuse_steps; /* this input's bit 2 */

/* ---- the fake backend ---------------------------------------------------- */

#define FK_PENDING 8u
typedef struct fk_sock {
  const hwsock_backend_host *host;
  hwsock_addr local;
  int has_local;
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
    if (!refuse_steps && req->addr != NULL) {
      s->local = *req->addr;
      s->has_local = 1;
    }
    s->host->complete(req, refuse_steps ? HWSOCK_EADDRINUSE : 0, 0);
    return;
  case HWSOCK_OP_LISTEN:
  case HWSOCK_OP_CONNECT:
  case HWSOCK_OP_SETSOCKOPT: /* a restore's options beyond open()'s */
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

static int fk_info(void *sock, hwsock_bsock_info *bi) {
  const fk_sock *s = sock;
  bi->has_local = (uint32_t)s->has_local;
  bi->local = s->local;
  return 0;
}

static int fk_watch(void *sock, unsigned events, void *cookie) {
  (void)sock, (void)events, (void)cookie;
  return 0; /* never fires: no host socket */
}

static const hwsock_backend_ops fk_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = fk_create,
    .destroy = fk_destroy,
    .open = fk_open,
    .submit = fk_submit,
    .close = fk_close,
    .info = fk_info,
    .watch = fk_watch,
};
static const char *const fk_schemes[] = {"tcp", "udp", "tcp6", "udp6", "ipx",
                                         NULL};
static const hwsock_backend_desc fk_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "fake",
    .description = "fuzz_snapshot's backend",
    .schemes = fk_schemes,
    .ops = &fk_ops,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (r.mem == NULL && vrb_init(&r, 0x100000, 1u << 20, 64) != 0)
    abort();
  static const char y[] = "version: 1\ndefault: offload\nrules: []\n";
  if (offload_all == NULL &&
      hwsock_policy_load_string(y, sizeof(y) - 1, "fuzz", &offload_all, NULL,
                                0) != 0)
    abort();
  if (size == 0)
    return 0;
  refuse_steps = (data[0] & 4) != 0;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 64;
  c.max_inflight = 64;
  c.max_queue_size = 256;
  c.inband_negotiation = data[0] & 1;
  c.num_queues = (data[0] & 2) ? 2 : 1;
  c.policy = offload_all;
  hwsock_device *dev;
  if (hwsock_device_new(&c, &dev) != 0)
    abort();
  if (hwsock_device_add_region(dev, r.gpa, r.size, r.mem) != 0 ||
      hwsock_device_add_backend(dev, &fk_desc, NULL) != 0)
    abort();
  int rc = hwsock_device_restore(dev, data + 1, size - 1);
  if (rc >= 0) {
    hwsock_device_kick(dev, 0);
    hwsock_device_flush(dev);
    size_t n;
    hwsock_device_quiesce(dev, 1);
    if (hwsock_device_save_bound(dev) > sizeof(out) ||
        (!(hwsock_device_status(dev) & HWSOCK_STATUS_NEEDS_RESET) &&
         hwsock_device_save(dev, out, sizeof(out), &n) != 0))
      abort(); /* a restored, healthy device can always be saved again */
    hwsock_device_reset(dev);
  } else if (hwsock_device_status(dev) != 0) {
    abort(); /* a refused blob leaves the device reset */
  }
  hwsock_device_free(dev);
  return 0;
}
