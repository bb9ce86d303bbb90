/* wire_dump: prints every protocol constant, struct size and field offset of
 * the public headers, one "NAME VALUE" per line, so that
 * check_protocol_doc.py can hold docs/PROTOCOL.md to the headers.
 *
 * Keys:
 *   HWSOCK_X VALUE                    a constant (decimal)
 *   HWSOCK_F_X.bit N                  bit number of a feature bit
 *   HWSOCK_EX VALUE                   an error's wire value (positive)
 *   HWSOCK_EX.errno NAME              the host errno it maps to
 *   HWSOCK_EX.message TEXT            its message (rest of the line)
 *   sizeof(STRUCT) N                  a wire struct's size
 *   offsetof(STRUCT.FIELD) N          a field's offset
 *   sizeof(STRUCT.FIELD) N            a field's size (not for flexible
 *                                     array members, which have none)
 *
 * Uses only the headers: the error map comes from the HWSOCK_ERRNO_MAP
 * X-macro itself, so nothing is linked. */
#include <stddef.h>
#include <stdio.h>

#include "hwsock/common.h"
#include "hwsock/device.h"
#include "hwsock/loopback.h"
#include "hwsock/uri.h"
#include "hwsock/wire.h"

#define C(name) printf("%s %llu\n", #name, (unsigned long long)(name))

/* A feature bit: its value and its bit number. */
static void feature(const char *name, unsigned long long v) {
  unsigned bit = 0;
  while (bit < 64 && (v >> bit) != 1)
    bit++;
  printf("%s %llu\n%s.bit %u\n", name, v, name, bit);
}
#define FEATURE(name) feature(#name, (unsigned long long)(name))

