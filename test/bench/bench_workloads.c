/* The benchmark workloads, written once over bench_net (bench.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bench.h"

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(bench_net *n, const char *what, long err) {
  fprintf(stderr, "hwsock-bench[%s]: %s: %s (%ld)\n", n->name, what,
          n->strerror((int)err), err);
  return 1;
}

/* Receives exactly len bytes: 0, a negative error, or EARLY_EOF. */
#define EARLY_EOF (-100000)
static long recv_full(bench_net *n, int h, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = n->recv(n, h, (char *)buf + got, len - got);
    if (r < 0)
      return (long)r;
    if (r == 0)
      return EARLY_EOF;
    got += (size_t)r;
  }
  return 0;
}

static const char *err_text(bench_net *n, long e) {
  return e == EARLY_EOF ? "early EOF" : n->strerror((int)e);
}

/* ---- bulk: one stream of msg-byte writes, timed until the sink's ack ----
 * bulkzc: the same through the net's zero-copy send (send_zc) where it has
 * one. The copying bulk produces its buffer once, before the clock starts;
 * so that the two measure the same thing, the zero-copy writes produce
 * nothing either (the transport's buffers carry what they held). */

static int run_bulk(bench_net *n, const bench_args *a) {
  int zc = strcmp(a->workload, "bulkzc") == 0 && n->send_zc != NULL;
  char *buf = malloc(a->msg);
  if (buf == NULL)
    return fail(n, "malloc", -ENOMEM);
  for (size_t i = 0; i < a->msg; i++)
    buf[i] = (char)(i * 7u);
  int h = n->tcp_connect(n, a->port);
  if (h < 0)
    return fail(n, "connect", h);
  uint64_t sent = 0;
  double t0 = bench_now(), end = t0 + a->seconds;
  do {
    for (int i = 0; i < 16; i++) {
      ssize_t w = zc ? n->send_zc(n, h, a->msg) : n->send(n, h, buf, a->msg);
      if (w < 0)
        return fail(n, "send", (long)w);
      sent += (uint64_t)w;
    }
  } while (bench_now() < end);
  int rc = n->shutdown_wr(n, h);
  if (rc < 0)
    return fail(n, "shutdown", rc);
  uint8_t le[8];
  long r = recv_full(n, h, le, sizeof(le));
  double t1 = bench_now();
  if (r < 0) {
    fprintf(stderr, "hwsock-bench[%s]: bulk ack: %s\n", n->name,
            err_text(n, r));
    return 1;
  }
  uint64_t acked = 0;
  for (int i = 0; i < 8; i++)
    acked |= (uint64_t)le[i] << (8 * i);
  n->close(n, h);
  free(buf);
  if (acked != sent) {
    fprintf(stderr, "hwsock-bench[%s]: bulk: sent %llu bytes, sink got %llu\n",
            n->name, (unsigned long long)sent, (unsigned long long)acked);
    return 1;
  }
  printf("result workload=%s zero_copy=%d bytes=%llu seconds=%.4f "
         "gbit_s=%.4f\n", a->workload, zc, (unsigned long long)sent, t1 - t0,
         (double)sent * 8.0 / (t1 - t0) / 1e9);
  return 0;
}

