/* hwsock-run --table PATH: keeps the driver's socket table (hwsock_guest_dump)
 * in a file for people and tools, as the VMM's control socket does on the
 * host side (docs/OBSERVABILITY.md).
 *
 * One thread looks at the table every RUN_TABLE_POLL_MS: it dumps it into a
 * memfd and compares it with what the file holds. A change of the sockets
 * themselves (a row appears or goes, a state or an address changes) is
 * written at once; a change of the counters alone (bytes, requests in
 * flight), which a busy socket makes all the time, at most once per
 * RUN_TABLE_MIN_INTERVAL_MS. Each write goes to a new temp file in the
 * same folder (a random name, created with O_EXCL|O_NOFOLLOW: a planted
 * file or symlink is never opened, so nothing the tool did not create is
 * ever truncated or written), renamed over PATH: a reader sees the old
 * table or the new one, never half of one. rename() replaces PATH itself,
 * never what a symlink at PATH points to. Hooks need no change in the socket code: the table is
 * the driver's, which every path already keeps up to date. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "run.h"
#include "table.h"

/* A dump larger than this (about 40000 sockets) is not written. */
#define TABLE_MAX_BYTES (16u << 20)
/* Names tried for one temp file before giving up on that write (a name
 * taken by someone else's file is skipped, never reused). */
#define TABLE_TMP_TRIES 16

static struct {
  char path[PATH_MAX];
  char tmp[PATH_MAX + 32];
  mode_t mode; /* of the file: 0644 less the umask */
  int memfd;
  pthread_t thread;
  int running;
  int stop;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  char *cur, *last; /* this dump and the one in the file */
  size_t cur_len, last_len;
  size_t cur_cap, last_cap;
  int have_last;
  struct timespec last_write;
} tbl = {.memfd = -1,
         .lock = PTHREAD_MUTEX_INITIALIZER};

int hwsock__run_table_init(const char *path) {
  int n;
  if (path[0] == '/') {
    n = snprintf(tbl.path, sizeof(tbl.path), "%s", path);
  } else {
    /* the program may chdir: HWSOCK_TABLE is absolute */
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
      int e = errno;
      fprintf(stderr, "hwsock-run: --table: getcwd: %s\n", strerror(e));
      return hwsock__run_err(e);
    }
    n = snprintf(tbl.path, sizeof(tbl.path), "%s/%s", cwd, path);
  }
  if (n < 0 || (size_t)n >= sizeof(tbl.path) || path[0] == '\0') {
    fprintf(stderr, "hwsock-run: --table: bad or too long path\n");
    return HWSOCK_ENAMETOOLONG;
  }
  mode_t um = umask(0); /* single-threaded here */
  umask(um);
  tbl.mode = 0644 & ~um;
  if (setenv("HWSOCK_TABLE", tbl.path, 1) < 0)
    return hwsock__run_err(errno);
  return 0;
}

static long ms_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long)(now.tv_sec - t->tv_sec) * 1000 +
         (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* The dump into tbl.cur. 0 or -1. */
static int take(void) {
  if (ftruncate(tbl.memfd, 0) < 0 || lseek(tbl.memfd, 0, SEEK_SET) < 0)
    return -1;
  if (hwsock_guest_dump(hwsock__run.g, tbl.memfd) < 0)
    return -1;
  off_t size = lseek(tbl.memfd, 0, SEEK_CUR);
  if (size < 0 || size > TABLE_MAX_BYTES)
    return -1;
  if ((size_t)size > tbl.cur_cap) {
    char *p = realloc(tbl.cur, (size_t)size);
    if (p == NULL)
      return -1;
    tbl.cur = p;
    tbl.cur_cap = (size_t)size;
  }
  size_t got = 0;
  while (got < (size_t)size) {
    ssize_t r = pread(tbl.memfd, tbl.cur + got, (size_t)size - got,
                      (off_t)got);
    if (r <= 0)
      return -1;
    got += (size_t)r;
  }
  tbl.cur_len = got;
  return 0;
}

/* Length of a row without its last three columns (Bytes-Out, Bytes-In,
 * In-flight): what says which sockets exist and in what state. */
static size_t row_key_len(const char *row, size_t len) {
  size_t end = len;
  for (int field = 0; field < 3; field++) {
    while (end > 0 && row[end - 1] == ' ')
      end--;
    while (end > 0 && row[end - 1] != ' ')
      end--;
  }
  return end;
}

/* Do the two dumps differ in more than the counters? */
static int sockets_changed(const char *a, size_t alen, const char *b,
                           size_t blen) {
  size_t i = 0, j = 0;
  while (i < alen && j < blen) {
    const char *ea = memchr(a + i, '\n', alen - i);
    const char *eb = memchr(b + j, '\n', blen - j);
    size_t la = ea ? (size_t)(ea - (a + i)) : alen - i;
    size_t lb = eb ? (size_t)(eb - (b + j)) : blen - j;
    size_t ka = row_key_len(a + i, la), kb = row_key_len(b + j, lb);
    if (ka != kb || memcmp(a + i, b + j, ka) != 0)
      return 1;
    i += la + 1;
    j += lb + 1;
  }
  return (i < alen) != (j < blen);
}

/* Creates a new temp file next to PATH (its name in tbl.tmp): O_EXCL, so
 * an existing file or a symlink planted at the name is never opened; a
 * taken name is skipped for another random one. The fd, or -1 (logged). */
static int create_tmp(void) {
  for (int i = 0; i < TABLE_TMP_TRIES; i++) {
    uint64_t r;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
      struct timespec t;
      clock_gettime(CLOCK_MONOTONIC, &t);
      r = ((uint64_t)t.tv_nsec << 20) ^ (uint64_t)getpid() ^ (uint64_t)i;
    }
    snprintf(tbl.tmp, sizeof(tbl.tmp), "%s.tmp%016llx", tbl.path,
             (unsigned long long)r);
    int fd = open(tbl.tmp,
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  tbl.mode);
    if (fd >= 0)
      return fd;
    if (errno != EEXIST && errno != ELOOP)
      break;
  }
  hwsock__run_log("--table %s: %s", tbl.tmp, strerror(errno));
  return -1;
}

