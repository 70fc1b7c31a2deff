#include "samplers/k_samplers.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <deque>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/common/status_macros.h"

namespace raylight::samplers {
namespace {

// Wraps the denoiser: counts steps for errors and progress, refuses non-finite output.
class Model {
 public:
  Model(const Denoiser& denoiser, const StepCallback& callback, int total)
      : denoiser_(denoiser), callback_(callback), total_(total) {}

  // The first evaluation of step `step` (reported to the callback).
  absl::StatusOr<at::Tensor> Step(int step, const at::Tensor& x, double sigma) {
    auto denoised = Eval(step, x, sigma);
    if (denoised.ok() && callback_) {
      StepInfo info{step, total_, sigma, &x, &*denoised};
      callback_(info);
    }
    return denoised;
  }
  // Further evaluations inside a step (Heun, DPM-2, ...).
  absl::StatusOr<at::Tensor> Eval(int step, const at::Tensor& x, double sigma) {
    auto denoised = denoiser_(x, sigma);
    if (!denoised.ok()) {
      return absl::Status(denoised.status().code(),
                          absl::StrCat("step ", step + 1, "/", total_, " (sigma ", sigma,
                                       "): ", denoised.status().message()));
    }
    if (!at::isfinite(*denoised).all().item<bool>()) {
      return absl::FailedPreconditionError(absl::StrCat("step ", step + 1, "/", total_, " (sigma ",
                                                        sigma,
                                                        "): the model produced NaN or infinity"));
    }
    return denoised;
  }

 private:
  const Denoiser& denoiser_;
  const StepCallback& callback_;
  const int total_;
};

at::Tensor ToD(const at::Tensor& x, double sigma, const at::Tensor& denoised) {
  return (x - denoised) / sigma;
}

double T(double sigma) { return -std::log(sigma); }  // t_fn
double SigmaOf(double t) { return std::exp(-t); }    // sigma_fn

using Sigmas = std::vector<double>;

absl::StatusOr<at::Tensor> Euler(Model& model, at::Tensor x, const Sigmas& s) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    x = x + ToD(x, s[i], denoised) * (s[i + 1] - s[i]);
  }
  return x;
}

absl::StatusOr<at::Tensor> EulerAncestral(Model& model, at::Tensor x, const Sigmas& s,
                                          const NoiseSampler& noise, const SamplerOptions& o) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    auto [down, up] = AncestralStep(s[i], s[i + 1], o.eta);
    x = x + ToD(x, s[i], denoised) * (down - s[i]);
    if (s[i + 1] > 0) x = x + noise(s[i], s[i + 1]) * (o.s_noise * up);
  }
  return x;
}

// ComfyUI's ancestral Euler for rectified-flow models (sample_euler_ancestral_RF): step down to
// sigma_down on the straight path, then mix in fresh noise so the marginal at sigma_next is the
// flow's (1 - s) x0 + s n rather than the VE x0 + s n.
absl::StatusOr<at::Tensor> EulerAncestralFlow(Model& model, at::Tensor x, const Sigmas& s,
                                              const NoiseSampler& noise, const SamplerOptions& o) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    if (s[i + 1] == 0) {
      x = denoised;
      continue;
    }
    const double downstep_ratio = 1 + (s[i + 1] / s[i] - 1) * o.eta;
    const double sigma_down = s[i + 1] * downstep_ratio;
    const double alpha_next = 1 - s[i + 1], alpha_down = 1 - sigma_down;
    const double renoise =
        std::sqrt(s[i + 1] * s[i + 1] -
                  sigma_down * sigma_down * alpha_next * alpha_next / (alpha_down * alpha_down));
    const double ratio = sigma_down / s[i];
    x = x * ratio + denoised * (1 - ratio);
    if (o.eta > 0)
      x = x * (alpha_next / alpha_down) + noise(s[i], s[i + 1]) * (o.s_noise * renoise);
  }
  return x;
}

