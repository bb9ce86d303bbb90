/* The event queue, driver side (PROTOCOL.md §16): shared receive buffers,
 * per-socket credit, and readiness over many sockets.
 *
 * Buffer i is descriptor i of the event queue, for good: posting it again
 * only puts i in the available ring. A thread of the driver takes the used
 * entries, files DATA buffers on their socket's receive list (oldest
 * first) and notes EOF, errors and readiness; recv() copies out of the
 * list, posts emptied buffers again and returns the credit it consumed in
 * batches (half a window), so a socket costs a CREDIT request per half
 * window, not a RECV per read.
 *
 * The windows together may be many times the buffers (PROTOCOL.md §16.3):
 * 300 connections with 64 KiB each unread hold 19 MB, the buffers 4 MiB.
 * If unread data kept its buffers, the program reading one connection
 * could wait for ever while the others' data held every buffer (issue 13's
 * conc hang). So once the device is left with fewer than a quarter of the
 * buffers, or a socket already holds as many buffers as its window fills,
 * new data is copied out to the heap (spilled) and its buffer goes back at
 * once: the device always has buffers, one unread socket cannot take them
 * with small events, and what the driver holds is bounded by the windows
 * it granted, as a kernel's socket buffers are (charged by truesize).
 * hwsock_guest_wait() reports sockets from a
 * ready list that the thread and recv() keep (level-triggered: a socket is
 * dropped from it when it is found not ready).
 *
 * Everything the device writes is read once and checked: an unknown buffer
 * index, a length beyond the buffer, or a DATA event whose length does not
 * match fail the transport (HWSOCK_EPROTO). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guest_int.h"

#define RELEASE() __atomic_thread_fence(__ATOMIC_RELEASE)
#define ACQUIRE() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define FULL() __atomic_thread_fence(__ATOMIC_SEQ_CST)

#define EV_HDR ((uint32_t)sizeof(hwsock_event))
#define ARMED_ACCEPT 1u
#define ARMED_WRITE 2u

static uint8_t *buf_ptr(hwsock_guest *g, unsigned i) {
  return g->ev_mem + (size_t)i * g->ev_buf_len;
}

/* The datagram source URI area of a receive list entry. */
static const uint8_t *rx_uri(const guest_rx *rx) {
  return rx->data - HWSOCK_EV_URI_AREA;
}

static int is_dgram(const guest_sock *gs) {
  return gs->type == HWSOCK_SOCK_DGRAM;
}

static uint32_t data_off(const guest_sock *gs) {
  return EV_HDR + (is_dgram(gs) ? HWSOCK_EV_URI_AREA : 0);
}

/* Buffer i goes back to the device (lock held); ev_publish makes it seen. */
static void ev_post(hwsock_guest *g, unsigned i) {
  g->evbufs[i].posted = 1;
  g->evbufs[i].rx.next = NULL;
  g->ev_nposted++;
  hwsock_le16_store(&g->ev_avail->ring[g->ev_avail_idx & g->ev_mask],
                    (uint16_t)i);
  g->ev_avail_idx++;
}

static void ev_publish(hwsock_guest *g, uint16_t old) {
  if (old == g->ev_avail_idx)
    return;
  RELEASE(); /* ring entries before the index */
  hwsock_le16_store(&g->ev_avail->idx, g->ev_avail_idx);
  FULL(); /* the index before the device's suppression */
  int kick = g->event_idx
                 ? hwsock_vring_need_event(hwsock_le16_load(g->ev_avail_event),
                                           g->ev_avail_idx, old)
                 : !(hwsock_le16_load(&g->ev_used->flags) &
                     HWSOCK_VRING_USED_F_NO_NOTIFY);
  if (kick)
    g->ops->kick(g->opaque, g->evq);
}

/* A socket the device failed (an ERROR event: a read error, or reset by a
 * restore or a hand-over, §16) is ready for whatever it is watched for, as
 * poll() reports POLLERR whatever was asked: the accept, send or recv that
 * follows returns the error at once. Otherwise a listener watched only for
 * ACCEPT, or a connection only for OUT, would wait for ever (the device
 * sends nothing more for a reset socket). */
