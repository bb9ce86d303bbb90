/* The vhost-user protocol as this back-end speaks it (QEMU's
 * docs/interop/vhost-user.rst): the message header, the requests it knows
 * and their payloads. Messages are native-endian (front-end and back-end run
 * on one host); the layouts below are checked with _Static_assert because
 * they are read straight from the socket. The test front-end
 * (test/vhost-user/) uses the same definitions. */
#ifndef HWSOCK_VHOST_USER_H
#define HWSOCK_VHOST_USER_H

#include <stddef.h>
#include <stdint.h>

/* Header flags. */
#define VU_VERSION 0x1u
#define VU_VERSION_MASK 0x3u
#define VU_FLAG_REPLY 0x4u
#define VU_FLAG_NEED_REPLY 0x8u

/* Front-end requests. */
enum {
  VU_GET_FEATURES = 1,
  VU_SET_FEATURES = 2,
  VU_SET_OWNER = 3,
  VU_RESET_OWNER = 4,
  VU_SET_MEM_TABLE = 5,
  VU_SET_LOG_BASE = 6,
  VU_SET_LOG_FD = 7,
  VU_SET_VRING_NUM = 8,
  VU_SET_VRING_ADDR = 9,
  VU_SET_VRING_BASE = 10,
  VU_GET_VRING_BASE = 11,
  VU_SET_VRING_KICK = 12,
  VU_SET_VRING_CALL = 13,
  VU_SET_VRING_ERR = 14,
  VU_GET_PROTOCOL_FEATURES = 15,
  VU_SET_PROTOCOL_FEATURES = 16,
  VU_GET_QUEUE_NUM = 17,
  VU_SET_VRING_ENABLE = 18,
  VU_GET_CONFIG = 24,
  VU_SET_CONFIG = 25,
};

/* Virtio feature bits on the vhost-user transport. */
#define VU_F_INDIRECT_DESC (1ull << 28)
#define VU_F_EVENT_IDX (1ull << 29)
#define VU_F_PROTOCOL_FEATURES (1ull << 30) /* VHOST_USER_F_PROTOCOL_FEATURES */
#define VU_F_VERSION_1 (1ull << 32)

/* Protocol feature bits. */
#define VU_PF_MQ (1ull << 0)
#define VU_PF_REPLY_ACK (1ull << 3)
#define VU_PF_CONFIG (1ull << 9)

/* SET_VRING_KICK/CALL/ERR payload: index in the low byte, this bit when no
 * file descriptor comes with the message. */
#define VU_VRING_IDX_MASK 0xffull
#define VU_VRING_NOFD_MASK 0x100ull

#define VU_MAX_REGIONS 8u     /* VHOST_MEMORY_BASELINE_NREGIONS */
#define VU_MAX_CONFIG_SIZE 256u
#define VU_MAX_FDS 8u         /* SET_MEM_TABLE: one per region */

typedef struct vu_hdr {
  uint32_t request;
  uint32_t flags;
  uint32_t size; /* payload bytes after the header */
} vu_hdr;

typedef struct vu_vring_state {
  uint32_t index;
  uint32_t num;
} vu_vring_state;

typedef struct vu_vring_addr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc_uva; /* front-end virtual addresses, not guest physical */
  uint64_t used_uva;
  uint64_t avail_uva;
  uint64_t log_gpa;
} vu_vring_addr;

typedef struct vu_mem_region {
  uint64_t gpa;
  uint64_t size;
  uint64_t uva;         /* the front-end's virtual address of gpa */
  uint64_t mmap_offset; /* where gpa starts in the region's fd */
} vu_mem_region;

typedef struct vu_memory {
  uint32_t nregions;
  uint32_t padding;
  vu_mem_region regions[VU_MAX_REGIONS];
} vu_memory;

typedef struct vu_config {
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
  uint8_t data[VU_MAX_CONFIG_SIZE];
} vu_config;

#define VU_CONFIG_HDR_SIZE offsetof(vu_config, data)

/* Largest payload read: larger than any valid one, so that a bad size
 * (e.g. nine memory regions) is refused as a message, not as a broken
 * stream; anything longer ends the connection. */
#define VU_MAX_PAYLOAD 4096u

typedef union vu_payload {
  uint8_t raw[VU_MAX_PAYLOAD];
  uint64_t u64;
  vu_vring_state state;
  vu_vring_addr addr;
  vu_memory memory;
  vu_config config;
} vu_payload;

_Static_assert(sizeof(vu_hdr) == 12, "vhost-user header is 12 bytes");
_Static_assert(sizeof(vu_vring_state) == 8, "");
_Static_assert(sizeof(vu_vring_addr) == 40, "");
_Static_assert(sizeof(vu_mem_region) == 32, "");
_Static_assert(offsetof(vu_memory, regions) == 8, "");
_Static_assert(VU_CONFIG_HDR_SIZE == 12, "");

#endif
