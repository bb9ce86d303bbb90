/* A test module that is a valid shared object but exports no
 * hwsock_backend_entry: the loader must say so. */
#include "hwsock/common.h"

HWSOCK_EXTERN int hwsock_test_not_a_backend(void);
HWSOCK_EXTERN int hwsock_test_not_a_backend(void) { return 42; }
