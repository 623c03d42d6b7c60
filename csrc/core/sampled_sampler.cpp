// The candidate sampler and the plan of the sampled softmax (core/ops/sampled.h), shared by both
// backends: host code free of the thread pool and the kernels, so that the CUDA module draws the
// very same sample as the CPU by linking this file.
#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "core/philox.h"
#include "core/ops/sampled.h"

namespace fastnn {
namespace sampling {

namespace {

// Draw t of the stream as a 53-bit uniform in [0, 1): a float's 24 bits would leave classes
// beyond ~1e6 unreachable for the log-uniform sampler's steep exp.
double uniform53(uint64_t t, uint32_t k0, uint32_t k1, uint32_t stream = kSamplerStream) {
  const uint64_t block = t >> 1;
  const Philox4x32 r = philox4x32_10(uint32_t(block), uint32_t(block >> 32), stream, 0, k0, k1);
  const int w = int(t & 1) * 2;
  return (double(r.v[w] >> 5) * 67108864.0 + double(r.v[w + 1] >> 6)) * (1.0 / 9007199254740992.0);
}

struct ClassDraw {
  int64_t C;
  Sampler sampler;
  double log_range;  // log(C + 1)

  int64_t operator()(double u) const {
    // Inverse CDF of P(c) = log((c+2)/(c+1)) / log(C+1): the CDF of c is log(c+2) / log(C+1).
    const int64_t c = sampler == Sampler::LogUniform ? int64_t(std::exp(u * log_range)) - 1
                                                     : int64_t(u * double(C));
    return std::min(std::max<int64_t>(c, 0), C - 1);  // rounding at u -> 1 must not give C
  }
};

}  // namespace

double sampler_probability(int64_t c, int64_t num_classes, Sampler sampler) {
  if (sampler == Sampler::Uniform) return 1.0 / double(num_classes);
  return std::log1p(1.0 / double(c + 1)) / std::log(double(num_classes) + 1.0);
}

double expected_count(int64_t c, int64_t num_classes, Sampler sampler, bool unique,
                      int64_t num_sampled, int64_t tries) {
  const double p = sampler_probability(c, num_classes, sampler);
  // 1 - (1 - p)^tries without cancellation for tiny p; p == 1 (one class) gives exactly 1.
  return unique ? -std::expm1(double(tries) * std::log1p(-p)) : double(num_sampled) * p;
}

namespace {

// Draws between two calls of the poll: a few milliseconds of work.
constexpr int64_t kPollEvery = int64_t(1) << 16;

// Rejection draws allowed before a unique sample switches to the key construction, whose cost
// is about that of num_classes draws: so the total stays within a small multiple of the better
// of the two, and small samples (the usual case) are plain rejection, as in TensorFlow.
// The floor keeps every small sample (a few milliseconds of draws) on plain rejection.
int64_t rejection_budget(int64_t num_sampled, int64_t num_classes) {
  return std::max<int64_t>(num_classes + 2 * num_sampled, int64_t(1) << 16);
}

// The classes drawn so far: a bitmap when the sample is a sizeable fraction of the classes (at
// most 8 bytes per sampled class, and no hashing in the long rejection runs of that case), else
// a hash set.
class SeenClasses {
 public:
  SeenClasses(int64_t num_sampled, int64_t num_classes)
      : dense_(num_classes <= 64 * num_sampled) {
    if (dense_)
      bits_.assign(size_t((num_classes + 63) / 64), 0);
    else
      set_.reserve(size_t(num_sampled) * 2);
  }
  // True when c was not seen before (and is now).
  bool insert(int64_t c) {
    if (!dense_) return set_.insert(c).second;
    uint64_t& word = bits_[size_t(c >> 6)];
    const uint64_t bit = uint64_t(1) << (c & 63);
    const bool fresh = !(word & bit);
    word |= bit;
    return fresh;
  }
  bool contains(int64_t c) const {
    return dense_ ? (bits_[size_t(c >> 6)] >> (c & 63)) & 1 : set_.count(c) != 0;
  }

