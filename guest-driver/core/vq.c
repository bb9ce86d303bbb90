/* The driver side of the split virtqueue: descriptor free list, posting a
 * request, kick suppression, reaping the used ring, and the "one reaper at
 * a time" wait protocol shared by every blocked caller.
 *
 * Everything read back from the device is checked before use: a used entry
 * for a head we did not post, a length beyond what we offered, a tag that
 * is not the slot's, or a response field out of range is a device bug, and
 * the transport fails with HWSOCK_EPROTO (never a crash, never a read out
 * of the slot). */
#include <string.h>
#include <time.h>

#include "guest_int.h"
#include "pollwin.h"

#define RELEASE() __atomic_thread_fence(__ATOMIC_RELEASE)
#define ACQUIRE() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define FULL() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static int broken_now(hwsock_guest *g) {
  return __atomic_load_n(&g->broken, __ATOMIC_ACQUIRE);
}

void hwsock__guest_fail(hwsock_guest *g, int err) {
  if (!g->broken)
    __atomic_store_n(&g->broken, err, __ATOMIC_RELEASE);
  for (unsigned i = 0; i < g->nslots; i++)
    pthread_cond_broadcast(&g->slots[i].cond);
  pthread_cond_broadcast(&g->slot_cond);
}

static uint8_t *slot_base(hwsock_guest *g, unsigned i) {
  return g->slot_mem + (size_t)i * g->slot_stride;
}

static uint64_t slot_gpa(hwsock_guest *g, unsigned i) {
  return g->slot_gpa + (uint64_t)i * g->slot_stride;
}

static void set_desc(hwsock_vring_desc *d, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next) {
  hwsock_le64_set(&d->addr, addr);
  hwsock_le32_set(&d->len, len);
  hwsock_le16_set(&d->flags, flags);
  hwsock_le16_set(&d->next, next);
}

/* ---- slots and the socket table (lock held) ----------------------------- */

/* Blocking requests (CONNECT, ACCEPT, RECV) may hold a slot indefinitely;
 * they get at most nslots - 1 so that a CLOSE, which cancels them, always
 * finds a slot (PROTOCOL.md section 9 asks the same of the device's
 * in-flight limit, which bounds nslots). */
static int slot_blocked(const hwsock_guest *g, int blocking) {
  unsigned max_blocking = g->nslots > 1 ? g->nslots - 1 : 1;
  return g->nslot_free == 0 || (blocking && g->nblocking >= max_blocking);
}

static int slot_get(hwsock_guest *g, unsigned *idx, int blocking) {
  while (slot_blocked(g, blocking) && !g->broken) {
    g->slot_waiters++;
    pthread_cond_wait(&g->slot_cond, &g->lock);
    g->slot_waiters--;
  }
  if (g->broken)
    return g->broken;
  *idx = g->slot_stack[--g->nslot_free];
  g->slots[*idx].blocking = blocking;
  g->nblocking += blocking != 0;
  return 0;
}

static void slot_put(hwsock_guest *g, unsigned idx) {
  guest_slot *s = &g->slots[idx];
  g->nblocking -= s->blocking != 0;
  s->blocking = 0;
  s->state = SLOT_FREE;
  g->slot_stack[g->nslot_free++] = idx;
  /* waiters differ (blocking or not): let each re-check */
  if (g->slot_waiters)
    pthread_cond_broadcast(&g->slot_cond);
}

int hwsock__slot_hold(hwsock_guest *g, unsigned *idx) {
  if (g->broken)
    return g->broken;
  if (slot_blocked(g, 1))
    return HWSOCK_EAGAIN;
  return slot_get(g, idx, 1);
}

void hwsock__slot_release(hwsock_guest *g, unsigned idx) { slot_put(g, idx); }

void *hwsock__slot_data(hwsock_guest *g, unsigned idx) {
  return slot_base(g, idx) + g->resp_off + sizeof(hwsock_resp_hdr);
}

static int sock_open(const hwsock_guest *g, int s) {
  return s >= 0 && (unsigned)s < g->nsock &&
         g->socks[s].state == SOCK_OPEN;
}

/* Claims the ids the call names; on success the call holds a reference on
 * c->sock until sock_end(). */
