/* Startup pieces every VMM of this project shares (hwsock-vmm and
 * hwsock-vhost-user): the policy, the capture file, the control socket's
 * path and the readiness message. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm.h"

/* The control socket's path: --control, or --listen PATH + ".ctl". */
int vmm_control_path(vmm *v) {
  const char *p = v->opt.control_path;
  int n = p != NULL
              ? snprintf(v->control_path, sizeof(v->control_path), "%s", p)
              : snprintf(v->control_path, sizeof(v->control_path), "%s%s",
                         v->opt.listen_path, VMM_CONTROL_SUFFIX);
  if (n < 0 || (size_t)n >= sizeof(v->control_path)) {
    vmm_log(HWSOCK_LOG_ERROR,
            "control socket path too long for a unix socket (use --control)");
    return -1;
  }
  return 0;
}

int vmm_open_capture(vmm *v) {
  if (v->opt.pcap_path == NULL)
    return 0;
  char err[256] = "";
  int rc = hwsock_capture_open(v->opt.pcap_path,
                               (uint64_t)v->opt.pcap_max_mib << 20,
                               &v->capture, err, sizeof(err));
  if (rc < 0) {
    /* the message names the file already */
    if (err[0])
      vmm_log(HWSOCK_LOG_ERROR, "--pcap: %s", err);
    else
      vmm_log(HWSOCK_LOG_ERROR, "--pcap %s: %s", v->opt.pcap_path,
              hwsock_strerror(rc));
    return -1;
  }
  vmm_log(HWSOCK_LOG_INFO, "capturing offloaded flows to %s",
          v->opt.pcap_path);
  return 0;
}

/* Frames written and dropped, then the file is complete. Every device is
 * gone by now (capture.h: detached or freed before the close). */
void vmm_close_capture(vmm *v) {
  if (v->capture == NULL)
    return;
  uint64_t written, dropped;
  hwsock_capture_counts(v->capture, &written, &dropped);
  vmm_log(HWSOCK_LOG_INFO, "capture %s: %llu frames written, %llu dropped",
          v->opt.pcap_path, (unsigned long long)written,
          (unsigned long long)dropped);
  hwsock_capture_close(v->capture);
  v->capture = NULL;
}

int vmm_load_policy(vmm *v) {
  char err[256];
  int rc;
  if (v->opt.policy_path == NULL) {
    rc = hwsock_policy_load_default(&v->policy);
    snprintf(err, sizeof(err), "%s", hwsock_strerror(rc));
  } else {
    err[0] = '\0';
    rc = hwsock_policy_load_file(v->opt.policy_path, &v->policy, err,
                                 sizeof(err));
  }
  if (rc < 0) {
    vmm_log(HWSOCK_LOG_ERROR, "policy %s: %s",
            v->opt.policy_path ? v->opt.policy_path : "(built-in)",
            err[0] ? err : hwsock_strerror(rc));
    return -1;
  }
  vmm_log(HWSOCK_LOG_INFO, "policy %s: %d rules",
          v->opt.policy_path ? v->opt.policy_path : "(built-in)",
          hwsock_policy_rule_count(v->policy));
  return 0;
}

void vmm_announce_ready(vmm *v) {
  int fd = v->opt.ready_fd;
  if (fd < 0)
    return;
  static const char msg[] = "ready\n";
  if (write(fd, msg, sizeof(msg) - 1) != (ssize_t)(sizeof(msg) - 1))
    vmm_log(HWSOCK_LOG_ERROR, "--ready-fd %d: %s", fd, strerror(errno));
  close(fd);
}
