/* libhwsock guest driver core: the driver side of the device.
 *
 * It attaches to the device's queues in guest memory, builds requests, keeps
 * the guest's socket table and offers a small blocking socket API. A real
 * guest kernel driver would do the same; this one runs in a process that
 * shares memory with the VMM (loopback VMM, in-process tests).
 *
 * Memory: the driver is given one block of guest memory (host pointer + its
 * guest physical address). It places the queues at the start and carves the
 * rest into fixed request slots (header + response + a bounce buffer of
 * io_len bytes): program buffers are copied through them, as a real guest's
 * would be DMA-mapped. Nothing is allocated per request.
 *
 * Threads: every function is thread-safe; blocking calls on different
 * sockets, or a send and a recv on the same socket, proceed in parallel
 * (requests complete out of order). */
#ifndef HWSOCK_GUEST_H
#define HWSOCK_GUEST_H

#include <sys/types.h>

#include "hwsock/common.h"
#include "hwsock/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hwsock_guest hwsock_guest;

/* How the driver reaches the device: the transport. Called from any thread
 * that uses the driver. */
typedef struct hwsock_guest_ops {
  uint32_t size; /* sizeof(hwsock_guest_ops) */
  /* Tells the device the negotiated features. 0 or negative HWSOCK_E*. */
  int (*set_features)(void *opaque, uint64_t features);
  /* Tells the device where queue q lives; then (after the last queue) the
   * driver calls start. 0 or negative HWSOCK_E*. */
  int (*setup_queue)(void *opaque, unsigned q, unsigned size,
                     uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa);
  int (*start)(void *opaque);
  /* Notifies the device that queue q has new requests (ioeventfd write). */
  void (*kick)(void *opaque, unsigned q);
  /* Waits until the device interrupts queue q (irqfd read) or timeout_ms
   * passes (-1: no timeout). 0 on interrupt or timeout, negative HWSOCK_E*
   * when the device is gone (HWSOCK_ECONNRESET). */
  int (*wait)(void *opaque, unsigned q, int timeout_ms);
} hwsock_guest_ops;

typedef struct hwsock_guest_config {
  uint32_t size;      /* sizeof(hwsock_guest_config) */
  void *mem;          /* guest memory for the driver (host pointer) */
  uint64_t mem_gpa;   /* its guest physical address */
  size_t mem_size;    /* bytes */
  const hwsock_wire_config *device; /* the device's config space */
  unsigned queue_size; /* entries per queue, power of 2; 0 = 256 */
  unsigned io_len;    /* bounce bytes per request slot; 0 = 64 KiB */
  unsigned slots;     /* request slots; 0 = as many as fit (<= queue_size) */
  int event_idx;      /* negotiate HWSOCK_F_EVENT_IDX when offered */
  int indirect;       /* negotiate HWSOCK_F_INDIRECT_DESC when offered */
  int poll_us;        /* busy-poll this long before sleeping in wait() */
  const hwsock_guest_ops *ops;
  void *opaque;
  /* ---- appended (present when size covers it) ---- */
  int write_behind;   /* hwsock_guest_send() returns once its data is copied
                         into request slots (up to HWSOCK_GUEST_WB_MAX in
                         flight per socket), as a kernel send returns once
                         the data is in the socket buffer; an error of such
                         a send is returned by the socket's next send or
                         shutdown. close() first waits for them. 0: every
                         send waits for its completion. */
  /* ---- appended (present when size covers it) ---- */
  int event_queue;     /* negotiate HWSOCK_F_EVENT_QUEUE when offered (a
                          device with >= 2 queues): input of a connected or
                          bound socket arrives in shared buffers of the
                          event queue (PROTOCOL.md §16), so a socket that
                          waits for input holds no request slot, and
                          hwsock_guest_wait() works. A thread of the driver
                          takes the events. */
  unsigned ev_buf_len; /* bytes per event buffer; 0 = 16 KiB, or with UDP
                          room for the largest datagram (32 + 80 + 65,535,
                          at most max_io_len) in 128 buffers, when that
                          is at most half of mem_size: a longer datagram
                          arrives truncated */
  unsigned ev_window;  /* receive window per stream socket, bytes; 0 =
                          256 KiB (datagram sockets: 64 datagrams) */
} hwsock_guest_config;

#define HWSOCK_GUEST_WB_MAX 4

