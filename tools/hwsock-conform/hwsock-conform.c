/* hwsock-conform: checks a device against the MUSTs of docs/PROTOCOL.md.
 *
 *   hwsock-conform --vmm SOCKET [--echo URI]
 *   hwsock-conform --vhost-user SOCKET [--echo URI]
 *
 * Attaches to the VMM listening on SOCKET over the loopback attach transport
 * (PROTOCOL.md §14), or to a vhost-user back-end as its front-end
 * (conform_vu.c: in-band negotiation, §5.13), with rings written by hand
 * (libhwsock-ringtest, and the raw guest of test/adversarial, adv_raw.c:
 * the same code, not a copy) and runs one check per clause, printing
 *   PASS §N.M clause / FAIL §N.M clause: what happened / SKIP §N.M clause
 * and a summary "hwsock-conform: N/M clauses passed". Exit 0 only when every
 * clause that ran passed. --echo names a TCP echo server the device's
 * policy allows (e.g. tcp://127.0.0.1:7; the soft-error clause also needs
 * udp to its host offloaded); without it the clauses that need
 * a connection are skipped; those of the loopback transport's own messages
 * are skipped over vhost-user, whose NEEDS_RESET (an error eventfd) carries
 * no code. Each clause leaves the device set up and healthy for the next
 * (a RESET where it broke or changed it). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adversarial/adv.h"
#include "conform_vu.h"

/* adv_raw.c's globals (the raw guest's command line in adv_guest). */
unsigned adv_echo_port, adv_deny_port;
const char *adv_vmm_path;

#define QS 64u
#define W HWSOCK_VRING_DESC_F_WRITE

static adv the_dev; /* large (per-head tables): not on the stack */
static const char *echo_uri;
static int vhost; /* --vhost-user: the transport is vhost-user */
static char why[256];
static unsigned n_pass, n_run;
static int n_fail;

static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  return -1;
}
#define CK(cond, ...)                                                        \
  do {                                                                       \
    if (!(cond))                                                             \
      return fail(__VA_ARGS__);                                              \
  } while (0)

static uint64_t offered(adv *a) {
  return hwsock_le64_get(&a->cfg.device_features);
}
static uint64_t features(adv *a) { return offered(a) & ADV_FEATURES; }

/* The transport's reset and setup (loopback: RESET, FEATURES, QUEUE,
 * START; vhost-user: ring stop and start, NEGOTIATE). 0 / -1. */
static int reset_setup(adv *a, uint64_t f, unsigned qsize) {
  return vhost ? cvu_reset_setup(a, f, qsize) : adv_reset_setup(a, f, qsize);
}
/* The device's NEEDS_RESET: its code (loopback), 0 (vhost-user's error
 * eventfd carries none), -1 when none came in timeout_ms. */
static int wait_reset(adv *a, int timeout_ms) {
  return vhost ? cvu_wait_reset(a, timeout_ms) : adv_wait_reset(a, timeout_ms);
}
/* A NEEDS_RESET code is what was wanted (any code over vhost-user). */
static int code_ok(int code, int want) {
  return code >= 0 && (vhost || code == want);
}

/* RESET and the full setup again, quietly (adv_setup reports on stderr). */
static int fresh(adv *a) {
  return reset_setup(a, features(a), QS) < 0 ? fail("RESET + setup failed")
                                             : 0;
}

/* One request on queue 0 whose header then gets flags / reserved patched;
 * returns the response status (0 or negative), 1 when no completion came.
 * *used and *resp (a copy of the response header) when not NULL. */
static int call_raw(adv *a, uint16_t op, uint32_t id, uint64_t tag,
                    uint32_t arg0, uint32_t arg1, uint16_t flags,
                    uint32_t reserved, const char *uri, uint32_t uri_len,
                    uint32_t wlen, uint32_t *used, hwsock_resp_hdr *resp) {
  hwsock_ringtest *r = &a->q[0];
  size_t mark = hwsock_ringtest_mark(r);
  int head = adv_req(a, 0, op, id, tag, arg0, arg1, uri, uri_len, NULL, 0,
                     wlen);
  if (head < 0) {
    hwsock_ringtest_release(r, mark);
    return 1;
  }
  hwsock_req_hdr *h = hwsock_ringtest_host(r, hwsock_le64_get(&r->desc[head].addr));
  hwsock_le16_set(&h->flags, flags);
  hwsock_le32_set(&h->reserved, reserved);
  if (wlen > 0)
    memset(hwsock_ringtest_host(r, a->resp[0][head]), 0xa5, wlen);
  adv_go(a, 0);
  int st = 1;
  if (adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) == 0) {
    const hwsock_resp_hdr *p = adv_resp(a, 0, (uint16_t)head);
    if (used != NULL)
      *used = a->done[0][head].len;
    if (resp != NULL)
      memcpy(resp, p, sizeof(*resp));
    st = -(int)hwsock_le32_get(&p->status);
  }
  hwsock_ringtest_release(r, mark);
  return st;
}

static int call(adv *a, uint16_t op, uint32_t id, uint32_t arg0,
                uint32_t arg1) {
  return call_raw(a, op, id, 0x7a6, arg0, arg1, 0, 0, NULL, 0, 64, NULL,
                  NULL);
}

/* A status for a message; two calls may share one printf. */
static const char *en(int st) {
  static char b[2][32];
  static unsigned k;
  if (st == 1)
    return "no completion";
  if (st == 0)
    return "success";
  char *p = b[k++ % 2];
  snprintf(p, sizeof(b[0]), "%s", hwsock_err_name(st));
  return p;
}

#define EXPECT_ST(st, want)                                                  \
  do {                                                                       \
    int st_ = (st);                                                          \
    CK(st_ == (want), "status %s, want %s", en(st_), en(want));              \
  } while (0)

/* ---- §3 / §14: the HELLO reply ------------------------------------------ */

