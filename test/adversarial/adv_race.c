/* Concurrency and load from one hostile guest: shared memory rewritten
 * while the device reads it, more requests than the device holds, socket
 * ids reused and closed under requests in flight, a reset during traffic, a
 * guest that never reads its completions. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "adversarial/adv.h"

#define W HWSOCK_VRING_DESC_F_WRITE

/* ---- double fetch: the URI ---------------------------------------------- */

typedef struct flipper {
  volatile uint8_t *byte; /* the one byte that differs */
  uint8_t v[2];
  volatile int stop;
} flipper;

static void *flip(void *arg) {
  flipper *f = arg;
  unsigned i = 0;
  while (!f->stop)
    __atomic_store_n(f->byte, f->v[++i & 1], __ATOMIC_RELAXED);
  return NULL;
}

/* The echo port and the denied port differ in one digit (the harness picks
 * them so): a thread flips that digit of the URI while the device handles
 * CONNECTs. The device reads the URI once, so each CONNECT is either denied
 * (EACCES) or reaches the echo server (and GETNAME says so); the harness's
 * denied listener must count nothing. */
static int double_fetch_uri(adv *a) {
  if (adv_setup(a, ADV_FEATURES, 64) < 0)
    return -1;
  char u0[32], u1[32];
  int n = snprintf(u0, sizeof(u0), "tcp://127.0.0.1:%u", adv_echo_port);
  snprintf(u1, sizeof(u1), "tcp://127.0.0.1:%u", adv_deny_port);
  int diff = -1, ndiff = 0;
  for (int i = 0; i < n; i++)
    if (u0[i] != u1[i]) {
      diff = i;
      ndiff++;
    }
  ADV_CHECK(strlen(u1) == (size_t)n && ndiff == 1,
            "ports %u and %u must differ in one digit", adv_echo_port,
            adv_deny_port);
  vrb *r = &a->q[0];
  unsigned ok = 0, denied = 0;
  for (unsigned it = 0; it < 60; it++) {
    uint32_t id = 40;
    int st = adv_call(a, 0, HWSOCK_OP_OPEN, id, 1, HWSOCK_AF_INET,
                      HWSOCK_SOCK_STREAM, NULL, NULL, 0, 32, NULL);
    ADV_CHECK(st == 0, "OPEN: %d", st);
    size_t mark = vrb_mark(r);
    int head = adv_req(a, 0, HWSOCK_OP_CONNECT, id, 2, 0, 0, u0, (uint32_t)n,
                       NULL, 0, 32);
    ADV_CHECK(head >= 0, "chain");
    uint8_t *uri = (uint8_t *)vrb_host(r, hwsock_le64_get(&r->desc[head].addr)) +
                   sizeof(hwsock_req_hdr);
    flipper f = {.byte = uri + diff, .v = {(uint8_t)u0[diff], (uint8_t)u1[diff]}};
    pthread_t t;
    pthread_create(&t, NULL, flip, &f);
    adv_go(a, 0);
    int w = adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS);
    f.stop = 1;
    pthread_join(t, NULL);
    ADV_CHECK(w == 0, "CONNECT did not complete");
    st = -(int)hwsock_le32_get(&adv_resp(a, 0, (uint16_t)head)->status);
    vrb_release(r, mark);
    if (st == 0) {
      ok++;
      /* the peer is the echo server */
      head = adv_req(a, 0, HWSOCK_OP_GETNAME, id, 3, 1, 0, NULL, 0, NULL, 0, 160);
      adv_go(a, 0);
      ADV_CHECK(adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) == 0, "GETNAME");
      const hwsock_resp_hdr *p = adv_resp(a, 0, (uint16_t)head);
      uint32_t ul = hwsock_le32_get(&p->uri_len);
      ADV_CHECK(hwsock_le32_get(&p->status) == 0 && ul == (uint32_t)n &&
                    memcmp((const char *)(p + 1), u0, (size_t)n) == 0,
                "connected socket's peer is '%.*s'", (int)ul,
                (const char *)(p + 1));
      vrb_release(r, mark);
    } else {
      ADV_CHECK(st == HWSOCK_EACCES, "CONNECT under a flipping URI: %d", st);
      denied++;
    }
    st = adv_call(a, 0, HWSOCK_OP_CLOSE, id, 4, 0, 0, NULL, NULL, 0, 32, NULL);
    ADV_CHECK(st == 0, "CLOSE: %d", st);
  }
  fprintf(stderr, "double_fetch_uri: %u connected, %u denied\n", ok, denied);
  return 0;
}

