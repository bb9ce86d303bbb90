/* --ipx-*: hwsock-vmm assigns each guest its IPX address (docs/IPX.md,
 * "hwsock-vmm").
 *
 * The ipx backend has no router and learns nothing from the network: its
 * options name the guest's network and node, its own UDP endpoint and the
 * node -> UDP endpoint of every guest it may talk to. The VMM therefore
 * hands out *slots*: slot i has node NODE_BASE + i + 1 and UDP endpoint
 * BIND:BASE + i, and its options list every other slot of this VMM plus
 * the --ipx-peer entries (guests of other VMMs). All strings are built and
 * checked once at startup; a guest takes the lowest free slot at attach
 * and gives it back when its device is gone.
 *
 * The VMM binds each claimed slot's UDP socket itself and gives it to the
 * backend (fd=): a takeover hands it to the new process with the guest,
 * and the guest's IPX sockets move with it (takeover.c). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hwsock/backend_util.h"
#include "vmm.h"

#define NODE_MAX 0xffffffffffffull /* broadcast: no guest's node */
/* "peer=" NODE "@[" IPv6 "]:" PORT and a blank */
#define PEER_WORD_MAX (5 + 12 + 2 + INET6_ADDRSTRLEN + 2 + 5 + 1)
#define OPTIONS_MAX (128 + VMM_IPX_MAX_PEERS * PEER_WORD_MAX)

typedef struct ipx_endpoint {
  uint64_t node;
  char ip[INET6_ADDRSTRLEN + 2]; /* as written in options: [v6] bracketed */
  unsigned port;
} ipx_endpoint;

struct vmm_ipx {
  unsigned nslots;
  uint32_t net;
  unsigned char used[VMM_IPX_MAX_SLOTS];
  char *options[VMM_IPX_MAX_SLOTS]; /* the backend options of each slot */
  ipx_endpoint slot[VMM_IPX_MAX_SLOTS];
  /* a claimed slot: its UDP socket (-1: the backend binds one) and the
   * options naming it */
  int fd[VMM_IPX_MAX_SLOTS];
  char *claimed[VMM_IPX_MAX_SLOTS];
};

/* Exactly `digits` (even, at most 16) hex digits of s[0..len) into *out.
 * The option parsers are hwsock/backend_util.h's, which the ipx backend
 * uses to read what this file writes. */
static int parse_hex(const char *s, size_t len, unsigned digits,
                     uint64_t *out) {
  uint8_t b[8];
  if (hwsock_parse_hex(s, len, b, digits / 2) < 0)
    return -1;
  uint64_t v = 0;
  for (unsigned i = 0; i < digits / 2; i++)
    v = v << 8 | b[i];
  *out = v;
  return 0;
}

/* The address of sa in its options form ("[::1]" for IPv6) into out.
 * Returns its family, or -1 when it is not `family` (0: either). */
static int ip_word(const struct sockaddr_storage *sa, int family, char *out,
                   size_t outlen) {
  char buf[INET6_ADDRSTRLEN];
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
  const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
  const void *addr = sa->ss_family == AF_INET6 ? (const void *)&sin6->sin6_addr
                                               : (const void *)&sin->sin_addr;
  if ((family != 0 && sa->ss_family != family) ||
      inet_ntop(sa->ss_family, addr, buf, sizeof(buf)) == NULL)
    return -1;
  snprintf(out, outlen, sa->ss_family == AF_INET6 ? "[%s]" : "%s", buf);
  return sa->ss_family;
}

/* NODE@IP:PORT or NODE@[IPv6]:PORT, IP of the bind address's family. */
static int parse_peer(const char *s, int family, ipx_endpoint *e) {
  const char *at = strchr(s, '@');
  struct sockaddr_storage sa;
  socklen_t salen;
  if (at == NULL || parse_hex(s, (size_t)(at - s), 12, &e->node) < 0 ||
      e->node == 0 || e->node == NODE_MAX ||
      hwsock_parse_endpoint(at + 1, strlen(at + 1), &sa, &salen) < 0 ||
      ip_word(&sa, family, e->ip, sizeof(e->ip)) < 0)
    return -1;
  e->port = ntohs(sa.ss_family == AF_INET6
                      ? ((const struct sockaddr_in6 *)&sa)->sin6_port
                      : ((const struct sockaddr_in *)&sa)->sin_port);
  return 0;
}

static int add_word(char *buf, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_word(char *buf, size_t *off, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *off, OPTIONS_MAX - *off, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= OPTIONS_MAX - *off)
    return -1; /* cannot happen: OPTIONS_MAX covers the most peers */
  *off += (size_t)n;
  return 0;
}

static int peer_word(char *buf, size_t *off, const ipx_endpoint *e) {
  return add_word(buf, off, " peer=%012" PRIx64 "@%s:%u", e->node, e->ip,
                  e->port);
}

