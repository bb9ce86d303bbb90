/* The reaper's adaptive busy-poll window (KVM's halt-polling rule, and
 * NAPI's idea that polling pays only while work keeps arriving): a pure
 * function, unit-tested alone (test/guest/test_guest_pollwin.c). */
#ifndef HWSOCK_GUEST_POLLWIN_H
#define HWSOCK_GUEST_POLLWIN_H

#include <stdint.h>

/* The smallest window a grow starts from, and below which a shrink stops
 * polling altogether (µs). */
#define HWSOCK__POLL_GROW_START_US 10

/* The next poll window in µs, never above `max` (cfg.poll_us, 0: never
 * poll). `hit`: the last poll saw the completion (the window is right:
 * keep it). Else `slept_us` is how long the reaper then waited: a
 * completion within `max` would have been caught by a longer poll (grow:
 * double, from HWSOCK__POLL_GROW_START_US); a longer wait means polling
 * only burnt the CPU (shrink: halve, to 0 below the start value). */
unsigned hwsock__poll_next(unsigned cur, unsigned max, int hit,
                           int64_t slept_us);

#endif