static unsigned readiness(const guest_sock *gs) {
  if (gs->ev_failed)
    return HWSOCK_GUEST_IN | HWSOCK_GUEST_ACCEPT | HWSOCK_GUEST_OUT;
  /* A pending soft error (a datagram socket): the next recv or send
   * returns it, as poll's POLLERR until the error is taken. */
  if (gs->ev_soft)
    return HWSOCK_GUEST_IN | HWSOCK_GUEST_OUT;
  unsigned r = 0;
  if (gs->rx_head || gs->ev_eof || gs->ev_err)
    r |= HWSOCK_GUEST_IN;
  if (gs->ev_acceptable)
    r |= HWSOCK_GUEST_ACCEPT;
  if (gs->ev_writable)
    r |= HWSOCK_GUEST_OUT;
  return r;
}

static void ready_push(hwsock_guest *g, unsigned id) {
  guest_sock *gs = &g->socks[id];
  if (gs->in_ready || !(gs->interest & readiness(gs)))
    return;
  gs->in_ready = 1;
  gs->ready_next = 0;
  if (g->ready_tail == 0)
    g->ready_head = id + 1;
  else
    g->socks[g->ready_tail - 1].ready_next = id + 1;
  g->ready_tail = id + 1;
}

static unsigned ready_pop(hwsock_guest *g) {
  unsigned id = g->ready_head - 1;
  guest_sock *gs = &g->socks[id];
  g->ready_head = gs->ready_next;
  if (g->ready_head == 0)
    g->ready_tail = 0;
  gs->in_ready = 0;
  gs->ready_next = 0;
  return id;
}

/* A receive list entry was read: its buffer goes back, or its copy. */
static void rx_done(hwsock_guest *g, guest_rx *rx) {
  if (rx->buf >= 0)
    ev_post(g, (unsigned)rx->buf);
  else
    free(rx);
}

/* Takes the head entry off the socket's list and finishes it. */
static void rx_pop(hwsock_guest *g, guest_sock *gs) {
  guest_rx *rx = gs->rx_head;
  gs->rx_head = rx->next;
  if (gs->rx_head == NULL)
    gs->rx_tail = NULL;
  gs->rx_off = 0;
  if (rx->buf >= 0)
    gs->ev_nbufs--;
  rx_done(g, rx);
}

/* The buffers one socket may hold: as many as a stream window fills, and
 * one for a partly read head (a datagram socket gets no more: its small
 * datagrams would otherwise hold a buffer each). */
static uint32_t sock_bufs(const hwsock_guest *g) {
  return g->ev_window / (g->ev_buf_len - EV_HDR) + 1;
}

/* Gives every buffer on the socket's list back to the device. */
static void drop_rx(hwsock_guest *g, guest_sock *gs) {
  while (gs->rx_head)
    rx_pop(g, gs);
}

/* Buffer i holds `used` bytes of a DATA event of gs. With few buffers
 * left to the device, or gs holding its share already, its contents
 * (after the event header) move to the heap and it goes back at once.
 * Returns the entry to file, or NULL when the bytes were appended to the
 * stream's last copy: a peer that trickles a byte per event then costs the
 * window and a header per growing chunk (GUEST_EV_SPILL_MIN, doubling up
 * to a buffer), not a header per byte. */
