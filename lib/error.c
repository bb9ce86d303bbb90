/* The one error map (hwsock/common.h): names, messages, errno mapping. */
#include <errno.h>

#include "hwsock/common.h"

const char *hwsock_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define XX(name, val, host, msg)                                              \
  case HWSOCK_##name:                                                         \
    return msg;
    HWSOCK_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

const char *hwsock_err_name(int err) {
  switch (err) {
  case 0:
    return "HWSOCK_OK";
#define XX(name, val, host, msg)                                              \
  case HWSOCK_##name:                                                         \
    return "HWSOCK_" #name;
    HWSOCK_ERRNO_MAP(XX)
#undef XX
  default:
    return "HWSOCK_EUNKNOWN";
  }
}

int hwsock_err_to_errno(int err) {
  switch (err) {
  case 0:
    return 0;
#define XX(name, val, host, msg)                                              \
  case HWSOCK_##name:                                                         \
    return host;
    HWSOCK_ERRNO_MAP(XX)
#undef XX
  default:
    return EIO;
  }
}

int hwsock_err_from_errno(int host_errno) {
  if (host_errno == 0)
    return 0;
#if EWOULDBLOCK != EAGAIN
  if (host_errno == EWOULDBLOCK)
    return HWSOCK_EAGAIN;
#endif
#if ENOTSUP != EOPNOTSUPP
  if (host_errno == ENOTSUP)
    return HWSOCK_EOPNOTSUPP;
#endif
  /* Only the map's own errors: protocol outcomes never come from errno. */
#define XX(name, val, host, msg)                                              \
  if (val < 1000 && host_errno == host)                                       \
    return HWSOCK_##name;
  HWSOCK_ERRNO_MAP(XX)
#undef XX
  return HWSOCK_EIO;
}

int hwsock_err_is_known(uint32_t wire_status) {
  switch (wire_status) {
#define XX(name, val, host, msg)                                              \
  case val:                                                                   \
    return 1;
    HWSOCK_ERRNO_MAP(XX)
#undef XX
  default:
    return 0;
  }
}

unsigned hwsock_version(void) { return HWSOCK_VERSION_HEX; }

const char *hwsock_version_string(void) { return HWSOCK_VERSION_STRING; }
