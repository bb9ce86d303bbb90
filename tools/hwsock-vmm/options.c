/* Command line of hwsock-vmm. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm.h"

static void usage(FILE *f) {
  fprintf(f,
    "usage: hwsock-vmm --listen PATH [options]\n"
    "\n"
    "Loopback VMM: serves libhwsock devices to guest processes that attach\n"
    "to the unix socket PATH (e.g. hwsock-run, or hwsock_attach()).\n"
    "\n"
    "  --listen PATH       unix socket to listen on (required)\n"
    "  --policy FILE       policy (YAML); default: the built-in policy\n"
    "  --backend-dir DIR   load every *.so in DIR (default: the build tree's\n"
    "                      backends when run from it, else the installed\n"
    "                      ones; \"\" loads none)\n"
    "  --backend PATH      also load this module (repeatable; served first)\n"
    "  --mem MIB           guest memory per guest (default %u)\n"
    "  --queues N          request queues per device (default 1, max %u)\n"
    "  --max-guests N      guests attached at once (default %u)\n"
    "  --max-sockets N     socket ids per guest's device (default 65536)\n"
    "  --guest-sockets N   host sockets one guest may hold at once; beyond,\n"
    "                      its calls fail with EMFILE (default: --max-sockets\n"
    "                      or a quarter of --vmm-sockets, the smaller)\n"
    "  --vmm-sockets N     host sockets all guests together may hold (default:\n"
    "                      the fd limit, raised to its hard maximum at start,\n"
    "                      minus the VMM's own: %u, and %u + 2 per queue for\n"
    "                      each of --max-guests)\n"
    "  --kick-budget N     requests taken from a guest's queue per loop turn\n"
    "                      before the other guests' turn (default %u)\n"
    "  --poll-us N         after activity, poll the queues for N us before\n"
    "                      sleeping (costs a CPU; default 0: off)\n"
    "  --takeover          take every guest, host connection and listening\n"
    "                      socket over from the hwsock-vmm serving PATH (it\n"
    "                      exits 0 once handed over; its guests see no reset;\n"
    "                      docs/EMBEDDING.md section 12); exit 1 and leave it\n"
    "                      serving when that fails\n"
    "  --once              exit after the first guest detaches\n"
    "  --ready-fd N        write \"ready\\n\" to fd N once listening\n"
    "  --control PATH      control socket for hwsock-stat (default: the\n"
    "                      --listen PATH + \".ctl\"; \"\" for none)\n"
    "  --pcap FILE         capture every guest's offloaded flows to FILE, a new\n"
    "                      file (mode 0600; an existing FILE is an error)\n"
    "  --pcap-max MIB      stop writing frames past MIB MiB (default 64)\n"
    "  --socket-mode MODE  mode of the --listen and control sockets (octal,\n"
    "                      default %04o: the VMM's user only; the umask\n"
    "                      does not apply)\n"
    "  --socket-group GRP  group of those sockets (name or gid; with\n"
    "                      --socket-mode 0660 it may attach guests)\n"
    "  --identity NAME     this VM's name, sent in a PROXY v2 header on\n"
    "                      connections of rules with identity: proxy-v2\n"
    "                      (docs/IDENTITY.md)\n"
    "  --identity-key FILE sign that header with HMAC-SHA256 keyed by FILE's\n"
    "                      bytes (16..4096; mode 0600, not a symlink)\n"
    "\n"
    "IPX (RFC 1234 IPX-in-UDP, docs/IPX.md); only with --ipx-net. Guest slot i\n"
    "(the lowest free one at attach) gets node NODE_BASE+i+1 and UDP port\n"
    "BASE+i; every other slot and every --ipx-peer is its peer.\n"
    "  --ipx-net HEX8      the guests' IPX network (e.g. 0000cafe)\n"
    "  --ipx-port BASE     UDP port of slot 0 (default %u)\n"
    "  --ipx-node-base HEX12  slot i's node is this + i + 1 (default %s)\n"
    "  --ipx-slots N       guests with IPX at once (default %u, max %u)\n"
    "  --ipx-bind IP       address of the slots' UDP sockets (default %s)\n"
    "  --ipx-peer NODE@IP:PORT  a guest of another VMM (repeatable;\n"
    "                      slots - 1 + peers <= %u; [v6]:PORT for IPv6)\n"
    "\n"
    "  -v, --verbose       more logging: once info, twice debug\n"
    "  -h, --help          this text\n",
    VMM_DEFAULT_MEM_MIB, HWSOCK_MAX_QUEUES, VMM_DEFAULT_MAX_GUESTS,
    VMM_FD_RESERVE, VMM_FDS_PER_GUEST_BASE, HWSOCK_DEFAULT_KICK_BUDGET, VMM_DEFAULT_SOCKET_MODE,
    VMM_IPX_DEFAULT_PORT, VMM_IPX_DEFAULT_NODE_BASE, VMM_IPX_DEFAULT_SLOTS,
    VMM_IPX_MAX_SLOTS, VMM_IPX_DEFAULT_BIND, VMM_IPX_MAX_PEERS);
}

/* A whole decimal number in [lo, hi]. */
static int parse_uint(const char *opt, const char *s, unsigned lo,
                      unsigned hi, unsigned *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < lo ||
      v > hi) {
    fprintf(stderr, "hwsock-vmm: %s: expected a number in %u..%u, got '%s'\n",
            opt, lo, hi, s);
    return -1;
  }
  *out = (unsigned)v;
  return 0;
}

