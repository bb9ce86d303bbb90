/* ipx backend: the options string, "key=value" words separated by blanks:
 *
 *   net=0000cafe            this guest's IPX network (8 hex digits), required
 *   node=02005e0001a2       this guest's IPX node (12 hex digits), required
 *   port=213                UDP port of the shared socket (default 213)
 *   bind=127.0.0.1          its IP address, IPv4 or IPv6 (default 0.0.0.0)
 *   peer=NODE@IP:PORT       another guest's node and its VMM's UDP endpoint
 *                           ([v6]:PORT for IPv6); repeatable, at most 64
 *   fd=N                    the shared socket, a UDP socket the VMM bound to
 *                           bind:port (the instance uses a duplicate): it
 *                           outlives the instance, so that a VMM can hand
 *                           it to a new process (docs/IPX.md)
 *
 * The VMM assigns network and node; nothing here comes from the guest. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hwsock/backend_util.h"
#include "hwsock/common.h"
#include "ipx_int.h"

#define WORD_MAX 128 /* longest key=value word */

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return HWSOCK_EBADCONFIG;
}

static int is_fill(const uint8_t *p, size_t n, uint8_t v) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v)
      return 0;
  return 1;
}

/* NODE@IP:PORT or NODE@[IPv6]:PORT */
static int parse_peer(const char *v, size_t len, ipx_peer *p) {
  const char *at = memchr(v, '@', len);
  if (at == NULL || hwsock_parse_hex(v, (size_t)(at - v), p->node, 6) < 0)
    return -1;
  const char *ep = at + 1;
  return hwsock_parse_endpoint(ep, len - (size_t)(ep - v), &p->sa, &p->salen)
             < 0 ? -1 : 0;
}

int hwsock__ipx_parse_options(const char *options, ipx_config *cfg, char *err,
                              size_t errlen) {
  int have_net = 0, have_node = 0;
  uint16_t port = IPX_DEFAULT_PORT;
  const char *bind_ip = "0.0.0.0";
  size_t bind_len = 7;
  const char *s = options ? options : "";

  memset(cfg, 0, sizeof(*cfg));
  cfg->fd = -1;
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\n')
      s++;
    if (*s == '\0')
      break;
    const char *w = s;
    while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\n')
      s++;
    size_t wlen = (size_t)(s - w);
    const char *eq = memchr(w, '=', wlen);
    if (wlen > WORD_MAX || eq == NULL)
      return bad(err, errlen, "ipx: option '%.*s' is not key=value",
                 (int)(wlen > 40 ? 40 : wlen), w);
    size_t klen = (size_t)(eq - w);
    const char *v = eq + 1;
    size_t vlen = wlen - klen - 1;
#define KEY(name) (klen == sizeof(name) - 1 && memcmp(w, name, klen) == 0)
    if (KEY("net")) {
      if (hwsock_parse_hex(v, vlen, cfg->net, 4) < 0)
        return bad(err, errlen, "ipx: net must be 8 hex digits");
      have_net = 1;
    } else if (KEY("node")) {
      if (hwsock_parse_hex(v, vlen, cfg->node, 6) < 0)
        return bad(err, errlen, "ipx: node must be 12 hex digits");
      have_node = 1;
    } else if (KEY("port")) {
      if (hwsock_parse_port(v, vlen, &port) < 0)
        return bad(err, errlen, "ipx: port must be 1..65535");
    } else if (KEY("bind")) {
      bind_ip = v;
      bind_len = vlen;
    } else if (KEY("fd")) {
      long fd = 0;
      for (size_t i = 0; i < vlen && fd <= INT_MAX; i++)
        fd = v[i] >= '0' && v[i] <= '9' ? fd * 10 + (v[i] - '0') : LONG_MAX;
      if (vlen == 0 || vlen > 10 || fd > INT_MAX)
        return bad(err, errlen, "ipx: fd must be a descriptor number");
      cfg->fd = (int)fd;
    } else if (KEY("peer")) {
      if (cfg->npeers == IPX_MAX_PEERS)
        return bad(err, errlen, "ipx: more than %u peers", IPX_MAX_PEERS);
      ipx_peer *p = &cfg->peers[cfg->npeers];
      if (parse_peer(v, vlen, p) < 0)
        return bad(err, errlen,
                   "ipx: peer '%.*s' is not NODE@IP:PORT (12 hex digits, "
                   "[v6] in brackets, port 1..65535)",
                   (int)(vlen > 60 ? 60 : vlen), v);
      cfg->npeers++;
    } else {
      return bad(err, errlen, "ipx: unknown option '%.*s'",
                 (int)(klen > 20 ? 20 : klen), w);
    }
#undef KEY
  }
  if (!have_net || !have_node)
    return bad(err, errlen, "ipx: options need net= and node=");
  if (is_fill(cfg->net, 4, 0) || is_fill(cfg->net, 4, 0xff))
    return bad(err, errlen, "ipx: net 00000000 and ffffffff are reserved");
  if (is_fill(cfg->node, 6, 0) || is_fill(cfg->node, 6, 0xff))
    return bad(err, errlen, "ipx: node 000000000000 and ffffffffffff are "
                            "reserved");
  if (hwsock_parse_ip(bind_ip, bind_len, port, &cfg->bind, &cfg->bind_len) < 0)
    return bad(err, errlen, "ipx: bind must be an IPv4 or IPv6 address");
  for (unsigned i = 0; i < cfg->npeers; i++) {
    const ipx_peer *p = &cfg->peers[i];
    if (is_fill(p->node, 6, 0) || is_fill(p->node, 6, 0xff) ||
        memcmp(p->node, cfg->node, 6) == 0)
      return bad(err, errlen, "ipx: peer %u has a reserved node or this "
                              "guest's own", i + 1);
    if (p->sa.ss_family != cfg->bind.ss_family)
      return bad(err, errlen, "ipx: peer %u is not of bind's address family",
                 i + 1);
    for (unsigned j = 0; j < i; j++)
      if (memcmp(cfg->peers[j].node, p->node, 6) == 0)
        return bad(err, errlen, "ipx: peers %u and %u have the same node",
                   j + 1, i + 1);
  }
  return 0;
}
