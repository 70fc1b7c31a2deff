#include "models/media/frames_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/gguf_blocks.h"  // the exact half and bfloat16 decoders
#include "models/core/safetensors.h"

namespace raylight::models::media {
namespace {

uint8_t ToByte(float value) {
  // ComfyUI: np.clip(255. * i, 0, 255).astype(np.uint8); NaN becomes 0.
  const float scaled = std::clamp(255.0f * value, 0.0f, 255.0f);
  return std::isnan(scaled) ? 0 : static_cast<uint8_t>(scaled);
}

}  // namespace

absl::StatusOr<VideoFrames> ReadFramesFile(const std::string& path, double fps) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const StTensorInfo* info = (*file)->header().Find("images");
  if (info == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no 'images' tensor (ComfyUI's IMAGE, [F, H, W, 3])"));
  }
  std::vector<int64_t> shape = info->shape;
  if (shape.size() == 3) shape.insert(shape.begin(), 1);
  if (shape.size() != 4 || shape[3] != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 ||
      shape[1] > 16384 || shape[2] > 16384) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": 'images' is [", absl::StrJoin(info->shape, ", "), "], not [F, H, W, 3]"));
  }
  VideoFrames frames{.width = static_cast<int>(shape[2]),
                     .height = static_cast<int>(shape[1]),
                     .count = static_cast<int>(shape[0]),
                     .fps = fps};
  const absl::string_view bytes = (*file)->Bytes(*info);
  const size_t n = static_cast<size_t>(info->numel());
  frames.rgb.resize(n);
  switch (info->dtype) {
    case StDtype::kU8:
      std::memcpy(frames.rgb.data(), bytes.data(), n);
      break;
    case StDtype::kF32:
      for (size_t i = 0; i < n; ++i) {
        float value;
        std::memcpy(&value, bytes.data() + 4 * i, 4);
        frames.rgb[i] = ToByte(value);
      }
      break;
    case StDtype::kF16:
    case StDtype::kBF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t half =
            gguf_blocks::Load16(reinterpret_cast<const uint8_t*>(bytes.data()) + 2 * i);
        frames.rgb[i] = ToByte(info->dtype == StDtype::kF16 ? gguf_blocks::HalfToFloat(half)
                                                            : gguf_blocks::BF16ToFloat(half));
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": 'images' is ", StDtypeName(info->dtype), "; F32, F16, BF16 or U8 are read"));
  }
  if (auto valid = CheckVideoFrames(frames); !valid.ok()) return valid;
  return frames;
}

}  // namespace raylight::models::media
