/* Host socket quotas (device.h: max_host_sockets, shared_quota). Every
 * offloaded socket that is not denied holds a host socket, i.e. an fd of
 * the VMM process; without a bound, one guest could take every fd and
 * starve the other guests and the VMM itself (its attaches, its control
 * clients). A refusal is this guest's HWSOCK_EMFILE, the error a program
 * knows for "too many open files"; its log line names the limit and how to
 * raise it, at most once a second per device, with a count of the ones in
 * between (a guest retrying in a loop must not flood the log). */
#include <time.h>

#include "device_int.h"

#define QUOTA_LOG_INTERVAL_NS 1000000000ull

static void refused(hwsock_device *dev, const char *what, unsigned limit,
                    const char *hint) {
  unsigned held;
  if (!hwsock_ratelog_pass(&dev->quota_log, hwsock__now_ns(CLOCK_MONOTONIC),
                           QUOTA_LOG_INTERVAL_NS, &held))
    return;
  if (held > 0)
    hwsock__device_log(dev, HWSOCK_LOG_WARN,
                       "%s %u reached (%s); %u more refusals not logged",
                       what, limit, hint, held);
  else
    hwsock__device_log(dev, HWSOCK_LOG_WARN, "%s %u reached (%s)", what,
                       limit, hint);
}

int hwsock__quota_take(hwsock_device *dev) {
  hwsock_quota *q = dev->cfg.shared_quota;
  if (dev->host_socks >= dev->cfg.max_host_sockets) {
    refused(dev, "socket quota", dev->cfg.max_host_sockets,
            dev->cfg.quota_hint ? dev->cfg.quota_hint : "max_host_sockets");
    return HWSOCK_EMFILE;
  }
  if (q != NULL && q->used >= q->limit) {
    refused(dev, "shared socket quota", q->limit,
            q->hint ? q->hint : "hwsock_quota.limit");
    return HWSOCK_EMFILE;
  }
  dev->host_socks++;
  if (q != NULL)
    q->used++;
  return 0;
}

void hwsock__quota_put(hwsock_device *dev) {
  hwsock_quota *q = dev->cfg.shared_quota;
  if (dev->host_socks > 0)
    dev->host_socks--;
  if (q != NULL && q->used > 0)
    q->used--;
}