static guest_rx *rx_keep(hwsock_guest *g, guest_sock *gs, unsigned i,
                         uint32_t used) {
  guest_rx *rx = &g->evbufs[i].rx;
  unsigned reserve = g->ev_nbuf / GUEST_EV_RESERVE_DIV;
  if (g->ev_nposted >= (reserve ? reserve : 1) &&
      gs->ev_nbufs < sock_bufs(g))
    return rx;
  size_t n = used - EV_HDR, cap = n;
  guest_rx *t = gs->rx_tail;
  if (!is_dgram(gs)) {
    if (t != NULL && t->buf < 0 && t->cap - t->len >= rx->len) {
      memcpy(t->data + t->len, rx->data, rx->len);
      t->len += rx->len;
      ev_post(g, i);
      return NULL;
    }
    size_t want = t != NULL && t->buf < 0 ? 2 * (size_t)t->cap
                                          : GUEST_EV_SPILL_MIN;
    if (want > g->ev_buf_len)
      want = g->ev_buf_len;
    if (cap < want)
      cap = want;
  }
  guest_rx *c = malloc(sizeof(*c) + cap);
  if (c == NULL)
    return rx; /* keeps the buffer: slower, never wrong */
  uint8_t *p = (uint8_t *)(c + 1);
  memcpy(p, buf_ptr(g, i) + EV_HDR, n);
  *c = *rx;
  c->data = p + (rx->data - (buf_ptr(g, i) + EV_HDR));
  c->cap = (uint32_t)(cap - (size_t)(c->data - p));
  c->buf = -1;
  c->next = NULL;
  ev_post(g, i);
  return c;
}

/* One used entry of the event queue (lock held). */
static void ev_take(hwsock_guest *g, uint32_t i, uint32_t len) {
  if (i >= g->ev_nbuf || !g->evbufs[i].posted || len > g->ev_buf_len ||
      (len != 0 && len < EV_HDR)) {
    hwsock__guest_fail(g, HWSOCK_EPROTO);
    return;
  }
  guest_evbuf *b = &g->evbufs[i];
  b->posted = 0;
  g->ev_nposted--;
  if (len == 0) { /* no event in it (a cancelled read) */
    ev_post(g, i);
    return;
  }
  hwsock_event ev;
  memcpy(&ev, buf_ptr(g, i), sizeof(ev)); /* one fetch */
  uint32_t id = hwsock_le32_get(&ev.sock_id);
  unsigned type = hwsock_le16_get(&ev.type);
  unsigned flags = hwsock_le16_get(&ev.flags);
  uint32_t dlen = hwsock_le32_get(&ev.len);
  uint32_t status = hwsock_le32_get(&ev.status);
  uint32_t ulen = hwsock_le32_get(&ev.uri_len);
  if (id >= g->nsock || g->socks[id].state != SOCK_OPEN ||
      g->socks[id].ev_hold) {
    ev_post(g, i); /* a socket being closed: nothing to deliver */
    return;
  }
  guest_sock *gs = &g->socks[id];
  switch (type) {
  case HWSOCK_EV_DATA:
    if (flags & HWSOCK_EV_F_EOF) {
      gs->ev_eof = 1;
      ev_post(g, i);
      break;
    }
    if ((uint64_t)data_off(gs) + dlen != len ||
        ulen > (is_dgram(gs) ? HWSOCK_EV_URI_AREA : 0)) {
      hwsock__guest_fail(g, HWSOCK_EPROTO);
      return;
    }
    b->rx.len = dlen;
    b->rx.flags = (uint16_t)flags;
    b->rx.val = hwsock_le32_get(&ev.val);
    b->rx.uri_len = (uint16_t)ulen;
    b->rx.data = buf_ptr(g, i) + data_off(gs);
    b->rx.next = NULL;
    guest_rx *rx = rx_keep(g, gs, i, len);
    if (rx == NULL) { /* appended to the last copy */
      gs->bytes_in += dlen;
      break;
    }
    if (gs->rx_tail)
      gs->rx_tail->next = rx;
    else
      gs->rx_head = rx;
    gs->rx_tail = rx;
    if (rx->buf >= 0)
      gs->ev_nbufs++;
    gs->bytes_in += dlen;
    break;
  case HWSOCK_EV_ERROR: {
    int err = status >= 1 && status <= GUEST_MAX_STATUS ? -(int)status
                                                        : HWSOCK_EIO;
    if ((flags & HWSOCK_EV_F_SOFT) && is_dgram(gs) &&
        (g->features & HWSOCK_F_SOFT_ERRORS)) {
      /* An ICMP error of a datagram socket (PROTOCOL.md §16.9): pending
       * (a later one replaces it, as in the kernel); the read side goes
       * on. A SOFT flag where it cannot be is taken for a hard error. */
      gs->ev_soft = err;
    } else {
      gs->ev_err = err;
      gs->ev_failed = 1;
    }
    ev_post(g, i);
    break;
  }
  case HWSOCK_EV_ACCEPTABLE:
    gs->ev_acceptable = 1;
    gs->ev_armed &= (uint8_t)~ARMED_ACCEPT;
    ev_post(g, i);
    break;
  case HWSOCK_EV_WRITABLE:
    gs->ev_writable = 1;
    gs->ev_armed &= (uint8_t)~ARMED_WRITE;
    ev_post(g, i);
    break;
  default: /* a type of a later version: nothing for us */
    ev_post(g, i);
    break;
  }
  ready_push(g, id);
  pthread_cond_broadcast(&g->rx_cond[id % GUEST_RX_CONDS]);
}

