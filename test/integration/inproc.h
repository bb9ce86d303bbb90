/* Test support: a whole device and guest driver in one process.
 *
 * The device runs on its own thread with a libuv loop (the VMM side); the
 * test's threads are the guest. They share one block of memory as guest
 * RAM and talk through eventfds (kick = ioeventfd, call = irqfd), exactly as
 * the loopback VMM does across processes. */
#ifndef HWSOCK_TEST_INPROC_H
#define HWSOCK_TEST_INPROC_H

#include <pthread.h>
#include <uv.h>

#include "hwsock/device.h"
#include "hwsock/guest.h"
#include "hwsock/stats.h"
#include "hwsock/uv.h"

#define INPROC_MAX_PLUGINS 4

typedef struct inproc_opts {
  const char *policy_yaml;         /* NULL: the built-in default policy */
  const char *backends[INPROC_MAX_PLUGINS + 1]; /* names, NULL-terminated;
                                      all NULL: {"tcp", "deny"} */
  size_t mem_size;                 /* 0: 32 MiB */
  unsigned io_len;                 /* guest bounce per request; 0: 64 KiB */
  int no_event_idx, no_indirect;   /* negotiate less */
  unsigned poll_us;                /* adaptive polling on both sides */
  int write_behind;                /* hwsock_guest_config.write_behind */
  /* Extra backend modules loaded by path after the named ones (e.g. an
   * out-of-tree plugin), NULL-terminated; together with `backends` at most
   * INPROC_MAX_PLUGINS modules. */
  const char *plugin_paths[INPROC_MAX_PLUGINS + 1];
} inproc_opts;

typedef struct inproc {
  uv_loop_t loop;
  uv_async_t stop;
  pthread_t thread;
  hwsock_device *dev;
  hwsock_uv *adapter;
  hwsock_policy *policy;
  hwsock_plugin *plugins[INPROC_MAX_PLUGINS];
  unsigned nplugins;
  void *mem;
  size_t mem_size;
  int kick_fd, call_fd;
  hwsock_guest *guest;
  volatile int needs_reset;
  uv_async_t call;        /* runs call_fn on the device thread */
  pthread_mutex_t call_mu;
  pthread_cond_t call_cv;
  void (*call_fn)(hwsock_device *dev, void *arg);
  void *call_arg;
  int call_done;
} inproc;

/* Runs fn(dev, arg) on the device thread and waits for it: the device's
 * functions (stats, socket table) must be called there. */
void inproc_on_device(inproc *ip, void (*fn)(hwsock_device *dev, void *arg),
                      void *arg);

/* Starts device thread and guest driver. 0 or a negative HWSOCK_E*
 * (errors are also printed to stderr). */
int inproc_start(inproc *ip, const inproc_opts *opts);
/* Stops the device thread (closing every host socket) and frees all. */
void inproc_stop(inproc *ip);

/* Hex SHA-256 of a running stream, for transfer checks. */
typedef struct inproc_sha inproc_sha;
inproc_sha *inproc_sha_new(void);
void inproc_sha_update(inproc_sha *s, const void *p, size_t n);
/* Writes 64 hex chars + NUL into hex and frees s. */
void inproc_sha_final(inproc_sha *s, char hex[65]);

#endif
