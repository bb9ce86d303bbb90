/* A guest process for the VMM's socket quota tests (vmm_test.py fd_quota,
 * fd_backoff): attaches to a VMM and either hogs host sockets or waits for
 * one incoming connection.
 *
 *   quota_client VMM_PATH hog N     opens up to N TCP sockets, each bound to
 *                                   127.0.0.1:0 (a host socket each); prints
 *                                   "opened K" and, if one failed, "error
 *                                   HWSOCK_E..."; then "holding", and waits
 *                                   for a line (or EOF) on stdin before it
 *                                   closes them and exits
 *   quota_client VMM_PATH accept    listens on 127.0.0.1:0, prints "port P",
 *                                   accepts one connection, prints
 *                                   "accepted URI" or "error HWSOCK_E..."
 *
 * Exit: 0 done (a failed hog is still 0: the output says how far it got),
 * 1 usage, 2 attach, 3 a setup call failed, 4 accept failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwsock/attach.h"
#include "hwsock/guest.h"

#define MAX_HOG 4096

static int hog(hwsock_guest *g, unsigned long n) {
  static int socks[MAX_HOG];
  unsigned long k = 0;
  int err = 0;
  for (; k < n; k++) {
    int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
    if (s < 0) {
      err = s;
      break;
    }
    int rc = hwsock_guest_bind(g, s, "tcp://127.0.0.1:0");
    if (rc < 0) {
      hwsock_guest_close(g, s);
      err = rc;
      break;
    }
    socks[k] = s;
  }
  printf("opened %lu\n", k);
  if (err < 0)
    printf("error %s\n", hwsock_err_name(err));
  printf("holding\n");
  fflush(stdout);
  char line[64];
  (void)!fgets(line, sizeof(line), stdin);
  for (unsigned long i = 0; i < k; i++)
    hwsock_guest_close(g, socks[i]);
  return 0;
}

static int accept_one(hwsock_guest *g) {
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  int rc = s < 0 ? s : hwsock_guest_bind(g, s, "tcp://127.0.0.1:0");
  if (rc >= 0)
    rc = hwsock_guest_listen(g, s, 8);
  char uri[128];
  if (rc >= 0)
    rc = hwsock_guest_getname(g, s, 0, uri, sizeof(uri));
  if (rc < 0) {
    fprintf(stderr, "quota_client: listen: %s\n", hwsock_err_name(rc));
    return 3;
  }
  const char *colon = strrchr(uri, ':');
  printf("port %s\n", colon ? colon + 1 : "?");
  fflush(stdout);
  int ns = hwsock_guest_accept(g, s, uri, sizeof(uri));
  if (ns < 0) {
    printf("error %s\n", hwsock_err_name(ns));
    return 4;
  }
  printf("accepted %s\n", uri);
  hwsock_guest_close(g, ns);
  hwsock_guest_close(g, s);
  return 0;
}

int main(int argc, char **argv) {
  unsigned long n = 0;
  int is_hog = argc == 4 && strcmp(argv[2], "hog") == 0 &&
               (n = strtoul(argv[3], NULL, 10)) > 0 && n <= MAX_HOG;
  if (!is_hog && !(argc == 3 && strcmp(argv[2], "accept") == 0)) {
    fprintf(stderr, "usage: quota_client VMM_PATH hog N | accept\n");
    return 1;
  }
  hwsock_attachment *a;
  int rc = hwsock_attach(argv[1], NULL, &a);
  if (rc < 0) {
    fprintf(stderr, "quota_client: attach: %s\n", hwsock_err_name(rc));
    return 2;
  }
  hwsock_guest *g = hwsock_attach_guest(a);
  int code = is_hog ? hog(g, n) : accept_one(g);
  hwsock_attach_close(a);
  return code;
}
