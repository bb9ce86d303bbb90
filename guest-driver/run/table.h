/* hwsock-run --table PATH: the guest-side socket table in a file, the
 * analogue of the VMM's /proc/net/hwsock (docs/OBSERVABILITY.md). */
#ifndef HWSOCK_RUN_TABLE_H
#define HWSOCK_RUN_TABLE_H

/* How often the table is looked at: a socket that changes state (a new
 * socket, a connect, a close, a new address) is in the file within this. */
#define RUN_TABLE_POLL_MS 100
/* Counters alone (bytes, requests in flight) rewrite the file at most this
 * often. */
#define RUN_TABLE_MIN_INTERVAL_MS 1000

/* Before the fork: remembers PATH (made absolute) and exports it to the
 * program as HWSOCK_TABLE. 0 or -errno (reported). */
int hwsock__run_table_init(const char *path);
/* After the supervisor started: the thread that writes the file (temp file
 * + rename, so a reader never sees half a table). Needs hwsock__run.g.
 * 0 or -errno (reported); nothing when no PATH was given. */
int hwsock__run_table_start(void);
/* Writes the table one last time and stops the thread (before the driver
 * is freed). The file stays. */
void hwsock__run_table_stop(void);

#endif
