/* hwsock-run internals: a seccomp user-notification supervisor that carries
 * an unmodified program's INET sockets to the device (docs/HWSOCK-RUN.md).
 *
 *   main.c        options, private VMM, fork/exec, exit status
 *   vmm.c         starting the private hwsock-vmm and waiting for "ready"
 *   filter.c      the BPF filter (child side) and passing its listener
 *   supervisor.c  the notification loop and the bounded worker pool
 *   remote.c      the program's memory and fds (process_vm_*, pidfd_getfd)
 *   sockmap.c     the table of intercepted sockets, keyed by inode
 *   decide.c      socket/connect/bind/listen/sendto: the first right of refusal
 *   accept.c      accept/accept4 on offloaded listeners
 *   dgram.c       sendto/sendmsg/recvfrom/recvmsg with addresses (UDP)
 *   sockopt.c     getsockopt/setsockopt/getsockname/getpeername
 *   pump.c        socketpair <-> device pumping threads
 *   addr.c        sockaddr <-> URI
 *   err.c         the one error domain (runerr.h)
 *   reset.c       why the device stopped (the log)
 *
 * Every intercepted INET socket is, from socket() on, one end of a unix
 * socketpair (the "program end"); the supervisor keeps the other end (the
 * "pump end"). The table entry is found from any later call through the
 * inode of the program end, so dup() and fork() do not confuse it. */
#ifndef HWSOCK_RUN_H
#define HWSOCK_RUN_H

#include <linux/seccomp.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "hwsock/guest.h"
#include "hwsock/uri.h"
#include "runerr.h"

/* ---- limits -------------------------------------------------------------- */

/* Entries of the socket table (placeholders + offloaded sockets). */
#define RUN_MAX_SOCKS 16384u
/* Sockets with a device id at once. With the event queue (PROTOCOL.md §16)
 * a socket waiting for input holds no request slot: the table and the
 * device's max_sockets are the limit. Without it (a --vmm whose devices
 * have one queue) each keeps about one slot busy with a blocking recv, and
 * at most this many are offloaded. */
#define RUN_MAX_OFFLOADED_V1 192u
/* Worker threads handling notifications (grown on demand). */
#define RUN_MAX_WORKERS 64u
/* Notifications waiting for a worker. */
#define RUN_MAX_QUEUED 1024u
/* Largest datagram / sendto payload handled by the supervisor itself. */
#define RUN_MAX_DGRAM 65536u
/* Pump buffer per direction. */
#define RUN_PUMP_BUF 65536u
/* Program -> device: one recv may take several slots' worth, which
 * hwsock_guest_send() keeps in flight together (pipelined pieces). The
 * memory is only touched as far as data arrives. */
#define RUN_PUMP_UP_BUF (4u * RUN_PUMP_BUF)
/* Options remembered on an undecided socket (replayed after the decision). */
#define RUN_MAX_OPTS 16u
#define RUN_MAX_OPTLEN 32u
/* Connections accepted from the device ahead of the program's accept(). */
#define RUN_MAX_PREACCEPT 16u
/* Source addresses queued for datagrams not yet received by the program. */
#define RUN_MAX_SRCQ 256u
/* iovec entries of a sendmsg/recvmsg the supervisor handles. */
#define RUN_MAX_IOV 64u
/* A nonblocking connect waits this long for the device's decision before
 * answering EINPROGRESS (a decline or deny answers at once; only an offload
 * that is really connecting takes longer). */
#define RUN_NB_DECIDE_MS 50
/* Blocking waits on behalf of the program re-check the notification's
 * validity (the program's death cancels it) and look for a signal its
 * thread should take (sigpend.c) this often: the most a signal handler
 * waits while the thread is blocked in such a call. Each look is a read
 * of /proc/TID/status: with 100 threads blocked in accept hwsock-run used
 * 6% of a CPU (7% in the sanitizer build; 17% there at 20 ms). */
#define RUN_POLL_SLICE_MS 50
/* After the program exits, the pumps get this long to deliver what it
 * wrote before closing its sockets (a kernel delivers it after the process
 * is gone); sockets still held by a process that outlived it are cut. */
#define RUN_EXIT_DRAIN_MS 10000

/* ---- state.c, log.c: the process's state and its log --------------------- */

typedef struct run_state {
  hwsock_guest *g;   /* the driver (thread-safe) */
  struct hwsock_attachment *att; /* its transport (why the device reset) */
  int notify_fd;     /* the seccomp listener */
  int confine;       /* a decline becomes EACCES */
  int verbose;
  volatile int device_down; /* the transport failed: new calls ENETDOWN */
  uint64_t notif_seen; /* id of the newest notification received (atomic):
                          seccomp numbers calls in the order they were
                          made (supervisor.c, accept.c) */
} run_state;

