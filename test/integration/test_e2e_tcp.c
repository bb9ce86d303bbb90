/* End to end over TCP: guest driver -> split virtqueues -> device -> policy
 * -> tcp backend (libuv) -> real loopback sockets, and back. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "inproc.h"

static const char *policy =
    "version: 1\n"
    "default: deny\n"
    "rules:\n"
    "  - action: deny\n"
    "    to: [127.0.0.2/32]\n"
    "    reason: test deny\n"
    "  - action: deny\n"
    "    to: [127.0.0.4/32]\n"
    "    error: ECONNREFUSED\n"
    "    reason: test deny with errno\n"
    "  - action: decline\n"
    "    to: [127.0.0.3/32]\n"
    "    reason: test decline\n"
    "  - action: offload\n"
    "    scheme: [tcp, tcp6]\n"
    "    to: [127.0.0.0/8, \"::1/128\"]\n"
    "    reason: test loopback\n";

static inproc ip;

static void setup(void) {
  inproc_opts o = {.policy_yaml = policy};
  cr_assert_eq(inproc_start(&ip, &o), 0);
}
static void teardown(void) { inproc_stop(&ip); }

TestSuite(e2e_tcp, .init = setup, .fini = teardown, .timeout = 240);

/* --- a real host-side server --------------------------------------------- */

typedef struct server {
  int lfd;
  int port;
  pthread_t thread;
  int mode;          /* 0 echo, 1 reset after `limit` bytes, 2 hello+close */
  size_t limit;
} server;

static void *server_main(void *arg) {
  server *s = arg;
  int c = accept(s->lfd, NULL, NULL);
  if (c < 0)
    return NULL;
  if (s->mode == 2) {
    (void)!write(c, "hello", 5);
    close(c);
    return NULL;
  }
  static __thread char buf[256 * 1024];
  size_t total = 0;
  for (;;) {
    ssize_t n = read(c, buf, sizeof(buf));
    if (n <= 0)
      break;
    total += (size_t)n;
    if (s->mode == 1 && total >= s->limit) {
      struct linger lg = {1, 0}; /* close with RST */
      setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      break;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(c, buf + off, (size_t)(n - off));
      if (w <= 0)
        goto out;
      off += w;
    }
  }
out:
  close(c);
  return NULL;
}

static void server_start(server *s, int mode, size_t limit) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  s->mode = mode;
  s->limit = limit;
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(s->lfd >= 0);
  cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(s->lfd, 4), 0);
  getsockname(s->lfd, (struct sockaddr *)&a, &len);
  s->port = ntohs(a.sin_port);
  pthread_create(&s->thread, NULL, server_main, s);
}

static void server_stop(server *s) {
  shutdown(s->lfd, SHUT_RDWR);
  pthread_join(s->thread, NULL);
  close(s->lfd);
}

static int guest_connect(const char *host, int port) {
  char uri[64];
  int s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(s >= 0, "socket: %s", hwsock_strerror(s));
  snprintf(uri, sizeof(uri), "tcp://%s:%d", host, port);
  int rc = hwsock_guest_connect(ip.guest, s, uri);
  if (rc < 0) {
    hwsock_guest_close(ip.guest, s);
    return rc;
  }
  return s;
}

/* --- 64 MiB both ways ----------------------------------------------------- */

#define BULK (64u << 20)
#define CHUNK (256u * 1024)

typedef struct sender {
  int sock;
  char hex[65];
  ssize_t rc;
} sender;

static void fill(unsigned char *p, size_t n, uint64_t *state) {
  for (size_t i = 0; i < n; i++) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (unsigned char)(*state >> 56);
  }
}

static void *sender_main(void *arg) {
  sender *s = arg;
  unsigned char *buf = malloc(CHUNK);
  uint64_t st = 42;
  inproc_sha *sha = inproc_sha_new();
  s->rc = 0;
  for (size_t done = 0; done < BULK; done += CHUNK) {
    fill(buf, CHUNK, &st);
    inproc_sha_update(sha, buf, CHUNK);
    ssize_t n = hwsock_guest_send(ip.guest, s->sock, buf, CHUNK, 0);
    if (n != (ssize_t)CHUNK) {
      s->rc = n < 0 ? n : -1;
      break;
    }
  }
  inproc_sha_final(sha, s->hex);
  if (s->rc == 0)
    s->rc = hwsock_guest_shutdown(ip.guest, s->sock, HWSOCK_SHUT_WR);
  free(buf);
  return NULL;
}

