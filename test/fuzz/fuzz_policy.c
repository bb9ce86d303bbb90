/* libFuzzer: hwsock_policy_load_string on arbitrary bytes. A refused file
 * must come with a positioned message naming the file; a loaded one must
 * give sane, repeatable verdicts for a few fixed addresses, and (when no
 * rule names a scheme) the same verdict for an IPv4 address and its
 * v4-mapped and v4-compatible IPv6 spellings. Any breach aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hwsock/policy.h"
#include "hwsock/uri.h"
#include "hwsock/wire.h"
#include "policy_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const uris[] = {
    "tcp://127.0.0.1:80",           "tcp6://[::ffff:127.0.0.1]:80",
    "tcp6://[::127.0.0.1]:80",      "udp://169.254.169.254:80",
    "udp6://[::ffff:169.254.169.254]:80", "udp6://[::169.254.169.254]:80",
    "tcp6://[::1]:443",             "tcp6://[fe80::1%25eth0]:22",
    "udp://10.0.0.1:0",             "ipx://0000cafe.02005e0001a2.4000",
    "tcp://0.0.0.0:0",              "udp6://[::]:9",
};
#define NURIS (sizeof(uris) / sizeof(uris[0]))

static void decide(const hwsock_policy *p, const hwsock_addr *a, int dir,
                   hwsock_verdict *v) {
  hwsock_verdict again;
  int n = hwsock_policy_rule_count(p);
  hwsock_policy_decide(p, a, dir, HWSOCK_OP_CONNECT, v);
  if (v->action < HWSOCK_ACTION_DENY || v->action > HWSOCK_ACTION_DECLINE ||
      v->reason == NULL || v->rule < -1 || v->rule >= n)
    abort();
  if ((v->rule == -1) != (v->line == 0))
    abort();
  if ((v->action == HWSOCK_ACTION_DENY) != (v->error < 0 &&
                                            v->error != HWSOCK_EDECLINED))
    abort();
  if (v->backend != NULL && v->action != HWSOCK_ACTION_OFFLOAD)
    abort();
  hwsock_policy_decide(p, a, dir, HWSOCK_OP_CONNECT, &again);
  if (memcmp(v, &again, sizeof(again)) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static hwsock_addr addrs[NURIS];
  static int ready;
  char err[256];
  hwsock_policy *p = NULL;
  int rc;

  if (!ready) {
    for (size_t i = 0; i < NURIS; i++)
      if (hwsock_uri_parse(uris[i], strlen(uris[i]), HWSOCK_URI_ALLOW_PORT0,
                           &addrs[i], NULL) != 0)
        abort();
    ready = 1;
  }
  memset(err, 'x', sizeof(err));
  rc = hwsock_policy_load_string((const char *)data, size, "f.yaml", &p, err,
                                 sizeof(err));
  if (rc != 0) {
    if (p != NULL || rc != HWSOCK_EBADCONFIG || strncmp(err, "f.yaml:", 7))
      abort();
    if (memchr(err, '\0', sizeof(err)) == NULL)
      abort();
    return 0;
  }
  if (p == NULL)
    abort();

  int scheme_free = 1;
  for (unsigned i = 0; i < p->n_rules; i++)
    scheme_free &= p->rules[i].schemes == 0;
  for (int dir = HWSOCK_DIR_OUTBOUND; dir <= HWSOCK_DIR_INBOUND; dir++) {
    hwsock_verdict v[NURIS];
    for (size_t i = 0; i < NURIS; i++)
      decide(p, &addrs[i], dir, &v[i]);
    /* uris[0..2] and [3..5]: one IPv4 address, three spellings */
    for (size_t g = 0; scheme_free && g < 6; g += 3)
      for (size_t k = 1; k < 3; k++)
        if (v[g].action != v[g + k].action || v[g].rule != v[g + k].rule)
          abort();
  }
  hwsock_policy_free(p);
  return 0;
}
