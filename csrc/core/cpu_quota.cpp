#include "core/cpu_quota.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace fastnn {

namespace {

// ceil(quota / period) for a positive quota and period; 0 for anything else (no quota).
int cpus_of_quota(double quota, double period) {
  if (!(quota > 0) || !(period > 0)) return 0;
  const double cpus = std::ceil(quota / period);
  return cpus >= 1e6 ? 1000000 : static_cast<int>(cpus);
}

// cgroup v2 cpu.max: "<quota> <period>" or "max <period>".
int read_cpu_max(const std::string& path) {
  std::ifstream in(path);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max") return 0;
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  return *end == '\0' ? cpus_of_quota(q, period) : 0;
}

// cgroup v1: cpu.cfs_quota_us (-1 = none) and cpu.cfs_period_us.
int read_cfs(const std::string& dir) {
  std::ifstream q(dir + "/cpu.cfs_quota_us"), p(dir + "/cpu.cfs_period_us");
  double quota = 0, period = 0;
  if (!(q >> quota) || !(p >> period)) return 0;
  return cpus_of_quota(quota, period);
}

int tighter(int a, int b) { return a == 0 ? b : (b == 0 ? a : (a < b ? a : b)); }

}  // namespace

int cgroup_cpu_limit(const std::string& root, const std::string& group) {
  int limit = 0;
  std::string g = group;
  for (;;) {
    while (!g.empty() && g.back() == '/') g.pop_back();
    limit = tighter(limit, read_cpu_max(root + g + "/cpu.max"));
    if (g.empty()) break;
    g.erase(g.rfind('/') == std::string::npos ? 0 : g.rfind('/'));
  }
  limit = tighter(limit, read_cfs(root + "/cpu"));
  return tighter(limit, read_cfs(root + "/cpu,cpuacct"));
}

int own_cgroup_cpu_limit() {
  // A cgroup v2 line of /proc/self/cgroup reads "0::<path>".
  std::ifstream in("/proc/self/cgroup");
  std::string line, group = "/";
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) group = line.substr(3);
  return cgroup_cpu_limit("/sys/fs/cgroup", group);
}

}  // namespace fastnn
