/* libhwsock policy engine: first right of refusal.
 *
 * A policy is an ordered list of rules loaded from YAML (docs/POLICY.md).
 * The engine knows nothing of rings or sockets: it sees a parsed address, a
 * direction and a request kind, and answers offload, decline or deny. First
 * matching rule wins; no match gives the file's default (itself "deny" when
 * the file does not say). Addresses are matched as the host kernel will use
 * them (hwsock_policy_effective_addr). Built on libyaml.
 *
 * A loaded hwsock_policy is immutable: hwsock_policy_decide() may be called
 * from any thread at once. */
#ifndef HWSOCK_POLICY_H
#define HWSOCK_POLICY_H

#include "hwsock/common.h"
#include "hwsock/hostopts.h"
#include "hwsock/uri.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hwsock_policy hwsock_policy;

/* Limits of a policy file (docs/POLICY.md, "Limits"). A file beyond any of
 * them is refused with HWSOCK_EBADCONFIG. */
#define HWSOCK_POLICY_MAX_BYTES (1024u * 1024u) /* file size */
#define HWSOCK_POLICY_MAX_RULES 4096u /* entries of `rules` */
#define HWSOCK_POLICY_MAX_LIST 256u   /* entries of one scheme/to/ports list */
#define HWSOCK_POLICY_MAX_TEXT 255u   /* bytes of one reason or backend name */

typedef enum hwsock_action {
  HWSOCK_ACTION_DENY = 0, /* the call fails with the rule's error */
  HWSOCK_ACTION_OFFLOAD = 1,
  HWSOCK_ACTION_DECLINE = 2
} hwsock_action;

typedef enum hwsock_direction {
  HWSOCK_DIR_OUTBOUND = 0, /* connect, sendto */
  HWSOCK_DIR_INBOUND = 1   /* bind, listen */
} hwsock_direction;

/* What the engine answers. Strings point into the policy and live as long
 * as it does. */
typedef struct hwsock_verdict {
  int action;          /* hwsock_action */
  int error;           /* deny: negative HWSOCK_E* the guest receives */
  int rule;            /* index of the matching rule, -1 for the default */
  int line;            /* line of that rule in the file, 0 for the default */
  const char *reason;  /* the rule's reason, or a generated description */
  const char *backend; /* offload: backend name the rule routes to, or NULL
                          for the scheme's default backend */
  const hwsock_hostopts *set; /* offload: host-side options the rule sets
                                 (`set:`), or NULL */
} hwsock_verdict;

/* Loads a policy from a YAML file / from memory. On success *out owns a new
 * policy (free with hwsock_policy_free). On failure returns HWSOCK_EBADCONFIG
 * (or HWSOCK_ENOENT / HWSOCK_ENOMEM) and, when errbuf is not NULL, writes a
 * message with line and column ("policy.yaml:7:5: unknown key 'too'"). */
HWSOCK_EXTERN int hwsock_policy_load_file(const char *path, hwsock_policy **out,
                                          char *errbuf, size_t errlen);
HWSOCK_EXTERN int hwsock_policy_load_string(const char *yaml, size_t len,
                                            const char *name,
                                            hwsock_policy **out, char *errbuf,
                                            size_t errlen);

/* The built-in default policy (docs/POLICY.md, "The default policy"); its
 * YAML text is returned by hwsock_policy_default_yaml() (static string). */
HWSOCK_EXTERN int hwsock_policy_load_default(hwsock_policy **out);
HWSOCK_EXTERN const char *hwsock_policy_default_yaml(void);

/* Decides for one address. `addr` is a parsed address (hwsock_uri_parse);
 * `op` is the HWSOCK_OP_* that asks (informational: rules match on scheme,
 * direction, address and port). The rules see
 * hwsock_policy_effective_addr(addr, direction, 0): an address that function
 * refuses is denied with its error and message, rule -1. Never fails: fills
 * *out. */
