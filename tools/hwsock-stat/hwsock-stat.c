/* hwsock-stat: ss(8) for offloaded sockets. Asks a running hwsock-vmm over
 * its control socket (docs/OBSERVABILITY.md) and prints the socket table,
 * the device counters or the latency histograms of every attached guest.
 *
 * The VMM answers the table and the counters as tab-separated lines made
 * for this program (sockets-tsv, counters-tsv) and as JSON lines for
 * everyone else (-j passes those through), so no JSON is parsed here. The
 * filters (-t -u -x -l) are applied by the VMM, for both forms. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "openmetrics.h"

#define CONTROL_SUFFIX ".ctl"    /* hwsock-vmm's default: --listen + .ctl */
#define ANSWER_MAX (256u << 20)  /* larger answers are refused */
#define TIMEOUT_S 10             /* for the VMM to answer */
#define LAT_BUCKETS 32
#define BAR_WIDTH 40

/* Must equal what hwsock-vmm sends first (tools/hwsock-vmm/control.c). */
static const char sockets_header[] =
    "# guest\tid\tnetid\tstate\tlocal\tpeer\trule\trule_line\tbackend\tfd\t"
    "bytes_in\tbytes_out\trequests_in\trequests_out\tinflight\tcreated_ns\t"
    "identity";
static const char counters_header[] = "# guest\tname\tvalue";

enum { COL_GUEST, COL_ID, COL_NETID, COL_STATE, COL_LOCAL, COL_PEER,
       COL_RULE, COL_RULE_LINE, COL_BACKEND, COL_FD, COL_BYTES_IN,
       COL_BYTES_OUT, COL_REQS_IN, COL_REQS_OUT, COL_INFLIGHT, COL_CREATED,
       COL_IDENTITY, NCOLS };

static void usage(FILE *f) {
  fprintf(f,
    "usage: hwsock-stat [--vmm PATH | --control PATH] [-t] [-u] [-x] [-l]\n"
    "                   [-j] [--counters] [--latency] [--openmetrics]\n"
    "\n"
    "Shows the sockets a running hwsock-vmm offloads for its guests.\n"
    "\n"
    "  --vmm PATH      the VMM's --listen socket (control: PATH.ctl)\n"
    "  --control PATH  the VMM's control socket\n"
    "  -t, --tcp       TCP sockets only (tcp, tcp6)\n"
    "  -u, --udp       UDP sockets only (udp, udp6)\n"
    "  -x, --ipx       IPX sockets only\n"
    "  -l, --listening listening sockets only\n"
    "  -j, --json      JSON lines as the VMM sends them\n"
    "  --counters      device counters of each guest\n"
    "  --latency       request latency histograms of each guest\n"
    "  --openmetrics   counters and latency histograms in the Prometheus\n"
    "                  text format, a guest label per device\n"
    "  -h, --help      this text\n");
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (q == NULL) {
    fprintf(stderr, "hwsock-stat: out of memory\n");
    exit(1);
  }
  return q;
}

/* ---- the control socket -------------------------------------------------- */

