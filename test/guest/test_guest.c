/* The guest driver core (hwsock/guest.h) against a fake device written
 * here: a thread that reads the split virtqueue directly (descriptors,
 * indirect tables, avail ring) and answers by the wire protocol. The fake
 * is strict where the driver must be (addresses inside memory, readable
 * before writable, kick and interrupt suppression honoured) and can misbehave
 * on demand (unknown heads, lengths beyond the offer, wrong tags) to check
 * that the driver fails cleanly with HWSOCK_EPROTO.
 *
 * Socket model of the fake: SEND appends to the socket's own byte queue,
 * RECV takes from it (parking until data arrives), SHUTDOWN(WR) marks EOF. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hwsock/guest.h"
#include "hwsock/uri.h"

#define GPA_BASE 0x40000000ull
#define FAKE_SOCKS 64
#define FAKE_BUF (256u << 10)
#define FAKE_PARKED 512
#define FAKE_LOG 64

enum bad_mode {
  BAD_NONE,
  BAD_HEAD_RANGE, /* used id >= queue size */
  BAD_HEAD_TWICE, /* the same head completed twice */
  BAD_USED_LEN,   /* used len beyond the writable part */
  BAD_TAG,        /* response tag not the request's */
  BAD_RESP_LEN,   /* RECV resp.len beyond the data area */
  BAD_USED_IDX,   /* used idx jumps more than the queue size */
  BAD_STATUS,     /* a status value outside the error space */
  BAD_SEND_LEN    /* SEND resp.len beyond the data offered */
};

typedef struct seg {
  uint8_t *p;
  uint32_t len;
} seg;

typedef struct parked {
  uint16_t head;
  uint32_t sock, arg0, arg1;
  uint64_t tag;
  seg w[8];
  unsigned nw;
  uint32_t wlen;
} parked;

typedef struct fsock {
  int open, eof;
  uint8_t *buf;
  size_t len;
  char local[64], peer[64];
  uint8_t opt[16];
  uint32_t optlen;
  int has_opt;
} fsock;

typedef struct fake {
  pthread_mutex_t m;
  pthread_cond_t kick_cond, irq_cond, idle_cond;
  pthread_t thr;
  int running, stop, paused, dead, strict;
  uint8_t *mem;
  size_t mem_size;
  hwsock_wire_config cfg;
  /* negotiated */
  uint64_t features;
  int started, queues_set[16];
  unsigned qsizes[16];
  /* queue 0 */
  unsigned qsize;
  hwsock_vring_desc *desc;
  hwsock_vring_avail *avail;
  hwsock_vring_used *used;
  uint16_t last_avail, used_idx, notified_used;
  /* counters */
  unsigned kicks, kick_pending, irqs, irq_pending, lost, indirect_chains;
  unsigned long completed;
  unsigned errors;
  char why[160];
  /* behaviour */
  int reverse, close_keeps_parked, no_notify_when_paused;
  enum bad_mode bad;
  /* completions collected in one pass */
  struct { uint16_t head; uint32_t len; } batch[FAKE_PARKED];
  unsigned nbatch;
  parked park[FAKE_PARKED];
  unsigned npark;
  fsock socks[FAKE_SOCKS];
  uint32_t send_len[FAKE_LOG], send_flags[FAKE_LOG];
  unsigned nsend;
  char last_dest[64];
} fake;

static void fake_error(fake *f, const char *why) {
  if (!f->errors++)
    snprintf(f->why, sizeof(f->why), "%s", why);
}

static uint8_t *gpa_ptr(fake *f, uint64_t gpa, uint64_t len) {
  if (gpa < GPA_BASE || len > f->mem_size ||
      gpa - GPA_BASE > f->mem_size - len)
    return NULL;
  return f->mem + (gpa - GPA_BASE);
}

/* ---- transport ops ------------------------------------------------------ */

static int op_set_features(void *o, uint64_t features) {
  fake *f = o;
  f->features = features;
  return 0;
}

static int op_setup_queue(void *o, unsigned q, unsigned size, uint64_t d,
                          uint64_t a, uint64_t u) {
  fake *f = o;
  if (q >= hwsock_le16_get(&f->cfg.num_queues) || q >= 16)
    return HWSOCK_EINVAL;
  if (d % 16 || a % 2 || u % 4 || !gpa_ptr(f, d, 16u * size) ||
      !gpa_ptr(f, a, hwsock_vring_avail_bytes(size)) ||
      !gpa_ptr(f, u, hwsock_vring_used_bytes(size)) || (size & (size - 1)))
    return HWSOCK_EFAULT;
  f->queues_set[q] = 1;
  f->qsizes[q] = size;
  if (q == 0) {
    f->qsize = size;
    f->desc = (hwsock_vring_desc *)(void *)gpa_ptr(f, d, 1);
    f->avail = (hwsock_vring_avail *)(void *)gpa_ptr(f, a, 1);
    f->used = (hwsock_vring_used *)(void *)gpa_ptr(f, u, 1);
  }
  return 0;
}

static void *fake_main(void *arg);

static int op_start(void *o) {
  fake *f = o;
  for (unsigned q = 0; q < hwsock_le16_get(&f->cfg.num_queues); q++)
    if (!f->queues_set[q])
      return HWSOCK_EINVAL;
  f->started = 1;
  f->running = 1;
  pthread_create(&f->thr, NULL, fake_main, f);
  return 0;
}

static void op_kick(void *o, unsigned q) {
  fake *f = o;
  pthread_mutex_lock(&f->m);
  if (q != 0)
    fake_error(f, "kick for a queue the driver does not use");
  f->kicks++;
  f->kick_pending = 1;
  pthread_cond_signal(&f->kick_cond);
  pthread_mutex_unlock(&f->m);
}

static int op_wait(void *o, unsigned q, int timeout_ms) {
  fake *f = o;
  struct timespec ts;
  /* strict: a wait that sees no interrupt for 10 s counts as a completion
   * the driver slept through (3 s was reached under a load average of 12
   * by a fake device thread that simply had no CPU). */
  int ms = f->strict ? 10000 : timeout_ms;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&f->m);
  int timed_out = 0;
  while (!f->irq_pending && !f->dead && !timed_out)
    timed_out = pthread_cond_timedwait(&f->irq_cond, &f->m, &ts) != 0;
  int r = f->dead ? HWSOCK_ECONNRESET : 0;
  if (f->irq_pending)
    f->irq_pending = 0;
  else if (timed_out && f->strict)
    f->lost++; /* the driver slept through a completion */
  pthread_mutex_unlock(&f->m);
  (void)q;
  return r;
}

static const hwsock_guest_ops fake_ops = {
    .size = sizeof(hwsock_guest_ops),
    .set_features = op_set_features,
    .setup_queue = op_setup_queue,
    .start = op_start,
    .kick = op_kick,
    .wait = op_wait,
};

/* ---- device side --------------------------------------------------------- */

static void push_used(fake *f, uint16_t head, uint32_t len) {
  hwsock_vring_used_elem *e = &f->used->ring[f->used_idx % f->qsize];
  hwsock_le32_set(&e->id, head);
  hwsock_le32_set(&e->len, len);
  f->used_idx++;
  f->completed++;
}

/* Publishes the batch (in reverse when asked) and interrupts the guest
 * when its suppression settings say so. f->m held. */
