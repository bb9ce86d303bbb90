/* hwsock-vmm: a loopback VMM embedding libhwsock (docs/EMBEDDING.md).
 *
 * One libuv loop serves every attached guest. Each guest is a process that
 * connected to the listening unix socket (hwsock/loopback.h); it gets its
 * own memfd as guest memory, its own hwsock_device and its own kick/call
 * eventfds, and is torn down alone when it hangs up or misbehaves.
 *
 *   main.c      startup, the listening socket, signals, shutdown
 *   options.c   command line
 *   backends.c  which backend modules to load, and loading them
 *   guest.c     one attached guest: memory, device, messages, teardown
 *   control.c   the control socket: socket table, counters, guests
 *               (docs/OBSERVABILITY.md), for hwsock-stat
 *   ipx.c       --ipx-*: each guest's IPX network, node and UDP endpoint
 *               (a slot), and the ipx backend's options (docs/IPX.md)
 *   listen.c    the listening unix sockets: mode, group, stale files
 *   limits.c    the fd limit, the host socket quotas, accept backoff
 *   setup.c     policy, capture, control path, readiness (shared)
 *   takeover.c  --takeover: handing every guest, host socket and listening
 *               socket to a new VMM process (docs/EMBEDDING.md §12)
 *   log.c       one line per event on stderr */
#ifndef HWSOCK_VMM_H
#define HWSOCK_VMM_H

#include <uv.h>

#include "hwsock/backend_util.h"
#include "hwsock/capture.h"
#include "hwsock/device.h"
#include "hwsock/loopback.h"
#include "hwsock/policy.h"
#include "hwsock/uv.h"

/* Guest physical address of each guest's memory: above 4 GiB, like the
 * RAM a real VMM maps high, so that a guest bug writing small addresses
 * hits nothing. Sent to the guest in the HELLO reply (field b). */
#define VMM_GPA_BASE 0x100000000ull

#define VMM_DEFAULT_MEM_MIB 64u
#define VMM_MAX_MEM_MIB 16384u
#define VMM_DEFAULT_MAX_GUESTS 64u
#define VMM_MAX_GUESTS_LIMIT 4096u
#define VMM_MAX_PLUGINS HWSOCK_MAX_BACKENDS
/* Messages read from one guest per wake-up, so that one chatty guest
 * cannot starve the others (the poll is level-triggered: the rest wait
 * for the next turn). */
#define VMM_MSGS_PER_WAKEUP 16u
#define VMM_LISTEN_BACKLOG 16
/* Suffix of the default control socket path (--listen PATH + suffix). */
#define VMM_CONTROL_SUFFIX ".ctl"
#define VMM_MAX_PCAP_MIB 65536u
/* --socket-mode: the guest and control sockets are the VMM user's alone */
#define VMM_DEFAULT_SOCKET_MODE 0600u
/* --ipx-*: guest slot i has node NODE_BASE + i + 1 and UDP port BASE + i.
 * Each slot's ipx backend lists every other slot and every --ipx-peer as a
 * peer, and the backend takes at most VMM_IPX_MAX_PEERS of them. */
#define VMM_IPX_DEFAULT_PORT 213u /* RFC 1234's port (privileged) */
#define VMM_IPX_DEFAULT_SLOTS 16u
#define VMM_IPX_MAX_PEERS 64u     /* the ipx backend's IPX_MAX_PEERS */
#define VMM_IPX_MAX_SLOTS (VMM_IPX_MAX_PEERS + 1u)
#define VMM_IPX_DEFAULT_NODE_BASE "02005e000000"
#define VMM_IPX_DEFAULT_BIND "127.0.0.1"