/* "net=.. node=.. port=.. bind=.. peer=.." for slot i. */
static char *slot_options(const vmm_ipx *x, unsigned i,
                          const ipx_endpoint *peers, unsigned npeers) {
  char *buf = malloc(OPTIONS_MAX);
  size_t off = 0;
  if (buf == NULL)
    return NULL;
  const ipx_endpoint *me = &x->slot[i];
  int rc = add_word(buf, &off, "net=%08" PRIx32 " node=%012" PRIx64
                               " port=%u bind=%s",
                    x->net, me->node, me->port, me->ip);
  for (unsigned j = 0; rc == 0 && j < x->nslots; j++)
    if (j != i)
      rc = peer_word(buf, &off, &x->slot[j]);
  for (unsigned j = 0; rc == 0 && j < npeers; j++)
    rc = peer_word(buf, &off, &peers[j]);
  if (rc < 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

int vmm_ipx_setup(vmm *v) {
  const vmm_options *o = &v->opt;
  if (o->ipx_net == NULL)
    return 0;
  uint64_t net, base;
  if (parse_hex(o->ipx_net, strlen(o->ipx_net), 8, &net) < 0 || net == 0 ||
      net == 0xffffffffu) {
    vmm_log(HWSOCK_LOG_ERROR, "--ipx-net '%s': expected 8 hex digits, not "
            "00000000 or ffffffff", o->ipx_net);
    return -1;
  }
  unsigned nslots = o->ipx_slots;
  if (parse_hex(o->ipx_node_base, strlen(o->ipx_node_base), 12, &base) < 0 ||
      base > NODE_MAX - 1 - nslots) {
    vmm_log(HWSOCK_LOG_ERROR, "--ipx-node-base '%s': expected 12 hex digits, "
            "with room for %u nodes below ffffffffffff", o->ipx_node_base,
            nslots);
    return -1;
  }
  if (o->ipx_port + nslots - 1 > 65535) {
    vmm_log(HWSOCK_LOG_ERROR, "--ipx-port %u + %u slots passes UDP port "
            "65535", o->ipx_port, nslots);
    return -1;
  }
  if (nslots - 1 + o->ipx_npeers > VMM_IPX_MAX_PEERS) {
    vmm_log(HWSOCK_LOG_ERROR, "--ipx-slots %u with %u --ipx-peer: each guest "
            "would have %u peers, the ipx backend takes at most %u "
            "(slots - 1 + peers <= %u)", nslots, o->ipx_npeers,
            nslots - 1 + o->ipx_npeers, VMM_IPX_MAX_PEERS,
            VMM_IPX_MAX_PEERS);
    return -1;
  }
  vmm_ipx *x = calloc(1, sizeof(*x));
  if (x == NULL) {
    vmm_log(HWSOCK_LOG_ERROR, "--ipx-net: out of memory");
    return -1;
  }
  x->nslots = nslots;
  x->net = (uint32_t)net;
  for (unsigned i = 0; i < VMM_IPX_MAX_SLOTS; i++)
    x->fd[i] = -1;
  char bind_ip[INET6_ADDRSTRLEN + 2];
  struct sockaddr_storage bind_sa;
  socklen_t bind_salen;
  int family = hwsock_parse_ip(o->ipx_bind, strlen(o->ipx_bind), 0, &bind_sa,
                               &bind_salen) < 0
                   ? -1
                   : ip_word(&bind_sa, 0, bind_ip, sizeof(bind_ip));
  if (family < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "--ipx-bind '%s': not an IPv4 or IPv6 address",
            o->ipx_bind);
    goto fail;
  }
  for (unsigned i = 0; i < nslots; i++) {
    x->slot[i].node = base + i + 1;
    x->slot[i].port = o->ipx_port + i;
    memcpy(x->slot[i].ip, bind_ip, sizeof(bind_ip));
  }
  ipx_endpoint peers[VMM_IPX_MAX_PEERS];
  for (unsigned k = 0; k < o->ipx_npeers; k++) {
    ipx_endpoint *e = &peers[k];
    if (parse_peer(o->ipx_peers[k], family, e) < 0) {
      vmm_log(HWSOCK_LOG_ERROR, "--ipx-peer '%s': expected NODE@IP:PORT (12 "
              "hex digits, not all 0 or f; an %s address like --ipx-bind's, "
              "[v6] in brackets; port 1..65535)", o->ipx_peers[k],
              family == AF_INET ? "IPv4" : "IPv6");
      goto fail;
    }
    /* The backend refuses a peer with the guest's own node and two peers
     * with one node: a clash would fail some guest's attach, so say it now. */
    if (e->node > base && e->node <= base + nslots) {
      vmm_log(HWSOCK_LOG_ERROR, "--ipx-peer '%s': node %012" PRIx64 " is "
              "this VMM's slot %" PRIu64 " (--ipx-node-base %s)",
              o->ipx_peers[k], e->node, e->node - base - 1, o->ipx_node_base);
      goto fail;
    }
    for (unsigned j = 0; j < k; j++)
      if (peers[j].node == e->node) {
        vmm_log(HWSOCK_LOG_ERROR, "--ipx-peer '%s': node %012" PRIx64
                " already given by '%s'", o->ipx_peers[k], e->node,
                o->ipx_peers[j]);
        goto fail;
      }
  }
  for (unsigned i = 0; i < nslots; i++) {
    x->options[i] = slot_options(x, i, peers, o->ipx_npeers);
    if (x->options[i] == NULL) {
      vmm_log(HWSOCK_LOG_ERROR, "--ipx-net: out of memory");
      goto fail;
    }
  }
  v->ipx = x;
  vmm_log(HWSOCK_LOG_INFO, "ipx: net %08" PRIx32 ", %u slots: nodes %012"
          PRIx64 "..%012" PRIx64 ", udp %s:%u..%u, %u remote peers",
          x->net, nslots, base + 1, base + nslots, bind_ip, o->ipx_port,
          o->ipx_port + nslots - 1, o->ipx_npeers);
  return 0;
fail:
  v->ipx = x;
  vmm_ipx_free(v);
  return -1;
}

static void unclaim(vmm_ipx *x, unsigned i) {
  if (x->fd[i] >= 0)
    close(x->fd[i]);
  x->fd[i] = -1;
  free(x->claimed[i]);
  x->claimed[i] = NULL;
  x->used[i] = 0;
}

void vmm_ipx_free(vmm *v) {
  vmm_ipx *x = v->ipx;
  if (x == NULL)
    return;
  for (unsigned i = 0; i < VMM_IPX_MAX_SLOTS; i++) {
    if (x->used[i])
      unclaim(x, i);
    free(x->options[i]);
  }
  free(x);
  v->ipx = NULL;
}

/* The slot's UDP socket, bound to its endpoint; -1 when that fails (the
 * backend then tries and says why). */
static int slot_socket(const vmm_ipx *x, unsigned i) {
  const ipx_endpoint *e = &x->slot[i];
  struct sockaddr_storage sa;
  socklen_t sl;
  if (hwsock_parse_ip(e->ip, strlen(e->ip), (uint16_t)e->port, &sa, &sl) < 0)
    return -1;
  int fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  IPPROTO_UDP);
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sl) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* Slot i is the guest's, on fd (-1: a new socket). 0, or -1. */
static int claim(vmm_ipx *x, unsigned i, int fd) {
  if (fd < 0)
    fd = slot_socket(x, i);
  size_t n = strlen(x->options[i]) + 16;
  x->claimed[i] = fd >= 0 ? malloc(n) : NULL;
  if (fd >= 0 && x->claimed[i] == NULL) {
    close(fd);
    return -1;
  }
  if (fd >= 0)
    snprintf(x->claimed[i], n, "%s fd=%d", x->options[i], fd);
  x->fd[i] = fd;
  x->used[i] = 1;
  return 0;
}

