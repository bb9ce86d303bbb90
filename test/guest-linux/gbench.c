/* gbench: the benchmark client scripts/bench-guest runs inside the guest
 * (and, unchanged, on the host). Static, no libraries: the guest has none.
 *
 *   gbench ADDR SINK ECHO CPS MARK SECONDS LABEL
 *
 * Against test/bench/bench_server.c's services at ADDR (sink, echo, cps
 * ports) it runs, each for SECONDS:
 *   bulk64k, bulk1m  one TCP stream of 64 KiB / 1 MiB writes, then
 *                    shutdown and the sink's 8-byte count: Mbit/s delivered;
 *   rr1              1-byte request/response on one connection, TCP_NODELAY:
 *                    p50 and p99 in microseconds;
 *   cps              connect, 1-byte request, 1-byte answer, close: conn/s.
 * Before and after each workload it connects to MARK (the driver script's
 * sampler) and sends "LABEL WORKLOAD begin|end\n", so the host can take
 * CPU times and device counters exactly around it; MARK 0: no marks.
 * It also reports its own CPU time and, from /proc/stat, how busy all the
 * (guest's) CPUs were during the workload.
 *
 * Output: one line per workload,
 *   GB LABEL WORKLOAD value V unit U [p99 P] cpu_self_ms C sys_busy_pct B
 * Not a test: nothing here runs under ctest. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in srv;
static const char *label;
static double secs;
static int mark_port;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
  fprintf(stderr, "gbench %s: %s: %s\n", label, what, strerror(errno));
  exit(1);
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    die("socket");
  struct sockaddr_in a = srv;
  a.sin_port = htons((uint16_t)port);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
    die("connect");
  return fd;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      die("write");
    p += w;
    n -= (size_t)w;
  }
}

static size_t read_full(int fd, char *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      die("read");
    if (r == 0)
      break;
    got += (size_t)r;
  }
  return got;
}

/* The sampler answers "ok\n" once it has taken its sample. */
static void mark(const char *wl, const char *what) {
  if (mark_port == 0)
    return;
  int fd = dial(mark_port);
  char line[160], ok[3];
  int n = snprintf(line, sizeof(line), "%s %s %s\n", label, wl, what);
  write_all(fd, line, (size_t)n);
  if (read_full(fd, ok, 3) != 3 || memcmp(ok, "ok\n", 3) != 0) {
    errno = EPROTO;
    die("mark");
  }
  close(fd);
}

/* Busy and total jiffies of all CPUs ("cpu " line of /proc/stat). */
static void cpu_jiffies(unsigned long long *busy, unsigned long long *total) {
  unsigned long long v[8] = {0};
  *busy = *total = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (!f)
    return;
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
             &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
    for (int i = 0; i < 8; i++)
      *total += v[i];
    *busy = *total - v[3] - v[4]; /* minus idle and iowait */
  }
  fclose(f);
}

static double self_cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-3;
}

typedef struct {
  unsigned long long busy, total;
  double cpu;
} probe;

static probe begin(const char *wl) {
  mark(wl, "begin");
  probe p;
  cpu_jiffies(&p.busy, &p.total);
  p.cpu = self_cpu_ms();
  return p;
}

static void end(const char *wl, probe p, double value, const char *unit,
                const char *extra) {
  unsigned long long busy, total;
  cpu_jiffies(&busy, &total);
  double cpu = self_cpu_ms() - p.cpu;
  double pct = total > p.total
                   ? 100.0 * (double)(busy - p.busy) / (double)(total - p.total)
                   : -1;
  mark(wl, "end");
  printf("GB %s %s value %.1f unit %s%s cpu_self_ms %.0f sys_busy_pct %.0f\n",
         label, wl, value, unit, extra, cpu, pct);
  fflush(stdout);
}

static char bulkbuf[1 << 20];

static void bulk(int port, size_t wsize, const char *wl) {
  probe p = begin(wl);
  int fd = dial(port);
  uint64_t sent = 0;
  double t0 = now();
  while (now() - t0 < secs) {
    write_all(fd, bulkbuf, wsize);
    sent += wsize;
  }
  if (shutdown(fd, SHUT_WR) < 0)
    die("shutdown");
  unsigned char c[8];
  if (read_full(fd, (char *)c, 8) != 8) {
    errno = EPROTO;
    die("sink count");
  }
  double dt = now() - t0;
  close(fd);
  uint64_t got = 0;
  for (int i = 7; i >= 0; i--)
    got = got << 8 | c[i];
  if (got != sent) {
    fprintf(stderr, "gbench %s: sink got %llu of %llu bytes\n", label,
            (unsigned long long)got, (unsigned long long)sent);
    exit(1);
  }
  end(wl, p, (double)got * 8 / dt / 1e6, "Mbit/s", "");
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define MAX_RTT 200000
static double rtt[MAX_RTT];

static void rr1(int port) {
  probe p = begin("rr1");
  int fd = dial(port), one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  size_t n = 0;
  char b = 'x';
  double t0 = now(), t = t0;
  while (t - t0 < secs && n < MAX_RTT) {
    write_all(fd, &b, 1);
    if (read_full(fd, &b, 1) != 1) {
      errno = EPROTO;
      die("echo");
    }
    double t1 = now();
    rtt[n++] = (t1 - t) * 1e6;
    t = t1;
  }
  close(fd);
  qsort(rtt, n, sizeof(rtt[0]), cmp_d);
  char extra[64];
  snprintf(extra, sizeof(extra), " p99 %.0f n %zu", rtt[n * 99 / 100], n);
  end("rr1", p, rtt[n / 2], "us_p50", extra);
}

static void cps(int port) {
  probe p = begin("cps");
  size_t n = 0;
  double t0 = now();
  while (now() - t0 < secs) {
    int fd = dial(port);
    char b = 'c';
    write_all(fd, &b, 1);
    if (read_full(fd, &b, 1) != 1) {
      errno = EPROTO;
      die("cps answer");
    }
    close(fd);
    n++;
  }
  end("cps", p, (double)n / (now() - t0), "conn/s", "");
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr,
            "usage: gbench ADDR SINK ECHO CPS MARK SECONDS LABEL\n");
    return 2;
  }
  label = argv[7];
  srv.sin_family = AF_INET;
  if (inet_pton(AF_INET, argv[1], &srv.sin_addr) != 1) {
    fprintf(stderr, "gbench: bad address %s\n", argv[1]);
    return 2;
  }
  int sink = atoi(argv[2]), echo = atoi(argv[3]), cp = atoi(argv[4]);
  mark_port = atoi(argv[5]);
  secs = atof(argv[6]);
  if (secs <= 0 || secs > 60) {
    fprintf(stderr, "gbench: SECONDS in (0, 60]\n");
    return 2;
  }
  memset(bulkbuf, 'b', sizeof(bulkbuf));
  bulk(sink, 64 << 10, "bulk64k");
  bulk(sink, 1 << 20, "bulk1m");
  rr1(echo);
  cps(cp);
  return 0;
}
