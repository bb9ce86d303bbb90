/* The guest driver core with the event queue (PROTOCOL.md §16) against the
 * real device in the same process: the device runs on a libuv loop in its
 * own thread (kicks and interrupts are eventfds, as in a VMM), the driver
 * in the test's threads. Host peers are loopback sockets of the test. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "hwsock/device.h"
#include "hwsock/guest.h"
#include "hwsock/policy.h"
#include "hwsock/stats.h"
#include "hwsock/uv.h"

#define NQ 2
#define MEM (48u << 20)
#define GPA 0x40000000ull
#define MAXS 4096u

static uv_loop_t loop;
static uv_async_t stop_async;
static pthread_t loop_thr;
static hwsock_device *dev;
static hwsock_uv *uva;
static hwsock_policy *pol;
static hwsock_plugin *plug, *plug_udp;
static int kickfd[NQ], callfd[NQ];
static void *mem;
static hwsock_guest *g;
static int lst = -1;
static char luri[64];

static void on_notify(void *o, unsigned q) {
  (void)o;
  if (q < NQ)
    hwsock_eventfd_signal(callfd[q]);
}
static const hwsock_device_ops dops = {.size = sizeof(dops),
                                       .notify = on_notify};

static int op_set_features(void *o, uint64_t f) {
  return hwsock_device_set_features(dev, f);
}
static int op_setup_queue(void *o, unsigned q, unsigned size, uint64_t d,
                          uint64_t a, uint64_t u) {
  return hwsock_device_queue_setup(dev, q, size, d, a, u);
}
static int op_start(void *o) { return hwsock_device_start(dev); }
static void op_kick(void *o, unsigned q) { hwsock_eventfd_signal(kickfd[q]); }
static int op_wait(void *o, unsigned q, int timeout_ms) {
  struct pollfd p = {.fd = callfd[q], .events = POLLIN};
  if (poll(&p, 1, timeout_ms) > 0) {
    uint64_t v;
    (void)!read(callfd[q], &v, sizeof(v));
  }
  return 0;
}
static const hwsock_guest_ops gops = {.size = sizeof(gops),
                                      .set_features = op_set_features,
                                      .setup_queue = op_setup_queue,
                                      .start = op_start,
                                      .kick = op_kick,
                                      .wait = op_wait};

static void on_stop(uv_async_t *a) { uv_stop(&loop); }
static void *loop_main(void *arg) {
  uv_run(&loop, UV_RUN_DEFAULT);
  return NULL;
}

/* dev (backends, the guest's memory) and its loop adapter watching the
 * kicks: at the start, and again for a restore (move_device). */
static void new_device(void) {
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.num_queues = NQ;
  c.max_sockets = MAXS;
  c.policy = pol;
  c.backend_loop = &loop;
  c.ops = &dops;
  cr_assert_eq(hwsock_device_new(&c, &dev), 0);
  cr_assert_eq(hwsock_device_add_backend(dev, hwsock_plugin_desc(plug), NULL),
               0);
  cr_assert_eq(hwsock_device_add_backend(dev, hwsock_plugin_desc(plug_udp),
                                         NULL), 0);
  cr_assert_eq(hwsock_device_add_region(dev, GPA, MEM, mem), 0);
  cr_assert_eq(hwsock_uv_new(&loop, dev, &uva), 0);
  for (int q = 0; q < NQ; q++)
    cr_assert_eq(hwsock_uv_watch_kick(uva, (unsigned)q, kickfd[q]), 0);
}