/* Sends cmd, reads the whole answer (NUL-terminated) into *out. */
static int ask(const char *path, const char *cmd, char **out) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(sun.sun_path)) {
    fprintf(stderr, "hwsock-stat: %s: path too long\n", path);
    return -1;
  }
  strcpy(sun.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "hwsock-stat: socket: %s\n", strerror(errno));
    return -1;
  }
  struct timeval tv = {.tv_sec = TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
    fprintf(stderr, "hwsock-stat: %s: %s (is hwsock-vmm running?)\n", path,
            strerror(errno));
    close(fd);
    return -1;
  }
  size_t len = strlen(cmd);
  if (send(fd, cmd, len, MSG_NOSIGNAL) != (ssize_t)len) {
    fprintf(stderr, "hwsock-stat: sending the command: %s\n",
            strerror(errno));
    close(fd);
    return -1;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = xrealloc(NULL, cap);
  for (;;) {
    if (cap - n < 4096) {
      if (cap >= ANSWER_MAX) {
        fprintf(stderr, "hwsock-stat: answer larger than %u MiB\n",
                ANSWER_MAX >> 20);
        goto fail;
      }
      cap *= 2;
      buf = xrealloc(buf, cap);
    }
    ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
    if (r == 0)
      break;
    if (r < 0) {
      if (errno == EINTR)
        continue;
      fprintf(stderr, "hwsock-stat: reading the answer: %s\n",
              errno == EAGAIN ? "timed out" : strerror(errno));
      goto fail;
    }
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  /* An error is one line: {"error":"message"}. */
  static const char err[] = "{\"error\":\"";
  if (strncmp(buf, err, sizeof(err) - 1) == 0) {
    char *msg = buf + sizeof(err) - 1, *end = strchr(msg, '"');
    fprintf(stderr, "hwsock-stat: the VMM says: %.*s\n",
            end ? (int)(end - msg) : (int)strlen(msg), msg);
    free(buf);
    return -1;
  }
  *out = buf;
  return 0;
fail:
  close(fd);
  free(buf);
  return -1;
}

/* Next line of *p (newline removed), or NULL at the end. */
static char *next_line(char **p) {
  char *s = *p;
  if (*s == '\0')
    return NULL;
  char *nl = strchr(s, '\n');
  if (nl != NULL) {
    *nl = '\0';
    *p = nl + 1;
  } else {
    *p = s + strlen(s);
  }
  return s;
}

/* Splits on tabs into at most max fields; returns the count. */
static int split(char *line, char **f, int max) {
  int n = 0;
  for (char *s = line; n < max;) {
    f[n++] = s;
    char *t = strchr(s, '\t');
    if (t == NULL)
      return n;
    *t = '\0';
    s = t + 1;
  }
  return n + 1; /* more fields than max */
}

static int check_header(char **p, const char *want) {
  char *h = next_line(p);
  if (h == NULL || strcmp(h, want) != 0) {
    fprintf(stderr, "hwsock-stat: unexpected answer header (a hwsock-vmm of "
                    "another version?): %s\n", h ? h : "(none)");
    return -1;
  }
  return 0;
}

/* ---- the socket table ------------------------------------------------------ */

enum { T_NETID, T_STATE, T_IN, T_OUT, T_LOCAL, T_PEER, T_GUEST_ID, T_RULE,
       T_BACKEND, T_FD, T_INFLIGHT, T_AGE, T_IDENTITY, T_NCOLS };

static const char *const table_head[T_NCOLS] = {
    "Netid", "State", "Bytes-In", "Bytes-Out", "Local", "Peer", "Guest:Id",
    "Rule", "Backend", "Fd", "In-flight", "Age", "Identity"};
/* Numbers are right-aligned. */
static const int table_right[T_NCOLS] = {0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1,
                                         0};

static void format_age(uint64_t created_ns, char *buf, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  if (created_ns == 0 || created_ns > now) {
    snprintf(buf, len, "-");
    return;
  }
  uint64_t s = (now - created_ns) / 1000000000ull;
  if (s < 60)
    snprintf(buf, len, "%" PRIu64 "s", s);
  else if (s < 3600)
    snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
  else if (s < 86400)
    snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
  else
    snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400,
             s / 3600 % 24);
}

