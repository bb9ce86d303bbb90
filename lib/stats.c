/* Observability (hwsock/stats.h): counters, latency histograms, the socket
 * table and their JSON renderings. Updated on the device thread as requests
 * complete; nothing here allocates. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "device_int.h"

uint64_t hwsock__now_ns(int clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned err_slot(int err) {
  unsigned v = (unsigned)-err;
  if (v < 128)
    return v;
  if (v >= 1000 && v < 1000 + (HWSOCK_STATS_ERR_SLOTS - 128))
    return 128 + (v - 1000);
  return 0;
}

/* The 0.1.0 layout: per-opcode arrays of HWSOCK_OP_MAX_ + 1 = 13 slots.
 * Programs built against it pass its size; they get this layout. */
#define V010_OPS 13
typedef struct stats_v010 {
  uint32_t size;
  uint64_t kicks, requests, requests_by_op[V010_OPS], completions, errors;
  uint64_t errors_by_slot[HWSOCK_STATS_ERR_SLOTS];
  uint64_t bad_requests, verdicts[3], needs_reset, resets, bytes_out,
      bytes_in, notifies, notifies_suppressed, sockets_open,
      sockets_offloaded;
  uint64_t latency[V010_OPS][HWSOCK_LAT_BUCKETS];
} stats_v010;
_Static_assert(offsetof(stats_v010, latency) - offsetof(stats_v010, bad_requests) ==
                   offsetof(hwsock_device_stats, latency) -
                       offsetof(hwsock_device_stats, bad_requests),
               "the scalar counters keep their order");

/* The caller's error counts, in whichever layout its size says. */
static const uint64_t *errors_by_slot(const hwsock_device_stats *s) {
  if (s->size == sizeof(stats_v010))
    return ((const stats_v010 *)s)->errors_by_slot;
  if (s->size < offsetof(hwsock_device_stats, bad_requests))
    return NULL;
  return s->errors_by_slot;
}

uint64_t hwsock_stats_errors(const hwsock_device_stats *s, int err) {
  const uint64_t *slots = errors_by_slot(s);
  return err < 0 && slots != NULL ? slots[err_slot(err)] : 0;
}

static unsigned lat_bucket(uint64_t ns) {
  uint64_t us = ns / 1000;
  unsigned b = 0;
  while (us > 1 && b < HWSOCK_LAT_BUCKETS - 1) {
    us >>= 1;
    b++;
  }
  return b;
}

void hwsock__stats_complete(hwsock_device *dev, hwsock__req *req, int status,
                            size_t len) {
  hwsock__counters *c = &dev->counters;
  unsigned op = req->opcode <= HWSOCK_OP_MAX_ ? req->opcode : 0;
  c->completions++;
  if (status < 0) {
    c->errors++;
    c->errors_by_slot[err_slot(status)]++;
  } else if (op == HWSOCK_OP_SEND) {
    c->bytes_out += len;
  } else if (op == HWSOCK_OP_RECV) {
    c->bytes_in += len;
  }
  uint64_t dt = hwsock__now_ns(CLOCK_MONOTONIC) - req->t0_ns;
  c->latency[op][lat_bucket(dt)]++;
  c->latency_sum_ns[op] += dt;
}

/* Socket state after a request the backend performed (ss-like). */
void hwsock__stats_sock(hwsock_device *dev, hwsock__req *req, int status,
                        size_t len) {
  hwsock__sock *s = &dev->socks[req->sock_id];
  if (s->ss == HWSOCK_SS_DENIED)
    return; /* every call is refused by the deny backend: it stays denied
               (a refused CONNECT made it CLOSED, and snapshot.c, capture.c
               and the policy recheck took it for a host socket) */
  switch (req->opcode) {
  case HWSOCK_OP_CONNECT:
    s->ss = status == 0 ? HWSOCK_SS_ESTAB
            : hwsock_scheme_socktype(s->scheme) == HWSOCK_SOCK_STREAM
                ? HWSOCK_SS_CLOSED
                : s->ss;
    break;
  case HWSOCK_OP_LISTEN:
    if (status == 0)
      s->ss = HWSOCK_SS_LISTEN;
    break;
  case HWSOCK_OP_ACCEPT:
    if (status == 0 && dev->socks[req->new_sock].state == HWSOCK__S_OFFLOADED) {
      hwsock__sock *t = &dev->socks[req->new_sock];
      t->ss = HWSOCK_SS_ESTAB;
      t->created_ns = hwsock__now_ns(CLOCK_REALTIME);
      t->rule_line = s->rule_line;
      if (req->breq.has_peer) {
        t->remote = req->breq.peer;
        t->has_remote = 1;
      }
    }
    break;
  case HWSOCK_OP_SEND:
    if (status == 0) {
      s->bytes_out += len;
      s->reqs_out++;
    }
    break;
  case HWSOCK_OP_RECV:
    if (status == 0) {
      s->bytes_in += len;
      s->reqs_in++;
      if (req->breq.resp_flags & HWSOCK_RESP_F_EOF)
        s->peer_eof = 1;
    }
    break;
  case HWSOCK_OP_SHUTDOWN:
    if (status == 0 && (req->breq.arg0 & HWSOCK_SHUT_WR))
      s->shut_wr = 1;
    break;
  default:
    break;
  }
  if ((status == HWSOCK_ECONNRESET || status == HWSOCK_EPIPE) &&
      s->ss != HWSOCK_SS_LISTEN)
    s->ss = HWSOCK_SS_CLOSED;
  if (s->ss == HWSOCK_SS_ESTAB || s->ss == HWSOCK_SS_CLOSE_WAIT ||
      s->ss == HWSOCK_SS_FIN_WAIT)
    s->ss = s->peer_eof && s->shut_wr ? HWSOCK_SS_LAST_ACK
            : s->peer_eof             ? HWSOCK_SS_CLOSE_WAIT
            : s->shut_wr              ? HWSOCK_SS_FIN_WAIT
                                      : HWSOCK_SS_ESTAB;
}