/* ---- double fetch: the header ------------------------------------------- */

typedef struct hdr_flipper {
  hwsock_req_hdr *h;
  volatile int stop;
} hdr_flipper;

static void *flip_hdr(void *arg) {
  hdr_flipper *f = arg;
  unsigned i = 0;
  while (!f->stop) {
    i++;
    uint8_t *b = (uint8_t *)f->h; /* 16-aligned: fields at their offsets */
    __atomic_store_n((uint16_t *)(void *)(b + 0),
                     (uint16_t)(i & 1 ? HWSOCK_OP_CONNECT : HWSOCK_OP_GETNAME),
                     __ATOMIC_RELAXED);
    __atomic_store_n((uint32_t *)(void *)(b + 4), i & 2 ? 7u : 0xffffffffu,
                     __ATOMIC_RELAXED);
    __atomic_store_n((uint32_t *)(void *)(b + 24), i & 4 ? 0u : 0xffffffffu,
                     __ATOMIC_RELAXED);
    __atomic_store_n((uint64_t *)(void *)(b + 8), i & 8 ? 0xaaaau : 0xbbbbu,
                     __ATOMIC_RELAXED);
  }
  return NULL;
}

/* The header of one chain, re-posted 3000 times, rewritten field by field
 * all along: whichever mix the device copied, the answer is the one the
 * protocol gives for it: EBADMSG (uri_len past the chain), EBADF (id out
 * of range or never opened) or EINVAL (CONNECT without a URI), with one of
 * the two tags. An id checked against max_sockets in one read and used from
 * another would index outside the table (ASan in the VMM). */
static int double_fetch_header(adv *a) {
  if (adv_setup(a, ADV_FEATURES, 64) < 0)
    return -1;
  vrb *r = &a->q[0];
  uint64_t g = vrb_alloc(r, 32, 16), w = vrb_alloc(r, 64, 16);
  hdr_flipper f = {.h = vrb_host(r, g)};
  hwsock_le16_set(&f.h->opcode, HWSOCK_OP_GETNAME);
  hwsock_le32_set(&f.h->sock_id, 7);
  hwsock_le64_set(&f.h->tag, 0xaaaa);
  pthread_t t;
  pthread_create(&t, NULL, flip_hdr, &f);
  unsigned seen[3] = {0, 0, 0};
  int bad = 0;
  for (unsigned it = 0; it < 3000 && !bad; it++) {
    vrb_seg s[2] = {{g, 32, 0}, {w, 64, W}};
    int head = vrb_add_chain(r, s, 2);
    adv_go(a, 0);
    if (adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) < 0) {
      bad = 1;
      break;
    }
    const hwsock_resp_hdr *p = vrb_host(r, w);
    int st = -(int)hwsock_le32_get(&p->status);
    uint64_t tag = hwsock_le64_get(&p->tag);
    if (tag != 0xaaaa && tag != 0xbbbb)
      bad = 2;
    else if (st == HWSOCK_EBADMSG)
      seen[0]++;
    else if (st == HWSOCK_EBADF)
      seen[1]++;
    else if (st == HWSOCK_EINVAL)
      seen[2]++;
    else
      bad = 3;
    if (bad)
      fprintf(stderr, "double_fetch_header: status %d tag %#llx\n", st,
              (unsigned long long)tag);
  }
  f.stop = 1;
  pthread_join(t, NULL);
  ADV_CHECK(!bad, "an answer no single copy of the header gives (%d)", bad);
  fprintf(stderr, "double_fetch_header: EBADMSG %u, EBADF %u, EINVAL %u\n",
          seen[0], seen[1], seen[2]);
  return 0;
}

/* ---- more requests than the device holds --------------------------------- */

/* Datagram source for the flood: a host UDP socket sending to port. */
static int udp_send(int fd, unsigned port, uint32_t v) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sendto(fd, &v, sizeof(v), 0, (struct sockaddr *)&sin, sizeof(sin)) ==
                 sizeof(v)
             ? 0
             : -1;
}