static int print_table(char *answer) {
  char *p = answer;
  if (check_header(&p, sockets_header) < 0)
    return -1;
  size_t nrows = 0, cap = 0;
  char *(*rows)[T_NCOLS] = NULL;
  size_t width[T_NCOLS];
  for (int k = 0; k < T_NCOLS; k++)
    width[k] = strlen(table_head[k]);
  char *line;
  while ((line = next_line(&p)) != NULL) {
    char *f[NCOLS];
    if (split(line, f, NCOLS) != NCOLS) {
      fprintf(stderr, "hwsock-stat: malformed socket line\n");
      return -1;
    }
    if (nrows == cap) {
      cap = cap ? cap * 2 : 64;
      rows = xrealloc(rows, cap * sizeof(*rows));
    }
    char buf[T_NCOLS][64];
    char *const *r = f;
    snprintf(buf[T_GUEST_ID], 64, "%s:%s", r[COL_GUEST], r[COL_ID]);
    /* Rules are numbered from 1 for people, as hwsock-policy and the VMM's
     * log number them; the VMM sends the 0-based index (-1: default). */
    long rule = strtol(r[COL_RULE], NULL, 10);
    if (rule < 0)
      snprintf(buf[T_RULE], 64, "default");
    else
      snprintf(buf[T_RULE], 64, "%ld@%s", rule + 1, r[COL_RULE_LINE]);
    snprintf(buf[T_FD], 64, "%s", strcmp(r[COL_FD], "-1") ? r[COL_FD] : "-");
    format_age(strtoull(r[COL_CREATED], NULL, 10), buf[T_AGE], 64);
    const char *cell[T_NCOLS] = {
        [T_NETID] = r[COL_NETID],     [T_STATE] = r[COL_STATE],
        [T_IN] = r[COL_BYTES_IN],     [T_OUT] = r[COL_BYTES_OUT],
        [T_LOCAL] = r[COL_LOCAL],     [T_PEER] = r[COL_PEER],
        [T_GUEST_ID] = buf[T_GUEST_ID], [T_RULE] = buf[T_RULE],
        [T_BACKEND] = r[COL_BACKEND], [T_FD] = buf[T_FD],
        [T_INFLIGHT] = r[COL_INFLIGHT], [T_AGE] = buf[T_AGE],
        [T_IDENTITY] = r[COL_IDENTITY]};
    for (int k = 0; k < T_NCOLS; k++) {
      const char *c = cell[k];
      /* The URIs drop their scheme: the Netid column says it. */
      if ((k == T_LOCAL || k == T_PEER) && strstr(c, "://") != NULL)
        c = strstr(c, "://") + 3;
      else if ((k == T_LOCAL || k == T_PEER) && strcmp(c, "-") == 0)
        c = "*";
      rows[nrows][k] = strdup(c);
      if (rows[nrows][k] == NULL) {
        fprintf(stderr, "hwsock-stat: out of memory\n");
        exit(1);
      }
      if (strlen(c) > width[k])
        width[k] = strlen(c);
    }
    nrows++;
  }
  for (size_t i = 0; i <= nrows; i++) {
    const char *const *r = i == 0 ? table_head : (const char *const *)rows[i - 1];
    for (int k = 0; k < T_NCOLS; k++) {
      int w = (int)width[k];
      if (k == T_NCOLS - 1)
        printf(table_right[k] ? "%*s\n" : "%-*s\n", w, r[k]);
      else
        printf(table_right[k] ? "%*s  " : "%-*s  ", w, r[k]);
    }
  }
  for (size_t i = 0; i < nrows; i++)
    for (int k = 0; k < T_NCOLS; k++)
      free(rows[i][k]);
  free(rows);
  return 0;
}

/* ---- counters and latency ------------------------------------------------- */

typedef struct kv {
  char *name, *value;
} kv;

typedef struct guest_counters {
  char guest[16];
  kv *v;
  size_t n, cap;
} guest_counters;

static const char *get(const guest_counters *g, const char *name) {
  for (size_t i = 0; i < g->n; i++)
    if (strcmp(g->v[i].name, name) == 0)
      return g->v[i].value;
  return "0";
}

/* Every "prefix.X value" pair in order, as "X value" (non-zero ones when
 * skip_zero). */
static void list(const guest_counters *g, const char *prefix, int skip_zero) {
  size_t pl = strlen(prefix);
  int any = 0;
  for (size_t i = 0; i < g->n; i++) {
    const kv *e = &g->v[i];
    if (strncmp(e->name, prefix, pl) != 0 ||
        (skip_zero && strcmp(e->value, "0") == 0))
      continue;
    printf("%s%s %s", any ? "  " : "", e->name + pl, e->value);
    any = 1;
  }
  printf("%s\n", any ? "" : "none");
}

