/* A guest for test/vmm/takeover_test.py: streams through the VMM while it
 * is replaced.
 *
 *   takeover_client VMM PORT CONNS STOPFILE [evq] [wait=WAITPORT]
 *                   [pause=PAUSEFILE]
 *
 * CONNS threads, each one connection through the guest driver to the echo
 * server on 127.0.0.1:PORT: rounds of a per-connection pseudo-random chunk
 * (1 byte .. 64 KiB) out and the same bytes back, until STOPFILE exists.
 * Every chunk is compared as it comes back and FNV-1a hashes of the whole
 * streams each way are compared at the end. "bytes N" lines (the total
 * echoed so far) go to stdout about every 100 ms; the last line is
 *   "stream CONNS: bytes B mismatched M failed F"
 * with the error each failed connection met on stderr. Exit 0 when every
 * connection streamed without an error or a wrong byte, 1 otherwise.
 * With "evq" the guest negotiates the event queue (the VMM needs
 * --queues 2). With wait=WAITPORT one more connection, to WAITPORT, waits
 * in a RECV for the 4 bytes "wake" (counted as failed or mismatched too).
 * With pause=PAUSEFILE each connection waits between two rounds while
 * PAUSEFILE exists (nothing in flight): the progress lines then say
 * "bytes N paused P", P the connections waiting so.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hwsock/attach.h"
#include "hwsock/guest.h"

static hwsock_guest *g;
static unsigned port;
static const char *stopfile;
static atomic_ullong total;
static atomic_int done;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned mismatched, failed;

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static int stop_asked(void) { return access(stopfile, F_OK) == 0; }

static const char *pausefile;
static atomic_uint paused;

/* Between two rounds: waits while the pause file exists. */
static void pause_point(void) {
  if (pausefile == NULL || access(pausefile, F_OK) != 0)
    return;
  atomic_fetch_add(&paused, 1);
  struct timespec ts = {0, 10 * 1000 * 1000};
  while (access(pausefile, F_OK) == 0 && !stop_asked())
    nanosleep(&ts, NULL);
  atomic_fetch_sub(&paused, 1);
}

/* WAITPORT: one more connection, whose RECV waits (held across every
 * takeover) until that server sends "wake" after the last one. */
static unsigned waitport;

static void *waiter(void *arg) {
  (void)arg;
  char uri[64], buf[8];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", waitport);
  long err = 0;
  size_t got = 0;
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  if (s < 0)
    err = s;
  else if ((err = hwsock_guest_connect(g, s, uri)) == 0)
    while (got < 4) {
      ssize_t k = hwsock_guest_recv(g, s, buf + got, 4 - got, 0);
      if (k <= 0) {
        err = k;
        break;
      }
      got += (size_t)k;
    }
  if (s >= 0)
    hwsock_guest_close(g, s);
  pthread_mutex_lock(&mu);
  if (got < 4) {
    failed++;
    fprintf(stderr, "the waiting connection failed: %s\n",
            err == 0 ? "end of stream" : hwsock_err_name((int)err));
  } else if (memcmp(buf, "wake", 4) != 0) {
    mismatched++;
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void *stream(void *arg) {
  unsigned idx = (unsigned)(uintptr_t)arg;
  unsigned seed = idx * 2654435761u + 1;
  static _Thread_local uint8_t out[65536], in[65536];
  uint64_t h_out = 0xcbf29ce484222325ull, h_in = h_out;
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", port);
  long err = 0;
  int bad = 0, wrong = 0;
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  if (s < 0)
    bad = 1, err = s;
  else if ((err = hwsock_guest_connect(g, s, uri)) < 0)
    bad = 1;
  while (!bad && !stop_asked()) {
    pause_point();
    seed = seed * 1103515245u + 12345u;
    size_t n = 1 + (seed >> 8) % sizeof(out);
    for (size_t i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      out[i] = (uint8_t)(seed >> 16);
    }
    h_out = fnv(h_out, out, n);
    for (size_t off = 0; !bad && off < n;) {
      ssize_t k = hwsock_guest_send(g, s, out + off, n - off, 0);
      if (k <= 0)
        bad = 1, err = k;
      else
        off += (size_t)k;
    }
    for (size_t got = 0; !bad && got < n;) {
      ssize_t k = hwsock_guest_recv(g, s, in + got, n - got, 0);
      if (k <= 0)
        bad = 1, err = k;
      else
        got += (size_t)k;
    }
    if (bad)
      break;
    h_in = fnv(h_in, in, n);
    if (memcmp(in, out, n) != 0)
      wrong = 1;
    atomic_fetch_add(&total, n);
  }
  if (s >= 0)
    hwsock_guest_close(g, s);
  pthread_mutex_lock(&mu);
  if (bad) {
    failed++;
    fprintf(stderr, "connection %u failed: %s\n", idx,
            err == 0 ? "end of stream" : hwsock_err_name((int)err));
  } else if (wrong || h_in != h_out) {
    mismatched++;
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void *progress(void *arg) {
  (void)arg;
  struct timespec ts = {0, 100 * 1000 * 1000};
  while (!atomic_load(&done)) {
    if (pausefile != NULL)
      printf("bytes %llu paused %u\n", (unsigned long long)atomic_load(&total),
             atomic_load(&paused));
    else
      printf("bytes %llu\n", (unsigned long long)atomic_load(&total));
    nanosleep(&ts, NULL);
  }
  return NULL;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int evq = 0;
  for (int i = 5; i < argc; i++) {
    if (strcmp(argv[i], "evq") == 0)
      evq = 1;
    else if (strncmp(argv[i], "wait=", 5) == 0)
      waitport = (unsigned)atoi(argv[i] + 5);
    else if (strncmp(argv[i], "pause=", 6) == 0)
      pausefile = argv[i] + 6;
    else
      argc = 0;
  }
  if (argc < 5) {
    fprintf(stderr, "usage: takeover_client VMM PORT CONNS STOPFILE [evq] "
                    "[wait=PORT] [pause=FILE]\n");
    return 2;
  }
  port = (unsigned)atoi(argv[2]);
  unsigned conns = (unsigned)atoi(argv[3]);
  stopfile = argv[4];
  hwsock_attachment *at;
  hwsock_attach_opts o;
  hwsock_attach_opts_init(&o);
  o.event_queue = evq;
  int rc = hwsock_attach(argv[1], &o, &at);
  if (rc < 0) {
    fprintf(stderr, "attach: %s\n", hwsock_err_name(rc));
    return 1;
  }
  g = hwsock_attach_guest(at);
  pthread_t pt, *t = calloc(conns, sizeof(*t));
  if (t == NULL || pthread_create(&pt, NULL, progress, NULL) != 0)
    return 1;
  for (unsigned i = 0; i < conns; i++)
    if (pthread_create(&t[i], NULL, stream, (void *)(uintptr_t)i) != 0)
      return 1;
  pthread_t wt;
  if (waitport != 0 && pthread_create(&wt, NULL, waiter, NULL) != 0)
    return 1;
  for (unsigned i = 0; i < conns; i++)
    pthread_join(t[i], NULL);
  if (waitport != 0)
    pthread_join(wt, NULL);
  atomic_store(&done, 1);
  pthread_join(pt, NULL);
  free(t);
  printf("stream %u: bytes %llu mismatched %u failed %u\n", conns,
         (unsigned long long)atomic_load(&total), mismatched, failed);
  hwsock_attach_close(at);
  return mismatched || failed;
}
