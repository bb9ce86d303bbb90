/* hwsock-run's private loopback VMM (vmm.c). */
#ifndef HWSOCK_RUN_VMM_H
#define HWSOCK_RUN_VMM_H

#include <limits.h>
#include <sys/types.h>

/* --max-sockets and --guest-sockets of the private hwsock-vmm: ids and
 * host sockets for as many connections as the fd limits allow. */
#define RUN_VMM_MAX_SOCKETS "65536"

typedef struct run_vmm {
  pid_t pid;            /* -1 when not running */
  char dir[PATH_MAX];   /* private temp directory */
  char path[PATH_MAX];  /* its unix socket */
} run_vmm;

/* Starts hwsock-vmm on a private socket and waits until it is ready.
 * 0, or -1 after printing why. */
int hwsock__run_vmm_start(run_vmm *v, const char *policy, int verbose);
/* Waits for it to exit (it does after we detach), kills it if it does not,
 * removes the socket and the directory. */
void hwsock__run_vmm_stop(run_vmm *v);

#endif
