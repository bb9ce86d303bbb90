/* hwsock-bench-slirp: the L2 baseline, a guest TCP/IP stack behind libslirp,
 * in one process and one thread.
 *
 * This is what a VMM user picks without libhwsock: the guest runs its own
 * TCP/IP stack and sends Ethernet frames; the VMM runs libslirp, which
 * terminates the guest's TCP connections and re-creates them as host
 * sockets. Here the guest stack is lwIP 2.1.3 (Debian's liblwip-dev), driven
 * single-threaded through its raw API after lwip_init() (no tcpip_init():
 * the library is built for an OS-thread configuration, but its core runs
 * fine on one thread that owns it), and the VMM side is libslirp 4.7:
 *
 *   workload -> lwIP tcp_write -> netif linkoutput -> slirp_input
 *     -> slirp's TCP -> host socket -> 127.0.0.1 server      (and back:
 *   host socket -> slirp_pollfds_poll -> send_packet -> frame queue
 *     -> lwIP ethernet_input -> tcp_recv callback -> workload)
 *
 * The guest (10.0.2.15) connects to slirp's host alias 10.0.2.2, which
 * slirp maps to the host's 127.0.0.1: the guest-side addresses exist only
 * inside this process, and every real packet stays on the loopback.
 *
 * Frames from slirp are queued and fed to lwIP from the loop, never from
 * inside slirp_input(), so neither stack is re-entered. Timers: lwIP's
 * sys_check_timeouts() and slirp's own (run inside slirp_pollfds_poll(),
 * plus slirp_handle_timer() for the timers it asks for) are driven here.
 *
 * malloc: libslirp allocates and frees two 128 KiB socket buffers per
 * connection; with glibc's default (dynamic) mmap threshold they are
 * mmap()ed and unmapped every time. The thresholds are fixed with mallopt
 * (values printed in the result line) as a tuned VMM would.
 *
 * Same workloads and options as hwsock-bench (bench.h). Not a test. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libslirp.h>

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
#include "netif/ethernet.h"

#include "bench.h"

#define MMAP_THRESHOLD (8 << 20)
#define TRIM_THRESHOLD (64 << 20)

#define FRAME_MAX 1600
#define FRAMEQ 8192 /* frames slirp may queue for the guest per loop turn */
#define MAX_TW 32   /* TIME_WAIT pcbs kept before the oldest is reclaimed */
#define MAX_POLLFDS 65536

/* ---- the frame queue from slirp to the guest ---------------------------- */

typedef struct frame {
  uint16_t len;
  uint8_t data[FRAME_MAX];
} frame;

static frame *frameq;
static unsigned fq_head, fq_tail; /* head: next to read; tail: next free */
static unsigned long fq_drops;
/* Frame counts both ways, reported on stderr: segment sizes explain
 * throughput. */
static unsigned long long tx_frames, tx_bytes, rx_frames, rx_bytes;

static ssize_t on_send_packet(const void *buf, size_t len, void *opaque) {
  (void)opaque;
  if (len > FRAME_MAX || fq_tail - fq_head == FRAMEQ) {
    fq_drops++; /* as a full NIC ring would: TCP retransmits */
    return (ssize_t)len;
  }
  frame *f = &frameq[fq_tail % FRAMEQ];
  rx_frames++;
  rx_bytes += len;
  memcpy(f->data, buf, len);
  f->len = (uint16_t)len;
  fq_tail++;
  return (ssize_t)len;
}

/* ---- slirp callbacks ---------------------------------------------------- */

typedef struct stimer {
  SlirpTimerId id;
  void *cb_opaque;
  int64_t expire_ms; /* -1: not armed */
  struct stimer *next;
} stimer;

static Slirp *slirp;
static stimer *timers;
static struct netif nif;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t on_clock_get_ns(void *opaque) {
  (void)opaque;
  return now_ns();
}

static void on_guest_error(const char *msg, void *opaque) {
  (void)opaque;
  fprintf(stderr, "hwsock-bench[slirp]: slirp: guest error: %s\n", msg);
}

static void *on_timer_new_opaque(SlirpTimerId id, void *cb_opaque,
                                 void *opaque) {
  (void)opaque;
  stimer *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->id = id;
  t->cb_opaque = cb_opaque;
  t->expire_ms = -1;
  t->next = timers;
  timers = t;
  return t;
}

