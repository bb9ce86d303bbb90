/* hwsock-vhost-user: a vhost-user back-end process serving one libhwsock
 * device to a VMM (QEMU, crosvm, cloud-hypervisor) over a unix socket
 * (docs/VHOST-USER.md).
 *
 *   main.c   command line, startup, the listening socket, signals, the
 *            control socket's view of the (one) guest
 *   conn.c   one front-end connection: reading and answering messages
 *   rings.c  the vring messages, device start/stop
 *   mem.c    the front-end's memory table: mapping, address translation
 *
 * It shares hwsock-vmm's backend loading, control socket, listening socket,
 * logging and policy/capture setup (tools/hwsock-vmm, vmm.h): the
 * `vmm` struct carries the options and resources those pieces use.
 *
 * The front-end is as untrusted as the guest: every message size and fd
 * count is checked before a byte of the payload is used, every address it
 * gives is translated through the memory table and bounds-checked, and a
 * malformed message is refused (REPLY_ACK) or ends the connection, never
 * the process. */
#ifndef HWSOCK_VU_H
#define HWSOCK_VU_H

#include <stdint.h>
#include <uv.h>

#include "hwsock/device.h"
#include "hwsock/uv.h"
#include "vhost_user.h"
#include "vmm.h"

#define VU_QUEUES 2u              /* both are libhwsock request queues */
#define VU_DEFAULT_CID 3u         /* the vsock carrier's guest_cid */
#define VU_MAX_QUEUE_SIZE 1024u   /* largest ring accepted */
#define VU_IO_TIMEOUT_S 5         /* a message must arrive whole by then */

/* The virtio features offered to the front-end: the ring features the
 * device implements, never ACCESS_PLATFORM (QEMU's vsock carrier refuses
 * to start with it) and never packed rings. */
#define VU_OFFERED_FEATURES                                                   \
  (VU_F_VERSION_1 | VU_F_EVENT_IDX | VU_F_INDIRECT_DESC |                     \
   VU_F_PROTOCOL_FEATURES)
#define VU_OFFERED_PROTOCOL (VU_PF_REPLY_ACK | VU_PF_CONFIG)

typedef struct vu_region {
  uint64_t gpa, size, uva;
  uint8_t *hva;    /* host address of gpa */
  void *map;       /* the mmap()ed span (from file offset 0) */
  size_t map_len;
} vu_region;

typedef struct vu_mem {
  vu_region r[VU_MAX_REGIONS];
  unsigned n;
} vu_mem;

typedef struct vu_vring {
  unsigned num;                        /* 0: not set */
  uint64_t desc_uva, avail_uva, used_uva;
  int have_addr;
  unsigned base;
  int kick_fd, call_fd, err_fd;        /* -1: none */
  int enabled;
  int stopped;                         /* GET_VRING_BASE until a new KICK */
} vu_vring;

typedef struct vu vu;

typedef struct vu_conn {
  vu *u;
  int fd;
  uv_poll_t poll;
  unsigned id;          /* 1, 2, ... per accepted front-end */
  long pid;             /* SO_PEERCRED, -1 unknown */
  uint64_t features;    /* SET_FEATURES */
  uint64_t pfeatures;   /* SET_PROTOCOL_FEATURES */
  vu_mem mem;
  vu_vring vring[VU_QUEUES];
  int running;          /* the device is started and its kicks watched */
  int closing;
} vu_conn;

struct vu {
  vmm v;                /* options and resources of the shared pieces */
  const char *socket_path;
  uint64_t cid;
  unsigned max_sockets;
  hwsock_device *dev;   /* one device for the process's life */
  hwsock_uv *adapter;   /* while running */
  vu_conn *conn;        /* the connected front-end, or NULL */
  unsigned next_conn;
  int listen_fd;
  uv_poll_t listen_poll;
};

/* One message as read: header, payload, the fds that came with it. */
typedef struct vu_msg {
  vu_hdr h;
  vu_payload p;
  int fds[VU_MAX_FDS];
  unsigned nfds;
  int fds_overflow; /* more fds came than we take: refused */
} vu_msg;

/* conn.c */
void vu_conn_accept(vu *u, int fd);
/* Ends the connection: the device is reset (host sockets closed as for a
 * dead guest), the memory unmapped, fds closed; the listening socket is
 * watched again. Safe to call twice. */
void vu_conn_close(vu_conn *c, const char *why);
/* Device callbacks (ops->notify, ops->needs_reset). */
void vu_notify(void *opaque, unsigned q);
void vu_needs_reset(void *opaque, const char *why);
/* A refused message: logged, -1 (the front-end learns it by REPLY_ACK). */
int vu_refuse(vu_conn *c, const vu_msg *m, const char *why);
/* 0 when the payload has exactly `size` bytes, else vu_refuse(). */
int vu_want_size(vu_conn *c, const vu_msg *m, uint32_t size);
void vu_close_fd(int *fd); /* closes *fd when >= 0, sets it to -1 */

/* rings.c: the ring messages (0, 1 with *reply filled, or -1 refused) */
int vu_on_vring_state(vu_conn *c, vu_msg *m, vu_payload *reply,
                      uint32_t *reply_size);
int vu_on_vring_addr(vu_conn *c, vu_msg *m);
int vu_on_vring_file(vu_conn *c, vu_msg *m);
/* Starts the device when both rings are complete and enabled (scanning
 * them); pauses it (kicks unwatched); stops it (device reset). */
void vu_try_start(vu_conn *c);
void vu_device_pause(vu_conn *c);
void vu_device_stop(vu_conn *c, const char *why);
/* Empty rings (fds -1); the same after closing their fds. */
void vu_rings_init(vu_conn *c);
void vu_rings_forget(vu_conn *c);

/* main.c: accept the next front-end again. */
void vu_listen_resume(vu *u);

/* mem.c: replaces c->mem by the table in m (whose regions come with fds,
 * taken over and closed here); adds the regions to the device, which must
 * be stopped. 0, or -1 with the old table gone (reported). */
int vu_mem_set(vu_conn *c, const vu_memory *m, int *fds, unsigned nfds);
/* Unmaps every region (the device must hold none: reset first). */
void vu_mem_clear(vu_conn *c);
/* Guest physical address of the front-end's [uva, uva+len), which must lie
 * inside one region: 0, or -1. */
int vu_mem_uva_to_gpa(const vu_mem *m, uint64_t uva, uint64_t len,
                      uint64_t *gpa);
/* Host pointer of [uva, uva+len) inside one region, or NULL. */
void *vu_mem_uva_ptr(const vu_mem *m, uint64_t uva, uint64_t len);

#endif
