/* libhwsock backend plugin ABI.
 *
 * A backend performs offloaded socket operations on the host. It is a shared
 * module exporting ONE symbol, hwsock_backend_entry(), that returns a
 * descriptor (name, schemes it serves, ABI version, operations). Built-in
 * backends (backends/) use exactly this header and nothing else of the
 * library's internals, as an out-of-tree plugin would (docs/PLUGINS.md).
 *
 * Threading: every call into a backend, and every host->complete() call back,
 * happens on the device's thread (the thread that runs the event loop given
 * as host->loop). A backend never blocks that thread.
 *
 * ABI rules: structs carry their own size and only grow at the end. A backend
 * built for ABI version N is loaded only by a library whose
 * HWSOCK_BACKEND_ABI_VERSION is N; the descriptor size must be at least the
 * size of version 1's descriptor. */
#ifndef HWSOCK_BACKEND_H
#define HWSOCK_BACKEND_H

#include <sys/uio.h>

#include "hwsock/common.h"
#include "hwsock/hostopts.h"
#include "hwsock/identity.h"
#include "hwsock/uri.h"
#include "hwsock/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HWSOCK_BACKEND_ABI_VERSION 1u
#define HWSOCK_BACKEND_ENTRY_SYMBOL "hwsock_backend_entry"

typedef struct hwsock_breq hwsock_breq;
typedef struct hwsock_backend_host hwsock_backend_host;

/* Log levels for host->log. */
#define HWSOCK_LOG_ERROR 0
#define HWSOCK_LOG_WARN 1
#define HWSOCK_LOG_INFO 2
#define HWSOCK_LOG_DEBUG 3

/* What the device gives a backend instance. Owned by the device; valid until
 * the instance's destroy() returns. */
struct hwsock_backend_host {
  uint32_t size;      /* sizeof(hwsock_backend_host) as the library built it */
  void *loop;         /* the event loop: a uv_loop_t* for the built-in
                         backends (the libuv adapter's loop) */
  const char *options; /* backend options from the VMM ("" when none) */
  /* Completes a request the backend owns: status is 0 or a negative HWSOCK_E*;
   * len is the byte count (SEND: bytes taken; RECV/GETSOCKOPT: bytes written
   * into req->iov). After this call the backend must not touch req. May be
   * called from inside submit(). */
  void (*complete)(hwsock_breq *req, int status, size_t len);
  /* Logs one line (no newline needed). */
  void (*log)(const hwsock_backend_host *host, int level, const char *msg);
  void *host_data; /* for the device */
  /* ---- appended (present when size covers it) ---- */
  /* A watch armed with ops->watch() fired: `events` (HWSOCK_BWATCH_*) are
   * the conditions that hold, `cookie` the one given to watch(). Those
   * watches are disarmed before the call. May be called from inside
   * submit() or watch(); may call back into submit(), watch(), close(). */
  void (*ready)(const hwsock_backend_host *host, void *cookie,
                unsigned events);
};

/* One request handed to a backend. The device owns the memory; the backend
 * owns the request from submit() until it calls host->complete(). */
struct hwsock_breq {
  uint32_t size;   /* sizeof(hwsock_breq) as the library built it */
  uint16_t opcode; /* HWSOCK_OP_* (never OPEN or CLOSE: see ops) */
  uint16_t scheme; /* hwsock_scheme of the socket */
  uint32_t arg0;   /* request arg0 (flags, backlog, how, level, ...) */
  uint32_t arg1;   /* request arg1 (option name, ...) */
  /* CONNECT/BIND: the address; SEND: the destination when the guest gave
   * one (sendto), else NULL. Already allowed by policy. */
  const hwsock_addr *addr;
  /* SEND/SETSOCKOPT: the data, device-readable guest memory.
   * RECV/GETSOCKOPT: the buffers to fill, device-writable guest memory.
   * Point straight into guest memory: use them with readv/writev/sendmsg/
   * recvmsg and never keep them after complete(). */
  const struct iovec *iov;
  unsigned iovcnt;
  size_t iov_len; /* sum of iov[i].iov_len */

  /* Set by the backend before complete(): */
  hwsock_addr peer;    /* RECV (unconnected): source; ACCEPT: peer;
                          GETNAME: the name asked for */
  uint32_t has_peer;   /* 1 when peer is set */
  uint32_t resp_flags; /* HWSOCK_RESP_F_* */
  uint32_t resp_val;   /* RECV datagram: full length before truncation */
  void *accepted;      /* ACCEPT: the backend socket of the new connection
                          (the device adopts it like one from open()) */

