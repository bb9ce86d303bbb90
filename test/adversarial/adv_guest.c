/* The adversarial guest (test/adversarial/adversarial_test.py runs it).
 *
 *   adv_guest list GROUP              the case names of GROUP (ring, req, race)
 *   adv_guest VMM GROUP CASE ECHO DENY
 *                                     attaches to hwsock-vmm at VMM with raw
 *                                     rings and runs CASE; ECHO is a TCP echo
 *                                     server's port on 127.0.0.1, DENY a port
 *                                     the VMM's policy denies (a listener the
 *                                     harness counts). Prints "PASS CASE" once
 *                                     the device did exactly what the protocol
 *                                     says, then stays attached until stdin
 *                                     ends (the harness checks the VMM
 *                                     meanwhile), runs the case's last check
 *                                     and exits 0; any failure: a line on
 *                                     stderr and exit 1
 *   adv_guest VMM echo ECHO           a well-behaved guest (the guest driver):
 *                                     one connection to the echo server; for
 *                                     each line N on stdin it sends N bytes of
 *                                     a pattern, reads them back, compares
 *                                     them and prints "ok N" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adversarial/adv.h"
#include "hwsock/attach.h"
#include "hwsock/guest.h"

unsigned adv_echo_port, adv_deny_port;
const char *adv_vmm_path;

static adv the_guest; /* large (per-head tables): not on the stack */

static const adv_case *group(const char *name) {
  if (strcmp(name, "ring") == 0)
    return adv_ring_cases;
  if (strcmp(name, "req") == 0)
    return adv_req_cases;
  if (strcmp(name, "race") == 0)
    return adv_race_cases;
  return NULL;
}

static int echo_guest(unsigned port) {
  hwsock_attachment *at;
  int rc = hwsock_attach(adv_vmm_path, NULL, &at);
  if (rc < 0) {
    fprintf(stderr, "echo guest: attach: %s\n", hwsock_err_name(rc));
    return 1;
  }
  hwsock_guest *g = hwsock_attach_guest(at);
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", port);
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  if (s < 0 || (rc = hwsock_guest_connect(g, s, uri)) < 0) {
    fprintf(stderr, "echo guest: connect: %s\n",
            hwsock_err_name(s < 0 ? s : rc));
    hwsock_attach_close(at);
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  unsigned long round = 0;
  while (fgets(line, sizeof(line), stdin) != NULL) {
    size_t n = (size_t)strtoul(line, NULL, 10);
    uint8_t *out = malloc(n + 1), *in = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
      out[i] = (uint8_t)(i * 7 + round);
    round++;
    size_t sent = 0, got = 0;
    ssize_t k = 0;
    while (k >= 0 && sent < n) {
      k = hwsock_guest_send(g, s, out + sent, n - sent, 0);
      if (k > 0)
        sent += (size_t)k;
      /* drain as we go: the echo must not fill both directions */
      while (k >= 0 && got < sent) {
        ssize_t m = hwsock_guest_recv(g, s, in + got, sent - got, 0);
        if (m <= 0) {
          k = m == 0 ? HWSOCK_ECONNRESET : m;
          break;
        }
        got += (size_t)m;
      }
    }
    int same = k >= 0 && got == n && memcmp(in, out, n) == 0;
    free(out);
    free(in);
    if (!same) {
      fprintf(stderr, "echo guest: exchange of %zu bytes failed (%s)\n", n,
              k < 0 ? hwsock_err_name((int)k) : "bytes differ");
      hwsock_attach_close(at);
      return 1;
    }
    printf("ok %zu\n", n);
    fflush(stdout);
  }
  hwsock_guest_close(g, s);
  hwsock_attach_close(at);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "list") == 0 && group(argv[2]) != NULL) {
    for (const adv_case *c = group(argv[2]); c->name != NULL; c++)
      printf("%s\n", c->name);
    return 0;
  }
  if (argc == 4 && strcmp(argv[2], "echo") == 0) {
    adv_vmm_path = argv[1];
    return echo_guest((unsigned)atoi(argv[3]));
  }
  const adv_case *g = argc == 6 ? group(argv[2]) : NULL;
  if (g == NULL) {
    fprintf(stderr, "usage: adv_guest list GROUP | VMM GROUP CASE ECHO DENY | "
                    "VMM echo ECHO\n");
    return 2;
  }
  adv_vmm_path = argv[1];
  adv_echo_port = (unsigned)atoi(argv[4]);
  adv_deny_port = (unsigned)atoi(argv[5]);
  const adv_case *c = g;
  while (c->name != NULL && strcmp(c->name, argv[3]) != 0)
    c++;
  if (c->name == NULL) {
    fprintf(stderr, "adv_guest: no case '%s' in group %s\n", argv[3], argv[2]);
    return 2;
  }
  adv *a = &the_guest;
  if (adv_attach(a) < 0 || c->run(a) < 0) {
    fprintf(stderr, "FAILED %s\n", c->name);
    return 1;
  }
  printf("PASS %s\n", c->name);
  char buf[64];
  while (fgets(buf, sizeof(buf), stdin) != NULL)
    ;
  if (c->after != NULL && c->after(a) < 0) {
    fprintf(stderr, "FAILED %s (after the hold)\n", c->name);
    return 1;
  }
  adv_detach(a);
  return 0;
}