static int c_magic(adv *a) {
  uint32_t m = hwsock_le32_get(&a->cfg.magic);
  CK(m == HWSOCK_CONFIG_MAGIC, "magic %#x", m);
  return 0;
}
static int c_version(adv *a) {
  uint32_t v = hwsock_le32_get(&a->cfg.protocol_version);
  CK(v == HWSOCK_PROTOCOL_VERSION, "protocol_version %u", v);
  return 0;
}
static int c_nq(adv *a) {
  unsigned n = hwsock_le16_get(&a->cfg.num_queues);
  CK(n == a->nq, "config num_queues %u, HELLO c %u", n, a->nq);
  return 0;
}
static int c_v1(adv *a) {
  CK(offered(a) & HWSOCK_F_VERSION_1, "device_features %#llx",
     (unsigned long long)offered(a));
  return 0;
}

/* ---- §2.3 / §2.5: setup refusals (before any FEATURES) ------------------- */

static int c_queue_before_features(adv *a) {
  hwsock_ringtest *r = &a->q[0];
  CK(hwsock_ringtest_init_at(r, a->mem, a->gpa, a->size / a->nq & ~(size_t)4095, QS) == 0,
     "vring layout");
  EXPECT_ST(adv_msg(a, HWSOCK_LB_QUEUE, 0, QS, r->desc_gpa, r->avail_gpa,
                    r->used_gpa),
            HWSOCK_EINVAL);
  return 0;
}
static int c_feat_unoffered(adv *a) {
  uint64_t bit = 0;
  for (unsigned i = 0; i < 64 && bit == 0; i++)
    if (!(offered(a) & (1ull << i)))
      bit = 1ull << i;
  CK(bit != 0, "the device offers all 64 bits");
  EXPECT_ST(adv_msg(a, HWSOCK_LB_FEATURES, features(a) | bit, 0, 0, 0, 0),
            HWSOCK_EINVAL);
  return 0;
}
static int c_feat_no_v1(adv *a) {
  EXPECT_ST(adv_msg(a, HWSOCK_LB_FEATURES, features(a) & ~HWSOCK_F_VERSION_1,
                    0, 0, 0, 0),
            HWSOCK_EINVAL);
  return 0;
}
static int c_feat_ok(adv *a) {
  EXPECT_ST(adv_msg(a, HWSOCK_LB_FEATURES, features(a), 0, 0, 0, 0), 0);
  return 0;
}

/* QUEUE 0 with the given deviations from a good layout; its status. */
static int queue0(adv *a, uint64_t idx, uint64_t size, uint64_t ddesc,
                  uint64_t davail) {
  hwsock_ringtest *r = &a->q[0];
  return adv_msg(a, HWSOCK_LB_QUEUE, idx, size, r->desc_gpa + ddesc,
                 r->avail_gpa + davail, r->used_gpa);
}
static int c_q_index(adv *a) {
  EXPECT_ST(queue0(a, a->nq, QS, 0, 0), HWSOCK_EINVAL);
  return 0;
}
static int c_q_size0(adv *a) {
  EXPECT_ST(queue0(a, 0, 0, 0, 0), HWSOCK_EINVAL);
  return 0;
}
static int c_q_pow2(adv *a) {
  EXPECT_ST(queue0(a, 0, QS - 1, 0, 0), HWSOCK_EINVAL);
  return 0;
}
static int c_q_max(adv *a) {
  unsigned max = hwsock_le16_get(&a->cfg.max_queue_size);
  CK(max < 32768, "max_queue_size %u leaves nothing above it", max);
  EXPECT_ST(queue0(a, 0, (uint64_t)max * 2, 0, 0), HWSOCK_EINVAL);
  return 0;
}
static int c_q_align(adv *a) {
  EXPECT_ST(queue0(a, 0, QS, 8, 0), HWSOCK_EINVAL);
  return 0;
}
static int c_q_region(adv *a) {
  EXPECT_ST(adv_msg(a, HWSOCK_LB_QUEUE, 0, QS, a->gpa + a->size + 4096,
                    a->q[0].avail_gpa, a->q[0].used_gpa),
            HWSOCK_EFAULT);
  return 0;
}
static int c_start_incomplete(adv *a) {
  EXPECT_ST(adv_msg(a, HWSOCK_LB_START, 0, 0, 0, 0, 0), HWSOCK_EINVAL);
  return 0;
}

/* Queues set up, a request made available and kicked, no START: nothing
 * is written. Then START and the device healthy. */
static int c_kick_before_start(adv *a) {
  int st = adv_msg(a, HWSOCK_LB_RESET, 0, 0, 0, 0, 0);
  CK(st == 0, "RESET: %s", en(st));
  CK(adv_msg(a, HWSOCK_LB_FEATURES, features(a), 0, 0, 0, 0) == 0,
     "FEATURES refused");
  size_t slice = (a->size / a->nq) & ~(size_t)4095;
  for (unsigned q = 0; q < a->nq; q++) {
    hwsock_ringtest *r = &a->q[q];
    CK(hwsock_ringtest_init_at(r, a->mem + q * slice, a->gpa + q * slice, slice, QS) == 0,
       "vring layout");
    memset(a->done[q], 0, sizeof(a->done[q]));
    st = adv_msg(a, HWSOCK_LB_QUEUE, q, QS, r->desc_gpa, r->avail_gpa,
                 r->used_gpa);
    CK(st == 0, "QUEUE %u: %s", q, en(st));
  }
  int head = adv_req(a, 0, HWSOCK_OP_OPEN, 5, 1, HWSOCK_AF_INET,
                     HWSOCK_SOCK_STREAM, NULL, 0, NULL, 0, 32);
  CK(head >= 0, "request");
  adv_go(a, 0);
  CK(adv_used_still(a, 0, 0, 300) == 0, "a request completed before START");
  return fresh(a);
}

/* ---- §4 / §10: requests -------------------------------------------------- */