static void wake_all(hwsock_guest *g) {
  pthread_cond_broadcast(&g->ev_cond);
  for (unsigned i = 0; i < GUEST_RX_CONDS; i++)
    pthread_cond_broadcast(&g->rx_cond[i]);
}

static void *ev_main(void *arg) {
  hwsock_guest *g = arg;
  pthread_mutex_lock(&g->lock);
  while (!g->ev_stop && !g->broken) {
    uint16_t used_idx = hwsock_le16_load(&g->ev_used->idx);
    ACQUIRE(); /* entries and buffers after the index */
    if ((uint16_t)(used_idx - g->ev_last_used) > g->ev_nbuf) {
      hwsock__guest_fail(g, HWSOCK_EPROTO);
      break;
    }
    if (used_idx != g->ev_last_used) {
      uint16_t old = g->ev_avail_idx;
      while (g->ev_last_used != used_idx && !g->broken) {
        const hwsock_vring_used_elem *e =
            &g->ev_used->ring[g->ev_last_used & g->ev_mask];
        ev_take(g, hwsock_le32_get(&e->id), hwsock_le32_get(&e->len));
        g->ev_last_used++;
      }
      ev_publish(g, old);
      pthread_cond_broadcast(&g->ev_cond);
      continue;
    }
    int slice = GUEST_WAIT_SLICE_MS;
    if (g->slot_waiters > 0 && g->write_behind) {
      /* Callers wait for slots: completed write-behind sends of idle
       * senders may hold them all (hwsock__wb_reclaim), and nobody may be
       * reaping their completions. Look again soon. */
      hwsock__guest_reap_idle(g);
      pthread_mutex_unlock(&g->lock);
      hwsock__wb_reclaim(g);
      pthread_mutex_lock(&g->lock);
      slice = GUEST_RECLAIM_SLICE_MS;
    }
    /* Ask for an interrupt at the next event, then look once more. */
    uint16_t seen = g->ev_last_used;
    if (g->event_idx)
      hwsock_le16_store(g->ev_used_event, seen);
    FULL();
    if (hwsock_le16_load(&g->ev_used->idx) != seen)
      continue;
    pthread_mutex_unlock(&g->lock);
    int r = g->ops->wait(g->opaque, g->evq, slice);
    pthread_mutex_lock(&g->lock);
    if (r < 0)
      hwsock__guest_fail(g, HWSOCK_ECONNRESET);
  }
  wake_all(g);
  pthread_mutex_unlock(&g->lock);
  return NULL;
}