typedef struct vmm_options {
  const char *listen_path;  /* --listen */
  const char *policy_path;  /* --policy, NULL: built-in default */
  const char *backend_dir;  /* --backend-dir, NULL: default, "": none */
  const char *backends[VMM_MAX_PLUGINS]; /* --backend, in order */
  unsigned nbackends;
  unsigned mem_mib;    /* --mem */
  unsigned queues;     /* --queues */
  unsigned max_guests; /* --max-guests */
  unsigned max_sockets; /* --max-sockets, 0: the library's default */
  unsigned poll_us;    /* --poll-us: adaptive polling, 0: off */
  int verbose;         /* -v count */
  int once;            /* --once */
  int ready_fd;        /* --ready-fd, -1: none */
  const char *control_path; /* --control, NULL: listen_path + ".ctl",
                               "": no control socket */
  const char *pcap_path;    /* --pcap, NULL: no capture */
  unsigned pcap_max_mib;    /* --pcap-max, 0: the library's default */
  const char *ipx_net;       /* --ipx-net HEX8, NULL: no IPX */
  unsigned ipx_port;         /* --ipx-port: slot 0's UDP port */
  unsigned ipx_slots;        /* --ipx-slots */
  const char *ipx_node_base; /* --ipx-node-base HEX12 */
  const char *ipx_bind;      /* --ipx-bind IP */
  const char *ipx_peers[VMM_IPX_MAX_PEERS]; /* --ipx-peer NODE@IP:PORT */
  unsigned ipx_npeers;
  int ipx_other;             /* some --ipx-* other than --ipx-net given */
  unsigned socket_mode;      /* --socket-mode: the listening sockets' mode */
  long socket_gid;           /* --socket-group: their group, -1: unchanged */
  unsigned guest_sockets;    /* --guest-sockets, 0: derived (limits.c) */
  unsigned vmm_sockets;      /* --vmm-sockets, 0: derived (limits.c) */
  unsigned kick_budget;      /* --kick-budget, 0: the library's default */
  const char *identity_name; /* --identity NAME, NULL: none */
  const char *identity_key;  /* --identity-key FILE, NULL: no HMAC */
  int takeover;              /* --takeover */
} vmm_options;

/* limits.c: a retry delay that doubles on each failure up to a cap, and a
 * log line that is written at most once per interval, counting the rest. */
/* fds the VMM needs besides the guests': stdio, epoll, libuv's signal and
 * async pipes and its spare EMFILE fd, the listening and control sockets,
 * the capture, backend modules being opened, and 16 control clients. */
#define VMM_FD_RESERVE 64u
/* Per attached guest: its connection, the memfd until HELLO is answered,
 * an IPX slot's UDP socket; plus a kick and a call eventfd per queue. */
#define VMM_FDS_PER_GUEST_BASE 3u
#define VMM_BACKOFF_MIN_MS 10u
#define VMM_BACKOFF_MAX_MS 1000u
#define VMM_RATELOG_INTERVAL_NS 1000000000ull
typedef struct vmm_backoff {
  unsigned delay_ms; /* 0: not backing off */
} vmm_backoff;
typedef hwsock_ratelog vmm_ratelog; /* hwsock/backend_util.h */

typedef struct vmm_guest vmm_guest;
typedef struct vmm_control vmm_control;
typedef struct vmm_ipx vmm_ipx;

typedef struct vmm {
  vmm_options opt;
  uv_loop_t loop;
  int listen_fd;
  uv_poll_t listen_poll;
  uv_timer_t listen_timer;   /* accept backoff: resumes listen_poll */
  vmm_backoff listen_backoff;
  vmm_ratelog listen_log, control_log;
  hwsock_quota quota;        /* --vmm-sockets, shared by every device */
  unsigned guest_sockets;    /* --guest-sockets, after limits.c */
  uv_signal_t sig_int, sig_term;
  hwsock_policy *policy;
  hwsock_plugin *plugins[VMM_MAX_PLUGINS];
  unsigned nplugins;
  vmm_guest *guests; /* attached guests, newest first */
  unsigned nguests;
  unsigned next_id;  /* guest numbers in logs start at 1 */
  int stopping;
  hwsock_capture *capture; /* --pcap: shared by every guest's device */
  vmm_control *control;    /* NULL when there is no control socket */
  char control_path[108];  /* sun_path of the control socket */
  vmm_ipx *ipx;            /* --ipx-net: the slots; NULL without IPX */
  hwsock_identity identity; /* --identity (identity.size 0: none) */
  uint8_t identity_key[HWSOCK_IDENTITY_KEY_MAX]; /* --identity-key */
  /* takeover.c: the socket a new VMM connects to, listen_path +
   * VMM_TAKEOVER_SUFFIX (-1: none); a hand-over in progress; set once
   * a new VMM has everything: nothing is unlinked at exit */
  int takeover_fd;
  uv_poll_t takeover_poll;
  uv_timer_t takeover_timer; /* a hand-over waits for the sockets to settle */
  struct vmm_handover *handover;
  int handed_over;
  int adopt_control;    /* --takeover: adopt_control_fd is the old VMM's */
  int adopt_control_fd; /* control socket (zeroed vmm: no flag, no fd) */
  char takeover_path[108];
} vmm;

