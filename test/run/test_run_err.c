/* hwsock-run's one error domain (docs/HWSOCK-RUN.md, "Errors"): inside
 * guest-driver/run/ every function answers 0 or a negative HWSOCK_E*, and
 * the errno a program sees is made only where the reply is written. That
 * is only lossless when every errno hwsock-run answers survives the trip
 * host errno -> HWSOCK_E* -> errno. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "hwsock/common.h"
#include "runerr.h"

/* The errnos hwsock-run answers by name (the .c files of guest-driver/run)
 * and those the host calls it makes on the program's behalf are documented
 * to fail with (pidfd_open/pidfd_getfd, socket, bind, send/recv on the
 * socketpair, setsockopt on a scratch socket, recvmsg on a unix socket). */
static const int named[] = {
    EPERM,        ENOENT,          ESRCH,        EINTR,        EIO,
    EBADF,        EAGAIN,          ENOMEM,       EACCES,       EFAULT,
    EBUSY,        EEXIST,          ENODEV,       EINVAL,       ENFILE,
    EMFILE,       ENOSPC,          EPIPE,        EDOM,         ERANGE,
    ENAMETOOLONG, ENOSYS,          EPROTO,       ENOTSOCK,     EDESTADDRREQ,
    EMSGSIZE,     EPROTOTYPE,      ENOPROTOOPT,  EPROTONOSUPPORT,
    ESOCKTNOSUPPORT, EOPNOTSUPP,   EAFNOSUPPORT, EADDRINUSE,   EADDRNOTAVAIL,
    ENETDOWN,     ENETUNREACH,     ENETRESET,    ECONNABORTED, ECONNRESET,
    ENOBUFS,      EISCONN,         ENOTCONN,     ETIMEDOUT,    ECONNREFUSED,
    EHOSTDOWN,    EHOSTUNREACH,    EALREADY,     EINPROGRESS,
};

Test(run_err, named_errnos_are_in_the_map) {
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
    int e = named[i];
    int h = hwsock_err_from_errno(e);
    cr_expect(hwsock_err_to_errno(h) == e,
              "errno %d (%s) becomes %s and comes back as %d", e,
              strerror(e), hwsock_err_name(h), hwsock_err_to_errno(h));
  }
}

/* Every errno a host call can fail with, in the map or not, comes back
 * unchanged from hwsock-run's conversion (the carrier keeps what the map
 * lacks). */
Test(run_err, every_host_errno_round_trips) {
  for (int e = 1; e <= RUN_EHOST_MAX; e++) {
    int err = hwsock__run_err(e);
    cr_expect(err < 0, "errno %d gives %d", e, err);
    cr_expect(hwsock__run_to_errno(err) == e, "errno %d (%s) comes back as %d",
              e, strerror(e), hwsock__run_to_errno(err));
  }
  cr_expect(hwsock__run_err(0) == 0);
  cr_expect(hwsock__run_to_errno(0) == 0);
}

/* A mapped errno is the map's HWSOCK_E* (what the device and log lines
 * name), not the carrier; the named ones are all mapped. */
Test(run_err, mapped_errnos_stay_in_the_map) {
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
    int err = hwsock__run_err(named[i]);
    cr_expect(err == hwsock_err_from_errno(named[i]) && err > -4096,
              "errno %d gives %d", named[i], err);
  }
}

/* Every HWSOCK_E* value (device answers included) becomes the map's errno,
 * and neither a carrier nor RUN_ANSWERED can be taken for one of them. */
Test(run_err, map_values_keep_the_map_errno) {
#define XX(name, val, host, msg)                                              \
  cr_expect(hwsock__run_to_errno(HWSOCK_##name) == host, "HWSOCK_" #name);     \
  cr_expect(HWSOCK_##name > RUN_EHOST_BASE - 1);
  HWSOCK_ERRNO_MAP(XX)
#undef XX
  cr_expect(RUN_ANSWERED < -4096);
  cr_expect(RUN_ANSWERED > RUN_EHOST_BASE - 1 ||
            RUN_ANSWERED < RUN_EHOST_BASE - RUN_EHOST_MAX);
}
