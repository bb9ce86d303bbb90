/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hw_socket: a Linux guest driver for the libhwsock device ("Berkeley sockets
 * coprocessor"). Written from docs/PROTOCOL.md alone; the project's C headers
 * are not used because the kernel has its own types and this module is an
 * independent implementation that checks the document.
 */
#ifndef HWS_H
#define HWS_H

#include <linux/types.h>
#include <linux/build_bug.h>
#include <linux/completion.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/refcount.h>
#include <linux/socket.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

/* ---- wire format (PROTOCOL.md §3, §4, INBAND negotiation §5.13) ---- */

struct hws_req_hdr {
	__le16 opcode;
	__le16 flags;
	__le32 sock_id;
	__le64 tag;
	__le32 arg0;
	__le32 arg1;
	__le32 uri_len;
	__le32 reserved;
};

struct hws_resp_hdr {
	__le32 status;
	__le32 len;
	__le64 tag;
	__le32 flags;
	__le32 uri_len;
	__le32 val;
	__le32 reserved;
};

struct hws_wire_config {
	__le32 magic;
	__le32 protocol_version;
	__le64 device_features;
	__le16 num_queues;
	__le16 max_queue_size;
	__le32 max_sockets;
	__le32 max_inflight;
	__le32 max_uri_len;
	__le32 max_io_len;
	__le32 max_chain_segs;
	__le64 reserved[3];
};

/* Event queue (PROTOCOL.md §16): the header at offset 0 of an event buffer. */
struct hws_event {
	__le32 sock_id;
	__le16 type;
	__le16 flags;
	__le32 len;
	__le32 status;
	__le32 uri_len;
	__le32 val;
	__le32 window;
	__le32 reserved;
};

static_assert(sizeof(struct hws_event) == 32);
static_assert(sizeof(struct hws_req_hdr) == 32);
static_assert(sizeof(struct hws_resp_hdr) == 32);
static_assert(sizeof(struct hws_wire_config) == 64);

enum {
	HWS_OP_OPEN = 1,
	HWS_OP_CONNECT = 2,
	HWS_OP_BIND = 3,
	HWS_OP_LISTEN = 4,
	HWS_OP_ACCEPT = 5,
	HWS_OP_SEND = 6,
	HWS_OP_RECV = 7,
	HWS_OP_SHUTDOWN = 8,
	HWS_OP_CLOSE = 9,
	HWS_OP_GETSOCKOPT = 10,
	HWS_OP_SETSOCKOPT = 11,
	HWS_OP_GETNAME = 12,
	HWS_OP_NEGOTIATE = 13,
	HWS_OP_CREDIT = 14,
};

#define HWS_EV_DATA		1
#define HWS_EV_ERROR		4
#define HWS_EV_F_EOF		1u
#define HWS_EV_F_TRUNC		2u
#define HWS_EV_F_SOFT		4u	/* ERROR: a datagram's ICMP error */
#define HWS_EV_URI_AREA		80u

/* An event buffer: 16 KiB with our list link in front of what the device
 * gets (HWS_EV_BUF bytes, the event header included). A copy has the same
 * layout, sized to what the device wrote: a socket's list holds both. */
struct hws_evbuf {
	struct list_head link;
	u32 used;			/* used-ring length */
	u32 copy;			/* a copy (kfree), not a ring buffer */
	u8 data[];
};

#define HWS_EV_ALLOC		16384u
#define HWS_EV_BUF		(HWS_EV_ALLOC - sizeof(struct hws_evbuf))
/* Copy out once fewer than 1/HWS_EV_RESERVE_DIV of the buffers are left to
 * the device (PROTOCOL.md §16.3). */
#define HWS_EV_RESERVE_DIV	4

#define HWS_AF_INET		1
#define HWS_AF_INET6		2
#define HWS_SOCK_STREAM		1
#define HWS_SOCK_DGRAM		2

#define HWS_F_TCP		BIT_ULL(0)
#define HWS_F_UDP		BIT_ULL(1)
#define HWS_F_INET6		BIT_ULL(2)
#define HWS_F_EVENT_QUEUE	BIT_ULL(4)
#define HWS_F_SOFT_ERRORS	BIT_ULL(5)	/* PROTOCOL.md §16.9 */

#define HWS_CONFIG_MAGIC	0x4b535748u
#define HWS_PROTOCOL_VERSION	1u

#define HWS_RESP_F_EOF		1u
#define HWS_RESP_F_TRUNC	2u

#define HWS_SOL_SOCKET		1u
#define HWS_SO_REUSEADDR	2u
#define HWS_SO_BROADCAST	6u
#define HWS_SO_SNDBUF		7u
#define HWS_SO_RCVBUF		8u
#define HWS_SO_LINGER		13u
#define HWS_SO_KEEPALIVE	9u
#define HWS_TCP_NODELAY		1u
#define HWS_SOL_TCP		6u
#define HWS_SOL_IPV6		41u

#define HWS_URI_MAX		128
#define HWS_URI_AREA_MIN	80
#define HWS_CFG_LEN		64

/* Wire status 1000: "use your own stack". Kept as -HWS_DECLINED inside the
 * module; never returned to a program. */
#define HWS_DECLINED		1000

/* Queue use (INBAND.md): 0 for requests that complete at once, 1 for those
 * that may wait for the network (CONNECT, ACCEPT, RECV). */
#define HWS_Q_FAST		0
#define HWS_Q_SLOW		1
#define HWS_NUM_QUEUES		2

/* Data buffers: one RECV buffer per offloaded socket, SENDs in chunks. */
#define HWS_BUF_MAX		65536u

/* ---- requests ---- */

struct hws_sock;

struct hws_req {
	struct hws_req_hdr hdr;		/* device-readable */
	struct hws_resp_hdr resp;	/* device-writable */
	char uri[HWS_URI_MAX];		/* device-readable URI (hdr.uri_len) */
	char ruri[HWS_URI_MAX];		/* device-writable URI area */
	u32 ruri_len;			/* bytes of ruri offered to the device */
	void *data;			/* kmalloc'ed, owned by the request */
	u32 data_len;
	bool data_in;			/* device writes data (RECV, GETSOCKOPT) */
	int q;
	u32 used;			/* used-ring length */
	int status;			/* 0 or -errno, -HWS_DECLINED */
	void (*done)(struct hws_req *req);	/* async; NULL: complete comp */
	struct hws_sock *hs;		/* holds a reference while in flight */
	struct completion comp;
	refcount_t ref;
	struct list_head link;		/* ring-space backlog / done list */
};

struct hws_req *hws_req_alloc(u16 op, u32 id, gfp_t gfp);
void hws_req_put(struct hws_req *req);
int hws_req_set_uri(struct hws_req *req, const char *uri, int len);
void hws_req_retag(struct hws_req *req);
void hws_submit(struct hws_req *req);
int hws_call(struct hws_req *req);
bool hws_dev_ready(void);
int hws_status_to_errno(u32 st);
bool hws_dev_evq(void);
void hws_ev_drain(void);
void hws_ev_repost(struct hws_evbuf *evb);
int hws_map_set(struct hws_sock *hs);
void hws_map_clear(struct hws_sock *hs);
void hws_ev_deliver(struct hws_sock *hs, struct hws_evbuf *evb, bool spill);
u64 hws_dev_features(void);
u32 hws_dev_io_max(void);
u32 hws_dev_uri_area(void);
int hws_id_alloc(void);
void hws_id_free(u32 id);

/* ---- sockets ---- */

struct hws_class {
	struct proto_ops ops;		/* what offered sockets carry */
	const struct proto_ops *orig;	/* the inet ops they had */
	int family;			/* AF_INET, AF_INET6 */
	int type;			/* SOCK_STREAM, SOCK_DGRAM */
	int protocol;			/* IPPROTO_TCP, IPPROTO_UDP */
	u32 wfamily, wtype;		/* wire OPEN arguments */
	const char *scheme;		/* tcp, udp, tcp6, udp6 */
	u64 need;			/* device-class features it needs */
};

enum hws_state {
	HWS_S_OPEN,		/* id open on the device, no decision yet */
	HWS_S_CONNECTING,
	HWS_S_CONNECTED,
	HWS_S_BOUND,		/* bound stream, or any offloaded datagram */
	HWS_S_LISTENING,
	HWS_S_FAILED,		/* a connect failed; sk_err set */
	HWS_S_DECLINED,		/* device said: use the guest's stack */
};

struct hws_sock {
	struct kref ref;
	struct hws_class *cls;
	struct socket *sock;		/* NULL once released */
	struct sock *sk;
	wait_queue_head_t *wq;		/* the socket's own wait queue */
	u32 id;
	spinlock_t lock;		/* fields below, taken in irq context */
	enum hws_state state;
	bool native;			/* late decline: inet ops do everything */
	bool async_connect;		/* connect returned, completion decides */
	bool closing;
	bool id_valid;
	bool close_sent;
	int conn_err;			/* result of a failed connect */
	bool shut_rd, shut_wr;
	/* receive: at most one RECV posted */
	struct hws_req *rx;
	bool rx_posted, rx_ready, rx_eof;
	int rx_err;
	u32 rx_off;
	/* event queue mode (§16): input arrives as event buffers */
	bool ev_on;			/* credit granted, in the id map */
	bool ev_fail;			/* CREDIT refused: RECV after all */
	struct list_head evq;		/* delivered event buffers, in order */
	u32 ev_off;			/* consumed bytes of the first one */
	u32 ev_used;			/* consumed since the last CREDIT */
	u32 ev_ncopy, ev_copied;	/* copies on evq: count, bytes */
	/* listen: at most one ACCEPT posted */
	struct hws_req *acc;
	bool acc_posted, acc_ready;
	/* send: at most one SEND in flight (write-behind) */
	bool tx_busy;
	bool close_deferred;		/* CLOSE once the SEND completed */
	u32 tx_len;
	struct mutex rx_mutex, tx_mutex;
	struct hws_req *close_req;	/* preallocated: close never fails */
	struct sockaddr_storage conn_addr;
	int conn_len;
	struct work_struct decline_work;
	char local[HWS_URI_MAX];	/* for /proc/net/hwsock */
	char peer[HWS_URI_MAX];
	struct list_head link;
};

extern struct hws_class hws_classes[4];
void hws_ops_init(void);
void hws_offer(struct socket *sock);
void hws_sol_socket_set(struct socket *sock, int optname);
void hws_sock_put(struct hws_sock *hs);

/* ---- uri.c ---- */
int hws_uri_from_sa(const struct hws_class *c, const struct sockaddr *sa,
		    int salen, bool bind, char *buf, size_t size);
int hws_uri_to_sa(const struct hws_class *c, const char *uri, int len,
		  struct sockaddr_storage *ss);

/* ---- proc.c ---- */
int hws_proc_init(void);
void hws_proc_exit(void);
void hws_proc_add(struct hws_sock *hs);
void hws_proc_del(struct hws_sock *hs);
const char *hws_state_name(enum hws_state s);

/* ---- vq.c (driver registration) ---- */
int hws_driver_init(void);
void hws_driver_exit(void);

#endif
