// Tests of engine/io/safetensors.{h,cc} and safetensors_writer.cc: reading a file written by
// Python (struct + json, tests/fixtures/io/make_fixture.py), round trips of every dtype, the
// streaming writer, and conversions matching Python's fp16/bf16 rounding.
#include "engine/io/safetensors.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "engine/common/half.h"
#include "engine/io/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/io/io_test_util.h"

namespace sfd {
namespace {

using ::sfd::testing_io::FixturePath;
using ::sfd::testing_io::ReadAll;
using ::sfd::testing_io::ReadJson;
using ::sfd::testing_io::TempDir;
using ::testing::HasSubstr;

// Bitwise float equality that treats -0.0 and 0.0 as different.
void ExpectSameFloat(float expected, float actual, const std::string& what) {
  uint32_t a, b;
  std::memcpy(&a, &expected, 4);
  std::memcpy(&b, &actual, 4);
  EXPECT_EQ(a, b) << what << ": expected " << expected << ", got " << actual;
}

template <typename T>
std::vector<T> Decode(absl::Span<const uint8_t> bytes) {
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

TEST(DTypeTest, NamesSizesRoundTrip) {
  const DType all[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,
                       DType::kI32, DType::kI16, DType::kI8,   DType::kU8,  DType::kBool};
  const size_t sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
  for (size_t i = 0; i < std::size(all); ++i) {
    absl::StatusOr<DType> parsed = ParseDType(DTypeName(all[i]));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, all[i]);
    EXPECT_EQ(DTypeSize(all[i]), sizes[i]) << DTypeName(all[i]);
  }
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_EQ(DTypeName(DType::kBool), "BOOL");
  absl::StatusOr<DType> bad = ParseDType("F8_E4M3");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("F8_E4M3"));
}

// The Python-written fixture: every dtype, header order != data order, metadata.
TEST(SafetensorsTest, ReadsPythonWrittenFile) {
  const std::string path = FixturePath("mixed_dtypes.safetensors");
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsFile& f = **file;
  EXPECT_EQ(f.path(), path);
  nlohmann::json expected = ReadJson(FixturePath("mixed_dtypes.expected.json"));
  ASSERT_EQ(f.tensors().size(), expected.size());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("made_by"), "make_fixture.py");
  // Header order is reverse alphabetical in the fixture.
  for (size_t i = 1; i < f.tensors().size(); ++i) {
    EXPECT_GT(f.tensors()[i - 1].name, f.tensors()[i].name);
  }
  for (auto it = expected.begin(); it != expected.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& e = it.value();
    const TensorInfo* t = f.Find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(DTypeName(t->dtype), e["dtype"].get<std::string>()) << name;
    EXPECT_EQ(t->shape, e["shape"].get<std::vector<int64_t>>()) << name;
    ASSERT_EQ(t->numel(), static_cast<int64_t>(e["values"].size())) << name;
    absl::Span<const uint8_t> bytes = f.Bytes(*t);
    EXPECT_EQ(bytes.size(), t->numel() * DTypeSize(t->dtype));
    if (IsFloatDType(t->dtype)) {
      std::vector<float> out(t->numel());
      ASSERT_TRUE(f.ReadFloat(*t, absl::MakeSpan(out)).ok()) << name;
      for (size_t k = 0; k < out.size(); ++k) {
        ExpectSameFloat(e["values"][k].get<float>(), out[k], name + "[" + std::to_string(k) + "]");
      }
    } else {
      std::vector<int64_t> vals;
      switch (t->dtype) {
        case DType::kI64: for (auto v : Decode<int64_t>(bytes)) vals.push_back(v); break;
        case DType::kI32: for (auto v : Decode<int32_t>(bytes)) vals.push_back(v); break;
        case DType::kI16: for (auto v : Decode<int16_t>(bytes)) vals.push_back(v); break;
        case DType::kI8: for (auto v : Decode<int8_t>(bytes)) vals.push_back(v); break;
        default: for (auto v : Decode<uint8_t>(bytes)) vals.push_back(v); break;
      }
      std::vector<int64_t> want;
      for (const auto& v : e["values"]) want.push_back(v.is_boolean() ? v.get<bool>() : v.get<int64_t>());
      EXPECT_EQ(vals, want) << name;
      std::vector<float> out(t->numel());
      absl::Status st = f.ReadFloat(*t, absl::MakeSpan(out));
      EXPECT_FALSE(st.ok()) << name;
      EXPECT_THAT(std::string(st.message()), HasSubstr(path));
      EXPECT_THAT(std::string(st.message()), HasSubstr(name));
    }
  }
  EXPECT_EQ(f.Find("nope"), nullptr);
}

