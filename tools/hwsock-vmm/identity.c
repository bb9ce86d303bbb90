/* --identity NAME and --identity-key FILE (docs/IDENTITY.md): the VM's
 * name every identity header carries, and the HMAC key, read once at start
 * (the library refuses a symlink, a key others may read, a wrong size). */
#include <string.h>

#include "vmm.h"

int vmm_identity_setup(vmm *v) {
  memset(&v->identity, 0, sizeof(v->identity));
  if (v->opt.identity_name == NULL)
    return 0;
  hwsock_identity id;
  memset(&id, 0, sizeof(id));
  id.size = sizeof(id);
  id.name = v->opt.identity_name;
  if (hwsock_identity_check(&id) < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "--identity: a name of 1 to %u bytes without "
            "control characters", HWSOCK_IDENTITY_NAME_MAX);
    return -1;
  }
  if (v->opt.identity_key != NULL) {
    char err[512];
    size_t len = 0;
    int rc = hwsock_identity_load_key(v->opt.identity_key, v->identity_key,
                                      sizeof(v->identity_key), &len, err,
                                      sizeof(err));
    if (rc < 0) {
      vmm_log(HWSOCK_LOG_ERROR, "--identity-key %s", err);
      return -1;
    }
    id.key = v->identity_key;
    id.key_len = len;
  }
  v->identity = id;
  vmm_log(HWSOCK_LOG_INFO, "identity '%s'%s", id.name,
          id.key ? " with an HMAC key" : "");
  return 0;
}

const hwsock_identity *vmm_identity(const vmm *v) {
  return v->identity.size != 0 ? &v->identity : NULL;
}

void vmm_identity_clear(vmm *v) {
  /* explicit_bzero: the compiler may not drop it as a dead store */
  explicit_bzero(v->identity_key, sizeof(v->identity_key));
  memset(&v->identity, 0, sizeof(v->identity));
}
