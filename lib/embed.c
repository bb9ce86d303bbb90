/* Embed mode (hwsock/embed.h): a private libuv loop behind one fd, one
 * timeout and one run call, for a VMM with a loop of its own; and the same
 * loop on a thread of its own.
 *
 * Three traps of nesting libuv (uv_backend_fd/uv_backend_timeout/
 * uv_run(UV_RUN_NOWAIT)) in another loop, and what we do about each:
 *  - A watcher that libuv stopped stays in its epoll set until libuv polls
 *    again (it removes it lazily, when an event for it shows up). A loop
 *    with no active handle never polls: uv_run returns at once, and the
 *    backend fd stays readable for ever, a busy loop in the VMM. Our async
 *    handle (`wake`) is always active, so every run polls (timeout 0) and
 *    drops such entries.
 *  - uv_backend_timeout() is 0 for a loop with no active handle, i.e. an
 *    idle device would make the VMM spin; with `wake` active it is -1 or
 *    the next timer.
 *  - Watchers started by callbacks (a backend's read after a connect, what
 *    the device starts from the flush in the check phase) only reach the
 *    epoll set at libuv's next poll: the VMM would sleep on an fd that does
 *    not know about them. hwsock_embed_run() polls again (timeout 0) while
 *    libuv has unregistered watchers, and hwsock_embed_timeout_ms() is 0
 *    while any remain. */
#include <pthread.h>
#include <stdlib.h>
#include <uv.h>

#include "hwsock/embed.h"
#include "hwsock/uv.h"

/* Passes of one run: each registers what the previous one started. A
 * device that keeps starting work is left for the next run (timeout 0). */
#define EMBED_MAX_PASSES 8

struct embed_call {
  hwsock_embed_fn fn;
  void *arg;
  int rc;
  int done;
  struct embed_call *next;
};

struct hwsock_embed {
  uv_loop_t loop;
  uv_async_t wake; /* always active: see the top of this file */
  hwsock_device *dev;
  hwsock_uv *uv;
  int kicked; /* hwsock_embed_kick since the last run: flush soon */
  /* threaded mode */
  pthread_t thread;
  int threaded;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct embed_call *calls; /* under mu */
  int stop;                 /* under mu */
};

/* libuv keeps watchers waiting for epoll_ctl on loop->watcher_queue (not
 * part of its API, but part of its public struct on unix). */
static int unregistered_watchers(const uv_loop_t *l) {
#if UV_VERSION_HEX >= 0x012d00 /* 1.45: struct uv__queue */
  return l->watcher_queue.next != &l->watcher_queue;
#else /* QUEUE: void *[2], empty when it points at itself */
  return l->watcher_queue[0] != (void *)&l->watcher_queue[0];
#endif
}

static void on_wake(uv_async_t *h) {
  hwsock_embed *e = h->data;
  pthread_mutex_lock(&e->mu);
  struct embed_call *c = e->calls;
  e->calls = NULL;
  int stop = e->stop;
  pthread_mutex_unlock(&e->mu);
  /* Run outside the lock: a call may take a while, or call back into us. */
  for (struct embed_call *next; c != NULL; c = next) {
    next = c->next;
    int rc = c->fn(e->dev, c->arg);
    pthread_mutex_lock(&e->mu);
    c->rc = rc;
    c->done = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
  }
  if (stop)
    uv_stop(&e->loop);
}

int hwsock_embed_new(hwsock_embed **out) {
  if (out == NULL)
    return HWSOCK_EINVAL;
  hwsock_embed *e = calloc(1, sizeof(*e));
  if (e == NULL)
    return HWSOCK_ENOMEM;
  int rc = uv_loop_init(&e->loop);
  if (rc < 0) {
    free(e);
    return hwsock_err_from_errno(-rc);
  }
  rc = uv_async_init(&e->loop, &e->wake, on_wake);
  if (rc < 0) {
    uv_loop_close(&e->loop);
    free(e);
    return hwsock_err_from_errno(-rc);
  }
  e->wake.data = e;
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  *out = e;
  return 0;
}

void *hwsock_embed_loop(hwsock_embed *e) { return e != NULL ? &e->loop : NULL; }

