/* One attached guest: its memory (a sealed memfd), its device, its
 * kick/call eventfds, the libuv adapter that drives the device, and the
 * loopback protocol on its unix socket (hwsock/loopback.h).
 *
 * The guest is untrusted: a message of the wrong size, with descriptors,
 * of an unknown type or out of order ends the attachment (the guest is
 * dropped, its host sockets closed); a valid request the device refuses
 * gets its error in the reply status. */
#define _GNU_SOURCE /* memfd_create, F_ADD_SEALS, struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm.h"

struct vmm_guest {
  vmm *v;
  vmm_guest *next;
  unsigned id;       /* for logs and the control socket */
  long pid, uid, gid; /* the peer's, at attach (SO_PEERCRED); -1 unknown */
  int sock;          /* the guest's connection */
  uv_poll_t sock_poll;
  int poll_started;  /* sock_poll initialised (needs uv_close) */
  int detaching;
  int hello_done;
  int memfd;         /* sent in the HELLO reply; kept for a hand-over */
  void *mem;
  size_t mem_size;
  unsigned nqueues;
  int kick[HWSOCK_MAX_QUEUES]; /* guest writes, adapter polls (ioeventfd) */
  int call[HWSOCK_MAX_QUEUES]; /* device writes, guest polls (irqfd) */
  hwsock_device_ops ops;
  hwsock_device *dev;
  hwsock_uv *uv;
  int ipx_slot;      /* ipx.c's slot, -1: none (freed in release()), -2:
                        none to be had */
  int ipx_given;     /* a backend got the slot's options */
};

/* ---- device callbacks (called on the loop thread, inside the device) ---- */

static void on_notify(void *opaque, unsigned q) {
  vmm_guest *g = opaque;
  if (q < g->nqueues)
    hwsock_eventfd_signal(g->call[q]);
}

static void on_needs_reset(void *opaque, const char *why) {
  vmm_guest *g = opaque;
  vmm_log(HWSOCK_LOG_WARN, "guest %u: device needs reset: %s", g->id, why);
  hwsock_lb_msg m;
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, HWSOCK_LB_NEEDS_RESET);
  /* the guest learns which ring fault it caused (PROTOCOL.md §2.8) */
  hwsock_le64_set(&m.a, (uint64_t)hwsock_device_reset_reason(g->dev));
  /* Best effort: a guest that does not read is noticed as a hang-up. The
   * guest may not be dropped from here: we are inside the device. */
  hwsock_lb_send(g->sock, &m, NULL, 0);
}

static void on_log(void *opaque, int level, const char *msg) {
  vmm_guest *g = opaque;
  vmm_log(level, "guest %u: %s", g->id, msg);
}

/* ---- teardown ----------------------------------------------------------- */

static void release(vmm_guest *g) {
  /* The slot's UDP port is free again: the device (and its ipx instance's
   * socket, closed in the same closing pass of the loop) is gone. */
  vmm_ipx_release(g->v, g->ipx_slot);
  for (unsigned q = 0; q < HWSOCK_MAX_QUEUES; q++) {
    if (g->kick[q] >= 0)
      close(g->kick[q]);
    if (g->call[q] >= 0)
      close(g->call[q]);
  }
  if (g->memfd >= 0)
    close(g->memfd);
  if (g->mem != NULL)
    munmap(g->mem, g->mem_size);
  if (g->sock >= 0)
    close(g->sock);
  free(g);
}

static void on_sock_closed(uv_handle_t *h) {
  vmm_guest *g = h->data;
  vmm *v = g->v;
  release(g);
  vmm_guest_gone(v);
}

void vmm_guest_detach(vmm_guest *g, int level, const char *why) {
  if (g->detaching)
    return;
  g->detaching = 1;
  vmm_log(level, "guest %u: detached: %s", g->id, why);
  vmm *v = g->v;
  for (vmm_guest **pp = &v->guests; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == g) {
      *pp = g->next;
      v->nguests--;
      break;
    }
  }
  /* The adapter first: its handles stop at once, so nothing kicks or
   * flushes the device once it is freed. Freeing the device closes every
   * host socket of this guest. The memory and eventfds go when the
   * socket's poll handle has closed (on_sock_closed). */
  hwsock_uv_close(g->uv);
  g->uv = NULL;
  hwsock_device_free(g->dev);
  g->dev = NULL;
  uv_close((uv_handle_t *)&g->sock_poll, on_sock_closed);
}

/* ---- the loopback protocol ---------------------------------------------- */