absl::StatusOr<at::Tensor> Heun(Model& model, at::Tensor x, const Sigmas& s) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    at::Tensor d = ToD(x, s[i], denoised);
    const double dt = s[i + 1] - s[i];
    if (s[i + 1] == 0) {
      x = x + d * dt;
    } else {
      at::Tensor x2 = x + d * dt;
      RL_ASSIGN_OR_RETURN(at::Tensor denoised2, model.Eval(i, x2, s[i + 1]));
      at::Tensor d2 = ToD(x2, s[i + 1], denoised2);
      x = x + (d + d2) / 2 * dt;
    }
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpm2(Model& model, at::Tensor x, const Sigmas& s) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    at::Tensor d = ToD(x, s[i], denoised);
    if (s[i + 1] == 0) {
      x = x + d * (s[i + 1] - s[i]);
    } else {
      const double mid = std::exp(0.5 * (std::log(s[i]) + std::log(s[i + 1])));
      at::Tensor x2 = x + d * (mid - s[i]);
      RL_ASSIGN_OR_RETURN(at::Tensor denoised2, model.Eval(i, x2, mid));
      x = x + ToD(x2, mid, denoised2) * (s[i + 1] - s[i]);
    }
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpm2Ancestral(Model& model, at::Tensor x, const Sigmas& s,
                                         const NoiseSampler& noise, const SamplerOptions& o) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    auto [down, up] = AncestralStep(s[i], s[i + 1], o.eta);
    at::Tensor d = ToD(x, s[i], denoised);
    if (down == 0) {
      x = x + d * (down - s[i]);
    } else {
      const double mid = std::exp(0.5 * (std::log(s[i]) + std::log(down)));
      at::Tensor x2 = x + d * (mid - s[i]);
      RL_ASSIGN_OR_RETURN(at::Tensor denoised2, model.Eval(i, x2, mid));
      x = x + ToD(x2, mid, denoised2) * (down - s[i]);
      x = x + noise(s[i], s[i + 1]) * (o.s_noise * up);
    }
  }
  return x;
}

absl::StatusOr<at::Tensor> Lms(Model& model, at::Tensor x, const Sigmas& s, int order = 4) {
  std::deque<at::Tensor> ds;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    ds.push_back(ToD(x, s[i], denoised));
    if (static_cast<int>(ds.size()) > order) ds.pop_front();
    const int current = std::min(static_cast<int>(i) + 1, order);
    at::Tensor step = at::zeros_like(x);
    for (int j = 0; j < current; ++j) {
      step = step + ds[ds.size() - 1 - j] * LinearMultistepCoefficient(current, s, i, j);
    }
    x = x + step;
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpmpp2sAncestral(Model& model, at::Tensor x, const Sigmas& s,
                                            const NoiseSampler& noise, const SamplerOptions& o) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    auto [down, up] = AncestralStep(s[i], s[i + 1], o.eta);
    if (down == 0) {
      x = x + ToD(x, s[i], denoised) * (down - s[i]);
    } else {
      const double t = T(s[i]), t_next = T(down), h = t_next - t, mid = t + 0.5 * h;
      at::Tensor x2 = x * (SigmaOf(mid) / SigmaOf(t)) - denoised * std::expm1(-h * 0.5);
      RL_ASSIGN_OR_RETURN(at::Tensor denoised2, model.Eval(i, x2, SigmaOf(mid)));
      x = x * (SigmaOf(t_next) / SigmaOf(t)) - denoised2 * std::expm1(-h);
    }
    if (s[i + 1] > 0) x = x + noise(s[i], s[i + 1]) * (o.s_noise * up);
  }
  return x;
}

