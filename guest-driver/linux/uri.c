// SPDX-License-Identifier: GPL-2.0
/*
 * sockaddr <-> URI (PROTOCOL.md §7, docs/ADDRESSES.md): tcp://a.b.c.d:p,
 * tcp6://[v6]:p and the udp twins. The parser is strict: it takes only the
 * canonical forms a device writes.
 */
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/inet.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include <net/ipv6.h>

#include "hws.h"

/* Returns the URI length, or -EAFNOSUPPORT for an address the device cannot
 * be asked about (other family, zone id, port 0 outside bind): the caller
 * then leaves the call to the guest's own stack. */
int hws_uri_from_sa(const struct hws_class *c, const struct sockaddr *sa,
		    int salen, bool bind, char *buf, size_t size)
{
	int n;

	if (salen < (int)sizeof(sa->sa_family) || sa->sa_family != c->family)
		return -EAFNOSUPPORT;
	if (c->family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		if (salen < (int)sizeof(*in))
			return -EINVAL;
		if (!in->sin_port && !bind)
			return -EAFNOSUPPORT;
		n = snprintf(buf, size, "%s://%pI4:%u", c->scheme,
			     &in->sin_addr, ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		if (salen < SIN6_LEN_RFC2133)
			return -EINVAL;
		if ((!in6->sin6_port && !bind) ||
		    (salen >= (int)sizeof(*in6) && in6->sin6_scope_id))
			return -EAFNOSUPPORT;
		n = snprintf(buf, size, "%s://[%pI6c]:%u", c->scheme,
			     &in6->sin6_addr, ntohs(in6->sin6_port));
	}
	return n < (int)size ? n : -ENAMETOOLONG;
}

/* Decimal 0..max without leading zeros; returns digits used or -1. */
static int hws_dec(const char *s, int len, u32 max, u32 *out)
{
	u32 v = 0;
	int i;

	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (i == 1 && s[0] == '0')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return -1;
	}
	if (!i)
		return -1;
	*out = v;
	return i;
}

static int hws_port(const char *s, int len, __be16 *port)
{
	u32 v;

	if (len < 2 || s[0] != ':' || hws_dec(s + 1, len - 1, 65535, &v) !=
	    len - 1)
		return -EINVAL;
	*port = htons(v);
	return 0;
}

int hws_uri_to_sa(const struct hws_class *c, const char *uri, int len,
		  struct sockaddr_storage *ss)
{
	int sl = strlen(c->scheme), i, n;
	const char *p = uri + sl + 3, *end = uri + len;

	memset(ss, 0, sizeof(*ss));
	if (len <= sl + 3 || memcmp(uri, c->scheme, sl) ||
	    memcmp(uri + sl, "://", 3))
		return -EINVAL;
	if (c->family == AF_INET) {
		struct sockaddr_in *in = (void *)ss;
		u8 *a = (u8 *)&in->sin_addr;
		u32 v;

		for (i = 0; i < 4; i++) {
			if (i) {
				if (p >= end || *p != '.')
					return -EINVAL;
				p++;
			}
			n = hws_dec(p, end - p, 255, &v);
			if (n < 0)
				return -EINVAL;
			a[i] = v;
			p += n;
		}
		in->sin_family = AF_INET;
		if (hws_port(p, end - p, &in->sin_port))
			return -EINVAL;
		return sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (void *)ss;
		const char *close;

		if (p >= end || *p != '[')
			return -EINVAL;
		p++;
		close = memchr(p, ']', end - p);
		if (!close || close == p)
			return -EINVAL;
		/* A zone (%25name) names a guest interface the device does
		 * not know; it is dropped: scope 0. */
		n = close - p;
		for (i = 0; i < n; i++)
			if (p[i] == '%')
				break;
		if (!in6_pton(p, i, (u8 *)&in6->sin6_addr, -1, NULL))
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		if (hws_port(close + 1, end - close - 1, &in6->sin6_port))
			return -EINVAL;
		return sizeof(*in6);
	}
}