  /* Free for the backend's use while it owns the request. */
  void *backend_priv[4];

  /* ---- appended in ABI 1 (present when size covers it) ---- */
  /* CONNECT: the VMM's identity when the policy rule says `identity:
   * proxy-v2` (hwsock/identity.h, docs/IDENTITY.md), else NULL. The backend
   * sends the PROXY v2 header on the connection before any byte of the
   * guest's. Given only to backends with HWSOCK_BACKEND_F_IDENTITY. */
  const hwsock_identity *identity;
  /* Set by the backend on a CONNECT it completes with 0: the bytes it puts
   * on the connection ahead of the guest's (the identity header), for the
   * capture and the socket table. Read during complete() only. */
  const void *prefix;
  uint32_t prefix_len;
};

/* Parameters of open(). Owned by the device, valid during the call only. */
/* One socket option the guest set before the decision (SETSOCKOPT on an
 * OPEN socket), as on the wire: level and option HWSOCK_SOL_* / HWSOCK_*,
 * value le32 (two for SO_LINGER). */
#define HWSOCK_BPRESET_MAX 8u
typedef struct hwsock_bsockopt {
  uint32_t level, name;
  uint32_t len;   /* value bytes: 4, or 8 for SO_LINGER */
  uint8_t val[8];
} hwsock_bsockopt;

typedef struct hwsock_bopen {
  uint32_t size;      /* sizeof(hwsock_bopen) as the library built it */
  int scheme;         /* hwsock_scheme: the socket's family and type */
  int error;          /* for a socket the policy denied: the negative
                         HWSOCK_E* its requests must fail with; else 0 */
  const char *reason; /* the policy rule's reason, or "" */
  /* ---- appended in ABI 1 (present when size covers it) ---- */
  const hwsock_hostopts *set; /* host-side options the policy sets on this
                                 socket (apply them in open(); fail open()
                                 if one cannot be set), or NULL */
  /* The options the guest set before the decision, in the order it set
   * them (at most HWSOCK_BPRESET_MAX, one per option): apply each to the
   * host socket in open(), before `set` (the policy's options win) and so
   * before any request (SO_REUSEADDR must precede the bind, buffer sizes
   * the SYN), as submit() would apply a SETSOCKOPT; fail open() with the
   * error of one that fails. hwsock_backend_preset() does it. */
  const hwsock_bsockopt *preset;
  uint32_t npreset;
} hwsock_bopen;

/* Filled by the optional info() op. The device zeroes it and sets size and
 * fd = -1 before the call. */
typedef struct hwsock_bsock_info {
  uint32_t size;      /* sizeof(hwsock_bsock_info) as the library built it */
  int fd;             /* host file descriptor, -1 when none */
  uint32_t has_local; /* 1 when local is set */
  uint32_t has_peer;  /* 1 when peer is set */
  hwsock_addr local;  /* bound address (getsockname) */
  hwsock_addr peer;   /* connected peer (getpeername) */
} hwsock_bsock_info;

/* A socket handed to another process (ops->export_sock/import_sock). The
 * device zeroes it and sets size and fd = -1 before export_sock(). */
#define HWSOCK_BEXPORT_STATE_MAX 32u
typedef struct hwsock_bexport {
  uint32_t size;      /* sizeof(hwsock_bexport) as the library built it */
  int fd;             /* the host socket, -1 when none */
  int scheme;         /* hwsock_scheme of the socket */
  uint32_t state_len; /* bytes of state used */
  uint8_t state[HWSOCK_BEXPORT_STATE_MAX];
} hwsock_bexport;

