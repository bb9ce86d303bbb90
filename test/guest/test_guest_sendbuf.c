/* Zero-copy sends of the guest driver core (hwsock_guest_send_buf_*,
 * guest-driver/core/sendbuf.c) against the real device in the same
 * process: the device runs on a libuv loop in its own thread with the tcp
 * and udp backends (kicks and interrupts are eventfds, as in a VMM), the
 * driver in the test's threads, and the bytes go to real sockets of the
 * test on 127.0.0.1. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "hwsock/device.h"
#include "hwsock/guest.h"
#include "hwsock/policy.h"
#include "hwsock/uv.h"

#define NQ 2
#define MEM (32u << 20)
#define GPA 0x40000000ull
#define MAXS 256u

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

/* The device, a driver on it (event queue, write-behind and request slots
 * as asked; slots 0: as many as fit) and a listener on 127.0.0.1. */
static void start(int event_queue, int write_behind, unsigned slots) {
  char err[256];
  const char *y = "version: 1\ndefault: offload\nrules: []\n";
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
  cr_assert_eq(hwsock_plugin_load(HWSOCK_BUILD_BACKEND_DIR "/udp.so",
                                  &plug_udp, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(hwsock_device_add_backend(dev, hwsock_plugin_desc(plug_udp),
                                         NULL), 0);
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
  gc.write_behind = write_behind;
  gc.slots = slots;
  cr_assert_eq(hwsock_guest_new(&gc, &g), 0);
  cr_assert_eq(pthread_create(&loop_thr, NULL, loop_main, NULL), 0);

  lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(lst, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(lst, 64), 0);
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

/* A guest stream socket connected to the listener; *peer the host end. */
static int gconnect(int *peer) {
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(s >= 0, "socket: %d", s);
  cr_assert_eq(hwsock_guest_connect(g, s, luri), 0);
  *peer = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
  cr_assert(*peer >= 0);
  return s;
}

/* The byte stream: position-dependent pseudo-random bytes, so that a lost,
 * doubled or reordered piece changes the hash. */
static unsigned char byte_at(uint64_t off) {
  uint64_t x = (off / 8 + 1) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return (unsigned char)(x >> (8 * (off % 8)));
}

static void fill(unsigned char *p, size_t n, uint64_t off) {
  for (size_t i = 0; i < n; i++)
    p[i] = byte_at(off + i);
}

/* FNV-1a, 64 bits */
static uint64_t hash_step(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
  return h;
}
#define HASH_INIT 0xCBF29CE484222325ull

/* The server: reads its socket to end of file, hashing. */
typedef struct sink {
  int fd;
  uint64_t bytes, hash;
} sink;

static void *sink_main(void *arg) {
  sink *k = arg;
  static __thread unsigned char buf[1 << 16];
  k->hash = HASH_INIT;
  for (;;) {
    ssize_t r = read(k->fd, buf, sizeof(buf));
    if (r <= 0)
      break;
    k->hash = hash_step(k->hash, buf, (size_t)r);
    k->bytes += (uint64_t)r;
  }
  return NULL;
}

/* Sends n bytes of the stream from offset *off through send buffers, in
 * pieces of `piece` bytes at most (each piece one buffer, filled in place);
 * flags MORE on all but the last. 0, or what went wrong in *why (no
 * assertion: senders run in threads of their own). */
static int zc_send_rc(int s, uint64_t *off, size_t n, size_t piece,
                      uint64_t *h, char *why, size_t why_len) {
  size_t done = 0;
  while (done < n) {
    size_t want = n - done < piece ? n - done : piece;
    hwsock_guest_sendbuf sb;
    int rc = hwsock_guest_send_buf_get(g, s, want, &sb);
    if (rc < 0) {
      snprintf(why, why_len, "get: %s", hwsock_strerror(rc));
      return -1;
    }
    if (sb.buf == NULL || sb.cap == 0 || sb.cap > want ||
        (uintptr_t)sb.buf % 16 != 0) {
      snprintf(why, why_len, "get: buf %p cap %zu for %zu", sb.buf, sb.cap,
               want);
      return -1;
    }
    size_t k = sb.cap;
    fill(sb.buf, k, *off);
    *h = hash_step(*h, sb.buf, k);
    ssize_t w = hwsock_guest_send_buf_submit(
        g, s, &sb, k, done + k < n ? HWSOCK_SEND_MORE : 0);
    if (w != (ssize_t)k || sb.buf != NULL) { /* the token is dead */
      snprintf(why, why_len, "submit: %zd (%s)", w, hwsock_strerror((int)w));
      return -1;
    }
    *off += k;
    done += k;
  }
  return 0;
}

static void zc_send(int s, uint64_t *off, size_t n, size_t piece,
                    uint64_t *h) {
  char why[128];
  cr_assert_eq(zc_send_rc(s, off, n, piece, h, why, sizeof(why)), 0, "%s",
               why);
}

/* Several MiB through send buffers (with copying sends in between, which
 * must keep their place in the stream) arrive whole and in order at a
 * real server on 127.0.0.1. */
static void stream_intact(int event_queue, int write_behind) {
  start(event_queue, write_behind, 0);
  int peer;
  int s = gconnect(&peer);
  sink k = {.fd = peer};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, sink_main, &k), 0);
  uint64_t off = 0, h = HASH_INIT;
  /* whole 64 KiB buffers, odd sizes, and 1 MiB program writes */
  zc_send(s, &off, 3u << 20, 1u << 20, &h);
  zc_send(s, &off, 777777, 12345, &h);
  static unsigned char copy[300000];
  fill(copy, sizeof(copy), off);
  cr_assert_eq(hwsock_guest_send(g, s, copy, sizeof(copy), 0),
               (ssize_t)sizeof(copy));
  h = hash_step(h, copy, sizeof(copy));
  off += sizeof(copy);
  zc_send(s, &off, 3u << 20, 1u << 20, &h);
  cr_assert_eq(hwsock_guest_send_wait(g, s), 0);
  cr_assert_eq(hwsock_guest_shutdown(g, s, HWSOCK_SHUT_WR), 0);
  pthread_join(t, NULL);
  cr_assert_eq(k.bytes, off, "server got %llu of %llu bytes",
               (unsigned long long)k.bytes, (unsigned long long)off);
  cr_assert_eq(k.hash, h, "bytes differ");
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  close(peer);
  stop();
}

TestSuite(guest_sendbuf, .timeout = 120);

Test(guest_sendbuf, a_stream_arrives_intact_with_the_event_queue) {
  stream_intact(1, 0);
}

Test(guest_sendbuf, a_stream_arrives_intact_with_write_behind) {
  stream_intact(0, 1);
}

/* close() waits for submitted buffers, as for write-behind sends: the CLOSE
 * would otherwise cancel them, and the slots of those still on the
 * socket's queue would never come back (8 slots: afterwards a new socket
 * can hold 7 buffers at once, as many as blocking calls could). */
Test(guest_sendbuf, close_lets_submitted_buffers_go_out_first) {
  start(1, 0, 8);
  int peer;
  int s = gconnect(&peer);
  sink k = {.fd = peer};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, sink_main, &k), 0);
  uint64_t off = 0, h = HASH_INIT;
  zc_send(s, &off, 4u << 20, 1u << 20, &h);
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  pthread_join(t, NULL);
  cr_assert_eq(k.bytes, off, "server got %llu of %llu bytes",
               (unsigned long long)k.bytes, (unsigned long long)off);
  cr_assert_eq(k.hash, h, "bytes differ");
  close(peer);
  int a = gconnect(&peer);
  hwsock_guest_sendbuf all[7];
  for (int i = 0; i < 7; i++) {
    int rc = hwsock_guest_send_buf_get(g, a, 0, &all[i]);
    cr_assert_eq(rc, 0, "get %d: %s (a slot was not given back)", i,
                 hwsock_strerror(rc));
  }
  for (int i = 0; i < 7; i++)
    cr_assert_eq(hwsock_guest_send_buf_put(g, &all[i]), 0);
  cr_assert_eq(hwsock_guest_close(g, a), 0);
  close(peer);
  stop();
}

