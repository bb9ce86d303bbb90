// SPDX-License-Identifier: GPL-2.0
/*
 * The proto_ops offered INET/INET6 TCP and UDP sockets carry, and the calls
 * that are not the data path (io.c). An undecided socket passes every call
 * to the inet ops except the four that ask the device (connect, bind,
 * listen, sendto); an offloaded one is carried by the device; a declined
 * one gets its inet ops back.
 */
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <asm/ioctls.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <linux/in6.h>
#include <linux/uio.h>
#include <net/inet_common.h>
#include <net/ipv6.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "hws.h"
#include "sock.h"

static unsigned int decision_wait_ms = 20;
module_param(decision_wait_ms, uint, 0644);
MODULE_PARM_DESC(decision_wait_ms,
		 "how long a nonblocking connect waits for the device's decision");


/* The first deciding request of a fresh socket completed with err: 0 the
 * socket is offloaded in state st, 1 declined (the inet ops have it back:
 * call them, then hws_declined()), or the deny/failure errno (the socket
 * stays undecided). */
static int hws_decide(struct socket *sock, struct hws_class *c,
		      struct hws_sock *hs, int err, enum hws_state st)
{
	if (err == -HWS_DECLINED) {
		hws_sock_drop(hs);
		hws_restore(sock, c);
		return 1;
	}
	if (err) {
		hws_sock_drop(hs);
		return err;
	}
	hs->state = st;
	hws_install(hs);
	return 0;
}

static void hws_setopt_async(struct hws_sock *hs, int q, u32 level, u32 name,
			     u32 v0, u32 v1, u32 len, gfp_t gfp)
{
	struct hws_req *req = hws_req_alloc(HWS_OP_SETSOCKOPT, hs->id, gfp);
	__le32 *v;

	if (!req)
		return;
	req->data = kmalloc(2 * sizeof(__le32), gfp);
	if (!req->data) {
		hws_req_put(req);
		return;
	}
	v = req->data;
	v[0] = cpu_to_le32(v0);
	v[1] = cpu_to_le32(v1);
	req->data_len = len;
	req->hdr.arg0 = cpu_to_le32(level);
	req->hdr.arg1 = cpu_to_le32(name);
	req->q = q;
	req->hs = hs;
	hws_submit(req);
	hws_req_put(req);
}

/* Options a program set before the decision are on the inet socket. The
 * device takes SETSOCKOPT only once the socket is offloaded, so they go
 * right behind the deciding request on its queue (the device takes a
 * queue's requests in order, §8) and apply to the host socket from then
 * on. Their results do not matter: declined or denied, they fail; an
 * option the policy set on the host (EPERM) keeps the operator's value. */
static void hws_replay_opts(struct hws_sock *hs, int q)
{
	struct sock *sk = hs->sk;

	if (hs->cls->type == SOCK_STREAM) {
		if (tcp_sk(sk)->nonagle & TCP_NAGLE_OFF)
			hws_setopt_async(hs, q, HWS_SOL_TCP, HWS_TCP_NODELAY,
					 1, 0, 4, GFP_KERNEL);
		if (sock_flag(sk, SOCK_KEEPOPEN))
			hws_setopt_async(hs, q, HWS_SOL_SOCKET,
					 HWS_SO_KEEPALIVE, 1, 0, 4, GFP_KERNEL);
	} else if (sock_flag(sk, SOCK_BROADCAST)) {
		hws_setopt_async(hs, q, HWS_SOL_SOCKET, HWS_SO_BROADCAST,
				 1, 0, 4, GFP_KERNEL);
	}
	if (sock_flag(sk, SOCK_LINGER))
		hws_setopt_async(hs, q, HWS_SOL_SOCKET, HWS_SO_LINGER, 1,
				 READ_ONCE(sk->sk_lingertime) / HZ, 8,
				 GFP_KERNEL);
	if (sk->sk_userlocks & SOCK_SNDBUF_LOCK)
		hws_setopt_async(hs, q, HWS_SOL_SOCKET, HWS_SO_SNDBUF,
				 READ_ONCE(sk->sk_sndbuf) / 2, 0, 4, GFP_KERNEL);
	if (sk->sk_userlocks & SOCK_RCVBUF_LOCK)
		hws_setopt_async(hs, q, HWS_SOL_SOCKET, HWS_SO_RCVBUF,
				 READ_ONCE(sk->sk_rcvbuf) / 2, 0, 4, GFP_KERNEL);
}

