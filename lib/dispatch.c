/* Request dispatch: decode a popped chain (fetch once, validate, act), take
 * the offload decision on a socket's first connect/bind/listen/sendto, hand
 * the request to the socket's backend, and write the completion.
 *
 * Data flows one way: ring -> dispatch -> policy -> backend. Nothing here
 * knows how a backend does its work, and backends never see the ring. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device_int.h"
#include "iov.h"

#define RESP_LEN ((uint32_t)sizeof(hwsock_resp_hdr))
#define REQ_LEN ((uint32_t)sizeof(hwsock_req_hdr))

static const struct iovec *wr_iov(const hwsock__req *r) {
  return r->iov + r->chain.n_out;
}

/* Writes the response header (and URI) and completes the request. `len` is
 * the count of data bytes the backend produced or consumed. */
static void finish(hwsock_device *dev, hwsock__req *req, int status,
                   size_t len) {
  hwsock_resp_hdr resp;
  uint32_t used = RESP_LEN;
  memset(&resp, 0, sizeof(resp));
  hwsock__stats_complete(dev, req, status, len);
  if (dev->in_teardown) {
    /* Freed or reset: nothing is written to guest memory (device.h). The
     * guest may own these buffers again already: a new device that took
     * the rings over (handover.c) may have completed the request. */
    hwsock__req_release(dev, req);
    return;
  }
  if (req->chain.in_len < RESP_LEN) {
    /* Nowhere to say what went wrong: complete with nothing written. */
    dev->counters.bad_requests++;
    hwsock__req_push(dev, req, 0);
    return;
  }
  if (status < 0)
    dev->counters.bad_requests += (status == HWSOCK_EBADMSG ||
                                   status == HWSOCK_ENOSYS);
  hwsock_le64_set(&resp.tag, req->tag);
  if (status == 0) {
    const hwsock_breq *b = &req->breq;
    if (b->has_peer && req->uri_area > 0) {
      char uri[HWSOCK_URI_MAX + 1];
      int n = hwsock_uri_format(&b->peer, uri, sizeof(uri));
      if (n >= 0 && (uint32_t)n <= req->uri_area) {
        hwsock__iov_scatter(wr_iov(req), req->chain.n_in, RESP_LEN, uri,
                            (size_t)n);
        hwsock_le32_set(&resp.uri_len, (uint32_t)n);
      } else {
        status = HWSOCK_ENAMETOOLONG;
      }
    }
    if (status == 0) {
      hwsock_le32_set(&resp.len, (uint32_t)len);
      hwsock_le32_set(&resp.flags, b->resp_flags);
      hwsock_le32_set(&resp.val, b->resp_val);
      switch (req->opcode) {
      case HWSOCK_OP_RECV:
        used += req->uri_area + (uint32_t)len;
        break;
      case HWSOCK_OP_GETSOCKOPT:
        used += (uint32_t)len;
        break;
      case HWSOCK_OP_ACCEPT:
      case HWSOCK_OP_GETNAME:
        used += hwsock_le32_get(&resp.uri_len);
        break;
      case HWSOCK_OP_NEGOTIATE:
        used += (uint32_t)len;
        break;
      default:
        break;
      }
    }
  }
  if (status < 0) {
    memset(&resp, 0, sizeof(resp));
    hwsock_le64_set(&resp.tag, req->tag);
    hwsock_le32_set(&resp.status, (uint32_t)-status);
    used = RESP_LEN;
  }
  hwsock__iov_scatter(wr_iov(req), req->chain.n_in, 0, &resp, RESP_LEN);
  hwsock__req_push(dev, req, used);
}

void hwsock__sock_close(hwsock_device *dev, uint32_t id) {
  hwsock__sock *s = &dev->socks[id];
  if (s->state == HWSOCK__S_OFFLOADED && s->backend >= 0) {
    if (dev->capture != NULL)
      dev->capture_hooks->close(dev, s);
    void *bsock = s->bsock;
    s->bsock = NULL;
    /* The backend cancels (completes) the socket's pending requests now. */
    dev->backends[s->backend].desc->ops->close(bsock);
  }
  if (s->quota)
    hwsock__quota_put(dev);
  free(s->preset);
  /* The ready line is cleaned lazily (evq.c): the link survives. */
  if (dev->capsocks != NULL)
    memset(&dev->capsocks[id], 0, sizeof(dev->capsocks[id]));
  uint32_t ev_next = s->ev_next;
  uint16_t in_line = s->ev & HWSOCK__EV_IN_LINE;
  memset(s, 0, sizeof(*s));
  s->backend = -1;
  s->ev_next = ev_next;
  s->ev = in_line;
}

