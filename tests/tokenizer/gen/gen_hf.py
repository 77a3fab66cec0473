#!/usr/bin/python3
"""tests/tokenizer/gen/gen_hf.py — golden ids from Hugging Face tokenizers, run through
transformers.js (node encode_hf.mjs; install with `npm install --ignore-scripts` in
this folder, or point NODE_PATH at a node_modules that has @huggingface/transformers):
  hf-llama3, hf-qwen3, hf-mistral-7b-v0.1   ../shared/tokenizers/hf/*/tokenizer.json
  gguf-gpt-2, gguf-qwen2, gguf-bert-bge     tokenizer.json files written here from
      the GGUF metadata (vocabulary, merges, token types) with the pipeline the
      original models declare (GPT-2: ByteLevel; Qwen2: NFC + Split + ByteLevel;
      BERT: BertNormalizer + BertPreTokenizer + WordPiece)
  mini-wordpiece, mini-unigram, mini-bpe-chars   data/mini/*/tokenizer.json (gen_mini.py)
Texts: ../shared gguf-vocab .inp texts + data/extra.inp."""
import json
import os
import subprocess
import sys
import tempfile

import common as C

QWEN2_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def added(kv, start=0):
    toks, types = kv['tokenizer.ggml.tokens'], kv['tokenizer.ggml.token_type']
    out = []
    for i, (t, ty) in enumerate(zip(toks, types)):
        if i >= start and ty in (3, 4):
            out.append({'id': i, 'content': t.decode('utf-8'), 'single_word': False, 'lstrip': False,
                        'rstrip': False, 'normalized': False, 'special': ty == 3})
    return out


def bpe_json(kv, normalizer, pre):
    toks = [t.decode('utf-8') for t in kv['tokenizer.ggml.tokens']]
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': added(kv), 'normalizer': normalizer, 'pre_tokenizer': pre,
        'post_processor': None,
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False,
                  'vocab': {t: i for i, t in enumerate(toks)},
                  'merges': [m.decode('utf-8') for m in kv['tokenizer.ggml.merges']]},
    }


def bert_json(kv):
    vocab = {}
    for i, (t, ty) in enumerate(zip(kv['tokenizer.ggml.tokens'], kv['tokenizer.ggml.token_type'])):
        t = t.decode('utf-8')
        if t.startswith('\u2581'):
            t = t[1:]                       # word-initial piece
        elif not (t.startswith('[') and t.endswith(']')):
            t = '##' + t                    # continuation piece
        vocab.setdefault(t, i)
    sp = [{'id': i, 'content': t.decode('utf-8'), 'single_word': False, 'lstrip': False, 'rstrip': False,
           'normalized': False, 'special': True}
          for i, (t, ty) in enumerate(zip(kv['tokenizer.ggml.tokens'], kv['tokenizer.ggml.token_type'])) if ty == 3]
    return {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': sp,
        'normalizer': {'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True,
                       'strip_accents': None, 'lowercase': True},
        'pre_tokenizer': {'type': 'BertPreTokenizer'}, 'post_processor': None,
        'decoder': {'type': 'WordPiece', 'prefix': '##', 'cleanup': True},
        'model': {'type': 'WordPiece', 'unk_token': '[UNK]', 'continuing_subword_prefix': '##',
                  'max_input_chars_per_word': 100, 'vocab': vocab},
    }


def write_dir(root, name, tj):
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tj, f, ensure_ascii=False)
    with open(os.path.join(d, 'tokenizer_config.json'), 'w') as f:
        json.dump({}, f)
    return d


def main():
    gv = os.path.join(C.SHARED, 'tokenizers', 'gguf-vocab')
    hf = os.path.join(C.SHARED, 'tokenizers', 'hf')
    with tempfile.TemporaryDirectory() as tmp:
        specs = ['hf-%s=%s' % (m, os.path.join(hf, m)) for m in ('llama3', 'qwen3', 'mistral-7b-v0.1')]
        specs += ['mini-%s=%s' % (m, os.path.join(C.DATA, 'mini', m)) for m in ('wordpiece', 'unigram', 'bpe-chars')]
        kv = C.read_gguf_kv(os.path.join(gv, 'ggml-vocab-gpt-2.gguf'))
        bl = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
        specs.append('gguf-gpt-2=' + write_dir(tmp, 'gpt2', bpe_json(kv, None, bl)))
        kv = C.read_gguf_kv(os.path.join(gv, 'ggml-vocab-qwen2.gguf'))
        pre = {'type': 'Sequence', 'pretokenizers': [
            {'type': 'Split', 'pattern': {'Regex': QWEN2_RE}, 'behavior': 'Isolated', 'invert': False},
            {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False}]}
        specs.append('gguf-qwen2=' + write_dir(tmp, 'qwen2', bpe_json(kv, {'type': 'NFC'}, pre)))
        kv = C.read_gguf_kv(os.path.join(gv, 'ggml-vocab-bert-bge.gguf'))
        specs.append('gguf-bert-bge=' + write_dir(tmp, 'bert', bert_json(kv)))
        tpath, opath = os.path.join(tmp, 'texts.json'), os.path.join(tmp, 'out.json')
        with open(tpath, 'w', encoding='utf-8') as f:
            json.dump(C.texts(), f, ensure_ascii=False)
        subprocess.run(['node', os.path.join(C.HERE, 'encode_hf.mjs'), tpath, opath] + specs, check=True,
                       cwd=C.HERE)
        with open(opath) as f:
            res = json.load(f)
    for name in sorted(res):
        C.write_out(name, res[name])


if __name__ == '__main__':
    sys.exit(main())
