/* hwsock_uri_parse: uriparser splits the URI (RFC 3986), then every part is
 * held to our own strict grammar (docs/ADDRESSES.md), with one precise
 * message per rule broken.
 *
 * Two accepted input forms are not host+port URIs to uriparser 0.9.7, so
 * they are checked here and turned into ones it parses:
 *  - a zone id inside brackets, [fe80::1%25eth0] (RFC 6874, which 0.9.7
 *    does not know): checked, copied out, and cut from the text;
 *  - the original RFC's unbracketed tcp6://2001:db8::1/443: rewritten as
 *    tcp6://[2001:db8::1]:443.
 * Everything else goes to uriparser as the guest sent it. */
#include <arpa/inet.h>
#include <string.h>
#include <uriparser/Uri.h>

#include "hwsock/backend_util.h" /* hwsock_hex_digit */
#include "hwsock/uri.h"
#include "hwsock/wire.h"

/* The input plus the two characters the RFC form gains ("[" and "]:"). */
#define TEXT_MAX (HWSOCK_URI_MAX + 2)

typedef struct parse_state {
  char text[TEXT_MAX + 1];
  size_t len;
  int scheme;
  unsigned family;
  size_t auth; /* offset of the authority, just after "//" */
  /* offsets of the brackets around the host, after any zone was cut out;
   * lb == 0 when there are none (offset 0 is always the scheme) */
  size_t lb, rb;
} parse_state;

static const char msg_ipv4_in_v6[] =
    "IPv4 address in an IPv6 scheme (use tcp/udp, or ::ffff:a.b.c.d)";
static const char msg_bad_ipv6[] = "malformed IPv6 address";
static const char msg_userinfo[] = "user-info (user@) is not allowed";
static const char msg_path[] = "path is not allowed";
static const char msg_query[] = "query (?...) is not allowed";
static const char msg_fragment[] = "fragment (#...) is not allowed";

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static size_t count_char(const char *p, size_t n, char c) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += p[i] == c;
  return k;
}

/* Digits and dots with at least one dot: someone wrote an IPv4 address. */
static int looks_ipv4(const char *p, size_t n) {
  int dot = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '.')
      dot = 1;
    else if (!is_digit(p[i]))
      return 0;
  }
  return dot;
}

/* Port (or nothing else) as decimal text: 1..65535, no leading zero, 0 only
 * with HWSOCK_URI_ALLOW_PORT0. */
static const char *check_port(const char *p, size_t n, unsigned flags,
                              uint16_t *port) {
  unsigned long v = 0;
  if (n == 0)
    return "empty port";
  for (size_t i = 0; i < n; i++)
    if (!is_digit(p[i]))
      return "port must be decimal digits";
  if (n > 1 && p[0] == '0')
    return "port with a leading zero";
  if (n > 5)
    return "port out of range (1..65535)";
  for (size_t i = 0; i < n; i++)
    v = v * 10 + (unsigned long)(p[i] - '0');
  if (v > 65535)
    return "port out of range (1..65535)";
  if (v == 0 && !(flags & HWSOCK_URI_ALLOW_PORT0))
    return "port 0 needs HWSOCK_URI_ALLOW_PORT0";
  *port = (uint16_t)v;
  return NULL;
}

/* Exactly four decimal octets 0..255 without leading zeros. uriparser would
 * take most other forms as a host name; this says which form it was. */
static const char *check_ipv4(const char *p, size_t n, uint8_t out[4]) {
  size_t dots, start = 0;
  int k = 0;
  if (n == 0)
    return "missing host";
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (is_digit(c) || c == '.')
      continue;
    if ((c == 'x' || c == 'X') && i > 0 && p[i - 1] == '0' &&
        (i == 1 || p[i - 2] == '.'))
      return "hexadecimal IPv4 form (0x...) is not allowed";
    if (c == '%')
      return "percent-encoding is not allowed in the host";
    return "host names are not allowed: IPv4 dotted quad only";
  }
  dots = count_char(p, n, '.');
  if (dots == 0)
    return "integer IPv4 form is not allowed: use four dotted octets";
  for (size_t i = 0; i <= n; i++) {
    if (i < n && p[i] != '.')
      continue;
    if (i == start)
      return "empty IPv4 octet";
    start = i + 1;
  }
  if (dots < 3)
    return "short IPv4 form (fewer than four octets) is not allowed";
  if (dots > 3)
    return "IPv4 address with more than four octets";
  start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && p[i] != '.')
      continue;
    size_t len = i - start;
    unsigned v = 0;
    if (len > 1 && p[start] == '0')
      return "IPv4 octet with a leading zero (octal forms are not allowed)";
    if (len > 3)
      return "IPv4 octet out of range (0..255)";
    for (size_t j = start; j < i; j++)
      v = v * 10 + (unsigned)(p[j] - '0');
    if (v > 255)
      return "IPv4 octet out of range (0..255)";
    out[k++] = (uint8_t)v;
    start = i + 1;
  }
  return NULL;
}

