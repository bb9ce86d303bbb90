/* The event queue and per-socket credit (PROTOCOL.md §16), device side:
 * real tcp sockets through the tcp backend plugin, the driver side made of
 * two vring-builder queues (0: requests, 1: the event queue), a libuv loop
 * run by hand. Host peers are plain loopback sockets of the test. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "device_int.h"
#include "support/vring_builder.h"

#define TCP_SO HWSOCK_BUILD_BACKEND_DIR "/tcp.so"
#define QSIZE 256u
#define NBUF 64u
#define BUFLEN 4096u
#define MAXS 128u

static uv_loop_t loop;
static vrb rq, eq; /* queue 0: requests; queue 1: events */
static hwsock_device *dev;
static hwsock_policy *pol;
static hwsock_plugin *plug;
static uint64_t buf_gpa[QSIZE]; /* event buffer of each head */
static int lst = -1;            /* host listener */
static uint16_t lport;
static unsigned inband; /* the next device negotiates in band */
static unsigned dev_max_sockets = MAXS; /* 0: the library's default */

/* what the event queue delivered, per socket */
static size_t got[MAXS];
static unsigned char data[MAXS][1u << 16];
static unsigned eofs[MAXS], errs[MAXS], acceptable[MAXS], writable[MAXS];
static uint32_t last_window[MAXS];
static unsigned returned_empty, nevents;

static void start_device(uint64_t features, unsigned nq) {
  char err[256];
  const char *y = "version: 1\ndefault: offload\nrules: []\n";
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(vrb_init(&rq, 0x100000, 4u << 20, QSIZE), 0);
  cr_assert_eq(vrb_init(&eq, 0x1000000, 4u << 20, QSIZE), 0);
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t", &pol, err,
                                         sizeof(err)), 0, "%s", err);
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.num_queues = nq;
  c.max_sockets = dev_max_sockets;
  c.max_inflight = 512;
  c.max_queue_size = QSIZE;
  c.policy = pol;
  c.backend_loop = &loop;
  c.inband_negotiation = inband;
  cr_assert_eq(hwsock_device_new(&c, &dev), 0);
  cr_assert_eq(hwsock_plugin_load(TCP_SO, &plug, err, sizeof(err)), 0, "%s",
               err);
  cr_assert_eq(hwsock_device_add_backend(dev, hwsock_plugin_desc(plug), NULL),
               0);
  cr_assert_eq(hwsock_device_add_region(dev, rq.gpa, rq.size, rq.mem), 0);
  cr_assert_eq(hwsock_device_add_region(dev, eq.gpa, eq.size, eq.mem), 0);
  cr_assert_eq(hwsock_device_set_features(dev, HWSOCK_F_VERSION_1 | features),
               0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 0, QSIZE, rq.desc_gpa,
                                         rq.avail_gpa, rq.used_gpa), 0);
  if (nq > 1)
    cr_assert_eq(hwsock_device_queue_setup(dev, 1, QSIZE, eq.desc_gpa,
                                           eq.avail_gpa, eq.used_gpa), 0);
  cr_assert_eq(hwsock_device_start(dev), 0);

  lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(lst, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(lst, 512), 0);
  cr_assert_eq(getsockname(lst, (struct sockaddr *)&a, &al), 0);
  lport = ntohs(a.sin_port);
  memset(got, 0, sizeof(got));
  memset(eofs, 0, sizeof(eofs));
  memset(errs, 0, sizeof(errs));
  memset(acceptable, 0, sizeof(acceptable));
  memset(writable, 0, sizeof(writable));
  returned_empty = nevents = 0;
}

static void setup(void) {
  start_device(HWSOCK_F_EVENT_QUEUE, 2);
}

static void teardown(void) {
  hwsock_device_free(dev);
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
    ;
  uv_loop_close(&loop);
  hwsock_plugin_unload(plug);
  hwsock_policy_free(pol);
  vrb_free(&rq);
  vrb_free(&eq);
  close(lst);
}

/* ---- the driver side ---------------------------------------------------- */

typedef struct result {
  int status;
  uint32_t len;
} result;

