/* libhwsock backend helpers: the small pieces most backends write anyway.
 *
 * Header-only: every function is `static inline`, so a plugin built against
 * the installed SDK uses them without linking anything beyond what
 * hwsock/backend.h already needs (docs/PLUGINS.md, "Helpers"). Nothing here
 * allocates, keeps state or calls back into the device; each helper only
 * reads or writes what its arguments name. All of them may be called from
 * any backend op and from completion callbacks (on the device's thread). */
#ifndef HWSOCK_BACKEND_UTIL_H
#define HWSOCK_BACKEND_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "hwsock/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define HWSOCK__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define HWSOCK__PRINTF(f, a)
#endif

/* Longest line hwsock_backend_logf() passes to host->log (bytes, with the
 * terminating NUL); longer lines are cut. */
#define HWSOCK_BACKEND_LOG_MAX 256

/* ---- the host table ------------------------------------------------------ */

/* For create(): 1 when `host` can be used, else 0 (create() then returns
 * HWSOCK_EINVAL). Usable means: not NULL, host->size covers the whole
 * version-1 struct (so every field may be read), host->complete is set,
 * and, when need_loop is nonzero, host->loop is set. host->log may be NULL
 * (hwsock_backend_logf() then logs nothing). */
static inline int hwsock_backend_host_ok(const hwsock_backend_host *host,
                                         int need_loop) {
  return host != NULL &&
         host->size >= offsetof(hwsock_backend_host, host_data) +
                           sizeof(host->host_data) &&
         host->complete != NULL && (!need_loop || host->loop != NULL);
}

/* For a watch op: 1 when the host has the ready() callback that watches
 * report to (it was appended to the host table after version 1, so an older
 * device's table is too short to hold it), else 0: watch() then returns
 * HWSOCK_EOPNOTSUPP. */
static inline int
hwsock_backend_host_can_watch(const hwsock_backend_host *host) {
  return host->size >= offsetof(hwsock_backend_host, ready) +
                           sizeof(host->ready) &&
         host->ready != NULL;
}

/* Formats one line printf-style and hands it to host->log, if the host has
 * one. The line is cut at HWSOCK_BACKEND_LOG_MAX - 1 bytes; the buffer is on
 * the stack and nothing is kept after the call. */
static inline void hwsock_backend_logf(const hwsock_backend_host *host,
                                       int level, const char *fmt, ...)
    HWSOCK__PRINTF(3, 4);