static int c_flags(adv *a) {
  EXPECT_ST(call_raw(a, HWSOCK_OP_OPEN, 1, 2, HWSOCK_AF_INET,
                     HWSOCK_SOCK_STREAM, 1, 0, NULL, 0, 64, NULL, NULL),
            HWSOCK_EINVAL);
  return 0;
}
static int c_reserved(adv *a) {
  EXPECT_ST(call_raw(a, HWSOCK_OP_OPEN, 1, 3, HWSOCK_AF_INET,
                     HWSOCK_SOCK_STREAM, 0, 1, NULL, 0, 64, NULL, NULL),
            HWSOCK_EINVAL);
  return 0;
}
static int c_opcode(adv *a) {
  EXPECT_ST(call(a, HWSOCK_OP_MAX_ + 1, 1, 0, 0), HWSOCK_ENOSYS);
  EXPECT_ST(call(a, 0, 1, 0, 0), HWSOCK_ENOSYS);
  return 0;
}
static int c_id_range(adv *a) {
  uint32_t max = hwsock_le32_get(&a->cfg.max_sockets);
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, max, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM),
            HWSOCK_EBADF);
  return 0;
}
static int c_id_free(adv *a) {
  EXPECT_ST(call(a, HWSOCK_OP_CLOSE, 7, 0, 0), HWSOCK_EBADF);
  return 0;
}
static int c_open_twice(adv *a) {
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, 8, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  int st = call(a, HWSOCK_OP_OPEN, 8, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  (void)call(a, HWSOCK_OP_CLOSE, 8, 0, 0);
  EXPECT_ST(st, HWSOCK_EEXIST);
  return 0;
}
static int c_err_header(adv *a) {
  hwsock_resp_hdr h;
  uint32_t used = 0;
  int st = call_raw(a, HWSOCK_OP_CLOSE, 9, 0x1122334455667788ull, 0, 0, 0, 0,
                    NULL, 0, 64, &used, &h);
  EXPECT_ST(st, HWSOCK_EBADF);
  CK(hwsock_le64_get(&h.tag) == 0x1122334455667788ull, "tag not echoed");
  CK(hwsock_le32_get(&h.len) == 0 && hwsock_le32_get(&h.flags) == 0 &&
         hwsock_le32_get(&h.uri_len) == 0 && hwsock_le32_get(&h.val) == 0 &&
         hwsock_le32_get(&h.reserved) == 0,
     "len %u flags %u uri_len %u val %u reserved %u", hwsock_le32_get(&h.len),
     hwsock_le32_get(&h.flags), hwsock_le32_get(&h.uri_len),
     hwsock_le32_get(&h.val), hwsock_le32_get(&h.reserved));
  return 0;
}
static int c_used_err(adv *a) {
  uint32_t used = 0;
  EXPECT_ST(call_raw(a, HWSOCK_OP_CLOSE, 9, 4, 0, 0, 0, 0, NULL, 0, 64, &used,
                     NULL),
            HWSOCK_EBADF);
  CK(used == 32, "used len %u", used);
  return 0;
}
static int c_used_ok(adv *a) {
  uint32_t used = 0;
  EXPECT_ST(call_raw(a, HWSOCK_OP_OPEN, 10, 5, HWSOCK_AF_INET,
                     HWSOCK_SOCK_STREAM, 0, 0, NULL, 0, 64, &used, NULL),
            0);
  (void)call(a, HWSOCK_OP_CLOSE, 10, 0, 0);
  CK(used == 32, "used len %u", used);
  return 0;
}
static int c_used_short(adv *a) {
  hwsock_ringtest *r = &a->q[0];
  size_t mark = hwsock_ringtest_mark(r);
  uint64_t g = hwsock_ringtest_alloc(r, 32, 16), w = hwsock_ringtest_alloc(r, 64, 16);
  CK(g != 0 && w != 0, "scratch");
  hwsock_req_hdr *h = hwsock_ringtest_host(r, g);
  hwsock_le16_set(&h->opcode, HWSOCK_OP_OPEN);
  hwsock_le32_set(&h->sock_id, 11);
  hwsock_le32_set(&h->arg0, HWSOCK_AF_INET);
  hwsock_le32_set(&h->arg1, HWSOCK_SOCK_STREAM);
  memset(hwsock_ringtest_host(r, w), 0xaa, 64);
  hwsock_ringtest_seg s[2] = {{g, 32, 0}, {w, 31, W}};
  int head = hwsock_ringtest_add_chain(r, s, 2);
  adv_go(a, 0);
  CK(adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) == 0, "no completion");
  uint32_t used = a->done[0][head].len;
  const uint8_t *p = hwsock_ringtest_host(r, w);
  int written = 0;
  for (unsigned i = 0; i < 64; i++)
    written |= p[i] != 0xaa;
  hwsock_ringtest_release(r, mark);
  CK(used == 0 && !written, "used len %u%s", used,
     written ? ", bytes written" : "");
  /* not performed: id 11 is still free */
  EXPECT_ST(call(a, HWSOCK_OP_CLOSE, 11, 0, 0), HWSOCK_EBADF);
  return 0;
}
static int c_uri_max(adv *a) {
  uint32_t max = hwsock_le32_get(&a->cfg.max_uri_len);
  CK(max < 65536, "max_uri_len %u too large to test", max);
  char *uri = malloc(max + 1);
  CK(uri != NULL, "memory");
  memset(uri, 'a', max + 1);
  int st = call_raw(a, HWSOCK_OP_CONNECT, 1, 6, 0, 0, 0, 0, uri, max + 1, 64,
                    NULL, NULL);
  free(uri);
  EXPECT_ST(st, HWSOCK_ENAMETOOLONG);
  return 0;
}
static int c_connect(adv *a) {
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, 12, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  int st = call_raw(a, HWSOCK_OP_CONNECT, 12, 7, 0, 0, 0, 0, echo_uri,
                    (uint32_t)strlen(echo_uri), 64, NULL, NULL);
  (void)call(a, HWSOCK_OP_CLOSE, 12, 0, 0);
  EXPECT_ST(st, 0);
  return 0;
}

/* ---- §2.8: a broken ring ------------------------------------------------ */

static int c_broken(adv *a) {
  hwsock_ringtest *r = &a->q[0];
  uint16_t idx = hwsock_ringtest_used_idx(r);
  hwsock_ringtest_put_head(r, (uint16_t)QS);
  adv_go(a, 0);
  int code = wait_reset(a, ADV_WAIT_MS);
  CK(code_ok(code, HWSOCK_RESET_HEAD_INDEX), "NEEDS_RESET %s (code %d)",
     code < 0 ? "not sent" : "with another code", code);
  /* ignored until RESET: a good request is not taken */
  int head = adv_req(a, 0, HWSOCK_OP_OPEN, 13, 1, HWSOCK_AF_INET,
                     HWSOCK_SOCK_STREAM, NULL, 0, NULL, 0, 32);
  CK(head >= 0, "request");
  adv_go(a, 0);
  CK(adv_used_still(a, 0, idx, 300) == 0, "the used ring moved after NEEDS_RESET");
  return 0;
}
static int c_reset(adv *a) {
  if (fresh(a) < 0)
    return -1;
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, 13, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  EXPECT_ST(call(a, HWSOCK_OP_CLOSE, 13, 0, 0), 0);
  return 0;
}