int hwsock__ev_start(hwsock_guest *g) {
  g->evbufs = calloc(g->ev_nbuf, sizeof(*g->evbufs));
  if (g->evbufs == NULL)
    return HWSOCK_ENOMEM;
  if (pthread_cond_init(&g->ev_cond, NULL)) {
    free(g->evbufs);
    g->evbufs = NULL;
    return HWSOCK_ENOMEM;
  }
  for (unsigned i = 0; i < GUEST_RX_CONDS; i++)
    if (pthread_cond_init(&g->rx_cond[i], NULL)) {
      while (i-- > 0)
        pthread_cond_destroy(&g->rx_cond[i]);
      pthread_cond_destroy(&g->ev_cond);
      free(g->evbufs);
      g->evbufs = NULL;
      return HWSOCK_ENOMEM;
    }
  for (unsigned i = 0; i < g->ev_nbuf; i++) {
    g->evbufs[i].rx.buf = (int32_t)i;
    hwsock_vring_desc *d = &g->ev_desc[i];
    hwsock_le64_set(&d->addr, g->ev_gpa + (uint64_t)i * g->ev_buf_len);
    hwsock_le32_set(&d->len, g->ev_buf_len);
    hwsock_le16_set(&d->flags, HWSOCK_VRING_DESC_F_WRITE);
    hwsock_le16_set(&d->next, 0);
  }
  pthread_mutex_lock(&g->lock);
  uint16_t old = g->ev_avail_idx;
  for (unsigned i = 0; i < g->ev_nbuf; i++)
    ev_post(g, i);
  ev_publish(g, old);
  pthread_mutex_unlock(&g->lock);
  if (pthread_create(&g->ev_thread, NULL, ev_main, g)) {
    for (unsigned i = 0; i < GUEST_RX_CONDS; i++)
      pthread_cond_destroy(&g->rx_cond[i]);
    pthread_cond_destroy(&g->ev_cond);
    free(g->evbufs);
    g->evbufs = NULL;
    return HWSOCK_ENOMEM;
  }
  g->ev_thread_on = 1;
  return 0;
}

void hwsock__ev_stop(hwsock_guest *g) {
  if (!g->ev_thread_on)
    return;
  pthread_mutex_lock(&g->lock);
  g->ev_stop = 1;
  pthread_mutex_unlock(&g->lock);
  pthread_join(g->ev_thread, NULL);
  g->ev_thread_on = 0;
  /* Copies still on the lists of sockets left open are ours to free. */
  for (unsigned s = 0; s < g->nsock; s++) {
    guest_sock *gs = &g->socks[s];
    while (gs->rx_head) {
      guest_rx *rx = gs->rx_head;
      gs->rx_head = rx->next;
      if (rx->buf < 0)
        free(rx);
    }
    gs->rx_tail = NULL;
    gs->ev_nbufs = 0;
  }
  for (unsigned i = 0; i < GUEST_RX_CONDS; i++)
    pthread_cond_destroy(&g->rx_cond[i]);
  pthread_cond_destroy(&g->ev_cond);
  free(g->evbufs);
  g->evbufs = NULL;
}

static int credit_call(hwsock_guest *g, int s, uint32_t add, uint32_t watch) {
  guest_call c;
  memset(&c, 0, sizeof(c));
  c.op = HWSOCK_OP_CREDIT;
  c.rule = CALL_SOCK_USE;
  c.sock = s;
  c.arg0 = add;
  c.arg1 = watch;
  return hwsock__guest_call(g, &c);
}

/* Puts the socket in event mode (a window granted) when it can be: a
 * connected stream, or a datagram socket that was bound, connected or sent
 * from. 1: in event mode; 0: use RECV requests. */
static int ev_enable(hwsock_guest *g, int s) {
  pthread_mutex_lock(&g->lock);
  guest_sock *gs = &g->socks[s];
  int on = gs->ev_on, eligible;
  if (on || gs->ev_no || gs->state != SOCK_OPEN) {
    pthread_mutex_unlock(&g->lock);
    return on;
  }
  eligible = is_dgram(gs) ? (gs->has_local || gs->has_peer || gs->bytes_out)
                          : gs->conn == CONN_ESTAB;
  uint32_t win = is_dgram(gs) ? g->ev_dgram_window : g->ev_window;
  pthread_mutex_unlock(&g->lock);
  if (!eligible)
    return 0;
  int rc = credit_call(g, s, win, 0);
  pthread_mutex_lock(&g->lock);
  if (gs->state == SOCK_OPEN) {
    if (rc == 0)
      gs->ev_on = 1;
    else
      gs->ev_no = 1; /* e.g. a backend that cannot watch: RECV as before */
  }
  on = gs->ev_on;
  pthread_mutex_unlock(&g->lock);
  return on;
}

