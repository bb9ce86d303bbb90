/* Internal: the device object shared by lib/device.c (lifecycle, queues,
 * notifications) and lib/dispatch.c (requests). */
#ifndef HWSOCK_LIB_DEVICE_INT_H
#define HWSOCK_LIB_DEVICE_INT_H

#include "hwsock/backend_util.h" /* hwsock_ratelog */
#include "hwsock/device.h"
#include "hwsock/stats.h"
#include "ring.h"

/* capture (capture.c): synthesized stream state of one socket, in an
 * array of max_sockets that exists only while a capture is set. */
typedef struct hwsock__capsock {
  uint8_t started, fin_out, fin_in;
  uint32_t seq_out, seq_in;
  hwsock_addr local, remote;
} hwsock__capsock;

/* Socket slot states. */
enum {
  HWSOCK__S_FREE = 0,
  HWSOCK__S_OPEN,      /* opened, no offload decision yet */
  HWSOCK__S_OFFLOADED, /* bound to a backend socket */
  HWSOCK__S_DECLINED,  /* left to the guest's own stack until CLOSE */
  HWSOCK__S_RESERVED,  /* target id of a pending ACCEPT */
  HWSOCK__S_RESET      /* restored from a snapshot without its host socket
                          (snapshot.c): every call fails with ECONNRESET
                          until CLOSE */
};

/* The socket options the guest set (dispatch.c), one entry per option,
 * its last value, kept until the socket is closed: before the decision
 * (at most HWSOCK_BPRESET_MAX, given to the backend's open()), then those
 * the backend applied after it (appended), so that a restore can give a
 * new host socket all of them (snapshot_sock.c). Room for every option
 * the allow-list lets a guest set (13). */
#define HWSOCK__SOCKOPTS_MAX 16u
_Static_assert(HWSOCK__SOCKOPTS_MAX >= HWSOCK_BPRESET_MAX, "options table");
typedef struct hwsock__presets {
  uint32_t n;
  hwsock_bsockopt opt[HWSOCK__SOCKOPTS_MAX];
} hwsock__presets;

typedef struct hwsock__sock {
  uint8_t state;
  uint8_t scheme;       /* hwsock_scheme from OPEN */
  int16_t backend;      /* index into dev->backends, -1 none */
  void *bsock;          /* backend socket */
  uint32_t inflight;    /* requests of this socket owned by the backend */
  int32_t rule;         /* policy rule that decided, -1 default */
  uint32_t locked;      /* HWSOCK_HOSTOPT_* the policy set: guest may not */
  /* options set while OPEN, for the backend's open() (NULL: none) */
  struct hwsock__presets *preset;
  uint8_t bound;        /* a BIND other than 0.0.0.0 / :: was submitted */
  /* observability (stats.h) */
  uint8_t ss;           /* hwsock_ss_state */
  uint8_t peer_eof, shut_wr, has_remote;
  uint8_t identity;     /* HWSOCK_IDENTITY_* sent on the connection */
  uint8_t quota;        /* holds a unit of the host socket quotas */
  int32_t rule_line;
  hwsock_addr remote;   /* last CONNECT / SEND destination */
  uint64_t bytes_out, bytes_in, reqs_out, reqs_in;
  uint64_t created_ns;
  /* event queue (evq.c, PROTOCOL.md §16) */
  uint32_t window;      /* receive window left: bytes (stream), datagrams */
  uint32_t ev_next;     /* the ready line: next id + 1, 0 at the end */
  uint16_t ev;          /* HWSOCK__EV_* */
} hwsock__sock;

/* hwsock__sock.ev */
#define HWSOCK__EV_IN_LINE 0x001u  /* linked in the ready line (kept by CLOSE:
                                      the line is cleaned lazily) */
