/* The device's request dispatch on a healthy ring: every malformed request
 * gets the exact error completion, and only ring faults cause needs-reset.
 * The driver side is the vring builder (test/support); no backend is needed
 * for these paths (the policy decides before any backend is involved). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "device_int.h"
#include "support/vring_builder.h"

static const char *policy_yaml =
    "version: 1\n"
    "default: deny\n"
    "rules:\n"
    "  - action: decline\n"
    "    to: [127.0.0.3/32]\n"
    "  - action: deny\n"
    "    to: [127.0.0.2/32]\n"
    "    error: ENETUNREACH\n"
    "    reason: test\n";

static vrb r;
static hwsock_device *dev;
static hwsock_policy *pol;
static int resets, notifies;
static char reset_why[128];

static void on_notify(void *o, unsigned q) { notifies++; }
static void on_reset(void *o, const char *why) {
  resets++;
  snprintf(reset_why, sizeof(reset_why), "%s", why);
}
static const hwsock_device_ops ops = {.size = sizeof(ops),
                                      .notify = on_notify,
                                      .needs_reset = on_reset};

static void setup(void) {
  char err[200];
  resets = notifies = 0;
  cr_assert_eq(vrb_init(&r, 0, 0, 64), 0);
  cr_assert_eq(hwsock_policy_load_string(policy_yaml, strlen(policy_yaml),
                                         "t", &pol, err, sizeof(err)),
               0, "%s", err);
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 8;
  c.max_inflight = 16;
  c.policy = pol;
  c.ops = &ops;
  cr_assert_eq(hwsock_device_new(&c, &dev), 0);
  cr_assert_eq(hwsock_device_add_region(dev, r.gpa, r.size, r.mem), 0);
  cr_assert_eq(hwsock_device_set_features(dev, HWSOCK_F_VERSION_1), 0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 0, r.qsize, r.desc_gpa,
                                         r.avail_gpa, r.used_gpa),
               0);
  cr_assert_eq(hwsock_device_start(dev), 0);
}

static void teardown(void) {
  hwsock_device_free(dev);
  hwsock_policy_free(pol);
  vrb_free(&r);
}

TestSuite(device, .init = setup, .fini = teardown);

typedef struct result {
  uint32_t used_len;
  uint32_t status;
  uint32_t len;
  uint64_t tag;
  char uri[HWSOCK_URI_MAX + 1];
} result;

/* Sends one request (header + uri + data) with a writable part of wlen
 * bytes; kicks; returns the completion. */
static result request_raw(const hwsock_req_hdr *h, size_t hlen, const char *uri,
                          uint32_t wlen) {
  unsigned char out[sizeof(*h) + HWSOCK_URI_MAX + 64];
  size_t n = 0;
  memcpy(out, h, hlen);
  n = hlen;
  if (uri != NULL) {
    memcpy(out + n, uri, strlen(uri));
    n += strlen(uri);
  }
  struct iovec iov = {out, n};
  uint64_t wgpa = 0;
  int head = vrb_add_rw(&r, &iov, 1, &wlen, wlen ? 1 : 0, &wgpa);
  cr_assert(head >= 0);
  vrb_publish(&r);
  hwsock_device_kick(dev, 0);
  result res;
  memset(&res, 0, sizeof(res));
  uint32_t id;
  cr_assert_eq(vrb_get_used(&r, &id, &res.used_len), 1, "no completion");
  cr_assert_eq(id, (uint32_t)head);
  if (res.used_len >= sizeof(hwsock_resp_hdr)) {
    const hwsock_resp_hdr *resp = vrb_host(&r, wgpa);
    res.status = hwsock_le32_get(&resp->status);
    res.len = hwsock_le32_get(&resp->len);
    res.tag = hwsock_le64_get(&resp->tag);
    uint32_t ul = hwsock_le32_get(&resp->uri_len);
    if (ul > 0 && ul <= HWSOCK_URI_MAX)
      memcpy(res.uri, (const char *)(resp + 1), ul);
  }
  return res;
}

