/* Driving a backend module like a device does (backend_harness.h). */
#include "support/backend_harness.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

backend_harness bh;

static void on_tick(uv_timer_t *t) { (void)t; }

void bh_setup(const char *path) {
  char err[256] = "";
  cr_assert_eq(uv_loop_init(&bh.loop), 0);
  cr_assert_eq(hwsock_plugin_load(path, &bh.plugin, err, sizeof(err)), 0,
               "%s", err);
  bh.ops = hwsock_plugin_desc(bh.plugin)->ops;
  bh.log[0] = '\0';
  bh.seq = 0;
  uv_timer_init(&bh.loop, &bh.tick);
  uv_timer_start(&bh.tick, on_tick, 20, 20);
}

void bh_teardown(void) {
  uv_timer_stop(&bh.tick);
  uv_close((uv_handle_t *)&bh.tick, NULL);
  uv_run(&bh.loop, UV_RUN_DEFAULT); /* the closing poll handles finish */
  cr_assert_eq(uv_loop_close(&bh.loop), 0, "every handle was closed");
  hwsock_plugin_unload(bh.plugin);
}

void bh_setup_instance(const char *path) {
  bh_setup(path);
  bh_host_init(&bh.host, "");
  cr_assert_eq(bh.ops->create(&bh.host, &bh.inst), 0);
}

void bh_teardown_instance(void) {
  bh.ops->destroy(bh.inst);
  bh_teardown();
}

void bh_on_complete(hwsock_breq *req, int status, size_t len) {
  bh_req *r = (bh_req *)req;
  r->ncomplete++;
  r->status = status;
  r->len = len;
  r->order = ++bh.seq;
}

void bh_on_log(const hwsock_backend_host *h, int level, const char *msg) {
  (void)level;
  (void)h;
  size_t n = strlen(bh.log);
  snprintf(bh.log + n, sizeof(bh.log) - n, "%s\n", msg);
}

void bh_host_init(hwsock_backend_host *h, const char *options) {
  memset(h, 0, sizeof(*h));
  h->size = sizeof(*h);
  h->loop = &bh.loop;
  h->options = options;
  h->complete = bh_on_complete;
  h->log = bh_on_log;
}

void bh_run_for_ms(unsigned ms) {
  uint64_t t0 = uv_hrtime();
  while (uv_hrtime() - t0 < (uint64_t)ms * 1000000)
    uv_run(&bh.loop, UV_RUN_ONCE);
}

void bh_req_init(bh_req *r, uint16_t opcode, int scheme) {
  memset(r, 0, sizeof(*r));
  r->br.size = sizeof(r->br);
  r->br.opcode = opcode;
  r->br.scheme = (uint16_t)scheme;
}

void bh_set_iov(bh_req *r, unsigned n, ...) {
  cr_assert_leq(n, BH_IOV_MAX);
  va_list ap;
  va_start(ap, n);
  r->br.iov_len = 0;
  for (unsigned i = 0; i < n; i++) {
    r->iov[i].iov_base = va_arg(ap, void *);
    r->iov[i].iov_len = va_arg(ap, size_t);
    r->br.iov_len += r->iov[i].iov_len;
  }
  va_end(ap);
  r->br.iov = r->iov;
  r->br.iovcnt = n;
}

void bh_expect_done(const bh_req *r, int status) {
  cr_assert_eq(r->ncomplete, 1, "completed exactly once (%d)", r->ncomplete);
  cr_assert_eq(r->status, status, "status %s, want %s",
               hwsock_err_name(r->status), hwsock_err_name(status));
}

void *bh_open(void *inst, int scheme) {
  hwsock_bopen bo = {.size = sizeof(bo), .scheme = scheme, .reason = ""};
  void *s = NULL;
  cr_assert_eq(bh.ops->open(inst, &bo, &s), 0);
  cr_assert_not_null(s);
  return s;
}

int bh_run_addr(void *s, uint16_t op, const hwsock_addr *a) {
  bh_req r;
  bh_req_init(&r, op, a->scheme);
  r.addr = *a;
  r.br.addr = &r.addr;
  bh.ops->submit(s, &r.br);
  BH_RUN_UNTIL(r.ncomplete);
  cr_assert_eq(r.ncomplete, 1);
  return r.status;
}

int bh_run_send(void *s, int scheme, const void *data, size_t len,
                const hwsock_addr *to) {
  bh_req r;
  bh_req_init(&r, HWSOCK_OP_SEND, scheme);
  if (to != NULL) {
    r.addr = *to;
    r.br.addr = &r.addr;
  }
  bh_set_iov(&r, 1, (void *)data, len);
  bh.ops->submit(s, &r.br);
  BH_RUN_UNTIL(r.ncomplete);
  cr_assert_eq(r.ncomplete, 1);
  if (r.status == 0)
    cr_assert_eq(r.len, len, "a datagram is taken whole");
  return r.status;
}

void bh_submit_recv(void *s, int scheme, bh_req *r, void *buf, size_t len,
                    uint32_t flags) {
  bh_req_init(r, HWSOCK_OP_RECV, scheme);
  r->br.arg0 = flags;
  bh_set_iov(r, 1, buf, len);
  bh.ops->submit(s, &r->br);
}

hwsock_addr bh_getname(void *s, int scheme, uint32_t which, int *status) {
  bh_req r;
  bh_req_init(&r, HWSOCK_OP_GETNAME, scheme);
  r.br.arg0 = which;
  bh.ops->submit(s, &r.br);
  cr_assert_eq(r.ncomplete, 1, "GETNAME completes at once");
  *status = r.status;
  if (r.status == 0)
    cr_assert_eq(r.br.has_peer, 1);
  return r.br.peer;
}
