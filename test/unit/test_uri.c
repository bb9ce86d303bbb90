/* The address grammar (docs/ADDRESSES.md) as tables: what is accepted and
 * its canonical text, what is rejected and why; then round trips, RFC 5952,
 * sockaddr conversions and the embedded-IPv4 test used by the policy. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hwsock/uri.h"
#include "hwsock/wire.h"

#define P0 HWSOCK_URI_ALLOW_PORT0

/* ---- accepted input -> canonical output ------------------------------- */

static const struct {
  const char *in;
  unsigned flags;
  const char *canon;
} accepts[] = {
    {"tcp://192.0.2.7:80", 0, "tcp://192.0.2.7:80"},
    {"udp://192.0.2.7:53", 0, "udp://192.0.2.7:53"},
    {"tcp://0.0.0.0:1", 0, "tcp://0.0.0.0:1"},
    {"udp://255.255.255.255:65535", 0, "udp://255.255.255.255:65535"},
    {"tcp://10.0.0.1:0", P0, "tcp://10.0.0.1:0"},
    {"udp://127.0.0.1:0", P0, "udp://127.0.0.1:0"},
    {"tcp://100.20.3.0:8080", 0, "tcp://100.20.3.0:8080"},
    {"tcp6://[2001:db8::1]:443", 0, "tcp6://[2001:db8::1]:443"},
    {"udp6://[2001:db8::1]:53", 0, "udp6://[2001:db8::1]:53"},
    {"tcp6://[2001:DB8:0:0:0:0:0:1]:443", 0, "tcp6://[2001:db8::1]:443"},
    {"tcp6://[2001:0db8:0000:0000:0000:0000:0000:0001]:443", 0,
     "tcp6://[2001:db8::1]:443"},
    {"tcp6://2001:db8:0:0:0:0:0:1/443", 0, "tcp6://[2001:db8::1]:443"},
    {"udp6://2001:db8::1/53", 0, "udp6://[2001:db8::1]:53"},
    {"tcp6://::1/1", 0, "tcp6://[::1]:1"},
    {"tcp6://::ffff:192.0.2.1/80", 0, "tcp6://[::ffff:192.0.2.1]:80"},
    {"tcp6://2001:db8::1/0", P0, "tcp6://[2001:db8::1]:0"},
    {"tcp6://[::]:1", 0, "tcp6://[::]:1"},
    {"tcp6://[::1]:65535", 0, "tcp6://[::1]:65535"},
    {"tcp6://[::]:0", P0, "tcp6://[::]:0"},
    {"udp6://[fe80::1%25eth0]:53", 0, "udp6://[fe80::1%25eth0]:53"},
    {"udp6://[FE80::0001%25Eth-0.1_x]:53", 0, "udp6://[fe80::1%25Eth-0.1_x]:53"},
    {"tcp6://[fe80::1%2542]:22", 0, "tcp6://[fe80::1%2542]:22"},
    {"tcp6://[fe80::1%25abcdefghijklmno]:22", 0,
     "tcp6://[fe80::1%25abcdefghijklmno]:22"},
    {"tcp6://[::ffff:192.0.2.1]:80", 0, "tcp6://[::ffff:192.0.2.1]:80"},
    {"tcp6://[::FFFF:c000:0201]:80", 0, "tcp6://[::ffff:192.0.2.1]:80"},
    {"tcp6://[::1.2.3.4]:80", 0, "tcp6://[::102:304]:80"},
    {"tcp6://[1:2:3:4:5:6:7::]:80", 0, "tcp6://[1:2:3:4:5:6:7:0]:80"},
    {"tcp6://[::2:3:4:5:6:7:8]:80", 0, "tcp6://[0:2:3:4:5:6:7:8]:80"},
    {"tcp6://[1:2:3:4:5:6:1.2.3.4]:80", 0, "tcp6://[1:2:3:4:5:6:102:304]:80"},
    {"tcp6://[2001:db8:0:0:1:0:0:1]:80", 0, "tcp6://[2001:db8::1:0:0:1]:80"},
    {"ipx://0000cafe.02005e0001a2.4000", 0, "ipx://0000cafe.02005e0001a2.4000"},
    {"ipx://0000CAFE.02005E0001A2.4AbC", 0, "ipx://0000cafe.02005e0001a2.4abc"},
    {"ipx://ffffffff.ffffffffffff.ffff", 0, "ipx://ffffffff.ffffffffffff.ffff"},
    {"ipx://00000000.000000000000.0000", P0, "ipx://00000000.000000000000.0000"},
};

Test(uri, accepts_and_formats_canonically) {
  for (size_t i = 0; i < sizeof(accepts) / sizeof(accepts[0]); i++) {
    hwsock_addr a;
    const char *why = "unset";
    char buf[HWSOCK_URI_MAX + 1];
    int rc = hwsock_uri_parse(accepts[i].in, strlen(accepts[i].in),
                              accepts[i].flags, &a, &why);
    cr_expect_eq(rc, 0, "%s: rc %d (%s)", accepts[i].in, rc, why ? why : "-");
    if (rc != 0)
      continue;
    cr_expect_null(why, "%s: why set on success", accepts[i].in);
    rc = hwsock_uri_format(&a, buf, sizeof(buf));
    cr_expect_eq(rc, (int)strlen(accepts[i].canon), "%s: length %d",
                 accepts[i].in, rc);
    cr_expect_str_eq(buf, accepts[i].canon, "%s", accepts[i].in);
  }
}