typedef struct hwsock_backend_ops {
  uint32_t size; /* sizeof(hwsock_backend_ops) the plugin was built with */

  /* Creates an instance for one device. *instance is the backend's. Return 0
   * or a negative HWSOCK_E* (the device then refuses to add the backend).
   * HWSOCK_ENETDOWN: these options give the backend nothing to serve (no
   * network configured); the device is served without it and does not
   * offer its schemes' feature bits, rather than offering a scheme whose
   * every socket would fail. */
  int (*create)(const hwsock_backend_host *host, void **instance);

  /* Destroys an instance. Every socket was closed before. Handles still
   * closing may finish in later loop turns: the embedder runs the loop until
   * it has no active handles before closing it. */
  void (*destroy)(void *instance);

  /* Creates a backend socket on the first offloaded call of a guest socket.
   * Synchronous. Returns 0 and sets *sock, or a negative HWSOCK_E*. */
  int (*open)(void *instance, const hwsock_bopen *params, void **sock);

  /* Starts a request on a socket. The backend completes it exactly once,
   * now or later, with host->complete(). Requests of one socket may be
   * outstanding together (e.g. a RECV waiting while SENDs go on); the
   * backend completes SENDs in order and RECVs in order. */
  void (*submit)(void *sock, hwsock_breq *req);

  /* Closes a socket: completes every request of it still pending with
   * HWSOCK_ECANCELED before returning, releases the host socket, and never
   * calls back for this socket again. Synchronous as seen by the device. */
  void (*close)(void *sock);

  /* ---- appended in ABI 1 (present when size covers it) ---- */

  /* Optional (may be NULL): what the backend knows of a socket, for the
   * socket table and capture (hwsock/stats.h). Synchronous, no side
   * effects. Returns 0 or a negative HWSOCK_E*. */
  int (*info)(void *sock, hwsock_bsock_info *out);

  /* HWSOCK_BACKEND_F_*: what the backend promises. Read only when size
   * covers it: an older backend promises nothing. */
  uint32_t flags;

  /* ---- appended (present when size covers it) ---- */

  /* Optional (may be NULL): one-shot readiness watches for the device's
   * event queue (PROTOCOL.md §16). Arms exactly `events` (HWSOCK_BWATCH_*;
   * 0 disarms all): when one holds (now or later) the backend calls
   * host->ready(host, cookie, fired) once, after disarming the fired ones.
   * READ holds when a RECV would complete without waiting (data, EOF or an
   * error) or, on a listener, an ACCEPT would; WRITE when a SEND would be
   * taken at once. Nothing is read or accepted by the watch itself: the
   * data stays in the host kernel. close() disarms. 0 or a negative
   * HWSOCK_E*. */
  int (*watch)(void *sock, unsigned events, void *cookie);

  /* ---- appended (present when size covers it) ---- */

  /* Optional (both or neither): hands a socket over to another process
   * (a VMM replacing itself, docs/EMBEDDING.md §12). export_sock() puts a
   * duplicate of the host socket in out->fd (the caller's, -1 when the
   * socket has none) and what the backend needs to continue it in
   * out->state (its own format, out->state_len bytes, at most
   * HWSOCK_BEXPORT_STATE_MAX). Nothing changes on the socket: it goes on
   * until closed. The requests pending on it are resubmitted by the new
   * owner, so the backend refuses (HWSOCK_EAGAIN: the caller runs the loop
   * and asks again) while a request has moved part of its bytes, a
   * CONNECT is in progress, or more than one request waits in one
   * direction (their order would be lost). import_sock() makes a socket of
   * this backend from an exported one: in->state is untrusted; on success
   * the backend owns in->fd, on failure the caller closes it. */
  int (*export_sock)(void *sock, hwsock_bexport *out);
  int (*import_sock)(void *instance, const hwsock_bexport *in, void **sock);
} hwsock_backend_ops;

#define HWSOCK_BWATCH_READ 1u
#define HWSOCK_BWATCH_WRITE 2u

/* The backend honours hwsock_breq.identity on CONNECT. The device refuses
 * (HWSOCK_EACCES) a CONNECT whose rule asks for an identity on a backend
 * without this flag rather than let the stream go out without it. */
#define HWSOCK_BACKEND_F_IDENTITY (1u << 0)

typedef struct hwsock_backend_desc {
  uint32_t size;          /* sizeof(hwsock_backend_desc) the plugin built */
  uint32_t abi_version;   /* HWSOCK_BACKEND_ABI_VERSION the plugin built */
  const char *name;       /* "tcp": unique per device, [a-z0-9_-]+ */
  const char *description;
  const char *const *schemes; /* NULL-terminated: {"tcp", "tcp6", NULL};
                                 may be empty for routed-only backends */
  const hwsock_backend_ops *ops;
} hwsock_backend_desc;

typedef const hwsock_backend_desc *(*hwsock_backend_entry_fn)(void);

#if defined(__GNUC__) || defined(__clang__)
#define HWSOCK_BACKEND_EXPORT __attribute__((visibility("default")))
#else
#define HWSOCK_BACKEND_EXPORT
#endif

/* Defines the plugin's entry symbol returning &desc. Use once per module. */
#define HWSOCK_BACKEND_DEFINE(desc)                                           \
  HWSOCK_BACKEND_EXPORT const hwsock_backend_desc *hwsock_backend_entry(void);\
  HWSOCK_BACKEND_EXPORT const hwsock_backend_desc *hwsock_backend_entry(void) \
  {                                                                           \
    return &(desc);                                                           \
  }

#ifdef __cplusplus
}
#endif
#endif
