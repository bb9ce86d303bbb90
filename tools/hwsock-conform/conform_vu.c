/* hwsock-conform over vhost-user (conform_vu.h). The message sequence is
 * QEMU 7.2's for vhost-user-vsock-pci (docs/VHOST-USER.md): features,
 * protocol features (CONFIG, REPLY_ACK), owner, call and error eventfds,
 * then per driver start the transport features, the memory table and
 * each ring (NUM, BASE, ADDR, KICK, ENABLE); a ring stop (ENABLE 0 and
 * GET_VRING_BASE) is the device reset. Every reply is awaited with a
 * bounded wait. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conform_vu.h"
#include "scm_send.h"
#include "vhost_user.h"

#define CVU_MEM (4u << 20)     /* guest RAM: one region */
#define CVU_GPA 0x100000ull    /* where it sits in guest physical space */
#define CVU_TRANSPORT                                                        \
  (HWSOCK_F_VERSION_1 | HWSOCK_F_EVENT_IDX | HWSOCK_F_INDIRECT_DESC)
#define CVU_CLASS                                                            \
  (HWSOCK_F_TCP | HWSOCK_F_UDP | HWSOCK_F_INET6 | HWSOCK_F_IPX |             \
   HWSOCK_F_EVENT_QUEUE | HWSOCK_F_SOFT_ERRORS)

static int vfd = -1, memfd = -1;
static int err_fd[2] = {-1, -1};
static uint64_t vu_offered; /* the back-end's vhost-user feature bits */

#define CVU_FAIL(...)                                                        \
  do {                                                                       \
    fprintf(stderr, "hwsock-conform: vhost-user: ");                         \
    fprintf(stderr, __VA_ARGS__);                                            \
    fputc('\n', stderr);                                                     \
    return -1;                                                               \
  } while (0)

static int vsend(uint32_t req, uint32_t flags, const void *p, uint32_t size,
                 const int *fds, unsigned nfds) {
  vu_hdr h = {req, VU_VERSION | flags, size};
  struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)p, size}};
  if (scm_send(vfd, iov, size ? 2 : 1, fds, nfds, MSG_NOSIGNAL) !=
      (ssize_t)(sizeof(h) + size))
    CVU_FAIL("send request %u: %s", req, strerror(errno));
  return 0;
}

/* Reads the reply to req (bounded wait): its payload size, or -1. */
static int vrecv(uint32_t req, void *p, uint32_t cap) {
  struct pollfd pf = {vfd, POLLIN, 0};
  vu_hdr h;
  if (poll(&pf, 1, ADV_WAIT_MS) != 1 ||
      recv(vfd, &h, sizeof(h), MSG_WAITALL) != (ssize_t)sizeof(h))
    CVU_FAIL("no reply to request %u", req);
  if (h.request != req || h.flags != (VU_VERSION | VU_FLAG_REPLY) ||
      h.size > cap)
    CVU_FAIL("bad reply to %u: request %u flags %#x size %u", req, h.request,
             h.flags, h.size);
  if (h.size && recv(vfd, p, h.size, MSG_WAITALL) != (ssize_t)h.size)
    CVU_FAIL("short reply to %u", req);
  return (int)h.size;
}

static int get_u64(uint32_t req, uint64_t *v) {
  if (vsend(req, 0, NULL, 0, NULL, 0) < 0 || vrecv(req, v, sizeof(*v)) != 8)
    CVU_FAIL("request %u: no 8-byte reply", req);
  return 0;
}

/* A request with NEED_REPLY: 0 when the back-end acknowledged it. */
static int acked(uint32_t req, const void *p, uint32_t size, const int *fds,
                 unsigned nfds) {
  uint64_t v = 1;
  if (vsend(req, VU_FLAG_NEED_REPLY, p, size, fds, nfds) < 0 ||
      vrecv(req, &v, sizeof(v)) != 8 || v != 0)
    CVU_FAIL("request %u refused", req);
  return 0;
}

static int set_state(uint32_t req, uint32_t index, uint32_t num) {
  vu_vring_state s = {index, num};
  return vsend(req, 0, &s, sizeof(s), NULL, 0);
}

static int set_file(uint32_t req, uint32_t index, int efd) {
  uint64_t v = index;
  return vsend(req, 0, &v, sizeof(v), &efd, 1);
}

