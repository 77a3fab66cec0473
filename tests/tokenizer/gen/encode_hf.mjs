// tests/tokenizer/gen/encode_hf.mjs — encodes texts with Hugging Face tokenizers
// through transformers.js (@huggingface/transformers, see package.json).
//   node encode_hf.mjs TEXTS.json OUT.json NAME=DIR ...
// TEXTS.json: array of strings; DIR holds tokenizer.json (+ tokenizer_config.json).
// OUT.json: {NAME: [[ids], ...]}. Special tokens are not added (add_special_tokens:
// false); special-token text in the input is matched, as Hugging Face always does.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, basename } from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';

env.allowRemoteModels = false;
const [textsPath, outPath, ...specs] = process.argv.slice(2);
const texts = JSON.parse(readFileSync(textsPath, 'utf8'));
const out = {};
for (const spec of specs) {
  const eq = spec.indexOf('=');
  const name = spec.slice(0, eq), dir = spec.slice(eq + 1);
  env.localModelPath = dirname(dir) + '/';
  const tok = await AutoTokenizer.from_pretrained(basename(dir));
  out[name] = texts.map((t) => Array.from(tok.encode(t, { add_special_tokens: false })));
}
writeFileSync(outPath, JSON.stringify(out));