Test(e2e_tcp, moves_64mib_both_ways_through_an_echo_server) {
  server srv;
  server_start(&srv, 0, 0);
  int s = guest_connect("127.0.0.1", srv.port);
  cr_assert(s >= 0, "connect: %s", hwsock_strerror(s));

  sender snd = {.sock = s};
  pthread_t t;
  pthread_create(&t, NULL, sender_main, &snd);

  unsigned char *buf = malloc(CHUNK);
  inproc_sha *sha = inproc_sha_new();
  size_t got = 0;
  for (;;) {
    ssize_t n = hwsock_guest_recv(ip.guest, s, buf, CHUNK, 0);
    cr_assert(n >= 0, "recv: %s", hwsock_strerror((int)n));
    if (n == 0)
      break;
    inproc_sha_update(sha, buf, (size_t)n);
    got += (size_t)n;
  }
  char hex[65];
  inproc_sha_final(sha, hex);
  pthread_join(t, NULL);
  free(buf);

  cr_assert_eq(snd.rc, 0, "send side: %s", hwsock_strerror((int)snd.rc));
  cr_assert_eq(got, BULK);
  cr_assert_str_eq(hex, snd.hex);
  printf("e2e: sent and received %u bytes, sha256 %s\n", BULK, hex);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  server_stop(&srv);
}

Test(e2e_tcp, peer_reset_mid_transfer_gives_a_clean_error) {
  server srv;
  server_start(&srv, 1, 1u << 20);
  int s = guest_connect("127.0.0.1", srv.port);
  cr_assert(s >= 0);
  unsigned char *buf = calloc(1, CHUNK);
  ssize_t n = 0;
  /* The server resets after 1 MiB: a send or recv must fail soon after. */
  for (int i = 0; i < 4096 && n >= 0; i++)
    n = hwsock_guest_send(ip.guest, s, buf, CHUNK, 0);
  cr_assert(n == HWSOCK_ECONNRESET || n == HWSOCK_EPIPE,
            "send after reset: %s", hwsock_err_name((int)n));
  n = hwsock_guest_recv(ip.guest, s, buf, CHUNK, 0);
  cr_assert(n == 0 || n == HWSOCK_ECONNRESET || n > 0, "recv: %s",
            hwsock_err_name((int)n));
  free(buf);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  server_stop(&srv);
}

Test(e2e_tcp, peer_close_gives_data_then_eof) {
  server srv;
  server_start(&srv, 2, 0);
  int s = guest_connect("127.0.0.1", srv.port);
  cr_assert(s >= 0);
  char buf[64];
  size_t got = 0;
  ssize_t n;
  while ((n = hwsock_guest_recv(ip.guest, s, buf + got, sizeof(buf) - got,
                                0)) > 0)
    got += (size_t)n;
  cr_assert_eq(n, 0);
  cr_assert_eq(got, 5);
  cr_assert_eq(memcmp(buf, "hello", 5), 0);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
  server_stop(&srv);
}

Test(e2e_tcp, refused_connect_reports_econnrefused) {
  server srv;
  server_start(&srv, 2, 0);
  int port = srv.port;
  server_stop(&srv); /* nothing listens there any more */
  cr_assert_eq(guest_connect("127.0.0.1", port), HWSOCK_ECONNREFUSED);
}

Test(e2e_tcp, denied_connect_gets_the_policy_errno_and_allowed_one_works) {
  server srv;
  server_start(&srv, 2, 0);
  cr_assert_eq(guest_connect("127.0.0.2", srv.port), HWSOCK_EACCES);
  cr_assert_eq(guest_connect("127.0.0.4", srv.port), HWSOCK_ECONNREFUSED);
  int s = guest_connect("127.0.0.1", srv.port);
  cr_assert(s >= 0);
  char buf[8];
  cr_assert_eq(hwsock_guest_recv(ip.guest, s, buf, sizeof(buf), 0), 5);
  hwsock_guest_close(ip.guest, s);
  server_stop(&srv);
}

Test(e2e_tcp, declined_socket_answers_declined_until_closed) {
  int s = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(s >= 0);
  cr_assert_eq(hwsock_guest_connect(ip.guest, s, "tcp://127.0.0.3:80"),
               HWSOCK_EDECLINED);
  cr_assert_eq(hwsock_guest_send(ip.guest, s, "x", 1, 0), HWSOCK_EDECLINED);
  cr_assert_eq(hwsock_guest_close(ip.guest, s), 0);
}