static int sock_begin(hwsock_guest *g, guest_call *c) {
  int id;
  switch (c->rule) {
  case CALL_SOCK_NEW:
    if ((id = hwsock__sock_alloc(g)) < 0)
      return id;
    c->sock = id;
    break;
  case CALL_SOCK_ACCEPT:
    if (!sock_open(g, c->sock))
      return HWSOCK_EBADF;
    if ((id = hwsock__sock_alloc(g)) < 0)
      return id;
    c->arg1 = (uint32_t)id;
    break;
  case CALL_SOCK_CLOSE:
    if (!sock_open(g, c->sock))
      return HWSOCK_EBADF;
    g->socks[c->sock].state = SOCK_CLOSING;
    break;
  default:
    if (!sock_open(g, c->sock))
      return HWSOCK_EBADF;
    break;
  }
  g->socks[c->sock].inflight++;
  return 0;
}

/* Drops the call's reference; ok says whether the device completed it with
 * status 0. An id is reused only after its CLOSE completed and no request
 * naming it is still in flight. */
static void sock_end(hwsock_guest *g, guest_call *c, int ok) {
  guest_sock *s = &g->socks[c->sock];
  if (ok)
    hwsock__sock_account(g, c);
  s->inflight--;
  switch (c->rule) {
  case CALL_SOCK_NEW:
    s->state = ok ? SOCK_OPEN : SOCK_CLOSED;
    break;
  case CALL_SOCK_ACCEPT:
    if (ok)
      g->socks[c->arg1].state = SOCK_OPEN;
    else
      hwsock__sock_release(g, c->arg1);
    break;
  case CALL_SOCK_CLOSE:
    s->state = SOCK_CLOSED; /* whatever the status: the id is gone */
    break;
  default:
    break;
  }
  if (s->state == SOCK_CLOSED && s->inflight == 0)
    hwsock__sock_release(g, (unsigned)c->sock);
}

/* ---- posting ------------------------------------------------------------- */

static int desc_alloc(hwsock_guest *g, uint16_t *out, unsigned n) {
  if (g->ndesc_free < n)
    return HWSOCK_ENOBUFS; /* cannot happen: slots are sized to the table */
  for (unsigned i = 0; i < n; i++) {
    out[i] = g->desc_free;
    g->desc_free = g->desc_next[out[i]];
  }
  g->ndesc_free -= n;
  return 0;
}

static void desc_release(hwsock_guest *g, guest_slot *s) {
  for (unsigned i = s->ndesc; i-- > 0;) {
    g->desc_next[s->desc[i]] = g->desc_free;
    g->desc_free = s->desc[i];
  }
  g->ndesc_free += s->ndesc;
  s->ndesc = 0;
}

/* Fills the slot's request header, URI and data. The slot is ours: this
 * runs without the lock. */
static void fill_slot(hwsock_guest *g, unsigned idx, const guest_call *c,
                      uint64_t tag) {
  uint8_t *base = slot_base(g, idx);
  hwsock_req_hdr h;
  memset(&h, 0, sizeof(h));
  hwsock_le16_set(&h.opcode, c->op);
  hwsock_le32_set(&h.sock_id, (uint32_t)c->sock);
  hwsock_le64_set(&h.tag, tag);
  hwsock_le32_set(&h.arg0, c->arg0);
  hwsock_le32_set(&h.arg1, c->arg1);
  hwsock_le32_set(&h.uri_len, (uint32_t)c->uri_len);
  memcpy(base + g->req_off, &h, sizeof(h));
  if (c->uri_len)
    memcpy(base + g->req_off + sizeof(h), c->uri, c->uri_len);
  if (c->out_len && !c->held) /* readable data lives in the payload area */
    memcpy(base + g->resp_off + sizeof(hwsock_resp_hdr), c->out, c->out_len);
  memset(base + g->resp_off, 0, sizeof(hwsock_resp_hdr));
}

/* Builds the chain for slot idx, publishes it and says whether to kick.
 * Lock held. */
