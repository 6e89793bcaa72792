// Loads a golden fixture made by tests/golden/make_golden.py (transformers + torch AdamW):
// the model dir, token batches as sfd TokenBatches (HF labels shifted into targets), and the
// expected per-step losses / grad norms / lrs.
#pragma once

#include <string>
#include <vector>

#include "engine/data/token_batch.h"
#include "engine/io/safetensors.h"
#include "engine/trainer/trainer_spec.h"
#include "nlohmann/json.hpp"

namespace sfd::testing {

struct GoldenFixture {
  std::string dir;
  std::string model_dir;
  nlohmann::json expected;
  int steps = 0, accum = 0;
  std::vector<std::vector<TokenBatch>> batches;  // [step][micro-batch]
};

GoldenFixture LoadGolden(const std::string& name);
// TrainerSpec with the fixture's hyper-parameters, CPU, fp32.
TrainerSpec GoldenSpec(const GoldenFixture& f, int window_slots);
// A model directory `name` under the test temp dir holding only the fixture's config.json with
// `changes` merged in (for random-init runs of other shapes); returns its path.
std::string ConfigVariant(const GoldenFixture& f, const std::string& name, const nlohmann::json& changes);
// Reads one fp32 tensor of a safetensors file.
std::vector<float> ReadTensor(const std::string& file, const std::string& name);
// ||a-b|| / ||b||
double RelErr(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace sfd::testing
