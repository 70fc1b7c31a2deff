// Our Wan forward against Hugging Face diffusers' WanTransformer3DModel (an implementation nobody
// here wrote), on the same random checkpoint (written in diffusers spelling; our loader reads it
// too) and the same random inputs. CPU build: fp32, relative L2 under 1e-4, tiny presets and real
// head sizes with few blocks. GPU build (RAYLIGHT_TEST_GPU, label `gpu`): bf16 at real sizes,
// relative L2 under 1e-2.
#include <gtest/gtest.h>

#include <random>

#include "models/wan/wan_loader.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::wan {
namespace {

using testing_util::LatentSize;

#ifdef RAYLIGHT_TEST_GPU
constexpr const char* kDevice = "cuda";
constexpr const char* kDtype = "bf16";
constexpr double kTolerance = 1e-2;
#else
constexpr const char* kDevice = "cpu";
constexpr const char* kDtype = "f32";
constexpr double kTolerance = 1e-4;
#endif

struct Case {
  std::string preset;
  int64_t layers;
  LatentSize size;
};

void Compare(const Case& c) {
  testing_util::TempDir dir("wan-diffusers");
  WanConfig config = *WanPreset(c.preset);
  config.num_layers = c.layers;
  MakeCheckpointOptions options;
  options.spelling = KeySpelling::kDiffusers;
  options.seed = std::random_device{}();
#ifdef RAYLIGHT_TEST_GPU
  options.dtype = at::kBFloat16;
  options.device = at::Device("cuda");
#else
  options.dtype = at::kFloat;
#endif
  const std::string path = testing_util::MakeCheckpoint(dir.path(), config, options, "model");
  WanInputs inputs = testing_util::RandomWanInputs(config, c.size);

  PlacementOptions placement;
#ifdef RAYLIGHT_TEST_GPU
  placement.device = at::Device("cuda");
  placement.compute_dtype = at::kBFloat16;
#endif
  auto loaded = LoadWanResident({path}, placement);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->config.name, c.preset);
  auto ours = WanForward(loaded->config, inputs, ParallelContext{}, *loaded->weights);
  ASSERT_TRUE(ours.ok()) << ours.status();
  loaded->weights.reset();  // room for diffusers' copy on the GPU

  auto reference =
      testing_util::DiffusersForward(dir.path(), loaded->config, path, inputs, kDevice, kDtype);
  ASSERT_TRUE(reference.ok()) << reference.status();
  ASSERT_EQ(ours->sizes(), reference->sizes());
  const double error = testing_util::RelativeL2(*ours, *reference);
  EXPECT_LT(error, kTolerance) << c.preset << " relative L2 " << error;
  std::printf("%s (%ld blocks): relative L2 vs diffusers %.3g\n", c.preset.c_str(),
              static_cast<long>(c.layers), error);
}

#ifndef RAYLIGHT_TEST_GPU
TEST(WanDiffusersTest, TinyT2V) { Compare({"tiny-t2v", 2, {2, 3, 8, 12, 20}}); }
TEST(WanDiffusersTest, TinyI2VWithClipFeatures) { Compare({"tiny-i2v", 2, {1, 3, 8, 12, 20}}); }
TEST(WanDiffusersTest, TinyFLF2VWithStartAndEndImagePositions) {
  Compare({"tiny-flf2v", 2, {1, 3, 8, 12, 20}});
}
TEST(WanDiffusersTest, TinyTI2VWithPerTokenTimesteps) {
  Compare({"tiny-ti2v", 2, {1, 3, 8, 12, 20}});
}
TEST(WanDiffusersTest, RealSizeT2V1_3BTwoBlocks) {
  Compare({"wan2.1-t2v-1.3b", 2, {1, 2, 8, 10, 30}});
}
TEST(WanDiffusersTest, RealSizeI2V14BOneBlock) { Compare({"wan2.1-i2v-14b", 1, {1, 2, 6, 8, 30}}); }
TEST(WanDiffusersTest, RealSizeTI2V5BOneBlock) { Compare({"wan2.2-ti2v-5b", 1, {1, 2, 8, 8, 30}}); }
#else
TEST(WanDiffusersGpuTest, T2V1_3B) { Compare({"wan2.1-t2v-1.3b", 4, {1, 5, 30, 52, 77}}); }
TEST(WanDiffusersGpuTest, T2V14B) { Compare({"wan2.1-t2v-14b", 2, {1, 5, 30, 52, 77}}); }
TEST(WanDiffusersGpuTest, I2V14B) { Compare({"wan2.1-i2v-14b", 2, {1, 5, 30, 52, 77}}); }
TEST(WanDiffusersGpuTest, TI2V5B) { Compare({"wan2.2-ti2v-5b", 2, {1, 5, 44, 80, 77}}); }
#endif

}  // namespace
}  // namespace raylight::models::wan