int hwsock__sock_info(const hwsock_device *dev, const hwsock__sock *s,
                      hwsock_bsock_info *bi) {
  const hwsock_backend_ops *ops = dev->backends[s->backend].desc->ops;
  memset(bi, 0, sizeof(*bi));
  bi->size = sizeof(*bi);
  bi->fd = -1;
  if (ops->size < offsetof(hwsock_backend_ops, info) + sizeof(ops->info) ||
      ops->info == NULL)
    return HWSOCK_EOPNOTSUPP;
  return ops->info(s->bsock, bi);
}

/* The current layout from the private counters. */
static void to_public(const hwsock__counters *c, hwsock_device_stats *s) {
  memset(s, 0, sizeof(*s));
  s->size = sizeof(*s);
  s->kicks = c->kicks;
  s->requests = c->requests;
  memcpy(s->requests_by_op, c->requests_by_op, sizeof(c->requests_by_op));
  s->completions = c->completions;
  s->errors = c->errors;
  memcpy(s->errors_by_slot, c->errors_by_slot, sizeof(s->errors_by_slot));
  s->bad_requests = c->bad_requests;
  memcpy(s->verdicts, c->verdicts, sizeof(s->verdicts));
  s->needs_reset = c->needs_reset;
  s->resets = c->resets;
  s->bytes_out = c->bytes_out;
  s->bytes_in = c->bytes_in;
  s->notifies = c->notifies;
  s->notifies_suppressed = c->notifies_suppressed;
  for (unsigned op = 0; op < HWSOCK__OPS; op++) {
    memcpy(s->latency[op], c->latency[op], sizeof(s->latency[op]));
    s->latency_sum_ns[op] = c->latency_sum_ns[op];
  }
  s->ev_no_buffer = c->ev_no_buffer;
}

static void to_v010(const hwsock_device_stats *s, stats_v010 *o) {
  memset(o, 0, sizeof(*o));
  o->kicks = s->kicks;
  o->requests = s->requests;
  memcpy(o->requests_by_op, s->requests_by_op, sizeof(o->requests_by_op));
  o->completions = s->completions;
  o->errors = s->errors;
  memcpy(o->errors_by_slot, s->errors_by_slot, sizeof(o->errors_by_slot));
  /* bad_requests .. sockets_offloaded are contiguous in both layouts */
  memcpy(&o->bad_requests, &s->bad_requests,
         offsetof(stats_v010, latency) - offsetof(stats_v010, bad_requests));
  for (unsigned op = 0; op < V010_OPS; op++)
    memcpy(o->latency[op], s->latency[op], sizeof(o->latency[op]));
}

void hwsock_device_get_stats(const hwsock_device *dev,
                             hwsock_device_stats *out) {
  hwsock_device_stats s;
  to_public(&dev->counters, &s);
  for (unsigned i = 0; i < dev->sock_hwm; i++) { /* the rest is FREE */
    s.sockets_open += dev->socks[i].state != HWSOCK__S_FREE;
    s.sockets_offloaded += dev->socks[i].state == HWSOCK__S_OFFLOADED;
  }
  /* Exactly the 0.1.0 struct's size: a caller built against it. Any other
   * size is the current layout, truncated to the caller's size. */
  if (out->size == sizeof(stats_v010)) {
    stats_v010 old;
    to_v010(&s, &old);
    size_t n = out->size;
    old.size = (uint32_t)n;
    memcpy(out, &old, n);
    return;
  }
  size_t n = out->size < sizeof(s) ? out->size : sizeof(s);
  s.size = (uint32_t)n;
  memcpy(out, &s, n);
}

