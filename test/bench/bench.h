/* Benchmark clients: one set of workloads over interchangeable "nets".
 *
 * A net is one way for a program to reach the loopback servers of
 * hwsock-bench-server: direct host sockets, the guest driver API over a
 * device in hwsock-vmm, or a guest TCP/IP stack (lwIP) behind libslirp.
 * The workloads (bench_workloads.c) are written once against this
 * interface, so every path runs the same code and only the transport
 * differs. Handles are small non-negative ints; errors are negative errno
 * values (or negative HWSOCK_E* values, which share the errno numbers'
 * sign convention and are printed with the net's strerror).
 *
 * Not a test: benchmarks print figures and never assert timings. */
#ifndef HWSOCK_BENCH_H
#define HWSOCK_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct bench_net bench_net;
struct bench_net {
  const char *name;
  /* TCP connection to 127.0.0.1:port (as the path spells it). */
  int (*tcp_connect)(bench_net *n, uint16_t port);
  /* Sends all len bytes: len or negative. */
  ssize_t (*send)(bench_net *n, int h, const void *buf, size_t len);
  /* Receives 1..len bytes, 0 at EOF, or negative. */
  ssize_t (*recv)(bench_net *n, int h, void *buf, size_t len);
  int (*shutdown_wr)(bench_net *n, int h);
  int (*close)(bench_net *n, int h);
  /* UDP socket connected to 127.0.0.1:port; NULL when unsupported. */
  int (*udp_open)(bench_net *n, uint16_t port);
  ssize_t (*udp_send)(bench_net *n, int h, const void *buf, size_t len);
  /* Prepares for `count` concurrent sockets (e.g. attaches enough
   * devices); NULL when nothing is needed. */
  int (*reserve)(bench_net *n, unsigned count);
  /* Text for a negative error of this net. */
  const char *(*strerror)(int err);
  /* Zero-copy send of len bytes: the program writes them straight into
   * the transport's own buffers (the guest driver's send buffers,
   * hwsock_guest_send_buf_*) instead of handing over a buffer to copy.
   * len or negative; NULL when the net has no such path (the bulkzc
   * workload then uses send). */
  ssize_t (*send_zc)(bench_net *n, int h, size_t len);
};

typedef struct bench_args {
  const char *workload; /* bulk, bulkzc, rr, cps, udp, idle, conc */
  uint16_t port;        /* the workload's server port */
  uint16_t ctrl_port;   /* hwsock-bench-server's ctrl port (udp) */
  double seconds;       /* how long the timed part runs */
  size_t msg;           /* rr message bytes, bulk write size, udp datagram */
  unsigned count;       /* idle, conc: sockets to open */
} bench_args;

/* Runs a.workload over n and prints one "result key=value ..." line on
 * stdout. 0, or 1 after printing the failure on stderr. */
int bench_run(bench_net *n, const bench_args *a);

/* Parses the common options (--workload, --port, ...) from argv into a,
 * leaving unknown "--x y" pairs to the caller through *extra (NULL-
 * terminated pairs in argv order). 0, or -1 after a usage message. */
int bench_parse_args(int argc, char **argv, bench_args *a,
                     const char **extra, size_t extra_cap);

/* Seconds on the monotonic clock. */
double bench_now(void);

#endif
