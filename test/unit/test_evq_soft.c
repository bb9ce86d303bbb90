/* Soft errors of datagram sockets through the event queue (PROTOCOL.md
 * §16.3, HWSOCK_F_SOFT_ERRORS), device side: a connected UDP socket that
 * sends to a closed loopback port gets the host kernel's ICMP refusal, and
 * must go on receiving datagrams afterwards, as a Linux UDP socket does.
 * Real udp sockets through the udp backend plugin; the driver side is two
 * vring-builder queues (0: requests, 1: the event queue) and a libuv loop
 * run by hand, as in test_evq. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "device_int.h"
#include "support/vring_builder.h"

#define UDP_SO HWSOCK_BUILD_BACKEND_DIR "/udp.so"
#define TCP_SO HWSOCK_BUILD_BACKEND_DIR "/tcp.so"
#define QSIZE 64u
#define BUFLEN 1024u
#define ID 1u
#define TURNS 20000

static uv_loop_t loop;
static vrb rq, eq; /* queue 0: requests; queue 1: events */
static hwsock_device *dev;
static hwsock_policy *pol;
static hwsock_plugin *plug, *plug_tcp;
static uint64_t buf_gpa[QSIZE]; /* event buffer of each head */

/* what the event queue delivered for socket ID */
static unsigned ndata, nerr, nempty, nother;
static uint16_t err_flags;
static uint32_t err_status, err_window;
static char last_data[64];

static void start_device(uint64_t features) {
  char err[256];
  const char *y = "version: 1\ndefault: offload\nrules: []\n";
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(vrb_init(&rq, 0x100000, 1u << 20, QSIZE), 0);
  cr_assert_eq(vrb_init(&eq, 0x1000000, 1u << 20, QSIZE), 0);
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t", &pol, err,
                                         sizeof(err)), 0, "%s", err);
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.num_queues = 2;
  c.max_sockets = 16;
  c.max_queue_size = QSIZE;
  c.policy = pol;
  c.backend_loop = &loop;
  cr_assert_eq(hwsock_device_new(&c, &dev), 0);
  cr_assert_eq(hwsock_plugin_load(UDP_SO, &plug, err, sizeof(err)), 0, "%s",
               err);
  cr_assert_eq(hwsock_device_add_backend(dev, hwsock_plugin_desc(plug), NULL),
               0);
  cr_assert_eq(hwsock_plugin_load(TCP_SO, &plug_tcp, err, sizeof(err)), 0,
               "%s", err);
  cr_assert_eq(hwsock_device_add_backend(dev, hwsock_plugin_desc(plug_tcp),
                                         NULL), 0);
  cr_assert_eq(hwsock_device_add_region(dev, rq.gpa, rq.size, rq.mem), 0);
  cr_assert_eq(hwsock_device_add_region(dev, eq.gpa, eq.size, eq.mem), 0);
  cr_assert_eq(hwsock_device_set_features(dev, HWSOCK_F_VERSION_1 | features),
               0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 0, QSIZE, rq.desc_gpa,
                                         rq.avail_gpa, rq.used_gpa), 0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 1, QSIZE, eq.desc_gpa,
                                         eq.avail_gpa, eq.used_gpa), 0);
  cr_assert_eq(hwsock_device_start(dev), 0);
  ndata = nerr = nempty = nother = 0;
  err_flags = 0;
  err_status = err_window = 0;
  memset(last_data, 0, sizeof(last_data));
}

static void stop_device(void) {
  hwsock_device_free(dev);
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
    ;
  uv_loop_close(&loop);
  hwsock_plugin_unload(plug);
  hwsock_plugin_unload(plug_tcp);
  hwsock_policy_free(pol);
  vrb_free(&rq);
  vrb_free(&eq);
}

static void turn(void) {
  uv_run(&loop, UV_RUN_NOWAIT);
  hwsock_device_flush(dev);
}

