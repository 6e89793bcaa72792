// Helpers the trainer tests share: creating a trainer (a failure is a test failure), fresh
// checkpoint directories, byte-for-byte checkpoint comparison and long synthetic batches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/data/token_batch.h"
#include "engine/trainer/trainer.h"

namespace sfd::testing {

// Trainer::Create, or nullptr after recording the status as a test failure.
std::unique_ptr<Trainer> Make(const TrainerSpec& spec);
// `name` under the test temp dir, removed if it exists.
std::string FreshDir(const std::string& name);
// Compares every file of two checkpoints' optimizer/ folders byte for byte; returns how many.
int ExpectSameOptimizerFiles(const std::string& a, const std::string& b);
// rows x seq tokens of a deterministic pattern over `vocab` (the last target of a row ignored).
TokenBatch LongBatch(int64_t rows, int64_t seq, int vocab, int salt);

}  // namespace sfd::testing
