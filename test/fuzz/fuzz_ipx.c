/* Fuzzes what the ipx backend reads from the network and from the VMM:
 * the receive path of an instance (header checks, sender check, demux, the
 * per-socket queue, delivery into RECV buffers) and the options parser.
 *
 * The backend's sources are compiled into this harness (a plugin's symbols
 * are hidden, and the fuzzer needs coverage of them): the instance is real,
 * with a bound UDP socket on 127.0.0.1, but packets are handed to
 * receive_packet() directly instead of travelling through the kernel.
 *
 * Input: byte 0 selects the case. Even: a packet; byte 1 picks the UDP
 * source (the peer's endpoint or a stranger's); the rest is the UDP payload.
 * Odd: the rest is an options string. */
#include "../../backends/ipx/ipx.c" /* first: it defines _GNU_SOURCE */
#include "../../backends/ipx/header.c"
#include "../../backends/ipx/options.c"

static uv_loop_t fz_loop;
static hwsock_backend_host fz_host;
static void *fz_inst;
static void *fz_socks[3];
static hwsock_breq fz_recv[3];
static struct iovec fz_iov[3];
static uint8_t fz_buf[3][64];
static int fz_pending[3];

static void fz_complete(hwsock_breq *req, int status, size_t len) {
  for (int i = 0; i < 3; i++)
    if (req == &fz_recv[i]) {
      if (status == 0 && len > fz_iov[i].iov_len)
        __builtin_trap(); /* never more than the buffer */
      fz_pending[i] = 0;
    }
}

static void fz_post(int i, uint32_t flags) {
  if (fz_pending[i])
    return;
  memset(&fz_recv[i], 0, sizeof(fz_recv[i]));
  fz_recv[i].size = sizeof(fz_recv[i]);
  fz_recv[i].opcode = HWSOCK_OP_RECV;
  fz_recv[i].scheme = HWSOCK_SCHEME_IPX;
  fz_recv[i].arg0 = flags;
  fz_iov[i].iov_base = fz_buf[i];
  fz_iov[i].iov_len = (size_t)(i * 16);
  fz_recv[i].iov = &fz_iov[i];
  fz_recv[i].iovcnt = 1;
  fz_recv[i].iov_len = fz_iov[i].iov_len;
  fz_pending[i] = 1;
  ipx_submit(fz_socks[i], &fz_recv[i]);
}

static void fz_bind(void *s, uint16_t port) {
  hwsock_breq b;
  hwsock_addr a;
  memset(&b, 0, sizeof(b));
  memset(&a, 0, sizeof(a));
  a.scheme = HWSOCK_SCHEME_IPX;
  a.family = HWSOCK_AF_IPX;
  a.port = port;
  b.size = sizeof(b);
  b.opcode = HWSOCK_OP_BIND;
  b.addr = &a;
  ipx_submit(s, &b);
}

static int fz_setup(void) {
  static char opts[160];
  uv_loop_init(&fz_loop);
  /* any free port for the instance; the peer's endpoint is fixed */
  snprintf(opts, sizeof(opts),
           "net=0000cafe node=02005e0001a2 bind=127.0.0.1 port=%u "
           "peer=02005e0001ff@127.0.0.1:9 peer=02005e0001a3@127.0.0.1:10",
           40000u + (unsigned)(getpid() % 20000));
  fz_host.size = sizeof(fz_host);
  fz_host.loop = &fz_loop;
  fz_host.options = opts;
  fz_host.complete = fz_complete;
  if (ipx_create(&fz_host, &fz_inst) != 0)
    return -1;
  hwsock_bopen bo = {.size = sizeof(bo), .scheme = HWSOCK_SCHEME_IPX};
  for (int i = 0; i < 3; i++)
    if (ipx_open(fz_inst, &bo, &fz_socks[i]) != 0)
      return -1;
  fz_bind(fz_socks[0], 0x4000);
  fz_bind(fz_socks[1], 0x4001);
  fz_bind(fz_socks[2], 0x869c);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready = -2;
  if (ready == -2)
    ready = fz_setup();
  if (ready != 0 || size < 2)
    return 0;
  if (data[0] & 1) {
    ipx_config cfg;
    char err[200];
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (hwsock__ipx_parse_options(s, &cfg, err, sizeof(err)) == 0 &&
        cfg.npeers > IPX_MAX_PEERS)
      __builtin_trap();
    free(s);
    return 0;
  }
  ipx_instance *inst = fz_inst;
  /* RECVs come and go, so both the direct path and the queue are taken */
  fz_post(0, 0);
  if (data[0] & 2)
    fz_post(1, HWSOCK_RECV_PEEK);
  if (data[0] & 4)
    fz_post(2, 0);
  struct sockaddr_storage from = inst->cfg.peers[0].sa;
  if (data[1] & 1)
    ((struct sockaddr_in *)&from)->sin_port = htons(11);
  size_t n = size - 2;
  if (n > sizeof(inst->rbuf))
    n = sizeof(inst->rbuf);
  memcpy(inst->rbuf, data + 2, n);
  /* recvmsg(MSG_TRUNC) reports the real size, which may exceed the buffer */
  receive_packet(inst, size - 2, &from);
  return 0;
}
