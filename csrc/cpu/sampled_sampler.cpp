// The candidate sampler and the plan of the sampled softmax (see sampled_softmax.h), apart from
// the kernels: free of the thread pool and the GEMM, so that the CUDA module draws the very same
// sample on the host by linking this file alone.
#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

#include "core/error.h"
#include "core/philox.h"
#include "cpu/sampled_softmax.h"

namespace fastnn {
namespace cpu {

namespace {

// Draw t of the stream as a 53-bit uniform in [0, 1): a float's 24 bits would leave classes
// beyond ~1e6 unreachable for the log-uniform sampler's steep exp.
double uniform53(uint64_t t, uint32_t k0, uint32_t k1) {
  const uint64_t block = t >> 1;
  const Philox4x32 r =
      philox4x32_10(uint32_t(block), uint32_t(block >> 32), kSamplerStream, 0, k0, k1);
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

CandidateSample sample_candidates(int64_t num_sampled, int64_t num_classes, uint64_t seed,
                                  Sampler sampler, bool unique) {
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
    std::unordered_set<int64_t> seen;
    seen.reserve(size_t(num_sampled) * 2);
    while (int64_t(s.ids.size()) < num_sampled) {
      const int64_t c = draw(uniform53(t++, k0, k1));
      if (seen.insert(c).second) s.ids.push_back(c);
    }
  } else {
    for (; int64_t(t) < num_sampled; ++t) s.ids.push_back(draw(uniform53(t, k0, k1)));
  }
  s.tries = int64_t(t);
  s.expected.resize(s.ids.size());
  for (size_t j = 0; j < s.ids.size(); ++j)
    s.expected[j] = expected_count(s.ids[j], num_classes, sampler, unique, num_sampled, s.tries);
  return s;
}

template <class T>
SampledPlan sampled_softmax_plan(const SampledSoftmaxArgs<T>& a) {
  FASTNN_CHECK(a.N >= 1, "h: expected at least one row, got 0");
  FASTNN_CHECK(a.C >= 1, "W: expected at least one class (column), got 0");
  for (int64_t i = 0; i < a.N; ++i)
    if (a.labels[i] < 0 || a.labels[i] >= a.C)
      throw ValueError("labels: expected class indices in [0, " + std::to_string(a.C) + "), got " +
                       std::to_string(a.labels[i]) + " at position " + std::to_string(i));
  SampledPlan p;
  p.sample = sample_candidates(a.num_sampled, a.C, a.seed, a.sampler, a.unique);
  p.cols = p.sample.ids;
  p.cols.insert(p.cols.end(), a.labels, a.labels + a.N);
  std::sort(p.cols.begin(), p.cols.end());
  p.cols.erase(std::unique(p.cols.begin(), p.cols.end()), p.cols.end());
  return p;
}

template SampledPlan sampled_softmax_plan<float>(const SampledSoftmaxArgs<float>&);
template SampledPlan sampled_softmax_plan<double>(const SampledSoftmaxArgs<double>&);

}  // namespace cpu
}  // namespace fastnn