int hwsock_embed_attach(hwsock_embed *e, hwsock_device *dev) {
  if (e == NULL || dev == NULL)
    return HWSOCK_EINVAL;
  if (e->dev != NULL)
    return HWSOCK_EBUSY;
  int rc = hwsock_uv_new(&e->loop, dev, &e->uv);
  if (rc < 0)
    return rc;
  e->dev = dev;
  return 0;
}

int hwsock_embed_watch_kick(hwsock_embed *e, unsigned q, int fd) {
  if (e == NULL || e->uv == NULL)
    return HWSOCK_EINVAL;
  return hwsock_uv_watch_kick(e->uv, q, fd);
}

int hwsock_embed_kick(hwsock_embed *e, unsigned q) {
  if (e == NULL || e->dev == NULL)
    return HWSOCK_EINVAL;
  e->kicked = 1;
  return hwsock_device_kick(e->dev, q);
}

int hwsock_embed_fd(const hwsock_embed *e) {
  return e != NULL ? uv_backend_fd(&e->loop) : -1;
}

int hwsock_embed_timeout_ms(const hwsock_embed *e) {
  if (e == NULL)
    return -1;
  if (e->kicked || unregistered_watchers(&e->loop))
    return 0;
  /* pending/idle (the adapter's resume handle while the device has work
   * left from its budget), closing handles: 0; else the next timer, or -1
   * (the always-active `wake` keeps it from being 0 when idle). */
  return uv_backend_timeout(&e->loop);
}

int hwsock_embed_run(hwsock_embed *e) {
  if (e == NULL || e->threaded)
    return HWSOCK_EINVAL;
  e->kicked = 0;
  for (int pass = 0; pass < EMBED_MAX_PASSES; pass++) {
    uv_run(&e->loop, UV_RUN_NOWAIT);
    if (!unregistered_watchers(&e->loop))
      break;
  }
  return 0;
}

static void *thread_main(void *arg) {
  hwsock_embed *e = arg;
  /* `wake` keeps the loop alive: this returns at uv_stop() only. */
  uv_run(&e->loop, UV_RUN_DEFAULT);
  return NULL;
}

int hwsock_embed_thread_start(hwsock_embed *e) {
  if (e == NULL || e->dev == NULL || e->threaded)
    return HWSOCK_EINVAL;
  pthread_mutex_lock(&e->mu);
  e->stop = 0;
  pthread_mutex_unlock(&e->mu);
  e->threaded = 1;
  int rc = pthread_create(&e->thread, NULL, thread_main, e);
  if (rc != 0) {
    e->threaded = 0;
    return hwsock_err_from_errno(rc);
  }
  return 0;
}

int hwsock_embed_call(hwsock_embed *e, hwsock_embed_fn fn, void *arg) {
  if (e == NULL || e->dev == NULL || fn == NULL)
    return HWSOCK_EINVAL;
  if (!e->threaded || pthread_equal(pthread_self(), e->thread))
    return fn(e->dev, arg);
  struct embed_call c = {.fn = fn, .arg = arg};
  pthread_mutex_lock(&e->mu);
  c.next = e->calls;
  e->calls = &c;
  pthread_mutex_unlock(&e->mu);
  uv_async_send(&e->wake);
  pthread_mutex_lock(&e->mu);
  while (!c.done)
    pthread_cond_wait(&e->cv, &e->mu);
  pthread_mutex_unlock(&e->mu);
  return c.rc;
}

void hwsock_embed_thread_stop(hwsock_embed *e) {
  if (e == NULL || !e->threaded)
    return;
  pthread_mutex_lock(&e->mu);
  e->stop = 1;
  pthread_mutex_unlock(&e->mu);
  uv_async_send(&e->wake);
  pthread_join(e->thread, NULL);
  e->threaded = 0;
}

void hwsock_embed_free(hwsock_embed *e) {
  if (e == NULL)
    return;
  hwsock_embed_thread_stop(e);
  /* The adapter first (nothing kicks or flushes a freed device), then the
   * device (its backends close their handles), then our own handle; the
   * loop runs until every close callback has been called. */
  hwsock_uv_close(e->uv);
  hwsock_device_free(e->dev);
  uv_close((uv_handle_t *)&e->wake, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&e->loop) != 0)
    return; /* a handle nobody closes: leak the loop rather than free it */
  pthread_cond_destroy(&e->cv);
  pthread_mutex_destroy(&e->mu);
  free(e);
}
