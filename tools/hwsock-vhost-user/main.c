/* hwsock-vhost-user: command line, startup, the listening socket (one
 * front-end at a time: the next is accepted when the current one is gone),
 * signals, and the control socket's view of the one guest. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vu.h"

static void usage(FILE *f) {
  fprintf(f,
      "usage: hwsock-vhost-user --socket PATH [options]\n"
      "A vhost-user back-end serving a libhwsock device (docs/VHOST-USER.md).\n"
      "  --socket PATH       listen here for the VMM (front-end)\n"
      "  --socket-mode OCT   mode of the listening sockets (default 0600)\n"
      "  --cid N             guest_cid in the vsock carrier's config (3)\n"
      "  --policy FILE       the policy (default: the built-in one)\n"
      "  --backend-dir DIR   backend modules folder (\"\": none)\n"
      "  --backend FILE      load this backend module first (repeatable)\n"
      "  --max-sockets N     guest socket ids (default: the library's)\n"
      "  --poll-us N         keep polling the rings N us after a request\n"
      "                      (busy CPU for lower latency; 0: off)\n"
      "  --pcap FILE         capture offloaded flows (created, never replaced)\n"
      "  --pcap-max MIB      stop capturing after this much\n"
      "  --control PATH      control socket for hwsock-stat (default\n"
      "                      SOCKET.ctl, \"\": none)\n"
      "  --ready-fd FD       write \"ready\\n\" to FD once listening\n"
      "  -v                  more log (twice: every message)\n");
}

static int parse_uint(const char *s, unsigned long long max,
                      unsigned long long *out, int base) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, base);
  if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-')
    return -1;
  *out = v;
  return 0;
}

enum {
  OPT_SOCKET = 256, OPT_MODE, OPT_CID, OPT_POLICY, OPT_BDIR, OPT_BACKEND,
  OPT_MAXSOCK, OPT_PCAP, OPT_PCAPMAX, OPT_CONTROL, OPT_READY, OPT_POLL
};

/* 0 to run, 1 after --help, -1 on a usage error (reported). */
static int parse_options(int argc, char **argv, vu *u) {
  static const struct option longopts[] = {
      {"socket", required_argument, NULL, OPT_SOCKET},
      {"socket-mode", required_argument, NULL, OPT_MODE},
      {"cid", required_argument, NULL, OPT_CID},
      {"policy", required_argument, NULL, OPT_POLICY},
      {"backend-dir", required_argument, NULL, OPT_BDIR},
      {"backend", required_argument, NULL, OPT_BACKEND},
      {"max-sockets", required_argument, NULL, OPT_MAXSOCK},
      {"poll-us", required_argument, NULL, OPT_POLL},
      {"pcap", required_argument, NULL, OPT_PCAP},
      {"pcap-max", required_argument, NULL, OPT_PCAPMAX},
      {"control", required_argument, NULL, OPT_CONTROL},
      {"ready-fd", required_argument, NULL, OPT_READY},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  vmm_options *o = &u->v.opt;
  o->socket_mode = VMM_DEFAULT_SOCKET_MODE;
  o->socket_gid = -1;
  o->ready_fd = -1;
  u->cid = VU_DEFAULT_CID;
  int c;
  unsigned long long n;
  while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
    const char *bad = NULL;
    switch (c) {
    case OPT_SOCKET: u->socket_path = optarg; break;
    case OPT_MODE:
      if (parse_uint(optarg, 0777, &n, 8) < 0)
        bad = "--socket-mode";
      o->socket_mode = (unsigned)n;
      break;
    case OPT_CID:
      /* 0-2 are reserved by vsock; the top value means "any" */
      if (parse_uint(optarg, 0xfffffffeull, &n, 10) < 0 || n < 3)
        bad = "--cid";
      u->cid = n;
      break;
    case OPT_POLICY: o->policy_path = optarg; break;
    case OPT_BDIR: o->backend_dir = optarg; break;
    case OPT_BACKEND:
      if (o->nbackends == VMM_MAX_PLUGINS)
        bad = "--backend (too many)";
      else
        o->backends[o->nbackends++] = optarg;
      break;
    case OPT_MAXSOCK:
      if (parse_uint(optarg, HWSOCK_MAX_SOCKETS_LIMIT, &n, 10) < 0 || n == 0)
        bad = "--max-sockets";
      u->max_sockets = (unsigned)n;
      break;
    case OPT_POLL:
      if (parse_uint(optarg, HWSOCK_UV_MAX_POLL_US, &n, 10) < 0)
        bad = "--poll-us";
      o->poll_us = (unsigned)n;
      break;
    case OPT_PCAP: o->pcap_path = optarg; break;
    case OPT_PCAPMAX:
      if (parse_uint(optarg, VMM_MAX_PCAP_MIB, &n, 10) < 0 || n == 0)
        bad = "--pcap-max";
      o->pcap_max_mib = (unsigned)n;
      break;
    case OPT_CONTROL: o->control_path = optarg; break;
    case OPT_READY:
      if (parse_uint(optarg, INT_MAX, &n, 10) < 0)
        bad = "--ready-fd";
      o->ready_fd = (int)n;
      break;
    case 'v': o->verbose++; break;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return -1;
    }
    if (bad != NULL) {
      fprintf(stderr, "hwsock-vhost-user: bad value for %s: '%s'\n", bad,
              optarg);
      return -1;
    }
  }
  if (optind < argc || u->socket_path == NULL) {
    fprintf(stderr, "hwsock-vhost-user: %s\n",
            optind < argc ? "unexpected argument" : "--socket is required");
    usage(stderr);
    return -1;
  }
  o->listen_path = u->socket_path;
  return 0;
}

