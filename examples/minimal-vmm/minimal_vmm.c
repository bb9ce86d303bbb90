/* minimal-vmm: the smallest VMM that embeds the device with a loop of its
 * own (plain epoll, no libuv in this program) through the embed mode
 * (hwsock/embed.h). One guest over the loopback attach transport
 * (hwsock/loopback.h, as hwsock-vmm speaks it), then exit.
 *
 *   minimal-vmm [--thread] LISTEN_PATH BACKEND.so...
 *
 * Without --thread the device runs inside this program's epoll loop: the
 * embed fd is one more fd in the set, its timeout bounds epoll_wait, and
 * hwsock_embed_run() is called after every wake-up. With --thread the
 * device runs on its own thread (as an out-of-process device would): the
 * epoll loop only serves the guest's messages, and every device call goes
 * through hwsock_embed_call().
 *
 * Guest memory is a sealed memfd mapped at guest physical 4 GiB; queue 0's
 * kick and call are eventfds (the guest's ioeventfd and irqfd). Exit 0 once
 * the guest hung up after a clean session, 1 on any error. */
#define _GNU_SOURCE /* memfd_create, F_ADD_SEALS */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hwsock/device.h"
#include "hwsock/embed.h"
#include "hwsock/loopback.h"

#define GPA_BASE 0x100000000ull
#define MEM_SIZE (64u << 20)

static int sock = -1, memfd = -1, kick = -1, call = -1;
static void *mem;
static hwsock_embed *emb;
static hwsock_plugin *plugins[8];
static int nplugins;

/* The guest's irqfd. EAGAIN: the counter is saturated, the guest wakes
 * anyway. */
static void on_notify(void *opaque, unsigned q) {
  uint64_t one = 1;
  (void)opaque;
  if (q == 0)
    (void)!write(call, &one, sizeof(one));
}

static void on_needs_reset(void *opaque, const char *why) {
  (void)opaque;
  fprintf(stderr, "minimal-vmm: needs reset: %s\n", why);
  hwsock_lb_msg m;
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, HWSOCK_LB_NEEDS_RESET);
  hwsock_lb_send(sock, &m, NULL, 0);
}

static void on_log(void *opaque, int level, const char *msg) {
  (void)opaque;
  if (level <= HWSOCK_LOG_WARN)
    fprintf(stderr, "minimal-vmm: %s\n", msg);
}

static const hwsock_device_ops ops = {.size = sizeof(ops),
                                      .notify = on_notify,
                                      .needs_reset = on_needs_reset,
                                      .log = on_log};

static int die(const char *what, int err) {
  fprintf(stderr, "minimal-vmm: %s: %s\n", what,
          err < 0 ? hwsock_strerror(err) : strerror(errno));
  return 1;
}

/* ---- device calls, on the device thread (hwsock_embed_call) ---- */

static int call_features(hwsock_device *d, void *arg) {
  return hwsock_device_set_features(d, *(uint64_t *)arg);
}
static int call_queue(hwsock_device *d, void *arg) {
  const hwsock_lb_msg *m = arg;
  uint64_t q = hwsock_le64_get(&m->a), size = hwsock_le64_get(&m->b);
  if (q != 0 || size > HWSOCK_VRING_MAX_SIZE)
    return HWSOCK_EINVAL;
  return hwsock_device_queue_setup(d, 0, (unsigned)size,
                                   hwsock_le64_get(&m->c),
                                   hwsock_le64_get(&m->d),
                                   hwsock_le64_get(&m->e));
}
static int call_start(hwsock_device *d, void *arg) {
  (void)arg;
  return hwsock_device_start(d);
}
static int call_reset(hwsock_device *d, void *arg) {
  (void)arg;
  hwsock_device_reset(d);
  return 0;
}
static int call_config(hwsock_device *d, void *arg) {
  hwsock_device_get_config(d, arg);
  return 0;
}

/* One message of the guest: 0, 1 (hung up, done) or -1 (bad guest). */
static int handle(const hwsock_lb_msg *m) {
  hwsock_lb_msg r;
  memset(&r, 0, sizeof(r));
  r.type = m->type;
  int rc, nfds = 0, fds[3];
  uint64_t features;
  switch (hwsock_le32_get(&m->type)) {
  case HWSOCK_LB_HELLO:
    if (hwsock_le64_get(&m->a) != HWSOCK_LB_VERSION || memfd < 0)
      return -1;
    hwsock_embed_call(emb, call_config, &r.config);
    hwsock_le64_set(&r.a, MEM_SIZE);
    hwsock_le64_set(&r.b, GPA_BASE);
    hwsock_le64_set(&r.c, 1);
    fds[0] = memfd, fds[1] = kick, fds[2] = call;
    nfds = 3;
    rc = 0;
    break;
  case HWSOCK_LB_FEATURES:
    features = hwsock_le64_get(&m->a);
    rc = hwsock_embed_call(emb, call_features, &features);
    break;
  case HWSOCK_LB_QUEUE:
    rc = hwsock_embed_call(emb, call_queue, (void *)m);
    break;
  case HWSOCK_LB_START:
    rc = hwsock_embed_call(emb, call_start, NULL);
    break;
  case HWSOCK_LB_RESET:
    rc = hwsock_embed_call(emb, call_reset, NULL);
    break;
  default:
    return -1;
  }
  hwsock_le32_set(&r.status, rc < 0 ? (uint32_t)-rc : 0);
  if (hwsock_lb_send(sock, &r, fds, (unsigned)nfds) < 0)
    return -1;
  if (nfds > 0) { /* the guest has its copy; the memory is sealed */
    close(memfd);
    memfd = -1;
  }
  return 0;
}

