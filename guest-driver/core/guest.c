/* Driver setup: config checks, the device's limits, the driver's tables,
 * device start, and teardown. Feature choice and the memory layout are
 * planned by layout.c (docs/GUEST-DRIVER.md shows the layout). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "guest_int.h"
#include "layout.h"
#include "hwsock/uri.h"

/* The 0.1.0 struct (write_behind was its last field). */
#define CONFIG_V010_SIZE                                                       \
  (offsetof(hwsock_guest_config, write_behind) + sizeof(int))

void hwsock_guest_config_init_sized(hwsock_guest_config *cfg, size_t size) {
  /* size is the caller's sizeof: never write beyond it */
  size_t n = size < sizeof(*cfg) ? size : sizeof(*cfg);
  memset(cfg, 0, n);
  cfg->size = (uint32_t)n;
  if (n >= offsetof(hwsock_guest_config, indirect) + sizeof(int)) {
    cfg->event_idx = 1;
    cfg->indirect = 1;
  }
}

/* The 0.1 entry point: its callers were built with the 0.1.0 struct. */
void(hwsock_guest_config_init)(hwsock_guest_config *cfg) {
  hwsock_guest_config_init_sized(cfg, CONFIG_V010_SIZE);
}

static unsigned pow2_floor(unsigned v) {
  unsigned p = 1;
  while (p <= v / 2)
    p *= 2;
  return p;
}

static int read_device(const hwsock_wire_config *src, dev_limits *d) {
  hwsock_wire_config c;
  memcpy(&c, src, sizeof(c)); /* one fetch: the config may be shared */
  if (hwsock_le32_get(&c.magic) != HWSOCK_CONFIG_MAGIC ||
      hwsock_le32_get(&c.protocol_version) != HWSOCK_PROTOCOL_VERSION)
    return HWSOCK_EPROTO;
  d->features = hwsock_le64_get(&c.device_features);
  d->num_queues = hwsock_le16_get(&c.num_queues);
  d->max_queue_size = hwsock_le16_get(&c.max_queue_size);
  d->max_sockets = hwsock_le32_get(&c.max_sockets);
  d->max_inflight = hwsock_le32_get(&c.max_inflight);
  d->max_uri_len = hwsock_le32_get(&c.max_uri_len);
  d->max_io_len = hwsock_le32_get(&c.max_io_len);
  d->max_chain_segs = hwsock_le32_get(&c.max_chain_segs);
  if (!(d->features & HWSOCK_F_VERSION_1) || d->num_queues == 0 ||
      d->num_queues > GUEST_MAX_QUEUES || d->max_queue_size == 0 ||
      d->max_sockets == 0 || d->max_inflight == 0 ||
      d->max_uri_len < HWSOCK_URI_AREA_MIN ||
      d->max_chain_segs < GUEST_MAX_SEGS)
    return HWSOCK_EPROTO;
  if (d->max_queue_size > HWSOCK_VRING_MAX_SIZE)
    d->max_queue_size = HWSOCK_VRING_MAX_SIZE;
  d->max_queue_size = pow2_floor(d->max_queue_size);
  if (d->max_sockets > GUEST_MAX_SOCKETS)
    d->max_sockets = GUEST_MAX_SOCKETS; /* we simply use fewer ids */
  if (d->max_uri_len > HWSOCK_URI_MAX)
    d->max_uri_len = HWSOCK_URI_MAX;
  if (d->max_io_len > GUEST_MAX_IO_LEN)
    d->max_io_len = GUEST_MAX_IO_LEN;
  return 0;
}

static void free_tables(hwsock_guest *g) {
  free(g->desc_next);
  free(g->head_slot);
  free(g->slots);
  free(g->slot_call);
  free(g->slot_stack);
  free(g->socks);
  free(g->sock_free);
}

