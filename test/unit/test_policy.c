/* The policy engine (hwsock/policy.h, docs/POLICY.md): loading, every error
 * a file can have (with its exact position and message), and decisions. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hwsock/policy.h"
#include "hwsock/uri.h"
#include "hwsock/wire.h"

#define OUT HWSOCK_DIR_OUTBOUND
#define IN HWSOCK_DIR_INBOUND

static hwsock_policy *load(const char *yaml) {
  char err[512];
  hwsock_policy *p = NULL;
  int rc = hwsock_policy_load_string(yaml, strlen(yaml), "t.yaml", &p, err,
                                     sizeof(err));
  cr_assert_eq(rc, 0, "load failed: %s", err);
  cr_assert_not_null(p);
  return p;
}

/* The file must be refused with exactly this message. */
static void refused(const char *yaml, const char *want) {
  char err[512];
  hwsock_policy *p = (hwsock_policy *)1;
  int rc = hwsock_policy_load_string(yaml, strlen(yaml), "t.yaml", &p, err,
                                     sizeof(err));
  cr_assert_eq(rc, HWSOCK_EBADCONFIG, "rc %d for:\n%s", rc, yaml);
  cr_assert_null(p);
  cr_assert_str_eq(err, want);
}

static hwsock_verdict decide(const hwsock_policy *p, const char *uri,
                             int dir) {
  hwsock_addr a;
  hwsock_verdict v;
  const char *why = NULL;
  int rc = hwsock_uri_parse(uri, strlen(uri), HWSOCK_URI_ALLOW_PORT0, &a,
                            &why);
  cr_assert_eq(rc, 0, "%s: %s", uri, why ? why : "?");
  hwsock_policy_decide(p, &a, dir,
                       dir == OUT ? HWSOCK_OP_CONNECT : HWSOCK_OP_BIND, &v);
  return v;
}

static int action(const hwsock_policy *p, const char *uri, int dir) {
  return decide(p, uri, dir).action;
}

#define OFFLOAD HWSOCK_ACTION_OFFLOAD
#define DECLINE HWSOCK_ACTION_DECLINE
#define DENY HWSOCK_ACTION_DENY

/* ---- decisions --------------------------------------------------------- */

Test(policy, first_matching_rule_wins) {
  hwsock_policy *p = load("version: 1\n"
                          "default: offload\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    to: 10.1.0.0/16\n"
                          "    reason: narrow first\n"
                          "  - action: decline\n"
                          "    to: 10.0.0.0/8\n"
                          "  - action: offload\n"
                          "    to: 10.1.2.3\n");
  hwsock_verdict v = decide(p, "tcp://10.1.2.3:80", OUT);
  cr_assert_eq(v.action, DENY);
  cr_assert_eq(v.rule, 0);
  cr_assert_eq(v.line, 4);
  cr_assert_str_eq(v.reason, "narrow first");
  cr_assert_eq(v.error, HWSOCK_EACCES);

  v = decide(p, "tcp://10.2.0.1:80", OUT);
  cr_assert_eq(v.action, DECLINE);
  cr_assert_eq(v.rule, 1);
  cr_assert_eq(v.line, 7);
  cr_assert_str_eq(v.reason, "rule 2 (line 7)");
  cr_assert_eq(v.error, HWSOCK_EDECLINED);
  cr_assert_null(v.backend);

  v = decide(p, "tcp://11.0.0.1:80", OUT);
  cr_assert_eq(v.action, OFFLOAD);
  cr_assert_eq(v.rule, -1);
  cr_assert_eq(v.line, 0);
  cr_assert_str_eq(v.reason, "default");
  cr_assert_eq(v.error, 0);
  cr_assert_eq(hwsock_policy_rule_count(p), 3);
  hwsock_policy_free(p);
}

Test(policy, default_is_deny_with_eacces_when_absent) {
  hwsock_policy *p = load("version: 1\n");
  hwsock_verdict v = decide(p, "udp://192.0.2.1:53", OUT);
  cr_assert_eq(v.action, DENY);
  cr_assert_eq(v.error, HWSOCK_EACCES);
  cr_assert_eq(v.rule, -1);
  cr_assert_str_eq(v.reason, "default");
  cr_assert_eq(hwsock_policy_rule_count(p), 0);
  hwsock_policy_free(p);
}

Test(policy, default_action_and_default_error) {
  hwsock_policy *p = load("version: 1\ndefault: decline\nrules: []\n");
  cr_assert_eq(action(p, "tcp://192.0.2.1:80", OUT), DECLINE);
  cr_assert_eq(decide(p, "tcp://192.0.2.1:80", OUT).error, HWSOCK_EDECLINED);
  hwsock_policy_free(p);

  /* default_error is the error of the default deny and of deny rules that
   * do not name their own */
  p = load("version: 1\n"
           "default_error: ENETUNREACH\n"
           "rules:\n"
           "  - action: deny\n"
           "    to: 192.0.2.0/24\n"
           "  - action: deny\n"
           "    to: 198.51.100.0/24\n"
           "    error: EHOSTUNREACH\n");
  cr_assert_eq(decide(p, "tcp://192.0.2.1:80", OUT).error, HWSOCK_ENETUNREACH);
  cr_assert_eq(decide(p, "tcp://198.51.100.1:80", OUT).error,
               HWSOCK_EHOSTUNREACH);
  cr_assert_eq(decide(p, "tcp://203.0.113.1:80", OUT).error,
               HWSOCK_ENETUNREACH);
  cr_assert_eq(decide(p, "tcp://203.0.113.1:80", OUT).action, DENY);
  hwsock_policy_free(p);
}

Test(policy, error_names_map_to_hwsock_errors) {
  static const struct {
    const char *name;
    int err;
  } map[] = {{"EACCES", HWSOCK_EACCES},
             {"EPERM", HWSOCK_EPERM},
             {"ECONNREFUSED", HWSOCK_ECONNREFUSED},
             {"ECONNRESET", HWSOCK_ECONNRESET},
             {"ENETUNREACH", HWSOCK_ENETUNREACH},
             {"EHOSTUNREACH", HWSOCK_EHOSTUNREACH},
             {"ENETDOWN", HWSOCK_ENETDOWN},
             {"ETIMEDOUT", HWSOCK_ETIMEDOUT},
             {"EADDRNOTAVAIL", HWSOCK_EADDRNOTAVAIL},
             {"EADDRINUSE", HWSOCK_EADDRINUSE},
             {"EAFNOSUPPORT", HWSOCK_EAFNOSUPPORT},
             {"EPROTONOSUPPORT", HWSOCK_EPROTONOSUPPORT},
             {"EOPNOTSUPP", HWSOCK_EOPNOTSUPP}};
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "version: 1\nrules:\n  - action: deny\n    error: %s\n",
             map[i].name);
    hwsock_policy *p = load(yaml);
    hwsock_verdict v = decide(p, "tcp://192.0.2.1:1", IN);
    cr_assert_eq(v.action, DENY);
    cr_assert_eq(v.error, map[i].err, "%s", map[i].name);
    hwsock_policy_free(p);
  }
  refused("version: 1\nrules:\n  - action: deny\n    error: EDECLINED\n",
          "t.yaml:4:12: 'error' must be one of EACCES EPERM ECONNREFUSED "
          "ECONNRESET ENETUNREACH EHOSTUNREACH ENETDOWN ETIMEDOUT "
          "EADDRNOTAVAIL EADDRINUSE EAFNOSUPPORT EPROTONOSUPPORT EOPNOTSUPP, "
          "not 'EDECLINED'");
  refused("version: 1\nrules:\n  - action: deny\n    error: eacces\n",
          "t.yaml:4:12: 'error' must be one of EACCES EPERM ECONNREFUSED "
          "ECONNRESET ENETUNREACH EHOSTUNREACH ENETDOWN ETIMEDOUT "
          "EADDRNOTAVAIL EADDRINUSE EAFNOSUPPORT EPROTONOSUPPORT EOPNOTSUPP, "
          "not 'eacces'");
  refused("version: 1\nrules:\n  - action: offload\n    error: EPERM\n",
          "t.yaml:4:5: 'error' applies only to action: deny");
}

