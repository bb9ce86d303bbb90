// SPDX-License-Identifier: GPL-2.0
/*
 * Module entry and the socket-creation hook: kretprobes on inet_create and
 * inet6_create (the af_inet families' create functions, reached for every
 * socket(AF_INET/AF_INET6, ...)). When one returns success for a program's
 * (not the kernel's) TCP or UDP socket, the socket's ops are swapped for
 * ours before __sock_create takes the module reference of sock->ops->owner:
 * each offered socket pins this module until it is closed or declined.
 */
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/ptrace.h>
#include <linux/socket.h>

#include "hws.h"

struct hws_probe_data {
	struct socket *sock;
	int kern;
};

static int hws_create_entry(struct kretprobe_instance *ri,
			    struct pt_regs *regs)
{
	struct hws_probe_data *d = (void *)ri->data;

	/* inet_create(struct net *, struct socket *, int protocol, int kern) */
	d->sock = (struct socket *)regs_get_kernel_argument(regs, 1);
	d->kern = (int)regs_get_kernel_argument(regs, 3);
	return 0;
}

static int hws_create_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct hws_probe_data *d = (void *)ri->data;

	if (regs_return_value(regs) == 0 && !d->kern && d->sock)
		hws_offer(d->sock);
	return 0;
}

static struct kretprobe hws_probes[] = {
	{ .kp.symbol_name = "inet_create", .entry_handler = hws_create_entry,
	  .handler = hws_create_ret, .data_size = sizeof(struct hws_probe_data),
	  .maxactive = 64 },
	{ .kp.symbol_name = "inet6_create", .entry_handler = hws_create_entry,
	  .handler = hws_create_ret, .data_size = sizeof(struct hws_probe_data),
	  .maxactive = 64 },
};

static bool hws_probe6;

/* SOL_SOCKET options are set by the generic socket code, never through the
 * protocol's ops: a return probe on sock_setsockopt forwards them. */
struct hws_sockopt_data {
	struct socket *sock;
	int level, optname;
};

static int hws_sockopt_entry(struct kretprobe_instance *ri,
			     struct pt_regs *regs)
{
	struct hws_sockopt_data *d = (void *)ri->data;

	/* sock_setsockopt(struct socket *, int level, int op, sockptr_t,
	 * unsigned int) */
	d->sock = (struct socket *)regs_get_kernel_argument(regs, 0);
	d->level = (int)regs_get_kernel_argument(regs, 1);
	d->optname = (int)regs_get_kernel_argument(regs, 2);
	return 0;
}

static int hws_sockopt_ret(struct kretprobe_instance *ri,
			   struct pt_regs *regs)
{
	struct hws_sockopt_data *d = (void *)ri->data;

	if (regs_return_value(regs) == 0 && d->level == SOL_SOCKET && d->sock)
		hws_sol_socket_set(d->sock, d->optname);
	return 0;
}

static struct kretprobe hws_sockopt_probe = {
	.kp.symbol_name = "sock_setsockopt", .entry_handler = hws_sockopt_entry,
	.handler = hws_sockopt_ret,
	.data_size = sizeof(struct hws_sockopt_data), .maxactive = 64,
};

static bool hws_probe_sockopt;

static int __init hws_init(void)
{
	int err;

	hws_ops_init();
	err = hws_proc_init();
	if (err)
		return err;
	err = hws_driver_init();
	if (err)
		goto fail_proc;
	err = register_kretprobe(&hws_probes[0]);
	if (err) {
		pr_err("hw_socket: cannot probe inet_create: %d\n", err);
		goto fail_driver;
	}
	/* IPv6 may be absent (ipv6.disable=1, or built as a module that is
	 * not loaded): then only IPv4 sockets are offered. */
	hws_probe6 = !register_kretprobe(&hws_probes[1]);
	if (!hws_probe6)
		pr_info("hw_socket: no inet6_create: IPv6 sockets stay native\n");
	hws_probe_sockopt = !register_kretprobe(&hws_sockopt_probe);
	if (!hws_probe_sockopt)
		pr_info("hw_socket: no sock_setsockopt probe: SOL_SOCKET options stay in the guest\n");
	return 0;
fail_driver:
	hws_driver_exit();
fail_proc:
	hws_proc_exit();
	return err;
}

static void __exit hws_exit(void)
{
	/* No new sockets get our ops; the ones that had them pinned the
	 * module, so none is left when we get here. */
	if (hws_probe_sockopt)
		unregister_kretprobe(&hws_sockopt_probe);
	if (hws_probe6)
		unregister_kretprobe(&hws_probes[1]);
	unregister_kretprobe(&hws_probes[0]);
	hws_driver_exit();
	hws_proc_exit();
}

module_init(hws_init);
module_exit(hws_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hw_socket: programs' INET sockets through the libhwsock device");