/* ---- §2.8: every hostile layout of libhwsock-ringtest ------------------ */

static int clause_arg; /* the fault of the clause running (fault clauses) */

static int c_fault(adv *a) {
  if (fresh(a) < 0)
    return -1;
  hwsock_ringtest *r = &a->q[0];
  uint16_t idx = hwsock_ringtest_used_idx(r);
  int want = hwsock_ringtest_add_fault(r, clause_arg);
  CK(want > 0, "layout: %s", en(want));
  if (strncmp(hwsock_ringtest_fault_name(clause_arg), "indirect", 8) == 0 &&
      !(features(a) & HWSOCK_F_INDIRECT_DESC))
    want = HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED;
  adv_go(a, 0);
  int code = wait_reset(a, ADV_WAIT_MS);
  CK(code_ok(code, want), "NEEDS_RESET %s (code %d, want %d)",
     code < 0 ? "not sent" : "with another code", code, want);
  CK(hwsock_ringtest_used_idx(r) == idx, "the used ring moved");
  return fresh(a);
}

/* ---- §16: the event queue ----------------------------------------------- */

#define EVQ_BUF 512u /* event buffer bytes (>= HWSOCK_EV_BUF_MIN) */

static unsigned evq(const adv *a) { return a->nq - 1; }

/* RESET and setup with the event queue negotiated. */
static int fresh_evq(adv *a) {
  return reset_setup(a, features(a) | HWSOCK_F_EVENT_QUEUE, QS) < 0
             ? fail("RESET + setup with EVENT_QUEUE failed")
             : 0;
}

/* Makes a chain of segs available on the event queue and kicks: its head
 * (the first writable segment's gpa remembered in resp[evq][head]). */
static int post(adv *a, const hwsock_ringtest_seg *segs, unsigned n) {
  unsigned q = evq(a);
  int head = hwsock_ringtest_add_chain(&a->q[q], segs, n);
  if (head < 0)
    return head;
  for (unsigned i = 0; i < n; i++)
    if (segs[i].flags & W) {
      a->resp[q][head] = segs[i].gpa;
      break;
    }
  adv_go(a, q);
  return head;
}

/* Posts one empty event buffer of len writable bytes: its head or -1. */
static int post_buf(adv *a, uint32_t len) {
  uint64_t g = hwsock_ringtest_alloc(&a->q[evq(a)], len, 16);
  if (g == 0)
    return -1;
  hwsock_ringtest_seg s = {g, len, W};
  return post(a, &s, 1);
}

static int c_evq_offer(adv *a) {
  CK(!(offered(a) & HWSOCK_F_EVENT_QUEUE) || a->nq >= 2,
     "EVENT_QUEUE offered with num_queues %u", a->nq);
  return 0;
}

static int c_credit_enosys(adv *a) {
  if (fresh(a) < 0)
    return -1;
  EXPECT_ST(call(a, HWSOCK_OP_CREDIT, 1, 100, 0), HWSOCK_ENOSYS);
  return 0;
}

static int c_credit_ok(adv *a) {
  if (fresh_evq(a) < 0)
    return -1;
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, 20, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  hwsock_resp_hdr h;
  uint32_t used = 0;
  int st = call_raw(a, HWSOCK_OP_CREDIT, 20, 0x51, 4096, 0, 0, 0, NULL, 0, 64,
                    &used, &h);
  (void)call(a, HWSOCK_OP_CLOSE, 20, 0, 0);
  EXPECT_ST(st, 0);
  CK(hwsock_le32_get(&h.val) == 0 && used == 32, "val %u, used len %u",
     hwsock_le32_get(&h.val), used);
  return 0;
}

static int c_credit_arg1(adv *a) {
  if (fresh_evq(a) < 0)
    return -1;
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, 21, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  int st = call(a, HWSOCK_OP_CREDIT, 21, 0, 0x80000000u);
  (void)call(a, HWSOCK_OP_CLOSE, 21, 0, 0);
  EXPECT_ST(st, HWSOCK_EINVAL);
  return 0;
}

static int c_credit_max(adv *a) {
  if (fresh_evq(a) < 0)
    return -1;
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, 22, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  int st1 = call(a, HWSOCK_OP_CREDIT, 22, HWSOCK_CREDIT_MAX, 0);
  int st2 = call(a, HWSOCK_OP_CREDIT, 22, 1, 0);
  (void)call(a, HWSOCK_OP_CLOSE, 22, 0, 0);
  EXPECT_ST(st1, 0);
  EXPECT_ST(st2, HWSOCK_ERANGE);
  return 0;
}

static int c_credit_uri(adv *a) {
  if (fresh_evq(a) < 0)
    return -1;
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, 23, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  const char *uri = "tcp://127.0.0.1:9";
  int st = call_raw(a, HWSOCK_OP_CREDIT, 23, 0x52, 1, 0, 0, 0, uri,
                    (uint32_t)strlen(uri), 64, NULL, NULL);
  (void)call(a, HWSOCK_OP_CLOSE, 23, 0, 0);
  EXPECT_ST(st, HWSOCK_EINVAL);
  return 0;
}

static int c_evbuf_idle(adv *a) {
  if (fresh_evq(a) < 0)
    return -1;
  for (unsigned i = 0; i < 4; i++)
    CK(post_buf(a, EVQ_BUF) >= 0, "scratch");
  CK(adv_used_still(a, evq(a), 0, 300) == 0,
     "a buffer was used with no event to carry");
  return 0;
}

/* A connected socket (id) on an event-queue device with 8 buffers posted.
 * Returns the first buffer's head, or -1. */