static hwsock_req_hdr hdr(unsigned op, uint32_t id, uint32_t a0, uint32_t a1,
                          const char *uri) {
  hwsock_req_hdr h;
  memset(&h, 0, sizeof(h));
  hwsock_le16_set(&h.opcode, (uint16_t)op);
  hwsock_le32_set(&h.sock_id, id);
  hwsock_le64_set(&h.tag, 0x1122334455667788ull);
  hwsock_le32_set(&h.arg0, a0);
  hwsock_le32_set(&h.arg1, a1);
  hwsock_le32_set(&h.uri_len, uri ? (uint32_t)strlen(uri) : 0);
  return h;
}

static result request(unsigned op, uint32_t id, uint32_t a0, uint32_t a1,
                      const char *uri) {
  hwsock_req_hdr h = hdr(op, id, a0, a1, uri);
  return request_raw(&h, sizeof(h), uri, 32 + HWSOCK_URI_MAX);
}

static void open_tcp(uint32_t id) {
  result res = request(HWSOCK_OP_OPEN, id, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL);
  cr_assert_eq(res.status, 0);
}

Test(device, open_then_close_succeeds_and_echoes_the_tag) {
  result res = request(HWSOCK_OP_OPEN, 3, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       NULL);
  cr_assert_eq(res.status, 0);
  cr_assert_eq(res.used_len, 32);
  cr_assert_eq(res.tag, 0x1122334455667788ull);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 3, 0, 0, NULL).status, 0);
  cr_assert_eq(resets, 0);
  cr_assert_gt(notifies, 0);
}

Test(device, unknown_opcode_gets_enosys_not_a_reset) {
  cr_assert_eq(request(99, 0, 0, 0, NULL).status, -HWSOCK_ENOSYS);
  cr_assert_eq(request(0, 0, 0, 0, NULL).status, -HWSOCK_ENOSYS);
  cr_assert_eq(resets, 0);
  cr_assert_eq(hwsock_device_status(dev) & HWSOCK_STATUS_NEEDS_RESET, 0);
}

Test(device, truncated_header_gets_ebadmsg) {
  hwsock_req_hdr h = hdr(HWSOCK_OP_OPEN, 0, 1, 1, NULL);
  cr_assert_eq(request_raw(&h, 20, NULL, 64).status, -HWSOCK_EBADMSG);
  cr_assert_eq(resets, 0);
}

Test(device, writable_part_too_short_completes_with_nothing_written) {
  hwsock_req_hdr h = hdr(HWSOCK_OP_OPEN, 0, 1, 1, NULL);
  cr_assert_eq(request_raw(&h, sizeof(h), NULL, 16).used_len, 0);
  cr_assert_eq(request_raw(&h, sizeof(h), NULL, 0).used_len, 0);
  cr_assert_eq(resets, 0);
  /* and the socket was not opened */
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 0, 0, 0, NULL).status, -HWSOCK_EBADF);
}

Test(device, out_of_range_socket_id_gets_ebadf) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 8, 1, 1, NULL).status, -HWSOCK_EBADF);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 0xffffffffu, 1, 1, NULL).status,
               -HWSOCK_EBADF);
}

Test(device, requests_on_a_socket_never_opened_get_ebadf) {
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0, "tcp://127.0.0.1:80").status,
               -HWSOCK_EBADF);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 1, 0, 0, NULL).status, -HWSOCK_EBADF);
}

Test(device, opening_an_open_id_gets_eexist) {
  open_tcp(2);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 2, 1, 1, NULL).status, -HWSOCK_EEXIST);
}

Test(device, unknown_family_and_type_are_refused) {
  cr_assert_eq(request(HWSOCK_OP_OPEN, 0, 9, 1, NULL).status,
               -HWSOCK_EAFNOSUPPORT);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 0, HWSOCK_AF_INET, 9, NULL).status,
               -HWSOCK_EPROTONOSUPPORT);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 0, HWSOCK_AF_IPX, HWSOCK_SOCK_STREAM,
                       NULL).status,
               -HWSOCK_EPROTONOSUPPORT);
}

