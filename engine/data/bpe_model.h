// BpeModel: the "model" of an HF tokenizer.json of type BPE — vocab, merges (written as "a b"
// or as ["a", "b"] pairs), ignore_merges, byte_fallback (<0xNN> pieces), unk_token/fuse_unk.
// Encodes one pre-tokenized word at a time with a rank-ordered merge loop (binary heap over a
// linked list of symbols, ties broken leftmost first, as HF and transformers.js do), and keeps
// a bounded word -> ids cache. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sfd {

class BpeModel {
 public:
  // `j` is tokenizer.json's "model" object; `what` names it in errors.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& j,
                                                            const std::string& what);

  // Appends the ids of `word` (valid UTF-8, already in the model's alphabet, e.g. byte-level
  // characters). Error only when a character is not in the vocab and the model has neither
  // byte fallback nor an unk token.
  absl::Status EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // nullptr for ids that are not in the vocab.
  const std::string* IdToToken(int32_t id) const;
  // One past the largest id of the vocab.
  int64_t size() const { return static_cast<int64_t>(id_to_token_.size()); }
  bool byte_fallback() const { return byte_fallback_; }
  int64_t num_merges() const { return static_cast<int64_t>(merges_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  BpeModel() = default;
  absl::Status MergeWord(std::string_view word, std::vector<int32_t>* ids) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  std::optional<int32_t> unk_id_;
  int32_t byte_ids_[256] = {};  // <0xNN> ids (byte_fallback_ only; -1 when absent)
  // Id of the one-character token for each BMP code point (-1: none), to start words fast.
  std::vector<int32_t> bmp_char_ids_;

  // Bounded cache of word -> ids (cleared when full); words longer than kMaxCachedWord bytes
  // are not cached.
  static constexpr size_t kCacheCapacity = 50000;
  static constexpr size_t kMaxCachedWord = 256;
  mutable std::mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace sfd
