/* Restore (snapshot.c): a listener, a bound stream socket or a datagram
 * socket gets its host socket again, on the address it had (docs/
 * EMBEDDING.md §11). Its state there is an address, so a new host socket
 * of the restoring device's backend, bound (and listening, or connected
 * for a connected datagram socket) where the old one was, continues it:
 * the guest's id, scheme and options stay.
 *
 * The restoring device's policy decides again, as for a guest's BIND (and
 * CONNECT for a datagram socket's peer): the destination host's policy may
 * differ. The steps are ordinary backend requests (BIND, LISTEN, CONNECT)
 * that the device makes itself, on its stack: a backend completes them in
 * submit() (they are single system calls); one that does not is treated
 * as a failure (the socket is closed, which cancels the step). */
#include <string.h>
#include <sys/socket.h> /* SOMAXCONN */
#include <time.h>

#include "device_int.h"

/* One step the device makes itself. req is first: complete() finds the
 * rest (hwsock__backend_complete hands it to hwsock__snap_step_done). */
typedef struct step {
  hwsock__req req;
  int done, status;
} step;

void hwsock__snap_step_done(hwsock__req *req, int status) {
  step *st = (step *)req;
  st->done = 1;
  st->status = status;
}

/* 0 when the restoring device's policy offloads addr to the backend *bi
 * (with *v its verdict), else the refusal. */
static int decide(hwsock_device *dev, uint32_t id, const hwsock_addr *addr,
                  int dir, int op, hwsock_verdict *v, int *bi) {
  const hwsock__sock *s = &dev->socks[id];
  hwsock_addr eff;
  const char *why = NULL;
  int rc = hwsock_policy_effective_addr(addr, dir,
                                        s->bound ? HWSOCK_POLICY_BOUND : 0,
                                        &eff, &why);
  if (rc < 0)
    return rc;
  hwsock_policy_decide(dev->policy, &eff, dir, op, v);
  if (v->action != HWSOCK_ACTION_OFFLOAD)
    return v->action == HWSOCK_ACTION_DENY && v->error < 0 ? v->error
                                                           : HWSOCK_EACCES;
  const char *sname = hwsock_scheme_name(s->scheme);
  for (unsigned i = 0; i < dev->nbackends; i++) {
    const hwsock_backend_desc *d = dev->backends[i].desc;
    if (v->backend != NULL) {
      if (strcmp(d->name, v->backend) == 0)
        return *bi = (int)i, 0;
      continue;
    }
    for (const char *const *n = d->schemes; n != NULL && *n != NULL; n++)
      if (sname != NULL && strcmp(*n, sname) == 0)
        return *bi = (int)i, 0;
  }
  return v->backend != NULL ? HWSOCK_ENOENT : HWSOCK_EAFNOSUPPORT;
}

/* Runs one request on the socket's new host socket (a SETSOCKOPT of opt,
 * else NULL); its status. */
static int run_step(hwsock_device *dev, uint32_t id, unsigned op,
                    const hwsock_addr *addr, uint32_t arg0,
                    const hwsock_bsockopt *opt) {
  hwsock__sock *s = &dev->socks[id];
  step st;
  memset(&st, 0, sizeof(st));
  hwsock__req *r = &st.req;
  r->dev = dev;
  r->own = 1;
  r->sock_id = id;
  r->opcode = (uint16_t)op;
  r->breq.size = sizeof(r->breq);
  r->breq.opcode = (uint16_t)op;
  r->breq.scheme = s->scheme;
  r->breq.arg0 = arg0;
  r->breq.addr = addr;
  struct iovec v;
  if (opt != NULL) {
    v.iov_base = (void *)opt->val; /* read only: a SETSOCKOPT's data */
    v.iov_len = opt->len;
    r->breq.arg0 = opt->level;
    r->breq.arg1 = opt->name;
    r->breq.iov = &v;
    r->breq.iovcnt = 1;
    r->breq.iov_len = opt->len;
  }
  s->inflight++;
  dev->backends[s->backend].desc->ops->submit(s->bsock, &r->breq);
  if (!st.done) {
    /* close() completes it (ECANCELED) before returning: st is free */
    void *bsock = s->bsock;
    s->bsock = NULL;
    dev->backends[s->backend].desc->ops->close(bsock);
    return HWSOCK_EINPROGRESS;
  }
  return st.status;
}