/* network.node.socket, 8.12.4 hex digits, any case. */
static const char *check_ipx(const char *p, size_t n, unsigned flags,
                             hwsock_addr *a) {
  const char *d1 = memchr(p, '.', n), *d2, *end = p + n;
  unsigned sock = 0;
  if (n == 0)
    return "missing host";
  if (d1 == NULL ||
      (d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1))) == NULL ||
      memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
    return "IPX address must be network.node.socket (8.12.4 hex digits)";
  if (d1 - p != 8)
    return "IPX network must be exactly 8 hex digits";
  if (d2 - d1 - 1 != 12)
    return "IPX node must be exactly 12 hex digits";
  if (end - d2 - 1 != 4)
    return "IPX socket must be exactly 4 hex digits";
  for (const char *q = p; q < end; q++)
    if (q != d1 && q != d2 && hwsock_hex_digit(*q) < 0)
      return "IPX address holds a character that is not a hex digit";
  for (int i = 0; i < 4; i++)
    a->u.ipx.net[i] = (uint8_t)(hwsock_hex_digit(p[2 * i]) << 4 |
                                hwsock_hex_digit(p[2 * i + 1]));
  for (int i = 0; i < 6; i++)
    a->u.ipx.node[i] = (uint8_t)(hwsock_hex_digit(d1[1 + 2 * i]) << 4 |
                                 hwsock_hex_digit(d1[2 + 2 * i]));
  for (int i = 0; i < 4; i++)
    sock = sock << 4 | (unsigned)hwsock_hex_digit(d2[1 + i]);
  if (sock == 0 && !(flags & HWSOCK_URI_ALLOW_PORT0))
    return "IPX socket 0 needs HWSOCK_URI_ALLOW_PORT0";
  a->port = (uint16_t)sock;
  return NULL;
}

static const char *check_scheme(parse_state *st) {
  const char *colon = memchr(st->text, ':', st->len);
  size_t n = colon ? (size_t)(colon - st->text) : 0;
  int lower_match = 0;
  if (n == 0)
    return "missing scheme (tcp://, udp://, tcp6://, udp6:// or ipx://)";
  for (int s = HWSOCK_SCHEME_TCP; s <= HWSOCK_SCHEME_IPX; s++) {
    const char *name = hwsock_scheme_name(s);
    size_t i = 0;
    if (strlen(name) != n)
      continue;
    if (memcmp(name, st->text, n) == 0) {
      st->scheme = s;
      break;
    }
    while (i < n && ascii_lower(st->text[i]) == name[i])
      i++;
    lower_match |= i == n;
  }
  if (st->scheme == HWSOCK_SCHEME_NONE)
    return lower_match
               ? "scheme must be lowercase (tcp, udp, tcp6, udp6, ipx)"
               : "unknown scheme (expected tcp, udp, tcp6, udp6 or ipx)";
  st->family = hwsock_scheme_family(st->scheme);
  if (st->len < n + 3 || colon[1] != '/' || colon[2] != '/')
    return "missing \"//\" after the scheme";
  st->auth = n + 3;
  return NULL;
}

/* Offset where the authority ends (first '/', '?' or '#', or the end). */
static size_t authority_end(const parse_state *st) {
  size_t i = st->auth;
  while (i < st->len && st->text[i] != '/' && st->text[i] != '?' &&
         st->text[i] != '#')
    i++;
  return i;
}

/* [addr%25zone]: checks the zone, copies it to a->zone and cuts "%25zone"
 * out of the text; then a first look at what is left in the brackets. */
