// One rank of a Wan VAE decode, for the parallel-decode tests and benchmarks: joins a group of
// --size processes (Gloo on the CPU, NCCL on GPUs, through a FileStore), decodes --inputs'
// `latent` as a band of rows per rank (one process: the whole), and on rank 0 writes the frames
// to --out as `decoded`. --repeat times further decodes and prints one JSON line per rank:
// {"rank", "decode_ms" (median), "peak_allocated_bytes"}.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "models/core/safetensors_tensors.h"
#include "models/parallel/comm/gloo_communicator.h"
#include "models/vae/wan_vae.h"
#include "runtime/common/file_store.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include "models/parallel/comm/nccl_communicator.h"
#endif

ABSL_FLAG(int, rank, 0, "this process's rank");
ABSL_FLAG(int, size, 1, "number of ranks");
ABSL_FLAG(std::string, store_dir, "", "FileStore directory shared by the ranks (size > 1)");
ABSL_FLAG(std::string, vae, "", "Wan VAE safetensors");
ABSL_FLAG(std::string, inputs, "", "safetensors with `latent` [B, z, T, h, w]");
ABSL_FLAG(std::string, out, "", "rank 0 writes `decoded` here");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda (one GPU per rank)");
ABSL_FLAG(std::string, dtype, "f32", "f32 or bf16");
ABSL_FLAG(int, repeat, 0, "time this many more decodes");
ABSL_FLAG(bool, channels_last, true, "on CUDA, convolutions in channels-last layout");
ABSL_FLAG(bool, cudnn_benchmark, true, "cuDNN's algorithm search during the decode");
ABSL_FLAG(int64_t, tile, 0, "one process: spatial tiles of this many pixels (0: none)");
ABSL_FLAG(int64_t, tile_stride, 0, "with --tile: the tiles' stride (0: 3/4 of --tile)");

namespace raylight {
namespace {

int Fail(const absl::Status& status) {
  std::cerr << "rank " << absl::GetFlag(FLAGS_rank) << ": " << status << "\n";
  return 1;
}

void Synchronize(const at::Device& device) {
#ifdef RAYLIGHT_HAVE_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#endif
  (void)device;
}

int Main() {
  const int rank = absl::GetFlag(FLAGS_rank);
  const int size = absl::GetFlag(FLAGS_size);
  const bool gpu = absl::GetFlag(FLAGS_device) == "cuda";
  at::Device device = at::kCPU;
#ifdef RAYLIGHT_HAVE_CUDA
  if (gpu) {
    device = at::Device(at::kCUDA, rank);
    c10::cuda::set_device(rank);
  }
#endif
  if (gpu && !device.is_cuda()) return Fail(absl::UnimplementedError("built without CUDA"));
  std::ifstream file(absl::GetFlag(FLAGS_inputs), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), {});
  auto inputs = models::ParseTensors(bytes, absl::GetFlag(FLAGS_inputs));
  if (!inputs.ok()) return Fail(inputs.status());
  const at::Tensor latent = inputs->at("latent");

  std::unique_ptr<FileStore> store;
  std::unique_ptr<comm::Communicator> group;
  if (size > 1) {
    auto opened = FileStore::Open(absl::GetFlag(FLAGS_store_dir));
    if (!opened.ok()) return Fail(opened.status());
    store = *std::move(opened);
    absl::StatusOr<std::unique_ptr<comm::Communicator>> made;
#ifdef RAYLIGHT_HAVE_CUDA
    if (gpu) made = comm::CreateNcclCommunicator(*store, rank, size, rank, comm::NcclOptions());
#endif
    if (!gpu) {
      comm::GlooOptions options;
      options.hostname = "127.0.0.1";
      made = comm::CreateGlooCommunicator(*store, rank, size, options);
    }
    if (!made.ok()) return Fail(made.status());
    group = *std::move(made);
  }
  auto bands = models::vae::RowBands::Split(group.get(), latent.size(-2));
  if (!bands.ok()) return Fail(bands.status());

  models::vae::WanVaeOptions options;
  options.device = device;
  options.dtype = absl::GetFlag(FLAGS_dtype) == "bf16" ? at::kBFloat16 : at::kFloat;
  options.channels_last = absl::GetFlag(FLAGS_channels_last);
  options.cudnn_benchmark = absl::GetFlag(FLAGS_cudnn_benchmark);
  auto vae = models::vae::WanVae::Load({absl::GetFlag(FLAGS_vae)}, options);
  if (!vae.ok()) return Fail(vae.status());

  std::vector<at::Tensor> chunks;
  auto decode = [&]() {
    chunks.clear();
    auto sink = [&chunks](const at::Tensor& frames) {
      chunks.push_back(frames.to(at::kCPU));
      return absl::OkStatus();
    };
    if (const int64_t tile = absl::GetFlag(FLAGS_tile); tile > 0) {
      const int64_t stride = absl::GetFlag(FLAGS_tile_stride);
      return (*vae)->DecodeTiled(
          latent, {.size = tile, .stride = stride > 0 ? stride : tile / 4 * 3}, sink);
    }
    return (*vae)->Decode(latent, *bands, sink);
  };
  if (absl::Status decoded = decode(); !decoded.ok()) return Fail(decoded);
  if (rank == 0 && !absl::GetFlag(FLAGS_out).empty()) {
    const absl::Status written =
        models::WriteTensors(absl::GetFlag(FLAGS_out), {{"decoded", at::cat(chunks, 2)}});
    if (!written.ok()) return Fail(written);
  }
  const int repeat = absl::GetFlag(FLAGS_repeat);
  if (repeat > 0) {
#ifdef RAYLIGHT_HAVE_CUDA
    if (gpu) c10::cuda::CUDACachingAllocator::resetPeakStats(rank);
#endif
    std::vector<double> times;
    for (int i = 0; i < repeat; ++i) {
      Synchronize(device);
      const auto start = std::chrono::steady_clock::now();
      if (absl::Status decoded = decode(); !decoded.ok()) return Fail(decoded);
      Synchronize(device);
      times.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::sort(times.begin(), times.end());
    int64_t peak = 0;
#ifdef RAYLIGHT_HAVE_CUDA
    if (gpu) {
      peak = c10::cuda::CUDACachingAllocator::getDeviceStats(rank).allocated_bytes[0].peak;
    }
#endif
    std::cout << "{\"rank\": " << rank << ", \"decode_ms\": " << times[times.size() / 2]
              << ", \"peak_allocated_bytes\": " << peak << "}" << std::endl;
  }
  return 0;
}

}  // namespace
}  // namespace raylight

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return raylight::Main();
}
