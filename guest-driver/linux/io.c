// SPDX-License-Identifier: GPL-2.0
/*
 * The data path of offloaded sockets: send (write-behind for streams), the
 * posted RECV and recvmsg, poll, FIONREAD/SIOCOUTQ. One copy in the guest:
 * between the program's memory and kmalloc'ed buffers the device reads and
 * writes in place.
 */
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <asm/ioctls.h>
#include <linux/sockios.h>
#include <linux/uio.h>
#include <net/sock.h>

#include "hws.h"
#include "sock.h"
/* Input is there to read (data, its end, or an error: a datagram
 * socket's pending soft error, sk_err, too). */
static bool hws_rx_ready(struct hws_sock *hs)
{
	if (hs->cls->type == SOCK_DGRAM && READ_ONCE(hs->sk->sk_err))
		return true;
	if (hws_ev(hs))
		return !list_empty_careful(&hs->evq) || READ_ONCE(hs->rx_eof);
	return READ_ONCE(hs->rx_ready);
}

__poll_t hws_poll(struct file *file, struct socket *sock,
			 poll_table *wait)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	unsigned long flags;
	__poll_t mask = 0;
	bool post;

	if (hws_passthru(hs))
		return c->orig->poll(file, sock, wait);
	sock_poll_wait(file, sock, wait);
	spin_lock_irqsave(&hs->lock, flags);
	switch (hs->state) {
	case HWS_S_FAILED:
		mask |= EPOLLERR | EPOLLHUP | EPOLLOUT | EPOLLWRNORM;
		break;
	case HWS_S_LISTENING:
		if (hs->acc_ready)
			mask |= EPOLLIN | EPOLLRDNORM;
		break;
	case HWS_S_CONNECTED:
	case HWS_S_BOUND:
		if (!hs->shut_wr && !hs->tx_busy)
			mask |= EPOLLOUT | EPOLLWRNORM;
		if (hws_rx_ready(hs) || hs->shut_rd)
			mask |= EPOLLIN | EPOLLRDNORM;
		if ((hws_rx_ready(hs) && hs->rx_eof) || hs->shut_rd)
			mask |= EPOLLRDHUP;
		if (hs->rx_ready && hs->rx_err)
			mask |= EPOLLERR;
		if ((hs->rx_eof || hs->shut_rd) && hs->shut_wr)
			mask |= EPOLLHUP;
		break;
	default:
		break;
	}
	if (READ_ONCE(sock->sk->sk_err))
		mask |= EPOLLERR;
	post = !(mask & EPOLLIN) && !hs->rx_posted &&
	       (hs->state == HWS_S_CONNECTED || hs->state == HWS_S_BOUND) &&
	       (poll_requested_events(wait) & (EPOLLIN | EPOLLRDNORM));
	spin_unlock_irqrestore(&hs->lock, flags);
	/* Someone waits for input: a RECV must be posted for it to come. */
	if (post)
		hws_rx_post(hs);
	return mask;
}

/* Unread bytes in the delivered event buffers (a datagram: the first). */
static int hws_ev_inq(struct hws_sock *hs)
{
	struct hws_evbuf *evb;
	struct hws_event *ev;
	int n = 0;

	list_for_each_entry(evb, &hs->evq, link) {
		ev = (void *)evb->data;
		if (le16_to_cpu(ev->type) != HWS_EV_DATA)
			break;
		if (hs->cls->type == SOCK_DGRAM)
			return le32_to_cpu(ev->len);
		n += le32_to_cpu(ev->len);
	}
	return n - (n ? hs->ev_off : 0);
}

int hws_ioctl(struct socket *sock, unsigned int cmd, unsigned long arg)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	int n = 0;

	if (hws_passthru(hs))
		return c->orig->ioctl(sock, cmd, arg);
	switch (cmd) {
	case SIOCINQ:
		spin_lock_irq(&hs->lock);
		if (hws_ev(hs))
			n = hws_ev_inq(hs);
		else if (hs->rx_ready && !hs->rx_err)
			n = le32_to_cpu(hs->rx->resp.len) -
			    (c->type == SOCK_STREAM ? hs->rx_off : 0);
		spin_unlock_irq(&hs->lock);
		return put_user(n, (int __user *)arg);
	case SIOCOUTQ:
		spin_lock_irq(&hs->lock);
		n = hs->tx_busy ? hs->tx_len : 0;
		spin_unlock_irq(&hs->lock);
		return put_user(n, (int __user *)arg);
	default:
		return c->orig->ioctl(sock, cmd, arg);
	}
}

