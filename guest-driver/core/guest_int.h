/* Internal to the guest driver core: the driver object, its request slots,
 * its socket table, and the calls shared between guest.c (setup), vq.c
 * (descriptors, submit, reap, wait) and sockets.c (the socket API).
 *
 * Locking: g->lock protects everything below except the immutable layout
 * fields set in hwsock_guest_new(). Only the current reaper touches
 * last_used and the used ring; it may read them without the lock while it
 * polls, because nobody else writes them. */
#ifndef HWSOCK_GUEST_INT_H
#define HWSOCK_GUEST_INT_H

#include <pthread.h>
#include <stdint.h>

#include "hwsock/guest.h"
#include "hwsock/uri.h"

/* Descriptors per request: [req hdr + URI] [data] [resp hdr + payload]. */
#define GUEST_MAX_SEGS 3u
/* Sanity bounds on what the device's config may make us allocate. */
#define GUEST_MAX_QUEUES 64u
#define GUEST_MAX_SOCKETS (1u << 20)
#define GUEST_MAX_IO_LEN (64u << 20)
/* Smallest bounce area that still holds any option value. */
#define GUEST_MIN_IO_LEN HWSOCK_SOCKOPT_MAX
/* Queues we set up but never use get this many entries (or fewer). */
#define GUEST_IDLE_QUEUE_SIZE 16u
/* Each queue starts on its own page (simplest correct virtio alignment). */
#define GUEST_QUEUE_ALIGN 4096u
/* Writable area offered for a GETSOCKOPT value. */
#define GUEST_OPTVAL_MAX HWSOCK_SOCKOPT_MAX
/* The reaper sleeps in ops->wait() at most this long at a time, so that
 * hwsock_guest_shutdown_transport() from another thread is noticed even
 * when the device never interrupts again. */
#define GUEST_WAIT_SLICE_MS 50
/* Default bounce size per slot and default queue size. */
#define GUEST_DEFAULT_IO_LEN (64u << 10)
#define GUEST_DEFAULT_QUEUE_SIZE 256u
/* The event queue: entries (= buffers), bytes per buffer, windows. */
#define GUEST_EV_QUEUE_SIZE 256u
#define GUEST_EV_BUF_LEN (16u << 10)
/* With UDP and no ev_buf_len asked for, a buffer holds the largest
 * datagram the device delivers (header + URI area + data, PROTOCOL.md
 * §16.2; data at most max_io_len and UDP's 65,535), not truncated, and there
 * are fewer of them: 128 x 65,648 bytes = 8,402,944 (256 x 16 KiB was
 * 4 MiB; 64 let load_stall's event queue run dry 1,560 times), unless that
 * takes more than half of the memory (docs/GUEST-DRIVER.md). */
#define GUEST_EV_DGRAM_MAX 65535u
#define GUEST_EV_BIG_QUEUE_SIZE 128u
#define GUEST_EV_WINDOW (256u << 10)
#define GUEST_EV_DGRAM_WINDOW 64u
/* The windows of all sockets together may exceed the buffers many times
 * (PROTOCOL.md §16.3): once fewer than nbuf / GUEST_EV_RESERVE_DIV buffers
 * (at least 1) are left with the device, new data is copied out of its
 * buffer to the heap and the buffer goes back at once. Nor does one socket
 * keep more buffers than a stream window fills (window / data room + 1):
 * a peer that trickles small events to a reader that has stopped would
 * otherwise hold a buffer per event, up to the reserve, and the device
 * would find the event queue empty while the other sockets wait
 * (load_stall_trickle: ev_no_buffer); its further data is copied too. */
#define GUEST_EV_RESERVE_DIV 4u
/* A stream's first heap copy has room for this many bytes; later events
 * fill it, the next copy has twice the room (up to a buffer). */
#define GUEST_EV_SPILL_MIN 256u
#define GUEST_RX_CONDS 64u
/* The event thread's sleep while callers wait for slots (events.c). */
#define GUEST_RECLAIM_SLICE_MS 2
/* Largest wire status passed through as -(status); above it is garbage. */
#define GUEST_MAX_STATUS 4095u

enum { SLOT_FREE, SLOT_POSTED, SLOT_DONE };

