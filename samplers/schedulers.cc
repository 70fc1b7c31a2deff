#include "samplers/schedulers.h"

#include <algorithm>
#include <boost/math/distributions/beta.hpp>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "samplers/sampler_names.h"

namespace raylight::samplers {
namespace {

constexpr int kMaxSteps = kMaxScheduleSteps;

std::vector<double> ToFloat32(std::vector<double> sigmas) {
  for (double& s : sigmas) s = static_cast<float>(s);  // ComfyUI holds schedules in float32
  return sigmas;
}

// n values from a to b inclusive, as torch.linspace / numpy.linspace compute them.
std::vector<double> Linspace(double a, double b, int n) {
  std::vector<double> out(n);
  if (n == 1) {
    out[0] = a;
    return out;
  }
  const double step = (b - a) / (n - 1);
  for (int i = 0; i < n; ++i) out[i] = a + step * i;
  return out;
}

std::vector<double> Simple(const ModelSampling& m, int steps) {
  const auto& table = m.sigmas();
  const double stride = static_cast<double>(table.size()) / steps;
  std::vector<double> sigmas;
  for (int i = 0; i < steps; ++i)
    sigmas.push_back(table[table.size() - 1 - static_cast<size_t>(i * stride)]);
  sigmas.push_back(0);
  return sigmas;
}

// torch.linspace in float32: start + step * i for the first half, end - step * (n - 1 - i) for
// the second, every operation in float (ATen's CPU range kernel).
std::vector<float> LinspaceF32(float start, float end, int n) {
  std::vector<float> out(n);
  if (n == 1) {
    out[0] = start;
    return out;
  }
  const float step = (end - start) / static_cast<float>(n - 1);
  const int halfway = n / 2;
  for (int i = 0; i < n; ++i) {
    out[i] = i < halfway ? start + step * static_cast<float>(i)
                         : end - step * static_cast<float>(n - i - 1);
  }
  return out;
}

// ComfyUI's normal_scheduler (and sgm_uniform): timesteps evenly spaced between the table's ends
// in float32, mapped back to sigmas by the model's float32 sigma(t).
std::vector<double> Normal(const ModelSampling& m, int steps, bool sgm) {
  const float start = m.TimestepF32(static_cast<float>(m.sigma_max()));
  const float end = m.TimestepF32(static_cast<float>(m.sigma_min()));
  bool append_zero = true;
  std::vector<float> timesteps;
  if (sgm) {
    timesteps = LinspaceF32(start, end, steps + 1);
    timesteps.pop_back();
  } else {
    if (std::abs(m.SigmaF32(end)) <= 1e-5) {
      ++steps;
      append_zero = false;
    }
    timesteps = LinspaceF32(start, end, steps);
  }
  std::vector<double> sigmas;
  for (float t : timesteps) sigmas.push_back(m.SigmaF32(t));
  if (append_zero) sigmas.push_back(0);
  return sigmas;
}

// A float32 tensor's values, then the final 0 (append_zero).
std::vector<double> WithZero(const at::Tensor& sigmas) {
  std::vector<double> out;
  const at::Tensor values = sigmas.contiguous();
  for (int64_t i = 0; i < values.numel(); ++i) out.push_back(values[i].item<float>());
  out.push_back(0);
  return out;
}

// k-diffusion's schedules as ComfyUI computes them: float32 tensor ops over a torch.linspace,
// with the Python floats as float32 scalars. The SDE samplers query their Brownian tree at these
// sigmas, so they must be ComfyUI's floats, not the same values rounded from doubles.
std::vector<double> Karras(double sigma_min, double sigma_max, int steps, double rho = 7) {
  const double min_inv = std::pow(sigma_min, 1 / rho), max_inv = std::pow(sigma_max, 1 / rho);
  const at::Tensor ramp = at::linspace(0, 1, steps, at::kFloat);
  return WithZero(at::pow(ramp * (min_inv - max_inv) + max_inv, rho));
}

std::vector<double> Exponential(double sigma_min, double sigma_max, int steps) {
  return WithZero(
      at::exp(at::linspace(std::log(sigma_max), std::log(sigma_min), steps, at::kFloat)));
}

std::vector<double> DdimUniform(const ModelSampling& m, int steps) {
  const auto& table = m.sigmas();
  std::vector<double> sigmas;
  size_t x = 1;
  if (std::abs(table[x]) <= 1e-5) {
    ++steps;
  } else {
    sigmas.push_back(0);
  }
  const size_t stride = std::max<size_t>(table.size() / steps, 1);
  while (x < table.size()) {
    sigmas.push_back(table[x]);
    x += stride;
  }
  std::reverse(sigmas.begin(), sigmas.end());
  return sigmas;
}

std::vector<double> Beta(const ModelSampling& m, int steps, double alpha = 0.6, double beta = 0.6) {
  const auto& table = m.sigmas();
  const double total = static_cast<double>(table.size() - 1);
  std::vector<double> sigmas;
  double last = -1;
  for (int i = 0; i < steps; ++i) {
    // 1 - numpy.linspace(0, 1, steps, endpoint=False): numpy multiplies i by the step 1 / steps,
    // which is not always the same double as i / steps.
    const double q = 1 - i * (1.0 / steps);
    // numpy.rint rounds half to even, as nearbyint does in the default rounding mode; the middle
    // of an even step count lands on .5 +- an ulp, so BetaPpf must be scipy's to the last bit.
    const double t = std::nearbyint(BetaPpf(q, alpha, beta) * total);
    if (t != last) sigmas.push_back(table[static_cast<size_t>(t)]);
    last = t;
  }
  sigmas.push_back(0);
  return sigmas;
}

std::vector<double> LinearQuadratic(const ModelSampling& m, int steps, double threshold = 0.025) {
  std::vector<double> schedule;
  if (steps == 1) {
    schedule = {1.0, 0.0};
  } else {
    const int linear_steps = steps / 2;
    for (int i = 0; i < linear_steps; ++i) schedule.push_back(i * threshold / linear_steps);
    const double step_diff = linear_steps - threshold * steps;
    const int quadratic_steps = steps - linear_steps;
    const double quadratic_coef =
        step_diff / (linear_steps * static_cast<double>(quadratic_steps) * quadratic_steps);
    const double linear_coef =
        threshold / linear_steps -
        2 * step_diff / (static_cast<double>(quadratic_steps) * quadratic_steps);
    const double constant = quadratic_coef * linear_steps * linear_steps;
    for (int i = linear_steps; i < steps; ++i) {
      schedule.push_back(quadratic_coef * i * i + linear_coef * i + constant);
    }
    schedule.push_back(1.0);
    for (double& x : schedule) x = 1.0 - x;
  }
  for (double& x : schedule) x *= m.sigma_max();
  return schedule;
}

std::vector<double> KlOptimal(double sigma_min, double sigma_max, int steps) {
  std::vector<double> sigmas;
  for (int i = 0; i < steps; ++i) {
    const double w = steps == 1 ? 0.0 : static_cast<double>(i) / (steps - 1);
    sigmas.push_back(std::tan(w * std::atan(sigma_min) + (1 - w) * std::atan(sigma_max)));
  }
  sigmas.push_back(0);
  return sigmas;
}

}  // namespace

double BetaPpf(double q, double a, double b) {
  // scipy.stats.beta.ppf is Boost.Math's beta quantile evaluated in double (scipy's policy:
  // no promotion of double to long double); the same policy gives the same bits.
  using Policy = boost::math::policies::policy<boost::math::policies::promote_float<false>,
                                               boost::math::policies::promote_double<false>,
                                               boost::math::policies::max_root_iterations<400>>;
  if (q <= 0) return 0;
  if (q >= 1) return 1;
  return boost::math::quantile(boost::math::beta_distribution<double, Policy>(a, b), q);
}

const std::vector<std::string>& SchedulerNames() { return kSchedulerNames; }

absl::StatusOr<std::vector<double>> ScheduleSigmas(const std::string& scheduler,
                                                   const ModelSampling& m, int steps) {
  if (steps < 1 || steps > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: ", steps, " is outside [1, ", kMaxSteps, "]"));
  }
  std::vector<double> sigmas;
  if (scheduler == "simple") {
    sigmas = Simple(m, steps);
  } else if (scheduler == "normal") {
    sigmas = Normal(m, steps, false);
  } else if (scheduler == "karras") {
    sigmas = Karras(m.sigma_min(), m.sigma_max(), steps);
  } else if (scheduler == "exponential") {
    sigmas = Exponential(m.sigma_min(), m.sigma_max(), steps);
  } else if (scheduler == "sgm_uniform") {
    sigmas = Normal(m, steps, true);
  } else if (scheduler == "ddim_uniform") {
    sigmas = DdimUniform(m, steps);
  } else if (scheduler == "beta") {
    sigmas = Beta(m, steps);
  } else if (scheduler == "linear_quadratic") {
    sigmas = LinearQuadratic(m, steps);
  } else if (scheduler == "kl_optimal") {
    sigmas = KlOptimal(m.sigma_min(), m.sigma_max(), steps);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("scheduler: unknown '", scheduler, "' (known: ",
                                                   absl::StrJoin(SchedulerNames(), ", "), ")"));
  }
  return ToFloat32(std::move(sigmas));
}