static int evq_connected(adv *a, uint32_t id) {
  if (fresh_evq(a) < 0)
    return -1;
  int first = -1;
  for (unsigned i = 0; i < 8; i++) {
    int h = post_buf(a, EVQ_BUF);
    CK(h >= 0, "scratch");
    if (first < 0)
      first = h;
  }
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, id, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  EXPECT_ST(call_raw(a, HWSOCK_OP_CONNECT, id, 0x53, 0, 0, 0, 0, echo_uri,
                     (uint32_t)strlen(echo_uri), 64, NULL, NULL),
            0);
  return first;
}

/* Waits for the next event buffer (heads are used in posting order): its
 * header copied to *ev, its payload to data (up to EVQ_BUF - 32 bytes),
 * the used len to *used. 0 or -1. */
static uint16_t ev_next; /* next head expected on the event queue */
static int next_event(adv *a, hwsock_event *ev, uint8_t *data,
                      uint32_t *used) {
  unsigned q = evq(a);
  CK(adv_wait_head(a, q, ev_next, ADV_WAIT_MS) == 0, "no event (head %u)",
     ev_next);
  *used = a->done[q][ev_next].len;
  const uint8_t *p = hwsock_ringtest_host(&a->q[q], a->resp[q][ev_next]);
  memcpy(ev, p, sizeof(*ev));
  if (data != NULL)
    memcpy(data, p + sizeof(*ev), EVQ_BUF - sizeof(*ev));
  ev_next = (uint16_t)((ev_next + 1) % QS);
  return 0;
}

/* A bad event buffer (segs, in the setup's scratch) made available before
 * a good one, then an event (WRITABLE of a connected socket): the device
 * pops the bad one first, must hand it back with used len 0, and put the
 * event into the good one. */
static int bad_buffer(adv *a, uint32_t id, const hwsock_ringtest_seg *segs,
                      unsigned n) {
  int bad = post(a, segs, n);
  int good = post_buf(a, EVQ_BUF);
  CK(bad >= 0 && good >= 0, "scratch");
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, id, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM), 0);
  EXPECT_ST(call_raw(a, HWSOCK_OP_CONNECT, id, 0x55, 0, 0, 0, 0, echo_uri,
                     (uint32_t)strlen(echo_uri), 64, NULL, NULL),
            0);
  EXPECT_ST(call(a, HWSOCK_OP_CREDIT, id, 0, HWSOCK_WATCH_WRITE), 0);
  unsigned q = evq(a);
  int st = adv_wait_head(a, q, (uint16_t)good, ADV_WAIT_MS);
  (void)call(a, HWSOCK_OP_CLOSE, id, 0, 0);
  CK(st == 0, "no event in the good buffer%s",
     a->reset_code >= 0 ? " (NEEDS_RESET)" : "");
  adv_reap(a, q);
  CK(a->done[q][bad].valid, "the bad buffer was not handed back");
  CK(a->done[q][bad].len == 0, "used len %u for the bad buffer",
     a->done[q][bad].len);
  return 0;
}

static int c_evbuf_readable(adv *a) {
  if (fresh_evq(a) < 0)
    return -1;
  hwsock_ringtest *r = &a->q[evq(a)];
  uint64_t g = hwsock_ringtest_alloc(r, 32, 16);
  uint64_t w = hwsock_ringtest_alloc(r, EVQ_BUF, 16);
  CK(g != 0 && w != 0, "scratch");
  hwsock_ringtest_seg s[2] = {{g, 32, 0}, {w, EVQ_BUF, W}};
  return bad_buffer(a, 26, s, 2);
}

static int c_evbuf_small(adv *a) {
  if (fresh_evq(a) < 0)
    return -1;
  hwsock_ringtest *r = &a->q[evq(a)];
  uint64_t w = hwsock_ringtest_alloc(r, HWSOCK_EV_BUF_MIN, 16);
  CK(w != 0, "scratch");
  hwsock_ringtest_seg s = {w, HWSOCK_EV_BUF_MIN - 1, W};
  return bad_buffer(a, 27, &s, 1);
}

static int c_evq_data(adv *a) {
  int first = evq_connected(a, 24);
  if (first < 0)
    return -1;
  ev_next = (uint16_t)first;
  EXPECT_ST(call(a, HWSOCK_OP_CREDIT, 24, 5, 0), 0);
  static const char msg[] = "0123456789";
  EXPECT_ST(adv_call(a, 0, HWSOCK_OP_SEND, 24, 0x54, 0, 0, NULL, msg, 10, 32,
                     NULL),
            0);
  hwsock_event ev;
  uint8_t data[EVQ_BUF];
  uint32_t used = 0, got = 0;
  unsigned q = evq(a);
  /* the window bounds every event: 5 bytes, then nothing until CREDIT */
  while (got < 5) {
    if (next_event(a, &ev, data, &used) < 0)
      return -1;
    uint32_t len = hwsock_le32_get(&ev.len);
    CK(hwsock_le32_get(&ev.sock_id) == 24 &&
           hwsock_le16_get(&ev.type) == HWSOCK_EV_DATA &&
           hwsock_le16_get(&ev.flags) == 0,
       "event sock_id %u type %u flags %u", hwsock_le32_get(&ev.sock_id),
       hwsock_le16_get(&ev.type), hwsock_le16_get(&ev.flags));
    CK(len > 0 && len <= 5 - got, "DATA len %u with a window of %u", len,
       5 - got);
    CK(used == 32 + len, "used len %u for DATA len %u", used, len);
    CK(hwsock_le32_get(&ev.window) == 5 - got - len,
       "window %u after %u of 5 bytes", hwsock_le32_get(&ev.window),
       got + len);
    CK(hwsock_le32_get(&ev.reserved) == 0 && hwsock_le32_get(&ev.status) == 0,
       "reserved %u status %u", hwsock_le32_get(&ev.reserved),
       hwsock_le32_get(&ev.status));
    CK(memcmp(data, msg + got, len) == 0, "DATA bytes differ from the stream");
    got += len;
  }
  CK(adv_used_still(a, q, hwsock_ringtest_used_idx(&a->q[q]), 300) == 0,
     "an event with the window at 0");
  /* a socket with a window takes no RECV */
  EXPECT_ST(call(a, HWSOCK_OP_CREDIT, 24, 100, 0), 0);
  while (got < 10) {
    if (next_event(a, &ev, data, &used) < 0)
      return -1;
    uint32_t len = hwsock_le32_get(&ev.len);
    CK(hwsock_le16_get(&ev.type) == HWSOCK_EV_DATA && len > 0 &&
           len <= 10 - got && memcmp(data, msg + got, len) == 0,
       "second DATA: type %u len %u", hwsock_le16_get(&ev.type), len);
    got += len;
  }
  int st = call(a, HWSOCK_OP_RECV, 24, 0, 0);
  (void)call(a, HWSOCK_OP_CLOSE, 24, 0, 0);
  EXPECT_ST(st, HWSOCK_EBUSY);
  return 0;
}