typedef struct guest_slot {
  int state;         /* SLOT_* */
  int waiting;       /* the owner sleeps on cond (may take over reaping) */
  int blocking;      /* holds one of the nslots - 1 blocking places */
  uint16_t head;     /* head descriptor while posted */
  uint16_t ndesc;    /* descriptors taken from the table */
  uint16_t desc[GUEST_MAX_SEGS];
  uint32_t in_len;   /* writable bytes offered (resp hdr + payload) */
  uint32_t used_len; /* bytes the device says it wrote */
  uint64_t tag;
  pthread_cond_t cond;
  /* held by the program as a zero-copy send buffer (sendbuf.c): for which
   * socket, how many bytes it was given, and the token's ticket */
  uint8_t zc;
  int zc_sock;
  uint32_t zc_cap;
  uint64_t zc_ticket;
} guest_slot;

enum { SOCK_FREE, SOCK_RESERVED, SOCK_OPEN, SOCK_CLOSING, SOCK_CLOSED };

/* What the driver knows of a connection, for hwsock_guest_dump(). */
enum { CONN_NONE, CONN_LISTEN, CONN_ESTAB };

typedef struct guest_sock {
  uint8_t state;     /* SOCK_* */
  uint32_t inflight; /* requests naming this id not yet finished */
  /* Observability (dump.c), updated by hwsock__sock_account() as calls
   * succeed; reset when the id is reserved. */
  uint8_t family, type; /* from OPEN (accepted sockets: the listener's) */
  uint8_t conn;         /* CONN_* */
  uint8_t shut_wr;      /* the guest shut down its sending side */
  uint8_t eof;          /* a stream RECV returned end of file */
  uint8_t has_local, has_peer;
  uint64_t bytes_out, bytes_in;
  hwsock_addr local; /* last BIND */
  hwsock_addr peer;  /* last CONNECT, or the peer of an accept */
  /* write-behind sends (sockets.c): started, not yet waited for, oldest
   * first; wb_err is the first error one of them completed with. */
  unsigned wb_slot[HWSOCK_GUEST_WB_MAX];
  uint8_t wb_head, wb_n;
  int wb_err;
  /* event queue (events.c) */
  uint8_t ev_on;       /* CREDIT granted: input arrives as events */
  uint8_t ev_no;       /* CREDIT refused: RECV requests as before */
  uint8_t ev_eof, ev_acceptable, ev_writable, ev_armed;
  uint8_t interest;    /* HWSOCK_GUEST_* watched */
  uint8_t in_ready;    /* linked in the ready list */
  uint8_t ev_hold;     /* CLOSE sent: the id waits for the events drained */
  int ev_err;          /* an ERROR event, reported once */
  uint8_t ev_failed;   /* an ERROR event came: ready for every interest,
                          for good (as poll's POLLERR, then POLLOUT) */
  int ev_soft;         /* a datagram socket's soft error (ERROR with
                          EV_F_SOFT): pending until the next recv, send or
                          SO_ERROR reports it, once, as the kernel's sk_err */
  struct guest_rx *rx_head, *rx_tail; /* data not yet read, oldest first */
  uint32_t rx_off;     /* bytes of the head entry consumed */
  uint32_t consumed;   /* credit consumed, not yet returned */
  uint32_t ready_next; /* ready list link, id + 1 */
  uint32_t ev_nbufs;   /* event buffers on the receive list (not copies) */
} guest_sock;

/* Data of one DATA event on a socket's receive list (events.c): in its
 * event buffer, or copied out of it to the heap when the buffers ran low
 * (spilled), so that data the program has not read yet never holds the
 * device's buffers from the sockets it reads. */
typedef struct guest_rx {
  struct guest_rx *next; /* the socket's receive list */
  uint8_t *data;   /* the data; a datagram's source URI ends where it starts
                      (HWSOCK_EV_URI_AREA bytes before it) */
  uint32_t len;    /* data bytes */
  uint32_t cap;    /* a heap copy's room for data (a stream's copy grows
                      in place by later events) */
  uint32_t val;    /* datagram full length */
  uint16_t flags;  /* HWSOCK_EV_F_* */
  uint16_t uri_len;
  int32_t buf;     /* event buffer index; -1: a heap copy (one allocation
                      with this header) */
} guest_rx;

/* One event buffer (events.c). */
typedef struct guest_evbuf {
  guest_rx rx;     /* rx.buf is this buffer's index, for good */
  uint8_t posted;  /* owned by the device */
} guest_evbuf;

struct hwsock_guest {
  pthread_mutex_t lock;
  const hwsock_guest_ops *ops;
  void *opaque;
  uint64_t features;
  int event_idx, indirect, poll_us, write_behind;
  unsigned poll_cur; /* the reaper's poll window now, <= poll_us (pollwin.h);
                       only the reaper reads or writes it */
  unsigned nqueues;