Test(uri, parsed_fields) {
  hwsock_addr a;
  cr_assert_eq(hwsock_uri_parse("udp6://[fe80::1%25eth0]:53", 26, 0, &a, NULL), 0);
  cr_expect_eq(a.scheme, HWSOCK_SCHEME_UDP6);
  cr_expect_eq(a.family, HWSOCK_AF_INET6);
  cr_expect_eq(a.port, 53);
  cr_expect_str_eq(a.zone, "eth0");
  cr_expect_eq(a.u.v6[0], 0xfe);
  cr_expect_eq(a.u.v6[1], 0x80);
  cr_expect_eq(a.u.v6[15], 1);

  cr_assert_eq(hwsock_uri_parse("tcp://192.0.2.7:8080", 20, 0, &a, NULL), 0);
  cr_expect_eq(a.scheme, HWSOCK_SCHEME_TCP);
  cr_expect_eq(a.family, HWSOCK_AF_INET);
  cr_expect_eq(a.port, 8080);
  cr_expect(memcmp(a.u.v4, "\xc0\x00\x02\x07", 4) == 0);
  cr_expect_str_eq(a.zone, "");

  cr_assert_eq(hwsock_uri_parse("ipx://0000cafe.02005e0001a2.4000", 32, 0, &a,
                                NULL), 0);
  cr_expect_eq(a.scheme, HWSOCK_SCHEME_IPX);
  cr_expect_eq(a.family, HWSOCK_AF_IPX);
  cr_expect_eq(a.port, 0x4000);
  cr_expect(memcmp(a.u.ipx.net, "\x00\x00\xca\xfe", 4) == 0);
  cr_expect(memcmp(a.u.ipx.node, "\x02\x00\x5e\x00\x01\xa2", 6) == 0);
}

Test(uri, input_need_not_be_terminated) {
  /* only len bytes count: the rest of the buffer is not looked at */
  const char text[] = "tcp://1.2.3.4:8080XYZ";
  hwsock_addr a;
  cr_assert_eq(hwsock_uri_parse(text, 17, 0, &a, NULL), 0);
  cr_expect_eq(a.port, 808);
}

/* ---- rejected input -> error and message ------------------------------ */