/* One request on queue 0, run until it completes; its status. */
static int request(unsigned op, uint32_t a0, uint32_t a1, const char *uri,
                   const void *out, uint32_t out_len) {
  size_t mark = vrb_mark(&rq);
  size_t ul = uri ? strlen(uri) : 0;
  uint64_t req = vrb_alloc(&rq, sizeof(hwsock_req_hdr) + ul, 8);
  uint64_t data = out_len ? vrb_alloc(&rq, out_len, 8) : 0;
  uint64_t resp = vrb_alloc(&rq, 256, 8);
  hwsock_req_hdr *h = vrb_host(&rq, req);
  hwsock_le16_set(&h->opcode, (uint16_t)op);
  hwsock_le32_set(&h->sock_id, ID);
  hwsock_le32_set(&h->arg0, a0);
  hwsock_le32_set(&h->arg1, a1);
  hwsock_le32_set(&h->uri_len, (uint32_t)ul);
  if (ul)
    memcpy(h + 1, uri, ul);
  vrb_seg segs[3];
  unsigned n = 0;
  segs[n++] = (vrb_seg){req, (uint32_t)(sizeof(*h) + ul), 0};
  if (out_len) {
    memcpy(vrb_host(&rq, data), out, out_len);
    segs[n++] = (vrb_seg){data, out_len, 0};
  }
  segs[n++] = (vrb_seg){resp, 256, HWSOCK_VRING_DESC_F_WRITE};
  int head = vrb_add_chain(&rq, segs, n);
  cr_assert(head >= 0);
  vrb_publish(&rq);
  hwsock_device_kick(dev, 0);
  uint32_t uid = UINT32_MAX, ulen;
  for (int i = 0; i < 100000 && !vrb_get_used(&rq, &uid, &ulen); i++) {
    turn();
    if (i > 100)
      usleep(100);
  }
  cr_assert_eq(uid, (uint32_t)head, "request %u never completed", op);
  hwsock_resp_hdr *r = vrb_host(&rq, resp);
  int status = -(int)hwsock_le32_get(&r->status);
  vrb_release(&rq, mark);
  return status;
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

/* Takes every published event, records it, reposts its buffer. */
static void reap(void) {
  uint32_t head, len;
  unsigned n = 0;
  while (vrb_get_used(&eq, &head, &len)) {
    uint64_t g = buf_gpa[head];
    n++;
    if (len == 0) {
      nempty++;
      post_buffer(g);
      continue;
    }
    cr_assert(len >= sizeof(hwsock_event));
    const hwsock_event *ev = vrb_host(&eq, g);
    cr_assert_eq(hwsock_le32_get(&ev->sock_id), ID);
    switch (hwsock_le16_get(&ev->type)) {
    case HWSOCK_EV_DATA: {
      uint32_t dl = hwsock_le32_get(&ev->len);
      cr_assert_eq(len, sizeof(hwsock_event) + HWSOCK_EV_URI_AREA + dl);
      cr_assert(dl < sizeof(last_data));
      memset(last_data, 0, sizeof(last_data));
      memcpy(last_data,
             (const char *)vrb_host(&eq, g) + sizeof(hwsock_event) +
                 HWSOCK_EV_URI_AREA,
             dl);
      ndata++;
      break;
    }
    case HWSOCK_EV_ERROR:
      cr_assert_eq(len, sizeof(hwsock_event));
      nerr++;
      err_flags = hwsock_le16_get(&ev->flags);
      err_status = hwsock_le32_get(&ev->status);
      err_window = hwsock_le32_get(&ev->window);
      break;
    default:
      nother++;
      break;
    }
    post_buffer(g);
  }
  if (n > 0) {
    vrb_publish(&eq);
    hwsock_device_kick(dev, 1);
  }
}

/* Turns the loop until *count reaches want (or gives up). */
static void run_until(const unsigned *count, unsigned want) {
  for (int i = 0; i < TURNS && *count < want; i++) {
    turn();
    reap();
    if (i > 100)
      usleep(100);
  }
}

/* Turns the loop a while, for what should NOT happen. */
static void run_idle(void) {
  for (int i = 0; i < 200; i++) {
    turn();
    reap();
    usleep(200);
  }
}

/* A loopback UDP port nothing is bound to (its socket closed at once: UDP
 * has no TIME_WAIT, a datagram to it is refused by ICMP). */
static uint16_t closed_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* A live peer: a bound loopback UDP socket of the test; its port. */
static int live_peer(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  *port = ntohs(a.sin_port);
  return fd;
}

static void udp_connect(uint16_t port) {
  char uri[64];
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", port);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, uri, NULL, 0), 0);
}

static void udp_send(const char *msg) {
  cr_assert_eq(request(HWSOCK_OP_SEND, 0, 0, NULL, msg,
                       (uint32_t)strlen(msg)), 0);
}

/* The peer answers the device socket's datagram (sent from its socket). */
static void peer_answers(int peer, const char *answer) {
  char b[64];
  struct sockaddr_in src;
  socklen_t sl = sizeof(src);
  ssize_t n = recvfrom(peer, b, sizeof(b), 0, (struct sockaddr *)&src, &sl);
  cr_assert(n > 0, "the peer got nothing");
  cr_assert_eq(sendto(peer, answer, strlen(answer), 0,
                      (struct sockaddr *)&src, sl), (ssize_t)strlen(answer));
}

/* A refused connected socket: the refusal is one ERROR event with
 * HWSOCK_EV_F_SOFT that does not take from the window, and the socket goes
 * on receiving: the same socket, connected to a live peer, gets its
 * answer. Before the soft errors the ERROR ended the read side: nothing
 * more ever arrived. */
Test(evq_soft, a_refused_datagram_socket_goes_on_receiving) {
  start_device(HWSOCK_F_EVENT_QUEUE | HWSOCK_F_SOFT_ERRORS);
  post_buffers(8);
  cr_assert_eq(request(HWSOCK_OP_OPEN, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL, NULL, 0), 0);
  udp_connect(closed_port());
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 4, 0, NULL, NULL, 0), 0);
  udp_send("query1");
  run_until(&nerr, 1);
  cr_assert_eq(nerr, 1, "no ERROR event for the refusal");
  cr_assert_eq(err_status, (uint32_t)-HWSOCK_ECONNREFUSED);
  cr_assert_eq(err_flags, HWSOCK_EV_F_SOFT);
  cr_assert_eq(err_window, 4, "a soft error took from the window");
  run_idle();
  cr_assert_eq(nerr, 1, "the refusal was reported twice");

  /* refused again: a second soft ERROR */
  udp_send("query2");
  run_until(&nerr, 2);
  cr_assert_eq(nerr, 2);
  cr_assert_eq(err_flags, HWSOCK_EV_F_SOFT);

  uint16_t port;
  int peer = live_peer(&port);
  udp_connect(port);
  udp_send("query3");
  peer_answers(peer, "answer3");
  run_until(&ndata, 1);
  cr_assert_eq(ndata, 1, "the socket received nothing after its refusal");
  cr_assert_str_eq(last_data, "answer3");
  cr_assert_eq(nother, 0);
  close(peer);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 0, 0, NULL, NULL, 0), 0);
  stop_device();
}

