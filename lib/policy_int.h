/* Internal: the loaded form of a policy (hwsock/policy.h), shared by the
 * loader (policy_load.c, policy_value.c) and the matcher (policy_match.c).
 *
 * Everything a rule needs at decision time is binary and fixed-size per
 * entry: the matcher never looks at text. One policy is one allocation tree
 * owned by struct hwsock_policy and freed by hwsock_policy_free(). */
#ifndef HWSOCK_LIB_POLICY_INT_H
#define HWSOCK_LIB_POLICY_INT_H

#include <stdint.h>

#include "hwsock/identity.h"
#include "hwsock/policy.h"

/* One `to` entry: an IPv4 or IPv6 prefix, or an IPX network number. */
typedef struct hwsock__net {
  uint8_t family; /* HWSOCK_AF_INET / _INET6 / _IPX */
  uint8_t prefix; /* bits: 0..32, 0..128; 32 for an IPX network */
  uint8_t addr[16]; /* network byte order, host bits zero */
} hwsock__net;

/* One `ports` entry: lo..hi inclusive. */
typedef struct hwsock__ports {
  uint16_t lo, hi;
} hwsock__ports;

#define HWSOCK__DIR_OUT (1u << HWSOCK_DIR_OUTBOUND)
#define HWSOCK__DIR_IN (1u << HWSOCK_DIR_INBOUND)

typedef struct hwsock__rule {
  int action;          /* hwsock_action */
  int error;           /* deny: negative HWSOCK_E* */
  int line;            /* 1-based line of the rule's mapping */
  unsigned dirs;       /* HWSOCK__DIR_* mask */
  unsigned schemes;    /* bit (1 << hwsock_scheme) per scheme; 0 = any */
  char *reason;        /* the rule's reason or "rule N (line L)" */
  char *backend;       /* offload: routed backend, or NULL */
  hwsock_hostopts set; /* offload: host-side options (set.mask 0: none) */
  int identity;        /* offload: HWSOCK_IDENTITY_* (`identity:`) */
  hwsock__net *to;     /* n_to entries; n_to == 0: any address */
  unsigned n_to;
  hwsock__ports *ports; /* n_ports entries; n_ports == 0: any port */
  unsigned n_ports;
} hwsock__rule;

struct hwsock_policy {
  int default_action; /* hwsock_action */
  int default_error;  /* default deny's error, also deny rules' default */
  hwsock__rule *rules;
  unsigned n_rules;
};

/* Value parsers of the loader (policy_value.c). Each parses exactly `len`
 * bytes (no terminator needed) and returns 0, or -1 with *why set to a static
 * message. */
int hwsock__policy_parse_net(const char *s, size_t len, hwsock__net *out,
                             const char **why);
int hwsock__policy_parse_ports(const char *s, size_t len, hwsock__ports *out,
                               const char **why);
/* Errno name ("EACCES") of the ones a deny may use -> negative HWSOCK_E*. */
int hwsock__policy_parse_errno(const char *s, size_t len, int *out);
/* The names hwsock__policy_parse_errno accepts, for messages: "EACCES, ..." */
const char *hwsock__policy_errno_names(void);

#endif
