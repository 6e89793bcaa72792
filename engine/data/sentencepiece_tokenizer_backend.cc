// SpmBackend over libsentencepiece (see sentencepiece_tokenizer_backend.h). No absl here.
#include "engine/data/sentencepiece_tokenizer_backend.h"

#ifdef SFD_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace sfd {

#ifdef SFD_HAVE_SENTENCEPIECE
struct SpmBackend::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

std::unique_ptr<SpmBackend> SpmBackend::Load(const std::string& path, std::string* error) {
  auto impl = std::make_unique<Impl>();
  const auto status = impl->sp.Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return std::unique_ptr<SpmBackend>(new SpmBackend(std::move(impl)));
}

bool SpmBackend::Encode(std::string_view text, std::vector<int>* ids, std::string* error) const {
  const auto status = impl_->sp.Encode(text, ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

bool SpmBackend::Decode(const std::vector<int>& ids, std::string* text, std::string* error) const {
  const auto status = impl_->sp.Decode(ids, text);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

int SpmBackend::PieceSize() const { return impl_->sp.GetPieceSize(); }
int SpmBackend::PieceToId(std::string_view piece) const { return impl_->sp.PieceToId(piece); }
const std::string& SpmBackend::IdToPiece(int id) const { return impl_->sp.IdToPiece(id); }
bool SpmBackend::IsControl(int id) const { return impl_->sp.IsControl(id); }
bool SpmBackend::IsUnknown(int id) const { return impl_->sp.IsUnknown(id); }
bool SpmBackend::IsByte(int id) const { return impl_->sp.IsByte(id); }
int SpmBackend::bos_id() const { return impl_->sp.bos_id(); }

#else  // !SFD_HAVE_SENTENCEPIECE
struct SpmBackend::Impl {
  std::string empty;
};
std::unique_ptr<SpmBackend> SpmBackend::Load(const std::string&, std::string* error) {
  *error = "sfd was built without libsentencepiece";
  return nullptr;
}
bool SpmBackend::Encode(std::string_view, std::vector<int>*, std::string*) const { return false; }
bool SpmBackend::Decode(const std::vector<int>&, std::string*, std::string*) const { return false; }
int SpmBackend::PieceSize() const { return 0; }
int SpmBackend::PieceToId(std::string_view) const { return -1; }
const std::string& SpmBackend::IdToPiece(int) const { return impl_->empty; }
bool SpmBackend::IsControl(int) const { return false; }
bool SpmBackend::IsUnknown(int) const { return false; }
bool SpmBackend::IsByte(int) const { return false; }
int SpmBackend::bos_id() const { return -1; }
#endif  // SFD_HAVE_SENTENCEPIECE

SpmBackend::SpmBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpmBackend::~SpmBackend() = default;

}  // namespace sfd
