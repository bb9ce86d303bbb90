/* Bad requests (PROTOCOL.md §10): chains that are well-formed as chains but
 * wrong as requests get an error completion with exactly the status of the
 * first failing check, and the device stays healthy. Also the setup
 * messages a hostile guest gets wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adversarial/adv.h"

#define QS 64u
#define W HWSOCK_VRING_DESC_F_WRITE
#define EXPECT(st, want, what)                                               \
  do {                                                                       \
    int st_ = (st);                                                          \
    ADV_CHECK(st_ == (want), "%s: status %d, want %d", what, st_, (want));   \
  } while (0)

static int setup(adv *a) { return adv_setup(a, ADV_FEATURES, QS); }
static int still_healthy(adv *a) { return adv_healthy(a); }

/* OPEN id as tcp or udp. */
static int open_sock(adv *a, uint32_t id, unsigned type) {
  int st = adv_call(a, 0, HWSOCK_OP_OPEN, id, 1, HWSOCK_AF_INET, type, NULL,
                    NULL, 0, 32, NULL);
  ADV_CHECK(st == 0, "OPEN %u: status %d", id, st);
  return 0;
}

/* A request carrying ncopy bytes of uri (after the header), whose header
 * then gets flags, reserved and uri_len as given before it is published;
 * the response's status (negative), 1 when the tag was not echoed. */
static int call_patched(adv *a, uint16_t op, uint32_t id, uint64_t tag,
                        uint16_t flags, uint32_t reserved, uint32_t uri_len,
                        const char *uri, uint32_t ncopy, uint32_t extra) {
  vrb *r = &a->q[0];
  size_t mark = vrb_mark(r);
  int head = adv_req(a, 0, op, id, tag, 0, 0, uri, ncopy, NULL, extra, 128);
  if (head < 0)
    return -1;
  hwsock_req_hdr *h = vrb_host(r, hwsock_le64_get(&r->desc[head].addr));
  hwsock_le16_set(&h->flags, flags);
  hwsock_le32_set(&h->reserved, reserved);
  hwsock_le32_set(&h->uri_len, uri_len);
  adv_go(a, 0);
  if (adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) < 0)
    return 1;
  const hwsock_resp_hdr *p = adv_resp(a, 0, (uint16_t)head);
  int st = -(int)hwsock_le32_get(&p->status);
  if (hwsock_le64_get(&p->tag) != tag)
    st = 2;
  vrb_release(r, mark);
  return st;
}

/* Writable part shorter than the response header: used len 0, nothing
 * written. Readable part shorter than the request header: EBADMSG, tag 0. */
static int short_buffers(adv *a) {
  if (setup(a) < 0)
    return -1;
  vrb *r = &a->q[0];
  uint64_t g = vrb_alloc(r, 32, 16), w = vrb_alloc(r, 64, 16);
  hwsock_req_hdr *h = vrb_host(r, g);
  hwsock_le16_set(&h->opcode, HWSOCK_OP_OPEN);
  hwsock_le32_set(&h->sock_id, 3);
  hwsock_le64_set(&h->tag, 0x99);
  hwsock_le32_set(&h->arg0, HWSOCK_AF_INET);
  hwsock_le32_set(&h->arg1, HWSOCK_SOCK_STREAM);
  memset(vrb_host(r, w), 0xaa, 64);
  vrb_seg s1[2] = {{g, 32, 0}, {w, 31, W}};
  int head = vrb_add_chain(r, s1, 2);
  adv_go(a, 0);
  ADV_CHECK(adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) == 0, "no completion");
  ADV_CHECK(a->done[0][head].len == 0, "used len %u for a 31-byte writable part",
            a->done[0][head].len);
  const uint8_t *p = vrb_host(r, w);
  for (unsigned i = 0; i < 64; i++)
    ADV_CHECK(p[i] == 0xaa, "byte %u of a too-short response written", i);
  /* not performed: socket 3 is still free */
  ADV_CHECK(adv_call(a, 0, HWSOCK_OP_CLOSE, 3, 5, 0, 0, NULL, NULL, 0, 32,
                     NULL) == HWSOCK_EBADF,
            "the too-short request was performed");
  vrb_seg s2[2] = {{g, 31, 0}, {w, 64, W}};
  head = vrb_add_chain(r, s2, 2);
  adv_go(a, 0);
  ADV_CHECK(adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) == 0, "no completion");
  const hwsock_resp_hdr *resp = vrb_host(r, w);
  ADV_CHECK(hwsock_le32_get(&resp->status) == (uint32_t)-HWSOCK_EBADMSG &&
                hwsock_le64_get(&resp->tag) == 0 && a->done[0][head].len == 32,
            "31-byte request: status %u tag %llu used %u",
            hwsock_le32_get(&resp->status),
            (unsigned long long)hwsock_le64_get(&resp->tag), a->done[0][head].len);
  return 0;
}