/* Buffers got and given back unsent: no slot, no socket id and no byte is
 * lost. With 4 slots, 3 may be held (one stays for a close); round after
 * round the same 3 come back. A leaked slot would make a later round's
 * get wait for ever (the suite's timeout). */
Test(guest_sendbuf, buffers_put_back_unsent_leak_nothing, .timeout = 60) {
  start(1, 0, 4);
  int peer;
  int s = gconnect(&peer);
  for (int round = 0; round < 200; round++) {
    hwsock_guest_sendbuf sb[4];
    for (int i = 0; i < 3; i++) {
      int rc = hwsock_guest_send_buf_get(g, s, 100, &sb[i]);
      cr_assert_eq(rc, 0, "round %d get %d: %s", round, i,
                   hwsock_strerror(rc));
      cr_assert_eq(sb[i].cap, 100);
      memset(sb[i].buf, 'X', sb[i].cap);
    }
    /* no 4th: it would wait for the socket's own buffers */
    cr_assert_eq(hwsock_guest_send_buf_get(g, s, 100, &sb[3]), HWSOCK_EAGAIN);
    cr_assert_null(sb[3].buf);
    for (int i = 0; i < 3; i++)
      cr_assert_eq(hwsock_guest_send_buf_put(g, &sb[i]), 0);
  }
  /* a buffer held across close keeps the id; put back, the id is free */
  hwsock_guest_sendbuf sb;
  cr_assert_eq(hwsock_guest_send_buf_get(g, s, 0, &sb), 0);
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  int s2 = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(s2 >= 0 && s2 != s, "id %d reused while a buffer held it", s2);
  cr_assert_eq(hwsock_guest_send_buf_put(g, &sb), 0);
  int s3 = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert_eq(s3, s, "the id was not freed by the put");
  /* none of the put-back bytes went out: the peer sees end of file only */
  char c;
  cr_assert_eq(read(peer, &c, 1), 0);
  cr_assert_eq(hwsock_guest_close(g, s2), 0);
  cr_assert_eq(hwsock_guest_close(g, s3), 0);
  close(peer);
  /* every slot is free again: the whole pool can be held once more */
  int a = gconnect(&peer);
  hwsock_guest_sendbuf all[3];
  for (int i = 0; i < 3; i++)
    cr_assert_eq(hwsock_guest_send_buf_get(g, a, 0, &all[i]), 0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(hwsock_guest_send_buf_put(g, &all[i]), 0);
  cr_assert_eq(hwsock_guest_close(g, a), 0);
  close(peer);
  stop();
}

/* Misuse is an error, never a crash or a stray send; the peer gets exactly
 * the bytes that were submitted properly. */
Test(guest_sendbuf, misuse_is_an_error_not_a_crash) {
  start(1, 0, 0);
  int peer, peer2;
  int s = gconnect(&peer);
  int other = gconnect(&peer2);
  hwsock_guest_sendbuf sb, copy, junk;

  /* arguments */
  cr_assert_eq(hwsock_guest_send_buf_get(NULL, s, 10, &sb), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_get(g, s, 10, NULL), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_get(g, -1, 10, &sb), HWSOCK_EBADF);
  cr_assert_eq(hwsock_guest_send_buf_get(g, (int)MAXS + 5, 10, &sb),
               HWSOCK_EBADF);
  cr_assert_eq(hwsock_guest_send_buf_get(g, 77, 10, &sb), HWSOCK_EBADF);
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, NULL, 1, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_put(g, NULL), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_wait(g, -1), HWSOCK_EBADF);
  /* a token never given out, and garbage */
  memset(&junk, 0, sizeof(junk));
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, &junk, 0, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_put(g, &junk), HWSOCK_EINVAL);
  memset(&junk, 0xA5, sizeof(junk));
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, &junk, 1, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_put(g, &junk), HWSOCK_EINVAL);

  /* len > cap and the wrong socket: refused, the buffer stays usable */
  cr_assert_eq(hwsock_guest_send_buf_get(g, s, 5, &sb), 0);
  cr_assert_eq(sb.cap, 5);
  memcpy(sb.buf, "hello", 5);
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, &sb, 6, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_submit(g, other, &sb, 5, 0),
               HWSOCK_EINVAL);
  cr_assert_not_null(sb.buf);
  copy = sb;
  /* submitted once; twice is refused (the token and a copy of it) */
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, &sb, 5, 0), 5);
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, &sb, 5, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, &copy, 5, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_put(g, &copy), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_wait(g, s), 0);

  /* a stale copy after its slot went to a new holder does not touch it */
  cr_assert_eq(hwsock_guest_send_buf_get(g, s, 6, &sb), 0);
  copy = sb;
  cr_assert_eq(hwsock_guest_send_buf_put(g, &sb), 0);
  cr_assert_eq(hwsock_guest_send_buf_put(g, &sb), HWSOCK_EINVAL);
  hwsock_guest_sendbuf fresh;
  for (int i = 0; i < 64; i++) { /* until the slot comes round again */
    cr_assert_eq(hwsock_guest_send_buf_get(g, s, 6, &fresh), 0);
    if (fresh.slot == copy.slot)
      break;
    cr_assert_eq(hwsock_guest_send_buf_put(g, &fresh), 0);
  }
  cr_assert_eq(fresh.slot, copy.slot);
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, &copy, 6, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send_buf_put(g, &copy), HWSOCK_EINVAL);
  memcpy(fresh.buf, " world", 6);
  cr_assert_eq(hwsock_guest_send_buf_submit(g, s, &fresh, 6, 0), 6);

  /* the socket closed while a buffer was held: EBADF, the buffer is gone */
  cr_assert_eq(hwsock_guest_send_buf_get(g, other, 3, &sb), 0);
  memcpy(sb.buf, "bad", 3);
  cr_assert_eq(hwsock_guest_close(g, other), 0);
  cr_assert_eq(hwsock_guest_send_buf_submit(g, other, &sb, 3, 0),
               HWSOCK_EBADF);
  cr_assert_eq(hwsock_guest_send_buf_put(g, &sb), HWSOCK_EINVAL);
  char c;
  cr_assert_eq(read(peer2, &c, 1), 0, "bytes of a refused submit went out");
  close(peer2);

  /* a datagram is one buffer */
  int d = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
  cr_assert(d >= 0);
  cr_assert_eq(hwsock_guest_send_buf_get(g, d, 64u << 20, &sb),
               HWSOCK_EMSGSIZE);
  cr_assert_eq(hwsock_guest_close(g, d), 0);

  /* the peer got exactly the two proper sends */
  cr_assert_eq(hwsock_guest_shutdown(g, s, HWSOCK_SHUT_WR), 0);
  char got[32];
  size_t n = 0;
  ssize_t r;
  while ((r = read(peer, got + n, sizeof(got) - n)) > 0)
    n += (size_t)r;
  cr_assert_eq(n, 11);
  cr_assert_eq(memcmp(got, "hello world", 11), 0);
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  close(peer);
  stop();
}

