/* libuv adapter (hwsock/uv.h): kick eventfds -> hwsock_device_kick(), one
 * hwsock_device_flush() per loop turn. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "hwsock/uv.h"

struct hwsock_uv {
  uv_loop_t *loop;
  hwsock_device *dev;
  uv_check_t check;
  uv_poll_t kick[HWSOCK_MAX_QUEUES];
  int kick_fd[HWSOCK_MAX_QUEUES];
  unsigned open_handles;
  int closing;
};

static void on_handle_closed(uv_handle_t *h) {
  hwsock_uv *a = h->data;
  if (--a->open_handles == 0)
    free(a);
}

static void on_check(uv_check_t *h) {
  hwsock_uv *a = h->data;
  hwsock_device_flush(a->dev);
}

static void on_kick(uv_poll_t *h, int status, int events) {
  hwsock_uv *a = h->data;
  unsigned q = (unsigned)(h - a->kick);
  uint64_t v;
  /* One read resets an eventfd's counter (not a semaphore eventfd): one
   * kick covers every write since the last one, and a second read would
   * only fail with EAGAIN, a wasted syscall per kick. */
  (void)!read(a->kick_fd[q], &v, sizeof(v));
  hwsock_device_kick(a->dev, q);
}

int hwsock_uv_new(uv_loop_t *loop, hwsock_device *dev, hwsock_uv **out) {
  if (loop == NULL || dev == NULL || out == NULL)
    return HWSOCK_EINVAL;
  hwsock_uv *a = calloc(1, sizeof(*a));
  if (a == NULL)
    return HWSOCK_ENOMEM;
  a->loop = loop;
  a->dev = dev;
  for (unsigned q = 0; q < HWSOCK_MAX_QUEUES; q++)
    a->kick_fd[q] = -1;
  uv_check_init(loop, &a->check);
  a->check.data = a;
  a->open_handles = 1;
  uv_check_start(&a->check, on_check);
  /* The check handle alone must not keep the loop alive. */
  uv_unref((uv_handle_t *)&a->check);
  *out = a;
  return 0;
}

int hwsock_uv_watch_kick(hwsock_uv *a, unsigned q, int fd) {
  if (a == NULL || q >= HWSOCK_MAX_QUEUES || fd < 0 || a->closing)
    return HWSOCK_EINVAL;
  if (a->kick_fd[q] >= 0)
    return HWSOCK_EBUSY;
  int rc = uv_poll_init(a->loop, &a->kick[q], fd);
  if (rc < 0)
    return hwsock_err_from_errno(-rc);
  a->kick[q].data = a;
  a->kick_fd[q] = fd;
  a->open_handles++;
  rc = uv_poll_start(&a->kick[q], UV_READABLE, on_kick);
  if (rc < 0)
    return hwsock_err_from_errno(-rc);
  return 0;
}

void hwsock_uv_close(hwsock_uv *a) {
  if (a == NULL || a->closing)
    return;
  a->closing = 1;
  for (unsigned q = 0; q < HWSOCK_MAX_QUEUES; q++)
    if (a->kick_fd[q] >= 0)
      uv_close((uv_handle_t *)&a->kick[q], on_handle_closed);
  uv_close((uv_handle_t *)&a->check, on_handle_closed);
}

int hwsock_eventfd_signal(int fd) {
  uint64_t one = 1;
  for (;;) {
    ssize_t n = write(fd, &one, sizeof(one));
    if (n == (ssize_t)sizeof(one))
      return 0;
    if (n < 0 && errno == EINTR)
      continue;
    /* EAGAIN: the counter is saturated, the guest will wake anyway. */
    return (n < 0 && errno != EAGAIN) ? hwsock_err_from_errno(errno) : 0;
  }
}
