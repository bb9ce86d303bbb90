/* The driver's plan for a device: which features it asks for, the queue
 * sizes, and where rings, event buffers and request slots go in guest
 * memory (docs/GUEST-DRIVER.md). Pure: it reads a config and the device's
 * limits and writes only *out, so test_guest_layout checks it alone. */
#ifndef HWSOCK_GUEST_LAYOUT_H
#define HWSOCK_GUEST_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "guest_int.h"

/* The device's limits, read once from its config space (guest.c), with
 * the driver's own bounds applied. */
typedef struct dev_limits {
  uint64_t features;
  unsigned num_queues, max_queue_size, max_sockets, max_inflight;
  unsigned max_uri_len, max_io_len, max_chain_segs;
} dev_limits;

/* Where one queue's rings are: offsets from the start of guest memory. */
typedef struct queue_place {
  unsigned size;
  size_t desc, avail, used;
} queue_place;

typedef struct guest_layout {
  uint64_t features;  /* to negotiate: the device's, as far as asked */
  int indirect;       /* HWSOCK_F_INDIRECT_DESC among them */
  unsigned qsize;     /* queue 0's size (the others' are in qp) */
  unsigned io_len;    /* payload bytes per slot */
  unsigned evq_size;  /* event queue entries and buffers, 0: none */
  unsigned ev_buf_len; /* bytes per event buffer (multiple of 16) */
  queue_place qp[GUEST_MAX_QUEUES]; /* the first num_queues are set */
  size_t ev_off;      /* the event buffers (after the rings) */
  size_t slot_off;    /* the slots (after the event buffers), all in memory */
  size_t stride;      /* bytes per slot: indirect table, request, response */
  size_t req_off, resp_off; /* in a slot: the request and response headers */
  unsigned nslots;    /* requests in flight at most */
} guest_layout;

/* Plans cfg (a whole current-size config, already checked for NULLs and
 * mem_gpa's alignment) on a device with limits d. Returns 0, HWSOCK_EINVAL
 * for a config that cannot be served (queue_size not a power of 2 or above
 * the device's, io_len or ev_buf_len out of range, slots that do not fit,
 * memory too small for one slot), or HWSOCK_EPROTO when the device's
 * max_io_len is below the driver's minimum. */
int hwsock__guest_layout(const hwsock_guest_config *cfg, const dev_limits *d,
                         guest_layout *out);

#endif