static void flush(fake *f) {
  if (!f->nbatch)
    return;
  for (unsigned i = 0; i < f->nbatch; i++) {
    unsigned k = f->reverse ? f->nbatch - 1 - i : i;
    push_used(f, f->batch[k].head, f->batch[k].len);
  }
  f->nbatch = 0;
  __atomic_thread_fence(__ATOMIC_RELEASE);
  hwsock_le16_store(&f->used->idx, f->used_idx);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  int notify;
  if (f->features & HWSOCK_F_EVENT_IDX) {
    uint16_t ev = hwsock_le16_load(&f->avail->ring[f->qsize]);
    notify = hwsock_vring_need_event(ev, f->used_idx, f->notified_used);
  } else {
    notify = !(hwsock_le16_load(&f->avail->flags) &
               HWSOCK_VRING_AVAIL_F_NO_INTERRUPT);
  }
  f->notified_used = f->used_idx;
  if (notify) {
    f->irqs++;
    f->irq_pending = 1;
    pthread_cond_broadcast(&f->irq_cond);
  }
}

static void wr(const parked *p, uint32_t off, const void *src, uint32_t n) {
  const uint8_t *s = src;
  for (unsigned i = 0; i < p->nw && n; i++) {
    if (off >= p->w[i].len) {
      off -= p->w[i].len;
      continue;
    }
    uint32_t k = p->w[i].len - off < n ? p->w[i].len - off : n;
    memcpy(p->w[i].p + off, s, k);
    s += k;
    n -= k;
    off = 0;
  }
}

/* Writes the response header (and counts written bytes) and queues the
 * used entry. */
static void complete(fake *f, const parked *p, uint32_t status, uint32_t len,
                     uint32_t uri_len, uint32_t flags, uint32_t val,
                     uint32_t written) {
  hwsock_resp_hdr r;
  memset(&r, 0, sizeof(r));
  hwsock_le32_set(&r.status, status);
  hwsock_le32_set(&r.len, len);
  hwsock_le64_set(&r.tag, p->tag);
  hwsock_le32_set(&r.flags, flags);
  hwsock_le32_set(&r.uri_len, uri_len);
  hwsock_le32_set(&r.val, val);
  uint32_t used_len = 32 + written;
  switch (f->bad) {
  case BAD_TAG:
    hwsock_le64_set(&r.tag, p->tag ^ 0x10000);
    break;
  case BAD_USED_LEN:
    used_len = p->wlen + 1;
    break;
  case BAD_RESP_LEN:
  case BAD_SEND_LEN:
    hwsock_le32_set(&r.len, p->wlen + 1);
    break;
  case BAD_STATUS:
    hwsock_le32_set(&r.status, 0x7fff0000u);
    break;
  default:
    break;
  }
  wr(p, 0, &r, sizeof(r));
  if (f->nbatch + 2 > FAKE_PARKED) {
    fake_error(f, "batch overflow");
    return;
  }
  uint16_t head = p->head;
  if (f->bad == BAD_HEAD_RANGE)
    head = (uint16_t)(f->qsize + 3);
  f->batch[f->nbatch].head = head;
  f->batch[f->nbatch++].len = used_len;
  if (f->bad == BAD_HEAD_TWICE) {
    f->batch[f->nbatch].head = head;
    f->batch[f->nbatch++].len = used_len;
  }
  if (f->bad == BAD_USED_IDX)
    f->used_idx = (uint16_t)(f->used_idx + f->qsize + 1);
  f->bad = BAD_NONE; /* one bad completion is enough */
}

static void peer_uri(uint32_t s, char *out, size_t n) {
  snprintf(out, n, "udp://127.0.0.1:%u", 7000 + s);
}

/* Answers a RECV from the socket's queue; 0 when it must wait. */
static int try_recv(fake *f, const parked *p) {
  fsock *s = &f->socks[p->sock];
  uint32_t U = p->arg1;
  if (p->wlen < 32 + U) {
    complete(f, p, (uint32_t)-HWSOCK_EINVAL, 0, 0, 0, 0, 0);
    return 1;
  }
  if (!s->open) {
    complete(f, p, (uint32_t)-HWSOCK_ECANCELED, 0, 0, 0, 0, 0);
    return 1;
  }
  if (s->len == 0 && !s->eof)
    return 0;
  if (s->len == 0) {
    complete(f, p, 0, 0, 0, HWSOCK_RESP_F_EOF, 0, 0);
    return 1;
  }
  uint32_t cap = p->wlen - 32 - U;
  uint32_t n = s->len < cap ? (uint32_t)s->len : cap;
  uint32_t ulen = 0;
  if (U) {
    char uri[64];
    peer_uri(p->sock, uri, sizeof(uri));
    ulen = (uint32_t)strlen(uri) < U ? (uint32_t)strlen(uri) : U;
    wr(p, 32, uri, ulen);
  }
  wr(p, 32 + U, s->buf, n);
  uint32_t full = (uint32_t)s->len;
  if (!(p->arg0 & HWSOCK_RECV_PEEK)) {
    memmove(s->buf, s->buf + n, s->len - n);
    s->len -= n;
  }
  complete(f, p, 0, n, ulen, n < full ? HWSOCK_RESP_F_TRUNC : 0, full,
           U + n);
  return 1;
}

/* Completes parked RECVs that can now proceed. */
static void deliver(fake *f) {
  unsigned k = 0;
  for (unsigned i = 0; i < f->npark; i++) {
    if (!try_recv(f, &f->park[i]))
      f->park[k++] = f->park[i];
  }
  f->npark = k;
}

