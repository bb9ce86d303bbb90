/* libhwsock-guest loopback attach: a guest process joins a loopback VMM.
 *
 * hwsock_attach() connects to the VMM's unix socket and speaks the loopback
 * attach transport (specified in docs/PROTOCOL.md §14; messages in
 * hwsock/loopback.h): it says HELLO, maps the guest memory the VMM created
 * (a memfd, MAP_SHARED), takes the per-queue kick and call eventfds, and
 * starts a guest driver (hwsock/guest.h) over that memory with a transport
 * that:
 *   - sends FEATURES / QUEUE / START as request-reply messages (setup only),
 *   - kicks a queue by writing its kick eventfd (the ioeventfd),
 *   - waits for an interrupt with poll() on the queue's call eventfd (the
 *     irqfd) AND the socket: NEEDS_RESET or a hang-up of the VMM ends the
 *     wait with HWSOCK_ECONNRESET, so a guest never hangs on a dead VMM.
 *
 * Threads: the driver's socket calls may come from any threads (guest.h);
 * hwsock_attach() and hwsock_attach_close() from one thread, with no call
 * of the driver in progress during hwsock_attach_close(). */
#ifndef HWSOCK_ATTACH_H
#define HWSOCK_ATTACH_H

#include "hwsock/common.h"
#include "hwsock/guest.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hwsock_attachment hwsock_attachment;

/* Attach options. Initialise with hwsock_attach_opts_init(); `size` lets
 * later versions append fields. The driver fields are passed to
 * hwsock_guest_config (0 = the driver's default). */
typedef struct hwsock_attach_opts {
  uint32_t size;       /* sizeof(hwsock_attach_opts) */
  unsigned queue_size; /* entries per queue (power of 2) */
  unsigned io_len;     /* bounce bytes per request slot */
  unsigned slots;      /* request slots */
  int event_idx;       /* negotiate HWSOCK_F_EVENT_IDX (default 1) */
  int indirect;        /* negotiate HWSOCK_F_INDIRECT_DESC (default 1) */
  int poll_us;         /* busy-poll before sleeping in wait (default 0) */
  int setup_timeout_ms; /* longest wait for each setup reply of the VMM;
                           default 10000, -1 = no limit */
  int write_behind;    /* hwsock_guest_config.write_behind (default 0) */
  /* ---- appended (present when size covers it) ---- */
  int event_queue;     /* hwsock_guest_config.event_queue (default 0); the
                          VMM must give the device >= 2 queues */
} hwsock_attach_opts;

/* Zeroes the caller's struct, sets its size and the defaults.
 * hwsock_attach_opts_init(opts) passes sizeof(*opts) as the caller's header
 * has it, so the library never writes beyond the caller's struct. (The
 * plain function, which binaries built against 0.1.0 call, initialises the
 * 0.1.0 struct.) */
HWSOCK_EXTERN void hwsock_attach_opts_init_sized(hwsock_attach_opts *opts,
                                                 size_t size);
HWSOCK_EXTERN void(hwsock_attach_opts_init)(hwsock_attach_opts *opts);
#define hwsock_attach_opts_init(opts)                                          \
  hwsock_attach_opts_init_sized((opts), sizeof(*(opts)))

/* Attaches to the loopback VMM listening at vmm_path. opts may be NULL (the
 * defaults). On success *out is the caller's, to release with
 * hwsock_attach_close(). Errors: HWSOCK_EINVAL (bad arguments),
 * HWSOCK_ENAMETOOLONG (path too long for a unix socket), HWSOCK_ENOENT /
 * HWSOCK_ECONNREFUSED (no VMM there), HWSOCK_EPROTO (the VMM broke the
 * loopback protocol or speaks another version), HWSOCK_ETIMEDOUT (a setup
 * reply did not come in time), HWSOCK_ECONNRESET (the VMM hung up), the
 * status the VMM answered, or what hwsock_guest_new() returned. */
HWSOCK_EXTERN int hwsock_attach(const char *vmm_path,
                                const hwsock_attach_opts *opts,
                                hwsock_attachment **out);

/* The driver running over the attachment. Owned by a: valid until
 * hwsock_attach_close(a). Never NULL for an attachment that exists. */
HWSOCK_EXTERN hwsock_guest *hwsock_attach_guest(hwsock_attachment *a);

/* Why the device stopped: the HWSOCK_RESET_* code (hwsock/wire.h,
 * PROTOCOL.md §2.8) the VMM sent in NEEDS_RESET (§14), as soon as a wait of
 * the driver has seen that message (the call that waited then failed with
 * HWSOCK_ECONNRESET). 0 while the device is healthy, after a plain hang-up
 * of the VMM, or when the VMM did not know the code; a value above
 * HWSOCK_RESET_MAX_ is a code newer than this header. Safe from any thread,
 * also during driver calls; valid until hwsock_attach_close(a) (NULL: 0).
 * The code stays set for the life of the attachment. */
HWSOCK_EXTERN int hwsock_attach_reset_reason(const hwsock_attachment *a);

/* Frees the driver, unmaps guest memory, closes the socket (the VMM then
 * closes every host socket this guest had) and every eventfd. No driver
 * call may be in progress. NULL is allowed. */
HWSOCK_EXTERN void hwsock_attach_close(hwsock_attachment *a);

#ifdef __cplusplus
}
#endif
#endif