static int reply(vmm_guest *g, const hwsock_lb_msg *req, int status,
                 const int *fds, unsigned nfds, hwsock_lb_msg *r) {
  r->type = req->type;
  hwsock_le32_set(&r->status, status < 0 ? (uint32_t)-status : 0);
  int rc = hwsock_lb_send(g->sock, r, fds, nfds);
  if (rc < 0) {
    char why[96];
    snprintf(why, sizeof(why), "sending a reply: %s", hwsock_strerror(rc));
    vmm_guest_detach(g, HWSOCK_LOG_INFO, why);
  }
  return rc;
}

static int simple_reply(vmm_guest *g, const hwsock_lb_msg *req, int status) {
  hwsock_lb_msg r;
  memset(&r, 0, sizeof(r));
  return reply(g, req, status, NULL, 0, &r);
}

/* HELLO reply: the device config, where the memory is, and the fds. */
static int do_hello(vmm_guest *g, const hwsock_lb_msg *m) {
  if (hwsock_le64_get(&m->a) != HWSOCK_LB_VERSION) {
    simple_reply(g, m, HWSOCK_EPROTO);
    return -1; /* dropped: we speak one version */
  }
  int fds[HWSOCK_LB_MAX_FDS];
  fds[0] = g->memfd;
  for (unsigned q = 0; q < g->nqueues; q++) {
    fds[1 + 2 * q] = g->kick[q];
    fds[2 + 2 * q] = g->call[q];
  }
  hwsock_lb_msg r;
  memset(&r, 0, sizeof(r));
  hwsock_device_get_config(g->dev, &r.config);
  hwsock_le64_set(&r.a, g->mem_size);
  hwsock_le64_set(&r.b, VMM_GPA_BASE);
  hwsock_le64_set(&r.c, g->nqueues);
  if (reply(g, m, 0, fds, 1 + 2 * g->nqueues, &r) < 0)
    return -1;
  /* Ours stays open: a VMM that replaces itself hands the memory over
   * (takeover.c). */
  g->hello_done = 1;
  return 0;
}

static int do_queue(vmm_guest *g, const hwsock_lb_msg *m) {
  uint64_t q = hwsock_le64_get(&m->a), size = hwsock_le64_get(&m->b);
  int rc = HWSOCK_EINVAL;
  if (q < HWSOCK_MAX_QUEUES && size <= HWSOCK_VRING_MAX_SIZE)
    rc = hwsock_device_queue_setup(g->dev, (unsigned)q, (unsigned)size,
                                   hwsock_le64_get(&m->c),
                                   hwsock_le64_get(&m->d),
                                   hwsock_le64_get(&m->e));
  vmm_log(HWSOCK_LOG_DEBUG, "guest %u: queue %llu size %llu: %s", g->id,
          (unsigned long long)q, (unsigned long long)size,
          hwsock_strerror(rc));
  return simple_reply(g, m, rc);
}

/* One message. Returns -1 when the guest was dropped. */
static int handle(vmm_guest *g, const hwsock_lb_msg *m) {
  uint32_t type = hwsock_le32_get(&m->type);
  char why[96];
  if (hwsock_le32_get(&m->status) != 0 ||
      hwsock_le64_get(&m->reserved[0]) != 0 ||
      hwsock_le64_get(&m->reserved[1]) != 0) {
    snprintf(why, sizeof(why), "malformed message (type %u)", type);
    goto drop;
  }
  if (!g->hello_done && type != HWSOCK_LB_HELLO) {
    snprintf(why, sizeof(why), "message type %u before HELLO", type);
    goto drop;
  }
  int rc;
  switch (type) {
  case HWSOCK_LB_HELLO:
    if (g->hello_done) {
      snprintf(why, sizeof(why), "second HELLO");
      goto drop;
    }
    if (do_hello(g, m) < 0) {
      if (!g->detaching)
        vmm_guest_detach(g, HWSOCK_LOG_ERROR, "unsupported protocol version");
      return -1;
    }
    return 0;
  case HWSOCK_LB_FEATURES:
    rc = hwsock_device_set_features(g->dev, hwsock_le64_get(&m->a));
    vmm_log(HWSOCK_LOG_DEBUG, "guest %u: features %#llx: %s", g->id,
            (unsigned long long)hwsock_le64_get(&m->a), hwsock_strerror(rc));
    return simple_reply(g, m, rc) < 0 ? -1 : 0;
  case HWSOCK_LB_QUEUE:
    return do_queue(g, m) < 0 ? -1 : 0;
  case HWSOCK_LB_START:
    rc = hwsock_device_start(g->dev);
    vmm_log(rc < 0 ? HWSOCK_LOG_WARN : HWSOCK_LOG_INFO,
            "guest %u: device start: %s", g->id, hwsock_strerror(rc));
    return simple_reply(g, m, rc) < 0 ? -1 : 0;
  case HWSOCK_LB_RESET:
    hwsock_device_reset(g->dev);
    return simple_reply(g, m, 0) < 0 ? -1 : 0;
  default:
    snprintf(why, sizeof(why), "unknown message type %u", type);
    goto drop;
  }
drop:
  vmm_guest_detach(g, HWSOCK_LOG_ERROR, why);
  return -1;
}