/* The option (level, name) with its value into table p: it replaces the
 * option's earlier value, else it is appended while fewer than max are
 * kept. 0 or HWSOCK_ENOBUFS. */
static int keep_opt(hwsock__presets *p, uint32_t level, uint32_t name,
                    const uint8_t *val, size_t len, uint32_t max) {
  uint32_t i = 0;
  while (i < p->n && !(p->opt[i].level == level && p->opt[i].name == name))
    i++;
  if (i == p->n && (i >= max || i >= HWSOCK__SOCKOPTS_MAX))
    return HWSOCK_ENOBUFS;
  hwsock_bsockopt *o = &p->opt[i];
  memset(o, 0, sizeof(*o));
  o->level = level;
  o->name = name;
  o->len = (uint32_t)len;
  memcpy(o->val, val, len);
  if (i == p->n)
    p->n++;
  return 0;
}

void hwsock__backend_complete(hwsock_breq *breq, int status, size_t len) {
  hwsock__req *req = (hwsock__req *)breq;
  hwsock_device *dev = req->dev;
  hwsock__sock *s = &dev->socks[req->sock_id];
  if (s->inflight > 0)
    s->inflight--;
  if (status > 0 || status < -4095)
    status = HWSOCK_EIO; /* a backend bug must not reach the guest as OK */
  if (req->own) { /* a restore's own step (snapshot_sock.c) */
    hwsock__snap_step_done(req, status);
    return;
  }
  if (req->event) { /* an event-queue read (evq.c) */
    if (status == 0 && len > breq->iov_len)
      status = HWSOCK_EIO;
    hwsock__evq_complete(dev, req, status, len);
    return;
  }
  if (req->opcode == HWSOCK_OP_ACCEPT) {
    hwsock__sock *t = &dev->socks[req->new_sock];
    if (status == 0 && breq->accepted != NULL &&
        t->state == HWSOCK__S_RESERVED && !dev->in_teardown) {
      t->state = HWSOCK__S_OFFLOADED;
      t->scheme = s->scheme;
      t->backend = s->backend;
      t->bsock = breq->accepted;
      t->rule = s->rule;
    } else {
      if (status == 0 && breq->accepted != NULL && s->backend >= 0)
        dev->backends[s->backend].desc->ops->close(breq->accepted);
      if (status == 0)
        status = breq->accepted ? HWSOCK_ECANCELED : HWSOCK_EIO;
      if (t->state == HWSOCK__S_RESERVED) {
        t->state = HWSOCK__S_FREE;
        if (t->quota)
          hwsock__quota_put(dev);
        t->quota = 0;
      }
    }
  }
  if (status == 0 && req->opcode == HWSOCK_OP_CONNECT && breq->prefix_len > 0)
    s->identity = HWSOCK_IDENTITY_PROXY_V2; /* on the wire: table, capture */
  /* An option the host socket now has: a restore gives it to the new one
   * (snapshot_sock.c). The table was allocated before the submit. */
  if (status == 0 && req->opcode == HWSOCK_OP_SETSOCKOPT && req->optcopy &&
      s->preset != NULL && !dev->in_teardown)
    keep_opt(s->preset, breq->arg0, breq->arg1, req->optval,
             hwsock__sockopt_len(breq->arg0, breq->arg1),
             HWSOCK__SOCKOPTS_MAX);
  if (status == 0 && len > breq->iov_len &&
      (req->opcode == HWSOCK_OP_RECV || req->opcode == HWSOCK_OP_SEND ||
       req->opcode == HWSOCK_OP_GETSOCKOPT))
    status = HWSOCK_EIO; /* never claim more bytes than the buffers hold */
  if (!dev->in_teardown) {
    hwsock__stats_sock(dev, req, status, len);
    if (dev->capture != NULL)
      dev->capture_hooks->event(dev, req, status, len);
  }
  finish(dev, req, status, len);
}

static int backend_for(const hwsock_device *dev, int scheme, const char *name) {
  const char *sname = hwsock_scheme_name(scheme);
  for (unsigned i = 0; i < dev->nbackends; i++) {
    const hwsock_backend_desc *d = dev->backends[i].desc;
    if (name != NULL) {
      if (strcmp(d->name, name) == 0)
        return (int)i;
      continue;
    }
    for (const char *const *s = d->schemes; s && *s; s++)
      if (sname && strcmp(*s, sname) == 0)
        return (int)i;
  }
  return -1;
}

/* The address must be of the socket's family and type. */
static int addr_fits_socket(const hwsock__sock *s, const hwsock_addr *a) {
  if (a->scheme == s->scheme)
    return 0;
  if (hwsock_scheme_family(a->scheme) != hwsock_scheme_family(s->scheme))
    return HWSOCK_EAFNOSUPPORT;
  return HWSOCK_EPROTOTYPE;
}

