/* Plugin loader: dlopen() a backend module, find its one entry symbol and
 * check the descriptor it returns before anything calls into it.
 *
 * The descriptor check is the only gate between a foreign module and the
 * device, so it reads fields in ABI order: size and abi_version first (they
 * are at the same place in every version), the rest only once those say the
 * layout is the one this library knows. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hwsock/backend.h"
#include "hwsock/device.h"
#include "hwsock/uri.h"

/* Sizes of the version-1 structs: the end of their last version-1 field, so
 * that these stay right when later versions append fields. */
#define DESC_V1_SIZE                                                          \
  (offsetof(hwsock_backend_desc, ops) + sizeof(((hwsock_backend_desc *)0)->ops))
#define OPS_V1_SIZE                                                           \
  (offsetof(hwsock_backend_ops, close) +                                      \
   sizeof(((hwsock_backend_ops *)0)->close))

#define NAME_MAX_LEN 32 /* backend names: [a-z0-9_-]{1,32} */
#define SCHEMES_MAX 8   /* more entries than schemes exist is a broken list */

struct hwsock_plugin {
  void *handle; /* dlopen() handle */
  const hwsock_backend_desc *desc;
};

static int fail(char *errbuf, size_t errlen, int err, const char *who,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes "who: message" into errbuf (when there is one) and returns err. */
static int fail(char *errbuf, size_t errlen, int err, const char *who,
                const char *fmt, ...) {
  if (errbuf != NULL && errlen > 0) {
    int n = snprintf(errbuf, errlen, "%s: ", who);
    if (n >= 0 && (size_t)n < errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return err;
}

static int name_ok(const char *name) {
  size_t n = strnlen(name, NAME_MAX_LEN + 1);
  if (n == 0 || n > NAME_MAX_LEN)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return 0;
  }
  return 1;
}

/* The check itself; `who` starts every message (the module's file name when
 * loading a plugin). */
static int desc_check(const hwsock_backend_desc *d, const char *who,
                      char *errbuf, size_t errlen) {
  if (d == NULL)
    return fail(errbuf, errlen, HWSOCK_EINVAL, who, "no descriptor");
  if (d->abi_version != HWSOCK_BACKEND_ABI_VERSION)
    return fail(errbuf, errlen, HWSOCK_EABI, who,
                "plugin ABI version %u, this library supports %u",
                (unsigned)d->abi_version, HWSOCK_BACKEND_ABI_VERSION);
  if (d->size < DESC_V1_SIZE)
    return fail(errbuf, errlen, HWSOCK_EABI, who,
                "descriptor size %u, smaller than the %zu bytes of ABI "
                "version 1",
                (unsigned)d->size, (size_t)DESC_V1_SIZE);
  if (d->name == NULL || !name_ok(d->name))
    return fail(errbuf, errlen, HWSOCK_EABI, who,
                "backend name must be 1 to %d of [a-z0-9_-]", NAME_MAX_LEN);
  const hwsock_backend_ops *ops = d->ops;
  if (ops == NULL)
    return fail(errbuf, errlen, HWSOCK_EABI, who, "backend '%s' has no ops",
                d->name);
  if (ops->size < OPS_V1_SIZE)
    return fail(errbuf, errlen, HWSOCK_EABI, who,
                "backend '%s': ops size %u, smaller than the %zu bytes of "
                "ABI version 1",
                d->name, (unsigned)ops->size, (size_t)OPS_V1_SIZE);
  const char *missing = ops->create == NULL    ? "create"
                        : ops->destroy == NULL ? "destroy"
                        : ops->open == NULL    ? "open"
                        : ops->submit == NULL  ? "submit"
                        : ops->close == NULL   ? "close"
                                               : NULL;
  if (missing != NULL)
    return fail(errbuf, errlen, HWSOCK_EABI, who,
                "backend '%s' lacks the required op %s()", d->name, missing);
  if (d->schemes == NULL)
    return fail(errbuf, errlen, HWSOCK_EABI, who,
                "backend '%s': schemes must be a NULL-terminated list "
                "(possibly empty), not NULL",
                d->name);
  unsigned seen = 0; /* bit per scheme, to refuse duplicates */
  for (int i = 0;; i++) {
    const char *s = d->schemes[i];
    if (s == NULL)
      break;
    if (i == SCHEMES_MAX)
      return fail(errbuf, errlen, HWSOCK_EABI, who,
                  "backend '%s': more than %d schemes", d->name, SCHEMES_MAX);
    int sc = hwsock_scheme_from_name(s);
    if (sc == HWSOCK_SCHEME_NONE)
      return fail(errbuf, errlen, HWSOCK_EABI, who,
                  "backend '%s': unknown scheme '%.16s'", d->name, s);
    if (seen & (1u << sc))
      return fail(errbuf, errlen, HWSOCK_EABI, who,
                  "backend '%s': scheme '%s' listed twice", d->name, s);
    seen |= 1u << sc;
  }
  return 0;
}

int hwsock_backend_desc_check(const hwsock_backend_desc *d, char *errbuf,
                              size_t errlen) {
  return desc_check(d, "backend descriptor", errbuf, errlen);
}

int hwsock_plugin_load(const char *path, hwsock_plugin **out, char *errbuf,
                       size_t errlen) {
  if (out != NULL)
    *out = NULL;
  if (path == NULL || out == NULL || path[0] == '\0')
    return fail(errbuf, errlen, HWSOCK_EINVAL, "plugin", "no path given");
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;

  /* A bare file name would make dlopen() search the library path; a plugin
   * is named by its file, so make the name relative to the current folder. */
  char local[PATH_MAX];
  if (strchr(path, '/') == NULL) {
    if ((size_t)snprintf(local, sizeof(local), "./%s", path) >= sizeof(local))
      return fail(errbuf, errlen, HWSOCK_ENAMETOOLONG, base, "name too long");
    path = local;
  }
  /* dlerror() cannot tell a missing file from a broken one: stat first. */
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    return fail(errbuf, errlen,
                e == ENOTDIR ? HWSOCK_ENOENT : hwsock_err_from_errno(e), base,
                "%s", strerror(e));
  }
  if (!S_ISREG(st.st_mode))
    return fail(errbuf, errlen, HWSOCK_EINVAL, base, "not a regular file");

  dlerror();
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *why = dlerror();
    return fail(errbuf, errlen, HWSOCK_EABI, base, "cannot load: %s",
                why ? why : "dlopen failed");
  }
  dlerror();
  void *sym = dlsym(h, HWSOCK_BACKEND_ENTRY_SYMBOL);
  if (sym == NULL) {
    const char *why = dlerror();
    fail(errbuf, errlen, HWSOCK_EABI, base,
         "not a hwsock backend: no symbol %s (%s)", HWSOCK_BACKEND_ENTRY_SYMBOL,
         why ? why : "NULL");
    dlclose(h);
    return HWSOCK_EABI;
  }
  /* POSIX guarantees a data pointer from dlsym() converts to a function
   * pointer; memcpy says so without a cast warning. */
  hwsock_backend_entry_fn entry;
  memcpy(&entry, &sym, sizeof(entry));
  const hwsock_backend_desc *desc = entry();
  int rc = desc_check(desc, base, errbuf, errlen);
  if (rc < 0) {
    dlclose(h);
    return rc == HWSOCK_EINVAL ? HWSOCK_EABI : rc;
  }
  hwsock_plugin *p = calloc(1, sizeof(*p));
  if (p == NULL) {
    dlclose(h);
    return fail(errbuf, errlen, HWSOCK_ENOMEM, base, "out of memory");
  }
  p->handle = h;
  p->desc = desc;
  *out = p;
  return 0;
}

const hwsock_backend_desc *hwsock_plugin_desc(const hwsock_plugin *p) {
  return p ? p->desc : NULL;
}

void hwsock_plugin_unload(hwsock_plugin *p) {
  if (p == NULL)
    return;
  dlclose(p->handle);
  free(p);
}
