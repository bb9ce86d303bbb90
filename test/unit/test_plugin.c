/* The plugin loader (lib/plugin.c) and the deny backend module. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hwsock/backend.h"
#include "hwsock/device.h"

#define DENY_SO HWSOCK_BUILD_BACKEND_DIR "/deny.so"
#define TCP_SO HWSOCK_BUILD_BACKEND_DIR "/tcp.so"

/* ---- a host that records completions ------------------------------------ */

typedef struct rec_req {
  hwsock_breq br; /* first: complete() gets &br */
  int ncomplete;
  int status;
  size_t len;
} rec_req;

static void rec_complete(hwsock_breq *req, int status, size_t len) {
  rec_req *r = (rec_req *)req;
  r->ncomplete++;
  r->status = status;
  r->len = len;
}

static hwsock_backend_host rec_host(void) {
  hwsock_backend_host h;
  memset(&h, 0, sizeof(h));
  h.size = sizeof(h);
  h.options = "";
  h.complete = rec_complete;
  return h;
}

static void rec_init(rec_req *r, uint16_t opcode) {
  memset(r, 0, sizeof(*r));
  r->br.size = sizeof(r->br);
  r->br.opcode = opcode;
  r->br.scheme = HWSOCK_SCHEME_TCP;
}

/* ---- loading -------------------------------------------------------------- */

Test(plugin, loads_the_deny_module) {
  char err[256] = "";
  hwsock_plugin *p = NULL;
  cr_assert_eq(hwsock_plugin_load(DENY_SO, &p, err, sizeof(err)), 0, "%s",
               err);
  const hwsock_backend_desc *d = hwsock_plugin_desc(p);
  cr_assert_not_null(d);
  cr_assert_str_eq(d->name, "deny");
  cr_assert_eq(d->abi_version, HWSOCK_BACKEND_ABI_VERSION);
  cr_assert_null(d->schemes[0], "deny serves no scheme of its own");
  cr_assert_eq(hwsock_backend_desc_check(d, err, sizeof(err)), 0, "%s", err);
  hwsock_plugin_unload(p);
}

Test(plugin, loads_the_tcp_module_with_its_schemes) {
  char err[256] = "";
  hwsock_plugin *p = NULL;
  cr_assert_eq(hwsock_plugin_load(TCP_SO, &p, err, sizeof(err)), 0, "%s", err);
  const hwsock_backend_desc *d = hwsock_plugin_desc(p);
  cr_assert_str_eq(d->name, "tcp");
  cr_assert_str_eq(d->schemes[0], "tcp");
  cr_assert_str_eq(d->schemes[1], "tcp6");
  cr_assert_null(d->schemes[2]);
  hwsock_plugin_unload(p);
}

Test(plugin, the_same_module_loads_twice_independently) {
  hwsock_plugin *a = NULL, *b = NULL;
  cr_assert_eq(hwsock_plugin_load(DENY_SO, &a, NULL, 0), 0);
  cr_assert_eq(hwsock_plugin_load(DENY_SO, &b, NULL, 0), 0);
  cr_assert_eq(hwsock_plugin_desc(a), hwsock_plugin_desc(b));
  hwsock_plugin_unload(a);
  /* b still holds the module: its descriptor is still readable */
  cr_assert_str_eq(hwsock_plugin_desc(b)->name, "deny");
  hwsock_plugin_unload(b);
}

Test(plugin, deny_requests_fail_with_the_configured_error) {
  char err[256] = "";
  hwsock_plugin *p = NULL;
  cr_assert_eq(hwsock_plugin_load(DENY_SO, &p, err, sizeof(err)), 0, "%s",
               err);
  const hwsock_backend_ops *ops = hwsock_plugin_desc(p)->ops;
  hwsock_backend_host host = rec_host();
  void *inst = NULL;
  cr_assert_eq(ops->create(&host, &inst), 0);

  hwsock_bopen bo = {.size = sizeof(bo), .scheme = HWSOCK_SCHEME_TCP,
                     .error = HWSOCK_ENETUNREACH, .reason = "no route"};
  void *sock = NULL;
  cr_assert_eq(ops->open(inst, &bo, &sock), 0);
  static const uint16_t opcodes[] = {HWSOCK_OP_CONNECT, HWSOCK_OP_SEND,
                                     HWSOCK_OP_RECV, HWSOCK_OP_GETNAME};
  for (size_t i = 0; i < sizeof(opcodes) / sizeof(opcodes[0]); i++) {
    rec_req r;
    rec_init(&r, opcodes[i]);
    ops->submit(sock, &r.br);
    cr_assert_eq(r.ncomplete, 1, "opcode %u completes at once, once",
                 opcodes[i]);
    cr_assert_eq(r.status, HWSOCK_ENETUNREACH, "opcode %u: %s", opcodes[i],
                 hwsock_err_name(r.status));
    cr_assert_eq(r.len, 0);
  }
  ops->close(sock);

  /* no error given: permission denied */
  bo.error = 0;
  cr_assert_eq(ops->open(inst, &bo, &sock), 0);
  rec_req r;
  rec_init(&r, HWSOCK_OP_BIND);
  ops->submit(sock, &r.br);
  cr_assert_eq(r.ncomplete, 1);
  cr_assert_eq(r.status, HWSOCK_EACCES);
  ops->close(sock);

  ops->destroy(inst);
  hwsock_plugin_unload(p);
}

