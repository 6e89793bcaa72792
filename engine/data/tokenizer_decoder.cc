// HF tokenizer.json decoders (see tokenizer_decoder.h).
#include "engine/data/tokenizer_decoder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "engine/common/status.h"
#include "engine/data/tokenizer_utf8.h"

namespace sfd {
namespace {

class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const auto& t : *tokens) {
      const size_t mark = bytes.size();
      size_t pos = 0;
      bool all_mapped = true;
      while (pos < t.size()) {
        const int b = CodePointToByte(NextCodePoint(t, &pos));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!all_mapped) {  // e.g. an added token: its own bytes
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens->assign(1, Utf8Lossy(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (auto& t : *tokens) t = absl::StrReplaceAll(t, {{from_, to_}});
  }

 private:
  std::string from_, to_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    for (auto& t : *tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        byte = HexByte(t[3], t[4]);
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
        continue;
      }
      if (!pending.empty()) {
        out.push_back(Utf8Lossy(pending));
        pending.clear();
      }
      out.push_back(std::move(t));
    }
    if (!pending.empty()) out.push_back(Utf8Lossy(pending));
    *tokens = std::move(out);
  }

 private:
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int HexByte(char hi, char lo) {
    const int h = Hex(hi), l = Hex(lo);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    tokens->assign(1, absl::StrJoin(*tokens, ""));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, int start, int stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (content_.empty()) return;
    const size_t n = content_.size();
    for (auto& t : *tokens) {
      size_t begin = 0, end = t.size();
      for (int i = 0; i < start_ && end - begin >= n && t.compare(begin, n, content_) == 0; ++i) {
        begin += n;
      }
      for (int i = 0; i < stop_ && end - begin >= n && t.compare(end - n, n, content_) == 0; ++i) {
        end -= n;
      }
      t = t.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  int start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      t = absl::StrReplaceAll(t, {{replacement_, " "}});
      if (i == 0 && strip_first_ && !t.empty() && t[0] == ' ') t.erase(0, 1);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::FromJson(const nlohmann::json& j,
                                                           const std::string& what) {
  if (j.is_null()) return std::unique_ptr<Decoder>();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected an object with a type"));
  }
  const std::string type = j["type"].get<std::string>();
  const std::string where = absl::StrCat(what, " (", type, ")");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    const auto& p = j.contains("pattern") ? j["pattern"] : nlohmann::json();
    if (!p.is_object() || !p.contains("String") || !p["String"].is_string() ||
        !j.contains("content") || !j["content"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": needs pattern {\"String\": ...} and a string content"));
    }
    return std::make_unique<ReplaceDecoder>(p["String"].get<std::string>(),
                                            j["content"].get<std::string>());
  }
  if (type == "Strip") {
    if (!j.contains("content") || !j["content"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing string content"));
    }
    auto num = [&](const char* key) {
      return j.contains(key) && j[key].is_number_integer() ? j[key].get<int>() : 0;
    };
    return std::make_unique<StripDecoder>(j["content"].get<std::string>(), num("start"),
                                          num("stop"));
  }
  if (type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81";
    if (j.contains("replacement") && j["replacement"].is_string()) {
      replacement = j["replacement"].get<std::string>();
    }
    if (replacement.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": empty replacement"));
    }
    bool strip_first = !(j.contains("add_prefix_space") && j["add_prefix_space"].is_boolean() &&
                         !j["add_prefix_space"].get<bool>());
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      strip_first = j["prepend_scheme"].get<std::string>() != "never";
    }
    return std::make_unique<MetaspaceDecoder>(replacement, strip_first);
  }
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing decoders array"));
    }
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < j["decoders"].size(); ++i) {
      SFD_ASSIGN_OR_RETURN(auto part,
                           FromJson(j["decoders"][i], absl::StrCat(what, ".decoders[", i, "]")));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat(where, ": decoder type not supported"));
}

}  // namespace sfd
