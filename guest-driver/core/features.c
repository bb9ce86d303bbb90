/* hwsock_guest_features(): what was negotiated (set once by
 * hwsock_guest_new(), read-only afterwards, so no lock). */
#include "guest_int.h"

uint64_t hwsock_guest_features(const hwsock_guest *g) {
  return g ? g->features : 0;
}
