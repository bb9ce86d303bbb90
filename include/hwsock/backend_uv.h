/* libhwsock backend helpers for a backend on libuv whose sockets are host
 * fds watched by a uv_poll_t (as the built-in tcp and udp backends are).
 *
 * Header-only, like hwsock/backend_util.h (docs/PLUGINS.md, "Helpers"): a
 * plugin that includes it builds against libuv's header and links nothing
 * more than libuv, which such a backend links anyway. */
#ifndef HWSOCK_BACKEND_UV_H
#define HWSOCK_BACKEND_UV_H

#include <unistd.h>
#include <uv.h>

#include "hwsock/backend_util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For close(): ends a socket that is the host fd *fd watched by *poll.
 * uv_close() takes the fd out of the poller at once, so the fd is closed
 * here (its port is free when this returns) and *fd set to -1; the memory
 * goes in close_cb, which libuv calls after every pending callback of the
 * handle, on a later turn of the loop. Cancel the socket's requests first:
 * nothing of the socket may be used after close_cb. */
static inline void hwsock_uv_close_poll_fd(uv_poll_t *poll, int *fd,
                                           uv_close_cb close_cb) {
  uv_close((uv_handle_t *)poll, close_cb);
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

#ifdef __cplusplus
}
#endif
#endif
