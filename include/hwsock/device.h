/* libhwsock embedding API: the device side, for VMM authors.
 *
 * A hwsock_device is one socket coprocessor for one guest. The VMM creates it
 * from a hwsock_device_config, gives it the guest memory map (regions), adds
 * backends, and then, as the guest driver configures the device, sets the
 * negotiated features and the queues. From then on the VMM calls
 * hwsock_device_kick() when the guest notifies a queue and
 * hwsock_device_flush() once per loop turn; the device calls ops->notify()
 * when the guest must be interrupted.
 *
 * The device core knows no event loop and no threads: every function here
 * must be called from one thread at a time (the "device thread"), which is
 * also the thread that runs the backends' loop (config.backend_loop). The
 * libuv adapter (hwsock/uv.h) wires all of this to a uv_loop_t.
 *
 * The guest is untrusted: everything read from guest memory is fetched once
 * into private memory, validated, then acted on. A malformed request gets an
 * error completion; a broken ring (bad descriptor index, loop, address outside
 * the regions, ...) puts the device into NEEDS_RESET, calls ops->needs_reset
 * once, and the device then ignores that guest until hwsock_device_reset(). */
#ifndef HWSOCK_DEVICE_H
#define HWSOCK_DEVICE_H

#include "hwsock/backend.h"
#include "hwsock/common.h"
#include "hwsock/identity.h"
#include "hwsock/policy.h"
#include "hwsock/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hwsock_device hwsock_device;

/* Upper bounds the config may not exceed. */
#define HWSOCK_MAX_QUEUES 16u
#define HWSOCK_MAX_REGIONS 64u
#define HWSOCK_MAX_BACKENDS 16u
#define HWSOCK_MAX_SOCKETS_LIMIT 1048576u
#define HWSOCK_MAX_INFLIGHT_LIMIT 65536u
#define HWSOCK_MAX_IO_LEN_LIMIT (64u << 20)
#define HWSOCK_MAX_CHAIN_SEGS_LIMIT 1024u

/* Defaults used for a zero field. */
#define HWSOCK_DEFAULT_QUEUES 1u
#define HWSOCK_DEFAULT_QUEUE_SIZE 256u
#define HWSOCK_DEFAULT_MAX_SOCKETS 65536u
#define HWSOCK_DEFAULT_MAX_INFLIGHT 256u
#define HWSOCK_DEFAULT_MAX_IO_LEN (1u << 20)
#define HWSOCK_DEFAULT_MAX_CHAIN_SEGS 64u
#define HWSOCK_DEFAULT_MAX_REGIONS 8u
#define HWSOCK_DEFAULT_KICK_BUDGET 4u
#define HWSOCK_MAX_KICK_BUDGET 65536u

/* A host socket quota shared by several devices (hwsock_device_config.
 * shared_quota), e.g. one VMM's limit for all its guests together. The
 * embedder sets limit and hint; the devices keep `used`. Devices sharing
 * one must run on one thread. */
typedef struct hwsock_quota {
  unsigned limit;   /* host sockets all sharing devices may hold at once */
  unsigned used;    /* held now (maintained by the devices) */
  const char *hint; /* how to raise it, named in refusals; may be NULL */
} hwsock_quota;

/* Callbacks from the device to the VMM. Called on the device thread. */
typedef struct hwsock_device_ops {
  uint32_t size; /* sizeof(hwsock_device_ops) */
  /* Interrupt the guest for `queue` (write its irqfd/call eventfd). Called
   * at most once per queue per kick()/flush(), and only when event-idx
   * suppression (if negotiated) says the guest wants it. */
  void (*notify)(void *opaque, unsigned queue);
  /* The device entered NEEDS_RESET; `why` says what the guest did. Called
   * once per episode. The VMM should signal a config change to the guest.
   * May be NULL. */
  void (*needs_reset)(void *opaque, const char *why);
  /* One log line (HWSOCK_LOG_* level). May be NULL. */
  void (*log)(void *opaque, int level, const char *msg);
} hwsock_device_ops;

/* Creation parameters. Initialise with hwsock_device_config_init(), then
 * set fields. `size` lets later versions append fields. Zero limits take
 * the defaults above. The device copies the struct: it need not outlive
 * hwsock_device_new(), but `policy`, `ops` and `backend_loop` must outlive
 * the device. */