/* 0.0.0.0 or :: (every byte zero; ::ffff:0.0.0.0 is not). */
static int unspecified(const hwsock_addr *a) {
  static const uint8_t zero[16];
  return (a->family == HWSOCK_AF_INET && memcmp(a->u.v4, zero, 4) == 0) ||
         (a->family == HWSOCK_AF_INET6 && memcmp(a->u.v6, zero, 16) == 0);
}

static int direction_of(unsigned op) {
  return (op == HWSOCK_OP_BIND || op == HWSOCK_OP_LISTEN) ? HWSOCK_DIR_INBOUND
                                                          : HWSOCK_DIR_OUTBOUND;
}

static void log_verdict(hwsock_device *dev, const hwsock__req *req,
                        const hwsock_verdict *v) {
  char uri[HWSOCK_URI_MAX + 1];
  if (hwsock_uri_format(&req->addr, uri, sizeof(uri)) < 0)
    strcpy(uri, "?");
  hwsock__device_log(dev, HWSOCK_LOG_INFO, "sock %u: %s %s %s: %s (%s)",
                     req->sock_id, hwsock_direction_name(direction_of(req->opcode)),
                     uri, hwsock_action_name(v->action),
                     v->reason ? v->reason : "", hwsock_err_name(v->error));
}

/* Builds the backend's view of the request. 0 or a negative HWSOCK_E*. */
static int prepare(hwsock_device *dev, hwsock__req *req, uint32_t uri_len,
                   int has_addr) {
  hwsock_breq *b = &req->breq;
  const hwsock__chain *c = &req->chain;
  unsigned cap = dev->cfg.max_chain_segs + dev->cfg.max_regions, n = 0;
  uint32_t area;
  b->addr = has_addr ? &req->addr : NULL;
  req->optcopy = 0;
  switch (req->opcode) {
  case HWSOCK_OP_SEND:
  case HWSOCK_OP_SETSOCKOPT: {
    size_t off = REQ_LEN + uri_len;
    size_t avail = c->out_len - off;
    size_t lim = req->opcode == HWSOCK_OP_SEND ? dev->cfg.max_io_len
                                               : HWSOCK_SOCKOPT_MAX;
    if (avail > lim)
      return req->opcode == HWSOCK_OP_SEND ? HWSOCK_EMSGSIZE : HWSOCK_EINVAL;
    b->iov_len = hwsock__iov_slice(req->iov, c->n_out, off, avail, req->data,
                                   cap, &n);
    break;
  }
  case HWSOCK_OP_RECV:
    area = b->arg1;
    if (area != 0 && (area < HWSOCK_URI_AREA_MIN || area > dev->cfg.max_uri_len))
      return HWSOCK_EINVAL;
    if (c->in_len - RESP_LEN < area)
      return HWSOCK_EINVAL;
    req->uri_area = area;
    b->iov_len = hwsock__iov_slice(wr_iov(req), c->n_in, RESP_LEN + area,
                                   dev->cfg.max_io_len, req->data, cap, &n);
    break;
  case HWSOCK_OP_GETSOCKOPT:
    b->iov_len = hwsock__iov_slice(wr_iov(req), c->n_in, RESP_LEN, HWSOCK_SOCKOPT_MAX,
                                   req->data, cap, &n);
    break;
  case HWSOCK_OP_ACCEPT:
  case HWSOCK_OP_GETNAME:
    area = (uint32_t)(c->in_len - RESP_LEN);
    if (area < HWSOCK_URI_AREA_MIN)
      return HWSOCK_EINVAL;
    req->uri_area = area > dev->cfg.max_uri_len ? dev->cfg.max_uri_len : area;
    if (req->opcode == HWSOCK_OP_GETNAME && b->arg0 > 1)
      return HWSOCK_EINVAL;
    break;
  case HWSOCK_OP_SHUTDOWN:
    if (b->arg0 < HWSOCK_SHUT_RD || b->arg0 > HWSOCK_SHUT_RDWR)
      return HWSOCK_EINVAL;
    break;
  default:
    break;
  }
  b->iov = req->data;
  b->iovcnt = n;
  return 0;
}

