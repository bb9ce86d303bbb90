/* Fairness between devices on one loop (device.h kick_budget, uv.h): a
 * guest that keeps its queue full gets one budget of requests per loop
 * turn (two in the turn it kicks: the kick's and the flush's; kicking
 * again while it has leftovers buys nothing), another guest's request is served in the same turn, what is
 * left is taken on the next turns without a new kick (no work lost), and
 * once the queue is empty the loop may sleep again (no spin).
 *
 * Two devices with vring-builder queues, each driven by a libuv adapter
 * watching its kick eventfd, on one loop; the requests are cheap ones the
 * device answers itself (GETNAME of a socket id never opened: EBADF). */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include "device_int.h"
#include "hwsock/uv.h"
#include "support/vring_builder.h"

#define QSIZE 256u
#define BUDGET 8u

typedef struct guest {
  vrb r;
  hwsock_device *dev;
  hwsock_uv *uv;
  int kick;
} guest;

static uv_loop_t loop;
static guest a, b;

static void guest_new(guest *g) {
  hwsock_device_config c;
  hwsock_device_config_init(&c);
  c.max_sockets = 16;
  c.max_inflight = QSIZE;
  c.kick_budget = BUDGET;
  c.backend_loop = &loop;
  cr_assert_eq(vrb_init(&g->r, 0, 0, QSIZE), 0);
  cr_assert_eq(hwsock_device_new(&c, &g->dev), 0);
  cr_assert_eq(hwsock_device_add_region(g->dev, g->r.gpa, g->r.size,
                                        g->r.mem), 0);
  cr_assert_eq(hwsock_device_set_features(g->dev, HWSOCK_F_VERSION_1), 0);
  cr_assert_eq(hwsock_device_queue_setup(g->dev, 0, QSIZE, g->r.desc_gpa,
                                         g->r.avail_gpa, g->r.used_gpa), 0);
  cr_assert_eq(hwsock_device_start(g->dev), 0);
  g->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  cr_assert(g->kick >= 0);
  cr_assert_eq(hwsock_uv_new(&loop, g->dev, &g->uv), 0);
  cr_assert_eq(hwsock_uv_watch_kick(g->uv, 0, g->kick), 0);
}

static void guest_free(guest *g) {
  hwsock_uv_close(g->uv);
  hwsock_device_free(g->dev);
  close(g->kick);
  vrb_free(&g->r);
}

static void setup(void) {
  cr_assert_eq(uv_loop_init(&loop), 0);
  guest_new(&a);
  guest_new(&b);
}

static void teardown(void) {
  guest_free(&a);
  guest_free(&b);
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0)
    ;
  uv_loop_close(&loop);
}

/* n cheap requests on g's queue, published, and a kick. */
static void post(guest *g, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    uint64_t req = vrb_alloc(&g->r, sizeof(hwsock_req_hdr), 8);
    uint64_t resp = vrb_alloc(&g->r, 64, 8);
    cr_assert(req != 0 && resp != 0);
    hwsock_req_hdr *h = vrb_host(&g->r, req);
    hwsock_le16_set(&h->opcode, HWSOCK_OP_GETNAME);
    hwsock_le32_set(&h->sock_id, 3);
    vrb_seg segs[2] = {{req, sizeof(hwsock_req_hdr), 0},
                       {resp, 64, HWSOCK_VRING_DESC_F_WRITE}};
    cr_assert(vrb_add_chain(&g->r, segs, 2) >= 0);
  }
  vrb_publish(&g->r);
  uint64_t one = 1;
  cr_assert_eq(write(g->kick, &one, sizeof(one)), (ssize_t)sizeof(one));
}

static unsigned completed(guest *g) {
  unsigned n = 0;
  uint32_t id, len;
  while (vrb_get_used(&g->r, &id, &len))
    n++;
  return n;
}

TestSuite(fair, .init = setup, .fini = teardown, .timeout = 30);

Test(fair, a_full_queue_gets_one_budget_per_turn_and_another_guest_is_served) {
  post(&a, QSIZE / 2);
  post(&b, 1);
  /* One turn: both kicks are seen; A gets its budget, B its request. */
  uv_run(&loop, UV_RUN_ONCE);
  unsigned a_done = completed(&a);
  cr_assert_eq(completed(&b), 1, "B's request waited behind A's queue");
  cr_assert(a_done >= 1 && a_done <= 2 * BUDGET,
            "A took %u requests in one turn (budget %u)", a_done, BUDGET);
  cr_assert(hwsock_device_pending(a.dev), "A's leftovers are not pending");
  cr_assert_eq(hwsock_device_pending(b.dev), 0);
  cr_assert_eq(uv_backend_timeout(&loop), 0,
               "the loop would sleep with A's requests left over");

  /* The rest comes on the next turns, without another kick, a budget at a
   * time; B, posting again meanwhile, is served in the turn it kicks. */
  unsigned turns = 0;
  while (a_done < QSIZE / 2 && turns < QSIZE) {
    post(&b, 1);
    uv_run(&loop, UV_RUN_NOWAIT);
    unsigned got = completed(&a);
    cr_assert(got <= BUDGET, "A took %u in one turn", got);
    cr_assert_eq(completed(&b), 1, "turn %u: B not served", turns);
    a_done += got;
    turns++;
  }
  cr_assert_eq(a_done, QSIZE / 2, "A's requests lost: %u of %u completed",
               a_done, QSIZE / 2);
  cr_assert(turns >= (QSIZE / 2) / BUDGET - 2);

  /* Drained: nothing pending, and the loop may block (no spin). */
  uv_run(&loop, UV_RUN_NOWAIT);
  cr_assert_eq(hwsock_device_pending(a.dev), 0);
  cr_assert_neq(uv_backend_timeout(&loop), 0,
                "the loop spins with nothing left to do");
}

Test(fair, a_guest_kicking_in_a_loop_gets_no_extra_turns) {
  post(&a, QSIZE / 2);
  uv_run(&loop, UV_RUN_ONCE);
  unsigned a_done = completed(&a);
  for (int i = 0; i < 4; i++) {
    uint64_t one = 1;
    cr_assert_eq(write(a.kick, &one, sizeof(one)), (ssize_t)sizeof(one));
    uv_run(&loop, UV_RUN_NOWAIT);
    unsigned got = completed(&a);
    cr_assert(got <= BUDGET, "a kick bought A %u requests", got);
    a_done += got;
  }
  while (hwsock_device_pending(a.dev))
    uv_run(&loop, UV_RUN_NOWAIT), a_done += completed(&a);
  a_done += completed(&a);
  cr_assert_eq(a_done, QSIZE / 2);
}
