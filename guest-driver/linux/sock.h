/* SPDX-License-Identifier: GPL-2.0 */
/* Socket state helpers shared by ops.c and sock.c. */
#ifndef HWS_SOCK_H
#define HWS_SOCK_H

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