static void submit(hwsock_device *dev, hwsock__req *req, hwsock__sock *s) {
  if (req->opcode == HWSOCK_OP_ACCEPT) {
    uint32_t t = req->breq.arg1;
    if (t >= dev->cfg.max_sockets) {
      finish(dev, req, HWSOCK_EBADF, 0);
      return;
    }
    if (dev->socks[t].state != HWSOCK__S_FREE) {
      finish(dev, req, HWSOCK_EEXIST, 0);
      return;
    }
    hwsock__sock_seen(dev, t);
    /* The connection it waits for will be a host socket: counted from now
     * on, so that pending ACCEPTs cannot overshoot the quota. */
    int rc = hwsock__quota_take(dev);
    if (rc < 0) {
      finish(dev, req, rc, 0);
      return;
    }
    dev->socks[t].quota = 1;
    dev->socks[t].state = HWSOCK__S_RESERVED;
    req->new_sock = t;
  }
  if (req->breq.addr != NULL && (req->opcode == HWSOCK_OP_CONNECT ||
                                 req->opcode == HWSOCK_OP_SEND)) {
    s->remote = *req->breq.addr;
    s->has_remote = 1;
  }
  if (req->opcode == HWSOCK_OP_CONNECT && s->ss != HWSOCK_SS_DENIED &&
      hwsock_scheme_socktype(s->scheme) == HWSOCK_SOCK_STREAM)
    s->ss = HWSOCK_SS_SYN_SENT;
  /* From now on the kernel sends to 0.0.0.0 / :: at the bound address (or
   * may: the bind can still fail), which ask_policy does not guess. */
  if (req->opcode == HWSOCK_OP_BIND && req->breq.addr != NULL &&
      !unspecified(req->breq.addr))
    s->bound = 1;
  if (s->window > 0 ||
      (s->ev & (HWSOCK__EV_WANT_ACCEPT | HWSOCK__EV_WANT_WRITE)))
    hwsock__evq_arm(dev, req->sock_id); /* granted while undecided */
  s->inflight++;
  /* The backend may complete synchronously: req is not touched after. */
  dev->backends[s->backend].desc->ops->submit(s->bsock, &req->breq);
}

/* A CONNECT under a rule that says `identity:` (docs/IDENTITY.md) carries
 * the VMM's identity to the backend, which sends it before any guest byte.
 * When that cannot happen the connection is refused: it must not reach a
 * server that trusts the header without it. 0 or a negative HWSOCK_E*. */
static int want_identity(hwsock_device *dev, hwsock__req *req, int bi,
                         int rule) {
  if (req->opcode != HWSOCK_OP_CONNECT ||
      hwsock_policy_rule_identity(dev->policy, rule) == HWSOCK_IDENTITY_NONE)
    return 0;
  const hwsock_backend_desc *d = dev->backends[bi].desc;
  const hwsock_backend_ops *ops = d->ops;
  if (dev->cfg.identity == NULL) {
    hwsock__device_log(dev, HWSOCK_LOG_ERROR,
                       "sock %u: the policy rule asks for identity: proxy-v2 "
                       "but the VMM has no identity: refused", req->sock_id);
    return HWSOCK_EACCES;
  }
  if (ops->size < offsetof(hwsock_backend_ops, flags) + sizeof(ops->flags) ||
      !(ops->flags & HWSOCK_BACKEND_F_IDENTITY)) {
    hwsock__device_log(dev, HWSOCK_LOG_ERROR,
                       "sock %u: backend '%s' cannot send an identity: "
                       "refused", req->sock_id, d->name);
    return HWSOCK_EACCES;
  }
  req->breq.identity = dev->cfg.identity;
  return 0;
}

/* The one way the device asks the policy about an address, for the first
 * decision and for every later destination alike: the address is first made
 * what the host kernel will use (hwsock_policy_effective_addr: 0.0.0.0 is
 * loopback, a v4-mapped address is tcp/udp, ...), and the rules see that.
 * One the kernel would not route is refused here, before any rule and
 * without deciding the socket: 0, or that refusal's HWSOCK_E*. */
static int ask_policy(hwsock_device *dev, const hwsock__req *req,
                      const hwsock__sock *s, const hwsock_addr *addr,
                      hwsock_verdict *v) {
  int dir = direction_of(req->opcode);
  const char *why = NULL;
  hwsock_addr eff;
  int rc = hwsock_policy_effective_addr(addr, dir,
                                        s->bound ? HWSOCK_POLICY_BOUND : 0,
                                        &eff, &why);
  if (rc < 0) {
    char uri[HWSOCK_URI_MAX + 1];
    if (hwsock_uri_format(addr, uri, sizeof(uri)) < 0)
      strcpy(uri, "?");
    dev->counters.verdicts[HWSOCK_ACTION_DENY]++;
    hwsock__device_log(dev, HWSOCK_LOG_INFO, "sock %u: %s %s: %s (%s)",
                       req->sock_id, hwsock_direction_name(dir), uri,
                       why ? why : "refused", hwsock_err_name(rc));
    return rc;
  }
  hwsock_policy_decide(dev->policy, &eff, dir, req->opcode, v);
  return 0;
}