Test(device, nonzero_reserved_fields_get_einval) {
  hwsock_req_hdr h = hdr(HWSOCK_OP_OPEN, 0, 1, 1, NULL);
  hwsock_le16_set(&h.flags, 1);
  cr_assert_eq(request_raw(&h, sizeof(h), NULL, 64).status, -HWSOCK_EINVAL);
  h = hdr(HWSOCK_OP_OPEN, 0, 1, 1, NULL);
  hwsock_le32_set(&h.reserved, 7);
  cr_assert_eq(request_raw(&h, sizeof(h), NULL, 64).status, -HWSOCK_EINVAL);
}

Test(device, uri_len_beyond_the_readable_part_gets_ebadmsg) {
  open_tcp(0);
  hwsock_req_hdr h = hdr(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://127.0.0.1:80");
  hwsock_le32_set(&h.uri_len, 5000);
  cr_assert_eq(request_raw(&h, sizeof(h), "tcp://127.0.0.1:80", 64).status,
               -HWSOCK_EBADMSG);
}

Test(device, malformed_uri_gets_ebaduri) {
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://0177.0.0.1:80").status,
               -HWSOCK_EBADURI);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://127.1:80").status,
               -HWSOCK_EBADURI);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "gopher://x").status,
               -HWSOCK_EBADURI);
}

Test(device, uri_on_an_opcode_without_address_gets_einval) {
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_LISTEN, 0, 1, 0, "tcp://127.0.0.1:80").status,
               -HWSOCK_EINVAL);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, NULL).status, -HWSOCK_EINVAL);
}

Test(device, address_of_another_family_or_type_is_refused) {
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp6://[::1]:80").status,
               -HWSOCK_EAFNOSUPPORT);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "udp://127.0.0.1:80").status,
               -HWSOCK_EPROTOTYPE);
}

Test(device, undecided_socket_refuses_data_calls_with_enotconn) {
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_RECV, 0, 0, 0, NULL).status, -HWSOCK_ENOTCONN);
  cr_assert_eq(request(HWSOCK_OP_SEND, 0, 0, 0, NULL).status, -HWSOCK_ENOTCONN);
  cr_assert_eq(request(HWSOCK_OP_GETSOCKOPT, 0, 1, 2, NULL).status,
               -HWSOCK_ENOTCONN);
}

Test(device, denied_connect_gets_the_rule_errno_and_is_counted) {
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://127.0.0.2:80").status,
               -HWSOCK_ENETUNREACH);
  /* default deny: EACCES */
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://192.0.2.1:80").status,
               -HWSOCK_EACCES);
  cr_assert_eq(dev->counters.verdicts[HWSOCK_ACTION_DENY], 2);
}

Test(device, denied_spellings_of_one_address_are_all_denied) {
  const char *spellings[] = {"tcp6://[::ffff:127.0.0.2]:80",
                             "tcp6://[::ffff:7f00:2]:80",
                             "tcp6://[0:0:0:0:0:ffff:127.0.0.2]:80"};
  uint32_t id = 0;
  cr_assert_eq(request(HWSOCK_OP_OPEN, id, HWSOCK_AF_INET6, HWSOCK_SOCK_STREAM,
                       NULL).status, 0);
  for (unsigned i = 0; i < sizeof(spellings) / sizeof(*spellings); i++)
    cr_assert_eq(request(HWSOCK_OP_CONNECT, id, 0, 0, spellings[i]).status,
                 -HWSOCK_ENETUNREACH, "%s", spellings[i]);
}

/* Destinations are decided as the host kernel will use them, in the one
 * check every destination goes through: 0.0.0.0, :: and ::ffff:0.0.0.0 are
 * loopback, a v4-mapped address is tcp/udp, a v4-compatible one is refused
 * without deciding the socket. */
