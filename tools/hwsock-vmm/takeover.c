/* --takeover: a VMM restart that drops no connection (docs/EMBEDDING.md
 * §12). Every hwsock-vmm listens on --listen PATH + ".takeover" (its
 * user only). A new `hwsock-vmm --listen PATH --takeover` connects there
 * and the old one hands it everything, over SCM_RIGHTS:
 *
 *   new -> old  HELLO
 *   old         quiesces every guest (their messages wait in their
 *               sockets), then each 10 ms tries to export every device's
 *               host sockets and save its state (libhwsock's hand-over:
 *               a socket between states answers EAGAIN); gives up after
 *               5 s and serves on
 *   old -> new  LISTEN   the guests', takeover and control listening fds
 *               GUEST    per guest: its connection, memfd and eventfds
 *                        (and its --ipx-net slot's UDP socket),
 *                        then BLOB (the device state, in chunks) and SOCKS
 *                        (socket records and host socket fds, batches of
 *                        at most 64)
 *               DONE
 *   new         maps the memory, restores each device with its requests
 *               held, imports the host sockets; any failure here and the
 *               new VMM exits 1, the old one serves on
 *   new -> old  ACK
 *   old -> new  COMMIT: the commit point (an ACK that comes after the old
 *               VMM gave up finds the connection closed, no COMMIT)
 *   old         frees its devices without running its loop again (no
 *               completion is written: the new VMM submits the held
 *               requests again) and exits 0, unlinking nothing
 *   new         submits the held requests, serves
 *
 * Every message is one SOCK_SEQPACKET record: a 32-byte header (type,
 * count, three values, little-endian) and a payload; the new process
 * checks each against what it asked for. Both sides block on this socket
 * with timeouts: the old VMM's loop is stopped between its DONE and the
 * ACK, when its guests are quiesced anyway. */
#define _GNU_SOURCE /* accept4, struct ucred, MSG_CMSG_CLOEXEC */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hwsock/stats.h"
#include "vmm.h"

#define TK_VERSION 1u
#define TK_MAX_FDS 64u
#define TK_CHUNK 32768u
#define TK_SETTLE_MS 5000u
#define TK_TICK_MS 10u
#define TK_IO_TIMEOUT_S 30

enum {
  TK_HELLO = 1, TK_REFUSE, TK_LISTEN, TK_GUEST, TK_BLOB, TK_SOCKS, TK_DONE,
  TK_ACK, TK_COMMIT
};

typedef struct tk_hdr {
  hwsock_le32 type, n;
  hwsock_le64 a, b, c;
} tk_hdr;
_Static_assert(sizeof(tk_hdr) == 32, "takeover header");

/* GUEST payload */
typedef struct tk_guest {
  hwsock_le32 id, nqueues, hello_done;
  hwsock_le32 ipx_slot; /* its --ipx-net slot + 1 (the last fd is the
                           slot's UDP socket), 0: none */
  hwsock_le64 pid, uid, gid, mem_size;
} tk_guest;
_Static_assert(sizeof(tk_guest) == 48, "takeover guest");

/* one SOCKS entry */
typedef struct tk_sock {
  hwsock_le32 id, has_fd;
  uint8_t rec[sizeof(((hwsock_sock_export *)0)->rec)];
} tk_sock;
#define TK_SOCKS_PER_MSG (TK_CHUNK / sizeof(tk_sock))
_Static_assert(TK_SOCKS_PER_MSG >= TK_MAX_FDS, "a batch fills its fds");

#define TK_MSG_MAX (sizeof(tk_hdr) + TK_CHUNK)

/* ---- framing ------------------------------------------------------------ */

static int tk_send(int fd, unsigned type, unsigned n, uint64_t a, uint64_t b,
                   const void *payload, size_t len, const int *fds,
                   unsigned nfds) {
  tk_hdr h;
  memset(&h, 0, sizeof(h));
  hwsock_le32_set(&h.type, type);
  hwsock_le32_set(&h.n, n);
  hwsock_le64_set(&h.a, a);
  hwsock_le64_set(&h.b, b);
  struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, len}};
  union {
    char buf[CMSG_SPACE(sizeof(int) * TK_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = len > 0 ? 2 : 1;
  if (nfds > 0) {
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_control = ctl.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) >= 0)
      return 0;
    if (errno != EINTR)
      return -errno;
  }
}

