/* The guest driver's layout planner (guest-driver/core/layout.c), alone:
 * a config and a device's limits in, features, queue sizes and offsets out.
 * Every plan is checked against the rules a device enforces (ring
 * alignment in guest addresses, everything inside memory, no overlap). */
#include <criterion/criterion.h>
#include <string.h>

#include "layout.h"

#define MIB (1024u * 1024u)

static dev_limits device(unsigned queues, uint64_t extra_features) {
  dev_limits d;
  memset(&d, 0, sizeof(d));
  d.features = HWSOCK_F_VERSION_1 | HWSOCK_F_TCP | HWSOCK_F_UDP |
               HWSOCK_F_EVENT_IDX | HWSOCK_F_INDIRECT_DESC | extra_features;
  d.num_queues = queues;
  d.max_queue_size = 1024;
  d.max_sockets = 1024;
  d.max_inflight = 64;
  d.max_uri_len = 256;
  d.max_io_len = 1u << 20;
  d.max_chain_segs = 64;
  return d;
}

static hwsock_guest_config config(uint64_t gpa, size_t size) {
  hwsock_guest_config c;
  hwsock_guest_config_init(&c);
  c.size = sizeof(c); /* what hwsock_guest_new hands the planner */
  c.mem_gpa = gpa;
  c.mem_size = size;
  return c;
}

/* The rules every plan must keep, whatever it chose. */
static void check_plan(const hwsock_guest_config *c, const dev_limits *d,
                       const guest_layout *L) {
  size_t end = 0;
  for (unsigned q = 0; q < d->num_queues; q++) {
    const queue_place *p = &L->qp[q];
    cr_assert((c->mem_gpa + p->desc) % 4096 == 0, "queue %u desc aligned", q);
    cr_assert((c->mem_gpa + p->avail) % 2 == 0);
    cr_assert((c->mem_gpa + p->used) % 4 == 0);
    cr_assert_geq(p->desc, end, "queue %u after the one before", q);
    cr_assert_geq(p->avail, p->desc + hwsock_vring_desc_bytes(p->size));
    cr_assert_geq(p->used, p->avail + hwsock_vring_avail_bytes(p->size));
    end = p->used + hwsock_vring_used_bytes(p->size);
    cr_assert(p->size != 0 && (p->size & (p->size - 1)) == 0);
  }
  cr_assert_geq(L->ev_off, end, "event buffers after the rings");
  cr_assert_eq(L->slot_off, L->ev_off + (size_t)L->evq_size * L->ev_buf_len);
  cr_assert((c->mem_gpa + L->slot_off) % 16 == 0);
  cr_assert_eq(L->stride % 16, 0);
  cr_assert_geq(L->resp_off, L->req_off + sizeof(hwsock_req_hdr) +
                                 d->max_uri_len);
  cr_assert_geq(L->stride, L->resp_off + sizeof(hwsock_resp_hdr) +
                               d->max_uri_len + L->io_len);
  cr_assert_gt(L->nslots, 0);
  cr_assert_leq(L->nslots, d->max_inflight);
  cr_assert_leq(L->slot_off + (size_t)L->nslots * L->stride, c->mem_size,
                "every slot inside memory");
  cr_assert_eq(L->qsize, L->qp[0].size);
  cr_assert_eq(L->features & ~d->features, 0, "only what the device offers");
}

Test(guest_layout, defaults_on_a_plain_device) {
  dev_limits d = device(1, 0);
  hwsock_guest_config c = config(0x100000000ull, 64 * MIB);
  guest_layout L;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  check_plan(&c, &d, &L);
  cr_assert_eq(L.qsize, GUEST_DEFAULT_QUEUE_SIZE);
  cr_assert_eq(L.io_len, GUEST_DEFAULT_IO_LEN);
  cr_assert_eq(L.indirect, 1);
  cr_assert_eq(L.nslots, 64, "indirect: as many as the device takes");
  cr_assert_eq(L.features, HWSOCK_F_VERSION_1 | HWSOCK_F_TCP | HWSOCK_F_UDP |
                               HWSOCK_F_EVENT_IDX | HWSOCK_F_INDIRECT_DESC);
  cr_assert_eq(L.evq_size, 0);
}

Test(guest_layout, rings_align_in_guest_addresses_not_offsets) {
  dev_limits d = device(3, 0);
  hwsock_guest_config c = config(0x1008, 8 * MIB);
  guest_layout L;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  check_plan(&c, &d, &L);
  cr_assert_eq(L.qp[0].desc, 4096 - 8);
  cr_assert_eq(L.qp[1].size, GUEST_IDLE_QUEUE_SIZE, "other queues are small");
}

Test(guest_layout, without_indirect_slots_fit_the_descriptor_table) {
  dev_limits d = device(1, 0);
  hwsock_guest_config c = config(0, 64 * MIB);
  c.indirect = 0;
  c.queue_size = 64;
  guest_layout L;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  check_plan(&c, &d, &L);
  cr_assert_eq(L.indirect, 0);
  cr_assert_eq(L.features & HWSOCK_F_INDIRECT_DESC, 0);
  cr_assert_eq(L.nslots, 64 / GUEST_MAX_SEGS);
  cr_assert_eq(L.req_off, 0, "no indirect table in a slot");
}