absl::StatusOr<std::vector<double>> KSamplerSigmas(const std::string& scheduler,
                                                   const std::string& sampler,
                                                   const ModelSampling& m, int steps,
                                                   double denoise) {
  if (!IsSamplerName(sampler)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler: unknown '", sampler, "' (known: ", absl::StrJoin(SamplerNames(), ", "), ")"));
  }
  if (!(denoise > 0 && denoise <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("denoise: ", denoise, " is outside (0, 1]"));
  }
  if (steps < 1 || steps > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: ", steps, " is outside [1, ", kMaxSteps, "]"));
  }
  const bool discard_penultimate = DiscardsPenultimateSigma(sampler);
  auto schedule = [&](int n) -> absl::StatusOr<std::vector<double>> {
    auto sigmas = ScheduleSigmas(scheduler, m, n + (discard_penultimate ? 1 : 0));
    if (!sigmas.ok()) return sigmas;
    if (discard_penultimate && sigmas->size() >= 2) sigmas->erase(sigmas->end() - 2);
    return sigmas;
  };
  if (denoise > 0.9999) return schedule(steps);
  const int total = static_cast<int>(steps / denoise);
  if (total > kMaxSteps) {
    return absl::InvalidArgumentError(absl::StrCat("denoise: ", denoise, " with ", steps,
                                                   " steps schedules ", total, " steps, above ",
                                                   kMaxSteps));
  }
  auto sigmas = schedule(total);
  if (!sigmas.ok()) return sigmas;
  if (static_cast<int>(sigmas->size()) > steps + 1)
    sigmas->erase(sigmas->begin(), sigmas->end() - (steps + 1));
  return sigmas;
}

}  // namespace raylight::samplers
