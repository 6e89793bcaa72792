// libsfd_spm.so: the only code that touches libsentencepiece, loaded isolated by
// SpmBackend::Load (engine/data/sentencepiece_tokenizer_backend.h explains why).
#include <sentencepiece_processor.h>

#include "engine/data/sentencepiece_tokenizer_backend.h"

namespace sfd {
namespace {

class SentencePieceModule final : public SpmBackend {
 public:
  bool Open(const std::string& path, std::string* error) {
    const auto status = sp_.Load(path);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  bool Encode(std::string_view text, std::vector<int>* ids, std::string* error) const override {
    const auto status = sp_.Encode(text, ids);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  bool Decode(const std::vector<int>& ids, std::string* text, std::string* error) const override {
    const auto status = sp_.Decode(ids, text);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  int PieceSize() const override { return sp_.GetPieceSize(); }
  int PieceToId(std::string_view piece) const override { return sp_.PieceToId(piece); }
  const std::string& IdToPiece(int id) const override { return sp_.IdToPiece(id); }
  bool IsControl(int id) const override { return sp_.IsControl(id); }
  bool IsUnknown(int id) const override { return sp_.IsUnknown(id); }
  bool IsByte(int id) const override { return sp_.IsByte(id); }
  int bos_id() const override { return sp_.bos_id(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace
}  // namespace sfd

extern "C" sfd::SpmBackend* sfd_spm_load(const std::string& path, std::string* error) {
  auto m = new sfd::SentencePieceModule();
  if (!m->Open(path, error)) {
    delete m;
    return nullptr;
  }
  return m;
}