static const struct {
  const char *in;
  size_t len; /* 0: strlen(in) */
  unsigned flags;
  int rc;
  const char *why; /* a part of the expected message */
} rejects[] = {
    {"", 0, 0, HWSOCK_EBADURI, "empty URI"},
    /* IPv4 forms */
    {"tcp://01.2.3.4:80", 0, 0, HWSOCK_EBADURI, "leading zero"},
    {"tcp://1.2.3.00:80", 0, 0, HWSOCK_EBADURI, "leading zero"},
    {"tcp://0177.0.0.1:80", 0, 0, HWSOCK_EBADURI, "octal"},
    {"tcp://0x7f.0.0.1:80", 0, 0, HWSOCK_EBADURI, "hexadecimal"},
    {"tcp://0x7f000001:80", 0, 0, HWSOCK_EBADURI, "hexadecimal"},
    {"tcp://127.0.0.0X1:80", 0, 0, HWSOCK_EBADURI, "hexadecimal"},
    {"tcp://3232235777:80", 0, 0, HWSOCK_EBADURI, "integer"},
    {"tcp://127.1:80", 0, 0, HWSOCK_EBADURI, "short IPv4"},
    {"tcp://127.0.1:80", 0, 0, HWSOCK_EBADURI, "short IPv4"},
    {"tcp://256.1.1.1:80", 0, 0, HWSOCK_EBADURI, "out of range (0..255)"},
    {"tcp://1.2.3.1000:80", 0, 0, HWSOCK_EBADURI, "out of range (0..255)"},
    {"tcp://1.2.3.4.5:80", 0, 0, HWSOCK_EBADURI, "more than four octets"},
    {"tcp://1..3.4:80", 0, 0, HWSOCK_EBADURI, "empty IPv4 octet"},
    {"tcp://1.2.3.4.:80", 0, 0, HWSOCK_EBADURI, "empty IPv4 octet"},
    {"tcp://.1.2.3:80", 0, 0, HWSOCK_EBADURI, "empty IPv4 octet"},
    {"tcp://localhost:80", 0, 0, HWSOCK_EBADURI, "host names"},
    {"tcp://a.b.c.d:80", 0, 0, HWSOCK_EBADURI, "host names"},
    {"tcp://%31.2.3.4:80", 0, 0, HWSOCK_EBADURI, "percent-encoding"},
    {"tcp://:80", 0, 0, HWSOCK_EBADURI, "missing host"},
    {"tcp://", 0, 0, HWSOCK_EBADURI, "missing host"},
    /* parts that are not allowed */
    {"tcp://user@1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "user-info"},
    {"tcp://@1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "user-info"},
    {"tcp://u:p@1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "user-info"},
    {"tcp6://u@[::1]:80", 0, 0, HWSOCK_EBADURI, "user-info"},
    {"tcp://1.2.3.4:80/", 0, 0, HWSOCK_EBADURI, "path"},
    {"tcp://1.2.3.4:80/x", 0, 0, HWSOCK_EBADURI, "path"},
    {"tcp://1.2.3.4/80", 0, 0, HWSOCK_EBADURI, "path"},
    {"tcp://1.2.3.4:80?x=1", 0, 0, HWSOCK_EBADURI, "query"},
    {"tcp://1.2.3.4:80?", 0, 0, HWSOCK_EBADURI, "query"},
    {"tcp://1.2.3.4:80#f", 0, 0, HWSOCK_EBADURI, "fragment"},
    {"tcp://1.2.3.4:80#", 0, 0, HWSOCK_EBADURI, "fragment"},
    {"tcp6://[::1]:80/", 0, 0, HWSOCK_EBADURI, "path"},
    {"tcp6://[::1]:80?q", 0, 0, HWSOCK_EBADURI, "query"},
    {"tcp6://[::1]:80#f", 0, 0, HWSOCK_EBADURI, "fragment"},
    /* ports */
    {"tcp://1.2.3.4", 0, 0, HWSOCK_EBADURI, "missing port"},
    {"udp6://[::1]", 0, 0, HWSOCK_EBADURI, "missing port"},
    {"tcp://1.2.3.4:", 0, 0, HWSOCK_EBADURI, "empty port"},
    {"tcp://1.2.3.4:0", 0, 0, HWSOCK_EBADURI, "HWSOCK_URI_ALLOW_PORT0"},
    {"tcp6://[::1]:0", 0, 0, HWSOCK_EBADURI, "HWSOCK_URI_ALLOW_PORT0"},
    {"udp://1.2.3.4:65536", 0, 0, HWSOCK_EBADURI, "port out of range"},
    {"udp://1.2.3.4:99999999", 0, 0, HWSOCK_EBADURI, "port out of range"},
    {"tcp://1.2.3.4:080", 0, 0, HWSOCK_EBADURI, "port with a leading zero"},
    {"tcp://1.2.3.4:00", 0, P0, HWSOCK_EBADURI, "port with a leading zero"},
    {"tcp://1.2.3.4:8a", 0, 0, HWSOCK_EBADURI, "RFC 3986 syntax"},
    {"tcp://1.2.3.4:80:90", 0, 0, HWSOCK_EBADURI, "RFC 3986 syntax"},
    /* schemes */
    {"TCP://1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "lowercase"},
    {"Tcp6://[::1]:80", 0, 0, HWSOCK_EBADURI, "lowercase"},
    {"IPX://0000cafe.02005e0001a2.4000", 0, 0, HWSOCK_EBADURI, "lowercase"},
    {"http://1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "unknown scheme"},
    {"tcp4://1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "unknown scheme"},
    {"sctp://1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "unknown scheme"},
    {"://1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "missing scheme"},
    {"1.2.3.4", 0, 0, HWSOCK_EBADURI, "missing scheme"},
    {"tcp:1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "missing \"//\""},
    {"tcp:/1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "missing \"//\""},
    /* families crossed */
    {"tcp6://[1.2.3.4]:80", 0, 0, HWSOCK_EBADURI, "IPv4 address in an IPv6"},
    {"udp6://1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "IPv4 address in an IPv6"},
    {"tcp6://1.2.3.4/80", 0, 0, HWSOCK_EBADURI, "IPv4 address in an IPv6"},
    {"tcp://[::1]:80", 0, 0, HWSOCK_EBADURI, "only for tcp6 and udp6"},
    {"udp://[1.2.3.4]:80", 0, 0, HWSOCK_EBADURI, "only for tcp6 and udp6"},
    {"ipx://[::1]:80", 0, 0, HWSOCK_EBADURI, "only for tcp6 and udp6"},
    {"tcp6://localhost:80", 0, 0, HWSOCK_EBADURI, "must be in brackets"},
    /* brackets and IPv6 text */
    {"tcp6://[::1:80", 0, 0, HWSOCK_EBADURI, "unbalanced brackets"},
    {"tcp6://::1]:80", 0, 0, HWSOCK_EBADURI, "unbalanced brackets"},
    {"tcp6://]::1[:80", 0, 0, HWSOCK_EBADURI, "unbalanced brackets"},
    {"tcp6://[::1]]:80", 0, 0, HWSOCK_EBADURI, "unbalanced brackets"},
    {"tcp6://[[::1]]:80", 0, 0, HWSOCK_EBADURI, "more than one pair"},
    {"tcp6://[::1]:80/[x]", 0, 0, HWSOCK_EBADURI, "more than one pair"},
    {"tcp6://x/[::1]", 0, 0, HWSOCK_EBADURI, "only allowed around the host"},
    {"tcp6://[]:80", 0, 0, HWSOCK_EBADURI, "empty IPv6 address"},
    {"tcp6://[1::2::3]:80", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://[12345::1]:80", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://[1:2:3:4:5:6:7:8:9]:80", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://[1:2:3:4:5:6:7]:80", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://[:1]:80", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://[::g]:80", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://[::ffff:01.2.3.4]:80", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://[::ffff:1.2.3]:80", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://[v1.x]:80", 0, 0, HWSOCK_EBADURI, "IPvFuture"},
    {"tcp6://x[::1]:80", 0, 0, HWSOCK_EBADURI, "RFC 3986 syntax"},
    /* zones */
    {"tcp6://[fe80::1%eth0]:80", 0, 0, HWSOCK_EBADURI, "%25"},
    {"tcp6://[fe80::1%2]:80", 0, 0, HWSOCK_EBADURI, "%25"},
    {"tcp6://[fe80::1%]:80", 0, 0, HWSOCK_EBADURI, "%25"},
    {"tcp6://[fe80::1%25]:80", 0, 0, HWSOCK_EBADURI, "empty zone id"},
    {"tcp6://[fe80::1%25abcdefghijklmnop]:80", 0, 0, HWSOCK_EBADURI,
     "zone id longer"},
    {"tcp6://[fe80::1%25eth~0]:80", 0, 0, HWSOCK_EBADURI, "zone id may hold"},
    {"tcp6://[fe80::1%25eth%2541]:80", 0, 0, HWSOCK_EBADURI, "zone id may hold"},
    {"tcp6://[fe80::1%25eth0%25eth1]:80", 0, 0, HWSOCK_EBADURI,
     "zone id may hold"},
    {"tcp6://[%25eth0]:80", 0, 0, HWSOCK_EBADURI, "empty IPv6 address"},
    /* the RFC form */
    {"tcp6://2001:db8::1", 0, 0, HWSOCK_EBADURI, "followed by /port"},
    {"tcp6://2001:db8::1:443", 0, 0, HWSOCK_EBADURI, "followed by /port"},
    {"tcp6://2001:db8::1/", 0, 0, HWSOCK_EBADURI, "empty port"},
    {"tcp6://2001:db8::1/443/x", 0, 0, HWSOCK_EBADURI, "path"},
    {"tcp6://2001:db8::1/443?x", 0, 0, HWSOCK_EBADURI, "query"},
    {"tcp6://2001:db8::1?x", 0, 0, HWSOCK_EBADURI, "query"},
    {"tcp6://2001:db8::1/443#x", 0, 0, HWSOCK_EBADURI, "fragment"},
    {"tcp6://fe80::1%25eth0/443", 0, 0, HWSOCK_EBADURI, "bracketed form"},
    {"tcp6://u@2001:db8::1/443", 0, 0, HWSOCK_EBADURI, "user-info"},
    {"tcp6://2001:db8::g/443", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://2001:db8::1::2/443", 0, 0, HWSOCK_EBADURI, "malformed IPv6"},
    {"tcp6://2001:db8::1/0443", 0, 0, HWSOCK_EBADURI, "leading zero"},
    {"tcp6://2001:db8::1/44a", 0, 0, HWSOCK_EBADURI, "decimal digits"},
    {"tcp6://2001:db8::1/0", 0, 0, HWSOCK_EBADURI, "HWSOCK_URI_ALLOW_PORT0"},
    {"tcp6://2001:db8::1/65536", 0, 0, HWSOCK_EBADURI, "port out of range"},
    {"tcp6://", 0, 0, HWSOCK_EBADURI, "missing host"},
    /* ipx */
    {"ipx://000cafe.02005e0001a2.4000", 0, 0, HWSOCK_EBADURI, "8 hex digits"},
    {"ipx://00000cafe.02005e0001a2.4000", 0, 0, HWSOCK_EBADURI, "8 hex digits"},
    {"ipx://0000cafe.2005e0001a2.4000", 0, 0, HWSOCK_EBADURI, "12 hex digits"},
    {"ipx://0000cafe.002005e0001a2.4000", 0, 0, HWSOCK_EBADURI, "12 hex digits"},
    {"ipx://0000cafe.02005e0001a2.400", 0, 0, HWSOCK_EBADURI, "4 hex digits"},
    {"ipx://0000cafe.02005e0001a2.04000", 0, 0, HWSOCK_EBADURI, "4 hex digits"},
    {"ipx://0000cafe.02005e0001a2", 0, 0, HWSOCK_EBADURI, "network.node.socket"},
    {"ipx://0000cafe.02005e0001a2.4000.1", 0, 0, HWSOCK_EBADURI,
     "network.node.socket"},
    {"ipx://0000cafg.02005e0001a2.4000", 0, 0, HWSOCK_EBADURI, "not a hex digit"},
    {"ipx://0000cafe.02005e0001a2.+400", 0, 0, HWSOCK_EBADURI, "not a hex digit"},
    {"ipx://0000cafe.02005e0001a2.4000:80", 0, 0, HWSOCK_EBADURI, "takes no port"},
    {"ipx://0000cafe.02005e0001a2.0000", 0, 0, HWSOCK_EBADURI,
     "HWSOCK_URI_ALLOW_PORT0"},
    {"ipx://0000cafe.02005e0001a2.4000/", 0, 0, HWSOCK_EBADURI, "path"},
    {"ipx://u@0000cafe.02005e0001a2.4000", 0, 0, HWSOCK_EBADURI, "user-info"},
    {"ipx://", 0, 0, HWSOCK_EBADURI, "missing host"},
    /* bytes */
    {"tcp://1.2.3.4:80\0", 17, 0, HWSOCK_EBADURI, "NUL byte"},
    {"tcp://1.2\0.3.4:80", 17, 0, HWSOCK_EBADURI, "NUL byte"},
    {"\0tcp://1.2.3.4:80", 17, 0, HWSOCK_EBADURI, "NUL byte"},
    {"tcp://1.2.3.4:80 ", 0, 0, HWSOCK_EBADURI, "space, control"},
    {" tcp://1.2.3.4:80", 0, 0, HWSOCK_EBADURI, "space, control"},
    {"tcp://1.2.3.4:80\n", 0, 0, HWSOCK_EBADURI, "space, control"},
    {"tcp://1.2.3.4:8\t0", 0, 0, HWSOCK_EBADURI, "space, control"},
    {"tcp://1.2.3.4:80\x7f", 0, 0, HWSOCK_EBADURI, "space, control"},
    {"tcp://1.2.3.\xd9\xa4:80", 0, 0, HWSOCK_EBADURI, "non-ASCII"},
    {"tcp6://[fe80::1%25\xc3\xa9]:80", 0, 0, HWSOCK_EBADURI, "non-ASCII"},
};

Test(uri, rejects_with_a_reason) {
  cr_assert_geq(sizeof(rejects) / sizeof(rejects[0]), 40);
  for (size_t i = 0; i < sizeof(rejects) / sizeof(rejects[0]); i++) {
    hwsock_addr a;
    const char *why = NULL;
    size_t len = rejects[i].len ? rejects[i].len : strlen(rejects[i].in);
    int rc = hwsock_uri_parse(rejects[i].in, len, rejects[i].flags, &a, &why);
    cr_expect_eq(rc, rejects[i].rc, "[%zu] %s: rc %d, expected %d", i,
                 rejects[i].in, rc, rejects[i].rc);
    cr_expect_not_null(why, "[%zu] %s: no reason given", i, rejects[i].in);
    if (why != NULL)
      cr_expect(strstr(why, rejects[i].why) != NULL,
                "[%zu] %s: reason \"%s\", expected \"%s\"", i, rejects[i].in,
                why, rejects[i].why);
    /* and with the other flag value it is still rejected, except where the
     * only fault is port 0 */
    if (strstr(rejects[i].why, "ALLOW_PORT0") == NULL)
      cr_expect_neq(hwsock_uri_parse(rejects[i].in, len,
                                     rejects[i].flags ^ P0, &a, NULL), 0,
                    "[%zu] %s: accepted with flags %u", i, rejects[i].in,
                    rejects[i].flags ^ P0);
  }
}

Test(uri, length_limits) {
  char buf[HWSOCK_URI_MAX + 2];
  const char *why = NULL;
  hwsock_addr a;
  memset(buf, 'a', sizeof(buf));
  memcpy(buf, "tcp://1.2.3.4:80/", 17);
  cr_expect_eq(hwsock_uri_parse(buf, HWSOCK_URI_MAX + 1, 0, &a, &why),
               HWSOCK_ENAMETOOLONG);
  cr_expect_not_null(why);
  cr_expect(why && strstr(why, "longer than"));
  /* exactly HWSOCK_URI_MAX is not "too long": rejected for its path */
  why = NULL;
  cr_expect_eq(hwsock_uri_parse(buf, HWSOCK_URI_MAX, 0, &a, &why),
               HWSOCK_EBADURI);
  cr_expect(why && strstr(why, "path"));
  /* a NULL why is fine; NULL out is EINVAL with a reason */
  cr_expect_eq(hwsock_uri_parse("tcp://1.2.3.4", 13, 0, &a, NULL),
               HWSOCK_EBADURI);
  why = NULL;
  cr_expect_eq(hwsock_uri_parse("tcp://1.2.3.4:1", 15, 0, NULL, &why),
               HWSOCK_EINVAL);
  cr_expect_not_null(why);
  cr_expect_eq(hwsock_uri_parse(NULL, 3, 0, &a, NULL), HWSOCK_EINVAL);
}

Test(uri, rejects_leave_output_alone) {
  hwsock_addr a, before;
  memset(&a, 0x5a, sizeof(a));
  before = a;
  cr_expect_eq(hwsock_uri_parse("tcp6://[fe80::1%25eth0]:0", 25, 0, &a, NULL),
               HWSOCK_EBADURI);
  cr_expect(memcmp(&a, &before, sizeof(a)) == 0);
}

/* ---- RFC 5952 ---------------------------------------------------------- */

static const char *format_v6(const uint16_t g[8], char *buf, size_t size) {
  hwsock_addr a;
  memset(&a, 0, sizeof(a));
  a.scheme = HWSOCK_SCHEME_TCP6;
  a.family = HWSOCK_AF_INET6;
  a.port = 1;
  for (int i = 0; i < 8; i++) {
    a.u.v6[2 * i] = (uint8_t)(g[i] >> 8);
    a.u.v6[2 * i + 1] = (uint8_t)g[i];
  }
  cr_assert_gt(hwsock_uri_format(&a, buf, size), 0);
  return buf;
}

Test(uri, rfc5952) {
  static const struct {
    uint16_t g[8];
    const char *text;
  } cases[] = {
      {{0, 0, 0, 0, 0, 0, 0, 0}, "::"},
      {{0, 0, 0, 0, 0, 0, 0, 1}, "::1"},
      {{1, 0, 0, 0, 0, 0, 0, 0}, "1::"},
      {{0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}, "2001:db8::1"},
      /* 4.2.1: as short as possible */
      {{0x2001, 0xdb8, 0, 0, 0, 0, 2, 1}, "2001:db8::2:1"},
      /* 4.2.2: one 16-bit zero field is not shortened */
      {{0x2001, 0xdb8, 0, 1, 1, 1, 1, 1}, "2001:db8:0:1:1:1:1:1"},
      {{0, 1, 1, 1, 1, 1, 1, 1}, "0:1:1:1:1:1:1:1"},
      {{1, 1, 1, 1, 1, 1, 1, 0}, "1:1:1:1:1:1:1:0"},
      /* 4.2.3: the longest run; the first one on a tie */
      {{0x2001, 0, 0, 1, 0, 0, 0, 1}, "2001:0:0:1::1"},
      {{0x2001, 0xdb8, 0, 0, 1, 0, 0, 1}, "2001:db8::1:0:0:1"},
      {{0, 0, 1, 0, 0, 0, 1, 0}, "0:0:1::1:0"},
      {{0, 0, 1, 1, 1, 1, 0, 0}, "::1:1:1:1:0:0"},
      {{1, 0, 0, 1, 1, 0, 0, 0}, "1:0:0:1:1::"},
      {{0, 1, 0, 1, 0, 1, 0, 1}, "0:1:0:1:0:1:0:1"},
      /* 4.1 leading zeros, 4.3 lowercase */
      {{0x2001, 0x0db8, 0x00aa, 0x000b, 0xABCD, 0xEF01, 0x0100, 0x1000},
       "2001:db8:aa:b:abcd:ef01:100:1000"},
      {{0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff},
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
      /* 5: v4-mapped with a dotted quad; other v4-embedding forms in hex */
      {{0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201}, "::ffff:192.0.2.1"},
      {{0, 0, 0, 0, 0, 0xffff, 0, 0}, "::ffff:0.0.0.0"},
      {{0, 0, 0, 0, 0, 0, 0xc000, 0x0201}, "::c000:201"},
      {{0, 0, 0, 0, 0xffff, 0, 0xc000, 0x0201}, "::ffff:0:c000:201"},
      {{0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0201}, "64:ff9b::c000:201"},
      {{0, 0, 0, 0, 0xffff, 0xffff, 1, 2}, "::ffff:ffff:1:2"},
      {{0xfe80, 0, 0, 0, 0x0200, 0x5eff, 0xfe00, 0x5301},
       "fe80::200:5eff:fe00:5301"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[HWSOCK_URI_MAX + 1], want[HWSOCK_URI_MAX + 1];
    snprintf(want, sizeof(want), "tcp6://[%s]:1", cases[i].text);
    cr_expect_str_eq(format_v6(cases[i].g, buf, sizeof(buf)), want);
  }
}

/* ---- round trips ------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) { /* xorshift64*: deterministic, reproducible */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* format -> parse gives the same bytes, and the text is a fixed point */
static void round_trip(const hwsock_addr *a, unsigned flags) {
  char t1[HWSOCK_URI_MAX + 1], t2[HWSOCK_URI_MAX + 1];
  hwsock_addr b;
  const char *why = NULL;
  int n = hwsock_uri_format(a, t1, sizeof(t1));
  cr_assert_gt(n, 0, "format failed: %d", n);
  cr_assert_eq(hwsock_uri_parse(t1, (size_t)n, flags, &b, &why), 0,
               "%s: %s", t1, why ? why : "-");
  cr_assert(memcmp(a, &b, sizeof(b)) == 0, "%s: bytes differ", t1);
  cr_assert_eq(hwsock_uri_format(&b, t2, sizeof(t2)), n);
  cr_assert_str_eq(t1, t2);
}

static void random_addr(hwsock_addr *a, int scheme) {
  memset(a, 0, sizeof(*a));
  a->scheme = (uint8_t)scheme;
  a->family = (uint8_t)hwsock_scheme_family(scheme);
  a->port = (uint16_t)(rnd() % 65535 + 1);
  if (a->family == HWSOCK_AF_INET) {
    uint32_t v = rnd();
    memcpy(a->u.v4, &v, 4);
  } else if (a->family == HWSOCK_AF_INET6) {
    /* groups zero half the time, so that runs of every length appear */
    for (int i = 0; i < 8; i++) {
      uint32_t r = rnd();
      uint16_t g = (r & 1) ? 0 : (uint16_t)(r >> 16);
      a->u.v6[2 * i] = (uint8_t)(g >> 8);
      a->u.v6[2 * i + 1] = (uint8_t)g;
    }
    if (rnd() % 8 == 0) { /* and some v4-mapped */
      memset(a->u.v6, 0, 10);
      a->u.v6[10] = a->u.v6[11] = 0xff;
    }
    if (rnd() % 4 == 0) {
      static const char zc[] =
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
      size_t zl = rnd() % HWSOCK_ZONE_MAX + 1;
      for (size_t i = 0; i < zl; i++)
        a->zone[i] = zc[rnd() % (sizeof(zc) - 1)];
    }
  } else {
    for (int i = 0; i < 4; i++)
      a->u.ipx.net[i] = (uint8_t)rnd();
    for (int i = 0; i < 6; i++)
      a->u.ipx.node[i] = (uint8_t)rnd();
  }
}

Test(uri, round_trip_random_every_scheme) {
  for (int s = HWSOCK_SCHEME_TCP; s <= HWSOCK_SCHEME_IPX; s++)
    for (int i = 0; i < 1000; i++) {
      hwsock_addr a;
      random_addr(&a, s);
      round_trip(&a, 0);
    }
}

Test(uri, round_trip_port0_with_flag) {
  for (int s = HWSOCK_SCHEME_TCP; s <= HWSOCK_SCHEME_IPX; s++) {
    hwsock_addr a;
    char buf[HWSOCK_URI_MAX + 1];
    random_addr(&a, s);
    a.port = 0;
    round_trip(&a, P0);
    int n = hwsock_uri_format(&a, buf, sizeof(buf));
    cr_expect_eq(hwsock_uri_parse(buf, (size_t)n, 0, &a, NULL), HWSOCK_EBADURI,
                 "%s accepted without the flag", buf);
  }
}

Test(uri, round_trip_every_zero_run) {
  /* all 256 patterns of zero and non-zero groups */
  for (unsigned mask = 0; mask < 256; mask++) {
    hwsock_addr a;
    memset(&a, 0, sizeof(a));
    a.scheme = HWSOCK_SCHEME_UDP6;
    a.family = HWSOCK_AF_INET6;
    a.port = 7;
    for (int i = 0; i < 8; i++)
      if (mask & (1u << i))
        a.u.v6[2 * i + 1] = (uint8_t)(i + 1);
    round_trip(&a, 0);
  }
}

/* glibc's inet_ntop also follows RFC 5952 except for ::a.b.c.d and
 * ::ffff:a.b.c.d-like prefixes: an independent opinion for the rest. */
Test(uri, ipv6_text_agrees_with_inet_ntop) {
  static const uint8_t z[10];
  for (int i = 0; i < 2000; i++) {
    hwsock_addr a;
    char buf[HWSOCK_URI_MAX + 1], ref[INET6_ADDRSTRLEN], want[HWSOCK_URI_MAX + 1];
    random_addr(&a, HWSOCK_SCHEME_TCP6);
    a.zone[0] = '\0';
    if (memcmp(a.u.v6, z, 10) == 0 &&
        ((a.u.v6[10] == 0 && a.u.v6[11] == 0) ||
         (a.u.v6[10] == 0xff && a.u.v6[11] == 0xff)))
      continue;
    cr_assert_not_null(inet_ntop(AF_INET6, a.u.v6, ref, sizeof(ref)));
    snprintf(want, sizeof(want), "tcp6://[%s]:%u", ref, a.port);
    cr_assert_gt(hwsock_uri_format(&a, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, want);
  }
}

/* ---- format errors ----------------------------------------------------- */

Test(uri, format_errors) {
  hwsock_addr a;
  char buf[64];
  cr_assert_eq(hwsock_uri_parse("tcp://192.0.2.7:80", 18, 0, &a, NULL), 0);
  cr_expect_eq(hwsock_uri_format(&a, buf, 19), 18);
  cr_expect_eq(hwsock_uri_format(&a, buf, 18), HWSOCK_ENOSPC);
  cr_expect_str_eq(buf, "tcp://192.0.2.7:8");
  cr_expect_eq(hwsock_uri_format(&a, buf, 1), HWSOCK_ENOSPC);
  cr_expect_str_eq(buf, "");
  cr_expect_eq(hwsock_uri_format(&a, buf, 0), HWSOCK_ENOSPC);
  cr_expect_eq(hwsock_uri_format(&a, NULL, 0), HWSOCK_ENOSPC);

  a.scheme = 0;
  cr_expect_eq(hwsock_uri_format(&a, buf, sizeof(buf)), HWSOCK_EINVAL);
  a.scheme = 9;
  cr_expect_eq(hwsock_uri_format(&a, buf, sizeof(buf)), HWSOCK_EINVAL);
  a.scheme = HWSOCK_SCHEME_TCP6; /* family still INET */
  cr_expect_eq(hwsock_uri_format(&a, buf, sizeof(buf)), HWSOCK_EINVAL);
  cr_expect_eq(hwsock_uri_format(NULL, buf, sizeof(buf)), HWSOCK_EINVAL);

  /* a zone the parser would refuse is not written */
  cr_assert_eq(hwsock_uri_parse("tcp6://[fe80::1]:80", 19, 0, &a, NULL), 0);
  strcpy(a.zone, "et h");
  cr_expect_eq(hwsock_uri_format(&a, buf, sizeof(buf)), HWSOCK_EINVAL);
  memset(a.zone, 'x', sizeof(a.zone)); /* no terminator */
  cr_expect_eq(hwsock_uri_format(&a, buf, sizeof(buf)), HWSOCK_EINVAL);
}

/* ---- schemes ----------------------------------------------------------- */

Test(uri, scheme_helpers) {
  static const struct {
    int s;
    const char *name;
    unsigned fam, type;
  } t[] = {
      {HWSOCK_SCHEME_TCP, "tcp", HWSOCK_AF_INET, HWSOCK_SOCK_STREAM},
      {HWSOCK_SCHEME_UDP, "udp", HWSOCK_AF_INET, HWSOCK_SOCK_DGRAM},
      {HWSOCK_SCHEME_TCP6, "tcp6", HWSOCK_AF_INET6, HWSOCK_SOCK_STREAM},
      {HWSOCK_SCHEME_UDP6, "udp6", HWSOCK_AF_INET6, HWSOCK_SOCK_DGRAM},
      {HWSOCK_SCHEME_IPX, "ipx", HWSOCK_AF_IPX, HWSOCK_SOCK_DGRAM},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    cr_expect_str_eq(hwsock_scheme_name(t[i].s), t[i].name);
    cr_expect_eq(hwsock_scheme_from_name(t[i].name), t[i].s);
    cr_expect_eq(hwsock_scheme_family(t[i].s), t[i].fam);
    cr_expect_eq(hwsock_scheme_socktype(t[i].s), t[i].type);
    cr_expect_eq(hwsock_scheme_for(t[i].fam, t[i].type), t[i].s);
  }
  cr_expect_null(hwsock_scheme_name(HWSOCK_SCHEME_NONE));
  cr_expect_null(hwsock_scheme_name(6));
  cr_expect_null(hwsock_scheme_name(-1));
  cr_expect_eq(hwsock_scheme_from_name("TCP"), HWSOCK_SCHEME_NONE);
  cr_expect_eq(hwsock_scheme_from_name("tcp "), HWSOCK_SCHEME_NONE);
  cr_expect_eq(hwsock_scheme_from_name(""), HWSOCK_SCHEME_NONE);
  cr_expect_eq(hwsock_scheme_from_name(NULL), HWSOCK_SCHEME_NONE);
  cr_expect_eq(hwsock_scheme_family(0), 0);
  cr_expect_eq(hwsock_scheme_socktype(99), 0);
  cr_expect_eq(hwsock_scheme_for(HWSOCK_AF_IPX, HWSOCK_SOCK_STREAM),
               HWSOCK_SCHEME_NONE);
  cr_expect_eq(hwsock_scheme_for(0, 0), HWSOCK_SCHEME_NONE);
}

/* ---- sockaddr ---------------------------------------------------------- */

static hwsock_addr parsed(const char *uri, unsigned flags) {
  hwsock_addr a;
  const char *why = NULL;
  cr_assert_eq(hwsock_uri_parse(uri, strlen(uri), flags, &a, &why), 0, "%s: %s",
               uri, why ? why : "-");
  return a;
}

Test(uri, to_sockaddr_v4) {
  hwsock_addr a = parsed("tcp://127.0.0.1:8080", 0);
  struct sockaddr_storage ss;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  unsigned len = 0;
  cr_assert_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len), 0);
  cr_expect_eq(len, sizeof(struct sockaddr_in));
  cr_expect_eq(sin->sin_family, AF_INET);
  cr_expect_eq(ntohs(sin->sin_port), 8080);
  cr_expect_eq(ntohl(sin->sin_addr.s_addr), 0x7f000001u);
}

Test(uri, to_sockaddr_v6_and_zones) {
  struct sockaddr_storage ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  unsigned len = 0;
  hwsock_addr a = parsed("tcp6://[2001:db8::1]:443", 0);
  cr_assert_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len), 0);
  cr_expect_eq(len, sizeof(struct sockaddr_in6));
  cr_expect_eq(sin6->sin6_family, AF_INET6);
  cr_expect_eq(ntohs(sin6->sin6_port), 443);
  cr_expect_eq(sin6->sin6_scope_id, 0);
  cr_expect(memcmp(&sin6->sin6_addr, a.u.v6, 16) == 0);

  a = parsed("udp6://[fe80::1%2542]:53", 0);
  cr_assert_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len), 0);
  cr_expect_eq(sin6->sin6_scope_id, 42);

  a = parsed("udp6://[fe80::1%25lo]:53", 0);
  cr_assert_neq(if_nametoindex("lo"), 0, "this test needs the lo interface");
  cr_assert_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len), 0);
  cr_expect_eq(sin6->sin6_scope_id, if_nametoindex("lo"));

  a = parsed("udp6://[fe80::1%25no-such-if9]:53", 0);
  cr_expect_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len),
               HWSOCK_EADDRNOTAVAIL);
  a = parsed("udp6://[fe80::1%2599999999999]:53", 0);
  cr_expect_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len),
               HWSOCK_EINVAL);

  a = parsed("ipx://0000cafe.02005e0001a2.4000", 0);
  cr_expect_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len),
               HWSOCK_EAFNOSUPPORT);
  cr_expect_eq(hwsock_addr_to_sockaddr(&a, NULL, &len), HWSOCK_EINVAL);
}