static int unknown_opcodes(adv *a) {
  if (setup(a) < 0)
    return -1;
  static const uint16_t ops[] = {0, HWSOCK_OP_MAX_ + 1, 0x100, 0x7fff, 0xffff};
  for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
    EXPECT(call_patched(a, ops[i], 1, 100 + i, 0, 0, 0, NULL, 0, 0), HWSOCK_ENOSYS,
           "unknown opcode");
  /* NEGOTIATE on a device without in-band negotiation is unknown too */
  EXPECT(call_patched(a, HWSOCK_OP_NEGOTIATE, 0, 9, 0, 0, 0, NULL, 0, 64),
         HWSOCK_ENOSYS, "NEGOTIATE");
  EXPECT(call_patched(a, HWSOCK_OP_OPEN, 1, 10, 1, 0, 0, NULL, 0, 0), HWSOCK_EINVAL,
         "header flags");
  EXPECT(call_patched(a, HWSOCK_OP_OPEN, 1, 11, 0x8000, 0, 0, NULL, 0, 0),
         HWSOCK_EINVAL, "header flags bit 15");
  EXPECT(call_patched(a, HWSOCK_OP_OPEN, 1, 12, 0, 1, 0, NULL, 0, 0), HWSOCK_EINVAL,
         "reserved");
  /* unknown flag bits of SEND / RECV, an unknown family and type */
  if (open_sock(a, 2, HWSOCK_SOCK_DGRAM) < 0)
    return -1;
  char uri[64];
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", adv_echo_port);
  EXPECT(adv_call(a, 0, HWSOCK_OP_SEND, 2, 13, 0x80, 0, uri, "x", 1, 32, NULL),
         HWSOCK_EINVAL, "SEND flag 0x80");
  EXPECT(adv_call(a, 0, HWSOCK_OP_OPEN, 3, 14, 77, 1, NULL, NULL, 0, 32, NULL),
         HWSOCK_EAFNOSUPPORT, "family 77");
  EXPECT(adv_call(a, 0, HWSOCK_OP_OPEN, 3, 15, HWSOCK_AF_IPX, HWSOCK_SOCK_STREAM,
                  NULL, NULL, 0, 32, NULL),
         HWSOCK_EPROTONOSUPPORT, "IPX stream");
  EXPECT(adv_call(a, 0, HWSOCK_OP_GETSOCKOPT, 2, 16, 0xffff, 1, NULL, NULL, 0,
                  64, NULL),
         HWSOCK_ENOPROTOOPT, "option level 0xffff");
  EXPECT(adv_call(a, 0, HWSOCK_OP_SHUTDOWN, 2, 17, 7, 0, NULL, NULL, 0, 32, NULL),
         HWSOCK_EINVAL, "SHUTDOWN how 7");
  EXPECT(adv_call(a, 0, HWSOCK_OP_SHUTDOWN, 2, 18, 1, 0, NULL, NULL, 0, 32, NULL),
         HWSOCK_ENOTCONN, "SHUTDOWN of an undecided socket");
  return 0;
}

