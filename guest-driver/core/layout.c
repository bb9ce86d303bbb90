/* The driver's plan for a device (layout.h): features, queue sizes, and
 * the memory layout — rings (each queue's descriptor table 4096-aligned in
 * guest addresses), then the event queue's buffers, then equal slots. */
#include <string.h>

#include "layout.h"

/* Offset from the start of memory at which guest address mem_gpa+off is
 * aligned to a (a power of 2), at or after off. */
static size_t align_gpa(uint64_t mem_gpa, size_t off, size_t a) {
  uint64_t gpa = mem_gpa + off;
  uint64_t up = (gpa + a - 1) & ~(uint64_t)(a - 1);
  return off + (size_t)(up - gpa);
}

static size_t round_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

static int is_pow2(unsigned v) { return v != 0 && (v & (v - 1)) == 0; }

static size_t place_queues(uint64_t mem_gpa, unsigned nq, unsigned qsize,
                           unsigned evq_size, queue_place *qp) {
  size_t off = 0;
  for (unsigned q = 0; q < nq; q++) {
    unsigned size = q == 0 ? qsize
                           : (qsize < GUEST_IDLE_QUEUE_SIZE
                                  ? qsize
                                  : GUEST_IDLE_QUEUE_SIZE);
    if (evq_size && q == nq - 1)
      size = evq_size; /* the event queue: one entry per buffer */
    off = align_gpa(mem_gpa, off, GUEST_QUEUE_ALIGN);
    qp[q].size = size;
    qp[q].desc = off;
    off += hwsock_vring_desc_bytes(size);
    qp[q].avail = off; /* desc bytes are a multiple of 16: aligned 2 */
    off += hwsock_vring_avail_bytes(size);
    off = align_gpa(mem_gpa, off, 4);
    qp[q].used = off;
    off += hwsock_vring_used_bytes(size);
  }
  return align_gpa(mem_gpa, off, 16);
}

int hwsock__guest_layout(const hwsock_guest_config *cfg, const dev_limits *d,
                         guest_layout *out) {
  guest_layout L;
  memset(&L, 0, sizeof(L));
  unsigned qsize = cfg->queue_size;
  if (qsize == 0) {
    qsize = GUEST_DEFAULT_QUEUE_SIZE;
    if (qsize > d->max_queue_size)
      qsize = d->max_queue_size;
  } else if (!is_pow2(qsize) || qsize > d->max_queue_size) {
    return HWSOCK_EINVAL;
  }
  unsigned io_len = cfg->io_len ? cfg->io_len : GUEST_DEFAULT_IO_LEN;
  if (io_len > d->max_io_len)
    io_len = d->max_io_len;
  if (io_len < GUEST_MIN_IO_LEN)
    return cfg->io_len ? HWSOCK_EINVAL : HWSOCK_EPROTO;

  uint64_t features = HWSOCK_F_VERSION_1;
  features |= d->features & (HWSOCK_F_TCP | HWSOCK_F_UDP | HWSOCK_F_INET6 |
                            HWSOCK_F_IPX);
  if (cfg->event_idx)
    features |= d->features & HWSOCK_F_EVENT_IDX;
  if (cfg->indirect)
    features |= d->features & HWSOCK_F_INDIRECT_DESC;
  int indirect = (features & HWSOCK_F_INDIRECT_DESC) != 0;
  /* The event queue (PROTOCOL.md §16): the last queue, its buffers after
   * the queues. */
  unsigned evq_size = 0, ev_buf_len = 0;
  if (cfg->event_queue && (d->features & HWSOCK_F_EVENT_QUEUE) &&
      d->num_queues >= 2) {
    /* ERROR events of datagram sockets may be soft (§16.9, events.c) */
    features |= HWSOCK_F_EVENT_QUEUE | (d->features & HWSOCK_F_SOFT_ERRORS);
    evq_size = d->max_queue_size < GUEST_EV_QUEUE_SIZE ? d->max_queue_size
                                                      : GUEST_EV_QUEUE_SIZE;
    ev_buf_len = cfg->ev_buf_len;
    if (ev_buf_len == 0) {
      ev_buf_len = GUEST_EV_BUF_LEN;
      /* A datagram longer than its buffer arrives truncated (§16.3), where
       * the kernel would deliver it whole: with UDP the default buffer
       * holds the largest datagram, in fewer buffers (guest_int.h), unless
       * they would crowd out the slots of a small memory. */
      unsigned dg = d->max_io_len < GUEST_EV_DGRAM_MAX ? d->max_io_len
                                                       : GUEST_EV_DGRAM_MAX;
      unsigned big = (unsigned)sizeof(hwsock_event) + HWSOCK_EV_URI_AREA + dg;
      unsigned nbig = evq_size < GUEST_EV_BIG_QUEUE_SIZE
                          ? evq_size
                          : GUEST_EV_BIG_QUEUE_SIZE;
      big = (unsigned)round_up(big, 16);
      if ((features & HWSOCK_F_UDP) && big > ev_buf_len &&
          (size_t)nbig * big <= cfg->mem_size / 2) {
        ev_buf_len = big;
        evq_size = nbig;
      }
    }
    if (ev_buf_len < HWSOCK_EV_BUF_MIN || ev_buf_len > GUEST_MAX_IO_LEN)
      return HWSOCK_EINVAL;
    ev_buf_len = (unsigned)round_up(ev_buf_len, 16);
  }

  /* Layout: queues, event buffers, then equal slots. */
  size_t ev_off = place_queues(cfg->mem_gpa, d->num_queues, qsize, evq_size,
                               L.qp);
  size_t slot_off = ev_off + (size_t)evq_size * ev_buf_len;
  size_t itab = indirect ? GUEST_MAX_SEGS * sizeof(hwsock_vring_desc) : 0;
  size_t req_off = round_up(itab, 16);
  size_t resp_off = req_off + round_up(sizeof(hwsock_req_hdr) + d->max_uri_len,
                                       16);
  size_t stride = round_up(resp_off + sizeof(hwsock_resp_hdr) +
                               d->max_uri_len + io_len, 16);
  if (slot_off >= cfg->mem_size)
    return HWSOCK_EINVAL;
  size_t fit = (cfg->mem_size - slot_off) / stride;
  /* Without indirect a request may hold GUEST_MAX_SEGS descriptors: never
   * post more slots than the table can serve, so a free slot always finds
   * its descriptors. */
  unsigned nslots = indirect ? qsize : qsize / GUEST_MAX_SEGS;
  if (nslots > d->max_inflight)
    nslots = d->max_inflight; /* more would stall behind the device's limit */
  if (cfg->slots && cfg->slots < nslots)
    nslots = cfg->slots;
  if (cfg->slots && fit < nslots)
    return HWSOCK_EINVAL; /* asked for more than fits */
  if (fit < nslots)
    nslots = (unsigned)fit;
  if (nslots == 0)
    return HWSOCK_EINVAL;

  L.features = features;
  L.indirect = indirect;
  L.qsize = qsize;
  L.io_len = io_len;
  L.evq_size = evq_size;
  L.ev_buf_len = ev_buf_len;
  L.ev_off = ev_off;
  L.slot_off = slot_off;
  L.stride = stride;
  L.req_off = req_off;
  L.resp_off = resp_off;
  L.nslots = nslots;
  *out = L;
  return 0;
}
