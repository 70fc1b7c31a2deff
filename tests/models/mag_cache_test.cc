// MagCache (issue #27): the schedule against a transcription of the authors' code
// (mag_cache_reference.py) on fresh random settings and ratio curves, interpolated or not, and on
// the published Wan 2.1 curves; the published settings; and the Wan forward following a schedule
// (a reused call adds the last computed residual).
#include "models/core/mag_cache.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "models/flux/flux_config.h"
#include "models/flux/flux_mag_cache.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_mag_cache.h"
#include "models/wan/wan_model.h"
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

wan::WanConfig Preset(const char* name) { return wan::WanPreset(name).value(); }

TEST(MagCacheTest, SchedulesEqualTheAuthorsTranscription) {
  std::mt19937 random(std::random_device{}());  // fresh per run
  std::vector<MagCacheSettings> cases;
  std::vector<int> steps;
  std::vector<ExpertSplit> experts;
  // The published curves at their own step counts and others (interpolated).
  for (const auto& [model, width, height, n] :
       {std::tuple{"wan2.1-t2v-1.3b", 832, 480, 50}, std::tuple{"wan2.1-t2v-14b", 1280, 720, 30},
        std::tuple{"wan2.1-i2v-14b", 832, 480, 40}, std::tuple{"wan2.1-i2v-14b", 1280, 720, 25}}) {
    for (const auto& [threshold, skips] : {std::pair{0.0, 0}, std::pair{0.24, 6}}) {
      auto settings = wan::WanMagCacheSettings(Preset(model), width, height,
                                               {.threshold = threshold, .max_skips = skips});
      ASSERT_TRUE(settings.ok()) << settings.status();
      cases.push_back(*settings);
      steps.push_back(n);
      experts.push_back({});
    }
  }
  // MagCache4FLUX's curve and rule for Flux.1-dev, at its 28 steps and others.
  for (const int n : {28, 20, 50}) {
    auto settings = flux::PublishedFluxMagCache(*flux::FluxPreset("flux1-dev"));
    ASSERT_TRUE(settings.has_value());
    cases.push_back(*settings);
    steps.push_back(n);
    experts.push_back({});
  }
  // Random curves drifting below 1 as the authors' do, of random lengths, at random settings.
  for (int i = 0; i < 24; ++i) {
    MagCacheSettings s;
    const int calibrated = std::uniform_int_distribution<int>(3, 60)(random);
    std::normal_distribution<double> noise(0.0, 0.004);
    for (int k = 0; k < calibrated; ++k) {
      const double base = 1.0 - 0.08 * k / calibrated;
      s.ratios.push_back(base + noise(random));
      s.ratios.push_back(base + noise(random));
    }
    s.threshold = std::uniform_real_distribution<double>(0.01, 0.5)(random);
    s.max_skips = std::uniform_int_distribution<int>(1, 6)(random);
    s.retention_ratio = std::vector<double>{0.0, 0.1, 0.2, 0.5}[i % 4];
    // A quarter by MagCache4FLUX's rule (one model: no expert split).
    if (i % 4 == 1) s.rule = MagCacheRule::kFlux;
    ASSERT_TRUE(ValidateMagCacheSettings(s).ok());
    cases.push_back(s);
    steps.push_back(std::uniform_int_distribution<int>(1, 60)(random));
    // A third as Wan 2.2's two experts (MagCache4Wan2.2's retention), text and image to video.
    ExpertSplit split;
    if (i % 3 != 0 && s.rule == MagCacheRule::kWan) {
      split.switch_step = std::uniform_int_distribution<int>(1, steps.back())(random);
      split.image_to_video = i % 3 == 2;
    }
    experts.push_back(split);
  }
  testing_util::TempDir dir("mag-cache");
  nlohmann::json input = nlohmann::json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    input.push_back({{"ratios", cases[i].ratios},
                     {"steps", steps[i]},
                     {"threshold", cases[i].threshold},
                     {"max_skips", cases[i].max_skips},
                     {"retention_ratio", cases[i].retention_ratio},
                     {"switch_step", experts[i].switch_step},
                     {"image_to_video", experts[i].image_to_video},
                     {"rule", cases[i].rule == MagCacheRule::kFlux ? "flux" : "wan"}});
  }
  std::ofstream(dir.path() + "/cases.json") << input.dump();
  ASSERT_TRUE(testing_util::RunToCompletion({RAYLIGHT_TEST_PYTHON, RAYLIGHT_MAG_CACHE_REFERENCE,
                                             dir.path() + "/cases.json", dir.path() + "/out.json"},
                                            dir.path() + "/reference.log",
                                            std::chrono::seconds(120))
                  .ok())
      << ReadAll(dir.path() + "/reference.log");
  const nlohmann::json out = nlohmann::json::parse(ReadAll(dir.path() + "/out.json"));
  ASSERT_EQ(out.size(), cases.size());
  int reused = 0, differ = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string what = input[i].dump().substr(0, 120) + input[i]["switch_step"].dump() +
                             (experts[i].image_to_video ? " i2v" : "");
    const std::vector<std::vector<bool>> authors = out[i]["authors"];
    EXPECT_EQ(AuthorsMagCacheDecisions(cases[i], steps[i], experts[i]), authors) << what;
    const std::vector<bool> joint = out[i]["joint"];
    const std::vector<bool> schedule = MagCacheSchedule(cases[i], steps[i], true, experts[i]);
    EXPECT_EQ(schedule, joint) << what;
    const std::vector<bool> single = out[i]["single"];
    EXPECT_EQ(MagCacheSchedule(cases[i], steps[i], false, experts[i]), single) << what;
    // The joint schedule reuses a step only where both branches' own rules would.
    for (int k = 0; k < steps[i]; ++k) {
      if (!schedule[k]) reused += 1;
      if (authors[0][k] != authors[1][k]) differ += 1;
    }
  }
  EXPECT_GT(reused, 0);  // the cases reach both outcomes
  std::printf("%d reused steps over %zu cases; %d steps where the branches' own rules differ\n",
              reused, cases.size(), differ);
}

