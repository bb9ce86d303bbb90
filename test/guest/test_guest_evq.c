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
#include <unistd.h>
#include <uv.h>

#include "hwsock/device.h"
#include "hwsock/guest.h"
#include "hwsock/policy.h"
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
static hwsock_plugin *plug;
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
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.num_queues = NQ;
  c.max_sockets = MAXS;
  c.policy = pol;
  c.backend_loop = &loop;
  c.ops = &dops;
  cr_assert_eq(hwsock_device_new(&c, &dev), 0);
  cr_assert_eq(hwsock_plugin_load(HWSOCK_BUILD_BACKEND_DIR "/tcp.so", &plug,
                                  err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(hwsock_device_add_backend(dev, hwsock_plugin_desc(plug), NULL),
               0);
  cr_assert_eq(posix_memalign(&mem, 4096, MEM), 0);
  memset(mem, 0, MEM);
  cr_assert_eq(hwsock_device_add_region(dev, GPA, MEM, mem), 0);
  cr_assert_eq(hwsock_uv_new(&loop, dev, &uva), 0);
  for (int q = 0; q < NQ; q++) {
    kickfd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    callfd[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cr_assert(kickfd[q] >= 0 && callfd[q] >= 0);
    cr_assert_eq(hwsock_uv_watch_kick(uva, (unsigned)q, kickfd[q]), 0);
  }
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
