// bench/tokenize_ref_hf.mjs — the reference side of `bench/run tokenize` for byte-level
// BPE: encodes a file with Hugging Face tokenizers through transformers.js
// (@huggingface/transformers, installed by `npm install --ignore-scripts` in
// tests/tokenizer/gen; node 20) and prints the same lines as bench_tokenize
// (bench/tokenize_main.c):
//   node tokenize_ref_hf.mjs --tokenizer DIR --input FILE [--reps N] [--lines] [--dump IDS]
// DIR holds tokenizer.json (+ tokenizer_config.json). Whole text by default (one
// encode call), --lines: one call per line including its '\n', as bench_tokenize
// does. add_special_tokens: false. Only the encode calls are timed (wall:
// performance.now, CPU: process.cpuUsage = user + system of the whole process).
// Checksum: FNV-1a over the ids as 32-bit words.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const lib = process.env.LMM_TRANSFORMERS_JS ||
  join(here, '..', 'tests', 'tokenizer', 'gen', 'node_modules', '@huggingface', 'transformers', 'dist',
       'transformers.node.mjs');
if (!existsSync(lib)) {
  console.error(`tokenize_ref_hf.mjs: ${lib} not found; install it with ` +
                '(cd tests/tokenizer/gen && npm install --ignore-scripts)');
  process.exit(1);
}
const { AutoTokenizer, env } = await import(pathToFileURL(lib).href);

const args = { reps: 1, lines: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--lines') args.lines = true;
  else if (['--tokenizer', '--input', '--reps', '--dump'].includes(a) && i + 1 < argv.length) args[a.slice(2)] = argv[++i];
  else {
    console.error('usage: node tokenize_ref_hf.mjs --tokenizer DIR --input FILE [--reps N] [--lines] [--dump IDS]');
    process.exit(2);
  }
}
if (!args.tokenizer || !args.input) {
  console.error('usage: node tokenize_ref_hf.mjs --tokenizer DIR --input FILE [--reps N] [--lines] [--dump IDS]');
  process.exit(2);
}
const reps = parseInt(args.reps, 10);

const data = readFileSync(args.input);
const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
const bytes = data.length;
let lines = null;
if (args.lines) {
  const parts = text.split('\n');
  lines = parts.slice(0, -1).map((p) => p + '\n');
  if (parts[parts.length - 1]) lines.push(parts[parts.length - 1]);
}

const dir = resolve(args.tokenizer);
env.allowRemoteModels = false;
env.localModelPath = dirname(dir) + '/';
let t0 = performance.now();
const tok = await AutoTokenizer.from_pretrained(basename(dir));
console.log(`loaded ${dir} (transformers.js) in ` +
            `${((performance.now() - t0) / 1000).toFixed(3)} s; ${bytes} bytes, ${args.lines ? 'line by line' : 'whole text'}`);

function checksum(ids) {
  let h = 2166136261 >>> 0;
  for (const id of ids) h = Math.imul(h ^ id, 16777619) >>> 0;
  return h;
}
const hex = (h) => h.toString(16).padStart(8, '0');
const median = (v) => {
  const s = [...v].sort((a, b) => a - b), n = s.length;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
};

const walls = [], cpus = [];
let ids = [];
for (let r = 0; r < reps; r++) {
  const c0 = process.cpuUsage();
  t0 = performance.now();
  if (lines) {
    ids = [];
    for (const line of lines) {
      const v = tok.encode(line, { add_special_tokens: false });
      for (const id of v) ids.push(id);
    }
  } else {
    ids = tok.encode(text, { add_special_tokens: false });
  }
  const w = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(c0);
  const c = (cu.user + cu.system) / 1e6;
  walls.push(w);
  cpus.push(c);
  console.log(`rep ${r + 1}: ${ids.length} tokens, checksum ${hex(checksum(ids))}, wall ${w.toFixed(3)} s ` +
              `(${(bytes / 1e6 / w).toFixed(2)} MB/s), cpu ${c.toFixed(3)} s (${(bytes / 1e6 / c).toFixed(2)} MB/s)`);
}
if (args.dump) writeFileSync(args.dump, ids.map((i) => `${i}\n`).join(''));
const mw = median(walls), mc = median(cpus);
console.log(`RESULT impl=transformers.js bytes=${bytes} tokens=${ids.length} checksum=${hex(checksum(ids))} ` +
            `wall_s=${mw.toFixed(4)} cpu_s=${mc.toFixed(4)} mbps_wall=${(bytes / 1e6 / mw).toFixed(3)} ` +
            `mbps_cpu=${(bytes / 1e6 / mc).toFixed(3)}`);