int vmm_ipx_claim(vmm *v) {
  vmm_ipx *x = v->ipx;
  if (x == NULL)
    return -1;
  for (unsigned i = 0; i < x->nslots; i++)
    if (!x->used[i])
      return claim(x, i, -1) == 0 ? (int)i : -1;
  return -1;
}

int vmm_ipx_claim_slot(vmm *v, int slot, int fd) {
  vmm_ipx *x = v->ipx;
  if (x == NULL || slot < 0 || (unsigned)slot >= x->nslots ||
      x->used[slot] || fd < 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return claim(x, (unsigned)slot, fd);
}

int vmm_ipx_fd(const vmm *v, int slot) {
  const vmm_ipx *x = v->ipx;
  if (x == NULL || slot < 0 || (unsigned)slot >= x->nslots || !x->used[slot])
    return -1;
  return x->fd[slot];
}

const char *vmm_ipx_options(const vmm *v, int slot) {
  const vmm_ipx *x = v->ipx;
  if (x == NULL || slot < 0 || (unsigned)slot >= x->nslots)
    return NULL;
  return x->claimed[slot] != NULL ? x->claimed[slot] : x->options[slot];
}

void vmm_ipx_describe(const vmm *v, int slot, char *buf, size_t len) {
  const vmm_ipx *x = v->ipx;
  if (x == NULL || slot < 0 || (unsigned)slot >= x->nslots) {
    snprintf(buf, len, "none");
    return;
  }
  const ipx_endpoint *e = &x->slot[slot];
  snprintf(buf, len, "slot %d: net %08" PRIx32 " node %012" PRIx64
           " udp %s:%u", slot, x->net, e->node, e->ip, e->port);
}

void vmm_ipx_release(vmm *v, int slot) {
  vmm_ipx *x = v->ipx;
  if (x != NULL && slot >= 0 && (unsigned)slot < x->nslots && x->used[slot])
    unclaim(x, (unsigned)slot);
}