int hwsock__ev_recv(hwsock_guest *g, int s, void *buf, size_t len,
                    unsigned flags, char *uri, size_t uri_len,
                    unsigned *resp_flags, ssize_t *ret) {
  if (!g->evq_on || s < 0 || (unsigned)s >= g->nsock || !ev_enable(g, s))
    return 0;
  int peek = (flags & HWSOCK_RECV_PEEK) != 0;
  int waitall = (flags & HWSOCK_RECV_WAITALL) && !peek;
  int dontwait = (flags & HWSOCK_GUEST_RECV_DONTWAIT) != 0;
  unsigned rflags = 0;
  size_t got = 0;
  uint32_t give = 0, back = 0;
  int rc = 0;
  char *out = buf;

  pthread_mutex_lock(&g->lock);
  guest_sock *gs = &g->socks[s];
  uint16_t old = g->ev_avail_idx;
  for (;;) {
    if (gs->state != SOCK_OPEN || gs->ev_hold) {
      /* closed meanwhile: as a RECV that CLOSE cancels */
      rc = gs->state == SOCK_FREE ? HWSOCK_EBADF : HWSOCK_ECANCELED;
      break;
    }
    if (g->broken) {
      rc = g->broken;
      break;
    }
    if (gs->ev_soft) {
      /* before any queued datagram, as the kernel's sock_error() */
      rc = gs->ev_soft;
      gs->ev_soft = 0;
      break;
    }
    if (gs->rx_head && is_dgram(gs)) {
      guest_rx *b = gs->rx_head;
      size_t n = b->len < len ? b->len : len;
      memcpy(out, b->data, n);
      if (b->len > len || (b->flags & HWSOCK_EV_F_TRUNC))
        rflags |= HWSOCK_RESP_F_TRUNC;
      if (uri && uri_len) {
        size_t u = b->uri_len < uri_len - 1 ? b->uri_len : uri_len - 1;
        memcpy(uri, rx_uri(b), u);
        uri[u] = '\0';
      }
      got = n;
      if (!peek) {
        rx_pop(g, gs);
        give = 1;
      }
      break;
    }
    while (gs->rx_head && got < len) {
      guest_rx *b = gs->rx_head;
      size_t n = b->len - gs->rx_off;
      if (n > len - got)
        n = len - got;
      memcpy(out + got, b->data + gs->rx_off, n);
      got += n;
      if (peek)
        break; /* from the first buffer only */
      give += (uint32_t)n;
      gs->rx_off += (uint32_t)n;
      if (gs->rx_off == b->len)
        rx_pop(g, gs);
    }
    if (got > 0 && (!waitall || got == len))
      break;
    if (len == 0)
      break;
    if (gs->ev_err) {
      if (got == 0) {
        rc = gs->ev_err;
        gs->ev_err = 0;
        gs->ev_eof = 1; /* the read side has ended */
      }
      break;
    }
    if (gs->ev_eof) {
      if (got == 0)
        rflags |= HWSOCK_RESP_F_EOF;
      break;
    }
    if (dontwait) {
      if (got == 0)
        rc = HWSOCK_EAGAIN;
      break;
    }
    pthread_cond_wait(&g->rx_cond[(unsigned)s % GUEST_RX_CONDS], &g->lock);
  }
  ev_publish(g, old);
  if (gs->state == SOCK_OPEN) {
    /* Credit goes back in batches: half a window at a time. */
    gs->consumed += give;
    uint32_t win = is_dgram(gs) ? g->ev_dgram_window : g->ev_window;
    if (gs->consumed >= win / 2 && !gs->ev_eof) {
      back = gs->consumed;
      gs->consumed = 0;
    }
  }
  pthread_mutex_unlock(&g->lock);
  if (back)
    (void)credit_call(g, s, back, 0); /* fails only with the socket */
  if (resp_flags)
    *resp_flags = rflags;
  *ret = rc < 0 ? rc : (ssize_t)got;
  return 1;
}