int hwsock_device_foreach_socket(const hwsock_device *dev, hwsock_sock_cb cb,
                                 void *arg) {
  for (unsigned i = 0; i < dev->sock_hwm; i++) { /* the rest is FREE */
    const hwsock__sock *s = &dev->socks[i];
    if (s->state != HWSOCK__S_OFFLOADED)
      continue;
    const hwsock__backend *b = &dev->backends[s->backend];
    hwsock_sock_info info;
    memset(&info, 0, sizeof(info));
    info.size = sizeof(info);
    info.id = i;
    info.scheme = s->scheme;
    info.state = s->ss;
    info.backend = b->desc->name;
    info.rule = s->rule;
    info.rule_line = s->rule_line;
    info.host_fd = -1;
    info.bytes_out = s->bytes_out;
    info.bytes_in = s->bytes_in;
    info.requests_out = s->reqs_out;
    info.requests_in = s->reqs_in;
    info.inflight = s->inflight;
    info.created_ns = s->created_ns;
    info.identity = s->identity;
    hwsock_bsock_info bi;
    if (hwsock__sock_info(dev, s, &bi) == 0) {
      info.host_fd = bi.fd;
      if (bi.has_local)
        hwsock_uri_format(&bi.local, info.local, sizeof(info.local));
      if (bi.has_peer)
        hwsock_uri_format(&bi.peer, info.remote, sizeof(info.remote));
    }
    if (info.remote[0] == '\0' && s->has_remote)
      hwsock_uri_format(&s->remote, info.remote, sizeof(info.remote));
    int rc = cb(&info, arg);
    if (rc != 0)
      return rc;
  }
  return 0;
}

const char *hwsock_ss_name(int state) {
  static const char *const names[] = {"UNCONN",     "SYN-SENT", "ESTAB",
                                      "LISTEN",     "CLOSE-WAIT", "FIN-WAIT",
                                      "LAST-ACK",   "CLOSED",   "DENIED"};
  return state >= 0 && state <= HWSOCK_SS_DENIED ? names[state] : "UNKNOWN";
}

const char *hwsock_op_name(int op) {
  static const char *const names[] = {
      NULL,     "OPEN",     "CONNECT", "BIND",       "LISTEN",
      "ACCEPT", "SEND",     "RECV",    "SHUTDOWN",   "CLOSE",
      "GETSOCKOPT", "SETSOCKOPT", "GETNAME", "NEGOTIATE", "CREDIT"};
  _Static_assert(sizeof(names) / sizeof(names[0]) == HWSOCK_OP_MAX_ + 1,
                 "a name for every opcode");
  return op >= 1 && op <= HWSOCK_OP_MAX_ ? names[op] : NULL;
}

/* Appends to buf; keeps *len even past size so the caller sees overflow. */
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(*len < size ? buf + *len : NULL,
                    *len < size ? size - *len : 0, fmt, ap);
  va_end(ap);
  if (n > 0)
    *len += (size_t)n;
}

int hwsock_sock_info_json(const hwsock_sock_info *i, char *buf, size_t size) {
  size_t len = 0;
  /* URIs and names never contain quotes or backslashes (uri grammar). */
  put(buf, size, &len,
      "{\"id\":%u,\"scheme\":\"%s\",\"state\":\"%s\",\"backend\":\"%s\","
      "\"rule\":%d,\"rule_line\":%d,\"host_fd\":%d,\"local\":\"%s\","
      "\"remote\":\"%s\",\"bytes_out\":%llu,\"bytes_in\":%llu,"
      "\"requests_out\":%llu,\"requests_in\":%llu,\"inflight\":%u,"
      "\"created_ns\":%llu,\"identity\":%s}",
      i->id, hwsock_scheme_name(i->scheme) ? hwsock_scheme_name(i->scheme) : "?",
      hwsock_ss_name(i->state), i->backend ? i->backend : "", i->rule,
      i->rule_line, i->host_fd, i->local, i->remote,
      (unsigned long long)i->bytes_out, (unsigned long long)i->bytes_in,
      (unsigned long long)i->requests_out, (unsigned long long)i->requests_in,
      i->inflight, (unsigned long long)i->created_ns,
      i->size >= offsetof(hwsock_sock_info, identity) + sizeof(i->identity) &&
              i->identity == HWSOCK_IDENTITY_PROXY_V2
          ? "\"proxy-v2\""
          : "null");
  return len < size ? (int)len : HWSOCK_ENOSPC;
}

