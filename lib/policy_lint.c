/* hwsock_policy_lint: rules whose meaning changed when addresses began to
 * be matched as the host kernel uses them (policy_addr.c). Such a file still
 * loads and is decided exactly as documented; the warnings say where the
 * operator may have meant something else (docs/POLICY.md, "Lint warnings").
 *  - A v4-mapped address of a tcp6/udp6 socket is matched as tcp/udp: a rule
 *    that names tcp but not tcp6 now sees those sockets too, and one that
 *    names tcp6 but not tcp no longer does (its IPv4 entries never match).
 *  - Destinations 0.0.0.0 and :: are matched as 127.0.0.1 and ::1: an entry
 *    for exactly the unspecified address matches binds only. */
#include <stdio.h>
#include <string.h>

#include "hwsock/wire.h"
#include "policy_int.h"

static const struct {
  int v4, v6;
} pairs[] = {{HWSOCK_SCHEME_TCP, HWSOCK_SCHEME_TCP6},
             {HWSOCK_SCHEME_UDP, HWSOCK_SCHEME_UDP6}};

static int unspecified_entry(const hwsock__net *n) {
  static const uint8_t zero[16];
  return (n->family == HWSOCK_AF_INET && n->prefix == 32 &&
          memcmp(n->addr, zero, 4) == 0) ||
         (n->family == HWSOCK_AF_INET6 && n->prefix == 128 &&
          memcmp(n->addr, zero, 16) == 0);
}

typedef struct lint {
  hwsock_policy_warn_fn *fn;
  void *arg;
  int count;
} lint;

static void warn(lint *l, const hwsock__rule *r, unsigned i,
                 const char *text) {
  char msg[320];
  snprintf(msg, sizeof(msg), "rule %u: %s", i + 1, text);
  l->count++;
  if (l->fn != NULL)
    l->fn(l->arg, r->line, msg);
}

static void lint_rule(lint *l, const hwsock__rule *r, unsigned i) {
  unsigned v4_entries = 0, unspec = 0;
  char text[288];
  for (unsigned k = 0; k < r->n_to; k++) {
    v4_entries += r->to[k].family == HWSOCK_AF_INET;
    unspec += unspecified_entry(&r->to[k]);
  }
  for (size_t k = 0; r->schemes != 0 && k < sizeof(pairs) / sizeof(*pairs);
       k++) {
    int has4 = (r->schemes >> pairs[k].v4) & 1u;
    int has6 = (r->schemes >> pairs[k].v6) & 1u;
    const char *n4 = hwsock_scheme_name(pairs[k].v4);
    const char *n6 = hwsock_scheme_name(pairs[k].v6);
    text[0] = '\0';
    if (has6 && !has4 && v4_entries > 0)
      snprintf(text, sizeof(text),
               "its IPv4 entries never match: an IPv4-mapped address "
               "(::ffff:a.b.c.d) of a %s socket is matched as %s; add %s to "
               "'scheme'",
               n6, n4, n4);
    else if (has6 && !has4 && r->n_to == 0)
      snprintf(text, sizeof(text),
               "no longer matches %s sockets whose address is IPv4-mapped "
               "(::ffff:a.b.c.d): they are matched as %s",
               n6, n4);
    else if (has4 && !has6 && (v4_entries > 0 || r->n_to == 0))
      snprintf(text, sizeof(text),
               "now also matches %s sockets whose address is IPv4-mapped "
               "(::ffff:a.b.c.d): they are matched as %s",
               n6, n4);
    if (text[0] != '\0')
      warn(l, r, i, text);
  }
  if (unspec > 0 && (r->dirs & HWSOCK__DIR_OUT))
    warn(l, r, i,
         (r->dirs & HWSOCK__DIR_IN)
             ? "its entry for 0.0.0.0 or :: matches binds only: destinations "
               "0.0.0.0 and :: are matched as 127.0.0.1 and ::1"
             : "its entry for 0.0.0.0 or :: never matches: destinations "
               "0.0.0.0 and :: are matched as 127.0.0.1 and ::1");
}

int hwsock_policy_lint(const hwsock_policy *p, hwsock_policy_warn_fn *fn,
                       void *arg) {
  lint l = {fn, arg, 0};
  if (p == NULL)
    return 0;
  for (unsigned i = 0; i < p->n_rules; i++)
    lint_rule(&l, &p->rules[i], i);
  return l.count;
}