static const char *take_brackets(parse_state *st, size_t lb, size_t rb,
                                 hwsock_addr *a) {
  char *t = st->text;
  char *pct = memchr(t + lb + 1, '%', rb - lb - 1);
  if (st->family != HWSOCK_AF_INET6)
    return "brackets (IP literals) are only for tcp6 and udp6";
  if (rb >= authority_end(st) || lb < st->auth)
    return "brackets are only allowed around the host";
  if (pct != NULL) {
    size_t p = (size_t)(pct - t), zlen;
    if (rb - p < 3 || pct[1] != '2' || pct[2] != '5')
      return "zone id must be percent-encoded as %25 (RFC 6874)";
    zlen = rb - p - 3;
    if (zlen == 0)
      return "empty zone id";
    if (zlen > HWSOCK_ZONE_MAX)
      return "zone id longer than HWSOCK_ZONE_MAX (15) characters";
    for (size_t i = p + 3; i < rb; i++) {
      char c = t[i];
      if (!is_digit(c) && !(ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z') &&
          c != '.' && c != '_' && c != '-')
        return "zone id may hold only A-Z a-z 0-9 . _ -";
    }
    memcpy(a->zone, pct + 3, zlen);
    a->zone[zlen] = '\0';
    memmove(pct, t + rb, st->len - rb + 1); /* with the terminator */
    st->len -= rb - p;
    rb = p;
  }
  if (rb == lb + 1)
    return "empty IPv6 address";
  if (looks_ipv4(t + lb + 1, rb - lb - 1))
    return msg_ipv4_in_v6;
  st->lb = lb;
  st->rb = rb;
  return NULL;
}

/* tcp6://2001:db8::1/443 (no brackets): checked strictly, then rewritten as
 * tcp6://[2001:db8::1]:443 so that uriparser parses the address. */
static const char *take_rfc_form(parse_state *st, unsigned flags) {
  char *t = st->text;
  size_t end = authority_end(st), hlen = end - st->auth, colons;
  const char *host = t + st->auth, *port = t + end + 1;
  size_t plen = st->len - end - 1;
  uint16_t dummy;
  const char *msg;
  if (hlen == 0)
    return "missing host";
  if (memchr(host, '@', hlen) != NULL)
    return msg_userinfo;
  colons = count_char(host, hlen, ':');
  if (colons < 2) {
    const char *c = memchr(host, ':', hlen);
    if (looks_ipv4(host, c ? (size_t)(c - host) : hlen))
      return msg_ipv4_in_v6;
    return "IPv6 address must be in brackets: tcp6://[addr]:port";
  }
  if (memchr(host, '%', hlen) != NULL)
    return "zone id needs the bracketed form [addr%25zone]";
  if (end == st->len)
    return "IPv6 address without brackets must be followed by /port";
  if (t[end] == '?')
    return msg_query;
  if (t[end] == '#')
    return msg_fragment;
  for (size_t i = 0; i < plen; i++) {
    if (port[i] == '/')
      return msg_path;
    if (port[i] == '?')
      return msg_query;
    if (port[i] == '#')
      return msg_fragment;
  }
  if ((msg = check_port(port, plen, flags, &dummy)) != NULL)
    return msg;
  /* "host/port" -> "[host]:port": the port moves right by 2, the host by 1
   * (TEXT_MAX has room for the 2) */
  memmove(t + end + 3, port, plen);
  t[end + 2] = ':';
  t[end + 1] = ']';
  memmove(t + st->auth + 1, host, hlen);
  t[st->auth] = '[';
  st->len += 2;
  t[st->len] = '\0';
  st->lb = st->auth;
  st->rb = end + 1;
  return NULL;
}

static size_t range_len(const UriTextRangeA *r) {
  return (size_t)(r->afterLast - r->first);
}

/* The parts uriparser found, held to our grammar. */
static const char *check_parts(const parse_state *st, const UriUriA *u,
                               unsigned flags, hwsock_addr *a) {
  const char *host = u->hostText.first, *msg;
  size_t hlen;
  if (u->scheme.first == NULL ||
      range_len(&u->scheme) != strlen(hwsock_scheme_name(st->scheme)))
    return "unknown scheme (expected tcp, udp, tcp6, udp6 or ipx)";
  if (host == NULL)
    return "missing \"//\" after the scheme";
  hlen = range_len(&u->hostText);
  if (u->userInfo.first != NULL)
    return msg_userinfo;
  if (u->pathHead != NULL || u->absolutePath)
    return msg_path;
  if (u->query.first != NULL)
    return msg_query;
  if (u->fragment.first != NULL)
    return msg_fragment;

  switch (st->family) {
  case HWSOCK_AF_INET:
    if ((msg = check_ipv4(host, hlen, a->u.v4)) != NULL)
      return msg;
    /* our check and uriparser's RFC 3986 IPv4address must agree */
    if (u->hostData.ip4 == NULL || memcmp(u->hostData.ip4->data, a->u.v4, 4))
      return "IPv4 address not accepted by the URI parser";
    break;
  case HWSOCK_AF_INET6: {
    char buf[64];
    uint8_t check[16];
    if (u->hostData.ipFuture.first != NULL)
      return "IPvFuture literals ([v1.x]) are not supported";
    if (u->hostData.ip6 == NULL || hlen >= sizeof(buf))
      return msg_bad_ipv6;
    /* second opinion from the host's parser: both must give these bytes */
    memcpy(buf, host, hlen);
    buf[hlen] = '\0';
    if (inet_pton(AF_INET6, buf, check) != 1 ||
        memcmp(check, u->hostData.ip6->data, 16) != 0)
      return msg_bad_ipv6;
    memcpy(a->u.v6, check, 16);
    break;
  }
  default: /* HWSOCK_AF_IPX */
    if (u->portText.first != NULL)
      return "ipx takes no port: the socket number is the third field";
    return check_ipx(host, hlen, flags, a);
  }
  if (u->portText.first == NULL)
    return "missing port (required for tcp, udp, tcp6 and udp6)";
  return check_port(u->portText.first, range_len(&u->portText), flags,
                    &a->port);
}

/* Everything before uriparser sees the text: the bytes, the scheme, and
 * the two forms it cannot parse (zone ids, the unbracketed IPv6 form). */
static const char *prepare(parse_state *st, const char *uri, size_t len,
                           unsigned flags, hwsock_addr *a) {
  const char *lb, *rb, *msg;
  size_t open;

  if (len == 0)
    return "empty URI";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)uri[i];
    if (c == 0)
      return "NUL byte inside the URI";
    if (c <= 0x20 || c >= 0x7f)
      return "space, control character or non-ASCII byte in the URI";
  }
  memset(st, 0, sizeof(*st));
  memcpy(st->text, uri, len);
  st->len = len;
  if ((msg = check_scheme(st)) != NULL)
    return msg;
  a->scheme = (uint8_t)st->scheme;
  a->family = (uint8_t)st->family;

  lb = memchr(st->text, '[', st->len);
  rb = memchr(st->text, ']', st->len);
  open = count_char(st->text, st->len, '[');
  if (open != count_char(st->text, st->len, ']') || (lb != NULL && rb < lb))
    return "unbalanced brackets";
  if (open > 1)
    return "more than one pair of brackets";
  if (lb != NULL)
    return take_brackets(st, (size_t)(lb - st->text), (size_t)(rb - st->text),
                         a);
  if (st->family == HWSOCK_AF_INET6)
    return take_rfc_form(st, flags);
  return NULL;
}

