/* Loads an out-of-tree echo plugin (examples/plugin-echo, built against the
 * installed SDK) by path into a real device and drives it from the guest
 * driver through the rings, as test/sdk/sdk_test.sh asks:
 *
 *   load_echo ECHO.so                 the echo service works end to end
 *   load_echo --refused MODULE TEXT   loading MODULE fails with HWSOCK_EABI
 *                                     and a message containing TEXT
 *
 * Only the deny backend and the echo plugin are loaded: no socket of this
 * test can reach a network (192.0.2.0/24 is TEST-NET-1 and echo has no host
 * socket). Exit status 0 when every check passed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inproc.h"

static int failures;

#define CHECK(cond, ...)                                                      \
  do {                                                                        \
    if (!(cond)) {                                                            \
      failures++;                                                             \
      fprintf(stderr, "load_echo:%d: FAIL %s: ", __LINE__, #cond);            \
      fprintf(stderr, __VA_ARGS__);                                           \
      fputc('\n', stderr);                                                    \
    }                                                                         \
  } while (0)

#define CHECK_RC(expr, want)                                                  \
  do {                                                                        \
    long rc_ = (long)(expr);                                                  \
    if (rc_ != (long)(want)) {                                                \
      failures++;                                                             \
      fprintf(stderr, "load_echo:%d: FAIL %s = %ld (%s), want %s\n",          \
              __LINE__, #expr, rc_,                                           \
              rc_ < 0 ? hwsock_err_name((int)rc_) : "ok", #want);             \
    }                                                                         \
  } while (0)

/* Routes 192.0.2.1:7 and [2001:db8::1]:7 (TCP) to the echo plugin; UDP to
 * it too, which it must refuse; one rule names a backend that is not
 * loaded. Everything else is denied. */
static const char *policy_yaml =
    "version: 1\n"
    "default: deny\n"
    "rules:\n"
    "  - action: offload\n"
    "    scheme: [tcp, tcp6, udp]\n"
    "    direction: outbound\n"
    "    to: [192.0.2.1, \"2001:db8::1\"]\n"
    "    ports: 7\n"
    "    backend: echo\n"
    "    reason: in-VMM echo service\n"
    "  - action: offload\n"
    "    scheme: tcp\n"
    "    to: 192.0.2.3\n"
    "    backend: nosuch\n";

static hwsock_guest *g;

static int echo_socket(const char *uri, unsigned family) {
  int s = hwsock_guest_socket(g, family, HWSOCK_SOCK_STREAM);
  CHECK(s >= 0, "socket: %s", hwsock_err_name(s));
  CHECK_RC(hwsock_guest_connect(g, s, uri), 0);
  return s;
}

/* ---- the checks ---------------------------------------------------------- */

static void check_names(void) {
  char uri[HWSOCK_URI_MAX + 1];
  int s = echo_socket("tcp://192.0.2.1:7", HWSOCK_AF_INET);
  CHECK_RC(hwsock_guest_getname(g, s, 1, uri, sizeof(uri)), 0);
  CHECK(strcmp(uri, "tcp://192.0.2.1:7") == 0, "peer name '%s'", uri);
  CHECK_RC(hwsock_guest_getname(g, s, 0, uri, sizeof(uri)), 0);
  CHECK(strcmp(uri, "tcp://0.0.0.0:0") == 0, "local name '%s'", uri);
  CHECK_RC(hwsock_guest_connect(g, s, "tcp://192.0.2.1:7"), HWSOCK_EISCONN);
  CHECK_RC(hwsock_guest_close(g, s), 0);

  s = echo_socket("tcp6://[2001:db8::1]:7", HWSOCK_AF_INET6);
  CHECK_RC(hwsock_guest_getname(g, s, 1, uri, sizeof(uri)), 0);
  CHECK(strcmp(uri, "tcp6://[2001:db8::1]:7") == 0, "peer name '%s'", uri);
  CHECK_RC(hwsock_guest_send(g, s, "v6", 2, 0), 2);
  char b[8] = {0};
  CHECK_RC(hwsock_guest_recv(g, s, b, sizeof(b), 0), 2);
  CHECK(memcmp(b, "v6", 2) == 0, "got '%.8s'", b);
  CHECK_RC(hwsock_guest_close(g, s), 0);
}

