/* Loopback attach (hwsock/attach.h): the guest driver's transport to a
 * loopback VMM over a unix SOCK_SEQPACKET socket (hwsock/loopback.h).
 *
 * Setup (FEATURES, QUEUE, START) is request-reply on the socket, serialised
 * by a mutex. After START the socket carries nothing but an unsolicited
 * NEEDS_RESET, so the data path never touches it except to poll it: kicks
 * write an eventfd and waits poll the call eventfd together with the
 * socket, which is how a guest notices a VMM that died. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hwsock/attach.h"
#include "hwsock/loopback.h"

/* Queues the HELLO reply may describe: two eventfds each besides the memfd. */
#define ATTACH_MAX_QUEUES ((HWSOCK_LB_MAX_FDS - 1) / 2)
#define ATTACH_DEFAULT_SETUP_TIMEOUT_MS 10000
/* Wire statuses above this are not errors of ours: a protocol violation. */
#define ATTACH_MAX_STATUS 4095u

struct hwsock_attachment {
  int sock;
  pthread_mutex_t lock; /* one request-reply exchange at a time */
  int setup_timeout_ms;
  void *mem; /* MAP_SHARED view of the VMM's memfd */
  size_t mem_size;
  uint64_t mem_gpa;
  unsigned nqueues;
  int kick[ATTACH_MAX_QUEUES];
  int call[ATTACH_MAX_QUEUES];
  hwsock_wire_config config; /* from the HELLO reply */
  hwsock_guest_ops ops;
  hwsock_guest *guest;
  /* NEEDS_RESET's code once a wait saw it (hwsock_attach_reset_reason);
   * written by whichever waiter peeks first, read by any thread. */
  atomic_int reset_reason;
};

/* The 0.1.0 struct (write_behind was its last field). */
#define OPTS_V010_SIZE (offsetof(hwsock_attach_opts, write_behind) + sizeof(int))

void hwsock_attach_opts_init_sized(hwsock_attach_opts *opts, size_t size) {
  /* size is the caller's sizeof: never write beyond it */
  size_t n = size < sizeof(*opts) ? size : sizeof(*opts);
  memset(opts, 0, n);
  opts->size = (uint32_t)n;
  if (n >= offsetof(hwsock_attach_opts, setup_timeout_ms) + sizeof(int)) {
    opts->event_idx = 1;
    opts->indirect = 1;
    opts->setup_timeout_ms = ATTACH_DEFAULT_SETUP_TIMEOUT_MS;
  }
}

/* The 0.1 entry point: its callers were built with the 0.1.0 struct. */
void(hwsock_attach_opts_init)(hwsock_attach_opts *opts) {
  hwsock_attach_opts_init_sized(opts, OPTS_V010_SIZE);
}

static void msg_init(hwsock_lb_msg *m, uint32_t type) {
  memset(m, 0, sizeof(*m));
  hwsock_le32_set(&m->type, type);
}

/* Error carried by a reply's status field: 0, the negative HWSOCK_E* it
 * names, or HWSOCK_EPROTO for a value that is no error of the protocol. */
static int reply_status(const hwsock_lb_msg *m) {
  uint32_t st = hwsock_le32_get(&m->status);
  if (st == 0)
    return 0;
  if (st > ATTACH_MAX_STATUS || !hwsock_err_is_known(st))
    return HWSOCK_EPROTO;
  return -(int)st;
}

/* Waits until the socket is readable, for at most the setup timeout. */
static int wait_readable(hwsock_attachment *a) {
  struct pollfd p = {.fd = a->sock, .events = POLLIN};
  for (;;) {
    int n = poll(&p, 1, a->setup_timeout_ms);
    if (n > 0)
      return 0; /* readable, or hung up: recv tells which */
    if (n == 0)
      return HWSOCK_ETIMEDOUT;
    if (errno != EINTR)
      return hwsock_err_from_errno(errno);
  }
}

/* Sends m and receives the reply of the same type (no fds) into m. Lock
 * held. */