Test(plugin, missing_file_is_enoent) {
  char err[256] = "";
  hwsock_plugin *p = (hwsock_plugin *)&err; /* must be reset to NULL */
  int rc = hwsock_plugin_load(HWSOCK_BUILD_BACKEND_DIR "/no-such-backend.so",
                              &p, err, sizeof(err));
  cr_assert_eq(rc, HWSOCK_ENOENT, "%s", hwsock_err_name(rc));
  cr_assert_null(p);
  cr_assert(strstr(err, "no-such-backend.so") != NULL, "message: %s", err);
}

Test(plugin, a_file_that_is_not_a_module_is_refused_with_a_message) {
  char path[] = "/tmp/hwsock-test-notaplugin-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  const char text[] = "this is not an ELF shared object\n";
  cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
  close(fd);

  char err[256] = "";
  hwsock_plugin *p = NULL;
  int rc = hwsock_plugin_load(path, &p, err, sizeof(err));
  unlink(path);
  cr_assert_eq(rc, HWSOCK_EABI, "%s", hwsock_err_name(rc));
  cr_assert_null(p);
  cr_assert(strstr(err, "cannot load") != NULL, "message: %s", err);
  cr_assert(strstr(err, "hwsock-test-notaplugin-") != NULL, "message: %s", err);
  cr_assert_null(strchr(err, '\n'), "one line: %s", err);
}

Test(plugin, a_module_without_the_entry_symbol_is_refused) {
  char err[256] = "";
  hwsock_plugin *p = NULL;
  int rc = hwsock_plugin_load(HWSOCK_TEST_NO_ENTRY_PLUGIN, &p, err,
                              sizeof(err));
  cr_assert_eq(rc, HWSOCK_EABI, "%s", hwsock_err_name(rc));
  cr_assert_null(p);
  cr_assert(strstr(err, "no_entry.so: not a hwsock backend: no symbol "
                        "hwsock_backend_entry") != NULL,
            "message: %s", err);
}

Test(plugin, a_module_built_for_another_abi_is_refused) {
  char err[256] = "";
  hwsock_plugin *p = NULL;
  int rc = hwsock_plugin_load(HWSOCK_TEST_BAD_ABI_PLUGIN, &p, err,
                              sizeof(err));
  cr_assert_eq(rc, HWSOCK_EABI, "%s", hwsock_err_name(rc));
  cr_assert_null(p);
  cr_assert_str_eq(err,
                   "bad_abi.so: plugin ABI version 2, this library supports 1");
}

Test(plugin, bad_arguments) {
  hwsock_plugin *p = NULL;
  char err[64];
  cr_assert_eq(hwsock_plugin_load(NULL, &p, err, sizeof(err)), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_plugin_load(DENY_SO, NULL, err, sizeof(err)),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_plugin_load("", &p, NULL, 0), HWSOCK_EINVAL);
  /* a folder is no module */
  cr_assert_eq(hwsock_plugin_load(HWSOCK_BUILD_BACKEND_DIR, &p, err,
                                  sizeof(err)),
               HWSOCK_EINVAL);
  cr_assert_null(hwsock_plugin_desc(NULL));
  hwsock_plugin_unload(NULL);
}

/* ---- descriptor checks ----------------------------------------------------- */

static int ok_create(const hwsock_backend_host *host, void **instance) {
  *instance = NULL;
  return 0;
}
static void ok_destroy(void *instance) {}
static int ok_open(void *instance, const hwsock_bopen *params, void **sock) {
  return HWSOCK_ENOSYS;
}
static void ok_submit(void *sock, hwsock_breq *req) {}
static void ok_close(void *sock) {}

static hwsock_backend_ops good_ops(void) {
  hwsock_backend_ops o = {.size = sizeof(o), .create = ok_create,
                          .destroy = ok_destroy, .open = ok_open,
                          .submit = ok_submit, .close = ok_close};
  return o;
}

static const char *const tcp_schemes[] = {"tcp", "tcp6", NULL};

static hwsock_backend_desc good_desc(const hwsock_backend_ops *ops) {
  hwsock_backend_desc d = {.size = sizeof(d),
                           .abi_version = HWSOCK_BACKEND_ABI_VERSION,
                           .name = "my_backend-2",
                           .description = "test",
                           .schemes = tcp_schemes,
                           .ops = ops};
  return d;
}