/* One record: its header, payload (*len bytes) and fds (*nfds). On any
 * failure no received fd is left open. */
static int tk_recv(int fd, tk_hdr *h, uint8_t *payload, size_t *len,
                   int *fds, unsigned *nfds) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * TK_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov[2] = {{h, sizeof(*h)}, {payload, TK_CHUNK}};
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  mh.msg_control = ctl.buf;
  mh.msg_controllen = sizeof(ctl.buf);
  ssize_t n;
  do
    n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
       c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (unsigned i = 0; i < k; i++) {
      int x;
      memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (*nfds < TK_MAX_FDS)
        fds[(*nfds)++] = x;
      else
        close(x);
    }
  }
  if (n == 0 || (size_t)n < sizeof(*h) || (mh.msg_flags & (MSG_TRUNC |
                                                          MSG_CTRUNC))) {
    while (*nfds > 0)
      close(fds[--*nfds]);
    return n == 0 ? -ECONNRESET : -EBADMSG;
  }
  *len = (size_t)n - sizeof(*h);
  return 0;
}

static void close_fds(int *fds, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

static void set_timeouts(int fd) {
  struct timeval tv = {.tv_sec = TK_IO_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int make_path(vmm *v) {
  int n = snprintf(v->takeover_path, sizeof(v->takeover_path), "%s%s",
                   v->opt.listen_path, VMM_TAKEOVER_SUFFIX);
  if (n < 0 || (size_t)n >= sizeof(v->takeover_path)) {
    vmm_log(HWSOCK_LOG_WARN, "%s%s: path too long for a unix socket: no "
            "--takeover of this VMM", v->opt.listen_path, VMM_TAKEOVER_SUFFIX);
    v->takeover_path[0] = '\0';
    return -1;
  }
  return 0;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the old VMM: handing over ------------------------------------------ */

/* One guest's part, made in one loop turn (tick()). */
typedef struct tk_out {
  vmm_guest *g;
  hwsock_sock_export *ex;
  int nex;
  uint8_t *blob;
  size_t blob_len;
} tk_out;

struct vmm_handover {
  int conn;
  uint64_t deadline;
  tk_out *out;
  unsigned nout;
};

static void free_out(struct vmm_handover *h) {
  for (unsigned i = 0; i < h->nout; i++) {
    tk_out *o = &h->out[i];
    for (int k = 0; k < o->nex; k++)
      if (o->ex[k].fd >= 0)
        close(o->ex[k].fd);
    free(o->ex);
    free(o->blob);
  }
  free(h->out);
  h->out = NULL;
  h->nout = 0;
}

static void pause_all(vmm *v, int on) {
  for (vmm_guest *g = vmm_guest_after(v, 0); g != NULL;
       g = vmm_guest_after(v, vmm_guest_get_id(g)))
    vmm_guest_pause(g, on);
}

/* The hand-over failed before the new VMM committed: serve on. */
static void give_up(vmm *v, const char *why) {
  struct vmm_handover *h = v->handover;
  vmm_log(HWSOCK_LOG_ERROR, "takeover: not handed over: %s", why);
  tk_send(h->conn, TK_REFUSE, 0, 0, 0, why, strlen(why), NULL, 0);
  close(h->conn);
  free_out(h);
  free(h);
  v->handover = NULL;
  uv_timer_stop(&v->takeover_timer);
  pause_all(v, 0);
}

/* 0 when every guest was exported and saved into h->out; 1 to try again
 * (a socket between states); -1 with why set. */
static int collect(vmm *v, struct vmm_handover *h, char *why, size_t wl) {
  h->out = calloc(v->nguests ? v->nguests : 1, sizeof(*h->out));
  if (h->out == NULL) {
    snprintf(why, wl, "out of memory");
    return -1;
  }
  for (vmm_guest *g = vmm_guest_after(v, 0); g != NULL;
       g = vmm_guest_after(v, vmm_guest_get_id(g))) {
    tk_out *o = &h->out[h->nout++];
    o->g = g;
    hwsock_device *dev = vmm_guest_device(g);
    /* The ids in use bound the offloaded sockets (nothing runs between
     * this count and the export). */
    hwsock_device_stats st;
    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    hwsock_device_get_stats(dev, &st);
    unsigned max = (unsigned)st.sockets_open;
    o->ex = calloc(max ? max : 1, sizeof(*o->ex));
    size_t cap = hwsock_device_save_bound(dev);
    o->blob = malloc(cap);
    if (o->ex == NULL || o->blob == NULL) {
      snprintf(why, wl, "out of memory");
      return -1;
    }
    int rc = hwsock_device_export_socks(dev, o->ex, max);
    if (rc == HWSOCK_EAGAIN)
      return 1;
    if (rc < 0) {
      snprintf(why, wl, "guest %u: exporting its sockets: %s",
               vmm_guest_get_id(g), hwsock_strerror(rc));
      return -1;
    }
    o->nex = rc;
    vmm_log(HWSOCK_LOG_DEBUG, "takeover: guest %u: %d sockets, %u requests "
            "in flight", vmm_guest_get_id(g), rc, hwsock_device_inflight(dev));
    rc = hwsock_device_save(dev, o->blob, cap, &o->blob_len);
    if (rc == HWSOCK_ENEEDSRESET) {
      o->blob_len = 0; /* handed over fresh: the guest resets it */
    } else if (rc == HWSOCK_EOPNOTSUPP) {
      snprintf(why, wl, "guest %u negotiated the event queue, whose state "
               "this version does not save", vmm_guest_get_id(g));
      return -1;
    } else if (rc < 0) {
      snprintf(why, wl, "guest %u: saving its device: %s",
               vmm_guest_get_id(g), hwsock_strerror(rc));
      return -1;
    }
  }
  return 0;
}

static int send_guest(int conn, const tk_out *o) {
  vmm_guest_desc d;
  int fds[3 + 2 * HWSOCK_MAX_QUEUES];
  unsigned nfds = vmm_guest_handover_fds(o->g, &d, fds);
  tk_guest m;
  memset(&m, 0, sizeof(m));
  hwsock_le32_set(&m.id, d.id);
  hwsock_le32_set(&m.nqueues, d.nqueues);
  hwsock_le32_set(&m.hello_done, d.hello_done);
  hwsock_le32_set(&m.ipx_slot, (uint32_t)(d.ipx_slot + 1));
  hwsock_le64_set(&m.pid, (uint64_t)d.pid);
  hwsock_le64_set(&m.uid, (uint64_t)d.uid);
  hwsock_le64_set(&m.gid, (uint64_t)d.gid);
  hwsock_le64_set(&m.mem_size, d.mem_size);
  int rc = tk_send(conn, TK_GUEST, nfds, o->blob_len, (uint64_t)o->nex, &m,
                   sizeof(m), fds, nfds);
  for (size_t off = 0; rc == 0 && off < o->blob_len; off += TK_CHUNK) {
    size_t n = o->blob_len - off < TK_CHUNK ? o->blob_len - off : TK_CHUNK;
    rc = tk_send(conn, TK_BLOB, (unsigned)n, 0, 0, o->blob + off, n, NULL, 0);
  }
  static tk_sock batch[TK_SOCKS_PER_MSG];
  for (int k = 0; rc == 0 && k < o->nex;) {
    unsigned n = 0, nf = 0;
    int bf[TK_MAX_FDS];
    for (; k < o->nex && n < TK_SOCKS_PER_MSG &&
           (o->ex[k].fd < 0 || nf < TK_MAX_FDS); k++, n++) {
      const hwsock_sock_export *e = &o->ex[k];
      hwsock_le32_set(&batch[n].id, e->id);
      hwsock_le32_set(&batch[n].has_fd, e->fd >= 0);
      memcpy(batch[n].rec, e->rec, sizeof(e->rec));
      if (e->fd >= 0)
        bf[nf++] = e->fd;
    }
    rc = tk_send(conn, TK_SOCKS, n, nf, 0, batch, n * sizeof(tk_sock), bf, nf);
  }
  return rc;
}

static void tick(uv_timer_t *t) {
  vmm *v = t->data;
  struct vmm_handover *h = v->handover;
  char why[192];
  int rc = collect(v, h, why, sizeof(why));
  if (rc > 0) {
    free_out(h);
    if (now_ms() > h->deadline)
      give_up(v, "the guests' sockets did not settle within 5 s (a CONNECT "
                 "in progress, a send the peer does not read)");
    return; /* the next tick tries again */
  }
  if (rc < 0) {
    give_up(v, why);
    return;
  }
  uv_timer_stop(&v->takeover_timer);
  /* From here to the ACK the loop does not run: nothing changes. */
  int fds[3] = {v->listen_fd, v->takeover_fd, vmm_control_fd(v)};
  unsigned nfds = fds[2] >= 0 ? 3 : 2;
  rc = tk_send(h->conn, TK_LISTEN, nfds, 0, 0, NULL, 0, fds, nfds);
  unsigned nsocks = 0;
  for (unsigned i = 0; rc == 0 && i < h->nout; i++) {
    rc = send_guest(h->conn, &h->out[i]);
    nsocks += (unsigned)h->out[i].nex;
  }
  if (rc == 0)
    rc = tk_send(h->conn, TK_DONE, h->nout, 0, 0, NULL, 0, NULL, 0);
  tk_hdr ack;
  size_t len;
  unsigned nack = 0;
  int afds[TK_MAX_FDS];
  static uint8_t buf[TK_CHUNK];
  if (rc == 0)
    rc = tk_recv(h->conn, &ack, buf, &len, afds, &nack);
  if (rc == 0) {
    close_fds(afds, nack);
    if (hwsock_le32_get(&ack.type) != TK_ACK)
      rc = -EPROTO;
  }
  /* The new VMM serves only once it has this: an ACK that came too late
   * for us (we gave up) finds the connection closed instead. */
  if (rc == 0)
    rc = tk_send(h->conn, TK_COMMIT, 0, 0, 0, NULL, 0, NULL, 0);
  if (rc < 0) {
    snprintf(why, sizeof(why), "the new VMM did not take it: %s",
             strerror(-rc));
    give_up(v, why);
    return;
  }
  /* Committed: the new VMM serves. Our devices go without a completion
   * written (hwsock_device_free), our copies of the fds close. */
  vmm_log(HWSOCK_LOG_INFO, "takeover: handed %u guest%s and %u host "
          "socket%s over to the new VMM", h->nout, h->nout == 1 ? "" : "s",
          nsocks, nsocks == 1 ? "" : "s");
  close(h->conn);
  free_out(h);
  free(h);
  v->handover = NULL;
  v->handed_over = 1;
  vmm_stop(v, "handed over (--takeover)");
}

static int same_user(int fd) {
  struct ucred cr;
  socklen_t cl = sizeof(cr);
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 &&
         cr.uid == geteuid();
}

static void on_takeover(uv_poll_t *p, int status, int events) {
  (void)events;
  vmm *v = p->data;
  if (status < 0)
    return;
  int fd = accept4(v->takeover_fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0)
    return;
  set_timeouts(fd);
  const char *no = NULL;
  tk_hdr h;
  size_t len;
  unsigned nfds = 0;
  int fds[TK_MAX_FDS];
  static uint8_t buf[TK_CHUNK];
  struct timeval tv = {.tv_sec = 2}; /* a HELLO comes at once */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (!same_user(fd))
    no = "not the VMM's user";
  else if (tk_recv(fd, &h, buf, &len, fds, &nfds) < 0 ||
           hwsock_le32_get(&h.type) != TK_HELLO)
    no = "no HELLO";
  else if (hwsock_le64_get(&h.a) != TK_VERSION)
    no = "another takeover version";
  else if (v->handover != NULL || v->stopping)
    no = "busy (a takeover or a shutdown is in progress)";
  close_fds(fds, nfds);
  if (no != NULL) {
    vmm_log(HWSOCK_LOG_WARN, "takeover: refused: %s", no);
    tk_send(fd, TK_REFUSE, 0, 0, 0, no, strlen(no), NULL, 0);
    close(fd);
    return;
  }
  set_timeouts(fd);
  struct vmm_handover *ho = calloc(1, sizeof(*ho));
  if (ho == NULL) {
    close(fd);
    return;
  }
  ho->conn = fd;
  ho->deadline = now_ms() + TK_SETTLE_MS;
  v->handover = ho;
  vmm_log(HWSOCK_LOG_INFO, "takeover: a new VMM asks; quiescing %u guest%s",
          v->nguests, v->nguests == 1 ? "" : "s");
  pause_all(v, 1);
  uv_timer_start(&v->takeover_timer, tick, 0, TK_TICK_MS);
}

int vmm_takeover_listen(vmm *v) {
  if (v->takeover_fd < 0) {
    if (make_path(v) < 0)
      return -1;
    /* The VMM's user alone, whatever --socket-mode/--socket-group say:
     * whoever connects gets every guest's memory and connections. */
    vmm_options o = v->opt;
    o.socket_mode = 0600;
    o.socket_gid = -1;
    v->takeover_fd = vmm_listen_unix(&o, v->takeover_path, SOCK_SEQPACKET);
    if (v->takeover_fd < 0)
      return -1;
  }
  int rc = uv_poll_init(&v->loop, &v->takeover_poll, v->takeover_fd);
  if (rc == 0) {
    v->takeover_poll.data = v;
    rc = uv_timer_init(&v->loop, &v->takeover_timer);
    v->takeover_timer.data = v;
    if (rc == 0)
      rc = uv_poll_start(&v->takeover_poll, UV_READABLE, on_takeover);
    else
      uv_close((uv_handle_t *)&v->takeover_poll, NULL);
  }
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "takeover socket: %s", uv_strerror(rc));
    close(v->takeover_fd);
    v->takeover_fd = -1;
    return -1;
  }
  return 0;
}

static void on_takeover_closed(uv_handle_t *h) {
  vmm *v = h->data;
  close(v->takeover_fd);
  v->takeover_fd = -1;
  if (!v->handed_over && v->takeover_path[0] != '\0')
    unlink(v->takeover_path);
}

void vmm_takeover_stop(vmm *v) {
  if (v->handover != NULL)
    give_up(v, "the VMM is stopping");
  if (v->takeover_fd < 0 || v->takeover_poll.data == NULL)
    return;
  uv_close((uv_handle_t *)&v->takeover_timer, NULL);
  uv_close((uv_handle_t *)&v->takeover_poll, on_takeover_closed);
}

/* ---- the new VMM: taking over ------------------------------------------- */

typedef struct tk_in {
  vmm_guest *g;
  uint8_t *blob;
  size_t blob_len, blob_got;
  hwsock_sock_export *ex;
  unsigned nex, ex_got;
} tk_in;

/* A listening unix socket of `type` (the fds came from another process:
 * checked, not trusted). */
static int listening(int fd, int type) {
  int acc = 0, t = 0, dom = 0;
  socklen_t l1 = sizeof(acc), l2 = sizeof(t), l3 = sizeof(dom);
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l1) == 0 &&
         getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l2) == 0 &&
         getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l3) == 0 && acc == 1 &&
         t == type && dom == AF_UNIX;
}