/* --socket-mode: octal permission bits, 0..0777. */
static int parse_mode(const char *s, unsigned *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 8);
  if (s[0] < '0' || s[0] > '7' || *end != '\0' || errno != 0 || v > 0777) {
    fprintf(stderr, "hwsock-vmm: --socket-mode: expected octal permission "
                    "bits 0000..0777, got '%s'\n", s);
    return -1;
  }
  *out = (unsigned)v;
  return 0;
}

/* --socket-group: a group name, or a number. */
static int parse_group(const char *s, long *out) {
  struct group *gr = getgrnam(s);
  if (gr != NULL) {
    *out = (long)gr->gr_gid;
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0 &&
      v < (gid_t)-1) {
    *out = (long)v;
    return 0;
  }
  fprintf(stderr, "hwsock-vmm: --socket-group: no group '%s'\n", s);
  return -1;
}

enum {
  OPT_LISTEN = 256, OPT_POLICY, OPT_BACKEND_DIR, OPT_BACKEND, OPT_MEM,
  OPT_QUEUES, OPT_MAX_GUESTS, OPT_ONCE, OPT_READY_FD, OPT_CONTROL,
  OPT_PCAP, OPT_PCAP_MAX, OPT_IPX_NET, OPT_IPX_PORT, OPT_IPX_NODE_BASE,
  OPT_IPX_SLOTS, OPT_IPX_BIND, OPT_IPX_PEER, OPT_MAX_SOCKETS, OPT_POLL_US,
  OPT_SOCKET_MODE, OPT_SOCKET_GROUP, OPT_GUEST_SOCKETS, OPT_VMM_SOCKETS,
  OPT_KICK_BUDGET, OPT_IDENTITY, OPT_IDENTITY_KEY, OPT_TAKEOVER
};