absl::StatusOr<at::Tensor> DpmppSde(Model& model, at::Tensor x, const Sigmas& s,
                                    const NoiseSampler& noise, const SamplerOptions& o) {
  constexpr double r = 0.5;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    if (s[i + 1] == 0) {
      x = x + ToD(x, s[i], denoised) * (s[i + 1] - s[i]);
      continue;
    }
    const double t = T(s[i]), t_next = T(s[i + 1]), h = t_next - t, mid = t + h * r;
    const double fac = 1 / (2 * r);
    auto [down1, up1] = AncestralStep(SigmaOf(t), SigmaOf(mid), o.eta);
    const double s1 = T(down1);
    at::Tensor x2 = x * (SigmaOf(s1) / SigmaOf(t)) - denoised * std::expm1(t - s1);
    x2 = x2 + noise(SigmaOf(t), SigmaOf(mid)) * (o.s_noise * up1);
    RL_ASSIGN_OR_RETURN(at::Tensor denoised2, model.Eval(i, x2, SigmaOf(mid)));
    auto [down2, up2] = AncestralStep(SigmaOf(t), SigmaOf(t_next), o.eta);
    const double t_next2 = T(down2);
    at::Tensor mixed = denoised * (1 - fac) + denoised2 * fac;
    x = x * (SigmaOf(t_next2) / SigmaOf(t)) - mixed * std::expm1(t - t_next2);
    x = x + noise(SigmaOf(t), SigmaOf(t_next)) * (o.s_noise * up2);
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpmpp2m(Model& model, at::Tensor x, const Sigmas& s) {
  at::Tensor old;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    const double t = T(s[i]);
    // sigma_next = 0 makes t_next infinite: the update is then exactly x = denoised.
    if (s[i + 1] == 0) {
      x = denoised;
    } else {
      const double t_next = T(s[i + 1]), h = t_next - t;
      if (!old.defined()) {
        x = x * (SigmaOf(t_next) / SigmaOf(t)) - denoised * std::expm1(-h);
      } else {
        const double h_last = t - T(s[i - 1]), ratio = h_last / h;
        at::Tensor mixed = denoised * (1 + 1 / (2 * ratio)) - old * (1 / (2 * ratio));
        x = x * (SigmaOf(t_next) / SigmaOf(t)) - mixed * std::expm1(-h);
      }
    }
    old = denoised;
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpmpp2mSde(Model& model, at::Tensor x, const Sigmas& s,
                                      const NoiseSampler& noise, const SamplerOptions& o) {
  at::Tensor old;
  double h_last = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    double h = h_last;
    if (s[i + 1] == 0) {
      x = denoised;
    } else {
      const double t = -std::log(s[i]), next = -std::log(s[i + 1]);
      h = next - t;
      const double eta_h = o.eta * h;
      x = x * (s[i + 1] / s[i] * std::exp(-eta_h)) + denoised * (-std::expm1(-h - eta_h));
      if (old.defined()) {
        const double ratio = h_last / h;  // midpoint solver, ComfyUI's default
        x = x + (denoised - old) * (0.5 * -std::expm1(-h - eta_h) * (1 / ratio));
      }
      if (o.eta != 0) {
        x = x + noise(s[i], s[i + 1]) * (s[i + 1] * std::sqrt(-std::expm1(-2 * eta_h)) * o.s_noise);
      }
    }
    old = denoised;
    h_last = h;
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpmpp3mSde(Model& model, at::Tensor x, const Sigmas& s,
                                      const NoiseSampler& noise, const SamplerOptions& o) {
  at::Tensor d1_prev, d2_prev;  // denoised_1, denoised_2
  bool have_h1 = false, have_h2 = false;
  double h1 = 0, h2 = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    double h = 0;
    if (s[i + 1] == 0) {
      x = denoised;
    } else {
      const double t = -std::log(s[i]), next = -std::log(s[i + 1]);
      h = next - t;
      const double h_eta = h * (o.eta + 1);
      x = x * std::exp(-h_eta) + denoised * (-std::expm1(-h_eta));
      if (have_h2) {
        const double r0 = h1 / h, r1 = h2 / h;
        at::Tensor d1_0 = (denoised - d1_prev) / r0;
        at::Tensor d1_1 = (d1_prev - d2_prev) / r1;
        at::Tensor d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1));
        at::Tensor d2 = (d1_0 - d1_1) / (r0 + r1);
        const double phi2 = std::expm1(-h_eta) / h_eta + 1;
        const double phi3 = phi2 / h_eta - 0.5;
        x = x + d1 * phi2 - d2 * phi3;
      } else if (have_h1) {
        const double r = h1 / h;
        const double phi2 = std::expm1(-h_eta) / h_eta + 1;
        x = x + (denoised - d1_prev) / r * phi2;
      }
      if (o.eta != 0) {
        x = x +
            noise(s[i], s[i + 1]) * (s[i + 1] * std::sqrt(-std::expm1(-2 * h * o.eta)) * o.s_noise);
      }
    }
    d2_prev = d1_prev;
    d1_prev = denoised;
    h2 = h1;
    have_h2 = have_h1;
    h1 = h;
    have_h1 = true;
  }
  return x;
}

