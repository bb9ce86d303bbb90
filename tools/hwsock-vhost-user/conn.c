/* One front-end connection: reads vhost-user messages, keeps the vrings'
 * state, and starts the device when both rings are complete and enabled,
 * stops it when a ring is stopped (GET_VRING_BASE) or the front-end goes.
 *
 * Messages are read whole when the socket is readable (the socket is
 * blocking with a receive timeout: a front-end that sends half a message
 * and stalls is disconnected, not waited for). */
#define _GNU_SOURCE /* SO_PEERCRED, MSG_CMSG_CLOEXEC */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "vu.h"

#define FATAL (-2) /* handler result: end the connection */

static const char *req_name(uint32_t r) {
  switch (r) {
  case VU_GET_FEATURES: return "GET_FEATURES";
  case VU_SET_FEATURES: return "SET_FEATURES";
  case VU_SET_OWNER: return "SET_OWNER";
  case VU_RESET_OWNER: return "RESET_OWNER";
  case VU_SET_MEM_TABLE: return "SET_MEM_TABLE";
  case VU_SET_VRING_NUM: return "SET_VRING_NUM";
  case VU_SET_VRING_ADDR: return "SET_VRING_ADDR";
  case VU_SET_VRING_BASE: return "SET_VRING_BASE";
  case VU_GET_VRING_BASE: return "GET_VRING_BASE";
  case VU_SET_VRING_KICK: return "SET_VRING_KICK";
  case VU_SET_VRING_CALL: return "SET_VRING_CALL";
  case VU_SET_VRING_ERR: return "SET_VRING_ERR";
  case VU_GET_PROTOCOL_FEATURES: return "GET_PROTOCOL_FEATURES";
  case VU_SET_PROTOCOL_FEATURES: return "SET_PROTOCOL_FEATURES";
  case VU_SET_VRING_ENABLE: return "SET_VRING_ENABLE";
  case VU_GET_CONFIG: return "GET_CONFIG";
  case VU_SET_CONFIG: return "SET_CONFIG";
  default: return "unknown";
  }
}

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* ---- device start / stop ------------------------------------------------ */

/* Stops watching kicks; the device keeps its state (a disabled ring). */
static void pause_device(vu_conn *c) {
  if (!c->running)
    return;
  hwsock_uv_close(c->u->adapter);
  c->u->adapter = NULL;
  c->running = 0;
}

/* The device forgets everything the guest set up: sockets close on the
 * host as when a guest dies, and in-band negotiation starts over. */
static void stop_device(vu_conn *c, const char *why) {
  pause_device(c);
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
static void try_start(vu_conn *c) {
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

/* ---- messages ----------------------------------------------------------- */

typedef struct msg {
  vu_hdr h;
  vu_payload p;
  int fds[VU_MAX_FDS];
  unsigned nfds;
  int fds_overflow; /* more fds came than we take: refused */
} msg;

/* 1 with a whole message, 0 on EOF, -1 on a broken stream (reported). */
static int read_msg(vu_conn *c, msg *m) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
    struct cmsghdr align;
  } cbuf;
  struct iovec iov = {&m->h, sizeof(m->h)};
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf.buf;
  mh.msg_controllen = sizeof(cbuf.buf);
  m->nfds = 0;
  m->fds_overflow = 0;
  ssize_t n;
  do
    n = recvmsg(c->fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
       cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
      if (m->nfds < VU_MAX_FDS)
        m->fds[m->nfds++] = fd;
      else {
        close(fd);
        m->fds_overflow = 1;
      }
    }
  }
  if (mh.msg_flags & MSG_CTRUNC)
    m->fds_overflow = 1;
  if (n == 0)
    return 0;
  if (n != (ssize_t)sizeof(m->h)) {
    vmm_log(HWSOCK_LOG_ERROR, "front-end %u: %s", c->id,
            n < 0 ? strerror(errno) : "short message header");
    return -1;
  }
  if ((m->h.flags & VU_VERSION_MASK) != VU_VERSION ||
      (m->h.flags & VU_FLAG_REPLY) || m->h.size > sizeof(m->p)) {
    vmm_log(HWSOCK_LOG_ERROR,
            "front-end %u: bad message header (request %u flags 0x%x size %u)",
            c->id, m->h.request, m->h.flags, m->h.size);
    return -1;
  }
  memset(&m->p, 0, sizeof(m->p));
  if (m->h.size > 0) {
    do
      n = recv(c->fd, &m->p, m->h.size, MSG_WAITALL);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)m->h.size) {
      vmm_log(HWSOCK_LOG_ERROR, "front-end %u: %s: payload %s", c->id,
              req_name(m->h.request), n < 0 ? strerror(errno) : "cut short");
      return -1;
    }
  }
  return 1;
}