static int parse(const char *uri, size_t len, unsigned flags, hwsock_addr *a,
                 const char **why) {
  parse_state st;
  UriUriA u;
  const char *err_pos = NULL;
  int rc;

  if ((*why = prepare(&st, uri, len, flags, a)) != NULL)
    return HWSOCK_EBADURI;
  rc = uriParseSingleUriExA(&u, st.text, st.text + st.len, &err_pos);
  if (rc == URI_ERROR_MALLOC) {
    *why = "out of memory";
    return HWSOCK_ENOMEM;
  }
  if (rc != URI_SUCCESS) {
    /* uriparser frees its own members on failure */
    size_t at = err_pos ? (size_t)(err_pos - st.text) : st.len + 1;
    *why = (st.lb != 0 && at > st.lb && at <= st.rb)
               ? msg_bad_ipv6
               : "not a valid URI (RFC 3986 syntax error)";
    return HWSOCK_EBADURI;
  }
  *why = check_parts(&st, &u, flags, a);
  uriFreeUriMembersA(&u);
  return *why ? HWSOCK_EBADURI : 0;
}

int hwsock_uri_parse(const char *uri, size_t len, unsigned flags,
                     hwsock_addr *out, const char **why) {
  const char *msg = NULL;
  hwsock_addr a;
  int rc;

  if (out == NULL || (uri == NULL && len > 0)) {
    msg = "no URI or no place for the result";
    rc = HWSOCK_EINVAL;
  } else if (len > HWSOCK_URI_MAX) {
    msg = "URI longer than HWSOCK_URI_MAX (128) bytes";
    rc = HWSOCK_ENAMETOOLONG;
  } else {
    memset(&a, 0, sizeof(a)); /* zone and unused bytes: zero, comparable */
    rc = parse(uri, len, flags, &a, &msg);
    if (rc == 0)
      *out = a;
  }
  if (why != NULL)
    *why = msg;
  return rc;
}
