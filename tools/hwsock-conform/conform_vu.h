/* hwsock-conform's vhost-user transport (--vhost-user PATH): the raw
 * guest's attachment (adv.h) made by playing a vhost-user front-end
 * (QEMU's messages, guest RAM in a memfd, one region) against a back-end
 * such as hwsock-vhost-user, with the config space and the device-class
 * features negotiated in band (PROTOCOL.md §5.13). Requests then go
 * through the same rings, kicks and calls as over the loopback transport. */
#ifndef HWSOCK_CONFORM_VU_H
#define HWSOCK_CONFORM_VU_H

#include "adversarial/adv.h"

/* Connects, sets up guest memory, both rings and the device, and sends
 * NEGOTIATE asking for nothing: a->cfg is the config space it returns.
 * 0, or -1 with the reason on stderr. */
int cvu_attach(adv *a, const char *path);
/* Stops the rings (the device resets), sets them up again with qsize
 * entries and the transport features of `features`, and NEGOTIATEs the
 * device-class ones. 0 or -1 (reason on stderr). */
int cvu_reset_setup(adv *a, uint64_t features, unsigned qsize);
/* Waits for a ring's error eventfd (vhost-user's NEEDS_RESET, which
 * carries no code): 0, or -1 after timeout_ms. Sets a->reset_code to 0. */
int cvu_wait_reset(adv *a, int timeout_ms);
void cvu_detach(adv *a);

#endif
