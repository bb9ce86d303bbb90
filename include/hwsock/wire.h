/* libhwsock wire ABI: what crosses guest memory. docs/PROTOCOL.md is the
 * normative description; this header is its machine-checked twin.
 *
 * Transport: virtio 1.x split virtqueues (descriptor table, available ring,
 * used ring). Every request is one descriptor chain:
 *
 *   device-readable:  hwsock_req_hdr (32 bytes) | URI (uri_len bytes) | data
 *   device-writable:  hwsock_resp_hdr (32 bytes) | payload
 *
 * All multi-byte fields are little-endian. Access them only through the
 * hwsock_le*() helpers below, never by plain loads, so that the layout is the
 * same on every host. Structs here describe memory; they are never passed by
 * value across the ABI. */
#ifndef HWSOCK_WIRE_H
#define HWSOCK_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- little-endian accessors ------------------------------------------ */

typedef struct { uint8_t b[2]; } hwsock_le16;
typedef struct { uint8_t b[4]; } hwsock_le32;
typedef struct { uint8_t b[8]; } hwsock_le64;

static inline uint16_t hwsock_le16_get(const hwsock_le16 *p) {
  return (uint16_t)(p->b[0] | (p->b[1] << 8));
}
static inline uint32_t hwsock_le32_get(const hwsock_le32 *p) {
  return (uint32_t)p->b[0] | ((uint32_t)p->b[1] << 8) |
         ((uint32_t)p->b[2] << 16) | ((uint32_t)p->b[3] << 24);
}
static inline uint64_t hwsock_le64_get(const hwsock_le64 *p) {
  return (uint64_t)hwsock_le32_get((const hwsock_le32 *)&p->b[0]) |
         ((uint64_t)hwsock_le32_get((const hwsock_le32 *)&p->b[4]) << 32);
}
static inline void hwsock_le16_set(hwsock_le16 *p, uint16_t v) {
  p->b[0] = (uint8_t)v;
  p->b[1] = (uint8_t)(v >> 8);
}
static inline void hwsock_le32_set(hwsock_le32 *p, uint32_t v) {
  p->b[0] = (uint8_t)v;
  p->b[1] = (uint8_t)(v >> 8);
  p->b[2] = (uint8_t)(v >> 16);
  p->b[3] = (uint8_t)(v >> 24);
}
static inline void hwsock_le64_set(hwsock_le64 *p, uint64_t v) {
  hwsock_le32_set((hwsock_le32 *)&p->b[0], (uint32_t)v);
  hwsock_le32_set((hwsock_le32 *)&p->b[4], (uint32_t)(v >> 32));
}

/* Ring indices and flags shared with the other side change under our feet:
 * these read/write them with one access each (volatile) so that a field is
 * fetched exactly once per use. Callers add the memory barriers. */
static inline uint16_t hwsock_le16_load(const volatile hwsock_le16 *p) {
  uint16_t v = *(const volatile uint16_t *)(const volatile void *)p;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap16(v);
#endif
  return v;
}
static inline void hwsock_le16_store(volatile hwsock_le16 *p, uint16_t v) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap16(v);
#endif
  *(volatile uint16_t *)(volatile void *)p = v;
}

/* ---- virtio split virtqueue layout (virtio 1.x, section 2.7) ---------- */

#define HWSOCK_VRING_DESC_F_NEXT 1u
#define HWSOCK_VRING_DESC_F_WRITE 2u
#define HWSOCK_VRING_DESC_F_INDIRECT 4u
#define HWSOCK_VRING_AVAIL_F_NO_INTERRUPT 1u
#define HWSOCK_VRING_USED_F_NO_NOTIFY 1u

/* Largest queue the device accepts (virtio's limit). */
#define HWSOCK_VRING_MAX_SIZE 32768u

typedef struct hwsock_vring_desc {
  hwsock_le64 addr;  /* guest physical address */
  hwsock_le32 len;   /* bytes */
  hwsock_le16 flags; /* HWSOCK_VRING_DESC_F_* */
  hwsock_le16 next;  /* index of the next descriptor when F_NEXT */
} hwsock_vring_desc;

/* avail: flags, idx, ring[size], used_event (with EVENT_IDX) */
typedef struct hwsock_vring_avail {
  hwsock_le16 flags;
  hwsock_le16 idx;
  hwsock_le16 ring[]; /* followed by used_event */
} hwsock_vring_avail;