absl::StatusOr<at::Tensor> Lcm(Model& model, at::Tensor x, const Sigmas& s,
                               const NoiseSampler& noise, const SamplerOptions& o) {
  if (o.sampling == nullptr) return absl::InvalidArgumentError("lcm needs the model sampling");
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    x = denoised;
    if (s[i + 1] > 0) x = o.sampling->NoiseScaling(s[i + 1], noise(s[i], s[i + 1]), x, false);
  }
  return x;
}

}  // namespace

std::pair<double, double> AncestralStep(double from, double to, double eta) {
  if (eta == 0) return {to, 0.0};
  const double up =
      std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
  return {std::sqrt(to * to - up * up), up};
}

double LinearMultistepCoefficient(int order, const std::vector<double>& t, int i, int j) {
  // The basis polynomial has degree order - 1 <= 3: 4-point Gauss-Legendre integrates it exactly.
  static constexpr double kNodes[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563,
                                       0.8611363115940526};
  static constexpr double kWeights[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461,
                                         0.3478548451374538};
  const double a = t[i], b = t[i + 1];
  double total = 0;
  for (int n = 0; n < 4; ++n) {
    const double tau = 0.5 * (b - a) * kNodes[n] + 0.5 * (a + b);
    double product = 1;
    for (int k = 0; k < order; ++k) {
      if (k == j) continue;
      product *= (tau - t[i - k]) / (t[i - j] - t[i - k]);
    }
    total += kWeights[n] * product;
  }
  return 0.5 * (b - a) * total;
}

