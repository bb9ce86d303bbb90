/* The ABI of the size-prefixed structs: a caller built against an older
 * (smaller) or a newer (larger) header. The *_init functions write no more
 * than the caller's struct; hwsock_device_new() refuses sizes it cannot
 * interpret; a kick names an existing queue; the stats struct is filled up
 * to the caller's size. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#include "hwsock/attach.h"
#include "hwsock/device.h"
#include "hwsock/guest.h"
#include "hwsock/stats.h"

/* The sizes of the first versions (0.1.0) of the structs. */
#define CONFIG_V1 offsetof(hwsock_device_config, inband_negotiation)
#define OPS_V1 (offsetof(hwsock_device_ops, log) + sizeof(void *))
#define GUEST_CONFIG_V1 (offsetof(hwsock_guest_config, write_behind) + sizeof(int))
#define ATTACH_OPTS_V1 (offsetof(hwsock_attach_opts, write_behind) + sizeof(int))

#define CANARY 0xa5

/* A struct of `size` bytes followed by canary bytes, as an old caller's
 * stack holds it. */
typedef union {
  unsigned char bytes[32768];
  max_align_t align;
} buffer;

static void fill(buffer *b) { memset(b->bytes, CANARY, sizeof(b->bytes)); }

static int canary_intact(const buffer *b, size_t from) {
  for (size_t i = from; i < sizeof(b->bytes); i++)
    if (b->bytes[i] != CANARY)
      return 0;
  return 1;
}

Test(abi, legacy_config_init_writes_only_the_first_versions_struct) {
  buffer b;
  fill(&b);
  /* the exported 0.1 entry point, as binaries built against 0.1.0 call it */
  (hwsock_device_config_init)((hwsock_device_config *)b.bytes);
  const hwsock_device_config *c = (const hwsock_device_config *)b.bytes;
  cr_assert_eq(c->size, CONFIG_V1);
  cr_assert(canary_intact(&b, CONFIG_V1), "wrote past a 0.1.0 config");
}

Test(abi, config_init_writes_the_callers_size) {
  buffer b;
  fill(&b);
  size_t n = offsetof(hwsock_device_config, identity);
  hwsock_device_config_init_sized((hwsock_device_config *)b.bytes, n);
  cr_assert_eq(((hwsock_device_config *)b.bytes)->size, n);
  cr_assert(canary_intact(&b, n));
  /* the macro passes the caller's sizeof */
  hwsock_device_config cfg;
  memset(&cfg, CANARY, sizeof(cfg));
  hwsock_device_config_init(&cfg);
  cr_assert_eq(cfg.size, sizeof(cfg));
  cr_assert_eq(cfg.num_queues, 0);
  cr_assert_eq(cfg.kick_budget, 0);
}

Test(abi, guest_config_and_attach_opts_init_write_the_callers_size) {
  buffer b;
  fill(&b);
  (hwsock_guest_config_init)((hwsock_guest_config *)b.bytes);
  cr_assert_eq(((hwsock_guest_config *)b.bytes)->size, GUEST_CONFIG_V1);
  cr_assert(canary_intact(&b, GUEST_CONFIG_V1));
  fill(&b);
  (hwsock_attach_opts_init)((hwsock_attach_opts *)b.bytes);
  cr_assert_eq(((hwsock_attach_opts *)b.bytes)->size, ATTACH_OPTS_V1);
  cr_assert(canary_intact(&b, ATTACH_OPTS_V1));

  size_t n = offsetof(hwsock_guest_config, write_behind);
  fill(&b);
  hwsock_guest_config_init_sized((hwsock_guest_config *)b.bytes, n);
  cr_assert_eq(((hwsock_guest_config *)b.bytes)->size, n);
  cr_assert_eq(((hwsock_guest_config *)b.bytes)->event_idx, 1);
  cr_assert(canary_intact(&b, n));
  n = offsetof(hwsock_attach_opts, write_behind);
  fill(&b);
  hwsock_attach_opts_init_sized((hwsock_attach_opts *)b.bytes, n);
  cr_assert_eq(((hwsock_attach_opts *)b.bytes)->size, n);
  cr_assert(canary_intact(&b, n));

  hwsock_guest_config g;
  hwsock_guest_config_init(&g);
  cr_assert_eq(g.size, sizeof(g));
  hwsock_attach_opts o;
  hwsock_attach_opts_init(&o);
  cr_assert_eq(o.size, sizeof(o));
  cr_assert_eq(o.setup_timeout_ms, 10000);
}

static int new_device(const void *cfg) {
  hwsock_device *d = NULL;
  int rc = hwsock_device_new((const hwsock_device_config *)cfg, &d);
  if (rc == 0)
    cr_assert_not_null(d);
  hwsock_device_free(d);
  return rc;
}

