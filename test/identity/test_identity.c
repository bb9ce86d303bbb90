/* Stream identity (docs/IDENTITY.md): the PROXY v2 header's exact bytes as
 * HAProxy's proxy-protocol.txt lays them out, its HMAC, the key file rules,
 * the policy key, and the tcp backend putting the header on the wire before
 * any guest byte (real loopback peers, the module loaded by path). */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hwsock/backend.h"
#include "hwsock/identity.h"
#include "hwsock/policy.h"
#include "proxy_v2.h"
#include "support/backend_harness.h"
#include "support/loopback_sock.h"

#define TCP_SO HWSOCK_BUILD_BACKEND_DIR "/tcp.so"

static const uint8_t KEY[] = "0123456789abcdef0123456789abcdef"; /* 32 bytes */

static hwsock_identity ident(int with_key) {
  hwsock_identity id;
  memset(&id, 0, sizeof(id));
  id.size = sizeof(id);
  id.name = "vm-test";
  if (with_key) {
    id.key = KEY;
    id.key_len = 32;
  }
  return id;
}

static struct sockaddr_in sin_of(const char *ip, uint16_t port) {
  struct sockaddr_in s;
  memset(&s, 0, sizeof(s));
  s.sin_family = AF_INET;
  s.sin_port = htons(port);
  cr_assert_eq(inet_pton(AF_INET, ip, &s.sin_addr), 1);
  return s;
}

static struct sockaddr_in6 sin6_of(const char *ip, uint16_t port) {
  struct sockaddr_in6 s;
  memset(&s, 0, sizeof(s));
  s.sin6_family = AF_INET6;
  s.sin6_port = htons(port);
  cr_assert_eq(inet_pton(AF_INET6, ip, &s.sin6_addr), 1);
  return s;
}

static const uint8_t UID[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                8, 9, 10, 11, 12, 13, 14, 15};

#define SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
#define NAME_TLV 0xE0, 0x00, 0x07, 'v', 'm', '-', 't', 'e', 's', 't'
#define UID_TLV 0x05, 0x00, 0x10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15

/* ---- the header's bytes ---------------------------------------------------- */

Test(pp2, ipv4_header_bytes_are_the_specs) {
  /* The HMAC is Python's hmac.new(KEY, header_with_zeroed_mac, sha256) of
   * these bytes, computed outside this code. */
  static const uint8_t want[] = {
      SIG, 0x21, 0x11, 0x00, 0x4c,
      192, 0, 2, 1, 198, 51, 100, 7, 0xc0, 0x00, 0x01, 0xbb,
      NAME_TLV, UID_TLV, 0xE1, 0x00, 0x20,
      0x76, 0xd9, 0x08, 0x79, 0xd3, 0x5a, 0x20, 0x06, 0x94, 0x0d, 0xf8,
      0xd4, 0xfc, 0x30, 0x10, 0x01, 0x09, 0xe1, 0x42, 0xbc, 0x92, 0xfb,
      0x0f, 0xa8, 0x35, 0xc5, 0xcd, 0xaa, 0x34, 0x06, 0x2c, 0x2b};
  struct sockaddr_in s = sin_of("192.0.2.1", 49152),
                     d = sin_of("198.51.100.7", 443);
  hwsock_identity id = ident(1);
  uint8_t out[HWSOCK__PP2_MAX];
  int n = hwsock__pp2_build((struct sockaddr *)&s, (struct sockaddr *)&d, &id,
                            UID, out, sizeof(out));
  cr_assert_eq(n, (int)sizeof(want));
  cr_assert_arr_eq(out, want, sizeof(want));
}

