// Flux's joint [text; image] sequence split across Gloo ranks (Ulysses, Ring, both; FSDP-sharded
// weights) gives the one-process forward: fp32, max abs difference under 1e-4, for joint lengths
// that divide the degree and ones that do not, and for chunks that hold only text rows.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "models/flux/flux_config.h"
#include "tests/models/flux_test_util.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/rank_launcher.h"
#include "tests/util/temp_dir.h"

namespace raylight::models::flux {
namespace {

class FluxParallelTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing_util::TempDir("flux-parallel");
    const FluxConfig config = *FluxPreset("tiny-flux-dev");
    auto reference = testing_util::RunFluxReference(
        dir_->path(), config, testing_util::RandomFluxInputs(config, {}), {.diffusers = false});
    ASSERT_TRUE(reference.ok()) << reference.status();
    checkpoint_ = new std::string(reference->comfyui_checkpoint);
  }
  static void TearDownTestSuite() {
    delete checkpoint_;
    delete dir_;
  }

  // The forward of `size` ranks on `mesh`, written by rank 0.
  at::Tensor Run(const std::string& mesh, int size, const testing_util::FluxSize& latent,
                 uint64_t seed, const std::string& placement = "resident",
                 const std::string& references = "") {
    const std::string out = absl::StrCat(dir_->path(), "/out-", size, "-", mesh, "-", placement,
                                         "-", references, ".safetensors");
    auto outcomes = testing_util::LaunchRanks({RAYLIGHT_FLUX_RANK_MAIN,
                                               "--checkpoint",
                                               *checkpoint_,
                                               "--mesh",
                                               mesh,
                                               "--placement",
                                               placement,
                                               "--batch",
                                               absl::StrCat(latent.batch),
                                               "--height",
                                               absl::StrCat(latent.height),
                                               "--width",
                                               absl::StrCat(latent.width),
                                               "--text_tokens",
                                               absl::StrCat(latent.text_tokens),
                                               "--input_seed",
                                               absl::StrCat(seed),
                                               "--references",
                                               references,
                                               "--out",
                                               out},
                                              size, std::chrono::milliseconds(300'000));
    for (const auto& outcome : outcomes) {
      EXPECT_EQ(outcome.exit_code, 0) << "rank " << outcome.rank << ":\n" << outcome.log;
    }
    auto tensors = testing_util::ReadTensors(out);
    EXPECT_TRUE(tensors.ok()) << tensors.status();
    return tensors.ok() ? (*tensors)["forward"] : at::Tensor();
  }

  void Compare(const std::string& mesh, int size, const testing_util::FluxSize& latent,
               const std::string& placement = "resident", const std::string& references = "") {
    const uint64_t seed = std::random_device{}();
    const at::Tensor one = Run("", 1, latent, seed, "resident", references);
    const at::Tensor many = Run(mesh, size, latent, seed, placement, references);
    ASSERT_TRUE(one.defined() && many.defined());
    ASSERT_EQ(one.sizes(), many.sizes());
    const double diff = (one - many).abs().max().item<double>();
    EXPECT_LT(diff, 1e-4) << mesh << " " << placement;
    std::printf("%s %s (%ld text + %ld image tokens): max abs diff %.3g\n", mesh.c_str(),
                placement.c_str(), static_cast<long>(latent.text_tokens),
                static_cast<long>((latent.height + 1) / 2 * ((latent.width + 1) / 2)), diff);
  }

  static testing_util::TempDir* dir_;
  static std::string* checkpoint_;
};
testing_util::TempDir* FluxParallelTest::dir_ = nullptr;
std::string* FluxParallelTest::checkpoint_ = nullptr;

// 7 text + 24 image tokens = 31: divides neither 2 nor 4; 8 + 24 = 32 divides both.
TEST_F(FluxParallelTest, Ulysses2) { Compare("ulysses=2", 2, {2, 8, 12, 7}); }
TEST_F(FluxParallelTest, Ulysses4EvenLength) { Compare("ulysses=4", 4, {1, 8, 12, 8}); }
TEST_F(FluxParallelTest, Ring2) { Compare("ring=2", 2, {1, 8, 12, 7}); }
TEST_F(FluxParallelTest, Ulysses2Ring2) { Compare("ring=2,ulysses=2", 4, {1, 8, 12, 7}); }
// 20 text + 6 image tokens over 4 ranks: the first chunks hold only text, the last one both.
TEST_F(FluxParallelTest, Ulysses4ChunksOfTextOnly) { Compare("ulysses=4", 4, {1, 4, 6, 20}); }
// Kontext: the references' tokens join the split sequence after the image's.
TEST_F(FluxParallelTest, Ulysses2Ring2WithKontextReferences) {
  Compare("ring=2,ulysses=2", 4, {1, 8, 12, 7}, "resident", "7x10,4x6");
}
TEST_F(FluxParallelTest, FsdpShardsTheDoubleAndSingleBlocks) {
  Compare("ulysses=2", 2, {1, 7, 9, 5}, "fsdp");
}

}  // namespace
}  // namespace raylight::models::flux
