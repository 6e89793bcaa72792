// libFuzzer target: tokenizer.json loading and use. Input = tokenizer.json bytes, optionally
// followed by "\0" and a text to encode. Whatever loads must encode that text (or fixed probes
// mixing scripts, specials and whitespace) and decode the ids without crashing; bad input must
// only ever produce an error Status.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/data/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  auto tok = sfd::Tokenizer::FromTokenizerJsonString(json, "fuzz.json");
  if (!tok.ok()) return 0;
  const std::string_view probes[] = {
      nul == std::string_view::npos ? std::string_view("") : input.substr(nul + 1),
      "Hello  world!\n\t123456 <s> <|im_start|>x\xC3\xA9\xF0\x9F\x98\x80 \xE2\x96\x81",
      "\xFF\xFE invalid"};
  for (std::string_view text : probes) {
    for (bool special : {false, true}) {
      auto ids = (*tok)->Encode(text, special);
      if (!ids.ok()) continue;
      (void)(*tok)->Decode(*ids, false);
      (void)(*tok)->Decode(*ids, true);
      for (int32_t id : *ids) {
        auto t = (*tok)->IdToToken(id);
        if (t) (void)(*tok)->TokenToId(*t);
        (void)(*tok)->IsSpecial(id);
      }
    }
  }
  (void)(*tok)->Decode({0, 1, -1, 1 << 29}, false);
  (void)(*tok)->vocab_size();
  return 0;
}
