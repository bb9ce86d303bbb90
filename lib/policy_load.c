/* Policy loader: YAML (libyaml's event parser) -> struct hwsock_policy.
 *
 * The loader is a recursive descent over libyaml events that follows the
 * schema of docs/POLICY.md exactly: at every point it knows which event may
 * come next and refuses anything else at once, with the event's position.
 * So nesting never goes deeper than the schema's four levels (policy ->
 * rules -> rule -> list) before an error stops the parse, every key is
 * checked against the known ones, and every list is bounded while it is
 * read. Aliases, anchors and tags are refused: a policy is plain data. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hwsock/uri.h"
#include "hwsock/wire.h"
#include "policy_int.h"

typedef struct loader {
  yaml_parser_t parser;
  yaml_event_t ev; /* the current event when have_ev */
  int have_ev;
  const char *name;
  const char *input;
  size_t input_len;
  char *errbuf;
  size_t errlen;
  int err; /* first failure: HWSOCK_EBADCONFIG or HWSOCK_ENOMEM */
  hwsock_policy *p;
  unsigned rules_cap;
  /* scratch for the list being read; copied to its exact size after */
  unsigned n_items;
  hwsock__net nets[HWSOCK_POLICY_MAX_LIST];
  hwsock__ports ports[HWSOCK_POLICY_MAX_LIST];
} loader;