typedef struct hwsock_device_config {
  uint32_t size;           /* sizeof(hwsock_device_config) */
  unsigned num_queues;     /* request queues, 1..HWSOCK_MAX_QUEUES */
  unsigned max_queue_size; /* largest queue the guest may set up, power of 2 */
  unsigned max_sockets;    /* guest socket ids are 0..max_sockets-1 */
  unsigned max_inflight;   /* requests the device holds at once (all queues);
                              beyond it the device stops popping until some
                              complete */
  unsigned max_uri_len;    /* longest URI accepted, <= HWSOCK_URI_MAX */
  unsigned max_io_len;     /* longest SEND/RECV payload per request */
  unsigned max_chain_segs; /* descriptors per chain (after indirect) */
  unsigned max_regions;    /* memory regions, <= HWSOCK_MAX_REGIONS */
  const hwsock_policy *policy; /* NULL: the built-in default policy */
  void *backend_loop;      /* handed to backends as host->loop */
  const hwsock_device_ops *ops; /* may be NULL (no callbacks) */
  void *opaque;            /* first argument of every ops callback */
  /* Non-zero: the transport cannot carry the config space or the
   * device-class features (e.g. a vhost-user carrier device), so the driver
   * negotiates them in-band with HWSOCK_OP_NEGOTIATE, which must be its
   * first successful request (PROTOCOL.md §5.13). Zero (and callers built
   * before this field): HWSOCK_OP_NEGOTIATE is an unknown opcode. */
  unsigned inband_negotiation;
  /* The VM's identity for rules with `identity:` (hwsock/identity.h), or
   * NULL: such rules' connections are refused. Must outlive the device;
   * checked by hwsock_device_new. */
  const hwsock_identity *identity;
  /* Host sockets (docs/EMBEDDING.md, "Limits"): every offloaded socket
   * that is not denied, and every pending ACCEPT's new socket, counts as
   * one against max_host_sockets and, when set, against shared_quota.
   * Beyond either, the call that would open one (the first CONNECT, BIND,
   * LISTEN or SEND of a socket, or an ACCEPT) fails with HWSOCK_EMFILE for
   * this guest only, and a rate-limited log line names the limit and
   * quota_hint. 0: max_sockets (no limit beyond the ids). */
  unsigned max_host_sockets;
  hwsock_quota *shared_quota; /* NULL: none. Must outlive the device. */
  const char *quota_hint;     /* how to raise max_host_sockets, for the log
                                 ("hwsock-vmm --guest-sockets N"); NULL:
                                 "max_host_sockets". Must outlive it. */
  /* Requests popped from one queue per kick, flush or poll pass, so that a
   * guest that keeps its queue full cannot hold the device thread (and the
   * other guests of its loop) for long. A queue left with work asks for the
   * next loop turn (hwsock_device_pending()). 0: HWSOCK_DEFAULT_KICK_BUDGET. */
  unsigned kick_budget;
} hwsock_device_config;

/* Zeroes the caller's struct and sets its size: hwsock_device_config_init(cfg)
 * passes sizeof(*cfg) as the caller's header has it, so the library never
 * writes beyond the caller's struct, whichever version either was built
 * with. (The plain function hwsock_device_config_init, which binaries built
 * against 0.1.0 call, initialises the 0.1.0 struct.) */
HWSOCK_EXTERN void hwsock_device_config_init_sized(hwsock_device_config *cfg,
                                                   size_t size);
HWSOCK_EXTERN void(hwsock_device_config_init)(hwsock_device_config *cfg);
#define hwsock_device_config_init(cfg)                                         \
  hwsock_device_config_init_sized((cfg), sizeof(*(cfg)))

/* Creates a device. All memory the device will ever need for its sockets and
 * in-flight requests is allocated here, sized by the config. On success *out
 * is the caller's, to free with hwsock_device_free(). Errors: HWSOCK_EINVAL
 * (a field out of range; a config or ops `size` smaller than the first
 * version's struct, or larger than this library's with a non-zero byte in
 * the part it does not know), HWSOCK_ENOMEM. */
HWSOCK_EXTERN int hwsock_device_new(const hwsock_device_config *cfg,
                                    hwsock_device **out);

/* Closes every socket (backends cancel their pending requests), destroys the
 * backend instances and frees the device. Nothing is written to guest
 * memory any more. The embedder then runs the backend loop until it has no
 * active handles. NULL is allowed. */
HWSOCK_EXTERN void hwsock_device_free(hwsock_device *dev);

/* Adds a guest memory region: guest physical [gpa, gpa+size) is at host
 * address hva. The memory stays the VMM's; it must stay mapped until the
 * device is freed. Regions may not overlap. Errors: HWSOCK_EINVAL (size 0,
 * wrap-around, overlap), HWSOCK_ENOSPC (max_regions reached). */
