// raylight-vae: a Wan VAE, or an image VAE, outside the cluster.
//
//   raylight-vae decode --vae wan_2.1_vae.safetensors --latent x.latent --out x.mp4
//       [--device cuda --dtype bf16 --fps 16 --crf 19]
//     decodes a ComfyUI .latent file (its LATENT convention: the VAE's latent, what a job
//     returns) to x.mp4, x.webp, x.png (one frame) or x.safetensors (ComfyUI's IMAGE, uint8);
//     with an image VAE (ae.safetensors: Flux.1's and Chroma's; SD's, SDXL's; kl_vae.h) the
//     latent's images, x.png for one;
//   raylight-vae encode --vae ae.safetensors --image in.png [--image b.jpg ...] --out x.latent
//       [--device cuda --dtype bf16]
//     ComfyUI's VAEEncode: each image (PNG or JPEG, decoded as ComfyUI's LoadImage decodes it)
//     cropped to a multiple of the VAE's factor as ComfyUI centres the crop, to [-1, 1], encoded
//     to the posterior's mean, the batch written as a ComfyUI .latent (a Kontext reference, an
//     img2img start); with a Wan VAE each image is a one-frame video;
//   raylight-vae make-random --preset wan2.1 [--width 96] --seed 1 --out vae.safetensors
//     writes a VAE of the preset's structure with random weights (official / ComfyUI names),
//     at the preset's widths or narrower: for tests and `make demo`.
#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "models/core/image_file.h"
#include "models/core/latent_file.h"
#include "models/core/safetensors_tensors.h"
#include "models/vae/kl_vae.h"
#include "models/vae/video_file.h"
#include "models/vae/wan_vae.h"
#include "models/vae/wan_vae_random.h"

namespace {

using namespace raylight::models;

int Fail(const absl::Status& status) {
  std::cerr << "raylight-vae: " << status << "\n";
  return 1;
}

std::string KindOf(const std::string& path) {
  const std::string extension = std::filesystem::path(path).extension().string();
  if (extension == ".webp") return "webp";
  if (extension == ".safetensors") return "frames";
  return "video";  // .mp4, and .png for one frame
}

// The VAE in `path`: a Wan VAE, else an image VAE (each refuses the other's file by its names),
// on `device` in `dtype` ("bf16", else fp32).
struct AnyVae {
  std::unique_ptr<vae::WanVae> wan;
  std::unique_ptr<vae::KlVae> image;
};

absl::StatusOr<AnyVae> LoadVae(const std::string& path, const std::string& device,
                               const std::string& dtype) {
  at::Device where = at::kCPU;
  try {
    where = at::Device(device);
  } catch (const c10::Error&) {
    return absl::InvalidArgumentError("--device: '" + device + "' is not a device");
  }
  const at::ScalarType type = dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  AnyVae loaded;
  auto wan = vae::WanVae::Load({path}, {.device = where, .dtype = type});
  if (wan.ok()) {
    loaded.wan = *std::move(wan);
    return loaded;
  }
  auto image = vae::KlVae::Load({path}, {.device = where, .dtype = type});
  if (!image.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--vae: neither a Wan VAE (",
                                                   wan.status().message(), ") nor an image VAE (",
                                                   image.status().message(), ")"));
  }
  loaded.image = *std::move(image);
  return loaded;
}

int Decode(const std::string& vae_path, const std::string& latent_path, const std::string& out,
           const std::string& device, const std::string& dtype, double fps, int crf) {
  const std::string kind = KindOf(out);
  if (absl::Status supported = vae::CheckVideoFileKind(kind); !supported.ok()) {
    return Fail(supported);
  }
  std::ifstream file(latent_path, std::ios::binary);
  if (!file) return Fail(absl::NotFoundError("--latent: cannot read " + latent_path));
  const std::string bytes((std::istreambuf_iterator<char>(file)), {});
  auto tensors = ParseTensors(bytes, latent_path);
  if (!tensors.ok()) return Fail(tensors.status());
  auto found = tensors->find("latent_tensor");  // ComfyUI's SaveLatent name
  if (found == tensors->end()) found = tensors->find("latent");
  if (found == tensors->end()) {
    return Fail(absl::InvalidArgumentError("--latent: no latent_tensor in " + latent_path));
  }
  const auto start = std::chrono::steady_clock::now();
  auto loaded = LoadVae(vae_path, device, dtype);
  if (!loaded.ok()) return Fail(loaded.status());
  at::Tensor pixels;
  double default_fps = 16;
  if (loaded->wan != nullptr) {
    auto decoded = loaded->wan->Decode(found->second.to(at::kFloat));
    if (!decoded.ok()) return Fail(decoded.status());
    pixels = *decoded;
    if (loaded->wan->config().z_dim == 48) default_fps = 24;
  } else {
    auto decoded = loaded->image->Decode(found->second.to(at::kFloat));
    if (!decoded.ok()) return Fail(decoded.status());
    pixels = decoded->unsqueeze(2);  // each image a one-frame video
  }
  auto video = vae::EncodeVideoFile(vae::PixelsToBytes(pixels),
                                    {.kind = kind, .fps = fps > 0 ? fps : default_fps, .crf = crf});
  if (!video.ok()) return Fail(video.status());
  std::ofstream(out, std::ios::binary) << video->bytes;
  std::cout << "wrote " << out << " (" << video->format << ", " << pixels.size(0) * pixels.size(2)
            << " frames, "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << " s)\n";
  return 0;
}

