/* The VMM's listening unix sockets (the guests' and the control socket):
 * bound, given their mode and group, then listening.
 *
 * bind() creates the socket file with 0777 minus the umask, so under umask
 * 000 anyone could attach a guest (and get offloaded connections in the
 * VMM's name). umask() is process-wide and libraries may create files too,
 * so the file's mode is set after bind() instead, and before listen():
 * until listen() every connect() is refused (ECONNREFUSED), so the
 * umask's mode never admits anyone. The file is reached through an O_PATH
 * descriptor of what is checked to be a socket, so that a symlink swapped
 * in at the path is never followed to chmod/chown something else. */
#define _GNU_SOURCE /* O_PATH, AT_EMPTY_PATH */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm.h"

/* True when path is a socket file nobody listens on any more (a VMM that
 * died left it behind): it may be replaced. A live VMM's is not, and
 * neither is anything that is not a socket. */
static int stale_socket(const struct sockaddr_un *sun, int type) {
  struct stat st;
  if (lstat(sun->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
    return 0;
  int probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (probe < 0)
    return 0;
  int rc = connect(probe, (const struct sockaddr *)sun, sizeof(*sun));
  int refused = rc < 0 && errno == ECONNREFUSED;
  close(probe);
  if (rc == 0)
    vmm_log(HWSOCK_LOG_ERROR, "%s: another VMM is listening there",
            sun->sun_path);
  return refused;
}

/* --socket-mode and --socket-group on the freshly bound socket file. */
static int restrict_file(const vmm_options *o, const char *path) {
  int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  int rc = fstat(fd, &st);
  if (rc == 0 && !S_ISSOCK(st.st_mode)) {
    errno = EEXIST; /* replaced under us: not the socket we bound */
    rc = -1;
  }
  const char *what = "stat";
  if (rc == 0 && o->socket_gid >= 0) {
    what = "--socket-group";
    rc = fchownat(fd, "", (uid_t)-1, (gid_t)o->socket_gid, AT_EMPTY_PATH);
  }
  if (rc == 0) {
    /* chmod has no AT_EMPTY_PATH form before fchmodat2(): go through the
     * descriptor's /proc link, which names this very inode. */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    what = "--socket-mode";
    rc = chmod(proc, (mode_t)o->socket_mode);
  }
  if (rc < 0)
    vmm_log(HWSOCK_LOG_ERROR, "%s: %s: %s", path, what, strerror(errno));
  close(fd);
  return rc < 0 ? -1 : 0;
}

int vmm_listen_unix(const vmm_options *o, const char *path, int type) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(sun.sun_path)) {
    vmm_log(HWSOCK_LOG_ERROR, "%s: path too long for a unix socket", path);
    return -1;
  }
  strcpy(sun.sun_path, path);
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "socket: %s", strerror(errno));
    return -1;
  }
  int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
  if (rc < 0 && errno == EADDRINUSE && stale_socket(&sun, type)) {
    unlink(path);
    rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
  }
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "bind %s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  if (restrict_file(o, path) < 0) {
    close(fd);
    unlink(path);
    return -1;
  }
  if (listen(fd, VMM_LISTEN_BACKLOG) < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "listen %s: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    return -1;
  }
  return fd;
}
