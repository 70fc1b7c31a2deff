#include "samplers/uni_pc.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <utility>

#include "runtime/common/status_macros.h"
#include "samplers/sampler_names.h"

namespace raylight::samplers::internal {
namespace {

// ComfyUI's UniPC does all its scalar arithmetic on float32 tensors of one element (the batch's
// timestep), and so do we, through the same libtorch ops in the same order: the VP std cancels
// at small sigmas (1 - exp(2 lmc) at sigma 0.001 is 1e-6, where one float32 ulp of the exp is 6%),
// so a log or exp that differs from torch's by one ulp (glibc's logf does, in ~2% of arguments)
// moves the final step's coefficients by percents and the result by ~1e-4.
at::Tensor Scalar(double value) { return at::full({1}, value, at::TensorOptions(at::kFloat)); }

// SigmaConvert: the VE sigmas read as a VP schedule.
at::Tensor LogMeanCoeff(const at::Tensor& sigma) {
  return at::log(at::reciprocal(sigma * sigma + 1)) * 0.5;
}
at::Tensor Alpha(const at::Tensor& sigma) { return at::exp(LogMeanCoeff(sigma)); }
at::Tensor Std(const at::Tensor& sigma) { return at::sqrt(1. - at::exp(LogMeanCoeff(sigma) * 2.)); }
at::Tensor Lambda(const at::Tensor& sigma) {  // log(alpha / std)
  const at::Tensor lmc = LogMeanCoeff(sigma);
  return lmc - at::log(1. - at::exp(lmc * 2.)) * 0.5;
}

// A per-batch coefficient ([1]: the batch shares one timestep) as a 0-d tensor, which multiplies
// x on any device (ComfyUI's expand_dims gives the same values).
at::Tensor Across(const at::Tensor& coefficient) { return coefficient.reshape({}); }

struct Point {
  at::Tensor sigma;  // [1] float32
  at::Tensor model;  // the data prediction at this point
};

class Solver {
 public:
  Solver(StepModel& model, UniPcVariant variant) : model_(model), variant_(variant) {}

  // The data prediction for the VP-space x at sigma: ComfyUI asks the VE denoiser for a noise
  // prediction at x * sqrt(sigma^2 + 1) (eps = (x_ve - denoised) / sigma) and converts it back
  // (x0 = (x_vp - std * eps) / alpha); the same round trip here gives its result. UniPC
  // evaluates once per sigma, so every evaluation is its step's first (reported).
  absl::StatusOr<at::Tensor> Data(int step, const at::Tensor& x_vp, const at::Tensor& sigma) {
    const at::Tensor s = Across(sigma);
    const at::Tensor x_ve = x_vp * at::sqrt(at::pow(s, 2) + 1.0);
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model_.Step(step, x_ve, sigma.item<float>()));
    const at::Tensor eps = (x_ve - denoised) / s;
    return (x_vp - Across(Std(sigma)) * eps) / Across(Alpha(sigma));
  }