/* 0.0.0.0:0 or [::]:0: the socket was never bound (the kernel binds it at
 * its first send): no BIND to repeat. */
static int unbound(const hwsock_addr *a) {
  static const uint8_t zero[16];
  return a->port == 0 &&
         ((a->family == HWSOCK_AF_INET && memcmp(a->u.v4, zero, 4) == 0) ||
          (a->family == HWSOCK_AF_INET6 && memcmp(a->u.v6, zero, 16) == 0));
}

int hwsock__snap_recreate(hwsock_device *dev, uint32_t id,
                          const hwsock_addr *local, const hwsock_addr *peer,
                          int listener) {
  hwsock__sock *s = &dev->socks[id];
  hwsock_verdict v;
  int bi = -1;
  int rc = decide(dev, id, local, HWSOCK_DIR_INBOUND,
                  listener ? HWSOCK_OP_LISTEN : HWSOCK_OP_BIND, &v, &bi);
  hwsock_verdict pv;
  int pbi = -1;
  if (rc == 0 && peer != NULL &&
      (rc = decide(dev, id, peer, HWSOCK_DIR_OUTBOUND, HWSOCK_OP_CONNECT, &pv,
                   &pbi)) == 0 &&
      pbi != bi)
    rc = HWSOCK_EACCES; /* the peer would need another backend */
  if (rc < 0)
    return rc;
  hwsock_bopen params;
  memset(&params, 0, sizeof(params));
  params.size = sizeof(params);
  params.scheme = s->scheme;
  params.reason = v.reason ? v.reason : "";
  params.set = v.set;
  /* The guest's options, SO_REUSEADDR among them: a server that set it
   * binds again past its old connections' TIME_WAIT, one that did not
   * fails as its own restart on the host would. open() takes as many as
   * a backend is promised at most (the first ones: those set before the
   * decision, and options set after it as long as there is room); the
   * rest are SETSOCKOPTs once the socket is where it was. */
  uint32_t nopt = s->preset != NULL ? s->preset->n : 0;
  if (nopt > 0) {
    params.preset = s->preset->opt;
    params.npreset = nopt < HWSOCK_BPRESET_MAX ? nopt : HWSOCK_BPRESET_MAX;
  }
  if ((rc = hwsock__quota_take(dev)) < 0)
    return rc;
  void *bsock = NULL;
  rc = dev->backends[bi].desc->ops->open(dev->backends[bi].instance, &params,
                                         &bsock);
  if (rc < 0) {
    hwsock__quota_put(dev);
    return rc;
  }
  s->state = HWSOCK__S_OFFLOADED;
  s->backend = (int16_t)bi;
  s->bsock = bsock;
  s->quota = 1;
  if (!unbound(local))
    rc = run_step(dev, id, HWSOCK_OP_BIND, local, 0, NULL);
  if (rc == 0 && listener)
    rc = run_step(dev, id, HWSOCK_OP_LISTEN, NULL, SOMAXCONN, NULL);
  if (rc == 0 && peer != NULL)
    rc = run_step(dev, id, HWSOCK_OP_CONNECT, peer, 0, NULL);
  /* the policy's set: wins over the guest's options, as in open() */
  uint32_t locked = params.set ? params.set->mask : 0;
  for (uint32_t k = HWSOCK_BPRESET_MAX; rc == 0 && k < nopt; k++) {
    const hwsock_bsockopt *o = &s->preset->opt[k];
    if (!(locked & hwsock__hostopt_bit(o->level, o->name)))
      rc = run_step(dev, id, HWSOCK_OP_SETSOCKOPT, NULL, 0, o);
  }
  if (rc < 0) {
    if (s->bsock != NULL)
      dev->backends[bi].desc->ops->close(s->bsock);
    s->bsock = NULL;
    s->backend = -1;
    s->state = HWSOCK__S_OPEN; /* the caller says what it becomes */
    s->quota = 0;
    hwsock__quota_put(dev);
    return rc;
  }
  s->rule = v.rule;
  s->rule_line = v.line;
  s->locked = locked;
  s->ss = listener        ? HWSOCK_SS_LISTEN
          : peer != NULL  ? HWSOCK_SS_ESTAB
                          : HWSOCK_SS_UNCONN;
  if (peer != NULL) {
    s->remote = *peer;
    s->has_remote = 1;
  }
  s->created_ns = hwsock__now_ns(CLOCK_REALTIME);
  return 0;
}
