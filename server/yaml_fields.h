// Strict, typed reading of YAML mappings (yaml-cpp) for job.yaml and sfd.yaml: every key must
// be known, every value must have the right type and range, and every error names the full
// field path and the line, e.g. "training.optimizer.lr (line 12): must be > 0, got -1".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"

namespace sfd {

// Reads the fields of one YAML mapping; `path` is its dotted location ("" for the root).
class YamlMap {
 public:
  // Fails unless `node` is a mapping (or null/absent, which reads as empty).
  static absl::Status Check(const YAML::Node& node, const std::string& path);
  YamlMap(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {}

  // Each Get* leaves *out unchanged when the key is absent.
  absl::Status GetString(const std::string& key, std::string* out);
  absl::Status GetInt(const std::string& key, int64_t* out);
  absl::Status GetInt(const std::string& key, int32_t* out);
  absl::Status GetUint(const std::string& key, uint64_t* out);
  absl::Status GetDouble(const std::string& key, double* out);
  absl::Status GetBool(const std::string& key, bool* out);
  // Bytes: an integer or a string with a unit ("512MiB", "20GiB", "1.5GB", "0").
  absl::Status GetBytes(const std::string& key, int64_t* out);
  absl::Status GetStringList(const std::string& key, std::vector<std::string>* out);
  // A nested mapping (empty when absent); error if present and not a mapping.
  absl::Status GetMap(const std::string& key, YamlMap* out);
  // Error naming the first key that was never asked for.
  absl::Status RejectUnknownKeys() const;

  bool Has(const std::string& key) const;
  std::string FieldPath(const std::string& key) const;
  // "<path> (line N): <message>" for the value of `key` (or the map when key is absent).
  absl::Status Error(const std::string& key, const std::string& message) const;

 private:
  YAML::Node Find(const std::string& key);
  YAML::Node node_;
  std::string path_;
  std::vector<std::string> seen_;
};

// Parses "20GiB", "512MB", "1024" etc. into bytes.
absl::Status ParseBytes(const std::string& text, int64_t* out);

}  // namespace sfd
