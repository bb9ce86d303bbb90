/* Load and fault guests for test/adversarial/load_test.py.
 *
 *   load_guest VMM echo PORT CONNS BYTES
 *        CONNS threads, each one connection through the guest driver to the
 *        echo server on 127.0.0.1:PORT: BYTES of a per-connection pseudo-
 *        random stream out, all of it back; FNV-1a of what went and what
 *        came compared. Prints "echo CONNS x BYTES: mismatched M failed F"
 *   load_guest VMM reset PORT CONNS
 *        CONNS threads send to a server that resets every connection after
 *        its first bytes: each must end with an error (ECONNRESET, EPIPE)
 *        or EOF, never hang. Prints "reset CONNS: errors E eof Z ok K"
 *   load_guest VMM churn PORT N
 *        N times: socket, connect to PORT, close. Prints "churn N"
 *   load_guest VMM malformed N
 *        raw rings: N malformed requests (unknown opcodes, bad ids, bad
 *        URIs, short buffers) in batches of 128, every completion checked
 *        to be an error. Prints "malformed N"
 *   load_guest VMM stall PORT SRC_PORT SINK_PORT CONNS BYTES CHUNK [ROUNDS]
 *        with the event queue (the VMM gives the device 2 queues): three
 *        phases of ROUNDS (default 1) rounds of CONNS echo threads as in
 *        echo, BYTES each in round trips
 *        of CHUNK bytes, each printing "ROUND CONNS x BYTES: mismatched M
 *        failed F seconds S rate R MiB/s cpu C" (C: this process's CPU
 *        seconds in the round): "base" with nothing else open;
 *        "stalled" while two more connections are stalled: one to SRC_PORT
 *        whose reader took the first 4 KiB and then reads no more while
 *        the server keeps sending, one to SINK_PORT whose writer keeps
 *        sending while the server reads no more; "after" once both have
 *        ended. Before the stalled round it prints "stall-open" and waits
 *        for a line on stdin (the test waits for the stalls to fill the
 *        host's socket buffers), after it prints "stall-held" and waits for
 *        another (the test looks at the host sockets and the device, then
 *        the servers end their stalls): then the reader reads to the end,
 *        the writer stops, and it prints "stall rx N bad B tx T failed F"
 *        (bad: bytes that were not i % 251 at stream offset i).
 * Exit 0 when everything behaved, 1 otherwise (reported on stderr). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "adversarial/adv.h"
#include "hwsock/attach.h"
#include "hwsock/guest.h"

unsigned adv_echo_port, adv_deny_port;
const char *adv_vmm_path;
/* load_guest has no cases of its own groups */
const adv_case adv_ring_cases[] = {{NULL, NULL, NULL}};
const adv_case adv_req_cases[] = {{NULL, NULL, NULL}};
const adv_case adv_race_cases[] = {{NULL, NULL, NULL}};

static hwsock_guest *g;
static unsigned port;
static size_t nbytes;
static size_t chunk = 65536; /* echo: bytes per round trip */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned mismatched, failed, n_err, n_eof, n_ok;

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static int connect_one(void) {
  char uri[64];
  snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", port);
  int s = hwsock_guest_socket(g, HWSOCK_AF_INET, HWSOCK_SOCK_STREAM);
  if (s < 0)
    return s;
  int rc = hwsock_guest_connect(g, s, uri);
  if (rc < 0) {
    hwsock_guest_close(g, s);
    return rc;
  }
  return s;
}