extern run_state hwsock__run;

/* One line to stderr when -v (decisions and failures). */
void hwsock__run_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* How log lines name a socket: "fd N (socket S)", the program's fd number
 * and the device socket id (as in --table), or "fd N" before a device
 * socket exists. Returns buf. */
struct run_sock;
const char *hwsock__run_label(const struct run_sock *s, char *buf,
                              size_t cap);
/* An option's name for log lines ("SO_REUSEADDR", "IP_TOS"), or
 * "level/option" in numbers for one the table does not know. Returns
 * buf. */
const char *hwsock__run_optname(int level, int name, char *buf, size_t cap);

/* reset.c: a driver call failed because the device is gone (NEEDS_RESET or
 * the VMM hung up): logs why, the HWSOCK_RESET_* name, once. Only says so;
 * the caller decides what the failure means (device_down). */
void hwsock__run_device_gone(void);
/* hwsock-run shuts the transport itself (exit): nothing to say any more. */
void hwsock__run_device_closing(void);
/* 1 when the transport is gone (device_down, or the driver says so:
 * hwsock_guest_transport_error; then device_down is set and the loss
 * logged), else 0. Tells the device's loss from one socket's
 * ECONNRESET (a peer's reset, a socket reset by a restore). */
int hwsock__run_transport_lost(void);

/* ---- filter.c ------------------------------------------------------------ */

/* In the child: sets no_new_privs, installs the filter and returns the
 * listener fd (or HWSOCK_E*). */
int hwsock__run_install_filter(int confine);

/* ---- supervisor.c -------------------------------------------------------- */

/* Starts the notification loop on notify_fd (hwsock__run must be filled).
 * 0 or HWSOCK_E*. */
int hwsock__run_supervisor_start(void);
/* Stops the loop and waits for the workers (bounded). */
void hwsock__run_supervisor_stop(void);

/* ---- remote.c: one notification and the program behind it ---------------- */

typedef struct run_call {
  struct seccomp_notif n; /* as received */
  int pidfd;              /* lazily opened, -1 */
} run_call;

/* Still valid (the program's thread is waiting in the call)? */
int hwsock__run_valid(const run_call *c);
/* One bounded wait (RUN_POLL_SLICE_MS) for fd to become readable, for a
 * blocking call answered here: 0, HWSOCK_EAGAIN when fd's SO_RCVTIMEO has
 * passed since the call's first wait (the kernel's own wait ends so;
 * *deadline: 0 before the first, kept by the caller across its loop), or
 * HWSOCK_ENOENT when the call went away (or was answered: the thread has
 * a signal to take). */
int hwsock__run_wait_readable(const run_call *c, int fd, int64_t *deadline);
/* sigpend.c: when the call's thread has a signal to take, answers the call
 * -ERESTARTSYS (the kernel restarts it or fails it with EINTR, as for its
 * own blocking waits) and returns 1; else 0. Blocking waits call it each
 * slice. */
int hwsock__run_interrupted(const run_call *c);
/* Copies len bytes from / to the program's memory: 0, HWSOCK_EFAULT or
 * HWSOCK_ENOENT (the call went away). Reads are followed by a validity
 * check (the pid could have been reused). */
int hwsock__run_read(run_call *c, uint64_t addr, void *buf, size_t len);
int hwsock__run_write(run_call *c, uint64_t addr, const void *buf, size_t len);
/* Our own copy of the program's fd (close it), or HWSOCK_E*. */
int hwsock__run_getfd(run_call *c, int fd);
/* The FD_CLOEXEC flag of the program's fd: 0/1, or HWSOCK_E*. */
int hwsock__run_fd_cloexec(run_call *c, int fd);
/* Replies: val, or the error err (0 or a negative run error: HWSOCK_E* or
 * a carried host errno, runerr.h), which becomes the program's errno here
 * and nowhere else; CONTINUE; installs fd (ADDFD). For addfd: newfd < 0
 * means "any", send completes the call with the new fd number. Return 0 /
 * the installed fd number, or HWSOCK_E* (HWSOCK_ENOENT: the call is
 * gone). */
int hwsock__run_reply(run_call *c, int64_t val, int err);
int hwsock__run_continue(run_call *c);
int hwsock__run_addfd(run_call *c, int fd, int newfd, int cloexec, int send);
void hwsock__run_call_done(run_call *c);

