/* The adversarial guest's raw side: a loopback attachment (PROTOCOL.md §14)
 * whose rings and requests are written by hand (test/support's vring
 * builder over the VMM's shared memory), never through the guest driver.
 *
 * Every wait is bounded (ADV_WAIT_MS); a failed expectation prints one line
 * naming the case and what was seen, and the case returns -1. */
#ifndef HWSOCK_TEST_ADV_H
#define HWSOCK_TEST_ADV_H

#include <stdint.h>
#include <stdio.h>

#include "hwsock/loopback.h"
#include "hwsock/wire.h"
#include "support/vring_builder.h"

#define ADV_MAXQ 4
#define ADV_WAIT_MS 5000
/* The features of a well-behaved driver (and the default of adv_setup). */
#define ADV_FEATURES                                                         \
  (HWSOCK_F_VERSION_1 | HWSOCK_F_EVENT_IDX | HWSOCK_F_INDIRECT_DESC |      \
   HWSOCK_F_TCP | HWSOCK_F_UDP)

typedef struct adv_done {
  uint8_t valid;
  uint32_t len;
} adv_done;

typedef struct adv {
  int sock;
  uint8_t *mem;
  size_t size;
  uint64_t gpa;
  unsigned nq;
  int kick[ADV_MAXQ], call[ADV_MAXQ];
  hwsock_wire_config cfg;
  vrb q[ADV_MAXQ];
  int reset_code;   /* a NEEDS_RESET's code once seen, else -1 */
  adv_done done[ADV_MAXQ][HWSOCK_VRING_MAX_SIZE]; /* reaped, by head */
  uint64_t resp[ADV_MAXQ][HWSOCK_VRING_MAX_SIZE]; /* response gpa, by head */
} adv;

/* Ports the cases use (argv): an echo server and a listener the policy
 * denies, both on 127.0.0.1 and both counted by the harness. */
extern unsigned adv_echo_port, adv_deny_port;
extern const char *adv_vmm_path;

#define ADV_FAIL(...)                                                        \
  do {                                                                       \
    fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__);                     \
    fprintf(stderr, __VA_ARGS__);                                            \
    fputc('\n', stderr);                                                     \
    return -1;                                                               \
  } while (0)
#define ADV_CHECK(cond, ...)                                                 \
  do {                                                                       \
    if (!(cond))                                                             \
      ADV_FAIL(__VA_ARGS__);                                                 \
  } while (0)

/* Connects and says HELLO: maps the memory, takes the eventfds. 0 / -1. */
int adv_attach(adv *a);
void adv_detach(adv *a);
/* One setup message; returns the reply's status (0 or the negative
 * HWSOCK_E* its wire value names), 1 when no reply of that type came. A NEEDS_RESET arriving
 * meanwhile is remembered in reset_code. */
int adv_msg(adv *a, uint32_t type, uint64_t x, uint64_t y, uint64_t z,
            uint64_t d, uint64_t e);
/* FEATURES, then every queue (qsize entries, each in its own slice of the
 * memory, laid out by the vring builder), then START. 0 or -1 (a refusal
 * is reported). */
int adv_setup(adv *a, uint64_t features, unsigned qsize);
/* RESET, then adv_setup again. */
int adv_reset_setup(adv *a, uint64_t features, unsigned qsize);
void adv_kick(adv *a, unsigned q);
/* Publishes the queue's avail idx and kicks. */
void adv_go(adv *a, unsigned q);

/* Adds one request (unpublished): a readable buffer holding the header,
 * uri_len bytes of uri and dlen bytes of data, and (wlen > 0) a writable
 * buffer of wlen bytes. Returns the head or -1. */
int adv_req(adv *a, unsigned q, uint16_t op, uint32_t sock, uint64_t tag,
            uint32_t arg0, uint32_t arg1, const void *uri, uint32_t uri_len,
            const void *data, uint32_t dlen, uint32_t wlen);
/* Takes every new used element of q into done[q]. */
void adv_reap(adv *a, unsigned q);
/* Waits until head completed on q (done[q][head].valid, cleared on
 * return). 0, or -1 after timeout_ms / a NEEDS_RESET / a hang-up. */
int adv_wait_head(adv *a, unsigned q, uint16_t head, int timeout_ms);
/* The response header of head (its writable buffer). */
const hwsock_resp_hdr *adv_resp(adv *a, unsigned q, uint16_t head);
/* Submits one request, waits for it: the response's status (0 or the
 * negative HWSOCK_E*), 1 (no completion) or 2 (tag not echoed). *used gets
 * the used length. */
int adv_call(adv *a, unsigned q, uint16_t op, uint32_t sock, uint64_t tag,
             uint32_t arg0, uint32_t arg1, const char *uri, const void *data,
             uint32_t dlen, uint32_t wlen, uint32_t *used);
/* Waits for NEEDS_RESET: its code, or -1 when none came in timeout_ms. */
int adv_wait_reset(adv *a, int timeout_ms);
/* Nothing more may be written: used idx stays at `idx` for ms. 0 / -1. */
int adv_used_still(adv *a, unsigned q, uint16_t idx, int ms);

/* A healthy device answers: OPEN of a free id and its CLOSE succeed. */
int adv_healthy(adv *a);

/* A case: returns 0 when the device did exactly what the protocol says.
 * `hold` is then called with the guest still attached (the harness checks
 * the VMM meanwhile); after it, `after` (may be NULL) runs a last check. */
typedef struct adv_case {
  const char *name;
  int (*run)(adv *a);
  int (*after)(adv *a);
} adv_case;

extern const adv_case adv_ring_cases[];
extern const adv_case adv_req_cases[];
extern const adv_case adv_race_cases[];

#endif
