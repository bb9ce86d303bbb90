/* The device stopped: why, once, in the log. A VMM that finds the rings
 * broken sends NEEDS_RESET with a HWSOCK_RESET_* code (PROTOCOL.md §2.8,
 * §14); from then on every driver call fails, and the guest library keeps
 * the code (hwsock_attach_reset_reason). hwsock-run names it where it first
 * meets the failure, so that a user of -v learns which ring fault it was.
 * Calls only the state, the log and the driver's transport state. */
#include "hwsock/attach.h"
#include "hwsock/wire.h"
#include "run.h"

#define NAME(c) [c] = #c
static const char *const reset_names[] = {
    NAME(HWSOCK_RESET_NONE),
    NAME(HWSOCK_RESET_AVAIL_IDX),
    NAME(HWSOCK_RESET_HEAD_INDEX),
    NAME(HWSOCK_RESET_NEXT_INDEX),
    NAME(HWSOCK_RESET_CHAIN_LOOP),
    NAME(HWSOCK_RESET_CHAIN_SEGS),
    NAME(HWSOCK_RESET_CHAIN_IOVECS),
    NAME(HWSOCK_RESET_CHAIN_LEN),
    NAME(HWSOCK_RESET_BUFFER),
    NAME(HWSOCK_RESET_READ_AFTER_WRITE),
    NAME(HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED),
    NAME(HWSOCK_RESET_INDIRECT_WITH_NEXT),
    NAME(HWSOCK_RESET_INDIRECT_LEN),
    NAME(HWSOCK_RESET_INDIRECT_ENTRIES),
    NAME(HWSOCK_RESET_INDIRECT_REGION),
    NAME(HWSOCK_RESET_INDIRECT_NEXT_INDEX),
    NAME(HWSOCK_RESET_INDIRECT_LOOP),
    NAME(HWSOCK_RESET_INDIRECT_NESTED),
};
#undef NAME
/* a code added to hwsock/wire.h needs its name here */
_Static_assert(sizeof(reset_names) / sizeof(reset_names[0]) ==
                   HWSOCK_RESET_MAX_ + 1,
               "one name per HWSOCK_RESET_* code");

static int said; /* atomic: logged already */

void hwsock__run_device_gone(void) {
  if (__atomic_exchange_n(&said, 1, __ATOMIC_ACQ_REL))
    return;
  int why = hwsock_attach_reset_reason(hwsock__run.att);
  if (why > 0 && why <= HWSOCK_RESET_MAX_ && reset_names[why])
    hwsock__run_log("device reset: the VMM sent NEEDS_RESET (%s, code %d): "
                    "new sockets fail with ENETDOWN",
                    reset_names[why], why);
  else if (why > 0)
    hwsock__run_log("device reset: the VMM sent NEEDS_RESET (code %d, newer "
                    "than this hwsock-run): new sockets fail with ENETDOWN",
                    why);
  else
    hwsock__run_log("device gone: the VMM hung up without a NEEDS_RESET "
                    "reason: new sockets fail with ENETDOWN");
}

int hwsock__run_transport_lost(void) {
  if (hwsock__run.device_down)
    return 1;
  if (hwsock_guest_transport_error(hwsock__run.g) == 0)
    return 0;
  hwsock__run.device_down = 1;
  hwsock__run_device_gone();
  return 1;
}

void hwsock__run_device_closing(void) {
  __atomic_store_n(&said, 1, __ATOMIC_RELEASE);
}