int hwsock__ev_soft_take(hwsock_guest *g, int s) {
  guest_sock *gs = &g->socks[s];
  int err = gs->ev_soft;
  gs->ev_soft = 0;
  return err;
}

void hwsock__ev_close_begin(hwsock_guest *g, int s) {
  if (!g->evq_on || s < 0 || (unsigned)s >= g->nsock)
    return;
  pthread_mutex_lock(&g->lock);
  guest_sock *gs = &g->socks[s];
  if (gs->state == SOCK_OPEN &&
      (gs->ev_on || gs->ev_armed || gs->ev_acceptable || gs->ev_writable)) {
    gs->ev_hold = 1; /* events from now on are dropped */
    gs->inflight++;  /* the id stays ours until they are drained */
    pthread_cond_broadcast(&g->rx_cond[(unsigned)s % GUEST_RX_CONDS]);
  }
  pthread_mutex_unlock(&g->lock);
}

void hwsock__ev_close_end(hwsock_guest *g, int s) {
  if (!g->evq_on || s < 0 || (unsigned)s >= g->nsock)
    return;
  pthread_mutex_lock(&g->lock);
  guest_sock *gs = &g->socks[s];
  if (!gs->ev_hold) {
    pthread_mutex_unlock(&g->lock);
    return;
  }
  /* Every event of the socket was published before the CLOSE completed
   * (§16.6): once the thread has taken the used ring up to here, none is
   * left, and the id may be reused. */
  uint16_t target = hwsock_le16_load(&g->ev_used->idx);
  while (!g->broken && (int16_t)(g->ev_last_used - target) < 0)
    pthread_cond_wait(&g->ev_cond, &g->lock);
  uint16_t old = g->ev_avail_idx;
  drop_rx(g, gs);
  ev_publish(g, old);
  gs->ev_hold = 0;
  gs->inflight--;
  if (gs->state == SOCK_CLOSED && gs->inflight == 0)
    hwsock__sock_release(g, (unsigned)s);
  pthread_mutex_unlock(&g->lock);
}

/* An accept failed for the listener itself, not for one connection or a
 * passing shortage (ECONNABORTED, EMFILE, ...): its host socket no longer
 * listens (shut down: EINVAL), is not a listener, or the device reset it
 * (ECONNRESET). */
static int listener_failed(int err) {
  return err == HWSOCK_EINVAL || err == HWSOCK_ECONNRESET ||
         err == HWSOCK_EOPNOTSUPP || err == HWSOCK_EBADF;
}

void hwsock__ev_accepted(hwsock_guest *g, int s, int err) {
  if (!g->evq_on || s < 0 || (unsigned)s >= g->nsock)
    return;
  pthread_mutex_lock(&g->lock);
  guest_sock *gs = &g->socks[s];
  /* A failed listener is not watched again: the accept gave the program
   * the error, and a host listener that failed stays readable for ever, so
   * a new watch would fire at once and every wait report the socket for
   * an accept that fails again (the program may watch it anew). A socket
   * with an ERROR event is ready for good without a watch (readiness). */
  int rearm = gs->state == SOCK_OPEN && (gs->interest & HWSOCK_GUEST_ACCEPT) &&
              !(gs->ev_armed & ARMED_ACCEPT) && !gs->ev_failed &&
              !g->broken && !listener_failed(err);
  gs->ev_acceptable = 0;
  if (rearm)
    gs->ev_armed |= ARMED_ACCEPT;
  pthread_mutex_unlock(&g->lock);
  /* Another connection waiting fires again at once (§16.4). */
  if (rearm && credit_call(g, s, 0, HWSOCK_WATCH_ACCEPT) < 0) {
    pthread_mutex_lock(&g->lock);
    gs->ev_armed &= (uint8_t)~ARMED_ACCEPT;
    pthread_mutex_unlock(&g->lock);
  }
}