Test(guest_layout, the_device_bounds_what_the_config_asks) {
  dev_limits d = device(1, 0);
  d.max_io_len = 8192;
  d.max_queue_size = 128;
  hwsock_guest_config c = config(0, 64 * MIB);
  guest_layout L;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  cr_assert_eq(L.qsize, 128, "the default, capped by the device");
  cr_assert_eq(L.io_len, 8192);
  c.queue_size = 256;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), HWSOCK_EINVAL);
  c.queue_size = 96;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), HWSOCK_EINVAL, "not 2^n");
  c.queue_size = 0;
  c.io_len = GUEST_MIN_IO_LEN - 1;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), HWSOCK_EINVAL);
  c.io_len = 0;
  d.max_io_len = GUEST_MIN_IO_LEN - 1;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), HWSOCK_EPROTO,
               "the device's own limit is too small");
}

Test(guest_layout, slots_asked_for_must_fit) {
  dev_limits d = device(1, 0);
  hwsock_guest_config c = config(0, 64 * MIB);
  guest_layout L;
  c.slots = 4;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  cr_assert_eq(L.nslots, 4);
  /* room for the rings and two slots only */
  size_t two = L.slot_off + 2 * L.stride;
  c = config(0, two);
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  check_plan(&c, &d, &L);
  cr_assert_eq(L.nslots, 2, "fewer when no number was asked for");
  c.slots = 3;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), HWSOCK_EINVAL);
  c = config(0, L.slot_off + L.stride - 1);
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), HWSOCK_EINVAL, "not one");
  c = config(0, 4096);
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), HWSOCK_EINVAL,
               "not even the rings");
}

Test(guest_layout, event_queue_is_the_last_queue_with_buffers_after_rings) {
  dev_limits d = device(2, HWSOCK_F_EVENT_QUEUE);
  hwsock_guest_config c = config(0x200000, 64 * MIB);
  c.event_queue = 1;
  c.ev_buf_len = 5000;
  guest_layout L;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  check_plan(&c, &d, &L);
  cr_assert_neq(L.features & HWSOCK_F_EVENT_QUEUE, 0);
  cr_assert_eq(L.evq_size, GUEST_EV_QUEUE_SIZE);
  cr_assert_eq(L.qp[1].size, L.evq_size, "one entry per buffer");
  cr_assert_eq(L.ev_buf_len, 5008, "rounded up to 16");

  c.ev_buf_len = HWSOCK_EV_BUF_MIN - 1;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), HWSOCK_EINVAL);
  d = device(1, HWSOCK_F_EVENT_QUEUE);
  c.ev_buf_len = 0;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  cr_assert_eq(L.evq_size, 0, "one queue: no event queue");
  cr_assert_eq(L.features & HWSOCK_F_EVENT_QUEUE, 0);
  d = device(2, 0);
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  cr_assert_eq(L.evq_size, 0, "not offered: none");
}

/* Issue 13: a UDP datagram longer than an event buffer arrived truncated
 * (16,272 bytes of 65,507) where the kernel delivers it whole. By default
 * a buffer holds header + URI area + the largest datagram the device
 * delivers, in 128 buffers (about 8 MiB), unless memory is small. */
Test(guest_layout, default_event_buffers_hold_the_largest_datagram) {
  dev_limits d = device(2, HWSOCK_F_EVENT_QUEUE);
  hwsock_guest_config c = config(0x200000, 64 * MIB);
  c.event_queue = 1;
  guest_layout L;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  check_plan(&c, &d, &L);
  cr_assert_geq(L.ev_buf_len,
                sizeof(hwsock_event) + HWSOCK_EV_URI_AREA + 65535u);
  cr_assert_eq(L.ev_buf_len % 16, 0);
  cr_assert_eq(L.evq_size, GUEST_EV_BIG_QUEUE_SIZE);
  cr_assert_leq((size_t)L.evq_size * L.ev_buf_len, 8500000u,
                "the pool stays about 8 MiB");

  /* more than half of a small memory: 16 KiB buffers, truncation */
  hwsock_guest_config small = config(0x200000, 12 * MIB);
  small.event_queue = 1;
  cr_assert_eq(hwsock__guest_layout(&small, &d, &L), 0);
  check_plan(&small, &d, &L);
  cr_assert_eq(L.ev_buf_len, GUEST_EV_BUF_LEN);
  cr_assert_eq(L.evq_size, GUEST_EV_QUEUE_SIZE);

  /* the device delivers at most max_io_len bytes: no larger buffers */
  d.max_io_len = 30000;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  cr_assert_eq(L.ev_buf_len,
               (sizeof(hwsock_event) + HWSOCK_EV_URI_AREA + 30000u + 15) &
                   ~15u);
  d.max_io_len = 4096; /* below the default: the default */
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  cr_assert_eq(L.ev_buf_len, GUEST_EV_BUF_LEN);
  cr_assert_eq(L.evq_size, GUEST_EV_QUEUE_SIZE);

  /* no datagram sockets, or a length asked for: as before */
  d = device(2, HWSOCK_F_EVENT_QUEUE);
  d.features &= ~(uint64_t)HWSOCK_F_UDP;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  cr_assert_eq(L.ev_buf_len, GUEST_EV_BUF_LEN);
  cr_assert_eq(L.evq_size, GUEST_EV_QUEUE_SIZE);
  d = device(2, HWSOCK_F_EVENT_QUEUE);
  c.ev_buf_len = 16384;
  cr_assert_eq(hwsock__guest_layout(&c, &d, &L), 0);
  cr_assert_eq(L.ev_buf_len, 16384);
  cr_assert_eq(L.evq_size, GUEST_EV_QUEUE_SIZE);
}
