/* hwsock-run: the source queue of a datagram socket (srcq.c). The sum and
 * hwsock__run_dgram_take_err are declared in run.h. */
#ifndef HWSOCK_RUN_SRCQ_H
#define HWSOCK_RUN_SRCQ_H

#include "run.h"

/* The srcq entry of a record the program end just gave us (n bytes at p;
 * rxlock held), copied to *src (zeroed when there is none); popped unless
 * peek. Entries of records the program read without us are dropped. */
void hwsock__run_src_match(run_sock *s, const uint8_t *p, size_t n, int peek,
                           run_src *src);

/* 1 when the ring has room for one more entry (rxlock held): allocated
 * here, at the first entry; 0 for a stream socket, a full ring, or no
 * memory. */
int hwsock__run_srcq_room(run_sock *s);

/* hwsock__run_dgram_take_err with rxlock already held. */
int hwsock__run_dgram_take_err_locked(run_sock *s, int fd);

#endif