/* One request on queue 0, run until it completes. */
static result request(unsigned op, uint32_t id, uint32_t a0, uint32_t a1,
                      const char *uri) {
  size_t mark = vrb_mark(&rq);
  size_t ul = uri ? strlen(uri) : 0;
  uint64_t req = vrb_alloc(&rq, sizeof(hwsock_req_hdr) + ul, 8);
  uint64_t resp = vrb_alloc(&rq, 256, 8);
  hwsock_req_hdr *h = vrb_host(&rq, req);
  hwsock_le16_set(&h->opcode, (uint16_t)op);
  hwsock_le32_set(&h->sock_id, id);
  hwsock_le32_set(&h->arg0, a0);
  hwsock_le32_set(&h->arg1, a1);
  hwsock_le32_set(&h->uri_len, (uint32_t)ul);
  if (ul)
    memcpy(h + 1, uri, ul);
  vrb_seg segs[2] = {{req, (uint32_t)(sizeof(*h) + ul), 0},
                     {resp, 256, HWSOCK_VRING_DESC_F_WRITE}};
  int head = vrb_add_chain(&rq, segs, 2);
  cr_assert(head >= 0);
  vrb_publish(&rq);
  hwsock_device_kick(dev, 0);
  uint32_t uid, ulen;
  for (int i = 0; i < 100000 && !vrb_get_used(&rq, &uid, &ulen); i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    hwsock_device_flush(dev);
    if (i > 100)
      usleep(100);
  }
  cr_assert_eq(uid, (uint32_t)head, "request %u never completed", op);
  hwsock_resp_hdr *r = vrb_host(&rq, resp);
  result res = {-(int)hwsock_le32_get(&r->status), hwsock_le32_get(&r->len)};
  vrb_release(&rq, mark);
  return res;
}

static void post_buffer(uint64_t gpa) {
  vrb_seg s = {gpa, BUFLEN, HWSOCK_VRING_DESC_F_WRITE};
  int head = vrb_add_chain(&eq, &s, 1);
  cr_assert(head >= 0);
  buf_gpa[head] = gpa;
}

static void post_buffers(unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    uint64_t g = vrb_alloc(&eq, BUFLEN, 16);
    cr_assert(g != 0);
    post_buffer(g);
  }
  vrb_publish(&eq);
  hwsock_device_kick(dev, 1);
}

/* Takes every published event, records it, reposts its buffer. Returns
 * how many events came. `credit_back` returns the credit of each DATA
 * event at once (a reader that keeps up), except for socket `stingy`. */
static unsigned reap(int credit_back, uint32_t stingy) {
  uint32_t head, len;
  unsigned n = 0;
  uint32_t give[MAXS] = {0};
  while (vrb_get_used(&eq, &head, &len)) {
    uint64_t g = buf_gpa[head];
    if (len == 0) {
      returned_empty++;
    } else {
      cr_assert(len >= sizeof(hwsock_event));
      const hwsock_event *ev = vrb_host(&eq, g);
      uint32_t id = hwsock_le32_get(&ev->sock_id);
      cr_assert(id < MAXS);
      unsigned type = hwsock_le16_get(&ev->type);
      uint32_t dl = hwsock_le32_get(&ev->len);
      last_window[id] = hwsock_le32_get(&ev->window);
      switch (type) {
      case HWSOCK_EV_DATA:
        if (hwsock_le16_get(&ev->flags) & HWSOCK_EV_F_EOF) {
          cr_assert_eq(dl, 0);
          eofs[id]++;
          break;
        }
        cr_assert_eq(len, sizeof(hwsock_event) + dl);
        cr_assert(got[id] + dl <= sizeof(data[id]));
        memcpy(data[id] + got[id], (const char *)(ev + 1), dl);
        got[id] += dl;
        give[id] += dl;
        break;
      case HWSOCK_EV_ERROR:
        errs[id]++;
        break;
      case HWSOCK_EV_ACCEPTABLE:
        acceptable[id]++;
        break;
      case HWSOCK_EV_WRITABLE:
        writable[id]++;
        break;
      default:
        cr_assert_fail("unknown event type %u", type);
      }
      nevents++;
    }
    post_buffer(g);
    n++;
  }
  if (n > 0) {
    vrb_publish(&eq);
    hwsock_device_kick(dev, 1);
  }
  if (credit_back)
    for (uint32_t id = 0; id < MAXS; id++)
      if (give[id] > 0 && id != stingy)
        cr_assert_eq(request(HWSOCK_OP_CREDIT, id, give[id], 0, NULL).status,
                     0);
  return n;
}

