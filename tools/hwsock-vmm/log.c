/* Logging: one line per event on stderr, written with a single write() so
 * that lines of several processes sharing a terminal do not interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "vmm.h"

int vmm_log_level = HWSOCK_LOG_ERROR;
const char *vmm_log_prog = "hwsock-vmm";

static const char *level_name(int level) {
  switch (level) {
  case HWSOCK_LOG_ERROR: return "error";
  case HWSOCK_LOG_WARN: return "warning";
  case HWSOCK_LOG_INFO: return "info";
  default: return "debug";
  }
}

void vmm_log(int level, const char *fmt, ...) {
  if (level > vmm_log_level)
    return;
  char line[512];
  int n = snprintf(line, sizeof(line), "%s[%ld]: %s: ", vmm_log_prog,
                   (long)getpid(), level_name(level));
  if (n < 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof(line) - 2)
    len = sizeof(line) - 2; /* cut long lines, keep the newline */
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w; /* nowhere left to report a failing stderr */
}