static int alloc_tables(hwsock_guest *g) {
  size_t words = ((size_t)g->nsock + 63) / 64;
  g->desc_next = calloc(g->qsize, sizeof(*g->desc_next));
  g->head_slot = calloc(g->qsize, sizeof(*g->head_slot));
  g->slots = calloc(g->nslots, sizeof(*g->slots));
  g->slot_call = calloc(g->nslots, sizeof(*g->slot_call));
  g->slot_stack = calloc(g->nslots, sizeof(*g->slot_stack));
  g->socks = calloc(g->nsock, sizeof(*g->socks));
  g->sock_free = calloc(words, sizeof(*g->sock_free));
  if (!g->desc_next || !g->head_slot || !g->slots || !g->slot_call ||
      !g->slot_stack ||
      !g->socks || !g->sock_free)
    return HWSOCK_ENOMEM;
  for (unsigned i = 0; i < g->qsize; i++)
    g->desc_next[i] = (uint16_t)(i + 1);
  g->desc_free = 0;
  g->ndesc_free = g->qsize;
  for (unsigned i = 0; i < g->nslots; i++)
    g->slot_stack[i] = g->nslots - 1 - i; /* slot 0 on top */
  g->nslot_free = g->nslots;
  for (size_t w = 0; w < words; w++)
    g->sock_free[w] = ~(uint64_t)0;
  if (g->nsock % 64)
    g->sock_free[words - 1] = ((uint64_t)1 << (g->nsock % 64)) - 1;
  return 0;
}

/* Initialises the mutex and condition variables; on failure destroys what
 * it made. */
static int init_sync(hwsock_guest *g) {
  unsigned i;
  if (pthread_mutex_init(&g->lock, NULL))
    return HWSOCK_ENOMEM;
  if (pthread_cond_init(&g->slot_cond, NULL))
    goto fail_mutex;
  for (i = 0; i < g->nslots; i++)
    if (pthread_cond_init(&g->slots[i].cond, NULL))
      goto fail_conds;
  return 0;
fail_conds:
  while (i-- > 0)
    pthread_cond_destroy(&g->slots[i].cond);
  pthread_cond_destroy(&g->slot_cond);
fail_mutex:
  pthread_mutex_destroy(&g->lock);
  return HWSOCK_ENOMEM;
}