static void check_small_echo(void) {
  char b[64];
  int s = echo_socket("tcp://192.0.2.1:7", HWSOCK_AF_INET);
  CHECK_RC(hwsock_guest_send(g, s, "hello", 5, 0), 5);
  memset(b, 0, sizeof(b));
  CHECK_RC(hwsock_guest_recv(g, s, b, sizeof(b), 0), 5);
  CHECK(memcmp(b, "hello", 5) == 0, "got '%.64s'", b);

  /* Two SENDs, one RECV: a stream, so both come back together. */
  CHECK_RC(hwsock_guest_send(g, s, "abc", 3, 0), 3);
  CHECK_RC(hwsock_guest_send(g, s, "def", 3, 0), 3);
  memset(b, 0, sizeof(b));
  CHECK_RC(hwsock_guest_recv(g, s, b, sizeof(b), 0), 6);
  CHECK(memcmp(b, "abcdef", 6) == 0, "got '%.64s'", b);

  /* PEEK leaves the bytes; a short RECV takes only what fits. */
  CHECK_RC(hwsock_guest_send(g, s, "xyz", 3, 0), 3);
  memset(b, 0, sizeof(b));
  CHECK_RC(hwsock_guest_recv(g, s, b, sizeof(b), HWSOCK_RECV_PEEK), 3);
  CHECK(memcmp(b, "xyz", 3) == 0, "peeked '%.64s'", b);
  CHECK_RC(hwsock_guest_recv(g, s, b, 2, 0), 2);
  CHECK(memcmp(b, "xy", 2) == 0, "got '%.2s'", b);
  CHECK_RC(hwsock_guest_recv(g, s, b, sizeof(b), 0), 1);
  CHECK(b[0] == 'z', "got '%c'", b[0]);

  /* Options and the operations an echo does not have. */
  uint8_t v[4];
  size_t vlen = sizeof(v);
  CHECK_RC(hwsock_guest_getsockopt(g, s, HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF,
                                   v, &vlen), 0);
  CHECK(vlen == 4 && hwsock_le32_get((const hwsock_le32 *)v) == 65536,
        "SO_RCVBUF len %zu", vlen);
  uint32_t one = 1;
  CHECK_RC(hwsock_guest_setsockopt(g, s, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY,
                                   &one, sizeof(one)), 0);
  CHECK_RC(hwsock_guest_setsockopt(g, s, HWSOCK_SOL_SOCKET,
                                   HWSOCK_SO_REUSEADDR, &one, sizeof(one)),
           HWSOCK_ENOPROTOOPT);
  CHECK_RC(hwsock_guest_listen(g, s, 1), HWSOCK_EOPNOTSUPP);
  CHECK_RC(hwsock_guest_close(g, s), 0);
}

/* ---- more than the buffer holds: SENDs wait for RECVs ------------------ */

#define BIG (1u << 20) /* 16 times the plugin's 64 KiB buffer */

static unsigned char pattern(size_t i) {
  return (unsigned char)((i * 2654435761u) >> 13);
}

typedef struct sender {
  int sock;
  long result;
} sender;

static void *send_big(void *arg) {
  sender *a = arg;
  unsigned char *buf = malloc(BIG);
  for (size_t i = 0; i < BIG; i++)
    buf[i] = pattern(i);
  a->result = hwsock_guest_send(g, a->sock, buf, BIG, 0);
  free(buf);
  return NULL;
}