static void on_timer_free(void *timer, void *opaque) {
  (void)opaque;
  for (stimer **p = &timers; *p != NULL; p = &(*p)->next) {
    if (*p == timer) {
      *p = ((stimer *)timer)->next;
      free(timer);
      return;
    }
  }
}

static void on_timer_mod(void *timer, int64_t expire_ms, void *opaque) {
  (void)opaque;
  ((stimer *)timer)->expire_ms = expire_ms;
}

static void on_register_poll_fd(int fd, void *opaque) {
  (void)fd;
  (void)opaque;
}

static void on_notify(void *opaque) { (void)opaque; }

static const SlirpCb slirp_cbs = {
    .send_packet = on_send_packet,
    .guest_error = on_guest_error,
    .clock_get_ns = on_clock_get_ns,
    .timer_free = on_timer_free,
    .timer_mod = on_timer_mod,
    .register_poll_fd = on_register_poll_fd,
    .unregister_poll_fd = on_register_poll_fd,
    .notify = on_notify,
    .timer_new_opaque = on_timer_new_opaque,
};

/* ---- the loop ----------------------------------------------------------- */

static struct pollfd pfds[MAX_POLLFDS];
static unsigned npfds;

static int add_poll(int fd, int events, void *opaque) {
  (void)opaque;
  if (npfds == MAX_POLLFDS)
    return -1;
  short ev = 0;
  if (events & SLIRP_POLL_IN)
    ev |= POLLIN;
  if (events & SLIRP_POLL_OUT)
    ev |= POLLOUT;
  if (events & SLIRP_POLL_PRI)
    ev |= POLLPRI;
  pfds[npfds].fd = fd;
  pfds[npfds].events = ev;
  pfds[npfds].revents = 0;
  return (int)npfds++;
}

static int get_revents(int idx, void *opaque) {
  (void)opaque;
  if (idx < 0 || (unsigned)idx >= npfds)
    return 0;
  short r = pfds[idx].revents;
  int ev = 0;
  if (r & POLLIN)
    ev |= SLIRP_POLL_IN;
  if (r & POLLOUT)
    ev |= SLIRP_POLL_OUT;
  if (r & POLLPRI)
    ev |= SLIRP_POLL_PRI;
  if (r & POLLERR)
    ev |= SLIRP_POLL_ERR;
  if (r & POLLHUP)
    ev |= SLIRP_POLL_HUP;
  return ev;
}

/* Feeds queued frames to lwIP. Its replies go straight into slirp_input,
 * which may queue more frames: loop until quiet. Returns how many frames
 * it fed (the caller must not sleep after progress: the workload may now
 * have room to send or data to read). */
static unsigned drain_frames(void) {
  unsigned n = 0;
  while (fq_head != fq_tail) {
    n++;
    frame *f = &frameq[fq_head % FRAMEQ];
    struct pbuf *p = pbuf_alloc(PBUF_RAW, f->len, PBUF_RAM);
    if (p != NULL) {
      pbuf_take(p, f->data, f->len);
      if (nif.input(p, &nif) != ERR_OK)
        pbuf_free(p);
    }
    fq_head++;
  }
  return n;
}

/* lwIP keeps TIME_WAIT pcbs for 2*MSL and scans them on every new
 * connection; reclaim the oldest beyond MAX_TW, as a long-running guest
 * stack under connection churn would have to. */
static void reclaim_time_wait(void) {
  unsigned n = 0;
  struct tcp_pcb *oldest = NULL;
  for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
    n++;
    if (oldest == NULL || (int32_t)(p->tmr - oldest->tmr) < 0)
      oldest = p;
  }
  if (n > MAX_TW && oldest != NULL)
    tcp_abort(oldest);
}

/* One loop turn: frames, lwIP timers, slirp's fds and timers. Blocks in
 * poll() for at most timeout_ms, and not at all when frames were fed to
 * lwIP or are still queued. */
