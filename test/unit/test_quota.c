/* Host socket quotas (device.h: max_host_sockets, shared_quota; lib/quota.c):
 * offloaded sockets and pending ACCEPT targets count, denied sockets do
 * not, a refusal is HWSOCK_EMFILE for that guest only and is logged naming
 * the limit and its hint (rate-limited), and a closed socket gives its unit
 * back. Two devices share one quota; the backend is a stub that holds no
 * host resources: BIND/LISTEN complete at once, ACCEPT waits until close. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_int.h"
#include "support/vring_builder.h"

/* ---- a stub backend -------------------------------------------------- */

typedef struct stub_sock {
  const hwsock_backend_host *host;
  hwsock_breq *accept; /* a pending ACCEPT */
} stub_sock;

static int open_socks;

static int stub_create(const hwsock_backend_host *host, void **inst) {
  *inst = (void *)host;
  return 0;
}
static void stub_destroy(void *inst) { (void)inst; }
static int stub_open(void *inst, const hwsock_bopen *p, void **sock) {
  stub_sock *s = calloc(1, sizeof(*s));
  cr_assert(s != NULL);
  s->host = inst;
  open_socks++;
  *sock = s;
  return 0;
}
static void stub_submit(void *sock, hwsock_breq *req) {
  stub_sock *s = sock;
  if (req->opcode == HWSOCK_OP_ACCEPT && s->accept == NULL) {
    s->accept = req;
    return;
  }
  s->host->complete(req, 0, 0);
}
static void stub_close(void *sock) {
  stub_sock *s = sock;
  if (s->accept != NULL)
    s->host->complete(s->accept, HWSOCK_ECANCELED, 0);
  open_socks--;
  free(s);
}
static const hwsock_backend_ops stub_ops = {
    .size = sizeof(stub_ops), .create = stub_create, .destroy = stub_destroy,
    .open = stub_open, .submit = stub_submit, .close = stub_close};
static const char *const stub_schemes[] = {"tcp", NULL};
static const hwsock_backend_desc stub_desc = {
    .size = sizeof(stub_desc), .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "stub", .description = "test stub", .schemes = stub_schemes,
    .ops = &stub_ops};

/* ---- two guests sharing a quota ---------------------------------------- */

static const char *policy_yaml = "version: 1\n"
                                 "default: offload\n"
                                 "rules:\n"
                                 "  - action: deny\n"
                                 "    to: [127.0.0.2/32]\n";

typedef struct guest {
  vrb r;
  hwsock_device *dev;
  char log[1024];
  int logged;
} guest;

static hwsock_policy *pol;
static hwsock_quota shared;
static guest g1, g2;

static void on_log(void *opaque, int level, const char *msg) {
  guest *g = opaque;
  if (strstr(msg, "quota") == NULL)
    return;
  g->logged++;
  snprintf(g->log, sizeof(g->log), "%s", msg);
}
static const hwsock_device_ops ops = {.size = sizeof(ops), .log = on_log};

static void guest_new(guest *g) {
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 16;
  c.max_host_sockets = 3;
  c.shared_quota = &shared;
  c.quota_hint = "raise it here";
  c.policy = pol;
  c.ops = &ops;
  c.opaque = g;
  cr_assert_eq(vrb_init(&g->r, 0, 0, 64), 0);
  cr_assert_eq(hwsock_device_new(&c, &g->dev), 0);
  cr_assert_eq(hwsock_device_add_region(g->dev, g->r.gpa, g->r.size,
                                        g->r.mem), 0);
  cr_assert_eq(hwsock_device_add_backend(g->dev, &stub_desc, NULL), 0);
  cr_assert_eq(hwsock_device_set_features(g->dev, HWSOCK_F_VERSION_1), 0);
  cr_assert_eq(hwsock_device_queue_setup(g->dev, 0, 64, g->r.desc_gpa,
                                         g->r.avail_gpa, g->r.used_gpa), 0);
  cr_assert_eq(hwsock_device_start(g->dev), 0);
}

static void setup(void) {
  char err[200];
  cr_assert_eq(hwsock_policy_load_string(policy_yaml, strlen(policy_yaml),
                                         "t", &pol, err, sizeof(err)),
               0, "%s", err);
  memset(&shared, 0, sizeof(shared));
  shared.limit = 5;
  shared.hint = "the shared hint";
  memset(&g1, 0, sizeof(g1));
  memset(&g2, 0, sizeof(g2));
  open_socks = 0;
  guest_new(&g1);
  guest_new(&g2);
}

static void teardown(void) {
  hwsock_device_free(g1.dev);
  hwsock_device_free(g2.dev);
  cr_expect_eq(shared.used, 0, "the shared quota kept %u units", shared.used);
  cr_expect_eq(open_socks, 0);
  vrb_free(&g1.r);
  vrb_free(&g2.r);
  hwsock_policy_free(pol);
}

/* One request; returns its status (0 or a negative HWSOCK_E*), or 1 when
 * it has not completed (a pending ACCEPT). */