// MagCache4FLUX's numbers for Flux.1-dev only: its 28 ratios, each for both branches.
TEST(MagCacheTest, PublishedFluxRatiosForDevOnly) {
  auto dev = flux::PublishedFluxMagCache(*flux::FluxPreset("flux1-dev"));
  ASSERT_TRUE(dev.has_value());
  EXPECT_EQ(dev->rule, MagCacheRule::kFlux);
  EXPECT_DOUBLE_EQ(dev->threshold, 0.24);
  EXPECT_EQ(dev->max_skips, 5);
  EXPECT_DOUBLE_EQ(dev->retention_ratio, 0.1);
  ASSERT_EQ(dev->ratios.size(), 56u);
  EXPECT_DOUBLE_EQ(dev->ratios[2], 1.21094);
  EXPECT_DOUBLE_EQ(dev->ratios[3], 1.21094);
  EXPECT_DOUBLE_EQ(dev->ratios[55], 0.89062);
  EXPECT_TRUE(ValidateMagCacheSettings(*dev).ok());
  for (const char* other : {"flux1-schnell", "tiny-flux-dev"}) {
    EXPECT_FALSE(flux::PublishedFluxMagCache(*flux::FluxPreset(other)).has_value()) << other;
  }
  // At their 28 steps: three steps retained, step 11 computed, and some reused.
  const std::vector<bool> schedule = MagCacheSchedule(*dev, 28, /*two_branches=*/false);
  EXPECT_TRUE(schedule[0] && schedule[1] && schedule[2] && schedule[11]);
  EXPECT_GT(std::count(schedule.begin(), schedule.end(), false), 0);
}

