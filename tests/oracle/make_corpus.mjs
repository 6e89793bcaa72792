// Writes the tokenizer test corpus: tests/fixtures/tokenizers/corpus.jsonl, one JSON string per
// line (lines may themselves contain \n, \r\n, tabs, NULs...). Deterministic (seeded PRNG), so
// re-running it reproduces the committed file byte for byte.
//   node tests/oracle/make_corpus.mjs [out_path] [num_lines]
// Categories: English prose, many scripts, emoji (ZWJ, skin tones, flags, keycaps), combining
// marks (NFC vs NFD), whitespace runs, digits of all lengths, code, URLs, special tokens inline,
// contractions, control chars, random code points and mixtures of all of these.
// Deliberately absent: U+0085, U+FEFF, U+180E (JS, PCRE2 and Oniguruma disagree on whether
// \s matches them) and "'" + U+017F (caseless matching differs) — see tests/oracle/README.md.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const outPath = process.argv[2] ?? path.join(here, "../fixtures/tokenizers/corpus.jsonl");
const numLines = Number(process.argv[3] ?? 2400);

let seed = 0x5fd0001;
function rand() {  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rand() * n);
const pick = (a) => a[ri(a.length)];

const WORDS = ("the of and to in is was for that with as on by at from his her it an were are " +
  "which this be or has had not but first one their its new after who they have two been other " +
  "when there all during into school time may years more most only over city some world would " +
  "where later up such used many can state about national out known university united then made " +
  "model training gradient memory layer window optimizer tokenizer sequence batch learning rate " +
  "weight decay checkpoint throughput latency parameter transformer attention embedding vocabulary " +
  "quickly brown fox jumps lazy dog however although because therefore meanwhile nevertheless " +
  "government development international environment information performance experience").split(" ");
const NAMES = ["Alice", "Bob", "McDonald", "O'Neil", "NASA", "GPU", "LLaMA", "iPhone", "OpenAI",
  "JavaScript", "PyTorch", "SlideFormer", "Zürich", "São Paulo", "Kraków", "Ångström"];

function englishSentence() {
  const n = 5 + ri(18);
  const w = [];
  for (let i = 0; i < n; ++i) w.push(rand() < 0.08 ? pick(NAMES) : pick(WORDS));
  w[0] = w[0][0].toUpperCase() + w[0].slice(1);
  let s = w.join(" ");
  if (rand() < 0.3) s = s.replace(/ (\w+) /, (m, x) => ` ${x}, `);
  if (rand() < 0.2) s += ` (${ri(2000) + 1}%)`;
  return s + pick([".", ".", ".", "!", "?", "...", ";", ":"]);
}
function englishParagraph() {
  const n = 1 + ri(5);
  const s = [];
  for (let i = 0; i < n; ++i) s.push(englishSentence());
  return s.join(" ");
}