static void print_counters(const guest_counters *g) {
  printf("guest %s\n", g->guest);
  printf("  sockets        open %s  offloaded %s\n", get(g, "sockets_open"),
         get(g, "sockets_offloaded"));
  printf("  requests       %s  completions %s  malformed %s  kicks %s\n",
         get(g, "requests"), get(g, "completions"), get(g, "bad_requests"),
         get(g, "kicks"));
  printf("  by opcode      ");
  list(g, "op.", 1);
  printf("  errors         %s:  ", get(g, "errors"));
  list(g, "error.", 1);
  printf("  verdicts       offload %s  decline %s  deny %s\n",
         get(g, "verdict.offload"), get(g, "verdict.decline"),
         get(g, "verdict.deny"));
  printf("  needs-reset    %s  resets %s\n", get(g, "needs_reset"),
         get(g, "resets"));
  printf("  bytes          out %s  in %s\n", get(g, "bytes_out"),
         get(g, "bytes_in"));
  printf("  notifications  sent %s  suppressed %s\n", get(g, "notifies"),
         get(g, "notifies_suppressed"));
  printf("  event queue    no buffer %s\n", get(g, "ev_no_buffer"));
}

/* Bucket b holds [2^b, 2^(b+1)) us; bucket 0 also everything under 1 us,
 * the last one everything above (hwsock/stats.h). */
static double bucket_lo(int b) { return b == 0 ? 0.0 : (double)(1ull << b); }
static double bucket_hi(int b) { return (double)(1ull << (b + 1)); }

/* Linear interpolation inside the bucket holding the q-quantile. */
static double quantile(const uint64_t *h, int n, uint64_t total, double q) {
  double rank = q * (double)total;
  uint64_t cum = 0;
  for (int b = 0; b < n; b++) {
    if (h[b] && (double)(cum + h[b]) >= rank) {
      double frac = (rank - (double)cum) / (double)h[b];
      return bucket_lo(b) + frac * (bucket_hi(b) - bucket_lo(b));
    }
    cum += h[b];
  }
  return bucket_hi(n - 1);
}

static void print_latency(const guest_counters *g) {
  static const char prefix[] = "latency.";
  int any = 0;
  for (size_t i = 0; i < g->n; i++) {
    const kv *e = &g->v[i];
    if (strncmp(e->name, prefix, sizeof(prefix) - 1) != 0)
      continue;
    uint64_t h[LAT_BUCKETS] = {0}, total = 0, max = 0;
    int n = 0;
    for (char *s = e->value; *s != '\0' && n < LAT_BUCKETS; n++) {
      char *end;
      h[n] = strtoull(s, &end, 10);
      total += h[n];
      if (h[n] > max)
        max = h[n];
      s = *end == ',' ? end + 1 : end;
    }
    if (total == 0)
      continue;
    any = 1;
    printf("guest %s %s: %" PRIu64 " completions, p50 ~%.0f us, p99 ~%.0f "
           "us\n", g->guest, e->name + sizeof(prefix) - 1, total,
           quantile(h, n, total, 0.5), quantile(h, n, total, 0.99));
    int first = 0;
    while (h[first] == 0)
      first++;
    for (int b = first; b < n; b++) {
      char range[48];
      if (b == LAT_BUCKETS - 1)
        snprintf(range, sizeof(range), "[%.0f, inf)", bucket_lo(b));
      else
        snprintf(range, sizeof(range), "[%.0f, %.0f)", bucket_lo(b),
                 bucket_hi(b));
      int bar = (int)((h[b] * BAR_WIDTH + max - 1) / max);
      printf("  %16s us %10" PRIu64 " |%-*.*s|\n", range, h[b], BAR_WIDTH,
             bar, "****************************************");
    }
  }
  if (!any)
    printf("guest %s: no completions yet\n", g->guest);
}

static int print_counter_answer(char *answer, int counters, int latency) {
  char *p = answer;
  if (check_header(&p, counters_header) < 0)
    return -1;
  guest_counters g;
  memset(&g, 0, sizeof(g));
  int first = 1;
  char *line;
  for (;;) {
    line = next_line(&p);
    char *f[3];
    if (line != NULL && split(line, f, 3) != 3) {
      fprintf(stderr, "hwsock-stat: malformed counters line\n");
      return -1;
    }
    /* A guest's lines are contiguous: print it when the next one starts. */
    if (g.n > 0 && (line == NULL || strcmp(f[0], g.guest) != 0)) {
      if (!first)
        printf("\n");
      first = 0;
      if (counters)
        print_counters(&g);
      if (counters && latency)
        printf("\n");
      if (latency)
        print_latency(&g);
      for (size_t i = 0; i < g.n; i++) {
        free(g.v[i].name);
        free(g.v[i].value);
      }
      g.n = 0;
    }
    if (line == NULL)
      break;
    snprintf(g.guest, sizeof(g.guest), "%s", f[0]);
    if (g.n == g.cap) {
      g.cap = g.cap ? g.cap * 2 : 64;
      g.v = xrealloc(g.v, g.cap * sizeof(*g.v));
    }
    g.v[g.n].name = strdup(f[1]);
    g.v[g.n].value = strdup(f[2]);
    if (g.v[g.n].name == NULL || g.v[g.n].value == NULL) {
      fprintf(stderr, "hwsock-stat: out of memory\n");
      exit(1);
    }
    g.n++;
  }
  free(g.v);
  if (first)
    printf("no guest attached\n");
  return 0;
}

