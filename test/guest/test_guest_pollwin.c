/* The reaper's adaptive poll window (guest-driver/core/pollwin.c), alone:
 * no clock, only the rule — grow while completions come soon after the
 * poll gave up, shrink to 0 while they do not, never above the cap. */
#include <criterion/criterion.h>

#include "pollwin.h"

#define START HWSOCK__POLL_GROW_START_US

Test(pollwin, no_cap_never_polls) {
  cr_assert_eq(hwsock__poll_next(0, 0, 0, 1), 0);
  cr_assert_eq(hwsock__poll_next(40, 0, 1, 0), 0);
}

Test(pollwin, a_hit_keeps_the_window) {
  cr_assert_eq(hwsock__poll_next(20, 50, 1, 0), 20);
  cr_assert_eq(hwsock__poll_next(80, 50, 1, 0), 50, "clamped to the cap");
}

Test(pollwin, completions_soon_after_grow_it_to_the_cap) {
  unsigned w = 0;
  w = hwsock__poll_next(w, 100, 0, 30);
  cr_assert_eq(w, START);
  unsigned prev = w;
  for (int i = 0; i < 10; i++) {
    w = hwsock__poll_next(w, 100, 0, 30);
    cr_assert_geq(w, prev);
    cr_assert_leq(w, 100);
    prev = w;
  }
  cr_assert_eq(w, 100);
}

Test(pollwin, long_sleeps_shrink_it_to_zero) {
  unsigned w = 100;
  int steps = 0;
  while (w != 0 && steps < 32) {
    unsigned next = hwsock__poll_next(w, 100, 0, 50000);
    cr_assert_lt(next, w);
    w = next;
    steps++;
  }
  cr_assert_eq(w, 0, "polling stops when the device is idle");
  cr_assert_leq(steps, 4);
  /* and comes back once completions arrive right after the poll again */
  cr_assert_eq(hwsock__poll_next(0, 100, 0, 5), START);
}

Test(pollwin, a_small_cap_is_respected_from_the_start) {
  cr_assert_eq(hwsock__poll_next(0, 4, 0, 2), 4);
  cr_assert_eq(hwsock__poll_next(4, 4, 0, 2), 4);
  cr_assert_eq(hwsock__poll_next(4, 4, 0, 100), 0);
}