static int bad_ids(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint32_t max = hwsock_le32_get(&a->cfg.max_sockets);
  static const uint16_t ops[] = {HWSOCK_OP_OPEN, HWSOCK_OP_CLOSE,
                                 HWSOCK_OP_GETNAME, HWSOCK_OP_LISTEN};
  for (unsigned i = 0; i < 4; i++) {
    EXPECT(adv_call(a, 0, ops[i], max, 20, HWSOCK_AF_INET, 1, NULL, NULL, 0, 128,
                    NULL),
           HWSOCK_EBADF, "id max_sockets");
    EXPECT(adv_call(a, 0, ops[i], 0xffffffffu, 21, HWSOCK_AF_INET, 1, NULL, NULL,
                    0, 128, NULL),
           HWSOCK_EBADF, "id 0xffffffff");
  }
  /* ids the guest never opened, and a double OPEN */
  EXPECT(adv_call(a, 0, HWSOCK_OP_CLOSE, 5, 22, 0, 0, NULL, NULL, 0, 32, NULL),
         HWSOCK_EBADF, "CLOSE of a free id");
  if (open_sock(a, 5, HWSOCK_SOCK_STREAM) < 0)
    return -1;
  EXPECT(adv_call(a, 0, HWSOCK_OP_OPEN, 5, 23, HWSOCK_AF_INET, 1, NULL, NULL, 0,
                  32, NULL),
         HWSOCK_EEXIST, "second OPEN");
  /* ACCEPT into an id out of range: the listener must be offloaded first */
  EXPECT(adv_call(a, 0, HWSOCK_OP_ACCEPT, 5, 24, 0, max, NULL, NULL, 0, 128, NULL),
         HWSOCK_ENOTCONN, "ACCEPT on an undecided socket");
  return 0;
}

/* URIs with a NUL, too long, pointing past the chain, malformed. */
static int bad_uris(adv *a) {
  if (setup(a) < 0)
    return -1;
  if (open_sock(a, 4, HWSOCK_SOCK_STREAM) < 0)
    return -1;
  char uri[256];
  int n = snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", adv_echo_port);
  /* NUL after the URI, inside it, and in front of it */
  char nul[64];
  memcpy(nul, uri, (size_t)n);
  nul[n] = '\0';
  EXPECT(call_patched(a, HWSOCK_OP_CONNECT, 4, 30, 0, 0, (uint32_t)n + 1, nul,
                      (uint32_t)n + 1, 0),
         HWSOCK_EBADURI, "URI with a trailing NUL");
  nul[9] = '\0';
  EXPECT(call_patched(a, HWSOCK_OP_CONNECT, 4, 31, 0, 0, (uint32_t)n, nul,
                      (uint32_t)n, 0),
         HWSOCK_EBADURI, "URI with a NUL inside");
  /* longer than max_uri_len, still inside the chain */
  memset(uri, '1', sizeof(uri));
  memcpy(uri, "tcp://127.0.0.1:", 16);
  uri[sizeof(uri) - 1] = '\0';
  uint32_t maxu = hwsock_le32_get(&a->cfg.max_uri_len);
  EXPECT(call_patched(a, HWSOCK_OP_CONNECT, 4, 32, 0, 0, maxu + 1, uri,
                      (uint32_t)strlen(uri), 0),
         HWSOCK_ENAMETOOLONG, "URI of max_uri_len + 1");
  /* uri_len beyond the readable part */
  EXPECT(call_patched(a, HWSOCK_OP_CONNECT, 4, 33, 0, 0, 64, "tcp://1", 7, 0),
         HWSOCK_EBADMSG, "uri_len past the chain");
  EXPECT(call_patched(a, HWSOCK_OP_CONNECT, 4, 34, 0, 0, 0xffffffffu, "x", 1, 0),
         HWSOCK_EBADMSG, "uri_len 0xffffffff");
  /* a URI on an opcode that takes none */
  EXPECT(call_patched(a, HWSOCK_OP_LISTEN, 4, 35, 0, 0, 5, "tcp:/", 5, 0),
         HWSOCK_EINVAL, "URI on LISTEN");
  static const char *const bad[] = {
      "tcp://localhost:80", "tcp://127.1:80", "tcp://0177.0.0.1:80",
      "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536",
      "http://127.0.0.1:80", "tcp://127.0.0.1:80/", "tcp://%31.0.0.1:80",
      "tcp://127.0.0.1:80x", "tcp://127.0.0.01:80", "tcp://127.0.0.1:080",
      "tcp://[127.0.0.1]:80", "tcp://1.2.3.4.5:80", "tcp:127.0.0.1:80",
      "tcp://user@127.0.0.1:80", "tcp://127.0.0.1:80?x", " tcp://127.0.0.1:80",
      "tcp://256.0.0.1:80", "",
  };
  for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int st = adv_call(a, 0, HWSOCK_OP_CONNECT, 4, 40 + i, 0, 0, bad[i], NULL, 0,
                      32, NULL);
    int want = bad[i][0] ? HWSOCK_EBADURI : HWSOCK_EINVAL; /* "": no URI */
    ADV_CHECK(st == want, "CONNECT '%s': status %d, want %d", bad[i], st, want);
  }
  /* a URI of another family, another type */
  snprintf(uri, sizeof(uri), "tcp6://[::1]:%u", adv_echo_port);
  EXPECT(adv_call(a, 0, HWSOCK_OP_CONNECT, 4, 70, 0, 0, uri, NULL, 0, 32, NULL),
         HWSOCK_EAFNOSUPPORT, "tcp6 URI on a tcp socket");
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", adv_echo_port);
  EXPECT(adv_call(a, 0, HWSOCK_OP_CONNECT, 4, 71, 0, 0, uri, NULL, 0, 32, NULL),
         HWSOCK_EPROTOTYPE, "udp URI on a tcp socket");
  /* after all that, the socket is still undecided and connects */
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", adv_echo_port);
  EXPECT(adv_call(a, 0, HWSOCK_OP_CONNECT, 4, 72, 0, 0, uri, NULL, 0, 32, NULL),
         0, "CONNECT to the echo server");
  return 0;
}

