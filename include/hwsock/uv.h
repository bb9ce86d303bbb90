/* libhwsock libuv adapter: drives a hwsock_device from a uv_loop_t.
 *
 * The device core knows no event loop; this adapter is the glue a libuv-based
 * VMM uses: it watches each queue's kick eventfd (the guest's ioeventfd),
 * calls hwsock_device_kick() when it fires, and calls hwsock_device_flush()
 * once per loop turn (from a uv_check_t), so that completions made by the
 * backends during the turn go out as one batched notification. While the
 * device has work left over from its per-turn budget
 * (hwsock_device_pending()), an idle handle keeps the loop from sleeping so
 * that the next turn's flush takes the next budget; it stops once nothing
 * is left.
 *
 * All calls on the loop's thread. */
#ifndef HWSOCK_UV_H
#define HWSOCK_UV_H

#include <uv.h>

#include "hwsock/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hwsock_uv hwsock_uv;

/* Creates an adapter for dev on loop. The device and loop must outlive it.
 * *out is the caller's; release with hwsock_uv_close(). */
HWSOCK_EXTERN int hwsock_uv_new(uv_loop_t *loop, hwsock_device *dev,
                                hwsock_uv **out);

/* Watches `fd` (an eventfd, nonblocking) as queue q's kick: each time it is
 * readable the adapter drains it and kicks the queue. The fd stays the
 * caller's (it is not closed). Errors: HWSOCK_EINVAL, HWSOCK_EBUSY (q
 * already watched), or a libuv failure mapped to HWSOCK_E*. */
HWSOCK_EXTERN int hwsock_uv_watch_kick(hwsock_uv *a, unsigned q, int fd);

/* Adaptive polling: after the device took requests, keep looking at the
 * queues from the loop (an idle handle: the loop does not sleep) until
 * poll_us microseconds pass without a new request. It trades a busy CPU for
 * the device thread's wake-up latency; worth it only when the VMM thread has
 * a CPU of its own. 0 (the default) turns it off. Errors: HWSOCK_EINVAL
 * (poll_us > HWSOCK_UV_MAX_POLL_US). */
#define HWSOCK_UV_MAX_POLL_US 100000u
HWSOCK_EXTERN int hwsock_uv_set_poll(hwsock_uv *a, unsigned poll_us);

/* Stops watching and frees the adapter once libuv has closed its handles
 * (the loop must run for that). NULL is allowed. */
HWSOCK_EXTERN void hwsock_uv_close(hwsock_uv *a);

/* Helper for ops->notify: signals an eventfd (the guest's irqfd).
 * 0 or a negative HWSOCK_E*. */
HWSOCK_EXTERN int hwsock_eventfd_signal(int fd);

#ifdef __cplusplus
}
#endif
#endif
