#!/usr/bin/env bash
# One command: install dependencies, build, and run the main job —
# generation on the real model in ../shared/models/stories260K when it is there,
# otherwise on a generated demo model (random weights, so the text is gibberish).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
SHARED=${LMM_SHARED_DIR:-../shared}
if [ -f "$SHARED/models/stories260K/stories260K.bin" ]; then
  echo "== stories260K (real model, greedy) =="
  exec build/bin/lmlaunch run --model "$SHARED/models/stories260K/stories260K.bin" \
    --tokenizer "$SHARED/models/stories260K/tok512.bin" --prompt "${1:-}" --max-tokens 256 --temperature 0
fi
echo "== ../shared not found: demo on a generated model (random weights) =="
mkdir -p build/demo
[ -f build/demo/model.bin ] || build/bin/lmsynth --shape tiny --dtype f32 --format llama2c --seed 1 --out build/demo/model.bin
exec build/bin/lmlaunch run --model build/demo/model.bin --prompt "${1:-Once upon a time}" --max-tokens 64 --temperature 0
