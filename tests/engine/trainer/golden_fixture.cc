#include "tests/engine/trainer/golden_fixture.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace sfd::testing {

std::vector<float> ReadTensor(const std::string& file, const std::string& name) {
  auto st = SafetensorsFile::Open(file);
  EXPECT_TRUE(st.ok()) << st.status();
  const TensorInfo* t = (*st)->Find(name);
  EXPECT_NE(t, nullptr) << file << ":" << name;
  std::vector<float> out(t->numel());
  EXPECT_TRUE((*st)->ReadFloat(*t, absl::Span<float>(out)).ok());
  return out;
}

static std::vector<int64_t> ReadI64(const SafetensorsFile& f, const std::string& name,
                                    std::vector<int64_t>* shape) {
  const TensorInfo* t = f.Find(name);
  *shape = t->shape;
  auto bytes = f.Bytes(*t);
  std::vector<int64_t> out(t->numel());
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

GoldenFixture LoadGolden(const std::string& name) {
  GoldenFixture f;
  f.dir = std::string(SFD_FIXTURES_DIR) + "/golden/" + name;
  f.model_dir = f.dir + "/model";
  std::ifstream in(f.dir + "/expected.json");
  std::stringstream ss;
  ss << in.rdbuf();
  f.expected = nlohmann::json::parse(ss.str());
  f.steps = f.expected["steps"];
  f.accum = f.expected["accum"];
  auto st = SafetensorsFile::Open(f.dir + "/batches.safetensors");
  EXPECT_TRUE(st.ok()) << st.status();
  std::vector<int64_t> shape;
  std::vector<int64_t> ids = ReadI64(**st, "input_ids", &shape);
  std::vector<int64_t> labels = ReadI64(**st, "labels", &shape);
  const int64_t rows = shape[2], seq = shape[3];
  f.batches.resize(f.steps);
  for (int s = 0; s < f.steps; ++s) {
    for (int a = 0; a < f.accum; ++a) {
      TokenBatch b;
      b.rows = rows;
      b.seq = seq;
      const int64_t base = (static_cast<int64_t>(s) * f.accum + a) * rows * seq;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t t = 0; t < seq; ++t) {
          b.input_ids.push_back(static_cast<int32_t>(ids[base + r * seq + t]));
          b.targets.push_back(t + 1 < seq ? static_cast<int32_t>(labels[base + r * seq + t + 1])
                                          : kIgnoreLabel);
          b.position_ids.push_back(static_cast<int32_t>(t));
          b.segment_ids.push_back(0);
        }
      }
      f.batches[s].push_back(std::move(b));
    }
  }
  return f;
}

std::string ConfigVariant(const GoldenFixture& f, const std::string& name, const nlohmann::json& changes) {
  const std::string dir = ::testing::TempDir() + "/config_variant_" + name;
  std::filesystem::create_directories(dir);
  std::ifstream in(f.model_dir + "/config.json");
  nlohmann::json c = nlohmann::json::parse(in);
  c.merge_patch(changes);
  std::ofstream(dir + "/config.json") << c.dump();
  return dir;
}

TrainerSpec GoldenSpec(const GoldenFixture& f, int window_slots) {
  const auto& h = f.expected["hyper"];
  TrainerSpec spec;
  spec.model_dir = f.model_dir;
  spec.optimizer.lr = h["lr"];
  spec.optimizer.beta1 = h["beta1"];
  spec.optimizer.beta2 = h["beta2"];
  spec.optimizer.eps = h["eps"];
  spec.optimizer.weight_decay = h["weight_decay"];
  spec.max_grad_norm = h["max_grad_norm"];
  spec.schedule.kind = LrScheduleKind::kCosine;
  spec.schedule.warmup_steps = h["warmup_steps"];
  spec.schedule.total_steps = h["total_steps"];
  spec.engine.device = DeviceKind::kCpu;
  spec.engine.compute_dtype = "fp32";
  spec.engine.window_slots = window_slots;
  spec.engine.cpu_threads = 2;
  return spec;
}

double RelErr(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  if (a.size() != b.size()) return INFINITY;
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace sfd::testing