static int call(guest *g, unsigned op, unsigned id, unsigned arg0,
                unsigned arg1, const char *uri) {
  size_t ulen = uri ? strlen(uri) : 0;
  uint64_t req = vrb_alloc(&g->r, sizeof(hwsock_req_hdr) + ulen, 8);
  uint64_t resp = vrb_alloc(&g->r, 128, 8);
  cr_assert(req != 0 && resp != 0);
  hwsock_req_hdr *h = vrb_host(&g->r, req);
  hwsock_le16_set(&h->opcode, (uint16_t)op);
  hwsock_le32_set(&h->sock_id, id);
  hwsock_le32_set(&h->arg0, arg0);
  hwsock_le32_set(&h->arg1, arg1);
  hwsock_le32_set(&h->uri_len, (uint32_t)ulen);
  if (ulen)
    memcpy(h + 1, uri, ulen);
  vrb_seg segs[2] = {{req, (uint32_t)(sizeof(*h) + ulen), 0},
                     {resp, 128, HWSOCK_VRING_DESC_F_WRITE}};
  int mine = vrb_add_chain(&g->r, segs, 2);
  cr_assert(mine >= 0);
  vrb_publish(&g->r);
  hwsock_device_kick(g->dev, 0);
  uint32_t head, len;
  int done = 0; /* other entries: an ACCEPT this call cancelled */
  while (vrb_get_used(&g->r, &head, &len))
    done |= head == (uint32_t)mine;
  if (!done)
    return 1;
  const hwsock_resp_hdr *rh = vrb_host(&g->r, resp);
  return -(int)hwsock_le32_get(&rh->status);
}

static int bind_new(guest *g, unsigned id, const char *uri) {
  cr_assert_eq(call(g, HWSOCK_OP_OPEN, id, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM,
                    NULL), 0);
  return call(g, HWSOCK_OP_BIND, id, 0, 0, uri);
}

TestSuite(quota, .init = setup, .fini = teardown);

Test(quota, per_guest_limit_is_emfile_and_named_and_given_back) {
  for (unsigned id = 0; id < 3; id++)
    cr_assert_eq(bind_new(&g1, id, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(g1.logged, 0);
  cr_assert_eq(bind_new(&g1, 3, "tcp://127.0.0.1:0"), HWSOCK_EMFILE);
  cr_assert_str_eq(g1.log, "socket quota 3 reached (raise it here)");
  /* A second refusal within the second is counted, not logged. */
  cr_assert_eq(call(&g1, HWSOCK_OP_BIND, 3, 0, 0, "tcp://127.0.0.1:0"),
               HWSOCK_EMFILE);
  cr_assert_eq(g1.logged, 1);
  /* A denied socket holds no host socket: not counted, refused as denied. */
  cr_assert_eq(bind_new(&g1, 4, "tcp://127.0.0.2:80"), HWSOCK_EACCES);
  /* The other guest is not affected by this one's limit. */
  cr_assert_eq(bind_new(&g2, 0, "tcp://127.0.0.1:0"), 0);
  /* A close gives the unit back; the refused socket may try again. */
  cr_assert_eq(call(&g1, HWSOCK_OP_CLOSE, 0, 0, 0, NULL), 0);
  cr_assert_eq(call(&g1, HWSOCK_OP_BIND, 3, 0, 0, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(shared.used, 4);
}

Test(quota, the_shared_quota_bounds_all_guests_together) {
  for (unsigned id = 0; id < 3; id++)
    cr_assert_eq(bind_new(&g1, id, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(bind_new(&g2, 0, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(bind_new(&g2, 1, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(shared.used, 5);
  cr_assert_eq(bind_new(&g2, 2, "tcp://127.0.0.1:0"), HWSOCK_EMFILE);
  cr_assert_str_eq(g2.log, "shared socket quota 5 reached (the shared hint)");
  /* Freeing the device gives back all of its units. */
  hwsock_device_free(g1.dev);
  g1.dev = NULL;
  cr_assert_eq(shared.used, 2);
  cr_assert_eq(call(&g2, HWSOCK_OP_BIND, 2, 0, 0, "tcp://127.0.0.1:0"), 0);
}

Test(quota, a_pending_accept_holds_a_unit_until_it_ends) {
  cr_assert_eq(bind_new(&g1, 0, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(call(&g1, HWSOCK_OP_LISTEN, 0, 8, 0, NULL), 0);
  cr_assert_eq(call(&g1, HWSOCK_OP_ACCEPT, 0, 0, 5, NULL), 1); /* pending */
  cr_assert_eq(shared.used, 2);
  cr_assert_eq(bind_new(&g1, 1, "tcp://127.0.0.1:0"), 0);
  cr_assert_eq(bind_new(&g1, 2, "tcp://127.0.0.1:0"), HWSOCK_EMFILE);
  /* Closing the listener cancels the ACCEPT: both units come back. */
  cr_assert_eq(call(&g1, HWSOCK_OP_CLOSE, 0, 0, 0, NULL), 0);
  cr_assert_eq(shared.used, 1);
  cr_assert_eq(call(&g1, HWSOCK_OP_BIND, 2, 0, 0, "tcp://127.0.0.1:0"), 0);
}