static void handle(fake *f, parked *p, const uint8_t *rd, uint32_t rlen) {
  const hwsock_req_hdr *h = (const hwsock_req_hdr *)(const void *)rd;
  uint16_t op = hwsock_le16_get(&h->opcode);
  uint32_t id = hwsock_le32_get(&h->sock_id);
  uint32_t uri_len = hwsock_le32_get(&h->uri_len);
  p->sock = id;
  p->arg0 = hwsock_le32_get(&h->arg0);
  p->arg1 = hwsock_le32_get(&h->arg1);
  p->tag = hwsock_le64_get(&h->tag);
  if (uri_len > rlen - 32) {
    fake_error(f, "uri_len beyond the readable part");
    complete(f, p, (uint32_t)-HWSOCK_EBADMSG, 0, 0, 0, 0, 0);
    return;
  }
  const char *uri = (const char *)rd + 32;
  const uint8_t *data = rd + 32 + uri_len;
  uint32_t dlen = rlen - 32 - uri_len;
  uint32_t max = hwsock_le32_get(&f->cfg.max_sockets);
  if (id >= max || id >= FAKE_SOCKS) {
    complete(f, p, (uint32_t)-HWSOCK_EBADF, 0, 0, 0, 0, 0);
    return;
  }
  fsock *s = &f->socks[id];
  if (op != HWSOCK_OP_OPEN && !s->open) {
    complete(f, p, (uint32_t)-HWSOCK_EBADF, 0, 0, 0, 0, 0);
    return;
  }
  switch (op) {
  case HWSOCK_OP_OPEN:
    if (s->open) {
      fake_error(f, "OPEN of an id that is open");
      complete(f, p, (uint32_t)-HWSOCK_EEXIST, 0, 0, 0, 0, 0);
      return;
    }
    memset(s, 0, sizeof(*s));
    s->open = 1;
    s->buf = malloc(FAKE_BUF);
    complete(f, p, 0, 0, 0, 0, 0, 0);
    return;
  case HWSOCK_OP_CLOSE:
    s->open = 0;
    free(s->buf);
    s->buf = NULL;
    s->len = 0;
    complete(f, p, 0, 0, 0, 0, 0, 0);
    if (!f->close_keeps_parked)
      deliver(f); /* parked RECVs on it end with ECANCELED */
    return;
  case HWSOCK_OP_CONNECT:
    if (uri_len == 18 && !memcmp(uri, "tcp://192.0.2.1:80", 18)) {
      complete(f, p, 1000, 0, 0, 0, 0, 0); /* DECLINED */
      return;
    }
    snprintf(s->peer, sizeof(s->peer), "%.*s", (int)uri_len, uri);
    complete(f, p, 0, 0, 0, 0, 0, 0);
    return;
  case HWSOCK_OP_BIND:
    snprintf(s->local, sizeof(s->local), "%.*s", (int)uri_len, uri);
    complete(f, p, 0, 0, 0, 0, 0, 0);
    return;
  case HWSOCK_OP_LISTEN:
    complete(f, p, p->arg0 == 7 ? 0 : (uint32_t)-HWSOCK_EINVAL, 0, 0, 0, 0,
             0);
    return;
  case HWSOCK_OP_ACCEPT: {
    uint32_t nid = p->arg1;
    const char *peer = "tcp://127.0.0.1:40000";
    uint32_t n = (uint32_t)strlen(peer);
    if (nid >= max || nid >= FAKE_SOCKS || f->socks[nid].open ||
        p->wlen < 32 + n) {
      fake_error(f, "bad ACCEPT new id or area");
      complete(f, p, (uint32_t)-HWSOCK_EINVAL, 0, 0, 0, 0, 0);
      return;
    }
    memset(&f->socks[nid], 0, sizeof(fsock));
    f->socks[nid].open = 1;
    f->socks[nid].buf = malloc(FAKE_BUF);
    snprintf(f->socks[nid].peer, sizeof(f->socks[nid].peer), "%s", peer);
    wr(p, 32, peer, n);
    complete(f, p, 0, 0, n, 0, 0, n);
    return;
  }
  case HWSOCK_OP_SEND: {
    if (f->nsend < FAKE_LOG) {
      f->send_len[f->nsend] = dlen;
      f->send_flags[f->nsend++] = p->arg0;
    }
    if (uri_len)
      snprintf(f->last_dest, sizeof(f->last_dest), "%.*s", (int)uri_len, uri);
    uint32_t n = FAKE_BUF - s->len < dlen ? (uint32_t)(FAKE_BUF - s->len)
                                          : dlen;
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    complete(f, p, 0, n, 0, 0, 0, 0);
    deliver(f);
    return;
  }
  case HWSOCK_OP_RECV:
    if (!try_recv(f, p)) {
      if (f->npark == FAKE_PARKED) {
        fake_error(f, "too many parked");
        return;
      }
      f->park[f->npark++] = *p;
    }
    return;
  case HWSOCK_OP_SHUTDOWN:
    if (p->arg0 & HWSOCK_SHUT_WR)
      s->eof = 1;
    complete(f, p, 0, 0, 0, 0, 0, 0);
    deliver(f);
    return;
  case HWSOCK_OP_SETSOCKOPT:
    s->has_opt = 1;
    s->optlen = dlen < 16 ? dlen : 16;
    memcpy(s->opt, data, s->optlen);
    complete(f, p, 0, 0, 0, 0, 0, 0);
    return;
  case HWSOCK_OP_GETSOCKOPT:
    if (!s->has_opt) {
      complete(f, p, (uint32_t)-HWSOCK_ENOPROTOOPT, 0, 0, 0, 0, 0);
      return;
    }
    wr(p, 32, s->opt, s->optlen);
    complete(f, p, 0, s->optlen, 0, 0, 0, s->optlen);
    return;
  case HWSOCK_OP_GETNAME: {
    const char *name = p->arg0 ? s->peer : s->local;
    uint32_t n = (uint32_t)strlen(name);
    if (!n) {
      complete(f, p, (uint32_t)-HWSOCK_ENOTCONN, 0, 0, 0, 0, 0);
      return;
    }
    wr(p, 32, name, n);
    complete(f, p, 0, 0, n, 0, 0, n);
    return;
  }
  default:
    complete(f, p, (uint32_t)-HWSOCK_ENOSYS, 0, 0, 0, 0, 0);
    return;
  }
}

/* Walks one chain (direct or indirect), checking what a device checks. */
static void pop_one(fake *f, uint16_t head) {
  static uint8_t rd[(1u << 20) + 512];
  parked p;
  memset(&p, 0, sizeof(p));
  p.head = head;
  uint32_t rlen = 0;
  hwsock_vring_desc *table = f->desc;
  unsigned tsize = f->qsize, i = head, n = 0;
  if (head >= f->qsize) {
    fake_error(f, "head out of range");
    return;
  }
  if (hwsock_le16_get(&f->desc[head].flags) & HWSOCK_VRING_DESC_F_INDIRECT) {
    uint64_t a = hwsock_le64_get(&f->desc[head].addr);
    uint32_t l = hwsock_le32_get(&f->desc[head].len);
    if (!(f->features & HWSOCK_F_INDIRECT_DESC) || l % 16 || !l ||
        !(table = (hwsock_vring_desc *)(void *)gpa_ptr(f, a, l))) {
      fake_error(f, "bad indirect descriptor");
      return;
    }
    f->indirect_chains++;
    tsize = l / 16;
    i = 0;
  }
  for (;;) {
    if (i >= tsize || ++n > 8) {
      fake_error(f, "bad chain");
      return;
    }
    hwsock_vring_desc *d = &table[i];
    uint16_t fl = hwsock_le16_get(&d->flags);
    uint32_t len = hwsock_le32_get(&d->len);
    uint8_t *ptr = gpa_ptr(f, hwsock_le64_get(&d->addr), len);
    if (!ptr || (fl & HWSOCK_VRING_DESC_F_INDIRECT)) {
      fake_error(f, "descriptor outside memory or nested indirect");
      return;
    }
    if (fl & HWSOCK_VRING_DESC_F_WRITE) {
      p.w[p.nw].p = ptr;
      p.w[p.nw++].len = len;
      p.wlen += len;
    } else {
      if (p.nw || rlen + len > sizeof(rd)) {
        fake_error(f, "readable after writable, or too long");
        return;
      }
      memcpy(rd + rlen, ptr, len);
      rlen += len;
    }
    if (!(fl & HWSOCK_VRING_DESC_F_NEXT))
      break;
    i = hwsock_le16_get(&d->next);
  }
  if (rlen < 32 || p.wlen < 32) {
    fake_error(f, "chain without headers");
    return;
  }
  handle(f, &p, rd, rlen);
}

static volatile hwsock_le16 *avail_event(fake *f) {
  return (volatile hwsock_le16 *)(void *)((uint8_t *)f->used + 4 +
                                          8u * f->qsize);
}

/* Pops everything available, completes, then re-enables kicks and
 * re-checks (the device half of the event-index handshake). f->m held. */
static void process(fake *f) {
  for (;;) {
    uint16_t avail_idx = hwsock_le16_load(&f->avail->idx);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if ((uint16_t)(avail_idx - f->last_avail) > f->qsize) {
      fake_error(f, "avail idx ran ahead");
      return;
    }
    while (f->last_avail != avail_idx) {
      uint16_t head =
          hwsock_le16_load(&f->avail->ring[f->last_avail % f->qsize]);
      f->last_avail++;
      pop_one(f, head);
    }
    flush(f);
    if (f->features & HWSOCK_F_EVENT_IDX)
      hwsock_le16_store(avail_event(f), f->last_avail);
    else
      hwsock_le16_store(&f->used->flags, 0);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (hwsock_le16_load(&f->avail->idx) == f->last_avail)
      return;
  }
}