/* A send that fails on the device (the peer reset the connection) is
 * reported by what comes after it on the socket, and stays: the next
 * submit, get, copying send and send_wait; close still works and every
 * slot comes back (8 slots: 7 held at once afterwards). */
Test(guest_sendbuf, a_failed_send_is_reported_by_what_follows) {
  start(1, 0, 8);
  int peer;
  int s = gconnect(&peer);
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  cr_assert_eq(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(peer); /* RST */
  int err = 0;
  for (int i = 0; i < 4096 && err == 0; i++) { /* at most 256 MiB */
    hwsock_guest_sendbuf sb;
    int rc = hwsock_guest_send_buf_get(g, s, 0, &sb);
    if (rc < 0) {
      err = rc;
      break;
    }
    size_t cap = sb.cap;
    ssize_t w = hwsock_guest_send_buf_submit(g, s, &sb, cap, 0);
    if (w < 0)
      err = (int)w;
    else
      cr_assert_eq(w, (ssize_t)cap); /* posted */
  }
  cr_assert(err < 0, "no error after the peer's reset");
  cr_assert(err != HWSOCK_EINVAL && err != HWSOCK_EAGAIN, "%s",
            hwsock_strerror(err));
  /* sticky: everything after reports the same error */
  hwsock_guest_sendbuf sb;
  cr_assert_eq(hwsock_guest_send_buf_get(g, s, 0, &sb), err);
  cr_assert_eq(hwsock_guest_send_wait(g, s), err);
  cr_assert_eq(hwsock_guest_send(g, s, "x", 1, 0), err);
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  int a = gconnect(&peer);
  hwsock_guest_sendbuf all[7];
  for (int i = 0; i < 7; i++) {
    int rc = hwsock_guest_send_buf_get(g, a, 0, &all[i]);
    cr_assert_eq(rc, 0, "get %d: %s (a slot was not given back)", i,
                 hwsock_strerror(rc));
  }
  for (int i = 0; i < 7; i++)
    cr_assert_eq(hwsock_guest_send_buf_put(g, &all[i]), 0);
  cr_assert_eq(hwsock_guest_close(g, a), 0);
  close(peer);
  stop();
}

/* Threads on their own sockets compete for few slots (6 for 4 senders):
 * get waits for slots freed by the others' completed sends, never for
 * ever, and every stream arrives whole. */
typedef struct zsender {
  int s;
  uint64_t off, hash;
  size_t n;
  int rc;
  char why[128];
} zsender;

static void *zsender_main(void *arg) {
  zsender *z = arg;
  z->hash = HASH_INIT;
  z->rc = zc_send_rc(z->s, &z->off, z->n, 1u << 20, &z->hash, z->why,
                     sizeof(z->why));
  if (z->rc == 0 && (z->rc = hwsock_guest_send_wait(g, z->s)) < 0)
    snprintf(z->why, sizeof(z->why), "send_wait: %s", hwsock_strerror(z->rc));
  if (z->rc == 0 &&
      (z->rc = hwsock_guest_shutdown(g, z->s, HWSOCK_SHUT_WR)) < 0)
    snprintf(z->why, sizeof(z->why), "shutdown: %s", hwsock_strerror(z->rc));
  if (z->rc != 0) /* the sink would wait for ever */
    hwsock_guest_shutdown(g, z->s, HWSOCK_SHUT_RDWR);
  return NULL;
}

Test(guest_sendbuf, senders_on_many_sockets_share_few_slots) {
  enum { T = 4 };
  start(1, 0, 6);
  zsender z[T];
  sink k[T];
  pthread_t st[T], kt[T];
  int peer[T];
  for (int i = 0; i < T; i++) {
    z[i] = (zsender){.s = gconnect(&peer[i]), .n = (2u << 20) + 1000u * i};
    k[i] = (sink){.fd = peer[i]};
    cr_assert_eq(pthread_create(&kt[i], NULL, sink_main, &k[i]), 0);
  }
  for (int i = 0; i < T; i++)
    cr_assert_eq(pthread_create(&st[i], NULL, zsender_main, &z[i]), 0);
  for (int i = 0; i < T; i++) {
    pthread_join(st[i], NULL);
    cr_assert_eq(z[i].rc, 0, "sender %d: %s", i, z[i].why);
    pthread_join(kt[i], NULL);
    cr_assert_eq(k[i].bytes, z[i].off, "stream %d: %llu of %llu bytes", i,
                 (unsigned long long)k[i].bytes,
                 (unsigned long long)z[i].off);
    cr_assert_eq(k[i].hash, z[i].hash, "stream %d: bytes differ", i);
    cr_assert_eq(hwsock_guest_close(g, z[i].s), 0);
    close(peer[i]);
  }
  stop();
}

/* A UDP socket of the test on 127.0.0.1 and the guest's socket connected
 * to it (both ends' URI port). */
static int udp_pair(int *host, unsigned *port) {
  *host = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  cr_assert_eq(bind(*host, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(*host, (struct sockaddr *)&a, &al), 0);
  *port = ntohs(a.sin_port);
  char uri[64];
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", *port);
  int d = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
  cr_assert(d >= 0, "socket: %d", d);
  cr_assert_eq(hwsock_guest_connect(g, d, uri), 0);
  return d;
}

/* One buffer is one datagram, whole, whatever its size. */
Test(guest_sendbuf, a_datagram_is_one_buffer) {
  start(1, 0, 0);
  int host;
  unsigned port;
  int d = udp_pair(&host, &port);
  static const size_t sizes[] = {1, 1400, 9000, 60000};
  static unsigned char got[65536];
  for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    hwsock_guest_sendbuf sb;
    cr_assert_eq(hwsock_guest_send_buf_get(g, d, sizes[i], &sb), 0);
    cr_assert_eq(sb.cap, sizes[i]);
    fill(sb.buf, sizes[i], i * 100000u);
    cr_assert_eq(hwsock_guest_send_buf_submit(g, d, &sb, sizes[i], 0),
                 (ssize_t)sizes[i]);
    ssize_t r = recv(host, got, sizeof(got), 0);
    cr_assert_eq(r, (ssize_t)sizes[i], "datagram %u: %zd bytes", i, r);
    static unsigned char want[65536];
    fill(want, sizes[i], i * 100000u);
    cr_assert_eq(memcmp(got, want, sizes[i]), 0, "datagram %u differs", i);
  }
  cr_assert_eq(hwsock_guest_close(g, d), 0);
  close(host);
  stop();
}

/* A datagram's error is its own: a refusal (ICMP port unreachable from an
 * earlier datagram) is reported by one submit, as by a send(2), and the
 * socket goes on; it does not stick to every later send as a stream's
 * error does. */
Test(guest_sendbuf, a_datagram_refusal_does_not_stick) {
  start(1, 0, 0);
  int host;
  unsigned port;
  int d = udp_pair(&host, &port);
  close(host); /* nobody listens there now: the kernel answers ICMP */
  int refused = 0, ok_after = 0;
  for (int i = 0; i < 200 && !(refused && ok_after >= 3); i++) {
    hwsock_guest_sendbuf sb;
    int rc = hwsock_guest_send_buf_get(g, d, 8, &sb);
    cr_assert_eq(rc, 0, "get %d: %s", i, hwsock_strerror(rc));
    memcpy(sb.buf, "datagram", 8);
    ssize_t w = hwsock_guest_send_buf_submit(g, d, &sb, 8, 0);
    if (w == HWSOCK_ECONNREFUSED)
      refused++;
    else if (w == 8)
      ok_after += refused > 0;
    else
      cr_assert_fail("submit %d: %zd (%s)", i, w, hwsock_strerror((int)w));
    usleep(2000);
  }
  cr_assert(refused > 0, "no refusal reported");
  cr_assert(ok_after >= 3, "the refusal stuck: %d sends after it", ok_after);
  cr_assert_eq(hwsock_guest_send_wait(g, d), 0);
  cr_assert_eq(hwsock_guest_close(g, d), 0);
  stop();
}

/* The same for copying sends with write-behind (cfg.write_behind, which
 * the benchmarks and attached guests use): a datagram's refusal is
 * reported once, it does not fail every later send on the socket. */
Test(guest_sendbuf, a_write_behind_datagram_refusal_does_not_stick) {
  start(1, 1, 0);
  int host;
  unsigned port;
  int d = udp_pair(&host, &port);
  close(host);
  int refused = 0, ok_after = 0;
  for (int i = 0; i < 200 && !(refused && ok_after >= 3); i++) {
    ssize_t w = hwsock_guest_send(g, d, "datagram", 8, 0);
    if (w == HWSOCK_ECONNREFUSED)
      refused++;
    else if (w == 8)
      ok_after += refused > 0;
    else
      cr_assert_fail("send %d: %zd (%s)", i, w, hwsock_strerror((int)w));
    usleep(2000);
  }
  cr_assert(refused > 0, "no refusal reported");
  cr_assert(ok_after >= 3, "the refusal stuck: %d sends after it", ok_after);
  cr_assert_eq(hwsock_guest_close(g, d), 0);
  stop();
}

/* HWSOCK_GUEST_SEND_DONTWAIT (what hwsock-run's program -> device
 * dispatcher sends with): with write-behind, a send posts the pieces that
 * need no wait and returns their bytes, or HWSOCK_EAGAIN once the socket's
 * sends in flight are stuck (the host peer reads nothing); it never waits.
 * Partial sends keep the stream whole and in order when the peer reads
 * again. */
Test(guest_sendbuf, a_dontwait_send_posts_what_fits_and_never_waits,
     .timeout = 60) {
  start(1, 1, 0);
  int peer;
  int s = gconnect(&peer);
  /* more than HWSOCK_GUEST_WB_MAX io_len (64 KiB) pieces: the first send,
   * with nothing in flight, posts four of them and returns their bytes */
  static unsigned char chunk[300000];
  uint64_t off = 0, h = HASH_INIT;
  int eagain = 0, partial = 0;
  /* The peer reads nothing: sends in flight are met at once (EAGAIN), or
   * at the latest once the host buffers are full and the device's sends
   * stay in flight (at most 256 MiB, far more than loopback buffers
   * hold); a send that waited would never return (the test's timeout). */
  while (!eagain && off < (256u << 20)) {
    fill(chunk, sizeof(chunk), off);
    ssize_t w = hwsock_guest_send(g, s, chunk, sizeof(chunk),
                                  HWSOCK_GUEST_SEND_DONTWAIT);
    if (w == HWSOCK_EAGAIN) {
      eagain = 1;
      break;
    }
    cr_assert(w > 0 && w <= (ssize_t)sizeof(chunk), "send: %zd (%s)", w,
              hwsock_strerror((int)w));
    partial += w < (ssize_t)sizeof(chunk);
    h = hash_step(h, chunk, (size_t)w);
    off += (uint64_t)w;
  }
  cr_assert(partial > 0, "the first send was not partial");
  cr_assert(eagain, "no HWSOCK_EAGAIN after %llu bytes the peer never read",
            (unsigned long long)off);
  /* the peer reads: the rest goes out in DONTWAIT pieces, retried */
  sink k = {.fd = peer};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, sink_main, &k), 0);
  uint64_t end = off + (8u << 20);
  while (off < end) {
    size_t n = end - off < sizeof(chunk) ? (size_t)(end - off) : sizeof(chunk);
    fill(chunk, n, off);
    ssize_t w = hwsock_guest_send(g, s, chunk, n, HWSOCK_GUEST_SEND_DONTWAIT);
    if (w == HWSOCK_EAGAIN) {
      usleep(200);
      continue;
    }
    cr_assert(w > 0 && w <= (ssize_t)n, "send: %zd (%s)", w,
              hwsock_strerror((int)w));
    partial += w < (ssize_t)n;
    h = hash_step(h, chunk, (size_t)w);
    off += (uint64_t)w;
  }
  cr_assert_eq(hwsock_guest_send_wait(g, s), 0);
  cr_assert_eq(hwsock_guest_shutdown(g, s, HWSOCK_SHUT_WR), 0);
  pthread_join(t, NULL);
  cr_assert_eq(k.bytes, off, "server got %llu of %llu bytes",
               (unsigned long long)k.bytes, (unsigned long long)off);
  cr_assert_eq(k.hash, h, "bytes differ");
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  close(peer);
  stop();
}