int hwsock_guest_watch(hwsock_guest *g, int s, unsigned events) {
  if (!g || (events & ~(HWSOCK_GUEST_IN | HWSOCK_GUEST_ACCEPT |
                        HWSOCK_GUEST_OUT)))
    return HWSOCK_EINVAL;
  if (!g->evq_on)
    return HWSOCK_EOPNOTSUPP;
  if (s < 0 || (unsigned)s >= g->nsock)
    return HWSOCK_EBADF;
  pthread_mutex_lock(&g->lock);
  guest_sock *gs = &g->socks[s];
  if (gs->state != SOCK_OPEN) {
    pthread_mutex_unlock(&g->lock);
    return HWSOCK_EBADF;
  }
  gs->interest = (uint8_t)events;
  uint32_t watch = 0;
  if ((events & HWSOCK_GUEST_ACCEPT) && !gs->ev_acceptable &&
      !(gs->ev_armed & ARMED_ACCEPT))
    watch |= HWSOCK_WATCH_ACCEPT;
  if ((events & HWSOCK_GUEST_OUT) && !gs->ev_writable &&
      !(gs->ev_armed & ARMED_WRITE))
    watch |= HWSOCK_WATCH_WRITE;
  gs->ev_armed |= (uint8_t)(((watch & HWSOCK_WATCH_ACCEPT) ? ARMED_ACCEPT : 0) |
                            ((watch & HWSOCK_WATCH_WRITE) ? ARMED_WRITE : 0));
  pthread_mutex_unlock(&g->lock);
  int rc = 0;
  if ((events & HWSOCK_GUEST_IN) && !ev_enable(g, s)) {
    pthread_mutex_lock(&g->lock);
    rc = gs->ev_no ? HWSOCK_EOPNOTSUPP : HWSOCK_ENOTCONN;
    pthread_mutex_unlock(&g->lock);
  }
  if (rc == 0 && watch != 0)
    rc = credit_call(g, s, 0, watch);
  pthread_mutex_lock(&g->lock);
  if (rc < 0 && watch != 0)
    gs->ev_armed &= (uint8_t)~(((watch & HWSOCK_WATCH_ACCEPT) ? ARMED_ACCEPT
                                                             : 0) |
                               ((watch & HWSOCK_WATCH_WRITE) ? ARMED_WRITE : 0));
  if (gs->state == SOCK_OPEN)
    ready_push(g, (unsigned)s); /* already ready: report it */
  pthread_cond_broadcast(&g->ev_cond);
  pthread_mutex_unlock(&g->lock);
  return rc;
}

int hwsock_guest_wait(hwsock_guest *g, hwsock_guest_event *ev, int n,
                      int timeout_ms) {
  if (!g || !ev || n <= 0)
    return HWSOCK_EINVAL;
  if (!g->evq_on)
    return HWSOCK_EOPNOTSUPP;
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  if (timeout_ms > 0) {
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  int k = 0, rc = 0;
  pthread_mutex_lock(&g->lock);
  for (;;) {
    /* One pass over the list as it is now: ready ones are reported and go
     * to the back (turns), others leave it. */
    uint32_t last = g->ready_tail;
    while (g->ready_head != 0 && k < n) {
      int end = g->ready_head == last;
      unsigned id = ready_pop(g);
      guest_sock *gs = &g->socks[id];
      unsigned bits = gs->state == SOCK_OPEN && !gs->ev_hold
                          ? gs->interest & readiness(gs)
                          : 0;
      if (bits) {
        ev[k].sock = (int)id;
        ev[k].events = bits;
        k++;
        if (bits & HWSOCK_GUEST_OUT)
          gs->ev_writable = 0; /* one-shot */
        ready_push(g, id);
      }
      if (end)
        break;
    }
    if (k > 0 || g->broken || timeout_ms == 0)
      break;
    if (timeout_ms < 0) {
      pthread_cond_wait(&g->ev_cond, &g->lock);
    } else if (pthread_cond_timedwait(&g->ev_cond, &g->lock, &deadline) ==
               ETIMEDOUT) {
      timeout_ms = 0; /* one last look */
    }
  }
  if (k == 0 && g->broken)
    rc = g->broken;
  pthread_mutex_unlock(&g->lock);
  return k > 0 ? k : rc;
}