Test(uri, from_sockaddr) {
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  hwsock_addr a;
  char buf[HWSOCK_URI_MAX + 1];

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(5353);
  sin.sin_addr.s_addr = htonl(0xc0000207);
  cr_assert_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin, sizeof(sin),
                                         HWSOCK_SCHEME_UDP, &a), 0);
  cr_expect_gt(hwsock_uri_format(&a, buf, sizeof(buf)), 0);
  cr_expect_str_eq(buf, "udp://192.0.2.7:5353");
  cr_expect_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin,
                                         sizeof(sin) - 1, HWSOCK_SCHEME_UDP, &a),
               HWSOCK_EINVAL);
  cr_expect_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin, sizeof(sin),
                                         HWSOCK_SCHEME_TCP6, &a),
               HWSOCK_EAFNOSUPPORT);
  cr_expect_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin, sizeof(sin),
                                         HWSOCK_SCHEME_IPX, &a),
               HWSOCK_EAFNOSUPPORT);
  cr_expect_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin, sizeof(sin),
                                         HWSOCK_SCHEME_NONE, &a),
               HWSOCK_EINVAL);
  cr_expect_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin, 1,
                                         HWSOCK_SCHEME_UDP, &a),
               HWSOCK_EINVAL);

  /* a v4-mapped AF_INET6 address stays IPv6 */
  memset(&sin6, 0, sizeof(sin6));
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(80);
  cr_assert_eq(inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6.sin6_addr), 1);
  cr_assert_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6),
                                         HWSOCK_SCHEME_TCP6, &a), 0);
  cr_expect_eq(a.family, HWSOCK_AF_INET6);
  cr_expect_gt(hwsock_uri_format(&a, buf, sizeof(buf)), 0);
  cr_expect_str_eq(buf, "tcp6://[::ffff:192.0.2.1]:80");
  cr_expect_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6),
                                         HWSOCK_SCHEME_TCP, &a),
               HWSOCK_EAFNOSUPPORT);

  /* scope ids: the interface's name when there is one, else the number */
  cr_assert_eq(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr), 1);
  sin6.sin6_scope_id = if_nametoindex("lo");
  cr_assert_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6),
                                         HWSOCK_SCHEME_UDP6, &a), 0);
  cr_expect_str_eq(a.zone, "lo");
  sin6.sin6_scope_id = 4000000000u;
  cr_assert_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6),
                                         HWSOCK_SCHEME_UDP6, &a), 0);
  cr_expect_str_eq(a.zone, "4000000000");
  cr_expect_gt(hwsock_uri_format(&a, buf, sizeof(buf)), 0);
  cr_expect_str_eq(buf, "udp6://[fe80::1%254000000000]:80");
}

