// raylightctl's job commands: `sample` (submit, watch with a progress bar, write the outputs),
// `jobs` (list, show, cancel, result) and `models` (list, load, unload).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "client/sdk/client.h"

namespace raylight::cli {

struct SampleFlags {
  std::string model, cond, negative, latent;
  std::string prompt, text_encoder;
  std::optional<std::string> negative_prompt;
  int width = 832, height = 480, frames = 0;  // 0: the model's default
  int steps = 20;
  double cfg = 5.0;
  std::string sampler = "euler", scheduler = "simple";
  double shift = 0;
  uint64_t seed = 0;
  double denoise = 1.0;
  // KSamplerAdvanced and SamplerCustom.
  bool no_noise = false;
  int start_step = 0, end_step = 10000;
  bool leftover_noise = false;
  std::vector<double> sigmas;
  // Wan 2.2 A14B: the low-noise expert and the boundary (0: Wan 2.2's default).
  std::string low_noise_model;
  double boundary = 0;
  // LoRAs as NAME[:STRENGTH] (strength 1 when not given), merged in order.
  std::vector<std::string> loras, low_noise_loras;
  int ulysses = 1, ring = 1, cfg_parallel = 1, dp = 1;
  std::string placement = "auto", dtype = "auto", compute = "default", attention = "default";
  double swap_budget = 0;
  int preview_every = 5;
  int priority = 0;
  bool cpu = false;
  bool no_wait = false;
  // The decoded output (latent, video, webp, frames; empty: from --out's extension), the VAE
  // that decodes it, the video's frame rate (0: the model's) and H.264 quality (-1: 19).
  std::string output, vae;
  // I2V: the start image (a PNG file) and the CLIP vision tower that encodes it.
  std::string image, end_image, clip_vision;
  double fps = 0;
  int crf = -1;
  // SampleJob.cache: "teacache", "magcache", "easycache" or empty; 0: the published threshold;
  // empty: published; MagCache's K (0: 2) and retention ratio (negative: 0.2); EasyCache's
  // start and end percent (negative: 0.15, 0.95).
  std::string cache;
  double cache_threshold = 0;
  std::vector<double> cache_coefficients;
  std::vector<double> cache_mag_ratios;
  int cache_max_skips = 0;
  double cache_retention_ratio = -1;
  double cache_start_percent = -1, cache_end_percent = -1;
  std::string out;  // output path prefix, or the video file (.mp4, .webp, .png, .safetensors)
};

struct JobsFlags {
  std::string job_id;
  std::string out;
  int limit = 20;
};

// Each Add* registers the subcommand and its flags; the Run* execute them.
CLI::App* AddSampleCommand(CLI::App& app, SampleFlags& flags);
int RunSample(const client::ClientOptions& options, const SampleFlags& flags);

CLI::App* AddJobsCommand(CLI::App& app, JobsFlags& flags);
int RunJobs(const client::ClientOptions& options, CLI::App& jobs, const JobsFlags& flags);

CLI::App* AddModelsCommand(CLI::App& app, SampleFlags& load, std::string& unload_path);
int RunModels(const client::ClientOptions& options, CLI::App& models, const SampleFlags& load,
              const std::string& unload_path);

}  // namespace raylight::cli