/* ---- sockmap.c ----------------------------------------------------------- */

enum {
  RS_UNDECIDED, /* placeholder: no device socket yet */
  RS_BOUND,     /* TCP: bound on the device, not yet connected or listening */
  RS_CONNECTING, /* device connect in flight */
  RS_CONNECTED, /* TCP connected / UDP with a pump (connected or not) */
  RS_LISTENING,
  RS_FAILED,    /* connect failed or the device went away */
  RS_CLOSED     /* the program closed it */
};

typedef struct run_opt {
  int level, name;
  unsigned len;
  uint8_t val[RUN_MAX_OPTLEN];
} run_opt;

typedef struct run_accepted {
  int id;                       /* device socket id */
  char peer[HWSOCK_URI_MAX + 1];
} run_accepted;

typedef struct run_src {
  uint32_t len;                 /* datagram length */
  int trunc; /* the device cut it (HWSOCK_RESP_F_TRUNC): recvmsg reports
                MSG_TRUNC although the program's buffer held all of it */
  struct sockaddr_storage sa;
  socklen_t salen;
  int err;   /* an error marker (empty record), not a datagram: its
                HWSOCK_E* */
  uint64_t sum; /* hwsock__run_dgram_sum of the datagram: which record it
                   belongs to, whatever the program read without us */
} run_src;

/* A datagram's fingerprint (length and the bytes at both ends; srcq.c). */
uint64_t hwsock__run_dgram_sum(const uint8_t *p, size_t n);

typedef struct run_sock {
  struct run_sock *next; /* hash chain (table lock) */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_mutex_t rxlock; /* one datagram receive + srcq pop at a time */
  unsigned refs;     /* atomic */
  uint64_t ino, dev; /* identity of the program end */
  int pfd;           /* pump end, -1 once closed */
  int family;        /* AF_INET / AF_INET6 / AF_IPX */
  int type;          /* SOCK_STREAM / SOCK_DGRAM */
  int proto;         /* IPPROTO_TCP / IPPROTO_UDP / 0 */
  int state;         /* RS_* */
  int id;            /* device socket id, -1 */
  int connected;     /* UDP: has a default peer */
  int conn_err;      /* result of the last connect (negative HWSOCK_E*) */
  int conn_waiter;   /* a handler waits for that result and reports it */
  int so_error;      /* pending SO_ERROR (HWSOCK_E*: its errno is made
                        where the program is answered) */
  int threads;       /* pump threads running */
  int id_shut;       /* SHUT_RD sent to wake the pumps */
  int down_done;     /* the down pump met the device's end of file: no
                        recv left to wake, kill sends no SHUT_RD */
  int linked;        /* in the table */
  int dead;          /* pumps must stop */
  int watched;       /* in the hang-up watcher */
  int wild_bound;    /* bind(0.0.0.0:0 / [::]:0) taken, decided at connect */
  int retired;       /* over, kept while the program holds it: 1 (table
                        lock; 2: a retire() is deciding) */
  int prog_fd;       /* the fd number socket()/accept() gave the program,
                        for log lines (-1: unknown) */
  run_opt opts[RUN_MAX_OPTS];
  unsigned nopts;
  /* listener */
  run_accepted acq[RUN_MAX_PREACCEPT];
  unsigned acq_head, acq_n;
  int lerr; /* why the listener (or UDP socket) failed (negative
               HWSOCK_E*, 0 while it works): accept returns it once
               (accept.c); kill leaves the program end readable only for
               that (sockmap.c) */
  uint64_t lerr_taken; /* an accept took the error token when notif_seen
                          was this - 1 (0: not yet): accepts the program
                          made later find nothing ready (accept.c) */
  /* the device's last answers to getsockname [0] / getpeername [1] (len 0:
   * none yet), given when it cannot answer any more (the VMM went away):
   * a kernel's socket keeps its addresses (sockopt.c) */
  struct sockaddr_storage names[2];
  socklen_t names_len[2];
  /* UDP: sources of the datagrams written to the pair, a ring of
   * RUN_MAX_SRCQ allocated at the first entry (hwsock__run_srcq_room; NULL
   * until then and for a stream socket, whose srcq_n stays 0: the ring is
   * 38 KB, 90% of an entry) */
  run_src *srcq;
  unsigned srcq_head, srcq_n;
} run_sock;

int hwsock__run_sockmap_init(void);
/* At exit, after the pumps ended: stops the watcher, drops every entry. */
void hwsock__run_sockmap_clear(void);
/* New entry (one reference for the caller, one for the table). */
run_sock *hwsock__run_sock_new(int family, int type, int proto, int pfd,
                               uint64_t ino, uint64_t dev);
