#!/usr/bin/env bash
# The project's test command: installs dependencies, checks the formatting (tests/format.sh) and
# functions' length (tests/funclen.sh), then builds and tests three trees:
#   build/       Release, all tests
#   build-asan/  Debug with AddressSanitizer + UndefinedBehaviorSanitizer, all tests
#   build-tsan/  ThreadSanitizer, the tests labelled "tsan" (concurrency: serving and workers)
# then a bounded libFuzzer run of the request parser (tests/fuzz.sh).
# Usage: bash tests/run.sh [--fast]   (--fast: Release tree only)
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash tests/format.sh   # the code as .clang-format writes it (fast; before anything builds)
bash tests/funclen.sh  # no function over 150 lines
jobs=$(nproc)
fast=0
[ "${1:-}" = "--fast" ] && fast=1

run_tree() { # dir build-type sanitize ctest-args...
  local dir=$1 type=$2 san=$3
  shift 3
  echo "== $dir ($type${san:+, $san})"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DTRAIL_SANITIZE="$san" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" "$@")
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_tree build Release ""
if [ $fast -eq 0 ]; then
  run_tree build-asan Debug "address,undefined" -LE slow
  if grep -rqs 'LABELS[^)]*tsan' tests/*.cmake; then
    TSAN_OPTIONS=halt_on_error=1 run_tree build-tsan RelWithDebInfo thread -L tsan
  fi
  # libFuzzer on the /v1/score request parser, bounded; exits 1 on a finding
  bash tests/fuzz.sh "${TRAIL_FUZZ_SECONDS:-60}"
fi
echo "tests: all trees passed"
