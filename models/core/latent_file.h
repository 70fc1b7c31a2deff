// ComfyUI's .latent files (its SaveLatent / LoadLatent nodes): safetensors holding
// `latent_tensor` and an empty `latent_format_version_0` marker, so a result opens in ComfyUI.
// A file may also hold `noise_mask`, the LATENT's noise mask (inpainting, Wan 2.2 TI2V's start
// image), which ComfyUI's LoadLatent ignores and a job applies.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"

namespace raylight::models {

struct Latent {
  at::Tensor samples;     // float32
  at::Tensor noise_mask;  // float32, or undefined
};

absl::Status WriteLatentFile(const std::string& path, const at::Tensor& latent);
// The same as bytes (a job's result on the wire) and back; `source` names the payload in errors.
absl::StatusOr<std::string> SerializeLatent(const at::Tensor& latent,
                                            const at::Tensor& noise_mask = {});
absl::StatusOr<Latent> ParseLatent(absl::string_view bytes, const std::string& source);

// Reads a .latent file; files without the version marker are ComfyUI's old format, whose
// values ComfyUI scales by 1 / 0.18215 on load — done here too.
absl::StatusOr<at::Tensor> ReadLatentFile(const std::string& path);

}  // namespace raylight::models
