/* libhwsock observability: the device's socket table, counters and latency
 * histograms (the analogue of /proc/net/hwsock).
 *
 * Everything here reads device state: call on the device thread, like every
 * hwsock_device_* function. Results are snapshots owned by the caller. */
#ifndef HWSOCK_STATS_H
#define HWSOCK_STATS_H

#include "hwsock/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Socket states, named as ss(8) names TCP states. */
typedef enum hwsock_ss_state {
  HWSOCK_SS_UNCONN = 0,   /* not connected (undecided, bound, or UDP/IPX) */
  HWSOCK_SS_SYN_SENT = 1, /* CONNECT in progress */
  HWSOCK_SS_ESTAB = 2,
  HWSOCK_SS_LISTEN = 3,
  HWSOCK_SS_CLOSE_WAIT = 4, /* the peer shut down its side */
  HWSOCK_SS_FIN_WAIT = 5,   /* the guest shut down its side */
  HWSOCK_SS_LAST_ACK = 6,   /* both sides shut down */
  HWSOCK_SS_CLOSED = 7,     /* connect failed or the connection broke */
  HWSOCK_SS_DENIED = 8      /* bound to the deny backend */
} hwsock_ss_state;

/* "ESTAB", "SYN-SENT", ... Static string. */
HWSOCK_EXTERN const char *hwsock_ss_name(int state);

/* One offloaded socket. */
typedef struct hwsock_sock_info {
  uint32_t size;          /* sizeof(hwsock_sock_info) as the library built it */
  uint32_t id;            /* guest socket id */
  int scheme;             /* hwsock_scheme */
  int state;              /* hwsock_ss_state */
  const char *backend;    /* backend name (static for the device's life) */
  int rule;               /* policy rule that decided, -1 = the default */
  int rule_line;          /* its line in the policy file, 0 = default */
  int host_fd;            /* the backend's host fd, -1 when none/unknown */
  char local[HWSOCK_URI_MAX + 1];  /* "" when unknown */
  char remote[HWSOCK_URI_MAX + 1]; /* "" when unknown */
  uint64_t bytes_out;     /* guest -> host (SEND) */
  uint64_t bytes_in;      /* host -> guest (RECV) */
  uint64_t requests_out;  /* SEND requests completed */
  uint64_t requests_in;   /* RECV requests completed */
  uint32_t inflight;      /* requests the backend holds now */
  uint64_t created_ns;    /* CLOCK_REALTIME of the offload decision */
  /* ---- appended (present when size covers it) ---- */
  uint32_t identity;      /* HWSOCK_IDENTITY_* the host sent ahead of the
                             guest's bytes (docs/IDENTITY.md) */
} hwsock_sock_info;

/* Calls cb once per offloaded socket, in id order; stops early when cb
 * returns non-zero (and returns that value). 0 otherwise. */
typedef int (*hwsock_sock_cb)(const hwsock_sock_info *info, void *arg);
HWSOCK_EXTERN int hwsock_device_foreach_socket(const hwsock_device *dev,
                                               hwsock_sock_cb cb, void *arg);

/* Latency histograms: bucket i counts completions whose latency (request
 * popped -> completion written) was in [2^i, 2^(i+1)) microseconds; bucket 0
 * also holds everything under 1 us; the last bucket everything above. */
#define HWSOCK_LAT_BUCKETS 32
#define HWSOCK_STATS_ERR_SLOTS 160
/* Opcode slots of the per-opcode arrays: room for opcodes up to 31, so
 * that a new opcode does not move the fields again. (Version 0.1.0 sized
 * them by HWSOCK_OP_MAX_ = 12, i.e. 13 slots; hwsock_device_get_stats still
 * fills that layout for a caller whose size is at most that struct's.) */
#define HWSOCK_STATS_OPS 32

typedef struct hwsock_device_stats {
  uint32_t size;          /* set by the caller: sizeof(hwsock_device_stats) */
  uint64_t kicks;         /* hwsock_device_kick() calls */
  uint64_t requests;      /* chains popped */
  uint64_t requests_by_op[HWSOCK_STATS_OPS]; /* [0] = unknown opcodes */
  uint64_t completions;
  uint64_t errors;        /* completions with a non-zero status */
  uint64_t errors_by_slot[HWSOCK_STATS_ERR_SLOTS]; /* see hwsock_stats_errors */
  uint64_t bad_requests;  /* malformed requests (error completions) */
  uint64_t verdicts[3];   /* by hwsock_action: deny, offload, decline */
  uint64_t needs_reset;   /* needs-reset episodes */
  uint64_t resets;        /* hwsock_device_reset() calls */
  uint64_t bytes_out;     /* guest -> host payload */
  uint64_t bytes_in;      /* host -> guest payload */
  uint64_t notifies;      /* ops->notify() calls */
  uint64_t notifies_suppressed; /* avoided by event index / NO_INTERRUPT */
  uint64_t sockets_open;  /* ids in use now (any state) */
  uint64_t sockets_offloaded; /* offloaded now */
  uint64_t latency[HWSOCK_STATS_OPS][HWSOCK_LAT_BUCKETS];
  /* ---- appended in 0.3 (filled when size covers it) ---- */
  uint64_t latency_sum_ns[HWSOCK_STATS_OPS]; /* sum of each histogram's
                                                latencies, nanoseconds */
  /* ---- appended in 0.3 (filled when size covers it) ---- */
  uint64_t ev_no_buffer;  /* event queue (PROTOCOL.md §16): times a socket
                             with an event to deliver found no event buffer
                             posted (the guest's pool had run dry), as a
                             NIC counts receives with no descriptor */
} hwsock_device_stats;

_Static_assert(HWSOCK_OP_MAX_ < HWSOCK_STATS_OPS, "opcode slots");

/* Fills *out up to out->size bytes (set size first: sizeof(*out)); the
 * library never writes beyond it, and sets size to what it filled. The
 * struct is a copy made for the caller, not the device's own counters: its
 * capacities are fixed (HWSOCK_STATS_OPS opcode slots), later versions only
 * append. A size of exactly the 0.1.0 struct gets the 0.1.0 layout (13
 * opcode slots). */
HWSOCK_EXTERN void hwsock_device_get_stats(const hwsock_device *dev,
                                           hwsock_device_stats *out);

/* Count of completions that failed with err (a negative HWSOCK_E*). */
HWSOCK_EXTERN uint64_t hwsock_stats_errors(const hwsock_device_stats *s,
                                           int err);

/* Opcode name ("CONNECT"), or NULL. Static string. */
HWSOCK_EXTERN const char *hwsock_op_name(int opcode);

/* JSON renderings (one object, no newline) into buf. They return the
 * length, or HWSOCK_ENOSPC when buf is too small. */
HWSOCK_EXTERN int hwsock_sock_info_json(const hwsock_sock_info *info,
                                        char *buf, size_t size);
HWSOCK_EXTERN int hwsock_stats_json(const hwsock_device_stats *s, char *buf,
                                    size_t size);

#ifdef __cplusplus
}
#endif
#endif
