/* The VMM's identity (hwsock/identity.h): checking it and reading its HMAC
 * key file. The header itself is built by the backend that sends it
 * (backends/tcp/proxy_v2.c): the library stays free of a crypto library. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hwsock/identity.h"

int hwsock_identity_check(const hwsock_identity *id) {
  if (id == NULL || id->size < sizeof(hwsock_identity) || id->reserved != 0 ||
      id->name == NULL)
    return HWSOCK_EINVAL;
  size_t n = strnlen(id->name, HWSOCK_IDENTITY_NAME_MAX + 1);
  if (n == 0 || n > HWSOCK_IDENTITY_NAME_MAX)
    return HWSOCK_EINVAL;
  /* A server logs and compares it: no control characters. */
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)id->name[i] < 0x20 || id->name[i] == 0x7f)
      return HWSOCK_EINVAL;
  if (id->key == NULL)
    return id->key_len == 0 ? 0 : HWSOCK_EINVAL;
  if (id->key_len < HWSOCK_IDENTITY_KEY_MIN ||
      id->key_len > HWSOCK_IDENTITY_KEY_MAX)
    return HWSOCK_EINVAL;
  return 0;
}

static int key_fail(char *errbuf, size_t errlen, int err, const char *path,
                    const char *why) {
  if (errbuf != NULL && errlen > 0)
    snprintf(errbuf, errlen, "%s: %s", path, why);
  return err;
}

int hwsock_identity_load_key(const char *path, uint8_t *key, size_t cap,
                             size_t *len, char *errbuf, size_t errlen) {
  if (path == NULL || key == NULL || len == NULL ||
      cap < HWSOCK_IDENTITY_KEY_MAX)
    return HWSOCK_EINVAL;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    return key_fail(errbuf, errlen, hwsock_err_from_errno(e), path,
                    e == ELOOP ? "is a symbolic link (refused)" : strerror(e));
  }
  struct stat st;
  int rc = 0;
  const char *why = NULL;
  if (fstat(fd, &st) != 0) {
    rc = hwsock_err_from_errno(errno);
    why = strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    rc = HWSOCK_EINVAL;
    why = "not a regular file";
  } else if ((st.st_mode & 077) != 0) {
    /* A key others can read vouches for nothing: refuse it, as ssh does. */
    rc = HWSOCK_EACCES;
    why = "readable or writable by group or others (chmod 600 it)";
  } else if (st.st_size < (off_t)HWSOCK_IDENTITY_KEY_MIN ||
             st.st_size > (off_t)HWSOCK_IDENTITY_KEY_MAX) {
    rc = HWSOCK_EINVAL;
    why = "the key must be 16 to 4096 bytes";
  }
  size_t got = 0;
  while (rc == 0 && got <= HWSOCK_IDENTITY_KEY_MAX) {
    uint8_t probe;
    uint8_t *dst = got < HWSOCK_IDENTITY_KEY_MAX ? key + got : &probe;
    size_t want = got < HWSOCK_IDENTITY_KEY_MAX ? HWSOCK_IDENTITY_KEY_MAX - got : 1;
    ssize_t n = read(fd, dst, want); /* one byte past the limit: too long */
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = hwsock_err_from_errno(errno);
      why = strerror(errno);
      break;
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  /* The file may have changed since fstat: check what was read. */
  if (rc == 0 && (got < HWSOCK_IDENTITY_KEY_MIN || got > HWSOCK_IDENTITY_KEY_MAX)) {
    rc = HWSOCK_EINVAL;
    why = "the key must be 16 to 4096 bytes";
  }
  if (rc < 0) {
    memset(key, 0, cap);
    return key_fail(errbuf, errlen, rc, path, why);
  }
  *len = got;
  return 0;
}
