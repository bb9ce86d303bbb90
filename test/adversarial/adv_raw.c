/* The adversarial guest's raw attachment and request helpers (adv.h). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "adversarial/adv.h"

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int adv_attach(adv *a) {
  memset(a, 0, sizeof(*a));
  a->reset_code = -1;
  a->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", adv_vmm_path);
  if (a->sock < 0 || connect(a->sock, (struct sockaddr *)&sun, sizeof(sun)) < 0)
    ADV_FAIL("connect %s: %s", adv_vmm_path, strerror(errno));
  hwsock_lb_msg m;
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, HWSOCK_LB_HELLO);
  hwsock_le64_set(&m.a, HWSOCK_LB_VERSION);
  int fds[HWSOCK_LB_MAX_FDS];
  unsigned nfds = 0;
  struct pollfd p = {a->sock, POLLIN, 0};
  if (hwsock_lb_send(a->sock, &m, NULL, 0) < 0 ||
      poll(&p, 1, ADV_WAIT_MS) != 1 ||
      hwsock_lb_recv(a->sock, &m, fds, HWSOCK_LB_MAX_FDS, &nfds) < 0)
    ADV_FAIL("HELLO exchange");
  a->nq = (unsigned)hwsock_le64_get(&m.c);
  a->size = (size_t)hwsock_le64_get(&m.a);
  a->gpa = hwsock_le64_get(&m.b);
  ADV_CHECK(hwsock_le32_get(&m.status) == 0 && a->nq >= 1 &&
                a->nq <= ADV_MAXQ && nfds == 1 + 2 * a->nq,
            "HELLO reply: status %u, %u queues, %u fds",
            hwsock_le32_get(&m.status), a->nq, nfds);
  memcpy(&a->cfg, &m.config, sizeof(a->cfg));
  for (unsigned q = 0; q < a->nq; q++) {
    a->kick[q] = fds[1 + 2 * q];
    a->call[q] = fds[2 + 2 * q];
  }
  a->mem = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
  close(fds[0]);
  ADV_CHECK(a->mem != MAP_FAILED, "mmap: %s", strerror(errno));
  return 0;
}

void adv_detach(adv *a) {
  if (a->mem != NULL && a->mem != MAP_FAILED)
    munmap(a->mem, a->size);
  for (unsigned q = 0; q < a->nq; q++) {
    close(a->kick[q]);
    close(a->call[q]);
  }
  if (a->sock >= 0)
    close(a->sock);
  a->sock = -1;
  a->mem = NULL;
  a->nq = 0;
}

/* Reads one message from the socket when one is there (no wait). Returns
 * its type, 0 when nothing is queued, -1 on hang-up or garbage. */
static int read_msg(adv *a, hwsock_lb_msg *m, int wait_ms) {
  struct pollfd p = {a->sock, POLLIN, 0};
  int n = poll(&p, 1, wait_ms);
  if (n <= 0)
    return 0;
  if (hwsock_lb_recv(a->sock, m, NULL, 0, NULL) < 0)
    return -1;
  uint32_t t = hwsock_le32_get(&m->type);
  if (t == HWSOCK_LB_NEEDS_RESET)
    a->reset_code = (int)hwsock_le64_get(&m->a);
  return (int)t;
}

int adv_msg(adv *a, uint32_t type, uint64_t x, uint64_t y, uint64_t z,
            uint64_t d, uint64_t e) {
  hwsock_lb_msg m;
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.type, type);
  hwsock_le64_set(&m.a, x);
  hwsock_le64_set(&m.b, y);
  hwsock_le64_set(&m.c, z);
  hwsock_le64_set(&m.d, d);
  hwsock_le64_set(&m.e, e);
  if (hwsock_lb_send(a->sock, &m, NULL, 0) < 0)
    return 1;
  long end = now_ms() + ADV_WAIT_MS;
  while (now_ms() < end) {
    int t = read_msg(a, &m, 100);
    if (t < 0)
      return 1;
    if (t == (int)type)
      return -(int)hwsock_le32_get(&m.status);
  }
  return 1;
}

int adv_setup(adv *a, uint64_t features, unsigned qsize) {
  int st = adv_msg(a, HWSOCK_LB_FEATURES, features, 0, 0, 0, 0);
  ADV_CHECK(st == 0, "FEATURES %#llx: status %d", (unsigned long long)features,
            st);
  size_t slice = (a->size / a->nq) & ~(size_t)4095;
  for (unsigned q = 0; q < a->nq; q++) {
    vrb *r = &a->q[q];
    ADV_CHECK(vrb_init_at(r, a->mem + q * slice, a->gpa + q * slice, slice,
                          qsize) == 0,
              "vring layout");
    memset(a->done[q], 0, sizeof(a->done[q]));
    st = adv_msg(a, HWSOCK_LB_QUEUE, q, qsize, r->desc_gpa, r->avail_gpa,
                 r->used_gpa);
    ADV_CHECK(st == 0, "QUEUE %u: status %d", q, st);
  }
  st = adv_msg(a, HWSOCK_LB_START, 0, 0, 0, 0, 0);
  ADV_CHECK(st == 0, "START: status %d", st);
  return 0;
}