/* log.c: HWSOCK_LOG_* levels; shown when level <= vmm_log_level. Lines
 * start with vmm_log_prog ("hwsock-vmm" unless the program sets it). */
extern int vmm_log_level;
extern const char *vmm_log_prog;
void vmm_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* limits.c: raises the fd limit and derives the socket quotas from it
 * (v->quota, v->guest_sockets). 0 or -1 (reported). */
int vmm_limits_setup(vmm *v);
/* True for the accept() errors of a process out of fds or memory, which
 * the next call meets too until something is closed: back off. */
int vmm_fd_shortage(int err);
/* One more failure: the next delay (10 ms, doubling, at most 1 s). */
void vmm_backoff_failed(vmm_backoff *b);
void vmm_log_limited(vmm_ratelog *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* options.c: 0 to run, 1 when --help was printed, -1 on a usage error
 * (already reported). */
int vmm_parse_options(int argc, char **argv, vmm_options *o);

/* identity.c: --identity/--identity-key into v->identity (key file read
 * here, before any guest). 0 or -1 (reported). The device config's
 * identity: &v->identity, or NULL without --identity. */
int vmm_identity_setup(vmm *v);
const hwsock_identity *vmm_identity(const vmm *v);
void vmm_identity_clear(vmm *v);

/* backends.c: loads the modules the options name into v->plugins.
 * 0 or -1 (reported). vmm_unload_backends() after every device is gone. */
int vmm_load_backends(vmm *v);
void vmm_unload_backends(vmm *v);

/* guest.c: takes over an accepted connection (closes it on failure). */
void vmm_guest_attach(vmm *v, int fd);
/* Starts tearing down a guest; its memory is released once libuv has
 * closed its handles. Safe to call twice. */
void vmm_guest_detach(vmm_guest *g, int level, const char *why);

/* guest.c: what the control socket reports of a guest. */
typedef struct vmm_guest_info {
  unsigned id;
  long pid;           /* of the peer at attach (SO_PEERCRED), -1 unknown */
  size_t mem_size;    /* guest memory bytes */
  const char *status; /* "attaching", "running", "needs-reset" */
  hwsock_device *dev; /* valid until the guest detaches */
} vmm_guest_info;
void vmm_guest_get_info(const vmm_guest *g, vmm_guest_info *out);
/* The attached guest with the smallest id above `after` (0: the first),
 * or NULL. Ids only grow, so a walk by id survives guests detaching
 * between two calls. */
vmm_guest *vmm_guest_after(const vmm *v, unsigned after);

/* control.c: starts serving the control socket at v->control_path on
 * v->loop (0, or -1 reported); vmm_control_stop() closes it and every
 * client (their handles close on the loop) and removes the socket file. */
int vmm_control_start(vmm *v);
void vmm_control_stop(vmm *v);
/* The control socket's listening fd (still the control's), -1: none. */
int vmm_control_fd(const vmm *v);

/* ipx.c: checks the --ipx-* options and prepares every slot's backend
 * options (0, or -1 reported); nothing to do without --ipx-net.
 * vmm_ipx_free() at exit. */
int vmm_ipx_setup(vmm *v);
void vmm_ipx_free(vmm *v);
/* The lowest free slot, now taken (-1: none free, or no IPX), and its
 * options string for the ipx backend (valid until the slot is released):
 * with fd= when the VMM could bind the slot's UDP socket itself. */
int vmm_ipx_claim(vmm *v);
const char *vmm_ipx_options(const vmm *v, int slot);
/* "net 0000cafe node 02005e000001 udp 127.0.0.1:213" of a slot, for logs. */
void vmm_ipx_describe(const vmm *v, int slot, char *buf, size_t len);
/* Frees a slot taken by vmm_ipx_claim(); -1 is ignored. */
void vmm_ipx_release(vmm *v, int slot);
/* Takeover: the guest's slot `slot` again, on the UDP socket fd the old VMM
 * handed over (ours from now on; closed on failure). 0, or -1. */
int vmm_ipx_claim_slot(vmm *v, int slot, int fd);
/* A claimed slot's UDP socket (the VMM's: the backend has a duplicate),
 * -1 when the backend bound its own. */
int vmm_ipx_fd(const vmm *v, int slot);

/* setup.c, shared with tools/hwsock-vhost-user: v->control_path from
 * --control or listen_path + VMM_CONTROL_SUFFIX; --policy (or the built-in
 * policy) into v->policy; --pcap into v->capture (closed, with its counts
 * logged, by vmm_close_capture once every device is gone); "ready\n" on
 * --ready-fd. The int functions return 0 or -1 (reported). */
int vmm_control_path(vmm *v);
int vmm_load_policy(vmm *v);
int vmm_open_capture(vmm *v);
void vmm_close_capture(vmm *v);
void vmm_announce_ready(vmm *v);

/* main.c: a guest finished its teardown (for --once). */
void vmm_guest_gone(vmm *v);
/* main.c: stops accepting, detaches every guest, lets the loop run dry. */
void vmm_stop(vmm *v, const char *why);

/* guest.c, for takeover.c: what a new VMM needs of a guest besides its
 * fds and device state. */
typedef struct vmm_guest_desc {
  unsigned id, nqueues, hello_done;
  long pid, uid, gid;
  size_t mem_size;
  int ipx_slot; /* its --ipx-net slot, whose UDP socket is the last fd;
                   -1: none */
} vmm_guest_desc;
/* on: the guest's messages wait in its socket and its device takes no
 * request (quiesced); off: served again. */
void vmm_guest_pause(vmm_guest *g, int on);
/* Fills d and fds (the connection, the memfd, then each queue's kick and
 * call eventfd: 2 + 2 * nqueues, and its IPX slot's UDP socket if any;
 * still the guest's); returns the count. */
unsigned vmm_guest_handover_fds(const vmm_guest *g, vmm_guest_desc *d,
                                int *fds);
/* A guest from a handed-over description and fds (every one of them is
 * the new guest's, or closed on failure): its memory mapped, a fresh
 * device made; its socket is not read until vmm_guest_start(). NULL on
 * failure (logged). */
vmm_guest *vmm_guest_adopt(vmm *v, const vmm_guest_desc *d, const int *fds,
                           unsigned nfds);
hwsock_device *vmm_guest_device(const vmm_guest *g);
unsigned vmm_guest_get_id(const vmm_guest *g);
/* 0, or -1 when the guest was detached (logged). */
int vmm_guest_start(vmm_guest *g);

/* takeover.c */
#define VMM_TAKEOVER_SUFFIX ".takeover"
/* Serves v->takeover_path (adopting v->takeover_fd when >= 0): 0, or -1
 * (logged; the VMM runs without it). */
int vmm_takeover_listen(vmm *v);
void vmm_takeover_stop(vmm *v);
/* --takeover: takes everything over from the VMM serving listen_path:
 * v->listen_fd, the takeover and control sockets, every guest. 0, or -1
 * (logged; the old VMM goes on serving). */
int vmm_takeover_receive(vmm *v);
/* listen.c: a listening unix socket of `type` at path, replacing a stale
 * socket file (one nobody listens on), with o's --socket-mode and
 * --socket-group. Nonblocking, close-on-exec. The fd, or -1 (reported). */
int vmm_listen_unix(const vmm_options *o, const char *path, int type);

#endif