static void turn(void) {
  uv_run(&loop, UV_RUN_NOWAIT);
  hwsock_device_flush(dev);
}

/* Opens socket id connected to the test's listener; returns the host end. */
static int connect_one(uint32_t id) {
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", lport);
  cr_assert_eq(request(HWSOCK_OP_OPEN, id, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL).status, 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, id, 0, 0, uri).status, 0);
  int fd = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
  cr_assert(fd >= 0);
  return fd;
}

static void fill(unsigned char *p, size_t n, uint32_t id, size_t off) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)((off + i) * 7 + id * 13);
}

static int check(uint32_t id, size_t n) {
  static unsigned char want[1u << 16];
  fill(want, n, id, 0);
  return memcmp(want, data[id], n) == 0;
}

/* The host's receive queue of the device's host socket for id. */
static int host_inq(uint32_t id) {
  hwsock_bsock_info bi;
  memset(&bi, 0, sizeof(bi));
  bi.size = sizeof(bi);
  bi.fd = -1;
  cr_assert_eq(hwsock__sock_info(dev, &dev->socks[id], &bi), 0);
  int n = -1;
  cr_assert_eq(ioctl(bi.fd, FIONREAD, &n), 0);
  return n;
}

TestSuite(evq, .init = setup, .fini = teardown, .timeout = 120);

Test(evq, data_arrives_in_an_event_buffer_within_the_window) {
  post_buffers(8);
  int peer = connect_one(3);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 3, 1000, 0, NULL).status, 0);
  unsigned char msg[300];
  fill(msg, sizeof(msg), 3, 0);
  cr_assert_eq(write(peer, msg, sizeof(msg)), (ssize_t)sizeof(msg));
  for (int i = 0; i < 20000 && got[3] < sizeof(msg); i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(got[3], sizeof(msg));
  cr_assert(check(3, sizeof(msg)));
  cr_assert_eq(last_window[3], 1000 - 300);
  /* a RECV request on a socket with a window is refused */
  cr_assert_eq(request(HWSOCK_OP_RECV, 3, 0, 0, NULL).status, HWSOCK_EBUSY);
  /* the peer's FIN: DATA+EOF, the read side ends */
  close(peer);
  for (int i = 0; i < 20000 && eofs[3] == 0; i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(eofs[3], 1);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 3, 0, 0, NULL).status, 0);
}

static uint64_t no_buffer_count(void) {
  hwsock_device_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  hwsock_device_get_stats(dev, &st);
  return st.ev_no_buffer;
}

Test(evq, an_event_that_finds_no_buffer_is_counted) {
  int peer = connect_one(4);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 4, 1000, 0, NULL).status, 0);
  cr_assert_eq(no_buffer_count(), 0);
  unsigned char msg[100];
  fill(msg, sizeof(msg), 4, 0);
  cr_assert_eq(write(peer, msg, sizeof(msg)), (ssize_t)sizeof(msg));
  /* no buffer posted: the data waits, and the device counts it */
  for (int i = 0; i < 20000 && no_buffer_count() == 0; i++)
    turn();
  cr_assert_geq(no_buffer_count(), 1);
  cr_assert_eq(got[4], 0);
  /* a buffer comes: the data with it, and the count stays */
  uint64_t n = no_buffer_count();
  post_buffers(4);
  for (int i = 0; i < 20000 && got[4] < sizeof(msg); i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(got[4], sizeof(msg));
  cr_assert(check(4, sizeof(msg)));
  cr_assert_eq(no_buffer_count(), n);
  char js[65536];
  hwsock_device_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  hwsock_device_get_stats(dev, &st);
  cr_assert_gt(hwsock_stats_json(&st, js, sizeof(js)), 0);
  char want[64];
  snprintf(want, sizeof(want), "\"ev_no_buffer\":%llu", (unsigned long long)n);
  cr_assert_not_null(strstr(js, want), "%s", js);
  close(peer);
}

