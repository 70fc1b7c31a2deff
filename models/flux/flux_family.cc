#include "models/flux/flux_family.h"

#include "models/flux/flux_conditioning.h"
#include "models/flux/flux_family_inspect.h"
#include "models/flux/flux_keys.h"
#include "models/flux/flux_memory.h"
#include "models/flux/flux_model.h"
#include "runtime/common/status_macros.h"

namespace raylight::models::flux {
namespace {

class FluxConditionedForward final : public ConditionedForward {
 public:
  FluxConditionedForward(const FluxConfig& config, WeightProvider& weights, FluxInputs positive,
                         FluxInputs negative, bool frame_axis)
      : config_(config),
        weights_(weights),
        positive_(std::move(positive)),
        negative_(std::move(negative)),
        frame_axis_(frame_axis) {}

  absl::StatusOr<at::Tensor> Forward(const at::Tensor& x, double timestep, ConditioningRows rows,
                                     const ParallelContext& sequence,
                                     ResidualCache* cache) override {
    RL_ASSIGN_OR_RETURN(FluxInputs batch, Batch(x, timestep, rows));
    batch.step_cache = cache;
    auto out = FluxForward(config_, batch, sequence, weights_);
    if (!out.ok() || !frame_axis_) return out;
    return out->unsqueeze(2);
  }

  absl::StatusOr<bool> WarmUp(const at::Tensor& x, ConditioningRows rows,
                              const ParallelContext& sequence) override {
    RL_ASSIGN_OR_RETURN(FluxInputs batch, Batch(x, /*timestep=*/999.0, rows));
    RL_RETURN_IF_ERROR(WarmUpFluxForward(config_, std::move(batch), sequence, weights_));
    return true;
  }

  bool BatchesExactly() const override { return flux::BatchesExactly(positive_, negative_); }

 private:
  // The inputs of a call on `rows` (a kBoth batch: the positive's rows, then the negative's).
  absl::StatusOr<FluxInputs> Batch(const at::Tensor& x, double timestep, ConditioningRows rows) {
    if (frame_axis_ && (x.dim() != 5 || x.size(2) != 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("x: ", c10::str(x.sizes()), "; ", config_.name, " takes [B, C, 1, H, W]"));
    }
    const at::Tensor image = frame_axis_ ? x.squeeze(2) : x;
    auto inputs = [&](const FluxInputs& conditioning) {
      FluxInputs in = conditioning;
      in.x = image;
      in.t = at::full({image.size(0)}, timestep, image.options().dtype(at::kFloat));
      in.context = in.context.expand({image.size(0), -1, -1});
      if (in.pooled.defined()) in.pooled = in.pooled.expand({image.size(0), -1});
      if (in.guidance.defined()) in.guidance = in.guidance.expand({image.size(0)});
      return in;
    };
    return rows == ConditioningRows::kBoth
               ? BatchInputs(inputs(positive_), inputs(negative_))
               : inputs(rows == ConditioningRows::kPositive ? positive_ : negative_);
  }

  const FluxConfig& config_;
  WeightProvider& weights_;
  const FluxInputs positive_, negative_;
  const bool frame_axis_;
};

}  // namespace

std::unique_ptr<ConditionedForward> MakeFluxForward(const FluxConfig& config,
                                                    WeightProvider& weights, FluxInputs positive,
                                                    FluxInputs negative, bool frame_axis) {
  return std::make_unique<FluxConditionedForward>(config, weights, std::move(positive),
                                                  std::move(negative), frame_axis);
}

namespace {

class FluxArchitectureModel final : public DiffusionModel {
 public:
  FluxArchitectureModel(const FluxArchitecture& architecture, LoadedFlux loaded)
      : DiffusionModel(architecture.info(loaded.config)),
        architecture_(architecture),
        loaded_(std::move(loaded)) {}
  WeightProvider& weights() override { return *loaded_.weights; }
  const LoraReport& loras() const override { return loaded_.loras; }
  bool SameArchitecture(const DiffusionModel& other) const override {
    const auto* model = dynamic_cast<const FluxArchitectureModel*>(&other);
    return model != nullptr && model->info().family == info().family &&
           model->loaded_.config.SameArchitecture(loaded_.config);
  }
  const LatentFormat& latent_format() const override { return architecture_.latent_format(); }
  absl::StatusOr<std::unique_ptr<ConditionedForward>> Condition(const std::string& positive,
                                                                const std::string& negative,
                                                                at::Device device) override {
    auto cond = architecture_.read_conditioning(positive, "positive", loaded_.config, device);
    if (!cond.ok()) return cond.status();
    FluxInputs uncond = *cond;
    if (!negative.empty()) {
      auto read = architecture_.read_conditioning(negative, "negative", loaded_.config, device);
      if (!read.ok()) return read.status();
      uncond = *std::move(read);
    }
    return MakeFluxForward(loaded_.config, weights(), *std::move(cond), std::move(uncond),
                           architecture_.frame_axis);
  }

