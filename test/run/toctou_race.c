/* The time-of-check/time-of-use race of seccomp user notification, for
 * test/run (test_toctou): a second thread keeps rewriting the sockaddr that
 * the main thread passes to connect(), cycling through an offloaded port, a
 * declined port and a denied port. A supervisor that checks the address and
 * then lets the kernel re-read it (CONTINUE) can be raced into the denied
 * port; under confinement it must never be. The test counts accepts on the
 * denied listener.
 *
 * usage: toctou_race OFFLOAD_PORT DECLINE_PORT DENY_PORT ITERATIONS
 * Prints "connected N refused M other K"; exit 0 unless setup failed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in target; /* raced */
static unsigned short ports[3];
static atomic_int stop;

static void *flipper(void *arg) {
  (void)arg;
  volatile unsigned short *p = &target.sin_port;
  unsigned i = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed))
    *p = htons(ports[i++ % 3]);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5)
    return 2;
  for (int i = 0; i < 3; i++)
    ports[i] = (unsigned short)atoi(argv[1 + i]);
  long iters = atol(argv[4]);
  target.sin_family = AF_INET;
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  target.sin_port = htons(ports[0]);
  pthread_t t;
  if (pthread_create(&t, NULL, flipper, NULL) != 0)
    return 2;
  long ok = 0, refused = 0, other = 0;
  for (long i = 0; i < iters; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
      perror("socket");
      return 2;
    }
    if (connect(s, (struct sockaddr *)&target, sizeof(target)) == 0)
      ok++;
    else if (errno == EACCES)
      refused++;
    else
      other++;
    close(s);
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  printf("connected %ld refused %ld other %ld\n", ok, refused, other);
  return 0;
}
