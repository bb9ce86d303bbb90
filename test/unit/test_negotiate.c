/* In-band negotiation (PROTOCOL.md §5.13): HWSOCK_OP_NEGOTIATE on a device
 * created with inband_negotiation, and opcode 13 on one created without.
 * The driver side is the vring builder; one fake backend gives the device
 * device-class features to offer (tcp and tcp6). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "device_int.h"
#include "support/vring_builder.h"

static vrb r;
static hwsock_device *dev;
static int resets;

static void on_reset(void *o, const char *why) { resets++; }
static const hwsock_device_ops ops = {.size = sizeof(ops),
                                      .needs_reset = on_reset};

/* A backend that serves tcp and tcp6 but is never reached by these tests. */
static int fb_create(const hwsock_backend_host *h, void **out) {
  static int instance;
  *out = &instance;
  return 0;
}
static void fb_destroy(void *inst) {}
static int fb_open(void *inst, const hwsock_bopen *p, void **out) {
  return HWSOCK_EIO;
}
static void fb_submit(void *s, hwsock_breq *b) {}
static void fb_close(void *s) {}
static const hwsock_backend_ops fb_ops = {.size = sizeof(fb_ops),
                                          .create = fb_create,
                                          .destroy = fb_destroy,
                                          .open = fb_open,
                                          .submit = fb_submit,
                                          .close = fb_close};
static const char *const fb_schemes[] = {"tcp", "tcp6", NULL};
static const hwsock_backend_desc fb_desc = {.abi_version = HWSOCK_BACKEND_ABI_VERSION,
                                            .size = sizeof(fb_desc),
                                            .name = "fake",
                                            .schemes = fb_schemes,
                                            .ops = &fb_ops};

#define TRANSPORT (HWSOCK_F_VERSION_1 | HWSOCK_F_EVENT_IDX)

static void start(unsigned inband, uint32_t cfg_size) {
  resets = 0;
  cr_assert_eq(vrb_init(&r, 0, 0, 64), 0);
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.size = cfg_size;
  c.max_sockets = 8;
  c.max_inflight = 16;
  c.ops = &ops;
  c.inband_negotiation = inband;
  cr_assert_eq(hwsock_device_new(&c, &dev), 0);
  cr_assert_eq(hwsock_device_add_backend(dev, &fb_desc, NULL), 0);
  cr_assert_eq(hwsock_device_add_region(dev, r.gpa, r.size, r.mem), 0);
}

static void setup_queue(void) {
  cr_assert_eq(hwsock_device_set_features(dev, TRANSPORT), 0);
  cr_assert_eq(hwsock_device_queue_setup(dev, 0, r.qsize, r.desc_gpa,
                                         r.avail_gpa, r.used_gpa),
               0);
  cr_assert_eq(hwsock_device_start(dev), 0);
}

static void setup_inband(void) {
  start(1, sizeof(hwsock_device_config));
  setup_queue();
}

static void teardown(void) {
  hwsock_device_free(dev);
  vrb_free(&r);
}

TestSuite(negotiate, .init = setup_inband, .fini = teardown);

typedef struct result {
  uint32_t used_len, status, len;
  uint64_t tag;
  hwsock_wire_config cfg;
} result;

static hwsock_req_hdr hdr(unsigned op, uint32_t id, uint32_t a0, uint32_t a1) {
  hwsock_req_hdr h;
  memset(&h, 0, sizeof(h));
  hwsock_le16_set(&h.opcode, (uint16_t)op);
  hwsock_le32_set(&h.sock_id, id);
  hwsock_le64_set(&h.tag, 0xabcdef01ull);
  hwsock_le32_set(&h.arg0, a0);
  hwsock_le32_set(&h.arg1, a1);
  return h;
}

static result request_h(const hwsock_req_hdr *h, uint32_t wlen) {
  struct iovec iov = {(void *)h, sizeof(*h)};
  uint64_t wgpa = 0;
  int head = vrb_add_rw(&r, &iov, 1, &wlen, 1, &wgpa);
  cr_assert(head >= 0);
  vrb_publish(&r);
  hwsock_device_kick(dev, 0);
  result res;
  memset(&res, 0, sizeof(res));
  uint32_t id;
  cr_assert_eq(vrb_get_used(&r, &id, &res.used_len), 1, "no completion");
  cr_assert_eq(id, (uint32_t)head);
  const hwsock_resp_hdr *resp = vrb_host(&r, wgpa);
  res.status = hwsock_le32_get(&resp->status);
  res.len = hwsock_le32_get(&resp->len);
  res.tag = hwsock_le64_get(&resp->tag);
  if (res.used_len >= 32 + sizeof(res.cfg))
    memcpy(&res.cfg, resp + 1, sizeof(res.cfg));
  return res;
}