/* Zeroes the caller's struct, sets its size and the defaults (event_idx,
 * indirect). hwsock_guest_config_init(cfg) passes sizeof(*cfg) as the
 * caller's header has it, so the library never writes beyond the caller's
 * struct. (The plain function, which binaries built against 0.1.0 call,
 * initialises the 0.1.0 struct.) */
HWSOCK_EXTERN void hwsock_guest_config_init_sized(hwsock_guest_config *cfg,
                                                  size_t size);
HWSOCK_EXTERN void(hwsock_guest_config_init)(hwsock_guest_config *cfg);
#define hwsock_guest_config_init(cfg)                                          \
  hwsock_guest_config_init_sized((cfg), sizeof(*(cfg)))

/* Negotiates features, lays out queues and slots, starts the device.
 * *out is the caller's (hwsock_guest_free). Errors: HWSOCK_EINVAL (bad
 * config, memory too small), HWSOCK_EPROTO (device magic/version), or what
 * the transport returned. */
HWSOCK_EXTERN int hwsock_guest_new(const hwsock_guest_config *cfg,
                                   hwsock_guest **out);

/* Frees the driver. Sockets still open are not closed on the device (the
 * VMM resets the device when the guest goes). No call may be in progress. */
HWSOCK_EXTERN void hwsock_guest_free(hwsock_guest *g);

/* Fails every waiting and future call with HWSOCK_ECONNRESET (the device
 * went away). Safe from any thread. */
HWSOCK_EXTERN void hwsock_guest_shutdown_transport(hwsock_guest *g);

/* 0 while the transport works; once it failed, the error every call fails
 * with from then on: HWSOCK_ECONNRESET (the device went away: the VMM hung
 * up or sent NEEDS_RESET, or hwsock_guest_shutdown_transport()),
 * HWSOCK_EPROTO (the device broke the protocol). Tells a device that is
 * gone from one socket's HWSOCK_ECONNRESET (a peer's reset, or a socket the
 * device reset after a restore). Safe from any thread; NULL:
 * HWSOCK_EINVAL. */
HWSOCK_EXTERN int hwsock_guest_transport_error(const hwsock_guest *g);

/* The features negotiated with the device (HWSOCK_F_*): among them which
 * schemes it carries (HWSOCK_F_TCP, _UDP, _INET6, _IPX). Constant once
 * hwsock_guest_new() returned; any thread. */
HWSOCK_EXTERN uint64_t hwsock_guest_features(const hwsock_guest *g);

/* Socket calls. Return >= 0 on success (a socket id, a byte count or 0) or
 * a negative HWSOCK_E*: HWSOCK_EDECLINED means the device leaves this
 * socket to the guest's own stack (close the id and use a native socket).
 * URIs are hwsock/uri.h strings. Sockets are ids 0..max_sockets-1 chosen
 * by the driver. */
HWSOCK_EXTERN int hwsock_guest_socket(hwsock_guest *g, unsigned family,
                                      unsigned type);
HWSOCK_EXTERN int hwsock_guest_connect(hwsock_guest *g, int s,
                                       const char *uri);
HWSOCK_EXTERN int hwsock_guest_bind(hwsock_guest *g, int s, const char *uri);
HWSOCK_EXTERN int hwsock_guest_listen(hwsock_guest *g, int s, int backlog);
/* Returns the new socket id; peer URI into peer (may be NULL). */
HWSOCK_EXTERN int hwsock_guest_accept(hwsock_guest *g, int s, char *peer,
                                      size_t peer_len);
/* Sends all len bytes (in io_len pieces); returns len or an error.
 * HWSOCK_GUEST_SEND_DONTWAIT (below) posts only what needs no wait. */
HWSOCK_EXTERN ssize_t hwsock_guest_send(hwsock_guest *g, int s,
                                        const void *buf, size_t len,
                                        unsigned flags);
/* One datagram (or stream piece) to uri. */
HWSOCK_EXTERN ssize_t hwsock_guest_sendto(hwsock_guest *g, int s,
                                          const void *buf, size_t len,
                                          unsigned flags, const char *uri);
/* Receives up to min(len, io_len) bytes; 0 at EOF. */
HWSOCK_EXTERN ssize_t hwsock_guest_recv(hwsock_guest *g, int s, void *buf,
                                        size_t len, unsigned flags);
