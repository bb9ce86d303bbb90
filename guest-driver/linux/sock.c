// SPDX-License-Identifier: GPL-2.0
/*
 * Socket state shared by the proto_ops: creation (OPEN), the first right of
 * refusal (offload / decline / deny), posted RECV and ACCEPT requests and
 * their completions, close.
 */
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <net/sock.h>

#include "hws.h"
#include "sock.h"

static void hws_sock_free(struct kref *ref)
{
	struct hws_sock *hs = container_of(ref, struct hws_sock, ref);
	struct hws_evbuf *evb, *tmp;

	hws_map_clear(hs);
	list_for_each_entry_safe(evb, tmp, &hs->evq, link) {
		list_del(&evb->link);
		hws_ev_repost(evb);
	}
	hws_req_put(hs->rx);
	hws_req_put(hs->acc);
	hws_req_put(hs->close_req);
	/* Every request of the id, CLOSE included, has completed: only now
	 * may the id be reused (a stale RECV must never meet a new socket). */
	if (hs->id_valid)
		hws_id_free(hs->id);
	kfree(hs);
}

void hws_sock_put(struct hws_sock *hs)
{
	kref_put(&hs->ref, hws_sock_free);
}

/* Called with hs->lock held. */
static void hws_wake(struct hws_sock *hs, __poll_t mask)
{
	if (!hs->closing)
		wake_up_interruptible_poll(hs->wq, mask);
}

/* The errors a datagram socket lives on (PROTOCOL.md §16.9): what the
 * host kernel makes of ICMP errors, reported once, the socket stays. */
static bool hws_soft_errno(int err)
{
	switch (err) {
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EHOSTDOWN:
	case -ENOPROTOOPT:
	case -EMSGSIZE:
	case -EACCES:
	case -EPROTO:
		return true;
	default:
		return false;
	}
}

/* A datagram socket's soft error becomes its pending error, as an ICMP
 * error on the guest's own UDP socket: sk_err, which the next recv, send
 * or SO_ERROR returns once (sock_error) and poll reports as EPOLLERR until
 * then; the socket goes on receiving. Called with hs->lock held. */
static void hws_soft_err(struct hws_sock *hs, int err)
{
	if (hs->closing)
		return;
	WRITE_ONCE(hs->sk->sk_err, -err);
	sk_error_report(hs->sk);
}

static void hws_rx_done(struct hws_req *req)
{
	struct hws_sock *hs = req->hs;
	u32 len = le32_to_cpu(req->resp.len);
	unsigned long flags;

	spin_lock_irqsave(&hs->lock, flags);
	hs->rx_posted = false;
	if (!req->status &&
	    (len > req->data_len || le32_to_cpu(req->resp.uri_len) >
	     req->ruri_len || req->used < 32 + req->ruri_len + len))
		req->status = -EIO;
	if (req->status && hs->cls->type == SOCK_DGRAM &&
	    hws_soft_errno(req->status)) {
		/* no datagram: the RECV is posted again when one is wanted */
		hws_soft_err(hs, req->status);
		spin_unlock_irqrestore(&hs->lock, flags);
		return;
	}
	if (req->status)
		hs->rx_err = req->status;
	else if (le32_to_cpu(req->resp.flags) & HWS_RESP_F_EOF)
		hs->rx_eof = true;
	hs->rx_off = 0;
	hs->rx_ready = true;
	hws_wake(hs, EPOLLIN | EPOLLRDNORM);
	spin_unlock_irqrestore(&hs->lock, flags);
}

/* What a socket may hold in copies: its window (§16.3: the device sends
 * no more than was granted), with room for the event headers. Beyond it
 * (a device that ignores the window) the buffer itself is kept. */
