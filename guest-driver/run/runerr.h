/* hwsock-run's one error domain (docs/HWSOCK-RUN.md, "Errors"; err.c).
 *
 * Inside guest-driver/run/ every function answers 0 (or a count) or a
 * negative HWSOCK_E* value, whether the failure came from the device, from
 * a host call or from hwsock-run's own checks. A host errno becomes one
 * where it is received (hwsock__run_err), and the errno the program sees is
 * made only where it is written: the seccomp reply (hwsock__run_reply) and
 * the SO_ERROR value (hwsock__run_to_errno). Leaf file: the unit test
 * test_run_err builds it alone. */
#ifndef HWSOCK_RUN_ERR_H
#define HWSOCK_RUN_ERR_H

#include "hwsock/common.h"

/* A host errno the error map (hwsock/common.h) does not carry travels as
 * RUN_EHOST_BASE - errno: below every HWSOCK_E* value (> -4096) and below
 * the handlers' RUN_ANSWERED marker, so that it cannot be taken for either,
 * and given back unchanged by hwsock__run_to_errno. Nothing outside run/
 * ever sees such a value. */
#define RUN_EHOST_BASE (-200000)
#define RUN_EHOST_MAX 4095

/* A handler's "the call is answered already" (a decline CONTINUEd it or
 * answered EACCES): no error, nothing left to reply. Outside both ranges. */
#define RUN_ANSWERED (-100000)

/* A host errno (positive; 0 gives 0) as a run error: the map's HWSOCK_E*
 * when it maps back to the same errno, else the RUN_EHOST_BASE carrier.
 * Never loses the errno. */
int hwsock__run_err(int host_errno);

/* The errno a run error stands for (positive; 0 for 0): the map's for a
 * HWSOCK_E* value (hwsock_err_to_errno), the carried one for a carrier. */
int hwsock__run_to_errno(int err);

/* The message of a run error for log lines: hwsock_strerror()'s, or the
 * host's for a carried errno. Static string. */
const char *hwsock__run_strerror(int err);

#endif