Test(uri, sockaddr_round_trip) {
  static const char *uris[] = {
      "tcp://192.0.2.7:80",         "udp://255.255.255.255:65535",
      "tcp6://[2001:db8::1]:443",   "udp6://[::ffff:10.0.0.1]:53",
      "udp6://[fe80::1%2542]:53",   "tcp6://[fe80::abcd%25lo]:9",
  };
  for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
    hwsock_addr a = parsed(uris[i], 0), b;
    struct sockaddr_storage ss;
    unsigned len;
    char buf[HWSOCK_URI_MAX + 1];
    cr_assert_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len), 0);
    cr_assert_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&ss, len,
                                           a.scheme, &b), 0);
    cr_expect_gt(hwsock_uri_format(&b, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf, uris[i]);
    cr_expect(memcmp(&a, &b, sizeof(a)) == 0, "%s", uris[i]);
  }
}

/* The conversions against the host's real sockets: bind to port 0 on
 * loopback, and read back the port the kernel chose. */
static void bind_and_name(const char *uri, int scheme) {
  hwsock_addr a = parsed(uri, P0), b;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  unsigned len;
  int fd;
  cr_assert_eq(hwsock_addr_to_sockaddr(&a, (struct sockaddr *)&ss, &len), 0);
  fd = socket(ss.ss_family, hwsock_scheme_socktype(scheme) == HWSOCK_SOCK_STREAM
                                ? SOCK_STREAM : SOCK_DGRAM, 0);
  cr_assert_geq(fd, 0);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    close(fd);
    cr_skip_test("cannot bind %s on this host", uri);
  }
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
  close(fd);
  cr_assert_eq(hwsock_addr_from_sockaddr((struct sockaddr *)&ss, sl, scheme, &b), 0);
  cr_expect_neq(b.port, 0);
  b.port = 0;
  cr_expect(memcmp(&a, &b, sizeof(a)) == 0, "%s", uri);
}