/* Wait for the stream to be connected before sending. */
static int hws_tx_ready(struct hws_sock *hs, int flags)
{
	long timeo = sock_sndtimeo(hs->sk, flags & MSG_DONTWAIT);

	for (;;) {
		switch (READ_ONCE(hs->state)) {
		case HWS_S_CONNECTED:
			return hs->shut_wr ? -EPIPE : 0;
		case HWS_S_CONNECTING:
			break;
		case HWS_S_FAILED:
			return sock_error(hs->sk) ?: -EPIPE;
		default:
			return -ENOTCONN;
		}
		if (!timeo)
			return -EAGAIN;
		timeo = wait_event_interruptible_timeout(*hs->wq,
				READ_ONCE(hs->state) != HWS_S_CONNECTING, timeo);
		if (timeo < 0)
			return -ERESTARTSYS;
	}
}

/* One SEND of up to max_io_len bytes copied from the program once, into a
 * buffer the device reads in place. Returns bytes sent or -errno. */
int hws_send_one(struct hws_sock *hs, struct msghdr *m, size_t n,
			const char *uri, int ulen)
{
	struct hws_req *req = hws_req_alloc(HWS_OP_SEND, hs->id, GFP_KERNEL);
	int err;

	if (!req)
		return -ENOMEM;
	if (ulen > 0)
		hws_req_set_uri(req, uri, ulen);
	if (n) {
		req->data = kmalloc(n, GFP_KERNEL);
		if (!req->data) {
			hws_req_put(req);
			return -ENOMEM;
		}
		req->data_len = n;
		if (!copy_from_iter_full(req->data, n, &m->msg_iter)) {
			hws_req_put(req);
			return -EFAULT;
		}
	}
	req->hs = hs;
	err = hws_call(req);
	if (!err && le32_to_cpu(req->resp.len) != n)
		err = -EIO;
	hws_req_put(req);
	return err ? err : n;
}

static void hws_tx_done(struct hws_req *req)
{
	struct hws_sock *hs = req->hs;
	unsigned long flags;
	bool close;

	spin_lock_irqsave(&hs->lock, flags);
	hs->tx_busy = false;
	if (!req->status && le32_to_cpu(req->resp.len) != req->data_len)
		req->status = -EIO;
	close = hs->close_deferred;
	if (!hs->closing) {
		/* the pending error of the socket: SO_ERROR or the next send */
		if (req->status && !READ_ONCE(hs->sk->sk_err))
			WRITE_ONCE(hs->sk->sk_err, -req->status);
		wake_up_interruptible_poll(hs->wq, EPOLLOUT | EPOLLWRNORM |
					   (req->status ? EPOLLERR : 0));
	}
	spin_unlock_irqrestore(&hs->lock, flags);
	if (close)
		hws_sock_close_id(hs);
}

/* Stream send with write-behind: the data is copied once into a buffer the
 * device reads in place, and send() returns once the SEND is queued. One
 * SEND per socket is in flight; the next send waits for it (or EAGAIN when
 * nonblocking, and poll reports EPOLLOUT again when it completes). Its
 * error becomes the socket's pending error (sk_err): the next send or
 * SO_ERROR reports it, as with the guest's own TCP. */