/* A fresh socket state with its id OPEN on the device. */
static struct hws_sock *hws_fresh(struct socket *sock, struct hws_class *c)
{
	struct hws_sock *hs = hws_sock_new(sock, c, -1);
	int err;

	if (IS_ERR(hs))
		return hs;
	err = hws_sock_open(hs);
	if (err) {
		hws_sock_drop(hs);
		return ERR_PTR(err);
	}
	return hs;
}

/* After a declined socket's inet call: the module reference its ops held. */
static int hws_declined(int ret)
{
	module_put(THIS_MODULE);
	return ret;
}

static int hws_release(struct socket *sock)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);

	if (hs)
		hws_sock_release(hs);
	return c->orig->release(sock);
}

static int hws_connect(struct socket *sock, struct sockaddr *addr, int alen,
		       int flags)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	bool fresh = false, nonblock = flags & O_NONBLOCK;
	struct sock *sk = sock->sk;
	char uri[HWS_URI_MAX];
	struct hws_req *req;
	long timeo, left;
	int ulen, err;

	if (hws_passthru(hs) && (hs || !hws_dev_ready()))
		return c->orig->connect(sock, addr, alen, flags);
	ulen = hws_uri_from_sa(c, addr, alen, false, uri, sizeof(uri));
	if (ulen == -EAFNOSUPPORT && !hs)
		return c->orig->connect(sock, addr, alen, flags);
	if (ulen < 0)
		return ulen;
	if (alen > sizeof(hs->conn_addr))
		alen = sizeof(hs->conn_addr);

	lock_sock(sk);
	hs = hws_of(sock);
	if (!hs) {
		hs = hws_fresh(sock, c);
		if (IS_ERR(hs)) {
			release_sock(sk);
			return PTR_ERR(hs);
		}
		fresh = true;
	} else {
		err = 0;
		spin_lock_irq(&hs->lock);
		if (hs->state == HWS_S_CONNECTING ||
		    hs->state == HWS_S_DECLINED)
			err = -EALREADY;
		else if (hs->state == HWS_S_LISTENING)
			err = -EINVAL;
		else if (hs->state == HWS_S_CONNECTED &&
			 c->type == SOCK_STREAM)
			err = -EISCONN;
		spin_unlock_irq(&hs->lock);
		if (err) {
			release_sock(sk);
			return err;
		}
	}
	req = hws_req_alloc(HWS_OP_CONNECT, hs->id, GFP_KERNEL);
	if (!req) {
		if (fresh)
			hws_sock_drop(hs);
		release_sock(sk);
		return -ENOMEM;
	}
	hws_req_set_uri(req, uri, ulen);
	req->q = HWS_Q_SLOW;
	req->hs = hs;
	req->done = hws_connect_done;
	memcpy(&hs->conn_addr, addr, alen);
	hs->conn_len = alen;
	strscpy(hs->peer, uri, sizeof(hs->peer));
	spin_lock_irq(&hs->lock);
	hs->state = HWS_S_CONNECTING;
	hs->async_connect = false;
	spin_unlock_irq(&hs->lock);
	if (fresh)
		hws_install(hs);
	hws_submit(req);
	hws_req_put(req);
	if (fresh)
		hws_replay_opts(hs, HWS_Q_SLOW);
	release_sock(sk);

	/* The decision comes with the CONNECT's completion. A nonblocking
	 * connect waits a little for it (a decline or deny is answered at
	 * once); after that the connection is taken as in progress. */
	timeo = nonblock ? msecs_to_jiffies(decision_wait_ms) :
			   sock_sndtimeo(sk, false);
	left = wait_event_interruptible_timeout(*hs->wq,
			READ_ONCE(hs->state) != HWS_S_CONNECTING, timeo);
	spin_lock_irq(&hs->lock);
	switch (hs->state) {
	case HWS_S_CONNECTING:
		hs->async_connect = true;
		spin_unlock_irq(&hs->lock);
		if (left < 0)
			return -EINTR;
		return -EINPROGRESS;
	case HWS_S_CONNECTED:
		spin_unlock_irq(&hs->lock);
		return 0;
	case HWS_S_DECLINED:
		if (hs->async_connect) {	/* a late decline already */
			spin_unlock_irq(&hs->lock);
			return -EALREADY;
		}
		spin_unlock_irq(&hs->lock);
		if (!fresh)	/* cannot happen (§6.4): a re-check never declines */
			return -EACCES;
		hws_uninstall(hs);
		hws_sock_drop(hs);
		hws_restore(sock, c);
		return hws_declined(c->orig->connect(sock, addr, alen, flags));
	default:
		err = hs->conn_err ?: -EIO;
		spin_unlock_irq(&hs->lock);
		if (fresh) {
			hws_uninstall(hs);
			hws_sock_drop(hs);
		}
		return err;
	}
}