static void pump(int timeout_ms) {
  unsigned fed = drain_frames();
  sys_check_timeouts();
  uint32_t to = (timeout_ms < 0 || fed > 0) ? 0u : (uint32_t)timeout_ms;
  uint32_t lwip_to = sys_timeouts_sleeptime();
  if (lwip_to < to)
    to = lwip_to;
  int64_t now_ms = now_ns() / 1000000;
  for (stimer *t = timers; t != NULL; t = t->next)
    if (t->expire_ms >= 0) {
      int64_t d = t->expire_ms - now_ms;
      if (d < (int64_t)to)
        to = d < 0 ? 0 : (uint32_t)d;
    }
  npfds = 0;
  slirp_pollfds_fill(slirp, &to, add_poll, NULL);
  if (fq_head != fq_tail)
    to = 0;
  int rc = poll(pfds, npfds, (int)to);
  slirp_pollfds_poll(slirp, rc < 0, get_revents, NULL);
  now_ms = now_ns() / 1000000;
  for (stimer *t = timers; t != NULL; t = t->next)
    if (t->expire_ms >= 0 && t->expire_ms <= now_ms) {
      t->expire_ms = -1;
      slirp_handle_timer(slirp, t->id, t->cb_opaque);
    }
  drain_frames();
}

/* ---- the guest's netif -------------------------------------------------- */

static err_t nif_linkoutput(struct netif *n, struct pbuf *p) {
  (void)n;
  static uint8_t buf[FRAME_MAX];
  if (p->tot_len > sizeof(buf))
    return ERR_BUF;
  pbuf_copy_partial(p, buf, p->tot_len, 0);
  tx_frames++;
  tx_bytes += p->tot_len;
  slirp_input(slirp, buf, p->tot_len);
  return ERR_OK;
}

static err_t nif_init(struct netif *n) {
  static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  n->name[0] = 'e';
  n->name[1] = '0';
  n->mtu = 1500;
  n->hwaddr_len = 6;
  memcpy(n->hwaddr, mac, 6);
  n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET |
             NETIF_FLAG_LINK_UP;
  n->output = etharp_output;
  n->linkoutput = nif_linkoutput;
  return ERR_OK;
}

/* ---- connections -------------------------------------------------------- */

typedef struct lconn {
  struct tcp_pcb *tcp;
  struct udp_pcb *udp;
  struct pbuf *rx;   /* received, not yet read */
  uint16_t rx_off;   /* bytes of rx->payload already read */
  int connected, eof;
  err_t err;         /* from the err callback (pcb then gone) */
} lconn;

static lconn **conns;
static unsigned nconns, cap_conns;
static int want_nodelay;
static ip_addr_t host_alias; /* 10.0.2.2 */

static int new_handle(lconn *c) {
  for (unsigned i = 0; i < nconns; i++)
    if (conns[i] == NULL) {
      conns[i] = c;
      return (int)i;
    }
  if (nconns == cap_conns) {
    unsigned nc = cap_conns ? cap_conns * 2 : 256;
    lconn **n = realloc(conns, nc * sizeof(*n));
    if (n == NULL)
      return -ENOMEM;
    conns = n;
    cap_conns = nc;
  }
  conns[nconns] = c;
  return (int)nconns++;
}

static int lwip_errno(err_t e) {
  switch (e) {
  case ERR_MEM: return -ENOMEM;
  case ERR_RST: return -ECONNRESET;
  case ERR_ABRT: return -ECONNABORTED;
  case ERR_CLSD: return -ENOTCONN;
  case ERR_CONN: return -ENOTCONN;
  case ERR_TIMEOUT: return -ETIMEDOUT;
  case ERR_RTE: return -EHOSTUNREACH;
  default: return -EIO;
  }
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err) {
  (void)pcb;
  lconn *c = arg;
  c->connected = 1;
  if (err != ERR_OK)
    c->err = err;
  return ERR_OK;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p,
                     err_t err) {
  (void)pcb;
  (void)err;
  lconn *c = arg;
  if (p == NULL) {
    c->eof = 1;
    return ERR_OK;
  }
  if (c->rx == NULL)
    c->rx = p;
  else
    pbuf_cat(c->rx, p);
  return ERR_OK;
}

static void on_err(void *arg, err_t err) {
  lconn *c = arg;
  c->tcp = NULL; /* lwIP already freed it */
  c->err = err == ERR_OK ? ERR_ABRT : err;
}

