/* Policy matcher: first matching rule wins, else the default.
 *
 * Decisions are made on the binary address only, and on the address the
 * host kernel will use (hwsock_policy_effective_addr, policy_addr.c): an
 * IPv4-mapped address is tcp/udp traffic to its IPv4 address, an
 * unspecified destination is loopback, a v4-compatible one is refused. So no
 * spelling of an address escapes the rules written for what it reaches. */
#include <stdlib.h>
#include <string.h>

#include "hwsock/wire.h"
#include "policy_int.h"

static int prefix_match(const uint8_t *a, const uint8_t *net,
                        unsigned prefix) {
  unsigned full = prefix / 8u, rest = prefix % 8u;
  if (memcmp(a, net, full) != 0)
    return 0;
  if (rest == 0)
    return 1;
  return (a[full] & (uint8_t)(0xff00u >> rest)) == net[full];
}

static int rule_matches(const hwsock__rule *r, unsigned dir, int scheme,
                        unsigned family, const uint8_t *bytes,
                        uint16_t port) {
  if (!(r->dirs & (1u << dir)))
    return 0;
  if (r->schemes != 0 && !(r->schemes & (1u << scheme)))
    return 0;
  if (r->n_ports > 0) {
    unsigned i = 0;
    while (i < r->n_ports && (port < r->ports[i].lo || port > r->ports[i].hi))
      i++;
    if (i == r->n_ports)
      return 0;
  }
  if (r->n_to > 0) {
    unsigned i = 0;
    while (i < r->n_to && (r->to[i].family != family ||
                           !prefix_match(bytes, r->to[i].addr,
                                         r->to[i].prefix)))
      i++;
    if (i == r->n_to)
      return 0;
  }
  return 1;
}

void hwsock_policy_decide(const hwsock_policy *p, const hwsock_addr *addr,
                          int direction, int op, hwsock_verdict *out) {
  const uint8_t *bytes = NULL;
  const char *why = "invalid address or direction";
  hwsock_addr a;
  int rc = HWSOCK_EINVAL;
  (void)op; /* rules match on scheme, direction, address and port only */

  memset(out, 0, sizeof(*out));
  out->rule = -1;
  if (p != NULL)
    rc = hwsock_policy_effective_addr(addr, direction, 0, &a, &why);
  if (rc == 0) {
    switch (a.family) {
    case HWSOCK_AF_INET:
      bytes = a.u.v4;
      break;
    case HWSOCK_AF_INET6:
      bytes = a.u.v6;
      break;
    case HWSOCK_AF_IPX:
      bytes = a.u.ipx.net;
      break;
    }
    if (bytes == NULL) { /* not something the parser produces */
      rc = HWSOCK_EINVAL;
      why = "invalid address or direction";
    }
  }
  if (rc < 0) { /* refuse rather than guess */
    out->action = HWSOCK_ACTION_DENY;
    out->error = rc;
    out->reason = why;
    return;
  }

  for (unsigned i = 0; i < p->n_rules; i++) {
    const hwsock__rule *r = &p->rules[i];
    if (!rule_matches(r, (unsigned)direction, a.scheme, a.family, bytes,
                      a.port))
      continue;
    out->action = r->action;
    out->rule = (int)i;
    out->line = r->line;
    out->reason = r->reason;
    out->backend = r->backend;
    out->set = r->set.mask ? &r->set : NULL;
    out->error = r->action == HWSOCK_ACTION_DENY      ? r->error
                 : r->action == HWSOCK_ACTION_DECLINE ? HWSOCK_EDECLINED
                                                      : 0;
    return;
  }
  out->action = p->default_action;
  out->reason = "default";
  out->error = p->default_action == HWSOCK_ACTION_DENY ? p->default_error
               : p->default_action == HWSOCK_ACTION_DECLINE
                   ? HWSOCK_EDECLINED
                   : 0;
}

const char *hwsock_action_name(int action) {
  switch (action) {
  case HWSOCK_ACTION_DENY:
    return "deny";
  case HWSOCK_ACTION_OFFLOAD:
    return "offload";
  case HWSOCK_ACTION_DECLINE:
    return "decline";
  default:
    return "unknown";
  }
}

const char *hwsock_direction_name(int direction) {
  switch (direction) {
  case HWSOCK_DIR_OUTBOUND:
    return "outbound";
  case HWSOCK_DIR_INBOUND:
    return "inbound";
  default:
    return "unknown";
  }
}

int hwsock_policy_can_decline(const hwsock_policy *p) {
  if (p == NULL)
    return 1; /* a device given no policy runs the default one, which does */
  if (p->default_action == HWSOCK_ACTION_DECLINE)
    return 1;
  for (unsigned i = 0; i < p->n_rules; i++)
    if (p->rules[i].action == HWSOCK_ACTION_DECLINE)
      return 1;
  return 0;
}

int hwsock_policy_rule_count(const hwsock_policy *p) {
  return p != NULL ? (int)p->n_rules : 0;
}

void hwsock_policy_free(hwsock_policy *p) {
  if (p == NULL)
    return;
  for (unsigned i = 0; i < p->n_rules; i++) {
    free(p->rules[i].reason);
    free(p->rules[i].backend);
    free(p->rules[i].to);
    free(p->rules[i].ports);
  }
  free(p->rules);
  free(p);
}