static void on_sock(uv_poll_t *h, int status, int events) {
  vmm_guest *g = h->data;
  char why[96];
  if (status < 0) {
    snprintf(why, sizeof(why), "socket error: %s", uv_strerror(status));
    vmm_guest_detach(g, HWSOCK_LOG_ERROR, why);
    return;
  }
  for (unsigned i = 0; i < VMM_MSGS_PER_WAKEUP; i++) {
    hwsock_lb_msg m;
    /* max_fds 0: a guest never sends descriptors */
    int rc = hwsock_lb_recv(g->sock, &m, NULL, 0, NULL);
    if (rc == HWSOCK_EAGAIN)
      break;
    if (rc == HWSOCK_ECONNRESET) {
      vmm_guest_detach(g, HWSOCK_LOG_INFO, "hung up");
      return;
    }
    if (rc < 0) {
      snprintf(why, sizeof(why), "bad message: %s", hwsock_strerror(rc));
      vmm_guest_detach(g, HWSOCK_LOG_ERROR, why);
      return;
    }
    if (handle(g, &m) < 0)
      return;
  }
  if ((events & UV_DISCONNECT) && !(events & UV_READABLE))
    vmm_guest_detach(g, HWSOCK_LOG_INFO, "hung up");
}

/* ---- attach ------------------------------------------------------------- */

/* Guest memory: a memfd sealed against shrinking, so that the guest, which
 * gets a writable fd of it, cannot truncate it under the VMM's mapping
 * (the VMM would die of SIGBUS touching the vanished pages). */
