/* hwsock-bench: the benchmark client for two paths.
 *
 *   hwsock-bench --path direct [common options]
 *       plain host sockets (also the "unmodified client" that the
 *       hwsock-run path runs under hwsock-run);
 *   hwsock-bench --path driver --vmm PATH [--poll-us N] [--evq 0|1]
 *                [common options]
 *       the guest driver API (hwsock/guest.h) over a device in a running
 *       hwsock-vmm, attached with hwsock_attach() across processes, as a
 *       real VM's driver would reach its VMM; --evq 1 (the default)
 *       negotiates the event queue (PROTOCOL.md §16; the VMM needs
 *       --queues 2); workload bulkzc sends through the driver's
 *       zero-copy send buffers (direct: plain sends).
 * Common options: bench.h (bench_parse_args). Prints one "result ..." line.
 *
 * Not a test: nothing here runs under ctest. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "hwsock/attach.h"
#include "hwsock/device.h"
#include "hwsock/guest.h"

static int want_nodelay; /* set for request-response, as servers do */

/* ---- direct host sockets ------------------------------------------------ */

static int d_connect_type(int type, uint16_t port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (type == SOCK_STREAM && want_nodelay) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static int d_connect(bench_net *n, uint16_t port) {
  (void)n;
  return d_connect_type(SOCK_STREAM, port);
}

static ssize_t d_send(bench_net *n, int h, const void *buf, size_t len) {
  (void)n;
  size_t done = 0;
  while (done < len) {
    ssize_t w = send(h, (const char *)buf + done, len - done, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    done += (size_t)w;
  }
  return (ssize_t)len;
}

static ssize_t d_recv(bench_net *n, int h, void *buf, size_t len) {
  (void)n;
  for (;;) {
    ssize_t r = recv(h, buf, len, 0);
    if (r >= 0)
      return r;
    if (errno != EINTR)
      return -errno;
  }
}

static int d_shutdown_wr(bench_net *n, int h) {
  (void)n;
  return shutdown(h, SHUT_WR) == 0 ? 0 : -errno;
}

static int d_close(bench_net *n, int h) {
  (void)n;
  return close(h) == 0 ? 0 : -errno;
}

static int d_udp_open(bench_net *n, uint16_t port) {
  (void)n;
  return d_connect_type(SOCK_DGRAM, port);
}

static ssize_t d_udp_send(bench_net *n, int h, const void *buf, size_t len) {
  (void)n;
  ssize_t w = send(h, buf, len, 0);
  return w < 0 ? -errno : w;
}

static int d_reserve(bench_net *n, unsigned count) {
  (void)n;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < count + 64u) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      return -errno;
  }
  return 0;
}

static const char *d_strerror(int err) { return strerror(-err); }

static bench_net direct_net = {
    .name = "direct",
    .tcp_connect = d_connect,
    .send = d_send,
    .recv = d_recv,
    .shutdown_wr = d_shutdown_wr,
    .close = d_close,
    .udp_open = d_udp_open,
    .udp_send = d_udp_send,
    .reserve = d_reserve,
    .strerror = d_strerror,
};

/* ---- the guest driver API over hwsock-vmm -------------------------------
 * A handle is (attachment index << 20) | socket id: when the idle workload
 * needs more sockets than one device offers (the VMM's --max-sockets), it
 * attaches another guest to the same VMM once the first is full. */

#define DRV_MAX_ATTACH 64
#define DRV_SHIFT 20

typedef struct drv_net {
  bench_net net;
  const char *vmm_path;
  hwsock_attach_opts opts;
  hwsock_attachment *att[DRV_MAX_ATTACH];
  unsigned natt, cur;
} drv_net;

static int drv_attach(drv_net *d) {
  if (d->natt == DRV_MAX_ATTACH)
    return HWSOCK_EMFILE;
  int rc = hwsock_attach(d->vmm_path, &d->opts, &d->att[d->natt]);
  if (rc < 0)
    return rc;
  d->natt++;
  return 0;
}

static hwsock_guest *drv_guest(drv_net *d, int h) {
  return hwsock_attach_guest(d->att[(unsigned)h >> DRV_SHIFT]);
}

static int drv_sock(drv_net *d, unsigned type, uint16_t port) {
  char uri[64];
  snprintf(uri, sizeof(uri), "%s://127.0.0.1:%u",
           type == HWSOCK_SOCK_STREAM ? "tcp" : "udp", port);
  for (;;) {
    hwsock_guest *g = hwsock_attach_guest(d->att[d->cur]);
    int s = hwsock_guest_socket(g, HWSOCK_AF_INET, type);
    if (s == HWSOCK_EMFILE) {
      /* this device's ids are all taken: the next guest */
      if (d->cur + 1 == d->natt) {
        int rc = drv_attach(d);
        if (rc < 0)
          return rc;
      }
      d->cur++;
      continue;
    }
    if (s < 0)
      return s;
    if (type == HWSOCK_SOCK_STREAM && want_nodelay) {
      uint8_t one[4] = {1, 0, 0, 0};
      hwsock_guest_setsockopt(g, s, HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY, one,
                              sizeof(one));
    }
    int rc = hwsock_guest_connect(g, s, uri);
    if (rc < 0) {
      hwsock_guest_close(g, s);
      return rc;
    }
    return (int)(d->cur << DRV_SHIFT) | s;
  }
}