/* As recv, with the source URI and HWSOCK_RESP_F_* flags (may be NULL). */
HWSOCK_EXTERN ssize_t hwsock_guest_recvfrom(hwsock_guest *g, int s, void *buf,
                                            size_t len, unsigned flags,
                                            char *uri, size_t uri_len,
                                            unsigned *resp_flags);
HWSOCK_EXTERN int hwsock_guest_shutdown(hwsock_guest *g, int s, unsigned how);
/* Releases the id on the device and in the table. */
HWSOCK_EXTERN int hwsock_guest_close(hwsock_guest *g, int s);
HWSOCK_EXTERN int hwsock_guest_getsockopt(hwsock_guest *g, int s,
                                          unsigned level, unsigned opt,
                                          void *val, size_t *len);
HWSOCK_EXTERN int hwsock_guest_setsockopt(hwsock_guest *g, int s,
                                          unsigned level, unsigned opt,
                                          const void *val, size_t len);
/* which: 0 = local name, 1 = peer name. */
HWSOCK_EXTERN int hwsock_guest_getname(hwsock_guest *g, int s, int which,
                                       char *uri, size_t uri_len);

/* Readiness over many sockets (needs the event queue: HWSOCK_EOPNOTSUPP
 * without it). hwsock_guest_watch() sets what a socket is watched for
 * (HWSOCK_GUEST_IN: recv would not block: data, end of file or an error;
 * HWSOCK_GUEST_ACCEPT: accept would not block; HWSOCK_GUEST_OUT: the
 * device reported room to send, one-shot: watch again for another; a
 * socket the device reported an error for is ready for all three, for
 * good, as poll's POLLERR: the next call returns the error); 0
 * stops watching. hwsock_guest_wait() fills up to n events with sockets
 * that are ready now (level-triggered, as poll: a socket stays ready until
 * it is drained) and returns their count, 0 on timeout (timeout_ms -1:
 * none), or a negative HWSOCK_E*. Sockets are reported in turn.
 * A failed socket is reported by every wait, for each interest it is
 * watched for, OUT included (its one-shot is about the device's room
 * report, not about the failure): as poll reports POLLERR at every call
 * until the socket is closed, nothing consumes a failure. There is no
 * edge-triggered mode; a program that has seen the error stops the
 * reports by closing the socket or watching it for 0. A datagram socket's
 * soft error (an ICMP error, HWSOCK_F_SOFT_ERRORS) is not a failure: the
 * socket is ready for IN and OUT only until the next recv, send or
 * SO_ERROR returns the error, once, and it goes on receiving. */
#define HWSOCK_GUEST_IN 1u
#define HWSOCK_GUEST_ACCEPT 2u
#define HWSOCK_GUEST_OUT 4u
/* hwsock_guest_recv() flag, never sent to the device: with the event
 * queue, return HWSOCK_EAGAIN instead of waiting when nothing is there. */
#define HWSOCK_GUEST_RECV_DONTWAIT (1u << 16)
/* hwsock_guest_send() flag, never sent to the device: with write-behind on
 * a stream socket, post the pieces that take a free slot within the
 * socket's HWSOCK_GUEST_WB_MAX in flight, and return their bytes (fewer
 * than len: the rest would wait) or HWSOCK_EAGAIN when none could go
 * without waiting (a send completed since, or a slot freed, changes
 * that). Errors as a send's. HWSOCK_EINVAL without write-behind or on a
 * datagram socket (their sends wait for completion). */
#define HWSOCK_GUEST_SEND_DONTWAIT (1u << 17)
typedef struct hwsock_guest_event {
  int sock;
  unsigned events; /* HWSOCK_GUEST_* */
} hwsock_guest_event;
HWSOCK_EXTERN int hwsock_guest_watch(hwsock_guest *g, int s, unsigned events);
HWSOCK_EXTERN int hwsock_guest_wait(hwsock_guest *g, hwsock_guest_event *ev,
                                    int n, int timeout_ms);

/* Zero-copy sends (docs/GUEST-DRIVER.md "Zero-copy sends"). Instead of
 * handing hwsock_guest_send() bytes that the driver copies into a request
 * slot, the program takes a slot's data area itself, writes its bytes
 * there, and submits it: the device reads them where they are, as with
 * io_uring registered buffers or an AF_XDP umem.
 *
 * The token is the program's own struct (nothing is allocated per send);
 * buf and cap are for the program to use, the rest is the driver's. A
 * token names one use of one slot: once submitted or put back it is dead,
 * and a copy of it that is used again is refused (HWSOCK_EINVAL), also
 * after the driver gave the same slot out again. */