static void start(int event_queue) {
  char err[256];
  const char *y = "version: 1\ndefault: offload\nrules: []\n";
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(uv_async_init(&loop, &stop_async, on_stop), 0);
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t", &pol, err,
                                         sizeof(err)), 0, "%s", err);
  cr_assert_eq(hwsock_plugin_load(HWSOCK_BUILD_BACKEND_DIR "/tcp.so", &plug,
                                  err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(hwsock_plugin_load(HWSOCK_BUILD_BACKEND_DIR "/udp.so",
                                  &plug_udp, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(posix_memalign(&mem, 4096, MEM), 0);
  memset(mem, 0, MEM);
  for (int q = 0; q < NQ; q++) {
    kickfd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    callfd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cr_assert(kickfd[q] >= 0 && callfd[q] >= 0);
  }
  new_device();
  hwsock_wire_config wc;
  hwsock_device_get_config(dev, &wc);
  hwsock_guest_config gc;
  hwsock_guest_config_init(&gc);
  gc.mem = mem;
  gc.mem_gpa = GPA;
  gc.mem_size = MEM;
  gc.device = &wc;
  gc.ops = &gops;
  gc.event_queue = event_queue;
  gc.ev_window = 64u << 10;
  /* the device is driven from this thread until its loop runs */
  cr_assert_eq(hwsock_guest_new(&gc, &g), 0);
  cr_assert_eq(pthread_create(&loop_thr, NULL, loop_main, NULL), 0);

  lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(lst, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(lst, 4096), 0);
  cr_assert_eq(getsockname(lst, (struct sockaddr *)&a, &al), 0);
  snprintf(luri, sizeof(luri), "tcp://127.0.0.1:%u", ntohs(a.sin_port));
}

static void stop(void) {
  hwsock_guest_free(g);
  uv_async_send(&stop_async);
  pthread_join(loop_thr, NULL);
  hwsock_uv_close(uva);
  hwsock_device_free(dev);
  uv_close((uv_handle_t *)&stop_async, NULL);
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
    ;
  uv_loop_close(&loop);
  hwsock_plugin_unload(plug);
  hwsock_plugin_unload(plug_udp);
  hwsock_policy_free(pol);
  for (int q = 0; q < NQ; q++) {
    close(kickfd[q]);
    close(callfd[q]);
  }
  free(mem);
  close(lst);
}

static void fill(unsigned char *p, size_t n, unsigned seed, size_t off) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)((off + i) * 31 + seed);
}

/* A guest socket connected to the listener; *peer the host end. */
static int gconnect(int *peer) {
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(s >= 0, "socket: %d", s);
  cr_assert_eq(hwsock_guest_connect(g, s, luri), 0);
  *peer = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
  cr_assert(*peer >= 0);
  return s;
}

typedef struct writer {
  int fd;
  size_t n;
  unsigned seed;
} writer;

static void *write_main(void *arg) {
  writer *w = arg;
  static __thread unsigned char chunk[65536];
  size_t off = 0;
  while (off < w->n) {
    size_t k = w->n - off < sizeof(chunk) ? w->n - off : sizeof(chunk);
    fill(chunk, k, w->seed, off);
    ssize_t r = write(w->fd, chunk, k);
    if (r <= 0)
      break;
    off += (size_t)r;
  }
  return NULL;
}

TestSuite(guest_evq, .timeout = 300);

Test(guest_evq, a_stream_arrives_whole_through_the_event_queue) {
  start(1);
  cr_assert(hwsock_guest_features(g) & HWSOCK_F_EVENT_QUEUE);
  int peer;
  int s = gconnect(&peer);
  enum { N = 4u << 20 };
  writer w = {peer, N, 7};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, write_main, &w), 0);
  static unsigned char got[N], want[N];
  size_t off = 0;
  while (off < N) {
    ssize_t r = hwsock_guest_recv(g, s, got + off, N - off, 0);
    cr_assert(r > 0, "recv: %zd after %zu bytes", r, off);
    off += (size_t)r;
  }
  pthread_join(t, NULL);
  fill(want, N, 7, 0);
  cr_assert(memcmp(got, want, N) == 0, "bytes differ");
  /* the peer's FIN: end of file */
  close(peer);
  cr_assert_eq(hwsock_guest_recv(g, s, got, 16, 0), 0);
  /* sends go the usual way */
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  stop();
}

Test(guest_evq, many_idle_sockets_hold_no_slot_and_wait_reports_each) {
  enum { N = 1000 };
  start(1);
  static int s[N], peer[N], seen[N];
  for (int i = 0; i < N; i++) {
    s[i] = gconnect(&peer[i]);
    cr_assert_eq(hwsock_guest_watch(g, s[i], HWSOCK_GUEST_IN), 0);
  }
  /* nothing arrived: nothing is ready */
  hwsock_guest_event ev[64];
  cr_assert_eq(hwsock_guest_wait(g, ev, 64, 0), 0);
  for (int i = 0; i < N; i++)
    cr_assert_eq(write(peer[i], "x", 1), 1);
  int left = N;
  while (left > 0) {
    int n = hwsock_guest_wait(g, ev, 64, 10000);
    cr_assert(n > 0, "wait: %d with %d sockets not reported", n, left);
    for (int k = 0; k < n; k++) {
      char c;
      cr_assert(ev[k].events & HWSOCK_GUEST_IN);
      ssize_t r = hwsock_guest_recv(g, ev[k].sock, &c, 1,
                                    HWSOCK_GUEST_RECV_DONTWAIT);
      if (r == HWSOCK_EAGAIN)
        continue;
      cr_assert_eq(r, 1);
      cr_assert_eq(c, 'x');
      cr_assert(ev[k].sock >= 0 && ev[k].sock < (int)MAXS);
      int idx = -1;
      for (int i = 0; i < N; i++)
        if (s[i] == ev[k].sock)
          idx = i;
      cr_assert(idx >= 0);
      cr_assert_eq(seen[idx], 0, "socket %d reported twice", idx);
      seen[idx] = 1;
      left--;
    }
  }
  /* drained: not ready any more */
  cr_assert_eq(hwsock_guest_wait(g, ev, 64, 0), 0);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(hwsock_guest_close(g, s[i]), 0);
    close(peer[i]);
  }
  stop();
}