Test(evq, the_device_never_reads_beyond_the_window) {
  post_buffers(8);
  int peer = connect_one(5);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 5, 1000, 0, NULL).status, 0);
  static unsigned char msg[64000];
  fill(msg, sizeof(msg), 5, 0);
  cr_assert_eq(write(peer, msg, sizeof(msg)), (ssize_t)sizeof(msg));
  for (int i = 0; i < 3000; i++) {
    turn();
    reap(0, 0);
    if (i > 100)
      usleep(100);
  }
  cr_assert_eq(got[5], 1000, "delivered %zu bytes with a window of 1000",
               got[5]);
  cr_assert_eq(last_window[5], 0);
  /* the rest waits in the host kernel, not in the device */
  cr_assert_geq(host_inq(5), (int)(sizeof(msg) - 1000) / 2,
                "the host socket's receive queue is %d bytes", host_inq(5));
  /* more credit: the rest comes */
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 5, sizeof(msg) - 1000, 0, NULL)
                   .status, 0);
  for (int i = 0; i < 200000 && got[5] < sizeof(msg); i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(got[5], sizeof(msg));
  cr_assert(check(5, sizeof(msg)));
  close(peer);
}

Test(evq, an_unread_socket_cannot_take_the_pool_from_99_others) {
  enum { N = 100, EACH = 65536, WIN = 8192 };
  int peer[N];
  size_t sent[N] = {0};
  static unsigned char msg[EACH];
  post_buffers(NBUF);
  for (uint32_t id = 0; id < N; id++) {
    peer[id] = connect_one(id);
    int one = 1;
    (void)one;
    cr_assert_eq(request(HWSOCK_OP_CREDIT, id, WIN, 0, NULL).status, 0);
  }
  /* Every peer sends EACH bytes; socket 0's reader never returns credit. */
  int done = 0;
  for (int it = 0; it < 400000 && !done; it++) {
    for (uint32_t id = 0; id < N; id++) {
      if (sent[id] == EACH)
        continue;
      fill(msg, EACH - sent[id], id, sent[id]);
      ssize_t w = send(peer[id], msg, EACH - sent[id], MSG_DONTWAIT);
      if (w > 0)
        sent[id] += (size_t)w;
    }
    turn();
    reap(1, 0);
    done = 1;
    for (uint32_t id = 1; id < N; id++)
      if (got[id] < EACH)
        done = 0;
  }
  for (uint32_t id = 1; id < N; id++) {
    cr_assert_eq(got[id], EACH, "socket %u starved: %zu of %u bytes", id,
                 got[id], EACH);
    cr_assert(check(id, EACH), "socket %u: wrong bytes", id);
  }
  cr_assert_eq(got[0], WIN, "the unread socket got %zu bytes", got[0]);
  cr_assert_eq(sent[0], EACH);
  cr_assert_geq(host_inq(0), 1, "socket 0's data is not in the host kernel");
  for (uint32_t id = 0; id < N; id++)
    close(peer[id]);
}

Test(evq, a_waiting_connection_is_announced_by_acceptable) {
  post_buffers(4);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL).status, 0);
  cr_assert_eq(request(HWSOCK_OP_BIND, 1, 0, 0, "tcp://127.0.0.1:0").status,
               0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 1, 16, 0, NULL).status, 0);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 1, 0, HWSOCK_WATCH_ACCEPT, NULL)
                   .status, 0);
  hwsock_bsock_info bi;
  memset(&bi, 0, sizeof(bi));
  bi.size = sizeof(bi);
  bi.fd = -1;
  cr_assert_eq(hwsock__sock_info(dev, &dev->socks[1], &bi), 0);
  struct sockaddr_in a;
  socklen_t al = sizeof(a);
  cr_assert_eq(getsockname(bi.fd, (struct sockaddr *)&a, &al), 0);
  for (int i = 0; i < 200; i++)
    turn();
  cr_assert_eq(acceptable[1] + reap(0, 0), 0, "an event without a client");
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_eq(connect(c, (struct sockaddr *)&a, al), 0);
  for (int i = 0; i < 20000 && acceptable[1] == 0; i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(acceptable[1], 1);
  /* one-shot: no second event until armed again */
  for (int i = 0; i < 200; i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(acceptable[1], 1);
  close(c);
}

Test(evq, writable_is_one_shot) {
  post_buffers(4);
  int peer = connect_one(2);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 2, 0, HWSOCK_WATCH_WRITE, NULL)
                   .status, 0);
  for (int i = 0; i < 20000 && writable[2] == 0; i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(writable[2], 1);
  for (int i = 0; i < 200; i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(writable[2], 1);
  close(peer);
}

Test(evq, credit_is_validated) {
  int peer = connect_one(4);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 4, 0, 4, NULL).status, HWSOCK_EINVAL);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 4, HWSOCK_CREDIT_MAX, 0, NULL).status,
               0);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 4, 1, 0, NULL).status, HWSOCK_ERANGE);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 9, 1, 0, NULL).status, HWSOCK_EBADF);
  close(peer);
}