static int hws_send_stream(struct hws_sock *hs, struct msghdr *m, size_t len)
{
	long timeo = sock_sndtimeo(hs->sk, m->msg_flags & MSG_DONTWAIT);
	size_t sent = 0, max = hws_dev_io_max(), n;
	struct hws_req *req;
	int err = 0;

	if (mutex_lock_interruptible(&hs->tx_mutex))
		return -ERESTARTSYS;
	do {
		if (READ_ONCE(hs->tx_busy)) {
			err = -EAGAIN;
			if (!timeo)
				break;
			timeo = wait_event_interruptible_timeout(*hs->wq,
					!READ_ONCE(hs->tx_busy), timeo);
			err = timeo < 0 ? sock_intr_errno(timeo) : 0;
			if (err)
				break;
			continue;
		}
		err = 0;
		if (READ_ONCE(hs->sk->sk_err))
			err = sent ? -EIO : sock_error(hs->sk);
		else if (READ_ONCE(hs->shut_wr))
			err = -EPIPE;
		if (err || !len)
			break;
		n = min(len - sent, max);
		req = hws_req_alloc(HWS_OP_SEND, hs->id, GFP_KERNEL);
		if (req)
			req->data = kmalloc(n, GFP_KERNEL);
		if (!req || !req->data) {
			hws_req_put(req);
			err = -ENOMEM;
			break;
		}
		req->data_len = n;
		if (!copy_from_iter_full(req->data, n, &m->msg_iter)) {
			hws_req_put(req);
			err = -EFAULT;
			break;
		}
		req->hs = hs;
		req->done = hws_tx_done;
		spin_lock_irq(&hs->lock);
		hs->tx_busy = true;
		hs->tx_len = n;
		spin_unlock_irq(&hs->lock);
		hws_submit(req);
		hws_req_put(req);
		sent += n;
	} while (sent < len);
	mutex_unlock(&hs->tx_mutex);
	if (sent)
		return sent;
	if (err == -EPIPE && !(m->msg_flags & MSG_NOSIGNAL))
		send_sig(SIGPIPE, current, 0);
	return err;
}

/* A datagram is sent synchronously: its destination may be refused by the
 * policy (§6.4), and sendto() must say so. */
int hws_send(struct socket *sock, struct hws_sock *hs,
		    struct msghdr *m, size_t len)
{
	struct hws_class *c = hs->cls;
	char uri[HWS_URI_MAX];
	int ulen = 0, err;

	if (m->msg_flags & MSG_OOB)
		return -EOPNOTSUPP;
	if (c->type == SOCK_STREAM) {
		err = hws_tx_ready(hs, m->msg_flags);
		if (err == -EPIPE && !(m->msg_flags & MSG_NOSIGNAL))
			send_sig(SIGPIPE, current, 0);
		return err ? err : hws_send_stream(hs, m, len);
	}
	if (m->msg_name) {
		ulen = hws_uri_from_sa(c, m->msg_name, m->msg_namelen, false,
				       uri, sizeof(uri));
		if (ulen < 0)
			return ulen == -EAFNOSUPPORT ? -EINVAL : ulen;
	} else if (READ_ONCE(hs->state) != HWS_S_CONNECTED) {
		return -EDESTADDRREQ;
	}
	if (len > hws_dev_io_max())
		return -EMSGSIZE;
	/* a pending ICMP error (a soft error, §16.9) fails this send, once,
	 * as in the kernel's UDP (sock_alloc_send_pskb) */
	err = sock_error(hs->sk);
	if (err)
		return err;
	if (mutex_lock_interruptible(&hs->tx_mutex))
		return -ERESTARTSYS;
	err = hws_send_one(hs, m, len, uri, ulen);
	mutex_unlock(&hs->tx_mutex);
	if (err >= 0)
		hws_rx_post(hs);	/* sending bound the socket on the host */
	return err;
}

/* A late decline is connecting the socket on the guest's stack: wait for
 * that to start before passing the call on. */
static int hws_wait_native(struct hws_sock *hs, bool nonblock)
{
	if (!hs || READ_ONCE(hs->native) ||
	    READ_ONCE(hs->state) != HWS_S_DECLINED)
		return 0;
	if (nonblock)
		return -EAGAIN;
	return wait_event_interruptible(*hs->wq, READ_ONCE(hs->native));
}

int hws_sendmsg(struct socket *sock, struct msghdr *m, size_t len)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	int err = hws_wait_native(hs, (m->msg_flags & MSG_DONTWAIT) ||
				  (sock->file && (sock->file->f_flags & O_NONBLOCK)));

	if (err)
		return err;

	if (!hs && c->type == SOCK_DGRAM && m->msg_name && hws_dev_ready())
		return hws_sendto_first(sock, c, m, len);
	if (hws_passthru(hs))
		return c->orig->sendmsg(sock, m, len);
	return hws_send(sock, hs, m, len);
}