static void *fake_main(void *arg) {
  fake *f = arg;
  pthread_mutex_lock(&f->m);
  while (!f->stop) {
    while (!f->stop && (f->paused || !f->kick_pending))
      pthread_cond_wait(&f->kick_cond, &f->m);
    if (f->stop)
      break;
    f->kick_pending = 0;
    process(f);
    pthread_cond_broadcast(&f->idle_cond);
  }
  pthread_mutex_unlock(&f->m);
  return NULL;
}

/* ---- fixture ------------------------------------------------------------- */

static fake F;
static hwsock_guest *G;
static hwsock_guest_config C;

static void fake_init(size_t mem_size) {
  memset(&F, 0, sizeof(F));
  pthread_mutex_init(&F.m, NULL);
  pthread_cond_init(&F.kick_cond, NULL);
  pthread_cond_init(&F.irq_cond, NULL);
  pthread_cond_init(&F.idle_cond, NULL);
  F.mem_size = mem_size;
  F.mem = aligned_alloc(4096, mem_size);
  memset(F.mem, 0xa5, mem_size); /* the driver must not rely on zeroes */
  hwsock_le32_set(&F.cfg.magic, HWSOCK_CONFIG_MAGIC);
  hwsock_le32_set(&F.cfg.protocol_version, HWSOCK_PROTOCOL_VERSION);
  hwsock_le64_set(&F.cfg.device_features,
                  HWSOCK_F_VERSION_1 | HWSOCK_F_TCP | HWSOCK_F_UDP |
                      HWSOCK_F_INET6 | HWSOCK_F_EVENT_IDX |
                      HWSOCK_F_INDIRECT_DESC);
  hwsock_le16_set(&F.cfg.num_queues, 2);
  hwsock_le16_set(&F.cfg.max_queue_size, 256);
  hwsock_le32_set(&F.cfg.max_sockets, FAKE_SOCKS);
  hwsock_le32_set(&F.cfg.max_inflight, 256);
  hwsock_le32_set(&F.cfg.max_uri_len, HWSOCK_URI_MAX);
  hwsock_le32_set(&F.cfg.max_io_len, 1u << 20);
  hwsock_le32_set(&F.cfg.max_chain_segs, 16);
  hwsock_guest_config_init(&C);
  C.mem = F.mem;
  C.mem_gpa = GPA_BASE;
  C.mem_size = mem_size;
  C.device = &F.cfg;
  C.ops = &fake_ops;
  C.opaque = &F;
  C.io_len = 4096;
}

static void fake_stop(void) {
  if (F.running) {
    pthread_mutex_lock(&F.m);
    F.stop = 1;
    pthread_cond_broadcast(&F.kick_cond);
    pthread_mutex_unlock(&F.m);
    pthread_join(F.thr, NULL);
    F.running = 0;
  }
}

static void teardown(void) {
  fake_stop();
  hwsock_guest_free(G);
  G = NULL;
  for (unsigned i = 0; i < FAKE_SOCKS; i++)
    free(F.socks[i].buf);
  free(F.mem);
}

static void up(void) {
  int err = hwsock_guest_new(&C, &G);
  cr_assert_eq(err, 0, "hwsock_guest_new: %s", hwsock_strerror(err));
}

static void setup_indirect(void) {
  fake_init(8u << 20);
  up();
}

static void setup_direct(void) {
  fake_init(8u << 20);
  C.indirect = 0;
  up();
}

static void setup_none(void) { fake_init(8u << 20); }

/* Device-side helpers for the test thread. */
static void inject(unsigned s, const void *data, size_t len) {
  pthread_mutex_lock(&F.m);
  fsock *fs = &F.socks[s];
  memcpy(fs->buf + fs->len, data, len);
  fs->len += len;
  deliver(&F);
  flush(&F);
  pthread_mutex_unlock(&F.m);
}

static unsigned parked_count(void) {
  pthread_mutex_lock(&F.m);
  unsigned n = F.npark;
  pthread_mutex_unlock(&F.m);
  return n;
}

static void wait_parked(unsigned n) {
  for (int i = 0; i < 5000 && parked_count() < n; i++)
    usleep(1000);
  cr_assert_eq(parked_count(), n, "parked RECVs");
}

static uint16_t avail_idx_now(void) {
  return hwsock_le16_load(&F.avail->idx);
}

static void assert_fake_clean(void) {
  cr_assert_eq(F.errors, 0, "fake device saw: %s", F.why);
  cr_assert_eq(F.lost, 0, "driver slept through %u completions", F.lost);
}

static int open_udp(void) {
  int s = hwsock_guest_socket(G, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM);
  cr_assert_geq(s, 0, "socket: %s", hwsock_strerror(s));
  return s;
}

/* ---- threads used by several tests -------------------------------------- */

typedef struct rx_job {
  pthread_t t;
  int sock;
  ssize_t ret;
  char buf[256];
  atomic_int done;
} rx_job;

static void *rx_thread(void *arg) {
  rx_job *j = arg;
  j->ret = hwsock_guest_recv(G, j->sock, j->buf, sizeof(j->buf) - 1, 0);
  atomic_store(&j->done, 1);
  return NULL;
}

typedef struct tx_job {
  pthread_t t;
  int sock;
  ssize_t ret;
  atomic_int done;
} tx_job;

static void *tx_thread(void *arg) {
  tx_job *j = arg;
  j->ret = hwsock_guest_send(G, j->sock, "x", 1, 0);
  atomic_store(&j->done, 1);
  return NULL;
}

/* ---- setup: config, negotiation, layout ---------------------------------- */

Test(guest_setup, rejects_bad_config, .init = setup_none, .fini = teardown) {
  hwsock_guest *g = (hwsock_guest *)1;
  hwsock_guest_config c = C;
  c.size = 0;
  cr_expect_eq(hwsock_guest_new(&c, &g), HWSOCK_EINVAL);
  cr_expect_null(g);
  c = C;
  c.ops = NULL;
  cr_expect_eq(hwsock_guest_new(&c, &g), HWSOCK_EINVAL);
  c = C;
  c.mem = NULL;
  cr_expect_eq(hwsock_guest_new(&c, &g), HWSOCK_EINVAL);
  c = C;
  c.mem_size = 3 * 4096; /* both queues fit, no slot does */
  cr_expect_eq(hwsock_guest_new(&c, &g), HWSOCK_EINVAL);
  c = C;
  c.queue_size = 100; /* not a power of two */
  cr_expect_eq(hwsock_guest_new(&c, &g), HWSOCK_EINVAL);
  c = C;
  c.queue_size = 512; /* more than the device accepts */
  cr_expect_eq(hwsock_guest_new(&c, &g), HWSOCK_EINVAL);
  c = C;
  c.slots = 100000; /* clamped to the queue, but memory still too small */
  c.mem_size = 64 * 4096;
  cr_expect_eq(hwsock_guest_new(&c, &g), HWSOCK_EINVAL);
  cr_expect_eq(F.started, 0, "nothing started on a rejected config");
}