int adv_reset_setup(adv *a, uint64_t features, unsigned qsize) {
  int st = adv_msg(a, HWSOCK_LB_RESET, 0, 0, 0, 0, 0);
  ADV_CHECK(st == 0, "RESET: status %d", st);
  a->reset_code = -1;
  return adv_setup(a, features, qsize);
}

void adv_kick(adv *a, unsigned q) {
  uint64_t one = 1;
  (void)!write(a->kick[q], &one, sizeof(one));
}

void adv_go(adv *a, unsigned q) {
  /* EVENT_IDX: interrupt at the next completion we have not read */
  vrb_set_used_event(&a->q[q], a->q[q].last_used);
  vrb_publish(&a->q[q]);
  adv_kick(a, q);
}

int adv_req(adv *a, unsigned q, uint16_t op, uint32_t sock, uint64_t tag,
            uint32_t arg0, uint32_t arg1, const void *uri, uint32_t uri_len,
            const void *data, uint32_t dlen, uint32_t wlen) {
  hwsock_req_hdr h;
  memset(&h, 0, sizeof(h));
  hwsock_le16_set(&h.opcode, op);
  hwsock_le32_set(&h.sock_id, sock);
  hwsock_le64_set(&h.tag, tag);
  hwsock_le32_set(&h.arg0, arg0);
  hwsock_le32_set(&h.arg1, arg1);
  hwsock_le32_set(&h.uri_len, uri_len);
  uint64_t wg = 0;
  int head = hwsock_ringtest_add_request(&a->q[q], &h, uri, uri_len, data,
                                         dlen, wlen, &wg);
  if (head < 0)
    return -1;
  a->resp[q][head] = wg;
  return head;
}

void adv_reap(adv *a, unsigned q) {
  uint32_t id, len;
  while (vrb_get_used(&a->q[q], &id, &len)) {
    if (id < HWSOCK_VRING_MAX_SIZE) {
      a->done[q][id].valid = 1;
      a->done[q][id].len = len;
    }
  }
}

int adv_wait_head(adv *a, unsigned q, uint16_t head, int timeout_ms) {
  long end = now_ms() + timeout_ms;
  for (;;) {
    adv_reap(a, q);
    if (a->done[q][head].valid) {
      a->done[q][head].valid = 0;
      return 0;
    }
    if (a->reset_code >= 0)
      return -1;
    long left = end - now_ms();
    if (left <= 0)
      return -1;
    struct pollfd p[2] = {{a->call[q], POLLIN, 0}, {a->sock, POLLIN, 0}};
    int n = poll(p, 2, left > 50 ? 50 : (int)left);
    if (n > 0 && (p[0].revents & POLLIN)) {
      uint64_t v;
      (void)!read(a->call[q], &v, sizeof(v));
    }
    if (n > 0 && p[1].revents) {
      hwsock_lb_msg m;
      if (read_msg(a, &m, 0) < 0)
        return -1;
    }
  }
}

const hwsock_resp_hdr *adv_resp(adv *a, unsigned q, uint16_t head) {
  return vrb_host(&a->q[q], a->resp[q][head]);
}

int adv_call(adv *a, unsigned q, uint16_t op, uint32_t sock, uint64_t tag,
             uint32_t arg0, uint32_t arg1, const char *uri, const void *data,
             uint32_t dlen, uint32_t wlen, uint32_t *used) {
  size_t mark = vrb_mark(&a->q[q]);
  int head = adv_req(a, q, op, sock, tag, arg0, arg1, uri,
                     uri ? (uint32_t)strlen(uri) : 0, data, dlen, wlen);
  if (head < 0)
    return 1;
  adv_go(a, q);
  if (adv_wait_head(a, q, (uint16_t)head, ADV_WAIT_MS) < 0)
    return 1;
  if (used != NULL)
    *used = a->done[q][head].len;
  const hwsock_resp_hdr *r = adv_resp(a, q, (uint16_t)head);
  int st = -(int)hwsock_le32_get(&r->status);
  if (hwsock_le64_get(&r->tag) != tag && a->done[q][head].len >= 32)
    st = 2; /* the tag must be echoed */
  vrb_release(&a->q[q], mark);
  return st;
}

int adv_wait_reset(adv *a, int timeout_ms) {
  long end = now_ms() + timeout_ms;
  while (a->reset_code < 0) {
    long left = end - now_ms();
    if (left <= 0)
      return -1;
    hwsock_lb_msg m;
    if (read_msg(a, &m, (int)left) < 0)
      return -1;
  }
  return a->reset_code;
}

int adv_used_still(adv *a, unsigned q, uint16_t idx, int ms) {
  long end = now_ms() + ms;
  while (now_ms() < end) {
    if (vrb_used_idx(&a->q[q]) != idx)
      return -1;
    usleep(10000);
  }
  return 0;
}

int adv_healthy(adv *a) {
  int st = adv_call(a, 0, HWSOCK_OP_OPEN, 901, 0x4e41, HWSOCK_AF_INET,
                    HWSOCK_SOCK_STREAM, NULL, NULL, 0, 32, NULL);
  ADV_CHECK(st == 0, "healthy device: OPEN status %d", st);
  st = adv_call(a, 0, HWSOCK_OP_CLOSE, 901, 0x4e42, 0, 0, NULL, NULL, 0, 32,
                NULL);
  ADV_CHECK(st == 0, "healthy device: CLOSE status %d", st);
  return 0;
}