static result request(unsigned op, uint32_t id, uint32_t a0, uint32_t a1,
                      uint32_t wlen) {
  hwsock_req_hdr h = hdr(op, id, a0, a1);
  return request_h(&h, wlen);
}

static result negotiate(uint32_t want) {
  return request(HWSOCK_OP_NEGOTIATE, 0, want, 0, 32 + 64);
}

Test(negotiate, returns_the_config_and_unlocks_the_other_opcodes) {
  result res = negotiate((uint32_t)(HWSOCK_F_TCP | HWSOCK_F_INET6));
  cr_assert_eq(res.status, 0);
  cr_assert_eq(res.len, 64);
  cr_assert_eq(res.used_len, 32 + 64);
  cr_assert_eq(res.tag, 0xabcdef01ull);
  cr_assert_eq(hwsock_le32_get(&res.cfg.magic), HWSOCK_CONFIG_MAGIC);
  cr_assert_eq(hwsock_le32_get(&res.cfg.protocol_version),
               HWSOCK_PROTOCOL_VERSION);
  /* The offer: the backend's classes plus the transport bits in force
   * (INDIRECT_DESC was not negotiated by the transport, so not listed). */
  cr_assert_eq(hwsock_le64_get(&res.cfg.device_features),
               HWSOCK_F_TCP | HWSOCK_F_INET6 | TRANSPORT);
  cr_assert_eq(hwsock_le16_get(&res.cfg.num_queues), 1);
  cr_assert_eq(hwsock_le32_get(&res.cfg.max_sockets), 8);
  cr_assert_eq(hwsock_le32_get(&res.cfg.max_inflight), 16);
  cr_assert_eq(dev->features, TRANSPORT | HWSOCK_F_TCP | HWSOCK_F_INET6);
  res = request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM, 32);
  cr_assert_eq(res.status, 0);
  cr_assert_eq(resets, 0);
}

Test(negotiate, other_opcodes_before_it_fail_with_eproto) {
  result res = request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       32);
  cr_assert_eq(res.status, (uint32_t)-HWSOCK_EPROTO);
  cr_assert_eq(res.used_len, 32);
  res = request(HWSOCK_OP_CLOSE, 1, 0, 0, 32);
  cr_assert_eq(res.status, (uint32_t)-HWSOCK_EPROTO);
  /* An unknown opcode stays unknown. */
  res = request(HWSOCK_OP_MAX_ + 1, 0, 0, 0, 32);
  cr_assert_eq(res.status, (uint32_t)-HWSOCK_ENOSYS);
  /* Nothing was opened: after negotiating, id 1 is free. */
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_TCP).status, 0);
  res = request(HWSOCK_OP_CLOSE, 1, 0, 0, 32);
  cr_assert_eq(res.status, (uint32_t)-HWSOCK_EBADF);
  cr_assert_eq(resets, 0);
}

Test(negotiate, bits_not_offered_fail_with_einval_and_may_be_retried) {
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_UDP).status,
               (uint32_t)-HWSOCK_EINVAL);
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_IPX).status,
               (uint32_t)-HWSOCK_EINVAL);
  /* A transport bit is not a device class. */
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_EVENT_IDX).status,
               (uint32_t)-HWSOCK_EINVAL);
  cr_assert_eq(request(HWSOCK_OP_NEGOTIATE, 0, HWSOCK_F_TCP, 1, 96).status,
               (uint32_t)-HWSOCK_EINVAL);
  cr_assert_eq(dev->features, TRANSPORT);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       32).status,
               (uint32_t)-HWSOCK_EPROTO);
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_TCP).status, 0);
  cr_assert_eq(dev->features, TRANSPORT | HWSOCK_F_TCP);
}

Test(negotiate, malformed_header_fails_with_einval) {
  hwsock_req_hdr h = hdr(HWSOCK_OP_NEGOTIATE, 3, HWSOCK_F_TCP, 0);
  cr_assert_eq(request_h(&h, 96).status, (uint32_t)-HWSOCK_EINVAL);
  h = hdr(HWSOCK_OP_NEGOTIATE, 0, HWSOCK_F_TCP, 0);
  hwsock_le16_set(&h.flags, 1);
  cr_assert_eq(request_h(&h, 96).status, (uint32_t)-HWSOCK_EINVAL);
  h = hdr(HWSOCK_OP_NEGOTIATE, 0, HWSOCK_F_TCP, 0);
  hwsock_le32_set(&h.reserved, 1);
  cr_assert_eq(request_h(&h, 96).status, (uint32_t)-HWSOCK_EINVAL);
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_TCP).status, 0);
}