HWSOCK_EXTERN void hwsock_policy_decide(const hwsock_policy *p,
                                        const hwsock_addr *addr, int direction,
                                        int op, hwsock_verdict *out);

/* The socket is bound to a local address other than the all-zero wildcard
 * of its family (0.0.0.0 for tcp/udp, :: for tcp6/udp6). */
#define HWSOCK_POLICY_BOUND 1u

/* The address the host kernel will use for `addr` (docs/POLICY.md,
 * "Destinations as the kernel uses them"), which is what rules match:
 *  - an IPv4-mapped address (::ffff:a.b.c.d) is IPv4: scheme tcp/udp,
 *    address a.b.c.d, in both directions;
 *  - an IPv4-compatible address (::a.b.c.d, not :: or ::1) is refused:
 *    HWSOCK_ENETUNREACH as a destination, HWSOCK_EADDRNOTAVAIL as a local
 *    address;
 *  - outbound only: 0.0.0.0 (also from ::ffff:0.0.0.0) becomes 127.0.0.1 and
 *    :: becomes ::1, or, with HWSOCK_POLICY_BOUND in flags, is refused
 *    (HWSOCK_ENETUNREACH: the kernel would send to the bound address);
 *    port 0 is refused (HWSOCK_EINVAL);
 *  - everything else, IPX included, is unchanged.
 * Returns 0 with *out set, a negative HWSOCK_E* above, or HWSOCK_EINVAL for
 * an address the URI parser could not produce or a bad direction; `why`,
 * when not NULL, receives a static message saying why (NULL on success).
 * The result is a fixed point: given to this function again (with the same
 * direction and flags) it comes back unchanged. */
HWSOCK_EXTERN int hwsock_policy_effective_addr(const hwsock_addr *addr,
                                               int direction, unsigned flags,
                                               hwsock_addr *out,
                                               const char **why);

/* Name of an action ("offload") / direction ("outbound"). Static strings. */
HWSOCK_EXTERN const char *hwsock_action_name(int action);
HWSOCK_EXTERN const char *hwsock_direction_name(int direction);

/* True when some verdict of this policy can be "decline" (a decline rule
 * or default). hwsock-run confines a program only under a policy for which
 * this is false: a declined call continues in the host kernel, which
 * re-reads its arguments (seccomp's time-of-check/time-of-use gap). */
HWSOCK_EXTERN int hwsock_policy_can_decline(const hwsock_policy *p);

/* What rule `rule` (a verdict's rule index) asks for on the connections it
 * offloads: HWSOCK_IDENTITY_* of hwsock/identity.h (`identity:` in
 * docs/POLICY.md). HWSOCK_IDENTITY_NONE for the default (-1) or an index out
 * of range. */
HWSOCK_EXTERN int hwsock_policy_rule_identity(const hwsock_policy *p,
                                              int rule);

/* Warnings about a loaded policy (`hwsock-policy lint`): rules whose meaning
 * changed when addresses began to be matched as the kernel uses them
 * (docs/POLICY.md, "Lint warnings"). Calls fn, when not NULL, once per
 * warning in rule order with the rule's line and a message (valid during the
 * call only); returns the number of warnings. A policy with warnings loads
 * and is decided as documented: they point at what its author may have
 * meant otherwise. */
typedef void hwsock_policy_warn_fn(void *arg, int line, const char *msg);
HWSOCK_EXTERN int hwsock_policy_lint(const hwsock_policy *p,
                                     hwsock_policy_warn_fn *fn, void *arg);

/* Number of rules, for diagnostics. */
HWSOCK_EXTERN int hwsock_policy_rule_count(const hwsock_policy *p);

/* Frees a policy. NULL is allowed. The caller must make sure no device still
 * uses it (a device keeps the pointer it was created with). */
HWSOCK_EXTERN void hwsock_policy_free(hwsock_policy *p);

#ifdef __cplusplus
}
#endif
#endif