Test(device, destinations_are_decided_as_the_kernel_uses_them) {
  hwsock_policy *p = NULL;
  const char *y = "version: 1\n"
                  "default: decline\n"
                  "rules:\n"
                  "  - action: deny\n"
                  "    to: [127.0.0.0/8, \"::1\"]\n"
                  "    error: ECONNREFUSED\n"
                  "  - action: deny\n"
                  "    scheme: tcp\n"
                  "    to: 10.0.0.0/8\n"
                  "    error: EHOSTUNREACH\n";
  char err[128];
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t", &p, err,
                                         sizeof(err)), 0, "%s", err);
  dev->policy = p;
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://0.0.0.0:80").status,
               -HWSOCK_ECONNREFUSED);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET6, HWSOCK_SOCK_STREAM,
                       NULL).status, 0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0, "tcp6://[::]:80").status,
               -HWSOCK_ECONNREFUSED);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0,
                       "tcp6://[::ffff:0.0.0.0]:80").status,
               -HWSOCK_ECONNREFUSED);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0,
                       "tcp6://[::ffff:10.1.2.3]:80").status,
               -HWSOCK_EHOSTUNREACH);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0,
                       "tcp6://[::10.1.2.3]:80").status,
               -HWSOCK_ENETUNREACH);
  /* the refusal decided nothing: the socket is still the guest's to use */
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 1, 0, 0,
                       "tcp6://[2001:db8::1]:80").status,
               -HWSOCK_EDECLINED);
  cr_assert_eq(dev->counters.verdicts[HWSOCK_ACTION_DECLINE], 1);
  dev->policy = pol;
  hwsock_policy_free(p);
}

Test(device, declined_socket_is_declined_until_close) {
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://127.0.0.3:80").status,
               -HWSOCK_EDECLINED);
  cr_assert_eq(request(HWSOCK_OP_RECV, 0, 0, 0, NULL).status,
               -HWSOCK_EDECLINED);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 0, 0, 0, NULL).status, 0);
  cr_assert_eq(dev->counters.verdicts[HWSOCK_ACTION_DECLINE], 1);
  open_tcp(0); /* the id is free again */
}

Test(device, offload_without_a_backend_gets_eafnosupport) {
  hwsock_policy *p = NULL;
  const char *y = "version: 1\ndefault: offload\nrules: []\n";
  char err[128];
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t", &p, err,
                                         sizeof(err)), 0, "%s", err);
  dev->policy = p;
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://127.0.0.1:80").status,
               -HWSOCK_EAFNOSUPPORT);
  dev->policy = pol;
  hwsock_policy_free(p);
}

Test(device, broken_ring_sets_needs_reset_once_and_reset_recovers) {
  vrb_set_desc(&r, 0, r.gpa + 4096, 64, HWSOCK_VRING_DESC_F_NEXT, 0); /* self loop */
  vrb_put_head(&r, 0);
  vrb_publish(&r);
  cr_assert_eq(hwsock_device_kick(dev, 0), HWSOCK_ENEEDSRESET);
  cr_assert_eq(resets, 1);
  cr_assert(strlen(reset_why) > 0);
  cr_assert(hwsock_device_status(dev) & HWSOCK_STATUS_NEEDS_RESET);
  cr_assert_eq(hwsock_device_kick(dev, 0), HWSOCK_ENEEDSRESET);
  cr_assert_eq(resets, 1);

  hwsock_device_reset(dev);
  cr_assert_eq(hwsock_device_status(dev), 0);
  vrb_free(&r);
  cr_assert_eq(vrb_init(&r, 0, 0, 64), 0);
  /* the region table survives a reset; the new block must be mapped anew */
}

Test(device, avail_index_far_ahead_breaks_the_ring) {
  vrb_set_avail_idx(&r, 1000);
  cr_assert_eq(hwsock_device_kick(dev, 0), HWSOCK_ENEEDSRESET);
  cr_assert_eq(resets, 1);
}

Test(device, needs_reset_reports_the_fault_code_until_reset) {
  cr_assert_eq(hwsock_device_reset_reason(dev), HWSOCK_RESET_NONE);
  vrb_set_desc(&r, 0, r.gpa + 4096, 64, HWSOCK_VRING_DESC_F_NEXT, 0); /* self loop */
  vrb_put_head(&r, 0);
  vrb_publish(&r);
  cr_assert_eq(hwsock_device_kick(dev, 0), HWSOCK_ENEEDSRESET);
  cr_assert_eq(hwsock_device_reset_reason(dev), HWSOCK_RESET_CHAIN_LOOP);
  cr_assert_str_eq(reset_why, "descriptor chain loops or is longer than the queue");
  hwsock_device_reset(dev);
  cr_assert_eq(hwsock_device_reset_reason(dev), HWSOCK_RESET_NONE);
}

