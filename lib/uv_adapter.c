/* libuv adapter (hwsock/uv.h): kick eventfds -> hwsock_device_kick(), one
 * hwsock_device_flush() per loop turn, and optional adaptive polling: after
 * activity, an idle handle keeps the loop turning (epoll with a zero timeout)
 * and looks at the queues itself for poll_us, because a sleeping thread's
 * wake-up costs tens of microseconds (docs/PERFORMANCE.md). */
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
  uv_idle_t idle;      /* active while polling */
  uv_idle_t resume;    /* active while the device has work left over */
  uint64_t poll_ns;    /* 0: no polling */
  uint64_t last_work;  /* uv_hrtime() of the last request taken */
  int polling;
};

static void poll_start(hwsock_uv *a);

static void on_handle_closed(uv_handle_t *h) {
  hwsock_uv *a = h->data;
  if (--a->open_handles == 0)
    free(a);
}

/* A device whose budget ran out (hwsock_device_pending) is not kicked for
 * what is left: the idle handle keeps the loop from sleeping, so that the
 * check handle's flush takes the next budget on the next turn, after every
 * other guest's kicks and I/O of that turn (round robin). It stops as soon
 * as nothing is left: an idle device costs nothing. */
static void on_resume(uv_idle_t *h) { (void)h; }

static void resume_update(hwsock_uv *a) {
  if (a->closing)
    return;
  if (hwsock_device_pending(a->dev))
    uv_idle_start(&a->resume, on_resume);
  else
    uv_idle_stop(&a->resume);
}

static void on_check(uv_check_t *h) {
  hwsock_uv *a = h->data;
  hwsock_device_flush(a->dev);
  resume_update(a);
}

static void on_idle(uv_idle_t *h) {
  hwsock_uv *a = h->data;
  int took = 0;
  for (unsigned q = 0; q < HWSOCK_MAX_QUEUES; q++)
    if (a->kick_fd[q] >= 0 && hwsock_device_kick(a->dev, q) > 0)
      took = 1;
  uint64_t now = uv_hrtime();
  if (took)
    a->last_work = now;
  else if (now - a->last_work > a->poll_ns) {
    uv_idle_stop(&a->idle);
    a->polling = 0;
  }
}

static void poll_start(hwsock_uv *a) {
  a->last_work = uv_hrtime();
  if (a->poll_ns == 0 || a->polling || a->closing)
    return;
  a->polling = 1;
  uv_idle_start(&a->idle, on_idle);
}

static void on_kick(uv_poll_t *h, int status, int events) {
  hwsock_uv *a = h->data;
  unsigned q = (unsigned)(h - a->kick);
  uint64_t v;
  /* One read resets an eventfd's counter (not a semaphore eventfd): one
   * kick covers every write since the last one, and a second read would
   * only fail with EAGAIN, a wasted syscall per kick. */
  (void)!read(a->kick_fd[q], &v, sizeof(v));
  if (hwsock_device_kick(a->dev, q) > 0)
    poll_start(a);
  resume_update(a);
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
  uv_idle_init(loop, &a->idle);
  a->idle.data = a;
  uv_idle_init(loop, &a->resume);
  a->resume.data = a;
  a->open_handles = 3;
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
  uv_close((uv_handle_t *)&a->idle, on_handle_closed);
  uv_close((uv_handle_t *)&a->resume, on_handle_closed);
}

int hwsock_uv_set_poll(hwsock_uv *a, unsigned poll_us) {
  if (a == NULL || poll_us > HWSOCK_UV_MAX_POLL_US)
    return HWSOCK_EINVAL;
  a->poll_ns = (uint64_t)poll_us * 1000u;
  if (poll_us == 0 && a->polling) {
    uv_idle_stop(&a->idle);
    a->polling = 0;
  }
  return 0;
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
