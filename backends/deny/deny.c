/* deny backend: the socket of a guest call that policy refused.
 *
 * It serves no scheme of its own; the device routes denied sockets to it.
 * open() records the error the policy chose (HWSOCK_EACCES when none), and
 * every request then completes at once with that error, so the guest sees
 * a socket that behaves consistently refused and no host resource is ever
 * touched. */
#include <stdlib.h>

#include "hwsock/backend.h"

typedef struct deny_instance {
  const hwsock_backend_host *host;
} deny_instance;

typedef struct deny_sock {
  deny_instance *inst;
  int error; /* negative HWSOCK_E* */
} deny_sock;

static int deny_create(const hwsock_backend_host *host, void **instance) {
  if (host == NULL || host->complete == NULL)
    return HWSOCK_EINVAL;
  deny_instance *inst = calloc(1, sizeof(*inst));
  if (inst == NULL)
    return HWSOCK_ENOMEM;
  inst->host = host;
  *instance = inst;
  return 0;
}

static void deny_destroy(void *instance) { free(instance); }

static int deny_open(void *instance, const hwsock_bopen *params, void **sock) {
  deny_sock *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return HWSOCK_ENOMEM;
  s->inst = instance;
  /* A positive or absurd value is a device bug; refuse rather than echo. */
  s->error = params->error < 0 && params->error > -4096 ? params->error
                                                        : HWSOCK_EACCES;
  *sock = s;
  return 0;
}

static void deny_submit(void *sock, hwsock_breq *req) {
  deny_sock *s = sock;
  req->has_peer = 0;
  req->resp_flags = 0;
  req->accepted = NULL;
  s->inst->host->complete(req, s->error, 0);
}

static void deny_close(void *sock) { free(sock); }

/* Hand-over (backend.h's export_sock): no host socket, and nothing is
 * ever pending; the state is the error, 4 bytes little-endian. */
static int deny_export(void *sock, hwsock_bexport *out) {
  const deny_sock *s = sock;
  uint32_t e = (uint32_t)-s->error;
  for (int i = 0; i < 4; i++)
    out->state[i] = (uint8_t)(e >> (8 * i));
  out->state_len = 4;
  return 0;
}

static int deny_import(void *instance, const hwsock_bexport *in, void **sock) {
  if (in->fd >= 0 || in->state_len != 4)
    return HWSOCK_EINVAL;
  uint32_t e = 0;
  for (int i = 0; i < 4; i++)
    e |= (uint32_t)in->state[i] << (8 * i);
  if (e == 0 || e >= 4096)
    return HWSOCK_EINVAL;
  deny_sock *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return HWSOCK_ENOMEM;
  s->inst = instance;
  s->error = -(int)e;
  *sock = s;
  return 0;
}

static const hwsock_backend_ops deny_ops = {
    .size = sizeof(hwsock_backend_ops),
    .create = deny_create,
    .destroy = deny_destroy,
    .open = deny_open,
    .submit = deny_submit,
    .close = deny_close,
    .export_sock = deny_export,
    .import_sock = deny_import,
};

static const char *const deny_schemes[] = {NULL};

static const hwsock_backend_desc deny_desc = {
    .size = sizeof(hwsock_backend_desc),
    .abi_version = HWSOCK_BACKEND_ABI_VERSION,
    .name = "deny",
    .description = "refuses every request of a socket policy denied",
    .schemes = deny_schemes,
    .ops = &deny_ops,
};

HWSOCK_BACKEND_DEFINE(deny_desc)
