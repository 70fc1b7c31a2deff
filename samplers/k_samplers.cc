#include "samplers/k_samplers.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <deque>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/common/status_macros.h"
#include "samplers/brownian_tree.h"
#include "samplers/step_model.h"
#include "samplers/uni_pc.h"

namespace raylight::samplers {
namespace {

using Model = internal::StepModel;

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

// The ancestral step of ComfyUI's rectified-flow samplers (its *_RF functions): step down to
// sigma_down on the straight path, then scale and mix in fresh noise so that the marginal at
// sigma_next is the flow's (1 - s) x0 + s n rather than the VE x0 + s n.
struct FlowAncestral {
  double sigma_down;
  double scale;    // alpha_next / alpha_down, applied to x before the noise
  double renoise;  // the noise's coefficient
};
FlowAncestral FlowAncestralStep(double sigma, double sigma_next, double eta) {
  const double downstep_ratio = 1 + (sigma_next / sigma - 1) * eta;
  const double sigma_down = sigma_next * downstep_ratio;
  const double alpha_next = 1 - sigma_next, alpha_down = 1 - sigma_down;
  const double renoise = std::sqrt(
      std::max(0.0, sigma_next * sigma_next - sigma_down * sigma_down * alpha_next * alpha_next /
                                                  (alpha_down * alpha_down)));
  return {sigma_down, alpha_next / alpha_down, renoise};
}

absl::StatusOr<at::Tensor> EulerAncestralFlow(Model& model, at::Tensor x, const Sigmas& s,
                                              const NoiseSampler& noise, const SamplerOptions& o) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    if (s[i + 1] == 0) {
      x = denoised;
      continue;
    }
    const FlowAncestral a = FlowAncestralStep(s[i], s[i + 1], o.eta);
    const double ratio = a.sigma_down / s[i];
    x = x * ratio + denoised * (1 - ratio);
    if (o.eta > 0) x = x * a.scale + noise(s[i], s[i + 1]) * (o.s_noise * a.renoise);
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpm2AncestralFlow(Model& model, at::Tensor x, const Sigmas& s,
                                             const NoiseSampler& noise, const SamplerOptions& o) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    const FlowAncestral a = FlowAncestralStep(s[i], s[i + 1], o.eta);
    at::Tensor d = ToD(x, s[i], denoised);
    if (a.sigma_down == 0) {
      x = x + d * (a.sigma_down - s[i]);
      continue;
    }
    const double mid = std::exp(0.5 * (std::log(s[i]) + std::log(a.sigma_down)));
    at::Tensor x2 = x + d * (mid - s[i]);
    RL_ASSIGN_OR_RETURN(at::Tensor denoised2, model.Eval(i, x2, mid));
    x = x + ToD(x2, mid, denoised2) * (a.sigma_down - s[i]);
    x = x * a.scale + noise(s[i], s[i + 1]) * (o.s_noise * a.renoise);
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpmpp2sAncestralFlow(Model& model, at::Tensor x, const Sigmas& s,
                                                const NoiseSampler& noise,
                                                const SamplerOptions& o) {
  auto lambda = [](double sigma) { return std::log((1 - sigma) / sigma); };
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    const FlowAncestral a = FlowAncestralStep(s[i], s[i + 1], o.eta);
    if (s[i + 1] == 0) {
      x = x + ToD(x, s[i], denoised) * (a.sigma_down - s[i]);
    } else {
      // The midpoint in log-SNR; at sigma 1 the log-SNR is infinite and ComfyUI uses 0.9999.
      double sigma_mid = 0.9999;
      if (s[i] != 1.0) {
        const double mid = 0.5 * (lambda(s[i]) + lambda(a.sigma_down));
        sigma_mid = 1 / (std::exp(mid) + 1);
      }
      const double mid_ratio = sigma_mid / s[i];
      at::Tensor u = x * mid_ratio + denoised * (1 - mid_ratio);
      RL_ASSIGN_OR_RETURN(at::Tensor denoised2, model.Eval(i, u, sigma_mid));
      const double down_ratio = a.sigma_down / s[i];
      x = x * down_ratio + denoised2 * (1 - down_ratio);
    }
    if (s[i + 1] > 0 && o.eta > 0) {
      x = x * a.scale + noise(s[i], s[i + 1]) * (o.s_noise * a.renoise);
    }
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
    // ComfyUI's lms ends on the denoised estimate when the next sigma is 0 (k-diffusion's
    // integrates that step too).
    if (s[i + 1] == 0) {
      x = denoised;
      continue;
    }
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

// The SDE samplers work in ComfyUI's half-log-SNR lambda = log(alpha / sigma) with the data
// scale alpha: -log sigma and alpha = 1 for VE models, log((1 - sigma) / sigma) and alpha =
// 1 - sigma for rectified flow, so one formula serves both.
struct LogSnr {
  bool flow = false;
  double Lambda(double sigma) const {
    return flow ? std::log((1 - sigma) / sigma) : -std::log(sigma);
  }
  double SigmaOf(double lambda) const {
    return flow ? 1 / (1 + std::exp(lambda)) : std::exp(-lambda);
  }
  double Alpha(double sigma) const { return flow ? 1 - sigma : 1.0; }
};

LogSnr LogSnrFor(const SamplerOptions& o) {
  return {o.sampling != nullptr && o.sampling->prediction() == Prediction::kFlow};
}

// A flow schedule starting at sigma 1 has an infinite log-SNR there: ComfyUI starts such runs a
// hair inside (offset_first_sigma_for_snr).
Sigmas OffsetFirstSigma(Sigmas s, const SamplerOptions& o) {
  // Stored into ComfyUI's float32 sigma tensor.
  if (LogSnrFor(o).flow && s.size() > 1 && s[0] >= 1) {
    s[0] = static_cast<float>(o.sampling->PercentToSigma(1e-4));
  }
  return s;
}

// DPM-Solver++ (stochastic) in ComfyUI's arithmetic: its coefficients are float32 tensor ops on
// the float32 sigmas (log-SNR, its half-step sigma, the ancestral split), and this sampler's two
// model calls and two noise draws per step amplify their last bits more than any other (1e-5 to
// 1e-4 off with double coefficients); so the coefficients come from the same libtorch ops in the
// same order, and multiply the latents as ComfyUI's 0-d tensors do (as float32 scalars).
absl::StatusOr<at::Tensor> DpmppSde(Model& model, at::Tensor x, const Sigmas& sigmas,
                                    const NoiseSampler& noise, const SamplerOptions& o) {
  constexpr double r = 0.5, fac = 1 / (2 * r);
  const bool flow = LogSnrFor(o).flow;
  const Sigmas s = OffsetFirstSigma(sigmas, o);
  const bool stochastic = o.eta > 0 && o.s_noise > 0;
  auto f32 = [](double value) { return at::scalar_tensor(value, at::kFloat); };
  auto lambda_of = [flow](const at::Tensor& sigma) {
    return flow ? at::neg(at::logit(sigma)) : at::neg(at::log(sigma));
  };
  auto sigma_of = [flow](const at::Tensor& lambda) {
    return flow ? at::sigmoid(at::neg(lambda)) : at::exp(at::neg(lambda));
  };
  auto value = [](const at::Tensor& t) { return static_cast<double>(t.item<float>()); };
  // get_ancestral_step on 0-d tensors: (sigma_down, sigma_up).
  auto ancestral = [&](const at::Tensor& from, const at::Tensor& to) {
    if (o.eta == 0) return std::make_pair(to, f32(0));
    const at::Tensor candidate =
        at::sqrt(to * to * (from * from - to * to) / (from * from)) * o.eta;
    const at::Tensor up = at::lt(candidate, to).item<bool>() ? candidate : to;
    return std::make_pair(at::sqrt(to * to - up * up), up);
  };
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    if (s[i + 1] == 0) {
      x = denoised;
      continue;
    }
    const at::Tensor sigma_s = f32(s[i]), sigma_t = f32(s[i + 1]);
    const at::Tensor lambda_s = lambda_of(sigma_s), lambda_t = lambda_of(sigma_t);
    const at::Tensor h = lambda_t - lambda_s;
    const at::Tensor lambda_s_1 = lambda_s + h * r;
    const at::Tensor sigma_s_1 = sigma_of(lambda_s_1);
    const at::Tensor alpha_s = sigma_s * at::exp(lambda_s);
    const at::Tensor alpha_s_1 = sigma_s_1 * at::exp(lambda_s_1);
    const at::Tensor alpha_t = sigma_t * at::exp(lambda_t);

    auto [down1, up1] = ancestral(at::exp(at::neg(lambda_s)), at::exp(at::neg(lambda_s_1)));
    at::Tensor h_ = at::neg(at::log(down1)) - lambda_s;
    at::Tensor x2 = x * value(alpha_s_1 / alpha_s * at::exp(at::neg(h_))) -
                    denoised * value(alpha_s_1 * at::expm1(at::neg(h_)));
    if (stochastic) {
      x2 = x2 + noise(s[i], value(sigma_s_1)) * value(alpha_s_1) * o.s_noise * value(up1);
    }
    RL_ASSIGN_OR_RETURN(at::Tensor denoised2, model.Eval(i, x2, value(sigma_s_1)));

    auto [down2, up2] = ancestral(at::exp(at::neg(lambda_s)), at::exp(at::neg(lambda_t)));
    h_ = at::neg(at::log(down2)) - lambda_s;
    const at::Tensor mixed = denoised * (1 - fac) + denoised2 * fac;
    x = x * value(alpha_t / alpha_s * at::exp(at::neg(h_))) -
        mixed * value(alpha_t * at::expm1(at::neg(h_)));
    if (stochastic) x = x + noise(s[i], s[i + 1]) * value(alpha_t) * o.s_noise * value(up2);
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

absl::StatusOr<at::Tensor> Dpmpp2mSde(Model& model, at::Tensor x, const Sigmas& sigmas,
                                      const NoiseSampler& noise, const SamplerOptions& o) {
  const LogSnr snr = LogSnrFor(o);
  const Sigmas s = OffsetFirstSigma(sigmas, o);
  at::Tensor old;
  double h_last = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    double h = h_last;
    if (s[i + 1] == 0) {
      x = denoised;
    } else {
      h = snr.Lambda(s[i + 1]) - snr.Lambda(s[i]);
      const double h_eta = h * (o.eta + 1), alpha_t = snr.Alpha(s[i + 1]);
      x = x * (s[i + 1] / s[i] * std::exp(-h * o.eta)) + denoised * (alpha_t * -std::expm1(-h_eta));
      if (old.defined()) {
        const double ratio = h_last / h;  // midpoint solver, ComfyUI's default
        x = x + (denoised - old) * (0.5 * alpha_t * -std::expm1(-h_eta) / ratio);
      }
      if (o.eta > 0 && o.s_noise > 0) {
        x = x +
            noise(s[i], s[i + 1]) * (s[i + 1] * std::sqrt(-std::expm1(-2 * h * o.eta)) * o.s_noise);
      }
    }
    old = denoised;
    h_last = h;
  }
  return x;
}

absl::StatusOr<at::Tensor> Dpmpp3mSde(Model& model, at::Tensor x, const Sigmas& sigmas,
                                      const NoiseSampler& noise, const SamplerOptions& o) {
  const LogSnr snr = LogSnrFor(o);
  const Sigmas s = OffsetFirstSigma(sigmas, o);
  at::Tensor d1_prev, d2_prev;  // denoised_1, denoised_2
  bool have_h1 = false, have_h2 = false;
  double h1 = 0, h2 = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    double h = 0;
    if (s[i + 1] == 0) {
      x = denoised;
    } else {
      h = snr.Lambda(s[i + 1]) - snr.Lambda(s[i]);
      const double h_eta = h * (o.eta + 1), alpha_t = snr.Alpha(s[i + 1]);
      x = x * (s[i + 1] / s[i] * std::exp(-h * o.eta)) + denoised * (alpha_t * -std::expm1(-h_eta));
      const double phi2 = std::expm1(-h_eta) / h_eta + 1;
      if (have_h2) {
        const double r0 = h1 / h, r1 = h2 / h;
        at::Tensor d1_0 = (denoised - d1_prev) / r0;
        at::Tensor d1_1 = (d1_prev - d2_prev) / r1;
        at::Tensor d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1));
        at::Tensor d2 = (d1_0 - d1_1) / (r0 + r1);
        const double phi3 = phi2 / h_eta - 0.5;
        x = x + d1 * (alpha_t * phi2) - d2 * (alpha_t * phi3);
      } else if (have_h1) {
        x = x + (denoised - d1_prev) / (h1 / h) * (alpha_t * phi2);
      }
      if (o.eta > 0 && o.s_noise > 0) {
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

// ComfyUI's res_multistep (the deterministic second-order multistep exponential integrator of
// Zhang et al., arXiv 2308.02157): Euler first, then the previous denoised estimate gives the
// second-order term through phi_1 and phi_2.
absl::StatusOr<at::Tensor> ResMultistep(Model& model, at::Tensor x, const Sigmas& s) {
  auto phi1 = [](double t) { return std::expm1(t) / t; };
  auto phi2 = [&](double t) { return (phi1(t) - 1) / t; };
  at::Tensor old;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model.Step(i, x, s[i]));
    if (s[i + 1] == 0 || !old.defined()) {
      x = x + ToD(x, s[i], denoised) * (s[i + 1] - s[i]);
    } else {
      const double t = T(s[i]), t_next = T(s[i + 1]), t_prev = T(s[i - 1]);
      const double h = t_next - t;
      const double c2 = (t_prev - t) / h;  // the previous point, in units of this step (< 0)
      double b1 = phi1(-h) - phi2(-h) / c2, b2 = phi2(-h) / c2;
      if (!std::isfinite(b1)) b1 = 0;  // ComfyUI's nan_to_num
      if (!std::isfinite(b2)) b2 = 0;
      x = x * std::exp(-h) + (denoised * b1 + old * b2) * h;
    }
    old = denoised;
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
  // As ComfyUI computes it: scipy's integrate.quad over the basis polynomial, which QUADPACK's
  // 21-point Gauss-Kronrod rule integrates at once (its error estimate is then roundoff, far
  // under quad's epsrel), and the polynomial evaluated in float32: ComfyUI passes the sigmas as a
  // float32 NumPy array, and NumPy 2 keeps float32 when a Python float meets one. A 4th-order
  // step's coefficients reach ~20 (e.g. 0.556 -> 0.0135), so exact coefficients would differ
  // from ComfyUI's result by up to ~1e-5.
  static constexpr double kNodes[11] = {0.995657163025808080735527280689003,
                                        0.973906528517171720077964012084452,
                                        0.930157491355708226001207180059508,
                                        0.865063366688984510732096688423493,
                                        0.780817726586416897063717578345042,
                                        0.679409568299024406234327365114874,
                                        0.562757134668604683339000099272694,
                                        0.433395394129247190799265943165784,
                                        0.294392862701460198131126603103866,
                                        0.148874338981631210884826001129720,
                                        0.0};
  static constexpr double kWeights[11] = {
      0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
      0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
      0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
      0.123491976262065851077958109831074, 0.134709217311473325928054001771707,
      0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
      0.149445554002916905664936468389821};
  const double a = t[i], b = t[i + 1];
  auto basis = [&](double tau) -> double {
    float product = 1.0f;
    for (int k = 0; k < order; ++k) {
      if (k == j) continue;
      const float numerator = static_cast<float>(tau) - static_cast<float>(t[i - k]);
      const float denominator = static_cast<float>(t[i - j]) - static_cast<float>(t[i - k]);
      product *= numerator / denominator;
    }
    return product;
  };
  const double center = 0.5 * (a + b), half = 0.5 * (b - a);
  double total = kWeights[10] * basis(center);
  for (int n = 0; n < 10; ++n) {
    const double offset = half * kNodes[n];
    total += kWeights[n] * (basis(center - offset) + basis(center + offset));
  }
  return total * half;
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
  // On the CPU the initial noise already came from a generator seeded with `seed`; ComfyUI adds
  // one there so that the step noise does not replay it.
  at::Generator generator = GeneratorFor(like, like.is_cuda() ? seed : seed + 1);
  const auto sizes = like.sizes().vec();
  const auto options = like.options();
  return [generator, sizes, options](double, double) mutable {
    return at::randn(sizes, generator, options);
  };
}

bool UsesBrownianNoise(const std::string& sampler) {
  return sampler == "dpmpp_sde" || sampler == "dpmpp_2m_sde" || sampler == "dpmpp_3m_sde";
}

NoiseSampler BrownianNoiseSampler(const at::Tensor& like, uint64_t seed,
                                  const std::vector<double>& sigmas) {
  // ComfyUI: sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max(), float32.
  float sigma_min = 0, sigma_max = 0;
  for (double sigma : sigmas) {
    const float s = static_cast<float>(sigma);
    if (s > 0 && (sigma_min == 0 || s < sigma_min)) sigma_min = s;
    sigma_max = std::max(sigma_max, s);
  }
  auto tree =
      std::make_shared<BrownianTree>(at::zeros_like(like, at::kCPU), seed, sigma_min, sigma_max);
  const at::Device device = like.device();
  return [tree, device](double sigma, double sigma_next) {
    // BatchedBrownianTree: the increment over the sorted float32 times, its sign restored, moved to
    // the sigmas' device, then divided there by sqrt|sigma_next - sigma| as a float32 tensor.
    const float a = static_cast<float>(sigma), b = static_cast<float>(sigma_next);
    at::Tensor w = tree->Increment(std::min(a, b), std::max(a, b)).to(device);
    if (b < a) w = w * -1;
    const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat).device(device);
    return w / (at::scalar_tensor(b, f32) - at::scalar_tensor(a, f32)).abs().sqrt();
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
  // ComfyUI switches the ancestral samplers to their rectified-flow forms on flow models; the SDE
  // samplers handle both through the half-log-SNR; the ODE samplers need no change.
  const bool flow = LogSnrFor(options).flow;
  try {
    if (name == "euler" || name == "ddim") return Euler(model, x, sigmas);
    if (name == "euler_ancestral") {
      return flow ? EulerAncestralFlow(model, x, sigmas, noise, options)
                  : EulerAncestral(model, x, sigmas, noise, options);
    }
    if (name == "heun") return Heun(model, x, sigmas);
    if (name == "dpm_2") return Dpm2(model, x, sigmas);
    if (name == "dpm_2_ancestral") {
      return flow ? Dpm2AncestralFlow(model, x, sigmas, noise, options)
                  : Dpm2Ancestral(model, x, sigmas, noise, options);
    }
    if (name == "lms") return Lms(model, x, sigmas);
    if (name == "dpmpp_2s_ancestral") {
      return flow ? Dpmpp2sAncestralFlow(model, x, sigmas, noise, options)
                  : Dpmpp2sAncestral(model, x, sigmas, noise, options);
    }
    if (name == "dpmpp_sde") return DpmppSde(model, x, sigmas, noise, options);
    if (name == "dpmpp_2m") return Dpmpp2m(model, x, sigmas);
    if (name == "dpmpp_2m_sde") return Dpmpp2mSde(model, x, sigmas, noise, options);
    if (name == "dpmpp_3m_sde") return Dpmpp3mSde(model, x, sigmas, noise, options);
    if (name == "lcm") return Lcm(model, x, sigmas, noise, options);
    if (name == "res_multistep") return ResMultistep(model, x, sigmas);
    if (name == "uni_pc") return internal::UniPc(model, x, sigmas, internal::UniPcVariant::kBh1);
    if (name == "uni_pc_bh2") {
      return internal::UniPc(model, x, sigmas, internal::UniPcVariant::kBh2);
    }
  } catch (const c10::Error& error) {
    return absl::InternalError(
        absl::StrCat("sampler ", name, ": ", error.what_without_backtrace()));
  }
  return absl::InternalError(absl::StrCat("sampler ", name, " is listed but has no loop"));
}

}  // namespace raylight::samplers
