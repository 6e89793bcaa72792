// SentencePiece tokenizer.model through libsentencepiece (see sentencepiece_tokenizer.h).
#include "engine/data/sentencepiece_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/common/status.h"
#include "engine/data/sentencepiece_tokenizer_backend.h"
#include "engine/data/tokenizer_utf8.h"

namespace sfd {

struct SentencePieceTokenizer::Impl {
  std::unique_ptr<SpmBackend> sp;
  std::string path;
  // Pieces matched verbatim in the text (control + unk), longest first.
  std::vector<std::pair<std::string, int32_t>> specials;
  std::vector<bool> is_special;
  std::vector<bool> is_byte;
  bool dummy_prefix = false;  // the model prepends "▁" to the text (add_dummy_prefix)
};

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(
    const std::string& model_path) {
  auto impl = std::make_unique<Impl>();
  impl->path = model_path;
  std::string error;
  impl->sp = SpmBackend::Load(model_path, &error);
  if (impl->sp == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_path, ": cannot load SentencePiece model: ", error));
  }
  const int n = impl->sp->PieceSize();
  impl->is_special.assign(n, false);
  impl->is_byte.assign(n, false);
  for (int id = 0; id < n; ++id) {
    impl->is_byte[id] = impl->sp->IsByte(id);
    if (impl->sp->IsControl(id) || impl->sp->IsUnknown(id)) {
      impl->is_special[id] = true;
      impl->specials.emplace_back(impl->sp->IdToPiece(id), id);
    }
  }
  std::stable_sort(impl->specials.begin(), impl->specials.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  // add_dummy_prefix is not exposed by the API: "a" encodes to a piece starting with "▁" iff set.
  std::vector<int> probe;
  if (impl->sp->Encode("a", &probe, &error) && !probe.empty()) {
    impl->dummy_prefix = impl->sp->IdToPiece(probe[0]).rfind("\xE2\x96\x81", 0) == 0;
  }
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(impl)));
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(
    std::string_view text, bool add_special_tokens) const {
  SFD_RETURN_IF_ERROR(ValidateUtf8(text, "Tokenizer::Encode input"));
  std::vector<int32_t> ids;
  if (add_special_tokens && impl_->sp->bos_id() >= 0) ids.push_back(impl_->sp->bos_id());
  std::vector<int> piece_ids;
  auto encode_section = [&](std::string_view s) -> absl::Status {
    if (s.empty()) return absl::OkStatus();
    piece_ids.clear();
    std::string error;
    if (!impl_->sp->Encode(s, &piece_ids, &error)) {
      return absl::InternalError(absl::StrCat(impl_->path, ": encode failed: ", error));
    }
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    return absl::OkStatus();
  };
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& sp : impl_->specials) {
      if (sp.first.size() <= text.size() - i &&
          std::memcmp(text.data() + i, sp.first.data(), sp.first.size()) == 0) {
        hit = &sp;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    SFD_RETURN_IF_ERROR(encode_section(text.substr(start, i - start)));
    ids.push_back(hit->second);
    i += hit->first.size();
    start = i;
  }
  SFD_RETURN_IF_ERROR(encode_section(text.substr(start)));
  return ids;
}

absl::StatusOr<std::string> SentencePieceTokenizer::Decode(const std::vector<int32_t>& ids,
                                                           bool skip_special_tokens) const {
  // HF's decoder for these models: "▁" -> " ", runs of <0xNN> byte pieces -> UTF-8 (U+FFFD for
  // invalid sequences), special pieces verbatim, then one leading space removed when the model
  // adds a dummy prefix.
  const int n = impl_->sp->PieceSize();
  std::string out, bytes;
  auto flush = [&] {
    if (!bytes.empty()) out += Utf8Lossy(bytes);
    bytes.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("Tokenizer::Decode: id ", id, " is not in the vocabulary"));
    }
    if (impl_->is_special[id] && skip_special_tokens) continue;
    const std::string& piece = impl_->sp->IdToPiece(id);
    if (impl_->is_byte[id] && piece.size() == 6) {
      bytes.push_back(static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
      continue;
    }
    flush();
    if (impl_->is_special[id]) {
      out += piece;
    } else {
      out += absl::StrReplaceAll(piece, {{"\xE2\x96\x81", " "}});
    }
  }
  flush();
  if (impl_->dummy_prefix && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::optional<int32_t> SentencePieceTokenizer::TokenToId(std::string_view token) const {
  const int id = impl_->sp->PieceToId(token);
  if (id < 0 || impl_->sp->IdToPiece(id) != token) return std::nullopt;
  return id;
}

std::optional<std::string> SentencePieceTokenizer::IdToToken(int32_t id) const {
  if (id < 0 || id >= impl_->sp->PieceSize()) return std::nullopt;
  return impl_->sp->IdToPiece(id);
}

int64_t SentencePieceTokenizer::vocab_size() const { return impl_->sp->PieceSize(); }

bool SentencePieceTokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < static_cast<int32_t>(impl_->is_special.size()) && impl_->is_special[id];
}


SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

}  // namespace sfd
