/* libhwsock loopback transport: how a guest process attaches to a VMM
 * process on the same host (shaped like vhost-user): a unix SOCK_SEQPACKET
 * socket carrying fixed-size 128-byte setup messages (hwsock_lb_msg) with
 * the guest memory's memfd and the queues' kick/call eventfds as
 * SCM_RIGHTS; requests then go through the rings in that memory.
 *
 * The transport is specified once, in docs/PROTOCOL.md §14: every message
 * type and field, the framing (one record per send, one SCM_RIGHTS control
 * message, which fields must be zero), the descriptors' flags (the
 * eventfds are non-blocking: poll before read), the sequence and how each
 * side ends it. This header gives the message layout and the two helpers
 * both sides use to send and receive one message. The guest's side is
 * hwsock_attach() (hwsock/attach.h), a VMM's side docs/EMBEDDING.md §9. */
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
  hwsock_le64 a, b, c, d, e; /* 8  per type (PROTOCOL.md §14.1) */
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