static int make_memory(vmm_guest *g, size_t size) {
  char name[32];
  snprintf(name, sizeof(name), "hwsock-guest-%u", g->id);
  g->memfd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (g->memfd < 0)
    return -errno;
  if (ftruncate(g->memfd, (off_t)size) < 0 ||
      fcntl(g->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
          0)
    return -errno;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
  if (p == MAP_FAILED)
    return -errno;
  g->mem = p;
  g->mem_size = size;
  return 0;
}

static int serves_ipx(const hwsock_backend_desc *d) {
  for (const char *const *s = d->schemes; s != NULL && *s != NULL; s++)
    if (strcmp(*s, "ipx") == 0)
      return 1;
  return 0;
}

/* The options of backend d for this guest: with --ipx-net, the first
 * backend serving ipx gets a slot's options (ipx.c); everything else, and
 * a guest for which no slot is free, gets none (its IPX is down). */
static const char *backend_options(vmm_guest *g, const hwsock_backend_desc *d) {
  vmm *v = g->v;
  if (v->ipx == NULL || g->ipx_given || !serves_ipx(d))
    return NULL;
  g->ipx_given = 1; /* asked once: the next ipx backend gets nothing */
  if (g->ipx_slot == -1) /* (a guest taken over comes with its slot) */
    g->ipx_slot = vmm_ipx_claim(v);
  if (g->ipx_slot == -1) {
    g->ipx_slot = -2;
    vmm_log(HWSOCK_LOG_WARN, "guest %u: every IPX slot is taken "
            "(--ipx-slots): attached without IPX", g->id);
    return NULL;
  }
  if (g->ipx_slot < 0)
    return NULL;
  char what[160];
  vmm_ipx_describe(v, g->ipx_slot, what, sizeof(what));
  vmm_log(HWSOCK_LOG_INFO, "guest %u: ipx %s", g->id, what);
  return vmm_ipx_options(v, g->ipx_slot);
}

static int make_device(vmm_guest *g) {
  vmm *v = g->v;
  g->ops.size = sizeof(g->ops);
  g->ops.notify = on_notify;
  g->ops.needs_reset = on_needs_reset;
  g->ops.log = on_log;
  hwsock_device_config cfg;
  hwsock_device_config_init(&cfg);
  cfg.num_queues = g->nqueues;
  cfg.max_sockets = v->opt.max_sockets;
  cfg.max_host_sockets = v->guest_sockets;
  cfg.shared_quota = &v->quota;
  cfg.quota_hint = "hwsock-vmm --guest-sockets N";
  cfg.kick_budget = v->opt.kick_budget;
  cfg.policy = v->policy;
  cfg.backend_loop = &v->loop;
  cfg.ops = &g->ops;
  cfg.opaque = g;
  cfg.identity = vmm_identity(v);
  int rc = hwsock_device_new(&cfg, &g->dev);
  if (rc < 0)
    return rc;
  if ((rc = hwsock_device_add_region(g->dev, VMM_GPA_BASE, g->mem_size,
                                     g->mem)) < 0)
    return rc;
  for (unsigned i = 0; i < v->nplugins; i++) {
    const hwsock_backend_desc *d = hwsock_plugin_desc(v->plugins[i]);
    const char *opts = backend_options(g, d);
    rc = hwsock_device_add_backend(g->dev, d, opts);
    if (rc < 0 && opts != NULL) {
      /* e.g. the slot's UDP port is taken by another program: the guest
       * is still served, without IPX (the device logged why) */
      vmm_log(HWSOCK_LOG_ERROR, "guest %u: ipx slot %d: %s: attached "
              "without IPX", g->id, g->ipx_slot, hwsock_strerror(rc));
      vmm_ipx_release(v, g->ipx_slot);
      g->ipx_slot = -2;
      rc = hwsock_device_add_backend(g->dev, d, NULL);
    }
    /* Down (ipx without a network for this guest): served without it, and
     * the device does not offer its feature bit (F_IPX). */
    if (rc == HWSOCK_ENETDOWN)
      continue;
    if (rc < 0)
      return rc;
  }
  /* The device keeps the capture until it is freed, so that the FINs of
   * sockets its teardown closes are recorded; the capture outlives every
   * device (closed at exit). */
  if (v->capture != NULL)
    hwsock_device_set_capture(g->dev, v->capture);
  if ((rc = hwsock_uv_new(&v->loop, g->dev, &g->uv)) < 0 ||
      (rc = hwsock_uv_set_poll(g->uv, v->opt.poll_us)) < 0)
    return rc;
  for (unsigned q = 0; q < g->nqueues; q++)
    if ((rc = hwsock_uv_watch_kick(g->uv, q, g->kick[q])) < 0)
      return rc;
  return 0;
}

/* Tells a guest we cannot take it: an unsolicited HELLO reply with an
 * error (the guest reads it as the answer to its HELLO), then hang up. */
static void refuse(int fd, int err) {
  hwsock_lb_msg m;
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, HWSOCK_LB_HELLO);
  hwsock_le32_set(&m.status, (uint32_t)-err);
  hwsock_lb_send(fd, &m, NULL, 0);
  close(fd);
}

/* Who connected (SO_PEERCRED: the peer's at connect time), for the logs
 * and the control socket. -1 where unknown. */
