/* The guest's socket table (ids chosen by the driver), kept under the
 * guest's lock: allocation of ids, and what each completed request tells
 * about its socket (family, type, names, state, byte counts). It calls no
 * other file of the driver: the ring code (vq.c), the event queue
 * (events.c) and the socket API (sockets.c) all use it. */
#include <string.h>

#include "guest_int.h"

/* Reserves the lowest free id. HWSOCK_EMFILE when every id is taken. */
int hwsock__sock_alloc(hwsock_guest *g) {
  unsigned words = (g->nsock + 63) / 64;
  for (unsigned w = g->sock_hint; w < words; w++) {
    if (g->sock_free[w] == 0)
      continue;
    unsigned bit = (unsigned)__builtin_ctzll(g->sock_free[w]);
    unsigned id = w * 64 + bit;
    g->sock_free[w] &= ~((uint64_t)1 << bit);
    g->sock_hint = w;
    /* The ready list may still link the id (a socket unwatched, then
     * closed, leaves it only when a wait passes it): its link stays, or
     * the sockets behind it would be lost from the list for good. */
    guest_sock *gs = &g->socks[id];
    uint8_t in_ready = gs->in_ready;
    uint32_t ready_next = gs->ready_next;
    memset(gs, 0, sizeof(*gs));
    gs->in_ready = in_ready;
    gs->ready_next = ready_next;
    gs->state = SOCK_RESERVED;
    return (int)id;
  }
  g->sock_hint = words;
  return HWSOCK_EMFILE;
}

void hwsock__sock_release(hwsock_guest *g, unsigned id) {
  g->socks[id].state = SOCK_FREE;
  g->sock_free[id / 64] |= (uint64_t)1 << (id % 64);
  if (id / 64 < g->sock_hint)
    g->sock_hint = id / 64;
}

/* A URI the device accepted, as an address (0), or -1. */
static int parse_name(const char *uri, size_t len, hwsock_addr *out) {
  return uri && hwsock_uri_parse(uri, len, HWSOCK_URI_ALLOW_PORT0, out,
                                 NULL) == 0 ? 0 : -1;
}

void hwsock__sock_account(hwsock_guest *g, const guest_call *c) {
  guest_sock *s = &g->socks[c->sock];
  switch (c->op) {
  case HWSOCK_OP_OPEN:
    s->family = (uint8_t)c->arg0;
    s->type = (uint8_t)c->arg1;
    break;
  case HWSOCK_OP_CONNECT:
    s->conn = CONN_ESTAB;
    s->has_peer = parse_name(c->uri, c->uri_len, &s->peer) == 0;
    break;
  case HWSOCK_OP_BIND:
    s->has_local = parse_name(c->uri, c->uri_len, &s->local) == 0;
    break;
  case HWSOCK_OP_LISTEN:
    s->conn = CONN_LISTEN;
    break;
  case HWSOCK_OP_ACCEPT: {
    guest_sock *t = &g->socks[c->arg1];
    t->family = s->family;
    t->type = s->type;
    t->conn = CONN_ESTAB;
    t->local = s->local;
    t->has_local = s->has_local;
    t->has_peer = c->uri_buf && parse_name(c->uri_buf, strlen(c->uri_buf),
                                           &t->peer) == 0;
    break;
  }
  case HWSOCK_OP_SEND:
    s->bytes_out += c->len;
    break;
  case HWSOCK_OP_RECV:
    s->bytes_in += c->len;
    if (s->type == HWSOCK_SOCK_STREAM && c->in_len > 0 &&
        (c->len == 0 || (c->flags & HWSOCK_RESP_F_EOF)))
      s->eof = 1;
    break;
  case HWSOCK_OP_SHUTDOWN:
    if (c->arg0 & HWSOCK_SHUT_WR)
      s->shut_wr = 1;
    break;
  case HWSOCK_OP_GETNAME: {
    /* The device's answer (whole: getname reads it into a buffer of its
     * own) beats a port-0 bind. */
    hwsock_addr a;
    if (parse_name(c->uri_buf, c->uri_buf ? strlen(c->uri_buf) : 0, &a) < 0)
      break;
    if (c->arg0 == 0) {
      s->local = a;
      s->has_local = 1;
    } else {
      s->peer = a;
      s->has_peer = 1;
    }
    break;
  }
  default:
    break;
  }
}
