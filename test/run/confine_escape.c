/* Confinement escapes through host INET sockets, for test/run
 * (run_confine_escape). The test hands this program, run under
 * hwsock-run --confine, a TCP and a UDP socket created outside (inherited
 * fds) and counts what reaches a denied loopback listener:
 *
 *   fastopen TCP_FD PORT   sendmmsg(MSG_FASTOPEN) on the inherited TCP
 *                          socket: a connect the supervisor never saw
 *   udp UDP_FD PORT        sendmmsg with a destination on the inherited UDP
 *                          socket: 8 datagrams
 *   race UDP_FD PORT N     a thread keeps swapping fd RACE_FD between an
 *                          AF_UNIX socket and the inherited UDP socket
 *                          (dup2) while the main thread sends N datagrams on
 *                          RACE_FD with sendto: a supervisor that checks the
 *                          fd and lets the kernel run the call (CONTINUE)
 *                          can be raced into sending on the host socket
 *   sendmmsg PORT          a socket of its own: sendmmsg to the denied port
 *                          on a fresh UDP socket (a placeholder: must not
 *                          reach it either)
 *   scm UNIX_FD PORT N     receives an fd over the inherited unix socket
 *                          UNIX_FD (SCM_RIGHTS: the test sends a UDP socket
 *                          connected to the denied port), then write()s on
 *                          it, sendmmsg, and the race above with it; a
 *                          second one is received with recvmmsg
 *   declined DPORT PORT    without confinement (run_declined): a UDP socket
 *                          of its own first sends to 127.0.0.2:DPORT
 *                          (declined: it becomes a host socket), then
 *                          sendmmsg to the denied port
 *
 * Prints "sent N errors M (last errno E)"; exit 0 unless setup failed. The
 * test asserts on the listener, not on this output. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RACE_FD 200

static struct sockaddr_in dst;
static atomic_int stop;
static int race_inet, race_unix;

static void *swapper(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    dup2(race_unix, RACE_FD);
    dup2(race_inet, RACE_FD);
  }
  return NULL;
}

static int mmsg(int fd, int flags, unsigned n);

/* The dup2 race: n sends on RACE_FD while a thread swaps it. */
static void race(long n, long *sent, long *errors, int *last) {
  race_unix = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (race_unix < 0 || dup2(race_unix, RACE_FD) < 0) {
    perror("race setup");
    exit(2);
  }
  pthread_t t;
  if (pthread_create(&t, NULL, swapper, NULL) != 0)
    exit(2);
  for (long i = 0; i < n; i++) {
    if (sendto(RACE_FD, "race", 4, MSG_DONTWAIT, (struct sockaddr *)&dst,
               sizeof(dst)) == 4)
      (*sent)++;
    else
      (*errors)++, *last = errno;
    if (i % 4 == 0 && mmsg(RACE_FD, MSG_DONTWAIT, 1) == 1)
      (*sent)++;
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
}

static int mmsg(int fd, int flags, unsigned n) {
  struct mmsghdr m[8];
  struct iovec iov[8];
  char data[8] = "escape!";
  if (n > 8)
    n = 8;
  memset(m, 0, sizeof(m));
  for (unsigned i = 0; i < n; i++) {
    iov[i].iov_base = data;
    iov[i].iov_len = sizeof(data);
    m[i].msg_hdr.msg_name = &dst;
    m[i].msg_hdr.msg_namelen = sizeof(dst);
    m[i].msg_hdr.msg_iov = &iov[i];
    m[i].msg_hdr.msg_iovlen = 1;
  }
  return sendmmsg(fd, m, n, flags);
}

int main(int argc, char **argv) {
  if (argc < 3)
    return 2;
  const char *mode = argv[1];
  int port = atoi(argv[argc == 3 ? 2 : 3]);
  signal(SIGPIPE, SIG_IGN); /* a dead socket's EPIPE, not the process */
  memset(&dst, 0, sizeof(dst));
  dst.sin_family = AF_INET;
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  dst.sin_port = htons((unsigned short)port);
  long sent = 0, errors = 0;
  int last = 0;
  if (strcmp(mode, "fastopen") == 0 && argc == 4) {
    int r = mmsg(atoi(argv[2]), MSG_FASTOPEN, 1);
    r < 0 ? (errors++, last = errno) : (sent += r);
  } else if (strcmp(mode, "udp") == 0 && argc == 4) {
    int r = mmsg(atoi(argv[2]), 0, 8);
    r < 0 ? (errors++, last = errno) : (sent += r);
  } else if (strcmp(mode, "sendmmsg") == 0 && argc == 3) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
      perror("socket");
      return 2;
    }
    int r = mmsg(fd, 0, 8);
    r < 0 ? (errors++, last = errno) : (sent += r);
  } else if (strcmp(mode, "declined") == 0 && argc == 4) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in d = dst;
    d.sin_addr.s_addr = htonl(0x7f000002);
    d.sin_port = htons((unsigned short)atoi(argv[2]));
    if (fd < 0 || sendto(fd, "d", 1, 0, (struct sockaddr *)&d, sizeof(d)) != 1) {
      perror("declined sendto");
      return 2;
    }
    int r = mmsg(fd, 0, 8);
    r < 0 ? (errors++, last = errno) : (sent += r);
  } else if (strcmp(mode, "race") == 0 && argc == 5) {
    race_inet = atoi(argv[2]);
    race(atol(argv[4]), &sent, &errors, &last);
  } else if (strcmp(mode, "scm") == 0 && argc == 5) {
    char b[16];
    struct iovec io = {b, sizeof(b)};
    union {
      char buf[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } u;
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    m.msg_control = u.buf;
    m.msg_controllen = sizeof(u.buf);
    if (recvmsg(atoi(argv[2]), &m, 0) < 0) {
      perror("recvmsg");
      return 2;
    }
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (!cm || cm->cmsg_type != SCM_RIGHTS) {
      fprintf(stderr, "no fd received\n");
      return 2;
    }
    memcpy(&race_inet, CMSG_DATA(cm), sizeof(int));
    int dom = 0;
    socklen_t l = sizeof(dom);
    getsockopt(race_inet, SOL_SOCKET, SO_DOMAIN, &dom, &l);
    printf("received fd %d of family %d\n", race_inet, dom);
    if (write(race_inet, "written", 7) == 7)
      sent++;
    else
      errors++, last = errno;
    /* a second socket, taken with recvmmsg */
    struct mmsghdr mm;
    memset(&mm, 0, sizeof(mm));
    mm.msg_hdr = m;
    mm.msg_hdr.msg_controllen = sizeof(u.buf);
    if (recvmmsg(atoi(argv[2]), &mm, 1, 0, NULL) != 1 ||
        !(cm = CMSG_FIRSTHDR(&mm.msg_hdr)) || cm->cmsg_type != SCM_RIGHTS) {
      perror("recvmmsg");
      return 2;
    }
    int fd2;
    memcpy(&fd2, CMSG_DATA(cm), sizeof(int));
    l = sizeof(dom);
    dom = 0;
    getsockopt(fd2, SOL_SOCKET, SO_DOMAIN, &dom, &l);
    printf("recvmmsg fd %d of family %d\n", fd2, dom);
    if (write(fd2, "written", 7) == 7)
      sent++;
    else
      errors++, last = errno;
    int r = mmsg(race_inet, 0, 8);
    r < 0 ? (errors++, last = errno) : (sent += r);
    race(atol(argv[4]), &sent, &errors, &last);
  } else {
    fprintf(stderr, "usage: see confine_escape.c\n");
    return 2;
  }
  printf("sent %ld errors %ld (last errno %d)\n", sent, errors, last);
  return 0;
}
