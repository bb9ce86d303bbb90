/* One front-end connection: reads vhost-user messages, checks them, hands
 * the ring messages to rings.c, answers (replies and REPLY_ACK), and ends
 * the connection when the front-end goes or breaks the stream.
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

void vu_close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* ---- messages ----------------------------------------------------------- */

/* 1 with a whole message, 0 on EOF, -1 on a broken stream (reported). */
static int read_msg(vu_conn *c, vu_msg *m) {
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
int vu_refuse(vu_conn *c, const vu_msg *m, const char *why) {
  vmm_log(HWSOCK_LOG_ERROR, "front-end %u: %s refused: %s", c->id,
          req_name(m->h.request), why);
  return -1;
}

int vu_want_size(vu_conn *c, const vu_msg *m, uint32_t size) {
  if (m->h.size == size)
    return 0;
  return vu_refuse(c, m, "payload size");
}

static int on_set_mem_table(vu_conn *c, vu_msg *m) {
  const vu_memory *mt = &m->p.memory;
  if (m->h.size < offsetof(vu_memory, regions))
    return vu_refuse(c, m, "payload size");
  if (mt->nregions == 0 || mt->nregions > VU_MAX_REGIONS)
    return vu_refuse(c, m, "region count");
  if (m->h.size != offsetof(vu_memory, regions) +
                       mt->nregions * sizeof(vu_mem_region))
    return vu_refuse(c, m, "payload size");
  if (m->nfds != mt->nregions)
    return vu_refuse(c, m, "one fd per region");
  if (hwsock_device_status(c->u->dev) != 0) {
    /* A new table while the guest runs (memory hot-plug): the device
     * cannot move its rings to new mappings; it is reset and stays stopped
     * until the guest sets the rings up again. */
    vu_device_stop(c, "new memory table");
    for (unsigned q = 0; q < VU_QUEUES; q++)
      c->vring[q].stopped = 1;
  }
  if (vu_mem_set(c, mt, m->fds, m->nfds) < 0)
    return -1;
  vmm_log(HWSOCK_LOG_INFO, "front-end %u: memory table of %u regions", c->id,
          c->mem.n);
  vu_try_start(c);
  return 0;
}

/* The vsock carrier's config space: le64 guest_cid. Other front-ends
 * (generic vhost-user devices) read whatever they read: the rest is 0. */
static int on_config(vu_conn *c, vu_msg *m, vu_payload *reply,
                     uint32_t *reply_size) {
  const vu_config *cf = &m->p.config;
  if (m->h.size < VU_CONFIG_HDR_SIZE || cf->size > VU_MAX_CONFIG_SIZE ||
      m->h.size != VU_CONFIG_HDR_SIZE + cf->size ||
      cf->offset > VU_MAX_CONFIG_SIZE - cf->size)
    return vu_refuse(c, m, "config size");
  if (m->h.request == VU_SET_CONFIG)
    return vu_refuse(c, m, "the config space is read-only");
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

/* 0 (done), 1 (reply filled) or -1 (refused). */
static int handle(vu_conn *c, vu_msg *m, vu_payload *reply,
                  uint32_t *reply_size) {
  switch (m->h.request) {
  case VU_GET_FEATURES:
  case VU_GET_PROTOCOL_FEATURES:
    if (m->h.size != 0 && m->h.size != sizeof(uint64_t))
      return vu_refuse(c, m, "payload size");
    reply->u64 = m->h.request == VU_GET_FEATURES ? VU_OFFERED_FEATURES
                                                  : VU_OFFERED_PROTOCOL;
    *reply_size = sizeof(uint64_t);
    return 1;
  case VU_SET_FEATURES:
    if (vu_want_size(c, m, sizeof(uint64_t)) < 0)
      return -1;
    if (m->p.u64 & ~VU_OFFERED_FEATURES)
      return vu_refuse(c, m, "features not offered");
    if (c->running && m->p.u64 != c->features)
      return vu_refuse(c, m, "device is running");
    c->features = m->p.u64;
    return 0;
  case VU_SET_PROTOCOL_FEATURES:
    if (vu_want_size(c, m, sizeof(uint64_t)) < 0)
      return -1;
    if (m->p.u64 & ~VU_OFFERED_PROTOCOL)
      return vu_refuse(c, m, "protocol features not offered");
    c->pfeatures = m->p.u64;
    return 0;
  case VU_SET_OWNER:
    return 0;
  case VU_RESET_OWNER:
    vu_device_stop(c, "RESET_OWNER");
    vu_rings_forget(c);
    c->features = 0;
    return 0;
  case VU_SET_MEM_TABLE:
    return on_set_mem_table(c, m);
  case VU_SET_VRING_NUM:
  case VU_SET_VRING_BASE:
  case VU_GET_VRING_BASE:
  case VU_SET_VRING_ENABLE:
    return vu_on_vring_state(c, m, reply, reply_size);
  case VU_SET_VRING_ADDR:
    return vu_on_vring_addr(c, m);
  case VU_SET_VRING_KICK:
  case VU_SET_VRING_CALL:
  case VU_SET_VRING_ERR:
    return vu_on_vring_file(c, m);
  case VU_GET_CONFIG:
  case VU_SET_CONFIG:
    return on_config(c, m, reply, reply_size);
  default:
    vmm_log(HWSOCK_LOG_ERROR, "front-end %u: request %u not supported", c->id,
            m->h.request);
    return -1;
  }
}

static void process(vu_conn *c, vu_msg *m) {
  vu_payload reply;
  uint32_t reply_size = 0;
  memset(&reply, 0, sizeof(reply));
  vmm_log(HWSOCK_LOG_DEBUG, "front-end %u: %s (%u bytes, %u fds)", c->id,
          req_name(m->h.request), m->h.size, m->nfds);
  int rc = m->fds_overflow ? vu_refuse(c, m, "too many fds")
                           : handle(c, m, &reply, &reply_size);
  for (unsigned i = 0; i < m->nfds; i++) /* fds nobody took */
    vu_close_fd(&m->fds[i]);
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
  vu_msg m;
  int rc = read_msg(c, &m);
  if (rc <= 0) {
    for (unsigned i = 0; i < m.nfds; i++)
      vu_close_fd(&m.fds[i]);
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
  vu_device_stop(c, "front-end gone");
  vu_rings_forget(c);
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
  vu_rings_init(c);
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