int vmm_parse_options(int argc, char **argv, vmm_options *o) {
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"policy", required_argument, NULL, OPT_POLICY},
      {"backend-dir", required_argument, NULL, OPT_BACKEND_DIR},
      {"backend", required_argument, NULL, OPT_BACKEND},
      {"mem", required_argument, NULL, OPT_MEM},
      {"queues", required_argument, NULL, OPT_QUEUES},
      {"max-guests", required_argument, NULL, OPT_MAX_GUESTS},
      {"max-sockets", required_argument, NULL, OPT_MAX_SOCKETS},
      {"guest-sockets", required_argument, NULL, OPT_GUEST_SOCKETS},
      {"kick-budget", required_argument, NULL, OPT_KICK_BUDGET},
      {"vmm-sockets", required_argument, NULL, OPT_VMM_SOCKETS},
      {"poll-us", required_argument, NULL, OPT_POLL_US},
      {"once", no_argument, NULL, OPT_ONCE},
      {"takeover", no_argument, NULL, OPT_TAKEOVER},
      {"ready-fd", required_argument, NULL, OPT_READY_FD},
      {"control", required_argument, NULL, OPT_CONTROL},
      {"pcap", required_argument, NULL, OPT_PCAP},
      {"pcap-max", required_argument, NULL, OPT_PCAP_MAX},
      {"ipx-net", required_argument, NULL, OPT_IPX_NET},
      {"ipx-port", required_argument, NULL, OPT_IPX_PORT},
      {"ipx-node-base", required_argument, NULL, OPT_IPX_NODE_BASE},
      {"ipx-slots", required_argument, NULL, OPT_IPX_SLOTS},
      {"ipx-bind", required_argument, NULL, OPT_IPX_BIND},
      {"ipx-peer", required_argument, NULL, OPT_IPX_PEER},
      {"socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
      {"socket-group", required_argument, NULL, OPT_SOCKET_GROUP},
      {"identity", required_argument, NULL, OPT_IDENTITY},
      {"identity-key", required_argument, NULL, OPT_IDENTITY_KEY},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof(*o));
  o->mem_mib = VMM_DEFAULT_MEM_MIB;
  o->queues = 1;
  o->max_guests = VMM_DEFAULT_MAX_GUESTS;
  o->ready_fd = -1;
  o->ipx_port = VMM_IPX_DEFAULT_PORT;
  o->ipx_slots = VMM_IPX_DEFAULT_SLOTS;
  o->ipx_node_base = VMM_IPX_DEFAULT_NODE_BASE;
  o->ipx_bind = VMM_IPX_DEFAULT_BIND;
  o->socket_mode = VMM_DEFAULT_SOCKET_MODE;
  o->socket_gid = -1;
  unsigned v;
  int c;
  while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_LISTEN: o->listen_path = optarg; break;
    case OPT_POLICY: o->policy_path = optarg; break;
    case OPT_BACKEND_DIR: o->backend_dir = optarg; break;
    case OPT_BACKEND:
      if (o->nbackends == VMM_MAX_PLUGINS) {
        fprintf(stderr, "hwsock-vmm: --backend: at most %u modules\n",
                VMM_MAX_PLUGINS);
        return -1;
      }
      o->backends[o->nbackends++] = optarg;
      break;
    case OPT_MEM:
      if (parse_uint("--mem", optarg, 1, VMM_MAX_MEM_MIB, &o->mem_mib) < 0)
        return -1;
      break;
    case OPT_QUEUES:
      if (parse_uint("--queues", optarg, 1, HWSOCK_MAX_QUEUES, &o->queues) < 0)
        return -1;
      break;
    case OPT_MAX_GUESTS:
      if (parse_uint("--max-guests", optarg, 1, VMM_MAX_GUESTS_LIMIT,
                     &o->max_guests) < 0)
        return -1;
      break;
    case OPT_KICK_BUDGET:
      if (parse_uint("--kick-budget", optarg, 1, HWSOCK_MAX_KICK_BUDGET,
                     &o->kick_budget) < 0)
        return -1;
      break;
    case OPT_GUEST_SOCKETS:
      if (parse_uint("--guest-sockets", optarg, 1, HWSOCK_MAX_SOCKETS_LIMIT,
                     &o->guest_sockets) < 0)
        return -1;
      break;
    case OPT_VMM_SOCKETS:
      if (parse_uint("--vmm-sockets", optarg, 1, HWSOCK_MAX_SOCKETS_LIMIT,
                     &o->vmm_sockets) < 0)
        return -1;
      break;
    case OPT_MAX_SOCKETS:
      if (parse_uint("--max-sockets", optarg, 1, HWSOCK_MAX_SOCKETS_LIMIT,
                     &o->max_sockets) < 0)
        return -1;
      break;
    case OPT_POLL_US:
      if (parse_uint("--poll-us", optarg, 0, HWSOCK_UV_MAX_POLL_US,
                     &o->poll_us) < 0)
        return -1;
      break;
    case OPT_ONCE: o->once = 1; break;
    case OPT_TAKEOVER: o->takeover = 1; break;
    case OPT_READY_FD:
      if (parse_uint("--ready-fd", optarg, 0, INT_MAX, &v) < 0)
        return -1;
      o->ready_fd = (int)v;
      break;
    case OPT_CONTROL: o->control_path = optarg; break;
    case OPT_PCAP: o->pcap_path = optarg; break;
    case OPT_PCAP_MAX:
      if (parse_uint("--pcap-max", optarg, 1, VMM_MAX_PCAP_MIB,
                     &o->pcap_max_mib) < 0)
        return -1;
      break;
    /* --ipx-*: the values are checked together by vmm_ipx_setup() */
    case OPT_IPX_NET: o->ipx_net = optarg; break;
    case OPT_IPX_PORT:
      if (parse_uint("--ipx-port", optarg, 1, 65535, &o->ipx_port) < 0)
        return -1;
      o->ipx_other = 1;
      break;
    case OPT_IPX_NODE_BASE:
      o->ipx_node_base = optarg;
      o->ipx_other = 1;
      break;
    case OPT_IPX_SLOTS:
      if (parse_uint("--ipx-slots", optarg, 1, VMM_IPX_MAX_SLOTS,
                     &o->ipx_slots) < 0)
        return -1;
      o->ipx_other = 1;
      break;
    case OPT_IPX_BIND:
      o->ipx_bind = optarg;
      o->ipx_other = 1;
      break;
    case OPT_IPX_PEER:
      if (o->ipx_npeers == VMM_IPX_MAX_PEERS) {
        fprintf(stderr, "hwsock-vmm: --ipx-peer: at most %u peers\n",
                VMM_IPX_MAX_PEERS);
        return -1;
      }
      o->ipx_peers[o->ipx_npeers++] = optarg;
      o->ipx_other = 1;
      break;
    case OPT_SOCKET_MODE:
      if (parse_mode(optarg, &o->socket_mode) < 0)
        return -1;
      break;
    case OPT_SOCKET_GROUP:
      if (parse_group(optarg, &o->socket_gid) < 0)
        return -1;
      break;
    case OPT_IDENTITY: o->identity_name = optarg; break;
    case OPT_IDENTITY_KEY: o->identity_key = optarg; break;
    case 'v': o->verbose++; break;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "hwsock-vmm: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return -1;
  }
  if (o->listen_path == NULL || o->listen_path[0] == '\0') {
    fprintf(stderr, "hwsock-vmm: --listen PATH is required\n");
    usage(stderr);
    return -1;
  }
  if (o->pcap_path != NULL && o->pcap_path[0] == '\0') {
    fprintf(stderr, "hwsock-vmm: --pcap: empty file name\n");
    return -1;
  }
  if (o->identity_key != NULL && o->identity_name == NULL) {
    fprintf(stderr, "hwsock-vmm: --identity-key needs --identity NAME\n");
    return -1;
  }
  if (o->ipx_other && o->ipx_net == NULL) {
    fprintf(stderr, "hwsock-vmm: --ipx-port/-node-base/-slots/-bind/-peer "
                    "need --ipx-net\n");
    return -1;
  }
  return 0;
}
