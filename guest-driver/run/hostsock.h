/* hwsock-run: calls on host INET sockets (declined ones, or inherited:
 * hostsock.c), under confinement received fds (unixrecv.c), and the
 * sendmmsg/recvmmsg handlers (target.c). */
#ifndef HWSOCK_RUN_HOSTSOCK_H
#define HWSOCK_RUN_HOSTSOCK_H

#include "run.h"

/* For a call on a host TCP/UDP socket without confinement (t->kind ==
 * RT_KERNEL_INET): every destination the call names (connect, sendto,
 * sendmsg, sendmmsg; for TCP only a MSG_FASTOPEN send uses one) is asked of
 * the device. Returns 0 when the call may continue in the kernel, 1 when it
 * was answered (refused with the policy's errno, or failed). */
int hwsock__run_host_check(run_call *c, const run_target *t);

/* unixrecv.c: under confinement, a recvmsg/recvmmsg on a unix socket with
 * a control buffer (fds may arrive with SCM_RIGHTS) is performed by the
 * supervisor, which replaces received INET sockets by dead sockets. 1 when
 * the call was answered, 0 when it may continue in the kernel. */
int hwsock__run_unix_recv(run_call *c, const run_target *t);

void hwsock__run_on_sendmmsg(run_call *c);
void hwsock__run_on_recvmmsg(run_call *c);

#endif
