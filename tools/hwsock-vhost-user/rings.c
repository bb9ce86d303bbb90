/* The vrings of a front-end connection: their messages (NUM, ADDR, BASE,
 * KICK/CALL/ERR, ENABLE, GET_VRING_BASE), and the device's start when both
 * rings are complete and enabled, its stop when a ring is stopped. */
#include <string.h>
#include <unistd.h>

#include "vu.h"

/* Stops watching kicks; the device keeps its state (a disabled ring). */
void vu_device_pause(vu_conn *c) {
  if (!c->running)
    return;
  hwsock_uv_close(c->u->adapter);
  c->u->adapter = NULL;
  c->running = 0;
}

/* The device forgets everything the guest set up: sockets close on the
 * host as when a guest dies, and in-band negotiation starts over. */
void vu_device_stop(vu_conn *c, const char *why) {
  vu_device_pause(c);
  if (hwsock_device_status(c->u->dev) != 0) {
    vmm_log(HWSOCK_LOG_INFO, "front-end %u: device reset (%s)", c->id, why);
    hwsock_device_reset(c->u->dev);
  }
}

static int ring_complete(const vu_vring *r) {
  return r->num != 0 && r->have_addr && r->kick_fd >= 0 && r->enabled &&
         !r->stopped;
}

/* The rings' front-end addresses as guest physical ones for the device. */
static int setup_queue(vu_conn *c, unsigned q) {
  const vu_vring *r = &c->vring[q];
  uint64_t d, a, u;
  if (vu_mem_uva_to_gpa(&c->mem, r->desc_uva, hwsock_vring_desc_bytes(r->num),
                        &d) < 0 ||
      vu_mem_uva_to_gpa(&c->mem, r->avail_uva,
                        hwsock_vring_avail_bytes(r->num), &a) < 0 ||
      vu_mem_uva_to_gpa(&c->mem, r->used_uva, hwsock_vring_used_bytes(r->num),
                        &u) < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "front-end %u: ring %u outside guest memory",
            c->id, q);
    return -1;
  }
  int rc = hwsock_device_queue_setup(c->u->dev, q, r->num, d, a, u);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "front-end %u: ring %u: %s", c->id, q,
            hwsock_strerror(rc));
    return -1;
  }
  return 0;
}

/* Starts (or resumes) the device once every ring is complete and enabled,
 * then looks at each available ring: the guest may have kicked before the
 * kick fd was ours. */
void vu_try_start(vu_conn *c) {
  vu *u = c->u;
  if (c->running)
    return;
  for (unsigned q = 0; q < VU_QUEUES; q++)
    if (!ring_complete(&c->vring[q]))
      return;
  for (unsigned q = 0; q < VU_QUEUES; q++) {
    if (c->vring[q].base != 0) {
      /* The device always starts a ring at index 0 (a fresh ring): it
       * cannot resume one in the middle (migration, VM stop/cont). */
      vmm_log(HWSOCK_LOG_ERROR,
              "front-end %u: ring %u: base %u: only fresh rings (base 0) "
              "are supported",
              c->id, q, c->vring[q].base);
      return;
    }
  }
  if (!(hwsock_device_status(u->dev) & HWSOCK_STATUS_DRIVER_OK)) {
    uint64_t ring_bits = VU_F_VERSION_1 | VU_F_EVENT_IDX | VU_F_INDIRECT_DESC;
    int rc = hwsock_device_set_features(u->dev, c->features & ring_bits);
    for (unsigned q = 0; rc == 0 && q < VU_QUEUES; q++)
      rc = setup_queue(c, q) < 0 ? HWSOCK_EINVAL : 0;
    if (rc == 0)
      rc = hwsock_device_start(u->dev);
    if (rc < 0) {
      vmm_log(HWSOCK_LOG_ERROR,
              "front-end %u: cannot start the device (features 0x%llx): %s",
              c->id, (unsigned long long)c->features, hwsock_strerror(rc));
      hwsock_device_reset(u->dev);
      return;
    }
  }
  int rc = hwsock_uv_new(&u->v.loop, u->dev, &u->adapter);
  if (rc == 0)
    rc = hwsock_uv_set_poll(u->adapter, u->v.opt.poll_us);
  for (unsigned q = 0; rc == 0 && q < VU_QUEUES; q++)
    rc = hwsock_uv_watch_kick(u->adapter, q, c->vring[q].kick_fd);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "front-end %u: watching kicks: %s", c->id,
            hwsock_strerror(rc));
    hwsock_uv_close(u->adapter);
    u->adapter = NULL;
    return;
  }
  c->running = 1;
  vmm_log(HWSOCK_LOG_INFO, "front-end %u: device running (%u+%u entries)",
          c->id, c->vring[0].num, c->vring[1].num);
  for (unsigned q = 0; q < VU_QUEUES; q++)
    hwsock_device_kick(u->dev, q);
}