static void peer_creds(vmm_guest *g) {
  struct ucred cr;
  socklen_t cl = sizeof(cr);
  g->pid = g->uid = g->gid = -1;
  if (getsockopt(g->sock, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
    g->pid = (long)cr.pid;
    g->uid = (long)cr.uid;
    g->gid = (long)cr.gid;
  }
}

void vmm_guest_get_info(const vmm_guest *g, vmm_guest_info *out) {
  out->id = g->id;
  out->pid = g->pid;
  out->mem_size = g->mem_size;
  out->dev = g->dev;
  unsigned st = g->dev != NULL ? hwsock_device_status(g->dev) : 0;
  out->status = st & HWSOCK_STATUS_NEEDS_RESET ? "needs-reset"
                : st & HWSOCK_STATUS_DRIVER_OK ? "running"
                                               : "attaching";
}

vmm_guest *vmm_guest_after(const vmm *v, unsigned after) {
  vmm_guest *best = NULL;
  for (vmm_guest *g = v->guests; g != NULL; g = g->next)
    if (g->id > after && (best == NULL || g->id < best->id))
      best = g;
  return best;
}

void vmm_guest_attach(vmm *v, int fd) {
  if (v->nguests >= v->opt.max_guests) {
    vmm_log(HWSOCK_LOG_ERROR, "refusing a guest: %u attached (--max-guests)",
            v->nguests);
    refuse(fd, HWSOCK_EBUSY);
    return;
  }
  vmm_guest *g = calloc(1, sizeof(*g));
  if (g == NULL) {
    refuse(fd, HWSOCK_ENOMEM);
    return;
  }
  g->v = v;
  g->id = ++v->next_id;
  g->sock = fd;
  peer_creds(g);
  g->memfd = -1;
  g->ipx_slot = -1;
  g->nqueues = v->opt.queues;
  for (unsigned q = 0; q < HWSOCK_MAX_QUEUES; q++)
    g->kick[q] = g->call[q] = -1;
  int rc = uv_poll_init(&v->loop, &g->sock_poll, fd);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "guest %u: %s", g->id, uv_strerror(rc));
    g->sock = -1;
    release(g);
    refuse(fd, HWSOCK_ENOMEM);
    return;
  }
  g->sock_poll.data = g;
  g->next = v->guests;
  v->guests = g;
  v->nguests++;

  const char *step = "guest memory";
  int err = make_memory(g, (size_t)v->opt.mem_mib << 20);
  if (err < 0)
    goto fail_errno;
  step = "eventfds";
  for (unsigned q = 0; q < g->nqueues; q++) {
    g->kick[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g->call[q] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (g->kick[q] < 0 || g->call[q] < 0) {
      err = -errno;
      goto fail_errno;
    }
  }
  step = "device";
  if ((rc = make_device(g)) < 0)
    goto fail_hwsock;
  step = "socket poll";
  if ((rc = uv_poll_start(&g->sock_poll, UV_READABLE | UV_DISCONNECT,
                          on_sock)) < 0) {
    err = rc; /* libuv errors are negative errnos on unix */
    goto fail_errno;
  }
  vmm_log(HWSOCK_LOG_INFO,
          "guest %u: attached (pid %ld, uid %ld, gid %ld, %u MiB, %u queue%s)",
          g->id, g->pid, g->uid, g->gid, v->opt.mem_mib, g->nqueues,
          g->nqueues == 1 ? "" : "s");
  if (v->handover != NULL) /* a hand-over is settling: it takes this one */
    vmm_guest_pause(g, 1);
  return;

  char why[128];
fail_errno:
  snprintf(why, sizeof(why), "cannot set up %s: %s", step, strerror(-err));
  vmm_guest_detach(g, HWSOCK_LOG_ERROR, why);
  return;
fail_hwsock:
  snprintf(why, sizeof(why), "cannot set up %s: %s", step,
           hwsock_strerror(rc));
  vmm_guest_detach(g, HWSOCK_LOG_ERROR, why);
}

/* ---- hand-over to a new VMM process (takeover.c) ------------------------- */

void vmm_guest_pause(vmm_guest *g, int on) {
  if (g->detaching)
    return;
  if (on) {
    uv_poll_stop(&g->sock_poll); /* its messages wait for the new VMM */
    hwsock_device_quiesce(g->dev, 1);
  } else {
    hwsock_device_quiesce(g->dev, 0);
    /* What waited (and what a kick budget leaves) is served through the
     * adapter, which only a kick tells that there is work. */
    for (unsigned q = 0; q < g->nqueues; q++)
      hwsock_eventfd_signal(g->kick[q]);
    uv_poll_start(&g->sock_poll, UV_READABLE | UV_DISCONNECT, on_sock);
  }
}

unsigned vmm_guest_handover_fds(const vmm_guest *g, vmm_guest_desc *d,
                                int *fds) {
  d->id = g->id;
  d->pid = g->pid;
  d->uid = g->uid;
  d->gid = g->gid;
  d->nqueues = g->nqueues;
  d->mem_size = g->mem_size;
  d->hello_done = (unsigned)g->hello_done;
  d->ipx_slot = -1;
  unsigned n = 0;
  fds[n++] = g->sock;
  fds[n++] = g->memfd;
  for (unsigned q = 0; q < g->nqueues; q++) {
    fds[n++] = g->kick[q];
    fds[n++] = g->call[q];
  }
  /* the slot's UDP socket, when the VMM bound it (fd=): the backend's
   * sockets go with it; without it they come back reset */
  int ipx_fd = vmm_ipx_fd(g->v, g->ipx_slot);
  if (ipx_fd >= 0) {
    d->ipx_slot = g->ipx_slot;
    fds[n++] = ipx_fd;
  }
  return n;
}