Test(pp2, ipv6_header_bytes_are_the_specs) {
  static const uint8_t want[] = {
      SIG, 0x21, 0x21, 0x00, 0x64,
      0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
      0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0x07,
      0x9c, 0x40, 0x20, 0xfb,
      NAME_TLV, UID_TLV, 0xE1, 0x00, 0x20,
      0x5f, 0xe7, 0x87, 0xca, 0x82, 0x13, 0x9d, 0x43, 0xda, 0xb1, 0x57,
      0xc7, 0x0a, 0xdf, 0x4e, 0xdd, 0x96, 0xe4, 0x39, 0x71, 0xe2, 0x8c,
      0xb3, 0xe4, 0x44, 0x4b, 0xab, 0x61, 0x2a, 0x01, 0xab, 0x73};
  struct sockaddr_in6 s = sin6_of("2001:db8::1", 40000),
                      d = sin6_of("2001:db8::2:7", 8443);
  hwsock_identity id = ident(1);
  uint8_t out[HWSOCK__PP2_MAX];
  int n = hwsock__pp2_build((struct sockaddr *)&s, (struct sockaddr *)&d, &id,
                            UID, out, sizeof(out));
  cr_assert_eq(n, (int)sizeof(want));
  cr_assert_arr_eq(out, want, sizeof(want));
}

Test(pp2, without_a_key_there_is_no_hmac_tlv) {
  static const uint8_t want[] = {SIG, 0x21, 0x11, 0x00, 0x29,
                                 127, 0, 0, 1, 127, 0, 0, 2, 0x30, 0x39,
                                 0x00, 0x50, NAME_TLV, UID_TLV};
  struct sockaddr_in s = sin_of("127.0.0.1", 12345), d = sin_of("127.0.0.2", 80);
  hwsock_identity id = ident(0);
  uint8_t out[HWSOCK__PP2_MAX];
  int n = hwsock__pp2_build((struct sockaddr *)&s, (struct sockaddr *)&d, &id,
                            UID, out, sizeof(out));
  cr_assert_eq(n, (int)sizeof(want));
  cr_assert_arr_eq(out, want, sizeof(want));
}

Test(pp2, bad_inputs_are_refused) {
  struct sockaddr_in s = sin_of("127.0.0.1", 1);
  struct sockaddr_in6 d = sin6_of("::1", 2);
  hwsock_identity id = ident(1);
  uint8_t out[HWSOCK__PP2_MAX];
  cr_assert_eq(hwsock__pp2_build((struct sockaddr *)&s, (struct sockaddr *)&d,
                                 &id, UID, out, sizeof(out)),
               HWSOCK_EINVAL, "mixed families");
  cr_assert_eq(hwsock__pp2_build((struct sockaddr *)&s, (struct sockaddr *)&s,
                                 &id, UID, out, sizeof(out) - 1),
               HWSOCK_EINVAL, "short buffer");
  char longname[HWSOCK_IDENTITY_NAME_MAX + 2];
  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  id.name = longname;
  cr_assert_eq(hwsock__pp2_build((struct sockaddr *)&s, (struct sockaddr *)&s,
                                 &id, UID, out, sizeof(out)),
               HWSOCK_EINVAL, "name too long");
  longname[HWSOCK_IDENTITY_NAME_MAX] = '\0'; /* the longest name fits */
  cr_assert_gt(hwsock__pp2_build((struct sockaddr *)&s, (struct sockaddr *)&s,
                                 &id, UID, out, sizeof(out)), 0);
  id.name = "a\nb";
  cr_assert_eq(hwsock_identity_check(&id), HWSOCK_EINVAL, "control character");
  id.name = "vm";
  id.key_len = HWSOCK_IDENTITY_KEY_MIN - 1;
  cr_assert_eq(hwsock_identity_check(&id), HWSOCK_EINVAL, "short key");
}

/* ---- reading a header as a server would ---------------------------------- */

typedef struct parsed {
  int family; /* AF_INET / AF_INET6 */
  uint8_t src[16], dst[16];
  uint16_t sport, dport;
  char name[HWSOCK_IDENTITY_NAME_MAX + 1];
  int has_uid, has_mac;
  uint8_t uid[16];
  size_t mac_at; /* offset of the HMAC value */
} parsed;