typedef struct hwsock_vring_used_elem {
  hwsock_le32 id;  /* head index of the completed chain */
  hwsock_le32 len; /* bytes the device wrote into the writable part */
} hwsock_vring_used_elem;

/* used: flags, idx, ring[size], avail_event (with EVENT_IDX) */
typedef struct hwsock_vring_used {
  hwsock_le16 flags;
  hwsock_le16 idx;
  hwsock_vring_used_elem ring[]; /* followed by avail_event */
} hwsock_vring_used;

_Static_assert(sizeof(hwsock_vring_desc) == 16, "vring desc is 16 bytes");
_Static_assert(offsetof(hwsock_vring_desc, len) == 8, "desc.len at 8");
_Static_assert(offsetof(hwsock_vring_desc, flags) == 12, "desc.flags at 12");
_Static_assert(offsetof(hwsock_vring_desc, next) == 14, "desc.next at 14");
_Static_assert(sizeof(hwsock_vring_avail) == 4, "avail header is 4 bytes");
_Static_assert(sizeof(hwsock_vring_used_elem) == 8, "used elem is 8 bytes");
_Static_assert(sizeof(hwsock_vring_used) == 4, "used header is 4 bytes");

/* Sizes in bytes of the three parts of a queue of `size` entries. Alignment
 * (virtio 1.x): desc 16, avail 2, used 4. */
static inline size_t hwsock_vring_desc_bytes(unsigned size) {
  return 16u * (size_t)size;
}
static inline size_t hwsock_vring_avail_bytes(unsigned size) {
  return 4u + 2u * (size_t)size + 2u; /* + used_event */
}
static inline size_t hwsock_vring_used_bytes(unsigned size) {
  return 4u + 8u * (size_t)size + 2u; /* + avail_event */
}