/* ---- main --------------------------------------------------------------------- */

enum { OPT_VMM = 256, OPT_CONTROL, OPT_COUNTERS, OPT_LATENCY, OPT_METRICS };

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"vmm", required_argument, NULL, OPT_VMM},
      {"control", required_argument, NULL, OPT_CONTROL},
      {"tcp", no_argument, NULL, 't'},
      {"udp", no_argument, NULL, 'u'},
      {"ipx", no_argument, NULL, 'x'},
      {"listening", no_argument, NULL, 'l'},
      {"json", no_argument, NULL, 'j'},
      {"counters", no_argument, NULL, OPT_COUNTERS},
      {"latency", no_argument, NULL, OPT_LATENCY},
      {"openmetrics", no_argument, NULL, OPT_METRICS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *vmm = NULL, *control = NULL;
  int tcp = 0, udp = 0, ipx = 0, listening = 0, json = 0, counters = 0,
      latency = 0, metrics = 0, c;
  while ((c = getopt_long(argc, argv, "tuxljh", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_VMM: vmm = optarg; break;
    case OPT_CONTROL: control = optarg; break;
    case 't': tcp = 1; break;
    case 'u': udp = 1; break;
    case 'x': ipx = 1; break;
    case 'l': listening = 1; break;
    case 'j': json = 1; break;
    case OPT_COUNTERS: counters = 1; break;
    case OPT_LATENCY: latency = 1; break;
    case OPT_METRICS: metrics = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "hwsock-stat: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if ((vmm == NULL) == (control == NULL)) {
    fprintf(stderr, "hwsock-stat: give one of --vmm PATH or --control PATH\n");
    usage(stderr);
    return 2;
  }
  if (metrics && (counters || latency || json)) {
    fprintf(stderr, "hwsock-stat: --openmetrics is a format of its own, "
                    "not with --counters, --latency or -j\n");
    return 2;
  }
  int table = !counters && !latency && !metrics;
  if (!table && (tcp || udp || ipx || listening)) {
    fprintf(stderr, "hwsock-stat: -t, -u, -x and -l filter the socket "
                    "table, not --counters, --latency or --openmetrics\n");
    return 2;
  }
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  if (snprintf(path, sizeof(path), "%s%s", control ? control : vmm,
               control ? "" : CONTROL_SUFFIX) >= (int)sizeof(path)) {
    fprintf(stderr, "hwsock-stat: control socket path too long\n");
    return 2;
  }
  char cmd[128];
  if (table)
    snprintf(cmd, sizeof(cmd), "%s%s%s%s%s\n", json ? "sockets" : "sockets-tsv",
             tcp ? " tcp" : "", udp ? " udp" : "", ipx ? " ipx" : "",
             listening ? " listen" : "");
  else
    snprintf(cmd, sizeof(cmd), "%s\n", json ? "counters" : "counters-tsv");
  char *answer;
  if (ask(path, cmd, &answer) < 0)
    return 1;
  int rc = 0;
  if (metrics)
    rc = stat_openmetrics(answer);
  else if (json)
    fputs(answer, stdout);
  else if (table)
    rc = print_table(answer);
  else
    rc = print_counter_answer(answer, counters, latency);
  free(answer);
  if (fflush(stdout) != 0) {
    fprintf(stderr, "hwsock-stat: writing the output: %s\n", strerror(errno));
    return 1;
  }
  return rc < 0 ? 1 : 0;
}