Test(guest_evq, a_listener_is_reported_when_a_connection_waits) {
  start(1);
  int l = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(l >= 0);
  cr_assert_eq(hwsock_guest_bind(g, l, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(hwsock_guest_listen(g, l, 16), 0);
  char name[HWSOCK_URI_MAX + 1];
  cr_assert_eq(hwsock_guest_getname(g, l, 0, name, sizeof(name)), 0);
  cr_assert_eq(hwsock_guest_watch(g, l, HWSOCK_GUEST_ACCEPT), 0);
  hwsock_guest_event ev[4];
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 100), 0);
  unsigned port = (unsigned)atoi(strrchr(name, ':') + 1);
  for (int round = 0; round < 3; round++) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int n = hwsock_guest_wait(g, ev, 4, 10000);
    cr_assert_eq(n, 1);
    cr_assert_eq(ev[0].sock, l);
    cr_assert(ev[0].events & HWSOCK_GUEST_ACCEPT);
    int t = hwsock_guest_accept(g, l, NULL, 0);
    cr_assert(t >= 0, "accept: %d", t);
    cr_assert_eq(write(c, "hi", 2), 2);
    char buf[2];
    cr_assert_eq(hwsock_guest_recv(g, t, buf, 2, HWSOCK_RECV_WAITALL), 2);
    cr_assert_eq(memcmp(buf, "hi", 2), 0);
    cr_assert_eq(hwsock_guest_close(g, t), 0);
    close(c);
  }
  cr_assert_eq(hwsock_guest_close(g, l), 0);
  stop();
}

Test(guest_evq, a_version_1_driver_on_the_same_device_uses_recv_requests) {
  start(0);
  cr_assert_eq(hwsock_guest_features(g) & HWSOCK_F_EVENT_QUEUE, 0);
  int peer;
  int s = gconnect(&peer);
  cr_assert_eq(write(peer, "hello", 5), 5);
  char buf[8];
  cr_assert_eq(hwsock_guest_recv(g, s, buf, 5, HWSOCK_RECV_WAITALL), 5);
  cr_assert_eq(memcmp(buf, "hello", 5), 0);
  hwsock_guest_event ev[1];
  cr_assert_eq(hwsock_guest_watch(g, s, HWSOCK_GUEST_IN), HWSOCK_EOPNOTSUPP);
  cr_assert_eq(hwsock_guest_wait(g, ev, 1, 0), HWSOCK_EOPNOTSUPP);
  close(peer);
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  stop();
}

/* An echo server over many host sockets in one thread (poll). It never
 * stops reading: what it cannot write back yet waits in its own buffer, so
 * the guest's sends never block on it. */
typedef struct echo_srv {
  int n;
  int *fd;
  unsigned char **pend;
  size_t *plen, cap;
  volatile int stop;
} echo_srv;

static void *echo_main(void *arg) {
  echo_srv *e = arg;
  struct pollfd *p = calloc((size_t)e->n, sizeof(*p));
  cr_assert(p != NULL);
  static unsigned char tmp[65536];
  while (!e->stop) {
    for (int i = 0; i < e->n; i++) {
      p[i].fd = e->fd[i];
      p[i].events = (short)(POLLIN | (e->plen[i] ? POLLOUT : 0));
      p[i].revents = 0;
    }
    if (poll(p, (nfds_t)e->n, 50) <= 0)
      continue;
    for (int i = 0; i < e->n; i++) {
      if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
          e->plen[i] < e->cap) {
        ssize_t r = read(e->fd[i], tmp, e->cap - e->plen[i] < sizeof(tmp)
                                            ? e->cap - e->plen[i]
                                            : sizeof(tmp));
        if (r > 0) {
          memcpy(e->pend[i] + e->plen[i], tmp, (size_t)r);
          e->plen[i] += (size_t)r;
        }
      }
      if (e->plen[i]) {
        ssize_t w = send(e->fd[i], e->pend[i], e->plen[i],
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
          memmove(e->pend[i], e->pend[i] + w, e->plen[i] - (size_t)w);
          e->plen[i] -= (size_t)w;
        }
      }
    }
  }
  free(p);
  return NULL;
}

