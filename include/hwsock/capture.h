/* libhwsock capture: offloaded flows as a pcap file (libpcap).
 *
 * The device never sees packets: the host kernel builds them. For
 * Wireshark, tcpdump and tshark, a capture synthesizes them from what the
 * device does see: TCP with a SYN / SYN-ACK / ACK at connect, data segments
 * with consistent sequence numbers in both directions, FIN at each side's
 * shutdown; UDP datagrams; IPX datagrams encapsulated in UDP port 213 (RFC
 * 1234). Addresses are the real 5-tuple (the backend's local and remote
 * names). Frames are Ethernet (DLT_EN10MB) with zero MAC addresses.
 *
 * A capture may be shared by several devices of one thread (one VMM loop).
 * When a device has no capture set, capture costs one pointer test per
 * completion. */
#ifndef HWSOCK_CAPTURE_H
#define HWSOCK_CAPTURE_H

#include "hwsock/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hwsock_capture hwsock_capture;

/* Creates a new pcap file: the path must not exist (O_CREAT|O_EXCL|
 * O_NOFOLLOW, mode 0600 before the umask): an existing file, or a symlink,
 * is never followed nor truncated. max_bytes bounds the file size (0 = 64
 * MiB); frames past it are counted as dropped, not written. *out is the
 * caller's (hwsock_capture_close). Errors: HWSOCK_EINVAL, HWSOCK_ENOMEM,
 * HWSOCK_EEXIST (the path exists), what open(2) failed with, or HWSOCK_EIO
 * (libpcap); errbuf says why and names the path. */
HWSOCK_EXTERN int hwsock_capture_open(const char *path, uint64_t max_bytes,
                                      hwsock_capture **out, char *errbuf,
                                      size_t errlen);

/* Flushes and closes. Devices using it must have been detached first
 * (hwsock_device_set_capture(dev, NULL)) or freed. NULL is allowed. */
HWSOCK_EXTERN void hwsock_capture_close(hwsock_capture *c);

/* Frames written and dropped (over max_bytes) so far. */
HWSOCK_EXTERN void hwsock_capture_counts(const hwsock_capture *c,
                                         uint64_t *written, uint64_t *dropped);

/* Starts (c != NULL) or stops (NULL) capturing a device's flows. Sockets
 * offloaded before the start are captured from their next event on, without
 * a handshake. The capture must outlive the device or be detached. */
HWSOCK_EXTERN void hwsock_device_set_capture(hwsock_device *dev,
                                             hwsock_capture *c);

#ifdef __cplusplus
}
#endif
#endif