  // One UniPC step from the newest point of `history` to sigma_t, of order `order` (using the
  // `order` newest points). Returns x at sigma_t and, when the corrector ran, the model there
  // (evaluated at the predicted x, as UniPC reuses it for the next step).
  absl::StatusOr<std::pair<at::Tensor, at::Tensor>> Update(const at::Tensor& x,
                                                           const std::deque<Point>& history,
                                                           const at::Tensor& sigma_t, int order,
                                                           bool use_corrector, int step) {
    const Point& newest = history.back();
    const at::Tensor lambda_prev = Lambda(newest.sigma);
    const at::Tensor h = Lambda(sigma_t) - lambda_prev;
    std::vector<at::Tensor> rks, d1s;
    for (int i = 1; i < order; ++i) {
      const Point& older = history[history.size() - 1 - i];
      const at::Tensor rk = ((Lambda(older.sigma) - lambda_prev) / h)[0];
      rks.push_back(rk);
      d1s.push_back((older.model - newest.model) / rk);
    }
    rks.push_back(at::ones({}, at::kFloat));
    const at::Tensor rk_all = at::stack(rks);

    const at::Tensor hh = -h[0];  // data prediction
    const at::Tensor h_phi_1 = at::expm1(hh);
    const at::Tensor b_h = variant_ == UniPcVariant::kBh1 ? hh : at::expm1(hh);
    std::vector<at::Tensor> r_rows, b_rows;
    at::Tensor h_phi_k = h_phi_1 / hh - 1;
    int64_t factorial = 1;
    for (int i = 1; i <= order; ++i) {
      r_rows.push_back(at::pow(rk_all, i - 1));
      b_rows.push_back(h_phi_k * factorial / b_h);
      factorial *= i + 1;
      h_phi_k = h_phi_k / hh - 1.0 / static_cast<double>(factorial);
    }
    const at::Tensor r = at::stack(r_rows), b = at::stack(b_rows);

    const at::Tensor alpha_t = Alpha(sigma_t);
    const at::Tensor x_base =
        Across(Std(sigma_t) / Std(newest.sigma)) * x - Across(alpha_t * h_phi_1) * newest.model;
    at::Tensor d1_stack;
    at::Tensor x_t = x_base;
    if (!d1s.empty()) {
      d1_stack = at::stack(d1s, 1);
      const at::Tensor rhos_p =
          order == 2 ? Scalar(0.5)
                     : at::linalg_solve(r.slice(0, 0, order - 1).slice(1, 0, order - 1),
                                        b.slice(0, 0, order - 1));
      x_t = x_base - Across(alpha_t * b_h) *
                         at::tensordot(d1_stack, rhos_p.to(d1_stack.options()), {1}, {0});
    }
    if (!use_corrector) return std::make_pair(x_t, at::Tensor());

    const at::Tensor rhos_c = order == 1 ? Scalar(0.5) : at::linalg_solve(r, b);
    RL_ASSIGN_OR_RETURN(at::Tensor model_t, Data(step, x_t, sigma_t));
    const at::Tensor d1_t = model_t - newest.model;
    at::Tensor correction = rhos_c[order - 1] * d1_t;
    if (d1_stack.defined()) {
      correction =
          at::tensordot(d1_stack, rhos_c.slice(0, 0, order - 1).to(d1_stack.options()), {1}, {0}) +
          correction;
    }
    return std::make_pair(x_base - Across(alpha_t * b_h) * correction, model_t);
  }

 private:
  StepModel& model_;
  const UniPcVariant variant_;
};

}  // namespace

absl::StatusOr<at::Tensor> UniPc(StepModel& model, at::Tensor x, const std::vector<double>& sigmas,
                                 UniPcVariant variant) {
  // ComfyUI's timesteps: the float32 sigmas, a final 0 replaced by 0.001.
  std::vector<at::Tensor> t;
  for (double sigma : sigmas) t.push_back(Scalar(sigma));
  if (sigmas.back() == 0) t.back() = Scalar(kUniPcLastSigma);
  const int steps = static_cast<int>(t.size()) - 1;
  const int order = std::min(3, steps - 1);
  Solver solver(model, variant);

  x = x / Across(at::sqrt(at::pow(t[0], 2.0) + 1.0));  // to VP space, as ComfyUI
  std::deque<Point> history;
  RL_ASSIGN_OR_RETURN(at::Tensor first, solver.Data(0, x, t[0]));
  history.push_back({t[0], first});
  for (int step_index = 1; step_index < steps; ++step_index) {
    if (step_index < order) {  // warm-up: orders 1, 2, ... from the points so far
      RL_ASSIGN_OR_RETURN(auto next,
                          solver.Update(x, history, t[step_index], step_index, true, step_index));
      x = next.first;
      history.push_back({t[step_index], next.second});
      continue;
    }
    const int last = step_index == steps - 1 ? steps : step_index;  // the last one also ends
    for (int step = step_index; step <= last; ++step) {
      const int step_order = std::min(order, steps + 1 - step);
      const bool use_corrector = step != steps;
      RL_ASSIGN_OR_RETURN(auto next,
                          solver.Update(x, history, t[step], step_order, use_corrector, step));
      x = next.first;
      history.push_back({t[step], next.second});
      if (static_cast<int>(history.size()) > order) history.pop_front();
    }
  }
  return x / Across(Alpha(t.back()));  // back to VE space
}

}  // namespace raylight::samplers::internal