/* ---- device callbacks --------------------------------------------------- */

void vu_notify(void *opaque, unsigned q) {
  vu *u = opaque;
  if (u->conn != NULL && q < VU_QUEUES && u->conn->vring[q].call_fd >= 0)
    hwsock_eventfd_signal(u->conn->vring[q].call_fd);
}

/* vhost-user has no portable way to set the virtio NEEDS_RESET status
 * (only an optional back-end channel): signal each ring's error eventfd
 * (QEMU logs it) and keep refusing until the guest resets the device. */
void vu_needs_reset(void *opaque, const char *why) {
  vu *u = opaque;
  vmm_log(HWSOCK_LOG_ERROR,
          "device needs reset: %s (requests are ignored until the guest "
          "resets the device)",
          why);
  if (u->conn == NULL)
    return;
  for (unsigned q = 0; q < VU_QUEUES; q++)
    if (u->conn->vring[q].err_fd >= 0)
      hwsock_eventfd_signal(u->conn->vring[q].err_fd);
}

/* ---- ring messages ------------------------------------------------------ */

/* The vring index of a state/addr/file message, or -1 (refused). */
static int vring_index(vu_conn *c, const vu_msg *m, uint64_t index) {
  if (index >= VU_QUEUES)
    return vu_refuse(c, m, "no such ring");
  return (int)index;
}

int vu_on_vring_file(vu_conn *c, vu_msg *m) {
  if (vu_want_size(c, m, sizeof(uint64_t)) < 0)
    return -1;
  uint64_t v = m->p.u64;
  if (v & ~(VU_VRING_IDX_MASK | VU_VRING_NOFD_MASK))
    return vu_refuse(c, m, "unknown bits");
  int q = vring_index(c, m, v & VU_VRING_IDX_MASK);
  if (q < 0)
    return -1;
  int nofd = (v & VU_VRING_NOFD_MASK) != 0;
  if (m->nfds != (nofd ? 0u : 1u))
    return vu_refuse(c, m, "fd count");
  vu_vring *r = &c->vring[q];
  int fd = nofd ? -1 : m->fds[0];
  m->nfds = 0; /* taken */
  switch (m->h.request) {
  case VU_SET_VRING_KICK:
    /* the adapter watches the old fd: stop watching before closing it */
    vu_device_pause(c);
    vu_close_fd(&r->kick_fd);
    r->kick_fd = fd;
    r->stopped = 0;
    if (fd < 0)
      vmm_log(HWSOCK_LOG_ERROR,
              "front-end %u: ring %d without kick fd: polling mode is not "
              "supported",
              c->id, q);
    /* Without protocol features a ring starts on its kick fd. */
    if (!(c->features & VU_F_PROTOCOL_FEATURES))
      r->enabled = 1;
    vu_try_start(c);
    break;
  case VU_SET_VRING_CALL:
    vu_close_fd(&r->call_fd);
    r->call_fd = fd;
    break;
  default: /* VU_SET_VRING_ERR */
    vu_close_fd(&r->err_fd);
    r->err_fd = fd;
    break;
  }
  return 0;
}