#define SIZE(type) printf("sizeof(%s) %zu\n", #type, sizeof(type))
#define FIELD(type, f)                                                        \
  printf("offsetof(%s.%s) %zu\nsizeof(%s.%s) %zu\n", #type, #f,               \
         offsetof(type, f), #type, #f, sizeof(((type *)0)->f))
/* Flexible array member: an offset, no size. */
#define FLEX(type, f) printf("offsetof(%s.%s) %zu\n", #type, #f, offsetof(type, f))

static void errors(void) {
#define XX(name, val, host, msg)                                              \
  printf("HWSOCK_%s %d\nHWSOCK_%s.errno %s\nHWSOCK_%s.message %s\n", #name,   \
         val, #name, #host, #name, msg);
  HWSOCK_ERRNO_MAP(XX)
#undef XX
}

static void vring(void) {
  C(HWSOCK_VRING_DESC_F_NEXT);
  C(HWSOCK_VRING_DESC_F_WRITE);
  C(HWSOCK_VRING_DESC_F_INDIRECT);
  C(HWSOCK_VRING_AVAIL_F_NO_INTERRUPT);
  C(HWSOCK_VRING_USED_F_NO_NOTIFY);
  C(HWSOCK_VRING_MAX_SIZE);
  SIZE(hwsock_vring_desc);
  FIELD(hwsock_vring_desc, addr);
  FIELD(hwsock_vring_desc, len);
  FIELD(hwsock_vring_desc, flags);
  FIELD(hwsock_vring_desc, next);
  SIZE(hwsock_vring_avail);
  FIELD(hwsock_vring_avail, flags);
  FIELD(hwsock_vring_avail, idx);
  FLEX(hwsock_vring_avail, ring);
  SIZE(hwsock_vring_used_elem);
  FIELD(hwsock_vring_used_elem, id);
  FIELD(hwsock_vring_used_elem, len);
  SIZE(hwsock_vring_used);
  FIELD(hwsock_vring_used, flags);
  FIELD(hwsock_vring_used, idx);
  FLEX(hwsock_vring_used, ring);
}

static void device_config(void) {
  FEATURE(HWSOCK_F_TCP);
  FEATURE(HWSOCK_F_UDP);
  FEATURE(HWSOCK_F_INET6);
  FEATURE(HWSOCK_F_IPX);
  FEATURE(HWSOCK_F_INDIRECT_DESC);
  FEATURE(HWSOCK_F_EVENT_IDX);
  FEATURE(HWSOCK_F_VERSION_1);
  C(HWSOCK_CONFIG_MAGIC);
  C(HWSOCK_PROTOCOL_VERSION);
  C(HWSOCK_STATUS_ACKNOWLEDGE);
  C(HWSOCK_STATUS_DRIVER);
  C(HWSOCK_STATUS_DRIVER_OK);
  C(HWSOCK_STATUS_FEATURES_OK);
  C(HWSOCK_STATUS_NEEDS_RESET);
  C(HWSOCK_STATUS_FAILED);
  C(HWSOCK_RESET_NONE);
  C(HWSOCK_RESET_AVAIL_IDX);
  C(HWSOCK_RESET_HEAD_INDEX);
  C(HWSOCK_RESET_NEXT_INDEX);
  C(HWSOCK_RESET_CHAIN_LOOP);
  C(HWSOCK_RESET_CHAIN_SEGS);
  C(HWSOCK_RESET_CHAIN_IOVECS);
  C(HWSOCK_RESET_CHAIN_LEN);
  C(HWSOCK_RESET_BUFFER);
  C(HWSOCK_RESET_READ_AFTER_WRITE);
  C(HWSOCK_RESET_INDIRECT_NOT_NEGOTIATED);
  C(HWSOCK_RESET_INDIRECT_WITH_NEXT);
  C(HWSOCK_RESET_INDIRECT_LEN);
  C(HWSOCK_RESET_INDIRECT_ENTRIES);
  C(HWSOCK_RESET_INDIRECT_REGION);
  C(HWSOCK_RESET_INDIRECT_NEXT_INDEX);
  C(HWSOCK_RESET_INDIRECT_LOOP);
  C(HWSOCK_RESET_INDIRECT_NESTED);
  C(HWSOCK_RESET_MAX_);
  SIZE(hwsock_wire_config);
  FIELD(hwsock_wire_config, magic);
  FIELD(hwsock_wire_config, protocol_version);
  FIELD(hwsock_wire_config, device_features);
  FIELD(hwsock_wire_config, num_queues);
  FIELD(hwsock_wire_config, max_queue_size);
  FIELD(hwsock_wire_config, max_sockets);
  FIELD(hwsock_wire_config, max_inflight);
  FIELD(hwsock_wire_config, max_uri_len);
  FIELD(hwsock_wire_config, max_io_len);
  FIELD(hwsock_wire_config, max_chain_segs);
  FIELD(hwsock_wire_config, reserved);
}

static void requests(void) {
  C(HWSOCK_OP_OPEN);
  C(HWSOCK_OP_CONNECT);
  C(HWSOCK_OP_BIND);
  C(HWSOCK_OP_LISTEN);
  C(HWSOCK_OP_ACCEPT);
  C(HWSOCK_OP_SEND);
  C(HWSOCK_OP_RECV);
  C(HWSOCK_OP_SHUTDOWN);
  C(HWSOCK_OP_CLOSE);
  C(HWSOCK_OP_GETSOCKOPT);
  C(HWSOCK_OP_SETSOCKOPT);
  C(HWSOCK_OP_GETNAME);
  C(HWSOCK_OP_NEGOTIATE);
  C(HWSOCK_OP_MAX_);
  C(HWSOCK_AF_INET);
  C(HWSOCK_AF_INET6);
  C(HWSOCK_AF_IPX);
  C(HWSOCK_SOCK_STREAM);
  C(HWSOCK_SOCK_DGRAM);
  C(HWSOCK_SHUT_RD);
  C(HWSOCK_SHUT_WR);
  C(HWSOCK_SHUT_RDWR);
  C(HWSOCK_RECV_PEEK);
  C(HWSOCK_RECV_WAITALL);
  C(HWSOCK_SEND_MORE);
  C(HWSOCK_RESP_F_EOF);
  C(HWSOCK_RESP_F_TRUNC);
  C(HWSOCK_SOL_IP);
  C(HWSOCK_SOL_SOCKET);
  C(HWSOCK_SOL_TCP);
  C(HWSOCK_SOL_IPV6);
  C(HWSOCK_SO_REUSEADDR);
  C(HWSOCK_SO_ERROR);
  C(HWSOCK_SO_BROADCAST);
  C(HWSOCK_SO_SNDBUF);
  C(HWSOCK_SO_RCVBUF);
  C(HWSOCK_SO_KEEPALIVE);
  C(HWSOCK_SO_LINGER);
  C(HWSOCK_SOCKOPT_MAX);
  C(HWSOCK_TCP_NODELAY);
  C(HWSOCK_TCP_KEEPIDLE);
  C(HWSOCK_TCP_KEEPINTVL);
  C(HWSOCK_TCP_KEEPCNT);
  C(HWSOCK_TCP_INFO);
  C(HWSOCK_IP_TOS);
  C(HWSOCK_IPV6_V6ONLY);
  C(HWSOCK_IPV6_TCLASS);
  C(HWSOCK_URI_AREA_MIN);
  C(HWSOCK_URI_MAX);
  C(HWSOCK_ZONE_MAX);
  SIZE(hwsock_req_hdr);
  FIELD(hwsock_req_hdr, opcode);
  FIELD(hwsock_req_hdr, flags);
  FIELD(hwsock_req_hdr, sock_id);
  FIELD(hwsock_req_hdr, tag);
  FIELD(hwsock_req_hdr, arg0);
  FIELD(hwsock_req_hdr, arg1);
  FIELD(hwsock_req_hdr, uri_len);
  FIELD(hwsock_req_hdr, reserved);
  SIZE(hwsock_resp_hdr);
  FIELD(hwsock_resp_hdr, status);
  FIELD(hwsock_resp_hdr, len);
  FIELD(hwsock_resp_hdr, tag);
  FIELD(hwsock_resp_hdr, flags);
  FIELD(hwsock_resp_hdr, uri_len);
  FIELD(hwsock_resp_hdr, val);
  FIELD(hwsock_resp_hdr, reserved);
}

static void limits(void) {
  C(HWSOCK_MAX_QUEUES);
  C(HWSOCK_MAX_REGIONS);
  C(HWSOCK_MAX_BACKENDS);
  C(HWSOCK_MAX_SOCKETS_LIMIT);
  C(HWSOCK_MAX_INFLIGHT_LIMIT);
  C(HWSOCK_MAX_IO_LEN_LIMIT);
  C(HWSOCK_MAX_CHAIN_SEGS_LIMIT);
  C(HWSOCK_DEFAULT_QUEUES);
  C(HWSOCK_DEFAULT_QUEUE_SIZE);
  C(HWSOCK_DEFAULT_MAX_SOCKETS);
  C(HWSOCK_DEFAULT_MAX_INFLIGHT);
  C(HWSOCK_DEFAULT_MAX_IO_LEN);
  C(HWSOCK_DEFAULT_MAX_CHAIN_SEGS);
  C(HWSOCK_DEFAULT_MAX_REGIONS);
  C(HWSOCK_DEFAULT_KICK_BUDGET);
  C(HWSOCK_MAX_KICK_BUDGET);
}

static void loopback(void) {
  C(HWSOCK_LB_VERSION);
  C(HWSOCK_LB_MAX_FDS);
  C(HWSOCK_LB_HELLO);
  C(HWSOCK_LB_FEATURES);
  C(HWSOCK_LB_QUEUE);
  C(HWSOCK_LB_START);
  C(HWSOCK_LB_RESET);
  C(HWSOCK_LB_NEEDS_RESET);
  SIZE(hwsock_lb_msg);
  FIELD(hwsock_lb_msg, type);
  FIELD(hwsock_lb_msg, status);
  FIELD(hwsock_lb_msg, a);
  FIELD(hwsock_lb_msg, b);
  FIELD(hwsock_lb_msg, c);
  FIELD(hwsock_lb_msg, d);
  FIELD(hwsock_lb_msg, e);
  FIELD(hwsock_lb_msg, config);
  FIELD(hwsock_lb_msg, reserved);
}

/* The event queue (PROTOCOL.md §16). */
static void events(void) {
  FEATURE(HWSOCK_F_EVENT_QUEUE);
  FEATURE(HWSOCK_F_SOFT_ERRORS);
  C(HWSOCK_OP_CREDIT);
  C(HWSOCK_WATCH_ACCEPT);
  C(HWSOCK_WATCH_WRITE);
  C(HWSOCK_EV_DATA);
  C(HWSOCK_EV_ACCEPTABLE);
  C(HWSOCK_EV_WRITABLE);
  C(HWSOCK_EV_ERROR);
  C(HWSOCK_EV_CONNECTED);
  C(HWSOCK_EV_CONNECT_FAILED);
  C(HWSOCK_EV_HUP);
  C(HWSOCK_EV_F_EOF);
  C(HWSOCK_EV_F_TRUNC);
  C(HWSOCK_EV_F_SOFT);
  C(HWSOCK_EV_BUF_MIN);
  C(HWSOCK_EV_URI_AREA);
  C(HWSOCK_CREDIT_MAX);
  SIZE(hwsock_event);
  FIELD(hwsock_event, sock_id);
  FIELD(hwsock_event, type);
  FIELD(hwsock_event, flags);
  FIELD(hwsock_event, len);
  FIELD(hwsock_event, status);
  FIELD(hwsock_event, uri_len);
  FIELD(hwsock_event, val);
  FIELD(hwsock_event, window);
  FIELD(hwsock_event, reserved);
}

int main(void) {
  events();
  vring();
  device_config();
  requests();
  errors();
  limits();
  loopback();
  return ferror(stdout) ? 1 : 0;
}
