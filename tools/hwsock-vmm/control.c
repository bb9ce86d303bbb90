/* The control socket (docs/OBSERVABILITY.md): a unix stream socket served
 * on the VMM's loop, from which hwsock-stat (or socat, nc -U) reads the
 * socket table, the counters and the guests.
 *
 * A client sends one command line; the VMM answers with lines and closes.
 * Everything is bounded: at most CTL_MAX_CLIENTS clients at once, a command
 * of at most CTL_LINE_MAX bytes, one answer chunk of CTL_CHUNK bytes in
 * flight per client (the next chunk is produced only when the previous one
 * was written: a client that does not read costs one chunk, not the whole
 * answer), and CTL_TIMEOUT_MS without progress drops the client.
 *
 * A long answer is produced chunk by chunk from a cursor (guest id, socket
 * id), never from pointers, so guests may attach and detach between two
 * chunks: each line is a consistent snapshot of one socket or one guest,
 * the listing as a whole is not atomic. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hwsock/stats.h"
#include "hwsock/uri.h"
#include "vmm.h"

#define CTL_MAX_CLIENTS 16u
#define CTL_LINE_MAX 256u        /* command line, newline included */
#define CTL_CHUNK (64u << 10)    /* answer bytes per write */
/* Room left in a chunk before one more unit of answer is produced: a unit
 * is one socket line (< 1 KiB) or one guest's counters (a JSON object or
 * its TSV lines, about 12 KiB with every histogram bucket in use). */
#define CTL_LINE_ROOM (24u << 10)
#define CTL_TIMEOUT_MS 5000      /* no command / no write progress: dropped */

enum cmd {
  CMD_SOCKETS, CMD_SOCKETS_TSV, CMD_COUNTERS, CMD_COUNTERS_TSV, CMD_GUESTS
};

/* Filter words of the sockets commands. */
enum { F_TCP = 1, F_UDP = 2, F_IPX = 4, F_NETIDS = 7, F_LISTEN = 8 };

typedef struct ctl_client ctl_client;

struct vmm_control {
  vmm *v;
  uv_pipe_t listener;
  int listener_closed;
  ctl_client *clients;
  unsigned nclients; /* allocated, including those closing */
  char line[CTL_LINE_ROOM]; /* one rendered JSON object (one loop thread) */
};

struct ctl_client {
  vmm_control *ctl;
  ctl_client *next;
  uv_pipe_t pipe;
  uv_timer_t timer;
  uv_write_t wreq;
  int closing, nclosed, started, done;
  size_t cmd_len;
  char cmd[CTL_LINE_MAX + 1]; /* + the terminator */
  enum cmd command;
  unsigned filter;
  unsigned guest_cursor; /* guests with ids <= this are answered */
  unsigned sock_guest;   /* the guest whose walk stopped at sock_cursor */
  unsigned sock_cursor;  /* next socket id of that guest */
  size_t out_len;
  char out[CTL_CHUNK];
};

/* ---- client lifetime ------------------------------------------------------ */

static void maybe_free_control(vmm_control *ctl) {
  if (ctl->listener_closed && ctl->nclients == 0)
    free(ctl);
}

static void on_client_closed(uv_handle_t *h) {
  ctl_client *c = h->data;
  if (++c->nclosed < 2)
    return;
  vmm_control *ctl = c->ctl;
  ctl->nclients--;
  free(c);
  maybe_free_control(ctl);
}

