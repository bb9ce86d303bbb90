/* libhwsock loopback transport: how a guest process attaches to a VMM
 * process on the same host (shaped like vhost-user).
 *
 * The VMM listens on a unix SOCK_SEQPACKET socket. A guest connects and the
 * two exchange fixed-size little-endian messages (hwsock_lb_msg, 128 bytes),
 * each answered by one reply of the same type with `status` set:
 *
 *   guest -> VMM  HELLO        a = protocol version (HWSOCK_LB_VERSION)
 *   VMM -> guest  HELLO reply  config = device config space; a = guest
 *                 memory size, b = its guest physical base, c = number of
 *                 queues; SCM_RIGHTS carries: memfd, then per queue the
 *                 kick eventfd and the call eventfd (1 + 2*c fds)
 *   guest -> VMM  FEATURES     a = driver features   (hwsock_device_set_features)
 *   guest -> VMM  QUEUE        a = queue, b = size, c = desc gpa, d = avail
 *                              gpa, e = used gpa    (hwsock_device_queue_setup)
 *   guest -> VMM  START                              (hwsock_device_start)
 *   guest -> VMM  RESET                              (hwsock_device_reset)
 *   VMM -> guest  NEEDS_RESET  unsolicited: the device is broken (no reply)
 *
 * After START the guest writes a queue's kick eventfd to notify the device
 * (the ioeventfd) and reads its call eventfd for interrupts (the irqfd).
 * Closing the socket ends the attachment: the VMM closes everything that
 * guest had opened; the guest treats a hang-up as the device being gone. */
#ifndef HWSOCK_LOOPBACK_H
#define HWSOCK_LOOPBACK_H

#include "hwsock/common.h"
#include "hwsock/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HWSOCK_LB_VERSION 1u
#define HWSOCK_LB_MAX_FDS (1 + 2 * 16) /* memfd + 2 per queue (16 queues max) */

enum hwsock_lb_type {
  HWSOCK_LB_HELLO = 1,
  HWSOCK_LB_FEATURES = 2,
  HWSOCK_LB_QUEUE = 3,
  HWSOCK_LB_START = 4,
  HWSOCK_LB_RESET = 5,
  HWSOCK_LB_NEEDS_RESET = 6
};

typedef struct hwsock_lb_msg {
  hwsock_le32 type;          /* 0  hwsock_lb_type */
  hwsock_le32 status;        /* 4  replies: 0 or positive HWSOCK_E* value */
  hwsock_le64 a, b, c, d, e; /* 8  per type, see above */
  hwsock_wire_config config; /* 48 HELLO reply */
  hwsock_le64 reserved[2];   /* 112 zero */
} hwsock_lb_msg;

_Static_assert(sizeof(hwsock_lb_msg) == 128, "loopback message is 128 bytes");
_Static_assert(offsetof(hwsock_lb_msg, config) == 48, "");

#ifdef __cplusplus
}
#endif
#endif