namespace {

// A generator of its own on the latent's device, seeded with `seed` (ComfyUI seeds a
// torch.Generator on x's device the same way).
at::Generator GeneratorFor(const at::Tensor& like, uint64_t seed) {
  if (!like.is_cuda()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Generator generator = at::globalContext().defaultGenerator(like.device()).clone();
  generator.set_current_seed(seed);
  return generator;
}

}  // namespace

NoiseSampler SeededNoiseSampler(const at::Tensor& like, uint64_t seed) {
  at::Generator generator = GeneratorFor(like, seed);
  const auto sizes = like.sizes().vec();
  const auto options = like.options();
  return [generator, sizes, options](double, double) mutable {
    return at::randn(sizes, generator, options);
  };
}

bool UsesBrownianNoise(const std::string& sampler) {
  return sampler == "dpmpp_sde" || sampler == "dpmpp_2m_sde" || sampler == "dpmpp_3m_sde";
}

NoiseSampler BrownianNoiseSampler(const at::Tensor& like, uint64_t seed) {
  struct Path {
    at::Generator generator;
    std::vector<int64_t> sizes;
    at::TensorOptions options;
    std::map<double, at::Tensor> points;  // W at the times drawn so far

    at::Tensor Normal() { return at::randn(sizes, generator, options); }
    const at::Tensor& At(double t) {
      if (auto it = points.find(t); it != points.end()) return it->second;
      at::Tensor value;
      if (points.empty()) {
        value = at::zeros(sizes, options);
      } else {
        auto right = points.lower_bound(t);
        if (right == points.begin()) {  // before every known point: a free step back
          value = right->second + Normal() * std::sqrt(right->first - t);
        } else if (right == points.end()) {  // after every known point: a free step forward
          auto left = std::prev(right);
          value = left->second + Normal() * std::sqrt(t - left->first);
        } else {  // between two: the Brownian bridge
          auto left = std::prev(right);
          const double l = left->first, r = right->first, w = (t - l) / (r - l);
          value = left->second * (1 - w) + right->second * w +
                  Normal() * std::sqrt((t - l) * (r - t) / (r - l));
        }
      }
      return points.emplace(t, std::move(value)).first->second;
    }
  };
  auto path = std::make_shared<Path>();
  path->generator = GeneratorFor(like, seed);
  path->sizes = like.sizes().vec();
  path->options = like.options();
  return [path](double a, double b) {
    at::Tensor wa = path->At(a);
    at::Tensor wb = path->At(b);
    return (wb - wa) / std::sqrt(std::abs(b - a));
  };
}

absl::StatusOr<at::Tensor> Sample(const std::string& name, const Denoiser& denoiser, at::Tensor x,
                                  const std::vector<double>& sigmas, const NoiseSampler& noise,
                                  const SamplerOptions& options, const StepCallback& callback) {
  if (!IsSamplerName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampler: unknown '", name, "' (known: ", absl::StrJoin(SamplerNames(), ", "), ")"));
  }
  if (sigmas.size() < 2) {
    return absl::InvalidArgumentError("sigmas: a schedule needs at least two values");
  }
  Model model(denoiser, callback, static_cast<int>(sigmas.size()) - 1);
  const bool flow =
      options.sampling != nullptr && options.sampling->prediction() == Prediction::kFlow;
  if (flow && name != "euler_ancestral" &&
      (name.find("ancestral") != std::string::npos || name.find("sde") != std::string::npos)) {
    // Their VE noise injection is wrong for rectified flow; ComfyUI has flow-specific versions.
    return absl::FailedPreconditionError(
        absl::StrCat("sampler: ", name,
                     " is not available for rectified-flow models yet (use euler_ancestral "
                     "for stochastic sampling, or a deterministic sampler)"));
  }
  try {
    if (flow && name == "euler_ancestral")
      return EulerAncestralFlow(model, x, sigmas, noise, options);
    if (name == "euler" || name == "ddim") return Euler(model, x, sigmas);
    if (name == "euler_ancestral") return EulerAncestral(model, x, sigmas, noise, options);
    if (name == "heun") return Heun(model, x, sigmas);
    if (name == "dpm_2") return Dpm2(model, x, sigmas);
    if (name == "dpm_2_ancestral") return Dpm2Ancestral(model, x, sigmas, noise, options);
    if (name == "lms") return Lms(model, x, sigmas);
    if (name == "dpmpp_2s_ancestral") return Dpmpp2sAncestral(model, x, sigmas, noise, options);
    if (name == "dpmpp_sde") return DpmppSde(model, x, sigmas, noise, options);
    if (name == "dpmpp_2m") return Dpmpp2m(model, x, sigmas);
    if (name == "dpmpp_2m_sde") return Dpmpp2mSde(model, x, sigmas, noise, options);
    if (name == "dpmpp_3m_sde") return Dpmpp3mSde(model, x, sigmas, noise, options);
    if (name == "lcm") return Lcm(model, x, sigmas, noise, options);
  } catch (const c10::Error& error) {
    return absl::InternalError(
        absl::StrCat("sampler ", name, ": ", error.what_without_backtrace()));
  }
  return absl::InternalError(absl::StrCat("sampler ", name, " is listed but has no loop"));
}

}  // namespace raylight::samplers
