/* What every part of the device uses, below all of them (device.c runs
 * dispatch.c and evq.c, which complete requests and log through here): the
 * log, the feature bits and config space, the broken state, and the push
 * of a completion into the used ring. Calls only the ring engine. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "device_int.h"

void hwsock__device_log(hwsock_device *dev, int level, const char *fmt, ...) {
  if (dev->ops.log == NULL)
    return;
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  dev->ops.log(dev->cfg.opaque, level, line);
}

/* Feature bits for the schemes some backend serves. */
uint64_t hwsock__class_features(const hwsock_device *dev) {
  uint64_t f = 0;
  for (unsigned i = 0; i < dev->nbackends; i++) {
    const char *const *s = dev->backends[i].desc->schemes;
    for (; s != NULL && *s != NULL; s++) {
      switch (hwsock_scheme_from_name(*s)) {
      case HWSOCK_SCHEME_TCP: f |= HWSOCK_F_TCP; break;
      case HWSOCK_SCHEME_UDP: f |= HWSOCK_F_UDP; break;
      case HWSOCK_SCHEME_TCP6: f |= HWSOCK_F_TCP | HWSOCK_F_INET6; break;
      case HWSOCK_SCHEME_UDP6: f |= HWSOCK_F_UDP | HWSOCK_F_INET6; break;
      case HWSOCK_SCHEME_IPX: f |= HWSOCK_F_IPX; break;
      default: break;
      }
    }
  }
  /* The event queue is the last queue: a request queue must remain. Soft
   * errors are a refinement of its ERROR event (evq.c). */
  if (dev->cfg.num_queues >= 2)
    f |= HWSOCK_F_EVENT_QUEUE | HWSOCK_F_SOFT_ERRORS;
  return f;
}

uint64_t hwsock__device_features(const hwsock_device *dev) {
  return HWSOCK_F_VERSION_1 | HWSOCK_F_EVENT_IDX | HWSOCK_F_INDIRECT_DESC |
         hwsock__class_features(dev);
}

void hwsock_device_get_config(const hwsock_device *dev,
                              hwsock_wire_config *out) {
  memset(out, 0, sizeof(*out));
  hwsock_le32_set(&out->magic, HWSOCK_CONFIG_MAGIC);
  hwsock_le32_set(&out->protocol_version, HWSOCK_PROTOCOL_VERSION);
  hwsock_le64_set(&out->device_features, hwsock__device_features(dev));
  hwsock_le16_set(&out->num_queues, (uint16_t)dev->cfg.num_queues);
  /* 32768 does not fit 16 bits of "size"; the field holds size-1+1 only up
   * to 32768, which fits: uint16_t max is 65535. */
  hwsock_le16_set(&out->max_queue_size, (uint16_t)dev->cfg.max_queue_size);
  hwsock_le32_set(&out->max_sockets, dev->cfg.max_sockets);
  hwsock_le32_set(&out->max_inflight, dev->cfg.max_inflight);
  hwsock_le32_set(&out->max_uri_len, dev->cfg.max_uri_len);
  hwsock_le32_set(&out->max_io_len, dev->cfg.max_io_len);
  hwsock_le32_set(&out->max_chain_segs, dev->cfg.max_chain_segs);
}

int hwsock__take_request(hwsock_device *dev, unsigned q, hwsock__req **out) {
  hwsock__vq *vq = &dev->vq[q];
  hwsock__req *req = dev->free_reqs;
  for (;;) {
    const char *why = NULL;
    int rc = hwsock__vq_pop(vq, &req->chain, req->iov,
                            dev->cfg.max_chain_segs + dev->cfg.max_regions,
                            &why);
    if (rc < 0) {
      hwsock__set_broken(dev, q, why ? why : "bad ring");
      return HWSOCK_ENEEDSRESET;
    }
    if (rc > 0)
      break;
    /* Re-enable kicks, then look once more: the guest may have added a
     * request after our last look but before seeing the kick request. */
    if (!hwsock__vq_enable_kicks(vq))
      return 0;
  }
  dev->free_reqs = req->next_free;
  dev->inflight++;
  req->in_use = 1;
  req->queue = (uint16_t)q;
  req->head = req->chain.head;
  *out = req;
  return 1;
}

void hwsock__set_broken(hwsock_device *dev, unsigned q, const char *why) {
  if (dev->broken)
    return;
  dev->broken = 1;
  dev->reset_reason = hwsock__vq_fault_code(why);
  dev->status |= HWSOCK_STATUS_NEEDS_RESET;
  dev->counters.needs_reset++;
  hwsock__device_log(dev, HWSOCK_LOG_ERROR, "queue %u broken: %s", q, why);
  if (dev->ops.needs_reset != NULL)
    dev->ops.needs_reset(dev->cfg.opaque, why);
}

void hwsock__req_release(hwsock_device *dev, hwsock__req *req) {
  req->in_use = 0;
  req->event = 0;
  req->again = 0;
  req->next_free = dev->free_reqs;
  dev->free_reqs = req;
  dev->inflight--;
}

void hwsock__req_push(hwsock_device *dev, hwsock__req *req, uint32_t len) {
  if (!dev->broken && !dev->in_teardown &&
      (dev->status & HWSOCK_STATUS_DRIVER_OK)) {
    hwsock__vq_push(&dev->vq[req->queue], req->head, len);
    dev->notify_pending |= 1u << req->queue;
  }
  hwsock__req_release(dev, req);
}