static int s_connect(bench_net *n, uint16_t port) {
  (void)n;
  reclaim_time_wait();
  lconn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  c->tcp = tcp_new_ip_type(IPADDR_TYPE_V4);
  if (c->tcp == NULL) {
    free(c);
    return -ENOMEM;
  }
  if (want_nodelay)
    tcp_nagle_disable(c->tcp);
  tcp_arg(c->tcp, c);
  tcp_recv(c->tcp, on_recv);
  tcp_err(c->tcp, on_err);
  err_t e = tcp_connect(c->tcp, &host_alias, port, on_connected);
  if (e != ERR_OK) {
    tcp_abort(c->tcp);
    free(c);
    return lwip_errno(e);
  }
  double deadline = bench_now() + 10.0;
  while (!c->connected && c->err == ERR_OK && bench_now() < deadline)
    pump(10);
  if (!c->connected || c->err != ERR_OK) {
    int rc = c->err != ERR_OK ? lwip_errno(c->err) : -ETIMEDOUT;
    if (c->tcp != NULL) {
      tcp_arg(c->tcp, NULL);
      tcp_abort(c->tcp);
    }
    free(c);
    return rc;
  }
  int h = new_handle(c);
  if (h < 0) {
    tcp_arg(c->tcp, NULL);
    tcp_abort(c->tcp);
    free(c);
  }
  return h;
}

static lconn *get(int h) {
  return (h >= 0 && (unsigned)h < nconns) ? conns[h] : NULL;
}

static ssize_t s_send(bench_net *n, int h, const void *buf, size_t len) {
  (void)n;
  lconn *c = get(h);
  if (c == NULL)
    return -EBADF;
  size_t done = 0;
  while (done < len) {
    if (c->tcp == NULL)
      return lwip_errno(c->err);
    size_t room = tcp_sndbuf(c->tcp);
    if (room > len - done)
      room = len - done;
    if (room > 0 && tcp_sndqueuelen(c->tcp) < TCP_SND_QUEUELEN) {
      /* No TCP_WRITE_FLAG_MORE: each write ends with PSH, as a Linux
       * guest's segments do at every send; libslirp 4.7 acknowledges a
       * segment without PSH only from its 2 ms delayed-ACK timer, which
       * would cap a 64 KiB window at a few MB/s. */
      err_t e = tcp_write(c->tcp, (const char *)buf + done, (u16_t)room,
                          TCP_WRITE_FLAG_COPY);
      if (e == ERR_OK) {
        done += room;
        tcp_output(c->tcp);
        continue;
      }
      if (e != ERR_MEM)
        return lwip_errno(e);
    }
    tcp_output(c->tcp);
    pump(10); /* wait for ACKs to open the window */
  }
  return (ssize_t)len;
}

static ssize_t s_recv(bench_net *n, int h, void *buf, size_t len) {
  (void)n;
  lconn *c = get(h);
  if (c == NULL)
    return -EBADF;
  while (c->rx == NULL) {
    if (c->eof)
      return 0;
    if (c->tcp == NULL)
      return lwip_errno(c->err);
    pump(10);
  }
  size_t got = 0;
  while (c->rx != NULL && got < len) {
    struct pbuf *p = c->rx;
    size_t avail = p->len - c->rx_off, take = len - got;
    if (take > avail)
      take = avail;
    memcpy((char *)buf + got, (const char *)p->payload + c->rx_off, take);
    got += take;
    c->rx_off = (uint16_t)(c->rx_off + take);
    if (c->rx_off == p->len) {
      c->rx = p->next;
      if (c->rx != NULL)
        pbuf_ref(c->rx);
      pbuf_free(p);
      c->rx_off = 0;
    }
  }
  if (c->tcp != NULL)
    tcp_recved(c->tcp, (u16_t)got);
  return (ssize_t)got;
}

static int s_shutdown_wr(bench_net *n, int h) {
  (void)n;
  lconn *c = get(h);
  if (c == NULL || c->tcp == NULL)
    return -ENOTCONN;
  err_t e = tcp_shutdown(c->tcp, 0, 1);
  if (e == ERR_OK)
    tcp_output(c->tcp);
  return e == ERR_OK ? 0 : lwip_errno(e);
}

static int s_close(bench_net *n, int h) {
  (void)n;
  lconn *c = get(h);
  if (c == NULL)
    return -EBADF;
  if (c->tcp != NULL) {
    tcp_arg(c->tcp, NULL);
    tcp_recv(c->tcp, NULL);
    tcp_err(c->tcp, NULL);
    if (tcp_close(c->tcp) != ERR_OK)
      tcp_abort(c->tcp);
  }
  if (c->udp != NULL)
    udp_remove(c->udp);
  if (c->rx != NULL)
    pbuf_free(c->rx);
  free(c);
  conns[h] = NULL;
  pump(0); /* let the FIN go out */
  return 0;
}