/* One kick takes a kick_budget of the published batch (the default
 * budget: the fixture's config leaves it 0); the rest waits for the next
 * loop turn's flush, and nothing is lost on the way. */
Test(device, a_batch_published_at_once_completes_by_budgets) {
  enum { N = 2 * HWSOCK_DEFAULT_KICK_BUDGET };
  _Static_assert(N <= 8, "one socket id per request: the fixture has 8");
  uint32_t wlen = 32;
  uint64_t wgpa[N];
  int heads[N];
  for (uint32_t i = 0; i < N; i++) {
    hwsock_req_hdr h = hdr(HWSOCK_OP_OPEN, i, 1, 1, NULL);
    struct iovec iov = {&h, sizeof(h)};
    heads[i] = vrb_add_rw(&r, &iov, 1, &wlen, 1, &wgpa[i]);
    cr_assert(heads[i] >= 0);
  }
  vrb_publish(&r);
  cr_assert_eq(hwsock_device_kick(dev, 0), (int)HWSOCK_DEFAULT_KICK_BUDGET);
  cr_assert(hwsock_device_pending(dev), "the rest of the batch is pending");
  hwsock_device_flush(dev);
  hwsock_device_flush(dev);
  cr_assert(!hwsock_device_pending(dev));
  for (uint32_t i = 0; i < N; i++) {
    uint32_t id, len;
    cr_assert_eq(vrb_get_used(&r, &id, &len), 1);
    cr_assert_eq(id, (uint32_t)heads[i]);
    const hwsock_resp_hdr *resp = vrb_host(&r, wgpa[i]);
    cr_assert_eq(hwsock_le32_get(&resp->status), 0);
  }
  cr_assert_eq(dev->inflight, 0);
}