/* Where a send always waits for its completion (no write-behind, or a
 * datagram), DONTWAIT is refused rather than silently waiting. */
Test(guest_sendbuf, a_dontwait_send_that_would_wait_is_refused) {
  start(1, 1, 0);
  int host;
  unsigned port;
  int d = udp_pair(&host, &port);
  cr_assert_eq(hwsock_guest_send(g, d, "x", 1, HWSOCK_GUEST_SEND_DONTWAIT),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_send(g, d, "x", 1, 0), 1); /* still fine */
  char c;
  cr_assert_eq(recv(host, &c, 1, 0), 1);
  cr_assert_eq(hwsock_guest_close(g, d), 0);
  close(host);
  stop();
  start(1, 0, 0);
  int peer;
  int s = gconnect(&peer);
  cr_assert_eq(hwsock_guest_send(g, s, "x", 1, HWSOCK_GUEST_SEND_DONTWAIT),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_guest_close(g, s), 0);
  close(peer);
  stop();
}

/* Completed write-behind sends of idle sockets hold their slots until
 * someone finishes them: with 8 slots and 8 sockets that each sent a byte
 * (their peers read it: the device completed the sends), a DONTWAIT send
 * on a ninth socket finishes them itself and goes out; before, it found no
 * slot for ever (nobody waited for one, so nobody reclaimed them). The
 * device's completion may trail the peer's read: the send is retried, a
 * bounded number of times. */
Test(guest_sendbuf, a_dontwait_send_frees_slots_idle_sockets_hold) {
  start(1, 1, 8);
  int s[9], peer[9];
  for (int i = 0; i < 9; i++)
    s[i] = gconnect(&peer[i]);
  for (int i = 0; i < 8; i++) {
    char c;
    cr_assert_eq(hwsock_guest_send(g, s[i], "x", 1, 0), 1);
    cr_assert_eq(recv(peer[i], &c, 1, 0), 1);
  }
  ssize_t w = HWSOCK_EAGAIN;
  for (int i = 0; i < 10000 && w == HWSOCK_EAGAIN; i++) {
    w = hwsock_guest_send(g, s[8], "y", 1, HWSOCK_GUEST_SEND_DONTWAIT);
    if (w == HWSOCK_EAGAIN)
      usleep(1000);
  }
  cr_assert_eq(w, 1, "send: %zd (%s)", w, hwsock_strerror((int)w));
  char c;
  cr_assert_eq(recv(peer[8], &c, 1, 0), 1);
  cr_assert_eq(c, 'y');
  for (int i = 0; i < 9; i++) {
    cr_assert_eq(hwsock_guest_close(g, s[i]), 0);
    close(peer[i]);
  }
  stop();
}