Test(evq, bad_event_buffers_are_returned_empty) {
  uint64_t g = vrb_alloc(&eq, 64, 16);
  vrb_seg s = {g, 64, HWSOCK_VRING_DESC_F_WRITE}; /* < HWSOCK_EV_BUF_MIN */
  int head = vrb_add_chain(&eq, &s, 1);
  cr_assert(head >= 0);
  vrb_publish(&eq);
  int peer = connect_one(6);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 6, 100, 0, NULL).status, 0);
  cr_assert_eq(write(peer, "x", 1), 1);
  uint32_t id, len = 1;
  for (int i = 0; i < 20000; i++) {
    turn();
    if (vrb_get_used(&eq, &id, &len))
      break;
  }
  cr_assert_eq(id, (uint32_t)head);
  cr_assert_eq(len, 0);
  cr_assert_eq(hwsock_device_status(dev) & HWSOCK_STATUS_NEEDS_RESET, 0);
  close(peer);
}

/* Device memory per idle socket: the device's socket slot plus the tcp
 * backend's socket (its size is asserted in backends/tcp/tcp.c). */
Test(evq, an_idle_socket_costs_at_most_512_device_bytes) {
  /* 336: the bound backends/tcp/tcp.c asserts for its tcp_sock */
  cr_assert_leq(sizeof(hwsock__sock) + 336, 512, "hwsock__sock is %zu bytes",
                sizeof(hwsock__sock));
}

/* Pages of [p, p + len) this process wrote (present and mapped only here,
 * /proc/self/pagemap bits 63 and 56): pages only read map the shared zero
 * page and are not counted, as RSS does not count them. */
static size_t written_pages(const void *p, size_t len) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = (uintptr_t)p / pg, b = ((uintptr_t)p + len + pg - 1) / pg;
  FILE *f = fopen("/proc/self/pagemap", "rb");
  cr_assert(f != NULL);
  cr_assert_eq(fseeko(f, (off_t)(a * 8), SEEK_SET), 0);
  size_t n = 0;
  for (uintptr_t i = a; i < b; i++) {
    uint64_t e;
    cr_assert_eq(fread(&e, 8, 1, f), 1);
    n += (e >> 63 & 1) && (e >> 56 & 1);
  }
  fclose(f);
  return n;
}

/* With the default max_sockets (65,536 ids, issue 13) the socket table is
 * 9 MiB of address space, but memory only where ids are used: creating,
 * resetting and reading the statistics of the device write none of it. */
TestSuite(evq_table, .timeout = 60);

Test(evq_table, the_default_socket_table_becomes_memory_only_where_ids_are_used) {
  dev_max_sockets = 0;
  start_device(HWSOCK_F_EVENT_QUEUE, 2);
  hwsock_wire_config wc;
  hwsock_device_get_config(dev, &wc);
  cr_assert_eq(hwsock_le32_get(&wc.max_sockets), 65536);
  cr_assert_eq(HWSOCK_DEFAULT_MAX_SOCKETS, 65536);
  size_t len = (size_t)65536 * sizeof(hwsock__sock);
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  cr_assert_eq(written_pages(dev->socks, len), 0, "%zu pages at creation",
               written_pages(dev->socks, len));
  enum { USED = 300 };
  for (uint32_t id = 0; id < USED; id++)
    cr_assert_eq(request(HWSOCK_OP_OPEN, id, HWSOCK_AF_INET,
                         HWSOCK_SOCK_STREAM, NULL).status, 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 65535, HWSOCK_AF_INET,
                       HWSOCK_SOCK_STREAM, NULL).status, 0);
  /* the pages of ids 0..299 (one more where a slot straddles) and id
   * 65535's (two at most) */
  size_t bound = (USED * sizeof(hwsock__sock) + pg - 1) / pg + 1 + 2;
  size_t used = written_pages(dev->socks, len);
  cr_assert(used >= 2 && used <= bound, "%zu pages written, at most %zu",
            used, bound);
  hwsock_device_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  hwsock_device_get_stats(dev, &st);
  cr_assert_eq(st.sockets_open, USED + 1);
  for (uint32_t id = 0; id < USED / 2; id++)
    cr_assert_eq(request(HWSOCK_OP_CLOSE, id, 0, 0, NULL).status, 0);
  /* the reset closes the others, the last id included: it scans up to the
   * highest id ever named, not beyond */
  hwsock_device_reset(dev);
  for (uint32_t id = 0; id < USED; id++)
    cr_assert_eq(dev->socks[id].state, HWSOCK__S_FREE, "id %u", id);
  cr_assert_eq(dev->socks[65535].state, HWSOCK__S_FREE);
  cr_assert_eq(written_pages(dev->socks, len), used,
               "the reset wrote more of the table");
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  hwsock_device_get_stats(dev, &st);
  cr_assert_eq(st.sockets_open, 0);
  teardown();
}