static int s_udp_open(bench_net *n, uint16_t port) {
  (void)n;
  lconn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  c->udp = udp_new_ip_type(IPADDR_TYPE_V4);
  if (c->udp == NULL) {
    free(c);
    return -ENOMEM;
  }
  err_t e = udp_connect(c->udp, &host_alias, port);
  if (e != ERR_OK) {
    udp_remove(c->udp);
    free(c);
    return lwip_errno(e);
  }
  int h = new_handle(c);
  if (h < 0) {
    udp_remove(c->udp);
    free(c);
  }
  return h;
}

static ssize_t s_udp_send(bench_net *n, int h, const void *buf, size_t len) {
  (void)n;
  static unsigned sends;
  lconn *c = get(h);
  if (c == NULL || c->udp == NULL)
    return -EBADF;
  struct pbuf *p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)len, PBUF_RAM);
  if (p == NULL)
    return -ENOMEM;
  pbuf_take(p, buf, (u16_t)len);
  err_t e = udp_send(c->udp, p);
  pbuf_free(p);
  if ((++sends & 31) == 0)
    pump(0); /* ARP, slirp's timers */
  return e == ERR_OK ? (ssize_t)len : lwip_errno(e);
}

/* Every guest connection is also a host socket in this process. */
static int s_reserve(bench_net *n, unsigned count) {
  (void)n;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < count + 64u) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      return -errno;
  }
  return 0;
}

static const char *s_strerror(int err) { return strerror(-err); }

static bench_net slirp_net = {
    .name = "slirp",
    .tcp_connect = s_connect,
    .send = s_send,
    .recv = s_recv,
    .shutdown_wr = s_shutdown_wr,
    .close = s_close,
    .udp_open = s_udp_open,
    .udp_send = s_udp_send,
    .reserve = s_reserve,
    .strerror = s_strerror,
};

int main(int argc, char **argv) {
  bench_args a;
  const char *extra[4];
  if (bench_parse_args(argc, argv, &a, extra, 4) < 0)
    return 2;
  if (extra[0] != NULL) {
    fprintf(stderr, "hwsock-bench-slirp: unknown option '%s'\n", extra[0]);
    return 2;
  }
  want_nodelay = strcmp(a.workload, "rr") == 0;
  if (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 ||
      mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1) {
    fprintf(stderr, "hwsock-bench-slirp: mallopt failed\n");
    return 1;
  }
  frameq = calloc(FRAMEQ, sizeof(*frameq));
  if (frameq == NULL)
    return 1;

  SlirpConfig cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.version = 4;
  cfg.in_enabled = true;
  inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
  inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
  inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
  inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
  inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
  cfg.in6_enabled = false;
  cfg.disable_host_loopback = false; /* 10.0.2.2 -> 127.0.0.1 */
  cfg.disable_dns = true;
  cfg.disable_dhcp = true;
  slirp = slirp_new(&cfg, &slirp_cbs, NULL);
  if (slirp == NULL) {
    fprintf(stderr, "hwsock-bench-slirp: slirp_new failed\n");
    return 1;
  }

  lwip_init();
  ip4_addr_t ip, mask, gw;
  IP4_ADDR(&ip, 10, 0, 2, 15);
  IP4_ADDR(&mask, 255, 255, 255, 0);
  IP4_ADDR(&gw, 10, 0, 2, 2);
  IP_ADDR4(&host_alias, 10, 0, 2, 2);
  if (netif_add(&nif, &ip, &mask, &gw, NULL, nif_init, ethernet_input) ==
      NULL) {
    fprintf(stderr, "hwsock-bench-slirp: netif_add failed\n");
    return 1;
  }
  netif_set_default(&nif);
  netif_set_up(&nif);
  netif_set_link_up(&nif);

  fprintf(stderr,
          "hwsock-bench-slirp: libslirp %s, lwIP %s, mallopt "
          "M_MMAP_THRESHOLD=%d M_TRIM_THRESHOLD=%d\n",
         slirp_version_string(), LWIP_VERSION_STRING, MMAP_THRESHOLD,
         TRIM_THRESHOLD);
  int rc = bench_run(&slirp_net, &a);
  fprintf(stderr,
          "hwsock-bench-slirp: frames guest->slirp %llu (avg %.0f B), "
          "slirp->guest %llu (avg %.0f B), dropped %lu\n",
          tx_frames, tx_frames ? (double)tx_bytes / (double)tx_frames : 0.0,
          rx_frames, rx_frames ? (double)rx_bytes / (double)rx_frames : 0.0,
          fq_drops);
  slirp_cleanup(slirp);
  return rc;
}
