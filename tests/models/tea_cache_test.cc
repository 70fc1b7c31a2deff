// TeaCache (issue #27): the skip decision against a transcription of the authors' code
// (tea_cache_reference.py) on a recorded sequence of modulated inputs; the published Wan settings;
// and the Wan forward that reuses a residual equals one that runs the blocks when the cached
// residual is the one those blocks add.
#include "models/core/tea_cache.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "models/core/safetensors_tensors.h"
#include "models/family/model_info.h"
#include "models/flux/flux_family_inspect.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_tea_cache.h"
#include "nlohmann/json.hpp"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

TEST(TeaCacheTest, DecisionsEqualTheAuthorsOnARecordedSequence) {
  testing_util::TempDir dir("tea-cache");
  const std::string seed = std::to_string(std::random_device()() % 1000000);  // fresh per run
  ASSERT_TRUE(testing_util::RunToCompletion(
                  {RAYLIGHT_TEST_PYTHON, RAYLIGHT_TEA_CACHE_REFERENCE, dir.path(), seed},
                  dir.path() + "/reference.log", std::chrono::seconds(120))
                  .ok())
      << ReadAll(dir.path() + "/reference.log");
  auto tensors = ParseTensors(ReadAll(dir.path() + "/modulations.safetensors"), "modulations");
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  const nlohmann::json cases = nlohmann::json::parse(ReadAll(dir.path() + "/cases.json"));
  int reused_somewhere = 0;
  for (const nlohmann::json& c : cases) {
    const int steps = c["steps"];
    wan::WanTeaCacheRequest request{.threshold = c["threshold"],
                                    .coefficients = c["coefficients"],
                                    .retention_steps = c["use_ret_steps"],
                                    .steps = steps};
    auto settings =
        wan::WanTeaCacheSettings(wan::WanPreset("wan2.1-t2v-1.3b").value(), 832, 480, request);
    ASSERT_TRUE(settings.ok()) << settings.status();
    settings->threshold = c["threshold"];  // 0 asks WanTeaCacheSettings for the published one
    TeaCachePolicy branch[2] = {TeaCachePolicy(*settings), TeaCachePolicy(*settings)};
    at::Tensor previous[2];
    const std::vector<bool> want = c["compute"];
    ASSERT_EQ(want.size(), static_cast<size_t>(2 * steps));
    for (int call = 0; call < 2 * steps; ++call) {
      const int side = call % 2;
      const at::Tensor& m = tensors->at("call_" + std::to_string(call));
      double rel_l1 = 0;
      if (previous[side].defined()) {
        rel_l1 = ((m - previous[side]).abs().mean() / previous[side].abs().mean()).item<double>();
      }
      previous[side] = m;
      EXPECT_EQ(branch[side].ShouldCompute(call / 2, rel_l1), want[call])
          << "call " << call << " of " << c.dump();
    }
    reused_somewhere += branch[0].reused() + branch[1].reused();
  }
  EXPECT_GT(reused_somewhere, 0);  // the cases reach both outcomes
}

TEST(TeaCacheTest, PublishedSettingsForTheCalibratedWanModelsOnly) {
  auto preset = [](const char* name) { return wan::WanPreset(name).value(); };
  auto t2v = wan::WanTeaCacheSettings(preset("wan2.1-t2v-14b"), 832, 480, {.steps = 30});
  ASSERT_TRUE(t2v.ok()) << t2v.status();
  EXPECT_DOUBLE_EQ(t2v->threshold, 0.10);  // the README's "slow" with retention steps
  EXPECT_DOUBLE_EQ(t2v->coefficients.front(), -3.03318725e+05);
  EXPECT_EQ(t2v->retention_calls, 5);
  auto plain = wan::WanTeaCacheSettings(preset("wan2.1-t2v-14b"), 832, 480,
                                        {.retention_steps = false, .steps = 30});
  ASSERT_TRUE(plain.ok());
  EXPECT_DOUBLE_EQ(plain->threshold, 0.14);
  EXPECT_EQ(plain->retention_calls, 1);
  EXPECT_EQ(plain->cutoff_call, 29);
  auto i2v720 = wan::WanTeaCacheSettings(preset("wan2.1-i2v-14b"), 1280, 720, {.steps = 30});
  auto i2v480 = wan::WanTeaCacheSettings(preset("wan2.1-i2v-14b"), 832, 480, {.steps = 30});
  ASSERT_TRUE(i2v720.ok() && i2v480.ok());
  EXPECT_DOUBLE_EQ(i2v720->coefficients.front(), 8.10705460e+03);
  EXPECT_DOUBLE_EQ(i2v480->coefficients.front(), 2.57151496e+05);
  // Nobody calibrated these: the job brings its own coefficients, or is refused naming the field.
  auto ti2v = wan::WanTeaCacheSettings(preset("wan2.2-ti2v-5b"), 1280, 704, {.steps = 30});
  EXPECT_EQ(ti2v.status().code(), absl::StatusCode::kInvalidArgument);  // per-token time
  auto flf = wan::WanTeaCacheSettings(preset("wan2.1-flf2v-14b"), 1280, 720, {.steps = 30});
  EXPECT_EQ(flf.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(flf.status().message().find("cache.coefficients"), std::string::npos);
  auto own = wan::WanTeaCacheSettings(preset("wan2.1-flf2v-14b"), 1280, 720,
                                      {.threshold = 0.2, .coefficients = {1, 0}, .steps = 30});
  EXPECT_TRUE(own.ok()) << own.status();
  auto bad = wan::WanTeaCacheSettings(preset("wan2.1-t2v-1.3b"), 832, 480,
                                      {.threshold = std::nan(""), .steps = 30});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("cache.threshold"), std::string::npos);
}