HWSOCK_EXTERN int hwsock_device_add_region(hwsock_device *dev, uint64_t gpa,
                                           uint64_t size, void *hva);

/* Forgets every region, so that the VMM may unmap their memory and add new
 * ones (a vhost-user front-end sends a new memory table; a new front-end
 * connects). Only while no feature is set: after hwsock_device_new() or
 * hwsock_device_reset(). Errors: HWSOCK_EBUSY (features or queues set up). */
HWSOCK_EXTERN int hwsock_device_clear_regions(hwsock_device *dev);

/* Adds a backend from its descriptor, creating an instance with the given
 * options (NULL = ""). The descriptor must outlive the device (a module's
 * static data: keep the module loaded). The first backend added for a
 * scheme serves it. The device offers the feature bit of a scheme (F_TCP,
 * F_IPX, ...) only while an added backend serves it. Errors: HWSOCK_EABI
 * (ABI version or sizes), HWSOCK_EEXIST (name taken), HWSOCK_ENOSPC, or
 * what create() returned; HWSOCK_ENETDOWN means the backend has nothing to
 * serve with these options (e.g. ipx without a network): it was not added,
 * the guest is served without its schemes. */
HWSOCK_EXTERN int hwsock_device_add_backend(hwsock_device *dev,
                                            const hwsock_backend_desc *desc,
                                            const char *options);

/* Plugin modules. hwsock_plugin_load() dlopen()s a module, resolves
 * hwsock_backend_entry and checks its descriptor; the module stays loaded
 * until hwsock_plugin_unload(), which the caller does only after every
 * device using it was freed. errbuf receives a one-line reason on failure
 * ("plugin.so: ABI version 2, library supports 1"). */
typedef struct hwsock_plugin hwsock_plugin;
HWSOCK_EXTERN int hwsock_plugin_load(const char *path, hwsock_plugin **out,
                                     char *errbuf, size_t errlen);
HWSOCK_EXTERN const hwsock_backend_desc *
hwsock_plugin_desc(const hwsock_plugin *p);
HWSOCK_EXTERN void hwsock_plugin_unload(hwsock_plugin *p);
/* Checks a descriptor as hwsock_device_add_backend does. */
HWSOCK_EXTERN int hwsock_backend_desc_check(const hwsock_backend_desc *d,
                                            char *errbuf, size_t errlen);

/* The config space the guest reads (wire.h). */
HWSOCK_EXTERN void hwsock_device_get_config(const hwsock_device *dev,
                                            hwsock_wire_config *out);

/* Feature negotiation: the driver's accepted features. Must be a subset of
 * the device's and include HWSOCK_F_VERSION_1. Errors: HWSOCK_EINVAL. */
HWSOCK_EXTERN int hwsock_device_set_features(hwsock_device *dev,
                                             uint64_t driver_features);

/* Sets up queue `q` of `size` entries (power of 2, <= max_queue_size) at
 * the given guest physical addresses (virtio's queue_desc, queue_driver,
 * queue_device). Each part must lie inside one region and be aligned
 * (16, 2, 4). Errors: HWSOCK_EINVAL, HWSOCK_EFAULT. */
HWSOCK_EXTERN int hwsock_device_queue_setup(hwsock_device *dev, unsigned q,
                                            unsigned size, uint64_t desc_gpa,
                                            uint64_t avail_gpa,
                                            uint64_t used_gpa);

/* The driver is ready (DRIVER_OK): every queue set up. HWSOCK_EINVAL when
 * features or queues are missing. */
HWSOCK_EXTERN int hwsock_device_start(hwsock_device *dev);

/* The guest notified queue `q`: pop and dispatch available requests (up to
 * kick_budget of them, and up to max_inflight in flight; what is left is
 * taken by the next flushes, see hwsock_device_pending()). Returns the
 * number of requests taken (0 before DRIVER_OK), HWSOCK_EINVAL when there is
 * no queue `q`, or HWSOCK_ENEEDSRESET when the device is (or just became)
 * broken. */
HWSOCK_EXTERN int hwsock_device_kick(hwsock_device *dev, unsigned q);

/* Delivers batched notifications, retries queues that stopped at the
 * in-flight limit, and takes up to kick_budget more requests from each queue
 * a kick left with work. Call once per loop turn (the libuv adapter does it
 * from a check handle). */
HWSOCK_EXTERN void hwsock_device_flush(hwsock_device *dev);

