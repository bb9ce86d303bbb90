// SPDX-License-Identifier: GPL-2.0
/* /proc/net/hwsock: the offloaded sockets. */
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/spinlock.h>
#include <net/net_namespace.h>

#include "hws.h"
#include "sock.h"

static LIST_HEAD(hws_list);
static DEFINE_SPINLOCK(hws_list_lock);

const char *hws_state_name(enum hws_state s)
{
	static const char * const names[] = {
		[HWS_S_OPEN] = "OPEN", [HWS_S_CONNECTING] = "CONNECTING",
		[HWS_S_CONNECTED] = "CONNECTED", [HWS_S_BOUND] = "BOUND",
		[HWS_S_LISTENING] = "LISTENING", [HWS_S_FAILED] = "FAILED",
		[HWS_S_DECLINED] = "DECLINED",
	};

	return s < ARRAY_SIZE(names) ? names[s] : "?";
}

void hws_proc_add(struct hws_sock *hs)
{
	spin_lock(&hws_list_lock);
	if (list_empty(&hs->link))
		list_add_tail(&hs->link, &hws_list);
	spin_unlock(&hws_list_lock);
}

void hws_proc_del(struct hws_sock *hs)
{
	spin_lock(&hws_list_lock);
	list_del_init(&hs->link);
	spin_unlock(&hws_list_lock);
}

/* The local address of a connected socket is asked for (GETNAME) only when
 * someone reads the table, not for every connection. */
static int hws_proc_show(struct seq_file *m, void *v)
{
	struct sockaddr_storage ss;
	struct hws_sock *hs, **snap;
	unsigned int n = 0, i;

	spin_lock(&hws_list_lock);
	list_for_each_entry(hs, &hws_list, link)
		n++;
	spin_unlock(&hws_list_lock);
	snap = kvmalloc_array(n ?: 1, sizeof(*snap), GFP_KERNEL);
	if (!snap)
		return -ENOMEM;
	i = 0;
	spin_lock(&hws_list_lock);
	list_for_each_entry(hs, &hws_list, link) {
		if (i == n)
			break;
		kref_get(&hs->ref);
		snap[i++] = hs;
	}
	spin_unlock(&hws_list_lock);
	n = i;

	seq_puts(m, "id scheme state local remote\n");
	for (i = 0; i < n; i++) {
		hs = snap[i];
		if (!strcmp(hs->local, "-") &&
		    READ_ONCE(hs->state) == HWS_S_CONNECTED &&
		    !READ_ONCE(hs->closing))
			hws_getname_ss(hs, 0, &ss);	/* fills hs->local */
		seq_printf(m, "%u %s %s %s %s\n", hs->id, hs->cls->scheme,
			   hws_state_name(READ_ONCE(hs->state)), hs->local,
			   hs->peer);
		hws_sock_put(hs);
	}
	kvfree(snap);
	return 0;
}

int hws_proc_init(void)
{
	return proc_create_single("hwsock", 0444, init_net.proc_net,
				  hws_proc_show) ? 0 : -ENOMEM;
}

void hws_proc_exit(void)
{
	remove_proc_entry("hwsock", init_net.proc_net);
}