/* ---- the control socket's guests (control.c) ----------------------------- */

/* The one guest: present while a front-end is connected. */
struct vmm_guest {
  vu *u;
};
static struct vmm_guest the_guest;

vmm_guest *vmm_guest_after(const vmm *v, unsigned after) {
  const vu *u = (const vu *)v; /* v is the first member of vu */
  if (u->conn == NULL || u->conn->id <= after)
    return NULL;
  the_guest.u = (vu *)u;
  return &the_guest;
}

void vmm_guest_get_info(const vmm_guest *g, vmm_guest_info *out) {
  const vu_conn *c = g->u->conn;
  memset(out, 0, sizeof(*out));
  out->id = c ? c->id : 0;
  out->pid = c ? c->pid : -1;
  for (unsigned i = 0; c && i < c->mem.n; i++)
    out->mem_size += (size_t)c->mem.r[i].size;
  unsigned st = hwsock_device_status(g->u->dev);
  out->status = (st & HWSOCK_STATUS_NEEDS_RESET) ? "needs-reset"
                : (c && c->running)                ? "running"
                                                   : "attaching";
  out->dev = g->u->dev;
}

/* ---- the listening socket ----------------------------------------------- */

static void on_listen(uv_poll_t *h, int status, int events) {
  vu *u = h->data;
  if (status < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "listening socket: %s", uv_strerror(status));
    return;
  }
  int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
        errno != ECONNABORTED)
      vmm_log(HWSOCK_LOG_ERROR, "accept: %s", strerror(errno));
    return;
  }
  /* One front-end at a time: later ones wait in the backlog. */
  uv_poll_stop(&u->listen_poll);
  vu_conn_accept(u, fd);
}

void vu_listen_resume(vu *u) {
  if (!u->v.stopping)
    uv_poll_start(&u->listen_poll, UV_READABLE, on_listen);
}

static void on_closed(uv_handle_t *h) { (void)h; }

static void stop(vu *u, const char *why) {
  if (u->v.stopping)
    return;
  u->v.stopping = 1;
  vmm_log(HWSOCK_LOG_INFO, "stopping: %s", why);
  uv_close((uv_handle_t *)&u->listen_poll, on_closed);
  close(u->listen_fd);
  unlink(u->socket_path);
  vmm_control_stop(&u->v);
  if (u->conn != NULL)
    vu_conn_close(u->conn, "the back-end is stopping");
  uv_close((uv_handle_t *)&u->v.sig_int, on_closed);
  uv_close((uv_handle_t *)&u->v.sig_term, on_closed);
}