static int hws_bind(struct socket *sock, struct sockaddr *addr, int alen)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	char uri[HWS_URI_MAX];
	struct hws_req *req;
	int ulen, err;

	if (hws_passthru(hs) && (hs || !hws_dev_ready()))
		return c->orig->bind(sock, addr, alen);
	if (hs)
		return -EINVAL;
	ulen = hws_uri_from_sa(c, addr, alen, true, uri, sizeof(uri));
	if (ulen == -EAFNOSUPPORT)
		return c->orig->bind(sock, addr, alen);
	if (ulen < 0)
		return ulen;
	lock_sock(sock->sk);
	if (hws_of(sock)) {
		release_sock(sock->sk);
		return -EINVAL;
	}
	hs = hws_fresh(sock, c);
	if (IS_ERR(hs)) {
		release_sock(sock->sk);
		return PTR_ERR(hs);
	}
	req = hws_req_alloc(HWS_OP_BIND, hs->id, GFP_KERNEL);
	if (req) {
		hws_req_set_uri(req, uri, ulen);
		req->hs = hs;
		err = hws_call(req);
		hws_req_put(req);
	} else {
		err = -ENOMEM;
	}
	if (!err)
		strscpy(hs->local, uri, sizeof(hs->local));
	err = hws_decide(sock, c, hs, err, HWS_S_BOUND);
	release_sock(sock->sk);
	if (err == 1)
		return hws_declined(c->orig->bind(sock, addr, alen));
	if (err)
		return err;
	hws_replay_opts(hs, HWS_Q_FAST);
	if (c->type == SOCK_DGRAM)
		hws_rx_post(hs);
	return 0;
}

/* GETNAME into ss; returns the sockaddr length or -errno. */
int hws_getname_ss(struct hws_sock *hs, int peer,
			  struct sockaddr_storage *ss)
{
	struct hws_req *req = hws_req_alloc(HWS_OP_GETNAME, hs->id, GFP_KERNEL);
	u32 ul;
	int err;

	if (!req)
		return -ENOMEM;
	req->hdr.arg0 = cpu_to_le32(peer ? 1 : 0);
	req->ruri_len = hws_dev_uri_area();
	req->hs = hs;
	err = hws_call(req);
	if (!err) {
		ul = le32_to_cpu(req->resp.uri_len);
		if (ul > req->ruri_len || req->used < 32 + ul)
			err = -EIO;
		else
			err = hws_uri_to_sa(hs->cls, req->ruri, ul, ss);
		if (err == -EINVAL)
			err = -EIO;
		if (err > 0 && !peer)
			snprintf(hs->local, sizeof(hs->local), "%.*s", ul,
				 req->ruri);
	}
	hws_req_put(req);
	return err;
}