#define HWSOCK__EV_PEND_READ 0x002u   /* input waits for a buffer */
#define HWSOCK__EV_PEND_ACCEPT 0x004u /* an ACCEPTABLE event waits */
#define HWSOCK__EV_PEND_WRITE 0x008u  /* a WRITABLE event waits */
#define HWSOCK__EV_WANT_ACCEPT 0x010u /* CREDIT armed WATCH_ACCEPT */
#define HWSOCK__EV_WANT_WRITE 0x020u  /* CREDIT armed WATCH_WRITE */
#define HWSOCK__EV_READING 0x040u     /* an event read is in the backend */
#define HWSOCK__EV_RDONE 0x080u       /* EOF or ERROR delivered */
#define HWSOCK__EV_W_READ 0x100u      /* backend watch armed: READ */
#define HWSOCK__EV_W_WRITE 0x200u     /* backend watch armed: WRITE */
#define HWSOCK__EV_PEND_RESET 0x400u  /* a reset socket (restored without its
                                         host socket) owes an ERROR event */

typedef struct hwsock__backend {
  const hwsock_backend_desc *desc;
  void *instance;
  hwsock_backend_host host;
  struct hwsock_device *dev;
} hwsock__backend;

/* A request in flight. breq is first so that complete() finds the rest. */
typedef struct hwsock__req {
  hwsock_breq breq;
  struct hwsock_device *dev;
  struct hwsock__req *next_free;
  uint16_t queue;
  uint16_t head;
  uint16_t opcode;
  uint8_t in_use;
  uint8_t event;        /* an event-queue read (evq.c), not a request */
  uint8_t own;          /* a step of a restore's re-creation (snapshot_sock.c),
                           on its stack: not from the ring */
  uint8_t again;        /* dispatched again after a restore whose blob
                           carried the counters: counted once already */
  uint32_t sock_id;
  uint32_t new_sock;    /* ACCEPT target */
  uint64_t tag;
  hwsock__chain chain;
  struct iovec *iov;    /* the chain: max_chain_segs entries */
  struct iovec *data;   /* backend's view: max_chain_segs entries */
  hwsock_addr addr;
  uint32_t uri_area;    /* writable bytes reserved for a URI after the
                           response header */
  uint64_t t0_ns;       /* CLOCK_MONOTONIC when popped */
  /* SETSOCKOPT on an offloaded socket: the value, fetched once from guest
   * memory; the backend reads this copy and the device keeps it when the
   * backend applied it (dispatch.c) */
  uint8_t optval[8];
  uint8_t optcopy;      /* optval holds the value */
} hwsock__req;

/* The device's counters: private, so that the public hwsock_device_stats
 * (fixed capacities, appended fields, old layouts) never constrains the hot
 * path and a new opcode changes nothing public. hwsock_device_get_stats()
 * copies them into the caller's struct, up to the caller's size. */
#define HWSOCK__OPS (HWSOCK_OP_MAX_ + 1) /* [0] = unknown opcodes */
typedef struct hwsock__counters {
  uint64_t kicks, requests, requests_by_op[HWSOCK__OPS];
  uint64_t completions, errors;
  uint64_t errors_by_slot[HWSOCK_STATS_ERR_SLOTS];
  uint64_t bad_requests, verdicts[3], needs_reset, resets;
  uint64_t bytes_out, bytes_in, notifies, notifies_suppressed;
  uint64_t latency[HWSOCK__OPS][HWSOCK_LAT_BUCKETS];
  uint64_t latency_sum_ns[HWSOCK__OPS]; /* the histograms' sums */
  uint64_t ev_no_buffer; /* evq.c: an event waited, the event queue empty */
} hwsock__counters;
_Static_assert(HWSOCK__OPS <= HWSOCK_STATS_OPS, "public opcode slots");

struct hwsock_device {
  hwsock_device_config cfg; /* defaults applied */
  hwsock_device_ops ops;    /* zero-filled beyond what the caller gave */
  hwsock_policy *own_policy;
  const hwsock_policy *policy;

