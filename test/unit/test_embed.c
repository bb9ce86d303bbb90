/* Embed mode (hwsock/embed.h): one fd, one timeout, one run call, and the
 * traps of nesting libuv in another loop that it must handle itself:
 * an idle loop's timeout, a stopped watcher left readable in the epoll set,
 * and I/O started by the run's own flush phase. The test plays the VMM: it
 * watches hwsock_embed_fd() with poll() and sleeps hwsock_embed_timeout_ms().
 * It reaches into the private loop with libuv (as the built-in backends do)
 * to make each situation happen. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "hwsock/embed.h"

static hwsock_embed *e;
static uv_loop_t *loop;

static void setup(void) {
  cr_assert_eq(hwsock_embed_new(&e), 0);
  hwsock_device_config cfg;
  hwsock_device_config_init(&cfg);
  cfg.backend_loop = hwsock_embed_loop(e);
  loop = hwsock_embed_loop(e);
  hwsock_device *dev;
  cr_assert_eq(hwsock_device_new(&cfg, &dev), 0);
  cr_assert_eq(hwsock_embed_attach(e, dev), 0);
}

static void teardown(void) { hwsock_embed_free(e); }

TestSuite(embed, .init = setup, .fini = teardown);

/* Is the embed fd readable right now? */
static int fd_ready(void) {
  struct pollfd p = {.fd = hwsock_embed_fd(e), .events = POLLIN};
  int n = poll(&p, 1, 0);
  cr_assert_geq(n, 0);
  return n;
}

Test(embed, an_idle_device_sleeps_with_no_timeout_and_a_quiet_fd) {
  cr_assert_geq(hwsock_embed_fd(e), 0);
  hwsock_embed_run(e);
  /* uv_backend_timeout() of a loop with no active handle is 0: the VMM
   * would spin. */
  cr_assert_eq(hwsock_embed_timeout_ms(e), -1);
  cr_assert_eq(fd_ready(), 0);
}

static void on_timer(uv_timer_t *t) { (void)t; }

Test(embed, a_backend_timer_bounds_the_timeout) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, on_timer, 60000, 0);
  hwsock_embed_run(e); /* the timer does not fire; the loop is registered */
  int ms = hwsock_embed_timeout_ms(e);
  cr_assert(ms > 0 && ms <= 60000, "timeout %d", ms);
  uv_close((uv_handle_t *)&t, NULL);
  hwsock_embed_run(e);
  cr_assert_eq(hwsock_embed_timeout_ms(e), -1);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  static char buf[64];
  (void)h, (void)hint;
  *b = uv_buf_init(buf, sizeof(buf));
}

static int reads;
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)s, (void)b;
  if (n > 0)
    reads++;
}

/* A backend stops reading a socket that has data (the guest posted no
 * RECV): libuv leaves the fd in its epoll set until it polls again, and a
 * loop with no active handle never polls. */
Test(embed, a_stopped_reader_with_data_does_not_leave_the_fd_ready) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  uv_pipe_t p;
  cr_assert_eq(uv_pipe_init(loop, &p, 0), 0);
  cr_assert_eq(uv_pipe_open(&p, sv[0]), 0);
  cr_assert_eq(uv_read_start((uv_stream_t *)&p, on_alloc, on_read), 0);
  hwsock_embed_run(e); /* registered */
  cr_assert_eq(write(sv[1], "x", 1), 1);
  uv_read_stop((uv_stream_t *)&p);
  for (int i = 0; i < 3 && fd_ready(); i++)
    hwsock_embed_run(e);
  cr_assert_eq(fd_ready(), 0, "the embed fd stays readable: a busy loop");
  cr_assert_eq(hwsock_embed_timeout_ms(e), -1);
  cr_assert_eq(reads, 0);
  uv_close((uv_handle_t *)&p, NULL);
  hwsock_embed_run(e);
  close(sv[1]);
}

/* The device's flush runs in libuv's check phase, after the poll: what it
 * starts (here a watcher on a readable fd, as a backend's RECV starts one)
 * must not wait for an unrelated wake-up. */
static uv_poll_t late;
static int late_started;
static void on_late(uv_poll_t *h, int status, int events) {
  (void)status, (void)events;
  reads++;
  uv_poll_stop(h);
}
static void on_check(uv_check_t *h) {
  if (late_started)
    return;
  late_started = 1;
  uv_poll_start(&late, UV_READABLE, on_late);
  uv_check_stop(h);
}

Test(embed, io_started_during_the_flush_is_handled_without_another_event) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  cr_assert_eq(uv_poll_init(loop, &late, sv[0]), 0);
  cr_assert_eq(write(sv[1], "x", 1), 1); /* data already waiting */
  uv_check_t chk;
  uv_check_init(loop, &chk);
  uv_check_start(&chk, on_check);
  hwsock_embed_run(e);
  cr_assert_eq(late_started, 1);
  /* In the same run: libuv registers the watcher at its next poll, which
   * the run makes itself (else the VMM needs another wake-up: libuv 1.44's
   * uv_backend_timeout() is 0 then, older ones said -1 and it was lost). */
  cr_assert_eq(reads, 1, "the fd the flush started watching was not polled");
  cr_assert_eq(hwsock_embed_timeout_ms(e), -1);
  uv_close((uv_handle_t *)&late, NULL);
  uv_close((uv_handle_t *)&chk, NULL);
  hwsock_embed_run(e);
  close(sv[0]);
  close(sv[1]);
}

static pthread_t seen;
static int where(hwsock_device *dev, void *arg) {
  seen = pthread_self();
  *(int *)arg += 1;
  return (int)(hwsock_device_status(dev) & 0xff) + 7;
}

Test(embed, calls_run_on_the_device_thread_while_it_runs) {
  int n = 0;
  cr_assert_eq(hwsock_embed_call(e, where, &n), 7); /* no thread: here */
  cr_assert(pthread_equal(seen, pthread_self()));
  cr_assert_eq(hwsock_embed_thread_start(e), 0);
  cr_assert_eq(hwsock_embed_thread_start(e), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_embed_run(e), HWSOCK_EINVAL);
  for (int i = 0; i < 100; i++)
    cr_assert_eq(hwsock_embed_call(e, where, &n), 7);
  cr_assert(!pthread_equal(seen, pthread_self()));
  cr_assert_eq(n, 101);
  hwsock_embed_thread_stop(e);
  /* the caller's loop may drive it again */
  cr_assert_eq(hwsock_embed_run(e), 0);
  cr_assert_eq(hwsock_embed_timeout_ms(e), -1);
  /* free stops a running thread itself (teardown) */
  cr_assert_eq(hwsock_embed_thread_start(e), 0);
}
