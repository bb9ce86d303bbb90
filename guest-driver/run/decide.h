/* hwsock-run: what decide.c offers the other handlers besides run.h. */
#ifndef HWSOCK_RUN_DECIDE_H
#define HWSOCK_RUN_DECIDE_H

#include "run.h"

/* sendto(MSG_FASTOPEN) with an address on an undecided or bound TCP
 * socket: a connect to uri (the decision, as connect(2) makes it) that
 * then writes the n bytes at data to the program end, where the up pump
 * sends them after the connection's handshake, as the kernel does without
 * a fast open cookie; answers the call (the bytes written; EINPROGRESS
 * when a nonblocking connect is still in progress, nothing written; a
 * decline continues the call on the host socket). */
void hwsock__run_connect_with_data(run_call *c, run_target *t, const char *uri,
                                   const uint8_t *data, size_t n, int flags);

#endif
