// Dataset rows: parsing and validating one JSONL line into a Sample, in the formats users
// already have, detected by keys:
//   {"text": str}                                   -> kText
//   {"prompt": str, "completion": str}              -> kCompletion
//   {"instruction": str, "input"?: str, "output": str} -> kAlpaca
//   {"messages": [{"role": str, "content": str|null, "weight"?: 0|1, ...}, ...]} -> kMessages
// Other keys (ids, metadata) are ignored. Keys of two formats in one row is an ambiguity
// error; so is a partial format ("prompt" without "completion"). Errors are messages without
// a location; the caller prefixes "file:line: ". Never throws, never aborts (fuzzed by
// tests/fuzz/jsonl_fuzz.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/job/job_spec.h"
#include "nlohmann/json.hpp"

namespace sfd {

struct Sample {
  DatasetFormat format = DatasetFormat::kAuto;
  std::string text;                        // kText
  std::string prompt, completion;          // kCompletion; kAlpaca: instruction/input/output below
  std::string instruction, input, output;  // kAlpaca
  // kMessages: the messages without "weight" keys (as the template sees them), and per
  // message whether its loss counts (weight 1, the default).
  nlohmann::ordered_json messages;
  std::vector<bool> message_weights;
};

const char* DatasetFormatName(DatasetFormat f);

// Format of a parsed row by its keys (never kAuto on success).
absl::StatusOr<DatasetFormat> DetectFormat(const nlohmann::ordered_json& row);

// Parses one line. `expected` = kAuto detects the format; otherwise the row must be in that
// format. Blank lines are the caller's business (skipped before this).
absl::StatusOr<Sample> ParseRow(std::string_view line, DatasetFormat expected);

}  // namespace sfd
