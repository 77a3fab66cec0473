#!/usr/bin/env bash
# Installs the Debian 12 packages LowMemoryLLM needs to build, test and run.
# Safe to run again: packages already present are skipped by apt.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libzmq3-dev libmsgpack-dev liburing-dev
  ocl-icd-opencl-dev pocl-opencl-icd
  libcmocka-dev libjson-c-dev libinih-dev
  libpcre2-dev libutf8proc-dev libprotobuf-c-dev protobuf-c-compiler
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
