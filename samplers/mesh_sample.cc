#include "samplers/mesh_sample.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace raylight::samplers {

Denoiser CfgParallelDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg,
                             comm::Communicator& group) {
  return [model, &sampling, cfg, &group](const at::Tensor& x,
                                         double sigma) -> absl::StatusOr<at::Tensor> {
    const at::Tensor input = sampling.CalculateInput(sigma, x);
    const double timestep = sampling.Timestep(sigma);
    const bool cond = cfg == 1.0 || group.rank() == 0;
    auto output = model(input, timestep, cond ? Branch::kCond : Branch::kUncond);
    if (!output.ok()) return output.status();
    at::Tensor denoised = sampling.CalculateDenoised(sigma, *output, x);
    if (cfg == 1.0) return denoised;
    // [2, ...]: cond from cfg rank 0, uncond from cfg rank 1; then CfgDenoiser's formula.
    auto both = group.AllGather(denoised.unsqueeze(0).contiguous(), 0);
    if (!both.ok()) {
      return absl::Status(both.status().code(),
                          absl::StrCat("cfg exchange: ", both.status().message()));
    }
    at::Tensor denoised_cond = (*both)[0], denoised_uncond = (*both)[1];
    return denoised_uncond + (denoised_cond - denoised_uncond) * cfg;
  };
}

Denoiser MeshDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg,
                      const parallel::Mesh& mesh, const parallel::MeshPlan& plan,
                      std::optional<bool> batch_cfg) {
  if (plan.split_cfg && mesh.cfg() != nullptr) {
    return CfgParallelDenoiser(model, sampling, cfg, *mesh.cfg());
  }
  return CfgDenoiser(model, sampling, cfg, batch_cfg.value_or(mesh.shape().ulysses > 1));
}

absl::StatusOr<at::Tensor> KSampleOnMesh(const ModelFn& model, const ModelSampling& sampling,
                                         const at::Tensor& latent, KSamplerOptions options,
                                         const parallel::Mesh& mesh, const parallel::MeshPlan& plan,
                                         const std::vector<uint64_t>& seeds,
                                         const StepCallback& callback) {
  const int dp = mesh.shape().dp, dp_rank = mesh.coords().dp;
  if (!seeds.empty() && static_cast<int>(seeds.size()) != dp) {
    return absl::InvalidArgumentError(
        absl::StrCat("seeds: ", seeds.size(), " given for a data-parallel degree of ", dp));
  }
  options.seed = seeds.empty() ? options.seed + dp_rank : seeds[dp_rank];
  auto out = KSampleWith(MeshDenoiser(model, sampling, options.cfg, mesh, plan, options.batch_cfg),
                         sampling, latent, options, callback);
  if (!out.ok()) return out.status();
  at::Tensor mine = out->unsqueeze(0).contiguous();
  if (mesh.dp() == nullptr) return mine;
  auto all = mesh.dp()->AllGather(mine, 0);
  if (!all.ok()) {
    return absl::Status(all.status().code(),
                        absl::StrCat("data-parallel gather: ", all.status().message()));
  }
  return *all;
}

}  // namespace raylight::samplers