const SCRIPTS = [
  "我们在一张显卡上训练大型语言模型。", "今天天气很好，我们去公园散步吧！", "深度学习（Deep Learning）是机器学习的分支。",
  "東京は日本の首都です。カタカナとひらがなを混ぜる。", "ｶﾞｷﾞｸﾞ半角カナ、全角ＡＢＣ",
  "한국어 문장은 띄어쓰기를 사용합니다. 안녕하세요!", "ᄒᆞᆫ글 옛한글 자모",
  "مرحبا بالعالم، هذه جملة عربية طويلة للاختبار.", "السلام عليكم ورحمة الله ١٢٣٤٥٦",
  "שלום עולם, זהו משפט בעברית עם ניקוד: שָׁלוֹם", "नमस्ते दुनिया, यह हिन्दी का एक वाक्य है। १२३",
  "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ สวัสดีครับ", "Привет, мир! Это предложение на русском языке.",
  "Съешь же ещё этих мягких французских булок, да выпей чаю.", "Γειά σου Κόσμε! Ελληνικά με τόνους: άέήίόύώ ΐΰ",
  "Türkçe: İstanbul'da ılık bir gün; ŞĞÜÖÇ şğüöç", "Tiếng Việt có nhiều dấu: Người ta nói rằng ở đây.",
  "Deutsch: Größenordnung, Straße, Äpfel und Öl.", "Français : l'été, où ça coûte cher — « guillemets ».",
  "Español: ¿Dónde está el niño? ¡Mañana!", "Polski: Zażółć gęślą jaźń.", "Čeština: Příliš žluťoučký kůň.",
  "ქართული ენა ძალიან ლამაზია", "Հայերեն լեզու", "தமிழ் மொழி அழகானது", "বাংলা ভাষা সুন্দর",
  "አማርኛ ቋንቋ", "ગુજરાતી ભાષા", "ਪੰਜਾਬੀ ਭਾਸ਼ਾ", "తెలుగు భాష", "ಕನ್ನಡ ಭಾಷೆ", "മലയാളം ഭാഷ", "සිංහල භාෂාව",
  "ລາວ ພາສາ", "ខ្មែរ ភាសា", "မြန်မာ ဘာသာ", "ᠮᠣᠩᠭᠣᠯ", "ትግርኛ", "Ελληνικά αρχαία: ᾄσω ἀοιδήν",
  "Íslenska: Þórður og Ævar", "Norsk: blåbærsyltetøy", "Română: știință și țară", "Українська: їжак ґанок є",
  "Қазақ тілі", "Монгол хэл", "עִבְרִית וְאַרָמִית", "اردو زبان", "فارسی: سلام دنیا", "ܠܫܢܐ ܣܘܪܝܝܐ",
  "ꯃꯩꯇꯩ", "ᏣᎳᎩ", "ᐃᓄᒃᑎᑐᑦ", "𐌰𐌱𐌲 gothic", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉", "ℌℑℜ ℕℤℚℝ ∀x∈ℝ: x²≥0",
];

const EMOJI = ["😀", "😂", "🥲", "🤖", "🚀", "🔥", "💯", "✅", "❤️", "✨", "🎉", "🙏", "👍", "👍🏽", "👍🏿",
  "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "🧑🏾‍🤝‍🧑🏻", "👩🏼‍🔬", "🇯🇵", "🇺🇸", "🇩🇪", "🇧🇷", "1️⃣", "#️⃣", "©️",
  "☺️", "🫠", "🧬", "🐈‍⬛", "💁‍♀️", "🤷🏻‍♂️", "⚡", "🌍", "🍕", "🎶", "😶‍🌫️", "❤️‍🔥"];

const COMBINING = ["e\u0301", "A\u030A", "n\u0303", "o\u0308", "c\u0327", "a\u0300\u0316", "u\u031B\u0301",
  "\u1100\u1161\u11A8", "\u1112\u1161\u11AB", "z\u0335\u0321\u0334", "i\u0307", "\u0915\u094D\u0937",
  "\u0627\u0653", "\u05E9\u05C1\u05B8", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "\u212B", "\u2126", "\uFB01", "\u00C5", "\u1E9B\u0323"];

const SPACES = [" ", "  ", "   ", "    ", "        ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\r",
  " \n", "\n ", " \t \n", "\u00A0", "\u2009", "\u3000", "\u200B", "\u2028", "\u000B", "\u000C", " \u00A0 "];