/* The guest's state is all here: restore it, requests held, and import
 * its host sockets. 0 or -1 (why set). */
static int finish_guest(tk_in *in, unsigned *nsocks, char *why, size_t wl) {
  if (in->g == NULL)
    return 0;
  hwsock_device *dev = vmm_guest_device(in->g);
  unsigned id = vmm_guest_get_id(in->g);
  if (in->blob_got != in->blob_len || in->ex_got != in->nex) {
    snprintf(why, wl, "guest %u: incomplete state", id);
    return -1;
  }
  if (in->blob_len > 0) {
    int rc = hwsock_device_restore_held(dev, in->blob, in->blob_len);
    if (rc < 0) {
      snprintf(why, wl, "guest %u: restoring its device: %s", id,
               hwsock_strerror(rc));
      return -1;
    }
    for (unsigned k = 0; k < in->nex; k++) {
      if (hwsock_device_import_sock(dev, &in->ex[k]) == 0)
        ++*nsocks;
      in->ex[k].fd = -1; /* the device's, or closed */
    }
  }
  free(in->blob);
  in->blob = NULL;
  for (unsigned k = 0; k < in->nex; k++)
    if (in->ex[k].fd >= 0)
      close(in->ex[k].fd);
  free(in->ex);
  in->ex = NULL;
  in->g = NULL;
  return 0;
}

