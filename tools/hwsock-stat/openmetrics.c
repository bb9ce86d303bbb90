/* hwsock-stat --openmetrics: the counters-tsv answer of the control socket
 * in the Prometheus text exposition format (version 0.0.4), as
 * node-exporter's textfile collector and a Prometheus scrape read it: one
 * family at a time (# HELP, # TYPE, then every guest's samples), a `guest`
 * label per device, counters named *_total, the latency histograms as
 * _bucket (cumulative, `le` in seconds, ending with +Inf), _sum and _count.
 * docs/OBSERVABILITY.md lists the metrics. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openmetrics.h"

#define LAT_BUCKETS 32 /* hwsock/stats.h HWSOCK_LAT_BUCKETS */

typedef struct sample {
  const char *guest, *name, *value;
} sample;

typedef struct scalar {
  const char *tsv, *metric, *type, *help;
} scalar;

static const scalar scalars[] = {
    {"kicks", "hwsock_kicks_total", "counter",
     "Guest notifications of a queue (hwsock_device_kick calls)."},
    {"requests", "hwsock_requests_total", "counter",
     "Requests taken from the guest's queues."},
    {"completions", "hwsock_completions_total", "counter",
     "Requests completed."},
    {"errors", "hwsock_errors_total", "counter",
     "Requests completed with an error status."},
    {"bad_requests", "hwsock_malformed_requests_total", "counter",
     "Malformed requests (completed with an error)."},
    {"needs_reset", "hwsock_needs_reset_total", "counter",
     "Times the guest broke its ring (device needs reset)."},
    {"resets", "hwsock_resets_total", "counter", "Device resets."},
    {"bytes_out", "hwsock_sent_bytes_total", "counter",
     "Payload bytes the guest sent through the device."},
    {"bytes_in", "hwsock_received_bytes_total", "counter",
     "Payload bytes the guest received through the device."},
    {"notifies", "hwsock_interrupts_total", "counter",
     "Interrupts sent to the guest."},
    {"notifies_suppressed", "hwsock_interrupts_suppressed_total", "counter",
     "Interrupts the guest's event index or flags made unnecessary."},
    {"sockets_open", "hwsock_sockets_open", "gauge",
     "Guest socket ids in use."},
    {"sockets_offloaded", "hwsock_sockets_offloaded", "gauge",
     "Guest sockets with a host socket."},
    {"ev_no_buffer", "hwsock_event_no_buffer_total", "counter",
     "Times an event waited because the guest had posted no event buffer."},
};

typedef struct labelled {
  const char *prefix, *metric, *label, *help;
} labelled;

static const labelled families[] = {
    {"verdict.", "hwsock_verdicts_total", "verdict",
     "Policy verdicts on the guest's sockets."},
    {"op.", "hwsock_requests_by_opcode_total", "opcode",
     "Requests taken, by opcode."},
    {"error.", "hwsock_completion_errors_total", "error",
     "Requests completed with an error, by error."},
};

/* A label value as the format wants it: \, " and newline escaped. */
static void label_value(const char *s) {
  for (; *s != '\0'; s++) {
    if (*s == '\\' || *s == '"')
      printf("\\%c", *s);
    else if (*s == '\n')
      printf("\\n");
    else
      putchar(*s);
  }
}

static int is_count(const char *v) {
  if (*v == '\0')
    return 0;
  for (; *v != '\0'; v++)
    if (*v < '0' || *v > '9')
      return 0;
  return 1;
}