static void *echo_thread(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
  uint8_t out[65536], in[65536];
  uint64_t h_out = 0xcbf29ce484222325ull, h_in = h_out;
  int s = connect_one();
  int bad = s < 0;
  long err = s < 0 ? s : 0;
  size_t sent = 0, got = 0;
  while (!bad && got < nbytes) {
    size_t n = nbytes - sent < chunk ? nbytes - sent : chunk;
    for (size_t i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      out[i] = (uint8_t)(seed >> 16);
    }
    h_out = fnv(h_out, out, n);
    size_t off = 0;
    while (!bad && off < n) {
      ssize_t k = hwsock_guest_send(g, s, out + off, n - off, 0);
      if (k <= 0)
        bad = 1, err = k;
      else
        off += (size_t)k;
    }
    sent += n;
    while (!bad && got < sent) {
      ssize_t k = hwsock_guest_recv(g, s, in, sizeof(in) < sent - got
                                                  ? sizeof(in)
                                                  : sent - got, 0);
      if (k <= 0)
        bad = 1, err = k;
      else {
        h_in = fnv(h_in, in, (size_t)k);
        got += (size_t)k;
      }
    }
  }
  if (s >= 0)
    hwsock_guest_close(g, s);
  pthread_mutex_lock(&mu);
  if (bad) {
    failed++;
    fprintf(stderr, "connection %u failed after %zu of %zu bytes: %s\n",
            (unsigned)(uintptr_t)arg, got, nbytes,
            err == 0 ? "end of stream" : hwsock_err_name((int)err));
  } else if (h_in != h_out) {
    mismatched++;
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void *reset_thread(void *arg) {
  (void)arg;
  uint8_t buf[16384];
  memset(buf, 'x', sizeof(buf));
  int s = connect_one();
  int how = 0; /* 1 error, 2 eof */
  if (s < 0) {
    how = 1; /* refused at once is an error too */
  } else {
    for (int i = 0; i < 2000 && how == 0; i++) {
      ssize_t k = hwsock_guest_send(g, s, buf, sizeof(buf), 0);
      if (k < 0) {
        how = 1;
        break;
      }
      k = hwsock_guest_recv(g, s, buf, sizeof(buf), HWSOCK_GUEST_RECV_DONTWAIT);
      if (k == 0)
        how = 2;
      else if (k < 0 && k != HWSOCK_EAGAIN)
        how = 1;
    }
    hwsock_guest_close(g, s);
  }
  pthread_mutex_lock(&mu);
  if (how == 1)
    n_err++;
  else if (how == 2)
    n_eof++;
  else
    n_ok++;
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* ---- stall: a reader that stops reading, a peer that stops reading ---- */

#define STALL_FIRST 4096 /* what the stalled reader reads before it stops */

static int connect_to(unsigned p) {
  unsigned keep = port;
  port = p;
  int s = connect_one();
  port = keep;
  return s;
}

/* Reads up to want bytes (to EOF when want is 0) of the i % 251 stream,
 * counting bytes that are not what the offset says. */
static long read_pattern(int s, size_t want, uint64_t *off, uint64_t *bad) {
  uint8_t buf[65536];
  size_t got = 0;
  while (want == 0 || got < want) {
    size_t n = want == 0 || want - got > sizeof(buf) ? sizeof(buf) : want - got;
    ssize_t k = hwsock_guest_recv(g, s, buf, n, 0);
    if (k < 0)
      return k;
    if (k == 0)
      break;
    for (ssize_t i = 0; i < k; i++)
      *bad += buf[i] != (uint8_t)((*off + (uint64_t)i) % 251);
    *off += (uint64_t)k;
    got += (size_t)k;
  }
  return 0;
}

static int tx_sock;
static volatile int tx_stop;
static uint64_t tx_sent;
static long tx_err;

/* The writer whose peer stops reading: the i % 251 stream until told to
 * stop (it is blocked in a send while the peer reads nothing). */
static void *stall_tx_thread(void *arg) {
  (void)arg;
  uint8_t buf[65536];
  while (!__atomic_load_n(&tx_stop, __ATOMIC_ACQUIRE)) {
    for (size_t i = 0; i < sizeof(buf); i++)
      buf[i] = (uint8_t)((tx_sent + i) % 251);
    size_t off = 0;
    while (off < sizeof(buf)) {
      ssize_t k = hwsock_guest_send(g, tx_sock, buf + off, sizeof(buf) - off,
                                    0);
      if (k <= 0) {
        tx_err = k < 0 ? k : HWSOCK_EIO;
        return NULL;
      }
      off += (size_t)k;
    }
    tx_sent += sizeof(buf);
  }
  tx_err = hwsock_guest_shutdown(g, tx_sock, HWSOCK_SHUT_WR);
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_threads(unsigned n, void *(*fn)(void *));

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One round of conns echo threads; 1 when one failed or mismatched. */
static int echo_round(const char *name, unsigned conns) {
  mismatched = failed = 0;
  double t0 = now_s(), c0 = cpu_s();
  if (run_threads(conns, echo_thread) < 0)
    return 1;
  double dt = now_s() - t0;
  printf("%s %u x %zu: mismatched %u failed %u seconds %.3f rate %.1f MiB/s "
         "cpu %.3f\n",
         name, conns, nbytes, mismatched, failed, dt,
         (double)conns * (double)nbytes / (1 << 20) / dt, cpu_s() - c0);
  return mismatched || failed;
}

static unsigned rounds = 1;

static int echo_rounds(const char *name, unsigned conns) {
  int ret = 0;
  for (unsigned i = 0; i < rounds; i++)
    ret |= echo_round(name, conns);
  return ret;
}

static int wait_line(void) {
  char line[64];
  return fgets(line, sizeof(line), stdin) == NULL ? -1 : 0;
}

static int stall(unsigned src_port, unsigned sink_port, unsigned conns) {
  int ret = echo_rounds("base", conns);
  uint64_t rx_off = 0, rx_bad = 0;
  int rx = connect_to(src_port);
  tx_sock = connect_to(sink_port);
  if (rx < 0 || tx_sock < 0) {
    fprintf(stderr, "stall: connect: %s\n",
            hwsock_err_name(rx < 0 ? rx : tx_sock));
    return 1;
  }
  /* The first read grants the socket its window (PROTOCOL.md §16.3); from
   * then on the device may fill event buffers for it, up to the window. */
  long rc = read_pattern(rx, STALL_FIRST, &rx_off, &rx_bad);
  pthread_t tx;
  if (rc < 0 || pthread_create(&tx, NULL, stall_tx_thread, NULL) != 0) {
    fprintf(stderr, "stall: first read: %s\n", hwsock_err_name((int)rc));
    return 1;
  }
  printf("stall-open\n");
  if (wait_line() < 0)
    return 1;
  ret |= echo_rounds("stalled", conns);
  printf("stall-held\n");
  if (wait_line() < 0)
    return 1;
  __atomic_store_n(&tx_stop, 1, __ATOMIC_RELEASE);
  rc = read_pattern(rx, 0, &rx_off, &rx_bad);
  pthread_join(tx, NULL);
  hwsock_guest_close(g, rx);
  hwsock_guest_close(g, tx_sock);
  printf("stall rx %llu bad %llu tx %llu failed %d\n",
         (unsigned long long)rx_off, (unsigned long long)rx_bad,
         (unsigned long long)tx_sent, rc < 0 || tx_err < 0);
  if (rc < 0 || tx_err < 0)
    fprintf(stderr, "stall: reader %s, writer %s\n", hwsock_err_name((int)rc),
            hwsock_err_name((int)tx_err));
  ret |= rc < 0 || tx_err < 0 || rx_bad != 0;
  ret |= echo_rounds("after", conns);
  return ret;
}

static int run_threads(unsigned n, void *(*fn)(void *)) {
  pthread_t *t = calloc(n, sizeof(*t));
  for (unsigned i = 0; i < n; i++)
    if (pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)i) != 0)
      return -1;
  for (unsigned i = 0; i < n; i++)
    pthread_join(t[i], NULL);
  free(t);
  return 0;
}

static adv the_guest;

/* Malformed requests in batches: every one must complete with an error
 * (or used length 0 for a too-short writable part), none may break the
 * ring. */
static int malformed(unsigned long n) {
  adv *a = &the_guest;
  if (adv_attach(a) < 0 || adv_setup(a, ADV_FEATURES, 256) < 0)
    return 1;
  static const char *const uris[] = {"tcp://localhost:1", "tcp://1.2.3:4",
                                     "tcp://[::1]:80", "x", "tcp://0.0.0.0:0"};
  unsigned long done = 0;
  vrb *r = &a->q[0];
  while (done < n) {
    size_t mark = vrb_mark(r);
    int heads[128];
    unsigned b = n - done < 128 ? (unsigned)(n - done) : 128;
    for (unsigned i = 0; i < b; i++) {
      unsigned long k = done + i;
      const char *u = uris[k % 5];
      switch (k % 4) {
      case 0: /* unknown opcode */
        heads[i] = adv_req(a, 0, (uint16_t)(15 + k % 1000), 1, k, 0, 0, NULL, 0,
                           NULL, 0, 32);
        break;
      case 1: /* an id out of range */
        heads[i] = adv_req(a, 0, HWSOCK_OP_CLOSE, (uint32_t)(5000 + k), k, 0, 0,
                           NULL, 0, NULL, 0, 32);
        break;
      case 2: /* a malformed URI on a socket never opened */
        heads[i] = adv_req(a, 0, HWSOCK_OP_CONNECT, 3, k, 0, 0, u,
                           (uint32_t)strlen(u), NULL, 0, 32);
        break;
      default: /* no room for the response */
        heads[i] = adv_req(a, 0, HWSOCK_OP_OPEN, 2, k, 1, 1, NULL, 0, NULL, 0,
                           8);
        break;
      }
      if (heads[i] < 0) {
        fprintf(stderr, "malformed: chain\n");
        return 1;
      }
    }
    adv_go(a, 0);
    for (unsigned i = 0; i < b; i++) {
      if (adv_wait_head(a, 0, (uint16_t)heads[i], ADV_WAIT_MS) < 0) {
        fprintf(stderr, "malformed: request %lu not completed (reset %d)\n",
                done + i, a->reset_code);
        return 1;
      }
      uint32_t len = a->done[0][heads[i]].len;
      const hwsock_resp_hdr *p = adv_resp(a, 0, (uint16_t)heads[i]);
      int err = (done + i) % 4 == 3 ? len == 0
                                     : len == 32 && hwsock_le32_get(&p->status) != 0;
      if (!err) {
        fprintf(stderr, "malformed: request %lu: used %u status %u\n", done + i,
                len, hwsock_le32_get(&p->status));
        return 1;
      }
    }
    vrb_release(r, mark);
    done += b;
  }
  printf("malformed %lu\n", n);
  adv_detach(a);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 4) {
    fprintf(stderr, "usage: see load_guest.c\n");
    return 2;
  }
  adv_vmm_path = argv[1];
  const char *mode = argv[2];
  if (strcmp(mode, "malformed") == 0)
    return malformed(strtoul(argv[3], NULL, 10));
  port = (unsigned)atoi(argv[3]);
  hwsock_attachment *at;
  hwsock_attach_opts o;
  hwsock_attach_opts_init(&o);
  /* stall: shared receive buffers and per-socket credit (PROTOCOL.md §16) */
  o.event_queue = strcmp(mode, "stall") == 0;
  int rc = hwsock_attach(adv_vmm_path, &o, &at);
  if (rc < 0) {
    fprintf(stderr, "attach: %s\n", hwsock_err_name(rc));
    return 1;
  }
  g = hwsock_attach_guest(at);
  int ret = 0;
  if (strcmp(mode, "echo") == 0 && argc == 6) {
    unsigned conns = (unsigned)atoi(argv[4]);
    nbytes = (size_t)strtoull(argv[5], NULL, 10);
    run_threads(conns, echo_thread);
    printf("echo %u x %zu: mismatched %u failed %u\n", conns, nbytes,
           mismatched, failed);
    ret = mismatched || failed;
  } else if (strcmp(mode, "stall") == 0 && (argc == 9 || argc == 10)) {
    nbytes = (size_t)strtoull(argv[7], NULL, 10);
    chunk = (size_t)strtoull(argv[8], NULL, 10);
    if (argc == 10)
      rounds = (unsigned)atoi(argv[9]);
    if (chunk == 0 || chunk > 65536 || rounds == 0) {
      fprintf(stderr, "stall: CHUNK is 1 .. 65536, ROUNDS at least 1\n");
      ret = 2;
    } else {
      ret = stall((unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]),
                  (unsigned)atoi(argv[6]));
    }
  } else if (strcmp(mode, "reset") == 0 && argc == 5) {
    unsigned conns = (unsigned)atoi(argv[4]);
    run_threads(conns, reset_thread);
    printf("reset %u: errors %u eof %u ok %u\n", conns, n_err, n_eof, n_ok);
    ret = n_ok != 0;
  } else if (strcmp(mode, "churn") == 0 && argc == 5) {
    unsigned long n = strtoul(argv[4], NULL, 10);
    for (unsigned long i = 0; i < n; i++) {
      int s = connect_one();
      if (s < 0) {
        fprintf(stderr, "churn: socket %lu: %s\n", i, hwsock_err_name(s));
        ret = 1;
        break;
      }
      hwsock_guest_close(g, s);
    }
    if (!ret)
      printf("churn %lu\n", n);
  } else {
    fprintf(stderr, "usage: see load_guest.c\n");
    ret = 2;
  }
  hwsock_attach_close(at);
  return ret;
}