// Our fp32 -> F16/BF16 conversion produces exactly the bytes Python's struct ('e') and the
// round-to-nearest-even bf16 formula produced for the same fp32 sources.
TEST(SafetensorsTest, ConversionMatchesPythonBytes) {
  auto file = SafetensorsFile::Open(FixturePath("mixed_dtypes.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  nlohmann::json expected = ReadJson(FixturePath("mixed_dtypes.expected.json"));
  for (const char* name : {"f32", "f16", "bf16", "scalar"}) {
    const TensorInfo* t = (*file)->Find(name);
    ASSERT_NE(t, nullptr);
    std::vector<float> src = expected[name]["source"].get<std::vector<float>>();
    std::vector<uint8_t> ours(src.size() * DTypeSize(t->dtype));
    ConvertFromFloat(t->dtype, src.data(), src.size(), ours.data());
    absl::Span<const uint8_t> theirs = (*file)->Bytes(*t);
    EXPECT_EQ(std::vector<uint8_t>(theirs.begin(), theirs.end()), ours) << name;
  }
}

TEST(SafetensorsTest, ReadFloatRejectsWrongSize) {
  const std::string path = FixturePath("mixed_dtypes.safetensors");
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorInfo* t = (*file)->Find("f32");
  std::vector<float> out(5);
  absl::Status st = (*file)->ReadFloat(*t, absl::MakeSpan(out));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr(path));
  EXPECT_THAT(std::string(st.message()), HasSubstr("\"f32\""));
}

// Every dtype written by WriteSafetensors reads back bit-identical, and the file parses as a
// valid safetensors image with the requested layout.
TEST(SafetensorsTest, RoundTripEveryDType) {
  TempDir tmp;
  std::mt19937 rng(42);
  const DType all[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,
                       DType::kI32, DType::kI16, DType::kI8,   DType::kU8,  DType::kBool};
  std::vector<std::vector<uint8_t>> blobs;
  std::vector<TensorToWrite> tensors;
  int k = 0;
  for (DType d : all) {
    std::vector<int64_t> shape = {k % 3 + 1, 5 + k};
    size_t n = static_cast<size_t>(shape[0] * shape[1]) * DTypeSize(d);
    std::vector<uint8_t> blob(n);
    for (auto& b : blob) b = static_cast<uint8_t>(rng());
    if (d == DType::kBool) for (auto& b : blob) b &= 1;
    blobs.push_back(std::move(blob));
    tensors.push_back({"t." + std::string(DTypeName(d)), d, shape, nullptr});
    ++k;
  }
  tensors.push_back({"zero_sized", DType::kF32, {0, 3}, nullptr});
  tensors.push_back({"scalar", DType::kF64, {}, nullptr});
  blobs.emplace_back();
  blobs.push_back(std::vector<uint8_t>(8, 0x3f));
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = blobs[i].data();

  const std::string path = tmp.Sub("all.safetensors");
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "é ünïcode"}};
  ASSERT_TRUE(WriteSafetensors(path, tensors, meta).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  std::string raw = ReadAll(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u) << "header must be padded to 8 bytes";
  EXPECT_EQ(raw[8], '{');

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(), meta);
  ASSERT_EQ((*file)->tensors().size(), tensors.size());
  uint64_t pos = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = (*file)->tensors()[i];
    EXPECT_EQ(t.name, tensors[i].name);  // written order kept
    EXPECT_EQ(t.dtype, tensors[i].dtype);
    EXPECT_EQ(t.shape, tensors[i].shape);
    EXPECT_EQ(t.begin, pos);
    pos = t.end;
    absl::Span<const uint8_t> b = (*file)->Bytes(t);
    EXPECT_EQ(std::vector<uint8_t>(b.begin(), b.end()), blobs[i]) << t.name;
  }
  EXPECT_EQ(pos, (*file)->data_size());
}