Test(e2e_tcp, guest_listener_accepts_a_host_connection) {
  int l = hwsock_guest_socket(ip.guest, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert(l >= 0);
  cr_assert_eq(hwsock_guest_bind(ip.guest, l, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(hwsock_guest_listen(ip.guest, l, 8), 0);
  char name[HWSOCK_URI_MAX + 1];
  cr_assert_eq(hwsock_guest_getname(ip.guest, l, 0, name, sizeof(name)), 0);
  hwsock_addr a;
  cr_assert_eq(hwsock_uri_parse(name, strlen(name), 0, &a, NULL), 0);

  int c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(a.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
  cr_assert_eq(write(c, "ping", 4), 4);

  char peer[HWSOCK_URI_MAX + 1];
  int s = hwsock_guest_accept(ip.guest, l, peer, sizeof(peer));
  cr_assert(s >= 0, "accept: %s", hwsock_strerror(s));
  cr_assert_eq(strncmp(peer, "tcp://127.0.0.1:", 16), 0, "peer %s", peer);
  char buf[8];
  cr_assert_eq(hwsock_guest_recv(ip.guest, s, buf, sizeof(buf), 0), 4);
  cr_assert_eq(memcmp(buf, "ping", 4), 0);
  cr_assert_eq(hwsock_guest_send(ip.guest, s, "pong", 4, 0), 4);
  cr_assert_eq(read(c, buf, sizeof(buf)), 4);
  cr_assert_eq(memcmp(buf, "pong", 4), 0);
  close(c);
  cr_assert_eq(hwsock_guest_recv(ip.guest, s, buf, sizeof(buf), 0), 0);
  hwsock_guest_close(ip.guest, s);
  hwsock_guest_close(ip.guest, l);
}

/* --- observability: the socket table and counters under a known load ---- */

typedef struct table {
  hwsock_device_stats st;
  unsigned n;
  hwsock_sock_info rows[8];
} table;

static int collect(const hwsock_sock_info *i, void *arg) {
  table *t = arg;
  if (t->n < 8)
    t->rows[t->n++] = *i;
  return 0;
}

static void snapshot(hwsock_device *dev, void *arg) {
  table *t = arg;
  t->n = 0;
  t->st.size = sizeof(t->st);
  hwsock_device_get_stats(dev, &t->st);
  hwsock_device_foreach_socket(dev, collect, t);
}

Test(e2e_tcp, socket_table_and_counters_match_a_known_workload) {
  enum { N = 3, M = 10000 };
  server srv[N];
  int s[N];
  char *buf = malloc(M);
  memset(buf, 'x', M);
  table before, after;
  inproc_on_device(&ip, snapshot, &before);
  for (int i = 0; i < N; i++) {
    server_start(&srv[i], 0, 0);
    s[i] = guest_connect("127.0.0.1", srv[i].port);
    cr_assert(s[i] >= 0);
    cr_assert_eq(hwsock_guest_send(ip.guest, s[i], buf, M, 0), M);
    size_t got = 0;
    while (got < M) {
      ssize_t n = hwsock_guest_recv(ip.guest, s[i], buf, M - got, 0);
      cr_assert(n > 0);
      got += (size_t)n;
    }
  }
  cr_assert_eq(hwsock_guest_shutdown(ip.guest, s[0], HWSOCK_SHUT_WR), 0);
  inproc_on_device(&ip, snapshot, &after);

  cr_assert_eq(after.n, N);
  cr_assert_eq(after.st.sockets_offloaded, N);
  cr_assert_eq(after.st.verdicts[HWSOCK_ACTION_OFFLOAD] -
                   before.st.verdicts[HWSOCK_ACTION_OFFLOAD], N);
  cr_assert_eq(after.st.bytes_out - before.st.bytes_out, (uint64_t)N * M);
  cr_assert_eq(after.st.bytes_in - before.st.bytes_in, (uint64_t)N * M);
  cr_assert_eq(after.st.requests_by_op[HWSOCK_OP_CONNECT] -
                   before.st.requests_by_op[HWSOCK_OP_CONNECT], N);
  for (int i = 0; i < N; i++) {
    const hwsock_sock_info *r = &after.rows[i];
    char remote[64];
    snprintf(remote, sizeof(remote), "tcp://127.0.0.1:%d", srv[i].port);
    cr_assert_str_eq(r->remote, remote);
    cr_assert_eq(strncmp(r->local, "tcp://127.0.0.1:", 16), 0);
    cr_assert_str_eq(r->backend, "tcp");
    cr_assert_eq(r->bytes_out, M);
    cr_assert_eq(r->bytes_in, M);
    cr_assert(r->host_fd >= 0);
    cr_assert_eq(r->rule, 3, "the loopback offload rule (index 3)");
    cr_assert_str_eq(hwsock_ss_name(r->state), i == 0 ? "FIN-WAIT" : "ESTAB");
    char json[1024];
    cr_assert(hwsock_sock_info_json(r, json, sizeof(json)) > 0);
  }
  char big[16384];
  cr_assert(hwsock_stats_json(&after.st, big, sizeof(big)) > 0);
  cr_assert_eq(hwsock_stats_json(&after.st, big, 16), HWSOCK_ENOSPC);
  for (int i = 0; i < N; i++) {
    hwsock_guest_close(ip.guest, s[i]);
    server_stop(&srv[i]);
  }
  free(buf);
}

/* --- capture: tshark reconstructs the exact bytes ------------------------- */

#include "hwsock/capture.h"

typedef struct capctl {
  hwsock_capture *cap;
} capctl;

static void cap_attach(hwsock_device *dev, void *arg) {
  hwsock_device_set_capture(dev, ((capctl *)arg)->cap);
}
static void cap_detach(hwsock_device *dev, void *arg) {
  hwsock_device_set_capture(dev, NULL);
}

/* sha256 of one direction of `tshark -z follow,tcp,raw,0` (node 0 = the
 * connecting side: lines without a leading tab). */
static size_t follow_sha(const char *file, int node, char hex[65]) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "tshark -r %s -q -z follow,tcp,raw,0 2>/dev/null", file);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  inproc_sha *sha = inproc_sha_new();
  static char line[1 << 20];
  size_t total = 0;
  int in_data = 0;
  while (fgets(line, sizeof(line), p)) {
    if (strncmp(line, "Node 1:", 7) == 0) {
      in_data = 1;
      continue;
    }
    if (!in_data || line[0] == '=')
      continue;
    int is1 = line[0] == '\t';
    if (is1 != node)
      continue;
    unsigned char b[1 << 19];
    size_t n = 0;
    for (char *q = line + is1; q[0] && q[1] && q[0] != '\n'; q += 2) {
      unsigned v;
      if (sscanf(q, "%2x", &v) != 1)
        break;
      b[n++] = (unsigned char)v;
    }
    inproc_sha_update(sha, b, n);
    total += n;
  }
  pclose(p);
  inproc_sha_final(sha, hex);
  return total;
}

Test(e2e_tcp, capture_is_reconstructed_byte_for_byte_by_tshark) {
  /* A fresh name in a private directory: the capture creates the file
   * itself and refuses an existing one. */
  char dir[] = "/tmp/hwsock-capture-XXXXXX";
  cr_assert(mkdtemp(dir) != NULL);
  char path[sizeof(dir) + 16];
  snprintf(path, sizeof(path), "%s/flows.pcap", dir);
  capctl cc;
  char err[256];
  cr_assert_eq(hwsock_capture_open(path, 0, &cc.cap, err, sizeof(err)), 0,
               "%s", err);
  inproc_on_device(&ip, cap_attach, &cc);

  server srv;
  server_start(&srv, 0, 0);
  int s = guest_connect("127.0.0.1", srv.port);
  cr_assert(s >= 0);
  enum { TOTAL = 1 << 20 };
  unsigned char *buf = malloc(TOTAL), *back = malloc(TOTAL);
  uint64_t st = 7;
  fill(buf, TOTAL, &st);
  inproc_sha *sha = inproc_sha_new();
  inproc_sha_update(sha, buf, TOTAL);
  char sent_hex[65];
  inproc_sha_final(sha, sent_hex);
  /* send in pieces and read the echo as we go (the server echoes) */
  size_t got = 0;
  for (size_t off = 0; off < TOTAL; off += 65536) {
    cr_assert_eq(hwsock_guest_send(ip.guest, s, buf + off, 65536, 0), 65536);
    while (got < off + 65536) {
      ssize_t n = hwsock_guest_recv(ip.guest, s, back + got, TOTAL - got, 0);
      cr_assert(n > 0);
      got += (size_t)n;
    }
  }
  cr_assert_eq(hwsock_guest_shutdown(ip.guest, s, HWSOCK_SHUT_WR), 0);
  cr_assert_eq(hwsock_guest_recv(ip.guest, s, back, 16, 0), 0);
  hwsock_guest_close(ip.guest, s);
  server_stop(&srv);
  inproc_on_device(&ip, cap_detach, NULL);
  uint64_t written, dropped;
  hwsock_capture_counts(cc.cap, &written, &dropped);
  hwsock_capture_close(cc.cap);
  cr_assert_gt(written, 2 * (TOTAL / 16384));
  cr_assert_eq(dropped, 0);

  char out_hex[65], in_hex[65];
  cr_assert_eq(follow_sha(path, 0, out_hex), TOTAL);
  cr_assert_str_eq(out_hex, sent_hex);
  cr_assert_eq(follow_sha(path, 1, in_hex), TOTAL);
  cr_assert_str_eq(in_hex, sent_hex);
  unlink(path);
  rmdir(dir);
  free(buf);
  free(back);
}