/* Denied destinations, also spelled as the kernel would route them, and
 * later destinations of an offloaded socket (re-check, §6.4). The harness's
 * listener on the denied port counts what reaches it: nothing may. */
static int denied_destinations(adv *a) {
  if (setup(a) < 0)
    return -1;
  char uri[64];
  static const char *const tcp_fmt[] = {"tcp://127.0.0.1:%u", "tcp://0.0.0.0:%u",
                                       "tcp6://[::ffff:127.0.0.1]:%u"};
  for (unsigned i = 0; i < 3; i++) {
    uint32_t id = 10 + i;
    int st = adv_call(a, 0, HWSOCK_OP_OPEN, id, 1,
                      i == 2 ? HWSOCK_AF_INET6 : HWSOCK_AF_INET,
                      HWSOCK_SOCK_STREAM, NULL, NULL, 0, 32, NULL);
    ADV_CHECK(st == 0, "OPEN: %d", st);
    snprintf(uri, sizeof(uri), tcp_fmt[i], adv_deny_port);
    st = adv_call(a, 0, HWSOCK_OP_CONNECT, id, 2, 0, 0, uri, NULL, 0, 32, NULL);
    ADV_CHECK(st == HWSOCK_EACCES, "CONNECT %s: status %d, want EACCES", uri, st);
  }
  /* UDP: offloaded towards the echo port, then sendto the denied port */
  if (open_sock(a, 20, HWSOCK_SOCK_DGRAM) < 0)
    return -1;
  snprintf(uri, sizeof(uri), "udp://127.0.0.1:%u", adv_echo_port);
  EXPECT(adv_call(a, 0, HWSOCK_OP_SEND, 20, 3, 0, 0, uri, "ok", 2, 32, NULL), 0,
         "sendto an allowed port");
  static const char *const udp_fmt[] = {"udp://127.0.0.1:%u", "udp://0.0.0.0:%u",
                                       "udp://127.0.0.1:%u"};
  for (unsigned i = 0; i < 3; i++) {
    snprintf(uri, sizeof(uri), udp_fmt[i], adv_deny_port);
    int st = adv_call(a, 0, i == 2 ? HWSOCK_OP_CONNECT : HWSOCK_OP_SEND, 20, 4,
                      0, 0, uri, "denied", 6, 32, NULL);
    ADV_CHECK(st == HWSOCK_EACCES, "UDP %s %s: status %d, want EACCES",
              i == 2 ? "CONNECT" : "SEND", uri, st);
  }
  /* TCP: connected to the echo server, then a CONNECT elsewhere */
  if (open_sock(a, 21, HWSOCK_SOCK_STREAM) < 0)
    return -1;
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", adv_echo_port);
  EXPECT(adv_call(a, 0, HWSOCK_OP_CONNECT, 21, 5, 0, 0, uri, NULL, 0, 32, NULL),
         0, "CONNECT to the echo server");
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", adv_deny_port);
  EXPECT(adv_call(a, 0, HWSOCK_OP_CONNECT, 21, 6, 0, 0, uri, NULL, 0, 32, NULL),
         HWSOCK_EACCES, "second CONNECT to the denied port");
  return 0;
}