/* First offloadable call of an undecided socket: ask the policy. */
static void decide_and_submit(hwsock_device *dev, hwsock__req *req,
                              hwsock__sock *s, const hwsock_addr *addr) {
  hwsock_verdict v;
  int refused = ask_policy(dev, req, s, addr, &v);
  if (refused < 0) {
    finish(dev, req, refused, 0);
    return;
  }
  if (v.action < 0 || v.action > HWSOCK_ACTION_DECLINE)
    v.action = HWSOCK_ACTION_DENY;
  dev->counters.verdicts[v.action]++;
  if (&req->addr == addr)
    log_verdict(dev, req, &v);

  int bi = -1, err = 0;
  if (v.action == HWSOCK_ACTION_DECLINE) {
    s->state = HWSOCK__S_DECLINED;
    s->rule = v.rule;
    finish(dev, req, HWSOCK_EDECLINED, 0);
    return;
  }
  if (v.action == HWSOCK_ACTION_DENY) {
    err = v.error < 0 ? v.error : HWSOCK_EACCES;
    bi = backend_for(dev, s->scheme, "deny");
    if (bi < 0) { /* no deny backend: the device answers itself */
      finish(dev, req, err, 0);
      return;
    }
  } else {
    bi = backend_for(dev, s->scheme, v.backend);
    if (bi < 0) {
      finish(dev, req, v.backend ? HWSOCK_ENOENT : HWSOCK_EAFNOSUPPORT, 0);
      return;
    }
    int rc = want_identity(dev, req, bi, v.rule);
    if (rc < 0) {
      finish(dev, req, rc, 0);
      return;
    }
  }
  hwsock_bopen params;
  memset(&params, 0, sizeof(params));
  params.size = sizeof(params);
  params.scheme = s->scheme;
  params.error = err;
  params.reason = v.reason ? v.reason : "";
  params.set = err < 0 ? NULL : v.set;
  if (err == 0 && s->preset != NULL) {
    params.preset = s->preset->opt;
    /* an undecided socket's table holds at most this many (preset_store,
     * a restored blob) */
    params.npreset = s->preset->n < HWSOCK_BPRESET_MAX ? s->preset->n
                                                       : HWSOCK_BPRESET_MAX;
  }
  void *bsock = NULL;
  /* An offloaded socket holds a host socket: it counts against the
   * quotas (quota.c); a denied one holds none. */
  int rc = err < 0 ? 0 : hwsock__quota_take(dev);
  if (rc < 0) {
    finish(dev, req, rc, 0);
    return;
  }
  rc = dev->backends[bi].desc->ops->open(dev->backends[bi].instance, &params,
                                         &bsock);
  if (rc < 0) {
    if (err == 0)
      hwsock__quota_put(dev);
    finish(dev, req, rc, 0);
    return;
  }
  s->quota = err == 0;
  s->state = HWSOCK__S_OFFLOADED;
  s->backend = (int16_t)bi;
  s->bsock = bsock;
  s->rule = v.rule;
  s->rule_line = v.line;
  s->locked = params.set ? params.set->mask : 0;
  s->ss = err < 0 ? HWSOCK_SS_DENIED : HWSOCK_SS_UNCONN;
  s->created_ns = hwsock__now_ns(CLOCK_REALTIME);
  submit(dev, req, s);
}

/* A later destination of an offloaded socket is checked again: first right
 * of refusal is per socket, but no call may reach a denied address. */
static int recheck(hwsock_device *dev, hwsock__req *req,
                   const hwsock__sock *s) {
  hwsock_verdict v;
  int refused = ask_policy(dev, req, s, &req->addr, &v);
  if (refused < 0)
    return refused;
  if (v.action == HWSOCK_ACTION_OFFLOAD) /* e.g. bind, then connect */
    return s->ss == HWSOCK_SS_DENIED ? 0
                                     : want_identity(dev, req, s->backend,
                                                     v.rule);
  dev->counters.verdicts[v.action == HWSOCK_ACTION_DECLINE
                             ? HWSOCK_ACTION_DECLINE
                             : HWSOCK_ACTION_DENY]++;
  log_verdict(dev, req, &v);
  /* A declined destination cannot be reached from an offloaded socket. */
  return v.action == HWSOCK_ACTION_DENY && v.error < 0 ? v.error
                                                        : HWSOCK_EACCES;
}

