/* hwsock-stat --openmetrics (openmetrics.c). */
#ifndef HWSOCK_STAT_OPENMETRICS_H
#define HWSOCK_STAT_OPENMETRICS_H

/* Prints the control socket's counters-tsv answer (modified in place) in
 * the Prometheus text exposition format. 0, or -1 after a message on
 * stderr. */
int stat_openmetrics(char *answer);

#endif
