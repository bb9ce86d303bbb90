/* The built-in default policy. docs/POLICY.md ("The default policy") quotes
 * this text verbatim; test_policy checks that the two agree. */
#include "policy_int.h"

static const char default_yaml[] =
    "# libhwsock built-in default policy (docs/POLICY.md)\n"
    "version: 1\n"
    "default: deny\n"
    "rules:\n"
    "  - action: deny\n"
    "    to: [169.254.0.0/16, \"fe80::/10\"]\n"
    "    reason: link-local and cloud metadata addresses\n"
    "  - action: deny\n"
    "    to: 127.0.0.1\n"
    "    ports: [9]\n"
    "    reason: denied by the demo policy\n"
    "  - action: decline\n"
    "    direction: outbound\n"
    "    to: 127.0.0.2\n"
    "    reason: the demo's declined address, left to the guest's own stack\n"
    "  - action: offload\n"
    "    scheme: [tcp, udp, tcp6, udp6]\n"
    "    direction: outbound\n"
    "    to: [127.0.0.0/8, \"::1\"]\n"
    "    reason: loopback destination, offloaded to the host\n"
    "  - action: offload\n"
    "    scheme: [tcp, udp, tcp6, udp6]\n"
    "    direction: inbound\n"
    "    to: [127.0.0.0/8, \"::1\"]\n"
    "    reason: loopback bind or listen, offloaded to the host\n"
    "  - action: decline\n"
    "    to: [0.0.0.0/0, \"::/0\"]\n"
    "    reason: not loopback, left to the guest's own stack\n"
    "  - action: offload\n"
    "    scheme: ipx\n"
    "    reason: IPX, offloaded to the host\n";

const char *hwsock_policy_default_yaml(void) { return default_yaml; }

int hwsock_policy_load_default(hwsock_policy **out) {
  return hwsock_policy_load_string(default_yaml, sizeof(default_yaml) - 1,
                                   "<default policy>", out, NULL, 0);
}