Test(guest_setup, rejects_bad_device, .init = setup_none, .fini = teardown) {
  hwsock_guest *g = NULL;
  hwsock_le32_set(&F.cfg.magic, 0x12345678);
  cr_expect_eq(hwsock_guest_new(&C, &g), HWSOCK_EPROTO);
  hwsock_le32_set(&F.cfg.magic, HWSOCK_CONFIG_MAGIC);
  hwsock_le32_set(&F.cfg.protocol_version, 2);
  cr_expect_eq(hwsock_guest_new(&C, &g), HWSOCK_EPROTO);
  hwsock_le32_set(&F.cfg.protocol_version, HWSOCK_PROTOCOL_VERSION);
  hwsock_le64_set(&F.cfg.device_features, HWSOCK_F_TCP); /* no VERSION_1 */
  cr_expect_eq(hwsock_guest_new(&C, &g), HWSOCK_EPROTO);
  hwsock_le64_set(&F.cfg.device_features, HWSOCK_F_VERSION_1);
  hwsock_le16_set(&F.cfg.num_queues, 0);
  cr_expect_eq(hwsock_guest_new(&C, &g), HWSOCK_EPROTO);
  hwsock_le16_set(&F.cfg.num_queues, 1);
  hwsock_le32_set(&F.cfg.max_uri_len, HWSOCK_URI_AREA_MIN - 1);
  cr_expect_eq(hwsock_guest_new(&C, &g), HWSOCK_EPROTO);
  cr_expect_null(g);
  cr_expect_eq(F.features, 0, "no features set on a bad device");
}

Test(guest_setup, negotiates_only_what_is_offered_and_wanted,
     .init = setup_none, .fini = teardown) {
  hwsock_le64_set(&F.cfg.device_features,
                  HWSOCK_F_VERSION_1 | HWSOCK_F_UDP | HWSOCK_F_IPX |
                      HWSOCK_F_INDIRECT_DESC | (1ull << 40));
  C.event_idx = 1;
  C.indirect = 0;
  up();
  cr_expect_eq(F.features, HWSOCK_F_VERSION_1 | HWSOCK_F_UDP | HWSOCK_F_IPX,
               "features 0x%llx", (unsigned long long)F.features);
}

Test(guest_setup, sets_up_every_queue_then_starts, .init = setup_none,
     .fini = teardown) {
  hwsock_le16_set(&F.cfg.num_queues, 3);
  up();
  cr_expect(F.started);
  for (unsigned q = 0; q < 3; q++)
    cr_expect(F.queues_set[q], "queue %u set up", q);
  cr_expect_eq(F.qsizes[0], 256);
  cr_expect_eq(F.features, HWSOCK_F_VERSION_1 | HWSOCK_F_TCP | HWSOCK_F_UDP |
                               HWSOCK_F_INET6 | HWSOCK_F_EVENT_IDX |
                               HWSOCK_F_INDIRECT_DESC);
  /* the queue works */
  cr_expect_eq(open_udp(), 0);
  assert_fake_clean();
}

Test(guest_setup, unaligned_guest_address_is_honoured, .init = setup_none,
     .fini = teardown) {
  /* memory starting 16 bytes past a page: rings still land aligned */
  C.mem = F.mem + 16;
  C.mem_gpa = GPA_BASE + 16;
  C.mem_size -= 16;
  up();
  cr_expect_eq(open_udp(), 0);
  assert_fake_clean();
}

/* ---- calls and results ---------------------------------------------------- */

static void echo_roundtrip(void) {
  F.strict = 1;
  int s = open_udp();
  cr_assert_eq(hwsock_guest_send(G, s, "hello", 5, 0), 5);
  char buf[64] = {0};
  cr_assert_eq(hwsock_guest_recv(G, s, buf, sizeof(buf), 0), 5);
  cr_expect_str_eq(buf, "hello");
  cr_expect_eq(hwsock_guest_close(G, s), 0);
  assert_fake_clean();
}

Test(guest_calls, echo_indirect, .init = setup_indirect, .fini = teardown) {
  echo_roundtrip();
  cr_expect_eq(F.indirect_chains, 4, "every request used one indirect desc");
}

Test(guest_calls, echo_direct, .init = setup_direct, .fini = teardown) {
  echo_roundtrip();
  cr_expect_eq(F.indirect_chains, 0);
}

Test(guest_calls, ids_are_lowest_free_and_released_by_close,
     .init = setup_indirect, .fini = teardown) {
  cr_expect_eq(open_udp(), 0);
  cr_expect_eq(open_udp(), 1);
  cr_expect_eq(open_udp(), 2);
  cr_expect_eq(hwsock_guest_close(G, 1), 0);
  cr_expect_eq(hwsock_guest_close(G, 1), HWSOCK_EBADF, "closed twice");
  cr_expect_eq(hwsock_guest_send(G, 1, "x", 1, 0), HWSOCK_EBADF);
  cr_expect_eq(hwsock_guest_send(G, -1, "x", 1, 0), HWSOCK_EBADF);
  cr_expect_eq(hwsock_guest_send(G, 9999, "x", 1, 0), HWSOCK_EBADF);
  cr_expect_eq(open_udp(), 1, "id 1 reused after its close");
  cr_expect_eq(open_udp(), 3);
  assert_fake_clean();
}

Test(guest_calls, ids_run_out_with_emfile, .init = setup_none,
     .fini = teardown) {
  hwsock_le32_set(&F.cfg.max_sockets, 3);
  up();
  for (int i = 0; i < 3; i++)
    cr_expect_eq(open_udp(), i);
  cr_expect_eq(hwsock_guest_socket(G, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM),
               HWSOCK_EMFILE);
  cr_expect_eq(hwsock_guest_close(G, 2), 0);
  cr_expect_eq(open_udp(), 2);
}

Test(guest_calls, id_not_reused_while_a_request_is_in_flight,
     .init = setup_indirect, .fini = teardown) {
  F.close_keeps_parked = 1;
  int s = open_udp();
  rx_job j = {.sock = s};
  pthread_create(&j.t, NULL, rx_thread, &j);
  wait_parked(1);
  cr_expect_eq(hwsock_guest_close(G, s), 0);
  cr_expect_eq(open_udp(), 1, "id 0 still has a RECV in flight");
  /* the device ends the orphaned RECV: now id 0 is free again */
  pthread_mutex_lock(&F.m);
  deliver(&F);
  flush(&F);
  pthread_mutex_unlock(&F.m);
  pthread_join(j.t, NULL);
  cr_expect_eq(j.ret, HWSOCK_ECANCELED);
  cr_expect_eq(open_udp(), 0);
}