TEST(SafetensorsTest, FloatConversionsRoundTrip) {
  TempDir tmp;
  std::vector<float> src = {0.0f, -0.0f, 1.0f, -2.5f, 3.0e-5f, 65504.0f, 1.0f / 3.0f, 1e30f};
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    std::vector<uint8_t> bytes(src.size() * DTypeSize(d));
    ConvertFromFloat(d, src.data(), src.size(), bytes.data());
    std::string path = tmp.Sub(std::string(DTypeName(d)) + ".safetensors");
    ASSERT_TRUE(WriteSafetensors(path, {{"x", d, {8}, bytes.data()}}, {}).ok());
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_TRUE((*file)->metadata().empty());
    std::vector<float> back(8);
    ASSERT_TRUE((*file)->ReadFloat(*(*file)->Find("x"), absl::MakeSpan(back)).ok());
    for (size_t i = 0; i < src.size(); ++i) {
      if (d == DType::kF32 || d == DType::kF64) {
        ExpectSameFloat(src[i], back[i], "exact");
      } else if (d == DType::kF16 && std::fabs(src[i]) > 65504.0f) {
        EXPECT_TRUE(std::isinf(back[i]));
      } else {
        float tol = d == DType::kF16 ? 1.0f / 1024 : 1.0f / 128;  // relative half-ulp bounds
        EXPECT_NEAR(back[i], src[i], std::fabs(src[i]) * tol + 1e-7f) << DTypeName(d) << " " << i;
      }
    }
  }
}

TEST(SafetensorsTest, StreamingWriterChunksAndChecksCounts) {
  TempDir tmp;
  const std::string path = tmp.Sub("s.safetensors");
  std::vector<float> a(1000), b(7);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = -static_cast<float>(i);
  {
    auto w = SafetensorsWriter::Create(path, {{"a", DType::kBF16, {10, 100}}, {"b", DType::kF32, {7}}},
                                       {{"format", "pt"}});
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ((*w)->data_bytes(), 2000u + 28u);
    ASSERT_TRUE((*w)->AppendFloat(DType::kBF16, a.data(), 400).ok());
    ASSERT_TRUE((*w)->AppendFloat(DType::kBF16, a.data() + 400, 600).ok());
    absl::Status early = (*w)->Finish();
    EXPECT_FALSE(early.ok());
    EXPECT_THAT(std::string(early.message()), HasSubstr("2000 of 2028"));
    ASSERT_TRUE((*w)->AppendFloat(DType::kF32, b.data(), b.size()).ok());
    absl::Status over = (*w)->Append(b.data(), 1);
    EXPECT_FALSE(over.ok());
    ASSERT_TRUE((*w)->Finish().ok());
  }
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<float> back(1000);
  ASSERT_TRUE((*file)->ReadFloat(*(*file)->Find("a"), absl::MakeSpan(back)).ok());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(back[i], Bf16ToFloat(FloatToBf16(a[i]))) << i;
}

TEST(SafetensorsTest, AbandonedWriterLeavesNothing) {
  TempDir tmp;
  const std::string path = tmp.Sub("x.safetensors");
  {
    auto w = SafetensorsWriter::Create(path, {{"a", DType::kF32, {4}}}, {});
    ASSERT_TRUE(w.ok());
    float v = 1;
    ASSERT_TRUE((*w)->Append(&v, 4).ok());
  }
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

TEST(SafetensorsTest, WriterRejectsBadInput) {
  TempDir tmp;
  const std::string path = tmp.Sub("bad.safetensors");
  float v[4] = {};
  absl::Status dup = WriteSafetensors(path, {{"a", DType::kF32, {1}, v}, {"a", DType::kF32, {1}, v}}, {});
  EXPECT_THAT(std::string(dup.message()), HasSubstr("\"a\" is listed twice"));
  absl::Status meta = WriteSafetensors(path, {{"__metadata__", DType::kF32, {1}, v}}, {});
  EXPECT_FALSE(meta.ok());
  absl::Status neg = WriteSafetensors(path, {{"n", DType::kF32, {-1}, v}}, {});
  EXPECT_THAT(std::string(neg.message()), HasSubstr("negative"));
  absl::Status utf = WriteSafetensors(path, {{"\xff\xfe", DType::kF32, {1}, v}}, {});
  EXPECT_FALSE(utf.ok());
  absl::Status null_data = WriteSafetensors(path, {{"z", DType::kF32, {1}, nullptr}}, {});
  EXPECT_THAT(std::string(null_data.message()), HasSubstr("no data"));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
  absl::Status no_dir = WriteSafetensors(tmp.Sub("missing/x.safetensors"), {}, {});
  EXPECT_THAT(std::string(no_dir.message()), HasSubstr("missing/x.safetensors"));
}

}  // namespace
}  // namespace sfd