function digits() {
  const r = ri(9);
  if (r === 0) { let s = ""; const n = 1 + ri(40); for (let i = 0; i < n; ++i) s += ri(10); return s; }
  if (r === 1) return (ri(1e9) * 1000 + ri(1000)).toLocaleString("en-US");
  if (r === 2) return (rand() * 10 ** ri(12)).toFixed(ri(6));
  if (r === 3) return `${ri(10000)}-${ri(100)}-${ri(100)}`;
  if (r === 4) return pick(["٠١٢٣٤٥٦٧٨٩", "१२३४५", "１２３４５", "²³¹", "Ⅻ ⅷ", "½ ¾ ⅞", "①②③", "๑๒๓"]);
  if (r === 5) return `-${ri(100)}e${ri(30)}`;
  if (r === 6) return `0x${ri(2 ** 31).toString(16)}${ri(2 ** 31).toString(16).toUpperCase()}`;
  if (r === 7) return `v${ri(10)}.${ri(30)}.${ri(300)}`;
  return String(ri(10 ** (1 + ri(7))));
}

const CODE = [
  "def train(model, data):\n    for step, batch in enumerate(data):\n        loss = model(batch)\n        loss.backward()\n",
  "int main(int argc, char** argv) {\n  std::vector<int32_t> ids{1, 2, 3};\n  return ids.size() > 2 ? 0 : 1;\n}\n",
  "const f = async (x) => { await fetch(`/api/${x}`); return x?.y ?? null; };",
  "fn main() -> Result<(), Box<dyn Error>> {\n\tlet v: Vec<u8> = vec![0xFF; 16];\n\tOk(())\n}",
  "func (s *Server) Handle(ctx context.Context, req *pb.Req) (*pb.Resp, error) {\n\treturn nil, err\n}",
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC LIMIT 10;",
  "<div class=\"row\"><a href=\"https://example.com/?q=1&amp;r=2\">link</a></div>",
  "{\"model\": \"llama\", \"lr\": 3e-4, \"betas\": [0.9, 0.999], \"eps\": 1e-8, \"nested\": {\"a\": null}}",
  "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\" | wc -c; done\n",
  "x = [i**2 for i in range(100) if i % 3 == 0]  # list comprehension\nprint(f\"{x!r:>10}\")",
  "    if (a && !b || c != d) { i++; j -= 2; k <<= 3; }\n\n\n        return;",
  "public static void main(String[] args) { System.out.println(\"Hello, World!\"); }",
  "\\begin{equation} E = mc^2 \\quad \\int_0^\\infty e^{-x^2} dx = \\frac{\\sqrt{\\pi}}{2} \\end{equation}",
  "diff --git a/x.cc b/x.cc\n@@ -1,3 +1,4 @@\n-old line\n+new line\n",
  "```python\nimport numpy as np\nnp.zeros((3, 4), dtype=np.float32)\n```",
  "a=1;b=2;c=a+b;;;;;;;;;;;;;;;;;;;; // ===== ----- ***** ##### !!!!! ?????",
];

const URLS = ["https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/tokenizer.json",
  "http://example.com:8080/path/to/file.html?query=a%20b&x=1#frag", "mailto:someone@example.org",
  "ftp://files.example.net/pub/linux-6.1.tar.xz", "user.name+tag@sub.domain.co.uk",
  "/usr/lib/x86_64-linux-gnu/libsentencepiece.so.0", "C:\\Users\\Admin\\Documents\\report (final).docx",
  "www.例え.jp/パス?キー=値", "git@github.com:org/repo.git"];

const SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
  "<|end_header_id|>", "<|reserved_special_token_7|>", "<|python_tag|>", "<|finetune_right_pad_id|>",
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
  "<|fim_prefix|>", "<|vision_start|>", "<s>", "</s>", "<unk>",
  // near misses: not tokens
  "<|im_start", "<|begin_of_text|", "< s>", "<|eot_id |>", "<|IM_START|>", "<<s>>", "<|<|im_end|>|>"];

const CONTRACTIONS = ["don't", "I'M", "you're", "they've", "she'S", "we'll", "he'd", "it's", "O'Reilly",
  "'s", "'T", "rock'n'roll", "can’t", "won't've", "y'all", "''quoted''", "'RE"];