/* Walks the header in h[n] (its exact length), failing on anything the
 * spec does not allow. */
static void parse(const uint8_t *h, size_t n, parsed *p) {
  static const uint8_t sig[12] = {SIG};
  memset(p, 0, sizeof(*p));
  cr_assert_geq(n, 16);
  cr_assert_arr_eq(h, sig, 12);
  cr_assert_eq(h[12], 0x21, "version 2, PROXY");
  cr_assert_eq((size_t)(h[14] << 8 | h[15]), n - 16, "length");
  size_t off = 16;
  if (h[13] == 0x11) {
    p->family = AF_INET;
    memcpy(p->src, h + 16, 4);
    memcpy(p->dst, h + 20, 4);
    p->sport = (uint16_t)(h[24] << 8 | h[25]);
    p->dport = (uint16_t)(h[26] << 8 | h[27]);
    off += 12;
  } else {
    cr_assert_eq(h[13], 0x21, "TCP over IPv6");
    p->family = AF_INET6;
    memcpy(p->src, h + 16, 16);
    memcpy(p->dst, h + 32, 16);
    p->sport = (uint16_t)(h[48] << 8 | h[49]);
    p->dport = (uint16_t)(h[50] << 8 | h[51]);
    off += 36;
  }
  int last_was_mac = 0;
  while (off < n) {
    cr_assert_leq(off + 3, n, "TLV header inside the header");
    size_t len = (size_t)(h[off + 1] << 8 | h[off + 2]);
    cr_assert_leq(off + 3 + len, n, "TLV value inside the header");
    const uint8_t *v = h + off + 3;
    last_was_mac = 0;
    switch (h[off]) {
    case HWSOCK_PP2_TYPE_VM_NAME:
      cr_assert(len >= 1 && len <= HWSOCK_IDENTITY_NAME_MAX);
      memcpy(p->name, v, len);
      break;
    case HWSOCK_PP2_TYPE_UNIQUE_ID:
      cr_assert_eq(len, 16);
      memcpy(p->uid, v, 16);
      p->has_uid = 1;
      break;
    case HWSOCK_PP2_TYPE_HMAC:
      cr_assert_eq(len, 32);
      p->has_mac = 1;
      p->mac_at = off + 3;
      last_was_mac = 1;
      break;
    default:
      cr_assert_fail("unexpected TLV type 0x%02x", h[off]);
    }
    off += 3 + len;
  }
  cr_assert(!p->has_mac || last_was_mac, "the HMAC TLV comes last");
}

/* What a server holding the key does: zero the value, HMAC, compare. */
static int mac_ok(const uint8_t *h, size_t n, const parsed *p,
                  const uint8_t *key, size_t klen) {
  uint8_t copy[HWSOCK__PP2_MAX], mac[EVP_MAX_MD_SIZE];
  unsigned mlen = 0;
  cr_assert_leq(n, sizeof(copy));
  memcpy(copy, h, n);
  memset(copy + p->mac_at, 0, 32);
  cr_assert_not_null(HMAC(EVP_sha256(), key, (int)klen, copy, n, mac, &mlen));
  return mlen == 32 && memcmp(mac, h + p->mac_at, 32) == 0;
}