static int c_evq_writable(adv *a) {
  int first = evq_connected(a, 25);
  if (first < 0)
    return -1;
  ev_next = (uint16_t)first;
  EXPECT_ST(call(a, HWSOCK_OP_CREDIT, 25, 0, HWSOCK_WATCH_WRITE), 0);
  hwsock_event ev;
  uint32_t used = 0;
  if (next_event(a, &ev, NULL, &used) < 0)
    return -1;
  CK(hwsock_le32_get(&ev.sock_id) == 25 &&
         hwsock_le16_get(&ev.type) == HWSOCK_EV_WRITABLE &&
         hwsock_le32_get(&ev.len) == 0 && used == 32,
     "event sock_id %u type %u len %u, used len %u",
     hwsock_le32_get(&ev.sock_id), hwsock_le16_get(&ev.type),
     hwsock_le32_get(&ev.len), used);
  unsigned q = evq(a);
  int still = adv_used_still(a, q, hwsock_ringtest_used_idx(&a->q[q]), 300);
  (void)call(a, HWSOCK_OP_CLOSE, 25, 0, 0);
  CK(still == 0, "a second WRITABLE event from a one-shot watch");
  return 0;
}

/* ---- §16.9: soft errors of datagram sockets ----------------------------- */

static int c_soft_offer(adv *a) {
  CK(!(offered(a) & HWSOCK_F_SOFT_ERRORS) ||
         (offered(a) & HWSOCK_F_EVENT_QUEUE),
     "SOFT_ERRORS offered without EVENT_QUEUE");
  return 0;
}

/* The --echo host as a datagram URI prefix ("udp://HOST:" or
 * "udp6://[HOST]:"), into b. 0 or -1. */
static int udp_prefix(char *b, size_t n) {
  const char *rest = NULL, *scheme = NULL;
  if (strncmp(echo_uri, "tcp://", 6) == 0) {
    rest = echo_uri + 6;
    scheme = "udp://";
  } else if (strncmp(echo_uri, "tcp6://", 7) == 0) {
    rest = echo_uri + 7;
    scheme = "udp6://";
  }
  const char *colon = rest ? strrchr(rest, ':') : NULL;
  CK(colon != NULL, "--echo %s: not tcp://HOST:PORT", echo_uri);
  int k = snprintf(b, n, "%s%.*s:", scheme, (int)(colon - rest), rest);
  CK(k > 0 && (size_t)k < n, "--echo URI too long");
  return 0;
}

/* The local port of socket id (GETNAME), or -1. */
static long local_port(adv *a, uint32_t id) {
  hwsock_ringtest *r = &a->q[0];
  size_t mark = hwsock_ringtest_mark(r);
  long port = -1;
  int head = adv_req(a, 0, HWSOCK_OP_GETNAME, id, 0x57, 0, 0, NULL, 0, NULL,
                     0, 32 + HWSOCK_URI_AREA_MIN + 64);
  if (head >= 0) {
    adv_go(a, 0);
    if (adv_wait_head(a, 0, (uint16_t)head, ADV_WAIT_MS) == 0) {
      const uint8_t *p = hwsock_ringtest_host(r, a->resp[0][head]);
      const hwsock_resp_hdr *h = (const hwsock_resp_hdr *)p;
      uint32_t ul = hwsock_le32_get(&h->uri_len);
      char uri[HWSOCK_URI_AREA_MIN + 64 + 1];
      if (hwsock_le32_get(&h->status) == 0 && ul < sizeof(uri)) {
        memcpy(uri, p + 32, ul);
        uri[ul] = 0;
        const char *c = strrchr(uri, ':');
        if (c != NULL)
          port = strtol(c + 1, NULL, 10);
      }
    }
  }
  hwsock_ringtest_release(r, mark);
  return port;
}

/* A connected datagram socket refused by ICMP (a port closed on the device's
 * host): with SOFT_ERRORS negotiated, one ERROR event with HWSOCK_EV_F_SOFT
 * and a status, the window unchanged; then a datagram to the same socket
 * still arrives as DATA. All sockets through the device: B the sender, C
 * bound and closed again (its port is then closed), A the socket tested. */
