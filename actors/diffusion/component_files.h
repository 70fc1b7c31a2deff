// A job's side models (its text encoder, its VAE): torch-free, no protobuf, resolved and checked
// by the head when it plans the job. A job names one under the model roots, or leaves it to a
// ComfyUI folder of the roots (`text_encoders/`, `vae/`), where exactly one fitting file must be.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::actors {

struct ComponentSearch {
  std::string field;   // the job's field, named in every error ("text_encoder", "vae")
  std::string folder;  // the roots' ComfyUI folder searched for an empty name
  std::string what;    // what a fitting file is, for errors ("umT5 file", "Wan VAE")
  // OK when the file's header fits the job; the message says why not.
  std::function<absl::Status(const std::string& path)> fits;
};

// `name` resolved under `roots` (one safetensors file that `search.fits`), or, for an empty name,
// the one fitting file among the *.safetensors of `<root>/<folder>/`. Errors are InvalidArgument
// naming the field.
absl::StatusOr<std::string> ResolveComponent(const ComponentSearch& search, const std::string& name,
                                             const std::vector<std::string>& roots);

// The encoder's file (umT5, `text_dim` wide).
absl::StatusOr<std::string> ResolveTextEncoder(const std::string& field, const std::string& name,
                                               const std::vector<std::string>& roots,
                                               int64_t text_dim);

// The VAE's file whose latent has `latent_channels`: of `kind` "wan2.1" (ModelInfo::vae) a Wan
// VAE, 2.1 or 2.2 by name or shapes; of "kl" an image VAE's decoder (models/vae/kl_vae_keys.h).
absl::StatusOr<std::string> ResolveVae(const std::string& field, const std::string& name,
                                       const std::vector<std::string>& roots,
                                       int64_t latent_channels, const std::string& kind = "wan2.1");

// The CLIP vision tower's file (`image_dim` wide: 1280 for Wan's ViT-H/14).
absl::StatusOr<std::string> ResolveClipVision(const std::string& field, const std::string& name,
                                              const std::vector<std::string>& roots,
                                              int64_t image_dim);

}  // namespace raylight::actors
