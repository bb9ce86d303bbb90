/* Test support: driving a backend module the way a device does, for the
 * backend unit tests. The module is loaded by path (hwsock_plugin_load), run
 * on a real uv loop that a 20 ms timer keeps waking (so that waits can time
 * out), and given host tables whose complete() records each completion in
 * the bh_req it belongs to and whose log() appends to bh.log.
 *
 * One harness per test process (criterion runs each test in its own
 * process): bh_setup() in a suite's .init, bh_teardown() in its .fini after
 * the test destroyed its instances. Every failure is a criterion assertion.
 * Test support only (names bh_*); not library API. */
#ifndef HWSOCK_TEST_BACKEND_HARNESS_H
#define HWSOCK_TEST_BACKEND_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

#include "hwsock/backend.h"
#include "hwsock/device.h"

#define BH_TIMEOUT_NS (10ull * 1000 * 1000 * 1000) /* a wait that fails */
#define BH_IOV_MAX 8u /* iovecs one bh_req holds */

typedef struct backend_harness {
  uv_loop_t loop;
  uv_timer_t tick;
  hwsock_plugin *plugin;
  const hwsock_backend_ops *ops; /* the module's operations */
  int seq;                       /* completions so far, of every request */
  char log[32768]; /* every line bh_on_log got, '\n'-separated */
  hwsock_backend_host host; /* bh_setup_instance(): its host table */
  void *inst;               /* bh_setup_instance(): the instance */
} backend_harness;

extern backend_harness bh;

/* A request as the device would hand it, plus what its completion said. */
typedef struct bh_req {
  hwsock_breq br; /* first: complete() gets &br */
  int ncomplete;  /* complete() calls: exactly 1 when done right */
  int status;
  size_t len;
  int order; /* bh.seq at its completion: the order of completions */
  struct iovec iov[BH_IOV_MAX];
  hwsock_addr addr; /* br.addr points here when set */
} bh_req;

/* Inits the loop and the tick, loads the module at `path`, clears bh.log. */
void bh_setup(const char *path);

/* Stops the tick, runs the loop until every handle closed (asserting that
 * it can be closed) and unloads the module. */
void bh_teardown(void);

/* bh_setup(path), then one instance with no options: bh.inst, created on
 * bh.host (a test may change bh.host's callbacks). */
void bh_setup_instance(const char *path);

/* Destroys bh.inst, then bh_teardown(). */
void bh_teardown_instance(void);

/* A host table on bh.loop with `options`, bh_on_complete and bh_on_log. */
void bh_host_init(hwsock_backend_host *h, const char *options);

/* The host table's callbacks (a test may install its own instead). */
void bh_on_complete(hwsock_breq *req, int status, size_t len);
void bh_on_log(const hwsock_backend_host *h, int level, const char *msg);

/* Runs the loop until cond holds; fails the test after BH_TIMEOUT_NS. */
#define BH_RUN_UNTIL(cond)                                                    \
  do {                                                                        \
    uint64_t t0_ = uv_hrtime();                                               \
    while (!(cond)) {                                                         \
      uv_run(&bh.loop, UV_RUN_ONCE);                                          \
      cr_assert(uv_hrtime() - t0_ < BH_TIMEOUT_NS, "timed out: " #cond);      \
    }                                                                         \
  } while (0)

/* Runs the loop for about ms milliseconds. */
void bh_run_for_ms(unsigned ms);

/* A zeroed request of `opcode` on a socket of `scheme`. */
void bh_req_init(bh_req *r, uint16_t opcode, int scheme);

/* Sets the request's buffers: n (void *, size_t) pairs, n <= BH_IOV_MAX. */
void bh_set_iov(bh_req *r, unsigned n, ...);

/* Asserts that r completed exactly once, with `status`. */
void bh_expect_done(const bh_req *r, int status);

/* Opens a backend socket of `scheme` on instance inst (must succeed). */
void *bh_open(void *inst, int scheme);

/* Submits an addressed request (CONNECT, BIND) for *a, runs it to its
 * completion and returns the status. */
int bh_run_addr(void *s, uint16_t op, const hwsock_addr *a);

/* Submits a SEND of one buffer on a socket of `scheme` (to *to when not
 * NULL), runs it to its completion and returns the status; a SEND that
 * succeeds must have taken all len bytes. */
int bh_run_send(void *s, int scheme, const void *data, size_t len,
                const hwsock_addr *to);

/* Submits a RECV into one buffer with flags in arg0 (it may complete later). */
void bh_submit_recv(void *s, int scheme, bh_req *r, void *buf, size_t len,
                    uint32_t flags);

/* GETNAME (which: 0 local, 1 peer), which must complete at once: the
 * status in *status and, when 0 (with has_peer set), the name. */
hwsock_addr bh_getname(void *s, int scheme, uint32_t which, int *status);

#endif