/* Reads exactly len bytes of socket s, or fails the test when no byte of
 * it arrived for `stuck_s` seconds (a hang is reported, not waited out). */
static void recv_all_bounded(int s, unsigned char *buf, size_t len,
                             int stuck_s, const char *what, int idx) {
  size_t off = 0;
  struct timespec last, now;
  clock_gettime(CLOCK_MONOTONIC, &last);
  while (off < len) {
    ssize_t r = hwsock_guest_recv(g, s, buf + off, len - off,
                                  HWSOCK_GUEST_RECV_DONTWAIT);
    if (r > 0) {
      off += (size_t)r;
      clock_gettime(CLOCK_MONOTONIC, &last);
      continue;
    }
    cr_assert_eq(r, HWSOCK_EAGAIN, "%s: connection %d: recv %zd after %zu",
                 what, idx, r, off);
    clock_gettime(CLOCK_MONOTONIC, &now);
    cr_assert(now.tv_sec - last.tv_sec < stuck_s,
              "%s: connection %d stuck: %zu of %zu bytes, nothing for %d s",
              what, idx, off, len, stuck_s);
    usleep(1000);
  }
}

/* Issue 13's conc hang: every connection echoes one byte (its window is
 * open), then 64 KiB is written on every connection, then the echoes are
 * read back in order. Together the windows far exceed the event buffers:
 * the data of connections not read yet must not keep the one being read
 * from getting a buffer. */
Test(guest_evq, many_connections_read_in_order_never_run_the_buffers_dry) {
  enum { N = 300, K = 65536, STUCK_S = 30 };
  start(1);
  static int s[N], peer[N];
  static unsigned char *pend[N];
  static size_t plen[N];
  for (int i = 0; i < N; i++) {
    s[i] = gconnect(&peer[i]);
    pend[i] = malloc(K + 1);
    cr_assert(pend[i] != NULL);
  }
  echo_srv e = {.n = N, .fd = peer, .pend = pend, .plen = plen, .cap = K + 1};
  pthread_t et;
  cr_assert_eq(pthread_create(&et, NULL, echo_main, &e), 0);
  unsigned char one;
  for (int i = 0; i < N; i++) {
    one = (unsigned char)i;
    cr_assert_eq(hwsock_guest_send(g, s[i], &one, 1, 0), 1);
    unsigned char back = 0;
    recv_all_bounded(s[i], &back, 1, STUCK_S, "one-byte echo", i);
    cr_assert_eq(back, one);
  }
  static unsigned char out[K], in[K];
  for (int i = 0; i < N; i++) {
    fill(out, K, (unsigned)i, 0);
    size_t off = 0;
    while (off < K) {
      ssize_t w = hwsock_guest_send(g, s[i], out + off, K - off, 0);
      cr_assert(w > 0, "send on connection %d: %zd", i, w);
      off += (size_t)w;
    }
  }
  for (int i = 0; i < N; i++) {
    recv_all_bounded(s[i], in, K, STUCK_S, "64 KiB echo", i);
    fill(out, K, (unsigned)i, 0);
    cr_assert(memcmp(in, out, K) == 0, "connection %d: bytes differ", i);
  }
  e.stop = 1;
  pthread_join(et, NULL);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(hwsock_guest_close(g, s[i]), 0);
    close(peer[i]);
    free(pend[i]);
  }
  stop();
}

/* The same with datagrams: every socket's window (64 datagrams) is filled
 * before any is read, many times the buffers together; read back socket
 * by socket, each datagram with its length, bytes and source. */