/* Non-zero when a queue still has requests a kick or flush left for later
 * (its budget ran out): the guest will not kick for them, so the embedder
 * must call hwsock_device_flush() again on its next loop turn without
 * waiting for an event (the libuv adapter keeps an idle handle active
 * meanwhile). Zero when the device can wait for the next kick. */
HWSOCK_EXTERN int hwsock_device_pending(const hwsock_device *dev);

/* Device status (HWSOCK_STATUS_* bits; NEEDS_RESET when broken). */
HWSOCK_EXTERN unsigned hwsock_device_status(const hwsock_device *dev);

/* While NEEDS_RESET: which ring fault broke the device, a HWSOCK_RESET_*
 * code (wire.h; PROTOCOL.md §2.8) to hand to the guest (the loopback VMM
 * sends it in NEEDS_RESET's `a`). 0 when the device is not broken. The
 * needs_reset callback may call it. */
HWSOCK_EXTERN int hwsock_device_reset_reason(const hwsock_device *dev);

/* Resets the device to its state after hwsock_device_new() plus regions and
 * backends: closes every socket, forgets features and queues, clears
 * NEEDS_RESET. Completions of cancelled requests are not written. */
HWSOCK_EXTERN void hwsock_device_reset(hwsock_device *dev);

/* ---- memory map changes without a reset (docs/EMBEDDING.md §2) ---- */

/* One guest memory region of a whole new map. uaddr: the region's address
 * in the space in which the VMM's front-end names its rings (a vhost-user
 * front-end's virtual address, "userspace_addr"), for
 * hwsock_device_uaddr_to_gpa(); 0 when there is none. Initialise the array
 * with zeroes: fields may be appended (the element size is passed). */
typedef struct hwsock_region {
  uint64_t gpa;  /* guest physical start */
  uint64_t size; /* bytes, > 0 */
  void *hva;     /* host address of gpa; mapped by the VMM */
  uint64_t uaddr;
} hwsock_region;

/* Replaces the whole memory map at once (memory hot-plug: a new table),
 * without a reset and without losing a request. The new map is checked as
 * hwsock_device_add_region checks (sizes, wrap-around, overlaps, at most
 * max_regions; uaddr ranges may not overlap either), and every part of every
 * set-up queue (descriptor table, avail and used rings) must lie inside one
 * region of it: the queues are then reached through the new map. Refused
 * as a whole otherwise: HWSOCK_EINVAL (a bad map), HWSOCK_ENOSPC, HWSOCK_EBUSY
 * (a queue part would fall outside), and nothing changes.
 *
 * Returns the number of requests in flight (>= 0). Their buffers were
 * translated through the OLD map, and backends write completions into
 * them later: the VMM keeps every old mapping that is not in the new map
 * mapped until those requests completed (hwsock_device_inflight() reaches
 * 0) or the device is reset or freed. */
HWSOCK_EXTERN int hwsock_device_set_regions_sized(hwsock_device *dev,
                                                  const hwsock_region *regions,
                                                  unsigned n, size_t elem_size);
#define hwsock_device_set_regions(dev, regions, n)                             \
  hwsock_device_set_regions_sized((dev), (regions), (n), sizeof(*(regions)))

/* Removes the region that starts at guest physical gpa (the rest of the map
 * stays): as hwsock_device_set_regions() with the others. Errors:
 * HWSOCK_ENOENT (no region starts there), HWSOCK_EBUSY (a queue part lies in
 * it). Returns the requests in flight, as set_regions. */
HWSOCK_EXTERN int hwsock_device_remove_region(hwsock_device *dev, uint64_t gpa);

/* Requests the device holds now (popped, not yet completed), on all
 * queues, event buffers included. */
HWSOCK_EXTERN unsigned hwsock_device_inflight(const hwsock_device *dev);

/* Translates [uaddr, uaddr+len) of the front-end's address space (the
 * regions' uaddr) to guest physical, for VMMs whose front-end hands over
 * ring addresses that way (vhost-user's SET_VRING_ADDR): the range must lie
 * inside one region. Errors: HWSOCK_EFAULT. */
HWSOCK_EXTERN int hwsock_device_uaddr_to_gpa(const hwsock_device *dev,
                                             uint64_t uaddr, uint64_t len,
                                             uint64_t *gpa);

/* ---- snapshot and restore (docs/EMBEDDING.md §11) ---- */

/* on != 0: the device takes no more requests (kicks are remembered, not
 * served; completions of requests in flight still go out). on == 0: it
 * takes them again (the next flush serves what waited). Returns the
 * requests in flight, or HWSOCK_EINVAL. A reset ends quiescence. */