static int exchange(hwsock_attachment *a, hwsock_lb_msg *m) {
  uint32_t type = hwsock_le32_get(&m->type);
  int rc = hwsock_lb_send(a->sock, m, NULL, 0);
  if (rc < 0)
    return rc == HWSOCK_EPIPE ? HWSOCK_ECONNRESET : rc;
  if ((rc = wait_readable(a)) < 0)
    return rc;
  if ((rc = hwsock_lb_recv(a->sock, m, NULL, 0, NULL)) < 0)
    return rc;
  uint32_t got = hwsock_le32_get(&m->type);
  if (got == HWSOCK_LB_NEEDS_RESET)
    return HWSOCK_ENEEDSRESET;
  if (got != type)
    return HWSOCK_EPROTO;
  return reply_status(m);
}

static int request(hwsock_attachment *a, hwsock_lb_msg *m) {
  pthread_mutex_lock(&a->lock);
  int rc = exchange(a, m);
  pthread_mutex_unlock(&a->lock);
  return rc;
}

/* ---- the driver's transport (hwsock_guest_ops) -------------------------- */

static int op_set_features(void *opaque, uint64_t features) {
  hwsock_lb_msg m;
  msg_init(&m, HWSOCK_LB_FEATURES);
  hwsock_le64_set(&m.a, features);
  return request(opaque, &m);
}

static int op_setup_queue(void *opaque, unsigned q, unsigned size,
                          uint64_t desc_gpa, uint64_t avail_gpa,
                          uint64_t used_gpa) {
  hwsock_lb_msg m;
  msg_init(&m, HWSOCK_LB_QUEUE);
  hwsock_le64_set(&m.a, q);
  hwsock_le64_set(&m.b, size);
  hwsock_le64_set(&m.c, desc_gpa);
  hwsock_le64_set(&m.d, avail_gpa);
  hwsock_le64_set(&m.e, used_gpa);
  return request(opaque, &m);
}

static int op_start(void *opaque) {
  hwsock_lb_msg m;
  msg_init(&m, HWSOCK_LB_START);
  return request(opaque, &m);
}

/* The ioeventfd write. A saturated counter (EAGAIN) still means "kicked". */
static void op_kick(void *opaque, unsigned q) {
  hwsock_attachment *a = opaque;
  uint64_t one = 1;
  if (q >= a->nqueues)
    return;
  while (write(a->kick[q], &one, sizeof(one)) < 0 && errno == EINTR)
    ;
}

/* Records the code of a NEEDS_RESET waiting on the socket. It peeks and
 * leaves the message there, so that every later wait still finds the socket
 * readable and reports the device gone. A code the protocol cannot carry
 * (above INT_MAX) counts as unknown (0). */
static void peek_reset(hwsock_attachment *a) {
  hwsock_lb_msg m;
  ssize_t n;
  while ((n = recv(a->sock, &m, sizeof(m), MSG_PEEK | MSG_DONTWAIT)) < 0 &&
         errno == EINTR)
    ;
  if (n != (ssize_t)sizeof(m) ||
      hwsock_le32_get(&m.type) != HWSOCK_LB_NEEDS_RESET)
    return;
  uint64_t code = hwsock_le64_get(&m.a);
  if (code != 0 && code <= INT_MAX)
    atomic_store(&a->reset_reason, (int)code);
}

/* The irqfd wait. Any event on the socket after START is the end of this
 * attachment: NEEDS_RESET (readable) or the VMM gone (hang-up). */