Test(guest_calls, returns_negative_status, .init = setup_indirect,
     .fini = teardown) {
  int s = hwsock_guest_socket(G, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert_eq(s, 0);
  cr_expect_eq(hwsock_guest_connect(G, s, "tcp://192.0.2.1:80"),
               HWSOCK_EDECLINED);
  cr_expect_eq(HWSOCK_EDECLINED, -1000);
  char name[64];
  cr_expect_eq(hwsock_guest_getname(G, s, 1, name, sizeof(name)),
               HWSOCK_ENOTCONN);
  cr_expect_eq(hwsock_guest_listen(G, s, 3), HWSOCK_EINVAL);
  size_t len = 4;
  uint8_t v[4];
  cr_expect_eq(hwsock_guest_getsockopt(G, s, HWSOCK_SOL_SOCKET,
                                       HWSOCK_SO_RCVBUF, v, &len),
               HWSOCK_ENOPROTOOPT);
  /* a failed call leaves the transport healthy */
  cr_expect_eq(hwsock_guest_connect(G, s, "tcp://127.0.0.1:9"), 0);
  cr_expect_eq(hwsock_guest_getname(G, s, 1, name, sizeof(name)), 0);
  cr_expect_str_eq(name, "tcp://127.0.0.1:9");
  assert_fake_clean();
}

Test(guest_calls, uri_arguments_are_checked, .init = setup_indirect,
     .fini = teardown) {
  int s = open_udp();
  char longuri[HWSOCK_URI_MAX + 8];
  memset(longuri, 'a', sizeof(longuri) - 1);
  longuri[sizeof(longuri) - 1] = '\0';
  cr_expect_eq(hwsock_guest_connect(G, s, longuri), HWSOCK_ENAMETOOLONG);
  cr_expect_eq(hwsock_guest_connect(G, s, NULL), HWSOCK_EINVAL);
  cr_expect_eq(hwsock_guest_sendto(G, s, "x", 1, 0, longuri),
               HWSOCK_ENAMETOOLONG);
  static char big[8192];
  cr_expect_eq(hwsock_guest_sendto(G, s, big, sizeof(big), 0,
                                   "udp://127.0.0.1:9"),
               HWSOCK_EMSGSIZE, "a datagram is one request of io_len");
  char name[8];
  cr_expect_eq(hwsock_guest_getname(G, s, 2, name, sizeof(name)),
               HWSOCK_EINVAL);
}

Test(guest_calls, bind_listen_accept_getname_sockopts, .init = setup_indirect,
     .fini = teardown) {
  int l = hwsock_guest_socket(G, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert_eq(l, 0);
  int other = open_udp();
  cr_assert_eq(other, 1);
  cr_assert_eq(hwsock_guest_close(G, other), 0); /* leaves a hole at 1 */
  cr_expect_eq(hwsock_guest_bind(G, l, "tcp://127.0.0.1:8080"), 0);
  cr_expect_eq(hwsock_guest_listen(G, l, 7), 0);
  char peer[64];
  int c = hwsock_guest_accept(G, l, peer, sizeof(peer));
  cr_expect_eq(c, 1, "accepted connection takes the lowest free id");
  cr_expect_str_eq(peer, "tcp://127.0.0.1:40000");
  char name[64];
  cr_expect_eq(hwsock_guest_getname(G, l, 0, name, sizeof(name)), 0);
  cr_expect_str_eq(name, "tcp://127.0.0.1:8080");
  cr_expect_eq(hwsock_guest_getname(G, c, 1, name, 10), 0);
  cr_expect_str_eq(name, "tcp://127", "truncated to uri_len - 1");
  /* the accepted id is an open socket */
  cr_expect_eq(hwsock_guest_send(G, c, "ab", 2, 0), 2);
  cr_expect_eq(hwsock_guest_accept(G, l, NULL, 0), 2);

  uint8_t val[4] = {1, 2, 3, 4}, got[8] = {0};
  size_t len = sizeof(got);
  cr_expect_eq(hwsock_guest_setsockopt(G, c, HWSOCK_SOL_SOCKET,
                                       HWSOCK_SO_RCVBUF, val, sizeof(val)),
               0);
  cr_expect_eq(hwsock_guest_getsockopt(G, c, HWSOCK_SOL_SOCKET,
                                       HWSOCK_SO_RCVBUF, got, &len),
               0);
  cr_expect_eq(len, 4);
  cr_expect_arr_eq(got, val, 4);
  len = 2;
  cr_expect_eq(hwsock_guest_getsockopt(G, c, HWSOCK_SOL_SOCKET,
                                       HWSOCK_SO_RCVBUF, got, &len),
               0);
  cr_expect_eq(len, 2, "value truncated to the caller's buffer");
  assert_fake_clean();
}

Test(guest_calls, send_splits_into_io_len_pieces, .init = setup_indirect,
     .fini = teardown) {
  F.strict = 1;
  size_t n = 3 * 4096 + 5;
  uint8_t *out = malloc(n), *in = malloc(n);
  for (size_t i = 0; i < n; i++)
    out[i] = (uint8_t)(i * 7 + 3);
  /* A datagram is one request: too big for a slot is EMSGSIZE, not pieces. */
  int u = open_udp();
  cr_assert_eq(hwsock_guest_send(G, u, out, n, 0), HWSOCK_EMSGSIZE);
  cr_assert_eq(F.nsend, 0);
  int s = hwsock_guest_socket(G, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  cr_assert_geq(s, 0);
  cr_assert_eq(hwsock_guest_send(G, s, out, n, 0), (ssize_t)n);
  cr_assert_eq(F.nsend, 4);
  for (unsigned i = 0; i < 3; i++) {
    cr_expect_eq(F.send_len[i], 4096);
    cr_expect_eq(F.send_flags[i], HWSOCK_SEND_MORE);
  }
  cr_expect_eq(F.send_len[3], 5);
  cr_expect_eq(F.send_flags[3], 0, "no MORE on the last piece");
  size_t got = 0;
  while (got < n) {
    ssize_t r = hwsock_guest_recv(G, s, in + got, n - got, 0);
    cr_assert_gt(r, 0);
    cr_assert_leq(r, 4096, "recv returns at most io_len");
    got += (size_t)r;
  }
  cr_expect_arr_eq(in, out, n);
  free(out);
  free(in);
  assert_fake_clean();
}

Test(guest_calls, recvfrom_gives_uri_flags_and_eof, .init = setup_indirect,
     .fini = teardown) {
  int s = open_udp();
  cr_assert_eq(hwsock_guest_sendto(G, s, "datagram", 8, 0,
                                   "udp://127.0.0.1:53"),
               8);
  cr_expect_str_eq(F.last_dest, "udp://127.0.0.1:53");
  char buf[4], uri[HWSOCK_URI_MAX + 1];
  unsigned fl = 99;
  ssize_t r = hwsock_guest_recvfrom(G, s, buf, sizeof(buf), HWSOCK_RECV_PEEK,
                                    uri, sizeof(uri), &fl);
  cr_expect_eq(r, 4);
  cr_expect_arr_eq(buf, "data", 4);
  cr_expect_str_eq(uri, "udp://127.0.0.1:7000");
  cr_expect_eq(fl, HWSOCK_RESP_F_TRUNC);
  char small[6];
  char big[32] = {0};
  r = hwsock_guest_recvfrom(G, s, big, sizeof(big), 0, small, sizeof(small),
                            &fl);
  cr_expect_eq(r, 8, "PEEK left the data queued");
  cr_expect_str_eq(small, "udp:/", "URI truncated to uri_len - 1");
  cr_expect_eq(fl, 0);
  cr_expect_eq(hwsock_guest_shutdown(G, s, HWSOCK_SHUT_WR), 0);
  r = hwsock_guest_recvfrom(G, s, big, sizeof(big), 0, NULL, 0, &fl);
  cr_expect_eq(r, 0);
  cr_expect_eq(fl, HWSOCK_RESP_F_EOF);
  assert_fake_clean();
}

/* ---- concurrency and ring handling ---------------------------------------- */

typedef struct worker {
  pthread_t t;
  int sock, iters;
  int failures;
  char msg[80];
} worker;

static void *echo_worker(void *arg) {
  worker *w = arg;
  for (int i = 0; i < w->iters; i++) {
    char out[32], in[32];
    int n = snprintf(out, sizeof(out), "s%d-i%d", w->sock, i);
    ssize_t r = hwsock_guest_send(G, w->sock, out, (size_t)n, 0);
    if (r != n) {
      snprintf(w->msg, sizeof(w->msg), "send %zd", r);
      w->failures++;
      return NULL;
    }
    r = hwsock_guest_recv(G, w->sock, in, sizeof(in), 0);
    if (r != n || memcmp(in, out, (size_t)n)) {
      snprintf(w->msg, sizeof(w->msg), "recv %zd at %d", r, i);
      w->failures++;
      return NULL;
    }
  }
  return NULL;
}

static void run_workers(int nthreads, int iters) {
  worker w[16];
  cr_assert_leq(nthreads, 16);
  for (int i = 0; i < nthreads; i++) {
    memset(&w[i], 0, sizeof(w[i]));
    w[i].sock = open_udp();
    w[i].iters = iters;
  }
  for (int i = 0; i < nthreads; i++)
    pthread_create(&w[i].t, NULL, echo_worker, &w[i]);
  for (int i = 0; i < nthreads; i++) {
    pthread_join(w[i].t, NULL);
    cr_expect_eq(w[i].failures, 0, "worker %d: %s", i, w[i].msg);
  }
}

Test(guest_ring, many_threads_indirect, .init = setup_none, .fini = teardown,
     .timeout = 120) {
  C.poll_us = 20;
  up();
  F.strict = 1;
  run_workers(8, 2000);
  assert_fake_clean();
  cr_expect_eq(F.completed, 8 + 8 * 2000 * 2);
}

Test(guest_ring, many_threads_direct_small_queue, .init = setup_none,
     .fini = teardown, .timeout = 120) {
  C.indirect = 0;
  C.queue_size = 16; /* 5 slots for 8 threads: they queue for slots */
  up();
  F.strict = 1;
  run_workers(8, 1500);
  assert_fake_clean();
}

Test(guest_ring, many_threads_without_event_idx, .init = setup_none,
     .fini = teardown, .timeout = 120) {
  C.event_idx = 0;
  up();
  F.strict = 1;
  run_workers(6, 1500);
  assert_fake_clean();
  cr_expect_eq(F.features & HWSOCK_F_EVENT_IDX, 0);
}

Test(guest_ring, indices_wrap_past_65536, .init = setup_none,
     .fini = teardown, .timeout = 240) {
  C.indirect = 0;
  C.queue_size = 8;
  C.poll_us = 50;
  up();
  F.strict = 1;
  run_workers(2, 17000); /* 2 + 68000 requests */
  assert_fake_clean();
  cr_expect_gt(F.completed, 65536ul);
  cr_expect_eq(avail_idx_now(), (uint16_t)F.completed);
  cr_expect_eq(F.used_idx, (uint16_t)F.completed);
}

Test(guest_ring, event_idx_suppresses_kicks, .init = setup_indirect,
     .fini = teardown) {
  F.strict = 1;
  int socks[8];
  for (int i = 0; i < 8; i++)
    socks[i] = open_udp();
  /* device idle and re-armed: each lone request kicks */
  pthread_mutex_lock(&F.m);
  F.kicks = 0;
  pthread_mutex_unlock(&F.m);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(hwsock_guest_send(G, socks[0], "a", 1, 0), 1);
  cr_expect_eq(F.kicks, 5);

  /* device busy (has not re-armed avail_event): only the first of a burst
   * of requests kicks */
  pthread_mutex_lock(&F.m);
  F.paused = 1;
  F.kicks = 0;
  unsigned irqs = F.irqs;
  pthread_mutex_unlock(&F.m);
  uint16_t base = avail_idx_now();
  tx_job j[8];
  for (int i = 0; i < 8; i++) {
    memset(&j[i], 0, sizeof(j[i]));
    j[i].sock = socks[i];
    pthread_create(&j[i].t, NULL, tx_thread, &j[i]);
  }
  for (int i = 0; i < 5000 && avail_idx_now() != (uint16_t)(base + 8); i++)
    usleep(1000);
  cr_assert_eq(avail_idx_now(), (uint16_t)(base + 8));
  pthread_mutex_lock(&F.m);
  cr_expect_eq(F.kicks, 1, "one kick for 8 requests, got %u", F.kicks);
  F.paused = 0;
  F.kick_pending = 1;
  pthread_cond_signal(&F.kick_cond);
  pthread_mutex_unlock(&F.m);
  for (int i = 0; i < 8; i++) {
    pthread_join(j[i].t, NULL);
    cr_expect_eq(j[i].ret, 1);
  }
  /* the 8 completions went out in one batch: at most one interrupt */
  cr_expect_leq(F.irqs - irqs, 1);
  assert_fake_clean();
}

Test(guest_ring, no_notify_flag_suppresses_kicks, .init = setup_none,
     .fini = teardown) {
  C.event_idx = 0;
  up();
  int s = open_udp();
  pthread_mutex_lock(&F.m);
  F.paused = 1;
  F.kicks = 0;
  hwsock_le16_store(&F.used->flags, HWSOCK_VRING_USED_F_NO_NOTIFY);
  pthread_mutex_unlock(&F.m);
  uint16_t base = avail_idx_now();
  tx_job j[4];
  for (int i = 0; i < 4; i++) {
    memset(&j[i], 0, sizeof(j[i]));
    j[i].sock = s;
    pthread_create(&j[i].t, NULL, tx_thread, &j[i]);
  }
  for (int i = 0; i < 5000 && avail_idx_now() != (uint16_t)(base + 4); i++)
    usleep(1000);
  pthread_mutex_lock(&F.m);
  cr_expect_eq(F.kicks, 0, "device said NO_NOTIFY");
  F.paused = 0;
  F.kick_pending = 1; /* a polling device finds the work by itself */
  pthread_cond_signal(&F.kick_cond);
  pthread_mutex_unlock(&F.m);
  for (int i = 0; i < 4; i++) {
    pthread_join(j[i].t, NULL);
    cr_expect_eq(j[i].ret, 1);
  }
  /* flags cleared again: the next request kicks */
  cr_expect_eq(hwsock_guest_send(G, s, "z", 1, 0), 1);
  cr_expect_eq(F.kicks, 1);
  assert_fake_clean();
}

Test(guest_ring, out_of_order_completion, .init = setup_indirect,
     .fini = teardown) {
  F.strict = 1;
  rx_job j[8];
  for (int i = 0; i < 8; i++) {
    memset(&j[i], 0, sizeof(j[i]));
    j[i].sock = open_udp();
  }
  for (int i = 0; i < 8; i++)
    pthread_create(&j[i].t, NULL, rx_thread, &j[i]);
  wait_parked(8);
  /* first one at a time, newest first... */
  for (int i = 7; i >= 4; i--) {
    char m[16];
    int n = snprintf(m, sizeof(m), "to-%d", i);
    inject((unsigned)j[i].sock, m, (size_t)n);
    for (int k = 0; k < 5000 && !atomic_load(&j[i].done); k++)
      usleep(1000);
    cr_assert(atomic_load(&j[i].done), "rx %d completed", i);
    for (int k = 0; k < i; k++)
      cr_expect(!atomic_load(&j[k].done), "rx %d still waiting", k);
  }
  /* ...then the rest in one batch published in reverse */
  pthread_mutex_lock(&F.m);
  F.reverse = 1;
  for (int i = 0; i < 4; i++) {
    fsock *fs = &F.socks[j[i].sock];
    fs->len = (size_t)snprintf((char *)fs->buf, 16, "to-%d", i);
  }
  deliver(&F);
  flush(&F);
  pthread_mutex_unlock(&F.m);
  for (int i = 0; i < 8; i++) {
    pthread_join(j[i].t, NULL);
    char want[16];
    snprintf(want, sizeof(want), "to-%d", i);
    cr_expect_eq(j[i].ret, (ssize_t)strlen(want));
    j[i].buf[j[i].ret > 0 ? j[i].ret : 0] = '\0';
    cr_expect_str_eq(j[i].buf, want);
  }
  assert_fake_clean();
}

Test(guest_ring, callers_wait_for_a_free_slot, .init = setup_none,
     .fini = teardown) {
  C.slots = 3;
  up();
  int s = open_udp();
  pthread_mutex_lock(&F.m);
  F.paused = 1;
  pthread_mutex_unlock(&F.m);
  uint16_t base = avail_idx_now();
  tx_job t[4];
  for (int i = 0; i < 4; i++) {
    memset(&t[i], 0, sizeof(t[i]));
    t[i].sock = s;
    pthread_create(&t[i].t, NULL, tx_thread, &t[i]);
  }
  for (int i = 0; i < 5000 && avail_idx_now() != (uint16_t)(base + 3); i++)
    usleep(1000);
  usleep(50 * 1000);
  cr_expect_eq(avail_idx_now(), (uint16_t)(base + 3),
               "three slots posted, the fourth caller waits");
  pthread_mutex_lock(&F.m);
  F.paused = 0;
  F.kick_pending = 1;
  pthread_cond_signal(&F.kick_cond);
  pthread_mutex_unlock(&F.m);
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i].t, NULL);
    cr_expect_eq(t[i].ret, 1);
  }
  cr_expect_eq(avail_idx_now(), (uint16_t)(base + 4));
  assert_fake_clean();
}

