/* The five URI schemes and the (family, socket type) each one stands for.
 * One table so that names, families and types can never disagree. */
#include <string.h>

#include "hwsock/uri.h"
#include "hwsock/wire.h"

static const struct {
  const char *name;
  unsigned family;
  unsigned socktype;
} schemes[] = {
    [HWSOCK_SCHEME_TCP] = {"tcp", HWSOCK_AF_INET, HWSOCK_SOCK_STREAM},
    [HWSOCK_SCHEME_UDP] = {"udp", HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM},
    [HWSOCK_SCHEME_TCP6] = {"tcp6", HWSOCK_AF_INET6, HWSOCK_SOCK_STREAM},
    [HWSOCK_SCHEME_UDP6] = {"udp6", HWSOCK_AF_INET6, HWSOCK_SOCK_DGRAM},
    [HWSOCK_SCHEME_IPX] = {"ipx", HWSOCK_AF_IPX, HWSOCK_SOCK_DGRAM},
};

#define NSCHEMES ((int)(sizeof(schemes) / sizeof(schemes[0])))

static int known(int scheme) {
  return scheme > HWSOCK_SCHEME_NONE && scheme < NSCHEMES;
}

const char *hwsock_scheme_name(int scheme) {
  return known(scheme) ? schemes[scheme].name : NULL;
}

int hwsock_scheme_from_name(const char *name) {
  if (name == NULL)
    return HWSOCK_SCHEME_NONE;
  for (int s = HWSOCK_SCHEME_NONE + 1; s < NSCHEMES; s++)
    if (strcmp(name, schemes[s].name) == 0)
      return s;
  return HWSOCK_SCHEME_NONE;
}

unsigned hwsock_scheme_family(int scheme) {
  return known(scheme) ? schemes[scheme].family : 0;
}

unsigned hwsock_scheme_socktype(int scheme) {
  return known(scheme) ? schemes[scheme].socktype : 0;
}

int hwsock_scheme_for(unsigned family, unsigned socktype) {
  for (int s = HWSOCK_SCHEME_NONE + 1; s < NSCHEMES; s++)
    if (schemes[s].family == family && schemes[s].socktype == socktype)
      return s;
  return HWSOCK_SCHEME_NONE;
}
