/* A guest process for the loopback VMM tests: attaches to a VMM
 * (hwsock_attach), connects to a TCP echo server through the device and
 * echoes N bytes of a known pattern, checking every byte that comes back.
 *
 *   vmm_client [--hold] [--conns K] VMM_PATH PORT [BYTES [CHUNK [DELAY_MS]]]
 *
 * stdout: "progress N" after each echoed chunk (tests wait for it before
 * killing something), then "ok N". With --hold the connection stays open
 * after the transfer: the client prints the driver's socket table
 * (hwsock_guest_dump) followed by "held N", waits for one line on stdin
 * (so that a test can look at the VMM's socket table meanwhile), and only
 * then closes. With --conns K it opens K connections and echoes the bytes
 * on each in turn (the observability tests want a long socket table).
 * stderr: one line naming the failing step and the HWSOCK_E*
 * error. Exit: 0 ok, 1 usage, 2 attach, 3 connect, 4 transfer error,
 * 5 wrong data. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hwsock/attach.h"
#include "hwsock/guest.h"

static unsigned char pattern_byte(size_t off) {
  return (unsigned char)((off * 131u + (off >> 9)) & 0xff);
}

static int fail(int code, const char *step, long err) {
  fprintf(stderr, "vmm_client: %s: %s (%s)\n", step, hwsock_strerror((int)err),
          hwsock_err_name((int)err));
  return code;
}

static int parse(const char *s, unsigned long *out) {
  char *end;
  errno = 0;
  *out = strtoul(s, &end, 10);
  return (*s >= '0' && *s <= '9' && *end == '\0' && errno == 0) ? 0 : -1;
}

static void sleep_ms(unsigned long ms) {
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                        .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Sends one chunk and reads it back; 0 or an exit code (reported). */
static int echo_chunk(hwsock_guest *g, int s, size_t off, size_t len,
                      unsigned char *out, unsigned char *in) {
  for (size_t i = 0; i < len; i++)
    out[i] = pattern_byte(off + i);
  ssize_t n = hwsock_guest_send(g, s, out, len, 0);
  if (n < 0)
    return fail(4, "send", (long)n);
  size_t got = 0;
  while (got < len) {
    n = hwsock_guest_recv(g, s, in + got, len - got, 0);
    if (n < 0)
      return fail(4, "recv", (long)n);
    if (n == 0) {
      fprintf(stderr, "vmm_client: recv: early EOF after %zu bytes\n",
              off + got);
      return 4;
    }
    got += (size_t)n;
  }
  for (size_t i = 0; i < len; i++) {
    if (in[i] != out[i]) {
      fprintf(stderr, "vmm_client: byte %zu: got %u, sent %u\n", off + i,
              in[i], out[i]);
      return 5;
    }
  }
  return 0;
}

/* --hold: dump the table, then wait for a line (or EOF) on stdin. */
static int hold(hwsock_guest *g, unsigned long bytes) {
  fflush(stdout);
  int rc = hwsock_guest_dump(g, STDOUT_FILENO);
  if (rc < 0)
    return fail(4, "hwsock_guest_dump", rc);
  printf("held %lu\n", bytes);
  fflush(stdout);
  char line[64];
  if (fgets(line, sizeof(line), stdin) == NULL && ferror(stdin))
    return fail(4, "reading stdin", HWSOCK_EIO);
  return 0;
}

#define MAX_CONNS 512u

int main(int argc, char **argv) {
  /* Options first: --hold, --conns K (K connections, each echoing BYTES
   * in turn; the table then has K rows). */
  int hold_open = 0;
  unsigned long nconns = 1;
  while (argc > 1 && strncmp(argv[1], "--", 2) == 0) {
    if (strcmp(argv[1], "--hold") == 0) {
      hold_open = 1;
    } else if (strcmp(argv[1], "--conns") == 0 && argc > 2 &&
               parse(argv[2], &nconns) == 0 && nconns >= 1 &&
               nconns <= MAX_CONNS) {
      argv++;
      argc--;
    } else {
      argc = 0; /* usage */
      break;
    }
    argv++;
    argc--;
  }
  unsigned long port, bytes = 1u << 20, chunk = 32u << 10, delay_ms = 0;
  if (argc < 3 || argc > 6 || parse(argv[2], &port) < 0 || port == 0 ||
      port > 65535 || (argc > 3 && parse(argv[3], &bytes) < 0) ||
      (argc > 4 && (parse(argv[4], &chunk) < 0 || chunk == 0 ||
                    chunk > (1u << 20))) ||
      (argc > 5 && parse(argv[5], &delay_ms) < 0)) {
    fprintf(stderr,
            "usage: vmm_client [--hold] [--conns K] VMM_PATH PORT [BYTES "
            "[CHUNK [DELAY_MS]]]\n");
    return 1;
  }
  hwsock_attachment *a;
  int rc = hwsock_attach(argv[1], NULL, &a);
  if (rc < 0)
    return fail(2, "attach", rc);
  hwsock_guest *g = hwsock_attach_guest(a);

  int code = 0;
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%lu", port);
  int socks[MAX_CONNS];
  unsigned long opened = 0;
  for (; opened < nconns; opened++) {
    int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
    if (s < 0) {
      code = fail(3, "socket", s);
      goto out;
    }
    socks[opened] = s;
    if ((rc = hwsock_guest_connect(g, s, uri)) < 0) {
      char step[96];
      snprintf(step, sizeof(step), "connect %s", uri);
      code = fail(3, step, rc);
      goto out;
    }
  }
  unsigned char *out = malloc(chunk), *in = malloc(chunk);
  if (out == NULL || in == NULL) {
    code = fail(4, "malloc", HWSOCK_ENOMEM);
  } else {
    for (unsigned long k = 0; k < nconns && code == 0; k++) {
      for (size_t off = 0; off < bytes && code == 0;) {
        size_t len = bytes - off < chunk ? bytes - off : chunk;
        code = echo_chunk(g, socks[k], off, len, out, in);
        off += len;
        if (code == 0) {
          printf("progress %zu\n", off);
          fflush(stdout);
          if (delay_ms)
            sleep_ms(delay_ms);
        }
      }
    }
  }
  free(out);
  free(in);
  if (code == 0 && hold_open)
    code = hold(g, bytes);
  for (unsigned long k = 0; k < nconns && code == 0; k++)
    if ((rc = hwsock_guest_close(g, socks[k])) < 0)
      code = fail(4, "close", rc);
  if (code == 0)
    printf("ok %lu\n", bytes);
out:
  hwsock_attach_close(a);
  return code;
}
