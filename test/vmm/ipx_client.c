/* An IPX guest for the loopback VMM tests: attaches to a hwsock-vmm started
 * with --ipx-net (hwsock_attach) and exchanges IPX datagrams through the
 * guest driver's API (AF_IPX, SOCK_DGRAM).
 *
 *   ipx_client VMM_PATH serve SOCKET N   bind socket number SOCKET (4 hex
 *       digits) of this guest's own network and node, print "addr URI"
 *       (the full ipx:// address from getname), then echo N datagrams back
 *       to their sources; finally "ok N hash H".
 *   ipx_client VMM_PATH send URI N       send N datagrams of sizes 1..1470
 *       with a pattern that depends on their number to URI, one at a time,
 *       and check that each comes back byte for byte, from URI; print
 *       "addr URI" (its own address, after the first send) and finally
 *       "ok N hash H". Also checks that 1471 bytes are refused (EMSGSIZE).
 *   ipx_client VMM_PATH probe            open and bind an IPX socket; print
 *       "addr URI", "error F_IPX not offered" (a guest the VMM gave no IPX
 *       slot), or "error NAME", and exit 0 either way.
 *
 * H is a 64-bit FNV-1a hash of every payload in order, so that a test can
 * compare what the sender sent with what the server echoed.
 * stderr: one line naming the failing step. Exit: 0 ok, 1 usage, 2 attach,
 * 3 socket/bind, 4 transfer error, 5 wrong data. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwsock/attach.h"
#include "hwsock/guest.h"
#include "hwsock/uri.h"

#define MAX_PAYLOAD 1470u /* docs/IPX.md: 1500-byte packet, 30-byte header */

static int fail(int code, const char *step, long err) {
  fprintf(stderr, "ipx_client: %s: %s (%s)\n", step, hwsock_strerror((int)err),
          hwsock_err_name((int)err));
  return code;
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}
#define FNV_START 0xcbf29ce484222325ull

/* Sizes cover the edges (1, around the header's 30, the largest) and a
 * spread in between. */
static size_t size_of(unsigned long k) {
  static const size_t edges[] = {1, 2, 29, 30, 31, 1469, MAX_PAYLOAD};
  const size_t nedges = sizeof(edges) / sizeof(edges[0]);
  if (k < nedges)
    return edges[k];
  return (size_t)((k * 397u) % MAX_PAYLOAD) + 1;
}

static unsigned char pattern(unsigned long k, size_t i) {
  return (unsigned char)((k * 167u + i * 131u + (i >> 8) + (k >> 3)) & 0xff);
}

static int parse_ulong(const char *s, unsigned long *out) {
  char *end;
  errno = 0;
  *out = strtoul(s, &end, 10);
  return (*s >= '0' && *s <= '9' && *end == '\0' && errno == 0) ? 0 : -1;
}

static int open_bound(hwsock_guest *g, const char *uri, int *out) {
  int s = hwsock_guest_socket(g, HWSOCK_AF_IPX, HWSOCK_SOCK_DGRAM);
  if (s < 0)
    return fail(3, "socket", s);
  int rc = hwsock_guest_bind(g, s, uri);
  if (rc < 0) {
    char step[HWSOCK_URI_MAX + 16];
    snprintf(step, sizeof(step), "bind %s", uri);
    hwsock_guest_close(g, s);
    return fail(3, step, rc);
  }
  *out = s;
  return 0;
}

static int print_name(hwsock_guest *g, int s) {
  char name[HWSOCK_URI_MAX + 1];
  int rc = hwsock_guest_getname(g, s, 0, name, sizeof(name));
  if (rc < 0)
    return fail(3, "getname", rc);
  printf("addr %s\n", name);
  fflush(stdout);
  return 0;
}

static int serve(hwsock_guest *g, const char *sock_hex, unsigned long n) {
  char uri[64];
  if (strlen(sock_hex) != 4 || strspn(sock_hex, "0123456789abcdefABCDEF") != 4)
    return fail(1, "SOCKET must be 4 hex digits", HWSOCK_EINVAL);
  snprintf(uri, sizeof(uri), "ipx://00000000.000000000000.%s", sock_hex);
  int s = -1, code;
  if ((code = open_bound(g, uri, &s)) != 0 || (code = print_name(g, s)) != 0)
    return code;
  unsigned char buf[MAX_PAYLOAD + 64];
  uint64_t h = FNV_START;
  for (unsigned long k = 0; k < n; k++) {
    char src[HWSOCK_URI_MAX + 1];
    unsigned flags = 0;
    ssize_t got = hwsock_guest_recvfrom(g, s, buf, sizeof(buf), 0, src,
                                        sizeof(src), &flags);
    if (got < 0)
      return fail(4, "recvfrom", (long)got);
    if (flags & HWSOCK_RESP_F_TRUNC) {
      fprintf(stderr, "ipx_client: datagram %lu truncated\n", k);
      return 5;
    }
    h = fnv(h, buf, (size_t)got);
    ssize_t w = hwsock_guest_sendto(g, s, buf, (size_t)got, 0, src);
    if (w < 0) {
      char step[HWSOCK_URI_MAX + 16];
      snprintf(step, sizeof(step), "sendto %s", src);
      return fail(4, step, (long)w);
    }
  }
  int rc = hwsock_guest_close(g, s);
  if (rc < 0)
    return fail(4, "close", rc);
  printf("ok %lu hash %016" PRIx64 "\n", n, h);
  return 0;
}

