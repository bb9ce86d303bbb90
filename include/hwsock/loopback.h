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
 *                 kick eventfd and the call eventfd (1 + 2*c fds). The
 *                 whole memfd is guest memory for the driver (the config
 *                 travels in the message, not in memory). A VMM that
 *                 cannot take the guest answers HELLO with a status (e.g.
 *                 EBUSY), possibly before the guest's HELLO, and hangs up.
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
 * guest had opened; the guest treats a hang-up as the device being gone.
 * In requests, status and reserved are zero and no fds are attached; a
 * request that breaks the protocol (wrong size, fds, unknown type, anything
 * before HELLO, a second HELLO) ends the attachment too. A valid request
 * the device refuses gets its error in the reply status. */
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

/* Sends one message with nfds file descriptors (SCM_RIGHTS; nfds may be 0,
 * fds may then be NULL) on a connected SOCK_SEQPACKET socket. The fds stay
 * the caller's: the kernel duplicates them into the message. Never raises
 * SIGPIPE (MSG_NOSIGNAL); retries EINTR. Returns 0, HWSOCK_EINVAL (nfds >
 * HWSOCK_LB_MAX_FDS), HWSOCK_EAGAIN (nonblocking socket full), HWSOCK_EPIPE /
 * HWSOCK_ECONNRESET (peer gone) or another errno mapped to HWSOCK_E*. */
HWSOCK_EXTERN int hwsock_lb_send(int sock, const hwsock_lb_msg *m,
                                 const int *fds, unsigned nfds);

/* Receives one message into *m, and its descriptors (received with
 * MSG_CMSG_CLOEXEC) into fds[0..*nfds). On success the received fds are the
 * caller's, to close. On any failure no fd is left open: a message that is
 * not exactly sizeof(hwsock_lb_msg) bytes, more than max_fds descriptors, a
 * truncated control message or an unexpected control message gives
 * HWSOCK_EPROTO (the message is consumed and every fd it carried closed).
 * End of stream (the peer closed) gives HWSOCK_ECONNRESET; a nonblocking
 * socket with nothing queued HWSOCK_EAGAIN. fds may be NULL when max_fds is
 * 0; nfds may be NULL when max_fds is 0. The fields of *m are not checked
 * beyond the size: the caller validates type, status and arguments. */
HWSOCK_EXTERN int hwsock_lb_recv(int sock, hwsock_lb_msg *m, int *fds,
                                 unsigned max_fds, unsigned *nfds);

#ifdef __cplusplus
}
#endif
#endif