static int send_reply(vu_conn *c, uint32_t request, const void *p,
                      uint32_t size) {
  vu_hdr h = {request, VU_VERSION | VU_FLAG_REPLY, size};
  struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)p, size}};
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = size ? 2 : 1;
  ssize_t n;
  do
    n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)(sizeof(h) + size)) {
    vmm_log(HWSOCK_LOG_ERROR, "front-end %u: reply to %s: %s", c->id,
            req_name(request), n < 0 ? strerror(errno) : "short write");
    return -1;
  }
  return 0;
}

/* A refused message: logged; the front-end learns it by REPLY_ACK. */
static int refuse(vu_conn *c, const msg *m, const char *why) {
  vmm_log(HWSOCK_LOG_ERROR, "front-end %u: %s refused: %s", c->id,
          req_name(m->h.request), why);
  return -1;
}

static int want_size(vu_conn *c, const msg *m, uint32_t size) {
  if (m->h.size == size)
    return 0;
  return refuse(c, m, "payload size");
}

/* The vring index of a state/addr/file message, or -1 (refused). */
static int vring_index(vu_conn *c, const msg *m, uint64_t index) {
  if (index >= VU_QUEUES)
    return refuse(c, m, "no such ring");
  return (int)index;
}

static int on_set_mem_table(vu_conn *c, msg *m) {
  const vu_memory *mt = &m->p.memory;
  if (m->h.size < offsetof(vu_memory, regions))
    return refuse(c, m, "payload size");
  if (mt->nregions == 0 || mt->nregions > VU_MAX_REGIONS)
    return refuse(c, m, "region count");
  if (m->h.size != offsetof(vu_memory, regions) +
                       mt->nregions * sizeof(vu_mem_region))
    return refuse(c, m, "payload size");
  if (m->nfds != mt->nregions)
    return refuse(c, m, "one fd per region");
  if (hwsock_device_status(c->u->dev) != 0) {
    /* A new table while the guest runs (memory hot-plug): the device
     * cannot move its rings to new mappings; it is reset and stays stopped
     * until the guest sets the rings up again. */
    stop_device(c, "new memory table");
    for (unsigned q = 0; q < VU_QUEUES; q++)
      c->vring[q].stopped = 1;
  }
  if (vu_mem_set(c, mt, m->fds, m->nfds) < 0)
    return -1;
  vmm_log(HWSOCK_LOG_INFO, "front-end %u: memory table of %u regions", c->id,
          c->mem.n);
  try_start(c);
  return 0;
}