// A call that reuses adds the residual the blocks added at the last computed call: with the
// timestep unchanged (the same modulation: the accumulated change stays 0 < threshold) the reused
// call's output equals the computed one's, and every call after the retention is reused.
// The Flux forward's TeaCache (flux_tea_cache.h, model_info.h TeaCacheSettingsOf): TeaCache4FLUX's
// polynomial and ComfyUI-TeaCache's threshold for dev only, the job's numbers for the others,
// and the authors' call rule (the counter's first and last call computed).
TEST(TeaCacheTest, PublishedFluxSettingsAndTheirCallRule) {
  const ModelInfo dev = flux::FluxModelInfo(*flux::FluxPreset("flux1-dev"));
  auto settings = TeaCacheSettingsOf(dev, {.steps = 28});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_DOUBLE_EQ(settings->threshold, 0.4);
  ASSERT_EQ(settings->coefficients.size(), 5u);
  EXPECT_DOUBLE_EQ(settings->coefficients.front(), 4.98651651e+02);
  EXPECT_DOUBLE_EQ(settings->coefficients.back(), 2.64230861e-01);
  EXPECT_EQ(settings->retention_calls, 1);
  EXPECT_EQ(settings->cutoff_call, 27);
  auto job_threshold = TeaCacheSettingsOf(dev, {.threshold = 0.25, .steps = 28});
  ASSERT_TRUE(job_threshold.ok());
  EXPECT_DOUBLE_EQ(job_threshold->threshold, 0.25);

  // With the identity polynomial at threshold 0.25: call 0 computes; changes of 0.1 reuse two
  // calls, then the third's sum (0.3) computes; the last call (27) computes whatever the sum.
  TeaCachePolicy policy(
      *TeaCacheSettingsOf(dev, {.threshold = 0.25, .coefficients = {1, 0}, .steps = 28}));
  std::vector<bool> computed;
  for (int call = 0; call < 28; ++call) computed.push_back(policy.ShouldCompute(call, 0.1));
  EXPECT_TRUE(computed[0]);
  EXPECT_FALSE(computed[1]);
  EXPECT_FALSE(computed[2]);
  EXPECT_TRUE(computed[3]);
  EXPECT_FALSE(computed[26]);  // 3, 6, ..., 24 compute; 25 and 26 reuse
  EXPECT_TRUE(computed[27]);
  EXPECT_EQ(policy.reused(), 28 - 10);

  const ModelInfo schnell = flux::FluxModelInfo(*flux::FluxPreset("flux1-schnell"));
  EXPECT_EQ(TeaCacheSettingsOf(schnell, {.steps = 4}).status().code(), absl::StatusCode::kNotFound);
  auto no_threshold = TeaCacheSettingsOf(schnell, {.coefficients = {1, 0}, .steps = 4});
  EXPECT_EQ(no_threshold.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_threshold.status().message().find("cache.threshold"), std::string::npos);
  EXPECT_TRUE(
      TeaCacheSettingsOf(schnell, {.threshold = 0.3, .coefficients = {1, 0}, .steps = 4}).ok());
  ModelInfo wan;  // a family whose forward measures nothing of its own
  wan.family = "wan";
  EXPECT_EQ(TeaCacheSettingsOf(wan, {.threshold = 0.3, .coefficients = {1, 0}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TeaCacheTest, AReusedCallAddsTheLastComputedResidual) {
  const wan::WanConfig config = wan::WanPreset("tiny-t2v").value();
  testing_util::TempDir dir("tea-cache-forward");
  wan::MakeCheckpointOptions f32;
  f32.dtype = at::kFloat;
  f32.seed = std::random_device()();
  auto loaded = wan::LoadWanResident(
      {testing_util::MakeCheckpoint(dir.path(), config, f32, "tiny")}, PlacementOptions{});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  WeightProvider& weights = *loaded->weights;
  const wan::WanInputs inputs = testing_util::RandomWanInputs(config, {});
  TeaCacheSettings settings{.threshold = 0.5, .coefficients = {1, 0}, .retention_calls = 1};
  wan::WanStepCache cache(std::make_unique<TeaCachePolicy>(settings), /*modulation_e0=*/true);
  wan::WanInputs cached = inputs;
  cached.step_cache = &cache;
  auto first = wan::WanForward(config, cached, ParallelContext{}, weights);
  auto second = wan::WanForward(config, cached, ParallelContext{}, weights);
  auto plain = wan::WanForward(config, inputs, ParallelContext{}, weights);
  ASSERT_TRUE(first.ok() && second.ok() && plain.ok());
  EXPECT_EQ(cache.policy->reused(), 1);
  EXPECT_TRUE(at::equal(*first, *plain));
  // x + (blocks(x) - x) against blocks(x): float32 rounding of the residual only.
  EXPECT_LT((*second - *plain).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace raylight::models
