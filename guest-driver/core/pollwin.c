/* The reaper's adaptive busy-poll window: see pollwin.h. A fixed window
 * either wastes a CPU while the device is idle (rare traffic, a 50 ms sleep
 * after every poll) or sleeps through completions that arrive a few µs
 * after it ends; the window follows where completions actually arrive. */
#include "pollwin.h"

unsigned hwsock__poll_next(unsigned cur, unsigned max, int hit,
                           int64_t slept_us) {
  if (max == 0)
    return 0;
  if (cur > max)
    cur = max;
  if (hit)
    return cur;
  if (slept_us >= 0 && slept_us <= (int64_t)max) {
    unsigned next = cur < HWSOCK__POLL_GROW_START_US
                        ? HWSOCK__POLL_GROW_START_US
                        : (cur > max / 2 ? max : cur * 2);
    return next > max ? max : next;
  }
  cur /= 2;
  return cur < HWSOCK__POLL_GROW_START_US ? 0 : cur;
}