static int on_vring_file(vu_conn *c, msg *m) {
  if (want_size(c, m, sizeof(uint64_t)) < 0)
    return -1;
  uint64_t v = m->p.u64;
  if (v & ~(VU_VRING_IDX_MASK | VU_VRING_NOFD_MASK))
    return refuse(c, m, "unknown bits");
  int q = vring_index(c, m, v & VU_VRING_IDX_MASK);
  if (q < 0)
    return -1;
  int nofd = (v & VU_VRING_NOFD_MASK) != 0;
  if (m->nfds != (nofd ? 0u : 1u))
    return refuse(c, m, "fd count");
  vu_vring *r = &c->vring[q];
  int fd = nofd ? -1 : m->fds[0];
  m->nfds = 0; /* taken */
  switch (m->h.request) {
  case VU_SET_VRING_KICK:
    /* the adapter watches the old fd: stop watching before closing it */
    pause_device(c);
    close_fd(&r->kick_fd);
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
    try_start(c);
    break;
  case VU_SET_VRING_CALL:
    close_fd(&r->call_fd);
    r->call_fd = fd;
    break;
  default: /* VU_SET_VRING_ERR */
    close_fd(&r->err_fd);
    r->err_fd = fd;
    break;
  }
  return 0;
}

static int on_vring_addr(vu_conn *c, msg *m) {
  if (want_size(c, m, sizeof(vu_vring_addr)) < 0)
    return -1;
  const vu_vring_addr *a = &m->p.addr;
  int q = vring_index(c, m, a->index);
  if (q < 0)
    return -1;
  vu_vring *r = &c->vring[q];
  if (c->running)
    return refuse(c, m, "ring is running");
  if (r->num == 0)
    return refuse(c, m, "SET_VRING_NUM first");
  uint64_t gpa;
  if (vu_mem_uva_to_gpa(&c->mem, a->desc_uva, hwsock_vring_desc_bytes(r->num),
                        &gpa) < 0 ||
      vu_mem_uva_to_gpa(&c->mem, a->avail_uva,
                        hwsock_vring_avail_bytes(r->num), &gpa) < 0 ||
      vu_mem_uva_to_gpa(&c->mem, a->used_uva, hwsock_vring_used_bytes(r->num),
                        &gpa) < 0)
    return refuse(c, m, "ring outside the memory table");
  r->desc_uva = a->desc_uva;
  r->avail_uva = a->avail_uva;
  r->used_uva = a->used_uva;
  r->have_addr = 1;
  try_start(c);
  return 0;
}

static int on_vring_state(vu_conn *c, msg *m, vu_payload *reply,
                          uint32_t *reply_size) {
  if (want_size(c, m, sizeof(vu_vring_state)) < 0)
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
      return refuse(c, m, "ring size");
    if (c->running)
      return refuse(c, m, "ring is running");
    r->num = s->num;
    r->have_addr = 0; /* the parts' sizes changed */
    return 0;
  case VU_SET_VRING_BASE:
    if (s->num > 0xffff)
      return refuse(c, m, "base");
    if (c->running)
      return refuse(c, m, "ring is running");
    r->base = s->num;
    return 0;
  case VU_SET_VRING_ENABLE:
    if (s->num > 1)
      return refuse(c, m, "enable is 0 or 1");
    r->enabled = (int)s->num;
    if (r->enabled)
      try_start(c);
    else
      pause_device(c);
    return 0;
  default: { /* VU_GET_VRING_BASE: the ring stops */
    /* What the guest will see as consumed: the device's used index. The
     * device is reset, so requests in flight are dropped, not completed. */
    const hwsock_vring_used *used =
        r->num ? vu_mem_uva_ptr(&c->mem, r->used_uva, 4) : NULL;
    uint16_t idx = used ? hwsock_le16_load(&used->idx) : 0;
    stop_device(c, "ring stopped");
    r->stopped = 1;
    reply->state.index = s->index;
    reply->state.num = idx;
    *reply_size = sizeof(reply->state);
    return 1;
  }
  }
}

/* The vsock carrier's config space: le64 guest_cid. Other front-ends
 * (generic vhost-user devices) read whatever they read: the rest is 0. */