  /* queue 0: the request queue */
  unsigned qsize;
  uint16_t qmask;
  hwsock_vring_desc *desc;
  hwsock_vring_avail *avail;
  hwsock_vring_used *used;
  volatile hwsock_le16 *used_event;  /* trailing field of the avail ring */
  volatile hwsock_le16 *avail_event; /* trailing field of the used ring */
  uint16_t avail_idx;                /* our shadow of avail->idx */
  uint16_t last_used;                /* next used entry to reap */
  uint16_t *desc_next;               /* free-list links, qsize entries */
  uint16_t desc_free;                /* free-list head */
  unsigned ndesc_free;
  uint16_t *head_slot;               /* head -> slot index + 1, 0 = none */

  /* request slots: [indirect table][req hdr|URI][resp hdr|payload] */
  unsigned nslots;
  guest_slot *slots;
  struct guest_call *slot_call; /* write-behind: the call of a started send */
  unsigned *slot_stack; /* free slot indices */
  unsigned nslot_free;
  unsigned slot_waiters;
  unsigned nblocking; /* slots held by CONNECT/ACCEPT/RECV */
  pthread_cond_t slot_cond;
  uint8_t *slot_mem;
  uint64_t slot_gpa;
  size_t slot_stride, req_off, resp_off;
  unsigned io_len;  /* data bytes per request */
  unsigned uri_max; /* URI bytes per request (the device's max_uri_len) */
  uint64_t next_tag;

  int reaper;   /* a thread is reaping (polling or in ops->wait) */
  unsigned nwaiting; /* callers inside wait_slot (reaper included) */
  int broken;   /* 0 or the error every call now fails with */
  uint64_t zc_next; /* the last send-buffer ticket given out (sendbuf.c) */

  /* the event queue (events.c): off without F_EVENT_QUEUE */
  int evq_on;
  unsigned evq;                      /* its queue index */
  unsigned ev_nbuf, ev_buf_len;      /* buffers = queue entries */
  uint16_t ev_mask;
  hwsock_vring_desc *ev_desc;
  hwsock_vring_avail *ev_avail;
  hwsock_vring_used *ev_used;
  volatile hwsock_le16 *ev_used_event, *ev_avail_event;
  uint16_t ev_avail_idx, ev_last_used;
  uint8_t *ev_mem;
  uint64_t ev_gpa;
  guest_evbuf *evbufs;
  unsigned ev_nposted;               /* buffers the device holds */
  uint32_t ev_window, ev_dgram_window;
  pthread_t ev_thread;
  int ev_thread_on, ev_stop;
  pthread_cond_t ev_cond;            /* events arrived (wait, close) */
  /* recv() of socket s sleeps on rx_cond[s % GUEST_RX_CONDS]: an event
   * wakes the readers of a few sockets, not of thousands */
  pthread_cond_t rx_cond[GUEST_RX_CONDS];
  uint32_t ready_head, ready_tail;   /* ids + 1 */

  /* socket table: ids 0..nsock-1; bit set in sock_free = id free */
  unsigned nsock;
  guest_sock *socks;
  uint64_t *sock_free;
  unsigned sock_hint; /* no free bit in words below this one */
};

/* How a call uses its socket id. */
enum {
  CALL_SOCK_USE,    /* the id must be open */
  CALL_SOCK_NEW,    /* OPEN: reserve the lowest free id (out: sock) */
  CALL_SOCK_ACCEPT, /* the id must be open; reserve another for arg1 */
  CALL_SOCK_CLOSE   /* the id must be open; it is released afterwards */
};

/* One request, described by the API layer and run by hwsock__guest_call. */
struct guest_call;
typedef struct guest_call {
  uint16_t op;
  int rule;  /* CALL_SOCK_* */
  int sock;  /* in (or out for CALL_SOCK_NEW) */
  uint32_t arg0, arg1;
  const char *uri; /* readable URI, uri_len bytes (<= uri_max) */
  size_t uri_len;
  const void *out; /* readable data, out_len bytes (<= io_len) */
  size_t out_len;
  uint32_t in_uri;  /* writable bytes reserved for a URI (<= uri_max) */
  uint32_t in_len;  /* writable data bytes after them (<= io_len) */
  void *in_buf;     /* receives the data (resp.len bytes) */
  char *uri_buf;    /* receives the URI, NUL-terminated, may be NULL */
  size_t uri_buf_len;
  /* results, valid when the call returns 0 */
  uint32_t len, flags, val;
  /* a send buffer (sendbuf.c): the slot is already the caller's and the
   * out_len bytes are already in its data area (out is not read) */
  int held;
  unsigned held_slot;
} guest_call;

