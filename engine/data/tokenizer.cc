// Tokenizer factories (see tokenizer.h).
#include "engine/data/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/common/status.h"
#include "engine/data/sentencepiece_tokenizer.h"
#include "engine/data/tokenizer_json.h"

namespace sfd {

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromModelDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path json = fs::path(dir) / "tokenizer.json";
  if (fs::is_regular_file(json, ec)) return FromTokenizerJson(json.string());
  const fs::path model = fs::path(dir) / "tokenizer.model";
  if (fs::is_regular_file(model, ec)) return FromSentencePiece(model.string());
  return absl::NotFoundError(
      absl::StrCat(dir, ": no tokenizer.json or tokenizer.model in the model directory"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return FromTokenizerJsonString(buf.str(), path);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJsonString(
    std::string_view json, const std::string& source) {
  SFD_ASSIGN_OR_RETURN(auto t, JsonTokenizer::Parse(json, source));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSentencePiece(
    const std::string& model_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec)) {
    return absl::NotFoundError(absl::StrCat(model_path, ": no such file"));
  }
  SFD_ASSIGN_OR_RETURN(auto t, SentencePieceTokenizer::Load(model_path));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace sfd
