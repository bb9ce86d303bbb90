// SPDX-License-Identifier: GPL-2.0
/*
 * The carrier device and its two request queues: requests, completions and
 * the in-band NEGOTIATE that replaces the config space the carrier cannot
 * pass (vhost-user-vsock-pci, virtio ID 19).
 */
#include <linux/idr.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

#include "hws.h"

#define VIRTIO_ID_CARRIER 19	/* VIRTIO_ID_VSOCK: the carrier */

struct hws_queue {
	struct virtqueue *vq;
	bool events;			/* the event queue: buffers, not requests */
	spinlock_t lock;
	struct list_head backlog;	/* requests waiting for ring space */
};

struct hws_dev {
	struct virtio_device *vdev;
	struct hws_queue q[HWS_NUM_QUEUES];
	u64 features;			/* negotiated device-class bits */
	u32 max_sockets, max_io_len, max_uri_len;
	bool evq;			/* F_EVENT_QUEUE: queue 1 is the event queue */
	atomic_t ev_bufs;		/* event buffers allocated (the pool) */
	unsigned int ev_posted;		/* of them with the device (q lock) */
	struct hws_sock **map;		/* id -> socket, for events */
	spinlock_t map_lock;
	struct ida ids;
	atomic64_t tag;
	bool ready;
};

static struct hws_dev *hws_dev;

static bool event_queue = true;
module_param(event_queue, bool, 0444);
MODULE_PARM_DESC(event_queue,
		 "use the device's event queue when offered (PROTOCOL.md §16)");

bool hws_dev_evq(void)
{
	return hws_dev && hws_dev->evq;
}

bool hws_dev_ready(void)
{
	return hws_dev && READ_ONCE(hws_dev->ready);
}

u64 hws_dev_features(void)
{
	return hws_dev->features;
}

u32 hws_dev_io_max(void)
{
	return min(hws_dev->max_io_len, HWS_BUF_MAX);
}

u32 hws_dev_uri_area(void)
{
	return min_t(u32, hws_dev->max_uri_len, HWS_URI_MAX);
}

int hws_id_alloc(void)
{
	return ida_alloc_max(&hws_dev->ids, hws_dev->max_sockets - 1,
			     GFP_KERNEL);
}

void hws_id_free(u32 id)
{
	if (hws_dev)
		ida_free(&hws_dev->ids, id);
}

/* Wire status to -errno. Values below 1000 equal Linux errnos (§11) but only
 * the ones the protocol defines are passed on; anything else is EIO. */
int hws_status_to_errno(u32 st)
{
	static const u16 known[] = {
		EPERM, ENOENT, EINTR, EIO, EBADF, EAGAIN, ENOMEM, EACCES,
		EFAULT, EBUSY, EEXIST, EINVAL, EMFILE, ENOSPC, EPIPE, ERANGE,
		ENOSYS, ENAMETOOLONG, EPROTO, EBADMSG, EMSGSIZE, EPROTOTYPE,
		ENOPROTOOPT, EPROTONOSUPPORT, EOPNOTSUPP, EAFNOSUPPORT,
		EADDRINUSE, EADDRNOTAVAIL, ENETDOWN, ENETUNREACH, ECONNABORTED,
		ECONNRESET, ENOBUFS, EISCONN, ENOTCONN, ESHUTDOWN, ETIMEDOUT,
		ECONNREFUSED, EHOSTUNREACH, EALREADY, EINPROGRESS, ECANCELED,
		ESRCH, ENODEV, ENFILE, EDOM, ENOTSOCK, EDESTADDRREQ,
		ESOCKTNOSUPPORT, ENETRESET, EHOSTDOWN,
	};
	int i;

	if (st == 0)
		return 0;
	if (st == HWS_DECLINED)
		return -HWS_DECLINED;
	if (st == 1001)		/* HWSOCK_EBADURI */
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(known); i++)
		if (known[i] == st)
			return -(int)st;
	return -EIO;
}

struct hws_req *hws_req_alloc(u16 op, u32 id, gfp_t gfp)
{
	struct hws_req *req = kzalloc(sizeof(*req), gfp);

	if (!req)
		return NULL;
	req->hdr.opcode = cpu_to_le16(op);
	req->hdr.sock_id = cpu_to_le32(id);
	req->q = HWS_Q_FAST;
	refcount_set(&req->ref, 1);
	init_completion(&req->comp);
	INIT_LIST_HEAD(&req->link);
	return req;
}