  hwsock__memmap mem;
  unsigned status;
  int broken;
  int reset_reason; /* HWSOCK_RESET_* while broken, else 0 */
  uint64_t features;
  int negotiated;        /* in-band: a NEGOTIATE succeeded since the reset */
  unsigned queues_ready; /* bitmask */
  int quiesced;          /* hwsock_device_quiesce: no request is taken */
  hwsock__vq vq[HWSOCK_MAX_QUEUES];
  unsigned notify_pending; /* bitmask */
  unsigned stalled;        /* bitmask: stopped at the in-flight limit */
  unsigned backlog;        /* bitmask: stopped at kick_budget, work left */
  int in_teardown;         /* completions are not written */

  hwsock__backend backends[HWSOCK_MAX_BACKENDS];
  unsigned nbackends;

  hwsock__sock *socks;
  hwsock__req *reqs;
  hwsock__req *free_reqs;
  unsigned inflight;
  struct iovec *iov_pool;
  char uri_scratch[HWSOCK_URI_MAX + 1];

  hwsock__counters counters;
  /* quota.c: host sockets held (offloaded, not denied, and pending ACCEPT
   * targets) and the rate limit of the refusals' log line */
  unsigned host_socks;
  hwsock_ratelog quota_log; /* refusals: one log line a second */
  struct hwsock_capture *capture; /* NULL: capture off */
  /* capture.c's entry points, set with capture: the capture code lives in
   * libhwsock-capture, which libhwsock does not link (nor libpcap) */
  const struct hwsock__capture_hooks *capture_hooks;
  hwsock__capsock *capsocks;      /* max_sockets entries, or NULL */
  /* evq.c: sockets with readiness waiting for an event buffer, FIFO of
   * ids + 1 (0: empty) linked through hwsock__sock.ev_next */
  uint32_t ev_head, ev_tail;
  /* handover.c: hwsock_device_restore_held() holds the requests in flight
   * (walked, neither completed nor submitted) until resume_held */
  int held;
  int held_counted; /* the blob's counters counted the held requests */
  /* Every id at or above it is FREE (ids a request named or a restore
   * filled are below it): a reset and the statistics scan up to it, not
   * all max_sockets ids (65,536 by default: 9 MiB, ~2 ms to scan). Raised
   * by hwsock__sock_seen() before an id can leave FREE; 0 after a reset. */
  uint32_t sock_hwm;
};

static inline void hwsock__sock_seen(hwsock_device *dev, uint32_t id) {
  if (id >= dev->sock_hwm)
    dev->sock_hwm = id + 1;
}

/* evq.c: the event queue (PROTOCOL.md §16) */
/* The event queue's index, or -1 when F_EVENT_QUEUE is not negotiated. */
int hwsock__evq_index(const struct hwsock_device *dev);
/* Fills event buffers for the sockets in the ready line. */
void hwsock__evq_service(struct hwsock_device *dev);
/* CREDIT: 0 or a negative HWSOCK_E*. */
int hwsock__evq_credit(struct hwsock_device *dev, uint32_t id, uint32_t add,
                       uint32_t watch);
/* (Re)arms the backend watches the socket's window and wants call for. */
void hwsock__evq_arm(struct hwsock_device *dev, uint32_t id);
/* A backend completed an event read. */
void hwsock__evq_complete(struct hwsock_device *dev, hwsock__req *req,
                          int status, size_t len);
/* host->ready of every backend. */
void hwsock__evq_ready(const hwsock_backend_host *host, void *cookie,
                       unsigned events);
/* Reset: the line is emptied. */
void hwsock__evq_reset(struct hwsock_device *dev);
/* A socket restored reset whose guest waits on the event queue (a window,
 * an armed watch, a reset not yet reported) gets one ERROR event
 * (ECONNRESET) there; nothing else. */
void hwsock__evq_report_reset(struct hwsock_device *dev, uint32_t id);
/* Takes the next chain of queue `q` into the first free request (there
 * must be one): it leaves the free list, in use, with its queue and head
 * set (devstate.c). 1 and *out: taken; 0: the queue is empty (kicks are
 * re-enabled and the ring looked at once more); HWSOCK_ENEEDSRESET: the
 * ring is broken, and the device now says so. */