static bool hws_ev_copy_fits(struct hws_sock *hs, u32 used)
{
	if (hs->cls->type == SOCK_STREAM)
		return hs->ev_ncopy < HWS_WINDOW_BYTES / 64 &&
		       hs->ev_copied + used <= 2 * HWS_WINDOW_BYTES;
	return hs->ev_ncopy < HWS_WINDOW_DGRAMS;
}

/* A datagram socket's soft error through the event queue (ERROR with
 * HWS_EV_F_SOFT): its pending error (hws_soft_err), not queued, so the
 * read side goes on. Called with hs->lock held. */
static bool hws_ev_soft(struct hws_sock *hs, struct hws_evbuf *evb)
{
	struct hws_event *ev = (void *)evb->data;

	if (hs->cls->type != SOCK_DGRAM ||
	    !(hws_dev_features() & HWS_F_SOFT_ERRORS) ||
	    le16_to_cpu(ev->type) != HWS_EV_ERROR ||
	    !(le16_to_cpu(ev->flags) & HWS_EV_F_SOFT))
		return false;
	hws_soft_err(hs, hws_status_to_errno(le32_to_cpu(ev->status)) ?: -EIO);
	return true;
}

/* Event queue mode: an event buffer for the socket, in order. With `spill`
 * (few buffers left to the device) the socket keeps a copy of what the
 * device wrote and the buffer goes back at once (§16.3). */
void hws_ev_deliver(struct hws_sock *hs, struct hws_evbuf *evb, bool spill)
{
	struct hws_evbuf *c = NULL;
	unsigned long flags;
	bool keep;

	spin_lock_irqsave(&hs->lock, flags);
	if (hws_ev_soft(hs, evb)) {
		spin_unlock_irqrestore(&hs->lock, flags);
		hws_ev_repost(evb);
		return;
	}
	keep = !hs->closing;
	if (keep && spill && hws_ev_copy_fits(hs, evb->used))
		c = kmalloc(struct_size(c, data, evb->used),
			    GFP_ATOMIC | __GFP_NOWARN);
	if (c) {
		c->used = evb->used;
		c->copy = 1;
		memcpy(c->data, evb->data, evb->used);
		hs->ev_ncopy++;
		hs->ev_copied += c->used;
		list_add_tail(&c->link, &hs->evq);
	} else if (keep) {	/* no copy (window full, or no memory) */
		list_add_tail(&evb->link, &hs->evq);
	}
	if (keep)
		hws_wake(hs, EPOLLIN | EPOLLRDNORM);
	spin_unlock_irqrestore(&hs->lock, flags);
	if (!keep || c)
		hws_ev_repost(evb);
}

static void hws_credit_done(struct hws_req *req)
{
	struct hws_sock *hs = req->hs;
	unsigned long flags;

	if (!req->status || req->status == -ECANCELED)
		return;
	/* The backend cannot watch its host socket: RECV after all. */
	spin_lock_irqsave(&hs->lock, flags);
	hs->ev_fail = true;
	hws_wake(hs, EPOLLIN | EPOLLRDNORM);
	spin_unlock_irqrestore(&hs->lock, flags);
}

/* Grant the device `n` more of the socket's receive window (§16.3). */
void hws_credit(struct hws_sock *hs, u32 n, gfp_t gfp)
{
	struct hws_req *req = hws_req_alloc(HWS_OP_CREDIT, hs->id, gfp);

	if (!req)
		return;	/* the window stays smaller; reads still progress */
	req->hdr.arg0 = cpu_to_le32(n);
	req->hs = hs;
	req->done = hws_credit_done;
	hws_submit(req);
	hws_req_put(req);
}

u32 hws_window(struct hws_sock *hs)
{
	return hs->cls->type == SOCK_STREAM ? HWS_WINDOW_BYTES :
					      HWS_WINDOW_DGRAMS;
}

/* Post the socket's RECV unless it is posted or its data not yet consumed.
 * PROTOCOL.md v1 has no event queue: a posted RECV is how the guest learns
 * that data arrived, so it is posted whenever someone waits for input. */
