/* libFuzzer: hwsock_uri_parse on arbitrary bytes, with and without
 * HWSOCK_URI_ALLOW_PORT0. Whatever it accepts must format to a canonical
 * text that parses back to the same bytes and formats to itself; whatever
 * it rejects must come with a reason. Any breach aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hwsock/uri.h"
#include "hwsock/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *text, size_t size, unsigned flags,
                  hwsock_addr *out, int *ok) {
  char t1[HWSOCK_URI_MAX + 1], t2[HWSOCK_URI_MAX + 1];
  hwsock_addr a, b;
  const char *why = "unset";
  int rc = hwsock_uri_parse(text, size, flags, &a, &why);
  int n;

  *ok = rc == 0;
  if (rc != 0) {
    if (why == NULL || (rc != HWSOCK_EBADURI && rc != HWSOCK_ENAMETOOLONG) ||
        ((rc == HWSOCK_ENAMETOOLONG) != (size > HWSOCK_URI_MAX)))
      abort();
    return;
  }
  if (why != NULL || hwsock_scheme_name(a.scheme) == NULL ||
      a.family != hwsock_scheme_family(a.scheme) ||
      (a.port == 0 && !(flags & HWSOCK_URI_ALLOW_PORT0)))
    abort();
  n = hwsock_uri_format(&a, t1, sizeof(t1));
  if (n <= 0 || (size_t)n > HWSOCK_URI_MAX || strlen(t1) != (size_t)n)
    abort();
  if (hwsock_uri_parse(t1, (size_t)n, flags, &b, &why) != 0)
    abort();
  if (memcmp(&a, &b, sizeof(a)) != 0)
    abort();
  if (hwsock_uri_format(&b, t2, sizeof(t2)) != n || memcmp(t1, t2, (size_t)n))
    abort();
  /* an IPv4-in-IPv6 answer only for IPv6 addresses */
  if (hwsock_addr_embedded_v4(&a, NULL) && a.family != HWSOCK_AF_INET6)
    abort();
  *out = a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hwsock_addr strict, loose;
  int ok_strict, ok_loose;
  check((const char *)data, size, 0, &strict, &ok_strict);
  check((const char *)data, size, HWSOCK_URI_ALLOW_PORT0, &loose, &ok_loose);
  /* the flag only ever adds port 0: what passes without it passes with it,
   * with the same result */
  if (ok_strict && (!ok_loose || memcmp(&strict, &loose, sizeof(strict)) != 0))
    abort();
  if (ok_loose && !ok_strict && loose.port != 0)
    abort();
  return 0;
}
