/* A test front-end that plays QEMU 7.2 (and the guest driver) against
 * hwsock-vhost-user:
 *
 *   usage: vu_frontend BACKEND
 *
 * It starts an echo server on 127.0.0.1 and the back-end, then:
 *   1. front-end A: QEMU 7.2's message sequence with a memfd as guest RAM
 *      (two regions, as q35 lays it out), rings built in it, NEGOTIATE
 *      posted before the rings are enabled (the back-end must scan them),
 *      OPEN + CONNECT + SEND + RECV through the echo server, the bytes
 *      checked, then the device stopped as QEMU stops it;
 *   2. front-end B: malformed messages, each refused (REPLY_ACK) with the
 *      back-end still answering; a message too large ends the connection;
 *   3. front-end C: the whole of 1 again: a new front-end is accepted and
 *      the device starts over (NEGOTIATE succeeds again);
 *   4. front-end D: the guest driver reloaded (rings stopped and set up
 *      again: negotiation starts over), then a broken ring: the error
 *      eventfds fire, and after the guest's reset the device serves again;
 *   5. front-end E dies with a host connection open and a RECV pending: the
 *      connection's peer sees EOF, and front-end F is served.
 * The back-end must still run at the end and exit 0 on SIGTERM, and its
 * --pcap file must hold the offloaded flows.
 * Prints "vu_frontend: N checks passed"; exits non-zero at the first
 * failure. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hwsock/common.h"
#include "support/vring_builder.h"
#include "scm_send.h"
#include "vhost_user.h"

#define MEM_SIZE (4u << 20)
#define LOW_END 0xa0000u   /* region 0: [0, 640 KiB) */
#define HIGH_START 0xc0000u /* region 1: [768 KiB, MEM_SIZE) */
#define RING_GPA(q) (0x100000u + (q) * 0x80000u)
#define RING_MEM 0x80000u
#define QSIZE 128u
#define TIMEOUT_MS 10000

static int checks;
static pid_t backend_pid = -1, echo_pid = -1;
static char workdir[] = "/tmp/vu_frontend.XXXXXX";
static char sock[64], ctl[64], pcap[64];

static void cleanup(void) {
  unlink(sock);
  unlink(ctl);
  unlink(pcap);
  rmdir(workdir);
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "vu_frontend: FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (backend_pid > 0)
    kill(backend_pid, SIGKILL);
  if (echo_pid > 0)
    kill(echo_pid, SIGKILL);
  cleanup();
  exit(1);
}

#define CHECK(cond, ...)                                                      \
  do {                                                                        \
    if (!(cond))                                                              \
      die(__VA_ARGS__);                                                       \
    checks++;                                                                 \
  } while (0)

/* ---- processes ---------------------------------------------------------- */

static void echo_serve(int lfd) {
  for (;;) {
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
      continue;
    char buf[4096];
    ssize_t n;
    while ((n = read(c, buf, sizeof(buf))) > 0)
      if (write(c, buf, (size_t)n) != n)
        break;
    close(c);
  }
}

static unsigned start_echo(void) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
      listen(lfd, 8) < 0 || getsockname(lfd, (struct sockaddr *)&a, &len) < 0)
    die("echo server: %s", strerror(errno));
  echo_pid = fork();
  if (echo_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    echo_serve(lfd);
  }
  close(lfd);
  return ntohs(a.sin_port);
}