/* With the window at 0 the device does not read: the refusal waits in the
 * host socket (no event, no spin) and is delivered once credit comes. */
Test(evq_soft, a_refusal_waits_for_the_window) {
  start_device(HWSOCK_F_EVENT_QUEUE | HWSOCK_F_SOFT_ERRORS);
  post_buffers(8);
  uint16_t port;
  int peer = live_peer(&port);
  cr_assert_eq(request(HWSOCK_OP_OPEN, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL, NULL, 0), 0);
  udp_connect(port);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 1, 0, NULL, NULL, 0), 0);
  udp_send("query1");
  peer_answers(peer, "answer1");
  run_until(&ndata, 1);
  cr_assert_eq(ndata, 1);
  close(peer); /* now its port is closed */
  udp_send("query2");
  run_idle();
  cr_assert_eq(nerr + nempty, 0, "the device read with the window at 0");
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 1, 0, NULL, NULL, 0), 0);
  run_until(&nerr, 1);
  cr_assert_eq(nerr, 1, "the refusal was lost");
  cr_assert_eq(err_flags, HWSOCK_EV_F_SOFT);
  cr_assert_eq(err_window, 1);
  peer = live_peer(&port);
  udp_connect(port);
  udp_send("query3");
  peer_answers(peer, "answer3");
  run_until(&ndata, 2);
  cr_assert_eq(ndata, 2);
  cr_assert_str_eq(last_data, "answer3");
  close(peer);
  stop_device();
}

static uint64_t no_buffer_count(void) {
  hwsock_device_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  hwsock_device_get_stats(dev, &st);
  return st.ev_no_buffer;
}

/* With no event buffer posted the device does not read either: the
 * refusal waits in the host socket (it waits in the ready line, counted
 * once, not retried), then comes with the first buffer, and the socket
 * goes on receiving. */
