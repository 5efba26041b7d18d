#!/usr/bin/env bash
# The main job end to end on the embedded defaults. Grows with the project: today it installs,
# builds and writes an initialized model; the pipeline stages join it as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
mkdir -p out
./build/trail model init --out out/model.bin
./build/trail model info --model out/model.bin