/* FEATURES with bits the device does not offer or without VERSION_1, and
 * QUEUE / START out of order or out of range: refused with a status, the
 * guest stays attached and can then set up properly. */
static int bad_setup(adv *a) {
  vrb *r = &a->q[0];
  ADV_CHECK(vrb_init_at(r, a->mem, a->gpa, a->size / a->nq, QS) == 0, "layout");
  int st = adv_msg(a, HWSOCK_LB_QUEUE, 0, QS, r->desc_gpa, r->avail_gpa,
                   r->used_gpa);
  ADV_CHECK(st == HWSOCK_EINVAL, "QUEUE before FEATURES: %d", st);
  /* the lowest device-class bit the device does not offer (bit 5 was one
   * until it became F_SOFT_ERRORS) */
  uint64_t offered = hwsock_le64_get(&a->cfg.device_features), low = 0;
  for (unsigned i = 0; i < 28 && low == 0; i++)
    if (!(offered & (1ull << i)))
      low = 1ull << i;
  ADV_CHECK(low != 0, "the device offers every device-class bit");
  const uint64_t badf[] = {1ull << 63, HWSOCK_F_VERSION_1 | low,
                           HWSOCK_F_VERSION_1 | (1ull << 40), HWSOCK_F_TCP,
                           0};
  for (unsigned i = 0; i < 5; i++) {
    st = adv_msg(a, HWSOCK_LB_FEATURES, badf[i], 0, 0, 0, 0);
    ADV_CHECK(st == HWSOCK_EINVAL, "FEATURES %#llx: status %d",
              (unsigned long long)badf[i], st);
  }
  st = adv_msg(a, HWSOCK_LB_START, 0, 0, 0, 0, 0);
  ADV_CHECK(st == HWSOCK_EINVAL, "START before setup: %d", st);
  ADV_CHECK(adv_msg(a, HWSOCK_LB_FEATURES, ADV_FEATURES, 0, 0, 0, 0) == 0,
            "FEATURES");
  struct {
    uint64_t q, size, d, av, u;
    int want;
  } bad[] = {
      {0, 0, r->desc_gpa, r->avail_gpa, r->used_gpa, HWSOCK_EINVAL},
      {0, 3, r->desc_gpa, r->avail_gpa, r->used_gpa, HWSOCK_EINVAL},
      {0, 65536, r->desc_gpa, r->avail_gpa, r->used_gpa, HWSOCK_EINVAL},
      {0, QS, r->desc_gpa + 8, r->avail_gpa, r->used_gpa, HWSOCK_EINVAL},
      {0, QS, r->desc_gpa, r->avail_gpa + 1, r->used_gpa, HWSOCK_EINVAL},
      {0, QS, r->desc_gpa, r->avail_gpa, r->used_gpa + 2, HWSOCK_EINVAL},
      {0, QS, a->gpa + a->size - 16, r->avail_gpa, r->used_gpa, HWSOCK_EFAULT},
      {0, QS, 0x1000, r->avail_gpa, r->used_gpa, HWSOCK_EFAULT},
      {0, QS, r->desc_gpa, UINT64_MAX - 1, r->used_gpa, HWSOCK_EFAULT},
      {ADV_MAXQ + 7, QS, r->desc_gpa, r->avail_gpa, r->used_gpa, HWSOCK_EINVAL},
      {1ull << 40, QS, r->desc_gpa, r->avail_gpa, r->used_gpa, HWSOCK_EINVAL},
  };
  for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    st = adv_msg(a, HWSOCK_LB_QUEUE, bad[i].q, bad[i].size, bad[i].d, bad[i].av,
                 bad[i].u);
    ADV_CHECK(st == bad[i].want, "bad QUEUE %u: status %d, want %d", i, st,
              bad[i].want);
  }
  st = adv_msg(a, HWSOCK_LB_START, 0, 0, 0, 0, 0);
  ADV_CHECK(st == HWSOCK_EINVAL, "START with no queue set up: %d", st);
  /* a request kicked before START is not taken; START then kick: it is */
  if (adv_setup(a, ADV_FEATURES, QS) < 0)
    return -1;
  ADV_CHECK(adv_msg(a, HWSOCK_LB_FEATURES, ADV_FEATURES, 0, 0, 0, 0) ==
                HWSOCK_EBUSY,
            "FEATURES after START is EBUSY");
  return adv_healthy(a);
}