void hws_req_put(struct hws_req *req)
{
	if (req && refcount_dec_and_test(&req->ref)) {
		kfree(req->data);
		kfree(req);
	}
}

int hws_req_set_uri(struct hws_req *req, const char *uri, int len)
{
	if (len <= 0 || len > HWS_URI_MAX || len > hws_dev->max_uri_len)
		return -ENAMETOOLONG;
	memcpy(req->uri, uri, len);
	req->hdr.uri_len = cpu_to_le32(len);
	return 0;
}

/* A fresh tag for every submission, so that a stale completion of a reused
 * request is recognised. */
void hws_req_retag(struct hws_req *req)
{
	req->hdr.tag = cpu_to_le64(atomic64_inc_return(&hws_dev->tag));
}

static int hws_add(struct hws_queue *q, struct hws_req *req)
{
	struct scatterlist s_hdr, s_uri, s_out, s_resp, s_ruri, s_in;
	struct scatterlist *sgs[6];
	unsigned int out = 0, in = 0;
	u32 ulen = le32_to_cpu(req->hdr.uri_len);

	sg_init_one(&s_hdr, &req->hdr, sizeof(req->hdr));
	sgs[out++] = &s_hdr;
	if (ulen) {
		sg_init_one(&s_uri, req->uri, ulen);
		sgs[out++] = &s_uri;
	}
	if (req->data_len && !req->data_in) {
		sg_init_one(&s_out, req->data, req->data_len);
		sgs[out++] = &s_out;
	}
	sg_init_one(&s_resp, &req->resp, sizeof(req->resp));
	sgs[out + in++] = &s_resp;
	if (req->ruri_len) {
		sg_init_one(&s_ruri, req->ruri, req->ruri_len);
		sgs[out + in++] = &s_ruri;
	}
	if (req->data_len && req->data_in) {
		sg_init_one(&s_in, req->data, req->data_len);
		sgs[out + in++] = &s_in;
	}
	return virtqueue_add_sgs(q->vq, sgs, out, in, req, GFP_ATOMIC);
}

static void hws_complete(struct hws_req *req, int forced)
{
	struct hws_sock *hs = req->hs;

	if (forced)
		req->status = forced;
	else if (req->used < sizeof(req->resp) ||
		 req->resp.tag != req->hdr.tag)
		req->status = -EIO;
	else
		req->status = hws_status_to_errno(le32_to_cpu(req->resp.status));
	if (req->done)
		req->done(req);
	else
		complete(&req->comp);
	if (hs)
		hws_sock_put(hs);
	hws_req_put(req);
}

/* Any context. A full ring is not an error: the request waits in the
 * queue's backlog until completions free room. */
void hws_submit(struct hws_req *req)
{
	struct hws_queue *q;
	unsigned long flags;
	bool kick = false;

	memset(&req->resp, 0, sizeof(req->resp));
	refcount_inc(&req->ref);
	if (req->hs)
		kref_get(&req->hs->ref);
	if (!hws_dev_ready()) {
		hws_complete(req, -ENODEV);
		return;
	}
	hws_req_retag(req);
	if (hws_dev->evq)	/* queue 1 is the event queue: requests on 0 */
		req->q = HWS_Q_FAST;
	q = &hws_dev->q[req->q];
	spin_lock_irqsave(&q->lock, flags);
	if (!list_empty(&q->backlog) || hws_add(q, req))
		list_add_tail(&req->link, &q->backlog);
	else
		kick = virtqueue_kick_prepare(q->vq);
	spin_unlock_irqrestore(&q->lock, flags);
	if (kick)
		virtqueue_notify(q->vq);
}

/* Event buffers: device-writable only, the data token is the buffer. */
static int hws_ev_add(struct hws_dev *d, struct hws_queue *q,
		      struct hws_evbuf *evb)
{
	struct scatterlist sg, *sgs[1] = { &sg };
	int err;

	sg_init_one(&sg, evb->data, HWS_EV_BUF);
	err = virtqueue_add_sgs(q->vq, sgs, 0, 1, evb, GFP_ATOMIC);
	if (!err)
		d->ev_posted++;
	return err;
}

/* Give a consumed event buffer back to the device (a copy is freed). Any
 * context. */
