// SpmBackend: a thin, absl-free wrapper over sentencepiece::SentencePieceProcessor.
// libsentencepiece's header declares absl::string_view itself, which clashes with Debian's
// Abseil (absl::string_view is its own class there), so the header is only ever included in
// sentencepiece_tokenizer_backend.cc, which includes no absl header. Used by
// SentencePieceTokenizer only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sfd {

class SpmBackend {
 public:
  // nullptr and *error set when the model cannot be loaded (or support was not built).
  static std::unique_ptr<SpmBackend> Load(const std::string& path, std::string* error);
  ~SpmBackend();

  bool Encode(std::string_view text, std::vector<int>* ids, std::string* error) const;
  bool Decode(const std::vector<int>& ids, std::string* text, std::string* error) const;
  int PieceSize() const;
  int PieceToId(std::string_view piece) const;
  const std::string& IdToPiece(int id) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  bool IsByte(int id) const;
  int bos_id() const;

 private:
  struct Impl;
  explicit SpmBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sfd