static int c_evq_soft(adv *a) {
  enum { A = 40, B = 41, C = 42 };
  char pre[200], uri[256]; /* room for the prefix and a port */
  if (udp_prefix(pre, sizeof(pre)) < 0)
    return -1;
  if (reset_setup(a, features(a) | HWSOCK_F_EVENT_QUEUE | HWSOCK_F_SOFT_ERRORS,
                  QS) < 0)
    return fail("RESET + setup with EVENT_QUEUE and SOFT_ERRORS failed");
  int first = -1;
  for (unsigned i = 0; i < 8; i++) {
    int h = post_buf(a, EVQ_BUF);
    CK(h >= 0, "scratch");
    if (first < 0)
      first = h;
  }
  ev_next = (uint16_t)first;
  snprintf(uri, sizeof(uri), "%s0", pre);
  long pb, pc, pa;
  for (uint32_t id = B; id <= C; id++) {
    EXPECT_ST(call(a, HWSOCK_OP_OPEN, id, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM),
              0);
    EXPECT_ST(adv_call(a, 0, HWSOCK_OP_BIND, id, 0x58, 0, 0, uri, NULL, 0, 64,
                       NULL),
              0);
  }
  pb = local_port(a, B);
  pc = local_port(a, C);
  CK(pb > 0 && pc > 0, "GETNAME of a bound datagram socket");
  EXPECT_ST(call(a, HWSOCK_OP_CLOSE, C, 0, 0), 0);
  EXPECT_ST(call(a, HWSOCK_OP_OPEN, A, HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM), 0);
  snprintf(uri, sizeof(uri), "%s%ld", pre, pc);
  EXPECT_ST(adv_call(a, 0, HWSOCK_OP_CONNECT, A, 0x59, 0, 0, uri, NULL, 0, 64,
                     NULL),
            0);
  EXPECT_ST(call(a, HWSOCK_OP_CREDIT, A, 4, 0), 0);
  EXPECT_ST(adv_call(a, 0, HWSOCK_OP_SEND, A, 0x5a, 0, 0, NULL, "q", 1, 64,
                     NULL),
            0);
  hwsock_event ev;
  uint8_t data[EVQ_BUF];
  uint32_t used = 0;
  if (next_event(a, &ev, data, &used) < 0)
    return -1;
  CK(hwsock_le32_get(&ev.sock_id) == A &&
         hwsock_le16_get(&ev.type) == HWSOCK_EV_ERROR &&
         hwsock_le16_get(&ev.flags) == HWSOCK_EV_F_SOFT &&
         hwsock_le32_get(&ev.status) != 0 && used == 32,
     "event sock_id %u type %u flags %u status %u, used len %u",
     hwsock_le32_get(&ev.sock_id), hwsock_le16_get(&ev.type),
     hwsock_le16_get(&ev.flags), hwsock_le32_get(&ev.status), used);
  CK(hwsock_le32_get(&ev.window) == 4, "window %u after a soft error, want 4",
     hwsock_le32_get(&ev.window));
  /* the read side goes on: B's datagram to A arrives */
  pa = local_port(a, A);
  CK(pa > 0, "GETNAME of the refused socket");
  snprintf(uri, sizeof(uri), "%s%ld", pre, pb);
  EXPECT_ST(adv_call(a, 0, HWSOCK_OP_CONNECT, A, 0x5b, 0, 0, uri, NULL, 0, 64,
                     NULL),
            0);
  snprintf(uri, sizeof(uri), "%s%ld", pre, pa);
  EXPECT_ST(adv_call(a, 0, HWSOCK_OP_SEND, B, 0x5c, 0, 0, uri, "answer", 6,
                     64, NULL),
            0);
  if (next_event(a, &ev, data, &used) < 0)
    return -1;
  (void)call(a, HWSOCK_OP_CLOSE, A, 0, 0);
  (void)call(a, HWSOCK_OP_CLOSE, B, 0, 0);
  CK(hwsock_le32_get(&ev.sock_id) == A &&
         hwsock_le16_get(&ev.type) == HWSOCK_EV_DATA &&
         hwsock_le32_get(&ev.len) == 6 &&
         memcmp(data + HWSOCK_EV_URI_AREA, "answer", 6) == 0,
     "after the soft error: event sock_id %u type %u len %u",
     hwsock_le32_get(&ev.sock_id), hwsock_le16_get(&ev.type),
     hwsock_le32_get(&ev.len));
  CK(hwsock_le32_get(&ev.window) == 3, "window %u after one datagram of 4",
     hwsock_le32_get(&ev.window));
  return 0;
}

/* What a clause needs to run (else SKIP). */
#define NEED_ECHO 1
#define NEED_EVQ 2
#define NEED_LB 4 /* the loopback transport's messages (§14) */
#define NEED_SOFT 8 /* SOFT_ERRORS offered */

typedef struct clause {
  const char *sec, *text;
  int (*run)(adv *a);
  int needs;
} clause;

static const clause clauses[] = {
  {"§3", "config magic is HWSOCK_CONFIG_MAGIC", c_magic, 0},
  {"§3", "config protocol_version is HWSOCK_PROTOCOL_VERSION", c_version, 0},
  {"§14.2", "HELLO c equals the config's num_queues", c_nq, NEED_LB},
  {"§2.3", "the device offers VERSION_1", c_v1, 0},
  {"§2.5", "QUEUE before FEATURES_OK is refused (EINVAL)",
   c_queue_before_features, NEED_LB},
  {"§2.3", "features not offered are refused (EINVAL)", c_feat_unoffered, NEED_LB},
  {"§2.3", "features without VERSION_1 are refused (EINVAL)", c_feat_no_v1, NEED_LB},
  {"§2.3", "a subset of the offered features with VERSION_1 is accepted",
   c_feat_ok, NEED_LB},
  {"§2.5", "QUEUE index >= num_queues is refused (EINVAL)", c_q_index, NEED_LB},
  {"§2.5", "QUEUE size 0 is refused (EINVAL)", c_q_size0, NEED_LB},
  {"§2.5", "QUEUE size not a power of two is refused (EINVAL)", c_q_pow2, NEED_LB},
  {"§2.5", "QUEUE size above max_queue_size is refused (EINVAL)", c_q_max, NEED_LB},
  {"§2.5", "QUEUE with a misaligned part is refused (EINVAL)", c_q_align, NEED_LB},
  {"§2.5", "QUEUE with a part outside the regions is refused (EFAULT)",
   c_q_region, NEED_LB},
  {"§2.5", "START before every queue is set up is refused (EINVAL)",
   c_start_incomplete, NEED_LB},
  {"§2.5", "kicks before DRIVER_OK are ignored", c_kick_before_start, NEED_LB},
  {"§4.2", "request flags != 0 gets EINVAL", c_flags, 0},
  {"§4.2", "request reserved != 0 gets EINVAL", c_reserved, 0},
  {"§10", "an unknown opcode gets ENOSYS", c_opcode, 0},
  {"§10", "sock_id >= max_sockets gets EBADF", c_id_range, 0},
  {"§6.1", "a request on a FREE id gets EBADF", c_id_free, 0},
  {"§5.1", "OPEN of an id that is not FREE gets EEXIST", c_open_twice, 0},
  {"§4.3", "an error response is all zero but status and tag", c_err_header, 0},
  {"§4.4", "an error completion has used len 32", c_used_err, 0},
  {"§4.4", "OPEN success has used len 32", c_used_ok, 0},
  {"§4.4", "writable part < 32: used len 0, nothing written, not performed",
   c_used_short, 0},
  {"§10", "uri_len > max_uri_len gets ENAMETOOLONG", c_uri_max, 0},
  {"§5.2", "CONNECT to an allowed listener succeeds", c_connect, NEED_ECHO},
  {"§2.8", "head index >= size: NEEDS_RESET (code 2), queue ignored",
   c_broken, 0},
  {"§2.8", "RESET then setup again: the device serves requests", c_reset, 0},
  /* (here: one §2.8 clause per hostile layout of libhwsock-ringtest) */
};