void hws_ev_repost(struct hws_evbuf *evb)
{
	struct hws_queue *q;
	unsigned long flags;
	bool kick = false;

	if (evb->copy || !hws_dev_ready() || !hws_dev->evq) {
		kfree(evb);	/* a copy, or the device is going */
		return;
	}
	q = &hws_dev->q[HWS_Q_SLOW];
	spin_lock_irqsave(&q->lock, flags);
	if (hws_ev_add(hws_dev, q, evb)) {	/* cannot happen: the pool is
						 * at most the ring */
		kfree(evb);
		atomic_dec(&hws_dev->ev_bufs);
	} else {
		kick = virtqueue_kick_prepare(q->vq);
	}
	spin_unlock_irqrestore(&q->lock, flags);
	if (kick)
		virtqueue_notify(q->vq);
}

int hws_map_set(struct hws_sock *hs)
{
	unsigned long flags;

	spin_lock_irqsave(&hws_dev->map_lock, flags);
	hws_dev->map[hs->id] = hs;
	spin_unlock_irqrestore(&hws_dev->map_lock, flags);
	return 0;
}

void hws_map_clear(struct hws_sock *hs)
{
	unsigned long flags;

	if (!hws_dev || !hws_dev->map)
		return;
	spin_lock_irqsave(&hws_dev->map_lock, flags);
	if (hws_dev->map[hs->id] == hs)
		hws_dev->map[hs->id] = NULL;
	spin_unlock_irqrestore(&hws_dev->map_lock, flags);
}

static void hws_vq_done(struct virtqueue *vq);

/* Which socket a used event buffer is for, with a reference; NULL: none
 * (no event, nonsense, or a socket that is gone). Called under the event
 * queue's lock, so that hws_ev_drain() cannot finish (and the id be
 * reused) while a buffer taken from the ring has not found its socket. */
static struct hws_sock *hws_ev_lookup(struct hws_evbuf *evb, u32 used)
{
	struct hws_event *ev = (void *)evb->data;
	struct hws_sock *hs = NULL;
	u32 id;

	if (used < sizeof(*ev) || used > HWS_EV_BUF)
		return NULL;
	evb->used = used;
	id = le32_to_cpu(READ_ONCE(ev->sock_id));
	spin_lock(&hws_dev->map_lock);
	if (id < hws_dev->max_sockets) {
		hs = hws_dev->map[id];
		if (hs && !kref_get_unless_zero(&hs->ref))
			hs = NULL;
	}
	spin_unlock(&hws_dev->map_lock);
	return hs;
}

/* Hand a used event buffer to its socket, or back to the device. With
 * few buffers left to the device (`spill`) the socket takes a copy and the
 * buffer goes back at once (hws_ev_deliver): the windows of all sockets
 * together may be many times the pool, and a pool held by unread sockets
 * would leave the one being read without input for ever (§16.3). */
static void hws_ev_done(struct hws_evbuf *evb, struct hws_sock *hs,
			bool spill)
{
	if (!hs) {
		hws_ev_repost(evb);
		return;
	}
	hws_ev_deliver(hs, evb, spill);
	hws_sock_put(hs);
}

/* Every event published so far is delivered (§16.6: after a CLOSE's
 * completion, before its id is reused). */
void hws_ev_drain(void)
{
	if (hws_dev_evq())
		hws_vq_done(hws_dev->q[HWS_Q_SLOW].vq);
}

/* Submit and wait. Killable: on a fatal signal the request stays in flight
 * and its own reference frees it when the device completes it. */
int hws_call(struct hws_req *req)
{
	reinit_completion(&req->comp);
	hws_submit(req);
	if (wait_for_completion_killable(&req->comp))
		return -EINTR;
	return req->status;
}

static void hws_vq_done(struct virtqueue *vq)
{
	struct hws_queue *q = &hws_dev->q[vq->index];
	struct hws_req *req, *tmp;
	unsigned long flags;
	unsigned int len;
	bool kick = false;
	struct hws_evbuf *evb;
	struct hws_sock *hs;
	unsigned int reserve;
	bool spill = false;
	LIST_HEAD(done);

	if (q->events) {
		reserve = max(atomic_read(&hws_dev->ev_bufs) /
			      HWS_EV_RESERVE_DIV, 1);
		for (;;) {
			spin_lock_irqsave(&q->lock, flags);
			virtqueue_disable_cb(vq);
			evb = virtqueue_get_buf(vq, &len);
			if (!evb && !virtqueue_enable_cb(vq))
				evb = virtqueue_get_buf(vq, &len);
			hs = evb ? hws_ev_lookup(evb, len) : NULL;
			if (evb) {
				hws_dev->ev_posted--;
				spill = hws_dev->ev_posted < reserve;
			}
			spin_unlock_irqrestore(&q->lock, flags);
			if (!evb)
				return;
			hws_ev_done(evb, hs, spill);
		}
	}
	spin_lock_irqsave(&q->lock, flags);
	do {
		virtqueue_disable_cb(vq);
		while ((req = virtqueue_get_buf(vq, &len))) {
			req->used = len;
			list_add_tail(&req->link, &done);
		}
	} while (!virtqueue_enable_cb(vq));
	while (!list_empty(&q->backlog)) {
		req = list_first_entry(&q->backlog, struct hws_req, link);
		if (hws_add(q, req))
			break;
		list_del_init(&req->link);
		kick = true;
	}
	if (kick)
		kick = virtqueue_kick_prepare(vq);
	spin_unlock_irqrestore(&q->lock, flags);
	if (kick)
		virtqueue_notify(vq);
	list_for_each_entry_safe(req, tmp, &done, link) {
		list_del_init(&req->link);
		hws_complete(req, 0);
	}
}