static void publish(void) {
  int fd = create_tmp();
  if (fd < 0)
    return;
  size_t off = 0;
  while (off < tbl.cur_len) {
    ssize_t w = write(fd, tbl.cur + off, tbl.cur_len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  close(fd);
  if (off != tbl.cur_len || rename(tbl.tmp, tbl.path) < 0) {
    hwsock__run_log("--table %s: %s", tbl.path, strerror(errno));
    unlink(tbl.tmp);
    return;
  }
  char *t = tbl.last;
  size_t cap = tbl.last_cap;
  tbl.last = tbl.cur;
  tbl.last_cap = tbl.cur_cap;
  tbl.cur = t;
  tbl.cur_cap = cap;
  tbl.last_len = tbl.cur_len;
  tbl.have_last = 1;
  clock_gettime(CLOCK_MONOTONIC, &tbl.last_write);
}

/* One look at the table; force: write it whatever changed. */
static void look(int force) {
  if (take() < 0)
    return;
  int differs = !tbl.have_last || tbl.cur_len != tbl.last_len ||
                (tbl.cur_len > 0 && memcmp(tbl.cur, tbl.last, tbl.cur_len));
  if (!differs && !force)
    return;
  if (force || !tbl.have_last ||
      sockets_changed(tbl.cur, tbl.cur_len, tbl.last, tbl.last_len) ||
      ms_since(&tbl.last_write) >= RUN_TABLE_MIN_INTERVAL_MS)
    publish();
}

static void *table_thread(void *arg) {
  (void)arg;
  pthread_mutex_lock(&tbl.lock);
  while (!tbl.stop) {
    pthread_mutex_unlock(&tbl.lock);
    look(0);
    pthread_mutex_lock(&tbl.lock);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += RUN_TABLE_POLL_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    while (!tbl.stop &&
           pthread_cond_timedwait(&tbl.cond, &tbl.lock, &until) != ETIMEDOUT)
      ;
  }
  pthread_mutex_unlock(&tbl.lock);
  look(1); /* the last state, even if it changed within the interval */
  return NULL;
}

int hwsock__run_table_start(void) {
  if (tbl.path[0] == '\0')
    return 0;
  int rc;
  tbl.memfd = memfd_create("hwsock-run-table", MFD_CLOEXEC);
  pthread_condattr_t ca;
  if (tbl.memfd < 0) {
    rc = hwsock__run_err(errno);
    goto fail;
  }
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&tbl.cond, &ca);
  pthread_condattr_destroy(&ca);
  if ((rc = hwsock__run_err(pthread_create(&tbl.thread, NULL, table_thread,
                                           NULL))) < 0) {
    pthread_cond_destroy(&tbl.cond);
    goto fail;
  }
  tbl.running = 1;
  return 0;
fail:
  fprintf(stderr, "hwsock-run: --table: %s\n",
          strerror(hwsock__run_to_errno(rc)));
  if (tbl.memfd >= 0)
    close(tbl.memfd);
  tbl.memfd = -1;
  return rc;
}

void hwsock__run_table_stop(void) {
  if (!tbl.running)
    return;
  pthread_mutex_lock(&tbl.lock);
  tbl.stop = 1;
  pthread_cond_signal(&tbl.cond);
  pthread_mutex_unlock(&tbl.lock);
  pthread_join(tbl.thread, NULL);
  tbl.running = 0;
  pthread_cond_destroy(&tbl.cond);
  close(tbl.memfd);
  tbl.memfd = -1;
  free(tbl.cur);
  free(tbl.last);
  tbl.cur = tbl.last = NULL;
}