static int on_config(vu_conn *c, msg *m, vu_payload *reply,
                     uint32_t *reply_size) {
  const vu_config *cf = &m->p.config;
  if (m->h.size < VU_CONFIG_HDR_SIZE || cf->size > VU_MAX_CONFIG_SIZE ||
      m->h.size != VU_CONFIG_HDR_SIZE + cf->size ||
      cf->offset > VU_MAX_CONFIG_SIZE - cf->size)
    return refuse(c, m, "config size");
  if (m->h.request == VU_SET_CONFIG)
    return refuse(c, m, "the config space is read-only");
  uint8_t space[VU_MAX_CONFIG_SIZE];
  memset(space, 0, sizeof(space));
  hwsock_le64_set((hwsock_le64 *)space, c->u->cid);
  reply->config.offset = cf->offset;
  reply->config.size = cf->size;
  reply->config.flags = 0;
  memcpy(reply->config.data, space + cf->offset, cf->size);
  *reply_size = (uint32_t)(VU_CONFIG_HDR_SIZE + cf->size);
  return 1;
}

static void init_rings(vu_conn *c) {
  for (unsigned q = 0; q < VU_QUEUES; q++) {
    vu_vring *r = &c->vring[q];
    memset(r, 0, sizeof(*r));
    r->kick_fd = r->call_fd = r->err_fd = -1;
  }
}

/* Forgets the rings (RESET_OWNER, and the end of a connection). */
static void forget_rings(vu_conn *c) {
  for (unsigned q = 0; q < VU_QUEUES; q++) {
    vu_vring *r = &c->vring[q];
    close_fd(&r->kick_fd);
    close_fd(&r->call_fd);
    close_fd(&r->err_fd);
  }
  init_rings(c);
}

/* 0 (done), 1 (reply filled), -1 (refused) or FATAL. */
static int handle(vu_conn *c, msg *m, vu_payload *reply, uint32_t *reply_size) {
  switch (m->h.request) {
  case VU_GET_FEATURES:
  case VU_GET_PROTOCOL_FEATURES:
    if (m->h.size != 0 && m->h.size != sizeof(uint64_t))
      return refuse(c, m, "payload size");
    reply->u64 = m->h.request == VU_GET_FEATURES ? VU_OFFERED_FEATURES
                                                  : VU_OFFERED_PROTOCOL;
    *reply_size = sizeof(uint64_t);
    return 1;
  case VU_SET_FEATURES:
    if (want_size(c, m, sizeof(uint64_t)) < 0)
      return -1;
    if (m->p.u64 & ~VU_OFFERED_FEATURES)
      return refuse(c, m, "features not offered");
    if (c->running && m->p.u64 != c->features)
      return refuse(c, m, "device is running");
    c->features = m->p.u64;
    return 0;
  case VU_SET_PROTOCOL_FEATURES:
    if (want_size(c, m, sizeof(uint64_t)) < 0)
      return -1;
    if (m->p.u64 & ~VU_OFFERED_PROTOCOL)
      return refuse(c, m, "protocol features not offered");
    c->pfeatures = m->p.u64;
    return 0;
  case VU_SET_OWNER:
    return 0;
  case VU_RESET_OWNER:
    stop_device(c, "RESET_OWNER");
    forget_rings(c);
    c->features = 0;
    return 0;
  case VU_SET_MEM_TABLE:
    return on_set_mem_table(c, m);
  case VU_SET_VRING_NUM:
  case VU_SET_VRING_BASE:
  case VU_GET_VRING_BASE:
  case VU_SET_VRING_ENABLE:
    return on_vring_state(c, m, reply, reply_size);
  case VU_SET_VRING_ADDR:
    return on_vring_addr(c, m);
  case VU_SET_VRING_KICK:
  case VU_SET_VRING_CALL:
  case VU_SET_VRING_ERR:
    return on_vring_file(c, m);
  case VU_GET_CONFIG:
  case VU_SET_CONFIG:
    return on_config(c, m, reply, reply_size);
  default:
    vmm_log(HWSOCK_LOG_ERROR, "front-end %u: request %u not supported", c->id,
            m->h.request);
    return -1;
  }
}