static int drv_connect(bench_net *n, uint16_t port) {
  return drv_sock((drv_net *)n, HWSOCK_SOCK_STREAM, port);
}

static ssize_t drv_send(bench_net *n, int h, const void *buf, size_t len) {
  return hwsock_guest_send(drv_guest((drv_net *)n, h),
                           h & ((1 << DRV_SHIFT) - 1), buf, len, 0);
}

/* Zero-copy: each piece is a send buffer of the driver (a request slot's
 * data area) that the program would write in place, then submits; the
 * last piece of a write goes without HWSOCK_SEND_MORE. */
static ssize_t drv_send_zc(bench_net *n, int h, size_t len) {
  hwsock_guest *g = drv_guest((drv_net *)n, h);
  int s = h & ((1 << DRV_SHIFT) - 1);
  size_t done = 0;
  while (done < len) {
    hwsock_guest_sendbuf sb;
    int rc = hwsock_guest_send_buf_get(g, s, len - done, &sb);
    if (rc < 0)
      return rc;
    ssize_t w = hwsock_guest_send_buf_submit(
        g, s, &sb, sb.cap, done + sb.cap < len ? HWSOCK_SEND_MORE : 0);
    if (w < 0)
      return w;
    done += (size_t)w;
  }
  return (ssize_t)len;
}

static ssize_t drv_recv(bench_net *n, int h, void *buf, size_t len) {
  return hwsock_guest_recv(drv_guest((drv_net *)n, h),
                           h & ((1 << DRV_SHIFT) - 1), buf, len, 0);
}

static int drv_shutdown_wr(bench_net *n, int h) {
  return hwsock_guest_shutdown(drv_guest((drv_net *)n, h),
                               h & ((1 << DRV_SHIFT) - 1), HWSOCK_SHUT_WR);
}

static int drv_close(bench_net *n, int h) {
  return hwsock_guest_close(drv_guest((drv_net *)n, h),
                            h & ((1 << DRV_SHIFT) - 1));
}

static int drv_udp_open(bench_net *n, uint16_t port) {
  return drv_sock((drv_net *)n, HWSOCK_SOCK_DGRAM, port);
}

/* Datagram sends go one request each, like sendto(2) calls would. */
static ssize_t drv_udp_send(bench_net *n, int h, const void *buf,
                            size_t len) {
  return drv_send(n, h, buf, len);
}

static const char *drv_strerror(int err) { return hwsock_strerror(err); }

int main(int argc, char **argv) {
  bench_args a;
  const char *extra[32];
  if (bench_parse_args(argc, argv, &a, extra, 32) < 0)
    return 2;
  const char *path = "direct", *vmm = NULL;
  int poll_us = 0, evq = 1;
  for (size_t i = 0; extra[i] != NULL; i += 2) {
    if (strcmp(extra[i], "--path") == 0)
      path = extra[i + 1];
    else if (strcmp(extra[i], "--vmm") == 0)
      vmm = extra[i + 1];
    else if (strcmp(extra[i], "--poll-us") == 0)
      poll_us = atoi(extra[i + 1]);
    else if (strcmp(extra[i], "--evq") == 0)
      evq = atoi(extra[i + 1]);
    else {
      fprintf(stderr, "hwsock-bench: unknown option '%s'\n", extra[i]);
      return 2;
    }
  }
  want_nodelay = strcmp(a.workload, "rr") == 0;
  if (strcmp(path, "direct") == 0)
    return bench_run(&direct_net, &a);
  if (strcmp(path, "driver") != 0 || vmm == NULL) {
    fprintf(stderr, "hwsock-bench: --path direct | --path driver --vmm PATH\n");
    return 2;
  }
  static drv_net d = {
      .net = {.name = "driver",
              .tcp_connect = drv_connect,
              .send = drv_send,
              .recv = drv_recv,
              .shutdown_wr = drv_shutdown_wr,
              .close = drv_close,
              .udp_open = drv_udp_open,
              .udp_send = drv_udp_send,
              .reserve = NULL, /* guests attach as ids run out */
              .strerror = drv_strerror,
              .send_zc = drv_send_zc}};
  d.vmm_path = vmm;
  hwsock_attach_opts_init(&d.opts);
  d.opts.poll_us = poll_us;
  d.opts.write_behind = 1; /* sends return once copied, as a kernel's do */
  d.opts.event_queue = evq;
  int rc = drv_attach(&d);
  if (rc < 0) {
    fprintf(stderr, "hwsock-bench[driver]: attach %s: %s\n", vmm,
            hwsock_strerror(rc));
    return 1;
  }
  rc = bench_run(&d.net, &a);
  fprintf(stderr, "hwsock-bench[driver]: %u guest%s attached, event queue %s\n",
          d.natt, d.natt == 1 ? "" : "s", evq ? "requested" : "off");
  for (unsigned i = 0; i < d.natt; i++)
    hwsock_attach_close(d.att[i]);
  return rc;
}