static int hws_listen(struct socket *sock, int backlog)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	struct sockaddr_storage ss;
	struct hws_req *req;
	bool fresh = false;
	int err;

	if (hws_passthru(hs) && (hs || !hws_dev_ready() ||
				 c->type != SOCK_STREAM))
		return c->orig->listen(sock, backlog);
	lock_sock(sock->sk);
	hs = hws_of(sock);
	if (!hs) {
		hs = hws_fresh(sock, c);
		if (IS_ERR(hs)) {
			release_sock(sock->sk);
			return PTR_ERR(hs);
		}
		fresh = true;
	} else if (hs->state != HWS_S_BOUND && hs->state != HWS_S_LISTENING) {
		release_sock(sock->sk);
		return -EINVAL;
	}
	req = hws_req_alloc(HWS_OP_LISTEN, hs->id, GFP_KERNEL);
	if (req) {
		req->hdr.arg0 = cpu_to_le32(max(backlog, 1));
		req->hs = hs;
		err = hws_call(req);
		hws_req_put(req);
	} else {
		err = -ENOMEM;
	}
	if (fresh)
		err = hws_decide(sock, c, hs, err, HWS_S_LISTENING);
	else if (!err)
		hs->state = HWS_S_LISTENING;
	release_sock(sock->sk);
	if (err == 1)
		return hws_declined(c->orig->listen(sock, backlog));
	if (err)
		return err;
	if (fresh)
		hws_replay_opts(hs, HWS_Q_FAST);
	hws_getname_ss(hs, 0, &ss);	/* for /proc/net/hwsock only */
	return hws_acc_post(hs);
}

/* Give the accepted connection `id` a socket: newsock needs a struct sock
 * for the generic socket code (SOL_SOCKET options, SO_ERROR), so take one
 * from a kernel socket of the same kind. */
static int hws_accept_sock(struct socket *sock, struct socket *newsock,
			   struct hws_class *c, u32 id, const char *uri,
			   u32 ulen)
{
	struct socket *tmp;
	struct hws_sock *nhs;
	struct sock *sk;
	int err;

	err = sock_create_kern(sock_net(sock->sk), c->family, c->type,
			       c->protocol, &tmp);
	if (err) {
		hws_close_id(id, GFP_KERNEL);
		return err;
	}
	sk = tmp->sk;
	tmp->sk = NULL;
	sock_release(tmp);
	sock_graft(sk, newsock);
	newsock->state = SS_CONNECTED;
	nhs = hws_sock_new(newsock, c, id);
	if (IS_ERR(nhs)) {
		hws_close_id(id, GFP_KERNEL);
		return PTR_ERR(nhs);
	}
	snprintf(nhs->peer, sizeof(nhs->peer), "%.*s", ulen, uri);
	nhs->state = HWS_S_CONNECTED;
	hws_install(nhs);
	hws_rx_post(nhs);
	return 0;
}

static int hws_accept(struct socket *sock, struct socket *newsock, int flags,
		      bool kern)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	char uri[HWS_URI_MAX];
	u32 id, ulen;
	long timeo;
	int err;

	if (hws_passthru(hs))
		return c->orig->accept(sock, newsock, flags, kern);
	if (hs->state != HWS_S_LISTENING)
		return -EINVAL;
	timeo = sock_rcvtimeo(sock->sk, flags & O_NONBLOCK);
	if (mutex_lock_interruptible(&hs->rx_mutex))
		return -ERESTARTSYS;
	for (;;) {
		spin_lock_irq(&hs->lock);
		if (hs->acc_ready)
			break;
		spin_unlock_irq(&hs->lock);
		err = hws_acc_post(hs);
		if (err)
			goto out;
		err = -EAGAIN;
		if (!timeo)
			goto out;
		timeo = wait_event_interruptible_timeout(*hs->wq,
				READ_ONCE(hs->acc_ready), timeo);
		if (timeo < 0) {
			err = -ERESTARTSYS;
			goto out;
		}
	}
	hs->acc_ready = false;
	err = hs->acc->status;
	id = le32_to_cpu(hs->acc->hdr.arg1);
	ulen = le32_to_cpu(hs->acc->resp.uri_len);
	memcpy(uri, hs->acc->ruri, ulen);
	spin_unlock_irq(&hs->lock);
	if (!err)
		err = hws_accept_sock(sock, newsock, c, id, uri, ulen);
	hws_acc_post(hs);
out:
	mutex_unlock(&hs->rx_mutex);
	return err;
}