static void head(const char *metric, const char *type, const char *help) {
  printf("# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
}

static void print_scalars(const sample *s, size_t n) {
  for (size_t k = 0; k < sizeof(scalars) / sizeof(scalars[0]); k++) {
    int any = 0;
    for (size_t i = 0; i < n; i++) {
      if (strcmp(s[i].name, scalars[k].tsv) != 0 || !is_count(s[i].value))
        continue;
      if (!any)
        head(scalars[k].metric, scalars[k].type, scalars[k].help);
      any = 1;
      printf("%s{guest=\"", scalars[k].metric);
      label_value(s[i].guest);
      printf("\"} %s\n", s[i].value);
    }
  }
}

static void print_labelled(const sample *s, size_t n) {
  for (size_t k = 0; k < sizeof(families) / sizeof(families[0]); k++) {
    size_t pl = strlen(families[k].prefix);
    int any = 0;
    for (size_t i = 0; i < n; i++) {
      if (strncmp(s[i].name, families[k].prefix, pl) != 0 ||
          s[i].name[pl] == '\0' || !is_count(s[i].value))
        continue;
      if (!any)
        head(families[k].metric, "counter", families[k].help);
      any = 1;
      printf("%s{guest=\"", families[k].metric);
      label_value(s[i].guest);
      printf("\",%s=\"", families[k].label);
      label_value(s[i].name + pl);
      printf("\"} %s\n", s[i].value);
    }
  }
}

/* latency_sum_ns.OP of the same guest, or NULL. */
static const char *latency_sum(const sample *s, size_t n, const char *guest,
                               const char *op) {
  static const char prefix[] = "latency_sum_ns.";
  for (size_t i = 0; i < n; i++)
    if (strcmp(s[i].guest, guest) == 0 &&
        strncmp(s[i].name, prefix, sizeof(prefix) - 1) == 0 &&
        strcmp(s[i].name + sizeof(prefix) - 1, op) == 0 &&
        is_count(s[i].value))
      return s[i].value;
  return NULL;
}

/* Bucket b of the device holds [2^b, 2^(b+1)) microseconds (b 0 also less
 * than 1 us, the last one everything above): its upper edge is the `le`,
 * the last bucket is +Inf. A latency exactly on an edge is counted in the
 * bucket above it (the device's buckets are half-open). */
static void print_latency(const sample *s, size_t n) {
  static const char prefix[] = "latency.";
  static const char metric[] = "hwsock_request_latency_seconds";
  int any = 0;
  for (size_t i = 0; i < n; i++) {
    if (strncmp(s[i].name, prefix, sizeof(prefix) - 1) != 0)
      continue;
    const char *op = s[i].name + sizeof(prefix) - 1;
    uint64_t h[LAT_BUCKETS] = {0};
    int nb = 0, ok = 1;
    for (const char *v = s[i].value; *v != '\0' && ok; nb++) {
      char *end;
      if (nb == LAT_BUCKETS || *v < '0' || *v > '9') {
        ok = 0;
        break;
      }
      h[nb] = strtoull(v, &end, 10);
      ok = *end == ',' || *end == '\0';
      v = *end == ',' ? end + 1 : end;
    }
    const char *sum = latency_sum(s, n, s[i].guest, op);
    if (!ok || nb == 0 || sum == NULL)
      continue; /* a VMM without sums: no histogram rather than a wrong one */
    if (!any)
      head(metric, "histogram",
           "Request latency, from taking the request to its completion.");
    any = 1;
    uint64_t cum = 0;
    for (int b = 0; b < LAT_BUCKETS; b++) {
      cum += h[b];
      printf("%s_bucket{guest=\"", metric);
      label_value(s[i].guest);
      printf("\",opcode=\"");
      label_value(op);
      if (b == LAT_BUCKETS - 1)
        printf("\",le=\"+Inf\"} %" PRIu64 "\n", cum);
      else
        printf("\",le=\"%.6g\"} %" PRIu64 "\n",
               (double)(1ull << (b + 1)) * 1e-6, cum);
    }
    uint64_t ns = strtoull(sum, NULL, 10);
    printf("%s_sum{guest=\"", metric);
    label_value(s[i].guest);
    printf("\",opcode=\"");
    label_value(op);
    printf("\"} %" PRIu64 ".%09" PRIu64 "\n", ns / 1000000000u,
           ns % 1000000000u);
    printf("%s_count{guest=\"", metric);
    label_value(s[i].guest);
    printf("\",opcode=\"");
    label_value(op);
    printf("\"} %" PRIu64 "\n", cum);
  }
}

int stat_openmetrics(char *answer) {
  static const char header[] = "# guest\tname\tvalue\n";
  if (strncmp(answer, header, sizeof(header) - 1) != 0) {
    fprintf(stderr, "hwsock-stat: unexpected counters header (a VMM of "
                    "another version?)\n");
    return -1;
  }
  sample *s = NULL;
  size_t n = 0, cap = 0;
  for (char *p = answer + sizeof(header) - 1; *p != '\0';) {
    char *line = p, *nl = strchr(p, '\n');
    if (nl == NULL) {
      fprintf(stderr, "hwsock-stat: truncated counters answer\n");
      free(s);
      return -1;
    }
    *nl = '\0';
    p = nl + 1;
    char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (t2 != NULL) {
      *t1 = '\0';
      *t2 = '\0';
    }
    if (t2 == NULL || strchr(t2 + 1, '\t') != NULL || !is_count(line)) {
      fprintf(stderr, "hwsock-stat: malformed counters line\n");
      free(s);
      return -1;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 256;
      sample *ns = realloc(s, cap * sizeof(*s));
      if (ns == NULL) {
        fprintf(stderr, "hwsock-stat: out of memory\n");
        free(s);
        return -1;
      }
      s = ns;
    }
    s[n].guest = line;
    s[n].name = t1 + 1;
    s[n].value = t2 + 1;
    n++;
  }
  print_scalars(s, n);
  print_labelled(s, n);
  print_latency(s, n);
  free(s);
  return 0;
}