const CONTROL = ["\u0000", "\u0001", "\u0007", "\u001B[31m", "\u007F", "\u0008", "\u00AD", "\u200D",
  "\u200E", "\u2060", "\uE000", "\uF8FF", "\u{F0000}", "\u{10FFFD}"];

// Code points from established blocks (Unicode <= 13), never surrogates or the excluded ones.
const RANGES = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff],
  [0x600, 0x6ff], [0x900, 0x97f], [0xe00, 0xe5b], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2100, 0x22ff],
  [0x2500, 0x27bf], [0x3000, 0x30ff], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xff00, 0xffef],
  [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1d400, 0x1d7ff], [0x10000, 0x1007f]];
const EXCLUDED = new Set([0x85, 0xfeff, 0x180e, 0x17f]);
function randomCodePoints() {
  let s = "";
  const n = 1 + ri(30);
  const [lo, hi] = pick(RANGES);
  for (let i = 0; i < n; ++i) {
    let cp = lo + ri(hi - lo + 1);
    if (EXCLUDED.has(cp) || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0x41;
    s += String.fromCodePoint(cp);
  }
  return s;
}

function repeated() {
  const unit = pick(["a", "ab", "!", "=", "-", " ", "\n", "的", "😀", "0", "xyz ", "_", ".", "é", "\t"]);
  return unit.repeat(2 + ri(pick([8, 40, 300])));
}

const PIECES = [
  () => englishSentence(), () => englishSentence(), () => pick(SCRIPTS), () => pick(EMOJI),
  () => pick(COMBINING), () => pick(SPACES), () => digits(), () => pick(CODE), () => pick(URLS),
  () => pick(SPECIALS), () => pick(CONTRACTIONS), () => pick(CONTROL), () => randomCodePoints(),
  () => pick(WORDS), () => pick(NAMES),
];

function mixture() {
  const n = 2 + ri(8);
  let s = "";
  for (let i = 0; i < n; ++i) {
    s += pick(PIECES)();
    if (rand() < 0.6) s += rand() < 0.8 ? " " : pick(SPACES);
  }
  return s;
}

const FIXED = ["", " ", "  ", "\n", "\r\n", "\t", "a", "A", "1", "12", "123", "1234", "12345",
  "Hello world", " Hello world", "Hello world ", "Hello  world", "hello\nworld", "hello\r\nworld",
  "<|begin_of_text|>", "<|begin_of_text|>Hello", "Hello<|eot_id|>", "<|im_start|>user\nHi<|im_end|>\n",
  "<s>", "<s> <s>", "</s>\n<s>", "<unk>", "<think>\n\n</think>\n\n", "  leading", "trailing  ",
  "\n\n\nnewlines", "tab\tseparated\tvalues", "ÅÅÅ", "A\u030AA\u030A", "e\u0301", "😀", "👨‍👩‍👧‍👦",
];

const lines = [...FIXED];
const gens = [
  [() => englishParagraph(), 30], [() => pick(SCRIPTS) + (rand() < 0.5 ? " " + pick(SCRIPTS) : ""), 10],
  [() => mixture(), 30], [() => pick(CODE).replace(/x/g, pick(WORDS)), 5], [() => digits() + " " + digits(), 5],
  [() => repeated(), 3], [() => pick(SPECIALS) + englishSentence() + pick(SPECIALS), 5],
  [() => Array.from({ length: 3 + ri(8) }, () => pick(EMOJI)).join(rand() < 0.5 ? "" : " "), 4],
  [() => randomCodePoints() + pick(SPACES) + randomCodePoints(), 5],
  [() => pick(CONTRACTIONS) + " " + englishSentence() + " " + pick(CONTRACTIONS), 3],
];
const total = gens.reduce((a, g) => a + g[1], 0);
while (lines.length < numLines) {
  let r = ri(total);
  for (const [g, w] of gens) {
    if (r < w) { lines.push(g()); break; }
    r -= w;
  }
}
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
console.log(`wrote ${lines.length} lines to ${outPath}`);
