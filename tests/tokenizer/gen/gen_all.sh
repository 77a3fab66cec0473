#!/bin/sh
# tests/tokenizer/gen/gen_all.sh — regenerates tests/tokenizer/data/*.out from the
# reference implementations. Needs: Debian python3-sentencepiece (/usr/bin/python3),
# node 20 and `npm install --ignore-scripts` here (@huggingface/transformers; the
# --ignore-scripts skips onnxruntime's binary download, tokenizers do not need it).
# CI does not run this: the .out files are committed.
set -e
cd "$(dirname "$0")"
/usr/bin/python3 gen_inputs.py
/usr/bin/python3 gen_mini.py
/usr/bin/python3 gen_spm.py
/usr/bin/python3 gen_hf.py