Test(guest_ring, blocking_calls_leave_a_slot_for_close, .init = setup_none,
     .fini = teardown) {
  C.slots = 3;
  up();
  int a = open_udp(), b = open_udp(), c = open_udp();
  rx_job r[3] = {{.sock = a}, {.sock = b}, {.sock = c}};
  for (int i = 0; i < 3; i++) {
    pthread_create(&r[i].t, NULL, rx_thread, &r[i]);
    if (i < 2)
      wait_parked((unsigned)i + 1);
  }
  usleep(50 * 1000); /* the third RECV may not take the last slot */
  cr_expect_eq(parked_count(), 2);
  cr_expect(!atomic_load(&r[2].done));
  /* the slot left over serves non-blocking calls, e.g. the CLOSE that
   * cancels a blocked RECV */
  cr_expect_eq(hwsock_guest_send(G, c, "C", 1, 0), 1);
  cr_expect_eq(hwsock_guest_close(G, a), 0);
  pthread_join(r[0].t, NULL);
  cr_expect_eq(r[0].ret, HWSOCK_ECANCELED);
  /* the waiting RECV of c now got a slot and the queued byte */
  pthread_join(r[2].t, NULL);
  cr_expect_eq(r[2].ret, 1);
  inject((unsigned)b, "B", 1);
  pthread_join(r[1].t, NULL);
  cr_expect_eq(r[1].ret, 1);
  assert_fake_clean();
}

