/* Command line of hwsock-vmm. */
#include <errno.h>
#include <getopt.h>
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
    "  --once              exit after the first guest detaches\n"
    "  --ready-fd N        write \"ready\\n\" to fd N once listening\n"
    "  --control PATH      control socket for hwsock-stat (default: the\n"
    "                      --listen PATH + \".ctl\"; \"\" for none)\n"
    "  --pcap FILE         capture every guest's offloaded flows to FILE\n"
    "  --pcap-max MIB      stop writing frames past MIB MiB (default 64)\n"
    "  -v, --verbose       more logging: once info, twice debug\n"
    "  -h, --help          this text\n",
    VMM_DEFAULT_MEM_MIB, HWSOCK_MAX_QUEUES, VMM_DEFAULT_MAX_GUESTS);
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

enum {
  OPT_LISTEN = 256, OPT_POLICY, OPT_BACKEND_DIR, OPT_BACKEND, OPT_MEM,
  OPT_QUEUES, OPT_MAX_GUESTS, OPT_ONCE, OPT_READY_FD, OPT_CONTROL,
  OPT_PCAP, OPT_PCAP_MAX
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
      {"once", no_argument, NULL, OPT_ONCE},
      {"ready-fd", required_argument, NULL, OPT_READY_FD},
      {"control", required_argument, NULL, OPT_CONTROL},
      {"pcap", required_argument, NULL, OPT_PCAP},
      {"pcap-max", required_argument, NULL, OPT_PCAP_MAX},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof(*o));
  o->mem_mib = VMM_DEFAULT_MEM_MIB;
  o->queues = 1;
  o->max_guests = VMM_DEFAULT_MAX_GUESTS;
  o->ready_fd = -1;
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
    case OPT_ONCE: o->once = 1; break;
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
  return 0;
}