static int on_guest(vmm *v, tk_in *in, const tk_hdr *h, const uint8_t *p,
                    size_t len, int *fds, unsigned nfds, char *why,
                    size_t wl) {
  if (len != sizeof(tk_guest) || hwsock_le32_get(&h->n) != nfds) {
    close_fds(fds, nfds);
    snprintf(why, wl, "malformed GUEST");
    return -1;
  }
  tk_guest m;
  memcpy(&m, p, sizeof(m));
  uint32_t slot = hwsock_le32_get(&m.ipx_slot);
  if (slot > VMM_IPX_MAX_SLOTS) {
    close_fds(fds, nfds);
    snprintf(why, wl, "malformed GUEST");
    return -1;
  }
  vmm_guest_desc d = {
      .ipx_slot = (int)slot - 1,
      .id = hwsock_le32_get(&m.id),
      .nqueues = hwsock_le32_get(&m.nqueues),
      .hello_done = hwsock_le32_get(&m.hello_done),
      .pid = (long)hwsock_le64_get(&m.pid),
      .uid = (long)hwsock_le64_get(&m.uid),
      .gid = (long)hwsock_le64_get(&m.gid),
      .mem_size = (size_t)hwsock_le64_get(&m.mem_size)};
  in->g = vmm_guest_adopt(v, &d, fds, nfds); /* the fds are its */
  if (in->g == NULL) {
    snprintf(why, wl, "guest %u could not be adopted", d.id);
    return -1;
  }
  hwsock_device *dev = vmm_guest_device(in->g);
  hwsock_wire_config cfg;
  hwsock_device_get_config(dev, &cfg);
  uint64_t blob_len = hwsock_le64_get(&h->a), nex = hwsock_le64_get(&h->b);
  if (blob_len > hwsock_device_save_bound(dev) ||
      nex > hwsock_le32_get(&cfg.max_sockets)) {
    snprintf(why, wl, "guest %u does not fit this VMM's devices (--max-"
             "sockets, --queues)", d.id);
    return -1;
  }
  in->blob_len = (size_t)blob_len;
  in->nex = (unsigned)nex;
  in->blob_got = in->ex_got = 0;
  in->blob = malloc(in->blob_len ? in->blob_len : 1);
  in->ex = calloc(in->nex ? in->nex : 1, sizeof(*in->ex));
  if (in->blob == NULL || in->ex == NULL) {
    snprintf(why, wl, "out of memory");
    return -1;
  }
  return 0;
}