Test(evq_soft, a_refusal_waits_for_a_buffer) {
  start_device(HWSOCK_F_EVENT_QUEUE | HWSOCK_F_SOFT_ERRORS);
  cr_assert_eq(request(HWSOCK_OP_OPEN, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL, NULL, 0), 0);
  udp_connect(closed_port());
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 4, 0, NULL, NULL, 0), 0);
  udp_send("query1");
  for (int i = 0; i < TURNS && no_buffer_count() == 0; i++)
    turn();
  uint64_t n = no_buffer_count();
  cr_assert_geq(n, 1, "the refusal did not wait for a buffer");
  /* Only the backend's loop, no flush by the VMM: the host socket's
   * pending error (POLLERR, which poll reports whatever is asked) must not
   * wake the device again and again. */
  for (int i = 0; i < 200; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(200);
  }
  cr_assert_eq(no_buffer_count(), n, "the device was woken without a buffer");
  reap();
  cr_assert_eq(nerr + ndata + nempty, 0);
  post_buffers(4);
  run_until(&nerr, 1);
  cr_assert_eq(nerr, 1, "the refusal was lost");
  cr_assert_eq(err_flags, HWSOCK_EV_F_SOFT);
  cr_assert_eq(err_window, 4);
  uint16_t port;
  int peer = live_peer(&port);
  udp_connect(port);
  udp_send("query2");
  peer_answers(peer, "answer2");
  run_until(&ndata, 1);
  cr_assert_eq(ndata, 1);
  cr_assert_str_eq(last_data, "answer2");
  close(peer);
  stop_device();
}

/* A driver of the event queue without F_SOFT_ERRORS takes every ERROR for
 * the end of the read side. The device does not tell it the refusal: the
 * buffer comes back empty (no event), and the socket keeps receiving. */
Test(evq_soft, without_the_bit_a_refusal_is_dropped_not_fatal) {
  start_device(HWSOCK_F_EVENT_QUEUE);
  post_buffers(8);
  cr_assert_eq(request(HWSOCK_OP_OPEN, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM,
                       NULL, NULL, 0), 0);
  udp_connect(closed_port());
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 4, 0, NULL, NULL, 0), 0);
  udp_send("query1");
  run_until(&nempty, 1);
  cr_assert_eq(nerr, 0, "an ERROR event to a driver without the bit");
  cr_assert_eq(nempty, 1, "the read that met the refusal never ended");
  uint16_t port;
  int peer = live_peer(&port);
  udp_connect(port);
  udp_send("query2");
  peer_answers(peer, "answer2");
  run_until(&ndata, 1);
  cr_assert_eq(ndata, 1, "the socket received nothing after its refusal");
  cr_assert_str_eq(last_data, "answer2");
  close(peer);
  stop_device();
}

/* The device offers the bit exactly with the event queue. */
Test(evq_soft, the_bit_is_offered_with_the_event_queue) {
  start_device(HWSOCK_F_EVENT_QUEUE | HWSOCK_F_SOFT_ERRORS);
  hwsock_wire_config cfg;
  hwsock_device_get_config(dev, &cfg);
  uint64_t f = hwsock_le64_get(&cfg.device_features);
  cr_assert(f & HWSOCK_F_SOFT_ERRORS);
  cr_assert(f & HWSOCK_F_EVENT_QUEUE);
  stop_device();
}

/* Soft errors are a datagram socket's only: with the bit, a stream
 * socket's read error (a reset) is still one ERROR without the flag, its
 * last event. */
Test(evq_soft, a_stream_read_error_still_ends_the_read_side) {
  start_device(HWSOCK_F_EVENT_QUEUE | HWSOCK_F_SOFT_ERRORS);
  post_buffers(8);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(l, 1), 0);
  cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", ntohs(a.sin_port));
  cr_assert_eq(request(HWSOCK_OP_OPEN, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL, NULL, 0), 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, uri, NULL, 0), 0);
  int peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  cr_assert(peer >= 0);
  cr_assert_eq(request(HWSOCK_OP_CREDIT, 1000, 0, NULL, NULL, 0), 0);
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  cr_assert_eq(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(peer); /* a reset */
  run_until(&nerr, 1);
  cr_assert_eq(nerr, 1, "no ERROR event for the reset");
  cr_assert_eq(err_status, (uint32_t)-HWSOCK_ECONNRESET);
  cr_assert_eq(err_flags, 0, "a stream's error flagged soft");
  run_idle();
  cr_assert_eq(nerr + ndata + nother, 1, "an event after the last one");
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 0, 0, NULL, NULL, 0), 0);
  close(l);
  stop_device();
}