/* In-band negotiation (INBAND.md): ask for the most we can use; a set the
 * device does not offer is refused with EINVAL and nothing is negotiated,
 * so try smaller sets. The error answer does not carry the offer. */
static int hws_negotiate(struct hws_dev *d)
{
	static const u64 wants[] = {
		HWS_F_TCP | HWS_F_UDP | HWS_F_INET6 | HWS_F_EVENT_QUEUE |
			HWS_F_SOFT_ERRORS,
		HWS_F_TCP | HWS_F_UDP | HWS_F_INET6 | HWS_F_EVENT_QUEUE,
		HWS_F_TCP | HWS_F_UDP | HWS_F_INET6, HWS_F_TCP | HWS_F_UDP,
		HWS_F_TCP | HWS_F_INET6, HWS_F_TCP, HWS_F_UDP | HWS_F_INET6,
		HWS_F_UDP, 0,
	};
	struct hws_wire_config *cfg;
	struct hws_req *req;
	int i, err = -EINVAL;

	for (i = event_queue ? 0 : 2; i < ARRAY_SIZE(wants) && err == -EINVAL;
	     i++) {
		req = hws_req_alloc(HWS_OP_NEGOTIATE, 0, GFP_KERNEL);
		if (!req)
			return -ENOMEM;
		req->data = kzalloc(HWS_CFG_LEN, GFP_KERNEL);
		if (!req->data) {
			hws_req_put(req);
			return -ENOMEM;
		}
		req->data_len = HWS_CFG_LEN;
		req->data_in = true;
		req->hdr.arg0 = cpu_to_le32(lower_32_bits(wants[i]));
		req->hdr.arg1 = cpu_to_le32(upper_32_bits(wants[i]));
		err = hws_call(req);
		if (!err && (req->used < 32 + HWS_CFG_LEN ||
			     le32_to_cpu(req->resp.len) != HWS_CFG_LEN))
			err = -EPROTO;
		if (!err) {
			cfg = req->data;
			if (le32_to_cpu(cfg->magic) != HWS_CONFIG_MAGIC ||
			    le32_to_cpu(cfg->protocol_version) !=
				    HWS_PROTOCOL_VERSION) {
				err = -EPROTO;
			} else if (le16_to_cpu(cfg->num_queues) !=
				   HWS_NUM_QUEUES) {
				err = -ENODEV;
			} else {
				d->features = wants[i];
				d->max_sockets = min_t(u32, 65536,
					le32_to_cpu(cfg->max_sockets));
				d->max_io_len = le32_to_cpu(cfg->max_io_len);
				d->max_uri_len = le32_to_cpu(cfg->max_uri_len);
				if (!d->max_sockets || !d->max_io_len ||
				    d->max_uri_len < HWS_URI_AREA_MIN)
					err = -EPROTO;
			}
		}
		hws_req_put(req);
	}
	return err;
}