void hws_rx_post(struct hws_sock *hs)
{
	unsigned long flags;
	bool post;

	if (hws_ev(hs)) {
		/* with the event queue: a window instead, granted once and
		 * renewed as the program reads (io.c) */
		spin_lock_irqsave(&hs->lock, flags);
		post = !hs->ev_on && !hs->closing;
		hs->ev_on = true;
		spin_unlock_irqrestore(&hs->lock, flags);
		if (post) {
			hws_map_set(hs);
			hws_credit(hs, hws_window(hs), GFP_ATOMIC);
		}
		return;
	}
	spin_lock_irqsave(&hs->lock, flags);
	post = !hs->rx_posted && !hs->rx_ready && !hs->closing &&
	       !hs->rx_eof && !hs->rx_err && !hs->shut_rd;
	if (post)
		hs->rx_posted = true;
	spin_unlock_irqrestore(&hs->lock, flags);
	if (post)
		hws_submit(hs->rx);
}

static void hws_close_id_done(struct hws_req *req)
{
	hws_id_free(le32_to_cpu(req->hdr.sock_id));
}

/* Close an id no hws_sock owns (an accepted connection nobody took). */
void hws_close_id(u32 id, gfp_t gfp)
{
	struct hws_req *req = hws_req_alloc(HWS_OP_CLOSE, id, gfp);

	if (!req)
		return;		/* the id leaks; the device keeps the socket */
	req->done = hws_close_id_done;
	hws_submit(req);
	hws_req_put(req);
}

static void hws_acc_done(struct hws_req *req)
{
	struct hws_sock *hs = req->hs;
	u32 nid = le32_to_cpu(req->hdr.arg1);
	unsigned long flags;

	spin_lock_irqsave(&hs->lock, flags);
	hs->acc_posted = false;
	if (!req->status &&
	    (le32_to_cpu(req->resp.uri_len) > req->ruri_len ||
	     req->used < 32 + le32_to_cpu(req->resp.uri_len))) {
		/* The device made the socket; we cannot use it. */
		hws_close_id(nid, GFP_ATOMIC);
		req->status = -EIO;
	} else if (req->status) {
		hws_id_free(nid);
	} else if (hs->closing) {
		hws_close_id(nid, GFP_ATOMIC);
		req->status = -ECANCELED;
	}
	hs->acc_ready = !hs->closing;
	hws_wake(hs, EPOLLIN | EPOLLRDNORM);
	spin_unlock_irqrestore(&hs->lock, flags);
}

int hws_acc_post(struct hws_sock *hs)
{
	unsigned long flags;
	int id = hws_id_alloc();

	if (id < 0)
		return -ENOBUFS;
	spin_lock_irqsave(&hs->lock, flags);
	if (hs->acc_posted || hs->acc_ready || hs->closing) {
		spin_unlock_irqrestore(&hs->lock, flags);
		hws_id_free(id);
		return 0;
	}
	hs->acc_posted = true;
	hs->acc->hdr.arg1 = cpu_to_le32(id);
	spin_unlock_irqrestore(&hs->lock, flags);
	hws_submit(hs->acc);
	return 0;
}

static void hws_decline_work(struct work_struct *w);

/* After a CLOSE's completion no event of the socket follows; the ones
 * before it may still wait in the event queue's used ring: deliver them
 * now, before the id can be reused (§16.6). */
static void hws_close_done(struct hws_req *req)
{
	hws_ev_drain();
}

/* A socket state for `sock`, with its buffers and requests allocated up
 * front (completions never allocate). id < 0: allocate a free id (the caller
 * OPENs it, hws_sock_open); else the id the device made (ACCEPT). */
