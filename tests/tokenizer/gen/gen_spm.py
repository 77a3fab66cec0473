#!/usr/bin/python3
"""tests/tokenizer/gen/gen_spm.py — golden ids from SentencePiece itself (Debian's
python3-sentencepiece; run with /usr/bin/python3):
  spm-llama2        ../shared/tokenizers/hf/llama2/tokenizer.model
  spm-tok512        ../shared/models/stories260K/tok512.model
  llama2c-tok512    tok512.model with its whitespace normalisation off: what
                    llama2.c's algorithm computes on tok512.bin (the .bin keeps no
                    normaliser settings)
  gguf-nomic-bert-moe  a Unigram ModelProto written from the GGUF metadata of
                    ggml-vocab-nomic-bert-moe.gguf (pieces, scores, types, charsmap)
Texts: ../shared gguf-vocab .inp texts + data/extra.inp; no special tokens added."""
import os
import tempfile

import sentencepiece as spm

import common as C


def encode_all(model_bytes, name):
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    C.write_out(name, [sp.encode(t) for t in C.texts()])


def without_ws_normalisation(model_bytes):
    """tok512.model with remove_extra_whitespaces = false (normalizer_spec field 4)."""
    out = []
    for field, wt, raw in C.pb_fields(model_bytes):
        if field == 3:
            sub = [f for f in C.pb_fields(raw) if f[0] != 4]
            sub.append((4, 0, bytes([0])))
            raw = C.pb_join(sub)
        out.append((field, wt, raw))
    return C.pb_join(out)


def model_from_gguf(path):
    kv = C.read_gguf_kv(path)
    assert kv['tokenizer.ggml.model'] == b't5'
    toks, scores, types = kv['tokenizer.ggml.tokens'], kv['tokenizer.ggml.scores'], kv['tokenizer.ggml.token_type']
    body = bytearray()
    for tok, sc, ty in zip(toks, scores, types):
        body += C.pb_bytes(1, C.pb_bytes(1, tok) + C.pb_float(2, sc) + C.pb_varint(3, ty))
    trainer = (C.pb_varint(3, 1) +  # model_type UNIGRAM
               C.pb_varint(40, kv.get('tokenizer.ggml.unknown_token_id', 0)) +
               C.pb_varint(41, kv.get('tokenizer.ggml.bos_token_id', -1)) +
               C.pb_varint(42, kv.get('tokenizer.ggml.eos_token_id', -1)) +
               C.pb_varint(43, kv.get('tokenizer.ggml.padding_token_id', -1)))
    norm = (C.pb_bytes(1, b'precompiled') +
            C.pb_bytes(2, bytes(kv.get('tokenizer.ggml.precompiled_charsmap', []))) +
            C.pb_varint(3, kv.get('tokenizer.ggml.add_space_prefix', True)) +
            C.pb_varint(4, kv.get('tokenizer.ggml.remove_extra_whitespaces', True)) +
            C.pb_varint(5, 1))
    body += C.pb_bytes(2, trainer) + C.pb_bytes(3, norm)
    return bytes(body)


def main():
    llama2 = open(os.path.join(C.SHARED, 'tokenizers', 'hf', 'llama2', 'tokenizer.model'), 'rb').read()
    tok512 = open(os.path.join(C.SHARED, 'models', 'stories260K', 'tok512.model'), 'rb').read()
    encode_all(llama2, 'spm-llama2')
    encode_all(tok512, 'spm-tok512')
    encode_all(without_ws_normalisation(tok512), 'llama2c-tok512')
    encode_all(model_from_gguf(os.path.join(C.SHARED, 'tokenizers', 'gguf-vocab', 'ggml-vocab-nomic-bert-moe.gguf')),
               'gguf-nomic-bert-moe')


if __name__ == '__main__':
    main()