HWSOCK_EXTERN int hwsock_device_quiesce(hwsock_device *dev, int on);

/* Bytes hwsock_device_save() may need for this device at most. */
HWSOCK_EXTERN size_t hwsock_device_save_bound(const hwsock_device *dev);

/* Saves the device's state into buf as a versioned little-endian blob
 * (features, status, queue addresses and positions, the requests in flight,
 * the socket table with each socket's options, receive window and watches,
 * and the local address of those that can get a host socket again):
 * *out_len bytes. The device must be quiesced. Errors: HWSOCK_EBUSY (not
 * quiesced), HWSOCK_ENEEDSRESET (broken), HWSOCK_ENOSPC (len too small:
 * see hwsock_device_save_bound). */
HWSOCK_EXTERN int hwsock_device_save(hwsock_device *dev, void *buf,
                                     size_t len, size_t *out_len);

/* Restores a saved state into a device fresh from hwsock_device_new() (or
 * reset) with the same number of queues, its regions and backends added.
 * The blob is untrusted: everything is checked before anything changes,
 * and a refused blob leaves the device reset. Queues continue where they
 * were, event queue, windows and watches included; sockets that were
 * undecided or declined come back as they were; listeners, bound stream
 * sockets and datagram sockets get a new host socket on their saved
 * address (decided again by this device's policy), and their requests in
 * flight are dispatched again; other offloaded sockets (connections), and
 * those whose address is taken or refused now, come back reset: their
 * requests in flight and every later call fail with HWSOCK_ECONNRESET
 * until the guest closes them (with the event queue, one ERROR event says
 * so). The table per socket kind is in docs/EMBEDDING.md §11. Returns the
 * number of sockets reset (>= 0). Errors:
 * HWSOCK_EBUSY (device not fresh), HWSOCK_EBADMSG (malformed blob or
 * another version), HWSOCK_EINVAL (it does not fit this device: queues,
 * features, sockets, addresses outside the regions). */
HWSOCK_EXTERN int hwsock_device_restore(hwsock_device *dev, const void *buf,
                                        size_t len);

/* ---- handing a device to another process (docs/EMBEDDING.md §12) ---- */

/* One offloaded socket, exported with its host socket: what the new
 * process gives hwsock_device_import_sock(). rec is little-endian, opaque
 * and checked on import. */
typedef struct hwsock_sock_export {
  uint32_t id; /* the guest's socket id */
  int fd;      /* a duplicate of the host socket (the caller's), -1: none */
  uint8_t rec[96];
} hwsock_sock_export;

/* Exports every offloaded socket of a quiesced device into out[0..n): a
 * duplicate of each host socket and its state; the device itself goes on
 * as before (free it, without running the loop in between, once the new
 * process has everything). A socket whose backend cannot export is left
 * out and logged (it comes back reset). Returns n, or HWSOCK_EBUSY (not
 * quiesced), HWSOCK_ENOSPC (more than max), HWSOCK_EAGAIN (a socket is
 * between states, see backend.h's export_sock: run the loop, try again);
 * on an error no fd is left open. */
HWSOCK_EXTERN int hwsock_device_export_socks(hwsock_device *dev,
                                             hwsock_sock_export *out,
                                             unsigned max);

/* hwsock_device_restore() for a hand-over: the requests in flight are
 * held, not completed, until hwsock_device_resume_held() submits them
 * again; import the sockets in between. Same errors and return value. */
HWSOCK_EXTERN int hwsock_device_restore_held(hwsock_device *dev,
                                             const void *buf, size_t len);

/* Gives back an exported socket (restored reset by restore_held) its host
 * socket: the backend of the same name re-creates it on e->fd, which the
 * device owns from then on (closed on failure too). The record is
 * untrusted. Errors: HWSOCK_EINVAL (no such reset socket, a bad record),
 * HWSOCK_ENOENT (no backend of that name), HWSOCK_EOPNOTSUPP (it cannot
 * import), HWSOCK_EMFILE (quota), or the backend's error; the socket then
 * stays reset. */
HWSOCK_EXTERN int hwsock_device_import_sock(hwsock_device *dev,
                                            const hwsock_sock_export *e);

/* Submits the requests restore_held held, in the order saved (a socket not
 * imported fails them with HWSOCK_ECONNRESET), then serves every queue
 * once: requests the guest added meanwhile, whose kicks the old process
 * took. Returns how many were held, or HWSOCK_EINVAL (nothing held). */
HWSOCK_EXTERN int hwsock_device_resume_held(hwsock_device *dev);

#ifdef __cplusplus
}
#endif
#endif
