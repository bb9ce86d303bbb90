/* hwsock-run -v: one line on stderr per decision and failure. Every file
 * of guest-driver/run logs through here; it calls no other file but the
 * state's. */
#include <stdarg.h>
#include <stdio.h>

#include "run.h"

void hwsock__run_log(const char *fmt, ...) {
  if (!hwsock__run.verbose)
    return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "hwsock-run: %s\n", line);
}