static void check_flow_control(void) {
  int s = echo_socket("tcp://192.0.2.1:7", HWSOCK_AF_INET);
  sender a = {.sock = s};
  pthread_t t;
  pthread_create(&t, NULL, send_big, &a);
  /* A prime-sized buffer: ring positions then straddle the wrap. */
  static unsigned char buf[7919];
  size_t got = 0, bad = BIG;
  while (got < BIG) {
    ssize_t n = hwsock_guest_recv(g, s, buf, sizeof(buf), 0);
    if (n <= 0) {
      CHECK(n > 0, "recv at %zu: %s", got, n < 0 ? hwsock_err_name((int)n)
                                                 : "EOF");
      break;
    }
    for (ssize_t i = 0; i < n && bad == BIG; i++)
      if (buf[i] != pattern(got + (size_t)i))
        bad = got + (size_t)i;
    got += (size_t)n;
  }
  pthread_join(t, NULL);
  CHECK(a.result == (long)BIG, "send returned %ld", a.result);
  CHECK(bad == BIG, "first wrong byte at %zu", bad);

  /* SHUT_WR: what is buffered still comes back, then EOF; SENDs fail. */
  CHECK_RC(hwsock_guest_send(g, s, "tail", 4, 0), 4);
  CHECK_RC(hwsock_guest_shutdown(g, s, HWSOCK_SHUT_WR), 0);
  CHECK_RC(hwsock_guest_send(g, s, "x", 1, 0), HWSOCK_EPIPE);
  char b[16] = {0};
  CHECK_RC(hwsock_guest_recv(g, s, b, sizeof(b), 0), 4);
  CHECK(memcmp(b, "tail", 4) == 0, "got '%.16s'", b);
  unsigned fl = 0;
  CHECK_RC(hwsock_guest_recvfrom(g, s, b, sizeof(b), 0, NULL, 0, &fl), 0);
  CHECK(fl & HWSOCK_RESP_F_EOF, "flags %#x", fl);
  CHECK_RC(hwsock_guest_close(g, s), 0);
}

/* ---- a RECV that waits ----------------------------------------------------- */

typedef struct receiver {
  int sock;
  unsigned flags;
  char buf[16];
  size_t len;
  long result;
} receiver;

static void *recv_one(void *arg) {
  receiver *r = arg;
  r->result = hwsock_guest_recv(g, r->sock, r->buf, r->len, r->flags);
  return NULL;
}

static void check_waiting_recv(void) {
  int s = echo_socket("tcp://192.0.2.1:7", HWSOCK_AF_INET);
  receiver r = {.sock = s, .flags = HWSOCK_RECV_WAITALL, .len = 6};
  pthread_t t;
  pthread_create(&t, NULL, recv_one, &r);
  usleep(20 * 1000);
  CHECK_RC(hwsock_guest_send(g, s, "abc", 3, 0), 3);
  usleep(20 * 1000);
  CHECK_RC(hwsock_guest_send(g, s, "def", 3, 0), 3);
  pthread_join(t, NULL);
  CHECK(r.result == 6 && memcmp(r.buf, "abcdef", 6) == 0,
        "WAITALL recv %ld '%.6s'", r.result, r.buf);
  CHECK_RC(hwsock_guest_close(g, s), 0);

  /* close() cancels a RECV that waits for data. The RECV must be on the
   * device before the CLOSE: nothing shows that from here, so try with
   * growing delays; EBADF says the CLOSE came first. */
  long res = HWSOCK_EBADF;
  for (unsigned delay_ms = 20; delay_ms <= 1280 && res == HWSOCK_EBADF;
       delay_ms *= 4) {
    s = echo_socket("tcp://192.0.2.1:7", HWSOCK_AF_INET);
    receiver w = {.sock = s, .len = 8};
    pthread_create(&t, NULL, recv_one, &w);
    usleep(delay_ms * 1000);
    CHECK_RC(hwsock_guest_close(g, s), 0);
    pthread_join(t, NULL);
    res = w.result;
  }
  CHECK_RC(res, HWSOCK_ECANCELED);
}