Test(policy, cidr_v4_edges) {
  hwsock_policy *p = load("version: 1\n"
                          "default: decline\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    to: [10.0.0.0/8, 172.16.0.0/12, 192.0.2.7,\n"
                          "         198.51.100.128/25]\n");
  cr_assert_eq(action(p, "tcp://10.0.0.0:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp://10.255.255.255:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp://9.255.255.255:1", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://11.0.0.0:1", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://172.16.0.0:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp://172.31.255.255:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp://172.15.255.255:1", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://172.32.0.0:1", OUT), DECLINE);
  /* a bare address is a /32 */
  cr_assert_eq(action(p, "tcp://192.0.2.7:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp://192.0.2.6:1", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://192.0.2.8:1", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://198.51.100.128:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp://198.51.100.255:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp://198.51.100.127:1", OUT), DECLINE);
  /* an IPv4 rule never matches native IPv6 */
  cr_assert_eq(action(p, "tcp6://[a00::]:1", OUT), DECLINE);
  hwsock_policy_free(p);
}

Test(policy, cidr_zero_prefixes_cover_one_family_each) {
  hwsock_policy *p = load("version: 1\n"
                          "default: decline\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    to: 0.0.0.0/0\n"
                          "  - action: offload\n"
                          "    to: \"::/0\"\n");
  cr_assert_eq(action(p, "tcp://0.0.0.0:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp://255.255.255.255:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[2001:db8::1]:1", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::]:1", IN), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::1]:1", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1",
                      OUT),
               OFFLOAD);
  /* embedded IPv4 is IPv4: ::/0 does not see it, 0.0.0.0/0 does */
  cr_assert_eq(action(p, "tcp6://[::ffff:192.0.2.1]:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[::192.0.2.1]:1", OUT), DENY);
  cr_assert_eq(action(p, "ipx://0000cafe.02005e0001a2.4000", OUT), DECLINE);
  hwsock_policy_free(p);
}

Test(policy, cidr_v6_edges) {
  hwsock_policy *p = load("version: 1\n"
                          "default: decline\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    to: [\"2001:db8::/33\", \"2001:db8:ffff::1\",\n"
                          "         \"::1/128\", \"fe80::/10\"]\n");
  cr_assert_eq(action(p, "tcp6://[2001:db8::]:1", OUT), DENY);
  cr_assert_eq(
      action(p, "tcp6://[2001:db8:7fff:ffff:ffff:ffff:ffff:ffff]:1", OUT),
      DENY);
  cr_assert_eq(action(p, "tcp6://[2001:db8:8000::]:1", OUT), DECLINE);
  cr_assert_eq(
      action(p, "tcp6://[2001:db7:ffff:ffff:ffff:ffff:ffff:ffff]:1", OUT),
      DECLINE);
  /* a bare IPv6 address is a /128 */
  cr_assert_eq(action(p, "tcp6://[2001:db8:ffff::1]:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[2001:db8:ffff::2]:1", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp6://[2001:db8:ffff::]:1", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp6://[::1]:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[::1:0:0:2]:1", OUT), DECLINE);
  /* ::2 is v4-compatible (refused); :: as a destination is ::1 */
  cr_assert_eq(decide(p, "tcp6://[::2]:1", OUT).error, HWSOCK_ENETUNREACH);
  cr_assert_eq(decide(p, "tcp6://[::]:1", OUT).rule, 0);
  cr_assert_eq(action(p, "tcp6://[::]:1", IN), DECLINE);
  /* /10: fe80:: .. febf:ffff:..., zone ids do not matter */
  cr_assert_eq(action(p, "tcp6://[fe80::1%25eth0]:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[febf:ffff::1]:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[fec0::1]:1", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp6://[fe7f:ffff::1]:1", OUT), DECLINE);
  /* an IPv6 rule never matches IPv4 */
  cr_assert_eq(action(p, "tcp://127.0.0.1:1", OUT), DECLINE);
  hwsock_policy_free(p);
}

Test(policy, ports_and_ranges) {
  hwsock_policy *p = load("version: 1\n"
                          "default: decline\n"
                          "rules:\n"
                          "  - action: offload\n"
                          "    ports: [0, 80, \"8000-9000\", 65535]\n");
  cr_assert_eq(action(p, "tcp://192.0.2.1:80", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.1:79", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://192.0.2.1:81", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://192.0.2.1:7999", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://192.0.2.1:8000", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.1:8500", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.1:9000", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.1:9001", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://192.0.2.1:65535", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.1:65534", OUT), DECLINE);
  cr_assert_eq(action(p, "udp://192.0.2.1:0", IN), OFFLOAD);
  /* for IPX the port is the socket number */
  cr_assert_eq(action(p, "ipx://0000cafe.02005e0001a2.0050", OUT), OFFLOAD);
  cr_assert_eq(action(p, "ipx://0000cafe.02005e0001a2.0051", OUT), DECLINE);
  hwsock_policy_free(p);

  /* a single port may be a scalar, and a range without quotes */
  p = load("version: 1\ndefault: decline\nrules:\n"
           "  - {action: offload, ports: 1-2}\n"
           "  - {action: deny, ports: 7}\n");
  cr_assert_eq(action(p, "tcp://192.0.2.1:2", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.1:3", OUT), DECLINE);
  cr_assert_eq(action(p, "tcp://192.0.2.1:7", OUT), DENY);
  hwsock_policy_free(p);
}

Test(policy, direction_outbound_inbound_and_both) {
  hwsock_policy *p = load("version: 1\n"
                          "default: decline\n"
                          "rules:\n"
                          "  - action: offload\n"
                          "    direction: outbound\n"
                          "    to: 192.0.2.1\n"
                          "  - action: deny\n"
                          "    direction: inbound\n"
                          "    to: 192.0.2.1\n"
                          "  - action: deny\n"
                          "    direction: any\n"
                          "    to: 192.0.2.2\n"
                          "  - action: offload\n"
                          "    to: 192.0.2.3\n");
  cr_assert_eq(action(p, "tcp://192.0.2.1:80", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.1:80", IN), DENY);
  cr_assert_eq(action(p, "tcp://192.0.2.2:80", OUT), DENY);
  cr_assert_eq(action(p, "tcp://192.0.2.2:80", IN), DENY);
  cr_assert_eq(action(p, "tcp://192.0.2.3:80", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.3:80", IN), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.4:80", IN), DECLINE);
  cr_assert_str_eq(hwsock_direction_name(OUT), "outbound");
  cr_assert_str_eq(hwsock_direction_name(IN), "inbound");
  hwsock_policy_free(p);
}

Test(policy, schemes_match_literally) {
  hwsock_policy *p = load("version: 1\n"
                          "default: decline\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    scheme: [tcp]\n"
                          "  - action: offload\n"
                          "    scheme: [udp, tcp6]\n"
                          "  - action: deny\n"
                          "    scheme: ipx\n");
  cr_assert_eq(action(p, "tcp://192.0.2.1:80", OUT), DENY);
  cr_assert_eq(action(p, "udp://192.0.2.1:80", OUT), OFFLOAD);
  /* a v4-mapped address is IPv4 traffic: tcp6 to it is tcp */
  cr_assert_eq(action(p, "tcp6://[::ffff:192.0.2.1]:80", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[::ffff:192.0.2.1]:80", IN), DENY);
  cr_assert_eq(action(p, "udp6://[::ffff:192.0.2.1]:80", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[2001:db8::1]:80", OUT), OFFLOAD);
  cr_assert_eq(action(p, "udp6://[2001:db8::1]:80", OUT), DECLINE);
  cr_assert_eq(action(p, "ipx://00000001.000000000001.0001", OUT), DENY);
  hwsock_policy_free(p);
}

Test(policy, mapped_and_compatible_ipv6_match_ipv4_rules) {
  hwsock_policy *p = load("version: 1\n"
                          "default: offload\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    to: 10.0.0.0/8\n"
                          "    ports: 22\n");
  cr_assert_eq(action(p, "tcp6://[::ffff:10.1.2.3]:22", OUT), DENY);
  cr_assert_eq(action(p, "udp6://[::ffff:a01:203]:22", IN), DENY);
  cr_assert_eq(action(p, "tcp6://[::10.1.2.3]:22", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[::ffff:10.1.2.3]:23", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::ffff:11.1.2.3]:22", OUT), OFFLOAD);
  /* only the two embedding forms: 64:ff9b::/96 (NAT64) is native IPv6 */
  cr_assert_eq(action(p, "tcp6://[64:ff9b::10.1.2.3]:22", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::1:10.1.2.3]:22", OUT), OFFLOAD);
  hwsock_policy_free(p);

  /* :: and ::1 are IPv6 (unspecified, loopback), not 0.0.0.0 and 0.0.0.1 */
  p = load("version: 1\ndefault: offload\nrules:\n"
           "  - {action: deny, to: 0.0.0.0/8}\n");
  cr_assert_eq(action(p, "tcp://0.0.0.1:1", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[::]:1", IN), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::1]:1", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::2]:1", OUT), DENY); /* ::0.0.0.2 */
  hwsock_policy_free(p);
}

/* Every spelling of a denied address that the URI grammar accepts is denied,
 * and every other spelling is refused by the URI grammar itself. */
Test(policy, no_spelling_of_a_denied_address_is_offloaded) {
  static const char *const accepted[] = {
      "tcp://127.0.0.1:80",
      "udp://127.0.0.1:80",
      "tcp://127.255.255.254:80",
      "tcp6://[::ffff:127.0.0.1]:80",
      "tcp6://[::ffff:7f00:1]:80",
      "tcp6://[::FFFF:7F00:0001]:80",
      "tcp6://[0:0:0:0:0:ffff:7f00:1]:80",
      "tcp6://[0000:0000:0000:0000:0000:ffff:127.0.0.1]:80",
      "tcp6://[::127.0.0.1]:80",
      "tcp6://[::7f00:1]:80",
      "udp6://[::ffff:127.0.0.1]:80",
      "tcp6://[::ffff:127.0.0.1%25lo]:80",
      "tcp6://::ffff:127.0.0.1/80", /* the original RFC's form */
      "tcp6://0:0:0:0:0:ffff:7f00:1/80",
      "tcp6://::127.0.0.1/80",
  };
  static const char *const rejected[] = {
      "tcp://0177.0.0.1:80",       "tcp://2130706433:80",
      "tcp://127.1:80",            "tcp://0x7f.0.0.1:80",
      "tcp://0x7f000001:80",       "tcp://127.000.000.001:80",
      "tcp://127.0.1:80",          "tcp://%31%32%37.0.0.1:80",
      "tcp://127.0.0.1.:80",       "tcp6://[::ffff:0177.0.0.1]:80",
      "tcp6://[::ffff:127.1]:80",  "tcp://[::ffff:127.0.0.1]:80",
      "tcp6://127.0.0.1:80",       "tcp://017700000001:80",
  };
  hwsock_policy *p = load("version: 1\n"
                          "default: offload\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    to: 127.0.0.0/8\n");
  for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
    cr_assert_eq(action(p, accepted[i], OUT), DENY, "%s", accepted[i]);
    cr_assert_eq(action(p, accepted[i], IN), DENY, "%s", accepted[i]);
  }
  for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
    hwsock_addr a;
    int rc = hwsock_uri_parse(rejected[i], strlen(rejected[i]), 0, &a, NULL);
    cr_assert_eq(rc, HWSOCK_EBADURI, "%s parsed", rejected[i]);
  }
  hwsock_policy_free(p);
}

/* The kernel sends to 0.0.0.0 and :: as loopback (no bound address): the
 * rules see loopback. POLICY.md's "everything except the host" example. */
Test(policy, unspecified_destinations_are_decided_as_loopback) {
  hwsock_policy *p = load("version: 1\n"
                          "default: offload\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    to: [169.254.0.0/16, \"fe80::/10\", "
                          "127.0.0.0/8, \"::1\"]\n"
                          "    error: ENETUNREACH\n"
                          "    reason: not reachable from guests\n"
                          "  - action: deny\n"
                          "    direction: inbound\n"
                          "    to: [127.0.0.0/8, \"::1\"]\n");
  static const char *const dests[] = {
      "tcp://0.0.0.0:80",       "udp://0.0.0.0:53",
      "tcp6://[::]:80",         "udp6://[::]:53",
      "tcp6://[::ffff:0.0.0.0]:80", "udp6://[::ffff:0:0]:53",
      "tcp6://[::%25lo]:80",
  };
  for (size_t i = 0; i < sizeof(dests) / sizeof(dests[0]); i++) {
    hwsock_verdict v = decide(p, dests[i], OUT);
    cr_assert_eq(v.action, DENY, "%s", dests[i]);
    cr_assert_eq(v.rule, 0, "%s", dests[i]);
    cr_assert_eq(v.error, HWSOCK_ENETUNREACH, "%s", dests[i]);
  }
  /* as a local address the wildcard stays the wildcard */
  cr_assert_eq(action(p, "tcp://0.0.0.0:80", IN), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::]:80", IN), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::ffff:0.0.0.0]:80", IN), OFFLOAD);
  hwsock_policy_free(p);

  /* a rule written for the unspecified address no longer sees destinations */
  p = load("version: 1\ndefault: deny\nrules:\n"
           "  - {action: offload, to: [0.0.0.0, \"::\"]}\n");
  cr_assert_eq(action(p, "tcp://0.0.0.0:80", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[::]:80", OUT), DENY);
  cr_assert_eq(action(p, "tcp://0.0.0.0:80", IN), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::]:80", IN), OFFLOAD);
  hwsock_policy_free(p);
}

/* The issue's example: a deny written for tcp, then an offload for tcp and
 * tcp6 to everything. A tcp6 socket to the v4-mapped metadata address is the
 * same IPv4 traffic and meets the deny. */
Test(policy, mapped_destinations_are_matched_as_tcp_and_udp) {
  hwsock_policy *p = load("version: 1\n"
                          "default: deny\n"
                          "rules:\n"
                          "  - action: deny\n"
                          "    scheme: [tcp]\n"
                          "    to: 169.254.0.0/16\n"
                          "    error: EHOSTUNREACH\n"
                          "  - action: offload\n"
                          "    scheme: [tcp, tcp6]\n"
                          "    to: [0.0.0.0/0, \"::/0\"]\n"
                          "  - action: offload\n"
                          "    scheme: udp6\n"
                          "    to: \"::/0\"\n");
  hwsock_verdict v = decide(p, "tcp6://[::ffff:169.254.169.254]:80", OUT);
  cr_assert_eq(v.action, DENY);
  cr_assert_eq(v.rule, 0);
  cr_assert_eq(v.error, HWSOCK_EHOSTUNREACH);
  cr_assert_eq(action(p, "tcp6://[::ffff:a9fe:a9fe]:80", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[::ffff:169.254.169.254]:80", IN), DENY);
  cr_assert_eq(decide(p, "tcp6://[::ffff:192.0.2.1]:80", OUT).rule, 1);
  cr_assert_eq(decide(p, "tcp6://[2001:db8::1]:80", OUT).rule, 1);
  /* udp6 to a mapped address is udp, which no rule offloads */
  cr_assert_eq(action(p, "udp6://[::ffff:192.0.2.1]:53", OUT), DENY);
  cr_assert_eq(decide(p, "udp6://[::ffff:192.0.2.1]:53", OUT).rule, -1);
  cr_assert_eq(action(p, "udp6://[2001:db8::1]:53", OUT), OFFLOAD);
  hwsock_policy_free(p);
}

/* ::a.b.c.d: the bytes say IPv4, the host routes it as IPv6. Neither kind of
 * rule can mean it, so it is refused before any rule. */
Test(policy, compatible_addresses_are_refused) {
  hwsock_policy *p = load("version: 1\ndefault: offload\nrules:\n"
                          "  - {action: offload, to: [0.0.0.0/0, \"::/0\"]}\n");
  static const char *const compat[] = {
      "tcp6://[::10.1.2.3]:22", "udp6://[::a01:203]:53", "tcp6://[::2]:1",
      "tcp6://[::0.1.0.0]:1",   "tcp6://::127.0.0.1/80",
  };
  for (size_t i = 0; i < sizeof(compat) / sizeof(compat[0]); i++) {
    hwsock_verdict v = decide(p, compat[i], OUT);
    cr_assert_eq(v.action, DENY, "%s", compat[i]);
    cr_assert_eq(v.error, HWSOCK_ENETUNREACH, "%s", compat[i]);
    cr_assert_eq(v.rule, -1, "%s", compat[i]);
    cr_assert_str_eq(v.reason, "IPv4-compatible address (::a.b.c.d) refused");
    v = decide(p, compat[i], IN);
    cr_assert_eq(v.action, DENY, "%s", compat[i]);
    cr_assert_eq(v.error, HWSOCK_EADDRNOTAVAIL, "%s", compat[i]);
  }
  /* :: and ::1 are IPv6's own, and ::1:a.b.c.d is no embedding */
  cr_assert_eq(action(p, "tcp6://[::1]:1", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::]:1", IN), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[::1:10.1.2.3]:1", OUT), OFFLOAD);
  hwsock_policy_free(p);
}

static hwsock_addr parsed(const char *uri) {
  hwsock_addr a;
  cr_assert_eq(hwsock_uri_parse(uri, strlen(uri), HWSOCK_URI_ALLOW_PORT0, &a,
                                NULL),
               0, "%s", uri);
  return a;
}

/* hwsock_policy_effective_addr: each case as the kernel has it, and every
 * result is its own fixed point. */
Test(policy, effective_addr_is_what_the_kernel_uses) {
  static const struct {
    const char *in;
    int dir;
    unsigned flags;
    int rc;
    const char *out; /* canonical URI of the result when rc == 0 */
  } t[] = {
      {"tcp://192.0.2.1:80", OUT, 0, 0, "tcp://192.0.2.1:80"},
      {"tcp://0.0.0.0:80", OUT, 0, 0, "tcp://127.0.0.1:80"},
      {"udp://0.0.0.0:53", OUT, 0, 0, "udp://127.0.0.1:53"},
      {"tcp://0.0.0.0:80", OUT, HWSOCK_POLICY_BOUND, HWSOCK_ENETUNREACH, NULL},
      {"tcp://0.0.0.0:80", IN, HWSOCK_POLICY_BOUND, 0, "tcp://0.0.0.0:80"},
      {"tcp://0.0.0.1:80", OUT, 0, 0, "tcp://0.0.0.1:80"},
      {"tcp6://[::]:80", OUT, 0, 0, "tcp6://[::1]:80"},
      {"udp6://[::%25lo]:53", OUT, 0, 0, "udp6://[::1]:53"},
      {"tcp6://[::]:80", OUT, HWSOCK_POLICY_BOUND, HWSOCK_ENETUNREACH, NULL},
      {"tcp6://[::]:0", IN, 0, 0, "tcp6://[::]:0"},
      {"tcp6://[::ffff:0.0.0.0]:80", OUT, 0, 0, "tcp://127.0.0.1:80"},
      {"tcp6://[::ffff:0.0.0.0]:80", OUT, HWSOCK_POLICY_BOUND,
       HWSOCK_ENETUNREACH, NULL},
      {"tcp6://[::ffff:0.0.0.0]:80", IN, 0, 0, "tcp://0.0.0.0:80"},
      {"tcp6://[::ffff:192.0.2.1%25lo]:80", OUT, 0, 0, "tcp://192.0.2.1:80"},
      {"udp6://[::ffff:192.0.2.1]:0", IN, 0, 0, "udp://192.0.2.1:0"},
      {"tcp6://[::192.0.2.1]:80", OUT, 0, HWSOCK_ENETUNREACH, NULL},
      {"tcp6://[::192.0.2.1]:80", IN, 0, HWSOCK_EADDRNOTAVAIL, NULL},
      {"tcp6://[::1]:80", OUT, HWSOCK_POLICY_BOUND, 0, "tcp6://[::1]:80"},
      {"tcp6://[64:ff9b::192.0.2.1]:80", OUT, 0, 0,
       "tcp6://[64:ff9b::c000:201]:80"},
      {"tcp6://[fe80::1%25lo]:80", OUT, 0, 0, "tcp6://[fe80::1%25lo]:80"},
      {"tcp://192.0.2.1:0", OUT, 0, HWSOCK_EINVAL, NULL},
      {"tcp6://[::]:0", OUT, 0, HWSOCK_EINVAL, NULL},
      {"ipx://00000000.000000000000.0000", OUT, 0, 0,
       "ipx://00000000.000000000000.0000"},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    hwsock_addr a = parsed(t[i].in), e, again;
    char buf[HWSOCK_URI_MAX + 1];
    memset(&e, 0xa5, sizeof(e));
    const char *why = "x";
    int rc = hwsock_policy_effective_addr(&a, t[i].dir, t[i].flags, &e, &why);
    cr_assert_eq(rc, t[i].rc, "%s: rc %d", t[i].in, rc);
    cr_assert_eq(why == NULL, rc == 0, "%s: why", t[i].in);
    if (rc < 0)
      continue;
    cr_assert_geq(hwsock_uri_format(&e, buf, sizeof(buf)), 0, "%s", t[i].in);
    cr_assert_str_eq(buf, t[i].out, "%s", t[i].in);
    cr_assert_eq(hwsock_policy_effective_addr(&e, t[i].dir, t[i].flags,
                                              &again, NULL),
                 0);
    cr_assert_eq(memcmp(&e, &again, sizeof(e)), 0, "%s: not a fixed point",
                 t[i].in);
  }
  hwsock_addr a = parsed("tcp://192.0.2.1:80"), e;
  cr_assert_eq(hwsock_policy_effective_addr(&a, 7, 0, &e, NULL),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_policy_effective_addr(NULL, OUT, 0, &e, NULL),
               HWSOCK_EINVAL);
  cr_assert_eq(hwsock_policy_effective_addr(&a, OUT, 0, NULL, NULL),
               HWSOCK_EINVAL);
  a.scheme = HWSOCK_SCHEME_TCP6; /* family still AF_INET */
  cr_assert_eq(hwsock_policy_effective_addr(&a, OUT, 0, &e, NULL),
               HWSOCK_EINVAL);
}

Test(policy, ipx_networks) {
  hwsock_policy *p = load("version: 1\n"
                          "default: decline\n"
                          "rules:\n"
                          "  - action: offload\n"
                          "    to: [0000cafe, 0000BEEF]\n"
                          "    backend: my-ipx_2\n");
  hwsock_verdict v = decide(p, "ipx://0000cafe.02005e0001a2.4000", OUT);
  cr_assert_eq(v.action, OFFLOAD);
  cr_assert_str_eq(v.backend, "my-ipx_2");
  cr_assert_eq(action(p, "ipx://0000beef.000000000001.0001", OUT), OFFLOAD);
  cr_assert_eq(action(p, "ipx://0000caff.02005e0001a2.4000", OUT), DECLINE);
  /* an IPX network is not an IPv4 address with the same bits */
  cr_assert_eq(action(p, "tcp://0.0.202.254:1", OUT), DECLINE);
  hwsock_policy_free(p);
}

Test(policy, invalid_request_is_denied_with_einval) {
  hwsock_policy *p = load("version: 1\ndefault: offload\n");
  hwsock_addr a;
  hwsock_verdict v;
  cr_assert_eq(hwsock_uri_parse("tcp://192.0.2.1:1", 17, 0, &a, NULL), 0);
  hwsock_policy_decide(p, &a, 7, HWSOCK_OP_CONNECT, &v);
  cr_assert_eq(v.action, DENY);
  cr_assert_eq(v.error, HWSOCK_EINVAL);
  a.scheme = 42;
  hwsock_policy_decide(p, &a, OUT, HWSOCK_OP_CONNECT, &v);
  cr_assert_eq(v.action, DENY);
  cr_assert_eq(v.error, HWSOCK_EINVAL);
  a.scheme = HWSOCK_SCHEME_TCP6; /* family still AF_INET */
  hwsock_policy_decide(p, &a, OUT, HWSOCK_OP_CONNECT, &v);
  cr_assert_eq(v.action, DENY);
  hwsock_policy_decide(p, NULL, OUT, HWSOCK_OP_CONNECT, &v);
  cr_assert_eq(v.action, DENY);
  hwsock_policy_free(p);
  hwsock_policy_free(NULL);
}

Test(policy, can_decline_says_whether_any_verdict_may_be_decline) {
  hwsock_policy *p = load("version: 1\ndefault: offload\nrules:\n"
                          "  - {action: deny, to: 10.0.0.0/8}\n");
  cr_assert_eq(hwsock_policy_can_decline(p), 0);
  hwsock_policy_free(p);
  p = load("version: 1\ndefault: decline\n");
  cr_assert_eq(hwsock_policy_can_decline(p), 1);
  hwsock_policy_free(p);
  p = load("version: 1\nrules:\n  - {action: offload, ports: 1}\n"
           "  - {action: decline, ports: 2}\n");
  cr_assert_eq(hwsock_policy_can_decline(p), 1);
  hwsock_policy_free(p);
  cr_assert_eq(hwsock_policy_load_default(&p), 0);
  cr_assert_eq(hwsock_policy_can_decline(p), 1);
  hwsock_policy_free(p);
  cr_assert_eq(hwsock_policy_can_decline(NULL), 1);
}

Test(policy, action_names) {
  cr_assert_str_eq(hwsock_action_name(HWSOCK_ACTION_OFFLOAD), "offload");
  cr_assert_str_eq(hwsock_action_name(HWSOCK_ACTION_DECLINE), "decline");
  cr_assert_str_eq(hwsock_action_name(HWSOCK_ACTION_DENY), "deny");
  cr_assert_str_eq(hwsock_action_name(9), "unknown");
}

Test(policy, the_issue_example_loads) {
  hwsock_policy *p =
      load("version: 1\n"
           "default: deny                 # offload | decline | deny\n"
           "rules:                        # first match wins\n"
           "  - action: deny\n"
           "    to: [127.0.0.0/8, \"::1/128\", 169.254.0.0/16]\n"
           "    reason: host-local and metadata addresses\n"
           "  - action: offload\n"
           "    scheme: [tcp, tcp6]\n"
           "    direction: outbound\n"
           "    to: [0.0.0.0/0, \"::/0\"]\n"
           "    ports: [80, 443, \"8000-9000\"]\n");
  hwsock_verdict v = decide(p, "tcp6://[::1]:443", OUT);
  cr_assert_eq(v.action, DENY);
  cr_assert_str_eq(v.reason, "host-local and metadata addresses");
  cr_assert_eq(action(p, "tcp://192.0.2.1:443", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp://192.0.2.1:443", IN), DENY);
  cr_assert_eq(action(p, "udp://192.0.2.1:443", OUT), DENY);
  cr_assert_eq(action(p, "tcp6://[2001:db8::1]:8080", OUT), OFFLOAD);
  cr_assert_eq(action(p, "tcp6://[2001:db8::1]:22", OUT), DENY);
  hwsock_policy_free(p);
}

/* ---- the default policy ------------------------------------------------ */

Test(policy, default_policy_decides_as_documented) {
  static const struct {
    const char *uri;
    int dir;
    int action;
    const char *reason;
  } cases[] = {
      {"tcp://127.0.0.1:80", OUT, OFFLOAD,
       "loopback destination, offloaded to the host"},
      {"udp6://[::1]:53", OUT, OFFLOAD,
       "loopback destination, offloaded to the host"},
      {"tcp6://[::ffff:127.0.0.2]:80", OUT, DECLINE,
       "the demo's declined address, left to the guest's own stack"},
      {"tcp6://[::ffff:127.0.0.3]:80", OUT, OFFLOAD,
       "loopback destination, offloaded to the host"},
      {"tcp://127.0.0.1:9", OUT, DENY, "denied by the demo policy"},
      {"udp://127.0.0.1:9", OUT, DENY, "denied by the demo policy"},
      {"tcp6://[::ffff:127.0.0.1]:9", OUT, DENY, "denied by the demo policy"},
      {"tcp://127.0.0.2:9", OUT, DECLINE,
       "the demo's declined address, left to the guest's own stack"},
      {"tcp://127.0.0.2:9", IN, OFFLOAD,
       "loopback bind or listen, offloaded to the host"},
      {"tcp://169.254.169.254:80", OUT, DENY,
       "link-local and cloud metadata addresses"},
      {"tcp6://[::ffff:169.254.169.254]:80", OUT, DENY,
       "link-local and cloud metadata addresses"},
      {"tcp6://[fe80::1%25eth0]:22", OUT, DENY,
       "link-local and cloud metadata addresses"},
      {"udp://169.254.1.1:0", IN, DENY,
       "link-local and cloud metadata addresses"},
      {"tcp://192.0.2.7:443", OUT, DECLINE,
       "not loopback, left to the guest's own stack"},
      {"tcp6://[2001:db8::1]:443", OUT, DECLINE,
       "not loopback, left to the guest's own stack"},
      {"tcp://127.0.0.1:0", IN, OFFLOAD,
       "loopback bind or listen, offloaded to the host"},
      {"udp6://[::1]:5353", IN, OFFLOAD,
       "loopback bind or listen, offloaded to the host"},
      {"tcp://0.0.0.0:8080", IN, DECLINE,
       "not loopback, left to the guest's own stack"},
      {"tcp6://[::]:8080", IN, DECLINE,
       "not loopback, left to the guest's own stack"},
      {"tcp://0.0.0.0:8080", OUT, OFFLOAD,
       "loopback destination, offloaded to the host"},
      {"tcp6://[::]:8080", OUT, OFFLOAD,
       "loopback destination, offloaded to the host"},
      {"tcp6://[::ffff:127.0.0.1]:8080", OUT, OFFLOAD,
       "loopback destination, offloaded to the host"},
      {"ipx://0000cafe.02005e0001a2.4000", OUT, OFFLOAD,
       "IPX, offloaded to the host"},
      {"ipx://00000000.000000000000.0000", IN, OFFLOAD,
       "IPX, offloaded to the host"},
  };
  hwsock_policy *p = NULL;
  cr_assert_eq(hwsock_policy_load_default(&p), 0);
  cr_assert_eq(hwsock_policy_rule_count(p), 7);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    hwsock_verdict v = decide(p, cases[i].uri, cases[i].dir);
    cr_assert_eq(v.action, cases[i].action, "%s", cases[i].uri);
    cr_assert_str_eq(v.reason, cases[i].reason, "%s", cases[i].uri);
    if (v.action == DENY)
      cr_assert_eq(v.error, HWSOCK_EACCES, "%s", cases[i].uri);
    cr_assert_null(v.backend);
  }
  hwsock_verdict v = decide(p, "tcp6://[::127.0.0.1]:8080", OUT);
  cr_assert_eq(v.action, DENY);
  cr_assert_eq(v.error, HWSOCK_ENETUNREACH);
  cr_assert_eq(v.rule, -1);
  hwsock_policy_free(p);
}

/* docs/POLICY.md quotes the built-in policy verbatim. CMake compiles this
 * file by its absolute path, so the docs are found from __FILE__. */
Test(policy, default_policy_text_is_the_documented_one) {
  char path[4096], *doc;
  const char *yaml = hwsock_policy_default_yaml();
  size_t cap = 1 << 20, n;
  FILE *f;
  snprintf(path, sizeof(path), "%s", __FILE__);
  cr_assert_not_null(strstr(path, "/test/unit/test_policy.c"));
  strcpy(strstr(path, "/test/unit/test_policy.c"), "/docs/POLICY.md");
  f = fopen(path, "r");
  cr_assert_not_null(f, "%s", path);
  doc = calloc(1, cap + 1);
  n = fread(doc, 1, cap, f);
  fclose(f);
  doc[n] = '\0';
  cr_assert_not_null(strstr(doc, yaml), "docs/POLICY.md does not hold the "
                                        "default policy verbatim");
  free(doc);
}

/* ---- errors: exact position and message -------------------------------- */

Test(policy_errors, unknown_key) {
  refused("version: 1\n"
          "rules:\n"
          "  - action: deny\n"
          "    too: 10.0.0.0/8\n",
          "t.yaml:4:5: unknown key 'too'");
  refused("version: 1\nvesion: 1\n", "t.yaml:2:1: unknown key 'vesion'");
}

Test(policy_errors, duplicate_key) {
  refused("version: 1\n"
          "rules:\n"
          "  - action: deny\n"
          "    to: 10.0.0.0/8\n"
          "    to: 11.0.0.0/8\n",
          "t.yaml:5:5: duplicate key 'to'");
  refused("version: 1\ndefault: deny\ndefault: offload\n",
          "t.yaml:3:1: duplicate key 'default'");
}

Test(policy_errors, bad_action) {
  refused("version: 1\n"
          "rules:\n"
          "  - action: allow\n",
          "t.yaml:3:13: 'action' must be offload, decline or deny, not "
          "'allow'");
  refused("version: 1\ndefault: accept\n",
          "t.yaml:2:10: 'default' must be offload, decline or deny, not "
          "'accept'");
}

Test(policy_errors, bad_cidr) {
  refused("version: 1\nrules:\n  - action: deny\n    to: [10.0.0.0/33]\n",
          "t.yaml:4:10: bad address '10.0.0.0/33' in 'to': prefix length "
          "must be a decimal 0..32 without leading zero");
  refused("version: 1\nrules:\n  - action: deny\n    to: 010.0.0.0/8\n",
          "t.yaml:4:9: bad address '010.0.0.0/8' in 'to': IPv4 octet with a "
          "leading zero");
  refused("version: 1\nrules:\n  - action: deny\n    to: 10.0.0.0/08\n",
          "t.yaml:4:9: bad address '10.0.0.0/08' in 'to': prefix length "
          "must be a decimal 0..32 without leading zero");
  refused("version: 1\nrules:\n  - action: deny\n    to: 10.0.0/8\n",
          "t.yaml:4:9: bad address '10.0.0/8' in 'to': IPv4 address needs "
          "four decimal octets a.b.c.d");
  refused("version: 1\nrules:\n  - action: deny\n    to: 256.0.0.0/8\n",
          "t.yaml:4:9: bad address '256.0.0.0/8' in 'to': IPv4 octet above "
          "255");
  refused("version: 1\nrules:\n  - action: deny\n    to: \"::1/129\"\n",
          "t.yaml:4:9: bad address '::1/129' in 'to': prefix length must be "
          "a decimal 0..128 without leading zero");
  refused("version: 1\nrules:\n  - action: deny\n    to: \"fe80::1%eth0\"\n",
          "t.yaml:4:9: bad address 'fe80::1%eth0' in 'to': zone ids have no "
          "place in a policy prefix");
  refused("version: 1\nrules:\n  - action: deny\n    to: \"1:::2\"\n",
          "t.yaml:4:9: bad address '1:::2' in 'to': malformed IPv6 address");
  refused("version: 1\nrules:\n  - action: deny\n    to: example.com\n",
          "t.yaml:4:9: bad address 'example.com' in 'to': IPv4 address needs "
          "four decimal octets a.b.c.d");
  refused("version: 1\nrules:\n  - action: deny\n    to: cafe\n",
          "t.yaml:4:9: bad address 'cafe' in 'to': expected an IPv4 or IPv6 "
          "address or prefix (a.b.c.d/N, x:y::z/N) or an IPX network number "
          "(8 hex digits)");
  refused("version: 1\nrules:\n  - action: deny\n    to: 0000cafe/16\n",
          "t.yaml:4:9: bad address '0000cafe/16' in 'to': expected an IPv4 "
          "or IPv6 address or prefix (a.b.c.d/N, x:y::z/N) or an IPX network "
          "number (8 hex digits)");
  /* a prefix that only holds IPv4-embedding addresses would never match */
  refused("version: 1\nrules:\n  - action: deny\n"
          "    to: \"::ffff:127.0.0.0/104\"\n",
          "t.yaml:4:9: bad address '::ffff:127.0.0.0/104' in 'to': "
          "IPv4-mapped addresses (::ffff:a.b.c.d) are matched as IPv4: write "
          "this prefix in IPv4 form");
  refused("version: 1\nrules:\n  - action: deny\n    to: \"::127.0.0.1\"\n",
          "t.yaml:4:9: bad address '::127.0.0.1' in 'to': IPv4-compatible "
          "addresses (::a.b.c.d) are refused before any rule: this prefix "
          "would never match");
}

Test(policy_errors, host_bits_set) {
  refused("version: 1\nrules:\n  - action: deny\n    to: 10.0.0.1/8\n",
          "t.yaml:4:9: bad address '10.0.0.1/8' in 'to': address has bits "
          "set beyond the prefix length");
  refused("version: 1\nrules:\n  - action: deny\n    to: \"2001:db8::/16\"\n",
          "t.yaml:4:9: bad address '2001:db8::/16' in 'to': address has bits "
          "set beyond the prefix length");
  refused("version: 1\nrules:\n  - action: deny\n    to: 0.0.0.1/0\n",
          "t.yaml:4:9: bad address '0.0.0.1/0' in 'to': address has bits "
          "set beyond the prefix length");
}

Test(policy_errors, bad_ports) {
  refused("version: 1\nrules:\n  - action: deny\n    ports: [\"9000-8000\"]\n",
          "t.yaml:4:13: bad port '9000-8000' in 'ports': reversed port "
          "range: the first port is above the last");
  refused("version: 1\nrules:\n  - action: deny\n    ports: [65536]\n",
          "t.yaml:4:13: bad port '65536' in 'ports': port above 65535");
  refused("version: 1\nrules:\n  - action: deny\n    ports: [1-70000]\n",
          "t.yaml:4:13: bad port '1-70000' in 'ports': port above 65535");
  refused("version: 1\nrules:\n  - action: deny\n    ports: [080]\n",
          "t.yaml:4:13: bad port '080' in 'ports': port with a leading zero");
  refused("version: 1\nrules:\n  - action: deny\n    ports: [-1]\n",
          "t.yaml:4:13: bad port '-1' in 'ports': expected a port 0..65535 "
          "or a range a-b");
  refused("version: 1\nrules:\n  - action: deny\n    ports: [80 - 90]\n",
          "t.yaml:4:13: bad port '80 - 90' in 'ports': expected a port "
          "0..65535 or a range a-b");
  refused("version: 1\nrules:\n  - action: deny\n    ports: [http]\n",
          "t.yaml:4:13: bad port 'http' in 'ports': expected a port 0..65535 "
          "or a range a-b");
}

Test(policy_errors, wrong_types) {
  refused("version: 1\nrules:\n  - action: deny\n    to: {a: b}\n",
          "t.yaml:4:9: 'to' must be a list or a single value, not a mapping");
  refused("version: 1\nrules:\n  - action: deny\n    ports: [[80]]\n",
          "t.yaml:4:13: entries of 'ports' must be single values, not a "
          "list");
  refused("version: 1\nrules: {action: deny}\n",
          "t.yaml:2:8: 'rules' must be a list, not a mapping");
  refused("version: 1\nrules:\n  - deny\n",
          "t.yaml:3:5: a rule must be a mapping, not a single value");
  refused("version: 1\nrules:\n  - action: [deny]\n",
          "t.yaml:3:13: 'action' must be a single value, not a list");
  refused("version: 1\nrules:\n  - action: deny\n    reason:\n",
          "t.yaml:4:12: 'reason' has no value");
  refused("version: 1\nrules:\n  - action: deny\n    to: []\n",
          "t.yaml:4:9: 'to' is an empty list: the rule could never match");
  refused("version: 1\nrules:\n  - action: deny\n    scheme: [tcp, sctp]\n",
          "t.yaml:4:19: 'scheme' must be tcp, udp, tcp6, udp6 or ipx, not "
          "'sctp'");
  refused("version: 1\nrules:\n  - action: deny\n    direction: both\n",
          "t.yaml:4:16: 'direction' must be outbound, inbound or any, not "
          "'both'");
  refused("- version: 1\n",
          "t.yaml:1:1: the policy must be a mapping (version, default, "
          "default_error, rules), not a list");
  refused("version: 1\n[a]: b\n",
          "t.yaml:2:1: a key must be a name, not a list");
  refused("version: 1\nrules:\n  - action: offload\n    backend: Tcp\n",
          "t.yaml:4:14: 'backend' must be a backend name of a-z, 0-9, _ and "
          "-");
  refused("version: 1\nrules:\n  - action: deny\n    backend: tcp\n",
          "t.yaml:4:5: 'backend' applies only to action: offload");
}

Test(policy_errors, version) {
  refused("version: 2\n",
          "t.yaml:1:10: unsupported version '2': this library reads version "
          "1");
  refused("version: \"1\"\n",
          "t.yaml:1:10: unsupported version '1': this library reads version "
          "1");
  refused("default: deny\n", "t.yaml:1:1: missing key 'version'");
}

Test(policy_errors, missing_action) {
  refused("version: 1\n"
          "rules:\n"
          "  - action: deny\n"
          "  - to: 10.0.0.0/8\n"
          "    reason: no action\n",
          "t.yaml:4:5: missing key 'action'");
}

Test(policy_errors, empty_file) {
  refused("", "t.yaml:1:1: empty policy: expected a mapping with 'version: 1'");
  refused("# only a comment\n",
          "t.yaml:2:1: empty policy: expected a mapping with 'version: 1'");
}

Test(policy_errors, syntax_error_from_libyaml) {
  refused("version: 1\nrules:\n  - action: deny\n   to: x\n",
          "t.yaml:4:4: did not find expected '-' indicator (while parsing a "
          "block collection that starts at 3:3)");
  refused("version: 1\ndefault: \"deny\n",
          "t.yaml:3:1: found unexpected end of stream (while scanning a "
          "quoted scalar that starts at 2:10)");
  refused("version: 1\n\x01\n",
          "t.yaml:2:1: control characters are not allowed (byte 0x01)");
}

Test(policy_errors, aliases_anchors_tags_and_documents) {
  refused("version: 1\nrules:\n  - &r {action: deny}\n  - *r\n",
          "t.yaml:3:5: anchors are not supported: write the value out");
  refused("version: 1\nrules:\n  - *r\n",
          "t.yaml:3:5: aliases are not supported: write the value out");
  refused("version: !!int 1\n", "t.yaml:1:10: tags are not supported");
  refused("version: 1\n---\nversion: 1\n",
          "t.yaml:2:1: a policy file holds one YAML document, found another");
}

Test(policy_errors, too_many_rules) {
  size_t n = HWSOCK_POLICY_MAX_RULES + 1, cap = 32 + n * 32;
  char *yaml = malloc(cap), *w = yaml;
  w += sprintf(w, "version: 1\nrules:\n");
  for (size_t i = 0; i < n; i++)
    w += sprintf(w, "  - action: deny\n");
  refused(yaml, "t.yaml:4099:5: more than 4096 rules");
  /* exactly the limit loads */
  yaml[strlen(yaml) - strlen("  - action: deny\n")] = '\0';
  hwsock_policy *p = load(yaml);
  cr_assert_eq(hwsock_policy_rule_count(p), 4096);
  hwsock_policy_free(p);
  free(yaml);
}

Test(policy_errors, too_many_list_entries) {
  char *yaml = malloc(64 + 8 * 300), *w = yaml;
  w += sprintf(w, "version: 1\nrules:\n  - action: deny\n    ports: [");
  for (int i = 0; i < 257; i++)
    w += sprintf(w, "%s%d", i ? "," : "", i);
  sprintf(w, "]\n");
  /* the 257th entry, "256", starts after "    ports: [" (12), "0" (1),
   * ",1".. ",9" (9 * 2), ",10".. ",99" (90 * 3), ",100".. ",255" (156 * 4)
   * and its own comma: at column 12 + 1 + 18 + 270 + 624 + 1 + 1 */
  refused(yaml, "t.yaml:4:927: 'ports' has more than 256 entries");
  free(yaml);
}

Test(policy_errors, too_long_text) {
  char yaml[512];
  snprintf(yaml, sizeof(yaml),
           "version: 1\nrules:\n  - action: deny\n    reason: %0256d\n", 0);
  refused(yaml, "t.yaml:4:13: 'reason' is longer than 255 bytes");
  refused("version: 1\nrules:\n  - action: deny\n    reason: \"a\\0b\"\n",
          "t.yaml:4:13: 'reason' contains a NUL byte");
  refused("version: 1\nrules:\n  - action: deny\n    reason: ''\n",
          "t.yaml:4:13: 'reason' is empty");
}

Test(policy_errors, file_limits_and_errors) {
  char err[512], path[] = "/tmp/test_policy_XXXXXX";
  hwsock_policy *p = NULL;
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  FILE *f = fdopen(fd, "w");
  fputs("version: 1\nrules:\n  - action: offload\n", f);
  fclose(f);
  cr_assert_eq(hwsock_policy_load_file(path, &p, err, sizeof(err)), 0);
  cr_assert_eq(hwsock_policy_rule_count(p), 1);
  hwsock_policy_free(p);

  /* one byte over the size limit, even if it is only a comment */
  f = fopen(path, "w");
  fputs("version: 1\n#", f);
  for (unsigned i = 12; i < HWSOCK_POLICY_MAX_BYTES + 1; i++)
    fputc('x', f);
  fclose(f);
  cr_assert_eq(hwsock_policy_load_file(path, &p, err, sizeof(err)),
               HWSOCK_EBADCONFIG);
  char want[600];
  snprintf(want, sizeof(want), "%s: larger than 1048576 bytes, the limit",
           path);
  cr_assert_str_eq(err, want);
  cr_assert_null(p);
  unlink(path);

  cr_assert_eq(hwsock_policy_load_file(path, &p, err, sizeof(err)),
               HWSOCK_ENOENT);
  snprintf(want, sizeof(want), "%s: No such file or directory", path);
  cr_assert_str_eq(err, want);

  /* errbuf is optional, and a short one is cut, still terminated */
  cr_assert_eq(hwsock_policy_load_string("version: 3\n", 11, "x", &p, NULL, 0),
               HWSOCK_EBADCONFIG);
  cr_assert_eq(hwsock_policy_load_string("version: 3\n", 11, "x", &p, err, 8),
               HWSOCK_EBADCONFIG);
  cr_assert_str_eq(err, "x:1:10:");
  /* no text at all is an empty policy, not a crash */
  cr_assert_eq(hwsock_policy_load_string(NULL, 0, NULL, &p, err, sizeof(err)),
               HWSOCK_EBADCONFIG);
  cr_assert_str_eq(err, "<policy>:1:1: empty policy: expected a mapping with "
                        "'version: 1'");
}

/* ---- set: host-side options ------------------------------------------- */

Test(policy, set_options_reach_the_verdict) {
  const char *y = "version: 1\nrules:\n  - action: offload\n    set: "
                  "{nodelay: true, congestion: cubic, sndbuf: 4096}\n";
  hwsock_policy *p = NULL;
  char err[256];
  cr_assert_eq(hwsock_policy_load_string(y, strlen(y), "t", &p, err,
                                         sizeof(err)), 0, "%s", err);
  hwsock_addr a;
  cr_assert_eq(hwsock_uri_parse("tcp://127.0.0.1:1", 17, 0, &a, NULL), 0);
  hwsock_verdict v;
  hwsock_policy_decide(p, &a, HWSOCK_DIR_OUTBOUND, HWSOCK_OP_CONNECT, &v);
  cr_assert_not_null(v.set);
  cr_assert_eq(v.set->mask, HWSOCK_HOSTOPT_NODELAY | HWSOCK_HOSTOPT_CONGESTION |
                                HWSOCK_HOSTOPT_SNDBUF);
  cr_assert_eq(v.set->nodelay, 1);
  cr_assert_eq(v.set->sndbuf, 4096);
  cr_assert_str_eq(v.set->congestion, "cubic");
  hwsock_policy_free(p);
}

Test(policy, bad_set_options_are_refused_with_their_position) {
  static const struct {
    const char *yaml, *msg;
  } cases[] = {
      {"version: 1\nrules:\n  - action: deny\n    set: {nodelay: true}\n",
       "t:4:5: 'set' applies only to action: offload"},
      {"version: 1\nrules:\n  - action: offload\n    set: {nodelay: yes}\n",
       "t:4:20: 'nodelay' must be true or false, not 'yes'"},
      {"version: 1\nrules:\n  - action: offload\n    set: {sndbuf: 10}\n",
       "t:4:19: 'sndbuf' must be a number from 1024 to 67108864, not '10'"},
      {"version: 1\nrules:\n  - action: offload\n    set: {ttl: 3}\n",
       "t:4:11: unknown key 'ttl'"},
      {"version: 1\nrules:\n  - action: offload\n    set: {congestion: Bad!}\n",
       "t:4:23: 'congestion' must be an algorithm name of a-z, 0-9 and _ (at "
       "most 15), not 'Bad!'"},
      {"version: 1\nrules:\n  - action: offload\n    set: [nodelay]\n",
       "t:4:10: 'set' must be a mapping of options, not a list"},
  };
  for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    hwsock_policy *p = NULL;
    char err[256] = "";
    cr_assert_eq(hwsock_policy_load_string(cases[i].yaml, strlen(cases[i].yaml),
                                           "t", &p, err, sizeof(err)),
                 HWSOCK_EBADCONFIG, "case %u", i);
    cr_assert_str_eq(err, cases[i].msg, "case %u", i);
  }
}