// An image file as ComfyUI's IMAGE [1, H, W, 3] in [0, 1], cropped to multiples of `factor` as
// its vae_encode_crop_pixels crops (the remainder's floor half off the top and left), then as the
// VAE's input [1, 3, H', W'] in [-1, 1].
absl::StatusOr<at::Tensor> EncoderInput(const std::string& path, int64_t factor) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError("--image: cannot read " + path);
  const std::string bytes((std::istreambuf_iterator<char>(file)), {});
  auto image = DecodeImage(bytes);
  if (!image.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--image ", path, ": ", image.status().message()));
  }
  const int64_t height = image->height / factor * factor, width = image->width / factor * factor;
  if (height == 0 || width == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--image ", path, ": ", image->width, "x",
                                                   image->height, " is smaller than the VAE's ",
                                                   factor, "x", factor, " pixels"));
  }
  at::Tensor pixels =
      at::from_blob(image->pixels.data(), {image->height, image->width, 3}, at::kByte)
          .narrow(0, (image->height % factor) / 2, height)
          .narrow(1, (image->width % factor) / 2, width)
          .to(at::kFloat)
          .div(255);
  return (pixels.permute({2, 0, 1}).unsqueeze(0) * 2 - 1).contiguous();
}

int Encode(const std::string& vae_path, const std::vector<std::string>& images,
           const std::string& out, const std::string& device, const std::string& dtype) {
  const auto start = std::chrono::steady_clock::now();
  auto loaded = LoadVae(vae_path, device, dtype);
  if (!loaded.ok()) return Fail(loaded.status());
  const AnyVae& vae = *loaded;
  const int64_t factor = vae.wan != nullptr ? vae.wan->config().spatial_factor()
                                            : vae.image->config().model_spatial_factor();
  auto encode = [&](const at::Tensor& pixels) {
    return vae.wan != nullptr ? vae.wan->Encode(pixels.unsqueeze(2)) : vae.image->Encode(pixels);
  };
  std::vector<at::Tensor> latents;
  for (const std::string& path : images) {
    auto pixels = EncoderInput(path, factor);
    if (!pixels.ok()) return Fail(pixels.status());
    if (!latents.empty() && (pixels->size(2) / factor != latents.front().size(-2) ||
                             pixels->size(3) / factor != latents.front().size(-1))) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--image ", path,
                       ": its size differs from the first image's (a batch "
                       "is one size)")));
    }
    auto latent = encode(*pixels);
    if (!latent.ok()) return Fail(latent.status());
    latents.push_back(latent->cpu());
  }
  const at::Tensor batch = at::cat(latents, 0);
  if (absl::Status written = WriteLatentFile(out, batch); !written.ok()) return Fail(written);
  std::cout << "wrote " << out << " (latent " << batch.sizes() << ", "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << " s)\n";
  return 0;
}

int MakeRandom(const std::string& preset, int64_t width, uint64_t seed, const std::string& out) {
  auto config = vae::WanVaePreset(preset);
  if (!config.ok()) return Fail(config.status());
  if (width > 0) {
    // Narrower, the same structure: the decoder keeps the preset's ratio to the encoder.
    config->decoder_dim = config->decoder_dim * width / config->encoder_dim;
    config->encoder_dim = width;
  }
  const std::map<std::string, at::Tensor> weights = vae::RandomWanVaeWeights(*config, seed);
  const NamedTensors tensors(weights.begin(), weights.end());
  if (absl::Status written = WriteTensors(out, tensors); !written.ok()) return Fail(written);
  std::cout << "wrote " << out << " (" << tensors.size() << " tensors)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("raylight-vae: a Wan VAE (2.1 or 2.2), or an image VAE, outside the cluster");
  app.require_subcommand(1);
  auto* decode = app.add_subcommand("decode", "a .latent file to a video, PNG or IMAGE file");
  std::string vae_path, latent, out, device = "cpu", dtype = "fp32";
  double fps = 0;
  int crf = 19;
  decode->add_option("--vae", vae_path, "a Wan VAE or an image VAE (either spelling)")->required();
  decode->add_option("--latent", latent, "a ComfyUI .latent file")->required();
  decode->add_option("--out", out, "x.mp4, x.webp, x.png (one frame), x.safetensors")->required();
  decode->add_option("--device", device, "cpu, cuda, cuda:N");
  decode->add_option("--dtype", dtype)->check(CLI::IsMember({"fp32", "bf16"}));
  decode->add_option("--fps", fps, "frame rate (0: 16, or 24 for Wan 2.2's VAE)");
  decode->add_option("--crf", crf, "H.264 quality 0..51")->check(CLI::Range(0, 51));
  auto* encode = app.add_subcommand("encode", "images to a .latent file (ComfyUI's VAEEncode)");
  std::vector<std::string> images;
  encode->add_option("--vae", vae_path, "an image VAE or a Wan VAE (either spelling)")->required();
  encode->add_option("--image", images, "PNG or JPEG files, one size (a batch)")->required();
  encode->add_option("--out", out, "a ComfyUI .latent file")->required();
  encode->add_option("--device", device, "cpu, cuda, cuda:N");
  encode->add_option("--dtype", dtype)->check(CLI::IsMember({"fp32", "bf16"}));
  auto* make = app.add_subcommand("make-random", "a VAE with random weights (tests, demos)");
  std::string preset = "wan2.1";
  int64_t width = 0;
  uint64_t seed = 0;
  make->add_option("--preset", preset)->check(CLI::IsMember({"wan2.1", "wan2.2"}));
  make->add_option("--width", width, "the encoder's base width (0: the preset's)");
  make->add_option("--seed", seed);
  make->add_option("--out", out)->required();
  CLI11_PARSE(app, argc, argv);
  if (decode->parsed()) return Decode(vae_path, latent, out, device, dtype, fps, crf);
  if (encode->parsed()) return Encode(vae_path, images, out, device, dtype);
  return MakeRandom(preset, width, seed, out);
}