ssize_t hws_sendpage(struct socket *sock, struct page *page,
			    int offset, size_t size, int flags)
{
	struct hws_class *c = hws_cls(sock);

	if (hws_passthru(hws_of(sock)))
		return c->orig->sendpage(sock, page, offset, size, flags);
	return sock_no_sendpage(sock, page, offset, size, flags);
}

/* Wait until the posted RECV completed. 1: shut down for reading. */
static int hws_rx_wait(struct hws_sock *hs, long *timeo)
{
	enum hws_state st;
	bool ready, posted;
	long t;

	for (;;) {
		spin_lock_irq(&hs->lock);
		ready = hws_rx_ready(hs);
		posted = hs->rx_posted || (hws_ev(hs) && hs->ev_on);
		st = hs->state;
		spin_unlock_irq(&hs->lock);
		if (ready)
			return 0;
		if (hs->shut_rd)
			return 1;
		if (st == HWS_S_FAILED)
			return sock_error(hs->sk) ?: -ENOTCONN;
		if (st != HWS_S_CONNECTED && st != HWS_S_BOUND &&
		    st != HWS_S_CONNECTING)
			return -ENOTCONN;
		if (!posted && st != HWS_S_CONNECTING)
			hws_rx_post(hs);
		if (!*timeo)
			return -EAGAIN;
		t = wait_event_interruptible_timeout(*hs->wq,
				hws_rx_ready(hs) ||
				READ_ONCE(hs->ev_fail) ||
				READ_ONCE(hs->state) != st ||
				READ_ONCE(hs->shut_rd), *timeo);
		if (t < 0)
			return -ERESTARTSYS;
		if (!t && !hws_rx_ready(hs))
			return -EAGAIN;
		*timeo = t;
	}
}

static int hws_recv_stream(struct hws_sock *hs, struct msghdr *m, size_t len,
			   int flags, long timeo)
{
	struct hws_req *rx = hs->rx;
	size_t copied = 0, n;
	int err = 0;
	u32 avail;

	while (copied < len) {
		err = hws_rx_wait(hs, &timeo);
		if (err) {
			if (err == 1)
				err = 0;
			break;
		}
		spin_lock_irq(&hs->lock);
		err = hs->rx_err;
		if (err && !(flags & MSG_PEEK)) {
			/* reported once; then the stream reads as ended */
			hs->rx_err = 0;
			hs->rx_eof = true;
		}
		avail = le32_to_cpu(rx->resp.len) - hs->rx_off;
		spin_unlock_irq(&hs->lock);
		if (err || hs->rx_eof)
			break;
		n = min_t(size_t, avail, len - copied);
		if (copy_to_iter((char *)rx->data + hs->rx_off, n,
				 &m->msg_iter) != n) {
			err = -EFAULT;
			break;
		}
		copied += n;
		if (flags & MSG_PEEK)
			break;
		/* The next RECV is posted when someone wants data again
		 * (hws_rx_wait, poll): a socket nobody reads holds no ring
		 * entry. */
		spin_lock_irq(&hs->lock);
		hs->rx_off += n;
		if (hs->rx_off >= le32_to_cpu(rx->resp.len))
			hs->rx_ready = false;
		spin_unlock_irq(&hs->lock);
		if (!(flags & MSG_WAITALL))
			break;
	}
	if (copied)
		return copied;
	return err == -ERESTARTSYS ? sock_intr_errno(timeo) : err;
}