static void check_routing(void) {
  /* UDP routed to echo: open() refuses the scheme. */
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
  CHECK(s >= 0, "socket: %s", hwsock_err_name(s));
  CHECK_RC(hwsock_guest_connect(g, s, "udp://192.0.2.1:7"),
           HWSOCK_EPROTONOSUPPORT);
  hwsock_guest_close(g, s);
  /* A rule naming a backend that is not loaded. */
  s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  CHECK_RC(hwsock_guest_connect(g, s, "tcp://192.0.2.3:7"), HWSOCK_ENOENT);
  hwsock_guest_close(g, s);
  /* No rule: the default denies (through the deny backend). */
  s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  CHECK_RC(hwsock_guest_connect(g, s, "tcp://192.0.2.1:8"), HWSOCK_EACCES);
  hwsock_guest_close(g, s);
}

/* ---- the plugin's options, on a device of its own ------------------------ */

static void check_options(const char *path) {
  char err[256];
  hwsock_plugin *p;
  int rc = hwsock_plugin_load(path, &p, err, sizeof(err));
  CHECK(rc == 0, "%s", err);
  if (rc < 0)
    return;
  const hwsock_backend_desc *d = hwsock_plugin_desc(p);
  CHECK(strcmp(d->name, "echo") == 0, "name '%s'", d->name);
  CHECK(d->schemes != NULL && d->schemes[0] == NULL, "echo serves schemes");
  static const struct {
    const char *opt;
    int want;
  } cases[] = {
      {NULL, 0},
      {"bufsize=4096", 0},
      {"bufsize=1", 0},
      {"bufsize=0", HWSOCK_EBADCONFIG},
      {"bufsize=16777217", HWSOCK_EBADCONFIG},
      {"bufsize=12k", HWSOCK_EBADCONFIG},
      {"colour=blue", HWSOCK_EBADCONFIG},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    hwsock_device_config cfg;
    hwsock_device *dev;
    hwsock_device_config_init(&cfg);
    CHECK_RC(hwsock_device_new(&cfg, &dev), 0);
    rc = hwsock_device_add_backend(dev, d, cases[i].opt);
    CHECK(rc == cases[i].want, "options '%s': %s", cases[i].opt,
          hwsock_err_name(rc));
    hwsock_device_free(dev);
  }
  hwsock_plugin_unload(p);
}

static int refused(const char *path, const char *text) {
  char err[256] = "";
  hwsock_plugin *p = NULL;
  int rc = hwsock_plugin_load(path, &p, err, sizeof(err));
  CHECK_RC(rc, HWSOCK_EABI);
  CHECK(p == NULL, "a handle was returned");
  CHECK(strstr(err, text) != NULL, "message '%s' lacks '%s'", err, text);
  if (failures == 0)
    printf("load_echo: refused as expected: %s\n", err);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--refused") == 0)
    return refused(argv[2], argv[3]);
  if (argc != 2) {
    fprintf(stderr, "usage: load_echo ECHO.so | --refused MODULE TEXT\n");
    return 2;
  }
  check_options(argv[1]);

  inproc ip;
  inproc_opts o = {.policy_yaml = policy_yaml,
                   .backends = {"deny", NULL},
                   .plugin_paths = {argv[1], NULL}};
  int rc = inproc_start(&ip, &o);
  if (rc < 0) {
    fprintf(stderr, "load_echo: inproc_start: %s\n", hwsock_strerror(rc));
    return 1;
  }
  g = ip.guest;
  check_names();
  check_small_echo();
  check_flow_control();
  check_waiting_recv();
  check_routing();
  inproc_stop(&ip);
  CHECK(!ip.needs_reset, "the device needed a reset");
  if (failures) {
    fprintf(stderr, "load_echo: %s: %d checks failed\n", argv[1], failures);
    return 1;
  }
  printf("load_echo: %s: all checks passed\n", argv[1]);
  return 0;
}