/* Runs one request to completion: takes a slot (waiting for one), checks
 * and updates the socket table, posts, kicks, waits, validates and copies
 * the response out. Returns 0, -(status) of the response, or the transport
 * error. */
int hwsock__guest_call(hwsock_guest *g, guest_call *c);

/* hwsock__guest_call in two halves, so that one thread may keep several
 * requests in flight (pipelined sends). start posts the request and sets
 * *slot; without may_wait it returns HWSOCK_EAGAIN instead of waiting for a
 * free slot. wait finishes a started request: every started request must be
 * waited for, in any order. */
int hwsock__guest_start(hwsock_guest *g, guest_call *c, unsigned *slot,
                        int may_wait);
int hwsock__guest_wait(hwsock_guest *g, unsigned slot, guest_call *c);

/* Send buffers (sendbuf.c), lock held: takes a free slot for the program
 * as a blocking one (it may be held for ever, so it counts against the
 * nslots - 1 places and a CLOSE always finds a slot), or HWSOCK_EAGAIN
 * when none may be taken now, or the transport's error; gives a slot back;
 * the slot's data area (io_len bytes, 16-aligned). */
int hwsock__slot_hold(hwsock_guest *g, unsigned *idx);
void hwsock__slot_release(hwsock_guest *g, unsigned idx);
void *hwsock__slot_data(hwsock_guest *g, unsigned idx);

/* Marks the transport failed with err (first failure wins) and wakes every
 * waiter. Lock held. */
void hwsock__guest_fail(hwsock_guest *g, int err);

/* events.c */
/* Lays out and starts the event queue (after the device started) and its
 * thread; stops and frees them. */
int hwsock__ev_start(hwsock_guest *g);
void hwsock__ev_stop(hwsock_guest *g);
/* recv through the event queue: > 0 handled (*ret set), 0 not in event
 * mode (use a RECV request). */
int hwsock__ev_recv(hwsock_guest *g, int s, void *buf, size_t len,
                    unsigned flags, char *uri, size_t uri_len,
                    unsigned *resp_flags, ssize_t *ret);
/* Takes socket s's pending soft error (a datagram socket's ICMP error
 * through the event queue), or 0. Lock held. */
int hwsock__ev_soft_take(hwsock_guest *g, int s);
/* close in event mode: before the CLOSE (hold the id) and after it. */
void hwsock__ev_close_begin(hwsock_guest *g, int s);
void hwsock__ev_close_end(hwsock_guest *g, int s);
/* vq.c: reaps queue 0 when no caller is the reaper. Lock held. */
void hwsock__guest_reap_idle(hwsock_guest *g);
/* writebehind.c: frees the slots of completed write-behind sends nobody waits
 * for (no lock held). */
void hwsock__wb_reclaim(hwsock_guest *g);
/* Finishes socket s's oldest write-behind send (writebehind.c): only when
 * the device completed it (only_done), else waiting for it. 1 when one was
 * finished, 0 when there was none. Lock not held. */
int hwsock__wb_finish_oldest(hwsock_guest *g, int s, int only_done);
/* The error socket s's write-behind sends completed with, for a call to
 * report (writebehind.c, lock held): a stream's stays (the device
 * completes a socket's sends in order, so every later send fails too); a
 * datagram's is its own (an ICMP refusal of an earlier datagram) and is
 * reported once, as a kernel reports it on the next call, then cleared. */
int hwsock__wb_err_take(hwsock_guest *g, int s);
/* accept in event mode (err: what the accept returned): the ACCEPTABLE
 * state is consumed; re-armed, unless the accept failed for the listener
 * itself (events.c). */
void hwsock__ev_accepted(hwsock_guest *g, int s, int err);

/* Socket table, lock held. */
int hwsock__sock_alloc(hwsock_guest *g);
void hwsock__sock_release(hwsock_guest *g, unsigned id);
/* Records what a call that completed with status 0 did to its socket
 * (state, names, byte counts). Lock held; the call still holds its id. */
void hwsock__sock_account(hwsock_guest *g, const guest_call *c);

#endif