/* ---- rr: msg bytes out, msg bytes back, one at a time ------------------- */

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static double pct(const double *v, size_t n, double p) {
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

static int run_rr(bench_net *n, const bench_args *a) {
  char *out = calloc(1, a->msg), *in = malloc(a->msg);
  size_t cap = 1 << 16, cnt = 0;
  double *lat = malloc(cap * sizeof(*lat));
  if (out == NULL || in == NULL || lat == NULL)
    return fail(n, "malloc", -ENOMEM);
  int h = n->tcp_connect(n, a->port);
  if (h < 0)
    return fail(n, "connect", h);
  /* Warm-up: first requests fault pages in and grow windows. */
  for (int i = 0; i < 200; i++) {
    ssize_t w = n->send(n, h, out, a->msg);
    if (w < 0)
      return fail(n, "send", (long)w);
    long r = recv_full(n, h, in, a->msg);
    if (r < 0) {
      fprintf(stderr, "hwsock-bench[%s]: rr: %s\n", n->name, err_text(n, r));
      return 1;
    }
  }
  double t0 = bench_now(), end = t0 + a->seconds, t = t0;
  while (t < end) {
    out[0] = (char)cnt;
    ssize_t w = n->send(n, h, out, a->msg);
    if (w < 0)
      return fail(n, "send", (long)w);
    long r = recv_full(n, h, in, a->msg);
    if (r < 0) {
      fprintf(stderr, "hwsock-bench[%s]: rr: %s\n", n->name, err_text(n, r));
      return 1;
    }
    if (in[0] != out[0]) {
      fprintf(stderr, "hwsock-bench[%s]: rr: wrong echo\n", n->name);
      return 1;
    }
    double t1 = bench_now();
    if (cnt == cap) {
      cap *= 2;
      double *nl = realloc(lat, cap * sizeof(*lat));
      if (nl == NULL)
        return fail(n, "realloc", -ENOMEM);
      lat = nl;
    }
    lat[cnt++] = (t1 - t) * 1e6;
    t = t1;
  }
  n->close(n, h);
  qsort(lat, cnt, sizeof(*lat), cmp_double);
  printf("result workload=rr msg=%zu n=%zu rps=%.1f p50_us=%.2f p99_us=%.2f "
         "p999_us=%.2f\n",
         a->msg, cnt, (double)cnt / (t - t0), pct(lat, cnt, 0.50),
         pct(lat, cnt, 0.99), pct(lat, cnt, 0.999));
  free(lat);
  free(out);
  free(in);
  return 0;
}

/* ---- cps: connect, one 1-byte request and answer, close ----------------- */

static int run_cps(bench_net *n, const bench_args *a) {
  unsigned long cnt = 0;
  double t0 = bench_now(), end = t0 + a->seconds, t;
  do {
    int h = n->tcp_connect(n, a->port);
    if (h < 0)
      return fail(n, "connect", h);
    char c = 'x';
    ssize_t w = n->send(n, h, &c, 1);
    if (w < 0)
      return fail(n, "send", (long)w);
    long r = recv_full(n, h, &c, 1);
    if (r < 0) {
      fprintf(stderr, "hwsock-bench[%s]: cps: %s\n", n->name, err_text(n, r));
      return 1;
    }
    int rc = n->close(n, h);
    if (rc < 0)
      return fail(n, "close", rc);
    cnt++;
    t = bench_now();
  } while (t < end);
  printf("result workload=cps n=%lu seconds=%.4f cps=%.1f\n", cnt, t - t0,
         (double)cnt / (t - t0));
  return 0;
}

/* ---- udp: datagrams as fast as the path takes them ---------------------- */

/* Asks the server's ctrl port (always over host sockets: the measuring
 * channel is not part of the path) how many datagrams it has counted. */
static int udp_count(uint16_t ctrl, unsigned long long *pkts) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(ctrl),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char line[128];
  size_t got = 0;
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  for (;;) {
    ssize_t r = read(fd, line + got, sizeof(line) - 1 - got);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  line[got] = '\0';
  unsigned long long bytes;
  return sscanf(line, "udp %llu %llu", pkts, &bytes) == 2 ? 0 : -EPROTO;
}

static void sleep_s(double s) {
  struct timespec ts = {.tv_sec = (time_t)s,
                        .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

static int run_udp(bench_net *n, const bench_args *a) {
  if (n->udp_open == NULL) {
    fprintf(stderr, "hwsock-bench[%s]: udp: not supported by this path\n",
            n->name);
    return 1;
  }
  char *buf = calloc(1, a->msg);
  if (buf == NULL)
    return fail(n, "malloc", -ENOMEM);
  unsigned long long before, after;
  int rc = udp_count(a->ctrl_port, &before);
  if (rc < 0)
    return fail(n, "ctrl", rc);
  int h = n->udp_open(n, a->port);
  if (h < 0)
    return fail(n, "udp socket", h);
  unsigned long sent = 0, errs = 0;
  double t0 = bench_now(), end = t0 + a->seconds, t;
  do {
    for (int i = 0; i < 32; i++) {
      ssize_t w = n->udp_send(n, h, buf, a->msg);
      if (w < 0) {
        /* a full socket buffer is the path's limit, not a failure */
        if (w != -ENOBUFS && w != -EAGAIN)
          return fail(n, "udp send", (long)w);
        errs++;
      } else {
        sent++;
      }
    }
    t = bench_now();
  } while (t < end);
  sleep_s(0.3); /* let the server drain its queue */
  n->close(n, h);
  rc = udp_count(a->ctrl_port, &after);
  if (rc < 0)
    return fail(n, "ctrl", rc);
  double dt = t - t0;
  printf("result workload=udp msg=%zu sent=%lu delivered=%llu seconds=%.4f "
         "sent_pps=%.1f delivered_pps=%.1f full=%lu\n",
         a->msg, sent, after - before, dt, (double)sent / dt,
         (double)(after - before) / dt, errs);
  free(buf);
  return 0;
}

/* ---- idle: count concurrent connections that then sit idle --------------
 * Talks with the driving script on stdin/stdout so that it can sample the
 * VMM's memory at each step: prints "idle-ready", waits for a line, opens
 * count connections, prints "idle-open", waits for a line, closes all. */

static int wait_line(void) {
  char line[64];
  return fgets(line, sizeof(line), stdin) != NULL ? 0 : -1;
}

static int run_idle(bench_net *n, const bench_args *a) {
  int *hs = calloc(a->count ? a->count : 1, sizeof(*hs));
  if (hs == NULL)
    return fail(n, "malloc", -ENOMEM);
  if (n->reserve != NULL) {
    int rc = n->reserve(n, a->count);
    if (rc < 0)
      return fail(n, "reserve", rc);
  }
  printf("idle-ready\n");
  fflush(stdout);
  if (wait_line() < 0)
    return 1;
  double t0 = bench_now();
  for (unsigned i = 0; i < a->count; i++) {
    hs[i] = n->tcp_connect(n, a->port);
    if (hs[i] < 0) {
      fprintf(stderr, "hwsock-bench[%s]: idle: socket %u of %u\n", n->name,
              i + 1, a->count);
      return fail(n, "connect", hs[i]);
    }
  }
  double t1 = bench_now();
  printf("idle-open %u %.3f\n", a->count, t1 - t0);
  fflush(stdout);
  if (wait_line() < 0)
    return 1;
  for (unsigned i = 0; i < a->count; i++)
    n->close(n, hs[i]);
  free(hs);
  printf("result workload=idle sockets=%u open_seconds=%.3f\n", a->count,
         t1 - t0);
  return 0;
}

/* ---- conc: count connections, msg bytes echoed on each ------------------
 * The smallest version that needs no readiness API: all connections are
 * opened first and each echoes one byte (not timed: a connection the
 * server has not yet accepted -- a full listen backlog drops the
 * handshake's last ACK -- would stall the timed part for a
 * retransmission), then msg bytes are written on each in turn,
 * then each echo is read back in turn and checked. The echo of a
 * connection waits in the host kernel (or the device's credit window)
 * while the others are written, as it would for a server that is slow to
 * read. gbit_s counts the bytes echoed once (client -> server); p50/p99 are
 * per connection, from its write to its echo fully read. */

static int run_conc(bench_net *n, const bench_args *a) {
  unsigned cnt = a->count;
  int *hs = calloc(cnt, sizeof(*hs));
  double *t_sent = calloc(cnt, sizeof(double));
  double *lat = calloc(cnt, sizeof(double));
  char *out = malloc(a->msg), *in = malloc(a->msg);
  if (hs == NULL || t_sent == NULL || lat == NULL || out == NULL || in == NULL)
    return fail(n, "malloc", -ENOMEM);
  for (size_t i = 0; i < a->msg; i++)
    out[i] = (char)(i * 13u + 1u);
  if (n->reserve != NULL) {
    int rc = n->reserve(n, cnt);
    if (rc < 0)
      return fail(n, "reserve", rc);
  }
  for (unsigned i = 0; i < cnt; i++) {
    hs[i] = n->tcp_connect(n, a->port);
    if (hs[i] < 0) {
      fprintf(stderr, "hwsock-bench[%s]: conc: connection %u of %u\n",
              n->name, i + 1, cnt);
      return fail(n, "connect", hs[i]);
    }
    ssize_t w = n->send(n, hs[i], out, 1);
    long r = w < 0 ? (long)w : recv_full(n, hs[i], in, 1);
    if (r < 0) {
      fprintf(stderr, "hwsock-bench[%s]: conc: first byte: %s\n", n->name,
              err_text(n, r));
      return 1;
    }
  }
  double t0 = bench_now();
  for (unsigned i = 0; i < cnt; i++) {
    t_sent[i] = bench_now();
    ssize_t w = n->send(n, hs[i], out, a->msg);
    if (w < 0)
      return fail(n, "send", (long)w);
  }
  for (unsigned i = 0; i < cnt; i++) {
    long r = recv_full(n, hs[i], in, a->msg);
    if (r < 0) {
      fprintf(stderr, "hwsock-bench[%s]: conc: %s\n", n->name, err_text(n, r));
      return 1;
    }
    if (memcmp(in, out, a->msg) != 0) {
      fprintf(stderr, "hwsock-bench[%s]: conc: wrong echo on connection %u\n",
              n->name, i);
      return 1;
    }
    lat[i] = (bench_now() - t_sent[i]) * 1e3;
  }
  double t1 = bench_now();
  for (unsigned i = 0; i < cnt; i++)
    n->close(n, hs[i]);
  qsort(lat, cnt, sizeof(*lat), cmp_double);
  printf("result workload=conc conns=%u msg=%zu bytes=%llu seconds=%.4f "
         "gbit_s=%.4f p50_ms=%.3f p99_ms=%.3f\n",
         cnt, a->msg, (unsigned long long)cnt * a->msg, t1 - t0,
         (double)cnt * (double)a->msg * 8.0 / (t1 - t0) / 1e9,
         pct(lat, cnt, 0.50), pct(lat, cnt, 0.99));
  free(hs);
  free(t_sent);
  free(lat);
  free(out);
  free(in);
  return 0;
}

int bench_run(bench_net *n, const bench_args *a) {
  if (strcmp(a->workload, "bulk") == 0 || strcmp(a->workload, "bulkzc") == 0)
    return run_bulk(n, a);
  if (strcmp(a->workload, "rr") == 0)
    return run_rr(n, a);
  if (strcmp(a->workload, "cps") == 0)
    return run_cps(n, a);
  if (strcmp(a->workload, "udp") == 0)
    return run_udp(n, a);
  if (strcmp(a->workload, "idle") == 0)
    return run_idle(n, a);
  if (strcmp(a->workload, "conc") == 0)
    return run_conc(n, a);
  fprintf(stderr, "hwsock-bench: unknown workload '%s'\n", a->workload);
  return 1;
}

static int parse_num(const char *opt, const char *s, double lo, double hi,
                     double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
    fprintf(stderr, "hwsock-bench: %s: expected a number in %g..%g, got '%s'\n",
            opt, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

int bench_parse_args(int argc, char **argv, bench_args *a,
                     const char **extra, size_t extra_cap) {
  memset(a, 0, sizeof(*a));
  a->workload = "rr";
  a->seconds = 2.0;
  a->msg = 1;
  a->count = 10000;
  size_t ne = 0;
  for (int i = 1; i < argc; i += 2) {
    const char *o = argv[i], *v = (i + 1 < argc) ? argv[i + 1] : NULL;
    double d;
    if (v == NULL) {
      fprintf(stderr, "hwsock-bench: %s needs a value\n", o);
      return -1;
    }
    if (strcmp(o, "--workload") == 0) {
      a->workload = v;
    } else if (strcmp(o, "--port") == 0) {
      if (parse_num(o, v, 1, 65535, &d) < 0)
        return -1;
      a->port = (uint16_t)d;
    } else if (strcmp(o, "--ctrl-port") == 0) {
      if (parse_num(o, v, 1, 65535, &d) < 0)
        return -1;
      a->ctrl_port = (uint16_t)d;
    } else if (strcmp(o, "--seconds") == 0) {
      if (parse_num(o, v, 0.01, 3600, &d) < 0)
        return -1;
      a->seconds = d;
    } else if (strcmp(o, "--msg") == 0) {
      if (parse_num(o, v, 1, 1 << 20, &d) < 0)
        return -1;
      a->msg = (size_t)d;
    } else if (strcmp(o, "--count") == 0) {
      if (parse_num(o, v, 1, 1000000, &d) < 0)
        return -1;
      a->count = (unsigned)d;
    } else if (ne + 2 < extra_cap && strncmp(o, "--", 2) == 0) {
      extra[ne++] = o;
      extra[ne++] = v;
    } else {
      fprintf(stderr, "hwsock-bench: unknown option '%s'\n", o);
      return -1;
    }
  }
  if (extra_cap > 0)
    extra[ne] = NULL;
  if (a->port == 0) {
    fprintf(stderr, "hwsock-bench: --port is required\n");
    return -1;
  }
  return 0;
}
