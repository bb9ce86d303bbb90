/* The device: lifecycle, guest memory, backends, queues, kicks and
 * notifications. Request decoding and per-opcode logic are in dispatch.c;
 * what every part uses (log, features, config, completion push, the broken
 * state) is in devstate.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "device_int.h"

/* The first versions' (0.1.0) structs: nothing smaller is a config or an
 * ops struct this library can interpret. */
#define CONFIG_V1_SIZE offsetof(hwsock_device_config, inband_negotiation)
#define OPS_V1_SIZE (offsetof(hwsock_device_ops, log) + sizeof(void *))

void hwsock_device_config_init_sized(hwsock_device_config *cfg, size_t size) {
  /* size is the caller's sizeof: never write beyond it */
  memset(cfg, 0, size < sizeof(*cfg) ? size : sizeof(*cfg));
  cfg->size = (uint32_t)(size < sizeof(*cfg) ? size : sizeof(*cfg));
}

/* The 0.1 entry point: its callers were built with the 0.1.0 struct. */
void(hwsock_device_config_init)(hwsock_device_config *cfg) {
  hwsock_device_config_init_sized(cfg, CONFIG_V1_SIZE);
}

/* A caller's struct of `size` bytes, ours of `known`: usable when it is at
 * least the first version and whatever it has beyond ours is zero (a newer
 * caller that did not set the fields we lack). */
static int size_known(const void *p, size_t size, size_t v1, size_t known) {
  if (size < v1)
    return 0;
  for (size_t i = known; i < size; i++)
    if (((const unsigned char *)p)[i] != 0)
      return 0;
  return 1;
}

/* Applies a default to a zero field and checks the range. */
static int limit(unsigned *v, unsigned def, unsigned lo, unsigned hi) {
  if (*v == 0)
    *v = def;
  return (*v < lo || *v > hi) ? HWSOCK_EINVAL : 0;
}

static int is_pow2(unsigned v) { return v != 0 && (v & (v - 1)) == 0; }

/* The socket table: every id the guest may use (65,536 by default), but a
 * page of it becomes memory only when an id on it is first used. So it is
 * mapped, not allocated (a heap block may be recycled and would have to be
 * cleared), and nothing writes it at creation: a FREE slot is all zeros
 * (OPEN sets backend and rule to -1), and every loop over the table only
 * reads a FREE slot. Drivers use the lowest free ids, so the pages touched
 * follow the sockets in use (sizeof(hwsock__sock) bytes per id). */