/* The first len bytes of a SETSOCKOPT's value (len <= b->iov_len). */
static void opt_value(const hwsock_breq *b, uint8_t *val, size_t len) {
  size_t done = 0;
  for (unsigned k = 0; k < b->iovcnt && done < len; k++) {
    size_t n = b->iov[k].iov_len < len - done ? b->iov[k].iov_len
                                              : len - done;
    memcpy(val + done, b->iov[k].iov_base, n);
    done += n;
  }
}

/* SETSOCKOPT on an OPEN socket (the allow-list was checked): kept for the
 * backend's open(), which sets it on the host socket before the first
 * operation, so that SO_REUSEADDR precedes the bind and buffer sizes the
 * SYN, as on a host socket. The last value of an option replaces an
 * earlier one. 0 or a negative HWSOCK_E*. */
static int preset_store(hwsock__sock *s, const hwsock_breq *b) {
  if (b->arg0 == HWSOCK_SOL_IPV6 &&
      hwsock_scheme_family(s->scheme) != HWSOCK_AF_INET6)
    return HWSOCK_ENOPROTOOPT; /* as the host says at once */
  size_t need = hwsock__sockopt_len(b->arg0, b->arg1);
  if (b->iov_len < need)
    return HWSOCK_EINVAL;
  if (s->preset == NULL && (s->preset = calloc(1, sizeof(*s->preset))) == NULL)
    return HWSOCK_ENOMEM;
  uint8_t val[8];
  opt_value(b, val, need);
  return keep_opt(s->preset, b->arg0, b->arg1, val, need, HWSOCK_BPRESET_MAX);
}

/* SETSOCKOPT on an offloaded socket: the value is fetched once into the
 * request, the backend is given that copy, and the completion keeps what
 * the backend applied (hwsock__backend_complete). A value too short is
 * the backend's to refuse. 0 or HWSOCK_ENOMEM. */
static int setopt_copy(hwsock__sock *s, hwsock__req *req) {
  hwsock_breq *b = &req->breq;
  size_t need = hwsock__sockopt_len(b->arg0, b->arg1);
  if (b->iov_len < need || s->ss == HWSOCK_SS_DENIED)
    return 0;
  if (s->preset == NULL && (s->preset = calloc(1, sizeof(*s->preset))) == NULL)
    return HWSOCK_ENOMEM;
  opt_value(b, req->optval, need);
  req->data[0].iov_base = req->optval;
  req->data[0].iov_len = need;
  b->iov = req->data;
  b->iovcnt = 1;
  b->iov_len = need;
  req->optcopy = 1;
  return 0;
}

/* Argument checks that need no socket state. */
static int check_args(const hwsock_breq *b) {
  switch (b->opcode) {
  case HWSOCK_OP_SEND:
    return (b->arg0 & ~HWSOCK_SEND_MORE) ? HWSOCK_EINVAL : 0;
  case HWSOCK_OP_RECV:
    return (b->arg0 & ~(HWSOCK_RECV_PEEK | HWSOCK_RECV_WAITALL)) ? HWSOCK_EINVAL
                                                                   : 0;
  case HWSOCK_OP_GETSOCKOPT:
  case HWSOCK_OP_SETSOCKOPT:
    return hwsock__sockopt_allowed(b->arg0, b->arg1,
                                   b->opcode == HWSOCK_OP_SETSOCKOPT)
               ? 0
               : HWSOCK_ENOPROTOOPT;
  default:
    return 0;
  }
}

static int takes_uri(unsigned op) {
  return op == HWSOCK_OP_CONNECT || op == HWSOCK_OP_BIND ||
         op == HWSOCK_OP_SEND;
}

/* In-band negotiation (PROTOCOL.md §5.13): the driver's device-class
 * features in, the config space out. Transport features were set by the VMM
 * (hwsock_device_set_features) from what the transport negotiated. */
static void negotiate(hwsock_device *dev, hwsock__req *req,
                      const hwsock_req_hdr *h) {
  const hwsock__chain *c = &req->chain;
  uint64_t want = (uint64_t)req->breq.arg0 | ((uint64_t)req->breq.arg1 << 32);
  uint64_t offer = hwsock__class_features(dev);
  if (c->in_len - RESP_LEN < sizeof(hwsock_wire_config)) {
    finish(dev, req, HWSOCK_EMSGSIZE, 0);
    return;
  }
  if (hwsock_le16_get(&h->flags) != 0 || hwsock_le32_get(&h->reserved) != 0 ||
      hwsock_le32_get(&h->uri_len) != 0 || hwsock_le32_get(&h->sock_id) != 0) {
    finish(dev, req, HWSOCK_EINVAL, 0);
    return;
  }
  if (dev->negotiated) {
    finish(dev, req, HWSOCK_EALREADY, 0);
    return;
  }
  if ((want & ~offer) != 0) {
    finish(dev, req, HWSOCK_EINVAL, 0);
    return;
  }
  hwsock_wire_config cfg;
  hwsock_device_get_config(dev, &cfg);
  /* The offer: device classes plus the transport bits in force. */
  hwsock_le64_set(&cfg.device_features,
                  offer | (dev->features & ~hwsock__class_features(dev)));
  hwsock__iov_scatter(wr_iov(req), c->n_in, RESP_LEN, &cfg, sizeof(cfg));
  dev->features |= want;
  dev->negotiated = 1;
  finish(dev, req, 0, sizeof(cfg));
}

