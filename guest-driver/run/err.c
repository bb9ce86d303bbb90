/* hwsock-run's one error domain (runerr.h): host errno -> run error at the
 * call that failed, run error -> errno where the program's answer is
 * written. Calls nothing of run/: a leaf. */
#include <errno.h>
#include <string.h>

#include "runerr.h"

int hwsock__run_err(int host_errno) {
  if (host_errno == 0)
    return 0;
  if (host_errno < 0 || host_errno > RUN_EHOST_MAX)
    return HWSOCK_EIO; /* no errno: nothing to keep */
  int err = hwsock_err_from_errno(host_errno);
  if (hwsock_err_to_errno(err) == host_errno)
    return err;
  return RUN_EHOST_BASE - host_errno; /* not in the map: carried as is */
}

int hwsock__run_to_errno(int err) {
  if (err <= RUN_EHOST_BASE - 1 && err >= RUN_EHOST_BASE - RUN_EHOST_MAX)
    return RUN_EHOST_BASE - err;
  return hwsock_err_to_errno(err);
}

const char *hwsock__run_strerror(int err) {
  if (err <= RUN_EHOST_BASE - 1 && err >= RUN_EHOST_BASE - RUN_EHOST_MAX)
    return strerror(RUN_EHOST_BASE - err);
  return hwsock_strerror(err);
}