/* Entry for the program end (st_ino/st_dev of our copy), referenced. */
run_sock *hwsock__run_sock_find(uint64_t ino, uint64_t dev);
void hwsock__run_sock_get(run_sock *s);
void hwsock__run_sock_put(run_sock *s);
/* Takes the entry out of the table (no later call finds it). */
void hwsock__run_sock_unlink(run_sock *s);
/* Counts / releases a device id (hwsock__run_offload_max() at once). */
unsigned hwsock__run_offload_max(void);
int hwsock__run_offload_reserve(void);
void hwsock__run_offload_release(void);
/* Ends an entry: the pumps stop (the device socket is shut down for
 * reading, the pump end both ways: the program sees EOF / EPIPE); the
 * device id is closed with the last reference. Lock not held. */
void hwsock__run_sock_kill(run_sock *s);

/* The connection is over (pumps end, device socket shut down): kills the
 * entry but keeps it in the table, and its device id open, while the
 * program still holds the fd (getsockname works, as in the kernel); the
 * watcher unlinks it once the program end is gone (alive.c). */
void hwsock__run_sock_retire(run_sock *s);
/* The same when the program is known to have closed its end: the entry
 * goes at once, without asking the kernel (alive.c). */
void hwsock__run_sock_closed(run_sock *s);

/* alive.c: 1 while the unix socket with this inode exists, 0 once it is
 * gone, HWSOCK_E* when the kernel cannot tell (no sock_diag). */
int hwsock__run_unix_alive(uint64_t ino);

/* Watches the pump ends of sockets that have no pump thread (undecided,
 * bound, listening) for the program's close. */
int hwsock__run_watch_start(void);
void hwsock__run_watch(run_sock *s);
void hwsock__run_unwatch(run_sock *s);

/* ---- pump.c -------------------------------------------------------------- */

/* Starts the pump threads of a connected (or UDP) socket. 0 or
 * HWSOCK_E*. */
int hwsock__run_pump_start(run_sock *s);
/* Starts the device connect of s in the background; returns at once. The
 * result lands in s->conn_err and s->state (cond signalled). */
int hwsock__run_connect_start(run_sock *s, const char *uri);
/* Starts the pre-accept thread of a listener. */
int hwsock__run_acceptor_start(run_sock *s);
/* Waits until every pump thread has ended; returns how many are left. */
int hwsock__run_pump_wait(int timeout_ms);
/* The same for the program -> device pumps only: they end once what the
 * program wrote went out and its end hung up. */
int hwsock__run_pump_wait_senders(int timeout_ms);

/* ---- addr.c -------------------------------------------------------------- */

/* The program's sockaddr (len bytes) on a socket of `family`/`type` as a
 * URI. flags: HWSOCK_URI_ALLOW_PORT0 for bind. 0 or HWSOCK_E*. */
int hwsock__run_sa_to_uri(const void *sa, size_t len, int family, int type,
                          unsigned flags, char *uri, size_t cap);
/* A device URI as a sockaddr for a socket of `family` (an IPv4 answer on an
 * AF_INET6 socket becomes v4-mapped). 0 or HWSOCK_E*. */
int hwsock__run_uri_to_sa(const char *uri, int family,
                          struct sockaddr_storage *ss, socklen_t *len);
/* The unspecified address of a family (getsockname before a decision). */
void hwsock__run_sa_any(int family, struct sockaddr_storage *ss,
                        socklen_t *len);
/* Writes a sockaddr to the program's (addr, *addrlen) pair the way the
 * kernel does: truncated to the buffer, the full length stored. */
int hwsock__run_put_sa(run_call *c, uint64_t addr, uint64_t lenp,
                       const struct sockaddr_storage *ss, socklen_t len);
/* A driver call's error as the program is to see it: HWSOCK_ENETDOWN once
 * the transport is lost (hwsock__run_transport_lost), else err itself; 0
 * for err >= 0. */
int hwsock__run_dev_err(int err);

/* ---- target.c: what a call's fd is --------------------------------------- */

/* The program-side object behind a notification's fd argument. */
typedef struct run_target {
  int kind;      /* RT_* */
  run_sock *s;   /* RT_OURS: referenced */
  int fd;        /* our copy of the program's fd, -1 */
  int family;    /* RT_KERNEL_INET: socket family */
  int err;       /* RT_NONE: why the fd could not be resolved
                    (HWSOCK_E*) */
} run_target;

enum { RT_NONE, RT_OURS, RT_KERNEL_INET, RT_OTHER };