static int hws_getname(struct socket *sock, struct sockaddr *addr, int peer)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	struct sockaddr_storage ss;
	int len;

	if (hws_passthru(hs))
		return c->orig->getname(sock, addr, peer);
	len = hws_getname_ss(hs, peer, &ss);
	if (len > 0)
		memcpy(addr, &ss, len);
	return len;
}

static int hws_shutdown(struct socket *sock, int how)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	struct hws_req *req;
	int err;

	if (hws_passthru(hs))
		return c->orig->shutdown(sock, how);
	how++;			/* SHUT_RD 0 .. SHUT_RDWR 2 -> wire 1..3 */
	if (how < 1 || how > 3)
		return -EINVAL;
	if (hs->state != HWS_S_CONNECTED)
		return -ENOTCONN;
	req = hws_req_alloc(HWS_OP_SHUTDOWN, hs->id, GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	req->hdr.arg0 = cpu_to_le32(how);
	req->hs = hs;
	err = hws_call(req);
	hws_req_put(req);
	if (!err) {
		spin_lock_irq(&hs->lock);
		hs->shut_rd |= how & 1;
		hs->shut_wr |= !!(how & 2);
		wake_up_interruptible_poll(hs->wq, EPOLLIN | EPOLLOUT |
					   EPOLLHUP | EPOLLRDHUP);
		spin_unlock_irq(&hs->lock);
	}
	return err;
}

/* The portable options of §5.11 below SOL_SOCKET (that level is handled by
 * the generic socket code on the struct sock). */
static int hws_opt_map(struct hws_class *c, int level, int name, u32 *wl)
{
	if (level == SOL_TCP && c->type == SOCK_STREAM &&
	    (name == TCP_NODELAY || name == TCP_KEEPIDLE ||
	     name == TCP_KEEPINTVL || name == TCP_KEEPCNT)) {
		*wl = HWS_SOL_TCP;
		return 0;
	}
	if (level == SOL_IPV6 && c->family == AF_INET6 && name == IPV6_V6ONLY) {
		*wl = HWS_SOL_IPV6;
		return 0;
	}
	return -ENOPROTOOPT;
}

static int hws_setsockopt(struct socket *sock, int level, int name,
			  sockptr_t optval, unsigned int optlen)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	struct hws_req *req;
	u32 wl, v;
	int err;

	if (hws_passthru(hs))
		return c->orig->setsockopt(sock, level, name, optval, optlen);
	err = hws_opt_map(c, level, name, &wl);
	if (err)
		return err;
	if (optlen < sizeof(v))
		return -EINVAL;
	if (copy_from_sockptr(&v, optval, sizeof(v)))
		return -EFAULT;
	req = hws_req_alloc(HWS_OP_SETSOCKOPT, hs->id, GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	req->data = kmalloc(sizeof(__le32), GFP_KERNEL);
	if (!req->data) {
		hws_req_put(req);
		return -ENOMEM;
	}
	*(__le32 *)req->data = cpu_to_le32(v);
	req->data_len = sizeof(__le32);
	req->hdr.arg0 = cpu_to_le32(wl);
	req->hdr.arg1 = cpu_to_le32(name);
	req->hs = hs;
	err = hws_call(req);
	hws_req_put(req);
	return err;
}

static int hws_getsockopt(struct socket *sock, int level, int name,
			  char __user *optval, int __user *optlen)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	struct hws_req *req;
	int err, len;
	u32 wl, v;

	if (hws_passthru(hs))
		return c->orig->getsockopt(sock, level, name, optval, optlen);
	err = hws_opt_map(c, level, name, &wl);
	if (err)
		return err;
	if (get_user(len, optlen))
		return -EFAULT;
	if (len < (int)sizeof(v))
		return -EINVAL;
	req = hws_req_alloc(HWS_OP_GETSOCKOPT, hs->id, GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	req->data_len = 64;
	req->data = kzalloc(req->data_len, GFP_KERNEL);
	if (!req->data) {
		hws_req_put(req);
		return -ENOMEM;
	}
	req->data_in = true;
	req->hdr.arg0 = cpu_to_le32(wl);
	req->hdr.arg1 = cpu_to_le32(name);
	req->hs = hs;
	err = hws_call(req);
	if (!err && le32_to_cpu(req->resp.len) != sizeof(v))
		err = -EIO;
	if (!err) {
		v = le32_to_cpu(*(__le32 *)req->data);
		if (put_user((int)sizeof(v), optlen) ||
		    copy_to_user(optval, &v, sizeof(v)))
			err = -EFAULT;
	}
	hws_req_put(req);
	return err;
}