/* A bound UDP socket id; its port. */
static int udp_bound(adv *a, uint32_t id, unsigned *port) {
  int st = adv_call(a, 0, HWSOCK_OP_OPEN, id, 1, HWSOCK_AF_INET,
                    HWSOCK_SOCK_DGRAM, NULL, NULL, 0, 32, NULL);
  ADV_CHECK(st == 0, "OPEN: %d", st);
  st = adv_call(a, 0, HWSOCK_OP_BIND, id, 2, 0, 0, "udp://127.0.0.1:0", NULL, 0,
                32, NULL);
  ADV_CHECK(st == 0, "BIND: %d", st);
  vrb *r = &a->q[0];
  size_t mark = vrb_mark(r);
  int head = adv_req(a, 0, HWSOCK_OP_GETNAME, id, 3, 0, 0, NULL, 0, NULL, 0, 160);
  adv_go(a, 0);
  ADV_CHECK(adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) == 0, "GETNAME");
  const hwsock_resp_hdr *p = adv_resp(a, 0, (uint16_t)head);
  char uri[128];
  uint32_t ul = hwsock_le32_get(&p->uri_len);
  ADV_CHECK(hwsock_le32_get(&p->status) == 0 && ul < sizeof(uri), "GETNAME");
  memcpy(uri, p + 1, ul);
  uri[ul] = '\0';
  vrb_release(r, mark);
  const char *colon = strrchr(uri, ':');
  ADV_CHECK(colon != NULL && (*port = (unsigned)atoi(colon + 1)) > 0,
            "local URI '%s'", uri);
  return 0;
}

/* RECVs (indirect chains: one descriptor each) filling two queues: twice
 * max_inflight's worth of blocking requests. The device takes what it may
 * hold and leaves the rest in the rings (not an error); datagrams then
 * complete them in turn, each exactly once, with no further kick. */