Test(pp2, tlv_layout_and_hmac_verify_and_a_flipped_byte_fails) {
  struct sockaddr_in6 s = sin6_of("2001:db8::1", 40000),
                      d = sin6_of("2001:db8::2:7", 8443);
  hwsock_identity id = ident(1);
  uint8_t h[HWSOCK__PP2_MAX];
  int n = hwsock__pp2_build((struct sockaddr *)&s, (struct sockaddr *)&d, &id,
                            UID, h, sizeof(h));
  cr_assert_gt(n, 0);
  parsed p;
  parse(h, (size_t)n, &p);
  cr_assert_eq(p.family, AF_INET6);
  cr_assert_arr_eq(p.src, &s.sin6_addr, 16);
  cr_assert_eq(p.dport, 8443);
  cr_assert_str_eq(p.name, "vm-test");
  cr_assert(p.has_uid && p.has_mac);
  cr_assert(mac_ok(h, (size_t)n, &p, KEY, 32), "the HMAC verifies");
  cr_assert(!mac_ok(h, (size_t)n, &p, (const uint8_t *)"another key, 32 bytes long.....", 32),
            "another key does not verify");
  /* Every byte outside the HMAC value is covered. */
  for (int i = 0; i < n; i++) {
    if ((size_t)i >= p.mac_at && (size_t)i < p.mac_at + 32)
      continue;
    h[i] ^= 0x01;
    cr_assert(!mac_ok(h, (size_t)n, &p, KEY, 32), "byte %d flipped", i);
    h[i] ^= 0x01;
  }
  h[p.mac_at + 5] ^= 0x80;
  cr_assert(!mac_ok(h, (size_t)n, &p, KEY, 32), "a flipped HMAC byte fails");
}

/* ---- the key file ----------------------------------------------------------- */

static char keydir[64];

static void keydir_setup(void) {
  strcpy(keydir, "/tmp/hwsock-idkey.XXXXXX");
  cr_assert_not_null(mkdtemp(keydir));
}

static void write_file(const char *path, const void *data, size_t n,
                       mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, data, n), (ssize_t)n);
  cr_assert_eq(fchmod(fd, mode), 0);
  close(fd);
}

TestSuite(key, .init = keydir_setup);

Test(key, owner_only_file_loads_exactly) {
  char path[128], err[256];
  snprintf(path, sizeof(path), "%s/k", keydir);
  write_file(path, "0123456789abcdef\n", 17, 0600);
  uint8_t key[HWSOCK_IDENTITY_KEY_MAX];
  size_t len = 0;
  cr_assert_eq(hwsock_identity_load_key(path, key, sizeof(key), &len, err,
                                        sizeof(err)), 0, "%s", err);
  cr_assert_eq(len, 17, "the file's exact bytes, newline included");
  cr_assert_arr_eq(key, "0123456789abcdef\n", 17);
  unlink(path);
  rmdir(keydir);
}

Test(key, group_or_world_access_symlinks_and_sizes_are_refused) {
  char path[128], link[128], err[256];
  uint8_t key[HWSOCK_IDENTITY_KEY_MAX], big[HWSOCK_IDENTITY_KEY_MAX + 1];
  size_t len = 0;
  snprintf(path, sizeof(path), "%s/g", keydir);
  write_file(path, KEY, 32, 0640);
  cr_assert_eq(hwsock_identity_load_key(path, key, sizeof(key), &len, err,
                                        sizeof(err)), HWSOCK_EACCES);
  cr_assert(strstr(err, "group or others") != NULL, "%s", err);
  cr_assert_eq(chmod(path, 0604), 0);
  cr_assert_eq(hwsock_identity_load_key(path, key, sizeof(key), &len, err,
                                        sizeof(err)), HWSOCK_EACCES);
  cr_assert_eq(chmod(path, 0600), 0);
  cr_assert_eq(hwsock_identity_load_key(path, key, sizeof(key), &len, err,
                                        sizeof(err)), 0);
  snprintf(link, sizeof(link), "%s/l", keydir);
  cr_assert_eq(symlink(path, link), 0);
  cr_assert_lt(hwsock_identity_load_key(link, key, sizeof(key), &len, err,
                                        sizeof(err)), 0, "a symlink");
  cr_assert(strstr(err, "symbolic link") != NULL, "%s", err);
  unlink(link);
  unlink(path);
  write_file(path, KEY, HWSOCK_IDENTITY_KEY_MIN - 1, 0600);
  cr_assert_eq(hwsock_identity_load_key(path, key, sizeof(key), &len, err,
                                        sizeof(err)), HWSOCK_EINVAL, "too short");
  unlink(path);
  memset(big, 'k', sizeof(big));
  write_file(path, big, sizeof(big), 0600);
  cr_assert_eq(hwsock_identity_load_key(path, key, sizeof(key), &len, err,
                                        sizeof(err)), HWSOCK_EINVAL, "too long");
  unlink(path);
  cr_assert_eq(hwsock_identity_load_key(keydir, key, sizeof(key), &len, err,
                                        sizeof(err)), HWSOCK_EINVAL, "a folder");
  rmdir(keydir);
}