Test(guest_evq, many_datagram_sockets_read_in_turn_never_run_the_buffers_dry) {
  enum { N = 40, D = 48, STUCK_S = 30 };
  start(1);
  static int s[N];
  static unsigned port[N];
  for (int i = 0; i < N; i++) {
    s[i] = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
    cr_assert(s[i] >= 0, "socket: %d", s[i]);
    cr_assert_eq(hwsock_guest_bind(g, s[i], "udp://127.0.0.1:0"), 0);
    char name[HWSOCK_URI_MAX + 1];
    cr_assert_eq(hwsock_guest_getname(g, s[i], 0, name, sizeof(name)), 0);
    port[i] = (unsigned)atoi(strrchr(name, ':') + 1);
    /* nothing there: puts it in event mode (its window is granted) */
    char c;
    cr_assert_eq(hwsock_guest_recv(g, s[i], &c, 1, HWSOCK_GUEST_RECV_DONTWAIT),
                 HWSOCK_EAGAIN);
  }
  int h = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(h, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(h, (struct sockaddr *)&a, &al), 0);
  char src[64];
  snprintf(src, sizeof(src), "udp://127.0.0.1:%u", ntohs(a.sin_port));
  static unsigned char out[1024], in[1024];
  for (int k = 0; k < D; k++)
    for (int i = 0; i < N; i++) {
      size_t n = 1 + (size_t)((i * 37 + k * 101) % 1000);
      fill(out, n, (unsigned)(i * D + k), 0);
      struct sockaddr_in to = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port[i]),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
      cr_assert_eq(sendto(h, out, n, 0, (struct sockaddr *)&to, sizeof(to)),
                   (ssize_t)n);
      if ((i & 7) == 0)
        usleep(200); /* the host socket's receive buffer is not a test */
    }
  for (int i = 0; i < N; i++)
    for (int k = 0; k < D; k++) {
      size_t n = 1 + (size_t)((i * 37 + k * 101) % 1000);
      char from[HWSOCK_URI_MAX + 1];
      struct timespec last, now;
      clock_gettime(CLOCK_MONOTONIC, &last);
      ssize_t r;
      while ((r = hwsock_guest_recvfrom(g, s[i], in, sizeof(in),
                                        HWSOCK_GUEST_RECV_DONTWAIT, from,
                                        sizeof(from), NULL)) == HWSOCK_EAGAIN) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        cr_assert(now.tv_sec - last.tv_sec < STUCK_S,
                  "socket %d stuck before datagram %d of %d", i, k, D);
        usleep(1000);
      }
      cr_assert_eq(r, (ssize_t)n, "socket %d datagram %d: %zd", i, k, r);
      fill(out, n, (unsigned)(i * D + k), 0);
      cr_assert(memcmp(in, out, n) == 0, "socket %d datagram %d differs", i,
                k);
      cr_assert_str_eq(from, src);
    }
  for (int i = 0; i < N; i++)
    cr_assert_eq(hwsock_guest_close(g, s[i]), 0);
  close(h);
  stop();
}

/* While unread connections hold most buffers, a peer trickles one byte at
 * a time: each piece is its own event, copied out of its buffer (and
 * appended to the socket's last copy); every byte arrives, in order, and
 * so does everything the unread connections were sent. */
Test(guest_evq, a_trickle_while_the_buffers_are_low_arrives_in_order) {
  enum { N = 60, K = 65536, T = 3000, STUCK_S = 30 };
  start(1);
  static int s[N], peer[N];
  for (int i = 0; i < N; i++)
    s[i] = gconnect(&peer[i]);
  int tp, t = gconnect(&tp);
  static unsigned char out[K], in[K];
  unsigned char c;
  /* windows open; then the unread data of N connections fills buffers */
  for (int i = 0; i < N; i++)
    cr_assert_eq(hwsock_guest_recv(g, s[i], &c, 1, HWSOCK_GUEST_RECV_DONTWAIT),
                 HWSOCK_EAGAIN);
  cr_assert_eq(hwsock_guest_recv(g, t, &c, 1, HWSOCK_GUEST_RECV_DONTWAIT),
               HWSOCK_EAGAIN);
  for (int i = 0; i < N; i++) {
    writer w = {peer[i], K, (unsigned)i};
    write_main(&w);
  }
  static unsigned char tin[T];
  size_t tgot = 0;
  for (int k = 0; k < T; k++) {
    c = (unsigned char)(k * 7 + 3);
    cr_assert_eq(write(tp, &c, 1), 1);
    usleep(50);
    if (k % 500 == 499) { /* read some meanwhile: copies are consumed too */
      ssize_t r = hwsock_guest_recv(g, t, tin + tgot, T - tgot,
                                    HWSOCK_GUEST_RECV_DONTWAIT);
      if (r > 0)
        tgot += (size_t)r;
    }
  }
  recv_all_bounded(t, tin + tgot, T - tgot, STUCK_S, "trickle", -1);
  for (int k = 0; k < T; k++)
    cr_assert_eq(tin[k], (unsigned char)(k * 7 + 3), "trickle byte %d", k);
  for (int i = 0; i < N; i++) {
    recv_all_bounded(s[i], in, K, STUCK_S, "64 KiB", i);
    fill(out, K, (unsigned)i, 0);
    cr_assert(memcmp(in, out, K) == 0, "connection %d: bytes differ", i);
  }
  for (int i = 0; i < N; i++) {
    cr_assert_eq(hwsock_guest_close(g, s[i]), 0);
    close(peer[i]);
  }
  cr_assert_eq(hwsock_guest_close(g, t), 0);
  close(tp);
  stop();
}

/* The device moves as a snapshot moves it (hwsock_device_save, then
 * hwsock_device_restore into a new device on the same guest memory), with
 * the guest listener's port taken by a host socket in between: the
 * listener and every connection come back reset. Returns that host socket;
 * *nreset what restore reported. */