static void start_backend(const char *bin) {
  int p[2];
  if (pipe(p) < 0)
    die("pipe");
  backend_pid = fork();
  if (backend_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(p[0]);
    char fd[16];
    snprintf(fd, sizeof(fd), "%d", p[1]);
    execl(bin, bin, "--socket", sock, "--control", ctl, "--ready-fd", fd,
          "--pcap", pcap, "-v", "-v", (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char buf[16] = "";
  ssize_t n = read(p[0], buf, sizeof(buf) - 1);
  close(p[0]);
  CHECK(n > 0 && strncmp(buf, "ready", 5) == 0, "back-end not ready");
}

/* A --socket path that is a regular file is refused and left alone. */
static void taken_path(const char *bin) {
  char path[80];
  snprintf(path, sizeof(path), "%s/taken", workdir);
  FILE *f = fopen(path, "w");
  if (f == NULL || fputs("not a socket\n", f) < 0 || fclose(f) != 0)
    die("%s: %s", path, strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    execl(bin, bin, "--socket", path, "--control", "", (char *)NULL);
    _exit(127);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) != 0 &&
            WEXITSTATUS(st) != 127,
        "back-end on a regular file: status 0x%x", st);
  char buf[32] = "";
  f = fopen(path, "r");
  CHECK(f != NULL && fgets(buf, sizeof(buf), f) != NULL &&
            strcmp(buf, "not a socket\n") == 0,
        "the back-end removed or changed a file at its --socket path");
  fclose(f);
  unlink(path);
}

static void backend_alive(void) {
  int st;
  CHECK(waitpid(backend_pid, &st, WNOHANG) == 0, "the back-end died");
}

/* ---- the vhost-user connection ------------------------------------------ */

static int vu_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
    die("connect %s: %s", path, strerror(errno));
  struct timeval tv = {TIMEOUT_MS / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

static void vu_send(int fd, uint32_t req, uint32_t flags, const void *p,
                    uint32_t size, const int *fds, unsigned nfds) {
  vu_hdr h = {req, VU_VERSION | flags, size};
  struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)p, size}};
  if (scm_send(fd, iov, size ? 2 : 1, fds, nfds, MSG_NOSIGNAL) !=
      (ssize_t)(sizeof(h) + size))
    die("send request %u: %s", req, strerror(errno));
}

/* Reads a reply to req; returns its payload size. */
static uint32_t vu_recv(int fd, uint32_t req, void *p, uint32_t cap) {
  vu_hdr h;
  if (recv(fd, &h, sizeof(h), MSG_WAITALL) != (ssize_t)sizeof(h))
    die("no reply to request %u", req);
  if (h.request != req || h.flags != (VU_VERSION | VU_FLAG_REPLY) ||
      h.size > cap)
    die("bad reply to %u: request %u flags 0x%x size %u", req, h.request,
        h.flags, h.size);
  if (h.size && recv(fd, p, h.size, MSG_WAITALL) != (ssize_t)h.size)
    die("short reply to %u", req);
  return h.size;
}

static uint64_t get_u64(int fd, uint32_t req) {
  uint64_t v = 0;
  vu_send(fd, req, 0, NULL, 0, NULL, 0);
  CHECK(vu_recv(fd, req, &v, sizeof(v)) == 8, "reply size of %u", req);
  return v;
}

/* A request with NEED_REPLY: the REPLY_ACK status (0 = accepted). */
static uint64_t acked(int fd, uint32_t req, const void *p, uint32_t size,
                      const int *fds, unsigned nfds) {
  uint64_t v = 0xdead;
  vu_send(fd, req, VU_FLAG_NEED_REPLY, p, size, fds, nfds);
  CHECK(vu_recv(fd, req, &v, sizeof(v)) == 8, "ack size of %u", req);
  return v;
}

static void set_u64(int fd, uint32_t req, uint64_t v) {
  vu_send(fd, req, 0, &v, sizeof(v), NULL, 0);
}

static void set_state(int fd, uint32_t req, uint32_t index, uint32_t num) {
  vu_vring_state s = {index, num};
  vu_send(fd, req, 0, &s, sizeof(s), NULL, 0);
}

static void set_file(int fd, uint32_t req, uint32_t index, int efd) {
  uint64_t v = index;
  vu_send(fd, req, 0, &v, sizeof(v), &efd, 1);
}

/* ---- guest RAM and the guest's side of the rings ------------------------- */

typedef struct guest {
  int memfd;
  uint8_t *ram;
  vrb ring[2];
  int kick[2], call[2], err[2];
} guest;