/* The memfd the old VMM made (sealed, d->mem_size bytes), mapped. */
static int adopt_memory(vmm_guest *g, size_t size) {
  struct stat st;
  int seals = fcntl(g->memfd, F_GET_SEALS);
  if (fstat(g->memfd, &st) < 0 || seals < 0)
    return -errno;
  if ((uint64_t)st.st_size != size || size == 0 ||
      (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) !=
          (F_SEAL_SHRINK | F_SEAL_GROW))
    return -EINVAL;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
  if (p == MAP_FAILED)
    return -errno;
  g->mem = p;
  g->mem_size = size;
  return 0;
}

vmm_guest *vmm_guest_adopt(vmm *v, const vmm_guest_desc *d, const int *fds,
                           unsigned nfds) {
  vmm_guest *g = NULL;
  unsigned nipx = d->ipx_slot >= 0 ? 1 : 0;
  if (d->nqueues < 1 || d->nqueues > HWSOCK_MAX_QUEUES ||
      nfds != 2 + 2 * d->nqueues + nipx ||
      d->mem_size > (size_t)VMM_MAX_MEM_MIB << 20)
    goto fail_fds;
  g = calloc(1, sizeof(*g));
  if (g == NULL)
    goto fail_fds;
  g->v = v;
  g->id = ++v->next_id;
  g->pid = d->pid;
  g->uid = d->uid;
  g->gid = d->gid;
  g->sock = fds[0];
  g->memfd = fds[1];
  /* its IPX slot again (the same node and UDP endpoint, the socket its
   * peers send to); none when it had none or this VMM cannot give it */
  g->ipx_slot = -2;
  if (nipx && vmm_ipx_claim_slot(v, d->ipx_slot, fds[nfds - 1]) == 0)
    g->ipx_slot = d->ipx_slot;
  else if (nipx)
    vmm_log(HWSOCK_LOG_WARN, "guest %u: its IPX slot %d is not this VMM's "
            "(--ipx-*): taken over without IPX", d->id, d->ipx_slot);
  g->nqueues = d->nqueues;
  g->hello_done = d->hello_done != 0;
  for (unsigned q = 0; q < HWSOCK_MAX_QUEUES; q++)
    g->kick[q] = g->call[q] = -1;
  for (unsigned q = 0; q < g->nqueues; q++) {
    g->kick[q] = fds[2 + 2 * q];
    g->call[q] = fds[3 + 2 * q];
  }
  if (uv_poll_init(&v->loop, &g->sock_poll, g->sock) < 0) {
    release(g); /* closes every fd it holds */
    return NULL;
  }
  g->sock_poll.data = g;
  g->next = v->guests;
  v->guests = g;
  v->nguests++;
  char why[128];
  int err = adopt_memory(g, d->mem_size);
  if (err < 0) {
    snprintf(why, sizeof(why), "hand-over: guest memory: %s", strerror(-err));
    vmm_guest_detach(g, HWSOCK_LOG_ERROR, why);
    return NULL;
  }
  int rc = make_device(g);
  if (rc < 0) {
    snprintf(why, sizeof(why), "hand-over: device: %s", hwsock_strerror(rc));
    vmm_guest_detach(g, HWSOCK_LOG_ERROR, why);
    return NULL;
  }
  vmm_log(HWSOCK_LOG_INFO, "guest %u: taken over (was guest %u; pid %ld, "
          "%zu MiB, %u queue%s)", g->id, d->id, g->pid, g->mem_size >> 20,
          g->nqueues, g->nqueues == 1 ? "" : "s");
  return g;
fail_fds:
  for (unsigned i = 0; i < nfds; i++)
    close(fds[i]);
  free(g);
  return NULL;
}

hwsock_device *vmm_guest_device(const vmm_guest *g) { return g->dev; }

unsigned vmm_guest_get_id(const vmm_guest *g) { return g->id; }

int vmm_guest_start(vmm_guest *g) {
  /* The old VMM took the guest's last kicks: a kick of our own, so that
   * the adapter serves what the queues hold (and what a kick budget left)
   * on the loop's first turn. */
  for (unsigned q = 0; q < g->nqueues; q++)
    hwsock_eventfd_signal(g->kick[q]);
  int rc = uv_poll_start(&g->sock_poll, UV_READABLE | UV_DISCONNECT, on_sock);
  if (rc < 0) {
    char why[96];
    snprintf(why, sizeof(why), "socket poll: %s", uv_strerror(rc));
    vmm_guest_detach(g, HWSOCK_LOG_ERROR, why);
    return -1;
  }
  return 0;
}