static const clause evq_clauses[] = {
  {"§16.1", "EVENT_QUEUE is offered only with num_queues >= 2", c_evq_offer,
   0},
  {"§16", "CREDIT without EVENT_QUEUE negotiated gets ENOSYS",
   c_credit_enosys, 0},
  {"§16.4", "CREDIT succeeds with val 0 and used len 32", c_credit_ok,
   NEED_EVQ},
  {"§16.4", "CREDIT with unknown arg1 bits gets EINVAL", c_credit_arg1,
   NEED_EVQ},
  {"§16.4", "CREDIT past HWSOCK_CREDIT_MAX gets ERANGE", c_credit_max,
   NEED_EVQ},
  {"§16.4", "CREDIT with uri_len != 0 gets EINVAL", c_credit_uri, NEED_EVQ},
  {"§16.2", "an event buffer with a readable descriptor is handed back "
            "with used len 0",
   c_evbuf_readable, NEED_EVQ | NEED_ECHO},
  {"§16.2", "an event buffer below HWSOCK_EV_BUF_MIN is handed back with "
            "used len 0",
   c_evbuf_small, NEED_EVQ | NEED_ECHO},
  {"§16.2", "no event buffer is used without an event", c_evbuf_idle,
   NEED_EVQ},
  {"§16.3", "DATA events stay within the window, in stream order; a "
            "socket with a window refuses RECV (EBUSY)",
   c_evq_data, NEED_EVQ | NEED_ECHO},
  {"§16.4", "WATCH_WRITE gives exactly one WRITABLE event", c_evq_writable,
   NEED_EVQ | NEED_ECHO},
  {"§16.9", "SOFT_ERRORS is offered only with EVENT_QUEUE", c_soft_offer, 0},
  {"§16.9", "a refused datagram socket gets one soft ERROR, its window "
            "unchanged, and still receives DATA",
   c_evq_soft, NEED_EVQ | NEED_ECHO | NEED_SOFT},
};

/* Runs one clause and prints its line. */
static int setup_ok = 1; /* after the setup clauses the device must run */
static void run(adv *a, const clause *c) {
  if ((c->needs & NEED_LB) && vhost) {
    printf("SKIP %s %s (loopback transport only)\n", c->sec, c->text);
    return;
  }
  if ((c->needs & NEED_ECHO) && echo_uri == NULL) {
    printf("SKIP %s %s (no --echo)\n", c->sec, c->text);
    return;
  }
  if ((c->needs & NEED_EVQ) &&
      (!(offered(a) & HWSOCK_F_EVENT_QUEUE) || a->nq < 2)) {
    printf("SKIP %s %s (EVENT_QUEUE not offered)\n", c->sec, c->text);
    return;
  }
  if ((c->needs & NEED_SOFT) && !(offered(a) & HWSOCK_F_SOFT_ERRORS)) {
    printf("SKIP %s %s (SOFT_ERRORS not offered)\n", c->sec, c->text);
    return;
  }
  if (c->run == c_flags && setup_ok && fresh(a) < 0) {
    printf("FAIL §2.5 the device can be set up and started: %s\n", why);
    setup_ok = 0;
  }
  why[0] = 0;
  n_run++;
  if (!setup_ok && c->run != c_magic) {
    printf("FAIL %s %s: not run, the device could not be set up\n", c->sec,
           c->text);
    n_fail++;
    return;
  }
  if (c->run(a) == 0) {
    printf("PASS %s %s\n", c->sec, c->text);
    n_pass++;
  } else {
    printf("FAIL %s %s: %s\n", c->sec, c->text, why);
    n_fail++;
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--vmm") == 0 && i + 1 < argc)
      adv_vmm_path = argv[++i];
    else if (strcmp(argv[i], "--vhost-user") == 0 && i + 1 < argc) {
      adv_vmm_path = argv[++i];
      vhost = 1;
    } else if (strcmp(argv[i], "--echo") == 0 && i + 1 < argc)
      echo_uri = argv[++i];
    else {
      adv_vmm_path = NULL;
      break;
    }
  }
  if (adv_vmm_path == NULL) {
    fprintf(stderr, "usage: hwsock-conform --vmm SOCKET [--echo URI]\n"
                    "       hwsock-conform --vhost-user SOCKET [--echo URI]\n");
    return 2;
  }
  adv *a = &the_dev;
  if (vhost && cvu_attach(a, adv_vmm_path) < 0) {
    printf("FAIL §5.13 vhost-user setup and NEGOTIATE succeed: see stderr\n");
    printf("hwsock-conform: 0/1 clauses passed\n");
    cvu_detach(a);
    return 1;
  }
  if (!vhost && adv_attach(a) < 0) {
    printf("FAIL §14.2 the HELLO exchange succeeds: see stderr\n");
    printf("hwsock-conform: 0/1 clauses passed\n");
    return 1;
  }
  for (size_t i = 0; i < sizeof(clauses) / sizeof(clauses[0]); i++) {
    run(a, &clauses[i]);
  }
  for (int f = 1; f <= HWSOCK_RINGTEST_FAULT_MAX_; f++) {
    char text[96];
    snprintf(text, sizeof(text), "ring fault %s makes the device need reset, writes nothing",
             hwsock_ringtest_fault_name(f));
    clause c = {"§2.8", text, c_fault, 0};
    clause_arg = f;
    run(a, &c);
  }
  for (size_t i = 0; i < sizeof(evq_clauses) / sizeof(evq_clauses[0]); i++)
    run(a, &evq_clauses[i]);
  printf("hwsock-conform: %u/%u clauses passed\n", n_pass, n_run);
  if (vhost)
    cvu_detach(a);
  else
    adv_detach(a);
  return n_fail == 0 ? 0 : 1;
}
