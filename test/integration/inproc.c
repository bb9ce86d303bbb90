/* Test support: device thread + guest driver in one process (inproc.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "inproc.h"

#define GPA_BASE 0x40000000ull

/* --- the VMM side -------------------------------------------------------- */

static void on_notify(void *opaque, unsigned q) {
  inproc *ip = opaque;
  hwsock_eventfd_signal(ip->call_fd);
}

static void on_needs_reset(void *opaque, const char *why) {
  inproc *ip = opaque;
  ip->needs_reset = 1;
  fprintf(stderr, "inproc: device needs reset: %s\n", why);
}

static void on_log(void *opaque, int level, const char *msg) {
  if (level <= HWSOCK_LOG_WARN || getenv("HWSOCK_TEST_VERBOSE"))
    fprintf(stderr, "inproc device: %s\n", msg);
}

static const hwsock_device_ops dev_ops = {
    .size = sizeof(hwsock_device_ops),
    .notify = on_notify,
    .needs_reset = on_needs_reset,
    .log = on_log,
};

static void on_close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void on_stop(uv_async_t *h) {
  inproc *ip = h->data;
  hwsock_uv_close(ip->adapter);
  hwsock_device_free(ip->dev);
  ip->dev = NULL;
  uv_close((uv_handle_t *)&ip->stop, NULL);
  uv_close((uv_handle_t *)&ip->call, NULL);
}

static void on_call(uv_async_t *h) {
  inproc *ip = h->data;
  pthread_mutex_lock(&ip->call_mu);
  if (ip->call_fn != NULL) {
    ip->call_fn(ip->dev, ip->call_arg);
    ip->call_fn = NULL;
    ip->call_done = 1;
    pthread_cond_broadcast(&ip->call_cv);
  }
  pthread_mutex_unlock(&ip->call_mu);
}

void inproc_on_device(inproc *ip, void (*fn)(hwsock_device *dev, void *arg),
                      void *arg) {
  pthread_mutex_lock(&ip->call_mu);
  ip->call_fn = fn;
  ip->call_arg = arg;
  ip->call_done = 0;
  uv_async_send(&ip->call);
  while (!ip->call_done)
    pthread_cond_wait(&ip->call_cv, &ip->call_mu);
  pthread_mutex_unlock(&ip->call_mu);
}