static int op_wait(void *opaque, unsigned q, int timeout_ms) {
  hwsock_attachment *a = opaque;
  if (q >= a->nqueues)
    return HWSOCK_EINVAL;
  struct pollfd p[2] = {{.fd = a->call[q], .events = POLLIN},
                        {.fd = a->sock, .events = POLLIN}};
  int n = poll(p, 2, timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : hwsock_err_from_errno(errno);
  if (p[0].revents & POLLIN) {
    /* Drain: one read takes the whole counter (nonblocking, so a racing
     * waiter that drained first costs only an EAGAIN). Completions are
     * reaped before a pending hang-up is reported on the next wait. */
    uint64_t v;
    while (read(a->call[q], &v, sizeof(v)) < 0 && errno == EINTR)
      ;
    return 0;
  }
  if (p[1].revents & POLLIN)
    peek_reset(a);
  if (p[1].revents != 0 || (p[0].revents & (POLLERR | POLLNVAL)))
    return HWSOCK_ECONNRESET;
  return 0;
}

/* ---- attach and close --------------------------------------------------- */

static void attach_free(hwsock_attachment *a) {
  hwsock_guest_free(a->guest);
  if (a->mem != NULL)
    munmap(a->mem, a->mem_size);
  for (unsigned q = 0; q < ATTACH_MAX_QUEUES; q++) {
    if (a->kick[q] >= 0)
      close(a->kick[q]);
    if (a->call[q] >= 0)
      close(a->call[q]);
  }
  if (a->sock >= 0)
    close(a->sock);
  pthread_mutex_destroy(&a->lock);
  free(a);
}

static int connect_vmm(const char *path, int *out) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len == 0)
    return HWSOCK_EINVAL;
  if (len >= sizeof(sun.sun_path))
    return HWSOCK_ENAMETOOLONG;
  memcpy(sun.sun_path, path, len);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return hwsock_err_from_errno(errno);
  while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
    if (errno == EINTR)
      continue;
    int err = hwsock_err_from_errno(errno);
    close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

/* HELLO: takes the memfd and eventfds from the reply, checks the reply
 * describes them consistently, and maps the memory. */
static int hello(hwsock_attachment *a) {
  hwsock_lb_msg m;
  int fds[HWSOCK_LB_MAX_FDS];
  unsigned nfds = 0;
  msg_init(&m, HWSOCK_LB_HELLO);
  hwsock_le64_set(&m.a, HWSOCK_LB_VERSION);
  /* A VMM that refuses us (too many guests) sends its HELLO reply and
   * hangs up, maybe before it read our HELLO. Then our send may fail, and
   * the kernel reports the reset (the VMM closed with our HELLO unread)
   * once before the reply queued ahead of it: so on a hang-up look for
   * that reply once more. The peer is gone, so these reads cannot block. */
  int rc = hwsock_lb_send(a->sock, &m, NULL, 0);
  if (rc < 0 && rc != HWSOCK_EPIPE && rc != HWSOCK_ECONNRESET)
    return rc;
  if (rc == 0 && (rc = wait_readable(a)) < 0)
    return rc;
  rc = hwsock_lb_recv(a->sock, &m, fds, HWSOCK_LB_MAX_FDS, &nfds);
  if (rc == HWSOCK_ECONNRESET || rc == HWSOCK_EPIPE)
    rc = hwsock_lb_recv(a->sock, &m, fds, HWSOCK_LB_MAX_FDS, &nfds);
  if (rc < 0)
    return rc == HWSOCK_EPIPE ? HWSOCK_ECONNRESET : rc;

  uint64_t size = hwsock_le64_get(&m.a);
  uint64_t gpa = hwsock_le64_get(&m.b);
  uint64_t nq = hwsock_le64_get(&m.c);
  if (hwsock_le32_get(&m.type) != HWSOCK_LB_HELLO) {
    rc = HWSOCK_EPROTO;
  } else if ((rc = reply_status(&m)) < 0) {
    /* the VMM refused us (e.g. too many guests) */
  } else if (nq == 0 || nq > ATTACH_MAX_QUEUES || nfds != 1 + 2 * nq ||
             nq != hwsock_le16_get(&m.config.num_queues) || size == 0 ||
             (uint64_t)(size_t)size != size || gpa + size < gpa) {
    rc = HWSOCK_EPROTO;
  }
  if (rc < 0) {
    for (unsigned i = 0; i < nfds; i++)
      close(fds[i]);
    return rc;
  }

  /* From here every fd is a's (closed by attach_free on failure). */
  a->nqueues = (unsigned)nq;
  for (unsigned q = 0; q < a->nqueues; q++) {
    a->kick[q] = fds[1 + 2 * q];
    a->call[q] = fds[2 + 2 * q];
  }
  memcpy(&a->config, &m.config, sizeof(a->config));
  a->mem_gpa = gpa;

  /* The memfd must really hold `size` bytes, or touching the mapping's
   * tail would SIGBUS. */
  int memfd = fds[0];
  struct stat st;
  if (fstat(memfd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
      (uint64_t)st.st_size < size) {
    close(memfd);
    return HWSOCK_EPROTO;
  }
  void *mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   memfd, 0);
  int map_errno = errno;
  close(memfd); /* the mapping keeps the memory */
  if (mem == MAP_FAILED)
    return hwsock_err_from_errno(map_errno);
  a->mem = mem;
  a->mem_size = (size_t)size;

  /* Our drain must never block, whatever the VMM created. */
  for (unsigned q = 0; q < a->nqueues; q++) {
    int fl = fcntl(a->call[q], F_GETFL);
    if (fl < 0 || fcntl(a->call[q], F_SETFL, fl | O_NONBLOCK) < 0)
      return HWSOCK_EPROTO; /* not something we can wait on */
  }
  return 0;
}