static int move_device_port_taken(unsigned port, int *nreset) {
  uv_async_send(&stop_async);
  pthread_join(loop_thr, NULL); /* the device is this thread's now */
  cr_assert_geq(hwsock_device_quiesce(dev, 1), 0);
  size_t cap = hwsock_device_save_bound(dev), n = 0;
  unsigned char *blob = malloc(cap);
  cr_assert(blob != NULL);
  cr_assert_eq(hwsock_device_save(dev, blob, cap, &n), 0);
  hwsock_uv_close(uva);
  hwsock_device_free(dev);
  for (int i = 0; i < 8; i++)
    uv_run(&loop, UV_RUN_NOWAIT); /* the closed handles' callbacks */
  int other = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(other, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(other, 4), 0);
  new_device();
  *nreset = hwsock_device_restore(dev, blob, n);
  free(blob);
  cr_assert_eq(pthread_create(&loop_thr, NULL, loop_main, NULL), 0);
  return other;
}

/* A socket the device resets gets an ERROR event (§16): poll() reports
 * POLLERR whatever was asked, and so must hwsock_guest_wait() — a listener
 * watched only for ACCEPT, a connection only for OUT, would otherwise wait
 * for ever. The accept or send that follows returns the error. */
Test(guest_evq, a_reset_socket_is_reported_for_what_it_is_watched_for) {
  start(1);
  int l = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(l >= 0);
  cr_assert_eq(hwsock_guest_bind(g, l, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(hwsock_guest_listen(g, l, 16), 0);
  char name[HWSOCK_URI_MAX + 1];
  cr_assert_eq(hwsock_guest_getname(g, l, 0, name, sizeof(name)), 0);
  unsigned port = (unsigned)atoi(strrchr(name, ':') + 1);
  cr_assert_eq(hwsock_guest_watch(g, l, HWSOCK_GUEST_ACCEPT), 0);
  /* a connection that was read from (its window granted), now watched
   * only for room to send; the device's first WRITABLE is used up */
  int peer, s = gconnect(&peer);
  cr_assert_eq(hwsock_guest_watch(g, s, HWSOCK_GUEST_IN), 0);
  cr_assert_eq(hwsock_guest_watch(g, s, HWSOCK_GUEST_OUT), 0);
  hwsock_guest_event ev[4];
  int got_out = 0;
  for (int i = 0; i < 100 && !got_out; i++) {
    int n = hwsock_guest_wait(g, ev, 4, 10000);
    cr_assert_gt(n, 0);
    for (int k = 0; k < n; k++) {
      cr_assert_eq(ev[k].sock, s, "the listener is not ready yet");
      got_out |= (ev[k].events & HWSOCK_GUEST_OUT) != 0;
    }
  }
  cr_assert(got_out);
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 0), 0);

  int nreset = 0, other = move_device_port_taken(port, &nreset);
  cr_assert_eq(nreset, 2, "restore: %d", nreset);

  unsigned seen_l = 0, seen_s = 0;
  while (!(seen_l & HWSOCK_GUEST_ACCEPT) || !(seen_s & HWSOCK_GUEST_OUT)) {
    int n = hwsock_guest_wait(g, ev, 4, 10000);
    cr_assert_gt(n, 0, "not reported: listener %#x, connection %#x", seen_l,
                 seen_s);
    for (int k = 0; k < n; k++) {
      cr_assert(ev[k].sock == l || ev[k].sock == s);
      if (ev[k].sock == l)
        seen_l |= ev[k].events;
      else
        seen_s |= ev[k].events;
    }
  }
  cr_assert_eq(seen_l, HWSOCK_GUEST_ACCEPT); /* only what was asked */
  cr_assert_eq(seen_s, HWSOCK_GUEST_OUT);
  cr_assert_eq(hwsock_guest_accept(g, l, NULL, 0), HWSOCK_ECONNRESET);
  cr_assert_eq(hwsock_guest_send(g, s, "x", 1, 0), HWSOCK_ECONNRESET);
  char b;
  cr_assert_lt(hwsock_guest_recv(g, s, &b, 1, 0), 0);
  /* level-triggered, as poll's POLLERR (guest.h): the calls that returned
   * the error consume nothing; every wait reports both again, the
   * connection for OUT too (one-shot only for the device's room reports),
   * until they are closed or unwatched */
  for (int round = 0; round < 2; round++) {
    int n = hwsock_guest_wait(g, ev, 4, 10000);
    cr_assert_eq(n, 2, "round %d: %d reported", round, n);
    for (int k = 0; k < n; k++)
      cr_assert_eq(ev[k].events, ev[k].sock == l ? HWSOCK_GUEST_ACCEPT
                                                 : HWSOCK_GUEST_OUT);
  }
  cr_assert_eq(hwsock_guest_watch(g, s, 0), 0);
  int n = hwsock_guest_wait(g, ev, 4, 10000);
  cr_assert_eq(n, 1);
  cr_assert_eq(ev[0].sock, l);
  cr_assert_eq(hwsock_guest_close(g, l), 0);
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  close(peer);
  close(other);
  stop();
}

