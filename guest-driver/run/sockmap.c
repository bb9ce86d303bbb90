/* The table of intercepted sockets, keyed by the program end's inode, and
 * the watcher that notices when the program closes a socket that has no
 * pump thread (a placeholder, a bound socket, a listener).
 *
 * Lifetime: an entry is referenced by the table, by each pump thread, by
 * the watcher while it watches, and by each handler using it; the pump end
 * and the struct go with the last reference. The device id is closed once,
 * by whoever kills the entry first. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "run.h"

#define NBUCKETS 256u

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static run_sock *buckets[NBUCKETS];
static unsigned nentries;
static unsigned noffloaded;
static int epfd = -1;

/* Entries whose connection is over but whose program end may still exist
 * (dead and still linked): hwsock__run_sock_retire. */
static unsigned nretired;
static void sweep_retired(void);

static unsigned bucket(uint64_t ino, uint64_t dev) {
  uint64_t h = (ino ^ (dev << 17)) * 0x9e3779b97f4a7c15ull;
  return (unsigned)(h >> 56) % NBUCKETS;
}

int hwsock__run_sockmap_init(void) { return 0; }

run_sock *hwsock__run_sock_new(int family, int type, int proto, int pfd,
                               uint64_t ino, uint64_t dev) {
  run_sock *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->rxlock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cond, &ca);
  pthread_condattr_destroy(&ca);
  s->refs = 2; /* the caller's and the table's */
  s->ino = ino;
  s->dev = dev;
  s->pfd = pfd;
  s->family = family;
  s->type = type;
  s->proto = proto;
  s->state = RS_UNDECIDED;
  s->id = -1;
  s->prog_fd = -1;
  pthread_mutex_lock(&table_lock);
  if (nentries >= RUN_MAX_SOCKS && nretired > 0) {
    /* retired entries whose program end is gone make room */
    pthread_mutex_unlock(&table_lock);
    sweep_retired();
    pthread_mutex_lock(&table_lock);
  }
  if (nentries >= RUN_MAX_SOCKS) {
    pthread_mutex_unlock(&table_lock);
    hwsock__run_log("socket: refused (ENOBUFS): socket table full "
                    "(RUN_MAX_SOCKS %u; raise it in guest-driver/run/run.h)",
                    RUN_MAX_SOCKS);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->rxlock);
    pthread_mutex_destroy(&s->lock);
    free(s->srcq);
    free(s);
    return NULL;
  }
  unsigned b = bucket(ino, dev);
  s->next = buckets[b];
  buckets[b] = s;
  s->linked = 1;
  nentries++;
  pthread_mutex_unlock(&table_lock);
  return s;
}

run_sock *hwsock__run_sock_find(uint64_t ino, uint64_t dev) {
  pthread_mutex_lock(&table_lock);
  run_sock *s = buckets[bucket(ino, dev)];
  while (s && !(s->ino == ino && s->dev == dev))
    s = s->next;
  if (s)
    hwsock__run_sock_get(s);
  pthread_mutex_unlock(&table_lock);
  return s;
}

void hwsock__run_sock_get(run_sock *s) {
  __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void hwsock__run_sock_put(run_sock *s) {
  if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  if (s->pfd >= 0)
    close(s->pfd);
  if (s->id >= 0) { /* nobody can use the id any more: release it */
    hwsock_guest_close(hwsock__run.g, s->id);
    hwsock__run_offload_release();
  }
  for (unsigned i = 0; i < s->acq_n; i++) { /* accepted, never taken */
    hwsock_guest_close(hwsock__run.g,
                       s->acq[(s->acq_head + i) % RUN_MAX_PREACCEPT].id);
    hwsock__run_offload_release();
  }
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->rxlock);
  pthread_mutex_destroy(&s->lock);
  free(s->srcq);
  free(s);
}

void hwsock__run_sock_unlink(run_sock *s) {
  int drop = 0;
  pthread_mutex_lock(&table_lock);
  if (s->linked) {
    run_sock **pp = &buckets[bucket(s->ino, s->dev)];
    while (*pp && *pp != s)
      pp = &(*pp)->next;
    if (*pp)
      *pp = s->next;
    s->linked = 0;
    nentries--;
    if (s->retired == 1)
      nretired--;
    drop = 1;
  }
  pthread_mutex_unlock(&table_lock);
  if (drop)
    hwsock__run_sock_put(s);
}

static void log_closed(run_sock *s) {
  char lb[64];
  hwsock__run_log("close: %s: closed by the program",
                  hwsock__run_label(s, lb, sizeof(lb)));
}

void hwsock__run_sock_retire(run_sock *s) {
  hwsock__run_sock_kill(s);
  /* both pumps may get here: the first one claims the entry (retired 2) */
  pthread_mutex_lock(&table_lock);
  int mine = s->linked && !s->retired;
  if (mine)
    s->retired = 2;
  pthread_mutex_unlock(&table_lock);
  if (!mine)
    return; /* ended already (the watcher saw the close, or a decline) */
  int alive = hwsock__run_unix_alive(s->ino);
  if (alive == 0)
    log_closed(s);
  if (alive == 1) {
    pthread_mutex_lock(&table_lock);
    if (s->linked) {
      s->retired = 1;
      nretired++;
      pthread_mutex_unlock(&table_lock);
      return; /* the watcher's sweep unlinks it once the program closed it */
    }
    pthread_mutex_unlock(&table_lock);
  }
  hwsock__run_sock_unlink(s); /* closed already, or no way to know */
}