/* virtio's vring_need_event(): notify when new_idx passed event_idx+1. */
static inline int hwsock_vring_need_event(uint16_t event_idx, uint16_t new_idx,
                                          uint16_t old_idx) {
  return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/* ---- feature bits (device config, negotiated like virtio) --------------- */

#define HWSOCK_F_TCP (1ull << 0)   /* tcp:// and (with F_INET6) tcp6:// */
#define HWSOCK_F_UDP (1ull << 1)   /* udp:// and (with F_INET6) udp6:// */
#define HWSOCK_F_INET6 (1ull << 2) /* IPv6 schemes */
#define HWSOCK_F_IPX (1ull << 3)   /* ipx:// */
#define HWSOCK_F_EVENT_QUEUE (1ull << 4) /* the last queue is the event queue;
                                            per-socket credit (PROTOCOL §16) */
#define HWSOCK_F_SOFT_ERRORS (1ull << 5) /* with F_EVENT_QUEUE: a datagram
                                            socket's ICMP error is an ERROR
                                            event with EV_F_SOFT; reading goes
                                            on (PROTOCOL §16.3) */
#define HWSOCK_F_INDIRECT_DESC (1ull << 28) /* VIRTIO_RING_F_INDIRECT_DESC */
#define HWSOCK_F_EVENT_IDX (1ull << 29)     /* VIRTIO_RING_F_EVENT_IDX */
#define HWSOCK_F_VERSION_1 (1ull << 32)     /* VIRTIO_F_VERSION_1: required */

/* ---- device config ------------------------------------------------------ */

#define HWSOCK_CONFIG_MAGIC 0x4b535748u /* "HWSK" little-endian */
#define HWSOCK_PROTOCOL_VERSION 1u

/* Device status bits (virtio 1.x section 2.1). */
#define HWSOCK_STATUS_ACKNOWLEDGE 1u
#define HWSOCK_STATUS_DRIVER 2u
#define HWSOCK_STATUS_DRIVER_OK 4u
#define HWSOCK_STATUS_FEATURES_OK 8u
#define HWSOCK_STATUS_NEEDS_RESET 64u
#define HWSOCK_STATUS_FAILED 128u

/* Why the device entered NEEDS_RESET: one code per ring fault (PROTOCOL.md
 * §2.8). hwsock_device_reset_reason() returns it; the loopback transport
 * carries it in NEEDS_RESET's `a` (§14). 0: the device is not broken. */
typedef enum hwsock_reset_reason {
  HWSOCK_RESET_NONE = 0,
  HWSOCK_RESET_AVAIL_IDX = 1,
  HWSOCK_RESET_HEAD_INDEX = 2,
  HWSOCK_RESET_NEXT_INDEX = 3,
  HWSOCK_RESET_CHAIN_LOOP = 4,
  HWSOCK_RESET_CHAIN_SEGS = 5,
  HWSOCK_RESET_CHAIN_IOVECS = 6,
  HWSOCK_RESET_CHAIN_LEN = 7,
  HWSOCK_RESET_BUFFER = 8,
  HWSOCK_RESET_READ_AFTER_WRITE = 9,
  HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED = 10,
  HWSOCK_RESET_INDIRECT_WITH_NEXT = 11,
  HWSOCK_RESET_INDIRECT_LEN = 12,
  HWSOCK_RESET_INDIRECT_ENTRIES = 13,
  HWSOCK_RESET_INDIRECT_REGION = 14,
  HWSOCK_RESET_INDIRECT_NEXT_INDEX = 15,
  HWSOCK_RESET_INDIRECT_LOOP = 16,
  HWSOCK_RESET_INDIRECT_NESTED = 17,
  HWSOCK_RESET_MAX_ = 17
} hwsock_reset_reason;

/* The device's read-only description of itself. A VMM exposes it as the
 * device-specific config space (PCI/MMIO); the loopback VMM sends it in its
 * HELLO reply (hwsock/loopback.h). Filled by hwsock_device_get_config(). */
typedef struct hwsock_wire_config {
  hwsock_le32 magic;            /* 0  HWSOCK_CONFIG_MAGIC */
  hwsock_le32 protocol_version; /* 4  HWSOCK_PROTOCOL_VERSION */
  hwsock_le64 device_features;  /* 8  HWSOCK_F_* the device offers */
  hwsock_le16 num_queues;       /* 16 request queues */
  hwsock_le16 max_queue_size;   /* 18 largest queue size accepted */
  hwsock_le32 max_sockets;      /* 20 socket ids are 0..max_sockets-1 */
  hwsock_le32 max_inflight;     /* 24 requests in flight per device */
  hwsock_le32 max_uri_len;      /* 28 bytes, without terminator */
  hwsock_le32 max_io_len;       /* 32 largest SEND/RECV payload per request */
  hwsock_le32 max_chain_segs;   /* 36 descriptors per chain */
  hwsock_le64 reserved[3];      /* 40 zero */
} hwsock_wire_config;

_Static_assert(sizeof(hwsock_wire_config) == 64, "config is 64 bytes");
_Static_assert(offsetof(hwsock_wire_config, device_features) == 8, "");
_Static_assert(offsetof(hwsock_wire_config, num_queues) == 16, "");
_Static_assert(offsetof(hwsock_wire_config, max_sockets) == 20, "");
_Static_assert(offsetof(hwsock_wire_config, max_io_len) == 32, "");
_Static_assert(offsetof(hwsock_wire_config, max_chain_segs) == 36, "");

/* ---- requests ----------------------------------------------------------- */

typedef enum hwsock_opcode {
  HWSOCK_OP_OPEN = 1,       /* create socket id: arg0 = family, arg1 = type */
  HWSOCK_OP_CONNECT = 2,    /* URI = peer */
  HWSOCK_OP_BIND = 3,       /* URI = local address */
  HWSOCK_OP_LISTEN = 4,     /* arg0 = backlog */
  HWSOCK_OP_ACCEPT = 5,     /* arg1 = new socket id; writes peer URI */
  HWSOCK_OP_SEND = 6,       /* data after URI; URI = destination (sendto) */
  HWSOCK_OP_RECV = 7,       /* arg1 = peer URI capacity; writes URI + data */
  HWSOCK_OP_SHUTDOWN = 8,   /* arg0 = HWSOCK_SHUT_* */
  HWSOCK_OP_CLOSE = 9,      /* release the socket id */
  HWSOCK_OP_GETSOCKOPT = 10, /* arg0 = level, arg1 = option; writes value */
  HWSOCK_OP_SETSOCKOPT = 11, /* arg0 = level, arg1 = option; data = value */
  HWSOCK_OP_GETNAME = 12,   /* arg0 = 0 local, 1 peer; writes URI */
  HWSOCK_OP_NEGOTIATE = 13, /* in-band features: arg0/arg1 = wanted
                               device-class bits; writes the config */
  HWSOCK_OP_CREDIT = 14,    /* F_EVENT_QUEUE: arg0 = receive window added,
                               arg1 = HWSOCK_WATCH_* (one-shot) */
  HWSOCK_OP_MAX_ = 14
} hwsock_opcode;

/* OPEN arguments. */
#define HWSOCK_AF_INET 1u
#define HWSOCK_AF_INET6 2u
#define HWSOCK_AF_IPX 3u
#define HWSOCK_SOCK_STREAM 1u
#define HWSOCK_SOCK_DGRAM 2u

/* SHUTDOWN arg0. */
#define HWSOCK_SHUT_RD 1u
#define HWSOCK_SHUT_WR 2u
#define HWSOCK_SHUT_RDWR 3u

/* RECV arg0 flags. */
#define HWSOCK_RECV_PEEK 1u    /* leave the data queued */
#define HWSOCK_RECV_WAITALL 2u /* complete only when the buffer is full, EOF or error */
/* SEND arg0 flags. */
#define HWSOCK_SEND_MORE 1u /* more data follows (MSG_MORE) */

/* Response flags. */
#define HWSOCK_RESP_F_EOF 1u   /* RECV: orderly shutdown by the peer, len 0 */
#define HWSOCK_RESP_F_TRUNC 2u /* RECV: datagram longer than the buffer */

/* GETSOCKOPT/SETSOCKOPT: portable levels and options; values are le32
 * unless stated. The device forwards only this allow-list (anything else:
 * HWSOCK_ENOPROTOOPT) and exchanges at most HWSOCK_SOCKOPT_MAX bytes. */
#define HWSOCK_SOCKOPT_MAX 256u
#define HWSOCK_SOL_IP 0u
#define HWSOCK_SOL_SOCKET 1u
#define HWSOCK_SOL_TCP 6u
#define HWSOCK_SOL_IPV6 41u
#define HWSOCK_SO_REUSEADDR 2u
#define HWSOCK_SO_ERROR 4u   /* get only */
#define HWSOCK_SO_BROADCAST 6u
#define HWSOCK_SO_SNDBUF 7u
#define HWSOCK_SO_RCVBUF 8u
#define HWSOCK_SO_KEEPALIVE 9u
#define HWSOCK_SO_LINGER 13u /* two le32: onoff, seconds */
#define HWSOCK_TCP_NODELAY 1u
#define HWSOCK_TCP_KEEPIDLE 4u
#define HWSOCK_TCP_KEEPINTVL 5u
#define HWSOCK_TCP_KEEPCNT 6u
#define HWSOCK_TCP_INFO 11u /* get only: the host connection's Linux struct
                               tcp_info, fields little-endian */
#define HWSOCK_IP_TOS 1u    /* le32 (level SOL_IP) */
#define HWSOCK_IPV6_V6ONLY 26u
#define HWSOCK_IPV6_TCLASS 67u /* le32 (level SOL_IPV6) */

/* ACCEPT, GETNAME and RECV-with-source need a URI area of at least this
 * many bytes (the longest canonical URI is 72 bytes); a device's
 * max_uri_len is never smaller. */
#define HWSOCK_URI_AREA_MIN 80u

/* Device-readable header at the start of every request chain. */
typedef struct hwsock_req_hdr {
  hwsock_le16 opcode;   /* 0  hwsock_opcode */
  hwsock_le16 flags;    /* 2  zero (reserved for future use) */
  hwsock_le32 sock_id;  /* 4  guest-chosen socket id */
  hwsock_le64 tag;      /* 8  opaque to the device, echoed in the response */
  hwsock_le32 arg0;     /* 16 opcode-specific */
  hwsock_le32 arg1;     /* 20 opcode-specific */
  hwsock_le32 uri_len;  /* 24 URI bytes following the header, no NUL */
  hwsock_le32 reserved; /* 28 zero */
} hwsock_req_hdr;

/* Device-writable header at the start of the writable part. */
typedef struct hwsock_resp_hdr {
  hwsock_le32 status;   /* 0  0, or the positive HWSOCK_E* wire value */
  hwsock_le32 len;      /* 4  bytes sent (SEND), data bytes written (RECV),
                                value bytes (GETSOCKOPT) */
  hwsock_le64 tag;      /* 8  the request's tag */
  hwsock_le32 flags;    /* 16 HWSOCK_RESP_F_* */
  hwsock_le32 uri_len;  /* 20 URI bytes written at the payload start
                                (ACCEPT, GETNAME, RECV from) */
  hwsock_le32 val;      /* 24 opcode-specific: RECV datagram full length */
  hwsock_le32 reserved; /* 28 zero */
} hwsock_resp_hdr;

/* ---- event queue (HWSOCK_F_EVENT_QUEUE, PROTOCOL.md §16) ---------------- */

/* CREDIT arg1: one-shot readiness watches. */
#define HWSOCK_WATCH_ACCEPT 1u /* one ACCEPTABLE event: a connection waits */
#define HWSOCK_WATCH_WRITE 2u  /* one WRITABLE event: the send buffer has room */

/* Event types. */
#define HWSOCK_EV_DATA 1u       /* data (len bytes), or EOF (flags) */
#define HWSOCK_EV_ACCEPTABLE 2u /* ACCEPT will find a connection */
#define HWSOCK_EV_WRITABLE 3u   /* a SEND will be taken at once */
#define HWSOCK_EV_ERROR 4u      /* reading failed with status; reading ends */
/* Reserved for a later version (this one never writes them): asynchronous
 * CONNECT outcomes and a hang-up without a read window. */
#define HWSOCK_EV_CONNECTED 5u
#define HWSOCK_EV_CONNECT_FAILED 6u
#define HWSOCK_EV_HUP 7u

/* Event flags. */
#define HWSOCK_EV_F_EOF 1u   /* DATA: orderly shutdown by the peer, len 0 */
#define HWSOCK_EV_F_TRUNC 2u /* DATA: datagram longer than the buffer */
#define HWSOCK_EV_F_SOFT 4u  /* ERROR (F_SOFT_ERRORS): a datagram socket's
                                pending error; reading goes on, W unchanged */

#define HWSOCK_EV_BUF_MIN 256u   /* smallest event buffer (writable bytes) */
#define HWSOCK_EV_URI_AREA 80u   /* datagram events: source URI area at 32 */
#define HWSOCK_CREDIT_MAX 0x7fffffffu /* largest receive window */

/* Written by the device at the start of an event buffer. */
typedef struct hwsock_event {
  hwsock_le32 sock_id;  /* 0  the socket the event is about */
  hwsock_le16 type;     /* 4  HWSOCK_EV_* */
  hwsock_le16 flags;    /* 6  HWSOCK_EV_F_* */
  hwsock_le32 len;      /* 8  DATA: data bytes */
  hwsock_le32 status;   /* 12 ERROR: positive HWSOCK_E* wire value */
  hwsock_le32 uri_len;  /* 16 DATA of a datagram: source URI bytes at 32 */
  hwsock_le32 val;      /* 20 DATA of a datagram: full length */
  hwsock_le32 window;   /* 24 the socket's receive window left */
  hwsock_le32 reserved; /* 28 zero */
} hwsock_event;

_Static_assert(sizeof(hwsock_event) == 32, "event header is 32 bytes");
_Static_assert(offsetof(hwsock_event, type) == 4, "");
_Static_assert(offsetof(hwsock_event, len) == 8, "");
_Static_assert(offsetof(hwsock_event, status) == 12, "");
_Static_assert(offsetof(hwsock_event, uri_len) == 16, "");
_Static_assert(offsetof(hwsock_event, val) == 20, "");
_Static_assert(offsetof(hwsock_event, window) == 24, "");

_Static_assert(sizeof(hwsock_req_hdr) == 32, "request header is 32 bytes");
_Static_assert(offsetof(hwsock_req_hdr, sock_id) == 4, "");
_Static_assert(offsetof(hwsock_req_hdr, tag) == 8, "");
_Static_assert(offsetof(hwsock_req_hdr, arg0) == 16, "");
_Static_assert(offsetof(hwsock_req_hdr, arg1) == 20, "");
_Static_assert(offsetof(hwsock_req_hdr, uri_len) == 24, "");
_Static_assert(offsetof(hwsock_req_hdr, reserved) == 28, "");
_Static_assert(sizeof(hwsock_resp_hdr) == 32, "response header is 32 bytes");
_Static_assert(offsetof(hwsock_resp_hdr, len) == 4, "");
_Static_assert(offsetof(hwsock_resp_hdr, tag) == 8, "");
_Static_assert(offsetof(hwsock_resp_hdr, flags) == 16, "");
_Static_assert(offsetof(hwsock_resp_hdr, uri_len) == 20, "");
_Static_assert(offsetof(hwsock_resp_hdr, val) == 24, "");

#endif