Test(guest_ring, shutdown_transport_wakes_everyone, .init = setup_none,
     .fini = teardown) {
  C.slots = 3;
  up();
  rx_job r[3];
  for (int i = 0; i < 3; i++) {
    memset(&r[i], 0, sizeof(r[i]));
    r[i].sock = open_udp();
    pthread_create(&r[i].t, NULL, rx_thread, &r[i]);
  }
  wait_parked(2); /* the third waits for a slot */
  usleep(50 * 1000);
  cr_expect_eq(hwsock_guest_transport_error(G), 0);
  hwsock_guest_shutdown_transport(G);
  for (int i = 0; i < 3; i++) {
    pthread_join(r[i].t, NULL);
    cr_expect_eq(r[i].ret, HWSOCK_ECONNRESET);
  }
  cr_expect_eq(hwsock_guest_transport_error(G), HWSOCK_ECONNRESET);
  cr_expect_eq(hwsock_guest_transport_error(NULL), HWSOCK_EINVAL);
  cr_expect_eq(hwsock_guest_socket(G, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM),
               HWSOCK_ECONNRESET);
}

Test(guest_ring, wait_error_fails_the_transport, .init = setup_indirect,
     .fini = teardown) {
  rx_job r = {.sock = open_udp()};
  pthread_create(&r.t, NULL, rx_thread, &r);
  wait_parked(1);
  pthread_mutex_lock(&F.m);
  F.dead = 1;
  pthread_cond_broadcast(&F.irq_cond);
  pthread_mutex_unlock(&F.m);
  pthread_join(r.t, NULL);
  cr_expect_eq(r.ret, HWSOCK_ECONNRESET);
  cr_expect_eq(hwsock_guest_send(G, r.sock, "x", 1, 0), HWSOCK_ECONNRESET);
  cr_expect_eq(hwsock_guest_transport_error(G), HWSOCK_ECONNRESET);
}

/* ---- a buggy device ------------------------------------------------------- */

static void bad_device(enum bad_mode mode, int direct, int first_ok) {
  fake_init(8u << 20);
  C.indirect = !direct;
  up();
  int s = open_udp();
  ssize_t r;
  if (mode == BAD_RESP_LEN) /* bad on the RECV after a good SEND */
    cr_assert_eq(hwsock_guest_send(G, s, "abc", 3, 0), 3);
  pthread_mutex_lock(&F.m);
  F.bad = mode;
  pthread_mutex_unlock(&F.m);
  if (mode == BAD_RESP_LEN) {
    char buf[8];
    r = hwsock_guest_recv(G, s, buf, sizeof(buf), 0);
  } else {
    r = hwsock_guest_send(G, s, "abc", 3, 0);
    if (first_ok) {
      cr_expect_eq(r, 3, "the genuine completion is still delivered");
      r = hwsock_guest_send(G, s, "abc", 3, 0);
    }
  }
  cr_expect_eq(r, HWSOCK_EPROTO, "got %zd", r);
  cr_expect_eq(hwsock_guest_send(G, s, "abc", 3, 0), HWSOCK_EPROTO,
               "the transport stays failed");
}

Test(guest_bad, unknown_head, .fini = teardown) {
  bad_device(BAD_HEAD_RANGE, 0, 0);
}
Test(guest_bad, head_completed_twice, .fini = teardown) {
  bad_device(BAD_HEAD_TWICE, 1, 1);
}
Test(guest_bad, used_len_beyond_offer, .fini = teardown) {
  bad_device(BAD_USED_LEN, 0, 0);
}
Test(guest_bad, wrong_tag, .fini = teardown) { bad_device(BAD_TAG, 0, 0); }
Test(guest_bad, resp_len_beyond_area, .fini = teardown) {
  bad_device(BAD_RESP_LEN, 0, 0);
}
Test(guest_bad, send_resp_len_beyond_data, .fini = teardown) {
  bad_device(BAD_SEND_LEN, 1, 0);
}
Test(guest_bad, used_idx_jump, .fini = teardown) {
  bad_device(BAD_USED_IDX, 1, 0);
}
Test(guest_bad, status_out_of_range, .fini = teardown) {
  bad_device(BAD_STATUS, 1, 0);
}
