/* libhwsock-uv embed mode: a device driven from a VMM's own event loop
 * (epoll, poll, GLib, a Rust executor, ...) without the VMM touching libuv.
 *
 * The built-in backends need a libuv loop (config.backend_loop). An embed
 * object owns a private one and gives the VMM the three things any loop can
 * use: one file descriptor to watch for readability, one timeout, and one
 * call to make when either fires:
 *
 *   hwsock_embed *e;  hwsock_embed_new(&e);
 *   cfg.backend_loop = hwsock_embed_loop(e);    (before hwsock_device_new)
 *   hwsock_device_new(&cfg, &dev); regions; backends;
 *   hwsock_embed_attach(e, dev);                (the embed owns dev now)
 *   hwsock_embed_watch_kick(e, q, kick_eventfd) per queue
 *   epoll_ctl(ep, EPOLL_CTL_ADD, hwsock_embed_fd(e), {EPOLLIN})
 *   for (;;) { n = epoll_wait(ep, ev, N, hwsock_embed_timeout_ms(e));
 *              ...the VMM's own fds...; hwsock_embed_run(e); }
 *
 * It takes care of what nesting libuv in another loop gets wrong
 * (docs/EMBEDDING.md, "Your own event loop"): the fd is never left readable
 * with nothing to do, the timeout of an idle device is -1 (or the next
 * backend timer), never 0, and I/O that the device starts during a run
 * (including from the flush at its end) is registered before the run
 * returns, so no wake-up is lost.
 *
 * Threaded mode: hwsock_embed_thread_start() runs the loop on a thread of
 * its own (how an out-of-process device runs); kicks arrive as eventfds,
 * interrupts leave through ops->notify (hwsock_eventfd_signal on the
 * guest's irqfd), and every other device call goes through
 * hwsock_embed_call(), which runs it on the device thread.
 *
 * Without a thread: every call on one thread at a time, the VMM's loop
 * thread. With a thread: hwsock_embed_call(), hwsock_embed_thread_stop()
 * and hwsock_embed_free() from any one other thread. */
#ifndef HWSOCK_EMBED_H
#define HWSOCK_EMBED_H

#include "hwsock/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hwsock_embed hwsock_embed;

/* Creates an embed object with its own private loop. Errors: HWSOCK_ENOMEM,
 * or the loop's creation failure. Release with hwsock_embed_free(). */
HWSOCK_EXTERN int hwsock_embed_new(hwsock_embed **out);

/* The value for hwsock_device_config.backend_loop of the device to attach
 * (a uv_loop_t *, opaque to the VMM). */
HWSOCK_EXTERN void *hwsock_embed_loop(hwsock_embed *e);

/* Attaches dev, created with backend_loop = hwsock_embed_loop(e). The
 * embed owns it from now on: hwsock_embed_free() frees it, and the
 * device's handles are closed before the loop is. One device per embed.
 * Errors: HWSOCK_EINVAL, HWSOCK_EBUSY (one already attached),
 * HWSOCK_ENOMEM. */
HWSOCK_EXTERN int hwsock_embed_attach(hwsock_embed *e, hwsock_device *dev);

/* Watches `fd` (a nonblocking eventfd, the guest's ioeventfd) as queue q's
 * kick; it becomes part of what hwsock_embed_fd() reports. The fd stays the
 * caller's. Errors: as hwsock_uv_watch_kick(); HWSOCK_EINVAL before
 * hwsock_embed_attach(). */
HWSOCK_EXTERN int hwsock_embed_watch_kick(hwsock_embed *e, unsigned q, int fd);

/* Kicks queue q from the VMM's thread (a trapped notify write handled on
 * the loop thread itself); the next hwsock_embed_timeout_ms() is 0 so that
 * the completions it started are flushed by a run. Returns as
 * hwsock_device_kick(). */
HWSOCK_EXTERN int hwsock_embed_kick(hwsock_embed *e, unsigned q);

/* The one fd to watch for readability (an epoll fd; level-triggered). */
HWSOCK_EXTERN int hwsock_embed_fd(const hwsock_embed *e);

/* Milliseconds until hwsock_embed_run() must be called even if the fd
 * stays quiet: -1 (wait for the fd only), 0 (run now: work is left, a
 * handle is closing, I/O is not registered yet), or the next timer. Ask
 * right before sleeping, after every call into the device. */
HWSOCK_EXTERN int hwsock_embed_timeout_ms(const hwsock_embed *e);

/* Does everything that is due without blocking: I/O, timers, kicks, one
 * flush of the device, and the registration of whatever that started.
 * Call it when the fd is readable or the timeout expired (calling it more
 * often is harmless). Returns 0, or HWSOCK_EINVAL (threaded mode). */
HWSOCK_EXTERN int hwsock_embed_run(hwsock_embed *e);

/* Threaded mode: runs the loop on a new thread until
 * hwsock_embed_thread_stop() or hwsock_embed_free(). hwsock_embed_fd,
 * _timeout_ms, _run and _kick are not used then. Errors: HWSOCK_EINVAL
 * (no device, already running), or the thread's creation failure. */
HWSOCK_EXTERN int hwsock_embed_thread_start(hwsock_embed *e);

/* Runs fn(dev, arg) on the device thread and returns its result: the way
 * to call hwsock_device_set_features, _queue_setup, _start, _reset, ...
 * while a thread runs the device. Without a thread (or from the device
 * thread itself, e.g. in an ops callback) it calls fn at once. Errors:
 * HWSOCK_EINVAL (no device attached). */
typedef int (*hwsock_embed_fn)(hwsock_device *dev, void *arg);
HWSOCK_EXTERN int hwsock_embed_call(hwsock_embed *e, hwsock_embed_fn fn,
                                    void *arg);

/* Stops the device thread and waits for it (the device stays attached and
 * may be run from the caller's loop again). No-op without a thread. */
HWSOCK_EXTERN void hwsock_embed_thread_stop(hwsock_embed *e);

/* Stops the thread if any, frees the attached device (host sockets close),
 * lets the loop finish closing every handle, and frees the embed. The
 * VMM's kick eventfds and guest memory may go after it returns. NULL is
 * allowed. */
HWSOCK_EXTERN void hwsock_embed_free(hwsock_embed *e);

#ifdef __cplusplus
}
#endif
#endif
