// The sampled-softmax family's contract, implemented by cpu/sampled_softmax.h and
// cuda/sampled_softmax.h; the sampler and the plan (core/sampled_sampler.cpp) are shared, so both
// backends draw the very same sample. Sampled softmax for very many classes (candidate sampling, as TensorFlow's
// sampled_softmax_loss defines it).
//
// One set of num_sampled negative classes is drawn per batch and shared by every row. Row i's
// candidates are [y_i, s_1, ..., s_S]; its candidate logits are
//   z_i0 = h_i . W[:, y_i] + b[y_i] - log E(y_i),   z_ij = h_i . W[:, s_j] + b[s_j] - log E(s_j)
// (the log E terms only with subtract_log_q, and on z_i0 only with correct_true_logit too;
// E = expected count of a class in the sample), a
// sampled class equal to y_i is masked out (remove_accidental_hits), and the loss is the mean
// over rows of the cross-entropy with target 0. Gradients reach W and b only through the
// touched columns: the distinct classes among the labels and the samples.
//
// The sampler is Philox 4x32-10 keyed by the seed: draw t uses counter block t / 2 (stream
// kSamplerStream in the third word), words (0,1) for even t and (2,3) for odd t, as a 53-bit
// uniform u = ((w0 >> 5) * 2^26 + (w1 >> 6)) / 2^53 in [0, 1). The class is
//   log_uniform: floor(exp(u log(C + 1)) - 1), P(c) = log((c + 2) / (c + 1)) / log(C + 1)
//   uniform:     floor(u C),                   P(c) = 1 / C
// (clamped to C - 1 against rounding). unique sampling draws until num_sampled distinct classes
// are seen, in first-seen order, and counts the draws ("tries"): E(c) = -expm1(tries log1p(-P(c))),
// the chance that c was drawn at all; with replacement E(c) = num_sampled P(c). The draws are a
// serial stream, so the sample depends on (seed, num_classes, sampler, unique, num_sampled) only.
//
// Rejecting repeats costs ~1/P(c) draws for a rare class c: sampling most of 2e6 log-uniform
// classes would take billions of draws. So after kRejectionBudget draws (see core/sampled_sampler.cpp)
// the rest of a unique sample comes from an equivalent construction of the same process: every
// class not yet seen gets the key Exp(1) / P(c) (Philox stream kKeyStream, counter c), the
// smallest keys come next in key order (the order in which independent exponential clocks of
// rates P(c) ring: each next class has probability P(c) over the unseen mass, as with
// rejection), and the draws the rejections would have taken are drawn as geometric counts
// (stream kTriesStream, counter = position in the sample). Same distribution of ids, order and
// tries; cost O(C log C) at most; a sample that finishes within the budget is unchanged.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace fastnn {

enum class Sampler { LogUniform, Uniform };

constexpr uint32_t kSamplerStream = 0x53414D50u;  // "SAMP": keeps these draws apart from dropout's
constexpr uint32_t kKeyStream = 0x53414D4Bu;      // "SAMK": a class's key, past the budget
constexpr uint32_t kTriesStream = 0x53414D54u;    // "SAMT": the tries of a step, past the budget

// Called now and then during a long sample; it may throw to abandon the sample (the Python
// binding checks for Ctrl-C there).
using Poll = std::function<void()>;

struct CandidateSample {
  std::vector<int64_t> ids;       // (num_sampled,) class ids in draw order
  std::vector<double> expected;   // (num_sampled,) expected count of each id
  int64_t tries = 0;              // draws made (== num_sampled with replacement)
};

// The sampling half of the family, host code shared by both backends (core/sampled_sampler.cpp).
// Its own namespace keeps these names apart from the bindings' wrappers of the same names.
namespace sampling {

// Throws ValueError unless 1 <= num_sampled, 1 <= num_classes <= 2^53 and (unique =>
// num_sampled <= num_classes). max_rejection_draws >= 0 replaces the rejection budget (tests
// use 0 to check the key construction on its own).
CandidateSample sample_candidates(int64_t num_sampled, int64_t num_classes, uint64_t seed,
                                  Sampler sampler, bool unique, const Poll& poll = nullptr,
                                  int64_t max_rejection_draws = -1);

// P(c) of one draw, and the expected count of class c in a sample drawn as described above.
double sampler_probability(int64_t c, int64_t num_classes, Sampler sampler);
double expected_count(int64_t c, int64_t num_classes, Sampler sampler, bool unique,
                      int64_t num_sampled, int64_t tries);

}  // namespace sampling

template <class T>
struct SampledSoftmaxArgs {
  const T* h = nullptr;              // (N, D) C-contiguous
  const T* W = nullptr;              // (D, C) C-contiguous
  const T* b = nullptr;              // (C,) or null for no bias
  const int64_t* labels = nullptr;   // (N,) in [0, C)
  int64_t N = 0, D = 0, C = 0;
  int64_t num_sampled = 1;
  uint64_t seed = 0;
  Sampler sampler = Sampler::LogUniform;
  bool unique = true, subtract_log_q = true, remove_accidental_hits = true;
  // TensorFlow corrects the true class's logit too. Without it (false), the denominator is the
  // true class's own term plus an importance-sampling estimate of the others', which in our
  // training tests learns the rare classes of a Zipf distribution much faster.
  bool correct_true_logit = true;
};

// Phase 1: checks the arguments (every label before anything is written), draws the sample and
// lists the touched columns, sorted ascending, so that the caller can size the outputs.
struct SampledPlan {
  CandidateSample sample;
  std::vector<int64_t> cols;  // (k,) distinct classes among labels and samples, ascending
};
namespace sampling {
template <class T>
SampledPlan sampled_softmax_plan(const SampledSoftmaxArgs<T>& a, const Poll& poll = nullptr);
}  // namespace sampling

}  // namespace fastnn