/* Checks d and expects failure with HWSOCK_EABI and `msg` in the message. */
static void expect_refused(const hwsock_backend_desc *d, const char *msg) {
  char err[256] = "";
  int rc = hwsock_backend_desc_check(d, err, sizeof(err));
  cr_assert_eq(rc, HWSOCK_EABI, "want EABI for '%s', got %s", msg,
               hwsock_err_name(rc));
  cr_assert(strstr(err, msg) != NULL, "message '%s' lacks '%s'", err, msg);
}

Test(desc_check, a_good_descriptor_passes) {
  hwsock_backend_ops o = good_ops();
  hwsock_backend_desc d = good_desc(&o);
  char err[128] = "untouched";
  cr_assert_eq(hwsock_backend_desc_check(&d, err, sizeof(err)), 0, "%s", err);
  static const char *const none[] = {NULL};
  d.schemes = none;
  cr_assert_eq(hwsock_backend_desc_check(&d, NULL, 0), 0);
}

Test(desc_check, abi_version_2_is_refused) {
  hwsock_backend_ops o = good_ops();
  hwsock_backend_desc d = good_desc(&o);
  d.abi_version = 2;
  char err[256] = "";
  cr_assert_eq(hwsock_backend_desc_check(&d, err, sizeof(err)), HWSOCK_EABI);
  cr_assert_str_eq(err, "backend descriptor: plugin ABI version 2, this "
                        "library supports 1");
  d.abi_version = 0;
  expect_refused(&d, "plugin ABI version 0, this library supports 1");
}

Test(desc_check, too_small_sizes_are_refused) {
  hwsock_backend_ops o = good_ops();
  hwsock_backend_desc d = good_desc(&o);
  d.size = 8;
  expect_refused(&d, "descriptor size 8, smaller than");
  d = good_desc(&o);
  o.size = 4;
  expect_refused(&d, "ops size 4, smaller than");
}

Test(desc_check, larger_sizes_of_a_newer_minor_layout_pass) {
  /* structs only grow at the end: a bigger size is accepted */
  hwsock_backend_ops o = good_ops();
  hwsock_backend_desc d = good_desc(&o);
  d.size += 16;
  o.size += 16;
  cr_assert_eq(hwsock_backend_desc_check(&d, NULL, 0), 0);
}

Test(desc_check, every_required_op_is_checked) {
  static const char *const names[] = {"create", "destroy", "open", "submit",
                                      "close"};
  for (int i = 0; i < 5; i++) {
    hwsock_backend_ops o = good_ops();
    switch (i) {
    case 0: o.create = NULL; break;
    case 1: o.destroy = NULL; break;
    case 2: o.open = NULL; break;
    case 3: o.submit = NULL; break;
    default: o.close = NULL; break;
    }
    hwsock_backend_desc d = good_desc(&o);
    char want[64];
    snprintf(want, sizeof(want), "lacks the required op %s()", names[i]);
    expect_refused(&d, want);
  }
  hwsock_backend_desc d = good_desc(NULL);
  expect_refused(&d, "has no ops");
}

Test(desc_check, names_are_checked) {
  hwsock_backend_ops o = good_ops();
  hwsock_backend_desc d = good_desc(&o);
  static const char *const bad[] = {"", "TCP", "tc p", "tcp.so", "t/x",
                                    "abcdefghijklmnopqrstuvwxyz0123456"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    d.name = bad[i];
    expect_refused(&d, "backend name must be 1 to 32 of [a-z0-9_-]");
  }
  d.name = NULL;
  expect_refused(&d, "backend name");
  d.name = "abcdefghijklmnopqrstuvwxyz012345"; /* exactly 32 */
  cr_assert_eq(hwsock_backend_desc_check(&d, NULL, 0), 0);
}

Test(desc_check, schemes_are_checked) {
  hwsock_backend_ops o = good_ops();
  hwsock_backend_desc d = good_desc(&o);
  static const char *const unknown[] = {"tcp", "sctp", NULL};
  d.schemes = unknown;
  expect_refused(&d, "unknown scheme 'sctp'");
  static const char *const twice[] = {"udp", "ipx", "udp", NULL};
  d.schemes = twice;
  expect_refused(&d, "scheme 'udp' listed twice");
  d.schemes = NULL;
  expect_refused(&d, "NULL-terminated list");
  static const char *const all[] = {"tcp", "udp", "tcp6", "udp6", "ipx",
                                    NULL};
  d.schemes = all;
  cr_assert_eq(hwsock_backend_desc_check(&d, NULL, 0), 0);
}

Test(desc_check, null_descriptor_and_tiny_errbuf) {
  char err[8];
  cr_assert_eq(hwsock_backend_desc_check(NULL, err, sizeof(err)),
               HWSOCK_EINVAL);
  cr_assert_eq(strlen(err), sizeof(err) - 1, "truncated, terminated");
  hwsock_backend_ops o = good_ops();
  hwsock_backend_desc d = good_desc(&o);
  d.abi_version = 7;
  cr_assert_eq(hwsock_backend_desc_check(&d, err, 1), HWSOCK_EABI);
  cr_assert_eq(err[0], '\0');
}
