#include "samplers/mesh_sample.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace raylight::samplers {

Denoiser CfgParallelDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg,
                             comm::Communicator& group, std::shared_ptr<EasyCache> cache) {
  return [model, &sampling, cfg, &group, cache](const at::Tensor& x,
                                                double sigma) -> absl::StatusOr<at::Tensor> {
    const at::Tensor input = sampling.CalculateInput(sigma, x);
    const double timestep = sampling.Timestep(sigma);
    const bool both = cfg != 1.0;
    std::optional<BranchOutputs> outputs;
    if (cache != nullptr) outputs = cache->Reuse(input, sigma, both, 1);
    if (!outputs.has_value()) {
      const bool cond = !both || group.rank() == 0;
      auto output = model(input, timestep, cond ? Branch::kCond : Branch::kUncond);
      if (!output.ok()) return output.status();
      if (!both) {
        outputs = BranchOutputs{*std::move(output), at::Tensor()};
      } else {
        // [2, ...]: cond from cfg rank 0, uncond from cfg rank 1, raw outputs on both ranks.
        auto gathered = group.AllGather(output->unsqueeze(0).contiguous(), 0);
        if (!gathered.ok()) {
          return absl::Status(gathered.status().code(),
                              absl::StrCat("cfg exchange: ", gathered.status().message()));
        }
        outputs = BranchOutputs{(*gathered)[0], (*gathered)[1]};
      }
      if (cache != nullptr) cache->Computed(input, *outputs);
    }
    return GuidedDenoised(sampling, sigma, x, *outputs, cfg);  // the same values on both ranks
  };
}

Denoiser MeshDenoiser(const ModelFn& model, const ModelSampling& sampling, double cfg,
                      const parallel::Mesh& mesh, const parallel::MeshPlan& plan,
                      std::optional<bool> batch_cfg, std::shared_ptr<EasyCache> cache) {
  if (plan.split_cfg && mesh.cfg() != nullptr) {
    return CfgParallelDenoiser(model, sampling, cfg, *mesh.cfg(), std::move(cache));
  }
  return CfgDenoiser(model, sampling, cfg, batch_cfg.value_or(mesh.shape().ulysses > 1),
                     std::move(cache));
}

Branch FirstCallBranch(double cfg, const parallel::Mesh& mesh, const parallel::MeshPlan& plan,
                       std::optional<bool> batch_cfg) {
  if (cfg == 1.0) return Branch::kCond;
  if (plan.split_cfg && mesh.cfg() != nullptr) {
    return mesh.cfg()->rank() == 0 ? Branch::kCond : Branch::kUncond;
  }
  return batch_cfg.value_or(mesh.shape().ulysses > 1) ? Branch::kBoth : Branch::kCond;
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
  auto out = KSampleWith(MeshDenoiser(model, sampling, options.cfg, mesh, plan, options.batch_cfg,
                                      EasyCacheFor(options, sampling)),
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