void hwsock__run_sock_closed(run_sock *s) {
  hwsock__run_sock_kill(s);
  pthread_mutex_lock(&table_lock);
  int mine = s->linked && !s->retired; /* as in retire: one pump claims it */
  if (mine)
    s->retired = 2;
  pthread_mutex_unlock(&table_lock);
  if (!mine)
    return;
  log_closed(s);
  hwsock__run_sock_unlink(s);
}

/* Unlinks the retired entries whose program end no longer exists. */
static void sweep_retired(void) {
  run_sock *batch[64];
  unsigned from = 0;
  for (;;) {
    unsigned n = 0, b;
    pthread_mutex_lock(&table_lock);
    if (nretired == 0) {
      pthread_mutex_unlock(&table_lock);
      return;
    }
    for (b = from; b < NBUCKETS && n < 64; b++)
      for (run_sock *s = buckets[b]; s; s = s->next)
        if (s->retired == 1 && n < 64) {
          hwsock__run_sock_get(s);
          batch[n++] = s;
        }
    pthread_mutex_unlock(&table_lock);
    for (unsigned i = 0; i < n; i++) {
      if (hwsock__run_unix_alive(batch[i]->ino) != 1) {
        log_closed(batch[i]);
        hwsock__run_sock_unlink(batch[i]);
      }
      hwsock__run_sock_put(batch[i]);
    }
    if (b >= NBUCKETS)
      return;
    from = b; /* a full batch: go on from the next bucket */
  }
}

/* Sockets that may hold a device id at once: the table's size with the
 * event queue, RUN_MAX_OFFLOADED_V1 without (each would hold a slot). */
unsigned hwsock__run_offload_max(void) {
  return hwsock__run.g != NULL &&
                 (hwsock_guest_features(hwsock__run.g) & HWSOCK_F_EVENT_QUEUE)
             ? RUN_MAX_SOCKS
             : RUN_MAX_OFFLOADED_V1;
}

int hwsock__run_offload_reserve(void) {
  int ok = 0;
  unsigned max = hwsock__run_offload_max();
  pthread_mutex_lock(&table_lock);
  if (noffloaded < max) {
    noffloaded++;
    ok = 1;
  }
  pthread_mutex_unlock(&table_lock);
  if (!ok)
    hwsock__run_log("refused (ENOBUFS): %u sockets offloaded at once (%s)",
                    max,
                    max == RUN_MAX_OFFLOADED_V1
                        ? "the VMM's devices have no event queue: give them "
                          "--queues 2"
                        : "RUN_MAX_SOCKS in guest-driver/run/run.h");
  return ok ? 0 : HWSOCK_ENOBUFS;
}

void hwsock__run_offload_release(void) {
  pthread_mutex_lock(&table_lock);
  if (noffloaded > 0)
    noffloaded--;
  pthread_mutex_unlock(&table_lock);
}

void hwsock__run_sock_kill(run_sock *s) {
  int id = -1;
  pthread_mutex_lock(&s->lock);
  s->dead = 1;
  if (s->state != RS_FAILED)
    s->state = RS_CLOSED;
  if (s->id >= 0 && !s->id_shut) {
    s->id_shut = 1;
    if (!s->down_done) /* else nobody waits on the device: a request saved */
      id = s->id;
  }
  /* the program sees EOF and EPIPE; a listener or UDP socket whose VMM
   * went away (lerr) reports it once instead (pump.c) and is not readable
   * after: a listener is left as it is, a UDP socket's sends fail */
  if (s->pfd >= 0 && !s->lerr)
    shutdown(s->pfd, SHUT_RDWR);
  else if (s->pfd >= 0 && s->type == SOCK_DGRAM)
    shutdown(s->pfd, SHUT_RD);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  /* Wakes a pump blocked on the device (recv, accept, connect): SHUT_RD
   * runs at once on the device, not behind queued sends. The id itself is
   * closed by the last reference, when no thread can name it any more:
   * closing it earlier would let a thread about to call the driver reach
   * another socket that reused the id. */
  if (id >= 0)
    hwsock_guest_shutdown(hwsock__run.g, id, HWSOCK_SHUT_RD);
}

/* ---- the hang-up watcher ---------------------------------------------------
 *
 * The watcher holds a reference on each watched entry. Only the watcher
 * thread drops it, after it has handled the events of its current batch, so
 * an event fetched just before an unwatch never touches a freed entry. */

static int wakefd = -1;
static pthread_mutex_t release_lock = PTHREAD_MUTEX_INITIALIZER;
static run_sock *release_list[4 * RUN_MAX_SOCKS];
static unsigned nrelease;

