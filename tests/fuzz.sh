#!/usr/bin/env bash
# Fuzz trail's input parsers with libFuzzer (clang, -fsanitize=fuzzer,address,undefined) for a
# bounded total time, split evenly across the targets (at least 10 s each), each starting from its
# seed corpus (read only: new inputs go to a scratch directory):
#   request        the /v1/score body and `trail rank` candidate lines   tests/fuzz_corpus/*.json|txt
#   event_json     the JSON event decoder                                 tests/fuzz_corpus/event_json/
#   event_bin      the 52-byte binary event decoder                       tests/fuzz_corpus/event_bin/
#   model          the model file loader                                  tests/fuzz_corpus/model/
#   import         the Taobao and MovieLens CSV importers                 tests/fuzz_corpus/import/
#   worker_config  the encoder worker's --config file                     tests/fuzz_corpus/worker_config/
#   http           the HTTP layer, one connection's bytes (core_http)     tests/fuzz_corpus/http/
# Exits non-zero if a fuzzer finds a crash, a leak, a timeout, a sanitizer report or a contract
# violation; the reproducer is left in the work directory and its path printed, with the end of
# that target's log. Reproduce with: $work/fuzz_<target> <reproducer>
# Usage: bash tests/fuzz.sh [SECONDS] [TARGET...]   (SECONDS is the total, default 60;
#        TRAIL_FUZZ_SECONDS also sets it; TARGETs: a subset of the list above)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-${TRAIL_FUZZ_SECONDS:-60}}
shift $(($# > 0 ? 1 : 0))
all=(request event_json event_bin model import worker_config http)
targets=("${@:-${all[@]}}")
cc=${CLANG:-clang}
work=${TRAIL_FUZZ_DIR:-build-fuzz}
each=$((secs / ${#targets[@]}))
[ "$each" -ge 10 ] || each=10
mkdir -p "$work"

flags=(-std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
  -Icore -Ischemas -Iranker -Imodel -Iencoder -Ipipeline)
core=(core/core_alloc.c core/core_err.c core/core_json.c)
build() { # target sources... -- libs...
  local t=$1
  shift
  "$cc" "${flags[@]}" "tests/fuzz_$t.c" "$@" -o "$work/fuzz_$t"
}
for t in "${targets[@]}"; do
  case $t in
  request) build request ranker/rank_request.c "${core[@]}" -llmdb ;;
  event_json | event_bin) build "$t" schemas/sch_event.c "${core[@]}" -ljansson -lxxhash -llmdb ;;
  model) build model model/mdl.c "${core[@]}" -lxxhash -llmdb -lm ;;
  import) build import encoder/enc_import.c schemas/sch_event.c "${core[@]}" core/core_opts.c \
    core/core_args.c core/core_log.c -ljansson -lxxhash -llmdb ;;
  worker_config)
    build worker_config pipeline/pipe_encode.c pipeline/pipe_worker.c pipeline/pipe_kafka.c \
      pipeline/pipe_metrics.c pipeline/pipe_store.c encoder/enc_store.c encoder/enc_state.c \
      encoder/enc_simhash.c model/mdl.c schemas/sch_event.c core/core_alloc.c core/core_err.c \
      core/core_log.c core/core_args.c core/core_cpu.c core/core_opts.c core/core_proc.c core/core_http.c core/core_json.c \
      pipeline/pipe_opts.c \
      -lrdkafka -llmdb -ljansson -lxxhash -lpthread -lm -ldl ;;
  http) build http core/core_http.c core/core_log.c core/core_args.c "${core[@]}" -ljansson -lxxhash -llmdb -lpthread ;;
  *) echo "fuzz.sh: unknown target '$t' (${all[*]})" >&2; exit 2 ;;
  esac
done

for t in "${targets[@]}"; do
  seeds=tests/fuzz_corpus/$t
  opts=(-max_len=8192)
  case $t in
  request) # its seeds are the files at the top of tests/fuzz_corpus (libFuzzer would recurse)
    seeds=$work/seeds-request
    rm -rf "$seeds" && mkdir -p "$seeds"
    find tests/fuzz_corpus -maxdepth 1 -type f -exec cp {} "$seeds/" \; ;;
  event_bin) opts=(-max_len=128) ;;
  model) opts=(-max_len=16384) ;;
  import | worker_config) opts+=(-close_fd_mask=1) ;; # the commands' stdout summaries
  esac
  mkdir -p "$work/corpus-$t"
  log=$work/fuzz_$t.log
  echo "fuzz_$t: running ${each}s from $(find "$seeds" -type f | wc -l) seeds"
  # timeouts and leaks fail too (libFuzzer exits 77 on a finding; reported here as 1 so no
  # harness reads it as "skipped")
  if ! TMPDIR=${TMPDIR:-/tmp} "$work/fuzz_$t" -max_total_time="$each" "${opts[@]}" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/$t-" "$work/corpus-$t" "$seeds" \
    >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz_$t: FAILED; reproducer: $(ls -t "$work/$t"-crash-* "$work/$t"-timeout-* "$work/$t"-leak-* "$work/$t"-oom-* 2>/dev/null | head -1)" >&2
    exit 1
  fi
  echo "fuzz_$t: no crash in ${each}s ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs)"
done
echo "fuzz: ${#targets[@]} targets, ${each}s each, nothing found"
