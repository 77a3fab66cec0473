#!/usr/bin/python3
"""tests/tokenizer/gen/gen_mini.py — writes the small hand-made tokenizer.json files in
data/mini/ that exercise the tokenizer.json features the real files in ../shared do
not use: a WordPiece model with BertNormalizer/BertPreTokenizer/BertProcessing, a
Unigram model behind NFKC + Replace(Regex) + Lowercase + Metaspace(split), and a BPE
model over characters with Whitespace/Digits/Punctuation pre-tokenizers, <unk> and a
merge listed twice (the later rank counts, as in Hugging Face's hash map). fuse_unk is off:
transformers.js fuses <unk> across words, Hugging Face's Rust BPE only within a word. Their golden ids come from transformers.js like the others (gen_hf.py)."""
import json
import os

import common as C

OUT = os.path.join(C.DATA, 'mini')


def write(name, tj):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
    with open(os.path.join(d, 'tokenizer_config.json'), 'w') as f:
        json.dump({}, f)


def words():
    return ['the', 'a', 'hello', 'world', 'once', 'upon', 'time', 'there', 'was', 'little', 'girl',
            'lily', 'code', 'int', 'main', 'return', 'print', 'def', 'for', 'in', 'of', 'and', 'is',
            'it', 'we', 'you', 'can', 'do', 'not', 'play', 'park', 'ball', 'cafe', 'naive', 'resume',
            '你', '好', '世', '界', '中', '文', '日', '本', 'привет', 'мир', 'مرحبا']


def wordpiece():
    vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    vocab += list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0123456789")
    vocab += list('abcdefghijklmnopqrstuvwxyz')
    vocab += ['##' + c for c in 'abcdefghijklmnopqrstuvwxyz0123456789']
    vocab += words()
    vocab += ['##ing', '##ed', '##s', '##er', '##ly', '##llo', '##orld', '##ll', '##th', '##e']
    seen = []
    for v in vocab:
        if v not in seen:
            seen.append(v)
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True} for i, t in enumerate(seen[:5])],
        'normalizer': {'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True,
                       'strip_accents': None, 'lowercase': True},
        'pre_tokenizer': {'type': 'BertPreTokenizer'},
        'post_processor': {'type': 'BertProcessing', 'sep': ['[SEP]', 3], 'cls': ['[CLS]', 2]},
        'decoder': {'type': 'WordPiece', 'prefix': '##', 'cleanup': True},
        'model': {'type': 'WordPiece', 'unk_token': '[UNK]', 'continuing_subword_prefix': '##',
                  'max_input_chars_per_word': 20, 'vocab': {t: i for i, t in enumerate(seen)}},
    }


def unigram():
    pieces = [['<unk>', 0.0], ['<s>', 0.0], ['</s>', 0.0], ['\u2581', -2.0]]
    import math
    for i, w in enumerate(words()):
        pieces.append(['\u2581' + w, -3.0 - 0.1 * i])
        pieces.append([w, -4.5 - 0.1 * i])
    for i, c in enumerate('abcdefghijklmnopqrstuvwxyz0123456789.,!?\'"-()'):
        pieces.append([c, -6.0 - 0.05 * i])
        pieces.append(['\u2581' + c, -6.5 - 0.05 * i])
    for i, bg in enumerate(['th', 'he', 'in', 'er', 'an', 're', 'on', 'at', 'en', 'nd', 'ti', 'es', 'or', 'te',
                            'of', 'ed', 'is', 'it', 'al', 'ar', 'st', 'to', 'nt', 'ng', 'se', 'ha', 'as', 'ou']):
        pieces.append([bg, -5.0 - 0.07 * i])
    seen = {}
    out = []
    for p, s in pieces:
        if p not in seen:
            seen[p] = 1
            out.append([p, s])
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True} for i, t in enumerate(['<unk>', '<s>', '</s>'])],
        'normalizer': {'type': 'Sequence', 'normalizers': [
            {'type': 'NFKC'},
            {'type': 'Replace', 'pattern': {'Regex': ' {2,}'}, 'content': ' '},
            {'type': 'Lowercase'}]},
        'pre_tokenizer': {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always', 'split': True},
        'post_processor': {'type': 'TemplateProcessing',
                           'single': [{'Sequence': {'id': 'A', 'type_id': 0}}, {'SpecialToken': {'id': '</s>', 'type_id': 0}}],
                           'pair': [{'Sequence': {'id': 'A', 'type_id': 0}}, {'Sequence': {'id': 'B', 'type_id': 0}}],
                           'special_tokens': {'</s>': {'id': '</s>', 'ids': [2], 'tokens': ['</s>']}}},
        'decoder': {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always', 'split': True},
        'model': {'type': 'Unigram', 'unk_id': 0, 'byte_fallback': False, 'vocab': out},
    }


def bpe_chars():
    chars = list('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?\'"-()[]{}<>/:;_=+*&%$#@')
    vocab = ['<unk>', '<|end|>'] + chars
    merges = []

    def add(a, b):
        if a + b not in vocab:
            vocab.append(a + b)
        merges.append(a + ' ' + b)
    for w in ['the', 'hello', 'world', 'once', 'upon', 'time', 'there', 'little', 'code', 'main', 'return']:
        cur = w[0]
        for ch in w[1:]:
            add(cur, ch)
            cur += ch
    for a, b in [('i', 'n'), ('e', 'r'), ('o', 'n'), ('a', 'n'), ('in', 'g'), ('e', 'd'), ('1', '2'), ('12', '3')]:
        add(a, b)
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': 0, 'content': '<unk>', 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True},
                         {'id': 1, 'content': '<|end|>', 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True}],
        'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'NFD'}, {'type': 'StripAccents'}, {'type': 'Lowercase'}]},
        'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
            {'type': 'Whitespace'}, {'type': 'Digits', 'individual_digits': False},
            {'type': 'Punctuation', 'behavior': 'Isolated'}]},
        'post_processor': None, 'decoder': None,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': '<unk>', 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False,
                  'vocab': {t: i for i, t in enumerate(vocab)}, 'merges': merges},
    }


def main():
    write('wordpiece', wordpiece())
    write('unigram', unigram())
    write('bpe-chars', bpe_chars())
    print('mini tokenizers in', OUT)


if __name__ == '__main__':
    main()