static int send_check(hwsock_guest *g, const char *dest, unsigned long n) {
  int s = hwsock_guest_socket(g, HWSOCK_AF_IPX, HWSOCK_SOCK_DGRAM);
  if (s < 0)
    return fail(3, "socket", s);
  unsigned char out[MAX_PAYLOAD + 1], in[MAX_PAYLOAD + 64];
  memset(out, 0x5a, sizeof(out));
  /* One byte over the limit is the device's EMSGSIZE, not a packet. */
  ssize_t w = hwsock_guest_sendto(g, s, out, MAX_PAYLOAD + 1, 0, dest);
  if (w != HWSOCK_EMSGSIZE) {
    fprintf(stderr, "ipx_client: sendto of %u bytes: got %zd, expected "
            "HWSOCK_EMSGSIZE\n", MAX_PAYLOAD + 1, w);
    return 4;
  }
  uint64_t h = FNV_START;
  for (unsigned long k = 0; k < n; k++) {
    size_t len = size_of(k);
    for (size_t i = 0; i < len; i++)
      out[i] = pattern(k, i);
    w = hwsock_guest_sendto(g, s, out, len, 0, dest);
    if (w < 0) {
      char step[HWSOCK_URI_MAX + 16];
      snprintf(step, sizeof(step), "sendto %s", dest);
      return fail(4, step, (long)w);
    }
    if ((size_t)w != len) {
      fprintf(stderr, "ipx_client: sendto took %zd of %zu bytes\n", w, len);
      return 4;
    }
    if (k == 0) {
      int code = print_name(g, s); /* bound by the first send */
      if (code != 0)
        return code;
    }
    char src[HWSOCK_URI_MAX + 1];
    unsigned flags = 0;
    ssize_t got = hwsock_guest_recvfrom(g, s, in, sizeof(in), 0, src,
                                        sizeof(src), &flags);
    if (got < 0)
      return fail(4, "recvfrom", (long)got);
    if (strcmp(src, dest) != 0) {
      fprintf(stderr, "ipx_client: datagram %lu came from %s, not %s\n", k,
              src, dest);
      return 5;
    }
    if ((size_t)got != len || (flags & HWSOCK_RESP_F_TRUNC)) {
      fprintf(stderr, "ipx_client: datagram %lu: %zd bytes back, sent %zu\n",
              k, got, len);
      return 5;
    }
    for (size_t i = 0; i < len; i++)
      if (in[i] != out[i]) {
        fprintf(stderr, "ipx_client: datagram %lu byte %zu: got %u, sent "
                "%u\n", k, i, in[i], out[i]);
        return 5;
      }
    h = fnv(h, out, len);
  }
  int rc = hwsock_guest_close(g, s);
  if (rc < 0)
    return fail(4, "close", rc);
  printf("ok %lu hash %016" PRIx64 "\n", n, h);
  return 0;
}

static int probe(hwsock_guest *g) {
  /* a driver opens IPX sockets only when the device offers F_IPX */
  if (!(hwsock_guest_features(g) & HWSOCK_F_IPX)) {
    printf("error F_IPX not offered\n");
    return 0;
  }
  int s = hwsock_guest_socket(g, HWSOCK_AF_IPX, HWSOCK_SOCK_DGRAM);
  int rc = s < 0 ? s : hwsock_guest_bind(g, s, "ipx://00000000.000000000000.0000");
  if (rc < 0) {
    printf("error %s\n", hwsock_err_name(rc));
    return 0;
  }
  int code = print_name(g, s);
  hwsock_guest_close(g, s);
  return code;
}

int main(int argc, char **argv) {
  unsigned long n = 0;
  int ok = argc >= 3 &&
           ((strcmp(argv[2], "serve") == 0 && argc == 5 &&
             parse_ulong(argv[4], &n) == 0) ||
            (strcmp(argv[2], "send") == 0 && argc == 5 &&
             parse_ulong(argv[4], &n) == 0) ||
            (strcmp(argv[2], "probe") == 0 && argc == 3));
  if (!ok) {
    fprintf(stderr, "usage: ipx_client VMM_PATH serve SOCKET N\n"
                    "       ipx_client VMM_PATH send URI N\n"
                    "       ipx_client VMM_PATH probe\n");
    return 1;
  }
  hwsock_attachment *a;
  int rc = hwsock_attach(argv[1], NULL, &a);
  if (rc < 0)
    return fail(2, "attach", rc);
  hwsock_guest *g = hwsock_attach_guest(a);
  int code;
  if (strcmp(argv[2], "serve") == 0)
    code = serve(g, argv[3], n);
  else if (strcmp(argv[2], "send") == 0)
    code = send_check(g, argv[3], n);
  else
    code = probe(g);
  fflush(stdout);
  hwsock_attach_close(a);
  return code;
}