/* A socket that stopped being watched stays linked in the ready list until
 * a wait passes it; closing it and opening a new socket on the same id must
 * not cut the list there: the sockets behind it were lost for good (they
 * stayed marked as linked, so no event linked them again) and a wait
 * never reported them (hwsock-run's dispatcher stalled connections). */
Test(guest_evq, a_reused_id_does_not_cut_the_ready_list) {
  start(1);
  int pa, pb;
  int a = gconnect(&pa), b = gconnect(&pb);
  cr_assert_eq(hwsock_guest_watch(g, a, HWSOCK_GUEST_IN), 0);
  cr_assert_eq(hwsock_guest_watch(g, b, HWSOCK_GUEST_IN), 0);
  hwsock_guest_event ev[4];
  cr_assert_eq(write(pa, "a", 1), 1);
  int n = hwsock_guest_wait(g, ev, 4, 10000); /* the list: a */
  cr_assert_eq(n, 1);
  cr_assert_eq(ev[0].sock, a);
  cr_assert_eq(write(pb, "b", 1), 1);
  for (int i = 0; i < 100 && n != 2; i++) /* the list: a, b */
    if ((n = hwsock_guest_wait(g, ev, 4, 10000)) == 1)
      usleep(10000);
  cr_assert_eq(n, 2, "wait: %d", n);
  cr_assert_eq(ev[0].sock, a);
  cr_assert_eq(ev[1].sock, b);
  /* a leaves: unwatched (still linked), closed, its id taken again */
  cr_assert_eq(hwsock_guest_watch(g, a, 0), 0);
  cr_assert_eq(hwsock_guest_close(g, a), 0);
  close(pa);
  int c = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert_eq(c, a, "the id is reused (lowest free): %d", c);
  n = hwsock_guest_wait(g, ev, 4, 2000);
  cr_assert_eq(n, 1, "b ready with its byte unread, wait: %d", n);
  cr_assert_eq(ev[0].sock, b);
  char x;
  cr_assert_eq(hwsock_guest_recv(g, b, &x, 1, HWSOCK_GUEST_RECV_DONTWAIT), 1);
  cr_assert_eq(x, 'b');
  cr_assert_eq(hwsock_guest_close(g, c), 0);
  cr_assert_eq(hwsock_guest_close(g, b), 0);
  close(pb);
  stop();
}

/* A connected datagram socket that sends to a closed port gets the host's
 * ICMP refusal (PROTOCOL.md §16.9). As a Linux UDP socket: watched for IN
 * it becomes ready, the next recv returns ECONNREFUSED once and it is not
 * ready any more; a second refusal fails the next send instead, once; a
 * third is SO_ERROR's; and the same socket, connected to a live peer, still
 * receives. Before soft errors the first refusal ended the read side: recv
 * returned end of file for ever and the socket stayed ready. */
