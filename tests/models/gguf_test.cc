// GGUF (issue #25): the reader against files that gguf-py (llama.cpp's package) writes, every type
// dequantised to gguf-py's float32 values bit for bit; malformed files refused with the field
// named; a Wan checkpoint as GGUF equal to the same values in a float32 safetensors file, on the
// resident and layer-swap placements (FSDP is in tests/parallel/parallel_sampling_test.cc), with
// the quantised bytes what stays in memory.
#include "models/core/gguf.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "models/core/gguf_dequant.h"
#include "models/core/safetensors_tensors.h"
#include "models/wan/wan_inspect.h"
#include "models/wan/wan_loader.h"
#include "tests/models/wan_test_util.h"
#include "tests/util/run_command.h"
#include "tests/util/temp_dir.h"

namespace raylight::models {
namespace {

// Runs tests/models/gguf_reference.py with `args`.
void RunReference(const std::string& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {RAYLIGHT_TEST_PYTHON, RAYLIGHT_GGUF_SCRIPT};
  argv.insert(argv.end(), args.begin(), args.end());
  auto status =
      testing_util::RunToCompletion(argv, dir + "/reference.log", std::chrono::seconds(300));
  ASSERT_TRUE(status.ok()) << status;
}

at::Tensor ViewOf(const std::shared_ptr<GgufFile>& file, const GgufTensorInfo& info) {
  const absl::string_view bytes = file->Bytes(info);
  return at::from_blob(const_cast<char*>(bytes.data()), {static_cast<int64_t>(bytes.size())},
                       at::TensorOptions().dtype(at::kByte));
}

TEST(GgufDequantTest, EveryTypeEqualsGgufPyBitForBit) {
  testing_util::TempDir dir("gguf-types");
  RunReference(dir.path(), {"types", dir.path(), std::to_string(std::random_device{}())});
  auto file = GgufFile::Open(dir.path() + "/types.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->header().version, 3u);
  EXPECT_EQ((*file)->header().metadata.at("general.architecture"), "wan");
  auto expected = SafetensorsFile::Open(dir.path() + "/types_expected.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ((*expected)->header().tensors.size(), 14u);  // 13 types and the 5-D tensor
  for (const StTensorInfo& want : (*expected)->header().tensors) {
    const GgufTensorInfo* info = (*file)->header().Find(want.name);
    ASSERT_NE(info, nullptr) << want.name;
    EXPECT_EQ(info->shape, want.shape) << want.name;
    const at::Tensor values = *ViewTensor(*expected, want);
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      auto got = DequantizeGguf(ViewOf(*file, *info), info->type, info->shape, dtype);
      ASSERT_TRUE(got.ok()) << want.name << ": " << got.status();
      EXPECT_TRUE(at::equal(*got, values.to(dtype)))
          << want.name << " as " << dtype << ": max abs diff "
          << (got->to(at::kFloat) - values).abs().max().item<float>();
    }
  }
}

TEST(GgufDequantTest, WrongByteCountsAreRefused) {
  const at::Tensor bytes = at::zeros({34 * 3}, at::kByte);
  EXPECT_TRUE(DequantizeGguf(bytes, GgmlType::kQ8_0, {3, 32}, at::kFloat).ok());
  auto short_by_one = DequantizeGguf(bytes.narrow(0, 0, 101), GgmlType::kQ8_0, {3, 32}, at::kFloat);
  EXPECT_EQ(short_by_one.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(short_by_one.status().message().find("Q8_0"), std::string::npos);
  EXPECT_FALSE(DequantizeGguf(bytes, GgmlType::kQ8_0, {3, 33}, at::kFloat).ok());
}

// ---- malformed files ----------------------------------------------------------------------------
// A GGUF v3 file written field by field, so that each test can break one thing.
struct TensorSpec {
  std::string name = "w";
  std::vector<uint64_t> ne = {32, 2};  // ggml order: first dimension innermost
  uint32_t type = static_cast<uint32_t>(GgmlType::kQ8_0);
  uint64_t offset = 0;
};

struct FileSpec {
  char magic[4] = {'G', 'G', 'U', 'F'};
  uint32_t version = 3;
  std::optional<uint32_t> alignment;
  std::vector<TensorSpec> tensors = {TensorSpec{}};
  std::vector<std::pair<std::string, std::vector<int32_t>>> int_arrays;
  uint64_t data_bytes = 68;              // two Q8_0 blocks
  std::optional<uint64_t> tensor_count;  // overrides tensors.size()
};

class Writer {
 public:
  template <typename T>
  void Put(T value) {
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  void String(const std::string& text) {
    Put<uint64_t>(text.size());
    bytes_ += text;
  }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
};

std::string Build(const FileSpec& spec) {
  Writer out;
  out.bytes().append(spec.magic, 4);
  out.Put<uint32_t>(spec.version);
  out.Put<uint64_t>(spec.tensor_count.value_or(spec.tensors.size()));
  out.Put<uint64_t>(1 + (spec.alignment ? 1 : 0) + spec.int_arrays.size());
  out.String("general.architecture");
  out.Put<uint32_t>(8);  // string
  out.String("wan");
  if (spec.alignment) {
    out.String("general.alignment");
    out.Put<uint32_t>(4);  // u32
    out.Put<uint32_t>(*spec.alignment);
  }
  for (const auto& [key, values] : spec.int_arrays) {
    out.String(key);
    out.Put<uint32_t>(9);  // array
    out.Put<uint32_t>(5);  // of i32
    out.Put<uint64_t>(values.size());
    for (int32_t value : values) out.Put<int32_t>(value);
  }
  for (const TensorSpec& tensor : spec.tensors) {
    out.String(tensor.name);
    out.Put<uint32_t>(tensor.ne.size());
    for (uint64_t dim : tensor.ne) out.Put<uint64_t>(dim);
    out.Put<uint32_t>(tensor.type);
    out.Put<uint64_t>(tensor.offset);
  }
  const uint64_t alignment = spec.alignment.value_or(32);
  while (out.bytes().size() % alignment != 0) out.bytes().push_back('\0');
  out.bytes().append(spec.data_bytes, '\x01');
  return out.bytes();
}

// The parse error's message, or "" when the file parses.
std::string ErrorOf(const std::string& bytes) {
  auto header = ParseGguf(bytes, "bad.gguf");
  if (header.ok()) return "";
  EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument) << header.status();
  return std::string(header.status().message());
}

void ExpectError(const FileSpec& spec, const std::vector<std::string>& parts) {
  const std::string error = ErrorOf(Build(spec));
  ASSERT_FALSE(error.empty()) << "parsed; expected an error with '" << parts.front() << "'";
  for (const std::string& part : parts) {
    EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' not in: " << error;
  }
}

TEST(GgufParseTest, AValidFileParsesWithTorchOrderShapes) {
  FileSpec spec;
  spec.tensors.push_back({"b", {64}, static_cast<uint32_t>(GgmlType::kF32), 96});
  spec.data_bytes = 96 + 256;
  spec.alignment = 32;
  auto header = ParseGguf(Build(spec), "ok.gguf");
  ASSERT_TRUE(header.ok()) << header.status();
  ASSERT_EQ(header->tensors.size(), 2u);
  EXPECT_EQ(header->tensors[0].shape, (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(header->tensors[0].bytes, 68u);
  EXPECT_EQ(header->tensors[1].shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(header->metadata.at("general.architecture"), "wan");
  EXPECT_EQ(header->data_offset % 32, 0u);
}

TEST(GgufParseTest, EveryTruncationIsRefused) {
  const std::string whole = Build(FileSpec{});
  ASSERT_EQ(ErrorOf(whole), "");
  for (size_t size = 0; size < whole.size(); ++size) {
    EXPECT_NE(ErrorOf(whole.substr(0, size)), "") << "cut at " << size;
  }
  EXPECT_NE(ErrorOf(whole.substr(0, 30)).find("truncated"), std::string::npos);
}

TEST(GgufParseTest, BadFieldsAreRefusedWithTheFieldNamed) {
  FileSpec magic;
  magic.magic[0] = 'X';
  ExpectError(magic, {"magic"});
  FileSpec version;
  version.version = 1;
  ExpectError(version, {"version", "1"});
  FileSpec count;
  count.tensor_count = uint64_t{1} << 40;
  ExpectError(count, {"tensor_count"});
  FileSpec unknown;
  unknown.tensors[0].type = 99;
  ExpectError(unknown, {"tensor 'w'", "ggml type 99"});
  FileSpec past;
  past.tensors[0].offset = 64;  // 68 bytes from 64 run past the 68-byte data section
  ExpectError(past, {"tensor 'w'", "past the data section"});
  FileSpec misaligned;
  misaligned.tensors[0].offset = 8;
  misaligned.data_bytes = 128;
  ExpectError(misaligned, {"tensor 'w'", "alignment"});
  FileSpec overlap;
  overlap.tensors.push_back({"v", {32}, static_cast<uint32_t>(GgmlType::kQ8_0), 32});
  overlap.data_bytes = 128;
  ExpectError(overlap, {"tensor 'v'", "overlap 'w'"});
  FileSpec twice;
  twice.tensors.push_back({"w", {32}, static_cast<uint32_t>(GgmlType::kQ8_0), 96});
  twice.data_bytes = 160;
  ExpectError(twice, {"tensor 'w'", "twice"});
  FileSpec partial_block;
  partial_block.tensors[0].ne = {48, 2};
  ExpectError(partial_block, {"tensor 'w'", "first dimension 48", "block of 32"});
  FileSpec dims;
  dims.tensors[0].ne = {32, 1, 1, 1, 2};
  ExpectError(dims, {"tensor 'w'", "5 dimensions"});
  FileSpec zero;
  zero.tensors[0].ne = {32, 0};
  ExpectError(zero, {"tensor 'w'", "dimension 1 is 0"});
  FileSpec alignment;
  alignment.alignment = 24;
  ExpectError(alignment, {"general.alignment", "power of two"});
  FileSpec shape;
  shape.int_arrays.push_back({"comfy.gguf.orig_shape.w", {2, 2, 2, 5}});
  ExpectError(shape, {"comfy.gguf.orig_shape.w", "64 elements"});
  FileSpec orig;
  orig.int_arrays.push_back({"comfy.gguf.orig_shape.w", {2, 16, 1, 1, 2}});
  auto header = ParseGguf(Build(orig), "orig.gguf");
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->tensors[0].shape, (std::vector<int64_t>{2, 16, 1, 1, 2}));
}

TEST(GgufParseTest, OpenNamesTheFileAndTellsGgufApart) {
  testing_util::TempDir dir("gguf-open");
  const std::string path = dir.path() + "/m.gguf";
  std::ofstream(path, std::ios::binary) << Build(FileSpec{}).substr(0, 40);
  auto file = GgufFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find(path), std::string::npos) << file.status();
  EXPECT_TRUE(IsGgufPath(path));
  EXPECT_FALSE(IsGgufPath(dir.path() + "/none"));
}

// ---- a Wan model as GGUF ------------------------------------------------------------------------
class GgufWanTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing_util::TempDir("gguf-wan");
    // 256 wide so that the K types' 256-value blocks divide the rows and every type is used.
    config_ = new wan::WanConfig(*wan::WanPreset("tiny-t2v"));
    config_->dim = 256;
    config_->ffn_dim = 512;
    config_->num_layers = 6;
    wan::MakeCheckpointOptions options;
    options.dtype = at::kFloat;
    options.spelling = wan::KeySpelling::kComfyUi;
    options.seed = std::random_device{}();
    const std::string source = testing_util::MakeCheckpoint(dir_->path(), *config_, options, "w");
    gguf_ = new std::string(dir_->path() + "/w.gguf");
    expected_ = new std::string(dir_->path() + "/w-dequantised.safetensors");
    RunReference(dir_->path(),
                 {"convert", source, *gguf_, *expected_, std::to_string(std::random_device{}())});
  }
  static void TearDownTestSuite() {
    delete expected_;
    delete gguf_;
    delete config_;
    delete dir_;
  }

  static at::Tensor Forward(const wan::LoadedWan& loaded, const wan::WanInputs& inputs) {
    auto out = wan::WanForward(loaded.config, inputs, ParallelContext{}, *loaded.weights);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : at::Tensor();
  }

  // The same weight values through the same forward. Bit-identical on the Intel machines this
  // was written on; on an AMD EPYC (2026-12-04) the CPU GEMMs rounded the two alike-valued but
  // differently laid out weight tensors differently (a few ulps): float32's own tolerance.
  static void ExpectSameForward(const at::Tensor& got, const at::Tensor& want) {
    ASSERT_TRUE(got.defined() && want.defined());
    const double diff = (got - want).abs().max().item<double>();
    const double scale = want.abs().max().item<double>();
    EXPECT_LE(diff, 1e-5 * scale) << "max abs diff " << diff << " of " << scale;
  }

  static PlacementOptions Placement() {
    PlacementOptions options;
    options.compute_dtype = at::kFloat;
    return options;
  }

  static testing_util::TempDir* dir_;
  static wan::WanConfig* config_;
  static std::string* gguf_;
  static std::string* expected_;
};

testing_util::TempDir* GgufWanTest::dir_ = nullptr;
wan::WanConfig* GgufWanTest::config_ = nullptr;
std::string* GgufWanTest::gguf_ = nullptr;
std::string* GgufWanTest::expected_ = nullptr;

TEST_F(GgufWanTest, TheFileUsesEveryQuantisedType) {
  auto file = GgufFile::Open(*gguf_);
  ASSERT_TRUE(file.ok()) << file.status();
  std::set<std::string> types;
  for (const GgufTensorInfo& info : (*file)->header().tensors) {
    types.insert(TraitsOf(info.type).name);
  }
  for (const char* type :
       {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "F32"}) {
    EXPECT_TRUE(types.count(type)) << type;
  }
}

TEST_F(GgufWanTest, DetectsTheConfigFromTheHeader) {
  auto config = wan::InspectWanCheckpoint({*gguf_});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->dim, 256);
  EXPECT_EQ(config->ffn_dim, 512);
  EXPECT_EQ(config->num_layers, config_->num_layers);
}

TEST_F(GgufWanTest, ResidentForwardEqualsTheDequantisedSafetensors) {
  auto gguf = wan::LoadWanResident({*gguf_}, Placement());
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto reference = wan::LoadWanResident({*expected_}, Placement());
  ASSERT_TRUE(reference.ok()) << reference.status();
  const wan::WanInputs inputs = testing_util::RandomWanInputs(*config_, {});
  ExpectSameForward(Forward(*gguf, inputs), Forward(*reference, inputs));
  // The blocks stay quantised: at most a third of the float32 blocks' bytes (Q8_0 is 34 bytes
  // per 32 values, 17% of float32; the norms and biases stay float32).
  auto* resident = dynamic_cast<ResidentWeights*>(gguf->weights.get());
  auto* dense = dynamic_cast<ResidentWeights*>(reference->weights.get());
  ASSERT_NE(resident, nullptr);
  ASSERT_NE(dense, nullptr);
  const int64_t quantised_blocks = resident->resident_bytes() - resident->globals().bytes();
  const int64_t dense_blocks = dense->resident_bytes() - dense->globals().bytes();
  EXPECT_LT(quantised_blocks * 3, dense_blocks);
}

TEST_F(GgufWanTest, DequantisedAtLoadGivesTheSameForward) {
  PlacementOptions options = Placement();
  options.keep_fp8 = false;
  auto eager = wan::LoadWanResident({*gguf_}, options);
  ASSERT_TRUE(eager.ok()) << eager.status();
  auto reference = wan::LoadWanResident({*expected_}, Placement());
  ASSERT_TRUE(reference.ok()) << reference.status();
  const wan::WanInputs inputs = testing_util::RandomWanInputs(*config_, {});
  ExpectSameForward(Forward(*eager, inputs), Forward(*reference, inputs));
}

TEST_F(GgufWanTest, LayerSwapMovesTheBlocksQuantisedAndEqualsResident) {
  auto resident = wan::LoadWanResident({*gguf_}, Placement());
  ASSERT_TRUE(resident.ok()) << resident.status();
  SwapOptions swap;
  swap.budget_fraction = 0.5;  // of six blocks: two buffers and one resident, five streamed
  swap.prefetch = 1;
  auto swapped = wan::LoadWanSwapped({*gguf_}, Placement(), swap);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  auto* weights = dynamic_cast<SwappedWeights*>(swapped->weights.get());
  ASSERT_NE(weights, nullptr);
  ASSERT_FALSE(weights->plan().streamed.empty());
  const wan::WanInputs inputs = testing_util::RandomWanInputs(*config_, {});
  ExpectSameForward(Forward(*swapped, inputs), Forward(*resident, inputs));
  // The host copies are the quantised blocks, not float32.
  auto dense = wan::LoadWanSwapped({*expected_}, Placement(), swap);
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_LT(weights->host_bytes() * 3,
            dynamic_cast<SwappedWeights*>(dense->weights.get())->host_bytes());
}

// LoRA on a GGUF base (kohya names, bf16 factors as LoRA files store them, a bias `.diff_b`):
// the quantised weights keep their blocks and carry the updates, applied at each dequantisation
// in the merge's own float32 arithmetic, so the forward equals the same LoRA merged into the
// dequantised safetensors at load, bit for bit, resident and swapped.
TEST_F(GgufWanTest, LoraOnAQuantisedBaseEqualsTheMergeIntoItsValues) {
  const int64_t rank = 8;
  NamedTensors lora;
  for (int block = 0; block < config_->num_layers; ++block) {
    for (const char* module : {"self_attn_q", "cross_attn_v", "ffn_0"}) {
      const std::string name = absl::StrCat("lora_unet_blocks_", block, "_", module);
      const int64_t out = std::string(module) == "ffn_0" ? config_->ffn_dim : config_->dim;
      lora.emplace_back(name + ".lora_up.weight",
                        (at::randn({out, rank}) * 0.05).to(at::kBFloat16));
      lora.emplace_back(name + ".lora_down.weight",
                        (at::randn({rank, config_->dim}) * 0.05).to(at::kBFloat16));
      lora.emplace_back(name + ".alpha", at::tensor(4.0));
    }
    lora.emplace_back(absl::StrCat("diffusion_model.blocks.", block, ".self_attn.o.diff_b"),
                      at::randn({config_->dim}) * 0.01);
  }
  const std::string path = dir_->path() + "/style.safetensors";
  ASSERT_TRUE(WriteTensors(path, lora).ok());
  const std::vector<LoraFile> loras = {{path, 0.75}};
  auto reference = wan::LoadWanResident({*expected_}, Placement(), loras);
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto quantised = wan::LoadWanResident({*gguf_}, Placement(), loras);
  ASSERT_TRUE(quantised.ok()) << quantised.status();
  EXPECT_EQ(quantised->loras.patched_tensors, reference->loras.patched_tensors);
  SwapOptions swap;
  swap.budget_fraction = 0.5;
  auto swapped = wan::LoadWanSwapped({*gguf_}, Placement(), swap, loras);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  const wan::WanInputs inputs = testing_util::RandomWanInputs(*config_, {});
  const at::Tensor expected = Forward(*reference, inputs);
  ExpectSameForward(Forward(*quantised, inputs), expected);
  ExpectSameForward(Forward(*swapped, inputs), expected);
  // Still quantised: the patched matrices did not become float32.
  auto plain = wan::LoadWanResident({*gguf_}, Placement());
  ASSERT_TRUE(plain.ok());
  const auto* with_lora = dynamic_cast<ResidentWeights*>(quantised->weights.get());
  const auto* without = dynamic_cast<ResidentWeights*>(plain->weights.get());
  ASSERT_TRUE(with_lora != nullptr && without != nullptr);
  EXPECT_EQ(with_lora->resident_bytes(), without->resident_bytes());
  // And the LoRA changes the result.
  EXPECT_FALSE(at::allclose(Forward(*plain, inputs), expected));
  // A factor that does not fit its weight is refused at load, naming it.
  NamedTensors wrong = {
      {"lora_unet_blocks_0_self_attn_q.lora_up.weight", at::randn({7, rank})},
      {"lora_unet_blocks_0_self_attn_q.lora_down.weight", at::randn({rank, config_->dim})}};
  ASSERT_TRUE(WriteTensors(dir_->path() + "/wrong.safetensors", wrong).ok());
  auto refused =
      wan::LoadWanResident({*gguf_}, Placement(), {{dir_->path() + "/wrong.safetensors", 1.0}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("lora_unet_blocks_0_self_attn_q"), std::string::npos)
      << refused.status();
}

// raylight-make-checkpoint's GGUF files (what the GPU benchmarks load) read back by gguf-py's
// own reader to the values Raylight loads.
TEST(GgufWriterTest, MadeCheckpointsReadBackThroughGgufPy) {
  testing_util::TempDir dir("gguf-made");
  wan::WanConfig config = *wan::WanPreset("tiny-t2v");
  config.dim = 256;
  config.ffn_dim = 512;
  wan::MakeCheckpointOptions options;
  options.spelling = wan::KeySpelling::kComfyUi;
  options.seed = std::random_device{}();
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_K}) {
    options.gguf = type;
    const std::string path = dir.path() + "/m.gguf";
    ASSERT_TRUE(wan::MakeWanCheckpoint(config, path, options).ok());
    RunReference(dir.path(), {"read", path, dir.path() + "/read.safetensors"});
    auto opened = wan::OpenWanCheckpoint({path});
    ASSERT_TRUE(opened.ok()) << opened.status();
    auto reference = SafetensorsFile::Open(dir.path() + "/read.safetensors");
    ASSERT_TRUE(reference.ok()) << reference.status();
    int quantised = 0;
    for (const StTensorInfo& info : (*reference)->header().tensors) {
      const std::string internal = info.name.substr(std::string("model.diffusion_model.").size());
      auto it = opened->checkpoint.tensors.find(internal);
      ASSERT_NE(it, opened->checkpoint.tensors.end()) << info.name;
      quantised += it->second.gguf.has_value();
      const at::Tensor mine = Materialize(it->second, at::kFloat, at::kCPU);
      EXPECT_TRUE(at::equal(mine, *ViewTensor(*reference, info))) << info.name;
    }
    // Per block: q, k, v, o of both attentions and the FFN's two matrices.
    EXPECT_EQ(quantised, 10 * config.num_layers);
  }
}

}  // namespace
}  // namespace raylight::models
