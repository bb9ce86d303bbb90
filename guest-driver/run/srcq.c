/* The source queue of an offloaded datagram socket (run.h: run_src): the
 * pump records, for each datagram it writes to the program's end, the
 * source the device reported and a sum of the bytes; a recvfrom/recvmsg
 * that asks for the source finds it here by the sum of the record the
 * program read. An ICMP error is a marker in the same queue. Calls only
 * the state of a socket, never a handler. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "run.h"
#include "srcq.h"

/* ---- the ring ------------------------------------------------------------- */

int hwsock__run_srcq_room(run_sock *s) {
  if (s->type != SOCK_DGRAM)
    return 0; /* a stream has no sources to record */
  /* allocated at the first entry, not with the socket: an idle or never
   * receiving UDP socket (thousands of connected ones) costs no 38 KB ring;
   * it lives until the entry is freed (sockmap.c) */
  if (!s->srcq && !(s->srcq = calloc(RUN_MAX_SRCQ, sizeof(*s->srcq))))
    return 0;
  return s->srcq_n < RUN_MAX_SRCQ;
}

/* ---- which source goes with a datagram ------------------------------------ */

uint64_t hwsock__run_dgram_sum(const uint8_t *p, size_t n) {
  /* FNV-1a over the length and up to 256 bytes at the start and 64 at the
   * end: enough to tell datagrams apart, cheap for 64 KiB ones */
  uint64_t h = 0xcbf29ce484222325ull;
  uint64_t len = n;
  for (int i = 0; i < 8; i++, len >>= 8)
    h = (h ^ (len & 0xff)) * 0x100000001b3ull;
  size_t head = n < 256 ? n : 256;
  for (size_t i = 0; i < head; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  for (size_t i = n > head + 64 ? n - 64 : head; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* The srcq entry of a record the program end just gave us (n bytes at p;
 * rxlock held). The program may have read records without us (a plain
 * recv/read, a child reading after our peek): the entries of those are
 * skipped and dropped, so the queue realigns on every receive. Copies the
 * entry to *src (zeroed when there is none) and pops it unless peek. */
void hwsock__run_src_match(run_sock *s, const uint8_t *p, size_t n, int peek,
                           run_src *src) {
  memset(src, 0, sizeof(*src));
  uint64_t sum = hwsock__run_dgram_sum(p, n);
  for (unsigned k = 0; k < s->srcq_n; k++) {
    const run_src *e = &s->srcq[(s->srcq_head + k) % RUN_MAX_SRCQ];
    if (e->len != n || e->sum != sum)
      continue;
    *src = *e;
    s->srcq_head = (s->srcq_head + k) % RUN_MAX_SRCQ; /* older: read */
    s->srcq_n -= k;
    if (!peek) {
      s->srcq_head = (s->srcq_head + 1) % RUN_MAX_SRCQ;
      s->srcq_n--;
    }
    return;
  }
}

/* ---- a pending error (ICMP) ----------------------------------------------- */

/* Pops the srcq head when it is an error marker and the program end's next
 * record is the empty one that stands for it (rxlock held). */
static void drop_marker(run_sock *s, int fd) {
  char b;
  if (s->srcq_n == 0 || s->srcq[s->srcq_head].err == 0 ||
      recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK) != 0)
    return;
  if (recv(fd, &b, 1, MSG_DONTWAIT) == 0) {
    s->srcq_head = (s->srcq_head + 1) % RUN_MAX_SRCQ;
    s->srcq_n--;
  }
}

int hwsock__run_dgram_take_err_locked(run_sock *s, int fd) {
  pthread_mutex_lock(&s->lock);
  int e = s->so_error;
  s->so_error = 0;
  pthread_mutex_unlock(&s->lock);
  if (e)
    drop_marker(s, fd);
  return e;
}

int hwsock__run_dgram_take_err(run_sock *s, int fd) {
  pthread_mutex_lock(&s->rxlock);
  int e = hwsock__run_dgram_take_err_locked(s, fd);
  pthread_mutex_unlock(&s->rxlock);
  return e;
}
