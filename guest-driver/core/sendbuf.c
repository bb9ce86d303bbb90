/* Zero-copy sends (hwsock_guest_send_buf_*): the program writes its bytes
 * straight into a request slot's data area, the buffer the device reads a
 * SEND from, instead of handing hwsock_guest_send() a buffer of its own
 * that the driver copies there. A submitted buffer is a write-behind send
 * (writebehind.c): it is on the socket's queue of sends in flight, and its
 * slot goes back to the driver when it is finished.
 *
 * Tokens are the program's memory, so a token used after it was submitted
 * or put back (or a copy of one) must be told from a live one without
 * trusting it: the slot records the ticket it was given out with, and
 * tickets are never reused. */
#include <string.h>
#include <time.h>

#include "guest_int.h"

/* While it waits for a slot, get looks again this often: the slots may be
 * held by finished sends that nobody reaps (only the event thread does,
 * and only with cfg.write_behind). */
#define SENDBUF_RETRY_MS 2

static int sock_in_range(const hwsock_guest *g, int s) {
  return s >= 0 && (unsigned)s < g->nsock;
}

/* Drops the reference a held buffer keeps on its socket: the id of a
 * socket closed meanwhile is free once nothing names it. Lock held. */
static void sock_unref(hwsock_guest *g, int s) {
  guest_sock *gs = &g->socks[s];
  gs->inflight--;
  if (gs->state == SOCK_CLOSED && gs->inflight == 0)
    hwsock__sock_release(g, (unsigned)s);
}

/* Whether socket s holds a buffer that was got and not yet submitted or
 * put (the slow path only: a scan of the slots). Lock held. */
static int holds_unsent(const hwsock_guest *g, int s) {
  for (unsigned i = 0; i < g->nslots; i++)
    if (g->slots[i].zc && g->slots[i].zc_sock == s)
      return 1;
  return 0;
}

/* The slot a token names, when the token is live: NULL for a token that
 * was submitted or put back, a copy of such a one, or garbage. Lock
 * held. */
static guest_slot *token_slot(hwsock_guest *g, const hwsock_guest_sendbuf *sb) {
  if (sb->slot >= g->nslots || sb->ticket == 0)
    return NULL;
  guest_slot *sl = &g->slots[sb->slot];
  return sl->zc && sl->zc_ticket == sb->ticket ? sl : NULL;
}

static void token_clear(hwsock_guest_sendbuf *sb) {
  sb->buf = NULL;
  sb->cap = 0;
  sb->ticket = 0;
}

static void wait_for_slot(hwsock_guest *g) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += SENDBUF_RETRY_MS * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  g->slot_waiters++;
  (void)pthread_cond_timedwait(&g->slot_cond, &g->lock, &ts);
  g->slot_waiters--;
}

int hwsock_guest_send_buf_get(hwsock_guest *g, int s, size_t want,
                              hwsock_guest_sendbuf *sb) {
  if (!g || !sb)
    return HWSOCK_EINVAL;
  token_clear(sb);
  if (!sock_in_range(g, s))
    return HWSOCK_EBADF;
  guest_sock *gs = &g->socks[s];
  while (hwsock__wb_finish_oldest(g, s, 1))
    ; /* free what the device already completed */
  unsigned idx = 0;
  int err, reclaimed = 0;
  pthread_mutex_lock(&g->lock);
  for (;;) {
    if (gs->state != SOCK_OPEN) {
      err = HWSOCK_EBADF;
      goto out;
    }
    if (want > g->io_len && gs->type == HWSOCK_SOCK_DGRAM) {
      err = HWSOCK_EMSGSIZE; /* a datagram is one request */
      goto out;
    }
    if ((err = hwsock__wb_err_take(g, s)) < 0)
      goto out;
    if ((err = hwsock__slot_hold(g, &idx)) != HWSOCK_EAGAIN)
      break;
    /* No slot may be taken now. */
    if (holds_unsent(g, s))
      goto out; /* HWSOCK_EAGAIN: it would wait for its own buffers */
    if (gs->wb_n > 0) { /* its own sends in flight free slots */
      pthread_mutex_unlock(&g->lock);
      hwsock__wb_finish_oldest(g, s, 0);
      pthread_mutex_lock(&g->lock);
      continue;
    }
    if (!reclaimed) { /* finished sends of other sockets may hold them */
      hwsock__guest_reap_idle(g);
      pthread_mutex_unlock(&g->lock);
      hwsock__wb_reclaim(g);
      pthread_mutex_lock(&g->lock);
      reclaimed = 1;
      continue;
    }
    reclaimed = 0;
    wait_for_slot(g);
  }
  if (err < 0)
    goto out;
  guest_slot *sl = &g->slots[idx];
  size_t cap = want == 0 || want > g->io_len ? g->io_len : want;
  sl->zc = 1;
  sl->zc_sock = s;
  sl->zc_cap = (uint32_t)cap;
  sl->zc_ticket = ++g->zc_next;
  gs->inflight++; /* the id is not reused while the buffer is held */
  sb->buf = hwsock__slot_data(g, idx);
  sb->cap = cap;
  sb->sock = s;
  sb->slot = idx;
  sb->ticket = sl->zc_ticket;
out:
  pthread_mutex_unlock(&g->lock);
  return err;
}

