/* Write-behind (cfg->write_behind, sockets.c): finishing the sends a
 * socket keeps in flight, for the socket's own next call and for the event
 * thread reclaiming slots (events.c). Below both: it calls only the ring
 * code (vq.c). */
#include "guest_int.h"

/* Finishes the socket's oldest write-behind send: only when the device
 * already completed it (only_done), else waiting for it. 1 when one was
 * finished, 0 when there was none (to finish). */
int hwsock__wb_finish_oldest(hwsock_guest *g, int s, int only_done) {
  pthread_mutex_lock(&g->lock);
  guest_sock *gs = &g->socks[s];
  if (gs->wb_n == 0 ||
      (only_done && g->slots[gs->wb_slot[gs->wb_head]].state != SLOT_DONE)) {
    pthread_mutex_unlock(&g->lock);
    return 0;
  }
  unsigned idx = gs->wb_slot[gs->wb_head];
  gs->wb_head = (uint8_t)((gs->wb_head + 1) % HWSOCK_GUEST_WB_MAX);
  gs->wb_n--;
  guest_call c = g->slot_call[idx];
  pthread_mutex_unlock(&g->lock);
  int rc = hwsock__guest_wait(g, idx, &c);
  if (rc < 0 || c.len != c.out_len) {
    pthread_mutex_lock(&g->lock);
    if (gs->wb_err == 0)
      gs->wb_err = rc < 0 ? rc : HWSOCK_EPROTO;
    pthread_mutex_unlock(&g->lock);
  }
  return 1;
}

int hwsock__wb_err_take(hwsock_guest *g, int s) {
  guest_sock *gs = &g->socks[s];
  int err = gs->wb_err;
  if (gs->type == HWSOCK_SOCK_DGRAM)
    gs->wb_err = 0;
  return err;
}

/* Finishes the write-behind sends the device completed on sockets whose
 * senders are not sending (e.g. a pump waiting for its program): their
 * slots would otherwise stay taken until the socket's next send, and with
 * many sockets every slot could be held so (the event thread calls this
 * when callers wait for slots). No lock held. */
void hwsock__wb_reclaim(hwsock_guest *g) {
  enum { BATCH = 256 };
  int ids[BATCH];
  unsigned n = 0;
  pthread_mutex_lock(&g->lock);
  for (unsigned s = 0; s < g->nsock && n < BATCH; s++) {
    guest_sock *gs = &g->socks[s];
    if (gs->wb_n > 0 && g->slots[gs->wb_slot[gs->wb_head]].state == SLOT_DONE)
      ids[n++] = (int)s;
  }
  pthread_mutex_unlock(&g->lock);
  for (unsigned i = 0; i < n; i++)
    while (hwsock__wb_finish_oldest(g, ids[i], 1))
      ;
}
