/* hwsock_guest_dump(): the driver's socket table as text, the guest-side
 * analogue of /proc/net/hwsock (docs/OBSERVABILITY.md). The table is
 * copied under the lock, formatted and written after it is released. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest_int.h"

typedef struct dump_row {
  unsigned id;
  const char *netid, *state;
  uint64_t bytes_out, bytes_in;
  uint32_t inflight;
  char local[HWSOCK_URI_MAX + 1], peer[HWSOCK_URI_MAX + 1];
} dump_row;

/* The state as the driver knows it, named like ss(8) names TCP states. */
static const char *state_name(const guest_sock *s) {
  switch (s->state) {
  case SOCK_RESERVED: return "NEW";     /* OPEN or ACCEPT in flight */
  case SOCK_CLOSING: return "CLOSING";  /* CLOSE in flight */
  case SOCK_CLOSED: return "CLOSED";    /* closed, requests still in flight */
  default: break;
  }
  if (s->conn == CONN_LISTEN)
    return "LISTEN";
  if (s->conn != CONN_ESTAB)
    return "UNCONN";
  return s->eof && s->shut_wr ? "LAST-ACK"
         : s->eof             ? "CLOSE-WAIT"
         : s->shut_wr         ? "FIN-WAIT"
                              : "ESTAB";
}

static void name(const hwsock_addr *a, int has, char *buf, size_t len) {
  if (!has || hwsock_uri_format(a, buf, len) < 0)
    snprintf(buf, len, "*");
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return HWSOCK_EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int hwsock_guest_dump(hwsock_guest *g, int fd) {
  if (!g || fd < 0)
    return HWSOCK_EINVAL;
  pthread_mutex_lock(&g->lock);
  size_t n = 0;
  for (unsigned i = 0; i < g->nsock; i++)
    n += g->socks[i].state != SOCK_FREE;
  dump_row *rows = n ? calloc(n, sizeof(*rows)) : NULL;
  if (n && !rows) {
    pthread_mutex_unlock(&g->lock);
    return HWSOCK_ENOMEM;
  }
  size_t k = 0;
  for (unsigned i = 0; i < g->nsock && k < n; i++) {
    const guest_sock *s = &g->socks[i];
    if (s->state == SOCK_FREE)
      continue;
    dump_row *r = &rows[k++];
    r->id = i;
    r->netid = hwsock_scheme_name(hwsock_scheme_for(s->family, s->type));
    if (!r->netid)
      r->netid = "?";
    r->state = state_name(s);
    r->bytes_out = s->bytes_out;
    r->bytes_in = s->bytes_in;
    r->inflight = s->inflight;
    name(&s->local, s->has_local, r->local, sizeof(r->local));
    name(&s->peer, s->has_peer, r->peer, sizeof(r->peer));
  }
  pthread_mutex_unlock(&g->lock);

  int wl = (int)strlen("Local"), wp = (int)strlen("Peer");
  for (size_t i = 0; i < n; i++) {
    if ((int)strlen(rows[i].local) > wl)
      wl = (int)strlen(rows[i].local);
    if ((int)strlen(rows[i].peer) > wp)
      wp = (int)strlen(rows[i].peer);
  }
  /* One line is at most the two URIs plus ~100 bytes of fixed columns. */
  char line[2 * (HWSOCK_URI_MAX + 1) + 160];
  int len = snprintf(line, sizeof(line),
                     "%-5s %-5s %-10s %-*s %-*s %12s %12s %9s\n", "Id",
                     "Netid", "State", wl, "Local", wp, "Peer", "Bytes-Out",
                     "Bytes-In", "In-flight");
  int err = write_all(fd, line, (size_t)len);
  for (size_t i = 0; i < n && err == 0; i++) {
    const dump_row *r = &rows[i];
    len = snprintf(line, sizeof(line),
                   "%-5u %-5s %-10s %-*s %-*s %12llu %12llu %9u\n", r->id,
                   r->netid, r->state, wl, r->local, wp, r->peer,
                   (unsigned long long)r->bytes_out,
                   (unsigned long long)r->bytes_in, r->inflight);
    if (len < 0 || (size_t)len >= sizeof(line))
      len = (int)sizeof(line) - 1; /* cannot happen: see the size */
    err = write_all(fd, line, (size_t)len);
  }
  free(rows);
  return err;
}