static uint64_t uva(const adv *a, uint64_t gpa) {
  return (uint64_t)(uintptr_t)(a->mem + (gpa - a->gpa));
}

/* The driver's start: rings laid out afresh, the transport features, the
 * memory table, each ring, then NEGOTIATE of the device-class features on
 * queue 0 (a->cfg gets the config space). */
static int start(adv *a, uint64_t features, unsigned qsize) {
  size_t slice = (a->size / a->nq) & ~(size_t)4095;
  for (unsigned q = 0; q < a->nq; q++) {
    if (hwsock_ringtest_init_at(&a->q[q], a->mem + q * slice,
                                a->gpa + q * slice, slice, qsize) != 0)
      CVU_FAIL("ring layout");
    memset(a->done[q], 0, sizeof(a->done[q]));
  }
  uint64_t vf = VU_F_VERSION_1 | VU_F_PROTOCOL_FEATURES;
  if (features & HWSOCK_F_INDIRECT_DESC)
    vf |= vu_offered & VU_F_INDIRECT_DESC;
  if (features & HWSOCK_F_EVENT_IDX)
    vf |= vu_offered & VU_F_EVENT_IDX;
  if (vsend(VU_SET_FEATURES, 0, &vf, sizeof(vf), NULL, 0) < 0)
    return -1;
  vu_memory mt;
  memset(&mt, 0, sizeof(mt));
  mt.nregions = 1;
  mt.regions[0] = (vu_mem_region){a->gpa, a->size, uva(a, a->gpa), 0};
  if (acked(VU_SET_MEM_TABLE, &mt,
            (uint32_t)(offsetof(vu_memory, regions) + sizeof(vu_mem_region)),
            &memfd, 1) < 0)
    return -1;
  for (unsigned q = 0; q < a->nq; q++) {
    hwsock_ringtest *r = &a->q[q];
    vu_vring_addr va = {q, 0, uva(a, r->desc_gpa), uva(a, r->used_gpa),
                        uva(a, r->avail_gpa), 0};
    if (set_state(VU_SET_VRING_NUM, q, qsize) < 0 ||
        set_state(VU_SET_VRING_BASE, q, 0) < 0 ||
        acked(VU_SET_VRING_ADDR, &va, sizeof(va), NULL, 0) < 0 ||
        set_file(VU_SET_VRING_KICK, q, a->kick[q]) < 0)
      return -1;
  }
  for (unsigned q = 0; q < a->nq; q++) {
    vu_vring_state s = {q, 1};
    if (acked(VU_SET_VRING_ENABLE, &s, sizeof(s), NULL, 0) < 0 ||
        set_file(VU_SET_VRING_CALL, q, a->call[q]) < 0)
      return -1;
  }
  uint32_t used = 0;
  size_t mark = hwsock_ringtest_mark(&a->q[0]);
  int head = adv_req(a, 0, HWSOCK_OP_NEGOTIATE, 0, 0x4e45,
                     (uint32_t)(features & CVU_CLASS), 0, NULL, 0, NULL, 0,
                     32 + sizeof(hwsock_wire_config));
  if (head < 0)
    CVU_FAIL("NEGOTIATE: ring full");
  adv_go(a, 0);
  if (adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) < 0)
    CVU_FAIL("NEGOTIATE: no completion");
  used = a->done[0][head].len;
  const hwsock_resp_hdr *rh = adv_resp(a, 0, (uint16_t)head);
  uint32_t st = hwsock_le32_get(&rh->status);
  if (st != 0 || used != 32 + sizeof(hwsock_wire_config))
    CVU_FAIL("NEGOTIATE %#llx: status %u, used len %u",
             (unsigned long long)(features & CVU_CLASS), st, used);
  memcpy(&a->cfg, rh + 1, sizeof(a->cfg));
  hwsock_ringtest_release(&a->q[0], mark);
  return 0;
}

