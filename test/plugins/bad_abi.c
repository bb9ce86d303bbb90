/* A test module that claims a future plugin ABI: the loader must refuse it
 * before calling anything of it. Its ops are complete and valid, so the ABI
 * version alone is what makes it wrong. */
#include "hwsock/backend.h"

static int bad_create(const hwsock_backend_host *host, void **instance) {
  *instance = (void *)host;
  return 0;
}
static void bad_destroy(void *instance) {}
static int bad_open(void *instance, const hwsock_bopen *params, void **sock) {
  *sock = instance;
  return 0;
}
static void bad_submit(void *sock, hwsock_breq *req) {}
static void bad_close(void *sock) {}

static const hwsock_backend_ops bad_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = bad_create,
    .destroy = bad_destroy,
    .open = bad_open,
    .submit = bad_submit,
    .close = bad_close,
};

static const char *const bad_schemes[] = {"tcp", NULL};

static const hwsock_backend_desc bad_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION + 1,
    .name = "bad-abi",
    .description = "test module built for a newer plugin ABI",
    .schemes = bad_schemes,
    .ops = &bad_ops,
};

HWSOCK_BACKEND_DEFINE(bad_desc)