/* Resolves the fd argument; the caller releases with target_done. */
int hwsock__run_target(run_call *c, int fd, run_target *t);
void hwsock__run_target_done(run_target *t);
/* Answer for a call on a socket we do not handle: CONTINUE, except a host
 * INET socket under confinement (EACCES) and an fd we could not look at
 * (EBADF: CONTINUE, the kernel says so; the call gone: nothing; else that
 * error). */
void hwsock__run_pass(run_call *c, const run_target *t);
/* For a handler of our sockets: 1 when fd is one (t->s referenced; release
 * with target_done), else the call is answered as by hwsock__run_pass, t is
 * released already, and 0. */
int hwsock__run_target_ours(run_call *c, int fd, run_target *t);
/* Waits (bounded slices, re-checking the call) until s is no longer
 * connecting, or timeout_ms (-1: no limit) passed: 1 when it is not. A
 * signal for the call's thread ends the wait (the call answered, sigpend.c)
 * except a nonblocking connect's short RUN_NB_DECIDE_MS one. */
int hwsock__run_wait_connect(run_call *c, run_sock *s, int timeout_ms);

/* ---- srcq.c: a datagram socket's source queue (srcq.h) ------------------- */

/* A datagram socket's pending error (an ICMP answer such as
 * ECONNREFUSED, kept in so_error): taken once, as the kernel reports it on
 * the next call; its marker record is dropped from the program end (fd)
 * when it is next in line. HWSOCK_E*, or 0. */
int hwsock__run_dgram_take_err(run_sock *s, int fd);

/* ---- pump.c (more) ------------------------------------------------------- */

/* Records a datagram socket's pending error (negative HWSOCK_E*) and,
 * with marker (only from the down pump, the one writer of records), makes
 * the program end readable with an empty record marked in srcq, as the
 * kernel wakes poll with POLLERR. */
void hwsock__run_dgram_post_err(run_sock *s, int err, int marker);

/* ---- decide.c: the first right of refusal; the steps handlers share ---- */

/* Asks the device for the first time (creates the device socket
 * when needed, runs op, applies the answer). Used by sendto too. On
 * success the entry is offloaded (returns >= 0, the op's result); a decline
 * is handled (the call CONTINUEs or gets EACCES) and returns
 * RUN_ANSWERED (runerr.h); other errors are HWSOCK_E* for the caller to
 * reply. */
int hwsock__run_open_device(run_sock *s);
void hwsock__run_drop_device(run_sock *s);
void hwsock__run_decline(run_call *c, run_sock *s, int prog_fd);
/* After the device call `op` (err: its result) on an entry it may have
 * opened (`fresh`): 0 when it succeeded; else 1 and the call is answered: a
 * decline of a fresh entry as hwsock__run_decline does, any other failure
 * with its errno (EACCES for a decline), after dropping a fresh entry's
 * device socket and logging it (`quiet`: only for a fresh entry or a
 * denial). */
int hwsock__run_device_failed(run_call *c, run_sock *s, int fd, int fresh,
                              int err, const char *op, const char *uri,
                              int quiet);

/* ---- sockopt.c: the options the program set ------------------------------ */

/* Replays the remembered options to the device after an offload. */
void hwsock__run_replay_opts(run_sock *s);
/* Gives the remembered options to a device socket that is not
 * decided yet (the device applies them at the decision, before its first
 * operation); a device that refuses options before the decision gets them
 * from hwsock__run_replay_opts after it, as before. */
void hwsock__run_preset_opts(run_sock *s);

/* ---- the handlers (decide.c, accept.c, dgram.c, sockopt.c; hostsock.h) --- */

void hwsock__run_on_socket(run_call *c);
void hwsock__run_on_connect(run_call *c);
void hwsock__run_on_bind(run_call *c);
void hwsock__run_on_listen(run_call *c);
void hwsock__run_on_accept(run_call *c, int is_accept4);
/* The same without waiting, for the supervisor's loop: 1 when answered;
 * 0 when the call would wait (a blocking accept with nothing ready) or is
 * not on an offloaded listener (a worker takes it). */
int hwsock__run_try_accept(run_call *c, int is_accept4);
void hwsock__run_on_sendto(run_call *c);
void hwsock__run_on_sendmsg(run_call *c);
void hwsock__run_on_recvfrom(run_call *c);
void hwsock__run_on_recvmsg(run_call *c);
void hwsock__run_on_getname(run_call *c, int peer);
void hwsock__run_on_getsockopt(run_call *c);
void hwsock__run_on_setsockopt(run_call *c);

#endif
