// raylight-encode-text: a prompt through the umT5 encoder into a Wan conditioning file
// (wan_conditioning.h's "text" tensor), as ComfyUI's CLIPTextEncode would hand it to the DiT.
//
//   raylight-encode-text --text-encoder umt5_xxl_fp16.safetensors
//       --prompt "a red fox in the snow" --out cond.safetensors [--device cuda --dtype bf16]
//       [--image start.png [--end-image end.png] --vae wan_2.1_vae.safetensors
//        --clip-vision clip_vision_h.safetensors --width 832 --height 480 --frames 81]
//       [--image start.jpg --vae wan2.2_vae.safetensors --latent-out start.latent ...]
// With --image (and --end-image) and a Wan 2.1 VAE, an I2V (FLF2V) conditioning: the text with
// the images' `clip_fea` and `y`, as ComfyUI's CLIPTextEncode + CLIPVisionEncode +
// WanImageToVideo (WanFirstLastFrameToVideo) make them. With a Wan 2.2 VAE (TI2V-5B), the start
// image as Wan22ImageToVideoLatent makes it: a .latent with its noise mask, at --latent-out.
// What a job with a prompt and images computes on its workers.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

#include "models/core/latent_file.h"
#include "models/text/prompt_weights.h"
#include "models/text/umt5_encoder.h"
#include "models/wan/wan_conditioning.h"
#include "models/wan/wan_config.h"
#include "models/wan/wan_image_inputs.h"

namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace raylight::models;
  CLI::App app("raylight-encode-text: a prompt through umT5 into a Wan conditioning file");
  std::vector<std::string> files;
  std::string tokenizer, prompt, out, device = "cpu", dtype = "fp32", clean = "wan";
  app.add_option("--text-encoder", files, "umT5 safetensors file(s)")->required();
  app.add_option("--tokenizer", tokenizer, "spiece.model (default: the file's own, or beside it)");
  bool wan_negative = false;
  auto* prompt_option =
      app.add_option("--prompt", prompt, "the prompt (ComfyUI's (word:1.2) weights apply)");
  auto* negative_option = app.add_flag("--wan-default-negative", wan_negative,
                                       "encode Wan's default negative prompt (what a job with a "
                                       "prompt and no negative_prompt uses)");
  prompt_option->excludes(negative_option);
  app.add_option("--clean", clean, "wan: Wan's whitespace and HTML clean-up first; none: as typed")
      ->check(CLI::IsMember({"wan", "none"}));
  app.add_option("--device", device, "cpu, cuda, cuda:N");
  app.add_option("--dtype", dtype, "compute dtype")->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--out", out, "output .safetensors path")->required();
  int runs = 1;
  app.add_option("--runs", runs, "encode this many times; print the median encode time as JSON")
      ->check(CLI::Range(1, 1000));
  std::string image, end_image, vae_path, clip_path, latent_out;
  int64_t width = 832, height = 480, frames = 81;
  app.add_option("--image", image, "I2V / TI2V: the start image (PNG or JPEG)");
  app.add_option("--end-image", end_image, "FLF2V: the end image (PNG or JPEG)");
  app.add_option("--latent-out", latent_out, "TI2V (a Wan 2.2 VAE): the start latent's file");
  app.add_option("--vae", vae_path, "with --image: the Wan VAE");
  app.add_option("--clip-vision", clip_path, "with --image: the CLIP vision tower");
  app.add_option("--width", width, "with --image: the video's width");
  app.add_option("--height", height, "with --image: the video's height");
  app.add_option("--frames", frames, "with --image: the video's frames");
  CLI11_PARSE(app, argc, argv);
  if (prompt_option->count() == 0 && !wan_negative) {
    std::cerr << "--prompt or --wan-default-negative is required\n";
    return 2;
  }

  text::Umt5LoadOptions options;
  try {
    options.placement.device = at::Device(device);
  } catch (const c10::Error&) {
    std::cerr << "--device: '" << device << "' is not a device\n";
    return 2;
  }
  options.placement.compute_dtype = dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  options.tokenizer_path = tokenizer;
  const auto start = std::chrono::steady_clock::now();
  auto encoder = text::Umt5Encoder::Load(files, options);
  if (!encoder.ok()) {
    std::cerr << encoder.status() << "\n";
    return 1;
  }
  const double load_seconds = SecondsSince(start);
  if (wan_negative) prompt = wan::kWanDefaultNegativePrompt;
  const std::string text = clean == "wan" ? text::CleanPromptLikeWan(prompt) : prompt;
  absl::StatusOr<at::Tensor> cond;
  std::vector<double> encode_ms;
  for (int run = 0; run < runs; ++run) {
    const auto begin = std::chrono::steady_clock::now();
    cond = (*encoder)->EncodePrompt(text);  // ends with a copy to the host: synchronised
    encode_ms.push_back(SecondsSince(begin) * 1000);
    if (!cond.ok()) {
      std::cerr << cond.status() << "\n";
      return 1;
    }
  }
  wan::WanConditioning conditioning;
  conditioning.text = *cond;
  if (!image.empty() || !end_image.empty()) {
    wan::WanImageRequest request;
    for (auto [path, flag, tensor] : {std::tuple{&image, "--image", &request.start_image},
                                      std::tuple{&end_image, "--end-image", &request.end_image}}) {
      if (path->empty()) continue;
      std::ifstream file(*path, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(file)), {});
      auto decoded = wan::ImageFromBytes(bytes);
      if (!decoded.ok()) {
        std::cerr << flag << ": " << decoded.status() << "\n";
        return 1;
      }
      *tensor = *std::move(decoded);
    }
    request.width = width;
    request.height = height;
    request.length = frames;
    vae::WanVaeOptions vae_options;
    vae_options.device = options.placement.device;
    vae_options.dtype = options.placement.compute_dtype;
    auto vae = vae::WanVae::Load({vae_path}, vae_options);
    if (!vae.ok()) {
      std::cerr << "--vae: " << vae.status() << "\n";
      return 1;
    }
    if ((*vae)->config().version == 22) {
      auto start_latent = wan::MakeWan22StartLatent(request, **vae);
      if (!start_latent.ok()) {
        std::cerr << start_latent.status() << "\n";
        return 1;
      }
      auto bytes = SerializeLatent(start_latent->samples, start_latent->noise_mask);
      if (latent_out.empty() || !bytes.ok()) {
        std::cerr << "--latent-out: "
                  << (bytes.ok() ? "required with a Wan 2.2 VAE" : bytes.status().ToString())
                  << "\n";
        return 1;
      }
      std::ofstream(latent_out, std::ios::binary) << *bytes;
    } else {
      vision::ClipVisionOptions clip_options;
      clip_options.device = options.placement.device;
      clip_options.dtype = options.placement.compute_dtype;
      auto clip = vision::ClipVision::Load({clip_path}, clip_options);
      if (!clip.ok()) {
        std::cerr << "--clip-vision: " << clip.status() << "\n";
        return 1;
      }
      auto inputs = wan::MakeWanImageInputs(request, **vae, clip->get());
      if (!inputs.ok()) {
        std::cerr << inputs.status() << "\n";
        return 1;
      }
      conditioning.clip_fea = inputs->clip_fea;
      conditioning.y = wan::WanImageToY(inputs->concat_latent_image, inputs->concat_mask);
    }
  }
  if (auto written = wan::WriteWanConditioning(out, conditioning); !written.ok()) {
    std::cerr << written << "\n";
    return 1;
  }
  std::cout << out << ": " << cond->size(1) << " x " << cond->size(2) << " ("
            << (*encoder)->config().name << ", loaded in " << load_seconds << " s)\n";
  if (runs > 1) {
    // The first run pays the kernels' first-call costs: the median is of the others.
    std::vector<double> warm(encode_ms.begin() + 1, encode_ms.end());
    std::sort(warm.begin(), warm.end());
    std::cout << "{\"encode_ms_median\": " << warm[warm.size() / 2]
              << ", \"encode_ms_first\": " << encode_ms.front() << ", \"load_s\": " << load_seconds
              << ", \"tokens\": " << cond->size(1) << "}\n";
  }
  return 0;
}