static void on_signal(uv_signal_t *h, int signum) {
  stop(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_device_log(void *opaque, int level, const char *msg) {
  vmm_log(level, "device: %s", msg);
}

static int make_device(vu *u) {
  static hwsock_device_ops ops;
  ops.size = sizeof(ops);
  ops.notify = vu_notify;
  ops.needs_reset = vu_needs_reset;
  ops.log = on_device_log;
  hwsock_device_config cfg;
  hwsock_device_config_init(&cfg);
  cfg.num_queues = VU_QUEUES;
  cfg.max_queue_size = VU_MAX_QUEUE_SIZE;
  cfg.max_sockets = u->max_sockets;
  cfg.max_regions = VU_MAX_REGIONS;
  cfg.policy = u->v.policy;
  cfg.backend_loop = &u->v.loop;
  cfg.ops = &ops;
  cfg.opaque = u;
  /* The carrier shows the guest neither our config nor our features. */
  cfg.inband_negotiation = 1;
  int rc = hwsock_device_new(&cfg, &u->dev);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "device: %s", hwsock_strerror(rc));
    return -1;
  }
  for (unsigned i = 0; i < u->v.nplugins; i++) {
    const hwsock_backend_desc *d = hwsock_plugin_desc(u->v.plugins[i]);
    rc = hwsock_device_add_backend(u->dev, d, NULL);
    if (rc < 0) /* e.g. ipx without its options: serve the rest */
      vmm_log(HWSOCK_LOG_WARN, "backend %s not used: %s", d->name,
              hwsock_strerror(rc));
  }
  if (u->v.capture != NULL)
    hwsock_device_set_capture(u->dev, u->v.capture);
  return 0;
}

static int setup_loop(vu *u) {
  u->listen_fd = vmm_listen_unix(&u->v.opt, u->socket_path, SOCK_STREAM);
  if (u->listen_fd < 0)
    return -1;
  int rc = uv_poll_init(&u->v.loop, &u->listen_poll, u->listen_fd);
  if (rc == 0) {
    u->listen_poll.data = u;
    rc = uv_poll_start(&u->listen_poll, UV_READABLE, on_listen);
  }
  if (rc == 0)
    rc = uv_signal_init(&u->v.loop, &u->v.sig_int);
  if (rc == 0)
    rc = uv_signal_init(&u->v.loop, &u->v.sig_term);
  if (rc == 0) {
    u->v.sig_int.data = u->v.sig_term.data = u;
    rc = uv_signal_start(&u->v.sig_int, on_signal, SIGINT);
  }
  if (rc == 0)
    rc = uv_signal_start(&u->v.sig_term, on_signal, SIGTERM);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "event loop: %s", uv_strerror(rc));
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static vu u; /* static: zeroed, and reachable from every callback */
  vmm_log_prog = "hwsock-vhost-user";
  int rc = parse_options(argc, argv, &u);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  vmm_log_level = u.v.opt.verbose >= 2   ? HWSOCK_LOG_DEBUG
                  : u.v.opt.verbose == 1 ? HWSOCK_LOG_INFO
                                         : HWSOCK_LOG_ERROR;
  /* A front-end hanging up mid-reply must cost an EPIPE, not the process. */
  signal(SIGPIPE, SIG_IGN);
  u.listen_fd = -1;
  int status = 1;
  int want_control = u.v.opt.control_path == NULL || u.v.opt.control_path[0];
  if (vmm_control_path(&u.v) < 0 || vmm_load_policy(&u.v) < 0)
    return 1;
  if (vmm_load_backends(&u.v) < 0)
    goto out_backends;
  if ((rc = uv_loop_init(&u.v.loop)) < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "uv_loop_init: %s", uv_strerror(rc));
    goto out_backends;
  }
  if (vmm_open_capture(&u.v) < 0 || make_device(&u) < 0)
    goto out_loop;
  if (setup_loop(&u) < 0 ||
      (want_control && vmm_control_start(&u.v) < 0)) {
    /* Some handles may be half set up: leave them to the exit. The socket
     * file goes only if it is ours: a path we could not listen on may be
     * anything, and is not ours to remove. */
    if (u.listen_fd >= 0)
      unlink(u.socket_path);
    vmm_close_capture(&u.v);
    return 1;
  }
  vmm_log(HWSOCK_LOG_INFO, "listening on %s (guest cid %llu)", u.socket_path,
          (unsigned long long)u.cid);
  if (u.v.control != NULL)
    vmm_log(HWSOCK_LOG_INFO, "control socket %s", u.v.control_path);
  vmm_announce_ready(&u.v);
  uv_run(&u.v.loop, UV_RUN_DEFAULT);
  status = 0;

out_loop:
  hwsock_device_free(u.dev); /* backends close their handles on the loop */
  u.dev = NULL;
  while (uv_loop_close(&u.v.loop) == UV_EBUSY)
    uv_run(&u.v.loop, UV_RUN_DEFAULT);
  vmm_close_capture(&u.v);
out_backends:
  vmm_unload_backends(&u.v);
  hwsock_policy_free(u.v.policy);
  return status;
}