 private:
  bool dense_;
  std::vector<uint64_t> bits_;
  std::unordered_set<int64_t> set_;
};

// Exp(1) from a 53-bit uniform u in [0, 1): -log(1 - u), finite since 1 - u >= 2^-53.
double exponential(double u) { return -std::log1p(-u); }

// Completes a unique sample that rejection left at s.ids (seen holds the same classes), keeping
// its distribution (see sampled_softmax.h): the next ids by ascending key Exp(1) / P(c), the
// tries of step j as 1 + Geometric(unseen mass before step j) failures.
void finish_by_keys(CandidateSample& s, const SeenClasses& seen, int64_t num_sampled,
                    int64_t num_classes, Sampler sampler, uint32_t k0, uint32_t k1,
                    const Poll& poll) {
  // P(c) = weight(c) / total: the keys only need P up to that constant factor.
  const bool log_uniform = sampler == Sampler::LogUniform;
  const double total = log_uniform ? std::log(double(num_classes) + 1.0) : double(num_classes);
  auto weight = [&](int64_t c) { return log_uniform ? std::log1p(1.0 / double(c + 1)) : 1.0; };
  std::vector<std::pair<double, int64_t>> keys;
  keys.reserve(size_t(num_classes - int64_t(s.ids.size())));
  for (int64_t c = 0; c < num_classes; ++c) {
    if (poll && c % kPollEvery == 0) poll();
    if (!seen.contains(c))
      keys.emplace_back(exponential(uniform53(uint64_t(c), k0, k1, kKeyStream)) / weight(c), c);
  }
  const size_t first = s.ids.size(), m = size_t(num_sampled) - first;
  std::nth_element(keys.begin(), keys.begin() + (m - 1), keys.end());
  std::sort(keys.begin(), keys.begin() + m);
  // The unseen mass before each new step, summed from the small end (the classes never drawn,
  // then the steps from last to first) so that the last steps' tiny masses keep their digits.
  double mass = 0;
  for (size_t j = m; j < keys.size(); ++j) mass += weight(keys[j].second);
  std::vector<double> unseen(m);
  for (size_t j = m; j-- > 0;) {
    mass += weight(keys[j].second);
    unseen[j] = std::min(mass / total, 1.0);
  }
  int64_t tries = s.tries;
  for (size_t j = 0; j < m; ++j) {
    s.ids.push_back(keys[j].second);
    // Failures before a success of probability r: floor(-Exp(1) / log(1 - r)); r == 1 gives 0.
    const double r = unseen[j];
    const double fails =
        r >= 1.0 ? 0.0
                 : std::floor(-exponential(uniform53(first + j, k0, k1, kTriesStream)) /
                              std::log1p(-r));
    tries += 1 + (fails < 4e18 ? int64_t(fails) : int64_t(4e18));
  }
  s.tries = tries;
}

}  // namespace

CandidateSample sample_candidates(int64_t num_sampled, int64_t num_classes, uint64_t seed,
                                  Sampler sampler, bool unique, const Poll& poll,
                                  int64_t max_rejection_draws) {
  FASTNN_CHECK(num_classes >= 1,
               "num_classes: expected at least 1, got " + std::to_string(num_classes));
  // Class ids go through doubles (u * C, exp): beyond 2^53 they would no longer be exact.
  FASTNN_CHECK(num_classes <= (int64_t(1) << 53),
               "num_classes: expected at most 2**53, got " + std::to_string(num_classes));
  FASTNN_CHECK(num_sampled >= 1,
               "num_sampled: expected at least 1, got " + std::to_string(num_sampled));
  if (unique && num_sampled > num_classes)
    throw ValueError("num_sampled: unique sampling needs num_sampled <= num_classes (" +
                     std::to_string(num_classes) + "), got " + std::to_string(num_sampled));
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const ClassDraw draw{num_classes, sampler, std::log(double(num_classes) + 1.0)};
  CandidateSample s;
  s.ids.reserve(static_cast<size_t>(num_sampled));
  uint64_t t = 0;
  if (unique) {
    // Rejection of repeats, as TF's range samplers do; the number of tries feeds E(c).
    const uint64_t budget = uint64_t(max_rejection_draws >= 0
                                         ? max_rejection_draws
                                         : rejection_budget(num_sampled, num_classes));
    SeenClasses seen(num_sampled, num_classes);
    while (int64_t(s.ids.size()) < num_sampled && t < budget) {
      if (poll && t % kPollEvery == 0) poll();
      const int64_t c = draw(uniform53(t++, k0, k1));
      if (seen.insert(c)) s.ids.push_back(c);
    }
    s.tries = int64_t(t);
    if (int64_t(s.ids.size()) < num_sampled)
      finish_by_keys(s, seen, num_sampled, num_classes, sampler, k0, k1, poll);
  } else {
    for (; int64_t(t) < num_sampled; ++t) {
      if (poll && t % kPollEvery == 0) poll();
      s.ids.push_back(draw(uniform53(t, k0, k1)));
    }
    s.tries = int64_t(t);
  }
  s.expected.resize(s.ids.size());
  for (size_t j = 0; j < s.ids.size(); ++j)
    s.expected[j] = expected_count(s.ids[j], num_classes, sampler, unique, num_sampled, s.tries);
  return s;
}

template <class T>
SampledPlan sampled_softmax_plan(const SampledSoftmaxArgs<T>& a, const Poll& poll) {
  FASTNN_CHECK(a.N >= 1, "h: expected at least one row, got 0");
  FASTNN_CHECK(a.C >= 1, "W: expected at least one class (column), got 0");
  for (int64_t i = 0; i < a.N; ++i)
    if (a.labels[i] < 0 || a.labels[i] >= a.C)
      throw ValueError("labels: expected class indices in [0, " + std::to_string(a.C) + "), got " +
                       std::to_string(a.labels[i]) + " at position " + std::to_string(i));
  SampledPlan p;
  p.sample = sample_candidates(a.num_sampled, a.C, a.seed, a.sampler, a.unique, poll);
  p.cols = p.sample.ids;
  p.cols.insert(p.cols.end(), a.labels, a.labels + a.N);
  std::sort(p.cols.begin(), p.cols.end());
  p.cols.erase(std::unique(p.cols.begin(), p.cols.end()), p.cols.end());
  return p;
}

template SampledPlan sampled_softmax_plan<float>(const SampledSoftmaxArgs<float>&, const Poll&);
template SampledPlan sampled_softmax_plan<double>(const SampledSoftmaxArgs<double>&, const Poll&);

}  // namespace sampling
}  // namespace fastnn