/* Queue 1 became the event queue: fill it with empty buffers. */
static int hws_ev_start(struct hws_dev *d)
{
	struct hws_queue *q = &d->q[HWS_Q_SLOW];
	unsigned int i, n = virtqueue_get_vring_size(q->vq);
	struct hws_evbuf *evb;

	/* 8 bytes per id: 512 KiB for 65,536 ids, not one contiguous piece */
	d->map = kvcalloc(d->max_sockets, sizeof(*d->map), GFP_KERNEL);
	if (!d->map)
		return -ENOMEM;
	spin_lock_init(&d->map_lock);
	q->events = true;
	d->evq = true;
	/* The pool: one buffer per ring entry, for the module's lifetime.
	 * Sockets hold some until read; copies replace them when few are
	 * left (hws_ev_done), so the pool never grows. */
	for (i = 0; i < n; i++) {
		evb = kmalloc(HWS_EV_ALLOC, GFP_KERNEL);
		if (!evb)
			break;
		evb->copy = 0;
		atomic_inc(&d->ev_bufs);
		spin_lock_irq(&q->lock);
		if (hws_ev_add(d, q, evb)) {
			spin_unlock_irq(&q->lock);
			kfree(evb);
			atomic_dec(&d->ev_bufs);
			break;
		}
		spin_unlock_irq(&q->lock);
	}
	if (!i)
		return -ENOMEM;
	virtqueue_kick(q->vq);
	return 0;
}

static int hws_probe(struct virtio_device *vdev)
{
	static vq_callback_t *cbs[HWS_NUM_QUEUES] = { hws_vq_done, hws_vq_done };
	static const char * const names[HWS_NUM_QUEUES] = { "hws-fast", "hws-slow" };
	struct virtqueue *vqs[HWS_NUM_QUEUES];
	struct hws_dev *d;
	int i, err;

	if (hws_dev) {
		dev_info(&vdev->dev, "hw_socket drives one device; ignoring this one\n");
		return -EBUSY;
	}
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->vdev = vdev;
	d->max_uri_len = HWS_URI_MAX;
	ida_init(&d->ids);
	err = virtio_find_vqs(vdev, HWS_NUM_QUEUES, vqs, cbs, names, NULL);
	if (err)
		goto fail;
	for (i = 0; i < HWS_NUM_QUEUES; i++) {
		d->q[i].vq = vqs[i];
		spin_lock_init(&d->q[i].lock);
		INIT_LIST_HEAD(&d->q[i].backlog);
	}
	vdev->priv = d;
	hws_dev = d;
	WRITE_ONCE(d->ready, true);
	virtio_device_ready(vdev);
	err = hws_negotiate(d);
	if (err) {
		dev_err(&vdev->dev, "hw_socket: negotiation failed: %d\n", err);
		WRITE_ONCE(d->ready, false);
		virtio_reset_device(vdev);
		vdev->config->del_vqs(vdev);
		hws_dev = NULL;
		goto fail;
	}
	if (d->features & HWS_F_EVENT_QUEUE) {
		err = hws_ev_start(d);
		if (err) {
			dev_err(&vdev->dev, "hw_socket: event queue: %d\n", err);
			WRITE_ONCE(d->ready, false);
			virtio_reset_device(vdev);
			vdev->config->del_vqs(vdev);
			hws_dev = NULL;
			kvfree(d->map);
			goto fail;
		}
	}
	dev_info(&vdev->dev,
		 "hw_socket: features %#llx, %u sockets, io %u, uri %u\n",
		 d->features, d->max_sockets, d->max_io_len, d->max_uri_len);
	return 0;
fail:
	kfree(d);
	return err;
}

static void hws_remove(struct virtio_device *vdev)
{
	struct hws_dev *d = vdev->priv;
	struct hws_req *req;
	int i;

	WRITE_ONCE(d->ready, false);
	virtio_reset_device(vdev);
	/* Requests the device never completed: finish them here so that
	 * their sockets and buffers are released. */
	for (i = 0; i < HWS_NUM_QUEUES; i++) {
		if (d->q[i].events) {
			void *evb;

			while ((evb = virtqueue_detach_unused_buf(d->q[i].vq)))
				kfree(evb);
			continue;
		}
		while ((req = virtqueue_detach_unused_buf(d->q[i].vq)))
			hws_complete(req, -ENODEV);
		while (!list_empty(&d->q[i].backlog)) {
			req = list_first_entry(&d->q[i].backlog,
					       struct hws_req, link);
			list_del_init(&req->link);
			hws_complete(req, -ENODEV);
		}
	}
	vdev->config->del_vqs(vdev);
	hws_dev = NULL;
	ida_destroy(&d->ids);
	kvfree(d->map);
	kfree(d);
}

static const struct virtio_device_id hws_id_table[] = {
	{ VIRTIO_ID_CARRIER, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static struct virtio_driver hws_driver = {
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.id_table = hws_id_table,
	.probe = hws_probe,
	.remove = hws_remove,
};

int hws_driver_init(void)
{
	return register_virtio_driver(&hws_driver);
}

void hws_driver_exit(void)
{
	unregister_virtio_driver(&hws_driver);
}