int cvu_attach(adv *a, const char *path) {
  memset(a, 0, sizeof(*a));
  a->reset_code = -1;
  a->sock = -1; /* no transport messages: adv_wait_head polls nothing */
  a->nq = 2;    /* the vsock carrier's two queues */
  for (unsigned q = 0; q < 2; q++)
    a->kick[q] = a->call[q] = err_fd[q] = -1;
  vfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
  if (vfd < 0 || connect(vfd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
    CVU_FAIL("connect %s: %s", path, strerror(errno));
  memfd = memfd_create("hwsock-conform-ram", MFD_CLOEXEC);
  if (memfd < 0 || ftruncate(memfd, CVU_MEM) < 0)
    CVU_FAIL("memfd: %s", strerror(errno));
  a->mem = mmap(NULL, CVU_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (a->mem == MAP_FAILED) {
    a->mem = NULL;
    CVU_FAIL("mmap: %s", strerror(errno));
  }
  a->size = CVU_MEM;
  a->gpa = CVU_GPA;
  for (unsigned q = 0; q < 2; q++) {
    a->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    a->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    err_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->kick[q] < 0 || a->call[q] < 0 || err_fd[q] < 0)
      CVU_FAIL("eventfd: %s", strerror(errno));
  }
  uint64_t pf = 0;
  if (get_u64(VU_GET_FEATURES, &vu_offered) < 0)
    return -1;
  if ((vu_offered & (VU_F_VERSION_1 | VU_F_PROTOCOL_FEATURES)) !=
      (VU_F_VERSION_1 | VU_F_PROTOCOL_FEATURES))
    CVU_FAIL("features %#llx lack VERSION_1 or PROTOCOL_FEATURES",
             (unsigned long long)vu_offered);
  if (get_u64(VU_GET_PROTOCOL_FEATURES, &pf) < 0)
    return -1;
  if (!(pf & VU_PF_REPLY_ACK))
    CVU_FAIL("protocol features %#llx lack REPLY_ACK",
             (unsigned long long)pf);
  pf &= VU_PF_CONFIG | VU_PF_REPLY_ACK;
  if (vsend(VU_SET_PROTOCOL_FEATURES, 0, &pf, sizeof(pf), NULL, 0) < 0 ||
      vsend(VU_SET_OWNER, 0, NULL, 0, NULL, 0) < 0)
    return -1;
  for (unsigned q = 0; q < 2; q++)
    if (set_file(VU_SET_VRING_CALL, q, a->call[q]) < 0 ||
        set_file(VU_SET_VRING_ERR, q, err_fd[q]) < 0)
      return -1;
  /* the transport bits a driver takes when offered, and no device-class
   * bit: NEGOTIATE cannot be refused, and returns what the device offers */
  return start(a, CVU_TRANSPORT, 64);
}

int cvu_reset_setup(adv *a, uint64_t features, unsigned qsize) {
  for (unsigned q = 0; q < a->nq; q++)
    if (set_state(VU_SET_VRING_ENABLE, q, 0) < 0)
      return -1;
  for (unsigned q = 0; q < a->nq; q++) {
    vu_vring_state s = {q, 0};
    if (vsend(VU_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0) < 0 ||
        vrecv(VU_GET_VRING_BASE, &s, sizeof(s)) != sizeof(s))
      CVU_FAIL("GET_VRING_BASE %u", q);
  }
  uint64_t v;
  for (unsigned q = 0; q < a->nq; q++) {
    (void)!read(err_fd[q], &v, sizeof(v));
    (void)!read(a->call[q], &v, sizeof(v));
  }
  a->reset_code = -1;
  return start(a, features, qsize);
}

int cvu_wait_reset(adv *a, int timeout_ms) {
  struct pollfd p[2] = {{err_fd[0], POLLIN, 0}, {err_fd[1], POLLIN, 0}};
  if (poll(p, 2, timeout_ms) <= 0)
    return -1;
  uint64_t v;
  for (unsigned q = 0; q < 2; q++)
    (void)!read(err_fd[q], &v, sizeof(v));
  a->reset_code = 0;
  return 0;
}

void cvu_detach(adv *a) {
  for (unsigned q = 0; q < 2; q++) {
    if (err_fd[q] >= 0)
      close(err_fd[q]);
    err_fd[q] = -1;
  }
  if (memfd >= 0)
    close(memfd);
  if (vfd >= 0)
    close(vfd);
  memfd = vfd = -1;
  adv_detach(a); /* the mapping, kick and call eventfds */
}