Test(uri, binds_loopback_v4) { bind_and_name("udp://127.0.0.1:0", HWSOCK_SCHEME_UDP); }
Test(uri, binds_loopback_v6) { bind_and_name("tcp6://[::1]:0", HWSOCK_SCHEME_TCP6); }

/* ---- embedded IPv4 ----------------------------------------------------- */

Test(uri, embedded_v4) {
  static const struct {
    const char *uri;
    int yes;
    uint8_t v4[4];
  } t[] = {
      {"tcp6://[::ffff:192.0.2.1]:1", 1, {192, 0, 2, 1}},
      {"tcp6://[::ffff:0.0.0.0]:1", 1, {0, 0, 0, 0}},
      {"tcp6://[::ffff:0.0.0.1]:1", 1, {0, 0, 0, 1}},
      {"tcp6://[::1.2.3.4]:1", 1, {1, 2, 3, 4}},
      {"tcp6://[::0.0.0.2]:1", 1, {0, 0, 0, 2}},
      {"tcp6://[::]:1", 0, {0}},
      {"tcp6://[::1]:1", 0, {0}},
      {"tcp6://[2001:db8::1]:1", 0, {0}},
      {"tcp6://[::ffff:0:1.2.3.4]:1", 0, {0}},   /* IPv4-translated */
      {"tcp6://[64:ff9b::1.2.3.4]:1", 0, {0}},   /* NAT64 prefix */
      {"tcp6://[::fffe:1.2.3.4]:1", 0, {0}},
      {"tcp6://[1::ffff:1.2.3.4]:1", 0, {0}},
      {"tcp://1.2.3.4:1", 0, {0}},               /* IPv4 itself is not v6 */
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    hwsock_addr a = parsed(t[i].uri, 0);
    uint8_t v4[4] = {0xaa, 0xaa, 0xaa, 0xaa};
    cr_expect_eq(hwsock_addr_embedded_v4(&a, v4), t[i].yes, "%s", t[i].uri);
    if (t[i].yes)
      cr_expect(memcmp(v4, t[i].v4, 4) == 0, "%s", t[i].uri);
    else
      cr_expect(memcmp(v4, "\xaa\xaa\xaa\xaa", 4) == 0, "%s: v4 written",
                t[i].uri);
    cr_expect_eq(hwsock_addr_embedded_v4(&a, NULL), t[i].yes, "%s", t[i].uri);
  }
  cr_expect_eq(hwsock_addr_embedded_v4(NULL, NULL), 0);
}