static void process(vu_conn *c, msg *m) {
  vu_payload reply;
  uint32_t reply_size = 0;
  memset(&reply, 0, sizeof(reply));
  vmm_log(HWSOCK_LOG_DEBUG, "front-end %u: %s (%u bytes, %u fds)", c->id,
          req_name(m->h.request), m->h.size, m->nfds);
  int rc = m->fds_overflow ? refuse(c, m, "too many fds")
                           : handle(c, m, &reply, &reply_size);
  for (unsigned i = 0; i < m->nfds; i++) /* fds nobody took */
    close_fd(&m->fds[i]);
  if (rc == FATAL) {
    vu_conn_close(c, "protocol error");
    return;
  }
  if (rc == 1) {
    if (send_reply(c, m->h.request, &reply, reply_size) < 0)
      vu_conn_close(c, "cannot reply");
    return;
  }
  /* REPLY_ACK: the messages without a reply of their own get 0 or 1. */
  if ((m->h.flags & VU_FLAG_NEED_REPLY) && (c->pfeatures & VU_PF_REPLY_ACK)) {
    uint64_t status = rc < 0 ? 1 : 0;
    if (send_reply(c, m->h.request, &status, sizeof(status)) < 0)
      vu_conn_close(c, "cannot reply");
  }
}

static void on_readable(uv_poll_t *h, int status, int events) {
  vu_conn *c = h->data;
  if (c->closing)
    return;
  if (status < 0) {
    vu_conn_close(c, uv_strerror(status));
    return;
  }
  msg m;
  int rc = read_msg(c, &m);
  if (rc <= 0) {
    for (unsigned i = 0; i < m.nfds; i++)
      close_fd(&m.fds[i]);
    vu_conn_close(c, rc == 0 ? "the front-end hung up" : "broken message");
    return;
  }
  process(c, &m);
}

/* ---- lifetime ----------------------------------------------------------- */

static void on_poll_closed(uv_handle_t *h) {
  vu_conn *c = h->data;
  vu *u = c->u;
  close(c->fd);
  free(c);
  vu_listen_resume(u);
}

void vu_conn_close(vu_conn *c, const char *why) {
  if (c->closing)
    return;
  c->closing = 1;
  vmm_log(HWSOCK_LOG_INFO, "front-end %u: gone: %s", c->id, why);
  stop_device(c, "front-end gone");
  forget_rings(c);
  hwsock_device_clear_regions(c->u->dev);
  vu_mem_clear(c);
  c->u->conn = NULL;
  uv_close((uv_handle_t *)&c->poll, on_poll_closed);
}

void vu_conn_accept(vu *u, int fd) {
  vu_conn *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    vmm_log(HWSOCK_LOG_ERROR, "front-end: out of memory");
    close(fd);
    vu_listen_resume(u);
    return;
  }
  c->u = u;
  c->fd = fd;
  c->id = ++u->next_conn;
  c->pid = -1;
  init_rings(c);
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
    c->pid = cred.pid;
  /* Blocking with timeouts: a message is read whole once it starts. */
  struct timeval tv = {VU_IO_TIMEOUT_S, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int rc = uv_poll_init(&u->v.loop, &c->poll, fd);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "front-end: %s", uv_strerror(rc));
    close(fd);
    free(c);
    vu_listen_resume(u);
    return;
  }
  c->poll.data = c;
  u->conn = c;
  /* uv_poll_init made it nonblocking; readiness is all we want of libuv */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
    rc = uv_translate_sys_error(errno);
  if (rc == 0)
    rc = uv_poll_start(&c->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "front-end %u: %s", c->id, uv_strerror(rc));
    vu_conn_close(c, "setup failed");
    return;
  }
  vmm_log(HWSOCK_LOG_INFO, "front-end %u connected (pid %ld)", c->id, c->pid);
}