int hwsock_guest_send_buf_put(hwsock_guest *g, hwsock_guest_sendbuf *sb) {
  if (!g || !sb)
    return HWSOCK_EINVAL;
  pthread_mutex_lock(&g->lock);
  guest_slot *sl = token_slot(g, sb);
  if (!sl) {
    pthread_mutex_unlock(&g->lock);
    return HWSOCK_EINVAL;
  }
  int s = sl->zc_sock;
  sl->zc = 0;
  hwsock__slot_release(g, sb->slot);
  sock_unref(g, s);
  pthread_mutex_unlock(&g->lock);
  token_clear(sb);
  return 0;
}

ssize_t hwsock_guest_send_buf_submit(hwsock_guest *g, int s,
                                     hwsock_guest_sendbuf *sb, size_t len,
                                     unsigned flags) {
  if (!g || !sb)
    return HWSOCK_EINVAL;
  pthread_mutex_lock(&g->lock);
  guest_slot *sl = token_slot(g, sb);
  if (!sl || sl->zc_sock != s || len > sl->zc_cap) {
    pthread_mutex_unlock(&g->lock);
    return HWSOCK_EINVAL; /* the buffer (if any) stays the program's */
  }
  /* From here on the buffer is the driver's: a second submit of this
   * token (or of a copy) finds it not held. */
  unsigned idx = sb->slot;
  sl->zc = 0;
  guest_sock *gs = &g->socks[s];
  int err = hwsock__wb_err_take(g, s);
  int dgram = gs->type == HWSOCK_SOCK_DGRAM;
  pthread_mutex_unlock(&g->lock);
  token_clear(sb);

  guest_call c;
  memset(&c, 0, sizeof(c));
  c.op = HWSOCK_OP_SEND;
  c.rule = CALL_SOCK_USE;
  c.sock = s;
  c.arg0 = flags;
  c.out_len = len;
  c.held = 1;
  c.held_slot = idx;
  if (err == 0) {
    while (hwsock__wb_finish_oldest(g, s, 1))
      ;
    for (;;) { /* room on the socket's queue of sends in flight */
      pthread_mutex_lock(&g->lock);
      int full = gs->wb_n == HWSOCK_GUEST_WB_MAX;
      err = hwsock__wb_err_take(g, s);
      pthread_mutex_unlock(&g->lock);
      if (!full || err < 0)
        break;
      hwsock__wb_finish_oldest(g, s, 0);
    }
  }
  if (err < 0) { /* an earlier send failed: this one is not sent */
    pthread_mutex_lock(&g->lock);
    hwsock__slot_release(g, idx);
    sock_unref(g, s);
    pthread_mutex_unlock(&g->lock);
    return err;
  }
  /* posts it (or gives the slot back on failure, e.g. the socket closed) */
  err = hwsock__guest_start(g, &c, &idx, 1);
  pthread_mutex_lock(&g->lock);
  sock_unref(g, s); /* the request holds its own reference now */
  if (err < 0) {
    pthread_mutex_unlock(&g->lock);
    return err;
  }
  c.held = 0;
  if (!dgram && gs->wb_n < HWSOCK_GUEST_WB_MAX) {
    g->slot_call[idx] = c;
    gs->wb_slot[(gs->wb_head + gs->wb_n) % HWSOCK_GUEST_WB_MAX] = idx;
    gs->wb_n++;
    pthread_mutex_unlock(&g->lock);
    return (ssize_t)len;
  }
  /* A datagram waits for its completion, as a datagram send does: its
   * error (an ICMP refusal of an earlier one) is its own, reported once,
   * and must not stick to the socket as a stream's does. A stream send
   * whose queue another thread filled meanwhile is finished here too. */
  pthread_mutex_unlock(&g->lock);
  err = hwsock__guest_wait(g, idx, &c);
  if (err == 0 && c.len != c.out_len)
    err = HWSOCK_EPROTO; /* a short send is no progress */
  if (err < 0 && dgram)
    return err;
  if (err < 0) {
    pthread_mutex_lock(&g->lock);
    if (gs->wb_err == 0)
      gs->wb_err = err;
    pthread_mutex_unlock(&g->lock);
    return err;
  }
  return (ssize_t)len;
}

int hwsock_guest_send_wait(hwsock_guest *g, int s) {
  if (!g)
    return HWSOCK_EINVAL;
  if (!sock_in_range(g, s))
    return HWSOCK_EBADF;
  while (hwsock__wb_finish_oldest(g, s, 0))
    ;
  pthread_mutex_lock(&g->lock);
  int err = hwsock__wb_err_take(g, s);
  pthread_mutex_unlock(&g->lock);
  return err;
}
