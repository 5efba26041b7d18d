#!/usr/bin/env bash
# Fuzz the /v1/score request parser with libFuzzer (clang, -fsanitize=fuzzer,address,undefined)
# for a bounded time, starting from the seed corpus in tests/fuzz_corpus/ (read only: new inputs
# go to a scratch directory). Exits non-zero if the fuzzer finds a crash, a sanitizer report or a
# contract violation; the reproducer is left in the work directory and its path printed.
# Usage: bash tests/fuzz.sh [SECONDS]   (default 60; TRAIL_FUZZ_SECONDS also sets it)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-${TRAIL_FUZZ_SECONDS:-60}}
cc=${CLANG:-clang}
work=${TRAIL_FUZZ_DIR:-build-fuzz}
mkdir -p "$work/corpus"
"$cc" -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Icore -Ischemas -Iranker \
  tests/fuzz_request.c ranker/rank_request.c core/core_alloc.c core/core_err.c -llmdb \
  -o "$work/fuzz_request"
echo "fuzz_request: running ${secs}s from $(ls tests/fuzz_corpus | wc -l) seeds"
# -max_len above the default so inputs with many candidates are tried; timeouts and leaks fail too
# (libFuzzer exits 77 on a finding; reported here as 1 so no harness reads it as "skipped")
if ! "$work/fuzz_request" -max_total_time="$secs" -max_len=8192 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" tests/fuzz_corpus; then
  echo "fuzz_request: FAILED; reproducer: $(ls -t "$work"/crash-* "$work"/timeout-* "$work"/leak-* 2>/dev/null | head -1)" >&2
  exit 1
fi
echo "fuzz_request: no crash in ${secs}s"