static void client_close(ctl_client *c) {
  if (c->closing)
    return;
  c->closing = 1;
  for (ctl_client **pp = &c->ctl->clients; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  }
  /* A write in flight completes with UV_ECANCELED before the close. */
  uv_close((uv_handle_t *)&c->pipe, on_client_closed);
  uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void on_timeout(uv_timer_t *t) {
  ctl_client *c = t->data;
  vmm_log(HWSOCK_LOG_INFO, "control: client dropped (no progress in %d ms)",
          CTL_TIMEOUT_MS);
  client_close(c);
}

static void progress(ctl_client *c) {
  uv_timer_start(&c->timer, on_timeout, CTL_TIMEOUT_MS, 0);
}

/* ---- answers ---------------------------------------------------------------- */

/* Appends to the chunk; the caller checked the room (CTL_LINE_ROOM). */
static void out(ctl_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out(ctl_client *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(c->out + c->out_len, CTL_CHUNK - c->out_len, fmt, ap);
  va_end(ap);
  if (n > 0)
    c->out_len += (size_t)n < CTL_CHUNK - c->out_len
                      ? (size_t)n
                      : CTL_CHUNK - c->out_len - 1;
}

static int room(const ctl_client *c) {
  return c->out_len + CTL_LINE_ROOM <= CTL_CHUNK;
}

static unsigned netid_bit(int scheme) {
  switch (scheme) {
  case HWSOCK_SCHEME_TCP:
  case HWSOCK_SCHEME_TCP6: return F_TCP;
  case HWSOCK_SCHEME_UDP:
  case HWSOCK_SCHEME_UDP6: return F_UDP;
  case HWSOCK_SCHEME_IPX: return F_IPX;
  default: return 0;
  }
}

/* Fields that may be empty are "-" in TSV so that columns never collapse. */
static const char *dash(const char *s) { return s && s[0] ? s : "-"; }

typedef struct sock_walk {
  ctl_client *c;
  unsigned guest;
} sock_walk;

static int on_socket(const hwsock_sock_info *i, void *arg) {
  sock_walk *w = arg;
  ctl_client *c = w->c;
  if (i->id < c->sock_cursor)
    return 0;
  if (!room(c))
    return 1; /* chunk full: resume at this id */
  c->sock_cursor = i->id + 1;
  unsigned f = c->filter;
  if (((f & F_NETIDS) && !(f & netid_bit(i->scheme))) ||
      ((f & F_LISTEN) && i->state != HWSOCK_SS_LISTEN))
    return 0;
  if (c->command == CMD_SOCKETS) {
    char *js = c->ctl->line;
    int n = hwsock_sock_info_json(i, js, sizeof(c->ctl->line));
    if (n < 2)
      return 0; /* cannot happen: a socket line is < 1 KiB */
    out(c, "{\"guest\":%u,%s\n", w->guest, js + 1);
    return 0;
  }
  const char *scheme = hwsock_scheme_name(i->scheme);
  out(c,
      "%u\t%u\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%llu\t%llu\t%llu\t%llu\t%u\t"
      "%llu\t%s\n",
      w->guest, i->id, dash(scheme), hwsock_ss_name(i->state),
      dash(i->local), dash(i->remote), i->rule, i->rule_line,
      dash(i->backend), i->host_fd, (unsigned long long)i->bytes_in,
      (unsigned long long)i->bytes_out, (unsigned long long)i->requests_in,
      (unsigned long long)i->requests_out, i->inflight,
      (unsigned long long)i->created_ns,
      i->identity == HWSOCK_IDENTITY_PROXY_V2 ? "proxy-v2" : "-");
  return 0;
}

/* The TSV header names the columns; hwsock-stat checks it, so a VMM and a
 * hwsock-stat of different versions fail loudly instead of misreading. */
#define SOCKETS_TSV_HEADER                                                   \
  "# guest\tid\tnetid\tstate\tlocal\tpeer\trule\trule_line\tbackend\tfd\t" \
  "bytes_in\tbytes_out\trequests_in\trequests_out\tinflight\tcreated_ns\t" \
  "identity\n"
#define COUNTERS_TSV_HEADER "# guest\tname\tvalue\n"

static void counters_tsv(ctl_client *c, unsigned guest,
                         const hwsock_device_stats *s) {
  static const struct {
    const char *name;
    size_t off;
  } scalars[] = {
#define S(f) {#f, offsetof(hwsock_device_stats, f)}
      S(kicks), S(requests), S(completions), S(errors), S(bad_requests),
      S(needs_reset), S(resets), S(bytes_out), S(bytes_in), S(notifies),
      S(notifies_suppressed), S(sockets_open), S(sockets_offloaded),
      S(ev_no_buffer)
#undef S
  };
  for (size_t k = 0; k < sizeof(scalars) / sizeof(scalars[0]); k++)
    out(c, "%u\t%s\t%llu\n", guest, scalars[k].name,
        (unsigned long long)*(const uint64_t *)(const void *)(
            (const char *)s + scalars[k].off));
  out(c, "%u\tverdict.offload\t%llu\n%u\tverdict.decline\t%llu\n"
         "%u\tverdict.deny\t%llu\n",
      guest, (unsigned long long)s->verdicts[HWSOCK_ACTION_OFFLOAD], guest,
      (unsigned long long)s->verdicts[HWSOCK_ACTION_DECLINE], guest,
      (unsigned long long)s->verdicts[HWSOCK_ACTION_DENY]);
  out(c, "%u\top.unknown\t%llu\n", guest,
      (unsigned long long)s->requests_by_op[0]);
  for (int op = 1; op <= HWSOCK_OP_MAX_; op++)
    out(c, "%u\top.%s\t%llu\n", guest, hwsock_op_name(op),
        (unsigned long long)s->requests_by_op[op]);
#define XX(name, val, host, msg)                                              \
  if (hwsock_stats_errors(s, HWSOCK_##name) > 0)                              \
    out(c, "%u\terror.%s\t%llu\n", guest, #name,                              \
        (unsigned long long)hwsock_stats_errors(s, HWSOCK_##name));
  HWSOCK_ERRNO_MAP(XX)
#undef XX
  /* Histograms: bucket counts up to the last non-empty one. */
  for (int op = 1; op <= HWSOCK_OP_MAX_; op++) {
    int last = -1;
    for (int b = 0; b < HWSOCK_LAT_BUCKETS; b++)
      if (s->latency[op][b])
        last = b;
    if (last < 0)
      continue;
    out(c, "%u\tlatency.%s\t", guest, hwsock_op_name(op));
    for (int b = 0; b <= last; b++)
      out(c, "%s%llu", b ? "," : "", (unsigned long long)s->latency[op][b]);
    out(c, "\n");
    out(c, "%u\tlatency_sum_ns.%s\t%llu\n", guest, hwsock_op_name(op),
        (unsigned long long)s->latency_sum_ns[op]);
  }
}

/* One guest's lines for the per-guest commands. */
static void guest_lines(ctl_client *c, const vmm_guest_info *gi) {
  hwsock_device_stats s;
  memset(&s, 0, sizeof(s));
  s.size = sizeof(s);
  hwsock_device_get_stats(gi->dev, &s);
  switch (c->command) {
  case CMD_COUNTERS: {
    char *js = c->ctl->line;
    if (hwsock_stats_json(&s, js, sizeof(c->ctl->line)) >= 2)
      out(c, "{\"guest\":%u,%s\n", gi->id, js + 1);
    break;
  }
  case CMD_COUNTERS_TSV:
    counters_tsv(c, gi->id, &s);
    break;
  default: /* CMD_GUESTS */
    out(c,
        "{\"guest\":%u,\"pid\":%ld,\"mem_bytes\":%zu,\"status\":\"%s\","
        "\"sockets_open\":%llu,\"sockets_offloaded\":%llu}\n",
        gi->id, gi->pid, gi->mem_size, gi->status,
        (unsigned long long)s.sockets_open,
        (unsigned long long)s.sockets_offloaded);
    break;
  }
}

/* Produces the next chunk of the answer; sets c->done after the last. */
static void fill(ctl_client *c) {
  vmm *v = c->ctl->v;
  if (!c->started) {
    c->started = 1;
    if (c->command == CMD_SOCKETS_TSV)
      out(c, "%s", SOCKETS_TSV_HEADER);
    else if (c->command == CMD_COUNTERS_TSV)
      out(c, "%s", COUNTERS_TSV_HEADER);
  }
  while (room(c)) {
    vmm_guest *g = vmm_guest_after(v, c->guest_cursor);
    if (g == NULL) {
      c->done = 1;
      return;
    }
    vmm_guest_info gi;
    vmm_guest_get_info(g, &gi);
    if (gi.id != c->sock_guest) { /* that guest may have detached */
      c->sock_guest = gi.id;
      c->sock_cursor = 0;
    }
    if (gi.dev != NULL) {
      if (c->command == CMD_SOCKETS || c->command == CMD_SOCKETS_TSV) {
        sock_walk w = {c, gi.id};
        if (hwsock_device_foreach_socket(gi.dev, on_socket, &w) != 0)
          return; /* chunk full: this guest continues in the next one */
      } else {
        guest_lines(c, &gi);
      }
    }
    c->guest_cursor = gi.id;
  }
}

static void send_chunk(ctl_client *c);

static void on_written(uv_write_t *req, int status) {
  ctl_client *c = req->data;
  if (c->closing)
    return;
  if (status < 0) {
    vmm_log(HWSOCK_LOG_DEBUG, "control: client went away: %s",
            uv_strerror(status));
    client_close(c);
    return;
  }
  progress(c);
  c->out_len = 0;
  if (c->done) {
    client_close(c);
    return;
  }
  fill(c);
  send_chunk(c);
}

static void send_chunk(ctl_client *c) {
  if (c->out_len == 0) {
    client_close(c); /* nothing (more) to say */
    return;
  }
  uv_buf_t b = uv_buf_init(c->out, (unsigned)c->out_len);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0)
    client_close(c);
}

/* Answers one error line and closes. msg holds no quote or backslash. */
static void answer_error(ctl_client *c, const char *msg) {
  c->out_len = 0;
  out(c, "{\"error\":\"%s\"}\n", msg);
  c->done = 1;
  send_chunk(c);
}

/* ---- commands --------------------------------------------------------------- */

static void run_command(ctl_client *c, char *line) {
  static const struct {
    const char *name;
    enum cmd cmd;
  } cmds[] = {{"sockets", CMD_SOCKETS},   {"sockets-tsv", CMD_SOCKETS_TSV},
              {"counters", CMD_COUNTERS}, {"counters-tsv", CMD_COUNTERS_TSV},
              {"guests", CMD_GUESTS}};
  char *save = NULL;
  char *word = strtok_r(line, " \t\r", &save);
  if (word == NULL) {
    answer_error(c, "empty command (try: sockets, sockets-tsv, counters, "
                    "counters-tsv, guests)");
    return;
  }
  size_t k = 0;
  while (k < sizeof(cmds) / sizeof(cmds[0]) && strcmp(word, cmds[k].name))
    k++;
  if (k == sizeof(cmds) / sizeof(cmds[0])) {
    answer_error(c, "unknown command (try: sockets, sockets-tsv, counters, "
                    "counters-tsv, guests)");
    return;
  }
  c->command = cmds[k].cmd;
  int sockets = c->command == CMD_SOCKETS || c->command == CMD_SOCKETS_TSV;
  while ((word = strtok_r(NULL, " \t\r", &save)) != NULL) {
    unsigned bit = !sockets                   ? 0
                   : !strcmp(word, "tcp")    ? F_TCP
                   : !strcmp(word, "udp")    ? F_UDP
                   : !strcmp(word, "ipx")    ? F_IPX
                   : !strcmp(word, "listen") ? F_LISTEN
                                              : 0;
    if (bit == 0) {
      answer_error(c, sockets ? "unknown filter (sockets filters: tcp, udp, "
                                "ipx, listen)"
                              : "this command takes no arguments");
      return;
    }
    c->filter |= bit;
  }
  vmm_log(HWSOCK_LOG_DEBUG, "control: %s", cmds[k].name);
  fill(c);
  send_chunk(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ctl_client *c = h->data;
  *buf = uv_buf_init(c->cmd + c->cmd_len,
                     (unsigned)(CTL_LINE_MAX - c->cmd_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ctl_client *c = s->data;
  if (c->closing || nread == 0)
    return;
  (void)buf; /* it is c->cmd */
  if (nread < 0 && (nread != UV_EOF || c->cmd_len == 0)) {
    client_close(c); /* hung up without a command */
    return;
  }
  if (nread > 0)
    c->cmd_len += (size_t)nread;
  char *nl = memchr(c->cmd, '\n', c->cmd_len);
  if (nl == NULL && nread > 0) {
    if (c->cmd_len < CTL_LINE_MAX)
      return; /* more to come */
    uv_read_stop(s);
    answer_error(c, "command line too long (at most 256 bytes with the "
                    "newline)");
    return;
  }
  /* A newline, or EOF after a command without one. */
  uv_read_stop(s);
  if (nl == NULL)
    nl = c->cmd + c->cmd_len;
  *nl = '\0';
  if (memchr(c->cmd, '\0', (size_t)(nl - c->cmd)) != NULL) {
    answer_error(c, "NUL byte in the command");
    return;
  }
  progress(c);
  run_command(c, c->cmd);
}

static void on_connection(uv_stream_t *server, int status) {
  vmm_control *ctl = server->data;
  if (status < 0) {
    /* libuv has already dropped what waited (its spare-fd trick on
     * EMFILE); a client retrying in a loop must not flood the log */
    vmm_log_limited(&ctl->v->control_log, HWSOCK_LOG_ERROR,
                    "control socket: %s", uv_strerror(status));
    return;
  }
  ctl_client *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return; /* the connection waits in the backlog */
  c->ctl = ctl;
  uv_pipe_init(server->loop, &c->pipe, 0);
  uv_timer_init(server->loop, &c->timer);
  c->pipe.data = c->timer.data = c;
  ctl->nclients++;
  c->next = ctl->clients;
  ctl->clients = c;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
    client_close(c);
    return;
  }
  progress(c);
  /* Counted after the accept: this one is the (CTL_MAX_CLIENTS+1)th. */
  if (ctl->nclients > CTL_MAX_CLIENTS) {
    vmm_log(HWSOCK_LOG_WARN, "control: refusing a client: %u connected",
            CTL_MAX_CLIENTS);
    answer_error(c, "too many control clients");
    return;
  }
  if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
    client_close(c);
}

/* ---- start / stop ----------------------------------------------------------- */

int vmm_control_start(vmm *v) {
  vmm_control *ctl = calloc(1, sizeof(*ctl));
  if (ctl == NULL) {
    vmm_log(HWSOCK_LOG_ERROR, "control socket: out of memory");
    return -1;
  }
  ctl->v = v;
  /* --takeover: the old VMM's, already listening at the path */
  int fd = v->adopt_control
               ? v->adopt_control_fd
               : vmm_listen_unix(&v->opt, v->control_path, SOCK_STREAM);
  v->adopt_control = 0;
  if (fd < 0) {
    free(ctl);
    return -1;
  }
  /* The answers describe every guest's connections: the socket has the
   * guests' socket's mode (--socket-mode, default owner only), set before
   * it listens (listen.c). */
  int rc = uv_pipe_init(&v->loop, &ctl->listener, 0);
  if (rc < 0) {
    close(fd);
    unlink(v->control_path);
    free(ctl);
    vmm_log(HWSOCK_LOG_ERROR, "control socket: %s", uv_strerror(rc));
    return -1;
  }
  ctl->listener.data = ctl;
  v->control = ctl; /* from here on vmm_control_stop() cleans up */
  rc = uv_pipe_open(&ctl->listener, fd);
  if (rc < 0)
    close(fd); /* not the handle's yet */
  else
    rc = uv_listen((uv_stream_t *)&ctl->listener, VMM_LISTEN_BACKLOG,
                   on_connection);
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "control socket %s: %s", v->control_path,
            uv_strerror(rc));
    vmm_control_stop(v);
    return -1;
  }
  return 0;
}

static void on_listener_closed(uv_handle_t *h) {
  vmm_control *ctl = h->data;
  ctl->listener_closed = 1;
  maybe_free_control(ctl);
}

void vmm_control_stop(vmm *v) {
  vmm_control *ctl = v->control;
  if (ctl == NULL)
    return;
  v->control = NULL;
  if (!v->handed_over) /* else the new VMM serves it */
    unlink(v->control_path);
  while (ctl->clients != NULL)
    client_close(ctl->clients);
  uv_close((uv_handle_t *)&ctl->listener, on_listener_closed);
}

int vmm_control_fd(const vmm *v) {
  uv_os_fd_t fd;
  if (v->control == NULL ||
      uv_fileno((const uv_handle_t *)&v->control->listener, &fd) < 0)
    return -1;
  return fd;
}