static int hws_recv_dgram(struct hws_sock *hs, struct msghdr *m, size_t len,
			  int flags, long timeo)
{
	struct hws_req *rx = hs->rx;
	struct sockaddr_storage ss;
	u32 dlen, full, ulen;
	size_t n;
	int err, sl;

again:
	err = hws_rx_wait(hs, &timeo);
	if (err == -ERESTARTSYS)
		return sock_intr_errno(timeo);
	if (err)
		return err == 1 ? 0 : err;
	/* a soft error (§16.9) comes before a datagram, once, as
	 * udp_recvmsg's sock_error() */
	err = sock_error(hs->sk);
	if (err)
		return err;
	if (!READ_ONCE(hs->rx_ready))
		goto again;	/* a send took the error that woke us */
	spin_lock_irq(&hs->lock);
	err = hs->rx_err;
	if (err && !(flags & MSG_PEEK)) {
		hs->rx_err = 0;
		hs->rx_ready = false;
	}
	spin_unlock_irq(&hs->lock);
	if (err)
		return err;
	dlen = le32_to_cpu(rx->resp.len);
	/* the datagram's full length, from the device: at most 64 KiB */
	full = max(dlen, min(le32_to_cpu(rx->resp.val), 65535u));
	ulen = le32_to_cpu(rx->resp.uri_len);
	n = min_t(size_t, dlen, len);
	if (copy_to_iter(rx->data, n, &m->msg_iter) != n)
		return -EFAULT;
	if (m->msg_name && ulen) {
		sl = hws_uri_to_sa(hs->cls, rx->ruri, ulen, &ss);
		if (sl > 0) {
			memcpy(m->msg_name, &ss, sl);
			m->msg_namelen = sl;
		}
	}
	if (n < full)
		m->msg_flags |= MSG_TRUNC;
	if (!(flags & MSG_PEEK)) {
		spin_lock_irq(&hs->lock);
		hs->rx_ready = false;
		spin_unlock_irq(&hs->lock);
	}
	return (flags & MSG_TRUNC) ? full : n;
}

/* Return consumed window to the device in batches (§16.3). */
static void hws_ev_consumed(struct hws_sock *hs, u32 n)
{
	u32 give = 0;

	spin_lock_irq(&hs->lock);
	hs->ev_used += n;
	if (hs->ev_used >= hws_window(hs) / 2) {
		give = hs->ev_used;
		hs->ev_used = 0;
	}
	spin_unlock_irq(&hs->lock);
	if (give)
		hws_credit(hs, give, GFP_KERNEL);
}

/* The first delivered event buffer, and whether it is a valid DATA event
 * with `dlen` data bytes at `doff`; other events end the read side. */
static struct hws_evbuf *hws_ev_first(struct hws_sock *hs, u32 *dlen,
				      u32 *doff, int *err)
{
	struct hws_evbuf *evb;
	struct hws_event *ev;
	u32 area = hs->cls->type == SOCK_DGRAM ? HWS_EV_URI_AREA : 0;

	spin_lock_irq(&hs->lock);
	evb = list_first_entry_or_null(&hs->evq, struct hws_evbuf, link);
	spin_unlock_irq(&hs->lock);
	*err = 0;
	if (!evb)
		return NULL;
	ev = (void *)evb->data;
	*dlen = le32_to_cpu(ev->len);
	*doff = 32 + area;
	if (le16_to_cpu(ev->type) == HWS_EV_ERROR)
		*err = hws_status_to_errno(le32_to_cpu(ev->status)) ?: -EIO;
	else if (le16_to_cpu(ev->type) != HWS_EV_DATA)
		*err = -EIO;
	else if (le16_to_cpu(ev->flags) & HWS_EV_F_EOF)
		*err = 1;
	else if (*dlen > HWS_EV_BUF - *doff || evb->used < *doff + *dlen ||
		 le32_to_cpu(ev->uri_len) > area)
		*err = -EIO;
	return evb;
}

/* Drop the first event buffer (consumed, or the end of input). */
static void hws_ev_pop(struct hws_sock *hs, struct hws_evbuf *evb, bool end)
{
	spin_lock_irq(&hs->lock);
	list_del(&evb->link);
	hs->ev_off = 0;
	if (end)
		hs->rx_eof = true;
	if (evb->copy) {
		hs->ev_ncopy--;
		hs->ev_copied -= evb->used;
	}
	spin_unlock_irq(&hs->lock);
	hws_ev_repost(evb);
}