static void *device_thread(void *arg) {
  inproc *ip = arg;
  uv_run(&ip->loop, UV_RUN_DEFAULT);
  /* Anything a backend left behind would be a leak: close it for ASan. */
  uv_walk(&ip->loop, on_close_walk, NULL);
  uv_run(&ip->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* --- the guest side ------------------------------------------------------ */

static int g_set_features(void *opaque, uint64_t f) {
  return hwsock_device_set_features(((inproc *)opaque)->dev, f);
}
static int g_setup_queue(void *opaque, unsigned q, unsigned size, uint64_t d,
                         uint64_t a, uint64_t u) {
  return hwsock_device_queue_setup(((inproc *)opaque)->dev, q, size, d, a, u);
}
static int g_start(void *opaque) {
  return hwsock_device_start(((inproc *)opaque)->dev);
}
static void g_kick(void *opaque, unsigned q) {
  hwsock_eventfd_signal(((inproc *)opaque)->kick_fd);
}
static int g_wait(void *opaque, unsigned q, int timeout_ms) {
  inproc *ip = opaque;
  struct pollfd p = {.fd = ip->call_fd, .events = POLLIN};
  int n = poll(&p, 1, timeout_ms);
  if (n > 0) {
    uint64_t v;
    while (read(ip->call_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
      ;
  }
  return 0;
}

static const hwsock_guest_ops guest_ops = {
    .size = sizeof(hwsock_guest_ops),
    .set_features = g_set_features,
    .setup_queue = g_setup_queue,
    .start = g_start,
    .kick = g_kick,
    .wait = g_wait,
};

int inproc_start(inproc *ip, const inproc_opts *o) {
  static const inproc_opts defaults;
  if (o == NULL)
    o = &defaults;
  memset(ip, 0, sizeof(*ip));
  ip->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ip->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ip->mem_size = o->mem_size ? o->mem_size : (32u << 20);
  ip->mem = mmap(NULL, ip->mem_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ip->kick_fd < 0 || ip->call_fd < 0 || ip->mem == MAP_FAILED) {
    perror("inproc");
    return HWSOCK_ENOMEM;
  }
  uv_loop_init(&ip->loop);

  char err[256];
  int rc;
  if (o->policy_yaml != NULL) {
    rc = hwsock_policy_load_string(o->policy_yaml, strlen(o->policy_yaml),
                                   "test-policy", &ip->policy, err,
                                   sizeof(err));
    if (rc < 0) {
      fprintf(stderr, "inproc: policy: %s\n", err);
      return rc;
    }
  }
  hwsock_device_config cfg;
  hwsock_device_config_init(&cfg);
  cfg.policy = ip->policy;
  cfg.backend_loop = &ip->loop;
  cfg.ops = &dev_ops;
  cfg.opaque = ip;
  if ((rc = hwsock_device_new(&cfg, &ip->dev)) < 0)
    return rc;
  if ((rc = hwsock_device_add_region(ip->dev, GPA_BASE, ip->mem_size,
                                     ip->mem)) < 0)
    return rc;

  const char *def[] = {"tcp", "deny", NULL};
  const char *const *names = o->backends[0] ? o->backends : def;
  char paths[2 * INPROC_MAX_PLUGINS][512];
  unsigned npaths = 0;
  for (unsigned i = 0; names[i] != NULL && i < INPROC_MAX_PLUGINS; i++)
    snprintf(paths[npaths++], sizeof(paths[0]), "%s/%s.so",
             HWSOCK_BUILD_BACKEND_DIR, names[i]);
  for (unsigned i = 0; o->plugin_paths[i] != NULL && i < INPROC_MAX_PLUGINS;
       i++)
    snprintf(paths[npaths++], sizeof(paths[0]), "%s", o->plugin_paths[i]);
  for (unsigned i = 0; i < npaths; i++) {
    if (ip->nplugins == INPROC_MAX_PLUGINS) {
      fprintf(stderr, "inproc: more than %d backend modules\n",
              INPROC_MAX_PLUGINS);
      return HWSOCK_ENOSPC;
    }
    rc = hwsock_plugin_load(paths[i], &ip->plugins[ip->nplugins], err,
                            sizeof(err));
    if (rc < 0) {
      fprintf(stderr, "inproc: %s\n", err);
      return rc;
    }
    rc = hwsock_device_add_backend(
        ip->dev, hwsock_plugin_desc(ip->plugins[ip->nplugins++]), NULL);
    if (rc < 0)
      return rc;
  }
  if ((rc = hwsock_uv_new(&ip->loop, ip->dev, &ip->adapter)) < 0 ||
      (rc = hwsock_uv_watch_kick(ip->adapter, 0, ip->kick_fd)) < 0 ||
      (rc = hwsock_uv_set_poll(ip->adapter, o->poll_us)) < 0)
    return rc;
  uv_async_init(&ip->loop, &ip->stop, on_stop);
  ip->stop.data = ip;
  uv_async_init(&ip->loop, &ip->call, on_call);
  ip->call.data = ip;
  pthread_mutex_init(&ip->call_mu, NULL);
  pthread_cond_init(&ip->call_cv, NULL);

  /* Driver setup happens before the device thread runs: no races. */
  hwsock_wire_config wc;
  hwsock_device_get_config(ip->dev, &wc);
  hwsock_guest_config gc;
  hwsock_guest_config_init(&gc);
  gc.mem = ip->mem;
  gc.mem_gpa = GPA_BASE;
  gc.mem_size = ip->mem_size;
  gc.device = &wc;
  gc.io_len = o->io_len;
  gc.event_idx = !o->no_event_idx;
  gc.poll_us = (int)o->poll_us;
  gc.write_behind = o->write_behind;
  gc.indirect = !o->no_indirect;
  gc.ops = &guest_ops;
  gc.opaque = ip;
  if ((rc = hwsock_guest_new(&gc, &ip->guest)) < 0) {
    fprintf(stderr, "inproc: guest: %s\n", hwsock_strerror(rc));
    return rc;
  }
  if (pthread_create(&ip->thread, NULL, device_thread, ip) != 0)
    return HWSOCK_ENOMEM;
  return 0;
}

void inproc_stop(inproc *ip) {
  uv_async_send(&ip->stop);
  pthread_join(ip->thread, NULL);
  uv_loop_close(&ip->loop);
  hwsock_guest_free(ip->guest);
  for (unsigned i = 0; i < ip->nplugins; i++)
    hwsock_plugin_unload(ip->plugins[i]);
  hwsock_policy_free(ip->policy);
  munmap(ip->mem, ip->mem_size);
  close(ip->kick_fd);
  close(ip->call_fd);
}

struct inproc_sha {
  EVP_MD_CTX *ctx;
};

inproc_sha *inproc_sha_new(void) {
  inproc_sha *s = malloc(sizeof(*s));
  s->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL);
  return s;
}

void inproc_sha_update(inproc_sha *s, const void *p, size_t n) {
  EVP_DigestUpdate(s->ctx, p, n);
}

void inproc_sha_final(inproc_sha *s, char hex[65]) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(s->ctx, md, &len);
  for (unsigned i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  EVP_MD_CTX_free(s->ctx);
  free(s);
}