static int make_guest(int nbackends, char **backends) {
  memfd = memfd_create("minimal-vmm-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0 ||
      fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
    return die("guest memory", 0);
  mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (mem == MAP_FAILED)
    return die("mmap", 0);
  kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (kick < 0 || call < 0)
    return die("eventfd", 0);
  int rc = hwsock_embed_new(&emb);
  if (rc < 0)
    return die("embed", rc);
  hwsock_device_config cfg;
  hwsock_device_config_init(&cfg);
  cfg.backend_loop = hwsock_embed_loop(emb);
  cfg.ops = &ops;
  hwsock_device *dev;
  if ((rc = hwsock_device_new(&cfg, &dev)) < 0)
    return die("device", rc);
  if ((rc = hwsock_embed_attach(emb, dev)) < 0) {
    hwsock_device_free(dev);
    return die("attach", rc);
  }
  if ((rc = hwsock_device_add_region(dev, GPA_BASE, MEM_SIZE, mem)) < 0)
    return die("region", rc);
  for (int i = 0; i < nbackends; i++) {
    hwsock_plugin *p;
    char err[256];
    if (nplugins == (int)(sizeof(plugins) / sizeof(plugins[0])))
      return die("too many backends", HWSOCK_ENOSPC);
    /* unloaded at exit, after the device and its loop are gone */
    if ((rc = hwsock_plugin_load(backends[i], &p, err, sizeof(err))) < 0) {
      fprintf(stderr, "minimal-vmm: %s\n", err);
      return 1;
    }
    plugins[nplugins++] = p;
    rc = hwsock_device_add_backend(dev, hwsock_plugin_desc(p), NULL);
    if (rc < 0 && rc != HWSOCK_ENETDOWN)
      return die(backends[i], rc);
  }
  if ((rc = hwsock_embed_watch_kick(emb, 0, kick)) < 0)
    return die("kick", rc);
  return 0;
}

int main(int argc, char **argv) {
  int threaded = argc > 1 && strcmp(argv[1], "--thread") == 0;
  if (argc < 3 + threaded) {
    fprintf(stderr, "usage: minimal-vmm [--thread] LISTEN_PATH BACKEND.so...\n");
    return 1;
  }
  const char *path = argv[1 + threaded];
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path))
    return die("path too long", HWSOCK_EINVAL);
  strcpy(sa.sun_path, path);
  int lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (lsock < 0 || bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      listen(lsock, 1) < 0)
    return die(path, 0);
  printf("listening\n");
  fflush(stdout);
  sock = accept4(lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  close(lsock);
  unlink(path);
  if (sock < 0)
    return die("accept", 0);
  if (make_guest(argc - 2 - threaded, argv + 2 + threaded) != 0)
    return 1;
  int rc;
  if (threaded && (rc = hwsock_embed_thread_start(emb)) < 0)
    return die("thread", rc);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = sock};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev) < 0)
    return die("epoll", 0);
  if (!threaded) {
    ev.data.fd = hwsock_embed_fd(emb);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
      return die("epoll", 0);
  }
  int status = 0, done = 0;
  while (!done) {
    struct epoll_event evs[4];
    int n = epoll_wait(ep, evs, 4, threaded ? -1 : hwsock_embed_timeout_ms(emb));
    if (n < 0 && errno != EINTR)
      return die("epoll_wait", 0);
    for (int i = 0; i < n && !done; i++) {
      if (evs[i].data.fd != sock)
        continue; /* the embed fd: the run below */
      for (;;) {
        hwsock_lb_msg m;
        rc = hwsock_lb_recv(sock, &m, NULL, 0, NULL);
        if (rc == HWSOCK_EAGAIN)
          break;
        if (rc == HWSOCK_ECONNRESET) {
          done = 1; /* hung up */
          break;
        }
        if (rc < 0 || handle(&m) < 0) {
          fprintf(stderr, "minimal-vmm: bad guest message\n");
          status = 1;
          done = 1;
          break;
        }
      }
    }
    if (!threaded)
      hwsock_embed_run(emb);
  }
  /* The thread stops, the device and its host sockets go, the loop
   * closes; only then the memory and the eventfds. */
  hwsock_embed_free(emb);
  for (int i = 0; i < nplugins; i++)
    hwsock_plugin_unload(plugins[i]);
  close(ep);
  close(sock);
  close(kick);
  close(call);
  if (memfd >= 0)
    close(memfd);
  munmap(mem, MEM_SIZE);
  return status;
}