/* A version 1 driver (no F_EVENT_QUEUE) on the same device. */
TestSuite(evq_v1, .timeout = 60);

Test(evq_v1, without_the_bit_credit_is_unknown_and_both_queues_take_requests) {
  start_device(0, 2);
  hwsock_wire_config cfg;
  hwsock_device_get_config(dev, &cfg);
  cr_assert(hwsock_le64_get(&cfg.device_features) & HWSOCK_F_EVENT_QUEUE,
            "a 2-queue device offers the event queue");
  int peer = connect_one(1);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 1, 100, 0, NULL).status,
               HWSOCK_ENOSYS);
  /* queue 1 is a request queue */
  uint64_t req = vrb_alloc(&eq, sizeof(hwsock_req_hdr), 8);
  uint64_t resp = vrb_alloc(&eq, 64, 8);
  hwsock_req_hdr *h = vrb_host(&eq, req);
  hwsock_le16_set(&h->opcode, HWSOCK_OP_OPEN);
  hwsock_le32_set(&h->sock_id, 2);
  hwsock_le32_set(&h->arg0, HWSOCK_AF_INET);
  hwsock_le32_set(&h->arg1, HWSOCK_SOCK_STREAM);
  vrb_seg segs[2] = {{req, sizeof(*h), 0},
                     {resp, 64, HWSOCK_VRING_DESC_F_WRITE}};
  cr_assert(vrb_add_chain(&eq, segs, 2) >= 0);
  vrb_publish(&eq);
  hwsock_device_kick(dev, 1);
  uint32_t id, len;
  cr_assert(vrb_get_used(&eq, &id, &len));
  cr_assert_eq(len, 32);
  cr_assert_eq(hwsock_le32_get(&((hwsock_resp_hdr *)vrb_host(&eq, resp))->status),
               0);
  close(peer);
  teardown();
}

Test(evq_v1, a_one_queue_device_does_not_offer_the_event_queue) {
  start_device(0, 1);
  hwsock_wire_config cfg;
  hwsock_device_get_config(dev, &cfg);
  cr_assert_eq(hwsock_le64_get(&cfg.device_features) & HWSOCK_F_EVENT_QUEUE, 0);
  cr_assert_eq(hwsock_device_set_features(dev, HWSOCK_F_VERSION_1 |
                                                   HWSOCK_F_EVENT_QUEUE),
               HWSOCK_EINVAL);
  teardown();
}

/* Over an in-band carrier with exactly two queues (vhost-user): NEGOTIATE
 * with the bit turns queue 1 into the event queue. */
Test(evq_v1, inband_negotiate_makes_queue_1_the_event_queue) {
  inband = 1;
  start_device(HWSOCK_F_EVENT_IDX, 2);
  inband = 0;
  cr_assert_eq(request(HWSOCK_OP_NEGOTIATE, 0,
                       (uint32_t)(HWSOCK_F_TCP | HWSOCK_F_EVENT_QUEUE), 0,
                       NULL).status, 0);
  post_buffers(4);
  int peer = connect_one(2);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 2, 100, 0, NULL).status, 0);
  unsigned char msg[10];
  fill(msg, sizeof(msg), 2, 0);
  cr_assert_eq(write(peer, msg, sizeof(msg)), (ssize_t)sizeof(msg));
  for (int i = 0; i < 20000 && got[2] < sizeof(msg); i++) {
    turn();
    reap(0, 0);
  }
  cr_assert_eq(got[2], sizeof(msg));
  cr_assert(check(2, sizeof(msg)));
  close(peer);
  teardown();
}