int hwsock_attach(const char *vmm_path, const hwsock_attach_opts *opts,
                  hwsock_attachment **out) {
  hwsock_attach_opts o;
  if (out == NULL)
    return HWSOCK_EINVAL;
  *out = NULL;
  if (vmm_path == NULL)
    return HWSOCK_EINVAL;
  hwsock_attach_opts_init(&o);
  if (opts != NULL) {
    if (opts->size < sizeof(uint32_t))
      return HWSOCK_EINVAL;
    memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
    o.size = sizeof(o);
  }
  if (o.setup_timeout_ms < -1 || o.poll_us < 0)
    return HWSOCK_EINVAL;

  hwsock_attachment *a = calloc(1, sizeof(*a));
  if (a == NULL)
    return HWSOCK_ENOMEM;
  a->sock = -1;
  for (unsigned q = 0; q < ATTACH_MAX_QUEUES; q++)
    a->kick[q] = a->call[q] = -1;
  if (pthread_mutex_init(&a->lock, NULL) != 0) {
    free(a);
    return HWSOCK_ENOMEM;
  }
  a->setup_timeout_ms = o.setup_timeout_ms;

  int rc = connect_vmm(vmm_path, &a->sock);
  if (rc == 0)
    rc = hello(a);
  if (rc < 0) {
    attach_free(a);
    return rc;
  }

  a->ops.size = sizeof(a->ops);
  a->ops.set_features = op_set_features;
  a->ops.setup_queue = op_setup_queue;
  a->ops.start = op_start;
  a->ops.kick = op_kick;
  a->ops.wait = op_wait;

  hwsock_guest_config gc;
  hwsock_guest_config_init(&gc);
  gc.mem = a->mem;
  gc.mem_gpa = a->mem_gpa;
  gc.mem_size = a->mem_size;
  gc.device = &a->config;
  gc.queue_size = o.queue_size;
  gc.io_len = o.io_len;
  gc.slots = o.slots;
  gc.event_idx = o.event_idx;
  gc.indirect = o.indirect;
  gc.poll_us = o.poll_us;
  gc.write_behind = o.write_behind;
  gc.event_queue = o.event_queue;
  gc.ops = &a->ops;
  gc.opaque = a;
  if ((rc = hwsock_guest_new(&gc, &a->guest)) < 0) {
    a->guest = NULL;
    attach_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

hwsock_guest *hwsock_attach_guest(hwsock_attachment *a) {
  return a != NULL ? a->guest : NULL;
}

int hwsock_attach_reset_reason(const hwsock_attachment *a) {
  return a != NULL ? atomic_load(&a->reset_reason) : 0;
}

void hwsock_attach_close(hwsock_attachment *a) {
  if (a != NULL)
    attach_free(a);
}
