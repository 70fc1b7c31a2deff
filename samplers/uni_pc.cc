#include "samplers/uni_pc.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <utility>

#include "runtime/common/status_macros.h"
#include "samplers/sampler_names.h"

namespace raylight::samplers::internal {
namespace {

// The VP view of a VE sigma as ComfyUI's SigmaConvert computes it: through the log mean
// coefficient, in float32 (its sigmas are a float32 tensor). At small sigmas 1 - exp(2 lmc)
// cancels, which moves std and lambda by up to ~1e-5 relative from their exact values; the
// solver's coefficients, and so ComfyUI's result, carry that, so ours use the same arithmetic.
float LogMeanCoeff(double sigma) {
  const float s = static_cast<float>(sigma);
  return 0.5f * std::log(1.0f / (s * s + 1.0f));
}
double Alpha(double sigma) { return std::exp(LogMeanCoeff(sigma)); }
double Std(double sigma) { return std::sqrt(1.0f - std::exp(2.0f * LogMeanCoeff(sigma))); }
double Lambda(double sigma) {  // log(alpha / std)
  const float lmc = LogMeanCoeff(sigma);
  return lmc - 0.5f * std::log(1.0f - std::exp(2.0f * lmc));
}

struct Point {
  double sigma;
  at::Tensor model;  // the data prediction at this point
};

class Solver {
 public:
  Solver(StepModel& model, UniPcVariant variant) : model_(model), variant_(variant) {}

  // The data prediction for the VP-space x at sigma: the VE denoiser at x * sqrt(sigma^2 + 1).
  // ComfyUI's UniPC asks for it as a noise prediction and converts back (eps = (x_ve -
  // denoised) / sigma, x0 = (x_vp - std * eps) / alpha), which at small sigmas costs float32
  // precision; the same round trip here gives its result. UniPC evaluates once per sigma, so
  // every evaluation is its step's first (reported).
  absl::StatusOr<at::Tensor> Data(int step, const at::Tensor& x_vp, double sigma) {
    const float s = static_cast<float>(sigma);
    const at::Tensor x_ve = x_vp * std::pow(s * s + 1.0f, 0.5f);
    RL_ASSIGN_OR_RETURN(at::Tensor denoised, model_.Step(step, x_ve, sigma));
    const at::Tensor eps = (x_ve - denoised) / s;
    return (x_vp - eps * Std(sigma)) / Alpha(sigma);
  }

  // One UniPC step from the newest point of `history` to sigma_t, of order `order` (using the
  // `order` newest points). Returns x at sigma_t and, when the corrector ran, the model there
  // (evaluated at the predicted x, as UniPC reuses it for the next step).
  absl::StatusOr<std::pair<at::Tensor, at::Tensor>> Update(const at::Tensor& x,
                                                           const std::deque<Point>& history,
                                                           double sigma_t, int order,
                                                           bool use_corrector, int step) {
    const Point& newest = history.back();
    const double lambda_prev = Lambda(newest.sigma), lambda_t = Lambda(sigma_t);
    const double h = lambda_t - lambda_prev;
    std::vector<double> rks;
    std::vector<at::Tensor> d1s;
    for (int i = 1; i < order; ++i) {
      const Point& older = history[history.size() - 1 - i];
      const double rk = (Lambda(older.sigma) - lambda_prev) / h;
      rks.push_back(rk);
      d1s.push_back((older.model - newest.model) / rk);
    }
    rks.push_back(1.0);

    const double hh = -h;  // data prediction
    const double h_phi_1 = std::expm1(hh);
    const double b_h = variant_ == UniPcVariant::kBh1 ? hh : std::expm1(hh);
    std::vector<std::vector<double>> r(order, std::vector<double>(order));
    std::vector<double> b(order);
    double h_phi_k = h_phi_1 / hh - 1, factorial = 1;
    for (int i = 1; i <= order; ++i) {
      for (int j = 0; j < order; ++j) r[i - 1][j] = std::pow(rks[j], i - 1);
      b[i - 1] = h_phi_k * factorial / b_h;
      factorial *= i + 1;
      h_phi_k = h_phi_k / hh - 1 / factorial;
    }

    const double alpha_t = Alpha(sigma_t);
    const at::Tensor x_base =
        x * (Std(sigma_t) / Std(newest.sigma)) - newest.model * (alpha_t * h_phi_1);
    at::Tensor x_t = x_base;
    if (!d1s.empty()) {
      std::vector<double> rhos_p;
      if (order == 2) {
        rhos_p = {0.5};
      } else {
        std::vector<std::vector<double>> r_sub(order - 1);
        for (int i = 0; i < order - 1; ++i) r_sub[i].assign(r[i].begin(), r[i].end() - 1);
        rhos_p = SolveSmall(r_sub, std::vector<double>(b.begin(), b.end() - 1));
      }
      at::Tensor residual = d1s[0] * rhos_p[0];
      for (size_t k = 1; k < d1s.size(); ++k) residual = residual + d1s[k] * rhos_p[k];
      x_t = x_base - residual * (alpha_t * b_h);
    }
    if (!use_corrector) return std::make_pair(x_t, at::Tensor());

    const std::vector<double> rhos_c = order == 1 ? std::vector<double>{0.5} : SolveSmall(r, b);
    RL_ASSIGN_OR_RETURN(at::Tensor model_t, Data(step, x_t, sigma_t));
    at::Tensor correction = (model_t - newest.model) * rhos_c.back();
    for (size_t k = 0; k < d1s.size(); ++k) correction = correction + d1s[k] * rhos_c[k];
    return std::make_pair(x_base - correction * (alpha_t * b_h), model_t);
  }

 private:
  StepModel& model_;
  const UniPcVariant variant_;
};

}  // namespace

std::vector<double> SolveSmall(std::vector<std::vector<double>> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t col = 0; col < n; ++col) {
    size_t pivot = col;
    for (size_t row = col + 1; row < n; ++row) {
      if (std::abs(a[row][col]) > std::abs(a[pivot][col])) pivot = row;
    }
    std::swap(a[col], a[pivot]);
    std::swap(b[col], b[pivot]);
    for (size_t row = col + 1; row < n; ++row) {
      const double f = a[row][col] / a[col][col];
      for (size_t k = col; k < n; ++k) a[row][k] -= f * a[col][k];
      b[row] -= f * b[col];
    }
  }
  std::vector<double> out(n);
  for (size_t i = n; i-- > 0;) {
    double sum = b[i];
    for (size_t k = i + 1; k < n; ++k) sum -= a[i][k] * out[k];
    out[i] = sum / a[i][i];
  }
  return out;
}

absl::StatusOr<at::Tensor> UniPc(StepModel& model, at::Tensor x, const std::vector<double>& sigmas,
                                 UniPcVariant variant) {
  std::vector<double> t = sigmas;
  // UniPC cannot step to sigma 0; ComfyUI's sigmas are float32, so its 0.001 is too.
  if (t.back() == 0) t.back() = static_cast<float>(kUniPcLastSigma);
  const int steps = static_cast<int>(t.size()) - 1;
  const int order = std::min(3, steps - 1);
  Solver solver(model, variant);

  x = x * Alpha(t[0]);  // to VP space
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
  return x / Alpha(t.back());  // back to VE space
}

}  // namespace raylight::samplers::internal