static int hws_recv_stream_ev(struct hws_sock *hs, struct msghdr *m,
			      size_t len, int flags, long timeo)
{
	struct hws_evbuf *evb;
	size_t copied = 0, n;
	u32 dlen, doff;
	int err = 0;

	while (copied < len) {
		err = hws_rx_wait(hs, &timeo);
		if (err) {
			if (err == 1)
				err = 0;
			break;
		}
		if (!hws_ev(hs))	/* CREDIT refused: RECV after all */
			return copied ? copied :
				hws_recv_stream(hs, m, len, flags, timeo);
		evb = hws_ev_first(hs, &dlen, &doff, &err);
		if (!evb)
			break;		/* the input has ended */
		if (err) {
			if (flags & MSG_PEEK)
				break;
			hws_ev_pop(hs, evb, true);
			if (err == 1 || copied)
				err = 0;
			break;
		}
		n = min_t(size_t, dlen - hs->ev_off, len - copied);
		if (copy_to_iter(evb->data + doff + hs->ev_off, n,
				 &m->msg_iter) != n) {
			err = -EFAULT;
			break;
		}
		copied += n;
		if (flags & MSG_PEEK)
			break;
		hs->ev_off += n;
		if (hs->ev_off >= dlen) {
			hws_ev_pop(hs, evb, false);
			hws_ev_consumed(hs, dlen);
		}
		if (!(flags & MSG_WAITALL) && list_empty_careful(&hs->evq))
			break;
	}
	if (copied)
		return copied;
	return err == -ERESTARTSYS ? sock_intr_errno(timeo) : err;
}

static int hws_recv_dgram_ev(struct hws_sock *hs, struct msghdr *m,
			     size_t len, int flags, long timeo)
{
	struct sockaddr_storage ss;
	struct hws_evbuf *evb;
	struct hws_event *ev;
	u32 dlen, doff, full, ulen;
	int err, sl;
	size_t n;

again:
	err = hws_rx_wait(hs, &timeo);
	if (err == -ERESTARTSYS)
		return sock_intr_errno(timeo);
	if (err)
		return err == 1 ? 0 : err;
	if (!hws_ev(hs))		/* CREDIT refused: RECV after all */
		return hws_recv_dgram(hs, m, len, flags, timeo);
	/* a soft error (§16.9) comes before queued datagrams, once, as
	 * udp_recvmsg's sock_error() */
	err = sock_error(hs->sk);
	if (err)
		return err;
	evb = hws_ev_first(hs, &dlen, &doff, &err);
	if (!evb && !READ_ONCE(hs->rx_eof))
		goto again;	/* a send took the error that woke us */
	if (!evb)
		return 0;
	if (err) {
		if (!(flags & MSG_PEEK))
			hws_ev_pop(hs, evb, true);
		return err == 1 ? 0 : err;
	}
	ev = (void *)evb->data;
	full = max(dlen, min(le32_to_cpu(ev->val), 65535u));
	ulen = le32_to_cpu(ev->uri_len);
	n = min_t(size_t, dlen, len);
	if (copy_to_iter(evb->data + doff, n, &m->msg_iter) != n)
		return -EFAULT;
	if (m->msg_name && ulen) {
		sl = hws_uri_to_sa(hs->cls, (char *)evb->data + 32, ulen, &ss);
		if (sl > 0) {
			memcpy(m->msg_name, &ss, sl);
			m->msg_namelen = sl;
		}
	}
	if (n < full)
		m->msg_flags |= MSG_TRUNC;
	if (!(flags & MSG_PEEK)) {
		hws_ev_pop(hs, evb, false);
		hws_ev_consumed(hs, 1);
	}
	return (flags & MSG_TRUNC) ? full : n;
}

int hws_recvmsg(struct socket *sock, struct msghdr *m, size_t len,
		       int flags)
{
	struct hws_class *c = hws_cls(sock);
	struct hws_sock *hs = hws_of(sock);
	long timeo;
	int err;

	err = hws_wait_native(hs, (flags & MSG_DONTWAIT) ||
			      (sock->file && (sock->file->f_flags & O_NONBLOCK)));
	if (err)
		return err;
	if (hws_passthru(hs))
		return c->orig->recvmsg(sock, m, len, flags);
	if (flags & MSG_ERRQUEUE)
		return -EAGAIN;
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	timeo = sock_rcvtimeo(sock->sk, flags & MSG_DONTWAIT);
	if (mutex_lock_interruptible(&hs->rx_mutex))
		return -ERESTARTSYS;
	if (hws_ev(hs) && c->type == SOCK_STREAM)
		err = hws_recv_stream_ev(hs, m, len, flags, timeo);
	else if (hws_ev(hs))
		err = hws_recv_dgram_ev(hs, m, len, flags, timeo);
	else if (c->type == SOCK_STREAM)
		err = hws_recv_stream(hs, m, len, flags, timeo);
	else
		err = hws_recv_dgram(hs, m, len, flags, timeo);
	mutex_unlock(&hs->rx_mutex);
	return err;
}
