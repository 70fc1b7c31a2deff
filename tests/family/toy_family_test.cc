// Issue #26's registration test: a family written in tests/family (toy_family.h) runs jobs through
// a real head, node and workers (the test's own toy-head and toy-worker builds: raylight-head and
// raylight-worker with the toy registered first) with no change outside this folder. The toy's
// denoised prediction is its target at every sigma, so every job ends on a value the test
// computes by hand: one rank, Ulysses 2, CFG parallel and FSDP-placed weights alike.
#include "tests/family/toy_family.h"

#include "tests/jobs/jobs_fixture.h"

namespace raylight::jobs_testing {
namespace {

using toy_family::kChannels;
using toy_family::kTextWidth;

struct F32Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// A safetensors file of f32 tensors, written without torch.
std::string SafetensorsBytes(const std::vector<F32Tensor>& tensors) {
  std::vector<models::StTensorInfo> infos;
  std::string data;
  for (const F32Tensor& tensor : tensors) {
    infos.push_back({.name = tensor.name, .dtype = models::StDtype::kF32, .shape = tensor.shape});
    data.append(reinterpret_cast<const char*>(tensor.values.data()),
                tensor.values.size() * sizeof(float));
  }
  return models::BuildSafetensorsHeader(infos, {}) + data;
}

class ToyFamilyTest : public JobsTest {
 protected:
  static constexpr int kBlocks = 3;

  void SetUp() override {
    head_binary_ = "toy-head";
    worker_binary_ = "toy-worker";
    JobsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::mt19937 random(seed_);
    std::uniform_real_distribution<float> uniform(-1, 1);
    auto values = [&](size_t n, float offset = 0) {
      std::vector<float> v(n);
      for (float& x : v) x = offset + uniform(random);
      return v;
    };
    weight_ = values(kChannels * kTextWidth);
    bias_ = values(kChannels);
    std::vector<F32Tensor> checkpoint = {{"toy.proj.weight", {kChannels, kTextWidth}, weight_},
                                         {"toy.proj.bias", {kChannels}, bias_}};
    for (int i = 0; i < kBlocks; ++i) {
      scales_.push_back(values(kChannels, 1.5f));
      checkpoint.push_back({absl::StrCat("toy.blocks.", i, ".scale"), {kChannels}, scales_.back()});
    }
    std::ofstream(models_ + "/toy.safetensors", std::ios::binary) << SafetensorsBytes(checkpoint);
    positive_ = values(5 * kTextWidth);
    negative_ = values(3 * kTextWidth);
  }

  // proj(mean of the text) scaled by every block: the toy's denoised prediction.
  std::vector<double> Target(const std::vector<float>& text) const {
    const size_t tokens = text.size() / kTextWidth;
    std::vector<double> target(kChannels);
    for (int c = 0; c < kChannels; ++c) {
      double sum = bias_[c];
      for (int d = 0; d < kTextWidth; ++d) {
        double mean = 0;
        for (size_t l = 0; l < tokens; ++l) mean += text[l * kTextWidth + d];
        sum += weight_[c * kTextWidth + d] * mean / tokens;
      }
      for (const std::vector<float>& scale : scales_) sum *= scale[c];
      target[c] = sum;
    }
    return target;
  }

  // 40 x 24 pixels: a 3 x 5 latent of 4 channels, 15 tokens (Ulysses 2 pads).
  v1::SampleJob ToyJob() const {
    v1::SampleJob job;
    job.set_model("toy.safetensors");
    job.set_positive(SafetensorsBytes({{"text", {5, kTextWidth}, positive_}}));
    job.set_negative(SafetensorsBytes({{"text", {1, 3, kTextWidth}, negative_}}));
    job.set_width(40);
    job.set_height(24);
    job.set_frames(1);
    job.set_steps(5);
    job.set_cfg(2.5);
    job.set_sampler("euler");
    job.set_scheduler("simple");
    job.set_seed(seed_);
    return job;
  }

  // The job's LATENT is uncond + cfg * (cond - uncond) of the two targets, at every pixel.
  void ExpectTarget(const v1::SampleJob& job) {
    const v1::JobInfo done = RunJob(job);
    ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.error() << cluster_->Logs();
    EXPECT_NE(done.summary().find("toy-dit"), std::string::npos) << done.summary();
    const Latent got = ReadLatent(ResultOf(done.job_id()).latent());
    ASSERT_EQ(got.shape, (std::vector<int64_t>{1, kChannels, 3, 5}));
    const std::vector<double> cond = Target(positive_), uncond = Target(negative_);
    double worst = 0;
    for (int c = 0; c < kChannels; ++c) {
      const double want = uncond[c] + job.cfg() * (cond[c] - uncond[c]);
      for (int i = 0; i < 15; ++i) {
        worst = std::max(worst, std::abs(got.values[c * 15 + i] - want));
      }
    }
    EXPECT_LT(worst, 1e-4) << job.mesh().ShortDebugString() << " " << job.placement();
  }

  std::vector<float> weight_, bias_, positive_, negative_;
  std::vector<std::vector<float>> scales_;
};

TEST_F(ToyFamilyTest, JobsEndOnTheToysTargetOnEveryMesh) {
  v1::SampleJob job = ToyJob();
  ExpectTarget(job);
  job.mutable_mesh()->set_ulysses(2);
  ExpectTarget(job);
  job.set_placement("fsdp");
  ExpectTarget(job);
  job.clear_placement();
  job.mutable_mesh()->set_ulysses(1);
  job.mutable_mesh()->set_cfg(2);
  ExpectTarget(job);
}

TEST_F(ToyFamilyTest, IsListedWithItsFamilyAndRefusesWhatItLacksByName) {
  auto description = jobs_->DescribeSampling();
  ASSERT_TRUE(description.ok()) << description.status();
  bool listed = false;
  for (const v1::ModelFile& model : description->models()) {
    if (model.name() == "toy.safetensors") listed = model.family() == "toy";
  }
  EXPECT_TRUE(listed);
  const v1::SampleJob job = ToyJob();
  ExpectRefusedNaming(job, "prompt", [](v1::SampleJob& j) { j.set_prompt("a fox"); });
  ExpectRefusedNaming(job, "loras", [](v1::SampleJob& j) { j.add_loras()->set_name("x"); });
  // Its forward takes no step cache (ModelInfo.caches_steps false).
  ExpectRefusedNaming(job, "cache.kind", [](v1::SampleJob& j) {
    j.mutable_cache()->set_kind("magcache");
    j.mutable_cache()->add_mag_ratios(1);
    j.mutable_cache()->add_mag_ratios(1);
  });
  // Nor fp8 compute (ModelInfo.computes_fp8 false).
  ExpectRefusedNaming(job, "compute", [](v1::SampleJob& j) { j.set_compute("fp8"); });
  ExpectRefusedNaming(job, "frames", [](v1::SampleJob& j) { j.set_frames(5); });
  ExpectRefusedNaming(job, "width", [](v1::SampleJob& j) { j.set_width(44); });
  ExpectRefusedNaming(job, "positive", [](v1::SampleJob& j) {
    j.set_positive(SafetensorsBytes({{"text", {2, 7}, std::vector<float>(14)}}));
  });
  ExpectRefusedNaming(job, "negative", [](v1::SampleJob& j) { j.clear_negative(); });
  ExpectRefusedNaming(job, "latent", [](v1::SampleJob& j) {
    j.set_latent(SafetensorsBytes({{"latent_tensor", {1, 16, 3, 5}, std::vector<float>(240)}}));
  });
}

}  // namespace
}  // namespace raylight::jobs_testing