static int flood_beyond_inflight(adv *a) {
  unsigned qs = 256;
  ADV_CHECK(a->nq >= 2, "the case needs 2 queues (hwsock-vmm --queues 2)");
  if (adv_setup(a, ADV_FEATURES, qs) < 0)
    return -1;
  unsigned port;
  if (udp_bound(a, 50, &port) < 0)
    return -1;
  uint32_t maxin = hwsock_le32_get(&a->cfg.max_inflight);
  unsigned total = 2 * qs;
  ADV_CHECK(total > maxin, "max_inflight %u: no flood with %u", maxin, total);
  static uint64_t data_gpa[2][256];
  for (unsigned q = 0; q < 2; q++) {
    vrb *r = &a->q[q];
    for (unsigned i = 0; i < qs; i++) {
      uint64_t g = vrb_alloc(r, 32, 16), w = vrb_alloc(r, 64, 16);
      hwsock_req_hdr *h = vrb_host(r, g);
      hwsock_le16_set(&h->opcode, HWSOCK_OP_RECV);
      hwsock_le32_set(&h->sock_id, 50);
      hwsock_le64_set(&h->tag, q * 1000 + i);
      vrb_seg s[2] = {{g, 32, 0}, {w, 64, W}};
      int head = vrb_add_indirect(r, s, 2);
      ADV_CHECK(head >= 0, "indirect chain %u", i);
      data_gpa[q][head] = w;
    }
    vrb_publish(r);
    adv_kick(a, q);
  }
  usleep(200000);
  for (unsigned q = 0; q < 2; q++) {
    uint32_t id, len;
    ADV_CHECK(!vrb_get_used(&a->q[q], &id, &len),
              "a RECV completed without data: queue %u head %u status %u", q,
              id,
              hwsock_le32_get(
                  &((const hwsock_resp_hdr *)vrb_host(&a->q[q],
                                                      data_gpa[q][id]))
                       ->status));
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  static uint8_t got[512];
  memset(got, 0, sizeof(got));
  unsigned done = 0;
  for (unsigned sent = 0; sent < total;) {
    for (unsigned k = 0; k < 32; k++, sent++)
      ADV_CHECK(udp_send(fd, port, sent) == 0, "sendto");
    /* wait for these 32 */
    for (int spins = 0; done < sent && spins < 500; spins++) {
      for (unsigned q = 0; q < 2; q++) {
        uint32_t id, len;
        while (vrb_get_used(&a->q[q], &id, &len)) {
          const hwsock_resp_hdr *p = vrb_host(&a->q[q], data_gpa[q][id]);
          uint32_t v;
          memcpy(&v, p + 1, sizeof(v));
          ADV_CHECK(hwsock_le32_get(&p->status) == 0 &&
                        hwsock_le32_get(&p->len) == 4 && v < total && !got[v],
                    "RECV %u/%u: status %u len %u value %u", q, id,
                    hwsock_le32_get(&p->status), hwsock_le32_get(&p->len), v);
          got[v] = 1;
          done++;
        }
      }
      if (done < sent)
        usleep(10000);
    }
    ADV_CHECK(done == sent, "%u of %u datagrams received (device stuck at the "
              "in-flight limit?)", done, sent);
  }
  close(fd);
  ADV_CHECK(a->reset_code < 0, "NEEDS_RESET %d", a->reset_code);
  return 0;
}

/* ---- socket ids ---------------------------------------------------------- */

/* One queue, one batch: the same id closed, opened and used 40 times in a
 * row. Requests of a queue are taken in order, so every OPEN finds the id
 * free and every CLOSE finds it open; a SEND still in the backend when its
 * CLOSE comes is cancelled. */
static int id_reuse_pipeline(adv *a) {
  if (adv_setup(a, ADV_FEATURES, 256) < 0)
    return -1;
  vrb *r = &a->q[0];
  char uri[40];
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", adv_echo_port);
  int heads[40][3];
  for (unsigned i = 0; i < 40; i++) {
    heads[i][0] = adv_req(a, 0, HWSOCK_OP_OPEN, 60, i * 3, HWSOCK_AF_INET,
                          HWSOCK_SOCK_DGRAM, NULL, 0, NULL, 0, 32);
    heads[i][1] = adv_req(a, 0, HWSOCK_OP_SEND, 60, i * 3 + 1, 0, 0, uri,
                          (uint32_t)strlen(uri), "reuse", 5, 32);
    heads[i][2] = adv_req(a, 0, HWSOCK_OP_CLOSE, 60, i * 3 + 2, 0, 0, NULL, 0,
                          NULL, 0, 32);
    ADV_CHECK(heads[i][0] >= 0 && heads[i][1] >= 0 && heads[i][2] >= 0,
              "chains");
  }
  vrb_publish(r);
  adv_kick(a, 0);
  for (unsigned i = 0; i < 40; i++)
    for (unsigned k = 0; k < 3; k++) {
      ADV_CHECK(adv_wait_head(a, 0, (uint16_t)heads[i][k], ADV_WAIT_MS) == 0,
                "request %u/%u did not complete", i, k);
      const hwsock_resp_hdr *p = adv_resp(a, 0, (uint16_t)heads[i][k]);
      int st = -(int)hwsock_le32_get(&p->status);
      ADV_CHECK(hwsock_le64_get(&p->tag) == i * 3 + k, "tag");
      ADV_CHECK(st == 0 || (k == 1 && st == HWSOCK_ECANCELED),
                "round %u request %u: status %d", i, k, st);
    }
  ADV_CHECK(adv_call(a, 0, HWSOCK_OP_CLOSE, 60, 9, 0, 0, NULL, NULL, 0, 32,
                     NULL) == HWSOCK_EBADF,
            "the id is free at the end");
  return 0;
}

/* OPEN on queue 0 and CLOSE on queue 1 of the same id at the same time,
 * 300 times: either order is possible, nothing else. OPEN always finds the
 * id free (it is free before each round); CLOSE succeeds (after the OPEN)
 * or finds it free (EBADF), and then the id is left open. */
static int id_reuse_cross_queue(adv *a) {
  ADV_CHECK(a->nq >= 2, "the case needs 2 queues");
  if (adv_setup(a, ADV_FEATURES, 64) < 0)
    return -1;
  unsigned order[2] = {0, 0};
  for (unsigned i = 0; i < 300; i++) {
    size_t m0 = vrb_mark(&a->q[0]), m1 = vrb_mark(&a->q[1]);
    int h0 = adv_req(a, 0, HWSOCK_OP_OPEN, 70, 1, HWSOCK_AF_INET,
                     HWSOCK_SOCK_STREAM, NULL, 0, NULL, 0, 32);
    int h1 = adv_req(a, 1, HWSOCK_OP_CLOSE, 70, 2, 0, 0, NULL, 0, NULL, 0, 32);
    for (unsigned q = 0; q < 2; q++) {
      vrb_set_used_event(&a->q[q], a->q[q].last_used);
      vrb_publish(&a->q[q]);
    }
    adv_kick(a, i & 1);
    adv_kick(a, !(i & 1));
    ADV_CHECK(adv_wait_head(a, 0, (uint16_t)h0, ADV_WAIT_MS) == 0 &&
                  adv_wait_head(a, 1, (uint16_t)h1, ADV_WAIT_MS) == 0,
              "round %u did not complete", i);
    int s0 = -(int)hwsock_le32_get(&adv_resp(a, 0, (uint16_t)h0)->status);
    int s1 = -(int)hwsock_le32_get(&adv_resp(a, 1, (uint16_t)h1)->status);
    ADV_CHECK(s0 == 0 && (s1 == 0 || s1 == HWSOCK_EBADF),
              "round %u: OPEN %d, CLOSE %d", i, s0, s1);
    order[s1 == 0]++;
    if (s1 == HWSOCK_EBADF)
      ADV_CHECK(adv_call(a, 0, HWSOCK_OP_CLOSE, 70, 3, 0, 0, NULL, NULL, 0, 32,
                         NULL) == 0,
                "the id OPEN left open");
    vrb_release(&a->q[0], m0);
    vrb_release(&a->q[1], m1);
  }
  fprintf(stderr, "id_reuse_cross_queue: close first %u, open first %u\n",
          order[0], order[1]);
  return 0;
}

/* ---- close and reset under requests in flight ---------------------------- */

/* 8 RECVs wait on a UDP socket and 4 on a TCP connection; CLOSE of each
 * cancels them: ECANCELED, published before the CLOSE's own completion. */
static int close_while_in_flight(adv *a) {
  if (adv_setup(a, ADV_FEATURES, 64) < 0)
    return -1;
  unsigned port;
  if (udp_bound(a, 80, &port) < 0)
    return -1;
  int st = adv_call(a, 0, HWSOCK_OP_OPEN, 81, 1, HWSOCK_AF_INET,
                    HWSOCK_SOCK_STREAM, NULL, NULL, 0, 32, NULL);
  char uri[40];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", adv_echo_port);
  if (st == 0)
    st = adv_call(a, 0, HWSOCK_OP_CONNECT, 81, 2, 0, 0, uri, NULL, 0, 32, NULL);
  ADV_CHECK(st == 0, "TCP socket: %d", st);
  vrb *r = &a->q[0];
  for (uint32_t id = 80; id <= 81; id++) {
    unsigned n = id == 80 ? 8 : 4;
    int heads[8];
    for (unsigned i = 0; i < n; i++)
      heads[i] = adv_req(a, 0, HWSOCK_OP_RECV, id, 100 + i, 0, 0, NULL, 0, NULL,
                         0, 32 + 4096);
    adv_go(a, 0);
    usleep(100000);
    uint16_t before = vrb_used_idx(r);
    ADV_CHECK(before == r->last_used, "a RECV completed with no data");
    int hc = adv_req(a, 0, HWSOCK_OP_CLOSE, id, 200, 0, 0, NULL, 0, NULL, 0, 32);
    adv_go(a, 0);
    ADV_CHECK(adv_wait_head(a, 0, (uint16_t)hc, ADV_WAIT_MS) == 0, "CLOSE");
    ADV_CHECK(hwsock_le32_get(&adv_resp(a, 0, (uint16_t)hc)->status) == 0,
              "CLOSE status");
    /* the CLOSE is the last of the n + 1 used elements */
    uint16_t after = vrb_used_idx(r);
    ADV_CHECK((uint16_t)(after - before) == n + 1, "%u completions, want %u",
              (uint16_t)(after - before), n + 1);
    uint32_t last = hwsock_le32_get(&r->used->ring[(after - 1) % r->qsize].id);
    ADV_CHECK(last == (uint32_t)hc, "CLOSE completed before its socket's RECVs");
    for (unsigned i = 0; i < n; i++) {
      ADV_CHECK(adv_wait_head(a, 0, (uint16_t)heads[i], 100) == 0, "RECV %u", i);
      const hwsock_resp_hdr *p = adv_resp(a, 0, (uint16_t)heads[i]);
      ADV_CHECK(hwsock_le32_get(&p->status) == (uint32_t)-HWSOCK_ECANCELED,
                "RECV on a closed socket: status %u",
                hwsock_le32_get(&p->status));
    }
  }
  return 0;
}

/* RESET with RECVs and SENDs of a live connection in flight: the reply
 * comes, nothing more is written to the old rings, and the device is set up
 * again. */
static int reset_during_traffic(adv *a) {
  if (adv_setup(a, ADV_FEATURES, 64) < 0)
    return -1;
  char uri[40];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", adv_echo_port);
  int st = adv_call(a, 0, HWSOCK_OP_OPEN, 90, 1, HWSOCK_AF_INET,
                    HWSOCK_SOCK_STREAM, NULL, NULL, 0, 32, NULL);
  if (st == 0)
    st = adv_call(a, 0, HWSOCK_OP_CONNECT, 90, 2, 0, 0, uri, NULL, 0, 32, NULL);
  ADV_CHECK(st == 0, "connection: %d", st);
  static uint8_t buf[65536];
  memset(buf, 'r', sizeof(buf));
  for (unsigned i = 0; i < 4; i++)
    adv_req(a, 0, HWSOCK_OP_RECV, 90, 10 + i, 2 /* WAITALL */, 0, NULL, 0, NULL,
            0, 32 + 65536);
  for (unsigned i = 0; i < 8; i++)
    adv_req(a, 0, HWSOCK_OP_SEND, 90, 20 + i, 0, 0, NULL, 0, buf, sizeof(buf),
            32);
  adv_go(a, 0);
  st = adv_msg(a, HWSOCK_LB_RESET, 0, 0, 0, 0, 0);
  ADV_CHECK(st == 0, "RESET during traffic: %d", st);
  uint16_t idx = vrb_used_idx(&a->q[0]);
  ADV_CHECK(adv_used_still(a, 0, idx, 300) == 0,
            "completions written after the reset");
  return adv_setup(a, ADV_FEATURES, 64) < 0 ? -1 : adv_healthy(a);
}

/* ---- a guest that never reads ------------------------------------------- */

/* 120 requests, kicked, then nothing: no used ring read, no interrupt
 * read, while the harness watches the VMM. Afterwards every completion is
 * there, once. */
static int never_reads_completions(adv *a) {
  if (adv_setup(a, ADV_FEATURES, 256) < 0)
    return -1;
  for (unsigned i = 0; i < 120; i++)
    ADV_CHECK(adv_req(a, 0, HWSOCK_OP_GETNAME, 7, i, 0, 0, NULL, 0, NULL, 0,
                      128) >= 0,
              "chain");
  adv_go(a, 0);
  return 0;
}

static int never_reads_after(adv *a) {
  vrb *r = &a->q[0];
  ADV_CHECK(vrb_used_idx(r) == 120, "used idx %u, want 120", vrb_used_idx(r));
  for (unsigned i = 0; i < 120; i++) {
    uint32_t id, len;
    ADV_CHECK(vrb_get_used(r, &id, &len) == 1 && len == 32, "used %u", i);
    const hwsock_resp_hdr *p = adv_resp(a, 0, (uint16_t)id);
    ADV_CHECK(hwsock_le32_get(&p->status) == (uint32_t)-HWSOCK_EBADF,
              "status %u", hwsock_le32_get(&p->status));
  }
  return adv_healthy(a);
}

/* 100000 kicks with nothing available. */
static int kick_storm(adv *a) {
  if (adv_setup(a, ADV_FEATURES, 64) < 0)
    return -1;
  for (unsigned i = 0; i < 100000; i++)
    adv_kick(a, i % a->nq);
  usleep(100000);
  ADV_CHECK(vrb_used_idx(&a->q[0]) == 0, "completions without requests");
  return adv_healthy(a);
}

static int still_healthy(adv *a) { return adv_healthy(a); }

const adv_case adv_race_cases[] = {
    {"double_fetch_uri", double_fetch_uri, still_healthy},
    {"double_fetch_header", double_fetch_header, still_healthy},
    {"flood_beyond_inflight", flood_beyond_inflight, still_healthy},
    {"id_reuse_pipeline", id_reuse_pipeline, still_healthy},
    {"id_reuse_cross_queue", id_reuse_cross_queue, still_healthy},
    {"close_while_in_flight", close_while_in_flight, still_healthy},
    {"reset_during_traffic", reset_during_traffic, NULL},
    {"never_reads_completions", never_reads_completions, never_reads_after},
    {"kick_storm", kick_storm, still_healthy},
    {NULL, NULL, NULL},
};
