// The CPU quota a cgroup puts on this process, so that the default thread count of a container
// limited to 2 CPUs on a 64-core host is 2, not 64 (each extra thread would only wait its turn).
#pragma once
#include <string>

namespace fastnn {

// CPUs the cgroup CPU quota allows, rounded up (1.5 CPUs -> 2); 0 when there is no quota or it
// cannot be read. `root` is the cgroup mount point and `group` the process's cgroup v2 path
// below it ("/" in a container): every cpu.max from `group` up to `root` counts (the tightest
// wins), then cgroup v1's cpu.cfs_quota_us / cpu.cfs_period_us under root/cpu or
// root/cpu,cpuacct.
int cgroup_cpu_limit(const std::string& root, const std::string& group);

// cgroup_cpu_limit for this process: /sys/fs/cgroup and its group from /proc/self/cgroup.
int own_cgroup_cpu_limit();

}  // namespace fastnn