static void guest_init(guest *g) {
  g->memfd = memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (g->memfd < 0 || ftruncate(g->memfd, MEM_SIZE) < 0 ||
      fcntl(g->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
    die("memfd: %s", strerror(errno));
  g->ram = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
  if (g->ram == MAP_FAILED)
    die("mmap: %s", strerror(errno));
  for (unsigned q = 0; q < 2; q++) {
    if (vrb_init_at(&g->ring[q], g->ram + RING_GPA(q), RING_GPA(q), RING_MEM,
                    QSIZE) < 0)
      die("ring %u", q);
    g->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->err[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
}

static void guest_free(guest *g) {
  for (unsigned q = 0; q < 2; q++) {
    vrb_free(&g->ring[q]);
    close(g->kick[q]);
    close(g->call[q]);
    close(g->err[q]);
  }
  munmap(g->ram, MEM_SIZE);
  close(g->memfd);
}

static uint64_t uva(const guest *g, uint64_t gpa) {
  return (uint64_t)(uintptr_t)g->ram + gpa;
}

/* QEMU's q35 table for one memfd: below 640 KiB, and from 768 KiB up. */
static void mem_table(const guest *g, vu_memory *m) {
  memset(m, 0, sizeof(*m));
  m->nregions = 2;
  m->regions[0] = (vu_mem_region){0, LOW_END, uva(g, 0), 0};
  m->regions[1] =
      (vu_mem_region){HIGH_START, MEM_SIZE - HIGH_START, uva(g, HIGH_START),
                      HIGH_START};
}

static uint32_t mem_table_size(unsigned n) {
  return (uint32_t)(offsetof(vu_memory, regions) + n * sizeof(vu_mem_region));
}

typedef struct result {
  uint32_t status, len;
  uint8_t *payload; /* host pointer to the writable part after the header */
} result;

/* Posts one request on queue q: header + out bytes readable, wlen bytes
 * writable. Kicks unless told not to. Returns the head. */
static int post(guest *g, unsigned q, unsigned op, uint32_t id, uint32_t a0,
                uint32_t a1, const void *out, uint32_t outlen, uint32_t wlen,
                uint64_t *wgpa, int kick) {
  uint8_t buf[sizeof(hwsock_req_hdr) + 256];
  hwsock_req_hdr *h = (hwsock_req_hdr *)buf;
  memset(h, 0, sizeof(*h));
  hwsock_le16_set(&h->opcode, (uint16_t)op);
  hwsock_le32_set(&h->sock_id, id);
  hwsock_le64_set(&h->tag, 0x7700u + op);
  hwsock_le32_set(&h->arg0, a0);
  hwsock_le32_set(&h->arg1, a1);
  if (op == HWSOCK_OP_CONNECT)
    hwsock_le32_set(&h->uri_len, outlen);
  if (outlen > 0)
    memcpy(buf + sizeof(*h), out, outlen);
  struct iovec iov = {buf, sizeof(*h) + outlen};
  int head = vrb_add_rw(&g->ring[q], &iov, 1, &wlen, 1, wgpa);
  if (head < 0)
    die("ring %u full", q);
  vrb_publish(&g->ring[q]);
  uint64_t one = 1;
  if (kick && write(g->kick[q], &one, sizeof(one)) != sizeof(one))
    die("kick");
  return head;
}

/* Waits (on the call eventfd) for the completion of head on queue q. */
static result wait_done(guest *g, unsigned q, int head, uint64_t wgpa) {
  uint32_t id, used_len;
  for (;;) {
    if (vrb_get_used(&g->ring[q], &id, &used_len))
      break;
    struct pollfd p = {g->call[q], POLLIN, 0};
    if (poll(&p, 1, TIMEOUT_MS) != 1)
      die("no completion on queue %u", q);
    uint64_t v;
    (void)!read(g->call[q], &v, sizeof(v));
  }
  CHECK(id == (uint32_t)head, "completion of head %u, expected %d", id, head);
  const hwsock_resp_hdr *r = vrb_host(&g->ring[q], wgpa);
  result res = {hwsock_le32_get(&r->status), hwsock_le32_get(&r->len),
                (uint8_t *)(r + 1)};
  CHECK(used_len >= 32, "used len %u", used_len);
  return res;
}

static result request(guest *g, unsigned q, unsigned op, uint32_t id,
                      uint32_t a0, uint32_t a1, const void *out,
                      uint32_t outlen, uint32_t wlen) {
  uint64_t wgpa;
  int head = post(g, q, op, id, a0, a1, out, outlen, wlen, &wgpa, 1);
  return wait_done(g, q, head, wgpa);
}

/* ---- scenarios ---------------------------------------------------------- */

/* QEMU 7.2's messages at its start, before the guest drives the device. */
static void qemu_start(guest *g, int fd) {
  uint64_t f = get_u64(fd, VU_GET_FEATURES);
  CHECK((f & (VU_F_VERSION_1 | VU_F_PROTOCOL_FEATURES)) ==
            (VU_F_VERSION_1 | VU_F_PROTOCOL_FEATURES),
        "features 0x%llx", (unsigned long long)f);
  CHECK(!(f & (1ull << 33)), "ACCESS_PLATFORM offered");
  uint64_t pf = get_u64(fd, VU_GET_PROTOCOL_FEATURES);
  CHECK((pf & (VU_PF_CONFIG | VU_PF_REPLY_ACK)) ==
            (VU_PF_CONFIG | VU_PF_REPLY_ACK),
        "protocol features 0x%llx", (unsigned long long)pf);
  CHECK(!(pf & VU_PF_MQ), "MQ offered");
  set_u64(fd, VU_SET_PROTOCOL_FEATURES, VU_PF_CONFIG | VU_PF_REPLY_ACK);
  vu_send(fd, VU_SET_OWNER, 0, NULL, 0, NULL, 0);
  get_u64(fd, VU_GET_FEATURES);
  for (unsigned q = 0; q < 2; q++) {
    set_file(fd, VU_SET_VRING_CALL, q, g->call[q]);
    set_file(fd, VU_SET_VRING_ERR, q, g->err[q]);
  }
  vu_config cfg = {0, 8, 0, {0}};
  vu_send(fd, VU_GET_CONFIG, 0, &cfg, VU_CONFIG_HDR_SIZE + 8, NULL, 0);
  memset(&cfg, 0, sizeof(cfg));
  CHECK(vu_recv(fd, VU_GET_CONFIG, &cfg, sizeof(cfg)) ==
            VU_CONFIG_HDR_SIZE + 8,
        "config reply size");
  uint64_t cid;
  memcpy(&cid, cfg.data, 8);
  CHECK(cfg.size == 8 && cid == 3, "guest_cid %llu", (unsigned long long)cid);
}

/* The guest's DRIVER_OK as QEMU forwards it, then the driver's first
 * request. NEGOTIATE is posted and kicked before SET_VRING_KICK/ENABLE: the
 * back-end must find it when the ring starts. */
static void driver_ok(guest *g, int fd) {
  for (unsigned q = 0; q < 2; q++)
    set_file(fd, VU_SET_VRING_CALL, q, g->call[q]);
  set_u64(fd, VU_SET_FEATURES,
          VU_F_VERSION_1 | VU_F_INDIRECT_DESC | VU_F_PROTOCOL_FEATURES);
  vu_memory mt;
  mem_table(g, &mt);
  int fds[2] = {g->memfd, g->memfd};
  CHECK(acked(fd, VU_SET_MEM_TABLE, &mt, mem_table_size(2), fds, 2) == 0,
        "SET_MEM_TABLE refused");
  /* the guest driver already queued its first request */
  uint64_t neg_wgpa;
  int neg_head = post(g, 0, HWSOCK_OP_NEGOTIATE, 0, (uint32_t)HWSOCK_F_TCP, 0,
                      NULL, 0, 32 + 64, &neg_wgpa, 1);
  for (unsigned q = 0; q < 2; q++) {
    set_state(fd, VU_SET_VRING_NUM, q, QSIZE);
    set_state(fd, VU_SET_VRING_BASE, q, 0);
    vu_vring_addr a = {q, 0, uva(g, g->ring[q].desc_gpa),
                       uva(g, g->ring[q].used_gpa),
                       uva(g, g->ring[q].avail_gpa), 0};
    CHECK(acked(fd, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) == 0,
          "SET_VRING_ADDR %u refused", q);
    set_file(fd, VU_SET_VRING_KICK, q, g->kick[q]);
  }
  for (unsigned q = 0; q < 2; q++) {
    vu_vring_state s = {q, 1};
    CHECK(acked(fd, VU_SET_VRING_ENABLE, &s, sizeof(s), NULL, 0) == 0,
          "SET_VRING_ENABLE %u refused", q);
  }
  for (unsigned q = 0; q < 2; q++)
    set_file(fd, VU_SET_VRING_CALL, q, g->call[q]);

  result r = wait_done(g, 0, neg_head, neg_wgpa);
  CHECK(r.status == 0 && r.len == 64, "NEGOTIATE status %u len %u", r.status,
        r.len);
  hwsock_wire_config wc;
  memcpy(&wc, r.payload, sizeof(wc));
  CHECK(hwsock_le32_get(&wc.magic) == HWSOCK_CONFIG_MAGIC, "config magic");
  CHECK(hwsock_le16_get(&wc.num_queues) == 2, "num_queues");
  CHECK(hwsock_le64_get(&wc.device_features) & HWSOCK_F_TCP, "no F_TCP");
}

/* OPEN, CONNECT, SEND, RECV through the echo server; CLOSE. */
static void traffic(guest *g, unsigned port) {
  result r;
  r = request(g, 0, HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
              NULL, 0, 32);
  CHECK(r.status == 0, "OPEN status %u", r.status);
  char uri[64];
  int ul = snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", port);
  r = request(g, 1, HWSOCK_OP_CONNECT, 1, 0, 0, uri, (uint32_t)ul, 32);
  CHECK(r.status == 0, "CONNECT status %u", r.status);
  static const char msg[] = "hello through vhost-user";
  r = request(g, 0, HWSOCK_OP_SEND, 1, 0, 0, msg, sizeof(msg) - 1, 32);
  CHECK(r.status == 0 && r.len == sizeof(msg) - 1, "SEND status %u len %u",
        r.status, r.len);
  char got[64] = "";
  size_t have = 0;
  while (have < sizeof(msg) - 1) {
    r = request(g, 1, HWSOCK_OP_RECV, 1, 0, 0, NULL, 0, 32 + 64);
    CHECK(r.status == 0 && r.len > 0 && have + r.len < sizeof(got),
          "RECV status %u len %u", r.status, r.len);
    memcpy(got + have, r.payload, r.len);
    have += r.len;
  }
  CHECK(memcmp(got, msg, sizeof(msg) - 1) == 0, "echo mismatch: '%s'", got);
  r = request(g, 0, HWSOCK_OP_CLOSE, 1, 0, 0, NULL, 0, 32);
  CHECK(r.status == 0, "CLOSE status %u", r.status);
}

/* QEMU's stop (driver unload, device reset): rings disabled, then their
 * bases, which are the used indexes the device published. */
static void device_stop(guest *g, int fd) {
  for (unsigned q = 0; q < 2; q++)
    set_state(fd, VU_SET_VRING_ENABLE, q, 0);
  for (unsigned q = 0; q < 2; q++) {
    vu_vring_state s = {q, 0};
    vu_send(fd, VU_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0);
    CHECK(vu_recv(fd, VU_GET_VRING_BASE, &s, sizeof(s)) == sizeof(s),
          "GET_VRING_BASE reply");
    CHECK(s.index == q && s.num == vrb_used_idx(&g->ring[q]),
          "ring %u base %u, used idx %u", q, s.num, vrb_used_idx(&g->ring[q]));
  }
}

/* Fresh rings in the same guest RAM, as a reloaded driver sets them up. */
static void rings_reinit(guest *g) {
  for (unsigned q = 0; q < 2; q++)
    if (vrb_init_at(&g->ring[q], g->ram + RING_GPA(q), RING_GPA(q), RING_MEM,
                    QSIZE) < 0)
      die("ring %u", q);
}

/* One front-end, the guest driver reloaded: negotiation starts over after
 * each stop; a broken ring signals the error eventfds, and the device serves
 * again once the guest reset it. */
static void reload_session(unsigned port) {
  guest g;
  guest_init(&g);
  int fd = vu_connect(sock);
  qemu_start(&g, fd);
  driver_ok(&g, fd);
  result r = request(&g, 0, HWSOCK_OP_NEGOTIATE, 0, (uint32_t)HWSOCK_F_TCP, 0,
                     NULL, 0, 32 + 64);
  CHECK(r.status == (uint32_t)-HWSOCK_EALREADY, "second NEGOTIATE: %u",
        r.status);
  device_stop(&g, fd);
  rings_reinit(&g);
  driver_ok(&g, fd); /* NEGOTIATE succeeds again: the stop reset the device */
  traffic(&g, port);
  /* a head index beyond the queue: the ring is broken */
  vrb_put_head(&g.ring[1], QSIZE + 5);
  vrb_publish(&g.ring[1]);
  uint64_t one = 1;
  CHECK(write(g.kick[1], &one, sizeof(one)) == sizeof(one), "kick");
  struct pollfd p[2] = {{g.err[0], POLLIN, 0}, {g.err[1], POLLIN, 0}};
  CHECK(poll(p, 2, TIMEOUT_MS) > 0, "no error eventfd after a broken ring");
  backend_alive();
  device_stop(&g, fd);
  rings_reinit(&g);
  driver_ok(&g, fd);
  traffic(&g, port);
  device_stop(&g, fd);
  close(fd);
  guest_free(&g);
}

/* QEMU dies with a connection open and a RECV pending: the back-end
 * closes the host socket as for a dead guest (the peer sees EOF), writes
 * nothing more into the (gone) guest memory, and serves the next front-end. */
static void dead_frontend_session(void) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
      listen(lfd, 1) < 0 || getsockname(lfd, (struct sockaddr *)&a, &len) < 0)
    die("listener: %s", strerror(errno));
  guest g;
  guest_init(&g);
  int fd = vu_connect(sock);
  qemu_start(&g, fd);
  driver_ok(&g, fd);
  result r = request(&g, 0, HWSOCK_OP_OPEN, 2, HWSOCK_AF_INET,
                     HWSOCK_SOCK_STREAM, NULL, 0, 32);
  CHECK(r.status == 0, "OPEN status %u", r.status);
  char uri[64];
  int ul = snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", ntohs(a.sin_port));
  r = request(&g, 1, HWSOCK_OP_CONNECT, 2, 0, 0, uri, (uint32_t)ul, 32);
  CHECK(r.status == 0, "CONNECT status %u", r.status);
  int peer = accept(lfd, NULL, NULL);
  CHECK(peer >= 0, "accept: %s", strerror(errno));
  uint64_t wgpa;
  post(&g, 1, HWSOCK_OP_RECV, 2, 0, 0, NULL, 0, 32 + 64, &wgpa, 1);
  close(fd); /* QEMU is gone */
  struct timeval tv = {TIMEOUT_MS / 1000, 0};
  setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char c;
  CHECK(recv(peer, &c, 1, 0) == 0, "the host socket outlived the front-end");
  close(peer);
  close(lfd);
  backend_alive();
  guest_free(&g);
}

static void full_session(unsigned port) {
  guest g;
  guest_init(&g);
  int fd = vu_connect(sock);
  qemu_start(&g, fd);
  driver_ok(&g, fd);
  traffic(&g, port);
  device_stop(&g, fd);
  close(fd);
  guest_free(&g);
}

/* Every malformed message is refused and the back-end keeps answering. */
static void malformed_session(void) {
  guest g;
  guest_init(&g);
  int fd = vu_connect(sock);
  set_u64(fd, VU_SET_PROTOCOL_FEATURES, VU_PF_CONFIG | VU_PF_REPLY_ACK);
  uint32_t small = 1;
  CHECK(acked(fd, VU_SET_FEATURES, &small, sizeof(small), NULL, 0) != 0,
        "SET_FEATURES of 4 bytes accepted");
  uint64_t v = VU_F_VERSION_1 | (1ull << 33);
  CHECK(acked(fd, VU_SET_FEATURES, &v, sizeof(v), NULL, 0) != 0,
        "ACCESS_PLATFORM accepted");
  vu_memory mt;
  mem_table(&g, &mt);
  struct {
    uint32_t n, pad;
    vu_mem_region r[9];
  } big = {9, 0, {{0}}};
  for (unsigned i = 0; i < 9; i++)
    big.r[i] = (vu_mem_region){i * 0x10000u, 0x10000u, uva(&g, i * 0x10000u),
                               i * 0x10000u};
  int fds9[9];
  for (unsigned i = 0; i < 9; i++)
    fds9[i] = g.memfd;
  CHECK(acked(fd, VU_SET_MEM_TABLE, &big, sizeof(big), fds9, 8) != 0,
        "nine regions accepted");
  CHECK(acked(fd, VU_SET_MEM_TABLE, &big, sizeof(big), fds9, 9) != 0,
        "nine fds accepted");
  CHECK(acked(fd, VU_SET_MEM_TABLE, &mt, mem_table_size(2), fds9, 1) != 0,
        "two regions with one fd accepted");
  CHECK(acked(fd, VU_SET_MEM_TABLE, &mt, mem_table_size(2) - 4, fds9, 2) != 0,
        "cut memory table accepted");
  vu_memory huge = mt;
  huge.regions[1].size = MEM_SIZE; /* beyond the end of the memfd */
  CHECK(acked(fd, VU_SET_MEM_TABLE, &huge, mem_table_size(2), fds9, 2) != 0,
        "region beyond its file accepted");
  vu_memory overlap = mt;
  overlap.regions[1].uva = overlap.regions[0].uva + 0x1000;
  CHECK(acked(fd, VU_SET_MEM_TABLE, &overlap, mem_table_size(2), fds9, 2) != 0,
        "overlapping regions accepted");
  CHECK(acked(fd, VU_SET_MEM_TABLE, &mt, mem_table_size(2), fds9, 2) == 0,
        "a good memory table refused after bad ones");
  vu_vring_state s = {5, QSIZE};
  CHECK(acked(fd, VU_SET_VRING_NUM, &s, sizeof(s), NULL, 0) != 0,
        "ring 5 accepted");
  s = (vu_vring_state){0, 100};
  CHECK(acked(fd, VU_SET_VRING_NUM, &s, sizeof(s), NULL, 0) != 0,
        "ring size 100 accepted");
  s = (vu_vring_state){0, QSIZE};
  CHECK(acked(fd, VU_SET_VRING_NUM, &s, sizeof(s), NULL, 0) == 0,
        "ring size refused");
  vu_vring_addr a = {0, 0, uva(&g, 0xb0000), uva(&g, 0xb8000),
                     uva(&g, 0xb4000), 0}; /* in the hole */
  CHECK(acked(fd, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) != 0,
        "ring in the memory hole accepted");
  a = (vu_vring_addr){0, 0, 0x10, 0x20, 0x30, 0}; /* nowhere */
  CHECK(acked(fd, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) != 0,
        "ring outside every region accepted");
  a.desc_uva = uva(&g, MEM_SIZE - 16); /* straddles the end */
  CHECK(acked(fd, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) != 0,
        "ring across the end of memory accepted");
  v = 0;
  CHECK(acked(fd, VU_SET_VRING_KICK, &v, sizeof(v), NULL, 0) != 0,
        "kick without fd and without NOFD accepted");
  int two[2] = {g.kick[0], g.kick[1]};
  CHECK(acked(fd, VU_SET_VRING_CALL, &v, sizeof(v), two, 2) != 0,
        "call with two fds accepted");
  v = 7; /* no such ring */
  CHECK(acked(fd, VU_SET_VRING_CALL, &v, sizeof(v), two, 1) != 0,
        "call of ring 7 accepted");
  vu_config cfg = {0, 300, 0, {0}};
  CHECK(acked(fd, VU_GET_CONFIG, &cfg, VU_CONFIG_HDR_SIZE + 8, NULL, 0) != 0,
        "config of 300 bytes accepted");
  cfg = (vu_config){0, 8, 0, {0}};
  CHECK(acked(fd, VU_SET_CONFIG, &cfg, VU_CONFIG_HDR_SIZE + 8, NULL, 0) != 0,
        "SET_CONFIG accepted");
  CHECK(acked(fd, 77, &v, sizeof(v), NULL, 0) != 0, "request 77 accepted");
  CHECK(acked(fd, VU_SET_LOG_BASE, &v, sizeof(v), NULL, 0) != 0,
        "SET_LOG_BASE accepted (not offered)");
  /* still serving */
  CHECK(get_u64(fd, VU_GET_FEATURES) & VU_F_VERSION_1, "GET_FEATURES");
  backend_alive();
  /* a payload larger than any message: the back-end hangs up */
  vu_hdr h = {VU_SET_FEATURES, VU_VERSION, 1u << 20};
  CHECK(send(fd, &h, sizeof(h), MSG_NOSIGNAL) == sizeof(h), "send");
  char c;
  CHECK(recv(fd, &c, 1, 0) == 0, "the back-end kept a broken stream");
  close(fd);
  /* a wrong version: the same */
  fd = vu_connect(sock);
  h = (vu_hdr){VU_GET_FEATURES, 2, 0};
  CHECK(send(fd, &h, sizeof(h), MSG_NOSIGNAL) == sizeof(h), "send");
  CHECK(recv(fd, &c, 1, 0) == 0, "the back-end kept a version-2 stream");
  close(fd);
  backend_alive();
  guest_free(&g);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: vu_frontend BACKEND\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (mkdtemp(workdir) == NULL)
    die("mkdtemp: %s", strerror(errno));
  snprintf(sock, sizeof(sock), "%s/vu.sock", workdir);
  snprintf(ctl, sizeof(ctl), "%s/vu.ctl", workdir);
  snprintf(pcap, sizeof(pcap), "%s/flows.pcap", workdir);
  taken_path(argv[1]);
  unsigned port = start_echo();
  start_backend(argv[1]);
  full_session(port);
  malformed_session();
  full_session(port); /* a new front-end; the device starts over */
  reload_session(port);
  dead_frontend_session();
  full_session(port); /* served after a front-end died mid-request */
  backend_alive();
  kill(backend_pid, SIGTERM);
  int st;
  CHECK(waitpid(backend_pid, &st, 0) == backend_pid && WIFEXITED(st) &&
            WEXITSTATUS(st) == 0,
        "back-end exit status 0x%x", st);
  backend_pid = -1;
  /* --pcap: the offloaded flows were captured (the 24-byte file header,
   * then frames) */
  struct stat pst;
  CHECK(stat(pcap, &pst) == 0 && pst.st_size > 24 + 4 * 16,
        "capture file missing or without frames");
  kill(echo_pid, SIGKILL);
  waitpid(echo_pid, &st, 0);
  cleanup();
  printf("vu_frontend: %d checks passed\n", checks);
  return 0;
}