/* First datagram of an undecided UDP socket: SEND-with-URI decides. */
int hws_sendto_first(struct socket *sock, struct hws_class *c,
			    struct msghdr *m, size_t len)
{
	char uri[HWS_URI_MAX];
	struct hws_sock *hs;
	int ulen, err;

	ulen = hws_uri_from_sa(c, m->msg_name, m->msg_namelen, false, uri,
			       sizeof(uri));
	if (ulen == -EAFNOSUPPORT)
		return c->orig->sendmsg(sock, m, len);
	if (ulen < 0)
		return ulen;
	if (len > hws_dev_io_max())
		return -EMSGSIZE;
	lock_sock(sock->sk);
	hs = hws_of(sock);
	if (hs) {
		release_sock(sock->sk);
		return hws_send(sock, hs, m, len);
	}
	hs = hws_fresh(sock, c);
	if (IS_ERR(hs)) {
		release_sock(sock->sk);
		return PTR_ERR(hs);
	}
	err = hws_send_one(hs, m, len, uri, ulen);
	if (err >= 0)
		strscpy(hs->peer, uri, sizeof(hs->peer));
	err = hws_decide(sock, c, hs, err < 0 ? err : 0, HWS_S_BOUND);
	release_sock(sock->sk);
	if (err == 1) {
		iov_iter_revert(&m->msg_iter, len);
		return hws_declined(c->orig->sendmsg(sock, m, len));
	}
	if (err)
		return err;
	hws_replay_opts(hs, HWS_Q_FAST);
	hws_rx_post(hs);
	return len;
}

/* After the generic code set a SOL_SOCKET option on an offloaded socket's
 * struct sock (socket-level options never reach the protocol's ops): send
 * the new value to the device too. Atomic context (a kretprobe); the
 * result is not waited for, so an option the policy set on the host keeps
 * the operator's value without the program seeing EPERM. */
void hws_sol_socket_set(struct socket *sock, int optname)
{
	struct sock *sk = sock->sk;
	struct hws_sock *hs;
	u32 name, v0, v1 = 0, len = 4;
	int i;

	for (i = 0; i < ARRAY_SIZE(hws_classes); i++)
		if (sock->ops == &hws_classes[i].ops)
			break;
	if (i == ARRAY_SIZE(hws_classes) || !sk)
		return;
	hs = hws_of(sock);
	if (hws_passthru(hs) || READ_ONCE(hs->state) == HWS_S_DECLINED)
		return;
	switch (optname) {
	case SO_REUSEADDR:
		name = HWS_SO_REUSEADDR;
		v0 = sk->sk_reuse != SK_NO_REUSE;
		break;
	case SO_KEEPALIVE:
		name = HWS_SO_KEEPALIVE;
		v0 = sock_flag(sk, SOCK_KEEPOPEN);
		break;
	case SO_BROADCAST:
		name = HWS_SO_BROADCAST;
		v0 = sock_flag(sk, SOCK_BROADCAST);
		break;
	case SO_SNDBUF:		/* the kernel stores twice the value asked */
		name = HWS_SO_SNDBUF;
		v0 = READ_ONCE(sk->sk_sndbuf) / 2;
		break;
	case SO_RCVBUF:
		name = HWS_SO_RCVBUF;
		v0 = READ_ONCE(sk->sk_rcvbuf) / 2;
		break;
	case SO_LINGER:
		name = HWS_SO_LINGER;
		v0 = sock_flag(sk, SOCK_LINGER);
		v1 = v0 ? READ_ONCE(sk->sk_lingertime) / HZ : 0;
		len = 8;
		break;
	default:
		return;
	}
	hws_setopt_async(hs, HWS_Q_FAST, HWS_SOL_SOCKET, name, v0, v1, len,
			 GFP_ATOMIC);
}