int hwsock_guest_new(const hwsock_guest_config *cfg, hwsock_guest **out) {
  dev_limits d;
  int err;

  if (!out)
    return HWSOCK_EINVAL;
  *out = NULL;
  /* A config from before a field was appended: the new fields default. */
  hwsock_guest_config full;
  if (cfg && cfg->size >= offsetof(hwsock_guest_config, write_behind) &&
      cfg->size < sizeof(full)) {
    hwsock_guest_config_init(&full);
    memcpy(&full, cfg, cfg->size);
    full.size = sizeof(full);
    cfg = &full;
  }
  if (!cfg || cfg->size < sizeof(*cfg) || !cfg->mem || !cfg->device ||
      !cfg->ops || cfg->ops->size < sizeof(*cfg->ops) ||
      !cfg->ops->set_features || !cfg->ops->setup_queue ||
      !cfg->ops->start || !cfg->ops->kick || !cfg->ops->wait ||
      cfg->poll_us < 0)
    return HWSOCK_EINVAL;
  /* Host and guest views must agree on alignment up to 16 bytes. */
  if (((uintptr_t)cfg->mem - (uintptr_t)cfg->mem_gpa) % 16 != 0 ||
      cfg->mem_gpa + cfg->mem_size < cfg->mem_gpa)
    return HWSOCK_EINVAL;
  if ((err = read_device(cfg->device, &d)) < 0)
    return err;

  guest_layout L;
  if ((err = hwsock__guest_layout(cfg, &d, &L)) < 0)
    return err;
  const queue_place *qp = L.qp;
  uint64_t features = L.features;
  unsigned qsize = L.qsize, evq_size = L.evq_size;

  hwsock_guest *g = calloc(1, sizeof(*g));
  if (!g)
    return HWSOCK_ENOMEM;
  g->ops = cfg->ops;
  g->opaque = cfg->opaque;
  g->features = features;
  g->event_idx = (features & HWSOCK_F_EVENT_IDX) != 0;
  g->indirect = L.indirect;
  g->poll_us = cfg->poll_us;
  g->poll_cur = (unsigned)cfg->poll_us;
  g->write_behind = cfg->write_behind != 0;
  if (evq_size) {
    g->evq_on = 1;
    g->evq = d.num_queues - 1;
    g->ev_nbuf = evq_size;
    g->ev_mask = (uint16_t)(evq_size - 1);
    g->ev_buf_len = L.ev_buf_len;
    g->ev_window = cfg->ev_window ? cfg->ev_window : GUEST_EV_WINDOW;
    if (g->ev_window > HWSOCK_CREDIT_MAX)
      g->ev_window = HWSOCK_CREDIT_MAX;
    g->ev_dgram_window = GUEST_EV_DGRAM_WINDOW;
  }
  g->nqueues = d.num_queues;
  g->qsize = qsize;
  g->qmask = (uint16_t)(qsize - 1);
  g->nslots = L.nslots;
  g->io_len = L.io_len;
  g->uri_max = d.max_uri_len;
  g->nsock = d.max_sockets;
  g->slot_stride = L.stride;
  g->req_off = L.req_off;
  g->resp_off = L.resp_off;
  if ((err = alloc_tables(g)) < 0)
    goto fail_tables;
  if ((err = init_sync(g)) < 0)
    goto fail_tables;

  uint8_t *mem = cfg->mem;
  memset(mem, 0, L.slot_off); /* fresh rings: all indices and flags zero */
  g->desc = (hwsock_vring_desc *)(void *)(mem + qp[0].desc);
  g->avail = (hwsock_vring_avail *)(void *)(mem + qp[0].avail);
  g->used = (hwsock_vring_used *)(void *)(mem + qp[0].used);
  g->used_event = &g->avail->ring[qsize];
  g->avail_event =
      (volatile hwsock_le16 *)(void *)(mem + qp[0].used + 4 + 8u * qsize);
  g->slot_mem = mem + L.slot_off;
  g->slot_gpa = cfg->mem_gpa + L.slot_off;
  if (g->evq_on) {
    unsigned e = g->evq;
    g->ev_desc = (hwsock_vring_desc *)(void *)(mem + qp[e].desc);
    g->ev_avail = (hwsock_vring_avail *)(void *)(mem + qp[e].avail);
    g->ev_used = (hwsock_vring_used *)(void *)(mem + qp[e].used);
    g->ev_used_event = &g->ev_avail->ring[evq_size];
    g->ev_avail_event =
        (volatile hwsock_le16 *)(void *)(mem + qp[e].used + 4 + 8u * evq_size);
    g->ev_mem = mem + L.ev_off;
    g->ev_gpa = cfg->mem_gpa + L.ev_off;
  }

  if ((err = g->ops->set_features(g->opaque, features)) < 0)
    goto fail;
  for (unsigned q = 0; q < d.num_queues; q++) {
    err = g->ops->setup_queue(g->opaque, q, qp[q].size,
                              cfg->mem_gpa + qp[q].desc,
                              cfg->mem_gpa + qp[q].avail,
                              cfg->mem_gpa + qp[q].used);
    if (err < 0)
      goto fail;
  }
  if ((err = g->ops->start(g->opaque)) < 0)
    goto fail;
  if (g->evq_on && (err = hwsock__ev_start(g)) < 0)
    goto fail;
  *out = g;
  return 0;

fail:
  for (unsigned i = 0; i < g->nslots; i++)
    pthread_cond_destroy(&g->slots[i].cond);
  pthread_cond_destroy(&g->slot_cond);
  pthread_mutex_destroy(&g->lock);
fail_tables:
  free_tables(g);
  free(g);
  return err < 0 ? err : HWSOCK_EINVAL;
}

void hwsock_guest_free(hwsock_guest *g) {
  if (!g)
    return;
  hwsock__ev_stop(g);
  for (unsigned i = 0; i < g->nslots; i++)
    pthread_cond_destroy(&g->slots[i].cond);
  pthread_cond_destroy(&g->slot_cond);
  pthread_mutex_destroy(&g->lock);
  free_tables(g);
  free(g);
}

void hwsock_guest_shutdown_transport(hwsock_guest *g) {
  if (!g)
    return;
  pthread_mutex_lock(&g->lock);
  hwsock__guest_fail(g, HWSOCK_ECONNRESET);
  pthread_mutex_unlock(&g->lock);
}

int hwsock_guest_transport_error(const hwsock_guest *g) {
  if (!g)
    return HWSOCK_EINVAL;
  /* set once (first failure wins), never cleared: no lock needed */
  return __atomic_load_n(&g->broken, __ATOMIC_ACQUIRE);
}