/* A zero-length descriptor's address is never used: not a fault. */
static int zero_len_wild_addr(adv *a) {
  if (setup(a) < 0)
    return -1;
  vrb *r = &a->q[0];
  uint64_t g = vrb_alloc(r, 32, 16), w = vrb_alloc(r, 64, 16);
  hwsock_req_hdr *h = vrb_host(r, g);
  hwsock_le16_set(&h->opcode, HWSOCK_OP_GETNAME);
  hwsock_le32_set(&h->sock_id, 7);
  hwsock_le64_set(&h->tag, 0x5a);
  vrb_seg s[4] = {{g, 16, 0}, {0xdead00000000ull, 0, 0}, {g + 16, 16, 0},
                  {w, 64, W}};
  int head = vrb_add_chain(r, s, 4);
  adv_go(a, 0);
  ADV_CHECK(adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) == 0,
            "no completion (reset %d)", a->reset_code);
  const hwsock_resp_hdr *p = vrb_host(r, w);
  ADV_CHECK(hwsock_le32_get(&p->status) == (uint32_t)-HWSOCK_EBADF &&
                hwsock_le64_get(&p->tag) == 0x5a,
            "split header with a wild zero-length descriptor: status %u",
            hwsock_le32_get(&p->status));
  return 0;
}

/* A SEND of more than max_io_len data bytes: EMSGSIZE, nothing sent; one
 * of exactly max_io_len goes through whole (the echo server returns it). */
static int send_over_max_io_len(adv *a) {
  if (setup(a) < 0)
    return -1;
  uint32_t max = hwsock_le32_get(&a->cfg.max_io_len);
  ADV_CHECK(max <= a->size / 8, "max_io_len %u: too big for the case", max);
  if (open_sock(a, 6, HWSOCK_SOCK_STREAM) < 0)
    return -1;
  char uri[40];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", adv_echo_port);
  EXPECT(adv_call(a, 0, HWSOCK_OP_CONNECT, 6, 1, 0, 0, uri, NULL, 0, 32, NULL),
         0, "CONNECT to the echo server");
  uint8_t *data = calloc(1, (size_t)max + 1);
  ADV_CHECK(data != NULL, "memory");
  int st = adv_call(a, 0, HWSOCK_OP_SEND, 6, 2, 0, 0, NULL, data, max + 1, 32,
                    NULL);
  int st2 = adv_call(a, 0, HWSOCK_OP_SEND, 6, 3, 0, 0, NULL, data, max, 32,
                     NULL);
  free(data);
  EXPECT(st, HWSOCK_EMSGSIZE, "SEND of max_io_len + 1 bytes");
  EXPECT(st2, 0, "SEND of max_io_len bytes");
  return 0;
}

const adv_case adv_req_cases[] = {
    {"short_buffers", short_buffers, still_healthy},
    {"unknown_opcodes", unknown_opcodes, still_healthy},
    {"bad_ids", bad_ids, still_healthy},
    {"bad_uris", bad_uris, still_healthy},
    {"denied_destinations", denied_destinations, still_healthy},
    {"bad_setup", bad_setup, still_healthy},
    {"zero_len_wild_addr", zero_len_wild_addr, still_healthy},
    {"send_over_max_io_len", send_over_max_io_len, still_healthy},
    {NULL, NULL, NULL},
};