typedef struct hwsock_guest_sendbuf {
  void *buf;   /* where to write the data: cap bytes, 16-byte aligned */
  size_t cap;  /* bytes that fit: min(want, io_len) (want 0: io_len) */
  /* the driver's; the program does not change them */
  int sock;
  unsigned slot;
  uint64_t ticket;
} hwsock_guest_sendbuf;

/* Takes a free request slot for a send on socket s and fills *sb: the
 * program owns sb->buf (sb->cap bytes) until it submits or puts it back.
 * want: the bytes the program means to send; the buffer holds at most
 * io_len (a stream sends more as several buffers; a datagram socket gets
 * HWSOCK_EMSGSIZE above io_len); 0 asks for a whole io_len buffer. A held
 * buffer keeps socket s's id from being reused (close still works; a
 * later submit gets HWSOCK_EBADF). Held buffers count against the slots
 * that blocking calls may hold, so a close always finds a slot. Waits for
 * a free slot like a send, except that it returns HWSOCK_EAGAIN instead
 * when socket s already holds a buffer that is not submitted (the program
 * would wait for itself). Errors: HWSOCK_EINVAL, HWSOCK_EBADF, the
 * socket's pending send error, the transport's error. */
HWSOCK_EXTERN int hwsock_guest_send_buf_get(hwsock_guest *g, int s,
                                            size_t want,
                                            hwsock_guest_sendbuf *sb);
/* Sends the first len bytes of the buffer on socket s (the socket it was
 * taken for) without copying them, with the hwsock_guest_send() flags
 * (HWSOCK_SEND_MORE: more follows, the device may coalesce). On a stream
 * it returns len once the request is posted: like a write-behind send it
 * completes later (at most HWSOCK_GUEST_WB_MAX per socket are in flight;
 * submitting one more first waits for the oldest), and then the slot goes
 * back to the driver. The first error such a send completes with is
 * returned by the socket's next send, submit, get,
 * hwsock_guest_send_wait() or shutdown; close waits for them first. On a
 * datagram socket it waits for the completion and returns the
 * datagram's own result (an error, e.g. an ICMP refusal of an earlier
 * datagram, is reported once, as by a datagram send). The program must
 * not touch sb->buf after submitting. Returns HWSOCK_EINVAL, leaving the
 * buffer the program's, for a token that is not held (already submitted
 * or put), len > sb->cap, or s not the buffer's socket; on every other
 * result the buffer is the driver's again (e.g. HWSOCK_EBADF: the socket
 * was closed meanwhile; the socket's pending send error). */
HWSOCK_EXTERN ssize_t hwsock_guest_send_buf_submit(hwsock_guest *g, int s,
                                                   hwsock_guest_sendbuf *sb,
                                                   size_t len,
                                                   unsigned flags);
/* Gives an unsent buffer back: 0, or HWSOCK_EINVAL for a token that is not
 * held. */
HWSOCK_EXTERN int hwsock_guest_send_buf_put(hwsock_guest *g,
                                            hwsock_guest_sendbuf *sb);
/* Waits until every send of socket s that returned before it completed
 * (submitted buffers, write-behind sends) has completed: 0, or the first
 * error one of them completed with (it stays: later sends fail too). */
HWSOCK_EXTERN int hwsock_guest_send_wait(hwsock_guest *g, int s);

/* Observability: writes the driver's own socket table to fd as text, the
 * guest-side analogue of the VMM's socket table (docs/OBSERVABILITY.md):
 * a header line, then one line per socket id in use with its id, netid,
 * state as the driver sees it, local and peer URI ("*" when unknown),
 * bytes sent and received through it, and requests in flight. The table
 * is copied under the driver's lock and written after it is released, so
 * a slow fd does not stall socket calls. Returns 0, HWSOCK_EINVAL,
 * HWSOCK_ENOMEM, or HWSOCK_EIO when writing to fd failed. */
HWSOCK_EXTERN int hwsock_guest_dump(hwsock_guest *g, int fd);

#ifdef __cplusplus
}
#endif
#endif