/* Decode, first part: the chain's two headers, the request header fetched
 * once into *h (everything after uses the private copy) and the opcode.
 * Returns 0 or the status to complete with. */
static int decode_header(hwsock_device *dev, hwsock__req *req,
                         hwsock_req_hdr *h) {
  const hwsock__chain *c = &req->chain;
  memset(&req->breq, 0, sizeof(req->breq));
  req->breq.size = sizeof(req->breq);
  req->tag = 0;
  req->opcode = 0;
  req->uri_area = 0;
  req->sock_id = 0;
  if (c->in_len < RESP_LEN || c->out_len < REQ_LEN)
    return HWSOCK_EBADMSG;
  hwsock__iov_gather(req->iov, c->n_out, 0, h, REQ_LEN);
  unsigned op = hwsock_le16_get(&h->opcode);
  req->tag = hwsock_le64_get(&h->tag);
  req->breq.arg0 = hwsock_le32_get(&h->arg0);
  req->breq.arg1 = hwsock_le32_get(&h->arg1);
  if (op < HWSOCK_OP_OPEN || op > HWSOCK_OP_MAX_ ||
      (op == HWSOCK_OP_NEGOTIATE && !dev->cfg.inband_negotiation) ||
      (op == HWSOCK_OP_CREDIT && !(dev->features & HWSOCK_F_EVENT_QUEUE))) {
    dev->counters.requests_by_op[0] += !req->again;
    return HWSOCK_ENOSYS;
  }
  req->opcode = (uint16_t)op;
  req->breq.opcode = (uint16_t)op;
  dev->counters.requests_by_op[op] += !req->again;
  return 0;
}

/* Decode, second part (not NEGOTIATE): flags, the URI's length, the socket
 * id (req->sock_id), and the URI parsed into req->addr (*has_addr).
 * Returns 0 or the status to complete with. */
static int decode_args(hwsock_device *dev, hwsock__req *req,
                       const hwsock_req_hdr *h, uint32_t *uri_len,
                       int *has_addr) {
  const hwsock__chain *c = &req->chain;
  unsigned op = req->opcode;
  uint32_t id = hwsock_le32_get(&h->sock_id);
  uint32_t n = hwsock_le32_get(&h->uri_len);
  *uri_len = n;
  *has_addr = 0;
  if (dev->cfg.inband_negotiation && !dev->negotiated)
    return HWSOCK_EPROTO;
  if (hwsock_le16_get(&h->flags) != 0 || hwsock_le32_get(&h->reserved) != 0)
    return HWSOCK_EINVAL;
  if (n > c->out_len - REQ_LEN)
    return HWSOCK_EBADMSG;
  if (n > dev->cfg.max_uri_len)
    return HWSOCK_ENAMETOOLONG;
  if (id >= dev->cfg.max_sockets)
    return HWSOCK_EBADF;
  hwsock__sock_seen(dev, id); /* OPEN may take it */
  req->sock_id = id;
  if (n == 0)
    return op == HWSOCK_OP_CONNECT || op == HWSOCK_OP_BIND ? HWSOCK_EINVAL
                                                           : 0;
  if (!takes_uri(op))
    return HWSOCK_EINVAL;
  hwsock__iov_gather(req->iov, c->n_out, REQ_LEN, dev->uri_scratch, n);
  unsigned fl = op == HWSOCK_OP_BIND ? HWSOCK_URI_ALLOW_PORT0 : 0;
  if (hwsock_uri_parse(dev->uri_scratch, n, fl, &req->addr, NULL) < 0)
    return HWSOCK_EBADURI;
  *has_addr = 1;
  return 0;
}

/* OPEN: a free id becomes an undecided socket of the scheme its family and
 * type name. Returns the status to complete with. */