static int post(hwsock_guest *g, unsigned idx, const guest_call *c,
                int *kick) {
  guest_slot *s = &g->slots[idx];
  uint64_t gpa = slot_gpa(g, idx);
  hwsock_vring_desc seg[GUEST_MAX_SEGS];
  uint16_t flags[GUEST_MAX_SEGS];
  unsigned n = 0;
  int err;

  /* readable: header + URI, then data; writable: response + payload */
  set_desc(&seg[n], gpa + g->req_off,
           (uint32_t)(sizeof(hwsock_req_hdr) + c->uri_len), 0, 0);
  flags[n++] = 0;
  if (c->out_len) {
    set_desc(&seg[n], gpa + g->resp_off + sizeof(hwsock_resp_hdr),
             (uint32_t)c->out_len, 0, 0);
    flags[n++] = 0;
  }
  s->in_len = (uint32_t)sizeof(hwsock_resp_hdr) + c->in_uri + c->in_len;
  set_desc(&seg[n], gpa + g->resp_off, s->in_len, 0, 0);
  flags[n++] = HWSOCK_VRING_DESC_F_WRITE;

  if (g->indirect) {
    hwsock_vring_desc *table = (hwsock_vring_desc *)(void *)slot_base(g, idx);
    for (unsigned i = 0; i < n; i++) {
      uint16_t f = flags[i] | (i + 1 < n ? HWSOCK_VRING_DESC_F_NEXT : 0);
      set_desc(&table[i], hwsock_le64_get(&seg[i].addr),
               hwsock_le32_get(&seg[i].len), f, (uint16_t)(i + 1 < n ? i + 1 : 0));
    }
    if ((err = desc_alloc(g, s->desc, 1)) < 0)
      return err;
    s->ndesc = 1;
    set_desc(&g->desc[s->desc[0]], gpa, (uint32_t)(n * sizeof(*table)),
             HWSOCK_VRING_DESC_F_INDIRECT, 0);
  } else {
    if ((err = desc_alloc(g, s->desc, n)) < 0)
      return err;
    s->ndesc = (uint16_t)n;
    for (unsigned i = 0; i < n; i++) {
      uint16_t f = flags[i] | (i + 1 < n ? HWSOCK_VRING_DESC_F_NEXT : 0);
      set_desc(&g->desc[s->desc[i]], hwsock_le64_get(&seg[i].addr),
               hwsock_le32_get(&seg[i].len), f,
               i + 1 < n ? s->desc[i + 1] : 0);
    }
  }
  s->head = s->desc[0];
  s->state = SLOT_POSTED;
  s->used_len = 0;
  g->head_slot[s->head] = (uint16_t)(idx + 1);

  uint16_t old = g->avail_idx;
  hwsock_le16_store(&g->avail->ring[old & g->qmask], s->head);
  RELEASE(); /* descriptors and ring entry before the index */
  g->avail_idx = (uint16_t)(old + 1);
  hwsock_le16_store(&g->avail->idx, g->avail_idx);
  FULL(); /* publish the index before reading the device's suppression */
  if (g->event_idx)
    *kick = hwsock_vring_need_event(hwsock_le16_load(g->avail_event),
                                    g->avail_idx, old);
  else
    *kick = !(hwsock_le16_load(&g->used->flags) &
              HWSOCK_VRING_USED_F_NO_NOTIFY);
  return 0;
}

/* ---- reaping ------------------------------------------------------------- */

/* Takes every new used entry, marks its slot done and wakes the owner.
 * Called only by the reaper, lock held. */
static void reap(hwsock_guest *g) {
  uint16_t used_idx = hwsock_le16_load(&g->used->idx);
  ACQUIRE(); /* entries (and the responses) after the index */
  if ((uint16_t)(used_idx - g->last_used) > g->qsize) {
    hwsock__guest_fail(g, HWSOCK_EPROTO);
    return;
  }
  while (g->last_used != used_idx && !g->broken) {
    const hwsock_vring_used_elem *e = &g->used->ring[g->last_used & g->qmask];
    uint32_t id = hwsock_le32_get(&e->id);
    uint32_t len = hwsock_le32_get(&e->len);
    unsigned si = id < g->qsize ? g->head_slot[id] : 0;
    if (si == 0) { /* a head we never posted, or reaped already */
      hwsock__guest_fail(g, HWSOCK_EPROTO);
      return;
    }
    guest_slot *s = &g->slots[si - 1];
    hwsock_le64 tag;
    memcpy(&tag, slot_base(g, si - 1) + g->resp_off +
                     offsetof(hwsock_resp_hdr, tag), sizeof(tag));
    if (s->state != SLOT_POSTED || s->head != id || len > s->in_len ||
        len < sizeof(hwsock_resp_hdr) || hwsock_le64_get(&tag) != s->tag) {
      hwsock__guest_fail(g, HWSOCK_EPROTO);
      return;
    }
    g->head_slot[id] = 0;
    desc_release(g, s);
    s->used_len = len;
    s->state = SLOT_DONE;
    pthread_cond_signal(&s->cond);
    g->last_used++;
  }
}

/* Takes the completions nobody is waiting for: with write-behind sends
 * only, no caller reaps, and callers waiting for slots would wait for
 * ever (the event thread calls this). Lock held. */
