/* SPDX-License-Identifier: GPL-2.0 */
/* Socket state helpers shared by ops.c and sock.c. */
#ifndef HWS_SOCK_H
#define HWS_SOCK_H

#include <linux/poll.h>
#include <net/sock.h>

#include "hws.h"

struct hws_sock *hws_sock_new(struct socket *sock, struct hws_class *c,
			      int id);
int hws_sock_open(struct hws_sock *hs);
void hws_sock_close_id(struct hws_sock *hs);
void hws_sock_drop(struct hws_sock *hs);
void hws_sock_release(struct hws_sock *hs);
void hws_install(struct hws_sock *hs);
void hws_uninstall(struct hws_sock *hs);
void hws_restore(struct socket *sock, struct hws_class *c);
void hws_rx_post(struct hws_sock *hs);
int hws_acc_post(struct hws_sock *hs);
void hws_close_id(u32 id, gfp_t gfp);
void hws_connect_done(struct hws_req *req);

void hws_credit(struct hws_sock *hs, u32 n, gfp_t gfp);
u32 hws_window(struct hws_sock *hs);

/* Receive windows granted with the event queue (§16.3). */
#define HWS_WINDOW_BYTES	(64u * 1024)
#define HWS_WINDOW_DGRAMS	64u

/* io.c */
__poll_t hws_poll(struct file *file, struct socket *sock, poll_table *wait);
int hws_ioctl(struct socket *sock, unsigned int cmd, unsigned long arg);
int hws_send_one(struct hws_sock *hs, struct msghdr *m, size_t n,
		 const char *uri, int ulen);
int hws_send(struct socket *sock, struct hws_sock *hs, struct msghdr *m,
	     size_t len);
int hws_sendmsg(struct socket *sock, struct msghdr *m, size_t len);
ssize_t hws_sendpage(struct socket *sock, struct page *page, int offset,
		     size_t size, int flags);
int hws_recvmsg(struct socket *sock, struct msghdr *m, size_t len,
		int flags);
/* ops.c */
int hws_getname_ss(struct hws_sock *hs, int peer, struct sockaddr_storage *ss);
int hws_sendto_first(struct socket *sock, struct hws_class *c,
		     struct msghdr *m, size_t len);

/* No state, or a late decline handed the socket to the guest's stack. */
static inline bool hws_passthru(struct hws_sock *hs)
{
	return !hs || READ_ONCE(hs->native);
}

/* Input through the event queue (else through RECV requests). */
static inline bool hws_ev(struct hws_sock *hs)
{
	return hws_dev_evq() && !READ_ONCE(hs->ev_fail);
}

static inline struct hws_sock *hws_of(struct socket *sock)
{
	return sock->sk ? rcu_access_pointer(sock->sk->sk_user_data) : NULL;
}

static inline struct hws_class *hws_cls(struct socket *sock)
{
	return container_of((struct proto_ops *)sock->ops, struct hws_class,
			    ops);
}

#endif