int hwsock__take_request(struct hwsock_device *dev, unsigned q,
                         hwsock__req **out);
/* The device found the ring broken (device.c). */
void hwsock__set_broken(struct hwsock_device *dev, unsigned q,
                        const char *why);

/* dispatch.c */
void hwsock__dispatch(struct hwsock_device *dev, hwsock__req *req);

/* sockopt.c */
/* The socket options a guest may get (set == 0) or set (set != 0). */
int hwsock__sockopt_allowed(uint32_t level, uint32_t opt, int set);
/* The value length of a settable option: 8 for SO_LINGER, else 4. */
size_t hwsock__sockopt_len(uint32_t level, uint32_t opt);
/* The HWSOCK_HOSTOPT_* bit a guest option stands for (hostopts.h), or 0. */
uint32_t hwsock__hostopt_bit(uint32_t level, uint32_t opt);

/* snapshot_sock.c: restore gives socket id (its scheme, options and bound
 * flag set) a host socket again on `local`, listening or connected to
 * `peer` (NULL: none), as the device's policy allows now. 0: offloaded;
 * else why not, and the socket is left OPEN for the caller. */
int hwsock__snap_recreate(struct hwsock_device *dev, uint32_t id,
                          const hwsock_addr *local, const hwsock_addr *peer,
                          int listener);
/* A backend completed one of those steps (req->own). */
void hwsock__snap_step_done(hwsock__req *req, int status);
void hwsock__backend_complete(hwsock_breq *breq, int status, size_t len);
void hwsock__sock_close(struct hwsock_device *dev, uint32_t id);

/* stats.c */
uint64_t hwsock__now_ns(int clock);
/* Asks the socket's backend what it knows (its optional info() op, when
 * the plugin's ops are new enough to have it). 0 with *bi filled, or a
 * negative HWSOCK_E* (HWSOCK_EOPNOTSUPP without the op). */
HWSOCK_EXTERN int hwsock__sock_info(const struct hwsock_device *dev,
                                    const hwsock__sock *s,
                                    hwsock_bsock_info *bi);
void hwsock__stats_complete(struct hwsock_device *dev, hwsock__req *req,
                            int status, size_t len);
void hwsock__stats_sock(struct hwsock_device *dev, hwsock__req *req,
                        int status, size_t len);

/* capture.c (libhwsock-capture): what the device calls while
 * dev->capture is set, installed by hwsock_device_set_capture(). The
 * capture library reaches back only through the HWSOCK_EXTERN hwsock__
 * functions here, exported by libhwsock in its HWSOCK_PRIVATE node: the
 * two libraries are one build and must be installed together. */
typedef struct hwsock__capture_hooks {
  void (*event)(struct hwsock_device *dev, hwsock__req *req, int status,
                size_t len);
  void (*close)(struct hwsock_device *dev, hwsock__sock *s);
} hwsock__capture_hooks;

/* quota.c: a unit of max_host_sockets and of the shared quota, or
 * HWSOCK_EMFILE (logged, rate-limited); _put gives one back. */
int hwsock__quota_take(struct hwsock_device *dev);
void hwsock__quota_put(struct hwsock_device *dev);

/* device.c */
/* HWSOCK_F_* the device offers: transport bits and the device classes its
 * backends serve. */
uint64_t hwsock__device_features(const struct hwsock_device *dev);
uint64_t hwsock__class_features(const struct hwsock_device *dev);
HWSOCK_EXTERN void hwsock__device_log(struct hwsock_device *dev, int level,
                                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hwsock__req_release(struct hwsock_device *dev, hwsock__req *req);
/* Writes nothing, pushes head with used len `len`. */
void hwsock__req_push(struct hwsock_device *dev, hwsock__req *req,
                      uint32_t len);

#endif