void hwsock__guest_reap_idle(hwsock_guest *g) {
  if (!g->reaper && !g->broken)
    reap(g);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Busy-polls the used index for the current window g->poll_cur (at most
 * cfg.poll_us, adapted by pollwin.c); 1 when it moved. No lock: only the
 * reaper consumes the used ring and owns the window. */
static int poll_used(hwsock_guest *g, uint16_t seen) {
  if (g->poll_cur == 0)
    return 0;
  int64_t end = now_us() + g->poll_cur;
  do {
    for (int i = 0; i < 64; i++) {
      if (hwsock_le16_load(&g->used->idx) != seen || broken_now(g))
        return 1;
      cpu_relax();
    }
  } while (now_us() < end);
  return 0;
}

/* The reaper's loop: reap, and until slot `mine` is done, poll then sleep
 * in ops->wait() without the lock. Lock held on entry and exit. */
static void reap_until(hwsock_guest *g, guest_slot *mine) {
  for (;;) {
    reap(g);
    if (mine->state == SLOT_DONE || g->broken)
      return;
    uint16_t seen = g->last_used; /* stable: only the reaper changes it */
    pthread_mutex_unlock(&g->lock);
    int r = 0;
    int hit = poll_used(g, seen);
    int64_t slept = 0;
    if (!hit) {
      /* Ask for an interrupt at the next completion, then re-check so a
       * completion that raced with the request is not slept through. */
      if (g->event_idx)
        hwsock_le16_store(g->used_event, seen);
      FULL();
      if (hwsock_le16_load(&g->used->idx) == seen && !broken_now(g)) {
        int64_t t0 = g->poll_us > 0 ? now_us() : 0;
        r = g->ops->wait(g->opaque, 0, GUEST_WAIT_SLICE_MS);
        if (g->poll_us > 0)
          slept = now_us() - t0;
      }
    }
    /* The next window: longer while completions come just after the poll
     * gave up, none while the device is idle (pollwin.h). */
    g->poll_cur = hwsock__poll_next(g->poll_cur, (unsigned)g->poll_us, hit,
                                    slept);
    pthread_mutex_lock(&g->lock);
    if (r < 0)
      hwsock__guest_fail(g, HWSOCK_ECONNRESET);
  }
}

/* Hands reaping to another thread whose request is still posted. */
static void hand_off(hwsock_guest *g) {
  if (g->nwaiting == 0)
    return;
  for (unsigned i = 0; i < g->nslots; i++) {
    guest_slot *s = &g->slots[i];
    if (s->waiting && s->state == SLOT_POSTED) {
      pthread_cond_signal(&s->cond);
      return;
    }
  }
}

/* Waits until slot idx is done: 0, or the transport error. Lock held. */
static int wait_slot(hwsock_guest *g, guest_slot *s) {
  s->waiting = 1;
  g->nwaiting++;
  while (s->state != SLOT_DONE && !g->broken) {
    if (!g->reaper) {
      g->reaper = 1;
      reap_until(g, s);
      g->reaper = 0;
      if (!g->broken)
        hand_off(g);
    } else {
      pthread_cond_wait(&s->cond, &g->lock);
    }
  }
  s->waiting = 0;
  g->nwaiting--;
  return s->state == SLOT_DONE ? 0 : g->broken;
}

/* ---- one call ------------------------------------------------------------ */

/* Reads the response once into private memory, validates it against what
 * was offered, copies the URI and data out. The slot is done and ours.
 * Returns 0 or -(status); *bad is set when the response breaks the
 * protocol (the caller fails the transport). */
static int finish(hwsock_guest *g, unsigned idx, guest_call *c, int *bad) {
  const uint8_t *base = slot_base(g, idx) + g->resp_off;
  const uint8_t *payload = base + sizeof(hwsock_resp_hdr);
  hwsock_resp_hdr r;
  memcpy(&r, base, sizeof(r));
  *bad = 0;
  uint32_t status = hwsock_le32_get(&r.status);
  if (status != 0) {
    if (status <= GUEST_MAX_STATUS)
      return -(int)status;
    *bad = 1;
    return HWSOCK_EPROTO;
  }
  uint32_t len = hwsock_le32_get(&r.len);
  uint32_t uri_len = hwsock_le32_get(&r.uri_len);
  /* len counts data only for these; other opcodes may leave it anything */
  int counts = c->op == HWSOCK_OP_SEND || c->op == HWSOCK_OP_RECV ||
               c->op == HWSOCK_OP_GETSOCKOPT;
  uint32_t limit = c->op == HWSOCK_OP_SEND ? (uint32_t)c->out_len : c->in_len;
  /* what the response claims must lie in what the device says it wrote */
  uint64_t claimed = sizeof(hwsock_resp_hdr) + (uint64_t)c->in_uri;
  if (c->op == HWSOCK_OP_RECV || c->op == HWSOCK_OP_GETSOCKOPT)
    claimed += len;
  else if (c->in_uri)
    claimed = sizeof(hwsock_resp_hdr) + (uint64_t)uri_len;
  if ((counts && len > limit) || (c->in_uri && uri_len > c->in_uri) ||
      claimed > g->slots[idx].used_len) {
    *bad = 1;
    return HWSOCK_EPROTO;
  }
  c->len = counts ? len : 0;
  c->flags = hwsock_le32_get(&r.flags);
  c->val = hwsock_le32_get(&r.val);
  if (c->in_len && c->in_buf && c->len)
    memcpy(c->in_buf, payload + c->in_uri, c->len);
  if (c->uri_buf && c->uri_buf_len) {
    size_t n = c->in_uri ? uri_len : 0;
    if (n > c->uri_buf_len - 1)
      n = c->uri_buf_len - 1;
    memcpy(c->uri_buf, payload, n);
    c->uri_buf[n] = '\0';
  }
  return 0;
}

int hwsock__guest_start(hwsock_guest *g, guest_call *c, unsigned *slot,
                        int may_wait) {
  unsigned idx = 0;
  int kick = 0, err;

  if (c->uri_len > g->uri_max)
    err = HWSOCK_ENAMETOOLONG;
  else if (c->out_len > g->io_len || c->in_len > g->io_len ||
           c->in_uri > g->uri_max)
    err = HWSOCK_EMSGSIZE;
  else
    err = 0;

  int blocking = c->op == HWSOCK_OP_RECV || c->op == HWSOCK_OP_ACCEPT ||
                 c->op == HWSOCK_OP_CONNECT;
  pthread_mutex_lock(&g->lock);
  if (c->held) {
    /* a send buffer: the slot is the caller's already, and is given back
     * whatever happens; as a send it no longer counts as blocking */
    idx = c->held_slot;
    g->nblocking -= g->slots[idx].blocking != 0;
    g->slots[idx].blocking = 0;
    if (err < 0) {
      slot_put(g, idx);
      goto out;
    }
  } else {
    if (err < 0)
      goto out;
    if (!may_wait && slot_blocked(g, blocking) && !g->broken) {
      err = HWSOCK_EAGAIN;
      goto out;
    }
    if ((err = slot_get(g, &idx, blocking)) < 0)
      goto out;
  }
  if ((err = sock_begin(g, c)) < 0) {
    slot_put(g, idx);
    goto out;
  }
  guest_slot *s = &g->slots[idx];
  s->tag = (g->next_tag++ << 16) | idx; /* unique; names the slot too */
  uint64_t tag = s->tag;
  pthread_mutex_unlock(&g->lock);

  fill_slot(g, idx, c, tag); /* copies without the lock */

  pthread_mutex_lock(&g->lock);
  err = g->broken;
  if (!err)
    err = post(g, idx, c, &kick);
  if (err < 0) {
    sock_end(g, c, 0);
    slot_put(g, idx);
    goto out;
  }
  pthread_mutex_unlock(&g->lock);
  if (kick)
    g->ops->kick(g->opaque, 0);
  *slot = idx;
  return 0;
out:
  pthread_mutex_unlock(&g->lock);
  return err;
}

int hwsock__guest_wait(hwsock_guest *g, unsigned idx, guest_call *c) {
  guest_slot *s = &g->slots[idx];
  pthread_mutex_lock(&g->lock);
  int err = wait_slot(g, s);
  if (err == 0) {
    pthread_mutex_unlock(&g->lock);
    int bad;
    err = finish(g, idx, c, &bad); /* copies without the lock */
    pthread_mutex_lock(&g->lock);
    if (bad)
      hwsock__guest_fail(g, HWSOCK_EPROTO); /* the device is not sane */
  }
  sock_end(g, c, err == 0);
  /* A posted slot whose transport failed keeps its descriptors: the ring
   * is dead, nothing will be posted again. */
  slot_put(g, idx);
  pthread_mutex_unlock(&g->lock);
  return err;
}

int hwsock__guest_call(hwsock_guest *g, guest_call *c) {
  unsigned idx;
  int err = hwsock__guest_start(g, c, &idx, 1);
  return err < 0 ? err : hwsock__guest_wait(g, idx, c);
}
