/* libFuzzer: hwsock_policy_load_string on arbitrary bytes. A refused file
 * must come with a positioned message naming the file; a loaded one must
 * give sane, repeatable verdicts for a few fixed addresses, the verdict of
 * the address the kernel will use (hwsock_policy_effective_addr): an IPv4
 * address and its v4-mapped spelling alike, 0.0.0.0 and :: as destinations
 * alike with loopback, and a v4-compatible address always refused. Any
 * breach aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hwsock/policy.h"
#include "hwsock/uri.h"
#include "hwsock/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const uris[] = {
    "tcp://127.0.0.1:80",           "tcp6://[::ffff:127.0.0.1]:80",
    "tcp6://[::127.0.0.1]:80",      "udp://169.254.169.254:80",
    "udp6://[::ffff:169.254.169.254]:80", "udp6://[::169.254.169.254]:80",
    "tcp6://[::1]:443",             "tcp6://[fe80::1%25eth0]:22",
    "udp://10.0.0.1:0",             "ipx://0000cafe.02005e0001a2.4000",
    "tcp://0.0.0.0:0",              "udp6://[::]:9",
    "tcp://0.0.0.0:80",             "tcp6://[::ffff:0.0.0.0]:80",
    "tcp6://[::]:443",
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
  /* the rules saw the effective address: deciding on it gives the same */
  hwsock_addr eff;
  if (hwsock_policy_effective_addr(a, dir, 0, &eff, NULL) == 0) {
    hwsock_policy_decide(p, &eff, dir, HWSOCK_OP_CONNECT, &again);
    if (memcmp(v, &again, sizeof(again)) != 0)
      abort();
  } else if (v->action != HWSOCK_ACTION_DENY || v->rule != -1) {
    abort();
  }
}

static int lint_seen;

static void on_warning(void *arg, int line, const char *msg) {
  (void)arg;
  if (line < 1 || msg == NULL || strncmp(msg, "rule ", 5) != 0 ||
      strlen(msg) < 10)
    abort();
  lint_seen++;
}

static int same(const hwsock_verdict *a, const hwsock_verdict *b) {
  return a->action == b->action && a->rule == b->rule && a->error == b->error;
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

  for (int dir = HWSOCK_DIR_OUTBOUND; dir <= HWSOCK_DIR_INBOUND; dir++) {
    hwsock_verdict v[NURIS];
    for (size_t i = 0; i < NURIS; i++)
      decide(p, &addrs[i], dir, &v[i]);
    /* uris[0..2] and [3..5]: an IPv4 address, v4-mapped, v4-compatible */
    for (size_t g = 0; g < 6; g += 3) {
      if (!same(&v[g], &v[g + 1]))
        abort();
      if (v[g + 2].action != HWSOCK_ACTION_DENY || v[g + 2].rule != -1 ||
          v[g + 2].error != (dir == HWSOCK_DIR_OUTBOUND ? HWSOCK_ENETUNREACH
                                                        : HWSOCK_EADDRNOTAVAIL))
        abort();
    }
    /* destinations 0.0.0.0 and ::ffff:0.0.0.0 are 127.0.0.1, :: is ::1 */
    if (dir == HWSOCK_DIR_OUTBOUND &&
        (!same(&v[12], &v[0]) || !same(&v[13], &v[0]) || !same(&v[14], &v[6])))
      abort();
  }
  /* lint: at most three warnings a rule (tcp pair, udp pair, unspecified),
   * each with a rule's line and a message naming the rule */
  lint_seen = 0;
  int warnings = hwsock_policy_lint(p, on_warning, p);
  if (warnings < 0 || warnings > 3 * hwsock_policy_rule_count(p) ||
      warnings != lint_seen || hwsock_policy_lint(p, NULL, NULL) != warnings)
    abort();
  hwsock_policy_free(p);
  return 0;
}