/* ---- the policy key ---------------------------------------------------------- */

static int load(const char *yaml, hwsock_policy **p, char *err, size_t n) {
  return hwsock_policy_load_string(yaml, strlen(yaml), "t.yaml", p, err, n);
}

Test(policy, identity_proxy_v2_is_read_per_rule) {
  hwsock_policy *p = NULL;
  char err[256] = "";
  cr_assert_eq(load("version: 1\nrules:\n"
                    "  - {action: offload, scheme: [tcp, tcp6], ports: 80,\n"
                    "     identity: proxy-v2}\n"
                    "  - {action: offload, scheme: tcp, identity: none}\n"
                    "  - {action: offload}\n",
                    &p, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(hwsock_policy_rule_identity(p, 0), HWSOCK_IDENTITY_PROXY_V2);
  cr_assert_eq(hwsock_policy_rule_identity(p, 1), HWSOCK_IDENTITY_NONE);
  cr_assert_eq(hwsock_policy_rule_identity(p, 2), HWSOCK_IDENTITY_NONE);
  cr_assert_eq(hwsock_policy_rule_identity(p, -1), HWSOCK_IDENTITY_NONE);
  cr_assert_eq(hwsock_policy_rule_identity(p, 3), HWSOCK_IDENTITY_NONE);
  hwsock_addr a;
  cr_assert_eq(hwsock_uri_parse("tcp://127.0.0.1:80", 18, 0, &a, NULL), 0);
  hwsock_verdict v;
  hwsock_policy_decide(p, &a, HWSOCK_DIR_OUTBOUND, HWSOCK_OP_CONNECT, &v);
  cr_assert_eq(v.rule, 0);
  hwsock_policy_free(p);
}

Test(policy, identity_only_where_it_can_be_kept) {
  static const struct {
    const char *yaml, *msg;
  } bad[] = {
      {"version: 1\nrules:\n  - {action: offload, identity: proxy-v2}\n", "needs 'scheme"},
      {"version: 1\nrules:\n  - {action: offload, scheme: [tcp, udp], identity: proxy-v2}\n",
       "UDP and IPX"},
      {"version: 1\nrules:\n  - {action: deny, scheme: tcp, identity: proxy-v2}\n",
       "only to action: offload"},
      {"version: 1\nrules:\n  - {action: offload, scheme: tcp, direction: inbound,\n"
       "     identity: proxy-v2}\n", "outbound"},
      {"version: 1\nrules:\n  - {action: offload, scheme: tcp, identity: proxy-v1}\n",
       "proxy-v2 or none"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    hwsock_policy *p = NULL;
    char err[256] = "";
    cr_assert_eq(load(bad[i].yaml, &p, err, sizeof(err)), HWSOCK_EBADCONFIG,
                 "case %zu loads", i);
    cr_assert(strstr(err, bad[i].msg) != NULL, "case %zu: %s", i, err);
    char where[16];
    snprintf(where, sizeof(where), "t.yaml:%d:", i == 3 ? 4 : 3);
    cr_assert(strstr(err, where) != NULL, "case %zu: %s", i, err);
  }
}

/* ---- the tcp backend ---------------------------------------------------------- */

TestSuite(tcp_identity, .init = NULL, .timeout = 60);

static int plain_listener(int family, uint16_t *port) {
  int fd = loopback_socket(family, SOCK_STREAM, port);
  cr_assert_eq(listen(fd, 8), 0);
  return fd;
}

static int plain_accept(int lfd) {
  struct pollfd p = {.fd = lfd, .events = POLLIN};
  cr_assert_eq(poll(&p, 1, 5000), 1, "a connection arrives");
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  cr_assert_geq(fd, 0);
  return fd;
}

static void read_exact(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "data arrives (%zu of %zu)", got, n);
    ssize_t k = read(fd, (char *)buf + got, n - got);
    cr_assert_gt(k, 0, "read: %zd (%s)", k, strerror(errno));
    got += (size_t)k;
  }
}

/* Reads one PROXY v2 header off fd (16 bytes, then the length they say). */
static size_t read_header(int fd, uint8_t *h) {
  read_exact(fd, h, 16);
  size_t len = (size_t)(h[14] << 8 | h[15]);
  cr_assert_leq(16 + len, HWSOCK__PP2_MAX);
  read_exact(fd, h + 16, len);
  return 16 + len;
}

/* The guest's CONNECT with the identity, a SEND submitted behind it before
 * it completes (so it must wait for the header), and what the server reads:
 * the header with the names the server sees, then the guest's bytes. */
static void connect_with_identity(int family, int scheme) {
  bh_setup_instance(TCP_SO);
  uint16_t port;
  int lfd = plain_listener(family, &port);
  void *s = bh_open(bh.inst, scheme);
  hwsock_identity id = ident(1);
  /* What a hostile guest sends first: a PROXY header of its own. */
  static const uint8_t forged[] = {SIG, 0x21, 0x11, 0x00, 0x0c, 10, 0, 0, 1,
                                   10, 0, 0, 2, 0, 1, 0, 2};
  bh_req c, snd;
  bh_req_init(&c, HWSOCK_OP_CONNECT, scheme);
  c.addr = loopback_addr(scheme, port);
  c.br.addr = &c.addr;
  c.br.identity = &id;
  bh.ops->submit(s, &c.br);
  bh_req_init(&snd, HWSOCK_OP_SEND, scheme);
  bh_set_iov(&snd, 2, (void *)forged, sizeof(forged), "GET /", (size_t)5);
  bh.ops->submit(s, &snd.br);
  BH_RUN_UNTIL(snd.ncomplete);
  bh_expect_done(&c, 0);
  bh_expect_done(&snd, 0);
  cr_assert_gt(c.br.prefix_len, 0, "the CONNECT reports the header");
  uint8_t reported[HWSOCK__PP2_MAX];
  size_t rlen = c.br.prefix_len;
  memcpy(reported, c.br.prefix, rlen);

  int peer = plain_accept(lfd);
  uint8_t h[HWSOCK__PP2_MAX];
  size_t n = read_header(peer, h);
  cr_assert_eq(n, rlen);
  cr_assert_arr_eq(h, reported, n, "the reported bytes are the wire's");
  parsed p;
  parse(h, n, &p);
  /* The addresses are the connection's as the server knows it. */
  struct sockaddr_storage cli, srv;
  socklen_t cl = sizeof(cli), sl = sizeof(srv);
  cr_assert_eq(getpeername(peer, (struct sockaddr *)&cli, &cl), 0);
  cr_assert_eq(getsockname(peer, (struct sockaddr *)&srv, &sl), 0);
  cr_assert_eq(p.family, family);
  if (family == AF_INET) {
    cr_assert_arr_eq(p.src, &((struct sockaddr_in *)&cli)->sin_addr, 4);
    cr_assert_arr_eq(p.dst, &((struct sockaddr_in *)&srv)->sin_addr, 4);
  } else {
    cr_assert_arr_eq(p.src, &((struct sockaddr_in6 *)&cli)->sin6_addr, 16);
    cr_assert_arr_eq(p.dst, &((struct sockaddr_in6 *)&srv)->sin6_addr, 16);
  }
  cr_assert_eq(p.sport, loopback_port_of(&cli));
  cr_assert_eq(p.dport, port);
  cr_assert_str_eq(p.name, "vm-test");
  cr_assert(p.has_uid && p.has_mac);
  cr_assert(mac_ok(h, n, &p, KEY, 32));
  /* Then the guest's bytes, its forged header among them, as data. */
  uint8_t data[sizeof(forged) + 5];
  read_exact(peer, data, sizeof(data));
  cr_assert_arr_eq(data, forged, sizeof(forged));
  cr_assert_arr_eq(data + sizeof(forged), "GET /", 5);

  bh.ops->close(s);
  close(peer);
  close(lfd);
  bh_teardown_instance();
}

Test(tcp_identity, v4_header_goes_first_even_before_a_pipelined_send) {
  connect_with_identity(AF_INET, HWSOCK_SCHEME_TCP);
}

Test(tcp_identity, v6_header_goes_first_even_before_a_pipelined_send) {
  connect_with_identity(AF_INET6, HWSOCK_SCHEME_TCP6);
}

Test(tcp_identity, every_connection_gets_its_own_unique_id) {
  bh_setup_instance(TCP_SO);
  uint16_t port;
  int lfd = plain_listener(AF_INET, &port);
  hwsock_identity id = ident(0);
  uint8_t uids[2][16];
  for (int i = 0; i < 2; i++) {
    void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
    bh_req c;
    bh_req_init(&c, HWSOCK_OP_CONNECT, HWSOCK_SCHEME_TCP);
    c.addr = loopback_addr(HWSOCK_SCHEME_TCP, port);
    c.br.addr = &c.addr;
    c.br.identity = &id;
    bh.ops->submit(s, &c.br);
    BH_RUN_UNTIL(c.ncomplete);
    bh_expect_done(&c, 0);
    int peer = plain_accept(lfd);
    /* Nobody sends: the header goes out on its own once connected. */
    uint8_t h[HWSOCK__PP2_MAX];
    parsed p;
    size_t n = 0;
    for (int tries = 0; n == 0; tries++) {
      struct pollfd pf = {.fd = peer, .events = POLLIN};
      cr_assert_lt(tries, 1000, "the header arrives within ~10 s");
      uv_run(&bh.loop, UV_RUN_NOWAIT);
      if (poll(&pf, 1, 10) == 1)
        n = read_header(peer, h);
    }
    parse(h, n, &p);
    cr_assert(p.has_uid && !p.has_mac, "no key: no HMAC TLV");
    memcpy(uids[i], p.uid, 16);
    bh.ops->close(s);
    close(peer);
  }
  cr_assert(memcmp(uids[0], uids[1], 16) != 0, "two connections, two ids");
  close(lfd);
  bh_teardown_instance();
}

Test(tcp_identity, a_connect_without_identity_sends_nothing_of_its_own) {
  bh_setup_instance(TCP_SO);
  uint16_t port;
  int lfd = plain_listener(AF_INET, &port);
  void *s = bh_open(bh.inst, HWSOCK_SCHEME_TCP);
  bh_req c;
  bh_req_init(&c, HWSOCK_OP_CONNECT, HWSOCK_SCHEME_TCP);
  c.addr = loopback_addr(HWSOCK_SCHEME_TCP, port);
  c.br.addr = &c.addr;
  bh.ops->submit(s, &c.br);
  BH_RUN_UNTIL(c.ncomplete);
  bh_expect_done(&c, 0);
  cr_assert_eq(c.br.prefix_len, 0);
  cr_assert_eq(bh_run_send(s, HWSOCK_SCHEME_TCP, "hi", 2, NULL), 0);
  int peer = plain_accept(lfd);
  char got[2];
  read_exact(peer, got, 2);
  cr_assert_arr_eq(got, "hi", 2);
  cr_assert(bh.ops->flags & HWSOCK_BACKEND_F_IDENTITY, "tcp promises it");
  bh.ops->close(s);
  close(peer);
  close(lfd);
  bh_teardown_instance();
}