struct hws_sock *hws_sock_new(struct socket *sock, struct hws_class *c,
			      int id)
{
	struct hws_sock *hs = kzalloc(sizeof(*hs), GFP_KERNEL);
	int err = -ENOMEM;

	if (!hs)
		return ERR_PTR(-ENOMEM);
	kref_init(&hs->ref);
	spin_lock_init(&hs->lock);
	mutex_init(&hs->rx_mutex);
	mutex_init(&hs->tx_mutex);
	INIT_WORK(&hs->decline_work, hws_decline_work);
	INIT_LIST_HEAD(&hs->link);
	INIT_LIST_HEAD(&hs->evq);
	hs->cls = c;
	hs->sock = sock;
	hs->sk = sock->sk;
	hs->wq = &sock->wq.wait;
	hs->state = HWS_S_OPEN;
	strscpy(hs->local, "-", sizeof(hs->local));
	strscpy(hs->peer, "-", sizeof(hs->peer));

	hs->rx = hws_req_alloc(HWS_OP_RECV, 0, GFP_KERNEL);
	hs->close_req = hws_req_alloc(HWS_OP_CLOSE, 0, GFP_KERNEL);
	if (!hs->rx || !hs->close_req)
		goto fail;
	hs->rx->data_len = hws_dev_io_max();
	hs->rx->data = kmalloc(hs->rx->data_len, GFP_KERNEL);
	if (!hs->rx->data)
		goto fail;
	hs->rx->data_in = true;
	hs->rx->q = HWS_Q_SLOW;
	hs->rx->done = hws_rx_done;
	hs->rx->hs = hs;
	if (c->type == SOCK_DGRAM) {
		hs->rx->ruri_len = hws_dev_uri_area();
		hs->rx->hdr.arg1 = cpu_to_le32(hs->rx->ruri_len);
	} else {
		hs->acc = hws_req_alloc(HWS_OP_ACCEPT, 0, GFP_KERNEL);
		if (!hs->acc)
			goto fail;
		hs->acc->ruri_len = hws_dev_uri_area();
		hs->acc->q = HWS_Q_SLOW;
		hs->acc->done = hws_acc_done;
		hs->acc->hs = hs;
	}
	hs->close_req->hs = hs;
	hs->close_req->done = hws_close_done;

	if (id < 0) {
		id = hws_id_alloc();
		if (id < 0) {
			err = -ENOBUFS;
			goto fail;
		}
	}
	hs->id = id;
	hs->id_valid = true;
	hs->rx->hdr.sock_id = cpu_to_le32(id);
	hs->close_req->hdr.sock_id = cpu_to_le32(id);
	if (hs->acc)
		hs->acc->hdr.sock_id = cpu_to_le32(id);
	return hs;
fail:
	hws_sock_put(hs);
	return ERR_PTR(err);
}

/* OPEN the fresh socket's id on the device. */
int hws_sock_open(struct hws_sock *hs)
{
	struct hws_req *req = hws_req_alloc(HWS_OP_OPEN, hs->id, GFP_KERNEL);
	int err;

	if (!req)
		return -ENOMEM;
	req->hdr.arg0 = cpu_to_le32(hs->cls->wfamily);
	req->hdr.arg1 = cpu_to_le32(hs->cls->wtype);
	req->hs = hs;
	err = hws_call(req);
	hws_req_put(req);
	return err;
}

/* Send CLOSE once. The id is freed when every request of it completed. */
void hws_sock_close_id(struct hws_sock *hs)
{
	if (!xchg(&hs->close_sent, true))
		hws_submit(hs->close_req);
}

/* Forget a socket state that was never (or is no longer) installed. */
void hws_sock_drop(struct hws_sock *hs)
{
	hws_sock_close_id(hs);
	hws_sock_put(hs);
}

void hws_install(struct hws_sock *hs)
{
	rcu_assign_sk_user_data(hs->sk, hs);
	hws_proc_add(hs);
}

void hws_uninstall(struct hws_sock *hs)
{
	hws_proc_del(hs);
	rcu_assign_sk_user_data(hs->sk, NULL);
}