static hwsock__sock *socks_alloc(unsigned n) {
  void *p = mmap(NULL, (size_t)n * sizeof(hwsock__sock), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void socks_free(hwsock__sock *socks, unsigned n) {
  if (socks != NULL)
    munmap(socks, (size_t)n * sizeof(hwsock__sock));
}

int hwsock_device_new(const hwsock_device_config *cfg, hwsock_device **out) {
  if (cfg == NULL || out == NULL ||
      !size_known(cfg, cfg->size, CONFIG_V1_SIZE, sizeof(*cfg)) ||
      (cfg->ops != NULL && !size_known(cfg->ops, cfg->ops->size, OPS_V1_SIZE,
                                       sizeof(*cfg->ops))))
    return HWSOCK_EINVAL;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  memcpy(&c, cfg, cfg->size < sizeof(c) ? cfg->size : sizeof(c));
  c.size = sizeof(c);

  if (limit(&c.num_queues, HWSOCK_DEFAULT_QUEUES, 1, HWSOCK_MAX_QUEUES) ||
      limit(&c.max_queue_size, HWSOCK_DEFAULT_QUEUE_SIZE, 1,
            HWSOCK_VRING_MAX_SIZE) ||
      !is_pow2(c.max_queue_size) ||
      limit(&c.max_sockets, HWSOCK_DEFAULT_MAX_SOCKETS, 1,
            HWSOCK_MAX_SOCKETS_LIMIT) ||
      limit(&c.max_inflight, HWSOCK_DEFAULT_MAX_INFLIGHT, 1,
            HWSOCK_MAX_INFLIGHT_LIMIT) ||
      limit(&c.max_uri_len, HWSOCK_URI_MAX, HWSOCK_URI_AREA_MIN,
            HWSOCK_URI_MAX) ||
      limit(&c.max_io_len, HWSOCK_DEFAULT_MAX_IO_LEN, 1,
            HWSOCK_MAX_IO_LEN_LIMIT) ||
      limit(&c.max_chain_segs, HWSOCK_DEFAULT_MAX_CHAIN_SEGS, 2,
            HWSOCK_MAX_CHAIN_SEGS_LIMIT) ||
      limit(&c.max_regions, HWSOCK_DEFAULT_MAX_REGIONS, 1,
            HWSOCK_MAX_REGIONS) ||
      limit(&c.max_host_sockets, c.max_sockets, 1, HWSOCK_MAX_SOCKETS_LIMIT) ||
      limit(&c.kick_budget, HWSOCK_DEFAULT_KICK_BUDGET, 1,
            HWSOCK_MAX_KICK_BUDGET))
    return HWSOCK_EINVAL;
  if (c.identity != NULL && hwsock_identity_check(c.identity) < 0)
    return HWSOCK_EINVAL;

  hwsock_device *dev = calloc(1, sizeof(*dev));
  if (dev == NULL)
    return HWSOCK_ENOMEM;
  dev->cfg = c;
  if (c.ops != NULL) {
    size_t n = c.ops->size < sizeof(dev->ops) ? c.ops->size : sizeof(dev->ops);
    memcpy(&dev->ops, c.ops, n);
  }
  dev->mem.regions = calloc(c.max_regions, sizeof(*dev->mem.regions));
  dev->mem.max = c.max_regions;
  dev->socks = socks_alloc(c.max_sockets);
  dev->reqs = calloc(c.max_inflight, sizeof(*dev->reqs));
  dev->iov_pool =
      calloc((size_t)c.max_inflight * 2 * (c.max_chain_segs + c.max_regions),
             sizeof(struct iovec));
  if (!dev->mem.regions || !dev->socks || !dev->reqs || !dev->iov_pool) {
    hwsock_device_free(dev);
    return HWSOCK_ENOMEM;
  }
  for (unsigned i = c.max_inflight; i-- > 0;) {
    hwsock__req *r = &dev->reqs[i];
    r->dev = dev;
    /* A descriptor may straddle adjacent regions: one more iovec each. */
    r->iov = &dev->iov_pool[(size_t)i * 2 * (c.max_chain_segs + c.max_regions)];
    r->data = r->iov + c.max_chain_segs + c.max_regions;
    r->next_free = dev->free_reqs;
    dev->free_reqs = r;
  }
  if (c.policy != NULL) {
    dev->policy = c.policy;
  } else {
    int rc = hwsock_policy_load_default(&dev->own_policy);
    if (rc < 0) {
      hwsock_device_free(dev);
      return rc;
    }
    dev->policy = dev->own_policy;
  }
  *out = dev;
  return 0;
}

static void close_all_sockets(hwsock_device *dev) {
  dev->in_teardown = 1;
  for (unsigned i = 0; i < dev->sock_hwm; i++)
    if (dev->socks[i].state != HWSOCK__S_FREE)
      hwsock__sock_close(dev, i);
  dev->in_teardown = 0;
}

void hwsock_device_free(hwsock_device *dev) {
  if (dev == NULL)
    return;
  if (dev->socks != NULL)
    close_all_sockets(dev);
  for (unsigned i = 0; i < dev->nbackends; i++)
    dev->backends[i].desc->ops->destroy(dev->backends[i].instance);
  hwsock_policy_free(dev->own_policy);
  free(dev->mem.regions);
  socks_free(dev->socks, dev->cfg.max_sockets);
  free(dev->capsocks);
  free(dev->reqs);
  free(dev->iov_pool);
  free(dev);
}

int hwsock_device_add_region(hwsock_device *dev, uint64_t gpa, uint64_t size,
                             void *hva) {
  return hwsock__mem_add(&dev->mem, gpa, size, hva);
}

int hwsock_device_clear_regions(hwsock_device *dev) {
  /* A reset cancelled every request, so nothing points into the regions. */
  if (dev->status != 0 || dev->inflight != 0)
    return HWSOCK_EBUSY;
  dev->mem.n = 0;
  return 0;
}

static void backend_log(const hwsock_backend_host *host, int level,
                        const char *msg) {
  hwsock__backend *b = host->host_data;
  hwsock__device_log(b->dev, level, "backend %s: %s", b->desc->name, msg);
}

int hwsock_device_add_backend(hwsock_device *dev,
                              const hwsock_backend_desc *desc,
                              const char *options) {
  char err[160];
  int rc = hwsock_backend_desc_check(desc, err, sizeof(err));
  if (rc < 0) {
    hwsock__device_log(dev, HWSOCK_LOG_ERROR, "%s", err);
    return rc;
  }
  for (unsigned i = 0; i < dev->nbackends; i++)
    if (strcmp(dev->backends[i].desc->name, desc->name) == 0)
      return HWSOCK_EEXIST;
  if (dev->nbackends == HWSOCK_MAX_BACKENDS)
    return HWSOCK_ENOSPC;
  hwsock__backend *b = &dev->backends[dev->nbackends];
  memset(b, 0, sizeof(*b));
  b->desc = desc;
  b->dev = dev;
  b->host.size = sizeof(b->host);
  b->host.loop = dev->cfg.backend_loop;
  b->host.options = options ? options : "";
  b->host.complete = hwsock__backend_complete;
  b->host.log = backend_log;
  b->host.host_data = b;
  b->host.ready = hwsock__evq_ready;
  rc = desc->ops->create(&b->host, &b->instance);
  if (rc == HWSOCK_ENETDOWN) {
    /* nothing to serve with these options: not added, so its schemes'
     * feature bits are not offered to the guest */
    hwsock__device_log(dev, HWSOCK_LOG_INFO, "backend %s: down (nothing to "
                       "serve with these options): not added", desc->name);
    return rc;
  }
  if (rc < 0) {
    hwsock__device_log(dev, HWSOCK_LOG_ERROR, "backend %s: create: %s",
                       desc->name, hwsock_strerror(rc));
    return rc;
  }
  dev->nbackends++;
  hwsock__device_log(dev, HWSOCK_LOG_INFO, "backend %s added", desc->name);
  return 0;
}

int hwsock_device_set_features(hwsock_device *dev, uint64_t f) {
  if ((f & ~hwsock__device_features(dev)) != 0 || !(f & HWSOCK_F_VERSION_1))
    return HWSOCK_EINVAL;
  if (dev->status & HWSOCK_STATUS_DRIVER_OK)
    return HWSOCK_EBUSY;
  dev->features = f;
  dev->status |= HWSOCK_STATUS_ACKNOWLEDGE | HWSOCK_STATUS_DRIVER |
                 HWSOCK_STATUS_FEATURES_OK;
  return 0;
}

int hwsock_device_queue_setup(hwsock_device *dev, unsigned q, unsigned size,
                              uint64_t desc_gpa, uint64_t avail_gpa,
                              uint64_t used_gpa) {
  if (q >= dev->cfg.num_queues || !(dev->status & HWSOCK_STATUS_FEATURES_OK) ||
      (dev->status & HWSOCK_STATUS_DRIVER_OK) || size > dev->cfg.max_queue_size)
    return HWSOCK_EINVAL;
  int rc = hwsock__vq_init(&dev->vq[q], &dev->mem, size, desc_gpa, avail_gpa,
                           used_gpa, dev->features, dev->cfg.max_chain_segs);
  if (rc < 0)
    return rc;
  dev->queues_ready |= 1u << q;
  return 0;
}

int hwsock_device_start(hwsock_device *dev) {
  unsigned all = (dev->cfg.num_queues >= 32) ? ~0u
                                             : (1u << dev->cfg.num_queues) - 1;
  if (!(dev->status & HWSOCK_STATUS_FEATURES_OK) || dev->queues_ready != all)
    return HWSOCK_EINVAL;
  dev->status |= HWSOCK_STATUS_DRIVER_OK;
  for (unsigned q = 0; q < dev->cfg.num_queues; q++)
    hwsock__vq_enable_kicks(&dev->vq[q]);
  return 0;
}

unsigned hwsock_device_status(const hwsock_device *dev) { return dev->status; }

int hwsock_device_reset_reason(const hwsock_device *dev) {
  return dev->reset_reason;
}

static void send_notifications(hwsock_device *dev) {
  unsigned pending = dev->notify_pending;
  dev->notify_pending = 0;
  for (unsigned q = 0; pending != 0; q++, pending >>= 1) {
    if (!(pending & 1))
      continue;
    if (hwsock__vq_should_notify(&dev->vq[q])) {
      dev->counters.notifies++;
      if (dev->ops.notify != NULL)
        dev->ops.notify(dev->cfg.opaque, q);
    } else {
      dev->counters.notifies_suppressed++;
    }
  }
}

/* Pops and dispatches until the queue is empty, the in-flight limit or the
 * budget. A guest that refills its queue as fast as the device empties it
 * would otherwise keep this loop (and every other guest of the thread)
 * going for as long as it likes; at the budget the queue is left in the
 * backlog, kicks still off, and the next flush goes on where this stopped. */
static int process_queue(hwsock_device *dev, unsigned q) {
  int taken = 0;
  dev->backlog &= ~(1u << q);
  for (;;) {
    if (dev->broken)
      return HWSOCK_ENEEDSRESET;
    if ((int)q == hwsock__evq_index(dev))
      break; /* became the event queue (in-band NEGOTIATE): no requests */
    if (dev->free_reqs == NULL) {
      dev->stalled |= 1u << q;
      break;
    }
    if ((unsigned)taken == dev->cfg.kick_budget) {
      dev->backlog |= 1u << q;
      break;
    }
    hwsock__req *req;
    int rc = hwsock__take_request(dev, q, &req);
    if (rc < 0)
      return rc;
    if (rc == 0)
      break;
    req->t0_ns = hwsock__now_ns(CLOCK_MONOTONIC);
    dev->counters.requests++;
    taken++;
    hwsock__dispatch(dev, req);
  }
  return taken;
}

int hwsock_device_kick(hwsock_device *dev, unsigned q) {
  if (dev->broken)
    return HWSOCK_ENEEDSRESET;
  if (q >= dev->cfg.num_queues)
    return HWSOCK_EINVAL;
  if (!(dev->status & HWSOCK_STATUS_DRIVER_OK))
    return 0;
  /* Already in the backlog: this turn's flush takes its next budget. A
   * guest kicking (or an eventfd written) in a loop gets no more turns. */
  if (dev->backlog & (1u << q))
    return 0;
  dev->counters.kicks++;
  if (dev->quiesced) {
    /* taken when hwsock_device_quiesce(dev, 0) flushes */
    dev->stalled |= 1u << q;
    return 0;
  }
  dev->stalled &= ~(1u << q);
  if ((int)q == hwsock__evq_index(dev)) { /* buffers were added */
    hwsock__evq_service(dev);
    send_notifications(dev);
    return dev->broken ? HWSOCK_ENEEDSRESET : 0;
  }
  int rc = process_queue(dev, q);
  send_notifications(dev);
  return rc;
}

void hwsock_device_flush(hwsock_device *dev) {
  if (dev->broken || !(dev->status & HWSOCK_STATUS_DRIVER_OK))
    return;
  if (dev->quiesced) { /* completions still go out; nothing is taken */
    send_notifications(dev);
    return;
  }
  /* Each queue that stopped (in-flight limit, budget) gets one more budget;
   * one that cannot start for want of free requests stays stalled. */
  unsigned todo = dev->stalled | dev->backlog;
  dev->stalled = 0;
  for (unsigned q = 0; todo != 0; q++, todo >>= 1) {
    if (!(todo & 1))
      continue;
    if (dev->free_reqs == NULL) {
      dev->stalled |= (todo << q) & ~dev->backlog;
      break;
    }
    if (process_queue(dev, q) < 0)
      break;
  }
  hwsock__evq_service(dev); /* sockets waiting for a free request */
  send_notifications(dev);
}

int hwsock_device_pending(const hwsock_device *dev) {
  return !dev->broken && !dev->quiesced &&
         (dev->status & HWSOCK_STATUS_DRIVER_OK) && dev->backlog != 0;
}

void hwsock_device_reset(hwsock_device *dev) {
  close_all_sockets(dev);
  hwsock__evq_reset(dev);
  dev->sock_hwm = 0; /* every id is FREE again */
  /* Requests not owned by a backend (none should remain) are dropped. */
  for (unsigned i = 0; i < dev->cfg.max_inflight; i++)
    if (dev->reqs[i].in_use)
      hwsock__req_release(dev, &dev->reqs[i]);
  memset(dev->vq, 0, sizeof(dev->vq));
  dev->features = 0;
  dev->negotiated = 0; /* in-band negotiation starts over */
  dev->queues_ready = 0;
  dev->notify_pending = 0;
  dev->stalled = 0;
  dev->backlog = 0;
  dev->quiesced = 0;
  dev->status = 0;
  dev->broken = 0;
  dev->reset_reason = 0;
  dev->counters.resets++;
  hwsock__device_log(dev, HWSOCK_LOG_INFO, "device reset");
}