static inline void hwsock_backend_logf(const hwsock_backend_host *host,
                                       int level, const char *fmt, ...) {
  if (host->log == NULL)
    return;
  char msg[HWSOCK_BACKEND_LOG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  host->log(host, level, msg);
}

/* For create() of a backend that takes no options: 0 when host->options is
 * NULL or "", else logs an ERROR naming the backend (`name`) and the options
 * (first 64 bytes) and returns HWSOCK_EBADCONFIG. */
static inline int hwsock_backend_no_options(const hwsock_backend_host *host,
                                            const char *name) {
  if (host->options == NULL || host->options[0] == '\0')
    return 0;
  hwsock_backend_logf(host, HWSOCK_LOG_ERROR,
                      "unknown options '%.64s' (%s has none)", host->options,
                      name);
  return HWSOCK_EBADCONFIG;
}

/* For create(): checks the host (hwsock_backend_host_ok(host, need_loop))
 * and that there are no options (hwsock_backend_no_options(host, name)),
 * then allocates the backend's instance, `size` zeroed bytes, into *out.
 * Returns 0, or HWSOCK_EINVAL / HWSOCK_EBADCONFIG / HWSOCK_ENOMEM with
 * nothing allocated. */
static inline int hwsock_backend_instance_new(const hwsock_backend_host *host,
                                              const char *name, int need_loop,
                                              size_t size, void **out) {
  if (!hwsock_backend_host_ok(host, need_loop))
    return HWSOCK_EINVAL;
  int rc = hwsock_backend_no_options(host, name);
  if (rc < 0)
    return rc;
  void *inst = calloc(1, size);
  if (inst == NULL)
    return HWSOCK_ENOMEM;
  *out = inst;
  return 0;
}

/* For destroy(): the device closes every socket before it destroys the
 * instance, so sockets still open at that point are a leak in the device or
 * the backend; logs a WARN with their count (nothing when 0). */
static inline void hwsock_backend_check_closed(const hwsock_backend_host *host,
                                               unsigned nsocks) {
  if (nsocks != 0)
    hwsock_backend_logf(host, HWSOCK_LOG_WARN,
                        "destroyed with %u sockets still open", nsocks);
}

/* ---- requests -------------------------------------------------------------- */

/* For submit(): clears what the backend sets before complete() (peer,
 * has_peer, resp_flags, resp_val, accepted) and backend_priv, so that a
 * request reused by the device never shows a previous request's answer. */
static inline void hwsock_breq_reset(hwsock_breq *req) {
  memset(req->backend_priv, 0, sizeof(req->backend_priv));
  req->has_peer = 0;
  req->resp_flags = 0;
  req->resp_val = 0;
  req->accepted = NULL;
}

/* Copies up to len bytes from buf into the request's buffers (req->iov),
 * from their start on. Returns the bytes copied: less than len when the
 * buffers are shorter. */
static inline size_t hwsock_breq_scatter(const hwsock_breq *req,
                                         const void *buf, size_t len) {
  size_t done = 0;
  for (unsigned i = 0; i < req->iovcnt && done < len; i++) {
    size_t k = req->iov[i].iov_len < len - done ? req->iov[i].iov_len
                                                : len - done;
    memcpy(req->iov[i].iov_base, (const char *)buf + done, k);
    done += k;
  }
  return done;
}

/* Copies the request's data (req->iov, req->iov_len bytes in all) into buf,
 * which must have room for req->iov_len bytes. Returns the bytes copied. */
static inline size_t hwsock_breq_gather(const hwsock_breq *req, void *buf) {
  size_t done = 0;
  for (unsigned i = 0; i < req->iovcnt && done < req->iov_len; i++) {
    size_t k = req->iov[i].iov_len < req->iov_len - done
                   ? req->iov[i].iov_len
                   : req->iov_len - done;
    memcpy((char *)buf + done, req->iov[i].iov_base, k);
    done += k;
  }
  return done;
}

/* For open(): applies params->preset (the options the guest set before the
 * decision) to a new host socket through the backend's own SETSOCKOPT
 * handler `setopt` (fd, family, a request carrying the option), in order.
 * Returns 0 or the first error. Reads the fields only when params->size
 * covers them. */
static inline int hwsock_backend_preset(const hwsock_bopen *params, int fd,
                                        int family,
                                        int (*setopt)(int fd, int family,
                                                      const hwsock_breq *req)) {
  if (params->size < offsetof(hwsock_bopen, npreset) + sizeof(params->npreset))
    return 0;
  for (uint32_t i = 0; i < params->npreset && i < HWSOCK_BPRESET_MAX; i++) {
    const hwsock_bsockopt *o = &params->preset[i];
    struct iovec iov = {(void *)o->val,
                        o->len < sizeof(o->val) ? o->len : sizeof(o->val)};
    hwsock_breq req;
    memset(&req, 0, sizeof(req));
    req.size = sizeof(req);
    req.opcode = HWSOCK_OP_SETSOCKOPT;
    req.arg0 = o->level;
    req.arg1 = o->name;
    req.iov = &iov;
    req.iovcnt = 1;
    req.iov_len = iov.iov_len;
    int rc = setopt(fd, family, &req);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Writes into dst (room for cap entries) the part of the iovecs src[0..n)
 * that starts at byte `off` of them and is at most maxlen bytes long: for a
 * sendmsg()/recvmsg() that continues where a partial one stopped. Returns
 * the slice's length in bytes; *dn gets its number of entries. The entries
 * point into src's buffers; nothing is copied. */
static inline size_t hwsock_iov_slice(const struct iovec *src, unsigned n,
                                      size_t off, size_t maxlen,
                                      struct iovec *dst, unsigned cap,
                                      unsigned *dn) {
  size_t total = 0;
  unsigned k = 0;
  for (unsigned i = 0; i < n && total < maxlen && k < cap; i++) {
    size_t seg = src[i].iov_len;
    if (off >= seg) {
      off -= seg;
      continue;
    }
    size_t take = seg - off;
    if (take > maxlen - total)
      take = maxlen - total;
    dst[k].iov_base = (char *)src[i].iov_base + off;
    dst[k].iov_len = take;
    k++;
    total += take;
    off = 0;
  }
  *dn = k;
  return total;
}

/* ---- a FIFO of requests ------------------------------------------------------ */

/* An intrusive FIFO of requests, linked through backend_priv[0]: a request
 * is in at most one queue at a time, and the backend must not use
 * backend_priv[0] for anything else while it is queued. A zeroed hwsock_bq
 * is empty; `head` is the oldest request (NULL when empty). No allocation. */
typedef struct hwsock_bq {
  hwsock_breq *head, *tail;
} hwsock_bq;

/* Appends req (which the backend owns) at the tail. */
static inline void hwsock_bq_push(hwsock_bq *q, hwsock_breq *req) {
  req->backend_priv[0] = NULL;
  if (q->tail != NULL)
    q->tail->backend_priv[0] = req;
  else
    q->head = req;
  q->tail = req;
}

/* Unlinks and returns the head, or NULL when the queue is empty. The
 * request's backend_priv[0] is NULL afterwards. Unlink a request before
 * completing it: the completion may submit to the same queue. */
static inline hwsock_breq *hwsock_bq_pop(hwsock_bq *q) {
  hwsock_breq *req = q->head;
  if (req != NULL) {
    q->head = (hwsock_breq *)req->backend_priv[0];
    if (q->head == NULL)
      q->tail = NULL;
    req->backend_priv[0] = NULL;
  }
  return req;
}

/* Unlinks req from anywhere in the queue (a walk from the head: O(length)).
 * Returns 1 when it was there, else 0 (the queue is unchanged). */
static inline int hwsock_bq_remove(hwsock_bq *q, hwsock_breq *req) {
  hwsock_breq *prev = NULL;
  for (hwsock_breq *r = q->head; r != NULL;
       prev = r, r = (hwsock_breq *)r->backend_priv[0]) {
    if (r != req)
      continue;
    if (prev != NULL)
      prev->backend_priv[0] = req->backend_priv[0];
    else
      q->head = (hwsock_breq *)req->backend_priv[0];
    if (q->tail == req)
      q->tail = prev;
    req->backend_priv[0] = NULL;
    return 1;
  }
  return 0;
}

/* 1 when the queue holds at most one request (an export_sock() that can
 * hand a socket over only while no order between two waiting requests of
 * one direction could be lost), else 0. */
static inline int hwsock_bq_at_most_one(const hwsock_bq *q) {
  return q->head == NULL || q->head->backend_priv[0] == NULL;
}

/* ---- host sockets -------------------------------------------------------------- */

/* The host sockaddr for a request's address, which must be of `family`
 * (AF_INET or AF_INET6: the socket's; a tcp socket cannot connect to a tcp6
 * address). Returns 0 with *ss and *len set; HWSOCK_EINVAL when addr is
 * NULL; HWSOCK_EAFNOSUPPORT for another family; or the error of
 * hwsock_addr_to_sockaddr(). */
static inline int hwsock_backend_sockaddr(const hwsock_addr *addr, int family,
                                          struct sockaddr_storage *ss,
                                          socklen_t *len) {
  unsigned l = sizeof(*ss);
  if (addr == NULL)
    return HWSOCK_EINVAL;
  memset(ss, 0, sizeof(*ss));
  int rc = hwsock_addr_to_sockaddr(addr, (struct sockaddr *)ss, &l);
  if (rc < 0)
    return rc;
  if (ss->ss_family != family)
    return HWSOCK_EAFNOSUPPORT;
  *len = (socklen_t)l;
  return 0;
}

/* Answers a GETNAME request from a host socket: req->arg0 0 asks for the
 * local name (getsockname), 1 for the peer (getpeername). Sets req->peer
 * and req->has_peer (as an address of `scheme`) and returns 0, or returns
 * HWSOCK_EINVAL for another arg0, the mapped errno of the failed call, or
 * the conversion's error. The caller completes req with the result. */
static inline int hwsock_backend_getname(int fd, int scheme,
                                         hwsock_breq *req) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  int rc;
  if (req->arg0 > 1)
    return HWSOCK_EINVAL;
  rc = req->arg0 == 0 ? getsockname(fd, (struct sockaddr *)&ss, &sl)
                      : getpeername(fd, (struct sockaddr *)&ss, &sl);
  if (rc != 0)
    return hwsock_err_from_errno(errno);
  rc = hwsock_addr_from_sockaddr((struct sockaddr *)&ss, (unsigned)sl, scheme,
                                 &req->peer);
  req->has_peer = rc == 0;
  return rc;
}

/* For info(): fills out from a host socket: out->fd = fd, then (when fd is
 * not negative) the local name from getsockname() and, when with_peer is
 * nonzero, the peer from getpeername(), each as an address of `scheme`.
 * A name the kernel does not give is left unset (has_local / has_peer 0).
 * Always returns 0, as info() does. */
static inline int hwsock_bsock_info_from_fd(int fd, int scheme, int with_peer,
                                            hwsock_bsock_info *out) {
  struct sockaddr_storage ss;
  socklen_t sl;
  out->fd = fd;
  if (fd < 0)
    return 0;
  sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
      hwsock_addr_from_sockaddr((struct sockaddr *)&ss, (unsigned)sl, scheme,
                                &out->local) == 0)
    out->has_local = 1;
  sl = sizeof(ss);
  if (with_peer && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
      hwsock_addr_from_sockaddr((struct sockaddr *)&ss, (unsigned)sl, scheme,
                                &out->peer) == 0)
    out->has_peer = 1;
  return 0;
}

/* ---- rate-limited log lines ---------------------------------------------- */

/* At most one log line per interval for one kind of event (a listener out
 * of fds, a guest over its quota), with a count of the ones held back, so a
 * peer that repeats an error in a loop cannot flood the log. A zeroed
 * hwsock_ratelog lets the first line through. */
typedef struct hwsock_ratelog {
  uint64_t last_ns;    /* when the last line was let through (0: never) */
  unsigned suppressed; /* lines held back since */
} hwsock_ratelog;

/* Called for each event at time now_ns (any monotonic clock, the same at
 * every call). Returns 1 when its line is to be written: the first one, or
 * interval_ns after the last one written; *suppressed then gets the number
 * held back in between and the count restarts. Else returns 0 and counts
 * the line as held back. */
static inline int hwsock_ratelog_pass(hwsock_ratelog *r, uint64_t now_ns,
                                      uint64_t interval_ns,
                                      unsigned *suppressed) {
  if (r->last_ns != 0 && now_ns - r->last_ns < interval_ns) {
    r->suppressed++;
    return 0;
  }
  *suppressed = r->suppressed;
  r->last_ns = now_ns != 0 ? now_ns : 1;
  r->suppressed = 0;
  return 1;
}

/* ---- option strings ------------------------------------------------------ */

/* Parsers for the values of a backend's options string (host->options), and
 * of the VMM that writes them. Each takes the text as pointer and length
 * (the text need not end there) and accepts the whole of it or nothing. */

/* 0..15 for one of [0-9a-fA-F], else -1. */
static inline int hwsock_hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Exactly 2*n hex digits into the n bytes at out, first digit most
 * significant. Returns 0, or -1 (out may then be partly written). */
static inline int hwsock_parse_hex(const char *s, size_t len, uint8_t *out,
                                   size_t n) {
  if (len != 2 * n)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int hi = hwsock_hex_digit(s[2 * i]), lo = hwsock_hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

/* A port: decimal 1..65535, digits only (no sign, no blanks, at most 5
 * digits). Returns 0 with *port set, or -1. */
static inline int hwsock_parse_port(const char *s, size_t len,
                                    uint16_t *port) {
  unsigned v = 0;
  if (len == 0 || len > 5)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v == 0 || v > 65535)
    return -1;
  *port = (uint16_t)v;
  return 0;
}

/* An IP literal, IPv4 (dotted quad) or IPv6 (optionally in brackets), with
 * `port` into *sa (zeroed first) and *salen. Returns the family (AF_INET or
 * AF_INET6), or -1. No name is looked up. */
static inline int hwsock_parse_ip(const char *s, size_t len, uint16_t port,
                                  struct sockaddr_storage *sa,
                                  socklen_t *salen) {
  char buf[INET6_ADDRSTRLEN];
  if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
    s++;
    len -= 2;
  }
  if (len == 0 || len >= sizeof(buf))
    return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  memset(sa, 0, sizeof(*sa));
  struct sockaddr_in *sin = (struct sockaddr_in *)sa;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
  if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *salen = sizeof(*sin);
    return AF_INET;
  }
  if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    *salen = sizeof(*sin6);
    return AF_INET6;
  }
  return -1;
}

