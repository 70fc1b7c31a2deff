#include "actors/diffusion/prompt_encoder.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/text/prompt_weights.h"

namespace raylight::actors {
namespace {

// What the caching allocator holds on `device` (0 on the CPU).
int64_t AllocatedDeviceBytes(const at::Device& device) {
#ifdef RAYLIGHT_HAVE_CUDA
  if (device.is_cuda()) {
    return c10::cuda::CUDACachingAllocator::getDeviceStats(device.index())
        .allocated_bytes[0]
        .current;
  }
#endif
  (void)device;
  return 0;
}

}  // namespace

absl::StatusOr<PromptEncoder::Encoded> PromptEncoder::Encode(const std::vector<std::string>& files,
                                                             const std::string& prompt) {
  const std::string text = models::text::CleanPromptLikeWan(prompt);
  const std::string key = absl::StrCat(absl::StrJoin(files, "\n"), "\n\n", text);
  absl::MutexLock lock(&mutex_);
  if (auto it = index_.find(key); it != index_.end()) {
    recent_.splice(recent_.begin(), recent_, it->second);
    return Encoded{.text = it->second->second, .cached = true};
  }
  const auto start = std::chrono::steady_clock::now();
  if (encoder_ == nullptr || files_ != files) {
    encoder_.reset();
    models::text::Umt5LoadOptions options;
    options.placement.device = device_;
    options.placement.compute_dtype = device_.is_cuda() ? at::kBFloat16 : at::kFloat;
    const int64_t before = AllocatedDeviceBytes(device_);
    auto loaded = models::text::Umt5Encoder::Load(files, options);
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat("text_encoder: ", loaded.status().message()));
    }
    encoder_ = *std::move(loaded);
    encoder_bytes_ = AllocatedDeviceBytes(device_) - before;
    files_ = files;
  }
  auto encoded = encoder_->EncodePrompt(text);
  if (!encoded.ok()) return encoded.status();
  recent_.emplace_front(key, *encoded);
  index_[key] = recent_.begin();
  if (recent_.size() > kMaxCached) {
    index_.erase(recent_.back().first);
    recent_.pop_back();
  }
  return Encoded{
      .text = *encoded,
      .cached = false,
      .seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

std::optional<ModelSummary> PromptEncoder::Summary() {
  absl::MutexLock lock(&mutex_);
  if (encoder_ == nullptr) return std::nullopt;
  return SideModelSummary(files_, "umT5 text encoder", device_.is_cuda() ? "bf16" : "f32",
                          encoder_bytes_, device_.is_cuda());
}

bool PromptEncoder::Evict() {
  absl::MutexLock lock(&mutex_);
  if (encoder_ == nullptr) return false;
  encoder_.reset();
  files_.clear();
  return true;
}

}  // namespace raylight::actors