int vu_on_vring_addr(vu_conn *c, vu_msg *m) {
  if (vu_want_size(c, m, sizeof(vu_vring_addr)) < 0)
    return -1;
  const vu_vring_addr *a = &m->p.addr;
  int q = vring_index(c, m, a->index);
  if (q < 0)
    return -1;
  vu_vring *r = &c->vring[q];
  if (c->running)
    return vu_refuse(c, m, "ring is running");
  if (r->num == 0)
    return vu_refuse(c, m, "SET_VRING_NUM first");
  uint64_t gpa;
  if (vu_mem_uva_to_gpa(&c->mem, a->desc_uva, hwsock_vring_desc_bytes(r->num),
                        &gpa) < 0 ||
      vu_mem_uva_to_gpa(&c->mem, a->avail_uva,
                        hwsock_vring_avail_bytes(r->num), &gpa) < 0 ||
      vu_mem_uva_to_gpa(&c->mem, a->used_uva, hwsock_vring_used_bytes(r->num),
                        &gpa) < 0)
    return vu_refuse(c, m, "ring outside the memory table");
  r->desc_uva = a->desc_uva;
  r->avail_uva = a->avail_uva;
  r->used_uva = a->used_uva;
  r->have_addr = 1;
  vu_try_start(c);
  return 0;
}

int vu_on_vring_state(vu_conn *c, vu_msg *m, vu_payload *reply,
                          uint32_t *reply_size) {
  if (vu_want_size(c, m, sizeof(vu_vring_state)) < 0)
    return -1;
  const vu_vring_state *s = &m->p.state;
  int q = vring_index(c, m, s->index);
  if (q < 0)
    return -1;
  vu_vring *r = &c->vring[q];
  switch (m->h.request) {
  case VU_SET_VRING_NUM:
    if (s->num == 0 || s->num > VU_MAX_QUEUE_SIZE ||
        (s->num & (s->num - 1)) != 0)
      return vu_refuse(c, m, "ring size");
    if (c->running)
      return vu_refuse(c, m, "ring is running");
    r->num = s->num;
    r->have_addr = 0; /* the parts' sizes changed */
    return 0;
  case VU_SET_VRING_BASE:
    if (s->num > 0xffff)
      return vu_refuse(c, m, "base");
    if (c->running)
      return vu_refuse(c, m, "ring is running");
    r->base = s->num;
    return 0;
  case VU_SET_VRING_ENABLE:
    if (s->num > 1)
      return vu_refuse(c, m, "enable is 0 or 1");
    r->enabled = (int)s->num;
    if (r->enabled)
      vu_try_start(c);
    else
      vu_device_pause(c);
    return 0;
  default: { /* VU_GET_VRING_BASE: the ring stops */
    /* What the guest will see as consumed: the device's used index. The
     * device is reset, so requests in flight are dropped, not completed. */
    const hwsock_vring_used *used =
        r->num ? vu_mem_uva_ptr(&c->mem, r->used_uva, 4) : NULL;
    uint16_t idx = used ? hwsock_le16_load(&used->idx) : 0;
    vu_device_stop(c, "ring stopped");
    r->stopped = 1;
    reply->state.index = s->index;
    reply->state.num = idx;
    *reply_size = sizeof(reply->state);
    return 1;
  }
  }
}

void vu_rings_init(vu_conn *c) {
  for (unsigned q = 0; q < VU_QUEUES; q++) {
    vu_vring *r = &c->vring[q];
    memset(r, 0, sizeof(*r));
    r->kick_fd = r->call_fd = r->err_fd = -1;
  }
}

/* Forgets the rings (RESET_OWNER, and the end of a connection). */
void vu_rings_forget(vu_conn *c) {
  for (unsigned q = 0; q < VU_QUEUES; q++) {
    vu_vring *r = &c->vring[q];
    vu_close_fd(&r->kick_fd);
    vu_close_fd(&r->call_fd);
    vu_close_fd(&r->err_fd);
  }
  vu_rings_init(c);
}