Test(negotiate, a_second_one_fails_with_ealready) {
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_TCP).status, 0);
  result res = negotiate((uint32_t)(HWSOCK_F_TCP | HWSOCK_F_INET6));
  cr_assert_eq(res.status, (uint32_t)-HWSOCK_EALREADY);
  cr_assert_eq(res.used_len, 32);
  cr_assert_eq(dev->features, TRANSPORT | HWSOCK_F_TCP);
  cr_assert_eq(resets, 0);
}

Test(negotiate, short_writable_part_fails_with_emsgsize) {
  result res = request(HWSOCK_OP_NEGOTIATE, 0, HWSOCK_F_TCP, 0, 32 + 63);
  cr_assert_eq(res.status, (uint32_t)-HWSOCK_EMSGSIZE);
  cr_assert_eq(res.used_len, 32);
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_TCP).status, 0);
}

Test(negotiate, a_reset_starts_over) {
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_TCP).status, 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       32).status,
               0);
  cr_assert_eq(hwsock_device_clear_regions(dev), HWSOCK_EBUSY);
  hwsock_device_reset(dev);
  /* A fresh ring, as a reloaded driver sets up, in new memory. */
  uint64_t gpa = r.gpa;
  vrb_free(&r);
  cr_assert_eq(vrb_init(&r, gpa, 0, 64), 0);
  cr_assert_eq(hwsock_device_clear_regions(dev), 0);
  cr_assert_eq(hwsock_device_add_region(dev, r.gpa, r.size, r.mem), 0);
  setup_queue();
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       32).status,
               (uint32_t)-HWSOCK_EPROTO);
  cr_assert_eq(negotiate((uint32_t)(HWSOCK_F_TCP | HWSOCK_F_INET6)).status, 0);
  cr_assert_eq(dev->features, TRANSPORT | HWSOCK_F_TCP | HWSOCK_F_INET6);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       32).status,
               0);
}

/* A device without the flag, and one created by a caller whose config
 * struct ended before the field (the old size): opcode 13 is unknown, and
 * nothing waits for a negotiation. */
static void check_without_inband(void) {
  setup_queue();
  result res = negotiate((uint32_t)HWSOCK_F_TCP);
  cr_assert_eq(res.status, (uint32_t)-HWSOCK_ENOSYS);
  cr_assert_eq(res.used_len, 32);
  hwsock_device_stats st;
  st.size = sizeof(st);
  hwsock_device_get_stats(dev, &st);
  cr_assert_eq(st.requests_by_op[0], 1);
  cr_assert_eq(st.requests_by_op[HWSOCK_OP_NEGOTIATE], 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       32).status,
               0);
}

Test(without, opcode_13_is_unknown_on_a_device_without_the_flag,
     .fini = teardown) {
  start(0, sizeof(hwsock_device_config));
  check_without_inband();
}

Test(without, an_old_sized_config_means_no_inband_negotiation,
     .fini = teardown) {
  /* start() sets inband_negotiation to 1 beyond the size it passes */
  start(1, (uint32_t)offsetof(hwsock_device_config, inband_negotiation));
  cr_assert_eq(dev->cfg.inband_negotiation, 0);
  check_without_inband();
}

Test(stats, an_old_sized_stats_struct_gets_the_old_layout) {
  start(1, sizeof(hwsock_device_config));
  setup_queue();
  cr_assert_eq(negotiate((uint32_t)HWSOCK_F_TCP).status, 0);
  cr_assert_eq(request(HWSOCK_OP_OPEN, 1, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                       32).status,
               0);
  hwsock_device_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  hwsock_device_get_stats(dev, &st);
  cr_assert_eq(st.requests_by_op[HWSOCK_OP_NEGOTIATE], 1);
  cr_assert_eq(st.requests_by_op[HWSOCK_OP_OPEN], 1);
  cr_assert_eq(st.completions, 2);
  /* 0.1.0 layout: 13 opcode slots, then completions. */
  uint64_t old[4096];
  memset(old, 0xee, sizeof(old));
  size_t old_size = 8 + 8 * (2 + 13 + 2 + HWSOCK_STATS_ERR_SLOTS + 12 +
                             13 * HWSOCK_LAT_BUCKETS);
  cr_assert(old_size < sizeof(old));
  ((hwsock_device_stats *)old)->size = (uint32_t)old_size;
  hwsock_device_get_stats(dev, (hwsock_device_stats *)old);
  cr_assert_eq(((hwsock_device_stats *)old)->size, old_size);
  cr_assert_eq(old[1], 2);                      /* kicks */
  cr_assert_eq(old[2], 2);                      /* requests */
  cr_assert_eq(old[3 + HWSOCK_OP_OPEN], 1);     /* requests_by_op[OPEN] */
  cr_assert_eq(old[3 + 13], 2);                 /* completions */
  cr_assert_eq(old[old_size / 8], 0xeeeeeeeeeeeeeeeeull); /* untouched */
  teardown();
}
