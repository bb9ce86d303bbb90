/* hwsock-policy: check a policy file, and ask it what it decides.
 *
 *   hwsock-policy check [--config FILE] [--inbound] [--verbose] URI...
 *   hwsock-policy lint --config FILE
 *   hwsock-policy default
 *
 * It uses only the public API (hwsock/policy.h, hwsock/uri.h), so what it
 * prints is exactly what a device embedding the same library decides. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwsock/identity.h"
#include "hwsock/policy.h"
#include "hwsock/uri.h"
#include "hwsock/wire.h"

#define EXIT_USAGE 2

static void usage(FILE *f) {
  fprintf(f,
          "Usage: hwsock-policy check [--config FILE] [--inbound] [--verbose] "
          "URI...\n"
          "       hwsock-policy lint --config FILE\n"
          "       hwsock-policy default\n"
          "\n"
          "check    prints one line per URI, in order: VERDICT URI REASON\n"
          "         VERDICT is offload, decline, deny or invalid; URI is the\n"
          "         canonical form (the input as given when invalid); REASON\n"
          "         is the matching rule's reason, \"rule N (line L)\" when\n"
          "         it has none, \"default\" when no rule matched, or the\n"
          "         parse error of an invalid URI. Exit 0 once every URI was\n"
          "         evaluated (whatever the verdicts), 2 on a usage or\n"
          "         policy error.\n"
          "  --config FILE  the policy file; without it, the built-in default\n"
          "                 policy (see `hwsock-policy default`)\n"
          "  --inbound      decide for bind/listen (port 0 allowed) instead\n"
          "                 of connect/sendto\n"
          "  --verbose      append [rule R line L error E backend B\n"
          "                 identity proxy-v2 as URI], where `as` is the\n"
          "                 address the rules saw (0.0.0.0 as 127.0.0.1, a\n"
          "                 v4-mapped address as tcp/udp) when it differs\n"
          "lint     loads FILE and prints \"FILE: ok (N rules)\", or the\n"
          "         error as FILE:LINE:COL: message and exits 1; rules whose\n"
          "         meaning may not be what was meant are warned about on\n"
          "         stderr (FILE:LINE: warning: ...), exit still 0\n"
          "default  prints the built-in default policy (YAML)\n"
          "\n"
          "Policy format: docs/POLICY.md.\n");
}

static int usage_error(const char *msg) {
  fprintf(stderr, "hwsock-policy: %s\nTry 'hwsock-policy --help'.\n", msg);
  return EXIT_USAGE;
}

static int load(const char *config, hwsock_policy **p, char *err,
                size_t errlen) {
  if (config == NULL) {
    int rc = hwsock_policy_load_default(p);
    if (rc < 0)
      snprintf(err, errlen, "built-in policy: %s", hwsock_strerror(rc));
    return rc;
  }
  return hwsock_policy_load_file(config, p, err, errlen);
}

/* `as`: the address the rules saw when it is not the one given (0.0.0.0
 * as 127.0.0.1, a v4-mapped address as tcp/udp), else NULL. */
static void print_verdict(const hwsock_policy *p, const char *uri,
                          const char *as, const hwsock_verdict *v,
                          int verbose) {
  printf("%s %s %s", hwsock_action_name(v->action), uri, v->reason);
  if (verbose) {
    printf(" [rule %d line %d", v->rule >= 0 ? v->rule + 1 : 0, v->line);
    if (v->action == HWSOCK_ACTION_DENY)
      printf(" error %s", hwsock_err_name(v->error) + 7); /* "HWSOCK_" */
    if (v->backend != NULL)
      printf(" backend %s", v->backend);
    if (hwsock_policy_rule_identity(p, v->rule) == HWSOCK_IDENTITY_PROXY_V2)
      printf(" identity proxy-v2");
    if (as != NULL)
      printf(" as %s", as);
    printf("]");
  }
  printf("\n");
}

static int cmd_check(const char *config, int inbound, int verbose, int n,
                     char **uris) {
  char err[512], canon[HWSOCK_URI_MAX + 1], as[HWSOCK_URI_MAX + 1];
  hwsock_policy *p;
  int dir = inbound ? HWSOCK_DIR_INBOUND : HWSOCK_DIR_OUTBOUND;
  int op = inbound ? HWSOCK_OP_BIND : HWSOCK_OP_CONNECT;

  if (n == 0)
    return usage_error("check: no URI given");
  if (load(config, &p, err, sizeof(err)) < 0) {
    fprintf(stderr, "hwsock-policy: %s\n", err);
    return EXIT_USAGE;
  }
  for (int i = 0; i < n; i++) {
    hwsock_addr a, e;
    hwsock_verdict v;
    const char *why = NULL;
    int rc = hwsock_uri_parse(uris[i], strlen(uris[i]),
                              inbound ? HWSOCK_URI_ALLOW_PORT0 : 0, &a, &why);
    if (rc < 0) {
      printf("invalid %s %s\n", uris[i], why ? why : hwsock_strerror(rc));
      continue;
    }
    if (hwsock_uri_format(&a, canon, sizeof(canon)) < 0)
      snprintf(canon, sizeof(canon), "%s", uris[i]);
    hwsock_policy_decide(p, &a, dir, op, &v);
    int same = hwsock_policy_effective_addr(&a, dir, 0, &e, NULL) < 0 ||
               memcmp(&a, &e, sizeof(a)) == 0 ||
               hwsock_uri_format(&e, as, sizeof(as)) < 0;
    print_verdict(p, canon, same ? NULL : as, &v, verbose);
  }
  hwsock_policy_free(p);
  return fflush(stdout) == 0 ? 0 : EXIT_USAGE;
}

static void warn(void *file, int line, const char *msg) {
  fprintf(stderr, "%s:%d: warning: %s\n", (const char *)file, line, msg);
}

static int cmd_lint(const char *config) {
  char err[512];
  hwsock_policy *p;
  if (config == NULL)
    return usage_error("lint: --config FILE is required");
  if (hwsock_policy_load_file(config, &p, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  int warnings = hwsock_policy_lint(p, warn, (void *)config);
  if (warnings > 0)
    printf("%s: ok (%d rules, %d warning%s)\n", config,
           hwsock_policy_rule_count(p), warnings, warnings == 1 ? "" : "s");
  else
    printf("%s: ok (%d rules)\n", config, hwsock_policy_rule_count(p));
  hwsock_policy_free(p);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"inbound", no_argument, NULL, 'i'},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *config = NULL, *cmd;
  int inbound = 0, verbose = 0, c;

  if (argc < 2)
    return usage_error("no command given");
  cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
      strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  optind = 2;
  while ((c = getopt_long(argc, argv, "c:ivh", opts, NULL)) != -1) {
    switch (c) {
    case 'c':
      config = optarg;
      break;
    case 'i':
      inbound = 1;
      break;
    case 'v':
      verbose = 1;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      return usage_error("bad option");
    }
  }
  if (strcmp(cmd, "check") == 0)
    return cmd_check(config, inbound, verbose, argc - optind, argv + optind);
  if (strcmp(cmd, "lint") == 0 && optind == argc && !inbound && !verbose)
    return cmd_lint(config);
  if (strcmp(cmd, "default") == 0 && optind == argc && config == NULL &&
      !inbound && !verbose) {
    fputs(hwsock_policy_default_yaml(), stdout);
    return fflush(stdout) == 0 ? 0 : 1;
  }
  return usage_error("bad command line");
}
