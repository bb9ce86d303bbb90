/* libFuzzer: hwsock_device_restore() on arbitrary blobs (the blob is
 * untrusted: it may come from a file, another host, an older version).
 * Each input is restored into a fresh device whose queues sit in fake
 * guest memory; a blob that is accepted is then driven (kick, flush, a
 * second save after quiesce, reset) so that whatever it restored is used.
 * The first input byte picks the device's config: bit 0 in-band
 * negotiation, bit 1 two queues (the second one can be the event queue).
 * The device has no backend: sockets the blob would give a host socket
 * again come back reset. The sanitizers judge. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device_int.h"
/* the vring builder (libhwsock-ringtest's objects are in hwsock_internal) */
#include "../support/vring_builder.h"

static vrb r;
static unsigned char out[1u << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (r.mem == NULL && vrb_init(&r, 0x100000, 1u << 20, 64) != 0)
    abort();
  if (size == 0)
    return 0;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 64;
  c.max_inflight = 64;
  c.max_queue_size = 256;
  c.inband_negotiation = data[0] & 1;
  c.num_queues = (data[0] & 2) ? 2 : 1;
  hwsock_device *dev;
  if (hwsock_device_new(&c, &dev) != 0)
    abort();
  if (hwsock_device_add_region(dev, r.gpa, r.size, r.mem) != 0)
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