__attribute__((format(printf, 3, 4))) static int
fail_at(loader *l, yaml_mark_t m, const char *fmt, ...) {
  if (l->err)
    return -1; /* keep the first message */
  l->err = HWSOCK_EBADCONFIG;
  if (l->errbuf != NULL && l->errlen > 0) {
    int n = snprintf(l->errbuf, l->errlen, "%s:%zu:%zu: ", l->name,
                     m.line + 1, m.column + 1);
    if (n >= 0 && (size_t)n < l->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(l->errbuf + n, l->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return -1;
}

static int nomem(loader *l) {
  if (!l->err) {
    l->err = HWSOCK_ENOMEM;
    if (l->errbuf != NULL && l->errlen > 0)
      snprintf(l->errbuf, l->errlen, "%s: out of memory", l->name);
  }
  return -1;
}

/* libyaml's own message, at its position. */
static int parser_error(loader *l) {
  const yaml_parser_t *ps = &l->parser;
  const char *problem = ps->problem ? ps->problem : "syntax error";
  yaml_mark_t m = ps->problem_mark;

  if (ps->error == YAML_MEMORY_ERROR)
    return nomem(l);
  if (ps->error == YAML_READER_ERROR) {
    /* the reader reports a byte offset: turn it into line:column */
    size_t off = ps->problem_offset < l->input_len ? ps->problem_offset
                                                   : l->input_len;
    m.line = m.column = 0;
    for (size_t i = 0; i < off; i++) {
      if (l->input[i] == '\n') {
        m.line++;
        m.column = 0;
      } else {
        m.column++;
      }
    }
    return fail_at(l, m, "%s (byte 0x%02x)", problem,
                   (unsigned)ps->problem_value & 0xffu);
  }
  if (ps->context != NULL)
    return fail_at(l, m, "%s (%s that starts at %zu:%zu)", problem,
                   ps->context, ps->context_mark.line + 1,
                   ps->context_mark.column + 1);
  return fail_at(l, m, "%s", problem);
}

/* A short printable copy of a scalar, for messages. */
static const char *show(const yaml_event_t *e, char *buf, size_t size) {
  const unsigned char *s = e->data.scalar.value;
  size_t len = e->data.scalar.length, o = 0;
  for (size_t i = 0; i < len && o + 4 < size; i++)
    buf[o++] = (s[i] < 0x20 || s[i] >= 0x7f || s[i] == '\'') ? '?'
                                                              : (char)s[i];
  if (o < len && o + 4 >= size) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
  return buf;
}

static const char *kind(const yaml_event_t *e) {
  switch (e->type) {
  case YAML_SCALAR_EVENT:
    return "a single value";
  case YAML_SEQUENCE_START_EVENT:
    return "a list";
  case YAML_MAPPING_START_EVENT:
    return "a mapping";
  default:
    return "nothing";
  }
}

static int next(loader *l) {
  const yaml_char_t *anchor = NULL, *tag = NULL;
  if (l->have_ev) {
    yaml_event_delete(&l->ev);
    l->have_ev = 0;
  }
  if (!yaml_parser_parse(&l->parser, &l->ev))
    return parser_error(l);
  l->have_ev = 1;
  switch (l->ev.type) {
  case YAML_ALIAS_EVENT:
    return fail_at(l, l->ev.start_mark,
                   "aliases are not supported: write the value out");
  case YAML_SCALAR_EVENT:
    anchor = l->ev.data.scalar.anchor;
    tag = l->ev.data.scalar.tag;
    break;
  case YAML_SEQUENCE_START_EVENT:
    anchor = l->ev.data.sequence_start.anchor;
    tag = l->ev.data.sequence_start.tag;
    break;
  case YAML_MAPPING_START_EVENT:
    anchor = l->ev.data.mapping_start.anchor;
    tag = l->ev.data.mapping_start.tag;
    break;
  default:
    break;
  }
  if (anchor != NULL)
    return fail_at(l, l->ev.start_mark,
                   "anchors are not supported: write the value out");
  if (tag != NULL)
    return fail_at(l, l->ev.start_mark, "tags are not supported");
  return 0;
}

static int is_scalar(const loader *l, const char *lit) {
  size_t n = strlen(lit);
  return l->ev.type == YAML_SCALAR_EVENT && l->ev.data.scalar.length == n &&
         memcmp(l->ev.data.scalar.value, lit, n) == 0;
}

/* YAML's null: an empty plain scalar, ~ or null. */
static int is_null(const loader *l) {
  if (l->ev.type != YAML_SCALAR_EVENT ||
      l->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return 0;
  return l->ev.data.scalar.length == 0 || is_scalar(l, "~") ||
         is_scalar(l, "null") || is_scalar(l, "Null") || is_scalar(l, "NULL");
}

/* The current event must be a non-null scalar: the value of `key`. */
static int want_scalar(loader *l, const char *key) {
  if (l->ev.type != YAML_SCALAR_EVENT)
    return fail_at(l, l->ev.start_mark, "'%s' must be a single value, not %s",
                   key, kind(&l->ev));
  if (is_null(l))
    return fail_at(l, l->ev.start_mark, "'%s' has no value", key);
  return 0;
}

/* The current event is a mapping key: returns its index in names[], after
 * refusing non-scalar, unknown and duplicate keys. */
static int take_key(loader *l, const char *const *names, unsigned n,
                    unsigned *seen) {
  char buf[48];
  if (l->ev.type != YAML_SCALAR_EVENT)
    return fail_at(l, l->ev.start_mark, "a key must be a name, not %s",
                   kind(&l->ev));
  for (unsigned i = 0; i < n; i++) {
    if (!is_scalar(l, names[i]))
      continue;
    if (*seen & (1u << i))
      return fail_at(l, l->ev.start_mark, "duplicate key '%s'", names[i]);
    *seen |= 1u << i;
    return (int)i;
  }
  return fail_at(l, l->ev.start_mark, "unknown key '%s'",
                 show(&l->ev, buf, sizeof(buf)));
}

/* Index of the scalar in names[]; `expected` lists them for the message. */
static int take_enum(loader *l, const char *key, const char *const *names,
                     unsigned n, const char *expected) {
  char buf[48];
  if (want_scalar(l, key))
    return -1;
  for (unsigned i = 0; i < n; i++)
    if (is_scalar(l, names[i]))
      return (int)i;
  return fail_at(l, l->ev.start_mark, "'%s' must be %s, not '%s'", key,
                 expected, show(&l->ev, buf, sizeof(buf)));
}

static const char *const action_names[] = {"deny", "offload", "decline"};
static const char *const action_expected = "offload, decline or deny";

static int take_errno(loader *l, const char *key, int *out) {
  char buf[48];
  if (want_scalar(l, key))
    return -1;
  if (hwsock__policy_parse_errno((const char *)l->ev.data.scalar.value,
                                 l->ev.data.scalar.length, out))
    return fail_at(l, l->ev.start_mark, "'%s' must be %s, not '%s'", key,
                   hwsock__policy_errno_names(),
                   show(&l->ev, buf, sizeof(buf)));
  return 0;
}

/* A string value (reason, backend): copied, bounded, without NUL bytes. */
static int take_text(loader *l, const char *key, char **out) {
  size_t len;
  if (want_scalar(l, key))
    return -1;
  len = l->ev.data.scalar.length;
  if (len == 0)
    return fail_at(l, l->ev.start_mark, "'%s' is empty", key);
  if (len > HWSOCK_POLICY_MAX_TEXT)
    return fail_at(l, l->ev.start_mark, "'%s' is longer than %u bytes", key,
                   HWSOCK_POLICY_MAX_TEXT);
  if (memchr(l->ev.data.scalar.value, '\0', len) != NULL)
    return fail_at(l, l->ev.start_mark, "'%s' contains a NUL byte", key);
  *out = malloc(len + 1);
  if (*out == NULL)
    return nomem(l);
  memcpy(*out, l->ev.data.scalar.value, len);
  (*out)[len] = '\0';
  return 0;
}

/* ---- lists: one scalar, or a sequence of scalars ----------------------- */

typedef int (*item_fn)(loader *l, const char *key, void *ctx);

static int take_list(loader *l, const char *key, item_fn fn, void *ctx) {
  yaml_mark_t start = l->ev.start_mark;
  l->n_items = 0;
  if (l->ev.type == YAML_SCALAR_EVENT) {
    if (want_scalar(l, key))
      return -1;
    return fn(l, key, ctx);
  }
  if (l->ev.type != YAML_SEQUENCE_START_EVENT)
    return fail_at(l, start, "'%s' must be a list or a single value, not %s",
                   key, kind(&l->ev));
  for (;;) {
    if (next(l))
      return -1;
    if (l->ev.type == YAML_SEQUENCE_END_EVENT)
      break;
    if (l->ev.type != YAML_SCALAR_EVENT)
      return fail_at(l, l->ev.start_mark,
                     "entries of '%s' must be single values, not %s", key,
                     kind(&l->ev));
    if (is_null(l))
      return fail_at(l, l->ev.start_mark, "an entry of '%s' is empty", key);
    if (l->n_items == HWSOCK_POLICY_MAX_LIST)
      return fail_at(l, l->ev.start_mark, "'%s' has more than %u entries",
                     key, HWSOCK_POLICY_MAX_LIST);
    if (fn(l, key, ctx))
      return -1;
  }
  if (l->n_items == 0)
    return fail_at(l, start, "'%s' is an empty list: the rule could never "
                             "match", key);
  return 0;
}

static int scheme_item(loader *l, const char *key, void *ctx) {
  unsigned *mask = ctx;
  char name[8], buf[48];
  size_t len = l->ev.data.scalar.length;
  int s = HWSOCK_SCHEME_NONE;
  if (len < sizeof(name)) {
    memcpy(name, l->ev.data.scalar.value, len);
    name[len] = '\0';
    if (strlen(name) == len)
      s = hwsock_scheme_from_name(name);
  }
  if (s == HWSOCK_SCHEME_NONE)
    return fail_at(l, l->ev.start_mark,
                   "'%s' must be tcp, udp, tcp6, udp6 or ipx, not '%s'", key,
                   show(&l->ev, buf, sizeof(buf)));
  *mask |= 1u << s;
  l->n_items++;
  return 0;
}

static int net_item(loader *l, const char *key, void *ctx) {
  const char *why = NULL;
  char buf[48];
  (void)ctx;
  if (hwsock__policy_parse_net((const char *)l->ev.data.scalar.value,
                               l->ev.data.scalar.length,
                               &l->nets[l->n_items], &why))
    return fail_at(l, l->ev.start_mark, "bad address '%s' in '%s': %s",
                   show(&l->ev, buf, sizeof(buf)), key, why);
  l->n_items++;
  return 0;
}

static int port_item(loader *l, const char *key, void *ctx) {
  const char *why = NULL;
  char buf[48];
  (void)ctx;
  if (hwsock__policy_parse_ports((const char *)l->ev.data.scalar.value,
                                 l->ev.data.scalar.length,
                                 &l->ports[l->n_items], &why))
    return fail_at(l, l->ev.start_mark, "bad port '%s' in '%s': %s",
                   show(&l->ev, buf, sizeof(buf)), key, why);
  l->n_items++;
  return 0;
}

static void *dup_items(loader *l, const void *items, size_t size) {
  void *p = malloc(size * l->n_items);
  if (p == NULL) {
    nomem(l);
    return NULL;
  }
  memcpy(p, items, size * l->n_items);
  return p;
}

/* ---- rules ------------------------------------------------------------- */

enum { R_ACTION, R_SCHEME, R_DIRECTION, R_TO, R_PORTS, R_REASON, R_ERROR,
       R_BACKEND, R_SET, R_IDENTITY, R_KEYS_ };
static const char *const rule_keys[R_KEYS_] = {
    "action", "scheme", "direction", "to", "ports", "reason", "error",
    "backend", "set", "identity"};

/* `set:` keys, in HWSOCK_HOSTOPT_* bit order, with their value ranges. */
static const struct {
  const char *name;
  int lo, hi; /* integer range; lo > hi: boolean; lo == -1: a name */
} set_keys[] = {
    {"nodelay", 1, 0},          {"keepalive", 1, 0},
    {"keepidle", 1, 32767},     {"keepintvl", 1, 32767},
    {"keepcnt", 1, 127},        {"sndbuf", 1024, 64 << 20},
    {"rcvbuf", 1024, 64 << 20}, {"congestion", -1, -1},
};
#define SET_KEYS (sizeof(set_keys) / sizeof(set_keys[0]))

/* One `set:` value into its field of *o. */
static int take_set_value(loader *l, unsigned k, hwsock_hostopts *o) {
  char buf[48];
  const char *v = (const char *)l->ev.data.scalar.value;
  size_t len = l->ev.data.scalar.length;
  int32_t *fields[] = {&o->nodelay, &o->keepalive, &o->keepidle,
                       &o->keepintvl, &o->keepcnt, &o->sndbuf, &o->rcvbuf};
  if (want_scalar(l, set_keys[k].name))
    return -1;
  if (set_keys[k].lo == -1) { /* congestion control algorithm name */
    int ok = len >= 1 && len <= HWSOCK_HOSTOPT_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++)
      ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
           v[i] == '_';
    if (!ok)
      return fail_at(l, l->ev.start_mark,
                     "'congestion' must be an algorithm name of a-z, 0-9 "
                     "and _ (at most %u), not '%s'", HWSOCK_HOSTOPT_NAME_MAX,
                     show(&l->ev, buf, sizeof(buf)));
    memcpy(o->congestion, v, len);
    o->congestion[len] = '\0';
    return 0;
  }
  if (set_keys[k].lo > set_keys[k].hi) { /* boolean */
    if (is_scalar(l, "true"))
      *fields[k] = 1;
    else if (is_scalar(l, "false"))
      *fields[k] = 0;
    else
      return fail_at(l, l->ev.start_mark, "'%s' must be true or false, not '%s'",
                     set_keys[k].name, show(&l->ev, buf, sizeof(buf)));
    return 0;
  }
  long n = 0;
  size_t i = 0;
  for (; i < len && i < 9 && v[i] >= '0' && v[i] <= '9'; i++)
    n = n * 10 + (v[i] - '0');
  if (i == 0 || i != len || (len > 1 && v[0] == '0') || n < set_keys[k].lo ||
      n > set_keys[k].hi)
    return fail_at(l, l->ev.start_mark, "'%s' must be a number from %d to %d, "
                   "not '%s'", set_keys[k].name, set_keys[k].lo,
                   set_keys[k].hi, show(&l->ev, buf, sizeof(buf)));
  *fields[k] = (int32_t)n;
  return 0;
}

/* Reads a `set:` mapping (its MAPPING-START is current). */
static int read_set(loader *l, hwsock_hostopts *o) {
  static const char *names[SET_KEYS];
  unsigned seen = 0;
  if (l->ev.type != YAML_MAPPING_START_EVENT)
    return fail_at(l, l->ev.start_mark, "'set' must be a mapping of options, "
                   "not %s", kind(&l->ev));
  for (unsigned i = 0; i < SET_KEYS; i++)
    names[i] = set_keys[i].name;
  for (;;) {
    int k;
    if (next(l))
      return -1;
    if (l->ev.type == YAML_MAPPING_END_EVENT)
      break;
    if ((k = take_key(l, names, SET_KEYS, &seen)) < 0)
      return -1;
    if (next(l) || take_set_value(l, (unsigned)k, o))
      return -1;
  }
  if (seen == 0)
    return fail_at(l, l->ev.start_mark, "'set' is empty");
  o->mask = seen;
  return 0;
}

static void rule_release(hwsock__rule *r) {
  free(r->reason);
  free(r->backend);
  free(r->to);
  free(r->ports);
}

static int backend_name_ok(const char *s) {
  if (*s == '\0')
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || *s == '-'))
      return 0;
  return 1;
}

/* `identity:` is sent on outbound TCP connections only (docs/IDENTITY.md):
 * a rule that could offload anything else with it would promise what no
 * backend keeps, so it must name its TCP schemes and not be inbound only. */
static int identity_rule_bad(loader *l, const hwsock__rule *r,
                             yaml_mark_t mark) {
  const unsigned tcp = (1u << HWSOCK_SCHEME_TCP) | (1u << HWSOCK_SCHEME_TCP6);
  if (r->action != HWSOCK_ACTION_OFFLOAD)
    return fail_at(l, mark, "'identity' applies only to action: offload");
  if (r->schemes == 0 || (r->schemes & ~tcp) != 0)
    return fail_at(l, mark, "'identity' needs 'scheme: tcp' and/or tcp6 "
                   "(UDP and IPX carry no identity)");
  if (!(r->dirs & HWSOCK__DIR_OUT))
    return fail_at(l, mark, "'identity' applies to outbound connections: "
                   "the rule's direction cannot be inbound");
  return 0;
}

/* Reads the body of one rule mapping (its MAPPING-START is current). */
static int read_rule(loader *l, hwsock__rule *r) {
  static const char *const dir_names[] = {"outbound", "inbound", "any"};
  static const unsigned dir_masks[] = {HWSOCK__DIR_OUT, HWSOCK__DIR_IN,
                                       HWSOCK__DIR_OUT | HWSOCK__DIR_IN};
  yaml_mark_t start = l->ev.start_mark, error_mark = start,
              backend_mark = start, set_mark = start, identity_mark = start;
  unsigned seen = 0;
  int k, v;

  r->line = (int)start.line + 1;
  r->dirs = HWSOCK__DIR_OUT | HWSOCK__DIR_IN;
  for (;;) {
    if (next(l))
      return -1;
    if (l->ev.type == YAML_MAPPING_END_EVENT)
      break;
    if ((k = take_key(l, rule_keys, R_KEYS_, &seen)) < 0)
      return -1;
    yaml_mark_t key_mark = l->ev.start_mark;
    if (next(l))
      return -1;
    switch (k) {
    case R_ACTION:
      if ((v = take_enum(l, "action", action_names, 3, action_expected)) < 0)
        return -1;
      r->action = v;
      break;
    case R_SCHEME:
      if (take_list(l, "scheme", scheme_item, &r->schemes))
        return -1;
      break;
    case R_DIRECTION:
      if ((v = take_enum(l, "direction", dir_names, 3,
                         "outbound, inbound or any")) < 0)
        return -1;
      r->dirs = dir_masks[v];
      break;
    case R_TO:
      if (take_list(l, "to", net_item, NULL))
        return -1;
      if ((r->to = dup_items(l, l->nets, sizeof(l->nets[0]))) == NULL)
        return -1;
      r->n_to = l->n_items;
      break;
    case R_PORTS:
      if (take_list(l, "ports", port_item, NULL))
        return -1;
      if ((r->ports = dup_items(l, l->ports, sizeof(l->ports[0]))) == NULL)
        return -1;
      r->n_ports = l->n_items;
      break;
    case R_REASON:
      if (take_text(l, "reason", &r->reason))
        return -1;
      break;
    case R_ERROR:
      error_mark = key_mark;
      if (take_errno(l, "error", &r->error))
        return -1;
      break;
    case R_BACKEND:
      backend_mark = key_mark;
      if (take_text(l, "backend", &r->backend))
        return -1;
      if (!backend_name_ok(r->backend))
        return fail_at(l, l->ev.start_mark,
                       "'backend' must be a backend name of a-z, 0-9, _ "
                       "and -");
      break;
    case R_SET:
      set_mark = key_mark;
      if (read_set(l, &r->set))
        return -1;
      break;
    case R_IDENTITY: {
      static const char *const id_names[] = {"none", "proxy-v2"};
      identity_mark = key_mark;
      if ((v = take_enum(l, "identity", id_names, 2, "proxy-v2 or none")) < 0)
        return -1;
      r->identity = v; /* HWSOCK_IDENTITY_* in this order */
      break;
    }
    }
  }
  if (!(seen & (1u << R_ACTION)))
    return fail_at(l, start, "missing key 'action'");
  if ((seen & (1u << R_ERROR)) && r->action != HWSOCK_ACTION_DENY)
    return fail_at(l, error_mark, "'error' applies only to action: deny");
  if ((seen & (1u << R_SET)) && r->action != HWSOCK_ACTION_OFFLOAD)
    return fail_at(l, set_mark, "'set' applies only to action: offload");
  if ((seen & (1u << R_BACKEND)) && r->action != HWSOCK_ACTION_OFFLOAD)
    return fail_at(l, backend_mark,
                   "'backend' applies only to action: offload");
  if (r->identity != HWSOCK_IDENTITY_NONE && identity_rule_bad(l, r, identity_mark))
    return -1;
  if (r->reason == NULL) {
    char text[48];
    snprintf(text, sizeof(text), "rule %u (line %d)", l->p->n_rules + 1,
             r->line);
    if ((r->reason = strdup(text)) == NULL)
      return nomem(l);
  }
  return 0;
}

static int read_rules(loader *l) {
  hwsock_policy *p = l->p;
  if (l->ev.type != YAML_SEQUENCE_START_EVENT)
    return fail_at(l, l->ev.start_mark, "'rules' must be a list, not %s",
                   kind(&l->ev));
  for (;;) {
    if (next(l))
      return -1;
    if (l->ev.type == YAML_SEQUENCE_END_EVENT)
      return 0;
    if (p->n_rules == HWSOCK_POLICY_MAX_RULES)
      return fail_at(l, l->ev.start_mark, "more than %u rules",
                     HWSOCK_POLICY_MAX_RULES);
    if (l->ev.type != YAML_MAPPING_START_EVENT)
      return fail_at(l, l->ev.start_mark, "a rule must be a mapping, not %s",
                     kind(&l->ev));
    if (p->n_rules == l->rules_cap) {
      unsigned cap = l->rules_cap ? l->rules_cap * 2u : 8u;
      hwsock__rule *n = realloc(p->rules, cap * sizeof(*n));
      if (n == NULL)
        return nomem(l);
      p->rules = n;
      l->rules_cap = cap;
    }
    hwsock__rule *r = &p->rules[p->n_rules];
    memset(r, 0, sizeof(*r));
    if (read_rule(l, r)) {
      rule_release(r);
      return -1;
    }
    p->n_rules++;
  }
}

/* ---- the document ------------------------------------------------------ */

enum { T_VERSION, T_DEFAULT, T_DEFAULT_ERROR, T_RULES, T_KEYS_ };
static const char *const top_keys[T_KEYS_] = {"version", "default",
                                              "default_error", "rules"};

static int read_policy(loader *l) {
  hwsock_policy *p = l->p;
  unsigned seen = 0;
  yaml_mark_t top;
  char buf[48];
  int k, v;

  if (next(l) || next(l)) /* STREAM-START, then a document or the end */
    return -1;
  if (l->ev.type == YAML_STREAM_END_EVENT ||
      (l->ev.type == YAML_DOCUMENT_START_EVENT && next(l) == 0 &&
       is_null(l)))
    return fail_at(l, l->ev.start_mark,
                   "empty policy: expected a mapping with 'version: 1'");
  if (l->err)
    return -1;
  if (l->ev.type != YAML_MAPPING_START_EVENT)
    return fail_at(l, l->ev.start_mark,
                   "the policy must be a mapping (version, default, "
                   "default_error, rules), not %s",
                   kind(&l->ev));
  top = l->ev.start_mark;
  for (;;) {
    if (next(l))
      return -1;
    if (l->ev.type == YAML_MAPPING_END_EVENT)
      break;
    if ((k = take_key(l, top_keys, T_KEYS_, &seen)) < 0 || next(l))
      return -1;
    switch (k) {
    case T_VERSION:
      if (want_scalar(l, "version"))
        return -1;
      if (!is_scalar(l, "1") ||
          l->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return fail_at(l, l->ev.start_mark,
                       "unsupported version '%s': this library reads "
                       "version 1",
                       show(&l->ev, buf, sizeof(buf)));
      break;
    case T_DEFAULT:
      if ((v = take_enum(l, "default", action_names, 3, action_expected)) < 0)
        return -1;
      p->default_action = v;
      break;
    case T_DEFAULT_ERROR:
      if (take_errno(l, "default_error", &p->default_error))
        return -1;
      break;
    case T_RULES:
      if (read_rules(l))
        return -1;
      break;
    }
  }
  if (!(seen & (1u << T_VERSION)))
    return fail_at(l, top, "missing key 'version'");
  if (next(l) || next(l)) /* DOCUMENT-END, then the end of the stream */
    return -1;
  if (l->ev.type != YAML_STREAM_END_EVENT)
    return fail_at(l, l->ev.start_mark,
                   "a policy file holds one YAML document, found another");
  return 0;
}

int hwsock_policy_load_string(const char *yaml, size_t len, const char *name,
                              hwsock_policy **out, char *errbuf,
                              size_t errlen) {
  loader *l;
  int rc;

  *out = NULL;
  if (errbuf != NULL && errlen > 0)
    errbuf[0] = '\0';
  if (name == NULL)
    name = "<policy>";
  if (yaml == NULL)
    len = 0; /* libyaml wants an input pointer even for nothing */
  if (len > HWSOCK_POLICY_MAX_BYTES) {
    if (errbuf != NULL && errlen > 0)
      snprintf(errbuf, errlen, "%s: larger than %u bytes, the limit", name,
               HWSOCK_POLICY_MAX_BYTES);
    return HWSOCK_EBADCONFIG;
  }
  if ((l = calloc(1, sizeof(*l))) == NULL)
    return HWSOCK_ENOMEM;
  l->name = name;
  l->input = yaml;
  l->input_len = len;
  l->errbuf = errbuf;
  l->errlen = errlen;
  l->p = calloc(1, sizeof(*l->p));
  if (l->p == NULL || !yaml_parser_initialize(&l->parser)) {
    free(l->p);
    free(l);
    return HWSOCK_ENOMEM;
  }
  yaml_parser_set_encoding(&l->parser, YAML_UTF8_ENCODING);
  yaml_parser_set_input_string(
      &l->parser, (const unsigned char *)(yaml != NULL ? yaml : ""), len);
  l->p->default_action = HWSOCK_ACTION_DENY;

  rc = read_policy(l) ? l->err : 0;

  if (l->have_ev)
    yaml_event_delete(&l->ev);
  yaml_parser_delete(&l->parser);
  if (rc == 0) {
    hwsock_policy *p = l->p;
    if (p->default_error == 0)
      p->default_error = HWSOCK_EACCES;
    for (unsigned i = 0; i < p->n_rules; i++)
      if (p->rules[i].action == HWSOCK_ACTION_DENY && p->rules[i].error == 0)
        p->rules[i].error = p->default_error;
    *out = p;
  } else {
    hwsock_policy_free(l->p);
  }
  free(l);
  return rc;
}

int hwsock_policy_load_file(const char *path, hwsock_policy **out,
                            char *errbuf, size_t errlen) {
  size_t cap = HWSOCK_POLICY_MAX_BYTES + 1, len = 0, n;
  char *buf;
  FILE *f;
  int rc;

  *out = NULL;
  if ((f = fopen(path, "rb")) == NULL) {
    int e = errno;
    if (errbuf != NULL && errlen > 0)
      snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
    return e == ENOENT ? HWSOCK_ENOENT
           : e == ENOMEM ? HWSOCK_ENOMEM
                         : HWSOCK_EBADCONFIG;
  }
  /* read at most one byte past the limit: enough to know it is exceeded */
  if ((buf = malloc(cap)) == NULL) {
    fclose(f);
    return HWSOCK_ENOMEM;
  }
  while (len < cap && (n = fread(buf + len, 1, cap - len, f)) > 0)
    len += n;
  if (ferror(f)) {
    int e = errno;
    if (errbuf != NULL && errlen > 0)
      snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
    fclose(f);
    free(buf);
    return HWSOCK_EBADCONFIG;
  }
  fclose(f);
  rc = hwsock_policy_load_string(buf, len, path, out, errbuf, errlen);
  free(buf);
  return rc;
}

int hwsock_policy_rule_identity(const hwsock_policy *p, int rule) {
  if (p == NULL || rule < 0 || (unsigned)rule >= p->n_rules)
    return HWSOCK_IDENTITY_NONE;
  return p->rules[rule].identity;
}