static int open_sock(hwsock__sock *s, const hwsock_breq *b) {
  if (s->state != HWSOCK__S_FREE)
    return HWSOCK_EEXIST;
  int scheme = hwsock_scheme_for(b->arg0, b->arg1);
  if (scheme == HWSOCK_SCHEME_NONE)
    return b->arg0 >= HWSOCK_AF_INET && b->arg0 <= HWSOCK_AF_IPX
               ? HWSOCK_EPROTONOSUPPORT
               : HWSOCK_EAFNOSUPPORT;
  s->state = HWSOCK__S_OPEN;
  s->scheme = (uint8_t)scheme;
  s->backend = -1;
  s->rule = -1;
  return 0;
}

/* Routing of a request on an open socket (not OPEN or CLOSE): checks
 * against the socket's state, then the decision for an undecided socket,
 * the event queue's CREDIT, or the backend for an offloaded one. */
static void route(hwsock_device *dev, hwsock__req *req, hwsock__sock *s,
                  uint32_t uri_len, int has_addr) {
  unsigned op = req->opcode;
  if (s->state == HWSOCK__S_DECLINED) {
    finish(dev, req, HWSOCK_EDECLINED, 0);
    return;
  }
  if (s->state == HWSOCK__S_RESET) { /* its host socket did not survive */
    finish(dev, req, HWSOCK_ECONNRESET, 0);
    return;
  }
  req->breq.scheme = s->scheme;
  int rc = check_args(&req->breq);
  if (rc == 0 && has_addr)
    rc = addr_fits_socket(s, &req->addr);
  if (rc == 0)
    rc = prepare(dev, req, uri_len, has_addr);
  if (rc < 0) {
    finish(dev, req, rc, 0);
    return;
  }
  if (op == HWSOCK_OP_CREDIT) {
    finish(dev, req,
           hwsock__evq_credit(dev, req->sock_id, req->breq.arg0,
                              req->breq.arg1), 0);
    return;
  }
  /* Input of a socket with a receive window goes through events only. */
  if (op == HWSOCK_OP_RECV &&
      (s->window > 0 || (s->ev & HWSOCK__EV_READING))) {
    finish(dev, req, HWSOCK_EBUSY, 0);
    return;
  }

  if (s->state == HWSOCK__S_OPEN) {
    if (has_addr) {
      decide_and_submit(dev, req, s, &req->addr);
    } else if (op == HWSOCK_OP_LISTEN) {
      /* listen() without bind(): the host picks a port on the wildcard. */
      hwsock_addr any;
      memset(&any, 0, sizeof(any));
      any.scheme = s->scheme;
      any.family = (uint8_t)hwsock_scheme_family(s->scheme);
      decide_and_submit(dev, req, s, &any);
    } else if (op == HWSOCK_OP_SETSOCKOPT) {
      finish(dev, req, preset_store(s, &req->breq), 0);
    } else {
      finish(dev, req, HWSOCK_ENOTCONN, 0);
    }
    return;
  }
  /* Offloaded. An option the policy set on the host is not the guest's. */
  if (op == HWSOCK_OP_SETSOCKOPT &&
      (s->locked & hwsock__hostopt_bit(req->breq.arg0, req->breq.arg1))) {
    finish(dev, req, HWSOCK_EPERM, 0);
    return;
  }
  if (op == HWSOCK_OP_SETSOCKOPT && (rc = setopt_copy(s, req)) < 0) {
    finish(dev, req, rc, 0);
    return;
  }
  if (has_addr && (rc = recheck(dev, req, s)) < 0) {
    finish(dev, req, rc, 0);
    return;
  }
  submit(dev, req, s);
}

/* One request from the guest: decode, OPEN and CLOSE, routing. */
void hwsock__dispatch(hwsock_device *dev, hwsock__req *req) {
  hwsock_req_hdr h;
  int rc = decode_header(dev, req, &h);
  if (rc < 0) {
    finish(dev, req, rc, 0);
    return;
  }
  if (req->opcode == HWSOCK_OP_NEGOTIATE) {
    negotiate(dev, req, &h);
    return;
  }
  uint32_t uri_len;
  int has_addr;
  if ((rc = decode_args(dev, req, &h, &uri_len, &has_addr)) < 0) {
    finish(dev, req, rc, 0);
    return;
  }
  hwsock__sock *s = &dev->socks[req->sock_id];
  if (req->opcode == HWSOCK_OP_OPEN) {
    finish(dev, req, open_sock(s, &req->breq), 0);
    return;
  }
  if (s->state == HWSOCK__S_FREE || s->state == HWSOCK__S_RESERVED) {
    finish(dev, req, HWSOCK_EBADF, 0);
    return;
  }
  if (req->opcode == HWSOCK_OP_CLOSE) {
    hwsock__sock_close(dev, req->sock_id);
    finish(dev, req, 0, 0);
    return;
  }
  route(dev, req, s, uri_len, has_addr);
}
