#!/usr/bin/env bash
# Configures and builds into build/ (Release, -O2 -g; never fast-math).
# Extra arguments go to cmake, e.g. scripts/build.sh -DLMM_SANITIZE=ON with BUILD_DIR=build-asan.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
