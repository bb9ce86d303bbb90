/* hwsock-run's process-wide state (run.h: run_state), shared by every file
 * of guest-driver/run. It calls nothing: the lowest layer of the program. */
#include "run.h"

run_state hwsock__run = {.notify_fd = -1};