Test(guest_evq, a_refused_datagram_socket_reports_once_and_goes_on_receiving) {
  start(1);
  cr_assert(hwsock_guest_features(g) & HWSOCK_F_SOFT_ERRORS);
  int h = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(h, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(h, (struct sockaddr *)&a, &al), 0);
  char uri[64];
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", ntohs(a.sin_port));
  close(h); /* its port is closed now (UDP: no TIME_WAIT) */
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
  cr_assert(s >= 0, "socket: %d", s);
  cr_assert_eq(hwsock_guest_connect(g, s, uri), 0);
  cr_assert_eq(hwsock_guest_watch(g, s, HWSOCK_GUEST_IN), 0);
  hwsock_guest_event ev[4];
  char b[64];

  /* 1. recv reports it, once */
  cr_assert_eq(hwsock_guest_send(g, s, "q1", 2, 0), 2);
  int n = hwsock_guest_wait(g, ev, 4, 10000);
  cr_assert_eq(n, 1, "no readiness after the refusal: %d", n);
  cr_assert_eq(ev[0].sock, s);
  cr_assert(ev[0].events & HWSOCK_GUEST_IN);
  cr_assert_eq(hwsock_guest_recv(g, s, b, sizeof(b),
                                 HWSOCK_GUEST_RECV_DONTWAIT),
               HWSOCK_ECONNREFUSED);
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 300), 0,
               "the refusal was reported twice");
  cr_assert_eq(hwsock_guest_recv(g, s, b, sizeof(b),
                                 HWSOCK_GUEST_RECV_DONTWAIT),
               HWSOCK_EAGAIN, "the read side ended");

  /* 2. the next send reports it, once, and sends nothing */
  cr_assert_eq(hwsock_guest_send(g, s, "q2", 2, 0), 2);
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 10000), 1);
  cr_assert_eq(hwsock_guest_send(g, s, "q3", 2, 0), HWSOCK_ECONNREFUSED);
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 300), 0);

  /* 3. SO_ERROR reports it, once */
  cr_assert_eq(hwsock_guest_sendto(g, s, "q4", 2, 0, NULL), 2);
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 10000), 1);
  uint32_t v = 0;
  size_t vl = sizeof(v);
  cr_assert_eq(hwsock_guest_getsockopt(g, s, HWSOCK_SOL_SOCKET,
                                       HWSOCK_SO_ERROR, &v, &vl), 0);
  cr_assert_eq(vl, sizeof(v));
  cr_assert_eq(hwsock_le32_get((hwsock_le32 *)&v),
               (uint32_t)-HWSOCK_ECONNREFUSED);
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 300), 0);
  v = 1;
  vl = sizeof(v);
  cr_assert_eq(hwsock_guest_getsockopt(g, s, HWSOCK_SOL_SOCKET,
                                       HWSOCK_SO_ERROR, &v, &vl), 0);
  cr_assert_eq(v, 0, "SO_ERROR did not clear the error");

  /* 4. the same socket still receives */
  h = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  al = sizeof(a);
  a.sin_port = 0;
  cr_assert_eq(bind(h, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(h, (struct sockaddr *)&a, &al), 0);
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", ntohs(a.sin_port));
  cr_assert_eq(hwsock_guest_connect(g, s, uri), 0);
  cr_assert_eq(hwsock_guest_send(g, s, "q5", 2, 0), 2);
  struct sockaddr_in from;
  socklen_t fl = sizeof(from);
  cr_assert_eq(recvfrom(h, b, sizeof(b), 0, (struct sockaddr *)&from, &fl), 2);
  cr_assert_eq(sendto(h, "a5", 2, 0, (struct sockaddr *)&from, fl), 2);
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 10000), 1);
  memset(b, 0, sizeof(b));
  cr_assert_eq(hwsock_guest_recv(g, s, b, sizeof(b), 0), 2);
  cr_assert_str_eq(b, "a5");
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  close(h);
  stop();
}

/* A listener whose host socket failed (here shut down: the host kernel
 * then fails every accept and reports the socket readable for ever): the
 * accept that failed reported the error, and the driver does not watch
 * the listener again, or every wait would report it, each accept fail
 * and the device watch a dead host socket for ever. A listener that only
 * had no connection for a non-blocking accept is watched again. */
Test(guest_evq, a_failed_listener_is_not_watched_again) {
  start(1);
  int l = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(l >= 0);
  cr_assert_eq(hwsock_guest_bind(g, l, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(hwsock_guest_listen(g, l, 16), 0);
  cr_assert_eq(hwsock_guest_watch(g, l, HWSOCK_GUEST_ACCEPT), 0);
  hwsock_guest_event ev[4];
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 100), 0);
  cr_assert_eq(hwsock_guest_shutdown(g, l, HWSOCK_SHUT_RD), 0);
  int n = hwsock_guest_wait(g, ev, 4, 10000);
  cr_assert_eq(n, 1, "the failed listener is reported once: %d", n);
  cr_assert_eq(ev[0].sock, l);
  int a = hwsock_guest_accept(g, l, NULL, 0);
  cr_assert_lt(a, 0, "accept on a shut-down listener: %d", a);
  hwsock_device_stats st0, st1;
  st0.size = sizeof(st0);
  hwsock_device_get_stats(dev, &st0);
  n = hwsock_guest_wait(g, ev, 4, 300);
  cr_assert_eq(n, 0, "reported again after its accept failed (%d)", n);
  st1.size = sizeof(st1);
  hwsock_device_get_stats(dev, &st1);
  cr_assert_eq(st1.requests_by_op[HWSOCK_OP_CREDIT],
               st0.requests_by_op[HWSOCK_OP_CREDIT]);
  /* watched again only when the program asks */
  cr_assert_eq(hwsock_guest_watch(g, l, HWSOCK_GUEST_ACCEPT), 0);
  cr_assert_eq(hwsock_guest_wait(g, ev, 4, 10000), 1);
  cr_assert_eq(hwsock_guest_close(g, l), 0);
  stop();
}