struct hws_class hws_classes[4] = {
	{ .family = AF_INET, .type = SOCK_STREAM, .protocol = IPPROTO_TCP,
	  .wfamily = HWS_AF_INET, .wtype = HWS_SOCK_STREAM, .scheme = "tcp",
	  .need = HWS_F_TCP },
	{ .family = AF_INET, .type = SOCK_DGRAM, .protocol = IPPROTO_UDP,
	  .wfamily = HWS_AF_INET, .wtype = HWS_SOCK_DGRAM, .scheme = "udp",
	  .need = HWS_F_UDP },
	{ .family = AF_INET6, .type = SOCK_STREAM, .protocol = IPPROTO_TCP,
	  .wfamily = HWS_AF_INET6, .wtype = HWS_SOCK_STREAM, .scheme = "tcp6",
	  .need = HWS_F_TCP | HWS_F_INET6 },
	{ .family = AF_INET6, .type = SOCK_DGRAM, .protocol = IPPROTO_UDP,
	  .wfamily = HWS_AF_INET6, .wtype = HWS_SOCK_DGRAM, .scheme = "udp6",
	  .need = HWS_F_UDP | HWS_F_INET6 },
};

/* Our ops are the inet ops with the calls above replaced: whatever we do
 * not handle (mmap, splice, timestamps, fdinfo...) stays the inet one. */
static void hws_ops_fill(struct hws_class *c, const struct proto_ops *orig)
{
	struct proto_ops *o = &c->ops;

	*o = *orig;
	o->owner = THIS_MODULE;
	o->release = hws_release;
	o->bind = hws_bind;
	o->connect = hws_connect;
	o->accept = hws_accept;
	o->getname = hws_getname;
	o->poll = hws_poll;
	o->ioctl = hws_ioctl;
	o->listen = hws_listen;
	o->shutdown = hws_shutdown;
	o->setsockopt = hws_setsockopt;
	o->getsockopt = hws_getsockopt;
	o->sendmsg = hws_sendmsg;
	o->recvmsg = hws_recvmsg;
	o->sendpage = hws_sendpage;
}

void hws_ops_init(void)
{
	hws_ops_fill(&hws_classes[0], &inet_stream_ops);
	hws_classes[0].orig = &inet_stream_ops;
	hws_ops_fill(&hws_classes[1], &inet_dgram_ops);
	hws_classes[1].orig = &inet_dgram_ops;
}

/* inet6_stream_ops/inet6_dgram_ops are not exported: learn them from the
 * first socket, checked against exported inet6 functions. */
static bool hws_learn6(struct hws_class *c, const struct proto_ops *ops)
{
	static DEFINE_SPINLOCK(learn_lock);
	unsigned long flags;

	if (ops->family != PF_INET6 || ops->release != inet6_release ||
	    ops->bind != inet6_bind || ops->getname != inet6_getname)
		return false;
	spin_lock_irqsave(&learn_lock, flags);
	if (!c->orig) {
		hws_ops_fill(c, ops);
		smp_store_release(&c->orig, ops);
	}
	spin_unlock_irqrestore(&learn_lock, flags);
	return true;
}

/* Called from the socket-creation hook (atomic context). */
void hws_offer(struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct hws_class *c;
	int i;

	if (!sk || !hws_dev_ready())
		return;
	for (i = 0; i < ARRAY_SIZE(hws_classes); i++) {
		c = &hws_classes[i];
		if (c->family == sk->sk_family && c->type == sock->type &&
		    c->protocol == sk->sk_protocol)
			break;
	}
	if (i == ARRAY_SIZE(hws_classes) ||
	    (hws_dev_features() & c->need) != c->need)
		return;
	if (!smp_load_acquire(&c->orig) &&
	    (c->family != AF_INET6 || !hws_learn6(c, sock->ops)))
		return;
	if (sock->ops == c->orig)
		WRITE_ONCE(sock->ops, &c->ops);
}