Test(abi, device_new_refuses_a_config_size_it_does_not_know) {
  buffer b;
  memset(&b, 0, sizeof(b));
  hwsock_device_config *c = (hwsock_device_config *)b.bytes;
  c->size = CONFIG_V1;
  cr_assert_eq(new_device(c), 0, "the 0.1.0 config");
  c->size = CONFIG_V1 - 8;
  cr_assert_eq(new_device(c), HWSOCK_EINVAL, "smaller than the first version");
  c->size = sizeof(uint32_t);
  cr_assert_eq(new_device(c), HWSOCK_EINVAL);
  /* a newer caller: accepted while what we do not know is zero */
  c->size = sizeof(hwsock_device_config) + 64;
  cr_assert_eq(new_device(c), 0, "larger, zero tail");
  b.bytes[sizeof(hwsock_device_config) + 63] = 1;
  cr_assert_eq(new_device(c), HWSOCK_EINVAL, "larger, non-zero tail");
}

static void on_notify(void *o, unsigned q) {}

Test(abi, device_new_refuses_an_ops_size_it_does_not_know) {
  buffer ob;
  memset(&ob, 0, sizeof(ob));
  hwsock_device_ops *ops = (hwsock_device_ops *)ob.bytes;
  ops->notify = on_notify;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.ops = ops;
  ops->size = OPS_V1;
  cr_assert_eq(new_device(&c), 0, "the 0.1.0 ops");
  ops->size = offsetof(hwsock_device_ops, needs_reset);
  cr_assert_eq(new_device(&c), HWSOCK_EINVAL, "smaller than the first version");
  ops->size = sizeof(hwsock_device_ops) + 32;
  cr_assert_eq(new_device(&c), 0, "larger, zero tail");
  ob.bytes[sizeof(hwsock_device_ops) + 8] = 1;
  cr_assert_eq(new_device(&c), HWSOCK_EINVAL, "larger, non-zero tail");
}

Test(abi, kicking_a_queue_that_does_not_exist_is_einval) {
  hwsock_device *d = NULL;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.num_queues = 2;
  cr_assert_eq(hwsock_device_new(&c, &d), 0);
  cr_assert_eq(hwsock_device_kick(d, 2), HWSOCK_EINVAL);
  cr_assert_eq(hwsock_device_kick(d, 1000), HWSOCK_EINVAL);
  /* an existing queue before DRIVER_OK: nothing to do yet, not an error */
  cr_assert_eq(hwsock_device_kick(d, 1), 0);
  hwsock_device_free(d);
}

Test(abi, stats_are_copied_up_to_the_callers_size) {
  hwsock_device *d = NULL;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  cr_assert_eq(hwsock_device_new(&c, &d), 0);
  hwsock_device_reset(d);
  hwsock_device_reset(d);

  buffer b;
  fill(&b);
  hwsock_device_stats *s = (hwsock_device_stats *)b.bytes;
  size_t n = offsetof(hwsock_device_stats, bytes_out);
  s->size = (uint32_t)n;
  hwsock_device_get_stats(d, s);
  cr_assert_eq(s->size, n);
  cr_assert_eq(s->resets, 2);
  cr_assert(canary_intact(&b, n));

  fill(&b);
  s->size = sizeof(*s);
  hwsock_device_get_stats(d, s);
  cr_assert_eq(s->size, sizeof(*s));
  cr_assert_eq(s->resets, 2);
  cr_assert_eq(s->requests_by_op[HWSOCK_OP_MAX_ + 1], 0, "slot beyond the "
               "last opcode is zero, not a neighbour's counter");
  cr_assert_eq(s->latency[HWSOCK_STATS_OPS - 1][HWSOCK_LAT_BUCKETS - 1], 0);
  cr_assert(canary_intact(&b, sizeof(*s)));
  hwsock_device_free(d);
}

/* The 0.1.0 stats layout: 13 opcode slots; a caller built against it passes
 * exactly its size and finds each counter where 0.1.0 put it. */
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

Test(abi, a_caller_of_the_0_1_0_stats_gets_that_layout) {
  hwsock_device *d = NULL;
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  cr_assert_eq(hwsock_device_new(&c, &d), 0);
  hwsock_device_reset(d);
  hwsock_device_reset(d);
  hwsock_device_reset(d);

  buffer b;
  fill(&b);
  stats_v010 *o = (stats_v010 *)b.bytes;
  o->size = sizeof(*o);
  hwsock_device_get_stats(d, (hwsock_device_stats *)o);
  cr_assert_eq(o->size, sizeof(*o));
  cr_assert_eq(o->resets, 3, "resets at its 0.1.0 offset");
  cr_assert_eq(o->kicks, 0);
  cr_assert(canary_intact(&b, sizeof(*o)));
  /* the renderings read the caller's layout too */
  char json[65536];
  cr_assert(hwsock_stats_json((hwsock_device_stats *)o, json, sizeof(json)) > 0);
  cr_assert_not_null(strstr(json, "\"resets\":3"), "%s", json);
  hwsock_device_free(d);
}