static int on_socks(tk_in *in, const tk_hdr *h, const uint8_t *p, size_t len,
                    int *fds, unsigned nfds, char *why, size_t wl) {
  unsigned n = hwsock_le32_get(&h->n), used = 0;
  int rc = 0;
  if (in->g == NULL || len != n * sizeof(tk_sock) || n > in->nex - in->ex_got ||
      hwsock_le64_get(&h->a) != nfds)
    rc = -1;
  for (unsigned i = 0; rc == 0 && i < n; i++) {
    tk_sock s;
    memcpy(&s, p + i * sizeof(tk_sock), sizeof(s));
    hwsock_sock_export *e = &in->ex[in->ex_got];
    uint32_t has_fd = hwsock_le32_get(&s.has_fd);
    if (has_fd > 1 || (has_fd && used == nfds)) {
      rc = -1;
      break;
    }
    e->id = hwsock_le32_get(&s.id);
    e->fd = has_fd ? fds[used++] : -1;
    memcpy(e->rec, s.rec, sizeof(e->rec));
    in->ex_got++;
  }
  if (rc < 0 || used != nfds) {
    close_fds(fds + used, nfds - used);
    snprintf(why, wl, "malformed SOCKS");
    return -1;
  }
  return 0;
}

/* Connects and reads until DONE. 0, or -1 with why set. */
static int take(vmm *v, int conn, unsigned *nguests, unsigned *nsocks,
                vmm_guest **adopted, unsigned max_adopted, char *why,
                size_t wl) {
  tk_in in;
  memset(&in, 0, sizeof(in));
  uint8_t *buf = malloc(TK_CHUNK);
  int rc = buf == NULL ? -1 : 0, listened = 0;
  while (rc == 0) {
    tk_hdr h;
    size_t len = 0;
    int fds[TK_MAX_FDS];
    unsigned nfds = 0;
    int e = tk_recv(conn, &h, buf, &len, fds, &nfds);
    if (e < 0) {
      snprintf(why, wl, "reading from the old VMM: %s",
               e == -EAGAIN ? "timed out" : strerror(-e));
      rc = -1;
      break;
    }
    unsigned type = hwsock_le32_get(&h.type);
    if (type != TK_LISTEN && type != TK_GUEST && type != TK_SOCKS)
      close_fds(fds, nfds), nfds = 0;
    if (type == TK_REFUSE) {
      snprintf(why, wl, "refused: %.*s", (int)(len < 150 ? len : 150),
               (const char *)buf);
      rc = -1;
    } else if (type == TK_LISTEN && !listened &&
               (nfds == 2 || nfds == 3)) {
      listened = 1;
      v->listen_fd = fds[0];
      v->takeover_fd = fds[1];
      if (nfds == 3) {
        v->adopt_control = 1;
        v->adopt_control_fd = fds[2];
      }
      if (!listening(fds[0], SOCK_SEQPACKET) ||
          !listening(fds[1], SOCK_SEQPACKET) ||
          (nfds == 3 && !listening(fds[2], SOCK_STREAM))) {
        snprintf(why, wl, "the listening sockets are not what they say");
        rc = -1;
      }
    } else if (type == TK_LISTEN) {
      close_fds(fds, nfds);
      snprintf(why, wl, "malformed LISTEN");
      rc = -1;
    } else if (type == TK_GUEST && listened) {
      if (finish_guest(&in, nsocks, why, wl) < 0 ||
          *nguests == max_adopted) {
        close_fds(fds, nfds);
        if (*nguests == max_adopted)
          snprintf(why, wl, "more guests than --max-guests");
        rc = -1;
      } else {
        rc = on_guest(v, &in, &h, buf, len, fds, nfds, why, wl);
        if (in.g != NULL)
          adopted[(*nguests)++] = in.g;
      }
    } else if (type == TK_BLOB && in.g != NULL &&
               len == hwsock_le32_get(&h.n) &&
               len <= in.blob_len - in.blob_got) {
      memcpy(in.blob + in.blob_got, buf, len);
      in.blob_got += len;
    } else if (type == TK_SOCKS) {
      rc = on_socks(&in, &h, buf, len, fds, nfds, why, wl);
    } else if (type == TK_DONE && listened &&
               hwsock_le32_get(&h.n) == *nguests) {
      rc = finish_guest(&in, nsocks, why, wl);
      break;
    } else {
      close_fds(fds, nfds);
      snprintf(why, wl, "unexpected message %u", type);
      rc = -1;
    }
  }
  if (in.g != NULL || in.blob != NULL || in.ex != NULL) {
    free(in.blob);
    for (unsigned k = 0; k < in.ex_got; k++)
      if (in.ex[k].fd >= 0)
        close(in.ex[k].fd);
    free(in.ex);
  }
  free(buf);
  if (rc < 0 && why[0] == '\0')
    snprintf(why, wl, "out of memory");
  return rc;
}