 private:
  const FluxArchitecture architecture_;
  LoadedFlux loaded_;
};

struct Opened {
  Checkpoint checkpoint;
  FluxConfig config;
};

absl::StatusOr<Opened> Open(const FluxArchitecture& architecture,
                            const std::vector<std::string>& paths) {
  auto checkpoint = OpenCheckpoint(paths, architecture.normalize);
  if (!checkpoint.ok()) return checkpoint.status();
  auto config = architecture.detect(KeyShapesOf(*checkpoint));
  if (!config.ok()) return config.status();
  return Opened{*std::move(checkpoint), *config};
}

// Flux's conditioning file as the forward's inputs.
absl::StatusOr<FluxInputs> ReadFluxConditioning(const std::string& bytes, const std::string& field,
                                                const FluxConfig& config, at::Device device) {
  auto parsed = ParseFluxConditioning(bytes, field, config);
  if (!parsed.ok()) return parsed.status();
  FluxInputs in;
  in.context = parsed->text.to(device);
  in.pooled = parsed->pooled.to(device);
  // Kontext's references enter the model's space as ComfyUI's extra_conds takes them there.
  for (const at::Tensor& ref : parsed->reference_latents) {
    in.references.push_back(ProcessIn(Flux1LatentFormat(), ref).to(device));
  }
  in.guidance = at::full({1}, parsed->guidance, at::TensorOptions().device(device));
  return in;
}

}  // namespace

absl::StatusOr<LoadedFlux> LoadFluxArchitecture(const FluxArchitecture& architecture,
                                                const std::vector<std::string>& paths,
                                                const PlacementOptions& options,
                                                const WeightPlacement& placement,
                                                const std::vector<LoraFile>& loras) {
  auto opened = Open(architecture, paths);
  if (!opened.ok()) return opened.status();
  auto placed = PlaceCheckpoint(
      opened->checkpoint, FluxBlockLayout(opened->config), options, placement, loras,
      architecture.normalize, opened->config.name,
      loras.empty() ? LoraRowMap() : LoraRowsOf(opened->checkpoint, opened->config));
  if (!placed.ok()) return placed.status();
  return LoadedFlux{opened->config, std::move(placed->weights), std::move(placed->loras)};
}

FamilyModels FluxArchitectureModels(FluxArchitecture architecture) {
  const std::string name = architecture.family;
  auto shared = std::make_shared<const FluxArchitecture>(std::move(architecture));
  return FamilyModels{
      .name = name,
      .load = [shared](const std::vector<std::string>& paths, const PlacementOptions& options,
                       const WeightPlacement& placement, const std::vector<LoraFile>& loras)
          -> absl::StatusOr<std::unique_ptr<DiffusionModel>> {
        auto loaded = LoadFluxArchitecture(*shared, paths, options, placement, loras);
        if (!loaded.ok()) return loaded.status();
        return std::make_unique<FluxArchitectureModel>(*shared, *std::move(loaded));
      },
      .measure = [shared](const std::vector<std::string>& paths,
                          at::ScalarType dtype) -> absl::StatusOr<MeasuredModel> {
        auto opened = Open(*shared, paths);
        if (!opened.ok()) return opened.status();
        PlacementOptions options;
        options.compute_dtype = dtype;
        auto bytes =
            MeasurePlacedBytes(opened->checkpoint, FluxBlockLayout(opened->config), options);
        if (!bytes.ok()) return bytes.status();
        MeasuredModel measured;
        measured.bytes.block_bytes = bytes->block_bytes;
        measured.bytes.num_blocks = static_cast<int>(opened->config.num_blocks());
        measured.bytes.global_bytes = bytes->global_bytes;
        measured.activation_bytes = [config = opened->config, dtype](int64_t tokens, int batch) {
          return FluxActivationBytes(config, tokens, batch, dtype);
        };
        return measured;
      }};
}

FamilyModels Models() {
  return FluxArchitectureModels(
      {.family = "flux",
       .normalize = NormalizeFluxKey,
       .detect = [](const KeyShapes& shapes) -> absl::StatusOr<FluxConfig> {
         auto config = DetectFluxConfig(shapes);
         if (!config.ok()) return config.status();
         if (auto status = CheckFluxWeights(shapes, *config); !status.ok()) return status;
         return config;
       },
       .info = FluxModelInfo,
       .latent_format = Flux1LatentFormat,
       .read_conditioning = ReadFluxConditioning});
}

}  // namespace raylight::models::flux
