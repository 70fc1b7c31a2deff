#include "actors/diffusion/video_output.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "actors/diffusion/dtype_name.h"
#include "models/vae/video_file.h"
#include "runtime/common/status_macros.h"

namespace raylight::actors {

absl::StatusOr<models::vae::WanVae*> VideoOutput::Loaded(const std::vector<std::string>& files,
                                                         at::ScalarType dtype) {
  image_vae_.Evict();
  return vae_.Get(files, dtype, "vae", [&] {
    models::vae::WanVaeOptions options;
    options.device = device_;
    options.dtype = dtype;
    return models::vae::WanVae::Load(files, options);
  });
}

absl::Status VideoOutput::WithVae(const std::vector<std::string>& files, at::ScalarType dtype,
                                  absl::FunctionRef<absl::Status(const models::vae::WanVae&)> use) {
  absl::MutexLock lock(&mutex_);
  RL_ASSIGN_OR_RETURN(models::vae::WanVae * vae, Loaded(files, dtype));
  return use(*vae);
}

absl::StatusOr<DecodedOutput> VideoOutput::Decode(const VideoOutputRequest& request,
                                                  const at::Tensor& latent,
                                                  comm::Communicator& world) {
  const auto start = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mutex_);
  if (request.vae_kind == "kl") return DecodeImages(request, latent, world);
  RL_ASSIGN_OR_RETURN(models::vae::WanVae * vae, Loaded(request.vae_files, request.dtype));
  if (request.output == "frames") {
    // Frames travel back in one message (the RPC layer's kMaxResultBytes, 1 GiB).
    const models::vae::WanVaeConfig& c = vae->config();
    const int64_t bytes = latent.size(0) * c.DecodedFrames(latent.size(2)) * latent.size(3) *
                          latent.size(4) * c.spatial_factor() * c.spatial_factor() * 3;
    if (bytes > (int64_t{1} << 30) - (int64_t{1} << 20)) {
      return absl::InvalidArgumentError(
          absl::StrCat("output: ", bytes,
                       " bytes of frames exceed the 1 GiB a result may hold; ask for "
                       "'video' (or fewer frames)"));
    }
  }
  // Bands over the whole group when every rank gets a latent row; otherwise rank 0 alone
  // (every rank takes the same branch: the latent's shape is the same on all).
  const bool banded = latent.size(-2) >= world.size();
  absl::StatusOr<models::vae::RowBands> bands =
      banded ? models::vae::RowBands::Split(&world, latent.size(-2)) : models::vae::RowBands();
  if (!bands.ok()) return bands.status();
  DecodedOutput decoded;
  std::vector<at::Tensor> bytes;
  // Alone (one rank, or rank 0 of a group too short for bands) on a device too full for the
  // whole frame: tiles. Bands already divide the memory by the group's size.
  const models::vae::WanVaeConfig& config = vae->config();
  const int64_t height = latent.size(3) * config.spatial_factor();
  const int64_t width = latent.size(4) * config.spatial_factor();
  const bool tiled = !bands->split() && request.free_bytes > 0 &&
                     vae->DecodePeakBytes(height, width) > request.free_bytes;
  const models::vae::WanVaeTiling tiling =
      tiled ? vae->TilingWithin(request.free_bytes) : models::vae::WanVaeTiling();
  if (banded || world.rank() == 0) {
    auto sink = [&bytes](const at::Tensor& frames) {
      bytes.push_back(models::vae::PixelsToBytes(frames));
      return absl::OkStatus();
    };
    for (int64_t i = 0; i < latent.size(0); ++i) {
      RL_RETURN_IF_ERROR(tiled ? vae->DecodeTiled(latent.narrow(0, i, 1), tiling, sink)
                               : vae->Decode(latent.narrow(0, i, 1), *bands, sink));
    }
  }
  if (tiled) decoded.tile = tiling.size;
  if (world.rank() == 0) {
    const at::Tensor all = at::cat(bytes, 0);
    decoded.frames = all.size(0);
    const double fps = request.fps > 0 ? request.fps : (vae->config().z_dim == 48 ? 24.0 : 16.0);
    RL_ASSIGN_OR_RETURN(models::vae::VideoFile file,
                        models::vae::EncodeVideoFile(
                            all, {.kind = request.output, .fps = fps, .crf = request.crf}));
    decoded.file = std::move(file.bytes);
    decoded.format = file.format;
  }
  decoded.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return decoded;
}

absl::StatusOr<DecodedOutput> VideoOutput::DecodeImages(const VideoOutputRequest& request,
                                                        const at::Tensor& latent,
                                                        comm::Communicator& world) {
  const auto start = std::chrono::steady_clock::now();
  DecodedOutput decoded;
  if (world.rank() != 0) return decoded;  // rank 0 decodes alone: no collective here
  vae_.Evict();
  RL_ASSIGN_OR_RETURN(models::vae::KlVae * vae,
                      image_vae_.Get(request.vae_files, request.dtype, "vae", [&] {
                        return models::vae::KlVae::Load(
                            request.vae_files, {.device = device_, .dtype = request.dtype});
                      }));
  std::vector<at::Tensor> bytes;
  for (int64_t i = 0; i < latent.size(0); ++i) {
    RL_ASSIGN_OR_RETURN(const at::Tensor image, vae->Decode(latent.narrow(0, i, 1)));
    bytes.push_back(models::vae::PixelsToBytes(image.unsqueeze(2)));  // a one-frame video
  }
  const at::Tensor all = at::cat(bytes, 0);
  decoded.frames = all.size(0);
  RL_ASSIGN_OR_RETURN(models::vae::VideoFile file,
                      models::vae::EncodeVideoFile(all, {.kind = request.output,
                                                         .fps = request.fps > 0 ? request.fps : 16,
                                                         .crf = request.crf}));
  decoded.file = std::move(file.bytes);
  decoded.format = file.format;
  decoded.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return decoded;
}

std::optional<ModelSummary> VideoOutput::Summary() {
  absl::MutexLock lock(&mutex_);
  if (const models::vae::KlVae* image = image_vae_.held(); image != nullptr) {
    return SideModelSummary(image_vae_.files(), "image VAE (AutoencoderKL)",
                            DtypeName(image_vae_.dtype()), image->bytes(), device_.is_cuda());
  }
  const models::vae::WanVae* vae = vae_.held();
  if (vae == nullptr) return std::nullopt;
  return SideModelSummary(
      vae_.files(),
      absl::StrCat("Wan VAE ", vae->config().version / 10, ".", vae->config().version % 10),
      DtypeName(vae_.dtype()), vae->bytes(), device_.is_cuda());
}

bool VideoOutput::Evict() {
  absl::MutexLock lock(&mutex_);
  const bool image = image_vae_.Evict();
  return vae_.Evict() || image;
}

}  // namespace raylight::actors