int vmm_takeover_receive(vmm *v) {
  if (make_path(v) < 0)
    return -1;
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, v->takeover_path, strlen(v->takeover_path) + 1);
  int conn = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (conn < 0 || connect(conn, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "--takeover: no VMM to take over at %s: %s",
            v->takeover_path, strerror(errno));
    if (conn >= 0)
      close(conn);
    return -1;
  }
  set_timeouts(conn);
  char why[192] = "";
  unsigned nguests = 0, nsocks = 0, max = v->opt.max_guests;
  vmm_guest **adopted = calloc(max, sizeof(*adopted));
  int rc = adopted == NULL ? -1 : 0;
  if (rc == 0 &&
      tk_send(conn, TK_HELLO, 0, TK_VERSION, 0, NULL, 0, NULL, 0) < 0) {
    snprintf(why, sizeof(why), "%s", strerror(errno));
    rc = -1;
  }
  if (rc == 0)
    rc = take(v, conn, &nguests, &nsocks, adopted, max, why, sizeof(why));
  /* The commit: our ACK, and the old VMM's COMMIT that says it took it
   * (it gives up after its timeout; then the COMMIT never comes). */
  if (rc == 0 && tk_send(conn, TK_ACK, 0, 0, 0, NULL, 0, NULL, 0) < 0) {
    snprintf(why, sizeof(why), "sending the ACK: %s", strerror(errno));
    rc = -1;
  }
  if (rc == 0) {
    tk_hdr h;
    size_t len;
    unsigned nfds = 0;
    int fds[TK_MAX_FDS];
    uint8_t *buf = malloc(TK_CHUNK);
    int e = buf == NULL ? -ENOMEM : tk_recv(conn, &h, buf, &len, fds, &nfds);
    free(buf);
    if (e == 0)
      close_fds(fds, nfds);
    if (e < 0 || hwsock_le32_get(&h.type) != TK_COMMIT) {
      snprintf(why, sizeof(why), "the old VMM did not commit: %s",
               e < 0 ? strerror(-e) : "it refused");
      rc = -1;
    }
  }
  close(conn);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "--takeover from %s: %s (the old VMM serves "
            "on)", v->opt.listen_path, why);
    for (unsigned i = 0; i < nguests; i++)
      vmm_guest_detach(adopted[i], HWSOCK_LOG_INFO, "takeover failed");
    free(adopted);
    /* our duplicates only: the paths stay the old VMM's */
    if (v->listen_fd >= 0)
      close(v->listen_fd);
    if (v->takeover_fd >= 0)
      close(v->takeover_fd);
    if (v->adopt_control)
      close(v->adopt_control_fd);
    v->listen_fd = v->takeover_fd = -1;
    v->adopt_control = 0;
    v->handed_over = 1; /* nothing of ours to unlink at exit */
    return -1;
  }
  for (unsigned i = 0; i < nguests; i++) {
    hwsock_device *dev = vmm_guest_device(adopted[i]);
    int held = hwsock_device_resume_held(dev); /* EINVAL: nothing held */
    vmm_log(HWSOCK_LOG_DEBUG, "guest %u: %d requests held, %u in flight now",
            vmm_guest_get_id(adopted[i]), held, hwsock_device_inflight(dev));
    vmm_guest_start(adopted[i]);
  }
  free(adopted);
  vmm_log(HWSOCK_LOG_INFO, "takeover: took %u guest%s and %u host socket%s "
          "over from the VMM at %s", nguests, nguests == 1 ? "" : "s", nsocks,
          nsocks == 1 ? "" : "s", v->opt.listen_path);
  return 0;
}