TEST(MagCacheTest, PublishedRatiosForTheCalibratedWanModelsOnly) {
  auto t2v = wan::WanMagCacheSettings(Preset("wan2.1-t2v-1.3b"), 832, 480, {});
  ASSERT_TRUE(t2v.ok()) << t2v.status();
  EXPECT_DOUBLE_EQ(t2v->threshold, 0.12);  // MagCache4Wan2.1's defaults
  EXPECT_EQ(t2v->max_skips, 2);
  EXPECT_DOUBLE_EQ(t2v->retention_ratio, 0.2);
  ASSERT_EQ(t2v->ratios.size(), 100u);  // 50 steps
  EXPECT_DOUBLE_EQ(t2v->ratios[2], 1.0124);
  EXPECT_DOUBLE_EQ(t2v->ratios[99], 0.81939);
  auto t2v14 = wan::WanMagCacheSettings(Preset("wan2.1-t2v-14b"), 1280, 720, {});
  ASSERT_TRUE(t2v14.ok());
  EXPECT_DOUBLE_EQ(t2v14->ratios[2], 1.02504);
  auto i2v720 = wan::WanMagCacheSettings(Preset("wan2.1-i2v-14b"), 1280, 720, {});
  auto i2v480 = wan::WanMagCacheSettings(Preset("wan2.1-i2v-14b"), 832, 480, {});
  ASSERT_TRUE(i2v720.ok() && i2v480.ok());
  ASSERT_EQ(i2v480->ratios.size(), 80u);  // 40 steps
  EXPECT_DOUBLE_EQ(i2v720->ratios[2], 0.99428);
  EXPECT_DOUBLE_EQ(i2v480->ratios[2], 0.98783);
  // Nobody calibrated these: the job brings its own ratios, or is refused naming the field.
  auto flf = wan::WanMagCacheSettings(Preset("wan2.1-flf2v-14b"), 1280, 720, {});
  EXPECT_EQ(flf.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(flf.status().message().find("cache.mag_ratios"), std::string::npos);
  auto own = wan::WanMagCacheSettings(Preset("wan2.1-flf2v-14b"), 1280, 720,
                                      {.ratios = {1.0, 1.0, 0.99, 0.99}});
  EXPECT_TRUE(own.ok()) << own.status();
  // TI2V-5B (MagCache4Wan2.2): a curve with a start image and one without, their threshold 0.04.
  auto ti2v_text = wan::WanMagCacheSettings(Preset("wan2.2-ti2v-5b"), 1280, 704, {});
  auto ti2v_image = wan::WanMagCacheSettings(Preset("wan2.2-ti2v-5b"), 1280, 704, {}, true);
  ASSERT_TRUE(ti2v_text.ok() && ti2v_image.ok());
  EXPECT_DOUBLE_EQ(ti2v_text->threshold, 0.04);
  EXPECT_EQ(ti2v_text->ratios.size(), 100u);
  EXPECT_DOUBLE_EQ(ti2v_text->ratios[2], 0.99505);
  EXPECT_DOUBLE_EQ(ti2v_image->ratios[2], 0.99512);
  // A14B's two experts (their shapes are Wan 2.1 14B's): MagCache4Wan2.2's curves, 40 steps.
  auto a14b_t2v = wan::WanMagCacheSettings(Preset("wan2.1-t2v-14b"), 1280, 720, {}, false, true);
  auto a14b_i2v = wan::WanMagCacheSettings(Preset("wan2.1-i2v-14b"), 1280, 720, {}, true, true);
  ASSERT_TRUE(a14b_t2v.ok() && a14b_i2v.ok());
  EXPECT_EQ(a14b_t2v->ratios.size(), 80u);
  EXPECT_DOUBLE_EQ(a14b_t2v->threshold, 0.04);
  EXPECT_DOUBLE_EQ(a14b_t2v->ratios[2], 1.00124);
  EXPECT_DOUBLE_EQ(a14b_i2v->ratios[2], 0.99191);
  for (const auto& [request, field] :
       {std::pair{wan::WanMagCacheRequest{.threshold = -1}, "cache.threshold"},
        std::pair{wan::WanMagCacheRequest{.max_skips = -2}, "cache.max_skips"},
        std::pair{wan::WanMagCacheRequest{.retention_ratio = 1.5}, "cache.retention_ratio"},
        std::pair{wan::WanMagCacheRequest{.ratios = {1.0, 0.9, 0.8}}, "cache.mag_ratios"},
        std::pair{wan::WanMagCacheRequest{.ratios = {1.0, -0.9}}, "cache.mag_ratios"}}) {
    auto bad = wan::WanMagCacheSettings(Preset("wan2.1-t2v-1.3b"), 832, 480, request);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(bad.status().message().find(field), std::string::npos) << bad.status();
  }
}

// The Wan forward under a schedule: computed calls equal the plain forward, a reused call adds the
// residual of the last computed one (the same input here, so the same output up to the
// residual's float32 rounding), and past the schedule's end every call computes.
TEST(MagCacheTest, TheWanForwardFollowsItsSchedule) {
  const wan::WanConfig config = Preset("tiny-t2v");
  testing_util::TempDir dir("mag-cache-forward");
  wan::MakeCheckpointOptions f32;
  f32.dtype = at::kFloat;
  f32.seed = std::random_device()();
  auto loaded = wan::LoadWanResident(
      {testing_util::MakeCheckpoint(dir.path(), config, f32, "tiny")}, PlacementOptions{});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  WeightProvider& weights = *loaded->weights;
  const wan::WanInputs inputs = testing_util::RandomWanInputs(config, {});
  wan::WanStepCache cache(std::make_unique<ScheduledSkips>(std::vector<bool>{true, false, false}),
                          /*modulation_e0=*/true);
  wan::WanInputs cached = inputs;
  cached.step_cache = &cache;
  auto plain = wan::WanForward(config, inputs, ParallelContext{}, weights);
  ASSERT_TRUE(plain.ok());
  for (int call = 0; call < 4; ++call) {
    auto out = wan::WanForward(config, cached, ParallelContext{}, weights);
    ASSERT_TRUE(out.ok()) << out.status();
    if (call == 0 || call == 3) {
      EXPECT_TRUE(at::equal(*out, *plain)) << "call " << call;
    } else {
      EXPECT_LT((*out - *plain).abs().max().item<double>(), 1e-5) << "call " << call;
    }
  }
  EXPECT_EQ(cache.policy->reused(), 2);
}

}  // namespace
}  // namespace raylight::models
