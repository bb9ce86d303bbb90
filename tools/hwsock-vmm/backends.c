/* Backend modules: the --backend modules first (they serve their schemes
 * before anything else), then every *.so of the backend folder in name
 * order. A module whose backend name is already loaded is skipped, so a
 * --backend module overrides the folder's module of the same name. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vmm.h"

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The build tree's backend folder when this binary runs from the build
 * tree (so that uninstalled binaries find freshly built modules), else
 * the installed folder. */
static const char *default_backend_dir(void) {
  char exe[PATH_MAX];
  const char *root = HWSOCK_BUILD_ROOT "/";
  if (realpath("/proc/self/exe", exe) != NULL &&
      strncmp(exe, root, strlen(root)) == 0 &&
      is_dir(HWSOCK_BUILD_BACKEND_DIR))
    return HWSOCK_BUILD_BACKEND_DIR;
  return HWSOCK_INSTALL_BACKEND_DIR;
}

static int load_one(vmm *v, const char *path) {
  char err[256];
  hwsock_plugin *p;
  int rc = hwsock_plugin_load(path, &p, err, sizeof(err));
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "backend module %s: %s", path, err);
    return -1;
  }
  const hwsock_backend_desc *d = hwsock_plugin_desc(p);
  for (unsigned i = 0; i < v->nplugins; i++) {
    if (strcmp(hwsock_plugin_desc(v->plugins[i])->name, d->name) == 0) {
      vmm_log(HWSOCK_LOG_INFO, "backend %s: '%s' already loaded, skipped",
              path, d->name);
      hwsock_plugin_unload(p);
      return 0;
    }
  }
  if (v->nplugins == VMM_MAX_PLUGINS) {
    vmm_log(HWSOCK_LOG_ERROR, "backend %s: more than %u backends", path,
            VMM_MAX_PLUGINS);
    hwsock_plugin_unload(p);
    return -1;
  }
  v->plugins[v->nplugins++] = p;
  vmm_log(HWSOCK_LOG_INFO, "backend '%s' loaded from %s", d->name, path);
  return 0;
}

static int has_so_suffix(const char *name) {
  size_t n = strlen(name);
  return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.so of dir, in name order. */
static int load_dir(vmm *v, const char *dir, int explicit) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    int level = explicit ? HWSOCK_LOG_ERROR : HWSOCK_LOG_WARN;
    vmm_log(level, "backend folder %s: %s", dir, strerror(errno));
    return explicit ? -1 : 0;
  }
  char *names[VMM_MAX_PLUGINS * 4];
  unsigned n = 0;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!has_so_suffix(e->d_name))
      continue;
    if (n == sizeof(names) / sizeof(names[0])) {
      vmm_log(HWSOCK_LOG_ERROR, "backend folder %s: too many modules", dir);
      rc = -1;
      break;
    }
    if ((names[n] = strdup(e->d_name)) == NULL) {
      rc = -1;
      break;
    }
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof(names[0]), by_name);
  for (unsigned i = 0; i < n; i++) {
    char path[PATH_MAX];
    if (rc == 0) {
      if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >=
          (int)sizeof(path)) {
        vmm_log(HWSOCK_LOG_ERROR, "backend folder %s: path too long", dir);
        rc = -1;
      } else if (load_one(v, path) < 0) {
        rc = -1;
      }
    }
    free(names[i]);
  }
  return rc;
}

int vmm_load_backends(vmm *v) {
  for (unsigned i = 0; i < v->opt.nbackends; i++)
    if (load_one(v, v->opt.backends[i]) < 0)
      return -1;
  const char *dir = v->opt.backend_dir;
  int explicit = dir != NULL;
  if (dir == NULL)
    dir = default_backend_dir();
  if (dir[0] != '\0' && load_dir(v, dir, explicit) < 0)
    return -1;
  if (v->nplugins == 0)
    vmm_log(HWSOCK_LOG_WARN, "no backend loaded: guests can offload nothing");
  return 0;
}

void vmm_unload_backends(vmm *v) {
  while (v->nplugins > 0)
    hwsock_plugin_unload(v->plugins[--v->nplugins]);
}