static void drain_releases(void) {
  run_sock *batch[64];
  for (;;) {
    unsigned n = 0;
    pthread_mutex_lock(&release_lock);
    while (nrelease > 0 && n < 64)
      batch[n++] = release_list[--nrelease];
    pthread_mutex_unlock(&release_lock);
    if (n == 0)
      return;
    for (unsigned i = 0; i < n; i++)
      hwsock__run_sock_put(batch[i]);
  }
}

static volatile int watch_stopping;
static pthread_t watch_thread;
static int watch_started;

static void *watch_main(void *arg) {
  (void)arg;
  time_t last_sweep = 0;
  struct epoll_event ev[32];
  while (!watch_stopping) {
    /* with retired entries: look once a second whether they were closed */
    int n = epoll_wait(epfd, ev, 32,
                       __atomic_load_n(&nretired, __ATOMIC_RELAXED) ? 1000
                                                                   : -1);
    if (n < 0 && errno != EINTR)
      return NULL;
    /* a busy watcher (events every second) sweeps too */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec != last_sweep) {
      last_sweep = now.tv_sec;
      sweep_retired();
    }
    for (int i = 0; i < n; i++) {
      run_sock *s = ev[i].data.ptr;
      if (s == NULL) { /* the wake eventfd */
        uint64_t v;
        if (read(wakefd, &v, sizeof(v)) < 0) {
          /* nothing to do: it is only a wake-up */
        }
        continue;
      }
      int was = 0, id = -1;
      pthread_mutex_lock(&s->lock);
      if (s->watched) {
        s->watched = 0;
        was = 1;
        id = s->id;
        epoll_ctl(epfd, EPOLL_CTL_DEL, s->pfd, NULL);
      }
      pthread_mutex_unlock(&s->lock);
      if (!was)
        continue;
      /* the program closed its last copy: forget the socket */
      if (id >= 0)
        log_closed(s);
      hwsock__run_sock_unlink(s);
      hwsock__run_sock_kill(s);
      hwsock__run_sock_put(s); /* the watcher's reference */
    }
    drain_releases();
  }
  return NULL;
}

int hwsock__run_watch_start(void) {
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0)
    return hwsock__run_err(errno);
  wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakefd < 0)
    return hwsock__run_err(errno);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) < 0)
    return hwsock__run_err(errno);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 128 * 1024);
  int rc = pthread_create(&watch_thread, &a, watch_main, NULL);
  pthread_attr_destroy(&a);
  if (rc != 0)
    return -rc;
  watch_started = 1;
  return 0;
}

void hwsock__run_sockmap_clear(void) {
  if (watch_started) {
    watch_stopping = 1;
    uint64_t one = 1;
    if (write(wakefd, &one, sizeof(one)) < 0) {
      /* saturated counter: the watcher is awake anyway */
    }
    pthread_join(watch_thread, NULL);
    watch_started = 0;
  }
  drain_releases();
  for (unsigned b = 0; b < NBUCKETS; b++) {
    for (;;) {
      pthread_mutex_lock(&table_lock);
      run_sock *s = buckets[b];
      if (s)
        hwsock__run_sock_get(s);
      pthread_mutex_unlock(&table_lock);
      if (!s)
        break;
      pthread_mutex_lock(&s->lock);
      int was = s->watched;
      s->watched = 0;
      pthread_mutex_unlock(&s->lock);
      if (was)
        hwsock__run_sock_put(s); /* the stopped watcher's reference */
      hwsock__run_sock_unlink(s);
      hwsock__run_sock_kill(s);
      hwsock__run_sock_put(s);
    }
  }
  if (epfd >= 0)
    close(epfd);
  if (wakefd >= 0)
    close(wakefd);
  epfd = wakefd = -1;
}

void hwsock__run_watch(run_sock *s) {
  pthread_mutex_lock(&s->lock);
  if (!s->watched && s->pfd >= 0 && !s->dead) {
    struct epoll_event ev = {.events = 0, .data.ptr = s};
    /* no events asked: EPOLLHUP/EPOLLERR are always reported */
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->pfd, &ev) == 0) {
      hwsock__run_sock_get(s);
      s->watched = 1;
    }
  }
  pthread_mutex_unlock(&s->lock);
}

void hwsock__run_unwatch(run_sock *s) {
  int was = 0;
  pthread_mutex_lock(&s->lock);
  if (s->watched) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->pfd, NULL);
    s->watched = 0;
    was = 1;
  }
  pthread_mutex_unlock(&s->lock);
  if (!was)
    return;
  int queued = 0;
  pthread_mutex_lock(&release_lock);
  if (nrelease < sizeof(release_list) / sizeof(release_list[0])) {
    release_list[nrelease++] = s;
    queued = 1;
  }
  pthread_mutex_unlock(&release_lock);
  if (!queued) { /* cannot happen in practice: far more slots than sockets */
    hwsock__run_sock_put(s);
    return;
  }
  uint64_t one = 1;
  if (write(wakefd, &one, sizeof(one)) < 0) {
    /* the counter is saturated: the watcher is awake anyway */
  }
}