/* The socket goes back to the inet ops as if it had never been offered.
 * __sock_create took a module reference for our ops: the caller gives it
 * back with module_put() as its very last step, after the inet call it
 * makes (which may block), so that the module cannot go away under it. */
void hws_restore(struct socket *sock, struct hws_class *c)
{
	WRITE_ONCE(sock->ops, c->orig);
}

/* Release: CLOSE without waiting (the device cancels what is pending; the
 * state lives until the last completion). Never blocks. */
void hws_sock_release(struct hws_sock *hs)
{
	unsigned long flags;
	bool acc_open;
	u32 nid = 0;

	spin_lock_irqsave(&hs->lock, flags);
	hs->closing = true;
	acc_open = hs->acc && hs->acc_ready && !hs->acc->status;
	if (acc_open)
		nid = le32_to_cpu(hs->acc->hdr.arg1);
	hs->acc_ready = false;
	spin_unlock_irqrestore(&hs->lock, flags);
	cancel_work_sync(&hs->decline_work);
	if (acc_open)
		hws_close_id(nid, GFP_KERNEL);
	hws_uninstall(hs);
	hs->sock = NULL;
	/* Data a close follows is still delivered, as with the guest's own
	 * TCP: a SEND in flight gets the CLOSE after it (tx completion). */
	spin_lock_irqsave(&hs->lock, flags);
	hs->close_deferred = hs->tx_busy;
	spin_unlock_irqrestore(&hs->lock, flags);
	if (!hs->close_deferred)
		hws_sock_close_id(hs);
	hws_sock_put(hs);
}

void hws_connect_done(struct hws_req *req)
{
	struct hws_sock *hs = req->hs;
	bool late = false, post = false;
	unsigned long flags;

	spin_lock_irqsave(&hs->lock, flags);
	if (req->status == -HWS_DECLINED) {
		hs->state = HWS_S_DECLINED;
		late = hs->async_connect && !hs->closing;
	} else if (req->status) {
		hs->state = HWS_S_FAILED;
		hs->conn_err = req->status;
		if (hs->async_connect && !hs->closing)
			WRITE_ONCE(hs->sk->sk_err, -req->status);
	} else {
		hs->state = HWS_S_CONNECTED;
		post = true;
	}
	hws_wake(hs, EPOLLOUT | EPOLLWRNORM | EPOLLIN |
		 (req->status ? EPOLLERR : 0));
	spin_unlock_irqrestore(&hs->lock, flags);
	if (late)
		schedule_work(&hs->decline_work);
	if (post)
		hws_rx_post(hs);
}

/* A nonblocking connect returned EINPROGRESS before the device answered,
 * and the answer is "decline": connect on the guest's stack now. The
 * socket keeps our ops, which pass everything to the inet ops from here
 * on (switching ops outside a call on the socket would race with close). */
static void hws_decline_work(struct work_struct *w)
{
	struct hws_sock *hs = container_of(w, struct hws_sock, decline_work);
	struct socket *sock;
	unsigned long flags;
	int err;

	spin_lock_irqsave(&hs->lock, flags);
	sock = hs->closing ? NULL : hs->sock;
	spin_unlock_irqrestore(&hs->lock, flags);
	if (!sock)
		return;	/* release cancels this work before the socket goes */
	hws_proc_del(hs);
	hws_sock_close_id(hs);
	err = hs->cls->orig->connect(sock, (struct sockaddr *)&hs->conn_addr,
				     hs->conn_len, O_NONBLOCK);
	if (err && err != -EINPROGRESS)
		WRITE_ONCE(sock->sk->sk_err, -err);
	/* From here on every call goes to the inet ops. Wake pollers: a
	 * wakeup of the native connect may have been seen by our poll. */
	WRITE_ONCE(hs->native, true);
	wake_up_interruptible_poll(hs->wq, EPOLLIN | EPOLLOUT | EPOLLERR);
}