/* A caller's struct in the current layout, fields it lacks zero. */
static void from_caller(const hwsock_device_stats *in, hwsock_device_stats *s) {
  memset(s, 0, sizeof(*s));
  if (in->size == sizeof(stats_v010)) {
    const stats_v010 *o = (const stats_v010 *)in;
    s->kicks = o->kicks;
    s->requests = o->requests;
    memcpy(s->requests_by_op, o->requests_by_op, sizeof(o->requests_by_op));
    s->completions = o->completions;
    s->errors = o->errors;
    memcpy(s->errors_by_slot, o->errors_by_slot, sizeof(s->errors_by_slot));
    memcpy(&s->bad_requests, &o->bad_requests,
           offsetof(stats_v010, latency) - offsetof(stats_v010, bad_requests));
    for (unsigned op = 0; op < V010_OPS; op++)
      memcpy(s->latency[op], o->latency[op], sizeof(o->latency[op]));
  } else {
    memcpy(s, in, in->size < sizeof(*s) ? in->size : sizeof(*s));
  }
  s->size = sizeof(*s);
}

int hwsock_stats_json(const hwsock_device_stats *in, char *buf, size_t size) {
  hwsock_device_stats full;
  const hwsock_device_stats *s = &full;
  from_caller(in, &full);
  size_t len = 0;
  put(buf, size, &len,
      "{\"kicks\":%llu,\"requests\":%llu,\"completions\":%llu,\"errors\":%llu,"
      "\"bad_requests\":%llu,\"verdicts\":{\"offload\":%llu,\"decline\":%llu,"
      "\"deny\":%llu},\"needs_reset\":%llu,\"resets\":%llu,\"bytes_out\":%llu,"
      "\"bytes_in\":%llu,\"notifies\":%llu,\"notifies_suppressed\":%llu,"
      "\"sockets_open\":%llu,\"sockets_offloaded\":%llu,\"ev_no_buffer\":%llu,"
      "\"requests_by_op\":{",
      (unsigned long long)s->kicks, (unsigned long long)s->requests,
      (unsigned long long)s->completions, (unsigned long long)s->errors,
      (unsigned long long)s->bad_requests,
      (unsigned long long)s->verdicts[HWSOCK_ACTION_OFFLOAD],
      (unsigned long long)s->verdicts[HWSOCK_ACTION_DECLINE],
      (unsigned long long)s->verdicts[HWSOCK_ACTION_DENY],
      (unsigned long long)s->needs_reset, (unsigned long long)s->resets,
      (unsigned long long)s->bytes_out, (unsigned long long)s->bytes_in,
      (unsigned long long)s->notifies,
      (unsigned long long)s->notifies_suppressed,
      (unsigned long long)s->sockets_open,
      (unsigned long long)s->sockets_offloaded,
      (unsigned long long)s->ev_no_buffer);
  for (int op = 1; op <= HWSOCK_OP_MAX_; op++)
    put(buf, size, &len, "%s\"%s\":%llu", op > 1 ? "," : "", hwsock_op_name(op),
        (unsigned long long)s->requests_by_op[op]);
  put(buf, size, &len, "},\"errors_by_code\":{");
  int first = 1;
#define XX(name, val, host, msg)                                              \
  if (hwsock_stats_errors(s, HWSOCK_##name) > 0) {                            \
    put(buf, size, &len, "%s\"%s\":%llu", first ? "" : ",", #name,            \
        (unsigned long long)hwsock_stats_errors(s, HWSOCK_##name));           \
    first = 0;                                                                \
  }
  HWSOCK_ERRNO_MAP(XX)
#undef XX
  put(buf, size, &len, "},\"latency_us_log2\":{");
  first = 1;
  for (int op = 1; op <= HWSOCK_OP_MAX_; op++) {
    int last = -1;
    for (int b = 0; b < HWSOCK_LAT_BUCKETS; b++)
      if (s->latency[op][b])
        last = b;
    if (last < 0)
      continue;
    put(buf, size, &len, "%s\"%s\":[", first ? "" : ",", hwsock_op_name(op));
    for (int b = 0; b <= last; b++)
      put(buf, size, &len, "%s%llu", b ? "," : "",
          (unsigned long long)s->latency[op][b]);
    put(buf, size, &len, "]");
    first = 0;
  }
  put(buf, size, &len, "}}");
  return len < size ? (int)len : HWSOCK_ENOSPC;
}