Test(device, features_and_queue_setup_are_validated) {
  hwsock_device *d;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.policy = pol;
  cr_assert_eq(hwsock_device_new(&c, &d), 0);
  cr_assert_eq(hwsock_device_set_features(d, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_device_set_features(d, HWSOCK_F_VERSION_1 | (1ull << 40)),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_device_set_features(d, HWSOCK_F_VERSION_1 | HWSOCK_F_TCP),
               HWSOCK_EINVAL, "no tcp backend: the bit is not offered");
  cr_assert_eq(hwsock_device_start(d), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_device_set_features(d, HWSOCK_F_VERSION_1), 0);
  cr_assert_eq(hwsock_device_queue_setup(d, 0, 64, r.desc_gpa, r.avail_gpa,
                                         r.used_gpa), HWSOCK_EFAULT,
               "no region added");
  cr_assert_eq(hwsock_device_queue_setup(d, 1, 64, 0, 0, 0), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_device_start(d), HWSOCK_EINVAL);
  hwsock_device_free(d);
}

Test(device, config_limits_are_validated) {
  hwsock_device *d = NULL;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_queue_size = 100; /* not a power of 2 */
  cr_assert_eq(hwsock_device_new(&c, &d), HWSOCK_EINVAL);
  hwsock_device_config_init(&c);
  c.num_queues = HWSOCK_MAX_QUEUES + 1;
  cr_assert_eq(hwsock_device_new(&c, &d), HWSOCK_EINVAL);
  hwsock_device_config_init(&c);
  c.max_uri_len = 20;
  cr_assert_eq(hwsock_device_new(&c, &d), HWSOCK_EINVAL);
  cr_assert_null(d);
}

Test(device, sockopts_outside_the_allow_list_get_enoprotoopt) {
  open_tcp(0);
  /* SO_PRIORITY-like unknown option, unknown level (0 is SOL_IP), and
   * setting SO_ERROR */
  cr_assert_eq(request(HWSOCK_OP_GETSOCKOPT, 0, HWSOCK_SOL_SOCKET, 12, NULL)
                   .status, -HWSOCK_ENOPROTOOPT);
  cr_assert_eq(request(HWSOCK_OP_GETSOCKOPT, 0, 255, HWSOCK_TCP_NODELAY, NULL)
                   .status, -HWSOCK_ENOPROTOOPT);
  cr_assert_eq(request(HWSOCK_OP_SETSOCKOPT, 0, HWSOCK_SOL_SOCKET,
                       HWSOCK_SO_ERROR, NULL).status, -HWSOCK_ENOPROTOOPT);
}

Test(device, unknown_send_and_recv_flags_get_einval) {
  open_tcp(0);
  cr_assert_eq(request(HWSOCK_OP_SEND, 0, 0x80, 0, NULL).status, -HWSOCK_EINVAL);
  cr_assert_eq(request(HWSOCK_OP_RECV, 0, 0x10, 0, NULL).status, -HWSOCK_EINVAL);
}

/* SETSOCKOPT before the decision: kept for the backend's open() (which
 * applies it before the BIND/CONNECT: test/run's run_sem_reuseaddr_restart
 * checks it on the host), refused at once where the host would refuse. */
static result setopt4(uint32_t id, uint32_t level, uint32_t name,
                      uint32_t v, size_t vlen) {
  struct {
    hwsock_req_hdr h;
    hwsock_le32 v[2];
  } m;
  memset(&m, 0, sizeof(m));
  m.h = hdr(HWSOCK_OP_SETSOCKOPT, id, level, name, NULL);
  hwsock_le32_set(&m.v[0], v);
  return request_raw(&m.h, sizeof(m.h) + vlen, NULL, 32);
}

Test(device, sockopts_before_the_decision_are_kept_for_it) {
  open_tcp(0);
  cr_assert_eq(setopt4(0, HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 1, 4).status,
               0);
  cr_assert_eq(setopt4(0, HWSOCK_SOL_SOCKET, HWSOCK_SO_REUSEADDR, 0, 4).status,
               0); /* replaces the first */
  cr_assert_eq(setopt4(0, HWSOCK_SOL_IPV6, HWSOCK_IPV6_V6ONLY, 1, 4).status,
               (uint32_t)-HWSOCK_ENOPROTOOPT); /* an IPv4 socket */
  cr_assert_eq(setopt4(0, HWSOCK_SOL_SOCKET, HWSOCK_SO_LINGER, 1, 4).status,
               (uint32_t)-HWSOCK_EINVAL); /* needs two le32 */
  cr_assert_eq(setopt4(0, HWSOCK_SOL_TCP, HWSOCK_TCP_INFO, 1, 4).status,
               (uint32_t)-HWSOCK_ENOPROTOOPT); /* get only */
  /* reading still needs the decision (the driver answers from memory) */
  cr_assert_eq(request(HWSOCK_OP_GETSOCKOPT, 0, HWSOCK_SOL_SOCKET,
                       HWSOCK_SO_REUSEADDR, NULL).status,
               (uint32_t)-HWSOCK_ENOTCONN);
  /* bounded: HWSOCK_BPRESET_MAX distinct options */
  static const uint32_t more[][2] = {
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_BROADCAST},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_SNDBUF},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_RCVBUF},
      {HWSOCK_SOL_SOCKET, HWSOCK_SO_KEEPALIVE},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_NODELAY},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPIDLE},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPINTVL},
      {HWSOCK_SOL_TCP, HWSOCK_TCP_KEEPCNT}};
  for (unsigned i = 0; i < 8; i++)
    cr_assert_eq(setopt4(0, more[i][0], more[i][1], 1, 4).status,
                 i + 1 < HWSOCK_BPRESET_MAX ? 0u
                                            : (uint32_t)-HWSOCK_ENOBUFS,
                 "option %u", i);
  /* a declined socket drops them; the close frees them (ASan: no leak) */
  cr_assert_eq(request(HWSOCK_OP_CONNECT, 0, 0, 0, "tcp://127.0.0.3:80")
                   .status, (uint32_t)-HWSOCK_EDECLINED);
  cr_assert_eq(request(HWSOCK_OP_CLOSE, 0, 0, 0, NULL).status, 0);
  cr_assert_eq(resets, 0);
}