/* An endpoint IP:PORT, [IPv6]:PORT for IPv6 (a bare IPv6 address would
 * read its last group as the port, so it is refused), into *sa and *salen.
 * Returns the family, or -1. */
static inline int hwsock_parse_endpoint(const char *s, size_t len,
                                        struct sockaddr_storage *sa,
                                        socklen_t *salen) {
  size_t colon = len;
  while (colon > 0 && s[colon - 1] != ':')
    colon--;
  if (colon == 0)
    return -1;
  size_t hlen = colon - 1;
  if (memchr(s, ':', hlen) != NULL && s[0] != '[')
    return -1;
  uint16_t port;
  if (hwsock_parse_port(s + colon, len - colon, &port) < 0)
    return -1;
  return hwsock_parse_ip(s, hlen, port, sa, salen);
}

/* An imported host socket (hwsock_backend_ops.import_sock: the descriptor
 * came from another process over SCM_RIGHTS) checked against what its saved
 * state claims: a socket of `type`, `family` and `proto`. On success it is
 * made non-blocking and close-on-exec, as the backend's own sockets are.
 * Returns 0, HWSOCK_EINVAL when the descriptor is something else, or the
 * error of the failing call. The caller keeps the descriptor either way.
 * Declared where <sys/socket.h> has SO_DOMAIN and SO_PROTOCOL (glibc: with
 * _DEFAULT_SOURCE or _GNU_SOURCE, the default without a strict -std=c11). */
#if defined(SO_DOMAIN) && defined(SO_PROTOCOL)
static inline int hwsock_backend_adopt_fd(int fd, int type, int family,
                                          int proto) {
  int t = 0, d = 0, p = 0;
  socklen_t l1 = sizeof(t), l2 = sizeof(d), l3 = sizeof(p);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l1) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &l2) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &p, &l3) != 0 || t != type ||
      d != family || p != proto)
    return HWSOCK_EINVAL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    return hwsock_err_from_errno(errno);
  return 0;
}
#endif

#ifdef __cplusplus
}
#endif
#endif
